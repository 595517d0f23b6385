/*
 * test_metrics.c - Check suite for engine/metrics.c: the registry rendered
 * in the Prometheus text format (exact bytes for counters, gauges and a
 * histogram's cumulative buckets; label values escaped; a cleared family),
 * and the HTTP endpoints served on a loopback port the kernel picks:
 * /metrics, /healthz, /readyz (200 or 503 with the reason), 404, 405, and
 * a bad or busy address refused at start.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "util.h"

START_TEST(render_counters_gauges_histograms)
{
    static const char *const l_action[] = {"action", NULL};
    static const double b[] = {0.1, 1};
    dg_metrics *m = dg_metrics_new();
    int c = dg_metrics_declare(m, DG_METRIC_COUNTER, "t_decisions_total", "Decisions.", l_action, NULL, 0);
    int g = dg_metrics_declare(m, DG_METRIC_GAUGE, "t_up", "Up.", NULL, NULL, 0);
    int h = dg_metrics_declare(m, DG_METRIC_HISTOGRAM, "t_seconds", "Time.", NULL, b, 2);
    const char *allow[] = {"allow"}, *hold[] = {"hold"};

    dg_metrics_add(m, c, allow, 3);
    dg_metrics_add(m, c, hold, 1);
    dg_metrics_add(m, c, allow, 2);
    dg_metrics_set(m, g, NULL, 1);
    dg_metrics_observe(m, h, NULL, 0.05);
    dg_metrics_observe(m, h, NULL, 0.1); /* le is inclusive */
    dg_metrics_observe(m, h, NULL, 0.5);
    dg_metrics_observe(m, h, NULL, 7);
    ck_assert_double_eq(dg_metrics_get(m, c, allow), 5);
    ck_assert_double_eq(dg_metrics_get(m, h, NULL), 4);

    dg_buf out = {0};
    dg_metrics_render(m, &out);
    ck_assert_str_eq(out.data,
                     "# HELP t_decisions_total Decisions.\n"
                     "# TYPE t_decisions_total counter\n"
                     "t_decisions_total{action=\"allow\"} 5\n"
                     "t_decisions_total{action=\"hold\"} 1\n"
                     "# HELP t_up Up.\n"
                     "# TYPE t_up gauge\n"
                     "t_up 1\n"
                     "# HELP t_seconds Time.\n"
                     "# TYPE t_seconds histogram\n"
                     "t_seconds_bucket{le=\"0.1\"} 2\n"
                     "t_seconds_bucket{le=\"1\"} 3\n"
                     "t_seconds_bucket{le=\"+Inf\"} 4\n"
                     "t_seconds_sum 7.6500000000000004\n"
                     "t_seconds_count 4\n");
    dg_buf_free(&out);
    dg_metrics_free(m);
}
END_TEST

START_TEST(label_values_escaped_and_clear)
{
    static const char *const l[] = {"rule", "mode", NULL};
    dg_metrics *m = dg_metrics_new();
    int f = dg_metrics_declare(m, DG_METRIC_GAUGE, "t_info", "Back\\slash\nnewline.", l, NULL, 0);
    const char *v[] = {"a\"b\\c\nd", "shadow"};
    dg_metrics_set(m, f, v, 1);

    dg_buf out = {0};
    dg_metrics_render(m, &out);
    ck_assert_str_eq(out.data, "# HELP t_info Back\\\\slash\\nnewline.\n"
                               "# TYPE t_info gauge\n"
                               "t_info{rule=\"a\\\"b\\\\c\\nd\",mode=\"shadow\"} 1\n");
    dg_metrics_clear(m, f);
    out.len = 0;
    dg_metrics_render(m, &out);
    ck_assert_str_eq(out.data, "# HELP t_info Back\\\\slash\\nnewline.\n# TYPE t_info gauge\n");
    ck_assert_double_eq(dg_metrics_get(m, f, v), 0);
    dg_buf_free(&out);
    dg_metrics_free(m);
}
END_TEST

/* ---- HTTP ---- */

/* One request on a fresh connection: the whole response, or "" */
static char *http_get(int port, const char *method, const char *path)
{
    static char resp[65536];
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    size_t n = 0;
    ssize_t k;
    char req[256];

    resp[0] = '\0';
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return resp;
    }
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, path);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (n < sizeof resp - 1 && (k = read(fd, resp + n, sizeof resp - 1 - n)) > 0)
        n += (size_t)k;
    resp[n] = '\0';
    close(fd);
    return resp;
}

static int status_of(const char *resp)
{
    int code = 0;
    sscanf(resp, "HTTP/1.%*d %d", &code);
    return code;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static int ready_flag;
static int ready_fn(void *ud, char *why, size_t whysz)
{
    ck_assert_ptr_eq(ud, &ready_flag);
    if (!ready_flag)
        snprintf(why, whysz, "redis: connection refused");
    return ready_flag;
}

START_TEST(serve_endpoints)
{
    char err[256];
    dg_metrics *m = dg_metrics_new();
    int c = dg_metrics_declare(m, DG_METRIC_COUNTER, "t_events_total", "Events.", NULL, NULL, 0);
    dg_metrics_add(m, c, NULL, 42);
    dg_httpd *h = dg_metrics_serve(m, "127.0.0.1:0", ready_fn, &ready_flag, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    int port = dg_metrics_port(h);
    ck_assert_int_gt(port, 0);

    char *r = http_get(port, "GET", "/metrics");
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_ptr_nonnull(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    ck_assert_ptr_nonnull(strstr(body_of(r), "\nt_events_total 42\n"));
    r = http_get(port, "GET", "/healthz");
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_str_eq(body_of(r), "ok\n");
    ready_flag = 0;
    r = http_get(port, "GET", "/readyz");
    ck_assert_int_eq(status_of(r), 503);
    ck_assert_str_eq(body_of(r), "redis: connection refused\n");
    ready_flag = 1;
    r = http_get(port, "GET", "/readyz");
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_str_eq(body_of(r), "ready\n");
    ck_assert_int_eq(status_of(http_get(port, "GET", "/")), 404);
    ck_assert_int_eq(status_of(http_get(port, "POST", "/metrics")), 405);

    /* the port is taken now: a second server there is refused */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    ck_assert_ptr_null(dg_metrics_serve(m, addr, NULL, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "cannot listen"));
    dg_metrics_stop(h);
    dg_metrics_free(m);
}
END_TEST

START_TEST(bad_addresses)
{
    static const char *const bad[] = {"9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:99999",
                                      "127.0.0.1:94x", "[::1:9464", "1.2.3:80"};
    char err[256];
    dg_metrics *m = dg_metrics_new();
    for (size_t i = 0; i < DG_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        ck_assert_msg(dg_metrics_serve(m, bad[i], NULL, NULL, err, sizeof err) == NULL, "%s", bad[i]);
        ck_assert_msg(strstr(err, bad[i]) != NULL, "error names '%s': %s", bad[i], err);
    }
    dg_metrics_free(m);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, render_counters_gauges_histograms);
    tcase_add_test(tc, label_values_escaped_and_clear);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_add_test(tc, serve_endpoints);
    tcase_add_test(tc, bad_addresses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
