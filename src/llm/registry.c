/* registry: loads and validates the models registry (sweeps/models.json).
 * Every error names the file and the key path. Holds the NAME of each key's
 * environment variable, never a key.
 *
 *   { "models": [ { "id": "gpt-4o-mini", "provider": "openai",
 *       "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
 *       "api_key_env": "OPENAI_API_KEY", "capability": 1272,
 *       "price_in_per_mtok": 0.15, "price_out_per_mtok": 0.6,
 *       "price_cached_in_per_mtok": 0.075,          (optional; default price_in)
 *       "limits": { "rpm": 500, "tpm": 200000, "max_concurrency": 32 },
 *       "sampling": { "temperature": 0.7, "max_output_tokens": 512, "top_p": 1 },
 *       "strict": false, "seed": false, "notes": "..." } ] }
 *
 * provider "openai" is every OpenAI-compatible endpoint (vLLM, Ollama,
 * llama.cpp server, OpenRouter); api_key_env may be "" for a local server.
 * limits and sampling are optional; sampling members other than
 * temperature and max_output_tokens are passed to the provider as they are. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bazaar/file.h"
#include "llm/llm_internal.h"

#define REGISTRY_MAX_BYTES (4u * 1024u * 1024u)

void bz_registry_destroy(struct bz_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        cJSON_Delete(r->models[i].sampling);
    free(r->models);
    free(r);
}

int bz_registry_find(const struct bz_registry *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->models[i].id, id) == 0)
            return (int)i;
    return -1;
}

void bz_llm_resolve_path(const char *given, const char *fallback, char *buf, size_t n)
{
    const char *p = given && given[0] ? given : fallback;
    if (p[0] != '/' && access(p, F_OK) != 0) {
        char alt[1024];
        snprintf(alt, sizeof alt, "%s/%s", BZ_SOURCE_DIR, p);
        if (access(alt, F_OK) == 0) {
            snprintf(buf, n, "%s", alt);
            return;
        }
    }
    snprintf(buf, n, "%s", p);
}

/* A short rendering of a JSON value for "got ..." in messages. */
static void got(const cJSON *v, char *buf, size_t n)
{
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    if (!s) {
        snprintf(buf, n, "nothing");
        return;
    }
    if (strlen(s) > 40)
        snprintf(buf, n, "%.37s...", s);
    else
        snprintf(buf, n, "%s", s);
    cJSON_free(s);
}

static int str_field(const char *origin, int i, const cJSON *e, const char *key, char *dst,
                     size_t cap, int required, int allow_empty, struct bz_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    char g[64];
    if (!v) {
        if (!required)
            return BZ_OK;
        return bz_err_set(err, BZ_EINVAL, "%s: models[%d]: missing key \"%s\"", origin, i, key);
    }
    if (!cJSON_IsString(v) || (!allow_empty && !v->valuestring[0]) ||
        strlen(v->valuestring) >= cap) {
        got(v, g, sizeof g);
        return bz_err_set(err, BZ_EINVAL,
                          "%s: models[%d].%s: expected a %sstring of at most %zu "
                          "bytes, got %s",
                          origin, i, key, allow_empty ? "" : "non-empty ", cap - 1, g);
    }
    snprintf(dst, cap, "%s", v->valuestring);
    return BZ_OK;
}

static int num_field(const char *origin, const char *path, const cJSON *obj, const char *key,
                     double lo, double hi, int integer, int required, double *dst,
                     struct bz_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char g[64];
    if (!v) {
        if (!required)
            return BZ_OK;
        return bz_err_set(err, BZ_EINVAL, "%s: %s: missing key \"%s\"", origin, path, key);
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi || (integer && v->valuedouble != floor(v->valuedouble))) {
        got(v, g, sizeof g);
        return bz_err_set(err, BZ_EINVAL, "%s: %s.%s: expected %s in [%g, %g], got %s", origin,
                          path, key, integer ? "an integer" : "a number", lo, hi, g);
    }
    *dst = v->valuedouble;
    return BZ_OK;
}

