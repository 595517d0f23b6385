/*
 * expr.c - the condition language: lexer, recursive-descent parser with
 * static type checking, and the tree-walking evaluator. Parsing happens once
 * per rule set load; dg_expr_eval() neither parses nor allocates.
 *
 * Grammar (lowest precedence first):
 *   or      := and ('or' and)*
 *   and     := not ('and' not)*
 *   not     := 'not' not | cmp
 *   cmp     := sum (('=='|'!='|'<'|'<='|'>'|'>=') sum
 *                  | 'in' set | 'not' 'in' set)?
 *   set     := LIST_NAME | '[' literal (',' literal)* ']'
 *   sum     := prod (('+'|'-') prod)*
 *   prod    := unary (('*'|'/') unary)*
 *   unary   := '-' unary | primary
 *   primary := NUMBER | DURATION | STRING | 'true' | 'false'
 *            | NAME | NAME '(' args ')' | '(' or ')'
 */
#include "expr.h"
#include "event.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXPR_LEN 4096
#define MAX_DEPTH 64   /* recursion bound: hostile rule files */
#define MAX_ARGS 4
#define MAX_LIST_ITEMS 100000

enum op {
    OP_LIT = 1, OP_FIELD, OP_EXTRA, OP_WIN,
    OP_NEG, OP_ADD, OP_SUB, OP_MUL, OP_DIV,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
    OP_AND, OP_OR, OP_NOT, OP_IN, OP_CALL
};

struct dg_expr {
    uint8_t op;
    uint8_t type;     /* static dg_type */
    uint8_t negate;   /* OP_IN: `not in` */
    uint8_t nargs;
    int index;        /* field, extra, window or list index */
    dg_value lit;
    char *owned;      /* string literal storage */
    const struct dg_func_def *fn;
    struct dg_expr *kid[MAX_ARGS];
    size_t pos;       /* offset in the source, for messages */
};

/* ------------------------------------------------------------------ */
/* lexer                                                              */

enum tok {
    T_END, T_NUM, T_DUR, T_STR, T_NAME, T_LP, T_RP, T_LB, T_RB, T_COMMA,
    T_PLUS, T_MINUS, T_STAR, T_SLASH, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
    T_AND, T_OR, T_NOT, T_IN, T_TRUE, T_FALSE, T_ERR
};

struct parser {
    const char *src;
    size_t len, pos;
    /* current token */
    int tok;
    size_t tpos, tlen;
    double num;
    int64_t ms;
    char *str;        /* decoded string literal (malloc) */
    size_t slen;
    const struct dg_expr_env *env;
    int depth;
    int failed;
    size_t err_off;
    char *err;
    size_t errsz;
};

static void fail(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct parser *p, size_t off, const char *fmt, ...)
{
    va_list ap;
    if (p->failed)
        return;
    p->failed = 1;
    p->err_off = off;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errsz, fmt, ap);
    va_end(ap);
}

static int is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(int c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '.';
}

static const char *tok_text(struct parser *p, char *buf, size_t sz)
{
    if (p->tok == T_END)
        return "end of expression";
    size_t n = p->tlen < sz - 3 ? p->tlen : sz - 3;
    snprintf(buf, sz, "'%.*s'", (int)n, p->src + p->tpos);
    return buf;
}

static void lex_string(struct parser *p, char q)
{
    size_t i = p->pos + 1;
    dg_buf b = {0};

    while (i < p->len && p->src[i] != q) {
        char c = p->src[i];
        if (c == '\\' && i + 1 < p->len) {
            char n = p->src[i + 1];
            switch (n) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case '\\': case '"': case '\'': c = n; break;
            default:
                fail(p, i, "unknown escape '\\%c' in string", n);
                dg_buf_free(&b);
                return;
            }
            i++;
        }
        dg_buf_putc(&b, c);
        i++;
    }
    if (i >= p->len) {
        fail(p, p->pos, "unterminated string");
        dg_buf_free(&b);
        return;
    }
    if (!b.data)
        dg_buf_reserve(&b, 1);
    p->str = b.data;
    p->slen = b.len;
    p->tok = T_STR;
    p->pos = i + 1;
}

