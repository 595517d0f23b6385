/*
 * cmd_consume.c - `drainguard consume`: print the messages of a topic from
 * the beginning, one per line, through source_kafka.c in tool mode (every
 * partition assigned from the start, in a private group, nothing ever
 * committed). For operators, the demo and the integration tests.
 */
#include "cmd.h"
#include "config.h"
#include "source_kafka.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char dg_usage_consume[] =
    "usage: drainguard consume --brokers HOST:PORT[,...] --topic T [--count N]\n"
    "                          [--timeout DUR] [--output FILE|-] [--with-headers]\n"
    "                          [--config FILE]\n"
    "\n"
    "Read topic T from the beginning of every partition, in a private consumer\n"
    "group that commits nothing, and print each message's value as one line\n"
    "(partitions interleaved; in order within each). Stops after N messages or\n"
    "when the timeout has passed, whichever comes first. Exit status 1 when\n"
    "--count was given and fewer messages came before the timeout.\n"
    "\n"
    "  --brokers LIST    Kafka bootstrap servers\n"
    "  --topic T         the topic to read\n"
    "  --count N         stop after N messages\n"
    "  --timeout DUR     stop after this long (default 10s)\n"
    "  --output PATH     where to print, or - for stdout (default)\n"
    "  --with-headers    print {\"key\":...,\"value\":...,\"headers\":{...}} per message\n"
    "                    (key null when absent; values as JSON strings)\n"
    "  --config FILE     take brokers and kafka: properties (TLS, SASL) from a\n"
    "                    `drainguard run` configuration file\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void print_msg(FILE *out, const struct dg_msg *m, int with_headers, dg_buf *b)
{
    if (!with_headers) {
        if (m->len)
            fwrite(m->value, 1, m->len, out);
        fputc('\n', out);
        return;
    }
    const char *name;
    const void *val;
    size_t len;
    b->len = 0;
    dg_buf_puts(b, "{\"key\":");
    if (m->key)
        dg_buf_json_str(b, m->key, m->key_len);
    else
        dg_buf_puts(b, "null");
    dg_buf_puts(b, ",\"value\":");
    dg_buf_json_str(b, m->value ? m->value : "", m->len);
    dg_buf_puts(b, ",\"headers\":{");
    for (size_t i = 0; dg_msg_header(m, i, &name, &val, &len) == 0; i++) {
        if (i)
            dg_buf_putc(b, ',');
        dg_buf_json_str(b, name, strlen(name));
        dg_buf_putc(b, ':');
        if (val)
            dg_buf_json_str(b, val, len);
        else
            dg_buf_puts(b, "null");
    }
    dg_buf_puts(b, "}}\n");
    fwrite(b->data, 1, b->len, out);
}

int dg_cmd_consume(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL, *output = "-", *config = NULL;
    long count = 0;
    int64_t timeout = 10000;
    int with_headers = 0, rc = 2;
    struct dg_config *cfg = dg_config_new();
    dg_consumer *c = NULL;
    FILE *out = NULL;
    char err[512], group[96];
    struct dg_msg msgs[256];
    dg_buf b = {0};
    long got = 0;

    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = dg_opt(argc, argv, &i, "--brokers")))
            brokers = v;
        else if ((v = dg_opt(argc, argv, &i, "--topic")))
            topic = v;
        else if ((v = dg_opt(argc, argv, &i, "--output")))
            output = v;
        else if ((v = dg_opt(argc, argv, &i, "--config")))
            config = v;
        else if ((v = dg_opt(argc, argv, &i, "--timeout")))
            timeout = dg_opt_duration("--timeout", v);
        else if ((v = dg_opt(argc, argv, &i, "--count"))) {
            char *end;
            count = strtol(v, &end, 10);
            if (*end || count < 1) {
                dg_cmd_error("consume", "--count: expected a positive number, got '%s'", v);
                goto out_cfg;
            }
        } else if (!strcmp(argv[i], "--with-headers"))
            with_headers = 1;
        else {
            dg_cmd_error("consume", "unknown option '%s' (see drainguard consume --help)", argv[i]);
            goto out_cfg;
        }
    }
    if (dg_cmd_tool_config("consume", cfg, config, brokers, topic) != 0)
        goto out_cfg;
    rc = 1;
    out = strcmp(output, "-") ? fopen(output, "wb") : stdout;
    if (!out) {
        dg_cmd_error("consume", "cannot write '%s': %s", output, strerror(errno));
        goto out_cfg;
    }
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(group, sizeof group, "drainguard-consume-%ld-%lld", (long)getpid(),
                 (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    }
    struct dg_consumer_opts o = {0};
    o.group = group;
    o.topics = &topic;
    o.ntopics = 1;
    o.tool = 1;
    o.log_name = "consume";
    c = dg_consumer_new(cfg, &o, err, sizeof err);
    if (!c) {
        dg_cmd_error("consume", "%s", err);
        goto out_out;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    double deadline = dg_now_seconds() + (double)timeout / 1000.0;
    while (!stop_requested && (!count || got < count)) {
        double left = deadline - dg_now_seconds();
        if (left <= 0)
            break;
        size_t want = DG_ARRAY_LEN(msgs);
        if (count && (size_t)(count - got) < want)
            want = (size_t)(count - got);
        ssize_t n = dg_consumer_poll(c, msgs, want, left > 0.1 ? 100 : (int)(left * 1000), 0);
        if (n < 0) {
            dg_cmd_error("consume", "%s", dg_consumer_error(c));
            goto out_consumer;
        }
        for (ssize_t i = 0; i < n; i++)
            print_msg(out, &msgs[i], with_headers, &b);
        dg_consumer_release(c, msgs, (size_t)n);
        got += n;
    }
    if (fflush(out) != 0) {
        dg_cmd_error("consume", "writing '%s': %s", output, strerror(errno));
        goto out_consumer;
    }
    if (count && got < count) {
        dg_cmd_error("consume", "only %ld of %ld messages from '%s' before the timeout", got, count,
                     topic);
        goto out_consumer;
    }
    rc = 0;
out_consumer:
    dg_consumer_close(c);
out_out:
    if (out != stdout)
        fclose(out);
out_cfg:
    dg_buf_free(&b);
    dg_config_free(cfg);
    return rc;
}
