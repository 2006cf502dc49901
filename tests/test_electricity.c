/* test_electricity: the electricity game driven without the match module:
 * balances on random games, paired seeds, determinism, the golden transcript,
 * LLM-facing parsing and flags. Set BZ_UPDATE_GOLDEN=1 to rewrite the golden
 * transcript (then review it by eye). */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "bazaar/match.h"
#include "games/electricity_internal.h"

static const struct bz_game_ops *ops = &bz_electricity_ops;

struct setup {
    struct bz_game_config cfg;
    struct bz_agent_spec *agents;
    const struct bz_policy_ops **pol;
};

static void setup_init(struct setup *s, int n, uint64_t seed, uint64_t env_seed)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < ops->n_params; i++) {
        s->cfg.num[i] = ops->params[i].def;
        s->cfg.str[i] = NULL;
    }
    s->cfg.ops = ops;
    s->cfg.n_agents = n;
    s->cfg.num[BZ_ELEC_N_AGENTS] = n;
    s->cfg.communication = 1;
    s->cfg.seed = seed;
    s->cfg.env_seed = env_seed;
    s->cfg.game_id = (int64_t)seed;
    s->cfg.data_dir = BZ_SOURCE_DIR "/data";
    s->agents = calloc((size_t)n, sizeof *s->agents);
    s->pol = calloc((size_t)n, sizeof *s->pol);
    assert_non_null(s->agents);
    assert_non_null(s->pol);
    s->cfg.agents = s->agents;
    for (int i = 0; i < n; i++)
        s->pol[i] = &bz_elec_truthful;
}

static void setup_agent(struct setup *s, int i, const struct bz_policy_ops *p, double skill)
{
    s->pol[i] = p;
    s->agents[i].kind = BZ_AGENT_HEURISTIC;
    s->agents[i].skill = skill;
    s->agents[i].capability = skill;
    snprintf(s->agents[i].policy, sizeof s->agents[i].policy, "%s", p->name);
    snprintf(s->agents[i].label, sizeof s->agents[i].label, "heuristic:%s?skill=%g", p->name,
             skill);
}

static void setup_cleanup(struct setup *s)
{
    free(s->agents);
    free(s->pol);
}

/* Play a whole game with heuristic policies; returns the finished game. */
static struct bz_game *play(struct setup *s, struct bz_records *rec)
{
    struct bz_game *g = NULL;
    struct bz_err err = {0};
    int rc = bz_game_create(&s->cfg, rec, &g, &err);
    if (rc)
        fail_msg("create: %s", err.msg);
    int n = s->cfg.n_agents;
    struct bz_rng *rng = calloc((size_t)n, sizeof *rng);
    assert_non_null(rng);
    /* the seats' streams as a match makes them (env_seed, seat, label); the
     * game API here rather than a match to reach the game's state */
    for (int i = 0; i < n; i++)
        bz_match_agent_rng(&rng[i], &s->cfg, i);
    int st = 0;
    while (!(rc = bz_game_step(g, &st, &err)) && st == BZ_STEP_DECIDE) {
        for (int r = 0; r < bz_game_n_requests(g); r++) {
            int a = bz_game_request(g, r)->agent;
            bz_game_decide(g, r, s->pol[a], s->agents[a].skill, &rng[a]);
        }
        rc = bz_game_apply(g, &err);
        if (rc)
            fail_msg("apply: %s", err.msg);
    }
    if (rc)
        fail_msg("step: %s", err.msg);
    assert_int_equal(st, BZ_STEP_DONE);
    free(rng);
    return g;
}

static const struct bz_elec_turn_row *turn_rows(const struct bz_records *rec, size_t *n)
{
    const struct bz_rowbuf *rb = bz_records_find(rec, &bz_elec_turns_table);
    assert_non_null(rb);
    *n = rb->n_rows;
    return (const struct bz_elec_turn_row *)rb->data;
}

static void close_to(double a, double b, double scale, const char *what, int turn, int agent)
{
    double tol = 1e-9 * (1 + fabs(scale));
    if (fabs(a - b) > tol)
        fail_msg("%s: %.17g != %.17g (turn %d, agent %d)", what, a, b, turn, agent);
}

/* Energy balance per agent per turn, money and energy balance per turn. */
static void check_balances(const struct bz_records *rec, int n_agents, int turns,
                           int heuristic_only)
{
    size_t n;
    const struct bz_elec_turn_row *r = turn_rows(rec, &n);
    assert_int_equal(n, (size_t)n_agents * (size_t)turns);
    for (int t = 0; t < turns; t++) {
        double money = 0, money_abs = 0, deliv = 0, recv = 0, sold = 0, bought = 0;
        for (int i = 0; i < n_agents; i++) {
            const struct bz_elec_turn_row *x = &r[(size_t)t * (size_t)n_agents + (size_t)i];
            assert_int_equal(x->turn, t);
            assert_int_equal(x->agent, i);
            double in = x->generation + x->received + x->storage_discharge;
            double out = x->served + x->delivered + x->storage_charge + x->curtailed;
            close_to(in, out, in + out, "energy balance", t, i);
            close_to(x->served + x->unserved, x->demand, x->demand, "demand balance", t, i);
            double f[] = {x->generation,        x->demand,          x->received,
                          x->delivered,         x->undelivered,     x->served,
                          x->unserved,          x->curtailed,       x->storage_charge,
                          x->storage_discharge, x->storage_level,   x->contract_bought,
                          x->contract_sold,     x->auction_bought,  x->auction_sold,
                          x->penalty_paid,      x->penalty_received};
            for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
                if (!(f[k] >= 0))
                    fail_msg("negative or NaN quantity %zu = %g (turn %d, agent %d)", k, f[k], t,
                             i);
            double tr[] = {x->contract_received, -x->contract_paid,   x->auction_received,
                           -x->auction_paid,     x->penalty_received, -x->penalty_paid};
            for (size_t k = 0; k < 6; k++) {
                money += tr[k];
                money_abs += fabs(tr[k]);
            }
            deliv += x->delivered;
            recv += x->received;
            sold += x->contract_sold + x->auction_sold;
            bought += x->contract_bought + x->auction_bought;
            if (heuristic_only && x->invalid_action)
                fail_msg("heuristic action was inadmissible (turn %d, agent %d)", t, i);
        }
        close_to(money, 0, money_abs, "money balance", t, -1);
        close_to(deliv, recv, deliv, "delivered == received", t, -1);
        close_to(sold, bought, sold, "sold == bought", t, -1);
    }
}