static void next(struct parser *p)
{
    free(p->str);
    p->str = NULL;
    while (p->pos < p->len && (p->src[p->pos] == ' ' || p->src[p->pos] == '\t' ||
                               p->src[p->pos] == '\n' || p->src[p->pos] == '\r'))
        p->pos++;
    p->tpos = p->pos;
    if (p->pos >= p->len) {
        p->tok = T_END;
        p->tlen = 0;
        return;
    }
    const char *s = p->src + p->pos;
    char c = *s;
    char c2 = p->pos + 1 < p->len ? s[1] : '\0';

    if (c >= '0' && c <= '9') {
        size_t i = p->pos, start = i;
        char digits[64];
        size_t nd = 0;
        int dot = 0;
        while (i < p->len && ((p->src[i] >= '0' && p->src[i] <= '9') ||
                              p->src[i] == '_' || (p->src[i] == '.' && !dot))) {
            if (p->src[i] == '.') {
                if (i + 1 >= p->len || p->src[i + 1] < '0' || p->src[i + 1] > '9')
                    break;
                dot = 1;
            }
            if (p->src[i] != '_' && nd < sizeof(digits) - 1)
                digits[nd++] = p->src[i];
            i++;
        }
        digits[nd] = '\0';
        if (i < p->len && is_name_start((unsigned char)p->src[i])) {
            /* a duration: 90s, 1h30m; units are letters right after digits */
            while (i < p->len && (is_name_char((unsigned char)p->src[i]) &&
                                  p->src[i] != '.'))
                i++;
            if (dot || dg_duration_parse(p->src + start, i - start, &p->ms) != 0) {
                fail(p, start, "bad duration '%.*s' (write e.g. 90s, 10m, 24h, 7d, 1h30m)",
                     (int)(i - start), p->src + start);
                p->tok = T_ERR;
                return;
            }
            p->tok = T_DUR;
        } else {
            p->num = strtod(digits, NULL);
            p->tok = T_NUM;
        }
        p->pos = i;
        p->tlen = i - start;
        return;
    }
    if (is_name_start((unsigned char)c)) {
        size_t i = p->pos;
        while (i < p->len && is_name_char((unsigned char)p->src[i]))
            i++;
        size_t n = i - p->pos;
        p->tlen = n;
        p->tok = T_NAME;
        if (n == 3 && !memcmp(s, "and", 3)) p->tok = T_AND;
        else if (n == 2 && !memcmp(s, "or", 2)) p->tok = T_OR;
        else if (n == 3 && !memcmp(s, "not", 3)) p->tok = T_NOT;
        else if (n == 2 && !memcmp(s, "in", 2)) p->tok = T_IN;
        else if (n == 4 && !memcmp(s, "true", 4)) p->tok = T_TRUE;
        else if (n == 5 && !memcmp(s, "false", 5)) p->tok = T_FALSE;
        p->pos = i;
        return;
    }
    if (c == '"' || c == '\'') {
        lex_string(p, c);
        p->tlen = p->pos - p->tpos;
        if (p->failed)
            p->tok = T_ERR;
        return;
    }
    p->tlen = 1;
    switch (c) {
    case '(': p->tok = T_LP; break;
    case ')': p->tok = T_RP; break;
    case '[': p->tok = T_LB; break;
    case ']': p->tok = T_RB; break;
    case ',': p->tok = T_COMMA; break;
    case '+': p->tok = T_PLUS; break;
    case '-': p->tok = T_MINUS; break;
    case '*': p->tok = T_STAR; break;
    case '/': p->tok = T_SLASH; break;
    case '=':
        if (c2 == '=') { p->tok = T_EQ; p->tlen = 2; break; }
        fail(p, p->pos, "unexpected '=' (use '==' to compare)");
        p->tok = T_ERR;
        return;
    case '!':
        if (c2 == '=') { p->tok = T_NE; p->tlen = 2; break; }
        fail(p, p->pos, "unexpected '!' (use 'not')");
        p->tok = T_ERR;
        return;
    case '<':
        if (c2 == '=') { p->tok = T_LE; p->tlen = 2; } else p->tok = T_LT;
        break;
    case '>':
        if (c2 == '=') { p->tok = T_GE; p->tlen = 2; } else p->tok = T_GT;
        break;
    case '&':
    case '|':
        fail(p, p->pos, "unexpected '%c' (use 'and' / 'or')", c);
        p->tok = T_ERR;
        return;
    default:
        if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
            fail(p, p->pos, "unexpected character (byte 0x%02x)", (unsigned char)c);
        else
            fail(p, p->pos, "unexpected character '%c'", c);
        p->tok = T_ERR;
        return;
    }
    p->pos += p->tlen;
}

/* ------------------------------------------------------------------ */
/* nodes                                                              */

static dg_expr *node(int op, int type, size_t pos)
{
    dg_expr *e = dg_xcalloc(1, sizeof(*e));
    e->op = (uint8_t)op;
    e->type = (uint8_t)type;
    e->pos = pos;
    return e;
}

void dg_expr_free(dg_expr *e)
{
    if (!e)
        return;
    for (int i = 0; i < MAX_ARGS; i++)
        dg_expr_free(e->kid[i]);
    free(e->owned);
    free(e);
}

dg_type dg_expr_type(const dg_expr *e)
{
    return (dg_type)e->type;
}

static const char *tname(int t)
{
    return dg_type_name((dg_type)t);
}

static dg_expr *parse_or(struct parser *p);

static int expect(struct parser *p, int tok, const char *what)
{
    char b[48];
    if (p->tok == tok) {
        next(p);
        return 0;
    }
    fail(p, p->tpos, "expected %s, found %s", what, tok_text(p, b, sizeof b));
    return -1;
}

static dg_expr *parse_call(struct parser *p, const char *name, size_t nlen, size_t pos)
{
    const struct dg_func_def *fn = dg_func_lookup(name, nlen);
    dg_expr *e;
    dg_type types[MAX_ARGS];
    char msg[160];

    if (!fn) {
        char want[64];
        const char *best = NULL;
        int bestd = 3;
        snprintf(want, sizeof want, "%.*s", (int)nlen, name);
        for (size_t i = 0; i < dg_nfuncs; i++) {
            int d = dg_edit_distance(want, dg_funcs[i].name);
            if (d < bestd) {
                bestd = d;
                best = dg_funcs[i].name;
            }
        }
        if (best)
            fail(p, pos, "unknown function '%s' (did you mean '%s'?)", want, best);
        else
            fail(p, pos, "unknown function '%s'", want);
        return NULL;
    }
    e = node(OP_CALL, DG_T_NONE, pos);
    e->fn = fn;
    next(p); /* '(' */
    if (p->tok != T_RP) {
        for (;;) {
            if (e->nargs >= MAX_ARGS) {
                fail(p, p->tpos, "too many arguments to '%s'", fn->name);
                goto out_free;
            }
            e->kid[e->nargs] = parse_or(p);
            if (!e->kid[e->nargs])
                goto out_free;
            types[e->nargs] = (dg_type)e->kid[e->nargs]->type;
            e->nargs++;
            if (p->tok != T_COMMA)
                break;
            next(p);
        }
    }
    if (expect(p, T_RP, "')' after the arguments"))
        goto out_free;
    if (e->nargs < fn->min_args || e->nargs > fn->max_args) {
        fail(p, pos, "'%s' takes %d argument%s, got %d: %s", fn->name, fn->min_args,
             fn->min_args == 1 ? "" : "s", e->nargs, fn->signature);
        goto out_free;
    }
    msg[0] = '\0';
    e->type = (uint8_t)fn->check(types, e->nargs, msg, sizeof msg);
    if (e->type == DG_T_NONE) {
        fail(p, pos, "%s: %s", fn->signature, msg[0] ? msg : "bad arguments");
        goto out_free;
    }
    return e;
out_free:
    dg_expr_free(e);
    return NULL;
}

