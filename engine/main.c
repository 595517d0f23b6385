/*
 * main.c - drainguard's entry point: finds the subcommand in the table and
 * runs it. No logic lives here.
 */
#include "cmd.h"

#include <stdio.h>
#include <string.h>

const struct dg_command dg_commands[] = {
    {"replay", dg_cmd_replay, "decide a file of events offline (backtests)", dg_usage_replay},
    {"check", dg_cmd_check, "validate rule files", dg_usage_check},
    {"test", dg_cmd_test, "run the should-match / should-not-match cases of rule packs", dg_usage_test},
    {"run", dg_cmd_run, "the streaming engine: Kafka in, decisions out, windows in Redis", dg_usage_run},
    {"broker", dg_cmd_broker, "a Kafka-protocol broker for development and tests (librdkafka's mock cluster)", dg_usage_broker},
    {"produce", dg_cmd_produce, "send lines of a file to a Kafka topic (operators, demo, tests)", dg_usage_produce},
    {"consume", dg_cmd_consume, "print the messages of a Kafka topic from the beginning", dg_usage_consume},
    {"gen", dg_cmd_gen, "generate labelled synthetic exchange traffic with attack scenarios", dg_usage_gen},
    {"freezes", dg_cmd_freezes, "list, place and release freezes in the engine's Redis (audited)", dg_usage_freezes},
    {"score", dg_cmd_score, "score a pack's decisions against labelled attacks, beside a baseline", dg_usage_score},
    {"verify", dg_cmd_verify, "check the signatures of a stream of decisions", dg_usage_verify},
};
const size_t dg_ncommands = sizeof(dg_commands) / sizeof(dg_commands[0]);

static void help(FILE *out)
{
    fprintf(out, "usage: drainguard COMMAND [OPTIONS]\n\n"
                 "Hot-wallet withdrawal anomaly detector.\n\ncommands:\n");
    for (size_t i = 0; i < dg_ncommands; i++)
        fprintf(out, "  %-10s %s\n", dg_commands[i].name, dg_commands[i].summary);
    fprintf(out, "  %-10s %s\n", "help", "this list; `drainguard COMMAND --help` explains one");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc > 2)
            for (size_t i = 0; i < dg_ncommands; i++)
                if (!strcmp(argv[2], dg_commands[i].name)) {
                    fputs(dg_commands[i].usage, stdout);
                    return 0;
                }
        help(stdout);
        return 0;
    }
    for (size_t i = 0; i < dg_ncommands; i++)
        if (!strcmp(argv[1], dg_commands[i].name)) {
            if (dg_wants_help(argc - 1, argv + 1)) {
                fputs(dg_commands[i].usage, stdout);
                return 0;
            }
            return dg_commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "drainguard: unknown command '%s'\n\n", argv[1]);
    help(stderr);
    return 2;
}
