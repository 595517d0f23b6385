/*
 * test_hmap.c - Check suite for engine/hmap.c: the open-addressing map that
 * holds window keys, dedupe records and freezes. Besides put/get/del, it
 * checks the two properties the state backend relies on: backward-shift
 * deletion leaves every remaining key reachable (checked against a plain
 * array under many random inserts and deletes), and an incremental sweep
 * with dg_hmap_slot/dg_hmap_del_slot visits and can delete every entry.
 * Randomness comes from a fixed-seed xorshift, so every run is the same.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* The value stored for key number i: a non-NULL pointer we never follow. */
static void *val_of(size_t i)
{
    return (void *)(uintptr_t)(i * 8 + 8);
}

static size_t key_of(size_t i, char *buf, size_t sz)
{
    return (size_t)snprintf(buf, sz, "key-%zu", i);
}

/* Every used slot must be reachable from its home slot without crossing
 * an empty one: the invariant backward shifting keeps. */
static void check_invariant(const dg_hmap *m)
{
    size_t used = 0, mask = m->cap - 1;
    for (size_t i = 0; i < m->cap; i++) {
        const struct dg_hslot *s = &m->slots[i];
        if (!s->hash)
            continue;
        used++;
        for (size_t j = s->hash & mask; j != i; j = (j + 1) & mask)
            ck_assert_msg(m->slots[j].hash != 0, "slot %zu unreachable from its home", i);
        ck_assert_ptr_eq(dg_hmap_get(m, s->key, s->keylen), s->val);
    }
    ck_assert_uint_eq(used, m->n);
    ck_assert_uint_le(m->n * 2, m->cap);
}

START_TEST(put_get_del_replace)
{
    dg_hmap m;
    int a = 1, b = 2, c = 3;

    dg_hmap_init(&m);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_ptr_null(dg_hmap_get(&m, "x", 1));
    ck_assert_ptr_null(dg_hmap_put(&m, "x", 1, &a));
    ck_assert_ptr_null(dg_hmap_put(&m, "xy", 2, &b));
    ck_assert_uint_eq(m.n, 2);
    ck_assert_ptr_eq(dg_hmap_get(&m, "x", 1), &a);
    ck_assert_ptr_eq(dg_hmap_get(&m, "xy", 2), &b);
    /* keys are byte strings: a prefix or an embedded NUL is another key */
    ck_assert_ptr_null(dg_hmap_get(&m, "xyz", 2 + 1));
    ck_assert_ptr_null(dg_hmap_put(&m, "a\0b", 3, &c));
    ck_assert_ptr_null(dg_hmap_get(&m, "a\0c", 3));
    ck_assert_ptr_eq(dg_hmap_get(&m, "a\0b", 3), &c);
    ck_assert_ptr_null(dg_hmap_get(&m, "a", 1));
    /* the empty key is a key */
    ck_assert_ptr_null(dg_hmap_put(&m, "", 0, &a));
    ck_assert_ptr_eq(dg_hmap_get(&m, "", 0), &a);
    ck_assert_uint_eq(m.n, 4);

    /* replace returns the previous value and does not grow n */
    ck_assert_ptr_eq(dg_hmap_put(&m, "x", 1, &c), &a);
    ck_assert_ptr_eq(dg_hmap_get(&m, "x", 1), &c);
    ck_assert_uint_eq(m.n, 4);

    /* the key is copied: changing the caller's buffer changes nothing */
    char buf[8] = "temp";
    ck_assert_ptr_null(dg_hmap_put(&m, buf, 4, &b));
    memcpy(buf, "nope", 4);
    ck_assert_ptr_eq(dg_hmap_get(&m, "temp", 4), &b);
    ck_assert_ptr_null(dg_hmap_get(&m, buf, 4));

    ck_assert_ptr_eq(dg_hmap_del(&m, "x", 1), &c);
    ck_assert_ptr_null(dg_hmap_get(&m, "x", 1));
    ck_assert_ptr_null(dg_hmap_del(&m, "x", 1));
    ck_assert_ptr_null(dg_hmap_del(&m, "never", 5));
    ck_assert_uint_eq(m.n, 4);
    ck_assert_ptr_eq(dg_hmap_get(&m, "xy", 2), &b);
    check_invariant(&m);
    dg_hmap_free(&m);
    ck_assert_ptr_null(m.slots);
    ck_assert_uint_eq(m.n, 0);
}
END_TEST