static dg_expr *parse_primary(struct parser *p)
{
    dg_expr *e;
    char b[48];
    size_t pos = p->tpos;

    switch (p->tok) {
    case T_NUM:
        e = node(OP_LIT, DG_T_NUM, pos);
        e->lit = dg_num(p->num);
        next(p);
        return e;
    case T_DUR:
        e = node(OP_LIT, DG_T_DUR, pos);
        e->lit = dg_dur(p->ms);
        next(p);
        return e;
    case T_STR:
        e = node(OP_LIT, DG_T_STR, pos);
        e->owned = p->str;
        e->lit = dg_str(p->str, p->slen);
        p->str = NULL;
        next(p);
        return e;
    case T_TRUE:
    case T_FALSE:
        e = node(OP_LIT, DG_T_BOOL, pos);
        e->lit = dg_bool(p->tok == T_TRUE);
        next(p);
        return e;
    case T_LP:
        next(p);
        e = parse_or(p);
        if (e && expect(p, T_RP, "')'")) {
            dg_expr_free(e);
            return NULL;
        }
        return e;
    case T_NAME: {
        const char *name = p->src + p->tpos;
        size_t nlen = p->tlen;
        struct dg_ref ref;
        char msg[200];
        next(p);
        if (p->tok == T_LP)
            return parse_call(p, name, nlen, pos);
        msg[0] = '\0';
        if (p->env->resolve(p->env->ctx, name, nlen, 0, &ref, msg, sizeof msg) != 0) {
            fail(p, pos, "%s", msg);
            return NULL;
        }
        switch (ref.kind) {
        case DG_REF_FIELD: e = node(OP_FIELD, ref.type, pos); break;
        case DG_REF_EXTRA: e = node(OP_EXTRA, DG_T_ANY, pos); break;
        case DG_REF_WINDOW: e = node(OP_WIN, ref.type, pos); break;
        default:
            fail(p, pos, "list '%.*s' can only follow 'in' or 'not in'", (int)nlen, name);
            return NULL;
        }
        e->index = ref.index;
        return e;
    }
    case T_ERR:
        return NULL;
    default:
        fail(p, pos, "expected a value, found %s", tok_text(p, b, sizeof b));
        return NULL;
    }
}

static dg_expr *parse_unary(struct parser *p)
{
    if (p->tok == T_MINUS) {
        size_t pos = p->tpos;
        next(p);
        if (++p->depth > MAX_DEPTH) {
            fail(p, pos, "expression nested too deeply (more than %d levels)", MAX_DEPTH);
            return NULL;
        }
        dg_expr *a = parse_unary(p);
        p->depth--;
        if (!a)
            return NULL;
        if (a->op == OP_LIT && a->type == DG_T_NUM) {
            a->lit.u.n = -a->lit.u.n;
            return a;
        }
        if (a->type != DG_T_NUM && a->type != DG_T_DUR && a->type != DG_T_ANY) {
            fail(p, pos, "cannot negate a %s", tname(a->type));
            dg_expr_free(a);
            return NULL;
        }
        dg_expr *e = node(OP_NEG, a->type == DG_T_ANY ? DG_T_NUM : a->type, pos);
        e->kid[0] = a;
        return e;
    }
    return parse_primary(p);
}

/* Static type of an arithmetic result, or DG_T_NONE when it is an error.
 * Unknown fields (ANY) act as numbers: at run time a non-number is missing. */
static int arith_type(int op, int a, int b)
{
    if (a == DG_T_ANY) a = DG_T_NUM;
    if (b == DG_T_ANY) b = DG_T_NUM;
    switch (op) {
    case OP_ADD:
        if (a == DG_T_NUM && b == DG_T_NUM) return DG_T_NUM;
        if (a == DG_T_DUR && b == DG_T_DUR) return DG_T_DUR;
        if ((a == DG_T_TIME && b == DG_T_DUR) || (a == DG_T_DUR && b == DG_T_TIME))
            return DG_T_TIME;
        return DG_T_NONE;
    case OP_SUB:
        if (a == DG_T_NUM && b == DG_T_NUM) return DG_T_NUM;
        if (a == DG_T_DUR && b == DG_T_DUR) return DG_T_DUR;
        if (a == DG_T_TIME && b == DG_T_TIME) return DG_T_DUR;
        if (a == DG_T_TIME && b == DG_T_DUR) return DG_T_TIME;
        return DG_T_NONE;
    case OP_MUL:
        if (a == DG_T_NUM && b == DG_T_NUM) return DG_T_NUM;
        if ((a == DG_T_NUM && b == DG_T_DUR) || (a == DG_T_DUR && b == DG_T_NUM))
            return DG_T_DUR;
        return DG_T_NONE;
    case OP_DIV:
        if (a == DG_T_NUM && b == DG_T_NUM) return DG_T_NUM;
        if (a == DG_T_DUR && b == DG_T_NUM) return DG_T_DUR;
        if (a == DG_T_DUR && b == DG_T_DUR) return DG_T_NUM;
        return DG_T_NONE;
    }
    return DG_T_NONE;
}

