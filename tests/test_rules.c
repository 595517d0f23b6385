/*
 * test_rules.c - Check suite for engine/rules_load.c and engine/rules_compile.c,
 * driven through dg_ruleset_load_mem: a table of bad rule files, each with
 * the exact FILE:LINE:COL of its first diagnostic and a part of the message;
 * warnings; and good files, checked for what they compile to (rules,
 * windows, buckets, per-type plans, rules_version and window state ids).
 *
 * Where a diagnostic should point at a token, the table names the token
 * (`at`, its first occurrence in the file) and the expected line and column
 * are counted from the file text here, not taken from the code under test.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "util.h"

#define FILE_NAME "r.yaml"

static struct dg_ruleset *load(const char *text, struct dg_diag *d)
{
    memset(d, 0, sizeof(*d));
    return dg_ruleset_load_mem(FILE_NAME, text, strlen(text), d);
}

static void dump(const struct dg_diag *d, char *out, size_t sz)
{
    out[0] = '\0';
    for (size_t i = 0; i < d->n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, sz - l, "\n    %s", d->lines[i]);
    }
}

/* "r.yaml:LINE:COL: " of the first occurrence of at in text */
static void prefix_of(const char *text, const char *at, char *out, size_t sz)
{
    const char *p = strstr(text, at);
    int line = 1, col = 1;
    ck_assert_msg(p != NULL, "marker '%s' not in the test file", at);
    for (const char *q = text; q < p; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(out, sz, FILE_NAME ":%d:%d: ", line, col);
}

/* ------------------------------------------------------------------ */
/* bad files                                                          */

struct bad {
    const char *name;
    const char *yaml;
    const char *at;   /* the token the first error points at */
    const char *msg;  /* a part of its message */
};

#define RULE_OK "rules:\n  - id: ok\n    on: withdrawal.requested\n    when: true\n    action: review\n"
#define W_HEAD "windows:\n"

static const struct bad bad_files[] = {
    {"yaml syntax error",
     "rules:\n  - id: a\n    on: [withdrawal.requested\n    when: true\n",
     ": true", "yaml: did not find expected ',' or ']'"},
    {"yaml anchor refused",
     "lists:\n  a: &x [\"1\"]\n" RULE_OK,
     "&x", "yaml anchors (&name) are not supported in rule files"},
    {"yaml alias refused",
     "lists:\n  a: [\"1\"]\n  b: *a\n" RULE_OK,
     "*a", "yaml aliases (*name) are not supported in rule files"},
    {"yaml anchor on a scalar refused",
     "version: &v 1\n" RULE_OK,
     "&v", "yaml anchors (&name) are not supported"},
    {"two documents",
     RULE_OK "---\n" RULE_OK,
     "---", "a rule file holds one yaml document, found another"},
    {"empty file", "", NULL, "rule file is empty"},
    {"not a mapping", "- a\n- b\n", "- a", "a rule file is a mapping with 'lists', 'windows' and 'rules'"},
    {"top-level unknown key",
     "version: 1\nwindow:\n  x: 1\n" RULE_OK,
     "window:", "rule file: unknown key 'window' (did you mean 'windows'?)"},
    {"top-level unknown key, no suggestion",
     "version: 1\nfrobnicate: 1\n" RULE_OK,
     "frobnicate", "rule file: unknown key 'frobnicate'"},
    {"unsupported version",
     "version: 2\n" RULE_OK,
     "2\n", "unsupported rule file version"},
    {"window missing on",
     W_HEAD "  w1: {key: account_id, over: 30m, agg: count}\n" RULE_OK,
     "w1", "window 'w1': missing 'on'"},
    {"window missing key",
     W_HEAD "  w1: {on: withdrawal.requested, over: 30m, agg: count}\n" RULE_OK,
     "w1", "window 'w1': missing 'key'"},
    {"window missing over",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, agg: count}\n" RULE_OK,
     "w1", "window 'w1': missing 'over'"},
    {"window missing agg",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m}\n" RULE_OK,
     "w1", "window 'w1': missing 'agg'"},
    {"window unknown key",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: count, precison: 1m}\n" RULE_OK,
     "precison", "window: unknown key 'precison' (did you mean 'precision'?)"},
    {"unknown aggregate with suggestion",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: cont}\n" RULE_OK,
     "cont}", "window 'w1': unknown aggregate 'cont' (did you mean 'count'?)"},
    {"unknown aggregate with a field",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: summ(amount_usd)}\n" RULE_OK,
     "summ", "window 'w1': unknown aggregate 'summ' (did you mean 'sum'?)"},
    {"aggregate needs a field",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: sum}\n" RULE_OK,
     "sum}", "window 'w1': sum needs a field, e.g. sum(amount_usd)"},
    {"aggregate field of the wrong type",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: sum(dest_address)}\n" RULE_OK,
     "sum(", "window 'w1': this aggregate needs a number field, not a string"},
    {"max of a time",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: 'max(ts)'}\n" RULE_OK,
     "'max", "window 'w1': this aggregate needs a number field, not a time"},
    {"aggregate that takes no field",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: count(amount_usd)}\n" RULE_OK,
     "count(", "window 'w1': count takes no field"},
    {"aggregate field unknown",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, agg: sum(amount_ud)}\n" RULE_OK,
     "amount_ud", "window 'w1': unknown field or window 'amount_ud' (did you mean 'amount_usd'?)"},
    {"aggregate field absent on the type",
     W_HEAD "  w1: {on: account.security, key: account_id, over: 30m, agg: sum(amount_usd)}\n" RULE_OK,
     "amount_usd)", "window 'w1': field 'amount_usd' does not exist on account.security events"},
    {"bad duration in over",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30x, agg: count}\n" RULE_OK,
     "30x", "over: bad duration '30x'"},
    {"bare number in over",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30, agg: count}\n" RULE_OK,
     "30,", "over: bad duration '30'"},
    {"precision not dividing over",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 30m, precision: 7m, agg: count}\n" RULE_OK,
     "7m", "window 'w1': precision must divide 'over' evenly"},
    {"too many buckets",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 1d, precision: 1m, agg: count}\n" RULE_OK,
     "1m,", "window 'w1': precision 1m gives 1440 buckets; at most 1000"},
    {"unknown event type in a window",
     W_HEAD "  w1: {on: withdrawal.request, key: account_id, over: 30m, agg: count}\n" RULE_OK,
     "withdrawal.request,",
     "window: unknown event type 'withdrawal.request' (did you mean 'withdrawal.requested'?)"},
    {"unknown event type in a rule",
     "rules:\n  - id: r1\n    on: [wallet.outflow, acount.security]\n    when: true\n    action: review\n",
     "acount", "rule: unknown event type 'acount.security' (did you mean 'account.security'?)"},
    {"unknown event type, no suggestion",
     "rules:\n  - id: r1\n    on: payment\n    when: true\n    action: review\n",
     "payment", "rule: unknown event type 'payment' (one of withdrawal.requested"},
    {"key field absent on the window's event type",
     W_HEAD "  w1: {on: account.security, key: dest_address, over: 1h, agg: count}\n" RULE_OK,
     "dest_address", "window 'w1': key: field 'dest_address' does not exist on account.security events"},
    {"key field absent on one of the window's event types",
     W_HEAD "  w1: {on: [withdrawal.requested, wallet.outflow], key: account_id, over: 1h, agg: count}\n" RULE_OK,
     "account_id", "field 'account_id' does not exist on wallet.outflow events"},
    {"window filter reads a window",
     W_HEAD "  w0: {on: withdrawal.requested, key: account_id, over: 1h, agg: count}\n"
            "  w1: {on: withdrawal.requested, when: 'w0 > 1', key: account_id, over: 1h, agg: count}\n" RULE_OK,
     "w0 > 1", "when: 'w0' is a window; a window's filter and keys may only use event fields"},
    {"rule missing id",
     "rules:\n  - on: withdrawal.requested\n    when: true\n    action: hold\n",
     "on:", "rule without an 'id'"},
    {"rule missing on",
     "rules:\n  - id: r1\n    when: true\n    action: hold\n",
     "r1", "rule 'r1': missing 'on' (the event types it judges)"},
    {"rule missing when",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    action: hold\n",
     "r1", "rule 'r1': missing 'when'"},
    {"rule missing action",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n",
     "r1", "rule 'r1': missing 'action' (allow, review, hold or freeze)"},
    {"rule with a bad id",
     "rules:\n  - id: 1st rule\n    on: withdrawal.requested\n    when: true\n    action: hold\n",
     "1st", "bad rule id '1st rule'"},
    {"rule unknown key",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n    reasn: x\n",
     "reasn", "rule: unknown key 'reasn' (did you mean 'reason'?)"},
    {"duplicate rule id",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n"
     "  - id: r1\n    on: wallet.outflow\n    when: true\n    action: hold\n",
     "r1\n    on: wallet", "duplicate rule id 'r1' (first at r.yaml:2:9)"},
    {"duplicate window",
     W_HEAD "  w1: {on: withdrawal.requested, key: account_id, over: 1h, agg: count}\n"
            "  w1: {on: withdrawal.requested, key: dest_address, over: 1h, agg: count}\n" RULE_OK,
     "w1: {on: withdrawal.requested, key: dest", "window 'w1' is defined twice"},
    {"window named like a field",
     W_HEAD "  asset: {on: withdrawal.requested, key: account_id, over: 1h, agg: count}\n" RULE_OK,
     "asset:", "window 'asset' has the name of an event field or list"},
    {"unknown action",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: block\n",
     "block", "rule 'r1': unknown action 'block' (allow, review, hold or freeze)"},
    {"unknown mode",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n    mode: dry-run\n",
     "dry-run", "rule 'r1': unknown mode 'dry-run' (enforce or shadow)"},
    {"freeze without action freeze",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n    freeze: [account]\n",
     "[account]", "rule 'r1': 'freeze' goes with action: freeze"},
    {"action freeze without freeze scopes",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: freeze\n",
     "r1", "rule 'r1': action freeze needs 'freeze: [scopes]'"},
    {"action freeze with an empty scope list",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: freeze\n    freeze: []\n",
     "[]", "rule 'r1': 'freeze' lists no scope"},
    {"unknown freeze scope",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: freeze\n    freeze: [account, adress]\n",
     "adress", "rule 'r1': unknown freeze scope 'adress'"},
    {"freeze scope not on the event type",
     "rules:\n  - id: r1\n    on: account.security\n    when: true\n    action: freeze\n    freeze: [account, destination]\n",
     "destination", "rule 'r1': account.security events have no destination to freeze"},
    {"freeze scope not on one of the event types",
     "rules:\n  - id: r1\n    on: [withdrawal.requested, wallet.outflow]\n    when: true\n    action: freeze\n    freeze: account\n",
     "account\n", "rule 'r1': wallet.outflow events have no account to freeze"},
    {"field not on the rule's event type",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: action == \"login\"\n    action: hold\n",
     "action ==", "when: field 'action' does not exist on withdrawal.requested events"},
    {"unknown field with suggestion",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: amount_usd > 5 and amount_us > 5\n    action: hold\n",
     "amount_us >", "when: unknown field or window 'amount_us' (did you mean 'amount_usd'?)"},
    {"unknown window with suggestion",
     W_HEAD "  acct_count: {on: withdrawal.requested, key: account_id, over: 1h, agg: count}\n"
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: acct_cnt > 5\n    action: hold\n",
     "acct_cnt", "when: unknown field or window 'acct_cnt' (did you mean 'acct_count'?)"},
    {"unknown list with suggestion",
     "lists:\n  blocked: [a, b]\n"
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: dest_address in blockd\n    action: hold\n",
     "blockd", "when: unknown list 'blockd' (did you mean 'blocked'?)"},
    {"window keyed by a field the rule's type lacks",
     W_HEAD "  dest_cnt: {on: withdrawal.requested, key: dest_address, over: 1h, agg: count}\n"
     "rules:\n  - id: r1\n    on: account.security\n    when: action == \"login\" and dest_cnt > 1\n    action: hold\n",
     "dest_cnt > 1",
     "when: window 'dest_cnt' is keyed by 'dest_address', which account.security events do not have"},
    {"reason with an unknown name",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n"
     "    reason: \"sent ${amount_usdd} to {dest_address}\"\n",
     "amount_usdd", "reason: unknown field or window 'amount_usdd' (did you mean 'amount_usd'?)"},
    {"reason with an unclosed brace",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n"
     "    reason: \"sent {amount_usd to {dest_address\"\n",
     "{amount_usd to", "reason: unclosed '{'"},
    {"reason with an unmatched closing brace",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n"
     "    reason: 'sent {amount_usd} } x'\n",
     "} x", "reason: unmatched '}'"},
    {"expression error in a double-quoted scalar",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: \"asset == 'BTC' and amount_usd > 5m\"\n    action: hold\n",
     "> 5m", "when: type mismatch: number > duration"},
    {"expression error in a single-quoted scalar",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: 'asset == \"BTC\" and amount_usd > 5m'\n    action: hold\n",
     "> 5m", "when: type mismatch: number > duration"},
    {"expression error in a plain scalar",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: asset == \"BTC\" and amount_usd > 5m\n    action: hold\n",
     "> 5m", "when: type mismatch: number > duration"},
    {"expression error in a flow mapping",
     "rules:\n  - {id: r1, on: withdrawal.requested, when: amount_usd = 5, action: hold}\n",
     "= 5", "when: unexpected '=' (use '==' to compare)"},
    {"expression error in a window filter",
     W_HEAD "  w1: {on: withdrawal.requested, when: 'channel == \"web\" && true', key: account_id, over: 1h, agg: count}\n" RULE_OK,
     "&&", "when: unexpected '&' (use 'and' / 'or')"},
    {"when that is not a condition",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: amount_usd\n    action: hold\n",
     "amount_usd", "when: expected a boolean, but this is a number"},
    {"when that is a mapping",
     "rules:\n  - id: r1\n    on: withdrawal.requested\n    when: {a: 1}\n    action: hold\n",
     "{a: 1}", "when must be a single value, not a mapping"},
    {"list mixing strings and numbers",
     "lists:\n  l1: [a, b, 1]\n" RULE_OK,
     "1]", "list 'l1' mixes strings and numbers (quote numbers meant as strings)"},
    {"list mixing numbers and strings",
     "lists:\n  l1: [1, 2.5, \"x\"]\n" RULE_OK,
     "\"x\"", "list 'l1' mixes strings and numbers"},
    {"list defined twice",
     "lists:\n  l1: [a]\n  l1: [b]\n" RULE_OK,
     "l1: [b]", "list 'l1' is defined twice"},
    {"list named like a field",
     "lists:\n  asset: [a]\n" RULE_OK,
     "asset", "list 'asset' has the name of an event field"},
    {"list file that does not exist",
     "lists:\n  l1: {file: /nonexistent/drainguard-test-list.txt}\n" RULE_OK,
     "/nonexistent", "list 'l1': cannot read '/nonexistent/drainguard-test-list.txt'"},
};

