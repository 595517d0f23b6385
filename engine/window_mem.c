/*
 * window_mem.c - the in-process state backend: window keys, the record of
 * decided events (dedupe) and freezes, in hash maps. Used by replay and the
 * tests; the Redis backend must agree with it bit for bit.
 *
 * Memory stays bounded: a window key keeps at most nbuckets + 1 buckets and
 * is dropped once it has been idle for over + step + lateness of event time;
 * a decided event_id is forgotten after dedupe_ms of event time. Both sweeps
 * are incremental (a few slots per event), so there is no pause.
 */
#include "state.h"
#include "hmap.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_PER_EVENT 4

struct bucket {
    int64_t idx, count, sum, max, min, dcount;
};

struct wkey {
    int64_t head;          /* highest bucket index that touched the key */
    int64_t last_touch;    /* event time of the latest touch (idle expiry) */
    int64_t idle_ms;       /* over + step: idle longer and it is empty */
    uint32_t nb, capb;
    struct bucket *b;      /* live buckets, sorted by idx */
    int64_t count, sum, dtotal;
    int has_last;
    int64_t last_ts;
    dg_value last;
    char *last_str;        /* storage for a string last value */
    /* distinct: value hash -> latest bucket idx */
    uint64_t *dh;
    int64_t *di;
    uint32_t dn, dcap;
    uint32_t keylen;
    char key[];            /* the map key: window hash + key bytes */
};

/* One allocation per decided event: the event_id (the map key) and the
 * decision text after it. */
struct dedupe {
    int64_t ts;
    uint32_t len, keylen;
    char data[];   /* event_id, then the decision text and a NUL */
};

static const char *dedupe_text(const struct dedupe *d)
{
    return d->data + d->keylen;
}

struct freeze {
    int64_t ts;
    char *rule_id, *reason, *event_id;
};

struct mem_state {
    struct dg_state base;
    dg_hmap keys;      /* state_id '|' key -> struct wkey */
    dg_hmap dedupe;    /* event_id -> struct dedupe */
    dg_hmap freezes;   /* scope '|' key -> struct freeze */
    int64_t watermark; /* highest event time seen */
    size_t kcursor, dcursor;
    struct dg_mem_stats stats;
    dg_buf kb;         /* scratch for map keys */
    int32_t *batch;    /* ids of the batch being applied: item index, -1 */
    size_t batch_cap;
};

static void wkey_free(struct wkey *k)
{
    free(k->b);
    free(k->last_str);
    free(k->dh);
    free(k->di);
    free(k);
}

static struct bucket *find_bucket(struct wkey *k, int64_t idx)
{
    for (uint32_t i = k->nb; i-- > 0;)  /* new buckets are at the end */
        if (k->b[i].idx == idx)
            return &k->b[i];
        else if (k->b[i].idx < idx)
            break;
    return NULL;
}

static struct bucket *get_bucket(struct wkey *k, int64_t idx)
{
    struct bucket *b = find_bucket(k, idx);
    uint32_t pos;

    if (b)
        return b;
    if (k->nb == k->capb) {
        k->capb = k->capb ? k->capb * 2 : 4;
        k->b = dg_xrealloc(k->b, k->capb * sizeof(*k->b));
    }
    pos = k->nb;
    while (pos > 0 && k->b[pos - 1].idx > idx)
        pos--;
    memmove(&k->b[pos + 1], &k->b[pos], (k->nb - pos) * sizeof(*k->b));
    k->nb++;
    b = &k->b[pos];
    memset(b, 0, sizeof(*b));
    b->idx = idx;
    return b;
}

/* Move the head forward to `head`, dropping buckets that fall out. */
static void advance(struct wkey *k, int64_t head, int64_t nbuckets)
{
    uint32_t drop = 0;
    if (head <= k->head)
        return;
    k->head = head;
    while (drop < k->nb && k->b[drop].idx < head - nbuckets) {
        k->count -= k->b[drop].count;
        k->sum -= k->b[drop].sum;
        k->dtotal -= k->b[drop].dcount;
        drop++;
    }
    if (drop) {
        memmove(k->b, k->b + drop, (k->nb - drop) * sizeof(*k->b));
        k->nb -= drop;
    }
}

