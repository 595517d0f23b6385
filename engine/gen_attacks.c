/*
 * gen_attacks.c - the incident scenarios of `drainguard gen`, and where they
 * sit in the period. Every scenario is drawn from its own random stream
 * (counts, amounts, timing and addresses vary with the seed), and every
 * event it emits carries its label: "prepare" for the attacker's account
 * events, "attack" for its requests, "outflow" for the transfers that pay
 * them (queued like any request's; gen_output.c never batches them) or that
 * nobody requested (coinex-2023).
 *
 *   binance-2019      API keys made withdraw-capable on 20-60 accounts from
 *                     a few IPs; hours to days later every account sends
 *                     most of its BTC, in requests under the per-request
 *                     limit, to one to three fresh addresses: ~2% of the
 *                     BTC hot wallet
 *   coinex-2023       stolen hot-wallet keys: transfers with no request
 *                     behind them from four or five wallets, in an hour or two
 *   mixin-2023        forged requests in the backend: 100-300 accounts,
 *                     $100k-$2M each, to 5-20 fresh addresses, ~$200M
 *   account-takeover  5-15 accounts, each: new device and IP, password
 *                     change, 2FA reset, new address, most of the balance out
 *   structuring       5-15 accounts, many requests just under the review
 *                     threshold, to a few addresses, over hours
 */
#include "gen.h"
#include "event.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const scen_names[DG_GEN_NSCEN] = {
    "legitimate", "binance-2019", "coinex-2023", "mixin-2023", "account-takeover", "structuring",
};
static const char *const phase_names[DG_GEN_NPHASES] = {"", "prepare", "attack", "outflow"};

const char *dg_gen_scenario_name(int sc)
{
    return sc >= 0 && sc < DG_GEN_NSCEN ? scen_names[sc] : "?";
}

int dg_gen_scenario_lookup(const char *name)
{
    for (int i = 1; i < DG_GEN_NSCEN; i++)
        if (!strcmp(name, scen_names[i]))
            return i;
    return -1;
}

const char *dg_gen_phase_name(int phase)
{
    return phase > 0 && phase < DG_GEN_NPHASES ? phase_names[phase] : "";
}

static int64_t minutes(struct dg_gen_rng *r, double lo, double hi)
{
    return (int64_t)(dg_gen_uniform(r, lo, hi) * (double)DG_GEN_MIN_MS);
}

/* ---- the plan ---- */

/* How long each scenario lasts (and its inner moments, relative to its
 * start), drawn before anything is placed. Long spans shrink with short
 * periods so that a day still holds everything. */
static int64_t scenario_length(struct dg_gen *g, int sc, struct dg_gen_rng *r)
{
    struct dg_gen_scen_info *s = &g->scen[sc];
    double period_h = (double)(g->t1 - g->t0) / (double)DG_GEN_HOUR_MS;
    double f = fmin(1.0, period_h / 72); /* under three days, spans shrink */

    switch (sc) {
    case DG_GEN_BINANCE_2019: {
        double wait_h = dg_gen_uniform(r, 3, fmax(3.0, fmin(48.0, period_h / 5)));
        s->mark[0] = minutes(r, 20, 90);                                   /* preparation ends */
        s->mark[1] = s->mark[0] + (int64_t)(wait_h * (double)DG_GEN_HOUR_MS); /* attack starts */
        s->mark[2] = s->mark[1] + minutes(r, 2, 10);                        /* attack ends */
        return s->mark[2] + 10 * DG_GEN_MIN_MS;
    }
    case DG_GEN_COINEX_2023:
        s->mark[0] = minutes(r, 40, 120);
        return s->mark[0];
    case DG_GEN_MIXIN_2023:
        s->mark[0] = minutes(r, 20, 60);
        return s->mark[0] + 10 * DG_GEN_MIN_MS;
    case DG_GEN_ACCOUNT_TAKEOVER:
        s->mark[0] = minutes(r, 120 * f, 300 * f); /* over which the accounts start */
        return s->mark[0] + 80 * DG_GEN_MIN_MS;
    case DG_GEN_STRUCTURING:
        s->mark[0] = minutes(r, 180 * f, 480 * f);
        return s->mark[0] + 10 * DG_GEN_MIN_MS;
    default: /* DG_GEN_LEGIT: the panic burst */
        g->panic_mult = dg_gen_uniform(r, 5, 10);
        return minutes(r, 55, 70);
    }
}

