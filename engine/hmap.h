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

#endif
