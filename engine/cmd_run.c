/*
 * cmd_run.c - `drainguard run`: the streaming engine. Kafka in
 * (source_kafka.c) -> the same batch pipeline as replay (pipeline.c, state
 * in Redis or memory) -> decisions and dead letters out (output_kafka.c).
 *
 * Batches: poll -> push -> flush (the state backend applies and commits)
 * -> emit produces the batch's messages as one producer round -> the next
 * batch, while the brokers acknowledge (up to MAX_FLIGHTS batches in
 * flight). A batch's offsets are stored only when every decision and dead
 * letter of it and of every batch before it was acknowledged, in order, so
 * a crash at any point means a redelivery, never a loss; the backend makes
 * a redelivery change nothing and return the stored decision, so it is
 * never a double count either. A failed delivery rewinds every partition
 * to the first offset not stored and forgets the later batches in flight.
 * While Redis runs a batch's commit script, the engine reads and decodes
 * the next batch (prefetch), so the two overlap; that batch is decided
 * only after the first one's outcome is known (a second pipeline holds it).
 *
 * Failure handling lives here: the state backend failing (pause, back off,
 * keep serving the group, retry the same batch), a delivery failing (seek
 * back, back off, redo the batch), partitions revoked while a batch waits
 * (discard it), SIGTERM/SIGINT (finish the batch in hand, commit, exit 0).
 *
 * Operations live here too (docs/operations.md):
 *   - metrics: a batch's figures are tallied while it is emitted and added
 *     to the registry (metrics.c) only once the batch was delivered, so the
 *     counters match the decisions on the topic; once a second, between
 *     batches, the engine pings the state backend and reads consumer lag;
 *   - hot reload: a loader thread waits for SIGHUP (blocked in every other
 *     thread) or, with watch, for a rule file's mtime to change, loads and
 *     checks the new set off the hot path and hands it over; the engine
 *     swaps it in between batches. A set with errors is refused whole and
 *     the running one stays.
 *
 * Threads: the engine (this loop; owns the pipeline, the state backend, the
 * consumer), the loader (rule files, Redis freeze count on its own
 * connection), the HTTP server (renders the registry, reads readiness from
 * atomics and asks a broker for metadata), librdkafka's own.
 */
#include "cmd.h"
#include "config.h"
#include "detect.h"
#include "freeze_admin.h"
#include "log.h"
#include "metrics.h"
#include "output_kafka.h"
#include "pipeline.h"
#include "rules.h"
#include "sign.h"
#include "source_kafka.h"
#include "state.h"
#include "util.h"

#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef DG_VERSION
#define DG_VERSION "dev"
#endif

const char dg_usage_run[] =
    "usage: drainguard run [--config FILE] [--brokers HOST:PORT[,...]] [--rules FILE|DIR ...]\n"
    "                      [--redis HOST:PORT | --redis unix:PATH] [--state redis|memory]\n"
    "                      [--group ID] [--input-topics T[,T...]] [--decisions-topic T]\n"
    "                      [--dlq-topic T] [--batch N] [--linger-ms N]\n"
    "                      [--max-future DUR] [--dedupe-window DUR] [--lateness DUR]\n"
    "                      [--metrics HOST:PORT] [--watch] [--log-format text|json]\n"
    "                      [--log-level debug|info|warn|error]\n"
    "\n"
    "The streaming engine. Reads events from the input topics in a consumer\n"
    "group, decides them in batches with the rules (window state in Redis,\n"
    "shared by every instance), and publishes one decision per withdrawal and\n"
    "outflow to the decisions topic, keyed by withdrawal_id (else wallet_id,\n"
    "else event_id). Invalid messages go to the dead-letter topic unchanged,\n"
    "with headers dg-reason, dg-field, dg-message and dg-source; an invalid\n"
    "withdrawal request also gets a `hold` decision.\n"
    "\n"
    "An input offset is committed only after the decisions of its batch were\n"
    "acknowledged by the brokers: after a crash the events since the last\n"
    "commit are read again, and the state backend gives them their stored\n"
    "decisions without counting them twice.\n"
    "\n"
    "  --config FILE          YAML configuration (see docs/config.md and\n"
    "                         docker/drainguard.yaml); the flags below override it\n"
    "  --brokers LIST         Kafka bootstrap servers\n"
    "  --rules PATH           rule file or directory (repeatable; replaces the file's)\n"
    "  --redis ADDR           HOST:PORT or unix:PATH of Redis\n"
    "  --state redis|memory   where window state lives (default redis; memory is for\n"
    "                         development only: not shared, lost on exit)\n"
    "  --group ID             consumer group (default drainguard)\n"
    "  --input-topics LIST    default withdrawal-events\n"
    "  --decisions-topic T    default withdrawal-decisions\n"
    "  --dlq-topic T          default withdrawal-events-dlq\n"
    "  --batch N              most events per batch (default 500)\n"
    "  --linger-ms N          longest wait to fill a batch (default 0)\n"
    "  --max-future DUR       events stamped further ahead than this are invalid (10m)\n"
    "  --dedupe-window DUR    how long an event_id is remembered (default 24h)\n"
    "  --lateness DUR         how late an event may be and still see state (default 1h)\n"
    "  --metrics HOST:PORT    serve /metrics (Prometheus), /healthz and /readyz there\n"
    "                         (default off; see docs/operations.md)\n"
    "  --watch                reload the rules when a rule file changes (polled each\n"
    "                         second); SIGHUP always reloads them\n"
    "  --log-format FMT       text (default) or json (one JSON object a line)\n"
    "  --log-level LEVEL      debug, info (default), warn or error\n"
    "  --sign-key-file FILE   sign every decision (docs/signing.md) with this key\n"
    "  --sign-key-env NAME    ...or with the key in this environment variable\n"
    "  --sign-key-id ID       the key's id, written into every decision as sig_kid\n"
    "\n"
    "When Redis is unreachable the engine pauses its partitions, decides\n"
    "nothing, retries with backoff (100 ms up to 5 s) and resumes where it\n"
    "stopped. SIGTERM or SIGINT: the batch in hand is finished, offsets are\n"
    "committed, exit status 0. SIGHUP: the rule files are loaded again off\n"
    "the hot path and swapped in between batches; a set with errors is\n"
    "refused, logged with FILE:LINE:COL, and the running set stays.\n";

#define POLL_WAIT_MS 100        /* how often the loop looks at the stop flag */
#define PREPARE_MS 2000         /* at start, to learn the output topics' partitions */
#define ACK_WAIT_MS 1           /* ...and for acknowledgements, while batches are in flight */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define FLUSH_TIMEOUT_MS 10000  /* producer flush at exit */
#define TICK_MS 1000            /* state ping, lag, readiness: between batches */
#define BROKER_PING_MS 1000     /* /readyz waits this long for a broker */
#define FREEZE_COUNT_EVERY 5    /* loader ticks (seconds) between Redis freeze counts */
#define MAX_LAG_PARTITIONS 1024 /* partitions shown in drainguard_consumer_lag */
#define MAX_WATCHED_FILES 4096  /* entries of rule directories looked at per tick */
#define MAX_FLIGHTS 8           /* decided batches waiting for their acknowledgements */
#define RETIRE_ALL ((size_t)0)  /* retire(): wait until none is in flight */
#define RETIRE_DONE ((size_t)-1) /* retire(): only those already acknowledged */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The metric families (metrics.c), by id. */
struct fams {
    int events, decisions, rejects, hits, freezes_placed, duplicates, dead_letters, batches;
    int state_errors, delivery_failures, reloads, rules_info, build_info;
    int latency, batch_seconds, ping_seconds;
    int lag, assigned, paused, active_freezes, ready_redis;
};

/* A batch's figures, added to the registry once it was delivered. */
struct tally {
    uint64_t events[DG_EV_NTYPES];
    uint64_t actions[DG_NACTIONS];
    uint64_t rejects[DG_R_NCODES];
    uint64_t freezes[DG_NSCOPES];
    uint64_t duplicates, dead_letters, decisions;
    uint64_t *hits;             /* [rule * 2 + mode] of the running rule set */
    size_t nhits;
    int64_t *dec_ts;            /* per message: its Kafka timestamp when it got a
                                   decision in this batch, -1 without one, else -2 */
    size_t n;                   /* messages of the batch */
};

/* A decided batch whose messages the brokers have not all acknowledged:
 * its offsets are stored once they have (and those of every batch before). */
struct flight {
    uint64_t round;             /* its producer round */
    struct dg_tp *first, *next; /* per partition: first offset, last + 1 */
    size_t nparts;
    struct tally t;
    double decide_s;
};