START_TEST(bad_file)
{
    const struct bad *b = &bad_files[_i];
    struct dg_diag d;
    char want[64], all[4096];
    struct dg_ruleset *rs = load(b->yaml, &d);

    dump(&d, all, sizeof all);
    ck_assert_msg(rs == NULL, "%s: should not load%s", b->name, all);
    ck_assert_msg(d.errors > 0 && d.n > 0, "%s: no error reported", b->name);
    if (b->at)
        prefix_of(b->yaml, b->at, want, sizeof want);
    else
        snprintf(want, sizeof want, FILE_NAME ":1:1: ");
    ck_assert_msg(!strncmp(d.lines[0], want, strlen(want)),
                  "%s: first diagnostic should start with '%s'; got:%s", b->name, want, all);
    ck_assert_msg(strstr(d.lines[0] + strlen(want), b->msg) != NULL,
                  "%s: first diagnostic lacks '%s'; got:%s", b->name, b->msg, all);
    dg_diag_free(&d);
}
END_TEST

/* The marker arithmetic above, pinned with literal prefixes for a few
 * cases, so a mistake in prefix_of cannot hide one in the engine. */
START_TEST(literal_prefixes)
{
    static const struct {
        const char *yaml, *prefix;
    } cases[] = {
        {"rules:\n  - id: r1\n    on: withdrawal.requested\n    when: amount_usd > 5m\n    action: hold\n",
         "r.yaml:4:22: when: type mismatch: number > duration (write a duration like 24h or 30m)"},
        {"rules:\n  - id: r1\n    on: withdrawal.requested\n    when: \"amount_usd > 5m\"\n    action: hold\n",
         "r.yaml:4:23: when: type mismatch"},
        {"rules:\n  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n"
         "  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: hold\n",
         "r.yaml:6:9: duplicate rule id 'r1' (first at r.yaml:2:9)"},
        {"version: 1\nwindow: {}\n", "r.yaml:2:1: rule file: unknown key 'window' (did you mean 'windows'?)"},
        {"rules:\n  - id: r1\n    on: account.security\n    when: true\n    action: freeze\n    freeze: [destination]\n",
         "r.yaml:6:14: rule 'r1': account.security events have no destination to freeze"},
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(cases); i++) {
        struct dg_diag d;
        char all[2048];
        struct dg_ruleset *rs = load(cases[i].yaml, &d);
        dump(&d, all, sizeof all);
        ck_assert_ptr_null(rs);
        ck_assert_msg(d.n > 0 && !strncmp(d.lines[0], cases[i].prefix, strlen(cases[i].prefix)),
                      "case %zu: want '%s'; got:%s", i, cases[i].prefix, all);
        dg_diag_free(&d);
    }
}
END_TEST