static const struct bz_policy_ops *const all_policies[] = {&bz_elec_truthful, &bz_elec_greedy,
                                                           &bz_elec_zi, &bz_elec_reciprocal};

static void electricity_should_balance_energy_and_money_on_random_games(void **state)
{
    (void)state;
    struct bz_rng r;
    bz_rng_init(&r, 2024, 7);
    for (int rep = 0; rep < 60; rep++) {
        int n = rep < 10 ? 2 + rep : 2 + (int)bz_rng_below(&r, 40);
        struct setup s;
        setup_init(&s, n, 100 + (uint64_t)rep, 9000 + (uint64_t)rep);
        s.cfg.communication = (int)bz_rng_below(&r, 2);
        int turns = 1 + (int)bz_rng_below(&r, 30);
        s.cfg.num[BZ_ELEC_MAX_TURNS] = turns;
        s.cfg.num[BZ_ELEC_VOLATILITY] = bz_rng_uniform(&r);
        s.cfg.num[BZ_ELEC_SUPPLY_RATIO] = 0.1 + 2.9 * bz_rng_uniform(&r);
        s.cfg.num[BZ_ELEC_STORAGE_HOURS] = rep % 7 == 0 ? 0 : 4 * bz_rng_uniform(&r);
        s.cfg.num[BZ_ELEC_STORAGE_EFFICIENCY] = 0.5 + 0.5 * bz_rng_uniform(&r);
        s.cfg.num[BZ_ELEC_PENALTY] = rep % 5 == 0 ? 0 : 500 * bz_rng_uniform(&r);
        for (int i = 0; i < n; i++)
            setup_agent(&s, i, all_policies[bz_rng_below(&r, 4)], bz_rng_uniform(&r));
        struct bz_records rec;
        bz_records_init(&rec);
        struct bz_game *g = play(&s, &rec);
        check_balances(&rec, n, turns, 1);
        const struct bz_rowbuf *m = bz_records_find(&rec, &bz_elec_market_table);
        assert_non_null(m);
        assert_int_equal(m->n_rows, (size_t)turns);
        struct bz_game_outcome out = {0};
        double *pay = calloc((size_t)n, sizeof *pay);
        ops->outcome(g, &out, pay);
        assert_int_equal(out.turns_played, turns);
        assert_int_equal(out.n_invalid, 0);
        /* welfare and autarky never exceed the optimum, hour by hour */
        const struct bz_elec_market_row *mr = (const struct bz_elec_market_row *)m->data;
        for (int t = 0; t < turns; t++) {
            double tol = 1e-9 * (1 + fabs(mr[t].max_welfare));
            if (mr[t].welfare > mr[t].max_welfare + tol ||
                mr[t].autarky_welfare > mr[t].max_welfare + tol)
                fail_msg("turn %d: welfare %.17g autarky %.17g above max %.17g", t, mr[t].welfare,
                         mr[t].autarky_welfare, mr[t].max_welfare);
            assert_true(isnan(mr[t].efficiency) || mr[t].efficiency <= 1 + 1e-9);
        }
        assert_true(isnan(out.efficiency) || out.efficiency <= 1 + 1e-9);
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += pay[i];
        assert_float_equal(sum, out.welfare, 1e-6 * (1 + fabs(sum)));
        free(pay);
        ops->destroy(g);
        bz_records_cleanup(&rec);
        setup_cleanup(&s);
    }
}

static void electricity_should_balance_with_many_agents(void **state)
{
    (void)state;
    int n = 2000;
    struct setup s;
    setup_init(&s, n, 5, 6);
    s.cfg.num[BZ_ELEC_MAX_TURNS] = 24;
    s.cfg.num[BZ_ELEC_SUPPLY_RATIO] = 0.9;
    for (int i = 0; i < n; i++)
        setup_agent(&s, i, all_policies[i % 4], (i % 5) / 4.0);
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_game *g = play(&s, &rec);
    check_balances(&rec, n, 24, 1);
    const struct bz_rowbuf *m = bz_records_find(&rec, &bz_elec_market_table);
    const struct bz_elec_market_row *mr = (const void *)m->data;
    int traded = 0;
    for (int t = 0; t < 24; t++)
        traded += mr[t].volume > 0 && mr[t].n_contracts > 0;
    assert_true(traded > 12);
    ops->destroy(g);
    bz_records_cleanup(&rec);
    setup_cleanup(&s);
}

static void electricity_should_refuse_bad_configs(void **state)
{
    (void)state;
    struct setup s;
    struct bz_err err = {0};
    setup_init(&s, 1, 1, 1);
    s.cfg.num[BZ_ELEC_N_AGENTS] = 1;
    assert_int_equal(ops->check(&s.cfg, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "n_agents"));
    s.cfg.n_agents = 4;
    s.cfg.num[BZ_ELEC_VOLATILITY] = 2;
    assert_int_equal(ops->check(&s.cfg, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "volatility"));
    s.cfg.num[BZ_ELEC_VOLATILITY] = 0.2;
    s.cfg.str[BZ_ELEC_PROFILE] = "no_such_profile.csv";
    assert_int_equal(ops->check(&s.cfg, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "profile"));
    assert_non_null(strstr(err.msg, "no_such_profile.csv"));
    s.cfg.str[BZ_ELEC_PROFILE] = NULL;
    s.cfg.str[BZ_ELEC_EIA_FILE] = "/nonexistent/eia.json";
    assert_int_equal(ops->check(&s.cfg, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "eia_respondent"));
    s.cfg.str[BZ_ELEC_EIA_RESPONDENT] = "PJM";
    assert_int_not_equal(ops->check(&s.cfg, &err), BZ_OK);
    assert_non_null(strstr(err.msg, "eia_file"));
    assert_non_null(strstr(err.msg, "/nonexistent/eia.json"));
    s.cfg.str[BZ_ELEC_EIA_FILE] = NULL;
    assert_int_equal(ops->check(&s.cfg, &err), BZ_OK);
    setup_cleanup(&s);
}

