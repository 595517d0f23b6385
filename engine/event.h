/*
 * event.h - the event contract (shared/spec/events.md) as data, the decoded
 * event, and the decoder API. decode_event.c is the only file that sees
 * cJSON; everything downstream works on struct dg_event.
 */
#ifndef DG_EVENT_H
#define DG_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include "value.h"

#define DG_MAX_EVENT_BYTES (64 * 1024)
#define DG_MAX_DEPTH 8            /* nesting of objects/arrays in one event */
#define DG_MAX_WITHDRAWAL_IDS 256 /* ids one outflow may pay */
#define DG_MAX_EXTRA_FIELDS 64    /* unknown fields rules may refer to */

enum dg_event_type {
    DG_EV_WITHDRAWAL = 0, /* withdrawal.requested */
    DG_EV_SECURITY,       /* account.security */
    DG_EV_OUTFLOW,        /* wallet.outflow */
    DG_EV_BALANCE,        /* wallet.balance */
    DG_EV_NTYPES
};
#define DG_EV_BIT(t) (1u << (t))
#define DG_EV_ALL ((1u << DG_EV_NTYPES) - 1)

const char *dg_event_type_name(int type);
/* -1 when unknown */
int dg_event_type_lookup(const char *name, size_t len);

/* Every field of the contract, one slot each in struct dg_event. */
enum dg_field {
    DG_F_EVENT_ID = 0,
    DG_F_TYPE,
    DG_F_TS,
    DG_F_WITHDRAWAL_ID,
    DG_F_ACCOUNT_ID,
    DG_F_ASSET,
    DG_F_CHAIN,
    DG_F_AMOUNT,
    DG_F_AMOUNT_USD,
    DG_F_DEST_ADDRESS,
    DG_F_DEST_TAG,
    DG_F_HOT_WALLET,
    DG_F_BALANCE_USD,
    DG_F_ACCOUNT_CREATED_AT,
    DG_F_CHANNEL,
    DG_F_API_KEY_ID,
    DG_F_IP,
    DG_F_DEVICE_ID,
    DG_F_ACTION,
    DG_F_ADDRESS,
    DG_F_WALLET_ID,
    DG_F_TX_HASH,
    DG_F_WITHDRAWAL_IDS, /* array of strings; as a value: the count */
    DG_F_BALANCE,
    /* computed by the engine, never read from the input (DG_FK_COMPUTED) */
    DG_F_RECONCILED,        /* wallet.outflow: every request it pays was
                               allowed, unpaid, to this destination, and
                               the amounts agree */
    DG_F_RECONCILE_PROBLEM, /* wallet.outflow: why not, in a sentence */
    DG_F_NKNOWN
};

/* How a field's JSON is checked and converted. */
enum dg_field_kind {
    DG_FK_STRING,    /* JSON string, length-bounded */
    DG_FK_TIME,      /* RFC 3339 string or integer epoch ms */
    DG_FK_AMOUNT,    /* decimal string or number; > 0 (>= 0 with min0) */
    DG_FK_NUMBER,    /* JSON number, >= 0, finite */
    DG_FK_STR_ARRAY, /* array of strings */
    DG_FK_COMPUTED   /* set by the engine; an input field of that name is
                        just an unknown field */
};

/* Presence of a field on one event type. */
enum { DG_P_ABSENT = 0, DG_P_OPTIONAL = 1, DG_P_REQUIRED = 2 };

struct dg_field_def {
    const char *name;
    uint8_t kind;              /* enum dg_field_kind */
    uint8_t min_zero;          /* amounts: 0 allowed */
    uint16_t max_len;          /* strings: max bytes (min is 1) */
    uint8_t presence[DG_EV_NTYPES];
};

extern const struct dg_field_def dg_fields[DG_F_NKNOWN];
/* -1 when the name is not a contract field */
int dg_field_lookup(const char *name, size_t len);
/* the value type rules see for a contract field */
dg_type dg_field_type(int field);

/* A decoded, valid event. Strings point into memory owned by the decoder
 * and stay valid until the next dg_decode() on the same decoder. */
struct dg_event {
    int type;                    /* enum dg_event_type */
    int64_t ts_ms;               /* event time */
    int ts_is_int;               /* ts was an integer in the input */
    const char *ts_raw;          /* the ts string as received (NUL-terminated) */
    size_t ts_raw_len;
    dg_value f[DG_F_NKNOWN];     /* DG_T_NONE when absent */
    const char *const *ids;      /* withdrawal_ids (NUL-terminated strings) */
    size_t nids;
    dg_value extra[DG_MAX_EXTRA_FIELDS]; /* unknown fields rules asked for */
};

/* Why an input was rejected. The names (dg_reject_name) are stable: they
 * appear in summaries, dead-letter headers and metrics. */
enum dg_reject_code {
    DG_R_TOO_LARGE = 0, /* over 64 KiB */
    DG_R_BAD_UTF8,      /* not valid UTF-8 */
    DG_R_BAD_JSON,      /* not parseable as JSON */
    DG_R_NOT_OBJECT,    /* JSON but not an object */
    DG_R_TOO_DEEP,      /* nesting deeper than DG_MAX_DEPTH */
    DG_R_MISSING_FIELD, /* a required field is absent (or null) */
    DG_R_BAD_TYPE,      /* a field has the wrong JSON type */
    DG_R_BAD_VALUE,     /* right type, bad value: negative/non-finite amount,
                           bad timestamp, empty string, NUL byte */
    DG_R_TOO_LONG,      /* a string longer than the contract allows */
    DG_R_UNKNOWN_TYPE,  /* "type" is not one of the four */
    DG_R_NCODES
};

const char *dg_reject_name(int code);

/* A rejection: code, the field it concerns ("" when the whole input), a
 * message naming the field, and what could still be salvaged so that a
 * withdrawal is held rather than forgotten (fail closed). */
struct dg_reject {
    int code;
    char field[64];
    char msg[256];
    char event_id[129];      /* "" when not usable */
    char withdrawal_id[129]; /* "" when not usable */
    char account_id[129];    /* "" when not usable */
    char type[32];           /* "" when not usable */
    char ts_raw[64];         /* "" when not usable */
    int ts_is_int;
};

typedef struct dg_decoder dg_decoder;

/* Create a decoder. extra[] names the non-contract top-level fields rules
 * refer to (copied); the value of extra[i] lands in ev->extra[i] as a
 * string, number or boolean (other JSON types read as missing).
 * Returns NULL on bad arguments (n > DG_MAX_EXTRA_FIELDS). */
dg_decoder *dg_decoder_new(const char *const *extra, size_t n);
void dg_decoder_free(dg_decoder *d);

/* Decode one message or line. Returns 0 and fills *ev, or -1 and fills *rej.
 * buf need not be NUL-terminated. The event (and its strings) stay valid
 * until the next call on the same decoder. */
int dg_decode(dg_decoder *d, const char *buf, size_t len,
              struct dg_event *ev, struct dg_reject *rej);

#endif
