/*
 * test_decode.c - Check suite for engine/decode_event.c, engine/decode_fast.c
 * and the contract table in engine/event.c: a table of hostile inputs with
 * the reject code, field and salvaged withdrawal_id each must produce, then
 * decoded values for each of the four event types, then the fast path held
 * against the cJSON path (dg_decode_compare) over every case event, the
 * fuzz seeds, bench events when there are any, generated events and their
 * mutations, and hand-written edge cases.
 */
#include <check.h>
#include <dirent.h>
#include <glob.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_fast.h"
#include "event.h"
#include "util.h"

/* A valid withdrawal.requested, in pieces so rows can swap one field. */
#define E_ID "\"event_id\":\"e1\""
#define TS_OK "\"ts\":\"2019-05-07T17:15:24.123Z\""
#define WD_T "\"type\":\"withdrawal.requested\""
#define WD_ID "\"withdrawal_id\":\"w1\""
#define ACC "\"account_id\":\"a1\""
#define WD_MONEY "\"asset\":\"BTC\",\"chain\":\"bitcoin\",\"amount\":\"0.5\",\"amount_usd\":30000"
#define DEST "\"dest_address\":\"bc1qxyz\""
#define WD_ALL E_ID "," WD_T "," TS_OK "," WD_ID "," ACC "," WD_MONEY "," DEST
#define WD_NO_MONEY E_ID "," WD_T "," TS_OK "," WD_ID "," ACC "," DEST ",\"asset\":\"BTC\",\"chain\":\"bitcoin\""
#define WD_NO_TS E_ID "," WD_T "," WD_ID "," ACC "," WD_MONEY "," DEST

#define SEC_ALL E_ID ",\"type\":\"account.security\"," TS_OK "," ACC ",\"action\":\"2fa.reset\""
#define OUT_BASE E_ID ",\"type\":\"wallet.outflow\"," TS_OK ",\"wallet_id\":\"hot-1\",\"chain\":\"ethereum\"," \
    "\"asset\":\"ETH\",\"amount\":2,\"amount_usd\":7000,\"tx_hash\":\"0xabc\",\"dest_address\":\"0xdef\""
#define BAL_BASE E_ID ",\"type\":\"wallet.balance\"," TS_OK ",\"wallet_id\":\"hot-1\",\"chain\":\"tron\",\"asset\":\"USDT\""

struct bad_row {
    const char *name;
    const char *in;
    size_t len;          /* 0: strlen(in) */
    int code;
    const char *field;
    const char *wid;     /* salvaged withdrawal_id, "" when none */
};

static const struct bad_row bad_rows[] = {
    /* whole-input problems */
    {"array", "[1,2]", 0, DG_R_NOT_OBJECT, "", ""},
    {"string", "\"withdrawal\"", 0, DG_R_NOT_OBJECT, "", ""},
    {"number", "42", 0, DG_R_NOT_OBJECT, "", ""},
    {"null", "null", 0, DG_R_NOT_OBJECT, "", ""},
    {"empty", "", 0, DG_R_BAD_JSON, "", ""},
    {"blank", " \n ", 0, DG_R_BAD_JSON, "", ""},
    {"truncated", "{" E_ID ",\"withdrawal_id\":", 0, DG_R_BAD_JSON, "", ""},
    {"trailing garbage", "{" WD_ALL "} x", 0, DG_R_BAD_JSON, "", ""},
    {"two objects", "{" WD_ALL "}{\"a\":1}", 0, DG_R_BAD_JSON, "", ""},
    {"nan literal", "{" WD_NO_MONEY ",\"amount\":NaN,\"amount_usd\":1}", 0, DG_R_BAD_JSON, "", ""},
    {"lone surrogate escape", "{" WD_ALL ",\"x\":\"\\ud800\"}", 0, DG_R_BAD_JSON, "", ""},
    {"bad \\u escape", "{" WD_ALL ",\"x\":\"\\uZZZZ\"}", 0, DG_R_BAD_JSON, "", "w1"},
    {"raw control byte", "{" WD_ALL ",\x01\"x\":1}", 0, DG_R_BAD_JSON, "", "w1"},
    {"raw nul in a value", "{" WD_ALL ",\"dest_tag\":\"a\0b\"}", sizeof("{" WD_ALL ",\"dest_tag\":\"a\0b\"}") - 1,
     DG_R_BAD_JSON, "", "w1"},
    {"raw nul in withdrawal_id", "{\"withdrawal_id\":\"w1\0x\"}", sizeof("{\"withdrawal_id\":\"w1\0x\"}") - 1,
     DG_R_BAD_JSON, "", ""},
    {"invalid utf-8 byte", "{" WD_ALL ",\"ip\":\"\xff\"}", 0, DG_R_BAD_UTF8, "", "w1"},
    {"overlong utf-8", "{" WD_ALL ",\"dest_tag\":\"\xc0\xaf\"}", 0, DG_R_BAD_UTF8, "", "w1"},
    {"surrogate bytes", "{" WD_ALL ",\"dest_tag\":\"\xed\xa0\x80\"}", 0, DG_R_BAD_UTF8, "", "w1"},
    {"bad utf-8 in withdrawal_id", "{\"withdrawal_id\":\"w\xff\"}", 0, DG_R_BAD_UTF8, "", ""},
    {"nesting 9 deep", "{" WD_ALL ",\"meta\":[[[[[[[[1]]]]]]]]}", 0, DG_R_TOO_DEEP, "meta", "w1"},
    {"nesting 9 deep in objects", "{" WD_ALL ",\"m\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{}}}}}}}}}",
     0, DG_R_TOO_DEEP, "m", "w1"},
    /* \u0000 and duplicates: two parsers could read these differently */
    {"nul escape", "{" WD_ALL ",\"dest_tag\":\"a\\u0000b\"}", 0, DG_R_BAD_VALUE, "dest_tag", "w1"},
    {"nul escape in withdrawal_id", "{" E_ID ",\"withdrawal_id\":\"w1\\u0000x\"}", 0, DG_R_BAD_VALUE,
     "withdrawal_id", ""},
    {"nul escape in a key", "{\"withdrawal_id\\u0000x\":\"w2\",\"type\":1}", 0, DG_R_BAD_VALUE,
     "withdrawal_id", ""},
    {"nul escape nested", "{" WD_ALL ",\"meta\":{\"k\":[\"\\u0000\"]}}", 0, DG_R_BAD_VALUE, "meta", "w1"},
    {"duplicate amount", "{" WD_ALL ",\"amount\":\"500\"}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"duplicate withdrawal_id", "{" WD_ALL ",\"withdrawal_id\":\"w2\"}", 0, DG_R_BAD_VALUE, "withdrawal_id", ""},
    /* type */
    {"missing type", "{" E_ID "," TS_OK "," WD_ID "}", 0, DG_R_MISSING_FIELD, "type", "w1"},
    {"null type", "{" E_ID ",\"type\":null," WD_ID "}", 0, DG_R_MISSING_FIELD, "type", "w1"},
    {"type not a string", "{" E_ID ",\"type\":5," WD_ID "}", 0, DG_R_BAD_TYPE, "type", "w1"},
    {"unknown type", "{" E_ID ",\"type\":\"withdrawal\"," WD_ID "}", 0, DG_R_UNKNOWN_TYPE, "type", "w1"},
    {"empty type", "{" E_ID ",\"type\":\"\"," WD_ID "}", 0, DG_R_UNKNOWN_TYPE, "type", "w1"},
    /* missing required fields, every type */
    {"missing event_id", "{" WD_T "," TS_OK "," WD_ID "," ACC "," WD_MONEY "," DEST "}", 0,
     DG_R_MISSING_FIELD, "event_id", "w1"},
    {"missing ts", "{" WD_NO_TS "}", 0, DG_R_MISSING_FIELD, "ts", "w1"},
    {"missing withdrawal_id", "{" E_ID "," WD_T "," TS_OK "," ACC "," WD_MONEY "," DEST "}", 0,
     DG_R_MISSING_FIELD, "withdrawal_id", ""},
    {"null amount_usd", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":null}", 0, DG_R_MISSING_FIELD,
     "amount_usd", "w1"},
    {"missing dest_address", "{" E_ID "," WD_T "," TS_OK "," WD_ID "," ACC "," WD_MONEY "}", 0,
     DG_R_MISSING_FIELD, "dest_address", "w1"},
    {"security missing account_id", "{" E_ID ",\"type\":\"account.security\"," TS_OK ",\"action\":\"login\"}", 0,
     DG_R_MISSING_FIELD, "account_id", ""},
    {"security missing action", "{" E_ID ",\"type\":\"account.security\"," TS_OK "," ACC "}", 0,
     DG_R_MISSING_FIELD, "action", ""},
    {"outflow missing wallet_id", "{" E_ID ",\"type\":\"wallet.outflow\"," TS_OK ",\"chain\":\"c\","
     "\"asset\":\"a\",\"amount\":1,\"amount_usd\":1,\"dest_address\":\"d\",\"tx_hash\":\"t\"}", 0,
     DG_R_MISSING_FIELD, "wallet_id", ""},
    {"outflow missing tx_hash", "{" E_ID ",\"type\":\"wallet.outflow\"," TS_OK ",\"wallet_id\":\"h\","
     "\"chain\":\"c\",\"asset\":\"a\",\"amount\":1,\"amount_usd\":1,\"dest_address\":\"d\"}", 0,
     DG_R_MISSING_FIELD, "tx_hash", ""},
    {"balance missing balance", "{" BAL_BASE ",\"balance_usd\":1}", 0, DG_R_MISSING_FIELD, "balance", ""},
    {"balance missing balance_usd", "{" BAL_BASE ",\"balance\":1}", 0, DG_R_MISSING_FIELD, "balance_usd", ""},
    /* wrong JSON types */
    {"account_id a number", "{" E_ID "," WD_T "," TS_OK "," WD_ID ",\"account_id\":42," WD_MONEY "," DEST "}", 0,
     DG_R_BAD_TYPE, "account_id", "w1"},
    {"amount a boolean", "{" WD_NO_MONEY ",\"amount\":true,\"amount_usd\":1}", 0, DG_R_BAD_TYPE, "amount", "w1"},
    {"amount_usd a string", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":\"abc\"}", 0, DG_R_BAD_TYPE,
     "amount_usd", "w1"},
    {"balance_usd a string", "{" WD_ALL ",\"balance_usd\":\"5\"}", 0, DG_R_BAD_TYPE, "balance_usd", "w1"},
    {"ts a boolean", "{" WD_NO_TS ",\"ts\":true}", 0, DG_R_BAD_TYPE, "ts", "w1"},
    {"withdrawal_ids a string", "{" OUT_BASE ",\"withdrawal_ids\":\"w1\"}", 0, DG_R_BAD_TYPE, "withdrawal_ids", ""},
    {"withdrawal_ids holds a number", "{" OUT_BASE ",\"withdrawal_ids\":[\"w1\",2]}", 0, DG_R_BAD_TYPE,
     "withdrawal_ids", ""},
    {"withdrawal_ids holds null", "{" OUT_BASE ",\"withdrawal_ids\":[null]}", 0, DG_R_BAD_TYPE, "withdrawal_ids", ""},
    {"wallet_id an object", "{" E_ID ",\"type\":\"wallet.balance\"," TS_OK ",\"wallet_id\":{},\"chain\":\"tron\","
     "\"asset\":\"USDT\",\"balance\":1,\"balance_usd\":1}", 0, DG_R_BAD_TYPE, "wallet_id", ""},
    {"duplicate wallet_id", "{" BAL_BASE ",\"wallet_id\":{},\"balance\":1,\"balance_usd\":1}", 0,
     DG_R_BAD_VALUE, "wallet_id", ""}, /* reported before its type */
    /* bad values */
    {"amount negative", "{" WD_NO_MONEY ",\"amount\":-5,\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount zero", "{" WD_NO_MONEY ",\"amount\":0,\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \"0\"", "{" WD_NO_MONEY ",\"amount\":\"0.000\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \"NaN\"", "{" WD_NO_MONEY ",\"amount\":\"NaN\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \"Infinity\"", "{" WD_NO_MONEY ",\"amount\":\"Infinity\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE,
     "amount", "w1"},
    {"amount 1e400", "{" WD_NO_MONEY ",\"amount\":1e400,\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \"1e5\"", "{" WD_NO_MONEY ",\"amount\":\"1e5\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \"-1\"", "{" WD_NO_MONEY ",\"amount\":\"-1\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \" 1\"", "{" WD_NO_MONEY ",\"amount\":\" 1\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \"1.\"", "{" WD_NO_MONEY ",\"amount\":\"1.\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \".5\"", "{" WD_NO_MONEY ",\"amount\":\".5\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount \"\"", "{" WD_NO_MONEY ",\"amount\":\"\",\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "amount", "w1"},
    {"amount_usd negative", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":-1}", 0, DG_R_BAD_VALUE,
     "amount_usd", "w1"},
    {"amount_usd 1e999", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1e999}", 0, DG_R_BAD_VALUE,
     "amount_usd", "w1"},
    {"balance negative string", "{" BAL_BASE ",\"balance\":\"-0.5\",\"balance_usd\":0}", 0, DG_R_BAD_VALUE,
     "balance", ""},
    {"empty withdrawal_id", "{" E_ID "," WD_T "," TS_OK ",\"withdrawal_id\":\"\"," ACC "," WD_MONEY "," DEST "}",
     0, DG_R_BAD_VALUE, "withdrawal_id", ""},
    {"empty asset", "{" E_ID "," WD_T "," TS_OK "," WD_ID "," ACC "," DEST ",\"asset\":\"\",\"chain\":\"c\","
     "\"amount\":1,\"amount_usd\":1}", 0, DG_R_BAD_VALUE, "asset", "w1"},
    {"asset 33 bytes", "{" E_ID "," WD_T "," TS_OK "," WD_ID "," ACC "," DEST ","
     "\"asset\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"chain\":\"c\",\"amount\":1,\"amount_usd\":1}", 0,
     DG_R_TOO_LONG, "asset", "w1"},
    {"ts 30 February", "{" WD_NO_TS ",\"ts\":\"2019-02-30T00:00:00Z\"}", 0, DG_R_BAD_VALUE, "ts", "w1"},
    {"ts without zone", "{" WD_NO_TS ",\"ts\":\"2019-05-07 17:15\"}", 0, DG_R_BAD_VALUE, "ts", "w1"},
    {"ts a float", "{" WD_NO_TS ",\"ts\":1.5}", 0, DG_R_BAD_VALUE, "ts", "w1"},
    {"ts negative", "{" WD_NO_TS ",\"ts\":-1}", 0, DG_R_BAD_VALUE, "ts", "w1"},
    {"ts after 9999", "{" WD_NO_TS ",\"ts\":253402300800000}", 0, DG_R_BAD_VALUE, "ts", "w1"},
    {"ts empty", "{" WD_NO_TS ",\"ts\":\"\"}", 0, DG_R_BAD_VALUE, "ts", "w1"},
    {"account_created_at not a time", "{" WD_ALL ",\"account_created_at\":\"yesterday\"}", 0, DG_R_BAD_VALUE,
     "account_created_at", "w1"},
    {"withdrawal_ids empty id", "{" OUT_BASE ",\"withdrawal_ids\":[\"w1\",\"\"]}", 0, DG_R_BAD_VALUE,
     "withdrawal_ids", ""},
    {"empty action", "{" E_ID ",\"type\":\"account.security\"," TS_OK "," ACC ",\"action\":\"\"}", 0,
     DG_R_BAD_VALUE, "action", ""},
};

static dg_decoder *new_decoder(void)
{
    dg_decoder *d = dg_decoder_new(NULL, 0);
    ck_assert_ptr_nonnull(d);
    return d;
}

START_TEST(bad_input_table)
{
    const struct bad_row *r = &bad_rows[_i];
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;
    size_t len = r->len ? r->len : strlen(r->in);

    /* an exact-size heap copy: ASan sees any read past the end */
    char *buf = malloc(len ? len : 1);
    memcpy(buf, r->in, len);
    memset(&rej, 0x5a, sizeof rej);
    int rc = dg_decode(d, buf, len, &ev, &rej);
    ck_assert_msg(rc == -1, "row '%s': accepted", r->name);
    ck_assert_msg(rej.code == r->code, "row '%s': code %s, want %s (%s)", r->name,
                  dg_reject_name(rej.code), dg_reject_name(r->code), rej.msg);
    ck_assert_msg(strcmp(rej.field, r->field) == 0, "row '%s': field '%s', want '%s' (%s)",
                  r->name, rej.field, r->field, rej.msg);
    ck_assert_msg(strcmp(rej.withdrawal_id, r->wid) == 0, "row '%s': salvaged '%s', want '%s'",
                  r->name, rej.withdrawal_id, r->wid);
    ck_assert_msg(rej.msg[0] != '\0', "row '%s': no message", r->name);
    /* git style: starts lowercase, no trailing period, printable */
    ck_assert_msg(rej.msg[0] >= 'a' && rej.msg[0] <= 'z', "row '%s': msg '%s'", r->name, rej.msg);
    ck_assert(rej.msg[strlen(rej.msg) - 1] != '.');
    for (const char *p = rej.msg; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f, "row '%s': msg byte", r->name);
    if (r->field[0])
        ck_assert_msg(strstr(rej.msg, r->field) != NULL, "row '%s': msg '%s' does not name the field",
                      r->name, rej.msg);
    free(buf);
    dg_decoder_free(d);
}
END_TEST

/* ---- generated inputs ---- */

static int decode_str(dg_decoder *d, const char *s, struct dg_event *ev, struct dg_reject *rej)
{
    return dg_decode(d, s, strlen(s), ev, rej);
}

START_TEST(too_large)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;
    size_t n = 70 * 1024;
    char *buf = malloc(n);

    /* a valid object padded with a long string, so only the size is wrong */
    int head = snprintf(buf, n, "{" WD_ALL ",\"pad\":\"");
    memset(buf + head, 'x', n - (size_t)head - 2);
    memcpy(buf + n - 2, "\"}", 2);
    ck_assert_int_eq(dg_decode(d, buf, n, &ev, &rej), -1);
    ck_assert_str_eq(dg_reject_name(rej.code), "too_large");
    ck_assert_str_eq(rej.field, "");
    ck_assert_str_eq(rej.msg, "event is 71680 bytes, over the limit of 65536");
    /* exactly the limit is fine */
    ck_assert_int_eq(dg_decode(d, buf, DG_MAX_EVENT_BYTES, &ev, &rej), -1);
    ck_assert_int_ne(rej.code, DG_R_TOO_LARGE);
    memcpy(buf + DG_MAX_EVENT_BYTES - 2, "\"}", 2);
    ck_assert_int_eq(dg_decode(d, buf, DG_MAX_EVENT_BYTES, &ev, &rej), 0);
    free(buf);
    dg_decoder_free(d);
}
END_TEST

