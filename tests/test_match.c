/* test_match: the one driving loop (bz_match) and the game base, on the fake
 * game (tests/fake_game.c): a game that errs in step() or apply() ends failed
 * with its message in bounded time; one agent asked two things in one step
 * gets both answers, consumed in order whatever order they arrive in; the
 * LLM hook's error paths (cannot queue, bad replies, left pending, missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "bazaar/match.h"
#include "fake_game.h"

struct setup {
    struct bz_game_config cfg;
    struct bz_agent_spec agents[8];
};

/* n agents, all heuristic "fixed" unless llm_mask has their bit. */
static void setup_init(struct setup *s, int n, unsigned llm_mask)
{
    memset(s, 0, sizeof *s);
    s->cfg.game_id = 42;
    s->cfg.ops = &bz_fake_game_ops;
    s->cfg.seed = 7;
    s->cfg.env_seed = 7;
    s->cfg.n_agents = n;
    s->cfg.communication = 1;
    s->cfg.lineup_name = "test";
    for (size_t i = 0; i < bz_fake_game_ops.n_params; i++)
        s->cfg.num[i] = bz_fake_game_ops.params[i].def;
    s->cfg.num[BZ_FAKE_N_AGENTS] = n;
    for (int i = 0; i < n; i++) {
        struct bz_agent_spec *a = &s->agents[i];
        a->kind = llm_mask >> i & 1 ? BZ_AGENT_LLM : BZ_AGENT_HEURISTIC;
        const char *name = a->kind == BZ_AGENT_LLM ? "model" : "fixed";
        snprintf(a->policy, sizeof a->policy, "%s", name);
        snprintf(a->label, sizeof a->label, "%s", name);
        a->skill = 1;
    }
    s->cfg.agents = s->agents;
}

static const struct bz_games_row *games_row(struct bz_match *m)
{
    const struct bz_rowbuf *rb = bz_records_find(bz_match_records(m), &bz_games_table);
    assert_non_null(rb);
    assert_int_equal(rb->n_rows, 1);
    return (const struct bz_games_row *)rb->data;
}

static const struct bz_fake_answer_row *answers(struct bz_match *m, size_t *n)
{
    const struct bz_rowbuf *rb = bz_records_find(bz_match_records(m), &bz_fake_answers_table);
    *n = rb ? rb->n_rows : 0;
    return rb ? (const struct bz_fake_answer_row *)rb->data : NULL;
}

static void match_should_register_a_game_for_tests_only(void **state)
{
    (void)state;
    assert_int_equal(bz_fake_game_register(), BZ_OK);
    assert_int_equal(bz_fake_game_register(), BZ_OK); /* idempotent */
    assert_ptr_equal(bz_game_find("fake"), &bz_fake_game_ops);
    assert_int_equal(bz_game_register(&bz_fake_game_ops), BZ_EINVAL); /* same name twice */
    assert_non_null(bz_game_find("electricity"));
}

static void match_should_give_one_agent_both_answers_in_order(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 2, 0);
    s.cfg.num[BZ_FAKE_SLOTS] = 2;
    s.cfg.num[BZ_FAKE_ROUNDS] = 3;
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s.cfg, NULL, &m, &err), BZ_OK);
    assert_int_equal(bz_match_play(m, &err), BZ_OK);
    assert_false(bz_match_failed(m, NULL));
    assert_int_equal(bz_match_decisions(m), 9);
    size_t n;
    const struct bz_fake_answer_row *r = answers(m, &n);
    assert_int_equal(n, 9);
    for (int t = 0; t < 3; t++) {
        const struct bz_fake_answer_row *x = &r[3 * t];
        assert_int_equal(x[0].agent, 0);
        assert_int_equal(x[0].slot, 0);
        assert_int_equal(x[0].value, t);
        assert_int_equal(x[1].agent, 0);
        assert_int_equal(x[1].slot, 1);
        assert_int_equal(x[1].value, (1 + t) & ~1);
        assert_int_equal(x[2].agent, 1);
        assert_int_equal(x[2].value, 10 + t);
        for (int k = 0; k < 3; k++)
            assert_int_equal(x[k].order, k);
    }
    const struct bz_games_row *g = games_row(m);
    assert_string_equal(g->status, "ok");
    assert_int_equal(g->turns_played, 3);
    assert_int_equal(g->n_invalid, 0);
    assert_int_equal(g->n_fallback, 0);
    const struct bz_rowbuf *msg = bz_records_find(bz_match_records(m), &bz_messages_table);
    assert_non_null(msg);
    assert_int_equal(msg->n_rows, 3);
    bz_match_destroy(m);
}

