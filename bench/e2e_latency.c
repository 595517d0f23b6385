/*
 * e2e_latency.c - decision latency at a fixed offered rate (bench/e2e.sh).
 *
 *   e2e_latency --brokers HOST:PORT --input FILE --rate R --seconds S
 *               [--events-topic T] [--decisions-topic T] [--warmup S]
 *               [--drain S] [--tag TAG] [--dump FILE]
 *
 * Sends events taken from FILE (JSON Lines, e.g. bench/gen_events output)
 * to the events topic at exactly R per second for S seconds, on an absolute
 * schedule (event i is due at start + i/R, so a late send does not shift the
 * ones after it). Each event's event_id is replaced by TAG-<sequence>, its
 * send time recorded, and it is keyed by its account_id as a payment
 * service would. A second thread reads the decisions topic (every partition
 * assigned, no group join) and, per decision, takes the sequence number out
 * of its event_id:
 *
 *   latency = decision received by this consumer - event handed to the producer
 *
 * both read from CLOCK_MONOTONIC in this process. Events sent in the first
 * --warmup seconds are left out of the figures. Only withdrawal requests and
 * outflows are sure to get a decision; other events count when they get one.
 * --dump FILE writes one line per decided event after the warm-up: its send
 * time (ms since the first send) and its latency (ms), to find stalls.
 *
 * Prints on stdout one line for the script:
 *   sent N expected E decided D missing M rate R p50_ms A p99_ms B p999_ms C max_ms X
 * Exit status 0 when it ran (missing decisions are reported, not fatal), 2 on
 * error. Stand-alone: it links librdkafka only.
 */
#define _GNU_SOURCE /* memmem */
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EVENTS 10000000L /* R * S beyond this is a typo, not a benchmark */

struct run {
    rd_kafka_t *consumer;
    const char *tag;
    size_t tag_len;
    long n;                  /* events to send */
    int64_t *sent_ns;        /* per sequence: when handed to the producer */
    int64_t *seen_ns;        /* per sequence: when its decision arrived */
    const char *sure;        /* per sequence: a decision is certain */
    atomic_long sure_decided; /* of those, how many arrived */
    atomic_long decided;     /* distinct sequences with a decision */
    atomic_long duplicates;  /* decisions seen twice */
    atomic_int stop;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: e2e_latency --brokers HOST:PORT --input FILE --rate R --seconds S\n"
                    "                   [--events-topic T] [--decisions-topic T] [--warmup S]\n"
                    "                   [--drain S] [--tag TAG] [--dump FILE]\n");
    exit(2);
}

static int set_all(rd_kafka_conf_t *conf, const char *(*props)[2], size_t n)
{
    char err[512];
    for (size_t i = 0; i < n; i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "e2e_latency: %s\n", err);
            return -1;
        }
    return 0;
}

