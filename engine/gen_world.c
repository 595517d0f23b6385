/*
 * gen_world.c - the fixed world of `drainguard gen`: its randomness, the
 * markets and hot wallets, the account population, how ids and addresses
 * look, and the sink that collects events (as JSON text in an arena) until
 * gen_output.c sorts and writes them.
 *
 * Determinism: every number comes from xoshiro256** streams seeded from
 * --seed, every text from fixed printf formats in the C locale (the engine
 * never calls setlocale), and nothing reads a clock.
 */
#include "gen.h"
#include "event.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prices near early March 2024; hot-wallet sizes so that binance-2019 is
 * about 2% of the BTC wallet and mixin-2023 does not empty any wallet. */
const struct dg_gen_market dg_gen_markets[DG_GEN_NMARKETS] = {
    {"BTC", "bitcoin", "hot-btc-1", 67000.0, 8, DG_GEN_ADDR_BTC, 400e6, 28},
    {"ETH", "ethereum", "hot-eth-1", 3500.0, 8, DG_GEN_ADDR_EVM, 250e6, 18},
    {"USDT", "ethereum", "hot-eth-2", 1.0, 6, DG_GEN_ADDR_EVM, 80e6, 12},
    {"USDT", "tron", "hot-tron-1", 1.0, 6, DG_GEN_ADDR_TRON, 120e6, 26},
    {"BNB", "bsc", "hot-bsc-1", 420.0, 8, DG_GEN_ADDR_EVM, 40e6, 9},
    {"MATIC", "polygon", "hot-polygon-1", 1.05, 8, DG_GEN_ADDR_EVM, 8e6, 7},
};

/* ---- randomness ---- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t dg_gen_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a * 0xd1342543de82ef95ULL + b;
    splitmix(&x);
    return splitmix(&x);
}

void dg_gen_rng_seed(struct dg_gen_rng *r, uint64_t seed, uint64_t stream, uint64_t sub)
{
    uint64_t x = dg_gen_mix(dg_gen_mix(seed, stream), sub);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t dg_gen_u64(struct dg_gen_rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double dg_gen_unit(struct dg_gen_rng *r)
{
    return (double)(dg_gen_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double dg_gen_uniform(struct dg_gen_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * dg_gen_unit(r);
}

uint64_t dg_gen_below(struct dg_gen_rng *r, uint64_t n)
{
    return n ? dg_gen_u64(r) % n : 0; /* modulo bias < 2^-40 for our n */
}

int dg_gen_chance(struct dg_gen_rng *r, double p)
{
    return dg_gen_unit(r) < p;
}

