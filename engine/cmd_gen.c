/*
 * cmd_gen.c - `drainguard gen`: options, usage and the report on stderr.
 * The generator itself is engine/gen_*.c (gen.h); this file only turns
 * argv into struct dg_gen_opts.
 */
#include "cmd.h"
#include "gen.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char dg_usage_gen[] =
    "usage: drainguard gen --seed N --out DIR [--scale F] [--scenario NAME ...]\n"
    "                      [--start RFC3339] [--days D] [--quiet]\n"
    "\n"
    "Generate a synthetic exchange's traffic with labelled attacks, for backtests\n"
    "and for tuning rules. Writes, in DIR (created if missing):\n"
    "\n"
    "  events.jsonl   the events (the event contract), in event-time order\n"
    "  labels.jsonl   one line per event that belongs to an attack:\n"
    "                 {\"event_id\", \"scenario\", \"phase\": prepare|attack|outflow};\n"
    "                 the engine never reads it, `drainguard score` does\n"
    "  summary.txt    what was generated: counts by type and scenario, USD totals\n"
    "\n"
    "The same options give byte-identical files.\n"
    "\n"
    "Legitimate traffic: retail accounts (heavy-tailed balances, a daily rhythm,\n"
    "new addresses, brand-new accounts, password changes, 2FA resets), whales,\n"
    "market makers moving millions over the API, popular destinations, a market\n"
    "panic (about an hour of 5-10x withdrawals), hot-wallet outflows paying the\n"
    "requests (some batched) and balance snapshots every 10 minutes.\n"
    "\n"
    "  --seed N          random seed (default 1)\n"
    "  --out DIR         where to write (required)\n"
    "  --scale F         1 gives about a million events over 7 days (default 1;\n"
    "                    at most 20)\n"
    "  --scenario NAME   inject this scenario (repeatable); `all` (the default)\n"
    "                    injects every one, `none` gives only legitimate traffic:\n"
    "                      binance-2019      stolen API keys, a wait, BTC drained\n"
    "                                        through many accounts under the limit\n"
    "                      coinex-2023       outflows from several hot wallets\n"
    "                                        with no request behind them\n"
    "                      mixin-2023        forged requests: ~$200M in an hour\n"
    "                      account-takeover  password + 2FA reset, new address,\n"
    "                                        balance out, on several accounts\n"
    "                      structuring       many requests just under $10,000\n"
    "  --start TIME      first event time (default 2024-03-04T00:00:00Z)\n"
    "  --days D          length of the period in days (default 7)\n"
    "  --quiet           no report on stderr\n";

#define DEFAULT_START_MS 1709510400000LL /* 2024-03-04T00:00:00Z */

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

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || end == s || *end || !isfinite(*out) ? -1 : 0;
}

/* --scenario NAME: all, none, or one name (adds to what is chosen). */
static int add_scenario(const char *name, unsigned *set, int *named)
{
    int sc;
    if (!strcmp(name, "all")) {
        *set |= DG_GEN_ALL_SCENARIOS;
    } else if (strcmp(name, "none") != 0) {
        if ((sc = dg_gen_scenario_lookup(name)) < 0) {
            dg_cmd_error("gen", "unknown scenario '%s' (try binance-2019, coinex-2023, mixin-2023, "
                         "account-takeover, structuring, all, none)", name);
            return -1;
        }
        *set |= 1u << sc;
    }
    *named = 1;
    return 0;
}

int dg_cmd_gen(int argc, char **argv)
{
    struct dg_gen_opts o = {1, 1.0, DEFAULT_START_MS, 7.0, 0};
    struct dg_gen_result res;
    const char *out = NULL, *v;
    int named = 0, quiet = 0;
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        int bad = 0;
        if ((v = dg_opt(argc, argv, &i, "--seed")))
            bad = parse_u64(v, &o.seed);
        else if ((v = dg_opt(argc, argv, &i, "--scale")))
            bad = parse_double(v, &o.scale) || !(o.scale > 0 && o.scale <= 20);
        else if ((v = dg_opt(argc, argv, &i, "--days")))
            bad = parse_double(v, &o.days) || !(o.days > 0 && o.days <= 366);
        else if ((v = dg_opt(argc, argv, &i, "--start")))
            bad = dg_time_parse_rfc3339(v, strlen(v), &o.start_ms);
        else if ((v = dg_opt(argc, argv, &i, "--out")))
            out = v;
        else if ((v = dg_opt(argc, argv, &i, "--scenario"))) {
            if (add_scenario(v, &o.scenarios, &named))
                return 2;
        } else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else {
            dg_cmd_error("gen", "unknown option '%s'\n\n%s", argv[i], dg_usage_gen);
            return 2;
        }
        if (bad) {
            dg_cmd_error("gen", "bad value for %s: '%s'", opt, v);
            return 2;
        }
    }
    if (!out) {
        dg_cmd_error("gen", "--out DIR is required\n\n%s", dg_usage_gen);
        return 2;
    }
    if (!named)
        o.scenarios = DG_GEN_ALL_SCENARIOS;

    double t0 = dg_now_seconds();
    if (dg_gen_write(&o, out, &res, err, sizeof err) != 0) {
        dg_cmd_error("gen", "%s", err);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "drainguard gen: wrote %llu events and %llu labels to %s/ in %.1f s "
                        "(see %s/summary.txt)\n",
                (unsigned long long)res.events, (unsigned long long)res.labels, out,
                dg_now_seconds() - t0, out);
    return 0;
}
