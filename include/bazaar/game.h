/* game: the interface every game implements. A game is a state machine: step()
 * runs until it needs decisions and names the agents that must decide in the
 * current phase; the caller fills their action slots (heuristic policies at
 * once, LLM agents whenever their replies arrive), then apply() consumes them.
 * A game never blocks, never does I/O but its transcript, knows nothing of
 * LLMs, HDF5 or MPI. One file per game in src/games/, exporting one ops table. */
#ifndef BAZAAR_GAME_H
#define BAZAAR_GAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bazaar/err.h"
#include "bazaar/records.h"
#include "bazaar/rng.h"

struct cJSON;
struct bz_game; /* opaque, defined by each game */

#define BZ_MAX_PARAMS 32
#define BZ_NAME_MAX 64

enum bz_param_kind { BZ_PARAM_NUM, BZ_PARAM_INT, BZ_PARAM_BOOL, BZ_PARAM_STR };

/* One parameter a game accepts in a spec (fixed or as a grid list). */
struct bz_param_desc {
    const char *name;
    enum bz_param_kind kind;
    double def;          /* default for NUM/INT/BOOL */
    double min, max;     /* inclusive bounds for NUM/INT */
    const char *def_str; /* default for STR (may be "") */
    int env;             /* 1: shapes the environment, so it enters env_seed */
    const char *help;
};

/* One agent of a lineup, as the spec names it. */
enum bz_agent_kind { BZ_AGENT_HEURISTIC, BZ_AGENT_LLM };

struct bz_agent_spec {
    enum bz_agent_kind kind;
    char policy[BZ_NAME_MAX]; /* heuristic policy name, or the model id */
    double skill;             /* heuristic skill in [0,1]; LLM: unused */
    double capability;        /* heuristic: skill; LLM: registry capability */
    char label[2 * BZ_NAME_MAX]; /* "heuristic:greedy?skill=0.8" or model id */
};

/* Everything one game needs; built by grid, read-only for the game. */
struct bz_game_config {
    int64_t game_id;
    const struct bz_game_ops *ops;
    uint64_t seed;      /* agents' and protocol randomness */
    uint64_t env_seed;  /* environment: depends on env params and repetition only */
    int repetition;
    int n_agents;
    int communication;  /* 0: agents see no free text from others */
    double num[BZ_MAX_PARAMS];          /* by index of ops->params */
    const char *str[BZ_MAX_PARAMS];     /* STR params, owned by the grid */
    const struct bz_agent_spec *agents; /* n_agents entries, owned by the grid */
    const char *lineup_name;            /* label of the lineup, owned by the grid */
    const char *data_dir;               /* where relative data paths resolve */
    FILE *transcript;                   /* non-NULL: write a readable transcript */
};

/* The decisions a game waits for: all agents of one phase at once. */
struct bz_requests {
    int phase;            /* index into ops->phases */
    int n;
    const int32_t *agents; /* n agent indices, owned by the game */
};

enum bz_step { BZ_STEP_DECIDE = 1, BZ_STEP_DONE = 2 };

/* A heuristic policy, beside its game. decide() writes the agent's action for
 * the current phase into the game's action slot; it must be admissible. */
struct bz_policy_ops {
    const char *name;
    const char *help;
    void (*decide)(struct bz_game *g, int agent, double skill, struct bz_rng *rng);
};

/* Summary a finished game reports for its /games and /agents rows. */
struct bz_game_outcome {
    int turns_played;
    double welfare;       /* sum of payoffs */
    double max_welfare;   /* best achievable (NaN where unknown) */
    double efficiency;    /* welfare / max_welfare, or game-specific */
    int n_invalid;        /* inadmissible actions seen */
    int n_fallback;       /* fallback actions used */
};

struct bz_game_ops {
    const char *name;
    const struct bz_param_desc *params;
    size_t n_params;
    const char *const *phases; /* phase names, for prompts and records */
    size_t n_phases;
    const struct bz_policy_ops *const *policies;
    size_t n_policies;
    const struct bz_table_desc *const *tables; /* the game's own tables */
    size_t n_tables;

    /* Validate a config before any game starts (data files load, bounds
     * hold); message names the parameter. May be NULL. */
    int (*check)(const struct bz_game_config *cfg, struct bz_err *err);
    /* Create a game; rows go to rec (owned by the caller, outlives the game).
     * Free with destroy. */
    int (*create)(const struct bz_game_config *cfg, struct bz_records *rec,
                  struct bz_game **out, struct bz_err *err);
    void (*destroy)(struct bz_game *g);
    /* Advance to the next set of decisions or to the end. Returns
     * BZ_STEP_DECIDE (req filled) or BZ_STEP_DONE, or a negative bz_rc. */
    int (*step)(struct bz_game *g, struct bz_requests *req, struct bz_err *err);
    /* Consume the actions of the current phase's agents. */
    int (*apply)(struct bz_game *g, struct bz_err *err);
    /* Fill the outcome once step() returned BZ_STEP_DONE; payoff[i] per agent. */
    void (*outcome)(const struct bz_game *g, struct bz_game_outcome *out, double *payoff);

    /* For LLM agents: what agent sees now, as JSON members added to obs
     * (public, private, meta objects); no free text of others when
     * communication is off; a bounded set of counterparties. */
    int (*observe)(const struct bz_game *g, int agent, struct cJSON *obs, struct bz_err *err);
    /* JSON schema (text) of a reply in this phase. */
    const char *(*action_schema)(const struct bz_game *g, int phase);
    /* Parse and check a reply; on success the action slot is set. On failure
     * returns BZ_EINVAL with a message naming the field and the expectation
     * (used verbatim in the repair prompt) and leaves the slot unset. */
    int (*parse_action)(struct bz_game *g, int agent, const struct cJSON *reply, struct bz_err *err);
    /* Set a safe admissible action (recorded as a fallback by the game). */
    void (*fallback_action)(struct bz_game *g, int agent);
};

/* Registry of games compiled in. */
const struct bz_game_ops *bz_game_find(const char *name);
size_t bz_game_count(void);
const struct bz_game_ops *bz_game_at(size_t i);

/* Index of a parameter by name, or -1. */
int bz_game_param_index(const struct bz_game_ops *ops, const char *name);
const struct bz_policy_ops *bz_game_policy(const struct bz_game_ops *ops, const char *name);

#endif
