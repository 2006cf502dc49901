/* game: the interface every game implements and the base every game embeds.
 * A game is a state machine: step() runs until it needs decisions and asks
 * (agent, slot) pairs in the current phase; the caller fills their action
 * slots through the base (heuristic policies at once, LLM agents whenever their
 * replies arrive), then apply() consumes them.
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
    char policy[BZ_NAME_MAX];    /* heuristic policy name, or the model id */
    double skill;                /* heuristic skill in [0,1]; LLM: unused */
    double capability;           /* heuristic: skill; LLM: registry capability */
    char label[2 * BZ_NAME_MAX]; /* "heuristic:greedy?skill=0.8" or model id */
};

/* Everything one game needs; built by grid, read-only for the game. */
struct bz_game_config {
    int64_t game_id;
    const struct bz_game_ops *ops;
    uint64_t seed;     /* id: every parameter and the lineup name; draws nothing */
    uint64_t env_seed; /* every draw: environment, and with seat and label the agents' */
    int repetition;
    int n_agents;
    int communication;                  /* 0: agents see no free text from others */
    int memory_turns;                   /* its LLM agents' llm.memory_turns; 0: none */
    double num[BZ_MAX_PARAMS];          /* by index of ops->params */
    const char *str[BZ_MAX_PARAMS];     /* STR params, owned by the grid */
    const struct bz_agent_spec *agents; /* n_agents entries, owned by the grid */
    const char *lineup_name;            /* label of the lineup, owned by the grid */
    const char *data_dir;               /* where relative data paths resolve */
    FILE *transcript;                   /* non-NULL: write a readable transcript */
};

/* One decision a game waits for: agent's answer in slot of the current
 * phase. An agent may be asked several things in one step (slot 0, 1, ...:
 * e.g. one player in several conversations); each (agent, slot) is asked at
 * most once per step. Kept by the game base; flags are set by the base. */
struct bz_request {
    int32_t agent;
    int32_t slot;
    int32_t phase;    /* index into ops->phases */
    uint8_t answered; /* an action is in the slot (policy, reply or fallback) */
    uint8_t invalid;  /* an inadmissible action was seen for it (any attempt) */
    uint8_t fallback; /* the fallback (safe) action was used */
};

/* What step() leaves in its state out-parameter. */
enum bz_step { BZ_STEP_DECIDE = 1, BZ_STEP_DONE = 2 };

/* The part every game embeds FIRST in its struct bz_game (the sqlite3_vtab
 * pattern), so that the shared code (src/game_base.c, match, llm) can reach it
 * from a struct bz_game * with bz_game_base(). The game initialises it in
 * create() with bz_game_base_init() and frees it in destroy() with
 * bz_game_base_cleanup(); between them only the bz_game_* functions below
 * and the game's step() (through bz_game_ask) change it. */
struct bz_game_base {
    const struct bz_game_ops *ops;
    const struct bz_game_config *cfg;
    struct bz_records *rec; /* rows go here (owned by the caller) */
    FILE *tx;               /* transcript sink, NULL: none */
    int communication;      /* free text travels (cfg->communication != 0) */
    int round;              /* current round/turn, for /messages rows */
    int phase;              /* phase whose requests are open, -1: none */
    struct bz_request *req; /* the open requests, in the order asked */
    int n_req;
    int cap_req;
    int n_invalid;         /* inadmissible actions seen (any agent, any attempt) */
    int n_fallback;        /* fallback actions used */
    struct cJSON **schema; /* per phase, built once per game on first use; NULL:
                              no decision in that phase */
    char **schema_text;    /* the same, printed once (prompts, provider requests) */
    uint8_t *schema_built; /* per phase: schema[] is set */
};

/* A heuristic policy, beside its game. decide() writes the agent's reasoned
 * action for request r into the game's slot. The base mixes skill in: with
 * probability skill the reasoned action, else the game's random_action (one
 * uniform draw from rng unless skill >= 1). decide NULL: the policy is the
 * game's random_action itself (zero intelligence; no draw). */
struct bz_policy_ops {
    const char *name;
    const char *help;
    void (*decide)(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng);
};

/* A measured property of a game's realised environment that the study set
 * through a parameter but the generator can only approximate (e.g. the
 * achieved cosine of item values against the `competition` target): a
 * column of /<game>/config beside the parameters (f64, NaN for a failed
 * game). Static data of the game. */
