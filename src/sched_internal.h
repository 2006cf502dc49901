/* sched internals: the per-rank runner (K live games, one shard) that the
 * MPI loop in sched.c feeds, and what tests need to reach. */
#ifndef BAZAAR_SCHED_INTERNAL_H
#define BAZAAR_SCHED_INTERNAL_H

#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/spec.h"

struct bz_runner;

struct bz_runner_options {
    const struct bz_grid *grid;
    const struct bz_spec *spec;
    const char *shard_prefix; /* shards are <prefix>-<segment>.h5; NULL: play
                                 nothing, write nothing (dispatch bench) */
    int replay;
    int yield; /* return to the caller after every phase (coordinator rank) */
    void (*on_done)(void *ctx, int failed); /* a game was committed */
    void *ctx;
};

/* Create a runner: the LLM client when the spec has LLM agents (all its
 * input errors come out here), K slots. Free with bz_runner_destroy. */
int bz_runner_create(const struct bz_runner_options *opt, struct bz_runner **out,
                     struct bz_err *err);
int bz_runner_slots(const struct bz_runner *r);
int bz_runner_live(const struct bz_runner *r);
/* Start game_id in a free slot (bz_runner_live < bz_runner_slots). */
int bz_runner_start(struct bz_runner *r, int64_t game_id, struct bz_err *err);
/* Advance every live game once; commit the finished ones to the shard;
 * wait briefly on the network when every live game waits on an LLM. */
int bz_runner_pump(struct bz_runner *r, struct bz_err *err);
/* Drop the live games (stop signal): nothing of them is written. */
void bz_runner_abandon(struct bz_runner *r);
/* Close the shard; the runner is freed whatever the result. */
/* LLM tokens and cost this rank has spent so far (0 without LLM). */
void bz_runner_llm_totals(const struct bz_runner *r, int64_t *tokens, double *cost_usd);
int bz_runner_close(struct bz_runner *r, struct bz_err *err);
void bz_runner_destroy(struct bz_runner *r);

/* 1 once SIGTERM, SIGINT or SIGUSR1 arrived during a run. */
int bz_sched_stop_requested(void);

#endif
