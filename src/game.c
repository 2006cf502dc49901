/* game: the registry of compiled-in games and lookups on their ops tables.
 * Adding a game means adding its files and one line in the table below; tests
 * add theirs with bz_game_register. */
#include <string.h>

#include "bazaar/game.h"

extern const struct bz_game_ops bz_electricity_ops;
extern const struct bz_game_ops bz_item_allocation_ops, bz_treaty_ops;
extern const struct bz_game_ops bz_beast_ops;

static const struct bz_game_ops *const games[] = {
    &bz_electricity_ops,
    &bz_item_allocation_ops,
    &bz_treaty_ops,
    &bz_beast_ops,
};

#define N_BUILTIN (sizeof games / sizeof games[0])
#define MAX_EXTRA 8

/* Games added at run time (tests' games only; set before any lookup). */
static const struct bz_game_ops *extra[MAX_EXTRA];
static size_t n_extra;

int bz_game_register(const struct bz_game_ops *ops)
{
    if (!ops || !ops->name || bz_game_find(ops->name))
        return BZ_EINVAL;
    if (n_extra == MAX_EXTRA)
        return BZ_ENOMEM;
    extra[n_extra++] = ops;
    return BZ_OK;
}

size_t bz_game_count(void)
{
    return N_BUILTIN + n_extra;
}

const struct bz_game_ops *bz_game_at(size_t i)
{
    return i < N_BUILTIN ? games[i] : i < bz_game_count() ? extra[i - N_BUILTIN] : NULL;
}

const struct bz_game_ops *bz_game_find(const char *name)
{
    for (size_t i = 0; i < bz_game_count(); i++)
        if (strcmp(bz_game_at(i)->name, name) == 0)
            return bz_game_at(i);
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
