/*
 * test_sign.c - engine/sign.c and the signed-decision contract
 * (docs/signing.md): HMAC-SHA256 known answers (RFC 4231), decisions signed
 * by the pipeline verify and fail on a flipped byte, a wrong key, a missing
 * or misplaced signature; key rotation; redeliveries republish the same
 * signed bytes. End to end through the CLI (`replay --sign-key-file`, then
 * `verify`), and the C function of docs/signing.md, compiled out of the page.
 *
 * The CLI runs $DG_BIN when set (make unit sets it), else the subcommands
 * in a child process. Paths are relative to the repository root.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "detect.h"
#include "pipeline.h"
#include "rules.h"
#include "sign.h"
#include "state.h"

#define KEY1 "k1-0123456789abcdef0123456789abcdef"
#define KEY2 "k2-fedcba9876543210fedcba9876543210"
#define EVENTS "tests/demo/events.jsonl"
#define RULES "rules/default.yaml"

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static dg_signer *signer(const char *kid, const char *key)
{
    char err[256];
    dg_signer *s = dg_signer_new(kid, key, strlen(key), err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

static dg_keyring *ring(const char *kid, const char *key)
{
    char err[256];
    dg_keyring *kr = dg_keyring_new();
    ck_assert_msg(dg_keyring_add(kr, kid, key, strlen(key), err, sizeof err) == 0, "%s", err);
    return kr;
}

/* ---- a pipeline with the memory backend ---- */

static const char rules_yaml[] =
    "rules:\n"
    "  - {id: big, on: withdrawal.requested, when: amount_usd > 1000, action: review}\n";

struct got {
    char text[16][2048];
    int dup[16];
    int n;
};

static int keep(void *ud, const struct dg_output *o)
{
    struct got *g = ud;
    ck_assert_int_lt(g->n, 16);
    snprintf(g->text[g->n], sizeof g->text[0], "%.*s", (int)o->decision_len,
             o->decision ? o->decision : "");
    g->dup[g->n] = o->duplicate;
    g->n++;
    return 0;
}

static void withdrawal(char *out, size_t sz, const char *id, int usd)
{
    snprintf(out, sz,
             "{\"event_id\":\"%s\",\"type\":\"withdrawal.requested\",\"ts\":\"2019-05-07T12:00:00Z\","
             "\"withdrawal_id\":\"W-%s\",\"account_id\":\"a\",\"asset\":\"BTC\",\"chain\":\"bitcoin\","
             "\"amount\":\"1\",\"amount_usd\":%d,\"dest_address\":\"d\"}",
             id, id, usd);
}

struct rig {
    struct dg_diag diag;
    struct dg_ruleset *rs;
    struct dg_state *st;
    dg_pipeline *p;
};

static void rig_open(struct rig *r, const char *kid, const char *key)
{
    memset(r, 0, sizeof(*r));
    r->rs = dg_ruleset_load_mem("t.yaml", rules_yaml, strlen(rules_yaml), &r->diag);
    ck_assert_ptr_nonnull(r->rs);
    r->st = dg_state_mem_new(3600000, 3600000);
    r->p = dg_pipeline_new(r->rs, r->st, 8, 0);
    if (key)
        dg_pipeline_set_signer(r->p, signer(kid, key));
}

static void rig_close(struct rig *r)
{
    dg_pipeline_free(r->p);
    r->st->ops->destroy(r->st);
    dg_ruleset_free(r->rs);
    dg_diag_free(&r->diag);
}

static void push(struct rig *r, const char *line)
{
    dg_pipeline_push(r->p, line, strlen(line), NULL);
}

static void flush(struct rig *r, struct got *g)
{
    char err[256];
    ck_assert_int_eq(dg_pipeline_flush(r->p, keep, g, err, sizeof err), 0);
}

/* One decision for a withdrawal of usd dollars, signed with key under kid
 * (or unsigned when key is NULL). */
static void one_decision(const char *id, int usd, const char *kid, const char *key, char *out,
                         size_t sz)
{
    struct rig r;
    struct got g = {0};
    char ev[512];
    rig_open(&r, kid, key);
    withdrawal(ev, sizeof ev, id, usd);
    push(&r, ev);
    flush(&r, &g);
    ck_assert_int_eq(g.n, 1);
    snprintf(out, sz, "%s", g.text[0]);
    rig_close(&r);
}

