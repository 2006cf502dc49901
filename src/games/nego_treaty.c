/* nego_treaty: the treaty game's mathematics: the preference generator
 * (Gaussian-copula positions with a target correlation, weights with a target
 * mean cosine, complementary issues), utilities, maximum welfare, the Nash
 * bargaining solution and the exact Pareto check. Knows nothing of the game
 * platform; allocates only in the generator and the Pareto LP's tableau. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "games/negotiation_math.h"

#define BZ_PI 3.14159265358979323846

static double phi_cdf(double z)
{
    return 0.5 * erfc(-z / sqrt(2.0));
}

/* ------------------------------------------------------------ generator */

double bz_nego_treaty_position_rho(int n, int K, const double *pos, const unsigned char *mirrored)
{
    double num = 0, T = 0;
    for (int k = 0; k < K; k++) {
        double S = 0, S2 = 0;
        for (int i = 0; i < n; i++) {
            double p = pos[i * K + k];
            if (mirrored && mirrored[k] && (i & 1))
                p = 1 - p;
            double d = p - 0.5; /* the positions' population mean (uniform margins) */
            S += d;
            S2 += d * d;
        }
        num += S * S - S2;
        T += S2;
    }
    return T > 0 ? num / ((n - 1) * T) : 0.0;
}

double bz_nego_treaty_mean_cosine(int n, int K, const double *w)
{
    double U[BZ_NEGO_MAX_ISSUES] = {0}, tot = 0;
    for (int i = 0; i < n; i++) {
        double nn = 0;
        for (int k = 0; k < K; k++)
            nn += w[i * K + k] * w[i * K + k];
        double inv = nn > 0 ? 1 / sqrt(nn) : 0;
        for (int k = 0; k < K; k++)
            U[k] += w[i * K + k] * inv;
    }
    for (int k = 0; k < K; k++)
        tot += U[k] * U[k];
    return (tot - n) / ((double)n * (n - 1));
}

/* Positions from the latent draw E at exchangeable latent correlation r. */
static void positions(int n, int K, const double *E, double r, double *pos)
{
    double alpha = sqrt(fmax(0, 1 - r)), beta = sqrt(fmax(0, 1 + (n - 1) * r));
    for (int k = 0; k < K; k++) {
        double mean = 0;
        for (int i = 0; i < n; i++)
            mean += E[i * K + k];
        mean /= n;
        /* Var = alpha^2 (n-1)/n + beta^2/n = 1, Cov = (beta^2 - alpha^2)/n = r */
        for (int i = 0; i < n; i++)
            pos[i * K + k] = phi_cdf(alpha * (E[i * K + k] - mean) + beta * mean);
    }
}

static void weights_mix(int n, int K, const double *q, const double *s, double a, double *w)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++)
            w[i * K + k] = (1 - a) * q[i * K + k] + a * s[k];
}

static double c_min_of(int n, int K)
{
    if (K >= n)
        return 0.0;
    double pairs = 0;
    for (int k = 0; k < K; k++) {
        int g = 0;
        for (int i = 0; i < n; i++)
            g += i % K == k;
        pairs += 0.5 * g * (g - 1);
    }
    return pairs / (0.5 * n * (n - 1));
}

static void dirichlet_block(struct bz_rng *rng, int n, int K, int i, int all, double *w)
{
    double s = 0;
    for (int k = 0; k < K; k++) {
        int in = all || (K >= n ? k % n == i : k == i % K);
        w[k] = in ? -log(1.0 - bz_rng_uniform(rng)) + 1e-12 : 0.0;
        s += w[k];
    }
    for (int k = 0; k < K; k++)
        w[k] /= s;
}

/* Latent correlation r in [r_min, 1] whose positions hit rho; *got = achieved. */
static double calibrate_rho(int n, int K, const double *E, double rho, double *pos, double *got)
{
    double rmin = -1.0 / (n - 1), lo = rmin, hi = 1;
    positions(n, K, E, lo, pos);
    double flo = bz_nego_treaty_position_rho(n, K, pos, NULL);
    if (flo >= rho) {
        *got = flo;
        return lo;
    }
    for (int it = 0; it < 100 && hi - lo > 1e-15; it++) {
        double mid = 0.5 * (lo + hi);
        positions(n, K, E, mid, pos);
        if (bz_nego_treaty_position_rho(n, K, pos, NULL) < rho)
            lo = mid;
        else
            hi = mid;
    }
    positions(n, K, E, hi, pos);
    *got = bz_nego_treaty_position_rho(n, K, pos, NULL);
    return hi;
}