/* The loader thread and what it hands over. */
struct loader {
    pthread_t th;
    int started;
    atomic_int stop;
    const char *const *paths;
    size_t npaths;
    int watch;
    pthread_mutex_t lock;
    struct dg_ruleset *ready;   /* loaded and checked, waiting for the swap */
    char running[40];           /* the version the engine runs (lock) */
    uint64_t fingerprint;       /* of the rule files, for watch */
    struct run *r;
};

/* Messages read together, decoded into their own pipeline. */
struct batch {
    dg_pipeline *p;
    struct dg_msg *msgs;
    size_t n;
    struct dg_tp *first, *next; /* per partition: first offset, last + 1 */
    size_t nparts;
    int started;                /* its commit is on its way */
};

struct run {
    struct dg_config *cfg;
    struct dg_ruleset *rs;      /* the running rule set (engine thread) */
    struct dg_state *st;
    dg_consumer *src;
    dg_producer *out;
    struct batch cur;           /* the batch in hand */
    struct batch pre;           /* the next one, read and decoded early */
    int drop_pre;               /* revocation: read the prefetched batch again */
    struct flight fl[MAX_FLIGHTS]; /* ring, oldest at fl_head */
    size_t fl_head, fl_n;
    struct dg_tp *rewind;       /* where a failed delivery sends partitions back */
    size_t nrewind;
    int in_callback;            /* inside the consumer's rebalance callback */
    char **topics;              /* topic names, interned (offsets outlive messages) */
    size_t ntopics;
    int waiting;                /* the batch waits for the state backend */
    int revoked;                /* ...and a partition of it was revoked */
    int deliver_backoff;
    unsigned long long batches, decisions, dead_letters, redeliveries;
    /* operations */
    dg_metrics *mx;
    struct fams f;
    struct tally t;
    dg_httpd *httpd;
    struct loader ld;
    double next_tick;
    struct dg_tp *lag;
    /* readiness, written by the engine thread, read by the HTTP thread */
    atomic_int consuming;       /* partitions assigned or the group joined */
    atomic_int redis_ok;
    atomic_int stopping;
    pthread_mutex_t ready_lock;
    char redis_err[256];        /* ready_lock */
};

static const char *const mode_names[] = {"enforce", "shadow"};

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- metrics --------------------------------------------------------- */

static void declare_metrics(struct run *r)
{
    /* fine below 25 ms, where a payout service's budget lies (and the
     * bench reads its percentiles from these) */
    static const double latency_b[] = {0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01,
                                       0.0125, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                       5, 10, 30, 60, 300};
    static const double batch_b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
    static const double ping_b[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
    static const char *const l_type[] = {"type", NULL}, *const l_action[] = {"action", NULL},
                             *const l_reason[] = {"reason", NULL},
                             *const l_rule[] = {"rule", "mode", NULL},
                             *const l_scope[] = {"scope", NULL}, *const l_result[] = {"result", NULL},
                             *const l_version[] = {"version", NULL},
                             *const l_tp[] = {"topic", "partition", NULL};
    dg_metrics *m = r->mx;
    struct fams *f = &r->f;

    f->events = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_events_total",
                                   "Valid events read, by event type (redeliveries included).",
                                   l_type, NULL, 0);
    f->decisions = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_decisions_total",
                                      "Decisions published and acknowledged by Kafka, by action.",
                                      l_action, NULL, 0);
    f->rejects = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_rejects_total",
                                    "Invalid input messages (sent to the dead-letter topic), by reason.",
                                    l_reason, NULL, 0);
    f->hits = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_rule_hits_total",
                                 "Rule matches, by rule id and mode (enforce or shadow).", l_rule,
                                 NULL, 0);
    f->freezes_placed = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_freezes_placed_total",
                                           "Freezes placed by rules, by scope.", l_scope, NULL, 0);
    f->active_freezes = dg_metrics_declare(m, DG_METRIC_GAUGE, "drainguard_active_freezes",
                                           "Freezes in force in the state backend, by scope "
                                           "(read every few seconds).", l_scope, NULL, 0);
    f->duplicates = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_duplicate_events_total",
                                       "Events whose event_id was decided before: the stored "
                                       "decision was published again.", NULL, NULL, 0);
    f->dead_letters = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_dead_letters_total",
                                         "Messages published to the dead-letter topic.", NULL, NULL, 0);
    f->batches = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_batches_total",
                                    "Batches decided, delivered and their offsets stored.", NULL,
                                    NULL, 0);
    f->state_errors = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_state_errors_total",
                                         "Batch attempts the state backend failed (Redis "
                                         "unreachable, timing out); each is retried.", NULL, NULL, 0);
    f->delivery_failures = dg_metrics_declare(m, DG_METRIC_COUNTER,
                                              "drainguard_delivery_failures_total",
                                              "Batches whose decisions were not all acknowledged "
                                              "(read again and republished).", NULL, NULL, 0);
    f->reloads = dg_metrics_declare(m, DG_METRIC_COUNTER, "drainguard_rule_reloads_total",
                                    "Rule reloads (SIGHUP or watch): ok (swapped in, or "
                                    "unchanged) or refused (errors: the running set stays).",
                                    l_result, NULL, 0);
    f->rules_info = dg_metrics_declare(m, DG_METRIC_GAUGE, "drainguard_rules_info",
                                       "The running rule set: its version (the rules_version of "
                                       "decisions) as a label.", l_version, NULL, 0);
    f->build_info = dg_metrics_declare(m, DG_METRIC_GAUGE, "drainguard_build_info",
                                       "The drainguard build, as a label.", l_version, NULL, 0);
    f->latency = dg_metrics_declare(m, DG_METRIC_HISTOGRAM, "drainguard_decision_latency_seconds",
                                    "From the input message's Kafka timestamp to the delivery "
                                    "acknowledgement of its decision's batch.", NULL, latency_b,
                                    DG_ARRAY_LEN(latency_b));
    f->batch_seconds = dg_metrics_declare(m, DG_METRIC_HISTOGRAM, "drainguard_batch_decide_seconds",
                                          "Deciding one batch: state apply, rules, state commit "
                                          "(two Redis round trips with the Redis backend).", NULL,
                                          batch_b, DG_ARRAY_LEN(batch_b));
    f->ping_seconds = dg_metrics_declare(m, DG_METRIC_HISTOGRAM, "drainguard_redis_ping_seconds",
                                         "Round trip of a PING to Redis, once a second between "
                                         "batches.", NULL, ping_b, DG_ARRAY_LEN(ping_b));
    f->lag = dg_metrics_declare(m, DG_METRIC_GAUGE, "drainguard_consumer_lag",
                                "Messages behind the partition's high watermark, per assigned "
                                "partition.", l_tp, NULL, 0);
    f->assigned = dg_metrics_declare(m, DG_METRIC_GAUGE, "drainguard_partitions_assigned",
                                     "Input partitions assigned to this instance.", NULL, NULL, 0);
    f->paused = dg_metrics_declare(m, DG_METRIC_GAUGE, "drainguard_paused",
                                   "1 while the partitions are paused (state backend unavailable "
                                   "or a delivery being retried).", NULL, NULL, 0);
    f->ready_redis = dg_metrics_declare(m, DG_METRIC_GAUGE, "drainguard_state_up",
                                        "1 when the state backend answered its last ping or batch.",
                                        NULL, NULL, 0);

    static const char *const ok[] = {"ok"}, *const refused[] = {"refused"}, *const ver[] = {DG_VERSION};
    dg_metrics_add(m, f->reloads, ok, 0);
    dg_metrics_add(m, f->reloads, refused, 0);
    dg_metrics_set(m, f->build_info, ver, 1);
}

static void tally_reset(struct run *r)
{
    struct tally *t = &r->t;
    uint64_t *hits = t->hits;
    int64_t *dec_ts = t->dec_ts;
    size_t nhits = t->nhits;
    memset(t, 0, sizeof *t);
    t->hits = hits;
    t->nhits = nhits;
    t->dec_ts = dec_ts;
    t->n = r->cur.n;
    memset(hits, 0, nhits * sizeof(*hits));
    for (size_t i = 0; i < r->cur.n; i++)
        dec_ts[i] = -2;
}

static void tally_size_one(struct run *r, struct tally *t)
{
    free(t->hits);
    t->nhits = r->rs->nrules * 2;
    t->hits = dg_xcalloc(t->nhits + 1, sizeof(*t->hits));
}

/* For the running rule set: the batch's tally and every flight's (none is
 * in flight when the set changes). */
static void tally_size(struct run *r)
{
    tally_size_one(r, &r->t);
    for (size_t i = 0; i < MAX_FLIGHTS; i++)
        tally_size_one(r, &r->fl[i].t);
}