static int64_t dfind(const struct wkey *k, uint64_t h, uint32_t *slot)
{
    uint32_t mask = k->dcap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        if (!k->dh[i] || k->dh[i] == h) {
            *slot = i;
            return k->dh[i] ? k->di[i] : INT64_MIN;
        }
    }
}

/* Rebuild the distinct map keeping only live values; doubles it when full. */
static void drehash(struct wkey *k, int64_t lo)
{
    uint64_t *oh = k->dh;
    int64_t *oi = k->di;
    uint32_t ocap = k->dcap, live = 0;

    for (uint32_t i = 0; i < ocap; i++)
        if (oh && oh[i] && oi[i] >= lo)
            live++;
    k->dcap = 8;
    while (k->dcap < (live + 1) * 2)
        k->dcap *= 2;
    k->dh = dg_xcalloc(k->dcap, sizeof(uint64_t));
    k->di = dg_xcalloc(k->dcap, sizeof(int64_t));
    k->dn = 0;
    for (uint32_t i = 0; i < ocap; i++) {
        if (!oh[i] || oi[i] < lo)
            continue;
        uint32_t s;
        dfind(k, oh[i], &s);
        k->dh[s] = oh[i];
        k->di[s] = oi[i];
        k->dn++;
    }
    free(oh);
    free(oi);
}

static void distinct_add(struct wkey *k, uint64_t h, int64_t b, int64_t lo)
{
    uint32_t s;
    int64_t a;

    h |= 1; /* 0 marks an empty slot */
    if (!k->dh || (k->dn + 1) * 2 > k->dcap) {
        if (!k->dh) {
            k->dcap = 8;
            k->dh = dg_xcalloc(k->dcap, sizeof(uint64_t));
            k->di = dg_xcalloc(k->dcap, sizeof(int64_t));
        } else {
            drehash(k, lo);
        }
    }
    a = dfind(k, h, &s);
    if (a != INT64_MIN && a >= lo) {
        if (b > a) {
            find_bucket(k, a)->dcount--;
            get_bucket(k, b)->dcount++;
            k->di[s] = b;
        }
        return;
    }
    if (a == INT64_MIN) {
        k->dh[s] = h;
        k->dn++;
    }
    k->di[s] = b;
    get_bucket(k, b)->dcount++;
    k->dtotal++;
}

static void fill_raw(const struct wkey *k, const struct dg_window *w, struct dg_win_raw *r)
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

