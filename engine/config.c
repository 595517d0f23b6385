/*
 * config.c - the `run` configuration: defaults, the YAML file (a node tree
 * from dg_yaml_parse, so every problem has its FILE:LINE:COL), the
 * command-line flags that override it, and a summary without secrets for
 * the start-up log. No Kafka or Redis here: `kafka:` properties are kept as
 * strings with their position, and source_kafka.c / output_kafka.c report
 * librdkafka's verdict on them at that position.
 */
#include "config.h"
#include "log.h"
#include "rules_tree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG_BYTES (1 << 20)
#define MAX_LIST_ITEMS 256      /* topics, rule paths, kafka properties */
#define MAX_KAFKA_DEPTH 8       /* nesting of kafka: sub-mappings */

static const char *const top_keys[] = {
    "brokers", "group", "input_topics", "decisions_topic", "dlq_topic", "rules", "batch",
    "linger_ms", "max_future", "dedupe_window", "lateness", "state", "redis", "kafka",
    "metrics", "watch", "log_format", "log_level",
    "signing",
};
static const char *const redis_keys[] = {
    "host", "port", "unix", "user", "password", "db", "prefix", "timeout_ms",
};

/* librdkafka properties drainguard sets itself: a different value would
 * break the delivery guarantees or duplicate a key of this file. */
static const struct {
    const char *key, *why;
} reserved[] = {
    {"bootstrap.servers", "use the top-level key 'brokers'"},
    {"metadata.broker.list", "use the top-level key 'brokers'"},
    {"group.id", "use the top-level key 'group'"},
    {"enable.auto.offset.store", "drainguard stores an offset only once its decision is acknowledged"},
    {"enable.idempotence", "decisions are always produced idempotently"},
    {"acks", "decisions are always produced with acks=all"},
    {"request.required.acks", "decisions are always produced with acks=all"},
    {"auto.offset.reset", "drainguard always starts a new group at the earliest offset, so no event is skipped"},
    {"enable.partition.eof", "drainguard does not use partition EOF events"},
    {"transactional.id", "drainguard does not use transactions"},
};

struct ld {
    struct dg_config *c;
    const char *file;
    struct dg_diag *diag;
    int errors;
};

