/*
 * window_state.c - adding to and reading one window key (see
 * window_state.h and docs/windows.md). Costs: buckets are a small sorted
 * array (at most nbuckets + 1 live ones), new events land at its end;
 * max/min scan it (fine while nbuckets <= 1000); distinct values live in an
 * open-addressing map that is rebuilt without stale values when full.
 */
#include "window_state.h"

#include <stdlib.h>
#include <string.h>

/* Saturating: a sum that would leave int64 stays at the limit, the same in
 * every backend (signed overflow would be undefined). */
static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

void dg_wstate_init(struct dg_wstate *k)
{
    memset(k, 0, sizeof(*k));
    k->head = INT64_MIN / 2;
    k->last_touch = INT64_MIN / 2;
}

void dg_wstate_release(struct dg_wstate *k)
{
    free(k->b);
    free(k->last_str);
    free(k->d);
    k->b = NULL;
    k->last_str = NULL;
    k->d = NULL;
}

/* Distinct maps up to this many slots survive dg_wstate_clear; a larger
 * one goes, so that one busy spell does not hold memory for ever. */
#define KEEP_DISTINCT_SLOTS 64

void dg_wstate_clear(struct dg_wstate *k)
{
    struct dg_bucket *b = k->b;
    uint32_t capb = k->capb, dcap = k->dcap;
    struct dg_dslot *d = k->d;

    free(k->last_str);
    if (dcap > KEEP_DISTINCT_SLOTS) {
        free(d);
        d = NULL;
        dcap = 0;
    } else if (d) {
        memset(d, 0, dcap * sizeof(*d)); /* h 0: an empty slot */
    }
    dg_wstate_init(k);
    k->b = b;
    k->capb = capb;
    k->d = d;
    k->dcap = dcap;
}

static struct dg_bucket *find_bucket(struct dg_wstate *k, int64_t idx)
{
    for (uint32_t i = k->nb; i-- > 0;) /* new buckets are at the end */
        if (k->b[i].idx == idx)
            return &k->b[i];
        else if (k->b[i].idx < idx)
            break;
    return NULL;
}

static struct dg_bucket *get_bucket(struct dg_wstate *k, int64_t idx)
{
    uint32_t pos = k->nb;
    struct dg_bucket *b;

    /* new events land in the newest bucket, or a new one after it */
    while (pos > 0 && k->b[pos - 1].idx > idx)
        pos--;
    if (pos > 0 && k->b[pos - 1].idx == idx)
        return &k->b[pos - 1];
    if (k->nb == k->capb) {
        k->capb = k->capb ? k->capb * 2 : 4;
        k->b = dg_xrealloc(k->b, k->capb * sizeof(*k->b));
    }
    if (pos < k->nb)
        memmove(&k->b[pos + 1], &k->b[pos], (k->nb - pos) * sizeof(*k->b));
    k->nb++;
    b = &k->b[pos];
    memset(b, 0, sizeof(*b));
    b->idx = idx;
    return b;
}

/* Move the head forward to `head`, dropping buckets that fall out. */
static void advance(struct dg_wstate *k, int64_t head, int64_t nbuckets)
{
    uint32_t drop = 0;
    if (head <= k->head)
        return;
    k->head = head;
    while (drop < k->nb && k->b[drop].idx < head - nbuckets) {
        k->count = sat_add(k->count, -k->b[drop].count);
        k->sum = sat_add(k->sum, -k->b[drop].sum);
        k->dtotal -= k->b[drop].dcount;
        drop++;
    }
    if (drop) {
        if (drop < k->nb)
            memmove(k->b, k->b + drop, (k->nb - drop) * sizeof(*k->b));
        k->nb -= drop;
    }
}

int64_t dg_wstate_low(const struct dg_wstate *k, const struct dg_window *w)
{
    return k->head - w->nbuckets;
}

/* ---- distinct values kept in the state (memory backend) ---- */

static int64_t dfind(const struct dg_wstate *k, uint64_t h, uint32_t *slot)
{
    uint32_t mask = k->dcap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        if (!k->d[i].h || k->d[i].h == h) {
            *slot = i;
            return k->d[i].h ? k->d[i].b : INT64_MIN;
        }
    }
}

