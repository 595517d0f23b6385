/*
 * sign.c - signed decisions, see sign.h and docs/signing.md. Sits at the end
 * of the pipeline: judge() encodes a decision, the signer appends its
 * signature before the state backend stores the bytes, so a redelivery
 * republishes the same signed bytes. Also the verifier behind `drainguard
 * verify`. The only file that includes OpenSSL; libcrypto's 1-on-success
 * convention stops here.
 *
 * Each key keeps one EVP_MAC_CTX keyed once and re-initialised per message
 * (HMAC's inner and outer pads are computed once per key, not per decision).
 */
#include "sign.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#define SIG_HEX 64

static const char kid_tag[] = ",\"sig_kid\":\"";
static const char sig_tag[] = "\",\"sig\":\"";
#define KID_TAG_LEN (sizeof kid_tag - 1)
#define SIG_TAG_LEN (sizeof sig_tag - 1)

struct dg_signer {
    char kid[DG_SIG_MAX_KID + 1];
    unsigned char *key;
    size_t keylen;
    EVP_MAC_CTX *ctx;  /* keyed; EVP_MAC_init(ctx, NULL, ...) starts a message */
};

int dg_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                   unsigned char out[32])
{
    unsigned int outlen = 0;
    if (keylen > (size_t)0x7fffffff)
        return -1;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen) || outlen != 32)
        return -1;
    return 0;
}

