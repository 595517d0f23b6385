/*
 * output_kafka.h - Kafka out, the last stage of the pipeline: an idempotent
 * producer (acks=all) for decisions and dead letters, with delivery reports
 * counted per round so the caller knows when everything it sent since the
 * last dg_producer_wait() was acknowledged. output_kafka.c is the only file
 * that produces with librdkafka.
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

/* Wait for the delivery report of every message sent since the last call
 * (librdkafka's message.timeout.ms bounds the wait). Returns how many were
 * not delivered, with the first reason in err; 0 when all were
 * acknowledged. Starts a new round. After a fatal idempotence error the
 * producer is rebuilt here, so the next round can succeed. */
size_t dg_producer_wait(dg_producer *p, char *err, size_t errsz);

/* Messages acknowledged in total (for summaries). */
unsigned long long dg_producer_acked(const dg_producer *p);

/* Flush what is queued (up to timeout_ms) and free. */
void dg_producer_free(dg_producer *p, int timeout_ms);

#endif
