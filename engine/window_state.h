/*
 * window_state.h - the state of one window key and the one implementation
 * of adding to it and reading it. Both state backends run this code: the
 * memory backend keeps these structs in a hash map, the Redis backend
 * stores them encoded (dg_wstate_encode) and runs the same functions on
 * them in the engine. That is what makes the two agree bit for bit.
 */
#ifndef DG_WINDOW_STATE_H
#define DG_WINDOW_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "state.h"
#include "util.h"

struct dg_bucket {
    int64_t idx, count, sum, max, min, dcount;
};

struct dg_dslot {
    uint64_t h;            /* the value's hash | 1; 0: an empty slot */
    int64_t b;             /* the latest bucket it was seen in */
};

/* Field order follows use: what adding and reading touch comes first
 * (the first 80 bytes), the rarer last() state after it. */
struct dg_wstate {
    int64_t head;          /* highest bucket index that touched the key */
    int64_t last_touch;    /* event time of the latest touch */
    uint32_t nb, capb;
    struct dg_bucket *b;   /* live buckets, sorted by idx */
    int64_t count, sum, dtotal;
    /* distinct(), in the state: value hash -> latest bucket idx, an
     * open-addressing map of (hash, idx) pairs, so a probe reads one line */
    struct dg_dslot *d;
    uint32_t dn, dcap;
    int ext;               /* distinct values are kept elsewhere (a backend's
                              store, given to touch); dh/di unused */
    int has_last;
    int64_t last_ts;
    dg_value last;
    char *last_str;        /* storage for a string last value */
};

/* How many distinct values a state keeps itself before a backend with an
 * external store moves them there (dg_wstate_take_distinct). */
#define DG_WSTATE_INLINE_DISTINCT 64

/* Where distinct() keeps the latest bucket of each value, when not in the
 * state itself (the Redis backend: a sorted set per key, read ahead). */
struct dg_distinct_store {
    int64_t (*get)(void *ud, uint64_t h);   /* INT64_MIN: never seen */
    void (*set)(void *ud, uint64_t h, int64_t bucket);
    void *ud;
};

void dg_wstate_init(struct dg_wstate *k);
/* Free what the state owns (not k itself). */
void dg_wstate_release(struct dg_wstate *k);
/* Forget everything, as release + init would, but keep the bucket array
 * and a small distinct map for the next events: a state that expires and
 * comes back costs no malloc. */
void dg_wstate_clear(struct dg_wstate *k);

/* Add op's event (op->add) and/or read the window (op->read, into
 * op->raw) at event time t. *late is set when the event is too old for the
 * window. Strings read are copied into arena. ds NULL: distinct values are
 * kept in k. */
void dg_wstate_touch(struct dg_wstate *k, const struct dg_window *w, struct dg_winop *op,
                     int64_t t, dg_arena *arena, int *late, const struct dg_distinct_store *ds);

/* The raw figures a read at at_ms would see, without changing anything. */
void dg_wstate_peek(const struct dg_wstate *k, const struct dg_window *w, int64_t at_ms,
                    struct dg_win_raw *out);

/* The lowest live bucket index (values last seen below it are stale). */
int64_t dg_wstate_low(const struct dg_wstate *k, const struct dg_window *w);

/* Hand the live distinct values to fn (hash, bucket) and forget them: the
 * state keeps its distinct values elsewhere from now on (k->ext). */
void dg_wstate_take_distinct(struct dg_wstate *k, const struct dg_window *w,
                             void (*fn)(void *ud, uint64_t h, int64_t bucket), void *ud);

/* Binary encoding (little-endian, versioned), distinct values included
 * unless they are kept elsewhere. decode returns 0, or -1 when the bytes
 * are not a state. */
void dg_wstate_encode(const struct dg_wstate *k, dg_buf *out);
int dg_wstate_decode(struct dg_wstate *k, const char *buf, size_t len);

#endif
