/*
 * cmd_run.c - `drainguard run`: the streaming engine. Kafka in
 * (source_kafka.c) -> the same batch pipeline as replay (pipeline.c, state
 * in Redis or memory) -> decisions and dead letters out (output_kafka.c).
 *
 * One batch at a time: poll -> push -> flush (the state backend applies and
 * commits) -> emit produces -> wait for every delivery report -> store the
 * batch's offsets. An offset is stored only when every decision and dead
 * letter of its batch was acknowledged, so a crash at any point means a
 * redelivery, never a loss; the backend makes a redelivery change nothing
 * and return the stored decision, so it is never a double count either.
 *
 * Failure handling lives here: the state backend failing (pause, back off,
 * keep serving the group, retry the same batch), a delivery failing (seek
 * back, back off, redo the batch), partitions revoked while a batch waits
 * (discard it), SIGTERM/SIGINT (finish the batch in hand, commit, exit 0).
 */
#include "cmd.h"
#include "config.h"
#include "detect.h"
#include "output_kafka.h"
#include "pipeline.h"
#include "rules.h"
#include "source_kafka.h"
#include "state.h"
#include "util.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char dg_usage_run[] =
    "usage: drainguard run [--config FILE] [--brokers HOST:PORT[,...]] [--rules FILE|DIR ...]\n"
    "                      [--redis HOST:PORT | --redis unix:PATH] [--state redis|memory]\n"
    "                      [--group ID] [--input-topics T[,T...]] [--decisions-topic T]\n"
    "                      [--dlq-topic T] [--batch N] [--linger-ms N]\n"
    "                      [--max-future DUR] [--dedupe-window DUR] [--lateness DUR]\n"
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
    "  --linger-ms N          longest wait to fill a batch (default 5)\n"
    "  --max-future DUR       events stamped further ahead than this are invalid (10m)\n"
    "  --dedupe-window DUR    how long an event_id is remembered (default 24h)\n"
    "  --lateness DUR         how late an event may be and still see state (default 1h)\n"
    "\n"
    "When Redis is unreachable the engine pauses its partitions, decides\n"
    "nothing, retries with backoff (100 ms up to 5 s) and resumes where it\n"
    "stopped. SIGTERM or SIGINT: the batch in hand is finished, offsets are\n"
    "committed, exit status 0.\n";

#define POLL_WAIT_MS 100        /* how often the loop looks at the stop flag */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define FLUSH_TIMEOUT_MS 10000  /* producer flush at exit */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct run {
    struct dg_config *cfg;
    dg_pipeline *p;
    dg_consumer *src;
    dg_producer *out;
    struct dg_msg *msgs;        /* the batch in hand */
    size_t n;
    struct dg_tp *first, *next; /* per partition of the batch: first offset, last + 1 */
    size_t nparts;
    int waiting;                /* the batch waits for the state backend */
    int revoked;                /* ...and a partition of it was revoked */
    int deliver_backoff;
    unsigned long long batches, decisions, dead_letters, redeliveries;
};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;
    fputs("drainguard run: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int emit(void *ud, const struct dg_output *o)
{
    struct run *r = ud;
    const struct dg_msg *m = &r->msgs[(uintptr_t)o->tag];

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
        r->dead_letters++;
    }
    if (o->decision) {
        dg_producer_send(r->out, r->cfg->decisions_topic, o->key, o->key_len, o->decision,
                         o->decision_len, NULL, 0);
        r->decisions++;
    }
    if (o->duplicate)
        r->redeliveries++;
    return 0; /* a message that could not be queued fails the round */
}

/* Revocation while the batch waits for the state backend: nothing of it
 * was applied, so it is dropped and the new owner reads it. */
static void on_revoke(void *ud, const struct dg_tp *tps, size_t n)
{
    struct run *r = ud;
    if (!r->waiting)
        return;
    for (size_t i = 0; i < r->nparts; i++)
        for (size_t j = 0; j < n; j++)
            if (r->first[i].partition == tps[j].partition && !strcmp(r->first[i].topic, tps[j].topic))
                r->revoked = 1;
}

/* The partitions of the batch, with their first offset and last + 1. A
 * batch holds few partitions: the linear search is fine. */
static void index_batch(struct run *r)
{
    r->nparts = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct dg_msg *m = &r->msgs[i];
        size_t k = 0;
        while (k < r->nparts &&
               (r->first[k].partition != m->partition || strcmp(r->first[k].topic, m->topic)))
            k++;
        if (k == r->nparts) {
            r->first[k] = (struct dg_tp){m->topic, m->partition, m->offset};
            r->next[k] = (struct dg_tp){m->topic, m->partition, m->offset + 1};
            r->nparts++;
            continue;
        }
        if (m->offset < r->first[k].offset)
            r->first[k].offset = m->offset;
        if (m->offset + 1 > r->next[k].offset)
            r->next[k].offset = m->offset + 1;
    }
}