int bz_nego_treaty_generate(int n, int K, double rho, double theta, double lambda,
                            struct bz_rng *rng, double *pos, double *weight, double *achieved_rho,
                            double *achieved_theta, double *achieved_lambda, struct bz_err *err)
{
    if (n < 2 || n > BZ_NEGO_MAX_AGENTS)
        return bz_err_set(err, BZ_EINVAL, "treaty: n_agents %d outside [2, %d]", n,
                          BZ_NEGO_MAX_AGENTS);
    if (K < 1 || K > BZ_NEGO_MAX_ISSUES)
        return bz_err_set(err, BZ_EINVAL, "treaty: n_issues %d outside [1, %d]", K,
                          BZ_NEGO_MAX_ISSUES);
    double rho_min = 6 / BZ_PI * asin(-1.0 / (2.0 * (n - 1)));
    if (!(rho <= 1 && rho >= rho_min - 1e-12))
        return bz_err_set(err, BZ_EINVAL,
                          "treaty: rho %g is infeasible with %d agents: an exchangeable "
                          "correlation needs latent 2 sin(pi rho / 6) >= -1/(n-1), i.e. rho in "
                          "[%.4f, 1]",
                          rho, n, rho_min);
    if (!(theta >= 0 && theta <= 1) || !(lambda >= 0 && lambda <= 1))
        return bz_err_set(err, BZ_EINVAL, "treaty: theta %g and lambda %g must be in [0, 1]", theta,
                          lambda);
    double cmin = c_min_of(n, K);
    if (theta < cmin - BZ_NEGO_THETA_TOL)
        return bz_err_set(err, BZ_EINVAL,
                          "treaty: theta %g is infeasible with %d agents and %d issues: fewer "
                          "issues than agents force shared interests, so the mean cosine of the "
                          "weights is at least %.3f; use theta >= %.3f or n_issues >= %d",
                          theta, n, K, cmin, cmin, n);
    int rc = BZ_OK;
    size_t nk = (size_t)n * (size_t)K;
    double *E = malloc(sizeof(double) * nk), *q = malloc(sizeof(double) * nk);
    double s[BZ_NEGO_MAX_ISSUES];
    if (!E || !q) {
        rc = bz_err_set(err, BZ_ENOMEM, "treaty: out of memory for %d x %d preferences", n, K);
        goto out;
    }
    /* positions: redraw (a few times) only when rho sits at the bound and this
     * draw cannot reach it */
    double got = 0;
    for (int attempt = 0; attempt < 32; attempt++) {
        for (size_t j = 0; j < nk; j++)
            E[j] = bz_rng_normal(rng);
        calibrate_rho(n, K, E, rho, pos, &got);
        if (fabs(got - rho) <= BZ_NEGO_RHO_TOL)
            break;
    }
    if (fabs(got - rho) > BZ_NEGO_RHO_TOL) {
        rc = bz_err_set(err, BZ_EINVAL,
                        "treaty: rho %g with %d agents and %d issues could not be reached "
                        "(best %.4f); use a rho further from the bound %.4f",
                        rho, n, K, got, rho_min);
        goto out;
    }
    /* weights: bisection on the mix of private and shared interests */
    for (int i = 0; i < n; i++)
        dirichlet_block(rng, n, K, i, 0, q + i * K);
    dirichlet_block(rng, n, K, 0, 1, s);
    double lo = 0, hi = 1, th;
    weights_mix(n, K, q, s, 0, weight);
    th = bz_nego_treaty_mean_cosine(n, K, weight);
    if (theta > th) {
        for (int it = 0; it < 100 && hi - lo > 1e-15; it++) {
            double mid = 0.5 * (lo + hi);
            weights_mix(n, K, q, s, mid, weight);
            if (bz_nego_treaty_mean_cosine(n, K, weight) < theta)
                lo = mid;
            else
                hi = mid;
        }
        weights_mix(n, K, q, s, hi, weight);
        th = bz_nego_treaty_mean_cosine(n, K, weight);
    }
    /* complementary issues: a uniformly chosen L of the K, odd agents mirrored */
    int L = (int)lround(lambda * K), perm[BZ_NEGO_MAX_ISSUES];
    for (int k = 0; k < K; k++)
        perm[k] = k;
    for (int j = 0; j < L; j++) {
        int r = j + (int)bz_rng_below(rng, (uint64_t)(K - j)), t = perm[j];
        perm[j] = perm[r];
        perm[r] = t;
        for (int i = 1; i < n; i += 2)
            pos[i * K + perm[j]] = 1 - pos[i * K + perm[j]];
    }
    if (achieved_rho)
        *achieved_rho = got;
    if (achieved_theta)
        *achieved_theta = th;
    if (achieved_lambda)
        *achieved_lambda = (double)L / K;
out:
    free(q);
    free(E);
    return rc;
}

