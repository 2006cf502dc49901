/* test_llm_units: the registry's validation, provider request/reply formats,
 * the schema check and the response cache, each on its own (no network). */
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

#include "llm/llm_internal.h"

#define GOOD_MODEL                                                                                 \
    "{\"id\":\"m1\",\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:1/v1/\","              \
    "\"model\":\"gpt-x\",\"api_key_env\":\"BZ_TEST_KEY\",\"capability\":1200,"                     \
    "\"price_in_per_mtok\":1.5,\"price_out_per_mtok\":6,"                                          \
    "\"limits\":{\"rpm\":600,\"tpm\":100000,\"max_concurrency\":4},"                               \
    "\"sampling\":{\"temperature\":0.2,\"top_p\":0.9,\"max_output_tokens\":300}}"

static void registry_should_load_a_good_model(void **state)
{
    (void)state;
    struct bz_registry *r = NULL;
    struct bz_err err = {0};
    int rc = bz_registry_parse("{\"models\":[" GOOD_MODEL "]}", "models.json", &r, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(r->n, 1);
    const struct bz_model *m = &r->models[0];
    assert_string_equal(m->id, "m1");
    assert_string_equal(m->base_url, "http://127.0.0.1:1/v1"); /* trailing / dropped */
    assert_int_equal(m->provider, BZ_PROVIDER_OPENAI);
    assert_true(m->capability == 1200);
    assert_int_equal(m->max_concurrency, 4);
    assert_true(m->rpm == 600 && m->tpm == 100000);
    assert_true(m->temperature == 0.2);
    assert_int_equal(m->max_output_tokens, 300);
    assert_non_null(cJSON_GetObjectItem(m->sampling, "top_p"));
    assert_null(cJSON_GetObjectItem(m->sampling, "temperature"));
    assert_int_equal(bz_registry_find(r, "m1"), 0);
    assert_int_equal(bz_registry_find(r, "nope"), -1);
    bz_registry_destroy(r);
}

struct bad_registry {
    const char *text;
    const char *needle;
};

static const struct bad_registry bad_registries[] = {
    {"{\"models\":[{\"id\":\"a\"}]}", "models[0]: missing key \"provider\""},
    {"{\"models\":[" GOOD_MODEL "," GOOD_MODEL "]}", "models[1].id: \"m1\" already used"},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"azure\",\"base_url\":\"http://x\","
     "\"model\":\"m\",\"api_key_env\":\"K\",\"capability\":1,\"price_in_per_mtok\":0,"
     "\"price_out_per_mtok\":0}]}",
     "models[0].provider: expected \"openai\""},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"openai\",\"base_url\":\"ftp://x\","
     "\"model\":\"m\",\"api_key_env\":\"K\",\"capability\":1,\"price_in_per_mtok\":0,"
     "\"price_out_per_mtok\":0}]}",
     "models[0].base_url: expected an http"},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"openai\",\"base_url\":\"http://x\","
     "\"model\":\"m\",\"api_key_env\":\"sk-abc123-def\",\"capability\":1,"
     "\"price_in_per_mtok\":0,\"price_out_per_mtok\":0}]}",
     "models[0].api_key_env: expected the NAME"},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"openai\",\"base_url\":\"http://x\","
     "\"model\":\"m\",\"api_key_env\":\"K\",\"capability\":\"high\","
     "\"price_in_per_mtok\":0,\"price_out_per_mtok\":0}]}",
     "models[0].capability: expected a number"},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"openai\",\"base_url\":\"http://x\","
     "\"model\":\"m\",\"api_key_env\":\"K\",\"capability\":1,\"price_in_per_mtok\":-1,"
     "\"price_out_per_mtok\":0}]}",
     "models[0].price_in_per_mtok: expected a number in [0"},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"openai\",\"base_url\":\"http://x\","
     "\"model\":\"m\",\"api_key_env\":\"K\",\"capability\":1,\"price_in_per_mtok\":0,"
     "\"price_out_per_mtok\":0,\"limits\":{\"rps\":3}}]}",
     "models[0].limits: unknown key \"rps\""},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"openai\",\"base_url\":\"http://x\","
     "\"model\":\"m\",\"api_key_env\":\"K\",\"capability\":1,\"price_in_per_mtok\":0,"
     "\"price_out_per_mtok\":0,\"sampling\":{\"max_tokens\":3}}]}",
     "models[0].sampling.max_tokens: set by bazaar"},
    {"{\"models\":[{\"id\":\"a\",\"provider\":\"openai\",\"base_url\":\"http://x\","
     "\"model\":\"m\",\"api_key_env\":\"K\",\"capability\":1,\"price_in_per_mtok\":0,"
     "\"price_out_per_mtok\":0,\"colour\":1}]}",
     "models[0]: unknown key \"colour\""},
    {"{\"models\":[]}", "lists no model"},
    {"{\"models\": [\n,]}", "line 2: not valid JSON"},
};

