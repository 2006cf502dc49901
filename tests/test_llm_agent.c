/* test_llm_agent: LLM agents end to end below the scheduler: a fake game
 * driven by bz_match with the LLM hook against tests/llm_server.py. Every
 * fault ends in a finished game with the fault recorded; cache, replay,
 * missing keys, keys never recorded, concurrency limits; and the shipped
 * electricity prompts checked against the real game. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "bazaar/match.h"
#include "llm/llm_internal.h"
#include "llm_test_util.h"

/* ---- a fake game: one phase "bid", budget 10 per agent per turn ---- */

struct bz_game {
    struct bz_game_base base;
    const struct bz_game_config *cfg;
    int turn, max_turns, stepped;
    int slots; /* 2: agent 0 is asked a second thing each turn (slot 1) */
    double amount[64][2];
    int set[64][2];
    double total;
};

static const char *const fake_phases[] = {"bid"};
static const char *FAKE_SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"amount\":{\"type\":\"number\",\"minimum\":0},"
    "\"note\":{\"type\":\"string\"}},\"required\":[\"amount\"]}";

static int fake_create(const struct bz_game_config *cfg, struct bz_records *rec,
                       struct bz_game **out, struct bz_err *err)
{
    struct bz_game *g = calloc(1, sizeof *g);
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "oom");
    int rc = bz_game_base_init(&g->base, cfg, rec, err);
    if (rc) {
        free(g);
        return rc;
    }
    g->cfg = cfg;
    g->max_turns = (int)cfg->num[0];
    g->slots = cfg->num[1] >= 2 ? 2 : 1;
    *out = g;
    return BZ_OK;
}
static void fake_destroy(struct bz_game *g)
{
    if (g)
        bz_game_base_cleanup(&g->base);
    free(g);
}
static int fake_step(struct bz_game *g, int *state, struct bz_err *err)
{
    (void)err;
    if (g->turn >= g->max_turns) {
        *state = BZ_STEP_DONE;
        return BZ_OK;
    }
    bz_game_ask_phase(g, 0);
    for (int i = 0; i < g->cfg->n_agents; i++)
        for (int k = 0; k < (i == 0 ? g->slots : 1); k++) {
            g->set[i][k] = 0;
            bz_game_ask(g, i, k);
        }
    *state = BZ_STEP_DECIDE;
    return BZ_OK;
}
static int fake_apply(struct bz_game *g, struct bz_err *err)
{
    for (int k = 0; k < g->base.n_req; k++) {
        const struct bz_request *r = &g->base.req[k];
        if (!g->set[r->agent][r->slot])
            return bz_err_set(err, BZ_EINTERNAL, "agent %d has no action", r->agent);
        g->total += g->amount[r->agent][r->slot];
    }
    g->turn++;
    return BZ_OK;
}
static void fake_outcome(const struct bz_game *g, struct bz_game_outcome *o, double *payoff)
{
    o->turns_played = g->turn;
    o->welfare = g->total;
    o->n_fallback = g->base.n_fallback;
    for (int i = 0; i < g->cfg->n_agents; i++)
        payoff[i] = 1;
}
static int fake_observe(const struct bz_game *g, const struct bz_request *r, cJSON *obs,
                        struct bz_err *err)
{
    (void)r;
    (void)err;
    cJSON *pub = cJSON_AddObjectToObject(obs, "public");
    cJSON *priv = cJSON_AddObjectToObject(obs, "private");
    cJSON *meta = cJSON_AddObjectToObject(obs, "meta");
    cJSON_AddNumberToObject(pub, "total", g->total);
    cJSON_AddNumberToObject(priv, "budget", 10);
    cJSON_AddNumberToObject(meta, "turn", g->turn);
    return BZ_OK;
}
static cJSON *fake_schema(const struct bz_game *g, int phase)
{
    (void)g;
    return phase == 0 ? cJSON_Parse(FAKE_SCHEMA) : NULL;
}
static int fake_parse(struct bz_game *g, const struct bz_request *r, const cJSON *reply,
                      struct bz_err *err)
{
    const cJSON *a = cJSON_GetObjectItem(reply, "amount");
    if (!cJSON_IsNumber(a))
        return bz_err_set(err, BZ_EINVAL, "amount: expected a number");
    if (a->valuedouble > 10)
        return bz_err_set(err, BZ_EINVAL, "amount: %g is more than your budget of 10",
                          a->valuedouble);
    g->amount[r->agent][r->slot] = a->valuedouble;
    g->set[r->agent][r->slot] = 1;
    return BZ_OK;
}
static int fake_check(const struct bz_game *g, const struct bz_request *r, struct bz_err *err)
{
    (void)err;
    return g->set[r->agent][r->slot] ? BZ_OK : BZ_EINVAL;
}
static void fake_safe(struct bz_game *g, const struct bz_request *r)
{
    g->amount[r->agent][r->slot] = 0;
    g->set[r->agent][r->slot] = 1;
}
static void fake_random(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    g->amount[r->agent][r->slot] = 10 * bz_rng_uniform(rng);
    g->set[r->agent][r->slot] = 1;
}
static const struct bz_param_desc fake_params[] = {
    {"max_turns", BZ_PARAM_INT, 2, 1, 100, NULL, 1, "turns"},
    {"slots", BZ_PARAM_INT, 1, 1, 2, NULL, 0, "questions to agent 0 per turn"},
};
static const struct bz_game_ops fake_ops = {
    .name = "fake",
    .params = fake_params,
    .n_params = 2,
    .phases = fake_phases,
    .n_phases = 1,
    .create = fake_create,
    .destroy = fake_destroy,
    .step = fake_step,
    .apply = fake_apply,
    .outcome = fake_outcome,
    .check_action = fake_check,
    .safe_action = fake_safe,
    .random_action = fake_random,
    .observe = fake_observe,
    .action_schema = fake_schema,
    .parse_action = fake_parse,
};

