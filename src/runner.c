/* runner: one rank's worker. Holds up to K live games (K = the spec's
 * llm.live_games when LLM agents play, else 1: heuristic games never wait),
 * advances them, and appends each finished game to the rank's shard, its
 * /games row last. Never calls MPI (sched.c does). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/llm.h"
#include "bazaar/match.h"
#include "bazaar/out.h"
#include "sched_internal.h"

/* A new shard segment every so many games or seconds: a kill that lands
 * inside a flush can leave the segment being written unreadable, and then
 * only that segment's games are played again. */
#define SEGMENT_MAX_GAMES 5000
#define SEGMENT_MAX_S 300.0
/* While a follower merges (sched_follow.c), it reads only closed segments,
 * so a segment also closes once it is max(SEGMENT_FOLLOW_MIN_S, elapsed /
 * SEGMENT_FOLLOW_DIV) old, elapsed being the time this rank has played so
 * far (and never later than the limits above). The follower then lags the
 * play by about 1/16 of the time played (it merges the rest after the
 * play: about 1/16 of the merge), and a rank writes about 16 segments in
 * its first 4 s and 16 more each time its play time grows by e (~125 in an
 * hour; then one per SEGMENT_MAX_S): few files, each closed with one more
 * fsync. Where the follower has a CPU of its own, a segment costs the
 * play only its close, and the minimum is SEGMENT_FOLLOW_SPARE_MIN_S: in
 * a short sweep less is left to merge after the play (1 rank on 2 CPUs,
 * 1,500 games: 0.93-0.95x the end-to-end time; at 9,000 no change). Where
 * the follower shares the CPUs with the ranks, every segment's open and
 * close take CPU from the play (2 ranks on 2 CPUs, 9,000 games: 1.03x
 * with 0.1 s), so the minimum stays SEGMENT_FOLLOW_MIN_S. */
#define SEGMENT_FOLLOW_MIN_S 0.25
#define SEGMENT_FOLLOW_SPARE_MIN_S 0.1
#define SEGMENT_FOLLOW_DIV 16.0

/* BAZAAR_SEGMENT_GAMES overrides the games per segment (tuning, tests). */
static int64_t segment_max_games(void)
{
    const char *v = getenv("BAZAAR_SEGMENT_GAMES");
    long long n = v ? atoll(v) : 0;
    return n > 0 ? (int64_t)n : SEGMENT_MAX_GAMES;
}

/* BAZAAR_FLUSH_BYTES overrides BZ_MATCH_FLUSH_BYTES (tests: 1 puts a
 * game's rows to the shard after every phase). */
