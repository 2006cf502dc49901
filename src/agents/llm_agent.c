/* llm_agent: the LLM policy. Turns a match's decision request into prompts,
 * makes the model call through llm/'s request API (bazaar/llm_call.h), checks
 * the reply (JSON, then the game base: schema, parse, admissibility), sends
 * one repair prompt naming the error, else the game's fallback action;
 * records every call in /llm_calls and the match's usage. Never blocks, never
 * sees a key, never calls libcurl, never touches struct bz_llm's fields. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bazaar/llm.h"
#include "bazaar/llm_call.h"
#include "bazaar/match.h"

#define REPAIR_FMT                                                                                 \
    "Your reply could not be used: %s. Reply again with only a JSON object that follows "          \
    "the schema and the rules above."

struct bz_llm_decision {
    struct bz_llm *llm;
    struct bz_match *m;
    struct bz_llm_call *call;
    int agent, slot, phase, turn, model, attempt;
    char *system, *user;
    char *prev_reply; /* the rejected reply, for the repair prompt */
    char *repair;
    char schema_name[80];
};

static void decision_free(struct bz_llm_decision *d)
{
    bz_llm_call_free(d->call);
    free(d->system);
    free(d->user);
    free(d->prev_reply);
    free(d->repair);
    free(d);
}

/* One /llm_calls row; r NULL: no transfer happened. */
static void add_row(struct bz_llm_decision *d, const char *outcome, const char *decision,
                    const char *error, const struct bz_llm_reply *r, int64_t in_tok,
                    int64_t out_tok, double cost)
{
    struct bz_records *rec = bz_match_records(d->m);
    const struct bz_game_config *cfg = bz_match_config(d->m);
    struct bz_llm_calls_row *row = bz_records_add(rec, &bz_llm_calls_table);
    if (!row)
        return;
    int cache_hit = r && r->cache_hit;
    row->game_id = cfg->game_id;
    row->turn = d->turn;
    row->phase = cfg->ops->phases[d->phase];
    row->agent = d->agent;
    row->model = bz_records_strdup(rec, bz_llm_model_id(d->llm, d->model));
    row->attempt = d->attempt;
    row->latency_ms = cache_hit || !r ? 0 : r->latency_ms;
    row->input_tokens = in_tok;
    row->output_tokens = out_tok;
    row->cost_usd = cost;
    row->retries = cache_hit || !r ? 0 : r->retries;
    row->cache_hit = (uint8_t)(cache_hit != 0);
    row->http_status = cache_hit ? 200 : r ? (int32_t)r->http_status : 0;
    row->parse_outcome = outcome;
    row->decision = decision;
    row->error = bz_records_strdup(rec, error ? error : "");
    if (!cache_hit && r && r->attempts && strchr(r->attempts, ';')) {
        /* more than one attempt: every attempt's outcome, not only the last */
        char all[BZ_ERR_MSG_MAX];
        snprintf(all, sizeof all, "%s%sattempts: %s", error ? error : "",
                 error && error[0] ? "; " : "", r->attempts);
        row->error = bz_records_strdup(rec, all);
    }
}

static void fallback(struct bz_llm_decision *d)
{
    struct bz_match *m = d->m;
    int agent = d->agent, slot = d->slot;
    bz_game_fallback(bz_match_game(m), agent, slot);
    bz_match_usage(m)->n_fallback++;
    decision_free(d);
    bz_match_decided(m, agent, slot);
}

/* A failed reply: one repair prompt, then the fallback. */
static void reject(struct bz_llm_decision *d, const char *outcome, const char *why,
                   const char *content, const struct bz_llm_reply *r)
{
    struct bz_match_usage *u = bz_match_usage(d->m);
    u->n_invalid++;
    if (d->attempt == 0) {
        add_row(d, outcome, "", why, r, r->input_tokens, r->output_tokens, r->cost_usd);
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
            bz_llm_call_send(d->call, d->prev_reply, d->repair);
            return;
        }
        free(rep);
        free(prev);
        add_row(d, "internal", "fallback", "out of memory building the repair prompt", NULL, 0, 0,
                0);
        fallback(d);
        return;
    }
    add_row(d, outcome, "fallback", why, r, r->input_tokens, r->output_tokens, r->cost_usd);
    fallback(d);
}

