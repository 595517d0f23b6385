/*
 * window_redis.c - the Redis state backend; the only file that includes
 * hiredis.h. Window keys, decided events and freezes live in Redis so that
 * every engine instance shares them and the exchange's own tools can see
 * the freezes.
 *
 * The engine computes, Redis stores. Per batch:
 *   apply():  the state blobs and request records the batch needs come
 *             from a write-through cache of what this instance last read or
 *             wrote (with the version it had); only the keys not cached are
 *             read (one pipelined MGET, plus ZMSCORE for distinct sets that
 *             outgrew their blob, plus the freezes hash when its version
 *             changed). A batch whose keys are all cached reads nothing.
 *             Then, in the engine, the same window code the memory backend
 *             runs (window_state.c), event after event.
 *   commit(): check that no key the batch used changed since it was read
 *             or written here (an 8-byte version in front of each blob, or
 *             for keys this instance alone wrote since, the write sequence
 *             P wseq), that the freezes did not change, and that none of
 *             its events was decided already; then write the blobs, the
 *             distinct values, each event's decision under its event_id,
 *             and the freezes - all or nothing. Normally a check script and
 *             a MULTI/EXEC transaction that WATCHes the write sequence
 *             (send_fast); while instances contend, or when the ACL lacks
 *             the commands, one script (EVALSHA) that does both.
 * So a batch is one round trip once its keys are cached; the backends agree
 * bit for bit by construction; a batch retried after a lost reply, or an
 * event redelivered after a crash, finds its events decided: the script
 * returns their stored decisions and the batch is judged again with them
 * (no double counting); and two instances racing on one key cannot both
 * win: the loser gets DG_STATE_CONFLICT, forgets the keys that changed, and
 * the pipeline reads them and judges again.
 *
 * Keys under the prefix P (default "dg:"), docs/redis.md has the details:
 *   P g:<keyset>:<key>     string: version (8 bytes LE) + the state of every
 *                          window keyed by the same fields, one section each
 *   P d:<state_id>:<key>   sorted set: distinct value -> latest bucket
 *   P e:<event_id>         string: "D" + the decision ("D" alone: none)
 *   P r:<withdrawal_id>    string: version (8 bytes LE) + the request's record
 *                          (reconciliation: decision, destination, paid?)
 *   P freezes              hash: "<scope>|<key>" -> JSON record
 *   P wseq                 counter: raised by every commit
 */
#include "state.h"
#include "hmap.h"
#include "window_state.h"
#include "util.h"
#include "log.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Lua helpers of both commit scripts. mget() and exists() take the keys
 * a[from..to] (in pieces: unpack() stops at about 8,000 values). checks():
 * every check of a commit, in this order - the batch ahead was committed
 * (chain holds tok, unless tok is ''; else {3}), the write sequence wkey
 * holds wexp (unless wexp is ''; else {4}); then the freezes' version,
 * the keys read (np, np keys, np versions: the first 8 bytes of each
 * must be as read), the keys taken to be absent and the events' e: keys
 * (na, ne, na keys, ne keys: none may exist) - else {0, key, what it
 * holds now (false: nothing), ...}, marking the contention key when a key
 * that existed changed - and last, events decided already: {2, index,
 * stored decision, ...}. One EXISTS covers the absent keys and the e:
 * keys; which ones exist is looked up only when one does (rare), so the
 * script does little more than Redis's own commands would. Returns the
 * refusal; or nil, the index after the checks' arguments, and where the
 * ne e: keys start. */
#define LUA_PIECES \
    "local function mget(a, from, to)\n" \
    "  local out = {}\n" \
    "  for s = from, to, 4000 do\n" \
    "    local part = redis.call('MGET', unpack(a, s, math.min(s + 3999, to)))\n" \
    "    for j = 1, #part do out[s - from + j] = part[j] end\n" \
    "  end\n" \
    "  return out\n" \
    "end\n" \
    "local function exists(a, from, to)\n" \
    "  local c = 0\n" \
    "  for s = from, to, 4000 do c = c + redis.call('EXISTS', unpack(a, s, math.min(s + 3999, to))) end\n" \
    "  return c\n" \
    "end\n" \
    "local function checks(a, chain, tok, wkey, wexp, fvkey, fver, contended, i)\n" \
    "  if tok ~= '' and redis.call('GET', chain) ~= tok then return {3} end\n" \
    "  if wexp ~= '' and (redis.call('GET', wkey) or '0') ~= wexp then return {4} end\n" \
    "  local bad = {0}\n" \
    "  if (redis.call('GET', fvkey) or '') ~= fver then bad[2] = fvkey; bad[3] = false end\n" \
    "  local np, real = tonumber(a[i]), false\n" \
    "  if np > 0 then\n" \
    "    local cur = mget(a, i + 1, i + np)\n" \
    "    for j = 1, np do\n" \
    "      if string.sub(cur[j] or '', 1, 8) ~= a[i + np + j] then\n" \
    "        bad[#bad + 1] = a[i + j]; bad[#bad + 1] = cur[j] or false; real = true\n" \
    "      end\n" \
    "    end\n" \
    "  end\n" \
    "  i = i + 1 + 2 * np\n" \
    "  local na, ne = tonumber(a[i]), tonumber(a[i + 1])\n" \
    "  i = i + 2\n" \
    "  local ek = i + na\n" \
    "  if na + ne > 0 and exists(a, i, ek + ne - 1) > 0 then\n" \
    "    if na > 0 and exists(a, i, ek - 1) > 0 then\n" \
    "      local cur = mget(a, i, ek - 1)\n" \
    "      for j = 1, na do\n" \
    "        if cur[j] then bad[#bad + 1] = a[i + j - 1]; bad[#bad + 1] = cur[j] end\n" \
    "      end\n" \
    "    end\n" \
    "    if #bad == 1 then\n" \
    "      local cur = mget(a, ek, ek + ne - 1)\n" \
    "      local out = {2}\n" \
    "      for j = 1, ne do\n" \
    "        if cur[j] then out[#out + 1] = j - 1; out[#out + 1] = cur[j] end\n" \
    "      end\n" \
    "      return out\n" \
    "    end\n" \
    "  end\n" \
    "  if #bad > 1 then\n" \
    "    if real then redis.call('SET', contended, '1', 'PX', 10000) end\n" \
    "    return bad\n" \
    "  end\n" \
    "  return nil, ek + ne, ek\n" \
    "end\n"

/* The write half of a batch, atomic. First the checks (see checks():
 * the batch this one was built on was committed - ARGV[4], this
 * instance's chain key, holds ARGV[5], the token of the batch ahead, when
 * one was on its way -, the freezes' version, the keys' versions, the
 * keys taken to be absent, the events not decided). Then the writes.
 * ARGV: freezes hash, its version key and expected value, chain key,
 * token ahead, own token, contention key, write sequence; from ARGV[9]
 * the checks' part (see struct layout), then ne x ("D" + decision, ttl)
 * for the e: keys, nwr, nwr x (key, value, ttl), the distinct sets, the
 * freezes. Returns {1, freezes placed, contended}; or a refusal (see
 * checks()), writing nothing. It leaves its own token ARGV[6] in the
 * chain key. A conflict also marks the contention key ARGV[7] for 10 s,
 * and a commit says whether it is marked: while it is, no instance builds
 * a batch on one whose commit is on its way (an instance with two scripts
 * always queued would starve another one writing the same keys). It
 * touches the write sequence ARGV[8], so that a transaction commit
 * (send_fast) of another instance whose checks ran before it writes
 * nothing. */
static const char commit_script[] =
    LUA_PIECES
    "local a = ARGV\n"
    "local call = redis.call\n"
    "local fkey, fvkey = a[1], a[2]\n"
    "local out, i, ek = checks(a, a[4], a[5], nil, '', fvkey, a[3], a[7], 9)\n"
    "if out then return out end\n"
    "for j = 0, i - ek - 1 do -- the decisions: (\"D\" + decision, ttl) of each e: key\n"
    "  call('SET', a[ek + j], a[i], 'PX', a[i + 1])\n"
    "  i = i + 2\n"
    "end\n"
    "for _ = 1, tonumber(a[i]) do -- the other keys (ttl '': kept)\n"
    "  if a[i + 3] == '' then call('SET', a[i + 1], a[i + 2], 'KEEPTTL')\n"
    "  else call('SET', a[i + 1], a[i + 2], 'PX', a[i + 3]) end\n"
    "  i = i + 3\n"
    "end\n"
    "i = i + 1\n"
    "for _ = 1, tonumber(a[i]) do\n"
    "  local k, lo, ttl, nm = a[i + 1], a[i + 2], a[i + 3], tonumber(a[i + 4])\n"
    "  i = i + 4\n"
    "  for _ = 1, nm do\n"
    "    call('ZADD', k, 'GT', a[i + 2], a[i + 1])\n"
    "    i = i + 2\n"
    "  end\n"
    "  call('ZREMRANGEBYSCORE', k, '-inf', '(' .. lo)\n"
    "  call('PEXPIRE', k, ttl)\n"
    "end\n"
    "i = i + 1\n"
    "local placed = 0\n"
    "for _ = 1, tonumber(a[i]) do\n"
    "  placed = placed + call('HSETNX', fkey, a[i + 1], a[i + 2])\n"
    "  i = i + 2\n"
    "end\n"
    "if placed > 0 then call('INCR', fvkey) end\n"
    "call('SET', a[4], a[6], 'PX', 600000)\n"
    "call('INCR', a[8])\n"
    "return {1, placed, call('EXISTS', a[7])}\n";

/* The checks of commit_script alone, for the transaction commit (see
 * send_fast): the same checks and replies, {1, 0, contended} when they pass;
 * when one fails it also touches the write sequence ARGV[6], which the
 * transaction WATCHes, so that its EXEC writes nothing. ARGV: freezes'
 * version key and expected value, chain key, expected token, contention
 * key, write sequence and its expected value ("": not checked; else {4}
 * when it differs: another instance committed since this one's last
 * commit), then the checks' part of commit_script's arguments as it is.
 * Keys left out of the np read keys are those this instance wrote or
 * checked at a write sequence value since which only it has committed.
 * Sent with EVAL (never NOSCRIPT: the transaction behind it must not run
 * unchecked). */
static const char check_script[] =
    LUA_PIECES
    "local a = ARGV\n"
    "local call = redis.call\n"
    "local out = checks(a, a[3], a[4], a[6], a[7], a[1], a[2], a[5], 8)\n"
    "if out then call('INCR', a[6]); return out end\n"
    "return {1, 0, call('EXISTS', a[5])}\n";

/* The write-through cache: a Redis key this instance read or wrote, as it
 * stands there (version included), until expires_ms (wall clock). */
struct centry {
    int64_t expires_ms;
    size_t len;
    int existed;         /* 0: the key did not exist */
    char *key;           /* points into data, after the value */
    size_t keylen;
    char data[];         /* value, then key */
};

#define CACHE_MAX_BYTES ((size_t)256 << 20) /* then it starts over, empty */
#define CACHE_READ_MS 10000                 /* a key only read: kept this long */
#define CACHE_MARGIN_MS 1000                /* dropped this long before Redis expires it */
#define GUESS_BELOW 0.2                     /* see rstate.present */
#define NCLASS 32                           /* see rstate.present */
#define GC_MAX_KEYS 1000000                 /* decoded keys kept; then it starts over */
#define FZ_BITS (1u << 18)                  /* see rstate.fzbits */

/* A withdrawal request's record this batch reads (and maybe writes). */
struct rentry {
    const char *key;
    size_t keylen;
    int existed;
    unsigned char ver[8];
    const struct dg_reqrec *rec;   /* as read; NULL when absent */
    const struct dg_reqrec *write; /* the batch's last write, or NULL */
    const char *wval;              /* what commit writes (arena), for the cache */
    size_t wlen;
    int guessed;                   /* not cached, not read: taken to be absent */
};

/* One window's state inside a key's blob. */
struct section {
    const struct dg_window *w; /* NULL: a window this rule set lacks, kept as is */
    uint64_t state_hash;
    char *raw;                 /* its bytes, when w is NULL (malloc'd) */
    size_t rawlen;
    int live;                  /* st holds a state (read or created) */
    struct dg_wstate st;
};

/* A key (one value of some key fields): the windows keyed by those fields
 * share one Redis string. Decoded, it stays in the cache across batches
 * (what Redis holds, as of the last read or write here) until it expires
 * or a batch that changed it fails, which drops it. */
struct gentry {
    const char *key;           /* Redis key, allocated with the entry */
    size_t keylen;
    int existed;               /* present when read */
    unsigned char ver[8];      /* the version read */
    int64_t expires_ms;        /* wall clock: then it is read again */
    uint64_t seq;              /* the batch that last touched it */
    int known;                 /* state read, written, or taken to be absent */
    int pin;                   /* batches in flight that touched it: not swept */
    int stale;                 /* holds changes of a batch that failed: dropped
                                  when no batch in flight needs it any more */
    int doomed;                /* being dropped (see drop_touched) */
    int dirty;                 /* a section changed: write it */
    const char *wblob;         /* what commit writes (arena), for the cache */
    size_t wlen;
    int64_t wttl;
    int64_t ttl_until;         /* wall clock: Redis keeps the key at least
                                  until then, as this instance last set its
                                  TTL (0: not known); see commit_send */
    int guessed;               /* not cached, not read: taken to be absent */
    int cls;                   /* see key_class */
    uint64_t vseq;             /* the write sequence at which it was known to
                                  equal Redis (0: not known; see vfloor) */
    int ext;                   /* a section keeps its distinct values in a
                                  sorted set (read before use) */
    struct section *sec;
    size_t nsec, capsec;
};

/* The distinct values of one window key: a sorted set. */
struct zset {
    const char *key;
    size_t len;
    int dirty;                 /* values changed: write them */
    int64_t lo;                /* lowest live bucket after the batch */
    int64_t ttl;
    size_t nmembers;           /* values this batch looks up */
    struct dentry *first, *last; /* those values, in lookup order */
};

/* A distinct value of one window key. */
struct dentry {
    struct zset *z;
    char member[17];           /* 16 hex digits of the value hash */
    int64_t bucket;            /* latest bucket, INT64_MIN: never seen */
    int dirty;
    struct dentry *next;       /* in its set's list */
};

/* Growing argument vectors for hiredis. */
struct args {
    const char **v;
    size_t *l;
    size_t n, cap;
};

/* Where the parts of commit_script's arguments start (the index of each
 * part's count) and how many entries each has, as commit_send() built
 * them: send_fast() writes the same commit as plain commands from them. */
struct layout {
    size_t chk;        /* the checks' part: np, np keys, np versions, na,
                          ne, na keys taken to be absent, ne e: keys */
    size_t ek, ne;     /* the first e: key, and how many */
    size_t dec;        /* ne x ("D"+decision, ttl) (no count) */
    size_t wr, nwr;    /* (key, value, ttl) */
    size_t z, nz;      /* (key, lo, ttl, m, m x (member, bucket)) */
    size_t *zm;        /* m of each */
    size_t fz, nf;     /* (field, record) */
};

