/* test_grid: grid expansion of a spec: the count, the documented id order, the
 * decode round trip, paired seeds, determinism, the cyclic lineup fill and the
 * environment check. A fake game stands in for the real ones. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bazaar/spec.h"
#include "spec_internal.h"

enum { P_N_AGENTS, P_COMMUNICATION, P_VOLATILITY, P_SCARCITY, P_MAX_TURNS, P_LABEL, P_PROFILE };

static const struct bz_param_desc fake_params[] = {
    [P_N_AGENTS] = {"n_agents", BZ_PARAM_INT, 4, 1, 1000, NULL, 1, "agents"},
    [P_COMMUNICATION] = {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "free text"},
    [P_VOLATILITY] = {"volatility", BZ_PARAM_NUM, 0.2, 0, 1, NULL, 1, "noise"},
    [P_SCARCITY] = {"scarcity", BZ_PARAM_NUM, 1.0, 0.1, 10, NULL, 1, "competition"},
    [P_MAX_TURNS] = {"max_turns", BZ_PARAM_INT, 24, 1, 10000, NULL, 1, "turns"},
    [P_LABEL] = {"label", BZ_PARAM_STR, 0, 0, 0, "plain", 0, "not part of the environment"},
    [P_PROFILE] = {"profile", BZ_PARAM_STR, 0, 0, 0, "flat", 1, "part of the environment"},
};

static int check_calls;

/* Refuses volatility above 0.5, naming the parameter as a game's check does. */
static int fake_check(const struct bz_game_config *cfg, struct bz_err *err)
{
    check_calls++;
    if (cfg->num[P_VOLATILITY] > 0.5)
        return bz_err_set(err, BZ_EINVAL, "volatility: %g too high for profile %s",
                          cfg->num[P_VOLATILITY], cfg->str[P_PROFILE]);
    return BZ_OK;
}

static const struct bz_policy_ops fake_truthful = {"truthful", "", NULL};
static const struct bz_policy_ops fake_greedy = {"greedy", "", NULL};
static const struct bz_policy_ops *const fake_policies[] = {&fake_truthful, &fake_greedy};
static const struct bz_game_ops fake_ops = {
    .name = "fake",
    .params = fake_params,
    .n_params = sizeof fake_params / sizeof fake_params[0],
    .policies = fake_policies,
    .n_policies = 2,
    .check = fake_check,
};
static const struct bz_game_ops *const fake_games[] = {&fake_ops};

#define LINEUPS                                                                                    \
    "\"lineups\":{\"bal\":[\"heuristic:truthful?skill=0.5\",\"heuristic:greedy\"],"                \
    "\"gap\":[\"heuristic:greedy?skill=0.1\",\"heuristic:greedy?skill=0.9\",\"m1\"]}"

/* 3 scarcity x 2 communication x 2 lineups x 5 repetitions = 60 games */
static const char *spec_a = "{\"game\":\"fake\",\"seed\":42,\"repetitions\":5," LINEUPS ","
                            "\"fixed\":{\"n_agents\":5,\"volatility\":0.3},"
                            "\"grid\":{\"scarcity\":[0.8,1.0,1.2],\"communication\":[true,false],"
                            "\"lineup\":[\"bal\",\"gap\"]}}";

/* the same grid, keys in another order */
static const char *spec_a_reordered =
    "{\"grid\":{\"lineup\":[\"bal\",\"gap\"],\"communication\":[true,false],\"scarcity\":[0.8,1.0,"
    "1.2]},"
    "\"fixed\":{\"volatility\":0.3,\"n_agents\":5},\"repetitions\":5,\"seed\":42," LINEUPS
    ",\"game\":\"fake\"}";

static struct bz_grid *make_grid(const char *text, struct bz_spec **sp)
{
    struct bz_err err;
    struct bz_spec *s = NULL;
    struct bz_grid *g = NULL;
    int rc = bz_spec_parse_games(text, "sweeps/g.json", fake_games, 1, &s, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, BZ_OK);
    rc = bz_grid_create(s, &g, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, BZ_OK);
    *sp = s;
    return g;
}

