/*
 * pipeline.c - see pipeline.h. Each batch slot has its own decoder, so the
 * events of a batch stay alive together while the state backend applies
 * them in one go (one Redis round trip per batch, not per event).
 */
#include "pipeline.h"
#include "detect.h"
#include "hmap.h"
#include "reconcile.h"
#include "sign.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* attempts at a batch that keeps losing races to other instances */
#define MAX_CONFLICT_RETRIES 32

struct slot {
    dg_decoder *dec;
    struct dg_event ev;
    struct dg_reject rej;
    int valid;
    void *tag;
    int item;          /* index into items[] when valid */
    dg_buf out;        /* the decision text, when made here */
    int has_decision;
    int action;
    int duplicate;
    int judged;        /* d holds this batch's decision */
    struct dg_decision d;
    char fallback_id[40]; /* for a reject without a usable event_id */
};

struct placed {
    int scope;
    const char *key;
    uint32_t len;
};

/* What plan() does for an event type, worked out once per rule set. */
/* One window an event type touches, with what plan() needs of it. */
struct tstep {
    const struct dg_window *w;
    const dg_expr *filter;  /* NULL: every event of the type */
    struct dg_ref field;    /* the aggregated field (kind 0: none) */
    uint16_t win;
    int16_t keysrc;         /* an earlier step keyed by the same fields (its
                               key is reused), or -1 */
    uint8_t read;           /* rules of the type read the window */
    uint8_t adds;           /* the type is one the window counts */
    uint8_t numeric;        /* sum, max or min: the field must be a number */
    uint8_t distinct;       /* the value's hash is needed */
};

struct tplan {
    struct tstep *steps;    /* rs->touch[type], in order */
    size_t nsteps;
    int8_t scope_field[DG_NSCOPES]; /* dg_scope_field() */
};

struct dg_pipeline {
    const struct dg_ruleset *rs;
    struct tplan tplan[DG_EV_NTYPES];
    struct dg_state *st;
    size_t cap, n;
    struct slot *slots;
    struct dg_item *items;
    size_t nitems;
    dg_arena arena;         /* per batch: plans, keys, reasons */
    dg_value *win;          /* window values of the item being judged */
    struct placed *placed;  /* freezes placed earlier in this batch */
    size_t nplaced;
    dg_index reqov;         /* withdrawal_id -> dg_reqrec decided or paid
                               earlier in this batch */
    dg_buf problem;
    int decided_at;
    char decided_at_buf[32];
    const char *dat;        /* the batch's decided_at, or NULL */
    int sent;               /* a commit was sent, its outcome not read */
    uint64_t rnd;           /* for the conflict backoff */
    int64_t max_future_ms;
    dg_signer *signer;      /* owned; NULL: decisions are not signed */
    struct dg_pipeline_stats stats;
};

static void make_decoders(dg_pipeline *p)
{
    for (size_t i = 0; i < p->cap; i++) {
        dg_decoder_free(p->slots[i].dec);
        p->slots[i].dec = dg_decoder_new((const char *const *)p->rs->extra, p->rs->nextra);
    }
}

static void make_plans(dg_pipeline *p)
{
    const struct dg_ruleset *rs = p->rs;
    for (int t = 0; t < DG_EV_NTYPES; t++) {
        struct tplan *tp = &p->tplan[t];
        free(tp->steps);
        tp->nsteps = rs->ntouch[t];
        tp->steps = dg_xcalloc(tp->nsteps + 1, sizeof(*tp->steps));
        for (size_t i = 0; i < tp->nsteps; i++) {
            struct tstep *st = &tp->steps[i];
            const struct dg_window *w = &rs->windows[rs->touch[t][i]];
            st->w = w;
            st->win = rs->touch[t][i];
            st->filter = w->filter;
            st->field = w->field;
            st->read = rs->reads[t][st->win];
            st->adds = (w->on_mask & DG_EV_BIT(t)) != 0;
            st->numeric = (w->agg->need & (DG_NEED_SUM | DG_NEED_MAX | DG_NEED_MIN)) != 0;
            st->distinct = (w->agg->need & DG_NEED_DISTINCT) != 0;
            st->keysrc = -1;
            for (size_t j = 0; j < i; j++)
                if (rs->windows[rs->touch[t][j]].keyset_hash == w->keyset_hash) {
                    st->keysrc = (int16_t)j;
                    break;
                }
        }
        for (int sc = 0; sc < DG_NSCOPES; sc++)
            tp->scope_field[sc] = (int8_t)(sc == DG_SCOPE_GLOBAL ? -1 : dg_scope_field(sc, t));
    }
}

