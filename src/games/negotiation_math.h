/* negotiation_math: the platform-free mathematics of the two negotiation games
 * (item_allocation and treaty) that share one protocol: preference generators,
 * protocol rules, outcome metrics (welfare, Nash bargaining solution, Pareto,
 * Gini) and the heuristic policies' pure decision logic. Plain C11 on
 * caller-owned arrays; no game-platform types, no I/O. Only the generators and
 * the one-off metrics (NBS, Pareto) allocate; policies and protocol rules never
 * allocate (caller-provided scratch). Implemented in src/games/nego_items.c,
 * nego_treaty.c, nego_metrics.c, nego_protocol.c and src/agents/nego_policies.c. */
#ifndef BAZAAR_NEGOTIATION_MATH_H
#define BAZAAR_NEGOTIATION_MATH_H

#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/rng.h"

/* Documented bounds. Every function below refuses (BZ_EINVAL) or asserts
 * outside them. */
#define BZ_NEGO_MAX_AGENTS 64
#define BZ_NEGO_MAX_ITEMS 256 /* item_allocation: m <= 256 */
#define BZ_NEGO_MAX_ISSUES 32 /* treaty: K <= 32 */

/* Tolerances the generators guarantee (tested over n = 2..50). */
#define BZ_NEGO_COSINE_TOL 0.02 /* item values: |achieved - competition| */
#define BZ_NEGO_THETA_TOL 1e-3  /* treaty weights: |achieved - theta| */
#define BZ_NEGO_RHO_TOL 0.02    /* treaty positions: |achieved - rho| */

/* ---------------------------------------------------------------- protocol */

enum bz_nego_rule { BZ_NEGO_TWO_THIRDS = 0, BZ_NEGO_MAJORITY, BZ_NEGO_UNANIMITY };

/* "two_thirds" | "majority" | "unanimity" -> *rule; BZ_EINVAL otherwise. */
int bz_nego_rule_parse(const char *name, enum bz_nego_rule *rule, struct bz_err *err);
const char *bz_nego_rule_name(enum bz_nego_rule rule);

/* Accepts needed among n agents (the proposer's own counts):
 * two_thirds floor((2n+2)/3), majority floor(n/2)+1, unanimity n. */
int bz_nego_threshold(int n, enum bz_nego_rule rule);

/* The round's agreement. accept[p * n + v] != 0: voter v accepted proposer p's
 * proposal (the diagonal is ignored: one's own proposal counts as accepted).
 * proposed[p] == 0 marks a proposer without a proposal (never accepted);
 * proposed may be NULL (all proposed). Returns the first proposer, in index
 * order, with at least `threshold` accepts, or -1; *max_accepts (may be NULL)
 * receives the largest accept count of any proposal (0 when none proposed). */
int bz_nego_agreement(int n, const unsigned char *accept, const unsigned char *proposed,
                      int threshold, int *max_accepts);

/* gamma^(round - 1); round >= 1. */
double bz_nego_discount(double gamma, int round);

/* payoff[i] = utility[i] * gamma^(round - 1), or 0 for all when round < 1 (no
 * agreement). */
void bz_nego_payoffs(int n, const double *utility, int agreement_round, double gamma,
                     double *payoff);

/* ----------------------------------------------------------- the two games */

/* item_allocation: values[i * m + k] is agent i's integer value of item k
 * (each row sums to 100). An allocation is alloc[k] in [0, n): item k's
 * receiver. All pointers are borrowed. */
struct bz_nego_items {
    int n, m;
    const int *values;
};

/* treaty: pos[i * K + k] in [0, 1], weight[i * K + k] >= 0 (rows sum to 1). An
 * outcome is x[k] in [0, 1]. All pointers are borrowed. */
struct bz_nego_treaty {
    int n, K;
    const double *pos, *weight;
};

/* round(2.5 n): the default number of items. */
int bz_nego_items_default_m(int n);

