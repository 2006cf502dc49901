/* fake_bazaar: the bazaar CLI with the tests' fake game registered, for the
 * end-to-end tests (tests/e2e/test_fake_game.py). Never installed. */
#include <stdio.h>

#include "bazaar/cli.h"
#include "fake_game.h"

int main(int argc, char **argv)
{
    if (bz_fake_game_register()) {
        fprintf(stderr, "fake_bazaar: cannot register the fake game\n");
        return 1;
    }
    return bz_cli_main(argc, argv);
}
