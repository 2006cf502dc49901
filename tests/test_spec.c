/* test_spec: the sweep spec parser. Every rejected key path has a case whose
 * message must name the origin and the key path; accepted specs read back. A
 * fake game stands in for the real ones so the parser is tested alone. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "bazaar/spec.h"
#include "spec_internal.h"

/* ---- a fake game: just what the parser reads ---- */

static const struct bz_param_desc fake_params[] = {
    {"n_agents", BZ_PARAM_INT, 4, 1, 1000, NULL, 1, "agents"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "free text"},
    {"volatility", BZ_PARAM_NUM, 0.2, 0, 1, NULL, 1, "noise"},
    {"scarcity", BZ_PARAM_NUM, 1.0, 0.1, 10, NULL, 1, "competition"},
    {"max_turns", BZ_PARAM_INT, 24, 1, 10000, NULL, 1, "turns"},
    {"label", BZ_PARAM_STR, 0, 0, 0, "plain", 0, "a string"},
};
static const struct bz_policy_ops fake_truthful = {"truthful", "", NULL};
static const struct bz_policy_ops fake_greedy = {"greedy", "", NULL};
static const struct bz_policy_ops *const fake_policies[] = {&fake_truthful, &fake_greedy};
static const struct bz_game_ops fake_ops = {
    .name = "fake",
    .params = fake_params,
    .n_params = sizeof fake_params / sizeof fake_params[0],
    .policies = fake_policies,
    .n_policies = 2,
};
static const struct bz_game_ops *const fake_games[] = {&fake_ops};

static int fake_param(const char *name)
{
    for (size_t i = 0; i < fake_ops.n_params; i++)
        if (strcmp(fake_params[i].name, name) == 0)
            return (int)i;
    return -1;
}

#define ORIGIN "sweeps/x.json"

static int parse(const char *text, struct bz_spec **s, struct bz_err *err)
{
    bz_err_clear(err);
    return bz_spec_parse_games(text, ORIGIN, fake_games, 1, s, err);
}

/* ---- rejected specs: (case, spec text, what the message must contain) ---- */

#define HEAD "\"game\":\"fake\",\"seed\":1"
#define LINEUP "\"fixed\":{\"lineup\":[\"heuristic:truthful\"]}"
#define OK_BASE "{" HEAD "," LINEUP

struct bad_case {
    const char *name;
    const char *json;
    const char *expect;
};

