/*
 * test_util_text.c - Check suite for engine/util_text.c: UTF-8 validation,
 * RFC 3339 parsing and formatting, durations and number formatting.
 * Every expected value is written out literally, computed by hand or with
 * `date -u -d ... +%s%3N`, never by calling the code under test.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int utf8(const char *s)
{
    return dg_utf8_valid(s, strlen(s));
}

START_TEST(utf8_valid_inputs)
{
    ck_assert_int_eq(dg_utf8_valid("", 0), 1);
    ck_assert_int_eq(utf8("plain ascii, long enough for the word loop"), 1);
    ck_assert_int_eq(utf8("\xc2\xa9"), 1);               /* U+00A9 */
    ck_assert_int_eq(utf8("\xe2\x82\xac 5"), 1);         /* U+20AC */
    ck_assert_int_eq(utf8("\xed\x9f\xbf"), 1);           /* U+D7FF */
    ck_assert_int_eq(utf8("\xee\x80\x80"), 1);           /* U+E000 */
    ck_assert_int_eq(utf8("\xef\xbf\xbf"), 1);           /* U+FFFF */
    ck_assert_int_eq(utf8("\xf0\x9f\x98\x80"), 1);       /* U+1F600 */
    ck_assert_int_eq(utf8("\xf4\x8f\xbf\xbf"), 1);       /* U+10FFFF */
    ck_assert_int_eq(dg_utf8_valid("a\0b", 3), 1);       /* U+0000 is valid UTF-8 */
    /* multi-byte sequence straddling the 8-byte fast path */
    ck_assert_int_eq(utf8("1234567\xe2\x82\xac" "89012345"), 1);
}
END_TEST

START_TEST(utf8_invalid_inputs)
{
    ck_assert_int_eq(utf8("\x80"), 0);                   /* stray continuation */
    ck_assert_int_eq(utf8("abc\xbf"), 0);
    ck_assert_int_eq(utf8("\xc0\xaf"), 0);               /* overlong '/' */
    ck_assert_int_eq(utf8("\xc1\xbf"), 0);               /* overlong */
    ck_assert_int_eq(utf8("\xe0\x80\xaf"), 0);           /* overlong 3-byte */
    ck_assert_int_eq(utf8("\xe0\x9f\xbf"), 0);           /* overlong 3-byte */
    ck_assert_int_eq(utf8("\xf0\x80\x80\xaf"), 0);       /* overlong 4-byte */
    ck_assert_int_eq(utf8("\xf0\x8f\xbf\xbf"), 0);       /* overlong 4-byte */
    ck_assert_int_eq(utf8("\xed\xa0\x80"), 0);           /* U+D800 surrogate */
    ck_assert_int_eq(utf8("\xed\xbf\xbf"), 0);           /* U+DFFF surrogate */
    ck_assert_int_eq(utf8("\xf4\x90\x80\x80"), 0);       /* U+110000 */
    ck_assert_int_eq(utf8("\xf5\x80\x80\x80"), 0);
    ck_assert_int_eq(utf8("\xff"), 0);
    ck_assert_int_eq(utf8("\xe2\x82"), 0);               /* truncated */
    ck_assert_int_eq(utf8("\xe2\x82z"), 0);              /* bad continuation */
    ck_assert_int_eq(utf8("\xf0\x9f\x98"), 0);
    ck_assert_int_eq(utf8("0123456789abcdef\xc3"), 0);   /* truncated at the end */
    /* the length bounds the check: a valid prefix of a longer buffer */
    ck_assert_int_eq(dg_utf8_valid("\xe2\x82\xac", 2), 0);
    ck_assert_int_eq(dg_utf8_valid("ab\xff", 2), 1);
}
END_TEST

static int64_t t(const char *s)
{
    int64_t ms = INT64_MIN;
    ck_assert_msg(dg_time_parse_rfc3339(s, strlen(s), &ms) == 0, "'%s' should parse", s);
    return ms;
}

static int t_bad(const char *s)
{
    int64_t ms = 12345;
    int rc = dg_time_parse_rfc3339(s, strlen(s), &ms);
    return rc == -1 && ms == 12345;
}