/* ---- known answers ---- */

START_TEST(hmac_rfc4231)
{
    unsigned char mac[32], key[131];
    char h[65], err[256];
    static const char data6[] = "Test Using Larger Than Block-Size Key - Hash Key First";

    /* test case 2: a key shorter than a signing key may be, so the raw API */
    ck_assert_int_eq(dg_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
    hex(mac, 32, h);
    ck_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* test case 6 through the signer (131-byte key, hashed first); twice,
     * since the signer re-uses its keyed context for every message */
    memset(key, 0xaa, sizeof key);
    dg_signer *s = dg_signer_new("rfc4231", key, sizeof key, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(dg_signer_mac(s, data6, strlen(data6), mac), 0);
        hex(mac, 32, h);
        ck_assert_str_eq(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }
    dg_signer_free(s);
}
END_TEST

START_TEST(key_ids_and_lengths)
{
    char err[256];
    ck_assert(dg_sign_kid_valid("2024-06_a.b"));
    ck_assert(!dg_sign_kid_valid(""));
    ck_assert(!dg_sign_kid_valid(".hidden"));
    ck_assert(!dg_sign_kid_valid("a b"));
    ck_assert(!dg_sign_kid_valid("a\"b"));
    ck_assert(!dg_sign_kid_valid("x/y"));
    char long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    ck_assert(!dg_sign_kid_valid(long_id));
    long_id[64] = '\0';
    ck_assert(dg_sign_kid_valid(long_id));

    ck_assert_ptr_null(dg_signer_new("k", "short", 5, err, sizeof err));
    ck_assert_msg(strstr(err, "5 bytes") && strstr(err, "32"), "%s", err);
    ck_assert_ptr_null(dg_signer_new("bad id", KEY1, strlen(KEY1), err, sizeof err));
    ck_assert_msg(strstr(err, "'bad id' is not valid"), "%s", err);
}
END_TEST

/* ---- signing and verifying ---- */

START_TEST(signed_decision_verifies)
{
    char plain[2048], signed_[2048], detail[128];
    one_decision("e1", 5000, NULL, NULL, plain, sizeof plain);
    one_decision("e1", 5000, "k1", KEY1, signed_, sizeof signed_);

    /* the canonical form is the unsigned decision, byte for byte */
    const char *tag = strstr(signed_, ",\"sig_kid\":\"k1\",\"sig\":\"");
    ck_assert_ptr_nonnull(tag);
    size_t pre = (size_t)(tag - signed_);
    ck_assert_uint_eq(pre + 1, strlen(plain));
    ck_assert(!memcmp(plain, signed_, pre));
    ck_assert_uint_eq(strlen(tag), strlen(",\"sig_kid\":\"k1\",\"sig\":\"") + 64 + 2);

    /* and the signature is the HMAC of it */
    unsigned char mac[32];
    char h[65];
    ck_assert_int_eq(dg_hmac_sha256(KEY1, strlen(KEY1), plain, strlen(plain), mac), 0);
    hex(mac, 32, h);
    ck_assert(!memcmp(tag + strlen(",\"sig_kid\":\"k1\",\"sig\":\""), h, 64));

    dg_keyring *kr = ring("k1", KEY1);
    ck_assert_int_eq(dg_sign_verify(kr, signed_, strlen(signed_), detail, sizeof detail), DG_SIG_OK);
    ck_assert_str_eq(detail, "k1");
    /* the unsigned one is missing its signature */
    ck_assert_int_eq(dg_sign_verify(kr, plain, strlen(plain), NULL, 0), DG_SIG_MISSING);
    dg_keyring_free(kr);
}
END_TEST

START_TEST(flipped_byte_fails)
{
    char d[2048];
    one_decision("e1", 5000, "k1", KEY1, d, sizeof d);
    dg_keyring *kr = ring("k1", KEY1);
    size_t len = strlen(d);

    /* every byte of the message, signed part, key id and hex alike */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            char m[2048];
            memcpy(m, d, len);
            m[i] ^= (char)(1 << bit);
            int r = dg_sign_verify(kr, m, len, NULL, 0);
            ck_assert_msg(r != DG_SIG_OK, "flipping bit %d of byte %zu ('%c') still verifies", bit,
                          i, d[i]);
        }
    }
    /* a byte taken away or added */
    ck_assert_int_ne(dg_sign_verify(kr, d, len - 1, NULL, 0), DG_SIG_OK);
    ck_assert_int_ne(dg_sign_verify(kr, d + 1, len - 1, NULL, 0), DG_SIG_OK);
    dg_keyring_free(kr);
}
END_TEST

