/*
 * gen.h - `drainguard gen`: synthetic exchange traffic with labelled attacks,
 * for backtesting and tuning rules. Not part of the detection pipeline; the
 * engine never reads what it writes except as ordinary replay input.
 *
 * The first half is the interface cmd_gen.c and the tests use. The second
 * half is shared only among the generator's own files:
 *   gen_world.c    randomness, markets, accounts, addresses, the event sink
 *   gen_traffic.c  legitimate traffic (retail, whales, market makers, panic)
 *   gen_attacks.c  the five incident scenarios and where they go in time
 *   gen_output.c   payouts (outflows), balance snapshots, sorting, the files
 */
#ifndef DG_GEN_H
#define DG_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* ---- interface ---- */

/* A withdrawal of at least this many USD is reviewed by the exchange's
 * existing checks; the structuring scenario stays just below it. */
#define DG_GEN_REVIEW_THRESHOLD_USD 10000.0
/* The per-request limit of the exchange's existing checks; binance-2019
 * keeps every request below it. */
#define DG_GEN_PER_REQUEST_LIMIT_USD 100000.0

enum dg_gen_scenario {
    DG_GEN_LEGIT = 0,     /* not a scenario: legitimate traffic */
    DG_GEN_BINANCE_2019,
    DG_GEN_COINEX_2023,
    DG_GEN_MIXIN_2023,
    DG_GEN_ACCOUNT_TAKEOVER,
    DG_GEN_STRUCTURING,
    DG_GEN_NSCEN
};
#define DG_GEN_ALL_SCENARIOS (((1u << DG_GEN_NSCEN) - 1) & ~1u)

/* Label phases. */
enum { DG_GEN_PH_NONE = 0, DG_GEN_PH_PREPARE, DG_GEN_PH_ATTACK, DG_GEN_PH_OUTFLOW, DG_GEN_NPHASES };

/* "binance-2019", ...; "legitimate" for DG_GEN_LEGIT. */
const char *dg_gen_scenario_name(int sc);
/* The scenario of that name, or -1. "legitimate" is not a scenario. */
int dg_gen_scenario_lookup(const char *name);
const char *dg_gen_phase_name(int phase);

struct dg_gen_opts {
    uint64_t seed;
    double scale;       /* 1.0: about a million events over 7 days */
    int64_t start_ms;   /* epoch ms of the first event time */
    double days;        /* length of the period, > 0 */
    unsigned scenarios; /* bit (1u << sc) per scenario to inject */
};

struct dg_gen_result {
    uint64_t events, labels;
};

/* Generate and write DIR/events.jsonl, DIR/labels.jsonl and DIR/summary.txt
 * (DIR is created when missing). The same options give the same bytes.
 * Returns 0 and fills *res (may be NULL), or -1 with a message in errstr. */
int dg_gen_write(const struct dg_gen_opts *o, const char *dir, struct dg_gen_result *res,
                 char *errstr, size_t errstr_size);

/* ---- shared by gen_*.c ---- */

#define DG_GEN_MIN_MS 60000LL
#define DG_GEN_HOUR_MS 3600000LL
#define DG_GEN_DAY_MS 86400000LL

/* randomness: xoshiro256** seeded through splitmix64; one stream per
 * purpose so that, e.g., adding a scenario does not move legitimate traffic */
struct dg_gen_rng {
    uint64_t s[4];
};

uint64_t dg_gen_mix(uint64_t a, uint64_t b);
/* Seed a stream from (seed, stream, sub). */
void dg_gen_rng_seed(struct dg_gen_rng *r, uint64_t seed, uint64_t stream, uint64_t sub);
uint64_t dg_gen_u64(struct dg_gen_rng *r);
double dg_gen_unit(struct dg_gen_rng *r);                      /* [0, 1) */
double dg_gen_uniform(struct dg_gen_rng *r, double lo, double hi);
uint64_t dg_gen_below(struct dg_gen_rng *r, uint64_t n);       /* [0, n) */
int dg_gen_chance(struct dg_gen_rng *r, double p);
double dg_gen_lognormal(struct dg_gen_rng *r, double median, double sigma);
uint64_t dg_gen_poisson(struct dg_gen_rng *r, double mean);

