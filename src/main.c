/* main: the bazaar CLI entry point (see cli.c). */
#include "bazaar/cli.h"

int main(int argc, char **argv)
{
    return bz_cli_main(argc, argv);
}