/* Distinct retail accounts for a scenario; never brand-new ones (a victim
 * has a history) and never another scenario's. */
static void pick_victims(struct dg_gen *g, int sc, size_t n, struct dg_gen_rng *r)
{
    struct dg_gen_scen_info *s = &g->scen[sc];
    static const int mixin_markets[] = {DG_GEN_M_BTC, DG_GEN_M_ETH, DG_GEN_M_USDT_ETH, DG_GEN_M_USDT_TRON};
    static const double mixin_weights[] = {0.40, 0.30, 0.15, 0.15};
    int structuring_market = dg_gen_chance(r, 0.6) ? DG_GEN_M_USDT_TRON
                             : dg_gen_chance(r, 0.5) ? DG_GEN_M_USDT_ETH : DG_GEN_M_BTC;

    s->victims = dg_xcalloc(n, sizeof *s->victims);
    while (s->nvictims < n) {
        size_t idx = dg_gen_below(r, g->nretail);
        struct dg_gen_acct *a = &g->acct[idx];
        if (a->victim || a->brand_new)
            continue;
        a->victim = (uint8_t)sc;
        switch (sc) {
        case DG_GEN_BINANCE_2019:
            a->victim_market = DG_GEN_M_BTC;
            break;
        case DG_GEN_MIXIN_2023: {
            double u = dg_gen_unit(r);
            int k = 0;
            while (k < 3 && (u -= mixin_weights[k]) >= 0)
                k++;
            a->victim_market = (uint8_t)mixin_markets[k];
            break;
        }
        case DG_GEN_STRUCTURING:
            a->victim_market = (uint8_t)structuring_market;
            break;
        default:
            a->victim_market = a->market[0];
            break;
        }
        s->victims[s->nvictims++] = (uint32_t)idx;
    }
}

/* Lay the six spans out in a random order, the slack cut at random points
 * between them, each at least gap from the next. */
static void place(struct dg_gen *g, const int64_t *len, int64_t from, int64_t slack, int64_t gap,
                  struct dg_gen_rng *r)
{
    enum { N = DG_GEN_NSCEN };
    int order[N];
    double cut[N];

    for (int i = 0; i < N; i++)
        order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)dg_gen_below(r, (uint64_t)i + 1), x = order[i];
        order[i] = order[j], order[j] = x;
    }
    for (int i = 0; i < N; i++)
        cut[i] = dg_gen_unit(r);
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && cut[j] < cut[j - 1]; j--) {
            double x = cut[j];
            cut[j] = cut[j - 1], cut[j - 1] = x;
        }
    int64_t t = from;
    for (int i = 0; i < N; i++) {
        int sc = order[i];
        t += (int64_t)((cut[i] - (i ? cut[i - 1] : 0)) * (double)slack);
        g->scen[sc].from = t;
        g->scen[sc].to = t + len[sc];
        t += len[sc] + gap;
    }
    g->panic_from = g->scen[DG_GEN_LEGIT].from;
    g->panic_to = g->scen[DG_GEN_LEGIT].to;
}

