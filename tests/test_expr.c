/*
 * test_expr.c - Check suite for engine/expr.c and engine/expr_funcs.c: the
 * condition language, compiled with a resolver of the test's own (a few
 * contract fields, three event.* fields, six windows, two named lists) and
 * evaluated against a hand-built event and window value array. Expected
 * values are written out by hand, never computed with the code under test.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "expr.h"
#include "util.h"

/* 2019-05-07T17:15:24Z */
#define T0 1557249324000LL
#define MIN_MS 60000LL
#define HOUR_MS 3600000LL

/* ------------------------------------------------------------------ */
/* the test's world: names, an event, window values, lists            */

enum { W_CNT, W_LAST_RESET, W_SEEN_DEST, W_EMPTY_SUM, W_LAST_IP, W_GAP, W_N };

static const struct {
    const char *name;
    dg_type type;
} windows[W_N] = {
    [W_CNT] = {"cnt", DG_T_NUM},
    [W_LAST_RESET] = {"last_reset", DG_T_TIME},
    [W_SEEN_DEST] = {"seen_dest", DG_T_BOOL},
    [W_EMPTY_SUM] = {"empty_sum", DG_T_NUM},
    [W_LAST_IP] = {"last_ip", DG_T_STR},
    [W_GAP] = {"gap", DG_T_DUR},
};

enum { X_FLAG, X_SCORE, X_LABEL, X_MISSING, X_N };
static const char *const extras[X_N] = {"flag", "score", "label", "missing"};

enum { L_BLOCKED, L_AMOUNTS, L_NAMED };
static const char *const list_names[L_NAMED] = {"blocked", "amounts"};

struct world {
    struct dg_list **lists; /* named lists first, then inline lists */
    size_t nlists;
    int inline_calls;
    struct dg_event ev;
    dg_value win[W_N];
};

static struct world W;

static int resolve(void *vctx, const char *name, size_t len, int after_in,
                   struct dg_ref *out, char *err, size_t errsz)
{
    struct world *w = vctx;
    (void)w;
    for (int i = 0; i < L_NAMED; i++)
        if (strlen(list_names[i]) == len && !memcmp(list_names[i], name, len)) {
            out->kind = DG_REF_LIST;
            out->index = i;
            out->type = dg_list_type(W.lists[i]);
            return 0;
        }
    if (len > 6 && !memcmp(name, "event.", 6)) {
        int f = dg_field_lookup(name + 6, len - 6);
        if (f >= 0) {
            out->kind = DG_REF_FIELD;
            out->index = f;
            out->type = dg_field_type(f);
            return 0;
        }
        for (int i = 0; i < X_N; i++)
            if (strlen(extras[i]) == len - 6 && !memcmp(extras[i], name + 6, len - 6)) {
                out->kind = DG_REF_EXTRA;
                out->index = i;
                out->type = DG_T_ANY;
                return 0;
            }
    }
    for (int i = 0; i < W_N; i++)
        if (strlen(windows[i].name) == len && !memcmp(windows[i].name, name, len)) {
            out->kind = DG_REF_WINDOW;
            out->index = i;
            out->type = windows[i].type;
            return 0;
        }
    int f = dg_field_lookup(name, len);
    if (f >= 0) {
        out->kind = DG_REF_FIELD;
        out->index = f;
        out->type = dg_field_type(f);
        return 0;
    }
    snprintf(err, errsz, "unknown %s '%.*s'", after_in ? "list" : "field or window", (int)len,
             name);
    return -1;
}

static int inline_list(void *vctx, const dg_value *items, size_t n, char *err, size_t errsz)
{
    struct world *w = vctx;
    w->inline_calls++;
    w->lists = dg_xrealloc(w->lists, (w->nlists + 1) * sizeof(*w->lists));
    w->lists[w->nlists] = dg_list_new(items, n);
    return (int)w->nlists++;
}

static const struct dg_expr_env env = {resolve, inline_list, &W};

static void world_setup(void)
{
    static const char *const blocked[] = {"bad1", "bad2", "bc1qevil"};
    dg_value items[3];

    memset(&W, 0, sizeof W);
    W.lists = dg_xcalloc(L_NAMED, sizeof(*W.lists));
    for (int i = 0; i < 3; i++)
        items[i] = dg_str(blocked[i], strlen(blocked[i]));
    W.lists[L_BLOCKED] = dg_list_new(items, 3);
    items[0] = dg_num(100);
    items[1] = dg_num(250.5);
    items[2] = dg_num(-1);
    W.lists[L_AMOUNTS] = dg_list_new(items, 3);
    W.nlists = L_NAMED;

    /* a withdrawal: present, absent (channel, balance_usd) and times */
    W.ev.type = DG_EV_WITHDRAWAL;
    W.ev.ts_ms = T0;
    W.ev.f[DG_F_EVENT_ID] = dg_str("e1", 2);
    W.ev.f[DG_F_TS] = dg_time(T0);
    W.ev.f[DG_F_ASSET] = dg_str("BTC", 3);
    W.ev.f[DG_F_AMOUNT_USD] = dg_num(1500);
    W.ev.f[DG_F_DEST_ADDRESS] = dg_str("bc1qxyz", 7);
    W.ev.f[DG_F_ACCOUNT_CREATED_AT] = dg_time(T0 - 2 * HOUR_MS);
    W.ev.extra[X_FLAG] = dg_bool(1);
    W.ev.extra[X_SCORE] = dg_num(7);
    W.ev.extra[X_LABEL] = dg_str("vip", 3);
    /* X_MISSING stays DG_T_NONE */

    W.win[W_CNT] = dg_num(3);
    W.win[W_LAST_RESET] = dg_time(T0 - 3 * HOUR_MS);
    W.win[W_SEEN_DEST] = dg_bool(0);
    W.win[W_EMPTY_SUM] = dg_none();
    W.win[W_LAST_IP] = dg_str("1.2.3.4", 7);
    W.win[W_GAP] = dg_none();
}

