/*
 * cmd_util.c - option parsing and small process helpers shared by the
 * cmd_*.c subcommands.
 */
#include "cmd.h"
#include "config.h"
#include "rules.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

const char *dg_opt(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n))
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "drainguard %s: option %s needs a value\n", argv[0], name);
        exit(2);
    }
    (*i)++;
    return argv[*i];
}

int64_t dg_opt_duration(const char *opt, const char *val)
{
    int64_t ms;
    if (dg_duration_parse(val, strlen(val), &ms) != 0 || ms < 0) {
        fprintf(stderr, "drainguard: %s: bad duration '%s' (write e.g. 90s, 10m, 24h, 7d)\n", opt, val);
        exit(2);
    }
    return ms;
}

void dg_cmd_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "drainguard %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int dg_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

long dg_peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

double dg_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int dg_cmd_tool_config(const char *cmd, struct dg_config *cfg, const char *config, const char *brokers,
                       const char *topic)
{
    char err[512];
    if (config) {
        struct dg_diag diag = {0};
        int lr = dg_config_load(cfg, config, &diag);
        for (size_t k = 0; k < diag.n; k++)
            fprintf(stderr, "%s\n", diag.lines[k]);
        dg_diag_free(&diag);
        if (lr != 0)
            return -1;
    }
    if (brokers && dg_config_set(cfg, "brokers", brokers, err, sizeof err) != 0) {
        dg_cmd_error(cmd, "%s", err);
        return -1;
    }
    if (!cfg->brokers || !topic) {
        dg_cmd_error(cmd, "--brokers and --topic are required (see --help)");
        return -1;
    }
    return 0;
}