/* -------------------------------------------------------------- metrics */

double bz_nego_treaty_utility(const struct bz_nego_treaty *g, const double *x, int agent)
{
    double u = 0;
    const double *p = g->pos + agent * g->K, *w = g->weight + agent * g->K;
    for (int k = 0; k < g->K; k++)
        u += w[k] * (1 - fabs(x[k] - p[k]));
    return 100 * u;
}

void bz_nego_treaty_utilities(const struct bz_nego_treaty *g, const double *x, double *u)
{
    for (int i = 0; i < g->n; i++)
        u[i] = bz_nego_treaty_utility(g, x, i);
}

void bz_nego_treaty_offers(const struct bz_nego_treaty *g, const double *proposals,
                           const unsigned char *proposed, double *offer)
{
    int n = g->n;
    for (int p = 0; p < n; p++)
        for (int j = 0; j < n; j++)
            offer[p * n + j] = proposed && !proposed[p]
                                   ? NAN
                                   : bz_nego_treaty_utility(g, proposals + (size_t)p * g->K, j);
}

double bz_nego_treaty_max_welfare(const struct bz_nego_treaty *g, double *x)
{
    int n = g->n, K = g->K, ord[BZ_NEGO_MAX_AGENTS] = {0};
    double xs[BZ_NEGO_MAX_ISSUES], u[BZ_NEGO_MAX_AGENTS], w = 0;
    for (int k = 0; k < K; k++) {
        double tot = 0;
        for (int i = 0; i < n; i++) {
            int j = i;
            while (j > 0 && g->pos[ord[j - 1] * K + k] > g->pos[i * K + k]) {
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = i;
            tot += g->weight[i * K + k];
        }
        double cum = 0;
        xs[k] = g->pos[ord[0] * K + k];
        for (int j = 0; j < n; j++) {
            cum += g->weight[ord[j] * K + k];
            if (cum >= 0.5 * tot) {
                xs[k] = g->pos[ord[j] * K + k];
                break;
            }
        }
    }
    bz_nego_treaty_utilities(g, xs, u);
    for (int i = 0; i < n; i++)
        w += u[i];
    if (x)
        memcpy(x, xs, sizeof(double) * (size_t)K);
    return w;
}

/* --------------------------------------------------------------- NBS */

/* d/dx of sum_i log(A_i + 100 w_i (1 - h(x - p_i))), h(z) = sqrt(z^2 + mu^2). */
static double dlog(const struct bz_nego_treaty *g, int k, const double *A, double x, double mu)
{
    double d = 0;
    for (int i = 0; i < g->n; i++) {
        double w = g->weight[i * g->K + k];
        if (w == 0)
            continue;
        double z = x - g->pos[i * g->K + k], h = sqrt(z * z + mu * mu);
        double u = A[i] + 100 * w * (1 - h);
        d += -100 * w * (z / h) / (u > 1e-300 ? u : 1e-300);
    }
    return d;
}

static double exact_log_product(const struct bz_nego_treaty *g, const double *x)
{
    double s = 0;
    for (int i = 0; i < g->n; i++) {
        double u = bz_nego_treaty_utility(g, x, i);
        s += u > 0 ? log(u) : -1e300;
    }
    return s;
}

void bz_nego_treaty_nbs(const struct bz_nego_treaty *g, double *x, double *u)
{
    int n = g->n, K = g->K;
    double A[BZ_NEGO_MAX_AGENTS], us[BZ_NEGO_MAX_AGENTS];
    /* start at the mean positions: interior, so every utility is positive */
    for (int k = 0; k < K; k++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += g->pos[i * K + k];
        x[k] = fmin(1 - 1e-6, fmax(1e-6, s / n));
    }
    for (double mu = 1e-2; mu > 5e-8; mu *= 0.1) {
        for (int sweep = 0; sweep < 500; sweep++) {
            double moved = 0;
            for (int k = 0; k < K; k++) {
                for (int i = 0; i < n; i++) {
                    double z = x[k] - g->pos[i * K + k], w = g->weight[i * K + k];
                    double tot = 0;
                    for (int j = 0; j < K; j++) {
                        double zj = x[j] - g->pos[i * K + j];
                        tot += g->weight[i * K + j] * (1 - sqrt(zj * zj + mu * mu));
                    }
                    A[i] = 100 * tot - 100 * w * (1 - sqrt(z * z + mu * mu));
                }
                double lo = 0, hi = 1, nx;
                if (dlog(g, k, A, 0, mu) <= 0)
                    nx = 0;
                else if (dlog(g, k, A, 1, mu) >= 0)
                    nx = 1;
                else {
                    for (int it = 0; it < 60; it++) {
                        double mid = 0.5 * (lo + hi);
                        if (dlog(g, k, A, mid, mu) > 0)
                            lo = mid;
                        else
                            hi = mid;
                    }
                    nx = 0.5 * (lo + hi);
                }
                moved = fmax(moved, fabs(nx - x[k]));
                x[k] = nx;
            }
            if (moved < 1e-12)
                break;
        }
    }
    /* the true optimum sits on kinks (positions) more often than not: snap
     * each issue to a nearby position when the exact log-product is no lower */
    for (int pass = 0; pass < 3; pass++)
        for (int k = 0; k < K; k++) {
            double keep = x[k], best = exact_log_product(g, x);
            for (int i = 0; i < n; i++) {
                double p = g->pos[i * K + k];
                if (fabs(p - keep) > 1e-4 || p == x[k])
                    continue;
                double was = x[k];
                x[k] = p;
                double lp = exact_log_product(g, x);
                if (lp >= best - 1e-12)
                    best = lp;
                else
                    x[k] = was;
            }
        }
    bz_nego_treaty_utilities(g, x, u ? u : us);
}

/* --------------------------------------------------------------- Pareto */

/* Dense simplex, maximise c z s.t. M z <= b (b >= 0), z >= 0, Bland's rule.
 * T: (rows + 1) x (cols + rows + 1): constraints then the objective row.
 * Returns the optimum. */
static double simplex(double *T, int rows, int cols, int *basis)
{
    int W = cols + rows + 1;
    double *obj = T + (size_t)rows * W;
    for (int iter = 0; iter < 50000; iter++) {
        int e = -1;
        for (int j = 0; j < cols + rows; j++)
            if (obj[j] < -1e-12) {
                e = j;
                break;
            }
        if (e < 0)
            break;
        int l = -1;
        double best = 0;
        for (int r = 0; r < rows; r++) {
            double a = T[(size_t)r * W + e];
            if (a > 1e-12) {
                double ratio = T[(size_t)r * W + W - 1] / a;
                if (l < 0 || ratio < best - 1e-15 ||
                    (ratio <= best + 1e-15 && basis[r] < basis[l])) {
                    l = r;
                    best = ratio;
                }
            }
        }
        if (l < 0)
            return INFINITY; /* unbounded (cannot happen with the normalisation row) */
        double piv = T[(size_t)l * W + e];
        for (int j = 0; j < W; j++)
            T[(size_t)l * W + j] /= piv;
        for (int r = 0; r <= rows; r++) {
            if (r == l)
                continue;
            double f = T[(size_t)r * W + e];
            if (f != 0)
                for (int j = 0; j < W; j++)
                    T[(size_t)r * W + j] -= f * T[(size_t)l * W + j];
        }
        basis[l] = e;
    }
    return obj[W - 1];
}

int bz_nego_treaty_pareto(const struct bz_nego_treaty *g, const double *x)
{
    int n = g->n, K = g->K, nv = 0, var_issue[2 * BZ_NEGO_MAX_ISSUES],
        var_up[2 * BZ_NEGO_MAX_ISSUES];
    for (int k = 0; k < K; k++) {
        if (x[k] < 1) {
            var_issue[nv] = k;
            var_up[nv++] = 1;
        }
        if (x[k] > 0) {
            var_issue[nv] = k;
            var_up[nv++] = 0;
        }
    }
    int rows = n + 1, W = nv + rows + 1, basis[BZ_NEGO_MAX_AGENTS + 1];
    double *T = calloc((size_t)(rows + 1) * (size_t)W, sizeof *T);
    if (!T)
        return -1;
    double *obj = T + (size_t)rows * W;
    for (int j = 0; j < nv; j++) {
        int k = var_issue[j];
        for (int i = 0; i < n; i++) {
            double w = g->weight[i * K + k], p = g->pos[i * K + k], a;
            if (var_up[j])
                a = p > x[k] + 1e-9 ? w : -w;
            else
                a = p < x[k] - 1e-9 ? w : -w;
            T[(size_t)i * W + j] = -a; /* -(gain of i) <= 0 */
            obj[j] -= a;               /* maximise the sum of gains */
        }
        T[(size_t)n * W + j] = 1; /* sum of steps <= 1 */
    }
    for (int r = 0; r < rows; r++) {
        T[(size_t)r * W + nv + r] = 1;
        basis[r] = nv + r;
    }
    T[(size_t)n * W + W - 1] = 1;
    double best = simplex(T, rows, nv, basis);
    free(T);
    return best > 1e-9 ? 0 : 1;
}
