/*
 * gen_traffic.c - the legitimate traffic of `drainguard gen`: what an
 * exchange's honest customers do in a week, with the patterns that make
 * naive drain rules fire on innocent people (the traps).
 *
 *   retail   many accounts, heavy-tailed (log-normal) balances and amounts,
 *            a daily rhythm, logins before withdrawals, new addresses added
 *            shortly before their first use, brand-new accounts, the odd
 *            password change or 2FA reset before a withdrawal, popular
 *            destinations (payment processors, other exchanges) shared by
 *            many accounts
 *   whales   large balances, occasional large withdrawals to their own few
 *            addresses
 *   market   hundreds of thousands to millions of USD many times a day,
 *   makers   through the API, to a few long-known addresses; the odd API key
 *            rotation
 *   panic    about an hour in which withdrawals multiply and many accounts
 *            take most of their balance out to their usual addresses
 *
 * How: first draw when each retail or whale withdrawal happens and whose it
 * is (along the daily rhythm; accounts weighted by activity), then walk each
 * account's own requests in time order, so that its balance, addresses and
 * devices stay consistent. Each account has its own random stream: the
 * events of one do not depend on how many another had.
 */
#include "gen.h"
#include "event.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KNOWN 6     /* addresses remembered per account and market */
#define NPOPULAR 12     /* popular destinations per market */

/* One withdrawal to come: whose and when. */
struct intent {
    int64_t t;
    uint32_t acct;
    uint8_t panic;
};

/* What the walk knows about one account while it goes through its time. */
struct walk {
    struct dg_gen *g;
    struct dg_gen_rng r;
    size_t idx;
    struct dg_gen_acct *a;
    uint64_t known[DG_GEN_NMARKETS][MAX_KNOWN];
    uint8_t nknown[DG_GEN_NMARKETS];
    uint8_t started[DG_GEN_NMARKETS]; /* known[] and bal[] set up */
    double bal[DG_GEN_NMARKETS];      /* USD */
    unsigned ndev;                    /* devices used so far (ids k = 0..ndev-1) */
    uint64_t key;                     /* current API key, 0 before the first */
};

static int cmp_intent(const void *pa, const void *pb)
{
    const struct intent *a = pa, *b = pb;
    if (a->acct != b->acct)
        return a->acct < b->acct ? -1 : 1;
    return a->t < b->t ? -1 : a->t > b->t;
}

static void push_intent(struct intent **v, size_t *n, size_t *cap, int64_t t, size_t acct, int panic)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4096;
        *v = dg_xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = (struct intent){t, (uint32_t)acct, (uint8_t)panic};
}

/* Index of the first cumulative weight above x (binary search). */
static size_t pick_weighted(const double *cum, size_t n, double x)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Every retail and whale withdrawal of the period, sorted by account and
 * time. Retail accounts are picked by activity weight; whales withdraw a
 * few times a week; the panic adds (mult - 1) times the usual hourly rate,
 * front-loaded, spread over many accounts. */
static struct intent *draw_intents(struct dg_gen *g, size_t *count)
{
    struct dg_gen_rng r;
    struct intent *v = NULL;
    size_t n = 0, cap = 0;
    double *cum = dg_xmalloc(g->nretail * sizeof *cum), total = 0;
    double days = (double)(g->t1 - g->t0) / (double)DG_GEN_DAY_MS;

    dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_INTENTS, 0);
    for (size_t i = 0; i < g->nretail; i++)
        cum[i] = total += g->acct[i].weight;

    uint64_t nretail = dg_gen_poisson(&r, g->day_requests * days);
    for (uint64_t k = 0; k < nretail; k++) {
        int64_t t = dg_gen_rhythm_time(&r, g->t0, g->t1);
        push_intent(&v, &n, &cap, t, pick_weighted(cum, g->nretail, dg_gen_unit(&r) * total), 0);
    }
    for (size_t w = g->nretail; w < g->nretail + g->nwhale; w++) {
        uint64_t k = dg_gen_poisson(&r, 0.35 * days);
        while (k--)
            push_intent(&v, &n, &cap, dg_gen_rhythm_time(&r, g->t0, g->t1), w, 0);
    }

    /* the panic: 0.957 is the mean of the rhythm over a week */
    int64_t pspan = g->panic_to - g->panic_from;
    double hourly = g->day_requests / 24.0 * dg_gen_rhythm(g->panic_from + pspan / 2) / 0.957;
    g->panic_requests = (uint64_t)llround(hourly * (double)pspan / (double)DG_GEN_HOUR_MS *
                                          (g->panic_mult - 1.0));
    for (uint64_t k = 0; k < g->panic_requests; k++) {
        int64_t t = g->panic_from + (int64_t)(pow(dg_gen_unit(&r), 1.6) * (double)pspan);
        size_t acct = dg_gen_chance(&r, 0.03) ? g->nretail + dg_gen_below(&r, g->nwhale)
                                              : dg_gen_below(&r, g->nretail);
        push_intent(&v, &n, &cap, t, acct, 1);
    }
    free(cum);
    qsort(v, n, sizeof *v, cmp_intent);
    *count = n;
    return v;
}

/* ---- one account ---- */

static uint64_t popular_address(const struct dg_gen *g, int market, unsigned k)
{
    return dg_gen_mix(dg_gen_mix(g->o.seed, 0x909), (uint64_t)market * 64 + k);
}

/* First use of a market: long-known addresses (none for a brand-new
 * account; often one popular destination for retail) and a balance. */
static void start_market(struct walk *w, int m)
{
    struct dg_gen_acct *a = w->a;
    unsigned n = 0;

    w->started[m] = 1;
    if (!a->brand_new) {
        n = 1 + (unsigned)dg_gen_below(&w->r, 3);
        for (unsigned k = 0; k < n; k++)
            w->known[m][k] = dg_gen_mix(dg_gen_mix(w->g->o.seed, 0xadd + (uint64_t)m), w->idx * 8 + k);
        if (a->kind == DG_GEN_RETAIL && dg_gen_chance(&w->r, 0.35)) {
            /* Zipf-like: the first few processors take most of the traffic */
            unsigned k = (unsigned)(NPOPULAR * pow(dg_gen_unit(&w->r), 2.2));
            w->known[m][n++] = popular_address(w->g, m, k);
        }
    }
    w->nknown[m] = (uint8_t)n;
    w->bal[m] = a->kind == DG_GEN_WHALE ? dg_gen_lognormal(&w->r, 3e6, 0.8)
                                        : fmin(dg_gen_lognormal(&w->r, 600, 1.7), 2e6);
}

/* The market of the next request: one of the account's own, never the one a
 * scenario will drain (its balance there belongs to the scenario). */
static int choose_market(struct walk *w)
{
    struct dg_gen_acct *a = w->a;
    int m = a->market[dg_gen_below(&w->r, a->nmarket)];
    if (a->victim && m == a->victim_market) {
        int alt = a->nmarket > 1 ? a->market[0] + a->market[1] - m : -1;
        m = alt >= 0 ? alt : (a->victim_market + 3) % DG_GEN_NMARKETS;
    }
    if (!w->started[m])
        start_market(w, m);
    return m;
}

/* A known address (the first one most of the time), or a new one. */
static uint64_t choose_dest(struct walk *w, int m, double p_new, int *is_new)
{
    *is_new = 0;
    if (w->nknown[m] && !dg_gen_chance(&w->r, p_new)) {
        unsigned k = dg_gen_chance(&w->r, 0.6) ? 0 : (unsigned)dg_gen_below(&w->r, w->nknown[m]);
        return w->known[m][k];
    }
    uint64_t key = dg_gen_u64(&w->r) | 1;
    if (w->nknown[m] < MAX_KNOWN)
        w->known[m][w->nknown[m]++] = key;
    else
        w->known[m][MAX_KNOWN - 1] = key;
    *is_new = 1;
    return key;
}

/* How long before first use a new address was added: mostly minutes,
 * sometimes hours, now and then days. */
