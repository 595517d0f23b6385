/*
 * test_window.c - Check suite for engine/window.c and engine/window_mem.c,
 * driven the way the engine drives them: a small rule set, the pipeline
 * (pipeline.h) with the memory backend, events as JSON lines, and an emit
 * callback that keeps every decision's bytes. Window values are read back
 * from the reasons rules render ("cnt={cnt} ...") and, for exact figures,
 * with dg_state_mem_peek.
 *
 * Time: B is 2019-05-07T17:15:00Z, a whole minute. The windows here are
 * `over: 10m, precision: 1m`: 10 buckets of one minute, and a key's window
 * holds buckets head-10 .. head (11 buckets).
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "rules.h"
#include "state.h"
#include "util.h"

#define B 1557249300000LL
#define SEC 1000LL
#define MIN 60000LL
#define HOUR 3600000LL

static const char win_rules[] =
    "windows:\n"
    "  cnt:       {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: count}\n"
    "  total:     {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: sum(amount_usd)}\n"
    "  avg_amt:   {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: avg(amount_usd)}\n"
    "  max_amt:   {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: max(amount_usd)}\n"
    "  min_amt:   {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: min(amount_usd)}\n"
    "  dests:     {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: distinct(dest_address)}\n"
    "  last_ts:   {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: last(ts)}\n"
    "  last_dest: {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: last(dest_address)}\n"
    "  seen_pair: {on: withdrawal.requested, key: [account_id, dest_address], over: 10m, precision: 1m, agg: seen}\n"
    "  api_cnt:   {on: withdrawal.requested, when: 'channel == \"api\"', key: account_id, over: 10m, precision: 1m, agg: count}\n"
    "  tag_cnt:   {on: withdrawal.requested, key: dest_tag, over: 10m, precision: 1m, agg: count}\n"
    "rules:\n"
    "  - id: show\n"
    "    on: withdrawal.requested\n"
    "    when: true\n"
    "    action: allow\n"
    "    reason: \"cnt={cnt} total={total} avg={avg_amt} max={max_amt} min={min_amt} "
    "dests={dests} last_ts={last_ts} last_dest={last_dest} seen={seen_pair} api={api_cnt} "
    "tag={tag_cnt}\"\n";

enum { WI_CNT, WI_TOTAL, WI_AVG, WI_MAX, WI_MIN, WI_DESTS, WI_LAST_TS, WI_LAST_DEST, WI_SEEN,
       WI_API, WI_TAG };

/* ------------------------------------------------------------------ */
/* harness                                                            */

struct out {
    char *decision; /* NULL: none */
    size_t len;
    int action, duplicate;
};

struct harness {
    struct dg_ruleset *rs;
    struct dg_state *st;
    dg_pipeline *p;
    struct out *outs;
    size_t nouts, cap;
};

static int collect(void *ud, const struct dg_output *o)
{
    struct harness *h = ud;
    if (h->nouts == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->outs = dg_xrealloc(h->outs, h->cap * sizeof(*h->outs));
    }
    struct out *x = &h->outs[h->nouts++];
    x->decision = o->decision ? dg_xstrndup(o->decision, o->decision_len) : NULL;
    x->len = o->decision_len;
    x->action = o->action;
    x->duplicate = o->duplicate;
    return 0;
}

static void h_init(struct harness *h, const char *rules, size_t batch, int64_t dedupe_ms,
                   int64_t lateness_ms)
{
    struct dg_diag d = {0};
    memset(h, 0, sizeof(*h));
    h->rs = dg_ruleset_load_mem("w.yaml", rules, strlen(rules), &d);
    ck_assert_msg(h->rs != NULL, "rules: %s", d.n ? d.lines[0] : "?");
    dg_diag_free(&d);
    h->st = dg_state_mem_new(dedupe_ms, lateness_ms);
    h->p = dg_pipeline_new(h->rs, h->st, batch, 0);
}

static void h_flush(struct harness *h)
{
    char err[256];
    ck_assert_int_eq(dg_pipeline_flush(h->p, collect, h, err, sizeof err), 0);
}

/* Push one event line; flush when the batch is full. */
static void h_push(struct harness *h, const char *line, size_t batch)
{
    if (dg_pipeline_push(h->p, line, strlen(line), NULL) >= batch)
        h_flush(h);
}

static void h_free(struct harness *h)
{
    for (size_t i = 0; i < h->nouts; i++)
        free(h->outs[i].decision);
    free(h->outs);
    dg_pipeline_free(h->p);
    h->st->ops->destroy(h->st);
    dg_ruleset_free(h->rs);
}

/* A withdrawal.requested line. usd is written as given (a JSON number). */
static char *wd(const char *id, const char *acct, const char *dest, const char *usd, int64_t ts,
                const char *more)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"event_id\":\"%s\",\"type\":\"withdrawal.requested\",\"ts\":%lld,"
             "\"withdrawal_id\":\"w-%s\",\"account_id\":\"%s\",\"asset\":\"BTC\","
             "\"chain\":\"bitcoin\",\"amount\":\"1\",\"amount_usd\":%s,"
             "\"dest_address\":\"%s\"%s%s}",
             id, (long long)ts, id, acct, usd, dest, more ? "," : "", more ? more : "");
    return dg_xstrdup(buf);
}

/* The reason of the first rule in a decision (bytes between quotes). */
static char reason_buf[1024];

