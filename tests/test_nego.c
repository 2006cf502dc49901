/* test_nego: the negotiation games' platform-free maths: generators hit their
 * targets (or refuse), protocol rules, NBS and Pareto against brute force,
 * metrics, and the heuristics' skill axis in a protocol played directly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "bazaar/rng.h"
#include "games/negotiation_math.h"

#define PI 3.14159265358979323846

static int V[BZ_NEGO_MAX_AGENTS * BZ_NEGO_MAX_ITEMS];
static double P[BZ_NEGO_MAX_AGENTS * BZ_NEGO_MAX_ISSUES],
    W[BZ_NEGO_MAX_AGENTS * BZ_NEGO_MAX_ISSUES];

/* Mean pairwise cosine, pair by pair (independent of the library's formula). */
static double pairwise_cos_int(int n, int m, const int *v)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double d = 0, a = 0, b = 0;
            for (int k = 0; k < m; k++) {
                d += (double)v[i * m + k] * v[j * m + k];
                a += (double)v[i * m + k] * v[i * m + k];
                b += (double)v[j * m + k] * v[j * m + k];
            }
            s += d / sqrt(a * b);
        }
    return s / (0.5 * n * (n - 1));
}

static double pairwise_cos_dbl(int n, int m, const double *v)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double d = 0, a = 0, b = 0;
            for (int k = 0; k < m; k++) {
                d += v[i * m + k] * v[j * m + k];
                a += v[i * m + k] * v[i * m + k];
                b += v[j * m + k] * v[j * m + k];
            }
            s += d / sqrt(a * b);
        }
    return s / (0.5 * n * (n - 1));
}

/* ------------------------------------------------------------ generators */

static void check_items(int n, int m, double c, uint64_t seed)
{
    struct bz_rng r;
    struct bz_err err = {0};
    double got;
    bz_rng_init(&r, seed, 1);
    int rc = bz_nego_items_generate(n, m, c, &r, V, &got, &err);
    if (rc)
        print_message("n=%d m=%d c=%g: %s\n", n, m, c, err.msg);
    assert_int_equal(rc, BZ_OK);
    for (int i = 0; i < n; i++) {
        int sum = 0;
        for (int k = 0; k < m; k++) {
            assert_true(V[i * m + k] >= 0);
            sum += V[i * m + k];
        }
        assert_int_equal(sum, 100);
    }
    double direct = pairwise_cos_int(n, m, V);
    assert_true(fabs(direct - got) < 1e-9);
    if (fabs(direct - c) > BZ_NEGO_COSINE_TOL)
        print_message("n=%d m=%d c=%g got %g\n", n, m, c, direct);
    assert_true(fabs(direct - c) <= BZ_NEGO_COSINE_TOL);
}

static void items_should_hit_the_target_cosine_for_n_2_to_50(void **state)
{
    (void)state;
    static const double comps[] = {0, 0.25, 0.5, 0.75, 1};
    for (int n = 2; n <= 50; n++)
        for (int c = 0; c < 5; c++)
            check_items(n, bz_nego_items_default_m(n), comps[c], (uint64_t)(n * 10 + c));
    /* more seeds and shapes on a subset */
    static const int ns[] = {2, 3, 4, 7, 12};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (int seed = 0; seed < 12; seed++)
            for (int c = 0; c <= 10; c++) {
                int n = ns[a];
                check_items(n, n, c / 10.0, (uint64_t)seed);
                check_items(n, bz_nego_items_default_m(n), c / 10.0, (uint64_t)seed + 100);
                check_items(n, 4 * n, c / 10.0, (uint64_t)seed + 200);
            }
    check_items(50, 256, 0.5, 3);
    check_items(3, 1, 1.0, 3); /* m < n: only full overlap is feasible */
}

static void items_should_be_deterministic_in_the_seed(void **state)
{
    (void)state;
    static int a[10 * 25], b[10 * 25];
    struct bz_rng r;
    double x, y;
    bz_rng_init(&r, 77, 1);
    assert_int_equal(bz_nego_items_generate(10, 25, 0.4, &r, a, &x, NULL), BZ_OK);
    bz_rng_init(&r, 77, 1);
    assert_int_equal(bz_nego_items_generate(10, 25, 0.4, &r, b, &y, NULL), BZ_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_true(x == y);
    bz_rng_init(&r, 78, 1);
    assert_int_equal(bz_nego_items_generate(10, 25, 0.4, &r, b, &y, NULL), BZ_OK);
    assert_memory_not_equal(a, b, sizeof a);
}

struct refusal {
    const char *name;
    int n, m;
    double c;
    const char *msg; /* must appear in the message */
};

static const struct refusal item_refusals[] = {
    {"competition 0 needs m >= n", 5, 3, 0.0, "n_items >= 5"},
    {"below the forced overlap", 6, 3, 0.1, "at least 0.200"},
    {"one agent", 1, 3, 0.5, "n_agents 1"},
    {"too many agents", 65, 100, 0.5, "n_agents 65"},
    {"no items", 3, 0, 0.5, "n_items 0"},
    {"too many items", 3, 257, 0.5, "n_items 257"},
    {"competition above 1", 3, 8, 1.5, "outside [0, 1]"},
    {"competition NaN", 3, 8, NAN, "outside [0, 1]"},
};

static void items_should_refuse_infeasible_targets_with_a_message(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof item_refusals / sizeof item_refusals[0]; c++) {
        const struct refusal *k = &item_refusals[c];
        struct bz_rng r;
        struct bz_err err = {0};
        double got;
        bz_rng_init(&r, 1, 1);
        print_message("case: %s\n", k->name);
        assert_int_equal(bz_nego_items_generate(k->n, k->m, k->c, &r, V, &got, &err), BZ_EINVAL);
        if (!strstr(err.msg, k->msg))
            print_message("message: %s\n", err.msg);
        assert_non_null(strstr(err.msg, k->msg));
    }
}

