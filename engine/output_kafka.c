/*
 * output_kafka.c - Kafka out, the last stage of the pipeline: the only file
 * that produces with librdkafka. One idempotent producer (acks=all) carries
 * decisions and dead letters. Delivery reports are counted per round: `run`
 * sends a batch's messages as one round, closes it and goes on with the
 * next batch; it stores the batch's input offsets only once every message
 * of its round was acknowledged. Several rounds may be in flight.
 *
 * Owns: the rd_kafka_t producer, a copy of its configuration (to rebuild it
 * after a fatal idempotence error, which librdkafka never recovers from on
 * the same handle), and the counters of the rounds in flight (a ring).
 */
#include "output_kafka.h"
#include "log.h"
#include "util.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_SAFETY_MS (15 * 60 * 1000) /* far beyond any message.timeout.ms we set */

/* The messages of one round and their delivery reports so far. */
struct round {
    size_t sent, done, failed;
    char first_error[256];
};

struct dg_producer {
    rd_kafka_t *rk;
    rd_kafka_conf_t *conf;      /* pristine copy, for a rebuild */
    const char *name;
    uint64_t oldest, open;      /* rounds oldest..open are tracked; open takes sends */
    struct round ring[DG_PRODUCER_MAX_ROUNDS];
    unsigned long long acked_total;
    char last_logged[256];
    int debug;                  /* the `debug` property is set */
    struct ptopic *topics;      /* handles of the topics sent to, kept */
    size_t ntopics;
};

/* A topic this producer sends to: its handle is kept (librdkafka looks a
 * topic up by name on every send otherwise), NULL after a rebuild until
 * the next send. */
struct ptopic {
    char *name;
    rd_kafka_topic_t *rkt;
};

static struct round *round_of(struct dg_producer *p, uint64_t id)
{
    if (id < p->oldest || id > p->open)
        return NULL; /* forgotten: its report is ignored */
    return &p->ring[id % DG_PRODUCER_MAX_ROUNDS];
}

/* The kept handle of topic (created on first use); NULL if librdkafka
 * refuses the name. */
static rd_kafka_topic_t *topic_of(struct dg_producer *p, const char *topic)
{
    struct ptopic *t = NULL;
    for (size_t i = 0; i < p->ntopics && !t; i++)
        if (p->topics[i].name == topic || !strcmp(p->topics[i].name, topic))
            t = &p->topics[i];
    if (!t) {
        p->topics = dg_xrealloc(p->topics, (p->ntopics + 1) * sizeof(*p->topics));
        t = &p->topics[p->ntopics++];
        t->name = dg_xstrdup(topic);
        t->rkt = NULL;
    }
    if (!t->rkt)
        t->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    return t->rkt;
}

/* Before the handle they belong to goes. */
static void drop_topics(struct dg_producer *p)
{
    for (size_t i = 0; i < p->ntopics; i++)
        if (p->topics[i].rkt) {
            rd_kafka_topic_destroy(p->topics[i].rkt);
            p->topics[i].rkt = NULL;
        }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct dg_producer *p = opaque;
    struct round *r = round_of(p, (uint64_t)(uintptr_t)m->_private);
    (void)rk;
    if (!m->err)
        p->acked_total++;
    if (!r)
        return;
    r->done++;
    if (m->err && !r->failed++)
        snprintf(r->first_error, sizeof r->first_error, "%s: %s", rd_kafka_topic_name(m->rkt),
                 rd_kafka_err2str(m->err));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct dg_producer *p = opaque;
    (void)rk;
    (void)err;
    if (!strncmp(p->last_logged, reason, sizeof p->last_logged - 1))
        return; /* a broker that stays down repeats itself */
    snprintf(p->last_logged, sizeof p->last_logged, "%s", reason);
    dg_log(DG_LOG_ERROR, "kafka producer: %s", reason);
}