static const char *op_text(int op)
{
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    case OP_LT: return "<";
    case OP_LE: return "<=";
    case OP_GT: return ">";
    case OP_GE: return ">=";
    case OP_AND: return "and";
    case OP_OR: return "or";
    }
    return "?";
}

static dg_expr *binary(struct parser *p, int op, dg_expr *a, dg_expr *b, int type, size_t pos)
{
    dg_expr *e = node(op, type, pos);
    e->kid[0] = a;
    e->kid[1] = b;
    return e;
}

/* One level of left-associative arithmetic: `sub (op sub)*` where a token
 * tok1 means op1 and tok2 means op2, type-checked as it goes. */
static dg_expr *parse_arith(struct parser *p, int tok1, int op1, int tok2, int op2,
                            dg_expr *(*sub)(struct parser *))
{
    dg_expr *a = sub(p);
    while (a && (p->tok == tok1 || p->tok == tok2)) {
        int op = p->tok == tok1 ? op1 : op2;
        size_t pos = p->tpos;
        next(p);
        dg_expr *b = sub(p);
        if (!b) {
            dg_expr_free(a);
            return NULL;
        }
        int t = arith_type(op, a->type, b->type);
        if (t == DG_T_NONE) {
            fail(p, pos, "type mismatch: %s %s %s", tname(a->type), op_text(op), tname(b->type));
            dg_expr_free(a);
            dg_expr_free(b);
            return NULL;
        }
        a = binary(p, op, a, b, t, pos);
    }
    return a;
}

static dg_expr *parse_prod(struct parser *p)
{
    return parse_arith(p, T_STAR, OP_MUL, T_SLASH, OP_DIV, parse_unary);
}

static dg_expr *parse_sum(struct parser *p)
{
    return parse_arith(p, T_PLUS, OP_ADD, T_MINUS, OP_SUB, parse_prod);
}

/* A string literal compared with a time is read as an RFC 3339 time once,
 * here, so that `ts >= "2019-05-07T00:00:00Z"` costs nothing per event. */
static int coerce_time_literal(struct parser *p, dg_expr *lit)
{
    int64_t ms;
    if (lit->op != OP_LIT || lit->type != DG_T_STR)
        return -1;
    if (dg_time_parse_rfc3339(lit->lit.u.s, lit->lit.len, &ms) != 0) {
        fail(p, lit->pos, "'%.*s' is not an RFC 3339 time (e.g. \"2019-05-07T17:15:24Z\")",
             (int)(lit->lit.len > 40 ? 40 : lit->lit.len), lit->lit.u.s);
        return -2;
    }
    lit->type = DG_T_TIME;
    lit->lit = dg_time(ms);
    return 0;
}

static int comparable(int op, int a, int b)
{
    if (a == DG_T_ANY || b == DG_T_ANY)
        return a != DG_T_TIME && b != DG_T_TIME && a != DG_T_DUR && b != DG_T_DUR;
    if (a != b)
        return 0;
    if (a == DG_T_STR || a == DG_T_BOOL)
        return op == OP_EQ || op == OP_NE;
    return 1;
}

