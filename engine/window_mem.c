/*
 * window_mem.c - the in-process state backend: window keys, the record of
 * decided events (dedupe), withdrawal request records and freezes. Used by
 * replay and the tests; the Redis backend must agree with it bit for bit
 * (the window arithmetic is window_state.c's, shared by both).
 *
 * Windows keyed by the same fields share one entry per key value (a group):
 * an event that feeds eight windows keyed by account, destination and the
 * pair makes three lookups, not eight. A group is one allocation from a
 * slab of huge pages: a header with the key, then one cache-line-aligned
 * section per window of its key fields. Each window's section still
 * expires exactly on its own: idle for over + step + lateness of event
 * time, it reads as empty, and it is cleared in place (its bucket array is
 * kept for the next event), so short windows on quiet keys do not churn
 * through malloc.
 *
 * Lookups go through dg_index maps of (hash, pointer), 16 bytes a slot: a
 * probe compares hashes and touches an entry only when they agree. Decided
 * events and request records are written to record logs: blocks filled in
 * order and emptied from the front as the records expire, with no malloc
 * or free per record.
 *
 * The state is tens of MB read at random, so memory latency is most of the
 * cost: apply() works out the hashes of a whole batch first and fetches
 * what each event needs a few events ahead (index slots, groups, sections,
 * buckets), and the sweep and the logs fetch what they will visit next.
 *
 * Memory stays bounded: a section keeps at most nbuckets + 1 buckets; a
 * group whose sections are all idle past expiry is dropped by an
 * incremental sweep (a few slots per event, so there is no pause); a decided
 * event_id is forgotten after dedupe_ms of event time, a request record
 * after DG_REQUEST_RETENTION_MS.
 */
#include "state.h"
#include "hmap.h"
#include "window_state.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_PER_EVENT 4
#define SWEEP_AHEAD 16   /* slots: about four events ahead */

/* ------------------------------------------------------------------ */
/* record log: variable-size records appended to blocks, removed from  */
/* the front. Removal only moves an offset; blocks emptied while a     */
/* batch is applied are reused from the next apply() on, so every      */
/* pointer apply() hands out stays valid through that batch's commit.  */

#define LOG_BLOCK (64 * 1024)
#define LOG_SPARES 4

struct rhdr {
    int64_t ts;      /* the time its expiry is measured from */
    uint64_t h;      /* its index hash */
    uint32_t size;   /* bytes of the whole record, a multiple of 8 */
    uint32_t dead;   /* replaced or forgotten: no index slot points here */
};

struct rblock {
    struct rblock *next;
    size_t head, used, size;   /* head: the first record not removed */
    _Alignas(16) char data[];
};

struct rlog {
    struct rblock *first, *last;
    struct rblock *retired;   /* emptied during the current batch */
    struct rblock *spare;     /* ready for reuse */
    size_t nspare;
};

static void *log_append(struct rlog *l, size_t size)
{
    struct rblock *b = l->last;
    size = (size + 7) & ~(size_t)7;
    if (!b || b->size - b->used < size) {
        if (size <= LOG_BLOCK && l->spare) {
            b = l->spare;
            l->spare = b->next;
            l->nspare--;
        } else {
            size_t sz = size > LOG_BLOCK ? size : LOG_BLOCK;
            b = dg_xmalloc(sizeof(*b) + sz);
            b->size = sz;
        }
        b->next = NULL;
        b->head = b->used = 0;
        if (l->last)
            l->last->next = b;
        else
            l->first = b;
        l->last = b;
    }
    struct rhdr *r = (struct rhdr *)(b->data + b->used);
    b->used += size;
    r->size = (uint32_t)size;
    r->dead = 0;
    return r;
}

/* The oldest record not removed, or NULL. */
static struct rhdr *log_front(struct rlog *l)
{
    struct rblock *b;
    while ((b = l->first) && b->head == b->used && b != l->last) {
        l->first = b->next;
        b->next = l->retired;
        l->retired = b;
    }
    return b && b->head < b->used ? (struct rhdr *)(b->data + b->head) : NULL;
}

static void log_pop(struct rlog *l)
{
    struct rblock *b = l->first;
    b->head += ((struct rhdr *)(b->data + b->head))->size;
}

/* Between batches: blocks emptied by the last one may be written again. */
static void log_recycle(struct rlog *l)
{
    while (l->retired) {
        struct rblock *b = l->retired;
        l->retired = b->next;
        if (b->size == LOG_BLOCK && l->nspare < LOG_SPARES) {
            b->next = l->spare;
            l->spare = b;
            l->nspare++;
        } else {
            free(b);
        }
    }
}

static void log_free_list(struct rblock *b)
{
    while (b) {
        struct rblock *next = b->next;
        free(b);
        b = next;
    }
}

