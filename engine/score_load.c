/*
 * score_load.c - `drainguard score`, the reading half: labels, decisions (of
 * the pack and of the baseline) and, optionally, the events, into struct
 * dg_score with every figure computed. Offline, beside the pipeline; it uses
 * cJSON for its input lines (the engine's decoder installs process-wide
 * allocation hooks, which heap-allocate outside dg_decode, so cJSON_Delete
 * is all this file needs).
 *
 * Memory: one record per labelled event, a few per stopped request, freeze
 * and alarmed outflow; legitimate traffic is counted as it streams past, so a
 * million-event day costs a few megabytes. Files are read in this order:
 * labels, decisions (each side), events, because the events pass only needs
 * the few events the decisions made interesting.
 */
#include "score.h"
#include "event.h"
#include "rules.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const known_scenarios[] = {"binance-2019", "coinex-2023", "mixin-2023",
                                              "account-takeover", "structuring"};

/* ---- small helpers ---- */

static void seterr(char *errstr, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *errstr, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, n, fmt, ap);
    va_end(ap);
}

static void *idx_val(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static int val_idx(void *v, size_t *i)
{
    if (!v)
        return 0;
    *i = (size_t)(uintptr_t)v - 1;
    return 1;
}

/* A string member of 1..max bytes, else NULL. */
static const char *str_member(const cJSON *o, const char *name, size_t max)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(m) || !m->valuestring)
        return NULL;
    size_t l = strlen(m->valuestring);
    return l >= 1 && l <= max ? m->valuestring : NULL;
}

/* ts as the contract has it: RFC 3339 text or integer epoch ms. */
static int ts_member(const cJSON *o, int64_t *ms)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "ts");
    if (cJSON_IsString(m) && m->valuestring)
        return dg_time_parse_rfc3339(m->valuestring, strlen(m->valuestring), ms) == 0;
    if (cJSON_IsNumber(m) && m->valuedouble >= -9.0e15 && m->valuedouble <= 9.0e15) {
        *ms = (int64_t)m->valuedouble;
        return 1;
    }
    return 0;
}

void dg_score_counts_add(struct dg_score_counts *c, const char *id, uint64_t n)
{
    size_t len = strlen(id), i;
    if (!c->idx.slots)
        dg_hmap_init_borrowed(&c->idx);
    if (val_idx(dg_hmap_get(&c->idx, id, len), &i)) {
        c->v[i].n += n;
        return;
    }
    if (c->n >= DG_SCORE_MAX_RULES)
        return; /* a hostile file cannot grow a table without bound */
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = dg_xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n].id = dg_xstrdup(id);
    c->v[c->n].n = n;
    dg_hmap_put(&c->idx, c->v[c->n].id, len, idx_val(c->n));
    c->n++;
}

static void counts_free(struct dg_score_counts *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].id);
    free(c->v);
    if (c->idx.slots)
        dg_hmap_free(&c->idx);
    memset(c, 0, sizeof *c);
}

static int cmp_count(const void *a, const void *b)
{
    const struct dg_score_count *x = *(struct dg_score_count *const *)a;
    const struct dg_score_count *y = *(struct dg_score_count *const *)b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->id, y->id);
}

struct dg_score_count **dg_score_counts_sorted(const struct dg_score_counts *c)
{
    struct dg_score_count **v = dg_xcalloc(c->n + 1, sizeof *v);
    for (size_t i = 0; i < c->n; i++)
        v[i] = &c->v[i];
    qsort(v, c->n, sizeof *v, cmp_count);
    return v;
}

/* ---- reading JSON Lines ---- */

struct reader {
    const char *path;
    FILE *f;
    char *line;                   /* DG_SCORE_MAX_LINE + 2 bytes */
    uint64_t lineno;
};

/* Next non-blank line: 1 and *o parsed (NULL when not a JSON object or longer
 * than DG_SCORE_MAX_LINE, whose rest is skipped unread into memory), 0 at the
 * end, -1 on a read error. */
