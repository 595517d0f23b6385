/*
 * fuzz_decode.c - libFuzzer target for the decoder (decode_event.c,
 * decode_fast.c): every byte of a Kafka message or replay line is hostile.
 * The input goes to dg_decode() as is; a decoder that knows a few extra
 * (non-contract) fields exercises the unknown-field path too. Accepted
 * events are read back field by field so that ASan sees every pointer the
 * decoder hands out. Then the same input goes through dg_decode_compare(),
 * with and without extra fields: the fast path and the cJSON path must
 * agree on everything a caller sees, or the target traps.
 */
#include "decode_fast.h"
#include "event.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static dg_decoder *dec, *ref, *dec0, *ref0;

/* a contract name, a repeated name and "" among them, as rule sets may */
static const char *const extra[] = {"risk_score", "country", "vip", "note", "amount", "vip", ""};

/* Touch every byte a decoded value points at. */
static unsigned touch_value(const dg_value *v)
{
    unsigned h = v->t;
    if (v->t == DG_T_STR)
        for (uint32_t i = 0; i < v->len; i++)
            h = h * 31 + (unsigned char)v->u.s[i];
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dg_event ev;
    struct dg_reject rej;
    volatile unsigned sink = 0;

    if (!dec) {
        dec = dg_decoder_new(extra, sizeof extra / sizeof extra[0]);
        ref = dg_decoder_new(extra, sizeof extra / sizeof extra[0]);
        dec0 = dg_decoder_new(NULL, 0);
        ref0 = dg_decoder_new(NULL, 0);
    }
    if (dg_decode(dec, (const char *)data, size, &ev, &rej) == 0) {
        for (int f = 0; f < DG_F_NKNOWN; f++)
            sink += touch_value(&ev.f[f]);
        for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
            sink += touch_value(&ev.extra[i]);
        for (size_t i = 0; i < ev.nids; i++)
            sink += (unsigned)strlen(ev.ids[i]);
        sink += (unsigned)strlen(ev.ts_raw) + (unsigned)ev.ts_raw_len;
        sink += (unsigned)strlen(dg_event_type_name(ev.type));
    } else {
        /* every string of a reject must be terminated within its array */
        sink += (unsigned)strnlen(rej.field, sizeof rej.field);
        sink += (unsigned)strnlen(rej.msg, sizeof rej.msg);
        sink += (unsigned)strnlen(rej.event_id, sizeof rej.event_id);
        sink += (unsigned)strnlen(rej.withdrawal_id, sizeof rej.withdrawal_id);
        sink += (unsigned)strnlen(rej.account_id, sizeof rej.account_id);
        sink += (unsigned)strnlen(rej.type, sizeof rej.type);
        sink += (unsigned)strnlen(rej.ts_raw, sizeof rej.ts_raw);
        if (rej.code < 0 || rej.code >= DG_R_NCODES)
            __builtin_trap();
        if (strnlen(rej.field, sizeof rej.field) == sizeof rej.field ||
            strnlen(rej.msg, sizeof rej.msg) == sizeof rej.msg ||
            strnlen(rej.withdrawal_id, sizeof rej.withdrawal_id) == sizeof rej.withdrawal_id)
            __builtin_trap();
    }
    (void)sink;

    char why[512];
    if (dg_decode_compare(dec, ref, (const char *)data, size, NULL, why, sizeof why) != 0 ||
        dg_decode_compare(dec0, ref0, (const char *)data, size, NULL, why, sizeof why) != 0) {
        fprintf(stderr, "fast and cJSON paths differ: %s\n", why);
        __builtin_trap();
    }
    return 0;
}
