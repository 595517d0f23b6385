/*
 * gen_events.c - deterministic event generator for the replay benchmark.
 *
 *   gen_events --events N --accounts A --destinations D --seed S --days F
 *
 * writes N events as JSON Lines (shared/spec/events.md) to stdout, in time
 * order, spread evenly over F days of event time from 2024-01-01T00:00:00Z.
 * The key space is fixed by the arguments (A accounts, D destination
 * addresses, six hot wallets on five chains), so longer runs at the same
 * rate revisit the same keys: that is what the RSS flatness check needs.
 *
 * Mix: ~80% withdrawal.requested, ~12% account.security, ~5% wallet.outflow
 * (paying withdrawals requested earlier), ~3% wallet.balance. USD amounts are
 * log-normal (median ~$300, a long tail into the millions), as withdrawal
 * sizes are. Accounts are skewed (a few are busy, most are quiet) and mostly
 * pay their own few usual addresses.
 *
 * Same arguments, same bytes: the only randomness is splitmix64 seeded from
 * --seed, and numbers are printed with fixed formats. Stand-alone: it does
 * not link the engine.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0_MS 1704067200000LL /* 2024-01-01T00:00:00Z */
#define DAY_MS 86400000LL
#define RECENT 64 /* unpaid withdrawals remembered per chain, for outflows */

/* ---- randomness: splitmix64 (Steele, Lea, Flood 2014) ---- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The same mixing as a pure function: stable per-key attributes (an
 * account's IP, a destination's address) that do not depend on order. */
static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 bits */
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t rng_below(uint64_t n)
{
    return n ? rng_next() % n : 0; /* modulo bias is irrelevant here */
}

