/* treaty: n agents agree on a K-issue treaty by the shared negotiation
 * protocol (negotiation.c). Outcomes x_k are in [0, 1]; each agent has a
 * position p_k and weights w_k (summing to 1), drawn from env_seed with
 * position correlation rho (Gaussian copula), mean pairwise weight cosine
 * theta and a share lambda of complementary issues; utility = 100 sum_k w_k
 * (1 - |x_k - p_k|). This file holds the descriptors only. */
#include "games/negotiation_internal.h"

static const struct bz_param_desc params[BZ_TREATY_N_PARAMS] = {
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
    {"n_issues", BZ_PARAM_INT, 5, 1, BZ_NEGO_MAX_ISSUES, NULL, 1, "number of issues K"},
    {"rho", BZ_PARAM_NUM, 0.5, -1, 1, NULL, 1,
     "position correlation between agents (Gaussian copula; >= about -1/(n-1))"},
    {"theta", BZ_PARAM_NUM, 0.5, 0, 1, NULL, 1, "target mean pairwise cosine of weight vectors"},
    {"lambda", BZ_PARAM_NUM, 0, 0, 1, NULL, 1,
     "share of issues on which positions are complementary (odd agents mirrored)"},
};

static const struct bz_table_desc *const tables[] = {
    &bz_treaty_prefs_table,  &bz_treaty_proposals_table, &bz_treaty_votes_table,
    &bz_treaty_rounds_table, &bz_treaty_summary_table,   &bz_treaty_agents_table};

static int check(const struct bz_game_config *cfg, struct bz_err *err)
{
    return bz_neg_check(cfg, BZ_NEG_TREATY, err);
}

static int create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                  struct bz_err *err)
{
    return bz_neg_create(cfg, BZ_NEG_TREATY, rec, out, err);
}

static const struct bz_measure_desc measures[] = {
    {"achieved_rho", "1", "achieved position correlation (Spearman, around 0.5; target: rho)"},
    {"achieved_theta", "1", "achieved mean pairwise cosine of the weight vectors (target: theta)"},
    {"achieved_lambda", "1", "achieved share of complementary issues (target: lambda)"},
};

const struct bz_game_ops bz_treaty_ops = {
    .name = "treaty",
    .params = params,
    .n_params = BZ_TREATY_N_PARAMS,
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
