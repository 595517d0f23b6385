/*
 * test_decode.c - Check suite for engine/decode_event.c and the contract
 * table in engine/event.c: a table of hostile inputs with the reject code,
 * field and salvaged withdrawal_id each must produce, then decoded values
 * for each of the four event types.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
