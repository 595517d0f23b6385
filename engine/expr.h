/*
 * expr.h - the condition language. An expression string is parsed and
 * type-checked once, when a rule set is compiled, into a tree of nodes;
 * evaluating it walks the tree with no parsing and no allocation.
 *
 * Logic is three-valued: a comparison with a missing operand (absent field,
 * empty window) is unknown, `not unknown` is unknown, `false and unknown` is
 * false, `true or unknown` is true. A rule matches only when its condition is
 * true, so a missing value never matches by accident.
 */
#ifndef DG_EXPR_H
#define DG_EXPR_H

#include <stddef.h>
#include <stdint.h>
#include "value.h"

struct dg_event;
struct dg_list;

/* What a name in an expression refers to. */
enum dg_ref_kind {
    DG_REF_FIELD = 1, /* contract field: index is enum dg_field */
    DG_REF_EXTRA,     /* event.NAME: index into dg_event.extra */
    DG_REF_WINDOW,    /* index into the window value array */
    DG_REF_LIST       /* index into the list array (only after `in`) */
};

struct dg_ref {
    int kind;
    int index;
    dg_type type; /* DG_T_ANY for extra fields */
};

/* Name resolution is the compiler's business, not the parser's: it knows
 * the windows, lists and which event types a rule runs on. Return 0 and
 * fill *out, or -1 with a message in err ("unknown window 'x'..."). */
typedef int (*dg_resolve_fn)(void *ctx, const char *name, size_t len,
                             int after_in, struct dg_ref *out, char *err,
                             size_t errsz);
/* An inline list `x in ["a", "b"]`: the compiler stores it and returns its
 * index, or -1 with a message. items are literal values. */
typedef int (*dg_inline_list_fn)(void *ctx, const dg_value *items, size_t n,
                                 char *err, size_t errsz);

struct dg_expr_env {
    dg_resolve_fn resolve;
    dg_inline_list_fn inline_list;
    void *ctx;
};

typedef struct dg_expr dg_expr;

/* Compile src (len bytes). want is the type the caller needs (DG_T_BOOL for
 * conditions). Returns the tree, or NULL with *err_off (byte offset into src)
 * and a message in err. */
dg_expr *dg_expr_compile(const char *src, size_t len, dg_type want,
                         const struct dg_expr_env *env, size_t *err_off,
                         char *err, size_t errsz);
void dg_expr_free(dg_expr *e);
dg_type dg_expr_type(const dg_expr *e);

/* Everything an expression can read while it runs. */
struct dg_eval_ctx {
    const struct dg_event *ev;
    const dg_value *win;                /* window values, by window index */
    const struct dg_list *const *lists; /* by list index */
};

dg_value dg_expr_eval(const dg_expr *e, const struct dg_eval_ctx *cx);
/* 1 when e evaluates to boolean true; 0 for false or unknown. */
int dg_expr_true(const dg_expr *e, const struct dg_eval_ctx *cx);

/* Read a referenced value (field, extra field or window) for templates. */
dg_value dg_ref_value(const struct dg_ref *r, const struct dg_eval_ctx *cx);

/* ---- lists ---- */
struct dg_list;
/* Build a list from literal values (strings or numbers, all one type). */
struct dg_list *dg_list_new(const dg_value *items, size_t n);
void dg_list_free(struct dg_list *l);
int dg_list_contains(const struct dg_list *l, const dg_value *v);
dg_type dg_list_type(const struct dg_list *l);
size_t dg_list_len(const struct dg_list *l);

/* ---- functions: one row each in expr_funcs.c ---- */
struct dg_func_def {
    const char *name;
    int min_args, max_args;
    const char *signature; /* for docs and errors: "starts_with(string, string)" */
    /* Type check at compile time: return the result type, or DG_T_NONE and
     * a message. args[] are the static types (DG_T_ANY for extra fields). */
    dg_type (*check)(const dg_type *args, int n, char *err, size_t errsz);
    /* Evaluate; args are already evaluated. Must not allocate. */
    dg_value (*eval)(const dg_value *args, int n);
};

extern const struct dg_func_def dg_funcs[];
extern const size_t dg_nfuncs;
const struct dg_func_def *dg_func_lookup(const char *name, size_t len);

#endif
