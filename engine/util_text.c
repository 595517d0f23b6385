/*
 * util_text.c - text in and out for the whole pipeline: UTF-8 validation,
 * RFC 3339 timestamps, durations ("1h30m") and the way numbers are shown in
 * reasons. Pure functions over caller buffers; nothing here allocates,
 * reads the clock, or depends on the locale (no strtod, no timegm, and the
 * one snprintf("%f") has its decimal point normalised), so the same input
 * gives the same bytes on every host, which replay tests rely on.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define MS_PER_SEC 1000LL
#define MS_PER_MIN (60 * MS_PER_SEC)
#define MS_PER_HOUR (60 * MS_PER_MIN)
#define MS_PER_DAY (24 * MS_PER_HOUR)
#define MS_PER_WEEK (7 * MS_PER_DAY)

/* ---- UTF-8 ---- */

/* Called on every event before it reaches the JSON parser, so ASCII (the
 * bulk of any event) is checked 8 bytes per step; multi-byte sequences go
 * through the exact table of RFC 3629 section 4, which rules out overlongs,
 * surrogates and code points above U+10FFFF by the allowed second byte. */
int dg_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;

    while (p < end) {
        /* tight ASCII loop: 16 bytes per step until a byte >= 0x80 */
        while (end - p >= 16) {
            uint64_t w0, w1;
            memcpy(&w0, p, 8);
            memcpy(&w1, p + 8, 8);
            if ((w0 | w1) & 0x8080808080808080ULL)
                break;
            p += 16;
        }
        if (p == end)
            break;
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        size_t n;                     /* continuation bytes */
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* U+D800..U+DFFF surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return 0; /* 0x80..0xC1 (stray or overlong lead), 0xF5..0xFF */
        }
        if ((size_t)(end - p) <= n)
            return 0;
        if (p[1] < lo || p[1] > hi)
            return 0;
        for (size_t i = 2; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n + 1;
    }
    return 1;
}

/* ---- calendar ---- */

/* Howard Hinnant's days_from_civil / civil_from_days: exact for the
 * proleptic Gregorian calendar over the whole int64 range we use, with no
 * dependence on timegm, TZ or the C library's time_t width. */
int64_t dg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30,
                                          31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* n digits at p as a number, -1 when any is not a digit */
static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Strict RFC 3339 section 5.6 date-time. Accepted beyond the grammar's
 * letter: 't' and ' ' as separator (RFC 3339 allows both by note) and
 * 'z'. Rejected on purpose: no zone (a local time is ambiguous, and event
 * time decides every window), a leap second :60 (we would have to invent
 * what it means), more than 9 fraction digits, years outside 0000..9999. */
int dg_time_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    if (len < 20)
        return -1;
    int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (year < 0 || mon < 0 || day < 0 || hour < 0 || min < 0 || sec < 0)
        return -1;
    if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || (unsigned)day > days_in_month(year, (unsigned)mon))
        return -1;
    if (hour > 23 || min > 59 || sec > 59)
        return -1;

    size_t i = 19;
    int64_t frac = 0;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        while (i < len && is_digit(s[i])) {
            if (i - start < 3)
                frac = frac * 10 + (s[i] - '0');
            i++;
        }
        size_t nd = i - start;
        if (nd < 1 || nd > 9)
            return -1;
        for (; nd < 3; nd++)
            frac *= 10; /* ".5" is 500 ms */
    }

    int64_t off_min = 0;
    if (i >= len)
        return -1; /* no zone */
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i < 6 || s[i + 3] != ':')
            return -1;
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return -1;
        off_min = oh * 60 + om;
        if (s[i] == '-')
            off_min = -off_min;
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;

    int64_t days = dg_days_from_civil(year, (unsigned)mon, (unsigned)day);
    *ms = days * MS_PER_DAY + hour * MS_PER_HOUR + min * MS_PER_MIN +
          sec * MS_PER_SEC + frac - off_min * MS_PER_MIN;
    return 0;
}

