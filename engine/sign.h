/*
 * sign.h - signed decisions (docs/signing.md). A decision is signed with
 * HMAC-SHA256 over its canonical form (its bytes without the two signature
 * fields) and carries the id of the key, so keys can rotate: the engine signs
 * with one key, a verifier holds several by id. sign.c is the only file that
 * includes OpenSSL.
 */
#ifndef DG_SIGN_H
#define DG_SIGN_H

#include <stddef.h>
#include "util.h"

#define DG_SIG_MIN_KEY 32     /* bytes: the HMAC-SHA256 output size */
#define DG_SIG_MAX_KEY 4096   /* bytes: a key file is hostile input too */
#define DG_SIG_MAX_KID 64     /* characters of a key id */
#define DG_SIG_MAX_KEYS 1024  /* keys in one verifier's key ring */

/* HMAC-SHA256 of msg[0..len) under key[0..keylen) (any length) into out.
 * Returns 0, or -1 when libcrypto failed. */
int dg_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                   unsigned char out[32]);

/* Is kid a valid key id: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with
 * '.'? (It appears unescaped in decisions and is a file name in --keys DIR.) */
int dg_sign_kid_valid(const char *kid);

/* ---- signing ---- */

typedef struct dg_signer dg_signer;

/* A signer holding a copy of key[0..keylen) under id kid. Returns NULL with a
 * message in err when kid is not valid or the key is shorter than
 * DG_SIG_MIN_KEY or longer than DG_SIG_MAX_KEY bytes. Not thread-safe: one
 * per pipeline. */
dg_signer *dg_signer_new(const char *kid, const void *key, size_t keylen, char *err,
                         size_t errsz);

/* The signer that run's and replay's settings ask for: the key is the raw
 * bytes of key_file (one trailing "\n" or "\r\n" stripped) or of the
 * environment variable named key_env, its id key_id. Any argument may be
 * NULL. Returns NULL with err "" when none of the three is set (no signing),
 * NULL with a message in err when the settings are incomplete or the key is
 * unusable. The message names the file or variable and the key id, never
 * the key's bytes. */
dg_signer *dg_signer_open(const char *key_id, const char *key_file, const char *key_env,
                          char *err, size_t errsz);

/* The key is wiped from memory. NULL is fine. */
void dg_signer_free(dg_signer *s);
const char *dg_signer_kid(const dg_signer *s);
size_t dg_signer_keylen(const dg_signer *s);

/* HMAC-SHA256 of msg under the signer's key. Returns 0 or -1. */
int dg_signer_mac(dg_signer *s, const void *msg, size_t len, unsigned char out[32]);

/* b holds one complete, unsigned decision: a JSON object ending in '}'.
 * Replace that '}' by ,"sig_kid":"<id>","sig":"<64 hex>"} where the HMAC is
 * over b's bytes as they were (the canonical form). Returns 0, or -1 (b
 * unchanged) when b does not end in '}', is already signed, or libcrypto
 * failed. */
int dg_signer_sign(dg_signer *s, dg_buf *b);

/* ---- verifying ---- */

enum {
    DG_SIG_OK = 0,
    DG_SIG_MISSING,      /* no signature fields at all */
    DG_SIG_MALFORMED,    /* not a JSON object, fields not last or twice, bad hex */
    DG_SIG_UNKNOWN_KID,  /* signed by a key the ring does not hold */
    DG_SIG_BAD           /* the HMAC does not match: altered, or the wrong key */
};

/* "verified", "missing signature", "malformed", "unknown key id",
 * "bad signature" */
const char *dg_sig_result_name(int r);

typedef struct dg_keyring dg_keyring;

dg_keyring *dg_keyring_new(void);
void dg_keyring_free(dg_keyring *kr);

/* Add a key under kid; kid NULL adds the key for every id the ring does
 * not otherwise hold (at most one such key). Returns 0, or -1 with a message
 * in err (bad id, id given twice, key too short or too long, full ring). */
int dg_keyring_add(dg_keyring *kr, const char *kid, const void *key, size_t keylen, char *err,
                   size_t errsz);
/* The same with the bytes of a key file (one trailing newline stripped). */
int dg_keyring_add_file(dg_keyring *kr, const char *kid, const char *path, char *err,
                        size_t errsz);
/* Every regular file of dir whose name does not start with '.' is a key;
 * its name is the key id. Returns the number of keys added, or -1 with a
 * message in err (nothing usable is skipped silently: a bad name, a short
 * key or an unreadable file fails the whole directory). */
int dg_keyring_add_dir(dg_keyring *kr, const char *dir, char *err, size_t errsz);
size_t dg_keyring_count(const dg_keyring *kr);

/* Verify one decision: its exact bytes msg[0..len), without a newline.
 * Returns DG_SIG_*; detail (may be NULL) gets the key id for OK, BAD and
 * UNKNOWN_KID, or what is malformed. */
int dg_sign_verify(const dg_keyring *kr, const char *msg, size_t len, char *detail,
                   size_t detailsz);

#endif