/* One batch between apply() and the outcome of its commit. */
struct rbatch {
    dg_arena arena;
    struct gentry **opg;       /* the gentry of each window op of the batch, in order */
    size_t nopg, capopg;
    struct rentry **orp;       /* the rentry of each req_id of the batch, in order */
    size_t norp, caporp;
    dg_hmap dvals;             /* zkey '\x1f' member -> struct dentry */
    dg_hmap zsets;             /* zkey -> struct zset */
    struct gentry **bl;        /* in first-touch order */
    size_t nbl, capbl;
    struct zset **zl;
    size_t nzl, capzl;
    dg_hmap recs;              /* Redis key -> struct rentry */
    struct rentry **rl;
    size_t nrl, caprl;
    struct dentry **dl;
    size_t ndl, capdl;
    /* numbers made arguments this batch (TTLs repeat): value, text */
    long long memo_v[8];
    const char *memo_s[8];
    size_t memo_l[8], nmemo;
    int batch_open;
    /* a commit sent, its reply not read yet */
    int csent;
    struct args ca;
    size_t *ceidx, cne;
    char token[40];            /* what this batch's script leaves in chain_key */
    char after[40];            /* the token its script expects there ("": any) */
    int placed;                /* it may place freezes */
    int tx;                    /* sent as check script + transaction (send_fast) */
    int w_check;               /* its checks expect the write sequence w_expect */
    uint64_t w_expect;
    size_t nqueued;            /* commands in its MULTI */
    size_t freeze_at, nfreeze; /* where its HSETNX replies are in EXEC's */
    struct gentry **wg;        /* the keys it writes, and how long they live */
    int64_t *wttl;
    size_t nwg, capwg;
    int has_result;            /* its outcome is known already (see fail_queue) */
    const struct dg_item *items; /* the batch's, to match commit_recv() */
    int result, result_err;
    char result_msg[256];
};

struct writer {
    pthread_t th;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dg_buf next;               /* handed over, not written yet */
    size_t next_off;           /* from here on (the engine wrote the start) */
    dg_buf cur;                /* being written */
    int busy;                  /* cur is being written */
    int fd, timeout_ms;
    int err;                   /* a write failed: the socket is shut down */
    char errstr[128];
};

struct rstate {
    struct dg_state base;
    char *host, *unix_path, *user, *password, *prefix;
    int port, db, timeout_ms;
    redisContext *c;
    char sha[41];
    struct rbatch slot[2];      /* a batch being applied, and one whose commit
                                   is on its way (see redis_apply) */
    struct rbatch *b;          /* the batch apply() and commit() work on */
    int q[2], nq;              /* slots with a commit sent, oldest first */
    dg_hmap gc;                /* Redis key -> struct gentry, across batches
                                  (borrowed keys) */
    const struct dg_ruleset *gc_rs; /* the rule set gc's sections point into */
    size_t gc_cursor;
    uint64_t seq;              /* batches applied */
    char chain_key[128];       /* P chain:<instance>: the last batch committed */
    char contended_key[128];   /* P contended: instances conflict (see commit_script) */
    char wseq_key[128];        /* P wseq: every transaction commit touches it */
    uint64_t vfloor;           /* keys whose vseq is at most this are version-
                                  checked at commit; the others are covered by
                                  the write sequence check (no commit but this
                                  instance's since their vseq) */
    uint64_t w_last;           /* the write sequence after this instance's last
                                  commit, when w_known (its last commit went
                                  through as a transaction, nothing failed since) */
    int w_known;
    int64_t wcheck_off_until;  /* others commit too: full checks until then */
    int tx_ok;                 /* 1: this connection may commit by transaction;
                                  0: not probed yet; -1: refused (see probe_tx) */
    int64_t calm_until;        /* no batch built on another before this (wall ms) */
    struct gentry **buried;    /* out of gc, not freed yet (see bury) */
    const struct dg_item *redo_items; /* the batch whose failure failed the ones
                                  behind it: it alone may be applied before them */
    size_t nburied, capburied;
    char instance[17];
    dg_buf kb;
    dg_buf gk;                 /* gkey(): a window key; its start, gk_pl bytes,
                                  is that of keyset gk_ks */
    size_t gk_pl;
    uint64_t gk_ks;
    dg_buf blob;               /* commit_send: the value being encoded */
    struct args chk;           /* send_fast: the check script's arguments */
    dg_buf out;                /* commands queued by append(), as RESP */
    struct writer w;           /* writes them (see writer_main) */
    int32_t *seen;             /* in-batch duplicate table */
    size_t seen_cap;
    FILE *record;              /* DG_REDIS_RECORD: every command, as RESP */
    char fver[32];             /* the freezes' version of the cached freezes */
    size_t fver_len;
    /* across batches */
    dg_hmap cache;             /* Redis key -> struct centry (borrowed keys) */
    size_t cache_bytes;
    size_t ccursor;
    dg_hmap fz;                /* the freezes hash: "scope|key" -> (void *)1 */
    uint64_t fzbits[FZ_BITS / 64]; /* a bit per hash of (scope, key) in fz: most
                                      lookups end here, without building the field */
    int fz_valid;              /* fz and fver are as Redis had them */
    dg_hmap known;             /* e:<event_id> -> malloc'd decision: events the
                                  last commit found decided already */
    int read_all;              /* after a conflict, until a commit: keys not
                                  cached are read, never taken to be absent (the
                                  retry drops what the failed attempt touched) */
    double present[NCLASS];    /* how often a key not cached turned out to exist
                                  (moving average), by class (request records;
                                  window keys by their key fields, see key_class):
                                  below GUESS_BELOW, such keys of the class are
                                  taken to be absent instead of read first */
    struct dg_redis_stats stats;
};

/* ------------------------------------------------------------------ */
/* connection                                                         */

static int fail(struct rstate *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void lose_replies(struct rstate *r);
static int append(struct rstate *r, int argc, const char **argv, const size_t *lens);
static int get_reply(struct rstate *r, redisReply **rep);
static void writer_reset(struct rstate *r);

static int fail(struct rstate *r, int err, const char *fmt, ...)
{
    va_list ap;
    char msg[200];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->base.err = err;
    if (r->unix_path)
        snprintf(r->base.errstr, sizeof r->base.errstr, "redis unix:%s: %s", r->unix_path, msg);
    else
        snprintf(r->base.errstr, sizeof r->base.errstr, "redis %s:%d: %s", r->host, r->port, msg);
    if ((err == DG_STATE_DOWN || err == DG_STATE_CORRUPT) && r->c) {
        /* replies may be pending: reconnect on the next call */
        writer_reset(r);
        redisFree(r->c);
        r->c = NULL;
        r->w_known = 0;
        lose_replies(r);
    }
    return -1;
}

/* With DG_REDIS_RECORD=FILE every command goes to FILE too, in RESP, so
 * that `redis-cli --pipe < FILE` replays the backend's exact Redis work
 * without the engine (the benchmark's ceiling). */
static void record(struct rstate *r, int argc, const char **argv, const size_t *lens)
{
    if (!r->record || (lens[0] == 4 && !memcmp(argv[0], "AUTH", 4))) /* never the password */
        return;
    fprintf(r->record, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        fprintf(r->record, "$%zu\r\n", lens[i]);
        fwrite(argv[i], 1, lens[i], r->record);
        fputs("\r\n", r->record);
    }
}

/* n in decimal at p; returns the end (most are lengths below 1000) */
static char *put_uint(char *p, unsigned long long n)
{
    if (n < 1000) {
        if (n >= 100)
            *p++ = (char)('0' + n / 100);
        if (n >= 10)
            *p++ = (char)('0' + n / 10 % 10);
        *p++ = (char)('0' + n % 10);
        return p;
    }
    char tmp[24];
    int k = 0;
    do
        tmp[k++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    while (k)
        *p++ = tmp[--k];
    return p;
}

/* Queue a command: RESP into r->out, which send_some() (directly, or by
 * the writer thread) puts on the socket (buffers kept across batches: a
 * batch's commit is large, and hiredis would build and free it twice). */
static int append(struct rstate *r, int argc, const char **argv, const size_t *lens)
{
    dg_buf *b = &r->out;
    size_t need = 24;
    record(r, argc, argv, lens);
    for (int i = 0; i < argc; i++)
        need += lens[i] + 24;
    dg_buf_reserve(b, need);
    char *p = b->data + b->len;
    *p++ = '*';
    p = put_uint(p, (unsigned long long)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        *p++ = '$';
        p = put_uint(p, lens[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    b->len = (size_t)(p - b->data);
    return REDIS_OK;
}

/* The writer thread: it writes what append() queued to the socket while
 * the engine goes on (a batch's commit is larger than the socket's buffer,
 * and Redis reads it only as fast as it parses it): so Redis takes in the
 * next batch while the engine reads the last one's reply, publishes, and
 * decodes the one after. Replies are read by the engine's thread as ever
 * (hiredis's buffer stays empty, so hiredis only reads). A write that
 * fails or times out shuts the socket down, so that the read waiting for
 * its reply fails at once, with the writer's error. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->next.len)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        dg_buf t = w->cur;
        size_t start = w->next_off;
        w->cur = w->next;
        w->next = t;
        w->next.len = w->next_off = 0;
        w->busy = 1;
        int fd = w->fd, timeout = w->timeout_ms, failed = w->err;
        pthread_mutex_unlock(&w->mu);
        char why[128] = "";
        for (size_t off = start; off < w->cur.len && !failed;) {
            ssize_t n = send(fd, w->cur.data + off, w->cur.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                struct pollfd pf = {fd, POLLOUT, 0};
                int k = poll(&pf, 1, timeout > 0 ? timeout : -1);
                if (k > 0 || (k < 0 && errno == EINTR))
                    continue;
                snprintf(why, sizeof why, "write: %s", k == 0 ? "timed out" : strerror(errno));
            } else {
                snprintf(why, sizeof why, "write: %s", n < 0 ? strerror(errno) : "closed");
            }
            failed = 1;
            shutdown(fd, SHUT_RDWR);
        }
        w->cur.len = 0;
        pthread_mutex_lock(&w->mu);
        if (failed && !w->err) {
            w->err = 1;
            snprintf(w->errstr, sizeof w->errstr, "%s", why);
        }
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Send what append() queued: what the socket takes at once is written
 * here (a small batch never wakes the writer), the rest is handed to the
 * writer thread (started on first use). */
static int send_some(struct rstate *r)
{
    struct writer *w = &r->w;
    if (!r->out.len)
        return REDIS_OK;
    int idle = 1;
    size_t off = 0;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        idle = !w->busy && !w->next.len && !w->err;
        pthread_mutex_unlock(&w->mu);
    }
    if (idle) { /* nothing of the writer's is pending: the order holds */
        while (off < r->out.len) {
            ssize_t n = send(r->c->fd, r->out.data + off, r->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            snprintf(r->c->errstr, sizeof r->c->errstr, "write: %s", n < 0 ? strerror(errno) : "closed");
            r->out.len = 0;
            return REDIS_ERR;
        }
        if (off == r->out.len) {
            r->out.len = 0;
            return REDIS_OK;
        }
    }
    if (!w->started) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->th, NULL, writer_main, w) != 0) {
            snprintf(r->c->errstr, sizeof r->c->errstr, "cannot start the writer thread");
            r->out.len = 0;
            return REDIS_ERR;
        }
        w->started = 1;
    }
    pthread_mutex_lock(&w->mu);
    int err = w->err;
    if (!err) {
        w->fd = r->c->fd;
        w->timeout_ms = r->timeout_ms;
        if (!w->next.len) { /* the buffers change hands; the writer starts at off */
            dg_buf t = w->next;
            w->next = r->out;
            w->next_off = off;
            r->out = t;
        } else { /* the writer was busy: nothing was written here (off is 0) */
            dg_buf_append(&w->next, r->out.data, r->out.len);
        }
        pthread_cond_broadcast(&w->cv);
    } else {
        snprintf(r->c->errstr, sizeof r->c->errstr, "%s", w->errstr);
    }
    pthread_mutex_unlock(&w->mu);
    r->out.len = 0;
    return err ? REDIS_ERR : REDIS_OK;
}

/* Wait until the writer has written everything (or failed; then its
 * pending bytes are dropped). Before hiredis writes by itself, and before
 * the connection goes. */
static void writer_idle(struct rstate *r)
{
    struct writer *w = &r->w;
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->busy || (w->next.len && !w->err))
        pthread_cond_wait(&w->cv, &w->mu);
    w->next.len = w->next_off = 0;
    pthread_mutex_unlock(&w->mu);
}

/* The connection goes: the writer stops writing to it. */
static void writer_reset(struct rstate *r)
{
    struct writer *w = &r->w;
    r->out.len = 0;
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    if (w->busy && r->c)
        shutdown(r->c->fd, SHUT_RDWR); /* a blocked write returns now */
    w->err = 1;                        /* nothing more to this socket */
    pthread_mutex_unlock(&w->mu);
    writer_idle(r);
    pthread_mutex_lock(&w->mu);
    w->err = 0;
    w->errstr[0] = '\0';
    pthread_mutex_unlock(&w->mu);
}

/* The next reply: what is queued goes to the writer, the reply is read
 * meanwhile (Redis answers a command once it has read it). */
static int get_reply(struct rstate *r, redisReply **rep)
{
    *rep = NULL;
    if (send_some(r) != REDIS_OK)
        return REDIS_ERR;
    int rr = redisGetReply(r->c, (void **)rep);
    if (rr != REDIS_OK && r->w.started) {
        pthread_mutex_lock(&r->w.mu);
        if (r->w.err)
            snprintf(r->c->errstr, sizeof r->c->errstr, "%s", r->w.errstr);
        pthread_mutex_unlock(&r->w.mu);
    }
    return rr;
}

static redisReply *cmd(struct rstate *r, int argc, const char **argv, const size_t *lens)
{
    writer_idle(r); /* hiredis writes this one itself: after what is queued */
    record(r, argc, argv, lens);
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep)
        fail(r, DG_STATE_DOWN, "%s", r->c->errstr[0] ? r->c->errstr : "no reply");
    return rep;
}

/* Whether this connection may commit by transaction (send_fast): WATCH,
 * EVAL, MULTI, INCR and EXEC all allowed (an ACL that lacks one would let
 * the writes run unchecked, or outside the transaction). When not, every
 * commit is the single script, and that is said once. -1 only when the
 * connection failed. Only engines ask (not `drainguard freezes`), before
 * their first commit on a connection. */
static int probe_tx(struct rstate *r)
{
    static int told;
    const char *w[2] = {"WATCH", r->wseq_key}, *e[5] = {"EVAL", "return redis.call('EXISTS', ARGV[1])", "0",
                                                         r->wseq_key},
               *m[1] = {"MULTI"}, *i[2] = {"INCR", r->wseq_key}, *x[1] = {"EXEC"};
    size_t wl[2] = {5, strlen(r->wseq_key)}, el[4] = {4, strlen(e[1]), 1, strlen(r->wseq_key)}, ml[1] = {5},
           il[2] = {4, strlen(r->wseq_key)}, xl[1] = {4};
    const char *why = NULL;
    redisReply *rep[5] = {0};

    append(r, 2, w, wl);
    append(r, 4, e, el);
    append(r, 1, m, ml);
    append(r, 2, i, il);
    append(r, 1, x, xl);
    for (int k = 0; k < 5; k++)
        if (get_reply(r, &rep[k]) != REDIS_OK) {
            for (int j = 0; j < k; j++)
                freeReplyObject(rep[j]);
            return fail(r, DG_STATE_DOWN, "%s", r->c->errstr[0] ? r->c->errstr : "connection lost");
        }
    static const char *names[5] = {"WATCH", "EVAL", "MULTI", "INCR", "EXEC"};
    for (int k = 0; k < 5 && !why; k++)
        if (rep[k]->type == REDIS_REPLY_ERROR)
            why = names[k];
    r->tx_ok = why ? -1 : 1;
    if (why && !told) {
        told = 1;
        for (int k = 0; k < 5; k++)
            if (rep[k]->type == REDIS_REPLY_ERROR) {
                dg_log(DG_LOG_WARN, "redis: %s refused (%s): every batch is committed by the single script "
                       "(slower; docs/security.md lists the commands to allow)", names[k], rep[k]->str);
                break;
            }
    }
    for (int k = 0; k < 5; k++)
        freeReplyObject(rep[k]);
    return 0;
}

