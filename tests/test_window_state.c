/*
 * test_window_state.c - engine/window_state.c: the encoding the Redis
 * backend stores must round-trip every field, and decoding hostile bytes
 * must fail cleanly; a state restored from bytes must go on exactly like
 * the original.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "window_state.h"

static struct dg_ruleset *load(const char *text)
{
    struct dg_diag diag = {0};
    struct dg_ruleset *rs = dg_ruleset_load_mem("t.yaml", text, strlen(text), &diag);
    ck_assert_msg(rs != NULL, "%s", diag.n ? diag.lines[0] : "?");
    dg_diag_free(&diag);
    return rs;
}

static const char rules[] =
    "windows:\n"
    "  s: {on: withdrawal.requested, key: account_id, over: 10m, agg: sum(amount_usd)}\n"
    "  l: {on: withdrawal.requested, key: account_id, over: 10m, agg: last(dest_address)}\n"
    "  d: {on: withdrawal.requested, key: account_id, over: 10m, agg: distinct(dest_address)}\n"
    "rules:\n"
    "  - {id: r, on: withdrawal.requested, when: 's > 0 and l == \"x\" and d > 0', action: review}\n";

static void add(struct dg_wstate *k, const struct dg_window *w, int64_t t, double v,
                const char *s, dg_arena *a, const struct dg_distinct_store *ds)
{
    struct dg_winop op = {0};
    int late = 0;
    op.add = 1;
    op.read = 1;
    op.fp = dg_fixed(v);
    op.val = s ? dg_str(s, strlen(s)) : dg_num(v);
    op.vhash = dg_value_hash(&op.val);
    dg_wstate_touch(k, w, &op, t, a, &late, ds);
}

static void same(const struct dg_wstate *a, const struct dg_wstate *b)
{
    ck_assert_int_eq(a->head, b->head);
    ck_assert_int_eq(a->last_touch, b->last_touch);
    ck_assert_int_eq(a->count, b->count);
    ck_assert_int_eq(a->sum, b->sum);
    ck_assert_int_eq(a->dtotal, b->dtotal);
    ck_assert_int_eq(a->has_last, b->has_last);
    ck_assert_int_eq(a->last_ts, b->last_ts);
    ck_assert_int_eq(a->last.t, b->last.t);
    ck_assert_uint_eq(a->nb, b->nb);
    ck_assert(memcmp(a->b, b->b, a->nb * sizeof(*a->b)) == 0);
}

/* every (hash, bucket) of a's distinct map is in b's, and as many */
static void same_distinct(const struct dg_wstate *a, const struct dg_wstate *b)
{
    ck_assert_uint_eq(a->dn, b->dn);
    ck_assert_int_eq(a->ext, b->ext);
    for (uint32_t i = 0; i < a->dcap; i++) {
        if (!a->d || !a->d[i].h)
            continue;
        int found = 0;
        for (uint32_t j = 0; j < b->dcap && !found; j++)
            found = b->d[j].h == a->d[i].h && b->d[j].b == a->d[i].b;
        ck_assert_msg(found, "distinct value %llx lost", (unsigned long long)a->d[i].h);
    }
}

/* k encoded and decoded again is k: every field, distinct values, last value */
static void roundtrip(const struct dg_wstate *k)
{
    struct dg_wstate r;
    dg_buf b = {0};
    dg_wstate_encode(k, &b);
    ck_assert_int_eq(dg_wstate_decode(&r, b.data, b.len), 0);
    same(k, &r);
    same_distinct(k, &r);
    if (k->last.t == DG_T_STR) {
        ck_assert_uint_eq(k->last.len, r.last.len);
        ck_assert(memcmp(k->last.u.s, r.last.u.s, k->last.len) == 0);
    } else {
        ck_assert(memcmp(&k->last.u, &r.last.u, sizeof(k->last.u)) == 0);
    }
    dg_wstate_release(&r);
    dg_buf_free(&b);
}

START_TEST(test_roundtrip_every_field)
{
    struct dg_ruleset *rs = load(rules);
    dg_arena ar;
    dg_arena_init(&ar, 4096);
    for (size_t w = 0; w < rs->nwindows; w++) {
        struct dg_wstate k;
        dg_wstate_init(&k);
        add(&k, &rs->windows[w], 1000, 1.5, "x", &ar, NULL);
        add(&k, &rs->windows[w], 61000, 0.25, "y", &ar, NULL);
        add(&k, &rs->windows[w], 30000, 7, "x", &ar, NULL); /* late, within the window */
        roundtrip(&k);
        dg_wstate_release(&k);
    }
    dg_arena_free(&ar);
    dg_ruleset_free(rs);
}
END_TEST

