/* negotiation: the protocol item_allocation and treaty share, as game-platform
 * ops: environment from env_seed (negotiation_math.h's generators), the rounds'
 * state machine, admissibility, records, metrics and the LLM view. Each game's
 * file (item_allocation.c, treaty.c) holds only its descriptors. Never does
 * I/O but the transcript.
 *
 * Rounds 1..max_rounds. A round: discussion (discussion_turns passes; in each
 * pass every agent speaks once, in seat order, and sees what was said before
 * it; public) -> thinking (every agent, private text) -> proposals (every
 * agent a full outcome) -> votes (every agent accepts or rejects each other
 * proposal; one's own counts as accept) -> the first proposer, in seat order,
 * with at least `threshold` accepts is the agreement -> reflection (every
 * agent, private text). The game ends after the reflection of the round of
 * agreement or of round max_rounds. discussion_turns 0, thinking 0 and
 * reflection 0 switch their phases off; communication off switches off all
 * three (no text anywhere). Payoff: utility x gamma^(r-1) on an agreement in
 * round r, 0 without one. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "games/negotiation_internal.h"

const char *const bz_neg_phase_names[BZ_NEG_N_PHASES] = {"discuss", "think", "propose", "vote",
                                                         "reflect"};

BZ_TABLE_DEFINE(bz_items_values_table, "/item_allocation/values", bz_neg_values_row,
                BZ_NEG_VALUES_COLUMNS);
BZ_TABLE_DEFINE(bz_items_proposals_table, "/item_allocation/proposals", bz_neg_item_proposal_row,
                BZ_NEG_ITEM_PROPOSALS_COLUMNS);
BZ_TABLE_DEFINE(bz_items_votes_table, "/item_allocation/votes", bz_neg_vote_row,
                BZ_NEG_VOTES_COLUMNS);
BZ_TABLE_DEFINE(bz_items_rounds_table, "/item_allocation/rounds", bz_neg_round_row,
                BZ_NEG_ROUNDS_COLUMNS);
BZ_TABLE_DEFINE(bz_items_summary_table, "/item_allocation/summary", bz_neg_summary_row,
                BZ_NEG_SUMMARY_COLUMNS);
BZ_TABLE_DEFINE(bz_items_agents_table, "/item_allocation/agent_outcomes", bz_neg_agent_row,
                BZ_NEG_AGENT_COLUMNS);
BZ_TABLE_DEFINE(bz_treaty_prefs_table, "/treaty/preferences", bz_neg_prefs_row,
                BZ_NEG_PREFS_COLUMNS);
BZ_TABLE_DEFINE(bz_treaty_proposals_table, "/treaty/proposals", bz_neg_treaty_proposal_row,
                BZ_NEG_TREATY_PROPOSALS_COLUMNS);
BZ_TABLE_DEFINE(bz_treaty_votes_table, "/treaty/votes", bz_neg_vote_row, BZ_NEG_VOTES_COLUMNS);
BZ_TABLE_DEFINE(bz_treaty_rounds_table, "/treaty/rounds", bz_neg_round_row, BZ_NEG_ROUNDS_COLUMNS);
BZ_TABLE_DEFINE(bz_treaty_summary_table, "/treaty/summary", bz_neg_summary_row,
                BZ_NEG_SUMMARY_COLUMNS);
BZ_TABLE_DEFINE(bz_treaty_agents_table, "/treaty/agent_outcomes", bz_neg_agent_row,
                BZ_NEG_AGENT_COLUMNS);

/* rng purposes of env_seed's streams */
#define RNG_PREFS 0x6e65676f70726566ULL /* preferences */
#define RNG_NBS 0x6e65676f6e627321ULL   /* NBS local-search starts */

enum stage { S_DISCUSS, S_THINK, S_PROPOSE, S_VOTE, S_REFLECT, S_NEXT, S_DONE };

static int is_items(const struct bz_game *g)
{
    return g->env.kind == BZ_NEG_ITEMS;
}

/* ---- environment ------------------------------------------------------------ */

int bz_neg_size(const struct bz_game_config *cfg, enum bz_neg_kind kind)
{
    if (kind == BZ_NEG_TREATY)
        return (int)cfg->num[BZ_TREATY_P_N_ISSUES];
    int m = (int)cfg->num[BZ_ITEMS_P_N_ITEMS];
    return m > 0 ? m : bz_nego_items_default_m(cfg->n_agents);
}

void bz_neg_env_free(struct bz_neg_env *e)
{
    free(e->values);
    free(e->pos);
    free(e->w);
    free(e->nbs_alloc);
    free(e->nbs_x);
    free(e->nbs_u);
    memset(e, 0, sizeof *e);
}

