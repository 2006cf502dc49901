/* test_beast: the beast rules engine (requests, admissibility, transfers,
 * votes, records) on scripted games, its invariants on many random and
 * heuristic games, and the heuristics' skill and communication effects. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "games/beast_internal.h"

/* ---- a driver: answers every request through a callback ---- */

typedef void (*answer_fn)(const struct bz_beast *g, const struct bz_beast_request *rq,
                          struct bz_beast_action *a, void *ctx);

struct seat {
    int policy;
    double skill;
};

struct lineup {
    struct seat seat[BZ_BEAST_MAX_AGENTS];
    struct bz_beast_mem mem[BZ_BEAST_MAX_AGENTS];
    struct bz_rng rng[BZ_BEAST_MAX_AGENTS];
    int check_admissible; /* fail on any inadmissible heuristic action */
};

static void lineup_init(struct lineup *l, int n, uint64_t agent_seed)
{
    for (int i = 0; i < n; i++) {
        bz_beast_mem_init(&l->mem[i], i, l->seat[i].policy);
        bz_rng_init(&l->rng[i], agent_seed, (uint64_t)i);
    }
}

static void heuristic_answer(const struct bz_beast *g, const struct bz_beast_request *rq,
                             struct bz_beast_action *a, void *ctx)
{
    struct lineup *l = ctx;
    int i = rq->agent;
    bz_beast_heuristic_act(g, rq, &l->mem[i], l->seat[i].skill, &l->rng[i], a);
    if (l->check_admissible) {
        int why = bz_beast_check(g, rq, a);
        if (why)
            fail_msg("%s (skill %.2f) kind %d: inadmissible: %s",
                     bz_beast_policy_name(l->seat[i].policy), l->seat[i].skill, rq->kind,
                     bz_beast_why_name(why));
    }
}

/* Invariants checked around every step. */
struct watch {
    int steps, max_requests_one_agent;
};

static void check_requests(const struct bz_beast *g, const struct bz_beast_request *rq, int n,
                           struct watch *w)
{
    int per_agent[BZ_BEAST_MAX_AGENTS] = {0};
    unsigned char conv_seen[4096] = {0};
    for (int i = 0; i < n; i++) {
        assert_true(bz_beast_active(g, rq[i].agent)); /* the eliminated never act */
        assert_true(rq[i].slot >= 0 && rq[i].slot < bz_beast_cfg(g)->max_slots);
        for (int j = 0; j < i; j++)
            assert_false(rq[j].agent == rq[i].agent && rq[j].slot == rq[i].slot);
        per_agent[rq[i].agent]++;
        if (rq[i].kind == BZ_BEAST_MESSAGE) {
            assert_true(rq[i].conv >= 0 && rq[i].conv < 4096);
            assert_false(conv_seen[rq[i].conv]);
            conv_seen[rq[i].conv] = 1;
            const struct bz_beast_conv_row *cv = bz_beast_conv(g, rq[i].conv);
            assert_true(cv->a == rq[i].agent || cv->b == rq[i].agent);
            assert_true(bz_beast_active(g, cv->a) && bz_beast_active(g, cv->b));
        } else {
            assert_int_equal(rq[i].slot, 0);
            assert_int_equal(rq[i].conv, -1);
        }
    }
    for (int i = 0; i < bz_beast_cfg(g)->n_agents; i++)
        if (per_agent[i] > w->max_requests_one_agent)
            w->max_requests_one_agent = per_agent[i];
}

/* Replay the transfers a TALK step resolved, in request order, from the
 * wealth before the step: each executed one was affordable then, each
 * "cannot afford" was not, and the replay ends at the engine's wealth. */
static void check_talk_step(const struct bz_beast *g, const int64_t *w0, int msgs_before)
{
    int n = bz_beast_cfg(g)->n_agents;
    int64_t w[BZ_BEAST_MAX_AGENTS];
    memcpy(w, w0, sizeof(int64_t) * (size_t)n);
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    for (int i = msgs_before; i < rec.n_msgs; i++) {
        const struct bz_beast_msg_row *m = &rec.msgs[i];
        if (m->index == 0)
            continue;
        const struct bz_beast_msg_row *ms[64];
        bz_beast_conv_msgs(g, m->conv, ms, 64);
        int t = ms[m->index - 1]->transfer;
        if (t < 0)
            continue;
        const struct bz_beast_transfer_row *tr = &rec.transfers[t];
        assert_int_equal(tr->accepted, m->msg.accept && !m->fallback);
        if (tr->executed) {
            assert_true(tr->amount <= w[tr->payer]);
            w[tr->payer] -= tr->amount;
            w[tr->payee] += tr->amount;
        } else if (tr->why_not == BZ_BEAST_CANNOT_AFFORD) {
            assert_true(tr->amount > w[tr->payer]);
        } else {
            assert_int_equal(tr->why_not, BZ_BEAST_NOT_ACCEPTED);
        }
    }
    for (int i = 0; i < n; i++) {
        assert_true(w[i] == bz_beast_wealth(g, i));
        assert_true(w[i] >= 0);
    }
}

/* After a round: one elimination, wealth conserved but for the bonus, the
 * bonus only to the eliminated and only in the first bonus_slots. */
