/*
 * metrics.h - Prometheus metrics and the health endpoints of `run`.
 *
 * A registry of metric families (counters, gauges, histograms, each with
 * fixed label names) that the engine thread updates and the HTTP thread
 * renders in the Prometheus text format (version 0.0.4). One mutex guards
 * the registry: the engine updates once per batch, the scraper reads every
 * few seconds, so it is never contended in practice.
 *
 * The HTTP server (libmicrohttpd, its own thread; metrics.c is the only
 * file that includes microhttpd.h) serves
 *   GET /metrics  the registry
 *   GET /healthz  200 "ok" while the process is up
 *   GET /readyz   200 "ready" when the ready callback says so, else 503
 *                 with its reason
 * and 404 for anything else.
 */
#ifndef DG_METRICS_H
#define DG_METRICS_H

#include <stddef.h>
#include "util.h"

enum { DG_METRIC_COUNTER = 0, DG_METRIC_GAUGE, DG_METRIC_HISTOGRAM };

typedef struct dg_metrics dg_metrics;

dg_metrics *dg_metrics_new(void);
void dg_metrics_free(dg_metrics *m);

/* Declare a family before serving. name and help are copied. labels is a
 * NULL-terminated list of label names (NULL: none). buckets: a histogram's
 * upper bounds, ascending (+Inf is added); ignored for other types. Returns
 * the family's id for the calls below. */
int dg_metrics_declare(dg_metrics *m, int type, const char *name, const char *help,
                       const char *const *labels, const double *buckets, size_t nbuckets);

/* values: one label value per label name, in declaration order (NULL when
 * the family has no labels). A new combination creates its series. */
void dg_metrics_add(dg_metrics *m, int fam, const char *const *values, double v);     /* counter, gauge */
void dg_metrics_set(dg_metrics *m, int fam, const char *const *values, double v);     /* gauge */
void dg_metrics_observe(dg_metrics *m, int fam, const char *const *values, double v); /* histogram */
/* Drop every series of a family (a gauge whose label set changed: the
 * partitions after a rebalance, the rules version after a reload). */
void dg_metrics_clear(dg_metrics *m, int fam);
/* A counter's or gauge's value, a histogram's count (0 when the series
 * does not exist): for tests. */
double dg_metrics_get(dg_metrics *m, int fam, const char *const *values);

/* The whole registry in the text format, appended to out. */
void dg_metrics_render(dg_metrics *m, dg_buf *out);

/* Readiness: 1 when ready; 0 with the reason in why. Called on the HTTP
 * thread: it must only read what is safe to read from there. */
typedef int (*dg_ready_fn)(void *ud, char *why, size_t whysz);

typedef struct dg_httpd dg_httpd;

/* Serve on addr ("HOST:PORT", "[V6]:PORT"; port 0 picks a free one) in a
 * thread of its own. NULL with a message in err when the address is bad or
 * cannot be bound. m and ud must outlive the server. */
dg_httpd *dg_metrics_serve(dg_metrics *m, const char *addr, dg_ready_fn ready, void *ud,
                           char *err, size_t errsz);
/* The port actually bound (useful with port 0). */
int dg_metrics_port(const dg_httpd *h);
/* Stop the thread, close the socket, free. NULL is fine. */
void dg_metrics_stop(dg_httpd *h);

#endif