/* Every error of a file is reported, not just the first. */
START_TEST(all_errors_reported)
{
    const char *y =
        "windows:\n"
        "  w1: {on: withdrawal.requested, key: account_id, over: 30x, agg: count}\n"
        "  w2: {on: withdrawal.requested, key: account_id, over: 1h, agg: cont}\n"
        "rules:\n"
        "  - id: r1\n    on: withdrawal.requested\n    when: amount_us > 1\n    action: hold\n"
        "  - id: r2\n    on: withdrawal.requested\n    when: true\n    action: blok\n";
    struct dg_diag d;
    char all[4096];
    ck_assert_ptr_null(load(y, &d));
    dump(&d, all, sizeof all);
    ck_assert_msg(d.errors == 4, "want 4 errors, got %d:%s", d.errors, all);
    ck_assert_int_eq(d.warnings, 0);
    ck_assert_ptr_nonnull(strstr(d.lines[0], "r.yaml:2:57: over: bad duration '30x'"));
    ck_assert_ptr_nonnull(strstr(d.lines[1], "r.yaml:3:66: window 'w2': unknown aggregate 'cont'"));
    ck_assert_ptr_nonnull(strstr(d.lines[2], "r.yaml:7:11: when: unknown field or window 'amount_us'"));
    ck_assert_ptr_nonnull(strstr(d.lines[3], "r.yaml:12:13: rule 'r2': unknown action 'blok'"));
    dg_diag_free(&d);
}
END_TEST

