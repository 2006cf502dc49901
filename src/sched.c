/* sched: the sweep runner. Rank 0 coordinates: it hands out game ids on
 * demand in shrinking batches (guided scheduling: fast and slow games balance)
 * and plays games itself between requests. Every rank keeps up to K live
 * games, appends each finished one to its own shard (a fresh shard per rank
 * and attempt), and at the end rank 0 merges all shards into the results
 * file. The only module that calls MPI; never writes HDF5 itself (out does).
 *
 * Files: OUT (the merged results), OUT.parts/ (shards
 * a<attempt>-r<rank>-<segment>.h5, their journals, sweep.id). Resume trusts
 * only /games rows of shards that open (and of OUT itself); unreadable
 * shards are set aside as *.bad. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/match.h"
#include "bazaar/out.h"
#include "bazaar/out_lock.h"
#include "bazaar/rng.h"
#include "bazaar/sched.h"
#include "bazaar/spec.h"
#include "sched_internal.h"

#define TAG_REQ 1      /* worker -> 0: int64 [completed, failed, want, flags, tokens, micro_usd] */
#define REQ_STOPPING 1 /* flags: this worker got a stop signal */
#define REQ_BYE 2      /* flags: last report of a finished worker, no reply */
#define REQ_LEN 6
#define MAX_REPLY 4096 /* ids in one reply */
#define TAG_WORK 2     /* 0 -> worker: int64 [n, id_1 .. id_n]; n == 0: finish */
#define DEFAULT_MAX_BATCH 64
#define PATH_MAX_BZ 4096

static volatile sig_atomic_t stop_signal;
static int use_mpi;
static int my_rank;
static int n_ranks = 1;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

int bz_sched_is_root(void)
{
    return my_rank == 0;
}

int bz_sched_stop_requested(void)
{
    return stop_signal != 0;
}

/* mpirun (OpenMPI), srun with PMIx/PMI, or MPICH's hydra set one of these;
 * without them we run as one rank and never touch MPI, so a plain
 * `bazaar run` works anywhere (also as root, where OpenMPI would refuse). */
static int launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                       "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void iso_time(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* An MPI call that fails (errors are returned, not fatal, on our
 * communicator) ends the whole job loudly: a rank that cannot talk to the
 * coordinator must not leave the others hanging. */
