/*
 * fuzz_rules.c - libFuzzer target for rule files: YAML loading
 * (rules_load.c), compilation (rules_compile.c, expr.c) and, when the input
 * compiles, evaluation: a fixed stream of events of every type goes through
 * a dg_pipeline on the memory backend, so windows, freezes, templates,
 * dedupe and decision encoding run with whatever the fuzzer wrote.
 */
#include "pipeline.h"
#include "rules.h"
#include "state.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Two days of activity on two accounts and one destination: a new account
 * resets 2FA and drains to a fresh address, a batch outflow pays two
 * withdrawals, a duplicate, a late event and an invalid line. */
static const char *const events[] = {
    "{\"event_id\":\"s1\",\"type\":\"account.security\",\"ts\":\"2024-01-01T00:00:00Z\","
    "\"account_id\":\"acct-000001\",\"action\":\"2fa.reset\",\"ip\":\"203.0.113.7\",\"device_id\":\"dev-1\"}",
    "{\"event_id\":\"s2\",\"type\":\"account.security\",\"ts\":\"2024-01-01T00:01:00Z\","
    "\"account_id\":\"acct-000001\",\"action\":\"address.added\","
    "\"address\":\"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh\"}",
    "{\"event_id\":\"w1\",\"type\":\"withdrawal.requested\",\"ts\":\"2024-01-01T00:05:00Z\","
    "\"withdrawal_id\":\"wd-1\",\"account_id\":\"acct-000001\",\"asset\":\"BTC\",\"chain\":\"bitcoin\","
    "\"amount\":\"0.5\",\"amount_usd\":21000.5,\"dest_address\":\"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh\","
    "\"hot_wallet\":\"hw-btc-1\",\"balance_usd\":22000,\"account_created_at\":\"2023-12-31T00:00:00Z\","
    "\"channel\":\"api\",\"api_key_id\":\"k-1\",\"ip\":\"203.0.113.7\",\"device_id\":\"dev-1\","
    "\"risk_score\":0.9,\"country\":\"NL\",\"vip\":false}",
    "{\"event_id\":\"w2\",\"type\":\"withdrawal.requested\",\"ts\":1704067560000,"
    "\"withdrawal_id\":\"wd-2\",\"account_id\":\"acct-000002\",\"asset\":\"BTC\",\"chain\":\"bitcoin\","
    "\"amount\":0.25,\"amount_usd\":10500,\"dest_address\":\"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh\","
    "\"hot_wallet\":\"hw-btc-1\",\"channel\":\"web\"}",
    "{\"event_id\":\"w2\",\"type\":\"withdrawal.requested\",\"ts\":1704067560000,"
    "\"withdrawal_id\":\"wd-2\",\"account_id\":\"acct-000002\",\"asset\":\"BTC\",\"chain\":\"bitcoin\","
    "\"amount\":0.25,\"amount_usd\":10500,\"dest_address\":\"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh\","
    "\"hot_wallet\":\"hw-btc-1\",\"channel\":\"web\"}",
    "{\"event_id\":\"o1\",\"type\":\"wallet.outflow\",\"ts\":\"2024-01-01T00:10:00Z\",\"wallet_id\":\"hw-btc-1\","
    "\"chain\":\"bitcoin\",\"asset\":\"BTC\",\"amount\":\"0.75\",\"amount_usd\":31500.5,\"tx_hash\":\"ab12\","
    "\"dest_address\":\"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh\",\"withdrawal_ids\":[\"wd-1\",\"wd-2\"]}",
    "{\"event_id\":\"b1\",\"type\":\"wallet.balance\",\"ts\":\"2024-01-01T00:11:00+01:00\",\"wallet_id\":\"hw-btc-1\","
    "\"chain\":\"bitcoin\",\"asset\":\"BTC\",\"balance\":\"12.5\",\"balance_usd\":525000}",
    "{\"event_id\":\"bad\",\"type\":\"withdrawal.requested\",\"ts\":\"2024-01-01T00:12:00Z\","
    "\"withdrawal_id\":\"wd-3\",\"account_id\":\"acct-000001\",\"amount_usd\":-1}",
    "{\"event_id\":\"w4\",\"type\":\"withdrawal.requested\",\"ts\":\"2024-01-02T23:00:00Z\","
    "\"withdrawal_id\":\"wd-4\",\"account_id\":\"acct-000001\",\"asset\":\"ETH\",\"chain\":\"ethereum\","
    "\"amount\":\"3\",\"amount_usd\":9000,\"dest_address\":\"0x52908400098527886e0f7030069857d2e4169ee7\","
    "\"dest_tag\":\"\",\"hot_wallet\":\"hw-eth-1\",\"channel\":\"app\"}",
    "{\"event_id\":\"w5\",\"type\":\"withdrawal.requested\",\"ts\":\"2024-01-01T00:00:30Z\","
    "\"withdrawal_id\":\"wd-5\",\"account_id\":\"acct-000002\",\"asset\":\"BTC\",\"chain\":\"bitcoin\","
    "\"amount\":\"1\",\"amount_usd\":42000,\"dest_address\":\"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh\"}",
    "{\"event_id\":\"w6\",\"type\":\"withdrawal.requested\",\"ts\":\"2024-01-02T23:01:00Z\","
    "\"withdrawal_id\":\"wd-6\",\"account_id\":\"acct-000001\",\"asset\":\"ETH\",\"chain\":\"ethereum\","
    "\"amount\":\"3\",\"amount_usd\":9000,\"dest_address\":\"0x52908400098527886e0f7030069857d2e4169ee7\","
    "\"hot_wallet\":\"hw-eth-1\",\"channel\":\"app\"}",
};
#define NEVENTS (sizeof events / sizeof events[0])