/* Same env_seed, different protocol seed, lineup and communication: the same
 * market (generation, demand, forecast, reference prices). */
static void electricity_should_pair_environment_across_communication_and_lineup(void **state)
{
    (void)state;
    struct bz_records rec[2];
    int n = 12;
    for (int v = 0; v < 2; v++) {
        struct setup s;
        setup_init(&s, n, 77 + (uint64_t)v * 1000, 4242);
        s.cfg.communication = v;
        s.cfg.num[BZ_ELEC_VOLATILITY] = 0.5;
        for (int i = 0; i < n; i++)
            setup_agent(&s, i, all_policies[(i + v) % 4], v ? 0.3 : 1.0);
        bz_records_init(&rec[v]);
        struct bz_game *g = play(&s, &rec[v]);
        ops->destroy(g);
        setup_cleanup(&s);
    }
    size_t n0, n1;
    const struct bz_elec_turn_row *a = turn_rows(&rec[0], &n0), *b = turn_rows(&rec[1], &n1);
    assert_int_equal(n0, n1);
    int differs = 0;
    for (size_t k = 0; k < n0; k++) {
        assert_true(a[k].generation == b[k].generation);
        assert_true(a[k].demand == b[k].demand);
        assert_true(a[k].forecast == b[k].forecast);
        differs |= a[k].profit != b[k].profit;
    }
    assert_true(differs); /* the play differs, the market does not */
    const struct bz_rowbuf *m0 = bz_records_find(&rec[0], &bz_elec_market_table);
    const struct bz_rowbuf *m1 = bz_records_find(&rec[1], &bz_elec_market_table);
    for (size_t t = 0; t < m0->n_rows; t++)
        assert_true(((const struct bz_elec_market_row *)m0->data)[t].reference_price ==
                    ((const struct bz_elec_market_row *)m1->data)[t].reference_price);
    /* communication off: no messages at all */
    const struct bz_rowbuf *msg0 = bz_records_find(&rec[0], &bz_messages_table);
    const struct bz_rowbuf *msg1 = bz_records_find(&rec[1], &bz_messages_table);
    assert_true(msg0 == NULL || msg0->n_rows == 0);
    assert_non_null(msg1);
    assert_true(msg1->n_rows > 0);
    bz_records_cleanup(&rec[0]);
    bz_records_cleanup(&rec[1]);
}

/* Scarcity is exact on expectation: capacities are normalised so that
 * sum(expected generation) / sum(expected demand) == supply_ratio. */
static void electricity_should_normalise_capacity_to_supply_ratio(void **state)
{
    (void)state;
    double sc[] = {0.3, 1.0, 2.5};
    for (int c = 0; c < 3; c++) {
        struct setup s;
        setup_init(&s, 50, 1, 2);
        s.cfg.num[BZ_ELEC_SUPPLY_RATIO] = sc[c];
        s.cfg.num[BZ_ELEC_MAX_TURNS] = 24;
        struct bz_records rec;
        bz_records_init(&rec);
        struct bz_game *g = NULL;
        struct bz_err err = {0};
        assert_int_equal(bz_game_create(&s.cfg, &rec, &g, &err), BZ_OK);
        double eg = 0, ed = 0, ma = 0, ml = 0;
        for (int t = 0; t < 24; t++) {
            ma += g->avail[t % g->n_shape] / 24;
            ml += g->load[t % g->n_shape] / 24;
        }
        for (int i = 0; i < g->n; i++) {
            eg += g->ag[i].capacity_mw * ma;
            ed += g->ag[i].base_demand_mwh * ml;
        }
        assert_float_equal(eg / ed, sc[c], 1e-12);
        ops->destroy(g);
        bz_records_cleanup(&rec);
        setup_cleanup(&s);
    }
}

static void electricity_should_be_deterministic(void **state)
{
    (void)state;
    struct bz_records rec[2];
    for (int v = 0; v < 2; v++) {
        struct setup s;
        setup_init(&s, 9, 31, 32);
        for (int i = 0; i < 9; i++)
            setup_agent(&s, i, all_policies[i % 4], 0.6);
        bz_records_init(&rec[v]);
        struct bz_game *g = play(&s, &rec[v]);
        ops->destroy(g);
        setup_cleanup(&s);
    }
    const struct bz_table_desc *d[] = {&bz_elec_turns_table, &bz_elec_market_table};
    for (int k = 0; k < 2; k++) {
        const struct bz_rowbuf *a = bz_records_find(&rec[0], d[k]),
                               *b = bz_records_find(&rec[1], d[k]);
        assert_int_equal(a->n_rows, b->n_rows);
        assert_memory_equal(a->data, b->data, a->n_rows * d[k]->row_size);
    }
    const struct bz_rowbuf *a = bz_records_find(&rec[0], &bz_messages_table);
    const struct bz_rowbuf *b = bz_records_find(&rec[1], &bz_messages_table);
    assert_int_equal(a->n_rows, b->n_rows);
    for (size_t i = 0; i < a->n_rows; i++) {
        const struct bz_messages_row *x = (const void *)(a->data + i * a->desc->row_size);
        const struct bz_messages_row *y = (const void *)(b->data + i * b->desc->row_size);
        assert_int_equal(x->sender, y->sender);
        assert_string_equal(x->text, y->text);
        assert_string_equal(x->phase, y->phase);
    }
    bz_records_cleanup(&rec[0]);
    bz_records_cleanup(&rec[1]);
}

/* The synthetic capability axis: skilled agents earn more than unskilled ones
 * of the same policy, over many markets. Payoffs are scaled by each agent's
 * base demand (companies differ in size). */
