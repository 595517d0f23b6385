/*
 * cmd_replay.c - `drainguard replay`: a JSON Lines file of events in,
 * decisions out in input order, state in memory. The backtesting tool: the
 * output has no wall-clock field, so two runs are byte-identical.
 */
#include "cmd.h"
#include "detect.h"
#include "pipeline.h"
#include "rules.h"
#include "sign.h"
#include "state.h"
#include "util.h"
#include "hmap.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char dg_usage_replay[] =
    "usage: drainguard replay --rules FILE|DIR [--rules ...] --input FILE|- --output FILE|-\n"
    "                         [--rejects FILE] [--batch N] [--dedupe-window DUR]\n"
    "                         [--lateness DUR] [--quiet]\n"
    "                         [--sign-key-file FILE | --sign-key-env NAME --sign-key-id ID]\n"
    "\n"
    "Decide every event of a JSON Lines file (one event per line, blank lines\n"
    "ignored) with the rules, keeping window state in memory. Writes one\n"
    "decision per withdrawal.requested and wallet.outflow (and per account or\n"
    "balance event that a rule matched), in input order, without wall-clock\n"
    "fields: the same input gives byte-identical output.\n"
    "\n"
    "An invalid line is counted and reported with its line number and reason;\n"
    "if it names a withdrawal_id, the withdrawal gets a `hold` decision.\n"
    "\n"
    "  --rules PATH          rule file, or a directory of them (repeatable)\n"
    "  --input PATH          events, or - for stdin\n"
    "  --output PATH         decisions, or - for stdout\n"
    "  --rejects PATH        write every rejected line as JSON (line, reason, field,\n"
    "                        message) here; otherwise the first 20 go to stderr\n"
    "  --batch N             events per batch (default 64 with memory state, 512 with\n"
    "                        redis; results do not depend on it)\n"
    "  --dedupe-window DUR   how long an event_id is remembered, in event time (default 24h)\n"
    "  --lateness DUR        how late an event may be and still see idle state (default 1h)\n"
    "  --explain             print every decision that is not `allow` on stderr, with\n"
    "                        the line, the ids and each matched rule's reason\n"
    "  --quiet               no summary on stderr\n"
    "  --state memory|redis  where window state lives (default memory); with redis,\n"
    "                        replay shares state with `drainguard run` instances\n"
    "  --redis HOST:PORT|unix:PATH   the Redis server (default 127.0.0.1:6379);\n"
    "                        a password is read from DG_REDIS_PASSWORD (ACL user:\n"
    "                        DG_REDIS_USER)\n"
    "  --redis-prefix P      key prefix (default dg:)\n"
    "  --dump-windows PATH   at the end, write every window key the input touched with\n"
    "                        its figures as of the latest event time, sorted (JSON lines)\n"
    "  --payouts-follow-decisions\n"
    "                        backtests of generated traffic: drop each wallet.outflow that\n"
    "                        pays a request this replay did not allow, as the payout\n"
    "                        service would never have signed it (outflows naming no\n"
    "                        request this replay decided are kept: they are what\n"
    "                        reconciliation is for)\n"
    "  --sign-key-file FILE  sign every decision as `run` does (docs/signing.md) with\n"
    "                        this key (the file's bytes, one trailing newline stripped)\n"
    "  --sign-key-env NAME   ...or with the key in this environment variable\n"
    "  --sign-key-id ID      the key's id, written into every decision as sig_kid\n"
    "\n"
    "The summary on stderr gives events by type, decisions by action, rejects by\n"
    "reason, hits per rule, events per second and peak memory.\n";

#define MAX_STDERR_REJECTS 20

struct replay {
    FILE *out, *rejects;
    int explain;
    dg_hmap *paid_by_decision; /* --payouts-follow-decisions: withdrawal_id -> action + 1 */
    dg_decoder *peek;          /* to read an outflow's ids before pushing it */
    uint64_t unpaid;           /* outflows dropped */
    const struct dg_ruleset *rs;
    dg_hmap *dump;       /* (window index, key) pairs seen, for --dump-windows */
    dg_arena dump_arena;
    int64_t max_ts;
    uint64_t line;
    uint64_t rejects_shown, rejects_total;
    int write_error;
};

