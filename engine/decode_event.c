/*
 * decode_event.c - bytes -> struct dg_event: the second stage of the
 * pipeline (source -> decode -> detect). Checks one message or line against
 * the contract table in event.c and either fills a dg_event or says, in a
 * dg_reject, why not and which ids could still be salvaged so that the
 * withdrawal is held (fail closed).
 *
 * Two paths, one behaviour. Most events are one flat object of plain
 * strings and numbers; decode_fast.c lists their members in one pass and
 * decode_fast() below checks them against the contract with the same rules
 * as the cJSON path, filling the dg_event straight from the input. Whenever
 * that scanner or those checks meet anything they do not fully handle, or
 * anything the contract rejects, the event goes through the cJSON path
 * (decode_slow()), which alone produces rejections and their messages.
 * dg_decode_compare() holds the two against each other for the tests and
 * the fuzzer.
 *
 * The only file that includes cJSON. The decoder owns the cJSON tree of the
 * last event and a copy of the input bytes (every string in the dg_event
 * points into one of them); both live until the next dg_decode() or
 * dg_decoder_free().
 *
 * cJSON mallocs every node and string and frees them one by one: measured,
 * a third of the decoding time. So this file installs cJSON's (process-wide)
 * allocation hooks once, before main: while dg_decode() runs, nodes come
 * from that decoder's arena and the whole tree is dropped with one arena
 * reset; any other cJSON use in the process still gets malloc/free. A
 * 16-byte header on every block tells the two apart.
 *
 * Cost, per event of ~360 bytes: on the fast path (measured: ~2,500
 * instructions, against ~16,600 before it) one memcpy, one pass over the
 * bytes and one check per field given. On the cJSON path (rejections, and
 * events with escapes, nesting or unusual numbers) the fast path's attempt
 * plus two word-at-a-time passes over the bytes (UTF-8, then control bytes
 * and escapes), one memcpy, the cJSON parse (~2 us, dominant), one walk
 * over the top-level members with a hash-table lookup per key, and one
 * check per contract field. No allocation besides cJSON's own.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_fast.h"
#include "event.h"
#include "util.h"

/* Open addressing over contract fields (24) and extra fields (<= 64):
 * load stays under 0.35, so a lookup is one or two probes. */
#define TABLE_BITS 8
#define TABLE_SIZE (1 << TABLE_BITS)
#define TABLE_MASK (TABLE_SIZE - 1)

#define SHOW_MAX 40      /* bytes of an offending value echoed into a message */
#define TIME_INT_MAX 253402300799999.0 /* 9999-12-31T23:59:59.999Z */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

struct name_entry {
    const char *name; /* NULL: empty slot */
    uint64_t a, b;    /* key_words() of name */
    uint32_t len;
    int8_t field;     /* enum dg_field, or -1 */
    int8_t extra;     /* first index into extra[], or -1 */
};

/* The fields a rejection tries to salvage, as bits of dg_decoder.taint. */
enum { SV_EVENT_ID, SV_WITHDRAWAL_ID, SV_ACCOUNT_ID, SV_TYPE, SV_TS, SV_N };
static const int8_t salvage_field[SV_N] = {
    DG_F_EVENT_ID, DG_F_WITHDRAWAL_ID, DG_F_ACCOUNT_ID, DG_F_TYPE, DG_F_TS,
};

/* The names a decoder looks for: contract fields and the extra fields of
 * one rule set. Read-only once built, and shared by every decoder asking
 * for the same extras (a pipeline has hundreds of decoders, one per batch
 * slot; one table keeps the lookups in cache). */
struct names {
    struct names *next;  /* the cache */
    int refs;
    size_t nextra;
    char *extra_names[DG_MAX_EXTRA_FIELDS];
    int8_t extra_next[DG_MAX_EXTRA_FIELDS]; /* same name asked for twice */
    struct name_entry table[TABLE_SIZE];
    /* the same names for the fast path: contract field f in slot f, extra
     * field i in extra_slot[i] (a contract field's slot, an earlier extra's
     * of the same name, or its own past DG_F_NKNOWN) */
    struct dg_fast_keys fast;
    uint8_t extra_slot[DG_MAX_EXTRA_FIELDS];
};

struct dg_decoder {
    cJSON *root;      /* tree of the last event, NULL when none */
    dg_arena arena;   /* where that tree lives */
    char *in;         /* NUL-padded copy of the input: what cJSON parses, or
                         what the fast path's strings point into */
    const struct names *nm;
    size_t nextra;
    char *const *extra_names;
    const int8_t *extra_next;

    /* per-event scratch, valid during one dg_decode() */
    const cJSON *obj; /* root when it is an object parsed whole: salvage from it */
    int utf8_ok;
    uint32_t dupmask;      /* contract fields seen twice, by bit */
    unsigned taint;        /* SV_* bits whose member holds a decoded NUL */
    const cJSON *slot[DG_F_NKNOWN];
    const cJSON *xslot[DG_MAX_EXTRA_FIELDS];
    const char *ids[DG_MAX_WITHDRAWAL_IDS];
    char ts_buf[32];

    /* the fast path: per event type, the contract fields it requires and
     * those it reads (bits by enum dg_field), the type names' lengths, and
     * the scanner's output for one dg_decode() */
    uint32_t need[DG_EV_NTYPES], want[DG_EV_NTYPES];
    uint32_t str_fields; /* fields of kind DG_FK_STRING */
    const char *type_name[DG_EV_NTYPES];
    size_t type_len[DG_EV_NTYPES];
    struct dg_fast_day day_memo[DG_F_NKNOWN]; /* for time fields */
    struct dg_fast fast;
    uint64_t nfast, nslow;
};

/* ---- cJSON allocation ---- */

#define BLOCK_ARENA 0x6172656e61ULL /* "arena" */
#define BLOCK_HEAP 0x68656170ULL    /* "heap" */

struct block_hdr {
    uint64_t tag;
    uint64_t pad; /* keeps the payload 16-byte aligned */
};

static __thread dg_arena *cur_arena; /* set only inside dg_decode() */

static void *hook_malloc(size_t n)
{
    struct block_hdr *h;
    if (cur_arena) {
        h = dg_arena_alloc(cur_arena, n + sizeof *h);
        h->tag = BLOCK_ARENA;
    } else {
        h = malloc(n + sizeof *h);
        if (!h)
            return NULL;
        h->tag = BLOCK_HEAP;
    }
    return h + 1;
}

static void hook_free(void *p)
{
    if (!p)
        return;
    struct block_hdr *h = (struct block_hdr *)p - 1;
    if (h->tag == BLOCK_HEAP)
        free(h); /* arena blocks go with the arena's reset */
}

__attribute__((constructor)) static void install_cjson_hooks(void)
{
    cJSON_Hooks hooks = {hook_malloc, hook_free};
    cJSON_InitHooks(&hooks);
}

/* ---- name table ---- */