#define BZ_MAX_MEASURES 8
struct bz_measure_desc {
    const char *name;
    const char *unit;
    const char *doc;
};

/* Summary a finished game reports for its /games and /agents rows. */
struct bz_game_outcome {
    int turns_played;
    double welfare;     /* sum of payoffs */
    double max_welfare; /* best achievable (NaN where unknown) */
    double efficiency;  /* welfare / max_welfare, or game-specific */
    int n_invalid;      /* inadmissible actions seen */
    int n_fallback;     /* fallback actions used */
    /* the game's measures of its realised environment (ops->measures order),
     * written beside its parameters in /<game>/config */
    double measures[BZ_MAX_MEASURES];
    double *gain; /* n_agents, set to NaN by the caller (or NULL): a game with an
                     autarky notion writes payoff - the agent's autarky payoff */
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
    const struct bz_measure_desc *measures; /* at most BZ_MAX_MEASURES; may be NULL */
    size_t n_measures;

    /* Validate a config before any game starts (data files load, bounds
     * hold); message names the parameter. May be NULL. */
    int (*check)(const struct bz_game_config *cfg, struct bz_err *err);
    /* Create a game (calling bz_game_base_init first); rows go to rec (owned
     * by the caller, outlives the game). Callers use bz_game_create. */
    int (*create)(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                  struct bz_err *err);
    /* Free the game (calling bz_game_base_cleanup); accepts NULL. */
    void (*destroy)(struct bz_game *g);
    /* Advance to the next set of decisions or to the end: either ask with
     * bz_game_ask (at least one request) and set *state = BZ_STEP_DECIDE, or
     * set *state = BZ_STEP_DONE. Returns 0 or a bz_rc (the game then ends
     * failed with err's message). Called through bz_game_step only. */
    int (*step)(struct bz_game *g, int *state, struct bz_err *err);
    /* Consume the actions of the open requests (every one answered and
     * admissible by then: the base fell back where needed). 0 or a bz_rc. */
    int (*apply)(struct bz_game *g, struct bz_err *err);
    /* Fill the outcome once the game is done; payoff[i] per agent. */
    void (*outcome)(const struct bz_game *g, struct bz_game_outcome *out, double *payoff);

    /* Actions. The game keeps the action slots; r names one. */
    /* Admissibility of the action in r's slot; BZ_EINVAL with a message
     * naming the field and the expectation (used in the repair prompt). */
    int (*check_action)(const struct bz_game *g, const struct bz_request *r, struct bz_err *err);
    /* Write a safe admissible action into r's slot. */
    void (*safe_action)(struct bz_game *g, const struct bz_request *r);
    /* Write a random admissible action into r's slot (zero intelligence). */
    void (*random_action)(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng);

    /* For LLM agents: what r's agent sees now, as JSON members added to obs
     * (public, private, meta objects); no free text of others when
     * communication is off; a bounded set of counterparties. */
    int (*observe)(const struct bz_game *g, const struct bz_request *r, struct cJSON *obs,
                   struct bz_err *err);
    /* JSON schema of a reply in this phase (may depend on n, m, K), as a new
     * cJSON owned by the caller; NULL when the phase takes no decision. Called
     * at most once per phase and game, by the base (bz_game_schema). */
    struct cJSON *(*action_schema)(const struct bz_game *g, int phase);
    /* Read a reply (already valid against the phase's schema) into r's slot.
     * BZ_EINVAL with a message naming the field on what the schema cannot
     * say (e.g. an id that is not a counterparty). The base then runs
     * check_action. */
    int (*parse_action)(struct bz_game *g, const struct bz_request *r, const struct cJSON *reply,
                        struct bz_err *err);

    /* Former parameter names, {old, new} pairs (may be NULL): a spec or
     * --set naming an old one is refused with a message naming the new. */
    const char *const (*renamed)[2];
    size_t n_renamed;
};

/* ---- the game base: src/game_base.c ---- */

static inline struct bz_game_base *bz_game_base(struct bz_game *g)
{
    return (struct bz_game_base *)(void *)g;
}
static inline const struct bz_game_base *bz_game_cbase(const struct bz_game *g)
{
    return (const struct bz_game_base *)(const void *)g;
}

/* For create()/destroy() of a game. */
int bz_game_base_init(struct bz_game_base *b, const struct bz_game_config *cfg,
                      struct bz_records *rec, struct bz_err *err);
