/*
 * reconcile.h - checking hot-wallet outflows against the withdrawal
 * requests they pay. The engine remembers every request it decided (a
 * record per withdrawal_id, kept by the state backend); an outflow is
 * reconciled when every request it names was allowed, is not paid yet, goes
 * to the outflow's destination in its asset, and the amounts agree within
 * the rule set's tolerance. Rules see the result as the computed fields
 * `reconciled` and `reconcile_problem` of the wallet.outflow.
 */
#ifndef DG_RECONCILE_H
#define DG_RECONCILE_H

#include <stddef.h>
#include <stdint.h>
#include "event.h"
#include "util.h"

/* What the engine remembers of a withdrawal request it decided. */
struct dg_reqrec {
    const char *id;        /* withdrawal_id */
    uint32_t idlen;
    int action;            /* the decision's (enum dg_action) */
    int paid;              /* an outflow has paid it */
    const char *tx;        /* that outflow's tx_hash */
    uint32_t txlen;
    const char *asset;
    uint32_t assetlen;
    const char *dest;
    uint32_t destlen;
    int64_t amount;        /* in 1e-8 of the asset */
    int64_t ts;            /* the request's event time */
};

/* How long (event time) a record is kept: outflows pay within minutes, an
 * operator's release may take days. */
#define DG_REQUEST_RETENTION_MS (30LL * 24 * 3600 * 1000)
#define DG_DEFAULT_OUTFLOW_TOLERANCE 0.005

/* An amount in 1e-8 units (satoshi-precise), saturating. */
int64_t dg_amount8(double v);

/* Binary encoding; decode copies the strings into arena. 0 or -1. */
void dg_reqrec_encode(const struct dg_reqrec *r, dg_buf *out);
int dg_reqrec_decode(struct dg_reqrec *r, const char *buf, size_t len, dg_arena *arena);

/* Check outflow ev against recs[i], the record of ev->ids[i] (NULL when
 * unknown). Returns 1 when reconciled; else 0 with the first problem, as a
 * sentence, in *problem. */
int dg_reconcile(const struct dg_event *ev, const struct dg_reqrec *const *recs,
                 double tolerance, dg_buf *problem);

#endif
