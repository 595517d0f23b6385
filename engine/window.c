/*
 * window.c - what a window means, independent of where it is stored: the
 * table of aggregates, bucket arithmetic, fixed-point conversion, value
 * hashing and key building. Both backends use these, which is how the memory
 * and Redis backends agree bit for bit.
 *
 * Semantics in one paragraph (docs/windows.md has the long form): a window
 * of length `over` is cut into buckets of `step` = over / nbuckets. Each key
 * has a head: the highest bucket index of any event that added to or read
 * the key. The window holds the buckets head-nbuckets .. head (nbuckets + 1
 * buckets), so it always covers at least the last `over` before the head and
 * never more than over + step. An event whose bucket is below that range is
 * too late to count (it is still decided). Sums, max and min are integers of
 * 1e-6, so addition is exact and order-free.
 */
#include "state.h"
#include "event.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int64_t dg_bucket_of(int64_t t, int64_t step)
{
    int64_t q = t / step;
    return (t % step != 0 && t < 0) ? q - 1 : q;
}

#define FP_LIMIT 9.2e12

int64_t dg_fixed(double v)
{
    if (isnan(v))
        return 0;
    if (v >= FP_LIMIT)
        return (int64_t)(FP_LIMIT * DG_FP_SCALE);
    if (v <= -FP_LIMIT)
        return -(int64_t)(FP_LIMIT * DG_FP_SCALE);
    return dg_round(v * DG_FP_SCALE); /* |v * 1e6| < 9.2e18 */
}

double dg_unfixed(int64_t fp)
{
    /* split so that integers of 1e-6 print back exactly (no 0.1+0.2 noise) */
    int64_t whole = fp / 1000000, frac = fp % 1000000;
    return (double)whole + (double)frac / DG_FP_SCALE;
}

uint64_t dg_value_hash(const dg_value *v)
{
    switch (v->t) {
    case DG_T_STR:
        return dg_hash64(v->u.s, v->len, 0x5354);
    case DG_T_NUM: {
        int64_t fp = dg_fixed(v->u.n);
        return dg_hash64(&fp, sizeof fp, 0x4e55);
    }
    case DG_T_TIME:
    case DG_T_DUR:
        return dg_hash64(&v->u.ms, sizeof v->u.ms, 0x544d);
    case DG_T_BOOL:
        return v->u.b ? 0x74727565 : 0x66616c73;
    }
    return 0;
}

/* The bytes of one key part; returns length, 0 when missing. */
static size_t key_part(const dg_value *v, char *buf, size_t sz, const char **out)
{
    switch (v->t) {
    case DG_T_STR:
        *out = v->u.s;
        return v->len;
    case DG_T_NUM:
        dg_number_format(v->u.n, buf);
        *out = buf;
        return strlen(buf);
    case DG_T_TIME:
    case DG_T_DUR:
        *out = buf;
        return (size_t)snprintf(buf, sz, "%lld", (long long)v->u.ms);
    case DG_T_BOOL:
        *out = v->u.b ? "true" : "false";
        return strlen(*out);
    }
    return 0;
}

static dg_value ref_value(const struct dg_ref *r, const struct dg_event *ev)
{
    if (r->kind == DG_REF_FIELD)
        return ev->f[r->index];
    if (r->kind == DG_REF_EXTRA)
        return ev->extra[r->index];
    return dg_none();
}

const char *dg_window_key(const struct dg_window *w, const struct dg_event *ev,
                          dg_arena *a, uint32_t *len)
{
    char tmp[DG_MAX_KEYS][48];
    const char *parts[DG_MAX_KEYS];
    size_t lens[DG_MAX_KEYS], total = 0;

    /* the common case, once per event and key set: one string field, whose
     * bytes are the key */
    if (w->nkeys == 1 && w->keys[0].kind == DG_REF_FIELD && ev->f[w->keys[0].index].t == DG_T_STR) {
        *len = ev->f[w->keys[0].index].len;
        return ev->f[w->keys[0].index].u.s;
    }

    for (int k = 0; k < w->nkeys; k++) {
        dg_value v = ref_value(&w->keys[k], ev);
        if (v.t == DG_T_NONE)
            return NULL;
        lens[k] = key_part(&v, tmp[k], sizeof tmp[k], &parts[k]);
        if (lens[k] == 0 && v.t != DG_T_STR)
            return NULL;
        total += lens[k] + 12;
    }
    if (w->nkeys == 1) {
        *len = (uint32_t)lens[0];
        return parts[0] == tmp[0] ? dg_arena_strndup(a, parts[0], lens[0]) : parts[0];
    }
    char *out = dg_arena_alloc(a, total + 1), *p = out;
    for (int k = 0; k < w->nkeys; k++) {
        char digits[24];
        int nd = 0;
        size_t l = lens[k];
        do
            digits[nd++] = (char)('0' + l % 10);
        while ((l /= 10) > 0);
        while (nd)
            *p++ = digits[--nd];
        *p++ = ':';
        memcpy(p, parts[k], lens[k]);
        p += lens[k];
    }
    *p = '\0';
    *len = (uint32_t)(p - out);
    return out;
}