int dg_gen_plan(struct dg_gen *g, char *errstr, size_t errstr_size)
{
    struct dg_gen_rng r;
    int64_t period = g->t1 - g->t0, need = 0, len[DG_GEN_NSCEN];
    int64_t margin = period / 24 < 2 * DG_GEN_HOUR_MS ? period / 24 : 2 * DG_GEN_HOUR_MS;
    int64_t gap = 30 * DG_GEN_MIN_MS;

    /* slot 0 is the panic burst, 1.. the scenarios */
    dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_PLAN, 0);
    for (int i = 0; i < DG_GEN_NSCEN; i++)
        need += (len[i] = scenario_length(g, i, &r)) + gap;
    int64_t slack = period - 2 * margin - need;
    if (slack >= 0) {
        place(g, len, g->t0 + margin, slack, gap, &r);
    } else if (g->o.scenarios) {
        snprintf(errstr, errstr_size, "the period is too short: the scenarios and the panic need "
                 "about %lld hours; give more --days", (long long)((need + 2 * margin) / DG_GEN_HOUR_MS + 1));
        return -1;
    } else { /* legitimate traffic only: the panic in the middle */
        int64_t plen = len[DG_GEN_LEGIT] < period / 2 ? len[DG_GEN_LEGIT] : period / 2;
        g->panic_from = g->t0 + (period - plen) / 2;
        g->panic_to = g->panic_from + plen;
    }

    /* the counts first, so that they do not depend on the population size */
    dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_VICTIMS, 0);
    size_t nb = 20 + dg_gen_below(&r, 41), nm = 100 + dg_gen_below(&r, 201);
    size_t na = 5 + dg_gen_below(&r, 11), ns = 5 + dg_gen_below(&r, 11);
    pick_victims(g, DG_GEN_BINANCE_2019, nb, &r);
    pick_victims(g, DG_GEN_MIXIN_2023, nm, &r);
    pick_victims(g, DG_GEN_ACCOUNT_TAKEOVER, na, &r);
    pick_victims(g, DG_GEN_STRUCTURING, ns, &r);
    return 0;
}

/* ---- helpers ---- */

static void sec(struct dg_gen *g, int sc, int64_t ts, size_t acct, const char *action,
                uint64_t ip, uint64_t dev, uint64_t key, uint64_t addr, int m)
{
    struct dg_gen_sec s = {ts, acct, action, ip, dev, key, addr, m, sc, DG_GEN_PH_PREPARE};
    dg_gen_security(g, &s);
}

static void sort_times(int64_t *t, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && t[j] < t[j - 1]; j--) {
            int64_t x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
}

/* Split usd into k parts, each within +-8% of the mean. */
static void split(struct dg_gen_rng *r, double usd, size_t k, double *part)
{
    double sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += part[i] = dg_gen_uniform(r, 0.92, 1.08);
    for (size_t i = 0; i < k; i++)
        part[i] = usd * part[i] / sum;
}

/* ---- binance-2019 ---- */

