/*
 * gen_output.c - the last stage of `drainguard gen`: pays the queued
 * requests with hot-wallet outflows, adds balance snapshots, sorts
 * everything by event time and writes events.jsonl, labels.jsonl and
 * summary.txt. Also dg_gen_write(), which runs the stages in order.
 *
 * Memory: every event is held as text until the sort, about 300 bytes
 * each (~350 MB at --scale 1); fine for an offline tool, and it keeps the
 * generators free to emit out of time order.
 */
#include "gen.h"
#include "event.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SNAPSHOT_MS (10 * DG_GEN_MIN_MS)
#define BATCH_MS (10 * DG_GEN_MIN_MS) /* requests this close to the first share a transaction */
#define BATCH_MAX 5

/* ---- payouts ---- */

static int cmp_pay(const void *pa, const void *pb)
{
    const struct dg_gen_pay *a = pa, *b = pb;
    if (a->market != b->market)
        return a->market < b->market ? -1 : 1;
    if (a->dest != b->dest)
        return a->dest < b->dest ? -1 : 1;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->wd < b->wd ? -1 : a->wd > b->wd;
}

/* How long the signer takes: median 4 minutes, 1 to 30. */
static int64_t payout_delay(struct dg_gen_rng *r)
{
    return (int64_t)(fmin(fmax(dg_gen_lognormal(r, 240, 0.5), 60), 1800) * 1000);
}

/* Legitimate requests to the same destination within BATCH_MS of the first
 * go out in one transaction (most of the time; up to BATCH_MAX of them).
 * Attack requests are paid one by one, like a request nobody stopped. */
void dg_gen_payouts(struct dg_gen *g)
{
    struct dg_gen_rng r;
    uint64_t ids[BATCH_MAX];

    dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_PAYOUT, 0);
    qsort(g->pay, g->npay, sizeof *g->pay, cmp_pay);
    for (size_t i = 0; i < g->npay;) {
        const struct dg_gen_pay *p = &g->pay[i];
        struct dg_gen_out o = {0};
        size_t j = i + 1;

        o.market = p->market;
        o.dest = p->dest;
        o.scen = p->scen;
        o.phase = p->scen ? DG_GEN_PH_OUTFLOW : DG_GEN_PH_NONE;
        if (!p->scen && dg_gen_chance(&r, 0.75))
            while (j < g->npay && j - i < BATCH_MAX && !g->pay[j].scen &&
                   g->pay[j].market == p->market && g->pay[j].dest == p->dest &&
                   g->pay[j].ts - p->ts <= BATCH_MS)
                j++;
        for (size_t k = i; k < j; k++) {
            ids[k - i] = g->pay[k].wd;
            o.units += g->pay[k].units;
        }
        o.ids = ids;
        o.nids = j - i;
        o.txkey = ids[0]; /* each request is paid once */
        o.ts = g->pay[j - 1].ts + payout_delay(&r);
        dg_gen_outflow(g, &o);
        i = j;
    }
}

/* ---- snapshots and order ---- */

static void add_snapshots(struct dg_gen *g)
{
    for (int w = 0; w < DG_GEN_NMARKETS; w++)
        for (int64_t t = g->t0 + w * 3000; t < g->t1; t += SNAPSHOT_MS) {
            if (g->nev == g->evcap) {
                g->evcap = g->evcap ? g->evcap * 2 : 4096;
                g->ev = dg_xrealloc(g->ev, g->evcap * sizeof *g->ev);
            }
            g->ev[g->nev] = (struct dg_gen_ev){t, 0, NULL, 0, (uint32_t)g->nev, DG_EV_BALANCE, 0, 0,
                                               (uint8_t)w};
            g->nev++;
        }
}

