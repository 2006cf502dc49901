/* test_prompt: template parsing, rendering, checking against observations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "bazaar/prompt.h"

static const char *OBS =
    "{\"public\":{\"turn_price\":52.5,\"messages\":[{\"from\":1,\"text\":\"hi\"},"
    "{\"from\":2,\"text\":\"yo\"}],\"empty\":[],\"none\":null},"
    "\"private\":{\"storage_level\":12,\"cash\":1000.25,\"flag\":true,\"caps\":[1,2]},"
    "\"meta\":{\"turn\":3,\"phase\":\"publish\"}}";

struct render_case {
    const char *tmpl;
    const char *want;
};

static const struct render_case render_cases[] = {
    {"plain text", "plain text"},
    {"level {{private.storage_level}} MWh", "level 12 MWh"},
    {"cash {{ private.cash }}", "cash 1000.25"},
    {"{{public.turn_price}}/{{meta.phase}}/{{private.flag}}", "52.5/publish/true"},
    {"{{private.caps}}", "[1,2]"},
    {"{{private.caps.1}}", "2"},
    {"{{#public.messages}}[{{from}}:{{text}}]{{/public.messages}}", "[1:hi][2:yo]"},
    {"{{#public.empty}}x{{/public.empty}}{{^public.empty}}none{{/public.empty}}", "none"},
    {"{{#private.caps}}<{{.}}>{{/private.caps}}", "<1><2>"},
    {"{{#public.messages}}{{meta.turn}}{{/public.messages}}", "33"},
    {"{{#public.missing}}x{{/public.missing}}ok", "ok"},
    {"a\n{{#private.flag}}\nyes\n{{/private.flag}}\nb", "a\nyes\nb"},
    {"{{public.none}}", "null"},
};

static void render_should_fill_names_and_sections(void **state)
{
    (void)state;
    cJSON *obs = cJSON_Parse(OBS);
    assert_non_null(obs);
    for (size_t i = 0; i < sizeof render_cases / sizeof render_cases[0]; i++) {
        struct bz_template *t = NULL;
        struct bz_err err = {0};
        int rc = bz_template_parse(render_cases[i].tmpl, "case", &t, &err);
        if (rc)
            fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(bz_template_check(t, obs, &err), BZ_OK);
        char *s = NULL;
        assert_int_equal(bz_template_render(t, obs, &s, &err), BZ_OK);
        if (strcmp(s, render_cases[i].want) != 0)
            fail_msg("case %zu: got '%s' want '%s'", i, s, render_cases[i].want);
        free(s);
        bz_template_destroy(t);
    }
    cJSON_Delete(obs);
}

struct bad_case {
    const char *tmpl;
    const char *needle; /* part of the error message */
    int at_parse;       /* 1: parse fails, 0: check fails */
};

static const struct bad_case bad_cases[] = {
    {"{{private.unknown}}", "x.txt:1: unknown placeholder '{{private.unknown}}'", 0},
    {"line\n\n{{nope}}", "x.txt:3:", 0},
    {"{{#public.messages}}{{sender}}{{/public.messages}}", "'{{sender}}'", 0},
    {"{{private.cash", "without a closing", 1},
    {"{{#a}}x", "never closed", 1},
    {"{{#a}}x{{/b}}", "closes section 'a'", 1},
    {"{{/a}}", "no open section", 1},
    {"{{bad name}}", "bad placeholder", 1},
    {"{{}}", "bad placeholder", 1},
};

static void bad_templates_should_name_file_line_and_name(void **state)
{
    (void)state;
    cJSON *obs = cJSON_Parse(OBS);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct bz_template *t = NULL;
        struct bz_err err = {0};
        int rc = bz_template_parse(bad_cases[i].tmpl, "x.txt", &t, &err);
        if (!bad_cases[i].at_parse) {
            assert_int_equal(rc, BZ_OK);
            rc = bz_template_check(t, obs, &err);
            assert_int_equal(rc, BZ_EINVAL);
            char *s = NULL;
            assert_int_equal(bz_template_render(t, obs, &s, &err), BZ_EINVAL);
            assert_null(s);
        }
        assert_int_equal(rc, BZ_EINVAL);
        if (!strstr(err.msg, bad_cases[i].needle))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, bad_cases[i].needle);
        bz_template_destroy(t);
    }
    cJSON_Delete(obs);
}

static void render_should_cap_output(void **state)
{
    (void)state;
    cJSON *obs = cJSON_CreateObject();
    char *big = malloc(BZ_PROMPT_MAX / 2 + 10);
    memset(big, 'x', BZ_PROMPT_MAX / 2 + 9);
    big[BZ_PROMPT_MAX / 2 + 9] = '\0';
    cJSON_AddStringToObject(obs, "big", big);
    free(big);
    struct bz_template *t = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_template_parse("{{big}}{{big}}", "cap", &t, &err), BZ_OK);
    char *s = NULL;
    assert_int_equal(bz_template_render(t, obs, &s, &err), BZ_ENOMEM);
    assert_non_null(strstr(err.msg, "longer than"));
    bz_template_destroy(t);
    cJSON_Delete(obs);
}

static void load_should_name_missing_file(void **state)
{
    (void)state;
    struct bz_template *t = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_template_load("/nonexistent/dir/propose.txt", &t, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/propose.txt"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(render_should_fill_names_and_sections),
        cmocka_unit_test(bad_templates_should_name_file_line_and_name),
        cmocka_unit_test(render_should_cap_output),
        cmocka_unit_test(load_should_name_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