static int next_line(struct reader *r, cJSON **o, size_t *len_out)
{
    for (;;) {
        errno = 0;
        if (!fgets(r->line, DG_SCORE_MAX_LINE + 2, r->f))
            return ferror(r->f) ? -1 : 0;
        r->lineno++;
        size_t len = strlen(r->line);
        int too_long = 0;
        if (len > DG_SCORE_MAX_LINE && r->line[len - 1] != '\n') {
            int c;
            too_long = 1;
            while ((c = getc(r->f)) != EOF && c != '\n')
                ;
        }
        while (len && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r'))
            len--;
        size_t k = 0;
        while (k < len && (r->line[k] == ' ' || r->line[k] == '\t'))
            k++;
        if (k == len && !too_long)
            continue;
        *len_out = len;
        *o = NULL;
        if (!too_long) {
            cJSON *j = cJSON_ParseWithLength(r->line, len);
            if (j && cJSON_IsObject(j))
                *o = j;
            else
                cJSON_Delete(j);
        }
        return 1;
    }
}

static int reader_open(struct reader *r, const char *path, char *errstr, size_t n)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "r");
    if (!r->f) {
        seterr(errstr, n, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    r->line = dg_xmalloc(DG_SCORE_MAX_LINE + 2);
    return 0;
}

static void reader_close(struct reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->line);
    r->f = NULL;
    r->line = NULL;
}

/* ---- the model ---- */

struct alarm {                    /* a legitimate outflow that got hold/freeze */
    char *event_id;
    unsigned char alarmed[DG_SCORE_SIDES], collateral[DG_SCORE_SIDES], excused[DG_SCORE_SIDES];
    int seen;                     /* met in the events file */
};

struct loader {
    struct dg_score *s;
    dg_hmap by_id;                   /* labelled event_id -> ev index (borrowed keys) */
    dg_hmap stopped[DG_SCORE_SIDES]; /* withdrawal_id -> action, requests not allowed */
    dg_hmap placer[DG_SCORE_SIDES];  /* "scope\x1fkey" -> 1 attack, 2 legitimate: who froze it first */
    dg_hmap alarms;                  /* event_id -> struct alarm (borrowed keys) */
    struct alarm **alarmv;
    size_t nalarm, alarmcap;
};

static int scenario_index(struct dg_score *s, const char *name)
{
    for (size_t i = 0; i < s->nscn; i++)
        if (!strcmp(s->scn[i].name, name))
            return (int)i;
    if (s->nscn >= DG_SCORE_MAX_SCENARIOS)
        return -1;
    s->scn[s->nscn].name = dg_xstrdup(name);
    s->scn[s->nscn].value_type = DG_EV_WITHDRAWAL;
    return (int)s->nscn++;
}

static int load_labels(struct loader *L, const char *path, char *errstr, size_t n)
{
    struct dg_score *s = L->s;
    struct reader r;
    cJSON *o;
    size_t len;
    int rc;

    if (reader_open(&r, path, errstr, n))
        return -1;
    while ((rc = next_line(&r, &o, &len)) == 1) {
        const char *id = o ? str_member(o, "event_id", DG_SCORE_MAX_NAME) : NULL;
        const char *scn = o ? str_member(o, "scenario", DG_SCORE_MAX_NAME) : NULL;
        const char *ph = o ? str_member(o, "phase", 16) : "";
        int phase = !ph ? -1 : !strcmp(ph, "prepare") ? DG_PHASE_PREPARE
                             : !strcmp(ph, "attack")  ? DG_PHASE_ATTACK
                             : !strcmp(ph, "outflow") ? DG_PHASE_OUTFLOW : -1;
        if (!id || !scn || phase < 0) {
            seterr(errstr, n, "%s:%llu: a label needs event_id, scenario and phase "
                              "(prepare, attack or outflow)", path, (unsigned long long)r.lineno);
            goto out_fail;
        }
        if (dg_hmap_get(&L->by_id, id, strlen(id))) {
            seterr(errstr, n, "%s:%llu: event '%s' is labelled twice", path,
                   (unsigned long long)r.lineno, id);
            goto out_fail;
        }
        int si = scenario_index(s, scn);
        if (si < 0) {
            seterr(errstr, n, "%s:%llu: more than %d scenarios", path, (unsigned long long)r.lineno,
                   DG_SCORE_MAX_SCENARIOS);
            goto out_fail;
        }
        if (s->nev == s->evcap) {
            s->evcap = s->evcap ? 2 * s->evcap : 256;
            s->ev = dg_xrealloc(s->ev, s->evcap * sizeof *s->ev);
        }
        struct dg_score_event *e = &s->ev[s->nev];
        memset(e, 0, sizeof *e);
        e->event_id = dg_xstrdup(id);
        e->scenario = si;
        e->phase = phase;
        e->type = -1;
        e->seq = UINT64_MAX;
        for (int k = 0; k < DG_SCORE_SIDES; k++)
            e->action[k] = -1;
        dg_hmap_put(&L->by_id, e->event_id, strlen(e->event_id), idx_val(s->nev));
        s->nev++;
        cJSON_Delete(o);
    }
    if (rc < 0) {
        seterr(errstr, n, "cannot read '%s': %s", path, strerror(errno));
        goto out_close;
    }
    reader_close(&r);
    return 0;
out_fail:
    cJSON_Delete(o);
out_close:
    reader_close(&r);
    return -1;
}