static void electricity_should_reward_skill(void **state)
{
    (void)state;
    double hi = 0, lo = 0;
    for (int rep = 0; rep < 20; rep++) {
        int n = 10;
        struct setup s;
        setup_init(&s, n, 500 + (uint64_t)rep, 600 + (uint64_t)rep);
        for (int i = 0; i < n; i++)
            setup_agent(&s, i, all_policies[(i / 2) % 4 == 2 ? 0 : (i / 2) % 4], i % 2 ? 1.0 : 0.0);
        struct bz_records rec;
        bz_records_init(&rec);
        struct bz_game *g = play(&s, &rec);
        double pay[10];
        struct bz_game_outcome out = {0};
        ops->outcome(g, &out, pay);
        for (int i = 0; i < n; i++)
            *(i % 2 ? &hi : &lo) += pay[i] / g->ag[i].base_demand_mwh;
        ops->destroy(g);
        bz_records_cleanup(&rec);
        setup_cleanup(&s);
    }
    print_message("payoff per MWh of base demand: skill 1 %.1f, skill 0 %.1f\n", hi / 100,
                  lo / 100);
    assert_true(hi > lo);
}

/* ---- issue 9: pairing, prices, welfare, skill, communication ------------- */

/* A lineup of one policy at one skill, n seats. */
static void setup_lineup(struct setup *s, int n, const struct bz_policy_ops *p, double skill,
                         uint64_t env_seed)
{
    setup_init(s, n, 1000 + env_seed, env_seed);
    for (int i = 0; i < n; i++)
        setup_agent(s, i, p, skill);
}

/* Play and summarise: /electricity/summary, the market rows' clearing
 * prices, the payoffs. */
struct played {
    double welfare, autarky, max, efficiency, mean_payoff, contract_volume;
    double price_sum, price_sq, n_price;
};

static void play_summary(struct setup *s, struct played *o)
{
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_game *g = play(s, &rec);
    memset(o, 0, sizeof *o);
    const struct bz_rowbuf *sb = bz_records_find(&rec, &bz_elec_summary_table);
    assert_non_null(sb);
    assert_int_equal(sb->n_rows, 1);
    const struct bz_elec_summary_row *sr = (const struct bz_elec_summary_row *)sb->data;
    o->welfare = sr->welfare;
    o->autarky = sr->autarky_welfare;
    o->max = sr->max_welfare;
    o->efficiency = sr->efficiency;
    const struct bz_rowbuf *mb = bz_records_find(&rec, &bz_elec_market_table);
    const struct bz_elec_market_row *m = (const struct bz_elec_market_row *)mb->data;
    for (size_t t = 0; t < mb->n_rows; t++) {
        o->contract_volume += m[t].contract_volume;
        if (m[t].volume > 0) {
            o->price_sum += m[t].clearing_price;
            o->price_sq += m[t].clearing_price * m[t].clearing_price;
            o->n_price++;
        }
    }
    int n = s->cfg.n_agents;
    double *pay = calloc((size_t)n, sizeof *pay), *gain = calloc((size_t)n, sizeof *gain);
    assert_non_null(pay);
    assert_non_null(gain);
    struct bz_game_outcome out = {.gain = gain};
    ops->outcome(g, &out, pay);
    double sum_gain = 0;
    for (int i = 0; i < n; i++) {
        o->mean_payoff += pay[i] / n;
        sum_gain += gain[i];
    }
    /* the gains add up to the gains from trade */
    assert_float_equal(sum_gain, o->welfare - o->autarky, 1e-6 * (1 + fabs(o->welfare)));
    assert_float_equal(out.welfare, o->welfare, 1e-6 * (1 + fabs(o->welfare)));
    free(pay);
    free(gain);
    ops->destroy(g);
    bz_records_cleanup(&rec);
}

/* Full pairing: two lineups of the same agents under different names (and so
 * different game seeds) play identical games; a seat with the same agent in
 * two lineups draws the same numbers; communication on and off face the same
 * network. */
static void electricity_should_pair_games_by_env_seed_only(void **state)
{
    (void)state;
    int n = 12;
    char *buf[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    for (int v = 0; v < 2; v++) {
        struct setup s;
        setup_init(&s, n, v ? 99 : 7, 4242);
        s.cfg.lineup_name = v ? "placebo_b" : "placebo_a";
        for (int i = 0; i < n; i++)
            setup_agent(&s, i, all_policies[i % 4], 0.5);
        s.cfg.transcript = open_memstream(&buf[v], &len[v]);
        struct bz_records rec;
        bz_records_init(&rec);
        struct bz_game *g = play(&s, &rec);
        ops->destroy(g);
        fclose(s.cfg.transcript);
        bz_records_cleanup(&rec);
        setup_cleanup(&s);
    }
    /* identical but for the header's seed */
    const char *b0 = strchr(buf[0], '\n'), *b1 = strchr(buf[1], '\n');
    assert_string_equal(b0, b1);
    free(buf[0]);
    free(buf[1]);

    /* seat pairing: the stream depends on (env_seed, seat, label) only */
    struct setup s1, s2;
    setup_init(&s1, 4, 1, 55);
    setup_init(&s2, 4, 2, 55);
    for (int i = 0; i < 4; i++) {
        setup_agent(&s1, i, &bz_elec_greedy, 0.5);
        setup_agent(&s2, i, i == 0 ? &bz_elec_greedy : &bz_elec_zi, 0.5);
    }
    s2.cfg.communication = 0;
    struct bz_rng r1, r2, r3;
    bz_match_agent_rng(&r1, &s1.cfg, 0);
    bz_match_agent_rng(&r2, &s2.cfg, 0);
    for (int k = 0; k < 8; k++)
        assert_true(bz_rng_u64(&r1) == bz_rng_u64(&r2));
    bz_match_agent_rng(&r1, &s1.cfg, 1);
    bz_match_agent_rng(&r3, &s2.cfg, 1);
    assert_true(bz_rng_u64(&r1) != bz_rng_u64(&r3)); /* another agent, another stream */

    /* communication on and off: the same network (N = 20, a ring) */
    s1.cfg.n_agents = s2.cfg.n_agents = 20;
    s1.cfg.num[BZ_ELEC_N_AGENTS] = s2.cfg.num[BZ_ELEC_N_AGENTS] = 20;
    s1.cfg.agents = s2.cfg.agents = NULL;
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_game *g1 = NULL, *g2 = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_game_create(&s1.cfg, &rec, &g1, &err), BZ_OK);
    assert_int_equal(bz_game_create(&s2.cfg, &rec, &g2, &err), BZ_OK);
    assert_memory_equal(g1->nbr, g2->nbr, (size_t)20 * (size_t)g1->k * sizeof *g1->nbr);
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 20; j++) {
            int slot = bz_elec_nbr_slot(g1, i, j), found = -1;
            for (int q = 0; q < g1->k; q++)
                if (g1->nbr[i * g1->k + q] == j)
                    found = q;
            assert_int_equal(slot, found);
        }
    ops->destroy(g1);
    ops->destroy(g2);
    bz_records_cleanup(&rec);
    setup_cleanup(&s1);
    setup_cleanup(&s2);
}