/* Runs once per member of every event, so a key is read a word at a time:
 * its first and last 8 bytes (overlapping when shorter than 16, all in
 * bounds), or packed byte by byte under 8. Those two words plus the length
 * identify any key of up to 16 bytes exactly, which covers all but one
 * contract name, so a lookup is usually a strlen and a compare of three
 * integers with no memcmp call. */
static inline void key_words(const char *s, size_t len, uint64_t *a, uint64_t *b)
{
    *a = 0;
    *b = 0;
    if (len >= 8) {
        memcpy(a, s, 8);
        memcpy(b, s + len - 8, 8);
    } else {
        for (size_t i = 0; i < len; i++)
            *a = (*a << 8) | (unsigned char)s[i];
    }
}

static struct name_entry *table_find(const struct names *t, const char *name, int insert)
{
    size_t len = strlen(name);
    uint64_t a, b;
    key_words(name, len, &a, &b);
    uint64_t h = (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL) ^ len;
    uint32_t i = (uint32_t)((h * 0xFF51AFD7ED558CCDULL) >> (64 - TABLE_BITS));

    while (((struct names *)t)->table[i].name) {
        struct name_entry *e = &((struct names *)t)->table[i];
        if (e->len == len && e->a == a && e->b == b &&
            (len <= 16 || memcmp(e->name + 8, name + 8, len - 16) == 0))
            return e;
        i = (i + 1) & TABLE_MASK;
    }
    if (!insert)
        return NULL;
    ((struct names *)t)->table[i].name = name;
    ((struct names *)t)->table[i].a = a;
    ((struct names *)t)->table[i].b = b;
    ((struct names *)t)->table[i].len = (uint32_t)len;
    ((struct names *)t)->table[i].field = -1;
    ((struct names *)t)->table[i].extra = -1;
    return &((struct names *)t)->table[i];
}

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct names *names_cache;

/* The shared table for these extras: found in the cache or built. */
static struct names *names_get(const char *const *extra, size_t n)
{
    struct names *t;

    pthread_mutex_lock(&names_lock);
    for (t = names_cache; t; t = t->next) {
        size_t i = 0;
        if (t->nextra != n)
            continue;
        while (i < n && !strcmp(t->extra_names[i], extra[i]))
            i++;
        if (i == n)
            break;
    }
    if (!t) {
        t = dg_xcalloc(1, sizeof *t);
        for (int f = 0; f < DG_F_NKNOWN; f++)
            if (dg_fields[f].kind != DG_FK_COMPUTED) /* the engine's, not the input's */
                table_find(t, dg_fields[f].name, 1)->field = (int8_t)f;
        t->nextra = n;
        for (size_t i = 0; i < n; i++) {
            t->extra_names[i] = dg_xstrdup(extra[i]);
            t->extra_next[i] = -1;
            struct name_entry *e = table_find(t, t->extra_names[i], 1);
            if (e->extra < 0) {
                e->extra = (int8_t)i;
            } else {
                int x = e->extra;
                while (t->extra_next[x] >= 0)
                    x = t->extra_next[x];
                t->extra_next[x] = (int8_t)i;
            }
        }
        for (int f = 0; f < DG_F_NKNOWN; f++)
            if (dg_fields[f].kind != DG_FK_COMPUTED)
                dg_fast_keys_add(&t->fast, dg_fields[f].name, f);
        for (size_t i = 0; i < n; i++)
            t->extra_slot[i] = (uint8_t)dg_fast_keys_add(&t->fast, t->extra_names[i],
                                                         DG_F_NKNOWN + (int)i);
        t->next = names_cache;
        names_cache = t;
    }
    t->refs++;
    pthread_mutex_unlock(&names_lock);
    return t;
}

static void names_put(const struct names *c)
{
    pthread_mutex_lock(&names_lock);
    for (struct names **pp = &names_cache; *pp; pp = &(*pp)->next) {
        struct names *t = *pp;
        if (t != c)
            continue;
        if (--t->refs == 0) {
            *pp = t->next;
            for (size_t i = 0; i < t->nextra; i++)
                free(t->extra_names[i]);
            free(t);
        }
        break;
    }
    pthread_mutex_unlock(&names_lock);
}

dg_decoder *dg_decoder_new(const char *const *extra, size_t n)
{
    if (n > DG_MAX_EXTRA_FIELDS || (n > 0 && !extra))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!extra[i])
            return NULL;

    dg_decoder *d = dg_xcalloc(1, sizeof *d);
    d->in = dg_xmalloc(DG_MAX_EVENT_BYTES + 1 + DG_FAST_PAD);
    dg_arena_init(&d->arena, 8192);
    d->nm = names_get(extra, n);
    d->nextra = n;
    d->extra_names = d->nm->extra_names;
    d->extra_next = d->nm->extra_next;
    for (int t = 0; t < DG_EV_NTYPES; t++) {
        d->type_name[t] = dg_event_type_name(t);
        d->type_len[t] = strlen(d->type_name[t]);
        for (int f = 0; f < DG_F_NKNOWN; f++) {
            if (dg_fields[f].kind == DG_FK_STRING)
                d->str_fields |= 1u << f;
            if (f == DG_F_TYPE || dg_fields[f].kind == DG_FK_COMPUTED ||
                dg_fields[f].presence[t] == DG_P_ABSENT)
                continue;
            d->want[t] |= 1u << f;
            if (dg_fields[f].presence[t] == DG_P_REQUIRED)
                d->need[t] |= 1u << f;
        }
    }
    return d;
}

void dg_decoder_free(dg_decoder *d)
{
    if (!d)
        return;
    dg_arena_free(&d->arena);
    names_put(d->nm);
    free(d->in);
    free(d);
}

/* ---- showing hostile bytes in messages ---- */

/* At most SHOW_MAX bytes of output, printable ASCII as is, everything else
 * (control bytes, non-ASCII, quotes, backslashes) escaped, "..." when cut.
 * Messages land in logs and Kafka headers; they must stay short and inert. */
static void show_bytes(const char *s, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[5];
        size_t w;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            w = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[0] = (char)c;
            w = 1;
        } else {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            w = 4;
        }
        if (o + w > SHOW_MAX || o + w + 4 > outsz)
            break;
        memcpy(out + o, tmp, w);
        o += w;
    }
    if (i < len && o + 4 <= outsz) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* "\"abc\"", "-5", "true", "an array": what a message says it got. */
