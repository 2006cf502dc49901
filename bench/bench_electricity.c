/* bench_electricity: heuristic agent-decisions per second per core for the
 * electricity game at N = 10 and N = 1000 agents, records written to an
 * HDF5 shard included (as the runner writes them: rows put to the shard
 * between turns once they pass BZ_MATCH_FLUSH_BYTES, group commit).
 *     bench_electricity [SCALE]          rates, then records vs no records
 *     bench_electricity SCALE records [REPS [CASE]]
 *                                        only the records ratio (plain and
 *                                        virtual layout), REPS times
 *                                        alternated, medians; CASE 0-3: only
 *                                        that game (electricity 10, 1000,
 *                                        beast, item_allocation)
 *     bench_electricity 1 memory         peak memory of one N = 10^5 game,
 *                                        24 vs 96 turns, records on
 * Prints rates and ratios; never asserts a time. */
#define _DEFAULT_SOURCE /* wait4 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/match.h"
#include "bazaar/out.h"
#include "bazaar/spec.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int put_rows(void *ctx, const struct bz_records *rows, struct bz_err *err)
{
    return bz_shard_put(ctx, rows, err);
}

/* Play `games` games of n agents (mixed policies) and write them; *ns: CPU
 * ns per agent-turn; *hwm: most bytes of rows one game held. */
/* Another game's spec (a printf format taking the repetitions) for the
 * records ratio; NULL: electricity. */
static const char *other_spec;
/* The shards' layout (bz_shard_set_layout). */
static enum bz_layout bench_layout = BZ_LAYOUT_PLAIN;

static int bench_run(int n, int turns, int games, int write, int quiet, double *ns, size_t *hwm)
{
    char spec_json[1024];
    const char *at = other_spec ? strstr(other_spec, "%d") : NULL;
    if (at) /* the format's one %d: the repetitions */
        snprintf(spec_json, sizeof spec_json, "%.*s%d%s", (int)(at - other_spec), other_spec, games,
                 at + 2);
    else
        snprintf(spec_json, sizeof spec_json,
                 "{\"game\":\"electricity\",\"seed\":5,\"repetitions\":%d,"
                 "\"fixed\":{\"n_agents\":%d,\"max_turns\":%d,\"volatility\":0.3,"
                 "\"lineup\":[\"heuristic:truthful?skill=0.9\",\"heuristic:greedy?skill=0.7\","
                 "\"heuristic:zi\",\"heuristic:reciprocal?skill=0.8\"]}}",
                 games, n, turns);
    struct bz_err err = {0};
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    struct bz_shard *shard = NULL;
    struct bz_durable *durable = NULL;
    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_electricity_%d_%d.h5", (int)getpid(), n);
    int rc = bz_spec_parse(spec_json, "bench", &spec, &err);
    if (!rc)
        rc = bz_grid_create(spec, &grid, &err);
    if (!rc && write)
        rc = bz_shard_create(path, &shard, &err);
    if (!rc && write && !(rc = bz_durable_create(&durable, &err)))
        bz_shard_set_durable(shard, durable); /* as the runner does */
    if (!rc && write) {
        bz_shard_set_group_commit(shard, 1); /* as the runner does */
        bz_shard_set_layout(shard, bench_layout);
    }
    if (rc) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    long long decisions = 0, rows = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (int g = 0; g < games && !rc; g++) {
        struct bz_game_config cfg;
        struct bz_match *m = NULL;
        rc = bz_grid_config(grid, g, &cfg, &err);
        if (!rc)
            rc = bz_match_create(&cfg, NULL, &m, &err);
        if (!rc && write)
            bz_match_set_flush(m, put_rows, shard, BZ_MATCH_FLUSH_BYTES);
        if (!rc) {
            int st = bz_match_advance(m, &err);
            if (st != BZ_MATCH_DONE)
                rc = st < 0 ? -st : BZ_EINTERNAL;
        }
        if (!rc) {
            decisions += bz_match_decisions(m);
            const struct bz_records *rec = bz_match_records(m);
            if (hwm && rec->max_row_bytes > *hwm)
                *hwm = rec->max_row_bytes;
            for (size_t i = 0; i < rec->n_tables; i++)
                rows += (long long)rec->tables[i].n_rows;
            if (write)
                rc = bz_shard_append(shard, rec, &err);
            if (!rc && write && bz_shard_sync_due(shard)) /* as the runner */
                rc = bz_shard_sync(shard, &err);
        }
        bz_match_destroy(m);
    }
    if (!rc && write)
        rc = bz_shard_sync(shard, &err);
    if (!rc && write)
        rc = bz_durable_wait(durable, &err); /* the last fsync counts */
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    bz_shard_close(shard, NULL);
    bz_durable_destroy(durable);
    unlink(path);
    char journal[300];
    snprintf(journal, sizeof journal, "%s.journal", path);
    unlink(journal);
    bz_grid_destroy(grid);
    bz_spec_destroy(spec);
    if (rc) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    if (ns)
        *ns = 1e9 * cpu / ((double)n * turns * games);
    if (!quiet)
        printf("electricity N=%-5d turns=%d games=%-5d records=%s: %.3g agent-decisions/s per core "
               "(cpu %.2f s, wall %.2f s), %.3g rows/s\n",
               n, turns, games, write ? "hdf5" : "off ", (double)decisions / cpu, cpu, wall,
               (double)rows / cpu);
    return 0;
}