dg_pipeline *dg_pipeline_new(const struct dg_ruleset *rs, struct dg_state *st, size_t batch,
                             int decided_at)
{
    dg_pipeline *p = dg_xcalloc(1, sizeof(*p));
    p->rs = rs;
    p->st = st;
    p->cap = batch ? batch : 1;
    p->slots = dg_xcalloc(p->cap, sizeof(*p->slots));
    p->items = dg_xcalloc(p->cap, sizeof(*p->items));
    p->placed = dg_xcalloc(p->cap * DG_NSCOPES, sizeof(*p->placed));
    p->decided_at = decided_at;
    p->rnd = (uint64_t)(uintptr_t)p ^ (uint64_t)time(NULL);
    dg_arena_init(&p->arena, 64 * 1024);
    dg_index_init(&p->reqov);
    make_decoders(p);
    make_plans(p);
    p->win = dg_xcalloc(rs->nwindows + 1, sizeof(*p->win));
    p->stats.hits = dg_xcalloc(rs->nrules + 1, sizeof(uint64_t));
    return p;
}

void dg_pipeline_free(dg_pipeline *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->cap; i++) {
        dg_decoder_free(p->slots[i].dec);
        dg_buf_free(&p->slots[i].out);
    }
    free(p->slots);
    free(p->items);
    free(p->placed);
    free(p->win);
    free(p->stats.hits);
    dg_arena_free(&p->arena);
    dg_index_free(&p->reqov);
    for (int t = 0; t < DG_EV_NTYPES; t++)
        free(p->tplan[t].steps);
    dg_buf_free(&p->problem);
    dg_signer_free(p->signer);
    free(p);
}

int dg_pipeline_set_rules(dg_pipeline *p, const struct dg_ruleset *rs)
{
    if (p->n)
        return -1;
    p->rs = rs;
    make_decoders(p);
    make_plans(p);
    free(p->win);
    p->win = dg_xcalloc(rs->nwindows + 1, sizeof(*p->win));
    free(p->stats.hits);
    p->stats.hits = dg_xcalloc(rs->nrules + 1, sizeof(uint64_t));
    return 0;
}

void dg_pipeline_discard(dg_pipeline *p)
{
    dg_pipeline_abandon(p); /* its outcome does not matter: nothing is emitted */
    p->n = 0;
    p->nitems = 0;
    dg_arena_reset(&p->arena);
}

size_t dg_pipeline_pending(const dg_pipeline *p)
{
    return p->n;
}

const struct dg_pipeline_stats *dg_pipeline_stats(const dg_pipeline *p)
{
    return &p->stats;
}

static dg_value field_value(const struct dg_ref *r, const struct dg_event *ev)
{
    if (r->kind == DG_REF_FIELD)
        return ev->f[r->index];
    if (r->kind == DG_REF_EXTRA)
        return ev->extra[r->index];
    return dg_none();
}

/* The plan of one valid event: its window ops and scope keys. Windows
 * keyed by the same fields share one key (and the state backend sees the
 * same pointer, which it may use to share a lookup). */