static void describe(const cJSON *c, char *out, size_t outsz)
{
    switch (c->type & 0xFF) {
    case cJSON_String: {
        char tmp[SHOW_MAX + 8];
        show_bytes(c->valuestring, strlen(c->valuestring), tmp, sizeof tmp);
        snprintf(out, outsz, "\"%s\"", tmp);
        break;
    }
    case cJSON_Number: {
        char tmp[40];
        dg_number_format(c->valuedouble, tmp);
        snprintf(out, outsz, "%s", tmp);
        break;
    }
    case cJSON_True:
        snprintf(out, outsz, "true");
        break;
    case cJSON_False:
        snprintf(out, outsz, "false");
        break;
    case cJSON_NULL:
        snprintf(out, outsz, "null");
        break;
    case cJSON_Array:
        snprintf(out, outsz, "an array");
        break;
    case cJSON_Object:
        snprintf(out, outsz, "an object");
        break;
    default:
        snprintf(out, outsz, "a value");
        break;
    }
}

/* ---- rejection and salvage ---- */

/* Copy a salvaged string if it is usable on its own: a JSON string of
 * 1..max bytes, valid UTF-8 (checked here only when the whole input was
 * not), not duplicated and not cut short by a decoded NUL. */
static int salvage_str(const dg_decoder *d, int sv, char *out, size_t max)
{
    int f = salvage_field[sv];
    const cJSON *c = d->slot[f];
    if (!c || (c->type & 0xFF) != cJSON_String)
        return 0;
    if ((d->dupmask & (1u << f)) || (d->taint & (1u << sv)))
        return 0;
    size_t len = strlen(c->valuestring);
    if (len == 0 || len > max)
        return 0;
    if (!d->utf8_ok && !dg_utf8_valid(c->valuestring, len))
        return 0;
    memcpy(out, c->valuestring, len + 1);
    return 1;
}

static void salvage(const dg_decoder *d, struct dg_reject *rej)
{
    salvage_str(d, SV_EVENT_ID, rej->event_id, sizeof rej->event_id - 1);
    salvage_str(d, SV_WITHDRAWAL_ID, rej->withdrawal_id, sizeof rej->withdrawal_id - 1);
    salvage_str(d, SV_ACCOUNT_ID, rej->account_id, sizeof rej->account_id - 1);
    salvage_str(d, SV_TYPE, rej->type, sizeof rej->type - 1);
    if (salvage_str(d, SV_TS, rej->ts_raw, sizeof rej->ts_raw - 1))
        return;
    const cJSON *c = d->slot[DG_F_TS];
    if (c && (c->type & 0xFF) == cJSON_Number && !(d->dupmask & (1u << DG_F_TS))) {
        double v = c->valuedouble;
        /* any integer a double holds exactly, so the text is what was sent */
        if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
            snprintf(rej->ts_raw, sizeof rej->ts_raw, "%lld", (long long)v);
            rej->ts_is_int = 1;
        }
    }
}

/* Fill *rej (field may be NULL for a whole-input problem) and return -1.
 * Salvages ids whenever the input parsed to an object. */
static int reject(const dg_decoder *d, struct dg_reject *rej, int code,
                  const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int reject(const dg_decoder *d, struct dg_reject *rej, int code,
                  const char *field, const char *fmt, ...)
{
    va_list ap;

    memset(rej, 0, sizeof *rej);
    rej->code = code;
    if (field)
        snprintf(rej->field, sizeof rej->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(rej->msg, sizeof rej->msg, fmt, ap);
    va_end(ap);
    if (d->obj)
        salvage(d, rej);
    return -1;
}

/* rej->field for a member name that is not a contract field: escaped like
 * a value, so a hostile key cannot put control bytes into headers. */
static int reject_key(const dg_decoder *d, struct dg_reject *rej, int code,
                      const char *key, const char *what)
{
    char shown[SHOW_MAX + 8];
    show_bytes(key, strlen(key), shown, sizeof shown);
    reject(d, rej, code, NULL, "field '%s': %s", shown, what);
    snprintf(rej->field, sizeof rej->field, "%s", shown);
    return -1;
}

/* ---- byte-level checks cJSON does not make ---- */

struct scan {
    size_t ctl_off;  /* first control byte JSON forbids, or SIZE_MAX */
    size_t esc_off;  /* first \u escape that is not 4 hex digits, or SIZE_MAX */
    int nul_esc;     /* a \u0000 escape */
};

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p[0] is a backslash, p[1] is 'u': 1 when cJSON would decode it to NUL
 * (\u0000, and also any non-hex digit: cJSON's parse_hex4 returns 0). */
static int esc_is_nul(const char *p, size_t avail)
{
    if (avail < 6)
        return 1;
    for (int k = 2; k < 6; k++)
        if (!is_hex(p[k]))
            return 1;
    return p[2] == '0' && p[3] == '0' && p[4] == '0' && p[5] == '0';
}

/* High bit set in some byte when w holds a byte < 0x20 or a backslash
 * (exact as a yes/no; the positions may be off, which we do not use). */
static inline uint64_t word_flags(uint64_t w)
{
    uint64_t x = w ^ 0x5c5c5c5c5c5c5c5cULL; /* zero byte where a backslash is */
    return ((w - 0x2020202020202020ULL) & ~w) | ((x - 0x0101010101010101ULL) & ~x);
}

/* cJSON stores strings NUL-terminated, so a \u0000 escape (or a raw NUL
 * byte) silently cuts a value short: "w1\u0000x" would read as "w1". It
 * also takes any byte <= 0x20 as whitespace. This pass finds both, eight
 * bytes per step when a word holds neither a control byte nor a backslash
 * (the common case: events rarely escape anything). Backslashes are paired
 * left to right, which is exact for anything cJSON then accepts: outside a
 * string a backslash is a parse error, inside one it starts an escape. */
static void scan_bytes(const char *p, size_t n, struct scan *sc)
{
    size_t i = 0;

    sc->ctl_off = SIZE_MAX;
    sc->esc_off = SIZE_MAX;
    sc->nul_esc = 0;
    while (i < n) {
        while (n - i >= 16) {
            uint64_t w0, w1;
            memcpy(&w0, p + i, 8);
            memcpy(&w1, p + i + 8, 8);
            if (((word_flags(w0) | word_flags(w1)) & 0x8080808080808080ULL) != 0)
                break;
            i += 16;
        }
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((word_flags(w) & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        if (i == n)
            break;
        unsigned char c = (unsigned char)p[i];
        if (c == '\\') {
            if (i + 1 < n && p[i + 1] == 'u' && esc_is_nul(p + i, n - i)) {
                int hex = n - i >= 6 && is_hex(p[i + 2]) && is_hex(p[i + 3]) &&
                          is_hex(p[i + 4]) && is_hex(p[i + 5]);
                if (hex)
                    sc->nul_esc = 1;
                else if (sc->esc_off == SIZE_MAX)
                    sc->esc_off = i;
            }
            i += 2;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && sc->ctl_off == SIZE_MAX)
            sc->ctl_off = i;
        i++;
    }
}

/* Rare path, only when scan_bytes saw something that decodes to NUL: find
 * the top-level members whose key or value holds one, by a string-aware
 * walk over a document cJSON accepted. Sets the SV_* bits of members whose
 * index is in want[], and *first / *first_in_key for the message. */
static unsigned taint_scan(const char *p, size_t n, const long want[SV_N],
                           long *first, int *first_in_key)
{
    unsigned mask = 0;
    int depth = 0, expect_key = 0;
    long member = -1;

    *first = -1;
    *first_in_key = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '"') {
            int key = depth == 1 && expect_key;
            int bad = 0;
            if (key) {
                member++;
                expect_key = 0;
            }
            for (i++; i < n && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                    if (i + 1 < n && p[i + 1] == 'u' && esc_is_nul(p + i, n - i))
                        bad = 1;
                    i++;
                } else if (p[i] == '\0') {
                    bad = 1;
                }
            }
            if (bad && member >= 0) {
                if (*first < 0) {
                    *first = member;
                    *first_in_key = key;
                }
                for (int s = 0; s < SV_N; s++)
                    if (want[s] == member)
                        mask |= 1u << s;
            }
        } else if (c == '{' || c == '[') {
            if (++depth == 1)
                expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            expect_key = 1;
        }
    }
    return mask;
}

/* Depth of an unparseable input up to where cJSON stopped, to tell "nested
 * past cJSON's own limit" (too_deep) from plain bad JSON. Approximate about
 * strings, which is fine for a message. */
static int max_depth_before(const char *p, size_t n)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

/* c is a container member of the root object (depth 2). Iterative with a
 * stack bounded by DG_MAX_DEPTH, so hostile nesting costs no recursion. */
static int too_deep(const cJSON *c)
{
    const cJSON *stack[DG_MAX_DEPTH];
    int sp = 0, depth = 2;
    const cJSON *cur = c->child;

    if (depth > DG_MAX_DEPTH)
        return 1;
    for (;;) {
        while (cur) {
            if (cur->type & (cJSON_Array | cJSON_Object)) {
                if (depth + 1 > DG_MAX_DEPTH)
                    return 1;
                stack[sp++] = cur->next;
                depth++;
                cur = cur->child;
            } else {
                cur = cur->next;
            }
        }
        if (sp == 0)
            return 0;
        cur = stack[--sp];
        depth--;
    }
}

/* ---- field checks ---- */

/* ^[0-9]+(\.[0-9]+)?$ to a double. Up to 15 significant digits and 22
 * decimals the result is one exact division, so correctly rounded without
 * strtod (Clinger's fast path); longer strings take strtod with the
 * locale's decimal point swapped in, as cJSON does for JSON numbers, so the
 * two spellings of an amount agree. len <= 64 is checked by the caller. */
static int parse_decimal(const char *s, size_t len, double *out)
{
    static const double p10[23] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    };
    uint64_t mant = 0;
    int sig = 0, frac = 0, seen_dot = 0;
    size_t i = 0, int_digits = 0;

    for (; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (seen_dot || int_digits == 0 || i + 1 == len)
                return -1;
            seen_dot = 1;
            continue;
        }
        if (c < '0' || c > '9')
            return -1;
        if (seen_dot)
            frac++;
        else
            int_digits++;
        if (sig > 0 || c != '0')
            sig++;
        if (sig <= 18)
            mant = mant * 10 + (uint64_t)(c - '0');
    }
    if (int_digits == 0)
        return -1;
    if (sig <= 15 && frac <= 22) {
        *out = (double)mant / p10[frac];
        return 0;
    }
    char tmp[72];
    char dp = localeconv()->decimal_point[0];
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *dot = memchr(tmp, '.', len);
    if (dot)
        *dot = dp;
    *out = strtod(tmp, NULL);
    return 0;
}