static const struct bad_case bad_cases[] = {
    /* JSON itself */
    {"bad_json_names_line_and_column", "{\"game\":\"fake\",\n  \"seed\": 1,,\n}",
     ORIGIN ": invalid JSON at line 2, column 14 (at the end of the line)"},
    {"truncated_json", "{\"game\":\"fake\"",
     ORIGIN ": invalid JSON at line 1, column 15 (unexpected end of the text)"},
    {"bad_json_names_what_is_near", "{\"game\": fake}",
     ORIGIN ": invalid JSON at line 1, column 10 (near \"fake}\")"},
    {"empty_text", "  \n", ORIGIN ": empty spec"},
    {"top_level_not_object", "[1,2]", "expected a JSON object at the top level, got [1,2]"},
    /* top level */
    {"unknown_top_level_key", OK_BASE ",\"sede\":3}",
     ORIGIN ": sede: unknown key (expected one of: name, game"},
    {"duplicate_top_level_key", OK_BASE ",\"seed\":2}", ORIGIN ": seed: duplicate key"},
    {"missing_game", "{\"seed\":1," LINEUP "}", ORIGIN ": game: missing"},
    {"unknown_game", "{\"game\":\"chess\",\"seed\":1," LINEUP "}",
     ORIGIN ": game: unknown game \"chess\" (known: fake)"},
    {"game_not_string", "{\"game\":3,\"seed\":1," LINEUP "}",
     ORIGIN ": game: expected a string, got 3"},
    {"missing_seed", "{\"game\":\"fake\"," LINEUP "}", ORIGIN ": seed: missing"},
    {"negative_seed", "{\"game\":\"fake\",\"seed\":-1," LINEUP "}",
     ORIGIN ": seed: expected an integer in [0,9007199254740992], got -1"},
    {"fractional_seed", "{\"game\":\"fake\",\"seed\":1.5," LINEUP "}",
     ORIGIN ": seed: expected an integer"},
    {"string_seed", "{\"game\":\"fake\",\"seed\":\"42\"," LINEUP "}",
     ORIGIN ": seed: expected an integer in [0,9007199254740992], got \"42\""},
    {"zero_repetitions", OK_BASE ",\"repetitions\":0}",
     ORIGIN ": repetitions: expected an integer in [1,2147483647], got 0"},
    {"name_with_slash", OK_BASE ",\"name\":\"a/b\"}", ORIGIN ": name: expected a name without '/'"},
    {"empty_name", OK_BASE ",\"name\":\"\"}", ORIGIN ": name: expected a non-empty string"},
    {"output_not_string", OK_BASE ",\"output\":5}", ORIGIN ": output: expected a string, got 5"},
    {"models_empty", OK_BASE ",\"models\":\"\"}", ORIGIN ": models: expected a non-empty string"},
    {"prompts_not_string", OK_BASE ",\"prompts\":[]}",
     ORIGIN ": prompts: expected a string, got []"},
    /* fixed */
    {"fixed_not_object", "{" HEAD ",\"fixed\":[1]}", ORIGIN ": fixed: expected an object, got [1]"},
    {"unknown_param_in_fixed",
     "{" HEAD ",\"fixed\":{\"volatilty\":0.5,\"lineup\":[\"heuristic:truthful\"]}}",
     ORIGIN ": fixed.volatilty: unknown parameter of game fake (known: n_agents, communication"},
    {"duplicate_key_in_fixed",
     "{" HEAD ",\"fixed\":{\"scarcity\":1,\"scarcity\":2,\"lineup\":[\"heuristic:truthful\"]}}",
     ORIGIN ": fixed.scarcity: duplicate key"},
    {"bool_param_wrong_type",
     "{" HEAD ",\"fixed\":{\"communication\":1,\"lineup\":[\"heuristic:truthful\"]}}",
     ORIGIN ": fixed.communication: expected true or false, got 1"},
    {"str_param_wrong_type",
     "{" HEAD ",\"fixed\":{\"label\":3,\"lineup\":[\"heuristic:truthful\"]}}",
     ORIGIN ": fixed.label: expected a string, got 3"},
    {"int_param_fractional",
     "{" HEAD ",\"fixed\":{\"n_agents\":2.5,\"lineup\":[\"heuristic:truthful\"]}}",
     ORIGIN ": fixed.n_agents: expected an integer in [1,1000], got 2.5"},
    {"num_param_out_of_bounds",
     "{" HEAD ",\"fixed\":{\"scarcity\":20,\"lineup\":[\"heuristic:truthful\"]}}",
     ORIGIN ": fixed.scarcity: expected a number in [0.1,10], got 20"},
    {"num_param_null",
     "{" HEAD ",\"fixed\":{\"scarcity\":null,\"lineup\":[\"heuristic:truthful\"]}}",
     ORIGIN ": fixed.scarcity: expected a number in [0.1,10], got null"},
    /* grid */
    {"grid_not_object", OK_BASE ",\"grid\":3}", ORIGIN ": grid: expected an object, got 3"},
    {"unknown_param_in_grid", OK_BASE ",\"grid\":{\"scarce\":[1]}}",
     ORIGIN ": grid.scarce: unknown parameter of game fake"},
    {"param_in_fixed_and_grid",
     "{" HEAD ",\"fixed\":{\"scarcity\":1,\"lineup\":[\"heuristic:truthful\"]},\"grid\":{"
     "\"scarcity\":[1,2]}}",
     ORIGIN ": grid.scarcity: also given in fixed.scarcity"},
    {"empty_grid_list", OK_BASE ",\"grid\":{\"volatility\":[]}}",
     ORIGIN ": grid.volatility: expected a non-empty list of values, got []"},
    {"grid_value_not_list", OK_BASE ",\"grid\":{\"volatility\":0.5}}",
     ORIGIN ": grid.volatility: expected a non-empty list of values, got 0.5"},
    {"grid_value_wrong_type_with_index", OK_BASE ",\"grid\":{\"volatility\":[0.1,0.4,\"high\"]}}",
     ORIGIN ": grid.volatility[2]: expected a number in [0,1], got \"high\""},
    {"grid_value_out_of_bounds_with_index", OK_BASE ",\"grid\":{\"volatility\":[0.1,1.5]}}",
     ORIGIN ": grid.volatility[1]: expected a number in [0,1], got 1.5"},
    {"grid_bool_wrong_type", OK_BASE ",\"grid\":{\"communication\":[true,\"no\"]}}",
     ORIGIN ": grid.communication[1]: expected true or false, got \"no\""},
    {"grid_int_out_of_bounds", OK_BASE ",\"grid\":{\"n_agents\":[2,0]}}",
     ORIGIN ": grid.n_agents[1]: expected an integer in [1,1000], got 0"},
    {"grid_duplicate_value", OK_BASE ",\"grid\":{\"scarcity\":[1,2,1]}}",
     ORIGIN ": grid.scarcity[2]: duplicate of grid.scarcity[0]"},
    {"grid_str_duplicate_value", OK_BASE ",\"grid\":{\"label\":[\"a\",\"a\"]}}",
     ORIGIN ": grid.label[1]: duplicate of grid.label[0]"},
    /* lineups */
    {"no_lineup", "{" HEAD ",\"lineups\":{\"a\":[\"heuristic:truthful\"]}}",
     ORIGIN ": lineup: no lineup"},
    {"lineup_in_fixed_and_grid", OK_BASE ",\"grid\":{\"lineup\":[[\"heuristic:greedy\"]]}}",
     ORIGIN ": grid.lineup: also given in fixed.lineup"},
    {"unknown_fixed_lineup_name",
     "{" HEAD ",\"lineups\":{\"a\":[\"heuristic:truthful\"]},\"fixed\":{\"lineup\":\"b\"}}",
     ORIGIN ": fixed.lineup: unknown lineup \"b\" (\"lineups\" defines: a)"},
    {"unknown_grid_lineup_name",
     "{" HEAD
     ",\"lineups\":{\"a\":[\"heuristic:truthful\"]},\"grid\":{\"lineup\":[\"a\",\"gap\"]}}",
     ORIGIN ": grid.lineup[1]: unknown lineup \"gap\""},
    {"fixed_lineup_wrong_type", "{" HEAD ",\"fixed\":{\"lineup\":3}}",
     ORIGIN ": fixed.lineup: expected a lineup name or an array of agent strings, got 3"},
    {"grid_lineup_empty", "{" HEAD ",\"grid\":{\"lineup\":[]}}",
     ORIGIN ": grid.lineup: expected a non-empty list"},
    {"grid_lineup_duplicate",
     "{" HEAD ",\"lineups\":{\"a\":[\"heuristic:truthful\"]},\"grid\":{\"lineup\":[\"a\",\"a\"]}}",
     ORIGIN ": grid.lineup[1]: duplicate of lineup \"a\""},
    {"lineups_not_object", OK_BASE ",\"lineups\":[]}",
     ORIGIN ": lineups: expected an object, got []"},
    {"lineups_entry_not_array", OK_BASE ",\"lineups\":{\"a\":\"heuristic:truthful\"}}",
     ORIGIN ": lineups.a: expected a non-empty array of agent strings"},
    {"lineups_entry_empty", OK_BASE ",\"lineups\":{\"a\":[]}}",
     ORIGIN ": lineups.a: expected a non-empty array of agent strings, got []"},
    {"lineups_empty_name", OK_BASE ",\"lineups\":{\"\":[\"heuristic:truthful\"]}}",
     ORIGIN ": lineups.: a lineup needs a non-empty name"},
    {"lineups_duplicate_name", OK_BASE ",\"lineups\":{\"a\":[\"m\"],\"a\":[\"n\"]}}",
     ORIGIN ": lineups.a: duplicate key"},
    /* agent strings */
    {"agent_not_string", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:greedy\",3]}}",
     ORIGIN ": lineups.a[1]: expected an agent string"},
    {"agent_empty", OK_BASE ",\"lineups\":{\"a\":[\"\"]}}",
     ORIGIN ": lineups.a[0]: expected an agent string, got \"\""},
    {"agent_with_space", OK_BASE ",\"lineups\":{\"a\":[\"gpt 4\"]}}",
     ORIGIN ": lineups.a[0]: agent \"gpt 4\": no white space"},
    {"agent_heuristic_no_policy", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:\"]}}",
     ORIGIN ": lineups.a[0]: agent \"heuristic:\": expected a policy name"},
    {"agent_heuristic_misspelt", OK_BASE ",\"lineups\":{\"a\":[\"heuristic;greedy\"]}}",
     ORIGIN ": lineups.a[0]: agent \"heuristic;greedy\": expected \"heuristic:<policy>"},
    {"agent_unknown_policy", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:liar?skill=0.5\"]}}",
     ORIGIN ": lineups.a[0]: unknown policy \"liar\" for game fake (known: truthful, greedy)"},
    {"agent_skill_out_of_range", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:greedy?skill=1.5\"]}}",
     ORIGIN ": lineups.a[0]: skill in agent \"heuristic:greedy?skill=1.5\": expected a number in "
            "[0,1], got \"1.5\""},
    {"agent_skill_negative", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:greedy?skill=-0.1\"]}}",
     ORIGIN ": lineups.a[0]: skill in agent"},
    {"agent_skill_not_number", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:greedy?skill=high\"]}}",
     ORIGIN ": lineups.a[0]: skill in agent \"heuristic:greedy?skill=high\": expected a number in "
            "[0,1], got \"high\""},
    {"agent_skill_empty", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:greedy?skill=\"]}}",
     ORIGIN ": lineups.a[0]: skill in agent"},
    {"agent_skill_twice", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:greedy?skill=1&skill=0\"]}}",
     ORIGIN ": lineups.a[0]: skill given twice"},
    {"agent_unknown_query_key", OK_BASE ",\"lineups\":{\"a\":[\"heuristic:greedy?level=2\"]}}",
     ORIGIN ": lineups.a[0]: unknown option \"level\" in agent \"heuristic:greedy?level=2\" "
            "(known: skill)"},
    {"agent_model_id_too_long",
     OK_BASE ",\"lineups\":{\"a\":["
             "\"m123456789012345678901234567890123456789012345678901234567890123456789\"]}}",
     ORIGIN ": lineups.a[0]: model id"},
    {"inline_fixed_lineup_bad_agent",
     "{" HEAD ",\"fixed\":{\"lineup\":[\"heuristic:greedy\",\"heuristic:x\"]}}",
     ORIGIN ": fixed.lineup[1]: unknown policy \"x\""},
    {"inline_grid_lineup_bad_agent",
     "{" HEAD ",\"grid\":{\"lineup\":[[\"heuristic:greedy\"],[\"heuristic:greedy?skill=2\"]]}}",
     ORIGIN ": grid.lineup[1][0]: skill in agent"},
    /* lineup size vs n_agents */
    {"lineup_longer_than_fixed_n_agents",
     "{" HEAD ",\"fixed\":{\"n_agents\":2,\"lineup\":[\"a\",\"b\",\"c\"]}}",
     ORIGIN
     ": fixed.lineup: lineup \"a,b,c\" has 3 agents, more than n_agents = 2 (fixed.n_agents)"},
    {"lineup_longer_than_default_n_agents",
     "{" HEAD ",\"fixed\":{\"lineup\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}}",
     ORIGIN ": fixed.lineup: lineup \"a,b,c,d,e\" has 5 agents, more than n_agents = 4 (the game's "
            "default)"},
    {"lineup_longer_than_some_grid_n_agents",
     "{" HEAD ",\"lineups\":{\"small\":[\"a\"],\"big\":[\"a\",\"b\",\"c\"]},"
     "\"grid\":{\"n_agents\":[4,2],\"lineup\":[\"small\",\"big\"]}}",
     ORIGIN
     ": grid.lineup[1]: lineup \"big\" has 3 agents, more than n_agents = 2 (grid.n_agents[1])"},
    /* llm */
    {"llm_not_object", OK_BASE ",\"llm\":true}", ORIGIN ": llm: expected an object, got true"},
    {"llm_unknown_key", OK_BASE ",\"llm\":{\"timeout\":5}}",
     ORIGIN ": llm.timeout: unknown key (expected one of: live_games, concurrency, timeout_s"},
    {"llm_temperature_out_of_range", OK_BASE ",\"llm\":{\"temperature\":3}}",
     ORIGIN ": llm.temperature: expected a number in [0,2], got 3"},
    {"llm_concurrency_zero", OK_BASE ",\"llm\":{\"concurrency\":0}}",
     ORIGIN ": llm.concurrency: expected an integer in [1,1000000], got 0"},
    {"llm_live_games_fractional", OK_BASE ",\"llm\":{\"live_games\":1.5}}",
     ORIGIN ": llm.live_games: expected an integer"},
    {"llm_timeout_zero", OK_BASE ",\"llm\":{\"timeout_s\":0}}",
     ORIGIN ": llm.timeout_s: expected a number in [0.001,86400], got 0"},
    {"llm_max_retries_negative", OK_BASE ",\"llm\":{\"max_retries\":-1}}",
     ORIGIN ": llm.max_retries: expected an integer in [0,100]"},
    {"llm_max_output_tokens_string", OK_BASE ",\"llm\":{\"max_output_tokens\":\"512\"}}",
     ORIGIN ": llm.max_output_tokens: expected an integer in [1,10000000], got \"512\""},
    {"llm_cache_not_string", OK_BASE ",\"llm\":{\"cache\":false}}",
     ORIGIN ": llm.cache: expected a string, got false"},
    /* llm.memory_turns: one value in llm, a list only in the grid */
    {"memory_negative", OK_BASE ",\"llm\":{\"memory_turns\":-1}}",
     ORIGIN ": llm.memory_turns: expected an integer in [0,1000], got -1"},
    {"memory_list_in_llm", OK_BASE ",\"llm\":{\"memory_turns\":[0,3]}}",
     ORIGIN ": llm.memory_turns: expected one integer in [0,1000]; to vary it, give the list as "
            "grid.\"llm.memory_turns\""},
    {"memory_grid_negative", OK_BASE ",\"grid\":{\"llm.memory_turns\":[0,-3]}}",
     ORIGIN ": grid.llm.memory_turns[1]: expected an integer in [0,1000], got -3"},
    {"memory_grid_fractional", OK_BASE ",\"grid\":{\"llm.memory_turns\":[2.5]}}",
     ORIGIN ": grid.llm.memory_turns[0]: expected an integer in [0,1000], got 2.5"},
    {"memory_grid_string", OK_BASE ",\"grid\":{\"llm.memory_turns\":[\"3\"]}}",
     ORIGIN ": grid.llm.memory_turns[0]: expected an integer in [0,1000], got \"3\""},
    {"memory_grid_too_large", OK_BASE ",\"grid\":{\"llm.memory_turns\":[1001]}}",
     ORIGIN ": grid.llm.memory_turns[0]: expected an integer in [0,1000], got 1001"},
    {"memory_grid_not_list", OK_BASE ",\"grid\":{\"llm.memory_turns\":3}}",
     ORIGIN ": grid.llm.memory_turns: expected a non-empty list of values, got 3"},
    {"memory_grid_empty", OK_BASE ",\"grid\":{\"llm.memory_turns\":[]}}",
     ORIGIN ": grid.llm.memory_turns: expected a non-empty list of values, got []"},
    {"memory_grid_duplicate", OK_BASE ",\"grid\":{\"llm.memory_turns\":[3,0,3]}}",
     ORIGIN ": grid.llm.memory_turns[2]: duplicate of grid.llm.memory_turns[0] (3)"},
    {"memory_grid_and_llm",
     OK_BASE ",\"grid\":{\"llm.memory_turns\":[0,3]},\"llm\":{\"memory_turns\":3}}",
     ORIGIN ": grid.llm.memory_turns: also given as llm.memory_turns: a setting is either fixed "
            "or in the grid"},
    {"memory_in_fixed", "{" HEAD ",\"fixed\":{\"lineup\":[\"a\"],\"llm.memory_turns\":3}}",
     ORIGIN ": fixed.llm.memory_turns: set one value as \"llm\": {\"memory_turns\": k}, or vary "
            "it with grid.\"llm.memory_turns\""},
    {"memory_grid_misspelt", OK_BASE ",\"grid\":{\"llm.memory\":[0,3]}}",
     ORIGIN ": grid.llm.memory: unknown parameter of game fake (known: "},
    /* budget */
    {"budget_not_object", OK_BASE ",\"budget\":5}", ORIGIN ": budget: expected an object, got 5"},
    {"budget_unknown_key", OK_BASE ",\"budget\":{\"max_dollars\":5}}",
     ORIGIN ": budget.max_dollars: unknown key (expected one of: max_tokens, max_cost_usd)"},
    {"budget_negative_cost", OK_BASE ",\"budget\":{\"max_cost_usd\":-1}}",
     ORIGIN ": budget.max_cost_usd: expected a number in [0,1000000000000], got -1"},
    {"budget_fractional_tokens", OK_BASE ",\"budget\":{\"max_tokens\":1.5}}",
     ORIGIN ": budget.max_tokens: expected an integer in [0,9007199254740992], got 1.5"},
};

