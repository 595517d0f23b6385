/*
 * hmap.c - see hmap.h. Load factor kept under 1/2, so a probe sequence is
 * short; memory is one slot array plus one key copy per entry (dg_hmap) or
 * just the slot array (dg_index).
 */
#include "hmap.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hkey(const char *key, size_t len)
{
    uint64_t h = dg_hash64(key, len, 0x6d6170);
    return h ? h : 1;
}

void dg_hmap_init(dg_hmap *m)
{
    m->cap = 16;
    m->n = 0;
    m->borrow = 0;
    m->slots = dg_xcalloc(m->cap, sizeof(*m->slots));
}

void dg_hmap_init_borrowed(dg_hmap *m)
{
    dg_hmap_init(m);
    m->borrow = 1;
}

void dg_hmap_free(dg_hmap *m)
{
    if (!m->borrow)
        for (size_t i = 0; i < m->cap; i++)
            free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

void dg_hmap_clear(dg_hmap *m)
{
    if (!m->n)
        return;
    if (!m->borrow)
        for (size_t i = 0; i < m->cap; i++)
            free(m->slots[i].key);
    memset(m->slots, 0, m->cap * sizeof(*m->slots));
    m->n = 0;
}

static struct dg_hslot *find(const dg_hmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct dg_hslot *s = &m->slots[i];
        if (!s->hash)
            return s;
        if (s->hash == h && s->keylen == len && !memcmp(s->key, key, len))
            return s;
    }
}

void *dg_hmap_get(const dg_hmap *m, const char *key, size_t len)
{
    struct dg_hslot *s = find(m, key, len, hkey(key, len));
    return s->hash ? s->val : NULL;
}

static void grow(dg_hmap *m)
{
    struct dg_hslot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = dg_xcalloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].hash)
            continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].hash)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void *dg_hmap_put(dg_hmap *m, const char *key, size_t len, void *val)
{
    uint64_t h = hkey(key, len);
    struct dg_hslot *s = find(m, key, len, h);
    if (s->hash) {
        void *prev = s->val;
        s->val = val;
        if (m->borrow)
            s->key = (char *)key; /* the new value owns the key now */
        return prev;
    }
    if ((m->n + 1) * 2 > m->cap) {
        grow(m);
        s = find(m, key, len, h);
    }
    s->hash = h;
    s->key = m->borrow ? (char *)key : dg_xstrndup(key, len);
    s->keylen = (uint32_t)len;
    s->val = val;
    m->n++;
    return NULL;
}

void dg_hmap_del_slot(dg_hmap *m, struct dg_hslot *s)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)(s - m->slots);

    if (!m->borrow)
        free(s->key);
    m->n--;
    /* backward shift: pull later entries of the cluster into the hole when
     * their home slot is at or before it */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        struct dg_hslot *t = &m->slots[j];
        if (!t->hash)
            break;
        size_t home = t->hash & mask;
        int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = *t;
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof(m->slots[i]));
}

void *dg_hmap_del(dg_hmap *m, const char *key, size_t len)
{
    struct dg_hslot *s = find(m, key, len, hkey(key, len));
    if (!s->hash)
        return NULL;
    void *val = s->val;
    dg_hmap_del_slot(m, s);
    return val;
}

struct dg_hslot *dg_hmap_slot(dg_hmap *m, size_t *cursor)
{
    struct dg_hslot *s;
    if (*cursor >= m->cap)
        *cursor = 0;
    s = &m->slots[*cursor];
    (*cursor)++;
    return s->hash ? s : NULL;
}

/* ---- dg_index ---- */

void dg_index_init(dg_index *x)
{
    x->cap = 64;
    x->n = 0;
    x->slot = dg_xcalloc(x->cap, sizeof(*x->slot));
}

void dg_index_free(dg_index *x)
{
    free(x->slot);
    x->slot = NULL;
    x->cap = x->n = 0;
}

void dg_index_clear(dg_index *x)
{
    if (x->n)
        memset(x->slot, 0, x->cap * sizeof(*x->slot));
    x->n = 0;
}

/* Eight bytes a step with one multiply, the last 1..8 bytes in one
 * overlapping load, then a finaliser for the low bits linear probing
 * uses. */
uint64_t dg_index_hash(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL), w = 0;

    if (len >= 8) {
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&w, p + i, 8);
            h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
            h ^= h >> 31;
        }
        memcpy(&w, p + len - 8, 8);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + len - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else if (len) {
        w = (uint64_t)p[0] | (uint64_t)p[len / 2] << 8 | (uint64_t)p[len - 1] << 16;
    }
    h = (h ^ w) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h ? h : 1;
}

static void index_grow(dg_index *x)
{
    struct dg_islot *old = x->slot;
    size_t oldcap = x->cap, mask;

    x->cap *= 2;
    mask = x->cap - 1;
    x->slot = dg_xcalloc(x->cap, sizeof(*x->slot));
    dg_advise_hugepages(x->slot, x->cap * sizeof(*x->slot)); /* large ones: probed at random */
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].h)
            continue;
        size_t j = old[i].h & mask;
        while (x->slot[j].h)
            j = (j + 1) & mask;
        x->slot[j] = old[i];
    }
    free(old);
}

struct dg_islot *dg_index_insert(dg_index *x, struct dg_islot *s, uint64_t h, void *p)
{
    if ((x->n + 1) * 2 > x->cap) {
        index_grow(x);
        size_t mask = x->cap - 1, j = h & mask;
        while (x->slot[j].h)
            j = (j + 1) & mask;
        s = &x->slot[j];
    }
    s->h = h;
    s->p = p;
    x->n++;
    return s;
}

void dg_index_del(dg_index *x, struct dg_islot *s)
{
    size_t mask = x->cap - 1;
    size_t i = (size_t)(s - x->slot);

    x->n--;
    /* backward shift: pull later entries of the cluster into the hole when
     * their home slot is at or before it */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        struct dg_islot *t = &x->slot[j];
        if (!t->h)
            break;
        size_t home = t->h & mask;
        int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            x->slot[i] = *t;
            i = j;
        }
    }
    x->slot[i].h = 0;
    x->slot[i].p = NULL;
}

struct dg_islot *dg_index_slot_of(dg_index *x, uint64_t h, const void *p)
{
    size_t mask = x->cap - 1;
    for (size_t i = h & mask; x->slot[i].h; i = (i + 1) & mask)
        if (x->slot[i].p == p)
            return &x->slot[i];
    return NULL;
}

void *dg_index_peek(const dg_index *x, uint64_t h)
{
    size_t mask = x->cap - 1;
    for (size_t i = h & mask; x->slot[i].h; i = (i + 1) & mask)
        if (x->slot[i].h == h)
            return x->slot[i].p;
    return NULL;
}

struct dg_islot *dg_index_next(dg_index *x, size_t *cursor)
{
    if (*cursor >= x->cap)
        *cursor = 0;
    struct dg_islot *s = &x->slot[(*cursor)++];
    return s->h ? s : NULL;
}