static int check_string(const dg_decoder *d, struct dg_reject *rej, int f,
                        const cJSON *c, size_t *lenp)
{
    const struct dg_field_def *fd = &dg_fields[f];
    char got[SHOW_MAX + 16];

    if ((c->type & 0xFF) != cJSON_String) {
        describe(c, got, sizeof got);
        return reject(d, rej, DG_R_BAD_TYPE, fd->name,
                      "field '%s': must be a string, got %s", fd->name, got);
    }
    size_t len = strlen(c->valuestring);
    if (len == 0)
        return reject(d, rej, DG_R_BAD_VALUE, fd->name,
                      "field '%s': must not be empty", fd->name);
    if (len > fd->max_len)
        return reject(d, rej, DG_R_TOO_LONG, fd->name,
                      "field '%s': too long (%zu bytes, max %u)", fd->name, len,
                      (unsigned)fd->max_len);
    *lenp = len;
    return 0;
}

static int check_amount(const dg_decoder *d, struct dg_reject *rej, int f,
                        const cJSON *c, double *out)
{
    const struct dg_field_def *fd = &dg_fields[f];
    char got[SHOW_MAX + 16];
    double v;

    if ((c->type & 0xFF) == cJSON_Number) {
        v = c->valuedouble;
    } else if ((c->type & 0xFF) == cJSON_String) {
        size_t len = strlen(c->valuestring);
        if (len > fd->max_len)
            return reject(d, rej, DG_R_TOO_LONG, fd->name,
                          "field '%s': too long (%zu bytes, max %u)", fd->name,
                          len, (unsigned)fd->max_len);
        if (parse_decimal(c->valuestring, len, &v) < 0) {
            describe(c, got, sizeof got);
            return reject(d, rej, DG_R_BAD_VALUE, fd->name,
                          "field '%s': must be a decimal like \"12.5\" (no sign, "
                          "exponent or spaces), got %s", fd->name, got);
        }
    } else {
        describe(c, got, sizeof got);
        return reject(d, rej, DG_R_BAD_TYPE, fd->name,
                      "field '%s': must be a number or a decimal string, got %s",
                      fd->name, got);
    }
    if (!isfinite(v) || v < 0 || (v == 0 && !fd->min_zero)) {
        describe(c, got, sizeof got);
        return reject(d, rej, DG_R_BAD_VALUE, fd->name,
                      "field '%s': must be a finite number %s 0, got %s",
                      fd->name, fd->min_zero ? ">=" : ">", got);
    }
    *out = v == 0 ? 0.0 : v; /* no -0 downstream */
    return 0;
}

static int check_number(const dg_decoder *d, struct dg_reject *rej, int f,
                        const cJSON *c, double *out)
{
    const struct dg_field_def *fd = &dg_fields[f];
    char got[SHOW_MAX + 16];
    int is_num = (c->type & 0xFF) == cJSON_Number;

    if (!is_num || !isfinite(c->valuedouble) || c->valuedouble < 0) {
        describe(c, got, sizeof got);
        return reject(d, rej, is_num ? DG_R_BAD_VALUE : DG_R_BAD_TYPE, fd->name,
                      "field '%s': must be a finite number >= 0, got %s",
                      fd->name, got);
    }
    *out = c->valuedouble == 0 ? 0.0 : c->valuedouble;
    return 0;
}