static void world_teardown(void)
{
    for (size_t i = 0; i < W.nlists; i++)
        dg_list_free(W.lists[i]);
    free(W.lists);
    memset(&W, 0, sizeof W);
}

/* ------------------------------------------------------------------ */
/* helpers                                                            */

static dg_expr *compile_as(const char *src, dg_type want)
{
    char err[256] = "";
    size_t off = 99999;
    dg_expr *e = dg_expr_compile(src, strlen(src), want, &env, &off, err, sizeof err);
    ck_assert_msg(e != NULL, "'%s' should compile, got: %s (at %zu)", src, err, off);
    return e;
}

static dg_value eval_as(const char *src, dg_type want)
{
    dg_expr *e = compile_as(src, want);
    struct dg_eval_ctx cx = {&W.ev, W.win, (const struct dg_list *const *)W.lists};
    dg_value v = dg_expr_eval(e, &cx);
    dg_expr_free(e);
    return v;
}

/* 1 true, 0 false, -1 unknown; also checks dg_expr_true agrees */
static int truth(const char *src)
{
    dg_expr *e = compile_as(src, DG_T_BOOL);
    struct dg_eval_ctx cx = {&W.ev, W.win, (const struct dg_list *const *)W.lists};
    dg_value v = dg_expr_eval(e, &cx);
    int t = dg_expr_true(e, &cx);
    dg_type st = dg_expr_type(e);
    dg_expr_free(e);
    /* a bare unknown field as a condition evaluates to its value; when
     * that is not a boolean the condition is unknown */
    if (v.t == DG_T_NONE || (st == DG_T_ANY && v.t != DG_T_BOOL)) {
        ck_assert_msg(t == 0, "'%s': unknown must not be true at rule level", src);
        return -1;
    }
    ck_assert_msg(v.t == DG_T_BOOL, "'%s' gave a %s, not a boolean", src,
                  dg_type_name((dg_type)v.t));
    ck_assert_msg(t == v.u.b, "'%s': dg_expr_true disagrees with dg_expr_eval", src);
    return v.u.b;
}

#define IS_TRUE(s) ck_assert_msg(truth(s) == 1, "'%s' should be true", s)
#define IS_FALSE(s) ck_assert_msg(truth(s) == 0, "'%s' should be false", s)
#define IS_UNKNOWN(s) ck_assert_msg(truth(s) == -1, "'%s' should be unknown", s)

static void is_num(const char *src, double want)
{
    dg_value v = eval_as(src, DG_T_NONE);
    ck_assert_msg(v.t == DG_T_NUM, "'%s' gave a %s", src, dg_type_name((dg_type)v.t));
    ck_assert_msg(v.u.n == want, "'%s' = %.17g, want %.17g", src, v.u.n, want);
}

static void is_dur(const char *src, int64_t want)
{
    dg_value v = eval_as(src, DG_T_NONE);
    ck_assert_msg(v.t == DG_T_DUR, "'%s' gave a %s", src, dg_type_name((dg_type)v.t));
    ck_assert_msg(v.u.ms == want, "'%s' = %lld ms, want %lld", src, (long long)v.u.ms,
                  (long long)want);
}

static void is_time(const char *src, int64_t want)
{
    dg_value v = eval_as(src, DG_T_NONE);
    ck_assert_msg(v.t == DG_T_TIME, "'%s' gave a %s", src, dg_type_name((dg_type)v.t));
    ck_assert_int_eq(v.u.ms, want);
}

static void is_missing(const char *src)
{
    dg_value v = eval_as(src, DG_T_NONE);
    ck_assert_msg(v.t == DG_T_NONE, "'%s' should be missing, got a %s", src,
                  dg_type_name((dg_type)v.t));
}

static void static_type(const char *src, dg_type want)
{
    dg_expr *e = compile_as(src, DG_T_NONE);
    ck_assert_msg(dg_expr_type(e) == want, "'%s' has static type %s, want %s", src,
                  dg_type_name(dg_expr_type(e)), dg_type_name(want));
    dg_expr_free(e);
}

/* ------------------------------------------------------------------ */
/* precedence and arithmetic                                          */

START_TEST(precedence)
{
    IS_TRUE("1 + 2 * 3 == 7");
    IS_TRUE("(1 + 2) * 3 == 9");
    IS_TRUE("10 - 4 - 3 == 3");       /* left associative */
    IS_TRUE("12 / 3 / 2 == 2");
    IS_TRUE("-2 * 3 == -6");
    IS_TRUE("2 - -3 == 5");
    IS_TRUE("2 * -(1 + 2) == -6");
    IS_TRUE("amount_usd * 2 + 1 == 3001");
    IS_TRUE("1_000 == 1000");
    IS_TRUE("0.25 + 0.5 == 0.75");
    /* and binds tighter than or; not tighter than and; cmp tighter than not */
    IS_TRUE("true or false and false");
    IS_FALSE("(true or false) and false");
    IS_FALSE("not false and false");
    IS_TRUE("not (false and false)");
    IS_TRUE("not 1 > 2");
    IS_TRUE("not not true");
    IS_TRUE("false or false or true");
    IS_TRUE("amount_usd > 1000 and asset == \"BTC\" or asset == \"ETH\"");
    IS_FALSE("amount_usd > 1000 and (asset == \"ETH\" or asset == \"XRP\")");
    is_num("1 + 2 * 3", 7);
    is_num("7 / 2", 3.5);
    is_num("-amount_usd", -1500);
    is_num("cnt * 10 - 1", 29);
}
END_TEST