int bz_neg_env_build(const struct bz_game_config *cfg, enum bz_neg_kind kind, int with_nbs,
                     struct bz_neg_env *e, struct bz_err *err)
{
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->n = cfg->n_agents;
    e->m = bz_neg_size(cfg, kind);
    int n = e->n, m = e->m, rc = BZ_OK;
    if (n < 2 || n > BZ_NEGO_MAX_AGENTS)
        return bz_err_set(err, BZ_EINVAL, "n_agents: expected an integer in [2, %d], got %d",
                          BZ_NEGO_MAX_AGENTS, n);
    size_t nm = (size_t)n * (size_t)m;
    struct bz_rng r;
    bz_rng_init(&r, cfg->env_seed, RNG_PREFS);
    e->nbs_u = calloc((size_t)n, sizeof *e->nbs_u);
    e->achieved[0] = e->achieved[1] = e->achieved[2] = NAN;
    if (kind == BZ_NEG_ITEMS) {
        e->values = calloc(nm ? nm : 1, sizeof *e->values);
        e->nbs_alloc = calloc((size_t)(m > 0 ? m : 1), sizeof *e->nbs_alloc);
        if (!e->values || !e->nbs_alloc || !e->nbs_u)
            goto nomem;
        if ((rc = bz_nego_items_generate(n, m, cfg->num[BZ_ITEMS_P_COMPETITION], &r, e->values,
                                         &e->achieved[0], err)))
            goto fail;
        e->items = (struct bz_nego_items){n, m, e->values};
        if (with_nbs) {
            struct bz_rng rn;
            bz_rng_init(&rn, cfg->env_seed, RNG_NBS);
            if ((rc = bz_nego_items_nbs(&e->items, (long)cfg->num[BZ_ITEMS_P_NBS_NODES], &rn,
                                        e->nbs_alloc, e->nbs_u, &e->nbs_exact, err)))
                goto fail;
            e->max_welfare = bz_nego_items_max_welfare(&e->items, NULL);
        }
    } else {
        e->pos = calloc(nm ? nm : 1, sizeof *e->pos);
        e->w = calloc(nm ? nm : 1, sizeof *e->w);
        e->nbs_x = calloc((size_t)(m > 0 ? m : 1), sizeof *e->nbs_x);
        if (!e->pos || !e->w || !e->nbs_x || !e->nbs_u)
            goto nomem;
        if ((rc = bz_nego_treaty_generate(n, m, cfg->num[BZ_TREATY_P_RHO],
                                          cfg->num[BZ_TREATY_P_THETA], cfg->num[BZ_TREATY_P_LAMBDA],
                                          &r, e->pos, e->w, &e->achieved[0], &e->achieved[1],
                                          &e->achieved[2], err)))
            goto fail;
        e->treaty = (struct bz_nego_treaty){n, m, e->pos, e->w};
        if (with_nbs) {
            bz_nego_treaty_nbs(&e->treaty, e->nbs_x, e->nbs_u);
            e->nbs_exact = 1; /* concave: the local maximum found is global */
            e->max_welfare = bz_nego_treaty_max_welfare(&e->treaty, NULL);
        }
    }
    return BZ_OK;
nomem:
    rc = bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory for %d agents x %d", n, m);
fail:
    bz_neg_env_free(e);
    return rc;
}

static int check_params(const struct bz_game_config *cfg, struct bz_err *err)
{
    const struct bz_game_ops *ops = cfg->ops;
    for (size_t i = 0; i < ops->n_params; i++) {
        const struct bz_param_desc *p = &ops->params[i];
        if (p->kind == BZ_PARAM_STR)
            continue;
        double v = cfg->num[i];
        if (!isfinite(v) || v < p->min || v > p->max)
            return bz_err_set(err, BZ_EINVAL, "%s: expected a number in [%g, %g], got %g", p->name,
                              p->min, p->max, v);
        if (p->kind == BZ_PARAM_INT && v != floor(v))
            return bz_err_set(err, BZ_EINVAL, "%s: expected an integer, got %g", p->name, v);
    }
    enum bz_nego_rule rule;
    const char *th = cfg->str[BZ_NEG_P_THRESHOLD] ? cfg->str[BZ_NEG_P_THRESHOLD]
                                                  : ops->params[BZ_NEG_P_THRESHOLD].def_str;
    if (bz_nego_rule_parse(th, &rule, NULL))
        return bz_err_set(err, BZ_EINVAL,
                          "threshold: expected \"two_thirds\", \"majority\" or \"unanimity\", "
                          "got \"%s\"",
                          th);
    return BZ_OK;
}

int bz_neg_check(const struct bz_game_config *cfg, enum bz_neg_kind kind, struct bz_err *err)
{
    int rc = check_params(cfg, err);
    if (rc)
        return rc;
    struct bz_neg_env e;
    rc = bz_neg_env_build(cfg, kind, 0, &e, err);
    if (!rc)
        bz_neg_env_free(&e);
    return rc;
}

/* ---- create / destroy ------------------------------------------------------- */

void bz_neg_destroy(struct bz_game *g)
{
    if (!g)
        return;
    bz_neg_env_free(&g->env);
    free(g->h_offer);
    free(g->h_accept);
    free(g->said);
    free(g->thought);
    free(g->reflected);
    free(g->prop_items);
    free(g->prop_x);
    free(g->accept);
    free(g->text);
    free(g->filled);
    free(g->last_items);
    free(g->last_x);
    free(g->last_accept);
    free(g->offer);
    free(g->utility);
    free(g->payoff);
    bz_game_base_cleanup(&g->base);
    free(g);
}