/* RFC 3339 string, or an integer of epoch milliseconds between 1970 and
 * the end of 9999 (a float or a negative number is a producer bug we would
 * rather see than round). */
static int check_time(const dg_decoder *d, struct dg_reject *rej, int f,
                      const cJSON *c, int64_t *ms)
{
    const struct dg_field_def *fd = &dg_fields[f];
    char got[SHOW_MAX + 16];
    int type = c->type & 0xFF;

    if (type == cJSON_String) {
        const char *s = c->valuestring;
        if (dg_time_parse_rfc3339(s, strlen(s), ms) == 0)
            return 0;
    } else if (type == cJSON_Number) {
        double v = c->valuedouble;
        if (v >= 0 && v <= TIME_INT_MAX && v == floor(v)) {
            *ms = (int64_t)v;
            return 0;
        }
    }
    describe(c, got, sizeof got);
    return reject(d, rej,
                  type == cJSON_String || type == cJSON_Number ? DG_R_BAD_VALUE
                                                               : DG_R_BAD_TYPE,
                  fd->name,
                  "field '%s': must be an RFC 3339 timestamp with a zone or "
                  "integer epoch milliseconds, got %s", fd->name, got);
}

static int check_ids(dg_decoder *d, struct dg_reject *rej, int f,
                     const cJSON *c, size_t *np)
{
    const struct dg_field_def *fd = &dg_fields[f];
    char got[SHOW_MAX + 16];
    size_t n = 0;

    if ((c->type & 0xFF) != cJSON_Array) {
        describe(c, got, sizeof got);
        return reject(d, rej, DG_R_BAD_TYPE, fd->name,
                      "field '%s': must be an array of strings, got %s",
                      fd->name, got);
    }
    for (const cJSON *e = c->child; e; e = e->next, n++) {
        if (n == DG_MAX_WITHDRAWAL_IDS)
            return reject(d, rej, DG_R_TOO_LONG, fd->name,
                          "field '%s': more than %d ids", fd->name,
                          DG_MAX_WITHDRAWAL_IDS);
        if ((e->type & 0xFF) != cJSON_String) {
            describe(e, got, sizeof got);
            return reject(d, rej, DG_R_BAD_TYPE, fd->name,
                          "field '%s': element %zu must be a string, got %s",
                          fd->name, n, got);
        }
        size_t len = strlen(e->valuestring);
        if (len == 0)
            return reject(d, rej, DG_R_BAD_VALUE, fd->name,
                          "field '%s': element %zu must not be empty", fd->name, n);
        if (len > fd->max_len)
            return reject(d, rej, DG_R_TOO_LONG, fd->name,
                          "field '%s': element %zu too long (%zu bytes, max %u)",
                          fd->name, n, len, (unsigned)fd->max_len);
        d->ids[n] = e->valuestring;
    }
    *np = n;
    return 0;
}

/* ---- the decoder ---- */

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Index of a top-level member, -1 when absent; rare paths only. */
static long member_index(const cJSON *obj, const cJSON *c)
{
    long i = 0;
    if (!c)
        return -1;
    for (const cJSON *m = obj->child; m; m = m->next, i++)
        if (m == c)
            return i;
    return -1;
}

static const cJSON *member_at(const cJSON *obj, long idx)
{
    const cJSON *m = obj->child;
    while (m && idx-- > 0)
        m = m->next;
    return m;
}

/* The cJSON path: every input, every rejection. */
static int decode_slow(dg_decoder *d, const char *buf, size_t len,
                       struct dg_event *ev, struct dg_reject *rej)
{
    struct scan sc;
    const char *end = NULL;
    const cJSON *deep = NULL;
    int dupf = -1, xdup = -1;

    d->root = NULL;
    dg_arena_reset(&d->arena); /* the previous event's tree */
    d->obj = NULL;
    d->dupmask = 0;
    d->taint = 0;
    if (!buf) {
        buf = "";
        len = 0;
    }

    if (len > DG_MAX_EVENT_BYTES)
        return reject(d, rej, DG_R_TOO_LARGE, NULL,
                      "event is %zu bytes, over the limit of %d", len,
                      DG_MAX_EVENT_BYTES);
    d->utf8_ok = dg_utf8_valid(buf, len);
    scan_bytes(buf, len, &sc);

    /* cJSON gets a NUL-terminated private copy: a caller's Kafka payload
     * is not terminated, and a parser bug reading one byte too far must
     * not read past it. ~20 ns for a typical event. */
    memcpy(d->in, buf, len);
    d->in[len] = '\0';
    cur_arena = &d->arena;
    d->root = cJSON_ParseWithLengthOpts(d->in, len, &end, 0);
    cur_arena = NULL;

    size_t parsed = d->root ? (size_t)(end - d->in) : 0;
    int trailing = 0;
    if (d->root) {
        for (size_t i = parsed; i < len; i++)
            if (!is_json_space(d->in[i]))
                trailing = 1;
    }
    /* Salvage needs one object that is the whole input; decoded NULs are
     * located so that no id cut short by one is ever salvaged. */
    if (d->root && !trailing && cJSON_IsObject(d->root)) {
        d->obj = d->root;
        memset(d->slot, 0, sizeof d->slot);
        memset(d->xslot, 0, d->nextra * sizeof d->xslot[0]);
        for (const cJSON *c = d->root->child; c; c = c->next) {
            const struct name_entry *e = table_find(d->nm, c->string, 0);
            if (e) {
                if (e->field >= 0) {
                    if (!d->slot[e->field]) {
                        d->slot[e->field] = c;
                    } else {
                        d->dupmask |= 1u << e->field;
                        if (dupf < 0)
                            dupf = e->field;
                    }
                }
                for (int x = e->extra; x >= 0; x = d->extra_next[x]) {
                    if (!d->xslot[x])
                        d->xslot[x] = c;
                    else if (xdup < 0)
                        xdup = x;
                }
            }
            if (!deep && (c->type & (cJSON_Array | cJSON_Object)) && too_deep(c))
                deep = c;
        }
    }
    long nul_member = -1;
    int nul_in_key = 0;
    if (d->obj && (sc.nul_esc || sc.esc_off != SIZE_MAX || sc.ctl_off != SIZE_MAX)) {
        long want[SV_N];
        for (int s = 0; s < SV_N; s++)
            want[s] = member_index(d->obj, d->slot[salvage_field[s]]);
        d->taint = taint_scan(d->in, parsed, want, &nul_member, &nul_in_key);
    }