START_TEST(durations_and_times)
{
    is_dur("2 * 30m", 60 * MIN_MS);
    is_dur("30m * 2", 60 * MIN_MS);
    is_dur("1.5 * 1h", 90 * MIN_MS);
    is_dur("1h30m", 90 * MIN_MS);
    is_dur("250ms + 1s", 1250);
    is_dur("1h - 90m", -30 * MIN_MS);
    is_dur("-30m", -30 * MIN_MS);
    is_dur("1h / 4", 15 * MIN_MS);
    is_dur("ts - last_reset", 3 * HOUR_MS);
    is_dur("account_created_at - ts", -2 * HOUR_MS);
    is_num("1h / 30m", 2);
    is_num("45m / 1h", 0.75);
    is_time("ts + 1h", T0 + HOUR_MS);
    is_time("1h + ts", T0 + HOUR_MS);
    is_time("ts - 1d", T0 - 24 * HOUR_MS);
    IS_TRUE("ts - last_reset < 24h");
    IS_FALSE("ts - last_reset < 3h");
    IS_TRUE("ts - last_reset <= 3h");
    IS_TRUE("ts - last_reset > 2h59m");
    IS_TRUE("2 * 30m == 1h");
    IS_TRUE("90s == 1m30s");
    IS_TRUE("1h / 30m == 2");
    IS_TRUE("ts - 1h > account_created_at");
    IS_TRUE("account_created_at + 2h == ts");
    IS_TRUE("2h + account_created_at == ts");
    IS_TRUE("1h - 90m == -30m");
    IS_TRUE("7d == 168h");
    IS_TRUE("1w == 7d");

    static_type("2 * 30m", DG_T_DUR);
    static_type("ts - last_reset", DG_T_DUR);
    static_type("ts - 30m", DG_T_TIME);
    static_type("1h / 30m", DG_T_NUM);
    static_type("1h / 2", DG_T_DUR);
    static_type("event.score", DG_T_ANY);
    static_type("-event.score", DG_T_NUM);
    static_type("event.score + 1", DG_T_NUM);
    static_type("amount_usd > 1", DG_T_BOOL);
}
END_TEST

START_TEST(comparisons_each_type)
{
    /* numbers */
    IS_TRUE("amount_usd == 1500");
    IS_FALSE("amount_usd != 1500");
    IS_TRUE("amount_usd > 1000");
    IS_FALSE("amount_usd < 1500");
    IS_TRUE("amount_usd <= 1500");
    IS_TRUE("amount_usd >= 1500");
    IS_FALSE("amount_usd > 1500");
    /* strings: == and != only */
    IS_TRUE("dest_address == \"bc1qxyz\"");
    IS_FALSE("dest_address == \"bc1qxy\"");   /* a prefix is not equal */
    IS_FALSE("dest_address == \"bc1qxyzz\"");
    IS_TRUE("asset != \"ETH\"");
    IS_TRUE("asset == 'BTC'");
    IS_TRUE("\"a\\\"b\" == 'a\"b'");
    IS_TRUE("\"tab\\there\" != \"tab here\"");
    IS_TRUE("last_ip == \"1.2.3.4\"");
    /* times */
    IS_TRUE("ts > account_created_at");
    IS_TRUE("ts == ts");
    IS_FALSE("account_created_at < last_reset");
    IS_TRUE("account_created_at >= last_reset");
    /* durations */
    IS_TRUE("1h > 59m");
    IS_TRUE("1h >= 60m");
    IS_FALSE("1h != 60m");
    IS_TRUE("250ms < 1s");
    /* booleans: == and != only */
    IS_TRUE("seen_dest == false");
    IS_TRUE("seen_dest != true");
    IS_TRUE("true == true");
    IS_FALSE("true == false");
    IS_TRUE("(amount_usd > 1) == true");
}
END_TEST

START_TEST(three_valued_logic)
{
    /* a missing field or an empty window makes a comparison unknown */
    IS_UNKNOWN("channel == \"web\"");
    IS_UNKNOWN("channel != \"web\"");
    IS_UNKNOWN("balance_usd > 0");
    IS_UNKNOWN("empty_sum > 5");
    IS_UNKNOWN("empty_sum <= 5");
    IS_UNKNOWN("empty_sum + 1 > 0");
    IS_UNKNOWN("gap < 1h");
    IS_UNKNOWN("5 < empty_sum");
    /* not unknown is unknown */
    IS_UNKNOWN("not (empty_sum > 5)");
    IS_UNKNOWN("not (channel == \"web\")");
    IS_UNKNOWN("not not (channel == \"web\")");
    /* false and unknown is false, either way round */
    IS_FALSE("false and empty_sum > 5");
    IS_FALSE("empty_sum > 5 and false");
    IS_FALSE("channel == \"web\" and amount_usd < 1");
    IS_UNKNOWN("true and empty_sum > 5");
    IS_UNKNOWN("empty_sum > 5 and true");
    /* true or unknown is true, either way round */
    IS_TRUE("true or empty_sum > 5");
    IS_TRUE("empty_sum > 5 or true");
    IS_TRUE("channel == \"web\" or amount_usd > 1");
    IS_UNKNOWN("false or empty_sum > 5");
    IS_UNKNOWN("empty_sum > 5 or false");
    IS_UNKNOWN("empty_sum > 5 or empty_sum < 5");
    IS_UNKNOWN("empty_sum > 5 and empty_sum < 5");
    /* the classic trap: "not above the limit" must not match on missing */
    IS_UNKNOWN("not (balance_usd > 1000)");
    IS_UNKNOWN("balance_usd == balance_usd");

    /* the rule-level result of unknown is 0 */
    dg_expr *e = compile_as("not (channel == \"web\")", DG_T_BOOL);
    struct dg_eval_ctx cx = {&W.ev, W.win, (const struct dg_list *const *)W.lists};
    ck_assert_int_eq(dg_expr_true(e, &cx), 0);
    W.ev.f[DG_F_CHANNEL] = dg_str("app", 3);
    ck_assert_int_eq(dg_expr_true(e, &cx), 1);
    W.ev.f[DG_F_CHANNEL] = dg_str("web", 3);
    ck_assert_int_eq(dg_expr_true(e, &cx), 0);
    dg_expr_free(e);
}
END_TEST