static int check_keys(const char *origin, const char *path, const cJSON *obj,
                      const char *const *keys, size_t n, struct bz_err *err)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        size_t k = 0;
        while (k < n && strcmp(keys[k], it->string) != 0)
            k++;
        if (k == n)
            return bz_err_set(err, BZ_EINVAL, "%s: %s: unknown key \"%s\"", origin, path,
                              it->string);
        for (const cJSON *o = obj->child; o != it; o = o->next)
            if (strcmp(o->string, it->string) == 0)
                return bz_err_set(err, BZ_EINVAL, "%s: %s: duplicate key \"%s\"", origin, path,
                                  it->string);
    }
    return BZ_OK;
}

static int valid_env_name(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (i > 0 && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

static int parse_model(const char *origin, int i, const cJSON *e, struct bz_model *m,
                       struct bz_err *err)
{
    static const char *const keys[] = {"id",
                                       "provider",
                                       "base_url",
                                       "model",
                                       "api_key_env",
                                       "capability",
                                       "price_in_per_mtok",
                                       "price_out_per_mtok",
                                       "price_cached_in_per_mtok",
                                       "limits",
                                       "sampling",
                                       "strict",
                                       "seed",
                                       "notes"};
    static const char *const limit_keys[] = {"rpm", "tpm", "max_concurrency"};
    char path[64], g[64];
    char provider[32] = "";
    int rc;
    snprintf(path, sizeof path, "models[%d]", i);
    if (!cJSON_IsObject(e)) {
        got(e, g, sizeof g);
        return bz_err_set(err, BZ_EINVAL, "%s: %s: expected an object, got %s", origin, path, g);
    }
    if ((rc = check_keys(origin, path, e, keys, sizeof keys / sizeof keys[0], err)))
        return rc;
    m->temperature = NAN;
    if ((rc = str_field(origin, i, e, "id", m->id, sizeof m->id, 1, 0, err)) ||
        (rc = str_field(origin, i, e, "provider", provider, sizeof provider, 1, 0, err)) ||
        (rc = str_field(origin, i, e, "base_url", m->base_url, sizeof m->base_url, 1, 0, err)) ||
        (rc = str_field(origin, i, e, "model", m->model, sizeof m->model, 1, 0, err)) ||
        (rc = str_field(origin, i, e, "api_key_env", m->api_key_env, sizeof m->api_key_env, 1, 1,
                        err)))
        return rc;
    if (strncmp(m->id, "heuristic", 9) == 0)
        return bz_err_set(err, BZ_EINVAL,
                          "%s: %s.id: \"%s\": ids starting with \"heuristic\" "
                          "are reserved for heuristic agents",
                          origin, path, m->id);
    if (strcmp(provider, "openai") == 0)
        m->provider = BZ_PROVIDER_OPENAI;
    else if (strcmp(provider, "anthropic") == 0)
        m->provider = BZ_PROVIDER_ANTHROPIC;
    else
        return bz_err_set(err, BZ_EINVAL,
                          "%s: %s.provider: expected \"openai\" (any "
                          "OpenAI-compatible endpoint) or \"anthropic\", got \"%s\"",
                          origin, path, provider);
    if (strncmp(m->base_url, "http://", 7) != 0 && strncmp(m->base_url, "https://", 8) != 0)
        return bz_err_set(err, BZ_EINVAL,
                          "%s: %s.base_url: expected an http:// or https:// "
                          "URL, got \"%s\"",
                          origin, path, m->base_url);
    size_t bl = strlen(m->base_url);
    while (bl > 0 && m->base_url[bl - 1] == '/')
        m->base_url[--bl] = '\0';
    if (!valid_env_name(m->api_key_env))
        return bz_err_set(err, BZ_EINVAL,
                          "%s: %s.api_key_env: expected the NAME of an "
                          "environment variable (letters, digits, _), not a key",
                          origin, path);
    if ((rc = num_field(origin, path, e, "capability", -1e12, 1e12, 0, 1, &m->capability, err)) ||
        (rc = num_field(origin, path, e, "price_in_per_mtok", 0, 1e6, 0, 1, &m->price_in_per_mtok,
                        err)) ||
        (rc = num_field(origin, path, e, "price_out_per_mtok", 0, 1e6, 0, 1, &m->price_out_per_mtok,
                        err)))
        return rc;
    /* input tokens the provider serves from its prompt cache: optional,
     * priced as other input tokens unless given */
    m->price_cached_in_per_mtok = m->price_in_per_mtok;
    if (cJSON_GetObjectItemCaseSensitive(e, "price_cached_in_per_mtok") &&
        (rc = num_field(origin, path, e, "price_cached_in_per_mtok", 0, 1e6, 0, 1,
                        &m->price_cached_in_per_mtok, err)))
        return rc;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "strict");
    if (v) {
        if (!cJSON_IsBool(v))
            return bz_err_set(err, BZ_EINVAL, "%s: %s.strict: expected true or false", origin,
                              path);
        m->strict = cJSON_IsTrue(v);
    }
    v = cJSON_GetObjectItemCaseSensitive(e, "seed");
    if (v) {
        if (!cJSON_IsBool(v))
            return bz_err_set(err, BZ_EINVAL, "%s: %s.seed: expected true or false", origin, path);
        m->send_seed = cJSON_IsTrue(v);
    }
    v = cJSON_GetObjectItemCaseSensitive(e, "notes");
    if (v && !cJSON_IsString(v))
        return bz_err_set(err, BZ_EINVAL, "%s: %s.notes: expected a string", origin, path);
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(e, "limits");
    if (lim) {
        char lp[80];
        snprintf(lp, sizeof lp, "%s.limits", path);
        if (!cJSON_IsObject(lim))
            return bz_err_set(err, BZ_EINVAL, "%s: %s: expected an object", origin, lp);
        double mc = 0;
        if ((rc = check_keys(origin, lp, lim, limit_keys, 3, err)) ||
            (rc = num_field(origin, lp, lim, "rpm", 0, 1e9, 0, 0, &m->rpm, err)) ||
            (rc = num_field(origin, lp, lim, "tpm", 0, 1e12, 0, 0, &m->tpm, err)) ||
            (rc = num_field(origin, lp, lim, "max_concurrency", 0, 1e6, 1, 0, &mc, err)))
            return rc;
        m->max_concurrency = (int)mc;
    }
    const cJSON *smp = cJSON_GetObjectItemCaseSensitive(e, "sampling");
    if (smp) {
        char sp[80];
        snprintf(sp, sizeof sp, "%s.sampling", path);
        if (!cJSON_IsObject(smp))
            return bz_err_set(err, BZ_EINVAL, "%s: %s: expected an object", origin, sp);
        double t = NAN, mo = 0;
        if ((rc = num_field(origin, sp, smp, "temperature", 0, 2, 0, 0, &t, err)) ||
            (rc = num_field(origin, sp, smp, "max_output_tokens", 1, 1e7, 1, 0, &mo, err)))
            return rc;
        m->temperature = t;
        m->max_output_tokens = (int)mo;
        static const char *const reserved[] = {"model",  "messages",    "system",
                                               "tools",  "tool_choice", "response_format",
                                               "stream", "max_tokens"};
        for (size_t k = 0; k < sizeof reserved / sizeof reserved[0]; k++)
            if (cJSON_GetObjectItemCaseSensitive(smp, reserved[k]))
                return bz_err_set(
                    err, BZ_EINVAL,
                    "%s: %s.%s: set by bazaar, not a sampling "
                    "setting%s",
                    origin, sp, reserved[k],
                    strcmp(reserved[k], "max_tokens") == 0 ? " (use max_output_tokens)" : "");
        m->sampling = cJSON_Duplicate(smp, 1);
        if (!m->sampling)
            return bz_err_set(err, BZ_ENOMEM, "%s: out of memory", origin);
        cJSON_DeleteItemFromObjectCaseSensitive(m->sampling, "temperature");
        cJSON_DeleteItemFromObjectCaseSensitive(m->sampling, "max_output_tokens");
    }
    return BZ_OK;
}

int bz_registry_parse(const char *text, const char *origin, struct bz_registry **out,
                      struct bz_err *err)
{
    int rc = BZ_OK;
    *out = NULL;
    cJSON *root = cJSON_Parse(text);
    struct bz_registry *r = calloc(1, sizeof *r);
    if (!r) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: out of memory", origin);
        goto out;
    }
    snprintf(r->path, sizeof r->path, "%s", origin);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at && *p; p++)
            line += *p == '\n';
        rc = bz_err_set(err, BZ_EINVAL, "%s: line %d: not valid JSON", origin, line);
        goto out;
    }
    const cJSON *list = root;
    if (cJSON_IsObject(root)) {
        static const char *const top[] = {"models", "notes"};
        if ((rc = check_keys(origin, "(top level)", root, top, 2, err)))
            goto out;
        list = cJSON_GetObjectItemCaseSensitive(root, "models");
    }
    if (!cJSON_IsArray(list)) {
        rc = bz_err_set(err, BZ_EINVAL, "%s: models: expected an array of model objects", origin);
        goto out;
    }
    int n = cJSON_GetArraySize(list);
    if (n == 0) {
        rc = bz_err_set(err, BZ_EINVAL, "%s: models: the registry lists no model", origin);
        goto out;
    }
    r->models = calloc((size_t)n, sizeof *r->models);
    if (!r->models) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: out of memory", origin);
        goto out;
    }
    int i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        r->n = (size_t)i + 1;
        if ((rc = parse_model(origin, i, e, &r->models[i], err)))
            goto out;
        for (int j = 0; j < i; j++)
            if (strcmp(r->models[j].id, r->models[i].id) == 0) {
                rc = bz_err_set(err, BZ_EINVAL,
                                "%s: models[%d].id: \"%s\" already used by "
                                "models[%d]",
                                origin, i, r->models[i].id, j);
                goto out;
            }
    }
    *out = r;
    r = NULL;