/* Values for n agents and m items with mean pairwise cosine similarity
 * `competition` (values: caller-owned n * m ints). Method: each agent's real
 * vector is (1 - a) private + a shared (private vectors on disjoint blocks of
 * items: i's block is the items k = i mod n, or the single item i mod m when
 * m < n; the shared vector on all items; all Dirichlet(1)-like weights), scaled
 * to 100 and rounded by largest remainders; a is found by bisection on the
 * rounded vectors' mean cosine, then single units of value are moved between
 * items while that brings the mean cosine closer to the target. Deterministic
 * in the rng's stream. Feasible: 2 <= n <= 64, 1 <= m <= 256, competition in
 * [c_min, 1] where c_min = 0 when m >= n, else the share of agent pairs that
 * must share an item (sum over items of C(g_k, 2) / C(n, 2) with g_k the
 * agents mapped to item k); refused with BZ_EINVAL and a message saying what
 * is feasible. Guarantees |*achieved - competition| <= BZ_NEGO_COSINE_TOL or
 * returns BZ_EINVAL saying it could not (never seen within the bounds: a
 * sweep of n = 2..50, m in {1, n-1, n, 2.5n, 4n, 256}, 8 targets, 5 seeds
 * never failed, worst error 0.018; test_nego checks n = 2..50 at m = 2.5n and
 * a subset at m = n, 4n). Cost: up to ~60 ms at n = 42, m = 256. */
int bz_nego_items_generate(int n, int m, double competition, struct bz_rng *rng, int *values,
                           double *achieved, struct bz_err *err);

/* Mean pairwise cosine similarity of the n value rows. */
double bz_nego_items_mean_cosine(int n, int m, const int *values);

/* Treaty preferences (pos, weight: caller-owned n * K doubles).
 * Positions: a Gaussian copula. Latent Z_ik = alpha (E_ik - mean_i E_ik) +
 * beta mean_i E_ik with E iid N(0,1), alpha^2 = 1 - r, beta^2 = 1 + (n-1) r,
 * an exchangeable correlation r between agents on each issue (issues
 * independent); p_ik = Phi(Z_ik). The nominal latent r = 2 sin(pi rho / 6)
 * is the one whose population Spearman rho is `rho`; then r is re-tuned by
 * bisection in [-1/(n-1), 1] on this draw so that the achieved rho hits the
 * target (a realised x-axis, not a noisy one). Achieved rho := the pooled
 * intra-class (Pearson) correlation of the positions, which are uniform in
 * the population so this is the copula's Spearman rho:
 *   (sum_k [(sum_i d_ik)^2 - sum_i d_ik^2]) / ((n-1) sum_ik d_ik^2),
 *   d_ik = p_ik - 1/2 (the positions' population mean),
 * in [-1/(n-1), 1], defined for any K >= 1, measured on the positions before
 * the lambda mirroring below. A draw that cannot reach a rho at the bound is
 * replaced (up to 32 draws) before giving up with BZ_EINVAL. Refused:
 * rho < (6/pi) asin(-1/(2(n-1))) (a latent r below -1/(n-1) is not a
 * correlation matrix; this bound is just above -1/(n-1)).
 * Weights: (1 - a) private + a shared, normalised to sum 1, a by bisection on
 * the mean pairwise cosine (private supports disjoint blocks as for items:
 * theta >= c_min(n, K), 0 needs K >= n).
 * lambda: L = round(lambda K) issues, chosen by the rng, are complementary:
 * on them the odd-numbered agents' positions are mirrored (p -> 1 - p), so the
 * two camps (even, odd agents) pull in opposite directions there and, with
 * differing weights, can trade concessions across issues. Achieved lambda =
 * L / K (within 1 / (2K) of lambda).
 * Bounds: 2 <= n <= 64, 1 <= K <= 32, rho, theta, lambda in [0, 1] except
 * rho down to the bound above. Returns achieved values through out-params. */
int bz_nego_treaty_generate(int n, int K, double rho, double theta, double lambda,
                            struct bz_rng *rng, double *pos, double *weight, double *achieved_rho,
                            double *achieved_theta, double *achieved_lambda, struct bz_err *err);

/* The pooled position correlation defined above (on the given positions;
 * `mirrored` (K flags, may be NULL) undoes the mirroring of odd agents). */
