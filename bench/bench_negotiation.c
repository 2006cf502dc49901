/* bench_negotiation: heuristic agent-decisions per second per core for the
 * item_allocation and treaty games through the platform (grid config, match,
 * records in memory; no HDF5), at n = 4 and n = 10 agents, communication on
 * (discussion texts) and off. A decision is one answered (agent, slot)
 * request of any phase. Prints rates; never asserts a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bazaar/match.h"
#include "bazaar/spec.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench(const char *game, int n, int comm, int games)
{
    char spec_json[1024];
    snprintf(spec_json, sizeof spec_json,
             "{\"game\":\"%s\",\"seed\":5,\"repetitions\":%d,"
             "\"fixed\":{\"n_agents\":%d,\"communication\":%s,\"max_rounds\":10,"
             "\"lineup\":[\"heuristic:fair?skill=0.8\",\"heuristic:greedy?skill=0.8\","
             "\"heuristic:zi\",\"heuristic:reciprocal?skill=0.8\"]}}",
             game, games, n, comm ? "true" : "false");
    struct bz_err err = {0};
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    int rc = bz_spec_parse(spec_json, "bench", &spec, &err);
    if (!rc)
        rc = bz_grid_create(spec, &grid, &err);
    long long decisions = 0, rounds = 0;
    double c0 = cpu_s();
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
                if (rec->tables[i].desc && rec->tables[i].desc->path &&
                    strstr(rec->tables[i].desc->path, "/rounds"))
                    rounds += (long long)rec->tables[i].n_rows;
        }
        bz_match_destroy(m);
    }
    double cpu = cpu_s() - c0;
    bz_grid_destroy(grid);
    bz_spec_destroy(spec);
    if (rc) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    printf("%-15s n=%-2d communication=%d games=%-5d: %.3g agent-decisions/s per core, "
           "%.3g games/s (%.1f rounds/game; cpu %.2f s, game setup with NBS included)\n",
           game, n, comm, games, (double)decisions / cpu, games / cpu, (double)rounds / games, cpu);
    return 0;
}

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    if (scale < 1)
        scale = 1;
    int rc = 0;
    static const char *const games[] = {"item_allocation", "treaty"};
    for (int g = 0; g < 2; g++)
        for (int comm = 1; comm >= 0; comm--) {
            rc |= bench(games[g], 4, comm, 2000 * scale);
            rc |= bench(games[g], 10, comm, 200 * scale);
        }
    return rc;
}