START_TEST(id_lengths)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;
    char id[130], buf[1024];

    memset(id, 'w', 128);
    id[128] = '\0';
    snprintf(buf, sizeof buf, "{" E_ID "," WD_T "," TS_OK ",\"withdrawal_id\":\"%s\"," ACC "," WD_MONEY "," DEST "}", id);
    ck_assert_int_eq(decode_str(d, buf, &ev, &rej), 0);
    ck_assert_uint_eq(ev.f[DG_F_WITHDRAWAL_ID].len, 128);

    strcat(id, "w"); /* 129 bytes */
    snprintf(buf, sizeof buf, "{" E_ID "," WD_T "," TS_OK ",\"withdrawal_id\":\"%s\"," ACC "," WD_MONEY "," DEST "}", id);
    ck_assert_int_eq(decode_str(d, buf, &ev, &rej), -1);
    ck_assert_str_eq(dg_reject_name(rej.code), "too_long");
    ck_assert_str_eq(rej.field, "withdrawal_id");
    ck_assert_str_eq(rej.msg, "field 'withdrawal_id': too long (129 bytes, max 128)");
    ck_assert_str_eq(rej.withdrawal_id, ""); /* not usable, not truncated */
    ck_assert_str_eq(rej.event_id, "e1");

    snprintf(buf, sizeof buf, "{\"event_id\":\"%s\"," WD_T "," TS_OK "," WD_ID "," ACC "," WD_MONEY "," DEST "}", id);
    ck_assert_int_eq(decode_str(d, buf, &ev, &rej), -1);
    ck_assert_int_eq(rej.code, DG_R_TOO_LONG);
    ck_assert_str_eq(rej.field, "event_id");
    ck_assert_str_eq(rej.withdrawal_id, "w1");
    ck_assert_str_eq(rej.event_id, "");

    /* one id in withdrawal_ids too long */
    snprintf(buf, sizeof buf, "{" OUT_BASE ",\"withdrawal_ids\":[\"w1\",\"%s\"]}", id);
    ck_assert_int_eq(decode_str(d, buf, &ev, &rej), -1);
    ck_assert_int_eq(rej.code, DG_R_TOO_LONG);
    ck_assert_str_eq(rej.field, "withdrawal_ids");
    dg_decoder_free(d);
}
END_TEST

START_TEST(too_many_ids)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;
    dg_buf b = {0};

    dg_buf_puts(&b, "{" OUT_BASE ",\"withdrawal_ids\":[");
    for (int i = 0; i < DG_MAX_WITHDRAWAL_IDS; i++)
        dg_buf_printf(&b, "%s\"w%d\"", i ? "," : "", i);
    dg_buf_puts(&b, "]}");
    ck_assert_int_eq(dg_decode(d, b.data, b.len, &ev, &rej), 0);
    ck_assert_uint_eq(ev.nids, DG_MAX_WITHDRAWAL_IDS);
    ck_assert_str_eq(ev.ids[255], "w255");

    b.len -= 2;
    dg_buf_puts(&b, ",\"w256\"]}");
    ck_assert_int_eq(dg_decode(d, b.data, b.len, &ev, &rej), -1);
    ck_assert_str_eq(dg_reject_name(rej.code), "too_long");
    ck_assert_str_eq(rej.field, "withdrawal_ids");
    dg_buf_free(&b);
    dg_decoder_free(d);
}
END_TEST

START_TEST(nesting_limits)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;
    dg_buf b = {0};

    /* 8 levels counting the event object itself: allowed */
    ck_assert_int_eq(decode_str(d, "{" WD_ALL ",\"meta\":[[[[[[[1]]]]]]]}", &ev, &rej), 0);
    ck_assert_int_eq(decode_str(d, "{" WD_ALL ",\"meta\":[[[[[[[]]]]]]]}", &ev, &rej), 0);
    ck_assert_int_eq(decode_str(d, "{" WD_ALL ",\"meta\":[[[[[[[{}]]]]]]]}", &ev, &rej), -1);
    ck_assert_int_eq(rej.code, DG_R_TOO_DEEP);
    ck_assert_str_eq(rej.msg, "field 'meta': nested deeper than 8 levels");

    /* past cJSON's own limit: still too_deep, not bad_json */
    dg_buf_puts(&b, "{" WD_ALL ",\"meta\":");
    for (int i = 0; i < 2000; i++)
        dg_buf_putc(&b, '[');
    for (int i = 0; i < 2000; i++)
        dg_buf_putc(&b, ']');
    dg_buf_putc(&b, '}');
    ck_assert_int_eq(dg_decode(d, b.data, b.len, &ev, &rej), -1);
    ck_assert_str_eq(dg_reject_name(rej.code), "too_deep");
    dg_buf_free(&b);
    dg_decoder_free(d);
}
END_TEST