static void registry_errors_should_name_file_and_key_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_registries / sizeof bad_registries[0]; i++) {
        struct bz_registry *r = NULL;
        struct bz_err err = {0};
        assert_int_equal(bz_registry_parse(bad_registries[i].text, "reg.json", &r, &err),
                         BZ_EINVAL);
        assert_null(r);
        if (!strstr(err.msg, bad_registries[i].needle) || strncmp(err.msg, "reg.json", 8) != 0)
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad_registries[i].needle);
    }
}

static void shipped_registry_should_be_valid(void **state)
{
    (void)state;
    struct bz_registry *r = NULL;
    struct bz_err err = {0};
    int rc = bz_registry_load(BZ_SOURCE_DIR "/sweeps/models.json", &r, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_true(r->n >= 2);
    bz_registry_destroy(r);
}

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"amount_mwh\":{\"type\":\"number\",\"minimum\":0},"
    "\"side\":{\"type\":\"string\",\"enum\":[\"buy\",\"sell\"]},"
    "\"to\":{\"type\":\"integer\"}},\"required\":[\"amount_mwh\",\"side\"],"
    "\"additionalProperties\":false}";

static void openai_request_should_carry_json_schema(void **state)
{
    (void)state;
    struct bz_registry *r = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_registry_parse("[" GOOD_MODEL "]", "r", &r, &err), BZ_OK);
    struct bz_chat_msg msgs[] = {{"system", "sys", 0}, {"user", "hello", 0}};
    char *body = NULL;
    assert_int_equal(bz_provider_build(&r->models[0], msgs, 2, SCHEMA, "propose_action", 0.7, 512,
                                       -1, &body, &err),
                     BZ_OK);
    cJSON *b = cJSON_Parse(body);
    assert_string_equal(cJSON_GetObjectItem(b, "model")->valuestring, "gpt-x");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "messages")), 2);
    assert_true(cJSON_GetObjectItem(b, "temperature")->valuedouble == 0.2); /* model wins */
    assert_true(cJSON_GetObjectItem(b, "top_p")->valuedouble == 0.9);
    assert_int_equal(cJSON_GetObjectItem(b, "max_tokens")->valueint, 300);
    cJSON *rf = cJSON_GetObjectItem(b, "response_format");
    assert_string_equal(cJSON_GetObjectItem(rf, "type")->valuestring, "json_schema");
    cJSON *js = cJSON_GetObjectItem(rf, "json_schema");
    assert_string_equal(cJSON_GetObjectItem(js, "name")->valuestring, "propose_action");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(js, "schema"), "properties"));
    assert_true(cJSON_IsBool(cJSON_GetObjectItem(js, "strict")));
    cJSON_Delete(b);
    free(body);
    bz_registry_destroy(r);
}

