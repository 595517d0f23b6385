/*
 * cmd_test.c - `drainguard test`: run the cases of rule test files
 * (*.test.yaml) against the rule packs they name. A case is a short story
 * of events, with expectations written next to the events they concern; a
 * pack passes when every expectation holds and every rule has at least one
 * should-match and one should-not-match expectation.
 */
#include "cmd.h"
#include "pipeline.h"
#include "rules.h"
#include "rules_tree.h"
#include "state.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char dg_usage_test[] =
    "usage: drainguard test [--verbose] [--no-coverage] FILE.test.yaml|DIR...\n"
    "\n"
    "Run rule test files (a directory means every *.test.yaml in it). A test file:\n"
    "\n"
    "  rules: [default.yaml]        # the pack, relative to this file\n"
    "  start: 2024-03-01T00:00:00Z  # time of `at: 0s` (optional)\n"
    "  defaults: {type: withdrawal.requested, asset: BTC, chain: bitcoin,\n"
    "             amount: \"0.5\", amount_usd: 30000}\n"
    "  cases:\n"
    "    - name: three accounts drain to one new address\n"
    "      events:\n"
    "        - {account_id: a1, dest_address: X, at: 0s}\n"
    "        - {account_id: a2, dest_address: X, at: 2m, expect: {action: allow}}\n"
    "        - {account_id: a3, dest_address: X, at: 4m,\n"
    "           expect: {action: freeze, match: [coordinated-destination]}}\n"
    "\n"
    "Each event is `defaults` overlaid with its own fields; `at` is an offset from\n"
    "`start` (else `ts` is used as given, else events are one second apart);\n"
    "event_id and withdrawal_id are generated when absent. `expect` may hold:\n"
    "  action: allow|review|hold|freeze   the decision's action\n"
    "  match: [rule ids]                  rules that must have matched\n"
    "  no_match: [rule ids]               rules that must not have matched\n"
    "  freezes: [scopes]                  scopes that must be in `freezes`\n"
    "  reason: TEXT                       text some matched rule's reason contains\n"
    "  decision: false                    the event must get no decision\n"
    "\n"
    "Every rule of the pack needs at least one `match` and one `no_match`\n"
    "expectation somewhere in the file (--no-coverage skips that check while you\n"
    "work on a few cases). --verbose prints each event and its decision. Prints\n"
    "one line per failure and a last\n"
    "line `N passed, M failed`; exit status 1 when anything failed.\n";

struct tctx {
    int verbose;
    int no_coverage;
    unsigned passed, failed;
    const char *file;
};