static const char *reason_of(const struct out *o)
{
    ck_assert_ptr_nonnull(o->decision);
    const char *r = strstr(o->decision, "\"reason\":\"");
    ck_assert_ptr_nonnull(r);
    r += 10;
    const char *e = strchr(r, '"');
    snprintf(reason_buf, sizeof reason_buf, "%.*s", (int)(e - r), r);
    return reason_buf;
}

/* Value of one name=... in the reason. */
static const char *field_of(const struct out *o, const char *name)
{
    static char v[256];
    const char *r = reason_of(o);
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *p = r;
    while ((p = strstr(p, pat)) && p != r && p[-1] != ' ')
        p++;
    ck_assert_msg(p != NULL, "'%s' not in reason '%s'", name, r);
    p += strlen(pat);
    size_t n = strcspn(p, " ");
    snprintf(v, sizeof v, "%.*s", (int)n, p);
    return v;
}

/* i is evaluated once, before outs is read (it may push an event) */
#define FIELD_IS(h, i, name, want)                                                          \
    do {                                                                                    \
        size_t at_ = (i);                                                                   \
        const char *got_ = field_of(&(h)->outs[at_], name);                                 \
        ck_assert_msg(!strcmp(got_, want), "event %zu: %s=%s, want %s", at_, name, got_,     \
                      want);                                                                \
    } while (0)

/* One event, flushed alone; returns its output index. */
static size_t one(struct harness *h, const char *id, const char *acct, const char *dest,
                  const char *usd, int64_t ts, const char *more)
{
    char *l = wd(id, acct, dest, usd, ts, more);
    dg_pipeline_push(h->p, l, strlen(l), NULL);
    free(l);
    h_flush(h);
    return h->nouts - 1;
}

/* ------------------------------------------------------------------ */
/* boundaries and lateness                                            */

START_TEST(window_boundary)
{
    struct harness h;
    h_init(&h, win_rules, 1, 24 * HOUR, HOUR);
    const struct dg_window *w = &h.rs->windows[WI_CNT];
    ck_assert_int_eq(w->nbuckets, 10);
    ck_assert_int_eq(w->step_ms, MIN);

    /* exactly `over` later: the first event is in bucket head-10, counted */
    one(&h, "a1", "A", "X", "1", B, NULL);
    size_t i = one(&h, "a2", "A", "X", "1", B + 10 * MIN, NULL);
    FIELD_IS(&h, i, "cnt", "2");
    /* the window is over + step at most: the last ms of bucket head still
     * sees bucket head-10 */
    one(&h, "b1", "Bk", "X", "1", B, NULL);
    i = one(&h, "b2", "Bk", "X", "1", B + 11 * MIN - 1, NULL);
    FIELD_IS(&h, i, "cnt", "2");
    /* one bucket older than head-10 is out */
    one(&h, "c1", "C", "X", "1", B, NULL);
    i = one(&h, "c2", "C", "X", "1", B + 11 * MIN, NULL);
    FIELD_IS(&h, i, "cnt", "1");
    /* and the ms before a bucket starts belongs to the bucket before */
    one(&h, "d1", "D", "X", "1", B - 1, NULL);
    i = one(&h, "d2", "D", "X", "1", B + 10 * MIN, NULL);
    FIELD_IS(&h, i, "cnt", "1");

    /* peek says the same: at B+10m the key A holds both */
    struct dg_win_raw raw;
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "A", 1, B + 10 * MIN, &raw), 0);
    ck_assert_int_eq(raw.count, 2);
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "A", 1, B + 11 * MIN - 1, &raw), 0);
    ck_assert_int_eq(raw.count, 2);
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "A", 1, B + 11 * MIN, &raw), 0);
    ck_assert_int_eq(raw.count, 1);
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "A", 1, B + 21 * MIN, &raw), 0);
    ck_assert_int_eq(raw.count, 0);
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "nobody", 6, B, &raw), -1);
    h_free(&h);
}
END_TEST

START_TEST(late_events)
{
    struct harness h;
    struct dg_mem_stats ms;
    h_init(&h, win_rules, 1, 24 * HOUR, HOUR);

    one(&h, "e1", "A", "X", "1", B, NULL);
    one(&h, "e2", "A", "X", "2", B + 10 * MIN, NULL);          /* head = B+10m */
    /* late, but in bucket head-9: counted */
    size_t i = one(&h, "e3", "A", "X", "4", B + MIN + 30 * SEC, NULL);
    FIELD_IS(&h, i, "cnt", "3");
    FIELD_IS(&h, i, "total", "7");
    /* late into bucket head-10: still counted */
    i = one(&h, "e4", "A", "X", "8", B + 59 * SEC, NULL);
    FIELD_IS(&h, i, "cnt", "4");
    FIELD_IS(&h, i, "total", "15");
    dg_state_mem_stats(h.st, &ms);
    ck_assert_uint_eq(ms.late_events, 0);
    ck_assert_uint_eq(dg_pipeline_stats(h.p)->late, 0);
    /* too late (bucket head-11): not counted, but decided, and it reads the
     * window as it stands */
    i = one(&h, "e5", "A", "X", "16", B - 1, NULL);
    ck_assert_ptr_nonnull(h.outs[i].decision);
    ck_assert_int_eq(h.outs[i].action, DG_ALLOW);
    FIELD_IS(&h, i, "cnt", "4");
    FIELD_IS(&h, i, "total", "15");
    FIELD_IS(&h, i, "max", "8");
    /* last(ts) is the latest event time, whatever arrived last */
    FIELD_IS(&h, i, "last_ts", "2019-05-07T17:25:00Z");
    dg_state_mem_stats(h.st, &ms);
    ck_assert_uint_gt(ms.late_events, 0);
    ck_assert_uint_eq(dg_pipeline_stats(h.p)->late, 1);
    /* nothing of it stayed: the next event sees 4 + itself */
    i = one(&h, "e6", "A", "X", "32", B + 10 * MIN, NULL);
    FIELD_IS(&h, i, "cnt", "5");
    FIELD_IS(&h, i, "total", "47");
    h_free(&h);
}
END_TEST