/* Streams (the "stream" argument of dg_gen_rng_seed). */
enum {
    DG_GEN_S_PLAN = 1, DG_GEN_S_POPULATION, DG_GEN_S_INTENTS, DG_GEN_S_ACCOUNT, DG_GEN_S_MM,
    DG_GEN_S_PAYOUT, DG_GEN_S_BALANCE, DG_GEN_S_SCENARIO, DG_GEN_S_VICTIMS
};

/* Address styles. */
enum { DG_GEN_ADDR_BTC, DG_GEN_ADDR_EVM, DG_GEN_ADDR_TRON };

/* One asset on one chain, paid by one hot wallet. */
struct dg_gen_market {
    const char *asset, *chain, *wallet;
    double price;     /* USD per unit, fixed over the period */
    int decimals;     /* amounts are written with this many */
    int style;        /* DG_GEN_ADDR_* */
    double hot_usd;   /* the hot wallet's usual balance, USD */
    double weight;    /* share of retail withdrawals */
};

enum { DG_GEN_M_BTC, DG_GEN_M_ETH, DG_GEN_M_USDT_ETH, DG_GEN_M_USDT_TRON, DG_GEN_M_BNB,
       DG_GEN_M_MATIC, DG_GEN_NMARKETS };
extern const struct dg_gen_market dg_gen_markets[DG_GEN_NMARKETS];

/* USD -> smallest units (> 0), and back. */
int64_t dg_gen_units(int market, double usd);
double dg_gen_usd(int market, int64_t units);
/* Units as a decimal string with the market's decimals. out: 40 bytes. */
void dg_gen_amount_text(int market, int64_t units, char out[40]);

/* A destination address of the market's style from a 64-bit key. out: 64. */
void dg_gen_address(int market, uint64_t key, char out[64]);
/* Dotted IPv4 from a 32-bit key (a public-looking range). out: 16. */
void dg_gen_ip(uint64_t key, char out[16]);

enum { DG_GEN_RETAIL, DG_GEN_WHALE, DG_GEN_MM };
enum { DG_GEN_CH_WEB, DG_GEN_CH_APP, DG_GEN_CH_API };

/* One customer account, fixed before any event is generated. */
struct dg_gen_acct {
    int64_t created_at;  /* epoch ms; set in the walk for brand-new accounts */
    float weight;        /* retail activity weight */
    uint8_t kind;        /* DG_GEN_RETAIL, ... */
    uint8_t channel;     /* preferred channel */
    uint8_t show_created;/* requests carry account_created_at */
    uint8_t brand_new;   /* created shortly before its first activity */
    uint8_t market[2];   /* the markets it withdraws in */
    uint8_t nmarket;
    uint8_t victim;      /* scenario that uses it, 0 for none */
    uint8_t victim_market; /* legitimate traffic leaves this balance alone */
};

/* An event collected before sorting. body is the JSON after the event_id
 * member ("\"type\":...}"), or NULL for a balance snapshot formatted when
 * written. */
struct dg_gen_ev {
    int64_t ts;
    int64_t units;       /* requests and outflows: amount in smallest units */
    const char *body;
    uint32_t len;
    uint32_t seq;        /* emission order: ties in ts keep it */
    uint8_t type;        /* enum dg_event_type */
    uint8_t scen, phase;
    uint8_t market;
};

/* A request waiting to be paid by its hot wallet. */
struct dg_gen_pay {
    int64_t ts;
    int64_t units;
    uint64_t wd;         /* withdrawal number (see dg_gen_wd_id) */
    uint64_t dest;       /* address key */
    uint8_t market, scen;
};

/* What a scenario did, for summary.txt. */
struct dg_gen_scen_info {
    int64_t from, to;    /* the time it occupies */
    int64_t mark[4];     /* scenario-specific moments (e.g. end of preparation) */
    uint32_t *victims;   /* account indexes, chosen before legitimate traffic */
    size_t nvictims;
    unsigned accounts, addresses;
    char note[160];
};