static void anthropic_request_should_force_a_tool(void **state)
{
    (void)state;
    struct bz_model m;
    memset(&m, 0, sizeof m);
    m.provider = BZ_PROVIDER_ANTHROPIC;
    m.temperature = 0.0 / 0.0;
    snprintf(m.model, sizeof m.model, "claude-x");
    struct bz_chat_msg msgs[] = {{"system", "be good", 0}, {"user", "hello", 0}};
    char *body = NULL;
    struct bz_err err = {0};
    assert_int_equal(
        bz_provider_build(&m, msgs, 2, SCHEMA, "auction_action", 0.5, 256, -1, &body, &err), BZ_OK);
    cJSON *b = cJSON_Parse(body);
    assert_string_equal(cJSON_GetObjectItem(b, "system")->valuestring, "be good");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "messages")), 1);
    assert_true(cJSON_GetObjectItem(b, "temperature")->valuedouble == 0.5);
    assert_int_equal(cJSON_GetObjectItem(b, "max_tokens")->valueint, 256);
    cJSON *tool = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "tools"), 0);
    assert_string_equal(cJSON_GetObjectItem(tool, "name")->valuestring, "auction_action");
    assert_non_null(cJSON_GetObjectItem(tool, "input_schema"));
    cJSON *tc = cJSON_GetObjectItem(b, "tool_choice");
    assert_string_equal(cJSON_GetObjectItem(tc, "type")->valuestring, "tool");
    cJSON_Delete(b);
    free(body);
}

static void prompt_cache_marks_and_seed_should_reach_the_request(void **state)
{
    (void)state;
    struct bz_model m;
    memset(&m, 0, sizeof m);
    m.provider = BZ_PROVIDER_ANTHROPIC;
    m.temperature = 0.0 / 0.0;
    snprintf(m.model, sizeof m.model, "claude-x");
    struct bz_chat_msg msgs[] = {{"system", "be good", 1},
                                 {"user", "turn 0", 0},
                                 {"assistant", "{}", 1},
                                 {"user", "turn 1", 0}};
    char *body = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_provider_build(&m, msgs, 4, SCHEMA, "a", 0.5, 256, 7, &body, &err), BZ_OK);
    cJSON *b = cJSON_Parse(body);
    cJSON *sys = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "system"), 0);
    assert_string_equal(cJSON_GetObjectItem(sys, "text")->valuestring, "be good");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(sys, "cache_control"), "type")->valuestring,
        "ephemeral");
    cJSON *msgs_j = cJSON_GetObjectItem(b, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs_j), 3);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs_j, 0), "content")));
    cJSON *hist =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs_j, 1), "content"), 0);
    assert_non_null(cJSON_GetObjectItem(hist, "cache_control"));
    assert_null(cJSON_GetObjectItem(b, "seed")); /* Anthropic takes no seed */
    cJSON_Delete(b);
    free(body);

    m.provider = BZ_PROVIDER_OPENAI; /* OpenAI caches by itself: plain strings */
    m.send_seed = 1;
    assert_int_equal(bz_provider_build(&m, msgs, 4, SCHEMA, "a", 0.5, 256, 7, &body, &err), BZ_OK);
    b = cJSON_Parse(body);
    assert_int_equal(cJSON_GetObjectItem(b, "seed")->valueint, 7);
    assert_true(cJSON_IsString(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "messages"), 0), "content")));
    cJSON_Delete(b);
    free(body);
    m.send_seed = 0;
    assert_int_equal(bz_provider_build(&m, msgs, 4, SCHEMA, "a", 0.5, 256, 7, &body, &err), BZ_OK);
    assert_null(strstr(body, "\"seed\""));
    free(body);

    /* cached input tokens: OpenAI's details, Anthropic's cache reads (which
     * it counts apart from input_tokens) */
    struct bz_provider_reply rp;
    const char *ob = "{\"model\":\"gpt-x-2025\",\"choices\":[{\"message\":{\"content\":\"{}\"}}],"
                     "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":3,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":64}}}";
    assert_int_equal(bz_provider_parse(&m, ob, strlen(ob), &rp, &err), BZ_OK);
    assert_int_equal(rp.input_tokens, 100);
    assert_int_equal(rp.cached_input_tokens, 64);
    assert_string_equal(rp.model_version, "gpt-x-2025");
    free(rp.content);
    m.provider = BZ_PROVIDER_ANTHROPIC;
    const char *ab = "{\"model\":\"claude-x-1\",\"content\":[{\"type\":\"text\",\"text\":\"{}\"}],"
                     "\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":90,"
                     "\"cache_creation_input_tokens\":0,\"output_tokens\":3}}";
    assert_int_equal(bz_provider_parse(&m, ab, strlen(ab), &rp, &err), BZ_OK);
    assert_int_equal(rp.input_tokens, 100);
    assert_int_equal(rp.cached_input_tokens, 90);
    assert_string_equal(rp.model_version, "claude-x-1");
    free(rp.content);
}

