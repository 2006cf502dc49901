/* llm_agent: the LLM policy. Turns a match's decision request into a prompt,
 * asks the cache or the transport, checks the reply (JSON, schema, the game's
 * parse_action), sends one repair prompt naming the error, else sets the
 * game's fallback action; records every call in /llm_calls and the match's
 * usage. Never blocks, never sees a key, never calls libcurl. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "llm/llm_internal.h"

#define LLM_CALLS_COL(f, t) BZ_COL(struct bz_llm_calls_row, f, t)
static const struct bz_column llm_calls_cols[] = {
    LLM_CALLS_COL(game_id, BZ_COL_I64),       LLM_CALLS_COL(turn, BZ_COL_I32),
    LLM_CALLS_COL(phase, BZ_COL_STR),         LLM_CALLS_COL(agent, BZ_COL_I32),
    LLM_CALLS_COL(model, BZ_COL_STR),         LLM_CALLS_COL(attempt, BZ_COL_I32),
    LLM_CALLS_COL(latency_ms, BZ_COL_F64),    LLM_CALLS_COL(input_tokens, BZ_COL_I64),
    LLM_CALLS_COL(output_tokens, BZ_COL_I64), LLM_CALLS_COL(cost_usd, BZ_COL_F64),
    LLM_CALLS_COL(retries, BZ_COL_I32),       LLM_CALLS_COL(cache_hit, BZ_COL_U8),
    LLM_CALLS_COL(http_status, BZ_COL_I32),   LLM_CALLS_COL(parse_outcome, BZ_COL_STR),
    LLM_CALLS_COL(decision, BZ_COL_STR),      LLM_CALLS_COL(error, BZ_COL_STR),
};
const struct bz_table_desc bz_llm_calls_table = {"/llm_calls", sizeof(struct bz_llm_calls_row),
                                                 sizeof llm_calls_cols / sizeof llm_calls_cols[0],
                                                 llm_calls_cols};

#define REPAIR_FMT                                                                                 \
    "Your reply could not be used: %s. Reply again with only a JSON object that follows "          \
    "the schema and the rules above."

struct bz_llm_decision {
    struct bz_xfer x; /* first member: done() gets it back */
    struct bz_llm *llm;
    struct bz_match *m;
    int agent, phase, turn, model, attempt;
    uint64_t sample;
    char *system, *user;
    char *prev_reply; /* the rejected reply, for the repair prompt */
    char *repair;
    char key[BZ_CACHE_KEY_HEX];
    struct bz_llm_decision *prev, *next; /* llm->live */
};

static void live_add(struct bz_llm *llm, struct bz_llm_decision *d)
{
    d->prev = NULL;
    d->next = llm->live;
    if (llm->live)
        llm->live->prev = d;
    llm->live = d;
    llm->n_live++;
}

static void decision_free(struct bz_llm_decision *d)
{
    struct bz_llm *llm = d->llm;
    if (d->prev)
        d->prev->next = d->next;
    else if (llm->live == d)
        llm->live = d->next;
    if (d->next)
        d->next->prev = d->prev;
    llm->n_live--;
    free(d->x.body);
    free(d->x.reply);
    free(d->system);
    free(d->user);
    free(d->prev_reply);
    free(d->repair);
    free(d);
}

/* Copy src into dst (cap bytes) replacing any occurrence of the model's key:
 * error bodies may echo it, and /llm_calls must never hold one. */
