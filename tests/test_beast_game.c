/* test_beast_game: the beast game through the platform (bz_beast_ops driven by
 * bz_match): the issue's checks on the records the platform writes (wealth
 * conserved per round, no transfer beyond the payer's wealth, eliminated
 * players never asked again, one elimination per round, both votes recorded
 * for every active player, deterministic ties and games), one player asked in
 * three conversations of one step answering all three, replies parsed and
 * checked, and observations that hide what communication off hides. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "bazaar/match.h"
#include "bazaar/prompt.h"
#include "games/beast_game.h"
#include "llm/llm_internal.h"

struct setup {
    struct bz_game_config cfg;
    struct bz_agent_spec agents[BZ_BEAST_MAX_AGENTS];
};

static const char *const mix[] = {"loyal", "mercenary", "zi", "bully"};

/* n seats cycling through the four policies at skill; LLM seats in llm_mask. */
static void setup_init(struct setup *s, int n, double skill, unsigned llm_mask)
{
    memset(s, 0, sizeof *s);
    s->cfg.game_id = 5;
    s->cfg.ops = &bz_beast_ops;
    s->cfg.seed = 11;
    s->cfg.env_seed = 23;
    s->cfg.n_agents = n;
    s->cfg.communication = 1;
    s->cfg.lineup_name = "test";
    for (size_t i = 0; i < bz_beast_ops.n_params; i++)
        s->cfg.num[i] = bz_beast_ops.params[i].def;
    s->cfg.num[BZ_BEAST_P_N_AGENTS] = n;
    for (int i = 0; i < n; i++) {
        struct bz_agent_spec *a = &s->agents[i];
        a->kind = llm_mask >> i & 1 ? BZ_AGENT_LLM : BZ_AGENT_HEURISTIC;
        const char *name = a->kind == BZ_AGENT_LLM ? "model" : mix[i % 4];
        snprintf(a->policy, sizeof a->policy, "%s", name);
        snprintf(a->label, sizeof a->label, "%s", name);
        a->skill = skill;
    }
    s->cfg.agents = s->agents;
}

#define ROWS(m, table, type, n) ((const type *)rows_of(bz_match_records(m), &(table), &(n)))

static const void *rows_of(const struct bz_records *rec, const struct bz_table_desc *d, size_t *n)
{
    const struct bz_rowbuf *rb = bz_records_find(rec, d);
    *n = rb ? rb->n_rows : 0;
    return rb ? rb->data : NULL;
}

static void assert_game_ok(struct bz_match *m)
{
    size_t n;
    const struct bz_games_row *g = ROWS(m, bz_games_table, struct bz_games_row, n);
    assert_int_equal(n, 1);
    if (strcmp(g->status, "ok") != 0)
        fail_msg("game failed: %s", g->error);
}