static void binance(struct dg_gen *g, struct dg_gen_rng *r)
{
    struct dg_gen_scen_info *s = &g->scen[DG_GEN_BINANCE_2019];
    size_t n = s->nvictims, ndest = 1 + dg_gen_below(r, 3), nip = 2 + dg_gen_below(r, 3);
    uint64_t dest[3], ip[4], dev[2] = {dg_gen_u64(r) | 1, dg_gen_u64(r) | 1};
    int with_device_new = dg_gen_chance(r, 0.5);
    double target = 0.02 * dg_gen_markets[DG_GEN_M_BTC].hot_usd * dg_gen_uniform(r, 0.8, 1.2);
    double w[64], wsum = 0, total = 0; /* n <= 60 */
    size_t nreq = 0;

    for (size_t i = 0; i < ndest; i++)
        dest[i] = dg_gen_u64(r) | 1;
    for (size_t i = 0; i < nip; i++)
        ip[i] = dg_gen_u64(r) | 1;
    for (size_t i = 0; i < n; i++)
        wsum += w[i] = fmin(dg_gen_lognormal(r, 1.0, 0.6), 3.0); /* <= 16 pieces each */

    for (size_t i = 0; i < n; i++) {
        size_t acct = s->victims[i];
        uint64_t aip = ip[dg_gen_below(r, nip)], adev = dev[dg_gen_below(r, 2)];
        uint64_t key = dg_gen_u64(r) | 1;
        int64_t t = s->from + (int64_t)(dg_gen_unit(r) * (double)(s->mark[0] - 2 * DG_GEN_MIN_MS));

        /* preparation: log in with stolen credentials, make a key, enable it */
        if (with_device_new)
            sec(g, DG_GEN_BINANCE_2019, t - 2000, acct, "device.new", aip, adev, 0, 0, 0);
        sec(g, DG_GEN_BINANCE_2019, t, acct, "login", aip, adev, 0, 0, 0);
        t += (int64_t)dg_gen_uniform(r, 15, 60) * 1000;
        sec(g, DG_GEN_BINANCE_2019, t, acct, "api_key.created", aip, adev, key, 0, 0);
        t += (int64_t)dg_gen_uniform(r, 10, 50) * 1000;
        sec(g, DG_GEN_BINANCE_2019, t, acct, "api_key.withdraw_enabled", aip, adev, key, 0, 0);

        /* the attack: most of the BTC, in pieces below the limit */
        double want = target * w[i] / wsum, bal = want / dg_gen_uniform(r, 0.85, 0.99);
        size_t k = (size_t)ceil(want / 80000.0);
        double part[16];
        int64_t at[16];
        if (k > 16)
            k = 16;
        split(r, want, k, part);
        for (size_t j = 0; j < k; j++)
            at[j] = s->from + s->mark[1] + (int64_t)(dg_gen_unit(r) * (double)(s->mark[2] - s->mark[1]));
        sort_times(at, k);
        for (size_t j = 0; j < k; j++) {
            struct dg_gen_wdr q = {0};
            q.ts = at[j];
            q.acct = acct;
            q.market = DG_GEN_M_BTC;
            q.units = dg_gen_units(DG_GEN_M_BTC, fmin(part[j], DG_GEN_PER_REQUEST_LIMIT_USD - 100));
            q.dest = dest[dg_gen_below(r, ndest)];
            q.balance_usd = bal;
            q.channel = DG_GEN_CH_API;
            q.ip = aip;
            q.key = key;
            q.scen = DG_GEN_BINANCE_2019;
            q.phase = DG_GEN_PH_ATTACK;
            dg_gen_withdrawal(g, &q);
            bal -= dg_gen_usd(DG_GEN_M_BTC, q.units);
            total += dg_gen_usd(DG_GEN_M_BTC, q.units);
            nreq++;
        }
    }
    s->accounts = (unsigned)n;
    s->addresses = (unsigned)ndest;
    snprintf(s->note, sizeof s->note, "%zu requests from %zu IPs, $%.0f (%.2f%% of the BTC hot wallet); "
             "quiet wait %.1f h%s", nreq, nip, total, 100 * total / dg_gen_markets[DG_GEN_M_BTC].hot_usd,
             (double)(s->mark[1] - s->mark[0]) / (double)DG_GEN_HOUR_MS,
             with_device_new ? "; logins from a new device" : "");
}

/* ---- coinex-2023 ---- */