static int env_rows(struct bz_game *g)
{
    const struct bz_neg_env *e = &g->env;
    int64_t id = g->base.cfg->game_id;
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->m; k++) {
            if (is_items(g)) {
                struct bz_neg_values_row *row = bz_records_add(g->base.rec, &bz_items_values_table);
                if (!row)
                    return BZ_ENOMEM;
                *row = (struct bz_neg_values_row){id, i, k, e->values[i * g->m + k]};
            } else {
                struct bz_neg_prefs_row *row = bz_records_add(g->base.rec, &bz_treaty_prefs_table);
                if (!row)
                    return BZ_ENOMEM;
                *row =
                    (struct bz_neg_prefs_row){id, i, k, e->pos[i * g->m + k], e->w[i * g->m + k]};
            }
        }
    return BZ_OK;
}

int bz_neg_create(const struct bz_game_config *cfg, enum bz_neg_kind kind, struct bz_records *rec,
                  struct bz_game **out, struct bz_err *err)
{
    *out = NULL;
    struct bz_game *g = calloc(1, sizeof *g);
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory");
    int rc = bz_game_base_init(&g->base, cfg, rec, err);
    if (rc) {
        free(g);
        return rc;
    }
    if ((rc = check_params(cfg, err)) || (rc = bz_neg_env_build(cfg, kind, 1, &g->env, err))) {
        bz_neg_destroy(g);
        return rc;
    }
    int n = g->n = cfg->n_agents, m = g->m = g->env.m;
    g->max_rounds = (int)cfg->num[BZ_NEG_P_MAX_ROUNDS];
    g->turns = (int)cfg->num[BZ_NEG_P_DISCUSSION_TURNS];
    g->thinking = cfg->num[BZ_NEG_P_THINKING] != 0;
    g->reflection = cfg->num[BZ_NEG_P_REFLECTION] != 0;
    g->gamma = cfg->num[BZ_NEG_P_GAMMA];
    bz_nego_rule_parse(cfg->str[BZ_NEG_P_THRESHOLD] ? cfg->str[BZ_NEG_P_THRESHOLD] : "two_thirds",
                       &g->rule, NULL);
    g->threshold = bz_nego_threshold(n, g->rule);
    size_t nn = (size_t)n * (size_t)n, nm = (size_t)n * (size_t)m;
    size_t hr = (size_t)g->max_rounds * nn;
    g->h_offer = malloc(hr * sizeof *g->h_offer);
    g->h_accept = malloc(hr);
    g->said = calloc((size_t)(g->turns > 0 ? g->turns : 1) * (size_t)n, sizeof *g->said);
    g->thought = calloc((size_t)n, sizeof *g->thought);
    g->reflected = calloc((size_t)n, sizeof *g->reflected);
    g->accept = calloc(nn, 1);
    g->last_accept = calloc(nn, 1);
    g->text = calloc((size_t)n, sizeof *g->text);
    g->filled = calloc((size_t)n, 1);
    g->offer = calloc(nn, sizeof *g->offer);
    g->utility = calloc((size_t)n, sizeof *g->utility);
    g->payoff = calloc((size_t)n, sizeof *g->payoff);
    if (kind == BZ_NEG_ITEMS) {
        g->prop_items = calloc(nm, sizeof *g->prop_items);
        g->last_items = calloc(nm, sizeof *g->last_items);
    } else {
        g->prop_x = calloc(nm, sizeof *g->prop_x);
        g->last_x = calloc(nm, sizeof *g->last_x);
    }
    if (!g->h_offer || !g->h_accept || !g->said || !g->thought || !g->reflected || !g->accept ||
        !g->last_accept || !g->text || !g->filled || !g->offer || !g->utility || !g->payoff ||
        (kind == BZ_NEG_ITEMS ? !g->prop_items || !g->last_items : !g->prop_x || !g->last_x)) {
        bz_neg_destroy(g);
        return bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory");
    }
    bz_nego_history_init(&g->hist, n, g->max_rounds, g->h_offer, g->h_accept);
    g->view = (struct bz_nego_view){.threshold = g->threshold,
                                    .max_rounds = g->max_rounds,
                                    .gamma = g->gamma,
                                    .nbs_u = g->env.nbs_u};
    if (kind == BZ_NEG_ITEMS) {
        g->view.items = &g->env.items;
        g->view.items_nbs = g->env.nbs_alloc;
    } else {
        g->view.treaty = &g->env.treaty;
        g->view.treaty_nbs = g->env.nbs_x;
    }
    g->round = 1;
    g->stage = S_DISCUSS;
    g->agreement_round = -1;
    g->accepted_proposer = -1;
    if (env_rows(g)) {
        bz_neg_destroy(g);
        return bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory");
    }
    if (g->base.tx)
        fprintf(g->base.tx, "== %s: %d agents, %d %s, threshold %d (%s), gamma %g\n",
                cfg->ops->name, n, m, kind == BZ_NEG_ITEMS ? "items" : "issues", g->threshold,
                bz_nego_rule_name(g->rule), g->gamma);
    *out = g;
    return BZ_OK;
}

