/* electricity_settle: settlement of one electricity turn (the design is in
 * electricity.c's header): net positions, delivery and default penalties, the
 * grid's netting, serving own customers, storage, profits, and the turn's
 * /electricity/turns and /electricity/market rows. Never does I/O but the
 * transcript. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "games/electricity_internal.h"

/* ---- serving, autarky, the optimum --------------------------------------- */

/* fmin/fmax without their NaN rules (every value here is finite): these run
 * for every agent every hour and the libm calls showed in the profile. */
static inline double mn(double a, double b)
{
    return a < b ? a : b;
}
static inline double mx(double a, double b)
{
    return a > b ? a : b;
}

void bz_elec_serve(const struct bz_game *g, const struct bz_elec_agent *a, double gen,
                   double received, double level, struct bz_elec_use *u)
{
    gen = mx(0, gen); /* rounding of the deliveries' split */
    double need = a->demand_mwh;
    double take = mn(need, received);
    need -= take;
    double recv_left = received - take;
    double gen_use = 0, disc = 0;
    if (a->cost_now <= g->store_value) {
        gen_use = mn(need, gen);
        disc = mn(need - gen_use, level);
    } else {
        disc = mn(need, level);
        gen_use = mn(need - disc, gen);
    }
    u->served = take + gen_use + disc;
    u->unserved = mx(0, a->demand_mwh - u->served);
    u->discharge = disc;
    level -= disc;
    /* charge: leftover received energy first (already paid for), then own
     * generation when storing is worth more than generating costs */
    double room = mx(0, a->storage_cap_mwh - level) / g->eff;
    double ch_recv = mn(recv_left, room);
    double gen_left = gen - gen_use;
    double ch_gen = g->eff * g->store_value > a->cost_now ? mn(gen_left, room - ch_recv) : 0;
    u->charge = ch_recv + ch_gen;
    u->gen_used = gen_use + ch_gen;
    u->curtailed = (recv_left - ch_recv) + (gen_left - ch_gen);
    u->level = mn(a->storage_cap_mwh, level + g->eff * u->charge);
}

double bz_elec_efficiency(double welfare, double autarky, double max)
{
    double gains = max - autarky;
    if (!(gains > 1e-9 * (1 + fabs(max) + fabs(autarky))))
        return NAN;
    return (welfare - autarky) / gains;
}

double bz_elec_payoff(const struct bz_game *g, int i)
{
    const struct bz_elec_agent *a = &g->ag[i];
    return a->cum_profit + g->store_value * (a->storage_mwh - a->storage_start_mwh);
}

/* The hour's social optimum with every company's realised generation,
 * demand, costs and storage pooled (the auction reaches everyone): a
 * transport problem on one bus, solved greedily. Sources: generation at its
 * cost (merit order), storage at store_value; uses: demand (worth retail +
 * VOLL, as unserved demand costs VOLL and loses retail) and charging (worth
 * efficiency x store_value per MWh put in). Demand first, cheapest source
 * first; then charging from generation that costs less than it is worth.
 * Value counted as welfare is: retail x served - VOLL x unserved -
 * generation cost + store_value x change in stored energy. */
static double max_welfare(const struct bz_game *g, double dem, double store, double room)
{
    int n = g->n;
    double w = -g->voll * dem, need = dem, charge_worth = g->eff * g->store_value;
    int store_used = 0;
    for (int k = 0; k <= n; k++) {
        double c = k < n ? g->merit_cost[k] * g->fuel_factor : INFINITY;
        if (!store_used && g->store_value <= c) {
            double d = mn(need, store);
            w += (g->retail + g->voll - g->store_value) * d;
            need -= d;
            store_used = 1;
        }
        if (k == n)
            break;
        double avail = g->tmp[k];
        if (need > 0 && c < g->retail + g->voll) {
            double d = mn(need, avail);
            w += (g->retail + g->voll - c) * d;
            need -= d;
            avail -= d;
        }
        if (room > 0 && c < charge_worth) {
            double d = mn(room, avail);
            w += (charge_worth - c) * d;
            room -= d;
        }
    }
    return w;
}

/* ---- settlement ---------------------------------------------------------- */

