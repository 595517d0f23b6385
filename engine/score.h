/*
 * score.h - `drainguard score`: how much of each labelled attack a rule pack
 * stopped, how fast, and how many honest customers it held up. An offline
 * tool beside the pipeline: it reads the generator's labels, the events and
 * the decisions `replay` wrote, and never touches engine state.
 *
 *   score_load.c    files -> struct dg_score (the only score file with cJSON
 *                   on input lines); the figures are computed here
 *   score_text.c    the plain-text report
 *   score_json.c    the JSON document, and --combine over several of them
 *   score_html.c    the self-contained HTML report with inline SVG charts
 */
#ifndef DG_SCORE_H
#define DG_SCORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hmap.h"
#include "util.h"

/* Hostile-input bounds: a label or decision file is data from elsewhere. */
#define DG_SCORE_MAX_LINE (1024 * 1024) /* bytes per JSON line */
#define DG_SCORE_MAX_NAME 128           /* scenario names, rule ids */
#define DG_SCORE_MAX_SCENARIOS 64
#define DG_SCORE_MAX_RULES 4096         /* distinct rule ids per table */
#define DG_SCORE_SIDES 2                /* the pack scored, and the baseline */

/* The targets. */
#define DG_SCORE_TARGET_STOPPED_PCT 90.0
#define DG_SCORE_TARGET_HOLDFREEZE_PCT 0.5
#define DG_SCORE_TARGET_REVIEW_PCT 2.0

enum dg_score_phase { DG_PHASE_PREPARE = 0, DG_PHASE_ATTACK, DG_PHASE_OUTFLOW };

/* rule id -> hits, in first-seen order (printed sorted by hits) */
struct dg_score_count {
    char *id;
    uint64_t n;
};
struct dg_score_counts {
    struct dg_score_count *v;
    size_t n, cap;
    dg_hmap idx;
};

/* One labelled (attack) event. */
struct dg_score_event {
    char *event_id;
    int scenario;                     /* index into dg_score.scn */
    int phase;                        /* enum dg_score_phase */
    int type;                         /* enum dg_event_type, -1 unknown */
    int has_usd, has_ts;
    double usd;                       /* amount_usd (events file only) */
    int64_t ts;                       /* epoch ms */
    uint64_t seq;                     /* input order (events file, else decisions) */
    signed char action[DG_SCORE_SIDES]; /* enum dg_action; -1: no decision */
};

/* One scenario's figures under one pack. */
struct dg_score_result {
    int detected;
    double usd_stopped, usd_before_stop; /* of the value events (below) */
    int has_stop;
    int64_t stop_after_ms;        /* first stop - attack start */
    int64_t stop_ts;
    uint64_t events_to_stop;      /* attack/outflow events up to and including the first stop */
    struct dg_score_counts rules, shadow;
};

struct dg_score_scenario {
    char *name;
    size_t *ev;                   /* indices into dg_score.ev, sorted by (ts, seq) */
    size_t nev, cap;
    int value_type;               /* the events whose USD is the attack's value:
                                     requests, or outflows when it has no requests */
    uint64_t attack_events;       /* attack + outflow phase */
    uint64_t value_events;
    double usd_total;
    int has_start;
    int64_t start_ts;             /* first attack-phase event */
    struct dg_score_result res[DG_SCORE_SIDES];
};

/* Legitimate traffic under one pack. */
struct dg_score_legit {
    uint64_t requests, review, holdfreeze;
    uint64_t review_collateral, holdfreeze_collateral; /* only behind a freeze an attack placed */
    uint64_t review_masked;       /* held behind an attack's freeze where the
                                     rules alone asked for a review: counted
                                     as reviews */
    uint64_t outflows, outflow_alarms;
    uint64_t outflow_excused;     /* a request it pays was itself stopped */
    uint64_t outflow_collateral;  /* held only behind a freeze an attack placed */
    uint64_t outflow_unchecked;   /* alarms whose event was not in --events */
    char **frozen_wallets;        /* wallets whose first freeze came from a legitimate event */
    size_t nfrozen;
    struct dg_score_counts fp_rules;  /* enforced rules behind legitimate non-allow decisions */
    struct dg_score_counts hits;      /* every rule that matched a legitimate event ("(shadow)" suffixed) */
};

