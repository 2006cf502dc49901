/* nego_items: item_allocation's mathematics: the value generator (target
 * mean pairwise cosine), utilities, maximum welfare, the Nash bargaining
 * solution (local search + branch and bound) and the exact Pareto check.
 * Knows nothing of the game platform; allocates only in the generator and the
 * one-off searches (NBS, Pareto), never per decision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "games/negotiation_math.h"

int bz_nego_items_default_m(int n)
{
    return (5 * n + 1) / 2;
}

/* ------------------------------------------------------------ generator */

/* i's private block: items k = i (mod n) when m >= n, else the item i mod m. */
static int in_block(int n, int m, int i, int k)
{
    return m >= n ? k % n == i : k == i % m;
}

static double c_min_of(int n, int m)
{
    if (m >= n)
        return 0.0;
    double pairs = 0;
    for (int k = 0; k < m; k++) {
        int g = 0;
        for (int i = 0; i < n; i++)
            g += i % m == k;
        pairs += 0.5 * g * (g - 1);
    }
    return pairs / (0.5 * n * (n - 1));
}

double bz_nego_items_mean_cosine(int n, int m, const int *values)
{
    /* sum_{i<j} cos = (|sum_i u_i|^2 - n) / 2 for unit vectors u_i */
    double tot = 0;
    double U[BZ_NEGO_MAX_ITEMS] = {0};
    for (int i = 0; i < n; i++) {
        double nn = 0;
        for (int k = 0; k < m; k++)
            nn += (double)values[i * m + k] * values[i * m + k];
        double inv = nn > 0 ? 1.0 / sqrt(nn) : 0;
        for (int k = 0; k < m; k++)
            U[k] += values[i * m + k] * inv;
    }
    for (int k = 0; k < m; k++)
        tot += U[k] * U[k];
    return (tot - n) / ((double)n * (n - 1));
}

/* Largest-remainder rounding of r (sums to 100) to integers summing to 100;
 * ties to the lower index. */
static void round_100(int m, const double *r, int *out, double *rem)
{
    int sum = 0;
    for (int k = 0; k < m; k++) {
        out[k] = (int)floor(r[k]);
        rem[k] = r[k] - out[k];
        sum += out[k];
    }
    for (; sum < 100; sum++) {
        int best = 0;
        for (int k = 1; k < m; k++)
            if (rem[k] > rem[best])
                best = k;
        out[best]++;
        rem[best] = -1;
    }
}

struct gen {
    int n, m;
    double *priv, *shared, *real, *rem;
};

static double mix_round(const struct gen *g, double a, int *values)
{
    for (int i = 0; i < g->n; i++) {
        for (int k = 0; k < g->m; k++)
            g->real[k] = 100.0 * ((1 - a) * g->priv[i * g->m + k] + a * g->shared[k]);
        round_100(g->m, g->real, values + i * g->m, g->rem);
    }
    return bz_nego_items_mean_cosine(g->n, g->m, values);
}

/* Dirichlet(1) weights on the items where mask(k) holds: normalised Exp(1). */
static void dirichlet(struct bz_rng *rng, int m, double *w, int n, int i, int all)
{
    double s = 0;
    for (int k = 0; k < m; k++) {
        w[k] = all || in_block(n, m, i, k) ? -log(1.0 - bz_rng_uniform(rng)) + 1e-12 : 0.0;
        s += w[k];
    }
    for (int k = 0; k < m; k++)
        w[k] /= s;
}

/* Move single units of value between items while that brings the mean cosine
 * closer to t: for agent i, to raise it, from the item others value least
 * (in unit-vector sum) to the one they value most; the reverse to lower it. */
