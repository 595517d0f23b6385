/*
 * pipeline.h - one batch at a time through decode -> plan -> state -> detect
 * -> commit -> emit. `replay` feeds it lines, `run` feeds it Kafka messages;
 * both get the same decisions because this is the only place that decides.
 */
#ifndef DG_PIPELINE_H
#define DG_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include "event.h"
#include "rules.h"
#include "state.h"

struct dg_decision;

/* What comes out for one input, in input order. */
struct dg_output {
    void *tag;                 /* the caller's, from dg_pipeline_push */
    const char *decision;      /* JSON object, or NULL: no decision */
    size_t decision_len;
    const char *key;           /* Kafka key: withdrawal_id, wallet_id or event_id */
    size_t key_len;
    int action;                /* when decision != NULL */
    int duplicate;             /* an event_id decided before: same decision */
    const struct dg_reject *reject; /* invalid input: why (else NULL) */
    const struct dg_event *event;   /* the decoded event (else NULL) */
    const struct dg_decision *detail; /* how it was decided, when it was
                                         decided in this batch (not a
                                         duplicate); valid during emit */
};

typedef int (*dg_emit_fn)(void *ud, const struct dg_output *o);

struct dg_pipeline_stats {
    uint64_t inputs;
    uint64_t events[DG_EV_NTYPES];
    uint64_t actions[DG_NACTIONS];
    uint64_t rejects[DG_R_NCODES];
    uint64_t duplicates;
    uint64_t late;             /* events too late for at least one window */
    uint64_t frozen_holds;     /* decisions held by a frozen scope */
    uint64_t freezes_placed;   /* scopes frozen */
    uint64_t *hits;            /* per rule: matched (enforce and shadow) */
};

typedef struct dg_pipeline dg_pipeline;

/* rs and st stay the caller's and must outlive the pipeline. batch is the
 * most inputs per batch. decided_at: add wall-clock decided_at fields. */
dg_pipeline *dg_pipeline_new(const struct dg_ruleset *rs, struct dg_state *st,
                             size_t batch, int decided_at);
void dg_pipeline_free(dg_pipeline *p);

/* Add one input (a message or a line; copied as needed). Returns the number
 * of inputs now pending; flush when it reaches the batch size. */
size_t dg_pipeline_push(dg_pipeline *p, const char *buf, size_t len, void *tag);
size_t dg_pipeline_pending(const dg_pipeline *p);

/* Decide the pending inputs and emit them in order. Returns 0, or -1 when
 * the state backend failed (errstr set): nothing was emitted and the batch
 * is kept, so flushing again retries it whole. A non-zero return from emit
 * stops emitting and is returned (the batch is then dropped: its state is
 * committed, and a redelivery will get the stored decisions). */
int dg_pipeline_flush(dg_pipeline *p, dg_emit_fn emit, void *ud, char *errstr,
                      size_t errsz);

/* dg_pipeline_flush() in three steps, for a caller that overlaps the state
 * backend's commit with other work (run): start applies, judges and sends
 * the commit without waiting for it where the backend can; finish waits
 * for it, deciding again at once after a conflict. Each returns 0, or -1
 * with errstr set: nothing was emitted and the batch is kept, so starting
 * again retries it whole. Between start and finish the caller must not
 * use the state backend (another pipeline may push). Then emit, which
 * returns as dg_pipeline_flush does. */
int dg_pipeline_start(dg_pipeline *p, char *errstr, size_t errsz);
int dg_pipeline_finish(dg_pipeline *p, char *errstr, size_t errsz);
int dg_pipeline_emit(dg_pipeline *p, dg_emit_fn emit, void *ud);

/* Two batches in flight (run): a second pipeline may start its batch while
 * the first one's commit is on its way. The backend builds it on the first
 * one's changes and commits it only if the first one was committed; start
 * returns 1 (nothing done) when it cannot, and the caller starts it again
 * after finishing the first. The second is finished after the first; if
 * the first fails for good, abandon the second (its outcome is read and
 * dropped; the batch stays pending, to be started again). */
void dg_pipeline_abandon(dg_pipeline *p);

/* Refuse events stamped more than max_future_ms ahead of the wall clock
 * (0: no limit, the default; replay trusts its file). They are rejected
 * like any invalid input: reason bad_value on field 'ts', and a hold when
 * they name a withdrawal. One event stamped far in the future would
 * otherwise move windows and expiry ahead for everyone. */
void dg_pipeline_set_max_future(dg_pipeline *p, int64_t max_future_ms);

/* Sign every decision from now on (docs/signing.md): the signature is
 * appended when a decision is made, before the state backend stores its
 * bytes, so a redelivery republishes the same signed bytes; the fail-closed
 * holds of invalid inputs are signed too. The pipeline takes ownership of
 * signer (from dg_signer_open; NULL: stop signing) and frees it, and any
 * signer set before, itself. Set it between batches. */
struct dg_signer;
void dg_pipeline_set_signer(dg_pipeline *p, struct dg_signer *signer);

/* Drop the pending inputs without deciding them (their state was never
 * applied): for a batch whose partitions were revoked while it waited. */
void dg_pipeline_discard(dg_pipeline *p);

const struct dg_pipeline_stats *dg_pipeline_stats(const dg_pipeline *p);

/* Swap to another rule set between batches (pending must be 0). Window
 * state is kept where a window's definition is unchanged. */
int dg_pipeline_set_rules(dg_pipeline *p, const struct dg_ruleset *rs);

#endif
