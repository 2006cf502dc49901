/* estimate: `bazaar expand`'s token and cost estimate of an LLM sweep. Plays
 * sampled games of the grid with fallback actions, renders every LLM
 * decision's prompts as a run would, and prices them from the registry, with
 * the chat history of each llm.memory_turns value of the grid and the
 * providers' prompt caching. Never opens a network connection, reads no key,
 * writes nothing.
 *
 * The cache model (an estimate, printed with the result): Anthropic (with the
 * cache_control breakpoints call.c sets on the system prompt and the end of
 * the history) and OpenAI (automatic) both serve from their cache the longest
 * prefix a request shares with an earlier one, tools/reply schema first, then
 * the system prompt, then the messages, when it is at least 1024 tokens. Here
 * the prefix counts in whole messages and only against the same agent's
 * earlier requests in the same game; a hit is assumed whenever the prefix
 * matches (no expiry, no routing misses), and cache writes cost the input
 * price, as /llm_calls prices them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/rng.h"
#include "bazaar/spec.h"
#include "llm/llm_internal.h"

#define EST_MAX_STEPS 100000 /* as the prompt check's sample game */

/* One earlier decision of an agent: what it adds to later chat history. */
struct est_past {
    int agent, turn;
    int64_t bytes; /* its prompt + an estimated reply */
};

/* One request as the cache sees it, at one memory level: the reply schema,
 * the system prompt, then history entries lo .. (the agent's n exchanges from
 * past[lo] on, oldest first). */
struct est_req {
    int agent;
    uint64_t schema_h, system_h;
    int64_t schema_b, system_b, hist_b;
    size_t lo; /* index into past of the oldest history entry; SIZE_MAX: none */
    int n;
};

/* Per memory level: the requests made so far in this game, and the sums. */
struct est_level {
    int memory_turns;
    struct est_req *req;
    size_t n_req, cap_req;
    int64_t in, cached, out;
    double cost;
};

struct est_ctx {
    const struct bz_llm *llm;
    struct est_level *lv;
    int n_lv;
    struct est_past *past; /* the game's decisions so far, in order */
    size_t n_past, cap_past;
    int rc; /* BZ_ENOMEM seen in the hook */
};

/* The chat history of agent's decision at turn with memory k, as
 * llm_agent.c builds it: the agent's exchanges of turns [turn-k, turn-1],
 * newest kept first up to memory_max_tokens x 4 bytes. */
static void history_window(const struct est_ctx *c, int agent, int turn, int k, struct est_req *q)
{
    int64_t cap = (int64_t)c->llm->set.memory_max_tokens * 4;
    q->lo = SIZE_MAX;
    q->n = 0;
    q->hist_b = 0;
    if (k <= 0 || turn < 0)
        return;
    for (size_t i = c->n_past; i-- > 0;) {
        const struct est_past *p = &c->past[i];
        if (p->agent != agent || p->turn >= turn || p->turn < turn - k)
            continue;
        if (q->hist_b + p->bytes > cap)
            break;
        q->hist_b += p->bytes;
        q->lo = i;
        q->n++;
    }
}

/* Bytes of the longest run of whole leading messages request q shares with
 * the earlier request a of the same agent. */
static int64_t shared_prefix(const struct est_req *a, const struct est_req *q)
{
    if (a->schema_h != q->schema_h)
        return 0;
    int64_t b = q->schema_b;
    if (a->system_h != q->system_h)
        return b;
    b += q->system_b;
    /* the agent's exchanges from one start on are one sequence: the shorter
     * history is a prefix of the longer */
    if (a->n > 0 && q->n > 0 && a->lo == q->lo)
        b += a->n < q->n ? a->hist_b : q->hist_b;
    return b;
}

/* The array v (n elements of size bytes used, *cap allocated) with room
 * for one more: v itself, or v moved to twice its capacity (64 at first);
 * NULL, v untouched, when out of memory. */
static void *room_for_one(void *v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return v;
    size_t c = *cap ? 2 * *cap : 64;
    void *p = realloc(v, c * size);
    if (p)
        *cap = c;
    return p;
}