struct tag {
    uint64_t line;
};

/* The input, read a large block at a time (one read() per megabyte, not a
 * getline() per event); lines are handed out in place. */
struct lines {
    int fd;
    char *buf;
    size_t cap, start, end; /* unread bytes: buf[start, end) */
    int eof;
    int err;                /* errno of a failed read, else 0 */
};

#define LINES_BLOCK (1 << 20)

/* Replay keeps tens of MB of window state in memory and reads it at
 * random: on 4 KB pages most of those reads miss the TLB as well as the
 * cache (about a tenth of the run). So the heap is asked for transparent
 * huge pages as it grows, as glibc's glibc.malloc.hugetlb=1 tunable would
 * do if it were set in the environment. The heap grows in 64 MB steps, so
 * that fresh memory is marked before it is first touched. Only a hint:
 * where THP is off (or malloc is not glibc's), nothing changes. */
#define HEAP_STEP (64 << 20)
#define HUGE_PAGE ((uintptr_t)2 << 20)

struct heap_thp {
    uintptr_t start, done; /* the heap's start; marked up to here */
};

static void heap_thp_init(struct heap_thp *h)
{
    mallopt(M_TOP_PAD, HEAP_STEP);
    h->start = h->done = (uintptr_t)sbrk(0);
}

static void heap_thp_update(struct heap_thp *h)
{
    uintptr_t top = (uintptr_t)sbrk(0);
    if (top < h->done + HUGE_PAGE)
        return;
    dg_advise_hugepages((void *)h->start, top - h->start);
    h->done = top;
}

/* The next line without its '\n' (the last one may lack it), valid until
 * the next call; NULL at the end of the input or on a read error. */
static char *next_line(struct lines *r, size_t *len)
{
    for (;;) {
        char *line = r->buf + r->start;
        char *nl = r->end > r->start ? memchr(line, '\n', r->end - r->start) : NULL;
        if (nl) {
            *len = (size_t)(nl - line);
            r->start += *len + 1;
            return line;
        }
        if (r->eof || r->err) {
            if (r->start == r->end || r->err)
                return NULL;
            *len = r->end - r->start;
            r->start = r->end;
            return line;
        }
        /* keep the partial line, make room, read more */
        if (r->end > r->start)
            memmove(r->buf, line, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
        if (r->cap - r->end < LINES_BLOCK / 2) {
            r->cap = r->cap ? r->cap * 2 : LINES_BLOCK;
            r->buf = dg_xrealloc(r->buf, r->cap);
        }
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0)
            r->end += (size_t)n;
        else if (n == 0)
            r->eof = 1;
        else if (errno != EINTR)
            r->err = errno;
    }
}

static int contains(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = s; (p = memchr(p, needle[0], len - (size_t)(p - s))) && (size_t)(p - s) + n <= len; p++)
        if (!memcmp(p, needle, n))
            return 1;
    return 0;
}

/* --payouts-follow-decisions: 1 when this line is an outflow paying a
 * request the replay did not allow (drop it), 0 to push it, -1 when one of
 * its requests may still be pending in the batch (flush, then ask again). */
static int unpaid_outflow(struct replay *r, const char *line, size_t len, size_t pending)
{
    struct dg_event ev;
    struct dg_reject rej;
    int stopped = 0, unknown = 0;

    if (!contains(line, len, "wallet.outflow"))
        return 0; /* cheap: most lines are not outflows */
    if (dg_decode(r->peek, line, len, &ev, &rej) != 0 || ev.type != DG_EV_OUTFLOW)
        return 0;
    for (size_t i = 0; i < ev.nids; i++) {
        void *a = dg_hmap_get(r->paid_by_decision, ev.ids[i], strlen(ev.ids[i]));
        if (!a)
            unknown = 1;
        else if ((int)(uintptr_t)a - 1 != DG_ALLOW)
            stopped = 1;
    }
    if (unknown && pending)
        return -1;
    return stopped;
}