static double repair(int n, int m, int *v, double t, double c, double *U, double *cand)
{
    for (int k = 0; k < m; k++)
        U[k] = 0;
    double norm[BZ_NEGO_MAX_AGENTS];
    for (int i = 0; i < n; i++) {
        double nn = 0;
        for (int k = 0; k < m; k++)
            nn += (double)v[i * m + k] * v[i * m + k];
        norm[i] = sqrt(nn);
        for (int k = 0; k < m; k++)
            U[k] += v[i * m + k] / norm[i];
    }
    int idle = 0;
    for (int step = 0; step < 200000 && idle < n && fabs(c - t) > 0.004; step++) {
        int i = step % n, *vi = v + i * m;
        int up = t > c, from = -1, to = -1;
        for (int k = 0; k < m; k++) {
            double o = U[k] - vi[k] / norm[i];
            if (vi[k] > 0 && (from < 0 || (up ? o < cand[0] : o > cand[0]))) {
                from = k;
                cand[0] = o;
            }
        }
        for (int k = 0; k < m; k++) {
            double o = U[k] - vi[k] / norm[i];
            if (k != from && (to < 0 || (up ? o > cand[1] : o < cand[1]))) {
                to = k;
                cand[1] = o;
            }
        }
        if (from < 0 || to < 0) {
            idle++;
            continue;
        }
        vi[from]--;
        vi[to]++;
        double nn = 0, tot = 0;
        for (int k = 0; k < m; k++)
            nn += (double)vi[k] * vi[k];
        double nnorm = sqrt(nn);
        for (int k = 0; k < m; k++) {
            double uk = U[k] -
                        (k == from ? vi[k] + 1
                         : k == to ? vi[k] - 1
                                   : vi[k]) /
                            norm[i] +
                        vi[k] / nnorm;
            tot += uk * uk;
        }
        double c2 = (tot - n) / ((double)n * (n - 1));
        if (fabs(c2 - t) < fabs(c - t)) {
            for (int k = 0; k < m; k++)
                U[k] += vi[k] / nnorm - (k == from ? vi[k] + 1
                                         : k == to ? vi[k] - 1
                                                   : vi[k]) /
                                            norm[i];
            norm[i] = nnorm;
            c = c2;
            idle = 0;
        } else {
            vi[from]++;
            vi[to]--;
            idle++;
        }
    }
    return c;
}

int bz_nego_items_generate(int n, int m, double competition, struct bz_rng *rng, int *values,
                           double *achieved, struct bz_err *err)
{
    if (n < 2 || n > BZ_NEGO_MAX_AGENTS)
        return bz_err_set(err, BZ_EINVAL, "item_allocation: n_agents %d outside [2, %d]", n,
                          BZ_NEGO_MAX_AGENTS);
    if (m < 1 || m > BZ_NEGO_MAX_ITEMS)
        return bz_err_set(err, BZ_EINVAL, "item_allocation: n_items %d outside [1, %d]", m,
                          BZ_NEGO_MAX_ITEMS);
    if (!(competition >= 0 && competition <= 1))
        return bz_err_set(err, BZ_EINVAL, "item_allocation: competition %g outside [0, 1]",
                          competition);
    double cmin = c_min_of(n, m);
    if (competition < cmin - BZ_NEGO_COSINE_TOL)
        return bz_err_set(err, BZ_EINVAL,
                          "item_allocation: competition %g is infeasible with %d agents and %d "
                          "items: fewer items than agents force shared items, so the mean "
                          "cosine is at least %.3f; use competition >= %.3f or n_items >= %d",
                          competition, n, m, cmin, cmin, n);
    int rc = BZ_OK;
    struct gen g = {n, m, NULL, NULL, NULL, NULL};
    g.priv = malloc(sizeof(double) * (size_t)n * (size_t)m);
    g.shared = malloc(sizeof(double) * (size_t)m);
    g.real = malloc(sizeof(double) * (size_t)m);
    g.rem = malloc(sizeof(double) * (size_t)m);
    if (!g.priv || !g.shared || !g.real || !g.rem) {
        rc = bz_err_set(err, BZ_ENOMEM, "item_allocation: out of memory for %d x %d values", n, m);
        goto out;
    }
    for (int i = 0; i < n; i++)
        dirichlet(rng, m, g.priv + i * m, n, i, 0);
    dirichlet(rng, m, g.shared, n, 0, 1);

    double lo = 0, hi = 1, c;
    double clo = mix_round(&g, lo, values);
    if (competition <= clo) {
        c = clo;
    } else {
        double chi = 1.0; /* a = 1: identical rows */
        for (int it = 0; it < 60 && hi - lo > 1e-13; it++) {
            double mid = 0.5 * (lo + hi), cm = mix_round(&g, mid, values);
            if (cm < competition) {
                lo = mid;
                clo = cm;
            } else {
                hi = mid;
                chi = cm;
            }
        }
        double a = competition - clo < chi - competition ? lo : hi;
        c = mix_round(&g, a, values);
        if (fabs(c - competition) > 0.004)
            c = repair(n, m, values, competition, c, g.real, g.rem);
    }
    if (fabs(c - competition) > BZ_NEGO_COSINE_TOL) {
        rc = bz_err_set(err, BZ_EINVAL,
                        "item_allocation: could not reach competition %g with %d agents and %d "
                        "items (best %.4f); integer values summing to 100 are too coarse here",
                        competition, n, m, c);
        goto out;
    }
    if (achieved)
        *achieved = c;
out:
    free(g.rem);
    free(g.real);
    free(g.shared);
    free(g.priv);
    return rc;
}

