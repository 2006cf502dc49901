/* test_cli: `bazaar play` knows games only through their ops tables: the
 * length option maps to the game's own parameter (--turns or --rounds), the
 * other one is refused naming the game; the one-game spec play builds is
 * checked by the spec's own rules and messages; a parameter set twice is
 * refused. Two fake games, never registered, stand in for real ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bazaar/spec.h"
#include "cli_internal.h"
#include "spec_internal.h"

/* a game counted in rounds */
static const struct bz_param_desc round_params[] = {
    {"n_agents", BZ_PARAM_INT, 2, 2, 8, NULL, 1, "players"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "free text"},
    {"max_rounds", BZ_PARAM_INT, 10, 1, 100, NULL, 1, "rounds played"},
    {"rho", BZ_PARAM_NUM, 0.5, 0, 1, NULL, 1, "a knob only this game has"},
};
static const struct bz_policy_ops hawk = {.name = "hawk", .help = "always demands"};
static const struct bz_policy_ops dove = {.name = "dove", .help = "always yields"};
static const struct bz_policy_ops *const round_policies[] = {&hawk, &dove};
static const struct bz_game_ops rounds_game = {
    .name = "roundgame",
    .params = round_params,
    .n_params = sizeof round_params / sizeof round_params[0],
    .policies = round_policies,
    .n_policies = 2,
};

/* a game counted in turns */
static const struct bz_param_desc turn_params[] = {
    {"n_agents", BZ_PARAM_INT, 2, 2, 8, NULL, 1, "players"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0, "free text"},
    {"max_turns", BZ_PARAM_INT, 5, 1, 50, NULL, 1, "turns played"},
};
static const struct bz_game_ops turns_game = {
    .name = "turngame",
    .params = turn_params,
    .n_params = sizeof turn_params / sizeof turn_params[0],
    .policies = round_policies,
    .n_policies = 2,
};

static const struct bz_game_ops *const games[] = {&rounds_game, &turns_game};

/* The spec play builds, parsed against the fake games; BZ_OK or the spec's
 * error, message in err. */
static int play_spec(const struct bz_game_ops *ops, const struct bz_play_args *a,
                     struct bz_spec **spec, char **json, struct bz_err *err)
{
    *spec = NULL;
    int rc = bz_cli_play_spec(ops, a, json, err);
    if (!rc)
        rc = bz_spec_parse_games(*json, "command line", games, 2, spec, err);
    return rc;
}

static double fixed_num(const struct bz_spec *s, const struct bz_game_ops *ops, const char *name)
{
    int i = bz_game_param_index(ops, name);
    assert_true(i >= 0);
    assert_int_equal(s->params[i].mode, BZ_SPEC_FIXED);
    return s->params[i].num[0];
}

static void length_option_should_map_to_the_games_own_parameter(void **state)
{
    (void)state;
    struct bz_err err = {0};
    assert_string_equal(bz_cli_length_param(&rounds_game, "--rounds", &err), "max_rounds");
    assert_string_equal(bz_cli_length_param(&turns_game, "--turns", &err), "max_turns");

    assert_null(bz_cli_length_param(&rounds_game, "--turns", &err));
    assert_int_equal(err.code, BZ_EINVAL);
    assert_non_null(strstr(err.msg, "roundgame"));
    assert_non_null(strstr(err.msg, "max_turns"));
    assert_non_null(strstr(err.msg, "--rounds")); /* what to use instead */

    assert_null(bz_cli_length_param(&turns_game, "--rounds", &err));
    assert_non_null(strstr(err.msg, "turngame"));
    assert_non_null(strstr(err.msg, "--turns"));
}