static int connect_redis(struct rstate *r)
{
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    redisReply *rep;

    if (r->c)
        return 0;
    writer_reset(r); /* what was queued went with the old connection */
    r->c = r->unix_path ? redisConnectUnixWithTimeout(r->unix_path, tv)
                        : redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->c)
        return fail(r, DG_STATE_DOWN, "cannot allocate a connection");
    if (r->c->err)
        return fail(r, DG_STATE_DOWN, "%s", r->c->errstr);
    redisSetTimeout(r->c, tv);
    if (!r->unix_path && redisEnableKeepAlive(r->c) != REDIS_OK) /* TCP only */
        return fail(r, DG_STATE_DOWN, "%s", r->c->errstr);
    if (r->password) {
        const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(r->password)};
        rep = cmd(r, r->user ? 3 : 2, argv, lens);
        if (!rep)
            return -1;
        if (rep->type == REDIS_REPLY_ERROR) {
            /* never echo the password; Redis's message does not contain it */
            fail(r, DG_STATE_DOWN, "AUTH refused: %s", rep->str);
            freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        rep = cmd(r, 2, argv, lens);
        if (!rep)
            return -1;
        if (rep->type == REDIS_REPLY_ERROR) {
            fail(r, DG_STATE_DOWN, "SELECT %d refused: %s", r->db, rep->str);
            freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    {
        const char *argv[3] = {"SCRIPT", "LOAD", commit_script};
        size_t lens[3] = {6, 4, sizeof(commit_script) - 1};
        rep = cmd(r, 3, argv, lens);
        if (!rep)
            return -1;
        if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
            fail(r, DG_STATE_DOWN, "SCRIPT LOAD failed: %s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            freeReplyObject(rep);
            return -1;
        }
        memcpy(r->sha, rep->str, 40);
        r->sha[40] = '\0';
        freeReplyObject(rep);
    }
    r->tx_ok = 0; /* probed before the first commit (see redis_commit_send) */
    return 0;
}

static int redis_ping(struct dg_state *st)
{
    struct rstate *r = (struct rstate *)st;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    if (connect_redis(r))
        return -1;
    redisReply *rep = cmd(r, 1, argv, lens);
    if (!rep)
        return -1;
    int ok = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return ok ? 0 : -1;
}


/* ------------------------------------------------------------------ */
/* the write-through cache                                            */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t centry_size(const struct centry *e)
{
    return sizeof(*e) + e->len + e->keylen;
}

static void cache_forget(struct rstate *r, const char *key, size_t len)
{
    struct centry *e = dg_hmap_del(&r->cache, key, len);
    if (e) {
        r->cache_bytes -= centry_size(e);
        free(e);
    }
}

static void cache_clear(struct rstate *r)
{
    for (size_t i = 0; i < r->cache.cap; i++)
        if (r->cache.slots[i].hash)
            free(r->cache.slots[i].val);
    dg_hmap_free(&r->cache);
    dg_hmap_init_borrowed(&r->cache);
    r->cache_bytes = 0;
    r->ccursor = 0;
}

/* Remember what key holds in Redis now (existed 0: nothing). */
static void cache_put(struct rstate *r, const char *key, size_t keylen, const char *val, size_t len,
                      int existed, int64_t expires_ms)
{
    if (r->cache_bytes > CACHE_MAX_BYTES)
        cache_clear(r); /* bounded memory; it fills again from Redis */
    struct centry *e = dg_xmalloc(sizeof(*e) + len + keylen);
    e->expires_ms = expires_ms;
    e->len = len;
    e->existed = existed;
    e->key = e->data + len;
    e->keylen = keylen;
    if (len)
        memcpy(e->data, val, len);
    memcpy(e->key, key, keylen);
    struct centry *old = dg_hmap_put(&r->cache, e->key, keylen, e);
    if (old && old != e) {
        r->cache_bytes -= centry_size(old);
        free(old);
    }
    r->cache_bytes += centry_size(e);
}

static const struct centry *cache_get(struct rstate *r, const char *key, size_t len, int64_t now)
{
    struct centry *e = dg_hmap_get(&r->cache, key, len);
    if (e && e->expires_ms <= now) {
        cache_forget(r, key, len);
        return NULL;
    }
    return e;
}

/* A few slots per batch: entries past their time go. */
static void cache_sweep(struct rstate *r, int64_t now, size_t slots)
{
    for (size_t i = 0; i < slots && r->cache.n; i++) {
        struct dg_hslot *sl = dg_hmap_slot(&r->cache, &r->ccursor);
        if (!sl)
            continue;
        struct centry *e = sl->val;
        if (e->expires_ms <= now) {
            dg_hmap_del_slot(&r->cache, sl);
            r->cache_bytes -= centry_size(e);
            free(e);
        }
    }
}

/* Of n keys not cached, k existed: the moving average follows. */
static void note_present(struct rstate *r, int cls, size_t k, size_t n)
{
    if (n)
        r->present[cls] = 0.8 * r->present[cls] + 0.2 * ((double)k / (double)n);
}

/* The class of a key for rstate.present: 0 for request records, else by
 * the key fields (the digest in a g: key), so that keys of one kind that
 * mostly exist (an account's) are read while those mostly new (a pair of
 * account and destination) are not. */
static int keyset_class(uint64_t keyset_hash)
{
    return 1 + (int)(keyset_hash % (NCLASS - 1));
}

/* Keys of class cls not cached are taken to be absent, not read. */
static int guessing(const struct rstate *r, int cls)
{
    return r->present[cls] < GUESS_BELOW && !r->read_all;
}

/* How many keys of each class batch b took to be absent. */
static void count_guessed(const struct rbatch *b, size_t out[NCLASS])
{
    memset(out, 0, NCLASS * sizeof(*out));
    for (size_t i = 0; i < b->nbl; i++)
        out[b->bl[i]->cls] += b->bl[i]->guessed;
    for (size_t i = 0; i < b->nrl; i++)
        out[0] += b->rl[i]->guessed;
}

/* The class of a Redis key named in a reply: that of the keyset whose
 * digest a g: key carries, 0 for any other key. */
static int key_class(const struct rstate *r, const char *key, size_t len)
{
    size_t pl = strlen(r->prefix);
    uint64_t h = 0;
    if (len < pl + 2 + 16 || memcmp(key + pl, "g:", 2))
        return 0;
    for (size_t i = pl + 2; i < pl + 18; i++) {
        char c = key[i];
        h = h << 4 | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
    }
    return keyset_class(h);
}

static void known_clear(struct rstate *r)
{
    for (size_t i = 0; i < r->known.cap; i++)
        if (r->known.slots[i].hash)
            free(r->known.slots[i].val);
    dg_hmap_free(&r->known);
    dg_hmap_init(&r->known);
}

void dg_state_redis_stats(struct dg_state *st, struct dg_redis_stats *out)
{
    struct rstate *r = (struct rstate *)st;
    *out = r->stats;
    out->cache_keys = r->cache.n + r->gc.n;
    out->cache_bytes = r->cache_bytes;
}

/* ------------------------------------------------------------------ */
/* the batch                                                          */

static void gentry_free(struct gentry *g)
{
    for (size_t k = 0; k < g->nsec; k++) {
        dg_wstate_release(&g->sec[k].st);
        free(g->sec[k].raw);
    }
    free(g->sec);
    free(g);
}

/* Out of the cache. Freed later (free_buried), when no batch's list can
 * point at it any more: batches in flight and the one being applied may
 * share keys, and any of them may fail first. */
static void bury(struct rstate *r, struct gentry *g)
{
    if (g->doomed)
        return;
    g->doomed = 1;
    if (dg_hmap_get(&r->gc, g->key, g->keylen) == g)
        dg_hmap_del(&r->gc, g->key, g->keylen);
    if (r->nburied == r->capburied) {
        r->capburied = r->capburied ? 2 * r->capburied : 256;
        r->buried = dg_xrealloc(r->buried, r->capburied * sizeof(*r->buried));
    }
    r->buried[r->nburied++] = g;
}

static void free_buried(struct rstate *r)
{
    for (size_t i = 0; i < r->nburied; i++)
        gentry_free(r->buried[i]);
    r->nburied = 0;
}

/* Only with no batch in flight or open. */
static void gc_clear(struct rstate *r)
{
    for (size_t i = 0; i < r->gc.cap; i++)
        if (r->gc.slots[i].hash)
            gentry_free(r->gc.slots[i].val);
    dg_hmap_free(&r->gc);
    dg_hmap_init_borrowed(&r->gc);
    r->gc_cursor = 0;
    free_buried(r);
}

/* The end of a batch (committed, or not: see batch_abort). */
static void batch_reset(struct rstate *r)
{
    r->b->nbl = r->b->ndl = r->b->nzl = r->b->nrl = r->b->nopg = r->b->norp = 0;
    dg_hmap_clear(&r->b->recs); /* their keys are in the arena */
    dg_hmap_clear(&r->b->dvals);
    dg_hmap_clear(&r->b->zsets);
    dg_arena_reset(&r->b->arena);
    r->b->nmemo = 0;
    r->b->batch_open = 0;
}

/* Drop from the cache every key batch b touched (one a batch in flight
 * still builds on goes when that one is done: see unpin). */
static void drop_touched(struct rstate *r, struct rbatch *b)
{
    for (size_t i = 0; i < b->nbl; i++) {
        struct gentry *g = b->bl[i];
        if (g->pin) /* a batch in flight still builds on it */
            g->stale = 1;
        else
            bury(r, g);
    }
    b->nbl = 0;
}

/* The batch's outcome is known: its keys may be swept again; a key a
 * failed batch left stale goes now. */
static void unpin(struct rstate *r, struct rbatch *b)
{
    for (size_t i = 0; i < b->nbl; i++) {
        struct gentry *g = b->bl[i];
        if (g->pin > 0)
            g->pin--;
        if (!g->pin && g->stale)
            bury(r, g);
    }
}

/* The request records a batch wrote went into the cache when it was sent:
 * out again. */
static void forget_writes(struct rstate *r, struct rbatch *b)
{
    for (size_t i = 0; i < b->nrl; i++)
        if (b->rl[i]->write)
            cache_forget(r, b->rl[i]->key, b->rl[i]->keylen);
}

/* A batch that will not be committed as applied: the keys it touched may
 * hold its changes (or guesses), so they leave the cache. */
static void batch_abort(struct rstate *r)
{
    drop_touched(r, r->b);
    batch_reset(r);
}

static const char *pkey(struct rstate *r, const char *kind, const char *a, size_t al,
                        const char *b, size_t bl, size_t *len)
{
    size_t pl = strlen(r->prefix), kl = strlen(kind);
    char *k = dg_arena_alloc(&r->b->arena, pl + kl + al + 1 + bl + 1), *p = k;
    memcpy(p, r->prefix, pl);
    p += pl;
    memcpy(p, kind, kl);
    p += kl;
    memcpy(p, a, al);
    p += al;
    if (b) {
        *p++ = ':';
        memcpy(p, b, bl);
        p += bl;
    }
    *p = '\0';
    *len = (size_t)(p - k);
    return k;
}

static struct rentry *rentry_for(struct rstate *r, const char *id)
{
    size_t len;
    const char *k = pkey(r, "r:", id, strlen(id), NULL, 0, &len);
    struct rentry *e = dg_hmap_get(&r->b->recs, k, len);
    if (e)
        return e;
    e = dg_arena_alloc(&r->b->arena, sizeof(*e));
    memset(e, 0, sizeof(*e));
    e->key = k;
    e->keylen = len;
    dg_hmap_put(&r->b->recs, k, len, e);
    if (r->b->nrl == r->b->caprl) {
        r->b->caprl = r->b->caprl ? r->b->caprl * 2 : 64;
        r->b->rl = dg_xrealloc(r->b->rl, r->b->caprl * sizeof(*r->b->rl));
    }
    r->b->rl[r->b->nrl++] = e;
    return e;
}

/* The entry of the request record wr writes, among those of it->req_ids
 * (ent, as apply() found them); looked up when it is not one of them. */
static struct rentry *req_entry(struct rstate *r, const struct dg_item *it, struct rentry *const *ent,
                                const struct dg_reqrec *wr)
{
    for (size_t k = 0; k < it->nreq_ids; k++)
        if (strlen(it->req_ids[k]) == wr->idlen && !memcmp(it->req_ids[k], wr->id, wr->idlen))
            return ent[k];
    return rentry_for(r, dg_arena_strndup(&r->b->arena, wr->id, wr->idlen));
}

/* The Redis key of window w's key op->key, in r->gk. Its start, "P g:<keyset
 * in hex>:", stays there from one call to the next: only rewritten when the
 * keyset changes. */
static void gkey(struct rstate *r, const struct dg_window *w, const struct dg_winop *op)
{
    static const char hex[] = "0123456789abcdef";
    if (!r->gk_pl || r->gk_ks != w->keyset_hash) {
        size_t pl = strlen(r->prefix);
        uint64_t v = w->keyset_hash;
        dg_buf_reserve(&r->gk, pl + 2 + 16 + 1);
        char *p = r->gk.data;
        memcpy(p, r->prefix, pl);
        p += pl;
        *p++ = 'g';
        *p++ = ':';
        for (int i = 15; i >= 0; i--, v >>= 4)
            p[i] = hex[v & 15];
        p += 16;
        *p++ = ':';
        r->gk_pl = (size_t)(p - r->gk.data);
        r->gk_ks = w->keyset_hash;
    }
    r->gk.len = r->gk_pl;
    dg_buf_append(&r->gk, op->key, op->keylen);
}

/* The entry of key op->key of window w, from the cache or new (state not
 * known yet); joins the batch's list on its first touch. */
static struct gentry *gentry_for(struct rstate *r, const struct dg_window *w,
                                 const struct dg_winop *op, int64_t now)
{
    gkey(r, w, op);
    struct gentry *g = dg_hmap_get(&r->gc, r->gk.data, r->gk.len);
    if (g && g->seq != r->seq && g->expires_ms <= now && !g->pin) {
        bury(r, g);
        g = NULL;
    }
    if (!g) {
        g = dg_xcalloc(1, sizeof(*g) + r->gk.len + 1);
        char *k = (char *)(g + 1);
        memcpy(k, r->gk.data, r->gk.len + 1);
        g->key = k;
        g->keylen = r->gk.len;
        g->cls = keyset_class(w->keyset_hash);
        dg_hmap_put(&r->gc, k, g->keylen, g);
    }
    if (g->seq == r->seq)
        return g;
    g->seq = r->seq;
    g->dirty = 0;
    g->guessed = 0;
    g->wblob = NULL;
    if (r->b->nbl == r->b->capbl) {
        r->b->capbl = r->b->capbl ? r->b->capbl * 2 : 64;
        r->b->bl = dg_xrealloc(r->b->bl, r->b->capbl * sizeof(*r->b->bl));
    }
    r->b->bl[r->b->nbl++] = g;
    return g;
}

/* Room for n sections in g (a section is about 180 bytes, and a key has
 * one to three: no room to spare for a million cached keys). */
static void section_reserve(struct gentry *g, size_t n)
{
    if (n > g->capsec) {
        g->capsec = n;
        g->sec = dg_xrealloc(g->sec, g->capsec * sizeof(*g->sec));
    }
}

static struct section *section_add(struct gentry *g, uint64_t state_hash)
{
    if (g->nsec == g->capsec)
        section_reserve(g, g->capsec ? g->capsec * 2 : 2);
    struct section *s = &g->sec[g->nsec++];
    memset(s, 0, sizeof(*s));
    s->state_hash = state_hash;
    dg_wstate_init(&s->st);
    return s;
}

/* The section of window w in g (created empty when missing). */
static struct section *section_for(struct gentry *g, const struct dg_window *w)
{
    for (size_t i = 0; i < g->nsec; i++)
        if (g->sec[i].state_hash == w->state_hash)
            return &g->sec[i];
    struct section *s = section_add(g, w->state_hash);
    s->w = w;
    return s;
}

static struct zset *zset_for(struct rstate *r, const struct dg_window *w, const struct dg_winop *op)
{
    size_t len;
    const char *k = pkey(r, "d:", w->state_id, strlen(w->state_id), op->key, op->keylen, &len);
    struct zset *z = dg_hmap_get(&r->b->zsets, k, len);
    if (z)
        return z;
    z = dg_arena_alloc(&r->b->arena, sizeof(*z));
    memset(z, 0, sizeof(*z));
    z->key = k;
    z->len = len;
    z->ttl = w->over_ms + w->step_ms + r->base.lateness_ms;
    dg_hmap_put(&r->b->zsets, k, len, z);
    if (r->b->nzl == r->b->capzl) {
        r->b->capzl = r->b->capzl ? r->b->capzl * 2 : 64;
        r->b->zl = dg_xrealloc(r->b->zl, r->b->capzl * sizeof(*r->b->zl));
    }
    r->b->zl[r->b->nzl++] = z;
    return z;
}

/* Blob: version (8) | count (4) | count x [state hash (8) | length (4) | state] */
static int decode_blob(struct rstate *r, const struct dg_ruleset *rs, struct gentry *g,
                       const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    uint32_t n;

    if (len < 12)
        return -1;
    memcpy(g->ver, p, 8);
    p += 8;
    n = dg_get_le32(p);
    p += 4;
    if ((size_t)(end - p) / 12 < n) /* each takes 12 bytes or more */
        return -1;
    section_reserve(g, g->nsec + n);
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 12)
            return -1;
        uint64_t h = dg_get_le64(p);
        uint32_t l = dg_get_le32(p + 8);
        p += 12;
        if ((size_t)(end - p) < l)
            return -1;
        const struct dg_window *w = NULL;
        for (size_t k = 0; k < rs->nwindows && !w; k++)
            if (rs->windows[k].state_hash == h)
                w = &rs->windows[k];
        struct section *s = section_add(g, h);
        if (w) {
            s->w = w;
            if (dg_wstate_decode(&s->st, (const char *)p, l) != 0)
                return -1;
            s->live = 1;
            g->ext |= s->st.ext;
        } else {
            s->raw = dg_xstrndup((const char *)p, l);
            s->rawlen = l;
        }
        p += l;
    }
    return p == end ? 0 : -1;
}