static void mpi_check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS)
        return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fprintf(stderr, "bazaar: rank %d: %s failed: %s; aborting the job (resume with --resume)\n",
            my_rank, what, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Abort every rank: a rank that cannot go on must not leave the others
 * hanging in a receive. */
static void fail_all(const struct bz_err *err)
{
    fprintf(stderr, "bazaar: rank %d: %s\n", my_rank, err->msg);
    if (use_mpi && n_ranks > 1)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

/* ---- resume: what is already recorded --------------------------------- */

struct plan {
    char out[PATH_MAX_BZ];
    char parts[PATH_MAX_BZ];
    int attempt;
    int64_t n_games;
    int64_t *todo; /* ids still to play, ascending */
    int64_t n_todo;
    int64_t spent_tokens; /* LLM spending recorded by earlier attempts */
    double spent_cost;
    char **sources; /* readable files to merge: OUT first, then shards */
    size_t n_sources;
};

static void plan_cleanup(struct plan *p)
{
    free(p->todo);
    for (size_t i = 0; i < p->n_sources; i++)
        free(p->sources[i]);
    free(p->sources);
    memset(p, 0, sizeof *p);
}

static int add_source(struct plan *p, const char *path)
{
    char **s = realloc(p->sources, (p->n_sources + 1) * sizeof *s);
    if (!s)
        return BZ_ENOMEM;
    p->sources = s;
    p->sources[p->n_sources] = strdup(path);
    if (!p->sources[p->n_sources])
        return BZ_ENOMEM;
    p->n_sources++;
    return BZ_OK;
}

/* Mark the games committed in path as done; on an unreadable file set it
 * aside (rename to .bad) and tell the user. */
static int scan_source(struct plan *p, const char *path, int quick, unsigned char *done,
                       struct bz_err *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    struct bz_err e = {0};
    int rc = quick ? bz_shard_committed_quick(path, &ids, &n, &e)
                   : bz_shard_committed(path, &ids, &n, &e);
    if (rc != BZ_OK) {
        char bad[PATH_MAX_BZ + 8];
        snprintf(bad, sizeof bad, "%s.bad", path);
        if (rename(path, bad) != 0)
            return bz_err_set(err, BZ_EIO, "%s cannot be read (%s) and cannot be set aside: %s",
                              path, e.msg, strerror(errno));
        fprintf(stderr,
                "bazaar: %s cannot be read (%s); set aside as %s, its games will be played "
                "again\n",
                path, e.msg, bad);
        return BZ_OK;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < p->n_games)
            done[ids[i]] = 1;
    free(ids);
    if (add_source(p, path))
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    return BZ_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What the recorded LLM calls of a file cost (cache hits cost nothing): the
 * budget counts what earlier attempts of a resumed sweep already spent. */
struct spend_row {
    int64_t game_id;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost_usd;
    uint8_t cache_hit;
};
static const struct bz_column spend_cols[] = {
    BZ_COL(struct spend_row, game_id, BZ_COL_I64),
    BZ_COL(struct spend_row, input_tokens, BZ_COL_I64),
    BZ_COL(struct spend_row, output_tokens, BZ_COL_I64),
    BZ_COL(struct spend_row, cost_usd, BZ_COL_F64),
    BZ_COL(struct spend_row, cache_hit, BZ_COL_U8),
};
static const struct bz_table_desc spend_table = {
    "/llm_calls", sizeof(struct spend_row), sizeof spend_cols / sizeof spend_cols[0], spend_cols};

static int add_spend(const char *path, int64_t *tokens, double *cost, struct bz_err *err)
{
    struct bz_records rec;
    bz_records_init(&rec);
    int rc = bz_out_read_table(path, &spend_table, &rec, err);
    const struct bz_rowbuf *rb = bz_records_find(&rec, &spend_table);
    for (size_t i = 0; !rc && rb && i < rb->n_rows; i++) {
        const struct spend_row *r = (const struct spend_row *)(rb->data + i * sizeof *r);
        if (!r->cache_hit) {
            *tokens += r->input_tokens + r->output_tokens;
            *cost += r->cost_usd;
        }
    }
    bz_records_cleanup(&rec);
    return rc;
}

/* A sweep's identity: its games' seeds (each a hash of every parameter, the
 * lineup and the repetition) in id order. Resuming with a spec that differs
 * only in things that do not change the games (budget, LLM concurrency,
 * output) is allowed; anything else is refused. */
static uint64_t sweep_fingerprint(const struct bz_grid *grid)
{
    uint64_t h = bz_hash64((uint64_t)bz_grid_count(grid));
    for (int64_t id = 0; id < bz_grid_count(grid); id++) {
        struct bz_game_config cfg;
        if (bz_grid_config(grid, id, &cfg, NULL) != BZ_OK)
            return 0;
        h = bz_hash_combine(h, bz_hash_combine(cfg.seed, cfg.env_seed));
        h = bz_hash_combine(h, bz_hash_str(cfg.ops->name));
    }
    return h;
}

static int check_sweep_id(const char *parts, uint64_t fp, int create, struct bz_err *err)
{
    char path[PATH_MAX_BZ + 16];
    snprintf(path, sizeof path, "%s/sweep.id", parts);
    FILE *f = fopen(path, create ? "wx" : "r");
    if (!f && !create && errno == ENOENT)
        return check_sweep_id(parts, fp, 1, err);
    if (!f)
        return bz_err_set(err, BZ_EIO, "cannot open %s: %s", path, strerror(errno));
    if (create) {
        fprintf(f, "%016llx\n", (unsigned long long)fp);
        return fclose(f) == 0 ? BZ_OK : bz_err_set(err, BZ_EIO, "cannot write %s", path);
    }
    unsigned long long old = 0;
    int n = fscanf(f, "%llx", &old);
    fclose(f);
    if (n != 1 || old != (unsigned long long)fp)
        return bz_err_set(err, BZ_EINVAL,
                          "%s: this spec describes other games than the sweep being resumed "
                          "(only budget, llm settings and output may change); use the same "
                          "spec or choose another -o",
                          parts);
    return BZ_OK;
}

/* mkdir -p of the folder that will hold path (a file). */
static int make_parent_dirs(const char *path, struct bz_err *err)
{
    char dir[PATH_MAX_BZ];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return BZ_OK;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return bz_err_set(err, BZ_EIO, "cannot create %s: %s", dir, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return bz_err_set(err, BZ_EIO, "cannot create %s: %s", dir, strerror(errno));
    return BZ_OK;
}

/* Rank 0: decide what to play. Without resume, refuse to touch existing
 * output; with resume, collect what is recorded. */
static int plan_create(struct plan *p, const struct bz_run_options *opt, const char *out,
                       const struct bz_grid *grid, int quick, struct bz_err *err)
{
    int rc = BZ_OK;
    unsigned char *done = NULL;
    DIR *dir = NULL;
    char **names = NULL;
    size_t n_names = 0;

    snprintf(p->out, sizeof p->out, "%s", out);
    snprintf(p->parts, sizeof p->parts, "%s.parts", out);
    int64_t n_games = bz_grid_count(grid);
    p->n_games = n_games;
    p->attempt = 1;

    if (!opt->resume) {
        if (path_exists(p->out))
            return bz_err_set(err, BZ_EINVAL,
                              "%s exists; use --resume to continue that sweep, or choose "
                              "another -o",
                              p->out);
        if (path_exists(p->parts))
            return bz_err_set(err, BZ_EINVAL,
                              "%s exists (shards of an unfinished sweep); use --resume to "
                              "finish it, or remove it",
                              p->parts);
    }
    if ((rc = make_parent_dirs(p->out, err)))
        return rc;
    done = calloc((size_t)n_games + 1, 1);
    if (!done)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    if (opt->resume && path_exists(p->out)) {
        rc = scan_source(p, p->out, quick, done, err);
        if (rc)
            goto out;
    }
    if (mkdir(p->parts, 0777) != 0 && errno != EEXIST) {
        rc = bz_err_set(err, BZ_EIO, "cannot create %s: %s", p->parts, strerror(errno));
        goto out;
    }
    rc = check_sweep_id(p->parts, sweep_fingerprint(grid), !opt->resume, err);
    if (rc)
        goto out;
    dir = opendir(p->parts);
    if (!dir) {
        rc = bz_err_set(err, BZ_EIO, "cannot read %s: %s", p->parts, strerror(errno));
        goto out;
    }
    for (struct dirent *de; (de = readdir(dir));) {
        int a, r, seg, used = 0;
        if (sscanf(de->d_name, "a%d-r%d-%d.h5%n", &a, &r, &seg, &used) != 3 || !used)
            continue;
        if (a >= p->attempt)
            p->attempt = a + 1;
        if (de->d_name[used] != '\0') /* .bad, .journal */
            continue;
        char **nn = realloc(names, (n_names + 1) * sizeof *nn);
        if (!nn) {
            rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
            goto out;
        }
        names = nn;
        names[n_names] = malloc(strlen(p->parts) + strlen(de->d_name) + 2);
        if (!names[n_names]) {
            rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
            goto out;
        }
        sprintf(names[n_names++], "%s/%s", p->parts, de->d_name);
    }
    if (n_names)
        qsort(names, n_names, sizeof *names, compare_names);
    for (size_t i = 0; i < n_names; i++) {
        rc = scan_source(p, names[i], quick, done, err);
        if (rc)
            goto out;
    }
    p->todo = malloc(((size_t)n_games + 1) * sizeof *p->todo);
    if (!p->todo) {
        rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t g = 0; g < n_games; g++)
        if (!done[g])
            p->todo[p->n_todo++] = g;
    if (opt->resume && p->n_todo > 0 && bz_spec_has_llm(bz_grid_spec(grid)))
        for (size_t i = 0; i < p->n_sources && !rc; i++)
            rc = add_spend(p->sources[i], &p->spent_tokens, &p->spent_cost, err);
out:
    if (dir)
        closedir(dir);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    free(done);
    return rc;
}

/* After a successful merge the shards are redundant: remove them (but keep
 * any set-aside .bad file for the user to inspect). */
static void remove_parts(const char *parts)
{
    DIR *dir = opendir(parts);
    if (!dir)
        return;
    int kept = 0;
    for (struct dirent *de; (de = readdir(dir));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".bad") == 0) {
            kept++;
            continue;
        }
        char path[PATH_MAX_BZ + 256];
        snprintf(path, sizeof path, "%s/%s", parts, de->d_name);
        unlink(path);
    }
    closedir(dir);
    if (kept)
        fprintf(stderr, "bazaar: %d unreadable shard(s) kept in %s for inspection\n", kept, parts);
    else
        rmdir(parts);
}

/* ---- progress ----------------------------------------------------------- */

struct progress {
    int tty;
    double start, last, interval;
    int64_t total, done, failed, base;
    int quiet;
};

static void progress_print(struct progress *pr, int final)
{
    if (pr->quiet)
        return;
    double t = now_s();
    if (!final && t - pr->last < (pr->tty ? 0.2 : pr->interval))
        return;
    pr->last = t;
    double el = t - pr->start;
    int64_t played = pr->done - pr->base;
    double rate = el > 0 ? (double)played / el : 0;
    int64_t left = pr->total - pr->done;
    double eta = rate > 0 ? (double)left / rate : NAN;
    double pct = pr->total ? 100.0 * (double)pr->done / (double)pr->total : 100.0;
    char eta_s[32];
    if (isnan(eta))
        snprintf(eta_s, sizeof eta_s, "?");
    else if (eta < 120)
        snprintf(eta_s, sizeof eta_s, "%.0fs", eta);
    else
        snprintf(eta_s, sizeof eta_s, "%.0fm%02.0fs", floor(eta / 60), fmod(eta, 60));
    if (pr->tty) {
        char bar[31];
        int fill = (int)(pct * 30 / 100);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld games %5.1f%% %.1f games/s ETA %s %lld failed ", bar,
                (long long)pr->done, (long long)pr->total, pct, rate, eta_s, (long long)pr->failed);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "progress: %lld/%lld games (%.1f%%), %.1f games/s, ETA %s, %lld failed\n",
                (long long)pr->done, (long long)pr->total, pct, rate, eta_s, (long long)pr->failed);
    }
    fflush(stderr);
}

