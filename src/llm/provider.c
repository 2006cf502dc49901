/* provider: request bodies and reply parsing for the two wire formats, OpenAI
 * chat completions (every OpenAI-compatible server) and Anthropic messages,
 * plus the schema check of a decoded action. Pure functions over text and
 * cJSON: no network, no keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "llm/llm_internal.h"

static int add_sampling(cJSON *req, const struct bz_model *m, double temperature)
{
    double t = isnan(m->temperature) ? temperature : m->temperature;
    if (!cJSON_AddNumberToObject(req, "temperature", t))
        return -1;
    if (m->sampling)
        for (const cJSON *it = m->sampling->child; it; it = it->next) {
            cJSON *d = cJSON_Duplicate(it, 1);
            if (!d)
                return -1;
            cJSON_AddItemToObject(req, it->string, d);
        }
    return 0;
}

int bz_provider_build(const struct bz_model *m, const struct bz_chat_msg *msgs, int n_msgs,
                      const char *schema_json, const char *schema_name, double temperature,
                      int max_output_tokens, int64_t seed, char **body, struct bz_err *err)
{
    *body = NULL;
    int rc = BZ_OK;
    cJSON *schema = schema_json ? cJSON_Parse(schema_json) : NULL;
    cJSON *req = cJSON_CreateObject();
    if (schema_json && !schema) {
        rc = bz_err_set(err, BZ_EINTERNAL, "the game's action schema for %s is not valid JSON",
                        schema_name);
        goto out;
    }
    if (!req)
        goto nomem;
    int max_tok = m->max_output_tokens > 0 ? m->max_output_tokens : max_output_tokens;
    if (!cJSON_AddStringToObject(req, "model", m->model))
        goto nomem;
    cJSON *arr = cJSON_AddArrayToObject(req, "messages");
    if (!arr)
        goto nomem;
    for (int i = 0; i < n_msgs; i++) {
        int anth = m->provider == BZ_PROVIDER_ANTHROPIC;
        cJSON *cached = NULL; /* Anthropic prompt caching: a text block with cache_control */
        if (anth && msgs[i].cache) {
            cJSON *blk = NULL, *cc = NULL;
            if (!(cached = cJSON_CreateArray()) || !(blk = cJSON_CreateObject())) {
                cJSON_Delete(cached);
                goto nomem;
            }
            cJSON_AddItemToArray(cached, blk);
            if (!cJSON_AddStringToObject(blk, "type", "text") ||
                !cJSON_AddStringToObject(blk, "text", msgs[i].content) ||
                !(cc = cJSON_AddObjectToObject(blk, "cache_control")) ||
                !cJSON_AddStringToObject(cc, "type", "ephemeral")) {
                cJSON_Delete(cached);
                goto nomem;
            }
        }
        if (anth && strcmp(msgs[i].role, "system") == 0) {
            if (cached)
                cJSON_AddItemToObject(req, "system", cached);
            else if (!cJSON_AddStringToObject(req, "system", msgs[i].content))
                goto nomem;
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            cJSON_Delete(cached);
            goto nomem;
        }
        cJSON_AddItemToArray(arr, o);
        if (!cJSON_AddStringToObject(o, "role", msgs[i].role)) {
            cJSON_Delete(cached);
            goto nomem;
        }
        if (cached)
            cJSON_AddItemToObject(o, "content", cached);
        else if (!cJSON_AddStringToObject(o, "content", msgs[i].content))
            goto nomem;
    }
    if (m->provider == BZ_PROVIDER_OPENAI && m->send_seed && seed >= 0 &&
        !cJSON_AddNumberToObject(req, "seed", (double)seed))
        goto nomem;
    if (!cJSON_AddNumberToObject(req, "max_tokens", max_tok))
        goto nomem;
    if (add_sampling(req, m, temperature))
        goto nomem;
    if (schema) {
        if (m->provider == BZ_PROVIDER_OPENAI) {
            cJSON *rf = cJSON_AddObjectToObject(req, "response_format");
            if (!rf || !cJSON_AddStringToObject(rf, "type", "json_schema"))
                goto nomem;
            cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
            if (!js || !cJSON_AddStringToObject(js, "name", schema_name))
                goto nomem;
            cJSON_AddItemToObject(js, "schema", schema);
            schema = NULL;
            if (!cJSON_AddBoolToObject(js, "strict", m->strict))
                goto nomem;
        } else {
            cJSON *tools = cJSON_AddArrayToObject(req, "tools");
            cJSON *tool = cJSON_CreateObject();
            if (!tools || !tool)
                goto nomem;
            cJSON_AddItemToArray(tools, tool);
            if (!cJSON_AddStringToObject(tool, "name", schema_name) ||
                !cJSON_AddStringToObject(tool, "description",
                                         "Submit your decision for this phase."))
                goto nomem;
            cJSON_AddItemToObject(tool, "input_schema", schema);
            schema = NULL;
            cJSON *tc = cJSON_AddObjectToObject(req, "tool_choice");
            if (!tc || !cJSON_AddStringToObject(tc, "type", "tool") ||
                !cJSON_AddStringToObject(tc, "name", schema_name))
                goto nomem;
        }
    }
    *body = cJSON_PrintUnformatted(req);
    if (!*body)
        goto nomem;
    goto out;
nomem:
    rc = bz_err_set(err, BZ_ENOMEM, "out of memory building a request for model %s", m->id);
out:
    cJSON_Delete(schema);
    cJSON_Delete(req);
    return rc;
}

/* A usage count: absent is 0; present it must be an integer in
 * [0, BZ_PROVIDER_USAGE_MAX] (a double of 9.3e18 cast to int64 is undefined
 * behaviour and a negative count would refund the budget). */