/* llm/ reports a reply (or a failure) of the decision's call. */
static void on_reply(void *ctx, struct bz_llm_call *c, const struct bz_llm_reply *r)
{
    (void)c;
    struct bz_llm_decision *d = ctx;
    struct bz_match_usage *u = bz_match_usage(d->m);
    if (!r->ok) {
        if (r->counted)
            u->llm_calls++;
        add_row(d, r->outcome, "fallback", r->error, r, 0, 0, 0);
        fallback(d);
        return;
    }
    u->llm_calls++;
    u->input_tokens += r->input_tokens;
    u->output_tokens += r->output_tokens;
    u->cost_nano_usd += llround(r->cost_usd * 1e9);
    if (r->cache_hit)
        u->cache_hits++;

    char why[BZ_ERR_MSG_MAX];
    const char *outcome = NULL;
    cJSON *action = NULL;
    if (r->refusal) {
        outcome = "refusal";
        snprintf(why, sizeof why, "the model refused: %.200s", r->content);
    } else if (!(action = bz_llm_extract_json(r->content))) {
        outcome = r->truncated ? "truncated" : "invalid_json";
        snprintf(why, sizeof why, "%s",
                 r->truncated ? "the reply was cut off at the token limit"
                              : "the reply is not a JSON object");
    } else {
        struct bz_err e = {0};
        enum bz_answer_fault fault;
        if (bz_game_answer(bz_match_game(d->m), d->agent, d->slot, action, &fault, &e)) {
            outcome = fault == BZ_ANSWER_SCHEMA ? "schema" : "inadmissible";
            snprintf(why, sizeof why, "%s", e.msg);
        }
    }
    cJSON_Delete(action);
    if (outcome) {
        reject(d, outcome, why, r->content, r);
        return;
    }
    const char *ok = d->attempt ? "repaired" : "ok";
    add_row(d, ok, ok, "", r, r->input_tokens, r->output_tokens, r->cost_usd);
    struct bz_match *m = d->m;
    int agent = d->agent, slot = d->slot;
    decision_free(d);
    bz_match_decided(m, agent, slot);
}

/* The call was dropped (the match is abandoned, or the rank's LLM state is
 * destroyed): no callback may touch the match any more. */
static void on_drop(void *ctx, struct bz_llm_call *c)
{
    (void)c;
    decision_free(ctx);
}

static int submit(void *ctx, struct bz_match *m, const struct bz_request *r, struct bz_err *err)
{
    struct bz_llm *llm = ctx;
    const struct bz_game_config *cfg = bz_match_config(m);
    int agent = r->agent, phase = r->phase;
    int model = bz_llm_model_index(llm, cfg->agents[agent].policy);
    if (model < 0)
        return bz_err_set(err, BZ_EINVAL, "no model \"%s\" in the registry",
                          cfg->agents[agent].policy);
    struct bz_llm_decision *d = calloc(1, sizeof *d);
    if (!d)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    d->llm = llm;
    d->m = m;
    d->agent = agent;
    d->slot = r->slot;
    d->phase = phase;
    d->model = model;
    d->turn = -1;
    struct bz_err rerr = {0};
    if (bz_llm_render(llm, bz_match_game(m), r, &d->system, &d->user, &d->turn, &rerr)) {
        add_row(d, "render_error", "fallback", rerr.msg, NULL, 0, 0, 0);
        fallback(d);
        return BZ_OK;
    }
    snprintf(d->schema_name, sizeof d->schema_name, "%s_action", cfg->ops->phases[phase]);
    char label[160];
    snprintf(label, sizeof label, "game %lld, agent %d, phase %s", (long long)cfg->game_id, agent,
             cfg->ops->phases[phase]);
    struct bz_llm_call_opts o = {
        .model = model,
        .system = d->system,
        .user = d->user,
        .schema_text = bz_game_schema_text(bz_match_game(m), phase),
        .schema_name = d->schema_name,
        .sample = bz_llm_sample_index(cfg, agent) ^ (uint64_t)r->slot * 0x9e3779b97f4a7c15ULL,
        .owner = m,
        .label = label,
        .done = on_reply,
        .drop = on_drop,
        .ctx = d,
    };
    if (!(d->call = bz_llm_call_new(llm, &o))) {
        add_row(d, "internal", "fallback", "out of memory", NULL, 0, 0, 0);
        fallback(d);
        return BZ_OK;
    }
    bz_llm_call_send(d->call, NULL, NULL);
    return BZ_OK;
}

struct bz_llm_hook bz_llm_hook(struct bz_llm *llm)
{
    struct bz_llm_hook h = {llm, submit, 0};
    return h;
}