static void spec_should_reject_every_bad_key_path(void **state)
{
    (void)state;
    size_t n = sizeof bad_cases / sizeof bad_cases[0];
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bad_case *c = &bad_cases[i];
        struct bz_spec *s = (struct bz_spec *)1;
        struct bz_err err;
        int rc = parse(c->json, &s, &err);
        int ok = rc == BZ_EINVAL && s == NULL && strstr(err.msg, c->expect) != NULL &&
                 strncmp(err.msg, ORIGIN ": ", strlen(ORIGIN ": ")) == 0;
        if (!ok) {
            print_error("case %s: rc %d\n  got:    %s\n  expect: %s\n", c->name, rc, err.msg,
                        c->expect);
            failures++;
        }
        bz_spec_destroy(s == (struct bz_spec *)1 ? NULL : s);
    }
    assert_int_equal(failures, 0);
}

/* ---- accepted specs ---- */

static const char *full_spec =
    "{\n"
    "  \"game\": \"fake\",\n"
    "  \"seed\": 42,\n"
    "  \"repetitions\": 3,\n"
    "  \"fixed\": {\"max_turns\": 12, \"n_agents\": 5},\n"
    "  \"grid\": {\"scarcity\": [0.8, 1.2], \"communication\": [true, false],\n"
    "           \"lineup\": [\"balanced\", [\"heuristic:greedy\", \"gpt-4o\"]]},\n"
    "  \"lineups\": {\"balanced\": [\"heuristic:truthful?skill=0.5\", \"heuristic:greedy\"],\n"
    "              \"unused\": [\"claude\"]},\n"
    "  \"models\": \"sweeps/models.json\",\n"
    "  \"prompts\": \"prompts/fake\",\n"
    "  \"llm\": {\"concurrency\": 8, \"temperature\": 0, \"cache\": \"\"},\n"
    "  \"budget\": {\"max_tokens\": 1000000, \"max_cost_usd\": 5.5}\n"
    "}\n";