START_TEST(in_lists)
{
    IS_FALSE("dest_address in blocked");
    IS_TRUE("dest_address not in blocked");
    IS_TRUE("\"bad1\" in blocked");
    IS_TRUE("'bc1qevil' in blocked");
    IS_FALSE("\"bad\" in blocked");          /* prefix of a member */
    IS_FALSE("\"bad10\" in blocked");
    IS_FALSE("amount_usd in amounts");
    IS_TRUE("250.5 in amounts");
    IS_TRUE("-1 in amounts");
    IS_TRUE("cnt * 50 - 50 in amounts");     /* 100 */
    IS_TRUE("asset in [\"BTC\", \"ETH\"]");
    IS_FALSE("asset not in [\"BTC\", \"ETH\"]");
    IS_FALSE("asset in ['ETH']");
    IS_TRUE("amount_usd in [1500, 2]");
    IS_FALSE("amount_usd in [-1500, 2]");
    IS_TRUE("-1500 in [-1500, 2]");
    IS_TRUE("amount_usd not in [1, 2]");
    IS_TRUE("event.label in [\"vip\", \"gold\"]");
    IS_TRUE("event.score in [7]");
    IS_TRUE("(event.score in amounts) == false");
    /* missing or of another type at run time: unknown, and not in too */
    IS_UNKNOWN("channel in blocked");
    IS_UNKNOWN("channel not in blocked");
    IS_UNKNOWN("channel not in [\"web\"]");
    IS_UNKNOWN("empty_sum in amounts");
    IS_UNKNOWN("empty_sum not in amounts");
    IS_UNKNOWN("event.missing in [7]");
    IS_UNKNOWN("event.missing not in [7]");
    IS_UNKNOWN("event.score in [\"7\"]");
    IS_UNKNOWN("event.score not in [\"7\"]");
    IS_UNKNOWN("event.label in amounts");
    IS_UNKNOWN("event.flag in blocked");
    IS_UNKNOWN("event.flag not in blocked");
    /* in binds like a comparison: below and/or, above not */
    IS_TRUE("not asset in [\"ETH\"]");
    IS_TRUE("asset in [\"ETH\"] or asset in [\"BTC\"]");
    /* an inline list is handed to the compiler once per list */
    int before = W.inline_calls;
    dg_expr_free(compile_as("asset in [\"a\"] and asset not in [\"b\", \"c\"]", DG_T_BOOL));
    ck_assert_int_eq(W.inline_calls, before + 2);
}
END_TEST

START_TEST(list_api)
{
    dg_value s[4] = {dg_str("a", 1), dg_str("b", 1), dg_str("a", 1), dg_str("", 0)};
    struct dg_list *l = dg_list_new(s, 4);
    ck_assert_int_eq(dg_list_type(l), DG_T_STR);
    ck_assert_uint_eq(dg_list_len(l), 3); /* duplicates are kept once */
    dg_value q = dg_str("b", 1);
    ck_assert_int_eq(dg_list_contains(l, &q), 1);
    q = dg_str("", 0);
    ck_assert_int_eq(dg_list_contains(l, &q), 1);
    q = dg_str("ab", 2);
    ck_assert_int_eq(dg_list_contains(l, &q), 0);
    q = dg_num(1);
    ck_assert_int_eq(dg_list_contains(l, &q), 0);
    dg_list_free(l);

    dg_value n[3] = {dg_num(3), dg_num(-2.5), dg_num(1e9)};
    l = dg_list_new(n, 3);
    ck_assert_int_eq(dg_list_type(l), DG_T_NUM);
    ck_assert_uint_eq(dg_list_len(l), 3);
    q = dg_num(-2.5);
    ck_assert_int_eq(dg_list_contains(l, &q), 1);
    q = dg_num(1e9);
    ck_assert_int_eq(dg_list_contains(l, &q), 1);
    q = dg_num(2.5);
    ck_assert_int_eq(dg_list_contains(l, &q), 0);
    q = dg_str("3", 1);
    ck_assert_int_eq(dg_list_contains(l, &q), 0);
    dg_list_free(l);

    /* a large string list (forces the set past its first size) */
    char (*names)[16] = dg_xmalloc(2000 * sizeof(*names));
    dg_value *big = dg_xmalloc(2000 * sizeof(*big));
    for (int i = 0; i < 2000; i++) {
        int len = snprintf(names[i], 16, "addr%d", i);
        big[i] = dg_str(names[i], (size_t)len);
    }
    l = dg_list_new(big, 2000);
    ck_assert_uint_eq(dg_list_len(l), 2000);
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(dg_list_contains(l, &big[i]), 1);
    q = dg_str("addr2000", 8);
    ck_assert_int_eq(dg_list_contains(l, &q), 0);
    dg_list_free(l);
    free(big);
    free(names);
}
END_TEST

START_TEST(time_literal_coercion)
{
    IS_TRUE("ts == \"2019-05-07T17:15:24Z\"");
    IS_TRUE("ts > \"2019-05-07T17:15:23.999Z\"");
    IS_FALSE("ts > \"2019-05-07T17:15:24.001Z\"");
    IS_TRUE("\"2019-05-08T00:00:00Z\" > ts");
    IS_TRUE("ts == \"2019-05-07T19:15:24+02:00\"");
    IS_TRUE("account_created_at < '2019-05-07T16:00:00Z'");
    IS_UNKNOWN("last_reset > \"2019-01-01T00:00:00Z\" and gap > 1s");
}
END_TEST

/* ------------------------------------------------------------------ */
/* functions: every row of dg_funcs[]                                 */

static const char *const tested_funcs[] = {"starts_with", "ends_with", "contains", "iequals",
                                           "len", "default", "abs", "min", "max", "seconds",
                                           "round"};

