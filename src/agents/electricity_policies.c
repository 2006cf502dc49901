/* electricity_policies: heuristic agents of the electricity game (truthful,
 * greedy, zero-intelligence, reciprocal). Each decide() writes an admissible
 * action into the game's slot for the current phase; it reads only what its
 * agent could know (its own forecasts, costs and storage, the public
 * reference price, what was published when communication is on, the offers
 * made to it and what it observed of its counterparties: deliveries to it and
 * whether their offers agreed with their claims); it allocates nothing and
 * never does I/O.
 *
 * Prices come from the agent's own marginal values (bz_elec_values): a
 * seller's floor is its generation cost, or a stored MWh's worth when it
 * could store the energy instead; a buyer's value is retail + VOLL for need
 * its storage cannot cover, else a stored MWh's worth. Offers received are
 * ranked and the best taken first.
 *
 * skill in [0, 1]: with probability skill the policy's reasoned choice, else
 * a ZI-U action (bz_elec_random_action). The game base (bz_game_decide) does
 * that mix; decide() here is the reasoned choice only. zi's reasoned choice is
 * ZI-C: random prices within its budget (never a trade at a loss), so zi at
 * skill 0 is ZI-U, at skill 1 ZI-C, in between a mix. */
#include <math.h>
#include <string.h>

#include "games/electricity_internal.h"

/* How a policy states its position and prices around its marginal values. */
struct style {
    double claim_long, claim_short; /* claimed = expected surplus x factor (long/short) */
    double withhold;                /* share of its sellable surplus kept back */
    double ask_markup;              /* asks and sell offers: floor x markup (>= 1) */
    double bid_shade;               /* bids and buy offers: value x shade (<= 1) */
    const char *msg_long, *msg_short;
};

static const struct style truthful = {
    1.0,
    1.0,
    0.0,
    1.0,
    1.0,
    "I expect a surplus this hour and will sell it at my cost.",
    "I expect a shortfall this hour and will pay what it is worth to me."};
static const struct style greedy = {
    0.4,
    1.6,
    0.25,
    1.3,
    0.75,
    "Supply is very tight this hour; I can spare little, and only at a premium.",
    "I am badly short this hour; sellers, name your price."};

static double frand(struct bz_rng *r)
{
    return bz_rng_uniform(r);
}

/* The highest marginal value in the market: the ZI price range. */
static double price_cap(const struct bz_game *g)
{
    return g->retail + g->voll;
}

/* Net position of i so far (contracts, plus its outstanding offers). */
static double net_now(const struct bz_game *g, int i)
{
    const struct bz_elec_agent *a = &g->ag[i];
    return a->c_sold - a->c_bought + a->pend_sell - a->pend_buy;
}

/* The position i aims for: its hedged forecast position, less what it
 * withholds when long: > 0 sell, < 0 buy (MWh). */
static double target(const struct bz_elec_values *v, const struct style *s)
{
    return v->position > 0 ? v->position * (1 - s->withhold) : v->position;
}

/* i's own observations of the counterparty in slot: it did not fail to
 * deliver to i, and its offers to i did not contradict its claim. */
static int partner_ok(const struct bz_game *g, int i, int slot)
{
    return g->delivered_last[i * g->k + slot] != 0 && g->consistent[i * g->k + slot] != 0;
}

/* ---- zero intelligence ---------------------------------------------------- */

/* ZI-U (Gode and Sunder 1993): any side, any admissible amount, any price in
 * [0, retail + VOLL] (the highest marginal value anyone has). The game's
 * random_action: skill 0 of every policy. */

void bz_elec_random_action(struct bz_game *g, const struct bz_request *q, struct bz_rng *r)
{
    int i = q->agent;
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_agent *a = &g->ag[i];
    double P = price_cap(g);
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
        x->price_total = amt * P * frand(r);
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
            x->counter_price_total[j] = amt * P * frand(r);
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
        x->order_limit_per_mwh = P * frand(r);
        break;
    }
    default: break;
    }
}

/* ZI-C: the side its position calls for, a random amount up to its want, a
 * random price within its budget: asks in [floor, cap], bids in [0, value]. */
