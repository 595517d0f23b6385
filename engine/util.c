/*
 * util.c - hashing, the bump arena, growable buffers and never-NULL
 * allocation. Used by every stage; owns nothing global.
 */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

uint64_t dg_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ fmix64(seed + 0x9e3779b97f4a7c15ULL);
    size_t i = 0;

    /* eight bytes a step: FNV's byte loop is the cost centre on long keys */
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return fmix64(h ^ len);
}

static void hex64(uint64_t v, char *out)
{
    static const char pairs[] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    for (int i = 14; i >= 0; i -= 2, v >>= 8)
        memcpy(out + i, pairs + 2 * (v & 0xff), 2);
}

void dg_hash128_hex(const void *data, size_t len, char out[33])
{
    uint64_t a = dg_hash64(data, len, 0x647261696e677561ULL); /* "draingua" */
    uint64_t b = dg_hash64(data, len, a ^ 0x7264000000000001ULL);
    hex64(a, out);
    hex64(b, out + 16);
    out[32] = '\0';
}

/* ---- allocation ---- */

static void oom(size_t n)
{
    fprintf(stderr, "drainguard: out of memory allocating %zu bytes\n", n);
    abort();
}

void *dg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *dg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *dg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *dg_xstrndup(const char *s, size_t n)
{
    char *p = dg_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *dg_xstrdup(const char *s)
{
    return dg_xstrndup(s, strlen(s));
}

void dg_advise_hugepages(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t from = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t to = ((uintptr_t)p + n) & ~(huge - 1);
    if (to > from)
        madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

/* ---- arena ---- */

struct dg_arena_block {
    dg_arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void dg_arena_init(dg_arena *a, size_t block_size)
{
    a->head = a->spare = NULL;
    a->spare_bytes = 0;
    a->block_size = block_size ? block_size : 4096;
    a->cur = a->end = NULL;
}

void *dg_arena_alloc_slow(dg_arena *a, size_t n)
{
    dg_arena_block *b = a->head;

    n = (n + 7) & ~(size_t)7;
    if (b)
        b->used = (size_t)(a->cur - b->data); /* what the fast path used */
    if (!b || b->size - b->used < n) {
        size_t sz = n > a->block_size ? n : a->block_size;
        dg_arena_block **pp = &a->spare;
        while (*pp && (*pp)->size < n)
            pp = &(*pp)->next;
        if (*pp) { /* a kept block */
            b = *pp;
            *pp = b->next;
            a->spare_bytes -= b->size;
        } else {
            b = dg_xmalloc(sizeof(*b) + sz);
            b->size = sz;
        }
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->cur = b->data + b->used;
    a->end = b->data + b->size;
    return p;
}

char *dg_arena_strndup(dg_arena *a, const char *s, size_t n)
{
    char *p = dg_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void dg_arena_reset(dg_arena *a)
{
    dg_arena_block *b = a->head;

    while (b) {
        dg_arena_block *next = b->next;
        if (a->spare_bytes + b->size <= DG_ARENA_KEEP) {
            b->next = a->spare;
            a->spare = b;
            a->spare_bytes += b->size;
        } else {
            free(b);
        }
        b = next;
    }
    a->head = NULL;
    a->cur = a->end = NULL;
}

static void free_blocks(dg_arena_block *b)
{
    while (b) {
        dg_arena_block *next = b->next;
        free(b);
        b = next;
    }
}

void dg_arena_free(dg_arena *a)
{
    free_blocks(a->head);
    free_blocks(a->spare);
    a->head = a->spare = NULL;
    a->spare_bytes = 0;
    a->cur = a->end = NULL;
}

/* ---- buffers ---- */

void dg_buf_reserve(dg_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = dg_xrealloc(b->data, cap);
    b->cap = cap;
}

void dg_buf_append(dg_buf *b, const void *p, size_t n)
{
    dg_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void dg_buf_putc(dg_buf *b, char c)
{
    dg_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void dg_buf_puts(dg_buf *b, const char *s)
{
    dg_buf_append(b, s, strlen(s));
}

void dg_buf_printf(dg_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    dg_buf_reserve(b, 64);
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        dg_buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* bytes that need escaping in a JSON string: controls, '"' and '\\' */
static const unsigned char json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/* A byte below 0x20, a '"' or a '\\' in w (8 bytes)? SWAR: exact on
 * whether there is one, not on where (the caller then goes byte by byte). */
static int json_word_needs_escape(uint64_t w)
{
    uint64_t lo = (w - 0x2020202020202020ULL) & ~w;
    uint64_t q = ((w ^ 0x2222222222222222ULL) - 0x0101010101010101ULL) & ~(w ^ 0x2222222222222222ULL);
    uint64_t bs = ((w ^ 0x5c5c5c5c5c5c5c5cULL) - 0x0101010101010101ULL) & ~(w ^ 0x5c5c5c5c5c5c5c5cULL);
    return ((lo | q | bs) & 0x8080808080808080ULL) != 0;
}

#ifdef __SSE2__
/* bit k set: s[k] of these 16 bytes needs escaping */
static unsigned json_block_mask(const char *s)
{
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i ctl = _mm_set1_epi8(0x1f);
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    /* unsigned v <= 0x1f: min(v, 0x1f) == v */
    __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                               _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
    return (unsigned)_mm_movemask_epi8(bad);
}
#endif

/* Bytes from s[i] on that need no escaping: the common case is a whole
 * string of them, checked 16 bytes a step, the last (partial) block by
 * loading the string's last 16 bytes again; shorter strings in words. */
static size_t json_plain_run(const char *s, size_t i, size_t n)
{
#ifdef __SSE2__
    if (n - i >= 16) {
        for (; i + 16 <= n; i += 16) {
            unsigned m = json_block_mask(s + i);
            if (m)
                return i + (size_t)__builtin_ctz(m);
        }
        if (i == n)
            return n;
        unsigned m = json_block_mask(s + n - 16) >> (16 - (n - i)); /* bytes i.. only */
        return m ? i + (size_t)__builtin_ctz(m) : n;
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (json_word_needs_escape(w))
            break;
    }
    if (i + 8 > n && n >= 8 && i < n) { /* the last 1..7 bytes, in one word */
        uint64_t w;
        unsigned sh = 8 * (unsigned)(8 - (n - i)); /* bytes before i: replaced by 'x' */
        memcpy(&w, s + n - 8, 8);
        if (!json_word_needs_escape(w >> sh | 0x7878787878787878ULL << (64 - sh)))
            return n;
    }
    while (i < n && !json_esc[(unsigned char)s[i]])
        i++;
    return i;
}

char *dg_json_str_put(char *p, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, run = 0;

    *p++ = '"';
    for (;;) {
        i = json_plain_run(s, i, n);
        memcpy(p, s + run, i - run);
        p += i - run;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        run = i;
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        default:
            memcpy(p, "u00", 3);
            p[3] = hex[c >> 4];
            p[4] = hex[c & 15];
            p += 5;
        }
    }
    *p++ = '"';
    return p;
}

void dg_buf_json_str(dg_buf *b, const char *s, size_t n)
{
    dg_buf_reserve(b, DG_JSON_STR_MAX(n));
    b->len = (size_t)(dg_json_str_put(b->data + b->len, s, n) - b->data);
    b->data[b->len] = '\0';
}

void dg_buf_free(dg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- suggestions ---- */

int dg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    int row[65];

    if (la > 64 || lb > 64)
        return 99;
    for (j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (j = 1; j <= lb; j++) {
            int cur = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}
