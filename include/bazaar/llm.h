/* llm: LLM agents of a rank. The models registry, the prompts, the response
 * cache, rate limits and one curl multi handle shared by every live game of
 * the rank. Games reach it only through the match hook (struct bz_llm_hook);
 * the scheduler drives it with bz_llm_poll. Never writes or logs an API key. */
#ifndef BAZAAR_LLM_H
#define BAZAAR_LLM_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/game.h"
#include "bazaar/match.h"
#include "bazaar/spec.h"

struct bz_llm; /* one per rank */

struct bz_llm_options {
    int replay; /* 1: refuse any call not in the cache */
};

/* Load and validate the models registry (bz_spec_llm(spec)->models_path, ""
 * = sweeps/models.json) and the prompts (prompts_dir, "" = prompts/<game>),
 * check every template against sample observations of the spec's game, check
 * that every API key environment variable a lineup needs is set, open the
 * cache folder. Every error is raised here, before any game starts, naming
 * the file and key (never a key's value). opt may be NULL. Free with
 * bz_llm_destroy. */
int bz_llm_create(const struct bz_spec *spec, const struct bz_llm_options *opt, struct bz_llm **out,
                  struct bz_err *err);
/* Aborts transfers still in flight; accepts NULL. */
void bz_llm_destroy(struct bz_llm *llm);

/* The hook given to bz_match_create. submit() renders the prompt, looks the
 * request up in the cache (a hit decides at once, before submit returns) and
 * otherwise queues it; bz_llm_poll finishes it. */
struct bz_llm_hook bz_llm_hook(struct bz_llm *llm);

/* Drive the transfers: start queued requests as concurrency, rate limits and
 * backoff allow, wait up to timeout_ms for network activity, finish replies
 * (parse, check with the game, one repair prompt, else fallback), record
 * /llm_calls rows and call bz_match_decided. Never blocks longer than
 * timeout_ms. Returns BZ_OK, or BZ_ENET when since the last poll a decision
 * had to fall back because --replay found no cache entry (err names the game;
 * the decision is still made, recorded as parse_outcome "replay_miss", and
 * the match goes on; misses answered inside submit() are reported by the
 * next poll, and counted in bz_llm_get_totals), or BZ_ENOMEM/BZ_EINTERNAL on
 * a broken rank. Suggested use: with --replay, treat BZ_ENET as fatal
 * (exit 1: the replay is incomplete). */
int bz_llm_poll(struct bz_llm *llm, int timeout_ms, struct bz_err *err);

/* Send now the requests games submitted since the last poll that found an
 * idle connection (a game's requests of a turn go out together); the next
 * poll sends them otherwise. Call it after advancing a game, before the
 * next game: its requests then do not wait for every other game's step. */
void bz_llm_flush(struct bz_llm *llm);

/* Decisions queued, backing off or in flight. */
int bz_llm_inflight(const struct bz_llm *llm);

/* Drop every request of match m (abandoned on a signal): no callback will
 * touch m afterwards. */
void bz_llm_cancel(struct bz_llm *llm, struct bz_match *m);

/* Rank totals since create (for the spec's budget). */
struct bz_llm_totals {
    int64_t calls; /* HTTP requests answered (cache hits excluded) */
    int64_t cache_hits;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost_usd;
    int64_t retries;
    int64_t replay_misses; /* --replay: decisions refused for want of a cache entry */
};
void bz_llm_get_totals(const struct bz_llm *llm, struct bz_llm_totals *t);

/* For `bazaar expand` (estimate.c): plays the grid's LLM games with fallback
 * actions, rendering each LLM agent's prompts, and sums estimated tokens
 * (input: request bytes / 4, the chat history of llm.memory_turns included,
 * bounded by memory_max_tokens; output: min(max_output_tokens,
 * BZ_LLM_EST_OUTPUT_TOKENS) per decision) and cost from the registry's prices.
 * Prompt caching: after an agent's first call, the longest run of whole
 * leading messages (reply schema, system prompt, chat history) it shares with
 * one of its earlier calls in the game counts as cached input when it reaches
 * BZ_LLM_EST_CACHE_MIN_TOKENS (the providers' minimum), priced at
 * price_cached_in_per_mtok. Every memory_turns value of the grid is estimated
 * on the same sampled games (memory changes no prompt, only the history).
 * Grids larger than BZ_LLM_EST_SAMPLE games are sampled and scaled. */
#define BZ_LLM_EST_OUTPUT_TOKENS 120
#define BZ_LLM_EST_SAMPLE 64
#define BZ_LLM_EST_CACHE_MIN_TOKENS 1024

/* Tokens and cost of some games. */
struct bz_llm_est_part {
    int memory_turns;            /* the level (levels[] only) */
    int64_t games;               /* games of the grid counted */
    int64_t input_tokens;        /* every input token, cached ones included */
    int64_t cached_input_tokens; /* the part of input_tokens read from the prompt cache */
    int64_t output_tokens;
    double cost_usd;
};

/* The estimate: the whole grid, and per llm.memory_turns value of the grid
 * (one level when it does not vary). Caller-owned; bz_llm_est_cleanup frees
 * levels. */
struct bz_llm_est {
    struct bz_llm_est_part total;
    struct bz_llm_est_part *levels;
    int n_levels;
    int64_t sampled; /* games played to estimate (the rest scaled) */
};
int bz_llm_estimate(const struct bz_spec *spec, const struct bz_grid *grid, struct bz_llm_est *est,
                    struct bz_err *err);
void bz_llm_est_cleanup(struct bz_llm_est *est);

/* Fill the capability of every LLM agent in agents[0..n) from the registry at
 * models_path ("" = sweeps/models.json); heuristic agents are left alone.
 * BZ_EINVAL names the file and an agent whose id the registry lacks. For the
 * spec/grid module, so that /agents.capability carries the registry score. */
int bz_llm_fill_capability(const char *models_path, struct bz_agent_spec *agents, size_t n,
                           struct bz_err *err);

/* One model's capability score from the registry (for callers holding a
 * model id only). */
int bz_registry_capability(const char *models_path, const char *model_id, double *capability,
                           struct bz_err *err);

/* The /llm_calls table (struct bz_llm_calls_row, bz_llm_calls_table) is
 * declared in bazaar/tables.h with the other common tables. */

#endif