/* Add and/or read one window key for one event at time t. */
static void touch(struct mem_state *ms, struct wkey *k, const struct dg_window *w,
                  struct dg_winop *op, int64_t t, dg_arena *arena, int *late)
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
            ms->stats.late_events++;
        } else {
            struct bucket *bk = get_bucket(k, b);
            if (bk->count == 0 || op->fp > bk->max)
                bk->max = op->fp;
            if (bk->count == 0 || op->fp < bk->min)
                bk->min = op->fp;
            bk->count++;
            k->count++;
            if (need & (DG_NEED_SUM)) {
                bk->sum += op->fp;
                k->sum += op->fp;
            }
            if (need & DG_NEED_DISTINCT)
                distinct_add(k, op->vhash, b, lo);
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

static const char *map_key(struct mem_state *ms, const char *a, size_t al, const char *b,
                           size_t bl)
{
    ms->kb.len = 0;
    dg_buf_append(&ms->kb, a, al);
    dg_buf_putc(&ms->kb, '|');
    dg_buf_append(&ms->kb, b, bl);
    return ms->kb.data;
}

/* A window key's map key: the window's 8-byte state hash, then the key. */
static const char *window_map_key(struct mem_state *ms, const struct dg_window *w,
                                  const struct dg_winop *op)
{
    dg_buf_reserve(&ms->kb, 8 + op->keylen);
    memcpy(ms->kb.data, &w->state_hash, 8);
    memcpy(ms->kb.data + 8, op->key, op->keylen);
    ms->kb.len = 8 + op->keylen;
    return ms->kb.data;
}

/* The clock of expiry: the latest event time seen. (An event stamped far in
 * the future moves it too; the streaming engine refuses such events against
 * the wall clock, replay trusts its file.) */
static void advance_watermark(struct mem_state *ms, int64_t ts)
{
    if (ts > ms->watermark)
        ms->watermark = ts;
}

/* Index of an earlier item of this batch with the same event_id, or -1;
 * adds item i when there is none. Open addressing over 2n slots. */
static int batch_seen(struct mem_state *ms, const struct dg_item *items, size_t i)
{
    const struct dg_item *it = &items[i];
    size_t mask = ms->batch_cap - 1;
    for (size_t j = dg_hash64(it->event_id, it->event_id_len, 7) & mask;; j = (j + 1) & mask) {
        int32_t k = ms->batch[j];
        if (k < 0) {
            ms->batch[j] = (int32_t)i;
            return -1;
        }
        if (items[k].event_id_len == it->event_id_len &&
            !memcmp(items[k].event_id, it->event_id, it->event_id_len)) {
            if (ms->watermark - items[k].ts > ms->base.dedupe_ms) {
                ms->batch[j] = (int32_t)i; /* forgotten already: a new event */
                return -1;
            }
            return k;
        }
    }
}

/* A few slots of each map per event: drop idle keys and old event ids.
 * The key map gets a few slots per key the event created: an event may add
 * a new key to every window it touches, and a sweep that visits fewer than
 * two slots per added key never catches up with a map kept at most half
 * full. (Lookups expire exactly on their own; this only returns memory.) */
static void sweep(struct mem_state *ms, size_t created)
{
    for (size_t i = 0; i < SWEEP_PER_EVENT * (1 + created) && ms->keys.n; i++) {
        struct dg_hslot *s = dg_hmap_slot(&ms->keys, &ms->kcursor);
        if (!s)
            continue;
        struct wkey *k = s->val;
        if (ms->watermark - k->last_touch > k->idle_ms + ms->base.lateness_ms) {
            dg_hmap_del_slot(&ms->keys, s); /* before the free: the key is k's */
            wkey_free(k);
            ms->stats.expired_keys++;
        }
    }
    for (int i = 0; i < SWEEP_PER_EVENT && ms->dedupe.n; i++) {
        struct dg_hslot *s = dg_hmap_slot(&ms->dedupe, &ms->dcursor);
        if (!s)
            continue;
        struct dedupe *d = s->val;
        if (ms->watermark - d->ts > ms->base.dedupe_ms) {
            dg_hmap_del_slot(&ms->dedupe, s);
            free(d);
        }
    }
}

static int mem_apply(struct dg_state *st, const struct dg_ruleset *rs, struct dg_item *items,
                     size_t n, dg_arena *arena)
{
    struct mem_state *ms = (struct mem_state *)st;

    if (ms->batch_cap < 2 * n) {
        while (ms->batch_cap < 2 * n)
            ms->batch_cap = ms->batch_cap ? ms->batch_cap * 2 : 64;
        ms->batch = dg_xrealloc(ms->batch, ms->batch_cap * sizeof(*ms->batch));
    }
    memset(ms->batch, 0xff, ms->batch_cap * sizeof(*ms->batch));

    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        struct dedupe *d = dg_hmap_get(&ms->dedupe, it->event_id, it->event_id_len);
        size_t created = 0;

        /* expiry is exact, whenever the sweep gets to the slot: an id
         * older than the dedupe window is forgotten now */
        if (d && ms->watermark - d->ts > ms->base.dedupe_ms) {
            dg_hmap_del(&ms->dedupe, it->event_id, it->event_id_len);
            free(d);
            d = NULL;
        }
        it->dup = 0;
        it->frozen = 0;
        it->late = 0;
        if (d) { /* decided before: its decision, nothing changes */
            it->dup = 1;
            it->stored = dedupe_text(d);
            it->stored_len = d->len;
            continue;
        }
        if (batch_seen(ms, items, i) >= 0) {
            /* a second copy in this very batch: the engine copies the
             * first one's decision (stored = NULL) */
            it->dup = 1;
            it->stored = NULL;
            it->stored_len = 0;
            continue;
        }
        advance_watermark(ms, it->ts);
        if (!it->decidable)
            continue;
        for (size_t o = 0; o < it->nops; o++) {
            struct dg_winop *op = &it->ops[o];
            const struct dg_window *w = &rs->windows[op->win];
            const char *mk = window_map_key(ms, w, op);
            struct wkey *k = dg_hmap_get(&ms->keys, mk, ms->kb.len);
            if (k && ms->watermark - k->last_touch > k->idle_ms + ms->base.lateness_ms) {
                /* idle past its expiry: gone, exactly as if swept already */
                dg_hmap_del(&ms->keys, mk, ms->kb.len);
                wkey_free(k);
                ms->stats.expired_keys++;
                k = NULL;
            }
            if (!k) {
                if (!op->add) { /* a read of a key never written: empty */
                    memset(&op->raw, 0, sizeof(op->raw));
                    continue;
                }
                k = dg_xcalloc(1, sizeof(*k) + ms->kb.len);
                k->head = INT64_MIN / 2;
                k->last_touch = it->ts;
                k->idle_ms = w->over_ms + w->step_ms;
                k->keylen = (uint32_t)ms->kb.len;
                memcpy(k->key, mk, ms->kb.len);
                dg_hmap_put(&ms->keys, k->key, k->keylen, k);
                created++;
            }
            touch(ms, k, w, op, it->ts, arena, &it->late);
        }
        sweep(ms, created);
        if (!ms->freezes.n)
            continue;
        for (int s = 0; s < DG_NSCOPES; s++) {
            if (!it->scope_key[s])
                continue;
            const char *name = dg_scope_name(s);
            const char *mk = map_key(ms, name, strlen(name), it->scope_key[s], it->scope_len[s]);
            if (dg_hmap_get(&ms->freezes, mk, ms->kb.len))
                it->frozen |= 1u << s;
        }
    }
    return 0;
}

