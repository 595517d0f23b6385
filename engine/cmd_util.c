/*
 * cmd_util.c - option parsing and small process helpers shared by the
 * cmd_*.c subcommands.
 */
#include "cmd.h"
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