static void free_grid(struct bz_grid *g, struct bz_spec *s)
{
    bz_grid_destroy(g);
    bz_spec_destroy(s);
}

static struct bz_game_config config(const struct bz_grid *g, int64_t id)
{
    struct bz_game_config cfg;
    struct bz_err err;
    assert_int_equal(bz_grid_config(g, id, &cfg, &err), BZ_OK);
    return cfg;
}

static void grid_should_count_the_product_times_repetitions(void **state)
{
    (void)state;
    struct bz_spec *s;
    struct bz_grid *g = make_grid(spec_a, &s);
    assert_int_equal(bz_grid_count(g), 60);
    assert_ptr_equal(bz_grid_spec(g), s);
    free_grid(g, s);

    g = make_grid("{\"game\":\"fake\",\"seed\":1,\"fixed\":{\"lineup\":[\"m\"]}}", &s);
    assert_int_equal(bz_grid_count(g), 1);
    free_grid(g, s);
}

/* Axes in name order (communication, lineup, scarcity), repetition fastest. */
static void grid_ids_should_follow_the_documented_order(void **state)
{
    (void)state;
    static const double scarcity[] = {0.8, 1.0, 1.2};
    static const int comm[] = {1, 0};
    static const char *const lineup[] = {"bal", "gap"};
    struct bz_spec *s;
    struct bz_grid *g = make_grid(spec_a, &s);
    int64_t id = 0;
    for (int c = 0; c < 2; c++)
        for (int l = 0; l < 2; l++)
            for (int k = 0; k < 3; k++)
                for (int r = 0; r < 5; r++, id++) {
                    struct bz_game_config cfg = config(g, id);
                    assert_int_equal(cfg.game_id, id);
                    assert_int_equal(cfg.communication, comm[c]);
                    assert_true(cfg.num[P_COMMUNICATION] == comm[c]);
                    assert_string_equal(cfg.lineup_name, lineup[l]);
                    assert_true(cfg.num[P_SCARCITY] == scarcity[k]);
                    assert_int_equal(cfg.repetition, r);
                    /* fixed and default values everywhere */
                    assert_int_equal(cfg.n_agents, 5);
                    assert_true(cfg.num[P_VOLATILITY] == 0.3);
                    assert_true(cfg.num[P_MAX_TURNS] == 24);
                    assert_string_equal(cfg.str[P_LABEL], "plain");
                    assert_string_equal(cfg.str[P_PROFILE], "flat");
                    assert_ptr_equal(cfg.ops, &fake_ops);
                    assert_null(cfg.transcript);
                }
    assert_int_equal(id, bz_grid_count(g));
    free_grid(g, s);
}

/* Every id decodes to a distinct (values, lineup, repetition); reordering the
 * spec's keys changes neither ids nor seeds. */
static void grid_should_round_trip_and_ignore_key_order(void **state)
{
    (void)state;
    struct bz_spec *s1, *s2;
    struct bz_grid *g1 = make_grid(spec_a, &s1);
    struct bz_grid *g2 = make_grid(spec_a_reordered, &s2);
    int64_t n = bz_grid_count(g1);
    assert_int_equal(n, bz_grid_count(g2));
    uint64_t seeds[60];
    for (int64_t id = 0; id < n; id++) {
        struct bz_game_config a = config(g1, id), b = config(g2, id);
        assert_true(a.num[P_SCARCITY] == b.num[P_SCARCITY]);
        assert_int_equal(a.communication, b.communication);
        assert_string_equal(a.lineup_name, b.lineup_name);
        assert_int_equal(a.repetition, b.repetition);
        assert_int_equal(a.seed, b.seed);
        assert_int_equal(a.env_seed, b.env_seed);
        /* re-encode: the documented mixed radix gives the id back */
        int c = a.communication ? 0 : 1;
        int l = strcmp(a.lineup_name, "bal") == 0 ? 0 : 1;
        int k = a.num[P_SCARCITY] == 0.8 ? 0 : a.num[P_SCARCITY] == 1.0 ? 1 : 2;
        assert_int_equal(((c * 2 + l) * 3 + k) * 5 + a.repetition, id);
        seeds[id] = a.seed;
        for (int64_t j = 0; j < id; j++)
            assert_true(seeds[j] != a.seed);
    }
    struct bz_game_config cfg;
    struct bz_err err;
    assert_int_equal(bz_grid_config(g1, n, &cfg, &err), BZ_EINVAL);
    assert_int_equal(bz_grid_config(g1, -1, &cfg, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "sweeps/g.json: game id -1 outside [0, 60)"));
    free_grid(g1, s1);
    free_grid(g2, s2);
}