/* ------------------------------------------------------------------ */
/* warnings                                                           */

START_TEST(warnings_unused)
{
    const char *y =
        "lists:\n"
        "  used_list: [a, b]\n"
        "  spare_list: [c]\n"
        "windows:\n"
        "  used_w: {on: withdrawal.requested, key: account_id, over: 1h, agg: count}\n"
        "  spare_w: {on: withdrawal.requested, key: account_id, over: 1h, agg: count}\n"
        "rules:\n"
        "  - id: r1\n    on: withdrawal.requested\n"
        "    when: used_w > 1 and asset in used_list\n    action: review\n";
    struct dg_diag d;
    char all[2048];
    struct dg_ruleset *rs = load(y, &d);
    dump(&d, all, sizeof all);
    ck_assert_msg(rs != NULL, "should load:%s", all);
    ck_assert_int_eq(d.errors, 0);
    ck_assert_msg(d.warnings == 2, "want 2 warnings:%s", all);
    ck_assert_str_eq(d.lines[0], "r.yaml:6:3: warning: window 'spare_w' is never used by a rule");
    ck_assert_str_eq(d.lines[1], "r.yaml:3:3: warning: list 'spare_list' is never used");
    ck_assert_int_eq(rs->windows[0].used, 1);
    ck_assert_int_eq(rs->windows[1].used, 0);
    dg_ruleset_free(rs);
    dg_diag_free(&d);

    /* a window used only in a reason is used */
    y = "windows:\n"
        "  w: {on: withdrawal.requested, key: account_id, over: 1h, agg: count}\n"
        "rules:\n"
        "  - id: r1\n    on: withdrawal.requested\n    when: true\n    action: review\n"
        "    reason: \"{w} withdrawals\"\n";
    rs = load(y, &d);
    ck_assert_ptr_nonnull(rs);
    ck_assert_int_eq(d.warnings, 0);
    dg_ruleset_free(rs);
    dg_diag_free(&d);

    /* no rules at all: a warning, not an error */
    rs = load("version: 1\n", &d);
    dump(&d, all, sizeof all);
    ck_assert_msg(rs != NULL, "should load:%s", all);
    ck_assert_int_eq(d.warnings, 1);
    ck_assert_ptr_nonnull(strstr(d.lines[0], "r.yaml:1:1: warning: the rule set has no rules"));
    ck_assert_uint_eq(rs->nrules, 0);
    dg_ruleset_free(rs);
    dg_diag_free(&d);
}
END_TEST

