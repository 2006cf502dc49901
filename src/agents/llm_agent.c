/* llm_agent: the LLM policy. Turns a match's decision request into prompts,
 * makes the model call through llm/'s request API (bazaar/llm_call.h), checks
 * the reply (JSON, then the game base: schema, parse, admissibility), sends
 * one repair prompt naming the error, else the game's fallback action;
 * records every call in /llm_calls, its words in /llm_texts (content-
 * addressed, once per game, with the registry and templates used) and the
 * match's usage. Memory (the game's llm.memory_turns = k): the agent's own exchanges of
 * its last k turns (prompt and the reply that decided, oldest first, at most
 * llm.memory_max_tokens x 4 bytes, oldest dropped first) go before the
 * prompt as chat history; they are read back from the game's own /llm_calls
 * and /llm_texts rows, so every game gets memory without a change and a
 * game's history never depends on another game. Reasoning (llm.reasoning):
 * an optional "reasoning" string first in every reply schema, stored in
 * /llm_calls and removed before the game sees the action. Never blocks,
 * never sees a key, never calls libcurl, never touches struct bz_llm's
 * fields. */
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
    char *schema;         /* reply schema with the reasoning field (llm.reasoning), else NULL */
    char *reasoning;      /* the current reply's reasoning field, else NULL */
    const char **history; /* chat history texts (records' strings), user/assistant pairs */
    int n_history;
    const char *history_col; /* their /llm_texts hashes, for /llm_calls */
    char schema_name[80];
};

static void decision_free(struct bz_llm_decision *d)
{
    bz_llm_call_free(d->call);
    free(d->system);
    free(d->user);
    free(d->prev_reply);
    free(d->repair);
    free(d->schema);
    free(d->reasoning);
    free(d->history);
    free(d);
}

/* Append a /llm_texts row; its hash string, NULL when memory runs out. */
static const char *add_text(struct bz_records *rec, int64_t game_id, const char *kind,
                            const char *text, const char *hex)
{
    struct bz_llm_texts_row *row = bz_records_add(rec, &bz_llm_texts_table);
    if (!row)
        return NULL;
    row->game_id = game_id;
    row->kind = kind;
    row->hash = bz_records_strdup(rec, hex);
    row->text = bz_records_strdup(rec, text);
    return row->hash;
}

/* The /llm_texts hash of text in this game's records, adding the row on its
 * first use (the run's provenance texts, the registry and the templates, go
 * in before a game's first text). "" for NULL; NULL when memory runs out. */
static const char *text_ref(struct bz_llm *llm, struct bz_records *rec, int64_t game_id,
                            const char *kind, const char *text)
{
    if (!text)
        return "";
    char hex[BZ_LLM_TEXT_HASH_HEX];
    const struct bz_rowbuf *rb = bz_records_find(rec, &bz_llm_texts_table);
    if (!rb || rb->n_rows == 0) {
        const char *name, *t;
        for (size_t i = 0; bz_llm_provenance(llm, i, &name, &t); i++) {
            bz_llm_text_hash(t, hex);
            add_text(rec, game_id, name, t, hex);
        }
        rb = bz_records_find(rec, &bz_llm_texts_table);
    }
    bz_llm_text_hash(text, hex);
    for (size_t i = 0; rb && i < rb->n_rows; i++) {
        struct bz_llm_texts_row *row = (void *)(rb->data + i * sizeof(struct bz_llm_texts_row));
        if (row->hash && memcmp(row->hash, hex, BZ_LLM_TEXT_HASH_HEX - 1) == 0) {
            /* one text in two roles: the kind must not depend on which
             * reply came back first (replies complete in any order) */
            if (strcmp(kind, row->kind) < 0)
                row->kind = kind;
            return row->hash;
        }
    }
    return add_text(rec, game_id, kind, text, hex);
}