static void err_at(struct ld *l, const struct dg_ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_at(struct ld *l, const struct dg_ynode *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    struct dg_srcpos p = {l->file, n ? n->line : 1, n ? n->col : 1};

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dg_diag_add(l->diag, 1, &p, "%s", msg);
    l->errors++;
}

static const char *kind_name(int kind)
{
    return kind == DG_Y_MAP ? "mapping" : kind == DG_Y_SEQ ? "list" : "value";
}

static const char *suggest(const char *want, const char *const *cands, size_t n)
{
    const char *best = NULL;
    int bestd = 3;
    size_t wl = strlen(want);
    for (size_t i = 0; i < n; i++) {
        int d = dg_edit_distance(want, cands[i]);
        if (d < bestd && (size_t)d < wl) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

/* {env: NAME}: a mapping with the one key `env` */
static int is_env_ref(const struct dg_ynode *n)
{
    return n->kind == DG_Y_MAP && n->n == 2 && n->kids[0]->kind == DG_Y_SCALAR &&
           !strcmp(n->kids[0]->text, "env");
}

/* The text of a single value, or of the environment variable that
 * {env: NAME} names. NULL after reporting why. The result is borrowed (from
 * the tree or the environment): copy it. */
static const char *text_of(struct ld *l, const struct dg_ynode *n, const char *what)
{
    if (n->kind == DG_Y_SCALAR)
        return n->text;
    if (is_env_ref(n)) {
        const struct dg_ynode *v = n->kids[1];
        if (v->kind != DG_Y_SCALAR || !v->len) {
            err_at(l, v, "%s: {env: NAME} needs the name of an environment variable", what);
            return NULL;
        }
        const char *e = getenv(v->text);
        if (!e) {
            err_at(l, v, "%s: environment variable '%s' is not set", what, v->text);
            return NULL;
        }
        return e;
    }
    err_at(l, n, "%s: expected a single value or {env: NAME}, not a %s", what, kind_name(n->kind));
    return NULL;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = dg_xstrdup(v);
}

static void free_list(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static void add_list(char ***v, size_t *n, const char *s)
{
    *v = dg_xrealloc(*v, (*n + 1) * sizeof(char *));
    (*v)[(*n)++] = dg_xstrdup(s);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void get_str(struct ld *l, const struct dg_ynode *n, const char *what, char **dst)
{
    const char *t = text_of(l, n, what);
    if (!t)
        return;
    if (!*t) {
        err_at(l, n, "%s: must not be empty", what);
        return;
    }
    set_str(dst, t);
}

static void get_int(struct ld *l, const struct dg_ynode *n, const char *what, long lo, long hi,
                    int *dst)
{
    const char *t = text_of(l, n, what);
    long v;
    if (!t)
        return;
    if (parse_int(t, lo, hi, &v) != 0) {
        err_at(l, n, "%s: expected a whole number from %ld to %ld, got '%s'", what, lo, hi, t);
        return;
    }
    *dst = (int)v;
}

static void get_duration(struct ld *l, const struct dg_ynode *n, const char *what, int64_t *dst)
{
    const char *t = text_of(l, n, what);
    int64_t ms;
    if (!t)
        return;
    if (dg_duration_parse(t, strlen(t), &ms) != 0 || ms < 0) {
        err_at(l, n, "%s: bad duration '%s' (write e.g. 250ms, 90s, 10m, 24h, 7d)", what, t);
        return;
    }
    *dst = ms;
}

/* A single value or a list of them. Replaces *v only when all is well. */
static void get_list(struct ld *l, const struct dg_ynode *n, const char *what, char ***v,
                     size_t *nv, int rel_paths)
{
    char **out = NULL;
    size_t nout = 0;
    const struct dg_ynode *const *items = (const struct dg_ynode *const *)&n;
    size_t count = 1;
    int bad = 0;

    if (n->kind == DG_Y_SEQ) {
        items = (const struct dg_ynode *const *)n->kids;
        count = n->n;
        if (!count) {
            err_at(l, n, "%s: the list is empty", what);
            return;
        }
        if (count > MAX_LIST_ITEMS) {
            err_at(l, n, "%s: more than %d items", what, MAX_LIST_ITEMS);
            return;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const char *t = text_of(l, items[i], what);
        if (!t) {
            bad = 1;
            continue;
        }
        if (!*t) {
            err_at(l, items[i], "%s: must not be empty", what);
            bad = 1;
            continue;
        }
        if (rel_paths && t[0] != '/' && strchr(l->file, '/')) {
            /* relative to the config file, like rule pack tests */
            const char *slash = strrchr(l->file, '/');
            dg_buf b = {0};
            dg_buf_printf(&b, "%.*s/%s", (int)(slash - l->file), l->file, t);
            add_list(&out, &nout, b.data);
            dg_buf_free(&b);
        } else {
            add_list(&out, &nout, t);
        }
    }
    if (bad) {
        free_list(&out, &nout);
        return;
    }
    free_list(v, nv);
    *v = out;
    *nv = nout;
}

static int check_map(struct ld *l, const struct dg_ynode *n, const char *what)
{
    if (n->kind == DG_Y_MAP)
        return 1;
    err_at(l, n, "%s: expected a mapping, not a %s", what, kind_name(n->kind));
    return 0;
}

/* Unknown keys (with a suggestion) and keys given twice. */
static int known_key(struct ld *l, const struct dg_ynode *m, size_t i, const char *const *allowed,
                     size_t nallowed, const char *where)
{
    const struct dg_ynode *k = m->kids[i];
    if (k->kind != DG_Y_SCALAR) {
        err_at(l, k, "%s: keys must be plain names", where);
        return 0;
    }
    for (size_t j = 0; j < i; j += 2)
        if (m->kids[j]->kind == DG_Y_SCALAR && !strcmp(m->kids[j]->text, k->text)) {
            err_at(l, k, "%s: key '%s' given twice", where, k->text);
            return 0;
        }
    for (size_t j = 0; j < nallowed; j++)
        if (!strcmp(allowed[j], k->text))
            return 1;
    const char *s = suggest(k->text, allowed, nallowed);
    if (s)
        err_at(l, k, "%s: unknown key '%s' (did you mean '%s'?)", where, k->text, s);
    else
        err_at(l, k, "%s: unknown key '%s'", where, k->text);
    return 0;
}

static void kv_add(struct dg_kvlist *list, const char *key, const char *val, int line, int col)
{
    for (size_t i = 0; i < list->n; i++)
        if (!strcmp(list->v[i].key, key)) {
            set_str(&list->v[i].val, val);
            list->v[i].line = line;
            list->v[i].col = col;
            return;
        }
    list->v = dg_xrealloc(list->v, (list->n + 1) * sizeof(*list->v));
    list->v[list->n].key = dg_xstrdup(key);
    list->v[list->n].val = dg_xstrdup(val);
    list->v[list->n].line = line;
    list->v[list->n].col = col;
    list->n++;
}

static void kv_free(struct dg_kvlist *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->v[i].key);
        free(list->v[i].val);
    }
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

/* One librdkafka property. Nested mappings spell dotted names
 * (sasl: {mechanism: PLAIN} is sasl.mechanism), a list is joined with
 * commas the way librdkafka writes lists. */
static void kafka_prop(struct ld *l, struct dg_kvlist *list, const char *name,
                       const struct dg_ynode *k, const struct dg_ynode *v, int depth)
{
    char what[300];
    snprintf(what, sizeof what, "kafka property '%s'", name);

    if (v->kind == DG_Y_MAP && !is_env_ref(v)) {
        if (depth >= MAX_KAFKA_DEPTH) {
            err_at(l, v, "%s: nested too deeply", what);
            return;
        }
        for (size_t i = 0; i + 1 < v->n; i += 2) {
            const struct dg_ynode *kk = v->kids[i];
            if (kk->kind != DG_Y_SCALAR || !kk->len) {
                err_at(l, kk, "%s: keys must be plain names", what);
                continue;
            }
            dg_buf b = {0};
            dg_buf_printf(&b, "%s.%s", name, kk->text);
            kafka_prop(l, list, b.data, kk, v->kids[i + 1], depth + 1);
            dg_buf_free(&b);
        }
        return;
    }
    for (size_t r = 0; r < DG_ARRAY_LEN(reserved); r++)
        if (!strcmp(reserved[r].key, name)) {
            err_at(l, k, "kafka property '%s' is set by drainguard: %s", name, reserved[r].why);
            return;
        }
    if (v->kind == DG_Y_SEQ) {
        dg_buf b = {0};
        int bad = 0;
        for (size_t i = 0; i < v->n; i++) {
            const char *t = text_of(l, v->kids[i], what);
            if (!t) {
                bad = 1;
                break;
            }
            dg_buf_printf(&b, "%s%s", i ? "," : "", t);
        }
        if (!bad)
            kv_add(list, name, b.data ? b.data : "", k->line, k->col);
        dg_buf_free(&b);
        return;
    }
    const char *t = text_of(l, v, what);
    if (t)
        kv_add(list, name, t, k->line, k->col);
}

static void load_kafka(struct ld *l, const struct dg_ynode *m)
{
    if (!check_map(l, m, "kafka"))
        return;
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        const struct dg_ynode *k = m->kids[i], *v = m->kids[i + 1];
        if (k->kind != DG_Y_SCALAR || !k->len) {
            err_at(l, k, "kafka: keys must be librdkafka property names");
            continue;
        }
        for (size_t j = 0; j < i; j += 2)
            if (m->kids[j]->kind == DG_Y_SCALAR && !strcmp(m->kids[j]->text, k->text))
                err_at(l, k, "kafka: key '%s' given twice", k->text);
        int side = !strcmp(k->text, "consumer") ? 1 : !strcmp(k->text, "producer") ? 2 : 0;
        if (!side) {
            kafka_prop(l, &l->c->kafka, k->text, k, v, 0);
            continue;
        }
        struct dg_kvlist *list = side == 1 ? &l->c->kafka_consumer : &l->c->kafka_producer;
        if (!check_map(l, v, side == 1 ? "kafka.consumer" : "kafka.producer"))
            continue;
        for (size_t j = 0; j + 1 < v->n; j += 2) {
            const struct dg_ynode *kk = v->kids[j];
            if (kk->kind != DG_Y_SCALAR || !kk->len) {
                err_at(l, kk, "kafka.%s: keys must be librdkafka property names", k->text);
                continue;
            }
            kafka_prop(l, list, kk->text, kk, v->kids[j + 1], 0);
        }
    }
    if (l->c->kafka.n + l->c->kafka_consumer.n + l->c->kafka_producer.n > MAX_LIST_ITEMS)
        err_at(l, m, "kafka: more than %d properties", MAX_LIST_ITEMS);
}

static void load_redis(struct ld *l, const struct dg_ynode *m)
{
    struct dg_config *c = l->c;
    if (!check_map(l, m, "redis"))
        return;
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        if (!known_key(l, m, i, redis_keys, DG_ARRAY_LEN(redis_keys), "redis"))
            continue;
        const char *k = m->kids[i]->text;
        const struct dg_ynode *v = m->kids[i + 1];
        if (!strcmp(k, "host"))
            get_str(l, v, "redis.host", &c->redis.host);
        else if (!strcmp(k, "port"))
            get_int(l, v, "redis.port", 1, 65535, &c->redis.port);
        else if (!strcmp(k, "unix"))
            get_str(l, v, "redis.unix", &c->redis.unix_path);
        else if (!strcmp(k, "user"))
            get_str(l, v, "redis.user", &c->redis.user);
        else if (!strcmp(k, "password"))
            get_str(l, v, "redis.password", &c->redis.password);
        else if (!strcmp(k, "db"))
            get_int(l, v, "redis.db", 0, 1 << 20, &c->redis.db);
        else if (!strcmp(k, "prefix")) {
            const char *t = text_of(l, v, "redis.prefix");
            if (t)
                set_str(&c->redis.prefix, t); /* "" is allowed: no prefix */
        } else if (!strcmp(k, "timeout_ms"))
            get_int(l, v, "redis.timeout_ms", 1, 3600 * 1000, &c->redis.timeout_ms);
    }
}

static void load_state(struct ld *l, const struct dg_ynode *v)
{
    const char *t = text_of(l, v, "state");
    if (!t)
        return;
    if (!strcmp(t, "redis"))
        l->c->state = DG_STATE_REDIS;
    else if (!strcmp(t, "memory"))
        l->c->state = DG_STATE_MEMORY;
    else
        err_at(l, v, "state: expected 'redis' or 'memory', got '%s'", t);
}

/* signing: {key_file: PATH, key_env: NAME, key_id: ID} (docs/signing.md).
 * Only the names are kept: sign.c reads the key, so its bytes never pass
 * through the configuration or its summary. */
static void load_signing(struct ld *l, const struct dg_ynode *m)
{
    static const char *const keys[] = {"key_file", "key_env", "key_id"};
    struct dg_config *c = l->c;

    if (!check_map(l, m, "signing"))
        return;
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        if (!known_key(l, m, i, keys, DG_ARRAY_LEN(keys), "signing"))
            continue;
        const char *k = m->kids[i]->text;
        const struct dg_ynode *v = m->kids[i + 1];
        if (!strcmp(k, "key_file")) {
            char **one = NULL;
            size_t n = 0;
            if (v->kind != DG_Y_SCALAR && !is_env_ref(v)) {
                err_at(l, v, "signing.key_file: expected a path or {env: NAME}");
                continue;
            }
            get_list(l, v, "signing.key_file", &one, &n, 1); /* relative to the file */
            if (n)
                set_str(&c->signing.key_file, one[0]);
            free_list(&one, &n);
        } else if (!strcmp(k, "key_env")) {
            get_str(l, v, "signing.key_env", &c->signing.key_env);
        } else {
            get_str(l, v, "signing.key_id", &c->signing.key_id);
        }
    }
}

/* The operational keys: metrics, watch, log_format, log_level. */
static void load_ops(struct ld *l, const char *k, const struct dg_ynode *v)
{
    struct dg_config *c = l->c;
    const char *t;

    if (!strcmp(k, "metrics")) {
        get_str(l, v, "metrics", &c->metrics);
        return;
    }
    if (!(t = text_of(l, v, k)))
        return;
    if (!strcmp(k, "watch")) {
        if (!strcmp(t, "true") || !strcmp(t, "false"))
            c->watch = !strcmp(t, "true");
        else
            err_at(l, v, "watch: expected true or false, got '%s'", t);
    } else if (!strcmp(k, "log_format")) {
        int f = dg_log_format_parse(t);
        if (f < 0)
            err_at(l, v, "log_format: expected 'text' or 'json', got '%s'", t);
        else
            c->log_format = f;
    } else if (!strcmp(k, "log_level")) {
        int lv = dg_log_level_parse(t);
        if (lv < 0)
            err_at(l, v, "log_level: expected debug, info, warn or error, got '%s'", t);
        else
            c->log_level = lv;
    }
}

static void load_root(struct ld *l, const struct dg_ynode *root)
{
    struct dg_config *c = l->c;
    if (root->kind != DG_Y_MAP) {
        err_at(l, root, "the configuration must be a mapping of keys (brokers, rules, ...), not a %s",
               kind_name(root->kind));
        return;
    }
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        if (!known_key(l, root, i, top_keys, DG_ARRAY_LEN(top_keys), "config"))
            continue;
        const char *k = root->kids[i]->text;
        const struct dg_ynode *v = root->kids[i + 1];
        if (!strcmp(k, "brokers")) {
            char **list = NULL;
            size_t n = 0;
            get_list(l, v, "brokers", &list, &n, 0);
            if (n) {
                dg_buf b = {0};
                for (size_t j = 0; j < n; j++)
                    dg_buf_printf(&b, "%s%s", j ? "," : "", list[j]);
                free(c->brokers);
                c->brokers = b.data;
            }
            free_list(&list, &n);
        } else if (!strcmp(k, "group"))
            get_str(l, v, "group", &c->group);
        else if (!strcmp(k, "input_topics"))
            get_list(l, v, "input_topics", &c->input_topics, &c->ninput_topics, 0);
        else if (!strcmp(k, "decisions_topic"))
            get_str(l, v, "decisions_topic", &c->decisions_topic);
        else if (!strcmp(k, "dlq_topic"))
            get_str(l, v, "dlq_topic", &c->dlq_topic);
        else if (!strcmp(k, "rules"))
            get_list(l, v, "rules", &c->rules, &c->nrules, 1);
        else if (!strcmp(k, "batch")) {
            int b = (int)c->batch;
            get_int(l, v, "batch", 1, 65536, &b);
            c->batch = (size_t)b;
        } else if (!strcmp(k, "linger_ms"))
            get_int(l, v, "linger_ms", 0, 60000, &c->linger_ms);
        else if (!strcmp(k, "max_future"))
            get_duration(l, v, "max_future", &c->max_future_ms);
        else if (!strcmp(k, "dedupe_window"))
            get_duration(l, v, "dedupe_window", &c->dedupe_ms);
        else if (!strcmp(k, "lateness"))
            get_duration(l, v, "lateness", &c->lateness_ms);
        else if (!strcmp(k, "state"))
            load_state(l, v);
        else if (!strcmp(k, "redis"))
            load_redis(l, v);
        else if (!strcmp(k, "kafka"))
            load_kafka(l, v);
        else if (!strcmp(k, "signing"))
            load_signing(l, v);
        else
            load_ops(l, k, v);
    }
}

struct dg_config *dg_config_new(void)
{
    struct dg_config *c = dg_xcalloc(1, sizeof(*c));
    c->group = dg_xstrdup("drainguard");
    add_list(&c->input_topics, &c->ninput_topics, "withdrawal-events");
    c->decisions_topic = dg_xstrdup("withdrawal-decisions");
    c->dlq_topic = dg_xstrdup("withdrawal-events-dlq");
    c->batch = 500;
    c->linger_ms = 0;
    c->max_future_ms = 10 * 60 * 1000;
    c->dedupe_ms = 24LL * 3600 * 1000;
    c->lateness_ms = 3600LL * 1000;
    c->state = DG_STATE_REDIS;
    c->redis.host = dg_xstrdup("127.0.0.1");
    c->redis.port = 6379;
    c->redis.prefix = dg_xstrdup("dg:");
    c->redis.timeout_ms = 2000;
    c->log_format = DG_LOG_TEXT;
    c->log_level = DG_LOG_INFO;
    return c;
}

void dg_config_free(struct dg_config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->brokers);
    free(c->group);
    free_list(&c->input_topics, &c->ninput_topics);
    free(c->decisions_topic);
    free(c->dlq_topic);
    free_list(&c->rules, &c->nrules);
    free(c->redis.host);
    free(c->redis.unix_path);
    free(c->redis.user);
    if (c->redis.password) {
        /* do not leave the secret in freed memory */
        memset(c->redis.password, 0, strlen(c->redis.password));
        free(c->redis.password);
    }
    free(c->redis.prefix);
    free(c->metrics);
    free(c->signing.key_file);
    free(c->signing.key_env);
    free(c->signing.key_id);
    kv_free(&c->kafka);
    kv_free(&c->kafka_consumer);
    kv_free(&c->kafka_producer);
    free(c);
}