/* Find the id with the given values (-1 where any is fine). */
static int64_t find(const struct bz_grid *g, double scarcity, int comm, const char *lineup, int rep)
{
    for (int64_t id = 0; id < bz_grid_count(g); id++) {
        struct bz_game_config c = config(g, id);
        if ((scarcity < 0 || c.num[P_SCARCITY] == scarcity) &&
            (comm < 0 || c.communication == comm) &&
            (!lineup || strcmp(c.lineup_name, lineup) == 0) && (rep < 0 || c.repetition == rep))
            return id;
    }
    fail_msg("no game with scarcity %g comm %d lineup %s rep %d", scarcity, comm, lineup, rep);
    return -1;
}

static void grid_seeds_should_be_paired(void **state)
{
    (void)state;
    struct bz_spec *s;
    struct bz_grid *g = make_grid(spec_a, &s);
    struct bz_game_config on = config(g, find(g, 1.0, 1, "bal", 2));
    struct bz_game_config off = config(g, find(g, 1.0, 0, "bal", 2));
    struct bz_game_config gap = config(g, find(g, 1.0, 1, "gap", 2));
    struct bz_game_config rep3 = config(g, find(g, 1.0, 1, "bal", 3));
    struct bz_game_config scarce = config(g, find(g, 1.2, 1, "bal", 2));
    /* same market with communication on and off, and for every lineup */
    assert_int_equal(on.env_seed, off.env_seed);
    assert_int_equal(on.env_seed, gap.env_seed);
    /* but not the same agents' randomness */
    assert_true(on.seed != off.seed);
    assert_true(on.seed != gap.seed);
    /* another repetition or another environment: another market */
    assert_true(on.env_seed != rep3.env_seed);
    assert_true(on.env_seed != scarce.env_seed);
    assert_true(on.seed != rep3.seed);
    /* env and agent seeds never coincide */
    assert_true(on.env_seed != on.seed);
    free_grid(g, s);

    /* an env=0 parameter in the grid (label) leaves env_seed alone; an env=1
     * one (profile) changes it */
    g = make_grid("{\"game\":\"fake\",\"seed\":42,\"fixed\":{\"lineup\":[\"m\"]},"
                  "\"grid\":{\"label\":[\"a\",\"b\"],\"profile\":[\"flat\",\"peak\"]}}",
                  &s);
    assert_int_equal(bz_grid_count(g), 4); /* label slowest, then profile */
    struct bz_game_config a_flat = config(g, 0), a_peak = config(g, 1), b_flat = config(g, 2);
    assert_string_equal(a_flat.str[P_LABEL], "a");
    assert_string_equal(a_peak.str[P_PROFILE], "peak");
    assert_string_equal(b_flat.str[P_LABEL], "b");
    assert_int_equal(a_flat.env_seed, b_flat.env_seed);
    assert_true(a_flat.seed != b_flat.seed);
    assert_true(a_flat.env_seed != a_peak.env_seed);
    free_grid(g, s);
}

/* A fixed value, a default and a one-value grid list of the same value give
 * the same seeds: the seeds hash values, not how the spec wrote them. */