/* The issue's checks on one finished game's records. */
static void check_records(struct bz_match *m, const struct bz_game_config *cfg)
{
    int n = cfg->n_agents;
    int elims = (int)cfg->num[BZ_BEAST_P_ELIMINATIONS];
    int max_rounds = (int)cfg->num[BZ_BEAST_P_MAX_ROUNDS];
    int bonus_slots = (int)cfg->num[BZ_BEAST_P_BONUS_SLOTS];
    int64_t bonus = (int64_t)cfg->num[BZ_BEAST_P_BONUS];
    int rounds = elims < max_rounds ? elims : max_rounds;
    size_t nw, nt, nv, nm, na, nmsg, nag;
    const struct bz_beast_wealth_trow *w =
        ROWS(m, bz_beast_wealth_table, struct bz_beast_wealth_trow, nw);
    const struct bz_beast_transfer_trow *t =
        ROWS(m, bz_beast_transfers_table, struct bz_beast_transfer_trow, nt);
    const struct bz_beast_vote_trow *v =
        ROWS(m, bz_beast_votes_table, struct bz_beast_vote_trow, nv);
    const struct bz_beast_message_trow *ms =
        ROWS(m, bz_beast_messages_table, struct bz_beast_message_trow, nm);
    const struct bz_beast_agent_trow *ba =
        ROWS(m, bz_beast_agents_table, struct bz_beast_agent_trow, na);
    const struct bz_messages_row *txt = ROWS(m, bz_messages_table, struct bz_messages_row, nmsg);
    const struct bz_agents_row *ag = ROWS(m, bz_agents_table, struct bz_agents_row, nag);
    assert_int_equal(nw, (size_t)(rounds * n));
    assert_int_equal(na, (size_t)n);
    assert_int_equal(nag, (size_t)n);

    int active[BZ_BEAST_MAX_AGENTS], elim_round[BZ_BEAST_MAX_AGENTS];
    int64_t wealth[BZ_BEAST_MAX_AGENTS];
    for (int i = 0; i < n; i++) {
        active[i] = 1;
        elim_round[i] = -1;
        wealth[i] = w[i].wealth_start;
    }
    size_t vi = 0, mi = 0;
    int eliminated_total = 0;
    for (int r = 0; r < rounds; r++) {
        /* the round's messages in the order they were applied: replay the
         * transfers on the wealth, each executed one within the payer's means */
        for (; mi < nm && ms[mi].round == r; mi++) {
            const struct bz_beast_message_trow *x = &ms[mi];
            assert_true(active[x->sender] && active[x->receiver]);
            if (!x->accept)
                continue;
            const struct bz_beast_transfer_trow *acc = NULL;
            for (size_t k = 0; k < nt; k++)
                if (t[k].conversation == x->conversation && t[k].message == x->index - 1)
                    acc = &t[k];
            assert_non_null(acc);
            assert_true(acc->accepted);
            if (acc->executed) {
                assert_true(acc->amount <= wealth[acc->payer]);
                wealth[acc->payer] -= acc->amount;
                wealth[acc->payee] += acc->amount;
            } else {
                assert_string_equal(acc->why_not, "cannot afford");
                assert_true(acc->amount > wealth[acc->payer]);
            }
        }
        assert_true(mi == nm || ms[mi].round > r);
        /* votes: one row per active player, the same eliminated in each */
        int n_active = 0, voted[BZ_BEAST_MAX_AGENTS] = {0};
        for (int i = 0; i < n; i++)
            n_active += active[i];
        int elim = -1;
        for (int k = 0; k < n_active; k++, vi++) {
            assert_true(vi < nv);
            assert_int_equal(v[vi].round, r);
            assert_true(active[v[vi].voter]);
            assert_false(voted[v[vi].voter]);
            voted[v[vi].voter] = 1;
            assert_true(v[vi].declared_vote == -1 || active[v[vi].declared_vote]);
            assert_true(active[v[vi].vote] && v[vi].vote != v[vi].voter);
            if (k == 0)
                elim = v[vi].eliminated;
            assert_int_equal(v[vi].eliminated, elim);
        }
        assert_true(elim >= 0 && active[elim]);
        /* wealth rows: conserved, bonus to the eliminated only */
        int64_t delta = 0, bonuses = 0, tin = 0, tout = 0;
        for (int i = 0; i < n; i++) {
            const struct bz_beast_wealth_trow *x = &w[r * n + i];
            assert_int_equal(x->round, r);
            assert_int_equal(x->agent, i);
            assert_int_equal(x->wealth_end,
                             x->wealth_start + x->transfers_in - x->transfers_out + x->bonus);
            assert_true(x->wealth_end >= 0);
            delta += x->wealth_end - x->wealth_start;
            bonuses += x->bonus;
            tin += x->transfers_in;
            tout += x->transfers_out;
            assert_int_equal(x->wealth_end, wealth[i] + x->bonus); /* the replay agrees */
            if (r + 1 < rounds)
                assert_int_equal(w[(r + 1) * n + i].wealth_start, x->wealth_end);
            if (i == elim) {
                assert_int_equal(x->bonus, eliminated_total < bonus_slots ? bonus : 0);
                assert_int_equal(x->active, 0);
            } else {
                assert_int_equal(x->bonus, 0);
                assert_int_equal(x->active, active[i]);
            }
            if (!active[i])
                assert_int_equal(x->transfers_in + x->transfers_out, 0);
        }
        assert_int_equal(delta, bonuses);
        assert_int_equal(tin, tout);
        for (int i = 0; i < n; i++)
            wealth[i] = w[r * n + i].wealth_end;
        active[elim] = 0;
        elim_round[elim] = r;
        eliminated_total++;
    }
    assert_int_equal(vi, nv);
    assert_int_equal(mi, nm);
    for (size_t k = 0; k < nmsg; k++) { /* /messages: round and conversation of a message */
        assert_true(cfg->communication);
        assert_int_equal(txt[k].round, txt[k].turn);
        assert_true(txt[k].conversation >= 0);
        int found = 0;
        for (size_t j = 0; j < nm && !found; j++)
            found = ms[j].conversation == txt[k].conversation && ms[j].sender == txt[k].sender &&
                    ms[j].round == txt[k].round;
        assert_true(found);
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(ba[i].agent, i);
        assert_int_equal(ba[i].final_wealth, wealth[i]);
        assert_true(ag[i].payoff == (double)wealth[i]);
        assert_int_equal(ba[i].elimination_round, elim_round[i]);
        int richer = 0;
        for (int j = 0; j < n; j++)
            richer += wealth[j] > wealth[i];
        assert_int_equal(ba[i].rank, 1 + richer);
        assert_true(ba[i].promises_kept <= ba[i].promises_made);
    }
}