static void encode_blob(const struct gentry *g, uint64_t version, dg_buf *out)
{
    uint32_t n = 0;
    for (size_t i = 0; i < g->nsec; i++)
        n += g->sec[i].w ? g->sec[i].live : 1;
    dg_buf_reserve(out, 12);
    dg_put_le64(out->data + out->len, version);
    dg_put_le32(out->data + out->len + 8, n);
    out->len += 12;
    for (size_t i = 0; i < g->nsec; i++) {
        const struct section *s = &g->sec[i];
        if (s->w && !s->live)
            continue;
        dg_buf_reserve(out, 12);
        dg_put_le64(out->data + out->len, s->state_hash);
        out->len += 12;
        size_t at = out->len;
        if (s->w)
            dg_wstate_encode(&s->st, out);
        else
            dg_buf_append(out, s->raw, s->rawlen);
        dg_put_le32(out->data + at - 4, (uint32_t)(out->len - at));
    }
}

/* How long a key lives idle: the longest of its windows. */
static int64_t gentry_ttl(const struct rstate *r, const struct gentry *g)
{
    int64_t ttl = 0;
    for (size_t i = 0; i < g->nsec; i++)
        if (g->sec[i].w && g->sec[i].w->over_ms + g->sec[i].w->step_ms > ttl)
            ttl = g->sec[i].w->over_ms + g->sec[i].w->step_ms;
    return ttl + r->base.lateness_ms;
}

static struct dentry *dentry_for(struct rstate *r, struct zset *z, uint64_t h, int create)
{
    static const char hex[] = "0123456789abcdef";
    char member[17];
    uint64_t v = h | 1;
    for (int i = 15; i >= 0; i--, v >>= 4)
        member[i] = hex[v & 15];
    member[16] = '\0';
    r->kb.len = 0;
    dg_buf_append(&r->kb, z->key, z->len);
    dg_buf_putc(&r->kb, '\x1f');
    dg_buf_append(&r->kb, member, 16);
    struct dentry *d = dg_hmap_get(&r->b->dvals, r->kb.data, r->kb.len);
    if (d || !create)
        return d;
    d = dg_arena_alloc(&r->b->arena, sizeof(*d));
    memset(d, 0, sizeof(*d));
    d->z = z;
    memcpy(d->member, member, 17);
    d->bucket = INT64_MIN;
    dg_hmap_put(&r->b->dvals, r->kb.data, r->kb.len, d);
    if (r->b->ndl == r->b->capdl) {
        r->b->capdl = r->b->capdl ? r->b->capdl * 2 : 64;
        r->b->dl = dg_xrealloc(r->b->dl, r->b->capdl * sizeof(*r->b->dl));
    }
    r->b->dl[r->b->ndl++] = d;
    z->nmembers++;
    if (z->last)
        z->last->next = d;
    else
        z->first = d;
    z->last = d;
    return d;
}

struct dstore_ctx {
    struct rstate *r;
    struct zset *z;
};

static int64_t dstore_get(void *ud, uint64_t h)
{
    struct dstore_ctx *c = ud;
    struct dentry *d = dentry_for(c->r, c->z, h, 0);
    return d ? d->bucket : INT64_MIN;
}

static void dstore_set(void *ud, uint64_t h, int64_t bucket)
{
    struct dstore_ctx *c = ud;
    struct dentry *d = dentry_for(c->r, c->z, h, 1);
    d->bucket = bucket;
    d->dirty = 1;
    c->z->dirty = 1;
}


static void arg(struct args *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->v = dg_xrealloc(a->v, a->cap * sizeof(*a->v));
        a->l = dg_xrealloc(a->l, a->cap * sizeof(*a->l));
    }
    a->v[a->n] = s;
    a->l[a->n++] = len;
}

static void arg_str(struct args *a, const char *s)
{
    arg(a, s, strlen(s));
}