static void grid_seeds_should_depend_on_values_not_spelling(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "{\"game\":\"fake\",\"seed\":9,\"fixed\":{\"lineup\":[\"m\"]}}",
        "{\"game\":\"fake\",\"seed\":9,\"fixed\":{\"lineup\":[\"m\"],\"scarcity\":1.0}}",
        "{\"game\":\"fake\",\"seed\":9,\"fixed\":{\"lineup\":[\"m\"]},\"grid\":{\"scarcity\":[1]}}",
    };
    uint64_t seed0 = 0, env0 = 0;
    for (int i = 0; i < 3; i++) {
        struct bz_spec *s;
        struct bz_grid *g = make_grid(specs[i], &s);
        struct bz_game_config c = config(g, 0);
        if (i == 0) {
            seed0 = c.seed;
            env0 = c.env_seed;
        }
        assert_int_equal(c.seed, seed0);
        assert_int_equal(c.env_seed, env0);
        free_grid(g, s);
    }
}

static void grid_should_be_deterministic(void **state)
{
    (void)state;
    struct bz_spec *s1, *s2, *s3;
    struct bz_grid *g1 = make_grid(spec_a, &s1);
    struct bz_grid *g2 = make_grid(spec_a, &s2);
    char other[1024];
    const char *p = strstr(spec_a, "\"seed\":42");
    snprintf(other, sizeof other, "%.*s\"seed\":43%s", (int)(p - spec_a), spec_a, p + 9);
    struct bz_grid *g3 = make_grid(other, &s3);
    for (int64_t id = 0; id < bz_grid_count(g1); id++) {
        struct bz_game_config a = config(g1, id), b = config(g2, id), c = config(g3, id);
        struct bz_game_config a2 = config(g1, id);
        assert_int_equal(a.seed, b.seed);
        assert_int_equal(a.env_seed, b.env_seed);
        assert_int_equal(a.seed, a2.seed);
        assert_true(a.seed != c.seed);
        assert_true(a.env_seed != c.env_seed);
    }
    /* pinned values: a change here changes every published sweep's games */
    struct bz_game_config c0 = config(g1, 0);
    assert_int_equal(c0.seed, UINT64_C(0x7314d872bad60c61));
    assert_int_equal(c0.env_seed, UINT64_C(0xa4b8310724f66f70));
    free_grid(g1, s1);
    free_grid(g2, s2);
    free_grid(g3, s3);
}

static void grid_should_fill_lineups_cyclically(void **state)
{
    (void)state;
    struct bz_spec *s;
    struct bz_grid *g =
        make_grid("{\"game\":\"fake\",\"seed\":1,"
                  "\"grid\":{\"n_agents\":[3,5],\"lineup\":[[\"heuristic:truthful\","
                  "\"heuristic:greedy?skill=0.25\"],[\"m1\"]]}}",
                  &s);
    /* ids: lineup slowest (l < n), then n_agents */
    assert_int_equal(bz_grid_count(g), 4);
    struct bz_game_config c3 = config(g, 0), c5 = config(g, 1), m5 = config(g, 3);
    assert_int_equal(c3.n_agents, 3);
    assert_int_equal(c5.n_agents, 5);
    static const char *const want[] = {"truthful", "greedy", "truthful", "greedy", "truthful"};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(c5.agents[i].policy, want[i]);
        assert_int_equal(c5.agents[i].kind, BZ_AGENT_HEURISTIC);
        assert_true(c5.agents[i].capability == (i % 2 ? 0.25 : 1.0));
    }
    for (int i = 0; i < 3; i++)
        assert_string_equal(c3.agents[i].label, c5.agents[i].label);
    assert_string_equal(c5.agents[1].label, "heuristic:greedy?skill=0.25");
    assert_string_equal(c5.lineup_name, "heuristic:truthful,heuristic:greedy?skill=0.25");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(m5.agents[i].kind, BZ_AGENT_LLM);
        assert_string_equal(m5.agents[i].policy, "m1");
    }
    free_grid(g, s);
}