static void coinex(struct dg_gen *g, struct dg_gen_rng *r)
{
    static const struct {
        int market;
        double usd;
    } loss[] = {
        {DG_GEN_M_ETH, 19e6}, {DG_GEN_M_USDT_TRON, 11e6}, {DG_GEN_M_BNB, 6.4e6},
        {DG_GEN_M_BTC, 6e6}, {DG_GEN_M_MATIC, 0.3e6},
    };
    struct dg_gen_scen_info *s = &g->scen[DG_GEN_COINEX_2023];
    size_t nw = dg_gen_chance(r, 0.5) ? 5 : 4, ntx = 0, ndest = 0;
    double total = 0;

    for (size_t i = 0; i < nw; i++) {
        int m = loss[i].market;
        size_t k = 2 + dg_gen_below(r, 5), nd = 1 + dg_gen_below(r, 2);
        uint64_t dest[2] = {dg_gen_u64(r) | 1, dg_gen_u64(r) | 1};
        double u = dg_gen_unit(r), part[8];
        int empty = u >= 0.7 && u < 0.85;
        unsigned fake = u >= 0.85 ? 1 : 0; /* ids that name no request */
        int64_t at[8];

        split(r, loss[i].usd * dg_gen_uniform(r, 0.85, 1.15), k, part);
        for (size_t j = 0; j < k; j++)
            at[j] = s->from + (int64_t)(dg_gen_unit(r) * (double)s->mark[0]);
        sort_times(at, k);
        for (size_t j = 0; j < k; j++) {
            struct dg_gen_out o = {0};
            o.ts = at[j];
            o.market = m;
            o.units = dg_gen_units(m, part[j]);
            o.dest = dest[dg_gen_below(r, nd)];
            o.empty_array = empty;
            o.fake_ids = fake;
            o.txkey = (1ULL << 62) + ntx + j;
            o.scen = DG_GEN_COINEX_2023;
            o.phase = DG_GEN_PH_OUTFLOW;
            dg_gen_outflow(g, &o);
            total += dg_gen_usd(m, o.units);
        }
        ntx += k;
        ndest += nd;
    }
    s->addresses = (unsigned)ndest;
    snprintf(s->note, sizeof s->note, "%zu transfers from %zu hot wallets, $%.0f, no request behind any",
             ntx, nw, total);
}

/* ---- mixin-2023 ---- */

static void mixin(struct dg_gen *g, struct dg_gen_rng *r)
{
    struct dg_gen_scen_info *s = &g->scen[DG_GEN_MIXIN_2023];
    size_t n = s->nvictims, naddr = 5 + dg_gen_below(r, 16), nby[DG_GEN_NMARKETS] = {0};
    uint64_t addr[DG_GEN_NMARKETS][20];
    double target = 200e6 * dg_gen_uniform(r, 0.85, 1.15), sum = 0, total = 0;
    double *amt = dg_xmalloc(n * sizeof *amt);
    int used[DG_GEN_NMARKETS] = {0};

    /* every market the victims hold gets an address, the rest go at random */
    for (size_t i = 0; i < n; i++)
        used[g->acct[s->victims[i]].victim_market] = 1;
    for (int m = 0; m < DG_GEN_NMARKETS; m++)
        if (used[m])
            addr[m][nby[m]++] = dg_gen_u64(r) | 1;
    size_t placed = 0;
    for (int m = 0; m < DG_GEN_NMARKETS; m++)
        placed += (size_t)used[m];
    while (placed < naddr) {
        int m = (int)dg_gen_below(r, DG_GEN_NMARKETS);
        if (used[m] && nby[m] < 20)
            addr[m][nby[m]++] = dg_gen_u64(r) | 1;
        placed += used[m] ? 1 : 0;
    }
    for (size_t i = 0; i < n; i++)
        sum += amt[i] = fmin(fmax(dg_gen_lognormal(r, target / (double)n, 0.5), 100e3), 2e6);
    for (size_t i = 0; i < n; i++) {
        size_t acct = s->victims[i];
        const struct dg_gen_acct *a = &g->acct[acct];
        int m = a->victim_market;
        struct dg_gen_wdr q = {0};
        q.ts = s->from + (int64_t)(dg_gen_unit(r) * (double)s->mark[0]);
        q.acct = acct;
        q.market = m;
        q.units = dg_gen_units(m, fmin(fmax(amt[i] * target / sum, 100e3), 2e6));
        q.dest = addr[m][dg_gen_below(r, nby[m])];
        q.balance_usd = dg_gen_usd(m, q.units) * dg_gen_uniform(r, 1.05, 3.0);
        /* forged in the database: it looks like the account's own request */
        q.channel = a->channel == DG_GEN_CH_APP ? DG_GEN_CH_APP : DG_GEN_CH_WEB;
        q.ip = dg_gen_acct_ip(g, acct, 0);
        q.dev = dg_gen_acct_device(g, acct, q.channel == DG_GEN_CH_APP ? 1 : 0);
        q.scen = DG_GEN_MIXIN_2023;
        q.phase = DG_GEN_PH_ATTACK;
        dg_gen_withdrawal(g, &q);
        total += dg_gen_usd(m, q.units);
    }
    free(amt);
    s->accounts = (unsigned)n;
    s->addresses = 0;
    for (int m = 0; m < DG_GEN_NMARKETS; m++)
        s->addresses += (unsigned)nby[m];
    snprintf(s->note, sizeof s->note, "%zu forged requests, $%.0f", n, total);
}

