/*
 * fuzz_decode_fields.c - libFuzzer target holding the decoder's fast path
 * (decode_fast.c) against its cJSON path on inputs that are mostly valid
 * events. Plain fuzzing (fuzz_decode.c) seldom gets past the first syntax
 * error, so it mostly tests that the fast path declines what it must; here
 * the input only chooses an event type and the values of its fields, and
 * the target writes the rest of a valid event around them, so what gets
 * explored is what the fast path accepts: numbers, times, amounts, string
 * lengths and bytes, extra fields, duplicates, whitespace.
 *
 * Input: one byte of choices (type, whitespace, how many optional fields,
 * mode), then pieces separated by 0xff. Piece i is the value of the i-th
 * field of the chosen type (then of extra fields, then of any field again,
 * which makes duplicates); a piece whose first byte is odd is the contents
 * of a string, quoted here, otherwise raw JSON text. Fields without a piece
 * get a valid default. In value mode (bit 5) the rest of the input is one
 * text T, tried in otherwise fixed valid events as amount_usd, as amount
 * (raw and quoted), as ts (raw and quoted) and as an extra field: the
 * number, decimal and time conversions. Any difference between the two
 * paths traps.
 */
#include "decode_fast.h"
#include "event.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static dg_decoder *dec, *ref, *dec0, *ref0;

static const char *const extra[] = {"risk_score", "country", "vip", "note", "amount", "vip", ""};

/* names for pieces past the type's own fields */
static const char *const more[] = {
    "risk_score", "country", "vip", "note", "", "zz", "account_XXeated_at", "withdrawal_ids",
    "amount", "ts", "type", "event_id",
};

static const char *default_value(int f)
{
    switch (dg_fields[f].kind) {
    case DG_FK_TIME:
        return "\"2024-01-01T00:00:00.000Z\"";
    case DG_FK_AMOUNT:
        return "\"12.5\"";
    case DG_FK_NUMBER:
        return "100.25";
    case DG_FK_STR_ARRAY:
        return "[\"wd-1\"]";
    default:
        return "\"x-1\"";
    }
}

static void put_piece(dg_buf *b, const uint8_t *p, size_t n)
{
    if (n > 0 && (p[0] & 1)) {
        dg_buf_putc(b, '"');
        dg_buf_append(b, p + 1, n - 1);
        dg_buf_putc(b, '"');
    } else if (n > 0) {
        dg_buf_append(b, p + 1, n - 1);
    }
}

static void check(const dg_buf *b)
{
    char why[512];
    if (dg_decode_compare(dec, ref, b->data, b->len, NULL, why, sizeof why) != 0 ||
        dg_decode_compare(dec0, ref0, b->data, b->len, NULL, why, sizeof why) != 0) {
        fprintf(stderr, "fast and cJSON paths differ: %s\nevent: %.*s\n", why, (int)b->len, b->data);
        __builtin_trap();
    }
}

/* T in each place a number, decimal or time is read. */
static void value_mode(const uint8_t *t, size_t n)
{
    static const char *const tmpl[] = {
        "{\"type\":\"withdrawal.requested\",\"event_id\":\"e\",\"ts\":%s,\"withdrawal_id\":\"w\","
        "\"account_id\":\"a\",\"asset\":\"BTC\",\"chain\":\"bitcoin\",\"amount\":%s,"
        "\"amount_usd\":%s,\"dest_address\":\"d\",\"risk_score\":%s}",
    };
    static const char *const fixed[] = {"\"2024-01-01T00:00:00Z\"", "\"1.5\"", "2.5", "1"};
    for (int slot = 0; slot < 4; slot++) {
        for (int quoted = 0; quoted < 2; quoted++) {
            dg_buf v = {0}, b = {0};
            if (quoted)
                dg_buf_putc(&v, '"');
            dg_buf_append(&v, t, n);
            if (quoted)
                dg_buf_putc(&v, '"');
            dg_buf_putc(&v, '\0');
            const char *arg[4];
            for (int i = 0; i < 4; i++)
                arg[i] = i == slot ? v.data : fixed[i];
            dg_buf_printf(&b, tmpl[0], arg[0], arg[1], arg[2], arg[3]);
            check(&b);
            dg_buf_free(&v);
            dg_buf_free(&b);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fields[DG_F_NKNOWN];
    int nfields = 0;

    if (size < 1)
        return 0;
    if (!dec) {
        dec = dg_decoder_new(extra, sizeof extra / sizeof extra[0]);
        ref = dg_decoder_new(extra, sizeof extra / sizeof extra[0]);
        dec0 = dg_decoder_new(NULL, 0);
        ref0 = dg_decoder_new(NULL, 0);
    }
    if (data[0] & 32) {
        value_mode(data + 1, size - 1);
        return 0;
    }
    int type = data[0] & 3;
    const char *sep = (data[0] & 4) ? " , " : ",";
    const char *colon = (data[0] & 8) ? " : " : ":";
    int optional = (data[0] & 16) != 0;
    for (int f = 0; f < DG_F_NKNOWN; f++)
        if (f != DG_F_TYPE && dg_fields[f].kind != DG_FK_COMPUTED &&
            dg_fields[f].presence[type] != DG_P_ABSENT)
            fields[nfields++] = f;

    dg_buf b = {0};
    const uint8_t *p = data + 1, *end = data + size;
    dg_buf_printf(&b, "{\"type\"%s\"%s\"", colon, dg_event_type_name(type));
    for (int i = 0; p < end || i < nfields; i++) {
        const uint8_t *q = p;
        while (q < end && *q != 0xff)
            q++;
        int have = p < end;
        const char *name;
        if (i < nfields)
            name = dg_fields[fields[i]].name;
        else if (i - nfields < (int)(sizeof more / sizeof more[0]))
            name = more[i - nfields];
        else
            name = dg_fields[(i - nfields) % DG_F_NKNOWN].name;
        if (!have && (i >= nfields || (dg_fields[fields[i]].presence[type] != DG_P_REQUIRED &&
                                       !optional))) {
            continue;
        }
        dg_buf_printf(&b, "%s\"%s\"%s", sep, name, colon);
        if (have)
            put_piece(&b, p, (size_t)(q - p));
        else
            dg_buf_puts(&b, default_value(fields[i]));
        p = q < end ? q + 1 : end;
    }
    dg_buf_putc(&b, '}');
    check(&b);
    dg_buf_free(&b);
    return 0;
}
