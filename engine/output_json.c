/*
 * output_json.c - decisions as JSON objects, by the decision contract
 * (shared/spec/decisions.md). Field order is fixed and there is no
 * wall-clock field unless decided_at is given, so a replay is byte-for-byte
 * reproducible. Written by hand: faster than building a cJSON tree and it
 * keeps cJSON inside the decoder.
 */
#include "detect.h"
#include "event.h"

#include <stdio.h>
#include <string.h>

/* ,"key": and a JSON string; the key is a literal, so its length is known */
#define key_str(b, key, s, n) key_str_((b), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (s), (n))

static void key_str_(dg_buf *b, const char *prefix, size_t plen, const char *s, size_t n)
{
    dg_buf_append(b, prefix, plen);
    dg_buf_json_str(b, s, n);
}

static void decision_id(dg_buf *b, const char *seed, size_t n)
{
    char hex[33];
    dg_hash128_hex(seed, n, hex);
    dg_buf_puts(b, "{\"decision_id\":\"d-");
    dg_buf_append(b, hex, 32);
    dg_buf_putc(b, '"');
}

static void ts_field(dg_buf *b, const char *raw, size_t len, int is_int)
{
    dg_buf_puts(b, ",\"ts\":");
    if (is_int)
        dg_buf_append(b, raw, len);
    else
        dg_buf_json_str(b, raw, len);
}

static void tail(dg_buf *b, const char *decided_at)
{
    if (decided_at)
        key_str(b, "decided_at", decided_at, strlen(decided_at));
    dg_buf_putc(b, '}');
}

/* Literal text at p (the caller sized the output). */
#define put_lit(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

static char *put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* ,"key": and a JSON string, at p */
#define put_key_str(p, key, s, n) (put_lit((p), ",\"" key "\":"), (p) = dg_json_str_put((p), (s), (n)))

/* One decision per decided event, so this is on the hot path: the output's
 * size is bounded first (every string at its most escaped), reserved once,
 * and written without further checks. */