/* Hook for all agents: heuristic seats decide, and the test sees every
 * request; an eliminated player is never asked. */
struct watch {
    int n_req;
    int max_slot_of_agent_in_step; /* most slots one agent held in one step */
};

static int watch_submit(void *ctx, struct bz_match *m, const struct bz_request *r,
                        struct bz_err *err)
{
    (void)err;
    struct watch *w = ctx;
    struct bz_game *g = bz_match_game(m);
    assert_true(bz_beast_active(g->eng, r->agent));
    assert_true(bz_beast_game_index(g, r) >= 0);
    w->n_req++;
    if (r->slot + 1 > w->max_slot_of_agent_in_step)
        w->max_slot_of_agent_in_step = r->slot + 1;
    const struct bz_game_config *cfg = bz_match_config(m);
    const struct bz_policy_ops *p = bz_game_policy(&bz_beast_ops, cfg->agents[r->agent].policy);
    assert_non_null(p);
    for (int i = 0; i < bz_game_n_requests(g); i++)
        if (bz_game_request(g, i)->agent == r->agent && bz_game_request(g, i)->slot == r->slot) {
            struct bz_rng rng;
            bz_rng_init(&rng, 99, (uint64_t)w->n_req);
            bz_game_decide(g, i, p, cfg->agents[r->agent].skill, &rng);
        }
    bz_match_decided(m, r->agent, r->slot);
    return BZ_OK;
}

static void beast_game_should_pass_the_issue_checks_on_its_records(void **state)
{
    (void)state;
    for (int comm = 0; comm <= 1; comm++)
        for (int seed = 0; seed < 12; seed++) {
            struct setup s;
            setup_init(&s, seed % 3 ? 10 : 6, seed % 2 ? 0.7 : 1.0, 0);
            s.cfg.communication = comm;
            s.cfg.num[BZ_BEAST_P_COMMUNICATION] = comm;
            s.cfg.seed = (uint64_t)seed;
            s.cfg.env_seed = 1000 + (uint64_t)seed;
            if (seed == 5) { /* fewer bonus slots than eliminations, more rounds */
                s.cfg.num[BZ_BEAST_P_BONUS_SLOTS] = 2;
                s.cfg.num[BZ_BEAST_P_WEALTH_MAX] = 1000;
                s.cfg.num[BZ_BEAST_P_EXCHANGES] = 8;
            }
            if (seed == 7) /* max_rounds ends the game first */
                s.cfg.num[BZ_BEAST_P_MAX_ROUNDS] = 3;
            struct watch w = {0};
            struct bz_llm_hook hook = {.ctx = &w, .submit = watch_submit, .all_agents = 1};
            struct bz_match *m = NULL;
            struct bz_err err = {0};
            assert_int_equal(bz_match_create(&s.cfg, &hook, &m, &err), BZ_OK);
            assert_int_equal(bz_match_play(m, &err), BZ_OK);
            assert_game_ok(m);
            check_records(m, &s.cfg);
            assert_true(w.n_req > 0);
            bz_match_destroy(m);
        }
}