/* The text under hash in this game's /llm_texts, or NULL. */
static const char *text_of(const struct bz_records *rec, const char *hash)
{
    const struct bz_rowbuf *rb = bz_records_find(rec, &bz_llm_texts_table);
    for (size_t i = 0; rb && hash && hash[0] && i < rb->n_rows; i++) {
        const struct bz_llm_texts_row *row =
            (const void *)(rb->data + i * sizeof(struct bz_llm_texts_row));
        if (strcmp(row->hash, hash) == 0)
            return row->text;
    }
    return NULL;
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
    /* the transcript: texts by content address (they may move the row) */
    int64_t game_id = cfg->game_id;
    const char *sys = text_ref(d->llm, rec, game_id, "system", d->system);
    const char *prompt = text_ref(d->llm, rec, game_id, "prompt", d->user);
    const char *rep = d->attempt ? text_ref(d->llm, rec, game_id, "repair", d->repair) : "";
    const char *reply =
        r && r->ok && r->content ? text_ref(d->llm, rec, game_id, "reply", r->content) : "";
    const struct bz_rowbuf *rb = bz_records_find(rec, &bz_llm_calls_table);
    row = (struct bz_llm_calls_row *)(rb->data + (rb->n_rows - 1) * sizeof *row);
    row->system_text = sys ? sys : "";
    row->prompt_text = prompt ? prompt : "";
    row->repair_text = rep ? rep : "";
    row->reply_text = reply ? reply : "";
    row->history = d->history_col ? d->history_col : "";
    row->memory_turns = cfg->memory_turns;
    row->cached_input_tokens = r && r->ok ? r->cached_input_tokens : 0;
    row->model_version =
        bz_records_strdup(rec, r && r->ok && r->model_version ? r->model_version : "");
    row->reasoning = bz_records_strdup(rec, d->reasoning ? d->reasoning : "");
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

#define REASONING_MAX 8000 /* bytes of reasoning kept per reply */

/* llm.reasoning: move the reply's "reasoning" string out of the action (the
 * game never sees it). */
static void take_reasoning(struct bz_llm_decision *d, cJSON *action)
{
    free(d->reasoning);
    d->reasoning = NULL;
    if (!bz_llm_settings(d->llm)->reasoning || !cJSON_IsObject(action))
        return;
    cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(action, "reasoning");
    if (cJSON_IsString(it)) {
        size_t n = strlen(it->valuestring);
        n = n > REASONING_MAX ? REASONING_MAX : n;
        if ((d->reasoning = malloc(n + 1))) {
            memcpy(d->reasoning, it->valuestring, n);
            d->reasoning[n] = '\0';
        }
    }
    cJSON_Delete(it);
}

/* The phase's schema with an optional free-text "reasoning" property first
 * (malloc'd), or NULL to use the game's as it is. */
static char *schema_with_reasoning(const char *schema_text)
{
    cJSON *s = schema_text ? cJSON_Parse(schema_text) : NULL;
    cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    char *out = NULL;
    if (cJSON_IsObject(props) && !cJSON_GetObjectItemCaseSensitive(props, "reasoning")) {
        cJSON *r = cJSON_CreateObject();
        if (r && cJSON_AddStringToObject(r, "type", "string") &&
            cJSON_AddStringToObject(r, "description",
                                    "optional: your reasoning, in a few sentences, before the "
                                    "decision; never read as part of the action")) {
            r->string = malloc(sizeof "reasoning");
            if (r->string) {
                memcpy(r->string, "reasoning", sizeof "reasoning");
                r->next = props->child; /* first property */
                if (props->child) {
                    r->prev = props->child->prev;
                    props->child->prev = r;
                } else {
                    r->prev = r;
                }
                props->child = r;
                r = NULL;
                out = cJSON_PrintUnformatted(s);
            }
        }
        cJSON_Delete(r);
    }
    cJSON_Delete(s);
    return out;
}

/* llm.memory_turns: the agent's decided exchanges of its last k turns from
 * this game's records, oldest first, bounded by memory_max_tokens. */
struct past {
    int turn, phase;
    const char *prompt_hash, *reply_hash, *prompt, *reply;
};

static int past_cmp(const void *a, const void *b)
{
    const struct past *x = a, *y = b;
    if (x->turn != y->turn)
        return x->turn < y->turn ? -1 : 1;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    return strcmp(x->prompt_hash, y->prompt_hash);
}

static void build_history(struct bz_llm_decision *d)
{
    const struct bz_llm_settings *set = bz_llm_settings(d->llm);
    const struct bz_game_config *cfg = bz_match_config(d->m);
    int k = cfg->memory_turns; /* the game's own: a grid may vary it */
    if (k <= 0 || d->turn < 0)
        return;
    struct bz_records *rec = bz_match_records(d->m);
    const struct bz_rowbuf *rb = bz_records_find(rec, &bz_llm_calls_table);
    if (!rb || rb->n_rows == 0)
        return;
    struct past *p = malloc(rb->n_rows * sizeof *p);
    if (!p)
        return;
    size_t n = 0;
    for (size_t i = 0; i < rb->n_rows; i++) {
        const struct bz_llm_calls_row *row =
            (const void *)(rb->data + i * sizeof(struct bz_llm_calls_row));
        if (row->agent != d->agent || row->turn >= d->turn || row->turn < d->turn - k ||
            (strcmp(row->decision, "ok") != 0 && strcmp(row->decision, "repaired") != 0))
            continue;
        const char *pt = text_of(rec, row->prompt_text), *rt = text_of(rec, row->reply_text);
        if (!pt || !rt)
            continue;
        int ph = 0;
        while ((size_t)ph < cfg->ops->n_phases && strcmp(cfg->ops->phases[ph], row->phase) != 0)
            ph++;
        p[n++] = (struct past){row->turn, ph, row->prompt_text, row->reply_text, pt, rt};
    }
    qsort(p, n, sizeof *p, past_cmp);
    /* newest first into the bound, then oldest first into the request */
    size_t budget = (size_t)set->memory_max_tokens * 4, used = 0, first = n;
    while (first > 0) {
        size_t sz = strlen(p[first - 1].prompt) + strlen(p[first - 1].reply);
        if (used + sz > budget)
            break;
        used += sz;
        first--;
    }
    size_t m = n - first;
    if (m > 0 && (d->history = malloc(2 * m * sizeof *d->history))) {
        char *col = malloc(m * 2 * BZ_LLM_TEXT_HASH_HEX + 1);
        size_t off = 0;
        for (size_t i = 0; i < m; i++) {
            d->history[2 * i] = p[first + i].prompt;
            d->history[2 * i + 1] = p[first + i].reply;
            if (col)
                off += (size_t)sprintf(col + off, "%s%s %s", i ? " " : "", p[first + i].prompt_hash,
                                       p[first + i].reply_hash);
        }
        d->n_history = (int)(2 * m);
        d->history_col = col ? bz_records_strdup(rec, col) : "";
        free(col);
    }
    free(p);
}

/* llm/ reports a reply (or a failure) of the decision's call. */
static void on_reply(void *ctx, struct bz_llm_call *c, const struct bz_llm_reply *r)
{
    (void)c;
    struct bz_llm_decision *d = ctx;
    struct bz_match_usage *u = bz_match_usage(d->m);
    free(d->reasoning);
    d->reasoning = NULL;
    if (!r->ok) {
        if (r->counted)
            u->llm_calls++;
        add_row(d, r->outcome, "fallback", r->error, r, 0, 0, 0);
        fallback(d);
        return;
    }
    u->llm_calls++;
    u->input_tokens += r->input_tokens;
    u->cached_input_tokens += r->cached_input_tokens;
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
        take_reasoning(d, action);
        struct bz_err e = {0};
        enum bz_answer_fault fault;
        if (bz_game_answer(bz_match_game(d->m), d->agent, d->slot, action, &fault, &e)) {
            outcome = fault == BZ_ANSWER_SCHEMA ? "schema" : "inadmissible";
            snprintf(why, sizeof why, "%s", e.msg);
        }
    }
    cJSON_Delete(action);
    action = NULL;
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
    const char *schema = bz_game_schema_text(bz_match_game(m), phase);
    if (bz_llm_settings(llm)->reasoning && (d->schema = schema_with_reasoning(schema)))
        schema = d->schema;
    build_history(d);
    char label[160];
    snprintf(label, sizeof label, "game %lld, agent %d, phase %s", (long long)cfg->game_id, agent,
             cfg->ops->phases[phase]);
    struct bz_llm_call_opts o = {
        .model = model,
        .system = d->system,
        .user = d->user,
        .history = d->history,
        .n_history = d->n_history,
        .schema_text = schema,
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