struct reply_case {
    enum bz_provider provider;
    const char *body;
    int rc;
    const char *content;
    int64_t in, out;
    int refusal, truncated;
};

static const struct reply_case reply_cases[] = {
    {BZ_PROVIDER_OPENAI,
     "{\"choices\":[{\"message\":{\"content\":\"{\\\"a\\\":1}\"},\"finish_reason\":\"stop\"}],"
     "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3}}",
     BZ_OK, "{\"a\":1}", 10, 3, 0, 0},
    {BZ_PROVIDER_OPENAI,
     "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"no\"}}],\"usage\":{}}", BZ_OK,
     "no", 0, 0, 1, 0},
    {BZ_PROVIDER_OPENAI,
     "{\"choices\":[{\"message\":{\"content\":\"{\"},\"finish_reason\":\"length\"}]}", BZ_OK, "{",
     0, 0, 0, 1},
    {BZ_PROVIDER_OPENAI, "{\"choices\":[]}", BZ_EINVAL, NULL, 0, 0, 0, 0},
    {BZ_PROVIDER_OPENAI, "{\"choices\":[{\"message\":", BZ_EINVAL, NULL, 0, 0, 0, 0},
    {BZ_PROVIDER_ANTHROPIC,
     "{\"content\":[{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"tool_use\",\"name\":\"t\","
     "\"input\":{\"b\":2}}],\"usage\":{\"input_tokens\":7,\"output_tokens\":5}}",
     BZ_OK, "{\"b\":2}", 7, 5, 0, 0},
    {BZ_PROVIDER_ANTHROPIC,
     "{\"content\":[{\"type\":\"text\",\"text\":\"hmm\"}],\"stop_reason\":\"max_tokens\"}", BZ_OK,
     "hmm", 0, 0, 0, 1},
    {BZ_PROVIDER_ANTHROPIC, "{\"type\":\"error\"}", BZ_EINVAL, NULL, 0, 0, 0, 0},
};

/* The request body as a cJSON tree printed unformatted: how
 * bz_provider_build made it before it wrote text itself. The response cache
 * is keyed by the body's bytes, so both must agree byte for byte. */
static char *reference_body(const struct bz_model *m, const struct bz_chat_msg *msgs, int n_msgs,
                            const char *schema_json, const char *schema_name, double temperature,
                            int max_output_tokens, int64_t seed)
{
    int anth = m->provider == BZ_PROVIDER_ANTHROPIC;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", m->model);
    cJSON *arr = cJSON_AddArrayToObject(req, "messages");
    for (int i = 0; i < n_msgs; i++) {
        cJSON *cached = NULL;
        if (anth && msgs[i].cache) {
            cached = cJSON_CreateArray();
            cJSON *blk = cJSON_CreateObject();
            cJSON_AddItemToArray(cached, blk);
            cJSON_AddStringToObject(blk, "type", "text");
            cJSON_AddStringToObject(blk, "text", msgs[i].content);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(blk, "cache_control"), "type",
                                    "ephemeral");
        }
        if (anth && strcmp(msgs[i].role, "system") == 0) {
            if (cached)
                cJSON_AddItemToObject(req, "system", cached);
            else
                cJSON_AddStringToObject(req, "system", msgs[i].content);
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "role", msgs[i].role);
        if (cached)
            cJSON_AddItemToObject(o, "content", cached);
        else
            cJSON_AddStringToObject(o, "content", msgs[i].content);
    }
    if (!anth && m->send_seed && seed >= 0)
        cJSON_AddNumberToObject(req, "seed", (double)seed);
    cJSON_AddNumberToObject(req, "max_tokens",
                            m->max_output_tokens > 0 ? m->max_output_tokens : max_output_tokens);
    cJSON_AddNumberToObject(req, "temperature",
                            m->temperature == m->temperature ? m->temperature : temperature);
    if (m->sampling)
        for (const cJSON *it = m->sampling->child; it; it = it->next)
            cJSON_AddItemToObject(req, it->string, cJSON_Duplicate(it, 1));
    cJSON *schema = schema_json ? cJSON_Parse(schema_json) : NULL;
    if (schema && !anth) {
        cJSON *rf = cJSON_AddObjectToObject(req, "response_format");
        cJSON_AddStringToObject(rf, "type", "json_schema");
        cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
        cJSON_AddStringToObject(js, "name", schema_name);
        cJSON_AddItemToObject(js, "schema", schema);
        cJSON_AddBoolToObject(js, "strict", m->strict);
    } else if (schema) {
        cJSON *tool = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "tools"), tool);
        cJSON_AddStringToObject(tool, "name", schema_name);
        cJSON_AddStringToObject(tool, "description", "Submit your decision for this phase.");
        cJSON_AddItemToObject(tool, "input_schema", schema);
        cJSON *tc = cJSON_AddObjectToObject(req, "tool_choice");
        cJSON_AddStringToObject(tc, "type", "tool");
        cJSON_AddStringToObject(tc, "name", schema_name);
    }
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    return body;
}

