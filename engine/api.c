/*
 * api.c - include/drainguard/drainguard.h on top of the pipeline: one event
 * per batch, memory state. The opaque public types are the private ones.
 */
#include "drainguard/drainguard.h"
#include "pipeline.h"
#include "rules.h"
#include "state.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct drainguard {
    const struct dg_ruleset *rs;
    struct dg_state *st;
    dg_pipeline *p;
    dg_buf out;
    int have, invalid;
};

dg_rules *drainguard_rules_load(const char *const *paths, size_t n, char *err, size_t errsz)
{
    struct dg_diag diag = {0};
    struct dg_ruleset *rs = dg_ruleset_load(paths, n, &diag);
    dg_buf b = {0};

    for (size_t i = 0; i < diag.n; i++) {
        if (diag.lines[i][0] && !rs)
            dg_buf_printf(&b, "%s\n", diag.lines[i]);
    }
    if (err && errsz) {
        size_t l = b.len < errsz - 1 ? b.len : errsz - 1;
        memcpy(err, b.data ? b.data : "", l);
        err[l] = '\0';
    }
    dg_buf_free(&b);
    dg_diag_free(&diag);
    return (dg_rules *)rs;
}

const char *drainguard_rules_version(const dg_rules *rules)
{
    return ((const struct dg_ruleset *)rules)->version;
}

void drainguard_rules_free(dg_rules *rules)
{
    dg_ruleset_free((struct dg_ruleset *)rules);
}

drainguard *drainguard_new(const dg_rules *rules, const struct drainguard_options *opts)
{
    drainguard *dg = dg_xcalloc(1, sizeof(*dg));
    int64_t dedupe = opts && opts->dedupe_window_ms ? opts->dedupe_window_ms : 24LL * 3600 * 1000;
    int64_t late = opts && opts->lateness_ms ? opts->lateness_ms : 3600LL * 1000;
    dg->rs = (const struct dg_ruleset *)rules;
    dg->st = dg_state_mem_new(dedupe, late);
    dg->p = dg_pipeline_new(dg->rs, dg->st, 1, 0);
    return dg;
}

void drainguard_free(drainguard *dg)
{
    if (!dg)
        return;
    dg_pipeline_free(dg->p);
    dg->st->ops->destroy(dg->st);
    dg_buf_free(&dg->out);
    free(dg);
}

static int keep(void *ud, const struct dg_output *o)
{
    drainguard *dg = ud;
    dg->out.len = 0;
    dg->have = o->decision != NULL;
    dg->invalid = o->reject != NULL;
    if (o->decision)
        dg_buf_append(&dg->out, o->decision, o->decision_len);
    return 0;
}

int drainguard_decide(drainguard *dg, const char *event, size_t len, const char **decision,
                      size_t *decision_len)
{
    char err[256];
    dg->have = dg->invalid = 0;
    dg_pipeline_push(dg->p, event, len, NULL);
    if (dg_pipeline_flush(dg->p, keep, dg, err, sizeof err) != 0)
        return -1;
    *decision = dg->have ? dg->out.data : NULL;
    *decision_len = dg->have ? dg->out.len : 0;
    return dg->invalid ? 1 : 0;
}
