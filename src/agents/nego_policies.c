/* nego_policies: the decision logic of the negotiation heuristics (fair,
 * greedy, zi, reciprocal) for item_allocation and treaty, as pure functions of
 * the preference profile, the NBS, the public history and an rng. Never
 * allocates (caller scratch), never does I/O, never mixes in skill: the
 * platform plays bz_nego_propose_random / bz_nego_vote_random instead with
 * probability 1 - skill (bz_nego_use_reasoned). */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "games/negotiation_math.h"

static const char *const policy_names[] = {"fair", "greedy", "zi", "reciprocal"};

int bz_nego_policy_parse(const char *name, enum bz_nego_policy *p, struct bz_err *err)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, policy_names[i]) == 0) {
            *p = (enum bz_nego_policy)i;
            return BZ_OK;
        }
    return bz_err_set(err, BZ_EINVAL,
                      "negotiation: policy \"%s\" unknown (fair, greedy, zi, reciprocal)",
                      name ? name : "(null)");
}

const char *bz_nego_policy_name(enum bz_nego_policy p)
{
    return (unsigned)p < 4 ? policy_names[p] : "?";
}

int bz_nego_use_reasoned(double skill, struct bz_rng *rng)
{
    return bz_rng_uniform(rng) < skill;
}

int bz_nego_vote_random(struct bz_rng *rng)
{
    return (int)(bz_rng_u64(rng) >> 63);
}

static int n_of(const struct bz_nego_view *v)
{
    return v->items ? v->items->n : v->treaty->n;
}

/* Utility of agent i under an outcome of either game. */
static double util(const struct bz_nego_view *v, const void *out, int i)
{
    return v->items ? bz_nego_items_utility(v->items, out, i)
                    : bz_nego_treaty_utility(v->treaty, out, i);
}

static double offer(const struct bz_nego_history *h, int r, int p, int j)
{
    return h->offer[((size_t)r * h->n + p) * h->n + j];
}

/* j cooperated with self: its latest proposal gave self >= 0.9 of its fair
 * share or more than its previous one; everyone does before any history. */
static int cooperated(const struct bz_nego_view *v, const struct bz_nego_history *h, int self,
                      int j)
{
    if (!h || h->rounds == 0)
        return 1;
    double last = offer(h, h->rounds - 1, j, self);
    if (isnan(last) || last >= 0.9 * v->nbs_u[self])
        return 1;
    if (h->rounds >= 2) {
        double prev = offer(h, h->rounds - 2, j, self);
        return !isnan(prev) && last > prev + 0.5;
    }
    return 0;
}

/* Greedy's belief of j's acceptance bar: 0.95 of j's NBS utility, raised to
 * one above any offer j rejected from self, capped at j's NBS utility. */
static double greedy_bar(const struct bz_nego_view *v, const struct bz_nego_history *h, int self,
                         int j)
{
    double b = 0.95 * v->nbs_u[j];
    for (int r = 0; h && r < h->rounds; r++) {
        double o = offer(h, r, self, j);
        if (!isnan(o) && !h->accept[((size_t)r * h->n + self) * h->n + j] && o + 1 > b)
            b = o + 1;
    }
    return fmin(b, v->nbs_u[j]);
}

/* Self's cost of keeping j at bar b: b times self's value per unit of j's
 * value on j's NBS share (items) or j's closeness-weighted disagreement. */
static double support_cost(const struct bz_nego_view *v, int self, int j, double b)
{
    if (v->items) {
        const struct bz_nego_items *g = v->items;
        double mine = 0, theirs = 1e-9;
        for (int k = 0; k < g->m; k++)
            if (v->items_nbs[k] == j) {
                mine += g->values[self * g->m + k];
                theirs += g->values[j * g->m + k];
            }
        return b * mine / theirs;
    }
    const struct bz_nego_treaty *g = v->treaty;
    double d = 0;
    for (int k = 0; k < g->K; k++)
        d += g->weight[self * g->K + k] * fabs(g->pos[self * g->K + k] - g->pos[j * g->K + k]);
    return b * d;
}

/* Mark in s->flag the supporters: those already flagged, plus the cheapest
 * others until `need` are flagged (s->bar holds the bars). */
