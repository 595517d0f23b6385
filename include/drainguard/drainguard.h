/*
 * drainguard.h - the public API for embedding drainguard's decision engine
 * (the same code `drainguard replay` runs) in another C program: load a rule
 * set, feed it events, get decisions. Opaque handles only; the structures
 * behind them are private to engine/.
 *
 *     char err[512];
 *     const char *files[] = {"rules/default.yaml"};
 *     dg_rules *rules = drainguard_rules_load(files, 1, err, sizeof err);
 *     drainguard *dg = drainguard_new(rules, NULL);
 *     const char *decision; size_t len;
 *     if (drainguard_decide(dg, event, event_len, &decision, &len) == 0 && decision)
 *         printf("%.*s\n", (int)len, decision);
 *     drainguard_free(dg);
 *     drainguard_rules_free(rules);
 */
#ifndef DRAINGUARD_H
#define DRAINGUARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dg_rules dg_rules;     /* an immutable, compiled rule set */
typedef struct drainguard drainguard; /* rules + window state (in memory) */

/* Load rule files (a directory: every *.yaml in it but *.test.yaml) as one
 * rule set. Returns NULL when the set has errors; err then holds them, one
 * "FILE:LINE:COL: message" per line (truncated to errsz). */
dg_rules *drainguard_rules_load(const char *const *paths, size_t n, char *err,
                                size_t errsz);
/* The digest every decision carries as rules_version; owned by rules. */
const char *drainguard_rules_version(const dg_rules *rules);
void drainguard_rules_free(dg_rules *rules);

struct drainguard_options {
    int64_t dedupe_window_ms; /* how long an event_id is remembered; 0: 24 h */
    int64_t lateness_ms;      /* lateness allowance; 0: 1 h */
};

/* An engine deciding with `rules` (which must outlive it) and its own window
 * state in memory. opts may be NULL for the defaults. */
drainguard *drainguard_new(const dg_rules *rules, const struct drainguard_options *opts);
void drainguard_free(drainguard *dg);

/* Decide one event (JSON, by the event contract). Returns 0 and sets
 * *decision and *decision_len to the decision JSON (no newline), or
 * *decision to NULL
 * when the event gets no decision (an account or balance event no rule
 * matched, or an invalid input without a withdrawal_id). The decision
 * stays valid until the next call. Returns 1 when the input was invalid
 * (the decision, if any, is then the fail-closed hold) and -1 on an
 * internal error. */
int drainguard_decide(drainguard *dg, const char *event, size_t len, const char **decision,
                      size_t *decision_len);

#ifdef __cplusplus
}
#endif

#endif