/* ---- the state machine ------------------------------------------------------ */

static int ask_all(struct bz_game *g, int phase)
{
    bz_game_ask_phase(g, phase);
    for (int i = 0; i < g->n; i++) {
        g->filled[i] = 0;
        g->text[i] = NULL;
        if (bz_game_ask(g, i, 0))
            return BZ_ENOMEM;
    }
    return BZ_OK;
}

/* The game is over: outcome metrics and the summary rows. */
static int finish(struct bz_game *g)
{
    const struct bz_neg_env *e = &g->env;
    int n = g->n;
    int64_t id = g->base.cfg->game_id;
    int pareto = -1;
    if (g->agreement_round > 0) {
        int p = g->accepted_proposer;
        if (is_items(g))
            pareto = bz_nego_items_pareto(&e->items, g->last_items + (size_t)p * g->m,
                                          BZ_NEG_PARETO_NODES);
        else
            pareto = bz_nego_treaty_pareto(&e->treaty, g->last_x + (size_t)p * g->m);
    }
    bz_nego_payoffs(n, g->utility, g->agreement_round, g->gamma, g->payoff);
    double share[BZ_NEGO_MAX_AGENTS];
    bz_nego_utility_share(n, g->payoff, share);
    double wel = 0, uwel = 0, nbs_prod = 1, nbs_wel = 0;
    for (int i = 0; i < n; i++) {
        wel += g->payoff[i];
        uwel += g->utility[i];
        nbs_prod *= e->nbs_u[i];
        nbs_wel += e->nbs_u[i];
    }
    struct bz_neg_summary_row *s = bz_records_add(
        g->base.rec, is_items(g) ? &bz_items_summary_table : &bz_treaty_summary_table);
    if (!s)
        return BZ_ENOMEM;
    *s = (struct bz_neg_summary_row){
        .game_id = id,
        .agreement = g->agreement_round > 0,
        .agreement_round = g->agreement_round,
        .rounds_to_consensus = g->agreement_round,
        .rounds_played = g->round,
        .accepted_proposer = g->accepted_proposer,
        .size = g->m,
        .welfare = wel,
        .utility_welfare = uwel,
        .max_welfare = e->max_welfare,
        .nbs_product = nbs_prod,
        .nbs_welfare = nbs_wel,
        .nbs_exact = (uint8_t)e->nbs_exact,
        .pareto_optimal = pareto,
        .gini = bz_nego_gini(n, g->utility),
    };
    for (int i = 0; i < n; i++) {
        struct bz_neg_agent_row *a = bz_records_add(
            g->base.rec, is_items(g) ? &bz_items_agents_table : &bz_treaty_agents_table);
        if (!a)
            return BZ_ENOMEM;
        *a = (struct bz_neg_agent_row){
            id, i, g->utility[i], g->payoff[i], share[i], e->nbs_u[i], g->utility[i] - e->nbs_u[i]};
    }
    if (g->base.tx)
        fprintf(g->base.tx, "== end after round %d: %s, welfare %.2f of max %.2f\n", g->round,
                g->agreement_round > 0 ? "agreement" : "no agreement", wel, e->max_welfare);
    g->finished = 1;
    return BZ_OK;
}

int bz_neg_step(struct bz_game *g, int *state, struct bz_err *err)
{
    int comm = g->base.communication;
    g->base.round = g->round;
    for (;;) {
        switch (g->stage) {
        case S_DISCUSS:
            if (!comm || g->spoken >= g->turns * g->n) {
                g->stage = S_THINK;
                continue;
            }
            bz_game_ask_phase(g, BZ_NEG_DISCUSS);
            {
                int i = g->spoken % g->n;
                g->filled[i] = 0;
                g->text[i] = NULL;
                if (bz_game_ask(g, i, 0))
                    goto nomem;
            }
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        case S_THINK:
            if (!comm || !g->thinking) {
                g->stage = S_PROPOSE;
                continue;
            }
            if (ask_all(g, BZ_NEG_THINK))
                goto nomem;
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        case S_PROPOSE:
            if (ask_all(g, BZ_NEG_PROPOSE))
                goto nomem;
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        case S_VOTE:
            memset(g->accept, 0, (size_t)g->n * (size_t)g->n);
            if (ask_all(g, BZ_NEG_VOTE))
                goto nomem;
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        case S_REFLECT:
            if (!comm || !g->reflection) {
                g->stage = S_NEXT;
                continue;
            }
            if (ask_all(g, BZ_NEG_REFLECT))
                goto nomem;
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        case S_NEXT:
            if (g->agreement_round > 0 || g->round >= g->max_rounds) {
                if (finish(g))
                    goto nomem;
                g->stage = S_DONE;
                continue;
            }
            g->round++;
            g->base.round = g->round;
            g->spoken = 0;
            for (int i = 0; i < g->turns * g->n; i++)
                g->said[i] = NULL;
            for (int i = 0; i < g->n; i++)
                g->thought[i] = NULL;
            g->stage = S_DISCUSS;
            continue;
        default: *state = BZ_STEP_DONE; return BZ_OK;
        }
    }
nomem:
    return bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory");
}

