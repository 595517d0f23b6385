/*
 * cmd_check.c - `drainguard check`: load rule files exactly as the engine
 * would and print every error and warning as FILE:LINE:COL: message.
 */
#include "cmd.h"
#include "rules.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

const char dg_usage_check[] =
    "usage: drainguard check [--quiet] FILE|DIR...\n"
    "\n"
    "Validate rule files as one rule set (names must be unique across them; a\n"
    "directory means every *.yaml in it except *.test.yaml). Prints one line per\n"
    "problem as FILE:LINE:COL: message: YAML syntax, unknown keys, fields,\n"
    "windows, lists or aggregates, type mismatches, bad durations, duplicate ids;\n"
    "and warnings for windows and lists no rule uses.\n"
    "\n"
    "Exit status: 0 when the set is valid (warnings allowed), 1 when not, 2 on\n"
    "bad usage.\n";

int dg_cmd_check(int argc, char **argv)
{
    const char *paths[256];
    size_t n = 0;
    int quiet = 0;
    struct dg_diag diag = {0};

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            dg_cmd_error("check", "unknown option '%s'", argv[i]);
            return 2;
        } else if (n < DG_ARRAY_LEN(paths))
            paths[n++] = argv[i];
    }
    if (!n) {
        dg_cmd_error("check", "no rule files given (see --help)");
        return 2;
    }
    struct dg_ruleset *rs = dg_ruleset_load(paths, n, &diag);
    for (size_t i = 0; i < diag.n; i++)
        printf("%s\n", diag.lines[i]);
    if (rs && !quiet)
        printf("ok: %zu rules, %zu windows, %zu lists, %d warning%s, version %s\n", rs->nrules,
               rs->nwindows, rs->nlists, diag.warnings, diag.warnings == 1 ? "" : "s", rs->version);
    else if (!rs)
        printf("%d error%s\n", diag.errors, diag.errors == 1 ? "" : "s");
    int rc = rs ? 0 : 1;
    dg_ruleset_free(rs);
    dg_diag_free(&diag);
    return rc;
}
