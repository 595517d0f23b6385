/*
 * decode_fast.h - inside the decode stage: the fast scanner (decode_fast.c)
 * that decode_event.c tries before cJSON, and the hooks that let tests and
 * the fuzzer hold the two paths against each other. Not a public API.
 */
#ifndef DG_DECODE_FAST_H
#define DG_DECODE_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

/* Zero bytes the scanner needs after the input: it reads up to 16 bytes at
 * a time and stops at the NUL at p[len]. */
#define DG_FAST_PAD 16
/* Names the scanner looks for, each with its own slot: the contract fields
 * and the extra fields of one rule set. */
#define DG_FAST_MAX_SLOTS 128
/* Strings in arrays the scanner keeps; an event with more goes to cJSON. */
#define DG_FAST_MAX_ELEMS DG_MAX_WITHDRAWAL_IDS

#define DG_FAST_KEY_BITS 9 /* a table of 512 for <= 88 names: load < 0.2 */

/* The names, by the words that identify them (see dg_fast_keys_add), and
 * by slot the bytes a key of that name is spelled with when it is plain
 * ASCII: the name and its closing quote, so that a predicted key is
 * checked with one compare. */
struct dg_fast_keys {
    struct dg_fast_key {
        const char *name; /* NULL: empty */
        uint64_t a, b;
        uint32_t len;
        int32_t slot;
    } k[1 << DG_FAST_KEY_BITS];
    struct dg_fast_spelling {
        char text[16]; /* name '"', zero-padded */
        uint32_t len;  /* bytes of name and quote */
        uint32_t want; /* (1 << len) - 1; above 16 bits (never met) when
                          the name is not plain or too long */
    } spelling[DG_FAST_MAX_SLOTS];
};

/* Put name (not copied: it must outlive t) in t with this slot, unless it
 * is there already. Returns its slot. t starts zeroed. */
int dg_fast_keys_add(struct dg_fast_keys *t, const char *name, int slot);

enum dg_fast_kind {
    DG_FV_STR,   /* s[0..len), NUL-terminated in place at s[len] */
    DG_FV_NUM,   /* num, when exact */
    DG_FV_TRUE,
    DG_FV_FALSE,
    DG_FV_NULL,
    DG_FV_ARRAY  /* len elements; when strs, all strings, in elem[first..] */
};

/* The value of one named member, as the scanner saw it. */
struct dg_fast_value {
    const char *s;  /* DG_FV_STR */
    double num;     /* DG_FV_NUM: the double cJSON's strtod gives, if exact */
    uint32_t len;   /* DG_FV_STR: bytes; DG_FV_ARRAY: elements */
    uint32_t first; /* DG_FV_ARRAY with strs: index into elem[] */
    uint8_t kind;   /* enum dg_fast_kind */
    uint8_t exact;  /* DG_FV_NUM: num is valid */
    uint8_t strs;   /* DG_FV_ARRAY: every element is a string */
};

/* One scanned object: the value of each slot whose name it holds (bit
 * slot of seen[] set), pointing into the scanned buffer. Members with
 * other names are checked and skipped. */
struct dg_fast {
    /* kept from one scan to the next (starts zeroed): the slot that
     * followed each slot last time, plus one (0: none yet); the first
     * member's at [DG_FAST_MAX_SLOTS]. Producers send their fields in a
     * fixed order, so a key is usually the one predicted. */
    uint8_t next[DG_FAST_MAX_SLOTS + 1];
    /* the output */
    uint64_t seen[DG_FAST_MAX_SLOTS / 64];
    size_t nelem;
    struct dg_fast_value v[DG_FAST_MAX_SLOTS];
    const char *elem[DG_FAST_MAX_ELEMS];  /* NUL-terminated in place */
    uint32_t elem_len[DG_FAST_MAX_ELEMS];
};

/* Scan p[0..len), which must be followed by DG_FAST_PAD zero bytes, as one
 * JSON object of the simple shape (see decode_fast.c). Returns 0 when
 * cJSON would parse exactly these members with exactly these values, no
 * name of keys occurs twice, and the decoder's byte checks (UTF-8, control
 * bytes, escapes, trailing data) would pass; -1 when the input needs the
 * cJSON path. Writes a NUL over the closing quote of every string value. */
int dg_fast_scan(struct dg_fast *fs, const struct dg_fast_keys *keys, char *p, size_t len);

/* The last valid date dg_fast_time() saw for one field: events come in
 * time order, so most share it. Starts zeroed. */
struct dg_fast_day {
    char date[10]; /* "YYYY-MM-DD" */
    int valid;
    int64_t days;
};

/* An RFC 3339 time spelled "YYYY-MM-DDTHH:MM:SSZ" or "...:SS.mmmZ":
 * returns 0 with *ms as dg_time_parse_rfc3339() gives it, -1 when s is
 * spelled any other way (valid or not: ask that function). memo may be
 * NULL. */
int dg_fast_time(const char *s, size_t len, int64_t *ms, struct dg_fast_day *memo);

/* A decimal amount ^[0-9]+(\.[0-9]+)?$ of at most 16 bytes and 15
 * significant digits: returns 0 with *out as decode_event.c's
 * parse_decimal() gives it, -1 for anything else (ask that function).
 * s[len] must not be a digit (the scanner's strings end in their NUL). */
int dg_fast_decimal(const char *s, size_t len, double *out);

/* ---- self-checks, for tests and the fuzzer ---- */

/* Decode buf[0..len) with dg_decode() on d and with the cJSON path alone
 * on ref (two decoders made with the same extra fields), and compare all
 * a caller can see: the return value, every field of the event (strings by
 * bytes and termination, numbers bit for bit) or of the reject. Returns 0
 * when they agree, -1 with the first difference in why[]. *fast (may be
 * NULL) is set to 1 when d took the fast path. */
int dg_decode_compare(dg_decoder *d, dg_decoder *ref, const char *buf, size_t len,
                      int *fast, char *why, size_t whysz);

/* Events this decoder decoded on the fast path, and those it left to
 * cJSON (rejects included), since it was made. */
void dg_decoder_stats(const dg_decoder *d, uint64_t *fast, uint64_t *slow);

#endif