static int64_t address_lead(struct walk *w)
{
    double u = dg_gen_unit(&w->r);
    if (u < 0.55)
        return (int64_t)dg_gen_uniform(&w->r, 1, 30) * DG_GEN_MIN_MS;
    if (u < 0.85)
        return (int64_t)(dg_gen_uniform(&w->r, 0.5, 6) * (double)DG_GEN_HOUR_MS);
    return (int64_t)(dg_gen_uniform(&w->r, 6, 72) * (double)DG_GEN_HOUR_MS);
}

static uint64_t session_ip(struct walk *w)
{
    double u = dg_gen_unit(&w->r);
    unsigned k = u < 0.8 ? 0 : u < 0.95 ? 1 : 2 + (unsigned)dg_gen_below(&w->r, 4);
    return dg_gen_acct_ip(w->g, w->idx, k);
}

static void sec(struct walk *w, int64_t ts, const char *action, uint64_t ip, uint64_t dev,
                uint64_t key, uint64_t addr, int m)
{
    struct dg_gen_sec s = {ts, w->idx, action, ip, dev, key, addr, m, DG_GEN_LEGIT, DG_GEN_PH_NONE};
    if (ts >= w->g->t0) /* earlier ones happened before the period */
        dg_gen_security(w->g, &s);
}

/* The amount in USD of a retail or whale request, and the balance before
 * it (deposits that arrived in between are folded into the balance). */
static double choose_amount(struct walk *w, int m, int panic)
{
    struct dg_gen_acct *a = w->a;
    double *bal = &w->bal[m], usd;

    if (a->kind == DG_GEN_WHALE) {
        if (dg_gen_chance(&w->r, 0.3))
            *bal += dg_gen_lognormal(&w->r, 1e6, 0.8);
        return *bal * (panic ? dg_gen_uniform(&w->r, 0.5, 0.9) : dg_gen_uniform(&w->r, 0.05, 0.4));
    }
    if (dg_gen_chance(&w->r, 0.3))
        *bal += dg_gen_lognormal(&w->r, 300, 1.3);
    if (panic || (*bal > 20 && dg_gen_chance(&w->r, 0.15))) {
        if (*bal < 20)
            *bal += dg_gen_lognormal(&w->r, 400, 1.5);
        return *bal * (panic ? dg_gen_uniform(&w->r, 0.6, 1.0) : dg_gen_uniform(&w->r, 0.85, 1.0));
    }
    usd = fmin(fmax(dg_gen_lognormal(&w->r, 200, 1.5), 5), 3e6);
    if (usd > *bal)
        *bal += usd * dg_gen_uniform(&w->r, 1.0, 2.5);
    return usd;
}

/* People type round numbers: 2 significant digits in the asset's units,
 * rounded down so the balance still covers it. */
static int64_t round_units(int64_t u)
{
    int64_t p = 1;
    while (u / p >= 100)
        p *= 10;
    return u / p * p;
}

/* The channel of this request, and the API key it uses (created now and
 * then shortly before it is first used: a trap for API-key rules). */
static int choose_channel(struct walk *w, int64_t t)
{
    int c = w->a->channel;
    if (c == DG_GEN_CH_API)
        c = dg_gen_chance(&w->r, 0.8) ? DG_GEN_CH_API : DG_GEN_CH_WEB;
    else if (dg_gen_chance(&w->r, 0.1))
        c = c == DG_GEN_CH_WEB ? DG_GEN_CH_APP : DG_GEN_CH_WEB;
    if (c == DG_GEN_CH_API && !w->key) {
        w->key = dg_gen_mix(dg_gen_mix(w->g->o.seed, 0x4e7), w->idx * 4);
        if (dg_gen_chance(&w->r, 0.15)) {
            int64_t tc = t - (int64_t)(dg_gen_uniform(&w->r, 2, 96) * (double)DG_GEN_HOUR_MS);
            uint64_t ip = dg_gen_acct_ip(w->g, w->idx, 0), dev = dg_gen_acct_device(w->g, w->idx, 0);
            sec(w, tc - 60000, "login", ip, dev, 0, 0, 0);
            sec(w, tc, "api_key.created", ip, dev, w->key, 0, 0);
            sec(w, tc + (int64_t)dg_gen_uniform(&w->r, 20, 600) * 1000, "api_key.withdraw_enabled",
                ip, dev, w->key, 0, 0);
        }
    }
    return c;
}