START_TEST(every_function_is_tested)
{
    for (size_t i = 0; i < dg_nfuncs; i++) {
        int found = 0;
        for (size_t j = 0; j < DG_ARRAY_LEN(tested_funcs); j++)
            found |= !strcmp(dg_funcs[i].name, tested_funcs[j]);
        ck_assert_msg(found, "function '%s' has no test in test_expr.c", dg_funcs[i].name);
        ck_assert_ptr_eq(dg_func_lookup(dg_funcs[i].name, strlen(dg_funcs[i].name)),
                         &dg_funcs[i]);
    }
    ck_assert_uint_eq(dg_nfuncs, DG_ARRAY_LEN(tested_funcs));
    ck_assert_ptr_null(dg_func_lookup("le", 2));
    ck_assert_ptr_null(dg_func_lookup("lens", 4));
}
END_TEST

START_TEST(string_functions)
{
    IS_TRUE("starts_with(dest_address, \"bc1\")");
    IS_TRUE("starts_with(dest_address, \"\")");
    IS_TRUE("starts_with(dest_address, \"bc1qxyz\")");
    IS_FALSE("starts_with(dest_address, \"bc1qxyzz\")");
    IS_FALSE("starts_with(dest_address, \"c1\")");
    IS_UNKNOWN("starts_with(channel, \"w\")");
    IS_UNKNOWN("starts_with(event.score, \"7\")");
    IS_TRUE("starts_with(event.label, \"v\")");

    IS_TRUE("ends_with(dest_address, \"xyz\")");
    IS_FALSE("ends_with(dest_address, \"xy\")");
    IS_FALSE("ends_with(\"a\", \"abc\")");
    IS_TRUE("ends_with(\"abc\", \"abc\")");
    IS_UNKNOWN("ends_with(asset, channel)");

    IS_TRUE("contains(dest_address, \"qx\")");
    IS_TRUE("contains(dest_address, \"\")");
    IS_TRUE("contains(dest_address, \"yz\")");
    IS_FALSE("contains(dest_address, \"zz\")");
    IS_FALSE("contains(\"ab\", \"abc\")");
    IS_UNKNOWN("contains(channel, \"\")");

    IS_TRUE("iequals(asset, \"btc\")");
    IS_TRUE("iequals(asset, \"BtC\")");
    IS_FALSE("iequals(asset, \"btcx\")");
    IS_FALSE("iequals(asset, \"bt\")");
    IS_UNKNOWN("iequals(channel, \"x\")");

    IS_TRUE("len(dest_address) == 7");
    IS_TRUE("len(\"\") == 0");
    IS_TRUE("len(event.label) == 3");
    IS_UNKNOWN("len(channel) == 0");
    IS_UNKNOWN("len(event.score) > 0");
    is_num("len('abc')", 3);
    is_missing("len(event.flag)");
}
END_TEST

START_TEST(value_functions)
{
    /* default(): the one function that turns missing into a value */
    IS_TRUE("default(channel, \"web\") == \"web\"");
    IS_TRUE("default(asset, \"x\") == \"BTC\"");
    IS_TRUE("default(empty_sum, 0) == 0");
    IS_TRUE("default(empty_sum, 0) + 1 == 1");
    IS_TRUE("default(cnt, 0) == 3");
    IS_TRUE("default(event.missing, 5) == 5");
    IS_TRUE("default(event.score, 0) == 7");
    IS_TRUE("default(gap, 1h) == 1h");
    IS_TRUE("not default(balance_usd > 1000, false)");
    is_missing("default(empty_sum, balance_usd)");

    IS_TRUE("abs(-5) == 5");
    IS_TRUE("abs(5) == 5");
    IS_TRUE("abs(0 - amount_usd) == 1500");
    IS_TRUE("abs(-30m) == 30m");
    IS_TRUE("abs(account_created_at - ts) == 2h");
    IS_TRUE("abs(event.score) == 7");
    IS_UNKNOWN("abs(empty_sum) > 0");
    is_missing("abs(event.label)");
    is_dur("abs(1h - 3h)", 2 * HOUR_MS);

    IS_TRUE("min(1, 2) == 1");
    IS_TRUE("max(1, 2) == 2");
    IS_TRUE("min(3, 1, 2, 5) == 1");
    IS_TRUE("max(3, 1, 7, 5) == 7");
    IS_TRUE("min(2, 1, 3) == 1");
    IS_TRUE("max(-1, -2) == -1");
    IS_TRUE("min(1h, 30m) == 30m");
    IS_TRUE("max(ts, account_created_at) == ts");
    IS_TRUE("min(ts, account_created_at, last_reset) == last_reset");
    IS_TRUE("min(event.score, 10) == 7");
    IS_TRUE("max(event.score, 10) == 10");
    /* any missing argument makes the result missing */
    IS_UNKNOWN("min(amount_usd, balance_usd) > 0");
    IS_UNKNOWN("max(empty_sum, 5) > 0");
    IS_UNKNOWN("max(5, empty_sum) > 0");
    IS_UNKNOWN("min(1, 2, 3, empty_sum) > 0");
    is_missing("min(amount_usd, balance_usd)");
    /* a wrong run-time type (an unknown field holding a string) too */
    is_missing("min(event.label, 10)");
    is_missing("min(10, event.label)");
    is_missing("min(event.label, event.label)");
    is_missing("max(event.flag, event.flag)");
    is_time("max(ts, last_reset)", T0);
    is_dur("max(1h, 90m, 30m)", 90 * MIN_MS);

    is_num("round(2.5)", 3);
    is_num("round(-2.5)", -3);
    is_num("round(2.4)", 2);
    is_num("round(1.23456, 2)", 1.23);
    is_num("round(amount_usd / 7, 0)", 214);
    is_missing("round(1.5, 7)");
    is_missing("round(1.5, -1)");
    is_missing("round(empty_sum)");
    is_missing("round(event.label)");
    IS_TRUE("round(event.score / 2) == 4");

    IS_TRUE("seconds(90s) == 90");
    IS_TRUE("seconds(1500ms) == 1.5");
    IS_TRUE("seconds(ts - last_reset) == 10800");
    IS_UNKNOWN("seconds(gap) > 0");
    is_num("seconds(-2m)", -120);
}
END_TEST

