/* electricity_policies: heuristic agents of the electricity game (truthful,
 * greedy, zero-intelligence, reciprocal). Each decide() writes an admissible
 * action into the game's slot for the current phase; it reads the game state
 * directly, allocates nothing and never does I/O.
 *
 * skill in [0, 1]: with probability skill the policy's reasoned choice, else a
 * random admissible (zero-intelligence) one: a synthetic capability axis. The
 * game base (bz_game_decide) does that mix; decide() here is the reasoned
 * choice only, and zi is bz_elec_random_action itself. */
#include <math.h>
#include <string.h>

#include "games/electricity_internal.h"

/* How a policy prices and how much of its position it states and trades. */
struct style {
    double claim_long, claim_short; /* claimed = true forecast x factor (long/short) */
    double sell_markup, buy_markup; /* contract unit price = P x markup */
    double accept_sell, accept_buy; /* accept selling at >= P x, buying at <= P x */
    double ask, bid_urgent, bid;    /* auction limits: ask; bid when VOLL looms; else */
    double withhold;                /* share of the surplus kept back */
    const char *msg_long, *msg_short;
};

static const struct style truthful = {
    1.0,
    1.0,
    1.0,
    1.0,
    0.9,
    1.15,
    0.85,
    2.5,
    1.1,
    0.0,
    "I expect a surplus this hour and will sell it at the reference price.",
    "I expect a shortfall this hour and will buy at the reference price."};
static const struct style greedy = {
    0.4,
    1.6,
    1.35,
    0.8,
    1.2,
    0.95,
    1.25,
    2.0,
    0.9,
    0.25,
    "Supply is very tight this hour; I can spare little, and only at a premium.",
    "I am badly short this hour; sellers, name your price."};

static double frand(struct bz_rng *r)
{
    return bz_rng_uniform(r);
}

/* The position the agent aims for this hour, net of storage and a hedge on
 * forecast errors: > 0 net sell, < 0 net buy (MWh). */
static double target(const struct bz_game *g, int i, const struct style *s)
{
    const struct bz_elec_agent *a = &g->ag[i];
    double v = g->volatility;
    double gen_lo = a->gen_fc_mwh / (1 + 0.5 * v), dem_hi = a->demand_fc_mwh * (1 + 0.5 * v);
    double e = gen_lo - dem_hi;
    if (e > 0)
        return e * (1 - s->withhold);
    /* short: cover what storage cannot, keep some storage for next hour */
    double usable = 0.7 * a->storage_mwh;
    double need = -e - usable;
    return need > 0 ? -need : 0;
}

/* Current net position of i (contracts, plus outstanding offers). */
static double net_now(const struct bz_game *g, int i)
{
    const struct bz_elec_agent *a = &g->ag[i];
    return a->c_sold - a->c_bought + a->pend_sell - a->pend_buy;
}

static int partner_ok(const struct bz_game *g, int i, int slot)
{
    int o = g->nbr[i * g->k + slot];
    return g->delivered_last[i * g->k + slot] != 0 && g->ag[o].truthful_last != 0;
}

/* ---- zero intelligence ---------------------------------------------------- */

void bz_elec_random_action(struct bz_game *g, const struct bz_request *q, struct bz_rng *r)
{
    int i = q->agent;
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_agent *a = &g->ag[i];
    double P = g->ref_price;
    memset(x, 0, sizeof *x);
    x->to = -1;
    x->set = 1;
    switch (g->base.phase) {
    case BZ_ELEC_PUBLISH:
        x->claimed_surplus_mwh =
            -a->max_demand_mwh + frand(r) * (a->max_demand_mwh + a->max_gen_mwh + a->storage_mwh);
        break;
    case BZ_ELEC_PROPOSE: {
        if (g->k == 0 || frand(r) < 0.3)
            break;
        int side = frand(r) < 0.5 ? BZ_ELEC_BUY : BZ_ELEC_SELL;
        double room = side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
        double amt = frand(r) * room;
        if (!(amt > 1e-6))
            break;
        x->to = g->nbr[i * g->k + (int)bz_rng_below(r, (uint64_t)g->k)];
        x->side = side;
        x->amount_mwh = amt;
        x->price_total = amt * 2 * P * frand(r);
        break;
    }
    case BZ_ELEC_RESPOND: {
        double sr = bz_elec_sell_room(g, i), br = bz_elec_buy_room(g, i);
        for (int j = 0; j < g->n_inbox[i]; j++) {
            const struct bz_elec_proposal *p = &g->prop[g->inbox[i * g->k + j]];
            int ans = (int)bz_rng_below(r, 3);
            double amt =
                ans == BZ_ELEC_COUNTER ? p->amount_mwh * (0.1 + 0.9 * frand(r)) : p->amount_mwh;
            double *room = p->side == BZ_ELEC_BUY ? &sr : &br;
            if (ans == BZ_ELEC_REJECT || amt > *room) {
                x->answer[j] = BZ_ELEC_REJECT;
                continue;
            }
            *room -= amt;
            x->answer[j] = (uint8_t)ans;
            x->counter_amount_mwh[j] = amt;
            x->counter_price_total[j] = amt * 2 * P * frand(r);
        }
        break;
    }
    case BZ_ELEC_CONFIRM: {
        const struct bz_elec_proposal *p = &g->prop[i];
        double room = p->side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
        x->accept_counter = frand(r) < 0.5 && p->counter_amount_mwh <= room;
        break;
    }
    case BZ_ELEC_AUCTION: {
        int side = (int)bz_rng_below(r, 3);
        double room = side == BZ_ELEC_SELL  ? bz_elec_sell_room(g, i)
                      : side == BZ_ELEC_BUY ? bz_elec_buy_room(g, i)
                                            : 0;
        double amt = frand(r) * room;
        if (side == BZ_ELEC_NONE || !(amt > 1e-6))
            break;
        x->order_side = side;
        x->order_amount_mwh = amt;
        x->order_limit_per_mwh = 2 * P * frand(r);
        break;
    }
    default: break;
    }
}