START_TEST(out_of_order)
{
    /* the same five events in time order and shuffled: the last reading
     * is the same */
    static const int64_t at[5] = {5 * MIN, 2 * MIN, 8 * MIN, 1 * MIN, 9 * MIN + 59 * SEC};
    static const char *const usd[5] = {"10", "20", "30", "40", "50"};
    static const char *const dst[5] = {"P", "Q", "P", "R", "Q"};
    static const int order[2][5] = {{3, 1, 0, 2, 4}, {0, 1, 2, 3, 4}};
    char last[2][512];

    for (int o = 0; o < 2; o++) {
        struct harness h;
        h_init(&h, win_rules, 1, 24 * HOUR, HOUR);
        for (int k = 0; k < 5; k++) {
            int j = order[o][k];
            char id[16];
            snprintf(id, sizeof id, "o%d", j);
            size_t i = one(&h, id, "A", dst[j], usd[j], B + at[j], NULL);
            char want[16];
            snprintf(want, sizeof want, "%d", k + 1);
            FIELD_IS(&h, i, "cnt", want);
        }
        snprintf(last[o], sizeof last[o], "%s", reason_of(&h.outs[4]));
        FIELD_IS(&h, 4, "total", "150");
        FIELD_IS(&h, 4, "avg", "30");
        FIELD_IS(&h, 4, "max", "50");
        FIELD_IS(&h, 4, "min", "10");
        FIELD_IS(&h, 4, "dests", "3");
        FIELD_IS(&h, 4, "last_ts", "2019-05-07T17:24:59Z");
        FIELD_IS(&h, 4, "last_dest", "Q");
        h_free(&h);
    }
    ck_assert_str_eq(last[0], last[1]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* duplicates                                                         */

START_TEST(duplicate_event_ids)
{
    struct harness h;
    h_init(&h, win_rules, 512, 24 * HOUR, HOUR);
    char *l1 = wd("d1", "A", "X", "5", B, NULL);
    char *l2 = wd("d2", "A", "X", "7", B + MIN, NULL);
    /* same event_id, other content: still the first one's decision */
    char *l1b = wd("d1", "A", "Y", "999", B + 2 * MIN, NULL);
    char *l3 = wd("d3", "A", "X", "11", B + 3 * MIN, NULL);

    /* batch 1: d1, d2, d1 again (same batch) */
    dg_pipeline_push(h.p, l1, strlen(l1), NULL);
    dg_pipeline_push(h.p, l2, strlen(l2), NULL);
    dg_pipeline_push(h.p, l1, strlen(l1), NULL);
    h_flush(&h);
    /* batch 2: d1 (both spellings) again, then d3 */
    dg_pipeline_push(h.p, l1, strlen(l1), NULL);
    dg_pipeline_push(h.p, l1b, strlen(l1b), NULL);
    dg_pipeline_push(h.p, l3, strlen(l3), NULL);
    h_flush(&h);

    ck_assert_uint_eq(h.nouts, 6);
    ck_assert_int_eq(h.outs[0].duplicate, 0);
    ck_assert_int_eq(h.outs[2].duplicate, 1);
    ck_assert_int_eq(h.outs[3].duplicate, 1);
    ck_assert_int_eq(h.outs[4].duplicate, 1);
    ck_assert_int_eq(h.outs[5].duplicate, 0);
    for (int i = 2; i <= 4; i++) {
        ck_assert_uint_eq(h.outs[i].len, h.outs[0].len);
        ck_assert_int_eq(memcmp(h.outs[i].decision, h.outs[0].decision, h.outs[0].len), 0);
        ck_assert_int_eq(h.outs[i].action, h.outs[0].action);
    }
    FIELD_IS(&h, 0, "cnt", "1");
    FIELD_IS(&h, 1, "cnt", "2");
    /* the copies changed nothing: d3 sees d1, d2 and itself */
    FIELD_IS(&h, 5, "cnt", "3");
    FIELD_IS(&h, 5, "total", "23");
    FIELD_IS(&h, 5, "dests", "1");
    ck_assert_uint_eq(dg_pipeline_stats(h.p)->duplicates, 3);
    free(l1);
    free(l2);
    free(l1b);
    free(l3);
    h_free(&h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* aggregates                                                         */

START_TEST(distinct_counting)
{
    struct harness h;
    h_init(&h, win_rules, 1, 24 * HOUR, HOUR);
    FIELD_IS(&h, one(&h, "x1", "A", "X", "1", B, NULL), "dests", "1");              /* X@0 */
    FIELD_IS(&h, one(&h, "x2", "A", "Y", "1", B + MIN, NULL), "dests", "2");        /* Y@1 */
    FIELD_IS(&h, one(&h, "x3", "A", "X", "1", B + 2 * MIN, NULL), "dests", "2");    /* X@2 */
    FIELD_IS(&h, one(&h, "x4", "A", "X", "1", B + 2 * MIN + 1, NULL), "dests", "2");
    /* head 11: bucket 0 leaves, X lives on in bucket 2 */
    FIELD_IS(&h, one(&h, "x5", "A", "Z", "1", B + 11 * MIN, NULL), "dests", "3");
    /* head 12: Y (bucket 1) leaves */
    FIELD_IS(&h, one(&h, "x6", "A", "Z", "1", B + 12 * MIN, NULL), "dests", "2");
    /* head 13: X (bucket 2) leaves */
    FIELD_IS(&h, one(&h, "x7", "A", "Z", "1", B + 13 * MIN, NULL), "dests", "1");
    /* a late X into bucket 3 (inside the window) comes back */
    FIELD_IS(&h, one(&h, "x8", "A", "X", "1", B + 3 * MIN, NULL), "dests", "2");
    /* many distinct values, then all but a few expire */
    char id[16], dest[16];
    for (int k = 0; k < 300; k++) {
        snprintf(id, sizeof id, "m%d", k);
        snprintf(dest, sizeof dest, "D%d", k);
        one(&h, id, "M", dest, "1", B + 20 * MIN + k * SEC, NULL); /* buckets 20..24 */
    }
    FIELD_IS(&h, h.nouts - 1, "dests", "300");
    FIELD_IS(&h, h.nouts - 1, "cnt", "300");
    /* at head 34 only buckets 24.. remain: k = 240..299 */
    FIELD_IS(&h, one(&h, "m-last", "M", "D299", "1", B + 34 * MIN, NULL), "dests", "60");
    FIELD_IS(&h, h.nouts - 1, "cnt", "61");
    h_free(&h);
}
END_TEST

START_TEST(last_value)
{
    struct harness h;
    h_init(&h, win_rules, 1, 24 * HOUR, HOUR);
    size_t i = one(&h, "l1", "A", "P", "1", B + 5 * MIN, NULL);
    FIELD_IS(&h, i, "last_ts", "2019-05-07T17:20:00Z");
    FIELD_IS(&h, i, "last_dest", "P");
    /* an older event does not replace the latest */
    i = one(&h, "l2", "A", "Q", "1", B + 2 * MIN, NULL);
    FIELD_IS(&h, i, "last_ts", "2019-05-07T17:20:00Z");
    FIELD_IS(&h, i, "last_dest", "P");
    /* the same time: the one that came later wins */
    i = one(&h, "l3", "A", "R", "1", B + 5 * MIN, NULL);
    FIELD_IS(&h, i, "last_dest", "R");
    i = one(&h, "l4", "A", "S", "1", B + 6 * MIN + 1, NULL);
    FIELD_IS(&h, i, "last_ts", "2019-05-07T17:21:00.001Z");
    FIELD_IS(&h, i, "last_dest", "S");
    /* the string outlives the event it came from (copied by the backend) */
    i = one(&h, "l5", "A", "T", "1", B + 6 * MIN, NULL);
    FIELD_IS(&h, i, "last_dest", "S");
    /* a window whose latest event left the window reads missing */
    struct dg_win_raw raw;
    ck_assert_int_eq(dg_state_mem_peek(h.st, &h.rs->windows[WI_LAST_DEST], "A", 1,
                                       B + 16 * MIN + 59 * SEC, &raw), 0);
    ck_assert_int_eq(raw.has_last, 1);
    ck_assert_int_eq(raw.last.t, DG_T_STR);
    ck_assert_int_eq(raw.last_ts, B + 6 * MIN + 1);
    ck_assert_int_eq(memcmp(raw.last.u.s, "S", 1), 0);
    ck_assert_int_eq(dg_state_mem_peek(h.st, &h.rs->windows[WI_LAST_DEST], "A", 1,
                                       B + 17 * MIN, &raw), 0);
    ck_assert_int_eq(raw.has_last, 0);
    i = one(&h, "l6", "Other", "U", "1", B + 30 * MIN, NULL);
    FIELD_IS(&h, i, "last_dest", "U");
    h_free(&h);
}
END_TEST

START_TEST(seen_aggregate)
{
    struct harness h;
    h_init(&h, win_rules, 1, 24 * HOUR, HOUR);
    FIELD_IS(&h, one(&h, "s1", "A", "X", "1", B, NULL), "seen", "false");
    FIELD_IS(&h, one(&h, "s2", "A", "X", "1", B + MIN, NULL), "seen", "true");
    FIELD_IS(&h, one(&h, "s3", "A", "Y", "1", B + MIN, NULL), "seen", "false");
    FIELD_IS(&h, one(&h, "s4", "Bk", "X", "1", B + MIN, NULL), "seen", "false");
    /* the pair's last event was in bucket 1; at head 11 it is still in */
    FIELD_IS(&h, one(&h, "s5", "A", "X", "1", B + 11 * MIN, NULL), "seen", "true");
    /* at head 22 the bucket 11 event is out: false again */
    FIELD_IS(&h, one(&h, "s6", "A", "X", "1", B + 22 * MIN, NULL), "seen", "false");
    /* a duplicate of s6 does not make it see itself */
    char *l = wd("s6", "A", "X", "1", B + 22 * MIN, NULL);
    dg_pipeline_push(h.p, l, strlen(l), NULL);
    free(l);
    h_flush(&h);
    ck_assert_int_eq(h.outs[h.nouts - 1].duplicate, 1);
    FIELD_IS(&h, h.nouts - 1, "seen", "false");
    h_free(&h);
}
END_TEST

START_TEST(fixed_point_exactness)
{
    struct harness h;
    h_init(&h, win_rules, 1, 24 * HOUR, HOUR);
    one(&h, "f1", "A", "X", "0.1", B, NULL);
    size_t i = one(&h, "f2", "A", "X", "0.2", B + SEC, NULL);
    FIELD_IS(&h, i, "total", "0.3");
    FIELD_IS(&h, i, "avg", "0.15");
    FIELD_IS(&h, i, "max", "0.2");
    FIELD_IS(&h, i, "min", "0.1");

    struct dg_win_raw raw;
    const struct dg_window *w = &h.rs->windows[WI_TOTAL];
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "A", 1, B + SEC, &raw), 0);
    ck_assert_int_eq(raw.count, 2);
    ck_assert_int_eq(raw.sum, 300000);
    dg_value v = w->agg->value(&raw);
    ck_assert_int_eq(v.t, DG_T_NUM);
    ck_assert(v.u.n == 0.3); /* exactly the double nearest 0.3 */
    w = &h.rs->windows[WI_MAX];
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "A", 1, B + SEC, &raw), 0);
    ck_assert_int_eq(raw.max, 200000);
    ck_assert(w->agg->value(&raw).u.n == 0.2);
    w = &h.rs->windows[WI_MIN];
    ck_assert_int_eq(dg_state_mem_peek(h.st, w, "A", 1, B + SEC, &raw), 0);
    ck_assert_int_eq(raw.min, 100000);

    /* ten 0.1s are exactly 1, in any order, and 0.3 - 0.1 - 0.2 leaves 0 */
    for (int k = 0; k < 10; k++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", k);
        one(&h, id, "T", "X", "0.1", B + (9 - k) * SEC, NULL);
    }
    FIELD_IS(&h, h.nouts - 1, "total", "1");
    FIELD_IS(&h, h.nouts - 1, "avg", "0.1");
    ck_assert_int_eq(dg_state_mem_peek(h.st, &h.rs->windows[WI_TOTAL], "T", 1, B, &raw), 0);
    ck_assert_int_eq(raw.sum, 1000000);

    /* a rule can rely on it */
    h_free(&h);
    h_init(&h,
           "windows:\n  total: {on: withdrawal.requested, key: account_id, over: 1h, agg: sum(amount_usd)}\n"
           "rules:\n  - id: exact\n    on: withdrawal.requested\n    when: total == 0.3\n    action: review\n",
           1, 24 * HOUR, HOUR);
    one(&h, "g1", "A", "X", "0.1", B, NULL);
    i = one(&h, "g2", "A", "X", "0.2", B + SEC, NULL);
    ck_assert_int_eq(h.outs[0].action, DG_ALLOW);
    ck_assert_int_eq(h.outs[i].action, DG_REVIEW);
    h_free(&h);
}
END_TEST

