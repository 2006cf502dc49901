/* test_eia: the EIA API v2 loader on small hand-made files and, when present,
 * on the real files in ../shared/data/eia (never copied into the repo). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h> /* after the headers it needs */

#include "bazaar/eia.h"

static char *write_tmp(const char *name, const char *text)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    mkdir(BZ_TEST_TMP, 0755);
    snprintf(p, 512, "%s/%s", BZ_TEST_TMP, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void eia_should_read_hourly_api_replies(void **state)
{
    (void)state;
    const char *json =
        "{\"response\":{\"total\":7,\"data\":["
        "{\"period\":\"2025-01-21T06\",\"respondent\":\"CISO\",\"type\":\"D\",\"value\":\"110\"},"
        "{\"period\":\"2025-01-21T05\",\"respondent\":\"CISO\",\"type\":\"D\",\"value\":\"100\"},"
        "{\"period\":\"2025-01-21T05\",\"respondent\":\"CISO\",\"type\":\"NG\",\"value\":\"90\"},"
        "{\"period\":\"2025-01-21T05\",\"respondent\":\"CISO\",\"type\":\"DF\",\"value\":\"99\"},"
        "{\"period\":\"2025-01-21T07\",\"respondent\":\"CISO\",\"type\":\"D\",\"value\":\"\"},"
        "{\"period\":\"2025-01-21T07\",\"respondent\":\"CISO\",\"type\":\"NG\",\"value\":95},"
        "{\"period\":\"2025-01-21T05\",\"respondent\":\"PJM\",\"type\":\"D\",\"value\":\"5\"}"
        "]}}";
    struct bz_eia_series s;
    struct bz_err err = {0};
    assert_int_equal(bz_eia_load(write_tmp("hourly.json", json), "CISO", &s, &err), BZ_OK);
    assert_int_equal(s.n, 3);
    assert_true(s.hourly);
    assert_string_equal(s.period[0], "2025-01-21T05");
    assert_string_equal(s.period[2], "2025-01-21T07");
    assert_float_equal(s.demand_mwh[0], 100, 0);
    assert_float_equal(s.demand_mwh[1], 110, 0);
    assert_float_equal(s.demand_mwh[2], 110, 0); /* missing: carried forward */
    assert_float_equal(s.net_generation_mwh[0], 90, 0);
    assert_true(isnan(s.net_generation_mwh[1]));
    assert_float_equal(s.net_generation_mwh[2], 95, 0);
    assert_int_equal(s.n_net_generation, 2);
    bz_eia_series_cleanup(&s);
    bz_eia_series_cleanup(&s); /* twice is harmless */
}

struct bad_file {
    const char *name, *json, *respondent, *expect;
};

static void eia_should_name_the_file_and_the_problem(void **state)
{
    (void)state;
    static const struct bad_file cases[] = {
        {"bad1.json", "{\"response\":", "PJM", "not valid JSON"},
        {"bad2.json", "{\"data\":[]}", "PJM", "expected a JSON array"},
        {"bad3.json", "[{\"period\":\"2025-01-01\",\"type\":\"D\",\"value\":\"1\"}]", "PJM",
         "respondent"},
        {"bad4.json",
         "[{\"period\":\"2025-01-01\",\"respondent\":\"MISO\",\"type\":\"D\",\"value\":\"1\"}]",
         "PJM", "MISO"},
        {"bad5.json",
         "[{\"period\":\"2025-01-01\",\"respondent\":\"PJM\",\"type\":\"NG\",\"value\":\"1\"}]",
         "PJM", "no demand"},
        {"bad6.json",
         "[{\"period\":\"2025-01-01\",\"respondent\":\"PJM\",\"type\":\"D\",\"value\":\"\"}]",
         "PJM", "no demand or net generation rows"},
        {"bad7.json", "[]", "", "no respondent"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct bz_eia_series s;
        struct bz_err err = {0};
        const char *p = write_tmp(cases[c].name, cases[c].json);
        assert_int_equal(bz_eia_load(p, cases[c].respondent, &s, &err), BZ_EINVAL);
        print_message("%s\n", err.msg);
        assert_non_null(strstr(err.msg, cases[c].expect));
        assert_non_null(strstr(err.msg, cases[c].name));
        assert_null(s.demand_mwh);
    }
    struct bz_eia_series s;
    struct bz_err err = {0};
    assert_int_equal(bz_eia_load(BZ_TEST_TMP "/does_not_exist.json", "PJM", &s, &err),
                     BZ_EINVAL); /* a missing data file is bad input: exit 2 before any game */
    assert_non_null(strstr(err.msg, "does_not_exist.json"));
}

static void eia_should_read_the_real_daily_files(void **state)
{
    (void)state;
    const char *path = BZ_SOURCE_DIR "/../shared/data/eia/region-daily-2025-01-21_24.json";
    FILE *f = fopen(path, "r");
    if (!f) {
        print_message("skipped: %s not present\n", path);
        skip();
    }
    fclose(f);
    struct bz_eia_series s;
    struct bz_err err = {0};
    assert_int_equal(bz_eia_load(path, "PJM", &s, &err), BZ_OK);
    assert_int_equal(s.n, 4); /* one row per day: the first time zone only */
    assert_false(s.hourly);
    assert_string_equal(s.period[0], "2025-01-21");
    assert_string_equal(s.period[3], "2025-01-24");
    assert_string_equal(s.timezone, "Arizona");
    assert_float_equal(s.demand_mwh[3], 2840924, 0);
    for (size_t i = 0; i < s.n; i++)
        assert_true(s.demand_mwh[i] > 1e6 && isfinite(s.net_generation_mwh[i]));
    bz_eia_series_cleanup(&s);
    assert_int_equal(bz_eia_load(path, "XXXX", &s, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "respondents present include"));
    const char *path2 = BZ_SOURCE_DIR "/../shared/data/eia/region-daily-2025-01-25_31.json";
    assert_int_equal(bz_eia_load(path2, "CISO", &s, &err), BZ_OK);
    assert_int_equal(s.n, 7);
    bz_eia_series_cleanup(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eia_should_read_hourly_api_replies),
        cmocka_unit_test(eia_should_name_the_file_and_the_problem),
        cmocka_unit_test(eia_should_read_the_real_daily_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