static void request_body_should_be_what_cjson_prints(void **state)
{
    (void)state;
    /* texts with every kind of escape, bytes above 127 and a NUL-free
     * control range; numbers that print as %d, %1.15g and %1.17g */
    char ctl[40];
    for (int i = 0; i < 31; i++)
        ctl[i] = (char)(i + 1);
    ctl[31] = '"';
    ctl[32] = '\\';
    ctl[33] = '/';
    ctl[34] = (char)0x7f;
    ctl[35] = '\0';
    const char *texts[] = {"plain", "", ctl, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                           "line\nbreak\ttab \"quoted\" back\\slash </script>"};
    const double temps[] = {0.7,           0.0,       1.0,  0.1 + 0.2, 1e10,         -3.5,
                            123456789.125, 1.0 / 3.0, -0.0, 3e9,       2147483647.0, -5.0};
    const char *schemas[] = {SCHEMA, NULL, " { \"type\" : \"object\", \"x\": [1.50, 2e3, -0] } "};
    cJSON *sampling = cJSON_Parse("{\"top_p\":0.9,\"stop\":[\"\\n\",\"END\"],\"logit_bias\":{\"5\""
                                  ":-100},\"n\":1,\"flag\":true,\"none\":null}");
    assert_non_null(sampling);
    int cases = 0;
    for (int prov = 0; prov < 2; prov++)
        for (int variant = 0; variant < 4; variant++)
            for (size_t ti = 0; ti < sizeof texts / sizeof *texts; ti++)
                for (size_t si = 0; si < sizeof schemas / sizeof *schemas; si++) {
                    struct bz_model m;
                    memset(&m, 0, sizeof m);
                    m.provider = prov ? BZ_PROVIDER_ANTHROPIC : BZ_PROVIDER_OPENAI;
                    snprintf(m.model, sizeof m.model, "model-%s", ti == 3 ? texts[ti] : "x");
                    m.temperature = variant == 1 ? temps[ti + 7] : 0.0 / 0.0;
                    m.send_seed = variant >= 2;
                    m.strict = variant & 1;
                    m.max_output_tokens = variant == 3 ? 1000 : 0;
                    m.sampling = variant == 2 ? sampling : NULL;
                    struct bz_chat_msg msgs[] = {{"system", texts[ti], variant & 1},
                                                 {"user", texts[(ti + 1) % 5], 0},
                                                 {"assistant", texts[(ti + 2) % 5], variant != 0},
                                                 {"user", texts[(ti + 3) % 5], 0},
                                                 {"system", "a second system text", 0}};
                    int n_msgs = variant == 3 ? 5 : 4 - (int)(ti % 2);
                    int64_t seed = variant == 3 ? -1 : (int64_t)ti * 0x1fffffff;
                    double temp = temps[(ti + 3 * (size_t)variant + 5 * si) % 12];
                    char *want = reference_body(&m, msgs, n_msgs, schemas[si], "act_action", temp,
                                                256, seed);
                    char *got = NULL;
                    struct bz_err err = {0};
                    assert_int_equal(bz_provider_build(&m, msgs, n_msgs, schemas[si], "act_action",
                                                       temp, 256, seed, &got, &err),
                                     BZ_OK);
                    if (strcmp(want, got) != 0)
                        fail_msg("provider %d variant %d text %zu schema %zu:\n%s\n%s", prov,
                                 variant, ti, si, want, got);
                    cJSON_free(want);
                    free(got);
                    cases++;
                }
    assert_int_equal(cases, 120);
    cJSON_Delete(sampling);
    /* a schema that is not JSON is refused, as before */
    struct bz_model m;
    memset(&m, 0, sizeof m);
    struct bz_chat_msg one[] = {{"user", "hi", 0}};
    char *body = NULL;
    struct bz_err err = {0};
    assert_int_equal(
        bz_provider_build(&m, one, 1, "{not json", "bid_action", 0.5, 10, -1, &body, &err),
        BZ_EINTERNAL);
    assert_null(body);
    assert_non_null(strstr(err.msg, "bid_action"));
}