static void plan(dg_pipeline *p, struct slot *s, struct dg_item *it)
{
    const struct dg_ruleset *rs = p->rs;
    const struct dg_event *ev = &s->ev;
    int t = ev->type;
    const struct tplan *tp = &p->tplan[t];
    struct dg_eval_ctx cx = {ev, NULL, rs->listv};
    size_t nt = tp->nsteps;
    const char **keys = nt ? dg_arena_alloc(&p->arena, nt * sizeof(*keys)) : NULL;
    uint32_t *klens = nt ? dg_arena_alloc(&p->arena, nt * sizeof(*klens)) : NULL;

    memset(it, 0, sizeof(*it));
    it->event_id = ev->f[DG_F_EVENT_ID].u.s;
    it->event_id_len = ev->f[DG_F_EVENT_ID].len;
    it->ts = ev->ts_ms;
    it->decidable = 1;
    it->ops = nt ? dg_arena_alloc(&p->arena, nt * sizeof(*it->ops)) : NULL;
    for (size_t i = 0; i < nt; i++) {
        const struct tstep *st = &tp->steps[i];
        struct dg_winop *op = &it->ops[it->nops];
        if (st->keysrc >= 0) {
            keys[i] = keys[st->keysrc];
            klens[i] = klens[st->keysrc];
        } else {
            keys[i] = dg_window_key(st->w, ev, &p->arena, &klens[i]);
        }
        if (!keys[i])
            continue; /* no key: not counted, and reads as missing */
        /* every input field; raw is the backend's to fill */
        op->win = st->win;
        op->add = 0;
        op->read = st->read;
        op->key = keys[i];
        op->keylen = klens[i];
        op->fp = 0;
        op->vhash = 0;
        op->val = dg_none();
        op->raw.self = 0;
        if (st->adds) {
            dg_value v = st->field.kind ? field_value(&st->field, ev) : dg_none();
            int ok = !st->field.kind || v.t != DG_T_NONE;
            if (ok && st->numeric)
                ok = v.t == DG_T_NUM; /* event.x that is not a number */
            if (ok && st->filter)
                ok = dg_expr_true(st->filter, &cx);
            if (ok) {
                op->add = 1;
                op->val = v;
                if (v.t == DG_T_NUM)
                    op->fp = dg_fixed(v.u.n);
                if (st->distinct)
                    op->vhash = dg_value_hash(&v);
            }
        }
        if (op->add || op->read)
            it->nops++;
    }
    if (t == DG_EV_WITHDRAWAL) {
        it->own_id = ev->f[DG_F_WITHDRAWAL_ID].u.s; /* NUL-terminated */
        it->req_ids = &it->own_id;
        it->nreq_ids = 1;
    } else if (t == DG_EV_OUTFLOW) {
        it->req_ids = ev->ids;
        it->nreq_ids = ev->nids;
    }
    for (int sc = 0; sc < DG_NSCOPES; sc++) {
        if (sc == DG_SCOPE_GLOBAL) {
            it->scope_key[sc] = "*";
            it->scope_len[sc] = 1;
            continue;
        }
        int f = tp->scope_field[sc];
        if (f >= 0 && ev->f[f].t == DG_T_STR) {
            it->scope_key[sc] = ev->f[f].u.s;
            it->scope_len[sc] = ev->f[f].len;
        }
    }
}

void dg_pipeline_set_max_future(dg_pipeline *p, int64_t max_future_ms)
{
    p->max_future_ms = max_future_ms;
}

void dg_pipeline_set_signer(dg_pipeline *p, struct dg_signer *signer)
{
    dg_signer_free(p->signer);
    p->signer = signer;
}

/* The signature becomes part of the decision's bytes before anything stores
 * or publishes them. An unsignable decision is never published unsigned:
 * stop before the batch is committed, and a restart decides it again. */
