/*
 * source_kafka.c - Kafka in, the first stage of the pipeline: the only file
 * that consumes with librdkafka. A high-level consumer in a consumer group
 * with enable.auto.offset.store=false: an offset becomes committable only
 * when `run` stores it, after the decisions of its batch were acknowledged.
 * Auto-commit stays on for the stored offsets, and a synchronous commit runs
 * on revocation and on close.
 *
 * Owns: the rd_kafka_t consumer, our copy of the assignment, the set of
 * partitions we paused (librdkafka may restart a partition from an old
 * offset when asked to resume one that was not paused, so we resume exactly
 * what we paused), and a stash of messages that arrived while the caller
 * was only serving the group.
 */
#include "source_kafka.h"
#include "log.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEEK_TIMEOUT_MS 5000
#define METADATA_TIMEOUT_MS 10000

struct dg_consumer {
    rd_kafka_t *rk;
    int tool;
    const char *log_name;
    dg_revoke_fn on_revoke;
    void *ud;
    rd_kafka_topic_partition_list_t *assigned;
    rd_kafka_topic_partition_list_t *paused_set;
    int paused;
    /* the batch being collected by dg_consumer_poll(), so a revocation in
     * the middle of it can drop the revoked partitions' messages */
    struct dg_msg *collect;
    size_t ncollect;
    rd_kafka_message_t **stash;
    size_t nstash, capstash;
    char last_error[256];  /* the last error logged: repeats are not logged */
    int debug;             /* the `debug` property is set: show librdkafka's debug log */
    char errstr[512];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "withdrawal-events[0,1,2] other[0]" for the log; lists are short (one
 * entry per partition of this instance). */
static void describe(const rd_kafka_topic_partition_list_t *l, char *out, size_t sz)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < l->cnt && o + 32 < sz; i++) {
        const rd_kafka_topic_partition_t *p = &l->elems[i];
        int same = i > 0 && !strcmp(l->elems[i - 1].topic, p->topic);
        int n;
        if (same)
            n = snprintf(out + o, sz - o, ",%d", (int)p->partition);
        else
            n = snprintf(out + o, sz - o, "%s%s[%d", i ? "] " : "", p->topic, (int)p->partition);
        if (n < 0 || (size_t)n >= sz - o)
            break;
        o += (size_t)n;
    }
    if (l->cnt && o + 2 < sz) {
        out[o++] = ']';
        out[o] = '\0';
    }
}

static int in_list(const rd_kafka_topic_partition_list_t *l, const char *topic, int32_t part)
{
    return l && rd_kafka_topic_partition_list_find(l, topic, part) != NULL;
}

/* l minus every partition in minus */
static void list_remove(rd_kafka_topic_partition_list_t *l,
                        const rd_kafka_topic_partition_list_t *minus)
{
    for (int i = 0; l && i < minus->cnt; i++)
        rd_kafka_topic_partition_list_del(l, minus->elems[i].topic, minus->elems[i].partition);
}

/* A group change of `run` (assigned, revoked, lost): a line at info, with
 * the event, how many partitions and which as fields. */
static void log_change(struct dg_consumer *c, const char *event, int n, const char *desc,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void log_change(struct dg_consumer *c, const char *event, int n, const char *desc,
                       const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (!c->log_name || c->tool)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct dg_log_field f[] = {DG_LF_STR("event", event), DG_LF_NUM("partitions", n),
                               DG_LF_STR("detail", desc)};
    dg_logf(DG_LOG_INFO, f, DG_ARRAY_LEN(f), "%s", msg);
}

static void log_error(struct dg_consumer *c, const char *what)
{
    if (!strncmp(c->last_error, what, sizeof c->last_error - 1))
        return; /* a broker that stays down repeats itself: once is enough */
    snprintf(c->last_error, sizeof c->last_error, "%.255s", what);
    dg_log(DG_LOG_ERROR, "kafka consumer: %s", what);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)err;
    log_error(opaque, reason);
}