static void check_round(const struct bz_beast *g, int r, int64_t sum_before)
{
    const struct bz_beast_config *c = bz_beast_cfg(g);
    int n = c->n_agents;
    assert_int_equal(bz_beast_eliminated(g), r + 1);
    int e = bz_beast_eliminated_in(g, r);
    assert_true(e >= 0 && !bz_beast_active(g, e));
    for (int q = 0; q < r; q++)
        assert_int_not_equal(bz_beast_eliminated_in(g, q), e);
    int64_t sum = 0, bonus_paid = 0;
    for (int i = 0; i < n; i++)
        sum += bz_beast_wealth(g, i);
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    assert_int_equal(rec.n_wealth, (r + 1) * n);
    for (int i = 0; i < n; i++) {
        const struct bz_beast_wealth_row *row = &rec.wealth[r * n + i];
        assert_int_equal(row->round, r);
        assert_int_equal(row->agent, i);
        assert_true(row->wealth_end ==
                    row->wealth_start + row->transfers_in - row->transfers_out + row->bonus);
        assert_true(row->wealth_end == bz_beast_wealth(g, i));
        assert_int_equal(row->active, bz_beast_active(g, i));
        if (i != e)
            assert_true(row->bonus == 0);
        bonus_paid += row->bonus;
    }
    assert_true(bonus_paid == (r < c->bonus_slots ? c->bonus : 0));
    assert_true(sum - sum_before == bonus_paid);
    /* declared and actual votes: one row per player active in the round */
    int voters = 0;
    for (int v = 0; v < rec.n_votes; v++) {
        const struct bz_beast_vote_row *vr = &rec.votes[v];
        if (vr->round != r)
            continue;
        voters++;
        assert_true(vr->declared_vote >= -1 && vr->declared_vote < n);
        assert_true(vr->vote >= 0 && vr->vote < n && vr->vote != vr->voter);
        assert_int_equal(vr->eliminated, e);
    }
    assert_int_equal(voters, bz_beast_n_active(g) + 1);
}

/* Play g to the end; returns the number of steps. */
static int play(struct bz_beast *g, answer_fn answer, void *ctx, struct watch *w)
{
    struct bz_beast_request rq[BZ_BEAST_MAX_REQUESTS];
    struct bz_beast_action acts[BZ_BEAST_MAX_REQUESTS];
    struct bz_err err = {0};
    int n = bz_beast_cfg(g)->n_agents;
    for (;;) {
        int k = bz_beast_requests(g, rq, BZ_BEAST_MAX_REQUESTS);
        if (k == 0)
            break;
        if (w)
            check_requests(g, rq, k, w);
        for (int i = 0; i < k; i++)
            answer(g, &rq[i], &acts[i], ctx);
        int64_t w0[BZ_BEAST_MAX_AGENTS], sum = 0;
        for (int i = 0; i < n; i++)
            sum += w0[i] = bz_beast_wealth(g, i);
        int phase = bz_beast_phase(g), round = bz_beast_round(g);
        struct bz_beast_records rec;
        bz_beast_records(g, &rec);
        int msgs_before = rec.n_msgs;
        assert_int_equal(bz_beast_step(g, rq, acts, k, &err), BZ_OK);
        if (w) {
            w->steps++;
            if (phase == BZ_BEAST_PH_TALK)
                check_talk_step(g, w0, msgs_before);
            if (phase == BZ_BEAST_PH_VOTE)
                check_round(g, round, sum);
        }
    }
    assert_int_equal(bz_beast_phase(g), BZ_BEAST_PH_DONE);
    return w ? w->steps : 0;
}

static struct bz_beast *make(const struct bz_beast_config *c, uint64_t seed)
{
    struct bz_beast *g = NULL;
    struct bz_err err = {0};
    int rc = bz_beast_create(c, seed, &g, &err);
    if (rc)
        fail_msg("%s", err.msg);
    return g;
}

/* ---- configuration ---- */

static void config_should_reject_out_of_range_parameters(void **state)
{
    (void)state;
    struct bz_beast_config c;
    struct bz_err err = {0};
    bz_beast_config_default(&c);
    assert_int_equal(bz_beast_config_check(&c, &err), BZ_OK);
    assert_int_equal(c.n_agents, 10);
    assert_true(c.bonus == 250000 && c.wealth_max == 200000);
    c.eliminations = 10; /* a vote needs two players: at most n - 1 */
    assert_int_equal(bz_beast_config_check(&c, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "eliminations"));
    bz_beast_config_default(&c);
    c.partners = BZ_BEAST_MAX_PARTNERS + 1;
    assert_int_equal(bz_beast_config_check(&c, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "partners"));
    bz_beast_config_default(&c);
    c.n_agents = BZ_BEAST_MAX_AGENTS + 1;
    struct bz_beast *g = (struct bz_beast *)&c;
    assert_int_equal(bz_beast_create(&c, 1, &g, &err), BZ_EINVAL);
    assert_null(g);
}

static void wealth_should_be_uniform_in_range_and_depend_on_the_env_seed_only(void **state)
{
    (void)state;
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    c.n_agents = 50;
    c.eliminations = 5;
    struct bz_beast *g = make(&c, 7), *h = make(&c, 7), *k = make(&c, 8);
    double mean = 0;
    int differ = 0;
    for (int i = 0; i < 50; i++) {
        assert_true(bz_beast_wealth(g, i) >= 0 && bz_beast_wealth(g, i) <= 200000);
        assert_true(bz_beast_wealth(g, i) == bz_beast_wealth(h, i));
        differ += bz_beast_wealth(g, i) != bz_beast_wealth(k, i);
        mean += (double)bz_beast_wealth(g, i) / 50;
    }
    assert_true(differ > 40);
    assert_true(mean > 60000 && mean < 140000); /* 5 sigma of a 50-draw mean is ~41000 */
    bz_beast_destroy(g);
    bz_beast_destroy(h);
    bz_beast_destroy(k);
}

