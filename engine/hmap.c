/*
 * hmap.c - see hmap.h. Load factor kept under 1/2, so a probe sequence is
 * short; memory is one slot array plus one key copy per entry.
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
