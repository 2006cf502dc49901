/* match: drives one game with its agents. Heuristic decisions are answered in
 * place; LLM decisions go to the hook and come back through bz_match_decided.
 * Adds the /games, /agents and /<game>/config rows (tables_common.c) when
 * the game ends. Never does I/O. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/match.h"

enum { ST_STEP, ST_DECIDING, ST_DONE, ST_FAILED };

struct bz_match {
    const struct bz_game_config *cfg;
    struct bz_game *game;
    struct bz_records rec;
    struct bz_llm_hook hook;
    const struct bz_policy_ops **policy; /* per agent; NULL for LLM agents */
    struct bz_rng *rng;                  /* per agent decision stream */
    int pending;
    size_t calls_mark; /* /llm_calls rows before this step's requests */
    int state;
    int n_llm;
    int yield;
    int64_t decisions;
    int64_t steps, max_steps; /* max_steps 0: no bound */
    int timed_out;            /* ended by bz_match_timeout: status "timeout" */
    int (*flush)(void *ctx, const struct bz_records *rows, struct bz_err *err);
    void *flush_ctx;
    size_t flush_bytes;
    struct bz_match_usage usage;
    char error[256];
};

/* Every state change goes through here (one place to watch or trace). The
 * legal moves: STEP -> DECIDING -> STEP ..., STEP -> DONE, any -> FAILED,
 * FAILED -> DONE. */
static void mstate(struct bz_match *m, int st)
{
    assert(st == ST_FAILED || (m->state == ST_STEP && (st == ST_DECIDING || st == ST_DONE)) ||
           (m->state == ST_DECIDING && st == ST_STEP) || (m->state == ST_FAILED && st == ST_DONE) ||
           (m->state == 0 && st == ST_STEP));
    m->state = st;
}

void bz_match_agent_rng(struct bz_rng *r, const struct bz_game_config *cfg, int seat)
{
    const char *label = cfg->agents ? cfg->agents[seat].label : "";
    uint64_t key =
        bz_hash_combine(bz_hash_combine(cfg->env_seed, (uint64_t)seat), bz_hash_str(label));
    bz_rng_init(r, key, 0x6167656e74ULL);
}

int bz_match_create(const struct bz_game_config *cfg, const struct bz_llm_hook *hook,
                    struct bz_match **out, struct bz_err *err)
{
    int rc = BZ_OK;
    *out = NULL;
    struct bz_match *m = calloc(1, sizeof *m);
    if (!m)
        return bz_err_set(err, BZ_ENOMEM, "out of memory creating game %lld",
                          (long long)cfg->game_id);
    m->cfg = cfg;
    bz_records_init(&m->rec);
    if (hook)
        m->hook = *hook;
    m->policy = calloc((size_t)cfg->n_agents, sizeof *m->policy);
    m->rng = calloc((size_t)cfg->n_agents, sizeof *m->rng);
    if (!m->policy || !m->rng) {
        rc =
            bz_err_set(err, BZ_ENOMEM, "out of memory creating game %lld", (long long)cfg->game_id);
        goto out;
    }
    for (int i = 0; i < cfg->n_agents; i++) {
        const struct bz_agent_spec *a = &cfg->agents[i];
        bz_match_agent_rng(&m->rng[i], cfg, i);
        if (a->kind == BZ_AGENT_HEURISTIC && !m->hook.all_agents) {
            m->policy[i] = bz_game_policy(cfg->ops, a->policy);
            if (!m->policy[i]) {
                rc = bz_err_set(err, BZ_EINVAL, "game %s has no heuristic policy '%s'",
                                cfg->ops->name, a->policy);
                goto out;
            }
        } else {
            m->n_llm++;
        }
    }
    if (m->n_llm && !m->hook.submit) {
        rc = bz_err_set(err, BZ_EINVAL, "lineup '%s' has LLM agents but no LLM client is set up",
                        cfg->lineup_name ? cfg->lineup_name : "");
        goto out;
    }
    rc = bz_game_create(cfg, &m->rec, &m->game, err);
    if (rc)
        goto out;
    mstate(m, ST_STEP);
    *out = m;
    return BZ_OK;
out:
    bz_match_destroy(m);
    return rc;
}

void bz_match_destroy(struct bz_match *m)
{
    if (!m)
        return;
    bz_game_destroy(m->game);
    bz_records_cleanup(&m->rec);
    free(m->policy);
    free(m->rng);
    free(m);
}

static int add_summary_rows(struct bz_match *m, struct bz_err *err)
{
    const struct bz_game_config *cfg = m->cfg;
    struct bz_game_outcome oc = {0};
    oc.max_welfare = NAN;
    oc.efficiency = NAN;
    double *payoff = calloc(2 * (size_t)cfg->n_agents, sizeof *payoff);
    if (!payoff)
        return bz_err_set(err, BZ_ENOMEM, "out of memory finishing game %lld",
                          (long long)cfg->game_id);
    oc.gain = payoff + cfg->n_agents;
    for (int i = 0; i < cfg->n_agents; i++)
        oc.gain[i] = NAN;
    int failed = m->state == ST_FAILED ? (m->timed_out ? 2 : 1) : 0;
    if (!failed)
        cfg->ops->outcome(m->game, &oc, payoff);
    int rc = bz_tables_add_summary(&m->rec, cfg, &oc, payoff, &m->usage, failed, m->error, err);
    free(payoff);
    return rc;
}

/* Ask every open request: heuristic agents decide at once, LLM agents go to
 * the hook (which may answer before it returns). */