static void logger(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const struct dg_producer *p = rd_kafka_opaque(rk);
    if (level <= 4 || (p && p->debug))
        dg_log(level <= 3 ? DG_LOG_ERROR : level == 4 ? DG_LOG_WARN : DG_LOG_INFO,
               "kafka producer %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *file, const struct dg_kv *kv, char *err,
                    size_t errsz)
{
    char e[512];
    if (rd_kafka_conf_set(conf, kv->key, kv->val, e, sizeof e) == RD_KAFKA_CONF_OK)
        return 0;
    if (file && kv->line)
        snprintf(err, errsz, "%s:%d:%d: kafka property '%s': %s", file, kv->line, kv->col, kv->key, e);
    else
        snprintf(err, errsz, "kafka property '%s': %s", kv->key, e);
    return -1;
}

static int start(struct dg_producer *p, char *err, size_t errsz)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errsz, "cannot create the kafka producer: %s", e);
        return -1;
    }
    return 0;
}

dg_producer *dg_producer_new(const struct dg_config *cfg, const char *name, char *err,
                             size_t errsz)
{
    struct dg_producer *p = dg_xcalloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    p->name = name;
    dg_log_default_name(name);
    /* defaults the user may change, then the user's, then what the
     * guarantees need (config.c refuses user values for those) */
    struct dg_kv defaults[] = {
        {(char *)"client.id", (char *)"drainguard", 0, 0},
        /* a decision that cannot be delivered in 30 s is reported failed,
         * and `run` retries its batch instead of waiting five minutes */
        {(char *)"message.timeout.ms", (char *)"30000", 0, 0},
        {(char *)"linger.ms", (char *)"0", 0, 0},
        {(char *)"log.connection.close", (char *)"false", 0, 0},
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(defaults); i++)
        if (conf_set(conf, NULL, &defaults[i], err, errsz))
            goto out_conf;
    for (size_t i = 0; i < cfg->kafka.n; i++)
        p->debug |= !strcmp(cfg->kafka.v[i].key, "debug");
    for (size_t i = 0; i < cfg->kafka_producer.n; i++)
        p->debug |= !strcmp(cfg->kafka_producer.v[i].key, "debug");
    for (size_t i = 0; i < cfg->kafka.n; i++)
        if (conf_set(conf, cfg->path, &cfg->kafka.v[i], err, errsz))
            goto out_conf;
    for (size_t i = 0; i < cfg->kafka_producer.n; i++)
        if (conf_set(conf, cfg->path, &cfg->kafka_producer.v[i], err, errsz))
            goto out_conf;
    struct dg_kv forced[] = {
        {(char *)"bootstrap.servers", cfg->brokers, 0, 0},
        {(char *)"enable.idempotence", (char *)"true", 0, 0},
        {(char *)"acks", (char *)"all", 0, 0},
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(forced); i++)
        if (conf_set(conf, NULL, &forced[i], err, errsz))
            goto out_conf;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, logger);
    p->conf = conf;
    if (start(p, err, errsz) != 0)
        goto out_conf;
    return p;

out_conf:
    rd_kafka_conf_destroy(conf);
    free(p);
    return NULL;
}

static void fail_now(struct dg_producer *p, const char *topic, const char *why)
{
    struct round *r = round_of(p, p->open);
    r->sent++;
    r->done++;
    if (!r->failed++)
        snprintf(r->first_error, sizeof r->first_error, "%s: %s", topic, why);
}

int dg_producer_send(dg_producer *p, const char *topic, const void *key, size_t key_len,
                     const void *value, size_t len, const struct dg_header *h, size_t nh)
{
    for (;;) {
        rd_kafka_headers_t *hdrs = NULL;
        if (nh) {
            hdrs = rd_kafka_headers_new(nh);
            for (size_t i = 0; i < nh; i++)
                rd_kafka_header_add(hdrs, h[i].name, -1, h[i].value, (ssize_t)h[i].len);
        }
        rd_kafka_topic_t *rkt = topic_of(p, topic);
        if (!rkt) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            fail_now(p, topic, rd_kafka_err2str(rd_kafka_last_error()));
            return -1;
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key_len ? key : NULL, key_len), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)p->open), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            round_of(p, p->open)->sent++;
            return 0;
        }
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* not consumed on failure */
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fail_now(p, topic, rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(p->rk, 50); /* the local queue is full: let deliveries drain it */
    }
}