/* The delivered batch's figures into the registry. */
static void tally_publish(struct run *r, const struct tally *t, double decide_s)
{
    dg_metrics *m = r->mx;
    double now = wall_seconds();

    if (!m)
        return;
    for (int i = 0; i < DG_EV_NTYPES; i++)
        if (t->events[i]) {
            const char *v[] = {dg_event_type_name(i)};
            dg_metrics_add(m, r->f.events, v, (double)t->events[i]);
        }
    for (int i = 0; i < DG_NACTIONS; i++)
        if (t->actions[i]) {
            const char *v[] = {dg_action_name(i)};
            dg_metrics_add(m, r->f.decisions, v, (double)t->actions[i]);
        }
    for (int i = 0; i < DG_R_NCODES; i++)
        if (t->rejects[i]) {
            const char *v[] = {dg_reject_name(i)};
            dg_metrics_add(m, r->f.rejects, v, (double)t->rejects[i]);
        }
    for (int i = 0; i < DG_NSCOPES; i++)
        if (t->freezes[i]) {
            const char *v[] = {dg_scope_name(i)};
            dg_metrics_add(m, r->f.freezes_placed, v, (double)t->freezes[i]);
        }
    for (size_t i = 0; i < t->nhits; i++)
        if (t->hits[i]) {
            const char *v[] = {r->rs->rules[i / 2].id, mode_names[i % 2]};
            dg_metrics_add(m, r->f.hits, v, (double)t->hits[i]);
        }
    if (t->duplicates)
        dg_metrics_add(m, r->f.duplicates, NULL, (double)t->duplicates);
    if (t->dead_letters)
        dg_metrics_add(m, r->f.dead_letters, NULL, (double)t->dead_letters);
    dg_metrics_add(m, r->f.batches, NULL, 1);
    dg_metrics_observe(m, r->f.batch_seconds, NULL, decide_s);
    for (size_t i = 0; i < t->n; i++) {
        if (t->dec_ts[i] < -1)
            continue; /* no decision */
        if (t->dec_ts[i] < 0)
            continue; /* no timestamp on the message */
        double lat = now - (double)t->dec_ts[i] / 1000.0;
        dg_metrics_observe(m, r->f.latency, NULL, lat > 0 ? lat : 0);
    }
}

static void set_rules_info(struct run *r)
{
    if (!r->mx)
        return;
    const char *v[] = {r->rs->version};
    dg_metrics_clear(r->mx, r->f.rules_info);
    dg_metrics_set(r->mx, r->f.rules_info, v, 1);
}

/* ---- readiness (HTTP thread) ----------------------------------------- */

static int ready(void *ud, char *why, size_t whysz)
{
    struct run *r = ud;
    if (atomic_load(&r->stopping)) {
        snprintf(why, whysz, "shutting down");
        return 0;
    }
    if (!atomic_load(&r->consuming)) {
        snprintf(why, whysz, "not consuming: no partition assigned and not yet a member of group '%s'",
                 r->cfg->group);
        return 0;
    }
    if (!atomic_load(&r->redis_ok)) {
        pthread_mutex_lock(&r->ready_lock);
        snprintf(why, whysz, "state backend unavailable: %s", r->redis_err);
        pthread_mutex_unlock(&r->ready_lock);
        return 0;
    }
    /* the consumer outlives the HTTP server (it is stopped first) */
    if (dg_consumer_ping(r->src, BROKER_PING_MS, why, whysz) != 0)
        return 0;
    return 1;
}

static void set_state_up(struct run *r, int up, const char *err)
{
    if (!up) {
        pthread_mutex_lock(&r->ready_lock);
        snprintf(r->redis_err, sizeof r->redis_err, "%s", err && *err ? err : "no answer");
        pthread_mutex_unlock(&r->ready_lock);
    }
    atomic_store(&r->redis_ok, up);
    if (r->mx)
        dg_metrics_set(r->mx, r->f.ready_redis, NULL, up);
}

/* ---- once a second, between batches (engine thread) ------------------ */

static void count_mem_freeze(void *ud, const char *scope, const char *key, const char *rule_id,
                             const char *reason, int64_t ts, const char *event_id)
{
    uint64_t *n = ud;
    (void)key, (void)rule_id, (void)reason, (void)ts, (void)event_id;
    int s = dg_scope_lookup(scope, strlen(scope));
    if (s >= 0)
        n[s]++;
}

static void tick(struct run *r, int force)
{
    double now = dg_now_seconds();
    if (!force && now < r->next_tick)
        return;
    r->next_tick = now + TICK_MS / 1000.0;

    if (!r->mx)
        return; /* the rest is for /metrics and /readyz */
    atomic_store(&r->consuming, dg_consumer_assigned(r->src) > 0 || dg_consumer_joined(r->src));
    double t0 = dg_now_seconds();
    int up = dg_state_ping(r->st) == 0;
    if (r->mx && r->cfg->state == DG_STATE_REDIS && up)
        dg_metrics_observe(r->mx, r->f.ping_seconds, NULL, dg_now_seconds() - t0);
    set_state_up(r, up, r->st->errstr[0] ? r->st->errstr : "PING failed");
    dg_metrics_set(r->mx, r->f.assigned, NULL, (double)dg_consumer_assigned(r->src));
    dg_metrics_set(r->mx, r->f.paused, NULL, dg_consumer_paused(r->src));
    size_t n = dg_consumer_lag(r->src, r->lag, MAX_LAG_PARTITIONS);
    dg_metrics_clear(r->mx, r->f.lag);
    for (size_t i = 0; i < n; i++) {
        char part[16];
        snprintf(part, sizeof part, "%d", (int)r->lag[i].partition);
        const char *v[] = {r->lag[i].topic, part};
        dg_metrics_set(r->mx, r->f.lag, v, (double)r->lag[i].offset);
    }
    if (r->cfg->state == DG_STATE_MEMORY) {
        uint64_t cnt[DG_NSCOPES] = {0};
        dg_state_mem_freezes(r->st, count_mem_freeze, cnt);
        for (int s = 0; s < DG_NSCOPES; s++) {
            const char *v[] = {dg_scope_name(s)};
            dg_metrics_set(r->mx, r->f.active_freezes, v, (double)cnt[s]);
        }
    }
}

/* ---- hot reload ------------------------------------------------------ */

static uint64_t mix(uint64_t h, const char *name, const struct stat *st)
{
    uint64_t v[5] = {(uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec,
                     (uint64_t)st->st_size, (uint64_t)st->st_ino, (uint64_t)st->st_ctim.tv_nsec};
    /* xor: the order in which readdir lists a directory does not matter */
    return h ^ dg_hash64(v, sizeof v, dg_hash64(name, strlen(name), 0x6472676c));
}

/* A digest of every rule file's name, mtime, size and inode (a directory:
 * of its entries too), so that an edit, a rename over the file or a new
 * file in a directory all show. Costs a stat per file per second. */
static uint64_t fingerprint(const char *const *paths, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            h ^= dg_hash64(paths[i], strlen(paths[i]), 1); /* missing: changes too */
            continue;
        }
        h = mix(h, paths[i], &st);
        if (!S_ISDIR(st.st_mode))
            continue;
        DIR *d = opendir(paths[i]);
        struct dirent *e;
        size_t k = 0;
        while (d && (e = readdir(d)) && k++ < MAX_WATCHED_FILES) {
            char full[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(full, sizeof full, "%s/%s", paths[i], e->d_name);
            if (stat(full, &st) == 0)
                h = mix(h, full, &st);
        }
        if (d)
            closedir(d);
    }
    return h;
}

static void log_diag(const struct dg_diag *diag, const char *event)
{
    for (size_t i = 0; i < diag->n; i++) {
        const char *line = diag->lines[i];
        const char *w = strstr(line, ": warning: ");
        struct dg_log_field f[] = {DG_LF_STR("event", event)};
        if (w)
            dg_logf(DG_LOG_WARN, f, 1, "%.*s: %s", (int)(w - line), line, w + 11);
        else
            dg_logf(DG_LOG_ERROR, f, 1, "%s", line);
    }
}

/* Load and check the rule files off the hot path; hand a good set to the
 * engine, refuse a bad one. Loader thread. */
