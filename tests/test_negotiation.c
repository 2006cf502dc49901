/* test_negotiation: the item_allocation and treaty games on the platform (the
 * maths of negotiation_math.h has its own test, test_nego): achieved targets
 * of the environment within tolerance, infeasible targets refused by check,
 * the protocol's rules re-derived from the records of many random games
 * (agreement exactly where the threshold is met under each rule, discounting,
 * 0 without agreement, utilities from the proposal rows), communication off
 * leaving no message, and skill moving payoff monotonically per policy. */
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
#include "games/negotiation_internal.h"

#define MAXN 64

struct setup {
    struct bz_game_config cfg;
    struct bz_agent_spec agents[MAXN];
    const struct bz_policy_ops *pol[MAXN];
};

static void setup_init(struct setup *s, const struct bz_game_ops *ops, int n, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < ops->n_params; i++) {
        s->cfg.num[i] = ops->params[i].def;
        s->cfg.str[i] = ops->params[i].def_str;
    }
    s->cfg.ops = ops;
    s->cfg.n_agents = n;
    s->cfg.num[BZ_NEG_P_N_AGENTS] = n;
    s->cfg.communication = 1;
    s->cfg.seed = seed;
    s->cfg.env_seed = bz_hash64(seed ^ 0x5eedULL);
    s->cfg.game_id = (int64_t)seed;
    s->cfg.agents = s->agents;
}

static void set_agent(struct setup *s, int i, const char *policy, double skill)
{
    s->pol[i] = bz_game_policy(s->cfg.ops, policy);
    assert_non_null(s->pol[i]);
    s->agents[i].kind = BZ_AGENT_HEURISTIC;
    s->agents[i].skill = skill;
    s->agents[i].capability = skill;
    snprintf(s->agents[i].policy, sizeof s->agents[i].policy, "%s", policy);
    snprintf(s->agents[i].label, sizeof s->agents[i].label, "heuristic:%s?skill=%g", policy, skill);
}

/* Play a whole game; returns the finished game (rows in rec). */
static struct bz_game *play(struct setup *s, struct bz_records *rec)
{
    struct bz_game *g = NULL;
    struct bz_err err = {0};
    int rc = bz_game_create(&s->cfg, rec, &g, &err);
    if (rc)
        fail_msg("create: %s", err.msg);
    int n = s->cfg.n_agents;
    struct bz_rng rng[MAXN];
    for (int i = 0; i < n; i++)
        bz_rng_init(&rng[i], s->cfg.seed, 1000 + (uint64_t)i);
    int st = 0;
    while (!(rc = bz_game_step(g, &st, &err)) && st == BZ_STEP_DECIDE) {
        for (int r = 0; r < bz_game_n_requests(g); r++) {
            int a = bz_game_request(g, r)->agent;
            bz_game_decide(g, r, s->pol[a], s->agents[a].skill, &rng[a]);
        }
        if ((rc = bz_game_apply(g, &err)))
            fail_msg("apply: %s", err.msg);
    }
    if (rc)
        fail_msg("step: %s", err.msg);
    assert_int_equal(st, BZ_STEP_DONE);
    return g;
}

static const char *const policy_names[] = {"fair", "greedy", "zi", "reciprocal"};

/* The environment hits its targets and the summary row reports them; values
 * sum to 100 in the /values rows. */
