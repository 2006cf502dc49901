/* negotiation_internal: the state and shared protocol of the two negotiation
 * games, item_allocation (src/games/item_allocation.c) and treaty
 * (src/games/treaty.c), which differ only in their environment and the shape
 * of a proposal. The protocol, records and LLM view are in
 * src/games/negotiation.c, the heuristic agents in
 * src/agents/negotiation_agents.c, the mathematics in negotiation_math.h.
 * Nothing outside those and the tests should include it; the public faces are
 * bz_item_allocation_ops and bz_treaty_ops. */
#ifndef BAZAAR_NEGOTIATION_INTERNAL_H
#define BAZAAR_NEGOTIATION_INTERNAL_H

#include <stdint.h>

#include "bazaar/game.h"
#include "bazaar/records.h"
#include "games/negotiation_math.h"

extern const struct bz_game_ops bz_item_allocation_ops;
extern const struct bz_game_ops bz_treaty_ops;

enum bz_neg_kind { BZ_NEG_ITEMS, BZ_NEG_TREATY };

/* Phases (both games, same order): discussion turns (public text), thinking
 * (private text), proposals, votes, reflection (private text). */
enum bz_neg_phase {
    BZ_NEG_DISCUSS,
    BZ_NEG_THINK,
    BZ_NEG_PROPOSE,
    BZ_NEG_VOTE,
    BZ_NEG_REFLECT,
    BZ_NEG_N_PHASES
};

/* Parameters both games start with, in this order (indices into cfg->num). */
enum bz_neg_param {
    BZ_NEG_P_N_AGENTS,
    BZ_NEG_P_COMMUNICATION,
    BZ_NEG_P_MAX_ROUNDS,
    BZ_NEG_P_DISCUSSION_TURNS,
    BZ_NEG_P_THINKING,
    BZ_NEG_P_REFLECTION,
    BZ_NEG_P_THRESHOLD, /* STR */
    BZ_NEG_P_GAMMA,
    BZ_NEG_P_COMMON
};
/* item_allocation's own, after the common ones. */
enum bz_items_param {
    BZ_ITEMS_P_COMPETITION = BZ_NEG_P_COMMON,
    BZ_ITEMS_P_N_ITEMS,
    BZ_ITEMS_P_NBS_NODES,
    BZ_ITEMS_N_PARAMS
};
/* treaty's own. */
enum bz_treaty_param {
    BZ_TREATY_P_N_ISSUES = BZ_NEG_P_COMMON,
    BZ_TREATY_P_RHO,
    BZ_TREATY_P_THETA,
    BZ_TREATY_P_LAMBDA,
    BZ_TREATY_N_PARAMS
};

#define BZ_NEG_TEXT_MAX 1000 /* cap on one message, bytes (schema maxLength) */
#define BZ_NEG_PARETO_NODES 2000000L

/* The environment of one game: preferences from env_seed and what follows
 * from them (NBS, maximum welfare). Built by bz_neg_env_build (create, and
 * check to refuse infeasible targets). */
struct bz_neg_env {
    enum bz_neg_kind kind;
    int n, m;        /* agents; items (item_allocation) or issues (treaty) */
    int *values;     /* items: n * m */
    double *pos, *w; /* treaty: n * m each */
    struct bz_nego_items items;
    struct bz_nego_treaty treaty;
    double achieved[3]; /* items: cosine; treaty: rho, theta, lambda */
    int *nbs_alloc;     /* items: m */
    double *nbs_x;      /* treaty: m */
    double *nbs_u;      /* n */
    int nbs_exact;      /* 1: proven optimal (treaty: always, concave) */
    double max_welfare;
};

/* Items from cfg: n_items or round(2.5 n); the number of issues for treaty. */
int bz_neg_size(const struct bz_game_config *cfg, enum bz_neg_kind kind);
/* Build the environment (with_nbs 0: preferences only, for check). */
int bz_neg_env_build(const struct bz_game_config *cfg, enum bz_neg_kind kind, int with_nbs,
                     struct bz_neg_env *e, struct bz_err *err);
void bz_neg_env_free(struct bz_neg_env *e);
/* The shared part of check(): parameters, threshold rule, feasibility. */
int bz_neg_check(const struct bz_game_config *cfg, enum bz_neg_kind kind, struct bz_err *err);