/* Rebuild the map keeping only live values; doubles it when still full. */
static void drehash(struct dg_wstate *k, int64_t lo)
{
    struct dg_dslot *old = k->d;
    uint32_t ocap = k->dcap, live = 0;

    for (uint32_t i = 0; i < ocap; i++)
        if (old && old[i].h && old[i].b >= lo)
            live++;
    k->dcap = 8;
    while (k->dcap < (live + 1) * 2)
        k->dcap *= 2;
    k->d = dg_xcalloc(k->dcap, sizeof(*k->d));
    k->dn = 0;
    for (uint32_t i = 0; i < ocap; i++) {
        if (!old || !old[i].h || old[i].b < lo)
            continue;
        uint32_t s;
        dfind(k, old[i].h, &s);
        k->d[s] = old[i];
        k->dn++;
    }
    free(old);
}

static int64_t local_get(struct dg_wstate *k, uint64_t h, int64_t lo, uint32_t *slot)
{
    if (!k->d || (k->dn + 1) * 2 > k->dcap)
        drehash(k, lo);
    return dfind(k, h, slot);
}

static void distinct_add(struct dg_wstate *k, uint64_t h, int64_t b, int64_t lo,
                         const struct dg_distinct_store *ds)
{
    uint32_t slot = 0;
    int64_t a;

    h |= 1; /* 0 marks an empty slot */
    a = ds ? ds->get(ds->ud, h) : local_get(k, h, lo, &slot);
    struct dg_bucket *old = a != INT64_MIN && a >= lo ? find_bucket(k, a) : NULL;
    if (old) {
        /* seen in the window already: it moves to the newer bucket */
        if (b > a) {
            old->dcount--;
            get_bucket(k, b)->dcount++;
            if (ds)
                ds->set(ds->ud, h, b);
            else
                k->d[slot].b = b;
        }
        return;
    }
    /* new, or last seen before the window */
    if (ds) {
        ds->set(ds->ud, h, b);
    } else {
        if (a == INT64_MIN) {
            k->d[slot].h = h;
            k->dn++;
        }
        k->d[slot].b = b;
    }
    get_bucket(k, b)->dcount++;
    k->dtotal++;
}

static void fill_raw(const struct dg_wstate *k, const struct dg_window *w, struct dg_win_raw *r)
{
    int64_t lo = k->head - w->nbuckets;
    r->count = k->count;
    r->sum = k->sum;
    r->distinct = k->dtotal;
    r->max = r->min = 0;
    for (uint32_t i = 0; i < k->nb; i++) {
        if (i == 0 || k->b[i].max > r->max)
            r->max = k->b[i].max;
        if (i == 0 || k->b[i].min < r->min)
            r->min = k->b[i].min;
    }
    r->has_last = k->has_last && dg_bucket_of(k->last_ts, w->step_ms) >= lo;
    if (r->has_last) {
        r->last_ts = k->last_ts;
        r->last = k->last;
    }
}

void dg_wstate_touch(struct dg_wstate *k, const struct dg_window *w, struct dg_winop *op,
                     int64_t t, dg_arena *arena, int *late, const struct dg_distinct_store *ds)
{
    int64_t b = dg_bucket_of(t, w->step_ms);
    uint32_t need = w->agg->need;

    advance(k, b, w->nbuckets);
    if (t > k->last_touch)
        k->last_touch = t;
    op->raw.self = 0;
    if (op->add) {
        int64_t lo = k->head - w->nbuckets;
        if (b < lo) {
            *late = 1;
        } else {
            struct dg_bucket *bk = get_bucket(k, b);
            if (bk->count == 0 || op->fp > bk->max)
                bk->max = op->fp;
            if (bk->count == 0 || op->fp < bk->min)
                bk->min = op->fp;
            bk->count++;
            k->count++;
            if (need & DG_NEED_SUM) {
                bk->sum = sat_add(bk->sum, op->fp);
                k->sum = sat_add(k->sum, op->fp);
            }
            if (need & DG_NEED_DISTINCT)
                distinct_add(k, op->vhash, b, lo, ds);
            if ((need & DG_NEED_LAST) && (!k->has_last || t >= k->last_ts)) {
                k->has_last = 1;
                k->last_ts = t;
                k->last = op->val;
                if (op->val.t == DG_T_STR) {
                    free(k->last_str);
                    k->last_str = dg_xstrndup(op->val.u.s, op->val.len);
                    k->last.u.s = k->last_str;
                }
            }
            op->raw.self = 1;
        }
    }
    if (op->read) {
        int self = op->raw.self;
        fill_raw(k, w, &op->raw);
        op->raw.self = self;
        if (op->raw.has_last && op->raw.last.t == DG_T_STR) /* outlive later touches */
            op->raw.last.u.s = dg_arena_strndup(arena, op->raw.last.u.s, op->raw.last.len);
    }
}