static int mem_commit(struct dg_state *st, struct dg_item *items, size_t n)
{
    struct mem_state *ms = (struct mem_state *)st;

    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        if (it->dup)
            continue;
        struct dedupe *d = dg_xmalloc(sizeof(*d) + it->event_id_len + it->decision_len + 1);
        d->ts = it->ts;
        d->len = (uint32_t)it->decision_len;
        d->keylen = (uint32_t)it->event_id_len;
        memcpy(d->data, it->event_id, it->event_id_len);
        memcpy(d->data + d->keylen, it->decision ? it->decision : "", it->decision_len);
        d->data[d->keylen + d->len] = '\0';
        free(dg_hmap_put(&ms->dedupe, d->data, d->keylen, d));
        for (int s = 0; s < DG_NSCOPES; s++) {
            if (!(it->freeze & (1u << s)) || !it->scope_key[s])
                continue;
            const char *name = dg_scope_name(s);
            const char *mk = map_key(ms, name, strlen(name), it->scope_key[s], it->scope_len[s]);
            if (dg_hmap_get(&ms->freezes, mk, ms->kb.len))
                continue; /* the first freeze stands */
            struct freeze *f = dg_xcalloc(1, sizeof(*f));
            f->ts = it->ts;
            f->rule_id = dg_xstrdup(it->freeze_info.rule_id ? it->freeze_info.rule_id : "");
            f->reason = dg_xstrdup(it->freeze_info.reason ? it->freeze_info.reason : "");
            f->event_id = dg_xstrndup(it->event_id, it->event_id_len);
            dg_hmap_put(&ms->freezes, mk, ms->kb.len, f);
        }
    }
    return 0;
}

