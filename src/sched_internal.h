/* sched internals: the parts of a sweep run that sched.c (MPI coordination,
 * the only file that calls MPI) puts together: the per-rank runner (K live
 * games, one shard; runner.c), resume planning (sched_resume.c), the LLM
 * budget (sched_budget.c) and progress (sched_progress.c); and what tests
 * need to reach. */
#ifndef BAZAAR_SCHED_INTERNAL_H
#define BAZAAR_SCHED_INTERNAL_H

#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/out.h"
#include "bazaar/sched.h"
#include "bazaar/spec.h"

struct bz_runner;

struct bz_runner_options {
    const struct bz_grid *grid;
    const struct bz_spec *spec;
    const char *shard_prefix; /* shards are <prefix>-<segment>.h5; NULL: play
                                 nothing, write nothing (dispatch bench) */
    int replay;
    int follow;            /* a follower merges: segments close at its cadence */
    int follow_spare;      /* ... on a CPU no rank plays on: they may close sooner */
    enum bz_layout layout; /* what the shards are written for */
    int shard_threads;     /* bz_shard_set_threads */
    int yield;             /* return to the caller after every phase (coordinator rank) */
    void (*on_done)(void *ctx, int failed); /* a game was committed */
    void *ctx;
};

/* Create a runner: the LLM client when the spec has LLM agents (all its
 * input errors come out here), K slots. Free with bz_runner_destroy. */
int bz_runner_create(const struct bz_runner_options *opt, struct bz_runner **out,
                     struct bz_err *err);
/* Once the parts folder exists (nothing reaches the disk before every check
 * passed): an LLM run opens its first shard and journal here, before any
 * request is sent. 0 or the shard's error. */
int bz_runner_ready(struct bz_runner *r, struct bz_err *err);
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

#define BZ_SCHED_PATH_MAX 4096

/* ---- resume planning (sched_resume.c) ---- */

/* What a run plays: the games of the sweep not yet recorded. */
struct bz_sched_plan {
    char out[BZ_SCHED_PATH_MAX];
    char parts[BZ_SCHED_PATH_MAX];
    int attempt;
    int64_t n_games;
    int64_t *todo; /* ids still to play, ascending */
    int64_t n_todo;
    int64_t spent_tokens; /* LLM spending recorded by earlier attempts */
    double spent_cost;
    char **sources; /* readable files to merge: OUT first, then shards */
    size_t n_sources;
    char **bad; /* unreadable files to set aside: "path\0reason" */
    size_t n_bad;
    uint64_t fingerprint; /* of the sweep: sweep.id */
    int new_parts;        /* OUT.parts/ does not exist yet */
    int new_id;           /* its sweep.id is to be written */
};

/* Rank 0: decide what to play. Without resume, refuse to touch existing
 * output; with resume, collect what is recorded (quick: trust the shards'
 * journals, for sources this run checked or wrote itself) and check that the
 * spec describes the recorded sweep. Creates, renames and writes nothing (a
 * run refused later leaves no trace): bz_sched_plan_prepare does that. Free
 * with bz_sched_plan_cleanup, also on failure. */
int bz_sched_plan_create(struct bz_sched_plan *p, const struct bz_run_options *opt, const char *out,
                         const struct bz_grid *grid, int quick, struct bz_err *err);
/* Rank 0, once every check of the run passed: create OUT's folder and
 * OUT.parts/, set unreadable shards aside, write sweep.id (new sweeps) and
 * sweep.prov (prov: this attempt's provenance, for a merge by hand). */
int bz_sched_plan_prepare(struct bz_sched_plan *p, const struct bz_provenance *prov,
                          struct bz_err *err);
/* Rename the unreadable files the plan found to *.bad, telling the user. */
int bz_sched_plan_set_aside(struct bz_sched_plan *p, struct bz_err *err);
void bz_sched_plan_cleanup(struct bz_sched_plan *p);
/* After a successful merge the shards are redundant: remove them (but keep
 * any set-aside .bad file for the user to inspect). */
void bz_sched_remove_parts(const char *parts);
/* Rank `rank` of n_ranks' share of that, run by every rank at once before
 * rank 0's bz_sched_remove_parts: the shards (and their journals) written
 * by ranks r with r modulo n_ranks = rank. Freeing a shard's blocks is most
 * of a removal (12-22 ms for a shard of a 9,000-game sweep on ext4; on
 * Lustre each is also a metadata server's request): the ranks share it. */
