/*
 * config.h - the configuration of `drainguard run`: a YAML file (see
 * docs/config.md and docker/drainguard.yaml) merged with command-line flags.
 * config.c reads the file through dg_yaml_parse and knows nothing of Kafka
 * or Redis; source_kafka.c and output_kafka.c hand the `kafka:` properties
 * to librdkafka, window_redis.c takes the `redis:` part as dg_redis_opts.
 */
#ifndef DG_CONFIG_H
#define DG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "rules.h"
#include "state.h"
#include "util.h"

enum { DG_STATE_REDIS = 0, DG_STATE_MEMORY };

/* One librdkafka property, as written in the file (line and col 0 when it
 * did not come from the file). */
struct dg_kv {
    char *key;
    char *val;
    int line, col;
};

struct dg_kvlist {
    struct dg_kv *v;
    size_t n;
};

struct dg_config {
    char *path;                  /* the config file; NULL when none */
    char *brokers;               /* bootstrap list; NULL until set */
    char *group;
    char **input_topics;
    size_t ninput_topics;
    char *decisions_topic;
    char *dlq_topic;
    char **rules;                /* files or directories */
    size_t nrules;
    size_t batch;                /* most events per batch */
    int linger_ms;               /* longest wait to fill a batch */
    int64_t max_future_ms;       /* ts further ahead of the wall clock: bad input */
    int64_t dedupe_ms;
    int64_t lateness_ms;
    int state;                   /* DG_STATE_* */
    struct {
        char *host;
        int port;
        char *unix_path;
        char *user;
        char *password;          /* secret: never printed */
        int db;
        char *prefix;
        int timeout_ms;
    } redis;
    struct dg_kvlist kafka;          /* both consumer and producer */
    struct dg_kvlist kafka_consumer; /* consumer only (applied after kafka) */
    struct dg_kvlist kafka_producer; /* producer only (applied after kafka) */
    int rules_from_flags;        /* --rules given: it replaces the file's list */
    char *metrics;               /* HOST:PORT of /metrics, /healthz, /readyz; NULL: off */
    int watch;                   /* reload when a rule file's mtime changes */
    int log_format;              /* DG_LOG_TEXT or DG_LOG_JSON (log.h) */
    int log_level;               /* DG_LOG_DEBUG .. DG_LOG_ERROR */
    struct {                     /* signed decisions (docs/signing.md); sign.c */
        char *key_file;          /* reads the key: only names are kept here */
        char *key_env;           /* the name of the variable, not its value */
        char *key_id;
    } signing;
};

/* A configuration holding the defaults. Free with dg_config_free(). */
struct dg_config *dg_config_new(void);
void dg_config_free(struct dg_config *c);

/* Read the YAML file at path into c (keys it sets replace the defaults).
 * Returns 0, or -1 with every problem added to diag as FILE:LINE:COL:
 * message. `{env: NAME}` values are resolved here. Relative rule paths are
 * taken relative to the file's directory. */
int dg_config_load(struct dg_config *c, const char *path, struct dg_diag *diag);

/* Set one value from a command-line flag. key is the file's name for it
 * ("brokers", "group", "input_topics" (comma-separated), "decisions_topic",
 * "dlq_topic", "rules" (one path; replaces the file's list on the first
 * call, adds on later calls), "state", "batch", "linger_ms", "redis"
 * (HOST:PORT or unix:PATH), "max_future", "dedupe_window", "lateness",
 * "metrics" (HOST:PORT), "watch" ("true" or "false"), "log_format" (text,
 * json), "log_level" (debug, info, warn, error), "sign_key_file",
 * "sign_key_env", "sign_key_id" (signing.*)).
 * Returns 0, or -1 with a message in err. */
int dg_config_set(struct dg_config *c, const char *key, const char *val, char *err,
                  size_t errsz);

/* Final checks once file and flags are merged (brokers and rules given).
 * Returns 0, or -1 with a message in err. */
int dg_config_check(const struct dg_config *c, char *err, size_t errsz);

/* One line per setting, for the start-up log. Secrets (redis.password and
 * every kafka property that holds one) show as "(set)". */
void dg_config_summary(const struct dg_config *c, dg_buf *out);

/* Does this librdkafka property hold a secret (never to be logged)? */
int dg_config_is_secret(const char *key);

/* The Redis backend's options; strings point into c. */
void dg_config_redis_opts(const struct dg_config *c, struct dg_redis_opts *o);

#endif