static void grid_should_resolve_the_data_dir(void **state)
{
    (void)state;
    struct bz_spec *s;
    unsetenv("BAZAAR_DATA_DIR");
    struct bz_grid *g = make_grid(spec_a, &s);
    assert_string_equal(config(g, 0).data_dir, BZ_SOURCE_DIR "/data");
    bz_grid_destroy(g);
    setenv("BAZAAR_DATA_DIR", "/tmp/bz-data", 1);
    struct bz_err err;
    assert_int_equal(bz_grid_create(s, &g, &err), BZ_OK);
    assert_string_equal(config(g, 7).data_dir, "/tmp/bz-data");
    unsetenv("BAZAAR_DATA_DIR");
    free_grid(g, s);
}

static void grid_check_should_visit_each_environment_once(void **state)
{
    (void)state;
    struct bz_spec *s;
    struct bz_err err;
    /* envs: volatility x 2 (communication, lineup, repetitions are not env) */
    struct bz_grid *g =
        make_grid("{\"game\":\"fake\",\"seed\":1,\"repetitions\":3," LINEUPS ","
                  "\"grid\":{\"volatility\":[0.1,0.2],\"communication\":[true,false],"
                  "\"lineup\":[\"bal\",\"gap\"]}}",
                  &s);
    check_calls = 0;
    assert_int_equal(bz_grid_check(g, &err), BZ_OK);
    assert_int_equal(check_calls, 2);
    free_grid(g, s);

    g = make_grid(
        "{\"game\":\"fake\",\"seed\":1," LINEUPS ","
        "\"grid\":{\"volatility\":[0.1,0.9],\"scarcity\":[1,2],\"lineup\":[\"bal\",\"gap\"]}}",
        &s);
    check_calls = 0;
    bz_err_clear(&err);
    assert_int_equal(bz_grid_check(g, &err), BZ_EINVAL);
    assert_string_equal(err.msg,
                        "sweeps/g.json: grid scarcity=1 volatility=0.9: volatility: 0.9 too high "
                        "for profile flat");
    free_grid(g, s);

    /* no grid at all: the message is prefixed by the origin only */
    g = make_grid(
        "{\"game\":\"fake\",\"seed\":1,\"fixed\":{\"volatility\":0.7,\"lineup\":[\"m\"]}}", &s);
    assert_int_equal(bz_grid_check(g, &err), BZ_EINVAL);
    assert_string_equal(err.msg, "sweeps/g.json: volatility: 0.7 too high for profile flat");
    free_grid(g, s);
}

static void grid_should_describe_a_game(void **state)
{
    (void)state;
    struct bz_spec *s;
    struct bz_grid *g = make_grid(spec_a, &s);
    char buf[512];
    assert_int_equal(bz_grid_describe(g, 37, buf, sizeof buf), BZ_OK);
    struct bz_game_config c = config(g, 37);
    char want[512];
    snprintf(want, sizeof want,
             "game 37: communication=false scarcity=1 lineup=bal rep=2 env_seed=%016" PRIx64
             " seed=%016" PRIx64,
             c.env_seed, c.seed);
    assert_string_equal(buf, want);
    /* a short buffer gets a truncated, terminated line */
    char small[10];
    assert_int_equal(bz_grid_describe(g, 37, small, sizeof small), BZ_OK);
    assert_string_equal(small, "game 37: ");
    assert_int_equal(bz_grid_describe(g, 60, buf, sizeof buf), BZ_EINVAL);
    assert_string_equal(buf, "");
    free_grid(g, s);
}

/* llm.memory_turns on the grid: an axis like any other (name order:
 * communication, lineup, llm.memory_turns), out of env_seed (a treatment),
 * in seed only when not 0, and a config's memory_turns is 0 for a lineup
 * without a model. */