/* ---- scripted games ---- */

/* A script: per agent, partners to pick in round 0 and a queue of messages;
 * declare -1 and vote by a table. */
struct script {
    int n_picks[8], picks[8][4];
    struct bz_beast_msg msgs[8][8];
    int n_msgs[8], next_msg[8];
    int vote[8];
    int declare[8];
};

static void script_answer(const struct bz_beast *g, const struct bz_beast_request *rq,
                          struct bz_beast_action *a, void *ctx)
{
    struct script *s = ctx;
    int i = rq->agent;
    bz_beast_fallback(g, rq, a);
    switch (rq->kind) {
    case BZ_BEAST_PARTNERS:
        if (bz_beast_round(g) == 0) {
            a->n_partners = s->n_picks[i];
            memcpy(a->partners, s->picks[i], sizeof(int) * (size_t)s->n_picks[i]);
        }
        break;
    case BZ_BEAST_MESSAGE:
        if (s->next_msg[i] < s->n_msgs[i])
            a->msg = s->msgs[i][s->next_msg[i]++];
        break;
    case BZ_BEAST_DECLARE: a->target = s->declare[i]; break;
    case BZ_BEAST_VOTE:
        if (bz_beast_active(g, s->vote[i]) && s->vote[i] != i)
            a->target = s->vote[i];
        break;
    default: break;
    }
}

static struct bz_beast_msg M(int offer, int64_t amount, int accept) {
    return (struct bz_beast_msg){offer, amount, accept, 0, -1, -1};
}

static void
small_config(struct bz_beast_config *c, int n)
{
    bz_beast_config_default(c);
    c->n_agents = n;
    c->bonus_slots = 1;
    c->eliminations = 1;
    c->max_rounds = 1;
}

static void agent_in_three_conversations_should_get_three_requests_in_one_step(void **state)
{
    (void)state;
    struct bz_beast_config c;
    small_config(&c, 4);
    struct bz_beast *g = make(&c, 3);
    struct script s = {0};
    s.n_picks[0] = 3;
    s.picks[0][0] = 1, s.picks[0][1] = 2, s.picks[0][2] = 3;
    struct bz_beast_request rq[BZ_BEAST_MAX_REQUESTS];
    struct bz_beast_action acts[BZ_BEAST_MAX_REQUESTS];
    struct bz_err err = {0};
    int k = bz_beast_requests(g, rq, BZ_BEAST_MAX_REQUESTS);
    assert_int_equal(k, 4);
    for (int i = 0; i < k; i++)
        script_answer(g, &rq[i], &acts[i], &s);
    assert_int_equal(bz_beast_step(g, rq, acts, k, &err), BZ_OK);
    assert_int_equal(bz_beast_phase(g), BZ_BEAST_PH_TALK);
    k = bz_beast_requests(g, rq, BZ_BEAST_MAX_REQUESTS);
    assert_int_equal(k, 3); /* agent 0 opens all three: slots 0, 1, 2 */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rq[i].agent, 0);
        assert_int_equal(rq[i].slot, i);
        assert_int_equal(rq[i].kind, BZ_BEAST_MESSAGE);
        assert_int_equal(rq[i].conv, i);
        assert_int_equal(bz_beast_conv(g, i)->opener, 0);
        assert_int_equal(bz_beast_conv(g, i)->picked_by, 1);
    }
    bz_beast_destroy(g);
}

static void more_conversations_than_slots_should_spread_over_steps(void **state)
{
    (void)state;
    struct bz_beast_config c;
    small_config(&c, 6);
    c.exchanges = 2;
    struct bz_beast *g = make(&c, 3);
    struct script s = {0};
    for (int i = 1; i < 6; i++)
        s.n_picks[i] = 1; /* everybody picks agent 0 */
    struct watch w = {0};
    play(g, script_answer, &s, &w);
    assert_int_equal(w.max_requests_one_agent, 3); /* agent 0 answers 5 in steps of 3 */
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    assert_int_equal(rec.n_convs, 5);
    int replies_step[8] = {0};
    for (int i = 0; i < rec.n_msgs; i++) {
        if (rec.msgs[i].sender == 0)
            replies_step[rec.msgs[i].step]++;
        assert_int_equal(rec.msgs[i].index == 0, rec.msgs[i].sender != 0);
    }
    assert_int_equal(replies_step[1], 3);
    assert_int_equal(replies_step[2], 2);
    bz_beast_destroy(g);
}