out:
    bz_registry_destroy(r);
    cJSON_Delete(root);
    return rc;
}

int bz_registry_load(const char *path, struct bz_registry **out, struct bz_err *err)
{
    *out = NULL;
    char *buf = NULL;
    int rc = bz_file_load(path, REGISTRY_MAX_BYTES, "models registry", &buf, NULL, err);
    if (!rc)
        rc = bz_registry_parse(buf, path, out, err);
    free(buf);
    return rc;
}

int bz_llm_fill_capability(const char *models_path, struct bz_agent_spec *agents, size_t n,
                           struct bz_err *err)
{
    int any = 0;
    for (size_t i = 0; i < n; i++)
        any |= agents[i].kind == BZ_AGENT_LLM;
    if (!any)
        return BZ_OK;
    char path[1024];
    bz_llm_resolve_path(models_path, "sweeps/models.json", path, sizeof path);
    struct bz_registry *r = NULL;
    int rc = bz_registry_load(path, &r, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (agents[i].kind != BZ_AGENT_LLM)
            continue;
        int k = bz_registry_find(r, agents[i].policy);
        if (k < 0) {
            rc = bz_err_set(err, BZ_EINVAL, "%s: no model with id \"%s\" (named by a lineup)", path,
                            agents[i].policy);
            break;
        }
        agents[i].capability = r->models[k].capability;
    }
    bz_registry_destroy(r);
    return rc;
}

int bz_registry_capability(const char *models_path, const char *model_id, double *capability,
                           struct bz_err *err)
{
    struct bz_agent_spec a;
    memset(&a, 0, sizeof a);
    a.kind = BZ_AGENT_LLM;
    snprintf(a.policy, sizeof a.policy, "%s", model_id);
    int rc = bz_llm_fill_capability(models_path, &a, 1, err);
    if (!rc)
        *capability = a.capability;
    return rc;
}
