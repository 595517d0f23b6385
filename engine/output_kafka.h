/*
 * output_kafka.h - Kafka out, the last stage of the pipeline: an idempotent
 * producer (acks=all) for decisions and dead letters, with delivery reports
 * counted per round (the messages sent between two closes of a round), so
 * the caller knows when everything of a round was acknowledged while later
 * rounds are already on their way. output_kafka.c is the only file that
 * produces with librdkafka.
 */
#ifndef DG_OUTPUT_KAFKA_H
#define DG_OUTPUT_KAFKA_H

#include <stddef.h>
#include "config.h"

struct dg_header {
    const char *name;
    const char *value;
    size_t len;
};

typedef struct dg_producer dg_producer;

/* Create the producer. The properties of cfg->kafka and cfg->kafka_producer
 * are passed to librdkafka unchanged (a refused one is reported as
 * FILE:LINE:COL: message in err). name prefixes its error lines
 * ("drainguard NAME: kafka producer: ..."). NULL on failure. */
dg_producer *dg_producer_new(const struct dg_config *cfg, const char *name, char *err,
                             size_t errsz);

/* Queue one message (key and value are copied). A message that cannot even
 * be queued counts as failed in this round. Returns 0 when queued, -1 when
 * not (errstr of the round set). */
int dg_producer_send(dg_producer *p, const char *topic, const void *key, size_t key_len,
                     const void *value, size_t len, const struct dg_header *h, size_t nh);

/* Look up the partitions of the topics this producer will send to, waiting
 * at most timeout_ms in all: librdkafka learns them only on the first send
 * otherwise, and holds the first messages about a second. Returns how many
 * topics are still unknown (logged; their messages wait as they would). */
size_t dg_producer_prepare(dg_producer *p, const char *const *topics, size_t n, int timeout_ms);

/* Rounds tracked at once (the open one included). */
#define DG_PRODUCER_MAX_ROUNDS 16

/* Close the open round (the messages sent since the last close) and open
 * the next; returns the closed round's id. */
uint64_t dg_producer_close_round(dg_producer *p);

/* 1 when no further round can be closed before the oldest is forgotten. */
int dg_producer_rounds_full(const dg_producer *p);

/* Serve delivery reports for up to timeout_ms (0: only what has arrived).
 * After a fatal idempotence error the producer is rebuilt here (what it
 * had in flight is reported failed), so later rounds can succeed. */
void dg_producer_serve(dg_producer *p, int timeout_ms);

/* 1 when every message of closed round id has its delivery report, with
 * how many failed (and the first reason in err); 0 while some are out. */
int dg_producer_round_done(dg_producer *p, uint64_t id, size_t *failed, char *err, size_t errsz);

/* Wait for round id (librdkafka's message.timeout.ms bounds the wait).
 * Returns how many were not delivered, with the first reason in err. */
size_t dg_producer_wait_round(dg_producer *p, uint64_t id, char *err, size_t errsz);

/* Stop tracking the rounds before id (their late reports are ignored). */
void dg_producer_forget_until(dg_producer *p, uint64_t id);

/* Close the round and wait for it, then forget it: what a tool that
 * sends and waits needs. Returns how many were not delivered. */
size_t dg_producer_wait(dg_producer *p, char *err, size_t errsz);

/* Messages acknowledged in total (for summaries). */
unsigned long long dg_producer_acked(const dg_producer *p);

/* Flush what is queued (up to timeout_ms) and free. */
void dg_producer_free(dg_producer *p, int timeout_ms);

#endif