static void arg_int(struct rstate *r, struct args *a, long long v)
{
    struct rbatch *b = r->b;
    for (size_t i = 0; i < b->nmemo; i++)
        if (b->memo_v[i] == v) {
            arg(a, b->memo_s[i], b->memo_l[i]);
            return;
        }
    char *s = dg_arena_alloc(&b->arena, 24), *p = s;
    if (v < 0)
        *p++ = '-';
    p = put_uint(p, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    size_t len = (size_t)(p - s);
    size_t slot = b->nmemo < 8 ? b->nmemo++ : (size_t)v % 8;
    b->memo_v[slot] = v;
    b->memo_s[slot] = s;
    b->memo_l[slot] = len;
    arg(a, s, len);
}

static void args_free(struct args *a)
{
    free(a->v);
    free(a->l);
    memset(a, 0, sizeof(*a));
}

static int seen_before(struct rstate *r, const struct dg_item *items, size_t i)
{
    const struct dg_item *it = &items[i];
    size_t mask = r->seen_cap - 1;
    for (size_t j = dg_hash64(it->event_id, it->event_id_len, 7) & mask;; j = (j + 1) & mask) {
        int32_t k = r->seen[j];
        if (k < 0) {
            r->seen[j] = (int32_t)i;
            return 0;
        }
        if (items[k].event_id_len == it->event_id_len &&
            !memcmp(items[k].event_id, it->event_id, it->event_id_len))
            return 1;
    }
}

/* The freezes hash's field of a scope's key, "scope|key" (as the memory
 * backend keys it), into out (emptied first). */
static void freeze_field(dg_buf *out, int scope, const char *key, size_t keylen)
{
    out->len = 0;
    dg_buf_puts(out, dg_scope_name(scope));
    dg_buf_putc(out, '|');
    dg_buf_append(out, key, keylen);
}

/* The bit of (scope, key) in rstate.fzbits. */
static uint64_t fz_hash(int scope, const char *key, size_t keylen)
{
    return dg_hash64(key, keylen, 0x667a + (uint64_t)scope) & (FZ_BITS - 1);
}

/* The freezes as read (HGETALL: field, value, ...) into r->fz and its bits. */
static void fz_load(struct rstate *r, const redisReply *rep)
{
    dg_hmap_clear(&r->fz);
    memset(r->fzbits, 0, sizeof r->fzbits);
    for (size_t k = 0; k + 1 < rep->elements; k += 2) {
        const redisReply *f = rep->element[k];
        if (f->type != REDIS_REPLY_STRING)
            continue;
        dg_hmap_put(&r->fz, f->str, f->len, (void *)1);
        const char *bar = memchr(f->str, '|', f->len);
        for (int sc = 0; bar && sc < DG_NSCOPES; sc++) {
            const char *name = dg_scope_name(sc);
            if (strlen(name) == (size_t)(bar - f->str) && !memcmp(name, f->str, (size_t)(bar - f->str))) {
                uint64_t h = fz_hash(sc, bar + 1, f->len - (size_t)(bar + 1 - f->str));
                r->fzbits[h / 64] |= 1ULL << (h % 64);
            }
        }
    }
}

/* Whether the freezes as cached hold scope sc of it (r->kb: scratch). */
static int frozen_in_cache(struct rstate *r, const struct dg_item *it, int sc)
{
    uint64_t h = fz_hash(sc, it->scope_key[sc], it->scope_len[sc]);
    if (!(r->fzbits[h / 64] & (1ULL << (h % 64))))
        return 0;
    freeze_field(&r->kb, sc, it->scope_key[sc], it->scope_len[sc]);
    return dg_hmap_get(&r->fz, r->kb.data, r->kb.len) != NULL;
}

/* apply() cannot build on the batch ahead: nothing done, try after it. */
static int busy(struct rstate *r, const char *why)
{
    r->stats.busy++;
    return fail(r, DG_STATE_BUSY, "%s", why);
}

/* A request record's value (version + record) into re. */
static int take_record(struct rstate *r, struct rentry *re, const char *v, size_t len,
                       dg_arena *arena)
{
    struct dg_reqrec *rec = dg_arena_alloc(arena, sizeof(*rec));
    if (len < 9 || dg_reqrec_decode(rec, v + 8, len - 8, arena) != 0)
        return fail(r, DG_STATE_CORRUPT, "key '%.*s' does not hold a request record", (int)re->keylen,
                    re->key);
    memcpy(re->ver, v, 8);
    re->existed = 1;
    re->rec = rec;
    return 0;
}

static int redis_apply(struct dg_state *st, const struct dg_ruleset *rs, struct dg_item *items,
                       size_t n, dg_arena *arena)
{
    struct rstate *r = (struct rstate *)st;
    struct args mget = {0};
    size_t *miss_g = NULL, *miss_r = NULL, nmg = 0, nmr = 0;
    redisReply *rep = NULL;
    int rc = -1;
    int64_t now = wall_ms();

    /* a slot: with a commit on its way, the other one (this batch then
     * builds on that one's changes, and its script runs only if that one's
     * did: see the chain in commit_script) */
    struct rbatch *ahead = NULL;
    int used[2] = {0, 0};
    for (int k = 0; k < r->nq; k++) {
        used[r->q[k]] = 1;
        if (!r->slot[r->q[k]].has_result)
            ahead = &r->slot[r->q[k]];
        else if (items != r->redo_items) /* it comes after a batch that failed */
            return busy(r, "a batch ahead is to be decided again first");
    }
    if (used[0] && used[1])
        return busy(r, "two batches are on their way");
    r->b = &r->slot[used[0] ? 1 : used[1] ? 0 : (int)(r->b - r->slot)];
    if (r->b->batch_open)
        batch_abort(r); /* applied, never committed */
    else
        batch_reset(r);
    if (!r->slot[0].nbl && !r->slot[1].nbl)
        free_buried(r); /* no batch points at a key now */
    r->b->items = items;
    if (ahead && (ahead->placed || !r->fz_valid || rs != r->gc_rs || r->gc.n > GC_MAX_KEYS))
        return busy(r, "the batch ahead may change the freezes");
    if (ahead && wall_ms() < r->calm_until)
        return busy(r, "another instance writes the same keys: one batch at a time");
    if (connect_redis(r))
        return -1;
    r->seq++;
    snprintf(r->b->token, sizeof r->b->token, "%s:%llu", r->instance, (unsigned long long)r->seq);
    r->stats.built_ahead += ahead != NULL;
    snprintf(r->b->after, sizeof r->b->after, "%s", ahead ? ahead->token : "");
    cache_sweep(r, now, 64);
    if (rs != r->gc_rs || r->gc.n > GC_MAX_KEYS) {
        gc_clear(r); /* sections point into the rule set; bounded memory */
        r->gc_rs = rs;
    }
    for (size_t i = 0; i < 64 && r->gc.n; i++) {
        struct dg_hslot *sl = dg_hmap_slot(&r->gc, &r->gc_cursor);
        if (sl && ((struct gentry *)sl->val)->expires_ms <= now && !((struct gentry *)sl->val)->pin) {
            struct gentry *g = sl->val;
            dg_hmap_del_slot(&r->gc, sl);
            gentry_free(g);
        }
    }

    /* the keys the batch needs */
    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        size_t og = r->b->nopg; /* this item's first */
        for (size_t o = 0; o < it->nops; o++) {
            /* windows keyed by the same fields share a key: found once */
            const struct dg_window *w = &rs->windows[it->ops[o].win];
            struct gentry *g = NULL;
            for (size_t p = 0; p < o && !g; p++)
                if (rs->windows[it->ops[p].win].keyset_hash == w->keyset_hash &&
                    it->ops[p].keylen == it->ops[o].keylen &&
                    !memcmp(it->ops[p].key, it->ops[o].key, it->ops[o].keylen))
                    g = r->b->opg[og + p];
            if (!g)
                g = gentry_for(r, w, &it->ops[o], now);
            if (r->b->nopg == r->b->capopg) {
                r->b->capopg = r->b->capopg ? 2 * r->b->capopg : 1024;
                r->b->opg = dg_xrealloc(r->b->opg, r->b->capopg * sizeof(*r->b->opg));
            }
            r->b->opg[r->b->nopg++] = g;
        }
        for (size_t k = 0; k < it->nreq_ids; k++) {
            if (r->b->norp == r->b->caporp) {
                r->b->caporp = r->b->caporp ? 2 * r->b->caporp : 1024;
                r->b->orp = dg_xrealloc(r->b->orp, r->b->caporp * sizeof(*r->b->orp));
            }
            r->b->orp[r->b->norp++] = rentry_for(r, it->req_ids[k]);
        }
    }

    if (ahead) /* distinct sets kept in Redis are read: after the other batch */
        for (size_t i = 0; i < r->b->nbl; i++)
            if (r->b->bl[i]->ext) {
                batch_reset(r);
                return busy(r, "the batch needs a read");
            }

    /* from the cache, or to be read - or, when keys not cached have
     * mostly been new lately, taken to be absent: the commit script checks
     * that, and sends what they hold when it is wrong */
    if (ahead) {
        /* keys this batch would read: their reply comes after the other
         * batch's outcome */
        int need = 0;
        for (size_t i = 0; i < r->b->nbl && !need; i++)
            need = !r->b->bl[i]->known && !guessing(r, r->b->bl[i]->cls);
        for (size_t i = 0; i < r->b->nrl && !need && !guessing(r, 0); i++)
            need = !cache_get(r, r->b->rl[i]->key, r->b->rl[i]->keylen, now);
        if (need) {
            batch_reset(r);
            return busy(r, "the batch needs a read");
        }
    }
    miss_g = dg_xcalloc(r->b->nbl + 1, sizeof(*miss_g));
    miss_r = dg_xcalloc(r->b->nrl + 1, sizeof(*miss_r));
    arg_str(&mget, "MGET");
    for (size_t i = 0; i < r->b->nbl; i++) {
        struct gentry *g = r->b->bl[i];
        if (g->known) {
            r->stats.keys_cached++;
            continue;
        }
        if (guessing(r, g->cls)) {
            g->guessed = g->known = 1;
            g->existed = 0;
            g->expires_ms = now + CACHE_READ_MS;
            r->stats.keys_guessed++;
            continue;
        }
        miss_g[nmg++] = i;
        arg(&mget, g->key, g->keylen);
    }
    for (size_t i = 0; i < r->b->nrl; i++) {
        struct rentry *re = r->b->rl[i];
        const struct centry *ce = cache_get(r, re->key, re->keylen, now);
        if (!ce && guessing(r, 0)) {
            re->guessed = 1;
            r->stats.keys_guessed++;
            continue;
        }
        if (!ce) {
            miss_r[nmr++] = i;
            arg(&mget, re->key, re->keylen);
            continue;
        }
        r->stats.keys_cached++;
        if (ce->existed && take_record(r, re, ce->data, ce->len, arena) != 0)
            goto out;
    }

    /* one round trip for what is missing: keys, and the freezes when they
     * changed (their version first: a change between the two replies then
     * shows at commit, never hides) */
    if (nmg + nmr || !r->fz_valid) {
        size_t fl, fvl;
        const char *fk = pkey(r, "freezes", "", 0, NULL, 0, &fl);
        const char *fv = pkey(r, "freezes:v", "", 0, NULL, 0, &fvl);
        const char *gv[2] = {"GET", fv}, *hv[2] = {"HGETALL", fk};
        size_t gl[2] = {3, fvl}, hl[2] = {7, fl};
        r->stats.reads++;
        r->stats.keys_read += nmg + nmr;
        if (nmg + nmr && append(r, (int)mget.n, mget.v, mget.l) != REDIS_OK)
            goto out_down;
        if (!r->fz_valid &&
            (append(r, 2, gv, gl) != REDIS_OK || append(r, 2, hv, hl) != REDIS_OK))
            goto out_down;
        if (nmg + nmr) {
            if (get_reply(r, &rep) != REDIS_OK)
                goto out_down;
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements != nmg + nmr) {
                fail(r, DG_STATE_DOWN, "MGET: unexpected reply%s%s", rep->type == REDIS_REPLY_ERROR ? ": " : "",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "");
                goto out;
            }
            int64_t until = now + CACHE_READ_MS;
            size_t there_n[NCLASS] = {0}, read_n[NCLASS] = {0};
            for (size_t k = 0; k < nmg + nmr; k++) {
                int c = k < nmg ? r->b->bl[miss_g[k]]->cls : 0;
                read_n[c]++;
                there_n[c] += rep->element[k]->type == REDIS_REPLY_STRING;
            }
            for (int c = 0; c < NCLASS; c++)
                note_present(r, c, there_n[c], read_n[c]);
            for (size_t k = 0; k < nmg; k++) {
                struct gentry *g = r->b->bl[miss_g[k]];
                redisReply *e = rep->element[k];
                int there = e->type == REDIS_REPLY_STRING;
                if (there && decode_blob(r, rs, g, e->str, e->len) != 0) {
                    fail(r, DG_STATE_CORRUPT, "key '%.*s' does not hold window state", (int)g->keylen, g->key);
                    goto out;
                }
                g->existed = there;
                g->known = 1;
                g->expires_ms = until;
            }
            for (size_t k = 0; k < nmr; k++) {
                struct rentry *re = r->b->rl[miss_r[k]];
                redisReply *e = rep->element[nmg + k];
                int there = e->type == REDIS_REPLY_STRING;
                if (there && take_record(r, re, e->str, e->len, arena) != 0)
                    goto out;
                cache_put(r, re->key, re->keylen, there ? e->str : NULL, there ? e->len : 0, there, until);
            }
            freeReplyObject(rep);
            rep = NULL;
        }
        if (!r->fz_valid) {
            if (get_reply(r, &rep) != REDIS_OK)
                goto out_down;
            r->fver_len = rep->type == REDIS_REPLY_STRING && rep->len < sizeof r->fver ? rep->len : 0;
            memcpy(r->fver, rep->type == REDIS_REPLY_STRING ? rep->str : "", r->fver_len);
            freeReplyObject(rep);
            rep = NULL;
            if (get_reply(r, &rep) != REDIS_OK)
                goto out_down;
            if (rep->type != REDIS_REPLY_ARRAY) {
                fail(r, DG_STATE_DOWN, "HGETALL: unexpected reply%s%s",
                     rep->type == REDIS_REPLY_ERROR ? ": " : "", rep->type == REDIS_REPLY_ERROR ? rep->str : "");
                goto out;
            }
            fz_load(r, rep);
            freeReplyObject(rep);
            rep = NULL;
            r->fz_valid = 1;
        }
    }

    /* events the last commit found decided already: their stored decision */
    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        it->dup = 0;
        it->stored = NULL;
        it->stored_len = 0;
        if (!r->known.n)
            continue;
        size_t kl;
        const char *k = pkey(r, "e:", it->event_id, it->event_id_len, NULL, 0, &kl);
        const char *d = dg_hmap_get(&r->known, k, kl);
        if (d) {
            it->dup = 1;
            it->stored = dg_arena_strndup(arena, d, strlen(d));
            it->stored_len = strlen(d);
        }
    }

    /* a second round trip only for keys whose distinct values outgrew the
     * blob: where each value the batch adds was last seen */
    for (size_t i = 0, og = 0; i < n; og += items[i].nops, i++)
        for (size_t o = 0; o < items[i].nops && !items[i].dup; o++) {
            struct dg_winop *op = &items[i].ops[o];
            const struct dg_window *w = &rs->windows[op->win];
            if (!op->add || !(w->agg->need & DG_NEED_DISTINCT) || !r->b->opg[og + o]->ext)
                continue;
            struct section *sec = section_for(r->b->opg[og + o], w);
            if (sec->st.ext)
                dentry_for(r, zset_for(r, w, op), op->vhash, 1);
        }
    for (size_t zi = 0; zi < r->b->nzl; zi++) {
        struct zset *z = r->b->zl[zi];
        struct args za = {0};
        arg_str(&za, "ZMSCORE");
        arg(&za, z->key, z->len);
        for (struct dentry *d = z->first; d; d = d->next)
            arg(&za, d->member, 16);
        int ok = append(r, (int)za.n, za.v, za.l) == REDIS_OK;
        args_free(&za);
        if (!ok)
            goto out_down;
    }
    for (size_t zi = 0; zi < r->b->nzl; zi++) {
        struct zset *z = r->b->zl[zi];
        if (get_reply(r, &rep) != REDIS_OK)
            goto out_down;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != z->nmembers) {
            fail(r, DG_STATE_DOWN, "ZMSCORE: unexpected reply%s%s",
                 rep->type == REDIS_REPLY_ERROR ? ": " : "", rep->type == REDIS_REPLY_ERROR ? rep->str : "");
            goto out;
        }
        size_t k = 0;
        for (struct dentry *d = z->first; d; d = d->next) {
            redisReply *e = rep->element[k++];
            if (e->type == REDIS_REPLY_STRING)
                d->bucket = strtoll(e->str, NULL, 10);
        }
        freeReplyObject(rep);
        rep = NULL;
    }

    /* the events, in order, through the shared window code */
    if (r->seen_cap < 2 * n) {
        while (r->seen_cap < 2 * n)
            r->seen_cap = r->seen_cap ? r->seen_cap * 2 : 64;
        r->seen = dg_xrealloc(r->seen, r->seen_cap * sizeof(*r->seen));
    }
    memset(r->seen, 0xff, r->seen_cap * sizeof(*r->seen));
    for (size_t i = 0, og = 0, orx = 0; i < n; og += items[i].nops, orx += items[i].nreq_ids, i++) {
        struct dg_item *it = &items[i];
        it->frozen = 0;
        it->late = 0;
        for (int sc = 0; sc < DG_NSCOPES && r->fz.n; sc++)
            if (it->scope_key[sc] && frozen_in_cache(r, it, sc))
                it->frozen |= 1u << sc;
        if (it->dup)
            continue;
        if (seen_before(r, items, i)) {
            it->dup = 1; /* the engine copies the first copy's decision */
            it->frozen = 0;
            continue;
        }
        if (!it->decidable)
            continue;
        if (it->nreq_ids) {
            it->reqs = dg_arena_alloc(arena, it->nreq_ids * sizeof(*it->reqs));
            for (size_t k = 0; k < it->nreq_ids; k++)
                it->reqs[k] = r->b->orp[orx + k]->rec;
        }
        for (size_t o = 0; o < it->nops; o++) {
            struct dg_winop *op = &it->ops[o];
            const struct dg_window *w = &rs->windows[op->win];
            struct gentry *g = r->b->opg[og + o];
            struct section *sec = section_for(g, w);
            if (!sec->live) {
                if (!op->add) { /* a read of a key never written: empty */
                    memset(&op->raw, 0, sizeof(op->raw));
                    continue;
                }
                sec->live = 1;
                sec->st.last_touch = it->ts;
            }
            struct dstore_ctx dc = {r, NULL};
            struct dg_distinct_store ds = {dstore_get, dstore_set, &dc};
            if (sec->st.ext)
                dc.z = zset_for(r, w, op);
            dg_wstate_touch(&sec->st, w, op, it->ts, arena, &it->late, dc.z ? &ds : NULL);
            if ((w->agg->need & DG_NEED_DISTINCT) && !sec->st.ext &&
                sec->st.dn > DG_WSTATE_INLINE_DISTINCT) {
                /* too many to carry in the blob: into a sorted set */
                dc.z = zset_for(r, w, op);
                dg_wstate_take_distinct(&sec->st, w, dstore_set, &dc);
                g->ext = 1;
            }
            if (dc.z) /* where the set's window starts: values below are stale */
                dc.z->lo = dg_wstate_low(&sec->st, w);
            g->dirty = 1;
        }
    }
    r->b->batch_open = 1;
    rc = 0;
    goto out;
out_down:
    fail(r, DG_STATE_DOWN, "%s", r->c && r->c->errstr[0] ? r->c->errstr : "connection lost");
out:
    if (rep)
        freeReplyObject(rep);
    args_free(&mget);
    free(miss_g);
    free(miss_r);
    if (rc != 0)
        batch_abort(r);
    return rc;
}

static void now_rfc3339(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    dg_time_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, out);
}

/* Batch m, whose commit is on its way, will not be committed as sent: err
 * is its outcome when asked for, and its keys and writes leave the cache. */
static void fail_batch(struct rstate *r, struct rbatch *m, int err, const char *msg)
{
    struct rbatch *cur = r->b;
    m->has_result = 1;
    m->result_err = err;
    snprintf(m->result_msg, sizeof m->result_msg, "%s", msg);
    unpin(r, m);
    forget_writes(r, m);
    drop_touched(r, m);
    m->ca.n = 0;
    free(m->ceidx);
    m->ceidx = NULL;
    m->csent = 0;
    r->b = m;
    batch_reset(r);
    r->b = cur;
}

/* The batch sent after the one failing now (failing: its keys go too;
 * NULL when none) was built on it, so its chain check fails: its reply is
 * read and dropped (when the connection still stands), and it is judged
 * again, after the failing one, when its outcome is asked for. */
static void fail_queue(struct rstate *r, struct rbatch *failing)
{
    for (int k = 0; k < r->nq; k++) {
        struct rbatch *m = &r->slot[r->q[k]];
        if (m->has_result || m == failing)
            continue;
        r->redo_items = failing ? failing->items : r->b->items;
        redisReply *x = NULL;
        /* its replies: one, or a transaction's (see recv_fast) */
        for (size_t j = 0; r->c && m->csent && j < (m->tx ? m->nqueued + 4 : 1); j++) {
            if (get_reply(r, &x) == REDIS_OK)
                freeReplyObject(x);
            else
                fail(r, DG_STATE_DOWN, "%s", r->c->errstr[0] ? r->c->errstr : "connection lost");
        }
        if (!m->has_result) /* fail() may have failed it already */
            fail_batch(r, m, DG_STATE_CONFLICT, "a batch ahead of it was not committed");
    }
    if (failing)
        drop_touched(r, failing);
}

/* The connection is gone with the replies of the commits on their way:
 * each of those batches fails (the retry finds what was committed). */
static void lose_replies(struct rstate *r)
{
    if (r->nq)
        r->redo_items = r->b->items;
    for (int k = 0; k < r->nq; k++)
        if (!r->slot[r->q[k]].has_result)
            fail_batch(r, &r->slot[r->q[k]], DG_STATE_DOWN, r->base.errstr);
}

/* The batch r->b will not be committed as sent: its keys and writes leave
 * the cache, and so do those of the batch sent after it. */
static void give_up(struct rstate *r)
{
    unpin(r, r->b);
    forget_writes(r, r->b);
    fail_queue(r, r->b);
    batch_reset(r);
}

/* The commit as a transaction, from commit_script's arguments a, whose
 * parts L locates (so that both ways write the same): WATCH the write sequence and the freezes'
 * version; check_script (which touches the write sequence when a check
 * fails); MULTI; the writes as plain commands; INCR the write sequence;
 * EXEC. EXEC writes nothing when a check failed or another instance's
 * transaction committed in between (it touched the write sequence). The
 * writes cost Redis about half what they cost as calls from a script. */