/* standard normal by Box-Muller (one of the pair; simplicity over speed) */
static double rng_normal(void)
{
    double u1 = rng_unit(), u2 = rng_unit();
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double rng_lognormal(double median, double sigma)
{
    return median * exp(sigma * rng_normal());
}

/* ---- the fixed world: chains, assets, wallets ---- */

enum addr_style { A_BTC, A_EVM, A_TRON };

struct market {
    const char *asset, *chain, *wallet;
    double price;     /* USD per unit */
    int decimals;     /* how amounts are written */
    int style;        /* enum addr_style */
    int weight;       /* share of withdrawals, in percent */
};

static const struct market markets[] = {
    {"BTC", "bitcoin", "hw-btc-1", 42000.0, 8, A_BTC, 30},
    {"ETH", "ethereum", "hw-eth-1", 2300.0, 8, A_EVM, 22},
    {"USDT", "ethereum", "hw-eth-2", 1.0, 6, A_EVM, 13},
    {"USDT", "tron", "hw-trx-1", 1.0, 6, A_TRON, 20},
    {"BNB", "bsc", "hw-bsc-1", 310.0, 8, A_EVM, 8},
    {"MATIC", "polygon", "hw-pol-1", 0.85, 6, A_EVM, 7},
};
#define NMARKETS (sizeof markets / sizeof markets[0])

static const char b32[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char hex[] = "0123456789abcdef";

/* Destination d's market: fixed by its index. */
static int dest_market(uint64_t d)
{
    int w = (int)(mix(d, 7) % 100);
    for (size_t m = 0; m < NMARKETS; m++) {
        if (w < markets[m].weight)
            return (int)m;
        w -= markets[m].weight;
    }
    return 0;
}

/* Destination d's address, in the style of its chain (looks right, is not
 * checksummed): bc1q + 38, 0x + 40 hex, T + 33 base58. */
static void dest_address(uint64_t d, char out[48])
{
    const struct market *mk = &markets[dest_market(d)];
    uint64_t h = mix(d, 1);
    size_t i = 0, n;
    switch (mk->style) {
    case A_BTC:
        memcpy(out, "bc1q", 4), i = 4, n = 42;
        for (; i < n; i++, h = mix(h, i))
            out[i] = b32[h & 31];
        break;
    case A_EVM:
        memcpy(out, "0x", 2), i = 2, n = 42;
        for (; i < n; i++, h = mix(h, i))
            out[i] = hex[h & 15];
        break;
    default:
        out[0] = 'T', i = 1, n = 34;
        for (; i < n; i++, h = mix(h, i))
            out[i] = b58[h % 58];
        break;
    }
    out[n] = '\0';
}

/* ---- output ---- */

static char obuf[1 << 20];
static size_t olen;

static void flush_out(void)
{
    if (olen && fwrite(obuf, 1, olen, stdout) != olen) {
        fprintf(stderr, "gen_events: write error: %s\n", strerror(errno));
        exit(1);
    }
    olen = 0;
}

static void emit_line(const char *s, int n)
{
    if (n < 0 || (size_t)n >= 4096) {
        fprintf(stderr, "gen_events: internal error: event too long\n");
        exit(1);
    }
    if (olen + (size_t)n + 1 > sizeof obuf)
        flush_out();
    memcpy(obuf + olen, s, (size_t)n);
    olen += (size_t)n;
    obuf[olen++] = '\n';
}

/* RFC 3339 with milliseconds, UTC. Days from civil (H. Hinnant). */
static void fmt_time(int64_t ms, char out[32])
{
    int64_t s = ms / 1000, days = s / 86400, sod = s % 86400;
    int64_t z = days + 719468, era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    unsigned frac = (unsigned)(ms % 1000);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", (int)(y % 10000), (int)m, (int)d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), frac);
}

/* ---- the generator ---- */

struct args {
    uint64_t events, accounts, destinations, seed;
    double days;
};

struct recent {
    uint64_t wd[RECENT];  /* withdrawal numbers not yet paid */
    double usd[RECENT];
    uint64_t dest[RECENT];
    int n;
};

static struct recent recent[NMARKETS];

static uint64_t pick_account(const struct args *a)
{
    /* skew: 70% uniform, 30% squared, so the lowest ids are busy traders
     * (account 0 gets ~0.2% of all events) and most accounts are quiet */
    double u = rng_unit();
    if (rng_below(10) < 3)
        u *= u;
    return (uint64_t)(u * (double)a->accounts);
}

static void account_ip(uint64_t acct, char out[24])
{
    /* an account mostly uses one address; sometimes one of three others */
    uint64_t h = mix(acct, 11 + (rng_below(10) < 8 ? 0 : 1 + rng_below(3)));
    snprintf(out, 24, "%u.%u.%u.%u", (unsigned)(h % 223 + 1), (unsigned)(h >> 8 & 255),
             (unsigned)(h >> 16 & 255), (unsigned)(h >> 24 & 253) + 1);
}

static uint64_t account_device(uint64_t acct)
{
    return mix(acct, 21 + (rng_below(10) < 9 ? 0 : 1 + rng_below(2))) & 0xffffffffu;
}

static int withdrawal(const struct args *a, char *line, uint64_t i, const char *ts,
                      uint64_t *wd_seq)
{
    uint64_t acct = pick_account(a), dest;
    char addr[48], ip[24], extra[96], opt[128];
    /* 70%: one of the account's three usual addresses; else one of five it
     * uses now and then: a fixed key space, as an exchange's is over a
     * year (new addresses arrive slowly, not with every request) */
    if (rng_below(10) < 7)
        dest = mix(acct, 31 + rng_below(3)) % a->destinations;
    else
        dest = mix(acct, 41 + rng_below(5)) % a->destinations;
    int m = dest_market(dest);
    const struct market *mk = &markets[m];
    double usd = rng_lognormal(300.0, 1.9);
    if (usd > 5e6)
        usd = 5e6;
    if (usd < 0.5)
        usd = 0.5;
    double amount = usd / mk->price;
    uint64_t wd = ++*wd_seq;
    int64_t created = T0_MS - (int64_t)(mix(acct, 41) % (5 * 365)) * DAY_MS -
                      (int64_t)(mix(acct, 42) % DAY_MS);
    char created_s[32];
    int r = (int)rng_below(100);
    const char *channel = r < 55 ? "web" : r < 90 ? "app" : "api";

    dest_address(dest, addr);
    account_ip(acct, ip);
    fmt_time(created - created % 1000, created_s);
    /* optional fields, as an exchange fills them: the balance on most
     * requests, the account's age on some (it costs a lookup upstream);
     * about 370 bytes a line on average */
    size_t ol = 0;
    opt[0] = '\0';
    if (rng_below(10) < 5)
        ol += (size_t)snprintf(opt + ol, sizeof opt - ol, ",\"hot_wallet\":\"%s\"", mk->wallet);
    if (rng_below(10) < 5)
        ol += (size_t)snprintf(opt + ol, sizeof opt - ol, ",\"balance_usd\":%.2f",
                               usd * (1.0 + rng_lognormal(2.0, 1.5)));
    if (rng_below(10) < 2)
        snprintf(opt + ol, sizeof opt - ol, ",\"account_created_at\":\"%s\"", created_s);
    if (!strcmp(channel, "api"))
        snprintf(extra, sizeof extra, ",\"api_key_id\":\"key-%06u\"", (unsigned)(mix(acct, 51) % 1000000));
    else
        snprintf(extra, sizeof extra, ",\"device_id\":\"dev-%08x\"", (unsigned)account_device(acct));

    /* remember it for an outflow to pay later */
    struct recent *rc = &recent[m];
    if (rc->n == RECENT) {
        memmove(rc->wd, rc->wd + 1, (RECENT - 1) * sizeof rc->wd[0]);
        memmove(rc->usd, rc->usd + 1, (RECENT - 1) * sizeof rc->usd[0]);
        memmove(rc->dest, rc->dest + 1, (RECENT - 1) * sizeof rc->dest[0]);
        rc->n--;
    }
    rc->wd[rc->n] = wd;
    rc->usd[rc->n] = usd;
    rc->dest[rc->n] = dest;
    rc->n++;

    return snprintf(line, 4096,
                    "{\"event_id\":\"evt-%010llu\",\"type\":\"withdrawal.requested\",\"ts\":\"%s\","
                    "\"withdrawal_id\":\"wd-%010llu\",\"account_id\":\"acct-%06llu\","
                    "\"asset\":\"%s\",\"chain\":\"%s\",\"amount\":\"%.*f\",\"amount_usd\":%.2f,"
                    "\"dest_address\":\"%s\"%s,"
                    "\"channel\":\"%s\",\"ip\":\"%s\"%s}",
                    (unsigned long long)i, ts, (unsigned long long)wd, (unsigned long long)acct,
                    mk->asset, mk->chain, mk->decimals, amount, usd, addr, opt,
                    channel, ip, extra);
}

static int security(const struct args *a, char *line, uint64_t i, const char *ts)
{
    static const struct {
        const char *name;
        int weight;
    } actions[] = {
        {"login", 60},          {"device.new", 10},     {"address.added", 8},
        {"password.changed", 6}, {"2fa.reset", 5},       {"2fa.disabled", 3},
        {"api_key.created", 5},  {"api_key.withdraw_enabled", 3},
    };
    uint64_t acct = pick_account(a);
    int w = (int)rng_below(100);
    size_t k = 0;
    char ip[24], extra[128], addr[48];

    while (k + 1 < sizeof actions / sizeof actions[0] && w >= actions[k].weight)
        w -= actions[k++].weight;
    account_ip(acct, ip);
    if (!strcmp(actions[k].name, "address.added")) {
        dest_address(rng_below(10) < 7 ? mix(acct, 31 + rng_below(3)) % a->destinations
                                       : mix(acct, 41 + rng_below(5)) % a->destinations, addr);
        snprintf(extra, sizeof extra, ",\"address\":\"%s\"", addr);
    } else if (!strncmp(actions[k].name, "api_key.", 8)) {
        snprintf(extra, sizeof extra, ",\"api_key_id\":\"key-%06u\"", (unsigned)(mix(acct, 51) % 1000000));
    } else {
        snprintf(extra, sizeof extra, ",\"device_id\":\"dev-%08x\"", (unsigned)account_device(acct));
    }
    return snprintf(line, 4096,
                    "{\"event_id\":\"evt-%010llu\",\"type\":\"account.security\",\"ts\":\"%s\","
                    "\"account_id\":\"acct-%06llu\",\"action\":\"%s\",\"ip\":\"%s\"%s}",
                    (unsigned long long)i, ts, (unsigned long long)acct, actions[k].name, ip, extra);
}

static int outflow(const struct args *a, char *line, uint64_t i, const char *ts)
{
    int m = (int)rng_below(NMARKETS);
    const struct market *mk = &markets[m];
    struct recent *rc = &recent[m];
    char ids[512], addr[48], tx[72];
    size_t il = 0;
    double usd = 0;
    uint64_t dest;
    int k = 1 + (int)rng_below(3); /* batches of 1..3 */

    if (k > rc->n)
        k = rc->n;
    ids[0] = '\0';
    for (int j = 0; j < k; j++) {
        il += (size_t)snprintf(ids + il, sizeof ids - il, "%s\"wd-%010llu\"", j ? "," : "",
                               (unsigned long long)rc->wd[j]);
        usd += rc->usd[j];
    }
    if (k) {
        dest = rc->dest[0];
        memmove(rc->wd, rc->wd + k, (size_t)(rc->n - k) * sizeof rc->wd[0]);
        memmove(rc->usd, rc->usd + k, (size_t)(rc->n - k) * sizeof rc->usd[0]);
        memmove(rc->dest, rc->dest + k, (size_t)(rc->n - k) * sizeof rc->dest[0]);
        rc->n -= k;
    } else {
        /* nothing to pay: a transfer matching no request (the interesting case) */
        dest = rng_below(a->destinations);
        usd = rng_lognormal(300.0, 1.9);
    }
    dest_address(dest, addr);
    uint64_t h = rng_next();
    size_t tl = 0;
    if (mk->style == A_EVM)
        tx[tl++] = '0', tx[tl++] = 'x';
    for (int j = 0; j < 64; j++, h = mix(h, (uint64_t)j))
        tx[tl++] = hex[h & 15];
    tx[tl] = '\0';
    return snprintf(line, 4096,
                    "{\"event_id\":\"evt-%010llu\",\"type\":\"wallet.outflow\",\"ts\":\"%s\","
                    "\"wallet_id\":\"%s\",\"chain\":\"%s\",\"asset\":\"%s\",\"amount\":\"%.*f\","
                    "\"amount_usd\":%.2f,\"tx_hash\":\"%s\",\"dest_address\":\"%s\","
                    "\"withdrawal_ids\":[%s]}",
                    (unsigned long long)i, ts, mk->wallet, mk->chain, mk->asset, mk->decimals,
                    usd / mk->price, usd, tx, addr, ids);
}

static int balance(char *line, uint64_t i, const char *ts)
{
    const struct market *mk = &markets[rng_below(NMARKETS)];
    double usd = rng_lognormal(2e6, 0.6);
    return snprintf(line, 4096,
                    "{\"event_id\":\"evt-%010llu\",\"type\":\"wallet.balance\",\"ts\":\"%s\","
                    "\"wallet_id\":\"%s\",\"chain\":\"%s\",\"asset\":\"%s\",\"balance\":\"%.*f\","
                    "\"balance_usd\":%.2f}",
                    (unsigned long long)i, ts, mk->wallet, mk->chain, mk->asset, mk->decimals,
                    usd / mk->price, usd);
}

static const char usage[] =
    "usage: gen_events --events N --accounts A --destinations D --seed S --days F\n"
    "Write N events (JSON Lines) to stdout, evenly over F days from 2024-01-01.\n";

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {1000000, 20000, 5000, 1, 14.0};
    char line[4096], ts[32];
    uint64_t wd_seq = 0;

    for (int i = 1; i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = !v;
        if (!bad && !strcmp(o, "--events"))
            bad = parse_u64(v, &a.events);
        else if (!bad && !strcmp(o, "--accounts"))
            bad = parse_u64(v, &a.accounts) || !a.accounts || a.accounts > 1000000;
        else if (!bad && !strcmp(o, "--destinations"))
            bad = parse_u64(v, &a.destinations) || !a.destinations;
        else if (!bad && !strcmp(o, "--seed"))
            bad = parse_u64(v, &a.seed);
        else if (!bad && !strcmp(o, "--days")) {
            char *end;
            a.days = strtod(v, &end);
            bad = *end || !(a.days > 0 && a.days < 36500);
        } else {
            fputs(usage, stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "gen_events: bad value for %s: '%s'\n%s", o, v ? v : "", usage);
            return 2;
        }
    }
    rng_state = mix(a.seed, 0x6472616e);

    /* time of event i: T0 + i * span / N, integer arithmetic so that the
     * spacing is exact and the same everywhere */
    int64_t span = (int64_t)llround(a.days * (double)DAY_MS);
    for (uint64_t i = 0; i < a.events; i++) {
        int64_t t = T0_MS + (int64_t)((__int128)i * span / (__int128)a.events);
        int r = (int)rng_below(1000), n;
        fmt_time(t, ts);
        if (r < 800)
            n = withdrawal(&a, line, i, ts, &wd_seq);
        else if (r < 920)
            n = security(&a, line, i, ts);
        else if (r < 970)
            n = outflow(&a, line, i, ts);
        else
            n = balance(line, i, ts);
        emit_line(line, n);
    }
    flush_out();
    if (fflush(stdout) != 0) {
        fprintf(stderr, "gen_events: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