/* rho recomputed pair by pair, mirroring undone by the flags it finds. */
static double pooled_rho(int n, int K, const double *pos, const unsigned char *mir)
{
    double num = 0, den = 0;
    for (int k = 0; k < K; k++)
        for (int i = 0; i < n; i++) {
            double di = (mir[k] && (i & 1) ? 1 - pos[i * K + k] : pos[i * K + k]) - 0.5;
            den += di * di;
            for (int j = 0; j < n; j++)
                if (j != i)
                    num += di * ((mir[k] && (j & 1) ? 1 - pos[j * K + k] : pos[j * K + k]) - 0.5);
        }
    return num / ((n - 1) * den);
}

static void check_treaty(int n, int K, double rho, double theta, double lambda, uint64_t seed)
{
    struct bz_rng r;
    struct bz_err err = {0};
    double ar, at, al;
    static double P0[BZ_NEGO_MAX_AGENTS * BZ_NEGO_MAX_ISSUES];
    bz_rng_init(&r, seed, 2);
    int rc = bz_nego_treaty_generate(n, K, rho, theta, 0, &r, P0, W, &ar, &at, &al, &err);
    if (rc)
        print_message("n=%d K=%d rho=%g theta=%g: %s\n", n, K, rho, theta, err.msg);
    assert_int_equal(rc, BZ_OK);
    /* the same draw with lambda: only the mirrored issues' odd agents change */
    bz_rng_init(&r, seed, 2);
    assert_int_equal(
        bz_nego_treaty_generate(n, K, rho, theta, lambda, &r, P, W, &ar, &at, &al, &err), BZ_OK);
    unsigned char mir[BZ_NEGO_MAX_ISSUES];
    int L = 0;
    for (int k = 0; k < K; k++) {
        mir[k] = n > 1 && fabs(P[1 * K + k] - P0[1 * K + k]) > 0;
        L += mir[k];
        for (int i = 0; i < n; i++)
            assert_true(fabs(P[i * K + k] -
                             (mir[k] && (i & 1) ? 1 - P0[i * K + k] : P0[i * K + k])) < 1e-15);
    }
    assert_int_equal(L, (int)lround(lambda * K));
    assert_true(fabs(al - (double)L / K) < 1e-12);
    assert_true(fabs(al - lambda) <= 0.5 / K + 1e-12);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < K; k++) {
            assert_true(P[i * K + k] >= 0 && P[i * K + k] <= 1);
            assert_true(W[i * K + k] >= 0);
            s += W[i * K + k];
        }
        assert_true(fabs(s - 1) < 1e-9);
    }
    double rr = pooled_rho(n, K, P, mir), tt = pairwise_cos_dbl(n, K, W);
    assert_true(fabs(rr - ar) < 1e-9);
    assert_true(fabs(tt - at) < 1e-9);
    assert_true(fabs(rr - rho) <= BZ_NEGO_RHO_TOL);
    assert_true(fabs(tt - theta) <= BZ_NEGO_THETA_TOL);
}

static void treaty_should_hit_rho_theta_lambda_for_n_2_to_50(void **state)
{
    (void)state;
    static const double rhos[] = {-1, -0.3, 0, 0.5, 0.9, 1};
    static const double thetas[] = {0.3, 0.6, 0.9, 1};
    static const double lambdas[] = {0, 0.2, 0.5, 1};
    for (int n = 2; n <= 50; n++) {
        double rmin = 6 / PI * asin(-1.0 / (2.0 * (n - 1)));
        for (int a = 0; a < 6; a++) {
            double rho = fmax(rhos[a], rmin);
            check_treaty(n, 5, rho, thetas[(n + a) % 4], lambdas[a % 4], (uint64_t)(n * 7 + a));
        }
        if (n <= 8)
            check_treaty(n, 8, 0.3, 0.0, 0.5, (uint64_t)n); /* theta 0: K >= n */
    }
    for (int seed = 0; seed < 30; seed++)
        for (int K = 1; K <= 12; K += 11)
            check_treaty(2 + seed % 7, K, 0.2 * (seed % 5), K == 1 ? 1 : 0.5, 0.5, (uint64_t)seed);
}