/* The web or app session of request q: a device (a new one now and then:
 * device.new), a login before the request (usually), the password change
 * when pw, and address.added when the destination is new. */
static void web_session(struct walk *w, struct dg_gen_wdr *q, int is_new, int pw)
{
    /* device 0 is the browser, 1 the phone; 2 and up are new ones */
    unsigned k = q->channel == DG_GEN_CH_APP ? 1 : 0;
    int fresh = k >= w->ndev;
    int64_t t = q->ts, login, added;

    if (!fresh && dg_gen_chance(&w->r, 0.02)) {
        k = w->ndev > 2 ? w->ndev : 2;
        fresh = 1;
    }
    q->dev = dg_gen_acct_device(w->g, w->idx, k);
    login = t - (int64_t)fmin(fmax(dg_gen_lognormal(&w->r, 180, 0.8), 20), 2400) * 1000;
    added = t - address_lead(w);
    if (is_new && t - added < 30 * DG_GEN_MIN_MS && added - 30000 < login)
        login = added - 30000; /* added in the same session */
    if (fresh) {
        sec(w, login - 2000, "device.new", q->ip, q->dev, 0, 0, 0);
        if (k >= w->ndev)
            w->ndev = k + 1;
    }
    if (fresh || dg_gen_chance(&w->r, 0.8))
        sec(w, login, "login", q->ip, q->dev, 0, 0, 0);
    if (pw) /* within the six hours before */
        sec(w, login + (int64_t)dg_gen_uniform(&w->r, 5, 60) * 1000 -
                   (int64_t)(dg_gen_uniform(&w->r, 0, 6) * (double)DG_GEN_HOUR_MS),
            "password.changed", q->ip, q->dev, 0, 0, 0);
    if (is_new)
        sec(w, added, "address.added", q->ip, q->dev, 0, q->dest, q->market);
}

/* One withdrawal and what comes before it: its session (web_session), or
 * for the API only address.added when the destination is new; the rare 2FA
 * reset days before. */
static void account_request(struct walk *w, const struct intent *in)
{
    struct dg_gen_wdr q = {0};
    int m = choose_market(w), is_new;
    int pw = !in->panic && w->a->kind == DG_GEN_RETAIL && dg_gen_chance(&w->r, 0.004);
    double p_new = w->a->kind == DG_GEN_WHALE ? 0.03 : pw ? 0.2 : 0.07;
    uint64_t home_ip = dg_gen_acct_ip(w->g, w->idx, 0), home_dev = dg_gen_acct_device(w->g, w->idx, 0);

    q.ts = in->t;
    q.acct = w->idx;
    q.market = m;
    q.channel = choose_channel(w, in->t);
    q.dest = choose_dest(w, m, in->panic ? 0.0 : p_new, &is_new);
    if (q.channel != DG_GEN_CH_API) {
        q.ip = session_ip(w);
        web_session(w, &q, is_new, pw);
    } else {
        q.ip = dg_gen_acct_ip(w->g, w->idx, 9); /* the customer's bot */
        q.key = w->key;
        if (is_new)
            sec(w, in->t - address_lead(w), "address.added", home_ip, home_dev, 0, q.dest, m);
    }
    if (!in->panic && dg_gen_chance(&w->r, 0.0015))
        sec(w, in->t - (int64_t)(dg_gen_uniform(&w->r, 24, 120) * (double)DG_GEN_HOUR_MS), "2fa.reset",
            home_ip, home_dev, 0, 0, 0);

    q.units = dg_gen_units(m, choose_amount(w, m, in->panic));
    if (dg_gen_chance(&w->r, 0.3))
        q.units = round_units(q.units);
    q.balance_usd = w->bal[m];
    w->bal[m] = fmax(w->bal[m] - dg_gen_usd(m, q.units), 0);
    if (q.balance_usd < dg_gen_usd(m, q.units)) /* rounding of a tiny balance */
        q.balance_usd = dg_gen_usd(m, q.units);
    q.scen = DG_GEN_LEGIT;
    dg_gen_withdrawal(w->g, &q);
}