    /* Whole-input problems, in the documented order. */
    if (!d->utf8_ok)
        return reject(d, rej, DG_R_BAD_UTF8, NULL, "event is not valid UTF-8");
    if (sc.ctl_off != SIZE_MAX)
        return reject(d, rej, DG_R_BAD_JSON, NULL,
                      "control byte 0x%02x at offset %zu is not valid JSON",
                      (unsigned char)buf[sc.ctl_off], sc.ctl_off);
    if (!d->root) {
        size_t at = end ? (size_t)(end - d->in) : 0;
        int only_space = 1;
        for (size_t i = 0; i < len; i++)
            if (!is_json_space(buf[i]))
                only_space = 0;
        if (only_space)
            return reject(d, rej, DG_R_BAD_JSON, NULL, "empty event");
        if (max_depth_before(buf, at) >= CJSON_NESTING_LIMIT)
            return reject(d, rej, DG_R_TOO_DEEP, NULL,
                          "nested deeper than %d levels", DG_MAX_DEPTH);
        return reject(d, rej, DG_R_BAD_JSON, NULL,
                      "not valid JSON (error at offset %zu)", at);
    }
    if (sc.esc_off != SIZE_MAX)
        return reject(d, rej, DG_R_BAD_JSON, NULL,
                      "invalid \\u escape at offset %zu", sc.esc_off);
    if (trailing)
        return reject(d, rej, DG_R_BAD_JSON, NULL,
                      "unexpected data after the JSON value at offset %zu", parsed);
    if (!d->obj) {
        const char *what = cJSON_IsArray(d->root) ? "an array"
                           : cJSON_IsString(d->root) ? "a string"
                           : cJSON_IsNumber(d->root) ? "a number"
                           : cJSON_IsNull(d->root)   ? "null"
                                                     : "a boolean";
        return reject(d, rej, DG_R_NOT_OBJECT, NULL,
                      "event must be a JSON object, got %s", what);
    }
    if (deep)
        return reject_key(d, rej, DG_R_TOO_DEEP, deep->string,
                          "nested deeper than " STRINGIFY(DG_MAX_DEPTH) " levels");
    if (nul_member >= 0) {
        const cJSON *m = member_at(d->obj, nul_member);
        return reject_key(d, rej, DG_R_BAD_VALUE, m ? m->string : "",
                          nul_in_key ? "name contains a NUL (\\u0000)"
                                     : "contains a NUL (\\u0000)");
    }
    if (dupf >= 0)
        return reject(d, rej, DG_R_BAD_VALUE, dg_fields[dupf].name,
                      "duplicate field '%s'", dg_fields[dupf].name);
    if (xdup >= 0)
        return reject_key(d, rej, DG_R_BAD_VALUE, d->extra_names[xdup],
                          "duplicate field");

    /* type decides which fields the contract asks for */
    const cJSON *tc = d->slot[DG_F_TYPE];
    if (!tc || cJSON_IsNull(tc))
        return reject(d, rej, DG_R_MISSING_FIELD, "type",
                      "missing required field 'type'");
    if (!cJSON_IsString(tc)) {
        char got[SHOW_MAX + 16];
        describe(tc, got, sizeof got);
        return reject(d, rej, DG_R_BAD_TYPE, "type",
                      "field 'type': must be a string, got %s", got);
    }
    int type = dg_event_type_lookup(tc->valuestring, strlen(tc->valuestring));
    if (type < 0) {
        char got[SHOW_MAX + 16];
        describe(tc, got, sizeof got);
        return reject(d, rej, DG_R_UNKNOWN_TYPE, "type",
                      "field 'type': unknown event type %s", got);
    }

    ev->type = type;
    ev->ids = d->ids;
    ev->nids = 0;
    ev->f[DG_F_TYPE] = dg_str(tc->valuestring, strlen(tc->valuestring));
    for (int f = 0; f < DG_F_NKNOWN; f++) {
        const struct dg_field_def *fd = &dg_fields[f];
        const cJSON *c = d->slot[f];
        size_t n = 0;
        double v = 0;
        int64_t ms = 0;

        if (f == DG_F_TYPE)
            continue;
        ev->f[f] = dg_none();
        if (fd->presence[type] == DG_P_ABSENT || fd->kind == DG_FK_COMPUTED)
            continue; /* not this type's field (an unknown field, ignored), or
                         one the engine computes later */
        if (!c || (c->type & 0xFF) == cJSON_NULL) {
            if (fd->presence[type] == DG_P_REQUIRED)
                return reject(d, rej, DG_R_MISSING_FIELD, fd->name,
                              c ? "missing required field '%s' (null)"
                                : "missing required field '%s'", fd->name);
            continue;
        }
        switch (fd->kind) {
        case DG_FK_STRING:
            if (check_string(d, rej, f, c, &n) < 0)
                return -1;
            ev->f[f] = dg_str(c->valuestring, n);
            break;
        case DG_FK_AMOUNT:
            if (check_amount(d, rej, f, c, &v) < 0)
                return -1;
            ev->f[f] = dg_num(v);
            break;
        case DG_FK_NUMBER:
            if (check_number(d, rej, f, c, &v) < 0)
                return -1;
            ev->f[f] = dg_num(v);
            break;
        case DG_FK_TIME:
            if (check_time(d, rej, f, c, &ms) < 0)
                return -1;
            ev->f[f] = dg_time(ms);
            break;
        case DG_FK_STR_ARRAY:
            if (check_ids(d, rej, f, c, &n) < 0)
                return -1;
            ev->nids = n;
            ev->f[f] = dg_num((double)n);
            break;
        }
    }

    const cJSON *ts = d->slot[DG_F_TS];
    ev->ts_ms = ev->f[DG_F_TS].u.ms;
    ev->ts_is_int = cJSON_IsNumber(ts);
    if (ev->ts_is_int) {
        int w = snprintf(d->ts_buf, sizeof d->ts_buf, "%lld", (long long)ev->ts_ms);
        ev->ts_raw = d->ts_buf;
        ev->ts_raw_len = (size_t)w;
    } else {
        ev->ts_raw = ts->valuestring;
        ev->ts_raw_len = strlen(ts->valuestring);
    }

    for (size_t x = 0; x < d->nextra; x++) {
        const cJSON *c = d->xslot[x];
        dg_value v = dg_none();
        if (c) {
            switch (c->type & 0xFF) {
            case cJSON_String:
                v = dg_str(c->valuestring, strlen(c->valuestring));
                break;
            case cJSON_Number:
                v = dg_num(c->valuedouble);
                break;
            case cJSON_True:
                v = dg_bool(1);
                break;
            case cJSON_False:
                v = dg_bool(0);
                break;
            default:
                break; /* null, arrays and objects read as missing */
            }
        }
        ev->extra[x] = v;
    }
    return 0;
}

/* ---- the fast path ---- */

_Static_assert(DG_F_NKNOWN <= 32, "contract fields are bits of a uint32_t here");
_Static_assert(DG_F_NKNOWN + DG_MAX_EXTRA_FIELDS <= DG_FAST_MAX_SLOTS,
               "every contract and extra field needs a slot of its own");

/* Whether the len bytes at a and b are equal, for 8 <= len <= 24: three
 * overlapping words, all in bounds. */