static int cmp_ev(const void *pa, const void *pb)
{
    const struct dg_gen_ev *a = pa, *b = pb;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* ---- writing ---- */

/* A hot wallet's balance as the writer walks the period: outflows take from
 * it, customer deposits swept in arrive between snapshots (on average what
 * legitimate outflows took), and the cold wallet tops it up when it falls
 * under 40% of its usual size. */
struct wallet {
    int64_t bal, usual, inflow;
};

struct totals {
    uint64_t by_type[DG_EV_NTYPES];
    uint64_t by_phase[DG_GEN_NSCEN][DG_GEN_NPHASES];
    uint64_t requests[DG_GEN_NSCEN], outflows[DG_GEN_NSCEN];
    double requests_usd[DG_GEN_NSCEN], outflows_usd[DG_GEN_NSCEN];
    uint64_t labels;
};

static void init_wallets(struct dg_gen *g, struct wallet *w, struct dg_gen_rng *r)
{
    int64_t legit_out[DG_GEN_NMARKETS] = {0};
    uint64_t snaps = (uint64_t)((g->t1 - g->t0 + SNAPSHOT_MS - 1) / SNAPSHOT_MS);

    for (size_t i = 0; i < g->nev; i++)
        if (g->ev[i].type == DG_EV_OUTFLOW && !g->ev[i].scen)
            legit_out[g->ev[i].market] += g->ev[i].units;
    for (int m = 0; m < DG_GEN_NMARKETS; m++) {
        w[m].usual = dg_gen_units(m, dg_gen_markets[m].hot_usd);
        w[m].bal = (int64_t)((double)w[m].usual * dg_gen_uniform(r, 0.9, 1.1));
        w[m].inflow = legit_out[m] / (int64_t)(snaps ? snaps : 1);
    }
}

static void snapshot_line(FILE *f, const char *id, const struct dg_gen_ev *e, struct wallet *w,
                          struct dg_gen_rng *r)
{
    const struct dg_gen_market *mk = &dg_gen_markets[e->market];
    char ts[32], amt[40];

    w->bal += (int64_t)((double)w->inflow * dg_gen_uniform(r, 0.3, 1.7));
    if (w->bal < w->usual / 10 * 4)
        w->bal = (int64_t)((double)w->usual * dg_gen_uniform(r, 0.95, 1.05));
    dg_time_format(e->ts, ts);
    dg_gen_amount_text(e->market, w->bal, amt);
    fprintf(f, "{\"event_id\":\"%s\",\"type\":\"wallet.balance\",\"ts\":\"%s\",\"wallet_id\":\"%s\","
               "\"chain\":\"%s\",\"asset\":\"%s\",\"balance\":\"%s\",\"balance_usd\":%.2f}\n",
            id, ts, mk->wallet, mk->chain, mk->asset, amt, dg_gen_usd(e->market, w->bal));
}

static void count(struct totals *t, const struct dg_gen_ev *e)
{
    double usd = dg_gen_usd(e->market, e->units);
    t->by_type[e->type]++;
    t->by_phase[e->scen][e->phase]++;
    if (e->type == DG_EV_WITHDRAWAL)
        t->requests[e->scen]++, t->requests_usd[e->scen] += usd;
    else if (e->type == DG_EV_OUTFLOW)
        t->outflows[e->scen]++, t->outflows_usd[e->scen] += usd;
}

/* Every event in time order with its id; the labels of attack events. */
static void write_events(struct dg_gen *g, FILE *ev, FILE *lab, struct totals *t)
{
    struct wallet w[DG_GEN_NMARKETS];
    struct dg_gen_rng r;
    char id[40];

    dg_gen_rng_seed(&r, g->o.seed, DG_GEN_S_BALANCE, 0);
    init_wallets(g, w, &r);
    for (size_t i = 0; i < g->nev; i++) {
        const struct dg_gen_ev *e = &g->ev[i];
        snprintf(id, sizeof id, "ev-%04x-%08zu", (unsigned)g->idtag, i + 1);
        if (e->type == DG_EV_BALANCE) {
            snapshot_line(ev, id, e, &w[e->market], &r);
        } else {
            if (e->type == DG_EV_OUTFLOW) {
                struct wallet *x = &w[e->market];
                if (x->bal < e->units + x->usual / 20) /* emergency top-up from cold */
                    x->bal += x->usual / 2 + e->units;
                x->bal -= e->units;
            }
            fprintf(ev, "{\"event_id\":\"%s\",%.*s\n", id, (int)e->len, e->body);
        }
        if (e->scen) {
            fprintf(lab, "{\"event_id\":\"%s\",\"scenario\":\"%s\",\"phase\":\"%s\"}\n", id,
                    dg_gen_scenario_name(e->scen), dg_gen_phase_name(e->phase));
            t->labels++;
        }
        count(t, e);
    }
}

static void write_summary(const struct dg_gen *g, FILE *f, const struct totals *t)
{
    char a[32], b[32];
    uint64_t total = 0;

    dg_time_format(g->t0, a);
    dg_time_format(g->t1, b);
    fprintf(f, "drainguard gen --seed %llu --scale %g --days %g --start %s\n",
            (unsigned long long)g->o.seed, g->o.scale, g->o.days, a);
    fprintf(f, "period %s .. %s\n", a, b);
    fprintf(f, "scenarios:");
    for (int sc = 1; sc < DG_GEN_NSCEN; sc++)
        if (g->o.scenarios & (1u << sc))
            fprintf(f, " %s", dg_gen_scenario_name(sc));
    fprintf(f, "%s\n\n", g->o.scenarios ? "" : " none");

    fprintf(f, "%-22s %10s %18s\n", "events by type", "count", "USD");
    for (int ty = 0; ty < DG_EV_NTYPES; ty++) {
        double usd = 0;
        for (int sc = 0; sc < DG_GEN_NSCEN; sc++)
            usd += ty == DG_EV_WITHDRAWAL ? t->requests_usd[sc] : ty == DG_EV_OUTFLOW ? t->outflows_usd[sc] : 0;
        total += t->by_type[ty];
        if (usd > 0)
            fprintf(f, "  %-20s %10llu %18.2f\n", dg_event_type_name(ty), (unsigned long long)t->by_type[ty], usd);
        else
            fprintf(f, "  %-20s %10llu\n", dg_event_type_name(ty), (unsigned long long)t->by_type[ty]);
    }
    fprintf(f, "  %-20s %10llu\n  %-20s %10llu\n\n", "total", (unsigned long long)total, "labels",
            (unsigned long long)t->labels);

    fprintf(f, "legitimate: %zu retail accounts, %zu whales, %zu market makers\n", g->nretail, g->nwhale, g->nmm);
    fprintf(f, "  events %llu; requests %llu, $%.2f; outflows %llu, $%.2f\n",
            (unsigned long long)t->by_phase[0][0], (unsigned long long)t->requests[0], t->requests_usd[0],
            (unsigned long long)t->outflows[0], t->outflows_usd[0]);
    dg_time_format(g->panic_from, a);
    dg_time_format(g->panic_to, b);
    fprintf(f, "  panic burst %s .. %s: withdrawals x%.1f, %llu extra requests\n\n", a, b, g->panic_mult,
            (unsigned long long)g->panic_requests);

    for (int sc = 1; sc < DG_GEN_NSCEN; sc++) {
        const struct dg_gen_scen_info *s = &g->scen[sc];
        const uint64_t *ph = t->by_phase[sc];
        if (!(g->o.scenarios & (1u << sc)))
            continue;
        dg_time_format(s->from, a);
        dg_time_format(s->to, b);
        fprintf(f, "%s: %s .. %s\n", dg_gen_scenario_name(sc), a, b);
        fprintf(f, "  events %llu (prepare %llu, attack %llu, outflow %llu); accounts %u, addresses %u\n",
                (unsigned long long)(ph[1] + ph[2] + ph[3]), (unsigned long long)ph[1],
                (unsigned long long)ph[2], (unsigned long long)ph[3], s->accounts, s->addresses);
        fprintf(f, "  requests %llu, $%.2f; outflows %llu, $%.2f\n", (unsigned long long)t->requests[sc],
                t->requests_usd[sc], (unsigned long long)t->outflows[sc], t->outflows_usd[sc]);
        fprintf(f, "  %s\n", s->note);
    }
}

/* ---- files ---- */

static FILE *open_out(const char *dir, const char *name, char *errstr, size_t errstr_size)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f)
        snprintf(errstr, errstr_size, "cannot write '%s': %s", path, strerror(errno));
    else
        setvbuf(f, NULL, _IOFBF, 1 << 20);
    return f;
}