/* Logins and other account events not tied to a withdrawal. */
static void account_idle(struct walk *w, int64_t t)
{
    uint64_t ip = session_ip(w);
    unsigned k = (unsigned)dg_gen_below(&w->r, w->ndev ? (w->ndev < 2 ? w->ndev : 2) : 1);
    uint64_t dev = dg_gen_acct_device(w->g, w->idx, k);
    double u = dg_gen_unit(&w->r);

    if (!w->ndev || u < 0.015) {
        k = !w->ndev ? 0 : w->ndev > 2 ? w->ndev : 2;
        dev = dg_gen_acct_device(w->g, w->idx, k);
        sec(w, t - 2000, "device.new", ip, dev, 0, 0, 0);
        w->ndev = k + 1;
    }
    sec(w, t, "login", ip, dev, 0, 0, 0);
    u = dg_gen_unit(&w->r);
    if (u < 0.002)
        sec(w, t + 40000, "password.changed", ip, dev, 0, 0, 0);
    else if (u < 0.0026)
        sec(w, t + 50000, "2fa.reset", ip, dev, 0, 0, 0);
    else if (u < 0.0028)
        sec(w, t + 50000, "2fa.disabled", ip, dev, 0, 0, 0);
    else if (u < 0.009) {
        int m = w->a->market[0];
        sec(w, t + 70000, "address.added", ip, dev, 0, dg_gen_u64(&w->r) | 1, m);
    }
}

/* One retail or whale account through the period. */
static void walk_account(struct dg_gen *g, size_t idx, const struct intent *in, size_t n)
{
    struct walk w;
    int64_t idle[64];
    size_t nidle;

    memset(&w, 0, sizeof w);
    w.g = g;
    w.idx = idx;
    w.a = &g->acct[idx];
    dg_gen_rng_seed(&w.r, g->o.seed, DG_GEN_S_ACCOUNT, idx);
    w.ndev = w.a->brand_new ? 0 : 2;

    nidle = (size_t)dg_gen_poisson(&w.r, 0.25 * (double)n + 0.6 * (double)(g->t1 - g->t0) /
                                             (double)(7 * DG_GEN_DAY_MS));
    if (nidle > DG_ARRAY_LEN(idle))
        nidle = DG_ARRAY_LEN(idle);
    for (size_t i = 0; i < nidle; i++)
        idle[i] = dg_gen_rhythm_time(&w.r, g->t0, g->t1);
    if (w.a->brand_new) {
        int64_t first = n ? in[0].t : g->t1;
        for (size_t i = 0; i < nidle; i++)
            first = idle[i] < first ? idle[i] : first;
        w.a->created_at = first - (int64_t)(dg_gen_uniform(&w.r, 2, 96) * (double)DG_GEN_HOUR_MS);
    }
    /* in time order, so that devices are new when first seen */
    for (size_t i = 1; i < nidle; i++)
        for (size_t j = i; j > 0 && idle[j] < idle[j - 1]; j--) {
            int64_t x = idle[j];
            idle[j] = idle[j - 1], idle[j - 1] = x;
        }
    for (size_t i = 0, j = 0; i < nidle || j < n;) {
        if (j == n || (i < nidle && idle[i] < in[j].t))
            account_idle(&w, idle[i++]);
        else
            account_request(&w, &in[j++]);
    }
}

/* ---- market makers ---- */

/* A market maker: U(20, 60) requests a day of $120k-$4M in round amounts,
 * over the API from its servers, to its two to four long-known addresses
 * per market; its balance is topped up by deposits as it goes. One in three
 * rotates its API key once (created, withdraw-enabled, used within hours). */
