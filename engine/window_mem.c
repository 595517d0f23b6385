/*
 * window_mem.c - the in-process state backend: window keys, the record of
 * decided events (dedupe) and freezes, in hash maps. Used by replay and the
 * tests; the Redis backend must agree with it bit for bit.
 *
 * Windows keyed by the same fields share one entry per key value (a group):
 * an event that feeds eight windows keyed by account, destination and the
 * pair makes three hash lookups, not eight, and a group lives as long as
 * its longest window, so short windows do not churn through malloc. Each
 * window's section still expires exactly on its own: idle for over + step +
 * lateness of event time, it reads as empty.
 *
 * Memory stays bounded: a section keeps at most nbuckets + 1 buckets; a
 * group whose sections are all idle past expiry is dropped; a decided
 * event_id is forgotten after dedupe_ms of event time. Both sweeps are
 * incremental (a few slots per event), so there is no pause.
 */
#include "state.h"
#include "hmap.h"
#include "window_state.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_PER_EVENT 4

/* One window's state in a group. */
struct section {
    uint64_t state_hash;   /* which window (survives a rule reload) */
    int64_t expire_ms;     /* over + step + lateness of that window */
    int live;
    struct dg_wstate st;
};

/* The windows keyed by the same fields, for one value of those fields. */
struct wgroup {
    int64_t last_touch;    /* latest event time that touched any section */
    int64_t expire_ms;     /* the longest of its sections' */
    uint32_t nsec, keylen;
    struct section *sec;
    char key[];            /* keyset hash (8 bytes) + key bytes */
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

/* A remembered withdrawal request: its id (the map key), then its
 * encoded dg_reqrec. */
struct mreq {
    int64_t ts;
    uint32_t len, keylen;
    char data[];
};

struct freeze {
    int64_t ts;
    char *rule_id, *reason, *event_id;
};

struct mem_state {
    struct dg_state base;
    dg_hmap keys;      /* keyset hash + key -> struct wgroup */
    dg_hmap dedupe;    /* event_id -> struct dedupe */
    dg_hmap freezes;   /* scope '|' key -> struct freeze */
    dg_hmap reqs;      /* withdrawal_id -> struct mreq (reconciliation) */
    size_t rcursor;
    int64_t watermark; /* highest event time seen */
    size_t kcursor, dcursor;
    struct dg_mem_stats stats;
    dg_buf kb;         /* scratch for map keys */
    int32_t *batch;    /* ids of the batch being applied: item index, -1 */
    size_t batch_cap;
};

static void group_free(struct wgroup *g)
{
    for (uint32_t i = 0; i < g->nsec; i++)
        dg_wstate_release(&g->sec[i].st);
    free(g->sec);
    free(g);
}

/* The section of window w (appended when the group has none yet). */
static struct section *group_section(struct mem_state *ms, struct wgroup *g,
                                     const struct dg_window *w)
{
    for (uint32_t i = 0; i < g->nsec; i++)
        if (g->sec[i].state_hash == w->state_hash)
            return &g->sec[i];
    g->sec = dg_xrealloc(g->sec, (g->nsec + 1) * sizeof(*g->sec));
    struct section *s = &g->sec[g->nsec++];
    s->state_hash = w->state_hash;
    s->expire_ms = w->over_ms + w->step_ms + ms->base.lateness_ms;
    s->live = 0;
    dg_wstate_init(&s->st);
    if (s->expire_ms > g->expire_ms)
        g->expire_ms = s->expire_ms;
    return s;
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

/* A group's map key: the windows' 8-byte keyset hash, then the key. */
static const char *group_map_key(struct mem_state *ms, const struct dg_window *w,
                                 const char *key, size_t keylen)
{
    dg_buf_reserve(&ms->kb, 8 + keylen);
    memcpy(ms->kb.data, &w->keyset_hash, 8);
    memcpy(ms->kb.data + 8, key, keylen);
    ms->kb.len = 8 + keylen;
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
        struct wgroup *g = s->val;
        if (ms->watermark - g->last_touch > g->expire_ms) {
            dg_hmap_del_slot(&ms->keys, s); /* before the free: the key is g's */
            group_free(g);
            ms->stats.expired_keys++;
        }
    }
    for (int i = 0; i < SWEEP_PER_EVENT && ms->reqs.n; i++) {
        struct dg_hslot *s = dg_hmap_slot(&ms->reqs, &ms->rcursor);
        if (!s)
            continue;
        struct mreq *q = s->val;
        if (ms->watermark - q->ts > DG_REQUEST_RETENTION_MS) {
            dg_hmap_del_slot(&ms->reqs, s);
            free(q);
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
        /* this event's groups, so that its windows share lookups */
        struct wgroup *seen_g[16];
        const struct dg_winop *seen_op[16];
        uint64_t seen_ks[16];
        size_t nseen = 0;
        for (size_t o = 0; o < it->nops; o++) {
            struct dg_winop *op = &it->ops[o];
            const struct dg_window *w = &rs->windows[op->win];
            struct wgroup *g = NULL;
            for (size_t k = 0; k < nseen && !g; k++)
                if (seen_ks[k] == w->keyset_hash && seen_op[k]->keylen == op->keylen &&
                    !memcmp(seen_op[k]->key, op->key, op->keylen))
                    g = seen_g[k];
            if (!g) {
                const char *mk = group_map_key(ms, w, op->key, op->keylen);
                g = dg_hmap_get(&ms->keys, mk, ms->kb.len);
                if (!g) {
                    if (!op->add) { /* a read of a key never written: empty */
                        memset(&op->raw, 0, sizeof(op->raw));
                        continue;
                    }
                    g = dg_xmalloc(sizeof(*g) + ms->kb.len);
                    g->last_touch = it->ts;
                    g->expire_ms = 0;
                    g->nsec = 0;
                    g->sec = NULL;
                    g->keylen = (uint32_t)ms->kb.len;
                    memcpy(g->key, mk, ms->kb.len);
                    dg_hmap_put(&ms->keys, g->key, g->keylen, g);
                    created++;
                }
                if (nseen < 16) {
                    seen_g[nseen] = g;
                    seen_op[nseen] = op;
                    seen_ks[nseen++] = w->keyset_hash;
                }
            }
            struct section *sec = group_section(ms, g, w);
            if (sec->live && ms->watermark - sec->st.last_touch > sec->expire_ms) {
                /* idle past its expiry: gone, exactly as if dropped already */
                dg_wstate_release(&sec->st);
                dg_wstate_init(&sec->st);
                sec->live = 0;
                ms->stats.expired_keys++;
            }
            if (!sec->live) {
                if (!op->add) {
                    memset(&op->raw, 0, sizeof(op->raw));
                    continue;
                }
                sec->live = 1;
                sec->st.last_touch = it->ts;
            }
            dg_wstate_touch(&sec->st, w, op, it->ts, arena, &it->late, NULL);
            if (it->ts > g->last_touch)
                g->last_touch = it->ts;
        }
        if (it->late)
            ms->stats.late_events++;
        if (it->nreq_ids) {
            it->reqs = dg_arena_alloc(arena, it->nreq_ids * sizeof(*it->reqs));
            for (size_t k = 0; k < it->nreq_ids; k++) {
                const char *id = it->req_ids[k];
                struct mreq *q = dg_hmap_get(&ms->reqs, id, strlen(id));
                struct dg_reqrec *rec = NULL;
                if (q && ms->watermark - q->ts <= DG_REQUEST_RETENTION_MS) {
                    rec = dg_arena_alloc(arena, sizeof(*rec));
                    if (dg_reqrec_decode(rec, q->data + q->keylen, q->len, arena) != 0)
                        rec = NULL; /* cannot happen: we wrote it */
                }
                it->reqs[k] = rec;
            }
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
        for (size_t w = 0; w < it->nwrites; w++) {
            const struct dg_reqrec *rec = it->writes[w];
            ms->kb.len = 0;
            dg_reqrec_encode(rec, &ms->kb);
            struct mreq *q = dg_xmalloc(sizeof(*q) + rec->idlen + ms->kb.len);
            q->ts = rec->ts;
            q->keylen = rec->idlen;
            q->len = (uint32_t)ms->kb.len;
            memcpy(q->data, rec->id, rec->idlen);
            memcpy(q->data + rec->idlen, ms->kb.data, ms->kb.len);
            struct mreq *old = dg_hmap_put(&ms->reqs, q->data, q->keylen, q);
            if (old && old != q)
                free(old);
        }
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
            group_free(ms->keys.slots[i].val);
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
    for (size_t i = 0; i < ms->reqs.cap; i++)
        if (ms->reqs.slots[i].hash)
            free(ms->reqs.slots[i].val);
    dg_hmap_free(&ms->keys);
    dg_hmap_free(&ms->dedupe);
    dg_hmap_free(&ms->freezes);
    dg_hmap_free(&ms->reqs);
    dg_buf_free(&ms->kb);
    free(ms->batch);
    free(ms);
}

static int mem_peek(struct dg_state *st, const struct dg_window *w, const char *key, size_t keylen,
                    int64_t at_ms, dg_arena *arena, struct dg_win_raw *out)
{
    if (dg_state_mem_peek(st, w, key, keylen, at_ms, out) != 0)
        return -1;
    if (out->has_last && out->last.t == DG_T_STR)
        out->last.u.s = dg_arena_strndup(arena, out->last.u.s, out->last.len);
    return 0;
}

static const struct dg_state_ops mem_ops = {"memory", mem_apply, mem_commit, mem_destroy, NULL,
                                            mem_peek, NULL, NULL};

struct dg_state *dg_state_mem_new(int64_t dedupe_ms, int64_t lateness_ms)
{
    struct mem_state *ms = dg_xcalloc(1, sizeof(*ms));
    ms->base.ops = &mem_ops;
    ms->base.dedupe_ms = dedupe_ms;
    ms->base.lateness_ms = lateness_ms;
    ms->watermark = INT64_MIN / 2;
    dg_hmap_init_borrowed(&ms->keys);
    dg_hmap_init_borrowed(&ms->dedupe);
    dg_hmap_init_borrowed(&ms->reqs);
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
    const char *mk = group_map_key(ms, w, key, keylen);
    struct wgroup *g = dg_hmap_get(&ms->keys, mk, ms->kb.len);
    memset(out, 0, sizeof(*out));
    if (!g)
        return -1;
    for (uint32_t i = 0; i < g->nsec; i++)
        if (g->sec[i].state_hash == w->state_hash && g->sec[i].live) {
            dg_wstate_peek(&g->sec[i].st, w, at_ms, out);
            return 0;
        }
    return -1;
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

int dg_state_peek(struct dg_state *st, const struct dg_window *w, const char *key, size_t keylen,
                  int64_t at_ms, dg_arena *arena, struct dg_win_raw *out)
{
    return st->ops->peek(st, w, key, keylen, at_ms, arena, out);
}