/* The decision's freezes as "scope\x1fkey" strings; at most 16 looked at. */
#define MAX_FREEZES 16
static size_t freeze_keys(const cJSON *d, char keys[MAX_FREEZES][DG_SCORE_MAX_NAME * 2 + 16],
                          int wallet[MAX_FREEZES])
{
    const cJSON *fz = cJSON_GetObjectItemCaseSensitive(d, "freezes"), *f;
    size_t n = 0;
    cJSON_ArrayForEach(f, fz) {
        const char *scope = str_member(f, "scope", 16);
        const char *key = str_member(f, "key", DG_SCORE_MAX_NAME * 2);
        if (!scope || !key || n == MAX_FREEZES)
            continue;
        snprintf(keys[n], sizeof keys[n], "%s\x1f%s", scope, key);
        wallet[n] = !strcmp(scope, "wallet");
        n++;
    }
    return n;
}

static void note_legit_wallet(struct dg_score_legit *lg, const char *key)
{
    const char *w = strchr(key, '\x1f') + 1;
    lg->frozen_wallets = dg_xrealloc(lg->frozen_wallets, (lg->nfrozen + 1) * sizeof(char *));
    lg->frozen_wallets[lg->nfrozen++] = dg_xstrdup(w);
}

static struct alarm *alarm_get(struct loader *L, const char *event_id)
{
    struct alarm *a = dg_hmap_get(&L->alarms, event_id, strlen(event_id));
    if (a)
        return a;
    a = dg_xcalloc(1, sizeof *a);
    a->event_id = dg_xstrdup(event_id);
    dg_hmap_put(&L->alarms, a->event_id, strlen(a->event_id), a);
    if (L->nalarm == L->alarmcap) {
        L->alarmcap = L->alarmcap ? 2 * L->alarmcap : 64;
        L->alarmv = dg_xrealloc(L->alarmv, L->alarmcap * sizeof *L->alarmv);
    }
    L->alarmv[L->nalarm++] = a;
    return a;
}