struct dg_gen {
    struct dg_gen_opts o;
    int64_t t0, t1;          /* the period */
    dg_arena text;
    struct dg_gen_ev *ev;
    size_t nev, evcap;
    struct dg_gen_pay *pay;
    size_t npay, paycap;
    uint64_t nwd;            /* withdrawal counter */
    uint32_t idtag;          /* seed-derived tag in ids */

    struct dg_gen_acct *acct;
    size_t nacct, nretail, nwhale, nmm;
    double day_requests;     /* retail requests per day */

    struct dg_gen_scen_info scen[DG_GEN_NSCEN];
    int64_t panic_from, panic_to;
    double panic_mult;
    uint64_t panic_requests;
};

/* ---- gen_world.c ---- */
void dg_gen_init(struct dg_gen *g, const struct dg_gen_opts *o);
void dg_gen_free(struct dg_gen *g);
/* Build the account population (before victims and traffic). */
void dg_gen_population(struct dg_gen *g);
/* Relative activity at time ts: a daily rhythm peaking mid-afternoon UTC,
 * quieter at weekends. In (0, DG_GEN_RHYTHM_MAX]. */
#define DG_GEN_RHYTHM_MAX 1.55
double dg_gen_rhythm(int64_t ts);
/* A time in [from, to) drawn along the rhythm. */
int64_t dg_gen_rhythm_time(struct dg_gen_rng *r, int64_t from, int64_t to);

void dg_gen_acct_id(const struct dg_gen *g, size_t idx, char out[24]);
uint64_t dg_gen_acct_device(const struct dg_gen *g, size_t idx, unsigned k);
uint64_t dg_gen_acct_ip(const struct dg_gen *g, size_t idx, unsigned k);
void dg_gen_device_text(uint64_t dev, char out[24]);
void dg_gen_key_text(uint64_t key, char out[32]);
/* "wd-" and 16 hex digits; distinct for distinct n. out: 24. */
void dg_gen_wd_id(const struct dg_gen *g, uint64_t n, char out[24]);

/* Append an event; fmt gives the members after "ts" (starting with ','),
 * or "" for none. */
void dg_gen_emit(struct dg_gen *g, int64_t ts, int type, int scen, int phase, int market,
                 int64_t units, const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/* account.security. ip, dev, key, addr: 0 when absent (addr needs market). */
struct dg_gen_sec {
    int64_t ts;
    size_t acct;
    const char *action;
    uint64_t ip, dev, key, addr;
    int addr_market;
    int scen, phase;
};
void dg_gen_security(struct dg_gen *g, const struct dg_gen_sec *s);

/* withdrawal.requested; queues its payout. */
struct dg_gen_wdr {
    int64_t ts;
    size_t acct;
    int market;
    int64_t units;
    uint64_t dest;           /* address key */
    double balance_usd;      /* before this request */
    int channel;
    uint64_t ip, dev, key;   /* 0 when absent */
    int scen, phase;
};
void dg_gen_withdrawal(struct dg_gen *g, const struct dg_gen_wdr *w);

/* wallet.outflow. ids: withdrawal numbers (nids may be 0); with none, the
 * member is absent unless empty_array ("[]"). fake_ids adds that many ids
 * that no request has. */
struct dg_gen_out {
    int64_t ts;
    int market;
    int64_t units;
    uint64_t dest;
    const uint64_t *ids;
    size_t nids;
    int empty_array;
    unsigned fake_ids;
    uint64_t txkey;          /* distinct per outflow: its tx_hash derives from it */
    int scen, phase;
};
void dg_gen_outflow(struct dg_gen *g, const struct dg_gen_out *o);

/* ---- gen_traffic.c ---- */
void dg_gen_traffic(struct dg_gen *g);

/* ---- gen_attacks.c ---- */
/* Place every scenario and the panic burst in time and pick their victim
 * accounts (always all of them, so that legitimate traffic does not depend
 * on which scenarios are asked for). -1 when the period is too short. */
int dg_gen_plan(struct dg_gen *g, char *errstr, size_t errstr_size);
/* Emit the asked-for scenarios' events. */
void dg_gen_attacks(struct dg_gen *g);

/* ---- gen_output.c ---- */
/* Turn queued requests into outflows (batching legitimate ones). */
void dg_gen_payouts(struct dg_gen *g);

#endif