/* Prices respond to scarcity and volatility (skill-1 truthful lineups, the
 * same environments at every level). */
static void electricity_should_price_scarcity_and_volatility(void **state)
{
    (void)state;
    const double ratios[] = {0.7, 1.0, 1.3};
    double mean[3];
    for (int l = 0; l < 3; l++) {
        double sum = 0, cnt = 0;
        for (uint64_t rep = 0; rep < 12; rep++) {
            struct setup s;
            setup_lineup(&s, 6, &bz_elec_truthful, 1.0, 300 + rep);
            s.cfg.num[BZ_ELEC_SUPPLY_RATIO] = ratios[l];
            struct played o;
            play_summary(&s, &o);
            sum += o.price_sum;
            cnt += o.n_price;
            setup_cleanup(&s);
        }
        mean[l] = sum / cnt;
    }
    print_message("mean clearing price at supply_ratio 0.7 / 1.0 / 1.3: %.1f / %.1f / %.1f\n",
                  mean[0], mean[1], mean[2]);
    assert_true(mean[0] > mean[1] && mean[1] > mean[2]);
    const double vols[] = {0.1, 0.4};
    double sd[2];
    for (int l = 0; l < 2; l++) {
        double acc = 0;
        int games = 0;
        for (uint64_t rep = 0; rep < 12; rep++) {
            struct setup s;
            setup_lineup(&s, 6, &bz_elec_truthful, 1.0, 400 + rep);
            s.cfg.num[BZ_ELEC_VOLATILITY] = vols[l];
            s.cfg.num[BZ_ELEC_SUPPLY_RATIO] = 1.3;
            struct played o;
            play_summary(&s, &o);
            if (o.n_price > 1) {
                double m = o.price_sum / o.n_price;
                acc += sqrt(fmax(0, o.price_sq / o.n_price - m * m));
                games++;
            }
            setup_cleanup(&s);
        }
        sd[l] = acc / games;
    }
    print_message("within-game SD of the clearing price at volatility 0.1 / 0.4: %.2f / %.2f\n",
                  sd[0], sd[1]);
    assert_true(sd[1] > sd[0]);
}

/* A policy that never trades (claims nothing, proposes nothing, rejects,
 * orders nothing). */
static void decide_never(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    (void)rng;
    ops->safe_action(g, r);
}
static const struct bz_policy_ops never = {"never", "never trades", decide_never};

static void electricity_should_measure_gains_from_trade(void **state)
{
    (void)state;
    /* no trade: welfare is autarky's, hour by hour, and efficiency is 0 */
    for (uint64_t rep = 0; rep < 5; rep++) {
        struct setup s;
        setup_lineup(&s, 5, &never, 1.0, 700 + rep);
        struct played o;
        play_summary(&s, &o);
        assert_true(o.welfare == o.autarky);
        assert_true(o.efficiency == 0.0);
        assert_true(o.max >= o.autarky);
        setup_cleanup(&s);
    }
    /* skill-1 truthful agents at supply_ratio 1 and volatility 0 realise at
     * least 90% of the gains; skilled lineups more than unskilled ones */
    double eff_truth = 0, eff_lo = 0, eff_hi = 0;
    int reps = 10;
    for (uint64_t rep = 0; rep < (uint64_t)reps; rep++) {
        struct setup s;
        struct played o;
        setup_lineup(&s, 6, &bz_elec_truthful, 1.0, 800 + rep);
        s.cfg.num[BZ_ELEC_VOLATILITY] = 0;
        play_summary(&s, &o);
        eff_truth += o.efficiency / reps;
        setup_cleanup(&s);
        for (int sk = 0; sk < 2; sk++) {
            setup_init(&s, 8, 900 + rep, 900 + rep);
            for (int i = 0; i < 8; i++)
                setup_agent(&s, i, all_policies[i % 4], sk ? 0.9 : 0.1);
            play_summary(&s, &o);
            *(sk ? &eff_hi : &eff_lo) += o.efficiency / reps;
            setup_cleanup(&s);
        }
    }
    print_message("efficiency: truthful skill 1 at volatility 0: %.3f; mixed lineup skill 0.9: "
                  "%.3f, skill 0.1: %.3f\n",
                  eff_truth, eff_hi, eff_lo);
    assert_true(eff_truth >= 0.9 && eff_truth <= 1 + 1e-9);
    assert_true(eff_hi > eff_lo);
}

/* Every policy's payoff rises with its skill (homogeneous lineups, the same
 * environments at every skill). */
static void electricity_should_raise_every_policys_payoff_with_skill(void **state)
{
    (void)state;
    const double skills[] = {0.0, 0.5, 1.0};
    for (int p = 0; p < 4; p++) {
        double mean[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++)
            for (uint64_t rep = 0; rep < 12; rep++) {
                struct setup s;
                setup_lineup(&s, 6, all_policies[p], skills[k], 1100 + rep);
                struct played o;
                play_summary(&s, &o);
                mean[k] += o.mean_payoff / 12;
                setup_cleanup(&s);
            }
        print_message("%-10s mean payoff at skill 0 / 0.5 / 1: %.0f / %.0f / %.0f\n",
                      all_policies[p]->name, mean[0], mean[1], mean[2]);
        assert_true(mean[0] < mean[1] && mean[1] < mean[2]);
    }
}