static int load_decisions(struct loader *L, int side, const char *path, char *errstr, size_t n)
{
    struct dg_score *s = L->s;
    struct dg_score_legit *lg = &s->legit[side];
    struct reader r;
    cJSON *o;
    size_t len;
    int rc;

    if (reader_open(&r, path, errstr, n))
        return -1;
    while ((rc = next_line(&r, &o, &len)) == 1) {
        const char *id = o ? str_member(o, "event_id", DG_SCORE_MAX_NAME) : NULL;
        const char *act = o ? str_member(o, "action", 16) : NULL;
        int action = act ? dg_action_lookup(act, strlen(act)) : -1;
        if (!id || action < 0) {
            seterr(errstr, n, "%s:%llu: not a decision (needs event_id and action)", path,
                   (unsigned long long)r.lineno);
            goto out_fail;
        }
        s->n_decisions[side]++;
        const char *tname = str_member(o, "type", 64);
        int type = tname ? dg_event_type_lookup(tname, strlen(tname)) : -1;
        const char *wid = str_member(o, "withdrawal_id", DG_SCORE_MAX_NAME);
        size_t ei = 0;
        int attack = val_idx(dg_hmap_get(&L->by_id, id, strlen(id)), &ei);

        char fkeys[MAX_FREEZES][DG_SCORE_MAX_NAME * 2 + 16];
        int fwallet[MAX_FREEZES];
        size_t nf = freeze_keys(o, fkeys, fwallet);

        /* Collateral: stopped only because a scope an attack froze is still
         * frozen (the rules themselves did not object to this event). */
        int only_frozen = action != DG_ALLOW, behind_attack = nf > 0;
        int own = DG_ALLOW; /* what the enforced rules alone asked for */
        int frozen_hit = 0;
        const cJSON *rules = cJSON_GetObjectItemCaseSensitive(o, "rules"), *ru;
        cJSON_ArrayForEach(ru, rules) {
            const char *rid = str_member(ru, "id", DG_SCORE_MAX_NAME);
            const char *mode = str_member(ru, "mode", 16);
            const char *ract = str_member(ru, "action", 16);
            if (!rid)
                continue;
            int shadow = mode && !strcmp(mode, "shadow");
            int ra = ract ? dg_action_lookup(ract, strlen(ract)) : -1;
            char tag[DG_SCORE_MAX_NAME + 16];
            snprintf(tag, sizeof tag, "%s%s", rid, shadow ? " (shadow)" : "");
            if (!shadow && ra != DG_ALLOW && strcmp(rid, "dg:frozen-scope")) {
                only_frozen = 0;
                if (ra > own)
                    own = ra;
            }
            if (attack) {
                struct dg_score_result *res = &s->scn[s->ev[ei].scenario].res[side];
                dg_score_counts_add(shadow ? &res->shadow : &res->rules, rid, 1);
                dg_score_counts_add(&s->attack_hits[side], tag, 1);
            } else {
                dg_score_counts_add(&lg->hits, tag, 1);
                if (action != DG_ALLOW && !shadow && ra > DG_ALLOW) {
                    if (!strcmp(rid, "dg:frozen-scope"))
                        frozen_hit = 1; /* counted below, unless an attack's freeze */
                    else
                        dg_score_counts_add(&lg->fp_rules, rid, 1);
                }
            }
        }
        for (size_t k = 0; k < nf; k++) {
            void *p = dg_hmap_get(&L->placer[side], fkeys[k], strlen(fkeys[k]));
            if ((uintptr_t)p != 1)
                behind_attack = 0;
        }
        int collateral = only_frozen && behind_attack;
        /* held behind an attack's freeze, though its own rules asked only
         * for a review: the freeze is not a false positive, the review is */
        int masked_review = behind_attack && !only_frozen && action >= DG_HOLD && own == DG_REVIEW;
        /* a hold behind an attack's freeze is not a false positive's rule */
        if (frozen_hit && !collateral && !masked_review)
            dg_score_counts_add(&lg->fp_rules, "dg:frozen-scope", 1);

        /* who placed each freeze first (decisions come in event order) */
        if (action == DG_FREEZE)
            for (size_t k = 0; k < nf; k++)
                if (!dg_hmap_get(&L->placer[side], fkeys[k], strlen(fkeys[k]))) {
                    dg_hmap_put(&L->placer[side], fkeys[k], strlen(fkeys[k]),
                                (void *)(uintptr_t)(attack ? 1 : 2));
                    if (!attack && fwallet[k])
                        note_legit_wallet(lg, fkeys[k]);
                }

        if (type == DG_EV_WITHDRAWAL && wid && action != DG_ALLOW)
            dg_hmap_put(&L->stopped[side], wid, strlen(wid), (void *)(uintptr_t)(action + 1));

        if (attack) {
            struct dg_score_event *e = &s->ev[ei];
            e->action[side] = (signed char)action;
            if (e->type < 0)
                e->type = type;
            if (!e->has_ts && ts_member(o, &e->ts))
                e->has_ts = 1;
            if (side == 0 && e->seq == UINT64_MAX)
                e->seq = r.lineno;
        } else if (type == DG_EV_WITHDRAWAL) {
            lg->requests++;
            if (action == DG_REVIEW) {
                lg->review++;
                lg->review_collateral += (uint64_t)collateral;
            } else if (action >= DG_HOLD) {
                lg->holdfreeze++;
                lg->holdfreeze_collateral += (uint64_t)(collateral || masked_review);
                lg->review_masked += (uint64_t)masked_review;
            }
        } else if (type == DG_EV_OUTFLOW) {
            lg->outflows++;
            if (action >= DG_HOLD) {
                lg->outflow_alarms++;
                struct alarm *a = alarm_get(L, id);
                a->alarmed[side] = 1;
                a->collateral[side] = (unsigned char)collateral;
            }
        }
        cJSON_Delete(o);
    }
    if (rc < 0) {
        seterr(errstr, n, "cannot read '%s': %s", path, strerror(errno));
        goto out_close;
    }
    reader_close(&r);
    return 0;
out_fail:
    cJSON_Delete(o);
out_close:
    reader_close(&r);
    return -1;
}

