/* llm: the rank's LLM client. Sets everything up before any game starts
 * (registry, API keys from the environment, prompts checked against sample
 * observations, cache folder, transport) and drives it from the scheduler's
 * loop. Holds keys in memory only: never prints, records or caches one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bazaar/file.h"
#include "bazaar/spec.h"
#include "llm/llm_internal.h"

#define SAMPLE_MAX_STEPS 100000 /* a sample game that runs longer is refused */
#define PROV_MAX_BYTES (4u * 1024u * 1024u)

/* Keep the text of a file the run uses (registry, template) for the
 * transcripts' provenance. Best effort: a file read once already. */
static int add_provenance(struct bz_llm *llm, const char *name, const char *path,
                          struct bz_err *err)
{
    if (llm->n_prov >= BZ_LLM_PROV_MAX)
        return BZ_OK;
    char *text = NULL;
    size_t len = 0;
    int rc = bz_file_load(path, PROV_MAX_BYTES, name, &text, &len, err);
    if (rc)
        return rc;
    char *n = malloc(strlen(name) + 1);
    if (!n) {
        free(text);
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    }
    memcpy(n, name, strlen(name) + 1);
    llm->prov_name[llm->n_prov] = n;
    llm->prov_text[llm->n_prov++] = text;
    return BZ_OK;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void bz_llm_destroy(struct bz_llm *llm)
{
    if (!llm)
        return;
    bz_llm_drop_all(llm);
    bz_transport_destroy(llm->tr);
    size_t n = llm->reg ? llm->reg->n : 0;
    if (llm->keys)
        for (size_t i = 0; i < n; i++)
            if (llm->keys[i]) /* scrub: a core dump should not hold it either */
                memset(llm->keys[i], 0, strlen(llm->keys[i]));
    free_strv(llm->keys, n);
    if (llm->key_headers)
        for (size_t i = 0; i < n; i++)
            if (llm->key_headers[i])
                memset(llm->key_headers[i], 0, strlen(llm->key_headers[i]));
    free_strv(llm->key_headers, n);
    free_strv(llm->urls, n);
    free(llm->header_lines);
    free(llm->limits);
    bz_template_destroy(llm->system);
    if (llm->phase_tmpl)
        for (size_t i = 0; i < llm->ops->n_phases; i++)
            bz_template_destroy(llm->phase_tmpl[i]);
    free(llm->phase_tmpl);
    for (size_t i = 0; i < llm->n_prov; i++) {
        free(llm->prov_name[i]);
        free(llm->prov_text[i]);
    }
    bz_registry_destroy(llm->reg);
    for (int i = 0; i < BZ_LLM_SCHEMA_MEMO; i++) {
        free(llm->schema_memo[i].text);
        cJSON_free(llm->schema_memo[i].canon);
    }
    free(llm);
}

static char *dup_printf(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

cJSON *bz_llm_observation(const struct bz_game_ops *ops, struct bz_game *g,
                          const struct bz_request *r, struct bz_err *err)
{
    int agent = r->agent, phase = r->phase;
    cJSON *obs = cJSON_CreateObject();
    if (!obs) {
        bz_err_set(err, BZ_ENOMEM, "out of memory building an observation");
        return NULL;
    }
    if (ops->observe(g, r, obs, err)) {
        cJSON_Delete(obs);
        return NULL;
    }
    const char *schema = bz_game_schema_text(g, phase);
    if (!cJSON_GetObjectItemCaseSensitive(obs, "game"))
        cJSON_AddStringToObject(obs, "game", ops->name);
    if (!cJSON_GetObjectItemCaseSensitive(obs, "phase"))
        cJSON_AddStringToObject(obs, "phase",
                                (size_t)phase < ops->n_phases ? ops->phases[phase] : "");
    if (!cJSON_GetObjectItemCaseSensitive(obs, "agent"))
        cJSON_AddNumberToObject(obs, "agent", agent);
    if (!cJSON_GetObjectItemCaseSensitive(obs, "schema"))
        cJSON_AddStringToObject(obs, "schema", schema ? schema : "{}");
    return obs;
}

int bz_llm_render(const struct bz_llm *llm, struct bz_game *g, const struct bz_request *r,
                  char **system, char **user, int *turn, struct bz_err *err)
{
    int phase = r->phase;
    *system = *user = NULL;
    *turn = -1;
    if ((size_t)phase >= llm->ops->n_phases || !llm->phase_tmpl[phase])
        return bz_err_set(err, BZ_EINVAL, "%s: no prompt template for phase %d", llm->prompts_dir,
                          phase);
    cJSON *obs = bz_llm_observation(llm->ops, g, r, err);
    if (!obs)
        return err && err->code ? err->code : BZ_EINVAL;
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obs, "meta"), "turn");
    if (cJSON_IsNumber(t))
        *turn = (int)t->valuedouble;
    int rc = bz_template_render(llm->system, obs, system, err);
    if (!rc)
        rc = bz_template_render(llm->phase_tmpl[phase], obs, user, err);
    cJSON_Delete(obs);
    if (rc) {
        free(*system);
        free(*user);
        *system = *user = NULL;
    }
    return rc;
}