void bz_sched_remove_shards(const char *parts, int rank, int n_ranks);

/* ---- the follower merge (sched_follow.c) ---- */

/* The last line of a segment's journal once the runner closed the segment
 * and synced it: the follower may read it from then on. */
#define BZ_SEGMENT_CLOSED "closed\n"

/* Whether a sweep merges while it plays: BAZAAR_MERGE_FOLLOW=1 yes, =0 no,
 * unset -1: sched.c decides (where rank 0's node has a CPU that no rank
 * plays on, or where more than one rank plays). */
int bz_sched_follow_mode(void);

struct bz_follow;
struct bz_out_lock;
/* Rank 0, once the parts folder exists: start the follower merge (bazaar
 * merge --follow, this executable run again) on the sweep's parts folder,
 * OUT, this attempt's number, the number of games, OUT's layout (--layout
 * of the follower's command line), its nice increment (--nice; the
 * environment's BAZAAR_MERGE_FOLLOW_NICE wins), the sources the run
 * starts from (closed: OUT, older attempts' shards) and the output's lock
 * (passed down). BZ_OK with *f, or an error code and why in err (the run
 * then merges at the end as before). */
int bz_follow_start(const char *parts, const char *out, int attempt, int64_t n_games,
                    enum bz_layout layout, int nice_inc, char *const *sources, size_t n_sources,
                    const struct bz_out_lock *lock, struct bz_follow **f, struct bz_err *err);
/* Play ended and every segment is closed: send the final merge's sources
 * (in its order) and the provenance, wait for the follower. BZ_OK: OUT is
 * written; else why in err (the caller merges itself). Frees f. */
int bz_follow_finish(struct bz_follow *f, char *const *sources, size_t n_sources,
                     const struct bz_provenance *prov, struct bz_err *err);
/* No merge (a stop, an error): EOF without the final message; the follower
 * removes its tmp. Waits for it; frees f; NULL is fine. */
void bz_follow_cancel(struct bz_follow *f);
/* The follower itself (bazaar merge --follow; layout: OUT's; nice_inc: the
 * increment to its priority; parent: rank 0's pid, whose
 * death ends it at once, removing its tmp): returns when OUT is written
 * (BZ_OK) or when it gave up (tmp removed). */
int bz_follow_main(const char *parts, const char *out, int attempt, int64_t n_games,
                   enum bz_layout layout, int nice_inc, int lock_fd, long parent,
                   char *const *initial, size_t n_initial, struct bz_err *err);

/* ---- LLM budget (sched_budget.c) ---- */

/* What the recorded LLM calls of the file at path cost (cache hits cost
 * nothing), added to *tokens and *cost: the budget counts what earlier
 * attempts of a resumed sweep already spent. */
int bz_sched_add_spend(const char *path, int64_t *tokens, double *cost, struct bz_err *err);

/* Rank 0's view of the spending: earlier attempts plus every rank's latest
 * totals. Without a budget in the spec nothing is tracked. */
struct bz_sched_spend {
    struct bz_budget budget;
    int64_t spent_tokens; /* by earlier attempts */
    double spent_cost;
    int64_t *rank_tokens; /* latest LLM totals per rank; NULL: no budget */
    double *rank_cost;
    int n_ranks;
    int hit; /* the budget was reached */
};

int bz_sched_spend_init(struct bz_sched_spend *s, const struct bz_budget *budget,
                        int64_t spent_tokens, double spent_cost, int n_ranks, struct bz_err *err);
void bz_sched_spend_cleanup(struct bz_sched_spend *s);
/* Record rank's latest totals; returns 1 (and says so on stderr) the first
 * time the spending of all reaches the budget, else 0. */
int bz_sched_spend_update(struct bz_sched_spend *s, int rank, int64_t tokens, double cost_usd);

/* ---- progress (sched_progress.c) ---- */

struct bz_sched_progress {
    int tty;
    double start, last, interval;
    int64_t total, done, failed, base;
    int quiet;
};

double bz_sched_now_s(void); /* monotonic seconds */
/* A progress line on stderr, at most every interval (0.2 s on a terminal);
 * final: now, and end the bar's line. */
void bz_sched_progress_print(struct bz_sched_progress *pr, int final);

#endif