static void sign(dg_pipeline *p, dg_buf *out)
{
    if (p->signer && dg_signer_sign(p->signer, out) != 0) {
        fprintf(stderr, "drainguard: cannot sign a decision (libcrypto failed); stopping\n");
        abort();
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_field(char *dst, size_t sz, const dg_value *v)
{
    size_t n = v->t == DG_T_STR && v->len < sz ? v->len : 0;
    memcpy(dst, n ? v->u.s : "", n);
    dst[n] = '\0';
}

/* A valid event stamped too far ahead of the clock becomes a reject. */
static int too_far_ahead(dg_pipeline *p, struct slot *s)
{
    const struct dg_event *ev = &s->ev;
    struct dg_reject *rej = &s->rej;
    char ahead[32], limit[32];
    int64_t now;

    if (!p->max_future_ms || ev->ts_ms <= (now = wall_ms()) + p->max_future_ms)
        return 0;
    memset(rej, 0, sizeof(*rej));
    rej->code = DG_R_BAD_VALUE;
    snprintf(rej->field, sizeof rej->field, "ts");
    dg_duration_format((ev->ts_ms - now) / 1000 * 1000, ahead);
    dg_duration_format(p->max_future_ms, limit);
    snprintf(rej->msg, sizeof rej->msg,
             "field 'ts': %s ahead of this engine's clock (at most %s allowed)", ahead, limit);
    copy_field(rej->event_id, sizeof rej->event_id, &ev->f[DG_F_EVENT_ID]);
    copy_field(rej->withdrawal_id, sizeof rej->withdrawal_id, &ev->f[DG_F_WITHDRAWAL_ID]);
    copy_field(rej->account_id, sizeof rej->account_id, &ev->f[DG_F_ACCOUNT_ID]);
    snprintf(rej->type, sizeof rej->type, "%s", dg_event_type_name(ev->type));
    snprintf(rej->ts_raw, sizeof rej->ts_raw, "%.*s", (int)(ev->ts_raw_len < 63 ? ev->ts_raw_len : 63),
             ev->ts_raw);
    rej->ts_is_int = ev->ts_is_int;
    return 1;
}

size_t dg_pipeline_push(dg_pipeline *p, const char *buf, size_t len, void *tag)
{
    struct slot *s = &p->slots[p->n];

    s->tag = tag;
    s->judged = 0;
    s->has_decision = 0;
    s->duplicate = 0;
    s->out.len = 0;
    p->stats.inputs++;
    if (dg_decode(s->dec, buf, len, &s->ev, &s->rej) == 0 && !too_far_ahead(p, s)) {
        s->valid = 1;
        s->item = (int)p->nitems;
        plan(p, s, &p->items[p->nitems++]);
        p->stats.events[s->ev.type]++;
    } else {
        /* fail closed: an invalid input that names a withdrawal is held
         * (the decision is written at flush, with decided_at) */
        s->valid = 0;
        p->stats.rejects[s->rej.code]++;
        dg_reject_fallback_id(buf, len, s->fallback_id);
        if (s->rej.withdrawal_id[0]) {
            s->has_decision = 1;
            s->action = DG_HOLD;
        }
    }
    return ++p->n;
}

/* Placed earlier in this batch already? (A wallet frozen by one outflow
 * is frozen again by the next: the list keeps each scope key once, so
 * frozen_in_batch() stays short.) */
static int placed_before(const dg_pipeline *p, int scope, const char *key, uint32_t len)
{
    for (size_t i = 0; i < p->nplaced; i++)
        if (p->placed[i].scope == scope && p->placed[i].len == len && !memcmp(p->placed[i].key, key, len))
            return 1;
    return 0;
}

static int frozen_in_batch(const dg_pipeline *p, const struct dg_item *it)
{
    uint32_t mask = 0;
    for (size_t i = 0; i < p->nplaced; i++) {
        const struct placed *pl = &p->placed[i];
        if (it->scope_key[pl->scope] && it->scope_len[pl->scope] == pl->len &&
            !memcmp(it->scope_key[pl->scope], pl->key, pl->len))
            mask |= 1u << pl->scope;
    }
    return (int)mask;
}

static void now_rfc3339(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    dg_time_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, out);
}

static struct dg_islot *reqov_find(dg_pipeline *p, uint64_t h, const char *id, size_t len)
{
    size_t mask = p->reqov.cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct dg_islot *s = &p->reqov.slot[i];
        if (!s->h)
            return s;
        if (s->h == h) {
            const struct dg_reqrec *r = s->p;
            if (r->idlen == len && !memcmp(r->id, id, len))
                return s;
        }
    }
}

/* The record of withdrawal id as this batch sees it: decided or paid
 * earlier in the batch, else as the backend had it. */
static const struct dg_reqrec *req_lookup(dg_pipeline *p, const struct dg_item *it, size_t k)
{
    const char *id = it->req_ids[k];
    size_t len = strlen(id);
    const struct dg_islot *s = p->reqov.n ? reqov_find(p, dg_index_hash(id, len, 0), id, len) : NULL;
    return s && s->h ? s->p : it->reqs ? it->reqs[k] : NULL;
}