static void log_free(struct rlog *l)
{
    log_free_list(l->first);
    log_free_list(l->retired);
    log_free_list(l->spare);
    memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ */
/* the state                                                          */

/* One window's state in a group, on a cache-line boundary: which window
 * it is and the state's leading fields (all a count, sum or seen touches,
 * besides its buckets) share the first line. */
struct section {
    uint64_t state_hash;   /* which window (survives a rule reload) */
    struct dg_wstate st;
} __attribute__((aligned(64)));

/* The windows keyed by the same fields, for one value of those fields.
 * One allocation, from a cache-line boundary: this header, the key (a
 * lookup compares it, so it shares the header's line), a NUL, a flag byte
 * per section slot, then the sections. */
struct wgroup {
    int64_t last_touch;    /* latest event time that touched any section */
    int64_t expire_ms;     /* the longest of its sections' */
    uint64_t keyset_hash;
    uint32_t nsec, keylen; /* section slots; key bytes */
    char key[];
};

#define GROUP_ALIGN 64
#define SEC_USED 1         /* the slot belongs to a window */
#define SEC_LIVE 2         /* its state holds something */

static size_t group_head_room(size_t keylen, size_t nsec)
{
    return (sizeof(struct wgroup) + keylen + 1 + nsec + GROUP_ALIGN - 1) & ~(size_t)(GROUP_ALIGN - 1);
}

static uint8_t *group_flags(const struct wgroup *g)
{
    return (uint8_t *)g->key + g->keylen + 1;
}

static struct section *group_secs(const struct wgroup *g)
{
    return (struct section *)((char *)g + group_head_room(g->keylen, g->nsec));
}

/* ---- group memory ----
 * Groups come and go all the time (keys expire), are read at random and
 * are a hundred bytes to a few KB: they live in 2 MB chunks (asked to be
 * huge pages, so reaching one costs no TLB walk) cut in multiples of a
 * cache line, with a free list per size. Memory is reused, not returned:
 * what the state peaked at. */

#define SLAB_CHUNK ((size_t)2 << 20)
#define SLAB_LINE 64
#define SLAB_CLASSES 64    /* sizes up to 4 KB; larger ones use the heap */

struct slab {
    void *free[SLAB_CLASSES];
    char *cur, *end;
    void **chunks;
    size_t nchunks, cap;
};

static void *slab_alloc(struct slab *sl, size_t size)
{
    size_t c = (size + SLAB_LINE - 1) / SLAB_LINE;
    void *p;

    if (c > SLAB_CLASSES) {
        p = aligned_alloc(SLAB_LINE, c * SLAB_LINE);
        goto out;
    }
    if ((p = sl->free[c - 1])) {
        sl->free[c - 1] = *(void **)p;
        return p;
    }
    if ((size_t)(sl->end - sl->cur) < c * SLAB_LINE) {
        if (posix_memalign(&p, SLAB_CHUNK, SLAB_CHUNK) != 0)
            p = NULL;
        if (!p)
            goto out;
        dg_advise_hugepages(p, SLAB_CHUNK);
        if (sl->nchunks == sl->cap) {
            sl->cap = sl->cap ? sl->cap * 2 : 16;
            sl->chunks = dg_xrealloc(sl->chunks, sl->cap * sizeof(*sl->chunks));
        }
        sl->chunks[sl->nchunks++] = p;
        sl->cur = p;
        sl->end = sl->cur + SLAB_CHUNK;
    }
    p = sl->cur;
    sl->cur += c * SLAB_LINE;
out:
    if (!p) {
        fprintf(stderr, "drainguard: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

static void slab_free(struct slab *sl, void *p, size_t size)
{
    size_t c = (size + SLAB_LINE - 1) / SLAB_LINE;
    if (c > SLAB_CLASSES) {
        free(p);
        return;
    }
    *(void **)p = sl->free[c - 1];
    sl->free[c - 1] = p;
}

static void slab_destroy(struct slab *sl)
{
    for (size_t i = 0; i < sl->nchunks; i++)
        free(sl->chunks[i]);
    free(sl->chunks);
    memset(sl, 0, sizeof(*sl));
}

static size_t group_size(size_t keylen, size_t nsec)
{
    return group_head_room(keylen, nsec) + nsec * sizeof(struct section);
}

static struct wgroup *group_alloc(struct slab *sl, size_t keylen, size_t nsec)
{
    struct wgroup *g = slab_alloc(sl, group_size(keylen, nsec));
    g->nsec = (uint32_t)nsec;
    g->keylen = (uint32_t)keylen;
    return g;
}

/* A decided event: its event_id (the index key) and its decision text. */
struct drec {
    struct rhdr h;         /* ts: the event's time */
    uint32_t idlen, len;
    char data[];           /* event_id, then the decision text and a NUL */
};

/* A remembered withdrawal request (reconcile.h), strings NUL-terminated
 * after the header: id, asset, destination, paying tx. */
struct qrec {
    struct rhdr h;         /* ts: the request's time */
    int64_t amount;
    uint32_t idlen, assetlen, destlen, txlen;
    uint8_t action, paid, has_tx;
    char data[];
};

struct freeze {
    int64_t ts;
    char *rule_id, *reason, *event_id;
    char *key;             /* the scope's key (the map key is "scope|key") */
    uint32_t keylen;
};

/* What the state needs per window of the rule set being applied. */
struct wplan {
    int64_t expire_ms;
    uint32_t slot;         /* its section's slot in a group of its key fields */
    uint32_t nslots;       /* windows sharing its key fields */
    uint32_t keyset;       /* the first window keyed by the same fields */
    uint8_t wide;          /* its state's second cache line is used too */
    uint8_t distinct;      /* it keeps distinct values */
};

struct mem_state {
    struct dg_state base;
    dg_index keys;         /* keyset + key -> struct wgroup */
    dg_index dedupe;       /* event_id -> struct drec */
    dg_index reqs;         /* withdrawal_id -> struct qrec (reconciliation) */
    struct rlog dlog, qlog;
    struct slab groups;    /* where groups live */
    dg_hmap freezes;       /* scope '|' key -> struct freeze (for listing) */
    dg_index frozen[DG_NSCOPES]; /* per scope: key -> struct freeze */
    int64_t watermark;     /* highest event time seen */
    size_t kcursor;
    struct dg_mem_stats stats;
    dg_buf kb;             /* scratch for freeze keys */
    int32_t *batch;        /* ids of the batch being applied: item index, -1 */
    size_t batch_cap;
    /* worked out for the whole batch before it is applied, so that the
     * index slots, groups and states it needs are fetched ahead */
    uint64_t *gh;          /* per op: its group's hash (first op of the group) */
    int32_t *gref;         /* per op: the item's earlier op in the same group, or -1 */
    struct wgroup **gp;    /* per op: its group once found (apply_windows) */
    size_t *obase;         /* per item: where its ops start in gh and gref */
    size_t ops_cap, items_cap;
    uint64_t *qh;          /* per request id of the batch: its hash */
    size_t q_cap;
    uint64_t *idh;         /* event_id hash per item of the batch applied */
    const struct dg_item *applied;   /* that batch, for commit() */
    size_t napplied;
    /* per window of the rule set last applied (a cache: checked by
     * pointer, version and size, and only ever a hint for sections) */
    const struct dg_ruleset *plan_rs;
    char plan_version[sizeof(((struct dg_ruleset *)0)->version)];
    size_t plan_n;
    struct wplan *plan;
    int32_t *lead;         /* per keyset (struct wplan), while an item is
                              prepared: its op that leads that group, or -1 */
};

static const char *drec_text(const struct drec *d)
{
    return d->data + d->idlen;
}

static void group_free(struct mem_state *ms, struct wgroup *g)
{
    const uint8_t *fl = group_flags(g);
    struct section *sec = group_secs(g);
    for (uint32_t i = 0; i < g->nsec; i++)
        if (fl[i] & SEC_USED)
            dg_wstate_release(&sec[i].st);
    slab_free(&ms->groups, g, group_size(g->keylen, g->nsec));
}

static void make_plan(struct mem_state *ms, const struct dg_ruleset *rs)
{
    if (ms->plan_rs == rs && ms->plan_n == rs->nwindows &&
        !memcmp(ms->plan_version, rs->version, sizeof ms->plan_version))
        return;
    free(ms->plan);
    ms->plan = dg_xcalloc(rs->nwindows + 1, sizeof(*ms->plan));
    free(ms->lead);
    ms->lead = dg_xmalloc((rs->nwindows + 1) * sizeof(*ms->lead));
    for (size_t i = 0; i <= rs->nwindows; i++)
        ms->lead[i] = -1;
    for (size_t i = 0; i < rs->nwindows; i++) {
        const struct dg_window *w = &rs->windows[i];
        struct wplan *p = &ms->plan[i];
        p->expire_ms = w->over_ms + w->step_ms + ms->base.lateness_ms;
        p->keyset = (uint32_t)i;
        p->wide = (w->agg->need & (DG_NEED_DISTINCT | DG_NEED_LAST)) != 0;
        p->distinct = (w->agg->need & DG_NEED_DISTINCT) != 0;
        for (size_t j = 0; j < rs->nwindows; j++)
            if (rs->windows[j].keyset_hash == w->keyset_hash) {
                if (j < i)
                    p->slot++;
                if (j < p->keyset)
                    p->keyset = (uint32_t)j;
                p->nslots++;
            }
    }
    ms->plan_rs = rs;
    ms->plan_n = rs->nwindows;
    memcpy(ms->plan_version, rs->version, sizeof ms->plan_version);
}

static uint64_t group_hash(const struct dg_window *w, const char *key, size_t keylen)
{
    return dg_index_hash(key, keylen, w->keyset_hash);
}

/* The group of (keyset, key), or NULL with *hole the empty slot where it
 * would go. */
static struct wgroup *group_find(struct mem_state *ms, uint64_t h, uint64_t keyset,
                                 const char *key, size_t keylen, struct dg_islot **hole)
{
    size_t mask = ms->keys.cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct dg_islot *s = &ms->keys.slot[i];
        if (!s->h) {
            *hole = s;
            return NULL;
        }
        if (s->h == h) {
            struct wgroup *g = s->p;
            if (g->keyset_hash == keyset && g->keylen == keylen && !memcmp(g->key, key, keylen))
                return g;
        }
    }
}

static struct wgroup *group_new(struct mem_state *ms, const struct dg_window *w,
                                const struct wplan *wp, const char *key, size_t keylen,
                                int64_t ts)
{
    struct wgroup *g = group_alloc(&ms->groups, keylen, wp->nslots ? wp->nslots : 1);
    g->last_touch = ts;
    g->expire_ms = 0;
    g->keyset_hash = w->keyset_hash;
    memcpy(g->key, key, keylen);
    g->key[keylen] = '\0';
    memset(group_flags(g), 0, g->nsec);
    return g;
}

/* Twice the section slots (a rule reload added windows keyed like these):
 * the group moves, and its index slot follows. */
static struct wgroup *group_grow(struct mem_state *ms, struct wgroup *g, uint64_t h)
{
    struct wgroup *n = group_alloc(&ms->groups, g->keylen, (size_t)g->nsec * 2);
    n->last_touch = g->last_touch;
    n->expire_ms = g->expire_ms;
    n->keyset_hash = g->keyset_hash;
    memcpy(n->key, g->key, g->keylen + 1);
    memcpy(group_flags(n), group_flags(g), g->nsec);
    memset(group_flags(n) + g->nsec, 0, g->nsec);
    memcpy(group_secs(n), group_secs(g), g->nsec * sizeof(struct section));
    dg_index_slot_of(&ms->keys, h, g)->p = n;
    slab_free(&ms->groups, g, group_size(g->keylen, g->nsec));
    return n;
}

/* The section of window w in *g (claimed when the group has none yet; the
 * group may move to make room). Sections sit at the slot the plan gives
 * their window, so the first look finds them; after a rule reload they
 * may sit elsewhere. */
static struct section *group_section(struct mem_state *ms, struct wgroup **gp, uint64_t h,
                                     const struct dg_window *w, const struct wplan *wp,
                                     uint8_t **flp)
{
    struct wgroup *g = *gp;
    uint8_t *fl = group_flags(g);
    struct section *sec = group_secs(g);
    uint32_t i = wp->slot;

    if (i < g->nsec && (fl[i] & SEC_USED) && sec[i].state_hash == w->state_hash)
        goto found;
    for (i = 0; i < g->nsec; i++)
        if ((fl[i] & SEC_USED) && sec[i].state_hash == w->state_hash)
            goto found;
    i = wp->slot;
    if (i >= g->nsec || (fl[i] & SEC_USED)) {
        for (i = 0; i < g->nsec && (fl[i] & SEC_USED); i++)
            ;
        if (i == g->nsec) {
            *gp = g = group_grow(ms, g, h);
            fl = group_flags(g);
            sec = group_secs(g);
        }
    }
    fl[i] = SEC_USED;
    sec[i].state_hash = w->state_hash;
    dg_wstate_init(&sec[i].st);
    if (wp->expire_ms > g->expire_ms)
        g->expire_ms = wp->expire_ms;
found:
    *flp = &fl[i];
    return &sec[i];
}

/* The live section of window w in g, or NULL (for peek). */
static const struct section *group_section_get(const struct wgroup *g, const struct dg_window *w)
{
    const uint8_t *fl = group_flags(g);
    const struct section *sec = group_secs(g);
    for (uint32_t i = 0; i < g->nsec; i++)
        if ((fl[i] & SEC_USED) && sec[i].state_hash == w->state_hash)
            return (fl[i] & SEC_LIVE) ? &sec[i] : NULL;
    return NULL;
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
static int batch_seen(struct mem_state *ms, const struct dg_item *items, size_t i, uint64_t h)
{
    const struct dg_item *it = &items[i];
    size_t mask = ms->batch_cap - 1;
    for (size_t j = h & mask;; j = (j + 1) & mask) {
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

static struct dg_islot *dedupe_find(struct mem_state *ms, uint64_t h, const char *id, size_t len)
{
    size_t mask = ms->dedupe.cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct dg_islot *s = &ms->dedupe.slot[i];
        if (!s->h)
            return s;
        if (s->h == h) {
            const struct drec *d = s->p;
            if (d->idlen == len && !memcmp(d->data, id, len))
                return s;
        }
    }
}

static struct dg_islot *req_find(struct mem_state *ms, uint64_t h, const char *id, size_t len)
{
    size_t mask = ms->reqs.cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct dg_islot *s = &ms->reqs.slot[i];
        if (!s->h)
            return s;
        if (s->h == h) {
            const struct qrec *q = s->p;
            if (q->idlen == len && !memcmp(q->data, id, len))
                return s;
        }
    }
}

#define ID_SEED 0x6576656e74ULL  /* "event" */
#define REQ_SEED 0x72657175ULL   /* "requ" */

/* Forget the oldest records once expired; a record replaced or forgotten
 * earlier only has its bytes reclaimed. Each record goes once, so this is
 * O(1) per event amortised. */
static void expire_dedupe(struct mem_state *ms)
{
    struct rhdr *r;
    while ((r = log_front(&ms->dlog)) && (r->dead || ms->watermark - r->ts > ms->base.dedupe_ms)) {
        struct dg_islot *s = r->dead ? NULL : dg_index_slot_of(&ms->dedupe, r->h, r);
        if (s)
            dg_index_del(&ms->dedupe, s);
        log_pop(&ms->dlog);
    }
    /* records expire about one per event, oldest first: the next one's
     * index slot and the record after it are wanted soon */
    if (r) {
        __builtin_prefetch(&ms->dedupe.slot[r->h & (ms->dedupe.cap - 1)]);
        __builtin_prefetch((char *)r + r->size);
    }
}

static void expire_reqs(struct mem_state *ms)
{
    struct rhdr *r;
    while ((r = log_front(&ms->qlog)) &&
           (r->dead || ms->watermark - r->ts > DG_REQUEST_RETENTION_MS)) {
        struct dg_islot *s = r->dead ? NULL : dg_index_slot_of(&ms->reqs, r->h, r);
        if (s)
            dg_index_del(&ms->reqs, s);
        log_pop(&ms->qlog);
    }
    if (r) {
        __builtin_prefetch(&ms->reqs.slot[r->h & (ms->reqs.cap - 1)]);
        __builtin_prefetch((char *)r + r->size);
    }
}

/* A few slots of the key index per event: drop idle groups. The sweep
 * gets a few slots per group the event created: an event may add a new key
 * to every window it touches, and a sweep that visits fewer than two slots
 * per added key never catches up with an index kept at most half full.
 * (Lookups expire exactly on their own; this only returns memory.) */
static void sweep(struct mem_state *ms, size_t created)
{
    for (size_t i = 0; i < SWEEP_PER_EVENT * (1 + created) && ms->keys.n; i++) {
        /* the groups a few events on: each visit would otherwise wait on
         * memory (the slots come in order, the groups do not) */
        const struct dg_islot *ahead = &ms->keys.slot[(ms->kcursor + SWEEP_AHEAD) & (ms->keys.cap - 1)];
        if (ahead->h)
            __builtin_prefetch(ahead->p);
        struct dg_islot *s = dg_index_next(&ms->keys, &ms->kcursor);
        if (!s)
            continue;
        struct wgroup *g = s->p;
        if (ms->watermark - g->last_touch > g->expire_ms) {
            dg_index_del(&ms->keys, s);
            group_free(ms, g);
            ms->stats.expired_keys++;
        }
    }
    expire_reqs(ms);
    expire_dedupe(ms);
}

/* The record of a request, as reconcile.h has it; strings point into the
 * log, valid until the next apply(). */
static const struct dg_reqrec *req_view(const struct qrec *q, dg_arena *arena)
{
    struct dg_reqrec *r = dg_arena_alloc(arena, sizeof(*r));
    const char *p = q->data;
    r->id = p;
    r->idlen = q->idlen;
    p += q->idlen + 1;
    r->asset = p;
    r->assetlen = q->assetlen;
    p += q->assetlen + 1;
    r->dest = p;
    r->destlen = q->destlen;
    p += q->destlen + 1;
    r->tx = q->has_tx ? p : NULL;
    r->txlen = q->txlen;
    r->action = q->action;
    r->paid = q->paid;
    r->amount = q->amount;
    r->ts = q->h.ts;
    return r;
}

/* ---- looking ahead ----
 * A batch's state is mostly far from the cache (tens of MB of groups,
 * sections and buckets): one event needs a dozen lines from memory, each
 * load depending on the one before (index slot, group, section, bucket).
 * So the hashes of the whole batch are worked out first and their index
 * slots fetched; while item i is applied, the groups of item i + 3 and the
 * buckets of item i + 1 are fetched. Prefetches read only live memory and
 * change nothing, so they never change a result. */

/* items ahead (measured: 2..16 do about as well; none costs ~10%) */
#ifndef AHEAD_GROUPS
#define AHEAD_GROUPS 3
#endif
#ifndef AHEAD_STATES
#define AHEAD_STATES 1
#endif

static size_t grown(size_t cap, size_t need)
{
    while (cap < need)
        cap = cap ? cap * 2 : 1024;
    return cap;
}

static void prepare(struct mem_state *ms, const struct dg_ruleset *rs, const struct dg_item *items,
                    size_t n)
{
    size_t nops = 0, nq = 0;
    for (size_t i = 0; i < n; i++) {
        nops += items[i].nops;
        nq += items[i].nreq_ids;
    }
    if (ms->ops_cap < nops + 1) {
        ms->ops_cap = grown(ms->ops_cap, nops + 1);
        ms->gh = dg_xrealloc(ms->gh, ms->ops_cap * sizeof(*ms->gh));
        ms->gref = dg_xrealloc(ms->gref, ms->ops_cap * sizeof(*ms->gref));
        ms->gp = dg_xrealloc(ms->gp, ms->ops_cap * sizeof(*ms->gp));
    }
    if (ms->items_cap < n + 1) {
        ms->items_cap = grown(ms->items_cap, n + 1);
        ms->obase = dg_xrealloc(ms->obase, ms->items_cap * sizeof(*ms->obase));
        ms->idh = dg_xrealloc(ms->idh, ms->items_cap * sizeof(*ms->idh));
    }
    if (ms->q_cap < nq + 1) {
        ms->q_cap = grown(ms->q_cap, nq + 1);
        ms->qh = dg_xrealloc(ms->qh, ms->q_cap * sizeof(*ms->qh));
    }

    nops = nq = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dg_item *it = &items[i];
        uint64_t h = dg_index_hash(it->event_id, it->event_id_len, ID_SEED);
        ms->idh[i] = h;
        __builtin_prefetch(&ms->dedupe.slot[h & (ms->dedupe.cap - 1)]);
        ms->obase[i] = nops;
        for (size_t o = 0; o < it->nops; o++) {
            const struct dg_winop *op = &it->ops[o];
            const struct dg_window *w = &rs->windows[op->win];
            uint32_t ks = ms->plan[op->win].keyset;
            int32_t l = ms->lead[ks];
            /* windows keyed by the same fields share a group (the pipeline
             * hands them the same key pointer) */
            if (l >= 0 && it->ops[l].keylen == op->keylen &&
                (it->ops[l].key == op->key || !memcmp(it->ops[l].key, op->key, op->keylen))) {
                ms->gref[nops + o] = l;
                continue;
            }
            ms->lead[ks] = (int32_t)o;
            ms->gref[nops + o] = -1;
            h = group_hash(w, op->key, op->keylen);
            ms->gh[nops + o] = h;
            __builtin_prefetch(&ms->keys.slot[h & (ms->keys.cap - 1)]);
        }
        for (size_t o = 0; o < it->nops; o++)
            ms->lead[ms->plan[it->ops[o].win].keyset] = -1;
        nops += it->nops;
        for (size_t k = 0; k < it->nreq_ids; k++) {
            const char *id = it->req_ids[k];
            h = dg_index_hash(id, strlen(id), REQ_SEED);
            ms->qh[nq++] = h;
            __builtin_prefetch(&ms->reqs.slot[h & (ms->reqs.cap - 1)]);
        }
    }
    ms->obase[n] = nops;
}

/* Item i's groups (their header, key and the sections its ops use) and
 * request records. */
static void fetch_groups(struct mem_state *ms, const struct dg_item *it, size_t i, size_t qbase)
{
    const uint64_t *gh = ms->gh + ms->obase[i];
    const int32_t *gref = ms->gref + ms->obase[i];
    struct wgroup **gp = ms->gp + ms->obase[i]; /* scratch until item i is applied */
    for (size_t o = 0; o < it->nops; o++) {
        const char *g;
        if (gref[o] < 0) {
            gp[o] = dg_index_peek(&ms->keys, gh[o]);
            if (gp[o]) {
                __builtin_prefetch(gp[o]);
                __builtin_prefetch((char *)gp[o] + 64);
            }
        }
        g = (const char *)gp[gref[o] < 0 ? o : (size_t)gref[o]];
        if (g) { /* the op's section, where the plan places it */
            const struct wplan *wp = &ms->plan[it->ops[o].win];
            const char *sec = g + group_head_room(it->ops[o].keylen, wp->nslots) +
                              wp->slot * sizeof(struct section);
            __builtin_prefetch(sec);
            if (wp->wide)
                __builtin_prefetch(sec + 64);
        }
    }
    for (size_t k = 0; k < it->nreq_ids; k++) {
        const void *q = dg_index_peek(&ms->reqs, ms->qh[qbase + k]);
        if (q)
            __builtin_prefetch(q);
    }
}

/* Item i's buckets and distinct maps. */
static void fetch_states(struct mem_state *ms, const struct dg_ruleset *rs,
                         const struct dg_item *it, size_t i)
{
    const uint64_t *gh = ms->gh + ms->obase[i];
    const int32_t *gref = ms->gref + ms->obase[i];
    struct wgroup **gp = ms->gp + ms->obase[i];
    for (size_t o = 0; o < it->nops; o++) {
        const struct dg_winop *op = &it->ops[o];
        const struct wplan *wp = &ms->plan[op->win];
        if (gref[o] < 0) /* peeked again: groups come and go */
            gp[o] = dg_index_peek(&ms->keys, gh[o]);
        const struct wgroup *g = gp[gref[o] < 0 ? o : (size_t)gref[o]];
        if (!g || wp->slot >= g->nsec || (group_flags(g)[wp->slot] & (SEC_USED | SEC_LIVE)) != (SEC_USED | SEC_LIVE))
            continue;
        const struct section *sec = &group_secs(g)[wp->slot];
        if (sec->state_hash != rs->windows[op->win].state_hash)
            continue;
        if (sec->st.nb) { /* the oldest bucket (advancing drops from there), the newest */
            __builtin_prefetch(&sec->st.b[0]);
            __builtin_prefetch(&sec->st.b[sec->st.nb - 1]);
        }
        if (wp->distinct && op->add && sec->st.d) /* its second line: fetched if wide */
            __builtin_prefetch(&sec->st.d[(uint32_t)(op->vhash | 1) & (sec->st.dcap - 1)]);
    }
}

/* The windows of one item: add and read each, one lookup per group. */
static size_t apply_windows(struct mem_state *ms, const struct dg_ruleset *rs,
                            struct dg_item *it, size_t i, dg_arena *arena)
{
    const uint64_t *gh = ms->gh + ms->obase[i];
    const int32_t *gref = ms->gref + ms->obase[i];
    struct wgroup **gs = ms->gp + ms->obase[i];
    size_t created = 0;

    for (size_t o = 0; o < it->nops; o++) {
        struct dg_winop *op = &it->ops[o];
        const struct dg_window *w = &rs->windows[op->win];
        const struct wplan *wp = &ms->plan[op->win];
        size_t lead = gref[o] >= 0 ? (size_t)gref[o] : o;
        struct dg_islot *hole = NULL;
        struct wgroup *g = lead == o ? group_find(ms, gh[o], w->keyset_hash, op->key, op->keylen, &hole)
                                     : gs[lead];
        if (!g && op->add) {
            if (!hole) /* the group's first op only read it, found nothing */
                group_find(ms, gh[lead], w->keyset_hash, op->key, op->keylen, &hole);
            g = group_new(ms, w, wp, op->key, op->keylen, it->ts);
            dg_index_insert(&ms->keys, hole, gh[lead], g);
            created++;
        }
        gs[lead] = gs[o] = g;
        if (!g) { /* a read of a key never written: empty */
            memset(&op->raw, 0, sizeof(op->raw));
            continue;
        }
        uint8_t *fl;
        struct section *sec = group_section(ms, &g, gh[lead], w, wp, &fl);
        gs[lead] = gs[o] = g;
        if ((*fl & SEC_LIVE) && ms->watermark - sec->st.last_touch > wp->expire_ms) {
            /* idle past its expiry: gone, exactly as if dropped already */
            dg_wstate_clear(&sec->st);
            *fl &= (uint8_t)~SEC_LIVE;
            ms->stats.expired_keys++;
        }
        if (!(*fl & SEC_LIVE)) {
            if (!op->add) {
                memset(&op->raw, 0, sizeof(op->raw));
                continue;
            }
            *fl |= SEC_LIVE;
            sec->st.last_touch = it->ts;
        }
        dg_wstate_touch(&sec->st, w, op, it->ts, arena, &it->late, NULL);
        if (it->ts > g->last_touch)
            g->last_touch = it->ts;
    }
    return created;
}

/* The freeze of key in scope s, or NULL. */
static struct freeze *frozen_find(struct mem_state *ms, int s, const char *key, size_t len,
                                  uint64_t h, struct dg_islot **hole)
{
    dg_index *x = &ms->frozen[s];
    size_t mask = x->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct dg_islot *sl = &x->slot[i];
        if (!sl->h) {
            *hole = sl;
            return NULL;
        }
        if (sl->h == h) {
            struct freeze *f = sl->p;
            if (f->keylen == len && !memcmp(f->key, key, len))
                return f;
        }
    }
}

static int mem_apply(struct dg_state *st, const struct dg_ruleset *rs, struct dg_item *items,
                     size_t n, dg_arena *arena)
{
    struct mem_state *ms = (struct mem_state *)st;
    size_t qbase = 0, qahead = 0;

    make_plan(ms, rs);
    log_recycle(&ms->dlog);
    log_recycle(&ms->qlog);
    if (ms->batch_cap < 2 * n) {
        while (ms->batch_cap < 2 * n)
            ms->batch_cap = ms->batch_cap ? ms->batch_cap * 2 : 64;
        ms->batch = dg_xrealloc(ms->batch, ms->batch_cap * sizeof(*ms->batch));
    }
    memset(ms->batch, 0xff, ms->batch_cap * sizeof(*ms->batch));
    prepare(ms, rs, items, n);
    ms->applied = items;
    ms->napplied = n;

    for (size_t i = 0; i < AHEAD_GROUPS && i < n; i++) {
        fetch_groups(ms, &items[i], i, qahead);
        qahead += items[i].nreq_ids;
    }
    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        uint64_t h = ms->idh[i];
        struct dg_islot *ds = dedupe_find(ms, h, it->event_id, it->event_id_len);
        struct drec *d = ds->h ? ds->p : NULL;
        const uint64_t *qh = ms->qh + qbase;

        qbase += it->nreq_ids;
        if (i + AHEAD_GROUPS < n) {
            fetch_groups(ms, &items[i + AHEAD_GROUPS], i + AHEAD_GROUPS, qahead);
            qahead += items[i + AHEAD_GROUPS].nreq_ids;
        }
        if (i + AHEAD_STATES < n)
            fetch_states(ms, rs, &items[i + AHEAD_STATES], i + AHEAD_STATES);

        /* expiry is exact, whenever the log gets to the record: an id
         * older than the dedupe window is forgotten now */
        if (d && ms->watermark - d->h.ts > ms->base.dedupe_ms) {
            dg_index_del(&ms->dedupe, ds);
            d->h.dead = 1;
            d = NULL;
        }
        it->dup = 0;
        it->frozen = 0;
        it->late = 0;
        if (d) { /* decided before: its decision, nothing changes */
            it->dup = 1;
            it->stored = drec_text(d);
            it->stored_len = d->len;
            continue;
        }
        if (batch_seen(ms, items, i, h) >= 0) {
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
        size_t created = apply_windows(ms, rs, it, i, arena);
        if (it->late)
            ms->stats.late_events++;
        if (it->nreq_ids) {
            it->reqs = dg_arena_alloc(arena, it->nreq_ids * sizeof(*it->reqs));
            for (size_t k = 0; k < it->nreq_ids; k++) {
                const char *id = it->req_ids[k];
                struct dg_islot *qs = req_find(ms, qh[k], id, strlen(id));
                const struct qrec *q = qs->h ? qs->p : NULL;
                it->reqs[k] = q && ms->watermark - q->h.ts <= DG_REQUEST_RETENTION_MS
                                  ? req_view(q, arena)
                                  : NULL;
            }
        }
        sweep(ms, created);
        for (int s = 0; s < DG_NSCOPES; s++) {
            struct dg_islot *hole;
            if (it->scope_key[s] && ms->frozen[s].n &&
                frozen_find(ms, s, it->scope_key[s], it->scope_len[s],
                            dg_index_hash(it->scope_key[s], it->scope_len[s], (uint64_t)s), &hole))
                it->frozen |= 1u << s;
        }
    }
    return 0;
}

static const char *freeze_key(struct mem_state *ms, int s, const char *key, size_t len)
{
    ms->kb.len = 0;
    dg_buf_puts(&ms->kb, dg_scope_name(s));
    dg_buf_putc(&ms->kb, '|');
    dg_buf_append(&ms->kb, key, len);
    return ms->kb.data;
}

static void put_str(char **p, const char *s, uint32_t n)
{
    if (n)
        memcpy(*p, s, n);
    (*p)[n] = '\0';
    *p += n + 1;
}

static void write_request(struct mem_state *ms, const struct dg_reqrec *rec)
{
    uint64_t h = dg_index_hash(rec->id, rec->idlen, REQ_SEED);
    size_t txlen = rec->tx ? rec->txlen : 0;
    size_t size = sizeof(struct qrec) + rec->idlen + rec->assetlen + rec->destlen + txlen + 4;
    /* copy first: the old record may be where rec's strings live */
    struct qrec *q = log_append(&ms->qlog, size);
    char *p = q->data;

    q->h.ts = rec->ts;
    q->h.h = h;
    q->amount = rec->amount;
    q->idlen = rec->idlen;
    q->assetlen = rec->assetlen;
    q->destlen = rec->destlen;
    q->txlen = (uint32_t)txlen;
    q->action = (uint8_t)rec->action;
    q->paid = (uint8_t)(rec->paid != 0);
    q->has_tx = rec->tx != NULL;
    put_str(&p, rec->id, rec->idlen);
    put_str(&p, rec->asset, rec->assetlen);
    put_str(&p, rec->dest, rec->destlen);
    put_str(&p, rec->tx, (uint32_t)txlen);

    struct dg_islot *s = req_find(ms, h, rec->id, rec->idlen);
    if (s->h) {
        ((struct qrec *)s->p)->h.dead = 1;
        s->p = q;
    } else {
        dg_index_insert(&ms->reqs, s, h, q);
    }
}

static int mem_commit(struct dg_state *st, struct dg_item *items, size_t n)
{
    struct mem_state *ms = (struct mem_state *)st;
    int hashed = ms->applied == items && ms->napplied == n;

    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        if (it->dup)
            continue;
        uint64_t h = hashed ? ms->idh[i] : dg_index_hash(it->event_id, it->event_id_len, ID_SEED);
        struct drec *d = log_append(&ms->dlog, sizeof(*d) + it->event_id_len + it->decision_len + 1);
        d->h.ts = it->ts;
        d->h.h = h;
        d->len = (uint32_t)it->decision_len;
        d->idlen = (uint32_t)it->event_id_len;
        memcpy(d->data, it->event_id, it->event_id_len);
        if (it->decision_len)
            memcpy(d->data + d->idlen, it->decision, it->decision_len);
        d->data[d->idlen + d->len] = '\0';
        struct dg_islot *s = dedupe_find(ms, h, it->event_id, it->event_id_len);
        if (s->h) {
            ((struct drec *)s->p)->h.dead = 1;
            s->p = d;
        } else {
            dg_index_insert(&ms->dedupe, s, h, d);
        }
        for (size_t w = 0; w < it->nwrites; w++)
            write_request(ms, it->writes[w]);
        for (int sc = 0; sc < DG_NSCOPES; sc++) {
            if (!(it->freeze & (1u << sc)) || !it->scope_key[sc])
                continue;
            struct dg_islot *hole;
            uint64_t fh = dg_index_hash(it->scope_key[sc], it->scope_len[sc], (uint64_t)sc);
            if (frozen_find(ms, sc, it->scope_key[sc], it->scope_len[sc], fh, &hole))
                continue; /* the first freeze stands */
            struct freeze *f = dg_xcalloc(1, sizeof(*f));
            f->ts = it->ts;
            f->rule_id = dg_xstrdup(it->freeze_info.rule_id ? it->freeze_info.rule_id : "");
            f->reason = dg_xstrdup(it->freeze_info.reason ? it->freeze_info.reason : "");
            f->event_id = dg_xstrndup(it->event_id, it->event_id_len);
            f->key = dg_xstrndup(it->scope_key[sc], it->scope_len[sc]);
            f->keylen = it->scope_len[sc];
            dg_index_insert(&ms->frozen[sc], hole, fh, f);
            const char *mk = freeze_key(ms, sc, it->scope_key[sc], it->scope_len[sc]);
            dg_hmap_put(&ms->freezes, mk, ms->kb.len, f);
        }
    }
    ms->applied = NULL;
    return 0;
}

static void mem_destroy(struct dg_state *st)
{
    struct mem_state *ms = (struct mem_state *)st;
    for (size_t i = 0; i < ms->keys.cap; i++)
        if (ms->keys.slot[i].h)
            group_free(ms, ms->keys.slot[i].p);
    for (size_t i = 0; i < ms->freezes.cap; i++)
        if (ms->freezes.slots[i].hash) {
            struct freeze *f = ms->freezes.slots[i].val;
            free(f->rule_id);
            free(f->reason);
            free(f->event_id);
            free(f->key);
            free(f);
        }
    dg_index_free(&ms->keys);
    dg_index_free(&ms->dedupe);
    dg_index_free(&ms->reqs);
    for (int sc = 0; sc < DG_NSCOPES; sc++)
        dg_index_free(&ms->frozen[sc]);
    log_free(&ms->dlog);
    log_free(&ms->qlog);
    slab_destroy(&ms->groups);
    dg_hmap_free(&ms->freezes);
    dg_buf_free(&ms->kb);
    free(ms->batch);
    free(ms->idh);
    free(ms->gh);
    free(ms->gref);
    free(ms->gp);
    free(ms->obase);
    free(ms->qh);
    free(ms->plan);
    free(ms->lead);
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
    dg_index_init(&ms->keys);
    dg_index_init(&ms->dedupe);
    dg_index_init(&ms->reqs);
    for (int sc = 0; sc < DG_NSCOPES; sc++)
        dg_index_init(&ms->frozen[sc]);
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
    struct dg_islot *hole;
    const struct wgroup *g = group_find(ms, group_hash(w, key, keylen), w->keyset_hash, key,
                                        keylen, &hole);
    const struct section *sec = g ? group_section_get(g, w) : NULL;

    memset(out, 0, sizeof(*out));
    if (!sec)
        return -1;
    dg_wstate_peek(&sec->st, w, at_ms, out);
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

int dg_state_peek(struct dg_state *st, const struct dg_window *w, const char *key, size_t keylen,
                  int64_t at_ms, dg_arena *arena, struct dg_win_raw *out)
{
    return st->ops->peek(st, w, key, keylen, at_ms, arena, out);
}