static void logger(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const struct dg_consumer *c = rd_kafka_opaque(rk);
    /* warnings and worse; the rest only when the user asked for `debug`
     * (then at info, so that they show at the default level) */
    if (level <= 4 || (c && c->debug))
        dg_log(level <= 3 ? DG_LOG_ERROR : level == 4 ? DG_LOG_WARN : DG_LOG_INFO,
               "kafka consumer %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

/* Drop the messages of revoked partitions from the stash and from the
 * batch being collected. */
static void drop_revoked(struct dg_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    size_t k = 0;
    for (size_t i = 0; i < c->nstash; i++) {
        rd_kafka_message_t *m = c->stash[i];
        if (in_list(parts, rd_kafka_topic_name(m->rkt), m->partition))
            rd_kafka_message_destroy(m);
        else
            c->stash[k++] = m;
    }
    c->nstash = k;
    k = 0;
    for (size_t i = 0; c->collect && i < c->ncollect; i++) {
        struct dg_msg *m = &c->collect[i];
        if (in_list(parts, m->topic, m->partition))
            rd_kafka_message_destroy(m->priv);
        else
            c->collect[k++] = *m;
    }
    c->ncollect = k;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct dg_consumer *c = opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    char desc[512];
    rd_kafka_error_t *e = NULL;

    describe(parts, desc, sizeof desc);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        if (e) {
            log_error(c, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return;
        }
        if (!coop && c->assigned) {
            rd_kafka_topic_partition_list_destroy(c->assigned);
            c->assigned = NULL;
        }
        if (!c->assigned)
            c->assigned = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            if (!in_list(c->assigned, parts->elems[i].topic, parts->elems[i].partition))
                rd_kafka_topic_partition_list_add(c->assigned, parts->elems[i].topic,
                                                  parts->elems[i].partition);
        if (c->paused && parts->cnt) {
            /* waiting for the state backend: take no new work */
            rd_kafka_topic_partition_list_t *p = rd_kafka_topic_partition_list_copy(parts);
            rd_kafka_pause_partitions(rk, p);
            for (int i = 0; i < p->cnt; i++)
                if (!p->elems[i].err && !in_list(c->paused_set, p->elems[i].topic, p->elems[i].partition))
                    rd_kafka_topic_partition_list_add(c->paused_set, p->elems[i].topic,
                                                      p->elems[i].partition);
            rd_kafka_topic_partition_list_destroy(p);
        }
        log_change(c, "assigned", parts->cnt, desc, "assigned %d partition%s%s%s%s", parts->cnt, parts->cnt == 1 ? "" : "s",
                 parts->cnt ? ": " : "", desc, c->paused && parts->cnt ? " (paused)" : "");
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int lost = rd_kafka_assignment_lost(rk);
        drop_revoked(c, parts);
        if (c->on_revoke && parts->cnt) {
            struct dg_tp *tps = calloc((size_t)parts->cnt, sizeof(*tps));
            if (tps) {
                for (int i = 0; i < parts->cnt; i++) {
                    tps[i].topic = parts->elems[i].topic;
                    tps[i].partition = parts->elems[i].partition;
                    tps[i].offset = parts->elems[i].offset;
                }
                c->on_revoke(c->ud, tps, (size_t)parts->cnt);
                free(tps);
            }
        }
        if (!lost && !c->tool) {
            /* hand the new owner every acknowledged offset: NULL commits the
             * stored offsets of the assignment, which still holds parts */
            rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
            if (ce == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || ce == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
                dg_log(DG_LOG_WARN, "kafka consumer: commit on revocation refused (%s): the next "
                                    "owner reads the uncommitted events again and gets their stored "
                                    "decisions", rd_kafka_err2str(ce));
            else if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
                log_error(c, rd_kafka_err2str(ce));
        }
        if (coop) {
            e = rd_kafka_incremental_unassign(rk, parts);
            if (e) {
                log_error(c, rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
            list_remove(c->assigned, parts);
        } else {
            rd_kafka_assign(rk, NULL);
            if (c->assigned)
                rd_kafka_topic_partition_list_destroy(c->assigned);
            c->assigned = NULL;
        }
        list_remove(c->paused_set, parts);
        log_change(c, lost ? "lost" : "revoked", parts->cnt, desc, "%s %d partition%s%s%s",
                   lost ? "lost" : "revoked", parts->cnt,
                 parts->cnt == 1 ? "" : "s", parts->cnt ? ": " : "", desc);
        return;
    }
    log_error(c, rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
    if (c->assigned)
        rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = NULL;
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

static int assign_all_from_start(struct dg_consumer *c, const char *const *topics, size_t n,
                                 char *err, size_t errsz)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    int rc = -1;

    for (size_t t = 0; t < n; t++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topics[t], NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, rkt, &md, METADATA_TIMEOUT_MS);
        rd_kafka_topic_destroy(rkt);
        if (e) {
            snprintf(err, errsz, "cannot read the partitions of topic '%s': %s", topics[t],
                     rd_kafka_err2str(e));
            goto out_list;
        }
        if (md->topic_cnt != 1 || md->topics[0].err || !md->topics[0].partition_cnt) {
            snprintf(err, errsz, "topic '%s': %s", topics[t],
                     md->topic_cnt == 1 && md->topics[0].err ? rd_kafka_err2str(md->topics[0].err)
                                                             : "no partitions");
            rd_kafka_metadata_destroy(md);
            goto out_list;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(l, topics[t], md->topics[0].partitions[p].id)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_metadata_destroy(md);
    }
    if (rd_kafka_assign(c->rk, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errsz, "cannot assign the partitions");
        goto out_list;
    }
    c->assigned = rd_kafka_topic_partition_list_copy(l);
    rc = 0;
out_list:
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

dg_consumer *dg_consumer_new(const struct dg_config *cfg, const struct dg_consumer_opts *o,
                             char *err, size_t errsz)
{
    struct dg_consumer *c = dg_xcalloc(1, sizeof(*c));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *const *topics = o->topics ? o->topics : (const char *const *)cfg->input_topics;
    size_t ntopics = o->topics ? o->ntopics : cfg->ninput_topics;
    char e[512];

    c->tool = o->tool;
    c->log_name = o->log_name;
    c->on_revoke = o->on_revoke;
    c->ud = o->ud;
    c->paused_set = rd_kafka_topic_partition_list_new(8);
    if (o->log_name)
        dg_log_default_name(o->log_name);

    /* defaults first, then the user's properties, then what correctness
     * needs (config.c refuses user values for those) */
    struct dg_kv defaults[] = {
        {(char *)"client.id", (char *)"drainguard", 0, 0},
        {(char *)"enable.auto.commit", (char *)(o->tool ? "false" : "true"), 0, 0},
        {(char *)"log.connection.close", (char *)"false", 0, 0},
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(defaults); i++)
        if (conf_set(conf, NULL, &defaults[i], err, errsz))
            goto out_conf;
    for (size_t i = 0; i < cfg->kafka.n; i++)
        c->debug |= !strcmp(cfg->kafka.v[i].key, "debug");
    for (size_t i = 0; i < cfg->kafka_consumer.n; i++)
        c->debug |= !strcmp(cfg->kafka_consumer.v[i].key, "debug");
    for (size_t i = 0; i < cfg->kafka.n; i++)
        if (conf_set(conf, cfg->path, &cfg->kafka.v[i], err, errsz))
            goto out_conf;
    for (size_t i = 0; i < cfg->kafka_consumer.n; i++)
        if (conf_set(conf, cfg->path, &cfg->kafka_consumer.v[i], err, errsz))
            goto out_conf;
    struct dg_kv forced[] = {
        {(char *)"bootstrap.servers", cfg->brokers, 0, 0},
        {(char *)"group.id", (char *)(o->group ? o->group : cfg->group), 0, 0},
        {(char *)"enable.auto.offset.store", (char *)"false", 0, 0},
        {(char *)"auto.offset.reset", (char *)"earliest", 0, 0},
        {(char *)"enable.partition.eof", (char *)"false", 0, 0},
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(forced); i++)
        if (conf_set(conf, NULL, &forced[i], err, errsz))
            goto out_conf;
    if (o->tool && cfg->kafka.n == 0)
        rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, logger);
    if (!o->tool)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);

    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!c->rk) {
        snprintf(err, errsz, "cannot create the kafka consumer: %s", e);
        goto out_conf;
    }
    conf = NULL; /* owned by c->rk now */
    rd_kafka_poll_set_consumer(c->rk);

    if (o->tool) {
        if (assign_all_from_start(c, topics, ntopics, err, errsz))
            goto out_rk;
    } else {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new((int)ntopics);
        for (size_t i = 0; i < ntopics; i++)
            rd_kafka_topic_partition_list_add(sub, topics[i], RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t se = rd_kafka_subscribe(c->rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (se) {
            snprintf(err, errsz, "cannot subscribe to the input topics: %s", rd_kafka_err2str(se));
            goto out_rk;
        }
    }
    return c;

out_rk:
    rd_kafka_destroy(c->rk);
out_conf:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (c->assigned)
        rd_kafka_topic_partition_list_destroy(c->assigned);
    rd_kafka_topic_partition_list_destroy(c->paused_set);
    free(c);
    return NULL;
}

/* An error event from the consumer: -1 when it is fatal. */
static int message_error(struct dg_consumer *c, rd_kafka_message_t *m)
{
    char buf[400];
    if (rd_kafka_fatal_error(c->rk, buf, sizeof buf)) {
        snprintf(c->errstr, sizeof c->errstr, "fatal: %s", buf);
        return -1;
    }
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->rkt)
            snprintf(buf, sizeof buf, "%s[%d]: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                     rd_kafka_message_errstr(m));
        else
            snprintf(buf, sizeof buf, "%s", rd_kafka_message_errstr(m));
        log_error(c, buf);
    }
    return 0;
}

static void wrap(rd_kafka_message_t *m, struct dg_msg *out)
{
    out->topic = rd_kafka_topic_name(m->rkt);
    out->partition = m->partition;
    out->offset = m->offset;
    out->key = m->key;
    out->key_len = m->key_len;
    out->value = m->payload;
    out->len = m->len;
    out->priv = m;
}

ssize_t dg_consumer_poll(dg_consumer *c, struct dg_msg *out, size_t max, int wait_ms,
                         int linger_ms)
{
    int64_t first_deadline = now_ms() + wait_ms, linger_deadline = 0;
    size_t k = 0;

    c->collect = out;
    c->ncollect = 0;
    while (k < c->nstash && c->ncollect < max)
        wrap(c->stash[k++], &out[c->ncollect++]);
    if (k) {
        memmove(c->stash, c->stash + k, (c->nstash - k) * sizeof(*c->stash));
        c->nstash -= k;
    }
    if (c->ncollect)
        linger_deadline = now_ms() + linger_ms;

    while (c->ncollect < max) {
        /* past the deadline: only what is queued already (one poll that
         * does not wait, never a spin until the clock moves on) */
        int64_t left = (c->ncollect ? linger_deadline : first_deadline) - now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left > 0 ? (int)left : 0);
        if (!m) {
            if (left <= 0)
                break;
            continue;
        }
        if (m->err) {
            int fatal = message_error(c, m);
            rd_kafka_message_destroy(m);
            if (fatal) {
                dg_consumer_release(c, out, c->ncollect);
                c->collect = NULL;
                c->ncollect = 0;
                return -1;
            }
            continue;
        }
        if (!c->ncollect)
            linger_deadline = now_ms() + linger_ms;
        wrap(m, &out[c->ncollect++]);
    }
    c->collect = NULL;
    c->last_error[0] = '\0'; /* messages flow: a later error is news */
    return (ssize_t)c->ncollect;
}

void dg_consumer_release(dg_consumer *c, struct dg_msg *m, size_t n)
{
    (void)c;
    for (size_t i = 0; i < n; i++)
        if (m[i].priv)
            rd_kafka_message_destroy(m[i].priv);
}

int dg_consumer_idle(dg_consumer *c, int ms)
{
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left > 0 ? (int)left : 0);
        if (!m) {
            if (left <= 0)
                return 0;
            continue;
        }
        if (m->err) {
            int fatal = message_error(c, m);
            rd_kafka_message_destroy(m);
            if (fatal)
                return -1;
            continue;
        }
        if (c->nstash == c->capstash) {
            c->capstash = c->capstash ? c->capstash * 2 : 64;
            c->stash = dg_xrealloc(c->stash, c->capstash * sizeof(*c->stash));
        }
        c->stash[c->nstash++] = m;
    }
}

size_t dg_consumer_pause(dg_consumer *c)
{
    c->paused = 1;
    if (!c->assigned || !c->assigned->cnt)
        return 0;
    rd_kafka_topic_partition_list_t *p = rd_kafka_topic_partition_list_copy(c->assigned);
    rd_kafka_pause_partitions(c->rk, p);
    for (int i = 0; i < p->cnt; i++)
        if (!p->elems[i].err && !in_list(c->paused_set, p->elems[i].topic, p->elems[i].partition))
            rd_kafka_topic_partition_list_add(c->paused_set, p->elems[i].topic, p->elems[i].partition);
    rd_kafka_topic_partition_list_destroy(p);
    return (size_t)c->paused_set->cnt;
}

size_t dg_consumer_resume(dg_consumer *c)
{
    size_t n = (size_t)c->paused_set->cnt;
    c->paused = 0;
    if (n)
        rd_kafka_resume_partitions(c->rk, c->paused_set);
    rd_kafka_topic_partition_list_destroy(c->paused_set);
    c->paused_set = rd_kafka_topic_partition_list_new(8);
    return n;
}

int dg_consumer_paused(const dg_consumer *c)
{
    return c->paused;
}

int dg_consumer_seek(dg_consumer *c, const struct dg_tp *tps, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        if (in_list(c->assigned, tps[i].topic, tps[i].partition))
            rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset = tps[i].offset;
    /* the stash may hold messages past the seek point: they come again */
    for (size_t i = 0, k = 0; i <= c->nstash; i++) {
        if (i == c->nstash) {
            c->nstash = k;
            break;
        }
        rd_kafka_message_t *m = c->stash[i];
        if (in_list(l, rd_kafka_topic_name(m->rkt), m->partition))
            rd_kafka_message_destroy(m);
        else
            c->stash[k++] = m;
    }
    if (l->cnt) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, SEEK_TIMEOUT_MS);
        if (e) {
            snprintf(c->errstr, sizeof c->errstr, "seek: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            rc = -1;
        }
        for (int i = 0; rc == 0 && i < l->cnt; i++)
            if (l->elems[i].err) {
                snprintf(c->errstr, sizeof c->errstr, "seek %s[%d]: %s", l->elems[i].topic,
                         (int)l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
                rc = -1;
            }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int dg_consumer_store(dg_consumer *c, const struct dg_tp *tps, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        if (in_list(c->assigned, tps[i].topic, tps[i].partition))
            rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset = tps[i].offset;
    if (l->cnt) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
        if (e && e != RD_KAFKA_RESP_ERR__STATE) {
            snprintf(c->errstr, sizeof c->errstr, "storing offsets: %s", rd_kafka_err2str(e));
            rc = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int dg_consumer_commit(dg_consumer *c)
{
    if (c->tool)
        return 0;
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        snprintf(c->errstr, sizeof c->errstr, "commit: %s", rd_kafka_err2str(e));
        /* the group is rebalancing (another member joined or left): the
         * offsets are not committed now, so the new owner reads those
         * events again and gets their stored decisions. Nothing is lost. */
        if (e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
            e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR__STATE)
            return 1;
        return -1;
    }
    return 0;
}

size_t dg_consumer_assigned(const dg_consumer *c)
{
    return c->assigned ? (size_t)c->assigned->cnt : 0;
}

const char *dg_consumer_error(const dg_consumer *c)
{
    return c->errstr;
}

int dg_msg_header(const struct dg_msg *m, size_t i, const char **name, const void **value,
                  size_t *len)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m->priv, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || !h)
        return -1;
    return rd_kafka_header_get_all(h, i, name, value, len) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int64_t dg_msg_timestamp(const struct dg_msg *m)
{
    rd_kafka_timestamp_type_t type;
    return m->priv ? rd_kafka_message_timestamp(m->priv, &type) : -1;
}

size_t dg_consumer_lag(dg_consumer *c, struct dg_tp *out, size_t max)
{
    size_t n = 0;
    if (!c->assigned || !c->assigned->cnt)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(c->assigned);
    if (rd_kafka_position(c->rk, l) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto out_list;
    for (int i = 0; i < l->cnt && n < max; i++) {
        int64_t lo, hi;
        const rd_kafka_topic_partition_t *p = &l->elems[i];
        if (p->err || p->offset < 0 ||
            rd_kafka_get_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi) ||
            hi < 0)
            continue;
        /* the topic name points into c->assigned, which outlives the call */
        const rd_kafka_topic_partition_t *a =
            rd_kafka_topic_partition_list_find(c->assigned, p->topic, p->partition);
        out[n].topic = a ? a->topic : "";
        out[n].partition = p->partition;
        out[n].offset = hi > p->offset ? hi - p->offset : 0;
        n++;
    }
out_list:
    rd_kafka_topic_partition_list_destroy(l);
    return n;
}

int dg_consumer_joined(dg_consumer *c)
{
    char *id = rd_kafka_memberid(c->rk);
    int joined = id && *id;
    if (id)
        rd_kafka_mem_free(c->rk, id);
    return joined;
}

int dg_consumer_ping(dg_consumer *c, int timeout_ms, char *err, size_t errsz)
{
    const struct rd_kafka_metadata *md = NULL;
    /* all_topics 0 and no topic: only the brokers (and known topics) */
    rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, NULL, &md, timeout_ms);
    if (e) {
        snprintf(err, errsz, "kafka: no broker answered within %d ms (%s)", timeout_ms,
                 rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

int dg_consumer_close(dg_consumer *c)
{
    int rc = 0;
    if (!c)
        return 0;
    for (size_t i = 0; i < c->nstash; i++)
        rd_kafka_message_destroy(c->stash[i]);
    c->nstash = 0;
    int cr = c->tool ? 0 : dg_consumer_commit(c);
    if (cr > 0) {
        dg_log(DG_LOG_WARN, "final %s: the events since the last commit will be read again by the "
                            "partitions' next owner, and get their stored decisions",
               c->errstr);
    } else if (cr < 0) {
        dg_log(DG_LOG_ERROR, "final %s", c->errstr);
        rc = -1;
    }
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    if (c->assigned)
        rd_kafka_topic_partition_list_destroy(c->assigned);
    rd_kafka_topic_partition_list_destroy(c->paused_set);
    free(c->stash);
    free(c);
    return rc;
}
