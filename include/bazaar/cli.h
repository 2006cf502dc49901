/* cli: the bazaar command line (run, play, expand, merge, info). Exit codes:
 * 0 success, 2 bad usage or input (nothing started), 1 failure while running,
 * 3 clean resumable stop (signal, budget). */
#ifndef BAZAAR_CLI_H
#define BAZAAR_CLI_H

int bz_cli_main(int argc, char **argv);

#endif