static void reload(struct loader *ld, const char *why)
{
    struct dg_diag diag = {0};
    char running[40];
    double t0 = dg_now_seconds();
    struct dg_ruleset *rs = dg_ruleset_load(ld->paths, ld->npaths, &diag);

    pthread_mutex_lock(&ld->lock);
    snprintf(running, sizeof running, "%s", ld->running);
    pthread_mutex_unlock(&ld->lock);
    if (!rs) {
        log_diag(&diag, "reload_refused");
        struct dg_log_field f[] = {DG_LF_STR("event", "reload_refused"), DG_LF_STR("trigger", why),
                                   DG_LF_NUM("errors", diag.errors), DG_LF_STR("rules_version", running)};
        dg_logf(DG_LOG_ERROR, f, DG_ARRAY_LEN(f),
                "rule reload refused (%s): %d error%s; still running rules version %s", why,
                diag.errors, diag.errors == 1 ? "" : "s", running);
        if (ld->r->mx) {
            const char *v[] = {"refused"};
            dg_metrics_add(ld->r->mx, ld->r->f.reloads, v, 1);
        }
        dg_diag_free(&diag);
        return;
    }
    log_diag(&diag, "reload");
    dg_diag_free(&diag);
    dg_log(DG_LOG_DEBUG, "rule set %s loaded and checked in %.1f ms (%s)", rs->version,
           (dg_now_seconds() - t0) * 1000, why);
    pthread_mutex_lock(&ld->lock);
    if (!ld->ready && !strcmp(rs->version, ld->running)) {
        pthread_mutex_unlock(&ld->lock);
        struct dg_log_field f[] = {DG_LF_STR("event", "reload_ok"), DG_LF_STR("trigger", why),
                                   DG_LF_STR("rules_version", rs->version)};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f), "rules reloaded (%s): unchanged, version %s", why,
                rs->version);
        dg_ruleset_free(rs);
        if (ld->r->mx) {
            const char *v[] = {"ok"};
            dg_metrics_add(ld->r->mx, ld->r->f.reloads, v, 1);
        }
        return;
    }
    /* a set that waited for the swap and was overtaken never ran: drop it */
    dg_ruleset_free(ld->ready);
    ld->ready = rs;
    pthread_mutex_unlock(&ld->lock);
}

static void count_redis_freezes(struct run *r)
{
    struct dg_redis_opts ro;
    struct dg_freeze_entry *v = NULL;
    size_t n = 0;
    char err[256];
    uint64_t cnt[DG_NSCOPES] = {0};

    dg_config_redis_opts(r->cfg, &ro);
    if (dg_freezes_list(&ro, &v, &n, err, sizeof err) != 0)
        return; /* Redis down: drainguard_state_up says so; keep the last figures */
    for (size_t i = 0; i < n; i++) {
        const char *bar = strchr(v[i].field, '|');
        int s = bar ? dg_scope_lookup(v[i].field, (size_t)(bar - v[i].field)) : -1;
        if (s >= 0)
            cnt[s]++;
    }
    dg_freezes_list_free(v, n);
    for (int s = 0; s < DG_NSCOPES; s++) {
        const char *lv[] = {dg_scope_name(s)};
        dg_metrics_set(r->mx, r->f.active_freezes, lv, (double)cnt[s]);
    }
}

/* SIGHUP is blocked in every thread; this one takes it with sigtimedwait,
 * which also gives the one-second tick of watch. */
static void *loader_main(void *arg)
{
    struct loader *ld = arg;
    sigset_t hup;
    unsigned ticks = 0;

    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    while (!atomic_load(&ld->stop)) {
        struct timespec one = {1, 0};
        int sig = sigtimedwait(&hup, NULL, &one);
        if (atomic_load(&ld->stop))
            break;
        if (sig == SIGHUP) {
            ld->fingerprint = fingerprint(ld->paths, ld->npaths);
            reload(ld, "SIGHUP");
            continue;
        }
        if (ld->r->mx && ld->r->cfg->state == DG_STATE_REDIS && ticks++ % FREEZE_COUNT_EVERY == 0)
            count_redis_freezes(ld->r);
        if (!ld->watch)
            continue;
        uint64_t fp = fingerprint(ld->paths, ld->npaths);
        if (fp != ld->fingerprint) {
            ld->fingerprint = fp;
            reload(ld, "rule files changed");
        }
    }
    return NULL;
}

static int loader_start(struct run *r)
{
    struct loader *ld = &r->ld;
    ld->r = r;
    ld->paths = (const char *const *)r->cfg->rules;
    ld->npaths = r->cfg->nrules;
    ld->watch = r->cfg->watch;
    snprintf(ld->running, sizeof ld->running, "%s", r->rs->version);
    ld->fingerprint = fingerprint(ld->paths, ld->npaths);
    if (pthread_create(&ld->th, NULL, loader_main, ld) != 0)
        return -1;
    ld->started = 1;
    return 0;
}

static void loader_stop(struct loader *ld)
{
    if (!ld->started)
        return;
    atomic_store(&ld->stop, 1);
    pthread_kill(ld->th, SIGHUP); /* blocked there: pending, and sigtimedwait returns */
    pthread_join(ld->th, NULL);
    ld->started = 0;
    dg_ruleset_free(ld->ready);
    ld->ready = NULL;
}

/* Between batches (nothing pending): swap in a set the loader handed over.
 * Window state stays where a window's definition is unchanged (the backends
 * key state by a digest of it). */
static int retire(struct run *r, size_t keep);

static void swap_rules(struct run *r)
{
    struct loader *ld = &r->ld;
    struct dg_ruleset *rs;

    if (!ld->started)
        return;
    pthread_mutex_lock(&ld->lock);
    rs = ld->ready;
    ld->ready = NULL;
    pthread_mutex_unlock(&ld->lock);
    if (!rs)
        return;
    retire(r, RETIRE_ALL); /* their figures name the running set's rules */
    if (r->pre.n || dg_pipeline_set_rules(r->cur.p, rs) != 0 || dg_pipeline_set_rules(r->pre.p, rs) != 0) {
        pthread_mutex_lock(&ld->lock); /* a batch is pending: next time */
        if (!ld->ready)
            ld->ready = rs;
        else
            dg_ruleset_free(rs);
        pthread_mutex_unlock(&ld->lock);
        return;
    }
    struct dg_ruleset *old = r->rs;
    r->rs = rs;
    tally_size(r);
    set_rules_info(r);
    pthread_mutex_lock(&ld->lock);
    snprintf(ld->running, sizeof ld->running, "%s", rs->version);
    pthread_mutex_unlock(&ld->lock);
    struct dg_log_field f[] = {DG_LF_STR("event", "reload_ok"), DG_LF_STR("rules_version", rs->version),
                               DG_LF_STR("previous_version", old->version),
                               DG_LF_NUM("rules", rs->nrules), DG_LF_NUM("windows", rs->nwindows)};
    dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f),
            "rules reloaded: version %s -> %s (%zu rules, %zu windows); window state kept", old->version,
            rs->version, rs->nrules, rs->nwindows);
    if (r->mx) {
        const char *v[] = {"ok"};
        dg_metrics_add(r->mx, r->f.reloads, v, 1);
    }
    dg_ruleset_free(old);
}

/* ---- the batch ------------------------------------------------------- */

/* The key of scope s on the event ("*" for the global scope). */
static void scope_key(const struct dg_event *ev, int s, char *out, size_t outsz)
{
    int fld = dg_scope_field(s, ev->type);
    snprintf(out, outsz, "*");
    if (s != DG_SCOPE_GLOBAL && fld >= 0 && ev->f[fld].t == DG_T_STR)
        snprintf(out, outsz, "%.*s", (int)(ev->f[fld].len < outsz - 1 ? ev->f[fld].len : outsz - 1),
                 ev->f[fld].u.s);
}

/* Count, and log one line per freeze placed: scope, key, rule. Freezes
 * are rare (an attack, an unexplained outflow), so this is a state change,
 * not noise; a freeze placed again while in force is neither. */
static void note_freezes(struct run *r, const struct dg_output *o)
{
    const struct dg_decision *d = o->detail;
    const struct dg_event *ev = o->event;
    for (int s = 0; s < DG_NSCOPES; s++) {
        if (!(d->placed & (1u << s)))
            continue;
        if (d->was_frozen & (1u << s)) /* placed again while in force */
            continue;
        char key[256];
        scope_key(ev, s, key, sizeof key);
        r->t.freezes[s]++;
        const char *rule = "?", *reason = "";
        for (size_t m = 0; m < d->nm; m++) {
            int ri = d->m[m].rule;
            if (ri >= 0 && d->m[m].mode == DG_ENFORCE && d->m[m].action == DG_FREEZE &&
                (r->rs->rules[ri].freeze & (1u << s))) {
                rule = d->m[m].id;
                reason = d->m[m].reason ? d->m[m].reason : "";
                break;
            }
        }
        char eid[128] = "";
        const dg_value *e = &ev->f[DG_F_EVENT_ID];
        if (e->t == DG_T_STR)
            snprintf(eid, sizeof eid, "%.*s", (int)(e->len < sizeof eid - 1 ? e->len : sizeof eid - 1),
                     e->u.s);
        struct dg_log_field f[] = {DG_LF_STR("event", "freeze"), DG_LF_STR("scope", dg_scope_name(s)),
                                   DG_LF_STR("key", key), DG_LF_STR("rule", rule),
                                   DG_LF_STR("event_id", eid), DG_LF_STR("reason", reason)};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f), "freeze placed: %s '%s' by rule '%s' (event %s)",
                dg_scope_name(s), key, rule, eid);
    }
}