START_TEST(test_decode_rejects_garbage)
{
    struct dg_wstate k, r;
    dg_buf b = {0};
    dg_arena ar;
    struct dg_ruleset *rs = load(rules);
    dg_arena_init(&ar, 4096);
    dg_wstate_init(&k);
    add(&k, &rs->windows[1], 1000, 1, "a string value", &ar, NULL);
    dg_wstate_encode(&k, &b);
    ck_assert_int_eq(dg_wstate_decode(&r, "", 0), -1);
    ck_assert_int_eq(dg_wstate_decode(&r, "XY", 2), -1);
    for (size_t cut = 0; cut < b.len; cut++) { /* every truncation fails, nothing leaks */
        ck_assert_int_eq(dg_wstate_decode(&r, b.data, cut), -1);
        dg_wstate_release(&r);
    }
    dg_buf_append(&b, "z", 1); /* trailing bytes */
    ck_assert_int_eq(dg_wstate_decode(&r, b.data, b.len), -1);
    dg_wstate_release(&r);
    dg_wstate_release(&k);
    dg_buf_free(&b);
    dg_arena_free(&ar);
    dg_ruleset_free(rs);
}
END_TEST

/* limits of every field survive (varints, zigzag, differences that wrap) */
START_TEST(test_roundtrip_extremes)
{
    struct dg_ruleset *rs = load(rules);
    const struct dg_window *w = &rs->windows[2];
    static const int64_t vals[] = {0, 1, -1, INT64_MAX, INT64_MIN, INT64_MIN / 2, 1700000000000LL};
    const size_t nv = sizeof(vals) / sizeof(vals[0]);
    dg_arena ar;
    dg_arena_init(&ar, 4096);
    for (size_t i = 0; i < nv; i++) {
        struct dg_wstate k;
        dg_wstate_init(&k);
        add(&k, w, 1000, 1, "p", &ar, NULL); /* a distinct map and a bucket */
        add(&k, w, 2000, 1, "q", &ar, NULL);
        k.head = vals[i];
        k.last_touch = vals[(i + 1) % nv];
        k.count = vals[(i + 2) % nv];
        k.sum = vals[(i + 3) % nv];
        k.dtotal = vals[(i + 4) % nv];
        k.last_ts = vals[(i + 5) % nv];
        k.has_last = (int)(i & 1);
        k.b[0].idx = vals[(i + 6) % nv];
        k.b[0].count = vals[(i + 1) % nv];
        k.b[0].sum = vals[(i + 2) % nv];
        k.b[0].max = vals[(i + 3) % nv];
        k.b[0].min = vals[(i + 4) % nv];
        k.b[0].dcount = vals[(i + 5) % nv];
        for (uint32_t j = 0; j < k.dcap; j++)
            if (k.d[j].h)
                k.d[j].b = vals[(i + j) % nv];
        switch (i % 4) { /* every type of last value */
        case 0: k.last = dg_num(-0.125); break;
        case 1: k.last.t = DG_T_TIME; k.last.u.ms = vals[i]; break;
        case 2: k.last.t = DG_T_BOOL; k.last.u.b = 1; break;
        default: k.last.t = DG_T_DUR; k.last.u.ms = vals[(i + 3) % nv]; break;
        }
        roundtrip(&k);
        dg_wstate_release(&k);
    }
    dg_arena_free(&ar);
    dg_ruleset_free(rs);
}
END_TEST

static void le64(dg_buf *b, uint64_t v)
{
    char t[8];
    dg_put_le64(t, v);
    dg_buf_append(b, t, 8);
}

/* keys written by an engine of the last version (fixed 8-byte fields)
 * still decode */