/* Play a game told to fail; it must end failed with message in it. */
static void expect_failed(struct setup *s, const char *message, int64_t max_decisions)
{
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s->cfg, NULL, &m, &err), BZ_OK);
    assert_int_equal(bz_match_play(m, &err), BZ_OK);
    const char *msg = NULL;
    assert_true(bz_match_failed(m, &msg));
    assert_non_null(strstr(msg, message));
    assert_true(bz_match_decisions(m) <= max_decisions);
    const struct bz_games_row *g = games_row(m);
    assert_string_equal(g->status, "failed");
    assert_non_null(strstr(g->error, message));
    bz_match_destroy(m);
}

static void match_should_fail_a_game_whose_step_errs(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 3, 0);
    s.cfg.num[BZ_FAKE_ROUNDS] = 1000;
    s.cfg.num[BZ_FAKE_FAIL_STEP_AT] = 2;
    /* two rounds of three decisions, then the error: never a spin */
    expect_failed(&s, "step failed on purpose at round 2", 6);
    s.cfg.num[BZ_FAKE_FAIL_STEP_AT] = 0;
    expect_failed(&s, "step failed on purpose at round 0", 0);
}

static void match_should_fail_a_game_whose_apply_errs(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 3, 0);
    s.cfg.num[BZ_FAKE_ROUNDS] = 1000;
    s.cfg.num[BZ_FAKE_FAIL_APPLY_AT] = 1;
    expect_failed(&s, "apply failed on purpose at round 1", 6);
}

static void match_should_fail_a_game_that_breaks_the_step_contract(void **state)
{
    (void)state;
#ifdef NDEBUG
    struct setup s;
    setup_init(&s, 2, 0);
    s.cfg.num[BZ_FAKE_ROUNDS] = 1000;
    s.cfg.num[BZ_FAKE_BREAK_AT] = 1;
    expect_failed(&s, "broke its contract", 2);
#else
    /* a debug build asserts on a broken contract: nothing to run here */
    skip();
#endif
}

static void match_should_end_a_game_past_its_step_bound_failed(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 2, 0);
    s.cfg.num[BZ_FAKE_ROUNDS] = 1000;
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s.cfg, NULL, &m, &err), BZ_OK);
    bz_match_set_max_steps(m, 5);
    assert_int_equal(bz_match_play(m, &err), BZ_OK);
    const char *msg = NULL;
    assert_true(bz_match_failed(m, &msg));
    assert_non_null(strstr(msg, "did not end within 5 steps"));
    assert_int_equal(bz_match_decisions(m), 10);
    assert_string_equal(games_row(m)->status, "failed");
    bz_match_destroy(m);
}

/* ---- an LLM hook driven by the test ---- */

struct hook_ctx {
    int mode; /* 0: queue, 1: refuse to queue, 2: answer at once with fallback */
    struct {
        int agent, slot;
    } q[16];
    int n;
};

static int test_submit(void *ctx, struct bz_match *m, const struct bz_request *r,
                       struct bz_err *err)
{
    struct hook_ctx *h = ctx;
    if (h->mode == 1)
        return bz_err_set(err, BZ_ENET, "test: cannot queue");
    if (h->mode == 2) {
        bz_game_fallback(bz_match_game(m), r->agent, r->slot);
        bz_match_decided(m, r->agent, r->slot);
        return BZ_OK;
    }
    assert_true(h->n < 16);
    h->q[h->n].agent = r->agent;
    h->q[h->n].slot = r->slot;
    h->n++;
    return BZ_OK;
}

static int answer(struct bz_match *m, int agent, int slot, const char *json,
                  enum bz_answer_fault *fault, struct bz_err *err)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    int rc = bz_game_answer(bz_match_game(m), agent, slot, j, fault, err);
    cJSON_Delete(j);
    return rc;
}