static void accepted_affordable_transfer_should_execute_and_end_the_conversation(void **state)
{
    (void)state;
    struct bz_beast_config c;
    small_config(&c, 3);
    struct bz_beast *g = make(&c, 11);
    int64_t w0 = bz_beast_wealth(g, 0), w1 = bz_beast_wealth(g, 1);
    struct script s = {0};
    s.n_picks[0] = 1, s.picks[0][0] = 1;
    s.msgs[0][0] = M(BZ_BEAST_OFFER_GIVE, 1, 0); /* 0 offers 1 unit */
    s.msgs[1][0] = M(BZ_BEAST_OFFER_NONE, 0, 1); /* 1 accepts */
    s.n_msgs[0] = s.n_msgs[1] = 1;
    s.vote[0] = 1, s.vote[1] = 0, s.vote[2] = 0, s.declare[0] = 1, s.declare[1] = -1;
    s.declare[2] = 1;
    struct watch w = {0};
    play(g, script_answer, &s, &w);
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    assert_int_equal(rec.n_transfers, 1);
    assert_int_equal(rec.transfers[0].payer, 0);
    assert_int_equal(rec.transfers[0].payee, 1);
    assert_int_equal(rec.transfers[0].offered_by_payer, 1);
    assert_int_equal(rec.transfers[0].executed, 1);
    assert_int_equal(rec.convs[0].end, BZ_BEAST_END_TRANSFER);
    assert_int_equal(rec.convs[0].n_msgs, 2);
    assert_true(rec.wealth[0].transfers_out == 1 && rec.wealth[1].transfers_in == 1);
    /* 0 got 2 votes: eliminated with the bonus */
    assert_int_equal(bz_beast_eliminated_in(g, 0), 0);
    assert_true(bz_beast_wealth(g, 0) == w0 - 1 + 250000);
    assert_true(bz_beast_wealth(g, 1) == w1 + 1);
    assert_int_equal(rec.outcomes[0].elim_round, 0);
    assert_int_equal(rec.outcomes[1].elim_round, -1);
    assert_int_equal(rec.outcomes[0].rank, 1);
    /* 0 promised (declared 1, voted 1; paid what it offered): 2 of 2 */
    assert_int_equal(rec.outcomes[0].promises_made, 2);
    assert_int_equal(rec.outcomes[0].promises_kept, 2);
    assert_true(isnan(rec.outcomes[1].promises_kept_share));
    assert_true(rec.outcomes[2].promises_kept_share == 0.0); /* declared 1, voted 0 */
    bz_beast_destroy(g);
}

static void unaffordable_or_unanswered_offers_should_be_recorded_not_executed(void **state)
{
    (void)state;
    struct bz_beast_config c;
    small_config(&c, 3);
    c.exchanges = 4;
    struct bz_beast *g = make(&c, 11);
    int64_t w1 = bz_beast_wealth(g, 1);
    struct script s = {0};
    s.n_picks[0] = 1, s.picks[0][0] = 1;
    s.msgs[0][0] = M(BZ_BEAST_OFFER_ASK, w1 + 1, 0); /* 1 cannot pay this */
    s.msgs[1][0] = M(BZ_BEAST_OFFER_NONE, 0, 1);     /* accepts anyway */
    s.msgs[0][1] = M(BZ_BEAST_OFFER_ASK, 5, 0);      /* ignored */
    s.msgs[1][1] = M(BZ_BEAST_OFFER_GIVE, 7, 0);     /* last message: nobody answers */
    s.n_msgs[0] = s.n_msgs[1] = 2;
    s.vote[0] = 1, s.vote[1] = 2, s.vote[2] = 0, s.declare[0] = s.declare[1] = -1;
    s.declare[2] = -1;
    struct watch w = {0};
    play(g, script_answer, &s, &w);
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    assert_int_equal(rec.n_transfers, 3);
    assert_int_equal(rec.transfers[0].payer, 1);
    assert_int_equal(rec.transfers[0].offered_by_payer, 0);
    assert_int_equal(rec.transfers[0].accepted, 1);
    assert_int_equal(rec.transfers[0].why_not, BZ_BEAST_CANNOT_AFFORD);
    assert_int_equal(rec.transfers[1].why_not, BZ_BEAST_NOT_ACCEPTED);
    assert_int_equal(rec.transfers[2].why_not, BZ_BEAST_NOT_ACCEPTED);
    assert_int_equal(rec.transfers[2].offered_by_payer, 1);
    assert_int_equal(rec.convs[0].end, BZ_BEAST_END_EXCHANGES);
    assert_int_equal(rec.wealth[1].transfers_out, 0);
    assert_int_equal(rec.outcomes[1].promises_made, 1); /* accepted an ask, could not pay */
    assert_int_equal(rec.outcomes[1].promises_kept, 0);
    /* a three-way tie (1 vote each): the environment picks one */
    assert_true(bz_beast_eliminated_in(g, 0) >= 0);
    bz_beast_destroy(g);
}

struct why_case {
    const char *name;
    int kind;
    int n_partners, partners[4];
    struct bz_beast_msg msg;
    int target;
    int why;
};

