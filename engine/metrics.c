/*
 * metrics.c - the metrics registry and the HTTP endpoints of `run`
 * (metrics.h): /metrics in the Prometheus text format, /healthz, /readyz.
 * Sits beside the pipeline, not in it: the engine thread adds a batch's
 * figures once the batch was delivered; the HTTP thread renders.
 *
 * The only file that includes microhttpd.h. Owns the registry (families,
 * their series, one mutex) and the libmicrohttpd daemon and its thread.
 *
 * Series are found by a linear search over label values: a family holds a
 * few dozen series at most (rules x modes, partitions, event types), and
 * the engine updates once per batch, so this costs microseconds per batch.
 */
#include "metrics.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_LABELS 4
#define MAX_BUCKETS 32
#define MAX_SERIES 4096 /* per family: a bound on hostile label values
                           (rule ids, topics); beyond it updates are dropped */

struct series {
    char *values[MAX_LABELS];
    double value;                     /* counter, gauge */
    unsigned long long *counts;       /* histogram: per bucket (not cumulative), +Inf last */
    double sum;
    unsigned long long count;
};

struct family {
    int type;
    char *name, *help;
    char *labels[MAX_LABELS];
    int nlabels;
    double buckets[MAX_BUCKETS];
    size_t nbuckets;
    struct series *s;
    size_t n, cap;
};

struct dg_metrics {
    pthread_mutex_t lock;
    struct family *f;
    size_t n;
};

dg_metrics *dg_metrics_new(void)
{
    dg_metrics *m = dg_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void series_free(struct family *f, struct series *s)
{
    for (int i = 0; i < f->nlabels; i++)
        free(s->values[i]);
    free(s->counts);
}

void dg_metrics_free(dg_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        struct family *f = &m->f[i];
        for (size_t k = 0; k < f->n; k++)
            series_free(f, &f->s[k]);
        free(f->s);
        for (int l = 0; l < f->nlabels; l++)
            free(f->labels[l]);
        free(f->name);
        free(f->help);
    }
    free(m->f);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The series of these label values, created when new; NULL past the bound.
 * Called with the lock held. */
static struct series *series_get(struct family *f, const char *const *values, int create)
{
    for (size_t k = 0; k < f->n; k++) {
        int l = 0;
        while (l < f->nlabels && !strcmp(f->s[k].values[l], values[l] ? values[l] : ""))
            l++;
        if (l == f->nlabels)
            return &f->s[k];
    }
    if (!create || f->n >= MAX_SERIES)
        return NULL;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->s = dg_xrealloc(f->s, f->cap * sizeof(*f->s));
    }
    struct series *s = &f->s[f->n++];
    memset(s, 0, sizeof(*s));
    for (int l = 0; l < f->nlabels; l++)
        s->values[l] = dg_xstrdup(values[l] ? values[l] : "");
    if (f->type == DG_METRIC_HISTOGRAM)
        s->counts = dg_xcalloc(f->nbuckets + 1, sizeof(*s->counts));
    return s;
}

int dg_metrics_declare(dg_metrics *m, int type, const char *name, const char *help,
                       const char *const *labels, const double *buckets, size_t nbuckets)
{
    pthread_mutex_lock(&m->lock);
    m->f = dg_xrealloc(m->f, (m->n + 1) * sizeof(*m->f));
    struct family *f = &m->f[m->n];
    memset(f, 0, sizeof(*f));
    f->type = type;
    f->name = dg_xstrdup(name);
    f->help = dg_xstrdup(help);
    for (; labels && labels[f->nlabels] && f->nlabels < MAX_LABELS; f->nlabels++)
        f->labels[f->nlabels] = dg_xstrdup(labels[f->nlabels]);
    if (type == DG_METRIC_HISTOGRAM) {
        f->nbuckets = nbuckets < MAX_BUCKETS ? nbuckets : MAX_BUCKETS;
        memcpy(f->buckets, buckets, f->nbuckets * sizeof(double));
    }
    /* an unlabelled family has its one series from the start: a counter
     * that never moved shows 0 rather than nothing */
    if (!f->nlabels)
        series_get(f, NULL, 1);
    int id = (int)m->n++;
    pthread_mutex_unlock(&m->lock);
    return id;
}