/* ---- the run ------------------------------------------------------------ */

struct coord {
    const int64_t *todo;
    int64_t n_todo, next;
    int max_batch;
    int workers_left; /* workers that have not said bye */
    int stopping;
    int budget_hit;
    int64_t *rank_tokens; /* latest LLM totals per rank, for the budget */
    double *rank_cost;
    struct bz_budget budget;
    int64_t spent_tokens; /* by earlier attempts */
    double spent_cost;
};

struct rank_ctx {
    struct bz_runner *runner;
    struct coord co;
    struct progress pr;
    int64_t *queue; /* ids handed to this rank, not yet started */
    int64_t q_head, q_len, q_cap;
    int no_more; /* the coordinator said finish */
    int asking;  /* a worker's request is out, its reply not yet taken */
    MPI_Request reply_req;
    int64_t reply[1 + MAX_REPLY];
    int stopping; /* a stop signal arrived here */
    int64_t completed_unreported, failed_unreported;
};

static int64_t batch_size(const struct coord *co, int64_t want)
{
    int64_t left = co->n_todo - co->next;
    int64_t guided = left / (4 * (int64_t)n_ranks);
    if (guided < 1)
        guided = 1;
    if (guided > co->max_batch)
        guided = co->max_batch;
    int64_t n = guided > want ? guided : want;
    return n < left ? n : left;
}