START_TEST(reject_messages)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;

    decode_str(d, "{" WD_NO_MONEY ",\"amount\":-5,\"amount_usd\":1}", &ev, &rej);
    ck_assert_str_eq(rej.msg, "field 'amount': must be a finite number > 0, got -5");
    decode_str(d, "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":\"abc\"}", &ev, &rej);
    ck_assert_str_eq(rej.msg, "field 'amount_usd': must be a finite number >= 0, got \"abc\"");
    decode_str(d, "{" BAL_BASE ",\"balance\":\"-0.5\",\"balance_usd\":0}", &ev, &rej);
    ck_assert_str_eq(rej.msg, "field 'balance': must be a decimal like \"12.5\" (no sign, "
                              "exponent or spaces), got \"-0.5\"");
    decode_str(d, "{" E_ID "," WD_T "," TS_OK "," ACC "," WD_MONEY "," DEST "}", &ev, &rej);
    ck_assert_str_eq(rej.msg, "missing required field 'withdrawal_id'");
    decode_str(d, "{" WD_ALL ",\"amount\":\"500\"}", &ev, &rej);
    ck_assert_str_eq(rej.msg, "duplicate field 'amount'");
    decode_str(d, "{" E_ID ",\"type\":\"withdrawal\"}", &ev, &rej);
    ck_assert_str_eq(rej.msg, "field 'type': unknown event type \"withdrawal\"");
    decode_str(d, "{" WD_ALL ",\"dest_tag\":\"a\\u0000b\"}", &ev, &rej);
    ck_assert_str_eq(rej.msg, "field 'dest_tag': contains a NUL (\\u0000)");
    decode_str(d, "[1]", &ev, &rej);
    ck_assert_str_eq(rej.msg, "event must be a JSON object, got an array");

    /* a hostile value is cut at ~40 bytes and its non-printables escaped */
    decode_str(d, "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":\"\\n\\u001b[31m\xe2\x82\xac"
                  "0123456789012345678901234567890123456789\"}", &ev, &rej);
    ck_assert_int_eq(rej.code, DG_R_BAD_TYPE);
    ck_assert_str_eq(rej.msg, "field 'amount_usd': must be a finite number >= 0, got "
                              "\"\\x0a\\x1b[31m\\xe2\\x82\\xac0123456789012345...\"");
    /* a hostile key is escaped too, in the message and in rej.field */
    decode_str(d, "{" WD_ALL ",\"a\\n\\\"b\":[[[[[[[[1]]]]]]]]}", &ev, &rej);
    ck_assert_int_eq(rej.code, DG_R_TOO_DEEP);
    ck_assert_str_eq(rej.field, "a\\x0a\\\"b");
    dg_decoder_free(d);
}
END_TEST

START_TEST(salvage)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;

    ck_assert_int_eq(decode_str(d, "{" WD_NO_MONEY ",\"amount\":-5,\"amount_usd\":1}", &ev, &rej), -1);
    ck_assert_str_eq(rej.event_id, "e1");
    ck_assert_str_eq(rej.withdrawal_id, "w1");
    ck_assert_str_eq(rej.account_id, "a1");
    ck_assert_str_eq(rej.type, "withdrawal.requested");
    ck_assert_str_eq(rej.ts_raw, "2019-05-07T17:15:24.123Z");
    ck_assert_int_eq(rej.ts_is_int, 0);

    /* an integer ts is salvaged as its decimal text */
    ck_assert_int_eq(decode_str(d, "{" WD_ID ",\"ts\":1557249324123,\"type\":\"nope\"}", &ev, &rej), -1);
    ck_assert_int_eq(rej.code, DG_R_UNKNOWN_TYPE);
    ck_assert_str_eq(rej.ts_raw, "1557249324123");
    ck_assert_int_eq(rej.ts_is_int, 1);
    ck_assert_str_eq(rej.type, "nope");
    ck_assert_str_eq(rej.event_id, "");

    /* each piece on its own: a bad ts does not stop the ids */
    ck_assert_int_eq(decode_str(d, "{\"withdrawal_id\":\"w9\",\"account_id\":7,\"ts\":[1],"
                                   "\"type\":\"withdrawal.requested\"}", &ev, &rej), -1);
    ck_assert_str_eq(rej.withdrawal_id, "w9");
    ck_assert_str_eq(rej.account_id, "");
    ck_assert_str_eq(rej.ts_raw, "");
    ck_assert_int_eq(rej.ts_is_int, 0);

    /* too long to be usable: not salvaged rather than truncated */
    ck_assert_int_eq(decode_str(d, "{\"ts\":\"2019-05-07T17:15:24.123456789+02:00 and then a lot more text "
                                   "than fits\"," WD_ID "}", &ev, &rej), -1);
    ck_assert_str_eq(rej.ts_raw, "");
    ck_assert_str_eq(rej.withdrawal_id, "w1");

    /* nothing to salvage from unparseable input */
    ck_assert_int_eq(decode_str(d, "{\"withdrawal_id\":\"w1\",", &ev, &rej), -1);
    ck_assert_str_eq(rej.withdrawal_id, "");
    dg_decoder_free(d);
}
END_TEST

/* ---- valid events ---- */

static void assert_str_value(dg_value v, const char *want)
{
    ck_assert_int_eq(v.t, DG_T_STR);
    ck_assert_uint_eq(v.len, strlen(want));
    ck_assert(memcmp(v.u.s, want, v.len) == 0);
}

static void assert_num_value(dg_value v, double want)
{
    ck_assert_int_eq(v.t, DG_T_NUM);
    ck_assert_double_eq(v.u.n, want);
}

START_TEST(withdrawal_full)
{
    static const char *const extra[] = {
        "risk_score", "note", "is_vip", "nothing", "list", "obj", "absent", "ip", "note",
    };
    dg_decoder *d = dg_decoder_new(extra, DG_ARRAY_LEN(extra));
    struct dg_event ev;
    struct dg_reject rej;
    const char *in =
        "{\"event_id\":\"evt-1\",\"type\":\"withdrawal.requested\","
        "\"ts\":\"2019-05-07T19:15:24.123+02:00\",\"withdrawal_id\":\"wd-42\","
        "\"account_id\":\"acct-7\",\"asset\":\"BTC\",\"chain\":\"bitcoin\","
        "\"amount\":\"0.12345678\",\"amount_usd\":7456.5,\"dest_address\":\"bc1q\xc3\xa9\","
        "\"dest_tag\":\"memo\",\"hot_wallet\":\"hot-btc-1\",\"balance_usd\":10000,"
        "\"account_created_at\":1546300800000,\"channel\":\"api\",\"api_key_id\":\"k1\","
        "\"ip\":\"203.0.113.9\",\"device_id\":null,"
        "\"action\":5,\"withdrawal_ids\":\"not this type's field\",\"wallet_id\":[1],"
        "\"risk_score\":0.75,\"note\":\"tab\\there\",\"is_vip\":false,\"nothing\":null,"
        "\"list\":[1,2],\"obj\":{\"a\":1},\"unknown\":{\"deep\":[1]}}\n";

    ck_assert_ptr_nonnull(d);
    ck_assert_msg(decode_str(d, in, &ev, &rej) == 0, "rejected: %s", rej.msg);
    ck_assert_int_eq(ev.type, DG_EV_WITHDRAWAL);
    ck_assert_int_eq(ev.ts_ms, 1557249324123LL);
    ck_assert_int_eq(ev.ts_is_int, 0);
    ck_assert_str_eq(ev.ts_raw, "2019-05-07T19:15:24.123+02:00"); /* as received */
    ck_assert_uint_eq(ev.ts_raw_len, strlen("2019-05-07T19:15:24.123+02:00"));
    assert_str_value(ev.f[DG_F_EVENT_ID], "evt-1");
    assert_str_value(ev.f[DG_F_TYPE], "withdrawal.requested");
    ck_assert_int_eq(ev.f[DG_F_TS].t, DG_T_TIME);
    ck_assert_int_eq(ev.f[DG_F_TS].u.ms, 1557249324123LL);
    assert_str_value(ev.f[DG_F_WITHDRAWAL_ID], "wd-42");
    assert_str_value(ev.f[DG_F_ACCOUNT_ID], "acct-7");
    assert_str_value(ev.f[DG_F_ASSET], "BTC");
    assert_str_value(ev.f[DG_F_CHAIN], "bitcoin");
    assert_num_value(ev.f[DG_F_AMOUNT], 0.12345678);
    assert_num_value(ev.f[DG_F_AMOUNT_USD], 7456.5);
    assert_str_value(ev.f[DG_F_DEST_ADDRESS], "bc1q\xc3\xa9");
    assert_str_value(ev.f[DG_F_DEST_TAG], "memo");
    assert_str_value(ev.f[DG_F_HOT_WALLET], "hot-btc-1");
    assert_num_value(ev.f[DG_F_BALANCE_USD], 10000);
    ck_assert_int_eq(ev.f[DG_F_ACCOUNT_CREATED_AT].t, DG_T_TIME);
    ck_assert_int_eq(ev.f[DG_F_ACCOUNT_CREATED_AT].u.ms, 1546300800000LL);
    assert_str_value(ev.f[DG_F_CHANNEL], "api");
    assert_str_value(ev.f[DG_F_API_KEY_ID], "k1");
    assert_str_value(ev.f[DG_F_IP], "203.0.113.9");
    ck_assert_int_eq(ev.f[DG_F_DEVICE_ID].t, DG_T_NONE); /* optional null = absent */
    /* fields of other event types are ignored, whatever their JSON */
    ck_assert_int_eq(ev.f[DG_F_ACTION].t, DG_T_NONE);
    ck_assert_int_eq(ev.f[DG_F_WITHDRAWAL_IDS].t, DG_T_NONE);
    ck_assert_int_eq(ev.f[DG_F_WALLET_ID].t, DG_T_NONE);
    ck_assert_int_eq(ev.f[DG_F_TX_HASH].t, DG_T_NONE);
    ck_assert_int_eq(ev.f[DG_F_BALANCE].t, DG_T_NONE);
    ck_assert_uint_eq(ev.nids, 0);
    /* extra fields of each JSON type */
    assert_num_value(ev.extra[0], 0.75);
    assert_str_value(ev.extra[1], "tab\there");
    ck_assert_int_eq(ev.extra[2].t, DG_T_BOOL);
    ck_assert_int_eq(ev.extra[2].u.b, 0);
    ck_assert_int_eq(ev.extra[3].t, DG_T_NONE); /* null */
    ck_assert_int_eq(ev.extra[4].t, DG_T_NONE); /* array */
    ck_assert_int_eq(ev.extra[5].t, DG_T_NONE); /* object */
    ck_assert_int_eq(ev.extra[6].t, DG_T_NONE); /* absent */
    assert_str_value(ev.extra[7], "203.0.113.9"); /* a contract name works too */
    assert_str_value(ev.extra[8], "tab\there");   /* asked for twice */
    dg_decoder_free(d);
}
END_TEST