START_TEST(growth_keeps_everything)
{
    dg_hmap m;
    char k[32];
    const size_t n = 5000;

    dg_hmap_init(&m);
    ck_assert_uint_eq(m.cap, 16);
    for (size_t i = 0; i < n; i++) {
        size_t l = key_of(i, k, sizeof k);
        ck_assert_ptr_null(dg_hmap_put(&m, k, l, val_of(i)));
        /* load factor stays at or under 1/2 after every insert */
        ck_assert_uint_le(m.n * 2, m.cap);
    }
    ck_assert_uint_eq(m.n, n);
    /* smallest power of two with n <= cap / 2 */
    ck_assert_uint_eq(m.cap, 16384);
    for (size_t i = 0; i < n; i++) {
        size_t l = key_of(i, k, sizeof k);
        ck_assert_ptr_eq(dg_hmap_get(&m, k, l), val_of(i));
    }
    ck_assert_ptr_null(dg_hmap_get(&m, "key-5000", 8));
    check_invariant(&m);
    dg_hmap_free(&m);
}
END_TEST

/* Random inserts, replaces and deletes on a small key space (so clusters
 * are long and deletions shift a lot), checked after every step against a
 * plain array. */
START_TEST(random_against_reference)
{
    enum { NKEYS = 700, STEPS = 60000 };
    void *ref[NKEYS] = {0};
    size_t live = 0;
    dg_hmap m;
    char k[32];

    rng_state = 0x9e3779b97f4a7c15ULL;
    dg_hmap_init(&m);
    for (size_t step = 0; step < STEPS; step++) {
        size_t i = (size_t)(rng() % NKEYS);
        size_t l = key_of(i, k, sizeof k);
        uint64_t r = rng() % 100;
        if (r < 45) {
            void *v = val_of(step);
            void *prev = dg_hmap_put(&m, k, l, v);
            ck_assert_ptr_eq(prev, ref[i]);
            if (!ref[i])
                live++;
            ref[i] = v;
        } else if (r < 90) {
            void *prev = dg_hmap_del(&m, k, l);
            ck_assert_ptr_eq(prev, ref[i]);
            if (ref[i])
                live--;
            ref[i] = NULL;
        } else {
            ck_assert_ptr_eq(dg_hmap_get(&m, k, l), ref[i]);
        }
        ck_assert_uint_eq(m.n, live);
        if (step % 997 == 0) {
            check_invariant(&m);
            for (size_t j = 0; j < NKEYS; j++) {
                size_t lj = key_of(j, k, sizeof k);
                ck_assert_ptr_eq(dg_hmap_get(&m, k, lj), ref[j]);
            }
        }
    }
    check_invariant(&m);
    for (size_t j = 0; j < NKEYS; j++) {
        size_t lj = key_of(j, k, sizeof k);
        ck_assert_ptr_eq(dg_hmap_get(&m, k, lj), ref[j]);
    }
    dg_hmap_free(&m);
}
END_TEST

/* Deleting at the end of the slot array must pull entries that wrapped
 * around to slot 0.. back into the hole. Forced by filling a small map so
 * that clusters wrap, then deleting every key one by one. */