int dg_config_load(struct dg_config *c, const char *path, struct dg_diag *diag)
{
    struct ld l = {c, path, diag, 0};
    struct dg_ynode *root = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    int rc = -1;

    if (!f) {
        struct dg_srcpos p = {NULL, 0, 0};
        dg_diag_add(diag, 1, &p, "cannot read config '%s': %s", path, strerror(errno));
        return -1;
    }
    buf = dg_xmalloc(MAX_CONFIG_BYTES + 1);
    len = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
    if (ferror(f)) {
        struct dg_srcpos p = {NULL, 0, 0};
        dg_diag_add(diag, 1, &p, "cannot read config '%s': %s", path, strerror(errno));
        goto out_buf;
    }
    if (len > MAX_CONFIG_BYTES) {
        err_at(&l, NULL, "config file larger than %d MiB", MAX_CONFIG_BYTES >> 20);
        goto out_buf;
    }
    if (dg_yaml_parse(path, buf, len, &root, diag) != 0)
        goto out_buf;
    load_root(&l, root);
    if (!l.errors) {
        set_str(&c->path, path);
        rc = 0;
    }
    dg_ynode_free(root);
out_buf:
    free(buf);
    fclose(f);
    return rc;
}

static int set_redis_addr(struct dg_config *c, const char *v, char *err, size_t errsz)
{
    if (!strncmp(v, "unix:", 5)) {
        if (!v[5]) {
            snprintf(err, errsz, "--redis: 'unix:' needs a socket path");
            return -1;
        }
        set_str(&c->redis.unix_path, v + 5);
        return 0;
    }
    const char *host = v, *colon;
    size_t hlen;
    if (v[0] == '[') { /* [::1]:6379 */
        const char *close = strchr(v, ']');
        if (!close || (close[1] && close[1] != ':')) {
            snprintf(err, errsz, "--redis: bad address '%s' (write HOST:PORT or unix:PATH)", v);
            return -1;
        }
        host = v + 1;
        hlen = (size_t)(close - host);
        colon = close[1] ? close + 1 : NULL;
    } else {
        colon = strrchr(v, ':');
        hlen = colon ? (size_t)(colon - v) : strlen(v);
    }
    long port = c->redis.port;
    if (!hlen || (colon && parse_int(colon + 1, 1, 65535, &port) != 0)) {
        snprintf(err, errsz, "--redis: bad address '%s' (write HOST:PORT or unix:PATH)", v);
        return -1;
    }
    free(c->redis.host);
    c->redis.host = dg_xstrndup(host, hlen);
    c->redis.port = (int)port;
    free(c->redis.unix_path); /* an address on the command line wins over the file's socket */
    c->redis.unix_path = NULL;
    return 0;
}