/* ------------------------------------------------------------------ */
/* good files                                                         */

static const char good[] =
    "version: 1\n"
    "description: test pack\n"
    "lists:\n"
    "  blocked: [\"bad1\", \"bad2\"]\n"
    "  limits: [100, 250.5]\n"
    "windows:\n"
    "  dest_cnt: {on: withdrawal.requested, key: dest_address, over: 30m, agg: count}\n"
    "  acct_sum: {on: withdrawal.requested, key: account_id, over: 7d, agg: sum(amount_usd)}\n"
    "  last_reset:\n"
    "    on: account.security\n"
    "    when: 'action == \"2fa.reset\"'\n"
    "    key: account_id\n"
    "    over: 24h\n"
    "    precision: 1h\n"
    "    agg: last(ts)\n"
    "  out_sum: {on: wallet.outflow, key: [wallet_id, asset], over: 1h, agg: sum(amount_usd)}\n"
    "  odd: {on: withdrawal.requested, key: event.partner, over: 1001ms, agg: distinct(account_id)}\n"
    "rules:\n"
    "  - id: r1\n"
    "    on: withdrawal.requested\n"
    "    when: dest_cnt >= 3 and dest_address not in blocked and amount_usd not in limits\n"
    "    action: review\n"
    "  - id: r2\n"
    "    description: after a 2FA reset\n"
    "    on: withdrawal.requested\n"
    "    when: ts - last_reset < 24h and odd >= 1\n"
    "    action: hold\n"
    "    reason: \"{ts - last_reset} after a reset; {{literal}}\"\n"
    "  - id: r3\n"
    "    on: wallet.outflow\n"
    "    when: out_sum > 1000000 and event.chain_note == \"x\"\n"
    "    action: freeze\n"
    "    freeze: [wallet, global]\n"
    "    mode: shadow\n"
    "  - id: r4\n"
    "    on: [withdrawal.requested]\n"
    "    when: acct_sum > 50000 and asset in [\"BTC\", \"ETH\"]\n"
    "    action: freeze\n"
    "    freeze: [account, destination]\n";

static struct dg_ruleset *load_ok(const char *text)
{
    struct dg_diag d;
    char all[2048];
    struct dg_ruleset *rs = load(text, &d);
    dump(&d, all, sizeof all);
    ck_assert_msg(rs != NULL, "should load:%s", all);
    ck_assert_msg(d.errors == 0 && d.warnings == 0, "no diagnostics expected:%s", all);
    dg_diag_free(&d);
    return rs;
}

