/*
 * reconcile.c - see reconcile.h. An outflow nobody approved must freeze its
 * wallet at once (CoinEx, 2023: stolen hot-wallet keys, no request behind
 * the transfers), so every way an outflow can fail to be paid for is a
 * problem with its own sentence.
 */
#include "reconcile.h"
#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int64_t dg_amount8(double v)
{
    if (isnan(v) || v <= 0)
        return 0;
    if (v >= 9.2e10)
        return (int64_t)9.2e18;
    return dg_round(v * 1e8); /* llround: 0 < v * 1e8 < 9.2e18 */
}

static void put(dg_buf *b, uint64_t v, int bytes)
{
    unsigned char t[8];
    dg_put_le64(t, v);
    dg_buf_append(b, t, (size_t)bytes);
}

static void put_str(dg_buf *b, const char *s, uint32_t n)
{
    put(b, n, 4);
    dg_buf_append(b, s, n);
}

void dg_reqrec_encode(const struct dg_reqrec *r, dg_buf *out)
{
    put(out, 'R', 1);
    put(out, (uint64_t)r->action, 1);
    put(out, (uint64_t)r->paid, 1);
    put(out, (uint64_t)r->ts, 8);
    put(out, (uint64_t)r->amount, 8);
    put_str(out, r->id, r->idlen);
    put_str(out, r->asset, r->assetlen);
    put_str(out, r->dest, r->destlen);
    put_str(out, r->tx ? r->tx : "", r->txlen);
}

static int get(const unsigned char **p, const unsigned char *end, int bytes, uint64_t *v)
{
    if (end - *p < bytes)
        return -1;
    *v = 0;
    for (int i = 0; i < bytes; i++)
        *v |= (uint64_t)(*p)[i] << (8 * i);
    *p += bytes;
    return 0;
}

static int get_str(const unsigned char **p, const unsigned char *end, dg_arena *a,
                   const char **s, uint32_t *n)
{
    uint64_t l;
    if (get(p, end, 4, &l) || (uint64_t)(end - *p) < l)
        return -1;
    *s = dg_arena_strndup(a, (const char *)*p, (size_t)l);
    *n = (uint32_t)l;
    *p += l;
    return 0;
}

int dg_reqrec_decode(struct dg_reqrec *r, const char *buf, size_t len, dg_arena *arena)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    uint64_t tag, action, paid, ts, amount;

    memset(r, 0, sizeof(*r));
    if (get(&p, end, 1, &tag) || tag != 'R' || get(&p, end, 1, &action) || action >= DG_NACTIONS ||
        get(&p, end, 1, &paid) || get(&p, end, 8, &ts) || get(&p, end, 8, &amount) ||
        get_str(&p, end, arena, &r->id, &r->idlen) ||
        get_str(&p, end, arena, &r->asset, &r->assetlen) ||
        get_str(&p, end, arena, &r->dest, &r->destlen) ||
        get_str(&p, end, arena, &r->tx, &r->txlen) || p != end)
        return -1;
    r->action = (int)action;
    r->paid = (int)paid;
    r->ts = (int64_t)ts;
    r->amount = (int64_t)amount;
    return 0;
}

static int same(const char *a, uint32_t al, const dg_value *v)
{
    return v->t == DG_T_STR && v->len == al && !memcmp(a, v->u.s, al);
}

static void amount_text(int64_t a8, char out[40])
{
    dg_number_format((double)(a8 / 100000000) + (double)(a8 % 100000000) / 1e8, out);
}

int dg_reconcile(const struct dg_event *ev, const struct dg_reqrec *const *recs,
                 double tolerance, dg_buf *problem)
{
    const dg_value *dest = &ev->f[DG_F_DEST_ADDRESS], *asset = &ev->f[DG_F_ASSET];
    int64_t sum = 0;
    char a[40], b[40];

    problem->len = 0;
    if (ev->nids == 0) {
        dg_buf_puts(problem, "the transfer names no withdrawal request");
        return 0;
    }
    for (size_t i = 0; i < ev->nids; i++) {
        const struct dg_reqrec *r = recs[i];
        const char *id = ev->ids[i];
        if (!r) {
            dg_buf_printf(problem, "withdrawal '%s' is not a request this engine decided", id);
            return 0;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(ev->ids[j], id)) {
                dg_buf_printf(problem, "withdrawal '%s' is named twice", id);
                return 0;
            }
        if (r->action != DG_ALLOW) {
            dg_buf_printf(problem, "withdrawal '%s' was not allowed (its decision: %s)", id,
                          dg_action_name(r->action));
            return 0;
        }
        if (r->paid) {
            dg_buf_printf(problem, "withdrawal '%s' was already paid by '%.*s'", id, (int)r->txlen,
                          r->tx ? r->tx : "");
            return 0;
        }
        if (!same(r->dest, r->destlen, dest)) {
            dg_buf_printf(problem, "withdrawal '%s' goes to '%.*s', this transfer to '%.*s'", id,
                          (int)r->destlen, r->dest, (int)dest->len, dest->u.s);
            return 0;
        }
        if (!same(r->asset, r->assetlen, asset)) {
            dg_buf_printf(problem, "withdrawal '%s' is in %.*s, this transfer in %.*s", id,
                          (int)r->assetlen, r->asset, (int)asset->len, asset->u.s);
            return 0;
        }
        sum += r->amount;
    }
    int64_t out = dg_amount8(ev->f[DG_F_AMOUNT].u.n);
    double diff = fabs((double)out - (double)sum);
    if (diff > tolerance * (double)sum) {
        amount_text(out, a);
        amount_text(sum, b);
        dg_buf_printf(problem, "the transfer of %s %.*s does not match the %s requested (tolerance %g%%)",
                      a, (int)asset->len, asset->u.s, b, tolerance * 100);
        return 0;
    }
    return 1;
}