/* Box-Muller, one of the pair: simple, and fast enough (a few per event). */
static double normal(struct dg_gen_rng *r)
{
    double u1 = dg_gen_unit(r), u2 = dg_gen_unit(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double dg_gen_lognormal(struct dg_gen_rng *r, double median, double sigma)
{
    return median * exp(sigma * normal(r));
}

/* Knuth's product method below 30, a rounded normal above (only counts of
 * events use this; the approximation error is invisible there). */
uint64_t dg_gen_poisson(struct dg_gen_rng *r, double mean)
{
    if (mean <= 0)
        return 0;
    if (mean >= 30) {
        double v = mean + sqrt(mean) * normal(r);
        return v < 0 ? 0 : (uint64_t)llround(v);
    }
    double l = exp(-mean), p = 1.0;
    uint64_t k = 0;
    do {
        k++;
        p *= dg_gen_unit(r);
    } while (p > l);
    return k - 1;
}

/* ---- amounts ---- */

static const double pow10_tab[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};

int64_t dg_gen_units(int market, double usd)
{
    const struct dg_gen_market *m = &dg_gen_markets[market];
    int64_t u = llround(usd / m->price * pow10_tab[m->decimals]);
    return u > 0 ? u : 1;
}

double dg_gen_usd(int market, int64_t units)
{
    const struct dg_gen_market *m = &dg_gen_markets[market];
    return (double)units / pow10_tab[m->decimals] * m->price;
}

void dg_gen_amount_text(int market, int64_t units, char out[40])
{
    int d = dg_gen_markets[market].decimals;
    int64_t p = (int64_t)pow10_tab[d];
    snprintf(out, 40, "%lld.%0*lld", (long long)(units / p), d, (long long)(units % p));
}

/* ---- how things look ---- */

static const char b32[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char hexd[] = "0123456789abcdef";

/* Looks right, is not checksummed: bc1q + 38 (most), 3 or 1 + 33 base58 for
 * bitcoin; 0x + 40 hex for EVM chains; T + 33 base58 for tron. */
void dg_gen_address(int market, uint64_t key, char out[64])
{
    struct dg_gen_rng r;
    size_t i = 0;
    dg_gen_rng_seed(&r, key, 0xadd, (uint64_t)dg_gen_markets[market].style);
    switch (dg_gen_markets[market].style) {
    case DG_GEN_ADDR_BTC: {
        unsigned kind = (unsigned)(key % 20);
        if (kind < 15) {
            memcpy(out, "bc1q", 4);
            for (i = 4; i < 42; i++)
                out[i] = b32[dg_gen_u64(&r) & 31];
        } else {
            out[0] = kind < 18 ? '3' : '1';
            for (i = 1; i < 34; i++)
                out[i] = b58[dg_gen_below(&r, 58)];
        }
        break;
    }
    case DG_GEN_ADDR_EVM:
        memcpy(out, "0x", 2);
        for (i = 2; i < 42; i++)
            out[i] = hexd[dg_gen_u64(&r) & 15];
        break;
    default:
        out[0] = 'T';
        for (i = 1; i < 34; i++)
            out[i] = b58[dg_gen_below(&r, 58)];
        break;
    }
    out[i] = '\0';
}

void dg_gen_ip(uint64_t key, char out[16])
{
    uint64_t h = dg_gen_mix(key, 0x1b);
    unsigned a = 1 + (unsigned)(h % 223);
    /* skip private, loopback, CGNAT and link-local first octets */
    if (a == 10 || a == 100 || a == 127 || a == 169 || a == 172 || a == 192)
        a++;
    snprintf(out, 16, "%u.%u.%u.%u", a, (unsigned)(h >> 8 & 255), (unsigned)(h >> 16 & 255),
             1 + (unsigned)(h >> 24 & 255) % 254);
}

void dg_gen_device_text(uint64_t dev, char out[24])
{
    snprintf(out, 24, "dev-%012llx", (unsigned long long)(dev & 0xffffffffffffULL));
}

void dg_gen_key_text(uint64_t key, char out[32])
{
    snprintf(out, 32, "ak-%016llx", (unsigned long long)key);
}

/* splitmix's finaliser is a bijection of 64-bit words, so distinct n give
 * distinct ids that do not reveal the order they were made in */
static uint64_t bijective(uint64_t n)
{
    n ^= n >> 30;
    n *= 0xbf58476d1ce4e5b9ULL;
    n ^= n >> 27;
    n *= 0x94d049bb133111ebULL;
    return n ^ (n >> 31);
}

void dg_gen_wd_id(const struct dg_gen *g, uint64_t n, char out[24])
{
    snprintf(out, 24, "wd-%016llx", (unsigned long long)bijective(n + ((uint64_t)g->idtag << 40)));
}

/* acct-NNNNNNNN: idx times a unit modulo 10^8 is a bijection, so ids are
 * distinct, scattered, and say nothing about the kind of account */
void dg_gen_acct_id(const struct dg_gen *g, size_t idx, char out[24])
{
    uint64_t v = ((uint64_t)idx * 73939133ULL + g->idtag * 7919ULL) % 100000000ULL;
    snprintf(out, 24, "acct-%08llu", (unsigned long long)v);
}

uint64_t dg_gen_acct_device(const struct dg_gen *g, size_t idx, unsigned k)
{
    return dg_gen_mix(dg_gen_mix(g->o.seed, 0xde71ce), (uint64_t)idx * 16 + k) | 1;
}

uint64_t dg_gen_acct_ip(const struct dg_gen *g, size_t idx, unsigned k)
{
    return dg_gen_mix(dg_gen_mix(g->o.seed, 0x1f), (uint64_t)idx * 16 + k) | 1;
}

/* ---- time ---- */

double dg_gen_rhythm(int64_t ts)
{
    int64_t day = ts >= 0 ? ts / DG_GEN_DAY_MS : (ts + 1) / DG_GEN_DAY_MS - 1;
    double hour = (double)(ts - day * DG_GEN_DAY_MS) / (double)DG_GEN_HOUR_MS;
    int dow = (int)(((day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
    double r = 1.0 + 0.55 * cos(6.283185307179586 * (hour - 15.0) / 24.0);
    return (dow == 0 || dow == 6) ? 0.85 * r : r;
}

int64_t dg_gen_rhythm_time(struct dg_gen_rng *r, int64_t from, int64_t to)
{
    for (;;) {
        int64_t t = from + (int64_t)(dg_gen_unit(r) * (double)(to - from));
        if (dg_gen_unit(r) * DG_GEN_RHYTHM_MAX < dg_gen_rhythm(t))
            return t;
    }
}

/* ---- setup ---- */

void dg_gen_init(struct dg_gen *g, const struct dg_gen_opts *o)
{
    memset(g, 0, sizeof *g);
    g->o = *o;
    g->t0 = o->start_ms;
    g->t1 = o->start_ms + llround(o->days * (double)DG_GEN_DAY_MS);
    g->idtag = (uint32_t)(dg_gen_mix(o->seed, 0x1d) & 0xffff);
    dg_arena_init(&g->text, 16u << 20);
}

void dg_gen_free(struct dg_gen *g)
{
    dg_arena_free(&g->text);
    free(g->ev);
    free(g->pay);
    free(g->acct);
    for (int i = 0; i < DG_GEN_NSCEN; i++)
        free(g->scen[i].victims);
    memset(g, 0, sizeof *g);
}

static int pick_market(struct dg_gen_rng *r, const int *allowed, size_t n)
{
    double total = 0, x;
    for (size_t i = 0; i < n; i++)
        total += dg_gen_markets[allowed[i]].weight;
    x = dg_gen_unit(r) * total;
    for (size_t i = 0; i < n; i++) {
        x -= dg_gen_markets[allowed[i]].weight;
        if (x < 0)
            return allowed[i];
    }
    return allowed[n - 1];
}

/* Give the account one market, or two different ones, from allowed[]. */
static void pick_markets(struct dg_gen_rng *r, struct dg_gen_acct *a, const int *allowed,
                         size_t n, double p_two)
{
    a->market[0] = (uint8_t)pick_market(r, allowed, n);
    a->nmarket = 1;
    if (dg_gen_chance(r, p_two)) {
        int m = pick_market(r, allowed, n);
        if (m != a->market[0])
            a->market[a->nmarket++] = (uint8_t)m;
    }
}

/* Retail accounts first, then whales, then market makers. Counts follow
 * --scale, with floors so that scenarios always find victims. */
void dg_gen_population(struct dg_gen *g)
{
    static const int all[] = {0, 1, 2, 3, 4, 5};
    static const int big[] = {DG_GEN_M_BTC, DG_GEN_M_ETH, DG_GEN_M_USDT_ETH, DG_GEN_M_USDT_TRON};
    struct dg_gen_rng r;
    double s = g->o.scale;

    g->nretail = (size_t)fmax(2000.0, llround(90000.0 * s));
    g->nwhale = (size_t)fmax(5.0, llround(300.0 * s));
    g->nmm = (size_t)fmax(3.0, llround(12.0 * s));
    g->nacct = g->nretail + g->nwhale + g->nmm;
    g->day_requests = 44000.0 * s;
    g->acct = dg_xcalloc(g->nacct, sizeof *g->acct);
    dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_POPULATION, 0);

    for (size_t i = 0; i < g->nacct; i++) {
        struct dg_gen_acct *a = &g->acct[i];
        a->kind = i < g->nretail ? DG_GEN_RETAIL : i < g->nretail + g->nwhale ? DG_GEN_WHALE : DG_GEN_MM;
        a->created_at = g->t0 - (int64_t)dg_gen_uniform(&r, 20, 6 * 365) * DG_GEN_DAY_MS -
                        (int64_t)dg_gen_below(&r, DG_GEN_DAY_MS);
        a->show_created = dg_gen_chance(&r, 0.35);
        a->weight = (float)dg_gen_lognormal(&r, 1.0, 1.2);
        if (a->kind == DG_GEN_RETAIL) {
            double c = dg_gen_unit(&r);
            a->channel = c < 0.52 ? DG_GEN_CH_WEB : c < 0.95 ? DG_GEN_CH_APP : DG_GEN_CH_API;
            a->brand_new = dg_gen_chance(&r, 0.03);
            if (a->brand_new)
                a->show_created = dg_gen_chance(&r, 0.8);
            pick_markets(&r, a, all, DG_ARRAY_LEN(all), 0.35);
        } else if (a->kind == DG_GEN_WHALE) {
            a->channel = dg_gen_chance(&r, 0.6) ? DG_GEN_CH_WEB : DG_GEN_CH_APP;
            pick_markets(&r, a, big, DG_ARRAY_LEN(big), 0.5);
        } else {
            a->channel = DG_GEN_CH_API;
            a->show_created = 0;
            a->market[0] = DG_GEN_M_USDT_TRON;
            a->market[1] = (uint8_t)big[dg_gen_below(&r, 3)];
            a->nmarket = 2;
        }
    }
}

/* ---- the sink ---- */

void dg_gen_emit(struct dg_gen *g, int64_t ts, int type, int scen, int phase, int market,
                 int64_t units, const char *fmt, ...)
{
    char buf[2048], tsb[32];
    va_list ap;
    int n, m;

    dg_time_format(ts, tsb);
    n = snprintf(buf, sizeof buf, "\"type\":\"%s\",\"ts\":\"%s\"", dg_event_type_name(type), tsb);
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)(n + m) >= sizeof buf - 2) {
        fprintf(stderr, "drainguard gen: internal error: event longer than %zu bytes\n", sizeof buf);
        abort();
    }
    n += m;
    buf[n++] = '}';

    if (g->nev == g->evcap) {
        g->evcap = g->evcap ? g->evcap * 2 : 65536;
        g->ev = dg_xrealloc(g->ev, g->evcap * sizeof *g->ev);
    }
    struct dg_gen_ev *e = &g->ev[g->nev];
    char *body = dg_arena_alloc(&g->text, (size_t)n);
    memcpy(body, buf, (size_t)n);
    e->ts = ts;
    e->units = units;
    e->body = body;
    e->len = (uint32_t)n;
    e->seq = (uint32_t)g->nev;
    e->type = (uint8_t)type;
    e->scen = (uint8_t)scen;
    e->phase = (uint8_t)phase;
    e->market = (uint8_t)market;
    g->nev++;
}

/* ",\"name\":\"value\"" when value is non-zero, else "" */
static const char *opt_member(char *out, size_t size, const char *name, const char *value, int present)
{
    if (!present)
        return "";
    snprintf(out, size, ",\"%s\":\"%s\"", name, value);
    return out;
}

void dg_gen_security(struct dg_gen *g, const struct dg_gen_sec *s)
{
    char id[24], ipt[16], devt[24], keyt[32], addrt[64];
    char m_ip[40], m_dev[48], m_key[56], m_addr[96];

    dg_gen_acct_id(g, s->acct, id);
    dg_gen_ip(s->ip, ipt);
    dg_gen_device_text(s->dev, devt);
    dg_gen_key_text(s->key, keyt);
    if (s->addr)
        dg_gen_address(s->addr_market, s->addr, addrt);
    dg_gen_emit(g, s->ts, DG_EV_SECURITY, s->scen, s->phase, 0, 0,
                ",\"account_id\":\"%s\",\"action\":\"%s\"%s%s%s%s", id, s->action,
                opt_member(m_ip, sizeof m_ip, "ip", ipt, s->ip != 0),
                opt_member(m_dev, sizeof m_dev, "device_id", devt, s->dev != 0),
                opt_member(m_key, sizeof m_key, "api_key_id", keyt, s->key != 0),
                opt_member(m_addr, sizeof m_addr, "address", addrt, s->addr != 0));
}

static void queue_pay(struct dg_gen *g, int64_t ts, int market, int64_t units, uint64_t wd,
                      uint64_t dest, int scen)
{
    if (g->npay == g->paycap) {
        g->paycap = g->paycap ? g->paycap * 2 : 65536;
        g->pay = dg_xrealloc(g->pay, g->paycap * sizeof *g->pay);
    }
    g->pay[g->npay++] = (struct dg_gen_pay){ts, units, wd, dest, (uint8_t)market, (uint8_t)scen};
}

void dg_gen_withdrawal(struct dg_gen *g, const struct dg_gen_wdr *w)
{
    static const char *const channels[] = {"web", "app", "api"};
    const struct dg_gen_market *mk = &dg_gen_markets[w->market];
    const struct dg_gen_acct *a = &g->acct[w->acct];
    char wid[24], id[24], amt[40], addr[64], ipt[16], devt[24], keyt[32], created[32];
    char m_ip[40], m_dev[48], m_key[56], m_created[72];
    uint64_t n = ++g->nwd;

    dg_gen_wd_id(g, n, wid);
    dg_gen_acct_id(g, w->acct, id);
    dg_gen_amount_text(w->market, w->units, amt);
    dg_gen_address(w->market, w->dest, addr);
    dg_gen_ip(w->ip, ipt);
    dg_gen_device_text(w->dev, devt);
    dg_gen_key_text(w->key, keyt);
    dg_time_format(a->created_at - a->created_at % 1000, created);
    dg_gen_emit(g, w->ts, DG_EV_WITHDRAWAL, w->scen, w->phase, w->market, w->units,
                ",\"withdrawal_id\":\"%s\",\"account_id\":\"%s\",\"asset\":\"%s\",\"chain\":\"%s\","
                "\"amount\":\"%s\",\"amount_usd\":%.2f,\"dest_address\":\"%s\",\"hot_wallet\":\"%s\","
                "\"balance_usd\":%.2f%s,\"channel\":\"%s\"%s%s%s",
                wid, id, mk->asset, mk->chain, amt, dg_gen_usd(w->market, w->units), addr,
                mk->wallet, w->balance_usd,
                opt_member(m_created, sizeof m_created, "account_created_at", created, a->show_created),
                channels[w->channel],
                opt_member(m_key, sizeof m_key, "api_key_id", keyt, w->key != 0),
                opt_member(m_ip, sizeof m_ip, "ip", ipt, w->ip != 0),
                opt_member(m_dev, sizeof m_dev, "device_id", devt, w->dev != 0));
    queue_pay(g, w->ts, w->market, w->units, n, w->dest, w->scen);
}

/* A transaction hash in the chain's style: 0x + 64 hex on EVM chains, bare
 * 64 hex on bitcoin and tron. Random-looking, a function of the key. */
static void tx_hash(struct dg_gen *g, int market, uint64_t txkey, char out[72])
{
    struct dg_gen_rng r;
    size_t i = 0;
    dg_gen_rng_seed(&r, g->o.seed, 0x7a, txkey);
    if (dg_gen_markets[market].style == DG_GEN_ADDR_EVM)
        out[i++] = '0', out[i++] = 'x';
    for (int k = 0; k < 64; k++)
        out[i++] = hexd[dg_gen_u64(&r) & 15];
    out[i] = '\0';
}

void dg_gen_outflow(struct dg_gen *g, const struct dg_gen_out *o)
{
    const struct dg_gen_market *mk = &dg_gen_markets[o->market];
    char amt[40], addr[64], tx[72], ids[1024], wid[24];
    size_t il = 0;

    dg_gen_amount_text(o->market, o->units, amt);
    dg_gen_address(o->market, o->dest, addr);
    tx_hash(g, o->market, o->txkey, tx);
    ids[0] = '\0';
    if (o->nids || o->fake_ids || o->empty_array) {
        il += (size_t)snprintf(ids, sizeof ids, ",\"withdrawal_ids\":[");
        for (size_t i = 0; i < o->nids && il < sizeof ids - 64; i++) {
            dg_gen_wd_id(g, o->ids[i], wid);
            il += (size_t)snprintf(ids + il, sizeof ids - il, "%s\"%s\"", i ? "," : "", wid);
        }
        /* ids past every real withdrawal number never name a request */
        for (unsigned i = 0; i < o->fake_ids && il < sizeof ids - 64; i++) {
            dg_gen_wd_id(g, (1ULL << 39) + (o->txkey & 0xffffffff) * 8 + i, wid);
            il += (size_t)snprintf(ids + il, sizeof ids - il, "%s\"%s\"", i || o->nids ? "," : "", wid);
        }
        snprintf(ids + il, sizeof ids - il, "]");
    }
    dg_gen_emit(g, o->ts, DG_EV_OUTFLOW, o->scen, o->phase, o->market, o->units,
                ",\"wallet_id\":\"%s\",\"chain\":\"%s\",\"asset\":\"%s\",\"amount\":\"%s\","
                "\"amount_usd\":%.2f,\"tx_hash\":\"%s\",\"dest_address\":\"%s\"%s",
                mk->wallet, mk->chain, mk->asset, amt, dg_gen_usd(o->market, o->units), tx, addr, ids);
}