START_TEST(good_file_shape)
{
    struct dg_ruleset *rs = load_ok(good);
    const int W = DG_EV_WITHDRAWAL, S = DG_EV_SECURITY, O = DG_EV_OUTFLOW, B = DG_EV_BALANCE;

    ck_assert_uint_eq(rs->nfiles, 1);
    ck_assert_str_eq(rs->file_names[0], FILE_NAME);
    ck_assert_uint_eq(rs->nrules, 4);
    ck_assert_uint_eq(rs->nwindows, 5);
    ck_assert_str_eq(rs->windows[0].name, "dest_cnt");
    ck_assert_str_eq(rs->windows[1].name, "acct_sum");
    ck_assert_str_eq(rs->windows[2].name, "last_reset");
    ck_assert_str_eq(rs->windows[3].name, "out_sum");
    ck_assert_str_eq(rs->windows[4].name, "odd");
    /* named lists, then the inline one */
    ck_assert_uint_eq(rs->nlists, 3);
    ck_assert_str_eq(rs->lists[0].name, "blocked");
    ck_assert_int_eq(dg_list_type(rs->lists[1].list), DG_T_NUM);
    ck_assert_ptr_null(rs->lists[2].name);
    ck_assert_uint_eq(dg_list_len(rs->lists[2].list), 2);
    ck_assert_ptr_eq(rs->listv[1], rs->lists[1].list);
    /* event.* fields rules and windows read */
    ck_assert_uint_eq(rs->nextra, 2);
    ck_assert_str_eq(rs->extra[0], "partner");
    ck_assert_str_eq(rs->extra[1], "chain_note");

    /* windows */
    const struct dg_window *w = &rs->windows[0];
    ck_assert_uint_eq(w->on_mask, DG_EV_BIT(W));
    ck_assert_int_eq(w->nkeys, 1);
    ck_assert_int_eq(w->keys[0].kind, DG_REF_FIELD);
    ck_assert_int_eq(w->keys[0].index, DG_F_DEST_ADDRESS);
    ck_assert_str_eq(w->agg->name, "count");
    ck_assert_int_eq(w->type, DG_T_NUM);
    ck_assert_ptr_null(w->filter);
    ck_assert_int_eq(w->pos.line, 7);
    ck_assert_int_eq(w->pos.col, 3);
    w = &rs->windows[2];
    ck_assert_uint_eq(w->on_mask, DG_EV_BIT(S));
    ck_assert_ptr_nonnull(w->filter);
    ck_assert_str_eq(w->agg->name, "last");
    ck_assert_int_eq(w->field.index, DG_F_TS);
    ck_assert_int_eq(w->type, DG_T_TIME);
    w = &rs->windows[3];
    ck_assert_int_eq(w->nkeys, 2);
    ck_assert_int_eq(w->keys[1].index, DG_F_ASSET);
    w = &rs->windows[4];
    ck_assert_int_eq(w->keys[0].kind, DG_REF_EXTRA);
    ck_assert_int_eq(w->keys[0].index, 0);

    /* rules */
    const struct dg_rule *r = &rs->rules[0];
    ck_assert_str_eq(r->id, "r1");
    ck_assert_int_eq(r->action, DG_REVIEW);
    ck_assert_int_eq(r->mode, DG_ENFORCE);
    ck_assert_uint_eq(r->freeze, 0);
    ck_assert_int_eq(r->pos.line, 19);
    ck_assert_int_eq(r->pos.col, 9);
    /* the default reason */
    ck_assert_uint_eq(r->reason.nparts, 1);
    ck_assert_str_eq(r->reason.parts[0].text, "rule 'r1' matched");
    r = &rs->rules[1];
    ck_assert_str_eq(r->description, "after a 2FA reset");
    ck_assert_int_eq(r->action, DG_HOLD);
    ck_assert_uint_eq(r->reason.nparts, 2);
    ck_assert_ptr_null(r->reason.parts[0].text);
    ck_assert_str_eq(r->reason.parts[1].text, " after a reset; {literal}");
    r = &rs->rules[2];
    ck_assert_uint_eq(r->on_mask, DG_EV_BIT(O));
    ck_assert_int_eq(r->action, DG_FREEZE);
    ck_assert_int_eq(r->mode, DG_SHADOW);
    ck_assert_uint_eq(r->freeze, (1u << DG_SCOPE_WALLET) | (1u << DG_SCOPE_GLOBAL));
    r = &rs->rules[3];
    ck_assert_uint_eq(r->freeze, (1u << DG_SCOPE_ACCOUNT) | (1u << DG_SCOPE_DESTINATION));

    /* plans: withdrawals add to dest_cnt, acct_sum, odd and read
     * last_reset; security events add to last_reset only; outflows to
     * out_sum; balances touch nothing */
    ck_assert_uint_eq(rs->ntouch[W], 4);
    ck_assert_uint_eq(rs->touch[W][0], 0);
    ck_assert_uint_eq(rs->touch[W][1], 1);
    ck_assert_uint_eq(rs->touch[W][2], 2);
    ck_assert_uint_eq(rs->touch[W][3], 4);
    ck_assert_uint_eq(rs->reads[W][0], 1);
    ck_assert_uint_eq(rs->reads[W][1], 1);
    ck_assert_uint_eq(rs->reads[W][2], 1);
    ck_assert_uint_eq(rs->reads[W][3], 0);
    ck_assert_uint_eq(rs->reads[W][4], 1);
    ck_assert_uint_eq(rs->ntouch[S], 1);
    ck_assert_uint_eq(rs->touch[S][0], 2);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(rs->reads[S][i], 0);
    ck_assert_uint_eq(rs->ntouch[O], 1);
    ck_assert_uint_eq(rs->touch[O][0], 3);
    ck_assert_uint_eq(rs->reads[O][3], 1);
    ck_assert_uint_eq(rs->ntouch[B], 0);
    ck_assert_int_eq(rs->has_rules[W], 1);
    ck_assert_int_eq(rs->has_rules[S], 0);
    ck_assert_int_eq(rs->has_rules[O], 1);
    ck_assert_int_eq(rs->has_rules[B], 0);
    dg_ruleset_free(rs);
}
END_TEST