static int emit(void *ud, const struct dg_output *o)
{
    struct run *r = ud;
    size_t idx = (uintptr_t)o->tag;
    const struct dg_msg *m = &r->cur.msgs[idx];

    if (o->reject) {
        char src[320];
        const char *reason = dg_reject_name(o->reject->code);
        snprintf(src, sizeof src, "%s/%d/%lld", m->topic, (int)m->partition, (long long)m->offset);
        struct dg_header h[] = {
            {"dg-reason", reason, strlen(reason)},
            {"dg-field", o->reject->field, strlen(o->reject->field)},
            {"dg-message", o->reject->msg, strlen(o->reject->msg)},
            {"dg-source", src, strlen(src)},
        };
        dg_producer_send(r->out, r->cfg->dlq_topic, m->key, m->key_len, m->value, m->len, h,
                         DG_ARRAY_LEN(h));
        r->t.dead_letters++;
        if (o->reject->code >= 0 && o->reject->code < DG_R_NCODES)
            r->t.rejects[o->reject->code]++;
    }
    if (o->event && o->event->type >= 0 && o->event->type < DG_EV_NTYPES)
        r->t.events[o->event->type]++;
    if (o->decision) {
        dg_producer_send(r->out, r->cfg->decisions_topic, o->key, o->key_len, o->decision,
                         o->decision_len, NULL, 0);
        r->t.decisions++;
        if (o->action >= 0 && o->action < DG_NACTIONS)
            r->t.actions[o->action]++;
        r->t.dec_ts[idx] = r->mx ? dg_msg_timestamp(m) : -1;
    }
    if (o->duplicate)
        r->t.duplicates++;
    if (o->detail) {
        const struct dg_decision *d = o->detail;
        for (size_t k = 0; k < d->nm; k++) {
            size_t h = (size_t)d->m[k].rule * 2 + (d->m[k].mode == DG_SHADOW);
            if (d->m[k].rule >= 0 && h < r->t.nhits)
                r->t.hits[h]++;
        }
        if (d->placed && o->event)
            note_freezes(r, o);
    }
    return 0; /* a message that could not be queued fails the round */
}

/* Revocation. The batches in flight are decided: wait for their
 * acknowledgements and store their offsets, so the commit that follows
 * hands the new owner everything done here. A batch that waits for the
 * state backend has nothing applied: it is dropped and the new owner reads
 * it. */
static void on_revoke(void *ud, const struct dg_tp *tps, size_t n)
{
    struct run *r = ud;
    r->in_callback = 1;
    retire(r, RETIRE_ALL);
    r->in_callback = 0;
    if (r->pre.n)
        r->drop_pre = 1;
    if (!r->waiting)
        return;
    for (size_t i = 0; i < r->cur.nparts; i++)
        for (size_t j = 0; j < n; j++)
            if (r->cur.first[i].partition == tps[j].partition && !strcmp(r->cur.first[i].topic, tps[j].topic))
                r->revoked = 1;
}

/* The topic name, kept for the life of the run: a batch's offsets are
 * stored after its messages were released. Few topics: a linear search. */
static const char *intern_topic(struct run *r, const char *topic)
{
    for (size_t i = 0; i < r->ntopics; i++)
        if (!strcmp(r->topics[i], topic))
            return r->topics[i];
    r->topics = dg_xrealloc(r->topics, (r->ntopics + 1) * sizeof(*r->topics));
    return r->topics[r->ntopics++] = dg_xstrdup(topic);
}

/* The partitions of messages, with their first offset and last + 1. A
 * batch holds few partitions: the linear search is fine. */
static size_t index_msgs(struct run *r, const struct dg_msg *msgs, size_t n, struct dg_tp *first,
                         struct dg_tp *next)
{
    size_t nparts = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dg_msg *m = &msgs[i];
        size_t k = 0;
        while (k < nparts && (first[k].partition != m->partition || strcmp(first[k].topic, m->topic)))
            k++;
        if (k == nparts) {
            const char *topic = intern_topic(r, m->topic);
            first[k] = (struct dg_tp){topic, m->partition, m->offset};
            next[k] = (struct dg_tp){topic, m->partition, m->offset + 1};
            nparts++;
            continue;
        }
        if (m->offset < first[k].offset)
            first[k].offset = m->offset;
        if (m->offset + 1 > next[k].offset)
            next[k].offset = m->offset + 1;
    }
    return nparts;
}

static void index_batch(struct run *r)
{
    r->cur.nparts = index_msgs(r, r->cur.msgs, r->cur.n, r->cur.first, r->cur.next);
}

static void push_all(dg_pipeline *p, const struct dg_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dg_pipeline_push(p, msgs[i].value ? msgs[i].value : "", msgs[i].len, (void *)(uintptr_t)i);
}

/* While the batch in hand commits: read what is already there and decode
 * it into the second pipeline (no waiting). */
static void prefetch(struct run *r)
{
    struct batch *b = &r->pre;
    if (b->n || stop_requested || r->nrewind || dg_consumer_paused(r->src))
        return;
    ssize_t n = dg_consumer_poll(r->src, b->msgs, r->cfg->batch, 0, 0);
    if (n <= 0)
        return; /* an error shows again at the next poll */
    b->n = (size_t)n;
    b->nparts = index_msgs(r, b->msgs, b->n, b->first, b->next);
    push_all(b->p, b->msgs, b->n);
}

/* Forget the prefetched batch: nothing of it was decided, so its
 * partitions (those still assigned) go back to its first offsets. */
static void drop_prefetched(struct run *r)
{
    struct batch *b = &r->pre;
    r->drop_pre = 0;
    if (!b->n)
        return;
    dg_pipeline_discard(b->p);
    r->pre.started = 0;
    if (!stop_requested && dg_consumer_seek(r->src, b->first, b->nparts) != 0)
        dg_log(DG_LOG_ERROR, "%s", dg_consumer_error(r->src));
    dg_consumer_release(r->src, b->msgs, b->n);
    b->n = 0;
}

/* The prefetched batch becomes the batch in hand (pushed already, maybe
 * started); the old one's buffers take the next. */
static void take_prefetched(struct run *r)
{
    struct batch t = r->cur;
    r->cur = r->pre;
    r->pre = t;
    r->pre.n = r->pre.nparts = 0;
    r->pre.started = 0;
}

static int backoff_next(int ms)
{
    return ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

static void log_event(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_event(int level, const char *event, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct dg_log_field f[] = {DG_LF_STR("event", event)};
    dg_logf(level, f, 1, "%s", msg);
}

/* Add partition offsets to the rewind list, keeping the lowest offset of
 * each partition. */
static void rewind_add(struct run *r, const struct dg_tp *tps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < r->nrewind && (r->rewind[k].partition != tps[i].partition ||
                                  r->rewind[k].topic != tps[i].topic))
            k++;
        if (k == r->nrewind) {
            r->rewind = dg_xrealloc(r->rewind, (r->nrewind + 1) * sizeof(*r->rewind));
            r->rewind[r->nrewind++] = tps[i];
        } else if (tps[i].offset < r->rewind[k].offset) {
            r->rewind[k].offset = tps[i].offset;
        }
    }
}

/* Send the partitions back to the first offsets not stored, pause for the
 * delivery backoff, resume. Not from inside the rebalance callback: there
 * the list waits for the main loop. Returns -1 on a fatal consumer error. */
static int rewind_now(struct run *r)
{
    if (!r->nrewind || r->in_callback)
        return 0;
    dg_consumer_pause(r->src);
    if (dg_consumer_seek(r->src, r->rewind, r->nrewind) != 0)
        dg_log(DG_LOG_ERROR, "%s", dg_consumer_error(r->src));
    r->nrewind = 0;
    int ir = dg_consumer_idle(r->src, r->deliver_backoff);
    dg_consumer_resume(r->src);
    return ir ? -1 : 0;
}