static void pick_supporters(const struct bz_nego_view *v, int self, int need,
                            struct bz_nego_scratch *s)
{
    int n = n_of(v), have = 0;
    for (int j = 0; j < n; j++)
        have += s->flag[j];
    while (have < need) {
        int best = -1;
        double bc = 0;
        for (int j = 0; j < n; j++) {
            if (j == self || s->flag[j])
                continue;
            double c = support_cost(v, self, j, s->bar[j]);
            if (best < 0 || c < bc) {
                best = j;
                bc = c;
            }
        }
        if (best < 0)
            break;
        s->flag[best] = 1;
        have++;
    }
}

/* Items: from the NBS, non-supporters' items go to self (or, when self values
 * them 0, to the supporter valuing them most); then supporters' items move to
 * self, highest own/their value ratio first, while each keeps its bar. */
static void items_squeeze(const struct bz_nego_view *v, int self, struct bz_nego_scratch *s,
                          int *alloc)
{
    const struct bz_nego_items *g = v->items;
    int n = g->n, m = g->m;
    const int *V = g->values;
    memcpy(alloc, v->items_nbs, sizeof(int) * (size_t)m);
    for (int k = 0; k < m; k++) {
        int o = alloc[k];
        if (o == self || s->flag[o])
            continue;
        int to = self;
        if (V[self * m + k] == 0)
            for (int j = 0; j < n; j++)
                if (s->flag[j] && V[j * m + k] > (to == self ? 0 : V[to * m + k]))
                    to = j;
        alloc[k] = to;
    }
    bz_nego_items_utilities(g, alloc, s->u);
    int *cand = s->idx;
    for (int k = 0; k < m; k++)
        cand[k] = alloc[k] != self && s->flag[alloc[k]] && V[self * m + k] > 0;
    for (;;) {
        int best = -1;
        double br = -1;
        for (int k = 0; k < m; k++) {
            if (!cand[k])
                continue;
            int o = alloc[k];
            double r = V[self * m + k] / (V[o * m + k] + 0.5);
            if (r > br) {
                br = r;
                best = k;
            }
        }
        if (best < 0)
            break;
        cand[best] = 0;
        int o = alloc[best];
        if (s->u[o] - V[o * m + best] >= s->bar[o]) {
            s->u[o] -= V[o * m + best];
            alloc[best] = self;
        }
    }
}

/* Treaty: the smallest t in [0, 1] with u_j(p_self + t (nbs - p_self)) >= bar
 * (u_j is concave along the segment and u_j(nbs) >= bar, so it is an interval
 * ending at 1). */