/* ---- reasoned choices ----------------------------------------------------- */

static void do_publish(struct bz_game *g, int i, const struct style *s)
{
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_agent *a = &g->ag[i];
    double e = a->gen_fc_mwh - a->demand_fc_mwh;
    x->claimed_surplus_mwh = e * (e > 0 ? s->claim_long : s->claim_short);
    x->message = g->communication ? (e > 0 ? s->msg_long : s->msg_short) : NULL;
}

/* Propose to the counterparty whose claim best matches my position; avoid
 * partners that failed me when picky. */
static void do_propose(struct bz_game *g, int i, const struct style *s, int picky)
{
    struct bz_elec_action *x = &g->act[i];
    double want = target(g, i, s) - net_now(g, i);
    double P = g->ref_price;
    if (fabs(want) < 1e-6)
        return;
    int best = -1;
    double best_claim = 0;
    for (int j = 0; j < g->k; j++) {
        if (picky && !partner_ok(g, i, j))
            continue;
        double c = g->ag[g->nbr[i * g->k + j]].claimed_surplus_mwh;
        /* a seller looks for the largest claimed need, a buyer for the largest surplus */
        double score = want > 0 ? -c : c;
        if (score > best_claim) {
            best_claim = score;
            best = j;
        }
    }
    if (best < 0)
        return;
    int side = want > 0 ? BZ_ELEC_SELL : BZ_ELEC_BUY;
    double room = side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
    double amt = fmin(fmin(fabs(want), best_claim), room);
    if (!(amt > 1e-6))
        return;
    x->to = g->nbr[i * g->k + best];
    x->side = side;
    x->amount_mwh = amt;
    x->price_total = amt * P * (side == BZ_ELEC_SELL ? s->sell_markup : s->buy_markup);
}

static void do_respond(struct bz_game *g, int i, const struct style *s, int picky)
{
    struct bz_elec_action *x = &g->act[i];
    double P = g->ref_price;
    /* my own open proposal counts in net_now via pend_*; answers add up */
    double want = target(g, i, s) - net_now(g, i);
    double sr = bz_elec_sell_room(g, i), br = bz_elec_buy_room(g, i);
    for (int j = 0; j < g->n_inbox[i]; j++) {
        int pi = g->inbox[i * g->k + j];
        const struct bz_elec_proposal *p = &g->prop[pi];
        x->answer[j] = BZ_ELEC_REJECT;
        int slot = bz_elec_nbr_slot(g, i, pi);
        int bad = picky && slot >= 0 && !partner_ok(g, i, slot);
        double unit = p->price_total / p->amount_mwh;
        if (p->side == BZ_ELEC_BUY) { /* I would sell */
            double can = fmin(want, sr);
            if (!(can > 1e-6))
                continue;
            double floor_price = P * (bad ? greedy.sell_markup : s->accept_sell);
            double amt = fmin(can, p->amount_mwh);
            if (unit >= floor_price && amt >= p->amount_mwh - 1e-9) {
                x->answer[j] = BZ_ELEC_ACCEPT;
                amt = p->amount_mwh;
            } else {
                x->answer[j] = BZ_ELEC_COUNTER;
                x->counter_amount_mwh[j] = amt;
                x->counter_price_total[j] =
                    amt * fmax(unit, P * (bad ? greedy.sell_markup : s->sell_markup));
            }
            want -= amt;
            sr -= amt;
        } else { /* I would buy */
            double can = fmin(-want, br);
            if (!(can > 1e-6))
                continue;
            double cap_price = P * (bad ? greedy.accept_buy : s->accept_buy);
            double amt = fmin(can, p->amount_mwh);
            if (unit <= cap_price && amt >= p->amount_mwh - 1e-9) {
                x->answer[j] = BZ_ELEC_ACCEPT;
                amt = p->amount_mwh;
            } else {
                x->answer[j] = BZ_ELEC_COUNTER;
                x->counter_amount_mwh[j] = amt;
                x->counter_price_total[j] =
                    amt * fmin(unit, P * (bad ? greedy.buy_markup : s->buy_markup));
            }
            want += amt;
            br -= amt;
        }
    }
}