static int send_fast(struct rstate *r, const struct args *a, const struct layout *L)
{
    struct rbatch *b = r->b;
    struct args c = r->chk; /* its capacity is kept across batches */
    size_t i, q = 0;
    const char *px = "PX";
    int ok = 1;

    /* WATCH */
    const char *wv[3] = {"WATCH", r->wseq_key, a->v[4]};
    size_t wl[3] = {5, strlen(r->wseq_key), a->l[4]};
    ok &= append(r, 3, wv, wl) == REDIS_OK;
    /* the checks */
    c.n = 0;
    arg_str(&c, "EVAL");
    arg(&c, check_script, sizeof(check_script) - 1);
    arg_str(&c, "0");
    arg(&c, a->v[4], a->l[4]); /* freezes' version key, expected */
    arg(&c, a->v[5], a->l[5]);
    arg(&c, a->v[6], a->l[6]); /* chain key, expected token */
    arg(&c, a->v[7], a->l[7]);
    arg(&c, a->v[9], a->l[9]); /* contention key */
    arg_str(&c, r->wseq_key);
    if (b->w_check) /* the write sequence it expects */
        arg_int(r, &c, (long long)b->w_expect);
    else
        arg(&c, "", 0);
    for (size_t k = L->chk; k < L->dec; k++)
        arg(&c, a->v[k], a->l[k]);
    ok &= append(r, (int)c.n, c.v, c.l) == REDIS_OK;
    /* the writes */
    const char *mv[1] = {"MULTI"};
    size_t ml[1] = {5};
    ok &= append(r, 1, mv, ml) == REDIS_OK;
    for (size_t k = 0; k < L->ne + L->nwr; k++, q++) { /* the decisions, then the other keys */
        size_t ki = k < L->ne ? L->ek + k : L->wr + 1 + 3 * (k - L->ne), vi = k < L->ne ? L->dec + 2 * k : ki + 1;
        const char *v[5] = {"SET", a->v[ki], a->v[vi], px, a->v[vi + 1]};
        size_t l[5] = {3, a->l[ki], a->l[vi], 2, a->l[vi + 1]};
        if (!l[4]) { /* the TTL is kept */
            v[3] = "KEEPTTL";
            l[3] = 7;
        }
        ok &= append(r, l[4] ? 5 : 4, v, l) == REDIS_OK;
    }
    i = L->z + 1;
    for (size_t k = 0; k < L->nz; k++) {
        const char *key = a->v[i];
        size_t keyl = a->l[i], m = L->zm[k];
        struct args z = {0};
        arg_str(&z, "ZADD");
        arg(&z, key, keyl);
        arg_str(&z, "GT");
        for (size_t j = 0; j < m; j++) {
            arg(&z, a->v[i + 4 + 2 * j + 1], a->l[i + 4 + 2 * j + 1]); /* score: the bucket */
            arg(&z, a->v[i + 4 + 2 * j], a->l[i + 4 + 2 * j]);
        }
        if (m) {
            ok &= append(r, (int)z.n, z.v, z.l) == REDIS_OK;
            q++;
        }
        args_free(&z);
        char *lo = dg_arena_alloc(&b->arena, a->l[i + 1] + 1);
        lo[0] = '(';
        memcpy(lo + 1, a->v[i + 1], a->l[i + 1]);
        const char *zr[4] = {"ZREMRANGEBYSCORE", key, "-inf", lo}, *pe[3] = {"PEXPIRE", key, a->v[i + 2]};
        size_t zrl[4] = {16, keyl, 4, a->l[i + 1] + 1}, pel[3] = {7, keyl, a->l[i + 2]};
        ok &= append(r, 4, zr, zrl) == REDIS_OK;
        ok &= append(r, 3, pe, pel) == REDIS_OK;
        q += 2;
        i += 4 + 2 * m;
    }
    i = L->fz + 1;
    b->freeze_at = q;
    b->nfreeze = 0;
    for (size_t k = 0; k < L->nf; k++, i += 2) {
        /* the freezes are as cached (the check makes sure): one in force
         * already stays as it is, and is not sent */
        if (dg_hmap_get(&r->fz, a->v[i], a->l[i]))
            continue;
        const char *v[4] = {"HSETNX", a->v[3], a->v[i], a->v[i + 1]};
        size_t l[4] = {6, a->l[3], a->l[i], a->l[i + 1]};
        ok &= append(r, 4, v, l) == REDIS_OK;
        b->nfreeze++;
        q++;
    }
    if (b->nfreeze) { /* placed: other caches read the freezes again */
        const char *v[2] = {"INCR", a->v[4]};
        size_t l[2] = {4, a->l[4]};
        ok &= append(r, 2, v, l) == REDIS_OK;
        q++;
    }
    {
        const char *v[5] = {"SET", a->v[6], a->v[8], px, "600000"}, *iv[2] = {"INCR", r->wseq_key},
                   *xv[1] = {"EXEC"};
        size_t l[5] = {3, a->l[6], a->l[8], 2, 6}, il[2] = {4, strlen(r->wseq_key)}, xl[1] = {4};
        ok &= append(r, 5, v, l) == REDIS_OK;
        ok &= append(r, 2, iv, il) == REDIS_OK;
        ok &= append(r, 1, xv, xl) == REDIS_OK;
        q += 2;
    }
    b->nqueued = q;
    b->tx = 1;
    r->chk = c;
    return ok ? REDIS_OK : REDIS_ERR;
}

/* The commit in two halves, so that the engine can do other work while
 * Redis runs the script: send builds the script's arguments and writes
 * them out; recv reads the reply. */
static int redis_commit_send(struct dg_state *st, struct dg_item *items, size_t n)
{
    struct rstate *r = (struct rstate *)st;
    struct args *a = &r->b->ca; /* kept for a retry after NOSCRIPT; capacity kept */
    struct layout L = {0};
    dg_buf *blob = &r->blob; /* one value at a time; the arguments take copies */
    size_t *eidx = NULL; /* the items whose decisions the script gets, in order */
    char at[32];

    if (!r->b->batch_open) {
        fail(r, DG_STATE_DOWN, "commit without apply");
        return -1;
    }
    a->n = 0;
    if (connect_redis(r))
        goto fail;
    now_rfc3339(at);

    arg_str(a, "EVALSHA");
    arg_str(a, r->sha);
    arg_str(a, "0");
    {
        size_t fl, fvl;
        const char *fk = pkey(r, "freezes", "", 0, NULL, 0, &fl);
        const char *fv = pkey(r, "freezes:v", "", 0, NULL, 0, &fvl);
        arg(a, fk, fl);
        arg(a, fv, fvl);
        arg(a, dg_arena_strndup(&r->b->arena, r->fver, r->fver_len), r->fver_len);
        arg_str(a, r->chain_key);
        arg_str(a, r->b->after);
        arg_str(a, r->b->token);
        arg_str(a, r->contended_key);
        arg_str(a, r->wseq_key);
    }
    /* a transaction (send_fast), or the single script */
    if (r->tx_ok == 0 && r->nq == 0 && probe_tx(r) != 0) /* nothing in flight on this connection */
        goto fail;
    int tx = r->tx_ok == 1 && wall_ms() >= r->calm_until;
    /* the write sequence this commit should find: after this instance's
     * last commit, or one more than the batch ahead expected */
    r->b->w_check = 0;
    if (tx && wall_ms() >= r->wcheck_off_until) {
        if (!r->nq && r->w_known) {
            r->b->w_check = 1;
            r->b->w_expect = r->w_last;
        } else if (r->nq && r->slot[r->q[r->nq - 1]].w_check && r->slot[r->q[r->nq - 1]].tx) {
            r->b->w_check = 1;
            r->b->w_expect = r->slot[r->q[r->nq - 1]].w_expect + 1;
        }
    }
    /* the checks: every key read that existed, with the version it had (a
     * copy: the entry takes its new version when the script is sent), but
     * for the keys the write sequence check covers; the keys taken or
     * found to be absent; each event's e: key (the script refuses the
     * batch if one was decided already). One walk over the batch's keys:
     * the read keys go out at once, their versions and the absent keys
     * are collected, and np is filled in after */
    size_t np = 0, na = 0, ne = 0, nk = r->b->nbl + r->b->nrl + 1;
    const char **ver = dg_arena_alloc(&r->b->arena, nk * sizeof(*ver)), **ak = dg_arena_alloc(&r->b->arena, nk * sizeof(*ak));
    size_t *akl = dg_arena_alloc(&r->b->arena, nk * sizeof(*akl));
    L.chk = a->n;
    arg(a, "", 0); /* np */
    for (size_t i = 0; i < r->b->nbl; i++) {
        struct gentry *g = r->b->bl[i];
        if (r->b->w_check && g->vseq > r->vfloor)
            continue;
        if (g->existed) {
            arg(a, g->key, g->keylen);
            ver[np++] = dg_arena_strndup(&r->b->arena, (const char *)g->ver, 8);
        } else {
            ak[na] = g->key;
            akl[na++] = g->keylen;
        }
    }
    for (size_t i = 0; i < r->b->nrl; i++) {
        struct rentry *re = r->b->rl[i];
        if (re->existed) {
            arg(a, re->key, re->keylen);
            ver[np++] = (const char *)re->ver;
        } else {
            ak[na] = re->key;
            akl[na++] = re->keylen;
        }
    }
    for (size_t k = 0; k < np; k++)
        arg(a, ver[k], 8);
    for (size_t i = 0; i < n; i++)
        ne += !items[i].dup;
    arg_int(r, a, (long long)na);
    arg_int(r, a, (long long)ne);
    for (size_t k = 0; k < na; k++)
        arg(a, ak[k], akl[k]);
    {
        size_t end = a->n; /* np, in its place */
        a->n = L.chk;
        arg_int(r, a, (long long)np);
        a->n = end;
    }
    eidx = dg_xcalloc(ne + 1, sizeof(*eidx));
    L.ek = a->n;
    L.ne = ne;
    ne = 0;
    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        if (it->dup)
            continue;
        size_t kl;
        const char *k = pkey(r, "e:", it->event_id, it->event_id_len, NULL, 0, &kl);
        arg(a, k, kl);
        eidx[ne++] = i;
    }
    /* the decisions, in the same order */
    L.dec = a->n;
    for (size_t k = 0; k < ne; k++) {
        const struct dg_item *it = &items[eidx[k]];
        char *v = dg_arena_alloc(&r->b->arena, it->decision_len + 1);
        v[0] = 'D';
        memcpy(v + 1, it->decision ? it->decision : "", it->decision_len);
        arg(a, v, it->decision_len + 1);
        arg_int(r, a, (long long)r->base.dedupe_ms);
    }
    /* the request records this batch wrote (each among its item's
     * req_ids, whose entries apply() found): the last write of each wins */
    for (size_t i = 0, orx = 0; i < n; orx += items[i].nreq_ids, i++)
        for (size_t w = 0; !items[i].dup && w < items[i].nwrites; w++)
            req_entry(r, &items[i], r->b->orp + orx, items[i].writes[w])->write = items[i].writes[w];
    /* the keys this batch changed, with the next version */
    for (size_t i = 0; i < r->b->nbl; i++)
        L.nwr += r->b->bl[i]->dirty;
    for (size_t i = 0; i < r->b->nrl; i++)
        L.nwr += r->b->rl[i]->write != NULL;
    L.wr = a->n;
    arg_int(r, a, (long long)L.nwr);
    for (size_t i = 0; i < r->b->nrl; i++) {
        struct rentry *re = r->b->rl[i];
        if (!re->write)
            continue;
        uint64_t v = re->existed ? dg_get_le64(re->ver) + 1 : 1;
        blob->len = 0;
        dg_buf_reserve(blob, 8);
        dg_put_le64(blob->data, v);
        blob->len = 8;
        dg_reqrec_encode(re->write, blob);
        re->wval = dg_arena_strndup(&r->b->arena, blob->data, blob->len);
        re->wlen = blob->len;
        arg(a, re->key, re->keylen);
        arg(a, re->wval, re->wlen);
        arg_int(r, a, (long long)DG_REQUEST_RETENTION_MS);
    }
    /* a state key's TTL is set a quarter longer than it needs, and while
     * what this instance set lasts long enough it is kept (KEEPTTL, the
     * ttl argument ""): a SET with PX costs Redis twice one without, and
     * a busy key is written every batch */
    int64_t t_now = wall_ms();
    for (size_t i = 0; i < r->b->nbl; i++) {
        struct gentry *g = r->b->bl[i];
        if (!g->dirty)
            continue;
        blob->len = 0;
        encode_blob(g, g->existed ? dg_get_le64(g->ver) + 1 : 1, blob);
        char *copy = dg_arena_alloc(&r->b->arena, blob->len);
        memcpy(copy, blob->data, blob->len);
        g->wblob = copy;
        g->wlen = blob->len;
        g->wttl = gentry_ttl(r, g);
        arg(a, g->key, g->keylen);
        arg(a, copy, blob->len);
        if (g->existed && g->ttl_until >= t_now + g->wttl) {
            arg(a, "", 0);
        } else {
            int64_t px = g->wttl + g->wttl / 4;
            arg_int(r, a, (long long)px);
            g->ttl_until = t_now + px;
        }
    }
    /* distinct values */
    for (size_t i = 0; i < r->b->nzl; i++)
        L.nz += r->b->zl[i]->dirty;
    L.z = a->n;
    L.zm = dg_arena_alloc(&r->b->arena, (L.nz + 1) * sizeof(*L.zm));
    arg_int(r, a, (long long)L.nz);
    for (size_t i = 0, k = 0; i < r->b->nzl; i++) {
        struct zset *z = r->b->zl[i];
        size_t m = 0;
        if (!z->dirty)
            continue;
        for (struct dentry *e = z->first; e; e = e->next)
            m += e->dirty;
        L.zm[k++] = m;
        arg(a, z->key, z->len);
        arg_int(r, a, (long long)z->lo);
        arg_int(r, a, (long long)z->ttl);
        arg_int(r, a, (long long)m);
        for (struct dentry *e = z->first; e; e = e->next) {
            if (!e->dirty)
                continue;
            arg(a, e->member, 16);
            arg_int(r, a, (long long)e->bucket);
        }
    }
    /* freezes: the first one of a scope stands */
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < DG_NSCOPES; s++)
            L.nf += !items[i].dup && (items[i].freeze & (1u << s)) && items[i].scope_key[s];
    L.fz = a->n;
    arg_int(r, a, (long long)L.nf);
    for (size_t i = 0; i < n; i++) {
        struct dg_item *it = &items[i];
        for (int s = 0; s < DG_NSCOPES && !it->dup; s++) {
            if (!(it->freeze & (1u << s)) || !it->scope_key[s])
                continue;
            const char *name = dg_scope_name(s);
            dg_buf f = {0}, j = {0};
            freeze_field(&f, s, it->scope_key[s], it->scope_len[s]);
            dg_buf_printf(&j, "{\"scope\":\"%s\",\"key\":", name);
            dg_buf_json_str(&j, it->scope_key[s], it->scope_len[s]);
            dg_buf_puts(&j, ",\"rule\":");
            const char *rid = it->freeze_info.rule_id ? it->freeze_info.rule_id : "";
            const char *why = it->freeze_info.reason ? it->freeze_info.reason : "";
            dg_buf_json_str(&j, rid, strlen(rid));
            dg_buf_puts(&j, ",\"reason\":");
            dg_buf_json_str(&j, why, strlen(why));
            dg_buf_printf(&j, ",\"ts\":%lld,\"event_id\":", (long long)it->ts);
            dg_buf_json_str(&j, it->event_id, it->event_id_len);
            dg_buf_printf(&j, ",\"at\":\"%s\",\"by\":\"engine\"}", at);
            arg(a, dg_arena_strndup(&r->b->arena, f.data, f.len), f.len);
            arg(a, dg_arena_strndup(&r->b->arena, j.data, j.len), j.len);
            dg_buf_free(&f);
            dg_buf_free(&j);
        }
    }

    r->b->tx = 0;
    if (tx) {
        if (send_fast(r, a, &L) != REDIS_OK)
            goto fail_down;
    } else if (append(r, (int)a->n, a->v, a->l) != REDIS_OK) {
        goto fail_down;
    }
    if (send_some(r) != REDIS_OK)
        goto fail_down;
    struct rbatch *b = r->b;
    b->items = items;
    b->ceidx = eidx;
    b->cne = ne;
    b->csent = 1;
    b->has_result = 0;
    /* a freeze not in force yet changes the freezes a later batch sees */
    b->placed = 0;
    for (size_t i = 0; i < n && !b->placed; i++)
        for (int sc = 0; sc < DG_NSCOPES && !items[i].dup; sc++)
            if ((items[i].freeze & (1u << sc)) && items[i].scope_key[sc] && !frozen_in_cache(r, &items[i], sc))
                b->placed = 1;
    /* the cache takes the batch's writes now, so that a batch applied
     * before this one's outcome builds on them; a failure drops them */
    b->nwg = 0;
    int64_t now = wall_ms();
    for (size_t i = 0; i < b->nbl; i++) {
        struct gentry *g = b->bl[i];
        g->pin++;
        if (!g->dirty)
            continue;
        if (b->nwg == b->capwg) {
            b->capwg = b->capwg ? 2 * b->capwg : 256;
            b->wg = dg_xrealloc(b->wg, b->capwg * sizeof(*b->wg));
            b->wttl = dg_xrealloc(b->wttl, b->capwg * sizeof(*b->wttl));
        }
        b->wg[b->nwg] = g;
        b->wttl[b->nwg++] = g->wttl;
        memcpy(g->ver, g->wblob, 8);
        g->existed = 1;
    }
    for (size_t i = 0; i < b->nrl; i++) {
        struct rentry *re = b->rl[i];
        if (re->write)
            cache_put(r, re->key, re->keylen, re->wval, re->wlen, 1,
                      now + DG_REQUEST_RETENTION_MS - CACHE_MARGIN_MS);
    }
    r->q[r->nq++] = (int)(b - r->slot);
    return 0;