double bz_nego_treaty_position_rho(int n, int K, const double *pos, const unsigned char *mirrored);
/* Mean pairwise cosine of the weight rows. */
double bz_nego_treaty_mean_cosine(int n, int K, const double *weight);

/* ----------------------------------------------------------------- metrics */

/* u[i] for an allocation / an outcome. */
void bz_nego_items_utilities(const struct bz_nego_items *g, const int *alloc, double *u);
double bz_nego_items_utility(const struct bz_nego_items *g, const int *alloc, int agent);
void bz_nego_treaty_utilities(const struct bz_nego_treaty *g, const double *x, double *u);
double bz_nego_treaty_utility(const struct bz_nego_treaty *g, const double *x, int agent);

/* One round's offer matrix for the history: offer[p * n + j] = u_j under
 * proposer p's proposal (items: proposals[p * m ...], treaty: proposals[p * K
 * ...]), NaN where proposed[p] == 0 (proposed may be NULL: all proposed). */
void bz_nego_items_offers(const struct bz_nego_items *g, const int *proposals,
                          const unsigned char *proposed, double *offer);
void bz_nego_treaty_offers(const struct bz_nego_treaty *g, const double *proposals,
                           const unsigned char *proposed, double *offer);

/* Maximum social welfare (sum of utilities), exact; the maximiser is written to
 * alloc / x when not NULL (items: each item to the agent valuing it most,
 * lowest index on ties; treaty: per issue the lowest weighted median of the
 * positions with weights w_ik). */
double bz_nego_items_max_welfare(const struct bz_nego_items *g, int *alloc);
double bz_nego_treaty_max_welfare(const struct bz_nego_treaty *g, double *x);

/* Nash bargaining solution of item_allocation: an allocation maximising the
 * product of utilities (disagreement point 0). Objective, lexicographic: the
 * fewest agents at utility 0 (none whenever possible, so this is the product
 * itself), then the largest product of the positive utilities, then the
 * largest welfare (this settles the degenerate m < n case). Method: local search from 16 starts
 * (greedy on log-gain, then single-item moves and pairwise swaps until no improvement) gives an
 * incumbent; then depth-first branch and bound over the n^m assignments, items in decreasing order
 * of their largest value, bound = max of sum log(c_i + x_i) with 0 <= x_i <= R_i, sum x_i <= S
 * (water-filling; c = current utilities, R_i = i's value of the unassigned
 * items, S = sum of their largest values); agents with identical value rows
 * and equal utilities so far are explored once (symmetry). *exact = 1 when the search ended
 * within node_budget nodes (the result is the optimum), else 0 (the best
 * found: the local-search approximation or better). alloc: m ints; u: n
 * doubles (may be NULL). Allocates O(n m); BZ_ENOMEM on failure. Cost: about
 * 1 us per node at n = 10, 2 us at n = 50; with 1e6 nodes the default m =
 * 2.5 n is solved exactly up to n = 10 at any competition and up to n = 50 at
 * competition 0.5, not at competition 1 for n >= 20 (bench_nego). The
 * local search alone (node_budget 0) found the proven optimum in all 60
 * cases tried at n = 8, 10 and competition 0.75 to 1. */
int bz_nego_items_nbs(const struct bz_nego_items *g, long node_budget, struct bz_rng *rng,
                      int *alloc, double *u, int *exact, struct bz_err *err);

/* Nash bargaining solution of treaty. The log-product is concave in x (each
 * u_i is concave, piecewise linear, and positive), so a local maximum is
 * global; it is found by cyclic coordinate ascent on the log-product with
 * |z| smoothed to sqrt(z^2 + mu^2), mu from 1e-2 down to 1e-7 (continuation;
 * each 1-D problem is concave and solved by bisection on its derivative),
 * started at the mean positions (interior: every utility positive); then each
 * x_k within 1e-4 of a position snaps to it when the exact log-product is no
 * lower (optima sit on kinks). Tested against an exhaustive grid (K <= 2,
 * step 1e-3 / 1e-5) within 1e-3 in the log-product, and against random
 * points for K = 5, n up to 12. x: K doubles; u: n doubles
 * (may be NULL). Never allocates. */
