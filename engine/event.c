/*
 * event.c - the event contract (shared/spec/events.md, version 1) as data:
 * one row per contract field saying how its JSON is checked and on which
 * event types it is required, optional or not part of the contract, plus the
 * stable names of event types, reject codes and value types.
 *
 * decode_event.c enforces this table and rules_compile.c types field
 * references with it, so a contract change (only ever a new optional field)
 * is one new enum value in event.h and one new row here.
 */
#include <string.h>

#include "event.h"
#include "value.h"

/* Presence columns, in enum dg_event_type order:
 * withdrawal.requested, account.security, wallet.outflow, wallet.balance. */
#define P_ (DG_P_ABSENT)
#define PO (DG_P_OPTIONAL)
#define PR (DG_P_REQUIRED)

/* The spec bounds ids at 128 bytes, asset and chain at 32 and dest_address
 * at 256; every other string gets 256 so that a hostile producer cannot make
 * us carry (and echo into reasons) kilobytes per field. An amount given as
 * a decimal string is bounded at 64 bytes: that is ample for any real amount
 * and keeps the string-to-double conversion on a small stack buffer. */
#define ID_LEN 128
#define STR_LEN 256
#define AMT_LEN 64

const struct dg_field_def dg_fields[DG_F_NKNOWN] = {
    /*                          name                  kind              min0  max_len   WDR SEC OUT BAL */
    [DG_F_EVENT_ID]         = { "event_id",           DG_FK_STRING,     0, ID_LEN,  { PR, PR, PR, PR } },
    [DG_F_TYPE]             = { "type",               DG_FK_STRING,     0, 32,      { PR, PR, PR, PR } },
    [DG_F_TS]               = { "ts",                 DG_FK_TIME,       0, 0,       { PR, PR, PR, PR } },
    [DG_F_WITHDRAWAL_ID]    = { "withdrawal_id",      DG_FK_STRING,     0, ID_LEN,  { PR, P_, P_, P_ } },
    [DG_F_ACCOUNT_ID]       = { "account_id",         DG_FK_STRING,     0, ID_LEN,  { PR, PR, P_, P_ } },
    [DG_F_ASSET]            = { "asset",              DG_FK_STRING,     0, 32,      { PR, P_, PR, PR } },
    [DG_F_CHAIN]            = { "chain",              DG_FK_STRING,     0, 32,      { PR, P_, PR, PR } },
    [DG_F_AMOUNT]           = { "amount",             DG_FK_AMOUNT,     0, AMT_LEN, { PR, P_, PR, P_ } },
    [DG_F_AMOUNT_USD]       = { "amount_usd",         DG_FK_NUMBER,     1, 0,       { PR, P_, PR, P_ } },
    [DG_F_DEST_ADDRESS]     = { "dest_address",       DG_FK_STRING,     0, STR_LEN, { PR, P_, PR, P_ } },
    [DG_F_DEST_TAG]         = { "dest_tag",           DG_FK_STRING,     0, STR_LEN, { PO, P_, P_, P_ } },
    [DG_F_HOT_WALLET]       = { "hot_wallet",         DG_FK_STRING,     0, STR_LEN, { PO, P_, P_, P_ } },
    [DG_F_BALANCE_USD]      = { "balance_usd",        DG_FK_NUMBER,     1, 0,       { PO, P_, P_, PR } },
    [DG_F_ACCOUNT_CREATED_AT] = { "account_created_at", DG_FK_TIME,     0, 0,       { PO, P_, P_, P_ } },
    [DG_F_CHANNEL]          = { "channel",            DG_FK_STRING,     0, STR_LEN, { PO, P_, P_, P_ } },
    [DG_F_API_KEY_ID]       = { "api_key_id",         DG_FK_STRING,     0, STR_LEN, { PO, PO, P_, P_ } },
    [DG_F_IP]               = { "ip",                 DG_FK_STRING,     0, STR_LEN, { PO, PO, P_, P_ } },
    [DG_F_DEVICE_ID]        = { "device_id",          DG_FK_STRING,     0, STR_LEN, { PO, PO, P_, P_ } },
    [DG_F_ACTION]           = { "action",             DG_FK_STRING,     0, STR_LEN, { P_, PR, P_, P_ } },
    [DG_F_ADDRESS]          = { "address",            DG_FK_STRING,     0, STR_LEN, { P_, PO, P_, P_ } },
    [DG_F_WALLET_ID]        = { "wallet_id",          DG_FK_STRING,     0, STR_LEN, { P_, P_, PR, PR } },
    [DG_F_TX_HASH]          = { "tx_hash",            DG_FK_STRING,     0, STR_LEN, { P_, P_, PR, P_ } },
    /* max_len here bounds each id; the count is DG_MAX_WITHDRAWAL_IDS */
    [DG_F_WITHDRAWAL_IDS]   = { "withdrawal_ids",     DG_FK_STR_ARRAY,  0, ID_LEN,  { P_, P_, PO, P_ } },
    [DG_F_BALANCE]          = { "balance",            DG_FK_AMOUNT,     1, AMT_LEN, { P_, P_, P_, PR } },
    [DG_F_RECONCILED]       = { "reconciled",         DG_FK_COMPUTED,   0, 0,       { P_, P_, PO, P_ } },
    [DG_F_RECONCILE_PROBLEM]= { "reconcile_problem",  DG_FK_COMPUTED,   0, 0,       { P_, P_, PO, P_ } },
};

