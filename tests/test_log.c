/*
 * test_log.c - Check suite for engine/log.c: level and format names, the
 * level filter, the text line ("drainguard NAME: [warning: ]msg") and the
 * JSON line (ts, level, logger, msg, then the fields, every string escaped),
 * which stream each level goes to, and that a control character in a text
 * line cannot start another line. stdout and stderr are pointed at
 * temporary files for the checks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

START_TEST(names)
{
    ck_assert_int_eq(dg_log_level_parse("debug"), DG_LOG_DEBUG);
    ck_assert_int_eq(dg_log_level_parse("info"), DG_LOG_INFO);
    ck_assert_int_eq(dg_log_level_parse("warn"), DG_LOG_WARN);
    ck_assert_int_eq(dg_log_level_parse("warning"), DG_LOG_WARN);
    ck_assert_int_eq(dg_log_level_parse("error"), DG_LOG_ERROR);
    ck_assert_int_eq(dg_log_level_parse("INFO"), -1);
    ck_assert_int_eq(dg_log_level_parse(""), -1);
    ck_assert_int_eq(dg_log_format_parse("text"), DG_LOG_TEXT);
    ck_assert_int_eq(dg_log_format_parse("json"), DG_LOG_JSON);
    ck_assert_int_eq(dg_log_format_parse("logfmt"), -1);
    ck_assert_str_eq(dg_log_level_name(DG_LOG_WARN), "warn");
}
END_TEST

/* Run fn with stdout and stderr captured; returns both (static buffers). */
static void capture(void (*fn)(void), char out[4096], char err[4096])
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    int so = dup(1), se = dup(2);
    fflush(stdout);
    fflush(stderr);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    fn();
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    rewind(fo);
    rewind(fe);
    size_t n = fread(out, 1, 4095, fo);
    out[n] = '\0';
    n = fread(err, 1, 4095, fe);
    err[n] = '\0';
    fclose(fo);
    fclose(fe);
}

static void some_lines(void)
{
    struct dg_log_field f[] = {DG_LF_STR("event", "assigned"), DG_LF_NUM("partitions", 3),
                               DG_LF_STR("detail", "t[0,1,2] \"q\"")};
    dg_log(DG_LOG_DEBUG, "hidden at info");
    dg_logf(DG_LOG_INFO, f, 3, "assigned %d partitions", 3);
    dg_log(DG_LOG_WARN, "redis unavailable: %s", "timeout");
    dg_log(DG_LOG_ERROR, "a \"quoted\"\nline");
}

START_TEST(text_lines)
{
    char out[4096], err[4096];
    dg_log_setup("run", DG_LOG_TEXT, DG_LOG_INFO);
    ck_assert(!dg_log_enabled(DG_LOG_DEBUG));
    ck_assert(dg_log_enabled(DG_LOG_INFO));
    capture(some_lines, out, err);
    ck_assert_str_eq(out, "drainguard run: assigned 3 partitions\n");
    ck_assert_str_eq(err, "drainguard run: warning: redis unavailable: timeout\n"
                          "drainguard run: error: a \"quoted\"\\nline\n");
    dg_log_setup("run", DG_LOG_TEXT, DG_LOG_ERROR);
    capture(some_lines, out, err);
    ck_assert_str_eq(out, "");
    ck_assert_str_eq(err, "drainguard run: error: a \"quoted\"\\nline\n");
}
END_TEST

START_TEST(json_lines)
{
    char out[4096], err[4096];
    dg_log_setup("run", DG_LOG_JSON, DG_LOG_DEBUG);
    capture(some_lines, out, err);
    /* ts varies: check its shape, then the rest exactly */
    ck_assert_int_eq(strncmp(out, "{\"ts\":\"20", 9), 0);
    char *rest = strstr(out, "Z\",\"level\"");
    ck_assert_ptr_nonnull(rest);
    char *second = strchr(out, '\n');
    ck_assert_ptr_nonnull(second);
    ck_assert_str_eq(strstr(second, "Z\",\"level\""),
                     "Z\",\"level\":\"info\",\"logger\":\"run\",\"msg\":\"assigned 3 partitions\","
                     "\"event\":\"assigned\",\"partitions\":3,\"detail\":\"t[0,1,2] \\\"q\\\"\"}\n");
    ck_assert_ptr_nonnull(strstr(out, "\"level\":\"debug\",\"logger\":\"run\",\"msg\":\"hidden at info\"}\n"));
    ck_assert_ptr_nonnull(strstr(err, "\"level\":\"error\",\"logger\":\"run\",\"msg\":\"a \\\"quoted\\\"\\nline\"}\n"));
    /* one object per line: exactly two lines on each stream */
    int lines = 0;
    for (char *p = err; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 2);
    dg_log_setup(NULL, DG_LOG_TEXT, DG_LOG_INFO);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, names);
    tcase_add_test(tc, text_lines);
    tcase_add_test(tc, json_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
