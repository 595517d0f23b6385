/*
 * test_util.c - engine/util.c: JSON string escaping (with its 16- or
 * 8-bytes-a-step scan), the arena's inline fast path, hashes.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* reference escaper: byte by byte */
static void ref_escape(const char *s, size_t n, dg_buf *b)
{
    dg_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            dg_buf_puts(b, "\\\"");
        else if (c == '\\')
            dg_buf_puts(b, "\\\\");
        else if (c == '\n')
            dg_buf_puts(b, "\\n");
        else if (c == '\r')
            dg_buf_puts(b, "\\r");
        else if (c == '\t')
            dg_buf_puts(b, "\\t");
        else if (c < 0x20)
            dg_buf_printf(b, "\\u%04x", c);
        else
            dg_buf_putc(b, (char)c);
    }
    dg_buf_putc(b, '"');
}

START_TEST(json_escape_every_position)
{
    const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', '\t', ' ', '!', '#', '[', ']', '\x7f'};
    char s[40];
    for (size_t len = 0; len < sizeof s; len++)
        for (size_t pos = 0; pos < len; pos++)
            for (size_t k = 0; k < sizeof specials; k++) {
                dg_buf got = {0}, want = {0};
                memset(s, 'a', len);
                s[pos] = specials[k];
                dg_buf_json_str(&got, s, len);
                ref_escape(s, len, &want);
                ck_assert_msg(got.len == want.len && !memcmp(got.data, want.data, got.len),
                              "len %zu pos %zu byte 0x%02x: got %s want %s", len, pos,
                              (unsigned char)specials[k], got.data, want.data);
                dg_buf_free(&got);
                dg_buf_free(&want);
            }
}
END_TEST

/* every byte value, alone and in pairs, at each position of a 16-byte
 * block and across block edges (the scan goes 16 bytes a step); the writer
 * encoders use directly writes exactly what dg_buf_json_str appends */
START_TEST(json_escape_every_byte)
{
    char s[48];
    char out[DG_JSON_STR_MAX(sizeof s)];
    for (int c = 0; c < 256; c++)
        for (size_t len = 1; len <= sizeof s; len++)
            for (size_t pos = 0; pos < len; pos++) {
                dg_buf got = {0}, want = {0};
                memset(s, 'x', len);
                s[pos] = (char)c;
                s[len - 1 - pos / 2] = (char)(255 - c);
                dg_buf_json_str(&got, s, len);
                ref_escape(s, len, &want);
                ck_assert_msg(got.len == want.len && !memcmp(got.data, want.data, got.len),
                              "len %zu pos %zu byte 0x%02x", len, pos, c);
                size_t n = (size_t)(dg_json_str_put(out, s, len) - out);
                ck_assert(n == want.len && !memcmp(out, want.data, n));
                dg_buf_free(&got);
                dg_buf_free(&want);
            }
}
END_TEST

START_TEST(json_escape_utf8_passes_through)
{
    dg_buf b = {0};
    const char s[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb0";
    dg_buf_json_str(&b, s, strlen(s));
    ck_assert_str_eq(b.data, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb0\"");
    dg_buf_free(&b);
}
END_TEST

START_TEST(arena_fast_and_slow_paths)
{
    dg_arena a;
    dg_arena_init(&a, 64);
    char *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = dg_arena_alloc(&a, (size_t)(i % 13) + 1);
        ck_assert_int_eq((uintptr_t)p[i] % 8, 0);
        memset(p[i], i, (size_t)(i % 13) + 1);
    }
    for (int i = 0; i < 100; i++) /* nothing overlapped */
        for (int j = 0; j < i % 13 + 1; j++)
            ck_assert_int_eq((unsigned char)p[i][j], i);
    char *big = dg_arena_alloc(&a, 1000); /* larger than a block */
    memset(big, 7, 1000);
    dg_arena_reset(&a);
    char *q = dg_arena_strndup(&a, "hello", 5);
    ck_assert_str_eq(q, "hello");
    /* the blocks were kept: the same work again allocates nothing new, and
     * the big block serves the big allocation again */
    dg_arena_reset(&a);
    char *big2 = dg_arena_alloc(&a, 1000);
    ck_assert_ptr_eq(big2, big);
    for (int i = 0; i < 100; i++) {
        char *x = dg_arena_alloc(&a, (size_t)(i % 13) + 1);
        memset(x, 0, (size_t)(i % 13) + 1);
    }
    for (int j = 0; j < 1000; j++) /* not handed out twice */
        ck_assert_int_eq((unsigned char)big2[j], 7);
    dg_arena_free(&a);
}
END_TEST

START_TEST(hash128_stable)
{
    char hex[33];
    dg_hash128_hex("w3", 2, hex);
    /* decision ids are derived from this: it must never change */
    ck_assert_str_eq(hex, "e80cba9976e373ff17349f8f4037d0ef");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, json_escape_every_position);
    tcase_add_test(tc, json_escape_every_byte);
    tcase_add_test(tc, json_escape_utf8_passes_through);
    tcase_add_test(tc, arena_fast_and_slow_paths);
    tcase_add_test(tc, hash128_stable);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