static double treaty_t(const struct bz_nego_view *v, int self, int j, double bar, double *x)
{
    const struct bz_nego_treaty *g = v->treaty;
    const double *p = g->pos + self * g->K;
    double lo = 0, hi = 1;
    for (int k = 0; k < g->K; k++)
        x[k] = p[k];
    if (bz_nego_treaty_utility(g, x, j) >= bar)
        return 0;
    for (int it = 0; it < 30; it++) {
        double mid = 0.5 * (lo + hi);
        for (int k = 0; k < g->K; k++)
            x[k] = p[k] + mid * (v->treaty_nbs[k] - p[k]);
        if (bz_nego_treaty_utility(g, x, j) >= bar)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* Treaty: the point of the segment nearest self's position that meets the
 * bar of every supporter. */
static void treaty_squeeze(const struct bz_nego_view *v, int self, struct bz_nego_scratch *s,
                           double *x)
{
    const struct bz_nego_treaty *g = v->treaty;
    double t = 0;
    for (int j = 0; j < g->n; j++)
        if (s->flag[j] && j != self)
            t = fmax(t, treaty_t(v, self, j, s->bar[j], s->tmp));
    const double *p = g->pos + self * g->K;
    for (int k = 0; k < g->K; k++)
        x[k] = p[k] + t * (v->treaty_nbs[k] - p[k]);
}

static void copy_nbs(const struct bz_nego_view *v, void *out)
{
    if (v->items)
        memcpy(out, v->items_nbs, sizeof(int) * (size_t)v->items->m);
    else
        memcpy(out, v->treaty_nbs, sizeof(double) * (size_t)v->treaty->K);
}

void bz_nego_propose_random(const struct bz_nego_view *v, struct bz_rng *rng, void *out)
{
    if (v->items) {
        int *a = out;
        for (int k = 0; k < v->items->m; k++)
            a[k] = (int)bz_rng_below(rng, (uint64_t)v->items->n);
    } else {
        double *x = out;
        for (int k = 0; k < v->treaty->K; k++)
            x[k] = bz_rng_uniform(rng);
    }
}

/* zi is Gode and Sunder's ZI-C: skill 0 plays ZI-U (bz_nego_propose_random,
 * coin-flip votes), skill 1 random actions within a budget, never a deal at a
 * loss. Budget: its fair share, i.e. its NBS utility nbs_u[self]. Proposal: a
 * uniform random outcome, then made to give self at least the fair share
 * (items from a random offset moved to self; x pulled toward p_self just far
 * enough). Vote: accept exactly when the proposal gives self at least what
 * refusing is worth in expectation, the fair share one round later,
 * gamma * nbs_u[self]. */
static void zi_propose(const struct bz_nego_view *v, int self, struct bz_rng *rng,
                       struct bz_nego_scratch *s, void *out)
{
    double bar = v->nbs_u[self];
    bz_nego_propose_random(v, rng, out);
    if (v->items) {
        const struct bz_nego_items *g = v->items;
        int *a = out, m = g->m, off = (int)bz_rng_below(rng, (uint64_t)m);
        double u = bz_nego_items_utility(g, a, self);
        for (int j = 0; j < m && u < bar; j++) {
            int k = (off + j) % m;
            if (a[k] != self && g->values[self * m + k] > 0) {
                a[k] = self;
                u += g->values[self * m + k];
            }
        }
        return;
    }
    const struct bz_nego_treaty *g = v->treaty;
    double *x = out, *y = s->tmp, lo = 0, hi = 1;
    const double *p = g->pos + self * g->K;
    if (bz_nego_treaty_utility(g, x, self) >= bar)
        return;
    for (int it = 0; it < 30; it++) { /* largest t keeping u(p + t (x - p)) >= bar */
        double mid = 0.5 * (lo + hi);
        for (int k = 0; k < g->K; k++)
            y[k] = p[k] + mid * (x[k] - p[k]);
        if (bz_nego_treaty_utility(g, y, self) >= bar)
            lo = mid;
        else
            hi = mid;
    }
    for (int k = 0; k < g->K; k++)
        x[k] = p[k] + lo * (x[k] - p[k]);
}

void bz_nego_propose(const struct bz_nego_view *v, enum bz_nego_policy p, int self, int round,
                     const struct bz_nego_history *h, struct bz_rng *rng, struct bz_nego_scratch *s,
                     void *out)
{
    int n = n_of(v), need = v->threshold - 1, all = 1;
    assert(self >= 0 && self < n && round >= 1);
    switch (p) {
    case BZ_NEGO_FAIR: copy_nbs(v, out); return;
    case BZ_NEGO_ZI: zi_propose(v, self, rng, s, out); return;
    case BZ_NEGO_GREEDY:
        for (int j = 0; j < n; j++) {
            s->flag[j] = 0;
            s->bar[j] = j == self ? 0 : greedy_bar(v, h, self, j);
        }
        break;
    case BZ_NEGO_RECIPROCAL:
        for (int j = 0; j < n; j++) {
            s->flag[j] = j != self && cooperated(v, h, self, j);
            all &= j == self || s->flag[j];
            /* items: cooperators keep their NBS bundles; treaty: the segment
             * toward its own position stops where they keep 0.95 of it */
            s->bar[j] = (v->items ? 1.0 : 0.95) * v->nbs_u[j];
        }
        if (all) {
            copy_nbs(v, out);
            return;
        }
        break;
    }
    pick_supporters(v, self, need, s);
    if (v->items)
        items_squeeze(v, self, s, out);
    else
        treaty_squeeze(v, self, s, out);
}

int bz_nego_vote(const struct bz_nego_view *v, enum bz_nego_policy p, int self, int round,
                 const struct bz_nego_history *h, int proposer, const void *proposal,
                 struct bz_rng *rng, struct bz_nego_scratch *s)
{
    (void)s;
    (void)rng; /* zi's votes are deterministic in the proposal (ZI-C) */
    if (proposer == self)
        return 1;
    double u = util(v, proposal, self), fb = v->nbs_u[self];
    switch (p) {
    case BZ_NEGO_FAIR: return u >= 0.95 * fb;
    case BZ_NEGO_GREEDY: {
        double ease = v->max_rounds > 1 ? (double)(round - 1) / (v->max_rounds - 1) : 1.0;
        return u >= fb * (1.0 - 0.1 * fmin(1.0, ease));
    }
    case BZ_NEGO_ZI: return u >= v->gamma * fb; /* see zi_propose */
    case BZ_NEGO_RECIPROCAL: return u >= (cooperated(v, h, self, proposer) ? 0.9 : 1.05) * fb;
    }
    return 0;
}