/* The oldest flight's round failed: none of it or after it is stored.
 * Their state is committed, so reading them again gets the stored
 * decisions byte for byte: republishing is safe. */
static void delivery_failed(struct run *r, size_t failed, const char *err)
{
    size_t nfl = r->fl_n;
    uint64_t last = r->fl[(r->fl_head + nfl - 1) % MAX_FLIGHTS].round;

    for (size_t i = 0; i < nfl; i++) {
        const struct flight *f = &r->fl[(r->fl_head + i) % MAX_FLIGHTS];
        rewind_add(r, f->first, f->nparts);
    }
    if (r->pre.n) { /* read after them: read again */
        rewind_add(r, r->pre.first, r->pre.nparts);
        dg_pipeline_discard(r->pre.p);
        r->pre.started = 0;
        if (!r->in_callback) {
            dg_consumer_release(r->src, r->pre.msgs, r->pre.n);
            r->pre.n = 0;
        } else {
            r->drop_pre = 1;
        }
    }
    r->fl_n = 0;
    dg_producer_forget_until(r->out, last + 1);
    r->deliver_backoff = r->deliver_backoff ? backoff_next(r->deliver_backoff) : BACKOFF_MIN_MS;
    if (r->mx)
        dg_metrics_add(r->mx, r->f.delivery_failures, NULL, 1);
    struct dg_log_field f[] = {DG_LF_STR("event", "delivery_failed"), DG_LF_NUM("failed", failed),
                               DG_LF_NUM("batches", nfl), DG_LF_STR("error", err)};
    dg_logf(DG_LOG_WARN, f, DG_ARRAY_LEN(f),
            "%zu message%s of a batch not delivered (%s); its offsets and those of the %zu "
            "batch%s after it are not stored, reading them again in %d ms",
            failed, failed == 1 ? "" : "s", err, nfl - 1, nfl == 2 ? "" : "es", r->deliver_backoff);
}

/* Store the offsets of the flights whose messages were all acknowledged,
 * oldest first, stopping at the first that is not, until at most keep are
 * in flight (RETIRE_DONE: none waited for). Returns 1 when a delivery
 * failed (every flight dropped, r->rewind set), else 0. */
static int retire(struct run *r, size_t keep)
{
    char err[512];

    dg_producer_serve(r->out, 0);
    while (r->fl_n) {
        struct flight *f = &r->fl[r->fl_head];
        size_t failed = 0;
        if (!dg_producer_round_done(r->out, f->round, &failed, err, sizeof err)) {
            if (r->fl_n <= keep)
                break;
            failed = dg_producer_wait_round(r->out, f->round, err, sizeof err);
        }
        if (failed) {
            delivery_failed(r, failed, err);
            return 1;
        }
        if (r->deliver_backoff) {
            log_event(DG_LOG_INFO, "delivery_ok", "decisions delivered again");
            r->deliver_backoff = 0;
        }
        if (dg_consumer_store(r->src, f->next, f->nparts) != 0)
            dg_log(DG_LOG_ERROR, "%s", dg_consumer_error(r->src));
        dg_producer_forget_until(r->out, f->round + 1);
        r->batches++;
        r->decisions += f->t.decisions;
        r->dead_letters += f->t.dead_letters;
        r->redeliveries += f->t.duplicates;
        tally_publish(r, &f->t, f->decide_s);
        r->fl_head = (r->fl_head + 1) % MAX_FLIGHTS;
        r->fl_n--;
    }
    return 0;
}

/* The batch in hand was decided and its messages sent: it joins the
 * flights (taking the tally; the flight's old buffers become the next
 * batch's). */
static void take_off(struct run *r, double decide_s)
{
    struct flight *f = &r->fl[(r->fl_head + r->fl_n) % MAX_FLIGHTS];
    struct tally t = f->t;
    f->t = r->t;
    r->t = t;
    f->round = dg_producer_close_round(r->out);
    memcpy(f->first, r->cur.first, r->cur.nparts * sizeof(*f->first));
    memcpy(f->next, r->cur.next, r->cur.nparts * sizeof(*f->next));
    f->nparts = r->cur.nparts;
    f->decide_s = decide_s;
    r->fl_n++;
}

/* Decide the batch in hand and send its messages. Returns 0 when it was
 * decided (its offsets are stored once acknowledged), 1 when it will be
 * read again (revoked, an earlier batch undelivered, shutting down during
 * an outage), -1 on a fatal consumer error. */
/* Decide the batch in hand. While Redis commits it, read and decode the
 * next, and start that one too where the backend can (it builds on this
 * one's changes and is committed only after it): so the engine judges a
 * batch while Redis runs the script of the one before. */
static int decide_now(struct run *r, int speculate, char *err, size_t errsz)
{
    int st = r->cur.started ? 0 : dg_pipeline_start(r->cur.p, err, errsz);
    if (st == 1) /* cannot happen: nothing is ahead of the batch in hand */
        snprintf(err, errsz, "the state backend is busy");
    if (st != 0)
        return -1;
    r->cur.started = 0;
    prefetch(r);
    if (speculate && r->pre.n && !r->pre.started) {
        char e[256];
        r->pre.started = dg_pipeline_start(r->pre.p, e, sizeof e) == 0;
    }
    int rc = dg_pipeline_finish(r->cur.p, err, errsz);
    if (rc != 0 && r->pre.started) {
        dg_pipeline_abandon(r->pre.p); /* built on this one: started again later */
        r->pre.started = 0;
    }
    return rc;
}

static int process_batch(struct run *r, int pushed)
{
    char err[512];
    int backoff = BACKOFF_MIN_MS;
    double outage_start = 0, t0;
    size_t paused = 0;

    index_batch(r);
    if (r->fl_n >= MAX_FLIGHTS || dg_producer_rounds_full(r->out)) {
        if (retire(r, MAX_FLIGHTS - 1)) {
            /* read from positions the rewind moves back over: read again */
            dg_pipeline_discard(r->cur.p); /* when prefetched, it was pushed (maybe started) */
            r->cur.started = 0;
            rewind_add(r, r->cur.first, r->cur.nparts);
            return rewind_now(r) ? -1 : 1;
        }
    }
    tally_reset(r);
    if (!pushed)
        push_all(r->cur.p, r->cur.msgs, r->cur.n);

    for (t0 = dg_now_seconds(); decide_now(r, !outage_start, err, sizeof err) != 0; t0 = dg_now_seconds()) {
        /* nothing was emitted and the batch is kept: no decision, no offset */
        set_state_up(r, 0, err);
        if (r->mx)
            dg_metrics_add(r->mx, r->f.state_errors, NULL, 1);
        if (!outage_start) {
            outage_start = dg_now_seconds();
            paused = dg_consumer_pause(r->src);
            if (r->mx)
                dg_metrics_set(r->mx, r->f.paused, NULL, 1);
            struct dg_log_field f[] = {DG_LF_STR("event", "pause"), DG_LF_NUM("partitions", paused),
                                       DG_LF_STR("error", err)};
            dg_logf(DG_LOG_WARN, f, DG_ARRAY_LEN(f), "redis unavailable: %s; pausing %zu partition%s",
                    err, paused, paused == 1 ? "" : "s");
        }
        r->waiting = 1;
        int ir = dg_consumer_idle(r->src, backoff);
        r->waiting = 0;
        if (ir != 0)
            return -1;
        if (retire(r, RETIRE_DONE) || r->nrewind) {
            /* an earlier batch was not delivered: this one comes after it */
            dg_pipeline_discard(r->cur.p);
            rewind_add(r, r->cur.first, r->cur.nparts);
            r->revoked = 0;
            dg_consumer_resume(r->src);
            if (r->mx)
                dg_metrics_set(r->mx, r->f.paused, NULL, 0);
            return rewind_now(r) ? -1 : 1;
        }
        if (r->revoked || stop_requested) {
            dg_pipeline_discard(r->cur.p);
            drop_prefetched(r); /* read after this one */
            log_event(DG_LOG_INFO, "batch_dropped",
                      "%s while waiting for redis: dropped the undecided batch of %zu event%s "
                      "(no state applied, no offset stored; %s)",
                      r->revoked ? "partitions revoked" : "shutting down", r->cur.n, r->cur.n == 1 ? "" : "s",
                      r->revoked ? "the partitions' owner reads them" : "they are read again on restart");
            if (r->revoked)
                dg_consumer_seek(r->src, r->cur.first, r->cur.nparts); /* the ones still ours */
            r->revoked = 0;
            size_t resumed = dg_consumer_resume(r->src);
            if (r->mx)
                dg_metrics_set(r->mx, r->f.paused, NULL, 0);
            if (!stop_requested)
                log_event(DG_LOG_INFO, "resume", "resumed %zu partition%s", resumed,
                          resumed == 1 ? "" : "s");
            return 1;
        }
        backoff = backoff_next(backoff);
    }
    double decide_s = dg_now_seconds() - t0;
    dg_pipeline_emit(r->cur.p, emit, r); /* emit never refuses: a send that fails fails its round */
    if (outage_start) {
        size_t resumed = dg_consumer_resume(r->src);
        set_state_up(r, 1, NULL);
        if (r->mx)
            dg_metrics_set(r->mx, r->f.paused, NULL, 0);
        struct dg_log_field f[] = {DG_LF_STR("event", "resume"), DG_LF_NUM("partitions", resumed)};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f),
                "redis available again after %.1f s: batch decided, resuming %zu partition%s",
                dg_now_seconds() - outage_start, resumed, resumed == 1 ? "" : "s");
    }

    take_off(r, decide_s);
    if (dg_log_enabled(DG_LOG_DEBUG))
        dg_log(DG_LOG_DEBUG, "batch of %zu: %llu decisions, %llu dead letters, decided in %.2f ms, "
               "%zu in flight", r->cur.n, (unsigned long long)r->fl[(r->fl_head + r->fl_n - 1) % MAX_FLIGHTS].t.decisions,
               (unsigned long long)r->fl[(r->fl_head + r->fl_n - 1) % MAX_FLIGHTS].t.dead_letters,
               decide_s * 1000, r->fl_n);
    if (retire(r, RETIRE_DONE))
        return rewind_now(r) ? -1 : 0;
    return 0;
}