static void spec_should_read_back_a_full_spec(void **state)
{
    (void)state;
    struct bz_spec *s = NULL;
    struct bz_err err;
    assert_int_equal(parse(full_spec, &s, &err), BZ_OK);
    assert_string_equal(bz_spec_name(s), "x");
    assert_string_equal(bz_spec_output(s), "results/x.h5");
    assert_string_equal(bz_spec_json(s), full_spec);
    assert_string_equal(bz_spec_origin(s), ORIGIN);
    assert_ptr_equal(bz_spec_game(s), &fake_ops);
    assert_int_equal(bz_spec_seed(s), 42);
    assert_int_equal(bz_spec_repetitions(s), 3);
    assert_true(bz_spec_has_llm(s));

    const struct bz_llm_settings *l = bz_spec_llm(s);
    assert_int_equal(l->concurrency, 8);
    assert_int_equal(l->live_games, 16);
    assert_int_equal(l->max_retries, 6);
    assert_int_equal(l->max_output_tokens, 512);
    assert_true(l->timeout_s == 60);
    assert_true(l->temperature == 0);
    assert_string_equal(l->cache_dir, "");
    assert_string_equal(l->models_path, "sweeps/models.json");
    assert_string_equal(l->prompts_dir, "prompts/fake");
    assert_int_equal(bz_spec_budget(s)->max_tokens, 1000000);
    assert_true(bz_spec_budget(s)->max_cost_usd == 5.5);

    /* lineups: the named ones first, then the inline one, named by its agents */
    assert_int_equal(s->n_lineup_axis, 2);
    const struct bz_spec_lineup *bal = &s->lineups[s->lineup_axis[0]];
    const struct bz_spec_lineup *inl = &s->lineups[s->lineup_axis[1]];
    assert_string_equal(bal->name, "balanced");
    assert_string_equal(inl->name, "heuristic:greedy,gpt-4o");
    assert_int_equal(bal->agents[0].kind, BZ_AGENT_HEURISTIC);
    assert_string_equal(bal->agents[0].policy, "truthful");
    assert_true(bal->agents[0].skill == 0.5 && bal->agents[0].capability == 0.5);
    assert_string_equal(bal->agents[0].label, "heuristic:truthful?skill=0.5");
    assert_true(bal->agents[1].skill == 1.0 && bal->agents[1].capability == 1.0);
    assert_int_equal(inl->agents[1].kind, BZ_AGENT_LLM);
    assert_string_equal(inl->agents[1].policy, "gpt-4o");
    assert_true(isnan(inl->agents[1].capability));

    /* parameters: fixed, grid and defaults */
    int k = fake_param("max_turns");
    assert_int_equal(s->params[k].mode, BZ_SPEC_FIXED);
    assert_true(s->params[k].num[0] == 12);
    k = fake_param("scarcity");
    assert_int_equal(s->params[k].mode, BZ_SPEC_GRID);
    assert_int_equal(s->params[k].n, 2);
    k = fake_param("label");
    assert_int_equal(s->params[k].mode, BZ_SPEC_DEFAULT);
    assert_string_equal(s->params[k].str[0], "plain");
    bz_spec_destroy(s);
}

