#include "cmd.h"
const char dg_usage_test[] = "wip\n";
int dg_cmd_test(int argc, char **argv) { return 1; }
