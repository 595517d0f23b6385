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

#define field(b, ev, fld, key)                                           \
    do {                                                                 \
        if ((ev)->f[(fld)].t == DG_T_STR)                                \
            key_str((b), key, (ev)->f[(fld)].u.s, (ev)->f[(fld)].len);   \
    } while (0)

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

void dg_decision_encode(const struct dg_ruleset *rs, const struct dg_event *ev,
                        const struct dg_item *it, const struct dg_decision *d,
                        const char *decided_at, dg_buf *b)
{
    const char *type = dg_event_type_name(ev->type);
    int first = 1;

    decision_id(b, it->event_id, it->event_id_len);
    key_str(b, "event_id", it->event_id, it->event_id_len);
    key_str(b, "type", type, strlen(type));
    field(b, ev, DG_F_WITHDRAWAL_ID, "withdrawal_id");
    field(b, ev, DG_F_ACCOUNT_ID, "account_id");
    field(b, ev, DG_F_WALLET_ID, "wallet_id");
    dg_buf_puts(b, ",\"action\":\"");
    dg_buf_puts(b, dg_action_name(d->action));
    dg_buf_putc(b, '"');
    if (d->freezes) {
        dg_buf_puts(b, ",\"freezes\":[");
        for (int s = 0; s < DG_NSCOPES; s++) {
            if (!(d->freezes & (1u << s)))
                continue;
            if (!first)
                dg_buf_putc(b, ',');
            first = 0;
            dg_buf_puts(b, "{\"scope\":\"");
            dg_buf_puts(b, dg_scope_name(s));
            dg_buf_puts(b, "\",\"key\":");
            dg_buf_json_str(b, it->scope_key[s], it->scope_len[s]);
            dg_buf_putc(b, '}');
        }
        dg_buf_putc(b, ']');
    }
    dg_buf_puts(b, ",\"rules\":[");
    for (size_t i = 0; i < d->nm; i++) {
        const struct dg_match *m = &d->m[i];
        if (i)
            dg_buf_putc(b, ',');
        dg_buf_puts(b, "{\"id\":");
        dg_buf_json_str(b, m->id, strlen(m->id));
        dg_buf_puts(b, ",\"action\":\"");
        dg_buf_puts(b, dg_action_name(m->action));
        dg_buf_puts(b, m->mode == DG_SHADOW ? "\",\"mode\":\"shadow\",\"reason\":"
                                            : "\",\"mode\":\"enforce\",\"reason\":");
        dg_buf_json_str(b, m->reason, m->reason_len);
        dg_buf_putc(b, '}');
    }
    dg_buf_puts(b, "]");
    key_str(b, "rules_version", rs->version, strlen(rs->version));
    ts_field(b, ev->ts_raw, ev->ts_raw_len, ev->ts_is_int);
    tail(b, decided_at);
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