fail_down:
    fail(r, DG_STATE_DOWN, "%s", r->c && r->c->errstr[0] ? r->c->errstr : "connection lost");
fail:
    a->n = 0;
    free(eidx);
    fail_queue(r, r->b); /* its keys go; fail() failed the batch ahead with the connection */
    batch_reset(r);
    return -1;
}

/* A transaction's replies are read straight from hiredis's input buffer
 * (a batch has thousands, and hiredis would allocate an object for each):
 * raw_line() gives the next line of a simple reply, without its CRLF.
 * Only between whole replies (after redisGetReply()). */
static int raw_line(struct rstate *r, const char **line, size_t *len)
{
    redisReader *rd = r->c->reader;
    for (;;) {
        if (rd->pos > 65536) { /* what was read goes (hiredis does the same) */
            sdsrange(rd->buf, (int)rd->pos, -1);
            rd->pos = 0;
            rd->len = sdslen(rd->buf);
        }
        const char *b = rd->buf + rd->pos, *nl = memchr(b, '\n', rd->len - rd->pos);
        if (nl) {
            if (nl == b || nl[-1] != '\r') {
                snprintf(r->c->errstr, sizeof r->c->errstr, "protocol error in a reply");
                return REDIS_ERR;
            }
            *line = b;
            *len = (size_t)(nl - 1 - b);
            rd->pos += (size_t)(nl + 1 - b);
            return REDIS_OK;
        }
        struct pollfd pf = {r->c->fd, POLLIN, 0};
        int k = poll(&pf, 1, r->timeout_ms > 0 ? r->timeout_ms : -1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(r->c->errstr, sizeof r->c->errstr, "%s", k == 0 ? "timed out" : strerror(errno));
            return REDIS_ERR;
        }
        if (redisBufferRead(r->c) != REDIS_OK)
            return REDIS_ERR;
    }
}

/* The replies of a commit sent by send_fast: *check gets check_script's
 * (the caller frees it), *placed the freezes EXEC placed, *wseq the write
 * sequence after it. Returns 1 when
 * EXEC wrote, 0 when it wrote nothing, -1 when the connection failed (or
 * the replies make no sense). */
static int recv_fast(struct rstate *r, redisReply **check, long long *placed, uint64_t *wseq)
{
    struct rbatch *b = r->b;
    redisReply *x = NULL;
    const char *bad = NULL, *l;
    char why[256] = "";
    size_t n;

    *check = NULL;
    *placed = 0;
    if (get_reply(r, &x) != REDIS_OK || get_reply(r, check) != REDIS_OK) { /* WATCH, the checks */
        if (x)
            freeReplyObject(x);
        return fail(r, DG_STATE_DOWN, "%s", r->c->errstr[0] ? r->c->errstr : "no reply");
    }
    if (x->type == REDIS_REPLY_ERROR) {
        bad = "WATCH";
        snprintf(why, sizeof why, "%s", x->str);
    }
    freeReplyObject(x);
    /* MULTI's +OK, a +QUEUED for each write, EXEC's array (or nil) */
    for (size_t k = 0; k < b->nqueued + 1; k++) {
        if (raw_line(r, &l, &n) != REDIS_OK)
            return fail(r, DG_STATE_DOWN, "%s", r->c->errstr);
        if (l[0] == '-' && !bad) {
            bad = k ? "a write" : "MULTI";
            snprintf(why, sizeof why, "%.*s", (int)(n - 1), l + 1);
        } else if (l[0] != '+') {
            return fail(r, DG_STATE_DOWN, "commit transaction: unexpected reply '%.*s'", (int)(n < 40 ? n : 40), l);
        }
    }
    if (raw_line(r, &l, &n) != REDIS_OK)
        return fail(r, DG_STATE_DOWN, "%s", r->c->errstr);
    int wrote = -1;
    if (n == 3 && !memcmp(l, "*-1", 3)) {
        wrote = 0;
    } else if (l[0] == '*' && (size_t)strtoull(l + 1, NULL, 10) == b->nqueued) {
        wrote = 1;
        for (size_t k = 0; k < b->nqueued; k++) {
            if (raw_line(r, &l, &n) != REDIS_OK)
                return fail(r, DG_STATE_DOWN, "%s", r->c->errstr);
            if (l[0] == ':' && k + 1 == b->nqueued) { /* INCR of the write sequence, last */
                *wseq = strtoull(l + 1, NULL, 10);
            } else if (l[0] == ':' && k >= b->freeze_at && k < b->freeze_at + b->nfreeze) {
                *placed += strtoll(l + 1, NULL, 10);
            } else if (l[0] == '-' && !bad) {
                bad = "a write in the transaction";
                snprintf(why, sizeof why, "%.*s", (int)(n - 1), l + 1);
            } else if (l[0] != ':' && l[0] != '+' && l[0] != '-') {
                return fail(r, DG_STATE_DOWN, "commit transaction: unexpected reply '%.*s'", (int)(n < 40 ? n : 40),
                            l);
            }
        }
    } else if (l[0] == '-') {
        if (!bad) {
            bad = "EXEC";
            snprintf(why, sizeof why, "%.*s", (int)(n - 1), l + 1);
        }
    } else {
        return fail(r, DG_STATE_DOWN, "commit transaction: unexpected reply to EXEC '%.*s'", (int)(n < 40 ? n : 40), l);
    }
    if (bad)
        return fail(r, DG_STATE_DOWN, "commit transaction: %s refused: %s", bad, why);
    return wrote;
}

static int redis_commit_recv(struct dg_state *st, struct dg_item *items, size_t n)
{
    struct rstate *r = (struct rstate *)st;
    redisReply *rep = NULL;
    int rc = -1, gave_up = 0;

    (void)n;
    int qi = 0;
    while (qi < r->nq && r->slot[r->q[qi]].items != items)
        qi++;
    if (qi == r->nq)
        return fail(r, DG_STATE_DOWN, "commit reply without a commit");
    r->b = &r->slot[r->q[qi]];
    for (int j = 0; j < qi && !r->b->has_result; j++)
        if (!r->slot[r->q[j]].has_result) /* replies come in the order the commits went */
            return fail(r, DG_STATE_DOWN, "commit replies asked for out of order");
    for (int j = qi; j + 1 < r->nq; j++)
        r->q[j] = r->q[j + 1];
    r->nq--;
    if (r->b->has_result) { /* failed already: see fail_queue */
        r->b->has_result = 0;
        return fail(r, r->b->result_err, "%s", r->b->result_msg);
    }
    if (!r->c) { /* cannot happen: lose_replies() set its result */
        fail(r, DG_STATE_DOWN, "connection lost before the reply");
        give_up(r);
        return -1;
    }
    struct args *a = &r->b->ca; /* emptied when done, capacity kept */
    size_t *eidx = r->b->ceidx, ne = r->b->cne;
    r->b->ceidx = NULL;
    if (!r->b->csent) {
        fail(r, DG_STATE_DOWN, "commit reply without a commit");
        goto out;
    }
    r->b->csent = 0;
    long long placed = 0;
    int wrote = -1;
    uint64_t wseq = 0;
    if (r->b->tx) {
        wrote = recv_fast(r, &rep, &placed, &wseq);
        if (wrote < 0)
            goto out;
        int passed = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
                     rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer == 1;
        if (passed && !wrote) {
            /* the checks passed, but another instance committed before EXEC */
            r->stats.conflicts++;
            r->calm_until = wall_ms() + 10000;
            r->read_all = 1;
            fail(r, DG_STATE_CONFLICT, "another instance committed while this batch's commit was on its way");
            goto out;
        }
        if (wrote && !passed) {
            /* cannot happen (a failed check touches what EXEC watches);
             * should it, the retry finds the batch's events decided */
            fail(r, DG_STATE_DOWN, "commit: checks %s, yet the transaction wrote",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "refused");
            goto out;
        }
    } else if (get_reply(r, &rep) != REDIS_OK) {
        rep = NULL;
        fail(r, DG_STATE_DOWN, "%s", r->c->errstr[0] ? r->c->errstr : "no reply");
        goto out;
    }
    if (rep && !r->b->tx && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
        /* Redis restarted (or flushed its scripts) since we loaded ours;
         * the batches behind this one got NOSCRIPT too */
        freeReplyObject(rep);
        rep = NULL;
        fail_queue(r, NULL);
        writer_reset(r);
        redisFree(r->c);
        r->c = NULL;
        if (connect_redis(r))
            goto out;
        a->v[1] = r->sha;
        rep = cmd(r, (int)a->n, a->v, a->l);
    }
    if (!rep)
        goto out;
    if (rep->type == REDIS_REPLY_ERROR) {
        fail(r, DG_STATE_DOWN, "commit script: %s", rep->str);
        goto out;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        fail(r, DG_STATE_DOWN, "commit script: unexpected reply");
        goto out;
    }
    r->stats.commits++;
    if (rep->element[0]->integer == 0) {
        /* keys changed since this instance read or wrote them: forget
         * them (and the freezes, if they changed), read, judge again */
        size_t fvl, pl = strlen(r->prefix), guessed[NCLASS], present[NCLASS] = {0};
        const char *first = "?";
        int64_t until = wall_ms() + CACHE_READ_MS;
        count_guessed(r->b, guessed);
        give_up(r); /* the keys it touched hold its changes */
        gave_up = 1;
        const char *fv = pkey(r, "freezes:v", "", 0, NULL, 0, &fvl);
        for (size_t k = 1; k + 1 < rep->elements; k += 2) {
            const redisReply *e = rep->element[k], *v = rep->element[k + 1];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            if (k == 1)
                first = e->str;
            if (e->len == fvl && !memcmp(e->str, fv, fvl)) {
                r->fz_valid = 0;
                continue;
            }
            int is_g = e->len > pl + 2 && !memcmp(e->str + pl, "g:", 2), cls = key_class(r, e->str, e->len);
            present[cls] += v->type == REDIS_REPLY_STRING;
            if (!is_g && v->type == REDIS_REPLY_STRING) {
                cache_put(r, e->str, e->len, v->str, v->len, 1, until);
            } else if (!is_g) {
                cache_forget(r, e->str, e->len);
            } else if (v->type == REDIS_REPLY_STRING && r->gc_rs) {
                /* what it holds now, decoded for the next attempt */
                struct gentry *g = dg_xcalloc(1, sizeof(*g) + e->len + 1);
                char *key = (char *)(g + 1);
                memcpy(key, e->str, e->len);
                g->key = key;
                g->keylen = e->len;
                g->cls = cls;
                if (decode_blob(r, r->gc_rs, g, v->str, v->len) != 0) {
                    gentry_free(g);
                    continue;
                }
                g->known = g->existed = 1;
                g->expires_ms = until;
                struct gentry *old = dg_hmap_put(&r->gc, g->key, g->keylen, g);
                if (old && old != g)
                    bury(r, old);
            }
        }
        for (int c = 0; c < NCLASS; c++)
            note_present(r, c, present[c] < guessed[c] ? present[c] : guessed[c], guessed[c]);
        r->stats.conflicts++;
        r->read_all = 1; /* (a key another instance changed marks the contention key: see check_keys) */
        fail(r, DG_STATE_CONFLICT, "key '%s' changed while this batch was decided", first);
        goto out;
    }
    if (rep->element[0]->integer == 2) {
        /* events decided already (a redelivery, or another instance):
         * judged again, they get their stored decision */
        for (size_t k = 1; k + 1 < rep->elements; k += 2) {
            const redisReply *ix = rep->element[k], *v = rep->element[k + 1];
            if (ix->type != REDIS_REPLY_INTEGER || v->type != REDIS_REPLY_STRING || v->len < 1 ||
                v->str[0] != 'D' || ix->integer < 0 || (size_t)ix->integer >= ne)
                continue;
            const struct dg_item *it = &items[eidx[ix->integer]];
            size_t kl;
            const char *key = pkey(r, "e:", it->event_id, it->event_id_len, NULL, 0, &kl);
            free(dg_hmap_put(&r->known, key, kl, dg_xstrndup(v->str + 1, v->len - 1)));
            r->stats.decided_found++;
        }
        r->stats.conflicts++;
        fail(r, DG_STATE_CONFLICT, "events of this batch were decided already");
        goto out;
    }
    if (rep->element[0]->integer == 4) {
        /* another instance committed since this one's last commit: its
         * keys are checked one by one for a while */
        r->wcheck_off_until = wall_ms() + 10000;
        r->vfloor = UINT64_MAX;
        r->stats.conflicts++;
        fail(r, DG_STATE_CONFLICT, "another instance committed since this instance's last commit");
        goto out;
    }
    if (rep->element[0]->integer == 3) { /* built on a batch that was not committed */
        fail(r, DG_STATE_CONFLICT, "a batch ahead of it was not committed");
        goto out;
    }
    if (rep->element[0]->integer != 1) {
        fail(r, DG_STATE_DOWN, "commit script: unexpected reply");
        goto out;
    }
    /* written: the cache holds what Redis holds now (it took the new
     * versions when the script was sent; now they live as long as in Redis) */
    {
        struct rbatch *b = r->b;
        r->redo_items = NULL; /* decided again: the batches behind it come next */
        r->read_all = 0;
        int64_t now = wall_ms();
        for (size_t i = 0; i < b->nwg; i++)
            b->wg[i]->expires_ms = now + b->wttl[i] - CACHE_MARGIN_MS;
        for (size_t i = 0; i < b->nrl; i++) {
            const struct rentry *re = b->rl[i];
            if (re->guessed && !re->write && !dg_hmap_get(&r->cache, re->key, re->keylen))
                cache_put(r, re->key, re->keylen, NULL, 0, 0, now + CACHE_READ_MS); /* seen absent */
        }
        size_t guessed[NCLASS];
        count_guessed(b, guessed);
        for (int c = 0; c < NCLASS; c++)
            note_present(r, c, 0, guessed[c]); /* they were absent indeed */
        /* {1, placed, contended} (a transaction's check: placed is EXEC's) */
        const redisReply *pl = rep->elements > 1 ? rep->element[1] : NULL, *ct = rep->elements > 2 ? rep->element[2] : NULL;
        if (!b->tx && pl && pl->type == REDIS_REPLY_INTEGER)
            placed = pl->integer;
        if (placed > 0)
            r->fz_valid = 0; /* freezes placed: read them (and their version) again */
        if (ct && ct->type == REDIS_REPLY_INTEGER && ct->integer > 0)
            r->calm_until = now + 10000;
        r->stats.tx_commits += b->tx;
        if (b->tx && wseq) {
            /* the keys it used equal Redis's as of wseq; a gap since this
             * instance's last commit means others committed: what was
             * checked before is checked again */
            if (!(r->w_known && wseq == r->w_last + 1))
                r->vfloor = wseq - 1;
            r->w_last = wseq;
            r->w_known = 1;
            for (size_t i = 0; i < b->nbl; i++)
                b->bl[i]->vseq = wseq;
        } else {
            r->vfloor = UINT64_MAX;
            r->w_known = 0;
        }
        if (r->known.n)
            known_clear(r);
    }
    rc = 0;
out:
    if (rep)
        freeReplyObject(rep);
    a->n = 0;
    free(eidx);
    if (rc != 0)
        r->w_known = 0; /* what the write sequence holds now is not known */
    if (rc != 0 && !gave_up) {
        give_up(r);
    } else if (rc == 0) {
        unpin(r, r->b);
        batch_reset(r);
    }
    return rc;
}