void bz_nego_treaty_nbs(const struct bz_nego_treaty *g, double *x, double *u);

/* Pareto optimality of an allocation. Exact: 1 when no allocation gives every
 * agent at least as much and one agent more, 0 when one does. Method: a
 * welfare maximiser is Pareto optimal (1); an item held by an agent valuing
 * it 0 while another values it > 0 is a dominated allocation (0); otherwise
 * depth-first search for an allocation with u_i >= u_i(alloc) for all i and
 * a larger sum (integer utilities: that is exactly domination), pruned by the
 * per-agent and welfare upper bounds. Returns -1 (undetermined) when the
 * search exceeds node_budget nodes. */
int bz_nego_items_pareto(const struct bz_nego_items *g, const int *alloc, long node_budget);

/* Pareto optimality of a treaty outcome, exact up to 1e-9: the utilities are
 * concave and piecewise linear, so x is dominated iff some feasible direction
 * improves one agent's directional derivative without lowering anyone's
 * (a dominating y gives direction y - x by concavity; conversely a small
 * step along such a direction stays on linear pieces). That is a linear
 * program in up to 2K non-negative step variables (up and down per issue,
 * none leaving [0, 1]) normalised by sum <= 1: maximise the sum of the
 * agents' derivatives subject to each >= 0; dominated iff the optimum > 1e-9.
 * A position within 1e-9 of x_k counts as at the kink. Dense simplex with
 * Bland's rule (no cycling). Returns 1 (optimal), 0 (dominated) or -1 (out
 * of memory for the (n + 2) x (2K + n + 2) tableau, allocated per call). */
int bz_nego_treaty_pareto(const struct bz_nego_treaty *g, const double *x);

/* Gini coefficient of n values: sum_ij |u_i - u_j| / (2 n^2 mean); 0 when the
 * mean is 0. */
double bz_nego_gini(int n, const double *u);

/* share[i] = payoff[i] / sum(payoff); NaN for all when the sum is 0. */
void bz_nego_utility_share(int n, const double *payoff, double *share);

/* Exploitation index: dist[i] = u[i] - u_nbs[i] (signed: > 0 got more than
 * its Nash bargaining utility, < 0 was exploited). */
void bz_nego_exploitation(int n, const double *u, const double *u_nbs, double *dist);

/* --------------------------------------------------------------- policies */

enum bz_nego_policy { BZ_NEGO_FAIR = 0, BZ_NEGO_GREEDY, BZ_NEGO_ZI, BZ_NEGO_RECIPROCAL };

/* "fair" | "greedy" | "zi" | "reciprocal"; BZ_EINVAL otherwise. */
int bz_nego_policy_parse(const char *name, enum bz_nego_policy *p, struct bz_err *err);
const char *bz_nego_policy_name(enum bz_nego_policy p);

/* Public record of past rounds, caller-owned buffers of max_rounds * n * n:
 * offer[(r * n + p) * n + j] = utility agent j gets (in its own values) under
 * proposer p's proposal of round r + 1 (NaN if p did not propose);
 * accept[(r * n + p) * n + j] = j accepted p's proposal. A policy reads only
 * its own column j = self of offer (what it was offered: its private
 * knowledge) and the votes on its own proposals (p = self). */
struct bz_nego_history {
    int n, max_rounds, rounds;
    double *offer;
    unsigned char *accept;
};

/* Attach buffers (max_rounds * n * n each) and empty the record. */
void bz_nego_history_init(struct bz_nego_history *h, int n, int max_rounds, double *offer_buf,
                          unsigned char *accept_buf);
/* Append one round: offer and accept are n * n as in one round's slice.
 * Returns BZ_EINVAL when max_rounds rounds are already recorded. */
int bz_nego_history_push(struct bz_nego_history *h, const double *offer,
                         const unsigned char *accept);

/* What a policy knows of the game: the full preference profile (heuristics
 * are given complete information) and, computed once per game by the
 * adapter, the Nash bargaining solution and its utilities. Borrowed. */
