/* beast_agents: the beast game's heuristic policies on the platform (loyal,
 * mercenary, zi, bully). Each decide() writes the policy's reasoned action
 * (bz_beast_policy_act, with the seat's memory kept in the game) into the
 * request's slot; the game base mixes skill in with random_action
 * (bz_beast_random_action from the agent's stream). The behaviour itself is
 * in src/games/beast_policies.c; this file only maps it. Never does I/O. */
#include "games/beast_game.h"

void bz_beast_game_random_action(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    int k = bz_beast_game_index(g, r);
    if (k < 0)
        return;
    bz_beast_random_action(g->eng, &g->rq[k], rng, &g->act[k]);
    g->filled[k] = 1;
    g->text[k] = NULL;
}

static void decide(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng, int policy)
{
    int k = bz_beast_game_index(g, r);
    if (k < 0)
        return;
    struct bz_beast_mem *mem = &g->mem[r->agent];
    if (mem->policy != policy) /* the seat plays another policy than its label said */
        bz_beast_mem_init(mem, r->agent, policy);
    bz_beast_policy_act(g->eng, &g->rq[k], mem, rng, &g->act[k]);
    g->filled[k] = 1;
    g->text[k] = NULL;
}

static void decide_loyal(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_BEAST_LOYAL);
}

static void decide_mercenary(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_BEAST_MERCENARY);
}

static void decide_zi(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_BEAST_ZI);
}

static void decide_bully(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    decide(g, r, rng, BZ_BEAST_BULLY);
}

const struct bz_policy_ops bz_beast_loyal = {
    "loyal", "forms an alliance, keeps its word, votes with allies against the richest outsider",
    decide_loyal};
const struct bz_policy_ops bz_beast_mercenary = {
    "mercenary", "sells its vote for transfers, breaks promises when it pays", decide_mercenary};
const struct bz_policy_ops bz_beast_zi = {
    "zi",
    "ZI-C: random partners, asks and votes, but never pays and never votes itself down a rank",
    decide_zi};
const struct bz_policy_ops bz_beast_bully = {
    "bully", "demands transfers for protection, votes against those who refuse", decide_bully};