static dg_expr *parse_set(struct parser *p, dg_expr *lhs, int negate, size_t pos)
{
    dg_expr *e;
    struct dg_ref ref;
    char msg[200];
    int list = -1;
    size_t lpos = p->tpos;

    if (p->tok == T_NAME) {
        msg[0] = '\0';
        if (p->env->resolve(p->env->ctx, p->src + p->tpos, p->tlen, 1, &ref, msg,
                            sizeof msg) != 0) {
            fail(p, lpos, "%s", msg);
            return NULL;
        }
        if (ref.kind != DG_REF_LIST) {
            fail(p, lpos, "'%.*s' is not a list", (int)p->tlen, p->src + p->tpos);
            return NULL;
        }
        list = ref.index;
        next(p);
        e = node(OP_IN, DG_T_BOOL, pos);
        e->index = list;
        if (ref.type != DG_T_NONE && lhs->type != DG_T_ANY && lhs->type != ref.type) {
            fail(p, pos, "type mismatch: %s %sin a list of %ss", tname(lhs->type),
                 negate ? "not " : "", tname(ref.type));
            dg_expr_free(e);
            return NULL;
        }
    } else if (p->tok == T_LB) {
        dg_value items[256];
        char *owned[256];
        size_t n = 0;
        int type = DG_T_NONE;
        next(p);
        while (p->tok != T_RB) {
            if (n == DG_ARRAY_LEN(items)) {
                fail(p, p->tpos, "inline list longer than %zu items: use a named list",
                     DG_ARRAY_LEN(items));
                goto inline_fail;
            }
            int neg = 0;
            if (p->tok == T_MINUS) {
                neg = 1;
                next(p);
            }
            if (p->tok == T_STR && !neg) {
                owned[n] = p->str;
                items[n] = dg_str(p->str, p->slen);
                p->str = NULL;
            } else if (p->tok == T_NUM) {
                owned[n] = NULL;
                items[n] = dg_num(neg ? -p->num : p->num);
            } else {
                char b[48];
                fail(p, p->tpos, "expected a string or number in the list, found %s",
                     tok_text(p, b, sizeof b));
                goto inline_fail;
            }
            if (type != DG_T_NONE && items[n].t != type) {
                fail(p, p->tpos, "a list mixes strings and numbers");
                n++;
                goto inline_fail;
            }
            type = items[n].t;
            n++;
            next(p);
            if (p->tok == T_COMMA)
                next(p);
            else if (p->tok != T_RB) {
                char b[48];
                fail(p, p->tpos, "expected ',' or ']', found %s", tok_text(p, b, sizeof b));
                goto inline_fail;
            }
        }
        next(p);
        if (n == 0) {
            fail(p, lpos, "empty list");
            goto inline_fail;
        }
        if (lhs->type != DG_T_ANY && lhs->type != type) {
            fail(p, pos, "type mismatch: %s %sin a list of %ss", tname(lhs->type),
                 negate ? "not " : "", tname(type));
            goto inline_fail;
        }
        msg[0] = '\0';
        list = p->env->inline_list(p->env->ctx, items, n, msg, sizeof msg);
        for (size_t i = 0; i < n; i++)
            free(owned[i]);
        if (list < 0) {
            fail(p, lpos, "%s", msg);
            return NULL;
        }
        e = node(OP_IN, DG_T_BOOL, pos);
        e->index = list;
        goto done;
inline_fail:
        for (size_t i = 0; i < n; i++)
            free(owned[i]);
        return NULL;
    } else {
        char b[48];
        fail(p, p->tpos, "expected a list name or [ ... ] after 'in', found %s",
             tok_text(p, b, sizeof b));
        return NULL;
    }
done:
    if (lhs->type != DG_T_STR && lhs->type != DG_T_NUM && lhs->type != DG_T_ANY) {
        fail(p, pos, "'in' needs a string or number on its left, not a %s", tname(lhs->type));
        dg_expr_free(e);
        return NULL;
    }
    e->negate = (uint8_t)negate;
    e->kid[0] = lhs;
    return e;
}

static dg_expr *parse_cmp(struct parser *p)
{
    dg_expr *a = parse_sum(p);
    int op;

    if (!a)
        return NULL;
    switch (p->tok) {
    case T_EQ: op = OP_EQ; break;
    case T_NE: op = OP_NE; break;
    case T_LT: op = OP_LT; break;
    case T_LE: op = OP_LE; break;
    case T_GT: op = OP_GT; break;
    case T_GE: op = OP_GE; break;
    case T_IN:
    case T_NOT: {
        size_t pos = p->tpos;
        int negate = p->tok == T_NOT;
        if (negate) {
            next(p);
            if (p->tok != T_IN) {
                fail(p, pos, "expected 'in' after 'not' here");
                dg_expr_free(a);
                return NULL;
            }
        }
        next(p);
        dg_expr *e = parse_set(p, a, negate, pos);
        if (!e)
            dg_expr_free(a);
        return e;
    }
    default:
        return a;
    }
    size_t pos = p->tpos;
    next(p);
    dg_expr *b = parse_sum(p);
    if (!b) {
        dg_expr_free(a);
        return NULL;
    }
    if (a->type == DG_T_TIME && b->type == DG_T_STR && coerce_time_literal(p, b) == -2)
        goto out_fail;
    if (b->type == DG_T_TIME && a->type == DG_T_STR && coerce_time_literal(p, a) == -2)
        goto out_fail;
    if (!comparable(op, a->type, b->type)) {
        if (a->type == b->type)
            fail(p, pos, "%ss can only be compared with == or !=", tname(a->type));
        else if ((a->type == DG_T_DUR && b->type == DG_T_NUM) ||
                 (a->type == DG_T_NUM && b->type == DG_T_DUR))
            fail(p, pos, "type mismatch: %s %s %s (write a duration like 24h or 30m)",
                 tname(a->type), op_text(op), tname(b->type));
        else
            fail(p, pos, "type mismatch: %s %s %s", tname(a->type), op_text(op), tname(b->type));
        goto out_fail;
    }
    return binary(p, op, a, b, DG_T_BOOL, pos);
out_fail:
    dg_expr_free(a);
    dg_expr_free(b);
    return NULL;
}

static int check_bool(struct parser *p, dg_expr *e, const char *what)
{
    if (e->type == DG_T_BOOL || e->type == DG_T_ANY)
        return 0;
    fail(p, e->pos, "'%s' needs a condition, not a %s", what, tname(e->type));
    return -1;
}

static dg_expr *parse_not(struct parser *p)
{
    if (p->tok == T_NOT) {
        size_t pos = p->tpos;
        next(p);
        if (++p->depth > MAX_DEPTH) {
            fail(p, pos, "expression nested too deeply (more than %d levels)", MAX_DEPTH);
            return NULL;
        }
        dg_expr *a = parse_not(p);
        p->depth--;
        if (!a)
            return NULL;
        if (check_bool(p, a, "not")) {
            dg_expr_free(a);
            return NULL;
        }
        dg_expr *e = node(OP_NOT, DG_T_BOOL, pos);
        e->kid[0] = a;
        return e;
    }
    return parse_cmp(p);
}

