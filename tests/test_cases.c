/*
 * test_cases.c - the data-driven cases, in the spirit of jq's tests/jq.test.
 * A case is a directory tests/cases/NAME/ holding
 *   rules.yaml              the rule file
 *   events.jsonl            input events, one per line (may hold invalid lines)
 *   expected.jsonl          one JSON object per expected decision, in order
 *   args                    optional: extra replay options ("--batch 1")
 *   expected_rejects.jsonl  optional: one object per rejected line, in order
 *                           (absent: no line may be rejected)
 *   expected_exact.jsonl    optional: the whole output, byte for byte (to pin
 *                           the decision format: field order, no extra keys)
 *   README                  what the case pins down
 *
 * Each case is replayed with `$DG_BIN replay ... --quiet` when DG_BIN is set
 * (the Makefile sets it), else in process through dg_cmd_replay(): the same
 * code path as the binary, CLI included. Expected objects are compared as
 * subsets of the actual ones: every key an expected object has must be equal
 * (deep JSON equality) in the actual one; "rules" is compared as a list in
 * order, each expected element again as a subset. An expected key whose value
 * is null means the key must be absent (the contracts never send null, so
 * `"freezes": null` says "nothing was frozen"). The case directory is read
 * at run time, one test per case; a missing or empty directory fails.
 *
 * Two more tests replay every case twice (byte-identical output) and with
 * --batch 1 and --batch 512 (byte-identical output).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"

#define MAX_CASES 1000
#define MAX_ARGS 32
#define MIN_CASES 1
#define MAX_MSG 3000 /* Check refuses longer failure messages; stderr gets all */

static char *case_names[MAX_CASES];
static size_t ncases;
static const char *cases_dir = "tests/cases";

/* ------------------------------------------------------------------ */
/* small helpers                                                      */

/* Used outside tests too (finding the cases), where ck_assert must not run. */
static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "test_cases: out of memory\n");
        abort();
    }
    return q;
}

typedef struct {
    char *data;
    size_t len, cap;
} sbuf;

static void sb_append(sbuf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[1024];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_append(b, tmp, (size_t)n);
        return;
    }
    char *big = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_append(b, big, (size_t)n);
    free(big);
}