void dg_metrics_add(dg_metrics *m, int fam, const char *const *values, double v)
{
    pthread_mutex_lock(&m->lock);
    struct series *s = series_get(&m->f[fam], values, 1);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&m->lock);
}

void dg_metrics_set(dg_metrics *m, int fam, const char *const *values, double v)
{
    pthread_mutex_lock(&m->lock);
    struct series *s = series_get(&m->f[fam], values, 1);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&m->lock);
}

void dg_metrics_observe(dg_metrics *m, int fam, const char *const *values, double v)
{
    pthread_mutex_lock(&m->lock);
    struct family *f = &m->f[fam];
    struct series *s = series_get(f, values, 1);
    if (s) {
        size_t b = 0;
        while (b < f->nbuckets && v > f->buckets[b])
            b++;
        s->counts[b]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&m->lock);
}

void dg_metrics_clear(dg_metrics *m, int fam)
{
    pthread_mutex_lock(&m->lock);
    struct family *f = &m->f[fam];
    for (size_t k = 0; k < f->n; k++)
        series_free(f, &f->s[k]);
    f->n = 0;
    if (!f->nlabels)
        series_get(f, NULL, 1);
    pthread_mutex_unlock(&m->lock);
}

double dg_metrics_get(dg_metrics *m, int fam, const char *const *values)
{
    double v = 0;
    pthread_mutex_lock(&m->lock);
    struct series *s = series_get(&m->f[fam], values, 0);
    if (s)
        v = m->f[fam].type == DG_METRIC_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&m->lock);
    return v;
}

/* ---- the text format ---- */

static void put_number(dg_buf *out, double v)
{
    if (v != v)
        dg_buf_puts(out, "NaN");
    else if (v > 1e308)
        dg_buf_puts(out, "+Inf");
    else if (v < -1e308)
        dg_buf_puts(out, "-Inf");
    else
        dg_buf_printf(out, "%.17g", v);
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label_value(dg_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            dg_buf_putc(out, '\\');
        if (*s == '\n') {
            dg_buf_puts(out, "\\n");
            continue;
        }
        dg_buf_putc(out, *s);
    }
}

/* {a="x",b="y"[,le="..."]}; nothing when there are no labels at all */
static void put_labels(dg_buf *out, const struct family *f, const struct series *s, const char *le)
{
    if (!f->nlabels && !le)
        return;
    dg_buf_putc(out, '{');
    for (int l = 0; l < f->nlabels; l++) {
        dg_buf_printf(out, "%s%s=\"", l ? "," : "", f->labels[l]);
        put_label_value(out, s->values[l]);
        dg_buf_putc(out, '"');
    }
    if (le)
        dg_buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    dg_buf_putc(out, '}');
}

/* HELP text: backslash and newline escaped */
static void put_help(dg_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            dg_buf_puts(out, "\\\\");
        else if (*s == '\n')
            dg_buf_puts(out, "\\n");
        else
            dg_buf_putc(out, *s);
    }
}