START_TEST(test_decodes_version_2)
{
    dg_buf b = {0};
    struct dg_wstate r;
    dg_buf_append(&b, "W\x02", 2);
    const uint64_t f[8] = {29000000, 1740000000000ULL, 3, (uint64_t)-250, 2, 1, 1739999999000ULL, DG_T_STR};
    for (int i = 0; i < 8; i++)
        le64(&b, f[i]);
    le64(&b, 2); /* the last value: "ab" */
    dg_buf_append(&b, "ab", 2);
    le64(&b, 0); /* ext */
    le64(&b, 1); /* dn: one value */
    le64(&b, 0x1234567890abcdefULL);
    le64(&b, 28999999);
    le64(&b, 1); /* nb: one bucket */
    const int64_t bk[6] = {28999999, 3, -250, 100, -400, 1};
    for (int i = 0; i < 6; i++)
        le64(&b, (uint64_t)bk[i]);
    ck_assert_int_eq(dg_wstate_decode(&r, b.data, b.len), 0);
    ck_assert_int_eq(r.head, 29000000);
    ck_assert_int_eq(r.last_touch, 1740000000000LL);
    ck_assert_int_eq(r.count, 3);
    ck_assert_int_eq(r.sum, -250);
    ck_assert_int_eq(r.dtotal, 2);
    ck_assert_int_eq(r.has_last, 1);
    ck_assert_int_eq(r.last_ts, 1739999999000LL);
    ck_assert_int_eq(r.last.t, DG_T_STR);
    ck_assert_uint_eq(r.last.len, 2);
    ck_assert(memcmp(r.last.u.s, "ab", 2) == 0);
    ck_assert_uint_eq(r.dn, 1);
    ck_assert_uint_eq(r.nb, 1);
    ck_assert_int_eq(r.b[0].idx, 28999999);
    ck_assert_int_eq(r.b[0].sum, -250);
    ck_assert_int_eq(r.b[0].max, 100);
    ck_assert_int_eq(r.b[0].min, -400);
    ck_assert_int_eq(r.b[0].dcount, 1);
    /* and re-encoded (version 3) it is smaller and decodes the same */
    struct dg_wstate r2;
    dg_buf c = {0};
    dg_wstate_encode(&r, &c);
    ck_assert_uint_lt(c.len, b.len / 2);
    ck_assert_int_eq(dg_wstate_decode(&r2, c.data, c.len), 0);
    same(&r, &r2);
    same_distinct(&r, &r2);
    dg_wstate_release(&r2);
    b.len--; /* a v2 blob cut short */
    ck_assert_int_eq(dg_wstate_decode(&r2, b.data, b.len), -1);
    dg_wstate_release(&r);
    dg_wstate_release(&r2);
    dg_buf_free(&b);
    dg_buf_free(&c);
}
END_TEST

/* an external distinct store (the Redis backend's) gives the same counts */
struct ext {
    uint64_t h[64];
    int64_t b[64];
    int n;
};

static int64_t ext_get(void *ud, uint64_t h)
{
    struct ext *e = ud;
    for (int i = 0; i < e->n; i++)
        if (e->h[i] == h)
            return e->b[i];
    return INT64_MIN;
}

static void ext_set(void *ud, uint64_t h, int64_t b)
{
    struct ext *e = ud;
    for (int i = 0; i < e->n; i++)
        if (e->h[i] == h) {
            e->b[i] = b;
            return;
        }
    e->h[e->n] = h;
    e->b[e->n++] = b;
}

START_TEST(test_external_distinct_store_agrees)
{
    struct dg_ruleset *rs = load(rules);
    const struct dg_window *w = &rs->windows[2];
    struct dg_wstate a, b;
    struct ext e = {0};
    struct dg_distinct_store ds = {ext_get, ext_set, &e};
    const char *vals[] = {"p", "q", "p", "r", "q", "p", "s"};
    int64_t ts[] = {0, 5000, 70000, 300000, 599000, 650000, 1300000};
    dg_arena ar;
    dg_arena_init(&ar, 4096);
    dg_wstate_init(&a);
    dg_wstate_init(&b);
    for (int i = 0; i < 7; i++) {
        struct dg_win_raw ra, rb;
        add(&a, w, ts[i], 1, vals[i], &ar, NULL);
        add(&b, w, ts[i], 1, vals[i], &ar, &ds);
        dg_wstate_peek(&a, w, ts[i], &ra);
        dg_wstate_peek(&b, w, ts[i], &rb);
        ck_assert_int_eq(ra.distinct, rb.distinct);
        ck_assert_int_eq(ra.count, rb.count);
    }
    dg_wstate_release(&a);
    dg_wstate_release(&b);
    dg_arena_free(&ar);
    dg_ruleset_free(rs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("window_state");
    TCase *tc = tcase_create("encoding");
    tcase_add_test(tc, test_roundtrip_every_field);
    tcase_add_test(tc, test_decode_rejects_garbage);
    tcase_add_test(tc, test_roundtrip_extremes);
    tcase_add_test(tc, test_decodes_version_2);
    tcase_add_test(tc, test_external_distinct_store_agrees);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