void dg_time_format(int64_t ms, char out[32])
{
    /* floor division without multiplying back: days * MS_PER_DAY could
     * overflow near INT64_MIN */
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int hh = (int)(rem / MS_PER_HOUR);
    int mi = (int)(rem / MS_PER_MIN % 60);
    int ss = (int)(rem / MS_PER_SEC % 60);
    int milli = (int)(rem % 1000);

    /* years beyond 9999 (or before 0) only come from hostile integers; print
     * them anyway, "-292277022-..." is the widest and fits in 32 bytes */
    char tmp[80];
    long long ay = y < 0 ? -(long long)y : (long long)y;
    int w;
    if (milli)
        w = snprintf(tmp, sizeof tmp, "%s%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                     y < 0 ? "-" : "", ay, m, d, hh, mi, ss, milli);
    else
        w = snprintf(tmp, sizeof tmp, "%s%04lld-%02u-%02uT%02d:%02d:%02dZ",
                     y < 0 ? "-" : "", ay, m, d, hh, mi, ss);
    if (w < 0)
        w = 0;
    if (w > 31)
        w = 31;
    memcpy(out, tmp, (size_t)w);
    out[w] = '\0';
}

/* ---- durations ---- */

int dg_duration_parse(const char *s, size_t len, int64_t *ms)
{
    int64_t total = 0;
    size_t i = 0;

    if (len == 0)
        return -1;
    while (i < len) {
        if (!is_digit(s[i]))
            return -1; /* sign, space, unit without a number */
        int64_t v = 0;
        while (i < len && is_digit(s[i])) {
            int dv = s[i] - '0';
            if (v > (INT64_MAX - dv) / 10)
                return -1;
            v = v * 10 + dv;
            i++;
        }
        if (i == len)
            return -1; /* a bare number: seconds? milliseconds? say which */
        int64_t unit;
        switch (s[i]) {
        case 'm':
            if (i + 1 < len && s[i + 1] == 's') {
                unit = 1;
                i++;
            } else {
                unit = MS_PER_MIN;
            }
            break;
        case 's':
            unit = MS_PER_SEC;
            break;
        case 'h':
            unit = MS_PER_HOUR;
            break;
        case 'd':
            unit = MS_PER_DAY;
            break;
        case 'w':
            unit = MS_PER_WEEK;
            break;
        default:
            return -1;
        }
        i++;
        if (v > INT64_MAX / unit)
            return -1;
        v *= unit;
        if (total > INT64_MAX - v)
            return -1;
        total += v;
    }
    /* zero is a duration ("ts - x > 0s"); a window's `over` is checked
     * to be positive where it is parsed */
    *ms = total;
    return 0;
}

/* Largest unit first, every non-zero unit once: 5400000 is "1h30m",
 * 90000 is "1m30s". Weeks are not used so that "7d" and "14d" read the
 * same way operators write them. */
void dg_duration_format(int64_t ms, char out[32])
{
    static const struct {
        uint64_t ms;
        const char *suffix;
    } units[] = {
        {(uint64_t)MS_PER_DAY, "d"}, {(uint64_t)MS_PER_HOUR, "h"},
        {(uint64_t)MS_PER_MIN, "m"}, {(uint64_t)MS_PER_SEC, "s"},
        {1, "ms"},
    };
    size_t n = 0;

    if (ms == 0) {
        memcpy(out, "0s", 3);
        return;
    }
    /* through uint64 so that INT64_MIN negates without overflow */
    uint64_t v = (uint64_t)ms;
    if (ms < 0) {
        out[n++] = '-';
        v = 0 - v;
    }
    out[n] = '\0';
    for (size_t i = 0; i < DG_ARRAY_LEN(units); i++) {
        uint64_t q = v / units[i].ms;
        if (q == 0)
            continue;
        v -= q * units[i].ms;
        /* worst case "-106751991167d7h12m55s808ms" is 28 bytes */
        int w = snprintf(out + n, 32 - n, "%llu%s", (unsigned long long)q, units[i].suffix);
        if (w > 0)
            n += (size_t)w;
    }
}

/* ---- numbers ---- */

/* Replace whatever the C library printed as decimal point (only differs
 * from '.' if someone called setlocale) by '.'. Output is
 * [-]digits[<point>digits][e[+-]digits], so the point is the first run of
 * bytes that is neither digit, sign nor 'e'. */
static void fix_decimal_point(char *s)
{
    char *p = s;
    while (*p && (is_digit(*p) || *p == '-'))
        p++;
    if (!*p || *p == 'e')
        return;
    char *q = p;
    while (*q && !is_digit(*q) && *q != 'e')
        q++;
    *p = '.';
    memmove(p + 1, q, strlen(q) + 1);
}

void dg_number_format(double v, char out[40])
{
    if (isnan(v)) {
        memcpy(out, "nan", 4);
        return;
    }
    if (isinf(v)) {
        memcpy(out, v < 0 ? "-inf" : "inf", v < 0 ? 5 : 4);
        return;
    }
    if (v == 0) {
        memcpy(out, "0", 2); /* also -0 */
        return;
    }
    if (fabs(v) < 1e15 && v == floor(v)) {
        snprintf(out, 40, "%lld", (long long)v);
        return;
    }
    if (fabs(v) >= 1e15) {
        /* "%.6f" of 1e300 would need 308 bytes; exponent form, exact */
        snprintf(out, 40, "%.17g", v);
        fix_decimal_point(out);
        return;
    }
    snprintf(out, 40, "%.6f", v); /* at most 15 + 1 + 1 + 6 bytes */
    fix_decimal_point(out);
    char *dot = strchr(out, '.');
    if (dot) {
        char *end = out + strlen(out);
        while (end > dot + 1 && end[-1] == '0')
            end--;
        if (end == dot + 1)
            end = dot; /* 0.9999999 prints "1.000000", 1e-7 "0.000000" */
        *end = '\0';
    }
    if (strcmp(out, "-0") == 0)
        memcpy(out, "0", 2);
}