static void decide_zi(struct bz_game *g, const struct bz_request *q, struct bz_rng *r)
{
    int i = q->agent;
    struct bz_elec_action *x = &g->act[i];
    struct bz_elec_values v = g->ag[i].val;
    double cap = price_cap(g);
    memset(x, 0, sizeof *x);
    x->to = -1;
    x->set = 1;
    double want = v.position - net_now(g, i);
    switch (g->base.phase) {
    case BZ_ELEC_PUBLISH: {
        const struct bz_elec_agent *a = &g->ag[i];
        x->claimed_surplus_mwh =
            -a->max_demand_mwh + frand(r) * (a->max_demand_mwh + a->max_gen_mwh);
        break;
    }
    case BZ_ELEC_PROPOSE: {
        if (g->k == 0 || fabs(want) < 1e-6)
            break;
        int side = want > 0 ? BZ_ELEC_SELL : BZ_ELEC_BUY;
        double room = side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
        double amt = fmin(room, fabs(want) * frand(r));
        if (!(amt > 1e-6))
            break;
        x->to = g->nbr[i * g->k + (int)bz_rng_below(r, (uint64_t)g->k)];
        x->side = side;
        x->amount_mwh = amt;
        double unit = side == BZ_ELEC_SELL ? v.sell_floor + (cap - v.sell_floor) * frand(r)
                                           : v.buy_value * frand(r);
        x->price_total = amt * unit;
        break;
    }
    case BZ_ELEC_RESPOND: {
        double sr = bz_elec_sell_room(g, i), br = bz_elec_buy_room(g, i);
        for (int j = 0; j < g->n_inbox[i]; j++) {
            const struct bz_elec_proposal *p = &g->prop[g->inbox[i * g->k + j]];
            double unit = p->price_total / p->amount_mwh;
            int i_sell = p->side == BZ_ELEC_BUY;
            int ok = i_sell ? want > 1e-6 && unit >= v.sell_floor && p->amount_mwh <= sr
                            : want < -1e-6 && unit <= v.buy_value && p->amount_mwh <= br;
            if (!ok || frand(r) < 0.5)
                continue;
            x->answer[j] = BZ_ELEC_ACCEPT;
            if (i_sell) {
                sr -= p->amount_mwh;
                want -= p->amount_mwh;
            } else {
                br -= p->amount_mwh;
                want += p->amount_mwh;
            }
        }
        break;
    }
    case BZ_ELEC_CONFIRM: {
        const struct bz_elec_proposal *p = &g->prop[i];
        double unit = p->counter_price_total / p->counter_amount_mwh;
        if (p->side == BZ_ELEC_SELL)
            x->accept_counter =
                unit >= v.sell_floor && p->counter_amount_mwh <= bz_elec_sell_room(g, i);
        else
            x->accept_counter =
                unit <= v.buy_value && p->counter_amount_mwh <= bz_elec_buy_room(g, i);
        break;
    }
    case BZ_ELEC_AUCTION: {
        if (fabs(want) < 1e-6)
            break;
        int side = want > 0 ? BZ_ELEC_SELL : BZ_ELEC_BUY;
        double room = side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
        double amt = fmin(room, fabs(want) * (0.5 + 0.5 * frand(r)));
        if (!(amt > 1e-6))
            break;
        x->order_side = side;
        x->order_amount_mwh = amt;
        x->order_limit_per_mwh = side == BZ_ELEC_SELL
                                     ? v.sell_floor + (cap - v.sell_floor) * frand(r)
                                     : v.buy_value * frand(r);
        break;
    }
    default: break;
    }
}

/* ---- reasoned choices ----------------------------------------------------- */

static void do_publish(struct bz_game *g, int i, const struct style *s,
                       const struct bz_elec_values *v)
{
    struct bz_elec_action *x = &g->act[i];
    double e = v->expected;
    x->claimed_surplus_mwh = e * (e > 0 ? s->claim_long : s->claim_short);
    x->message = g->communication ? (e > 0 ? s->msg_long : s->msg_short) : NULL;
}

/* Unit prices i offers: sellers at least their floor (the reference price
 * when higher), buyers at most their value (the reference when lower). */
static double offer_unit(const struct bz_game *g, int side, const struct style *s,
                         const struct bz_elec_values *v)
{
    if (side == BZ_ELEC_SELL)
        return fmax(v->sell_floor, g->ref_price) * s->ask_markup;
    return fmin(v->buy_value, g->ref_price) * s->bid_shade;
}

/* Propose to one counterparty. With communication, to the one whose claim
 * best matches i's position (a seller looks for the largest claimed need, a
 * buyer for the largest claimed surplus), for at most what it claimed;
 * without, to the next counterparty in turn that has not failed i. Picky
 * agents skip counterparties they observed defaulting or contradicting their
 * claims. */
