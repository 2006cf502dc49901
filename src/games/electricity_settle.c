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

/* ---- settlement ---------------------------------------------------------- */

void bz_elec_settle(struct bz_game *g, double clearing, double volume)
{
    int n = g->n;
    double sum_delivered = 0, sum_netbuy = 0;
    double tot_gen = 0, tot_dem = 0, tot_store = 0;
    /* delivery by net sellers: generation first, then storage */
    for (int i = 0; i < n; i++) {
        struct bz_elec_agent *a = &g->ag[i];
        double net = (a->c_sold + a->a_sold) - (a->c_bought + a->a_bought);
        tot_gen += a->gen_mwh;
        tot_dem += a->demand_mwh;
        tot_store += a->storage_mwh;
        if (net > 0) {
            a->delivered = fmin(net, a->gen_mwh + a->storage_mwh);
            a->undelivered = net - a->delivered;
            a->pen_paid = g->penalty * a->undelivered;
            sum_delivered += a->delivered;
        } else {
            sum_netbuy += -net;
        }
    }
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
    for (int i = 0; i < n; i++) {
        struct bz_elec_agent *a = &g->ag[i];
        if (pool > 0 && a->a_bought > 0)
            a->pen_recv += pool * (a->a_bought / auction_bought);
        double net = (a->c_sold + a->a_sold) - (a->c_bought + a->a_bought);
        a->received = net < 0 && sum_netbuy > 0 ? sum_delivered * (-net / sum_netbuy) : 0;
        double from_gen = fmin(a->delivered, a->gen_mwh);
        double from_store = a->delivered - from_gen;
        double gen_left = a->gen_mwh - from_gen;
        double store_left = fmax(0, a->storage_mwh - from_store);
        double supply = gen_left + a->received;
        double served, unserved = 0, charge = 0, curtailed = 0, discharge = from_store;
        if (supply >= a->demand_mwh) {
            served = a->demand_mwh;
            double surplus = supply - served;
            double room = fmax(0, a->storage_cap_mwh - store_left);
            charge = fmin(surplus, room / g->eff);
            curtailed = surplus - charge;
        } else {
            double d2 = fmin(a->demand_mwh - supply, store_left);
            discharge += d2;
            store_left -= d2;
            served = supply + d2;
            unserved = fmax(0, a->demand_mwh - served);
        }
        double level_before = a->storage_mwh;
        a->storage_mwh = fmin(a->storage_cap_mwh, fmax(0, store_left + g->eff * charge));
        double profit = g->retail * served - g->voll * unserved + a->c_recv - a->c_paid +
                        a->a_recv - a->a_paid + a->pen_recv - a->pen_paid;
        a->cum_profit += profit;
        a->cash += profit;
        welfare += profit;
        served_tot += served;
        unserved_tot += unserved;
        double true_surplus = a->gen_mwh - a->demand_mwh;
        double band = (0.5 * g->volatility + 0.02) * (a->gen_mwh + a->demand_mwh) + 1e-9;
        a->truthful_last = fabs(a->claimed_surplus_mwh - true_surplus) <= band;

        struct bz_elec_turn_row *row = bz_records_add(g->rec, &bz_elec_turns_table);
        if (row) {
            row->game_id = g->cfg.game_id;
            row->turn = g->turn;
            row->agent = i;
            row->generation = a->gen_mwh;
            row->demand = a->demand_mwh;
            row->forecast = a->next_demand_fc_mwh;
            row->storage_level = level_before;
            row->claimed_surplus = a->claimed_surplus_mwh;
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
            row->served = served;
            row->unserved = unserved;
            row->curtailed = curtailed;
            row->storage_charge = charge;
            row->storage_discharge = discharge;
            row->profit = profit;
            row->cum_profit = a->cum_profit;
            row->invalid_action = a->invalid;
            row->fallback = a->fallback;
        }
        if (g->tx)
            fprintf(g->tx,
                    "   a%d: generation %.1f, demand %.1f (true surplus %+.1f, claimed %+.1f%s); "
                    "delivered %.1f, undelivered %.1f, received %.1f; served %.1f, unserved "
                    "%.1f, storage %.1f -> %.1f, curtailed %.1f; penalties %+.2f; profit %.2f "
                    "(cumulative %.2f)%s%s\n",
                    i, a->gen_mwh, a->demand_mwh, true_surplus, a->claimed_surplus_mwh,
                    a->truthful_last ? "" : ", false", a->delivered, a->undelivered, a->received,
                    served, unserved, level_before, a->storage_mwh, curtailed,
                    a->pen_recv - a->pen_paid, profit, a->cum_profit,
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
    double servable = fmin(tot_dem, tot_gen + tot_store);
    double efficient = g->retail * servable - g->voll * (tot_dem - servable);
    double efficiency = servable > 0 ? served_tot / servable : 1.0;
    double mean = pv > 0 ? pw / pv : NAN;
    struct bz_elec_market_row *m = bz_records_add(g->rec, &bz_elec_market_table);
    if (m) {
        m->game_id = g->cfg.game_id;
        m->turn = g->turn;
        m->reference_price = g->ref_price;
        m->clearing_price = clearing;
        m->volume = volume;
        m->welfare = welfare;
        m->efficient_welfare = efficient;
        m->efficiency = efficiency;
        m->price_dispersion = pv > 0 ? sqrt(fmax(0, pw2 / pv - mean * mean)) : NAN;
        m->n_contracts = g->n_contracts;
        m->contract_volume = cvol;
        m->total_generation = tot_gen;
        m->total_demand = tot_dem;
        m->total_unserved = unserved_tot;
    }
    g->sum_welfare += welfare;
    g->sum_efficient += efficient;
    g->sum_served += served_tot;
    g->sum_servable += servable;
    if (volume > 0)
        g->last_clearing = clearing;
    if (g->tx)
        fprintf(g->tx,
                "   market: %d contracts (%.1f MWh), auction %.1f MWh, welfare %.2f of %.2f "
                "achievable, efficiency %.3f\n",
                g->n_contracts, cvol, volume, welfare, efficient, efficiency);
}