static void walk_market_maker(struct dg_gen *g, size_t idx)
{
    const struct dg_gen_acct *a = &g->acct[idx];
    struct dg_gen_rng r;
    uint64_t addr[2][4], key = dg_gen_mix(dg_gen_mix(g->o.seed, 0x4e7), idx * 4);
    unsigned naddr[2];
    double bal[2];
    int64_t rotate = INT64_MAX;

    dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_MM, idx);
    for (int j = 0; j < 2; j++) {
        naddr[j] = 2 + (unsigned)dg_gen_below(&r, 3);
        for (unsigned k = 0; k < naddr[j]; k++)
            addr[j][k] = dg_gen_mix(dg_gen_mix(g->o.seed, 0x33), idx * 16 + (uint64_t)j * 4 + k);
        bal[j] = dg_gen_uniform(&r, 30e6, 200e6);
    }
    if (dg_gen_chance(&r, 0.35))
        rotate = g->t0 + (int64_t)(dg_gen_unit(&r) * (double)(g->t1 - g->t0));

    for (int64_t day = g->t0; day < g->t1; day += DG_GEN_DAY_MS) {
        int64_t end = day + DG_GEN_DAY_MS < g->t1 ? day + DG_GEN_DAY_MS : g->t1;
        uint64_t n = 20 + dg_gen_below(&r, 41);
        int64_t times[64];
        for (uint64_t i = 0; i < n; i++)
            times[i] = day + (int64_t)(dg_gen_unit(&r) * (double)(end - day));
        /* sort the day's times (insertion sort: n <= 60) */
        for (uint64_t i = 1; i < n; i++)
            for (uint64_t j = i; j > 0 && times[j] < times[j - 1]; j--) {
                int64_t x = times[j];
                times[j] = times[j - 1], times[j - 1] = x;
            }
        for (uint64_t i = 0; i < n; i++) {
            int64_t t = times[i];
            uint64_t ip = dg_gen_acct_ip(g, idx, 10 + (unsigned)dg_gen_below(&r, 2));
            if (t >= rotate) {
                struct dg_gen_sec s = {rotate, idx, "api_key.created", ip, 0, 0, 0, 0, 0, 0};
                key = dg_gen_mix(dg_gen_mix(g->o.seed, 0x4e7), idx * 4 + 1);
                s.key = key;
                dg_gen_security(g, &s);
                s.ts = rotate + (int64_t)dg_gen_uniform(&r, 30, 300) * 1000;
                s.action = "api_key.withdraw_enabled";
                dg_gen_security(g, &s);
                rotate = INT64_MAX;
                if (t <= s.ts)
                    t = s.ts + 60000;
            }
            int j = (int)dg_gen_below(&r, 2), m = a->market[j];
            double usd = fmin(fmax(dg_gen_lognormal(&r, 600e3, 0.6), 120e3), 4e6);
            if (usd > 0.7 * bal[j])
                bal[j] += dg_gen_uniform(&r, 20e6, 80e6);
            struct dg_gen_wdr q = {0};
            q.ts = t;
            q.acct = idx;
            q.market = m;
            q.units = round_units(dg_gen_units(m, usd));
            q.dest = addr[j][dg_gen_below(&r, naddr[j])];
            q.balance_usd = bal[j];
            q.channel = DG_GEN_CH_API;
            q.ip = ip;
            q.key = key;
            dg_gen_withdrawal(g, &q);
            bal[j] -= dg_gen_usd(m, q.units);
        }
    }
}

void dg_gen_traffic(struct dg_gen *g)
{
    size_t n, i = 0;
    struct intent *in = draw_intents(g, &n);

    for (size_t idx = 0; idx < g->nretail + g->nwhale; idx++) {
        size_t j = i;
        while (j < n && in[j].acct == idx)
            j++;
        walk_account(g, idx, in + i, j - i);
        i = j;
    }
    for (size_t idx = g->nretail + g->nwhale; idx < g->nacct; idx++)
        walk_market_maker(g, idx);
    free(in);
}
