/* spec: sweep spec parsing and validation (cJSON). Every error names the file
 * and the key path (`grid.volatility[2]: expected a number in [0,1], got "high"`).
 * grid (below): expansion of a spec into game configs with stable ids and
 * paired seeds. */
#ifndef BAZAAR_SPEC_H
#define BAZAAR_SPEC_H

#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/game.h"

struct bz_spec;
struct bz_grid;

/* LLM settings of a spec (defaults where the spec is silent). */
struct bz_llm_settings {
    int live_games;  /* K games in flight per rank */
    int concurrency; /* max requests in flight per rank */
    double timeout_s;
    int max_retries;
    double temperature;
    int max_output_tokens;
    char cache_dir[512];     /* "" = no cache */
    char models_path[512];   /* models registry; "" = sweeps/models.json */
    char prompts_dir[512];   /* "" = prompts/<game> */
    int memory_turns;        /* llm.memory_turns (0 = none); a game's own value, which
                                grid."llm.memory_turns" may vary, is cfg->memory_turns */
    int memory_max_tokens;   /* bound on that history (bytes / 4); oldest exchanges dropped */
    int reasoning;           /* 1: a free-text "reasoning" field first in every reply schema */
    double max_game_seconds; /* a game running longer ends with status "timeout"; 0 = none */
};

struct bz_budget {
    int64_t max_tokens;  /* 0 = none */
    double max_cost_usd; /* 0 = none */
};

/* Load and validate a spec file; errors name path and key. Free with
 * bz_spec_destroy. */
int bz_spec_load(const char *path, struct bz_spec **out, struct bz_err *err);
/* Same from text; origin names it in errors. */
int bz_spec_parse(const char *text, const char *origin, struct bz_spec **out, struct bz_err *err);
void bz_spec_destroy(struct bz_spec *s);

const char *bz_spec_name(const struct bz_spec *s);   /* "name" or the file's stem */
const char *bz_spec_json(const struct bz_spec *s);   /* the spec as loaded, JSON text */
const char *bz_spec_output(const struct bz_spec *s); /* "output" or results/<name>.h5 */
const struct bz_game_ops *bz_spec_game(const struct bz_spec *s);
const struct bz_llm_settings *bz_spec_llm(const struct bz_spec *s);
const struct bz_budget *bz_spec_budget(const struct bz_spec *s);
/* 1 when some lineup the grid plays names an LLM model. */
int bz_spec_has_llm(const struct bz_spec *s);
const char *bz_spec_origin(const struct bz_spec *s); /* file path (or the origin given) */
uint64_t bz_spec_seed(const struct bz_spec *s);      /* the sweep seed */
int bz_spec_repetitions(const struct bz_spec *s);
/* The llm.memory_turns values the grid plays: n of them (1 when it does not
 * vary), value i in the spec's order. */
int bz_spec_memory_n(const struct bz_spec *s);
int bz_spec_memory_value(const struct bz_spec *s, int i);

/* Expand the spec's grid. Free with bz_grid_destroy (after every config
 * handed out is no longer used); the spec must outlive the grid.
 * Game ids: the grid's axes (its parameters, "lineup" and
 * "llm.memory_turns") sorted by name, values in the spec's order, repetition
 * fastest (mixed radix, see grid.c).
 * Seeds: env_seed hashes (sweep seed, every env=1 parameter's value,
 * repetition); seed hashes (sweep seed, every parameter's value, lineup name,
 * llm.memory_turns when not 0, repetition). Neither depends on the order of
 * keys in the spec. A config's memory_turns is its llm.memory_turns value
 * when the lineup names a model, else 0. */
int bz_grid_create(const struct bz_spec *s, struct bz_grid **out, struct bz_err *err);
void bz_grid_destroy(struct bz_grid *g);
int64_t bz_grid_count(const struct bz_grid *g);
/* Fill cfg for game_id in [0, count). Pointers in cfg point into the grid.
 * Allocates nothing; BZ_EINVAL for an id out of range. */
int bz_grid_config(const struct bz_grid *g, int64_t game_id, struct bz_game_config *cfg,
                   struct bz_err *err);
/* Run the game's check() on every distinct environment before any game
 * starts. */
int bz_grid_check(const struct bz_grid *g, struct bz_err *err);
/* The spec the grid was created from. */
const struct bz_spec *bz_grid_spec(const struct bz_grid *g);

/* Let a caller complete the agents of every lineup (the models registry's
 * capability of LLM agents): fill is called once per lineup with its agents,
 * which every config of that lineup then carries. The grid knows nothing of
 * the registry; sched and cli pass a function that does. */
typedef int (*bz_grid_agent_fill_fn)(void *ctx, struct bz_agent_spec *agents, size_t n,
                                     struct bz_err *err);
int bz_grid_resolve_agents(struct bz_grid *g, bz_grid_agent_fill_fn fill, void *ctx,
                           struct bz_err *err);
/* One line describing game_id for `bazaar expand`: the grid values, lineup,
 * repetition and seeds, e.g. `game 5: scarcity=1.2 lineup=gap rep=1
 * env_seed=... seed=...`. Writes at most n bytes (NUL-terminated, truncated
 * if longer). Returns BZ_OK, or BZ_EINVAL for an id out of range (buf ""). */
int bz_grid_describe(const struct bz_grid *g, int64_t game_id, char *buf, size_t n);

#endif