/* Decide the batch in hand, then let its messages go. -1 on a fatal
 * consumer error. */
static int hand_in(struct run *r, int pushed)
{
    int pr = process_batch(r, pushed);
    dg_consumer_release(r->src, r->cur.msgs, r->cur.n);
    r->cur.n = 0;
    return pr < 0 ? -1 : 0;
}

/* One turn of the main loop: the prefetched batch, or what a poll brings.
 * -1 on a fatal consumer error. */
static int step(struct run *r)
{
    if (r->drop_pre)
        drop_prefetched(r);
    if (r->pre.n) { /* read while the last batch committed */
        take_prefetched(r);
        return hand_in(r, 1);
    }
    swap_rules(r);
    tick(r, 0);
    /* with batches in flight, a short wait: their acknowledgements are
     * taken (offsets stored, latency observed) as they come, not when the
     * next message does */
    ssize_t n = dg_consumer_poll(r->src, r->cur.msgs, r->cfg->batch, r->fl_n ? ACK_WAIT_MS : POLL_WAIT_MS,
                                 r->cfg->linger_ms);
    if (n < 0)
        return -1;
    r->cur.n = (size_t)n;
    if (r->nrewind || retire(r, RETIRE_DONE)) {
        /* a delivery failed (seen in the rebalance callback or now): what
         * was just read lies past the rewind, read it again */
        index_batch(r);
        rewind_add(r, r->cur.first, r->cur.nparts);
        dg_consumer_release(r->src, r->cur.msgs, r->cur.n);
        r->cur.n = 0;
        return rewind_now(r);
    }
    return n ? hand_in(r, 0) : 0;
}

/* --config first (the flags override the file), then every other flag. */
static int parse_args(int argc, char **argv, struct dg_config *cfg)
{
    static const struct {
        const char *flag, *key;
    } flags[] = {
        {"--brokers", "brokers"},           {"--redis", "redis"},
        {"--rules", "rules"},               {"--group", "group"},
        {"--input-topics", "input_topics"}, {"--decisions-topic", "decisions_topic"},
        {"--dlq-topic", "dlq_topic"},       {"--state", "state"},
        {"--batch", "batch"},               {"--linger-ms", "linger_ms"},
        {"--max-future", "max_future"},     {"--dedupe-window", "dedupe_window"},
        {"--lateness", "lateness"},         {"--metrics", "metrics"},
        {"--log-format", "log_format"},     {"--log-level", "log_level"},
        {"--sign-key-file", "sign_key_file"}, {"--sign-key-env", "sign_key_env"},
        {"--sign-key-id", "sign_key_id"},
    };
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *v = dg_opt(argc, argv, &i, "--config");
        if (!v)
            continue;
        struct dg_diag diag = {0};
        int rc = dg_config_load(cfg, v, &diag);
        for (size_t k = 0; k < diag.n; k++)
            fprintf(stderr, "%s\n", diag.lines[k]);
        dg_diag_free(&diag);
        if (rc != 0) {
            dg_cmd_error("run", "configuration '%s' has errors; not started", v);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (dg_opt(argc, argv, &i, "--config"))
            continue;
        if (!strcmp(argv[i], "--watch")) { /* a switch: no value */
            v = "true";
            if (dg_config_set(cfg, "watch", v, err, sizeof err) != 0)
                goto bad;
            continue;
        }
        size_t f = 0;
        for (; f < DG_ARRAY_LEN(flags); f++)
            if ((v = dg_opt(argc, argv, &i, flags[f].flag)))
                break;
        if (f == DG_ARRAY_LEN(flags)) {
            dg_cmd_error("run", "unknown option '%s' (see drainguard run --help)", argv[i]);
            return -1;
        }
        if (dg_config_set(cfg, flags[f].key, v, err, sizeof err) != 0)
            goto bad;
    }
    if (dg_config_check(cfg, err, sizeof err) != 0)
        goto bad;
    return 0;
bad:
    dg_cmd_error("run", "%s", err);
    return -1;
}