static void spec_should_use_defaults_for_a_minimal_spec(void **state)
{
    (void)state;
    struct bz_spec *s = NULL;
    struct bz_err err;
    assert_int_equal(parse(OK_BASE ",\"name\":\"mini\"}", &s, &err), BZ_OK);
    assert_string_equal(bz_spec_name(s), "mini");
    assert_string_equal(bz_spec_output(s), "results/mini.h5");
    assert_int_equal(bz_spec_repetitions(s), 1);
    assert_false(bz_spec_has_llm(s));
    assert_string_equal(bz_spec_llm(s)->cache_dir, "results/cache");
    assert_string_equal(bz_spec_llm(s)->models_path, "");
    assert_int_equal(bz_spec_budget(s)->max_tokens, 0);
    assert_true(bz_spec_budget(s)->max_cost_usd == 0);
    bz_spec_destroy(s);

    /* a lineup may be referenced by name from fixed; output given */
    assert_int_equal(parse("{" HEAD ",\"lineups\":{\"solo\":[\"heuristic:greedy?skill=0\"]},"
                           "\"fixed\":{\"lineup\":\"solo\"},\"output\":\"out/o.h5\"}",
                           &s, &err),
                     BZ_OK);
    assert_string_equal(s->lineups[s->lineup_axis[0]].name, "solo");
    assert_true(s->lineups[0].agents[0].skill == 0);
    assert_string_equal(bz_spec_output(s), "out/o.h5");
    bz_spec_destroy(s);
}