/* -------------------------------------------------------------- metrics */

double bz_nego_items_utility(const struct bz_nego_items *g, const int *alloc, int agent)
{
    double u = 0;
    const int *v = g->values + agent * g->m;
    for (int k = 0; k < g->m; k++)
        if (alloc[k] == agent)
            u += v[k];
    return u;
}

void bz_nego_items_utilities(const struct bz_nego_items *g, const int *alloc, double *u)
{
    for (int i = 0; i < g->n; i++)
        u[i] = 0;
    for (int k = 0; k < g->m; k++)
        u[alloc[k]] += g->values[alloc[k] * g->m + k];
}

void bz_nego_items_offers(const struct bz_nego_items *g, const int *proposals,
                          const unsigned char *proposed, double *offer)
{
    int n = g->n;
    for (int p = 0; p < n; p++) {
        if (proposed && !proposed[p])
            for (int j = 0; j < n; j++)
                offer[p * n + j] = NAN;
        else
            bz_nego_items_utilities(g, proposals + (size_t)p * g->m, offer + p * n);
    }
}

double bz_nego_items_max_welfare(const struct bz_nego_items *g, int *alloc)
{
    double w = 0;
    for (int k = 0; k < g->m; k++) {
        int best = 0;
        for (int i = 1; i < g->n; i++)
            if (g->values[i * g->m + k] > g->values[best * g->m + k])
                best = i;
        w += g->values[best * g->m + k];
        if (alloc)
            alloc[k] = best;
    }
    return w;
}

/* ------------------------------------------------------------------ NBS */

/* Objective, compared lexicographically: fewer agents at zero utility, then
 * a larger sum of logs of the positive utilities, then a larger welfare. */
struct key {
    int zeros;
    double sumlog, w;
};

static int key_cmp(struct key a, struct key b)
{
    if (a.zeros != b.zeros)
        return a.zeros < b.zeros ? 1 : -1;
    if (a.sumlog > b.sumlog + 1e-9)
        return 1;
    if (a.sumlog < b.sumlog - 1e-9)
        return -1;
    return a.w > b.w + 1e-9 ? 1 : a.w < b.w - 1e-9 ? -1 : 0;
}

static struct key key_of(int n, const double *u)
{
    struct key k = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        k.w += u[i];
        if (u[i] > 0)
            k.sumlog += log(u[i]);
        else
            k.zeros++;
    }
    return k;
}

struct bb {
    const struct bz_nego_items *g;
    int *ord;    /* items, decreasing largest value */
    int *agents; /* per depth: agents by decreasing value of that item */
    int *cur, *best;
    int twin[BZ_NEGO_MAX_AGENTS]; /* lowest agent with the same value row */
    double c[BZ_NEGO_MAX_AGENTS], R[BZ_NEGO_MAX_AGENTS], S;
    double t[BZ_NEGO_MAX_AGENTS], tsum; /* Pareto: targets */
    struct key inc;
    long nodes, budget;
    int aborted, found;
};