static int emit(void *ud, const struct dg_output *o)
{
    volatile unsigned *sink = ud;
    for (size_t i = 0; o->decision && i < o->decision_len; i++)
        *sink += (unsigned char)o->decision[i];
    for (size_t i = 0; o->key && i < o->key_len; i++)
        *sink += (unsigned char)o->key[i];
    return 0;
}

/* A rule file may name a list file; from a fuzzer that must not reach
 * devices, fifos or the rest of the file system. Inputs that mention `file`
 * and a '/' or an escape (which could spell one) are skipped. */
static int touches_files(const uint8_t *data, size_t size)
{
    static const char word[] = "file";
    int has_word = 0;
    for (size_t i = 0; i + 4 <= size && !has_word; i++)
        has_word = !memcmp(data + i, word, 4);
    return has_word && (memchr(data, '/', size) || memchr(data, '\\', size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dg_diag diag = {0};
    volatile unsigned sink = 0;
    char err[256];

    if (touches_files(data, size))
        return 0;
    struct dg_ruleset *rs = dg_ruleset_load_mem("fuzz.yaml", (const char *)data, size, &diag);
    for (size_t i = 0; i < diag.n; i++)
        sink += (unsigned)strlen(diag.lines[i]);
    if (!rs != (diag.errors > 0))
        __builtin_trap(); /* NULL exactly when there were errors */
    if (rs) {
        struct dg_state *st = dg_state_mem_new(24LL * 3600 * 1000, 3600LL * 1000);
        /* batch 4: batches end inside the stream, so freezes placed in one
         * batch are read from state in the next and overlaid within one */
        dg_pipeline *p = dg_pipeline_new(rs, st, 4, 0);
        for (size_t i = 0; i < NEVENTS; i++)
            if (dg_pipeline_push(p, events[i], strlen(events[i]), (void *)(uintptr_t)i) >= 4 &&
                dg_pipeline_flush(p, emit, (void *)&sink, err, sizeof err) != 0)
                __builtin_trap(); /* the memory backend does not fail */
        if (dg_pipeline_flush(p, emit, (void *)&sink, err, sizeof err) != 0)
            __builtin_trap();
        dg_pipeline_free(p);
        st->ops->destroy(st);
        dg_ruleset_free(rs);
    }
    dg_diag_free(&diag);
    return 0;
}