uint64_t bz_llm_sample_index(const struct bz_game_config *cfg, int agent)
{
    return ((uint64_t)(uint32_t)cfg->repetition << 32) | (uint32_t)agent;
}

/* Deep union of b into a (a's members win). */
static void merge_into(cJSON *a, const cJSON *b)
{
    for (const cJSON *it = b->child; it; it = it->next) {
        cJSON *have = cJSON_GetObjectItemCaseSensitive(a, it->string);
        if (!have)
            cJSON_AddItemToObject(a, it->string, cJSON_Duplicate(it, 1));
        else if (cJSON_IsObject(have) && cJSON_IsObject(it))
            merge_into(have, it);
    }
}

/* The prompt check's hook: keeps the first observation of each phase and
 * answers every decision with the fallback action. */
struct sample_ctx {
    const struct bz_game_ops *ops;
    cJSON **seen;
    cJSON *merged;
    int rc;
    struct bz_err err;
};

static int sample_submit(void *ctx, struct bz_match *m, const struct bz_request *r,
                         struct bz_err *err)
{
    (void)err;
    struct sample_ctx *c = ctx;
    struct bz_game *g = bz_match_game(m);
    if (!c->rc && (size_t)r->phase < c->ops->n_phases && !c->seen[r->phase]) {
        c->seen[r->phase] = bz_llm_observation(c->ops, g, r, &c->err);
        if (c->seen[r->phase])
            merge_into(c->merged, c->seen[r->phase]);
        else
            c->rc = c->err.code ? c->err.code : BZ_EINVAL;
    }
    int agent = r->agent, slot = r->slot;
    bz_game_fallback(g, agent, slot);
    bz_match_decided(m, agent, slot);
    return BZ_OK;
}

int bz_llm_load_prompts(struct bz_llm *llm, const char *dir,
                        const struct bz_game_config *sample_cfg, struct bz_err *err)
{
    const struct bz_game_ops *ops = llm->ops;
    int rc = BZ_OK;
    char path[1100];
    cJSON **seen = calloc(ops->n_phases, sizeof *seen);
    int *deciding = calloc(ops->n_phases, sizeof *deciding);
    cJSON *merged = cJSON_CreateObject();
    llm->phase_tmpl = calloc(ops->n_phases, sizeof *llm->phase_tmpl);
    if (!seen || !deciding || !merged || !llm->phase_tmpl) {
        rc = bz_err_set(err, BZ_ENOMEM, "out of memory loading prompts");
        goto out;
    }
    snprintf(llm->prompts_dir, sizeof llm->prompts_dir, "%s", dir);
    snprintf(path, sizeof path, "%s/system.txt", dir);
    if ((rc = bz_template_load(path, &llm->system, err)) ||
        (rc = add_provenance(llm, "template:system.txt", path, err)))
        goto out;

    /* Play a sample game with fallback actions, keeping one observation of
     * each phase, so templates are checked against what the game shows. */
    if (sample_cfg) {
        struct bz_game_config cfg = *sample_cfg;
        cfg.transcript = NULL;
        struct sample_ctx ctx = {.ops = ops, .seen = seen, .merged = merged};
        struct bz_llm_hook hook = {.ctx = &ctx, .submit = sample_submit, .all_agents = 1};
        struct bz_match *m = NULL;
        const char *msg = NULL;
        if ((rc = bz_match_create(&cfg, &hook, &m, err))) {
            bz_err_prefix(err, "playing a sample game to check the prompts");
            goto out;
        }
        for (size_t p = 0; p < ops->n_phases; p++)
            deciding[p] = bz_game_schema(bz_match_game(m), (int)p) != NULL;
        bz_match_set_max_steps(m, SAMPLE_MAX_STEPS);
        rc = bz_match_play(m, err);
        if (!rc && ctx.rc) {
            rc = ctx.rc;
            *err = ctx.err;
        } else if (!rc && bz_match_failed(m, &msg)) {
            rc = bz_err_set(err, BZ_EINVAL, "playing a sample game to check the prompts: %s", msg);
        }
        bz_match_destroy(m);
        if (rc)
            goto out;
    } else {
        for (size_t p = 0; p < ops->n_phases; p++)
            deciding[p] = 1;
    }
    for (size_t p = 0; p < ops->n_phases; p++) {
        if (!deciding[p])
            continue;
        snprintf(path, sizeof path, "%s/%s.txt", dir, ops->phases[p]);
        if ((rc = bz_template_load(path, &llm->phase_tmpl[p], err))) {
            bz_err_prefix(err, "phase '%s' of %s needs a prompt template", ops->phases[p],
                          ops->name);
            goto out;
        }
        char name[300];
        snprintf(name, sizeof name, "template:%s.txt", ops->phases[p]);
        if ((rc = add_provenance(llm, name, path, err)))
            goto out;
        const cJSON *obs = seen[p] ? seen[p] : merged;
        if (sample_cfg && (rc = bz_template_check(llm->phase_tmpl[p], obs, err)))
            goto out;
        if (seen[p] && (rc = bz_template_check(llm->system, seen[p], err)))
            goto out;
    }
out:
    if (seen)
        for (size_t p = 0; p < ops->n_phases; p++)
            cJSON_Delete(seen[p]);
    free(seen);
    free(deciding);
    cJSON_Delete(merged);
    return rc;
}

