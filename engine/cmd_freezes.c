/*
 * cmd_freezes.c - `drainguard freezes list|add|release`: freeze
 * administration for operators, against the engine's Redis
 * (freeze_admin.h, implemented in window_redis.c). Beside the pipeline, not
 * in it: it changes what the next batch of every engine instance sees
 * (each change bumps the freezes' version, so batches in flight are read
 * again), and publishes each change to an audit topic through the same
 * producer as `run` (output_kafka.c).
 *
 * Order of a change: producer created (a bad kafka property stops here,
 * nothing changed) -> the Redis change (atomic) -> the audit message, waited
 * for. The freeze is what protects the hot wallet, so a broker that is down
 * never blocks it: the change stands, and the exit status (3) and the
 * message say that the audit message is missing, with the line to publish
 * by hand. See docs/freezes.md.
 */
#include "cmd.h"
#include "config.h"
#include "freeze_admin.h"
#include "output_kafka.h"
#include "rules.h"
#include "state.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char dg_usage_freezes[] =
    "usage: drainguard freezes list [--json] [REDIS OPTIONS]\n"
    "       drainguard freezes add SCOPE [KEY] --reason TEXT --by NAME [REDIS OPTIONS]\n"
    "                              [KAFKA OPTIONS]\n"
    "       drainguard freezes release SCOPE [KEY] --reason TEXT --by NAME [REDIS OPTIONS]\n"
    "                              [KAFKA OPTIONS]\n"
    "\n"
    "Freeze administration against the Redis that the `drainguard run` instances\n"
    "share. SCOPE is account, destination, wallet, asset or global; KEY the\n"
    "account_id, dest_address, wallet (wallet_id or hot_wallet) or asset, as\n"
    "in the events. The global scope takes no KEY (or \"*\"): it holds every\n"
    "withdrawal and outflow.\n"
    "\n"
    "  list      every freeze in force: scope, key, the rule that placed it\n"
    "            (\"manual\" for an operator's), who (\"engine\" or the operator),\n"
    "            when, the event time of the event that triggered it, the reason\n"
    "  add       an operator's freeze; refused (exit 1) when the scope is\n"
    "            already frozen\n"
    "  release   lift a freeze (an engine's or an operator's); exit 1 when the\n"
    "            scope is not frozen\n"
    "\n"
    "A change holds from the next batch on, on every instance. Each add and\n"
    "release is published to the audit topic as one JSON message, keyed by\n"
    "\"SCOPE|KEY\"; freezes that rules place are not (their decisions say so).\n"
    "\n"
    "Redis options (defaults: the config file's, else 127.0.0.1:6379, prefix dg:;\n"
    "a password from the config, else from DG_REDIS_PASSWORD):\n"
    "  --config FILE       a `drainguard run` configuration: redis:, brokers and\n"
    "                      kafka: properties (TLS, SASL) are taken from it\n"
    "  --redis ADDR        HOST:PORT or unix:PATH\n"
    "  --redis-prefix P    key prefix of the engine's state\n"
    "Kafka options (add, release):\n"
    "  --brokers LIST      bootstrap servers of the audit topic\n"
    "  --audit-topic T     default drainguard-audit\n"
    "  --audit-timeout DUR how long to wait for the audit message's\n"
    "                      acknowledgement (default 10s, or the config's\n"
    "                      message.timeout.ms)\n"
    "Other:\n"
    "  --reason TEXT       why (required for add and release; one line)\n"
    "  --by NAME           who (required for add and release)\n"
    "  --json              list: a JSON array of the stored records\n"
    "\n"
    "Exit status: 0 done; 1 Redis unreachable or refused, scope already frozen\n"
    "(add) or not frozen (release), nothing changed; 2 usage or configuration\n"
    "error, nothing changed; 3 the change was made in Redis and stands, but\n"
    "the audit message was not acknowledged (it is printed on stderr, to be\n"
    "published by hand).\n";