/* Two plays of one config: every row the same. */
static void beast_game_should_be_deterministic(void **state)
{
    (void)state;
    struct bz_records *rec[2];
    struct bz_match *m[2];
    struct setup s;
    setup_init(&s, 10, 0.6, 0);
    for (int k = 0; k < 2; k++) {
        struct bz_err err = {0};
        assert_int_equal(bz_match_create(&s.cfg, NULL, &m[k], &err), BZ_OK);
        assert_int_equal(bz_match_play(m[k], &err), BZ_OK);
        assert_game_ok(m[k]);
        rec[k] = bz_match_records(m[k]);
    }
    const struct bz_table_desc *numeric[] = {&bz_beast_wealth_table, &bz_beast_votes_table,
                                             &bz_beast_agents_table};
    for (size_t i = 0; i < 3; i++) {
        size_t a, b;
        const void *ra = rows_of(rec[0], numeric[i], &a), *rb = rows_of(rec[1], numeric[i], &b);
        assert_int_equal(a, b);
        assert_memory_equal(ra, rb, a * numeric[i]->row_size);
    }
    size_t a, b;
    const struct bz_messages_row *x = rows_of(rec[0], &bz_messages_table, &a);
    const struct bz_messages_row *y = rows_of(rec[1], &bz_messages_table, &b);
    assert_int_equal(a, b);
    assert_true(a > 0);
    for (size_t k = 0; k < a; k++) {
        assert_int_equal(x[k].conversation, y[k].conversation);
        assert_string_equal(x[k].text, y[k].text);
    }
    bz_match_destroy(m[0]);
    bz_match_destroy(m[1]);
}

/* Every vote is the fallback (next active player): all tie, every round; the
 * environment stream breaks the tie the same way whatever the agents' seed. */
static int fallback_submit(void *ctx, struct bz_match *m, const struct bz_request *r,
                           struct bz_err *err)
{
    (void)ctx;
    (void)err;
    bz_game_fallback(bz_match_game(m), r->agent, r->slot);
    bz_match_decided(m, r->agent, r->slot);
    return BZ_OK;
}

static void eliminated_of(struct setup *s, int *out, int *n_out)
{
    struct bz_llm_hook hook = {.submit = fallback_submit, .all_agents = 1};
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s->cfg, &hook, &m, &err), BZ_OK);
    assert_int_equal(bz_match_play(m, &err), BZ_OK);
    assert_game_ok(m);
    check_records(m, &s->cfg);
    size_t nv;
    const struct bz_beast_vote_trow *v =
        ROWS(m, bz_beast_votes_table, struct bz_beast_vote_trow, nv);
    *n_out = 0;
    for (size_t k = 0; k < nv; k++)
        if (k == 0 || v[k].round != v[k - 1].round)
            out[(*n_out)++] = v[k].eliminated;
    bz_match_destroy(m);
}

static void beast_game_should_break_ties_from_the_environment(void **state)
{
    (void)state;
    int differ = 0;
    for (uint64_t env = 0; env < 6; env++) {
        struct setup s;
        setup_init(&s, 6, 1, 0);
        s.cfg.env_seed = env;
        int a[8], b[8], na, nb;
        s.cfg.seed = 1;
        eliminated_of(&s, a, &na);
        s.cfg.seed = 2; /* other agents' streams, same environment */
        s.cfg.communication = 0;
        s.cfg.num[BZ_BEAST_P_COMMUNICATION] = 0;
        eliminated_of(&s, b, &nb);
        assert_int_equal(na, 5);
        assert_int_equal(nb, 5);
        assert_memory_equal(a, b, sizeof(int) * 5);
        if (env > 0 && a[0] != 0)
            differ = 1;
    }
    assert_true(differ); /* a fixed rule would not depend on the environment */
}