START_TEST(withdrawal_integer_ts)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;

    ck_assert_int_eq(decode_str(d, "{" E_ID "," WD_T ",\"ts\":1557249324123," WD_ID "," ACC ","
                                   "\"asset\":\"ETH\",\"chain\":\"ethereum\",\"amount\":0.5,"
                                   "\"amount_usd\":0," DEST "}", &ev, &rej), 0);
    ck_assert_int_eq(ev.ts_ms, 1557249324123LL);
    ck_assert_int_eq(ev.ts_is_int, 1);
    ck_assert_str_eq(ev.ts_raw, "1557249324123");
    ck_assert_uint_eq(ev.ts_raw_len, 13);
    assert_num_value(ev.f[DG_F_AMOUNT], 0.5);
    assert_num_value(ev.f[DG_F_AMOUNT_USD], 0); /* 0 allowed for amount_usd */
    ck_assert_int_eq(ev.f[DG_F_BALANCE_USD].t, DG_T_NONE);

    /* ts 0 and the last millisecond of 9999 are in range */
    ck_assert_int_eq(decode_str(d, "{" WD_NO_TS ",\"ts\":0}", &ev, &rej), 0);
    ck_assert_str_eq(ev.ts_raw, "0");
    ck_assert_int_eq(decode_str(d, "{" WD_NO_TS ",\"ts\":253402300799999}", &ev, &rej), 0);
    ck_assert_int_eq(ev.ts_ms, 253402300799999LL);
    ck_assert_int_eq(decode_str(d, "{" WD_NO_TS ",\"ts\":1.557249324123e12}", &ev, &rej), 0);
    ck_assert_str_eq(ev.ts_raw, "1557249324123");
    dg_decoder_free(d);
}
END_TEST

START_TEST(security_event)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;

    ck_assert_int_eq(decode_str(d, "{" SEC_ALL ",\"ip\":\"198.51.100.1\",\"address\":\"0xabc\","
                                   "\"amount\":\"-5\",\"withdrawal_id\":\"\"}", &ev, &rej), 0);
    ck_assert_int_eq(ev.type, DG_EV_SECURITY);
    assert_str_value(ev.f[DG_F_ACCOUNT_ID], "a1");
    assert_str_value(ev.f[DG_F_ACTION], "2fa.reset");
    assert_str_value(ev.f[DG_F_IP], "198.51.100.1");
    assert_str_value(ev.f[DG_F_ADDRESS], "0xabc");
    ck_assert_int_eq(ev.f[DG_F_DEVICE_ID].t, DG_T_NONE);
    ck_assert_int_eq(ev.f[DG_F_AMOUNT].t, DG_T_NONE); /* not this type's field */
    ck_assert_int_eq(ev.f[DG_F_WITHDRAWAL_ID].t, DG_T_NONE);
    ck_assert_int_eq(ev.ts_ms, 1557249324123LL);
    dg_decoder_free(d);
}
END_TEST

START_TEST(outflow_event)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;

    ck_assert_int_eq(decode_str(d, "{" OUT_BASE ",\"withdrawal_ids\":[\"w1\",\"w2\",\"w\\u00e9\"]}", &ev, &rej), 0);
    ck_assert_int_eq(ev.type, DG_EV_OUTFLOW);
    assert_str_value(ev.f[DG_F_WALLET_ID], "hot-1");
    assert_str_value(ev.f[DG_F_TX_HASH], "0xabc");
    assert_str_value(ev.f[DG_F_DEST_ADDRESS], "0xdef");
    assert_num_value(ev.f[DG_F_AMOUNT], 2);
    assert_num_value(ev.f[DG_F_AMOUNT_USD], 7000);
    assert_num_value(ev.f[DG_F_WITHDRAWAL_IDS], 3);
    ck_assert_uint_eq(ev.nids, 3);
    ck_assert_str_eq(ev.ids[0], "w1");
    ck_assert_str_eq(ev.ids[1], "w2");
    ck_assert_str_eq(ev.ids[2], "w\xc3\xa9");

    ck_assert_int_eq(decode_str(d, "{" OUT_BASE ",\"withdrawal_ids\":[]}", &ev, &rej), 0);
    assert_num_value(ev.f[DG_F_WITHDRAWAL_IDS], 0);
    ck_assert_uint_eq(ev.nids, 0);
    ck_assert_int_eq(decode_str(d, "{" OUT_BASE "}", &ev, &rej), 0);
    ck_assert_int_eq(ev.f[DG_F_WITHDRAWAL_IDS].t, DG_T_NONE);
    ck_assert_uint_eq(ev.nids, 0);
    dg_decoder_free(d);
}
END_TEST

START_TEST(balance_event)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;

    ck_assert_int_eq(decode_str(d, "{" BAL_BASE ",\"balance\":\"0\",\"balance_usd\":0,\"channel\":5}", &ev, &rej), 0);
    ck_assert_int_eq(ev.type, DG_EV_BALANCE);
    assert_num_value(ev.f[DG_F_BALANCE], 0);
    ck_assert(!signbit(ev.f[DG_F_BALANCE].u.n));
    assert_num_value(ev.f[DG_F_BALANCE_USD], 0);
    assert_str_value(ev.f[DG_F_ASSET], "USDT");
    ck_assert_int_eq(ev.f[DG_F_CHANNEL].t, DG_T_NONE);

    ck_assert_int_eq(decode_str(d, "{" BAL_BASE ",\"balance\":\"1234567.891\",\"balance_usd\":-0}", &ev, &rej), 0);
    assert_num_value(ev.f[DG_F_BALANCE], 1234567.891);
    ck_assert(!signbit(ev.f[DG_F_BALANCE_USD].u.n));
    /* over 15 significant digits: the strtod path, same double as the number */
    ck_assert_int_eq(decode_str(d, "{" BAL_BASE ",\"balance\":\"123456789012345678.5\",\"balance_usd\":1}",
                                &ev, &rej), 0);
    assert_num_value(ev.f[DG_F_BALANCE], 123456789012345678.5);
    ck_assert_int_eq(decode_str(d, "{" BAL_BASE ",\"balance\":\"0.000000000000000000000000001\","
                                   "\"balance_usd\":1}", &ev, &rej), 0);
    assert_num_value(ev.f[DG_F_BALANCE], 1e-27);
    dg_decoder_free(d);
}
END_TEST

START_TEST(amount_spellings_agree)
{
    static const char *const amounts[] = {
        "0.1", "0.3", "1", "12.5", "0.00012345", "99999999.99999999", "007.50",
        "123456789012345", "1.7976931348623157",
    };
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;
    char buf[512];

    for (size_t i = 0; i < DG_ARRAY_LEN(amounts); i++) {
        snprintf(buf, sizeof buf, "{" WD_NO_MONEY ",\"amount\":\"%s\",\"amount_usd\":1}", amounts[i]);
        ck_assert_msg(decode_str(d, buf, &ev, &rej) == 0, "%s: %s", amounts[i], rej.msg);
        double as_string = ev.f[DG_F_AMOUNT].u.n;
        snprintf(buf, sizeof buf, "{" WD_NO_MONEY ",\"amount\":%s,\"amount_usd\":1}", amounts[i]);
        ck_assert_msg(decode_str(d, buf, &ev, &rej) == 0, "%s: %s", amounts[i], rej.msg);
        ck_assert_msg(as_string == ev.f[DG_F_AMOUNT].u.n, "%s: %.17g vs %.17g", amounts[i], as_string,
                      ev.f[DG_F_AMOUNT].u.n);
    }
    dg_decoder_free(d);
}
END_TEST

START_TEST(lenient_but_safe)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;

    /* pretty-printed, CRLF, trailing newline, escapes that are not NUL */
    ck_assert_int_eq(decode_str(d, "{\r\n\t" WD_ALL ",\r\n\t\"dest_tag\":\"a\\u0001\\\\u0000\"\r\n}\r\n", &ev, &rej), 0);
    assert_str_value(ev.f[DG_F_DEST_TAG], "a\x01\\u0000");
    /* keys that differ from contract names only by case are unknown fields */
    ck_assert_int_eq(decode_str(d, "{" WD_ALL ",\"Amount\":-1,\"AMOUNT\":\"x\"}", &ev, &rej), 0);
    /* duplicate keys that are not read are nobody's business */
    ck_assert_int_eq(decode_str(d, "{" WD_ALL ",\"x\":1,\"x\":2}", &ev, &rej), 0);
    /* order of keys does not matter */
    ck_assert_int_eq(decode_str(d, "{" DEST "," WD_MONEY "," ACC "," WD_ID "," TS_OK "," WD_T "," E_ID "}", &ev, &rej), 0);
    dg_decoder_free(d);
}
END_TEST

START_TEST(reuse_and_lifetime)
{
    dg_decoder *d = new_decoder();
    struct dg_event ev;
    struct dg_reject rej;
    char *buf = strdup("{" WD_ALL "}");

    /* strings live in the decoder, not in the input buffer */
    ck_assert_int_eq(dg_decode(d, buf, strlen(buf), &ev, &rej), 0);
    memset(buf, 'x', strlen(buf));
    free(buf);
    assert_str_value(ev.f[DG_F_WITHDRAWAL_ID], "w1");
    /* a rejection, then a valid event again, on the same decoder */
    ck_assert_int_eq(decode_str(d, "[", &ev, &rej), -1);
    ck_assert_int_eq(decode_str(d, "{" OUT_BASE ",\"withdrawal_ids\":[\"a\"]}", &ev, &rej), 0);
    ck_assert_uint_eq(ev.nids, 1);
    ck_assert_int_eq(dg_decode(d, NULL, 0, &ev, &rej), -1);
    ck_assert_int_eq(rej.code, DG_R_BAD_JSON);
    dg_decoder_free(d);
    dg_decoder_free(NULL);
}
END_TEST

START_TEST(decoder_arguments)
{
    const char *names[DG_MAX_EXTRA_FIELDS + 1];
    char store[DG_MAX_EXTRA_FIELDS + 1][16];
    for (int i = 0; i <= DG_MAX_EXTRA_FIELDS; i++) {
        snprintf(store[i], sizeof store[i], "x%d", i);
        names[i] = store[i];
    }
    ck_assert_ptr_null(dg_decoder_new(names, DG_MAX_EXTRA_FIELDS + 1));
    dg_decoder *d = dg_decoder_new(names, DG_MAX_EXTRA_FIELDS);
    ck_assert_ptr_nonnull(d);

    struct dg_event ev;
    struct dg_reject rej;
    ck_assert_int_eq(decode_str(d, "{" WD_ALL ",\"x63\":true,\"x0\":\"zero\"}", &ev, &rej), 0);
    assert_str_value(ev.extra[0], "zero");
    ck_assert_int_eq(ev.extra[63].t, DG_T_BOOL);
    ck_assert_int_eq(ev.extra[1].t, DG_T_NONE);
    /* an extra field the rules read is as ambiguous as a contract one */
    ck_assert_int_eq(decode_str(d, "{" WD_ALL ",\"x5\":1,\"x5\":2}", &ev, &rej), -1);
    ck_assert_int_eq(rej.code, DG_R_BAD_VALUE);
    ck_assert_str_eq(rej.field, "x5");
    ck_assert_str_eq(rej.withdrawal_id, "w1");
    dg_decoder_free(d);

    names[1] = NULL;
    ck_assert_ptr_null(dg_decoder_new(names, 2));
}
END_TEST