int dg_config_set(struct dg_config *c, const char *key, const char *val, char *err, size_t errsz)
{
    long n;
    int64_t ms;

    if (!*val && strcmp(key, "redis")) {
        snprintf(err, errsz, "--%s: needs a value", key);
        return -1;
    }
    if (!strcmp(key, "brokers"))
        set_str(&c->brokers, val);
    else if (!strcmp(key, "group"))
        set_str(&c->group, val);
    else if (!strcmp(key, "decisions_topic"))
        set_str(&c->decisions_topic, val);
    else if (!strcmp(key, "dlq_topic"))
        set_str(&c->dlq_topic, val);
    else if (!strcmp(key, "input_topics")) {
        char *copy = dg_xstrdup(val), *save = NULL;
        free_list(&c->input_topics, &c->ninput_topics);
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (*t)
                add_list(&c->input_topics, &c->ninput_topics, t);
        free(copy);
        if (!c->ninput_topics) {
            snprintf(err, errsz, "--input-topics: no topic in '%s'", val);
            return -1;
        }
    } else if (!strcmp(key, "rules")) {
        if (!c->rules_from_flags++)
            free_list(&c->rules, &c->nrules);
        add_list(&c->rules, &c->nrules, val);
    } else if (!strcmp(key, "state")) {
        if (!strcmp(val, "redis"))
            c->state = DG_STATE_REDIS;
        else if (!strcmp(val, "memory"))
            c->state = DG_STATE_MEMORY;
        else {
            snprintf(err, errsz, "--state: expected 'redis' or 'memory', got '%s'", val);
            return -1;
        }
    } else if (!strcmp(key, "batch")) {
        if (parse_int(val, 1, 65536, &n) != 0) {
            snprintf(err, errsz, "--batch: expected a number from 1 to 65536, got '%s'", val);
            return -1;
        }
        c->batch = (size_t)n;
    } else if (!strcmp(key, "linger_ms")) {
        if (parse_int(val, 0, 60000, &n) != 0) {
            snprintf(err, errsz, "--linger-ms: expected a number from 0 to 60000, got '%s'", val);
            return -1;
        }
        c->linger_ms = (int)n;
    } else if (!strcmp(key, "redis")) {
        return set_redis_addr(c, val, err, errsz);
    } else if (!strcmp(key, "metrics")) {
        set_str(&c->metrics, val);
    } else if (!strcmp(key, "watch")) {
        if (strcmp(val, "true") && strcmp(val, "false")) {
            snprintf(err, errsz, "--watch: expected true or false, got '%s'", val);
            return -1;
        }
        c->watch = !strcmp(val, "true");
    } else if (!strcmp(key, "log_format")) {
        if ((n = dg_log_format_parse(val)) < 0) {
            snprintf(err, errsz, "--log-format: expected 'text' or 'json', got '%s'", val);
            return -1;
        }
        c->log_format = (int)n;
    } else if (!strcmp(key, "log_level")) {
        if ((n = dg_log_level_parse(val)) < 0) {
            snprintf(err, errsz, "--log-level: expected debug, info, warn or error, got '%s'", val);
            return -1;
        }
        c->log_level = (int)n;
    } else if (!strcmp(key, "sign_key_file")) {
        set_str(&c->signing.key_file, val);
    } else if (!strcmp(key, "sign_key_env")) {
        set_str(&c->signing.key_env, val);
    } else if (!strcmp(key, "sign_key_id")) {
        set_str(&c->signing.key_id, val);
    } else if (!strcmp(key, "max_future") || !strcmp(key, "dedupe_window") ||
               !strcmp(key, "lateness")) {
        if (dg_duration_parse(val, strlen(val), &ms) != 0 || ms < 0) {
            snprintf(err, errsz, "--%s: bad duration '%s' (write e.g. 90s, 10m, 24h, 7d)", key, val);
            return -1;
        }
        if (!strcmp(key, "max_future"))
            c->max_future_ms = ms;
        else if (!strcmp(key, "dedupe_window"))
            c->dedupe_ms = ms;
        else
            c->lateness_ms = ms;
    } else {
        snprintf(err, errsz, "unknown setting '%s'", key);
        return -1;
    }
    return 0;
}

