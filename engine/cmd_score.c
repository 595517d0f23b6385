/*
 * cmd_score.c - `drainguard score`: options in, the figures of engine/score_*.c
 * out as text, JSON or an HTML report. Also --combine, one table over the
 * JSON documents of several runs (what `make score` prints at the end).
 */
#include "cmd.h"
#include "score.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char dg_usage_score[] =
    "usage: drainguard score --labels FILE --decisions FILE [--events FILE]\n"
    "                        [--baseline-decisions FILE] [--json] [--json-out FILE]\n"
    "                        [--html FILE] [--name TEXT]\n"
    "       drainguard score --combine RUN.json...\n"
    "\n"
    "Score a rule pack's decisions (from `drainguard replay`) against the\n"
    "generator's labels (one {event_id, scenario, phase} per attack event;\n"
    "every other event is legitimate).\n"
    "\n"
    "Per scenario: detected (an attack- or outflow-phase event got an action\n"
    "other than allow), the share of its USD stopped (its requests, or its\n"
    "outflows when it has no requests), USD allowed before the first stop, time\n"
    "and attack events from its start (first attack-phase event) to the first\n"
    "stop, and the rules that fired (enforced, then shadow). For legitimate\n"
    "traffic: hold+freeze and review rates among withdrawal requests, wallets\n"
    "frozen by a legitimate event, outflows held or frozen (excused when a\n"
    "request they pay was itself stopped), and the rules behind the false\n"
    "positives. Each figure stands next to its target (met / NOT met):\n"
    "every scenario detected with >= 90% of its USD stopped; hold+freeze <=\n"
    "0.5%, review <= 2%; no outflow alarm that is not excused.\n"
    "\n"
    "  --labels FILE               labels.jsonl from `drainguard gen`\n"
    "  --decisions FILE            decisions of the pack being scored\n"
    "  --events FILE               the events (amounts, times, outflows' withdrawal_ids);\n"
    "                              without it USD figures and the outflow check are n/a\n"
    "  --baseline-decisions FILE   decisions of the same events under the baseline pack,\n"
    "                              printed side by side\n"
    "  --json                      print the figures as one JSON document instead of text\n"
    "  --json-out FILE             also write that JSON document to FILE\n"
    "  --html FILE                 write a self-contained HTML report (inline SVG charts)\n"
    "  --name TEXT                 what this run is, e.g. \"seed 101\" (shown in reports)\n"
    "  --combine RUN.json...       print one table over several --json documents\n"
    "\n"
    "Exit status: 0 when the figures were written (targets met or not), 1 on\n"
    "unreadable input, 2 on bad usage.\n";

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        dg_cmd_error("score", "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len) {
        dg_cmd_error("score", "cannot write '%s'", path);
        return -1;
    }
    return 0;
}

static int combine(int argc, char **argv, int first)
{
    char err[512];
    if (first >= argc) {
        dg_cmd_error("score", "--combine needs at least one JSON document");
        return 2;
    }
    for (int i = first; i < argc; i++)
        if (argv[i][0] == '-') {
            dg_cmd_error("score", "--combine takes only files, got '%s'", argv[i]);
            return 2;
        }
    if (dg_score_combine((const char *const *)argv + first, (size_t)(argc - first), stdout, err, sizeof err)) {
        dg_cmd_error("score", "%s", err);
        return 1;
    }
    return 0;
}

int dg_cmd_score(int argc, char **argv)
{
    struct dg_score_opts o = {0};
    const char *html = NULL, *json_out = NULL, *name = NULL, *v;
    int json = 0, rc = 1;
    char err[512];

    for (int i = 1; i < argc; i++) {
        if ((v = dg_opt(argc, argv, &i, "--labels")))
            o.labels = v;
        else if ((v = dg_opt(argc, argv, &i, "--decisions")))
            o.decisions[0] = v;
        else if ((v = dg_opt(argc, argv, &i, "--baseline-decisions")))
            o.decisions[1] = v;
        else if ((v = dg_opt(argc, argv, &i, "--events")))
            o.events = v;
        else if ((v = dg_opt(argc, argv, &i, "--html")))
            html = v;
        else if ((v = dg_opt(argc, argv, &i, "--json-out")))
            json_out = v;
        else if ((v = dg_opt(argc, argv, &i, "--name")))
            name = v;
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--combine"))
            return combine(argc, argv, i + 1);
        else {
            dg_cmd_error("score", "unknown option '%s' (see drainguard score --help)", argv[i]);
            return 2;
        }
    }
    if (!o.labels || !o.decisions[0]) {
        dg_cmd_error("score", "--labels and --decisions are required (see drainguard score --help)");
        return 2;
    }

    struct dg_score *s = dg_score_load(&o, err, sizeof err);
    if (!s) {
        dg_cmd_error("score", "%s", err);
        return 1;
    }
    if (json || json_out) {
        dg_buf b = {0};
        dg_score_json(s, name, &b);
        if (json)
            fwrite(b.data, 1, b.len, stdout);
        int bad = json_out && write_file(json_out, b.data, b.len);
        dg_buf_free(&b);
        if (bad)
            goto out_free;
    }
    if (!json)
        dg_score_text(s, stdout);
    if (html && dg_score_html(s, name, html, err, sizeof err)) {
        dg_cmd_error("score", "%s", err);
        goto out_free;
    }
    if (fflush(stdout) != 0) {
        dg_cmd_error("score", "cannot write the report: %s", strerror(errno));
        goto out_free;
    }
    rc = 0;
out_free:
    dg_score_free(s);
    return rc;
}