void bz_elec_settle(struct bz_game *g, double clearing, double volume)
{
    int n = g->n;
    double sum_delivered = 0, sum_netbuy = 0;
    double tot_gen = 0, tot_dem = 0, tot_store = 0, tot_room = 0;
    /* delivery by net sellers: generation first, then storage */
    for (int i = 0; i < n; i++) {
        struct bz_elec_agent *a = &g->ag[i];
        double net = (a->c_sold + a->a_sold) - (a->c_bought + a->a_bought);
        tot_gen += a->gen_mwh;
        tot_dem += a->demand_mwh;
        tot_store += a->storage_mwh;
        tot_room += mx(0, a->storage_cap_mwh - a->storage_mwh);
        g->tmp[g->rank[i]] = a->gen_mwh;
        if (net > 0) {
            a->delivered = mn(net, a->gen_mwh + a->storage_mwh);
            a->undelivered = net - a->delivered;
            a->pen_paid = g->penalty * a->undelivered;
            sum_delivered += a->delivered;
        } else {
            sum_netbuy += -net;
        }
    }
    /* the optimum, from the levels at the start of the hour */
    double best = max_welfare(g, tot_dem, tot_store, tot_room / g->eff);
    /* default penalties to the defaulter's buyers, pro rata to their purchases */
    double pool = 0;
    for (int c = 0; c < g->n_contracts; c++) {
        const struct bz_elec_contract *k = &g->contracts[c];
        const struct bz_elec_agent *s = &g->ag[k->seller];
        if (s->pen_paid > 0)
            g->ag[k->buyer].pen_recv += s->pen_paid * (k->amount_mwh / (s->c_sold + s->a_sold));
    }
    for (int i = 0; i < n; i++) {
        const struct bz_elec_agent *s = &g->ag[i];
        if (s->pen_paid > 0 && s->a_sold > 0)
            pool += s->pen_paid * (s->a_sold / (s->c_sold + s->a_sold));
    }
    double auction_bought = 0;
    if (pool > 0)
        for (int i = 0; i < n; i++)
            auction_bought += g->ag[i].a_bought;
    /* the grid nets: net buyers share what was delivered */
    double welfare = 0, served_tot = 0, unserved_tot = 0, cvol = 0;
    double pw = 0, pw2 = 0, pv = 0; /* volume-weighted unit prices */
    for (int c = 0; c < g->n_contracts; c++) {
        const struct bz_elec_contract *k = &g->contracts[c];
        double u = k->price_total / k->amount_mwh;
        cvol += k->amount_mwh;
        pv += k->amount_mwh;
        pw += k->amount_mwh * u;
        pw2 += k->amount_mwh * u * u;
    }
    if (volume > 0) {
        pv += volume;
        pw += volume * clearing;
        pw2 += volume * clearing * clearing;
    }
    double autarky = 0;
    for (int i = 0; i < n; i++) {
        struct bz_elec_agent *a = &g->ag[i];
        if (pool > 0 && a->a_bought > 0)
            a->pen_recv += pool * (a->a_bought / auction_bought);
        double net = (a->c_sold + a->a_sold) - (a->c_bought + a->a_bought);
        a->received = net < 0 && sum_netbuy > 0 ? sum_delivered * (-net / sum_netbuy) : 0;
        /* deliveries came from the cheaper of generation and storage first */
        double from_gen, from_store;
        if (a->cost_now <= g->store_value) {
            from_gen = mn(a->delivered, a->gen_mwh);
            from_store = a->delivered - from_gen;
        } else {
            from_store = mn(a->delivered, a->storage_mwh);
            from_gen = a->delivered - from_store;
        }
        struct bz_elec_use u, alone;
        bz_elec_serve(g, a, a->gen_mwh - from_gen, a->received, mx(0, a->storage_mwh - from_store),
                      &u);
        if (a->delivered > 0 || a->received > 0)
            bz_elec_serve(g, a, a->gen_mwh, 0, a->storage_mwh, &alone);
        else
            alone = u; /* the same inputs */
        double level_before = a->storage_mwh;
        double gen_used = from_gen + u.gen_used, discharge = from_store + u.discharge;
        a->storage_mwh = u.level;
        double profit = g->retail * u.served - g->voll * u.unserved - a->cost_now * gen_used +
                        a->c_recv - a->c_paid + a->a_recv - a->a_paid + a->pen_recv - a->pen_paid;
        double value = profit + g->store_value * (a->storage_mwh - level_before);
        double a_value = g->retail * alone.served - g->voll * alone.unserved -
                         a->cost_now * alone.gen_used +
                         g->store_value * (alone.level - level_before);
        a->cum_profit += profit;
        a->cash += profit;
        a->autarky_payoff += a_value;
        welfare += value;
        autarky += a_value;
        served_tot += u.served;
        unserved_tot += u.unserved;
        double true_surplus = a->gen_mwh - a->demand_mwh;
        double expected = a->gen_fc_mwh - a->demand_fc_mwh;
        double band = 0.05 * (a->gen_fc_mwh + a->demand_fc_mwh) + 0.01;
        int lie =
            isfinite(a->claimed_surplus_mwh) && fabs(a->claimed_surplus_mwh - expected) > band;

        struct bz_elec_turn_row *row = bz_records_add(g->rec, &bz_elec_turns_table);
        if (row) {
            row->game_id = g->cfg.game_id;
            row->turn = g->turn;
            row->agent = i;
            row->generation = a->gen_mwh;
            row->demand = a->demand_mwh;
            row->forecast = a->next_demand_fc_mwh;
            row->storage_level = level_before;
            row->cost = a->cost_now;
            row->expected_surplus = expected;
            row->claimed_surplus = a->claimed_surplus_mwh;
            row->lie = (uint8_t)lie;
            row->true_surplus = true_surplus;
            row->contract_bought = a->c_bought;
            row->contract_sold = a->c_sold;
            row->contract_paid = a->c_paid;
            row->contract_received = a->c_recv;
            row->auction_bought = a->a_bought;
            row->auction_sold = a->a_sold;
            row->auction_paid = a->a_paid;
            row->auction_received = a->a_recv;
            row->clearing_price = clearing;
            row->delivered = a->delivered;
            row->undelivered = a->undelivered;
            row->received = a->received;
            row->penalty_paid = a->pen_paid;
            row->penalty_received = a->pen_recv;
            row->served = u.served;
            row->unserved = u.unserved;
            row->curtailed = u.curtailed;
            row->storage_charge = u.charge;
            row->storage_discharge = discharge;
            row->generation_used = gen_used;
            row->profit = profit;
            row->value = value;
            row->autarky_value = a_value;
            row->cum_profit = a->cum_profit;
            row->invalid_action = a->invalid;
            row->fallback = a->fallback;
        }
        if (g->tx)
            fprintf(g->tx,
                    "   a%d: generation %.1f (used %.1f), demand %.1f (surplus %+.1f, expected "
                    "%+.1f, claimed %+.1f%s); delivered %.1f, undelivered %.1f, received %.1f; "
                    "served %.1f, unserved %.1f, storage %.1f -> %.1f, curtailed %.1f; penalties "
                    "%+.2f; profit %.2f (cumulative %.2f), value %.2f (alone %.2f)%s%s\n",
                    i, a->gen_mwh, gen_used, a->demand_mwh, true_surplus, expected,
                    a->claimed_surplus_mwh, lie ? ", a lie" : "", a->delivered, a->undelivered,
                    a->received, u.served, u.unserved, level_before, a->storage_mwh, u.curtailed,
                    a->pen_recv - a->pen_paid, profit, a->cum_profit, value, a_value,
                    a->invalid ? " [invalid action]" : "", a->fallback ? " [fallback]" : "");
    }
    /* public history: did my contract sellers deliver? */
    for (int c = 0; c < g->n_contracts; c++) {
        const struct bz_elec_contract *k = &g->contracts[c];
        const struct bz_elec_agent *s = &g->ag[k->seller];
        int sb = bz_elec_nbr_slot(g, k->buyer, k->seller),
            ss = bz_elec_nbr_slot(g, k->seller, k->buyer);
        if (sb >= 0)
            g->delivered_last[k->buyer * g->k + sb] = s->undelivered <= 1e-9 * (1 + s->c_sold);
        if (ss >= 0)
            g->delivered_last[k->seller * g->k + ss] = 1; /* buyers always pay */
    }
    double servable = mn(tot_dem, tot_gen + tot_store);
    double efficiency = bz_elec_efficiency(welfare, autarky, best);
    double served_share = servable > 0 ? served_tot / servable : 1.0;
    double mean = pv > 0 ? pw / pv : NAN;
    struct bz_elec_market_row *m = bz_records_add(g->rec, &bz_elec_market_table);
    if (m) {
        m->game_id = g->cfg.game_id;
        m->turn = g->turn;
        m->reference_price = g->ref_price;
        m->clearing_price = clearing;
        m->volume = volume;
        m->welfare = welfare;
        m->autarky_welfare = autarky;
        m->max_welfare = best;
        m->efficiency = efficiency;
        m->served_share = served_share;
        m->price_dispersion = pv > 0 ? sqrt(mx(0, pw2 / pv - mean * mean)) : NAN;
        m->n_contracts = g->n_contracts;
        m->contract_volume = cvol;
        m->total_generation = tot_gen;
        m->total_demand = tot_dem;
        m->total_unserved = unserved_tot;
    }
    g->sum_welfare += welfare;
    g->sum_autarky += autarky;
    g->sum_max += best;
    g->sum_served += served_tot;
    g->sum_servable += servable;
    if (volume > 0)
        g->last_clearing = clearing;
    if (g->tx)
        fprintf(g->tx,
                "   market: %d contracts (%.1f MWh), auction %.1f MWh, welfare %.2f (alone %.2f, "
                "best %.2f), efficiency %.3f\n",
                g->n_contracts, cvol, volume, welfare, autarky, best, efficiency);
    if (g->turn + 1 >= g->max_turns) {
        struct bz_elec_summary_row *sr = bz_records_add(g->rec, &bz_elec_summary_table);
        if (sr) {
            sr->game_id = g->cfg.game_id;
            sr->welfare = g->sum_welfare;
            sr->autarky_welfare = g->sum_autarky;
            sr->max_welfare = g->sum_max;
            sr->efficiency = bz_elec_efficiency(g->sum_welfare, g->sum_autarky, g->sum_max);
            sr->served_share = g->sum_servable > 0 ? g->sum_served / g->sum_servable : 1.0;
        }
    }
}