static void admissibility_should_name_the_reason(void **state)
{
    (void)state;
    struct bz_beast_config c;
    small_config(&c, 4);
    c.partners = 2;
    struct bz_beast *g = make(&c, 5);
    const struct bz_beast_request part = {0, 0, BZ_BEAST_PARTNERS, -1};
    static const struct why_case pcases[] = {
        {"none", BZ_BEAST_PARTNERS, 0, {0}, {0}, -1, BZ_BEAST_OK},
        {"two", BZ_BEAST_PARTNERS, 2, {1, 3}, {0}, -1, BZ_BEAST_OK},
        {"three", BZ_BEAST_PARTNERS, 3, {1, 2, 3}, {0}, -1, BZ_BEAST_TOO_MANY},
        {"self", BZ_BEAST_PARTNERS, 1, {0}, {0}, -1, BZ_BEAST_SELF_TARGET},
        {"unknown", BZ_BEAST_PARTNERS, 1, {9}, {0}, -1, BZ_BEAST_BAD_TARGET},
        {"twice", BZ_BEAST_PARTNERS, 2, {2, 2}, {0}, -1, BZ_BEAST_DUPLICATE},
        {"vote here", BZ_BEAST_VOTE, 0, {0}, {0}, 1, BZ_BEAST_WRONG_KIND},
    };
    for (size_t i = 0; i < sizeof pcases / sizeof *pcases; i++) {
        struct bz_beast_action a = {0};
        a.kind = pcases[i].kind;
        a.n_partners = pcases[i].n_partners;
        memcpy(a.partners, pcases[i].partners, sizeof pcases[i].partners);
        a.target = pcases[i].target;
        if (bz_beast_check(g, &part, &a) != pcases[i].why)
            fail_msg("%s: %s", pcases[i].name, bz_beast_why_name(bz_beast_check(g, &part, &a)));
    }
    /* open a conversation 0-1, then check messages */
    struct bz_beast_request rq[BZ_BEAST_MAX_REQUESTS];
    struct bz_beast_action acts[BZ_BEAST_MAX_REQUESTS];
    struct bz_err err = {0};
    struct script s = {0};
    s.n_picks[0] = 1, s.picks[0][0] = 1;
    int k = bz_beast_requests(g, rq, BZ_BEAST_MAX_REQUESTS);
    for (int i = 0; i < k; i++)
        script_answer(g, &rq[i], &acts[i], &s);
    assert_int_equal(bz_beast_step(g, rq, acts, k, &err), BZ_OK);
    assert_int_equal(bz_beast_requests(g, rq, BZ_BEAST_MAX_REQUESTS), 1);
    static const struct why_case mcases[] = {
        {"empty", 0, 0, {0}, {0, 0, 0, 0, -1, -1}, 0, BZ_BEAST_OK},
        {"give", 0, 0, {0}, {1, 10, 0, 0, 2, 0}, 0, BZ_BEAST_OK},
        {"zero", 0, 0, {0}, {1, 0, 0, 0, -1, -1}, 0, BZ_BEAST_BAD_AMOUNT},
        {"huge", 0, 0, {0}, {2, BZ_BEAST_MAX_AMOUNT + 1, 0, 0, -1, -1}, 0, BZ_BEAST_BAD_AMOUNT},
        {"kind", 0, 0, {0}, {3, 5, 0, 0, -1, -1}, 0, BZ_BEAST_BAD_OFFER},
        {"accept nothing", 0, 0, {0}, {0, 0, 1, 0, -1, -1}, 0, BZ_BEAST_NOTHING_TO_ACCEPT},
        {"offer and leave", 0, 0, {0}, {2, 5, 0, 1, -1, -1}, 0, BZ_BEAST_OFFER_AND_LEAVE},
        {"promise self", 0, 0, {0}, {0, 0, 0, 0, 0, -1}, 0, BZ_BEAST_SELF_TARGET},
        {"ask partner to vote itself", 0, 0, {0}, {0, 0, 0, 0, -1, 1}, 0, BZ_BEAST_SELF_TARGET},
    };
    for (size_t i = 0; i < sizeof mcases / sizeof *mcases; i++) {
        struct bz_beast_action a = {0};
        a.kind = BZ_BEAST_MESSAGE;
        a.msg = mcases[i].msg;
        if (bz_beast_check(g, &rq[0], &a) != mcases[i].why)
            fail_msg("%s: %s", mcases[i].name, bz_beast_why_name(bz_beast_check(g, &rq[0], &a)));
    }
    /* an inadmissible message is replaced by the fallback and counted */
    acts[0] = (struct bz_beast_action){0};
    acts[0].kind = BZ_BEAST_MESSAGE;
    acts[0].msg = (struct bz_beast_msg){0, 0, 1, 0, -1, -1};
    assert_int_equal(bz_beast_step(g, rq, acts, 1, &err), BZ_OK);
    /* the reply may now accept the open offer? there is none: fallback was empty */
    k = bz_beast_requests(g, rq, BZ_BEAST_MAX_REQUESTS);
    assert_int_equal(k, 1);
    assert_int_equal(rq[0].agent, 1);
    assert_null(bz_beast_open_offer(g, rq[0].conv));
    /* answering with a stale list is refused and changes nothing */
    struct bz_beast_request stale = {0, 0, BZ_BEAST_MESSAGE, 0};
    assert_int_equal(bz_beast_step(g, &stale, acts, 1, &err), BZ_EINVAL);
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    assert_int_equal(rec.msgs[0].fallback, 1);
    assert_int_equal(rec.n_msgs, 1);
    bz_beast_destroy(g);
}

/* 2-2 tie between agents 0 and 1 in a 4-player game. */
static int tie_winner(uint64_t seed)
{
    struct bz_beast_config c;
    small_config(&c, 4);
    struct bz_beast *g = make(&c, seed);
    struct script s = {0};
    s.vote[0] = 1, s.vote[1] = 0, s.vote[2] = 1, s.vote[3] = 0;
    for (int i = 0; i < 4; i++)
        s.declare[i] = -1;
    struct watch w = {0};
    play(g, script_answer, &s, &w);
    int e = bz_beast_eliminated_in(g, 0);
    assert_int_equal(bz_beast_tally(g, 0, 0), 2);
    assert_int_equal(bz_beast_tally(g, 0, 1), 2);
    bz_beast_destroy(g);
    return e;
}

static void vote_ties_should_be_broken_by_the_env_seed(void **state)
{
    (void)state;
    int count[4] = {0};
    for (uint64_t seed = 0; seed < 64; seed++) {
        int e = tie_winner(seed);
        assert_true(e == 0 || e == 1);
        assert_int_equal(tie_winner(seed), e); /* same seed, same result */
        count[e]++;
    }
    assert_true(count[0] > 10 && count[1] > 10); /* both reachable: binomial(64, 1/2) */
}

