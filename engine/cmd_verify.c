/*
 * cmd_verify.c - `drainguard verify`: checks the signatures of a stream of
 * decisions (JSON Lines, as `replay` writes them or `consume` prints the
 * decisions topic) with sign.c's verifier, the way a payout service checks
 * one decision (docs/signing.md). Reports every line that does not verify.
 */
#include "cmd.h"
#include "sign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

const char dg_usage_verify[] =
    "usage: drainguard verify [--key-file FILE [--key-id ID]] [--keys DIR] [--input FILE|-]\n"
    "\n"
    "Check the signature of every decision of a JSON Lines stream (one decision\n"
    "per line, blank lines ignored). Prints each line that does not verify with\n"
    "its number and reason (missing signature, unknown key id, bad signature,\n"
    "malformed), then \"N verified, M bad\". Exit status 0 only when every line\n"
    "verifies (an empty stream does), 1 when one does not, 2 on a usage or key\n"
    "error. Give at least one key: --key-file, --keys or both.\n"
    "\n"
    "  --key-file FILE   a key: the file's bytes, one trailing newline stripped\n"
    "  --key-id ID       the id of --key-file's key; without it, that key is tried\n"
    "                    for every key id that --keys does not hold\n"
    "  --keys DIR        every file in DIR is a key, its name the key id (for\n"
    "                    streams signed before and after a key rotation)\n"
    "  --input PATH      the decisions, or - for stdin (the default)\n"
    "\n"
    "See docs/signing.md for the canonical form and a C function that verifies\n"
    "one decision.\n";

#define MAX_LINE (1 << 20) /* a decision is a few hundred bytes */

int dg_cmd_verify(int argc, char **argv)
{
    const char *key_file = NULL, *key_id = NULL, *keys_dir = NULL, *input = "-";
    unsigned long long lineno = 0, ok = 0, bad = 0;
    dg_keyring *kr = NULL;
    FILE *in = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    char err[512], detail[128];
    int rc = 2;

    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = dg_opt(argc, argv, &i, "--key-file")))
            key_file = v;
        else if ((v = dg_opt(argc, argv, &i, "--key-id")))
            key_id = v;
        else if ((v = dg_opt(argc, argv, &i, "--keys")))
            keys_dir = v;
        else if ((v = dg_opt(argc, argv, &i, "--input")))
            input = v;
        else {
            dg_cmd_error("verify", "unknown option '%s' (see drainguard verify --help)", argv[i]);
            return 2;
        }
    }
    if (!key_file && !keys_dir) {
        dg_cmd_error("verify", "no key: give --key-file FILE or --keys DIR (see --help)");
        return 2;
    }
    if (key_id && !key_file) {
        dg_cmd_error("verify", "--key-id names the key of --key-file; there is none");
        return 2;
    }

    kr = dg_keyring_new();
    if (keys_dir) {
        int added = dg_keyring_add_dir(kr, keys_dir, err, sizeof err);
        if (added < 0) {
            dg_cmd_error("verify", "%s", err);
            goto out_keys;
        }
        if (!added && !key_file) {
            dg_cmd_error("verify", "no key files in '%s'", keys_dir);
            goto out_keys;
        }
    }
    if (key_file && dg_keyring_add_file(kr, key_id, key_file, err, sizeof err) != 0) {
        dg_cmd_error("verify", "%s", err);
        goto out_keys;
    }
    in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in) {
        dg_cmd_error("verify", "cannot read '%s': %s", input, strerror(errno));
        goto out_keys;
    }

    while ((n = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)n, k = 0;
        int r;
        lineno++;
        if (len && line[len - 1] == '\n')
            len--;
        if (len && line[len - 1] == '\r')
            len--;
        while (k < len && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == len)
            continue;
        if (len > MAX_LINE) {
            r = DG_SIG_MALFORMED;
            snprintf(detail, sizeof detail, "longer than %d bytes", MAX_LINE);
        } else {
            r = dg_sign_verify(kr, line, len, detail, sizeof detail);
        }
        if (r == DG_SIG_OK) {
            ok++;
            continue;
        }
        bad++;
        if (r == DG_SIG_MALFORMED)
            printf("line %llu: malformed: %s\n", lineno, detail);
        else if (r == DG_SIG_MISSING)
            printf("line %llu: missing signature\n", lineno);
        else if (r == DG_SIG_UNKNOWN_KID)
            printf("line %llu: unknown key id '%s'\n", lineno, detail);
        else
            printf("line %llu: bad signature (key id '%s')\n", lineno, detail);
    }
    if (ferror(in)) {
        dg_cmd_error("verify", "reading '%s': %s", input, strerror(errno));
        goto out_in;
    }
    printf("%llu verified, %llu bad\n", ok, bad);
    rc = bad ? 1 : 0;
out_in:
    free(line);
    if (in != stdin)
        fclose(in);
out_keys:
    dg_keyring_free(kr);
    if (fflush(stdout) != 0 && rc == 0)
        rc = 2;
    return rc;
}
