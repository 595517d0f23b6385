/*
 * decode_fast.c - the decoder's fast path: one pass over an event's bytes
 * that lists the members of the common shape of event, so that decode_event.c
 * can fill a dg_event without building a cJSON tree (source -> decode ->
 * detect; this is the first half of decode).
 *
 * The shape: one flat JSON object whose values are strings without escapes,
 * numbers, true, false, null, or arrays of those, with JSON whitespace
 * anywhere it may go. Within it the scanner is exact: it accepts only what
 * cJSON accepts, hands out the same strings, and gives a number only when
 * its double is provably the one cJSON's strtod returns. Anything else (an
 * escape, a control byte, invalid UTF-8, a nested object, an unusual
 * number, any syntax error, a name given twice, more strings in arrays
 * than fit) makes it say no, and the decoder parses the same bytes with
 * cJSON: every rejection and its message still come from there, and a real
 * event that is not of this shape is only slower.
 *
 * Cost, per member of a typical event: a key is one 16-byte compare with
 * the name that followed the previous member last time (a hash lookup when
 * that guess is wrong), a string value one 16-byte step (SSE2; 8 bytes
 * without), a number a byte per step; about 100 instructions in all. No
 * allocation, no library calls on the common path. Owns nothing: it writes
 * into the caller's struct dg_fast and over the closing quote of each
 * string value in the caller's buffer.
 */
#include <float.h>
#include <string.h>

#include "decode_fast.h"
#include "util.h"

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The one-multiply-or-divide conversion below is exact only when double
 * arithmetic is done in double (no x87 excess precision) and not
 * rearranged; anywhere else every number goes to cJSON. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0 && !defined(__FAST_MATH__)
#define EXACT_ARITH 1
#else
#define EXACT_ARITH 0
#endif

#if defined(__SSE2__)
#include <emmintrin.h>

/* The first byte at or after p that is a '"', a backslash, below 0x20 or
 * >= 0x80 (the signed compare takes both), 16 bytes per step. */
static inline char *find_stop(char *p)
{
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    for (;;) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                                _mm_cmpeq_epi8(x, bslash)),
                                   _mm_cmplt_epi8(x, space));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
}
#else
/* The same, 8 bytes per step. The high bit is set in the byte of w that
 * holds a stop byte; exact for the lowest such byte, which is all we use:
 * a per-byte subtraction sets a high bit only where the byte matched,
 * where it was >= 0x80 already (a stop too), or above a byte that borrowed,
 * which matched. */
static inline char *find_stop(char *p)
{
    for (;;) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t q = w ^ (ONES * '"');
        uint64_t b = w ^ (ONES * '\\');
        uint64_t m = ((q - ONES) | (b - ONES) | (w - ONES * 0x20) | w) & HIGHS;
        if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(m) >> 3);
#else
            while (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 &&
                   (unsigned char)*p < 0x80)
                p++;
            return p;
#endif
        }
        p += 8;
    }
}
#endif

/* Rare: non-ASCII in a string, from p on. Byte by byte to the closing
 * quote, then the decoder's own UTF-8 check over those bytes. Checking the
 * strings alone is the same as checking the input: everything outside them
 * is ASCII here, and an ASCII byte never sits inside a UTF-8 sequence. */
static __attribute__((noinline)) char *scan_string_utf8(char *p)
{
    char *q = p;
    while (*q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c == '\\' || c < 0x20)
            return NULL;
        q++;
    }
    return dg_utf8_valid(p, (size_t)(q - p)) ? q : NULL;
}

/* p is just past an opening quote. The closing quote, or NULL when the
 * string holds an escape (cJSON decodes those), a control byte (cJSON keeps
 * it, the decoder rejects it; the NUL past the input is one) or invalid
 * UTF-8. */
static inline __attribute__((always_inline)) char *scan_string(char *p)
{
    p = find_stop(p);
    if (*p == '"')
        return p;
    if ((unsigned char)*p < 0x80)
        return NULL;
    return scan_string_utf8(p);
}

/* ---- names ---- */

#define KEY_MASK ((1u << DG_FAST_KEY_BITS) - 1)