static void bonus_should_go_only_to_the_first_bonus_slots_eliminated(void **state)
{
    (void)state;
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    c.n_agents = 6;
    c.eliminations = 4;
    c.bonus_slots = 2;
    c.max_rounds = 10;
    struct bz_beast *g = make(&c, 21);
    struct lineup l = {0};
    for (int i = 0; i < 6; i++)
        l.seat[i] = (struct seat){BZ_BEAST_ZI, 0};
    lineup_init(&l, 6, 99);
    struct watch w = {0};
    play(g, heuristic_answer, &l, &w); /* check_round asserts bonus per round */
    struct bz_beast_records rec;
    bz_beast_records(g, &rec);
    assert_int_equal(rec.rounds, 4);
    int paid = 0;
    for (int i = 0; i < rec.n_wealth; i++)
        if (rec.wealth[i].bonus) {
            paid++;
            assert_true(rec.wealth[i].round < 2);
        }
    assert_int_equal(paid, 2);
    bz_beast_destroy(g);
}

static void max_rounds_should_end_the_game_early(void **state)
{
    (void)state;
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    c.max_rounds = 2;
    struct bz_beast *g = make(&c, 4);
    struct lineup l = {0};
    for (int i = 0; i < 10; i++)
        l.seat[i] = (struct seat){BZ_BEAST_ZI, 0};
    lineup_init(&l, 10, 1);
    play(g, heuristic_answer, &l, NULL);
    assert_int_equal(bz_beast_eliminated(g), 2);
    bz_beast_destroy(g);
}

/* ---- random and heuristic games ---- */

static void mixed_lineup(struct lineup *l, int n, uint64_t seed)
{
    struct bz_rng r;
    bz_rng_init(&r, seed, 12345);
    for (int i = 0; i < n; i++) {
        l->seat[i].policy = (int)bz_rng_below(&r, BZ_BEAST_N_POLICIES);
        l->seat[i].skill = bz_rng_uniform(&r);
    }
    l->check_admissible = 1;
    lineup_init(l, n, seed + 1000);
}

static void every_game_should_keep_the_invariants(void **state)
{
    (void)state;
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    struct bz_beast *g = make(&c, 0);
    struct lineup l = {0};
    long steps = 0, transfers = 0, executed = 0, unaffordable = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        c.communication = (int)(seed & 1);
        c.partners = (int)(seed % 5);
        c.exchanges = 1 + (int)(seed % 6);
        c.n_agents = seed % 5 == 0 ? 5 : seed % 7 == 0 ? 2 : seed % 11 == 0 ? 24 : 10;
        c.eliminations = c.n_agents - 1 < 5 ? c.n_agents - 1 : 5 + (int)(seed % 3);
        c.bonus_slots = seed % 3 == 0 ? 2 : 5; /* later rounds have no bonus */
        c.max_rounds = seed % 13 == 0 ? 3 : 10;
        c.max_slots = 1 + (int)(seed % 3);
        bz_beast_destroy(g);
        g = make(&c, seed);
        mixed_lineup(&l, c.n_agents, seed);
        struct watch w = {0};
        steps += play(g, heuristic_answer, &l, &w);
        struct bz_beast_records rec;
        bz_beast_records(g, &rec);
        for (int t = 0; t < rec.n_transfers; t++) {
            transfers++;
            executed += rec.transfers[t].executed;
            unaffordable += rec.transfers[t].why_not == BZ_BEAST_CANNOT_AFFORD;
        }
        /* the eliminated never talk after their round */
        for (int i = 0; i < rec.n_convs; i++) {
            int ea = rec.outcomes[rec.convs[i].a].elim_round;
            int eb = rec.outcomes[rec.convs[i].b].elim_round;
            assert_true(ea < 0 || ea >= rec.convs[i].round);
            assert_true(eb < 0 || eb >= rec.convs[i].round);
        }
        int64_t top = rec.outcomes[0].final_wealth;
        for (int i = 0; i < c.n_agents; i++) {
            int rank = 1;
            for (int j = 0; j < c.n_agents; j++)
                rank += rec.outcomes[j].final_wealth > rec.outcomes[i].final_wealth;
            assert_int_equal(rec.outcomes[i].rank, rank);
            assert_int_equal(rec.outcomes[i].invalid_actions, 0);
            top = rec.outcomes[i].final_wealth > top ? rec.outcomes[i].final_wealth : top;
        }
    }
    /* the games exercised every path the checks look at */
    assert_true(transfers > 1000 && executed > 100 && unaffordable > 0);
    print_message("300 games, %ld steps, %ld offers, %ld executed, %ld unaffordable\n", steps,
                  transfers, executed, unaffordable);
    bz_beast_destroy(g);
}

static void same_seeds_should_give_identical_records(void **state)
{
    (void)state;
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    struct bz_beast *g = make(&c, 77), *h = make(&c, 77);
    struct lineup l1 = {0}, l2 = {0};
    mixed_lineup(&l1, 10, 5);
    mixed_lineup(&l2, 10, 5);
    play(g, heuristic_answer, &l1, NULL);
    play(h, heuristic_answer, &l2, NULL);
    struct bz_beast_records a, b;
    bz_beast_records(g, &a);
    bz_beast_records(h, &b);
    assert_int_equal(a.n_msgs, b.n_msgs);
    assert_int_equal(a.n_transfers, b.n_transfers);
    assert_memory_equal(a.msgs, b.msgs, sizeof *a.msgs * (size_t)a.n_msgs);
    assert_memory_equal(a.transfers, b.transfers, sizeof *a.transfers * (size_t)a.n_transfers);
    assert_memory_equal(a.votes, b.votes, sizeof *a.votes * (size_t)a.n_votes);
    assert_memory_equal(a.wealth, b.wealth, sizeof *a.wealth * (size_t)a.n_wealth);
    assert_memory_equal(a.convs, b.convs, sizeof *a.convs * (size_t)a.n_convs);
    for (int i = 0; i < 10; i++)
        assert_true(a.outcomes[i].final_wealth == b.outcomes[i].final_wealth);
    /* reset replays the same game without reallocating */
    bz_beast_reset(g, 77);
    mixed_lineup(&l1, 10, 5);
    play(g, heuristic_answer, &l1, NULL);
    bz_beast_records(g, &a);
    assert_memory_equal(a.votes, b.votes, sizeof *a.votes * (size_t)a.n_votes);
    assert_memory_equal(a.wealth, b.wealth, sizeof *a.wealth * (size_t)a.n_wealth);
    bz_beast_destroy(g);
    bz_beast_destroy(h);
}