static void grid_should_vary_memory_turns_as_a_paired_axis(void **state)
{
    (void)state;
    static const char *const spec_m =
        "{\"game\":\"fake\",\"seed\":42,\"repetitions\":2," LINEUPS ","
        "\"fixed\":{\"n_agents\":5},\"grid\":{\"llm.memory_turns\":[3,0],"
        "\"communication\":[true,false],\"lineup\":[\"bal\",\"gap\"]}}";
    static const char *const spec_none =
        "{\"game\":\"fake\",\"seed\":42,\"repetitions\":2," LINEUPS ","
        "\"fixed\":{\"n_agents\":5},\"grid\":{"
        "\"communication\":[true,false],\"lineup\":[\"bal\",\"gap\"]}}";
    static const char *const spec_fixed3 =
        "{\"game\":\"fake\",\"seed\":42,\"repetitions\":2," LINEUPS ","
        "\"fixed\":{\"n_agents\":5},\"llm\":{\"memory_turns\":3},\"grid\":{"
        "\"communication\":[true,false],\"lineup\":[\"bal\",\"gap\"]}}";
    struct bz_spec *s, *s0, *s3;
    struct bz_grid *g = make_grid(spec_m, &s);
    struct bz_grid *g0 = make_grid(spec_none, &s0);
    struct bz_grid *g3 = make_grid(spec_fixed3, &s3);
    assert_int_equal(bz_grid_count(g), 2 * 2 * 2 * 2);
    assert_int_equal(bz_grid_count(g0), 8);
    for (int64_t id = 0; id < bz_grid_count(g); id++) {
        struct bz_game_config c = config(g, id);
        int rep = (int)(id % 2), mi = (int)(id / 2 % 2), li = (int)(id / 4 % 2);
        int comm = (int)(id / 8);
        int value = mi == 0 ? 3 : 0; /* the spec's order */
        assert_int_equal(c.repetition, rep);
        assert_int_equal(c.communication, comm == 0);
        assert_string_equal(c.lineup_name, li ? "gap" : "bal");
        /* "bal" names no model: its agents get no memory */
        assert_int_equal(c.memory_turns, li ? value : 0);
        /* the game without memory axis of the same cell */
        struct bz_game_config n = config(g0, (comm * 2 + li) * 2 + rep);
        struct bz_game_config f = config(g3, (comm * 2 + li) * 2 + rep);
        assert_int_equal(c.env_seed, n.env_seed); /* paired with and without memory */
        assert_int_equal(c.env_seed, f.env_seed);
        if (value == 0)
            assert_int_equal(c.seed, n.seed); /* a spec without memory keeps its seeds */
        else
            assert_int_equal(c.seed, f.seed); /* fixed or a grid value: the same seed */
        assert_true(c.seed != (value ? n.seed : f.seed));
        assert_int_equal(n.memory_turns, 0);
        assert_int_equal(f.memory_turns, li ? 3 : 0);
    }
    char buf[512];
    assert_int_equal(bz_grid_describe(g, 7, buf, sizeof buf), BZ_OK);
    assert_non_null(strstr(buf, "game 7: communication=true llm.memory_turns=0 lineup=gap rep=1"));
    free_grid(g, s);
    free_grid(g0, s0);
    free_grid(g3, s3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grid_should_count_the_product_times_repetitions),
        cmocka_unit_test(grid_ids_should_follow_the_documented_order),
        cmocka_unit_test(grid_should_round_trip_and_ignore_key_order),
        cmocka_unit_test(grid_seeds_should_be_paired),
        cmocka_unit_test(grid_seeds_should_depend_on_values_not_spelling),
        cmocka_unit_test(grid_should_be_deterministic),
        cmocka_unit_test(grid_should_fill_lineups_cyclically),
        cmocka_unit_test(grid_should_resolve_the_data_dir),
        cmocka_unit_test(grid_check_should_visit_each_environment_once),
        cmocka_unit_test(grid_should_describe_a_game),
        cmocka_unit_test(grid_should_vary_memory_turns_as_a_paired_axis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