static int get_usage(const cJSON *o, const char *k, int64_t *v, struct bz_err *err)
{
    *v = 0;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!it || cJSON_IsNull(it))
        return BZ_OK;
    double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(d >= 0 && d <= (double)BZ_PROVIDER_USAGE_MAX) || d != floor(d))
        return bz_err_set(err, BZ_EINVAL,
                          "usage.%s out of range: %.17g (expected an integer in "
                          "[0, %lld])",
                          k, d, (long long)BZ_PROVIDER_USAGE_MAX);
    *v = (int64_t)d;
    return BZ_OK;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

int bz_provider_parse(const struct bz_model *m, const char *body, size_t len,
                      struct bz_provider_reply *reply, struct bz_err *err)
{
    memset(reply, 0, sizeof *reply);
    int rc = BZ_OK;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return bz_err_set(err, BZ_EINVAL, "reply body is not JSON (%zu bytes)", len);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(ver))
        snprintf(reply->model_version, sizeof reply->model_version, "%s", ver->valuestring);
    int a = m->provider == BZ_PROVIDER_ANTHROPIC;
    if ((rc = get_usage(usage, a ? "input_tokens" : "prompt_tokens", &reply->input_tokens, err)) ||
        (rc = get_usage(usage, a ? "output_tokens" : "completion_tokens", &reply->output_tokens,
                        err)))
        goto out;
    if (a) {
        /* Anthropic counts prompt-cache reads and writes apart from
         * input_tokens: input_tokens here is every input token */
        int64_t rd = 0, wr = 0;
        if ((rc = get_usage(usage, "cache_read_input_tokens", &rd, err)) ||
            (rc = get_usage(usage, "cache_creation_input_tokens", &wr, err)))
            goto out;
        reply->cached_input_tokens = rd;
        reply->input_tokens += rd + wr;
    } else if ((rc = get_usage(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"),
                               "cached_tokens", &reply->cached_input_tokens, err))) {
        goto out;
    }
    if (!a) {
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
        if (!msg) {
            rc = bz_err_set(err, BZ_EINVAL, "reply has no choices[0].message");
            goto out;
        }
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
        reply->truncated = cJSON_IsString(fin) && strcmp(fin->valuestring, "length") == 0;
        const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (cJSON_IsString(refusal) && refusal->valuestring[0]) {
            reply->refusal = 1;
            reply->content = dupstr(refusal->valuestring);
        } else if (cJSON_IsString(content)) {
            reply->content = dupstr(content->valuestring);
        } else {
            rc = bz_err_set(err, BZ_EINVAL, "reply has no choices[0].message.content");
            goto out;
        }
    } else {
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop_reason");
        reply->truncated = cJSON_IsString(stop) && strcmp(stop->valuestring, "max_tokens") == 0;
        reply->refusal = cJSON_IsString(stop) && strcmp(stop->valuestring, "refusal") == 0;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
        if (!cJSON_IsArray(content)) {
            rc = bz_err_set(err, BZ_EINVAL, "reply has no content array");
            goto out;
        }
        const cJSON *text = NULL;
        for (const cJSON *b = content->child; b; b = b->next) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(b, "type");
            if (!cJSON_IsString(type))
                continue;
            if (strcmp(type->valuestring, "tool_use") == 0) {
                const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
                reply->content = in ? cJSON_PrintUnformatted(in) : NULL;
                if (reply->content)
                    break;
            } else if (strcmp(type->valuestring, "text") == 0 && !text) {
                text = cJSON_GetObjectItemCaseSensitive(b, "text");
            }
        }
        if (!reply->content) {
            if (!cJSON_IsString(text)) {
                rc = bz_err_set(err, BZ_EINVAL, "reply has neither a tool_use nor a text block");
                goto out;
            }
            reply->content = dupstr(text->valuestring);
            if (!reply->refusal)
                reply->refusal = 0;
        }
    }
    if (!reply->content)
        rc = bz_err_set(err, BZ_ENOMEM, "out of memory parsing a reply");
out:
    cJSON_Delete(root);
    return rc;
}

cJSON *bz_provider_extract_json(const char *text)
{
    cJSON *v = cJSON_Parse(text);
    if (v)
        return v;
    const char *fence = strstr(text, "```");
    if (fence) {
        const char *start = strchr(fence + 3, '\n');
        const char *end = start ? strstr(start, "```") : NULL;
        if (start && end && (v = cJSON_ParseWithLength(start, (size_t)(end - start))))
            return v;
    }
    const char *a = strchr(text, '{');
    const char *b = strrchr(text, '}');
    if (a && b && b > a)
        v = cJSON_ParseWithLength(a, (size_t)(b - a + 1));
    return v;
}

static size_t redact_one(char *text, size_t len, const char *pat, size_t pl)
{
    size_t n = 0;
    if (pl == 0 || pl > len)
        return 0;
    for (size_t i = 0; i + pl <= len; i++)
        if (text[i] == pat[0] && memcmp(text + i, pat, pl) == 0) {
            memset(text + i, '*', pl);
            i += pl - 1;
            n++;
        }
    return n;
}

size_t bz_provider_redact(char *text, size_t len, const char *key)
{
    size_t kl = key ? strlen(key) : 0;
    if (!text || kl < 4)
        return 0;
    size_t n = redact_one(text, len, key, kl);
    if (strchr(key, '/')) {
        /* the form a JSON encoder may give: "/" escaped as "\/" */
        char *esc = malloc(2 * kl + 1), *e = esc;
        if (esc) {
            for (const char *c = key; *c; c++) {
                if (*c == '/')
                    *e++ = '\\';
                *e++ = *c;
            }
            n += redact_one(text, len, esc, (size_t)(e - esc));
            free(esc);
        }
    }
    return n;
}