static void treaty_should_refuse_rho_below_the_bound_for_n(void **state)
{
    (void)state;
    struct bz_rng r;
    struct bz_err err = {0};
    double ar, at, al;
    bz_rng_init(&r, 1, 2);
    /* n = 3: latent 2 sin(pi rho / 6) >= -1/2 means rho >= -0.4826 */
    assert_int_equal(bz_nego_treaty_generate(3, 5, -0.5, 0.5, 0, &r, P, W, &ar, &at, &al, &err),
                     BZ_EINVAL);
    assert_non_null(strstr(err.msg, "[-0.4826, 1]"));
    assert_int_equal(bz_nego_treaty_generate(3, 5, -0.48, 0.5, 0, &r, P, W, &ar, &at, &al, &err),
                     BZ_OK);
    assert_int_equal(bz_nego_treaty_generate(10, 5, 0.5, 0.0, 0, &r, P, W, &ar, &at, &al, &err),
                     BZ_EINVAL);
    assert_non_null(strstr(err.msg, "n_issues >= 10"));
    assert_int_equal(bz_nego_treaty_generate(3, 5, 0.5, 0.5, 1.5, &r, P, W, &ar, &at, &al, &err),
                     BZ_EINVAL);
    assert_int_equal(bz_nego_treaty_generate(3, 33, 0.5, 0.5, 0, &r, P, W, &ar, &at, &al, &err),
                     BZ_EINVAL);
    assert_int_equal(bz_nego_treaty_generate(2, 5, 1.01, 0.5, 0, &r, P, W, &ar, &at, &al, &err),
                     BZ_EINVAL);
}

/* -------------------------------------------------------------- protocol */

static void protocol_should_set_thresholds_per_rule(void **state)
{
    (void)state;
    /* n:                       2  3  4  5  6  7  8  9 10 */
    static const int two3[] = {2, 2, 3, 4, 4, 5, 6, 6, 7};
    static const int maj[] = {2, 2, 3, 3, 4, 4, 5, 5, 6};
    for (int n = 2; n <= 10; n++) {
        assert_int_equal(bz_nego_threshold(n, BZ_NEGO_TWO_THIRDS), two3[n - 2]);
        assert_int_equal(bz_nego_threshold(n, BZ_NEGO_MAJORITY), maj[n - 2]);
        assert_int_equal(bz_nego_threshold(n, BZ_NEGO_UNANIMITY), n);
    }
    enum bz_nego_rule rule;
    struct bz_err err = {0};
    assert_int_equal(bz_nego_rule_parse("majority", &rule, &err), BZ_OK);
    assert_int_equal(rule, BZ_NEGO_MAJORITY);
    assert_string_equal(bz_nego_rule_name(BZ_NEGO_UNANIMITY), "unanimity");
    assert_int_equal(bz_nego_rule_parse("plurality", &rule, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "plurality"));
}

struct vote_case {
    const char *name;
    int n, threshold;
    unsigned char accept[16]; /* n x n, row = proposer */
    unsigned char proposed[4];
    int agreed, max_accepts;
};

static const struct vote_case vote_cases[] = {
    {"nobody accepts: own vote only", 3, 2, {0}, {1, 1, 1}, -1, 1},
    {"own proposal counts (diagonal ignored)", 3, 2, {0, 1, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1}, 0, 2},
    {"first in proposer order wins", 3, 2, {0, 0, 0, 1, 0, 0, 1, 0, 0}, {1, 1, 1}, 1, 2},
    {"best is not first",
     4,
     3,
     {0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0},
     {1, 1, 1, 1},
     0,
     4},
    {"unanimity short by one", 3, 3, {0, 1, 0, 1, 0, 0, 1, 0, 0}, {1, 1, 1}, -1, 2},
    {"unanimity met", 3, 3, {0, 1, 0, 1, 0, 1, 1, 1, 0}, {1, 1, 1}, 1, 3},
    {"a missing proposal is never accepted", 3, 2, {1, 1, 1, 1, 0, 1, 0, 0, 0}, {0, 1, 1}, 1, 3},
};

static void protocol_should_agree_on_the_first_proposal_meeting_the_threshold(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof vote_cases / sizeof vote_cases[0]; c++) {
        const struct vote_case *k = &vote_cases[c];
        int best = -7;
        print_message("case: %s\n", k->name);
        assert_int_equal(bz_nego_agreement(k->n, k->accept, k->proposed, k->threshold, &best),
                         k->agreed);
        assert_int_equal(best, k->max_accepts);
    }
}

static void protocol_should_discount_and_pay_zero_without_agreement(void **state)
{
    (void)state;
    double u[3] = {50, 30, 20}, pay[3];
    assert_true(bz_nego_discount(0.9, 1) == 1.0);
    assert_true(fabs(bz_nego_discount(0.9, 3) - 0.81) < 1e-15);
    bz_nego_payoffs(3, u, 4, 0.9, pay);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(pay[i] - u[i] * 0.729) < 1e-12);
    bz_nego_payoffs(3, u, -1, 0.9, pay);
    for (int i = 0; i < 3; i++)
        assert_true(pay[i] == 0.0);
    double share[3];
    bz_nego_utility_share(3, pay, share);
    assert_true(isnan(share[0]) && isnan(share[2]));
    bz_nego_payoffs(3, u, 1, 0.9, pay);
    bz_nego_utility_share(3, pay, share);
    assert_true(fabs(share[0] - 0.5) < 1e-15 && fabs(share[2] - 0.2) < 1e-15);
}