static int add_past(struct est_ctx *c, int agent, int turn, int64_t bytes)
{
    struct est_past *p = room_for_one(c->past, c->n_past, &c->cap_past, sizeof *p);
    if (!p)
        return BZ_ENOMEM;
    c->past = p;
    c->past[c->n_past++] = (struct est_past){agent, turn, bytes};
    return BZ_OK;
}

static int add_req(struct est_level *l, const struct est_req *q)
{
    struct est_req *p = room_for_one(l->req, l->n_req, &l->cap_req, sizeof *p);
    if (!p)
        return BZ_ENOMEM;
    l->req = p;
    l->req[l->n_req++] = *q;
    return BZ_OK;
}

/* Price one decision at every memory level. */
static int price_decision(struct est_ctx *c, const struct bz_model *mod, int agent, int turn,
                          const char *sys, const char *user, const char *schema)
{
    const struct bz_llm *llm = c->llm;
    int max_out = mod->max_output_tokens > 0 ? mod->max_output_tokens : llm->set.max_output_tokens;
    int64_t out = max_out < BZ_LLM_EST_OUTPUT_TOKENS ? max_out : BZ_LLM_EST_OUTPUT_TOKENS;
    int64_t user_b = (int64_t)strlen(user);
    struct est_req q = {.agent = agent,
                        .schema_h = bz_hash_str(schema ? schema : ""),
                        .system_h = bz_hash_str(sys),
                        .schema_b = schema ? (int64_t)strlen(schema) : 0,
                        .system_b = (int64_t)strlen(sys)};
    for (int i = 0; i < c->n_lv; i++) {
        struct est_level *l = &c->lv[i];
        history_window(c, agent, turn, l->memory_turns, &q);
        int64_t in = (q.schema_b + q.system_b + q.hist_b + user_b) / 4 + 16;
        int64_t best = 0;
        for (size_t k = 0; k < l->n_req; k++)
            if (l->req[k].agent == agent) {
                int64_t s = shared_prefix(&l->req[k], &q);
                best = s > best ? s : best;
            }
        int64_t cached = best / 4 >= BZ_LLM_EST_CACHE_MIN_TOKENS ? best / 4 : 0;
        cached = cached < in ? cached : in;
        l->in += in;
        l->cached += cached;
        l->out += out;
        l->cost += ((double)(in - cached) * mod->price_in_per_mtok +
                    (double)cached * mod->price_cached_in_per_mtok +
                    (double)out * mod->price_out_per_mtok) /
                   1e6;
        if (add_req(l, &q))
            return BZ_ENOMEM;
    }
    return add_past(c, agent, turn, user_b + 4 * BZ_LLM_EST_OUTPUT_TOKENS);
}

/* The match hook: prices each LLM agent's decision, then answers it with the
 * fallback action. */
static int est_submit(void *ctx, struct bz_match *m, const struct bz_request *r, struct bz_err *err)
{
    (void)err;
    struct est_ctx *c = ctx;
    const struct bz_game_config *cfg = bz_match_config(m);
    struct bz_game *g = bz_match_game(m);
    int a = r->agent;
    if (cfg->agents[a].kind == BZ_AGENT_LLM && !c->rc) {
        int mi = bz_registry_find(c->llm->reg, cfg->agents[a].policy);
        char *sys = NULL, *user = NULL;
        int turn;
        struct bz_err rerr = {0};
        if (mi >= 0 && !bz_llm_render(c->llm, g, r, &sys, &user, &turn, &rerr))
            c->rc = price_decision(c, &c->llm->reg->models[mi], a, turn, sys, user,
                                   bz_game_schema_text(g, r->phase));
        free(sys);
        free(user);
    }
    bz_game_fallback(g, a, r->slot);
    bz_match_decided(m, a, r->slot);
    return BZ_OK;
}

/* Play one game with fallback actions, pricing its LLM decisions at every
 * level; adds to each level's sums. */