#define DEFAULT_AUDIT_TOPIC "drainguard-audit"
#define DEFAULT_AUDIT_TIMEOUT_MS 10000
#define MAX_KEY_BYTES 1024
#define MAX_REASON_BYTES 1024
#define MAX_BY_BYTES 256
#define MAX_RECORD_BYTES (64 * 1024) /* a stored record larger than this is not parsed */
#define EXIT_AUDIT_FAILED 3

struct fz {
    const char *sub;
    struct dg_config *cfg;
    const char *pos[3];
    size_t npos;
    const char *reason, *by, *audit_topic;
    int audit_topic_given;
    int json;
    int64_t audit_timeout_ms; /* -1: not given */
    int scope;
    const char *key;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Operator text that goes into records, logs and tables: valid UTF-8, no
 * control characters (a newline would forge a line of `freezes list`). */
static int check_text(const char *what, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n) {
        dg_cmd_error("freezes", "%s is empty", what);
        return -1;
    }
    if (n > max) {
        dg_cmd_error("freezes", "%s is %zu bytes long (at most %zu)", what, n, max);
        return -1;
    }
    if (!dg_utf8_valid(s, n)) {
        dg_cmd_error("freezes", "%s is not valid UTF-8", what);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            dg_cmd_error("freezes", "%s contains a control character (byte %zu)", what, i + 1);
            return -1;
        }
    return 0;
}

/* Print s for a terminal: control bytes as \xNN (keys come from events). */
static void put_clean(FILE *out, const char *s, int width)
{
    int n = 0;
    for (; *s; s++, n++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            fprintf(out, "\\x%02x", (unsigned char)*s);
            n += 3;
        } else {
            fputc(*s, out);
        }
    }
    for (; n < width; n++)
        fputc(' ', out);
}

/* ---- arguments ---- */