void dg_wstate_peek(const struct dg_wstate *k, const struct dg_window *w, int64_t at_ms,
                    struct dg_win_raw *out)
{
    int64_t head = dg_bucket_of(at_ms, w->step_ms);
    if (head < k->head)
        head = k->head;
    int64_t lo = head - w->nbuckets;

    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < k->nb; i++) {
        const struct dg_bucket *b = &k->b[i];
        if (b->idx < lo)
            continue;
        if (out->count == 0 || b->max > out->max)
            out->max = b->max;
        if (out->count == 0 || b->min < out->min)
            out->min = b->min;
        out->count += b->count;
        out->sum = sat_add(out->sum, b->sum);
        out->distinct += b->dcount;
    }
    out->has_last = k->has_last && dg_bucket_of(k->last_ts, w->step_ms) >= lo;
    if (out->has_last) {
        out->last_ts = k->last_ts;
        out->last = k->last;
    }
}

void dg_wstate_take_distinct(struct dg_wstate *k, const struct dg_window *w,
                             void (*fn)(void *ud, uint64_t h, int64_t bucket), void *ud)
{
    int64_t lo = k->head - w->nbuckets;
    for (uint32_t i = 0; i < k->dcap; i++)
        if (k->d && k->d[i].h && k->d[i].b >= lo)
            fn(ud, k->d[i].h, k->d[i].b);
    free(k->d);
    k->d = NULL;
    k->dn = k->dcap = 0;
    k->ext = 1;
}

/* ---- encoding ----
 *
 * Version 3 (written): magic 'W', version 3, then LEB128 varints, signed
 * ones zigzagged, differences taken in uint64 arithmetic (wrapping, so
 * any values round-trip): head; last_touch; count; sum; dtotal; flags
 * (1: has_last, 2: ext); last_touch - last_ts; the last value's type and
 * value (a string: length and bytes; a number: its 8 bytes LE; a time or
 * duration: zigzag; a boolean: 0/1); dn, then dn x (hash: 8 bytes LE,
 * head - bucket); nb, then nb x (head - idx, count, sum, max, min,
 * dcount). Most of these are small, so a section takes a third of
 * version 2's bytes (fixed 8-byte fields), which is still read: keys
 * written by an older engine decode as before. */

#define WSTATE_MAGIC 0x57 /* 'W' */
#define WSTATE_V2 2
#define WSTATE_VERSION 3
#define VARINT_MAX 10

