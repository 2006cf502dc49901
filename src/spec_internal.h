/* spec_internal: the parsed spec as spec.c builds it and grid.c expands it,
 * plus entry points that take the list of games explicitly (tests use a fake
 * game and must not pull in the compiled-in registry). Never include from
 * outside spec.c, grid.c, spec_game.c and their tests. */
#ifndef BAZAAR_SPEC_INTERNAL_H
#define BAZAAR_SPEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/spec.h"

#define BZ_SPEC_MAX_BYTES (16u * 1024u * 1024u) /* cap on a spec file */
#define BZ_SPEC_MAX_AGENTS 100000000            /* cap on n_agents x lineup fill */

enum bz_spec_mode { BZ_SPEC_DEFAULT, BZ_SPEC_FIXED, BZ_SPEC_GRID };

/* One parameter of the game as the spec sets it: the default, one fixed value
 * or a grid list. n >= 1 always (the default is a one-value list). */
struct bz_spec_param {
    enum bz_spec_mode mode;
    int n;
    double *num; /* n values (NUM/INT/BOOL; 0 for STR) */
    char **str;  /* n strings for STR params, else NULL */
};

/* A lineup: its name and the agents as written (before the cyclic fill). */
struct bz_spec_lineup {
    char *name;
    int n;
    struct bz_agent_spec *agents;
};

struct bz_spec {
    char *json;   /* the text as loaded */
    char *origin; /* file path (or caller's name for text) */
    char *name;
    char *output;
    const struct bz_game_ops *ops;
    uint64_t seed;
    int repetitions;
    struct bz_spec_param params[BZ_MAX_PARAMS]; /* by index of ops->params */
    int idx_n_agents, idx_communication;

    /* Every lineup the spec defines: the named ones of "lineups" first (in the
     * spec's order), then the inline ones of fixed.lineup / grid.lineup. */
    struct bz_spec_lineup *lineups;
    int n_lineups;
    /* The lineup axis: indices into lineups, in the order the spec lists them. */
    int *lineup_axis;
    int n_lineup_axis;
    int lineup_in_grid; /* 1: grid.lineup, 0: fixed.lineup */

    /* llm.memory_turns per game: one value (llm.memory_turns or its default)
     * or the list grid."llm.memory_turns" gives (mode BZ_SPEC_GRID); the
     * agents of a game get it when its lineup names a model (else 0) */
    struct bz_spec_param memory;

    struct bz_llm_settings llm;
    struct bz_budget budget;
    int has_llm;
};

/* The grid key of llm.memory_turns, and its bounds. */
#define BZ_SPEC_MEMORY_KEY "llm.memory_turns"
#define BZ_SPEC_MEMORY_MAX 1000

/* bz_spec_parse / bz_spec_load against an explicit list of games. */
int bz_spec_parse_games(const char *text, const char *origin,
                        const struct bz_game_ops *const *games, size_t n_games,
                        struct bz_spec **out, struct bz_err *err);
int bz_spec_load_games(const char *path, const struct bz_game_ops *const *games, size_t n_games,
                       struct bz_spec **out, struct bz_err *err);

/* "line L, column C" of byte offset pos in text (1-based). */
void bz_spec_line_col(const char *text, size_t pos, int *line, int *col);

#endif