static void check_alarm(struct loader *L, struct alarm *a, const cJSON *o)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "withdrawal_ids"), *w;
    int k = 0;
    a->seen = 1;
    cJSON_ArrayForEach(w, ids) {
        if (k++ >= DG_MAX_WITHDRAWAL_IDS)
            break;
        if (!cJSON_IsString(w) || !w->valuestring)
            continue;
        for (int side = 0; side < L->s->nsides; side++)
            if (a->alarmed[side] && dg_hmap_get(&L->stopped[side], w->valuestring, strlen(w->valuestring)))
                a->excused[side] = 1;
    }
}

static int load_events(struct loader *L, const char *path, char *errstr, size_t n)
{
    struct dg_score *s = L->s;
    struct reader r;
    cJSON *o;
    size_t len;
    int rc;

    if (reader_open(&r, path, errstr, n))
        return -1;
    while ((rc = next_line(&r, &o, &len)) == 1) {
        s->n_events++;
        const char *id = o ? str_member(o, "event_id", DG_SCORE_MAX_NAME) : NULL;
        if (!id) {
            s->n_bad_events++; /* the replay rejected it too; nothing to score */
            cJSON_Delete(o);
            continue;
        }
        size_t ei = 0;
        if (val_idx(dg_hmap_get(&L->by_id, id, strlen(id)), &ei)) {
            struct dg_score_event *e = &s->ev[ei];
            const char *tname = str_member(o, "type", 64);
            const cJSON *usd = cJSON_GetObjectItemCaseSensitive(o, "amount_usd");
            if (tname)
                e->type = dg_event_type_lookup(tname, strlen(tname));
            if (cJSON_IsNumber(usd) && usd->valuedouble >= 0 && usd->valuedouble < 1e15) {
                e->usd = usd->valuedouble;
                e->has_usd = 1;
            }
            e->has_ts = ts_member(o, &e->ts);
            e->seq = r.lineno;
        }
        struct alarm *a = L->nalarm ? dg_hmap_get(&L->alarms, id, strlen(id)) : NULL;
        if (a)
            check_alarm(L, a, o);
        cJSON_Delete(o);
    }
    if (rc < 0) {
        seterr(errstr, n, "cannot read '%s': %s", path, strerror(errno));
        reader_close(&r);
        return -1;
    }
    reader_close(&r);
    return 0;
}

/* ---- figures ---- */