static int apply_votes(struct bz_game *g)
{
    int n = g->n, m = g->m;
    int64_t id = g->base.cfg->game_id;
    const struct bz_table_desc *pt =
        is_items(g) ? &bz_items_proposals_table : &bz_treaty_proposals_table;
    const struct bz_table_desc *vt = is_items(g) ? &bz_items_votes_table : &bz_treaty_votes_table;
    for (int p = 0; p < n; p++) {
        for (int k = 0; k < m; k++) {
            if (is_items(g)) {
                struct bz_neg_item_proposal_row *row = bz_records_add(g->base.rec, pt);
                if (!row)
                    return BZ_ENOMEM;
                *row =
                    (struct bz_neg_item_proposal_row){id, g->round, p, k, g->prop_items[p * m + k]};
            } else {
                struct bz_neg_treaty_proposal_row *row = bz_records_add(g->base.rec, pt);
                if (!row)
                    return BZ_ENOMEM;
                *row =
                    (struct bz_neg_treaty_proposal_row){id, g->round, p, k, g->prop_x[p * m + k]};
            }
        }
    }
    for (int v = 0; v < n; v++)
        for (int p = 0; p < n; p++) {
            if (p == v)
                continue;
            struct bz_neg_vote_row *row = bz_records_add(g->base.rec, vt);
            if (!row)
                return BZ_ENOMEM;
            *row = (struct bz_neg_vote_row){id, g->round, v, p, g->accept[p * n + v]};
        }
    int best = 0;
    int winner = bz_nego_agreement(n, g->accept, NULL, g->threshold, &best);
    /* the history the policies read: this round's offers and votes */
    if (is_items(g))
        bz_nego_items_offers(&g->env.items, g->prop_items, NULL, g->offer);
    else
        bz_nego_treaty_offers(&g->env.treaty, g->prop_x, NULL, g->offer);
    for (int p = 0; p < n; p++)
        g->accept[p * n + p] = 1;
    bz_nego_history_push(&g->hist, g->offer, g->accept);
    memcpy(g->last_accept, g->accept, (size_t)n * (size_t)n);
    if (is_items(g))
        memcpy(g->last_items, g->prop_items, (size_t)n * (size_t)m * sizeof *g->last_items);
    else
        memcpy(g->last_x, g->prop_x, (size_t)n * (size_t)m * sizeof *g->last_x);
    g->have_last = 1;
    g->max_accepts = best;
    struct bz_neg_round_row *rr =
        bz_records_add(g->base.rec, is_items(g) ? &bz_items_rounds_table : &bz_treaty_rounds_table);
    if (!rr)
        return BZ_ENOMEM;
    *rr = (struct bz_neg_round_row){id,
                                    g->round,
                                    winner >= 0,
                                    winner,
                                    best,
                                    g->threshold,
                                    bz_nego_discount(g->gamma, g->round)};
    if (winner >= 0) {
        g->agreement_round = g->round;
        g->accepted_proposer = winner;
        for (int i = 0; i < n; i++)
            g->utility[i] = g->offer[winner * n + i];
    }
    for (int p = 0; g->base.tx && p < n; p++) {
        int acc = 0;
        for (int v = 0; v < n; v++)
            acc += g->accept[p * n + v] != 0;
        fprintf(g->base.tx, "round %d: a%d proposes", g->round, p);
        for (int k = 0; k < m && k < 32; k++)
            if (is_items(g))
                fprintf(g->base.tx, " %d", g->prop_items[p * m + k]);
            else
                fprintf(g->base.tx, " %.3f", g->prop_x[p * m + k]);
        fprintf(g->base.tx, "%s; utilities", m > 32 ? " ..." : "");
        for (int j = 0; j < n; j++)
            fprintf(g->base.tx, " %.1f", g->offer[p * n + j]);
        fprintf(g->base.tx, "; %d accepts\n", acc);
    }
    if (g->base.tx)
        fprintf(g->base.tx, "round %d: best proposal %d accepts of %d needed%s\n", g->round, best,
                g->threshold, winner >= 0 ? ": agreement" : "");
    return BZ_OK;
}

