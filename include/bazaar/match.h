/* match: one game being played by its agents. Drives the game's state machine,
 * answers heuristic decisions at once and hands LLM decisions to a hook that
 * answers them later (bz_match_decided). On finish it adds the /games and
 * /agents rows. Knows nothing of HDF5, MPI or HTTP. */
#ifndef BAZAAR_MATCH_H
#define BAZAAR_MATCH_H

#include "bazaar/game.h"
#include "bazaar/records.h"
#include "bazaar/tables.h" /* the common tables' rows and descriptors */

struct bz_match;

/* How LLM agents' decisions are started. submit() must eventually answer
 * request r (bz_game_answer or bz_game_fallback on bz_match_game(m), with r's
 * agent and slot) and then call bz_match_decided(); it may do so before it
 * returns. r is valid until then. all_agents: every agent goes through the
 * hook, heuristic ones included (the prompt check and the cost estimate). */
struct bz_llm_hook {
    void *ctx;
    int (*submit)(void *ctx, struct bz_match *m, const struct bz_request *r, struct bz_err *err);
    int all_agents;
};

enum bz_match_state { BZ_MATCH_WAITING = 1, BZ_MATCH_DONE = 2, BZ_MATCH_RUNNING = 3 };

/* When on, bz_match_advance returns BZ_MATCH_RUNNING after every applied
 * phase, so a caller with other duties (the MPI coordinator) can interleave
 * them with one long game. Off by default. */
void bz_match_set_yield(struct bz_match *m, int on);

/* A long game's rows leave memory in batches: after a phase is applied,
 * when the rows held reach `bytes`, fn(ctx, rows) gets them (the runner
 * hands them to the shard, uncommitted: bz_shard_put) and the match drops
 * them; a non-zero return ends the advance with that error. The strings the
 * rows point to stay (the game's state may point to them too). The last
 * rows and the /games row (the commit record) stay for the caller after
 * BZ_MATCH_DONE. fn NULL (the default): every row is held to the end. Only
 * for games whose agents never read their own rows back (heuristic play:
 * LLM agents read their earlier /llm_calls rows). */
#define BZ_MATCH_FLUSH_BYTES ((size_t)4 << 20)
void bz_match_set_flush(struct bz_match *m,
                        int (*fn)(void *ctx, const struct bz_records *rows, struct bz_err *err),
                        void *ctx, size_t bytes);

/* Bound the game to n steps (0: none): past it the game ends failed ("did
 * not end within n steps"). The prompt check and the estimate use it. */
void bz_match_set_max_steps(struct bz_match *m, int64_t n);

/* Per-game LLM accounting, summed into the /games row. */
struct bz_match_usage {
    int64_t llm_calls;
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_hits;
    int64_t cached_input_tokens; /* input tokens served from the provider's prompt cache */
    /* in nano-dollars, each call's cost rounded: an integer sum does not
     * depend on the order replies arrive in, so a game's cost is the same
     * bits on any number of ranks */
    int64_t cost_nano_usd;
    int n_invalid;  /* replies that did not parse or were inadmissible */
    int n_repair;   /* repair prompts sent */
    int n_fallback; /* fallback actions used */
};

/* Create a match for cfg (cfg and everything it points to must outlive it).
 * hook may be NULL when every agent is heuristic; a lineup with an LLM agent
 * and no hook is BZ_EINVAL. Free with bz_match_destroy. */
/* Seat's decision stream: from (cfg->env_seed, seat, the seat's agent label)
 * only, so it is the same whatever the lineup is called, whoever sits in the
 * other seats and whether communication is on (common random numbers). */
void bz_match_agent_rng(struct bz_rng *r, const struct bz_game_config *cfg, int seat);

int bz_match_create(const struct bz_game_config *cfg, const struct bz_llm_hook *hook,
                    struct bz_match **out, struct bz_err *err);
void bz_match_destroy(struct bz_match *m);

/* Play until the game waits on LLM decisions (BZ_MATCH_WAITING) or ends
 * (BZ_MATCH_DONE, /games and /agents rows added); a negative bz_rc on error.
 * Call again after the pending decisions arrived. */
int bz_match_advance(struct bz_match *m, struct bz_err *err);

/* Play to the end with a hook that answers before it returns (or none):
 * BZ_OK once the game is done (ok or failed: see bz_match_failed), a bz_rc
 * when the match cannot go on (BZ_EINTERNAL when decisions stay pending). The
 * one driving loop of the prompt check, the cost estimate and the tests. */
int bz_match_play(struct bz_match *m, struct bz_err *err);

/* 1 when the game ended failed; *msg (may be NULL) its message. */
int bz_match_failed(const struct bz_match *m, const char **msg);

/* LLM layer: request (agent, slot) of the current phase is answered. */
void bz_match_decided(struct bz_match *m, int agent, int slot);

/* Accessors for the LLM layer and the scheduler. */
struct bz_game *bz_match_game(struct bz_match *m);
const struct bz_game_config *bz_match_config(const struct bz_match *m);
struct bz_records *bz_match_records(struct bz_match *m);
struct bz_match_usage *bz_match_usage(struct bz_match *m);
int bz_match_pending(const struct bz_match *m);
/* Agent decisions requested so far (all phases, all agents). */
int64_t bz_match_decisions(const struct bz_match *m);

/* Mark the match failed with a message (recorded in its /games row). */
void bz_match_fail(struct bz_match *m, const char *msg);
/* The same with status "timeout" (the caller cancelled its pending LLM
 * decisions first); no-op on a match that already ended. */
void bz_match_timeout(struct bz_match *m, const char *msg);

#endif