static int estimate_game(struct est_ctx *c, const struct bz_game_config *cfg, struct bz_err *err)
{
    struct bz_game_config gc = *cfg;
    gc.transcript = NULL;
    c->n_past = 0;
    for (int i = 0; i < c->n_lv; i++)
        c->lv[i].n_req = 0;
    struct bz_llm_hook hook = {.ctx = c, .submit = est_submit, .all_agents = 1};
    struct bz_match *m = NULL;
    const char *msg = NULL;
    int rc = bz_match_create(&gc, &hook, &m, err);
    if (!rc) {
        bz_match_set_max_steps(m, EST_MAX_STEPS);
        rc = bz_match_play(m, err);
    }
    if (!rc && c->rc)
        rc = bz_err_set(err, c->rc, "out of memory estimating game %lld", (long long)cfg->game_id);
    if (!rc && bz_match_failed(m, &msg))
        rc = bz_err_set(err, BZ_EINVAL, "game %lld: %s", (long long)cfg->game_id, msg);
    bz_match_destroy(m);
    return rc;
}

/* The sums of the sampled games, scaled to the games of the grid. */
static void scale_level(const struct est_level *l, double scale, int64_t games,
                        struct bz_llm_est_part *p)
{
    p->memory_turns = l->memory_turns;
    p->games = games;
    p->input_tokens = (int64_t)llround((double)l->in * scale);
    p->cached_input_tokens = (int64_t)llround((double)l->cached * scale);
    p->output_tokens = (int64_t)llround((double)l->out * scale);
    p->cost_usd = l->cost * scale;
}

int bz_llm_estimate(const struct bz_spec *spec, const struct bz_grid *grid, struct bz_llm_est *est,
                    struct bz_err *err)
{
    memset(est, 0, sizeof *est);
    char **ids = NULL;
    size_t n_ids = 0;
    struct bz_game_config sample;
    struct bz_llm *llm = NULL;
    struct est_ctx c = {0};
    int n_lv = bz_spec_memory_n(spec);
    int rc = bz_llm_grid_models(grid, &ids, &n_ids, &sample, err);
    if (rc || n_ids == 0)
        goto out;
    if ((rc = bz_llm_create_from(bz_spec_llm(spec), NULL, bz_spec_game(spec), &sample,
                                 (const char *const *)ids, n_ids, 0, 0.5, &llm, err)))
        goto out;
    c.llm = llm;
    c.n_lv = n_lv;
    c.lv = calloc((size_t)n_lv, sizeof *c.lv);
    est->levels = calloc((size_t)n_lv, sizeof *est->levels);
    if (!c.lv || !est->levels) {
        rc = bz_err_set(err, BZ_ENOMEM, "out of memory estimating the sweep");
        goto out;
    }
    est->n_levels = n_lv;
    for (int i = 0; i < n_lv; i++)
        c.lv[i].memory_turns = bz_spec_memory_value(spec, i);
    /* every level on each sampled game: the grid plays each game's other
     * values at every level, and memory changes no prompt, only history */
    int64_t count = bz_grid_count(grid);
    int64_t step = count > BZ_LLM_EST_SAMPLE ? count / BZ_LLM_EST_SAMPLE : 1;
    for (int64_t id = 0; id < count; id += step) {
        struct bz_game_config cfg;
        if ((rc = bz_grid_config(grid, id, &cfg, err)) || (rc = estimate_game(&c, &cfg, err)))
            goto out;
        est->sampled++;
    }
    double scale = est->sampled ? (double)count / (double)est->sampled / n_lv : 0;
    for (int i = 0; i < n_lv; i++) {
        struct bz_llm_est_part *p = &est->levels[i];
        scale_level(&c.lv[i], scale, count / n_lv, p);
        est->total.games += p->games;
        est->total.input_tokens += p->input_tokens;
        est->total.cached_input_tokens += p->cached_input_tokens;
        est->total.output_tokens += p->output_tokens;
        est->total.cost_usd += p->cost_usd;
    }
out:
    for (int i = 0; c.lv && i < n_lv; i++)
        free(c.lv[i].req);
    free(c.lv);
    free(c.past);
    bz_llm_destroy(llm);
    for (size_t i = 0; i < n_ids; i++)
        free(ids[i]);
    free(ids);
    if (rc)
        bz_llm_est_cleanup(est);
    return rc;
}

void bz_llm_est_cleanup(struct bz_llm_est *est)
{
    if (!est)
        return;
    free(est->levels);
    est->levels = NULL;
    est->n_levels = 0;
}