void dg_decision_encode(const struct dg_ruleset *rs, const struct dg_event *ev,
                        const struct dg_item *it, const struct dg_decision *d,
                        const char *decided_at, dg_buf *b)
{
    static const int idf[3] = {DG_F_WITHDRAWAL_ID, DG_F_ACCOUNT_ID, DG_F_WALLET_ID};
    const char *type = dg_event_type_name(ev->type);
    const char *action = dg_action_name(d->action);
    size_t typelen = strlen(type), vlen = strlen(rs->version);
    size_t dalen = decided_at ? strlen(decided_at) : 0;
    size_t need = 256 + DG_JSON_STR_MAX(it->event_id_len) + DG_JSON_STR_MAX(typelen) +
                  strlen(action) + DG_JSON_STR_MAX(vlen) + DG_JSON_STR_MAX(ev->ts_raw_len) +
                  DG_JSON_STR_MAX(dalen);
    char hex[33];
    int first = 1;

    for (int k = 0; k < 3; k++)
        if (ev->f[idf[k]].t == DG_T_STR)
            need += 32 + DG_JSON_STR_MAX(ev->f[idf[k]].len);
    for (int s = 0; s < DG_NSCOPES; s++)
        if (d->freezes & (1u << s))
            need += 64 + DG_JSON_STR_MAX(it->scope_len[s]);
    for (size_t i = 0; i < d->nm; i++)
        need += 96 + DG_JSON_STR_MAX(strlen(d->m[i].id)) + DG_JSON_STR_MAX(d->m[i].reason_len);
    dg_buf_reserve(b, need);

    char *p = b->data + b->len;
    dg_hash128_hex(it->event_id, it->event_id_len, hex);
    put_lit(p, "{\"decision_id\":\"d-");
    p = put_mem(p, hex, 32);
    *p++ = '"';
    put_key_str(p, "event_id", it->event_id, it->event_id_len);
    put_key_str(p, "type", type, typelen);
    if (ev->f[DG_F_WITHDRAWAL_ID].t == DG_T_STR)
        put_key_str(p, "withdrawal_id", ev->f[DG_F_WITHDRAWAL_ID].u.s, ev->f[DG_F_WITHDRAWAL_ID].len);
    if (ev->f[DG_F_ACCOUNT_ID].t == DG_T_STR)
        put_key_str(p, "account_id", ev->f[DG_F_ACCOUNT_ID].u.s, ev->f[DG_F_ACCOUNT_ID].len);
    if (ev->f[DG_F_WALLET_ID].t == DG_T_STR)
        put_key_str(p, "wallet_id", ev->f[DG_F_WALLET_ID].u.s, ev->f[DG_F_WALLET_ID].len);
    put_lit(p, ",\"action\":\"");
    p = put_mem(p, action, strlen(action));
    *p++ = '"';
    if (d->freezes) {
        put_lit(p, ",\"freezes\":[");
        for (int s = 0; s < DG_NSCOPES; s++) {
            if (!(d->freezes & (1u << s)))
                continue;
            if (!first)
                *p++ = ',';
            first = 0;
            put_lit(p, "{\"scope\":\"");
            p = put_mem(p, dg_scope_name(s), strlen(dg_scope_name(s)));
            put_lit(p, "\",\"key\":");
            p = dg_json_str_put(p, it->scope_key[s], it->scope_len[s]);
            *p++ = '}';
        }
        *p++ = ']';
    }
    put_lit(p, ",\"rules\":[");
    for (size_t i = 0; i < d->nm; i++) {
        const struct dg_match *m = &d->m[i];
        const char *ma = dg_action_name(m->action);
        if (i)
            *p++ = ',';
        put_lit(p, "{\"id\":");
        p = dg_json_str_put(p, m->id, strlen(m->id));
        put_lit(p, ",\"action\":\"");
        p = put_mem(p, ma, strlen(ma));
        if (m->mode == DG_SHADOW)
            put_lit(p, "\",\"mode\":\"shadow\",\"reason\":");
        else
            put_lit(p, "\",\"mode\":\"enforce\",\"reason\":");
        p = dg_json_str_put(p, m->reason, m->reason_len);
        *p++ = '}';
    }
    *p++ = ']';
    put_key_str(p, "rules_version", rs->version, vlen);
    put_lit(p, ",\"ts\":");
    if (ev->ts_is_int)
        p = put_mem(p, ev->ts_raw, ev->ts_raw_len);
    else
        p = dg_json_str_put(p, ev->ts_raw, ev->ts_raw_len);
    if (decided_at)
        put_key_str(p, "decided_at", decided_at, dalen);
    *p++ = '}';
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
}

void dg_reject_fallback_id(const char *raw, size_t rawlen, char out[40])
{
    char hex[33];
    dg_hash128_hex(raw, rawlen, hex);
    snprintf(out, 40, "invalid-%.24s", hex);
}

void dg_reject_encode(const struct dg_ruleset *rs, const struct dg_reject *rej,
                      const char *fallback_id, const char *decided_at, dg_buf *b)
{
    const char *eid = rej->event_id[0] ? rej->event_id : fallback_id;
    size_t eidlen = strlen(eid);

    decision_id(b, eid, eidlen);
    key_str(b, "event_id", eid, eidlen);
    key_str(b, "type", rej->type[0] ? rej->type : "invalid",
            strlen(rej->type[0] ? rej->type : "invalid"));
    key_str(b, "withdrawal_id", rej->withdrawal_id, strlen(rej->withdrawal_id));
    if (rej->account_id[0])
        key_str(b, "account_id", rej->account_id, strlen(rej->account_id));
    dg_buf_puts(b, ",\"action\":\"hold\",\"rules\":[{\"id\":\"" DG_RULE_INVALID
                   "\",\"action\":\"hold\",\"mode\":\"enforce\",\"reason\":");
    {
        dg_buf r = {0};
        dg_buf_printf(&r, "invalid event (%s): %s", dg_reject_name(rej->code), rej->msg);
        dg_buf_json_str(b, r.data, r.len);
        dg_buf_free(&r);
    }
    dg_buf_puts(b, "}]");
    key_str(b, "rules_version", rs->version, strlen(rs->version));
    if (rej->ts_raw[0])
        ts_field(b, rej->ts_raw, strlen(rej->ts_raw), rej->ts_is_int);
    else
        dg_buf_puts(b, ",\"ts\":0");
    tail(b, decided_at);
}