static void do_confirm(struct bz_game *g, int i, const struct style *s)
{
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_proposal *p = &g->prop[i];
    double P = g->ref_price, amt = p->counter_amount_mwh;
    double unit = p->counter_price_total / amt;
    double want = target(g, i, s) - net_now(g, i);
    if (p->side == BZ_ELEC_SELL)
        x->accept_counter = unit >= P * s->accept_sell && amt <= want * 1.1 + 1e-9 &&
                            amt <= bz_elec_sell_room(g, i);
    else
        x->accept_counter =
            unit <= P * s->accept_buy && amt <= -want * 1.1 + 1e-9 && amt <= bz_elec_buy_room(g, i);
}

static void do_auction(struct bz_game *g, int i, const struct style *s)
{
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_agent *a = &g->ag[i];
    double P = g->ref_price;
    double want = target(g, i, s) - net_now(g, i);
    if (want > 1e-6) {
        double amt = fmin(want, bz_elec_sell_room(g, i));
        if (amt > 1e-6) {
            x->order_side = BZ_ELEC_SELL;
            x->order_amount_mwh = amt;
            x->order_limit_per_mwh = P * s->ask;
        }
    } else if (want < -1e-6) {
        double amt = fmin(-want, bz_elec_buy_room(g, i));
        /* short beyond storage means VOLL: bid up to what serving is worth */
        int urgent = -want > 0.3 * a->storage_mwh;
        if (amt > 1e-6) {
            x->order_side = BZ_ELEC_BUY;
            x->order_amount_mwh = amt;
            x->order_limit_per_mwh =
                fmin(g->voll + g->retail, P * (urgent ? s->bid_urgent : s->bid));
        }
    }
}

static void reasoned(struct bz_game *g, int i, const struct style *s, int picky)
{
    struct bz_elec_action *x = &g->act[i];
    memset(x, 0, sizeof *x);
    x->to = -1;
    x->set = 1;
    switch (g->base.phase) {
    case BZ_ELEC_PUBLISH: do_publish(g, i, s); break;
    case BZ_ELEC_PROPOSE: do_propose(g, i, s, picky); break;
    case BZ_ELEC_RESPOND: do_respond(g, i, s, picky); break;
    case BZ_ELEC_CONFIRM: do_confirm(g, i, s); break;
    case BZ_ELEC_AUCTION: do_auction(g, i, s); break;
    default: break;
    }
}

static void decide_truthful(struct bz_game *g, const struct bz_request *q, struct bz_rng *r)
{
    (void)r;
    reasoned(g, q->agent, &truthful, 0);
}

static void decide_greedy(struct bz_game *g, const struct bz_request *q, struct bz_rng *r)
{
    (void)r;
    reasoned(g, q->agent, &greedy, 0);
}

/* Tit for tat: truthful with partners that delivered and told the truth last
 * time; with the others it prices like greedy and proposes nothing; it lies
 * in publish once most of its known counterparties lied or defaulted. */
static void decide_reciprocal(struct bz_game *g, const struct bz_request *q, struct bz_rng *r)
{
    (void)r;
    int i = q->agent;
    const struct style *s = &truthful;
    if (g->base.phase == BZ_ELEC_PUBLISH) {
        int known = 0, bad = 0;
        for (int j = 0; j < g->k; j++) {
            int o = g->nbr[i * g->k + j];
            if (g->ag[o].truthful_last < 0 && g->delivered_last[i * g->k + j] < 0)
                continue;
            known++;
            bad += !partner_ok(g, i, j);
        }
        if (known && 2 * bad > known)
            s = &greedy;
    }
    reasoned(g, i, s, 1);
    if (g->base.phase == BZ_ELEC_PUBLISH && g->communication)
        g->act[i].message = s == &greedy
                                ? "Several of you lied or defaulted: I will return the favour."
                                : "I trade fairly with partners who deliver and tell the truth.";
}

const struct bz_policy_ops bz_elec_truthful = {
    "truthful", "states its true forecast surplus, trades near the reference price",
    decide_truthful};
const struct bz_policy_ops bz_elec_greedy = {
    "greedy", "overstates scarcity, withholds part of its surplus, marks prices up", decide_greedy};
const struct bz_policy_ops bz_elec_zi = {
    "zi", "zero intelligence: random admissible claims, offers and orders", NULL};
const struct bz_policy_ops bz_elec_reciprocal = {
    "reciprocal", "tit for tat on whether counterparties delivered and told the truth",
    decide_reciprocal};