START_TEST(wrong_key_fails)
{
    char d[2048], detail[128];
    one_decision("e1", 5000, "k1", KEY1, d, sizeof d);

    dg_keyring *kr = ring("k1", KEY2); /* the right id, another key */
    ck_assert_int_eq(dg_sign_verify(kr, d, strlen(d), detail, sizeof detail), DG_SIG_BAD);
    ck_assert_str_eq(detail, "k1");
    dg_keyring_free(kr);

    kr = ring("k2", KEY1); /* the right key under another id */
    ck_assert_int_eq(dg_sign_verify(kr, d, strlen(d), detail, sizeof detail), DG_SIG_UNKNOWN_KID);
    ck_assert_str_eq(detail, "k1");
    dg_keyring_free(kr);

    kr = ring(NULL, KEY2); /* a key for any id: tried, and wrong */
    ck_assert_int_eq(dg_sign_verify(kr, d, strlen(d), NULL, 0), DG_SIG_BAD);
    dg_keyring_free(kr);
    kr = ring(NULL, KEY1);
    ck_assert_int_eq(dg_sign_verify(kr, d, strlen(d), NULL, 0), DG_SIG_OK);
    dg_keyring_free(kr);
}
END_TEST

START_TEST(misplaced_signature_fails)
{
    char d[2048], m[4096], detail[128];
    one_decision("e1", 5000, "k1", KEY1, d, sizeof d);
    dg_keyring *kr = ring("k1", KEY1);
    const char *tag = strstr(d, ",\"sig_kid\":");
    size_t pre = (size_t)(tag - d), len = strlen(d);

    /* a field after the signature */
    snprintf(m, sizeof m, "%.*s,\"extra\":1}", (int)(len - 1), d);
    ck_assert_int_eq(dg_sign_verify(kr, m, strlen(m), detail, sizeof detail), DG_SIG_MALFORMED);
    ck_assert_str_eq(detail, "signature fields are not the last two fields");

    /* the signature fields first */
    snprintf(m, sizeof m, "{%.*s,%.*s", (int)(len - pre - 2), tag + 1, (int)(pre - 1), d + 1);
    strcat(m, "}");
    ck_assert_int_eq(dg_sign_verify(kr, m, strlen(m), NULL, 0), DG_SIG_MALFORMED);

    /* the fields twice: a signed decision signed again is refused by the
     * signer, and by the verifier when someone builds one */
    dg_signer *s = signer("k1", KEY1);
    dg_buf b = {0};
    dg_buf_puts(&b, d);
    ck_assert_int_eq(dg_signer_sign(s, &b), -1);
    ck_assert_str_eq(b.data, d);
    snprintf(m, sizeof m, "%.*s%s", (int)(len - 1), d, tag);
    ck_assert_int_eq(dg_sign_verify(kr, m, strlen(m), detail, sizeof detail), DG_SIG_MALFORMED);
    ck_assert_str_eq(detail, "signature fields appear twice");
    dg_buf_free(&b);
    dg_signer_free(s);

    /* uppercase hex, a short signature, trailing bytes, not an object */
    snprintf(m, sizeof m, "%s", d);
    for (char *c = m + len - 66; *c != '"'; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    ck_assert_int_eq(dg_sign_verify(kr, m, len, NULL, 0), DG_SIG_MALFORMED);
    snprintf(m, sizeof m, "%.*s\"}", (int)(len - 4), d);
    ck_assert_int_eq(dg_sign_verify(kr, m, strlen(m), NULL, 0), DG_SIG_MALFORMED);
    snprintf(m, sizeof m, "%s ", d);
    ck_assert_int_eq(dg_sign_verify(kr, m, strlen(m), NULL, 0), DG_SIG_MALFORMED);
    /* the right hex with more after it, inside the string */
    snprintf(m, sizeof m, "%.*s00\"}", (int)(len - 2), d);
    ck_assert_int_eq(dg_sign_verify(kr, m, strlen(m), NULL, 0), DG_SIG_MALFORMED);
    ck_assert_int_eq(dg_sign_verify(kr, "", 0, NULL, 0), DG_SIG_MALFORMED);
    ck_assert_int_eq(dg_sign_verify(kr, "not json", 8, NULL, 0), DG_SIG_MALFORMED);
    /* a sig without a sig_kid */
    ck_assert_int_eq(dg_sign_verify(kr, "{\"a\":1,\"sig\":\"00\"}", 18, NULL, 0), DG_SIG_MALFORMED);
    dg_keyring_free(kr);
}
END_TEST

/* An event_id carrying the signature's own syntax is escaped in the
 * decision, so it cannot pose as the signature fields. */
START_TEST(hostile_ids_stay_inside_the_signed_part)
{
    char d[2048];
    one_decision("x\\\",\\\"sig_kid\\\":\\\"k9\\\",\\\"sig\\\":\\\"", 5000, "k1", KEY1, d, sizeof d);
    ck_assert_msg(strstr(d, "\"event_id\":\"x\\\",\\\"sig_kid\\\""), "%s", d);
    dg_keyring *kr = ring("k1", KEY1);
    ck_assert_int_eq(dg_sign_verify(kr, d, strlen(d), NULL, 0), DG_SIG_OK);
    dg_keyring_free(kr);
}
END_TEST

/* The fail-closed hold of an invalid withdrawal is signed too. */
START_TEST(reject_holds_are_signed)
{
    struct rig r;
    struct got g = {0};
    static const char bad[] =
        "{\"event_id\":\"bad1\",\"type\":\"withdrawal.requested\",\"ts\":\"2019-05-07T12:00:00Z\","
        "\"withdrawal_id\":\"W-bad\",\"account_id\":\"a\",\"asset\":\"BTC\",\"amount\":\"-3\"}";
    rig_open(&r, "k1", KEY1);
    push(&r, bad);
    flush(&r, &g);
    ck_assert_int_eq(g.n, 1);
    ck_assert_msg(strstr(g.text[0], "\"action\":\"hold\"") && strstr(g.text[0], DG_RULE_INVALID),
                  "%s", g.text[0]);
    dg_keyring *kr = ring("k1", KEY1);
    ck_assert_int_eq(dg_sign_verify(kr, g.text[0], strlen(g.text[0]), NULL, 0), DG_SIG_OK);
    dg_keyring_free(kr);
    rig_close(&r);
}
END_TEST

/* A redelivered event gets the stored bytes, signature included: in a
 * later batch (from the backend) and in the same batch. */
START_TEST(redelivery_republishes_the_same_bytes)
{
    struct rig r;
    struct got g1 = {0}, g2 = {0};
    char a[512], b[512];
    rig_open(&r, "k1", KEY1);
    withdrawal(a, sizeof a, "e1", 5000);
    withdrawal(b, sizeof b, "e2", 10);
    push(&r, a);
    push(&r, b);
    push(&r, a); /* the same batch */
    flush(&r, &g1);
    ck_assert_int_eq(g1.n, 3);
    ck_assert_str_eq(g1.text[2], g1.text[0]);
    ck_assert_int_eq(g1.dup[2], 1);
    /* the signing key changes: stored decisions keep the signature they were made with */
    dg_pipeline_set_signer(r.p, signer("k2", KEY2));
    push(&r, b);
    push(&r, a);
    flush(&r, &g2);
    ck_assert_int_eq(g2.n, 2);
    ck_assert_int_eq(g2.dup[0], 1);
    ck_assert_int_eq(g2.dup[1], 1);
    ck_assert_str_eq(g2.text[0], g1.text[1]);
    ck_assert_str_eq(g2.text[1], g1.text[0]);
    ck_assert_msg(strstr(g2.text[1], "\"sig_kid\":\"k1\""), "%s", g2.text[1]);
    rig_close(&r);
}
END_TEST

/* ---- keys from files, variables and directories ---- */

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static char *path_in(const char *name)
{
    static char path[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dg-sign-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(signer_open_settings)
{
    char err[512];
    make_tmpdir();
    write_file("k1", KEY1 "\n");
    write_file("k1crlf", KEY1 "\r\n");
    write_file("short", "0123456789\n");

    ck_assert_ptr_null(dg_signer_open(NULL, NULL, NULL, err, sizeof err));
    ck_assert_str_eq(err, "");

    /* one trailing newline stripped: the same key as the bare bytes */
    dg_signer *f = dg_signer_open("k1", path_in("k1"), NULL, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_uint_eq(dg_signer_keylen(f), strlen(KEY1));
    dg_signer *crlf = dg_signer_open("k1", path_in("k1crlf"), NULL, err, sizeof err);
    ck_assert_msg(crlf != NULL, "%s", err);
    ck_assert_uint_eq(dg_signer_keylen(crlf), strlen(KEY1));
    setenv("DG_TEST_SIGN_KEY", KEY1, 1);
    dg_signer *e = dg_signer_open("k1", NULL, "DG_TEST_SIGN_KEY", err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    unsigned char m1[32], m2[32], m3[32];
    ck_assert_int_eq(dg_signer_mac(f, "x", 1, m1), 0);
    ck_assert_int_eq(dg_signer_mac(crlf, "x", 1, m2), 0);
    ck_assert_int_eq(dg_signer_mac(e, "x", 1, m3), 0);
    ck_assert(!memcmp(m1, m2, 32) && !memcmp(m1, m3, 32));
    dg_signer_free(f);
    dg_signer_free(crlf);
    dg_signer_free(e);

    ck_assert_ptr_null(dg_signer_open("k1", NULL, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "without a key"), "%s", err);
    ck_assert_ptr_null(dg_signer_open(NULL, path_in("k1"), NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "needs a key id"), "%s", err);
    ck_assert_ptr_null(dg_signer_open("k1", path_in("k1"), "DG_TEST_SIGN_KEY", err, sizeof err));
    ck_assert_msg(strstr(err, "both set"), "%s", err);
    ck_assert_ptr_null(dg_signer_open("k1", path_in("short"), NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "10 bytes"), "%s", err);
    ck_assert_msg(!strstr(err, "0123456789"), "the key's bytes are in the message: %s", err);
    ck_assert_ptr_null(dg_signer_open("k1", path_in("nope"), NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot read key file") && strstr(err, "nope"), "%s", err);
    unsetenv("DG_TEST_SIGN_KEY");
    ck_assert_ptr_null(dg_signer_open("k1", NULL, "DG_TEST_SIGN_KEY", err, sizeof err));
    ck_assert_msg(strstr(err, "'DG_TEST_SIGN_KEY' is not set"), "%s", err);
    remove_tmpdir();
}
END_TEST

START_TEST(key_rotation_with_a_directory)
{
    char d1[2048], d2[2048], d3[2048], err[512], detail[128];
    make_tmpdir();
    ck_assert_int_eq(mkdir(path_in("keys"), 0700), 0);
    write_file("keys/2024-05", KEY1 "\n");
    write_file("keys/2024-06", KEY2 "\n");
    write_file("keys/.editor-swap", "ignored");

    one_decision("e1", 5000, "2024-05", KEY1, d1, sizeof d1);
    one_decision("e2", 5000, "2024-06", KEY2, d2, sizeof d2);
    one_decision("e3", 5000, "2024-07", KEY2, d3, sizeof d3);

    dg_keyring *kr = dg_keyring_new();
    ck_assert_int_eq(dg_keyring_add_dir(kr, path_in("keys"), err, sizeof err), 2);
    ck_assert_uint_eq(dg_keyring_count(kr), 2);
    ck_assert_int_eq(dg_sign_verify(kr, d1, strlen(d1), NULL, 0), DG_SIG_OK);
    ck_assert_int_eq(dg_sign_verify(kr, d2, strlen(d2), NULL, 0), DG_SIG_OK);
    ck_assert_int_eq(dg_sign_verify(kr, d3, strlen(d3), detail, sizeof detail), DG_SIG_UNKNOWN_KID);
    ck_assert_str_eq(detail, "2024-07");
    /* a key signed under the other's id does not verify */
    char swapped[2048];
    one_decision("e1", 5000, "2024-05", KEY2, swapped, sizeof swapped);
    ck_assert_int_eq(dg_sign_verify(kr, swapped, strlen(swapped), NULL, 0), DG_SIG_BAD);
    /* an id given twice */
    ck_assert_int_eq(dg_keyring_add_file(kr, "2024-05", path_in("keys/2024-05"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "given twice"), "%s", err);
    dg_keyring_free(kr);

    /* a directory with a file that is no usable key fails as a whole */
    write_file("keys/bad name", KEY1);
    kr = dg_keyring_new();
    ck_assert_int_eq(dg_keyring_add_dir(kr, path_in("keys"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "bad name"), "%s", err);
    dg_keyring_free(kr);
    remove_tmpdir();
}
END_TEST

/* ---- the CLI, end to end ---- */

/* Run `drainguard ARGS...` with stdout and stderr in tmpdir/out; returns
 * the exit status. */
static int cli(const char *const *args)
{
    const char *bin = getenv("DG_BIN");
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)(bin && *bin ? bin : "drainguard");
    for (; args[argc - 1] && argc < 31; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(path_in("out"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        if (bin && *bin) {
            execv(bin, argv);
            _exit(127);
        }
        int rc = !strcmp(argv[1], "replay")   ? dg_cmd_replay(argc - 1, argv + 1)
                 : !strcmp(argv[1], "verify") ? dg_cmd_verify(argc - 1, argv + 1)
                                              : 127;
        fflush(stdout);
        _exit(rc);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0, r;
    do {
        if (cap - n < 4096)
            buf = realloc(buf, cap = cap * 2 + 4096);
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
    } while (r > 0);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static const char *out_text(void)
{
    static char *last;
    free(last);
    last = slurp(path_in("out"), NULL);
    return last;
}

/* Flip one bit in the middle of line `line` (1-based) of path. */
static void flip_line(const char *path, int line)
{
    size_t n;
    char *buf = slurp(path, &n), *p = buf;
    for (int l = 1; l < line; l++)
        p = strchr(p, '\n') + 1;
    p[(strchr(p, '\n') - p) / 2] ^= 1;
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    free(buf);
}

START_TEST(cli_replay_then_verify)
{
    ck_assert_msg(access(EVENTS, R_OK) == 0 && access(RULES, R_OK) == 0,
                  "run from the repository root (%s, %s)", EVENTS, RULES);
    make_tmpdir();
    ck_assert_int_eq(mkdir(path_in("keys"), 0700), 0);
    write_file("keys/k1", KEY1 "\n");
    write_file("keys/k2", KEY2 "\n");
    char k1[256], k2[256], d[256], d2[256], dup_in[256], dup_out[256];
    snprintf(k1, sizeof k1, "%s", path_in("keys/k1"));
    snprintf(k2, sizeof k2, "%s", path_in("keys/k2"));
    snprintf(d, sizeof d, "%s", path_in("d.jsonl"));
    snprintf(d2, sizeof d2, "%s", path_in("d2.jsonl"));

    const char *replay[] = {"replay", "--rules", RULES, "--input", EVENTS, "--output", d,
                            "--sign-key-file", k1, "--sign-key-id", "k1", "--quiet", NULL};
    ck_assert_int_eq(cli(replay), 0);
    const char *verify[] = {"verify", "--key-file", k1, "--input", d, NULL};
    ck_assert_int_eq(cli(verify), 0);
    ck_assert_str_eq(out_text(), "281 verified, 0 bad\n");
    const char *verify_id[] = {"verify", "--key-file", k1, "--key-id", "k1", "--input", d, NULL};
    ck_assert_int_eq(cli(verify_id), 0);

    /* a wrong key, a wrong id */
    const char *wrong[] = {"verify", "--key-file", k2, "--input", d, NULL};
    ck_assert_int_eq(cli(wrong), 1);
    ck_assert_msg(strstr(out_text(), "line 1: bad signature (key id 'k1')\n") &&
                      strstr(out_text(), "0 verified, 281 bad\n"),
                  "%s", out_text());
    const char *wrong_id[] = {"verify", "--key-file", k1, "--key-id", "k9", "--input", d, NULL};
    ck_assert_int_eq(cli(wrong_id), 1);
    ck_assert_msg(strstr(out_text(), "line 281: unknown key id 'k1'\n"), "%s", out_text());

    /* rotation: a stream signed with k1, then k2, verifies with --keys */
    const char *replay2[] = {"replay", "--rules", RULES, "--input", EVENTS, "--output", d2,
                             "--sign-key-file", k2, "--sign-key-id", "k2", "--quiet", NULL};
    ck_assert_int_eq(cli(replay2), 0);
    char both[256], cmd[1024];
    snprintf(both, sizeof both, "%s", path_in("both.jsonl"));
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", d, d2, both);
    ck_assert_int_eq(system(cmd), 0);
    const char *keys[] = {"verify", "--keys", path_in("keys"), "--input", both, NULL};
    ck_assert_int_eq(cli(keys), 0);
    ck_assert_str_eq(out_text(), "562 verified, 0 bad\n");

    /* the same events twice against the same state: the second copy gets
     * the stored decisions, byte for byte, signature included */
    snprintf(dup_in, sizeof dup_in, "%s", path_in("twice.jsonl"));
    snprintf(dup_out, sizeof dup_out, "%s", path_in("twice-d.jsonl"));
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", EVENTS, EVENTS, dup_in);
    ck_assert_int_eq(system(cmd), 0);
    const char *replay_twice[] = {"replay", "--rules", RULES, "--input", dup_in, "--output", dup_out,
                                  "--sign-key-file", k1, "--sign-key-id", "k1", "--quiet", NULL};
    ck_assert_int_eq(cli(replay_twice), 0);
    size_t n, one;
    char *twice = slurp(dup_out, &n), *once = slurp(d, &one);
    ck_assert_uint_eq(n, 2 * one);
    ck_assert(!memcmp(twice, once, one) && !memcmp(twice + one, once, one));
    free(twice);
    free(once);

    /* one flipped byte in line 17: exactly that line fails */
    flip_line(d, 17);
    ck_assert_int_eq(cli(verify), 1);
    ck_assert_str_eq(out_text(), "line 17: bad signature (key id 'k1')\n280 verified, 1 bad\n");

    /* usage errors: no key, a key that is too short */
    const char *nokey[] = {"verify", "--input", d, NULL};
    ck_assert_int_eq(cli(nokey), 2);
    write_file("shortkey", "abc\n");
    const char *shortkey[] = {"replay", "--rules", RULES, "--input", EVENTS, "--output", d,
                              "--sign-key-file", path_in("shortkey"), "--sign-key-id", "k1", NULL};
    ck_assert_int_eq(cli(shortkey), 2);
    ck_assert_msg(strstr(out_text(), "3 bytes"), "%s", out_text());
    remove_tmpdir();
}
END_TEST

/* ---- the C function of docs/signing.md ---- */

static const char doc_main[] =
    "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
    "int dg_decision_verify(const char *, size_t, const unsigned char *(*)(const char *, size_t *));\n"
    "static const char *kid_, *key_;\n"
    "static const unsigned char *key_for(const char *kid, size_t *n)\n"
    "{\n    if (strcmp(kid, kid_)) return NULL;\n    *n = strlen(key_);\n"
    "    return (const unsigned char *)key_;\n}\n"
    "int main(int argc, char **argv)\n{\n    char line[65536];\n    int ok = 0, bad = 0;\n"
    "    if (argc != 3) return 2;\n    kid_ = argv[1]; key_ = argv[2];\n"
    "    while (fgets(line, sizeof line, stdin)) {\n        size_t n = strcspn(line, \"\\n\");\n"
    "        if (dg_decision_verify(line, n, key_for)) ok++; else bad++;\n    }\n"
    "    printf(\"%d %d\\n\", ok, bad);\n    return 0;\n}\n";

START_TEST(doc_c_function)
{
    size_t n;
    char *doc = slurp("docs/signing.md", &n);
    char *start = strstr(doc, "\n```c\n"), *end;
    ck_assert_msg(start, "docs/signing.md has no ```c block");
    start += 6;
    end = strstr(start, "\n```");
    ck_assert_ptr_nonnull(end);
    ck_assert_msg(!strstr(end + 1, "\n```c\n"), "docs/signing.md has more than one ```c block");
    make_tmpdir();
    FILE *f = fopen(path_in("verify.c"), "wb");
    fwrite(start, 1, (size_t)(end - start) + 1, f);
    fclose(f);
    write_file("main.c", doc_main);
    free(doc);

    char cmd[2048];
    const char *cc = getenv("CC");
    snprintf(cmd, sizeof cmd,
             "%s -std=c99 -Wall -Wextra -Werror -o '%s' '%s' '%s' -lcrypto > '%s' 2>&1",
             cc && *cc ? cc : "cc", path_in("verify"), path_in("verify.c"), path_in("main.c"),
             path_in("cc.log"));
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "the C function of docs/signing.md does not compile:\n%s",
                  slurp(path_in("cc.log"), NULL));

    /* decisions from the pipeline: signed, one flipped, unsigned, wrong key,
     * fields misplaced, and a hostile event_id */
    char good[2048], other[2048], plain[2048], hostile[2048], flipped[2048], extra[2048];
    char longer[2048], twice[4096];
    one_decision("e1", 5000, "k1", KEY1, good, sizeof good);
    one_decision("e2", 10, "k1", KEY2, other, sizeof other);
    one_decision("e3", 10, NULL, NULL, plain, sizeof plain);
    one_decision("x\\\",\\\"sig_kid\\\":\\\"k1\\\"", 10, "k1", KEY1, hostile, sizeof hostile);
    snprintf(flipped, sizeof flipped, "%s", good);
    flipped[20] ^= 1;
    snprintf(extra, sizeof extra, "%.*s,\"x\":1}", (int)strlen(good) - 1, good);
    snprintf(longer, sizeof longer, "%.*s00\"}", (int)strlen(good) - 2, good);
    { /* signature fields twice, the outer ones made with the key over the
       * signed decision: only the "appear twice" rule refuses it */
        unsigned char mac[32];
        char h[65];
        ck_assert_int_eq(dg_hmac_sha256(KEY1, strlen(KEY1), good, strlen(good), mac), 0);
        hex(mac, 32, h);
        snprintf(twice, sizeof twice, "%.*s,\"sig_kid\":\"k1\",\"sig\":\"%s\"}", (int)strlen(good) - 1,
                 good, h);
    }
    f = fopen(path_in("in.jsonl"), "wb");
    fprintf(f, "%s\n%s\n", good, hostile); /* verify */
    fprintf(f, "%s\n%s\n%s\n%s\n%s\n%s\n", flipped, other, plain, extra, longer, twice); /* do not */
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' k1 '%s' < '%s' > '%s' 2>&1", path_in("verify"), KEY1,
             path_in("in.jsonl"), path_in("out"));
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_str_eq(out_text(), "2 6\n");
    /* and the engine's verifier agrees line for line */
    dg_keyring *kr = ring("k1", KEY1);
    ck_assert_int_eq(dg_sign_verify(kr, good, strlen(good), NULL, 0), DG_SIG_OK);
    ck_assert_int_eq(dg_sign_verify(kr, hostile, strlen(hostile), NULL, 0), DG_SIG_OK);
    ck_assert_int_ne(dg_sign_verify(kr, flipped, strlen(flipped), NULL, 0), DG_SIG_OK);
    ck_assert_int_ne(dg_sign_verify(kr, other, strlen(other), NULL, 0), DG_SIG_OK);
    ck_assert_int_ne(dg_sign_verify(kr, plain, strlen(plain), NULL, 0), DG_SIG_OK);
    ck_assert_int_ne(dg_sign_verify(kr, extra, strlen(extra), NULL, 0), DG_SIG_OK);
    ck_assert_int_ne(dg_sign_verify(kr, longer, strlen(longer), NULL, 0), DG_SIG_OK);
    ck_assert_int_eq(dg_sign_verify(kr, twice, strlen(twice), NULL, 0), DG_SIG_MALFORMED);
    dg_keyring_free(kr);
    remove_tmpdir();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sign");
    TCase *tc = tcase_create("sign");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hmac_rfc4231);
    tcase_add_test(tc, key_ids_and_lengths);
    tcase_add_test(tc, signed_decision_verifies);
    tcase_add_test(tc, flipped_byte_fails);
    tcase_add_test(tc, wrong_key_fails);
    tcase_add_test(tc, misplaced_signature_fails);
    tcase_add_test(tc, hostile_ids_stay_inside_the_signed_part);
    tcase_add_test(tc, reject_holds_are_signed);
    tcase_add_test(tc, redelivery_republishes_the_same_bytes);
    tcase_add_test(tc, signer_open_settings);
    tcase_add_test(tc, key_rotation_with_a_directory);
    tcase_add_test(tc, cli_replay_then_verify);
    tcase_add_test(tc, doc_c_function);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
