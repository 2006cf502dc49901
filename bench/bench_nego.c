/* bench_nego: the negotiation maths' speed on one core: heuristic proposals
 * and votes per second (n = 10, mixed policies, the protocol played
 * directly), the Nash bargaining solution's time by number of items (and by
 * issues for treaty), and the generators. Prints rates; never asserts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "games/negotiation_math.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { N = 10, R = 10 };
static int values[BZ_NEGO_MAX_AGENTS * BZ_NEGO_MAX_ITEMS];
static double pos[BZ_NEGO_MAX_AGENTS * BZ_NEGO_MAX_ISSUES],
    wt[BZ_NEGO_MAX_AGENTS * BZ_NEGO_MAX_ISSUES];

/* Play `games` games of n = 10 agents (fair, greedy, zi, reciprocal cycling,
 * skill 0.8); counts proposals and votes; the game setup (generator, NBS) is
 * timed apart. */
static void bench_protocol(int is_items, int games)
{
    static int prop_a[N * BZ_NEGO_MAX_ITEMS], nbs_a[BZ_NEGO_MAX_ITEMS];
    static double prop_x[N * BZ_NEGO_MAX_ISSUES], nbs_x[BZ_NEGO_MAX_ISSUES], nbs_u[N];
    static double offer[N * N], offer_buf[R * N * N];
    static unsigned char acc[N * N], acc_buf[R * N * N];
    struct bz_nego_items it;
    struct bz_nego_treaty tr;
    struct bz_nego_scratch scr;
    struct bz_nego_history h;
    struct bz_rng rng;
    long long proposals = 0, votes = 0, rounds = 0, agreements = 0;
    double t_setup = 0, t_play = 0;
    for (int g = 0; g < games; g++) {
        double t0 = cpu_s();
        struct bz_nego_view v = {
            bz_nego_threshold(N, BZ_NEGO_TWO_THIRDS), R, 0.9, nbs_u, NULL, NULL, NULL, NULL};
        bz_rng_init(&rng, (uint64_t)g, 1);
        if (is_items) {
            int m = bz_nego_items_default_m(N);
            if (bz_nego_items_generate(N, m, 0.5, &rng, values, NULL, NULL))
                exit(1);
            it = (struct bz_nego_items){N, m, values};
            if (bz_nego_items_nbs(&it, 100000, &rng, nbs_a, nbs_u, NULL, NULL))
                exit(1);
            v.items = &it;
            v.items_nbs = nbs_a;
        } else {
            if (bz_nego_treaty_generate(N, 5, 0.3, 0.5, 0.4, &rng, pos, wt, NULL, NULL, NULL, NULL))
                exit(1);
            tr = (struct bz_nego_treaty){N, 5, pos, wt};
            bz_nego_treaty_nbs(&tr, nbs_x, nbs_u);
            v.treaty = &tr;
            v.treaty_nbs = nbs_x;
        }
        double t1 = cpu_s();
        bz_nego_history_init(&h, N, R, offer_buf, acc_buf);
        for (int r = 1; r <= R; r++) {
            rounds++;
            for (int i = 0; i < N; i++) {
                void *out = is_items ? (void *)(prop_a + i * it.m) : (void *)(prop_x + i * 5);
                if (bz_nego_use_reasoned(0.8, &rng))
                    bz_nego_propose(&v, (enum bz_nego_policy)(i % 4), i, r, &h, &rng, &scr, out);
                else
                    bz_nego_propose_random(&v, &rng, out);
                proposals++;
            }
            if (is_items)
                bz_nego_items_offers(&it, prop_a, NULL, offer);
            else
                bz_nego_treaty_offers(&tr, prop_x, NULL, offer);
            for (int p = 0; p < N; p++)
                for (int j = 0; j < N; j++) {
                    const void *prop = is_items ? (const void *)(prop_a + p * it.m)
                                                : (const void *)(prop_x + p * 5);
                    acc[p * N + j] =
                        (unsigned char)(bz_nego_use_reasoned(0.8, &rng)
                                            ? bz_nego_vote(&v, (enum bz_nego_policy)(j % 4), j, r,
                                                           &h, p, prop, &rng, &scr)
                                            : bz_nego_vote_random(&rng));
                    votes++;
                }
            if (bz_nego_agreement(N, acc, NULL, v.threshold, NULL) >= 0) {
                agreements++;
                break;
            }
            bz_nego_history_push(&h, offer, acc);
        }
        t_setup += t1 - t0;
        t_play += cpu_s() - t1;
    }
    printf("%-15s n=%d: %lld games, %lld rounds (%lld agreed): %.2f M proposals/s, %.2f M votes/s, "
           "%.1f us per round (propose + offers + vote + agreement); setup (generator + NBS) "
           "%.2f ms/game\n",
           is_items ? "item_allocation" : "treaty", N, (long long)games, rounds, agreements,
           proposals / t_play / 1e6, votes / t_play / 1e6, 1e6 * t_play / rounds,
           1e3 * t_setup / games);
}

