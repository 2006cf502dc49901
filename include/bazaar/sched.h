/* sched: runs a sweep. Rank 0 coordinates (hands out game ids in batches on
 * demand) and plays games when it has spare time; every rank keeps up to K
 * live games, writes finished ones to its own shard, and at the end rank 0
 * merges the shards into one results file ordered by game_id. Resumable after
 * any kill. The only module that calls MPI. */
#ifndef BAZAAR_SCHED_H
#define BAZAAR_SCHED_H

#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/out.h"

struct bz_run_options {
    const char *spec_path;
    const char *out_path;       /* NULL: the spec's output */
    int resume;                 /* play only games not yet recorded */
    int replay;                 /* LLM: refuse any call not in the cache */
    int quiet;                  /* no progress output */
    double progress_interval_s; /* log-line interval when stderr is not a tty */
    int dispatch_only;          /* bench: hand out ids, play nothing, write nothing */
    int max_batch;              /* largest batch of ids per request (0: default) */
    enum bz_layout layout;      /* the results file's layout (`bazaar run`'s
                                   default: BZ_LAYOUT_VIRTUAL; every rank's shards
                                   and the merge follow it); a resumed sweep
                                   may change it: shards of either kind merge
                                   in either layout */
};

struct bz_run_stats {
    int64_t games_total;
    int64_t games_played; /* by this run */
    int64_t games_failed;
    int64_t games_skipped; /* already recorded (resume) */
    double seconds;
    int ranks;
};

/* Run a sweep. Returns BZ_OK (complete and merged), BZ_ESTOP (clean stop by
 * signal or budget: resume later), BZ_EINVAL (bad input, nothing started) or
 * another code on failure; err names what happened. Initialises and finalises
 * MPI when launched by mpirun/srun; runs as a single rank otherwise. */
int bz_sched_run(const struct bz_run_options *opt, struct bz_run_stats *stats, struct bz_err *err);

/* Give the LLM agents of every lineup their capability from the models
 * registry (so /agents.capability carries it). No-op without LLM agents. */
struct bz_grid;
struct bz_spec;
int bz_sched_resolve_agents(struct bz_grid *grid, const struct bz_spec *spec, struct bz_err *err);

/* The provenance `bazaar run` stored in OUT.parts/ when its latest attempt
 * started (spec, version, git commit, hosts, ranks, n_games), for a merge by
 * hand of that folder. Strings point into *buf (caller frees it). A folder
 * with none (nothing started there, or written by an older bazaar): BZ_OK
 * with *buf NULL and prov untouched; BZ_EINVAL when it is not one bazaar
 * wrote, BZ_EIO when it cannot be read. */
struct bz_provenance;
int bz_sched_parts_provenance(const char *parts, struct bz_provenance *prov, char **buf,
                              struct bz_err *err);

/* 1 on the rank that should talk to the user (rank 0, or no MPI). */
int bz_sched_is_root(void);

#endif
