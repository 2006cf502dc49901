/* bench_beast: 10-player heuristic beast games per second per core (rules
 * engine and policies only; no records written, the platform adds those).
 * Prints rates; never asserts a time. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "games/beast_internal.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Play `games` games with the mixed lineup; returns the decisions made. */
static long bench(int n, int communication, int games, double *secs)
{
    static const int lineup[] = {BZ_BEAST_LOYAL, BZ_BEAST_MERCENARY, BZ_BEAST_ZI, BZ_BEAST_BULLY};
    struct bz_beast_config c;
    bz_beast_config_default(&c);
    c.n_agents = n;
    c.communication = communication;
    struct bz_err err = {0};
    struct bz_beast *g = NULL;
    if (bz_beast_create(&c, 1, &g, &err)) {
        fprintf(stderr, "bench_beast: %s\n", err.msg);
        exit(1);
    }
    struct bz_beast_mem mem[BZ_BEAST_MAX_AGENTS];
    struct bz_rng rng[BZ_BEAST_MAX_AGENTS];
    static struct bz_beast_request rq[BZ_BEAST_MAX_REQUESTS];
    static struct bz_beast_action acts[BZ_BEAST_MAX_REQUESTS];
    long decisions = 0;
    int64_t checksum = 0;
    double t0 = cpu_s();
    for (int s = 0; s < games; s++) {
        bz_beast_reset(g, (uint64_t)s);
        for (int i = 0; i < n; i++) {
            bz_beast_mem_init(&mem[i], i, lineup[i % 4]);
            bz_rng_init(&rng[i], 1000 + (uint64_t)s, (uint64_t)i);
        }
        int k;
        while ((k = bz_beast_requests(g, rq, BZ_BEAST_MAX_REQUESTS)) > 0) {
            for (int i = 0; i < k; i++) {
                int a = rq[i].agent;
                bz_beast_heuristic_act(g, &rq[i], &mem[a], 0.8, &rng[a], &acts[i]);
            }
            if (bz_beast_step(g, rq, acts, k, &err)) {
                fprintf(stderr, "bench_beast: %s\n", err.msg);
                exit(1);
            }
            decisions += k;
        }
        checksum += bz_beast_wealth(g, 0);
    }
    *secs = cpu_s() - t0;
    if (checksum == -1) /* keeps the loop observable */
        printf("?\n");
    bz_beast_destroy(g);
    return decisions;
}

int main(int argc, char **argv)
{
    int games = argc > 1 ? atoi(argv[1]) : 20000;
    for (int comm = 1; comm >= 0; comm--) {
        double secs = 0;
        long d = bench(10, comm, games, &secs);
        printf("beast n=10 communication=%d: %d games in %.3f s cpu: %.0f games/s per core, "
               "%.1f us/game, %.0f decisions/game, %.2e decisions/s\n",
               comm, games, secs, games / secs, 1e6 * secs / games, (double)d / games, d / secs);
    }
    return 0;
}