/* Note a record this batch writes (its id lives as long as the batch). */
static struct dg_reqrec *req_write(dg_pipeline *p, struct dg_item *it, const struct dg_reqrec *from)
{
    struct dg_reqrec *r = dg_arena_alloc(&p->arena, sizeof(*r));
    *r = *from;
    uint64_t h = dg_index_hash(r->id, r->idlen, 0);
    struct dg_islot *s = reqov_find(p, h, r->id, r->idlen);
    if (s->h)
        s->p = r;
    else
        dg_index_insert(&p->reqov, s, h, r);
    if (!it->writes)
        it->writes = dg_arena_alloc(&p->arena, (it->nreq_ids ? it->nreq_ids : 1) * sizeof(*it->writes));
    it->writes[it->nwrites++] = r;
    return r;
}

/* Before the rules: is this outflow paid for? */
static void reconcile_outflow(dg_pipeline *p, struct slot *s, struct dg_item *it)
{
    struct dg_event *ev = &s->ev;
    const struct dg_reqrec **recs = dg_arena_alloc(&p->arena, (ev->nids + 1) * sizeof(*recs));
    for (size_t k = 0; k < ev->nids; k++)
        recs[k] = req_lookup(p, it, k);
    int ok = dg_reconcile(ev, recs, p->rs->outflow_tolerance, &p->problem);
    ev->f[DG_F_RECONCILED] = dg_bool(ok);
    ev->f[DG_F_RECONCILE_PROBLEM] =
        ok ? dg_none() : dg_str(dg_arena_strndup(&p->arena, p->problem.data, p->problem.len), p->problem.len);
    /* whatever the verdict, the requests it names are paid now: a second
     * transfer for them is a problem of its own */
    for (size_t k = 0; k < ev->nids; k++) {
        if (!recs[k] || recs[k]->paid)
            continue;
        struct dg_reqrec *r = req_write(p, it, recs[k]);
        r->paid = 1;
        r->tx = ev->f[DG_F_TX_HASH].u.s;
        r->txlen = ev->f[DG_F_TX_HASH].len;
    }
}

/* After the rules: remember the request and its decision. A withdrawal_id
 * seen before keeps its payment (so reusing an id cannot pay twice). */
static void remember_request(dg_pipeline *p, struct slot *s, struct dg_item *it, int action)
{
    const struct dg_event *ev = &s->ev;
    const struct dg_reqrec *old = req_lookup(p, it, 0);
    struct dg_reqrec r = {0};
    r.id = ev->f[DG_F_WITHDRAWAL_ID].u.s;
    r.idlen = ev->f[DG_F_WITHDRAWAL_ID].len;
    r.action = action;
    r.paid = old ? old->paid : 0;
    r.tx = old ? old->tx : NULL;
    r.txlen = old ? old->txlen : 0;
    r.asset = ev->f[DG_F_ASSET].u.s;
    r.assetlen = ev->f[DG_F_ASSET].len;
    r.dest = ev->f[DG_F_DEST_ADDRESS].u.s;
    r.destlen = ev->f[DG_F_DEST_ADDRESS].len;
    r.amount = dg_amount8(ev->f[DG_F_AMOUNT].u.n);
    r.ts = ev->ts_ms;
    req_write(p, it, &r);
}

