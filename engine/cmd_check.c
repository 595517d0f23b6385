/*
 * cmd_check.c - `drainguard check`: load rule files exactly as the engine
 * would and print every error and warning as FILE:LINE:COL: message.
 */
#include "cmd.h"
#include "rules.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char dg_usage_check[] =
    "usage: drainguard check [--together] [--quiet] FILE|DIR...\n"
    "\n"
    "Validate rule files. Each file is a rule pack of its own (a directory means\n"
    "each *.yaml in it except *.test.yaml); with --together all files form one\n"
    "rule set, as `replay --rules A --rules B` would load them (names must then\n"
    "be unique across files).\n"
    "\n"
    "Prints one line per problem as FILE:LINE:COL: message: YAML syntax, unknown\n"
    "keys, fields, windows, lists or aggregates, type mismatches, bad durations,\n"
    "duplicate ids; and warnings for windows and lists no rule uses.\n"
    "\n"
    "Exit status: 0 when every pack is valid (warnings allowed), 1 when not, 2 on\n"
    "bad usage.\n";

static int check_set(const char *const *paths, size_t n, int quiet)
{
    struct dg_diag diag = {0};
    struct dg_ruleset *rs = dg_ruleset_load(paths, n, &diag);

    for (size_t i = 0; i < diag.n; i++)
        printf("%s\n", diag.lines[i]);
    if (rs && !quiet)
        printf("%s%s: ok: %zu rules, %zu windows, %zu lists, %d warning%s, version %s\n", paths[0],
               n > 1 ? " (and the rest of the set)" : "", rs->nrules, rs->nwindows, rs->nlists,
               diag.warnings, diag.warnings == 1 ? "" : "s", rs->version);
    else if (!rs)
        printf("%s: %d error%s\n", paths[0], diag.errors, diag.errors == 1 ? "" : "s");
    int ok = rs != NULL;
    dg_ruleset_free(rs);
    dg_diag_free(&diag);
    return ok;
}

static int is_pack(const char *name)
{
    size_t l = strlen(name);
    if (name[0] == '.')
        return 0;
    if (l > 10 && (!strcmp(name + l - 10, ".test.yaml") || !strcmp(name + l - 9, ".test.yml")))
        return 0;
    return (l > 5 && !strcmp(name + l - 5, ".yaml")) || (l > 4 && !strcmp(name + l - 4, ".yml"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dg_cmd_check(int argc, char **argv)
{
    char *files[1024];
    size_t n = 0;
    int quiet = 0, together = 0, bad = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--together")) {
            together = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            dg_cmd_error("check", "unknown option '%s'", argv[i]);
            return 2;
        } else if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *de;
            size_t first = n;
            while (d && (de = readdir(d)) && n < DG_ARRAY_LEN(files)) {
                if (!is_pack(de->d_name))
                    continue;
                size_t dl = strlen(argv[i]);
                while (dl > 1 && argv[i][dl - 1] == '/')
                    dl--;
                size_t l = dl + strlen(de->d_name) + 2;
                files[n] = dg_xmalloc(l);
                snprintf(files[n++], l, "%.*s/%s", (int)dl, argv[i], de->d_name);
            }
            if (d)
                closedir(d);
            qsort(files + first, n - first, sizeof(char *), cmp_str);
            if (n == first) {
                printf("%s: no rule files (*.yaml) here\n", argv[i]);
                bad = 1;
            }
        } else if (n < DG_ARRAY_LEN(files)) {
            files[n++] = dg_xstrdup(argv[i]);
        }
    }
    if (!n && !bad) {
        dg_cmd_error("check", "no rule files given (see --help)");
        return 2;
    }
    if (together) {
        bad |= n && !check_set((const char *const *)files, n, quiet);
    } else {
        for (size_t i = 0; i < n; i++)
            bad |= !check_set((const char *const *)&files[i], 1, quiet);
    }
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    return bad ? 1 : 0;
}