/* One readable block per decision that is not `allow`. */
static void explain(uint64_t line, const struct dg_output *o)
{
    const struct dg_event *ev = o->event;
    const char *what = ev ? dg_event_type_name(ev->type) : "invalid input";

    fprintf(stderr, "line %llu: %s %.*s", (unsigned long long)line,
            dg_action_name(o->action), (int)o->key_len, o->key);
    if (ev && ev->f[DG_F_ACCOUNT_ID].t == DG_T_STR)
        fprintf(stderr, " (account %.*s)", (int)ev->f[DG_F_ACCOUNT_ID].len, ev->f[DG_F_ACCOUNT_ID].u.s);
    fprintf(stderr, " [%s]%s\n", what, o->duplicate ? " (redelivered: same decision)" : "");
    if (o->reject) {
        fprintf(stderr, "    %s: %s\n", dg_reject_name(o->reject->code), o->reject->msg);
        return;
    }
    if (!o->detail)
        return;
    for (size_t i = 0; i < o->detail->nm; i++) {
        const struct dg_match *m = &o->detail->m[i];
        fprintf(stderr, "    %-7s %s%s: %.*s\n", dg_action_name(m->action), m->id,
                m->mode == DG_SHADOW ? " (shadow)" : "", (int)m->reason_len, m->reason);
    }
    for (int sc = 0; sc < DG_NSCOPES; sc++)
        if (o->detail->placed & (1u << sc))
            fprintf(stderr, "    freezes %s '%s'\n", dg_scope_name(sc),
                    sc == DG_SCOPE_GLOBAL ? "*" : ev->f[dg_scope_field(sc, ev->type)].u.s);
}

/* Remember every window key this event touches: "<window index>\x1f<key>". */
static void note_keys(struct replay *r, const struct dg_event *ev)
{
    const struct dg_ruleset *rs = r->rs;
    if (ev->ts_ms > r->max_ts)
        r->max_ts = ev->ts_ms;
    for (size_t i = 0; i < rs->ntouch[ev->type]; i++) {
        uint16_t w = rs->touch[ev->type][i];
        uint32_t klen;
        const char *key = dg_window_key(&rs->windows[w], ev, &r->dump_arena, &klen);
        if (!key)
            continue;
        dg_buf k = {0};
        dg_buf_printf(&k, "%05u\x1f", w);
        dg_buf_append(&k, key, klen);
        if (!dg_hmap_get(r->dump, k.data, k.len))
            dg_hmap_put(r->dump, k.data, k.len, (void *)1);
        dg_buf_free(&k);
        dg_arena_reset(&r->dump_arena);
    }
}

static int cmp_keys(const void *a, const void *b)
{
    const struct dg_hslot *x = *(const struct dg_hslot *const *)a, *y = *(const struct dg_hslot *const *)b;
    size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

/* Every noted window key with its figures as of the latest event time. */
static int dump_windows(struct replay *r, struct dg_state *st, const char *path)
{
    FILE *f = fopen(path, "wb");
    struct dg_hslot **v = dg_xcalloc(r->dump->n + 1, sizeof(*v));
    size_t n = 0;
    dg_arena a;
    int rc = 0;

    if (!f) {
        dg_cmd_error("replay", "cannot write '%s': %s", path, strerror(errno));
        free(v);
        return -1;
    }
    dg_arena_init(&a, 4096);
    for (size_t i = 0; i < r->dump->cap; i++)
        if (r->dump->slots[i].hash)
            v[n++] = &r->dump->slots[i];
    qsort(v, n, sizeof(*v), cmp_keys);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct dg_window *w = &r->rs->windows[atoi(v[i]->key)];
        const char *key = v[i]->key + 6;
        size_t klen = v[i]->keylen - 6;
        struct dg_win_raw raw;
        dg_buf b = {0};
        if (dg_state_peek(st, w, key, klen, r->max_ts, &a, &raw) == -2) {
            dg_cmd_error("replay", "--dump-windows: %s", st->errstr);
            rc = -1;
            break;
        }
        dg_value val = w->agg->value(&raw);
        dg_buf_puts(&b, "{\"window\":");
        dg_buf_json_str(&b, w->name, strlen(w->name));
        dg_buf_puts(&b, ",\"key\":");
        dg_buf_json_str(&b, key, klen);
        dg_buf_printf(&b, ",\"count\":%lld,\"sum\":%lld,\"max\":%lld,\"min\":%lld,\"distinct\":%lld,"
                          "\"last_ts\":%lld,\"value\":",
                      (long long)raw.count, (long long)raw.sum, (long long)(raw.count ? raw.max : 0),
                      (long long)(raw.count ? raw.min : 0), (long long)raw.distinct,
                      (long long)(raw.has_last ? raw.last_ts : 0));
        if (val.t == DG_T_NONE) {
            dg_buf_puts(&b, "null");
        } else {
            dg_buf tmp = {0};
            dg_value_render(&val, &tmp);
            dg_buf_json_str(&b, tmp.data, tmp.len);
            dg_buf_free(&tmp);
        }
        dg_buf_puts(&b, "}\n");
        fwrite(b.data, 1, b.len, f);
        dg_buf_free(&b);
        dg_arena_reset(&a);
    }
    if (fclose(f) != 0 && rc == 0) {
        dg_cmd_error("replay", "writing '%s': %s", path, strerror(errno));
        rc = -1;
    }
    dg_arena_free(&a);
    free(v);
    return rc;
}