/* ---- one LLM player in three conversations of one step ---- */

struct talk {
    int steps_seen; /* MESSAGE requests of agent 0 in the first talk step */
    int slots_seen[8];
    int convs_seen[8];
    int comm;
    int checked_hidden;
};

static void answer_json(struct bz_match *m, const struct bz_request *r, const char *json)
{
    cJSON *reply = cJSON_Parse(json);
    assert_non_null(reply);
    struct bz_err err = {0};
    enum bz_answer_fault f;
    if (bz_game_answer(bz_match_game(m), r->agent, r->slot, reply, &f, &err))
        fail_msg("reply %s refused: %s", json, err.msg);
    cJSON_Delete(reply);
}

static int talk_submit(void *ctx, struct bz_match *m, const struct bz_request *r,
                       struct bz_err *err)
{
    (void)err;
    struct talk *t = ctx;
    struct bz_game *g = bz_match_game(m);
    int k = bz_beast_game_index(g, r);
    assert_true(k >= 0);
    const struct bz_beast_request *q = &g->rq[k];
    char buf[512];
    switch (q->kind) {
    case BZ_BEAST_PARTNERS:
        answer_json(m, r,
                    r->agent == 0 && bz_beast_round(g->eng) == 0 ? "{\"partners\":[1,2,3]}"
                                                                 : "{\"partners\":[]}");
        break;
    case BZ_BEAST_MESSAGE: {
        const struct bz_beast_conv_row *c = bz_beast_conv(g->eng, q->conv);
        if (r->agent == 0 && c->n_msgs == 0 && t->steps_seen < 8) {
            t->slots_seen[t->steps_seen] = r->slot;
            t->convs_seen[t->steps_seen++] = q->conv;
        }
        /* the receiver of a message sees its text only with communication on */
        if (c->n_msgs == 1) {
            cJSON *obs = cJSON_CreateObject();
            struct bz_err e = {0};
            assert_int_equal(bz_beast_ops.observe(g, r, obs, &e), BZ_OK);
            char *s = cJSON_PrintUnformatted(obs);
            assert_true((strstr(s, "\"text\":\"from 0 in") != NULL) == t->comm);
            assert_true((strstr(s, "vote_promise") != NULL) == t->comm);
            const cJSON *meta = cJSON_GetObjectItem(obs, "meta");
            assert_int_equal(cJSON_GetObjectItem(meta, "conversation")->valueint, q->conv);
            free(s);
            cJSON_Delete(obs);
            t->checked_hidden++;
        }
        if (t->comm)
            snprintf(buf, sizeof buf,
                     "{\"offer\":\"none\",\"amount\":0,\"accept\":false,\"leave\":%s,"
                     "\"vote_promise\":4,\"vote_request\":-1,\"message\":\"from %d in c%d\"}",
                     c->n_msgs >= 1 ? "true" : "false", r->agent, q->conv);
        else
            snprintf(buf, sizeof buf,
                     "{\"offer\":\"none\",\"amount\":0,\"accept\":false,\"leave\":%s}",
                     c->n_msgs >= 1 ? "true" : "false");
        answer_json(m, r, buf);
        break;
    }
    case BZ_BEAST_DECLARE: answer_json(m, r, "{\"declared_vote\":-1}"); break;
    default: {
        /* a vote for oneself is refused, naming the field; then a valid one */
        struct bz_err e = {0};
        enum bz_answer_fault f;
        snprintf(buf, sizeof buf, "{\"vote\":%d}", r->agent);
        cJSON *bad = cJSON_Parse(buf);
        assert_int_equal(bz_game_answer(g, r->agent, r->slot, bad, &f, &e), BZ_EINVAL);
        assert_int_equal(f, BZ_ANSWER_INADMISSIBLE);
        assert_non_null(strstr(e.msg, "vote"));
        cJSON_Delete(bad);
        cJSON *extra = cJSON_Parse("{\"vote\":1,\"why\":\"x\"}");
        assert_int_equal(bz_game_answer(g, r->agent, r->slot, extra, &f, &e), BZ_EINVAL);
        assert_int_equal(f, BZ_ANSWER_SCHEMA);
        cJSON_Delete(extra);
        int target = -1;
        for (int j = 0; j < g->n && target < 0; j++)
            if (j != r->agent && bz_beast_active(g->eng, j))
                target = j;
        snprintf(buf, sizeof buf, "{\"vote\":%d}", target);
        answer_json(m, r, buf);
    }
    }
    bz_match_decided(m, r->agent, r->slot);
    return BZ_OK;
}