START_TEST(missing_key_and_filters)
{
    struct harness h;
    h_init(&h, win_rules, 1, 24 * HOUR, HOUR);
    /* no dest_tag: not counted in tag_cnt and reads missing */
    size_t i = one(&h, "k1", "A", "X", "1", B, NULL);
    FIELD_IS(&h, i, "tag", "(none)");
    i = one(&h, "k2", "A", "X", "1", B + SEC, "\"dest_tag\":\"memo1\"");
    FIELD_IS(&h, i, "tag", "1");
    i = one(&h, "k3", "A", "X", "1", B + 2 * SEC, NULL);
    FIELD_IS(&h, i, "tag", "(none)");
    i = one(&h, "k4", "Bk", "X", "1", B + 3 * SEC, "\"dest_tag\":\"memo1\"");
    FIELD_IS(&h, i, "tag", "2");

    /* api_cnt counts only channel == "api"; a missing channel is not api */
    i = one(&h, "k5", "C", "X", "1", B, "\"channel\":\"api\"");
    FIELD_IS(&h, i, "api", "1");
    i = one(&h, "k6", "C", "X", "1", B + SEC, "\"channel\":\"web\"");
    FIELD_IS(&h, i, "api", "1");
    i = one(&h, "k7", "C", "X", "1", B + 2 * SEC, NULL);
    FIELD_IS(&h, i, "api", "1");
    FIELD_IS(&h, i, "cnt", "3");
    /* a key whose filter never passed reads missing, not 0 */
    i = one(&h, "k8", "D", "X", "1", B, "\"channel\":\"web\"");
    FIELD_IS(&h, i, "api", "(none)");
    FIELD_IS(&h, i, "cnt", "1");
    h_free(&h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* memory                                                             */

static const char expiry_rules[] =
    "windows:\n"
    "  a1: {on: withdrawal.requested, key: account_id, over: 10m, agg: count}\n"
    "  a2: {on: withdrawal.requested, key: account_id, over: 10m, agg: sum(amount_usd)}\n"
    "  a3: {on: withdrawal.requested, key: dest_address, over: 10m, agg: count}\n"
    "  a4: {on: withdrawal.requested, key: dest_address, over: 10m, agg: distinct(account_id)}\n"
    "  a5: {on: withdrawal.requested, key: [account_id, dest_address], over: 10m, agg: seen}\n"
    "  a6: {on: withdrawal.requested, key: withdrawal_id, over: 10m, agg: last(ts)}\n"
    "rules:\n  - id: r\n    on: withdrawal.requested\n"
    "    when: a1 + a2 + a3 + a4 > 0 and not a5 and ts - a6 < 1h\n    action: review\n";

/* A rule reload keeps the state of unchanged windows; new windows keyed
 * by the same fields start empty, in the same group (which grows). */
START_TEST(reload_keeps_unchanged_windows)
{
    static const char before[] =
        "windows:\n"
        "  cnt:   {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: count}\n"
        "  total: {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: sum(amount_usd)}\n"
        "rules:\n  - id: show\n    on: withdrawal.requested\n    when: true\n    action: allow\n"
        "    reason: \"cnt={cnt} total={total}\"\n";
    static const char after[] =
        "windows:\n"
        "  fresh: {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: count}\n"
        "  total: {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: sum(amount_usd)}\n"
        "  top:   {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: max(amount_usd)}\n"
        "  cnt:   {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: count}\n"
        "  dests: {on: withdrawal.requested, key: account_id, over: 10m, precision: 1m, agg: distinct(dest_address)}\n"
        "rules:\n  - id: show\n    on: withdrawal.requested\n    when: true\n    action: allow\n"
        "    reason: \"cnt={cnt} total={total} fresh={fresh} top={top} dests={dests}\"\n";
    struct harness h;
    struct dg_diag d = {0};
    h_init(&h, before, 8, 24 * HOUR, HOUR);
    one(&h, "r1", "A", "X", "5", B, NULL);
    size_t i = one(&h, "r2", "A", "Y", "7", B + MIN, NULL);
    FIELD_IS(&h, i, "cnt", "2");
    FIELD_IS(&h, i, "total", "12");
    struct dg_ruleset *rs2 = dg_ruleset_load_mem("w2.yaml", after, strlen(after), &d);
    ck_assert_msg(rs2 != NULL, "rules: %s", d.n ? d.lines[0] : "?");
    dg_diag_free(&d);
    ck_assert_int_eq(dg_pipeline_set_rules(h.p, rs2), 0);
    dg_ruleset_free(h.rs);
    h.rs = rs2;
    i = one(&h, "r3", "A", "Z", "1", B + 2 * MIN, NULL);
    FIELD_IS(&h, i, "cnt", "3");
    FIELD_IS(&h, i, "total", "13");
    FIELD_IS(&h, i, "fresh", "1");
    FIELD_IS(&h, i, "top", "1");
    FIELD_IS(&h, i, "dests", "1");
    i = one(&h, "r4", "A", "X", "2", B + 3 * MIN, NULL);
    FIELD_IS(&h, i, "cnt", "4");
    FIELD_IS(&h, i, "total", "15");
    FIELD_IS(&h, i, "fresh", "2");
    FIELD_IS(&h, i, "top", "2");
    FIELD_IS(&h, i, "dests", "2");
    struct dg_win_raw raw;
    ck_assert_int_eq(dg_state_mem_peek(h.st, &rs2->windows[3], "A", 1, B + 3 * MIN, &raw), 0);
    ck_assert_int_eq(raw.count, 4);
    h_free(&h);
}
END_TEST

START_TEST(idle_key_expiry)
{
    struct harness h;
    struct dg_mem_stats ms;
    size_t peak_keys = 0, peak_dedupe = 0;
    const int n = 20000;
    h_init(&h, expiry_rules, 64, 30 * MIN, 5 * MIN);
    for (int k = 0; k < n; k++) {
        char id[16], acct[16], dest[16];
        snprintf(id, sizeof id, "i%d", k);
        snprintf(acct, sizeof acct, "acct%d", k);
        snprintf(dest, sizeof dest, "dest%d", k);
        /* every event brings six new window keys in four groups (windows
         * keyed by the same fields share one entry); one event every 10s */
        char *l = wd(id, acct, dest, "1", B + k * 10 * SEC, NULL);
        h_push(&h, l, 64);
        free(l);
        if (k % 1000 == 999) {
            dg_state_mem_stats(h.st, &ms);
            if (k >= 5000) {
                if (ms.keys > peak_keys)
                    peak_keys = ms.keys;
                if (ms.dedupe > peak_dedupe)
                    peak_dedupe = ms.dedupe;
            }
        }
    }
    h_flush(&h);
    ck_assert_uint_eq(h.nouts, (size_t)n);
    dg_state_mem_stats(h.st, &ms);
    /* live: groups touched in the last over + step + lateness (16m, ~100
     * events, 4 groups each); a sweep lags at most a couple of passes */
    ck_assert_msg(peak_keys < 4000, "window keys grow with traffic: %zu", peak_keys);
    ck_assert_uint_gt(ms.expired_keys, (size_t)(4 * n - 4000));
    /* event ids remembered for 30m of event time: ~180 events */
    ck_assert_msg(peak_dedupe < 1000, "dedupe records grow with traffic: %zu", peak_dedupe);
    h_free(&h);
}
END_TEST

START_TEST(dedupe_window_expiry)
{
    struct harness h;
    h_init(&h, win_rules, 1, 30 * MIN, 5 * MIN);
    size_t first = one(&h, "dup", "A", "X", "1", B, NULL);
    FIELD_IS(&h, first, "cnt", "1");
    /* within the dedupe window: a duplicate */
    char *l = wd("dup", "A", "X", "1", B, NULL);
    dg_pipeline_push(h.p, l, strlen(l), NULL);
    h_flush(&h);
    ck_assert_int_eq(h.outs[h.nouts - 1].duplicate, 1);
    /* move event time well past 30m with other events, enough for the
     * sweep to pass every slot */
    for (int k = 0; k < 200; k++) {
        char id[24];
        snprintf(id, sizeof id, "other%d", k);
        one(&h, id, "Z", "X", "1", B + 31 * MIN + k * SEC, NULL);
    }
    struct dg_mem_stats ms;
    dg_state_mem_stats(h.st, &ms);
    ck_assert_uint_eq(ms.dedupe, 200); /* the 200 others; "dup" is forgotten */
    /* forgotten: decided again, as a new event (and too late to count) */
    dg_pipeline_push(h.p, l, strlen(l), NULL);
    h_flush(&h);
    ck_assert_int_eq(h.outs[h.nouts - 1].duplicate, 0);
    free(l);
    h_free(&h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* freezes                                                            */

static const char freeze_rules[] =
    "rules:\n"
    "  - id: big\n    on: withdrawal.requested\n    when: amount_usd > 10000\n"
    "    action: freeze\n    freeze: [account]\n"
    "  - id: big-dest\n    on: withdrawal.requested\n    when: amount_usd > 50000\n"
    "    action: freeze\n    freeze: [destination]\n    mode: shadow\n";

static void freeze_events(struct harness *h, size_t batch)
{
    static const struct {
        const char *id, *acct, *dest, *usd;
    } evs[] = {
        {"z1", "A", "X", "100"},     /* allow */
        {"z2", "A", "X", "20000"},   /* freeze account A */
        {"z3", "A", "Y", "5"},       /* held: A frozen */
        {"z4", "Bk", "X", "5"},      /* allow: another account */
        {"z5", "Bk", "Y", "60000"},  /* freeze Bk; destination only in shadow */
        {"z6", "C", "Y", "5"},       /* allow: shadow freezes nothing */
        {"z7", "Bk", "Z", "1"},      /* held */
        {"z3", "A", "Y", "5"},       /* duplicate of a held one */
    };
    for (size_t i = 0; i < DG_ARRAY_LEN(evs); i++) {
        char *l = wd(evs[i].id, evs[i].acct, evs[i].dest, evs[i].usd, B + (int64_t)i * SEC, NULL);
        h_push(h, l, batch);
        free(l);
    }
    h_flush(h);
}

START_TEST(freezes_hold_later_events)
{
    static const size_t batches[] = {1, 3, 512};
    static const int want[] = {DG_ALLOW, DG_FREEZE, DG_HOLD, DG_ALLOW, DG_FREEZE, DG_ALLOW,
                               DG_HOLD, DG_HOLD};
    for (size_t b = 0; b < DG_ARRAY_LEN(batches); b++) {
        struct harness h;
        h_init(&h, freeze_rules, batches[b], 24 * HOUR, HOUR);
        freeze_events(&h, batches[b]);
        ck_assert_uint_eq(h.nouts, 8);
        for (size_t i = 0; i < 8; i++)
            ck_assert_msg(h.outs[i].action == want[i], "batch %zu event %zu: action %d, want %d",
                          batches[b], i, h.outs[i].action, want[i]);
        ck_assert_ptr_nonnull(strstr(h.outs[2].decision, "dg:frozen-scope"));
        ck_assert_ptr_nonnull(strstr(h.outs[2].decision, "account 'A' is frozen"));
        ck_assert_ptr_null(strstr(h.outs[5].decision, "frozen"));
        ck_assert_int_eq(h.outs[7].duplicate, 1);
        ck_assert_str_eq(h.outs[7].decision, h.outs[2].decision);
        struct dg_mem_stats ms;
        dg_state_mem_stats(h.st, &ms);
        ck_assert_uint_eq(ms.freezes, 2);
        h_free(&h);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* batch size                                                         */

/* A mixed stream: several accounts, repeats, out-of-order and too-late
 * events, duplicates near and far, freezes. */
static char **mixed_stream(size_t *n)
{
    char **v = dg_xmalloc(600 * sizeof(char *));
    size_t k = 0;
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 520; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        char id[16], acct[16], dest[16], usd[32], more[64];
        int64_t jitter = (int64_t)(x % 180) * SEC - 60 * SEC; /* -1m .. +2m */
        if (i % 97 == 0)
            jitter = -15 * MIN;                                 /* too late */
        snprintf(id, sizeof id, "m%d", (i % 41 == 40) ? i - 13 : i); /* duplicates */
        snprintf(acct, sizeof acct, "acct%d", (int)((x >> 20) % 9));
        snprintf(dest, sizeof dest, "dest%d", (int)((x >> 30) % 5));
        snprintf(usd, sizeof usd, "%d.%02d", (int)((x >> 40) % 3000), (int)((x >> 8) % 100));
        if (i % 53 == 0)
            snprintf(usd, sizeof usd, "25000");                 /* freezes the account */
        snprintf(more, sizeof more, "\"channel\":\"%s\"", (x >> 50) % 2 ? "api" : "web");
        v[k++] = wd(id, acct, dest, usd, B + i * 20 * SEC + jitter,
                    (x >> 52) % 3 ? more : "\"dest_tag\":\"t1\"");
    }
    v[k++] = dg_xstrdup("{\"event_id\":\"bad\",\"type\":\"withdrawal.requested\"}");
    *n = k;
    return v;
}

static const char mixed_rules[] =
    "windows:\n"
    "  cnt:   {on: withdrawal.requested, key: account_id, over: 10m, agg: count}\n"
    "  total: {on: withdrawal.requested, key: account_id, over: 10m, agg: sum(amount_usd)}\n"
    "  dests: {on: withdrawal.requested, key: dest_address, over: 5m, agg: distinct(account_id)}\n"
    "  last_dest: {on: withdrawal.requested, key: account_id, over: 30m, agg: last(dest_address)}\n"
    "  seen_pair: {on: withdrawal.requested, key: [account_id, dest_address], over: 30m, agg: seen}\n"
    "  api:   {on: withdrawal.requested, when: 'channel == \"api\"', key: account_id, over: 10m, agg: count}\n"
    "rules:\n"
    "  - id: show\n    on: withdrawal.requested\n    when: true\n    action: allow\n"
    "    reason: \"{cnt} {total} {dests} {last_dest} {seen_pair} {api}\"\n"
    "  - id: many\n    on: withdrawal.requested\n    when: cnt >= 4 and not seen_pair\n    action: review\n"
    "  - id: big\n    on: withdrawal.requested\n    when: amount_usd >= 25000\n"
    "    action: freeze\n    freeze: [account]\n";

START_TEST(batch_size_independent)
{
    static const size_t batches[] = {1, 7, 512};
    size_t n;
    char **ev = mixed_stream(&n);
    struct harness h[3];

    for (int b = 0; b < 3; b++) {
        h_init(&h[b], mixed_rules, batches[b], 24 * HOUR, HOUR);
        for (size_t i = 0; i < n; i++)
            h_push(&h[b], ev[i], batches[b]);
        h_flush(&h[b]);
        ck_assert_uint_eq(h[b].nouts, n);
    }
    size_t holds = 0, dups = 0, reviews = 0;
    for (size_t i = 0; i < n; i++) {
        for (int b = 1; b < 3; b++) {
            ck_assert_msg((h[0].outs[i].decision == NULL) == (h[b].outs[i].decision == NULL),
                          "event %zu: decision in one run only", i);
            if (!h[0].outs[i].decision)
                continue;
            ck_assert_msg(h[0].outs[i].len == h[b].outs[i].len &&
                              !memcmp(h[0].outs[i].decision, h[b].outs[i].decision, h[0].outs[i].len),
                          "event %zu differs between batch 1 and %zu:\n  %s\n  %s", i, batches[b],
                          h[0].outs[i].decision, h[b].outs[i].decision);
            ck_assert_int_eq(h[0].outs[i].duplicate, h[b].outs[i].duplicate);
        }
        holds += h[0].outs[i].action == DG_HOLD;
        reviews += h[0].outs[i].action == DG_REVIEW;
        dups += h[0].outs[i].duplicate;
    }
    /* the stream exercises what it should */
    ck_assert_uint_gt(holds, 10);
    ck_assert_uint_gt(reviews, 2);
    ck_assert_uint_eq(dups, 12); /* every i % 41 == 40 */
    ck_assert_uint_gt(dg_pipeline_stats(h[0].p)->late, 0);
    for (int b = 0; b < 3; b++)
        h_free(&h[b]);
    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    free(ev);
}
END_TEST

/* ------------------------------------------------------------------ */
/* window.c arithmetic                                                */

START_TEST(bucket_and_fixed_point)
{
    ck_assert_int_eq(dg_bucket_of(0, 1000), 0);
    ck_assert_int_eq(dg_bucket_of(999, 1000), 0);
    ck_assert_int_eq(dg_bucket_of(1000, 1000), 1);
    ck_assert_int_eq(dg_bucket_of(-1, 1000), -1);
    ck_assert_int_eq(dg_bucket_of(-1000, 1000), -1);
    ck_assert_int_eq(dg_bucket_of(-1001, 1000), -2);
    ck_assert_int_eq(dg_fixed(0.1), 100000);
    ck_assert_int_eq(dg_fixed(-0.1), -100000);
    ck_assert_int_eq(dg_fixed(1234.5678915), 1234567892);
    ck_assert_int_eq(dg_fixed(1e300), 9200000000000000000LL);
    ck_assert_int_eq(dg_fixed(-1e300), -9200000000000000000LL);
    ck_assert(dg_unfixed(300000) == 0.3);
    ck_assert(dg_unfixed(-1500000) == -1.5);
    dg_value a = dg_num(1), b = dg_num(1.000001), s1 = dg_str("ab", 2), s2 = dg_str("abc", 2);
    ck_assert(dg_value_hash(&a) != dg_value_hash(&b));
    ck_assert(dg_value_hash(&s1) == dg_value_hash(&s2));
    for (size_t i = 0; i < dg_naggs; i++)
        ck_assert_ptr_eq(dg_agg_lookup(dg_aggs[i].name, strlen(dg_aggs[i].name)), &dg_aggs[i]);
    ck_assert_ptr_null(dg_agg_lookup("cnt", 3));
    /* every aggregate of an empty window is missing, except seen (false) */
    struct dg_win_raw raw = {0};
    for (size_t i = 0; i < dg_naggs; i++) {
        dg_value v = dg_aggs[i].value(&raw);
        if (!strcmp(dg_aggs[i].name, "seen"))
            ck_assert(v.t == DG_T_BOOL && v.u.b == 0);
        else
            ck_assert_msg(v.t == DG_T_NONE, "%s of an empty window", dg_aggs[i].name);
    }
}
END_TEST

static Suite *window_suite(void)
{
    Suite *s = suite_create("window");
    TCase *tc;

    tc = tcase_create("time");
    tcase_add_test(tc, window_boundary);
    tcase_add_test(tc, late_events);
    tcase_add_test(tc, out_of_order);
    tcase_add_test(tc, bucket_and_fixed_point);
    suite_add_tcase(s, tc);

    tc = tcase_create("aggregates");
    tcase_add_test(tc, distinct_counting);
    tcase_add_test(tc, last_value);
    tcase_add_test(tc, seen_aggregate);
    tcase_add_test(tc, fixed_point_exactness);
    tcase_add_test(tc, missing_key_and_filters);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, duplicate_event_ids);
    tcase_add_test(tc, idle_key_expiry);
    tcase_add_test(tc, reload_keeps_unchanged_windows);
    tcase_add_test(tc, dedupe_window_expiry);
    tcase_add_test(tc, freezes_hold_later_events);
    tcase_add_test(tc, batch_size_independent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(window_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