static int emit(void *ud, const struct dg_output *o)
{
    struct replay *r = ud;
    uint64_t line = (uint64_t)(uintptr_t)o->tag;

    if (r->dump && o->event)
        note_keys(r, o->event);
    if (r->paid_by_decision && o->decision) {
        const char *id = NULL;
        size_t idlen = 0;
        if (o->event && o->event->type == DG_EV_WITHDRAWAL) {
            id = o->event->f[DG_F_WITHDRAWAL_ID].u.s;
            idlen = o->event->f[DG_F_WITHDRAWAL_ID].len;
        } else if (o->reject && o->reject->withdrawal_id[0]) {
            id = o->reject->withdrawal_id;
            idlen = strlen(id);
        }
        if (id)
            dg_hmap_put(r->paid_by_decision, id, idlen, (void *)(uintptr_t)(o->action + 1));
    }

    if (o->reject) {
        r->rejects_total++;
        if (r->explain && o->decision)
            r->rejects_shown++; /* explain() shows it */
        if (r->rejects) {
            dg_buf b = {0};
            dg_buf_printf(&b, "{\"line\":%llu,\"reason\":\"%s\",\"field\":", (unsigned long long)line,
                          dg_reject_name(o->reject->code));
            dg_buf_json_str(&b, o->reject->field, strlen(o->reject->field));
            dg_buf_puts(&b, ",\"message\":");
            dg_buf_json_str(&b, o->reject->msg, strlen(o->reject->msg));
            dg_buf_puts(&b, ",\"withdrawal_id\":");
            dg_buf_json_str(&b, o->reject->withdrawal_id, strlen(o->reject->withdrawal_id));
            dg_buf_puts(&b, "}\n");
            fwrite(b.data, 1, b.len, r->rejects);
            dg_buf_free(&b);
        } else if (r->rejects_shown < MAX_STDERR_REJECTS && !(r->explain && o->decision)) {
            r->rejects_shown++;
            fprintf(stderr, "line %llu: rejected (%s): %s%s\n", (unsigned long long)line,
                    dg_reject_name(o->reject->code), o->reject->msg,
                    o->reject->withdrawal_id[0] ? " [withdrawal held]" : "");
        }
    }
    if (r->explain && o->decision && o->action != DG_ALLOW)
        explain(line, o);
    if (o->decision) {
        if (fwrite(o->decision, 1, o->decision_len, r->out) != o->decision_len ||
            putc_unlocked('\n', r->out) == EOF) {
            r->write_error = errno ? errno : EIO;
            return -1;
        }
    }
    return 0;
}

static void show_freeze(void *ud, const char *scope, const char *key, const char *rule_id,
                        const char *reason, int64_t ts, const char *event_id)
{
    char t[32];
    dg_time_format(ts, t);
    fprintf(stderr, "  %s '%s' since %s by %s (event %s): %s\n", scope, key, t, rule_id, event_id,
            reason);
}