/* The communication effect of heuristics: with claims published, proposals
 * go to counterparties whose claimed position matches, so more energy is
 * contracted bilaterally (same environments, same agent draws). */
static void electricity_should_show_a_communication_effect(void **state)
{
    (void)state;
    double vol[2] = {0, 0}, eff[2] = {0, 0};
    for (uint64_t rep = 0; rep < 12; rep++)
        for (int c = 0; c < 2; c++) {
            struct setup s;
            setup_lineup(&s, 8, &bz_elec_reciprocal, 1.0, 1300 + rep);
            s.cfg.communication = c;
            struct played o;
            play_summary(&s, &o);
            vol[c] += o.contract_volume / 12;
            eff[c] += o.efficiency / 12;
            setup_cleanup(&s);
        }
    print_message("reciprocal skill 1: contract volume per game %.0f MWh with communication, %.0f "
                  "without; efficiency %.3f / %.3f\n",
                  vol[1], vol[0], eff[1], eff[0]);
    assert_true(vol[1] > vol[0]);
}

static void electricity_should_match_golden_transcript(void **state)
{
    (void)state;
    const char *lineup[] = {"truthful", "greedy", "zi", "reciprocal"};
    struct setup s;
    setup_init(&s, 4, 7, 7);
    for (int i = 0; i < 4; i++)
        setup_agent(&s, i, bz_game_policy(ops, lineup[i]), 1.0);
    char *buf = NULL;
    size_t len = 0;
    s.cfg.transcript = open_memstream(&buf, &len);
    assert_non_null(s.cfg.transcript);
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_game *g = play(&s, &rec);
    ops->destroy(g);
    fclose(s.cfg.transcript);
    const char *path = BZ_SOURCE_DIR "/tests/golden/electricity_transcript.txt";
    if (getenv("BZ_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fwrite(buf, 1, len, f);
        fclose(f);
    }
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("missing %s (run with BZ_UPDATE_GOLDEN=1 once and review it)", path);
    char *gold = calloc(len + 2, 1);
    size_t got = fread(gold, 1, len + 1, f);
    fclose(f);
    if (got != len || memcmp(gold, buf, len) != 0) {
        size_t k = 0;
        while (k < len && k < got && gold[k] == buf[k])
            k++;
        fail_msg("transcript differs from %s at byte %zu: ...%.80s", path, k, buf + k);
    }
    free(gold);
    free(buf);
    bz_records_cleanup(&rec);
    setup_cleanup(&s);
}

/* Step to the first request of phase (playing truthful for everyone before). */
static void step_to_phase(struct bz_game *g, int phase)
{
    struct bz_err err = {0};
    struct bz_rng r;
    bz_rng_init(&r, 1, 2);
    for (;;) {
        int st = 0;
        assert_int_equal(bz_game_step(g, &st, &err), BZ_OK);
        assert_int_equal(st, BZ_STEP_DECIDE);
        if (g->base.phase == phase)
            return;
        for (int k = 0; k < bz_game_n_requests(g); k++)
            bz_game_decide(g, k, &bz_elec_truthful, 1.0, &r);
        assert_int_equal(bz_game_apply(g, &err), BZ_OK);
    }
}

/* Step and expect decisions of phase. */
static void expect_phase(struct bz_game *g, int phase)
{
    struct bz_err err = {0};
    int st = 0;
    assert_int_equal(bz_game_step(g, &st, &err), BZ_OK);
    assert_int_equal(st, BZ_STEP_DECIDE);
    assert_int_equal(g->base.phase, phase);
}

static int observe_as(struct bz_game *g, int agent, cJSON *obs, struct bz_err *err)
{
    struct bz_request r = {.agent = agent, .phase = g->base.phase};
    return ops->observe(g, &r, obs, err);
}

static int parse(struct bz_game *g, int agent, const char *json, struct bz_err *err)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    int rc = bz_game_answer(g, agent, 0, j, NULL, err);
    cJSON_Delete(j);
    return rc;
}

struct bad_case {
    int phase;
    const char *json;
    const char *field; /* must appear in the message */
};