void bz_game_base_cleanup(struct bz_game_base *b);

/* For step(): open the requests of phase (drops the previous ones), then ask
 * (agent, slot) one by one, in the order answers are to be consumed. */
void bz_game_ask_phase(struct bz_game *g, int phase);
int bz_game_ask(struct bz_game *g, int agent, int slot);

/* A /messages row (when communication is on and text is not empty) at the
 * base's round; receiver -1: to all. text must outlive the records (static
 * or in rec's arena). */
void bz_game_message(struct bz_game *g, int phase, int sender, int receiver, const char *text);
/* The same with every /messages column given: round (-1: the game has no
 * rounds), conversation (-1: none) and visibility ("public": every agent sees
 * it; "private": only the receiver, or only the sender for its own thinking;
 * static storage). bz_game_message is round -1, conversation -1, public when
 * receiver is -1 and private otherwise. */
void bz_game_message_in(struct bz_game *g, int phase, int sender, int receiver, int round,
                        int conversation, const char *visibility, const char *text);

/* Create a game with its base ready (checked); destroy it. */
int bz_game_create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                   struct bz_err *err);
void bz_game_destroy(struct bz_game *g);

/* Checked step: 0 and *state, or the game's bz_rc. A broken contract
 * (DECIDE without requests, a state that is neither DECIDE nor DONE, DONE
 * with requests open) asserts in debug builds and is BZ_EINTERNAL always. While requests are open
 * the same ones stay. */
int bz_game_step(struct bz_game *g, int *state, struct bz_err *err);
/* Every open request without an admissible action falls back (counted as
 * invalid when it held one), then the game's apply; the requests close. */
int bz_game_apply(struct bz_game *g, struct bz_err *err);

/* The open requests. */
int bz_game_n_requests(const struct bz_game *g);
const struct bz_request *bz_game_request(const struct bz_game *g, int i);
/* The open request of (agent, slot), or NULL. */
struct bz_request *bz_game_find_request(struct bz_game *g, int agent, int slot);

/* Answer request i with heuristic policy p at skill (the skill mix). */
void bz_game_decide(struct bz_game *g, int i, const struct bz_policy_ops *p, double skill,
                    struct bz_rng *rng);
/* Answer (agent, slot) with a reply: the phase's schema, then parse_action
 * and check_action. On failure BZ_EINVAL with a message naming the field; the
 * slot stays unanswered and the caller may repair or fall back. *fault (may
 * be NULL) says which check failed; only a reply that passed the schema and
 * broke the game's rules counts as an invalid action of the game. */
enum bz_answer_fault { BZ_ANSWER_OK, BZ_ANSWER_SCHEMA, BZ_ANSWER_INADMISSIBLE };
int bz_game_answer(struct bz_game *g, int agent, int slot, const struct cJSON *reply,
                   enum bz_answer_fault *fault, struct bz_err *err);
/* Answer (agent, slot) with the safe action, counted as a fallback. */
void bz_game_fallback(struct bz_game *g, int agent, int slot);

/* The phase's schema (NULL: no decision, or out of memory), as cJSON and as
 * compact text; built on first use (a heuristic-only game builds none) and
 * kept until the game is destroyed. */
const struct cJSON *bz_game_schema(struct bz_game *g, int phase);
const char *bz_game_schema_text(struct bz_game *g, int phase);

/* Check value against the JSON-schema subset the games use: type (object,
 * array, string, number, integer, boolean), properties, required,
 * additionalProperties false, enum (strings), minimum/maximum, maxLength,
 * items, minItems/maxItems. BZ_EINVAL with a message naming the field. */
int bz_json_schema_check(const struct cJSON *schema, const struct cJSON *value, struct bz_err *err);

/* Registry of games compiled in, plus those added with bz_game_register
 * (tests' games; at most 8; before any lookup). */
const struct bz_game_ops *bz_game_find(const char *name);
int bz_game_register(const struct bz_game_ops *ops);
size_t bz_game_count(void);
const struct bz_game_ops *bz_game_at(size_t i);

/* Index of a parameter by name, or -1. */
int bz_game_param_index(const struct bz_game_ops *ops, const char *name);
const struct bz_policy_ops *bz_game_policy(const struct bz_game_ops *ops, const char *name);

#endif