/* ------------------------------------------------------------------ */
/* unknown event fields (DG_T_ANY)                                    */

START_TEST(unknown_fields)
{
    IS_TRUE("event.label == \"vip\"");
    IS_FALSE("event.label == \"VIP\"");
    IS_TRUE("event.label != \"x\"");
    IS_UNKNOWN("event.label == 1");
    IS_UNKNOWN("event.label != 1");
    IS_UNKNOWN("event.label == true");
    IS_TRUE("event.score == 7");
    IS_TRUE("event.score > 5");
    IS_FALSE("event.score < 5");
    IS_UNKNOWN("event.score == \"7\"");
    IS_TRUE("event.score == event.score");
    IS_UNKNOWN("event.score == event.label");
    IS_TRUE("event.flag");
    IS_TRUE("event.flag == true");
    IS_TRUE("event.flag and true");
    IS_FALSE("not event.flag");
    IS_UNKNOWN("event.flag == 1");
    IS_UNKNOWN("event.label");
    IS_UNKNOWN("event.score");
    IS_UNKNOWN("event.label and true");
    IS_TRUE("event.label or true");
    IS_FALSE("event.score and false");
    IS_UNKNOWN("not event.label");
    IS_TRUE("event.score + 1 == 8");
    IS_TRUE("event.score * 2 > amount_usd / 1000");
    IS_UNKNOWN("event.label + 1 == 8");
    IS_UNKNOWN("event.flag * 2 == 2");
    IS_TRUE("-event.score == -7");
    is_missing("-event.label");
    is_missing("event.label / 2");
    /* ordering on strings and booleans means nothing: unknown, whatever
     * the values (the compiler refuses it when the types are known) */
    IS_UNKNOWN("event.label < \"zzz\"");
    IS_UNKNOWN("event.label < \"vip\"");
    IS_UNKNOWN("event.label >= \"vip\"");
    IS_UNKNOWN("event.flag < true");
    IS_UNKNOWN("event.flag <= true");
    IS_UNKNOWN("event.flag > false");
    /* a missing unknown field */
    IS_UNKNOWN("event.missing == 1");
    IS_UNKNOWN("event.missing");
    IS_UNKNOWN("not event.missing");
    IS_UNKNOWN("event.missing == event.missing");
    /* event.NAME of a contract field is that field, with its type */
    IS_TRUE("event.amount_usd > 1000");
    IS_TRUE("event.ts - last_reset == 3h");
    static_type("event.amount_usd", DG_T_NUM);
    /* a decoder may hand over a number where a rule expects a string and
     * vice versa; the value changes, the compiled rule does not */
    W.ev.extra[X_LABEL] = dg_num(1);
    IS_TRUE("event.label == 1");
    IS_UNKNOWN("event.label == \"vip\"");
}
END_TEST

START_TEST(division_by_zero)
{
    is_missing("amount_usd / 0");
    is_missing("amount_usd / (cnt - 3)");
    is_missing("1h / 0");
    is_missing("1h / (ts - ts)");
    is_missing("1h / (1h - 60m)");
    is_missing("1h / (ts - ts)");
    is_missing("event.score / 0");
    IS_UNKNOWN("amount_usd / 0 > 1");
    IS_UNKNOWN("amount_usd / 0 == amount_usd / 0");
    IS_TRUE("amount_usd / 0 > 1 or true");
    IS_TRUE("default(amount_usd / 0, -1) == -1");
    is_num("0 / amount_usd", 0);
}
END_TEST

/* found by fuzz_expr: time and duration arithmetic must not overflow int64
 * (undefined behaviour); a result out of range is missing */
START_TEST(time_arithmetic_overflow)
{
    is_missing("ts + 9223372036854775807ms");
    IS_UNKNOWN("ts + 9223372036854775807ms > ts");
    is_missing("-(-9223372036854775807ms - 1ms)");
    is_missing("1000000000000 * 100000000d");
    IS_TRUE("ts + 1d > ts");
}
END_TEST

START_TEST(ref_value)
{
    struct dg_eval_ctx cx = {&W.ev, W.win, (const struct dg_list *const *)W.lists};
    struct dg_ref r = {DG_REF_FIELD, DG_F_ASSET, DG_T_STR};
    dg_value v = dg_ref_value(&r, &cx);
    ck_assert_int_eq(v.t, DG_T_STR);
    ck_assert_uint_eq(v.len, 3);
    ck_assert_int_eq(memcmp(v.u.s, "BTC", 3), 0);
    r = (struct dg_ref){DG_REF_EXTRA, X_SCORE, DG_T_ANY};
    v = dg_ref_value(&r, &cx);
    ck_assert_int_eq(v.t, DG_T_NUM);
    ck_assert(v.u.n == 7);
    r = (struct dg_ref){DG_REF_WINDOW, W_LAST_RESET, DG_T_TIME};
    v = dg_ref_value(&r, &cx);
    ck_assert_int_eq(v.t, DG_T_TIME);
    ck_assert_int_eq(v.u.ms, T0 - 3 * HOUR_MS);
    r = (struct dg_ref){DG_REF_LIST, 0, DG_T_STR};
    v = dg_ref_value(&r, &cx);
    ck_assert_int_eq(v.t, DG_T_NONE);
}
END_TEST

/* ------------------------------------------------------------------ */
/* compile errors                                                     */

struct bad {
    const char *src;
    const char *msg; /* a substring of the message */
    size_t off;      /* byte offset of the error */
};

