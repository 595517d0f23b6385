/*
 * rules.h - a compiled, immutable rule set: lists, windows, rules, and the
 * per-event-type plans derived from them. Built by rules_load.c (YAML) and
 * rules_compile.c; read by detect.c and the window backends.
 */
#ifndef DG_RULES_H
#define DG_RULES_H

#include <stddef.h>
#include <stdint.h>
#include "event.h"
#include "expr.h"

#define DG_MAX_KEYS 4          /* key fields per window */
#define DG_MAX_BUCKETS 1000    /* buckets per window */
#define DG_DEFAULT_BUCKETS 60  /* a window is cut into `over / 60` steps */
#define DG_FP_SCALE 1000000.0  /* sums/max/min kept as integers of 1e-6 */

enum dg_action { DG_ALLOW = 0, DG_REVIEW, DG_HOLD, DG_FREEZE, DG_NACTIONS };
enum dg_mode { DG_ENFORCE = 0, DG_SHADOW };
enum dg_scope {
    DG_SCOPE_ACCOUNT = 0,
    DG_SCOPE_DESTINATION,
    DG_SCOPE_WALLET,
    DG_SCOPE_ASSET,
    DG_SCOPE_GLOBAL,
    DG_NSCOPES
};

const char *dg_action_name(int a);
int dg_action_lookup(const char *s, size_t len);
const char *dg_scope_name(int s);
int dg_scope_lookup(const char *s, size_t len);
/* the field that keys a scope on an event type, -1 when it has none;
 * DG_F_TYPE for global (key "*") */
int dg_scope_field(int scope, int type);

/* Where in which file something was written: for FILE:LINE:COL. */
struct dg_srcpos {
    const char *file; /* owned by the rule set */
    int line, col;    /* 1-based */
};

/* What a backend must keep for a window key so that an aggregate can be
 * computed. An aggregate asks for a set of these. */
enum {
    DG_NEED_COUNT = 1 << 0,
    DG_NEED_SUM = 1 << 1,
    DG_NEED_MAX = 1 << 2,
    DG_NEED_MIN = 1 << 3,
    DG_NEED_DISTINCT = 1 << 4,
    DG_NEED_LAST = 1 << 5
};

/* The raw figures a backend returns for one window key at one read. */
struct dg_win_raw {
    int64_t count;    /* events in the window */
    int64_t sum;      /* fixed point, DG_FP_SCALE */
    int64_t max, min; /* fixed point; meaningless when count == 0 */
    int64_t distinct; /* distinct values in the window */
    int64_t last_ts;  /* ts of the latest event; valid when has_last */
    dg_value last;    /* its value (strings copied by the backend) */
    int has_last;
    int self;         /* 1 when this very event was added to this key */
};

/* An aggregate: one row in the table in window.c. */
struct dg_agg_def {
    const char *name;
    int field;     /* 0: takes no field; 1: requires one; 2: optional */
    uint32_t need; /* DG_NEED_* */
    const char *doc;
    /* the result type given the field's type, or DG_T_NONE plus a message
     * when the field type does not fit (compile time) */
    dg_type (*type)(dg_type field, char *err, size_t errsz);
    /* the value from the raw figures; missing when the window is empty */
    dg_value (*value)(const struct dg_win_raw *raw);
};

extern const struct dg_agg_def dg_aggs[];
extern const size_t dg_naggs;
const struct dg_agg_def *dg_agg_lookup(const char *name, size_t len);

struct dg_window {
    char *name;
    char *state_id;      /* name + digest of the definition: backend key
                            prefix, so state survives a reload of an
                            unchanged window and never mixes with a changed one */
    uint64_t state_hash; /* dg_hash64 of state_id, for in-process maps */
    uint64_t keyset_hash;/* windows with equal ones are keyed by the same
                            fields: a backend may store them together */
    struct dg_srcpos pos;
    uint32_t on_mask;    /* DG_EV_BIT()s */
    dg_expr *filter;     /* NULL: every event of those types */
    int nkeys;
    struct dg_ref keys[DG_MAX_KEYS];
    const struct dg_agg_def *agg;
    struct dg_ref field; /* kind 0 when the aggregate takes none */
    dg_type type;        /* the aggregate's result type */
    int64_t over_ms, step_ms;
    int64_t nbuckets;    /* over / step */
    int used;
};

struct dg_template_part {
    char *text;      /* literal text, or NULL for a value */
    size_t len;
    dg_expr *expr;   /* the {expression} whose value is shown */
};

struct dg_template {
    struct dg_template_part *parts;
    size_t nparts;
};

struct dg_rule {
    char *id;
    char *description;
    struct dg_srcpos pos;
    uint32_t on_mask;
    dg_expr *when;
    int action;         /* enum dg_action */
    int mode;           /* enum dg_mode */
    uint32_t freeze;    /* bit per enum dg_scope */
    struct dg_template reason;
};

struct dg_named_list {
    char *name;
    struct dg_srcpos pos;
    struct dg_list *list;
    int used;
};

struct dg_ruleset {
    char **file_names;         /* owned; dg_srcpos.file points here */
    size_t nfiles;
    char version[40];          /* "rv1-" + 32 hex: digest of the rule files */
    struct dg_named_list *lists;
    size_t nlists;
    const struct dg_list **listv; /* lists[i].list, as expressions read them */
    struct dg_window *windows;
    size_t nwindows;
    struct dg_rule *rules;
    size_t nrules;
    char **extra;              /* event.NAME fields, in dg_event.extra order */
    size_t nextra;
    /* per event type, the windows it touches: adds to or reads from, in
     * window index order (the plan the backends execute) */
    uint16_t *touch[DG_EV_NTYPES];
    size_t ntouch[DG_EV_NTYPES];
    uint8_t *reads[DG_EV_NTYPES]; /* [window] 1 when rules of the type read it */
    int has_rules[DG_EV_NTYPES];
    double outflow_tolerance;  /* reconciliation: |paid - requested| / requested */
};

/* Diagnostics from loading and checking: errors and warnings, each with
 * FILE:LINE:COL. */
struct dg_diag {
    char **lines;
    size_t n, cap;
    int errors, warnings;
};

void dg_diag_add(struct dg_diag *d, int is_error, const struct dg_srcpos *p,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void dg_diag_free(struct dg_diag *d);

/* Load and compile rule files (several files form one set: names must be
 * unique across them). A directory loads every *.yaml / *.yml in it, sorted,
 * except *.test.yaml (rule tests). Returns NULL when any error was found;
 * every error and warning is in *diag either way. */
struct dg_ruleset *dg_ruleset_load(const char *const *paths, size_t n,
                                   struct dg_diag *diag);
/* The same from memory (for tests and fuzzing): name is used in messages. */
struct dg_ruleset *dg_ruleset_load_mem(const char *name, const char *buf,
                                       size_t len, struct dg_diag *diag);
void dg_ruleset_free(struct dg_ruleset *rs);

#endif
