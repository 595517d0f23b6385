/*
 * test_pipeline.c - engine/pipeline.c behaviour the streaming engine relies
 * on: events stamped too far ahead of the clock are refused (and held when
 * they name a withdrawal), and fail-closed holds carry decided_at.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detect.h"
#include "pipeline.h"
#include "rules.h"
#include "state.h"

struct got {
    char text[8][2048];
    const struct dg_reject *rej[8];
    struct dg_reject rejcopy[8];
    int n;
};

static int keep(void *ud, const struct dg_output *o)
{
    struct got *g = ud;
    snprintf(g->text[g->n], sizeof g->text[0], "%.*s", (int)o->decision_len,
             o->decision ? o->decision : "");
    if (o->reject) {
        g->rejcopy[g->n] = *o->reject;
        g->rej[g->n] = &g->rejcopy[g->n];
    }
    g->n++;
    return 0;
}

static void withdrawal(char *out, size_t sz, const char *id, long long ts_ms)
{
    snprintf(out, sz,
             "{\"event_id\":\"%s\",\"type\":\"withdrawal.requested\",\"ts\":%lld,\"withdrawal_id\":\"W-%s\","
             "\"account_id\":\"a\",\"asset\":\"BTC\",\"chain\":\"bitcoin\",\"amount\":\"1\",\"amount_usd\":5,"
             "\"dest_address\":\"d\"}",
             id, ts_ms, id);
}

START_TEST(max_future_refuses_and_holds)
{
    const char rules[] = "rules:\n  - {id: r, on: withdrawal.requested, when: amount_usd > 1000, action: review}\n";
    struct dg_diag diag = {0};
    struct dg_ruleset *rs = dg_ruleset_load_mem("t.yaml", rules, strlen(rules), &diag);
    ck_assert_ptr_nonnull(rs);
    struct dg_state *st = dg_state_mem_new(3600000, 3600000);
    dg_pipeline *p = dg_pipeline_new(rs, st, 8, 1);
    struct got g = {0};
    char ev[512], err[256];
    long long now = (long long)time(NULL) * 1000;

    dg_pipeline_set_max_future(p, 10 * 60 * 1000);
    withdrawal(ev, sizeof ev, "ok", now + 60 * 1000); /* a minute ahead: clock skew, fine */
    dg_pipeline_push(p, ev, strlen(ev), NULL);
    withdrawal(ev, sizeof ev, "future", now + 3 * 3600 * 1000); /* three hours ahead */
    dg_pipeline_push(p, ev, strlen(ev), NULL);
    ck_assert_int_eq(dg_pipeline_flush(p, keep, &g, err, sizeof err), 0);
    ck_assert_int_eq(g.n, 2);
    ck_assert_ptr_null(g.rej[0]);
    ck_assert_msg(strstr(g.text[0], "\"action\":\"allow\""), "%s", g.text[0]);
    ck_assert_ptr_nonnull(g.rej[1]);
    ck_assert_int_eq(g.rej[1]->code, DG_R_BAD_VALUE);
    ck_assert_str_eq(g.rej[1]->field, "ts");
    ck_assert_msg(strstr(g.rej[1]->msg, "ahead of this engine's clock"), "%s", g.rej[1]->msg);
    /* held, not dropped: the withdrawal and its event_id are kept */
    ck_assert_msg(strstr(g.text[1], "\"withdrawal_id\":\"W-future\"") &&
                      strstr(g.text[1], "\"event_id\":\"future\"") &&
                      strstr(g.text[1], "\"action\":\"hold\"") && strstr(g.text[1], DG_RULE_INVALID),
                  "%s", g.text[1]);
    /* the streaming engine stamps every decision, the fail-closed ones too */
    ck_assert_msg(strstr(g.text[0], "\"decided_at\":\"") && strstr(g.text[1], "\"decided_at\":\""),
                  "%s / %s", g.text[0], g.text[1]);
    dg_pipeline_free(p);
    st->ops->destroy(st);
    dg_ruleset_free(rs);
    dg_diag_free(&diag);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_add_test(tc, max_future_refuses_and_holds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