int bz_llm_create_from(const struct bz_llm_settings *set, const struct bz_llm_options *opt,
                       const struct bz_game_ops *ops, const struct bz_game_config *sample_cfg,
                       const char *const *model_ids, size_t n_model_ids, int need_keys,
                       double backoff_base_s, struct bz_llm **out, struct bz_err *err)
{
    int rc = BZ_OK;
    *out = NULL;
    struct bz_llm *llm = calloc(1, sizeof *llm);
    if (!llm)
        return bz_err_set(err, BZ_ENOMEM, "out of memory creating the LLM client");
    llm->set = *set;
    if (opt)
        llm->opt = *opt;
    llm->ops = ops;
    char path[1024];
    bz_llm_resolve_path(set->models_path, "sweeps/models.json", path, sizeof path);
    if ((rc = bz_registry_load(path, &llm->reg, err)) ||
        (rc = add_provenance(llm, "registry", path, err)))
        goto out;
    size_t n = llm->reg->n;
    llm->keys = calloc(n, sizeof *llm->keys);
    llm->key_headers = calloc(n, sizeof *llm->key_headers);
    llm->urls = calloc(n, sizeof *llm->urls);
    llm->header_lines = calloc(n * 4, sizeof *llm->header_lines);
    llm->limits = calloc(n, sizeof *llm->limits);
    if (!llm->keys || !llm->key_headers || !llm->urls || !llm->header_lines || !llm->limits)
        goto nomem;
    for (size_t i = 0; i < n_model_ids; i++) {
        int k = bz_registry_find(llm->reg, model_ids[i]);
        if (k < 0) {
            rc = bz_err_set(err, BZ_EINVAL, "%s: no model with id \"%s\" (named by a lineup)", path,
                            model_ids[i]);
            goto out;
        }
        const struct bz_model *m = &llm->reg->models[k];
        if (!need_keys || !m->api_key_env[0] || llm->keys[k])
            continue;
        const char *key = getenv(m->api_key_env);
        if (!key || !key[0]) {
            rc = bz_err_set(err, BZ_EINVAL,
                            "%s: model \"%s\" reads its API key from the "
                            "environment variable %s, which is not set",
                            path, m->id, m->api_key_env);
            goto out;
        }
        llm->keys[k] = dup_printf(key, "");
        if (!llm->keys[k])
            goto nomem;
    }
    for (size_t i = 0; i < n; i++) {
        const struct bz_model *m = &llm->reg->models[i];
        const char **h = &llm->header_lines[i * 4];
        int a = m->provider == BZ_PROVIDER_ANTHROPIC;
        llm->urls[i] = dup_printf(m->base_url, a ? "/messages" : "/chat/completions");
        if (!llm->urls[i])
            goto nomem;
        int nh = 0;
        h[nh++] = "Content-Type: application/json";
        if (a)
            h[nh++] = "anthropic-version: 2023-06-01";
        if (llm->keys[i]) {
            llm->key_headers[i] =
                dup_printf(a ? "x-api-key: " : "Authorization: Bearer ", llm->keys[i]);
            if (!llm->key_headers[i])
                goto nomem;
            h[nh++] = llm->key_headers[i];
        }
        h[nh] = NULL;
        llm->limits[i] =
            (struct bz_model_limits){m->rpm, m->tpm, m->max_concurrency, llm->urls[i], h, m->id};
    }
    struct bz_transport_opts to = {set->concurrency, set->timeout_s, set->max_retries,
                                   backoff_base_s,   60.0,           0x62617a616172ULL};
    if ((rc = bz_transport_create(&to, llm->limits, n, &llm->tr, err)))
        goto out;
    if (set->cache_dir[0]) {
        snprintf(llm->cache_dir, sizeof llm->cache_dir, "%s", set->cache_dir);
    } else if (llm->opt.replay) {
        rc = bz_err_set(err, BZ_EINVAL,
                        "--replay needs a response cache: llm.cache is empty in "
                        "the spec");
        goto out;
    }
    if (n_model_ids) {
        char dflt[600];
        snprintf(dflt, sizeof dflt, "prompts/%s", ops->name);
        char dir[1024];
        bz_llm_resolve_path(set->prompts_dir, dflt, dir, sizeof dir);
        if ((rc = bz_llm_load_prompts(llm, dir, sample_cfg, err)))
            goto out;
    }
    /* last, after every check: it creates the cache folder, and a refused
     * run must leave nothing behind */
    if (llm->cache_dir[0] && need_keys && (rc = bz_cache_open(llm->cache_dir, err)))
        goto out;
    *out = llm;
    return BZ_OK;
nomem:
    rc = bz_err_set(err, BZ_ENOMEM, "out of memory creating the LLM client");
out:
    bz_llm_destroy(llm);
    return rc;
}