static void summary(const struct dg_ruleset *rs, const dg_pipeline *p, struct dg_state *st,
                    const struct replay *r, double secs)
{
    const struct dg_pipeline_stats *s = dg_pipeline_stats(p);
    struct dg_mem_stats ms;
    uint64_t events = 0, rejects = 0;

    memset(&ms, 0, sizeof ms);
    int is_mem = !strcmp(st->ops->name, "memory");
    if (is_mem)
        dg_state_mem_stats(st, &ms);
    for (int t = 0; t < DG_EV_NTYPES; t++)
        events += s->events[t];
    for (int c = 0; c < DG_R_NCODES; c++)
        rejects += s->rejects[c];
    fprintf(stderr, "replay: %llu inputs, %llu events, %llu rejected, %llu duplicates, rules %s\n",
            (unsigned long long)s->inputs, (unsigned long long)events, (unsigned long long)rejects,
            (unsigned long long)s->duplicates, rs->version);
    fprintf(stderr, "events by type:\n");
    for (int t = 0; t < DG_EV_NTYPES; t++)
        fprintf(stderr, "  %-22s %llu\n", dg_event_type_name(t), (unsigned long long)s->events[t]);
    fprintf(stderr, "decisions by action:\n");
    for (int a = 0; a < DG_NACTIONS; a++)
        fprintf(stderr, "  %-22s %llu\n", dg_action_name(a), (unsigned long long)s->actions[a]);
    if (rejects) {
        fprintf(stderr, "rejects by reason:\n");
        for (int c = 0; c < DG_R_NCODES; c++)
            if (s->rejects[c])
                fprintf(stderr, "  %-22s %llu\n", dg_reject_name(c), (unsigned long long)s->rejects[c]);
        if (!r->rejects && r->rejects_total > r->rejects_shown)
            fprintf(stderr, "  (%llu more rejected lines not shown: use --rejects FILE)\n",
                    (unsigned long long)(r->rejects_total - r->rejects_shown));
    }
    fprintf(stderr, "rule hits:\n");
    for (size_t i = 0; i < rs->nrules; i++)
        fprintf(stderr, "  %-34s %-7s %-8s %llu\n", rs->rules[i].id,
                dg_action_name(rs->rules[i].action),
                rs->rules[i].mode == DG_SHADOW ? "shadow" : "enforce",
                (unsigned long long)s->hits[i]);
    if (s->frozen_holds)
        fprintf(stderr, "  %-34s %-7s %-8s %llu\n", DG_RULE_FROZEN, "hold", "enforce",
                (unsigned long long)s->frozen_holds);
    if (is_mem) {
        fprintf(stderr, "freezes in force: %zu\n", ms.freezes);
        dg_state_mem_freezes(st, show_freeze, NULL);
    }
    fprintf(stderr, "freeze actions: %llu; late events: %llu\n",
            (unsigned long long)s->freezes_placed, (unsigned long long)s->late);
    if (is_mem)
        fprintf(stderr, "state: %zu window keys, %zu remembered event ids, %zu expired keys\n",
                ms.keys, ms.dedupe, ms.expired_keys);
    else
        fprintf(stderr, "state: %s\n", st->ops->name);
    fprintf(stderr, "time: %.3f s, %.0f events/s, peak RSS %ld KiB\n", secs,
            secs > 0 ? (double)s->inputs / secs : 0.0, dg_peak_rss_kib());
}