/* Upper bound of the key over completions (see the header). */
static struct key bound(const struct bb *b)
{
    int n = b->g->n;
    struct key k = {0, 0, 0};
    double lo = 1e300, hi = 0, sumR = 0;
    for (int i = 0; i < n; i++) {
        k.w += b->c[i];
        if (b->c[i] + b->R[i] <= 0) {
            k.zeros++;
            continue;
        }
        sumR += b->R[i];
        if (b->c[i] < lo)
            lo = b->c[i];
        if (b->c[i] + b->R[i] > hi)
            hi = b->c[i] + b->R[i];
    }
    k.w += b->S;
    double L = hi;
    if (sumR > b->S) {
        /* water level: smallest L with sum clamp(L, c, c + R) - c >= S */
        double a = lo, z = hi; /* z stays on the feasible side: a valid bound */
        for (int it = 0; it < 24; it++) {
            double mid = 0.5 * (a + z), tot = 0;
            for (int i = 0; i < n; i++) {
                if (b->c[i] + b->R[i] <= 0)
                    continue;
                double y = mid < b->c[i]             ? b->c[i]
                           : mid > b->c[i] + b->R[i] ? b->c[i] + b->R[i]
                                                     : mid;
                tot += y - b->c[i];
            }
            if (tot >= b->S)
                z = mid;
            else
                a = mid;
        }
        L = z;
    }
    for (int i = 0; i < n; i++) {
        if (b->c[i] + b->R[i] <= 0)
            continue;
        double y = L < b->c[i] ? b->c[i] : L > b->c[i] + b->R[i] ? b->c[i] + b->R[i] : L;
        k.sumlog += log(y > 0 ? y : 1e-300);
    }
    return k;
}

/* Agents with identical value rows and identical utilities so far lead to
 * mirror-image subtrees: only the first of them tried at a node is explored
 * (identical valuations, competition 1, are otherwise n! times slower). */
static int symmetric_tried(const struct bb *b, int d, int a, int i)
{
    int n = b->g->n;
    for (int e = 0; e < a; e++) {
        int j = b->agents[d * n + e];
        if (b->twin[j] == b->twin[i] && b->c[j] == b->c[i])
            return 1;
    }
    return 0;
}

static void nbs_dfs(struct bb *b, int d)
{
    const struct bz_nego_items *g = b->g;
    int n = g->n, m = g->m;
    if (b->aborted)
        return;
    if (++b->nodes > b->budget) {
        b->aborted = 1;
        return;
    }
    if (d == m) {
        struct key k = key_of(n, b->c);
        if (key_cmp(k, b->inc) > 0) {
            b->inc = k;
            memcpy(b->best, b->cur, sizeof(int) * (size_t)m);
        }
        return;
    }
    if (key_cmp(bound(b), b->inc) <= 0)
        return;
    int k = b->ord[d];
    double mx = 0;
    for (int i = 0; i < n; i++) {
        double v = g->values[i * m + k];
        b->R[i] -= v;
        if (v > mx)
            mx = v;
    }
    b->S -= mx;
    for (int a = 0; a < n && !b->aborted; a++) {
        int i = b->agents[d * n + a];
        double v = g->values[i * m + k];
        if (v == 0 && a > 0)
            break; /* an item to one who values it 0: never better than to the first */
        if (symmetric_tried(b, d, a, i))
            continue;
        b->cur[k] = i;
        b->c[i] += v;
        nbs_dfs(b, d + 1);
        b->c[i] -= v;
    }
    b->S += mx;
    for (int i = 0; i < n; i++)
        b->R[i] += g->values[i * m + k];
}

/* k with one agent's utility changed from a to b (O(1); drift is removed by
 * recomputing the key after each accepted step). */
static struct key key_change(struct key k, double a, double b)
{
    k.w += b - a;
    if (a > 0)
        k.sumlog -= log(a);
    else
        k.zeros--;
    if (b > 0)
        k.sumlog += log(b);
    else
        k.zeros++;
    return k;
}