struct bz_game {
    struct bz_game_base base; /* first */
    struct bz_neg_env env;
    int n, m, max_rounds, turns, thinking, reflection, threshold;
    enum bz_nego_rule rule;
    double gamma;
    struct bz_nego_view view;
    double *h_offer;
    unsigned char *h_accept;
    struct bz_nego_history hist;
    /* protocol state */
    int round;              /* 1-based */
    int stage;              /* next stage to run (negotiation.c) */
    int spoken;             /* discussion messages this round so far */
    const char **said;      /* this round's discussion: turns * n texts (NULL: none) */
    const char **thought;   /* this round's thinking per agent */
    const char **reflected; /* each agent's latest reflection (earlier rounds) */
    /* action slots (the open phase's) */
    int *prop_items;   /* n * m receivers */
    double *prop_x;    /* n * m outcomes */
    uint8_t *accept;   /* n * n: accept[p * n + v] voter v on proposer p */
    const char **text; /* n: text of a text phase (records arena or static) */
    uint8_t *filled;   /* n */
    /* last round's proposals and votes, for observe */
    int *last_items;
    double *last_x;
    uint8_t *last_accept;
    int have_last;
    double *offer; /* n * n scratch */
    /* outcome */
    int agreement_round; /* -1: none */
    int accepted_proposer;
    int max_accepts; /* of the deciding round */
    double *utility, *payoff;
    int finished;
    struct bz_nego_scratch scratch;
};

/* Shared ops (negotiation.c), wired into both games' ops tables. */
int bz_neg_create(const struct bz_game_config *cfg, enum bz_neg_kind kind, struct bz_records *rec,
                  struct bz_game **out, struct bz_err *err);
void bz_neg_destroy(struct bz_game *g);
int bz_neg_step(struct bz_game *g, int *state, struct bz_err *err);
int bz_neg_apply(struct bz_game *g, struct bz_err *err);
void bz_neg_outcome(const struct bz_game *g, struct bz_game_outcome *out, double *payoff);
int bz_neg_check_action(const struct bz_game *g, const struct bz_request *r, struct bz_err *err);
void bz_neg_safe_action(struct bz_game *g, const struct bz_request *r);
void bz_neg_random_action(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng);
int bz_neg_observe(const struct bz_game *g, const struct bz_request *r, struct cJSON *obs,
                   struct bz_err *err);
struct cJSON *bz_neg_action_schema(const struct bz_game *g, int phase);
int bz_neg_parse_action(struct bz_game *g, const struct bz_request *r, const struct cJSON *reply,
                        struct bz_err *err);

extern const char *const bz_neg_phase_names[BZ_NEG_N_PHASES];

/* Heuristic agents (src/agents/negotiation_agents.c): fair, greedy, zi,
 * reciprocal; the same four for both games. */
#define BZ_NEG_N_POLICIES 4 /* fair, greedy, zi, reciprocal */
extern const struct bz_policy_ops *const bz_neg_policies[BZ_NEG_N_POLICIES];

/* ---- tables --------------------------------------------------------------- */

#define BZ_NEG_VALUES_COLUMNS(X, R)                                                                \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, agent, I32, "", "seat")                                                                   \
    X(R, item, I32, "", "item index, 0-based")                                                     \
    X(R, value, I32, "utility", "the agent's value of the item (each agent's values sum to 100)")
BZ_TABLE_ROW(bz_neg_values_row, BZ_NEG_VALUES_COLUMNS);

#define BZ_NEG_PREFS_COLUMNS(X, R)                                                                 \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, agent, I32, "", "seat")                                                                   \
    X(R, issue, I32, "", "issue index, 0-based")                                                   \
    X(R, position, F64, "1", "the agent's ideal outcome on the issue, in [0, 1]")                  \
    X(R, weight, F64, "1", "the issue's weight for the agent (weights sum to 1)")
BZ_TABLE_ROW(bz_neg_prefs_row, BZ_NEG_PREFS_COLUMNS);

#define BZ_NEG_ITEM_PROPOSALS_COLUMNS(X, R)                                                        \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 1-based")                                                         \
    X(R, proposer, I32, "", "seat of the proposer")                                                \
    X(R, item, I32, "", "item index")                                                              \
    X(R, receiver, I32, "", "seat the proposal gives the item to")
BZ_TABLE_ROW(bz_neg_item_proposal_row, BZ_NEG_ITEM_PROPOSALS_COLUMNS);

#define BZ_NEG_TREATY_PROPOSALS_COLUMNS(X, R)                                                      \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 1-based")                                                         \
    X(R, proposer, I32, "", "seat of the proposer")                                                \
    X(R, issue, I32, "", "issue index")                                                            \
    X(R, value, F64, "1", "the proposed outcome on the issue, in [0, 1]")