static void do_propose(struct bz_game *g, int i, const struct style *s, int picky,
                       const struct bz_elec_values *v)
{
    struct bz_elec_action *x = &g->act[i];
    double want = target(v, s) - net_now(g, i);
    if (fabs(want) < 1e-6 || g->k == 0)
        return;
    int best = -1;
    double best_claim = 0, cap = fabs(want);
    if (g->communication) {
        for (int j = 0; j < g->k; j++) {
            if (picky && !partner_ok(g, i, j))
                continue;
            double c = g->ag[g->nbr[i * g->k + j]].claimed_surplus_mwh;
            double score = want > 0 ? -c : c;
            if (isfinite(score) && score > best_claim) {
                best_claim = score;
                best = j;
            }
        }
        cap = best_claim;
    } else {
        for (int d = 0; d < g->k && best < 0; d++) {
            int j = (g->turn + i + d) % g->k;
            if (g->delivered_last[i * g->k + j] != 0)
                best = j;
        }
    }
    if (best < 0)
        return;
    int side = want > 0 ? BZ_ELEC_SELL : BZ_ELEC_BUY;
    double room = side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
    double amt = fmin(fmin(fabs(want), cap), room);
    if (!(amt > 1e-6))
        return;
    x->to = g->nbr[i * g->k + best];
    x->side = side;
    x->amount_mwh = amt;
    x->price_total = amt * offer_unit(g, side, s, v);
}

/* Answer the offers received, best unit price first. An offer better than
 * i's own open proposal may take the room that proposal reserved. */
static void do_respond(struct bz_game *g, int i, const struct style *s, int picky,
                       const struct bz_elec_values *v)
{
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_agent *a = &g->ag[i];
    const struct bz_elec_proposal *mine = &g->prop[i];
    double own_unit = mine->status == BZ_ELEC_P_OPEN ? mine->price_total / mine->amount_mwh : NAN;
    double want_all = target(v, s) - (a->c_sold - a->c_bought);
    double want = target(v, s) - net_now(g, i);
    double sr = bz_elec_sell_room(g, i), br = bz_elec_buy_room(g, i);
    int m = g->n_inbox[i], order[BZ_ELEC_K];
    for (int j = 0; j < m; j++)
        order[j] = j;
    /* rank: highest unit price first for offers to buy from me, lowest first
     * for offers to sell to me (insertion sort, m <= 6) */
    for (int u = 1; u < m; u++)
        for (int w = u; w > 0; w--) {
            const struct bz_elec_proposal *p1 = &g->prop[g->inbox[i * g->k + order[w - 1]]],
                                          *p2 = &g->prop[g->inbox[i * g->k + order[w]]];
            double k1 = p1->price_total / p1->amount_mwh, k2 = p2->price_total / p2->amount_mwh;
            if (p1->side == BZ_ELEC_SELL)
                k1 = -k1;
            if (p2->side == BZ_ELEC_SELL)
                k2 = -k2;
            if (k1 >= k2)
                break;
            int t = order[w];
            order[w] = order[w - 1];
            order[w - 1] = t;
        }
    for (int o = 0; o < m; o++) {
        int j = order[o];
        int pi = g->inbox[i * g->k + j];
        const struct bz_elec_proposal *p = &g->prop[pi];
        x->answer[j] = BZ_ELEC_REJECT;
        int slot = bz_elec_nbr_slot(g, i, pi);
        const struct style *ps = picky && slot >= 0 && !partner_ok(g, i, slot) ? &greedy : s;
        double unit = p->price_total / p->amount_mwh;
        if (p->side == BZ_ELEC_BUY) { /* I would sell */
            double w = want;
            if (mine->status == BZ_ELEC_P_OPEN && mine->side == BZ_ELEC_SELL && unit > own_unit)
                w = want_all; /* better than my own offer: it may take that room */
            double can = fmin(w, sr);
            if (!(can > 1e-6))
                continue;
            double floor_price = v->sell_floor * ps->ask_markup;
            double amt = fmin(can, p->amount_mwh);
            if (unit > floor_price && amt >= p->amount_mwh - 1e-9) {
                x->answer[j] = BZ_ELEC_ACCEPT;
                amt = p->amount_mwh;
            } else if (floor_price >= g->ref_price) {
                continue; /* no gain at the market's price: the auction decides */
            } else {
                x->answer[j] = BZ_ELEC_COUNTER;
                x->counter_amount_mwh[j] = amt;
                x->counter_price_total[j] = amt * fmax(unit, fmax(floor_price, g->ref_price));
            }
            want -= amt;
            want_all -= amt;
            sr -= amt;
        } else { /* I would buy */
            double w = want;
            if (mine->status == BZ_ELEC_P_OPEN && mine->side == BZ_ELEC_BUY && unit < own_unit)
                w = want_all;
            double can = fmin(-w, br);
            if (!(can > 1e-6))
                continue;
            double cap_price = v->buy_value * ps->bid_shade;
            double amt = fmin(can, p->amount_mwh);
            if (unit < cap_price && amt >= p->amount_mwh - 1e-9) {
                x->answer[j] = BZ_ELEC_ACCEPT;
                amt = p->amount_mwh;
            } else if (cap_price <= g->ref_price) {
                continue; /* no gain at the market's price: the auction decides */
            } else {
                x->answer[j] = BZ_ELEC_COUNTER;
                x->counter_amount_mwh[j] = amt;
                x->counter_price_total[j] = amt * fmin(unit, fmin(cap_price, g->ref_price));
            }
            want += amt;
            want_all += amt;
            br -= amt;
        }
    }
}

