/*
 * cmd.h - the subcommand table. Each subcommand lives in its own cmd_*.c and
 * adds one row to dg_commands[] in main.c.
 */
#ifndef DG_CMD_H
#define DG_CMD_H

#include <stdint.h>
#include <stdio.h>

struct dg_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;               /* one line for `drainguard help` */
    const char *usage;                 /* full text for `drainguard CMD --help` */
};

extern const struct dg_command dg_commands[];
extern const size_t dg_ncommands;

int dg_cmd_replay(int argc, char **argv);
int dg_cmd_check(int argc, char **argv);
int dg_cmd_test(int argc, char **argv);
int dg_cmd_broker(int argc, char **argv);
int dg_cmd_run(int argc, char **argv);
int dg_cmd_produce(int argc, char **argv);
int dg_cmd_consume(int argc, char **argv);
int dg_cmd_gen(int argc, char **argv);
extern const char dg_usage_gen[];
int dg_cmd_score(int argc, char **argv);
int dg_cmd_freezes(int argc, char **argv);
extern const char dg_usage_freezes[];
extern const char dg_usage_replay[], dg_usage_check[], dg_usage_test[], dg_usage_broker[];
extern const char dg_usage_run[], dg_usage_produce[], dg_usage_consume[];
extern const char dg_usage_score[];
int dg_cmd_verify(int argc, char **argv);
extern const char dg_usage_verify[];

/* Shared option helpers: "--name VALUE" or "--name=VALUE". Returns the value
 * and advances *i, or NULL when argv[*i] is not that option. Exits with 2
 * and a message when the value is missing. */
const char *dg_opt(int argc, char **argv, int *i, const char *name);
/* Parse a duration option or exit 2 with a message naming the option. */
int64_t dg_opt_duration(const char *opt, const char *val);
/* Print "drainguard CMD: message" to stderr. */
void dg_cmd_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Does argv ask for help? */
int dg_wants_help(int argc, char **argv);
/* produce and consume: --config FILE (optional), then --brokers overriding
 * it; both a broker list and a topic are required. 0, or -1 after printing
 * what is wrong. */
struct dg_config;
int dg_cmd_tool_config(const char *cmd, struct dg_config *cfg, const char *config,
                       const char *brokers, const char *topic);
/* Peak resident memory of this process, in KiB. */
long dg_peak_rss_kib(void);
double dg_now_seconds(void);

#endif
