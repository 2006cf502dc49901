/* negotiation_agents: the heuristic agents of item_allocation and treaty
 * (fair, greedy, zi, reciprocal) as platform policies. Each decide() writes
 * the policy's reasoned action into the game's slot, computed by
 * negotiation_math.h's bz_nego_propose / bz_nego_vote; the platform mixes in
 * the random admissible action with probability 1 - skill. Allocates nothing
 * but a discussion message's copy in the records' arena; never does I/O.
 * Heuristics speak one short public line per discussion turn and leave the
 * private thinking and reflection empty. */
#include <stdio.h>
#include <string.h>

#include "games/negotiation_internal.h"

static void say(struct bz_game *g, int self, enum bz_nego_policy p)
{
    double fb = g->env.nbs_u[self];
    char buf[160];
    switch (p) {
    case BZ_NEGO_FAIR:
        snprintf(buf, sizeof buf,
                 "I propose the Nash bargaining split; it gives me %.0f and I accept offers "
                 "near that.",
                 fb);
        break;
    case BZ_NEGO_GREEDY: snprintf(buf, sizeof buf, "I will not accept less than %.0f.", fb); break;
    case BZ_NEGO_RECIPROCAL:
        snprintf(buf, sizeof buf, "I support those whose proposals treat me fairly (about %.0f).",
                 fb);
        break;
    default: snprintf(buf, sizeof buf, "Let us find a deal."); break;
    }
    g->text[self] = bz_records_strdup(g->base.rec, buf);
}

static void decide(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng,
                   enum bz_nego_policy p)
{
    int i = r->agent, n = g->n, m = g->m;
    g->text[i] = NULL;
    switch (r->phase) {
    case BZ_NEG_DISCUSS: say(g, i, p); break;
    case BZ_NEG_PROPOSE: {
        void *out = g->env.kind == BZ_NEG_ITEMS ? (void *)(g->prop_items + (size_t)i * m)
                                                : (void *)(g->prop_x + (size_t)i * m);
        bz_nego_propose(&g->view, p, i, g->round, &g->hist, rng, &g->scratch, out);
        break;
    }
    case BZ_NEG_VOTE:
        for (int q = 0; q < n; q++) {
            const void *prop = g->env.kind == BZ_NEG_ITEMS
                                   ? (const void *)(g->prop_items + (size_t)q * m)
                                   : (const void *)(g->prop_x + (size_t)q * m);
            g->accept[q * n + i] = q == i
                                       ? 1
                                       : (uint8_t)bz_nego_vote(&g->view, p, i, g->round, &g->hist,
                                                               q, prop, rng, &g->scratch);
        }
        break;
    default: /* thinking, reflection: no text */ break;
    }
    g->filled[i] = 1;
}

static void decide_fair(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_NEGO_FAIR);
}
static void decide_greedy(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_NEGO_GREEDY);
}
static void decide_zi(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_NEGO_ZI);
}
static void decide_reciprocal(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_NEGO_RECIPROCAL);
}

static const struct bz_policy_ops fair = {
    "fair", "proposes the Nash bargaining solution; accepts at least 0.95 of its NBS utility",
    decide_fair};
static const struct bz_policy_ops greedy = {
    "greedy",
    "keeps all it can while buying just enough supporters; accepts only above its NBS utility",
    decide_greedy};
static const struct bz_policy_ops zi = {
    "zi",
    "ZI-C: random proposals giving itself at least its NBS utility; accepts at least gamma times "
    "that",
    decide_zi};
static const struct bz_policy_ops reciprocal = {
    "reciprocal", "concedes to those who conceded to it, punishes the others", decide_reciprocal};

const struct bz_policy_ops *const bz_neg_policies[BZ_NEG_N_POLICIES] = {&fair, &greedy, &zi,
                                                                        &reciprocal};