struct dg_score {
    int nsides;                   /* 1, or 2 with a baseline */
    const char *side_name[DG_SCORE_SIDES];
    char *path_labels, *path_events, *path_decisions[DG_SCORE_SIDES];
    int have_events;
    uint64_t n_events, n_bad_events, n_decisions[DG_SCORE_SIDES];
    struct dg_score_scenario scn[DG_SCORE_MAX_SCENARIOS];
    size_t nscn;
    struct dg_score_event *ev;
    size_t nev, evcap;
    struct dg_score_legit legit[DG_SCORE_SIDES];
    struct dg_score_counts attack_hits[DG_SCORE_SIDES]; /* every rule on attack events, all scenarios */
    uint64_t missing_decisions[DG_SCORE_SIDES]; /* attack requests/outflows without one */
};

struct dg_score_opts {
    const char *labels, *events;
    const char *decisions[DG_SCORE_SIDES]; /* [1] may be NULL */
};

/* Read the files and compute every figure. Returns a new score the caller
 * frees with dg_score_free, or NULL with the reason in errstr. */
struct dg_score *dg_score_load(const struct dg_score_opts *o, char *errstr, size_t errstr_size);
void dg_score_free(struct dg_score *s);

/* Target checks, shared by every output so they cannot disagree. */
double dg_score_stopped_pct(const struct dg_score *s, size_t scn, int side); /* -1 when unknown */
double dg_score_pct(uint64_t part, uint64_t whole);
int dg_score_scenario_met(const struct dg_score *s, size_t scn, int side);
/* The false-positive figures the targets judge. A legitimate request or
 * outflow held only because an attack froze its wallet or destination is
 * the response working (the scope really was compromised), not a false
 * positive: it is reported, and left out of these. */
uint64_t dg_score_fp_holdfreeze(const struct dg_score *s, int side);
uint64_t dg_score_fp_review(const struct dg_score *s, int side);
uint64_t dg_score_fp_outflows(const struct dg_score *s, int side);
int dg_score_legit_met(const struct dg_score *s, int side);
int dg_score_all_met(const struct dg_score *s, int side);

/* Add n hits to id (copied); a table stops growing at DG_SCORE_MAX_RULES ids. */
void dg_score_counts_add(struct dg_score_counts *c, const char *id, uint64_t n);
/* Counts sorted by hits (descending), then id; the caller frees the array
 * (not the strings, which stay the counts'). */
struct dg_score_count **dg_score_counts_sorted(const struct dg_score_counts *c);

/* Text formatting: "$1.2M", "$812k", "$950"; "2m13s", "1h05m"; out holds 32 bytes. */
void dg_score_fmt_usd(double usd, char out[32]);
void dg_score_fmt_dur(int64_t ms, char out[32]);
/* pct with `decimals` digits, rounded up (up=1, for rates that must stay
 * under a target) or down (for shares that must reach one). */
void dg_score_fmt_pct(double pct, int decimals, int up, char out[32]);
/* 1234567 -> "1,234,567" */
void dg_score_fmt_int(uint64_t v, char out[32]);

/* Outputs. name (may be NULL) labels the run, e.g. "seed 101". */
void dg_score_text(const struct dg_score *s, FILE *out);
void dg_score_json(const struct dg_score *s, const char *name, dg_buf *out);
/* Write the HTML report to path; 0, or -1 with errstr. */
int dg_score_html(const struct dg_score *s, const char *name, const char *path, char *errstr,
                  size_t errstr_size);
/* Print one table over several --json documents (seeds); 0, or -1 with errstr. */
int dg_score_combine(const char *const *paths, size_t n, FILE *out, char *errstr, size_t errstr_size);

#endif