void dg_metrics_render(dg_metrics *m, dg_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        const struct family *f = &m->f[i];
        dg_buf_printf(out, "# HELP %s ", f->name);
        put_help(out, f->help);
        dg_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
        for (size_t k = 0; k < f->n; k++) {
            const struct series *s = &f->s[k];
            if (f->type != DG_METRIC_HISTOGRAM) {
                dg_buf_puts(out, f->name);
                put_labels(out, f, s, NULL);
                dg_buf_putc(out, ' ');
                put_number(out, s->value);
                dg_buf_putc(out, '\n');
                continue;
            }
            unsigned long long cum = 0;
            for (size_t b = 0; b <= f->nbuckets; b++) {
                char le[40];
                cum += s->counts[b];
                if (b < f->nbuckets)
                    snprintf(le, sizeof le, "%g", f->buckets[b]);
                else
                    snprintf(le, sizeof le, "+Inf");
                dg_buf_printf(out, "%s_bucket", f->name);
                put_labels(out, f, s, le);
                dg_buf_printf(out, " %llu\n", cum);
            }
            dg_buf_printf(out, "%s_sum", f->name);
            put_labels(out, f, s, NULL);
            dg_buf_putc(out, ' ');
            put_number(out, s->sum);
            dg_buf_printf(out, "\n%s_count", f->name);
            put_labels(out, f, s, NULL);
            dg_buf_printf(out, " %llu\n", s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- HTTP ---- */

struct dg_httpd {
    struct MHD_Daemon *d;
    dg_metrics *m;
    dg_ready_fn ready;
    void *ud;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct dg_httpd *h = cls;
    static const char text[] = "text/plain; charset=utf-8";
    (void)version;
    (void)upload;
    (void)con_cls;

    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, "only GET\n", 9);
    if (*upload_size)
        return reply(c, MHD_HTTP_BAD_REQUEST, text, "no body expected\n", 17);
    if (!strcmp(url, "/metrics")) {
        dg_buf b = {0};
        dg_metrics_render(h->m, &b);
        enum MHD_Result rc =
            reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
        dg_buf_free(&b);
        return rc;
    }
    if (!strcmp(url, "/healthz"))
        return reply(c, MHD_HTTP_OK, text, "ok\n", 3);
    if (!strcmp(url, "/readyz")) {
        char why[512] = "";
        int ok = h->ready ? h->ready(h->ud, why, sizeof why - 2) : 1;
        if (ok)
            return reply(c, MHD_HTTP_OK, text, "ready\n", 6);
        size_t n = strlen(why);
        why[n++] = '\n';
        why[n] = '\0';
        return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text, why, n);
    }
    return reply(c, MHD_HTTP_NOT_FOUND, text, "not found: try /metrics, /healthz or /readyz\n", 45);
}

/* HOST:PORT or [V6]:PORT, resolved numerically (no DNS at start-up). */
static int parse_addr(const char *addr, struct addrinfo **res, char *err, size_t errsz)
{
    char host[256];
    const char *port;
    size_t hlen;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            goto bad;
        hlen = (size_t)(close - addr - 1);
        port = close + 2;
        if (hlen >= sizeof host)
            goto bad;
        memcpy(host, addr + 1, hlen);
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon)
            goto bad;
        hlen = (size_t)(colon - addr);
        if (hlen >= sizeof host)
            goto bad;
        memcpy(host, addr, hlen);
        port = colon + 1;
    }
    host[hlen] = '\0';
    if (!*port || strspn(port, "0123456789") != strlen(port) || atol(port) > 65535)
        goto bad;
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE | (hlen ? AI_NUMERICHOST : 0);
    int e = getaddrinfo(hlen ? host : NULL, port, &hints, res);
    if (e) {
        snprintf(err, errsz, "metrics address '%s': %s (write an IP address: 127.0.0.1:9464, "
                             "0.0.0.0:9464, [::1]:9464)", addr, gai_strerror(e));
        return -1;
    }
    return 0;
bad:
    snprintf(err, errsz, "metrics address '%s': expected HOST:PORT (e.g. 127.0.0.1:9464)", addr);
    return -1;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap; /* connection-level noise (resets, timeouts): not worth a line */
}

dg_httpd *dg_metrics_serve(dg_metrics *m, const char *addr, dg_ready_fn ready, void *ud,
                           char *err, size_t errsz)
{
    struct addrinfo *ai = NULL;
    struct dg_httpd *h;

    if (parse_addr(addr, &ai, err, errsz) != 0)
        return NULL;
    h = dg_xcalloc(1, sizeof(*h));
    h->m = m;
    h->ready = ready;
    h->ud = ud;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err, errsz, "metrics address '%s': cannot listen there (in use, or not an "
                             "address of this host)", addr);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    return h;
}

int dg_metrics_port(const dg_httpd *h)
{
    return h->port;
}

void dg_metrics_stop(dg_httpd *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