static void electricity_should_name_the_field_of_bad_actions(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {BZ_ELEC_PUBLISH, "[1]", "object"},
        {BZ_ELEC_PUBLISH, "{\"claimed_surplus_mwh\":\"lots\",\"message\":\"\"}",
         "claimed_surplus_mwh"},
        {BZ_ELEC_PUBLISH, "{\"message\":\"hi\"}", "claimed_surplus_mwh"},
        {BZ_ELEC_PUBLISH, "{\"claimed_surplus_mwh\":1,\"message\":3}", "message"},
        {BZ_ELEC_PUBLISH, "{\"claimed_surplus_mwh\":1,\"message\":\"\",\"bribe\":3}", "bribe"},
        {BZ_ELEC_PROPOSE,
         "{\"counterparty\":99,\"side\":\"sell\",\"amount_mwh\":1,\"price_total\":1,\"message\":"
         "\"\"}",
         "counterparty"},
        {BZ_ELEC_PROPOSE,
         "{\"counterparty\":1.5,\"side\":\"sell\",\"amount_mwh\":1,\"price_total\":1,\"message\":"
         "\"\"}",
         "counterparty"},
        {BZ_ELEC_PROPOSE,
         "{\"counterparty\":1,\"side\":\"steal\",\"amount_mwh\":1,\"price_total\":1,\"message\":"
         "\"\"}",
         "side"},
        {BZ_ELEC_PROPOSE,
         "{\"counterparty\":1,\"side\":\"sell\",\"amount_mwh\":-5,\"price_total\":1,\"message\":"
         "\"\"}",
         "amount_mwh"},
        {BZ_ELEC_PROPOSE,
         "{\"counterparty\":1,\"side\":\"sell\",\"amount_mwh\":1e9,\"price_total\":1,\"message\":"
         "\"\"}",
         "amount_mwh"},
        {BZ_ELEC_PROPOSE,
         "{\"counterparty\":1,\"side\":\"buy\",\"amount_mwh\":1,\"price_total\":-1,\"message\":"
         "\"\"}",
         "price_total"},
        {BZ_ELEC_AUCTION, "{\"side\":\"sell\",\"amount_mwh\":1e9,\"limit_price_per_mwh\":10}",
         "amount_mwh"},
        {BZ_ELEC_AUCTION, "{\"side\":\"buy\",\"amount_mwh\":-1,\"limit_price_per_mwh\":10}",
         "amount_mwh"},
        {BZ_ELEC_AUCTION, "{\"side\":\"buy\",\"amount_mwh\":1,\"limit_price_per_mwh\":\"cheap\"}",
         "limit_price_per_mwh"},
        {BZ_ELEC_AUCTION, "{\"side\":\"maybe\",\"amount_mwh\":1,\"limit_price_per_mwh\":1}",
         "side"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct setup s;
        setup_init(&s, 4, 3, 3);
        struct bz_records rec;
        bz_records_init(&rec);
        struct bz_game *g = NULL;
        struct bz_err err = {0};
        assert_int_equal(bz_game_create(&s.cfg, &rec, &g, &err), BZ_OK);
        step_to_phase(g, cases[c].phase);
        cJSON *j = cJSON_Parse(cases[c].json);
        assert_non_null(j);
        enum bz_answer_fault fault;
        int rc = bz_game_answer(g, 0, 0, j, &fault, &err);
        cJSON_Delete(j);
        print_message("%s -> %s\n", cases[c].json, err.msg);
        assert_int_equal(rc, BZ_EINVAL);
        assert_non_null(strstr(err.msg, cases[c].field));
        /* the slot stays unset: apply falls back, both flags are recorded */
        for (int k = 1; k < bz_game_n_requests(g); k++)
            bz_game_fallback(g, bz_game_request(g, k)->agent, 0);
        assert_int_equal(bz_game_apply(g, &err), BZ_OK);
        /* an inadmissible action counts as invalid; a reply that broke the
         * schema is a bad reply (counted by the LLM layer) */
        assert_int_equal(g->ag[0].invalid, fault == BZ_ANSWER_INADMISSIBLE);
        assert_true(g->ag[0].fallback);
        ops->destroy(g);
        bz_records_cleanup(&rec);
        setup_cleanup(&s);
    }
}

/* A whole turn played through parse_action: good replies work, the flags land
 * in the turn rows, the respond/confirm phases accept ids of received
 * proposals only. */
static void electricity_should_play_a_turn_from_json_replies(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 3, 11, 12);
    s.cfg.num[BZ_ELEC_MAX_TURNS] = 1;
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_game *g = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_game_create(&s.cfg, &rec, &g, &err), BZ_OK);
    expect_phase(g, BZ_ELEC_PUBLISH);
    for (int a = 0; a < 3; a++) {
        const cJSON *sj = bz_game_schema(g, BZ_ELEC_PUBLISH);
        assert_non_null(sj);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItem(sj, "additionalProperties")));
        assert_int_equal(parse(g, a, "{\"claimed_surplus_mwh\": 5, \"message\": \"hello\"}", &err),
                         BZ_OK);
    }
    assert_int_equal(bz_game_apply(g, &err), BZ_OK);
    expect_phase(g, BZ_ELEC_PROPOSE);
    /* agent 0 offers 1 MWh to agent 1; agent 1 and 2 propose nothing */
    assert_int_equal(parse(g, 0,
                           "{\"counterparty\":1,\"side\":\"sell\",\"amount_mwh\":1,"
                           "\"price_total\":50,\"message\":\"deal?\"}",
                           &err),
                     BZ_OK);
    assert_int_equal(parse(g, 1,
                           "{\"counterparty\":-1,\"side\":\"buy\",\"amount_mwh\":0,"
                           "\"price_total\":0,\"message\":\"\"}",
                           &err),
                     BZ_OK);
    bz_game_fallback(g, 2, 0);
    assert_int_equal(bz_game_apply(g, &err), BZ_OK);
    expect_phase(g, BZ_ELEC_RESPOND);
    assert_int_equal(bz_game_n_requests(g), 1);
    assert_int_equal(bz_game_request(g, 0)->agent, 1);
    cJSON *obs = cJSON_CreateObject();
    assert_int_equal(observe_as(g, 1, obs, &err), BZ_OK);
    cJSON *pub = cJSON_GetObjectItem(obs, "public");
    assert_non_null(cJSON_GetObjectItem(obs, "private"));
    assert_non_null(cJSON_GetObjectItem(obs, "meta"));
    cJSON *inbox = cJSON_GetObjectItem(pub, "proposals_to_you");
    assert_int_equal(cJSON_GetArraySize(inbox), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(inbox, 0), "message")->valuestring,
                        "deal?");
    cJSON *msgs = cJSON_GetObjectItem(pub, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 2); /* from agents 0 and 2 */
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "text")->valuestring,
                        "hello");
    cJSON_Delete(obs);
    assert_int_equal(parse(g, 1,
                           "{\"answers\":[{\"proposal_id\":2,\"decision\":\"accept\","
                           "\"counter_amount_mwh\":0,\"counter_price_total\":0}]}",
                           &err),
                     BZ_EINVAL);
    assert_non_null(strstr(err.msg, "proposal_id"));
    assert_int_equal(parse(g, 1,
                           "{\"answers\":[{\"proposal_id\":0,\"decision\":\"counter\","
                           "\"counter_amount_mwh\":0.5,\"counter_price_total\":20}]}",
                           &err),
                     BZ_OK);
    assert_int_equal(bz_game_apply(g, &err), BZ_OK);
    expect_phase(g, BZ_ELEC_CONFIRM);
    assert_int_equal(parse(g, 0, "{\"accept\":\"yes\"}", &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "accept"));
    assert_int_equal(parse(g, 0, "{\"accept\":true}", &err), BZ_OK);
    assert_int_equal(bz_game_apply(g, &err), BZ_OK);
    expect_phase(g, BZ_ELEC_AUCTION);
    for (int a = 0; a < 3; a++)
        assert_int_equal(
            parse(g, a, "{\"side\":\"none\",\"amount_mwh\":0,\"limit_price_per_mwh\":0}", &err),
            BZ_OK);
    assert_int_equal(bz_game_apply(g, &err), BZ_OK);
    {
        int st = 0;
        assert_int_equal(bz_game_step(g, &st, &err), BZ_OK);
        assert_int_equal(st, BZ_STEP_DONE);
    }
    size_t n;
    const struct bz_elec_turn_row *r = turn_rows(&rec, &n);
    assert_int_equal(n, 3);
    assert_float_equal(r[0].contract_sold, 0.5, 1e-12);
    assert_float_equal(r[0].contract_received, 20, 1e-12);
    assert_float_equal(r[1].contract_bought, 0.5, 1e-12);
    /* agent 0's {"accept":"yes"} broke the schema: a bad reply, not an
     * inadmissible action of the game (as in an LLM run) */
    assert_int_equal(r[0].invalid_action, 0);
    assert_int_equal(r[0].fallback, 0);
    assert_int_equal(r[1].invalid_action, 1);
    assert_int_equal(r[2].fallback, 1);
    assert_int_equal(r[2].invalid_action, 0);
    check_balances(&rec, 3, 1, 0);
    const struct bz_rowbuf *m = bz_records_find(&rec, &bz_messages_table);
    assert_int_equal(m->n_rows, 4); /* three publish messages, one proposal */
    ops->destroy(g);
    bz_records_cleanup(&rec);
    setup_cleanup(&s);
}