static int queue_push(struct rank_ctx *c, const int64_t *ids, int64_t n)
{
    if (c->q_head > 0 && c->q_len == 0)
        c->q_head = 0;
    if (c->q_head + c->q_len + n > c->q_cap) {
        if (c->q_len) /* the queue may still be NULL: memmove(NULL, ...) is UB */
            memmove(c->queue, c->queue + c->q_head, (size_t)c->q_len * sizeof *c->queue);
        c->q_head = 0;
        if (c->q_len + n > c->q_cap) {
            int64_t cap = 2 * (c->q_len + n) + 16;
            int64_t *q = realloc(c->queue, (size_t)cap * sizeof *q);
            if (!q)
                return BZ_ENOMEM;
            c->queue = q;
            c->q_cap = cap;
        }
    }
    memcpy(c->queue + c->q_head + c->q_len, ids, (size_t)n * sizeof *ids);
    c->q_len += n;
    return BZ_OK;
}

/* Rank 0: stop handing out games once the LLM spending of all ranks reaches
 * the spec's budget. */
static void coord_check_budget(struct coord *co)
{
    if (!co->rank_tokens || co->budget_hit)
        return;
    int64_t tokens = co->spent_tokens;
    double cost = co->spent_cost;
    for (int r = 0; r < n_ranks; r++) {
        tokens += co->rank_tokens[r];
        cost += co->rank_cost[r];
    }
    if ((co->budget.max_tokens > 0 && tokens >= co->budget.max_tokens) ||
        (co->budget.max_cost_usd > 0 && cost >= co->budget.max_cost_usd)) {
        co->budget_hit = 1;
        co->stopping = 1;
        fprintf(stderr,
                "bazaar: budget reached (%lld tokens, $%.4f): finishing the games in hand\n",
                (long long)tokens, cost);
    }
}