int bz_neg_apply(struct bz_game *g, struct bz_err *err)
{
    int phase = g->base.phase, rc = BZ_OK;
    switch (phase) {
    case BZ_NEG_DISCUSS: {
        int i = g->spoken % g->n;
        g->said[g->spoken] = g->text[i];
        bz_game_message_in(g, phase, i, -1, g->round, -1, "public", g->text[i]);
        if (g->base.tx && g->text[i] && g->base.communication)
            fprintf(g->base.tx, "round %d: a%d says: %s\n", g->round, i, g->text[i]);
        g->spoken++;
        return BZ_OK;
    }
    case BZ_NEG_THINK:
    case BZ_NEG_REFLECT:
        for (int i = 0; i < g->n; i++) {
            if (phase == BZ_NEG_THINK)
                g->thought[i] = g->text[i];
            else
                g->reflected[i] = g->text[i];
            bz_game_message_in(g, phase, i, i, g->round, -1, "private", g->text[i]);
        }
        g->stage = phase == BZ_NEG_THINK ? S_PROPOSE : S_NEXT;
        return BZ_OK;
    case BZ_NEG_PROPOSE: g->stage = S_VOTE; return BZ_OK;
    case BZ_NEG_VOTE:
        if ((rc = apply_votes(g)))
            return bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory");
        g->stage = S_REFLECT;
        return BZ_OK;
    default: return bz_err_set(err, BZ_EINTERNAL, "negotiation: apply in phase %d", phase);
    }
}

void bz_neg_outcome(const struct bz_game *g, struct bz_game_outcome *out, double *payoff)
{
    double wel = 0;
    for (int i = 0; i < g->n; i++) {
        payoff[i] = g->payoff[i];
        wel += g->payoff[i];
    }
    out->turns_played = g->round;
    out->welfare = wel;
    out->max_welfare = g->env.max_welfare;
    out->efficiency = g->env.max_welfare > 0 ? wel / g->env.max_welfare : NAN;
    out->n_invalid = g->base.n_invalid;
    out->n_fallback = g->base.n_fallback;
    /* the achieved targets, in the order of the game's ops->measures:
     * item_allocation's cosine; treaty's rho, theta, lambda */
    for (int k = 0; k < 3; k++)
        out->measures[k] = g->env.achieved[k];
}

/* ---- actions ------------------------------------------------------------------ */

int bz_neg_check_action(const struct bz_game *g, const struct bz_request *r, struct bz_err *err)
{
    int i = r->agent;
    if (!g->filled[i])
        return bz_err_set(err, BZ_EINVAL, "%s: missing", bz_neg_phase_names[r->phase]);
    if (r->phase != BZ_NEG_PROPOSE)
        return BZ_OK;
    for (int k = 0; k < g->m; k++) {
        if (is_items(g)) {
            int v = g->prop_items[i * g->m + k];
            if (v < 0 || v >= g->n)
                return bz_err_set(err, BZ_EINVAL,
                                  "allocation[%d]: expected an agent id in [0, %d], got %d", k,
                                  g->n - 1, v);
        } else {
            double x = g->prop_x[i * g->m + k];
            if (!(x >= 0 && x <= 1))
                return bz_err_set(err, BZ_EINVAL,
                                  "outcome[%d]: expected a number in [0, 1], got %g", k, x);
        }
    }
    return BZ_OK;
}

/* The fallback: the Nash bargaining proposal, reject every other proposal, no
 * text. */
void bz_neg_safe_action(struct bz_game *g, const struct bz_request *r)
{
    int i = r->agent, n = g->n, m = g->m;
    g->text[i] = NULL;
    if (r->phase == BZ_NEG_PROPOSE) {
        if (is_items(g))
            memcpy(g->prop_items + (size_t)i * m, g->env.nbs_alloc, (size_t)m * sizeof(int));
        else
            memcpy(g->prop_x + (size_t)i * m, g->env.nbs_x, (size_t)m * sizeof(double));
    } else if (r->phase == BZ_NEG_VOTE) {
        for (int p = 0; p < n; p++)
            g->accept[p * n + i] = 0;
    }
    g->filled[i] = 1;
}

void bz_neg_random_action(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    int i = r->agent, n = g->n, m = g->m;
    g->text[i] = NULL;
    if (r->phase == BZ_NEG_PROPOSE) {
        void *out = is_items(g) ? (void *)(g->prop_items + (size_t)i * m)
                                : (void *)(g->prop_x + (size_t)i * m);
        bz_nego_propose_random(&g->view, rng, out);
    } else if (r->phase == BZ_NEG_VOTE) {
        for (int p = 0; p < n; p++)
            g->accept[p * n + i] = p == i ? 1 : (uint8_t)bz_nego_vote_random(rng);
    }
    g->filled[i] = 1;
}

/* ---- the LLM view ------------------------------------------------------------- */

static cJSON *proposal_json(const struct bz_game *g, const int *items, const double *x)
{
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; a && k < g->m; k++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(items ? items[k] : round(x[k] * 1e4) / 1e4));
    return a;
}

static double round2(double x)
{
    return round(x * 100) / 100;
}