/* Improve alloc by single-item moves and pairwise swaps until neither helps. */
static struct key local_search(const struct bz_nego_items *g, int *alloc, double *u)
{
    int n = g->n, m = g->m;
    const int *V = g->values;
    bz_nego_items_utilities(g, alloc, u);
    struct key cur = key_of(n, u);
    for (int improved = 1; improved;) {
        improved = 0;
        for (int k = 0; k < m; k++)
            for (int j = 0; j < n; j++) {
                int o = alloc[k];
                if (j == o)
                    continue;
                double uo = u[o] - V[o * m + k], uj = u[j] + V[j * m + k];
                struct key t = key_change(key_change(cur, u[o], uo), u[j], uj);
                if (key_cmp(t, cur) > 0) {
                    u[o] = uo;
                    u[j] = uj;
                    alloc[k] = j;
                    cur = key_of(n, u);
                    improved = 1;
                }
            }
        for (int k = 0; k < m; k++)
            for (int l = k + 1; l < m; l++) {
                int a = alloc[k], c = alloc[l];
                if (a == c)
                    continue;
                double ua = u[a] + V[a * m + l] - V[a * m + k];
                double uc = u[c] + V[c * m + k] - V[c * m + l];
                struct key t = key_change(key_change(cur, u[a], ua), u[c], uc);
                if (key_cmp(t, cur) > 0) {
                    u[a] = ua;
                    u[c] = uc;
                    alloc[k] = c;
                    alloc[l] = a;
                    cur = key_of(n, u);
                    improved = 1;
                }
            }
    }
    return cur;
}

/* Greedy start: items by decreasing largest value, each to the agent whose
 * log utility gains most (an agent still at 0 first). */
static void greedy_start(const struct bz_nego_items *g, const int *ord, int *alloc, double *u)
{
    for (int i = 0; i < g->n; i++)
        u[i] = 0;
    for (int d = 0; d < g->m; d++) {
        int k = ord[d], best = 0;
        double bg = -1;
        for (int i = 0; i < g->n; i++) {
            double v = g->values[i * g->m + k];
            double gain = v <= 0 ? -1 : u[i] <= 0 ? 1e9 + v : log1p(v / u[i]);
            if (gain > bg) {
                bg = gain;
                best = i;
            }
        }
        alloc[k] = best;
        u[best] += g->values[best * g->m + k];
    }
}

/* Items by decreasing largest value (ties by index), and per depth the agents
 * by decreasing value of that item (ties by index): insertion sorts. */
static void orders(const struct bz_nego_items *g, int *ord, int *agents)
{
    int n = g->n, m = g->m;
    int mx[BZ_NEGO_MAX_ITEMS];
    for (int k = 0; k < m; k++) {
        mx[k] = 0;
        for (int i = 0; i < n; i++)
            if (g->values[i * m + k] > mx[k])
                mx[k] = g->values[i * m + k];
        int j = k;
        while (j > 0 && mx[ord[j - 1]] < mx[k]) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = k;
    }
    for (int d = 0; d < m; d++) {
        int k = ord[d], *a = agents + d * n;
        for (int i = 0; i < n; i++) {
            int j = i;
            while (j > 0 && g->values[a[j - 1] * m + k] < g->values[i * m + k]) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = i;
        }
    }
}

static int bb_alloc(struct bb *b, const struct bz_nego_items *g, struct bz_err *err)
{
    memset(b, 0, sizeof *b);
    b->g = g;
    size_t m = (size_t)g->m, n = (size_t)g->n;
    b->ord = malloc(sizeof(int) * m);
    b->agents = malloc(sizeof(int) * m * n);
    b->cur = malloc(sizeof(int) * m);
    b->best = malloc(sizeof(int) * m);
    if (!b->ord || !b->agents || !b->cur || !b->best)
        return bz_err_set(err, BZ_ENOMEM, "negotiation: out of memory for a search over %zu items",
                          m);
    orders(g, b->ord, b->agents);
    for (int i = 0; i < g->n; i++) {
        b->twin[i] = i;
        for (int j = 0; j < i; j++)
            if (!memcmp(g->values + j * g->m, g->values + i * g->m, sizeof(int) * m)) {
                b->twin[i] = j;
                break;
            }
    }
    for (int i = 0; i < g->n; i++) {
        b->c[i] = 0;
        b->R[i] = 0;
        for (int k = 0; k < g->m; k++)
            b->R[i] += g->values[i * g->m + k];
    }
    b->S = 0;
    for (int k = 0; k < g->m; k++) {
        int mx = 0;
        for (int i = 0; i < g->n; i++)
            if (g->values[i * g->m + k] > mx)
                mx = g->values[i * g->m + k];
        b->S += mx;
    }
    return BZ_OK;
}