static void mem_destroy(struct dg_state *st)
{
    struct mem_state *ms = (struct mem_state *)st;
    for (size_t i = 0; i < ms->keys.cap; i++)
        if (ms->keys.slots[i].hash)
            wkey_free(ms->keys.slots[i].val);
    for (size_t i = 0; i < ms->dedupe.cap; i++)
        if (ms->dedupe.slots[i].hash)
            free(ms->dedupe.slots[i].val);
    for (size_t i = 0; i < ms->freezes.cap; i++)
        if (ms->freezes.slots[i].hash) {
            struct freeze *f = ms->freezes.slots[i].val;
            free(f->rule_id);
            free(f->reason);
            free(f->event_id);
            free(f);
        }
    dg_hmap_free(&ms->keys);
    dg_hmap_free(&ms->dedupe);
    dg_hmap_free(&ms->freezes);
    dg_buf_free(&ms->kb);
    free(ms->batch);
    free(ms);
}

static const struct dg_state_ops mem_ops = {"memory", mem_apply, mem_commit, mem_destroy, NULL};

struct dg_state *dg_state_mem_new(int64_t dedupe_ms, int64_t lateness_ms)
{
    struct mem_state *ms = dg_xcalloc(1, sizeof(*ms));
    ms->base.ops = &mem_ops;
    ms->base.dedupe_ms = dedupe_ms;
    ms->base.lateness_ms = lateness_ms;
    ms->watermark = INT64_MIN / 2;
    dg_hmap_init_borrowed(&ms->keys);
    dg_hmap_init_borrowed(&ms->dedupe);
    dg_hmap_init(&ms->freezes);
    return &ms->base;
}

void dg_state_mem_stats(struct dg_state *st, struct dg_mem_stats *out)
{
    struct mem_state *ms = (struct mem_state *)st;
    *out = ms->stats;
    out->keys = ms->keys.n;
    out->dedupe = ms->dedupe.n;
    out->freezes = ms->freezes.n;
}

int dg_state_mem_peek(struct dg_state *st, const struct dg_window *w, const char *key,
                      size_t keylen, int64_t at_ms, struct dg_win_raw *out)
{
    struct mem_state *ms = (struct mem_state *)st;
    struct dg_winop op = {0};
    op.key = key;
    op.keylen = (uint32_t)keylen;
    const char *mk = window_map_key(ms, w, &op);
    struct wkey *k = dg_hmap_get(&ms->keys, mk, ms->kb.len);
    memset(out, 0, sizeof(*out));
    if (!k)
        return -1;
    /* as a read at at_ms would see it, without moving the head */
    int64_t head = dg_bucket_of(at_ms, w->step_ms);
    if (head < k->head)
        head = k->head;
    int64_t lo = head - w->nbuckets;
    for (uint32_t i = 0; i < k->nb; i++) {
        const struct bucket *b = &k->b[i];
        if (b->idx < lo)
            continue;
        if (out->count == 0 || b->max > out->max)
            out->max = b->max;
        if (out->count == 0 || b->min < out->min)
            out->min = b->min;
        out->count += b->count;
        out->sum += b->sum;
        out->distinct += b->dcount;
    }
    out->has_last = k->has_last && dg_bucket_of(k->last_ts, w->step_ms) >= lo;
    if (out->has_last) {
        out->last_ts = k->last_ts;
        out->last = k->last;
    }
    return 0;
}

void dg_state_mem_freezes(struct dg_state *st, dg_freeze_visit_fn fn, void *ud)
{
    struct mem_state *ms = (struct mem_state *)st;
    for (size_t i = 0; i < ms->freezes.cap; i++) {
        const struct dg_hslot *s = &ms->freezes.slots[i];
        if (!s->hash)
            continue;
        const struct freeze *f = s->val;
        const char *bar = memchr(s->key, '|', s->keylen);
        char scope[16];
        snprintf(scope, sizeof scope, "%.*s", (int)(bar - s->key), s->key);
        fn(ud, scope, bar + 1, f->rule_id, f->reason, f->ts, f->event_id);
    }
}

int dg_state_ping(struct dg_state *st)
{
    return st->ops->ping ? st->ops->ping(st) : 0;
}