static int backoff_next(int ms)
{
    return ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

/* Decide the batch in hand and deliver it. Returns 0 when its offsets were
 * stored, 1 when it will be read again (revoked, undelivered, shutting
 * down during an outage), -1 on a fatal consumer error. */
static int process_batch(struct run *r)
{
    char err[512];
    int backoff = BACKOFF_MIN_MS;
    double outage_start = 0;
    size_t paused = 0;

    index_batch(r);
    for (size_t i = 0; i < r->n; i++)
        dg_pipeline_push(r->p, r->msgs[i].value ? r->msgs[i].value : "", r->msgs[i].len,
                         (void *)(uintptr_t)i);

    while (dg_pipeline_flush(r->p, emit, r, err, sizeof err) != 0) {
        /* nothing was emitted and the batch is kept: no decision, no offset */
        if (!outage_start) {
            outage_start = dg_now_seconds();
            paused = dg_consumer_pause(r->src);
            fprintf(stderr, "drainguard run: redis unavailable: %s; pausing %zu partition%s\n", err,
                    paused, paused == 1 ? "" : "s");
        }
        r->waiting = 1;
        int ir = dg_consumer_idle(r->src, backoff);
        r->waiting = 0;
        if (ir != 0)
            return -1;
        if (r->revoked || stop_requested) {
            dg_pipeline_discard(r->p);
            logf_("%s while waiting for redis: dropped the undecided batch of %zu event%s "
                  "(no state applied, no offset stored; %s)",
                  r->revoked ? "partitions revoked" : "shutting down", r->n, r->n == 1 ? "" : "s",
                  r->revoked ? "the partitions' owner reads them" : "they are read again on restart");
            if (r->revoked)
                dg_consumer_seek(r->src, r->first, r->nparts); /* the ones still ours */
            r->revoked = 0;
            size_t resumed = dg_consumer_resume(r->src);
            if (!stop_requested)
                logf_("resumed %zu partition%s", resumed, resumed == 1 ? "" : "s");
            return 1;
        }
        backoff = backoff_next(backoff);
    }
    if (outage_start) {
        size_t resumed = dg_consumer_resume(r->src);
        logf_("redis available again after %.1f s: batch decided, resuming %zu partition%s",
              dg_now_seconds() - outage_start, resumed, resumed == 1 ? "" : "s");
    }

    size_t failed = dg_producer_wait(r->out, err, sizeof err);
    if (failed) {
        /* its state is committed, so a second pass gets the stored
         * decisions byte for byte: republishing is safe */
        r->deliver_backoff = r->deliver_backoff ? backoff_next(r->deliver_backoff) : BACKOFF_MIN_MS;
        fprintf(stderr, "drainguard run: %zu message%s of a batch not delivered (%s); "
                        "its offsets are not stored, reading it again in %d ms\n",
                failed, failed == 1 ? "" : "s", err, r->deliver_backoff);
        dg_consumer_pause(r->src);
        if (dg_consumer_seek(r->src, r->first, r->nparts) != 0)
            fprintf(stderr, "drainguard run: %s\n", dg_consumer_error(r->src));
        int ir = dg_consumer_idle(r->src, r->deliver_backoff);
        dg_consumer_resume(r->src);
        return ir ? -1 : 1;
    }
    if (r->deliver_backoff) {
        logf_("decisions delivered again");
        r->deliver_backoff = 0;
    }
    if (dg_consumer_store(r->src, r->next, r->nparts) != 0)
        fprintf(stderr, "drainguard run: %s\n", dg_consumer_error(r->src));
    r->batches++;
    return 0;
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
        {"--lateness", "lateness"},
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
        size_t f = 0;
        for (; f < DG_ARRAY_LEN(flags); f++)
            if ((v = dg_opt(argc, argv, &i, flags[f].flag)))
                break;
        if (f == DG_ARRAY_LEN(flags)) {
            dg_cmd_error("run", "unknown option '%s' (see drainguard run --help)", argv[i]);
            return -1;
        }
        if (dg_config_set(cfg, flags[f].key, v, err, sizeof err) != 0) {
            dg_cmd_error("run", "%s", err);
            return -1;
        }
    }
    if (dg_config_check(cfg, err, sizeof err) != 0) {
        dg_cmd_error("run", "%s", err);
        return -1;
    }
    return 0;
}