START_TEST(default_buckets)
{
    struct dg_ruleset *rs = load_ok(good);
    /* over 30m: 60 buckets of 30s */
    ck_assert_int_eq(rs->windows[0].over_ms, 30 * 60000);
    ck_assert_int_eq(rs->windows[0].step_ms, 30000);
    ck_assert_int_eq(rs->windows[0].nbuckets, 60);
    /* over 7d: 60 buckets of 2h48m */
    ck_assert_int_eq(rs->windows[1].over_ms, 7 * 86400000LL);
    ck_assert_int_eq(rs->windows[1].step_ms, (2 * 60 + 48) * 60000LL);
    ck_assert_int_eq(rs->windows[1].nbuckets, 60);
    /* precision 1h over 24h: 24 buckets */
    ck_assert_int_eq(rs->windows[2].step_ms, 3600000);
    ck_assert_int_eq(rs->windows[2].nbuckets, 24);
    /* over 1h: 60 buckets of 1m */
    ck_assert_int_eq(rs->windows[3].step_ms, 60000);
    /* over 1001ms (7 * 11 * 13): the largest divisor up to 60 is 13 */
    ck_assert_int_eq(rs->windows[4].over_ms, 1001);
    ck_assert_int_eq(rs->windows[4].nbuckets, 13);
    ck_assert_int_eq(rs->windows[4].step_ms, 77);
    dg_ruleset_free(rs);

    /* more: a prime number of ms gives one bucket; precision 1000 buckets
     * is the limit and allowed */
    rs = load_ok("windows:\n"
                 "  p: {on: withdrawal.requested, key: account_id, over: 61ms, agg: count}\n"
                 "  q: {on: withdrawal.requested, key: account_id, over: 1000s, precision: 1s, agg: count}\n"
                 "  s: {on: withdrawal.requested, key: account_id, over: 90s, agg: count}\n"
                 "rules:\n  - id: r\n    on: withdrawal.requested\n    when: p + q + s > 1\n    action: review\n");
    ck_assert_int_eq(rs->windows[0].nbuckets, 1);
    ck_assert_int_eq(rs->windows[0].step_ms, 61);
    ck_assert_int_eq(rs->windows[1].nbuckets, 1000);
    ck_assert_int_eq(rs->windows[1].step_ms, 1000);
    ck_assert_int_eq(rs->windows[2].nbuckets, 60);
    ck_assert_int_eq(rs->windows[2].step_ms, 1500);
    dg_ruleset_free(rs);
}
END_TEST

static char *edited(const char *from, const char *to)
{
    const char *p = strstr(good, from);
    ck_assert_msg(p != NULL, "'%s' not in the good file", from);
    size_t a = (size_t)(p - good), fl = strlen(from), tl = strlen(to);
    char *out = dg_xmalloc(sizeof good - fl + tl);
    memcpy(out, good, a);
    memcpy(out + a, to, tl);
    memcpy(out + a + tl, p + fl, sizeof good - a - fl);
    return out;
}