static size_t flush_bytes(void)
{
    const char *v = getenv("BAZAAR_FLUSH_BYTES");
    long long n = v ? atoll(v) : 0;
    return n > 0 ? (size_t)n : BZ_MATCH_FLUSH_BYTES;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* BAZAAR_TEST_GAME_DELAY_MS: sleep this long after each committed game, so
 * that tests of stopping, requeueing and resuming (SLURM's signal comes on a
 * 30 s tick) get a sweep that lasts without writing gigabytes. A stop
 * signal cuts the sleep short. Not for production use. */
static long test_game_delay_ms(void)
{
    const char *v = getenv("BAZAAR_TEST_GAME_DELAY_MS");
    long ms = v ? atol(v) : 0;
    return ms > 0 ? ms : 0;
}

struct slot {
    struct bz_game_config cfg; /* must outlive the match */
    struct bz_match *match;
    double started; /* monotonic seconds, for llm.max_game_seconds */
};

struct bz_runner {
    struct bz_runner_options opt;
    struct bz_llm *llm; /* NULL when every agent is heuristic */
    struct bz_llm_hook hook;
    struct bz_shard *shard;
    struct bz_durable *durable; /* the segments' fsyncs and journal lines */
    int segment;                /* number of the open (or next) segment */
    int64_t segment_games, segment_max;
    size_t flush_bytes; /* a live game's rows go to the shard past this */
    long delay_ms;
    double segment_start;
    double started;      /* when the runner was created */
    int follow;          /* a follower merges closed segments */
    double follow_min_s; /* a segment's least age with a follower */
    char seg_path[4200]; /* the open segment's */
    struct slot *slots;
    int k;
    int live;
    double max_game_s; /* llm.max_game_seconds; 0 = none */
};

static int open_segment(struct bz_runner *r, struct bz_err *err);

int bz_runner_create(const struct bz_runner_options *opt, struct bz_runner **out,
                     struct bz_err *err)
{
    *out = NULL;
    struct bz_runner *r = calloc(1, sizeof *r);
    if (!r)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    r->opt = *opt;
    r->k = 1;
    r->segment_max = segment_max_games();
    r->flush_bytes = flush_bytes();
    r->delay_ms = test_game_delay_ms();
    r->follow = opt->follow;
    r->follow_min_s = opt->follow_spare ? SEGMENT_FOLLOW_SPARE_MIN_S : SEGMENT_FOLLOW_MIN_S;
    r->started = now_s();
    if (opt->spec && opt->shard_prefix && bz_spec_has_llm(opt->spec)) {
        struct bz_llm_options lo = {.replay = opt->replay};
        int rc = bz_llm_create(opt->spec, &lo, &r->llm, err);
        if (rc) {
            free(r);
            return rc;
        }
        r->hook = bz_llm_hook(r->llm);
        /* LLM games wait on the network: keep K of them in flight */
        r->k = bz_spec_llm(opt->spec)->live_games > 0 ? bz_spec_llm(opt->spec)->live_games : 1;
        r->max_game_s = bz_spec_llm(opt->spec)->max_game_seconds;
    }
    r->slots = calloc((size_t)r->k, sizeof *r->slots);
    if (!r->slots) {
        bz_runner_destroy(r);
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    }
    int rc;
    if (opt->shard_prefix && (rc = bz_durable_create(&r->durable, err))) {
        bz_runner_destroy(r);
        return rc;
    }
    *out = r;
    return BZ_OK;
}

int bz_runner_ready(struct bz_runner *r, struct bz_err *err)
{
    /* Paid requests: the shard and its journal must exist (and be writable)
     * before the first one is sent, not after money was spent. */
    return r->llm && !r->shard && r->opt.shard_prefix ? open_segment(r, err) : BZ_OK;
}

static int fill_capability(void *ctx, struct bz_agent_spec *agents, size_t n, struct bz_err *err)
{
    return bz_llm_fill_capability(ctx, agents, n, err);
}

int bz_sched_resolve_agents(struct bz_grid *grid, const struct bz_spec *spec, struct bz_err *err)
{
    if (!bz_spec_has_llm(spec))
        return BZ_OK;
    return bz_grid_resolve_agents(grid, fill_capability, (void *)bz_spec_llm(spec)->models_path,
                                  err);
}

int bz_runner_slots(const struct bz_runner *r)
{
    return r->k;
}
int bz_runner_live(const struct bz_runner *r)
{
    return r->live;
}

/* The match's flush hook: rows of the live game, uncommitted, to the open
 * segment. The segment is closed only between games (see commit), so a
 * game's rows all go to one shard. */
static int flush_rows(void *ctx, const struct bz_records *rows, struct bz_err *err)
{
    struct bz_runner *r = ctx;
    int rc;
    if (!r->shard && (rc = open_segment(r, err)))
        return rc;
    return bz_shard_put(r->shard, rows, err);
}

int bz_runner_start(struct bz_runner *r, int64_t game_id, struct bz_err *err)
{
    if (!r->opt.shard_prefix) { /* dispatch bench: the game is "played" at once */
        r->opt.on_done(r->opt.ctx, 0);
        return BZ_OK;
    }
    struct slot *s = NULL;
    for (int i = 0; i < r->k && !s; i++)
        if (!r->slots[i].match)
            s = &r->slots[i];
    if (!s)
        return bz_err_set(err, BZ_EINTERNAL, "no free slot for game %lld", (long long)game_id);
    int rc = bz_grid_config(r->opt.grid, game_id, &s->cfg, err);
    if (rc)
        return rc;
    /* a label the shard would refuse stops the run before the game is
     * played (and before any LLM call is paid) */
    if ((rc = bz_tables_check_config(&s->cfg, err)))
        return rc;
    rc = bz_match_create(&s->cfg, r->llm ? &r->hook : NULL, &s->match, err);
    if (rc)
        return rc;
    bz_match_set_yield(s->match, r->opt.yield);
    /* heuristic games (one live game at a time, no agent reads its rows
     * back): a long game's rows go to the shard between turns */
    if (!r->llm)
        bz_match_set_flush(s->match, flush_rows, r, r->flush_bytes);
    s->started = now_s();
    r->live++;
    return BZ_OK;
}

static int open_segment(struct bz_runner *r, struct bz_err *err)
{
    char *path = r->seg_path;
    snprintf(path, sizeof r->seg_path, "%s-%d.h5", r->opt.shard_prefix, r->segment++);
    int rc = bz_shard_create(path, &r->shard, err);
    if (rc)
        return rc;
    bz_shard_set_layout(r->shard, r->opt.layout); /* before its first append */
    bz_shard_set_threads(r->shard, r->opt.shard_threads);
    bz_shard_set_group_commit(r->shard, 1);
    bz_shard_set_durable(r->shard, r->durable);
    r->segment_games = 0;
    r->segment_start = now_s();
    return BZ_OK;
}

/* The segment just closed: sync its file (HDF5 wrote its last metadata
 * at the close), then say so in its journal (BZ_SEGMENT_CLOSED) for the
 * follower, on the durability thread after the segment's last lines.
 * Resume does not read the line: a failure here only leaves the segment to
 * the follower's last step. */
static void mark_closed(const struct bz_runner *r)
{
    if (!r->follow)
        return;
    char j[sizeof r->seg_path + 16];
    snprintf(j, sizeof j, "%s.journal", r->seg_path);
    int fd = open(r->seg_path, O_RDONLY | O_CLOEXEC);
    int jfd = fd >= 0 ? open(j, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
    if (jfd < 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct bz_err ignored = {0};
    (void)bz_durable_submit(r->durable, fd, jfd, BZ_SEGMENT_CLOSED, sizeof BZ_SEGMENT_CLOSED - 1,
                            r->seg_path, j, 1, &ignored);
}

/* Close the open segment (after a commit, or at the end). */
static int close_segment(struct bz_runner *r, struct bz_err *err)
{
    if (!r->shard)
        return BZ_OK;
    int rc = bz_shard_close(r->shard, err);
    r->shard = NULL;
    if (!rc)
        mark_closed(r);
    return rc;
}

/* Whether the open segment is full (games, age; with a follower, its age
 * against the time played: see SEGMENT_FOLLOW_MIN_S). */
static int segment_full(const struct bz_runner *r)
{
    double t = now_s(), age = t - r->segment_start, max_s = SEGMENT_MAX_S;
    if (r->follow) {
        double f = (t - r->started) / SEGMENT_FOLLOW_DIV;
        f = f > r->follow_min_s ? f : r->follow_min_s;
        max_s = f < max_s ? f : max_s;
    }
    return r->segment_games >= r->segment_max || age >= max_s;
}

static int commit(struct bz_runner *r, struct slot *s, struct bz_err *err)
{
    int rc = BZ_OK;
    if (!r->shard && (rc = open_segment(r, err)))
        return rc;
    r->segment_games++;
    rc = bz_shard_append(r->shard, bz_match_records(s->match), err);
    if (rc)
        return rc;
    /* group commit: one flush + fsync per batch (bz_shard_sync_due) */
    if (bz_shard_sync_due(r->shard)) {
        rc = bz_shard_sync(r->shard, err);
        if (rc)
            return rc;
    }
    /* A full segment is closed right after a commit, never while a game
     * has uncommitted rows in it: only heuristic games put rows early, one
     * live game at a time (bz_runner_start), and it was just committed. */
    if (segment_full(r) && (rc = close_segment(r, err)))
        return rc;
    const struct bz_rowbuf *games = bz_records_find(bz_match_records(s->match), &bz_games_table);
    int failed = 0;
    if (games && games->n_rows) {
        const struct bz_games_row *g = (const struct bz_games_row *)games->data;
        failed = strcmp(g->status, "ok") != 0;
    }
    bz_match_destroy(s->match);
    s->match = NULL;
    r->live--;
    r->opt.on_done(r->opt.ctx, failed);
    if (r->delay_ms && !bz_sched_stop_requested()) {
        struct timespec ts = {r->delay_ms / 1000, (r->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* EINTR on a stop signal: fine */
    }
    return BZ_OK;
}

int bz_runner_pump(struct bz_runner *r, struct bz_err *err)
{
    int advanced = 0;
    for (int i = 0; i < r->k; i++) {
        struct slot *s = &r->slots[i];
        if (s->match && r->max_game_s > 0 && now_s() - s->started > r->max_game_s) {
            /* llm.max_game_seconds: drop its requests, end it as "timeout"
             * and free the slot */
            char msg[96];
            snprintf(msg, sizeof msg, "timeout: ran longer than llm.max_game_seconds = %g",
                     r->max_game_s);
            bz_llm_cancel(r->llm, s->match);
            bz_match_timeout(s->match, msg);
        }
        if (!s->match || bz_match_pending(s->match) > 0)
            continue;
        advanced++;
        int st = bz_match_advance(s->match, err);
        if (st < 0)
            return -st;
        if (r->llm)
            bz_llm_flush(r->llm); /* its requests go out now, not after every other game's step */
        if (st == BZ_MATCH_DONE) {
            int rc = commit(r, s, err);
            if (rc)
                return rc;
        }
    }
    if (r->llm && (!advanced || bz_llm_inflight(r->llm) > 0)) {
        /* Every live game waits on replies (or some do): let the transfers
         * progress; a replay miss is recorded in the game, not fatal. */
        int rc = bz_llm_poll(r->llm, advanced ? 0 : 50, err);
        if (rc && rc != BZ_ENET)
            return rc;
        if (rc == BZ_ENET)
            fprintf(stderr, "bazaar: %s\n", err->msg);
    }
    return BZ_OK;
}

void bz_runner_llm_totals(const struct bz_runner *r, int64_t *tokens, double *cost_usd)
{
    struct bz_llm_totals t = {0};
    if (r->llm)
        bz_llm_get_totals(r->llm, &t);
    *tokens = t.input_tokens + t.output_tokens;
    *cost_usd = t.cost_usd;
}

void bz_runner_abandon(struct bz_runner *r)
{
    for (int i = 0; i < r->k; i++) {
        if (r->slots[i].match) {
            if (r->llm)
                bz_llm_cancel(r->llm, r->slots[i].match);
            bz_match_destroy(r->slots[i].match);
            r->slots[i].match = NULL;
            r->live--;
        }
    }
}

int bz_runner_close(struct bz_runner *r, struct bz_err *err)
{
    int rc = close_segment(r, err);
    int rc_wait = bz_durable_wait(r->durable, rc ? NULL : err);
    if (!rc)
        rc = rc_wait;
    bz_runner_destroy(r);
    return rc;
}

void bz_runner_destroy(struct bz_runner *r)
{
    if (!r)
        return;
    bz_runner_abandon(r);
    bz_shard_close(r->shard, NULL);
    bz_durable_destroy(r->durable); /* after the shard: its last sync runs first */
    bz_llm_destroy(r->llm);
    free(r->slots);
    free(r);
}