/* Cache keys and text hashes as the code before made them (printf's
 * "%016llx%016llx", "v1|%llu|"): caches and results files written before
 * keep their keys. */
static void keys_and_text_hashes_should_keep_their_values(void **state)
{
    (void)state;
    struct bz_model m;
    memset(&m, 0, sizeof m);
    snprintf(m.model, sizeof m.model, "gpt-x");
    char k[BZ_CACHE_KEY_HEX];
    bz_cache_key(&m, "{\"messages\":[1]}", 0, k);
    assert_string_equal(k, "94a0a103f88ae4498ff3f483ce21d95d");
    bz_cache_key(&m, "{\"messages\":[1]}", UINT64_MAX, k);
    assert_string_equal(k, "3a200028ccf36c61caa9dece14775ad1");
    m.provider = BZ_PROVIDER_ANTHROPIC;
    bz_cache_key(&m, "body", 1234567890123ULL, k);
    assert_string_equal(k, "5b6eb43428581d9f4e26d537ff776cf3");
    char h[BZ_LLM_TEXT_HASH_HEX];
    bz_llm_text_hash("", h);
    assert_string_equal(h, "ecba3df2c3383c5295b8fa2bc50aebc6");
    bz_llm_text_hash("You are agent 0.\n", h);
    assert_string_equal(h, "d706bf43b4fbf1c8341fbfde4f4e0241");
}

static void replies_should_parse_with_usage(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const struct reply_case *c = &reply_cases[i];
        struct bz_model m;
        memset(&m, 0, sizeof m);
        m.provider = c->provider;
        struct bz_provider_reply rp;
        struct bz_err err = {0};
        int rc = bz_provider_parse(&m, c->body, strlen(c->body), &rp, &err);
        if (rc != c->rc)
            fail_msg("case %zu: rc %d (%s)", i, rc, err.msg);
        if (rc)
            continue;
        assert_string_equal(rp.content, c->content);
        assert_int_equal(rp.input_tokens, c->in);
        assert_int_equal(rp.output_tokens, c->out);
        assert_int_equal(rp.refusal, c->refusal);
        assert_int_equal(rp.truncated, c->truncated);
        free(rp.content);
    }
}

static void json_should_be_extracted_leniently(void **state)
{
    (void)state;
    const char *ok[] = {"{\"a\":1}", "Here:\n```json\n{\"a\":1}\n```\n", "I pick {\"a\":1}."};
    for (size_t i = 0; i < 3; i++) {
        cJSON *v = bz_provider_extract_json(ok[i]);
        assert_non_null(v);
        assert_int_equal(cJSON_GetObjectItem(v, "a")->valueint, 1);
        cJSON_Delete(v);
    }
    assert_null(bz_provider_extract_json("Sure! {amount: ten"));
}

struct schema_case {
    const char *value;
    const char *needle; /* NULL: valid */
};

static const struct schema_case schema_cases[] = {
    {"{\"amount_mwh\":3,\"side\":\"buy\"}", NULL},
    {"{\"amount_mwh\":3,\"side\":\"buy\",\"to\":2}", NULL},
    {"{\"side\":\"buy\"}", "missing required field \"amount_mwh\""},
    {"{\"amount_mwh\":\"3\",\"side\":\"buy\"}", "amount_mwh: expected a number"},
    {"{\"amount_mwh\":-1,\"side\":\"buy\"}", "amount_mwh: expected a number >= 0"},
    {"{\"amount_mwh\":1,\"side\":\"hold\"}", "side: expected one of [\"buy\",\"sell\"]"},
    {"{\"amount_mwh\":1,\"side\":\"buy\",\"to\":1.5}", "to: expected an integer"},
    {"{\"amount_mwh\":1,\"side\":\"buy\",\"x\":0}", "unexpected field \"x\""},
    {"[1]", "(the reply): expected an object"},
};