/* ---- account-takeover ---- */

/* One account: new device and IP, password change and 2FA reset (either
 * order), a fresh address, then 85-100% of the balance out within the hour. */
static double takeover_one(struct dg_gen *g, struct dg_gen_rng *r, size_t acct, int64_t t)
{
    const int sc = DG_GEN_ACCOUNT_TAKEOVER;
    int m = g->acct[acct].victim_market;
    uint64_t ip = dg_gen_u64(r) | 1, dev = dg_gen_u64(r) | 1, dest = dg_gen_u64(r) | 1;
    double bal = fmin(fmax(dg_gen_lognormal(r, 20e3, 1.0), 2e3), 2e6);
    double want = bal * dg_gen_uniform(r, 0.85, 1.0), part[3], total = 0;
    size_t k = dg_gen_chance(r, 0.6) ? 1 : dg_gen_chance(r, 0.75) ? 2 : 3;
    int pw_first = dg_gen_chance(r, 0.6), channel = dg_gen_chance(r, 0.7) ? DG_GEN_CH_WEB : DG_GEN_CH_APP;

    sec(g, sc, t, acct, "device.new", ip, dev, 0, 0, 0);
    t += (int64_t)dg_gen_uniform(r, 5, 60) * 1000;
    sec(g, sc, t, acct, "login", ip, dev, 0, 0, 0);
    t += minutes(r, 0.5, 5);
    sec(g, sc, t, acct, pw_first ? "password.changed" : "2fa.reset", ip, dev, 0, 0, 0);
    t += minutes(r, 1, 10);
    sec(g, sc, t, acct, pw_first ? "2fa.reset" : "password.changed", ip, dev, 0, 0, 0);
    t += minutes(r, 1, 15);
    sec(g, sc, t, acct, "address.added", ip, dev, 0, dest, m);
    t += minutes(r, 2, 20);
    split(r, want, k, part);
    for (size_t j = 0; j < k; j++) {
        struct dg_gen_wdr q = {0};
        q.ts = t;
        q.acct = acct;
        q.market = m;
        q.units = dg_gen_units(m, part[j]);
        q.dest = dest;
        q.balance_usd = bal;
        q.channel = channel;
        q.ip = ip;
        q.dev = dev;
        q.scen = sc;
        q.phase = DG_GEN_PH_ATTACK;
        dg_gen_withdrawal(g, &q);
        bal -= dg_gen_usd(m, q.units);
        total += dg_gen_usd(m, q.units);
        t += minutes(r, 1, 5);
    }
    return total;
}

static void takeover(struct dg_gen *g, struct dg_gen_rng *r)
{
    struct dg_gen_scen_info *s = &g->scen[DG_GEN_ACCOUNT_TAKEOVER];
    double total = 0;
    for (size_t i = 0; i < s->nvictims; i++)
        total += takeover_one(g, r, s->victims[i],
                              s->from + (int64_t)(dg_gen_unit(r) * (double)s->mark[0]));
    s->accounts = (unsigned)s->nvictims;
    s->addresses = (unsigned)s->nvictims;
    snprintf(s->note, sizeof s->note, "%zu independent accounts, $%.0f", s->nvictims, total);
}

/* ---- structuring ---- */

/* Each account: 3-10 requests of $9,500-$9,990 (whole units for USDT) to
 * one or two of the group's addresses, over the scenario's hours, adding
 * each address shortly before first using it. */