static void bb_free(struct bb *b)
{
    free(b->best);
    free(b->cur);
    free(b->agents);
    free(b->ord);
}

int bz_nego_items_nbs(const struct bz_nego_items *g, long node_budget, struct bz_rng *rng,
                      int *alloc, double *u, int *exact, struct bz_err *err)
{
    struct bb b;
    int n = g->n, m = g->m;
    double tu[BZ_NEGO_MAX_AGENTS];
    int rc = bb_alloc(&b, g, err);
    if (rc)
        goto out;
    /* incumbent: the best of 16 local searches (greedy start, then random) */
    b.inc = (struct key){n + 1, 0, 0};
    for (int s = 0; s < 16; s++) {
        if (s == 0)
            greedy_start(g, b.ord, b.cur, tu);
        else
            for (int k = 0; k < m; k++)
                b.cur[k] = (int)bz_rng_below(rng, (uint64_t)n);
        struct key k = local_search(g, b.cur, tu);
        if (key_cmp(k, b.inc) > 0) {
            b.inc = k;
            memcpy(b.best, b.cur, sizeof(int) * (size_t)m);
        }
    }
    b.budget = node_budget;
    nbs_dfs(&b, 0);
    memcpy(alloc, b.best, sizeof(int) * (size_t)m);
    if (u)
        bz_nego_items_utilities(g, alloc, u);
    if (exact)
        *exact = !b.aborted;
out:
    bb_free(&b);
    return rc;
}

/* --------------------------------------------------------------- Pareto */

static void pareto_dfs(struct bb *b, int d)
{
    const struct bz_nego_items *g = b->g;
    int n = g->n, m = g->m;
    if (b->found || b->aborted)
        return;
    if (++b->nodes > b->budget) {
        b->aborted = 1;
        return;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (b->c[i] + b->R[i] < b->t[i])
            return;
        sum += b->c[i];
    }
    if (sum + b->S <= b->tsum)
        return;
    if (d == m) {
        b->found = 1; /* every agent at its target and the sum larger */
        return;
    }
    int k = b->ord[d];
    double mx = 0;
    for (int i = 0; i < n; i++) {
        double v = g->values[i * m + k];
        b->R[i] -= v;
        if (v > mx)
            mx = v;
    }
    b->S -= mx;
    for (int a = 0; a < n && !b->found && !b->aborted; a++) {
        int i = b->agents[d * n + a];
        double v = g->values[i * m + k];
        if (v == 0 && a > 0)
            break; /* weakly dominated by giving it to the first (largest value) */
        b->c[i] += v;
        pareto_dfs(b, d + 1);
        b->c[i] -= v;
    }
    b->S += mx;
    for (int i = 0; i < n; i++)
        b->R[i] += g->values[i * m + k];
}

int bz_nego_items_pareto(const struct bz_nego_items *g, const int *alloc, long node_budget)
{
    int n = g->n, m = g->m;
    double u[BZ_NEGO_MAX_AGENTS], sum = 0;
    bz_nego_items_utilities(g, alloc, u);
    for (int i = 0; i < n; i++)
        sum += u[i];
    if (sum >= bz_nego_items_max_welfare(g, NULL))
        return 1;
    for (int k = 0; k < m; k++)
        if (g->values[alloc[k] * m + k] == 0)
            for (int i = 0; i < n; i++)
                if (g->values[i * m + k] > 0)
                    return 0;
    struct bb b;
    int res = -1;
    if (bb_alloc(&b, g, NULL) == BZ_OK) {
        memcpy(b.t, u, sizeof(double) * (size_t)n);
        b.tsum = sum;
        b.budget = node_budget;
        pareto_dfs(&b, 0);
        res = b.found ? 0 : b.aborted ? -1 : 1;
    }
    bb_free(&b);
    return res;
}
