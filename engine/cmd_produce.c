/*
 * cmd_produce.c - `drainguard produce`: one Kafka message per non-blank
 * line of a file, through the same idempotent producer as `run`
 * (output_kafka.c). For operators, the demo and the integration tests; it
 * waits for every delivery report and fails when any message was not
 * acknowledged.
 */
#include "cmd.h"
#include "config.h"
#include "output_kafka.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

const char dg_usage_produce[] =
    "usage: drainguard produce --brokers HOST:PORT[,...] --topic T [--input FILE|-]\n"
    "                          [--key-field NAME] [--config FILE]\n"
    "\n"
    "Send every non-blank line of the input (default: stdin) to topic T as one\n"
    "message, and wait until the brokers acknowledged each one. Exit status 1\n"
    "when any message was not delivered.\n"
    "\n"
    "  --brokers LIST    Kafka bootstrap servers\n"
    "  --topic T         the topic to write to\n"
    "  --input PATH      the lines to send, or - for stdin\n"
    "  --key-field NAME  key each message by the value of this top-level field of\n"
    "                    its JSON object (e.g. account_id); lines without it, or\n"
    "                    that are not JSON objects, are sent without a key\n"
    "  --config FILE     take brokers and kafka: properties (TLS, SASL) from a\n"
    "                    `drainguard run` configuration file\n";

#define MAX_SCAN_DEPTH 64 /* nesting the key scanner steps over */

/* ---- a minimal scan of one JSON object for one top-level field ---- */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* s[i] is '"': the index after the closing quote, or n when unterminated */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

/* Skip one value at i; n when malformed. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    int depth = 0;
    if (i >= n)
        return n;
    if (s[i] == '"')
        return skip_string(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t')
            i++;
        return i;
    }
    for (; i < n; i++) {
        if (s[i] == '"') {
            i = skip_string(s, n, i) - 1;
        } else if (s[i] == '{' || s[i] == '[') {
            if (++depth > MAX_SCAN_DEPTH)
                return n;
        } else if (s[i] == '}' || s[i] == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return n;
}

/* The value of top-level field name: a string's contents (the common
 * escapes decoded, others kept as written) or a number's text. 0 when
 * found, -1 otherwise. */
static int key_of(const char *s, size_t n, const char *name, dg_buf *out)
{
    size_t nl = strlen(name), i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{')
        return -1;
    i++;
    for (;;) {
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != '"')
            return -1;
        size_t ks = i + 1, ke = skip_string(s, n, i);
        if (ke >= n)
            return -1;
        int match = ke - 1 - ks == nl && !memcmp(s + ks, name, nl);
        i = skip_ws(s, n, ke);
        if (i >= n || s[i] != ':')
            return -1;
        i = skip_ws(s, n, i + 1);
        size_t ve = skip_value(s, n, i);
        if (ve >= n)
            return -1;
        if (match) {
            out->len = 0;
            if (s[i] == '"') {
                for (size_t k = i + 1; k < ve - 1; k++) {
                    if (s[k] == '\\' && k + 1 < ve - 1 && strchr("\"\\/", s[k + 1]))
                        k++;
                    dg_buf_putc(out, s[k]);
                }
                if (!out->data)
                    dg_buf_puts(out, "");
            } else if (s[i] == '{' || s[i] == '[') {
                return -1;
            } else {
                dg_buf_append(out, s + i, ve - i);
            }
            return 0;
        }
        i = skip_ws(s, n, ve);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        return -1;
    }
}

int dg_cmd_produce(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL, *input = "-", *key_field = NULL, *config = NULL;
    struct dg_config *cfg = dg_config_new();
    dg_producer *p = NULL;
    FILE *in = NULL;
    char *line = NULL, err[512];
    size_t cap = 0, sent = 0, unkeyed = 0;
    ssize_t n;
    dg_buf key = {0};
    int rc = 2;

    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = dg_opt(argc, argv, &i, "--brokers")))
            brokers = v;
        else if ((v = dg_opt(argc, argv, &i, "--topic")))
            topic = v;
        else if ((v = dg_opt(argc, argv, &i, "--input")))
            input = v;
        else if ((v = dg_opt(argc, argv, &i, "--key-field")))
            key_field = v;
        else if ((v = dg_opt(argc, argv, &i, "--config")))
            config = v;
        else {
            dg_cmd_error("produce", "unknown option '%s' (see drainguard produce --help)", argv[i]);
            goto out_cfg;
        }
    }
    if (dg_cmd_tool_config("produce", cfg, config, brokers, topic) != 0)
        goto out_cfg;
    rc = 1;
    in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in) {
        dg_cmd_error("produce", "cannot read '%s': %s", input, strerror(errno));
        goto out_cfg;
    }
    p = dg_producer_new(cfg, "produce", err, sizeof err);
    if (!p) {
        dg_cmd_error("produce", "%s", err);
        goto out_in;
    }
    dg_producer_prepare(p, &topic, 1, 2000);
    while ((n = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == len)
            continue;
        int keyed = key_field && key_of(line, len, key_field, &key) == 0;
        if (key_field && !keyed)
            unkeyed++;
        dg_producer_send(p, topic, keyed ? key.data : NULL, keyed ? key.len : 0, line, len, NULL, 0);
        sent++;
    }
    if (ferror(in)) {
        dg_cmd_error("produce", "reading '%s': %s", input, strerror(errno));
        dg_producer_wait(p, err, sizeof err);
        goto out_producer;
    }
    size_t failed = dg_producer_wait(p, err, sizeof err);
    if (failed) {
        dg_cmd_error("produce", "%zu of %zu messages to '%s' not delivered: %s", failed, sent, topic, err);
        goto out_producer;
    }
    fprintf(stderr, "drainguard produce: %zu messages to '%s', all acknowledged", sent, topic);
    if (unkeyed)
        fprintf(stderr, " (%zu without a '%s' field, sent without a key)", unkeyed, key_field);
    fputc('\n', stderr);
    rc = 0;
out_producer:
    dg_producer_free(p, 10000);
out_in:
    if (in != stdin)
        fclose(in);
out_cfg:
    free(line);
    dg_buf_free(&key);
    dg_config_free(cfg);
    return rc;
}