START_TEST(contract_table)
{
    /* every row named, in enum order, and findable by name */
    for (int f = 0; f < DG_F_NKNOWN; f++) {
        ck_assert_ptr_nonnull(dg_fields[f].name);
        ck_assert_int_eq(dg_field_lookup(dg_fields[f].name, strlen(dg_fields[f].name)), f);
    }
    ck_assert_int_eq(dg_field_lookup("amount", 6), DG_F_AMOUNT);
    ck_assert_int_eq(dg_field_lookup("amount_usdx", 11), -1);
    ck_assert_int_eq(dg_field_lookup("amount_usd", 6), DG_F_AMOUNT);
    ck_assert_int_eq(dg_field_lookup("", 0), -1);
    /* common fields everywhere */
    for (int t = 0; t < DG_EV_NTYPES; t++) {
        ck_assert_int_eq(dg_fields[DG_F_EVENT_ID].presence[t], DG_P_REQUIRED);
        ck_assert_int_eq(dg_fields[DG_F_TYPE].presence[t], DG_P_REQUIRED);
        ck_assert_int_eq(dg_fields[DG_F_TS].presence[t], DG_P_REQUIRED);
    }
    ck_assert_int_eq(dg_fields[DG_F_WITHDRAWAL_ID].presence[DG_EV_WITHDRAWAL], DG_P_REQUIRED);
    ck_assert_int_eq(dg_fields[DG_F_WITHDRAWAL_ID].presence[DG_EV_OUTFLOW], DG_P_ABSENT);
    ck_assert_int_eq(dg_fields[DG_F_WITHDRAWAL_IDS].presence[DG_EV_OUTFLOW], DG_P_OPTIONAL);
    ck_assert_int_eq(dg_fields[DG_F_BALANCE_USD].presence[DG_EV_WITHDRAWAL], DG_P_OPTIONAL);
    ck_assert_int_eq(dg_fields[DG_F_BALANCE_USD].presence[DG_EV_BALANCE], DG_P_REQUIRED);
    ck_assert_int_eq(dg_fields[DG_F_ACCOUNT_ID].presence[DG_EV_SECURITY], DG_P_REQUIRED);
    ck_assert_int_eq(dg_fields[DG_F_ADDRESS].presence[DG_EV_SECURITY], DG_P_OPTIONAL);
    ck_assert_int_eq(dg_fields[DG_F_AMOUNT].min_zero, 0);
    ck_assert_int_eq(dg_fields[DG_F_BALANCE].min_zero, 1);
    ck_assert_int_eq(dg_fields[DG_F_EVENT_ID].max_len, 128);
    ck_assert_int_eq(dg_fields[DG_F_ASSET].max_len, 32);
    ck_assert_int_eq(dg_fields[DG_F_DEST_ADDRESS].max_len, 256);

    ck_assert_int_eq(dg_field_type(DG_F_ACCOUNT_ID), DG_T_STR);
    ck_assert_int_eq(dg_field_type(DG_F_TS), DG_T_TIME);
    ck_assert_int_eq(dg_field_type(DG_F_ACCOUNT_CREATED_AT), DG_T_TIME);
    ck_assert_int_eq(dg_field_type(DG_F_AMOUNT), DG_T_NUM);
    ck_assert_int_eq(dg_field_type(DG_F_AMOUNT_USD), DG_T_NUM);
    ck_assert_int_eq(dg_field_type(DG_F_WITHDRAWAL_IDS), DG_T_NUM);
    ck_assert_int_eq(dg_field_type(-1), DG_T_NONE);
    ck_assert_int_eq(dg_field_type(DG_F_NKNOWN), DG_T_NONE);

    ck_assert_str_eq(dg_event_type_name(DG_EV_WITHDRAWAL), "withdrawal.requested");
    ck_assert_str_eq(dg_event_type_name(DG_EV_SECURITY), "account.security");
    ck_assert_str_eq(dg_event_type_name(DG_EV_OUTFLOW), "wallet.outflow");
    ck_assert_str_eq(dg_event_type_name(DG_EV_BALANCE), "wallet.balance");
    for (int t = 0; t < DG_EV_NTYPES; t++)
        ck_assert_int_eq(dg_event_type_lookup(dg_event_type_name(t), strlen(dg_event_type_name(t))), t);
    ck_assert_int_eq(dg_event_type_lookup("wallet.balanc", 13), -1);
    ck_assert_int_eq(dg_event_type_lookup("wallet.balance", 13), -1);

    static const char *const rnames[DG_R_NCODES] = {
        "too_large", "bad_utf8", "bad_json", "not_object", "too_deep", "missing_field",
        "bad_type", "bad_value", "too_long", "unknown_type",
    };
    for (int c = 0; c < DG_R_NCODES; c++)
        ck_assert_str_eq(dg_reject_name(c), rnames[c]);

    ck_assert_str_eq(dg_type_name(DG_T_NONE), "missing");
    ck_assert_str_eq(dg_type_name(DG_T_NUM), "number");
    ck_assert_str_eq(dg_type_name(DG_T_STR), "string");
    ck_assert_str_eq(dg_type_name(DG_T_TIME), "time");
    ck_assert_str_eq(dg_type_name(DG_T_DUR), "duration");
    ck_assert_str_eq(dg_type_name(DG_T_BOOL), "boolean");
    ck_assert_str_eq(dg_type_name(DG_T_ANY), "any");
}
END_TEST

/* every reject code is produced by some row of the table */
START_TEST(table_covers_every_code)
{
    int seen[DG_R_NCODES] = {0};
    seen[DG_R_TOO_LARGE] = 1; /* test too_large */
    for (size_t i = 0; i < DG_ARRAY_LEN(bad_rows); i++)
        seen[bad_rows[i].code] = 1;
    for (int c = 0; c < DG_R_NCODES; c++)
        ck_assert_msg(seen[c], "no row for %s", dg_reject_name(c));
}
END_TEST

/* ---- the fast path against the cJSON path ----
 *
 * Every input goes through dg_decode_compare() twice: with no extra fields
 * and with a list of them that overlaps a contract name, repeats a name and
 * includes "". Any difference in what a caller sees fails the test. Each
 * source also counts how many inputs the fast path took, so that a fast
 * path that silently declined everything would not pass for a correct one. */

static const char *const diff_extra[] = {
    "risk_score", "country", "fee", "fp", "delta", "vip", "score", "flagged", "kill_switch",
    "pad", "note", "meta", "x", "amount", "country", "", "account_created_at_and_more",
};

struct diff {
    dg_decoder *d[2], *ref[2];
    unsigned long n, fast;
};

static void diff_init(struct diff *c)
{
    memset(c, 0, sizeof *c);
    c->d[0] = dg_decoder_new(NULL, 0);
    c->ref[0] = dg_decoder_new(NULL, 0);
    c->d[1] = dg_decoder_new(diff_extra, DG_ARRAY_LEN(diff_extra));
    c->ref[1] = dg_decoder_new(diff_extra, DG_ARRAY_LEN(diff_extra));
    for (int i = 0; i < 2; i++)
        ck_assert(c->d[i] && c->ref[i]);
}

static void diff_free(struct diff *c)
{
    for (int i = 0; i < 2; i++) {
        dg_decoder_free(c->d[i]);
        dg_decoder_free(c->ref[i]);
    }
}

/* Returns 1 when the fast path took the input (with either decoder). A
 * failing compare aborts the test; ck_assert is not used per input, as it
 * costs a write to Check's pipe each time. */
static int diff_one(struct diff *c, const char *what, const char *buf, size_t len)
{
    int took = 0;
    /* an exact-size heap copy: ASan sees any read past the end */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    for (int i = 0; i < 2; i++) {
        char why[512];
        int fast = 0;
        if (dg_decode_compare(c->d[i], c->ref[i], copy, len, &fast, why, sizeof why) != 0) {
            char shown[121];
            size_t n = len < 60 ? len : 60;
            for (size_t j = 0; j < n; j++)
                shown[j] = buf[j] >= 0x20 && buf[j] < 0x7f ? buf[j] : '?';
            shown[n] = '\0';
            free(copy);
            ck_abort_msg("%s (extras: %s): %s; input (%zu bytes) '%s%s'", what, i ? "yes" : "no",
                         why, len, shown, len > n ? "..." : "");
        }
        took |= fast;
    }
    free(copy);
    c->n++;
    c->fast += (unsigned long)took;
    return took;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    dg_buf b = {0};
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        dg_buf_append(&b, tmp, n);
    fclose(f);
    dg_buf_putc(&b, '\0');
    *len = b.len - 1;
    return b.data;
}

/* Each line of a file (without its newline) and, when whole is set, the
 * whole file as one input too; at most max lines (0: all). */
static void diff_lines(struct diff *c, const char *path, size_t max, int whole)
{
    size_t len;
    char *data = read_file(path, &len);
    ck_assert_msg(data != NULL, "cannot read %s", path);
    if (whole)
        diff_one(c, path, data, len);
    size_t lines = 0;
    for (char *p = data; p < data + len && (max == 0 || lines < max); lines++) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
        char what[600];
        snprintf(what, sizeof what, "%s line %zu", path, lines + 1);
        diff_one(c, what, p, n);
        p += n + 1;
    }
    free(data);
}

/* diff_lines() on fmt % name for every entry of dir that exists; the
 * number of files */
static int diff_dir(struct diff *c, const char *dir, const char *fmt)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "run from the top of the tree");
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        char path[1024];
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, fmt, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fclose(f);
        diff_lines(c, path, 0, 1);
        files++;
    }
    closedir(d);
    return files;
}

START_TEST(diff_case_events)
{
    struct diff c;
    diff_init(&c);
    ck_assert_int_gt(diff_dir(&c, "tests/cases", "tests/cases/%s/events.jsonl"), 40);
    /* most case events are valid: the fast path must be taking them */
    ck_assert_msg(c.fast * 2 > c.n, "fast path took %lu of %lu", c.fast, c.n);
    diff_free(&c);
}
END_TEST

START_TEST(diff_fuzz_seeds)
{
    struct diff c;
    diff_init(&c);
    ck_assert_int_gt(diff_dir(&c, "tests/fuzz/corpus/decode", "tests/fuzz/corpus/decode/%s"), 20);
    ck_assert_uint_gt(c.fast, 0);
    diff_free(&c);
}
END_TEST

/* The replay benchmark's events when they are around: the first
 * DG_DECODE_LINES (default 3000) lines of every file in DG_DECODE_FILES
 * (colon-separated) and of BUILD/bench-data/events-*.jsonl, BUILD being
 * where DG_BIN lives (make unit sets it). Nothing to do without them. */