static void electricity_should_hide_text_without_communication(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 4, 21, 22);
    s.cfg.communication = 0;
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_game *g = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_game_create(&s.cfg, &rec, &g, &err), BZ_OK);
    /* no cheap talk: nothing is published, the hour opens with propose */
    expect_phase(g, BZ_ELEC_PROPOSE);
    const cJSON *sj = bz_game_schema(g, BZ_ELEC_PROPOSE);
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(sj, "properties"), "message"));
    cJSON *obs = cJSON_CreateObject();
    assert_int_equal(observe_as(g, 0, obs, &err), BZ_OK);
    char *text = cJSON_PrintUnformatted(obs);
    assert_null(strstr(text, "claimed_surplus"));
    assert_null(strstr(text, "matched_its_claim"));
    assert_null(strstr(text, "truthful"));
    assert_null(strstr(text, "messages"));
    free(text);
    cJSON_Delete(obs);
    const char *secret = "{\"counterparty\":-1,\"side\":\"buy\",\"amount_mwh\":1,"
                         "\"price_total\":1,\"message\":\"secret\"}";
    for (int a = 0; a < 4; a++) {
        /* the schema refuses free text when communication is off... */
        assert_int_equal(parse(g, a, secret, &err), BZ_EINVAL);
        assert_non_null(strstr(err.msg, "message"));
        /* ...and the game's own parser drops it had it come through */
        cJSON *j = cJSON_Parse(secret);
        struct bz_request *r = bz_game_find_request(g, a, 0);
        assert_int_equal(ops->parse_action(g, r, j, &err), BZ_OK);
        r->answered = 1;
        cJSON_Delete(j);
    }
    assert_int_equal(bz_game_apply(g, &err), BZ_OK);
    assert_null(bz_records_find(&rec, &bz_messages_table));
    for (int ph = 0; ph < BZ_ELEC_SETTLE; ph++)
        assert_non_null(bz_game_schema(g, ph));
    assert_null(bz_game_schema(g, BZ_ELEC_SETTLE));
    ops->destroy(g);
    bz_records_cleanup(&rec);
    setup_cleanup(&s);
}

static void electricity_should_drive_the_load_from_an_eia_file(void **state)
{
    (void)state;
    const char *path = BZ_SOURCE_DIR "/../shared/data/eia/region-daily-2025-01-25_31.json";
    FILE *f = fopen(path, "r");
    if (!f) {
        print_message("skipped: %s not present\n", path);
        skip();
    }
    fclose(f);
    struct setup s;
    setup_init(&s, 6, 1, 2);
    s.cfg.str[BZ_ELEC_EIA_FILE] = path;
    s.cfg.str[BZ_ELEC_EIA_RESPONDENT] = "PJM";
    s.cfg.num[BZ_ELEC_MAX_TURNS] = 10;
    struct bz_err err = {0};
    assert_int_equal(ops->check(&s.cfg, &err), BZ_OK);
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_game *g = play(&s, &rec);
    assert_int_equal(g->n_shape, 7);
    check_balances(&rec, 6, 10, 1);
    ops->destroy(g);
    bz_records_cleanup(&rec);
    s.cfg.str[BZ_ELEC_EIA_RESPONDENT] = "NOPE";
    assert_int_equal(ops->check(&s.cfg, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "NOPE"));
    assert_non_null(strstr(err.msg, "eia_file"));
    setup_cleanup(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(electricity_should_balance_energy_and_money_on_random_games),
        cmocka_unit_test(electricity_should_balance_with_many_agents),
        cmocka_unit_test(electricity_should_refuse_bad_configs),
        cmocka_unit_test(electricity_should_pair_environment_across_communication_and_lineup),
        cmocka_unit_test(electricity_should_normalise_capacity_to_supply_ratio),
        cmocka_unit_test(electricity_should_be_deterministic),
        cmocka_unit_test(electricity_should_reward_skill),
        cmocka_unit_test(electricity_should_pair_games_by_env_seed_only),
        cmocka_unit_test(electricity_should_price_scarcity_and_volatility),
        cmocka_unit_test(electricity_should_measure_gains_from_trade),
        cmocka_unit_test(electricity_should_raise_every_policys_payoff_with_skill),
        cmocka_unit_test(electricity_should_show_a_communication_effect),
        cmocka_unit_test(electricity_should_match_golden_transcript),
        cmocka_unit_test(electricity_should_name_the_field_of_bad_actions),
        cmocka_unit_test(electricity_should_play_a_turn_from_json_replies),
        cmocka_unit_test(electricity_should_hide_text_without_communication),
        cmocka_unit_test(electricity_should_drive_the_load_from_an_eia_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