/* Whole file into a NUL-terminated buffer; NULL when it cannot be read. */
static char *slurp(const char *path, size_t *lenp)
{
    FILE *fp = fopen(path, "rb");
    sbuf b = {0};
    char chunk[65536];
    size_t n;

    if (!fp)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        sb_append(&b, chunk, n);
    fclose(fp);
    if (!b.data)
        sb_append(&b, "", 0);
    if (lenp)
        *lenp = b.len;
    return b.data;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = xrealloc(NULL, n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The case directories, sorted. Sets ncases (0 when the dir is missing). */
static void find_cases(void)
{
    const char *env = getenv("DG_CASES");
    DIR *d;
    struct dirent *de;

    if (env && *env)
        cases_dir = env;
    d = opendir(cases_dir);
    if (!d)
        return;
    while ((de = readdir(d)) && ncases < MAX_CASES) {
        if (de->d_name[0] == '.')
            continue;
        char *dir = path_join(cases_dir, de->d_name);
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            case_names[ncases++] = strdup(de->d_name);
        free(dir);
    }
    closedir(d);
    qsort(case_names, ncases, sizeof(char *), cmp_names);
}

/* ------------------------------------------------------------------ */
/* running replay                                                     */

struct run {
    char *out, *rej;      /* file contents */
    size_t out_len, rej_len;
    int status;           /* exit code of replay */
    char errtext[512];    /* what went wrong running it, "" when nothing */
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->rej);
    memset(r, 0, sizeof(*r));
}

/* Split the args file on whitespace (no quoting: options and values only). */
static int split_args(char *text, char **argv, int max)
{
    int n = 0;
    for (char *tok = strtok(text, " \t\r\n"); tok && n < max; tok = strtok(NULL, " \t\r\n"))
        argv[n++] = tok;
    return n;
}

/* Replay case `name` with its args plus extra (NULL-terminated), into r. */
static void replay(const char *name, const char *const *extra, struct run *r)
{
    char *dir = path_join(cases_dir, name);
    char *rules = path_join(dir, "rules.yaml");
    char *events = path_join(dir, "events.jsonl");
    char *argsf = path_join(dir, "args");
    char *argtext = exists(argsf) ? slurp(argsf, NULL) : NULL;
    char tmpl[] = "/tmp/dg-case-XXXXXX";
    char *tmpdir = mkdtemp(tmpl);
    char *argv[MAX_ARGS * 2 + 16];
    int argc = 0;
    const char *bin = getenv("DG_BIN");

    memset(r, 0, sizeof(*r));
    ck_assert_msg(tmpdir != NULL, "mkdtemp: %s", strerror(errno));
    char *out = path_join(tmpdir, "out.jsonl");
    char *rej = path_join(tmpdir, "rejects.jsonl");

    if (bin && *bin)
        argv[argc++] = (char *)bin;
    argv[argc++] = (char *)"replay";
    argv[argc++] = (char *)"--rules";
    argv[argc++] = rules;
    argv[argc++] = (char *)"--input";
    argv[argc++] = events;
    argv[argc++] = (char *)"--output";
    argv[argc++] = out;
    argv[argc++] = (char *)"--rejects";
    argv[argc++] = rej;
    argv[argc++] = (char *)"--quiet";
    if (argtext)
        argc += split_args(argtext, argv + argc, MAX_ARGS);
    for (size_t i = 0; extra && extra[i] && i < MAX_ARGS; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;

    if (bin && *bin) {
        pid_t pid = fork();
        ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            execv(bin, argv);
            fprintf(stderr, "cannot run DG_BIN '%s': %s\n", bin, strerror(errno));
            _exit(127);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    } else {
        fflush(stdout);
        fflush(stderr);
        r->status = dg_cmd_replay(argc, argv);
    }
    if (r->status != 0)
        snprintf(r->errtext, sizeof r->errtext, "case '%s': replay exited with status %d",
                 name, r->status);
    r->out = slurp(out, &r->out_len);
    r->rej = slurp(rej, &r->rej_len);
    if (!r->out) {
        r->out = strdup("");
        if (!r->errtext[0])
            snprintf(r->errtext, sizeof r->errtext, "case '%s': replay wrote no output file", name);
    }
    if (!r->rej)
        r->rej = strdup("");
    unlink(out);
    unlink(rej);
    rmdir(tmpdir);
    free(out);
    free(rej);
    free(argtext);
    free(argsf);
    free(events);
    free(rules);
    free(dir);
}

/* ------------------------------------------------------------------ */
/* comparing                                                          */

/* The non-blank lines of text, each parsed; NULL entries where a line is
 * not JSON (reported by the caller). */
struct jlines {
    cJSON **v;
    char **raw;
    size_t n;
};

static void jlines_parse(const char *text, struct jlines *jl)
{
    const char *p = text;
    memset(jl, 0, sizeof(*jl));
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        size_t k = 0;
        while (k < len && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
            k++;
        if (k < len) {
            jl->v = xrealloc(jl->v, (jl->n + 1) * sizeof(*jl->v));
            jl->raw = xrealloc(jl->raw, (jl->n + 1) * sizeof(*jl->raw));
            jl->raw[jl->n] = strndup(p, len);
            jl->v[jl->n] = cJSON_ParseWithLength(p, len);
            jl->n++;
        }
        p = nl ? nl + 1 : NULL;
    }
}

static void jlines_free(struct jlines *jl)
{
    for (size_t i = 0; i < jl->n; i++) {
        cJSON_Delete(jl->v[i]);
        free(jl->raw[i]);
    }
    free(jl->v);
    free(jl->raw);
    memset(jl, 0, sizeof(*jl));
}

static void show(sbuf *b, const cJSON *v)
{
    if (!v) {
        sb_printf(b, "(absent)");
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    sb_printf(b, "%s", s ? s : "?");
    cJSON_free(s); /* not free(): cJSON's allocation hooks may be installed */
}

/* Deep equality. Numbers compare by value; objects by key set. */
static int json_equal(const cJSON *a, const cJSON *b)
{
    if (!a || !b)
        return a == b;
    /* cJSON_Compare treats objects case-sensitively with this flag and
     * numbers by value; it also requires the same key set */
    return cJSON_Compare(a, b, 1);
}

/* Is `want` a subset of `got` (object keys); for "rules" (top level only),
 * an ordered list of subsets. Adds one line per difference to diff. */
static int subset(const char *where, const cJSON *want, const cJSON *got, int top, sbuf *diff)
{
    int ok = 1;
    if (!cJSON_IsObject(want) || !cJSON_IsObject(got)) {
        if (json_equal(want, got))
            return 1;
        sb_printf(diff, "    %s: expected ", where);
        show(diff, want);
        sb_printf(diff, ", actual ");
        show(diff, got);
        sb_printf(diff, "\n");
        return 0;
    }
    for (const cJSON *k = want->child; k; k = k->next) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, k->string);
        char sub[256];
        snprintf(sub, sizeof sub, "%s%s%s", where, where[0] ? "." : "", k->string);
        if (cJSON_IsNull(k)) {
            if (g) {
                sb_printf(diff, "    key '%s': expected absent, actual ", sub);
                show(diff, g);
                sb_printf(diff, "\n");
                ok = 0;
            }
            continue;
        }
        if (top && !strcmp(k->string, "rules") && cJSON_IsArray(k) && cJSON_IsArray(g)) {
            int nw = cJSON_GetArraySize(k), ng = cJSON_GetArraySize(g);
            if (nw != ng) {
                sb_printf(diff, "    key 'rules': expected %d rule(s), actual %d: expected ", nw, ng);
                show(diff, k);
                sb_printf(diff, ", actual ");
                show(diff, g);
                sb_printf(diff, "\n");
                ok = 0;
                continue;
            }
            for (int i = 0; i < nw; i++) {
                char el[300];
                snprintf(el, sizeof el, "rules[%d]", i);
                if (!subset(el, cJSON_GetArrayItem(k, i), cJSON_GetArrayItem(g, i), 0, diff))
                    ok = 0;
            }
            continue;
        }
        if (!json_equal(k, g)) {
            sb_printf(diff, "    key '%s': expected ", sub);
            show(diff, k);
            sb_printf(diff, ", actual ");
            show(diff, g);
            sb_printf(diff, "\n");
            ok = 0;
        }
    }
    return ok;
}

/* Compare an actual output text with an expected file; append a report to
 * diff and return the number of problems. what: "decision" or "reject". */
static int compare_lines(const char *name, const char *what, const char *expected_text,
                         const char *actual_text, sbuf *diff)
{
    struct jlines want, got;
    int bad = 0;

    jlines_parse(expected_text, &want);
    jlines_parse(actual_text, &got);
    for (size_t i = 0; i < want.n; i++)
        if (!want.v[i] || !cJSON_IsObject(want.v[i])) {
            sb_printf(diff, "case '%s': expected %s line %zu is not a JSON object: %s\n", name,
                      what, i + 1, want.raw[i]);
            bad++;
        }
    for (size_t i = 0; i < got.n; i++)
        if (!got.v[i] || !cJSON_IsObject(got.v[i])) {
            sb_printf(diff, "case '%s': actual %s %zu is not a JSON object: %s\n", name, what,
                      i + 1, got.raw[i]);
            bad++;
        }
    if (bad)
        goto out;
    if (want.n != got.n) {
        sb_printf(diff, "case '%s': expected %zu %s(s), actual %zu\n", name, want.n, what, got.n);
        bad++;
    }
    for (size_t i = 0; i < want.n && i < got.n; i++) {
        sbuf d = {0};
        if (!subset("", want.v[i], got.v[i], 1, &d)) {
            sb_printf(diff, "case '%s': %s #%zu (0-based %zu) differs:\n%s", name, what, i + 1, i,
                      d.data);
            sb_printf(diff, "  - expected: %s\n  + actual:   %s\n", want.raw[i], got.raw[i]);
            bad++;
        }
        free(d.data);
    }
    for (size_t i = got.n; i < want.n; i++)
        sb_printf(diff, "  - missing %s #%zu: %s\n", what, i + 1, want.raw[i]);
    for (size_t i = want.n; i < got.n; i++)
        sb_printf(diff, "  + extra %s #%zu: %s\n", what, i + 1, got.raw[i]);
out:
    jlines_free(&want);
    jlines_free(&got);
    return bad;
}

/* ------------------------------------------------------------------ */
/* tests                                                              */

/* Index of the first byte where a and b differ, for messages. */
static size_t first_diff(const char *a, size_t al, const char *b, size_t bl)
{
    size_t i = 0;
    while (i < al && i < bl && a[i] == b[i])
        i++;
    return i;
}

START_TEST(dg_bin_runs)
{
    const char *bin = getenv("DG_BIN");
    if (bin && *bin)
        ck_assert_msg(access(bin, X_OK) == 0, "DG_BIN '%s' is not an executable file: %s", bin,
                      strerror(errno));
}
END_TEST

START_TEST(cases_present)
{
    ck_assert_msg(ncases >= MIN_CASES,
                  "no case directories found under '%s' (run from the repository root, or set "
                  "DG_CASES)",
                  cases_dir);
}
END_TEST

START_TEST(run_case)
{
    const char *name = case_names[_i];
    char *dir = path_join(cases_dir, name);
    char *ef = path_join(dir, "expected.jsonl");
    char *rf = path_join(dir, "expected_rejects.jsonl");
    char *xf = path_join(dir, "expected_exact.jsonl");
    char *rules = path_join(dir, "rules.yaml");
    char *events = path_join(dir, "events.jsonl");
    char *expected, *expected_rej, *exact;
    size_t exact_len = 0;
    struct run r;
    sbuf diff = {0};
    int bad = 0;

    ck_assert_msg(exists(rules), "case '%s': no rules.yaml", name);
    ck_assert_msg(exists(events), "case '%s': no events.jsonl", name);
    expected = slurp(ef, NULL);
    ck_assert_msg(expected != NULL, "case '%s': no expected.jsonl", name);
    expected_rej = exists(rf) ? slurp(rf, NULL) : strdup("");
    exact = exists(xf) ? slurp(xf, &exact_len) : NULL;

    replay(name, NULL, &r);
    if (r.errtext[0]) {
        sb_printf(&diff, "%s\n", r.errtext);
        bad++;
    }
    bad += compare_lines(name, "decision", expected, r.out, &diff);
    bad += compare_lines(name, "reject", expected_rej, r.rej, &diff);
    if (exact && (exact_len != r.out_len || memcmp(exact, r.out, exact_len))) {
        size_t at = first_diff(exact, exact_len, r.out, r.out_len);
        sb_printf(&diff,
                  "case '%s': output differs from expected_exact.jsonl at byte %zu:\n"
                  "  - expected: %.200s\n  + actual:   %.200s\n",
                  name, at, exact + (at > 80 ? at - 80 : 0), r.out + (at > 80 ? at - 80 : 0));
        bad++;
    }
    if (bad)
        fprintf(stderr, "%s", diff.data);
    ck_assert_msg(bad == 0, "case '%s' failed (%d problem(s)):\n%.*s", name, bad, MAX_MSG,
                  diff.data ? diff.data : "");
    free(diff.data);
    run_free(&r);
    free(expected);
    free(expected_rej);
    free(exact);
    free(xf);
    free(events);
    free(rules);
    free(rf);
    free(ef);
    free(dir);
}
END_TEST

/* Append to report when the two runs differ; returns 1 when they do. */
static int differ(const char *name, const char *what, const struct run *a, const struct run *b,
                  sbuf *report)
{
    if (a->errtext[0] || b->errtext[0]) {
        sb_printf(report, "case '%s': %s: %s%s%s\n", name, what, a->errtext,
                  a->errtext[0] && b->errtext[0] ? " / " : "", b->errtext);
        return 1;
    }
    if (a->out_len == b->out_len && !memcmp(a->out, b->out, a->out_len) &&
        a->rej_len == b->rej_len && !memcmp(a->rej, b->rej, a->rej_len))
        return 0;
    size_t at = first_diff(a->out, a->out_len, b->out, b->out_len);
    sb_printf(report,
              "case '%s': %s: outputs differ at byte %zu (%zu vs %zu bytes; rejects %zu vs %zu "
              "bytes):\n  first:  %.200s\n  second: %.200s\n",
              name, what, at, a->out_len, b->out_len, a->rej_len, b->rej_len,
              a->out + (at > 80 ? at - 80 : 0), b->out + (at > 80 ? at - 80 : 0));
    return 1;
}

START_TEST(replay_twice_identical)
{
    sbuf report = {0};
    int bad = 0;

    ck_assert_msg(ncases >= MIN_CASES, "no cases under '%s'", cases_dir);
    for (size_t i = 0; i < ncases; i++) {
        struct run a, b;
        replay(case_names[i], NULL, &a);
        replay(case_names[i], NULL, &b);
        bad += differ(case_names[i], "two replays", &a, &b, &report);
        run_free(&a);
        run_free(&b);
    }
    if (bad)
        fprintf(stderr, "%s", report.data);
    ck_assert_msg(bad == 0, "%d case(s) not reproducible:\n%.*s", bad, MAX_MSG,
                  report.data ? report.data : "");
    free(report.data);
}
END_TEST

START_TEST(batch_size_irrelevant)
{
    static const char *const b1[] = {"--batch", "1", NULL};
    static const char *const b512[] = {"--batch", "512", NULL};
    static const char *const b3[] = {"--batch", "3", NULL};

    sbuf report = {0};
    int bad = 0;

    ck_assert_msg(ncases >= MIN_CASES, "no cases under '%s'", cases_dir);
    for (size_t i = 0; i < ncases; i++) {
        struct run a, b, c;
        replay(case_names[i], b1, &a);
        replay(case_names[i], b512, &b);
        replay(case_names[i], b3, &c);
        if (differ(case_names[i], "--batch 1 vs --batch 512", &a, &b, &report))
            bad++;
        else if (differ(case_names[i], "--batch 3 vs --batch 512", &c, &b, &report))
            bad++;
        run_free(&a);
        run_free(&b);
        run_free(&c);
    }
    if (bad)
        fprintf(stderr, "%s", report.data);
    ck_assert_msg(bad == 0, "%d case(s) depend on the batch size:\n%.*s", bad, MAX_MSG,
                  report.data ? report.data : "");
    free(report.data);
}
END_TEST

static Suite *cases_suite(void)
{
    Suite *s = suite_create("cases");
    TCase *tc = tcase_create("cases-dir");
    tcase_add_test(tc, dg_bin_runs);
    tcase_add_test(tc, cases_present);
    suite_add_tcase(s, tc);
    for (size_t i = 0; i < ncases; i++) {
        TCase *c = tcase_create(case_names[i]);
        tcase_set_timeout(c, 60);
        tcase_add_loop_test(c, run_case, (int)i, (int)i + 1);
        suite_add_tcase(s, c);
    }
    tc = tcase_create("determinism");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, replay_twice_identical);
    tcase_add_test(tc, batch_size_irrelevant);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    find_cases();
    Suite *s = cases_suite();
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (size_t i = 0; i < ncases; i++)
        free(case_names[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