static void fail_at(struct tctx *t, const struct dg_ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(struct tctx *t, const struct dg_ynode *n, const char *fmt, ...)
{
    va_list ap;
    printf("FAIL %s:%d:%d: ", t->file, n ? n->line : 1, n ? n->col : 1);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    t->failed++;
}

static const struct dg_ynode *get(const struct dg_ynode *m, const char *key)
{
    if (!m || m->kind != DG_Y_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (m->kids[i]->kind == DG_Y_SCALAR && !strcmp(m->kids[i]->text, key))
            return m->kids[i + 1];
    return NULL;
}

static int looks_number(const char *s)
{
    char *end;
    if (!*s)
        return 0;
    strtod(s, &end);
    return *end == '\0' && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'));
}

/* YAML node to JSON, typed the way a YAML reader would: plain true/false,
 * null and numbers keep their type, everything quoted is a string. */
static void to_json(const struct dg_ynode *n, dg_buf *b)
{
    switch (n->kind) {
    case DG_Y_SCALAR:
        if (n->plain && (!strcmp(n->text, "true") || !strcmp(n->text, "false") ||
                         !strcmp(n->text, "null") || looks_number(n->text)))
            dg_buf_puts(b, !strcmp(n->text, "~") ? "null" : n->text);
        else
            dg_buf_json_str(b, n->text, n->len);
        break;
    case DG_Y_SEQ:
        dg_buf_putc(b, '[');
        for (size_t i = 0; i < n->n; i++) {
            if (i)
                dg_buf_putc(b, ',');
            to_json(n->kids[i], b);
        }
        dg_buf_putc(b, ']');
        break;
    case DG_Y_MAP:
        dg_buf_putc(b, '{');
        for (size_t i = 0; i + 1 < n->n; i += 2) {
            if (i)
                dg_buf_putc(b, ',');
            dg_buf_json_str(b, n->kids[i]->text ? n->kids[i]->text : "", n->kids[i]->len);
            dg_buf_putc(b, ':');
            to_json(n->kids[i + 1], b);
        }
        dg_buf_putc(b, '}');
        break;
    }
}

static int has_key(const struct dg_ynode *m, const char *key)
{
    return get(m, key) != NULL;
}

/* Build one event's JSON: defaults overlaid with the event's own fields. */
static void event_json(const struct dg_ynode *defaults, const struct dg_ynode *ev, int64_t start,
                       const char *case_id, size_t idx, dg_buf *b)
{
    static const char *const skip[] = {"expect", "at"};
    int first = 1;
    char tmp[64];

    dg_buf_putc(b, '{');
    for (int pass = 0; pass < 2; pass++) {
        const struct dg_ynode *m = pass ? ev : defaults;
        if (!m || m->kind != DG_Y_MAP)
            continue;
        for (size_t i = 0; i + 1 < m->n; i += 2) {
            const char *k = m->kids[i]->text;
            if (!k || !strcmp(k, skip[0]) || !strcmp(k, skip[1]))
                continue;
            if (!pass && has_key(ev, k))
                continue; /* the event's own value wins */
            if (!first)
                dg_buf_putc(b, ',');
            first = 0;
            dg_buf_json_str(b, k, strlen(k));
            dg_buf_putc(b, ':');
            to_json(m->kids[i + 1], b);
        }
    }
    const struct dg_ynode *type = get(ev, "type") ? get(ev, "type") : get(defaults, "type");
    if (!has_key(ev, "event_id") && !has_key(defaults, "event_id")) {
        snprintf(tmp, sizeof tmp, "%s-%zu", case_id, idx + 1);
        dg_buf_printf(b, "%s\"event_id\":", first ? "" : ",");
        dg_buf_json_str(b, tmp, strlen(tmp));
        first = 0;
    }
    if (type && type->text && !strcmp(type->text, "withdrawal.requested") &&
        !has_key(ev, "withdrawal_id") && !has_key(defaults, "withdrawal_id")) {
        snprintf(tmp, sizeof tmp, "w-%s-%zu", case_id, idx + 1);
        dg_buf_printf(b, ",\"withdrawal_id\":");
        dg_buf_json_str(b, tmp, strlen(tmp));
    }
    if (!has_key(ev, "ts") && !has_key(defaults, "ts")) {
        const struct dg_ynode *at = get(ev, "at");
        int64_t off = (int64_t)idx * 1000;
        if (at && at->text && dg_duration_parse(at->text, at->len, &off) != 0)
            off = 0; /* "0s" and "0" (a zero duration is not a window length) */
        dg_time_format(start + off, tmp);
        dg_buf_printf(b, ",\"ts\":\"%s\"", tmp);
    }
    dg_buf_putc(b, '}');
}

struct collected {
    char **text;     /* decision per input, NULL when none */
    int *action;
    char **reject;   /* reject message per input */
    size_t n;
};

static int collect(void *ud, const struct dg_output *o)
{
    struct collected *c = ud;
    size_t i = (size_t)(uintptr_t)o->tag;
    if (o->decision) {
        c->text[i] = dg_xstrndup(o->decision, o->decision_len);
        c->action[i] = o->action;
    }
    if (o->reject)
        c->reject[i] = dg_xstrdup(o->reject->msg);
    return 0;
}

static int matched(const char *decision, const char *id)
{
    char needle[160];
    snprintf(needle, sizeof needle, "{\"id\":\"%s\",", id);
    return decision && strstr(decision, needle) != NULL;
}

/* Check one event's expectations; count coverage per rule. */
static void check_expect(struct tctx *t, const struct dg_ruleset *rs, const struct dg_ynode *exp,
                         const char *decision, int action, const char *reject, const char *cname,
                         int *cov_match, int *cov_nomatch)
{
    const struct dg_ynode *n;
    int ok = 1;

    if (exp->kind != DG_Y_MAP) {
        fail_at(t, exp, "case '%s': expect must be a mapping", cname);
        return;
    }
    if (reject) {
        fail_at(t, exp, "case '%s': the event was rejected: %s", cname, reject);
        return;
    }
    if ((n = get(exp, "decision")) && n->text && !strcmp(n->text, "false")) {
        if (decision) {
            fail_at(t, n, "case '%s': expected no decision, got %s", cname, decision);
            ok = 0;
        }
    } else if (!decision) {
        fail_at(t, exp, "case '%s': expected a decision, the event got none", cname);
        return;
    }
    if ((n = get(exp, "action"))) {
        int want = n->text ? dg_action_lookup(n->text, n->len) : -1;
        if (want < 0) {
            fail_at(t, n, "case '%s': unknown action '%s'", cname, n->text ? n->text : "?");
            ok = 0;
        } else if (want != action) {
            fail_at(t, n, "case '%s': expected action %s, got %s: %s", cname, dg_action_name(want),
                    dg_action_name(action), decision);
            ok = 0;
        }
    }
    for (int neg = 0; neg < 2; neg++) {
        n = get(exp, neg ? "no_match" : "match");
        if (!n)
            continue;
        size_t cnt = n->kind == DG_Y_SEQ ? n->n : 1;
        for (size_t i = 0; i < cnt; i++) {
            const struct dg_ynode *id = n->kind == DG_Y_SEQ ? n->kids[i] : n;
            size_t r;
            if (!id->text) {
                fail_at(t, id, "case '%s': rule ids must be names", cname);
                ok = 0;
                continue;
            }
            for (r = 0; r < rs->nrules && strcmp(rs->rules[r].id, id->text); r++)
                ;
            if (r == rs->nrules) {
                fail_at(t, id, "case '%s': no rule '%s' in the pack", cname, id->text);
                ok = 0;
                continue;
            }
            if (matched(decision, id->text) == neg) {
                fail_at(t, id, "case '%s': rule '%s' %s: %s", cname, id->text,
                        neg ? "matched but should not have" : "did not match",
                        decision ? decision : "(no decision)");
                ok = 0;
            }
            (neg ? cov_nomatch : cov_match)[r]++;
        }
    }
    if ((n = get(exp, "freezes"))) {
        size_t cnt = n->kind == DG_Y_SEQ ? n->n : 1;
        for (size_t i = 0; i < cnt; i++) {
            const struct dg_ynode *s = n->kind == DG_Y_SEQ ? n->kids[i] : n;
            char needle[80];
            snprintf(needle, sizeof needle, "{\"scope\":\"%s\"", s->text ? s->text : "?");
            if (!decision || !strstr(decision, needle)) {
                fail_at(t, s, "case '%s': expected a freeze of scope '%s': %s", cname,
                        s->text ? s->text : "?", decision ? decision : "(no decision)");
                ok = 0;
            }
        }
    }
    if ((n = get(exp, "reason")) && n->text) {
        if (!decision || !strstr(decision, n->text)) {
            fail_at(t, n, "case '%s': no reason contains \"%s\": %s", cname, n->text,
                    decision ? decision : "(no decision)");
            ok = 0;
        }
    }
    if (ok)
        t->passed++;
}

static void run_case(struct tctx *t, const struct dg_ruleset *rs, const struct dg_ynode *defaults,
                     int64_t start, const struct dg_ynode *c, size_t ci, int *cov_match,
                     int *cov_nomatch)
{
    const struct dg_ynode *name = get(c, "name"), *events = get(c, "events");
    char cname[96], cid[32];
    struct collected col = {0};
    dg_buf b = {0};
    char err[256];
    size_t nexp = 0;

    snprintf(cname, sizeof cname, "%s", name && name->text ? name->text : "(unnamed)");
    snprintf(cid, sizeof cid, "c%zu", ci + 1);
    if (!events || events->kind != DG_Y_SEQ || !events->n) {
        fail_at(t, c, "case '%s': needs a list of events", cname);
        return;
    }
    struct dg_state *st = dg_state_mem_new(24LL * 3600 * 1000, 3600LL * 1000);
    dg_pipeline *p = dg_pipeline_new(rs, st, 64, 0);
    col.n = events->n;
    col.text = dg_xcalloc(col.n, sizeof(char *));
    col.action = dg_xcalloc(col.n, sizeof(int));
    col.reject = dg_xcalloc(col.n, sizeof(char *));
    for (size_t i = 0; i < events->n; i++) {
        const struct dg_ynode *at = get(events->kids[i], "at");
        int64_t off;
        if (at && (!at->text || (dg_duration_parse(at->text, at->len, &off) != 0 &&
                                 strspn(at->text, "0smhd") != at->len))) {
            fail_at(t, at, "case '%s': at: bad duration '%s'", cname, at->text ? at->text : "?");
            continue;
        }
        b.len = 0;
        event_json(defaults, events->kids[i], start, cid, i, &b);
        if (t->verbose)
            printf("  %s\n", b.data);
        if (dg_pipeline_push(p, b.data, b.len, (void *)(uintptr_t)i) >= 64)
            dg_pipeline_flush(p, collect, &col, err, sizeof err);
    }
    dg_pipeline_flush(p, collect, &col, err, sizeof err);
    for (size_t i = 0; i < events->n; i++) {
        const struct dg_ynode *exp = get(events->kids[i], "expect");
        if (t->verbose && col.text[i])
            printf("  -> %s\n", col.text[i]);
        if (!exp)
            continue;
        nexp++;
        check_expect(t, rs, exp, col.text[i], col.action[i], col.reject[i], cname, cov_match,
                     cov_nomatch);
    }
    if (!nexp)
        fail_at(t, c, "case '%s': no event has an `expect`", cname);
    for (size_t i = 0; i < col.n; i++) {
        free(col.text[i]);
        free(col.reject[i]);
    }
    free(col.text);
    free(col.action);
    free(col.reject);
    dg_buf_free(&b);
    dg_pipeline_free(p);
    st->ops->destroy(st);
}

static void run_file(struct tctx *t, const char *path)
{
    dg_buf text = {0};
    char buf[65536];
    size_t got;
    struct dg_diag diag = {0};
    struct dg_ynode *root = NULL;
    FILE *fp = fopen(path, "rb");
    const char *rule_paths[16];
    char *owned[16];
    size_t nr = 0;
    int64_t start = 1709251200000LL; /* 2024-03-01T00:00:00Z */

    t->file = path;
    if (!fp) {
        printf("FAIL %s: cannot read: %s\n", path, strerror(errno));
        t->failed++;
        return;
    }
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0)
        dg_buf_append(&text, buf, got);
    fclose(fp);
    if (dg_yaml_parse(path, text.data ? text.data : "", text.len, &root, &diag) != 0 ||
        root->kind != DG_Y_MAP) {
        for (size_t i = 0; i < diag.n; i++)
            printf("FAIL %s\n", diag.lines[i]);
        if (!diag.n)
            printf("FAIL %s: a test file is a mapping with rules, defaults and cases\n", path);
        t->failed++;
        goto out;
    }
    const struct dg_ynode *rules = get(root, "rules"), *cases = get(root, "cases");
    const struct dg_ynode *st = get(root, "start");
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    if (st && (!st->text || dg_time_parse_rfc3339(st->text, st->len, &start) != 0)) {
        fail_at(t, st, "start: not an RFC 3339 time");
        goto out;
    }
    if (!rules || !cases || cases->kind != DG_Y_SEQ) {
        fail_at(t, root, "a test file needs `rules:` (the pack) and a list of `cases:`");
        goto out;
    }
    for (size_t i = 0; i < (rules->kind == DG_Y_SEQ ? rules->n : 1) && nr < 16; i++) {
        const struct dg_ynode *r = rules->kind == DG_Y_SEQ ? rules->kids[i] : rules;
        size_t l = (size_t)dirlen + strlen(r->text ? r->text : "") + 2;
        owned[nr] = dg_xmalloc(l);
        if (r->text && r->text[0] == '/')
            snprintf(owned[nr], l, "%s", r->text);
        else
            snprintf(owned[nr], l, "%.*s/%s", dirlen, dir, r->text ? r->text : "");
        rule_paths[nr] = owned[nr];
        nr++;
    }
    struct dg_ruleset *rs = dg_ruleset_load(rule_paths, nr, &diag);
    if (!rs) {
        for (size_t i = 0; i < diag.n; i++)
            printf("FAIL %s\n", diag.lines[i]);
        t->failed++;
        goto out_paths;
    }
    int *cov_match = dg_xcalloc(rs->nrules + 1, sizeof(int));
    int *cov_nomatch = dg_xcalloc(rs->nrules + 1, sizeof(int));
    unsigned before = t->failed;
    for (size_t i = 0; i < cases->n; i++)
        run_case(t, rs, get(root, "defaults"), start, cases->kids[i], i, cov_match, cov_nomatch);
    size_t covered = 0;
    for (size_t r = 0; r < rs->nrules; r++) {
        covered += cov_match[r] && cov_nomatch[r];
        if (t->no_coverage)
            continue;
        if (!cov_match[r]) {
            printf("FAIL %s: rule '%s' (%s:%d) has no should-match case\n", path, rs->rules[r].id,
                   rs->rules[r].pos.file, rs->rules[r].pos.line);
            t->failed++;
        }
        if (!cov_nomatch[r]) {
            printf("FAIL %s: rule '%s' (%s:%d) has no should-not-match case\n", path,
                   rs->rules[r].id, rs->rules[r].pos.file, rs->rules[r].pos.line);
            t->failed++;
        }
    }
    printf("%s %s: %zu cases, %zu of %zu rules with should-match and should-not-match cases\n",
           t->failed == before ? "ok  " : "FAIL", path, cases->n, covered, rs->nrules);
    free(cov_match);
    free(cov_nomatch);
    dg_ruleset_free(rs);
out_paths:
    for (size_t i = 0; i < nr; i++)
        free(owned[i]);
out:
    dg_ynode_free(root);
    dg_diag_free(&diag);
    dg_buf_free(&text);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dg_cmd_test(int argc, char **argv)
{
    struct tctx t = {0};
    int given = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (!strcmp(argv[i], "--verbose")) {
            t.verbose = 1;
            continue;
        }
        if (!strcmp(argv[i], "--no-coverage")) {
            t.no_coverage = 1;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            dg_cmd_error("test", "unknown option '%s'", argv[i]);
            return 2;
        }
        given++;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *de;
            char *names[256];
            size_t n = 0;
            while (d && (de = readdir(d)) && n < 256) {
                size_t l = strlen(de->d_name);
                if (l > 10 && !strcmp(de->d_name + l - 10, ".test.yaml")) {
                    size_t dl = strlen(argv[i]);
                    while (dl > 1 && argv[i][dl - 1] == '/')
                        dl--;
                    names[n] = dg_xmalloc(dl + l + 2);
                    snprintf(names[n++], dl + l + 2, "%.*s/%s", (int)dl, argv[i], de->d_name);
                }
            }
            if (d)
                closedir(d);
            qsort(names, n, sizeof(char *), cmp_str);
            if (!n) {
                printf("FAIL %s: no *.test.yaml files\n", argv[i]);
                t.failed++;
            }
            for (size_t k = 0; k < n; k++) {
                run_file(&t, names[k]);
                free(names[k]);
            }
        } else {
            run_file(&t, argv[i]);
        }
    }
    if (!given) {
        dg_cmd_error("test", "no test files given (see --help)");
        return 2;
    }
    printf("rules: %u passed, %u failed\n", t.passed, t.failed);
    return t.failed ? 1 : 0;
}