static void environment_should_hit_targets(void **state)
{
    (void)state;
    static const int ns[] = {2, 3, 5, 8, 13, 21, 34, 50};
    struct bz_rng r;
    bz_rng_init(&r, 7, 7);
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        for (int rep = 0; rep < 3; rep++) {
            int n = ns[a];
            struct setup s;
            /* item_allocation */
            setup_init(&s, &bz_item_allocation_ops, n, 100 * (uint64_t)n + (uint64_t)rep);
            double c = bz_rng_uniform(&r);
            s.cfg.num[BZ_ITEMS_P_COMPETITION] = c;
            s.cfg.num[BZ_ITEMS_P_NBS_NODES] = 2000;
            s.cfg.num[BZ_NEG_P_MAX_ROUNDS] = 1;
            s.cfg.communication = 0;
            for (int i = 0; i < n; i++)
                set_agent(&s, i, "fair", 1);
            struct bz_records rec;
            bz_records_init(&rec);
            struct bz_game *g = play(&s, &rec);
            /* the achieved targets are the game's measures (/<game>/config) */
            struct bz_game_outcome oc = {0};
            double pay[MAXN];
            g->base.ops->outcome(g, &oc, pay);
            if (fabs(oc.measures[0] - c) > BZ_NEGO_COSINE_TOL)
                fail_msg("n %d competition %g achieved %g", n, c, oc.measures[0]);
            const struct bz_rowbuf *vb = bz_records_find(&rec, &bz_items_values_table);
            assert_int_equal(vb->n_rows, (size_t)n * (size_t)g->m);
            int sum[MAXN] = {0};
            for (size_t k = 0; k < vb->n_rows; k++) {
                const struct bz_neg_values_row *v = (const void *)(vb->data + k * sizeof *v);
                assert_true(v->value >= 0);
                sum[v->agent] += v->value;
            }
            for (int i = 0; i < n; i++)
                assert_int_equal(sum[i], 100);
            bz_game_destroy(g);
            bz_records_cleanup(&rec);

            /* treaty */
            setup_init(&s, &bz_treaty_ops, n, 100 * (uint64_t)n + (uint64_t)rep);
            double rho = bz_rng_uniform(&r), theta = bz_rng_uniform(&r);
            s.cfg.num[BZ_TREATY_P_N_ISSUES] = n; /* theta 0 needs K >= n */
            if (n > BZ_NEGO_MAX_ISSUES) {
                s.cfg.num[BZ_TREATY_P_N_ISSUES] = 5;
                theta = 0.9 + 0.1 * theta;
            }
            s.cfg.num[BZ_TREATY_P_RHO] = rho;
            s.cfg.num[BZ_TREATY_P_THETA] = theta;
            s.cfg.num[BZ_TREATY_P_LAMBDA] = 0.4;
            s.cfg.num[BZ_NEG_P_MAX_ROUNDS] = 1;
            s.cfg.communication = 0;
            for (int i = 0; i < n; i++)
                set_agent(&s, i, "fair", 1);
            bz_records_init(&rec);
            g = play(&s, &rec);
            g->base.ops->outcome(g, &oc, pay);
            if (fabs(oc.measures[0] - rho) > BZ_NEGO_RHO_TOL ||
                fabs(oc.measures[1] - theta) > BZ_NEGO_THETA_TOL ||
                fabs(oc.measures[2] - 0.4) > 0.5 / g->m + 1e-12)
                fail_msg("n %d rho %g theta %g: achieved %g %g %g", n, rho, theta, oc.measures[0],
                         oc.measures[1], oc.measures[2]);
            const struct bz_rowbuf *pb = bz_records_find(&rec, &bz_treaty_prefs_table);
            double wsum[MAXN] = {0};
            for (size_t k = 0; k < pb->n_rows; k++) {
                const struct bz_neg_prefs_row *v = (const void *)(pb->data + k * sizeof *v);
                assert_true(v->position >= 0 && v->position <= 1 && v->weight >= 0);
                wsum[v->agent] += v->weight;
            }
            for (int i = 0; i < n; i++)
                assert_true(fabs(wsum[i] - 1) < 1e-9);
            bz_game_destroy(g);
            bz_records_cleanup(&rec);
        }
    }
}

static void expect_refused(struct setup *s, const char *key)
{
    struct bz_err err = {0};
    assert_int_equal(s->cfg.ops->check(&s->cfg, &err), BZ_EINVAL);
    if (!strstr(err.msg, key))
        fail_msg("message does not name %s: %s", key, err.msg);
}

static void infeasible_targets_should_be_refused(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, &bz_item_allocation_ops, 6, 1);
    s.cfg.num[BZ_ITEMS_P_COMPETITION] = 0;
    s.cfg.num[BZ_ITEMS_P_N_ITEMS] = 4; /* fewer items than agents: shared items */
    expect_refused(&s, "competition");
    s.cfg.num[BZ_ITEMS_P_N_ITEMS] = 6;
    struct bz_err err = {0};
    assert_int_equal(s.cfg.ops->check(&s.cfg, &err), BZ_OK);
    s.cfg.str[BZ_NEG_P_THRESHOLD] = "most";
    expect_refused(&s, "threshold");

    setup_init(&s, &bz_treaty_ops, 5, 1);
    s.cfg.num[BZ_TREATY_P_RHO] = -0.5; /* below what 5 agents allow */
    expect_refused(&s, "rho");
    s.cfg.num[BZ_TREATY_P_RHO] = 0;
    s.cfg.num[BZ_TREATY_P_THETA] = 0;
    s.cfg.num[BZ_TREATY_P_N_ISSUES] = 3; /* theta 0 needs K >= n */
    expect_refused(&s, "theta");
    s.cfg.num[BZ_TREATY_P_N_ISSUES] = 5;
    assert_int_equal(s.cfg.ops->check(&s.cfg, &err), BZ_OK);
}