int dg_cmd_run(int argc, char **argv)
{
    struct dg_config *cfg = dg_config_new();
    struct dg_diag diag = {0};
    struct dg_state *st = NULL;
    struct run r = {0};
    char err[512];
    int rc = 2;
    sigset_t hup;

    /* SIGHUP is taken by the loader thread only: block it here, before any
     * thread (librdkafka's, the HTTP server's) exists, so that every thread
     * inherits the mask and a SIGHUP never kills the process */
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    pthread_mutex_init(&r.ready_lock, NULL);
    pthread_mutex_init(&r.ld.lock, NULL);

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (parse_args(argc, argv, cfg) != 0)
        goto out_cfg;
    dg_log_setup("run", cfg->log_format, cfg->log_level);
    rc = 1;
    r.rs = dg_ruleset_load((const char *const *)cfg->rules, cfg->nrules, &diag);
    log_diag(&diag, "rules");
    if (!r.rs) {
        dg_log(DG_LOG_ERROR, "rule set has %d error%s; not started", diag.errors,
               diag.errors == 1 ? "" : "s");
        goto out_cfg;
    }

    {
        dg_buf b = {0};
        dg_config_summary(cfg, &b);
        for (char *line = b.data, *nl; line && *line; line = nl + 1) {
            nl = strchr(line, '\n');
            log_event(DG_LOG_INFO, "config", "%.*s", (int)(nl - line), line);
        }
        dg_buf_free(&b);
        struct dg_log_field f[] = {DG_LF_STR("event", "rules"), DG_LF_STR("rules_version", r.rs->version),
                                   DG_LF_NUM("rules", r.rs->nrules), DG_LF_NUM("windows", r.rs->nwindows)};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f), "rules: %zu rules, %zu windows, version %s",
                r.rs->nrules, r.rs->nwindows, r.rs->version);
    }

    /* the producer first: it checks the kafka: properties before anything
     * connects to Redis or joins the group */
    r.cfg = cfg;
    r.out = dg_producer_new(cfg, "run", err, sizeof err);
    if (!r.out) {
        dg_log(DG_LOG_ERROR, "%s", err);
        goto out_rules;
    }
    const char *out_topics[] = {cfg->decisions_topic, cfg->dlq_topic};
    dg_producer_prepare(r.out, out_topics, DG_ARRAY_LEN(out_topics), PREPARE_MS);
    if (cfg->state == DG_STATE_MEMORY) {
        st = dg_state_mem_new(cfg->dedupe_ms, cfg->lateness_ms);
    } else {
        struct dg_redis_opts ro;
        dg_config_redis_opts(cfg, &ro);
        err[0] = '\0';
        st = dg_state_redis_new(&ro, err, sizeof err);
        if (!st) {
            dg_log(DG_LOG_ERROR, "redis: %s", err[0] ? err : "cannot connect");
            goto out_producer;
        }
    }
    r.st = st;
    atomic_store(&r.redis_ok, 1);

    r.cur.p = dg_pipeline_new(r.rs, st, cfg->batch, 1);
    r.pre.p = dg_pipeline_new(r.rs, st, cfg->batch, 1);
    dg_pipeline_set_max_future(r.cur.p, cfg->max_future_ms);
    dg_pipeline_set_max_future(r.pre.p, cfg->max_future_ms);
    for (int k = 0; k < 2; k++) { /* signed decisions (docs/signing.md): a pipeline owns its signer */
        dg_signer *sg = dg_signer_open(cfg->signing.key_id, cfg->signing.key_file,
                                       cfg->signing.key_env, err, sizeof err);
        if (!sg && err[0]) {
            dg_log(DG_LOG_ERROR, "%s", err);
            goto out_pipeline;
        }
        if (sg && !k)
            dg_log(DG_LOG_INFO, "signing decisions with key id '%s' (%zu-byte key)",
                   dg_signer_kid(sg), dg_signer_keylen(sg));
        dg_pipeline_set_signer(k ? r.pre.p : r.cur.p, sg);
    }
    /* the state cache grows by many small entries and the batches churn
     * through large buffers: keep freed memory in the heap instead of
     * giving it back and faulting it in again */
    mallopt(M_TOP_PAD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    r.cur.msgs = dg_xcalloc(cfg->batch, sizeof(*r.cur.msgs));
    r.pre.msgs = dg_xcalloc(cfg->batch, sizeof(*r.pre.msgs));
    r.pre.first = dg_xcalloc(cfg->batch, sizeof(*r.pre.first));
    r.pre.next = dg_xcalloc(cfg->batch, sizeof(*r.pre.next));
    r.t.dec_ts = dg_xcalloc(cfg->batch, sizeof(*r.t.dec_ts));
    r.cur.first = dg_xcalloc(cfg->batch, sizeof(*r.cur.first));
    r.cur.next = dg_xcalloc(cfg->batch, sizeof(*r.cur.next));
    for (size_t i = 0; i < MAX_FLIGHTS; i++) {
        r.fl[i].first = dg_xcalloc(cfg->batch, sizeof(*r.fl[i].first));
        r.fl[i].next = dg_xcalloc(cfg->batch, sizeof(*r.fl[i].next));
        r.fl[i].t.dec_ts = dg_xcalloc(cfg->batch, sizeof(*r.fl[i].t.dec_ts));
    }
    tally_size(&r);

    struct dg_consumer_opts co = {0};
    co.log_name = "run";
    co.on_revoke = on_revoke;
    co.ud = &r;
    r.src = dg_consumer_new(cfg, &co, err, sizeof err);
    if (!r.src) {
        dg_log(DG_LOG_ERROR, "%s", err);
        goto out_pipeline;
    }

    if (cfg->metrics) {
        r.mx = dg_metrics_new();
        declare_metrics(&r);
        set_rules_info(&r);
        dg_metrics_set(r.mx, r.f.ready_redis, NULL, 1);
        r.lag = dg_xcalloc(MAX_LAG_PARTITIONS, sizeof(*r.lag));
        r.httpd = dg_metrics_serve(r.mx, cfg->metrics, ready, &r, err, sizeof err);
        if (!r.httpd) {
            dg_log(DG_LOG_ERROR, "%s; not started", err);
            dg_consumer_close(r.src);
            goto out_pipeline;
        }
        struct dg_log_field f[] = {DG_LF_STR("event", "metrics"), DG_LF_NUM("port", dg_metrics_port(r.httpd))};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f), "serving /metrics, /healthz, /readyz on %s (port %d)",
                cfg->metrics, dg_metrics_port(r.httpd));
    }
    if (loader_start(&r) != 0) {
        dg_log(DG_LOG_ERROR, "cannot start the rule loader thread: %s", strerror(errno));
        dg_metrics_stop(r.httpd);
        dg_consumer_close(r.src);
        goto out_pipeline;
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    {
        struct dg_log_field f[] = {DG_LF_STR("event", "start"), DG_LF_STR("group", cfg->group),
                                   DG_LF_STR("rules_version", r.rs->version)};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f), "started; waiting for partitions of group '%s'",
                cfg->group);
    }

    rc = 0;
    while (!stop_requested)
        if (step(&r) != 0) {
            dg_log(DG_LOG_ERROR, "kafka consumer: %s", dg_consumer_error(r.src));
            rc = 1;
            break;
        }

    atomic_store(&r.stopping, 1);
    log_event(DG_LOG_INFO, "shutdown", "shutting down: committing offsets and leaving the group");
    drop_prefetched(&r); /* read, not decided: read again on restart */
    retire(&r, RETIRE_ALL); /* the batches in flight: acknowledged, then stored */
    /* the HTTP thread reads r.src: stop it before the consumer goes */
    dg_metrics_stop(r.httpd);
    r.httpd = NULL;
    loader_stop(&r.ld);
    if (dg_consumer_close(r.src) != 0)
        rc = 1;
    {
        const struct dg_pipeline_stats *s1 = dg_pipeline_stats(r.cur.p), *s2 = dg_pipeline_stats(r.pre.p);
        struct dg_pipeline_stats sum = *s1, *s = &sum;
        sum.inputs += s2->inputs;
        for (int a = 0; a < DG_NACTIONS; a++)
            sum.actions[a] += s2->actions[a];
        struct dg_log_field f[] = {DG_LF_STR("event", "stopped"), DG_LF_NUM("batches", r.batches),
                                   DG_LF_NUM("inputs", s->inputs), DG_LF_NUM("decisions", r.decisions),
                                   DG_LF_NUM("dead_letters", r.dead_letters),
                                   DG_LF_NUM("redelivered", r.redeliveries)};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f),
                "stopped: %llu batches, %llu inputs, %llu decisions (allow %llu, review %llu, hold %llu, "
                "freeze %llu), %llu dead letters, %llu redelivered events",
                r.batches, (unsigned long long)s->inputs, r.decisions,
                (unsigned long long)s->actions[DG_ALLOW], (unsigned long long)s->actions[DG_REVIEW],
                (unsigned long long)s->actions[DG_HOLD], (unsigned long long)s->actions[DG_FREEZE],
                r.dead_letters, r.redeliveries);
    }
    if (cfg->state == DG_STATE_REDIS) {
        struct dg_redis_stats rs;
        dg_state_redis_stats(st, &rs);
        struct dg_log_field f[] = {DG_LF_STR("event", "redis_stats"), DG_LF_NUM("commits", rs.commits),
                                   DG_LF_NUM("reads", rs.reads), DG_LF_NUM("keys_cached", rs.keys_cached),
                                   DG_LF_NUM("keys_read", rs.keys_read), DG_LF_NUM("keys_guessed", rs.keys_guessed),
                                   DG_LF_NUM("conflicts", rs.conflicts),
                                   DG_LF_NUM("decided_found", rs.decided_found),
                                   DG_LF_NUM("cache_keys", rs.cache_keys), DG_LF_NUM("tx_commits", rs.tx_commits)};
        dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f),
                "redis: %llu commits (one round trip each; %llu as a transaction), %llu batches read first, "
                "%llu built on the batch ahead while its commit ran (%llu could not); keys: %llu from the "
                "cache, %llu read, %llu taken to be new; %llu conflicts (%llu events found decided); cache: "
                "%zu keys, %.1f MiB", rs.commits, rs.tx_commits, rs.reads, rs.built_ahead, rs.busy, rs.keys_cached,
                rs.keys_read, rs.keys_guessed, rs.conflicts,
                rs.decided_found, rs.cache_keys, rs.cache_bytes / 1048576.0);
    }
out_pipeline:
    loader_stop(&r.ld);
    free(r.cur.msgs);
    free(r.pre.msgs);
    free(r.pre.first);
    free(r.pre.next);
    dg_pipeline_free(r.pre.p);
    free(r.t.dec_ts);
    free(r.cur.first);
    free(r.cur.next);
    for (size_t i = 0; i < MAX_FLIGHTS; i++) {
        free(r.fl[i].first);
        free(r.fl[i].next);
        free(r.fl[i].t.hits);
        free(r.fl[i].t.dec_ts);
    }
    for (size_t i = 0; i < r.ntopics; i++)
        free(r.topics[i]);
    free(r.topics);
    free(r.rewind);
    free(r.lag);
    free(r.t.hits);
    dg_pipeline_free(r.cur.p);
    st->ops->destroy(st);
    dg_metrics_free(r.mx);
out_producer:
    dg_producer_free(r.out, FLUSH_TIMEOUT_MS);
out_rules:
    dg_ruleset_free(r.rs);
out_cfg:
    dg_diag_free(&diag);
    dg_config_free(cfg);
    pthread_mutex_destroy(&r.ld.lock);
    pthread_mutex_destroy(&r.ready_lock);
    return rc;
}