static dg_expr *parse_logic(struct parser *p, int tok, int op, dg_expr *(*sub)(struct parser *))
{
    dg_expr *a = sub(p);
    while (a && p->tok == tok) {
        size_t pos = p->tpos;
        next(p);
        dg_expr *b = sub(p);
        if (!b || check_bool(p, a, op_text(op)) || check_bool(p, b, op_text(op))) {
            dg_expr_free(a);
            dg_expr_free(b);
            return NULL;
        }
        a = binary(p, op, a, b, DG_T_BOOL, pos);
    }
    return a;
}

static dg_expr *parse_and(struct parser *p)
{
    return parse_logic(p, T_AND, OP_AND, parse_not);
}

static dg_expr *parse_or(struct parser *p)
{
    dg_expr *e;
    if (++p->depth > MAX_DEPTH) {
        fail(p, p->tpos, "expression nested too deeply (more than %d levels)", MAX_DEPTH);
        return NULL;
    }
    e = parse_logic(p, T_OR, OP_OR, parse_and);
    p->depth--;
    return e;
}

/* `a and b and c` parses as ((a and b) and c): evaluating it walks down to
 * `a` first, one level per operand. Both operators are associative in
 * three-valued logic and evaluation has no side effects, so the chain is
 * turned into (a and (b and c)) once, here: a first operand that settles
 * the answer then costs one step. The same for `or`. */
static dg_expr *rotate(dg_expr *e)
{
    if (!e)
        return e;
    while ((e->op == OP_AND || e->op == OP_OR) && e->kid[0]->op == e->op) {
        dg_expr *l = e->kid[0]; /* e = (x op y) op z, l = x op y */
        e->kid[0] = l->kid[1];  /* e = y op z */
        l->kid[1] = e;          /* l = x op (y op z) */
        e = l;
    }
    for (int i = 0; i < MAX_ARGS; i++)
        if (e->kid[i])
            e->kid[i] = rotate(e->kid[i]);
    return e;
}

dg_expr *dg_expr_compile(const char *src, size_t len, dg_type want,
                         const struct dg_expr_env *env, size_t *err_off,
                         char *err, size_t errsz)
{
    struct parser p = {0};
    dg_expr *e = NULL;
    char b[48];

    p.src = src;
    p.len = len;
    p.env = env;
    p.err = err;
    p.errsz = errsz;
    if (len > MAX_EXPR_LEN) {
        fail(&p, 0, "expression longer than %d bytes", MAX_EXPR_LEN);
        goto out;
    }
    next(&p);
    if (p.tok == T_END) {
        fail(&p, 0, "empty expression");
        goto out;
    }
    e = parse_or(&p);
    if (e && p.tok != T_END)
        fail(&p, p.tpos, "unexpected %s after the end of the expression", tok_text(&p, b, sizeof b));
    if (e && !p.failed && want != DG_T_NONE && want != DG_T_ANY && e->type != want &&
        !(want == DG_T_BOOL && e->type == DG_T_ANY))
        fail(&p, 0, "expected a %s, but this is a %s", tname(want), tname(e->type));
out:
    free(p.str);
    if (p.failed) {
        dg_expr_free(e);
        *err_off = p.err_off;
        return NULL;
    }
    return rotate(e);
}

/* ------------------------------------------------------------------ */
/* evaluation                                                         */