int dg_config_check(const struct dg_config *c, char *err, size_t errsz)
{
    if (!c->brokers || !*c->brokers) {
        snprintf(err, errsz, "no brokers: set 'brokers' in the config file or pass --brokers HOST:PORT");
        return -1;
    }
    if (!c->nrules) {
        snprintf(err, errsz, "no rules: set 'rules' in the config file or pass --rules FILE");
        return -1;
    }
    for (size_t i = 0; i < c->ninput_topics; i++) {
        const char *t = c->input_topics[i];
        if (!strcmp(t, c->decisions_topic) || !strcmp(t, c->dlq_topic)) {
            snprintf(err, errsz, "input topic '%s' is also the %s topic: the engine would read its own output",
                     t, strcmp(t, c->dlq_topic) ? "decisions" : "dead-letter");
            return -1;
        }
    }
    if (!strcmp(c->decisions_topic, c->dlq_topic)) {
        snprintf(err, errsz, "decisions_topic and dlq_topic are both '%s'", c->dlq_topic);
        return -1;
    }
    return 0;
}

int dg_config_is_secret(const char *key)
{
    static const char *const marks[] = {"password", "secret", "jaas", "ssl.key.pem",
                                        "oauthbearer.config", "token", "credential"};
    for (size_t i = 0; i < DG_ARRAY_LEN(marks); i++)
        if (strstr(key, marks[i]))
            return 1;
    return 0;
}

