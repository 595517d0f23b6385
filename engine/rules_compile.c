/*
 * rules_compile.c - rule file trees to one immutable struct dg_ruleset.
 *
 * Three passes over all files of a set: lists, then windows (so rules in any
 * file may use windows from any other), then rules. Every problem becomes a
 * FILE:LINE:COL diagnostic and compilation goes on, so `drainguard check`
 * reports all of a file's errors at once. At the end each event type gets
 * its plan: the windows it adds to or reads, in index order.
 */
#include "rules.h"
#include "reconcile.h"
#include "rules_tree.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_NAMES 1000      /* windows, rules, lists: each */
#define MAX_NAME_LEN 64
#define MAX_LIST_FILE_ITEMS 1000000
#define MAX_LIST_FILE_BYTES (64 * 1024 * 1024)

/* ------------------------------------------------------------------ */
/* diagnostics                                                        */

void dg_diag_add(struct dg_diag *d, int is_error, const struct dg_srcpos *p,
                 const char *fmt, ...)
{
    dg_buf b = {0};
    va_list ap;
    char msg[512];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p && p->file)
        dg_buf_printf(&b, "%s:%d:%d: ", p->file, p->line, p->col);
    dg_buf_printf(&b, "%s%s", is_error ? "" : "warning: ", msg);
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->lines = dg_xrealloc(d->lines, d->cap * sizeof(char *));
    }
    d->lines[d->n++] = b.data;
    if (is_error)
        d->errors++;
    else
        d->warnings++;
}

void dg_diag_free(struct dg_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    memset(d, 0, sizeof(*d));
}

/* ------------------------------------------------------------------ */
/* names                                                              */

static const char *const action_names[DG_NACTIONS] = {"allow", "review", "hold", "freeze"};
static const char *const scope_names[DG_NSCOPES] = {"account", "destination", "wallet",
                                                    "asset", "global"};

const char *dg_action_name(int a)
{
    return a >= 0 && a < DG_NACTIONS ? action_names[a] : "?";
}

static int lookup_name(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && !memcmp(names[i], s, len))
            return i;
    return -1;
}

int dg_action_lookup(const char *s, size_t len)
{
    return lookup_name(action_names, DG_NACTIONS, s, len);
}

const char *dg_scope_name(int s)
{
    return s >= 0 && s < DG_NSCOPES ? scope_names[s] : "?";
}

int dg_scope_lookup(const char *s, size_t len)
{
    return lookup_name(scope_names, DG_NSCOPES, s, len);
}