START_TEST(rules_version_digest)
{
    struct dg_ruleset *a = load_ok(good), *b = load_ok(good);
    ck_assert_str_eq(a->version, b->version);
    ck_assert_uint_eq(strlen(a->version), 4 + 32);
    ck_assert_int_eq(strncmp(a->version, "rv1-", 4), 0);
    for (int i = 4; i < 36; i++)
        ck_assert(strchr("0123456789abcdef", a->version[i]) != NULL);

    /* one byte different: in a rule, then only in the description */
    char *t1 = edited("dest_cnt >= 3", "dest_cnt >= 4");
    char *t2 = edited("test pack", "test pacK");
    struct dg_ruleset *c = load_ok(t1), *d = load_ok(t2);
    ck_assert_str_ne(a->version, c->version);
    ck_assert_str_ne(a->version, d->version);
    ck_assert_str_ne(c->version, d->version);
    /* state ids are about window definitions, not the file's bytes */
    for (size_t i = 0; i < a->nwindows; i++) {
        ck_assert_str_eq(a->windows[i].state_id, c->windows[i].state_id);
        ck_assert_str_eq(a->windows[i].state_id, d->windows[i].state_id);
    }
    free(t1);
    free(t2);
    dg_ruleset_free(a);
    dg_ruleset_free(b);
    dg_ruleset_free(c);
    dg_ruleset_free(d);
}
END_TEST

START_TEST(window_state_ids)
{
    struct dg_ruleset *a = load_ok(good);
    for (size_t i = 0; i < a->nwindows; i++) {
        size_t nl = strlen(a->windows[i].name);
        ck_assert_int_eq(strncmp(a->windows[i].state_id, a->windows[i].name, nl), 0);
        ck_assert_int_eq(a->windows[i].state_id[nl], ':');
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(a->windows[i].state_id, a->windows[j].state_id);
    }

    static const struct {
        const char *from, *to;
        int win; /* the one window whose id must change, -1 for none */
    } edits[] = {
        /* unrelated: another rule, an action, a reason, a list */
        {"acct_sum > 50000", "acct_sum > 60000", -1},
        {"action: review\n", "action: hold\n", -1},
        {"after a reset", "since a reset", -1},
        {"\"bad2\"", "\"bad3\"", -1},
        /* the window's own definition */
        {"over: 30m", "over: 31m", 0},
        {"over: 7d", "over: 8d", 1},
        {"precision: 1h", "precision: 30m", 2},
        {"2fa.reset", "2fa.disabled", 2},
        {"[wallet_id, asset]", "[wallet_id, chain]", 3},
        {"agg: distinct(account_id)", "agg: distinct(ip)", 4},
        {"dest_address, over: 30m, agg: count", "dest_address, over: 30m, agg: distinct(account_id)", 0},
    };
    for (size_t e = 0; e < DG_ARRAY_LEN(edits); e++) {
        char *t = edited(edits[e].from, edits[e].to);
        struct dg_ruleset *b = load_ok(t);
        ck_assert_uint_eq(b->nwindows, a->nwindows);
        for (size_t i = 0; i < a->nwindows; i++) {
            int same = !strcmp(a->windows[i].state_id, b->windows[i].state_id);
            ck_assert_msg(same == ((int)i != edits[e].win),
                          "edit '%s' -> '%s': window %zu state id %s", edits[e].from, edits[e].to,
                          i, same ? "unchanged" : "changed");
        }
        dg_ruleset_free(b);
        free(t);
    }
    dg_ruleset_free(a);
}
END_TEST

/* Columns of expression errors in block scalars, and a multi-line
 * condition compiled from a folded scalar. */
START_TEST(multiline_scalars)
{
    struct dg_ruleset *rs = load_ok(
        "rules:\n  - id: r1\n    on: withdrawal.requested\n"
        "    when: >-\n      amount_usd > 1000\n      and asset == \"BTC\"\n    action: review\n");
    ck_assert_uint_eq(rs->nrules, 1);
    dg_ruleset_free(rs);

    struct dg_diag d;
    char all[2048];
    const char *y = "rules:\n  - id: r1\n    on: withdrawal.requested\n"
                    "    when: |\n      amount_usd > 1000\n      and nosuch == 1\n    action: review\n";
    ck_assert_ptr_null(load(y, &d));
    dump(&d, all, sizeof all);
    /* the line is right; the column of a block scalar is counted from the
     * text, whose indentation YAML has removed */
    ck_assert_msg(d.n == 1 && !strncmp(d.lines[0], "r.yaml:6:", 9), "got:%s", all);
    ck_assert_ptr_nonnull(strstr(d.lines[0], "unknown field or window 'nosuch'"));
    dg_diag_free(&d);
}
END_TEST

static Suite *rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *tc;

    tc = tcase_create("bad");
    tcase_add_loop_test(tc, bad_file, 0, (int)DG_ARRAY_LEN(bad_files));
    tcase_add_test(tc, literal_prefixes);
    tcase_add_test(tc, all_errors_reported);
    suite_add_tcase(s, tc);

    tc = tcase_create("warnings");
    tcase_add_test(tc, warnings_unused);
    suite_add_tcase(s, tc);

    tc = tcase_create("good");
    tcase_add_test(tc, good_file_shape);
    tcase_add_test(tc, default_buckets);
    tcase_add_test(tc, multiline_scalars);
    suite_add_tcase(s, tc);

    tc = tcase_create("identity");
    tcase_add_test(tc, rules_version_digest);
    tcase_add_test(tc, window_state_ids);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rules_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
