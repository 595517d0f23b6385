/*
 * hmap.h - open-addressing hash map from byte-string keys to pointers, with
 * linear probing and backward-shift deletion (no tombstones, so a map that
 * churns through expiring keys never degrades). Keys are copied.
 */
#ifndef DG_HMAP_H
#define DG_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct dg_hslot {
    uint64_t hash;   /* 0: empty */
    char *key;
    uint32_t keylen;
    void *val;
};

typedef struct dg_hmap {
    struct dg_hslot *slots;
    size_t cap, n;   /* cap is a power of two */
    int borrow;      /* keys belong to the values (see dg_hmap_init_borrowed) */
} dg_hmap;

void dg_hmap_init(dg_hmap *m);
/* A map that does not copy keys: put() keeps the caller's key pointer, which
 * must stay valid while the entry exists (typically it points into the
 * value). Saves an allocation and a pointer chase per entry. */
void dg_hmap_init_borrowed(dg_hmap *m);
/* Free the map's keys and slots; values are the caller's (free them first,
 * e.g. with dg_hmap_each). */
void dg_hmap_free(dg_hmap *m);
/* Remove every entry (freeing copied keys) but keep the slot array, for a
 * map that is emptied and filled again and again. O(cap). */
void dg_hmap_clear(dg_hmap *m);
void *dg_hmap_get(const dg_hmap *m, const char *key, size_t len);
/* Insert or replace; returns the previous value or NULL. */
void *dg_hmap_put(dg_hmap *m, const char *key, size_t len, void *val);
/* Remove; returns the value or NULL. */
void *dg_hmap_del(dg_hmap *m, const char *key, size_t len);
/* Visit slot index *cursor; returns the slot if used, NULL if empty, and
 * advances the cursor (wrapping). For incremental sweeps. */
struct dg_hslot *dg_hmap_slot(dg_hmap *m, size_t *cursor);
/* Remove the entry in slot s (from dg_hmap_slot). Backward shifting may
 * move a later entry into s, which a sweep then meets on its next pass. */
void dg_hmap_del_slot(dg_hmap *m, struct dg_hslot *s);

/* ---- dg_index: (hash, pointer) pairs, no keys ----
 * For maps whose key lives in the value: the caller hashes (dg_index_hash
 * or its own) and compares keys itself, so a probe touches 16-byte slots
 * and reads a value only when the hashes agree. Linear probing, load under
 * 1/2, backward-shift deletion as above. Lookups are written by the
 * caller, who knows its key:
 *
 *     size_t mask = x->cap - 1;
 *     for (size_t i = h & mask;; i = (i + 1) & mask) {
 *         struct dg_islot *s = &x->slot[i];
 *         if (!s->h)   -> not there; s is where it would go (dg_index_insert)
 *         if (s->h == h && same_key(s->p, key)) -> found
 *     }
 */
struct dg_islot {
    uint64_t h;   /* 0: empty */
    void *p;
};

typedef struct dg_index {
    struct dg_islot *slot;
    size_t cap, n;   /* cap is a power of two */
} dg_index;

void dg_index_init(dg_index *x);
void dg_index_free(dg_index *x);
/* Empty the index, keeping its slots. O(cap). */
void dg_index_clear(dg_index *x);
/* A hash for indexes (never 0): fast, not stable across versions, not for
 * anything that is stored or compared between processes. */
uint64_t dg_index_hash(const void *key, size_t len, uint64_t seed);
/* Store p under h in the empty slot s that a lookup ended on; returns the
 * slot where it ended up (growing moves every entry). */
struct dg_islot *dg_index_insert(dg_index *x, struct dg_islot *s, uint64_t h, void *p);
void dg_index_del(dg_index *x, struct dg_islot *s);
/* The slot that holds p under h, or NULL. */
struct dg_islot *dg_index_slot_of(dg_index *x, uint64_t h, const void *p);
/* The first value stored under h, comparing hashes only (a hint: for
 * prefetching), or NULL. */
void *dg_index_peek(const dg_index *x, uint64_t h);
/* The slot under *cursor (NULL when empty); advances the cursor, wrapping.
 * For incremental sweeps: deleting may move a later entry into a visited
 * slot, which the sweep then meets on its next pass. */
struct dg_islot *dg_index_next(dg_index *x, size_t *cursor);

#endif