static void metrics_should_compute_gini_and_exploitation(void **state)
{
    (void)state;
    static const struct {
        int n;
        double u[4], gini;
    } cases[] = {
        {3, {10, 10, 10}, 0}, {2, {0, 10}, 0.5},   {4, {0, 0, 0, 40}, 0.75},
        {3, {0, 0, 0}, 0},    {2, {30, 10}, 0.25},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        assert_true(fabs(bz_nego_gini(cases[c].n, cases[c].u) - cases[c].gini) < 1e-12);
    double u[2] = {60, 20}, nbs[2] = {45, 35}, d[2];
    bz_nego_exploitation(2, u, nbs, d);
    assert_true(d[0] == 15 && d[1] == -15);
}

/* ----------------------------------------------------- NBS and Pareto: items */

/* Brute force over n^m: max product, then welfare; and the max welfare. */
static void brute_items(const struct bz_nego_items *g, double *best_prod, double *best_w,
                        double *max_w)
{
    int n = g->n, m = g->m, a[12] = {0};
    *best_prod = -1;
    *best_w = -1;
    *max_w = -1;
    for (;;) {
        double u[8];
        bz_nego_items_utilities(g, a, u);
        double p = 1, w = 0;
        for (int i = 0; i < n; i++) {
            p *= u[i];
            w += u[i];
        }
        if (p > *best_prod + 1e-9 || (fabs(p - *best_prod) <= 1e-9 && w > *best_w)) {
            *best_prod = p;
            *best_w = w;
        }
        if (w > *max_w)
            *max_w = w;
        int k = 0;
        while (k < m && ++a[k] == n)
            a[k++] = 0;
        if (k == m)
            break;
    }
}

/* 1 when some allocation weakly dominates alloc with one strict gain. */
static int brute_dominated(const struct bz_nego_items *g, const int *alloc)
{
    int n = g->n, m = g->m, a[12] = {0};
    double t[8], u[8];
    bz_nego_items_utilities(g, alloc, t);
    for (;;) {
        bz_nego_items_utilities(g, a, u);
        int ge = 1, gt = 0;
        for (int i = 0; i < n; i++) {
            ge &= u[i] >= t[i];
            gt |= u[i] > t[i];
        }
        if (ge && gt)
            return 1;
        int k = 0;
        while (k < m && ++a[k] == n)
            a[k++] = 0;
        if (k == m)
            return 0;
    }
}

static void items_nbs_and_pareto_should_match_brute_force(void **state)
{
    (void)state;
    struct bz_rng r;
    bz_rng_init(&r, 5, 3);
    int checked_pareto[2] = {0, 0};
    for (int rep = 0; rep < 120; rep++) {
        int n = 2 + rep % 3, m = (n == 4 ? 3 : 4) + rep % 4; /* n^m <= 4^6 */
        double comp = (rep % 5) / 4.0;
        if (comp < 1e-9 && m < n)
            comp = 0.5;
        int rc = bz_nego_items_generate(n, m, comp, &r, V, NULL, NULL);
        if (rc)
            continue;
        struct bz_nego_items g = {n, m, V};
        int alloc[12], exact = 0;
        double u[8];
        assert_int_equal(bz_nego_items_nbs(&g, 1000000, &r, alloc, u, &exact, NULL), BZ_OK);
        assert_int_equal(exact, 1);
        double bp, bw, mw, p = 1, w = 0;
        brute_items(&g, &bp, &bw, &mw);
        for (int i = 0; i < n; i++) {
            p *= u[i];
            w += u[i];
        }
        if (bp > 0) {
            assert_true(fabs(p - bp) <= 1e-9 * bp);
            assert_true(fabs(w - bw) < 1e-9);
        }
        assert_true(fabs(bz_nego_items_max_welfare(&g, NULL) - mw) < 1e-9);
        assert_int_equal(bz_nego_items_pareto(&g, alloc, 1000000), !brute_dominated(&g, alloc));
        /* random allocations: the exact Pareto check against brute force */
        for (int t = 0; t < 5; t++) {
            for (int k = 0; k < m; k++)
                alloc[k] = (int)bz_rng_below(&r, (uint64_t)n);
            int po = bz_nego_items_pareto(&g, alloc, 1000000);
            assert_int_equal(po, !brute_dominated(&g, alloc));
            checked_pareto[po]++;
        }
    }
    assert_true(checked_pareto[0] > 50 && checked_pareto[1] > 20); /* both answers exercised */
}

static void items_nbs_should_say_when_the_budget_cut_the_search(void **state)
{
    (void)state;
    struct bz_rng r;
    bz_rng_init(&r, 9, 3);
    /* identical values (competition 1): a partition problem, the hard case */
    assert_int_equal(bz_nego_items_generate(10, 25, 1.0, &r, V, NULL, NULL), BZ_OK);
    struct bz_nego_items g = {10, 25, V};
    int alloc[25], exact = 1;
    double u[10];
    assert_int_equal(bz_nego_items_nbs(&g, 1000, &r, alloc, u, &exact, NULL), BZ_OK);
    assert_int_equal(exact, 0);
    for (int i = 0; i < 10; i++)
        assert_true(u[i] > 0); /* the approximation still gives everyone something */
    /* a tiny budget answers -1 or the same as a large one; a welfare
     * maximiser needs no search at all */
    int small = bz_nego_items_pareto(&g, alloc, 10),
        big = bz_nego_items_pareto(&g, alloc, 10000000);
    assert_true(small == -1 || small == big);
    bz_nego_items_max_welfare(&g, alloc);
    assert_int_equal(bz_nego_items_pareto(&g, alloc, 0), 1);
}

/* ---------------------------------------------------- NBS and Pareto: treaty */

static double log_prod(const struct bz_nego_treaty *g, const double *x)
{
    double s = 0;
    for (int i = 0; i < g->n; i++) {
        double u = bz_nego_treaty_utility(g, x, i);
        s += u > 0 ? log(u) : -1e300;
    }
    return s;
}

static void treaty_nbs_should_match_a_grid_search(void **state)
{
    (void)state;
    struct bz_rng r;
    bz_rng_init(&r, 11, 3);
    for (int rep = 0; rep < 24; rep++) {
        int n = 2 + rep % 3, K = 1 + rep % 2;
        assert_int_equal(bz_nego_treaty_generate(n, K, 0.4 * (rep % 3) - 0.3 * (n == 2),
                                                 1.0 - 0.3 * (K == 2), 0.5, &r, P, W, NULL, NULL,
                                                 NULL, NULL),
                         BZ_OK);
        struct bz_nego_treaty g = {n, K, P, W};
        double x[2], u[4], y[2] = {0, 0}, best = -INFINITY;
        bz_nego_treaty_nbs(&g, x, u);
        int steps = K == 1 ? 100000 : 1000;
        for (int a = 0; a <= steps; a++)
            for (int b = 0; b <= (K == 2 ? steps : 0); b++) {
                y[0] = (double)a / steps;
                y[1] = (double)b / steps;
                double lp = log_prod(&g, y);
                if (lp > best)
                    best = lp;
            }
        double got = log_prod(&g, x);
        if (!(got >= best - 1e-3))
            print_message("rep %d: n=%d K=%d nbs %g grid %g\n", rep, n, K, got, best);
        assert_true(got >= best - 1e-3); /* product within 0.1% of the grid's */
        assert_int_equal(bz_nego_treaty_pareto(&g, x), 1);
        double xw[2];
        double mw = bz_nego_treaty_max_welfare(&g, xw);
        assert_int_equal(bz_nego_treaty_pareto(&g, xw), 1);
        for (int a = 0; a <= 100; a++)
            for (int b = 0; b <= (K == 2 ? 100 : 0); b++) {
                y[0] = a / 100.0;
                y[1] = b / 100.0;
                double ws = 0, uu[4];
                bz_nego_treaty_utilities(&g, y, uu);
                for (int i = 0; i < n; i++)
                    ws += uu[i];
                assert_true(ws <= mw + 1e-9);
            }
    }
}

static void treaty_nbs_should_beat_random_points_for_many_issues(void **state)
{
    (void)state;
    struct bz_rng r;
    bz_rng_init(&r, 12, 3);
    for (int rep = 0; rep < 10; rep++) {
        int n = 3 + rep, K = 5;
        assert_int_equal(
            bz_nego_treaty_generate(n, K, 0.2, 0.5, 0.4, &r, P, W, NULL, NULL, NULL, NULL), BZ_OK);
        struct bz_nego_treaty g = {n, K, P, W};
        double x[5], y[5];
        bz_nego_treaty_nbs(&g, x, NULL);
        double best = log_prod(&g, x);
        for (int t = 0; t < 2000; t++) {
            double h = t < 1000 ? 1.0 : 0.01; /* global, then local perturbations */
            for (int k = 0; k < K; k++)
                y[k] = fmin(
                    1, fmax(0, h < 1 ? x[k] + h * (bz_rng_uniform(&r) - 0.5) : bz_rng_uniform(&r)));
            assert_true(log_prod(&g, y) <= best + 1e-9);
        }
        assert_int_equal(bz_nego_treaty_pareto(&g, x), 1);
    }
}

static void treaty_pareto_should_match_the_one_issue_hull(void **state)
{
    (void)state;
    /* K = 1: x is Pareto optimal iff it lies between the extreme positions
     * of the agents with positive weight (outside, all agree to move in). */
    struct bz_rng r;
    bz_rng_init(&r, 13, 3);
    for (int rep = 0; rep < 300; rep++) {
        int n = 2 + rep % 5;
        double lo = 1, hi = 0, x = bz_rng_uniform(&r);
        for (int i = 0; i < n; i++) {
            P[i] = 0.1 + 0.8 * bz_rng_uniform(&r);
            W[i] = 1;
            lo = fmin(lo, P[i]);
            hi = fmax(hi, P[i]);
        }
        struct bz_nego_treaty g = {n, 1, P, W};
        assert_int_equal(bz_nego_treaty_pareto(&g, &x), x >= lo && x <= hi);
    }
    /* two issues: no point of a 0.01 grid dominates an outcome called optimal */
    int seen[2] = {0, 0};
    for (int rep = 0; rep < 60; rep++) {
        int n = 2 + rep % 3;
        for (int i = 0; i < 2 * n; i++) {
            P[i] = bz_rng_uniform(&r);
            W[i] = 0.2 + bz_rng_uniform(&r);
        }
        for (int i = 0; i < n; i++) {
            double t = W[2 * i] + W[2 * i + 1];
            W[2 * i] /= t;
            W[2 * i + 1] /= t;
        }
        struct bz_nego_treaty g2 = {n, 2, P, W};
        double x[2] = {0.05 * (double)bz_rng_below(&r, 21), 0.05 * (double)bz_rng_below(&r, 21)};
        double ux[4], uy[4], y[2];
        int po = bz_nego_treaty_pareto(&g2, x);
        seen[po]++;
        if (!po)
            continue;
        bz_nego_treaty_utilities(&g2, x, ux);
        for (int a = 0; a <= 100; a++)
            for (int b = 0; b <= 100; b++) {
                y[0] = a / 100.0;
                y[1] = b / 100.0;
                bz_nego_treaty_utilities(&g2, y, uy);
                int ge = 1, gt = 0;
                for (int i = 0; i < n; i++) {
                    ge &= uy[i] >= ux[i] - 1e-9;
                    gt |= uy[i] > ux[i] + 1e-6;
                }
                assert_false(ge && gt);
            }
    }
    assert_true(seen[0] > 5 && seen[1] > 5);
    /* two issues, two agents with opposite positions: the whole square's
     * points are optimal only on the segment of trade-offs */
    double pos[4] = {0, 0, 1, 1}, w[4] = {0.7, 0.3, 0.3, 0.7};
    struct bz_nego_treaty g = {2, 2, pos, w};
    double x1[2] = {0, 1}, x2[2] = {0.5, 0.5}, x3[2] = {1, 0};
    assert_int_equal(bz_nego_treaty_pareto(&g, x1), 1); /* each wins the issue it cares about */
    assert_int_equal(bz_nego_treaty_pareto(&g, x2), 0); /* log-rolling improves both */
    assert_int_equal(bz_nego_treaty_pareto(&g, x3), 0); /* the worst trade for both */
}

/* ------------------------------------------------------------- policies */

struct sim {
    int n, R;
    struct bz_nego_view view;
    struct bz_nego_items items;
    struct bz_nego_treaty treaty;
    int nbs_alloc[BZ_NEGO_MAX_ITEMS];
    double nbs_x[BZ_NEGO_MAX_ISSUES], nbs_u[BZ_NEGO_MAX_AGENTS];
};

static void sim_setup(struct sim *s, int is_items, int n, double comp, uint64_t seed)
{
    struct bz_rng r;
    memset(s, 0, sizeof *s);
    s->n = n;
    s->R = 10;
    bz_rng_init(&r, seed, 4);
    if (is_items) {
        int m = bz_nego_items_default_m(n);
        assert_int_equal(bz_nego_items_generate(n, m, comp, &r, V, NULL, NULL), BZ_OK);
        s->items = (struct bz_nego_items){n, m, V};
        assert_int_equal(
            bz_nego_items_nbs(&s->items, 20000, &r, s->nbs_alloc, s->nbs_u, NULL, NULL), BZ_OK);
        s->view.items = &s->items;
        s->view.items_nbs = s->nbs_alloc;
    } else {
        assert_int_equal(
            bz_nego_treaty_generate(n, 5, 1 - 2 * comp, 0.5, 0.4, &r, P, W, NULL, NULL, NULL, NULL),
            BZ_OK);
        s->treaty = (struct bz_nego_treaty){n, 5, P, W};
        bz_nego_treaty_nbs(&s->treaty, s->nbs_x, s->nbs_u);
        s->view.treaty = &s->treaty;
        s->view.treaty_nbs = s->nbs_x;
    }
    s->view.threshold = bz_nego_threshold(n, BZ_NEGO_TWO_THIRDS);
    s->view.max_rounds = s->R;
    s->view.gamma = 0.9;
    s->view.nbs_u = s->nbs_u;
}

/* The protocol played directly: returns the agreement round (-1 if none);
 * pay[i] = discounted utility. */
static int sim_play(struct sim *s, const enum bz_nego_policy *pol, const double *skill,
                    uint64_t seed, double *pay)
{
    enum { N = 8 };
    static double offer_buf[10 * N * N], prop_x[N * BZ_NEGO_MAX_ISSUES], offer[N * N];
    static unsigned char accept_buf[10 * N * N], acc[N * N];
    static int prop_a[N * BZ_NEGO_MAX_ITEMS];
    struct bz_nego_history h;
    struct bz_nego_scratch scr;
    struct bz_rng rng[N];
    int n = s->n;
    bz_nego_history_init(&h, n, s->R, offer_buf, accept_buf);
    for (int i = 0; i < n; i++)
        bz_rng_init(&rng[i], seed, (uint64_t)(100 + i));
    for (int round = 1; round <= s->R; round++) {
        for (int i = 0; i < n; i++) {
            void *out = s->view.items ? (void *)(prop_a + i * s->items.m)
                                      : (void *)(prop_x + i * s->treaty.K);
            if (bz_nego_use_reasoned(skill[i], &rng[i]))
                bz_nego_propose(&s->view, pol[i], i, round, &h, &rng[i], &scr, out);
            else
                bz_nego_propose_random(&s->view, &rng[i], out);
        }
        if (s->view.items)
            bz_nego_items_offers(&s->items, prop_a, NULL, offer);
        else
            bz_nego_treaty_offers(&s->treaty, prop_x, NULL, offer);
        for (int p = 0; p < n; p++) {
            const void *prop = s->view.items ? (const void *)(prop_a + p * s->items.m)
                                             : (const void *)(prop_x + p * s->treaty.K);
            for (int j = 0; j < n; j++)
                acc[p * n + j] = bz_nego_use_reasoned(skill[j], &rng[j])
                                     ? (unsigned char)bz_nego_vote(&s->view, pol[j], j, round, &h,
                                                                   p, prop, &rng[j], &scr)
                                     : (unsigned char)bz_nego_vote_random(&rng[j]);
        }
        int a = bz_nego_agreement(n, acc, NULL, s->view.threshold, NULL);
        if (a >= 0) {
            bz_nego_payoffs(n, offer + a * n, round, s->view.gamma, pay);
            return round;
        }
        assert_int_equal(bz_nego_history_push(&h, offer, acc), BZ_OK);
    }
    bz_nego_payoffs(n, offer, -1, s->view.gamma, pay);
    return -1;
}

static void policies_should_propose_admissible_outcomes(void **state)
{
    (void)state;
    for (int game = 0; game < 2; game++)
        for (int seed = 0; seed < 20; seed++) {
            struct sim s;
            sim_setup(&s, game, 2 + seed % 6, 0.5, (uint64_t)seed);
            struct bz_nego_scratch scr;
            struct bz_rng r;
            bz_rng_init(&r, (uint64_t)seed, 5);
            for (int p = 0; p < 4; p++)
                for (int self = 0; self < s.n; self++) {
                    int a[BZ_NEGO_MAX_ITEMS];
                    double x[BZ_NEGO_MAX_ISSUES];
                    void *out = game ? (void *)a : (void *)x;
                    bz_nego_propose(&s.view, (enum bz_nego_policy)p, self, 1, NULL, &r, &scr, out);
                    if (game)
                        for (int k = 0; k < s.items.m; k++)
                            assert_true(a[k] >= 0 && a[k] < s.n);
                    else
                        for (int k = 0; k < 5; k++)
                            assert_true(x[k] >= 0 && x[k] <= 1);
                    double u = game ? bz_nego_items_utility(&s.items, a, self)
                                    : bz_nego_treaty_utility(&s.treaty, x, self);
                    assert_true(u >= s.nbs_u[self] - 1e-6); /* never below its own NBS */
                    /* it votes for its own proposal; fair accepts the NBS */
                    assert_int_equal(bz_nego_vote(&s.view, (enum bz_nego_policy)p, self, 1, NULL,
                                                  self, out, &r, &scr),
                                     1);
                }
        }
}

static void greedy_should_keep_enough_supporters_at_its_belief(void **state)
{
    (void)state;
    for (int game = 0; game < 2; game++)
        for (int seed = 0; seed < 30; seed++) {
            struct sim s;
            int n = 3 + seed % 5;
            sim_setup(&s, game, n, 0.2 * (seed % 3), (uint64_t)seed + 50);
            struct bz_nego_scratch scr;
            struct bz_rng r;
            int a[BZ_NEGO_MAX_ITEMS];
            double x[BZ_NEGO_MAX_ISSUES], u[BZ_NEGO_MAX_AGENTS];
            void *out = game ? (void *)a : (void *)x;
            bz_rng_init(&r, 1, 1);
            int self = seed % n;
            bz_nego_propose(&s.view, BZ_NEGO_GREEDY, self, 1, NULL, &r, &scr, out);
            if (game)
                bz_nego_items_utilities(&s.items, a, u);
            else
                bz_nego_treaty_utilities(&s.treaty, x, u);
            int sup = 0;
            for (int j = 0; j < n; j++)
                sup += j != self && u[j] >= 0.95 * s.nbs_u[j] - 1e-6;
            assert_true(sup >= s.view.threshold - 1);
            assert_true(u[self] >= s.nbs_u[self] - 1e-6);
        }
}

/* One recorded round in which agent 1 offered agent 0 half its fair share
 * and agent 2 offered it all of it. */
static void reciprocal_should_punish_who_did_not_concede(void **state)
{
    (void)state;
    for (int game = 0; game < 2; game++) {
        struct sim s;
        sim_setup(&s, game, 3, 0.5, 4242);
        double offer_buf[10 * 9], offer[9];
        unsigned char accept_buf[10 * 9], acc[9] = {0};
        struct bz_nego_history h;
        struct bz_nego_scratch scr;
        struct bz_rng r;
        bz_rng_init(&r, 1, 1);
        bz_nego_history_init(&h, 3, 10, offer_buf, accept_buf);
        for (int p = 0; p < 3; p++)
            for (int j = 0; j < 3; j++)
                offer[p * 3 + j] = s.nbs_u[j];
        offer[1 * 3 + 0] = 0.5 * s.nbs_u[0];
        assert_int_equal(bz_nego_history_push(&h, offer, acc), BZ_OK);
        const void *nbs = game ? (const void *)s.nbs_alloc : (const void *)s.nbs_x;
        /* the NBS itself: accepted from the cooperator, rejected from the defector */
        assert_int_equal(bz_nego_vote(&s.view, BZ_NEGO_RECIPROCAL, 0, 2, &h, 2, nbs, &r, &scr), 1);
        assert_int_equal(bz_nego_vote(&s.view, BZ_NEGO_RECIPROCAL, 0, 2, &h, 1, nbs, &r, &scr), 0);
        /* fair does not care who proposed */
        assert_int_equal(bz_nego_vote(&s.view, BZ_NEGO_FAIR, 0, 2, &h, 1, nbs, &r, &scr), 1);
        /* its proposal: the cooperator keeps its NBS utility, the defector
         * does not gain, itself at least its own */
        int a[BZ_NEGO_MAX_ITEMS];
        double x[BZ_NEGO_MAX_ISSUES], u[3];
        void *out = game ? (void *)a : (void *)x;
        bz_nego_propose(&s.view, BZ_NEGO_RECIPROCAL, 0, 2, &h, &r, &scr, out);
        if (game)
            bz_nego_items_utilities(&s.items, a, u);
        else
            bz_nego_treaty_utilities(&s.treaty, x, u);
        assert_true(u[0] > s.nbs_u[0] + 1e-6); /* it takes more than its NBS share */
        if (game) {
            assert_true(u[2] >= s.nbs_u[2] - 1e-6);
            assert_true(u[1] < s.nbs_u[1]); /* the defector loses its NBS items */
        } else {
            assert_true(u[2] >= 0.95 * s.nbs_u[2] - 1e-6);
        }
        /* a full history refuses one more round */
        h.rounds = h.max_rounds;
        assert_int_equal(bz_nego_history_push(&h, offer, acc), BZ_EINVAL);
    }
}

/* Expected payoff of one agent of policy p and given skill, against a fixed
 * field, over 200 seeds and both seats. */
static double mean_payoff(int game, enum bz_nego_policy p, double skill, int fi)
{
    static const enum bz_nego_policy fields[2][2] = {{BZ_NEGO_FAIR, BZ_NEGO_GREEDY},
                                                     {BZ_NEGO_GREEDY, BZ_NEGO_ZI}};
    const enum bz_nego_policy *field = fields[fi];
    double tot = 0;
    int games = 0;
    for (int seed = 0; seed < 200; seed++) {
        struct sim s;
        sim_setup(&s, game, 3, 0.5, (uint64_t)seed + 1000);
        enum bz_nego_policy pol[3];
        double sk[3], pay[3];
        int ego = seed % 3;
        for (int i = 0, f = 0; i < 3; i++) {
            pol[i] = i == ego ? p : field[f];
            sk[i] = i == ego ? skill : 0.9;
            f += i != ego;
        }
        sim_play(&s, pol, sk, (uint64_t)seed, pay);
        tot += pay[ego];
        games++;
    }
    return tot / games;
}

static void skill_should_raise_expected_payoff_for_every_policy(void **state)
{
    (void)state;
    static const double skills[] = {0, 0.5, 1};
    for (int fi = 0; fi < 2; fi++)
        for (int game = 0; game < 2; game++)
            for (int p = 0; p < 4; p++) {
                double m[3];
                for (int k = 0; k < 3; k++)
                    m[k] = mean_payoff(game, (enum bz_nego_policy)p, skills[k], fi);
                print_message("field %d %s %s: %.2f %.2f %.2f\n", fi, game ? "items" : "treaty",
                              bz_nego_policy_name((enum bz_nego_policy)p), m[0], m[1], m[2]);
                assert_true(m[0] < m[1]);
                assert_true(m[1] < m[2]);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(items_should_hit_the_target_cosine_for_n_2_to_50),
        cmocka_unit_test(items_should_be_deterministic_in_the_seed),
        cmocka_unit_test(items_should_refuse_infeasible_targets_with_a_message),
        cmocka_unit_test(treaty_should_hit_rho_theta_lambda_for_n_2_to_50),
        cmocka_unit_test(treaty_should_refuse_rho_below_the_bound_for_n),
        cmocka_unit_test(protocol_should_set_thresholds_per_rule),
        cmocka_unit_test(protocol_should_agree_on_the_first_proposal_meeting_the_threshold),
        cmocka_unit_test(protocol_should_discount_and_pay_zero_without_agreement),
        cmocka_unit_test(metrics_should_compute_gini_and_exploitation),
        cmocka_unit_test(items_nbs_and_pareto_should_match_brute_force),
        cmocka_unit_test(items_nbs_should_say_when_the_budget_cut_the_search),
        cmocka_unit_test(treaty_nbs_should_match_a_grid_search),
        cmocka_unit_test(treaty_nbs_should_beat_random_points_for_many_issues),
        cmocka_unit_test(treaty_pareto_should_match_the_one_issue_hull),
        cmocka_unit_test(policies_should_propose_admissible_outcomes),
        cmocka_unit_test(greedy_should_keep_enough_supporters_at_its_belief),
        cmocka_unit_test(reciprocal_should_punish_who_did_not_concede),
        cmocka_unit_test(skill_should_raise_expected_payoff_for_every_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