static void schema_check_should_name_the_field(void **state)
{
    (void)state;
    cJSON *s = cJSON_Parse(SCHEMA);
    for (size_t i = 0; i < sizeof schema_cases / sizeof schema_cases[0]; i++) {
        cJSON *v = cJSON_Parse(schema_cases[i].value);
        struct bz_err err = {0};
        int rc = bz_json_schema_check(s, v, &err);
        if (!schema_cases[i].needle)
            assert_int_equal(rc, BZ_OK);
        else if (rc != BZ_EINVAL || !strstr(err.msg, schema_cases[i].needle))
            fail_msg("case %zu: rc %d '%s' lacks '%s'", i, rc, err.msg, schema_cases[i].needle);
        cJSON_Delete(v);
    }
    cJSON_Delete(s);
}

static void cache_should_round_trip_and_key_on_every_input(void **state)
{
    (void)state;
    struct bz_model m;
    memset(&m, 0, sizeof m);
    snprintf(m.model, sizeof m.model, "gpt-x");
    char k1[BZ_CACHE_KEY_HEX], k2[BZ_CACHE_KEY_HEX], k3[BZ_CACHE_KEY_HEX], k4[BZ_CACHE_KEY_HEX];
    bz_cache_key(&m, "{\"messages\":[1]}", 0, k1);
    bz_cache_key(&m, "{\"messages\":[1]}", 1, k2);
    bz_cache_key(&m, "{\"messages\":[2]}", 0, k3);
    snprintf(m.model, sizeof m.model, "gpt-y");
    bz_cache_key(&m, "{\"messages\":[1]}", 0, k4);
    assert_int_equal(strlen(k1), 32);
    assert_string_not_equal(k1, k2);
    assert_string_not_equal(k1, k3);
    assert_string_not_equal(k1, k4);
    snprintf(m.model, sizeof m.model, "gpt-x");
    char again[BZ_CACHE_KEY_HEX];
    bz_cache_key(&m, "{\"messages\":[1]}", 0, again);
    assert_string_equal(k1, again);

    char dir[512];
    snprintf(dir, sizeof dir, "%s/llm_units_cache_%ld/a/b", BZ_TEST_TMP, (long)getpid());
    struct bz_err err = {0};
    assert_int_equal(bz_cache_open(dir, &err), BZ_OK);
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(bz_cache_get(dir, k1, &body, &len), 0);
    assert_int_equal(bz_cache_put(dir, k1, "{\"x\":1}", 7, &err), BZ_OK);
    assert_int_equal(bz_cache_get(dir, k1, &body, &len), 1);
    assert_int_equal(len, 7);
    assert_memory_equal(body, "{\"x\":1}", 7);
    free(body);
    assert_int_equal(bz_cache_open("/proc/definitely/not", &err), BZ_EIO);
    assert_non_null(strstr(err.msg, "/proc/definitely/not"));
}

int main(void)
{
    mkdir(BZ_TEST_TMP, 0777);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_should_load_a_good_model),
        cmocka_unit_test(registry_errors_should_name_file_and_key_path),
        cmocka_unit_test(shipped_registry_should_be_valid),
        cmocka_unit_test(openai_request_should_carry_json_schema),
        cmocka_unit_test(anthropic_request_should_force_a_tool),
        cmocka_unit_test(prompt_cache_marks_and_seed_should_reach_the_request),
        cmocka_unit_test(request_body_should_be_what_cjson_prints),
        cmocka_unit_test(keys_and_text_hashes_should_keep_their_values),
        cmocka_unit_test(replies_should_parse_with_usage),
        cmocka_unit_test(json_should_be_extracted_leniently),
        cmocka_unit_test(schema_check_should_name_the_field),
        cmocka_unit_test(cache_should_round_trip_and_key_on_every_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
