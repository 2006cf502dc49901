/* spec_game: bz_spec_load and bz_spec_parse against the compiled-in games.
 * Kept apart from spec.c so that tests of the parser can link without the
 * game registry (they pass their own games to bz_spec_*_games). */
#include "bazaar/game.h"
#include "bazaar/spec.h"
#include "spec_internal.h"

#define MAX_GAMES 64

static size_t registry(const struct bz_game_ops **games)
{
    size_t n = bz_game_count();
    if (n > MAX_GAMES)
        n = MAX_GAMES;
    for (size_t i = 0; i < n; i++)
        games[i] = bz_game_at(i);
    return n;
}

int bz_spec_load(const char *path, struct bz_spec **out, struct bz_err *err)
{
    const struct bz_game_ops *games[MAX_GAMES];
    size_t n = registry(games);
    return bz_spec_load_games(path, games, n, out, err);
}

int bz_spec_parse(const char *text, const char *origin, struct bz_spec **out, struct bz_err *err)
{
    const struct bz_game_ops *games[MAX_GAMES];
    size_t n = registry(games);
    return bz_spec_parse_games(text, origin, games, n, out, err);
}