int dg_sign_kid_valid(const char *kid)
{
    size_t n = 0;
    if (!kid || kid[0] == '.')
        return 0;
    for (; kid[n]; n++) {
        char c = kid[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n >= 1 && n <= DG_SIG_MAX_KID;
}

static void hex32(const unsigned char mac[32], char out[SIG_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[mac[i] >> 4];
        out[2 * i + 1] = digits[mac[i] & 15];
    }
}

dg_signer *dg_signer_new(const char *kid, const void *key, size_t keylen, char *err, size_t errsz)
{
    OSSL_PARAM params[2];
    EVP_MAC *mac;
    dg_signer *s;

    if (!dg_sign_kid_valid(kid)) {
        snprintf(err, errsz,
                 "key id '%.80s' is not valid (1 to %d of A-Z a-z 0-9 . _ -, not starting with '.')",
                 kid ? kid : "", DG_SIG_MAX_KID);
        return NULL;
    }
    if (keylen < DG_SIG_MIN_KEY || keylen > DG_SIG_MAX_KEY) {
        snprintf(err, errsz, "key '%s' has %zu bytes: a signing key has %d to %d", kid, keylen,
                 DG_SIG_MIN_KEY, DG_SIG_MAX_KEY);
        return NULL;
    }
    s = dg_xcalloc(1, sizeof(*s));
    snprintf(s->kid, sizeof s->kid, "%s", kid);
    s->key = dg_xmalloc(keylen);
    memcpy(s->key, key, keylen);
    s->keylen = keylen;

    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (!mac)
        goto out_crypto;
    s->ctx = EVP_MAC_CTX_new(mac); /* holds its own reference to mac */
    EVP_MAC_free(mac);
    if (!s->ctx)
        goto out_crypto;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(s->ctx, s->key, s->keylen, params) != 1)
        goto out_crypto;
    return s;

out_crypto:
    snprintf(err, errsz, "key '%s': libcrypto cannot set up HMAC-SHA256", kid);
    dg_signer_free(s);
    return NULL;
}

void dg_signer_free(dg_signer *s)
{
    if (!s)
        return;
    EVP_MAC_CTX_free(s->ctx);
    if (s->key) {
        OPENSSL_cleanse(s->key, s->keylen);
        free(s->key);
    }
    free(s);
}

const char *dg_signer_kid(const dg_signer *s)
{
    return s->kid;
}

size_t dg_signer_keylen(const dg_signer *s)
{
    return s->keylen;
}

/* HMAC of a ++ b (b may be empty): the canonical form is the signed part
 * and a '}' that is not next to it in the message. */
static int mac2(dg_signer *s, const void *a, size_t alen, const void *b, size_t blen,
                unsigned char out[32])
{
    size_t outlen = 0;
    if (EVP_MAC_init(s->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(s->ctx, a, alen) != 1 ||
        (blen && EVP_MAC_update(s->ctx, b, blen) != 1) ||
        EVP_MAC_final(s->ctx, out, &outlen, 32) != 1 || outlen != 32)
        return -1;
    return 0;
}

int dg_signer_mac(dg_signer *s, const void *msg, size_t len, unsigned char out[32])
{
    return mac2(s, msg, len, NULL, 0, out);
}

/* Does m[0..n) hold a "sig": or "sig_kid": key? One memchr pass over the
 * quotes: this runs on every decision signed and verified. */
static int has_sig_field(const char *m, size_t n)
{
    const char *end = m + n;
    for (const char *p = m; (p = memchr(p, '"', (size_t)(end - p))); p++) {
        size_t left = (size_t)(end - p);
        if ((left >= 6 && !memcmp(p, "\"sig\":", 6)) || (left >= 10 && !memcmp(p, "\"sig_kid\":", 10)))
            return 1;
    }
    return 0;
}

int dg_signer_sign(dg_signer *s, dg_buf *b)
{
    unsigned char mac[32];
    char hex[SIG_HEX];

    if (!b->len || b->data[0] != '{' || b->data[b->len - 1] != '}' ||
        has_sig_field(b->data, b->len))
        return -1;
    if (mac2(s, b->data, b->len, NULL, 0, mac) != 0)
        return -1;
    hex32(mac, hex);
    b->len--; /* the closing brace comes back after the two fields */
    dg_buf_append(b, kid_tag, KID_TAG_LEN);
    dg_buf_puts(b, s->kid);
    dg_buf_append(b, sig_tag, SIG_TAG_LEN);
    dg_buf_append(b, hex, SIG_HEX);
    dg_buf_puts(b, "\"}");
    return 0;
}

/* The bytes of a key file, one trailing newline stripped, into a malloc'd
 * buffer. NULL with a message. */
static unsigned char *read_key_file(const char *path, size_t *len, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    size_t n;

    if (!f) {
        snprintf(err, errsz, "cannot read key file '%s': %s", path, strerror(errno));
        return NULL;
    }
    buf = dg_xmalloc(DG_SIG_MAX_KEY + 3); /* room for "\r\n" and one byte too many */
    n = fread(buf, 1, DG_SIG_MAX_KEY + 3, f);
    if (ferror(f)) {
        snprintf(err, errsz, "cannot read key file '%s': %s", path, strerror(errno));
        goto out_free;
    }
    if (n && buf[n - 1] == '\n') {
        n--;
        if (n && buf[n - 1] == '\r')
            n--;
    }
    if (n > DG_SIG_MAX_KEY) {
        snprintf(err, errsz, "key file '%s' is longer than %d bytes", path, DG_SIG_MAX_KEY);
        goto out_free;
    }
    fclose(f);
    *len = n;
    return buf;

out_free:
    OPENSSL_cleanse(buf, DG_SIG_MAX_KEY + 3);
    free(buf);
    fclose(f);
    return NULL;
}

static void free_key(unsigned char *key)
{
    if (key) {
        OPENSSL_cleanse(key, DG_SIG_MAX_KEY + 3);
        free(key);
    }
}

dg_signer *dg_signer_open(const char *key_id, const char *key_file, const char *key_env,
                          char *err, size_t errsz)
{
    char why[256];
    dg_signer *s;

    err[0] = '\0';
    if (!key_id && !key_file && !key_env)
        return NULL;
    if (key_file && key_env) {
        snprintf(err, errsz, "signing: key_file and key_env are both set; give one");
        return NULL;
    }
    if (!key_file && !key_env) {
        snprintf(err, errsz, "signing: key id '%.80s' given without a key (key_file or key_env)",
                 key_id);
        return NULL;
    }
    if (!key_id) {
        snprintf(err, errsz, "signing: the key needs a key id (key_id, --sign-key-id)");
        return NULL;
    }
    if (key_file) {
        size_t len = 0;
        unsigned char *key = read_key_file(key_file, &len, why, sizeof why);
        if (!key) {
            snprintf(err, errsz, "signing: %s", why);
            return NULL;
        }
        s = dg_signer_new(key_id, key, len, why, sizeof why);
        free_key(key);
        if (!s)
            snprintf(err, errsz, "signing: key file '%s': %s", key_file, why);
        return s;
    }
    const char *v = getenv(key_env);
    if (!v) {
        snprintf(err, errsz, "signing: environment variable '%s' is not set", key_env);
        return NULL;
    }
    s = dg_signer_new(key_id, v, strlen(v), why, sizeof why);
    if (!s)
        snprintf(err, errsz, "signing: environment variable '%s': %s", key_env, why);
    return s;
}

/* ---- verifying ---- */

const char *dg_sig_result_name(int r)
{
    switch (r) {
    case DG_SIG_OK: return "verified";
    case DG_SIG_MISSING: return "missing signature";
    case DG_SIG_MALFORMED: return "malformed";
    case DG_SIG_UNKNOWN_KID: return "unknown key id";
    case DG_SIG_BAD: return "bad signature";
    }
    return "?";
}

struct dg_keyring {
    dg_signer **keys;   /* a handful: looked up linearly */
    size_t n;
    dg_signer *any;     /* the key for every other id, or NULL */
};

dg_keyring *dg_keyring_new(void)
{
    return dg_xcalloc(1, sizeof(dg_keyring));
}

void dg_keyring_free(dg_keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n; i++)
        dg_signer_free(kr->keys[i]);
    free(kr->keys);
    dg_signer_free(kr->any);
    free(kr);
}

size_t dg_keyring_count(const dg_keyring *kr)
{
    return kr->n + (kr->any != NULL);
}

static dg_signer *ring_find(const dg_keyring *kr, const char *kid)
{
    for (size_t i = 0; i < kr->n; i++)
        if (!strcmp(kr->keys[i]->kid, kid))
            return kr->keys[i];
    return kr->any;
}

int dg_keyring_add(dg_keyring *kr, const char *kid, const void *key, size_t keylen, char *err,
                   size_t errsz)
{
    dg_signer *s;

    if (dg_keyring_count(kr) >= DG_SIG_MAX_KEYS) {
        snprintf(err, errsz, "more than %d keys", DG_SIG_MAX_KEYS);
        return -1;
    }
    if (!kid && kr->any) {
        snprintf(err, errsz, "only one key may stand for any key id");
        return -1;
    }
    if (kid)
        for (size_t i = 0; i < kr->n; i++)
            if (!strcmp(kr->keys[i]->kid, kid)) {
                snprintf(err, errsz, "key id '%s' given twice", kid);
                return -1;
            }
    /* the key for any id is held under a placeholder id it never matches */
    s = dg_signer_new(kid ? kid : "any", key, keylen, err, errsz);
    if (!s)
        return -1;
    if (!kid) {
        kr->any = s;
        return 0;
    }
    kr->keys = dg_xrealloc(kr->keys, (kr->n + 1) * sizeof(*kr->keys));
    kr->keys[kr->n++] = s;
    return 0;
}

int dg_keyring_add_file(dg_keyring *kr, const char *kid, const char *path, char *err, size_t errsz)
{
    char why[256];
    size_t len = 0;
    unsigned char *key = read_key_file(path, &len, err, errsz);
    int rc;

    if (!key)
        return -1;
    rc = dg_keyring_add(kr, kid, key, len, why, sizeof why);
    free_key(key);
    if (rc != 0)
        snprintf(err, errsz, "key file '%s': %s", path, why);
    return rc;
}

int dg_keyring_add_dir(dg_keyring *kr, const char *dir, char *err, size_t errsz)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int added = 0;

    if (!d) {
        snprintf(err, errsz, "cannot read key directory '%s': %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d))) {
        struct stat sb;
        dg_buf path = {0};
        int rc = 0;
        if (e->d_name[0] == '.')
            continue;
        dg_buf_printf(&path, "%s/%s", dir, e->d_name);
        if (stat(path.data, &sb) != 0) {
            snprintf(err, errsz, "cannot read key file '%s': %s", path.data, strerror(errno));
            rc = -1;
        } else if (S_ISREG(sb.st_mode)) {
            if (!dg_sign_kid_valid(e->d_name)) {
                snprintf(err, errsz,
                         "key file '%s': its name is the key id and is not valid "
                         "(1 to %d of A-Z a-z 0-9 . _ -)",
                         path.data, DG_SIG_MAX_KID);
                rc = -1;
            } else {
                rc = dg_keyring_add_file(kr, e->d_name, path.data, err, errsz);
                added += rc == 0;
            }
        }
        dg_buf_free(&path);
        if (rc != 0) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    return added;
}

static void say(char *detail, size_t sz, const char *what)
{
    if (detail && sz)
        snprintf(detail, sz, "%s", what);
}

/*
 * The checks, in this order, are the contract of docs/signing.md (the C
 * function there does the same):
 *   the message is a JSON object: '{' first, '}' last;
 *   the last ,"sig_kid":" is followed by a key id, ","sig":", 64 lowercase
 *   hex digits and "} ending the message;
 *   the signed part (everything before that ,"sig_kid":") has no "sig_kid":
 *   or "sig": of its own;
 *   HMAC-SHA256(key named by the id, signed part ++ "}") equals the hex,
 *   compared in constant time.
 */
int dg_sign_verify(const dg_keyring *kr, const char *msg, size_t len, char *detail,
                   size_t detailsz)
{
    const char *tag = NULL, *q, *end = msg + len, *hex;
    char kid[DG_SIG_MAX_KID + 1], want[SIG_HEX];
    unsigned char mac[32];
    size_t pre, k = 0;
    dg_signer *key;

    if (detail && detailsz)
        detail[0] = '\0';
    if (len < 2 || msg[0] != '{' || msg[len - 1] != '}') {
        say(detail, detailsz, "not a JSON object");
        return DG_SIG_MALFORMED;
    }
    for (size_t i = len >= KID_TAG_LEN ? len - KID_TAG_LEN + 1 : 0; i-- > 0;)
        if (msg[i] == ',' && !memcmp(msg + i, kid_tag, KID_TAG_LEN)) {
            tag = msg + i;
            break;
        }
    if (!tag) {
        if (has_sig_field(msg, len)) {
            say(detail, detailsz, "signature fields are not the last two fields");
            return DG_SIG_MALFORMED;
        }
        return DG_SIG_MISSING;
    }
    pre = (size_t)(tag - msg);
    for (q = tag + KID_TAG_LEN; q < end && *q != '"' && k < DG_SIG_MAX_KID; q++)
        kid[k++] = *q;
    kid[k] = '\0';
    if (q == end || *q != '"' || !dg_sign_kid_valid(kid)) {
        say(detail, detailsz, "bad sig_kid value");
        return DG_SIG_MALFORMED;
    }
    if ((size_t)(end - q) != SIG_TAG_LEN + SIG_HEX + 2 || memcmp(q, sig_tag, SIG_TAG_LEN) ||
        memcmp(end - 2, "\"}", 2)) {
        say(detail, detailsz, "signature fields are not the last two fields");
        return DG_SIG_MALFORMED;
    }
    hex = q + SIG_TAG_LEN;
    for (int i = 0; i < SIG_HEX; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
            say(detail, detailsz, "sig is not 64 lowercase hex digits");
            return DG_SIG_MALFORMED;
        }
    if (has_sig_field(msg, pre)) {
        say(detail, detailsz, "signature fields appear twice");
        return DG_SIG_MALFORMED;
    }
    say(detail, detailsz, kid);
    key = ring_find(kr, kid);
    if (!key)
        return DG_SIG_UNKNOWN_KID;
    if (mac2(key, msg, pre, "}", 1, mac) != 0)
        return DG_SIG_BAD;
    hex32(mac, want);
    return CRYPTO_memcmp(want, hex, SIG_HEX) == 0 ? DG_SIG_OK : DG_SIG_BAD;
}