size_t dg_producer_prepare(dg_producer *p, const char *const *topics, size_t n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = topic_of(p, topics[i]);
        int64_t left = deadline - now_ms();
        rd_kafka_resp_err_t e = !rkt    ? rd_kafka_last_error()
                                : left <= 0 ? RD_KAFKA_RESP_ERR__TIMED_OUT
                                            : rd_kafka_metadata(p->rk, 0, rkt, &md, (int)left);
        if (!e && md && (md->topic_cnt != 1 || md->topics[0].err))
            e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (e) {
            missing++;
            dg_log(DG_LOG_WARN, "kafka producer: no metadata for topic '%s' yet (%s); its first "
                   "messages wait for it", topics[i], rd_kafka_err2str(e));
        }
    }
    return missing;
}

/* After a fatal idempotence error the handle is useless: purge it and start
 * a new one (what it had queued is reported failed first). */
static void rebuild_if_fatal(struct dg_producer *p)
{
    char fatal[256], e[512];
    if (!rd_kafka_fatal_error(p->rk, fatal, sizeof fatal))
        return;
    dg_log(DG_LOG_ERROR, "kafka producer: fatal error (%s); starting a new producer", fatal);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0); /* the purged messages' reports: failed */
    drop_topics(p);
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    if (start(p, e, sizeof e) != 0) {
        dg_log(DG_LOG_ERROR, "%s", e);
        exit(1); /* nothing sensible to do without a producer */
    }
}

uint64_t dg_producer_close_round(dg_producer *p)
{
    uint64_t id = p->open++;
    if (p->open - p->oldest >= DG_PRODUCER_MAX_ROUNDS)
        p->oldest = p->open - DG_PRODUCER_MAX_ROUNDS + 1; /* the caller did not wait: forgotten */
    memset(&p->ring[p->open % DG_PRODUCER_MAX_ROUNDS], 0, sizeof(struct round));
    return id;
}

int dg_producer_rounds_full(const dg_producer *p)
{
    return p->open - p->oldest + 1 >= DG_PRODUCER_MAX_ROUNDS;
}

void dg_producer_serve(dg_producer *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
    rebuild_if_fatal(p);
}

int dg_producer_round_done(dg_producer *p, uint64_t id, size_t *failed, char *err, size_t errsz)
{
    struct round *r = round_of(p, id);
    if (!r || id == p->open) {
        *failed = 0;
        return 0;
    }
    if (r->done < r->sent)
        return 0;
    *failed = r->failed;
    if (r->failed)
        snprintf(err, errsz, "%s", r->first_error);
    else
        p->last_logged[0] = '\0'; /* a later error is news again */
    return 1;
}

void dg_producer_forget_until(dg_producer *p, uint64_t id)
{
    if (id > p->open)
        id = p->open;
    if (id > p->oldest)
        p->oldest = id;
}

size_t dg_producer_wait_round(dg_producer *p, uint64_t id, char *err, size_t errsz)
{
    int64_t deadline = now_ms() + WAIT_SAFETY_MS;
    size_t failed = 0;
    struct round *r = round_of(p, id);

    if (!r)
        return 0;
    while (!dg_producer_round_done(p, id, &failed, err, errsz) && now_ms() < deadline)
        dg_producer_serve(p, 100);
    if (r->done < r->sent) {
        failed = r->failed + (r->sent - r->done);
        snprintf(err, errsz, "%s", r->first_error[0] ? r->first_error : "no delivery report");
    }
    return failed;
}

size_t dg_producer_wait(dg_producer *p, char *err, size_t errsz)
{
    uint64_t id = dg_producer_close_round(p);
    size_t failed = dg_producer_wait_round(p, id, err, errsz);
    dg_producer_forget_until(p, id + 1);
    if (!failed)
        p->last_logged[0] = '\0';
    return failed;
}

unsigned long long dg_producer_acked(const dg_producer *p)
{
    return p->acked_total;
}

void dg_producer_free(dg_producer *p, int timeout_ms)
{
    if (!p)
        return;
    if (p->rk) {
        rd_kafka_flush(p->rk, timeout_ms);
        drop_topics(p);
        rd_kafka_destroy(p->rk);
    }
    for (size_t i = 0; i < p->ntopics; i++)
        free(p->topics[i].name);
    free(p->topics);
    rd_kafka_conf_destroy(p->conf);
    free(p);
}
