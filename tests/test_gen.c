/*
 * test_gen.c - Check suite for `drainguard gen` (engine/gen_*.c): the same
 * seed gives the same bytes; every line passes the engine's own decoder;
 * events are in time order; labels name existing events; scenarios appear
 * when asked and only then; legitimate outflows pay earlier requests to the
 * same destination with summed amounts; each scenario has its shape; scale
 * controls the size. Runs the generator in-process at --scale 0.01 into
 * mktemp directories.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "gen.h"
#include "hmap.h"
#include "util.h"

#define T0 1709510400000LL /* 2024-03-04T00:00:00Z */

/* ---- helpers ---- */

struct run {
    char dir[64];
    char *events, *labels, *summary;
    size_t events_len, labels_len, summary_len;
};

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = dg_xmalloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void rm_file(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* Generate into a fresh temporary directory and read the three files. */
static void gen(struct run *r, uint64_t seed, double scale, unsigned scenarios)
{
    struct dg_gen_opts o = {seed, scale, T0, 7.0, scenarios};
    struct dg_gen_result res;
    char err[256];

    strcpy(r->dir, "/tmp/dg-test-gen-XXXXXX");
    ck_assert(mkdtemp(r->dir) != NULL);
    ck_assert_msg(dg_gen_write(&o, r->dir, &res, err, sizeof err) == 0, "gen: %s", err);
    r->events = slurp(r->dir, "events.jsonl", &r->events_len);
    r->labels = slurp(r->dir, "labels.jsonl", &r->labels_len);
    r->summary = slurp(r->dir, "summary.txt", &r->summary_len);
}

static void run_free(struct run *r)
{
    rm_file(r->dir, "events.jsonl");
    rm_file(r->dir, "labels.jsonl");
    rm_file(r->dir, "summary.txt");
    rmdir(r->dir);
    free(r->events);
    free(r->labels);
    free(r->summary);
}

/* The next line of buf at *pos (without its newline), or NULL at the end. */
static const char *next_line(const char *buf, size_t len, size_t *pos, size_t *n)
{
    const char *s, *e;
    if (*pos >= len)
        return NULL;
    s = buf + *pos;
    e = memchr(s, '\n', len - *pos);
    ck_assert_msg(e != NULL, "last line has no newline");
    *n = (size_t)(e - s);
    *pos += *n + 1;
    return s;
}

/* needle in the n bytes at hay, or NULL (memmem is a GNU extension) */
static const char *find(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (const char *p = hay; k <= n && p <= hay + n - k; p++) {
        p = memchr(p, needle[0], (size_t)(hay + n - k - p) + 1);
        if (!p)
            return NULL;
        if (!memcmp(p, needle, k))
            return p;
    }
    return NULL;
}

/* The string member "key" of one of our own lines (the generator writes no
 * escapes and no spaces), copied into out; 0 when absent. */
static int member(const char *line, size_t n, const char *key, char *out, size_t size)
{
    char pat[64];
    const char *p, *q;
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    p = find(line, n, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    q = memchr(p, '"', n - (size_t)(p - line));
    ck_assert(q != NULL && (size_t)(q - p) < size);
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 1;
}

/* A decimal amount as an integer count of its last digit (all amounts of
 * one asset have the same number of decimals). */
static long long units(const char *s)
{
    long long v = 0;
    for (; *s; s++)
        if (*s != '.')
            v = v * 10 + (*s - '0');
    return v;
}

static int count_lines(const char *buf, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    return n;
}

/* ---- tests ---- */

START_TEST(same_seed_same_bytes)
{
    struct run a, b, c;
    gen(&a, 7, 0.01, DG_GEN_ALL_SCENARIOS);
    gen(&b, 7, 0.01, DG_GEN_ALL_SCENARIOS);
    gen(&c, 8, 0.01, DG_GEN_ALL_SCENARIOS);
    ck_assert_uint_eq(a.events_len, b.events_len);
    ck_assert(!memcmp(a.events, b.events, a.events_len));
    ck_assert_uint_eq(a.labels_len, b.labels_len);
    ck_assert(!memcmp(a.labels, b.labels, a.labels_len));
    ck_assert_str_eq(a.summary, b.summary);
    ck_assert(a.events_len != c.events_len || memcmp(a.events, c.events, a.events_len));
    ck_assert_str_ne(a.summary, c.summary);
    run_free(&a);
    run_free(&b);
    run_free(&c);
}
END_TEST

/* Every line decodes without a reject, ids are unique, times never go back. */
START_TEST(lines_decode_in_time_order)
{
    struct run r;
    dg_decoder *d = dg_decoder_new(NULL, 0);
    struct dg_event ev;
    struct dg_reject rej;
    dg_hmap ids;
    size_t pos = 0, n, lines = 0, by_type[DG_EV_NTYPES] = {0};
    int64_t last = INT64_MIN;
    const char *line;

    dg_hmap_init(&ids);
    gen(&r, 3, 0.01, DG_GEN_ALL_SCENARIOS);
    while ((line = next_line(r.events, r.events_len, &pos, &n))) {
        lines++;
        ck_assert_msg(dg_decode(d, line, n, &ev, &rej) == 0, "line %zu rejected: %s: %.*s", lines,
                      rej.msg, (int)n, line);
        ck_assert_msg(ev.ts_ms >= last, "line %zu goes back in time", lines);
        last = ev.ts_ms;
        by_type[ev.type]++;
        const dg_value *id = &ev.f[DG_F_EVENT_ID];
        ck_assert_msg(dg_hmap_put(&ids, id->u.s, id->len, &ids) == NULL, "line %zu: duplicate event_id", lines);
        if (ev.type == DG_EV_WITHDRAWAL) {
            ck_assert_int_eq(ev.f[DG_F_BALANCE_USD].t, DG_T_NUM);
            ck_assert_int_eq(ev.f[DG_F_CHANNEL].t, DG_T_STR);
            ck_assert_int_eq(ev.f[DG_F_HOT_WALLET].t, DG_T_STR);
            ck_assert(ev.f[DG_F_BALANCE_USD].u.n + 0.01 >= ev.f[DG_F_AMOUNT_USD].u.n);
        }
    }
    for (int t = 0; t < DG_EV_NTYPES; t++)
        ck_assert_msg(by_type[t] > 0, "no %s events", dg_event_type_name(t));
    ck_assert_uint_eq(by_type[DG_EV_BALANCE], 6 * 7 * 144); /* six wallets, every 10 minutes */
    dg_hmap_free(&ids);
    dg_decoder_free(d);
    run_free(&r);
}
END_TEST

/* Every label names an event of the file, with a known scenario and phase;
 * every scenario asked for is there. */
START_TEST(labels_name_events)
{
    struct run r;
    dg_hmap ids;
    size_t pos = 0, n;
    const char *line;
    char id[160], sc[64], ph[32];
    int seen[DG_GEN_NSCEN] = {0};

    dg_hmap_init(&ids);
    gen(&r, 5, 0.01, DG_GEN_ALL_SCENARIOS);
    while ((line = next_line(r.events, r.events_len, &pos, &n))) {
        ck_assert(member(line, n, "event_id", id, sizeof id));
        dg_hmap_put(&ids, id, strlen(id), &ids);
    }
    pos = 0;
    while ((line = next_line(r.labels, r.labels_len, &pos, &n))) {
        ck_assert(member(line, n, "event_id", id, sizeof id));
        ck_assert(member(line, n, "scenario", sc, sizeof sc));
        ck_assert(member(line, n, "phase", ph, sizeof ph));
        ck_assert_msg(dg_hmap_get(&ids, id, strlen(id)) != NULL, "label of unknown event %s", id);
        int k = dg_gen_scenario_lookup(sc);
        ck_assert_msg(k > 0, "unknown scenario %s", sc);
        ck_assert(!strcmp(ph, "prepare") || !strcmp(ph, "attack") || !strcmp(ph, "outflow"));
        seen[k]++;
    }
    for (int k = 1; k < DG_GEN_NSCEN; k++)
        ck_assert_msg(seen[k] > 0, "scenario %s missing", dg_gen_scenario_name(k));
    dg_hmap_free(&ids);
    run_free(&r);
}
END_TEST

/* Lines of b that are not labelled and not balance snapshots, compared in
 * order with those of a, after the event_id: legitimate traffic must not
 * depend on which scenarios are injected. Returns the differences. */
static size_t legit_differences(const struct run *a, const struct run *b)
{
    dg_hmap lab;
    size_t pa = 0, pb = 0, na, nb, diff = 0;
    const char *la, *lb;
    char id[160];

    dg_hmap_init(&lab);
    while ((lb = next_line(b->labels, b->labels_len, &pb, &nb))) {
        ck_assert(member(lb, nb, "event_id", id, sizeof id));
        dg_hmap_put(&lab, id, strlen(id), &lab);
    }
    pb = 0;
    for (;;) {
        while ((la = next_line(a->events, a->events_len, &pa, &na)) && find(la, na, "wallet.balance"))
            ;
        while ((lb = next_line(b->events, b->events_len, &pb, &nb)) &&
               (find(lb, nb, "wallet.balance") ||
                (member(lb, nb, "event_id", id, sizeof id) && dg_hmap_get(&lab, id, strlen(id)))))
            ;
        if (!la || !lb) {
            diff += la != lb;
            break;
        }
        const char *ra = memchr(la, ',', na), *rb = memchr(lb, ',', nb);
        size_t ka = na - (size_t)(ra - la), kb = nb - (size_t)(rb - lb);
        diff += ka != kb || memcmp(ra, rb, ka);
    }
    dg_hmap_free(&lab);
    return diff;
}

START_TEST(scenario_none_and_one)
{
    struct run none, one;
    size_t pos = 0, n;
    const char *line;
    char sc[64];

    gen(&none, 5, 0.01, 0);
    ck_assert_uint_eq(none.labels_len, 0);
    ck_assert(strstr(none.summary, "scenarios: none\n") != NULL);
    gen(&one, 5, 0.01, 1u << DG_GEN_COINEX_2023);
    ck_assert(one.labels_len > 0);
    while ((line = next_line(one.labels, one.labels_len, &pos, &n))) {
        ck_assert(member(line, n, "scenario", sc, sizeof sc));
        ck_assert_str_eq(sc, "coinex-2023");
    }
    ck_assert(none.events_len < one.events_len);
    ck_assert_uint_eq(legit_differences(&none, &one), 0);
    run_free(&none);
    run_free(&one);
}
END_TEST

/* A legitimate withdrawal as the reconciliation check remembers it. */
struct wd {
    char dest[80], asset[16], chain[16], wallet[32];
    long long amount;
    int paid;
};

/* Every legitimate outflow pays earlier requests (each once) to its own
 * destination, in its asset and chain, from the hot wallet each named,
 * for exactly their summed amount; every legitimate request is paid. */
START_TEST(legit_outflows_reconcile)
{
    struct run r;
    dg_hmap wds, attack;
    dg_decoder *d = dg_decoder_new(NULL, 0);
    struct dg_event ev;
    struct dg_reject rej;
    size_t pos = 0, n, nwd = 0, nout = 0, batched = 0;
    const char *line;
    char id[160], buf[80];

    dg_hmap_init(&wds);
    dg_hmap_init(&attack);
    gen(&r, 11, 0.01, DG_GEN_ALL_SCENARIOS);
    while ((line = next_line(r.labels, r.labels_len, &pos, &n))) {
        ck_assert(member(line, n, "event_id", id, sizeof id));
        dg_hmap_put(&attack, id, strlen(id), &attack);
    }
    pos = 0;
    while ((line = next_line(r.events, r.events_len, &pos, &n))) {
        ck_assert(member(line, n, "event_id", id, sizeof id));
        if (dg_hmap_get(&attack, id, strlen(id)))
            continue;
        ck_assert(dg_decode(d, line, n, &ev, &rej) == 0);
        if (ev.type == DG_EV_WITHDRAWAL) {
            struct wd *w = dg_xcalloc(1, sizeof *w);
            ck_assert(member(line, n, "dest_address", w->dest, sizeof w->dest));
            ck_assert(member(line, n, "asset", w->asset, sizeof w->asset));
            ck_assert(member(line, n, "chain", w->chain, sizeof w->chain));
            ck_assert(member(line, n, "hot_wallet", w->wallet, sizeof w->wallet));
            ck_assert(member(line, n, "amount", buf, sizeof buf));
            w->amount = units(buf);
            ck_assert(member(line, n, "withdrawal_id", id, sizeof id));
            ck_assert(dg_hmap_put(&wds, id, strlen(id), w) == NULL);
            nwd++;
        } else if (ev.type == DG_EV_OUTFLOW) {
            char dest[80], asset[16], chain[16], wallet[32];
            long long sum = 0;
            ck_assert_msg(ev.nids >= 1 && ev.nids <= 5, "legitimate outflow with %zu ids", ev.nids);
            ck_assert(member(line, n, "dest_address", dest, sizeof dest));
            ck_assert(member(line, n, "asset", asset, sizeof asset));
            ck_assert(member(line, n, "chain", chain, sizeof chain));
            ck_assert(member(line, n, "wallet_id", wallet, sizeof wallet));
            ck_assert(member(line, n, "amount", buf, sizeof buf));
            for (size_t i = 0; i < ev.nids; i++) {
                struct wd *w = dg_hmap_get(&wds, ev.ids[i], strlen(ev.ids[i]));
                ck_assert_msg(w != NULL, "outflow pays %s, not an earlier request", ev.ids[i]);
                ck_assert_msg(!w->paid, "%s paid twice", ev.ids[i]);
                w->paid = 1;
                ck_assert_str_eq(w->dest, dest);
                ck_assert_str_eq(w->asset, asset);
                ck_assert_str_eq(w->chain, chain);
                ck_assert_str_eq(w->wallet, wallet);
                sum += w->amount;
            }
            ck_assert_int_eq(sum, units(buf));
            batched += ev.nids > 1;
            nout++;
        }
    }
    ck_assert(nwd > 1000 && nout > 1000);
    ck_assert_msg(batched > 0, "no batched outflows");
    size_t cur = 0, unpaid = 0;
    for (size_t k = 0; k < wds.cap; k++) {
        struct dg_hslot *s = dg_hmap_slot(&wds, &cur);
        if (s) {
            struct wd *w = s->val;
            unpaid += !w->paid;
            free(w);
        }
    }
    ck_assert_uint_eq(unpaid, 0);
    dg_hmap_free(&wds);
    dg_hmap_free(&attack);
    dg_decoder_free(d);
    run_free(&r);
}
END_TEST

/* What makes each scenario what it is. */
START_TEST(scenario_shapes)
{
    struct run r;
    dg_hmap lab;
    dg_decoder *d = dg_decoder_new(NULL, 0);
    struct dg_event ev;
    struct dg_reject rej;
    size_t pos = 0, n;
    const char *line;
    char id[160], sc[64], ph[32], *val;
    int coinex_wallets = 0, seen_wallet[8] = {0};
    double mixin_usd = 0, binance_usd = 0;
    static char labels[DG_GEN_NSCEN][16]; /* one stable address per scenario, as map values */

    size_t count[DG_GEN_NSCEN][4] = {{0}};
    dg_hmap wds;

    dg_hmap_init(&lab);
    dg_hmap_init(&wds);
    gen(&r, 2, 0.01, DG_GEN_ALL_SCENARIOS);
    while ((line = next_line(r.events, r.events_len, &pos, &n)))
        if (member(line, n, "withdrawal_id", id, sizeof id))
            dg_hmap_put(&wds, id, strlen(id), &wds);
    pos = 0;
    while ((line = next_line(r.labels, r.labels_len, &pos, &n))) {
        ck_assert(member(line, n, "event_id", id, sizeof id));
        ck_assert(member(line, n, "scenario", sc, sizeof sc));
        ck_assert(member(line, n, "phase", ph, sizeof ph));
        int k = dg_gen_scenario_lookup(sc), p = !strcmp(ph, "prepare") ? 1 : !strcmp(ph, "attack") ? 2 : 3;
        dg_hmap_put(&lab, id, strlen(id), &labels[k][p]);
    }
    pos = 0;
    while ((line = next_line(r.events, r.events_len, &pos, &n))) {
        ck_assert(member(line, n, "event_id", id, sizeof id));
        if (!(val = dg_hmap_get(&lab, id, strlen(id))))
            continue;
        int k = (int)((val - &labels[0][0]) / 16), p = (int)((val - &labels[0][0]) % 16);
        ck_assert(dg_decode(d, line, n, &ev, &rej) == 0);
        double usd = ev.f[DG_F_AMOUNT_USD].t == DG_T_NUM ? ev.f[DG_F_AMOUNT_USD].u.n : 0;
        if (p == 1)
            ck_assert_int_eq(ev.type, DG_EV_SECURITY);
        if (p == 2)
            ck_assert_int_eq(ev.type, DG_EV_WITHDRAWAL);
        if (p == 3)
            ck_assert_int_eq(ev.type, DG_EV_OUTFLOW);
        if (k == DG_GEN_BINANCE_2019 && p == 2) {
            ck_assert(usd < DG_GEN_PER_REQUEST_LIMIT_USD);
            ck_assert_int_eq(ev.f[DG_F_API_KEY_ID].t, DG_T_STR);
            ck_assert(!memcmp(ev.f[DG_F_CHANNEL].u.s, "api", 3));
            ck_assert(!memcmp(ev.f[DG_F_ASSET].u.s, "BTC", 3));
            binance_usd += usd;
        }
        count[k][p]++;
        for (size_t i = 0; i < ev.nids; i++) /* attack outflows pay requests; coinex's name none */
            ck_assert((dg_hmap_get(&wds, ev.ids[i], strlen(ev.ids[i])) != NULL) == (k != DG_GEN_COINEX_2023));
        if (k == DG_GEN_COINEX_2023) {
            ck_assert(member(line, n, "wallet_id", sc, sizeof sc));
            int w = !strcmp(sc, "hot-eth-1") ? 0 : !strcmp(sc, "hot-tron-1") ? 1 : !strcmp(sc, "hot-bsc-1") ? 2
                    : !strcmp(sc, "hot-btc-1") ? 3 : 4;
            coinex_wallets += !seen_wallet[w];
            seen_wallet[w] = 1;
        }
        if (k == DG_GEN_MIXIN_2023 && p == 2) {
            ck_assert(usd >= 99e3 && usd <= 2.01e6);
            mixin_usd += usd;
        }
        if (k == DG_GEN_STRUCTURING && p == 2)
            ck_assert(usd >= DG_GEN_REVIEW_THRESHOLD_USD - 501 && usd < DG_GEN_REVIEW_THRESHOLD_USD);
    }
    ck_assert_msg(coinex_wallets >= 4, "coinex from %d wallets", coinex_wallets);
    for (int k = 1; k < DG_GEN_NSCEN; k++) /* every attack request is paid, one by one */
        ck_assert_uint_eq(count[k][2], count[k][3] * (k != DG_GEN_COINEX_2023));
    ck_assert(count[DG_GEN_BINANCE_2019][1] >= 3 * 20 && count[DG_GEN_ACCOUNT_TAKEOVER][1] >= 5 * 6);
    dg_hmap_free(&wds);
    ck_assert_msg(mixin_usd > 150e6 && mixin_usd < 250e6, "mixin $%.0f", mixin_usd);
    ck_assert_msg(binance_usd > 5e6 && binance_usd < 11e6, "binance $%.0f", binance_usd);
    dg_hmap_free(&lab);
    dg_decoder_free(d);
    run_free(&r);
}
END_TEST

/* Three times the scale, about three times the traffic (balance snapshots
 * do not scale). */
START_TEST(scale_controls_size)
{
    struct run a, b;
    gen(&a, 4, 0.01, 0);
    gen(&b, 4, 0.03, 0);
    double na = count_lines(a.events, a.events_len) - 6 * 7 * 144;
    double nb = count_lines(b.events, b.events_len) - 6 * 7 * 144;
    ck_assert_msg(nb / na > 2.0 && nb / na < 4.0, "%.0f then %.0f events", na, nb);
    run_free(&a);
    run_free(&b);
}
END_TEST

START_TEST(bad_options)
{
    struct dg_gen_opts o = {1, 0, T0, 7.0, 0};
    char err[256];
    ck_assert_int_eq(dg_gen_write(&o, "/tmp", NULL, err, sizeof err), -1);
    ck_assert(strstr(err, "scale") != NULL);
    o.scale = 0.01;
    o.days = 0.2; /* too short for the scenarios */
    o.scenarios = DG_GEN_ALL_SCENARIOS;
    ck_assert_int_eq(dg_gen_write(&o, "/tmp", NULL, err, sizeof err), -1);
    ck_assert(strstr(err, "too short") != NULL);
    ck_assert_int_eq(dg_gen_scenario_lookup("binance-2019"), DG_GEN_BINANCE_2019);
    ck_assert_int_eq(dg_gen_scenario_lookup("legitimate"), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("gen");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, same_seed_same_bytes);
    tcase_add_test(tc, lines_decode_in_time_order);
    tcase_add_test(tc, labels_name_events);
    tcase_add_test(tc, scenario_none_and_one);
    tcase_add_test(tc, legit_outflows_reconcile);
    tcase_add_test(tc, scenario_shapes);
    tcase_add_test(tc, scale_controls_size);
    tcase_add_test(tc, bad_options);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