/* Which field gives a scope its key on an event type (-1: not available). */
int dg_scope_field(int scope, int type)
{
    switch (scope) {
    case DG_SCOPE_ACCOUNT:
        return dg_fields[DG_F_ACCOUNT_ID].presence[type] ? DG_F_ACCOUNT_ID : -1;
    case DG_SCOPE_DESTINATION:
        return dg_fields[DG_F_DEST_ADDRESS].presence[type] ? DG_F_DEST_ADDRESS : -1;
    case DG_SCOPE_WALLET:
        if (dg_fields[DG_F_WALLET_ID].presence[type])
            return DG_F_WALLET_ID;
        return dg_fields[DG_F_HOT_WALLET].presence[type] ? DG_F_HOT_WALLET : -1;
    case DG_SCOPE_ASSET:
        return dg_fields[DG_F_ASSET].presence[type] ? DG_F_ASSET : -1;
    case DG_SCOPE_GLOBAL:
        return DG_F_TYPE; /* always there; the key is "*" */
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* compile context                                                    */

struct cctx {
    struct dg_ruleset *rs;
    struct dg_diag *diag;
    const char *file;        /* current file (owned by rs) */
    /* for the resolver */
    uint32_t on_mask;
    int allow_windows;
    int cur_rule;            /* -1 outside rules */
    /* counts for limits */
    size_t cap_lists, cap_windows, cap_rules;
};

static struct dg_srcpos pos_of(struct cctx *c, const struct dg_ynode *n)
{
    struct dg_srcpos p = {c->file, n ? n->line : 1, n ? n->col : 1};
    return p;
}

static void err_at(struct cctx *c, const struct dg_ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_at(struct cctx *c, const struct dg_ynode *n, const char *fmt, ...)
{
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct dg_srcpos p = pos_of(c, n);
    dg_diag_add(c->diag, 1, &p, "%s", msg);
}

/* The position of byte `off` inside a scalar, for expression errors. */
static struct dg_srcpos pos_in_scalar(struct cctx *c, const struct dg_ynode *n, size_t off)
{
    struct dg_srcpos p = pos_of(c, n);
    if (n->single_line) {
        p.col += n->quote_cols + (int)off;
        return p;
    }
    /* multi-line scalars: count lines in the text; the column is a best
     * effort because folding and indentation are gone by now */
    int line = 0;
    size_t last = 0;
    for (size_t i = 0; i < off && i < n->len; i++)
        if (n->text[i] == '\n') {
            line++;
            last = i + 1;
        }
    if (!n->plain && !n->quote_cols)
        line++; /* block scalars start on the line after '|' or '>' */
    p.line += line;
    p.col = line ? (int)(off - last) + 1 : p.col + (int)off;
    return p;
}

static const char *suggest(const char *want, const char *const *cands, size_t n)
{
    const char *best = NULL;
    int bestd = 3;
    size_t wl = strlen(want);
    for (size_t i = 0; i < n; i++) {
        int d = dg_edit_distance(want, cands[i]);
        if (d < bestd && (size_t)d < wl) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

static int is_scalar(struct cctx *c, const struct dg_ynode *n, const char *what)
{
    if (n->kind == DG_Y_SCALAR)
        return 1;
    err_at(c, n, "%s must be a single value, not a %s", what,
           n->kind == DG_Y_MAP ? "mapping" : "list");
    return 0;
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0 || len > MAX_NAME_LEN)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Check that every key of map m is one of allowed[]; report the others with
 * a suggestion. */
static void check_keys(struct cctx *c, const struct dg_ynode *m, const char *const *allowed,
                       size_t n, const char *where)
{
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        const struct dg_ynode *k = m->kids[i];
        if (k->kind != DG_Y_SCALAR) {
            err_at(c, k, "%s: keys must be plain names", where);
            continue;
        }
        if (lookup_name(allowed, (int)n, k->text, k->len) >= 0)
            continue;
        const char *s = suggest(k->text, allowed, n);
        if (s)
            err_at(c, k, "%s: unknown key '%s' (did you mean '%s'?)", where, k->text, s);
        else
            err_at(c, k, "%s: unknown key '%s'", where, k->text);
    }
    for (size_t i = 0; i + 1 < m->n; i += 2)
        for (size_t j = i + 2; j + 1 < m->n; j += 2)
            if (m->kids[i]->kind == DG_Y_SCALAR && m->kids[j]->kind == DG_Y_SCALAR &&
                !strcmp(m->kids[i]->text, m->kids[j]->text))
                err_at(c, m->kids[j], "%s: key '%s' given twice", where, m->kids[j]->text);
}

static const struct dg_ynode *get(const struct dg_ynode *m, const char *key)
{
    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (m->kids[i]->kind == DG_Y_SCALAR && !strcmp(m->kids[i]->text, key))
            return m->kids[i + 1];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* name resolution for expressions                                    */

static int find_window(const struct dg_ruleset *rs, const char *name, size_t len)
{
    for (size_t i = 0; i < rs->nwindows; i++)
        if (strlen(rs->windows[i].name) == len && !memcmp(rs->windows[i].name, name, len))
            return (int)i;
    return -1;
}

static int find_list(const struct dg_ruleset *rs, const char *name, size_t len)
{
    for (size_t i = 0; i < rs->nlists; i++)
        if (rs->lists[i].name && strlen(rs->lists[i].name) == len &&
            !memcmp(rs->lists[i].name, name, len))
            return (int)i;
    return -1;
}

static void type_names(uint32_t mask, char *out, size_t sz)
{
    out[0] = '\0';
    for (int t = 0; t < DG_EV_NTYPES; t++)
        if (mask & DG_EV_BIT(t)) {
            size_t l = strlen(out);
            snprintf(out + l, sz - l, "%s%s", l ? ", " : "", dg_event_type_name(t));
        }
}

/* First event type in mask on which field f is absent, or -1. */
static int field_absent_on(int f, uint32_t mask)
{
    for (int t = 0; t < DG_EV_NTYPES; t++)
        if ((mask & DG_EV_BIT(t)) && dg_fields[f].presence[t] == DG_P_ABSENT)
            return t;
    return -1;
}

static int add_extra(struct dg_ruleset *rs, const char *name, size_t len, char *err, size_t errsz)
{
    for (size_t i = 0; i < rs->nextra; i++)
        if (strlen(rs->extra[i]) == len && !memcmp(rs->extra[i], name, len))
            return (int)i;
    if (rs->nextra >= DG_MAX_EXTRA_FIELDS) {
        snprintf(err, errsz, "more than %d distinct event.* fields", DG_MAX_EXTRA_FIELDS);
        return -1;
    }
    rs->extra = dg_xrealloc(rs->extra, (rs->nextra + 1) * sizeof(char *));
    rs->extra[rs->nextra] = dg_xstrndup(name, len);
    return (int)rs->nextra++;
}

static void suggest_name(struct cctx *c, const char *want, char *out, size_t sz)
{
    const char *cands[DG_F_NKNOWN + MAX_NAMES * 2];
    size_t n = 0;
    for (int f = 0; f < DG_F_NKNOWN; f++)
        if (field_absent_on(f, c->on_mask) < 0)
            cands[n++] = dg_fields[f].name;
    for (size_t i = 0; i < c->rs->nwindows && n < DG_ARRAY_LEN(cands); i++)
        cands[n++] = c->rs->windows[i].name;
    for (size_t i = 0; i < c->rs->nlists && n < DG_ARRAY_LEN(cands); i++)
        if (c->rs->lists[i].name)
            cands[n++] = c->rs->lists[i].name;
    const char *s = suggest(want, cands, n);
    if (s)
        snprintf(out, sz, " (did you mean '%s'?)", s);
    else
        out[0] = '\0';
}

static int resolve(void *vctx, const char *name, size_t len, int after_in,
                   struct dg_ref *out, char *err, size_t errsz)
{
    struct cctx *c = vctx;
    struct dg_ruleset *rs = c->rs;
    char want[MAX_NAME_LEN * 2 + 8], hint[96], types[128];
    int i;

    snprintf(want, sizeof want, "%.*s", (int)(len > MAX_NAME_LEN * 2 ? MAX_NAME_LEN * 2 : len), name);
    if (after_in) {
        i = find_list(rs, name, len);
        if (i < 0) {
            const char *cands[MAX_NAMES];
            size_t n = 0;
            for (size_t j = 0; j < rs->nlists && n < MAX_NAMES; j++)
                if (rs->lists[j].name)
                    cands[n++] = rs->lists[j].name;
            const char *s = suggest(want, cands, n);
            if (s)
                snprintf(err, errsz, "unknown list '%s' (did you mean '%s'?)", want, s);
            else
                snprintf(err, errsz, "unknown list '%s'", want);
            return -1;
        }
        rs->lists[i].used = 1;
        out->kind = DG_REF_LIST;
        out->index = i;
        out->type = dg_list_type(rs->lists[i].list);
        return 0;
    }
    if (len > 6 && !memcmp(name, "event.", 6)) {
        const char *f = name + 6;
        size_t fl = len - 6;
        int fi = dg_field_lookup(f, fl);
        if (fi >= 0) {
            name = f;
            len = fl;
        } else {
            if (memchr(f, '.', fl)) {
                snprintf(err, errsz, "'%s': only top-level event fields can be read", want);
                return -1;
            }
            i = add_extra(rs, f, fl, err, errsz);
            if (i < 0)
                return -1;
            out->kind = DG_REF_EXTRA;
            out->index = i;
            out->type = DG_T_ANY;
            return 0;
        }
    }
    i = find_window(rs, name, len);
    if (i >= 0) {
        struct dg_window *w = &rs->windows[i];
        if (!c->allow_windows) {
            snprintf(err, errsz, "'%s' is a window; a window's filter and keys may only use event fields",
                     want);
            return -1;
        }
        for (int k = 0; k < w->nkeys; k++) {
            if (w->keys[k].kind != DG_REF_FIELD)
                continue;
            int t = field_absent_on(w->keys[k].index, c->on_mask);
            if (t >= 0) {
                snprintf(err, errsz, "window '%s' is keyed by '%s', which %s events do not have",
                         want, dg_fields[w->keys[k].index].name, dg_event_type_name(t));
                return -1;
            }
        }
        w->used = 1;
        for (int t = 0; t < DG_EV_NTYPES; t++)
            if (c->on_mask & DG_EV_BIT(t))
                rs->reads[t][i] = 1;
        out->kind = DG_REF_WINDOW;
        out->index = i;
        out->type = w->type;
        return 0;
    }
    i = dg_field_lookup(name, len);
    if (i >= 0) {
        int t = field_absent_on(i, c->on_mask);
        if (t >= 0) {
            type_names(c->on_mask, types, sizeof types);
            snprintf(err, errsz,
                     "field '%s' does not exist on %s events (this runs on %s; for a field outside "
                     "the contract write event.%s)",
                     want, dg_event_type_name(t), types, want);
            return -1;
        }
        out->kind = DG_REF_FIELD;
        out->index = i;
        out->type = dg_field_type(i);
        return 0;
    }
    if (find_list(rs, name, len) >= 0) {
        snprintf(err, errsz, "list '%s' can only follow 'in' or 'not in'", want);
        return -1;
    }
    suggest_name(c, want, hint, sizeof hint);
    snprintf(err, errsz, "unknown field or window '%s'%s", want, hint);
    return -1;
}

static int inline_list(void *vctx, const dg_value *items, size_t n, char *err, size_t errsz)
{
    struct cctx *c = vctx;
    struct dg_ruleset *rs = c->rs;
    rs->lists = dg_xrealloc(rs->lists, (rs->nlists + 1) * sizeof(*rs->lists));
    memset(&rs->lists[rs->nlists], 0, sizeof(rs->lists[0]));
    rs->lists[rs->nlists].list = dg_list_new(items, n);
    rs->lists[rs->nlists].used = 1;
    return (int)rs->nlists++;
}

static dg_expr *compile_expr(struct cctx *c, const struct dg_ynode *n, dg_type want,
                             const char *what)
{
    struct dg_expr_env env = {resolve, inline_list, c};
    char msg[400];
    size_t off = 0;
    dg_expr *e;

    if (!is_scalar(c, n, what))
        return NULL;
    msg[0] = '\0';
    e = dg_expr_compile(n->text, n->len, want, &env, &off, msg, sizeof msg);
    if (!e) {
        struct dg_srcpos p = pos_in_scalar(c, n, off);
        dg_diag_add(c->diag, 1, &p, "%s: %s", what, msg);
    }
    return e;
}

/* ------------------------------------------------------------------ */
/* pieces                                                             */

static uint32_t parse_on(struct cctx *c, const struct dg_ynode *n, const char *where)
{
    uint32_t mask = 0;
    const struct dg_ynode *const *items = (const struct dg_ynode *const *)&n;
    size_t cnt = 1;
    static const char *const names[DG_EV_NTYPES] = {"withdrawal.requested", "account.security",
                                                    "wallet.outflow", "wallet.balance"};
    if (n->kind == DG_Y_SEQ) {
        items = (const struct dg_ynode *const *)n->kids;
        cnt = n->n;
        if (!cnt) {
            err_at(c, n, "%s: 'on' lists no event type", where);
            return 0;
        }
    } else if (n->kind != DG_Y_SCALAR) {
        err_at(c, n, "%s: 'on' must be an event type or a list of them", where);
        return 0;
    }
    for (size_t i = 0; i < cnt; i++) {
        const struct dg_ynode *it = items[i];
        if (it->kind != DG_Y_SCALAR) {
            err_at(c, it, "%s: 'on' must be an event type or a list of them", where);
            return 0;
        }
        int t = dg_event_type_lookup(it->text, it->len);
        if (t < 0) {
            const char *s = suggest(it->text, names, DG_EV_NTYPES);
            err_at(c, it, "%s: unknown event type '%s'%s%s%s", where, it->text,
                   s ? " (did you mean '" : " (one of withdrawal.requested, account.security, wallet.outflow, wallet.balance",
                   s ? s : "", s ? "'?)" : ")");
            return 0;
        }
        mask |= DG_EV_BIT(t);
    }
    return mask;
}

static int parse_duration_node(struct cctx *c, const struct dg_ynode *n, const char *what,
                               int64_t *ms)
{
    if (!is_scalar(c, n, what))
        return -1;
    if (dg_duration_parse(n->text, n->len, ms) != 0 || *ms <= 0) {
        err_at(c, n, "%s: bad duration '%s' (write e.g. 90s, 10m, 24h, 7d)", what, n->text);
        return -1;
    }
    return 0;
}

static void compile_lists(struct cctx *c, const struct dg_ynode *m, const char *dir)
{
    struct dg_ruleset *rs = c->rs;
    if (m->kind != DG_Y_MAP) {
        err_at(c, m, "'lists' must map list names to lists of values");
        return;
    }
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        const struct dg_ynode *k = m->kids[i], *v = m->kids[i + 1];
        dg_value *items = NULL;
        char **owned = NULL;
        size_t n = 0;
        int type = DG_T_NONE, bad = 0;
        char *filebuf = NULL;

        if (k->kind != DG_Y_SCALAR || !valid_name(k->text, k->len)) {
            err_at(c, k, "bad list name (letters, digits, '_' and '-', starting with a letter)");
            continue;
        }
        if (find_list(rs, k->text, k->len) >= 0) {
            err_at(c, k, "list '%s' is defined twice", k->text);
            continue;
        }
        if (dg_field_lookup(k->text, k->len) >= 0) {
            err_at(c, k, "list '%s' has the name of an event field", k->text);
            continue;
        }
        if (rs->nlists >= MAX_NAMES) {
            err_at(c, k, "more than %d lists", MAX_NAMES);
            return;
        }
        if (v->kind == DG_Y_MAP) {
            /* {file: path}: one value per line, '#' comments, relative to
             * the rule file; for address books too long to inline */
            static const char *const lk[] = {"file"};
            const struct dg_ynode *f = get(v, "file");
            check_keys(c, v, lk, 1, "list");
            if (!f || !is_scalar(c, f, "list file")) {
                err_at(c, v, "list '%s': give the values as [..] or as {file: PATH}", k->text);
                continue;
            }
            char path[4096];
            if (f->text[0] == '/' || !dir)
                snprintf(path, sizeof path, "%s", f->text);
            else
                snprintf(path, sizeof path, "%s/%s", dir, f->text);
            struct stat lst;
            if (stat(path, &lst) != 0) {
                err_at(c, f, "list '%s': cannot read '%s': %s", k->text, path, strerror(errno));
                continue;
            }
            /* a FIFO or /dev/zero would hang or eat memory: files only */
            if (!S_ISREG(lst.st_mode) || lst.st_size > MAX_LIST_FILE_BYTES) {
                err_at(c, f, "list '%s': '%s' is not a regular file of at most %d MiB", k->text, path,
                       MAX_LIST_FILE_BYTES >> 20);
                continue;
            }
            FILE *fp = fopen(path, "rb");
            if (!fp) {
                err_at(c, f, "list '%s': cannot read '%s': %s", k->text, path, strerror(errno));
                continue;
            }
            dg_buf fb = {0};
            char chunk[65536];
            size_t got;
            while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
                dg_buf_append(&fb, chunk, got);
            fclose(fp);
            filebuf = fb.data;
            for (char *line = filebuf; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                    *nl = '\0';
                char *hash = strchr(line, '#');
                if (hash)
                    *hash = '\0';
                size_t ll = strlen(line);
                while (ll && (line[ll - 1] == ' ' || line[ll - 1] == '\t' || line[ll - 1] == '\r'))
                    line[--ll] = '\0';
                while (*line == ' ' || *line == '\t')
                    line++, ll--;
                if (ll) {
                    if (n >= MAX_LIST_FILE_ITEMS) {
                        err_at(c, f, "list '%s': more than %d values", k->text, MAX_LIST_FILE_ITEMS);
                        bad = 1;
                        break;
                    }
                    items = dg_xrealloc(items, (n + 1) * sizeof(*items));
                    items[n++] = dg_str(line, ll);
                }
                line = nl ? nl + 1 : NULL;
            }
        } else if (v->kind == DG_Y_SEQ) {
            items = dg_xcalloc(v->n, sizeof(*items));
            owned = dg_xcalloc(v->n, sizeof(char *));
            for (size_t j = 0; j < v->n; j++) {
                const struct dg_ynode *it = v->kids[j];
                if (it->kind != DG_Y_SCALAR) {
                    err_at(c, it, "list '%s': values must be strings or numbers", k->text);
                    bad = 1;
                    break;
                }
                char *end = NULL;
                double d = it->plain && it->len ? strtod(it->text, &end) : 0;
                int is_num = it->plain && it->len && end && *end == '\0';
                int t = is_num ? DG_T_NUM : DG_T_STR;
                if (type != DG_T_NONE && t != type) {
                    err_at(c, it, "list '%s' mixes strings and numbers (quote numbers meant as strings)",
                           k->text);
                    bad = 1;
                    break;
                }
                type = t;
                items[n++] = is_num ? dg_num(d) : dg_str(it->text, it->len);
            }
        } else {
            err_at(c, v, "list '%s': give the values as [..] or as {file: PATH}", k->text);
            continue;
        }
        if (!bad) {
            rs->lists = dg_xrealloc(rs->lists, (rs->nlists + 1) * sizeof(*rs->lists));
            struct dg_named_list *l = &rs->lists[rs->nlists++];
            memset(l, 0, sizeof(*l));
            l->name = dg_xstrndup(k->text, k->len);
            l->pos = pos_of(c, k);
            l->list = dg_list_new(items, n);
        }
        free(items);
        free(owned);
        free(filebuf);
    }
}

static const char *ref_name(const struct dg_ruleset *rs, const struct dg_ref *r)
{
    if (r->kind == DG_REF_EXTRA)
        return rs->extra[r->index];
    if (r->kind == DG_REF_FIELD)
        return dg_fields[r->index].name;
    return "";
}

/* The window's identity in a backend: its name and a digest of everything
 * that shapes its state, with fields by name (event.* indexes differ from
 * one rule set to the next). An unchanged window keeps its state across a
 * reload; a changed one starts afresh. */
static void window_state_id(struct cctx *c, struct dg_window *w, const struct dg_ynode *def)
{
    dg_buf b = {0}, ks = {0};
    char hex[33];
    const struct dg_ynode *wh = get(def, "when");

    for (int k = 0; k < w->nkeys; k++)
        dg_buf_printf(&ks, "%s%s,", w->keys[k].kind == DG_REF_EXTRA ? "event." : "",
                      ref_name(c->rs, &w->keys[k]));
    w->keyset_hash = dg_hash64(ks.data, ks.len, 0x6b6579);
    dg_buf_printf(&b, "%u|%s|%s|%s|%s%s|%lld|%lld", w->on_mask,
                  wh && wh->kind == DG_Y_SCALAR ? wh->text : "", ks.data, w->agg->name,
                  w->field.kind == DG_REF_EXTRA ? "event." : "", ref_name(c->rs, &w->field),
                  (long long)w->over_ms, (long long)w->step_ms);
    dg_hash128_hex(b.data, b.len, hex);
    hex[12] = '\0';
    b.len = 0;
    dg_buf_printf(&b, "%s:%s", w->name, hex);
    w->state_id = b.data;
    w->state_hash = dg_hash64(b.data, b.len, 0);
    dg_buf_free(&ks);
}

/* key: a field name or a list of them; event.NAME allowed */
static int compile_keys(struct cctx *c, struct dg_window *w, const struct dg_ynode *n)
{
    const struct dg_ynode *const *items = (const struct dg_ynode *const *)&n;
    size_t cnt = 1;
    char msg[300];

    if (n->kind == DG_Y_SEQ) {
        items = (const struct dg_ynode *const *)n->kids;
        cnt = n->n;
    }
    if (cnt == 0 || cnt > DG_MAX_KEYS) {
        err_at(c, n, "window '%s': 'key' needs 1 to %d fields", w->name, DG_MAX_KEYS);
        return -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        const struct dg_ynode *it = items[i];
        if (!is_scalar(c, it, "key"))
            return -1;
        msg[0] = '\0';
        if (resolve(c, it->text, it->len, 0, &w->keys[i], msg, sizeof msg) != 0) {
            err_at(c, it, "window '%s': key: %s", w->name, msg);
            return -1;
        }
        if (w->keys[i].type == DG_T_BOOL || w->keys[i].type == DG_T_DUR) {
            err_at(c, it, "window '%s': key '%s' is a %s; keys are strings, numbers or times",
                   w->name, it->text, dg_type_name(w->keys[i].type));
            return -1;
        }
    }
    w->nkeys = (int)cnt;
    return 0;
}

static int compile_agg(struct cctx *c, struct dg_window *w, const struct dg_ynode *n)
{
    char name[64], msg[200];
    const char *open, *text;
    size_t nl;

    if (!is_scalar(c, n, "agg"))
        return -1;
    text = n->text;
    open = strchr(text, '(');
    nl = open ? (size_t)(open - text) : n->len;
    while (nl && text[nl - 1] == ' ')
        nl--;
    snprintf(name, sizeof name, "%.*s", (int)(nl > 60 ? 60 : nl), text);
    w->agg = dg_agg_lookup(text, nl);
    if (!w->agg) {
        const char *cands[32];
        size_t k;
        for (k = 0; k < dg_naggs && k < 32; k++)
            cands[k] = dg_aggs[k].name;
        const char *s = suggest(name, cands, k);
        err_at(c, n, "window '%s': unknown aggregate '%s'%s%s%s", w->name, name,
               s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
        return -1;
    }
    if (open) {
        const char *close = strrchr(text, ')');
        const char *a = open + 1;
        if (!close || close < a || close[1] != '\0') {
            err_at(c, n, "window '%s': write the aggregate as %s(field)", w->name, w->agg->name);
            return -1;
        }
        while (*a == ' ')
            a++;
        size_t al = (size_t)(close - a);
        while (al && a[al - 1] == ' ')
            al--;
        if (al) {
            if (w->agg->field == 0) {
                err_at(c, n, "window '%s': %s takes no field", w->name, w->agg->name);
                return -1;
            }
            msg[0] = '\0';
            if (resolve(c, a, al, 0, &w->field, msg, sizeof msg) != 0) {
                struct dg_srcpos p = pos_in_scalar(c, n, (size_t)(a - text));
                dg_diag_add(c->diag, 1, &p, "window '%s': %s", w->name, msg);
                return -1;
            }
        }
    }
    if (w->agg->field == 1 && !w->field.kind) {
        err_at(c, n, "window '%s': %s needs a field, e.g. %s(amount_usd)", w->name, w->agg->name,
               w->agg->name);
        return -1;
    }
    msg[0] = '\0';
    w->type = w->agg->type(w->field.kind ? w->field.type : DG_T_NONE, msg, sizeof msg);
    if (w->type == DG_T_NONE) {
        err_at(c, n, "window '%s': %s", w->name, msg);
        return -1;
    }
    return 0;
}

/* Cut `over` into steps: `precision` when given, else over/60 or the
 * nearest divisor below 60 buckets so that every bucket is equal. */
static int choose_step(struct cctx *c, struct dg_window *w, const struct dg_ynode *prec)
{
    if (prec) {
        if (parse_duration_node(c, prec, "precision", &w->step_ms))
            return -1;
        if (w->over_ms % w->step_ms) {
            err_at(c, prec, "window '%s': precision must divide 'over' evenly", w->name);
            return -1;
        }
        if (w->over_ms / w->step_ms > DG_MAX_BUCKETS) {
            err_at(c, prec, "window '%s': precision %s gives %lld buckets; at most %d", w->name,
                   prec->text, (long long)(w->over_ms / w->step_ms), DG_MAX_BUCKETS);
            return -1;
        }
    } else {
        int64_t b = DG_DEFAULT_BUCKETS;
        while (b > 1 && w->over_ms % b)
            b--;
        w->step_ms = w->over_ms / b;
    }
    w->nbuckets = w->over_ms / w->step_ms;
    return 0;
}

static void compile_window(struct cctx *c, const struct dg_ynode *k, const struct dg_ynode *def)
{
    static const char *const keys[] = {"on", "when", "key", "over", "agg", "precision",
                                       "description"};
    struct dg_ruleset *rs = c->rs;
    struct dg_window *w;
    const struct dg_ynode *n;

    if (k->kind != DG_Y_SCALAR || !valid_name(k->text, k->len)) {
        err_at(c, k, "bad window name (letters, digits, '_' and '-', starting with a letter)");
        return;
    }
    if (def->kind != DG_Y_MAP) {
        err_at(c, def, "window '%s' must be a mapping {on, key, over, agg}", k->text);
        return;
    }
    w = &rs->windows[find_window(rs, k->text, k->len)];
    check_keys(c, def, keys, DG_ARRAY_LEN(keys), "window");
    c->allow_windows = 0;
    c->cur_rule = -1;
    n = get(def, "on");
    if (!n) {
        err_at(c, k, "window '%s': missing 'on' (the event type it counts)", w->name);
        return;
    }
    w->on_mask = parse_on(c, n, "window");
    if (!w->on_mask)
        return;
    c->on_mask = w->on_mask;
    n = get(def, "key");
    if (!n) {
        err_at(c, k, "window '%s': missing 'key' (the field or fields it is kept per)", w->name);
        return;
    }
    if (compile_keys(c, w, n))
        return;
    n = get(def, "over");
    if (!n) {
        err_at(c, k, "window '%s': missing 'over' (its length, e.g. 30m)", w->name);
        return;
    }
    if (parse_duration_node(c, n, "over", &w->over_ms))
        return;
    if (choose_step(c, w, get(def, "precision")))
        return;
    n = get(def, "agg");
    if (!n) {
        err_at(c, k, "window '%s': missing 'agg' (count, sum(field), distinct(field), ...)", w->name);
        return;
    }
    if (compile_agg(c, w, n))
        return;
    n = get(def, "when");
    if (n) {
        w->filter = compile_expr(c, n, DG_T_BOOL, "when");
        if (!w->filter)
            return;
    }
    window_state_id(c, w, def);
}

/* A reason: literal text with {expression} placeholders; {{ and }} are
 * literal braces. Each placeholder is compiled like a condition (so names
 * are checked now, not when the rule first fires). */
static int compile_template(struct cctx *c, struct dg_template *t, const struct dg_ynode *n)
{
    const char *s = n->text;
    size_t i = 0, lit = 0;
    dg_buf text = {0};
    char msg[300];

    while (i <= n->len) {
        if (i == n->len || s[i] == '{' || s[i] == '}') {
            if (i < n->len && i + 1 < n->len && s[i + 1] == s[i]) { /* {{ or }} */
                dg_buf_append(&text, s + lit, i + 1 - lit);
                i += 2;
                lit = i;
                continue;
            }
            dg_buf_append(&text, s + lit, i - lit);
            if (text.len) {
                t->parts = dg_xrealloc(t->parts, (t->nparts + 1) * sizeof(*t->parts));
                memset(&t->parts[t->nparts], 0, sizeof(t->parts[0]));
                t->parts[t->nparts].text = text.data;
                t->parts[t->nparts].len = text.len;
                t->nparts++;
                memset(&text, 0, sizeof text);
            }
            if (i == n->len)
                break;
            if (s[i] == '}') {
                struct dg_srcpos p = pos_in_scalar(c, n, i);
                dg_diag_add(c->diag, 1, &p, "reason: unmatched '}' (write '}}' for a brace)");
                goto out_fail;
            }
            const char *close = memchr(s + i, '}', n->len - i);
            if (!close) {
                struct dg_srcpos p = pos_in_scalar(c, n, i);
                dg_diag_add(c->diag, 1, &p, "reason: unclosed '{' (write '{{' for a brace)");
                goto out_fail;
            }
            const char *name = s + i + 1;
            size_t nl = (size_t)(close - name);
            while (nl && *name == ' ')
                name++, nl--;
            while (nl && name[nl - 1] == ' ')
                nl--;
            t->parts = dg_xrealloc(t->parts, (t->nparts + 1) * sizeof(*t->parts));
            memset(&t->parts[t->nparts], 0, sizeof(t->parts[0]));
            msg[0] = '\0';
            struct dg_expr_env env = {resolve, inline_list, c};
            size_t off = 0;
            t->parts[t->nparts].expr = dg_expr_compile(name, nl, DG_T_NONE, &env, &off, msg, sizeof msg);
            if (!t->parts[t->nparts].expr) {
                struct dg_srcpos p = pos_in_scalar(c, n, (size_t)(name - s) + off);
                dg_diag_add(c->diag, 1, &p, "reason: %s", msg);
                goto out_fail;
            }
            t->nparts++;
            i = (size_t)(close - s) + 1;
            lit = i;
            continue;
        }
        i++;
    }
    dg_buf_free(&text);
    return 0;
out_fail:
    dg_buf_free(&text);
    return -1;
}

static void compile_rule(struct cctx *c, const struct dg_ynode *def, size_t idx)
{
    static const char *const keys[] = {"id", "description", "on", "when", "action", "mode",
                                       "freeze", "reason"};
    struct dg_ruleset *rs = c->rs;
    struct dg_rule *r = &rs->rules[idx];
    const struct dg_ynode *n, *idn;

    if (def->kind != DG_Y_MAP) {
        err_at(c, def, "a rule must be a mapping {id, on, when, action, ...}");
        return;
    }
    check_keys(c, def, keys, DG_ARRAY_LEN(keys), "rule");
    idn = get(def, "id");
    if (!idn) {
        err_at(c, def, "rule without an 'id'");
        return;
    }
    if (!is_scalar(c, idn, "id"))
        return;
    if (!valid_name(idn->text, idn->len)) {
        err_at(c, idn, "bad rule id '%s' (letters, digits, '_' and '-', starting with a letter; at most %d)",
               idn->text, MAX_NAME_LEN);
        return;
    }
    for (size_t i = 0; i < idx; i++)
        if (rs->rules[i].id && !strcmp(rs->rules[i].id, idn->text)) {
            err_at(c, idn, "duplicate rule id '%s' (first at %s:%d:%d)", idn->text,
                   rs->rules[i].pos.file, rs->rules[i].pos.line, rs->rules[i].pos.col);
            return;
        }
    r->id = dg_xstrdup(idn->text);
    r->pos = pos_of(c, idn);
    if ((n = get(def, "description")) && is_scalar(c, n, "description"))
        r->description = dg_xstrdup(n->text);
    n = get(def, "on");
    if (!n) {
        err_at(c, idn, "rule '%s': missing 'on' (the event types it judges)", r->id);
        return;
    }
    r->on_mask = parse_on(c, n, "rule");
    if (!r->on_mask)
        return;
    c->on_mask = r->on_mask;
    c->allow_windows = 1;
    c->cur_rule = (int)idx;

    n = get(def, "action");
    if (!n) {
        err_at(c, idn, "rule '%s': missing 'action' (allow, review, hold or freeze)", r->id);
        return;
    }
    if (!is_scalar(c, n, "action"))
        return;
    r->action = dg_action_lookup(n->text, n->len);
    if (r->action < 0) {
        err_at(c, n, "rule '%s': unknown action '%s' (allow, review, hold or freeze)", r->id, n->text);
        return;
    }
    r->mode = DG_ENFORCE;
    if ((n = get(def, "mode"))) {
        if (!is_scalar(c, n, "mode"))
            return;
        if (!strcmp(n->text, "shadow"))
            r->mode = DG_SHADOW;
        else if (strcmp(n->text, "enforce")) {
            err_at(c, n, "rule '%s': unknown mode '%s' (enforce or shadow)", r->id, n->text);
            return;
        }
    }
    n = get(def, "freeze");
    if (n) {
        const struct dg_ynode *const *items = (const struct dg_ynode *const *)&n;
        size_t cnt = 1;
        if (r->action != DG_FREEZE) {
            err_at(c, n, "rule '%s': 'freeze' goes with action: freeze", r->id);
            return;
        }
        if (n->kind == DG_Y_SEQ) {
            items = (const struct dg_ynode *const *)n->kids;
            cnt = n->n;
        }
        for (size_t i = 0; i < cnt; i++) {
            if (!is_scalar(c, items[i], "freeze scope"))
                return;
            int s = dg_scope_lookup(items[i]->text, items[i]->len);
            if (s < 0) {
                err_at(c, items[i], "rule '%s': unknown freeze scope '%s' (account, destination, wallet, asset or global)",
                       r->id, items[i]->text);
                return;
            }
            for (int t = 0; t < DG_EV_NTYPES; t++)
                if ((r->on_mask & DG_EV_BIT(t)) && dg_scope_field(s, t) < 0) {
                    err_at(c, items[i], "rule '%s': %s events have no %s to freeze", r->id,
                           dg_event_type_name(t), scope_names[s]);
                    return;
                }
            r->freeze |= 1u << s;
        }
        if (!r->freeze) {
            err_at(c, n, "rule '%s': 'freeze' lists no scope", r->id);
            return;
        }
    } else if (r->action == DG_FREEZE) {
        err_at(c, idn, "rule '%s': action freeze needs 'freeze: [scopes]' (account, destination, wallet, asset, global)",
               r->id);
        return;
    }
    n = get(def, "when");
    if (!n) {
        err_at(c, idn, "rule '%s': missing 'when' (write `when: true` for a rule that always matches)",
               r->id);
        return;
    }
    r->when = compile_expr(c, n, DG_T_BOOL, "when");
    if (!r->when)
        return;
    n = get(def, "reason");
    if (n) {
        if (is_scalar(c, n, "reason"))
            compile_template(c, &r->reason, n);
    } else {
        char buf[160];
        snprintf(buf, sizeof buf, "rule '%s' matched", r->id);
        r->reason.parts = dg_xcalloc(1, sizeof(*r->reason.parts));
        r->reason.parts[0].text = dg_xstrdup(buf);
        r->reason.parts[0].len = strlen(buf);
        r->reason.nparts = 1;
    }
}

/* ------------------------------------------------------------------ */
/* the set                                                            */

struct src {
    const char *file;  /* owned by rs */
    char *dir;
    struct dg_ynode *root;
};

static const char *const top_keys[] = {"version", "description", "lists", "windows", "rules",
                                       "reconciliation"};

/* reconciliation: {tolerance: 0.5%} - how far an outflow's amount may be
 * from the sum of the requests it pays, relative to that sum */
static void compile_reconciliation(struct cctx *c, const struct dg_ynode *n)
{
    static const char *const keys[] = {"tolerance"};
    if (n->kind != DG_Y_MAP) {
        err_at(c, n, "'reconciliation' must be a mapping, e.g. {tolerance: 0.5%%}");
        return;
    }
    check_keys(c, n, keys, DG_ARRAY_LEN(keys), "reconciliation");
    const struct dg_ynode *t = get(n, "tolerance");
    if (!t || !is_scalar(c, t, "tolerance"))
        return;
    char *end;
    double v = strtod(t->text, &end);
    if (end != t->text && *end == '%' && end[1] == '\0')
        v /= 100;
    else if (end == t->text || *end)
        v = -1;
    if (!(v >= 0 && v <= 0.5)) {
        err_at(c, t, "reconciliation: tolerance must be a share from 0%% to 50%% (e.g. 0.5%%), not '%s'",
               t->text);
        return;
    }
    c->rs->outflow_tolerance = v;
}

static struct dg_ruleset *compile_set(struct src *srcs, size_t nsrc, const char *text_digest,
                                      struct dg_diag *diag)
{
    struct dg_ruleset *rs = dg_xcalloc(1, sizeof(*rs));
    struct cctx c = {0};
    size_t nw = 0, nr = 0;

    c.rs = rs;
    c.diag = diag;
    c.cur_rule = -1;
    snprintf(rs->version, sizeof rs->version, "rv1-%s", text_digest);
    rs->outflow_tolerance = DG_DEFAULT_OUTFLOW_TOLERANCE;

    /* pass 0: shape of each file, and count windows and rules */
    for (size_t f = 0; f < nsrc; f++) {
        struct dg_ynode *root = srcs[f].root;
        c.file = srcs[f].file;
        if (root->kind != DG_Y_MAP) {
            err_at(&c, root, "a rule file is a mapping with 'lists', 'windows' and 'rules'");
            srcs[f].root = NULL;
            dg_ynode_free(root);
            continue;
        }
        check_keys(&c, root, top_keys, DG_ARRAY_LEN(top_keys), "rule file");
        const struct dg_ynode *v = get(root, "version");
        if (v && (v->kind != DG_Y_SCALAR || strcmp(v->text, "1")))
            err_at(&c, v, "unsupported rule file version (this engine reads version 1)");
        const struct dg_ynode *w = get(root, "windows");
        if (w && w->kind == DG_Y_MAP)
            nw += w->n / 2;
        else if (w && !(w->kind == DG_Y_SCALAR && w->len == 0))
            err_at(&c, w, "'windows' must map window names to definitions");
        const struct dg_ynode *r = get(root, "rules");
        if (r && r->kind == DG_Y_SEQ)
            nr += r->n;
        else if (r && !(r->kind == DG_Y_SCALAR && r->len == 0))
            err_at(&c, r, "'rules' must be a list of rules");
    }
    if (nw > MAX_NAMES || nr > MAX_NAMES) {
        struct dg_srcpos p = {srcs[0].file, 1, 1};
        dg_diag_add(diag, 1, &p, "a rule set holds at most %d windows and %d rules", MAX_NAMES,
                    MAX_NAMES);
        goto out;
    }
    rs->windows = dg_xcalloc(nw ? nw : 1, sizeof(*rs->windows));
    rs->rules = dg_xcalloc(nr ? nr : 1, sizeof(*rs->rules));
    for (int t = 0; t < DG_EV_NTYPES; t++)
        rs->reads[t] = dg_xcalloc(nw ? nw : 1, 1);

    /* pass 1: lists; window names (so expressions can refer forward) */
    for (size_t f = 0; f < nsrc; f++) {
        if (!srcs[f].root)
            continue;
        c.file = srcs[f].file;
        const struct dg_ynode *rc = get(srcs[f].root, "reconciliation");
        if (rc)
            compile_reconciliation(&c, rc);
        const struct dg_ynode *l = get(srcs[f].root, "lists");
        if (l && !(l->kind == DG_Y_SCALAR && l->len == 0))
            compile_lists(&c, l, srcs[f].dir);
        const struct dg_ynode *w = get(srcs[f].root, "windows");
        if (!w || w->kind != DG_Y_MAP)
            continue;
        for (size_t i = 0; i + 1 < w->n; i += 2) {
            const struct dg_ynode *k = w->kids[i];
            if (k->kind != DG_Y_SCALAR || !valid_name(k->text, k->len))
                continue; /* reported in pass 2 */
            if (find_window(rs, k->text, k->len) >= 0) {
                err_at(&c, k, "window '%s' is defined twice", k->text);
                continue;
            }
            if (dg_field_lookup(k->text, k->len) >= 0 || find_list(rs, k->text, k->len) >= 0) {
                err_at(&c, k, "window '%s' has the name of an event field or list", k->text);
                continue;
            }
            struct dg_window *win = &rs->windows[rs->nwindows++];
            win->name = dg_xstrndup(k->text, k->len);
            win->pos = pos_of(&c, k);
        }
    }
    /* pass 2: window definitions */
    for (size_t f = 0; f < nsrc; f++) {
        if (!srcs[f].root)
            continue;
        c.file = srcs[f].file;
        const struct dg_ynode *w = get(srcs[f].root, "windows");
        if (!w || w->kind != DG_Y_MAP)
            continue;
        for (size_t i = 0; i + 1 < w->n; i += 2) {
            const struct dg_ynode *k = w->kids[i];
            if (k->kind != DG_Y_SCALAR || !valid_name(k->text, k->len)) {
                err_at(&c, k, "bad window name (letters, digits, '_' and '-', starting with a letter)");
                continue;
            }
            int wi = find_window(rs, k->text, k->len);
            if (wi < 0 || rs->windows[wi].pos.line != k->line || rs->windows[wi].pos.file != c.file)
                continue; /* a duplicate, already reported */
            compile_window(&c, k, w->kids[i + 1]);
        }
    }
    /* pass 3: rules */
    for (size_t f = 0; f < nsrc; f++) {
        if (!srcs[f].root)
            continue;
        c.file = srcs[f].file;
        const struct dg_ynode *r = get(srcs[f].root, "rules");
        if (!r || r->kind != DG_Y_SEQ)
            continue;
        for (size_t i = 0; i < r->n; i++)
            compile_rule(&c, r->kids[i], rs->nrules++);
    }
    if (diag->errors)
        goto out;

    /* warnings: what is defined and never used */
    for (size_t i = 0; i < rs->nwindows; i++)
        if (!rs->windows[i].used)
            dg_diag_add(diag, 0, &rs->windows[i].pos, "window '%s' is never used by a rule",
                        rs->windows[i].name);
    for (size_t i = 0; i < rs->nlists; i++)
        if (rs->lists[i].name && !rs->lists[i].used)
            dg_diag_add(diag, 0, &rs->lists[i].pos, "list '%s' is never used", rs->lists[i].name);
    if (rs->nrules == 0) {
        struct dg_srcpos p = {srcs[0].file, 1, 1};
        dg_diag_add(diag, 0, &p, "the rule set has no rules: every withdrawal will be allowed");
    }

    /* plans: per type, the windows it touches */
    for (int t = 0; t < DG_EV_NTYPES; t++) {
        rs->touch[t] = dg_xcalloc(rs->nwindows ? rs->nwindows : 1, sizeof(uint16_t));
        for (size_t w = 0; w < rs->nwindows; w++)
            if ((rs->windows[w].on_mask & DG_EV_BIT(t)) || rs->reads[t][w])
                rs->touch[t][rs->ntouch[t]++] = (uint16_t)w;
        for (size_t r = 0; r < rs->nrules; r++)
            if (rs->rules[r].on_mask & DG_EV_BIT(t))
                rs->has_rules[t] = 1;
    }
    rs->listv = dg_xcalloc(rs->nlists ? rs->nlists : 1, sizeof(*rs->listv));
    for (size_t i = 0; i < rs->nlists; i++)
        rs->listv[i] = rs->lists[i].list;
    return rs;
out:
    dg_ruleset_free(rs);
    return NULL;
}

void dg_ruleset_free(struct dg_ruleset *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->nfiles; i++)
        free(rs->file_names[i]);
    free(rs->file_names);
    for (size_t i = 0; i < rs->nlists; i++) {
        free(rs->lists[i].name);
        dg_list_free(rs->lists[i].list);
    }
    free(rs->lists);
    free(rs->listv);
    for (size_t i = 0; i < rs->nwindows; i++) {
        free(rs->windows[i].name);
        free(rs->windows[i].state_id);
        dg_expr_free(rs->windows[i].filter);
    }
    free(rs->windows);
    for (size_t i = 0; i < rs->nrules; i++) {
        struct dg_rule *r = &rs->rules[i];
        free(r->id);
        free(r->description);
        dg_expr_free(r->when);
        for (size_t j = 0; j < r->reason.nparts; j++) {
            free(r->reason.parts[j].text);
            dg_expr_free(r->reason.parts[j].expr);
        }
        free(r->reason.parts);
    }
    free(rs->rules);
    for (size_t i = 0; i < rs->nextra; i++)
        free(rs->extra[i]);
    free(rs->extra);
    for (int t = 0; t < DG_EV_NTYPES; t++) {
        free(rs->touch[t]);
        free(rs->reads[t]);
    }
    free(rs);
}

/* ------------------------------------------------------------------ */
/* loading files                                                      */

static int read_file(const char *path, dg_buf *out, struct dg_diag *diag)
{
    FILE *fp = fopen(path, "rb");
    char chunk[65536];
    size_t n;

    if (!fp) {
        struct dg_srcpos p = {path, 1, 1};
        dg_diag_add(diag, 1, &p, "cannot read: %s", strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        dg_buf_append(out, chunk, n);
    fclose(fp);
    if (!out->data)
        dg_buf_reserve(out, 1);
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expand directories to their rule files, sorted; keep files as given. */
static char **expand_paths(const char *const *paths, size_t n, size_t *out_n, struct dg_diag *diag)
{
    char **out = NULL;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(paths[i]);
            struct dirent *de;
            size_t first = cnt;
            if (!d) {
                struct dg_srcpos p = {paths[i], 1, 1};
                dg_diag_add(diag, 1, &p, "cannot open directory: %s", strerror(errno));
                continue;
            }
            while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || !(ends_with(de->d_name, ".yaml") || ends_with(de->d_name, ".yml")))
                    continue;
                if (ends_with(de->d_name, ".test.yaml") || ends_with(de->d_name, ".test.yml"))
                    continue;
                size_t l = strlen(paths[i]) + strlen(de->d_name) + 2;
                out = dg_xrealloc(out, (cnt + 1) * sizeof(char *));
                out[cnt] = dg_xmalloc(l);
                snprintf(out[cnt], l, "%s%s%s", paths[i],
                         ends_with(paths[i], "/") ? "" : "/", de->d_name);
                cnt++;
            }
            closedir(d);
            qsort(out + first, cnt - first, sizeof(char *), cmp_str);
            if (cnt == first) {
                struct dg_srcpos p = {paths[i], 1, 1};
                dg_diag_add(diag, 1, &p, "no rule files (*.yaml) in this directory");
            }
        } else {
            out = dg_xrealloc(out, (cnt + 1) * sizeof(char *));
            out[cnt++] = dg_xstrdup(paths[i]);
        }
    }
    *out_n = cnt;
    return out;
}

static struct dg_ruleset *load(char **names, const dg_buf *texts, size_t n, struct dg_diag *diag)
{
    struct src *srcs = dg_xcalloc(n ? n : 1, sizeof(*srcs));
    struct dg_ruleset *rs = NULL;
    dg_buf all = {0};
    char hex[33];
    size_t ok = 0;

    for (size_t i = 0; i < n; i++) {
        srcs[i].file = names[i];
        const char *slash = strrchr(names[i], '/');
        srcs[i].dir = slash ? dg_xstrndup(names[i], (size_t)(slash - names[i])) : dg_xstrdup(".");
        if (dg_yaml_parse(names[i], texts[i].data, texts[i].len, &srcs[i].root, diag) == 0)
            ok++;
        dg_buf_append(&all, texts[i].data, texts[i].len);
        dg_buf_append(&all, "\0", 1);
    }
    dg_hash128_hex(all.data ? all.data : "", all.len, hex);
    if (ok == n && n > 0) {
        rs = compile_set(srcs, n, hex, diag);
        if (rs) {
            rs->file_names = names;
            rs->nfiles = n;
            names = NULL;
        }
    } else if (n == 0) {
        dg_diag_add(diag, 1, NULL, "no rule files given");
    }
    for (size_t i = 0; i < n; i++) {
        dg_ynode_free(srcs[i].root);
        free(srcs[i].dir);
        if (names)
            free(names[i]);
    }
    free(names);
    free(srcs);
    dg_buf_free(&all);
    return rs;
}

struct dg_ruleset *dg_ruleset_load(const char *const *paths, size_t n, struct dg_diag *diag)
{
    size_t cnt = 0;
    char **names = expand_paths(paths, n, &cnt, diag);
    dg_buf *texts = dg_xcalloc(cnt ? cnt : 1, sizeof(dg_buf));
    struct dg_ruleset *rs = NULL;
    int bad = diag->errors;

    for (size_t i = 0; i < cnt; i++)
        if (read_file(names[i], &texts[i], diag))
            bad = 1;
    if (!bad) {
        rs = load(names, texts, cnt, diag);
        names = NULL;
    }
    if (names) {
        for (size_t i = 0; i < cnt; i++)
            free(names[i]);
        free(names);
    }
    for (size_t i = 0; i < cnt; i++)
        dg_buf_free(&texts[i]);
    free(texts);
    return rs;
}

struct dg_ruleset *dg_ruleset_load_mem(const char *name, const char *buf, size_t len,
                                       struct dg_diag *diag)
{
    char **names = dg_xmalloc(sizeof(char *));
    dg_buf text = {0};
    names[0] = dg_xstrdup(name);
    dg_buf_append(&text, buf, len);
    if (!text.data)
        dg_buf_reserve(&text, 1);
    struct dg_ruleset *rs = load(names, &text, 1, diag);
    dg_buf_free(&text);
    return rs;
}