/* Assign every partition of topic from its first offset. 0 or -1. */
static int assign_all(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int rc = -1;

    if (!rkt)
        return -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "e2e_latency: no metadata for topic '%s'\n", topic);
        goto out_topic;
    }
    if (md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0) {
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        rc = rd_kafka_assign(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
        rd_kafka_topic_partition_list_destroy(parts);
    } else {
        fprintf(stderr, "e2e_latency: topic '%s' has no partitions\n", topic);
    }
    rd_kafka_metadata_destroy(md);
out_topic:
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* The sequence number in `"event_id":"TAG-<digits>"`, or -1. */
static long seq_of(const struct run *r, const char *p, size_t len)
{
    static const char key[] = "\"event_id\":\"";
    const char *end = p + len;
    const char *k = memmem(p, len, key, sizeof key - 1);
    if (!k)
        return -1;
    k += sizeof key - 1;
    if ((size_t)(end - k) <= r->tag_len + 1 || memcmp(k, r->tag, r->tag_len) || k[r->tag_len] != '-')
        return -1;
    long s = 0;
    int digits = 0;
    for (k += r->tag_len + 1; k < end && *k >= '0' && *k <= '9' && digits < 12; k++, digits++)
        s = s * 10 + (*k - '0');
    return digits && k < end && *k == '"' ? s : -1;
}

static void *consume_main(void *arg)
{
    struct run *r = arg;
    while (!atomic_load(&r->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 50);
        if (!m)
            continue;
        int64_t t = now_ns();
        if (!m->err) {
            long s = seq_of(r, m->payload, m->len);
            if (s >= 0 && s < r->n) {
                if (r->seen_ns[s])
                    atomic_fetch_add(&r->duplicates, 1);
                else {
                    r->seen_ns[s] = t;
                    atomic_fetch_add(&r->decided, 1);
                    if (r->sure[s])
                        atomic_fetch_add(&r->sure_decided, 1);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* The value of `"name":"..."` in line, as pointer and length; NULL if absent. */
static const char *field(const char *line, const char *name, size_t *len)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    const char *p = strstr(line, key);
    if (!p)
        return NULL;
    p += strlen(key);
    const char *q = strchr(p, '"');
    if (!q)
        return NULL;
    *len = (size_t)(q - p);
    return p;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, long n, double p)
{
    if (n <= 0)
        return 0;
    long i = (long)(p * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e6;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *input = NULL, *tag = "lat", *dump = NULL;
    const char *events_topic = "withdrawal-events", *decisions_topic = "withdrawal-decisions";
    double rate = 0, seconds = 0, warmup = 2, drain = 10;
    char err[512], gid[64], **lines = NULL;
    long nlines = 0, cap = 0;
    int rc = 2;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(o, "--brokers"))
            brokers = v;
        else if (!strcmp(o, "--input"))
            input = v;
        else if (!strcmp(o, "--rate"))
            rate = atof(v);
        else if (!strcmp(o, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(o, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(o, "--drain"))
            drain = atof(v);
        else if (!strcmp(o, "--events-topic"))
            events_topic = v;
        else if (!strcmp(o, "--decisions-topic"))
            decisions_topic = v;
        else if (!strcmp(o, "--tag"))
            tag = v;
        else if (!strcmp(o, "--dump"))
            dump = v;
        else
            usage();
        i++;
    }
    if (!brokers || !input || rate <= 0 || seconds <= 0)
        usage();
    long n = (long)(rate * seconds);
    if (n < 1 || n > MAX_EVENTS) {
        fprintf(stderr, "e2e_latency: rate * seconds must be 1..%ld events\n", MAX_EVENTS);
        return 2;
    }

    /* the events: the first n lines of the input, reused from the top if short */
    FILE *f = fopen(input, "r");
    if (!f) {
        fprintf(stderr, "e2e_latency: cannot read '%s'\n", input);
        return 2;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while (nlines < n && (len = getline(&line, &lcap, f)) > 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len)
            continue;
        if (nlines == cap) {
            cap = cap ? cap * 2 : 4096;
            lines = realloc(lines, (size_t)cap * sizeof *lines);
            if (!lines)
                abort();
        }
        lines[nlines++] = strdup(line);
    }
    free(line);
    fclose(f);
    if (!nlines) {
        fprintf(stderr, "e2e_latency: no events in '%s'\n", input);
        return 2;
    }

    struct run r = {.tag = tag, .tag_len = strlen(tag), .n = n};
    r.sent_ns = calloc((size_t)n, sizeof *r.sent_ns);
    r.seen_ns = calloc((size_t)n, sizeof *r.seen_ns);
    char *sure = calloc((size_t)n, 1); /* a decision is certain for this event */
    if (!r.sent_ns || !r.seen_ns || !sure)
        abort();
    r.sure = sure; /* filled in before each send; read by the consumer after */

    /* consumer first, so that no decision can come before it listens */
    rd_kafka_conf_t *cconf = rd_kafka_conf_new();
    snprintf(gid, sizeof gid, "e2e-latency-%ld", (long)now_ns());
    const char *cprops[][2] = {
        {"bootstrap.servers", brokers}, {"group.id", gid},
        {"enable.auto.commit", "false"}, {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "1"},     {"fetch.error.backoff.ms", "1"},
        {"log_level", "3"},
    };
    if (set_all(cconf, cprops, sizeof cprops / sizeof cprops[0]))
        goto out_free;
    r.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err);
    if (!r.consumer) {
        fprintf(stderr, "e2e_latency: %s\n", err);
        goto out_free;
    }
    rd_kafka_poll_set_consumer(r.consumer);
    if (assign_all(r.consumer, decisions_topic))
        goto out_consumer;

    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    const char *pprops[][2] = {
        {"bootstrap.servers", brokers}, {"linger.ms", "0"}, {"acks", "all"},
        {"enable.idempotence", "true"}, {"log_level", "3"},
    };
    if (set_all(pconf, pprops, sizeof pprops / sizeof pprops[0])) {
        rd_kafka_conf_destroy(pconf);
        goto out_consumer;
    }
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
    if (!prod) {
        fprintf(stderr, "e2e_latency: %s\n", err);
        goto out_consumer;
    }

    pthread_t th;
    if (pthread_create(&th, NULL, consume_main, &r)) {
        fprintf(stderr, "e2e_latency: cannot start the consumer thread\n");
        goto out_producer;
    }
    /* let the consumer fetch once (its assignment is live) before sending */
    struct timespec settle = {0, 500 * 1000000};
    nanosleep(&settle, NULL);

    /* the schedule: event i is due at t0 + i / rate */
    char *msg = NULL;
    size_t msg_cap = 0;
    int64_t t0 = now_ns(), worst_late = 0, tlast = t0;
    long send_errors = 0;
    for (long i = 0; i < n; i++) {
        const char *src = lines[i % nlines];
        size_t idlen, klen = 0;
        const char *id = field(src, "event_id", &idlen);
        const char *key = field(src, "account_id", &klen);
        char newid[48];
        int nl = snprintf(newid, sizeof newid, "%s-%ld", tag, i);
        size_t srclen = strlen(src), need = srclen + (size_t)nl + 64;
        if (need > msg_cap) {
            msg_cap = need * 2;
            msg = realloc(msg, msg_cap);
            if (!msg)
                abort();
        }
        size_t mlen;
        if (id) { /* replace the id's characters, keep the rest byte for byte */
            size_t pre = (size_t)(id - src);
            memcpy(msg, src, pre);
            memcpy(msg + pre, newid, (size_t)nl);
            memcpy(msg + pre + nl, id + idlen, srclen - pre - idlen);
            mlen = srclen - idlen + (size_t)nl;
        } else { /* none: add one */
            mlen = (size_t)snprintf(msg, msg_cap, "{\"event_id\":\"%s\",%s", newid, src + 1);
        }
        sure[i] = strstr(src, "\"type\":\"withdrawal.requested\"") || strstr(src, "\"type\":\"wallet.outflow\"");

        /* one sleep to the due time (to an absolute time: no drift); the
         * delivery reports are served after each send, which is all they
         * need (a sleep in short steps to serve them woke this process
         * about 5,000 times a second, on the cores the engine runs on) */
        int64_t due = t0 + (int64_t)((double)i * 1e9 / rate);
        if (now_ns() < due) {
            struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
        }
        int64_t t = now_ns();
        if (t - due > worst_late)
            worst_late = t - due;
        r.sent_ns[i] = t;
        rd_kafka_resp_err_t e = rd_kafka_producev(
            prod, RD_KAFKA_V_TOPIC(events_topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE(msg, mlen), RD_KAFKA_V_KEY(key, key ? klen : 0), RD_KAFKA_V_END);
        if (e) {
            send_errors++;
            r.sent_ns[i] = 0;
        }
        rd_kafka_poll(prod, 0);
        tlast = t;
    }
    free(msg);
    rd_kafka_flush(prod, 10000);
    double achieved = n > 1 ? (double)(n - 1) * 1e9 / (double)(tlast - t0) : rate;

    /* wait for the stragglers: every certain decision, or the drain time */
    long expected = 0;
    for (long i = 0; i < n; i++)
        expected += sure[i] && r.sent_ns[i];
    int64_t until = now_ns() + (int64_t)(drain * 1e9);
    while (now_ns() < until && atomic_load(&r.sure_decided) < expected) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);

    /* the figures, after the warm-up */
    int64_t from = t0 + (int64_t)(warmup * 1e9);
    int64_t *lat = malloc((size_t)n * sizeof *lat);
    long nl = 0, missing = 0, exp_after = 0;
    if (!lat)
        abort();
    for (long i = 0; i < n; i++) {
        if (!r.sent_ns[i] || r.sent_ns[i] < from)
            continue;
        if (sure[i])
            exp_after++;
        if (r.seen_ns[i])
            lat[nl++] = r.seen_ns[i] - r.sent_ns[i];
        else if (sure[i])
            missing++;
    }
    if (dump) {
        FILE *d = fopen(dump, "w");
        if (!d) {
            fprintf(stderr, "e2e_latency: cannot write '%s'\n", dump);
            return 2;
        }
        for (long i = 0; i < n; i++)
            if (r.sent_ns[i] >= from && r.seen_ns[i])
                fprintf(d, "%.3f %.3f\n", (double)(r.sent_ns[i] - t0) / 1e6,
                        (double)(r.seen_ns[i] - r.sent_ns[i]) / 1e6);
        fclose(d);
    }
    qsort(lat, (size_t)nl, sizeof *lat, cmp_i64);
    fprintf(stderr,
            "e2e_latency: %ld events at %.0f/s offered (%.1f/s achieved, latest send %.2f ms behind "
            "schedule, %ld send errors); %ld decisions measured after %.0f s warm-up, %ld missing, "
            "%ld duplicates\n",
            n, rate, achieved, (double)worst_late / 1e6, send_errors, nl, warmup, missing,
            atomic_load(&r.duplicates));
    printf("sent %ld expected %ld decided %ld missing %ld rate %.1f p50_ms %.3f p90_ms %.3f "
           "p99_ms %.3f p999_ms %.3f max_ms %.3f late_ms %.3f\n",
           n, exp_after, nl, missing, achieved, pct_ms(lat, nl, 0.50), pct_ms(lat, nl, 0.90),
           pct_ms(lat, nl, 0.99), pct_ms(lat, nl, 0.999), nl ? (double)lat[nl - 1] / 1e6 : 0,
           (double)worst_late / 1e6);
    free(lat);
    rc = 0;

out_producer:
    rd_kafka_destroy(prod);
out_consumer:
    rd_kafka_consumer_close(r.consumer);
    rd_kafka_destroy(r.consumer);
out_free:
    for (long i = 0; i < nlines; i++)
        free(lines[i]);
    free(lines);
    free(r.sent_ns);
    free(r.seen_ns);
    free(sure);
    return rc;
}
