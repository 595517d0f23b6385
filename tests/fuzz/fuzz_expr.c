/*
 * fuzz_expr.c - libFuzzer target for the condition language (expr.c,
 * expr_funcs.c): the input is compiled as one expression against a test
 * resolver that knows every contract field, a few event.* extras, windows of
 * each value type and two named lists; when it compiles, it is evaluated
 * against a withdrawal and an account.security event (so absent fields and
 * empty windows, the "unknown" branch of three-valued logic, are hit too).
 */
#include "event.h"
#include "expr.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INLINE 64 /* inline lists one expression may create */

/* the windows the resolver knows, with the type each aggregates to */
static const struct {
    const char *name;
    dg_type type;
} windows[] = {
    {"dst_accounts_30m", DG_T_NUM}, {"acct_usd_24h", DG_T_NUM}, {"last_2fa_reset", DG_T_TIME},
    {"seen_dest_90d", DG_T_BOOL},   {"last_ip", DG_T_STR},      {"empty_win", DG_T_NUM},
};
#define NWIN (sizeof windows / sizeof windows[0])

static const char *const extra[] = {"risk_score", "country", "vip"};
#define NEXTRA (sizeof extra / sizeof extra[0])

struct fctx {
    const struct dg_list *lists[2 + MAX_INLINE];
    struct dg_list *inl[MAX_INLINE];
    size_t ninl;
};

static struct dg_list *named_str, *named_num;
static dg_decoder *dec_w, *dec_s;
static struct dg_event ev_w, ev_s;
static dg_value win_full[NWIN], win_empty[NWIN];

static int eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && !memcmp(s, lit, len);
}

static int resolve(void *vctx, const char *name, size_t len, int after_in, struct dg_ref *out,
                   char *err, size_t errsz)
{
    (void)vctx;
    if (after_in) {
        if (eq(name, len, "blocked_addrs")) {
            out->kind = DG_REF_LIST;
            out->index = 0;
            out->type = DG_T_STR;
            return 0;
        }
        if (eq(name, len, "vip_tiers")) {
            out->kind = DG_REF_LIST;
            out->index = 1;
            out->type = DG_T_NUM;
            return 0;
        }
        snprintf(err, errsz, "unknown list");
        return -1;
    }
    if (len > 6 && !memcmp(name, "event.", 6)) {
        int f = dg_field_lookup(name + 6, len - 6);
        if (f >= 0) {
            out->kind = DG_REF_FIELD;
            out->index = f;
            out->type = dg_field_type(f);
            return 0;
        }
        for (size_t i = 0; i < NEXTRA; i++)
            if (eq(name + 6, len - 6, extra[i])) {
                out->kind = DG_REF_EXTRA;
                out->index = (int)i;
                out->type = DG_T_ANY;
                return 0;
            }
        snprintf(err, errsz, "unknown extra field");
        return -1;
    }
    for (size_t i = 0; i < NWIN; i++)
        if (eq(name, len, windows[i].name)) {
            out->kind = DG_REF_WINDOW;
            out->index = (int)i;
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
    snprintf(err, errsz, "unknown name");
    return -1;
}

static int inline_list(void *vctx, const dg_value *items, size_t n, char *err, size_t errsz)
{
    struct fctx *c = vctx;
    if (c->ninl == MAX_INLINE) {
        snprintf(err, errsz, "too many inline lists");
        return -1;
    }
    c->inl[c->ninl] = dg_list_new(items, n);
    c->lists[2 + c->ninl] = c->inl[c->ninl];
    return (int)(2 + c->ninl++);
}

static void setup(void)
{
    static const char wjson[] =
        "{\"event_id\":\"e-1\",\"type\":\"withdrawal.requested\",\"ts\":\"2024-03-01T12:00:00.250Z\","
        "\"withdrawal_id\":\"w-1\",\"account_id\":\"acct-000123\",\"asset\":\"BTC\","
        "\"chain\":\"bitcoin\",\"amount\":\"0.75\",\"amount_usd\":48000.5,"
        "\"dest_address\":\"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh\",\"hot_wallet\":\"hw-btc-1\","
        "\"balance_usd\":50000,\"account_created_at\":\"2024-02-28T00:00:00Z\",\"channel\":\"api\","
        "\"api_key_id\":\"k-9\",\"ip\":\"203.0.113.7\",\"device_id\":\"dev-42\","
        "\"risk_score\":0.93,\"country\":\"NL\",\"vip\":true}";
    static const char sjson[] =
        "{\"event_id\":\"e-2\",\"type\":\"account.security\",\"ts\":1709294400000,"
        "\"account_id\":\"acct-000123\",\"action\":\"2fa.reset\",\"ip\":\"198.51.100.2\"}";
    static const char addr1[] = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh";
    static const char addr2[] = "0x52908400098527886e0f7030069857d2e4169ee7";
    dg_value strs[2], nums[2];
    struct dg_reject rej;

    strs[0] = dg_str(addr1, sizeof addr1 - 1);
    strs[1] = dg_str(addr2, sizeof addr2 - 1);
    nums[0] = dg_num(1);
    nums[1] = dg_num(3);

    named_str = dg_list_new(strs, 2);
    named_num = dg_list_new(nums, 2);
    dec_w = dg_decoder_new(extra, NEXTRA);
    dec_s = dg_decoder_new(extra, NEXTRA);
    if (dg_decode(dec_w, wjson, sizeof wjson - 1, &ev_w, &rej) ||
        dg_decode(dec_s, sjson, sizeof sjson - 1, &ev_s, &rej)) {
        fprintf(stderr, "fuzz_expr: fixed event rejected: %s\n", rej.msg);
        abort();
    }
    win_full[0] = dg_num(7);
    win_full[1] = dg_num(125000.25);
    win_full[2] = dg_time(ev_w.ts_ms - 3600 * 1000);
    win_full[3] = dg_bool(0);
    win_full[4] = dg_str("203.0.113.7", 11);
    win_full[5] = dg_none();
    /* win_empty: all missing, as for a key with no events yet */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fctx c;
    struct dg_expr_env env = {resolve, inline_list, &c};
    char err[256];
    size_t off = 0;
    dg_type want = DG_T_BOOL;

    if (!dec_w)
        setup();
    memset(&c, 0, sizeof c);
    c.lists[0] = named_str;
    c.lists[1] = named_num;
    /* a leading byte picks the wanted type, so non-boolean expressions
     * (templates and window fields use those) are compiled too */
    if (size > 0 && data[0] == '#') {
        want = DG_T_NONE;
        data++;
        size--;
    }
    err[0] = '\0';
    dg_expr *e = dg_expr_compile((const char *)data, size, want, &env, &off, err, sizeof err);
    if (!e) {
        if (off > size || strnlen(err, sizeof err) == sizeof err || !err[0])
            __builtin_trap(); /* an error must point into the input and say something */
    } else {
        const struct dg_event *evs[2] = {&ev_w, &ev_s};
        const dg_value *wins[2] = {win_full, win_empty};
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                struct dg_eval_ctx cx = {evs[i], wins[j], c.lists};
                dg_value v = dg_expr_eval(e, &cx);
                if (v.t == DG_T_STR && v.len)
                    (void)*(volatile const char *)&v.u.s[v.len - 1];
                (void)dg_expr_true(e, &cx);
            }
        (void)dg_expr_type(e);
        dg_expr_free(e);
    }
    for (size_t i = 0; i < c.ninl; i++)
        dg_list_free(c.inl[i]);
    return 0;
}
