/*
 * e2e_count.c - the end-to-end benchmark's finish line (bench/e2e.sh).
 *
 *   e2e_count --brokers HOST:PORT --topic T --count N [--idle-ms MS] [--timeout-s S]
 *
 * Reads every partition of topic T from the beginning (assigned, not
 * subscribed: no group join to wait for) and counts messages until it has
 * seen N, or until none came for --idle-ms after the first one, or until
 * --timeout-s. Prints one line on stdout:
 *
 *   count C first_ns F last_ns L
 *
 * with the wall-clock time (CLOCK_REALTIME, nanoseconds) at which the first
 * and the last message arrived, so the script can set them against the
 * engine's start. Exit status 0 when C >= N, 1 when fewer came, 2 on error.
 * Stand-alone: it links librdkafka only.
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Assign every partition of topic from its first offset. 0 or -1. */
static int assign_all(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_topic_partition_list_t *parts = NULL;
    int rc = -1;

    if (!rkt)
        return -1;
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
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rc = rd_kafka_assign(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
    rd_kafka_topic_partition_list_destroy(parts);
out_md:
    rd_kafka_metadata_destroy(md);
out_topic:
    rd_kafka_topic_destroy(rkt);
    return rc;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    long long want = -1, idle_ms = 5000, timeout_s = 600;
    char err[512], gid[64];

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
    snprintf(gid, sizeof gid, "e2e-count-%ld", (long)now_ns(CLOCK_REALTIME));
    const char *props[][2] = {
        {"bootstrap.servers", brokers}, {"group.id", gid},
        {"enable.auto.commit", "false"}, {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "10"},    {"log_level", "3"},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "e2e_count: %s\n", err);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "e2e_count: %s\n", err);
        return 2;
    }
    rd_kafka_poll_set_consumer(rk);
    if (assign_all(rk, topic)) {
        rd_kafka_destroy(rk);
        return 2;
    }

    long long n = 0;
    int64_t start = now_ns(CLOCK_MONOTONIC), last_mono = 0, first = 0, last = 0;
    while (n < want) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        int64_t mono = now_ns(CLOCK_MONOTONIC);
        if (m) {
            if (!m->err) {
                last = now_ns(CLOCK_REALTIME);
                last_mono = mono;
                if (!n++)
                    first = last;
            }
            rd_kafka_message_destroy(m);
        }
        if (n && mono - last_mono > idle_ms * 1000000)
            break;
        if (mono - start > timeout_s * 1000000000)
            break;
    }
    printf("count %lld first_ns %lld last_ns %lld\n", n, (long long)first, (long long)last);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n >= want ? 0 : 1;
}