static int parse_args(int argc, char **argv, struct fz *z)
{
    const char *config = NULL, *redis = NULL, *prefix = NULL, *brokers = NULL;
    char err[512];
    int only_pos = 0;

    z->audit_timeout_ms = -1;
    z->audit_topic = DEFAULT_AUDIT_TOPIC;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if (only_pos || argv[i][0] != '-' || !strcmp(argv[i], "-")) {
            if (z->npos == DG_ARRAY_LEN(z->pos)) {
                dg_cmd_error("freezes", "unexpected argument '%s'", argv[i]);
                return -1;
            }
            z->pos[z->npos++] = argv[i];
        } else if (!strcmp(argv[i], "--")) {
            only_pos = 1;
        } else if ((v = dg_opt(argc, argv, &i, "--config"))) {
            config = v;
        } else if ((v = dg_opt(argc, argv, &i, "--redis"))) {
            redis = v;
        } else if ((v = dg_opt(argc, argv, &i, "--redis-prefix"))) {
            prefix = v;
        } else if ((v = dg_opt(argc, argv, &i, "--brokers"))) {
            brokers = v;
        } else if ((v = dg_opt(argc, argv, &i, "--audit-topic"))) {
            z->audit_topic = v;
            z->audit_topic_given = 1;
        } else if ((v = dg_opt(argc, argv, &i, "--audit-timeout"))) {
            z->audit_timeout_ms = dg_opt_duration("--audit-timeout", v);
            if (z->audit_timeout_ms < 1) {
                dg_cmd_error("freezes", "--audit-timeout: must be at least 1ms");
                return -1;
            }
        } else if ((v = dg_opt(argc, argv, &i, "--reason"))) {
            z->reason = v;
        } else if ((v = dg_opt(argc, argv, &i, "--by"))) {
            z->by = v;
        } else if (!strcmp(argv[i], "--json")) {
            z->json = 1;
        } else {
            dg_cmd_error("freezes", "unknown option '%s' (see drainguard freezes --help)", argv[i]);
            return -1;
        }
    }
    int is_list = !strcmp(z->sub, "list");
    if (is_list && (z->npos || z->reason || z->by || brokers || z->audit_timeout_ms >= 0 ||
                    z->audit_topic_given)) {
        dg_cmd_error("freezes", "list takes no SCOPE, KEY, --reason, --by or Kafka options");
        return -1;
    }
    if (!is_list && z->json) {
        dg_cmd_error("freezes", "--json is for list only");
        return -1;
    }

    if (config) {
        struct dg_diag diag = {0};
        int rc = dg_config_load(z->cfg, config, &diag);
        for (size_t k = 0; k < diag.n; k++)
            fprintf(stderr, "%s\n", diag.lines[k]);
        dg_diag_free(&diag);
        if (rc != 0) {
            dg_cmd_error("freezes", "configuration '%s' has errors; nothing done", config);
            return -1;
        }
    }
    if (redis && dg_config_set(z->cfg, "redis", redis, err, sizeof err) != 0) {
        dg_cmd_error("freezes", "%s", err);
        return -1;
    }
    if (prefix) {
        free(z->cfg->redis.prefix);
        z->cfg->redis.prefix = dg_xstrdup(prefix);
    }
    if (!z->cfg->redis.password) {
        const char *pw = getenv("DG_REDIS_PASSWORD");
        if (pw && *pw)
            z->cfg->redis.password = dg_xstrdup(pw);
    }
    if (brokers && dg_config_set(z->cfg, "brokers", brokers, err, sizeof err) != 0) {
        dg_cmd_error("freezes", "%s", err);
        return -1;
    }
    if (is_list)
        return 0;

    /* SCOPE [KEY] */
    if (!z->npos) {
        dg_cmd_error("freezes", "%s: missing SCOPE (account, destination, wallet, asset or global)",
                     z->sub);
        return -1;
    }
    z->scope = dg_scope_lookup(z->pos[0], strlen(z->pos[0]));
    if (z->scope < 0) {
        dg_cmd_error("freezes", "unknown scope '%s' (account, destination, wallet, asset or global)",
                     z->pos[0]);
        return -1;
    }
    if (z->scope == DG_SCOPE_GLOBAL) {
        if (z->npos > 2 || (z->npos == 2 && strcmp(z->pos[1], "*"))) {
            dg_cmd_error("freezes", "the global scope takes no KEY (or \"*\"), got '%s'", z->pos[1]);
            return -1;
        }
        z->key = "*";
    } else {
        if (z->npos != 2) {
            dg_cmd_error("freezes", z->npos < 2 ? "%s: missing KEY after '%s'"
                                                : "%s: one KEY after '%s', got more",
                         z->sub, z->pos[0]);
            return -1;
        }
        z->key = z->pos[1];
        if (check_text("KEY", z->key, MAX_KEY_BYTES))
            return -1;
    }
    if (!z->reason || !z->by) {
        dg_cmd_error("freezes", "%s: --reason TEXT and --by NAME are required (the audit trail)",
                     z->sub);
        return -1;
    }
    if (check_text("--reason", z->reason, MAX_REASON_BYTES) ||
        check_text("--by", z->by, MAX_BY_BYTES))
        return -1;
    if (!z->cfg->brokers || !*z->cfg->brokers) {
        dg_cmd_error("freezes", "no brokers for the audit topic: pass --brokers HOST:PORT or "
                     "--config FILE; nothing changed");
        return -1;
    }
    /* Kafka's topic names: refused here, not after the change is made */
    size_t tl = strlen(z->audit_topic);
    if (!tl || tl > 249 || strspn(z->audit_topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                   "0123456789._-") != tl) {
        dg_cmd_error("freezes", "--audit-topic: '%s' is not a Kafka topic name "
                     "(1 to 249 of a-z A-Z 0-9 . _ -)", z->audit_topic);
        return -1;
    }
    return 0;
}

/* ---- list ---- */

/* A stored record's fields, as strings to show ("" when absent). */
struct shown {
    char scope[32];
    const char *key, *rule, *by, *at, *reason, *event_id;
    char ts[32];
    cJSON *j;
};

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