static void player_in_three_conversations_should_get_three_answers(void **state)
{
    (void)state;
    for (int comm = 0; comm <= 1; comm++) {
        struct setup s;
        setup_init(&s, 6, 1, 0x3fu); /* all LLM seats, answered by the hook */
        s.cfg.communication = comm;
        s.cfg.num[BZ_BEAST_P_COMMUNICATION] = comm;
        struct talk t = {.comm = comm};
        struct bz_llm_hook hook = {.ctx = &t, .submit = talk_submit};
        struct bz_match *m = NULL;
        struct bz_err err = {0};
        assert_int_equal(bz_match_create(&s.cfg, &hook, &m, &err), BZ_OK);
        assert_int_equal(bz_match_play(m, &err), BZ_OK);
        assert_game_ok(m);
        check_records(m, &s.cfg);
        assert_int_equal(t.steps_seen, 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(t.slots_seen[i], i); /* one step, slots 0, 1, 2 */
        assert_int_equal(t.checked_hidden, 3);
        size_t nm, nt;
        const struct bz_beast_message_trow *ms =
            ROWS(m, bz_beast_messages_table, struct bz_beast_message_trow, nm);
        int first = 0;
        for (size_t k = 0; k < nm; k++)
            if (ms[k].round == 0 && ms[k].sender == 0 && ms[k].step == 0) {
                assert_int_equal(ms[k].conversation, t.convs_seen[first]);
                assert_int_equal(ms[k].vote_promise, comm ? 4 : -1);
                first++;
            }
        assert_int_equal(first, 3);
        const struct bz_messages_row *txt = ROWS(m, bz_messages_table, struct bz_messages_row, nt);
        if (!comm) {
            assert_int_equal(nt, 0);
        } else {
            assert_int_equal(nt, 6); /* 3 openings by 0, 3 replies that leave */
            for (size_t k = 0; k < nt; k++) {
                char want[64];
                snprintf(want, sizeof want, "from %d in c%d", txt[k].sender, txt[k].conversation);
                assert_string_equal(txt[k].text, want);
                assert_string_equal(txt[k].visibility, "private");
                assert_string_equal(txt[k].phase, "message");
            }
        }
        size_t ng;
        const struct bz_games_row *gr = ROWS(m, bz_games_table, struct bz_games_row, ng);
        assert_true(gr->n_invalid > 0); /* the self votes */
        assert_int_equal(gr->n_fallback, 0);
        bz_match_destroy(m);
    }
}

static void beast_game_should_refuse_bad_parameters(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 4, 1, 0);
    s.cfg.num[BZ_BEAST_P_ELIMINATIONS] = 4; /* a vote needs two players */
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_not_equal(bz_match_create(&s.cfg, NULL, &m, &err), BZ_OK);
    assert_non_null(strstr(err.msg, "eliminations"));
    setup_init(&s, 4, 1, 0);
    s.cfg.num[BZ_BEAST_P_PARTNERS] = 2.5;
    err = (struct bz_err){0};
    assert_int_not_equal(bz_beast_ops.check(&s.cfg, &err), BZ_OK);
    assert_non_null(strstr(err.msg, "partners"));
}

/* ---- the prompts render over real observations of every phase ---- */

struct render {
    struct bz_template *sys, *phase[BZ_BEAST_N_PHASES];
    int rendered[BZ_BEAST_N_PHASES];
    int comm, saw_partner_text;
};