static int redis_commit(struct dg_state *st, struct dg_item *items, size_t n)
{
    if (redis_commit_send(st, items, n) != 0)
        return -1;
    return redis_commit_recv(st, items, n);
}

static int redis_peek(struct dg_state *st, const struct dg_window *w, const char *key,
                      size_t keylen, int64_t at_ms, dg_arena *arena, struct dg_win_raw *out)
{
    struct rstate *r = (struct rstate *)st;
    struct dg_winop op = {0};
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (connect_redis(r))
        return -2;
    op.key = key;
    op.keylen = (uint32_t)keylen;
    gkey(r, w, &op); /* read from Redis, never from the cache */
    struct gentry *g = dg_xcalloc(1, sizeof(*g));
    const char *argv[2] = {"GET", r->gk.data};
    size_t lens[2] = {3, r->gk.len};
    redisReply *rep = cmd(r, 2, argv, lens);
    if (!rep) {
        gentry_free(g);
        return -2;
    }
    if (rep->type == REDIS_REPLY_STRING) {
        /* decode against a one-window "rule set": other sections stay raw */
        struct dg_ruleset one = {0};
        one.windows = (struct dg_window *)w;
        one.nwindows = 1;
        if (decode_blob(r, &one, g, rep->str, rep->len) == 0)
            for (size_t k = 0; k < g->nsec; k++)
                if (g->sec[k].w == w && g->sec[k].live) {
                    dg_wstate_peek(&g->sec[k].st, w, at_ms, out);
                    if (out->has_last && out->last.t == DG_T_STR)
                        out->last.u.s = dg_arena_strndup(arena, out->last.u.s, out->last.len);
                    rc = 0;
                }
    }
    freeReplyObject(rep);
    gentry_free(g);
    return rc;
}

static void redis_destroy(struct dg_state *st)
{
    struct rstate *r = (struct rstate *)st;
    gc_clear(r);
    dg_hmap_free(&r->gc);
    free(r->buried);
    for (int i = 0; i < 2; i++) {
        struct rbatch *b = &r->slot[i];
        args_free(&b->ca);
        free(b->ceidx);
        free(b->opg);
        free(b->orp);
        free(b->rl);
        free(b->bl);
        free(b->dl);
        free(b->zl);
        free(b->wg);
        free(b->wttl);
        dg_hmap_free(&b->dvals);
        dg_hmap_free(&b->zsets);
        dg_hmap_free(&b->recs);
        dg_arena_free(&b->arena);
    }
    if (r->c)
        writer_reset(r);
    if (r->w.started) {
        pthread_mutex_lock(&r->w.mu);
        r->w.stop = 1;
        pthread_cond_broadcast(&r->w.cv);
        pthread_mutex_unlock(&r->w.mu);
        pthread_join(r->w.th, NULL);
        pthread_mutex_destroy(&r->w.mu);
        pthread_cond_destroy(&r->w.cv);
        dg_buf_free(&r->w.next);
        dg_buf_free(&r->w.cur);
    }
    if (r->c)
        redisFree(r->c);
    cache_clear(r);
    dg_hmap_free(&r->cache);
    dg_hmap_free(&r->fz);
    known_clear(r);
    dg_hmap_free(&r->known);
    free(r->seen);
    dg_buf_free(&r->kb);
    dg_buf_free(&r->gk);
    dg_buf_free(&r->blob);
    args_free(&r->chk);
    dg_buf_free(&r->out);
    if (r->record)
        fclose(r->record);
    free(r->host);
    free(r->unix_path);
    free(r->user);
    free(r->password);
    free(r->prefix);
    free(r);
}

static const struct dg_state_ops redis_ops = {"redis", redis_apply, redis_commit, redis_destroy,
                                              redis_ping, redis_peek, redis_commit_send,
                                              redis_commit_recv};

struct dg_state *dg_state_redis_new(const struct dg_redis_opts *o, char *err, size_t errsz)
{
    struct rstate *r = dg_xcalloc(1, sizeof(*r));
    r->base.ops = &redis_ops;
    r->base.dedupe_ms = o->dedupe_ms > 0 ? o->dedupe_ms : 24LL * 3600 * 1000;
    r->base.lateness_ms = o->lateness_ms > 0 ? o->lateness_ms : 3600LL * 1000;
    r->host = dg_xstrdup(o->host && *o->host ? o->host : "127.0.0.1");
    r->port = o->port > 0 ? o->port : 6379;
    r->unix_path = o->unix_path && *o->unix_path ? dg_xstrdup(o->unix_path) : NULL;
    r->user = o->user && *o->user ? dg_xstrdup(o->user) : NULL;
    r->password = o->password && *o->password ? dg_xstrdup(o->password) : NULL;
    r->prefix = dg_xstrdup(o->prefix ? o->prefix : "dg:");
    r->db = o->db;
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
    for (int i = 0; i < 2; i++) {
        dg_arena_init(&r->slot[i].arena, 64 * 1024);
        dg_hmap_init(&r->slot[i].dvals);
        dg_hmap_init_borrowed(&r->slot[i].zsets); /* keys in the batch's arena */
        dg_hmap_init_borrowed(&r->slot[i].recs);
    }
    r->b = &r->slot[0];
    dg_hmap_init_borrowed(&r->gc);
    {
        /* this instance's chain token prefix: the batches it has in
         * flight are committed in order, or not at all */
        unsigned char rnd[8] = {0};
        FILE *u = fopen("/dev/urandom", "rb");
        if (!u || fread(rnd, 1, sizeof rnd, u) != sizeof rnd) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
            memcpy(rnd, &v, 8);
        }
        if (u)
            fclose(u);
        for (int i = 0; i < 8; i++)
            snprintf(r->instance + 2 * i, 3, "%02x", rnd[i]);
        snprintf(r->chain_key, sizeof r->chain_key, "%schain:%s", r->prefix, r->instance);
        snprintf(r->contended_key, sizeof r->contended_key, "%scontended", r->prefix);
        snprintf(r->wseq_key, sizeof r->wseq_key, "%swseq", r->prefix);
    }
    dg_hmap_init_borrowed(&r->cache);
    dg_hmap_init(&r->fz);
    dg_hmap_init(&r->known);
    for (int k = 0; k < NCLASS; k++)
        r->present[k] = 1; /* read first, until keys not cached turn out to be new */
    r->vfloor = UINT64_MAX;
    const char *rec = getenv("DG_REDIS_RECORD");
    if (rec && *rec && !(r->record = fopen(rec, "wb"))) {
        snprintf(err, errsz, "DG_REDIS_RECORD: cannot write '%s'", rec);
        redis_destroy(&r->base);
        return NULL;
    }
    if (connect_redis(r) != 0) {
        snprintf(err, errsz, "%s", r->base.errstr);
        redis_destroy(&r->base);
        return NULL;
    }
    return &r->base;
}

/* ================================================================== */
/* freeze administration (freeze_admin.h): `drainguard freezes`        */
/*                                                                    */
/* Operator commands, one connection per call, through the same        */
/* connect_redis() as the engine (AUTH, SELECT, timeouts). Each change */
/* is one script that also INCRs freezes:v, the version every engine   */
/* batch checks at commit: a batch decided on the freezes as they were */
/* before the change is refused and read again, on every instance.     */
/* The scripts name their keys in KEYS, so an ACL user limited to the  */
/* prefix (~dg:*) may run them.                                        */

#include "freeze_admin.h" /* here, to keep this section in one piece */

/* KEYS: freezes, freezes:v. ARGV: field, record. {1, record} placed;
 * {0, record in force} already frozen, nothing changed. */
static const char freeze_add_script[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur then return {0, cur} end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('INCR', KEYS[2])\n"
    "return {1, ARGV[2]}\n";

/* KEYS: freezes, freezes:v. ARGV: field. {1, record released}; {0} when
 * the scope was not frozen, nothing changed. */
static const char freeze_release_script[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not cur then return {0} end\n"
    "redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "redis.call('INCR', KEYS[2])\n"
    "return {1, cur}\n";

static struct rstate *admin_open(const struct dg_redis_opts *o, char *err, size_t errsz)
{
    struct dg_state *st = dg_state_redis_new(o, err, errsz);
    return st ? (struct rstate *)st : NULL;
}

/* Run one of the scripts above on freezes and freezes:v (rec: the second
 * ARGV, or NULL). The reply, checked for shape, or NULL with err set. With
 * no reply at all (a timeout after the command went out) the script may
 * have run: err says so. */
static redisReply *admin_eval(struct rstate *r, const char *script, const char *field,
                              size_t field_len, const char *rec, size_t rec_len, char *err,
                              size_t errsz)
{
    size_t fl, fvl;
    const char *fk = pkey(r, "freezes", "", 0, NULL, 0, &fl);
    const char *fv = pkey(r, "freezes:v", "", 0, NULL, 0, &fvl);
    const char *argv[7] = {"EVAL", script, "2", fk, fv, field, rec};
    size_t lens[7] = {4, strlen(script), 1, fl, fvl, field_len, rec_len};
    redisReply *rep = cmd(r, rec ? 7 : 6, argv, lens);
    if (!rep) {
        snprintf(err, errsz, "%s (the change may or may not have been made: check with "
                 "`drainguard freezes list`)", r->base.errstr);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errsz, "freeze script refused: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        (rep->element[0]->integer == 1 &&
         (rep->elements < 2 || rep->element[1]->type != REDIS_REPLY_STRING))) {
        snprintf(err, errsz, "freeze script: unexpected reply");
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct dg_freeze_entry *x = a, *y = b;
    return strcmp(x->field, y->field);
}

int dg_freezes_list(const struct dg_redis_opts *o, struct dg_freeze_entry **out, size_t *n,
                    char *err, size_t errsz)
{
    struct rstate *r = admin_open(o, err, errsz);
    redisReply *rep = NULL;
    int rc = -1;

    *out = NULL;
    *n = 0;
    if (!r)
        return -1;
    size_t fl;
    const char *fk = pkey(r, "freezes", "", 0, NULL, 0, &fl);
    const char *argv[2] = {"HGETALL", fk};
    size_t lens[2] = {7, fl};
    rep = cmd(r, 2, argv, lens);
    if (!rep) {
        snprintf(err, errsz, "%s", r->base.errstr);
        goto out_close;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errsz, "HGETALL '%s': %s", fk, rep->str);
        goto out_reply;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        snprintf(err, errsz, "HGETALL '%s': unexpected reply", fk);
        goto out_reply;
    }
    size_t m = rep->elements / 2;
    struct dg_freeze_entry *v = dg_xcalloc(m ? m : 1, sizeof(*v));
    for (size_t i = 0; i < m; i++) {
        redisReply *f = rep->element[2 * i], *val = rep->element[2 * i + 1];
        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) {
            dg_freezes_list_free(v, i);
            snprintf(err, errsz, "HGETALL '%s': unexpected reply", fk);
            goto out_reply;
        }
        v[i].field = dg_xstrndup(f->str, f->len);
        v[i].record = dg_xstrndup(val->str, val->len);
        v[i].record_len = val->len;
    }
    qsort(v, m, sizeof(*v), entry_cmp);
    *out = v;
    *n = m;
    rc = 0;
out_reply:
    freeReplyObject(rep);
out_close:
    redis_destroy(&r->base);
    return rc;
}

void dg_freezes_list_free(struct dg_freeze_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].field);
        free(v[i].record);
    }
    free(v);
}

int dg_freeze_add(const struct dg_redis_opts *o, int scope, const char *key, const char *reason,
                  const char *by, int64_t at_ms, char **stored, char *err, size_t errsz)
{
    dg_buf field = {0}, rec = {0};
    char at[32];
    int rc = -1;

    *stored = NULL;
    struct rstate *r = admin_open(o, err, errsz);
    if (!r)
        return -1;
    freeze_field(&field, scope, key, strlen(key));
    dg_time_format(at_ms, at);
    /* the fields and their order of the engine's records (redis_commit);
     * no event placed it: ts and event_id are null */
    dg_buf_printf(&rec, "{\"scope\":\"%s\",\"key\":", dg_scope_name(scope));
    dg_buf_json_str(&rec, key, strlen(key));
    dg_buf_puts(&rec, ",\"rule\":\"manual\",\"reason\":");
    dg_buf_json_str(&rec, reason, strlen(reason));
    dg_buf_printf(&rec, ",\"ts\":null,\"event_id\":null,\"at\":\"%s\",\"by\":", at);
    dg_buf_json_str(&rec, by, strlen(by));
    dg_buf_putc(&rec, '}');
    redisReply *rep = admin_eval(r, freeze_add_script, field.data, field.len, rec.data, rec.len,
                                 err, errsz);
    if (rep) {
        rc = rep->element[0]->integer == 1;
        if (rep->elements > 1 && rep->element[1]->type == REDIS_REPLY_STRING)
            *stored = dg_xstrndup(rep->element[1]->str, rep->element[1]->len);
        else
            *stored = dg_xstrdup("");
        freeReplyObject(rep);
    }
    dg_buf_free(&field);
    dg_buf_free(&rec);
    redis_destroy(&r->base);
    return rc;
}

int dg_freeze_release(const struct dg_redis_opts *o, int scope, const char *key, char **previous,
                      char *err, size_t errsz)
{
    dg_buf field = {0};
    int rc = -1;

    *previous = NULL;
    struct rstate *r = admin_open(o, err, errsz);
    if (!r)
        return -1;
    freeze_field(&field, scope, key, strlen(key));
    redisReply *rep = admin_eval(r, freeze_release_script, field.data, field.len, NULL, 0, err,
                                 errsz);
    if (rep) {
        rc = rep->element[0]->integer == 1;
        if (rc)
            *previous = dg_xstrndup(rep->element[1]->str, rep->element[1]->len);
        freeReplyObject(rep);
    }
    dg_buf_free(&field);
    redis_destroy(&r->base);
    return rc;
}