START_TEST(diff_bench_events)
{
    struct diff c;
    const char *env = getenv("DG_DECODE_FILES");
    const char *bin = getenv("DG_BIN");
    const char *lines_env = getenv("DG_DECODE_LINES");
    size_t max = lines_env ? (size_t)strtoul(lines_env, NULL, 10) : 3000;
    glob_t g;

    diff_init(&c);
    memset(&g, 0, sizeof g);
    if (env && *env) {
        char *list = strdup(env);
        for (char *tok = strtok(list, ":"); tok; tok = strtok(NULL, ":"))
            diff_lines(&c, tok, max, 0);
        free(list);
    }
    if (bin && *bin) {
        char *copy = strdup(bin);
        char pattern[1024];
        snprintf(pattern, sizeof pattern, "%s/bench-data/events-*.jsonl", dirname(copy));
        free(copy);
        if (glob(pattern, 0, NULL, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++)
                diff_lines(&c, g.gl_pathv[i], max, 0);
        globfree(&g);
    }
    if (c.n > 0) {
        /* these are valid events of the common shape */
        ck_assert_msg(c.fast == c.n, "fast path took %lu of %lu bench events", c.fast, c.n);
        fprintf(stderr, "decode differential: %lu bench events, all on the fast path\n", c.n);
    }
    diff_free(&c);
}
END_TEST

/* ---- generated events ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

static const char *pick(uint64_t *s, const char *const *v, size_t n)
{
    return v[rng_below(s, (unsigned)n)];
}
#define PICK(s, arr) pick((s), (arr), DG_ARRAY_LEN(arr))

/* JSON whitespace, usually none. */
static void gen_ws(dg_buf *b, uint64_t *s)
{
    static const char *const ws[] = {" ", "\n", "\t", "\r\n", "  "};
    if (rng_below(s, 12) == 0)
        dg_buf_puts(b, PICK(s, ws));
}

/* A number in one of the spellings the fast path converts, and some it
 * leaves to cJSON. */
static void gen_number(dg_buf *b, uint64_t *s, int nonneg)
{
    static const char *const odd[] = {
        "0", "-0", "0.0", "-0.0", "1e400", "-1e400", "1e-400", "4.9e-324", "2.2250738585072014e-308",
        "1.7976931348623157e308", "9007199254740993", "9007199254740992", "18446744073709551616",
        "123456789012345678901234567890", "1e22", "1e23", "3e-22", "3e-23", "0.1", "0.3", "1E5",
        "1e+5", "2.5E-3", "007", "00", "1.", ".5", "-", "1e", "1e+", "0x10", "1.5.3", "12345678901234567.5",
        "0.000000000000000000001", "100000000000000000000000", "1.0000000000000002",
    };
    switch (rng_below(s, 16)) {
    case 0: case 1: case 2: case 3:
        dg_buf_printf(b, "%s%u", !nonneg && rng_below(s, 8) == 0 ? "-" : "", rng_below(s, 1000000));
        break;
    case 4: case 5: case 6: case 7: case 8:
        dg_buf_printf(b, "%u.%02u", rng_below(s, 100000), rng_below(s, 100));
        break;
    case 9: case 10: case 11:
        dg_buf_printf(b, "%u.%0*u", rng_below(s, 1000), (int)(1 + rng_below(s, 12)),
                      rng_below(s, 1000000000));
        break;
    case 12:
        dg_buf_printf(b, "%u%se%s%u", 1 + rng_below(s, 9999), rng_below(s, 2) ? ".5" : "",
                      PICK(s, ((const char *const[]){"", "+", "-"})), rng_below(s, 30));
        break;
    case 13:
        dg_buf_printf(b, "%.17g", (double)rng_next(s) / (double)(1 + rng_below(s, 1000000)));
        break;
    default:
        dg_buf_puts(b, PICK(s, odd));
        break;
    }
}

/* A string value: usually plain, sometimes UTF-8, escapes or bad bytes. */
static void gen_string(dg_buf *b, uint64_t *s, const char *base)
{
    static const char *const odd[] = {
        "", "caf\xc3\xa9", "\xf0\x9d\x84\x9e", "\xe6\x97\xa5\xe6\x9c\xac", "a\\nb", "\\u0041",
        "\\u00e9", "a\\\"b", "\\/", "\xff", "\xc0\xaf", "\xed\xa0\x80", "a\tb", "\x7f", "a b",
    };
    dg_buf_putc(b, '"');
    if (rng_below(s, 40) == 0)
        dg_buf_puts(b, PICK(s, odd));
    else
        dg_buf_puts(b, base);
    if (rng_below(s, 3) == 0)
        dg_buf_printf(b, "-%u", rng_below(s, 100000));
    dg_buf_putc(b, '"');
}

static void gen_time(dg_buf *b, uint64_t *s)
{
    static const char *const odd[] = {
        "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2000-02-29T00:00:00.000Z",
        "1900-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
        "2024-01-01T00:00:60Z", "2024-13-01T00:00:00Z", "2024-01-00T00:00:00Z",
        "2024-01-01t00:00:00z", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00.1Z",
        "2024-01-01T00:00:00.12Z", "2024-01-01T00:00:00.123456789Z", "2024-01-01T00:00:00.1234567890Z",
        "2024-01-01T00:00:00+01:00", "2024-01-01T00:00:00-23:59", "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-1-01T00:00:00Z",
    };
    unsigned r = rng_below(s, 10);
    if (r == 0) {
        dg_buf_printf(b, "\"%s\"", PICK(s, odd));
    } else if (r == 1) {
        gen_number(b, s, 1); /* epoch ms, or not */
    } else if (r == 2) {
        dg_buf_printf(b, "%llu", 1500000000000ULL + rng_next(s) % 300000000000ULL);
    } else {
        unsigned y = 2019 + rng_below(s, 8), mo = 1 + rng_below(s, 12), d = 1 + rng_below(s, 31);
        dg_buf_printf(b, "\"%04u-%02u-%02uT%02u:%02u:%02u", y, mo, d, rng_below(s, 24),
                      rng_below(s, 60), rng_below(s, 60));
        if (rng_below(s, 2))
            dg_buf_printf(b, ".%03u", rng_below(s, 1000));
        dg_buf_puts(b, "Z\"");
    }
}

/* One member, "name": value, with a value usually right for the field. */
static void gen_member(dg_buf *b, uint64_t *s, const char *name, int kind)
{
    gen_ws(b, s);
    dg_buf_printf(b, "\"%s\"", name);
    gen_ws(b, s);
    dg_buf_putc(b, ':');
    gen_ws(b, s);
    unsigned r = rng_below(s, 40);
    if (r == 0) {
        dg_buf_puts(b, PICK(s, ((const char *const[]){"null", "true", "false", "[]", "{}", "[1,\"a\"]"})));
    } else if (kind == DG_FK_STRING) {
        gen_string(b, s, name);
    } else if (kind == DG_FK_AMOUNT) {
        if (rng_below(s, 2)) {
            dg_buf_putc(b, '"');
            gen_number(b, s, 1);
            dg_buf_putc(b, '"');
        } else {
            gen_number(b, s, 1);
        }
    } else if (kind == DG_FK_NUMBER) {
        gen_number(b, s, 1);
    } else if (kind == DG_FK_TIME) {
        gen_time(b, s);
    } else if (kind == DG_FK_STR_ARRAY) {
        unsigned n = rng_below(s, 5);
        dg_buf_putc(b, '[');
        for (unsigned i = 0; i < n; i++) {
            if (i)
                dg_buf_putc(b, ',');
            gen_ws(b, s);
            gen_string(b, s, "wd");
        }
        gen_ws(b, s);
        dg_buf_putc(b, ']');
    } else { /* an unknown or extra field: any scalar or a flat array */
        switch (rng_below(s, 9)) {
        case 0:
            gen_string(b, s, "v");
            break;
        case 1:
            gen_number(b, s, 0);
            break;
        case 2:
            dg_buf_puts(b, rng_below(s, 2) ? "true" : "false");
            break;
        case 3:
            dg_buf_puts(b, "[1,\"two\",null,false]");
            break;
        case 4:
            dg_buf_puts(b, "{\"k\":[1,{\"j\":null}]}");
            break;
        default:
            gen_string(b, s, "w");
            break;
        }
    }
    gen_ws(b, s);
}

/* An event of a random type with its required fields, some optional and
 * unknown ones, occasionally a field of another type or twice. */
static void gen_event(dg_buf *b, uint64_t *s)
{
    static const char *const unknown[] = {
        "risk_score", "country", "vip", "note", "meta", "x", "zz", "Amount", "account_created_aX",
        "account_XXeated_at", "", "reconciled", "withdrawal_idz",
    };
    int type = (int)rng_below(s, DG_EV_NTYPES);
    int order[DG_F_NKNOWN + 4];
    int n = 0;

    for (int f = 0; f < DG_F_NKNOWN; f++) {
        if (dg_fields[f].kind == DG_FK_COMPUTED)
            continue;
        int p = dg_fields[f].presence[type];
        if ((p == DG_P_REQUIRED && rng_below(s, 60) != 0) || (p == DG_P_OPTIONAL && rng_below(s, 2)) ||
            (p == DG_P_ABSENT && rng_below(s, 40) == 0))
            order[n++] = f;
    }
    if (n > 0 && rng_below(s, 40) == 0) {
        int dup = order[rng_below(s, (unsigned)n)];
        order[n++] = dup;
    }
    int extra = (int)rng_below(s, 4);
    if (rng_below(s, 8) == 0) /* producers mostly keep one order */
        for (int i = n - 1; i > 0; i--) {
            int j = (int)rng_below(s, (unsigned)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    gen_ws(b, s);
    dg_buf_putc(b, '{');
    for (int i = 0; i < n + extra; i++) {
        if (i)
            dg_buf_putc(b, ',');
        if (i >= n) {
            gen_member(b, s, PICK(s, unknown), -1);
        } else if (order[i] == DG_F_TYPE) {
            gen_ws(b, s);
            dg_buf_printf(b, "\"type\":\"%s\"",
                          rng_below(s, 50) ? dg_event_type_name(type) : "withdrawal");
        } else {
            gen_member(b, s, dg_fields[order[i]].name, dg_fields[order[i]].kind);
        }
    }
    dg_buf_putc(b, '}');
    gen_ws(b, s);
}

/* One small change of the kind that turns a good event into a tricky one. */
static void mutate(dg_buf *b, uint64_t *s)
{
    static const char interesting[] = "\"\\ \t\n\r\x01\x7f\x80\xc3\xa9{}[]:,.-+eE0123456789tfnu";
    if (b->len == 0)
        return;
    size_t at = rng_below(s, (unsigned)b->len);
    char c = interesting[rng_below(s, sizeof interesting)]; /* the NUL too */
    switch (rng_below(s, 4)) {
    case 0: /* delete */
        memmove(b->data + at, b->data + at + 1, b->len - at - 1);
        b->len--;
        break;
    case 1: /* replace */
        b->data[at] = c;
        break;
    case 2: /* insert */
        dg_buf_putc(b, '\0');
        memmove(b->data + at + 1, b->data + at, b->len - at - 1);
        b->data[at] = c;
        break;
    default: /* cut */
        b->len = at;
        break;
    }
}

START_TEST(diff_generated)
{
    struct diff c;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    unsigned long valid = 0, valid_fast = 0;

    diff_init(&c);
    for (int i = 0; i < 4000; i++) {
        dg_buf b = {0};
        gen_event(&b, &seed);
        struct dg_event ev;
        struct dg_reject rej;
        int ok = dg_decode(c.ref[0], b.data, b.len, &ev, &rej) == 0;
        int fast = diff_one(&c, "generated event", b.data, b.len);
        valid += (unsigned long)ok;
        valid_fast += (unsigned long)(ok && fast);
        for (int m = 0; m < 8; m++) {
            dg_buf t = {0};
            dg_buf_append(&t, b.data, b.len);
            for (unsigned k = 1 + rng_below(&seed, 3); k > 0; k--)
                mutate(&t, &seed);
            diff_one(&c, "mutated event", t.data ? t.data : "", t.len);
            dg_buf_free(&t);
        }
        dg_buf_free(&b);
    }
    /* the generator mostly writes valid events; the fast path must take
     * most of those itself (the rest hold an escape, a nested object or a
     * number it leaves to cJSON), or this test proves little */
    ck_assert_msg(valid > 1000, "only %lu valid events", valid);
    ck_assert_msg(valid_fast * 2 > valid, "fast path took %lu of %lu valid events", valid_fast, valid);
    diff_free(&c);
}
END_TEST

/* ---- hand-written edge cases ---- */

struct edge {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen(in) */
    int path;   /* 1: the fast path must take it, 0: it must not, -1: either */
};

#define WD "{" WD_ALL
#define ID16 "\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\",\"i\","
#define ID256 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16 ID16

static const struct edge edges[] = {
    {"plain", WD "}", 0, 1},
    {"whitespace everywhere", " \r\n\t{ \"event_id\" : \"e1\" ,\n\t\"type\"\t:\t\"withdrawal.requested\" , "
     "\"ts\" :\"2019-05-07T17:15:24.123Z\" , \"withdrawal_id\": \"w1\",\"account_id\" :\"a1\", \"asset\":"
     "\"BTC\",\"chain\":\"bitcoin\",\"amount\" : \"0.5\" , \"amount_usd\" : 30000 ,\"dest_address\":"
     "\"bc1qxyz\" , \"withdrawal_ids\" : [ \"a\" , \"b\" ] , \"x\" : [ ] } \r\n ", 0, 1},
    {"byte order mark", "\xef\xbb\xbf" WD "}", 0, 0},
    {"vertical tab as space", WD ",\v\"x\":1}", 0, 0},
    {"form feed as space", WD "\f}", 0, 0},
    {"trailing NUL", WD "}\0", sizeof(WD "}\0") - 1, 0},
    {"NUL inside", WD ",\"x\":\"a\0b\"}", sizeof(WD ",\"x\":\"a\0b\"}") - 1, 0},
    {"NUL between members", WD ",\0\"x\":1}", sizeof(WD ",\0\"x\":1}") - 1, 0},
    {"trailing garbage", WD "} x", 0, 0},
    {"two objects", WD "}{}", 0, 0},
    {"unclosed", WD, 0, 0},
    {"unclosed string", WD ",\"x\":\"abc", 0, 0},
    {"trailing comma", WD ",}", 0, 0},
    {"missing colon", WD ",\"x\" 1}", 0, 0},
    {"missing comma", WD " \"x\":1}", 0, 0},
    {"key not a string", WD ",x:1}", 0, 0},
    {"empty object", "{}", 0, 0},
    {"empty object spaced", " { } ", 0, 0},
    {"array root", "[" WD "}]", 0, 0},
    {"string root", "\"x\"", 0, 0},
    {"number root", "12", 0, 0},
    {"null root", "null", 0, 0},
    {"true root", "true", 0, 0},
    {"empty", "", 0, 0},
    {"spaces", "   ", 0, 0},
    /* escapes: always the cJSON path */
    {"escape in value", WD ",\"dest_tag\":\"a\\nb\"}", 0, 0},
    {"unicode escape", WD ",\"dest_tag\":\"\\u00e9\"}", 0, 0},
    {"escaped slash", WD ",\"x\":\"\\/\"}", 0, 0},
    {"escaped quote in key", WD ",\"a\\\"b\":1}", 0, 0},
    {"escaped key equal to a field", WD ",\"amo\\u0075nt\":\"5\"}", 0, 0},
    {"escaped key equal to an extra", WD ",\"vi\\u0070\":true,\"vip\":false}", 0, 0},
    {"nul escape", WD ",\"dest_tag\":\"a\\u0000b\"}", 0, 0},
    {"bad escape", WD ",\"x\":\"\\q\"}", 0, 0},
    {"backslash at the end", WD ",\"x\":\"\\", 0, 0},
    /* duplicates */
    {"duplicate contract field", WD ",\"amount\":\"500\"}", 0, 0},
    {"duplicate with null", WD ",\"dest_tag\":null,\"dest_tag\":\"t\"}", 0, 0},
    {"duplicate field of another type", WD ",\"wallet_id\":\"a\",\"wallet_id\":\"b\"}", 0, 0},
    {"duplicate unknown field", WD ",\"zz\":1,\"zz\":2}", 0, 1},
    {"duplicate extra", WD ",\"vip\":1,\"vip\":2}", 0, -1}, /* fast without extras */
    {"duplicate type", WD ",\"type\":\"withdrawal.requested\"}", 0, 0},
    /* numbers */
    {"amount_usd -0", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":-0}", 0, 1},
    {"amount_usd -0.0e5", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":-0.0e5}", 0, 1},
    {"amount -0", "{" WD_NO_MONEY ",\"amount\":-0,\"amount_usd\":1}", 0, 0},
    {"amount 0", "{" WD_NO_MONEY ",\"amount\":0,\"amount_usd\":1}", 0, 0},
    {"amount 1e400", "{" WD_NO_MONEY ",\"amount\":1e400,\"amount_usd\":1}", 0, 0},
    {"amount_usd 1e-400", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1e-400}", 0, 0},
    {"amount_usd 4.9e-324", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":4.9e-324}", 0, 0},
    {"amount_usd max double", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1.7976931348623157e308}", 0, 0},
    {"amount_usd 2^53", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":9007199254740992}", 0, 1},
    {"amount_usd 2^53+1", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":9007199254740993}", 0, 0},
    {"amount_usd 1e22", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1e22}", 0, 1},
    {"amount_usd 1e23", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1e23}", 0, 0},
    {"amount_usd 1e-22", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1e-22}", 0, 1},
    {"amount_usd 1e-23", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1e-23}", 0, 0},
    {"amount_usd 1E+2", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1E+2}", 0, 1},
    {"amount_usd 2.5e-3", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":2.5e-3}", 0, 1},
    {"amount_usd 0.1", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":0.1}", 0, 1},
    {"amount_usd 0.3", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":0.3}", 0, 1},
    {"amount_usd 19 digits", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1234567890.123456789}", 0, 0},
    {"amount_usd 20 digits", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":12345678901234567890}", 0, 0},
    {"amount_usd long zeros", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":0.000000000000000000001}", 0, 0},
    {"amount_usd 63 bytes", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":"
     "1.0000000000000000000000000000000000000000000000000000000000000}", 0, 0},
    {"amount_usd 64 bytes", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":"
     "1.00000000000000000000000000000000000000000000000000000000000000}", 0, 0},
    {"amount_usd 70 digits", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":"
     "1000000000000000000000000000000000000000000000000000000000000000000000}", 0, 0},
    {"leading zeros", "{" WD_NO_MONEY ",\"amount\":007,\"amount_usd\":1}", 0, 0},
    {"zero zero", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":00}", 0, 0},
    {"minus alone", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":-}", 0, 0},
    {"trailing dot", "{" WD_NO_MONEY ",\"amount\":1.,\"amount_usd\":1}", 0, 0},
    {"leading dot", "{" WD_NO_MONEY ",\"amount\":.5,\"amount_usd\":1}", 0, 0},
    {"minus dot", "{" WD_NO_MONEY ",\"amount\":-.5,\"amount_usd\":1}", 0, 0},
    {"bare exponent", "{" WD_NO_MONEY ",\"amount\":1e,\"amount_usd\":1}", 0, 0},
    {"exponent sign only", "{" WD_NO_MONEY ",\"amount\":1e+,\"amount_usd\":1}", 0, 0},
    {"plus sign", "{" WD_NO_MONEY ",\"amount\":+1,\"amount_usd\":1}", 0, 0},
    {"hex", "{" WD_NO_MONEY ",\"amount\":0x10,\"amount_usd\":1}", 0, 0},
    {"two dots", "{" WD_NO_MONEY ",\"amount\":1.5.3,\"amount_usd\":1}", 0, 0},
    {"minus in the middle", "{" WD_NO_MONEY ",\"amount\":1-2,\"amount_usd\":1}", 0, 0},
    {"infinity", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":Infinity}", 0, 0},
    {"nan", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":nan}", 0, 0},
    {"huge exponent", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":1e99999999999999999999}", 0, 0},
    {"zero huge exponent", "{" WD_NO_MONEY ",\"amount\":1,\"amount_usd\":0e99999999999999999999}", 0, 1},
    /* amounts as strings */
    {"amount \"007.50\"", "{" WD_NO_MONEY ",\"amount\":\"007.50\",\"amount_usd\":1}", 0, 1},
    {"amount 15 digits", "{" WD_NO_MONEY ",\"amount\":\"123456789012345\",\"amount_usd\":1}", 0, 1},
    {"amount 16 digits", "{" WD_NO_MONEY ",\"amount\":\"1234567890123456\",\"amount_usd\":1}", 0, 1},
    {"amount 16 digits 15 significant", "{" WD_NO_MONEY ",\"amount\":\"0.00000000000001\",\"amount_usd\":1}",
     0, 1},
    {"amount 23 decimals", "{" WD_NO_MONEY ",\"amount\":\"0.00000000000000000000001\",\"amount_usd\":1}",
     0, 1},
    {"amount 18 digits", "{" WD_NO_MONEY ",\"amount\":\"99999999.9999999999\",\"amount_usd\":1}", 0, 1},
    {"amount 64 bytes", "{" WD_NO_MONEY ",\"amount\":\"1.00000000000000000000000000000000000000000000000000000000000000\","
     "\"amount_usd\":1}", 0, 1},
    {"amount 65 bytes", "{" WD_NO_MONEY ",\"amount\":\"1.000000000000000000000000000000000000000000000000000000000000000\","
     "\"amount_usd\":1}", 0, 0},
    {"amount \"1e5\"", "{" WD_NO_MONEY ",\"amount\":\"1e5\",\"amount_usd\":1}", 0, 0},
    {"amount \"0.000\"", "{" WD_NO_MONEY ",\"amount\":\"0.000\",\"amount_usd\":1}", 0, 0},
    {"amount \" 1\"", "{" WD_NO_MONEY ",\"amount\":\" 1\",\"amount_usd\":1}", 0, 0},
    {"balance \"0\"", "{" BAL_BASE ",\"balance\":\"0\",\"balance_usd\":0}", 0, 1},
    {"balance -0", "{" BAL_BASE ",\"balance\":-0,\"balance_usd\":-0}", 0, 1},
    /* strings */
    {"empty string", WD ",\"dest_tag\":\"\"}", 0, 0},
    {"empty unknown string", WD ",\"zz\":\"\"}", 0, 1},
    {"asset 32 bytes", "{" E_ID "," WD_T "," TS_OK "," WD_ID "," ACC "," DEST ","
     "\"asset\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\",\"chain\":\"c\",\"amount\":1,\"amount_usd\":1}", 0, 1},
    {"asset 33 bytes", "{" E_ID "," WD_T "," TS_OK "," WD_ID "," ACC "," DEST ","
     "\"asset\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"chain\":\"c\",\"amount\":1,\"amount_usd\":1}", 0, 0},
    {"utf-8 value", WD ",\"dest_tag\":\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9d\x84\x9e\"}", 0, 1},
    {"utf-8 key", WD ",\"caf\xc3\xa9\":1}", 0, 1},
    {"utf-8 in a long value", WD ",\"dest_tag\":\"abcdefghijklmnopqrstuvwxyz\xc3\xa9\"}", 0, 1},
    {"invalid utf-8 value", WD ",\"dest_tag\":\"\xff\"}", 0, 0},
    {"invalid utf-8 key", WD ",\"\xc3\":1}", 0, 0},
    {"overlong", WD ",\"dest_tag\":\"\xc0\xaf\"}", 0, 0},
    {"surrogate", WD ",\"dest_tag\":\"\xed\xa0\x80\"}", 0, 0},
    {"above U+10FFFF", WD ",\"dest_tag\":\"\xf4\x90\x80\x80\"}", 0, 0},
    {"truncated sequence", WD ",\"dest_tag\":\"\xe6\x97\"}", 0, 0},
    {"utf-8 outside strings", WD ",\xc3\xa9}", 0, 0},
    {"raw tab in a value", WD ",\"dest_tag\":\"a\tb\"}", 0, 0},
    {"raw newline in a value", WD ",\"dest_tag\":\"a\nb\"}", 0, 0},
    {"raw control byte", WD ",\"dest_tag\":\"a\x01\"}", 0, 0},
    {"raw DEL", WD ",\"dest_tag\":\"a\x7f\"}", 0, 1},
    /* keys near the contract's */
    {"key shares both words of account_created_at", WD ",\"account_XXeated_at\":\"2020-01-01T00:00:00Z\"}", 0, 1},
    {"account_created_at", WD ",\"account_created_at\":\"2020-01-01T00:00:00Z\"}", 0, 1},
    {"computed field name", WD ",\"reconciled\":true,\"reconcile_problem\":1}", 0, 1},
    {"empty key", WD ",\"\":1}", 0, 1},
    {"long unknown key", WD ",\"account_created_at_and_more\":\"x\"}", 0, 1},
    {"a field of another type", WD ",\"wallet_id\":7}", 0, 1},
    /* literals */
    {"truex", WD ",\"x\":truex}", 0, 0},
    {"nul", WD ",\"x\":nul}", 0, 0},
    {"null optional", WD ",\"dest_tag\":null,\"balance_usd\":null,\"withdrawal_ids\":null}", 0, 1},
    {"null required", "{" WD_NO_MONEY ",\"amount\":null,\"amount_usd\":1}", 0, 0},
    {"extra values", WD ",\"vip\":true,\"flagged\":false,\"note\":null,\"meta\":[1],\"fee\":-0,\"x\":\"s\"}",
     0, 1},
    {"extra number too long", WD ",\"fee\":12345678901234567890}", 0, -1},
    {"nested unknown", WD ",\"meta\":{\"a\":1}}", 0, 0},
    {"nested array", WD ",\"meta\":[[1]]}", 0, 0},
    {"nesting 9 deep", WD ",\"meta\":[[[[[[[[1]]]]]]]]}", 0, 0},
    /* timestamps */
    {"ts without millis", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:00Z\"}", 0, 1},
    {"ts one decimal", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:00.5Z\"}", 0, 1},
    {"ts nine decimals", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:00.123456789Z\"}", 0, 1},
    {"ts ten decimals", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:00.1234567890Z\"}", 0, 0},
    {"ts lowercase", "{" WD_NO_TS ",\"ts\":\"2024-01-01t00:00:00z\"}", 0, 1},
    {"ts space", "{" WD_NO_TS ",\"ts\":\"2024-01-01 00:00:00Z\"}", 0, 1},
    {"ts offset", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:00.250+05:30\"}", 0, 1},
    {"ts bad offset", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:00+24:00\"}", 0, 0},
    {"ts leap day", "{" WD_NO_TS ",\"ts\":\"2024-02-29T23:59:59.999Z\"}", 0, 1},
    {"ts no leap day", "{" WD_NO_TS ",\"ts\":\"2023-02-29T00:00:00Z\"}", 0, 0},
    {"ts 2000-02-29", "{" WD_NO_TS ",\"ts\":\"2000-02-29T00:00:00.000Z\"}", 0, 1},
    {"ts 1900-02-29", "{" WD_NO_TS ",\"ts\":\"1900-02-29T00:00:00.000Z\"}", 0, 0},
    {"ts year 0", "{" WD_NO_TS ",\"ts\":\"0000-03-01T00:00:00Z\"}", 0, 1},
    {"ts year 9999", "{" WD_NO_TS ",\"ts\":\"9999-12-31T23:59:59.999Z\"}", 0, 1},
    {"ts second 60", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:60Z\"}", 0, 0},
    {"ts hour 24", "{" WD_NO_TS ",\"ts\":\"2024-01-01T24:00:00.000Z\"}", 0, 0},
    {"ts month 13", "{" WD_NO_TS ",\"ts\":\"2024-13-01T00:00:00Z\"}", 0, 0},
    {"ts no zone", "{" WD_NO_TS ",\"ts\":\"2024-01-01T00:00:00.000\"}", 0, 0},
    {"ts integer", "{" WD_NO_TS ",\"ts\":1704067200000}", 0, 1},
    {"ts integer with exponent", "{" WD_NO_TS ",\"ts\":1.7040672e12}", 0, 1},
    {"ts -0", "{" WD_NO_TS ",\"ts\":-0}", 0, 1},
    {"ts 0", "{" WD_NO_TS ",\"ts\":0}", 0, 1},
    {"ts max", "{" WD_NO_TS ",\"ts\":253402300799999}", 0, 1},
    {"ts past max", "{" WD_NO_TS ",\"ts\":253402300800000}", 0, 0},
    {"ts fraction", "{" WD_NO_TS ",\"ts\":1704067200000.5}", 0, 0},
    {"ts negative", "{" WD_NO_TS ",\"ts\":-1}", 0, 0},
    /* types and ids */
    {"security", "{" SEC_ALL "}", 0, 1},
    {"balance", "{" BAL_BASE ",\"balance\":\"12.5\",\"balance_usd\":12.5}", 0, 1},
    {"outflow no ids", "{" OUT_BASE "}", 0, 1},
    {"outflow empty ids", "{" OUT_BASE ",\"withdrawal_ids\":[]}", 0, 1},
    {"outflow ids", "{" OUT_BASE ",\"withdrawal_ids\":[\"a\",\"b\",\"c\"]}", 0, 1},
    {"outflow 17 ids", "{" OUT_BASE ",\"withdrawal_ids\":[" ID16 "\"i\"]}", 0, 1},
    {"outflow 257 ids", "{" OUT_BASE ",\"withdrawal_ids\":[" ID256 "\"i\"]}", 0, 0},
    {"outflow 257 numbers", "{" OUT_BASE ",\"zz\":[" ID256 "1]}", 0, 1},
    {"outflow empty id", "{" OUT_BASE ",\"withdrawal_ids\":[\"a\",\"\"]}", 0, 0},
    {"outflow number id", "{" OUT_BASE ",\"withdrawal_ids\":[\"a\",1]}", 0, 0},
    {"outflow null id", "{" OUT_BASE ",\"withdrawal_ids\":[null]}", 0, 0},
    {"outflow nested ids", "{" OUT_BASE ",\"withdrawal_ids\":[[\"a\"]]}", 0, 0},
    {"outflow ids not an array", "{" OUT_BASE ",\"withdrawal_ids\":\"a\"}", 0, 0},
    {"outflow unknown array of strings too", "{" OUT_BASE ",\"zz\":[\"x\",\"y\"],\"withdrawal_ids\":[\"a\"]}",
     0, 1},
    {"unknown type", "{" E_ID ",\"type\":\"withdrawal\"," TS_OK "}", 0, 0},
    {"type a number", "{" E_ID ",\"type\":5," TS_OK "}", 0, 0},
    {"type null", "{" E_ID ",\"type\":null," TS_OK "}", 0, 0},
    {"type missing", "{" E_ID "," TS_OK "}", 0, 0},
    {"type with a NUL escape", "{" WD_ALL ",\"x\":1,\"type\":\"withdrawal.requested\\u0000\"}", 0, 0},
};

START_TEST(diff_edges)
{
    struct diff c;
    diff_init(&c);
    for (size_t i = 0; i < DG_ARRAY_LEN(edges); i++) {
        const struct edge *e = &edges[i];
        size_t len = e->len ? e->len : strlen(e->in);
        int fast = diff_one(&c, e->name, e->in, len);
        if (e->path >= 0 && fast != e->path)
            ck_abort_msg("edge '%s': %s the fast path", e->name, fast ? "took" : "did not take");
        /* every prefix is cut short: all rejected, the same way */
        for (size_t n = 0; n < len; n++)
            diff_one(&c, e->name, e->in, n);
    }
    diff_free(&c);
}
END_TEST

START_TEST(diff_big_events)
{
    struct diff c;
    size_t n = DG_MAX_EVENT_BYTES + 1;
    char *buf = malloc(n);
    diff_init(&c);

    /* a valid event padded with a long string to exactly the limit, and
     * one byte past it */
    int head = snprintf(buf, n, "{" WD_ALL ",\"pad\":\"");
    memset(buf + head, 'x', n - (size_t)head);
    memcpy(buf + DG_MAX_EVENT_BYTES - 2, "\"}", 2);
    ck_assert_int_eq(diff_one(&c, "64 KiB", buf, DG_MAX_EVENT_BYTES), 1);
    memcpy(buf + DG_MAX_EVENT_BYTES - 2, "x\"}", 3);
    ck_assert_int_eq(diff_one(&c, "64 KiB + 1", buf, DG_MAX_EVENT_BYTES + 1), 0);
    /* 256 ids are allowed, 257 are not */
    dg_buf b = {0};
    dg_buf_puts(&b, "{" OUT_BASE ",\"withdrawal_ids\":[\"i0\"");
    for (int i = 1; i < 256; i++)
        dg_buf_printf(&b, ",\"i%d\"", i);
    dg_buf_puts(&b, "]}");
    ck_assert_int_eq(diff_one(&c, "256 ids", b.data, b.len), 1);
    b.len -= 2;
    dg_buf_puts(&b, ",\"i256\"]}");
    ck_assert_int_eq(diff_one(&c, "257 ids", b.data, b.len), 0);
    dg_buf_free(&b);
    /* many members */
    memset(&b, 0, sizeof b);
    dg_buf_puts(&b, "{" WD_ALL);
    for (int i = 0; i < 500; i++)
        dg_buf_printf(&b, ",\"k%d\":[%d,\"%d\"]", i, i, i);
    dg_buf_putc(&b, '}');
    ck_assert_int_eq(diff_one(&c, "500 members", b.data, b.len), 1);
    dg_buf_free(&b);
    free(buf);
    diff_free(&c);
}
END_TEST

/* dg_fast_time() gives what dg_time_parse_rfc3339() gives, whenever it
 * answers, with and without its memo, over every day of some years and
 * broken spellings of them. */
START_TEST(fast_time_agrees)
{
    static const int years[] = {0, 1, 1899, 1900, 1970, 1999, 2000, 2001, 2023, 2024, 2100, 9999};
    struct dg_fast_day memo = {0};
    uint64_t seed = 42;
    unsigned long answered = 0;

    for (size_t yi = 0; yi < DG_ARRAY_LEN(years); yi++) {
        for (int mo = 0; mo <= 13; mo++) {
            for (int d = 0; d <= 32; d++) {
                for (int k = 0; k < 6; k++) {
                    char s[40];
                    int len = snprintf(s, sizeof s, "%04d-%02d-%02dT%02u:%02u:%02u", years[yi], mo, d,
                                       rng_below(&seed, 25), rng_below(&seed, 61), rng_below(&seed, 61));
                    if (k & 1)
                        len += snprintf(s + len, sizeof s - (size_t)len, ".%03u", rng_below(&seed, 1000));
                    s[len++] = 'Z';
                    s[len] = '\0';
                    if (k >= 4) /* one byte broken */
                        s[rng_below(&seed, (unsigned)len)] = "0Z:-T.9a "[rng_below(&seed, 9)];
                    int64_t a = -1, b = -1, c = -1;
                    int ra = dg_fast_time(s, (size_t)len, &a, NULL);
                    int rm = dg_fast_time(s, (size_t)len, &c, &memo);
                    int rb = dg_time_parse_rfc3339(s, (size_t)len, &b);
                    ck_assert_int_eq(ra, rm);
                    if (ra == 0) {
                        answered++;
                        if (rb != 0 || a != b || c != b)
                            ck_abort_msg("'%s': fast %lld, memo %lld, full %d/%lld", s, (long long)a,
                                         (long long)c, rb, (long long)b);
                    } else if (rb == 0 && k < 4 && strlen(s) >= 20 && (len == 20 || len == 24)) {
                        ck_abort_msg("'%s': valid, but the fast parser declined", s);
                    }
                }
            }
        }
    }
    ck_assert_uint_gt(answered, 10000);
}
END_TEST

static Suite *decode_suite(void)
{
    Suite *s = suite_create("decode");
    TCase *tc;

    tc = tcase_create("reject");
    tcase_add_loop_test(tc, bad_input_table, 0, (int)DG_ARRAY_LEN(bad_rows));
    tcase_add_test(tc, table_covers_every_code);
    tcase_add_test(tc, too_large);
    tcase_add_test(tc, id_lengths);
    tcase_add_test(tc, too_many_ids);
    tcase_add_test(tc, nesting_limits);
    tcase_add_test(tc, reject_messages);
    tcase_add_test(tc, salvage);
    suite_add_tcase(s, tc);

    tc = tcase_create("accept");
    tcase_add_test(tc, withdrawal_full);
    tcase_add_test(tc, withdrawal_integer_ts);
    tcase_add_test(tc, security_event);
    tcase_add_test(tc, outflow_event);
    tcase_add_test(tc, balance_event);
    tcase_add_test(tc, amount_spellings_agree);
    tcase_add_test(tc, lenient_but_safe);
    tcase_add_test(tc, reuse_and_lifetime);
    tcase_add_test(tc, decoder_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("contract");
    tcase_add_test(tc, contract_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("differential");
    tcase_set_timeout(tc, 300); /* the sanitizer build is slow */
    tcase_add_test(tc, diff_edges);
    tcase_add_test(tc, diff_big_events);
    tcase_add_test(tc, diff_case_events);
    tcase_add_test(tc, diff_fuzz_seeds);
    tcase_add_test(tc, diff_bench_events);
    tcase_add_test(tc, diff_generated);
    tcase_add_test(tc, fast_time_agrees);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(decode_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