static uint64_t zz(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzz(uint64_t u)
{
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* The caller reserved the room (dg_wstate_encode sizes the state first). */
static void put64(dg_buf *b, uint64_t v)
{
    dg_put_le64(b->data + b->len, v);
    b->len += 8;
}

static void putv(dg_buf *b, uint64_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    b->len = (size_t)((char *)p - b->data);
}

static int get64(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    if (end - *p < 8)
        return -1;
    *v = dg_get_le64(*p);
    *p += 8;
    return 0;
}

/* -1: truncated, or longer than 10 bytes */
static int getv(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        unsigned char c = *(*p)++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

void dg_wstate_encode(const struct dg_wstate *k, dg_buf *out)
{
    size_t need = 2 + 8 * VARINT_MAX + (k->last.t == DG_T_STR ? k->last.len : 0) + 2 * VARINT_MAX +
                  (k->ext ? 0 : (size_t)k->dn * (8 + VARINT_MAX)) + VARINT_MAX +
                  (size_t)k->nb * 6 * VARINT_MAX;
    dg_buf_reserve(out, need);
    out->data[out->len++] = (char)WSTATE_MAGIC;
    out->data[out->len++] = (char)WSTATE_VERSION;
    uint64_t head = (uint64_t)k->head;
    putv(out, zz(k->head));
    putv(out, zz(k->last_touch));
    putv(out, zz(k->count));
    putv(out, zz(k->sum));
    putv(out, zz(k->dtotal));
    putv(out, (uint64_t)(k->has_last ? 1 : 0) | (uint64_t)(k->ext ? 2 : 0));
    putv(out, zz((int64_t)((uint64_t)k->last_touch - (uint64_t)k->last_ts)));
    putv(out, k->last.t);
    switch (k->last.t) {
    case DG_T_STR:
        putv(out, k->last.len);
        memcpy(out->data + out->len, k->last.u.s, k->last.len);
        out->len += k->last.len;
        break;
    case DG_T_NUM: {
        uint64_t bits;
        memcpy(&bits, &k->last.u.n, 8);
        put64(out, bits);
        break;
    }
    case DG_T_TIME:
    case DG_T_DUR:
        putv(out, zz(k->last.u.ms));
        break;
    case DG_T_BOOL:
        putv(out, k->last.u.b ? 1 : 0);
        break;
    }
    putv(out, k->ext ? 0 : k->dn);
    for (uint32_t i = 0; !k->ext && i < k->dcap; i++)
        if (k->d && k->d[i].h) {
            put64(out, k->d[i].h);
            putv(out, zz((int64_t)(head - (uint64_t)k->d[i].b)));
        }
    putv(out, k->nb);
    for (uint32_t i = 0; i < k->nb; i++) {
        const struct dg_bucket *b = &k->b[i];
        putv(out, zz((int64_t)(head - (uint64_t)b->idx)));
        putv(out, zz(b->count));
        putv(out, zz(b->sum));
        putv(out, zz(b->max));
        putv(out, zz(b->min));
        putv(out, zz(b->dcount));
    }
}

/* The distinct map of a decoded state: room for dn values. */
static void dmap_alloc(struct dg_wstate *k, uint64_t dn)
{
    k->dcap = 8;
    while (k->dcap < (dn + 1) * 2)
        k->dcap *= 2;
    k->d = dg_xcalloc(k->dcap, sizeof(*k->d));
}

/* Adds value h seen last in bucket b; -1 when h is 0 or there already. */
static int dmap_add(struct dg_wstate *k, uint64_t h, int64_t b)
{
    uint32_t slot;
    if (!h || dfind(k, h, &slot) != INT64_MIN)
        return -1;
    k->d[slot].h = h;
    k->d[slot].b = b;
    k->dn++;
    return 0;
}

/* The last value, a string of len bytes at *p (both versions). */
static int take_last_str(struct dg_wstate *k, const unsigned char **p, const unsigned char *end, uint64_t len)
{
    if ((uint64_t)(end - *p) < len || len > UINT32_MAX)
        return -1;
    k->last_str = dg_xstrndup((const char *)*p, (size_t)len);
    k->last = dg_str(k->last_str, (size_t)len);
    *p += len;
    return 0;
}

static int decode_v3(struct dg_wstate *k, const unsigned char *p, const unsigned char *end)
{
    uint64_t v[8], t, x, dn, nb;
    for (int i = 0; i < 8; i++)
        if (getv(&p, end, &v[i]))
            return -1;
    if (v[5] > 3)
        return -1;
    k->head = unzz(v[0]);
    k->last_touch = unzz(v[1]);
    k->count = unzz(v[2]);
    k->sum = unzz(v[3]);
    k->dtotal = unzz(v[4]);
    k->has_last = (int)(v[5] & 1);
    k->ext = (int)(v[5] >> 1);
    k->last_ts = (int64_t)((uint64_t)k->last_touch - (uint64_t)unzz(v[6]));
    uint64_t head = (uint64_t)k->head;
    t = v[7];
    k->last.t = (uint8_t)t;
    switch (t) {
    case DG_T_NONE:
        break;
    case DG_T_STR:
        if (getv(&p, end, &x) || take_last_str(k, &p, end, x))
            return -1;
        break;
    case DG_T_NUM:
        if (get64(&p, end, &x))
            return -1;
        memcpy(&k->last.u.n, &x, 8);
        break;
    case DG_T_TIME:
    case DG_T_DUR:
    case DG_T_BOOL:
        if (getv(&p, end, &x) || (t == DG_T_BOOL && x > 1))
            return -1;
        if (t == DG_T_BOOL)
            k->last.u.b = (int)x;
        else
            k->last.u.ms = unzz(x);
        break;
    default:
        return -1;
    }
    /* every distinct value takes 9 bytes or more */
    if (getv(&p, end, &dn) || dn > (1u << 24) || (uint64_t)(end - p) < dn * 9 || (k->ext && dn))
        return -1;
    if (dn)
        dmap_alloc(k, dn);
    for (uint64_t i = 0; i < dn; i++) {
        uint64_t h;
        if (get64(&p, end, &h) || getv(&p, end, &x) || dmap_add(k, h, (int64_t)(head - (uint64_t)unzz(x))))
            return -1;
    }
    /* every bucket takes 6 bytes or more */
    if (getv(&p, end, &nb) || nb > 4096 || (uint64_t)(end - p) < nb * 6)
        return -1;
    k->nb = k->capb = (uint32_t)nb;
    k->b = nb ? dg_xmalloc(nb * sizeof(*k->b)) : NULL;
    for (uint32_t i = 0; i < k->nb; i++) {
        uint64_t f[6];
        for (int j = 0; j < 6; j++)
            if (getv(&p, end, &f[j]))
                return -1;
        k->b[i].idx = (int64_t)(head - (uint64_t)unzz(f[0]));
        k->b[i].count = unzz(f[1]);
        k->b[i].sum = unzz(f[2]);
        k->b[i].max = unzz(f[3]);
        k->b[i].min = unzz(f[4]);
        k->b[i].dcount = unzz(f[5]);
    }
    return p == end ? 0 : -1;
}

/* Version 2: the same fields, each 8 bytes LE; no deltas */
static int decode_v2(struct dg_wstate *k, const unsigned char *p, const unsigned char *end)
{
    uint64_t v[8], nb, t;

    for (int i = 0; i < 8; i++)
        if (get64(&p, end, &v[i]))
            return -1;
    k->head = (int64_t)v[0];
    k->last_touch = (int64_t)v[1];
    k->count = (int64_t)v[2];
    k->sum = (int64_t)v[3];
    k->dtotal = (int64_t)v[4];
    k->has_last = (int)v[5];
    k->last_ts = (int64_t)v[6];
    t = v[7];
    k->last.t = (uint8_t)t;
    switch (t) {
    case DG_T_NONE:
        break;
    case DG_T_STR: {
        uint64_t l;
        if (get64(&p, end, &l) || take_last_str(k, &p, end, l))
            return -1;
        break;
    }
    case DG_T_NUM: {
        uint64_t bits;
        if (get64(&p, end, &bits))
            return -1;
        memcpy(&k->last.u.n, &bits, 8);
        break;
    }
    case DG_T_TIME:
    case DG_T_DUR:
    case DG_T_BOOL: {
        uint64_t x;
        if (get64(&p, end, &x))
            return -1;
        if (t == DG_T_BOOL)
            k->last.u.b = (int)x;
        else
            k->last.u.ms = (int64_t)x;
        break;
    }
    default:
        return -1;
    }
    uint64_t ext, dn;
    if (get64(&p, end, &ext) || get64(&p, end, &dn) || ext > 1 || dn > (1u << 24) ||
        (uint64_t)(end - p) < dn * 16)
        return -1;
    k->ext = (int)ext;
    if (dn)
        dmap_alloc(k, dn);
    for (uint64_t i = 0; i < dn; i++) {
        uint64_t h = 0, b = 0;
        get64(&p, end, &h); /* lengths were checked above */
        get64(&p, end, &b);
        if (dmap_add(k, h, (int64_t)b))
            return -1;
    }
    if (get64(&p, end, &nb) || nb > 4096 || (uint64_t)(end - p) != nb * 48)
        return -1;
    k->nb = k->capb = (uint32_t)nb;
    k->b = nb ? dg_xmalloc(nb * sizeof(*k->b)) : NULL;
    for (uint32_t i = 0; i < k->nb; i++) {
        uint64_t f[6] = {0};
        for (int j = 0; j < 6; j++)
            get64(&p, end, &f[j]);
        k->b[i].idx = (int64_t)f[0];
        k->b[i].count = (int64_t)f[1];
        k->b[i].sum = (int64_t)f[2];
        k->b[i].max = (int64_t)f[3];
        k->b[i].min = (int64_t)f[4];
        k->b[i].dcount = (int64_t)f[5];
    }
    return 0;
}

int dg_wstate_decode(struct dg_wstate *k, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    int rc = -1;

    dg_wstate_init(k);
    if (len >= 2 && p[0] == WSTATE_MAGIC && p[1] == WSTATE_VERSION)
        rc = decode_v3(k, p + 2, p + len);
    else if (len >= 2 && p[0] == WSTATE_MAGIC && p[1] == WSTATE_V2)
        rc = decode_v2(k, p + 2, p + len);
    if (rc != 0)
        dg_wstate_release(k);
    return rc;
}