static void redact(const struct bz_llm *llm, int model, const char *src, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", src);
    const char *key = llm->keys ? llm->keys[model] : NULL;
    if (!key || strlen(key) < 4)
        return;
    size_t kl = strlen(key);
    char *p;
    while ((p = strstr(dst, key)))
        memset(p, '*', kl);
    for (char *c = dst; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
}

static void add_row(struct bz_llm_decision *d, const char *outcome, const char *decision,
                    const char *error, int cache_hit, int64_t in_tok, int64_t out_tok, double cost)
{
    struct bz_records *rec = bz_match_records(d->m);
    const struct bz_game_config *cfg = bz_match_config(d->m);
    struct bz_llm_calls_row *r = bz_records_add(rec, &bz_llm_calls_table);
    if (!r)
        return;
    r->game_id = cfg->game_id;
    r->turn = d->turn;
    r->phase = cfg->ops->phases[d->phase];
    r->agent = d->agent;
    r->model = bz_records_strdup(rec, d->llm->reg->models[d->model].id);
    r->attempt = d->attempt;
    r->latency_ms = cache_hit ? 0 : d->x.latency_ms;
    r->input_tokens = in_tok;
    r->output_tokens = out_tok;
    r->cost_usd = cost;
    r->retries = cache_hit ? 0 : d->x.retries;
    r->cache_hit = (uint8_t)(cache_hit != 0);
    r->http_status = cache_hit ? 200 : (int32_t)d->x.http_status;
    r->parse_outcome = outcome;
    r->decision = decision;
    r->error = bz_records_strdup(rec, error ? error : "");
    if (!cache_hit && strchr(d->x.attempts, ';')) { /* more than one attempt */
        /* every attempt's outcome, not only the last (issue 15) */
        char all[BZ_ERR_MSG_MAX];
        snprintf(all, sizeof all, "%s%sattempts: %s", error ? error : "",
                 error && error[0] ? "; " : "", d->x.attempts);
        r->error = bz_records_strdup(rec, all);
    }
}

static void fallback(struct bz_llm_decision *d)
{
    struct bz_match *m = d->m;
    int agent = d->agent;
    bz_match_config(m)->ops->fallback_action(bz_match_game(m), agent);
    bz_match_usage(m)->n_fallback++;
    decision_free(d);
    bz_match_decided(m, agent);
}

static void send_decision(struct bz_llm_decision *d);

/* A failed reply: one repair prompt, then the fallback. */
static void reject(struct bz_llm_decision *d, const char *outcome, const char *why,
                   const char *content, int cache_hit, int64_t in, int64_t out, double cost)
{
    struct bz_match_usage *u = bz_match_usage(d->m);
    u->n_invalid++;
    if (d->attempt == 0) {
        add_row(d, outcome, "", why, cache_hit, in, out, cost);
        size_t n = strlen(why) + sizeof REPAIR_FMT + 1;
        char *rep = malloc(n);
        char *prev = malloc(strlen(content) + 1);
        if (rep && prev) {
            snprintf(rep, n, REPAIR_FMT, why);
            memcpy(prev, content, strlen(content) + 1);
            free(d->repair);
            free(d->prev_reply);
            d->repair = rep;
            d->prev_reply = prev;
            d->attempt = 1;
            u->n_repair++;
            send_decision(d);
            return;
        }
        free(rep);
        free(prev);
        add_row(d, "internal", "fallback", "out of memory building the repair prompt", 0, 0, 0, 0);
        fallback(d);
        return;
    }
    add_row(d, outcome, "fallback", why, cache_hit, in, out, cost);
    fallback(d);
}

/* A 2xx reply body (from the network or the cache). */
static void finish_reply(struct bz_llm_decision *d, const char *body, size_t len, int cache_hit)
{
    struct bz_llm *llm = d->llm;
    const struct bz_model *mod = &llm->reg->models[d->model];
    struct bz_provider_reply rp;
    struct bz_err perr = {0};
    if (bz_provider_parse(mod, body, len, &rp, &perr)) {
        /* Not the provider's envelope (a proxy page, a cut body): a transport
         * fault, retried like one; never cached. */
        char why[300];
        snprintf(why, sizeof why, "malformed reply: %.250s", perr.msg);
        if (!cache_hit && bz_transport_retry(llm->tr, &d->x, why))
            return;
        add_row(d, "bad_response", "fallback", why, cache_hit, 0, 0, 0);
        bz_match_usage(d->m)->llm_calls++;
        fallback(d);
        return;
    }
    if (!cache_hit && llm->cache_dir[0]) {
        struct bz_err cerr = {0};
        if (bz_cache_put(llm->cache_dir, d->key, body, len, &cerr) && !llm->cache_warned) {
            fprintf(stderr, "bazaar: warning: %s (the sweep goes on uncached)\n", cerr.msg);
            llm->cache_warned = 1;
        }
    }
    double cost = ((double)rp.input_tokens * mod->price_in_per_mtok +
                   (double)rp.output_tokens * mod->price_out_per_mtok) /
                  1e6;
    struct bz_match_usage *u = bz_match_usage(d->m);
    u->llm_calls++;
    u->input_tokens += rp.input_tokens;
    u->output_tokens += rp.output_tokens;
    u->cost_nano_usd += llround(cost * 1e9);
    if (cache_hit) {
        u->cache_hits++;
        llm->totals.cache_hits++;
    } else {
        llm->totals.calls++;
        llm->totals.input_tokens += rp.input_tokens;
        llm->totals.output_tokens += rp.output_tokens;
        llm->totals.cost_usd += cost;
        bz_transport_charge(llm->tr, d->model, d->x.est_tokens, rp.input_tokens + rp.output_tokens);
    }

    const struct bz_game_ops *ops = bz_match_config(d->m)->ops;
    struct bz_game *g = bz_match_game(d->m);
    char why[BZ_ERR_MSG_MAX];
    const char *outcome = NULL;
    cJSON *action = NULL, *schema = NULL;
    if (rp.refusal) {
        outcome = "refusal";
        snprintf(why, sizeof why, "the model refused: %.200s", rp.content);
    } else if (!(action = bz_provider_extract_json(rp.content))) {
        outcome = rp.truncated ? "truncated" : "invalid_json";
        snprintf(why, sizeof why, "%s",
                 rp.truncated ? "the reply was cut off at the token limit"
                              : "the reply is not a JSON object");
    } else {
        const char *st = ops->action_schema(g, d->phase);
        struct bz_err e = {0};
        schema = st ? cJSON_Parse(st) : NULL;
        if (schema && bz_schema_check(schema, action, &e)) {
            outcome = "schema";
            snprintf(why, sizeof why, "%s", e.msg);
        } else if (ops->parse_action(g, d->agent, action, &e)) {
            outcome = "inadmissible";
            snprintf(why, sizeof why, "%s", e.msg);
        }
    }
    cJSON_Delete(action);
    cJSON_Delete(schema);
    if (outcome) {
        reject(d, outcome, why, rp.content, cache_hit, rp.input_tokens, rp.output_tokens, cost);
        free(rp.content);
        return;
    }
    free(rp.content);
    const char *ok = d->attempt ? "repaired" : "ok";
    add_row(d, ok, ok, "", cache_hit, rp.input_tokens, rp.output_tokens, cost);
    struct bz_match *m = d->m;
    int agent = d->agent;
    decision_free(d);
    bz_match_decided(m, agent);
}

/* Transport finished (after its retries). */
static void on_done(struct bz_xfer *x)
{
    struct bz_llm_decision *d = (struct bz_llm_decision *)x;
    struct bz_llm *llm = d->llm;
    if (x->result == BZ_XFER_OK) {
        finish_reply(d, x->reply ? x->reply : "", x->reply_len, 0);
        return;
    }
    char why[400];
    const char *outcome = x->result == BZ_XFER_HTTP     ? "http_error"
                          : x->result == BZ_XFER_TOOBIG ? "too_big"
                                                        : "network";
    if (x->result == BZ_XFER_HTTP) {
        char body[200] = "";
        long st = x->http_status;
        if (st == 401 || st == 403)
            snprintf(body, sizeof body, "the key in $%s was refused",
                     llm->reg->models[d->model].api_key_env);
        else if (x->reply)
            redact(llm, d->model, x->reply, body, sizeof body);
        snprintf(why, sizeof why, "HTTP %ld after %d retries: %s", st, x->retries, body);
        /* Non-retryable client errors: said once per model and status. */
        int retryable = st == 408 || st == 409 || st == 425 || st == 429 || st >= 500;
        if (!retryable) {
            int seen = 0, code = (int)(st * 1000 + d->model);
            for (int i = 0; i < llm->n_reported && i < 8; i++)
                seen |= llm->reported_status[i] == code;
            if (!seen) {
                fprintf(stderr,
                        "bazaar: model %s (%s): %s; decisions fall back to the game's "
                        "safe action; further such errors are recorded in /llm_calls only\n",
                        llm->reg->models[d->model].id, llm->urls[d->model], why);
                if (llm->n_reported < 8)
                    llm->reported_status[llm->n_reported++] = code;
            }
        }
    } else {
        snprintf(why, sizeof why, "%s after %d retries", x->error, x->retries);
    }
    bz_match_usage(d->m)->llm_calls++;
    add_row(d, outcome, "fallback", why, 0, 0, 0, 0);
    fallback(d);
}

static int build_body(struct bz_llm_decision *d, struct bz_err *err)
{
    struct bz_llm *llm = d->llm;
    const struct bz_model *mod = &llm->reg->models[d->model];
    const struct bz_game_ops *ops = llm->ops;
    struct bz_chat_msg msgs[4] = {{"system", d->system}, {"user", d->user}};
    int n = 2;
    if (d->attempt) {
        msgs[n++] = (struct bz_chat_msg){"assistant", d->prev_reply};
        msgs[n++] = (struct bz_chat_msg){"user", d->repair};
    }
    char name[80];
    snprintf(name, sizeof name, "%s_action", ops->phases[d->phase]);
    const char *schema = ops->action_schema(bz_match_game(d->m), d->phase);
    free(d->x.body);
    d->x.body = NULL;
    int rc = bz_provider_build(mod, msgs, n, schema, name, llm->set.temperature,
                               llm->set.max_output_tokens, &d->x.body, err);
    if (rc)
        return rc;
    int max_out = mod->max_output_tokens > 0 ? mod->max_output_tokens : llm->set.max_output_tokens;
    d->x.est_tokens = (int64_t)strlen(d->x.body) / 4 + max_out;
    bz_cache_key(mod, d->x.body, d->sample, d->key);
    return BZ_OK;
}

/* Ask the cache, else queue (or refuse in replay mode). May finish d. */
static void send_decision(struct bz_llm_decision *d)
{
    struct bz_llm *llm = d->llm;
    struct bz_err err = {0};
    if (build_body(d, &err)) {
        add_row(d, "internal", "fallback", err.msg, 0, 0, 0, 0);
        fallback(d);
        return;
    }
    if (llm->cache_dir[0]) {
        char *body = NULL;
        size_t len = 0;
        if (bz_cache_get(llm->cache_dir, d->key, &body, &len)) {
            finish_reply(d, body, len, 1);
            free(body);
            return;
        }
    }
    if (llm->opt.replay) {
        const struct bz_game_config *cfg = bz_match_config(d->m);
        snprintf(llm->replay_msg, sizeof llm->replay_msg,
                 "replay: no cached reply for game %lld, agent %d, phase %s (model %s); the "
                 "decision fell back",
                 (long long)cfg->game_id, d->agent, cfg->ops->phases[d->phase],
                 llm->reg->models[d->model].id);
        llm->replay_misses++;
        if (llm->totals.replay_misses++ == 0) /* said at once: submit may never wait */
            fprintf(stderr,
                    "bazaar: %s; further misses are recorded in /llm_calls "
                    "(parse_outcome replay_miss)\n",
                    llm->replay_msg);
        add_row(d, "replay_miss", "fallback", "not in the cache (--replay)", 0, 0, 0, 0);
        fallback(d);
        return;
    }
    bz_transport_submit(llm->tr, &d->x);
}

int bz_llm_agent_submit(void *ctx, struct bz_match *m, int agent, int phase, struct bz_err *err)
{
    struct bz_llm *llm = ctx;
    const struct bz_game_config *cfg = bz_match_config(m);
    int model = bz_registry_find(llm->reg, cfg->agents[agent].policy);
    if (model < 0)
        return bz_err_set(err, BZ_EINVAL, "no model \"%s\" in the registry",
                          cfg->agents[agent].policy);
    struct bz_llm_decision *d = calloc(1, sizeof *d);
    if (!d)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    d->llm = llm;
    d->m = m;
    d->agent = agent;
    d->phase = phase;
    d->model = model;
    d->turn = -1;
    d->sample = bz_llm_sample_index(cfg, agent);
    d->x.model = model;
    d->x.done = on_done;
    live_add(llm, d);
    struct bz_err rerr = {0};
    if (bz_llm_render(llm, bz_match_game(m), agent, phase, &d->system, &d->user, &d->turn, &rerr)) {
        add_row(d, "render_error", "fallback", rerr.msg, 0, 0, 0, 0);
        fallback(d);
        return BZ_OK;
    }
    send_decision(d);
    return BZ_OK;
}

void bz_llm_agent_cancel(struct bz_llm *llm, struct bz_match *m)
{
    struct bz_llm_decision *d = llm->live;
    while (d) {
        struct bz_llm_decision *next = d->next;
        if (d->m == m) {
            bz_transport_remove(llm->tr, &d->x);
            decision_free(d);
        }
        d = next;
    }
}

void bz_llm_agent_destroy_all(struct bz_llm *llm)
{
    while (llm->live) {
        if (llm->tr)
            bz_transport_remove(llm->tr, &llm->live->x);
        decision_free(llm->live);
    }
}