int bz_neg_observe(const struct bz_game *g, const struct bz_request *r, cJSON *obs,
                   struct bz_err *err)
{
    int n = g->n, m = g->m, self = r->agent;
    cJSON *pub = cJSON_AddObjectToObject(obs, "public");
    cJSON *priv = cJSON_AddObjectToObject(obs, "private");
    cJSON *meta = cJSON_AddObjectToObject(obs, "meta");
    if (!pub || !priv || !meta)
        goto nomem;
    cJSON_AddNumberToObject(meta, "agent", self);
    cJSON_AddNumberToObject(meta, "n_agents", n);
    cJSON_AddNumberToObject(meta, "turn", g->round);
    cJSON_AddNumberToObject(meta, "round", g->round);
    cJSON_AddNumberToObject(meta, "max_rounds", g->max_rounds);
    cJSON_AddBoolToObject(meta, "communication", g->base.communication);
    cJSON_AddStringToObject(meta, "phase", bz_neg_phase_names[r->phase]);

    cJSON_AddNumberToObject(pub, is_items(g) ? "n_items" : "n_issues", m);
    cJSON_AddNumberToObject(pub, "threshold", g->threshold);
    cJSON_AddStringToObject(pub, "threshold_rule", bz_nego_rule_name(g->rule));
    cJSON_AddNumberToObject(pub, "gamma", g->gamma);
    cJSON_AddNumberToObject(pub, "discount",
                            round(bz_nego_discount(g->gamma, g->round) * 1e4) / 1e4);
    cJSON_AddNumberToObject(pub, "rounds_left", g->max_rounds - g->round);
    /* this round's discussion so far */
    cJSON *said = cJSON_AddArrayToObject(pub, "discussion");
    if (!said)
        goto nomem;
    for (int t = 0; g->base.communication && t < g->spoken; t++) {
        if (!g->said[t])
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(said, o);
        cJSON_AddNumberToObject(o, "from", t % n);
        cJSON_AddStringToObject(o, "text", g->said[t]);
    }
    /* the proposals on the table (vote phase: this round's; else the last
     * round's, with their accepts) */
    cJSON *props = cJSON_AddArrayToObject(pub, "proposals");
    cJSON_AddNumberToObject(pub, "proposals_round",
                            r->phase == BZ_NEG_VOTE ? g->round
                            : g->have_last          ? g->round - 1
                                                    : 0);
    if (!props)
        goto nomem;
    int live = r->phase == BZ_NEG_VOTE;
    if (live || g->have_last) {
        const int *items = live ? g->prop_items : g->last_items;
        const double *xs = live ? g->prop_x : g->last_x;
        for (int p = 0; p < n; p++) {
            const int *it = items ? items + (size_t)p * m : NULL;
            const double *xp = xs ? xs + (size_t)p * m : NULL;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(props, o);
            cJSON_AddNumberToObject(o, "proposer", p);
            cJSON_AddItemToObject(o, is_items(g) ? "allocation" : "outcome",
                                  proposal_json(g, it, xp));
            double u = is_items(g) ? bz_nego_items_utility(&g->env.items, it, self)
                                   : bz_nego_treaty_utility(&g->env.treaty, xp, self);
            cJSON_AddNumberToObject(o, "your_utility", round2(u));
            if (!live) {
                int acc = 0;
                for (int v = 0; v < n; v++)
                    acc += g->last_accept[p * n + v] != 0;
                cJSON_AddNumberToObject(o, "accepts", acc);
                cJSON_AddBoolToObject(o, "you_accepted", g->last_accept[p * n + self] != 0);
            }
        }
    }
    /* every past round, compactly: per proposal the agent's utility and the
     * accepts it drew */
    cJSON *hist = cJSON_AddArrayToObject(pub, "history");
    if (!hist)
        goto nomem;
    for (int t = 0; t < g->hist.rounds; t++)
        for (int p = 0; p < n; p++) {
            int acc = 0;
            for (int v = 0; v < n; v++)
                acc += g->hist.accept[((size_t)t * n + p) * n + v] != 0;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(hist, o);
            cJSON_AddNumberToObject(o, "round", t + 1);
            cJSON_AddNumberToObject(o, "proposer", p);
            cJSON_AddNumberToObject(o, "your_utility",
                                    round2(g->hist.offer[((size_t)t * n + p) * n + self]));
            cJSON_AddNumberToObject(o, "accepts", acc);
        }
    /* private: preferences and own thinking */
    if (is_items(g)) {
        cJSON *v = cJSON_CreateIntArray(g->env.values + (size_t)self * m, m);
        if (!v)
            goto nomem;
        cJSON_AddItemToObject(priv, "values", v);
    } else {
        cJSON *pp = cJSON_AddArrayToObject(priv, "positions");
        cJSON *ww = cJSON_AddArrayToObject(priv, "weights");
        if (!pp || !ww)
            goto nomem;
        for (int k = 0; k < m; k++) {
            cJSON_AddItemToArray(pp,
                                 cJSON_CreateNumber(round(g->env.pos[self * m + k] * 1e4) / 1e4));
            cJSON_AddItemToArray(ww, cJSON_CreateNumber(round(g->env.w[self * m + k] * 1e4) / 1e4));
        }
    }
    cJSON_AddStringToObject(priv, "your_thinking",
                            g->base.communication && g->thought[self] ? g->thought[self] : "");
    cJSON_AddStringToObject(priv, "your_last_reflection",
                            g->base.communication && g->reflected[self] ? g->reflected[self] : "");
    if (cJSON_IsInvalid(pub))
        goto nomem;
    return BZ_OK;
nomem:
    return bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory building an observation");
}