/* zi's reasoned action is ZI-C: random, but it never pays (no transfer with
 * a skill-1 zi payer executes) while it does collect, and each of its votes
 * is a harmless gift when one exists; at skill 0 (ZI-U) it does pay. */
static int zi_votes, zi_harmful;

static void zi_watch_answer(const struct bz_beast *g, const struct bz_beast_request *rq,
                            struct bz_beast_action *a, void *ctx)
{
    struct lineup *l = ctx;
    heuristic_answer(g, rq, a, ctx);
    int self = rq->agent;
    if (rq->kind != BZ_BEAST_VOTE || l->seat[self].policy != BZ_BEAST_ZI || l->seat[self].skill < 1)
        return;
    int64_t ws = bz_beast_wealth(g, self), wt = bz_beast_wealth(g, a->target);
    int any = 0;
    for (int j = 0; j < bz_beast_cfg(g)->n_agents; j++) {
        int64_t wj = bz_beast_wealth(g, j);
        any |= j != self && bz_beast_active(g, j) && (wj >= ws || wj + bz_beast_prize(g) < ws);
    }
    zi_votes++;
    zi_harmful += any && !(wt >= ws || wt + bz_beast_prize(g) < ws);
}

static void zi_should_never_trade_at_a_loss_at_skill_1(void **state)
{
    (void)state;
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    long paid[2] = {0}, got[2] = {0};
    for (int k = 0; k < 2; k++)
        for (uint64_t seed = 0; seed < 40; seed++) {
            struct bz_beast *g = make(&c, seed);
            struct lineup l = {0};
            mixed_lineup(&l, 10, seed);
            for (int i = 0; i < 10; i += 2)
                l.seat[i] = (struct seat){BZ_BEAST_ZI, (double)k};
            lineup_init(&l, 10, seed + 1000);
            zi_votes = zi_harmful = 0;
            play(g, zi_watch_answer, &l, NULL);
            struct bz_beast_records rec;
            bz_beast_records(g, &rec);
            for (int t = 0; t < rec.n_transfers; t++) {
                const struct bz_beast_transfer_row *tr = &rec.transfers[t];
                paid[k] += tr->executed && tr->payer % 2 == 0;
                got[k] += tr->executed && tr->payee % 2 == 0;
            }
            assert_true(k == 0 || zi_votes > 0);
            assert_int_equal(zi_harmful, 0);
            bz_beast_destroy(g);
        }
    print_message("zi transfers paid/received: skill 0 %ld/%ld, skill 1 %ld/%ld\n", paid[0], got[0],
                  paid[1], got[1]);
    assert_true(paid[0] > 0);
    assert_int_equal(paid[1], 0);
    assert_true(got[1] > 0);
    assert_int_equal(bz_beast_policy_parse("mercenary"), BZ_BEAST_MERCENARY);
    assert_int_equal(bz_beast_policy_parse("nope"), -1);
}

/* Mean final wealth and rank of the seat 0 policy at `skill` in a fixed mixed
 * lineup, over `games` seeds (seat 0 rotates so wealth draws even out). */
struct perf {
    double wealth, rank, bonus_share, kept; /* kept: mean promises_kept_share */
};

static const int base_lineup[10] = {
    BZ_BEAST_LOYAL, BZ_BEAST_LOYAL, BZ_BEAST_MERCENARY, BZ_BEAST_MERCENARY, BZ_BEAST_ZI,
    BZ_BEAST_ZI,    BZ_BEAST_BULLY, BZ_BEAST_BULLY,     BZ_BEAST_LOYAL,     BZ_BEAST_ZI};

static struct perf measure(int policy, double skill, int communication, int games)
{
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    c.communication = communication;
    struct bz_beast *g = make(&c, 0);
    struct perf p = {0};
    struct lineup l = {0};
    double kept_sum = 0;
    int kept_n = 0;
    for (int s = 0; s < games; s++) {
        int focal = s % 10;
        for (int i = 0; i < 10; i++)
            l.seat[i] = (struct seat){base_lineup[(i - focal + 10) % 10], 0.8};
        l.seat[focal] = (struct seat){policy, skill};
        l.check_admissible = 1;
        lineup_init(&l, 10, 5000 + (uint64_t)s);
        bz_beast_reset(g, 100 + (uint64_t)s); /* paired: same draws for every skill */
        play(g, heuristic_answer, &l, NULL);
        struct bz_beast_records rec;
        bz_beast_records(g, &rec);
        p.wealth += (double)rec.outcomes[focal].final_wealth / games;
        p.rank += (double)rec.outcomes[focal].rank / games;
        p.bonus_share += (rec.outcomes[focal].elim_round >= 0) / (double)games;
        double share = rec.outcomes[focal].promises_kept_share;
        kept_sum += isnan(share) ? 0 : share;
        kept_n += !isnan(share);
    }
    p.kept = kept_n ? kept_sum / kept_n : NAN;
    bz_beast_destroy(g);
    return p;
}