static int render_submit(void *ctx, struct bz_match *m, const struct bz_request *r,
                         struct bz_err *err)
{
    struct render *x = ctx;
    struct bz_game *g = bz_match_game(m);
    cJSON *obs = bz_llm_observation(&bz_beast_ops, g, r, err);
    assert_non_null(obs);
    char *sys = NULL, *user = NULL;
    struct bz_err e = {0};
    if (bz_template_check(x->phase[r->phase], obs, &e) ||
        bz_template_render(x->sys, obs, &sys, &e) ||
        bz_template_render(x->phase[r->phase], obs, &user, &e))
        fail_msg("%s: %s", bz_beast_ops.phases[r->phase], e.msg);
    x->rendered[r->phase]++;
    if (r->phase == BZ_BEAST_PHASE_MESSAGE) {
        int k = bz_beast_game_index(g, r);
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(obs, "meta"), "conversation")->valueint,
            g->rq[k].conv);
        /* a heuristic partner's text shows only with communication on */
        if (strstr(user, "\"Pay me") || strstr(user, "\"Vote for") || strstr(user, "\"I "))
            x->saw_partner_text = 1;
        if (strstr(user, "- #")) /* a message line: promises only with communication on */
            assert_int_equal(strstr(user, "promises to vote for") != NULL, x->comm);
    }
    free(sys);
    free(user);
    cJSON_Delete(obs);
    const struct bz_game_config *cfg = bz_match_config(m);
    int i = -1;
    for (int q = 0; q < bz_game_n_requests(g); q++)
        if (bz_game_request(g, q)->agent == r->agent && bz_game_request(g, q)->slot == r->slot)
            i = q;
    struct bz_rng rng;
    bz_rng_init(&rng, 3, (uint64_t)i);
    bz_game_decide(g, i, bz_game_policy(&bz_beast_ops, cfg->agents[r->agent].policy), 1, &rng);
    bz_match_decided(m, r->agent, r->slot);
    return BZ_OK;
}

static void prompts_should_render_over_every_phase(void **state)
{
    (void)state;
    for (int comm = 0; comm <= 1; comm++) {
        struct render x = {.comm = comm};
        struct bz_err err = {0};
        char path[512];
        snprintf(path, sizeof path, "%s/prompts/beast/system.txt", BZ_SOURCE_DIR);
        assert_int_equal(bz_template_load(path, &x.sys, &err), BZ_OK);
        for (int p = 0; p < BZ_BEAST_N_PHASES; p++) {
            snprintf(path, sizeof path, "%s/prompts/beast/%s.txt", BZ_SOURCE_DIR,
                     bz_beast_ops.phases[p]);
            if (bz_template_load(path, &x.phase[p], &err))
                fail_msg("%s", err.msg);
        }
        struct setup s;
        setup_init(&s, 10, 1, 0);
        s.cfg.communication = comm;
        s.cfg.num[BZ_BEAST_P_COMMUNICATION] = comm;
        struct bz_llm_hook hook = {.ctx = &x, .submit = render_submit, .all_agents = 1};
        struct bz_match *m = NULL;
        assert_int_equal(bz_match_create(&s.cfg, &hook, &m, &err), BZ_OK);
        assert_int_equal(bz_match_play(m, &err), BZ_OK);
        assert_game_ok(m);
        for (int p = 0; p < BZ_BEAST_N_PHASES; p++)
            assert_true(x.rendered[p] > 0);
        assert_int_equal(x.saw_partner_text, comm);
        bz_match_destroy(m);
        bz_template_destroy(x.sys);
        for (int p = 0; p < BZ_BEAST_N_PHASES; p++)
            bz_template_destroy(x.phase[p]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(beast_game_should_pass_the_issue_checks_on_its_records),
        cmocka_unit_test(beast_game_should_be_deterministic),
        cmocka_unit_test(beast_game_should_break_ties_from_the_environment),
        cmocka_unit_test(player_in_three_conversations_should_get_three_answers),
        cmocka_unit_test(beast_game_should_refuse_bad_parameters),
        cmocka_unit_test(prompts_should_render_over_every_phase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