static void match_should_take_llm_answers_in_any_order_and_apply_them_in_order(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 2, 1u); /* agent 0 is an LLM, asked two things per step */
    s.cfg.num[BZ_FAKE_SLOTS] = 2;
    s.cfg.num[BZ_FAKE_ROUNDS] = 1;
    struct hook_ctx h = {0};
    struct bz_llm_hook hook = {.ctx = &h, .submit = test_submit};
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s.cfg, &hook, &m, &err), BZ_OK);
    assert_int_equal(bz_match_advance(m, &err), BZ_MATCH_WAITING);
    assert_int_equal(h.n, 2);
    assert_int_equal(bz_match_pending(m), 2);
    assert_int_equal(h.q[0].slot, 0);
    assert_int_equal(h.q[1].slot, 1);
    /* slot 1's reply arrives first; a bad one is refused, named, counted */
    enum bz_answer_fault fault;
    assert_int_equal(answer(m, 0, 1, "{\"value\":\"x\"}", &fault, &err), BZ_EINVAL);
    assert_int_equal(fault, BZ_ANSWER_SCHEMA);
    assert_non_null(strstr(err.msg, "value"));
    assert_int_equal(answer(m, 0, 1, "{\"value\":7}", &fault, &err), BZ_EINVAL);
    assert_int_equal(fault, BZ_ANSWER_INADMISSIBLE);
    assert_non_null(strstr(err.msg, "even"));
    assert_int_equal(answer(m, 0, 1, "{\"value\":8,\"message\":\"hi\"}", &fault, &err), BZ_OK);
    assert_int_equal(fault, BZ_ANSWER_OK);
    assert_int_equal(answer(m, 0, 5, "{\"value\":8}", NULL, &err), BZ_EINVAL); /* never asked */
    bz_match_decided(m, 0, 1);
    assert_int_equal(bz_match_advance(m, &err), BZ_MATCH_WAITING);
    assert_int_equal(answer(m, 0, 0, "{\"value\":33}", NULL, &err), BZ_OK);
    bz_match_decided(m, 0, 0);
    assert_int_equal(bz_match_advance(m, &err), BZ_MATCH_DONE);
    size_t n;
    const struct bz_fake_answer_row *r = answers(m, &n);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].slot, 0);
    assert_int_equal(r[0].value, 33);
    assert_int_equal(r[1].slot, 1);
    assert_int_equal(r[1].value, 8);
    assert_int_equal(r[2].agent, 1);
    const struct bz_games_row *g = games_row(m);
    assert_string_equal(g->status, "ok");
    assert_int_equal(g->n_invalid, 1); /* the odd value; the schema miss is not the game's */
    assert_int_equal(g->n_fallback, 0);
    bz_match_destroy(m);
}

static void match_should_fall_back_when_the_hook_cannot_queue(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 2, 3u);
    s.cfg.num[BZ_FAKE_SLOTS] = 2;
    s.cfg.num[BZ_FAKE_ROUNDS] = 2;
    struct hook_ctx h = {.mode = 1};
    struct bz_llm_hook hook = {.ctx = &h, .submit = test_submit};
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s.cfg, &hook, &m, &err), BZ_OK);
    assert_int_equal(bz_match_play(m, &err), BZ_OK);
    const struct bz_games_row *g = games_row(m);
    assert_string_equal(g->status, "ok");
    assert_int_equal(g->n_fallback, 6);
    size_t n;
    const struct bz_fake_answer_row *r = answers(m, &n);
    assert_int_equal(n, 6);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(r[k].value, 0);
    bz_match_destroy(m);
}

static void match_should_answer_every_agent_through_an_all_agents_hook(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 3, 0);
    s.cfg.num[BZ_FAKE_ROUNDS] = 2;
    struct hook_ctx h = {.mode = 2};
    struct bz_llm_hook hook = {.ctx = &h, .submit = test_submit, .all_agents = 1};
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s.cfg, &hook, &m, &err), BZ_OK);
    assert_int_equal(bz_match_play(m, &err), BZ_OK);
    assert_int_equal(games_row(m)->n_fallback, 6);
    bz_match_destroy(m);
}

static void match_should_refuse_pending_decisions_in_play_and_llm_agents_without_hook(void **state)
{
    (void)state;
    struct setup s;
    setup_init(&s, 2, 2u);
    struct bz_match *m = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_match_create(&s.cfg, NULL, &m, &err), BZ_EINVAL);
    assert_null(m);
    assert_non_null(strstr(err.msg, "LLM"));
    struct hook_ctx h = {0};
    struct bz_llm_hook hook = {.ctx = &h, .submit = test_submit};
    assert_int_equal(bz_match_create(&s.cfg, &hook, &m, &err), BZ_OK);
    assert_int_equal(bz_match_play(m, &err), BZ_EINTERNAL);
    assert_non_null(strstr(err.msg, "pending"));
    bz_match_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(match_should_register_a_game_for_tests_only),
        cmocka_unit_test(match_should_give_one_agent_both_answers_in_order),
        cmocka_unit_test(match_should_fail_a_game_whose_step_errs),
        cmocka_unit_test(match_should_fail_a_game_whose_apply_errs),
        cmocka_unit_test(match_should_fail_a_game_that_breaks_the_step_contract),
        cmocka_unit_test(match_should_end_a_game_past_its_step_bound_failed),
        cmocka_unit_test(match_should_take_llm_answers_in_any_order_and_apply_them_in_order),
        cmocka_unit_test(match_should_fall_back_when_the_hook_cannot_queue),
        cmocka_unit_test(match_should_answer_every_agent_through_an_all_agents_hook),
        cmocka_unit_test(match_should_refuse_pending_decisions_in_play_and_llm_agents_without_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