/* ---- fixture ---- */

#define KEY_ENV "BZ_TEST_LLM_AGENT_KEY"
#define KEY_VALUE "sk-test-SECRET-0123456789abcdef"

static struct test_server srv;
static char tmpdir[512];
static char registry_path[600];
static char prompts_dir[600];
static int run_counter;

static int group_setup(void **state)
{
    (void)state;
    mkdir(BZ_TEST_TMP, 0777);
    snprintf(tmpdir, sizeof tmpdir, "%s/llm_agent_%ld", BZ_TEST_TMP, (long)getpid());
    mkdir(tmpdir, 0777);
    if (test_server_start(&srv, 0) != 0)
        return -1;
    snprintf(registry_path, sizeof registry_path, "%s/models.json", tmpdir);
    if (test_write_registry(registry_path, srv.port, KEY_ENV, 0))
        return -1;
    snprintf(prompts_dir, sizeof prompts_dir, "%s/prompts", tmpdir);
    mkdir(prompts_dir, 0777);
    char p[700];
    snprintf(p, sizeof p, "%s/system.txt", prompts_dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "You are agent {{agent}} of {{game}}.\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/bid.txt", prompts_dir);
    f = fopen(p, "w");
    fprintf(f, "Turn {{meta.turn}}. Budget {{private.budget}}. Total so far {{public.total}}.\n"
               "Reply with JSON: {{schema}}\n");
    fclose(f);
    setenv(KEY_ENV, KEY_VALUE, 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    test_server_stop(&srv);
    return 0;
}

struct run {
    struct bz_llm_settings set;
    struct bz_llm_options opt;
    const char *model;
    int n_agents;
    int n_turns;
    int n_games;
    int slots;
    int same_rep; /* every game repetition 0: identical requests across games */
    double backoff_s;
    /* results */
    int poll_rc;
    char poll_msg[BZ_ERR_MSG_MAX];
    struct bz_llm_calls_row rows[512];
    char strs[512][3][200]; /* phase-independent copies: outcome, decision, error */
    int n_rows;
    struct bz_match_usage usage;
    int64_t welfare_fallbacks;
    int games_ok;
    int64_t replay_misses;
};

static void run_defaults(struct run *r)
{
    memset(r, 0, sizeof *r);
    r->set.live_games = 4;
    r->set.concurrency = 8;
    r->set.timeout_s = 5;
    r->set.max_retries = 3;
    r->set.temperature = 0.5;
    r->set.max_output_tokens = 64;
    snprintf(r->set.models_path, sizeof r->set.models_path, "%.500s", registry_path);
    snprintf(r->set.prompts_dir, sizeof r->set.prompts_dir, "%.500s", prompts_dir);
    snprintf(r->set.cache_dir, sizeof r->set.cache_dir, "%.480s/cache_%d", tmpdir, ++run_counter);
    r->model = "t-openai";
    r->n_agents = 2;
    r->n_turns = 2;
    r->n_games = 1;
    r->backoff_s = 0.01;
}

/* Play r->n_games games at once through one bz_llm; copy their /llm_calls
 * rows and usage out. Returns the create rc. */
static int play(struct run *r, struct bz_err *err)
{
    r->n_rows = 0;
    r->games_ok = 0;
    r->poll_rc = 0;
    r->poll_msg[0] = '\0';
    memset(&r->usage, 0, sizeof r->usage);
    const char *ids[] = {r->model};
    struct bz_agent_spec agents[64];
    memset(agents, 0, sizeof agents);
    for (int i = 0; i < r->n_agents; i++) {
        agents[i].kind = BZ_AGENT_LLM;
        snprintf(agents[i].policy, sizeof agents[i].policy, "%s", r->model);
        snprintf(agents[i].label, sizeof agents[i].label, "%s", r->model);
    }
    struct bz_game_config cfg[16];
    memset(cfg, 0, sizeof cfg);
    for (int g = 0; g < r->n_games; g++) {
        cfg[g].game_id = g;
        cfg[g].ops = &fake_ops;
        cfg[g].n_agents = r->n_agents;
        cfg[g].num[0] = r->n_turns;
        cfg[g].num[1] = r->slots ? r->slots : 1;
        cfg[g].agents = agents;
        cfg[g].lineup_name = "test";
        cfg[g].repetition = r->same_rep ? 0 : g;
    }
    struct bz_llm *llm = NULL;
    int rc = bz_llm_create_from(&r->set, &r->opt, &fake_ops, &cfg[0], ids, 1, 1, r->backoff_s, &llm,
                                err);
    if (rc)
        return rc;
    struct bz_llm_hook hook = bz_llm_hook(llm);
    struct bz_match *m[16] = {0};
    int done[16] = {0}, n_done = 0;
    for (int g = 0; g < r->n_games; g++)
        assert_int_equal(bz_match_create(&cfg[g], &hook, &m[g], err), BZ_OK);
    double t0 = bz_llm_now_s();
    while (n_done < r->n_games) {
        for (int g = 0; g < r->n_games; g++) {
            if (done[g])
                continue;
            int st;
            do
                st = bz_match_advance(m[g], err);
            while (st == BZ_MATCH_RUNNING);
            assert_true(st > 0);
            if (st == BZ_MATCH_DONE) {
                done[g] = 1;
                n_done++;
            }
        }
        if (n_done < r->n_games) {
            struct bz_err perr = {0};
            int prc = bz_llm_poll(llm, 50, &perr);
            if (prc && !r->poll_rc) {
                r->poll_rc = prc;
                snprintf(r->poll_msg, sizeof r->poll_msg, "%s", perr.msg);
            }
        }
        assert_true(bz_llm_now_s() - t0 < 120);
    }
    assert_int_equal(bz_llm_inflight(llm), 0);
    {
        /* misses answered inside submit() surface at the next poll */
        struct bz_err perr = {0};
        int prc = bz_llm_poll(llm, 0, &perr);
        if (prc && !r->poll_rc) {
            r->poll_rc = prc;
            snprintf(r->poll_msg, sizeof r->poll_msg, "%s", perr.msg);
        }
        struct bz_llm_totals t;
        bz_llm_get_totals(llm, &t);
        r->replay_misses = t.replay_misses;
    }
    for (int g = 0; g < r->n_games; g++) {
        const struct bz_rowbuf *rb = bz_records_find(bz_match_records(m[g]), &bz_llm_calls_table);
        for (size_t i = 0; rb && i < rb->n_rows && r->n_rows < 512; i++) {
            const struct bz_llm_calls_row *row =
                (const void *)(rb->data + i * sizeof(struct bz_llm_calls_row));
            r->rows[r->n_rows] = *row;
            snprintf(r->strs[r->n_rows][0], 200, "%s", row->parse_outcome);
            snprintf(r->strs[r->n_rows][1], 200, "%s", row->decision);
            snprintf(r->strs[r->n_rows][2], 200, "%s", row->error);
            r->n_rows++;
        }
        const struct bz_rowbuf *gb = bz_records_find(bz_match_records(m[g]), &bz_games_table);
        assert_non_null(gb);
        const struct bz_games_row *grow = (const void *)gb->data;
        if (strcmp(grow->status, "ok") == 0)
            r->games_ok++;
        struct bz_match_usage *u = bz_match_usage(m[g]);
        r->usage.llm_calls += u->llm_calls;
        r->usage.cache_hits += u->cache_hits;
        r->usage.input_tokens += u->input_tokens;
        r->usage.output_tokens += u->output_tokens;
        r->usage.cost_nano_usd += u->cost_nano_usd;
        r->usage.n_invalid += u->n_invalid;
        r->usage.n_repair += u->n_repair;
        r->usage.n_fallback += u->n_fallback;
        bz_match_destroy(m[g]);
    }
    bz_llm_destroy(llm);
    return BZ_OK;
}

static int count_rows(const struct run *r, const char *outcome, const char *decision)
{
    int n = 0;
    for (int i = 0; i < r->n_rows; i++)
        n += (!outcome || strcmp(r->strs[i][0], outcome) == 0) &&
             (!decision || strcmp(r->strs[i][1], decision) == 0);
    return n;
}

static int max_retries_seen(const struct run *r)
{
    int m = 0;
    for (int i = 0; i < r->n_rows; i++)
        m = r->rows[i].retries > m ? r->rows[i].retries : m;
    return m;
}

/* ---- tests ---- */

static void clean_run_should_decide_every_agent_and_account(void **state)
{
    (void)state;
    struct run r;
    struct bz_err err = {0};
    run_defaults(&r);
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    assert_int_equal(r.games_ok, 1);
    assert_int_equal(r.n_rows, 4);
    assert_int_equal(count_rows(&r, "ok", "ok"), 4);
    assert_int_equal(r.usage.llm_calls, 4);
    assert_true(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
    assert_true(r.usage.cost_nano_usd > 0);
    assert_int_equal(r.rows[0].http_status, 200);
    assert_int_equal(r.rows[3].turn, 1);
    assert_string_equal(r.rows[0].phase, "bid");
    assert_int_equal(test_server_stat(srv.port, "completions"), 4);
    assert_int_equal(test_server_stat(srv.port, "with_key"), 4);
}

/* One agent asked two things in one step: both go to the model (separate
 * cache samples), both answers arrive and count; the game consumes them. */
static void two_questions_to_one_agent_should_both_be_answered(void **state)
{
    (void)state;
    struct run r;
    struct bz_err err = {0};
    run_defaults(&r);
    r.slots = 2;
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    assert_int_equal(r.games_ok, 1);
    assert_int_equal(r.n_rows, 6); /* 3 decisions x 2 turns */
    assert_int_equal(count_rows(&r, "ok", "ok"), 6);
    assert_int_equal(r.usage.llm_calls, 6);
    assert_int_equal(r.usage.n_fallback, 0);
    int agent0 = 0;
    for (int i = 0; i < r.n_rows; i++)
        agent0 += r.rows[i].agent == 0;
    assert_int_equal(agent0, 4);
    assert_int_equal(test_server_stat(srv.port, "completions"), 6);
    /* the same prompts again come from the cache, slot by slot */
    struct run again = r;
    again.slots = 2;
    test_server_reset(srv.port);
    assert_int_equal(play(&again, &err), BZ_OK);
    assert_int_equal(count_rows(&again, "ok", "ok"), 6);
    assert_int_equal(test_server_stat(srv.port, "completions"), 0);
}

static void anthropic_model_should_answer_through_a_tool(void **state)
{
    (void)state;
    struct run r;
    struct bz_err err = {0};
    run_defaults(&r);
    r.model = "t-anthropic";
    assert_int_equal(play(&r, &err), BZ_OK);
    assert_int_equal(count_rows(&r, "ok", "ok"), 4);
    assert_true(r.usage.cost_nano_usd > 0);
}

struct fault_case {
    const char *faults;  /* server "faults" queue */
    const char *outcome; /* a row with this parse_outcome must exist */
    const char *decision;
    int min_retries; /* some row has at least this many retries */
    int fallbacks;   /* decisions that fell back */
    double timeout_s;
};

static const struct fault_case fault_cases[] = {
    {"[{\"kind\":\"429\",\"retry_after\":1}]", "ok", "ok", 1, 0, 5},
    {"[{\"kind\":\"500\"}]", "ok", "ok", 1, 0, 5},
    {"[{\"kind\":\"503\"}]", "ok", "ok", 1, 0, 5},
    {"[{\"kind\":\"hang\",\"seconds\":3}]", "ok", "ok", 1, 0, 0.5},
    {"[{\"kind\":\"reset\"}]", "ok", "ok", 1, 0, 5},
    {"[{\"kind\":\"malformed_body\"}]", "ok", "ok", 1, 0, 5},
    {"[{\"kind\":\"truncated\"}]", "ok", "ok", 1, 0, 5},
    {"[{\"kind\":\"malformed_json\"}]", "invalid_json", "", 0, 0, 5},
    {"[{\"kind\":\"wrong_schema\"}]", "schema", "", 0, 0, 5},
    {"[{\"kind\":\"reply\",\"content\":{\"amount\":50}}]", "inadmissible", "", 0, 0, 5},
    {"[{\"kind\":\"refusal\"}]", "refusal", "", 0, 0, 5},
    {"[{\"kind\":\"reply\",\"content\":{\"amount\":50},\"count\":2}]", "inadmissible", "fallback",
     0, 1, 5},
    {"[{\"kind\":\"500\",\"count\":4}]", "http_error", "fallback", 3, 1, 5},
    {"[{\"kind\":\"status\",\"code\":400}]", "http_error", "fallback", 0, 1, 5},
};

static void each_fault_should_end_in_a_finished_game_with_the_fault_recorded(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fault_cases / sizeof fault_cases[0]; i++) {
        const struct fault_case *c = &fault_cases[i];
        struct run r;
        struct bz_err err = {0};
        run_defaults(&r);
        r.n_agents = 1;
        r.n_turns = 2;
        r.set.timeout_s = c->timeout_s;
        char cfg[512];
        snprintf(cfg, sizeof cfg, "{\"faults\": %s}", c->faults);
        assert_int_equal(test_server_config(srv.port, cfg), 0);
        double t0 = bz_llm_now_s();
        assert_int_equal(play(&r, &err), BZ_OK);
        double secs = bz_llm_now_s() - t0;
        test_server_config(srv.port, "{\"faults\": []}");
        if (r.games_ok != 1 || count_rows(&r, c->outcome, c->decision) < 1 ||
            max_retries_seen(&r) < c->min_retries || r.usage.n_fallback != c->fallbacks) {
            for (int k = 0; k < r.n_rows; k++)
                fprintf(stderr, "  row %d: %s/%s retries %d status %d: %s\n", k, r.strs[k][0],
                        r.strs[k][1], r.rows[k].retries, r.rows[k].http_status, r.strs[k][2]);
            fail_msg("fault case %zu (%s): games_ok %d, fallbacks %d", i, c->faults, r.games_ok,
                     r.usage.n_fallback);
        }
        if (strstr(c->faults, "retry_after"))
            assert_true(secs >= 0.95);      /* Retry-After: 1 was honoured */
        if (strcmp(c->decision, "") == 0) { /* a repair followed */
            assert_int_equal(count_rows(&r, "repaired", "repaired"), 1);
            assert_int_equal(r.usage.n_repair, 1);
            assert_true(r.usage.n_invalid >= 1);
        }
    }
}

static void rerun_should_hit_the_cache_with_zero_requests(void **state)
{
    (void)state;
    struct run r, again;
    struct bz_err err = {0};
    run_defaults(&r);
    r.n_games = 3;
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    long first = test_server_stat(srv.port, "completions");
    assert_int_equal(first, 12);
    again = r;
    test_server_reset(srv.port);
    assert_int_equal(play(&again, &err), BZ_OK);
    assert_int_equal(test_server_stat(srv.port, "completions"), 0);
    assert_int_equal(again.n_rows, 12);
    for (int i = 0; i < again.n_rows; i++)
        assert_int_equal(again.rows[i].cache_hit, 1);
    assert_int_equal(again.usage.cache_hits, 12);
    /* tokens and cost per game are the same whether answered or replayed */
    assert_int_equal(again.usage.input_tokens, r.usage.input_tokens - 0 * again.usage.input_tokens);
    assert_true(again.usage.cost_nano_usd == r.usage.cost_nano_usd);

    /* --replay over the full cache: no request, no complaint */
    struct run rep = r;
    rep.opt.replay = 1;
    test_server_reset(srv.port);
    assert_int_equal(play(&rep, &err), BZ_OK);
    assert_int_equal(rep.poll_rc, BZ_OK);
    assert_int_equal(test_server_stat(srv.port, "completions"), 0);
}

static void replay_should_refuse_calls_not_in_the_cache(void **state)
{
    (void)state;
    struct run r;
    struct bz_err err = {0};
    run_defaults(&r);
    r.opt.replay = 1;
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    assert_int_equal(test_server_stat(srv.port, "completions"), 0);
    assert_int_equal(r.games_ok, 1);
    assert_int_equal(count_rows(&r, "replay_miss", "fallback"), 4);
    assert_int_equal(r.poll_rc, BZ_ENET);
    assert_int_equal(r.replay_misses, 4);
    assert_non_null(strstr(r.poll_msg, "replay: no cached reply for game 0"));

    run_defaults(&r);
    r.opt.replay = 1;
    r.set.cache_dir[0] = '\0';
    assert_int_equal(play(&r, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "--replay needs a response cache"));
}

static void missing_key_should_be_refused_before_start(void **state)
{
    (void)state;
    struct run r;
    struct bz_err err = {0};
    run_defaults(&r);
    unsetenv(KEY_ENV);
    test_server_reset(srv.port);
    int rc = play(&r, &err);
    setenv(KEY_ENV, KEY_VALUE, 1);
    assert_int_equal(rc, BZ_EINVAL);
    assert_non_null(strstr(err.msg, KEY_ENV));
    assert_non_null(strstr(err.msg, "models.json"));
    assert_non_null(strstr(err.msg, "not set"));
    assert_int_equal(test_server_stat(srv.port, "requests"), 0);

    run_defaults(&r);
    r.model = "no-such-model";
    assert_int_equal(play(&r, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "no model with id \"no-such-model\""));
}

static void key_should_never_reach_records_or_logs(void **state)
{
    (void)state;
    /* Errors that echo the key, as some providers do. */
    char faults[1024];
    snprintf(faults, sizeof faults,
             "{\"faults\":[{\"kind\":\"status\",\"code\":401,\"body\":{\"error\":{\"message\":"
             "\"Incorrect API key provided: %s\"}}},{\"kind\":\"status\",\"code\":400,\"body\":"
             "{\"error\":{\"message\":\"bad request with key %s\"}}}]}",
             KEY_VALUE, KEY_VALUE);
    assert_int_equal(test_server_config(srv.port, faults), 0);
    char log[700];
    snprintf(log, sizeof log, "%s/stderr.log", tmpdir);
    fflush(stderr);
    int saved = dup(2);
    FILE *lf = fopen(log, "w");
    dup2(fileno(lf), 2);
    struct run r;
    struct bz_err err = {0};
    run_defaults(&r);
    int rc = play(&r, &err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(lf);
    assert_int_equal(rc, BZ_OK);
    assert_int_equal(count_rows(&r, "http_error", "fallback"), 2);
    for (int i = 0; i < r.n_rows; i++)
        for (int k = 0; k < 3; k++)
            if (strstr(r.strs[i][k], KEY_VALUE))
                fail_msg("row %d holds the key: %s", i, r.strs[i][k]);
    char buf[8192] = "";
    FILE *f = fopen(log, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_null(strstr(buf, KEY_VALUE));
    assert_non_null(strstr(buf, "HTTP 401")); /* reported, once, clearly */
    assert_non_null(strstr(buf, "$" KEY_ENV));
    /* cache entries hold replies only */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "grep -rq '%s' '%s' 2>/dev/null", KEY_VALUE, tmpdir);
    assert_int_not_equal(system(cmd), 0);
}

static void concurrency_should_be_honoured(void **state)
{
    (void)state;
    struct run r;
    struct bz_err err = {0};
    test_server_config(srv.port, "{\"latency_ms\": 150}");
    run_defaults(&r);
    r.n_games = 4;
    r.n_agents = 4;
    r.n_turns = 1;
    r.set.concurrency = 3;
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    long mx = test_server_stat(srv.port, "max_inflight");
    assert_int_equal(test_server_stat(srv.port, "completions"), 16);
    assert_int_equal(mx, 3);

    /* a per-model limit below the rank's */
    char reg2[700];
    snprintf(reg2, sizeof reg2, "%s/models_limited.json", tmpdir);
    assert_int_equal(test_write_registry(reg2, srv.port, KEY_ENV, 2), 0);
    run_defaults(&r);
    snprintf(r.set.models_path, sizeof r.set.models_path, "%.500s", reg2);
    r.n_games = 2;
    r.n_agents = 4;
    r.n_turns = 1;
    r.set.concurrency = 16;
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    assert_int_equal(test_server_stat(srv.port, "max_inflight"), 2);
    test_server_config(srv.port, "{\"latency_ms\": 0}");
}

/* Identical requests of games live at once share one cache key: one goes to
 * the server, the others wait for its reply (single flight), so a random
 * answer cannot differ between them and a rerun replays each game exactly. */
static void identical_requests_in_flight_should_make_one_server_request(void **state)
{
    (void)state;
    struct run r;
    struct bz_err err = {0};
    test_server_config(srv.port, "{\"latency_ms\": 100}");
    run_defaults(&r);
    r.n_games = 3;
    r.same_rep = 1;
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    assert_int_equal(r.games_ok, 3);
    assert_int_equal(test_server_stat(srv.port, "completions"), 4); /* 2 agents x 2 turns */
    assert_int_equal(r.n_rows, 12);
    int hits = 0;
    for (int i = 0; i < r.n_rows; i++)
        hits += r.rows[i].cache_hit;
    assert_int_equal(hits, 8);

    /* a server answering at random (repairs included): every game sees the
     * same replies, so each game's rows match the requests made once */
    test_server_config(srv.port, "{\"play\": {\"seed\": 5, \"bad_rate\": 0.3}}");
    run_defaults(&r);
    r.n_games = 3;
    r.same_rep = 1;
    test_server_reset(srv.port);
    assert_int_equal(play(&r, &err), BZ_OK);
    long req = test_server_stat(srv.port, "completions");
    assert_true(req >= 4);
    assert_int_equal(r.n_rows, 3 * req);
    test_server_config(srv.port, "{\"latency_ms\": 0, \"play\": null}");
}

static void bad_prompt_should_be_refused_at_create(void **state)
{
    (void)state;
    char dir[700], p[800];
    snprintf(dir, sizeof dir, "%s/bad_prompts", tmpdir);
    mkdir(dir, 0777);
    snprintf(p, sizeof p, "%s/system.txt", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "hi\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/bid.txt", dir);
    f = fopen(p, "w");
    fprintf(f, "Budget {{private.budjet}}\n");
    fclose(f);
    struct run r;
    struct bz_err err = {0};
    run_defaults(&r);
    snprintf(r.set.prompts_dir, sizeof r.set.prompts_dir, "%.500s", dir);
    assert_int_equal(play(&r, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "bid.txt:1: unknown placeholder '{{private.budjet}}'"));
    unlink(p);
    assert_int_equal(play(&r, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "bid.txt"));
}

/* The shipped electricity prompts against the real game, communication on
 * and off: every deciding phase has a template whose names the game shows. */
extern const struct bz_game_ops bz_electricity_ops;

static void electricity_prompts_should_match_the_game(void **state)
{
    (void)state;
    const struct bz_game_ops *ops = &bz_electricity_ops;
    for (int comm = 0; comm <= 1; comm++) {
        struct bz_agent_spec agents[4];
        memset(agents, 0, sizeof agents);
        for (int i = 0; i < 4; i++) {
            agents[i].kind = BZ_AGENT_LLM;
            snprintf(agents[i].policy, sizeof agents[i].policy, "t-openai");
        }
        struct bz_game_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.ops = ops;
        for (size_t p = 0; p < ops->n_params; p++) {
            cfg.num[p] = ops->params[p].def;
            cfg.str[p] = ops->params[p].def_str;
        }
        cfg.num[bz_game_param_index(ops, "n_agents")] = 4;
        cfg.num[bz_game_param_index(ops, "max_turns")] = 3;
        cfg.num[bz_game_param_index(ops, "communication")] = comm;
        cfg.n_agents = 4;
        cfg.communication = comm;
        cfg.agents = agents;
        cfg.seed = 7;
        cfg.env_seed = 11;
        cfg.lineup_name = "t";
        cfg.data_dir = BZ_SOURCE_DIR "/data";
        struct run r;
        run_defaults(&r);
        snprintf(r.set.prompts_dir, sizeof r.set.prompts_dir, "%s",
                 BZ_SOURCE_DIR "/prompts/electricity");
        const char *ids[] = {"t-openai"};
        struct bz_llm *llm = NULL;
        struct bz_err err = {0};
        int rc = bz_llm_create_from(&r.set, NULL, ops, &cfg, ids, 1, 1, 0.01, &llm, &err);
        if (rc)
            fail_msg("communication %d: %s", comm, err.msg);
        /* play it for real against the server: schema-generated replies */
        struct bz_llm_hook hook = bz_llm_hook(llm);
        struct bz_match *m = NULL;
        assert_int_equal(bz_match_create(&cfg, &hook, &m, &err), BZ_OK);
        int st;
        double t0 = bz_llm_now_s();
        while ((st = bz_match_advance(m, &err)) != BZ_MATCH_DONE) {
            assert_true(st > 0);
            if (st == BZ_MATCH_WAITING)
                bz_llm_poll(llm, 50, &err);
            assert_true(bz_llm_now_s() - t0 < 60);
        }
        const struct bz_rowbuf *rb = bz_records_find(bz_match_records(m), &bz_llm_calls_table);
        assert_non_null(rb);
        assert_true(rb->n_rows >= 4 * 3 * 3);
        const struct bz_rowbuf *gb = bz_records_find(bz_match_records(m), &bz_games_table);
        const struct bz_games_row *g = (const void *)gb->data;
        assert_string_equal(g->status, "ok");
        bz_match_destroy(m);
        bz_llm_destroy(llm);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_run_should_decide_every_agent_and_account),
        cmocka_unit_test(two_questions_to_one_agent_should_both_be_answered),
        cmocka_unit_test(anthropic_model_should_answer_through_a_tool),
        cmocka_unit_test(each_fault_should_end_in_a_finished_game_with_the_fault_recorded),
        cmocka_unit_test(rerun_should_hit_the_cache_with_zero_requests),
        cmocka_unit_test(replay_should_refuse_calls_not_in_the_cache),
        cmocka_unit_test(missing_key_should_be_refused_before_start),
        cmocka_unit_test(key_should_never_reach_records_or_logs),
        cmocka_unit_test(concurrency_should_be_honoured),
        cmocka_unit_test(identical_requests_in_flight_should_make_one_server_request),
        cmocka_unit_test(bad_prompt_should_be_refused_at_create),
        cmocka_unit_test(electricity_prompts_should_match_the_game),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