static void skill_should_raise_wealth_and_rank_of_each_reasoned_policy(void **state)
{
    (void)state;
    const int games = 600;
    static const int pol[] = {BZ_BEAST_LOYAL, BZ_BEAST_MERCENARY, BZ_BEAST_BULLY};
    double kept[3];
    for (size_t i = 0; i < sizeof pol / sizeof *pol; i++) {
        struct perf lo = measure(pol[i], 0.0, 1, games), hi = measure(pol[i], 1.0, 1, games);
        print_message("%-9s skill 0: wealth %8.0f rank %.2f bonus %.2f kept %.2f | skill 1: "
                      "wealth %8.0f rank %.2f bonus %.2f kept %.2f\n",
                      bz_beast_policy_name(pol[i]), lo.wealth, lo.rank, lo.bonus_share, lo.kept,
                      hi.wealth, hi.rank, hi.bonus_share, hi.kept);
        assert_true(hi.wealth > lo.wealth + 10000);
        assert_true(hi.rank < lo.rank - 0.3);
        kept[i] = hi.kept;
    }
    /* loyal and bully keep their word; the mercenary breaks it when it pays */
    assert_true(kept[0] > 0.95 && kept[2] > 0.95 && kept[1] < kept[0] - 0.05);
    /* zi: ZI-U at skill 0, ZI-C (never pays, harmless votes) at skill 1 */
    struct perf z0 = measure(BZ_BEAST_ZI, 0.0, 1, games), zh = measure(BZ_BEAST_ZI, 0.5, 1, games),
                z1 = measure(BZ_BEAST_ZI, 1.0, 1, games);
    print_message("zi        skill 0: wealth %8.0f rank %.2f | 0.5: wealth %8.0f rank %.2f | 1: "
                  "wealth %8.0f rank %.2f\n",
                  z0.wealth, z0.rank, zh.wealth, zh.rank, z1.wealth, z1.rank);
    assert_true(z0.wealth < zh.wealth && zh.wealth < z1.wealth);
    assert_true(z1.rank < z0.rank);
}

static void communication_should_change_outcomes(void **state)
{
    (void)state;
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    int differ = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        int64_t fw[2][10];
        for (int comm = 0; comm < 2; comm++) {
            c.communication = comm;
            struct bz_beast *g = make(&c, seed);
            struct lineup l = {0};
            for (int i = 0; i < 10; i++)
                l.seat[i] = (struct seat){base_lineup[i], 1.0};
            lineup_init(&l, 10, seed);
            play(g, heuristic_answer, &l, NULL);
            struct bz_beast_records rec;
            bz_beast_records(g, &rec);
            for (int i = 0; i < 10; i++)
                fw[comm][i] = rec.outcomes[i].final_wealth;
            /* promises are recorded either way, but seen only with communication */
            for (int m = 0; m < rec.n_msgs; m++)
                if (!comm)
                    assert_int_equal(bz_beast_seen_promise(g, &rec.msgs[m]), -1);
            int declared = 0;
            for (int v = 0; v < rec.n_votes; v++) {
                const struct bz_beast_vote_row *vr = &rec.votes[v];
                int other = (vr->voter + 1) % 10;
                declared += vr->declared_vote >= 0;
                assert_int_equal(bz_beast_seen_declared(g, vr->voter, vr->round, vr->voter),
                                 vr->declared_vote);
                assert_int_equal(bz_beast_seen_declared(g, other, vr->round, vr->voter),
                                 comm ? vr->declared_vote : -1);
            }
            assert_true(declared > 0);
            bz_beast_destroy(g);
        }
        differ += memcmp(fw[0], fw[1], sizeof fw[0]) != 0;
    }
    print_message("communication on vs off: %d of 40 games end differently\n", differ);
    assert_true(differ >= 10);
    for (int p = 0; p < BZ_BEAST_N_POLICIES; p++) { /* measured, not asserted */
        struct perf on = measure(p, 1.0, 1, 300), off = measure(p, 1.0, 0, 300);
        print_message("%-9s skill 1: wealth %.0f rank %.2f (communication) vs %.0f %.2f (none)\n",
                      bz_beast_policy_name(p), on.wealth, on.rank, off.wealth, off.rank);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_should_reject_out_of_range_parameters),
        cmocka_unit_test(wealth_should_be_uniform_in_range_and_depend_on_the_env_seed_only),
        cmocka_unit_test(agent_in_three_conversations_should_get_three_requests_in_one_step),
        cmocka_unit_test(more_conversations_than_slots_should_spread_over_steps),
        cmocka_unit_test(accepted_affordable_transfer_should_execute_and_end_the_conversation),
        cmocka_unit_test(unaffordable_or_unanswered_offers_should_be_recorded_not_executed),
        cmocka_unit_test(admissibility_should_name_the_reason),
        cmocka_unit_test(vote_ties_should_be_broken_by_the_env_seed),
        cmocka_unit_test(bonus_should_go_only_to_the_first_bonus_slots_eliminated),
        cmocka_unit_test(max_rounds_should_end_the_game_early),
        cmocka_unit_test(every_game_should_keep_the_invariants),
        cmocka_unit_test(same_seeds_should_give_identical_records),
        cmocka_unit_test(zi_should_never_trade_at_a_loss_at_skill_1),
        cmocka_unit_test(skill_should_raise_wealth_and_rank_of_each_reasoned_policy),
        cmocka_unit_test(communication_should_change_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
