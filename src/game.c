/* game: the registry of compiled-in games and lookups on their ops tables.
 * Adding a game means adding its file and one line in the table below. */
#include <string.h>

#include "bazaar/game.h"

extern const struct bz_game_ops bz_electricity_ops;

static const struct bz_game_ops *const games[] = {
    &bz_electricity_ops,
};

size_t bz_game_count(void)
{
    return sizeof games / sizeof games[0];
}

const struct bz_game_ops *bz_game_at(size_t i)
{
    return i < bz_game_count() ? games[i] : NULL;
}

const struct bz_game_ops *bz_game_find(const char *name)
{
    for (size_t i = 0; i < bz_game_count(); i++)
        if (strcmp(games[i]->name, name) == 0)
            return games[i];
    return NULL;
}

int bz_game_param_index(const struct bz_game_ops *ops, const char *name)
{
    for (size_t i = 0; i < ops->n_params; i++)
        if (strcmp(ops->params[i].name, name) == 0)
            return (int)i;
    return -1;
}

const struct bz_policy_ops *bz_game_policy(const struct bz_game_ops *ops, const char *name)
{
    for (size_t i = 0; i < ops->n_policies; i++)
        if (strcmp(ops->policies[i]->name, name) == 0)
            return ops->policies[i];
    return NULL;
}
