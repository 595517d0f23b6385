/*
 * expr_funcs.c - the functions of the condition language, one row each in
 * dg_funcs[]. A row has a compile-time type check and an evaluator that must
 * not allocate: functions answer questions about strings (starts_with) rather
 * than build new ones (lower), so the hot path stays allocation-free.
 * Every function returns missing when an argument is missing or of the wrong
 * run-time type (an unknown event field), except default().
 */
#include "expr.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_str(dg_type t) { return t == DG_T_STR || t == DG_T_ANY; }
static int is_num(dg_type t) { return t == DG_T_NUM || t == DG_T_ANY; }

static dg_type want_strings(const dg_type *a, int n, dg_type result, char *err, size_t sz)
{
    for (int i = 0; i < n; i++)
        if (!is_str(a[i])) {
            snprintf(err, sz, "argument %d is a %s, not a string", i + 1, dg_type_name(a[i]));
            return DG_T_NONE;
        }
    return result;
}

static dg_type chk_str_bool(const dg_type *a, int n, char *err, size_t sz)
{
    return want_strings(a, n, DG_T_BOOL, err, sz);
}

static dg_type chk_len(const dg_type *a, int n, char *err, size_t sz)
{
    return want_strings(a, n, DG_T_NUM, err, sz);
}

/* same-typed numeric-ish arguments: numbers, durations or times */
static dg_type chk_same(const dg_type *a, int n, char *err, size_t sz)
{
    dg_type t = a[0] == DG_T_ANY ? a[n - 1] : a[0];
    if (t == DG_T_ANY)
        t = DG_T_NUM;
    for (int i = 0; i < n; i++) {
        dg_type ai = a[i] == DG_T_ANY ? t : a[i];
        if (ai != t || (t != DG_T_NUM && t != DG_T_DUR && t != DG_T_TIME)) {
            snprintf(err, sz, "arguments must be numbers, durations or times of one kind, got %s and %s",
                     dg_type_name(a[0]), dg_type_name(a[n - 1]));
            return DG_T_NONE;
        }
    }
    return t;
}

static dg_type chk_abs(const dg_type *a, int n, char *err, size_t sz)
{
    if (is_num(a[0]))
        return DG_T_NUM;
    if (a[0] == DG_T_DUR)
        return DG_T_DUR;
    snprintf(err, sz, "argument is a %s, not a number or duration", dg_type_name(a[0]));
    return DG_T_NONE;
}

static dg_type chk_default(const dg_type *a, int n, char *err, size_t sz)
{
    if (a[0] == a[1] || a[0] == DG_T_ANY)
        return a[1];
    if (a[1] == DG_T_ANY)
        return a[0];
    snprintf(err, sz, "the fallback is a %s but the value is a %s", dg_type_name(a[1]),
             dg_type_name(a[0]));
    return DG_T_NONE;
}

static dg_type chk_seconds(const dg_type *a, int n, char *err, size_t sz)
{
    if (a[0] == DG_T_DUR)
        return DG_T_NUM;
    snprintf(err, sz, "argument is a %s, not a duration", dg_type_name(a[0]));
    return DG_T_NONE;
}

static int both_str(const dg_value *a)
{
    return a[0].t == DG_T_STR && a[1].t == DG_T_STR;
}

static dg_value ev_starts_with(const dg_value *a, int n)
{
    if (!both_str(a))
        return dg_none();
    return dg_bool(a[1].len <= a[0].len && !memcmp(a[0].u.s, a[1].u.s, a[1].len));
}

static dg_value ev_ends_with(const dg_value *a, int n)
{
    if (!both_str(a))
        return dg_none();
    return dg_bool(a[1].len <= a[0].len &&
                   !memcmp(a[0].u.s + a[0].len - a[1].len, a[1].u.s, a[1].len));
}

static dg_value ev_contains(const dg_value *a, int n)
{
    if (!both_str(a))
        return dg_none();
    if (a[1].len == 0)
        return dg_bool(1);
    for (size_t i = 0; i + a[1].len <= a[0].len; i++)
        if (!memcmp(a[0].u.s + i, a[1].u.s, a[1].len))
            return dg_bool(1);
    return dg_bool(0);
}

