/* sched: the sweep runner. Rank 0 coordinates: it hands out game ids on
 * demand in shrinking batches (guided scheduling: fast and slow games balance)
 * and plays games itself between requests. Every rank keeps up to K live
 * games, appends each finished one to its own shard (a fresh shard per rank
 * and attempt), and at the end rank 0 merges all shards into the results
 * file. The only file that calls MPI; never writes HDF5 itself (out does).
 * Its parts: runner.c (one rank's live games and shard), sched_resume.c
 * (what is still to play), sched_budget.c (LLM spending), sched_progress.c.
 *
 * Files: OUT (the merged results), OUT.parts/ (shards
 * a<attempt>-r<rank>-<segment>.h5, their journals, sweep.id). Resume trusts
 * only /games rows of shards that open (and of OUT itself); unreadable
 * shards are set aside as *.bad. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_OR */
#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/out.h"
#include "bazaar/out_lock.h"
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

static void iso_time(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
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

/* Wait for a nonblocking MPI operation without spinning: a waiting rank
 * sleeps between tests (20 us doubling to 2 ms), so it leaves the core to the
 * ranks still playing and to rank 0's merge. Open MPI's blocking calls poll
 * the network at full speed instead, which made 2 ranks slower than 1 on a
 * node where rank 0 merges while the others wait for its verdict. */
static void wait_idle(MPI_Request *req, const char *what)
{
    long ns = 20000;
    for (;;) {
        int done = 0;
        mpi_check(MPI_Test(req, &done, MPI_STATUS_IGNORE), what);
        if (done)
            return;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        if (ns < 2000000)
            ns *= 2;
    }
}

/* The CPUs that the ranks of rank 0's node were given (their union; on
 * rank 0) and how many ranks that node runs. Collective over all ranks;
 * without MPI, this process's CPUs and 1. */
static void root_node_cpus(cpu_set_t *mine, cpu_set_t *all, int *local)
{
    CPU_ZERO(mine);
    CPU_ZERO(all);
    if (sched_getaffinity(0, sizeof *mine, mine) != 0)
        CPU_ZERO(mine);
    *local = 1;
    if (!use_mpi) {
        *all = *mine;
        return;
    }
    MPI_Comm node;
    mpi_check(
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, my_rank, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
    mpi_check(MPI_Reduce(mine, all, (int)sizeof *mine, MPI_BYTE, MPI_BOR, 0, node), "MPI_Reduce");
    mpi_check(MPI_Comm_size(node, local), "MPI_Comm_size");
    MPI_Comm_free(&node);
}

/* While rank 0 merges, the other ranks sleep: rank 0 (and so the merge's
 * compression threads, which inherit its CPU set) may run on every CPU that
 * a rank of its node was given. Collective over all ranks. */
static void lend_cpus_to_root(void)
{
    cpu_set_t mine, all;
    int local;
    root_node_cpus(&mine, &all, &local);
    if (my_rank == 0 && CPU_COUNT(&all) > CPU_COUNT(&mine))
        sched_setaffinity(0, sizeof all, &all); /* a refusal only costs speed */
}

/* MPI_Bcast of one int from rank 0, waiting without spinning. */
static void bcast_int(int *v, const char *what)
{
    MPI_Request req;
    mpi_check(MPI_Ibcast(v, 1, MPI_INT, 0, MPI_COMM_WORLD, &req), what);
    wait_idle(&req, what);
}

/* Whether this run has a follower merge (every rank learns it: segments
 * close at its cadence), whether rank 0's node has a CPU beyond one per
 * rank (*spare), and the follower's nice increment (*nice_inc, rank 0's).
 * BAZAAR_MERGE_FOLLOW=1/0 on rank 0 decides; unset:
 * - where a CPU is spare, a follower at nice +10: it runs on that CPU and
 *   yields it to the play;
 * - else where more than one rank plays, a follower at nice 0: every CPU
 *   plays, so its work is on the critical path wherever it runs; run
 *   beside the play it overlaps with it instead of following it on one
 *   CPU (measured on 2 CPUs, 9,000 games, 2 ranks: 0.86x the end-to-end
 *   time of merging after the play in both layouts; at nice +10 it is
 *   starved, finishes after the play, and gains only 0.93-0.96x);
 * - else (one rank, one CPU) none: nothing runs beside the play, and a
 *   merge in segments costs more than one after it. Collective. */
static int decide_follow(const struct bz_run_options *opt, int *spare, int *nice_inc)
{
    cpu_set_t mine, all;
    int local, follow = 0, idle = 0;
    root_node_cpus(&mine, &all, &local);
    if (my_rank == 0 && !opt->dispatch_only) {
        int mode = bz_sched_follow_mode();
        idle = CPU_COUNT(&all) > local;
        follow = mode >= 0 ? mode : idle || n_ranks > 1;
    }
    *nice_inc = idle ? 10 : 0;
    int both = follow | idle << 1;
    if (use_mpi && n_ranks > 1)
        bcast_int(&both, "MPI_Ibcast");
    *spare = both >> 1;
    return both & 1;
}

/* Threads that deflate a rank's shard chunks in the virtual layout: one
 * where rank 0's node has a CPU beyond one per rank (as for the follower,
 * which then shares it), else none (the rank deflates them itself);
 * BAZAAR_SHARD_THREADS=N sets it. */
static int shard_threads(const struct bz_run_options *opt, int spare)
{
    const char *e = getenv("BAZAAR_SHARD_THREADS");
    if (opt->layout != BZ_LAYOUT_VIRTUAL)
        return 0;
    if (e && *e)
        return atoi(e) > 0 ? atoi(e) : 0;
    return spare ? 1 : 0;
}

/* MPI_Allreduce(MAX) of one int, waiting without spinning. */
static int max_int(int v, const char *what)
{
    int worst = v;
    MPI_Request req;
    mpi_check(MPI_Iallreduce(&v, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &req), what);
    wait_idle(&req, what);
    return worst;
}

/* Abort every rank: a rank that cannot go on must not leave the others
 * hanging in a receive. */
static void fail_all(const struct bz_err *err)
{
    fprintf(stderr, "bazaar: rank %d: %s\n", my_rank, err->msg);
    if (use_mpi && n_ranks > 1)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

/* ---- the run ------------------------------------------------------------ */

struct coord {
    const int64_t *todo;
    int64_t n_todo, next;
    int max_batch;
    int workers_left; /* workers that have not said bye */
    int stopping;
    struct bz_sched_spend spend; /* LLM spending against the budget */
};

struct rank_ctx {
    struct bz_runner *runner;
    struct coord co;
    struct bz_sched_progress pr;
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
        if (c->q_len) /* the first push has no queue yet: memmove(NULL, ...) is UB */
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

/* Rank 0: a rank's latest LLM totals; stop handing out games once the
 * spending of all ranks reaches the spec's budget. */
static void coord_spend(struct coord *co, int rank, int64_t tokens, double cost_usd)
{
    if (bz_sched_spend_update(&co->spend, rank, tokens, cost_usd))
        co->stopping = 1;
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
        coord_spend(&c->co, st.MPI_SOURCE, req[4], (double)req[5] * 1e-6);
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
        wait_idle(&c->reply_req, "waiting for game ids");
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
            if (c->co.spend.rank_tokens) {
                int64_t tokens;
                double cost;
                bz_runner_llm_totals(c->runner, &tokens, &cost);
                coord_spend(&c->co, 0, tokens, cost);
            }
            coord_service(c);
            c->pr.done += c->completed_unreported;
            c->pr.failed += c->failed_unreported;
            c->completed_unreported = c->failed_unreported = 0;
            bz_sched_progress_print(&c->pr, 0);
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
            bz_sched_progress_print(&c->pr, 0);
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
    return max_int(rc, "MPI_Allreduce");
}

static int run_ranks(const struct bz_run_options *opt, struct bz_run_stats *stats,
                     struct bz_err *err)
{
    int rc = BZ_OK;
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    struct bz_sched_plan plan = {0};
    struct rank_ctx c = {0};
    struct bz_out_lock *lock = NULL;   /* rank 0: held for the whole run */
    struct bz_follow *follower = NULL; /* rank 0: merges while the sweep plays */
    double t0 = bz_sched_now_s();
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
        rc = bz_sched_plan_create(&plan, opt, out, grid, 0, err);
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
        bcast_int(&attempt, "MPI_Bcast");
    snprintf(plan.parts, sizeof plan.parts, "%s.parts", out);

    c.co.todo = plan.todo;
    c.co.n_todo = plan.n_todo;
    c.co.max_batch = opt->max_batch > 0 ? opt->max_batch : DEFAULT_MAX_BATCH;
    c.co.workers_left = n_ranks - 1;
    if (my_rank == 0) {
        rc = bz_sched_spend_init(&c.co.spend, bz_spec_budget(spec), plan.spent_tokens,
                                 plan.spent_cost, n_ranks, err);
        if (rc)
            goto out;
    }
    c.pr.tty = isatty(2);
    c.pr.quiet = opt->quiet;
    c.pr.start = c.pr.last = bz_sched_now_s();
    c.pr.interval = opt->progress_interval_s > 0 ? opt->progress_interval_s : 5.0;
    c.pr.total = plan.n_games;
    c.pr.done = c.pr.base = plan.n_games - plan.n_todo;

    char shard[BZ_SCHED_PATH_MAX + 64];
    snprintf(shard, sizeof shard, "%s/a%d-r%d", plan.parts, attempt, my_rank);
    int spare = 0, nice_inc = 10, follow = decide_follow(opt, &spare, &nice_inc);
    struct bz_runner_options ro = {
        .grid = grid,
        .spec = spec,
        .shard_prefix = opt->dispatch_only ? NULL : shard,
        .replay = opt->replay,
        .follow = follow,
        .follow_spare = follow && spare,
        .layout = opt->layout,
        .shard_threads = shard_threads(opt, spare),
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
    /* Every check passed on every rank: only now does anything reach the
     * disk (a refused run leaves nothing behind). */
    if (my_rank == 0 && !opt->dispatch_only) {
        struct bz_provenance prov = {
            .spec_json = bz_spec_json(spec),
            .version = BZ_VERSION,
            .git_commit = BZ_GIT_COMMIT,
            .hosts = hosts,
            .started_at = started,
            .ranks = n_ranks,
            .n_games = plan.n_games,
        };
        rc = bz_sched_plan_prepare(&plan, &prov, err);
    }
    if ((rc = agree(rc))) {
        if (!err->msg[0])
            bz_err_set(err, rc, "rank 0 could not prepare %s", plan.parts);
        goto out;
    }
    if ((rc = agree(bz_runner_ready(c.runner, err)))) {
        if (!err->msg[0])
            bz_err_set(err, rc, "another rank could not open its shard");
        goto out;
    }
    if (my_rank == 0 && opt->resume && !opt->quiet)
        fprintf(stderr, "bazaar: resuming: %lld of %lld games already recorded\n",
                (long long)c.pr.base, (long long)plan.n_games);
    /* The follower merge: it reads only closed files (what the run starts
     * from, and segments once the runner marked them closed). */
    struct bz_err start_err = {0};
    if (my_rank == 0 && follow &&
        bz_follow_start(plan.parts, out, attempt, plan.n_games, opt->layout, nice_inc, plan.sources,
                        plan.n_sources, lock, &follower, &start_err) != BZ_OK)
        fprintf(stderr, "bazaar: cannot start the follower merge (%s); merging after the play\n",
                start_err.msg);
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
    int merged = 0; /* rank 0 wrote OUT */
    int stopped = c.stopping || stop_signal;
    if (use_mpi && n_ranks > 1) {
        stopped = max_int(stopped, "MPI_Allreduce");
        lend_cpus_to_root();
    }
    if (my_rank == 0) {
        bz_sched_progress_print(&c.pr, 1);
        stats->games_total = plan.n_games;
        stats->games_skipped = c.pr.base;
        stats->games_played = c.pr.done - c.pr.base;
        stats->games_failed = c.pr.failed;
        if (opt->dispatch_only) {
            rc = BZ_OK;
        } else if (stopped || c.co.spend.hit || c.pr.done < plan.n_games) {
            rc = bz_err_set(err, BZ_ESTOP,
                            "%s with %lld of %lld games recorded; run the same command "
                            "with --resume to finish%s",
                            c.co.spend.hit ? "budget reached" : "stopped", (long long)c.pr.done,
                            (long long)plan.n_games,
                            c.co.spend.hit ? " (raise \"budget\" in the spec first)" : "");
        } else {
            /* every readable source: OUT (resume), old shards, this attempt's */
            char **shards = NULL;
            size_t n_shards = 0;
            struct bz_sched_plan again = {0};
            struct bz_run_options ropt = *opt;
            ropt.resume = 1;
            /* every source was checked when this run started or was just
             * written and closed by it: no need to read them back again */
            rc = bz_sched_plan_create(&again, &ropt, out, grid, 1, err);
            if (!rc)
                rc = bz_sched_plan_set_aside(&again, err);
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
                rc = BZ_EIO; /* not merged yet */
                if (follower) {
                    struct bz_err ferr = {0};
                    rc = bz_follow_finish(follower, shards, n_shards, &prov, &ferr);
                    follower = NULL;
                    if (rc) /* a user never loses a run to the follower */
                        fprintf(stderr, "bazaar: %s; merging in this process\n", ferr.msg);
                }
                if (rc != BZ_OK)
                    rc = bz_merge_layout((const char *const *)shards, n_shards, out, &prov,
                                         opt->layout, err);
                merged = !rc;
            }
            bz_sched_plan_cleanup(&again);
        }
    }
    if (use_mpi && n_ranks > 1) {
        bcast_int(&rc, "MPI_Bcast"); /* the others sleep while rank 0 merges */
        bcast_int(&merged, "MPI_Bcast");
    }
    /* OUT is complete: the shards are redundant. Every rank removes its
     * share of them, then rank 0 the rest. */
    if (merged && use_mpi && n_ranks > 1) {
        bz_sched_remove_shards(plan.parts, my_rank, n_ranks);
        (void)max_int(0, "MPI_Allreduce");
    }
    if (merged && my_rank == 0)
        bz_sched_remove_parts(plan.parts);
out:
    bz_follow_cancel(follower); /* no merge: it removes its tmp */
    stats->seconds = bz_sched_now_s() - t0;
    stats->ranks = n_ranks;
    bz_runner_destroy(c.runner);
    bz_sched_spend_cleanup(&c.co.spend);
    free(c.queue);
    bz_sched_plan_cleanup(&plan);
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