static void structuring(struct dg_gen *g, struct dg_gen_rng *r)
{
    const int sc = DG_GEN_STRUCTURING;
    struct dg_gen_scen_info *s = &g->scen[sc];
    size_t naddr = 1 + dg_gen_below(r, 4), nreq = 0;
    uint64_t addr[4];
    double total = 0;

    for (size_t i = 0; i < naddr; i++)
        addr[i] = dg_gen_u64(r) | 1;
    for (size_t v = 0; v < s->nvictims; v++) {
        size_t acct = s->victims[v], k = 3 + dg_gen_below(r, 8), mine[2];
        int m = g->acct[acct].victim_market, added[2] = {0, 0};
        uint64_t ip = dg_gen_acct_ip(g, acct, 0);
        int channel = g->acct[acct].channel == DG_GEN_CH_APP ? DG_GEN_CH_APP : DG_GEN_CH_WEB;
        uint64_t dev = dg_gen_acct_device(g, acct, channel == DG_GEN_CH_APP ? 1 : 0);
        double amt[10], sum = 0, bal;
        int64_t at[10];

        mine[0] = dg_gen_below(r, naddr);
        mine[1] = dg_gen_below(r, naddr);
        int two = mine[1] != mine[0];
        for (size_t j = 0; j < k; j++) {
            double usd = dg_gen_uniform(r, DG_GEN_REVIEW_THRESHOLD_USD - 500, DG_GEN_REVIEW_THRESHOLD_USD - 10);
            sum += amt[j] = dg_gen_markets[m].price == 1.0 ? floor(usd) : usd;
            at[j] = s->from + 30 * DG_GEN_MIN_MS +
                    (int64_t)(dg_gen_unit(r) * (double)(s->mark[0] - 30 * DG_GEN_MIN_MS));
        }
        sort_times(at, k);
        bal = sum * dg_gen_uniform(r, 1.05, 1.6);
        for (size_t j = 0; j < k; j++) {
            size_t which = two ? dg_gen_below(r, 2) : 0;
            struct dg_gen_wdr q = {0};
            if (!added[which]) {
                sec(g, sc, at[j] - minutes(r, 2, 30), acct, "address.added", ip, dev, 0,
                    addr[mine[which]], m);
                added[which] = 1;
            }
            if (j == 0 || dg_gen_chance(r, 0.4))
                sec(g, sc, at[j] - (int64_t)dg_gen_uniform(r, 20, 90) * 1000, acct, "login", ip, dev, 0, 0, 0);
            q.ts = at[j];
            q.acct = acct;
            q.market = m;
            q.units = dg_gen_units(m, amt[j]);
            q.dest = addr[mine[which]];
            q.balance_usd = bal;
            q.channel = channel;
            q.ip = ip;
            q.dev = dev;
            q.scen = sc;
            q.phase = DG_GEN_PH_ATTACK;
            dg_gen_withdrawal(g, &q);
            bal -= dg_gen_usd(m, q.units);
            total += dg_gen_usd(m, q.units);
            nreq++;
        }
    }
    s->accounts = (unsigned)s->nvictims;
    s->addresses = (unsigned)naddr;
    snprintf(s->note, sizeof s->note, "%zu requests of $%.0f-$%.0f in %s, $%.0f (review threshold $%.0f)",
             nreq, DG_GEN_REVIEW_THRESHOLD_USD - 500, DG_GEN_REVIEW_THRESHOLD_USD - 10,
             dg_gen_markets[g->acct[s->victims[0]].victim_market].asset, total, DG_GEN_REVIEW_THRESHOLD_USD);
}

void dg_gen_attacks(struct dg_gen *g)
{
    static void (*const emit[DG_GEN_NSCEN])(struct dg_gen *, struct dg_gen_rng *) = {
        NULL, binance, coinex, mixin, takeover, structuring,
    };
    for (int sc = 1; sc < DG_GEN_NSCEN; sc++) {
        struct dg_gen_rng r;
        if (!(g->o.scenarios & (1u << sc)))
            continue;
        dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_SCENARIO, (uint64_t)sc);
        emit[sc](g, &r);
    }
}
