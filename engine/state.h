/*
 * state.h - the state backend interface: windows, freezes and the record of
 * decided events. window_mem.c implements it in process (replay, tests);
 * window_redis.c implements it on Redis (the streaming engine). Both must
 * give the same window values, bit for bit, on the same events: the
 * semantics live in window.c and are restated in docs/windows.md.
 *
 * The engine works in batches. For each batch:
 *   1. the engine fills one dg_item per input (plan: window ops, scopes);
 *   2. apply(): in item order, for each item whose event_id was not decided
 *      before, add it to its windows, then read the windows rules need,
 *      and report which of its scopes are frozen; for an event_id decided
 *      before, return the stored decision instead and change nothing;
 *   3. the engine evaluates rules (freezes placed earlier in the same batch
 *      are overlaid by the engine);
 *   4. commit(): store each new item's decision under its event_id and
 *      place the freezes it decided.
 * Nothing is published before commit() succeeds, so a published decision
 * always has its stored twin and a redelivery gets the same bytes again.
 */
#ifndef DG_STATE_H
#define DG_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "reconcile.h"
#include "rules.h"
#include "util.h"

/* One window touched by one event. */
struct dg_winop {
    uint16_t win;          /* window index in the rule set */
    uint8_t add;           /* the event counts in this window */
    uint8_t read;          /* rules read this window for this event */
    const char *key;       /* the key's bytes (see dg_window_key) */
    uint32_t keylen;
    int64_t fp;            /* field value in fixed point (sum, max, min) */
    uint64_t vhash;        /* hash of the field value (distinct) */
    dg_value val;          /* the field value (last) */
    struct dg_win_raw raw; /* out: the figures after the add */
};

struct dg_freeze_info {
    const char *rule_id;
    const char *reason;
};

struct dg_item {
    /* in */
    const char *event_id;
    size_t event_id_len;
    int64_t ts;                          /* event time, ms */
    int decidable;                       /* 0: a reject, only recorded */
    struct dg_winop *ops;
    size_t nops;
    const char *scope_key[DG_NSCOPES];   /* NULL: the event has no such scope */
    uint32_t scope_len[DG_NSCOPES];
    /* out of apply() */
    int dup;                             /* decided before */
    const char *stored;                  /* its decision ("" = none), when dup */
    size_t stored_len;
    uint32_t frozen;                     /* bit per scope: frozen now */
    int late;                            /* too late for some window */
    /* reconciliation (reconcile.h). in: the withdrawal ids whose records
     * this event needs (a withdrawal: its own; an outflow: those it pays);
     * out of apply(): their records, NULL when unknown; in to commit(): the
     * records to write (a decided request; requests an outflow paid) */
    const char *const *req_ids;
    size_t nreq_ids;
    const struct dg_reqrec **reqs;
    const struct dg_reqrec **writes;
    size_t nwrites;
    const char *own_id;                  /* storage for req_ids of a withdrawal */
    /* in to commit() */
    const char *decision;                /* "" when the event gets none */
    size_t decision_len;
    uint32_t freeze;                     /* scopes this decision freezes */
    struct dg_freeze_info freeze_info;
};

struct dg_state;

struct dg_state_ops {
    const char *name;
    /* 0 on success; -1 with st->errstr set, and nothing applied that the
     * caller could observe as partial (the batch is retried whole) */
    int (*apply)(struct dg_state *st, const struct dg_ruleset *rs,
                 struct dg_item *items, size_t n, dg_arena *arena);
    int (*commit)(struct dg_state *st, struct dg_item *items, size_t n);
    void (*destroy)(struct dg_state *st);
    int (*ping)(struct dg_state *st); /* NULL: always up */
    /* A window key's raw figures as a read at at_ms would see them, without
     * changing anything: 0 found, -1 no such key, -2 backend error.
     * Strings are copied into arena. */
    int (*peek)(struct dg_state *st, const struct dg_window *w, const char *key, size_t keylen,
                int64_t at_ms, dg_arena *arena, struct dg_win_raw *out);
    /* commit() in two halves (NULL: commit() only): send starts it and
     * returns, recv (with the same items) waits for its outcome; same
     * results as commit(). Between the two the caller may apply() and send
     * one more batch, built on the first one's changes (or get
     * DG_STATE_BUSY: finish the first, then apply again); outcomes are
     * then received in the order the batches were sent, and a failure of
     * the first fails the second, to be decided again after it. */
    int (*commit_send)(struct dg_state *st, struct dg_item *items, size_t n);
    int (*commit_recv)(struct dg_state *st, struct dg_item *items, size_t n);
};

