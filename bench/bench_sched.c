/* bench_sched: coordinator dispatch rate. Run under mpiexec with many ranks
 * (oversubscribed): every rank asks rank 0 for game ids exactly as in a real
 * sweep, but the games do no work and nothing is written, so what is
 * measured is the dispatch itself. Prints games/s; never asserts a time.
 * usage: mpiexec -n R bench_sched [GAMES] [MAX_BATCH] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bazaar/sched.h"

int main(int argc, char **argv)
{
    long games = argc > 1 ? atol(argv[1]) : 200000;
    int batch = argc > 2 ? atoi(argv[2]) : 0;
    char spec[256], out[256], cmd[600];
    /* every rank must see the same spec path: derive it from the parent's pid */
    const char *tag = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_MCA_orte_ess_jobid") : NULL;
    snprintf(spec, sizeof spec, "/tmp/bench_sched_%s.json", tag ? tag : "local");
    snprintf(out, sizeof out, "/tmp/bench_sched_%s.h5", tag ? tag : "local");
    FILE *f = fopen(spec, "w");
    if (f) {
        fprintf(f,
                "{\"game\":\"electricity\",\"seed\":1,\"repetitions\":%ld,"
                "\"fixed\":{\"n_agents\":2,\"lineup\":[\"heuristic:zi\"]}}",
                games);
        fclose(f);
    }
    struct bz_run_options opt = {.spec_path = spec,
                                 .out_path = out,
                                 .resume = 1,
                                 .quiet = 1,
                                 .dispatch_only = 1,
                                 .max_batch = batch};
    struct bz_run_stats st;
    struct bz_err err = {0};
    int rc = bz_sched_run(&opt, &st, &err);
    if (rc) {
        fprintf(stderr, "bench_sched: %s\n", err.msg);
        return 1;
    }
    if (bz_sched_is_root()) {
        printf("dispatch: %lld games over %d ranks (max batch %d) in %.3f s: %.0f games/s\n",
               (long long)st.games_played, st.ranks, batch ? batch : 64, st.seconds,
               (double)st.games_played / st.seconds);
        snprintf(cmd, sizeof cmd, "rm -rf %s %s.parts", spec, out);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_sched: could not remove %s\n", out);
    }
    return 0;
}
