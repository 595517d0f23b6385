/*
 * e2e_count.c - the end-to-end benchmark's finish line (bench/e2e.sh).
 *
 *   e2e_count --brokers HOST:PORT --topic T --count N [--idle-ms MS] [--timeout-s S]
 *
 * Counts the messages acknowledged into topic T - the sum of its
 * partitions' log end offsets, asked of the broker every 10 ms (one
 * ListOffsets request) - until there are N, or none came for --idle-ms
 * after the first one, or --timeout-s passed. Prints one line on stdout:
 *
 *   count C first_ns F last_ns L
 *
 * with the wall-clock time (CLOCK_REALTIME, nanoseconds) at which the count
 * first rose above 0 and at which it last rose, so the script can set them
 * against the engine's start (10 ms resolution). It reads no message: a
 * consumer of every decision cost about 0.35 s of CPU per 250k decisions,
 * and the broker more for its fetches, on the same 2 cores as the engine.
 * Each decision is one message (the engine's producer is idempotent, and
 * it republishes only after a failed delivery, which the benchmark does
 * not cause). Exit status 0 when C >= N, 1 when fewer came, 2 on error.
 * Stand-alone: it links librdkafka only.
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_NS 10000000 /* how often the end offsets are read */

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: e2e_count --brokers HOST:PORT --topic T --count N "
                    "[--idle-ms MS] [--timeout-s S]\n");
    exit(2);
}

/* The partitions of topic, each with offset RD_KAFKA_OFFSET_END (for
 * offsetsForTimes: the log end offset). NULL on error. */
static rd_kafka_topic_partition_list_t *partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_topic_partition_list_t *parts = NULL;

    if (!rkt)
        return NULL;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "e2e_count: no metadata for topic '%s'\n", topic);
        goto out_topic;
    }
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1) {
        fprintf(stderr, "e2e_count: topic '%s' has no partitions\n", topic);
        goto out_md;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id);
out_md:
    rd_kafka_metadata_destroy(md);
out_topic:
    rd_kafka_topic_destroy(rkt);
    return parts;
}

/* Messages in the topic: the sum of its partitions' log end offsets (one
 * ListOffsets request), or -1 on error. */
static long long end_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
    long long sum = 0;
    for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = RD_KAFKA_OFFSET_END; /* as a timestamp: the latest */
    if (rd_kafka_offsets_for_times(rk, parts, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    for (int i = 0; i < parts->cnt; i++) {
        if (parts->elems[i].err || parts->elems[i].offset < 0)
            return -1;
        sum += parts->elems[i].offset;
    }
    return sum;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    long long want = -1, idle_ms = 5000, timeout_s = 600;
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(o, "--brokers"))
            brokers = v;
        else if (!strcmp(o, "--topic"))
            topic = v;
        else if (!strcmp(o, "--count"))
            want = atoll(v);
        else if (!strcmp(o, "--idle-ms"))
            idle_ms = atoll(v);
        else if (!strcmp(o, "--timeout-s"))
            timeout_s = atoll(v);
        else
            usage();
        i++;
    }
    if (!brokers || !topic || want < 0)
        usage();

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "e2e_count: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "e2e_count: %s\n", err);
        return 2;
    }
    rd_kafka_topic_partition_list_t *parts = partitions(rk, topic);
    if (!parts) {
        rd_kafka_destroy(rk);
        return 2;
    }

    long long n = 0, errors = 0;
    int64_t start = now_ns(CLOCK_MONOTONIC), last_mono = start, first = 0, last = 0;
    while (n < want) {
        struct timespec tick = {0, POLL_NS};
        nanosleep(&tick, NULL);
        long long c = end_offsets(rk, parts);
        int64_t mono = now_ns(CLOCK_MONOTONIC);
        if (c < 0) {
            if (++errors > 100) {
                fprintf(stderr, "e2e_count: cannot read the end offsets of '%s'\n", topic);
                break;
            }
        } else if (c > n) {
            last = now_ns(CLOCK_REALTIME);
            last_mono = mono;
            if (!n)
                first = last;
            n = c;
        }
        if (n && mono - last_mono > idle_ms * 1000000)
            break;
        if (mono - start > timeout_s * 1000000000)
            break;
    }
    printf("count %lld first_ns %lld last_ns %lld\n", n, (long long)first, (long long)last);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    return n >= want ? 0 : 1;
}