/* dg_state.err after a failed apply() or commit() */
enum {
    DG_STATE_OK = 0,
    DG_STATE_DOWN,     /* unreachable, timed out, refused: retry later */
    DG_STATE_CONFLICT, /* another instance changed a key this batch read:
                          apply and judge again, at once */
    DG_STATE_CORRUPT,  /* stored state that cannot be read: needs a human */
    DG_STATE_BUSY      /* apply() while another batch's commit is on its way,
                          and this batch would need that outcome first (a read,
                          a freeze placed): nothing done; finish the other
                          batch, then apply again */
};

struct dg_state {
    const struct dg_state_ops *ops;
    int err;
    char errstr[256];
    int64_t dedupe_ms;    /* how long (event time) an event_id is remembered */
    int64_t lateness_ms;  /* how late an event may be and still see state */
};

/* Redis backend (window_redis.c, the only file that includes hiredis.h).
 * Window state, decided events and freezes live under `prefix`, shared by
 * every engine instance; see docs/redis.md for the key layout. */
struct dg_redis_opts {
    const char *host;       /* default 127.0.0.1 */
    int port;               /* default 6379 */
    const char *unix_path;  /* a unix socket instead of host:port */
    const char *user;       /* ACL user (optional) */
    const char *password;   /* AUTH password (optional) */
    int db;                 /* SELECT db */
    const char *prefix;     /* key prefix, default "dg:" */
    int timeout_ms;         /* connect and command timeout, default 2000 */
    int64_t dedupe_ms;      /* TTL of decided event ids (wall clock) */
    int64_t lateness_ms;    /* idle window keys live over + step + this */
};
/* Connect (and load the scripts). NULL with a message in err when Redis
 * cannot be reached or refuses AUTH/SELECT. After that, apply() and
 * commit() reconnect on their own; a failure returns -1 with errstr set
 * and leaves nothing half-applied that a retry would count twice. */
struct dg_state *dg_state_redis_new(const struct dg_redis_opts *o, char *err, size_t errsz);
/* 0 when the backend answers (PING); -1 otherwise. */
int dg_state_ping(struct dg_state *st);
/* What the Redis backend did: commit attempts (one script each), batches
 * that had to read first (keys not cached, or the freezes changed), keys
 * taken from its cache, read from Redis, and taken to be absent without
 * reading (the commit checks), conflicts (another writer, or
 * events decided already), and the cache's size now. */
struct dg_redis_stats {
    unsigned long long commits, reads, keys_cached, keys_read, keys_guessed, conflicts, decided_found;
    unsigned long long built_ahead, busy; /* applied while another commit was on its way; could not */
    unsigned long long tx_commits;        /* of commits: checks + transaction (else the single script) */
    size_t cache_keys, cache_bytes;
};
void dg_state_redis_stats(struct dg_state *st, struct dg_redis_stats *out);

/* In-process backend. dedupe_ms and lateness_ms as above. */
struct dg_state *dg_state_mem_new(int64_t dedupe_ms, int64_t lateness_ms);
/* Statistics of the memory backend (for summaries and tests). */
struct dg_mem_stats {
    size_t keys, dedupe, freezes, late_events, expired_keys;
};
void dg_state_mem_stats(struct dg_state *st, struct dg_mem_stats *out);
/* Visit every freeze in force: scope name, key, the rule that placed it,
 * its reason, the event time and event_id of the decision that placed it. */
typedef void (*dg_freeze_visit_fn)(void *ud, const char *scope, const char *key,
                                   const char *rule_id, const char *reason, int64_t ts,
                                   const char *event_id);
void dg_state_mem_freezes(struct dg_state *st, dg_freeze_visit_fn fn, void *ud);
/* Read a window key's raw figures without changing anything (any backend;
 * see dg_state_ops.peek). */
int dg_state_peek(struct dg_state *st, const struct dg_window *w, const char *key, size_t keylen,
                  int64_t at_ms, dg_arena *arena, struct dg_win_raw *out);
/* The memory backend's, kept for the tests that call it directly. */
int dg_state_mem_peek(struct dg_state *st, const struct dg_window *w,
                      const char *key, size_t keylen, int64_t at_ms,
                      struct dg_win_raw *out);

/* ---- window arithmetic shared by the backends (window.c) ---- */

/* floor(t / step), correct for negative t */
int64_t dg_bucket_of(int64_t t_ms, int64_t step_ms);
/* Fixed point of a number, saturating at +-9.2e12 */
int64_t dg_fixed(double v);
double dg_unfixed(int64_t fp);
/* Hash of a value for distinct(): strings by bytes, numbers by their fixed
 * point, times by ms. Same value, same hash, in every backend. */
uint64_t dg_value_hash(const dg_value *v);
/* Build the key bytes of window w for event ev into arena: NULL when a key
 * field is missing. One key: its bytes; several: "len:bytes" each. */
const char *dg_window_key(const struct dg_window *w, const struct dg_event *ev,
                          dg_arena *a, uint32_t *len);

#endif