static double row_utility(const struct bz_game *g, const struct bz_records *rec, int round,
                          int proposer, int agent)
{
    double u = 0;
    if (g->env.kind == BZ_NEG_ITEMS) {
        const struct bz_rowbuf *b = bz_records_find(rec, &bz_items_proposals_table);
        for (size_t k = 0; k < b->n_rows; k++) {
            const struct bz_neg_item_proposal_row *p = (const void *)(b->data + k * sizeof *p);
            if (p->round == round && p->proposer == proposer && p->receiver == agent)
                u += g->env.values[agent * g->m + p->item];
        }
    } else {
        const struct bz_rowbuf *b = bz_records_find(rec, &bz_treaty_proposals_table);
        for (size_t k = 0; k < b->n_rows; k++) {
            const struct bz_neg_treaty_proposal_row *p = (const void *)(b->data + k * sizeof *p);
            if (p->round == round && p->proposer == proposer)
                u += 100 * g->env.w[agent * g->m + p->issue] *
                     (1 - fabs(p->value - g->env.pos[agent * g->m + p->issue]));
        }
    }
    return u;
}

/* Many random games of both kinds; the rules re-derived from their rows. */
static void protocol_should_follow_the_rules(void **state)
{
    (void)state;
    static const char *const rules[] = {"two_thirds", "majority", "unanimity"};
    struct bz_rng r;
    bz_rng_init(&r, 11, 11);
    int agreed = 0, failed = 0, late = 0;
    for (int rep = 0; rep < 240; rep++) {
        int items = rep % 2 == 0;
        int n = 2 + (int)bz_rng_below(&r, 6);
        struct setup s;
        setup_init(&s, items ? &bz_item_allocation_ops : &bz_treaty_ops, n, 5000 + (uint64_t)rep);
        const char *rule = rules[(rep / 2) % 3];
        s.cfg.str[BZ_NEG_P_THRESHOLD] = rule;
        s.cfg.num[BZ_NEG_P_GAMMA] = 0.5 + 0.5 * bz_rng_uniform(&r);
        s.cfg.num[BZ_NEG_P_MAX_ROUNDS] = 1 + (int)bz_rng_below(&r, 6);
        s.cfg.num[BZ_NEG_P_DISCUSSION_TURNS] = (int)bz_rng_below(&r, 3);
        s.cfg.communication = (int)bz_rng_below(&r, 2);
        if (items)
            s.cfg.num[BZ_ITEMS_P_COMPETITION] = bz_rng_uniform(&r);
        else
            s.cfg.num[BZ_TREATY_P_RHO] = bz_rng_uniform(&r);
        for (int i = 0; i < n; i++)
            set_agent(&s, i, policy_names[bz_rng_below(&r, 4)], bz_rng_uniform(&r));
        struct bz_records rec;
        bz_records_init(&rec);
        struct bz_game *g = play(&s, &rec);
        enum bz_nego_rule ru;
        assert_int_equal(bz_nego_rule_parse(rule, &ru, NULL), BZ_OK);
        int th = bz_nego_threshold(n, ru);
        const struct bz_rowbuf *rb =
            bz_records_find(&rec, items ? &bz_items_rounds_table : &bz_treaty_rounds_table);
        const struct bz_rowbuf *vb =
            bz_records_find(&rec, items ? &bz_items_votes_table : &bz_treaty_votes_table);
        assert_non_null(rb);
        int agreement_round = -1, winner = -1;
        for (size_t k = 0; k < rb->n_rows; k++) {
            const struct bz_neg_round_row *rr = (const void *)(rb->data + k * sizeof *rr);
            assert_int_equal(rr->round, (int)k + 1);
            assert_int_equal(rr->threshold, th);
            assert_int_equal(agreement_round, -1); /* no round after an agreement */
            int acc[MAXN];
            for (int p = 0; p < n; p++)
                acc[p] = 1; /* one's own */
            for (size_t v = 0; v < vb->n_rows; v++) {
                const struct bz_neg_vote_row *vr = (const void *)(vb->data + v * sizeof *vr);
                assert_true(vr->voter != vr->proposer);
                if (vr->round == rr->round)
                    acc[vr->proposer] += vr->accept;
            }
            int first = -1, best = 0;
            for (int p = 0; p < n; p++) {
                if (acc[p] >= th && first < 0)
                    first = p;
                best = acc[p] > best ? acc[p] : best;
            }
            assert_int_equal(rr->accepted_proposer, first);
            assert_int_equal(rr->agreement, first >= 0);
            assert_int_equal(rr->n_accepts, best);
            if (first >= 0) {
                agreement_round = rr->round;
                winner = first;
            }
        }
        if (agreement_round < 0)
            assert_int_equal((int)rb->n_rows, (int)s.cfg.num[BZ_NEG_P_MAX_ROUNDS]);
        struct bz_game_outcome oc;
        double payoff[MAXN];
        g->base.ops->outcome(g, &oc, payoff);
        const struct bz_rowbuf *ab =
            bz_records_find(&rec, items ? &bz_items_agents_table : &bz_treaty_agents_table);
        assert_int_equal(ab->n_rows, (size_t)n);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            const struct bz_neg_agent_row *ar = (const void *)(ab->data + i * sizeof *ar);
            double u = agreement_round > 0 ? row_utility(g, &rec, agreement_round, winner, i) : 0;
            double want =
                agreement_round > 0 ? u * pow(s.cfg.num[BZ_NEG_P_GAMMA], agreement_round - 1) : 0;
            assert_true(fabs(ar->utility - u) < 1e-6);
            assert_true(fabs(payoff[i] - want) < 1e-6);
            assert_true(fabs(ar->payoff - want) < 1e-6);
            sum += want;
        }
        for (int i = 0; i < n; i++) {
            const struct bz_neg_agent_row *ar = (const void *)(ab->data + i * sizeof *ar);
            if (sum > 0)
                assert_true(fabs(ar->utility_share - payoff[i] / sum) < 1e-9);
            else
                assert_true(isnan(ar->utility_share));
        }
        const struct bz_rowbuf *mb = bz_records_find(&rec, &bz_messages_table);
        if (!s.cfg.communication)
            assert_null(mb);
        agreed += agreement_round > 0;
        failed += agreement_round < 0;
        late += agreement_round > 1;
        bz_game_destroy(g);
        bz_records_cleanup(&rec);
    }
    print_message("agreements %d (after round 1: %d), none %d\n", agreed, late, failed);
    /* the random games exercise every branch */
    assert_true(agreed > 0 && failed > 0 && late > 0);
}