static const struct bad bad_exprs[] = {
    {"strats_with(dest_address, \"x\")", "unknown function 'strats_with' (did you mean 'starts_with'?)", 0},
    {"asset == \"x\" and lenn(asset) > 1", "unknown function 'lenn' (did you mean 'len'?)", 17},
    {"uppercase(asset) == \"BTC\"", "unknown function 'uppercase'", 0},
    {"amount_usd > 5m", "type mismatch: number > duration", 11},
    {"ts - last_reset < 24", "type mismatch: duration < number", 16},
    {"dest_address > 5", "type mismatch: string > number", 13},
    {"asset == 5", "type mismatch: string == number", 6},
    {"ts == 5", "type mismatch: time == number", 3},
    {"event.label > ts", "type mismatch: any > time", 12},
    {"asset < \"b\"", "strings can only be compared with == or !=", 6},
    {"seen_dest >= true", "booleans can only be compared with == or !=", 10},
    {"amount_usd = 5", "unexpected '=' (use '==' to compare)", 11},
    {"asset ! = \"x\"", "unexpected '!' (use 'not')", 6},
    {"true && false", "unexpected '&' (use 'and' / 'or')", 5},
    {"true || false", "unexpected '|' (use 'and' / 'or')", 5},
    {"asset @ 1", "unexpected character '@'", 6},
    {"asset == \"BTC", "unterminated string", 9},
    {"asset == 'BTC", "unterminated string", 9},
    {"asset == \"a\\qb\"", "unknown escape '\\q' in string", 11},
    {"ts - last_reset < 5x", "bad duration '5x'", 18},
    {"amount_usd > 1.5h", "bad duration '1.5h'", 13},
    {"", "empty expression", 0},
    {"  \t ", "empty expression", 0},
    {"amount_usd > 5 5", "unexpected '5' after the end of the expression", 15},
    {"amount_usd > 5)", "unexpected ')' after the end of the expression", 14},
    {"amount_usd > ", "expected a value, found end of expression", 13},
    {"(amount_usd > 1", "expected ')', found end of expression", 15},
    {"amount_usd > 1 and", "expected a value, found end of expression", 18},
    {"blocked == \"x\"", "list 'blocked' can only follow 'in' or 'not in'", 0},
    {"len(blocked) > 1", "list 'blocked' can only follow 'in' or 'not in'", 4},
    {"asset in cnt", "'cnt' is not a list", 9},
    {"asset in nolist", "unknown list 'nolist'", 9},
    {"asset in", "expected a list name or [ ... ] after 'in', found end of expression", 8},
    {"asset not blocked", "expected 'in' after 'not' here", 6},
    {"asset in [\"a\", 1]", "a list mixes strings and numbers", 15},
    {"amount_usd in [1, 'a']", "a list mixes strings and numbers", 18},
    {"asset in []", "empty list", 9},
    {"asset in [true]", "expected a string or number in the list, found 'true'", 10},
    {"asset in [\"a\" \"b\"]", "expected ',' or ']', found '\"b\"'", 14},
    {"asset in amounts", "type mismatch: string in a list of numbers", 6},
    {"amount_usd not in blocked", "type mismatch: number not in a list of strings", 11},
    {"asset in [1, 2]", "type mismatch: string in a list of numbers", 6},
    {"ts in [1]", "type mismatch: time in a list of numbers", 3},
    {"seen_dest in blocked", "type mismatch: boolean in a list of strings", 10},
    {"len(asset, asset) > 1", "'len' takes 1 argument, got 2: len(string)", 0},
    {"min(1) > 0", "'min' takes 2 arguments, got 1", 0},
    {"min(1, 2, 3, 4, 5) > 0", "too many arguments to 'min'", 16},
    {"starts_with(asset)", "'starts_with' takes 2 arguments, got 1", 0},
    {"starts_with(amount_usd, \"x\")", "starts_with(string, prefix): argument 1 is a number, not a string", 0},
    {"seconds(5) > 1", "seconds(duration): argument is a number, not a duration", 0},
    {"round(asset) > 1", "round(number, digits): argument 1 is a string, not a number", 0},
    {"round(1, 2, 3) > 1", "'round' takes 1 argument, got 3", 0},
    {"abs(asset) > 1", "argument is a string, not a number or duration", 0},
    {"default(asset, 5) == 5", "the fallback is a number but the value is a string", 0},
    {"min(1, 1h) > 0", "arguments must be numbers, durations or times of one kind", 0},
    {"min(\"a\", \"b\") == \"a\"", "arguments must be numbers, durations or times of one kind", 0},
    {"nosuch > 1", "unknown field or window 'nosuch'", 0},
    {"amount_usd > 1 and nosuch", "unknown field or window 'nosuch'", 19},
    {"\"abc\" + 1 == 1", "type mismatch: string + number", 6},
    {"ts + ts > ts", "type mismatch: time + time", 3},
    {"1h * 1h > 1h", "type mismatch: duration * duration", 3},
    {"2 / 1h > 1", "type mismatch: number / duration", 2},
    {"-asset == \"x\"", "cannot negate a string", 0},
    {"not amount_usd", "'not' needs a condition, not a number", 4},
    {"amount_usd and true", "'and' needs a condition, not a number", 0},
    {"true or asset", "'or' needs a condition, not a string", 8},
    {"ts > \"yesterday\"", "'yesterday' is not an RFC 3339 time", 5},
    {"\"2019-13-01T00:00:00Z\" < ts", "is not an RFC 3339 time", 0},
    {"amount_usd", "expected a boolean, but this is a number", 0},
    {"ts - last_reset", "expected a boolean, but this is a duration", 0},
};

