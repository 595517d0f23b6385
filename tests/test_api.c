/*
 * test_api.c - the public embedding API (include/drainguard/drainguard.h).
 */
#include <check.h>
#include <drainguard/drainguard.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *write_rules(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/dg-test-api-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char rules_ok[] =
    "windows:\n"
    "  dest_accounts: {on: withdrawal.requested, key: dest_address, over: 30m, agg: distinct(account_id)}\n"
    "rules:\n"
    "  - id: shared-destination\n"
    "    on: withdrawal.requested\n"
    "    when: dest_accounts >= 2\n"
    "    action: hold\n"
    "    reason: \"{dest_accounts} accounts\"\n";

#define W(id, acct) \
    "{\"event_id\":\"" id "\",\"type\":\"withdrawal.requested\",\"ts\":\"2024-01-01T00:00:00Z\"," \
    "\"withdrawal_id\":\"W-" id "\",\"account_id\":\"" acct "\",\"asset\":\"BTC\",\"chain\":\"bitcoin\"," \
    "\"amount\":\"1\",\"amount_usd\":100,\"dest_address\":\"X\"}"

START_TEST(test_load_error_names_position)
{
    char err[512];
    const char *path = write_rules("rules:\n  - id: r\n    on: withdrawal.requested\n    when: nope > 1\n    action: hold\n");
    const char *files[] = {path};
    dg_rules *r = drainguard_rules_load(files, 1, err, sizeof err);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err, ":4:11: when: unknown field or window 'nope'"), "got: %s", err);
    unlink(path);
}
END_TEST

START_TEST(test_decide_sequence)
{
    char err[512];
    const char *files[] = {write_rules(rules_ok)};
    dg_rules *r = drainguard_rules_load(files, 1, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert(strncmp(drainguard_rules_version(r), "rv1-", 4) == 0);
    drainguard *dg = drainguard_new(r, NULL);
    const char *d;
    size_t len;

    ck_assert_int_eq(drainguard_decide(dg, W("e1", "a1"), strlen(W("e1", "a1")), &d, &len), 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_msg(strstr(d, "\"action\":\"allow\""), "%.*s", (int)len, d);

    ck_assert_int_eq(drainguard_decide(dg, W("e2", "a2"), strlen(W("e2", "a2")), &d, &len), 0);
    ck_assert_msg(strstr(d, "\"action\":\"hold\"") && strstr(d, "\"reason\":\"2 accounts\""), "%.*s",
                  (int)len, d);

    /* the first event again: same decision, no double count */
    ck_assert_int_eq(drainguard_decide(dg, W("e1", "a1"), strlen(W("e1", "a1")), &d, &len), 0);
    ck_assert_msg(strstr(d, "\"action\":\"allow\""), "%.*s", (int)len, d);

    /* invalid, but names its withdrawal: held (fail closed) */
    const char *bad = "{\"event_id\":\"e3\",\"type\":\"withdrawal.requested\",\"withdrawal_id\":\"W3\"}";
    ck_assert_int_eq(drainguard_decide(dg, bad, strlen(bad), &d, &len), 1);
    ck_assert_ptr_nonnull(d);
    ck_assert_msg(strstr(d, "\"withdrawal_id\":\"W3\"") && strstr(d, "\"action\":\"hold\""), "%.*s",
                  (int)len, d);

    /* an account event no rule matched: no decision */
    const char *sec = "{\"event_id\":\"e4\",\"type\":\"account.security\",\"ts\":1,\"account_id\":\"a1\",\"action\":\"login\"}";
    ck_assert_int_eq(drainguard_decide(dg, sec, strlen(sec), &d, &len), 0);
    ck_assert_ptr_null(d);

    drainguard_free(dg);
    drainguard_rules_free(r);
    unlink(files[0]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, test_load_error_names_position);
    tcase_add_test(tc, test_decide_sequence);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