/* Judge one new event and encode its decision into its slot. */
static void judge(dg_pipeline *p, struct slot *s, struct dg_item *it, const char *decided_at)
{
    const struct dg_ruleset *rs = p->rs;
    struct dg_decision *d = &s->d;

    s->judged = 1;
    s->has_decision = 0; /* a retried batch judges again from scratch */
    for (size_t o = 0; o < it->nops; o++)
        if (it->ops[o].read)
            p->win[it->ops[o].win] = rs->windows[it->ops[o].win].agg->value(&it->ops[o].raw);
    it->frozen |= (uint32_t)frozen_in_batch(p, it);
    it->writes = NULL;
    it->nwrites = 0;
    if (s->ev.type == DG_EV_OUTFLOW)
        reconcile_outflow(p, s, it);
    dg_detect(rs, &s->ev, p->win, it, &p->arena, d);
    if (s->ev.type == DG_EV_WITHDRAWAL)
        remember_request(p, s, it, d->action);
    for (size_t o = 0; o < it->nops; o++)
        p->win[it->ops[o].win] = dg_none();

    it->decision = "";
    it->decision_len = 0;
    if (!d->decide)
        return;
    s->out.len = 0;
    dg_decision_encode(rs, &s->ev, it, d, decided_at, &s->out);
    sign(p, &s->out);
    s->has_decision = 1;
    s->action = d->action;
    it->decision = s->out.data;
    it->decision_len = s->out.len;
    it->freeze = d->placed;
    if (d->placed) {
        for (size_t m = 0; m < d->nm; m++)
            if (d->m[m].rule >= 0 && d->m[m].action == DG_FREEZE && d->m[m].mode == DG_ENFORCE) {
                it->freeze_info.rule_id = d->m[m].id;
                it->freeze_info.reason = d->m[m].reason;
                break;
            }
        for (int sc = 0; sc < DG_NSCOPES; sc++)
            if ((d->placed & (1u << sc)) && !placed_before(p, sc, it->scope_key[sc], it->scope_len[sc])) {
                struct placed *pl = &p->placed[p->nplaced++];
                pl->scope = sc;
                pl->key = it->scope_key[sc];
                pl->len = it->scope_len[sc];
            }
    }
}

/* Duplicates get the stored decision, or the one an earlier copy in this
 * batch got. */
static void copy_duplicate(dg_pipeline *p, size_t i)
{
    struct slot *s = &p->slots[i];
    struct dg_item *it = &p->items[s->item];

    s->duplicate = 1;
    s->has_decision = 0;
    if (it->stored) {
        s->out.len = 0;
        if (it->stored_len)
            dg_buf_append(&s->out, it->stored, it->stored_len);
        s->has_decision = it->stored_len > 0;
    } else {
        /* the latest earlier copy's (there may be two when the first was
         * past the dedupe window) */
        for (size_t j = i; j-- > 0;) {
            struct slot *o = &p->slots[j];
            if (o->valid && !p->items[o->item].dup &&
                p->items[o->item].event_id_len == it->event_id_len &&
                !memcmp(p->items[o->item].event_id, it->event_id, it->event_id_len)) {
                s->out.len = 0;
                if (o->has_decision)
                    dg_buf_append(&s->out, o->out.data, o->out.len);
                s->has_decision = o->has_decision;
                break;
            }
        }
    }
    if (s->has_decision) {
        /* recover the action from the stored text for the counters */
        const char *a = strstr(s->out.data, "\"action\":\"");
        s->action = a ? dg_action_lookup(a + 10, strcspn(a + 10, "\"")) : DG_HOLD;
        if (s->action < 0)
            s->action = DG_HOLD;
    }
}

/* Apply, judge and commit the pending batch once (send: only start the
 * commit, where the backend can): 0, or -1 with st->err. */
static int decide(dg_pipeline *p, const char *dat, int send)
{
    if (p->nitems && p->st->ops->apply(p->st, p->rs, p->items, p->nitems, &p->arena) != 0)
        return -1;
    p->nplaced = 0;
    dg_index_clear(&p->reqov); /* what earlier batches or attempts noted */
    for (size_t i = 0; i < p->n; i++) {
        struct slot *s = &p->slots[i];
        if (!s->valid)
            continue;
        s->judged = 0;
        s->duplicate = 0;
        if (p->items[s->item].dup)
            copy_duplicate(p, i);
        else
            judge(p, s, &p->items[s->item], dat);
    }
    if (!p->nitems)
        return 0;
    if (send && p->st->ops->commit_send) {
        p->sent = 1;
        return p->st->ops->commit_send(p->st, p->items, p->nitems);
    }
    return p->st->ops->commit(p->st, p->items, p->nitems);
}

static void count(dg_pipeline *p, const struct slot *s)
{
    if (s->has_decision)
        p->stats.actions[s->action]++;
    if (s->duplicate)
        p->stats.duplicates++;
    if (!s->judged)
        return;
    if (p->items[s->item].late)
        p->stats.late++;
    for (size_t m = 0; m < s->d.nm; m++)
        if (s->d.m[m].rule >= 0)
            p->stats.hits[s->d.m[m].rule]++;
        else
            p->stats.frozen_holds++;
    for (int sc = 0; sc < DG_NSCOPES; sc++)
        if (s->d.placed & (1u << sc))
            p->stats.freezes_placed++;
}