/* ------------------------------------------------------------------ */
/* the aggregates: one row each                                       */

static dg_type t_count(dg_type f, char *err, size_t sz) { return DG_T_NUM; }
static dg_type t_seen(dg_type f, char *err, size_t sz) { return DG_T_BOOL; }

static dg_type t_numeric(dg_type f, char *err, size_t sz)
{
    if (f == DG_T_NUM || f == DG_T_ANY)
        return DG_T_NUM;
    snprintf(err, sz, "this aggregate needs a number field, not a %s", dg_type_name(f));
    return DG_T_NONE;
}

static dg_type t_distinct(dg_type f, char *err, size_t sz)
{
    if (f == DG_T_STR || f == DG_T_NUM || f == DG_T_ANY || f == DG_T_TIME)
        return DG_T_NUM;
    snprintf(err, sz, "distinct needs a string, number or time field, not a %s", dg_type_name(f));
    return DG_T_NONE;
}

static dg_type t_last(dg_type f, char *err, size_t sz)
{
    return f;
}

static dg_value v_count(const struct dg_win_raw *r)
{
    return r->count > 0 ? dg_num((double)r->count) : dg_none();
}

static dg_value v_sum(const struct dg_win_raw *r)
{
    return r->count > 0 ? dg_num(dg_unfixed(r->sum)) : dg_none();
}

static dg_value v_avg(const struct dg_win_raw *r)
{
    return r->count > 0 ? dg_num(dg_unfixed(r->sum) / (double)r->count) : dg_none();
}

static dg_value v_max(const struct dg_win_raw *r)
{
    return r->count > 0 ? dg_num(dg_unfixed(r->max)) : dg_none();
}

static dg_value v_min(const struct dg_win_raw *r)
{
    return r->count > 0 ? dg_num(dg_unfixed(r->min)) : dg_none();
}

static dg_value v_distinct(const struct dg_win_raw *r)
{
    return r->count > 0 ? dg_num((double)r->distinct) : dg_none();
}

static dg_value v_last(const struct dg_win_raw *r)
{
    return r->has_last ? r->last : dg_none();
}

static dg_value v_seen(const struct dg_win_raw *r)
{
    return dg_bool(r->count - r->self > 0);
}

const struct dg_agg_def dg_aggs[] = {
    {"count", 0, DG_NEED_COUNT, "number of events in the window", t_count, v_count},
    {"sum", 1, DG_NEED_COUNT | DG_NEED_SUM, "sum of a number field", t_numeric, v_sum},
    {"avg", 1, DG_NEED_COUNT | DG_NEED_SUM, "mean of a number field", t_numeric, v_avg},
    {"max", 1, DG_NEED_COUNT | DG_NEED_MAX, "largest value of a number field", t_numeric, v_max},
    {"min", 1, DG_NEED_COUNT | DG_NEED_MIN, "smallest value of a number field", t_numeric, v_min},
    {"distinct", 1, DG_NEED_COUNT | DG_NEED_DISTINCT, "number of distinct values of a field",
     t_distinct, v_distinct},
    {"last", 1, DG_NEED_LAST, "value of the field on the latest event (last(ts): its time)",
     t_last, v_last},
    {"seen", 0, DG_NEED_COUNT, "true when an earlier event (not this one) is in the window",
     t_seen, v_seen},
};
const size_t dg_naggs = sizeof(dg_aggs) / sizeof(dg_aggs[0]);

const struct dg_agg_def *dg_agg_lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < dg_naggs; i++)
        if (strlen(dg_aggs[i].name) == len && !memcmp(dg_aggs[i].name, name, len))
            return &dg_aggs[i];
    return NULL;
}
