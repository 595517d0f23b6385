/*
 * util.h - small building blocks shared by every stage of the pipeline:
 * hashing, a bump arena, a growable byte buffer, time parsing and formatting.
 * Nothing here does I/O or knows about events or rules.
 */
#ifndef DG_UTIL_H
#define DG_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>

#define DG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* 64-bit FNV-1a, finalised with murmur's fmix64 so low bits mix well. */
uint64_t dg_hash64(const void *data, size_t len, uint64_t seed);

/* Lowercase hex of a 128-bit hash of data (33 bytes with the NUL). */
void dg_hash128_hex(const void *data, size_t len, char out[33]);

/* llround(x) (halves away from zero) for |x| < 9.2e18, without the libm
 * call: the cast truncates, and x minus its integer part is exact. */
static inline int64_t dg_round(double x)
{
    int64_t i = (int64_t)x;
    double f = x - (double)i;
    return f >= 0.5 ? i + 1 : f <= -0.5 ? i - 1 : i;
}

/* ---- little-endian integers in byte buffers (blobs, Redis values) ---- */
static inline void dg_put_le64(void *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}
static inline uint64_t dg_get_le64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static inline void dg_put_le32(void *p, uint32_t v)
{
    unsigned char t[8];
    dg_put_le64(t, v);
    memcpy(p, t, 4);
}
static inline uint32_t dg_get_le32(const void *p)
{
    unsigned char t[8] = {0};
    memcpy(t, p, 4);
    return (uint32_t)dg_get_le64(t);
}

/* ---- arena: bump allocator, freed all at once ---- */
typedef struct dg_arena_block dg_arena_block;
typedef struct dg_arena {
    dg_arena_block *head;
    dg_arena_block *spare;    /* blocks a reset kept for reuse */
    size_t block_size, spare_bytes;
    unsigned char *cur, *end; /* free space in head: the inline fast path */
} dg_arena;

void dg_arena_init(dg_arena *a, size_t block_size);
void *dg_arena_alloc_slow(dg_arena *a, size_t n);
/* Returns 8-byte aligned memory; aborts on out-of-memory like dg_xmalloc.
 * Inline: cJSON calls it for every node it parses. */
static inline void *dg_arena_alloc(dg_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if ((size_t)(a->end - a->cur) >= n) {
        void *p = a->cur;
        a->cur += n;
        return p;
    }
    return dg_arena_alloc_slow(a, n);
}
char *dg_arena_strndup(dg_arena *a, const char *s, size_t n);
/* Forget everything allocated; the blocks are kept for reuse (up to
 * DG_ARENA_KEEP bytes), so an arena reset per batch stops allocating once
 * it has seen its largest batch. */
#define DG_ARENA_KEEP (32u << 20)
void dg_arena_reset(dg_arena *a);
void dg_arena_free(dg_arena *a);

/* ---- growable buffer ---- */
typedef struct dg_buf {
    char *data;
    size_t len, cap;
} dg_buf;

void dg_buf_reserve(dg_buf *b, size_t extra);
void dg_buf_append(dg_buf *b, const void *p, size_t n);
void dg_buf_putc(dg_buf *b, char c);
void dg_buf_puts(dg_buf *b, const char *s);
void dg_buf_printf(dg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void dg_buf_json_str(dg_buf *b, const char *s, size_t n);
/* The most bytes a JSON string literal of n input bytes takes: every byte
 * may become a \u00XX escape, plus the quotes. */
#define DG_JSON_STR_MAX(n) (6 * (size_t)(n) + 2)
/* Write s as a JSON string literal at p, which has room for
 * DG_JSON_STR_MAX(n) bytes (no NUL is written); returns the end. The same
 * escapes as dg_buf_json_str: for encoders that size their output once. */
char *dg_json_str_put(char *p, const char *s, size_t n);
void dg_buf_free(dg_buf *b);

/* ---- allocation that never returns NULL (we abort: a detector that
 * silently drops state is worse than one that restarts) ---- */
void *dg_xmalloc(size_t n);
void *dg_xcalloc(size_t n, size_t size);
void *dg_xrealloc(void *p, size_t n);
char *dg_xstrdup(const char *s);
char *dg_xstrndup(const char *s, size_t n);

/* Ask for transparent huge pages for the 2 MB-aligned part of
 * [p, p + n): for large tables read at random, where 4 KB pages would
 * also miss the TLB. A hint: no effect where THP is off or unsupported. */
void dg_advise_hugepages(void *p, size_t n);

/* ---- time ---- */
/* Parse an RFC 3339 timestamp ("2019-05-07T17:15:24.123Z"; offsets allowed,
 * 1 to 9 fraction digits, truncated below 1 ms; no zone, a leap second :60
 * or a year outside 0000..9999 is invalid).
 * Returns 0 and sets *ms (epoch milliseconds) on success, -1 otherwise. */
int dg_time_parse_rfc3339(const char *s, size_t len, int64_t *ms);
/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil): exact over the whole int64 range we use. */
int64_t dg_days_from_civil(int64_t y, unsigned m, unsigned d);
/* Format epoch ms as "2019-05-07T17:15:24.123Z" (millis omitted when 0).
 * out must hold 32 bytes. */
void dg_time_format(int64_t ms, char out[32]);
/* Parse a duration "90s", "10m", "24h", "7d", "250ms", "0s", or a sum "1h30m".
 * Returns 0 and *ms on success, -1 otherwise. */
int dg_duration_parse(const char *s, size_t len, int64_t *ms);
/* Format a duration exactly, largest unit first (d, h, m, s, ms; never w):
 * "1h30m", "1m30s", "250ms", "0s"; negative with a leading '-'. */
void dg_duration_format(int64_t ms, char out[32]);
/* Format a number the way reasons show it: integers without a fraction,
 * others with up to 6 decimals and no trailing zeros. out holds 40 bytes. */
void dg_number_format(double v, char out[40]);

/* Levenshtein distance, capped: used for "did you mean" suggestions. */
int dg_edit_distance(const char *a, const char *b);

/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? 1 if yes. */
int dg_utf8_valid(const char *s, size_t len);

#endif