static inline int same_8_24(const char *a, const char *b, size_t len)
{
    uint64_t x0, y0, x1, y1, x2, y2;
    memcpy(&x0, a, 8);
    memcpy(&y0, b, 8);
    memcpy(&x1, a + len / 2 - 4, 8);
    memcpy(&y1, b + len / 2 - 4, 8);
    memcpy(&x2, a + len - 8, 8);
    memcpy(&y2, b + len - 8, 8);
    return ((x0 ^ y0) | (x1 ^ y1) | (x2 ^ y2)) == 0;
}

/* dg_event_type_lookup without a strlen and a memcmp call per name (all
 * four names are 14 to 20 bytes). s is in the padded input. */
static int type_lookup(const dg_decoder *d, const char *s, size_t len)
{
    for (int t = 0; t < DG_EV_NTYPES; t++)
        if (len == d->type_len[t] &&
            (len >= 8 && len <= 24 ? same_8_24(s, d->type_name[t], len)
                                   : memcmp(s, d->type_name[t], len) == 0))
            return t;
    return -1;
}

/* dg_decode's walk and the check_*() functions above, for the values the
 * fast scanner found, as a yes/no: 0 with *ev filled when the cJSON path
 * would accept the event with exactly these values, -1 when it would
 * reject it or the scanner could not tell (cJSON then runs and says why).
 * Every string points into d->in, NUL-terminated by the scanner. */
static int decode_fast(dg_decoder *d, const char *buf, size_t len, struct dg_event *ev)
{
    struct dg_fast *fs = &d->fast;

    if (len > DG_MAX_EVENT_BYTES)
        return -1;
    /* the arena keeps the last cJSON tree (nothing points into it any
     * more) until the next decode_slow() resets it */
    memcpy(d->in, buf, len);
    memset(d->in + len, 0, DG_FAST_PAD);
    if (dg_fast_scan(fs, &d->nm->fast, d->in, len) < 0)
        return -1; /* includes any duplicate of a field we read */

    /* contract fields given (null or not), by bit: slots 0..DG_F_NKNOWN-1 */
    uint32_t seen = (uint32_t)fs->seen[0] & ((1u << DG_F_NKNOWN) - 1);
    const struct dg_fast_value *tv = &fs->v[DG_F_TYPE];
    if (!(seen & (1u << DG_F_TYPE)) || tv->kind != DG_FV_STR)
        return -1;
    int type = type_lookup(d, tv->s, tv->len);
    if (type < 0 || (seen & d->need[type]) != d->need[type])
        return -1;

    ev->type = type;
    ev->ids = d->ids;
    ev->nids = 0;
    memset(ev->f, 0, sizeof ev->f); /* dg_none() everywhere */
    ev->f[DG_F_TYPE] = dg_str(tv->s, tv->len);
    /* only the fields this type reads and the input gives; the others are
     * missing, as on the cJSON path. Strings first, in a loop of their own:
     * they are most fields of every event. */
    uint32_t todo = seen & d->want[type];
    for (uint32_t strs = todo & d->str_fields; strs; strs &= strs - 1) {
        int f = __builtin_ctz(strs);
        const struct dg_fast_value *m = &fs->v[f];
        /* check_string: a string of 1..max_len bytes (len 0 wraps) */
        if (m->kind != DG_FV_STR || m->len - 1 >= dg_fields[f].max_len) {
            if (m->kind == DG_FV_NULL && !(d->need[type] & (1u << f)))
                continue;
            return -1;
        }
        ev->f[f] = dg_str(m->s, m->len);
    }
    for (todo &= ~d->str_fields; todo; todo &= todo - 1) {
        int f = __builtin_ctz(todo);
        const struct dg_field_def *fd = &dg_fields[f];
        const struct dg_fast_value *m = &fs->v[f];
        double v;
        int64_t ms;

        if (m->kind == DG_FV_NULL) {
            if (d->need[type] & (1u << f))
                return -1;
            continue;
        }
        switch (fd->kind) {
        case DG_FK_AMOUNT: /* check_amount */
            if (m->kind == DG_FV_NUM && m->exact)
                v = m->num;
            else if (m->kind != DG_FV_STR || m->len > fd->max_len ||
                     (dg_fast_decimal(m->s, m->len, &v) < 0 &&
                      parse_decimal(m->s, m->len, &v) < 0))
                return -1;
            if (!isfinite(v) || v < 0 || (v == 0 && !fd->min_zero))
                return -1;
            ev->f[f] = dg_num(v == 0 ? 0.0 : v);
            break;
        case DG_FK_NUMBER: /* check_number; an exact number is finite */
            if (m->kind != DG_FV_NUM || !m->exact || m->num < 0)
                return -1;
            ev->f[f] = dg_num(m->num == 0 ? 0.0 : m->num);
            break;
        case DG_FK_TIME: /* check_time */
            if (m->kind == DG_FV_STR) {
                if (dg_fast_time(m->s, m->len, &ms, &d->day_memo[f]) < 0 &&
                    dg_time_parse_rfc3339(m->s, m->len, &ms) < 0)
                    return -1;
            } else if (m->kind == DG_FV_NUM && m->exact && m->num >= 0 &&
                       m->num <= TIME_INT_MAX && m->num == floor(m->num)) {
                ms = (int64_t)m->num;
            } else {
                return -1;
            }
            ev->f[f] = dg_time(ms);
            break;
        case DG_FK_STR_ARRAY: /* check_ids */
            if (m->kind != DG_FV_ARRAY || !m->strs || m->len > DG_MAX_WITHDRAWAL_IDS)
                return -1;
            for (uint32_t i = 0; i < m->len; i++) {
                uint32_t n = fs->elem_len[m->first + i];
                if (n == 0 || n > fd->max_len)
                    return -1;
                d->ids[i] = fs->elem[m->first + i];
            }
            ev->nids = m->len;
            ev->f[f] = dg_num((double)m->len);
            break;
        default:
            return -1;
        }
    }

    const struct dg_fast_value *ts = &fs->v[DG_F_TS]; /* required: present */
    ev->ts_ms = ev->f[DG_F_TS].u.ms;
    ev->ts_is_int = ts->kind == DG_FV_NUM;
    if (ev->ts_is_int) {
        int w = snprintf(d->ts_buf, sizeof d->ts_buf, "%lld", (long long)ev->ts_ms);
        ev->ts_raw = d->ts_buf;
        ev->ts_raw_len = (size_t)w;
    } else {
        ev->ts_raw = ts->s;
        ev->ts_raw_len = ts->len;
    }

    for (size_t x = 0; x < d->nextra; x++) {
        unsigned sl = d->nm->extra_slot[x];
        const struct dg_fast_value *m = &fs->v[sl];
        dg_value v = dg_none();
        if ((fs->seen[sl / 64] >> (sl % 64)) & 1) {
            switch (m->kind) {
            case DG_FV_STR:
                v = dg_str(m->s, m->len);
                break;
            case DG_FV_NUM:
                if (!m->exact)
                    return -1;
                v = dg_num(m->num);
                break;
            case DG_FV_TRUE:
                v = dg_bool(1);
                break;
            case DG_FV_FALSE:
                v = dg_bool(0);
                break;
            default:
                break; /* null and arrays read as missing */
            }
        }
        ev->extra[x] = v;
    }
    return 0;
}

