/*
 * source_kafka.h - Kafka in: a consumer in a consumer group that hands out
 * batches of messages, stores offsets only when told to, and can pause,
 * resume and seek back. source_kafka.c is the only file that consumes with
 * librdkafka; `run` and `consume` use it through this handle.
 */
#ifndef DG_SOURCE_KAFKA_H
#define DG_SOURCE_KAFKA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "config.h"

/* One message. Its pointers stay valid until dg_consumer_release(). */
struct dg_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key;       /* NULL when the message has none */
    size_t key_len;
    const char *value;     /* NULL for an empty (tombstone) message */
    size_t len;
    void *priv;            /* the adapter's */
};

/* A topic partition and an offset (the next offset to read, for stores and
 * seeks). */
struct dg_tp {
    const char *topic;
    int32_t partition;
    int64_t offset;
};

typedef struct dg_consumer dg_consumer;

/* Called from inside dg_consumer_poll() / dg_consumer_idle() when the group
 * takes partitions away, before they are gone: the caller drops what it
 * holds of them (nothing of theirs is stored after this). */
typedef void (*dg_revoke_fn)(void *ud, const struct dg_tp *tps, size_t n);

struct dg_consumer_opts {
    const char *group;            /* NULL: cfg->group */
    const char *const *topics;    /* NULL: cfg->input_topics */
    size_t ntopics;
    int tool;                     /* 1: read every partition from the beginning,
                                     never commit (drainguard consume) */
    const char *log_name;         /* "run": log group changes as
                                     "drainguard run: ..."; NULL: quiet */
    dg_revoke_fn on_revoke;
    void *ud;
};

/* Create the consumer and subscribe (or, for the tool, assign). The
 * properties of cfg->kafka and cfg->kafka_consumer are passed to librdkafka
 * unchanged; a property librdkafka refuses is reported as
 * FILE:LINE:COL: message in err. NULL on failure. */
dg_consumer *dg_consumer_new(const struct dg_config *cfg, const struct dg_consumer_opts *o,
                             char *err, size_t errsz);

/* Wait up to wait_ms for a first message, then collect more until max
 * messages or linger_ms after the first. Returns the number of messages in
 * out (release them with dg_consumer_release), or -1 on a fatal consumer
 * error (dg_consumer_error()). Messages of partitions revoked while the
 * batch was being collected are dropped before it is returned. */
ssize_t dg_consumer_poll(dg_consumer *c, struct dg_msg *out, size_t max, int wait_ms,
                         int linger_ms);
void dg_consumer_release(dg_consumer *c, struct dg_msg *m, size_t n);

/* Serve the group (heartbeats, rebalances) for about ms without taking
 * work: while paused, so membership survives a long wait. A message that
 * arrives anyway (a partition assigned during the wait) is kept for the
 * next dg_consumer_poll(). Returns 0, or -1 on a fatal error. */
int dg_consumer_idle(dg_consumer *c, int ms);

/* Pause every assigned partition (and any assigned while paused); returns
 * how many. dg_consumer_resume() resumes exactly those still assigned;
 * returns how many. */
size_t dg_consumer_pause(dg_consumer *c);
size_t dg_consumer_resume(dg_consumer *c);
int dg_consumer_paused(const dg_consumer *c);

/* Seek partitions back to tps[i].offset (only those still assigned): their
 * messages from there on will be read again. 0, or -1 with the error. */
int dg_consumer_seek(dg_consumer *c, const struct dg_tp *tps, size_t n);

/* Store offsets (tps[i].offset is the next offset to read: last + 1) for
 * the next commit. Partitions no longer assigned are skipped. 0, or -1. */
int dg_consumer_store(dg_consumer *c, const struct dg_tp *tps, size_t n);

/* Commit the stored offsets now, synchronously. 0 (also when there was
 * nothing to commit); 1 when the group is rebalancing and the commit was
 * refused (harmless: the next owner reads those events again and gets their
 * stored decisions); -1 on any other error. */
int dg_consumer_commit(dg_consumer *c);

size_t dg_consumer_assigned(const dg_consumer *c);
const char *dg_consumer_error(const dg_consumer *c);

/* The i-th header of m: 0 with name and value, -1 when there is none. */
int dg_msg_header(const struct dg_msg *m, size_t i, const char **name, const void **value,
                  size_t *len);

/* The message's Kafka timestamp (producer's CreateTime or the broker's
 * LogAppendTime), epoch milliseconds; -1 when it has none. */
int64_t dg_msg_timestamp(const struct dg_msg *m);

/* For metrics. Consumer lag of each assigned partition: the high watermark
 * librdkafka last saw (from fetch responses; no request is made) minus the
 * position (the next offset the engine will take). Fills up to max entries
 * of out (offset = lag; partitions with no position yet are skipped) and
 * returns how many. Engine thread only. */
size_t dg_consumer_lag(dg_consumer *c, struct dg_tp *out, size_t max);

/* Has the consumer joined its group (it has a member id)? Engine thread. */
int dg_consumer_joined(dg_consumer *c);

/* Can a broker be reached now? Asks one for metadata, waiting up to
 * timeout_ms. 0, or -1 with the reason in err. Safe from any thread (it
 * touches only the librdkafka handle, which is thread-safe). */
int dg_consumer_ping(dg_consumer *c, int timeout_ms, char *err, size_t errsz);

/* Commit (unless a tool), leave the group (rd_kafka_consumer_close), free.
 * Returns 0, or -1 when the final commit failed. */
int dg_consumer_close(dg_consumer *c);

#endif