static void play_should_describe_a_game_of_any_parameters(void **state)
{
    (void)state;
    struct bz_err err = {0};
    struct bz_spec *s = NULL;
    char *json = NULL;
    struct bz_play_args a = {.agents = "hawk,dove?skill=0.3,hawk", .seed = "9"};
    a.sets[a.n_sets++] = (struct bz_play_setting){"max_rounds", "7", "--rounds"};
    a.sets[a.n_sets++] = (struct bz_play_setting){"rho", "0.25", "--set"};
    int rc = play_spec(&rounds_game, &a, &s, &json, &err);
    if (rc)
        print_error("%s\n%s\n", err.msg, json ? json : "");
    assert_int_equal(rc, BZ_OK);
    assert_ptr_equal(bz_spec_game(s), &rounds_game);
    assert_int_equal(bz_spec_seed(s), 9);
    assert_true(fixed_num(s, &rounds_game, "max_rounds") == 7);
    assert_true(fixed_num(s, &rounds_game, "rho") == 0.25);
    assert_true(fixed_num(s, &rounds_game, "n_agents") == 3); /* one per agent named */
    assert_non_null(strstr(json, "\"heuristic:dove?skill=0.3\""));
    bz_spec_destroy(s);
    free(json);

    /* n_agents set: the lineup repeats to fill it */
    a.sets[a.n_sets++] = (struct bz_play_setting){"n_agents", "6", "--set"};
    assert_int_equal(play_spec(&rounds_game, &a, &s, &json, &err), BZ_OK);
    assert_true(fixed_num(s, &rounds_game, "n_agents") == 6);
    bz_spec_destroy(s);
    free(json);
}

static void play_should_refuse_with_the_messages_of_a_spec(void **state)
{
    (void)state;
    struct bz_err err = {0};
    struct bz_spec *s = NULL;
    char *json = NULL;
    static const struct {
        const char *key, *value, *option;
        const char *expect; /* in the message */
    } cases[] = {
        {"rho", "high", "--set", "fixed.rho: expected a number in [0,1], got \"high\""},
        {"rho", "2", "--set", "fixed.rho"},
        {"max_rounds", "0", "--rounds", "fixed.max_rounds"},
        {"no_such", "1", "--set", "no_such"},
        {"max_turns", "3", "--set", "max_turns"}, /* the other game's parameter */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bz_play_args a = {.agents = "hawk,dove"};
        a.sets[a.n_sets++] =
            (struct bz_play_setting){cases[i].key, cases[i].value, cases[i].option};
        int rc = play_spec(&rounds_game, &a, &s, &json, &err);
        if (!strstr(err.msg, cases[i].expect))
            print_error("case %zu: %s\n", i, err.msg);
        assert_int_equal(rc, BZ_EINVAL);
        assert_non_null(strstr(err.msg, cases[i].expect));
        assert_null(s);
        free(json);
        json = NULL;
    }
    /* a name that is no policy of this game is a model id (the models
     * registry refuses an unknown one when the game is set up) */
    struct bz_play_args a = {.agents = "hawk,falcon"};
    assert_int_equal(bz_cli_play_spec(&rounds_game, &a, &json, &err), BZ_OK);
    assert_non_null(strstr(json, "[\"heuristic:hawk\",\"falcon\"]"));
    free(json);
}

static void play_should_refuse_a_parameter_given_twice_and_bad_arguments(void **state)
{
    (void)state;
    struct bz_err err = {0};
    char *json = NULL;
    struct bz_play_args a = {.agents = "hawk,dove"};
    a.sets[a.n_sets++] = (struct bz_play_setting){"max_turns", "4", "--turns"};
    a.sets[a.n_sets++] = (struct bz_play_setting){"max_turns", "5", "--set"};
    assert_int_equal(bz_cli_play_spec(&turns_game, &a, &json, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "max_turns is given twice (--turns and --set)"));
    assert_null(json);

    struct bz_play_args none = {.agents = NULL};
    assert_int_equal(bz_cli_play_spec(&turns_game, &none, &json, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "--agents"));

    struct bz_play_args bad_seed = {.agents = "hawk", .seed = "-3"};
    assert_int_equal(bz_cli_play_spec(&turns_game, &bad_seed, &json, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "--seed"));
}

static void play_should_quote_what_it_does_not_understand(void **state)
{
    (void)state;
    struct bz_err err = {0};
    struct bz_spec *s = NULL;
    char *json = NULL;
    /* a value with quotes and backslashes stays one JSON string */
    struct bz_play_args a = {.agents = "hawk,dove"};
    a.sets[a.n_sets++] = (struct bz_play_setting){"rho", "0.5\",\"x\":\"\\", "--set"};
    assert_int_equal(play_spec(&rounds_game, &a, &s, &json, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "fixed.rho"));
    assert_null(s);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(length_option_should_map_to_the_games_own_parameter),
        cmocka_unit_test(play_should_describe_a_game_of_any_parameters),
        cmocka_unit_test(play_should_refuse_with_the_messages_of_a_spec),
        cmocka_unit_test(play_should_refuse_a_parameter_given_twice_and_bad_arguments),
        cmocka_unit_test(play_should_quote_what_it_does_not_understand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