struct bz_nego_view {
    int threshold, max_rounds;
    double gamma;
    const double *nbs_u;               /* n */
    const struct bz_nego_items *items; /* exactly one of items / treaty */
    const int *items_nbs;              /* m */
    const struct bz_nego_treaty *treaty;
    const double *treaty_nbs; /* K */
};

/* Scratch for one decision: fixed size, caller-owned (stack or per agent). */
struct bz_nego_scratch {
    double u[BZ_NEGO_MAX_AGENTS], bar[BZ_NEGO_MAX_AGENTS];
    double tmp[BZ_NEGO_MAX_ITEMS > BZ_NEGO_MAX_ISSUES ? BZ_NEGO_MAX_ITEMS : BZ_NEGO_MAX_ISSUES];
    int idx[BZ_NEGO_MAX_ITEMS > BZ_NEGO_MAX_AGENTS ? BZ_NEGO_MAX_ITEMS : BZ_NEGO_MAX_AGENTS];
    unsigned char flag[BZ_NEGO_MAX_AGENTS];
};

/* The policy's reasoned proposal for agent `self` in round `round` (1-based),
 * written to out (items: m receivers as int; treaty: K values as double).
 * Policies (fb = fair-share bar = u_self at the NBS):
 * - fair: proposes the NBS; accepts u >= 0.95 fb.
 * - greedy: believes j accepts when u_j >= b_j, b_j = max(0.95 u_j^NBS, 1 +
 *   the largest offer j rejected from it), capped at u_j^NBS; picks the
 *   threshold - 1 cheapest supporters and keeps for itself all it can while
 *   they stay at b_j (items: from the NBS allocation, non-supporters' items to
 *   itself, then supporters' items with the highest own/their value ratio
 *   while they keep b_j; treaty: the point nearest its own position on the
 *   segment from its position to the NBS meeting the supporters' bars);
 *   accepts u >= fb (1 - 0.1 (r - 1) / max(1, R - 1)): above fair's bar, easing
 *   to 0.9 fb by the last round.
 * - zi: Gode and Sunder's ZI-C (skill 0 is ZI-U, the random action): a
 *   random proposal that gives itself at least fb (items: uniform receivers,
 *   then items moved to itself until met; treaty: uniform x pulled toward its
 *   position just far enough); accepts exactly when u >= gamma fb, what
 *   refusing is worth in expectation (its fair share a round later).
 * - reciprocal: j cooperated if j's latest proposal gave it >= 0.9 fb or more
 *   than j's previous one (everyone in round 1); proposes the NBS when all
 *   cooperated, otherwise as greedy with the cooperators as supporters held
 *   at their NBS utility (items: their NBS bundles; treaty: 0.95 of it) and
 *   the rest punished (items: their NBS items taken; treaty: no concession);
 *   accepts j's proposal when u >= 0.9 fb if j cooperated, >= 1.05 fb if not.
 * Never allocates; O(n m) / O(n K log) per call. */
void bz_nego_propose(const struct bz_nego_view *v, enum bz_nego_policy p, int self, int round,
                     const struct bz_nego_history *h, struct bz_rng *rng, struct bz_nego_scratch *s,
                     void *out);

/* The policy's reasoned vote (1 accept, 0 reject) of agent self on proposer's
 * proposal (items: const int *; treaty: const double *). */
int bz_nego_vote(const struct bz_nego_view *v, enum bz_nego_policy p, int self, int round,
                 const struct bz_nego_history *h, int proposer, const void *proposal,
                 struct bz_rng *rng, struct bz_nego_scratch *s);

/* Random admissible actions, for the platform's skill mixing (with
 * probability 1 - skill it plays these instead of the reasoned ones):
 * items: each item to a uniform receiver; treaty: x uniform in [0, 1]^K;
 * vote: accept with probability 1/2. */
void bz_nego_propose_random(const struct bz_nego_view *v, struct bz_rng *rng, void *out);
int bz_nego_vote_random(struct bz_rng *rng);

/* 1 when the reasoned action is to be played: uniform < skill (one draw). */
int bz_nego_use_reasoned(double skill, struct bz_rng *rng);

#endif