BZ_TABLE_ROW(bz_neg_treaty_proposal_row, BZ_NEG_TREATY_PROPOSALS_COLUMNS);

#define BZ_NEG_VOTES_COLUMNS(X, R)                                                                 \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 1-based")                                                         \
    X(R, voter, I32, "", "seat of the voter")                                                      \
    X(R, proposer, I32, "", "seat of the proposer (never the voter: one's own counts as accept)")  \
    X(R, accept, U8, "", "1: the voter accepted the proposal")
BZ_TABLE_ROW(bz_neg_vote_row, BZ_NEG_VOTES_COLUMNS);

#define BZ_NEG_ROUNDS_COLUMNS(X, R)                                                                \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 1-based")                                                         \
    X(R, agreement, U8, "", "1: a proposal reached the threshold this round")                      \
    X(R, accepted_proposer, I32, "", "the first proposer (seat order) at threshold; -1: none")     \
    X(R, n_accepts, I32, "", "accepts of the best proposal of the round (own included)")           \
    X(R, threshold, I32, "", "accepts needed")                                                     \
    X(R, discount, F64, "1", "gamma^(round-1): what an agreement this round pays per utility")
BZ_TABLE_ROW(bz_neg_round_row, BZ_NEG_ROUNDS_COLUMNS);

/* One row per game: the outcome columns /games lacks (agreement, the measured
 * environment and the negotiation metrics). */
#define BZ_NEG_SUMMARY_COLUMNS(X, R)                                                               \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, agreement, U8, "", "1: the game ended with an agreement")                                 \
    X(R, agreement_round, I32, "", "round of the agreement; -1 if none")                           \
    X(R, rounds_to_consensus, I32, "", "rounds played until the agreement; -1 if none")            \
    X(R, rounds_played, I32, "", "rounds played")                                                  \
    X(R, accepted_proposer, I32, "", "seat whose proposal was agreed; -1 if none")                 \
    X(R, size, I32, "", "items (n_items, 0 resolved to round(2.5 n)) or issues of the game")       \
    X(R, welfare, F64, "utility", "sum of payoffs (discounted utilities)")                         \
    X(R, utility_welfare, F64, "utility", "sum of undiscounted utilities of the outcome")          \
    X(R, max_welfare, F64, "utility", "largest sum of utilities over all outcomes (exact)")        \
    X(R, nbs_product, F64, "utility^n", "product of utilities at the Nash bargaining solution")    \
    X(R, nbs_welfare, F64, "utility", "sum of utilities at the Nash bargaining solution")          \
    X(R, nbs_exact, U8, "",                                                                        \
      "1: the NBS is proven optimal; 0: best found within the node budget (approximation)")        \
    X(R, pareto_optimal, I32, "",                                                                  \
      "1: the agreement is Pareto optimal, 0: dominated, -1: undetermined or no agreement")        \
    X(R, gini, F64, "1", "Gini coefficient of the agents' undiscounted utilities")
BZ_TABLE_ROW(bz_neg_summary_row, BZ_NEG_SUMMARY_COLUMNS);

/* One row per agent per game: what /agents lacks. */
#define BZ_NEG_AGENT_COLUMNS(X, R)                                                                 \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, agent, I32, "", "seat")                                                                   \
    X(R, utility, F64, "utility", "undiscounted utility of the outcome (0 without agreement)")     \
    X(R, payoff, F64, "utility", "utility x gamma^(agreement_round - 1); 0 without agreement")     \
    X(R, utility_share, F64, "1", "payoff / sum of payoffs; NaN when the sum is 0")                \
    X(R, nbs_utility, F64, "utility", "the agent's utility at the Nash bargaining solution")       \
    X(R, exploitation, F64, "utility",                                                             \
      "utility - nbs_utility (> 0: got more than its NBS share, < 0: exploited)")
BZ_TABLE_ROW(bz_neg_agent_row, BZ_NEG_AGENT_COLUMNS);

/* Each game's tables (defined in negotiation.c): items' values or treaty's
 * preferences, proposals, votes, rounds, summary, agent_outcomes. */
extern const struct bz_table_desc bz_items_values_table, bz_items_proposals_table,
    bz_items_votes_table, bz_items_rounds_table, bz_items_summary_table, bz_items_agents_table;
extern const struct bz_table_desc bz_treaty_prefs_table, bz_treaty_proposals_table,
    bz_treaty_votes_table, bz_treaty_rounds_table, bz_treaty_summary_table, bz_treaty_agents_table;

#endif