int bz_llm_grid_models(const struct bz_grid *grid, char ***ids, size_t *n_ids,
                       struct bz_game_config *sample, struct bz_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    int64_t count = bz_grid_count(grid);
    const struct bz_agent_spec *last = NULL;
    int rc = BZ_OK;
    size_t cap = 0;
    for (int64_t id = 0; id < count; id++) {
        struct bz_game_config cfg;
        if ((rc = bz_grid_config(grid, id, &cfg, err)))
            return rc;
        if (id == 0)
            *sample = cfg;
        if (cfg.agents == last)
            continue;
        last = cfg.agents;
        for (int a = 0; a < cfg.n_agents; a++) {
            if (cfg.agents[a].kind != BZ_AGENT_LLM)
                continue;
            size_t k = 0;
            while (k < *n_ids && strcmp((*ids)[k], cfg.agents[a].policy) != 0)
                k++;
            if (k < *n_ids)
                continue;
            if (*n_ids == cap) {
                cap = cap ? 2 * cap : 8;
                char **p = realloc(*ids, cap * sizeof *p);
                if (!p)
                    return bz_err_set(err, BZ_ENOMEM, "out of memory");
                *ids = p;
            }
            (*ids)[*n_ids] = dup_printf(cfg.agents[a].policy, "");
            if (!(*ids)[*n_ids])
                return bz_err_set(err, BZ_ENOMEM, "out of memory");
            (*n_ids)++;
        }
    }
    return BZ_OK;
}

int bz_llm_create(const struct bz_spec *spec, const struct bz_llm_options *opt, struct bz_llm **out,
                  struct bz_err *err)
{
    *out = NULL;
    struct bz_grid *grid = NULL;
    char **ids = NULL;
    size_t n_ids = 0;
    struct bz_game_config sample;
    int rc = bz_grid_create(spec, &grid, err);
    if (!rc)
        rc = bz_llm_grid_models(grid, &ids, &n_ids, &sample, err);
    if (!rc)
        rc = bz_llm_create_from(bz_spec_llm(spec), opt, bz_spec_game(spec), &sample,
                                (const char *const *)ids, n_ids, 1, 0.5, out, err);
    free_strv(ids, n_ids);
    bz_grid_destroy(grid);
    return rc;
}

int bz_llm_poll(struct bz_llm *llm, int timeout_ms, struct bz_err *err)
{
    int rc = bz_transport_poll(llm->tr, timeout_ms, err);
    if (rc < 0)
        return -rc;
    if (llm->replay_misses) {
        int n = llm->replay_misses;
        llm->replay_misses = 0;
        if (n > 1)
            return bz_err_set(err, BZ_ENET, "%s (and %d more)", llm->replay_msg, n - 1);
        return bz_err_set(err, BZ_ENET, "%s", llm->replay_msg);
    }
    return BZ_OK;
}

void bz_llm_flush(struct bz_llm *llm)
{
    if (llm && llm->tr)
        bz_transport_flush(llm->tr);
}

int bz_llm_inflight(const struct bz_llm *llm)
{
    return llm->n_live;
}

void bz_llm_get_totals(const struct bz_llm *llm, struct bz_llm_totals *t)
{
    *t = llm->totals;
    t->retries = bz_transport_retries(llm->tr);
}