/* A key is identified by its length and two words: its first and last 8
 * bytes (overlapping when shorter than 16), or under 8 bytes the bytes
 * themselves as a little-endian word. That is exact up to 16 bytes, which
 * covers all but one contract name; longer names also compare the middle. */
static void key_words(const char *s, size_t len, uint64_t *a, uint64_t *b)
{
    *a = 0;
    *b = 0;
    if (len >= 8) {
        memcpy(a, s, 8);
        memcpy(b, s + len - 8, 8);
    } else {
        for (size_t i = 0; i < len; i++)
            *a |= (uint64_t)(unsigned char)s[i] << (8 * i);
    }
}

/* The same for a key in the padded input, where 8 bytes are always
 * readable: a short key is one load and a mask. */
static inline void key_words_padded(const char *s, size_t len, uint64_t *a, uint64_t *b)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(a, s, 8);
    if (len >= 8) {
        memcpy(b, s + len - 8, 8);
    } else {
        *a &= ((uint64_t)1 << (8 * len)) - 1; /* len < 8: no overflow */
        *b = 0;
    }
#else
    key_words(s, len, a, b);
#endif
}

static inline uint32_t key_hash(uint64_t a, uint64_t b, size_t len)
{
    uint64_t h = (a ^ (b * 0xC2B2AE3D27D4EB4FULL) ^ len) * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(h >> (64 - DG_FAST_KEY_BITS));
}

/* Bytes that a JSON string holds as themselves and that find_stop() does
 * not stop at: then a key spelled with exactly these bytes and a quote is
 * this name, as cJSON reads it. */
static int is_plain(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            return 0;
    }
    return len > 0;
}

int dg_fast_keys_add(struct dg_fast_keys *t, const char *name, int slot)
{
    size_t len = strlen(name);
    uint64_t a, b;
    key_words(name, len, &a, &b);
    for (uint32_t i = key_hash(a, b, len);; i = (i + 1) & KEY_MASK) {
        struct dg_fast_key *k = &t->k[i];
        if (!k->name) {
            k->name = name;
            k->a = a;
            k->b = b;
            k->len = (uint32_t)len;
            k->slot = slot;
            struct dg_fast_spelling *sp = &t->spelling[slot];
            sp->want = 1u << 16;
            if (len < sizeof sp->text && is_plain(name, len)) {
                memcpy(sp->text, name, len);
                sp->text[len] = '"';
                sp->len = (uint32_t)len + 1;
                sp->want = (1u << sp->len) - 1;
            }
            return slot;
        }
        if (k->len == len && strcmp(k->name, name) == 0)
            return k->slot;
    }
}

/* The slot of the key s[0..len), -1 when it names nothing we look for.
 * One or two probes: the table is mostly empty. */
static inline int key_slot(const struct dg_fast_keys *t, const char *s, size_t len)
{
    uint64_t a, b;
    key_words_padded(s, len, &a, &b);
    for (uint32_t i = key_hash(a, b, len);; i = (i + 1) & KEY_MASK) {
        const struct dg_fast_key *k = &t->k[i];
        if (!k->name)
            return -1;
        if (k->len == len && k->a == a && k->b == b &&
            (len <= 16 || memcmp(k->name + 8, s + 8, len - 16) == 0))
            return k->slot;
    }
}

/* 1 when p (with 16 readable bytes) starts with the spelling of slot's
 * name: then the key ends at p + len - 1. */
static inline int key_is(const struct dg_fast_keys *t, int slot, const char *p)
{
    const struct dg_fast_spelling *sp = &t->spelling[slot];
#if defined(__SSE2__)
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i y = _mm_loadu_si128((const __m128i *)(const void *)sp->text);
    unsigned eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, y));
    return (eq & sp->want) == sp->want;
#else
    return sp->want < (1u << 16) && memcmp(p, sp->text, sp->len) == 0;
#endif
}

/* ---- values ---- */

/* What cJSON skips between tokens is any byte <= 0x20; the decoder rejects
 * all of those but these four, so only these are skipped here. */