static int cmp3(double a, double b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

/* Compare two present values: -1, 0, 1; 2 when incomparable (unknown). */
static int compare(dg_value a, dg_value b)
{
    if (a.t != b.t)
        return 2;
    switch (a.t) {
    case DG_T_NUM:
        if (isnan(a.u.n) || isnan(b.u.n))
            return 2;
        return cmp3(a.u.n, b.u.n);
    case DG_T_TIME:
    case DG_T_DUR:
        return a.u.ms < b.u.ms ? -1 : a.u.ms > b.u.ms;
    case DG_T_BOOL:
        return a.u.b == b.u.b ? 0 : 3; /* only == / != make sense */
    case DG_T_STR: {
        size_t n = a.len < b.len ? a.len : b.len;
        int c = memcmp(a.u.s, b.u.s, n);
        if (c == 0)
            c = a.len < b.len ? -1 : a.len > b.len;
        return c == 0 ? 0 : 3;
    }
    }
    return 2;
}

/* Durations and times are int64 milliseconds: a sum, difference or product
 * that does not fit (only absurd literals or hostile fields get there) is
 * missing, like a division by zero, instead of wrapping (undefined in C). */
static dg_value ms_value(int t, int64_t ms)
{
    return t == DG_T_TIME ? dg_time(ms) : dg_dur(ms);
}

static dg_value ms_add(int t, int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? dg_none() : ms_value(t, r);
}

static dg_value ms_sub(int t, int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_sub_overflow(a, b, &r) ? dg_none() : ms_value(t, r);
}

/* a double of milliseconds to a duration: missing unless finite and in
 * range (llround is unspecified outside it) */
static dg_value ms_from_double(double v)
{
    if (!(v > -9.2e18 && v < 9.2e18))
        return dg_none();
    return dg_dur((int64_t)llround(v));
}

static dg_value arith(int op, dg_value a, dg_value b)
{
    if (a.t == DG_T_NONE || b.t == DG_T_NONE)
        return dg_none();
    switch (op) {
    case OP_ADD:
        if (a.t == DG_T_NUM && b.t == DG_T_NUM) return dg_num(a.u.n + b.u.n);
        if (a.t == DG_T_DUR && b.t == DG_T_DUR) return ms_add(DG_T_DUR, a.u.ms, b.u.ms);
        if (a.t == DG_T_TIME && b.t == DG_T_DUR) return ms_add(DG_T_TIME, a.u.ms, b.u.ms);
        if (a.t == DG_T_DUR && b.t == DG_T_TIME) return ms_add(DG_T_TIME, a.u.ms, b.u.ms);
        break;
    case OP_SUB:
        if (a.t == DG_T_NUM && b.t == DG_T_NUM) return dg_num(a.u.n - b.u.n);
        if (a.t == DG_T_DUR && b.t == DG_T_DUR) return ms_sub(DG_T_DUR, a.u.ms, b.u.ms);
        if (a.t == DG_T_TIME && b.t == DG_T_TIME) return ms_sub(DG_T_DUR, a.u.ms, b.u.ms);
        if (a.t == DG_T_TIME && b.t == DG_T_DUR) return ms_sub(DG_T_TIME, a.u.ms, b.u.ms);
        break;
    case OP_MUL:
        if (a.t == DG_T_NUM && b.t == DG_T_NUM) return dg_num(a.u.n * b.u.n);
        if (a.t == DG_T_NUM && b.t == DG_T_DUR) return ms_from_double(a.u.n * (double)b.u.ms);
        if (a.t == DG_T_DUR && b.t == DG_T_NUM) return ms_from_double((double)a.u.ms * b.u.n);
        break;
    case OP_DIV:
        if (a.t == DG_T_NUM && b.t == DG_T_NUM)
            return b.u.n == 0 ? dg_none() : dg_num(a.u.n / b.u.n);
        if (a.t == DG_T_DUR && b.t == DG_T_NUM)
            return b.u.n == 0 ? dg_none() : ms_from_double((double)a.u.ms / b.u.n);
        if (a.t == DG_T_DUR && b.t == DG_T_DUR)
            return b.u.ms == 0 ? dg_none() : dg_num((double)a.u.ms / (double)b.u.ms);
        break;
    }
    return dg_none(); /* a run-time type mismatch (unknown fields) is missing */
}

/* A leaf's value without a call; anything else is evaluated. Most operands
 * are leaves (a window, a field, a literal). */
static inline dg_value operand(const dg_expr *e, const struct dg_eval_ctx *cx)
{
    switch (e->op) {
    case OP_LIT: return e->lit;
    case OP_FIELD: return cx->ev->f[e->index];
    case OP_EXTRA: return cx->ev->extra[e->index];
    case OP_WIN: return cx->win[e->index];
    }
    return dg_expr_eval(e, cx);
}

/* A comparison in three values: 1 true, 0 false, -1 unknown. */
static int cmp_tv(const dg_expr *e, const struct dg_eval_ctx *cx)
{
    dg_value a, b;
    int c;

    a = operand(e->kid[0], cx);
    if (a.t == DG_T_NONE)
        return -1;
    b = operand(e->kid[1], cx);
    if (b.t == DG_T_NONE)
        return -1;
    if (a.t == DG_T_NUM && b.t == DG_T_NUM) { /* the common case, straight */
        if (isnan(a.u.n) || isnan(b.u.n))
            return -1;
        switch (e->op) {
        case OP_EQ: return a.u.n == b.u.n;
        case OP_NE: return a.u.n != b.u.n;
        case OP_LT: return a.u.n < b.u.n;
        case OP_LE: return a.u.n <= b.u.n;
        case OP_GT: return a.u.n > b.u.n;
        default: return a.u.n >= b.u.n;
        }
    }
    c = compare(a, b);
    if (c == 2)
        return -1;
    /* strings and booleans are equal or not, never ordered: unknown even
     * when equal (only unknown fields get here, typed at run time) */
    if ((a.t == DG_T_STR || a.t == DG_T_BOOL) && e->op != OP_EQ && e->op != OP_NE)
        return -1;
    switch (e->op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c == 3 ? -1 : c < 0;
    case OP_LE: return c == 3 ? -1 : c <= 0;
    case OP_GT: return c == 3 ? -1 : c > 0;
    default: return c == 3 ? -1 : c >= 0;
    }
}

static dg_value tv_value(int tv)
{
    return tv < 0 ? dg_none() : dg_bool(tv);
}

dg_value dg_expr_eval(const dg_expr *e, const struct dg_eval_ctx *cx)
{
    dg_value a, b;
    int c;

    switch (e->op) {
    case OP_LIT:
        return e->lit;
    case OP_FIELD:
        return cx->ev->f[e->index];
    case OP_EXTRA:
        return cx->ev->extra[e->index];
    case OP_WIN:
        return cx->win[e->index];
    case OP_NEG:
        a = operand(e->kid[0], cx);
        if (a.t == DG_T_NUM) return dg_num(-a.u.n);
        if (a.t == DG_T_DUR) return a.u.ms == INT64_MIN ? dg_none() : dg_dur(-a.u.ms);
        return dg_none();
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
        a = operand(e->kid[0], cx);
        b = operand(e->kid[1], cx);
        return arith(e->op, a, b);
    case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        return tv_value(cmp_tv(e, cx));
    case OP_AND:
        a = operand(e->kid[0], cx);
        if (a.t == DG_T_BOOL && !a.u.b)
            return a; /* false and x = false, without evaluating x */
        b = operand(e->kid[1], cx);
        if (b.t == DG_T_BOOL && !b.u.b)
            return b;
        if (a.t == DG_T_BOOL && b.t == DG_T_BOOL)
            return dg_bool(1);
        return dg_none();
    case OP_OR:
        a = operand(e->kid[0], cx);
        if (a.t == DG_T_BOOL && a.u.b)
            return a;
        b = operand(e->kid[1], cx);
        if (b.t == DG_T_BOOL && b.u.b)
            return b;
        if (a.t == DG_T_BOOL && b.t == DG_T_BOOL)
            return dg_bool(0);
        return dg_none();
    case OP_NOT:
        a = operand(e->kid[0], cx);
        return a.t == DG_T_BOOL ? dg_bool(!a.u.b) : dg_none();
    case OP_IN:
        a = operand(e->kid[0], cx);
        if (a.t != DG_T_STR && a.t != DG_T_NUM)
            return dg_none();
        {
            const struct dg_list *l = cx->lists[e->index];
            if (a.t != dg_list_type(l))
                return dg_none();
            c = dg_list_contains(l, &a);
        }
        return dg_bool(e->negate ? !c : c);
    case OP_CALL: {
        dg_value args[MAX_ARGS];
        for (int i = 0; i < e->nargs; i++)
            args[i] = operand(e->kid[i], cx);
        return e->fn->eval(args, e->nargs);
    }
    }
    return dg_none();
}

/* Conditions only ask "true?", and in three-valued logic that settles
 * early: `x and y` is true only when both are, `x or y` when either is,
 * `not x` when x is false. So truth() and falsity() follow the logic
 * operators themselves and stop at the first operand that decides, and
 * compare without building values; the rest is evaluated. */
static int falsity(const dg_expr *e, const struct dg_eval_ctx *cx);

static int truth(const dg_expr *e, const struct dg_eval_ctx *cx)
{
    dg_value v;
    switch (e->op) {
    case OP_AND:
        return truth(e->kid[0], cx) && truth(e->kid[1], cx);
    case OP_OR:
        return truth(e->kid[0], cx) || truth(e->kid[1], cx);
    case OP_NOT:
        return falsity(e->kid[0], cx);
    case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        return cmp_tv(e, cx) == 1;
    }
    v = operand(e, cx);
    return v.t == DG_T_BOOL && v.u.b;
}

static int falsity(const dg_expr *e, const struct dg_eval_ctx *cx)
{
    dg_value v;
    switch (e->op) {
    case OP_AND:
        return falsity(e->kid[0], cx) || falsity(e->kid[1], cx);
    case OP_OR:
        return falsity(e->kid[0], cx) && falsity(e->kid[1], cx);
    case OP_NOT:
        return truth(e->kid[0], cx);
    case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        return cmp_tv(e, cx) == 0;
    }
    v = operand(e, cx);
    return v.t == DG_T_BOOL && !v.u.b;
}

int dg_expr_true(const dg_expr *e, const struct dg_eval_ctx *cx)
{
    return truth(e, cx);
}

dg_value dg_ref_value(const struct dg_ref *r, const struct dg_eval_ctx *cx)
{
    switch (r->kind) {
    case DG_REF_FIELD: return cx->ev->f[r->index];
    case DG_REF_EXTRA: return cx->ev->extra[r->index];
    case DG_REF_WINDOW: return cx->win[r->index];
    }
    return dg_none();
}

/* ------------------------------------------------------------------ */
/* lists: strings in an open-addressing set, numbers sorted           */

struct dg_list {
    int type;
    size_t n, cap;     /* cap: slots (strings), a power of two */
    uint64_t *hashes;  /* strings */
    char **strs;
    uint32_t *lens;
    double *nums;      /* numbers, sorted */
};

static int dbl_cmp(const void *a, const void *b)
{
    return cmp3(*(const double *)a, *(const double *)b);
}

struct dg_list *dg_list_new(const dg_value *items, size_t n)
{
    struct dg_list *l = dg_xcalloc(1, sizeof(*l));
    l->type = n ? items[0].t : DG_T_STR;
    if (l->type == DG_T_NUM) {
        l->nums = dg_xmalloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            l->nums[i] = items[i].u.n;
        qsort(l->nums, n, sizeof(double), dbl_cmp);
        l->n = n;
        return l;
    }
    l->cap = 8;
    while (l->cap < n * 2)
        l->cap *= 2;
    l->hashes = dg_xcalloc(l->cap, sizeof(uint64_t));
    l->strs = dg_xcalloc(l->cap, sizeof(char *));
    l->lens = dg_xcalloc(l->cap, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        if (dg_list_contains(l, &items[i]))
            continue;
        uint64_t h = dg_hash64(items[i].u.s, items[i].len, 0);
        size_t j = h & (l->cap - 1);
        while (l->strs[j])
            j = (j + 1) & (l->cap - 1);
        l->hashes[j] = h;
        l->strs[j] = dg_xstrndup(items[i].u.s, items[i].len);
        l->lens[j] = items[i].len;
        l->n++;
    }
    return l;
}

void dg_list_free(struct dg_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->cap; i++)
        free(l->strs[i]);
    free(l->hashes);
    free(l->strs);
    free(l->lens);
    free(l->nums);
    free(l);
}

int dg_list_contains(const struct dg_list *l, const dg_value *v)
{
    if (v->t != l->type)
        return 0;
    if (l->type == DG_T_NUM)
        return bsearch(&v->u.n, l->nums, l->n, sizeof(double), dbl_cmp) != NULL;
    uint64_t h = dg_hash64(v->u.s, v->len, 0);
    for (size_t j = h & (l->cap - 1); l->strs[j]; j = (j + 1) & (l->cap - 1))
        if (l->hashes[j] == h && l->lens[j] == v->len && !memcmp(l->strs[j], v->u.s, v->len))
            return 1;
    return 0;
}

dg_type dg_list_type(const struct dg_list *l)
{
    return (dg_type)l->type;
}

size_t dg_list_len(const struct dg_list *l)
{
    return l->n;
}