int dg_decode(dg_decoder *d, const char *buf, size_t len,
              struct dg_event *ev, struct dg_reject *rej)
{
    if (buf && decode_fast(d, buf, len, ev) == 0) {
        d->nfast++;
        return 0;
    }
    d->nslow++;
    return decode_slow(d, buf, len, ev, rej);
}

void dg_decoder_stats(const dg_decoder *d, uint64_t *fast, uint64_t *slow)
{
    *fast = d->nfast;
    *slow = d->nslow;
}

/* ---- holding the two paths against each other ---- */

static int differ(char *why, size_t whysz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int differ(char *why, size_t whysz, const char *fmt, ...)
{
    va_list ap;
    if (why && whysz) {
        va_start(ap, fmt);
        vsnprintf(why, whysz, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Same type and value: numbers bit for bit (0.0 is not -0.0), strings byte
 * for byte and both NUL-terminated or neither. */
static int same_value(const dg_value *a, const dg_value *b)
{
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case DG_T_NONE:
        return 1;
    case DG_T_NUM:
        return memcmp(&a->u.n, &b->u.n, sizeof a->u.n) == 0;
    case DG_T_STR:
        return a->len == b->len && memcmp(a->u.s, b->u.s, a->len) == 0 &&
               (a->u.s[a->len] == '\0') == (b->u.s[b->len] == '\0');
    case DG_T_TIME:
    case DG_T_DUR:
        return a->u.ms == b->u.ms;
    case DG_T_BOOL:
        return a->u.b == b->u.b;
    default:
        return 0;
    }
}

static void show_value(const dg_value *v, char *out, size_t outsz)
{
    char tmp[SHOW_MAX + 8];
    switch (v->t) {
    case DG_T_NUM:
        snprintf(out, outsz, "number %a", v->u.n);
        break;
    case DG_T_STR:
        show_bytes(v->u.s, v->len, tmp, sizeof tmp);
        snprintf(out, outsz, "string \"%s\" (%u bytes)", tmp, (unsigned)v->len);
        break;
    case DG_T_TIME:
    case DG_T_DUR:
        snprintf(out, outsz, "%s %lld", dg_type_name((dg_type)v->t), (long long)v->u.ms);
        break;
    case DG_T_BOOL:
        snprintf(out, outsz, "boolean %d", v->u.b);
        break;
    default:
        snprintf(out, outsz, "%s", dg_type_name((dg_type)v->t));
        break;
    }
}

static int differ_value(char *why, size_t whysz, const char *what, const char *name,
                        const dg_value *a, const dg_value *b)
{
    char sa[96], sb[96];
    show_value(a, sa, sizeof sa);
    show_value(b, sb, sizeof sb);
    return differ(why, whysz, "%s '%s': dg_decode %s, cJSON path %s", what, name, sa, sb);
}

int dg_decode_compare(dg_decoder *d, dg_decoder *ref, const char *buf, size_t len,
                      int *fast, char *why, size_t whysz)
{
    struct dg_event a, b;
    struct dg_reject ra, rb;
    uint64_t before = d->nfast;

    if (why && whysz)
        why[0] = '\0';
    if (d->nextra != ref->nextra)
        return differ(why, whysz, "decoders with different extra fields");
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int rc_a = dg_decode(d, buf, len, &a, &ra);
    int rc_b = decode_slow(ref, buf, len, &b, &rb);
    if (fast)
        *fast = d->nfast != before;
    if (rc_a != rc_b)
        return differ(why, whysz, "dg_decode %s, cJSON path %s (%s)",
                      rc_a ? "rejects" : "accepts", rc_b ? "rejects" : "accepts",
                      rc_a ? ra.msg : rb.msg);
    if (rc_a != 0) {
        static const struct {
            const char *name;
            size_t off;
        } strs[] = {
            {"field", offsetof(struct dg_reject, field)},
            {"msg", offsetof(struct dg_reject, msg)},
            {"event_id", offsetof(struct dg_reject, event_id)},
            {"withdrawal_id", offsetof(struct dg_reject, withdrawal_id)},
            {"account_id", offsetof(struct dg_reject, account_id)},
            {"type", offsetof(struct dg_reject, type)},
            {"ts_raw", offsetof(struct dg_reject, ts_raw)},
        };
        if (ra.code != rb.code)
            return differ(why, whysz, "reject code %s vs %s", dg_reject_name(ra.code),
                          dg_reject_name(rb.code));
        for (size_t i = 0; i < DG_ARRAY_LEN(strs); i++) {
            const char *x = (const char *)&ra + strs[i].off;
            const char *y = (const char *)&rb + strs[i].off;
            if (strcmp(x, y) != 0)
                return differ(why, whysz, "reject %s '%s' vs '%s'", strs[i].name, x, y);
        }
        if (ra.ts_is_int != rb.ts_is_int)
            return differ(why, whysz, "reject ts_is_int %d vs %d", ra.ts_is_int, rb.ts_is_int);
        return 0;
    }

    if (a.type != b.type)
        return differ(why, whysz, "type %d vs %d", a.type, b.type);
    if (a.ts_ms != b.ts_ms || a.ts_is_int != b.ts_is_int)
        return differ(why, whysz, "ts %lld/%d vs %lld/%d", (long long)a.ts_ms, a.ts_is_int,
                      (long long)b.ts_ms, b.ts_is_int);
    if (a.ts_raw_len != b.ts_raw_len || memcmp(a.ts_raw, b.ts_raw, a.ts_raw_len) != 0 ||
        a.ts_raw[a.ts_raw_len] != '\0' || b.ts_raw[b.ts_raw_len] != '\0')
        return differ(why, whysz, "ts_raw differs");
    for (int f = 0; f < DG_F_NKNOWN; f++)
        if (!same_value(&a.f[f], &b.f[f]))
            return differ_value(why, whysz, "field", dg_fields[f].name, &a.f[f], &b.f[f]);
    if (a.nids != b.nids)
        return differ(why, whysz, "nids %zu vs %zu", a.nids, b.nids);
    for (size_t i = 0; i < a.nids; i++)
        if (strcmp(a.ids[i], b.ids[i]) != 0)
            return differ(why, whysz, "withdrawal_ids[%zu] '%s' vs '%s'", i, a.ids[i], b.ids[i]);
    for (size_t x = 0; x < d->nextra; x++)
        if (!same_value(&a.extra[x], &b.extra[x]))
            return differ_value(why, whysz, "extra", d->extra_names[x], &a.extra[x], &b.extra[x]);
    return 0;
}
