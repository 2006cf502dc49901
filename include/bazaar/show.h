/* show: one game's story printed from a results file (bazaar show). */
#ifndef BAZAAR_SHOW_H
#define BAZAAR_SHOW_H

#include <stdint.h>
#include <stdio.h>

#include "bazaar/err.h"

/* Print game's outcome, agents, messages and LLM decisions with their texts
 * to f; agent / turn < 0: all. BZ_EINVAL when the file has no such game. */
int bz_show_print(const char *path, int64_t game, int agent, int turn, FILE *f, struct bz_err *err);
/* `bazaar show` (argv[0] is "show"); returns the exit code. */
int bz_show_cmd(int argc, char **argv);

#endif