/* Linear: 24 short names, called when rules are compiled and by tools,
 * never per event (the decoder builds its own hash table). */
int dg_field_lookup(const char *name, size_t len)
{
    for (int i = 0; i < DG_F_NKNOWN; i++) {
        const char *n = dg_fields[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return i;
    }
    return -1;
}

dg_type dg_field_type(int field)
{
    if (field < 0 || field >= DG_F_NKNOWN)
        return DG_T_NONE;
    switch (dg_fields[field].kind) {
    case DG_FK_STRING:
        return DG_T_STR;
    case DG_FK_TIME:
        return DG_T_TIME;
    case DG_FK_AMOUNT:
    case DG_FK_NUMBER:
        return DG_T_NUM;
    case DG_FK_STR_ARRAY:
        return DG_T_NUM; /* rules see the number of ids */
    case DG_FK_COMPUTED:
        return field == DG_F_RECONCILED ? DG_T_BOOL : DG_T_STR;
    default:
        return DG_T_NONE;
    }
}

static const char *const event_type_names[DG_EV_NTYPES] = {
    [DG_EV_WITHDRAWAL] = "withdrawal.requested",
    [DG_EV_SECURITY] = "account.security",
    [DG_EV_OUTFLOW] = "wallet.outflow",
    [DG_EV_BALANCE] = "wallet.balance",
};

const char *dg_event_type_name(int type)
{
    if (type < 0 || type >= DG_EV_NTYPES)
        return "unknown";
    return event_type_names[type];
}

int dg_event_type_lookup(const char *name, size_t len)
{
    for (int i = 0; i < DG_EV_NTYPES; i++) {
        const char *n = event_type_names[i];
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return i;
    }
    return -1;
}

/* These appear in metrics, dead-letter headers and summaries: never rename. */
static const char *const reject_names[DG_R_NCODES] = {
    [DG_R_TOO_LARGE] = "too_large",
    [DG_R_BAD_UTF8] = "bad_utf8",
    [DG_R_BAD_JSON] = "bad_json",
    [DG_R_NOT_OBJECT] = "not_object",
    [DG_R_TOO_DEEP] = "too_deep",
    [DG_R_MISSING_FIELD] = "missing_field",
    [DG_R_BAD_TYPE] = "bad_type",
    [DG_R_BAD_VALUE] = "bad_value",
    [DG_R_TOO_LONG] = "too_long",
    [DG_R_UNKNOWN_TYPE] = "unknown_type",
};

const char *dg_reject_name(int code)
{
    if (code < 0 || code >= DG_R_NCODES)
        return "unknown";
    return reject_names[code];
}

const char *dg_type_name(dg_type t)
{
    switch (t) {
    case DG_T_NONE:
        return "missing";
    case DG_T_NUM:
        return "number";
    case DG_T_STR:
        return "string";
    case DG_T_TIME:
        return "time";
    case DG_T_DUR:
        return "duration";
    case DG_T_BOOL:
        return "boolean";
    case DG_T_ANY:
        return "any";
    }
    return "unknown";
}