/* Rank 0: answer every waiting request without blocking. */
static void coord_service(struct rank_ctx *c)
{
    if (!use_mpi || n_ranks == 1)
        return;
    int64_t reply[1 + MAX_REPLY];
    for (;;) {
        int flag = 0;
        MPI_Status st;
        mpi_check(MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQ, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
        if (!flag)
            return;
        int64_t req[REQ_LEN];
        mpi_check(MPI_Recv(req, REQ_LEN, MPI_INT64_T, st.MPI_SOURCE, TAG_REQ, MPI_COMM_WORLD,
                           MPI_STATUS_IGNORE),
                  "receiving a request");
        c->pr.done += req[0];
        c->pr.failed += req[1];
        if (req[3] & REQ_STOPPING)
            c->co.stopping = 1;
        if (c->co.rank_tokens) {
            c->co.rank_tokens[st.MPI_SOURCE] = req[4];
            c->co.rank_cost[st.MPI_SOURCE] = (double)req[5] * 1e-6;
            coord_check_budget(&c->co);
        }
        if (req[3] & REQ_BYE) {
            c->co.workers_left--;
            continue;
        }
        int64_t n = 0;
        if (!c->co.stopping && !stop_signal) {
            int64_t want = req[2] < MAX_REPLY ? req[2] : MAX_REPLY;
            n = batch_size(&c->co, want);
            if (n > MAX_REPLY)
                n = MAX_REPLY;
        }
        reply[0] = n;
        for (int64_t i = 0; i < n; i++)
            reply[1 + i] = c->co.todo[c->co.next++];
        mpi_check(
            MPI_Send(reply, (int)(1 + n), MPI_INT64_T, st.MPI_SOURCE, TAG_WORK, MPI_COMM_WORLD),
            "sending game ids");
    }
}

/* Rank 0 takes more ids for itself straight from the todo list. */
static int take_work(struct rank_ctx *c, int64_t want)
{
    int64_t n = (c->co.stopping || stop_signal) ? 0 : batch_size(&c->co, want);
    int rc = n > 0 ? queue_push(c, c->co.todo + c->co.next, n) : BZ_OK;
    c->co.next += n;
    if (n == 0)
        c->no_more = 1;
    return rc;
}

/* A worker asks rank 0 for up to `want` more ids, reporting the games it
 * finished since its last request; the reply is received in the background
 * (worker_reply), so live games go on meanwhile. */
static void worker_report(struct rank_ctx *c, int64_t want, int flags)
{
    int64_t tokens;
    double cost;
    bz_runner_llm_totals(c->runner, &tokens, &cost);
    int64_t req[REQ_LEN] = {c->completed_unreported, c->failed_unreported, want, flags, tokens,
                            (int64_t)(cost * 1e6)};
    c->completed_unreported = c->failed_unreported = 0;
    mpi_check(MPI_Send(req, REQ_LEN, MPI_INT64_T, 0, TAG_REQ, MPI_COMM_WORLD),
              "reporting to rank 0");
}

static void worker_ask(struct rank_ctx *c, int64_t want)
{
    worker_report(c, want, c->stopping ? REQ_STOPPING : 0);
    mpi_check(
        MPI_Irecv(c->reply, 1 + MAX_REPLY, MPI_INT64_T, 0, TAG_WORK, MPI_COMM_WORLD, &c->reply_req),
        "receiving game ids");
    c->asking = 1;
}

/* Take the reply to the worker's request if it is there (or wait for it when
 * block): ids to the queue, or no_more when rank 0 says finish. Ids that
 * arrive after a stop are dropped: they are not recorded, so a resume plays
 * them. */
static int worker_reply(struct rank_ctx *c, int block)
{
    int done = 0;
    if (!c->asking)
        return BZ_OK;
    if (block)
        mpi_check(MPI_Wait(&c->reply_req, MPI_STATUS_IGNORE), "waiting for game ids");
    else
        mpi_check(MPI_Test(&c->reply_req, &done, MPI_STATUS_IGNORE), "testing for game ids");
    if (!block && !done)
        return BZ_OK;
    c->asking = 0;
    if (c->reply[0] == 0) {
        c->no_more = 1;
        return BZ_OK;
    }
    return c->stopping ? BZ_OK : queue_push(c, c->reply + 1, c->reply[0]);
}

static void on_game_done(void *ctx, int failed)
{
    struct rank_ctx *c = ctx;
    c->completed_unreported++;
    if (failed)
        c->failed_unreported++;
}

/* One rank's loop: keep the runner fed until the coordinator says finish or
 * a stop arrives; rank 0 also coordinates and reports progress. */
static int rank_loop(struct rank_ctx *c, struct bz_err *err)
{
    int k = bz_runner_slots(c->runner);
    for (;;) {
        if (my_rank == 0) {
            if (c->co.rank_tokens) {
                bz_runner_llm_totals(c->runner, &c->co.rank_tokens[0], &c->co.rank_cost[0]);
                coord_check_budget(&c->co);
            }
            coord_service(c);
            c->pr.done += c->completed_unreported;
            c->pr.failed += c->failed_unreported;
            c->completed_unreported = c->failed_unreported = 0;
            progress_print(&c->pr, 0);
        }
        if (stop_signal && !c->stopping) {
            c->stopping = 1;
            c->co.stopping = 1;
            bz_runner_abandon(c->runner);
            c->q_len = 0;
        }
        while (!c->stopping && c->q_len > 0 && bz_runner_live(c->runner) < k) {
            int rc = bz_runner_start(c->runner, c->queue[c->q_head], err);
            if (rc)
                return rc;
            c->q_head++;
            c->q_len--;
        }
        int live = bz_runner_live(c->runner);
        /* Free slots and nothing queued: get more work (a worker keeps its
         * live games going while the request is answered). */
        if (!c->no_more && c->q_len == 0 && live < k) {
            int rc = BZ_OK;
            if (my_rank == 0)
                rc = c->stopping ? (c->no_more = 1, BZ_OK) : take_work(c, k - live);
            else if (!c->asking)
                worker_ask(c, k - live);
            if (rc)
                return bz_err_set(err, rc, "out of memory queueing game ids");
        }
        if (c->asking) {
            int rc = worker_reply(c, live == 0); /* nothing else to do: wait */
            if (rc)
                return bz_err_set(err, rc, "out of memory queueing game ids");
        }
        if (live == 0) {
            if (c->no_more && !c->asking)
                break;
            continue;
        }
        int rc = bz_runner_pump(c->runner, err);
        if (rc)
            return rc;
    }
    if (my_rank != 0 && use_mpi)
        worker_report(c, 0, REQ_BYE | (c->stopping ? REQ_STOPPING : 0));
    if (my_rank == 0) {
        c->pr.done += c->completed_unreported; /* rank 0's own last games */
        c->pr.failed += c->failed_unreported;
        c->completed_unreported = c->failed_unreported = 0;
        /* Tell every worker to finish, then wait for their last reports. */
        while (c->co.workers_left > 0) {
            coord_service(c);
            progress_print(&c->pr, 0);
            if (c->co.workers_left > 0) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    return BZ_OK;
}

static void gather_hosts(char *hosts, size_t n)
{
    char name[MPI_MAX_PROCESSOR_NAME] = "";
    if (use_mpi) {
        int len = 0;
        MPI_Get_processor_name(name, &len);
    } else {
        gethostname(name, sizeof name - 1);
    }
    hosts[0] = '\0';
    if (!use_mpi || n_ranks == 1) {
        snprintf(hosts, n, "%s", name);
        return;
    }
    char *all = my_rank == 0 ? calloc((size_t)n_ranks, MPI_MAX_PROCESSOR_NAME) : NULL;
    mpi_check(MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME,
                         MPI_CHAR, 0, MPI_COMM_WORLD),
              "gathering host names");
    if (!all)
        return;
    size_t len = 0;
    for (int r = 0; r < n_ranks; r++) {
        const char *h = all + (size_t)r * MPI_MAX_PROCESSOR_NAME;
        int seen = 0;
        for (int q = 0; q < r && !seen; q++)
            seen = strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME) == 0;
        if (seen)
            continue;
        int w = snprintf(hosts + len, n - len, "%s%s", len ? "," : "", h);
        if (w < 0 || (size_t)w >= n - len)
            break;
        len += (size_t)w;
    }
    free(all);
}

/* Every rank learns the worst return code of all (bad input anywhere stops
 * all before a game starts). */
static int agree(int rc)
{
    if (!use_mpi || n_ranks == 1)
        return rc;
    int worst = rc;
    mpi_check(MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return worst;
}

static int run_ranks(const struct bz_run_options *opt, struct bz_run_stats *stats,
                     struct bz_err *err)
{
    int rc = BZ_OK;
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    struct plan plan = {0};
    struct rank_ctx c = {0};
    struct bz_out_lock *lock = NULL; /* rank 0: held for the whole run */
    double t0 = now_s();
    char started[32], finished[32], hosts[4096];
    iso_time(started, sizeof started);

    rc = bz_spec_load(opt->spec_path, &spec, err);
    if (!rc)
        rc = bz_grid_create(spec, &grid, err);
    if (!rc)
        rc = bz_sched_resolve_agents(grid, spec, err);
    if (!rc && my_rank == 0)
        rc = bz_grid_check(grid, err);
    const char *out = opt->out_path ? opt->out_path : (spec ? bz_spec_output(spec) : "");
    if (!rc && my_rank == 0)
        rc = bz_out_lock_take(out, &lock, err);
    if (!rc && my_rank == 0)
        rc = plan_create(&plan, opt, out, grid, 0, err);
    int all = agree(rc);
    if (all) {
        if (!rc)
            bz_err_set(err, all, "another rank failed to load %s", opt->spec_path);
        rc = all;
        goto out;
    }
    gather_hosts(hosts, sizeof hosts);
    int attempt = plan.attempt;
    if (use_mpi && n_ranks > 1)
        mpi_check(MPI_Bcast(&attempt, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast");
    snprintf(plan.parts, sizeof plan.parts, "%s.parts", out);

    c.co.todo = plan.todo;
    c.co.n_todo = plan.n_todo;
    c.co.max_batch = opt->max_batch > 0 ? opt->max_batch : DEFAULT_MAX_BATCH;
    c.co.workers_left = n_ranks - 1;
    c.co.budget = *bz_spec_budget(spec);
    c.co.spent_tokens = plan.spent_tokens;
    c.co.spent_cost = plan.spent_cost;
    if (my_rank == 0 && (c.co.budget.max_tokens > 0 || c.co.budget.max_cost_usd > 0)) {
        c.co.rank_tokens = calloc((size_t)n_ranks, sizeof *c.co.rank_tokens);
        c.co.rank_cost = calloc((size_t)n_ranks, sizeof *c.co.rank_cost);
        if (!c.co.rank_tokens || !c.co.rank_cost) {
            rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
            goto out;
        }
    }
    c.pr.tty = isatty(2);
    c.pr.quiet = opt->quiet;
    c.pr.start = c.pr.last = now_s();
    c.pr.interval = opt->progress_interval_s > 0 ? opt->progress_interval_s : 5.0;
    c.pr.total = plan.n_games;
    c.pr.done = c.pr.base = plan.n_games - plan.n_todo;
    if (my_rank == 0 && opt->resume && !opt->quiet)
        fprintf(stderr, "bazaar: resuming: %lld of %lld games already recorded\n",
                (long long)c.pr.base, (long long)plan.n_games);

    char shard[PATH_MAX_BZ + 64];
    snprintf(shard, sizeof shard, "%s/a%d-r%d", plan.parts, attempt, my_rank);
    struct bz_runner_options ro = {
        .grid = grid,
        .spec = spec,
        .shard_prefix = opt->dispatch_only ? NULL : shard,
        .replay = opt->replay,
        .yield = my_rank == 0 && n_ranks > 1,
        .on_done = on_game_done,
        .ctx = &c,
    };
    rc = bz_runner_create(&ro, &c.runner, err);
    rc = agree(rc);
    if (rc) {
        if (!err->msg[0])
            bz_err_set(err, rc, "another rank could not start");
        goto out;
    }
    rc = rank_loop(&c, err);
    if (rc) {
        fail_all(err);
        goto out;
    }
    rc = bz_runner_close(c.runner, err);
    c.runner = NULL;
    if (rc) {
        fail_all(err);
        goto out;
    }
    int stopped = c.stopping || stop_signal;
    if (use_mpi && n_ranks > 1) {
        int any = stopped;
        mpi_check(MPI_Allreduce(&stopped, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD),
                  "MPI_Allreduce");
        stopped = any;
    }
    if (my_rank == 0) {
        progress_print(&c.pr, 1);
        stats->games_total = plan.n_games;
        stats->games_skipped = c.pr.base;
        stats->games_played = c.pr.done - c.pr.base;
        stats->games_failed = c.pr.failed;
        if (opt->dispatch_only) {
            rc = BZ_OK;
        } else if (stopped || c.co.budget_hit || c.pr.done < plan.n_games) {
            rc = bz_err_set(err, BZ_ESTOP,
                            "%s with %lld of %lld games recorded; run the same command "
                            "with --resume to finish%s",
                            c.co.budget_hit ? "budget reached" : "stopped", (long long)c.pr.done,
                            (long long)plan.n_games,
                            c.co.budget_hit ? " (raise \"budget\" in the spec first)" : "");
        } else {
            /* every readable source: OUT (resume), old shards, this attempt's */
            char **shards = NULL;
            size_t n_shards = 0;
            struct plan again = {0};
            struct bz_run_options ropt = *opt;
            ropt.resume = 1;
            /* every source was checked when this run started or was just
             * written and closed by it: no need to read them back again */
            rc = plan_create(&again, &ropt, out, grid, 1, err);
            if (!rc && again.n_todo != 0)
                rc = bz_err_set(err, BZ_EINTERNAL,
                                "%lld games missing from the shards after the run",
                                (long long)again.n_todo);
            if (!rc) {
                shards = again.sources;
                n_shards = again.n_sources;
                iso_time(finished, sizeof finished);
                char version[64];
                snprintf(version, sizeof version, "%s", BZ_VERSION);
                struct bz_provenance prov = {
                    .spec_json = bz_spec_json(spec),
                    .version = version,
                    .git_commit = BZ_GIT_COMMIT,
                    .hosts = hosts,
                    .started_at = started,
                    .finished_at = finished,
                    .ranks = n_ranks,
                    .n_games = plan.n_games,
                };
                rc = bz_merge((const char *const *)shards, n_shards, out, &prov, err);
                if (!rc)
                    remove_parts(plan.parts);
            }
            plan_cleanup(&again);
        }
    }
    if (use_mpi && n_ranks > 1)
        mpi_check(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast");
out:
    stats->seconds = now_s() - t0;
    stats->ranks = n_ranks;
    bz_runner_destroy(c.runner);
    free(c.co.rank_tokens);
    free(c.co.rank_cost);
    free(c.queue);
    plan_cleanup(&plan);
    bz_out_lock_release(lock);
    bz_grid_destroy(grid);
    bz_spec_destroy(spec);
    return rc;
}

int bz_sched_run(const struct bz_run_options *opt, struct bz_run_stats *stats, struct bz_err *err)
{
    memset(stats, 0, sizeof *stats);
    /* before MPI_Init and the (slow) spec checks: a stop that arrives during
     * start-up must stop the run cleanly, not kill it */
    install_signals();
    use_mpi = launched_by_mpi();
    if (use_mpi) {
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return bz_err_set(err, BZ_EIO, "MPI_Init failed");
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    }
    int rc = run_ranks(opt, stats, err);
    if (use_mpi) {
        /* Non-root ranks stay quiet about input errors rank 0 reports. */
        MPI_Finalize();
    }
    return rc;
}