static int close_out(FILE *f, const char *name, int ok, char *errstr, size_t errstr_size)
{
    int bad = ferror(f) != 0;
    bad |= fclose(f) != 0;
    if (bad && ok)
        snprintf(errstr, errstr_size, "write error on '%s': %s", name, strerror(errno));
    return ok && !bad;
}

static int check_opts(const struct dg_gen_opts *o, char *errstr, size_t errstr_size)
{
    if (!(o->scale > 0 && o->scale <= 20)) {
        snprintf(errstr, errstr_size, "scale %g is out of range (0, 20]", o->scale);
        return -1;
    }
    if (!(o->days > 0 && o->days <= 366)) {
        snprintf(errstr, errstr_size, "days %g is out of range (0, 366]", o->days);
        return -1;
    }
    return 0;
}

int dg_gen_write(const struct dg_gen_opts *o, const char *dir, struct dg_gen_result *res,
                 char *errstr, size_t errstr_size)
{
    struct dg_gen g;
    struct totals t;
    FILE *ev = NULL, *lab = NULL, *sum = NULL;
    int ok = 1;

    if (check_opts(o, errstr, errstr_size))
        return -1;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        snprintf(errstr, errstr_size, "cannot create '%s': %s", dir, strerror(errno));
        return -1;
    }
    dg_gen_init(&g, o);
    dg_gen_population(&g);
    if (dg_gen_plan(&g, errstr, errstr_size))
        goto out_free_gen;
    dg_gen_traffic(&g);
    dg_gen_attacks(&g);
    dg_gen_payouts(&g);
    add_snapshots(&g);
    qsort(g.ev, g.nev, sizeof *g.ev, cmp_ev);

    ev = open_out(dir, "events.jsonl", errstr, errstr_size);
    lab = ev ? open_out(dir, "labels.jsonl", errstr, errstr_size) : NULL;
    sum = lab ? open_out(dir, "summary.txt", errstr, errstr_size) : NULL;
    if (!sum)
        goto out_close;
    memset(&t, 0, sizeof t);
    write_events(&g, ev, lab, &t);
    write_summary(&g, sum, &t);
    if (res) {
        res->events = g.nev;
        res->labels = t.labels;
    }
    ok = close_out(ev, "events.jsonl", 1, errstr, errstr_size);
    ok = close_out(lab, "labels.jsonl", ok, errstr, errstr_size);
    ok = close_out(sum, "summary.txt", ok, errstr, errstr_size);
    dg_gen_free(&g);
    return ok ? 0 : -1;

out_close:
    if (lab)
        fclose(lab);
    if (ev)
        fclose(ev);
out_free_gen:
    dg_gen_free(&g);
    return -1;
}