static void spec_should_read_memory_turns_fixed_or_on_the_grid(void **state)
{
    (void)state;
    struct bz_spec *s = NULL;
    struct bz_err err;
    /* absent: one value, 0 */
    assert_int_equal(parse(OK_BASE "}", &s, &err), BZ_OK);
    assert_int_equal(s->memory.mode, BZ_SPEC_DEFAULT);
    assert_int_equal(bz_spec_memory_n(s), 1);
    assert_int_equal(bz_spec_memory_value(s, 0), 0);
    bz_spec_destroy(s);
    /* llm.memory_turns: one value, fixed */
    assert_int_equal(parse(OK_BASE ",\"llm\":{\"memory_turns\":4}}", &s, &err), BZ_OK);
    assert_int_equal(s->memory.mode, BZ_SPEC_FIXED);
    assert_int_equal(bz_spec_memory_n(s), 1);
    assert_int_equal(bz_spec_memory_value(s, 0), 4);
    assert_int_equal(bz_spec_llm(s)->memory_turns, 4);
    bz_spec_destroy(s);
    /* the grid: the values in the spec's order */
    assert_int_equal(parse(OK_BASE ",\"grid\":{\"llm.memory_turns\":[3,0,1000]}}", &s, &err),
                     BZ_OK);
    assert_int_equal(s->memory.mode, BZ_SPEC_GRID);
    assert_int_equal(bz_spec_memory_n(s), 3);
    assert_int_equal(bz_spec_memory_value(s, 0), 3);
    assert_int_equal(bz_spec_memory_value(s, 1), 0);
    assert_int_equal(bz_spec_memory_value(s, 2), 1000);
    bz_spec_destroy(s);
}