static void shown_of(const struct dg_freeze_entry *e, struct shown *s)
{
    const char *bar = strchr(e->field, '|');
    memset(s, 0, sizeof(*s));
    snprintf(s->scope, sizeof s->scope, "%.*s", bar ? (int)(bar - e->field) : 0, e->field);
    s->key = bar ? bar + 1 : e->field;
    s->rule = s->by = s->at = s->reason = s->event_id = "";
    s->ts[0] = '\0';
    if (e->record_len <= MAX_RECORD_BYTES)
        s->j = cJSON_ParseWithLength(e->record, e->record_len);
    if (!cJSON_IsObject(s->j)) {
        cJSON_Delete(s->j);
        s->j = NULL;
        s->reason = "(unreadable record: see --json)";
        return;
    }
    s->rule = jstr(s->j, "rule");
    s->by = jstr(s->j, "by");
    s->at = jstr(s->j, "at");
    s->reason = jstr(s->j, "reason");
    s->event_id = jstr(s->j, "event_id");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(s->j, "ts");
    if (cJSON_IsNumber(ts))
        dg_time_format((int64_t)ts->valuedouble, s->ts);
}

static int cmd_list(struct fz *z)
{
    struct dg_redis_opts ro;
    struct dg_freeze_entry *v;
    size_t n;
    char err[512];

    dg_config_redis_opts(z->cfg, &ro);
    if (dg_freezes_list(&ro, &v, &n, err, sizeof err) != 0) {
        dg_cmd_error("freezes", "%s", err);
        return 1;
    }
    if (z->json) {
        /* the records as stored; one that is not a JSON object is shown as
         * a string beside its scope and key */
        fputs("[", stdout);
        for (size_t i = 0; i < n; i++) {
            struct shown s;
            shown_of(&v[i], &s);
            fputs(i ? ",\n " : "\n ", stdout);
            if (s.j) {
                fwrite(v[i].record, 1, v[i].record_len, stdout);
            } else {
                dg_buf b = {0};
                dg_buf_puts(&b, "{\"scope\":");
                dg_buf_json_str(&b, s.scope, strlen(s.scope));
                dg_buf_puts(&b, ",\"key\":");
                dg_buf_json_str(&b, s.key, strlen(s.key));
                dg_buf_puts(&b, ",\"unreadable_record\":");
                dg_buf_json_str(&b, v[i].record, v[i].record_len);
                dg_buf_putc(&b, '}');
                fwrite(b.data, 1, b.len, stdout);
                dg_buf_free(&b);
            }
            cJSON_Delete(s.j);
        }
        fputs(n ? "\n]\n" : "]\n", stdout);
        dg_freezes_list_free(v, n);
        return 0;
    }
    if (!n) {
        printf("no freezes in force (prefix '%s')\n", ro.prefix);
        dg_freezes_list_free(v, n);
        return 0;
    }
    struct shown *s = dg_xcalloc(n, sizeof(*s));
    int w[6] = {5, 3, 4, 2, 9, 10}; /* the headers' widths */
    for (size_t i = 0; i < n; i++) {
        shown_of(&v[i], &s[i]);
        const char *cols[6] = {s[i].scope, s[i].key, s[i].rule, s[i].by, s[i].at, s[i].ts};
        for (int c = 0; c < 6; c++) {
            int l = (int)strlen(cols[c]);
            if (l > 80)
                l = 80; /* a very long key pushes the rest out of line, not the table */
            if (l > w[c])
                w[c] = l;
        }
    }
    printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  REASON\n", w[0], "SCOPE", w[1], "KEY", w[2],
           "RULE", w[3], "BY", w[4], "PLACED AT", w[5], "EVENT TIME");
    for (size_t i = 0; i < n; i++) {
        const char *cols[6] = {s[i].scope, s[i].key, s[i].rule, s[i].by, s[i].at,
                               s[i].ts[0] ? s[i].ts : "-"};
        for (int c = 0; c < 6; c++) {
            put_clean(stdout, cols[c], w[c]);
            fputs("  ", stdout);
        }
        put_clean(stdout, s[i].reason, 0);
        fputc('\n', stdout);
        cJSON_Delete(s[i].j);
    }
    printf("%zu freeze%s in force\n", n, n == 1 ? "" : "s");
    free(s);
    dg_freezes_list_free(v, n);
    return 0;
}