START_TEST(time_parse_basic)
{
    ck_assert_int_eq(t("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(t("2019-05-07T17:15:24Z"), 1557249324000LL);
    ck_assert_int_eq(t("2019-05-07T17:15:24.123Z"), 1557249324123LL);
    ck_assert_int_eq(t("2019-05-07t17:15:24.123z"), 1557249324123LL);
    ck_assert_int_eq(t("2019-05-07 17:15:24.123Z"), 1557249324123LL);
    ck_assert_int_eq(t("2000-01-01T00:00:00Z"), 946684800000LL);
    ck_assert_int_eq(t("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    ck_assert_int_eq(t("0000-01-01T00:00:00Z"), -62167219200000LL);
    ck_assert_int_eq(t("1969-12-31T23:59:59.999Z"), -1);
    ck_assert_int_eq(t("1900-03-01T00:00:00Z"), -2203891200000LL);
}
END_TEST

START_TEST(time_parse_offsets_and_fractions)
{
    /* the same instant written three ways */
    ck_assert_int_eq(t("2019-05-07T19:15:24.123+02:00"), 1557249324123LL);
    ck_assert_int_eq(t("2019-05-07T12:45:24.123-04:30"), 1557249324123LL);
    ck_assert_int_eq(t("2019-05-07T17:15:24.123-00:00"), 1557249324123LL);
    /* offsets cross the day and year boundary */
    ck_assert_int_eq(t("2020-01-01T00:30:00+01:00"), 1577835000000LL);
    ck_assert_int_eq(t("2019-12-31T23:30:00-23:59"), 1577921340000LL);
    /* fraction: 1..9 digits, truncated (not rounded) below 1 ms */
    ck_assert_int_eq(t("1970-01-01T00:00:00.5Z"), 500);
    ck_assert_int_eq(t("1970-01-01T00:00:00.05Z"), 50);
    ck_assert_int_eq(t("1970-01-01T00:00:00.0009Z"), 0);
    ck_assert_int_eq(t("1970-01-01T00:00:00.999999999Z"), 999);
    ck_assert_int_eq(t("1970-01-01T00:00:01.123456+00:00"), 1123);
    ck_assert_int_eq(t("1969-12-31T23:59:59.5Z"), -500);
}
END_TEST

START_TEST(time_parse_calendar)
{
    ck_assert_int_eq(t("2020-02-29T00:00:00Z"), 1582934400000LL); /* leap */
    ck_assert_int_eq(t("2000-02-29T00:00:00Z"), 951782400000LL);  /* 400 rule */
    ck_assert_int_eq(t("2024-12-31T23:59:59Z"), 1735689599000LL);
    ck_assert(t_bad("2019-02-29T00:00:00Z")); /* not leap */
    ck_assert(t_bad("1900-02-29T00:00:00Z")); /* 100 rule */
    ck_assert(t_bad("2019-02-30T00:00:00Z"));
    ck_assert(t_bad("2019-04-31T00:00:00Z"));
    ck_assert(t_bad("2019-13-01T00:00:00Z"));
    ck_assert(t_bad("2019-00-01T00:00:00Z"));
    ck_assert(t_bad("2019-01-00T00:00:00Z"));
    ck_assert(t_bad("2019-01-32T00:00:00Z"));
    ck_assert(t_bad("2019-01-01T24:00:00Z"));
    ck_assert(t_bad("2019-01-01T23:60:00Z"));
    ck_assert(t_bad("2016-12-31T23:59:60Z")); /* leap seconds are rejected */
}
END_TEST

START_TEST(time_parse_rejects)
{
    ck_assert(t_bad(""));
    ck_assert(t_bad("2019-05-07 17:15"));
    ck_assert(t_bad("2019-05-07T17:15:24"));     /* no zone */
    ck_assert(t_bad("2019-05-07T17:15:24.123")); /* no zone */
    ck_assert(t_bad("2019-05-07"));
    ck_assert(t_bad("2019-05-07X17:15:24Z"));
    ck_assert(t_bad("2019/05/07T17:15:24Z"));
    ck_assert(t_bad("19-05-07T17:15:24Z"));
    ck_assert(t_bad("+2019-05-07T17:15:24Z"));
    ck_assert(t_bad("2019-05-07T17:15:24.Z"));             /* empty fraction */
    ck_assert(t_bad("2019-05-07T17:15:24.1234567890Z"));   /* 10 digits */
    ck_assert(t_bad("2019-05-07T17:15:24+0200"));
    ck_assert(t_bad("2019-05-07T17:15:24+02"));
    ck_assert(t_bad("2019-05-07T17:15:24+24:00"));
    ck_assert(t_bad("2019-05-07T17:15:24+02:60"));
    ck_assert(t_bad("2019-05-07T17:15:24ZZ"));
    ck_assert(t_bad("2019-05-07T17:15:24Z "));
    ck_assert(t_bad(" 2019-05-07T17:15:24Z"));
    ck_assert(t_bad("2019-05-07T17:15:24UTC"));
    ck_assert(t_bad("2019-5-7T17:15:24Z"));
    ck_assert(t_bad("1557249324123"));
    /* the length is honoured: a valid timestamp cut short */
    int64_t ms;
    ck_assert_int_eq(dg_time_parse_rfc3339("2019-05-07T17:15:24Z", 19, &ms), -1);
}
END_TEST

static void fmt_is(int64_t ms, const char *want)
{
    char out[32];
    memset(out, 'x', sizeof out);
    dg_time_format(ms, out);
    ck_assert_str_eq(out, want);
}

START_TEST(time_format)
{
    fmt_is(0, "1970-01-01T00:00:00Z");
    fmt_is(1557249324123LL, "2019-05-07T17:15:24.123Z");
    fmt_is(1557249324000LL, "2019-05-07T17:15:24Z");
    fmt_is(1557249324001LL, "2019-05-07T17:15:24.001Z");
    fmt_is(1582934400000LL, "2020-02-29T00:00:00Z");
    fmt_is(253402300799999LL, "9999-12-31T23:59:59.999Z");
    /* negative epochs floor towards the past */
    fmt_is(-1, "1969-12-31T23:59:59.999Z");
    fmt_is(-1000, "1969-12-31T23:59:59Z");
    fmt_is(-86400000LL, "1969-12-31T00:00:00Z");
    fmt_is(-86400001LL, "1969-12-30T23:59:59.999Z");
    fmt_is(-2203891200000LL, "1900-03-01T00:00:00Z");
    fmt_is(-62167219200000LL, "0000-01-01T00:00:00Z");
    fmt_is(-62167219200001LL, "-0001-12-31T23:59:59.999Z");
    /* the extremes do not overflow and fit in 32 bytes */
    char out[32];
    dg_time_format(INT64_MIN, out);
    ck_assert_uint_lt(strlen(out), 32);
    ck_assert_str_eq(out, "-292275055-05-16T16:47:04.192Z");
    dg_time_format(INT64_MAX, out);
    ck_assert_str_eq(out, "292278994-08-17T07:12:55.807Z");
}
END_TEST

START_TEST(time_round_trip)
{
    static const int64_t samples[] = {
        0, 1, 999, 1000, 1557249324123LL, 951782400000LL, 1582934399999LL,
        -1, -62167219200000LL, 253402300799999LL, 4102444800000LL,
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(samples); i++) {
        char out[32];
        int64_t back = 0;
        dg_time_format(samples[i], out);
        ck_assert_int_eq(dg_time_parse_rfc3339(out, strlen(out), &back), 0);
        ck_assert_int_eq(back, samples[i]);
    }
}
END_TEST

static int64_t dur(const char *s)
{
    int64_t ms = -7;
    ck_assert_msg(dg_duration_parse(s, strlen(s), &ms) == 0, "'%s' should parse", s);
    return ms;
}

static int dur_bad(const char *s)
{
    int64_t ms = -7;
    return dg_duration_parse(s, strlen(s), &ms) == -1 && ms == -7;
}

START_TEST(duration_parse)
{
    ck_assert_int_eq(dur("250ms"), 250);
    ck_assert_int_eq(dur("90s"), 90000);
    ck_assert_int_eq(dur("10m"), 600000);
    ck_assert_int_eq(dur("24h"), 86400000LL);
    ck_assert_int_eq(dur("7d"), 604800000LL);
    ck_assert_int_eq(dur("2w"), 1209600000LL);
    ck_assert_int_eq(dur("1h30m"), 5400000);
    ck_assert_int_eq(dur("1m30s"), 90000);
    ck_assert_int_eq(dur("1d2h3m4s5ms"), 93784005LL);
    ck_assert_int_eq(dur("1m1ms"), 60001);
    ck_assert_int_eq(dur("0h5m"), 300000);
    ck_assert_int_eq(dur("9223372036854775807ms"), INT64_MAX);
}
END_TEST

START_TEST(duration_rejects)
{
    ck_assert(dur_bad(""));
    ck_assert(!dur_bad("0s")); /* a zero duration is a value; `over: 0s` is refused by the compiler */
    ck_assert(!dur_bad("0h0m"));
    ck_assert(dur_bad("90"));           /* bare number */
    ck_assert(dur_bad("1h30"));         /* trailing bare number */
    ck_assert(dur_bad("h"));
    ck_assert(dur_bad("5y"));
    ck_assert(dur_bad("5M"));
    ck_assert(dur_bad("5 m"));
    ck_assert(dur_bad(" 5m"));
    ck_assert(dur_bad("-5m"));
    ck_assert(dur_bad("+5m"));
    ck_assert(dur_bad("1.5h"));
    ck_assert(dur_bad("5mss"));
    ck_assert(dur_bad("9223372036854775808ms")); /* overflows int64 */
    ck_assert(dur_bad("9223372036854775807s"));  /* overflows in the unit */
    ck_assert(dur_bad("9223372036854775807ms1ms")); /* overflows in the sum */
    ck_assert(dur_bad("99999999999999999999999d"));
}
END_TEST

static void dfmt_is(int64_t ms, const char *want)
{
    char out[32];
    dg_duration_format(ms, out);
    ck_assert_str_eq(out, want);
}

START_TEST(duration_format)
{
    dfmt_is(5400000, "1h30m");
    dfmt_is(90000, "1m30s");
    dfmt_is(250, "250ms");
    dfmt_is(604800000LL, "7d");
    dfmt_is(1209600000LL, "14d");
    dfmt_is(86400000LL, "1d");
    dfmt_is(93784005LL, "1d2h3m4s5ms");
    dfmt_is(1000, "1s");
    dfmt_is(1, "1ms");
    dfmt_is(0, "0s");
    dfmt_is(-90000, "-1m30s");
    dfmt_is(INT64_MAX, "106751991167d7h12m55s807ms");
    dfmt_is(INT64_MIN, "-106751991167d7h12m55s808ms");
}
END_TEST

START_TEST(duration_round_trip)
{
    static const int64_t samples[] = {
        1, 999, 1000, 59999, 60000, 90000, 3599999, 5400000, 86400000LL,
        604800000LL, 93784005LL, 2592000000LL, INT64_MAX,
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(samples); i++) {
        char out[32];
        int64_t back = 0;
        dg_duration_format(samples[i], out);
        ck_assert_int_eq(dg_duration_parse(out, strlen(out), &back), 0);
        ck_assert_int_eq(back, samples[i]);
    }
}
END_TEST

static void nfmt_is(double v, const char *want)
{
    char out[40];
    dg_number_format(v, out);
    ck_assert_str_eq(out, want);
}

START_TEST(number_format)
{
    nfmt_is(250000, "250000");
    nfmt_is(0, "0");
    nfmt_is(-0.0, "0");
    nfmt_is(-5, "-5");
    nfmt_is(0.0123, "0.0123");
    nfmt_is(253000.5, "253000.5");
    nfmt_is(-253000.5, "-253000.5");
    nfmt_is(1.0 / 3.0, "0.333333");
    nfmt_is(2.0 / 3.0, "0.666667");
    nfmt_is(0.1 + 0.2, "0.3");
    nfmt_is(0.9999999, "1");
    nfmt_is(1e-7, "0");
    nfmt_is(-1e-7, "0");
    nfmt_is(999999999999999.0, "999999999999999");
    nfmt_is(123456789.125, "123456789.125");
    nfmt_is(1e15, "1000000000000000");  /* %.17g beyond 1e15 */
    nfmt_is(1e17, "1e+17");
    nfmt_is(1234567890123456.5, "1234567890123456.5");
    nfmt_is(1e300, "1.0000000000000001e+300");
    nfmt_is(-1.5e20, "-1.5e+20");
    nfmt_is(NAN, "nan");
    nfmt_is(INFINITY, "inf");
    nfmt_is(-INFINITY, "-inf");
    char out[40];
    dg_number_format(-1.7976931348623157e308, out);
    ck_assert_uint_lt(strlen(out), 40);
}
END_TEST

static Suite *util_text_suite(void)
{
    Suite *s = suite_create("util_text");
    TCase *tc;

    tc = tcase_create("utf8");
    tcase_add_test(tc, utf8_valid_inputs);
    tcase_add_test(tc, utf8_invalid_inputs);
    suite_add_tcase(s, tc);

    tc = tcase_create("time");
    tcase_add_test(tc, time_parse_basic);
    tcase_add_test(tc, time_parse_offsets_and_fractions);
    tcase_add_test(tc, time_parse_calendar);
    tcase_add_test(tc, time_parse_rejects);
    tcase_add_test(tc, time_format);
    tcase_add_test(tc, time_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("duration");
    tcase_add_test(tc, duration_parse);
    tcase_add_test(tc, duration_rejects);
    tcase_add_test(tc, duration_format);
    tcase_add_test(tc, duration_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("number");
    tcase_add_test(tc, number_format);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(util_text_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