/* Communication on: discussion rows, public; off: none at all. */
static void communication_off_should_leave_no_message(void **state)
{
    (void)state;
    for (int on = 0; on <= 1; on++) {
        struct setup s;
        setup_init(&s, &bz_item_allocation_ops, 4, 3);
        s.cfg.communication = on;
        for (int i = 0; i < 4; i++)
            set_agent(&s, i, policy_names[i], 1);
        struct bz_records rec;
        bz_records_init(&rec);
        struct bz_game *g = play(&s, &rec);
        const struct bz_rowbuf *mb = bz_records_find(&rec, &bz_messages_table);
        if (!on) {
            assert_null(mb);
        } else {
            assert_non_null(mb);
            /* 2 discussion passes x 4 agents per round */
            assert_int_equal(mb->n_rows, (size_t)8 * (size_t)g->round);
            const struct bz_messages_row *m = (const void *)mb->data;
            assert_string_equal(m->visibility, "public");
            assert_int_equal(m->round, 1);
        }
        bz_game_destroy(g);
        bz_records_cleanup(&rec);
    }
}

/* Agent 0 plays each policy at skill 0, 0.5, 1 against a fixed field; its
 * mean payoff over paired environments must rise with skill (fair, greedy,
 * reciprocal, and zi: ZI-U at skill 0, ZI-C at skill 1). */
static void skill_should_raise_payoff(void **state)
{
    (void)state;
    static const double skills[] = {0, 0.5, 1};
    for (int kind = 0; kind < 2; kind++) {
        for (int p = 0; p < 4; p++) {
            double mean[3] = {0};
            for (int k = 0; k < 3; k++) {
                for (int rep = 0; rep < 150; rep++) {
                    struct setup s;
                    setup_init(&s, kind ? &bz_treaty_ops : &bz_item_allocation_ops, 4,
                               9000 + (uint64_t)rep);
                    s.cfg.communication = 0;
                    s.cfg.num[kind ? BZ_TREATY_P_RHO : BZ_ITEMS_P_COMPETITION] = (rep % 5) * 0.25;
                    set_agent(&s, 0, policy_names[p], skills[k]);
                    set_agent(&s, 1, "fair", 1);
                    set_agent(&s, 2, "reciprocal", 1);
                    set_agent(&s, 3, "greedy", 0.8);
                    struct bz_records rec;
                    bz_records_init(&rec);
                    struct bz_game *g = play(&s, &rec);
                    mean[k] += g->payoff[0] / 150;
                    bz_game_destroy(g);
                    bz_records_cleanup(&rec);
                }
            }
            print_message("%s %s: skill 0 %.2f, 0.5 %.2f, 1 %.2f\n", kind ? "treaty" : "items",
                          policy_names[p], mean[0], mean[1], mean[2]);
            if (!(mean[0] < mean[1] && mean[1] < mean[2]))
                fail_msg("%s %s: payoff not increasing in skill", kind ? "treaty" : "items",
                         policy_names[p]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(environment_should_hit_targets),
        cmocka_unit_test(infeasible_targets_should_be_refused),
        cmocka_unit_test(protocol_should_follow_the_rules),
        cmocka_unit_test(communication_off_should_leave_no_message),
        cmocka_unit_test(skill_should_raise_payoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