/* ---- add, release ---- */

/* message.timeout.ms for the audit producer: --audit-timeout, else the
 * config's, else 10 s (an operator should not wait 30 s to learn that the
 * audit message is missing) */
static void audit_timeout(struct fz *z)
{
    struct dg_kvlist *lists[2] = {&z->cfg->kafka, &z->cfg->kafka_producer};
    char val[24];

    if (z->audit_timeout_ms < 0)
        for (int l = 0; l < 2; l++)
            for (size_t i = 0; i < lists[l]->n; i++)
                if (!strcmp(lists[l]->v[i].key, "message.timeout.ms") ||
                    !strcmp(lists[l]->v[i].key, "delivery.timeout.ms"))
                    return;
    int64_t ms = z->audit_timeout_ms < 0 ? DEFAULT_AUDIT_TIMEOUT_MS : z->audit_timeout_ms;
    if (ms > 900000)
        ms = 900000; /* librdkafka's bound is higher; the producer's wait is 15 min */
    snprintf(val, sizeof val, "%lld", (long long)ms);
    struct dg_kvlist *p = &z->cfg->kafka_producer; /* applied last: wins */
    p->v = dg_xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
    p->v[p->n].key = dg_xstrdup("message.timeout.ms");
    p->v[p->n].val = dg_xstrdup(val);
    p->v[p->n].line = p->v[p->n].col = 0;
    p->n++;
}

/* The audit message: {"op","scope","key","reason","by","at"[,"previous"]}.
 * previous is embedded as stored when it is a JSON object, else as a
 * string. */
static void audit_message(const struct fz *z, const char *op, const char *at,
                          const char *previous, dg_buf *b)
{
    dg_buf_printf(b, "{\"op\":\"%s\",\"scope\":\"%s\",\"key\":", op, dg_scope_name(z->scope));
    dg_buf_json_str(b, z->key, strlen(z->key));
    dg_buf_puts(b, ",\"reason\":");
    dg_buf_json_str(b, z->reason, strlen(z->reason));
    dg_buf_puts(b, ",\"by\":");
    dg_buf_json_str(b, z->by, strlen(z->by));
    dg_buf_printf(b, ",\"at\":\"%s\"", at);
    if (previous) {
        size_t pl = strlen(previous);
        cJSON *j = pl <= MAX_RECORD_BYTES ? cJSON_ParseWithLength(previous, pl) : NULL;
        dg_buf_puts(b, ",\"previous\":");
        if (cJSON_IsObject(j)) {
            char *s = cJSON_PrintUnformatted(j); /* one line, whatever was stored */
            if (s) {
                dg_buf_puts(b, s);
                cJSON_free(s);
            } else {
                dg_buf_json_str(b, previous, pl);
            }
        } else {
            dg_buf_json_str(b, previous, pl);
        }
        cJSON_Delete(j);
    }
    dg_buf_putc(b, '}');
}

/* Publish one audit message and wait for it. 0, or EXIT_AUDIT_FAILED with
 * the operator told what stands and what is missing. */
static int publish_audit(struct fz *z, dg_producer *p, const char *change, const char *what,
                         const dg_buf *msg)
{
    char err[512];
    dg_buf key = {0};
    dg_buf_printf(&key, "%s|%s", dg_scope_name(z->scope), z->key);
    dg_producer_send(p, z->audit_topic, key.data, key.len, msg->data, msg->len, NULL, 0);
    size_t failed = dg_producer_wait(p, err, sizeof err);
    dg_buf_free(&key);
    if (!failed) {
        printf("audit message published to '%s'\n", z->audit_topic);
        return 0;
    }
    dg_cmd_error("freezes", "%s of %s stands in Redis, but the audit message to '%s' was not "
                 "delivered: %s", change, what, z->audit_topic, err);
    fprintf(stderr, "drainguard freezes: publish this line to '%s' when the brokers are back "
                    "(drainguard produce --topic %s):\n%.*s\n",
            z->audit_topic, z->audit_topic, (int)msg->len, msg->data);
    return EXIT_AUDIT_FAILED;
}