static char *skip_ws(char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

/* Past the next token when it is c, else NULL. Events rarely hold
 * whitespace, so it is looked for only when c is not right there. */
static inline __attribute__((always_inline)) char *after(char *p, char c)
{
    if (*p != c) {
        p = skip_ws(p);
        if (*p != c)
            return NULL;
    }
    return p + 1;
}

static inline char *skip_ws_maybe(char *p)
{
    return (unsigned char)*p <= ' ' ? skip_ws(p) : p;
}

static inline int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* The bytes cJSON copies into a number before handing it to strtod. */
static inline int is_num_byte(char c)
{
    return is_digit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E';
}

/* p is at '-' or a digit. cJSON copies the run of number bytes (at most 63)
 * and strtod reads what it can of it; the parse only goes on if strtod read
 * the whole run. Taken here: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * as the whole run and at most 63 bytes, which strtod always reads whole
 * (leading zeros, which cJSON also takes, are left to it).
 *
 * The value is exact (Clinger's fast path) when the significant digits
 * form an integer m <= 2^53 and the decimal exponent e is within +-22:
 * m and 10^|e| are then both doubles, and one IEEE multiply or divide
 * rounds m * 10^e correctly, as glibc's strtod does. Otherwise the number
 * is still listed, without a value (exact = 0), for fields that only need
 * to know it is one. Returns the byte after the number, or NULL. */
static char *scan_number(char *p, struct dg_fast_value *v)
{
    static const double p10[23] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    };
    const char *start = p;
    const char *d0;
    uint64_t mant = 0; /* wraps past 19 digits, and is then not used */
    size_t nd, nf = 0;
    int e10 = 0;
    int neg = *p == '-';

    p += neg;
    if (!is_digit(*p) || (*p == '0' && is_digit(p[1])))
        return NULL;
    for (d0 = p; is_digit(*p); p++)
        mant = mant * 10 + (uint64_t)(*p - '0');
    nd = (size_t)(p - d0);
    if (*p == '.') {
        for (d0 = ++p; is_digit(*p); p++)
            mant = mant * 10 + (uint64_t)(*p - '0');
        nf = (size_t)(p - d0);
        if (nf == 0)
            return NULL;
        nd += nf;
    }
    if (*p != ',' && *p != '}') { /* an exponent, or an unusual end */
        if (*p == 'e' || *p == 'E') {
            int eneg = 0, ex = 0;
            p++;
            if (*p == '+' || *p == '-')
                eneg = *p++ == '-';
            if (!is_digit(*p))
                return NULL;
            for (; is_digit(*p); p++)
                if (ex < 100000) /* saturate: far past anything exact */
                    ex = ex * 10 + (*p - '0');
            e10 = eneg ? -ex : ex;
        }
        if (is_num_byte(*p))
            return NULL;
    }
    if (p - start > 63)
        return NULL;

    v->kind = DG_FV_NUM;
    v->exact = 0;
    e10 -= (int)nf; /* nf < 64 */
    if (EXACT_ARITH && nd <= 19) { /* 19 digits fit in 64 bits, whatever they are */
        if (mant == 0) {
            v->num = neg ? -0.0 : 0.0;
            v->exact = 1;
        } else if (mant <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
            double d = (double)mant;
            d = e10 < 0 ? d / p10[-e10] : d * p10[e10];
            v->num = neg ? -d : d;
            v->exact = 1;
        }
    }
    return p;
}

/* A string, number or literal at p into *v. The byte after it, or NULL
 * (also for '[' and '{': nothing nests here). */
static inline __attribute__((always_inline)) char *scan_scalar(char *p,
                                                              struct dg_fast_value *v)
{
    if (*p == '"') { /* most values */
        char *e = scan_string(p + 1);
        if (!e)
            return NULL;
        *e = '\0'; /* a C string, as cJSON's valuestring */
        v->kind = DG_FV_STR;
        v->s = p + 1;
        v->len = (uint32_t)(e - p - 1);
        return e + 1;
    }
    switch (*p) {
    case 't':
        if (memcmp(p, "true", 4) != 0)
            return NULL;
        v->kind = DG_FV_TRUE;
        return p + 4;
    case 'f':
        if (memcmp(p, "false", 5) != 0)
            return NULL;
        v->kind = DG_FV_FALSE;
        return p + 5;
    case 'n':
        if (memcmp(p, "null", 4) != 0)
            return NULL;
        v->kind = DG_FV_NULL;
        return p + 4;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return scan_number(p, v);
    default:
        return NULL;
    }
}