static dg_value ev_iequals(const dg_value *a, int n)
{
    if (!both_str(a))
        return dg_none();
    return dg_bool(a[0].len == a[1].len && !strncasecmp(a[0].u.s, a[1].u.s, a[0].len));
}

static dg_value ev_len(const dg_value *a, int n)
{
    return a[0].t == DG_T_STR ? dg_num(a[0].len) : dg_none();
}

/* the fallback also stands in for a value of the wrong run-time type (an
 * event.* field holding a string where the fallback is a number) */
static dg_value ev_default(const dg_value *a, int n)
{
    return a[0].t != DG_T_NONE && a[0].t == a[1].t ? a[0] : a[1];
}

static dg_value ev_abs(const dg_value *a, int n)
{
    if (a[0].t == DG_T_NUM)
        return dg_num(fabs(a[0].u.n));
    if (a[0].t == DG_T_DUR)
        return dg_dur(a[0].u.ms < 0 ? -a[0].u.ms : a[0].u.ms);
    return dg_none();
}

static dg_value pick(const dg_value *a, int n, int want_max)
{
    dg_value best = a[0];
    if (a[0].t != DG_T_NUM && a[0].t != DG_T_DUR && a[0].t != DG_T_TIME)
        return dg_none(); /* missing, or an unknown field holding a string */
    for (int i = 0; i < n; i++) {
        if (a[i].t != a[0].t)
            return dg_none();
        int gt = a[i].t == DG_T_NUM ? a[i].u.n > best.u.n : a[i].u.ms > best.u.ms;
        int lt = a[i].t == DG_T_NUM ? a[i].u.n < best.u.n : a[i].u.ms < best.u.ms;
        if (want_max ? gt : lt)
            best = a[i];
    }
    return best;
}

static dg_value ev_min(const dg_value *a, int n) { return pick(a, n, 0); }
static dg_value ev_max(const dg_value *a, int n) { return pick(a, n, 1); }

static dg_type chk_round(const dg_type *a, int n, char *err, size_t sz)
{
    for (int i = 0; i < n; i++)
        if (!is_num(a[i])) {
            snprintf(err, sz, "argument %d is a %s, not a number", i + 1, dg_type_name(a[i]));
            return DG_T_NONE;
        }
    return DG_T_NUM;
}

/* round(x) or round(x, digits), digits 0..6, half away from zero */
static dg_value ev_round(const dg_value *a, int n)
{
    if (a[0].t != DG_T_NUM || (n == 2 && a[1].t != DG_T_NUM))
        return dg_none();
    int digits = n == 2 ? (int)a[1].u.n : 0;
    if (digits < 0 || digits > 6)
        return dg_none();
    double scale = 1;
    for (int i = 0; i < digits; i++)
        scale *= 10;
    return dg_num(round(a[0].u.n * scale) / scale);
}

static dg_value ev_seconds(const dg_value *a, int n)
{
    return a[0].t == DG_T_DUR ? dg_num((double)a[0].u.ms / 1000.0) : dg_none();
}

const struct dg_func_def dg_funcs[] = {
    {"starts_with", 2, 2, "starts_with(string, prefix)", chk_str_bool, ev_starts_with},
    {"ends_with", 2, 2, "ends_with(string, suffix)", chk_str_bool, ev_ends_with},
    {"contains", 2, 2, "contains(string, part)", chk_str_bool, ev_contains},
    {"iequals", 2, 2, "iequals(string, string)", chk_str_bool, ev_iequals},
    {"len", 1, 1, "len(string)", chk_len, ev_len},
    {"default", 2, 2, "default(value, fallback)", chk_default, ev_default},
    {"abs", 1, 1, "abs(number or duration)", chk_abs, ev_abs},
    {"min", 2, 4, "min(a, b, ...)", chk_same, ev_min},
    {"max", 2, 4, "max(a, b, ...)", chk_same, ev_max},
    {"seconds", 1, 1, "seconds(duration)", chk_seconds, ev_seconds},
    {"round", 1, 2, "round(number, digits)", chk_round, ev_round},
};
const size_t dg_nfuncs = sizeof(dg_funcs) / sizeof(dg_funcs[0]);

const struct dg_func_def *dg_func_lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < dg_nfuncs; i++)
        if (strlen(dg_funcs[i].name) == len && !memcmp(dg_funcs[i].name, name, len))
            return &dg_funcs[i];
    return NULL;
}
