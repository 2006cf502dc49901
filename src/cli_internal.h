/* cli internals: the parts of `bazaar play` that know games only through the
 * registry (cli_play.c), reachable by tests/test_cli.c. */
#ifndef BAZAAR_CLI_INTERNAL_H
#define BAZAAR_CLI_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "bazaar/err.h"
#include "bazaar/game.h"

/* A game parameter the command line sets, and the option that set it (for
 * messages): --set K=V, --turns, --rounds, --communication. */
struct bz_play_setting {
    const char *key;
    const char *value;  /* as typed: numbers and true/false stay JSON literals */
    const char *option; /* "--set", "--turns", ... */
};

/* What `bazaar play GAME` was asked; strings are borrowed from argv. */
struct bz_play_args {
    const char *agents; /* "truthful,greedy?skill=0.3,model-id" */
    const char *seed;   /* NULL: 1 */
    const char *models; /* models registry, NULL: the default */
    const char *cache;  /* LLM response cache folder, NULL: the default */
    struct bz_play_setting sets[BZ_MAX_PARAMS + 8];
    size_t n_sets;
};

/* The game parameter a length option names for this game: "--turns" ->
 * "max_turns", "--rounds" -> "max_rounds", when the game has it. NULL (and
 * BZ_EINVAL in err, naming the game and the option it has instead) when not. */
const char *bz_cli_length_param(const struct bz_game_ops *ops, const char *option,
                                struct bz_err *err);

/* The one-game spec (JSON text) a play describes, so that it is validated by
 * exactly the rules and messages of a sweep: the agents as the lineup (a
 * policy of the game is a heuristic, anything else a model id), n_agents
 * their number unless set, every setting in "fixed". BZ_EINVAL for a missing
 * --agents, a bad --seed or a parameter set twice. *json is the caller's to
 * free. */
int bz_cli_play_spec(const struct bz_game_ops *ops, const struct bz_play_args *a, char **json,
                     struct bz_err *err);

/* Every parameter of a game with its kind, range, default and help, then its
 * heuristic policies (`bazaar play GAME --params`). */
void bz_cli_print_params(FILE *f, const struct bz_game_ops *ops);
/* Each registered game with its policies and parameter names (usage). */
void bz_cli_print_games(FILE *f);

#endif
