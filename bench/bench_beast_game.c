/* bench_beast_game: 10-player heuristic beast games per second per core
 * through the platform (grid config, bz_match, the adapter, every record row
 * built), with and without writing them to an HDF5 shard. bench_beast gives
 * the engine-only figure. Prints rates; never asserts a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int bench(int n, int communication, int games, int write)
{
    char spec_json[1024];
    snprintf(spec_json, sizeof spec_json,
             "{\"game\":\"beast\",\"seed\":5,\"repetitions\":%d,"
             "\"fixed\":{\"n_agents\":%d,\"communication\":%s,"
             "\"lineup\":[\"heuristic:loyal?skill=0.8\",\"heuristic:mercenary?skill=0.8\","
             "\"heuristic:zi\",\"heuristic:bully?skill=0.8\"]}}",
             games, n, communication ? "true" : "false");
    struct bz_err err = {0};
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    struct bz_shard *shard = NULL;
    struct bz_durable *durable = NULL;
    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_beast_game_%d_%d.h5", (int)getpid(), n);
    int rc = bz_spec_parse(spec_json, "bench", &spec, &err);
    if (!rc)
        rc = bz_grid_create(spec, &grid, &err);
    if (!rc && write)
        rc = bz_shard_create(path, &shard, &err);
    if (!rc && write && !(rc = bz_durable_create(&durable, &err)))
        bz_shard_set_durable(shard, durable); /* as the runner does */
    if (!rc && write)
        bz_shard_set_group_commit(shard, 1); /* as the runner does */
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
        if (!rc) {
            int st = bz_match_advance(m, &err);
            if (st != BZ_MATCH_DONE)
                rc = st < 0 ? -st : BZ_EINTERNAL;
        }
        if (!rc) {
            decisions += bz_match_decisions(m);
            const struct bz_records *rec = bz_match_records(m);
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
    printf("beast (platform) N=%d communication=%s games=%d records=%s: %.0f games/s per core "
           "(%.3g decisions/s, %.3g rows/s; cpu %.2f s, wall %.2f s)\n",
           n, communication ? "on " : "off", games, write ? "hdf5" : "rows", games / cpu,
           (double)decisions / cpu, (double)rows / cpu, cpu, wall);
    return 0;
}

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    if (scale < 1)
        scale = 1;
    int rc = 0;
    rc |= bench(10, 1, 2000 * scale, 0);
    rc |= bench(10, 0, 2000 * scale, 0);
    rc |= bench(10, 1, 2000 * scale, 1);
    rc |= bench(10, 0, 2000 * scale, 1);
    return rc;
}