static int bench(int n, int turns, int games, int write)
{
    return bench_run(n, turns, games, write, 0, NULL, NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Records vs no records: electricity at N = 10 and 1000, beast (N = 10)
 * and item_allocation (N = 4), both talking; reps alternated runs (records
 * in the plain layout, in the virtual layout, none), medians of the CPU time
 * per agent-turn (per game for the other two) and their ratios. The virtual
 * layout's records include the writer's deflate of its full chunks. */
static int records_ratio(int scale, int reps, int only)
{
    static const struct {
        const char *name, *spec;
        int n, games;
    } cases[] = {
        {"electricity", NULL, 10, 400},
        {"electricity", NULL, 1000, 4},
        {"beast",
         "{\"game\":\"beast\",\"seed\":5,\"repetitions\":%d,\"fixed\":{\"n_agents\":10,"
         "\"communication\":true,\"lineup\":[\"heuristic:loyal?skill=0.8\","
         "\"heuristic:mercenary?skill=0.6\",\"heuristic:bully?skill=0.7\",\"heuristic:zi\"]}}",
         10, 400},
        {"item_allocation",
         "{\"game\":\"item_allocation\",\"seed\":5,\"repetitions\":%d,\"fixed\":{\"n_agents\":4,"
         "\"communication\":true,\"lineup\":[\"heuristic:fair?skill=0.9\","
         "\"heuristic:greedy?skill=0.9\",\"heuristic:reciprocal?skill=0.9\",\"heuristic:zi\"]}}",
         4, 1000},
    };
    int rc = 0;
    if (reps > 64)
        reps = 64;
    if (reps < 1)
        reps = 1;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (only >= 0 && (size_t)only != k)
            continue;
        int n = cases[k].n, games = cases[k].games * scale;
        double on[64], virt[64], off[64];
        other_spec = cases[k].spec;
        for (int i = 0; i < reps && !rc; i++) {
            rc |= bench_run(n, 24, games, 1, 1, &on[i], NULL);
            bench_layout = BZ_LAYOUT_VIRTUAL;
            rc |= bench_run(n, 24, games, 1, 1, &virt[i], NULL);
            bench_layout = BZ_LAYOUT_PLAIN;
            rc |= bench_run(n, 24, games, 0, 1, &off[i], NULL);
        }
        other_spec = NULL;
        if (rc)
            return rc;
        qsort(on, (size_t)reps, sizeof *on, cmp_double);
        qsort(virt, (size_t)reps, sizeof *virt, cmp_double);
        qsort(off, (size_t)reps, sizeof *off, cmp_double);
        double a = on[reps / 2], v = virt[reps / 2], b = off[reps / 2];
        if (cases[k].spec) /* bench_run's unit: per n x 24 */
            printf("%-11s N=%-5d records: %.1f us per game (virtual layout %.1f), without: %.1f "
                   "us; records vs no records %.2fx, virtual %.2fx (median of %d alternated "
                   "runs)\n",
                   cases[k].name, n, a * n * 24 / 1e3, v * n * 24 / 1e3, b * n * 24 / 1e3, a / b,
                   v / b, reps);
        else
            printf("%-11s N=%-5d records: %.0f ns per agent-turn (virtual layout %.0f), without: "
                   "%.0f ns; records vs no records %.2fx, virtual %.2fx (median of %d "
                   "alternated runs)\n",
                   cases[k].name, n, a, v, b, a / b, v / b, reps);
    }
    return rc;
}

/* One N = 10^5 game in a child process: its peak RSS and the most bytes of
 * rows the game held at once. */
static int memory_one(int turns)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        size_t hwm = 0;
        int rc =
            bench_run(getenv("REC_N") ? atoi(getenv("REC_N")) : 100000, turns, 1, 1, 1, NULL, &hwm);
        printf("electricity N=100000 turns=%d records=hdf5: rows held at most %.1f MB "
               "(%.0f bytes per agent)\n",
               turns, (double)hwm / 1e6, (double)hwm / 1e5);
        fflush(stdout);
        _exit(rc);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return 1;
    printf("electricity N=100000 turns=%d records=hdf5: peak RSS %.0f MB (%.0f bytes per "
           "agent)\n",
           turns, (double)ru.ru_maxrss / 1e3, (double)ru.ru_maxrss * 1e3 / 1e5);
    return 0;
}

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    if (scale < 1)
        scale = 1;
    int rc = 0;
    if (argc > 2 && strcmp(argv[2], "records") == 0)
        return records_ratio(scale, argc > 3 ? atoi(argv[3]) : 5, argc > 4 ? atoi(argv[4]) : -1);
    if (argc > 2 && strcmp(argv[2], "memory") == 0)
        return memory_one(24) | memory_one(96);
    rc |= bench(10, 24, 400 * scale, 1);
    rc |= bench(1000, 24, 4 * scale, 1);
    rc |= bench(10, 24, 400 * scale, 0);
    rc |= bench(1000, 24, 4 * scale, 0);
    /* per-turn cost against N (DESIGN: N log N or better): the rate should
     * stay about flat as N grows 100-fold */
    rc |= bench(10000, 24, 1, 0);
    rc |= bench(100000, 24, 1, 0);
    rc |= records_ratio(scale, 3, -1);
    return rc;
}