static void ask(struct bz_match *m, struct bz_err *err)
{
    struct bz_game *g = m->game;
    int n = bz_game_n_requests(g);
    /* Count the hook's requests first: a hook may answer synchronously. */
    int n_hook = 0;
    for (int k = 0; k < n; k++)
        n_hook += m->policy[bz_game_request(g, k)->agent] == NULL;
    m->pending = n_hook;
    m->decisions += n;
    if (m->n_llm) {
        const struct bz_rowbuf *calls = bz_records_find(&m->rec, &bz_llm_calls_table);
        m->calls_mark = calls ? calls->n_rows : 0;
    }
    for (int k = 0; k < n && m->state == ST_DECIDING; k++) {
        const struct bz_request *r = bz_game_request(g, k);
        const struct bz_policy_ops *p = m->policy[r->agent];
        if (p) {
            bz_game_decide(g, k, p, m->cfg->agents[r->agent].skill, &m->rng[r->agent]);
        } else if (m->hook.submit(m->hook.ctx, m, r, err)) {
            /* The hook could not even queue it: the game goes on with a
             * recorded fallback. */
            bz_game_fallback(g, r->agent, r->slot);
            m->usage.n_fallback++;
            bz_match_decided(m, r->agent, r->slot);
        }
    }
}

int bz_match_advance(struct bz_match *m, struct bz_err *err)
{
    for (;;) {
        switch (m->state) {
        case ST_DONE: return BZ_MATCH_DONE;
        case ST_FAILED: {
            int rc = add_summary_rows(m, err);
            if (rc)
                return -rc;
            mstate(m, ST_DONE);
            return BZ_MATCH_DONE;
        }
        case ST_DECIDING:
            if (m->pending > 0)
                return BZ_MATCH_WAITING;
            /* replies come back in any order: the step's rows in one that
             * does not depend on it, so a replay writes the same table */
            if (m->n_llm)
                bz_tables_order_llm_calls(&m->rec, m->calls_mark);
            if (bz_game_apply(m->game, err)) {
                bz_match_fail(m, err->msg);
                continue;
            }
            mstate(m, ST_STEP);
            if (m->flush && m->rec.row_bytes >= m->flush_bytes) {
                int rc = m->flush(m->flush_ctx, &m->rec, err);
                if (rc)
                    return -rc;
                bz_records_drop_rows(&m->rec);
            }
            if (m->yield)
                return BZ_MATCH_RUNNING;
            continue;
        case ST_STEP: {
            int st = 0;
            if (m->max_steps && ++m->steps > m->max_steps) {
                char msg[96];
                snprintf(msg, sizeof msg, "%s: did not end within %lld steps", m->cfg->ops->name,
                         (long long)m->max_steps);
                bz_match_fail(m, msg);
                continue;
            }
            if (bz_game_step(m->game, &st, err)) {
                bz_match_fail(m, err->msg);
                continue;
            }
            if (st == BZ_STEP_DONE) {
                int rc = add_summary_rows(m, err);
                if (rc)
                    return -rc;
                mstate(m, ST_DONE);
                return BZ_MATCH_DONE;
            }
            mstate(m, ST_DECIDING);
            ask(m, err);
            continue;
        }
        }
    }
}

int bz_match_play(struct bz_match *m, struct bz_err *err)
{
    for (;;) {
        int st = bz_match_advance(m, err);
        if (st < 0)
            return -st;
        if (st == BZ_MATCH_DONE)
            return BZ_OK;
        if (st == BZ_MATCH_WAITING)
            return bz_err_set(err, BZ_EINTERNAL,
                              "game %lld waits on %d decisions its hook left pending",
                              (long long)m->cfg->game_id, m->pending);
    }
}

int bz_match_failed(const struct bz_match *m, const char **msg)
{
    if (msg)
        *msg = m->error;
    return m->error[0] != '\0';
}

void bz_match_decided(struct bz_match *m, int agent, int slot)
{
    (void)agent;
    (void)slot;
    if (m->pending > 0)
        m->pending--;
}

void bz_match_fail(struct bz_match *m, const char *msg)
{
    const char *text = msg ? msg : "failed";
    size_t n = strnlen(text, sizeof m->error - 1);
    memcpy(m->error, text, n);
    m->error[n] = '\0';
    mstate(m, ST_FAILED);
    m->pending = 0;
}

void bz_match_timeout(struct bz_match *m, const char *msg)
{
    if (m->state == ST_DONE || m->state == ST_FAILED)
        return;
    m->timed_out = 1;
    bz_match_fail(m, msg);
}

void bz_match_set_max_steps(struct bz_match *m, int64_t n)
{
    m->max_steps = n > 0 ? n : 0;
}

void bz_match_set_flush(struct bz_match *m,
                        int (*fn)(void *ctx, const struct bz_records *rows, struct bz_err *err),
                        void *ctx, size_t bytes)
{
    m->flush = fn;
    m->flush_ctx = ctx;
    m->flush_bytes = bytes;
}

void bz_match_set_yield(struct bz_match *m, int on)
{
    m->yield = on;
}

struct bz_game *bz_match_game(struct bz_match *m)
{
    return m->game;
}
const struct bz_game_config *bz_match_config(const struct bz_match *m)
{
    return m->cfg;
}
struct bz_records *bz_match_records(struct bz_match *m)
{
    return &m->rec;
}
struct bz_match_usage *bz_match_usage(struct bz_match *m)
{
    return &m->usage;
}
int64_t bz_match_decisions(const struct bz_match *m)
{
    return m->decisions;
}
int bz_match_pending(const struct bz_match *m)
{
    return m->pending;
}