/* After a failed attempt (rc != 0): while it is a conflict, decide again
 * (another instance changed state this batch read, or decided some of its
 * events: nothing was written, nothing was emitted). */
static int retry(dg_pipeline *p, int rc, char *errstr, size_t errsz)
{
    for (int attempt = 0; rc != 0; attempt++) {
        if (p->st->err != DG_STATE_CONFLICT || attempt >= MAX_CONFLICT_RETRIES) {
            snprintf(errstr, errsz, "%s", p->st->errstr);
            return -1;
        }
        if (attempt >= 2) {
            /* two writers keep changing the same keys: step aside a
             * random while, longer each time, so that one gets through */
            p->rnd = p->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
            long us = (long)((p->rnd >> 33) % (250u << (attempt < 8 ? attempt - 2 : 6)));
            struct timespec ts = {0, us * 1000};
            nanosleep(&ts, NULL);
        }
        rc = decide(p, p->dat, 0);
    }
    return 0;
}

int dg_pipeline_start(dg_pipeline *p, char *errstr, size_t errsz)
{
    p->sent = 0;
    if (!p->n)
        return 0;
    p->dat = NULL;
    if (p->decided_at) {
        now_rfc3339(p->decided_at_buf);
        p->dat = p->decided_at_buf;
    }
    int rc = decide(p, p->dat, 1);
    if (rc == 0)
        return 0;
    p->sent = 0;
    if (p->st->err == DG_STATE_BUSY)
        return 1; /* nothing done: after the batch ahead */
    return retry(p, rc, errstr, errsz);
}

void dg_pipeline_abandon(dg_pipeline *p)
{
    if (p->sent) { /* its outcome does not matter: the batch is decided again */
        p->sent = 0;
        p->st->ops->commit_recv(p->st, p->items, p->nitems);
    }
}

int dg_pipeline_finish(dg_pipeline *p, char *errstr, size_t errsz)
{
    if (!p->sent)
        return 0;
    p->sent = 0;
    return retry(p, p->st->ops->commit_recv(p->st, p->items, p->nitems), errstr, errsz);
}

int dg_pipeline_flush(dg_pipeline *p, dg_emit_fn emit, void *ud, char *errstr, size_t errsz)
{
    if (dg_pipeline_start(p, errstr, errsz) != 0 || dg_pipeline_finish(p, errstr, errsz) != 0)
        return -1;
    return dg_pipeline_emit(p, emit, ud);
}

int dg_pipeline_emit(dg_pipeline *p, dg_emit_fn emit, void *ud)
{
    const char *dat = p->dat;
    int rc = 0;

    if (!p->n)
        return 0;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        struct slot *s = &p->slots[i];
        struct dg_output o = {0};
        if (!s->valid && s->has_decision) {
            s->out.len = 0;
            dg_reject_encode(p->rs, &s->rej, s->fallback_id, dat, &s->out);
            sign(p, &s->out);
        }
        count(p, s);
        o.tag = s->tag;
        o.duplicate = s->duplicate;
        if (s->has_decision) {
            o.decision = s->out.data;
            o.decision_len = s->out.len;
            o.action = s->action;
        }
        if (s->judged)
            o.detail = &s->d;
        if (s->valid) {
            const struct dg_event *ev = &s->ev;
            o.event = ev;
            int kf = ev->f[DG_F_WITHDRAWAL_ID].t == DG_T_STR ? DG_F_WITHDRAWAL_ID
                   : ev->f[DG_F_WALLET_ID].t == DG_T_STR      ? DG_F_WALLET_ID
                                                              : DG_F_EVENT_ID;
            o.key = ev->f[kf].u.s;
            o.key_len = ev->f[kf].len;
        } else {
            o.reject = &s->rej;
            o.key = s->rej.withdrawal_id[0] ? s->rej.withdrawal_id
                  : s->rej.event_id[0]      ? s->rej.event_id
                                            : s->fallback_id;
            o.key_len = strlen(o.key);
        }
        rc = emit ? emit(ud, &o) : 0;
    }
    p->n = 0;
    p->nitems = 0;
    dg_arena_reset(&p->arena);
    return rc;
}