/* p is just past '['. Elements are scalars; string elements of an array
 * of strings go to fs->elem[] (withdrawal_ids reads them from there). */
static char *scan_array(struct dg_fast *fs, char *p, struct dg_fast_value *m)
{
    m->kind = DG_FV_ARRAY;
    m->len = 0;
    m->first = (uint32_t)fs->nelem;
    m->strs = 1;
    p = skip_ws_maybe(p);
    if (*p == ']')
        return p + 1;
    for (;;) {
        struct dg_fast_value e;
        p = scan_scalar(p, &e);
        if (!p)
            return NULL;
        if (e.kind != DG_FV_STR) {
            m->strs = 0;
        } else if (m->strs) {
            if (fs->nelem == DG_FAST_MAX_ELEMS)
                return NULL;
            fs->elem[fs->nelem] = e.s;
            fs->elem_len[fs->nelem++] = e.len;
        }
        m->len++;
        p = skip_ws_maybe(p);
        if (*p == ']')
            return p + 1;
        if (*p != ',')
            return NULL;
        p = skip_ws_maybe(p + 1);
    }
}

int dg_fast_scan(struct dg_fast *fs, const struct dg_fast_keys *keys, char *p, size_t len)
{
    const char *end = p + len;
    struct dg_fast_value skipped;
    uint64_t seen0 = 0, seen1 = 0; /* fs->seen[], in registers meanwhile */

    fs->nelem = 0;
    /* not an object, a byte order mark first, or "{}" (which lacks every
     * required field) all go to cJSON */
    p = after(p, '{');
    if (!p || !(p = after(p, '"')))
        return -1;
    int prev = DG_FAST_MAX_SLOTS; /* the last named member's slot */
    for (;;) {
        char *k;
        /* the key that followed last time, or the one after it (an
         * optional field left out); else find the key's end and look it up */
        int slot = fs->next[prev] - 1;
        if (slot >= 0 && (key_is(keys, slot, p) ||
                          ((slot = fs->next[slot] - 1) >= 0 && key_is(keys, slot, p)))) {
            k = p + keys->spelling[slot].len - 1;
        } else {
            k = scan_string(p);
            if (!k)
                return -1;
            slot = key_slot(keys, p, (size_t)(k - p));
            if (slot >= 0)
                fs->next[prev] = (uint8_t)(slot + 1);
        }
        struct dg_fast_value *v = &skipped;
        if (slot >= 0) {
            prev = slot;
            /* a name given twice: the cJSON path rejects it */
            uint64_t bit = 1ULL << (slot & 63);
            if (slot < 64) {
                if (seen0 & bit)
                    return -1;
                seen0 |= bit;
            } else {
                if (seen1 & bit)
                    return -1;
                seen1 |= bit;
            }
            v = &fs->v[slot];
        }
        if (!(p = after(k + 1, ':')))
            return -1;
        p = skip_ws_maybe(p);
        p = *p == '[' ? scan_array(fs, p + 1, v) : scan_scalar(p, v);
        if (!p)
            return -1;
        if (*p == ',') {
            p++;
        } else {
            p = skip_ws_maybe(p);
            if (*p == '}')
                break;
            if (*p != ',')
                return -1;
            p++;
        }
        if (!(p = after(p, '"')))
            return -1;
    }
    fs->seen[0] = seen0;
    fs->seen[1] = seen1;
    /* only whitespace after the object; a NUL inside the input stops
     * skip_ws short of the end */
    return skip_ws(p + 1) == end ? 0 : -1;
}

/* ---- the common spellings of two field values ---- */

/* Two digits at p as a number, -1 unless both are digits. */
static inline int two_digits(const char *p)
{
    unsigned a = (unsigned)(unsigned char)p[0] - '0';
    unsigned b = (unsigned)(unsigned char)p[1] - '0';
    return a < 10 && b < 10 ? (int)(a * 10 + b) : -1;
}

/* "HH:MM:SS" at s as seconds of the day, -1 unless it is spelled so and in
 * range (no leap second). */