START_TEST(wraparound_deletion)
{
    dg_hmap m;
    char k[32];
    enum { N = 8 };

    for (uint64_t seed = 1; seed <= 300; seed++) {
        size_t order[N];
        dg_hmap_init(&m);
        for (size_t i = 0; i < N; i++) /* 8 keys in 16 slots: cap stays 16 */
            ck_assert_ptr_null(dg_hmap_put(&m, k, key_of(i + seed * 100, k, sizeof k),
                                           val_of(i)));
        ck_assert_uint_eq(m.cap, 16);
        check_invariant(&m);
        rng_state = seed * 0x2545f4914f6cdd1dULL;
        for (size_t i = 0; i < N; i++)
            order[i] = i;
        for (size_t i = N - 1; i > 0; i--) {
            size_t j = (size_t)(rng() % (i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (size_t d = 0; d < N; d++) {
            size_t l = key_of(order[d] + seed * 100, k, sizeof k);
            ck_assert_ptr_eq(dg_hmap_del(&m, k, l), val_of(order[d]));
            check_invariant(&m);
            for (size_t e = d + 1; e < N; e++) {
                size_t le = key_of(order[e] + seed * 100, k, sizeof k);
                ck_assert_ptr_eq(dg_hmap_get(&m, k, le), val_of(order[e]));
            }
        }
        ck_assert_uint_eq(m.n, 0);
        for (size_t i = 0; i < m.cap; i++)
            ck_assert_uint_eq(m.slots[i].hash, 0);
        dg_hmap_free(&m);
    }
}
END_TEST

/* The home slot of a key in a map of cap slots, the way hmap.c hashes. */
static size_t home_of(const char *key, size_t len, size_t cap)
{
    uint64_t h = dg_hash64(key, len, 0x6d6170);
    return (size_t)((h ? h : 1) & (cap - 1));
}

/* A cluster that wraps from the last slot to slot 0, built on purpose:
 * three keys whose home is slot 15 take 15, 0 and 1; a key whose home is
 * slot 0 lands in 2. Deleting the entry in slot 15 must shift each of the
 * others back by one slot, across the wrap. */
START_TEST(forced_wrap_shift)
{
    dg_hmap m;
    char names[4][32];
    size_t lens[4], found15 = 0, found0 = 0;
    char k[32];

    for (size_t i = 0; found15 < 3 || found0 < 1; i++) {
        size_t l = key_of(i, k, sizeof k);
        size_t h = home_of(k, l, 16);
        if (h == 15 && found15 < 3) {
            memcpy(names[found15], k, l + 1);
            lens[found15++] = l;
        } else if (h == 0 && found0 < 1) {
            memcpy(names[3], k, l + 1);
            lens[3] = l;
            found0++;
        }
        ck_assert_uint_lt(i, 100000);
    }
    dg_hmap_init(&m);
    for (size_t i = 0; i < 4; i++)
        dg_hmap_put(&m, names[i], lens[i], val_of(i));
    ck_assert_uint_eq(m.cap, 16);
    ck_assert_ptr_eq(m.slots[15].val, val_of(0));
    ck_assert_ptr_eq(m.slots[0].val, val_of(1));
    ck_assert_ptr_eq(m.slots[1].val, val_of(2));
    ck_assert_ptr_eq(m.slots[2].val, val_of(3));

    ck_assert_ptr_eq(dg_hmap_del(&m, names[0], lens[0]), val_of(0));
    ck_assert_ptr_eq(m.slots[15].val, val_of(1));
    ck_assert_ptr_eq(m.slots[0].val, val_of(2));
    ck_assert_ptr_eq(m.slots[1].val, val_of(3));
    ck_assert_uint_eq(m.slots[2].hash, 0);
    check_invariant(&m);

    /* deleting the home-0 key (now in slot 1) shifts nothing */
    ck_assert_ptr_eq(dg_hmap_del(&m, names[3], lens[3]), val_of(3));
    ck_assert_ptr_eq(m.slots[15].val, val_of(1));
    ck_assert_ptr_eq(m.slots[0].val, val_of(2));
    ck_assert_uint_eq(m.slots[1].hash, 0);
    check_invariant(&m);
    ck_assert_ptr_eq(dg_hmap_get(&m, names[1], lens[1]), val_of(1));
    ck_assert_ptr_eq(dg_hmap_get(&m, names[2], lens[2]), val_of(2));
    dg_hmap_free(&m);
}
END_TEST

/* The sweep pattern of window_mem.c: visit a few slots at a time, delete
 * some of what it meets. Every entry must be met within one pass (plus
 * what backward shifting moves into an already-visited slot, which the
 * next pass meets) and deleting through the slot must leave the rest
 * reachable. */
START_TEST(incremental_sweep)
{
    enum { N = 1000 };
    dg_hmap m;
    char k[32];
    int seen[N];
    size_t cursor = 0;

    dg_hmap_init(&m);
    for (size_t i = 0; i < N; i++)
        dg_hmap_put(&m, k, key_of(i, k, sizeof k), val_of(i));

    /* one full pass without deleting meets each entry exactly once */
    memset(seen, 0, sizeof seen);
    size_t cap = m.cap, met = 0;
    for (size_t v = 0; v < cap; v++) {
        struct dg_hslot *s = dg_hmap_slot(&m, &cursor);
        if (!s)
            continue;
        size_t i = ((size_t)(uintptr_t)s->val - 8) / 8;
        ck_assert_uint_lt(i, N);
        seen[i]++;
        met++;
    }
    ck_assert_uint_eq(met, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_uint_eq(cursor, cap); /* wraps on the next call */
    struct dg_hslot *first = dg_hmap_slot(&m, &cursor);
    ck_assert_uint_eq(cursor, 1);
    (void)first;

    /* sweep deleting the odd values, 4 slots per step like window_mem.c,
     * until two full passes have met no odd value */
    cursor = 0;
    size_t quiet = 0, visits = 0;
    while (quiet < 2 * m.cap) {
        for (int step = 0; step < 4; step++) {
            struct dg_hslot *s = dg_hmap_slot(&m, &cursor);
            visits++;
            if (!s) {
                quiet++;
                continue;
            }
            size_t i = ((size_t)(uintptr_t)s->val - 8) / 8;
            if (i % 2) {
                dg_hmap_del_slot(&m, s);
                quiet = 0;
            } else {
                quiet++;
            }
        }
        ck_assert_uint_lt(visits, 100 * (size_t)N);
    }
    ck_assert_uint_eq(m.n, N / 2);
    for (size_t i = 0; i < N; i++) {
        size_t l = key_of(i, k, sizeof k);
        ck_assert_ptr_eq(dg_hmap_get(&m, k, l), i % 2 ? NULL : val_of(i));
    }
    check_invariant(&m);

    /* delete everything through the sweep */
    while (m.n) {
        struct dg_hslot *s = dg_hmap_slot(&m, &cursor);
        if (s)
            dg_hmap_del_slot(&m, s);
    }
    for (size_t i = 0; i < m.cap; i++)
        ck_assert_uint_eq(m.slots[i].hash, 0);
    /* and the map is usable again */
    ck_assert_ptr_null(dg_hmap_put(&m, "again", 5, val_of(7)));
    ck_assert_ptr_eq(dg_hmap_get(&m, "again", 5), val_of(7));
    dg_hmap_free(&m);
}
END_TEST

static Suite *hmap_suite(void)
{
    Suite *s = suite_create("hmap");
    TCase *tc;

    tc = tcase_create("basic");
    tcase_add_test(tc, put_get_del_replace);
    tcase_add_test(tc, growth_keeps_everything);
    suite_add_tcase(s, tc);

    tc = tcase_create("deletion");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, random_against_reference);
    tcase_add_test(tc, wraparound_deletion);
    tcase_add_test(tc, forced_wrap_shift);
    suite_add_tcase(s, tc);

    tc = tcase_create("sweep");
    tcase_add_test(tc, incremental_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hmap_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