int dg_cmd_replay(int argc, char **argv)
{
    const char *rules[64], *input = NULL, *output = NULL, *rejects = NULL;
    const char *state_kind = "memory", *redis_addr = "127.0.0.1:6379", *redis_prefix = "dg:";
    const char *dump_path = NULL;
    const char *sign_file = NULL, *sign_env = NULL, *sign_id = NULL;
    dg_signer *signer = NULL;
    int follow = 0;
    size_t nrules = 0, batch = 0; /* 0: the state's default */
    int64_t dedupe = 24LL * 3600 * 1000, lateness = 3600LL * 1000;
    int quiet = 0, rc = 1;
    struct dg_diag diag = {0};
    struct replay r = {0};
    FILE *in = NULL;
    struct lines lin = {0};
    char *line;
    size_t len;
    char err[300];

    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = dg_opt(argc, argv, &i, "--rules"))) {
            if (nrules == DG_ARRAY_LEN(rules)) {
                dg_cmd_error("replay", "too many --rules");
                return 2;
            }
            rules[nrules++] = v;
        } else if ((v = dg_opt(argc, argv, &i, "--input")))
            input = v;
        else if ((v = dg_opt(argc, argv, &i, "--output")))
            output = v;
        else if ((v = dg_opt(argc, argv, &i, "--rejects")))
            rejects = v;
        else if ((v = dg_opt(argc, argv, &i, "--batch"))) {
            char *end;
            long b = strtol(v, &end, 10);
            if (*end || b < 1 || b > 65536) {
                dg_cmd_error("replay", "--batch: expected a number from 1 to 65536, got '%s'", v);
                return 2;
            }
            batch = (size_t)b;
        } else if ((v = dg_opt(argc, argv, &i, "--dedupe-window")))
            dedupe = dg_opt_duration("--dedupe-window", v);
        else if ((v = dg_opt(argc, argv, &i, "--lateness")))
            lateness = dg_opt_duration("--lateness", v);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (!strcmp(argv[i], "--explain"))
            r.explain = 1;
        else if ((v = dg_opt(argc, argv, &i, "--state")))
            state_kind = v;
        else if ((v = dg_opt(argc, argv, &i, "--redis")))
            redis_addr = v;
        else if ((v = dg_opt(argc, argv, &i, "--redis-prefix")))
            redis_prefix = v;
        else if ((v = dg_opt(argc, argv, &i, "--dump-windows")))
            dump_path = v;
        else if (!strcmp(argv[i], "--payouts-follow-decisions"))
            follow = 1;
        else if ((v = dg_opt(argc, argv, &i, "--sign-key-file")))
            sign_file = v;
        else if ((v = dg_opt(argc, argv, &i, "--sign-key-env")))
            sign_env = v;
        else if ((v = dg_opt(argc, argv, &i, "--sign-key-id")))
            sign_id = v;
        else {
            dg_cmd_error("replay", "unknown option '%s' (see drainguard replay --help)", argv[i]);
            return 2;
        }
    }
    if (strcmp(state_kind, "memory") && strcmp(state_kind, "redis")) {
        dg_cmd_error("replay", "--state: expected memory or redis, got '%s'", state_kind);
        return 2;
    }
    if (!nrules || !input || !output) {
        dg_cmd_error("replay", "--rules, --input and --output are required (see --help)");
        return 2;
    }
    signer = dg_signer_open(sign_id, sign_file, sign_env, err, sizeof err);
    if (!signer && err[0]) {
        dg_cmd_error("replay", "%s", err);
        return 2;
    }

    struct dg_ruleset *rs = dg_ruleset_load(rules, nrules, &diag);
    for (size_t i = 0; i < diag.n; i++)
        if (!rs || !quiet)
            fprintf(stderr, "%s\n", diag.lines[i]);
    if (!rs) {
        dg_cmd_error("replay", "rule set has %d error%s; nothing replayed", diag.errors,
                     diag.errors == 1 ? "" : "s");
        goto out_diag;
    }
    in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in) {
        dg_cmd_error("replay", "cannot read '%s': %s", input, strerror(errno));
        goto out_rules;
    }
    r.out = strcmp(output, "-") ? fopen(output, "wb") : stdout;
    if (!r.out) {
        dg_cmd_error("replay", "cannot write '%s': %s", output, strerror(errno));
        goto out_in;
    }
    if (rejects && !(r.rejects = fopen(rejects, "wb"))) {
        dg_cmd_error("replay", "cannot write '%s': %s", rejects, strerror(errno));
        goto out_out;
    }
    static char outbuf[1 << 20];
    setvbuf(r.out, outbuf, _IOFBF, sizeof outbuf);

    struct dg_state *st;
    if (!strcmp(state_kind, "redis")) {
        struct dg_redis_opts ro = {0};
        char host[256], rerr[300];
        if (!strncmp(redis_addr, "unix:", 5)) {
            ro.unix_path = redis_addr + 5;
        } else {
            const char *colon = strrchr(redis_addr, ':');
            snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - redis_addr) : (int)strlen(redis_addr),
                     redis_addr);
            ro.host = host;
            ro.port = colon ? atoi(colon + 1) : 6379;
        }
        ro.password = getenv("DG_REDIS_PASSWORD");
        ro.user = getenv("DG_REDIS_USER");
        ro.prefix = redis_prefix;
        ro.dedupe_ms = dedupe;
        ro.lateness_ms = lateness;
        st = dg_state_redis_new(&ro, rerr, sizeof rerr);
        if (!st) {
            dg_cmd_error("replay", "%s", rerr);
            goto out_rejects;
        }
    } else {
        st = dg_state_mem_new(dedupe, lateness);
    }
    dg_hmap dump;
    r.rs = rs;
    r.max_ts = INT64_MIN;
    if (dump_path) {
        dg_hmap_init(&dump);
        r.dump = &dump;
        dg_arena_init(&r.dump_arena, 4096);
    }
    /* Memory state gains nothing from big batches and loses cache: a batch's
     * decoded events, plans and decisions stay in L2 at 64. Redis saves a
     * round trip per event batched. */
    if (!batch)
        batch = strcmp(state_kind, "redis") ? 64 : 512;
    dg_pipeline *p = dg_pipeline_new(rs, st, batch, 0);
    if (signer && !quiet)
        fprintf(stderr, "replay: signing decisions with key id '%s' (%zu-byte key)\n",
                dg_signer_kid(signer), dg_signer_keylen(signer));
    dg_pipeline_set_signer(p, signer); /* the pipeline owns it now */
    signer = NULL;
    dg_hmap paid;
    if (follow) {
        dg_hmap_init(&paid);
        r.paid_by_decision = &paid;
        r.peek = dg_decoder_new(NULL, 0);
    }
    struct heap_thp thp;
    heap_thp_init(&thp);
    double t0 = dg_now_seconds();
    int failed = 0;

    lin.fd = fileno(in);
    while ((line = next_line(&lin, &len))) {
        r.line++;
        if (!(r.line & 4095))
            heap_thp_update(&thp);
        if (len && line[len - 1] == '\r')
            len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == len)
            continue; /* blank lines are allowed between events */
        if (follow) {
            int u = unpaid_outflow(&r, line, len, dg_pipeline_pending(p));
            if (u < 0) { /* its request may be in this very batch: decide it first */
                if (dg_pipeline_flush(p, emit, &r, err, sizeof err) != 0) {
                    failed = 1;
                    break;
                }
                u = unpaid_outflow(&r, line, len, 0);
            }
            if (u > 0) {
                r.unpaid++;
                continue;
            }
        }
        if (dg_pipeline_push(p, line, len, (void *)(uintptr_t)r.line) >= batch &&
            dg_pipeline_flush(p, emit, &r, err, sizeof err) != 0) {
            failed = 1;
            break;
        }
    }
    if (!failed && lin.err) {
        dg_cmd_error("replay", "reading '%s': %s", input, strerror(lin.err));
        failed = 1;
    }
    if (!failed && dg_pipeline_flush(p, emit, &r, err, sizeof err) != 0)
        failed = 1;
    if (fflush(r.out) != 0 && !r.write_error)
        r.write_error = errno;
    if (r.write_error) {
        dg_cmd_error("replay", "writing '%s': %s", output, strerror(r.write_error));
        failed = 1;
    } else if (failed && err[0] && !lin.err) {
        dg_cmd_error("replay", "%s", err);
    }
    double secs = dg_now_seconds() - t0;
    if (!quiet)
        summary(rs, p, st, &r, secs);
    if (follow) {
        if (!quiet)
            fprintf(stderr, "payouts follow decisions: %llu outflows dropped (they paid requests not allowed)\n",
                    (unsigned long long)r.unpaid);
        dg_hmap_free(&paid);
        dg_decoder_free(r.peek);
    }
    if (dump_path) {
        if (!failed && dump_windows(&r, st, dump_path) != 0)
            failed = 1;
        dg_hmap_free(&dump);
        dg_arena_free(&r.dump_arena);
    }
    rc = failed ? 1 : 0;
    dg_pipeline_free(p);
    st->ops->destroy(st);
    free(lin.buf);
out_rejects:
    if (r.rejects)
        fclose(r.rejects);
out_out:
    if (r.out != stdout)
        fclose(r.out);
out_in:
    if (in != stdin)
        fclose(in);
out_rules:
    dg_ruleset_free(rs);
out_diag:
    dg_diag_free(&diag);
    dg_signer_free(signer);
    return rc;
}