static void check_bad(const char *src, size_t len, const char *want, size_t want_off)
{
    char err[256] = "";
    size_t off = 99999;
    dg_expr *e = dg_expr_compile(src, len, DG_T_BOOL, &env, &off, err, sizeof err);
    ck_assert_msg(e == NULL, "'%.60s' should not compile", src);
    ck_assert_msg(strstr(err, want) != NULL, "'%.60s': message '%s' lacks '%s'", src, err, want);
    ck_assert_msg(off == want_off, "'%.60s': error at %zu, want %zu (%s)", src, off, want_off,
                  err);
}

START_TEST(compile_errors)
{
    const struct bad *b = &bad_exprs[_i];
    check_bad(b->src, strlen(b->src), b->msg, b->off);
}
END_TEST

static char *repeat(const char *unit, int n, const char *tail)
{
    dg_buf b = {0};
    for (int i = 0; i < n; i++)
        dg_buf_puts(&b, unit);
    dg_buf_puts(&b, tail);
    return b.data;
}

START_TEST(nesting_and_length_limits)
{
    char *s;

    /* 64 levels are fine: 63 '(' plus the top level */
    {
        dg_buf b = {0};
        for (int i = 0; i < 63; i++)
            dg_buf_putc(&b, '(');
        dg_buf_puts(&b, "true");
        for (int i = 0; i < 63; i++)
            dg_buf_putc(&b, ')');
        dg_expr_free(compile_as(b.data, DG_T_BOOL));
        dg_buf_free(&b);
    }
    {
        dg_buf b = {0};
        for (int i = 0; i < 100; i++)
            dg_buf_putc(&b, '(');
        dg_buf_puts(&b, "true");
        for (int i = 0; i < 100; i++)
            dg_buf_putc(&b, ')');
        /* the 65th level is the 64th '(' (offset 63) opening level 65 */
        check_bad(b.data, b.len, "expression nested too deeply (more than 64 levels)", 64);
        dg_buf_free(&b);
    }
    s = repeat("not ", 100, "true");
    check_bad(s, strlen(s), "expression nested too deeply (more than 64 levels)", 63 * 4);
    free(s);
    s = repeat("not ", 62, "true");
    IS_TRUE(s);
    free(s);
    s = repeat("-", 100, "1 > 0");
    check_bad(s, strlen(s), "expression nested too deeply (more than 64 levels)", 63);
    free(s);
    s = repeat("- ", 62, "1 == 1");
    IS_TRUE(s);
    free(s);
    /* 10000 '(' fail just as cleanly, without running out of stack */
    s = repeat("(", 4000, "true");
    check_bad(s, strlen(s), "nested too deeply", 64);
    free(s);
    s = repeat("min(", 100, "1");
    check_bad(s, strlen(s), "nested too deeply", 64 * 4);
    free(s);

    /* length: 4096 bytes compile, 4097 do not */
    {
        char *src = dg_xmalloc(4098);
        memcpy(src, "true", 4);
        memset(src + 4, ' ', 4092);
        src[4096] = '\0';
        dg_expr_free(compile_as(src, DG_T_BOOL));
        src[4096] = ' ';
        src[4097] = '\0';
        check_bad(src, 4097, "expression longer than 4096 bytes", 0);
        free(src);
    }
}
END_TEST

/* A failed compile frees everything it built, including inline lists'
 * string copies; run under ASan this is the leak check. The message never
 * overflows a small buffer. */
START_TEST(errors_are_clean)
{
    char err[16];
    size_t off = 0;
    const char *src = "asset in [\"aaaaaaaa\", \"bbbbbbbbbb\", 3] and unknown_function_name(1)";
    ck_assert_ptr_null(dg_expr_compile(src, strlen(src), DG_T_BOOL, &env, &off, err, sizeof err));
    ck_assert_uint_lt(strlen(err), sizeof err);
    ck_assert_uint_eq(off, 36);
    src = "starts_with(asset, \"x\" and true) or len(asset, 1, 2, 3, 4) > 0";
    ck_assert_ptr_null(dg_expr_compile(src, strlen(src), DG_T_BOOL, &env, &off, err, sizeof err));
    /* not NUL-terminated source: compile exactly len bytes */
    src = "amount_usd > 1000 GARBAGE";
    dg_expr *e = dg_expr_compile(src, 17, DG_T_BOOL, &env, &off, err, sizeof err);
    ck_assert_ptr_nonnull(e);
    dg_expr_free(e);
    dg_expr_free(NULL);
}
END_TEST

static Suite *expr_suite(void)
{
    Suite *s = suite_create("expr");
    TCase *tc;

    tc = tcase_create("arithmetic");
    tcase_add_checked_fixture(tc, world_setup, world_teardown);
    tcase_add_test(tc, precedence);
    tcase_add_test(tc, durations_and_times);
    tcase_add_test(tc, division_by_zero);
    tcase_add_test(tc, time_arithmetic_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("compare");
    tcase_add_checked_fixture(tc, world_setup, world_teardown);
    tcase_add_test(tc, comparisons_each_type);
    tcase_add_test(tc, time_literal_coercion);
    tcase_add_test(tc, three_valued_logic);
    tcase_add_test(tc, unknown_fields);
    tcase_add_test(tc, ref_value);
    suite_add_tcase(s, tc);

    tc = tcase_create("lists");
    tcase_add_checked_fixture(tc, world_setup, world_teardown);
    tcase_add_test(tc, in_lists);
    tcase_add_test(tc, list_api);
    suite_add_tcase(s, tc);

    tc = tcase_create("functions");
    tcase_add_checked_fixture(tc, world_setup, world_teardown);
    tcase_add_test(tc, every_function_is_tested);
    tcase_add_test(tc, string_functions);
    tcase_add_test(tc, value_functions);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, world_setup, world_teardown);
    tcase_add_loop_test(tc, compile_errors, 0, (int)DG_ARRAY_LEN(bad_exprs));
    tcase_add_test(tc, nesting_and_length_limits);
    tcase_add_test(tc, errors_are_clean);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(expr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