static void do_confirm(struct bz_game *g, int i, const struct style *s,
                       const struct bz_elec_values *v)
{
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_proposal *p = &g->prop[i];
    double amt = p->counter_amount_mwh;
    double unit = p->counter_price_total / amt;
    double want = target(v, s) - net_now(g, i);
    if (p->side == BZ_ELEC_SELL)
        x->accept_counter = unit > v->sell_floor * s->ask_markup && amt <= want * 1.1 + 1e-9 &&
                            amt <= bz_elec_sell_room(g, i);
    else
        x->accept_counter = unit < v->buy_value * s->bid_shade && amt <= -want * 1.1 + 1e-9 &&
                            amt <= bz_elec_buy_room(g, i);
}

/* One order for what is left: sellers ask their floor, buyers bid what the
 * energy is worth to them: retail + VOLL while need beyond storage remains
 * (only that part), else a stored MWh's worth. */
static void do_auction(struct bz_game *g, int i, const struct style *s,
                       const struct bz_elec_values *v)
{
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_agent *a = &g->ag[i];
    double want = target(v, s) - net_now(g, i);
    if (want > 1e-6) {
        double amt = fmin(want, bz_elec_sell_room(g, i));
        if (amt > 1e-6) {
            x->order_side = BZ_ELEC_SELL;
            x->order_amount_mwh = amt;
            x->order_limit_per_mwh = v->sell_floor * s->ask_markup;
        }
    } else if (want < -1e-6) {
        double bought = a->c_bought - a->c_sold;
        double urgent = fmin(-want, v->urgent - bought);
        double amt = urgent > 1e-6 ? urgent : -want,
               value = urgent > 1e-6 ? g->retail + g->voll : g->store_value;
        amt = fmin(amt, bz_elec_buy_room(g, i));
        if (amt > 1e-6) {
            x->order_side = BZ_ELEC_BUY;
            x->order_amount_mwh = amt;
            x->order_limit_per_mwh = value * s->bid_shade;
        }
    }
}

static void reasoned(struct bz_game *g, int i, const struct style *s, int picky)
{
    struct bz_elec_action *x = &g->act[i];
    const struct bz_elec_values *v = &g->ag[i].val;
    memset(x, 0, sizeof *x);
    x->to = -1;
    x->set = 1;
    switch (g->base.phase) {
    case BZ_ELEC_PUBLISH: do_publish(g, i, s, v); break;
    case BZ_ELEC_PROPOSE: do_propose(g, i, s, picky, v); break;
    case BZ_ELEC_RESPOND: do_respond(g, i, s, picky, v); break;
    case BZ_ELEC_CONFIRM: do_confirm(g, i, s, v); break;
    case BZ_ELEC_AUCTION: do_auction(g, i, s, v); break;
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

/* Tit for tat on what it observed itself: truthful with counterparties that
 * delivered to it and whose offers agreed with their claims; prices like
 * greedy with the others and proposes nothing to them; overstates its need
 * in publish once most of its known counterparties failed it. */
static void decide_reciprocal(struct bz_game *g, const struct bz_request *q, struct bz_rng *r)
{
    (void)r;
    int i = q->agent;
    const struct style *s = &truthful;
    if (g->base.phase == BZ_ELEC_PUBLISH) {
        int known = 0, bad = 0;
        for (int j = 0; j < g->k; j++) {
            if (g->consistent[i * g->k + j] < 0 && g->delivered_last[i * g->k + j] < 0)
                continue;
            known++;
            bad += !partner_ok(g, i, j);
        }
        if (known && 2 * bad > known)
            s = &greedy;
    }
    reasoned(g, i, s, 1);
    if (g->base.phase == BZ_ELEC_PUBLISH && g->communication)
        g->act[i].message =
            s == &greedy ? "Several of you misled me or defaulted: I will return the favour."
                         : "I trade fairly with partners who deliver and mean what they say.";
}

const struct bz_policy_ops bz_elec_truthful = {
    "truthful", "states its expected surplus, prices at its own marginal values", decide_truthful};
const struct bz_policy_ops bz_elec_greedy = {
    "greedy", "understates its surplus and overstates its need, withholds, marks prices up",
    decide_greedy};
const struct bz_policy_ops bz_elec_zi = {
    "zi", "zero intelligence (Gode-Sunder): skill 0 ZI-U (any price), skill 1 ZI-C (within budget)",
    decide_zi};
const struct bz_policy_ops bz_elec_reciprocal = {
    "reciprocal", "tit for tat on whether counterparties delivered and offered as they claimed",
    decide_reciprocal};