static void bench_items_nbs(void)
{
    printf("item_allocation NBS (branch and bound, budget 1e6 nodes), competition 0.5 / 1.0:\n");
    static const int ns[] = {2, 3, 4, 6, 8, 10, 20, 50};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        int n = ns[a], m = bz_nego_items_default_m(n);
        for (int c = 0; c < 2; c++) {
            double comp = c ? 1.0 : 0.5, t = 0;
            int exact_all = 1, reps = n >= 20 ? 2 : 5;
            for (int rep = 0; rep < reps; rep++) {
                struct bz_rng rng;
                bz_rng_init(&rng, (uint64_t)rep, 2);
                if (bz_nego_items_generate(n, m, comp, &rng, values, NULL, NULL))
                    exit(1);
                struct bz_nego_items g = {n, m, values};
                int alloc[BZ_NEGO_MAX_ITEMS], exact;
                double t0 = cpu_s();
                bz_nego_items_nbs(&g, 1000000, &rng, alloc, NULL, &exact, NULL);
                t += cpu_s() - t0;
                exact_all &= exact;
            }
            printf("  n=%2d m=%3d competition %.1f: %9.3f ms  %s\n", n, m, comp, 1e3 * t / reps,
                   exact_all ? "exact" : "approximate (budget hit)");
        }
    }
}

static void bench_treaty_nbs(void)
{
    printf("treaty NBS (smoothed coordinate ascent) and Pareto LP:\n");
    static const int ns[] = {2, 10, 50};
    static const int ks[] = {2, 5, 20};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++) {
            int n = ns[a], K = ks[b], reps = 5;
            double t = 0, tp = 0;
            for (int rep = 0; rep < reps; rep++) {
                struct bz_rng rng;
                bz_rng_init(&rng, (uint64_t)rep, 3);
                if (bz_nego_treaty_generate(n, K, 0.2, 0.6, 0.4, &rng, pos, wt, NULL, NULL, NULL,
                                            NULL))
                    exit(1);
                struct bz_nego_treaty g = {n, K, pos, wt};
                double x[BZ_NEGO_MAX_ISSUES];
                double t0 = cpu_s();
                bz_nego_treaty_nbs(&g, x, NULL);
                double t1 = cpu_s();
                bz_nego_treaty_pareto(&g, x);
                tp += cpu_s() - t1;
                t += t1 - t0;
            }
            printf("  n=%2d K=%2d: NBS %8.3f ms, Pareto %7.3f ms\n", n, K, 1e3 * t / reps,
                   1e3 * tp / reps);
        }
}

int main(void)
{
    bench_protocol(1, 2000);
    bench_protocol(0, 2000);
    bench_items_nbs();
    bench_treaty_nbs();
    return 0;
}