int dg_cmd_run(int argc, char **argv)
{
    struct dg_config *cfg = dg_config_new();
    struct dg_diag diag = {0};
    struct dg_ruleset *rs = NULL;
    struct dg_state *st = NULL;
    struct run r = {0};
    char err[512];
    int rc = 2;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (parse_args(argc, argv, cfg) != 0)
        goto out_cfg;
    rc = 1;
    rs = dg_ruleset_load((const char *const *)cfg->rules, cfg->nrules, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    if (!rs) {
        dg_cmd_error("run", "rule set has %d error%s; not started", diag.errors,
                     diag.errors == 1 ? "" : "s");
        goto out_cfg;
    }

    {
        dg_buf b = {0};
        dg_config_summary(cfg, &b);
        for (char *line = b.data, *nl; line && *line; line = nl + 1) {
            nl = strchr(line, '\n');
            logf_("%.*s", (int)(nl - line), line);
        }
        dg_buf_free(&b);
        logf_("rules: %zu rules, %zu windows, version %s", rs->nrules, rs->nwindows, rs->version);
    }

    /* the producer first: it checks the kafka: properties before anything
     * connects to Redis or joins the group */
    r.cfg = cfg;
    r.out = dg_producer_new(cfg, "run", err, sizeof err);
    if (!r.out) {
        dg_cmd_error("run", "%s", err);
        goto out_rules;
    }
    if (cfg->state == DG_STATE_MEMORY) {
        st = dg_state_mem_new(cfg->dedupe_ms, cfg->lateness_ms);
    } else {
        struct dg_redis_opts ro;
        dg_config_redis_opts(cfg, &ro);
        err[0] = '\0';
        st = dg_state_redis_new(&ro, err, sizeof err);
        if (!st) {
            dg_cmd_error("run", "redis: %s", err[0] ? err : "cannot connect");
            goto out_producer;
        }
    }

    r.p = dg_pipeline_new(rs, st, cfg->batch, 1);
    dg_pipeline_set_max_future(r.p, cfg->max_future_ms);
    r.msgs = dg_xcalloc(cfg->batch, sizeof(*r.msgs));
    r.first = dg_xcalloc(cfg->batch, sizeof(*r.first));
    r.next = dg_xcalloc(cfg->batch, sizeof(*r.next));

    struct dg_consumer_opts co = {0};
    co.log_name = "run";
    co.on_revoke = on_revoke;
    co.ud = &r;
    r.src = dg_consumer_new(cfg, &co, err, sizeof err);
    if (!r.src) {
        dg_cmd_error("run", "%s", err);
        goto out_pipeline;
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    logf_("started; waiting for partitions of group '%s'", cfg->group);

    rc = 0;
    while (!stop_requested) {
        ssize_t n = dg_consumer_poll(r.src, r.msgs, cfg->batch, POLL_WAIT_MS, cfg->linger_ms);
        if (n < 0) {
            fprintf(stderr, "drainguard run: kafka consumer: %s\n", dg_consumer_error(r.src));
            rc = 1;
            break;
        }
        if (!n)
            continue;
        r.n = (size_t)n;
        int pr = process_batch(&r);
        dg_consumer_release(r.src, r.msgs, r.n);
        r.n = 0;
        if (pr < 0) {
            fprintf(stderr, "drainguard run: kafka consumer: %s\n", dg_consumer_error(r.src));
            rc = 1;
            break;
        }
    }

    logf_("shutting down: committing offsets and leaving the group");
    if (dg_consumer_close(r.src) != 0)
        rc = 1;
    {
        const struct dg_pipeline_stats *s = dg_pipeline_stats(r.p);
        logf_("stopped: %llu batches, %llu inputs, %llu decisions (allow %llu, review %llu, hold %llu, "
              "freeze %llu), %llu dead letters, %llu redelivered events",
              r.batches, (unsigned long long)s->inputs, r.decisions,
              (unsigned long long)s->actions[DG_ALLOW], (unsigned long long)s->actions[DG_REVIEW],
              (unsigned long long)s->actions[DG_HOLD], (unsigned long long)s->actions[DG_FREEZE],
              r.dead_letters, r.redeliveries);
    }
out_pipeline:
    free(r.msgs);
    free(r.first);
    free(r.next);
    dg_pipeline_free(r.p);
    st->ops->destroy(st);
out_producer:
    dg_producer_free(r.out, FLUSH_TIMEOUT_MS);
out_rules:
    dg_ruleset_free(rs);
out_cfg:
    dg_diag_free(&diag);
    dg_config_free(cfg);
    return rc;
}