static cJSON *object_schema(cJSON **props, const char *required)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "object");
    cJSON_AddBoolToObject(s, "additionalProperties", 0);
    cJSON *req = cJSON_AddArrayToObject(s, "required");
    cJSON_AddItemToArray(req, cJSON_CreateString(required));
    *props = cJSON_AddObjectToObject(s, "properties");
    return s;
}

cJSON *bz_neg_action_schema(const struct bz_game *g, int phase)
{
    cJSON *props, *s, *a, *it;
    switch (phase) {
    case BZ_NEG_DISCUSS:
    case BZ_NEG_THINK:
    case BZ_NEG_REFLECT:
        if (!g->base.communication)
            return NULL;
        s = object_schema(&props, "text");
        a = cJSON_AddObjectToObject(props, "text");
        cJSON_AddStringToObject(a, "type", "string");
        cJSON_AddNumberToObject(a, "maxLength", BZ_NEG_TEXT_MAX);
        return s;
    case BZ_NEG_PROPOSE:
        s = object_schema(&props, is_items(g) ? "allocation" : "outcome");
        a = cJSON_AddObjectToObject(props, is_items(g) ? "allocation" : "outcome");
        cJSON_AddStringToObject(a, "type", "array");
        cJSON_AddNumberToObject(a, "minItems", g->m);
        cJSON_AddNumberToObject(a, "maxItems", g->m);
        it = cJSON_AddObjectToObject(a, "items");
        cJSON_AddStringToObject(it, "type", is_items(g) ? "integer" : "number");
        cJSON_AddNumberToObject(it, "minimum", 0);
        cJSON_AddNumberToObject(it, "maximum", is_items(g) ? g->n - 1 : 1);
        return s;
    case BZ_NEG_VOTE:
        s = object_schema(&props, "accept");
        a = cJSON_AddObjectToObject(props, "accept");
        cJSON_AddStringToObject(a, "type", "array");
        cJSON_AddNumberToObject(a, "minItems", g->n);
        cJSON_AddNumberToObject(a, "maxItems", g->n);
        it = cJSON_AddObjectToObject(a, "items");
        cJSON_AddStringToObject(it, "type", "boolean");
        return s;
    default: return NULL;
    }
}

int bz_neg_parse_action(struct bz_game *g, const struct bz_request *r, const cJSON *reply,
                        struct bz_err *err)
{
    int i = r->agent, n = g->n, m = g->m;
    const cJSON *a;
    switch (r->phase) {
    case BZ_NEG_DISCUSS:
    case BZ_NEG_THINK:
    case BZ_NEG_REFLECT:
        a = cJSON_GetObjectItemCaseSensitive(reply, "text");
        if (!cJSON_IsString(a))
            return bz_err_set(err, BZ_EINVAL, "text: expected a string");
        g->text[i] = a->valuestring[0] ? bz_records_strdup(g->base.rec, a->valuestring) : NULL;
        if (a->valuestring[0] && !g->text[i])
            return bz_err_set(err, BZ_ENOMEM, "text: out of memory");
        break;
    case BZ_NEG_PROPOSE: {
        const char *key = is_items(g) ? "allocation" : "outcome";
        a = cJSON_GetObjectItemCaseSensitive(reply, key);
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != m)
            return bz_err_set(err, BZ_EINVAL, "%s: expected an array of %d numbers", key, m);
        int k = 0;
        for (const cJSON *e = a->child; e; e = e->next, k++) {
            if (!cJSON_IsNumber(e))
                return bz_err_set(err, BZ_EINVAL, "%s[%d]: expected a number", key, k);
            if (is_items(g)) {
                if (e->valuedouble != floor(e->valuedouble))
                    return bz_err_set(err, BZ_EINVAL, "allocation[%d]: expected an agent id", k);
                g->prop_items[i * m + k] = (int)e->valuedouble;
            } else {
                g->prop_x[i * m + k] = e->valuedouble;
            }
        }
        break;
    }
    case BZ_NEG_VOTE: {
        a = cJSON_GetObjectItemCaseSensitive(reply, "accept");
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
            return bz_err_set(err, BZ_EINVAL, "accept: expected an array of %d booleans", n);
        int p = 0;
        for (const cJSON *e = a->child; e; e = e->next, p++) {
            if (!cJSON_IsBool(e))
                return bz_err_set(err, BZ_EINVAL, "accept[%d]: expected a boolean", p);
            g->accept[p * n + i] = p == i ? 1 : (uint8_t)cJSON_IsTrue(e);
        }
        break;
    }
    default: return bz_err_set(err, BZ_EINTERNAL, "negotiation: no decision in phase %d", r->phase);
    }
    g->filled[i] = 1;
    return BZ_OK;
}