static void line_col_should_count_from_one(void **state)
{
    (void)state;
    int line, col;
    bz_spec_line_col("ab\ncd\n", 0, &line, &col);
    assert_int_equal(line, 1);
    assert_int_equal(col, 1);
    bz_spec_line_col("ab\ncd\n", 4, &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 2);
}

/* ---- files ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void tmp_path(char *buf, size_t n, const char *name)
{
    mkdir(BZ_TEST_TMP, 0777);
    snprintf(buf, n, "%s/%s", BZ_TEST_TMP, name);
}

static void load_should_name_the_file_in_every_error(void **state)
{
    (void)state;
    struct bz_spec *s = NULL;
    struct bz_err err;
    char path[1024];

    tmp_path(path, sizeof path, "no_such_spec.json");
    remove(path);
    assert_int_equal(bz_spec_load_games(path, fake_games, 1, &s, &err), BZ_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "cannot open spec: No such file or directory"));

    tmp_path(path, sizeof path, "bad_json.json");
    write_file(path, "{\n  \"game\": \"fake\",\n  \"seed\": 1\n  \"repetitions\": 2\n}\n");
    assert_int_equal(bz_spec_load_games(path, fake_games, 1, &s, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "invalid JSON at line 4, column 3"));

    tmp_path(path, sizeof path, "bad_key.json");
    write_file(path, "{\"game\":\"fake\",\"seed\":1,\"grid\":{\"volatility\":[0,\"high\"]},"
                     "\"fixed\":{\"lineup\":[\"heuristic:greedy\"]}}");
    assert_int_equal(bz_spec_load_games(path, fake_games, 1, &s, &err), BZ_EINVAL);
    char expect[1200];
    snprintf(expect, sizeof expect,
             "%s: grid.volatility[1]: expected a number in [0,1], got \"high\"", path);
    assert_string_equal(err.msg, expect);

    /* larger than the cap: an input error (exit 2), refused before reading */
    tmp_path(path, sizeof path, "huge.json");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    static char chunk[1 << 16];
    memset(chunk, ' ', sizeof chunk);
    for (size_t w = 0; w <= BZ_SPEC_MAX_BYTES; w += sizeof chunk)
        fwrite(chunk, 1, sizeof chunk, f);
    fclose(f);
    assert_int_equal(bz_spec_load_games(path, fake_games, 1, &s, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "16 MiB limit"));
    remove(path);

    /* a NUL byte inside */
    tmp_path(path, sizeof path, "nul.json");
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("{\n \0}", 1, 5, f);
    fclose(f);
    assert_int_equal(bz_spec_load_games(path, fake_games, 1, &s, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "line 2, column 2 (a NUL byte)"));
}

static void load_should_take_the_name_from_the_file_stem(void **state)
{
    (void)state;
    struct bz_spec *s = NULL;
    struct bz_err err;
    char path[1024];
    tmp_path(path, sizeof path, "my_sweep.json");
    write_file(path,
               "{\"game\":\"fake\",\"seed\":7,\"fixed\":{\"lineup\":[\"heuristic:greedy\"]}}");
    assert_int_equal(bz_spec_load_games(path, fake_games, 1, &s, &err), BZ_OK);
    assert_string_equal(bz_spec_name(s), "my_sweep");
    assert_string_equal(bz_spec_output(s), "results/my_sweep.h5");
    assert_string_equal(bz_spec_origin(s), path);
    bz_spec_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_should_reject_every_bad_key_path),
        cmocka_unit_test(spec_should_read_back_a_full_spec),
        cmocka_unit_test(spec_should_use_defaults_for_a_minimal_spec),
        cmocka_unit_test(spec_should_read_memory_turns_fixed_or_on_the_grid),
        cmocka_unit_test(line_col_should_count_from_one),
        cmocka_unit_test(load_should_name_the_file_in_every_error),
        cmocka_unit_test(load_should_take_the_name_from_the_file_stem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