static inline int time_of_day(const char *s)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* one load: six digits become 0..9 (high nibble 0, +6 stays below 16)
     * and the two colons stay where they are */
    const uint64_t digits = 0xFFFF00FFFF00FFFFULL & (ONES * 0xF0);
    uint64_t w, t;
    memcpy(&w, s, 8);
    t = w ^ 0x3030003030003030ULL;
    if ((w & 0x0000FF0000FF0000ULL) != 0x00003A00003A0000ULL || (t & digits) != 0 ||
        ((t + 0x0606000606000606ULL) & digits) != 0)
        return -1;
    int hour = (int)(t & 0xFF) * 10 + (int)((t >> 8) & 0xFF);
    int min = (int)((t >> 24) & 0xFF) * 10 + (int)((t >> 32) & 0xFF);
    int sec = (int)((t >> 48) & 0xFF) * 10 + (int)(t >> 56);
#else
    int hour = two_digits(s), min = two_digits(s + 3), sec = two_digits(s + 6);
    if (s[2] != ':' || s[5] != ':' || (hour | min | sec) < 0)
        return -1;
#endif
    if (hour > 23 || min > 59 || sec > 59)
        return -1;
    return hour * 3600 + min * 60 + sec;
}

int dg_fast_time(const char *s, size_t len, int64_t *ms, struct dg_fast_day *memo)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int frac = 0;
    int64_t days;

    if (len == 24) {
        if (s[19] != '.' || !is_digit(s[20]) || !is_digit(s[21]) || !is_digit(s[22]))
            return -1;
        frac = (s[20] - '0') * 100 + (s[21] - '0') * 10 + (s[22] - '0');
    } else if (len != 20) {
        return -1;
    }
    if (s[len - 1] != 'Z' || s[10] != 'T')
        return -1;
    int tod = time_of_day(s + 11);
    if (tod < 0)
        return -1;

    if (memo && memo->valid && memcmp(memo->date, s, 10) == 0) {
        days = memo->days; /* the same valid date as last time */
    } else {
        if (s[4] != '-' || s[7] != '-')
            return -1;
        int yh = two_digits(s), yl = two_digits(s + 2);
        int mon = two_digits(s + 5), day = two_digits(s + 8);
        if ((yh | yl | mon | day) < 0)
            return -1;
        int year = yh * 100 + yl;
        if (mon < 1 || mon > 12 || day < 1)
            return -1;
        if (day > dim[mon - 1]) {
            int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if (!(mon == 2 && day == 29 && leap))
                return -1;
        }
        days = dg_days_from_civil(year, (unsigned)mon, (unsigned)day);
        if (memo) {
            memcpy(memo->date, s, 10);
            memo->days = days;
            memo->valid = 1;
        }
    }
    *ms = days * 86400000LL + tod * 1000LL + frac;
    return 0;
}

int dg_fast_decimal(const char *s, size_t len, double *out)
{
    static const double p10[16] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    };
    const char *p = s;
    uint64_t mant = 0;
    size_t nint, nfrac = 0;

    if (!EXACT_ARITH || len > 16)
        return -1; /* at most 16 digits: mant cannot overflow */
    /* s[len] is the string's NUL: the loops stop there at the latest */
    for (; is_digit(*p); p++)
        mant = mant * 10 + (uint64_t)(*p - '0');
    nint = (size_t)(p - s);
    if (nint == 0)
        return -1;
    if (nint < len) {
        if (*p++ != '.')
            return -1;
        const char *f = p;
        for (; is_digit(*p); p++)
            mant = mant * 10 + (uint64_t)(*p - '0');
        nfrac = (size_t)(p - f);
        if (nfrac == 0 || nint + 1 + nfrac != len)
            return -1;
    }
    if (nint + nfrac > 15) {
        /* parse_decimal counts digits from the first non-zero one */
        size_t zeros = 0;
        for (p = s; p < s + len && (*p == '0' || *p == '.'); p++)
            zeros += *p == '0';
        if (nint + nfrac - zeros > 15)
            return -1;
    }
    *out = (double)mant / p10[nfrac];
    return 0;
}
