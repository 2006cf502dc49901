/* item_allocation: n agents divide m indivisible items by the shared
 * negotiation protocol (negotiation.c). Each agent values the items with
 * non-negative integers summing to 100, drawn from env_seed so that the mean
 * pairwise cosine of the value vectors is `competition` (within 0.02;
 * infeasible targets are refused before any game starts). A proposal gives
 * every item to exactly one agent; utility = the sum of one's values of one's
 * items. This file holds the descriptors only. */
#include "games/negotiation_internal.h"

static const struct bz_param_desc params[BZ_ITEMS_N_PARAMS] = {
    {"n_agents", BZ_PARAM_INT, 3, 2, BZ_NEGO_MAX_AGENTS, NULL, 1, "number of negotiators"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0,
     "1: discussion, thinking and reflection texts; 0: no text anywhere"},
    {"max_rounds", BZ_PARAM_INT, 10, 1, 1000, NULL, 0, "rounds before the game ends without deal"},
    {"discussion_turns", BZ_PARAM_INT, 2, 0, 20, NULL, 0,
     "public discussion passes per round (each agent speaks once per pass); 0: no discussion"},
    {"thinking", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "1: a private thinking phase before proposals"},
    {"reflection", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "1: a private reflection phase after votes"},
    {"threshold", BZ_PARAM_STR, 0, 0, 0, "two_thirds", 0,
     "accepts needed: two_thirds (floor((2n+2)/3)), majority (floor(n/2)+1) or unanimity"},
    {"gamma", BZ_PARAM_NUM, 0.9, 0, 1, NULL, 0,
     "discount: an agreement in round r pays utility x gamma^(r-1)"},
    {"competition", BZ_PARAM_NUM, 0.5, 0, 1, NULL, 1,
     "target mean pairwise cosine of the agents' value vectors (1: identical, 0: disjoint)"},
    {"n_items", BZ_PARAM_INT, 0, 0, BZ_NEGO_MAX_ITEMS, NULL, 1,
     "number of items; 0: round(2.5 n_agents)"},
    {"nbs_node_budget", BZ_PARAM_INT, 200000, 0, 1e9, NULL, 1,
     "branch-and-bound nodes for the exact Nash bargaining solution (beyond: best found)"},
};

static const struct bz_table_desc *const tables[] = {
    &bz_items_values_table, &bz_items_proposals_table, &bz_items_votes_table,
    &bz_items_rounds_table, &bz_items_summary_table,   &bz_items_agents_table};

static int check(const struct bz_game_config *cfg, struct bz_err *err)
{
    return bz_neg_check(cfg, BZ_NEG_ITEMS, err);
}

static int create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                  struct bz_err *err)
{
    return bz_neg_create(cfg, BZ_NEG_ITEMS, rec, out, err);
}

static const struct bz_measure_desc measures[] = {
    {"achieved_cosine", "1",
     "achieved mean pairwise cosine similarity of the value vectors (target: competition)"},
};

const struct bz_game_ops bz_item_allocation_ops = {
    .name = "item_allocation",
    .params = params,
    .n_params = BZ_ITEMS_N_PARAMS,
    .phases = bz_neg_phase_names,
    .n_phases = BZ_NEG_N_PHASES,
    .policies = bz_neg_policies,
    .n_policies = BZ_NEG_N_POLICIES,
    .tables = tables,
    .n_tables = sizeof tables / sizeof tables[0],
    .measures = measures,
    .n_measures = sizeof measures / sizeof measures[0],
    .check = check,
    .create = create,
    .destroy = bz_neg_destroy,
    .step = bz_neg_step,
    .apply = bz_neg_apply,
    .outcome = bz_neg_outcome,
    .check_action = bz_neg_check_action,
    .safe_action = bz_neg_safe_action,
    .random_action = bz_neg_random_action,
    .observe = bz_neg_observe,
    .action_schema = bz_neg_action_schema,
    .parse_action = bz_neg_parse_action,
};