static void summary_kv(dg_buf *out, const char *name, const struct dg_kvlist *l)
{
    if (!l->n)
        return;
    dg_buf_printf(out, "%s:", name);
    for (size_t i = 0; i < l->n; i++)
        dg_buf_printf(out, " %s=%s", l->v[i].key,
                      dg_config_is_secret(l->v[i].key) ? "(set)" : l->v[i].val);
    dg_buf_putc(out, '\n');
}

void dg_config_summary(const struct dg_config *c, dg_buf *out)
{
    char d1[32], d2[32], d3[32];

    dg_buf_printf(out, "config: %s\n", c->path ? c->path : "(no file: defaults and flags)");
    dg_buf_printf(out, "brokers: %s; group: %s\n", c->brokers ? c->brokers : "(none)", c->group);
    dg_buf_puts(out, "topics: in");
    for (size_t i = 0; i < c->ninput_topics; i++)
        dg_buf_printf(out, "%s%s", i ? "," : " ", c->input_topics[i]);
    dg_buf_printf(out, "; decisions %s; dead letters %s\n", c->decisions_topic, c->dlq_topic);
    dg_buf_puts(out, "rules:");
    for (size_t i = 0; i < c->nrules; i++)
        dg_buf_printf(out, " %s", c->rules[i]);
    dg_buf_putc(out, '\n');
    dg_duration_format(c->max_future_ms, d1);
    dg_duration_format(c->dedupe_ms, d2);
    dg_duration_format(c->lateness_ms, d3);
    dg_buf_printf(out, "batch: %zu events or %d ms; max_future %s; dedupe_window %s; lateness %s\n",
                  c->batch, c->linger_ms, d1, d2, d3);
    if (c->state == DG_STATE_MEMORY) {
        dg_buf_puts(out, "state: memory (development only: not shared between instances, lost on exit)\n");
    } else {
        if (c->redis.unix_path)
            dg_buf_printf(out, "state: redis unix:%s", c->redis.unix_path);
        else
            dg_buf_printf(out, "state: redis %s:%d", c->redis.host, c->redis.port);
        dg_buf_printf(out, " db %d prefix '%s' timeout %d ms", c->redis.db, c->redis.prefix,
                      c->redis.timeout_ms);
        if (c->redis.user)
            dg_buf_printf(out, " user '%s'", c->redis.user);
        if (c->redis.password)
            dg_buf_puts(out, " password (set)");
        dg_buf_putc(out, '\n');
    }
    dg_buf_printf(out, "metrics: %s%s%s\n", c->metrics ? "http://" : "off",
                  c->metrics ? c->metrics : "", c->metrics ? "/metrics, /healthz, /readyz" : "");
    dg_buf_printf(out, "rule reload: on SIGHUP%s; log: %s, level %s\n",
                  c->watch ? " and when a rule file changes (watch)" : "",
                  c->log_format == DG_LOG_JSON ? "json" : "text", dg_log_level_name(c->log_level));
    summary_kv(out, "kafka", &c->kafka);
    summary_kv(out, "kafka.consumer", &c->kafka_consumer);
    summary_kv(out, "kafka.producer", &c->kafka_producer);
}

void dg_config_redis_opts(const struct dg_config *c, struct dg_redis_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = c->redis.host;
    o->port = c->redis.port;
    o->unix_path = c->redis.unix_path;
    o->user = c->redis.user;
    o->password = c->redis.password;
    o->db = c->redis.db;
    o->prefix = c->redis.prefix;
    o->timeout_ms = c->redis.timeout_ms;
    o->dedupe_ms = c->dedupe_ms;
    o->lateness_ms = c->lateness_ms;
}