static const struct dg_score *sort_ctx;
static int cmp_ev(const void *a, const void *b)
{
    const struct dg_score_event *x = &sort_ctx->ev[*(const size_t *)a];
    const struct dg_score_event *y = &sort_ctx->ev[*(const size_t *)b];
    if (x->has_ts && y->has_ts && x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return strcmp(x->event_id, y->event_id);
}

static void compute(struct dg_score *s)
{
    for (size_t i = 0; i < s->nev; i++) {
        struct dg_score_scenario *c = &s->scn[s->ev[i].scenario];
        if (c->nev == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 16;
            c->ev = dg_xrealloc(c->ev, c->cap * sizeof *c->ev);
        }
        c->ev[c->nev++] = i;
    }
    for (size_t si = 0; si < s->nscn; si++) {
        struct dg_score_scenario *c = &s->scn[si];
        sort_ctx = s;
        if (c->nev)
            qsort(c->ev, c->nev, sizeof *c->ev, cmp_ev);
        int has_requests = 0;
        for (size_t k = 0; k < c->nev; k++)
            has_requests |= s->ev[c->ev[k]].type == DG_EV_WITHDRAWAL;
        /* Request-based attacks are worth their requests (their outflows
         * follow from them); an attack with no request is worth its outflows. */
        c->value_type = has_requests ? DG_EV_WITHDRAWAL : DG_EV_OUTFLOW;
        int start_phase = -1;
        for (size_t k = 0; k < c->nev; k++) {
            const struct dg_score_event *e = &s->ev[c->ev[k]];
            if (e->phase != DG_PHASE_PREPARE)
                c->attack_events++;
            if (e->type == c->value_type) {
                c->value_events++;
                c->usd_total += e->usd;
            }
            /* the start: first attack-phase event, else first outflow-phase one */
            int rank = e->phase == DG_PHASE_ATTACK ? 2 : e->phase == DG_PHASE_OUTFLOW ? 1 : 0;
            if (rank > start_phase && rank > 0 && e->has_ts) {
                start_phase = rank;
                c->start_ts = e->ts;
                c->has_start = 1;
            }
        }
        for (int side = 0; side < s->nsides; side++) {
            struct dg_score_result *res = &c->res[side];
            uint64_t k_attack = 0;
            for (size_t k = 0; k < c->nev; k++) {
                const struct dg_score_event *e = &s->ev[c->ev[k]];
                int stopped = e->action[side] > 0;
                int value = e->type == c->value_type;
                if ((value || e->type == DG_EV_OUTFLOW) && e->action[side] < 0)
                    s->missing_decisions[side]++;
                if (e->phase != DG_PHASE_PREPARE) {
                    k_attack++;
                    if (stopped && !res->has_stop) {
                        res->has_stop = res->detected = 1;
                        res->events_to_stop = k_attack;
                        res->stop_ts = e->ts;
                        res->stop_after_ms = c->has_start && e->has_ts ? e->ts - c->start_ts : 0;
                    }
                }
                if (value && stopped)
                    res->usd_stopped += e->usd;
                if (value && !stopped && !res->has_stop)
                    res->usd_before_stop += e->usd;
            }
        }
    }
}

/* ---- target checks, shared by every output ---- */

double dg_score_pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

double dg_score_stopped_pct(const struct dg_score *s, size_t scn, int side)
{
    const struct dg_score_scenario *c = &s->scn[scn];
    if (!s->have_events || c->usd_total <= 0)
        return -1;
    return 100.0 * c->res[side].usd_stopped / c->usd_total;
}

int dg_score_scenario_met(const struct dg_score *s, size_t scn, int side)
{
    double p = dg_score_stopped_pct(s, scn, side);
    return s->scn[scn].res[side].detected && p >= DG_SCORE_TARGET_STOPPED_PCT;
}

uint64_t dg_score_fp_holdfreeze(const struct dg_score *s, int side)
{
    const struct dg_score_legit *lg = &s->legit[side];
    return lg->holdfreeze - lg->holdfreeze_collateral;
}

uint64_t dg_score_fp_review(const struct dg_score *s, int side)
{
    const struct dg_score_legit *lg = &s->legit[side];
    return lg->review - lg->review_collateral + lg->review_masked;
}

uint64_t dg_score_fp_outflows(const struct dg_score *s, int side)
{
    const struct dg_score_legit *lg = &s->legit[side];
    return lg->outflow_alarms - lg->outflow_excused - lg->outflow_collateral;
}

int dg_score_legit_met(const struct dg_score *s, int side)
{
    const struct dg_score_legit *lg = &s->legit[side];
    return dg_score_pct(dg_score_fp_holdfreeze(s, side), lg->requests) <= DG_SCORE_TARGET_HOLDFREEZE_PCT &&
           dg_score_pct(dg_score_fp_review(s, side), lg->requests) <= DG_SCORE_TARGET_REVIEW_PCT &&
           s->have_events && dg_score_fp_outflows(s, side) == 0;
}

int dg_score_all_met(const struct dg_score *s, int side)
{
    for (size_t i = 0; i < s->nscn; i++)
        if (!dg_score_scenario_met(s, i, side))
            return 0;
    return dg_score_legit_met(s, side);
}

/* ---- load / free ---- */

struct dg_score *dg_score_load(const struct dg_score_opts *o, char *errstr, size_t errstr_size)
{
    struct dg_score *s = dg_xcalloc(1, sizeof *s);
    struct loader L = {.s = s};

    s->nsides = o->decisions[1] ? 2 : 1;
    s->side_name[0] = "default";
    s->side_name[1] = "baseline";
    s->path_labels = dg_xstrdup(o->labels);
    s->path_events = o->events ? dg_xstrdup(o->events) : NULL;
    s->have_events = o->events != NULL;
    /* the known scenarios first, in the order, even when absent from
     * the labels: a scenario the generator forgot is a missing row, not a pass */
    for (size_t i = 0; i < DG_ARRAY_LEN(known_scenarios); i++)
        scenario_index(s, known_scenarios[i]);
    dg_hmap_init_borrowed(&L.by_id);
    dg_hmap_init_borrowed(&L.alarms);
    for (int k = 0; k < DG_SCORE_SIDES; k++) {
        dg_hmap_init(&L.stopped[k]);
        dg_hmap_init(&L.placer[k]);
    }

    if (load_labels(&L, o->labels, errstr, errstr_size))
        goto out_fail;
    for (int k = 0; k < s->nsides; k++) {
        s->path_decisions[k] = dg_xstrdup(o->decisions[k]);
        if (load_decisions(&L, k, o->decisions[k], errstr, errstr_size))
            goto out_fail;
    }
    if (o->events && load_events(&L, o->events, errstr, errstr_size))
        goto out_fail;
    for (size_t i = 0; i < L.nalarm; i++) {
        struct alarm *a = L.alarmv[i];
        for (int k = 0; k < s->nsides; k++) {
            if (!a->alarmed[k])
                continue;
            if (!a->seen)
                s->legit[k].outflow_unchecked++;
            else if (a->excused[k])
                s->legit[k].outflow_excused++;
            else if (a->collateral[k])
                s->legit[k].outflow_collateral++;
        }
    }
    compute(s);
    goto out_free_loader;

out_fail:
    dg_score_free(s);
    s = NULL;
out_free_loader:
    for (size_t i = 0; i < L.nalarm; i++) {
        free(L.alarmv[i]->event_id);
        free(L.alarmv[i]);
    }
    free(L.alarmv);
    dg_hmap_free(&L.alarms);
    dg_hmap_free(&L.by_id);
    for (int k = 0; k < DG_SCORE_SIDES; k++) {
        dg_hmap_free(&L.stopped[k]);
        dg_hmap_free(&L.placer[k]);
    }
    return s;
}

void dg_score_free(struct dg_score *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nev; i++)
        free(s->ev[i].event_id);
    free(s->ev);
    for (size_t i = 0; i < s->nscn; i++) {
        free(s->scn[i].name);
        free(s->scn[i].ev);
        for (int k = 0; k < DG_SCORE_SIDES; k++) {
            counts_free(&s->scn[i].res[k].rules);
            counts_free(&s->scn[i].res[k].shadow);
        }
    }
    for (int k = 0; k < DG_SCORE_SIDES; k++) {
        struct dg_score_legit *lg = &s->legit[k];
        for (size_t i = 0; i < lg->nfrozen; i++)
            free(lg->frozen_wallets[i]);
        free(lg->frozen_wallets);
        counts_free(&lg->fp_rules);
        counts_free(&lg->hits);
        counts_free(&s->attack_hits[k]);
        free(s->path_decisions[k]);
    }
    free(s->path_labels);
    free(s->path_events);
    free(s);
}