/* "rule R by B at A: reason" of a stored record, for messages */
static void describe(const char *record, dg_buf *out)
{
    struct dg_freeze_entry e = {(char *)"|", (char *)record, strlen(record)};
    struct shown s;
    shown_of(&e, &s);
    if (!s.j) {
        dg_buf_puts(out, "a record that is not drainguard's JSON");
        return;
    }
    dg_buf_printf(out, "%s%s by %s at %s: %s", strcmp(s.rule, "manual") ? "rule " : "", s.rule,
                  s.by[0] ? s.by : "?", s.at[0] ? s.at : "?", s.reason);
    cJSON_Delete(s.j);
}

static int cmd_change(struct fz *z, int add)
{
    struct dg_redis_opts ro;
    char err[512], at[32], what[1200];
    char *rec = NULL;
    dg_buf msg = {0}, d = {0};
    int rc = 2;

    audit_timeout(z);
    dg_producer *p = dg_producer_new(z->cfg, "freezes", err, sizeof err);
    if (!p) {
        dg_cmd_error("freezes", "%s; nothing changed", err);
        return 2;
    }
    dg_config_redis_opts(z->cfg, &ro);
    int64_t now = wall_ms();
    dg_time_format(now, at);
    snprintf(what, sizeof what, "%s '%s'", dg_scope_name(z->scope), z->key);
    int r = add ? dg_freeze_add(&ro, z->scope, z->key, z->reason, z->by, now, &rec, err, sizeof err)
                : dg_freeze_release(&ro, z->scope, z->key, &rec, err, sizeof err);
    if (r < 0) {
        dg_cmd_error("freezes", "%s %s: %s", add ? "add" : "release", what, err);
        rc = 1;
        goto out;
    }
    if (r == 0) {
        if (add) {
            describe(rec, &d);
            dg_cmd_error("freezes", "%s is already frozen (%.*s); nothing changed", what,
                         (int)d.len, d.data);
        } else {
            dg_cmd_error("freezes", "%s is not frozen; nothing released", what);
        }
        rc = 1;
        goto out;
    }
    if (add) {
        printf("froze %s (manual, by %s): %s\n", what, z->by, z->reason);
    } else {
        describe(rec, &d);
        printf("released %s (was: %.*s)\n", what, (int)d.len, d.data);
    }
    fflush(stdout);
    audit_message(z, add ? "add" : "release", at, add ? NULL : rec, &msg);
    rc = publish_audit(z, p, add ? "the freeze" : "the release", what, &msg);
out:
    free(rec);
    dg_buf_free(&msg);
    dg_buf_free(&d);
    dg_producer_free(p, 1000);
    return rc;
}

/* ---- the subcommands ---- */

static int run_list(struct fz *z)
{
    return cmd_list(z);
}

static int run_add(struct fz *z)
{
    return cmd_change(z, 1);
}

static int run_release(struct fz *z)
{
    return cmd_change(z, 0);
}

static const struct {
    const char *name;
    int (*run)(struct fz *z);
} subcommands[] = {
    {"list", run_list},
    {"add", run_add},
    {"release", run_release},
};

int dg_cmd_freezes(int argc, char **argv)
{
    struct fz z = {0};
    int rc = 2;

    if (argc < 2) {
        fputs(dg_usage_freezes, stderr);
        return 2;
    }
    z.sub = argv[1];
    for (size_t i = 0; i < DG_ARRAY_LEN(subcommands); i++) {
        if (strcmp(z.sub, subcommands[i].name))
            continue;
        z.cfg = dg_config_new();
        if (parse_args(argc, argv, &z) == 0)
            rc = subcommands[i].run(&z);
        dg_config_free(z.cfg);
        return rc;
    }
    dg_cmd_error("freezes", "unknown subcommand '%s' (list, add or release)", z.sub);
    return 2;
}
