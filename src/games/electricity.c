/* electricity: the electricity market game (bz_electricity_ops): its
 * descriptors, rules (admissibility, the phases) and state machine. The
 * environment is in electricity_env.c, settlement in electricity_settle.c, the
 * LLM view in electricity_llm.c, the policies in src/agents/. Never does I/O
 * but reading its data files at create/check and writing the transcript.
 *
 * A turn is one hour of a daily cycle. At its start every agent learns
 * forecasts of its generation and demand for the hour (the realisations are
 * revealed at settle, as meters would) and a forecast of next hour's demand.
 * Phases: publish (claimed surplus, may be false, and a message; only with
 * communication on: off, nothing is published and claims stay NaN) -> propose
 * (at most one contract to one of its k = min(N-1, 6) counterparties on a ring
 * drawn from env_seed) -> respond (accept, reject or counter once
 * each received proposal) -> confirm (a countered proposer accepts or rejects
 * the counter) -> auction (one order in a uniform-price double auction,
 * src/games/auction.c) -> settle (no decisions).
 *
 * Settlement (decided design; nets positions like a real grid):
 *  - net position N_i = sold - bought over contracts and auction.
 *  - a net seller delivers min(N_i, generation + storage level), from the
 *    cheaper of generation (its marginal cost this hour) and storage (a
 *    stored MWh's worth, store_value = base_price) first; what it fails to deliver is charged
 *    default_penalty_per_mwh per MWh, paid to its buyers pro rata to what each
 *    bought from it (each contract buyer by its contract amount; the share of
 *    its auction sales goes to the auction buyers pro rata to their auction
 *    purchases).
 *  - the grid nets: net buyers receive the total delivered energy pro rata to
 *    their net purchases, so energy delivered equals energy received.
 *  - contract and auction payments are made in full as agreed.
 *  - each agent then serves its own customers (retail price R per MWh) from
 *    what it received, then the cheaper of its remaining generation and
 *    storage (bz_elec_serve); leftover received energy charges storage, then
 *    own generation when efficiency x store_value exceeds its cost (level +=
 *    efficiency x charge); the rest is curtailed: not generated, no cost.
 *    Unserved demand costs VOLL per MWh.
 *  - profit = R served - VOLL unserved - cost x generation used + contract,
 *    auction and penalty money received - paid; value = profit + store_value
 *    x change of the storage level (welfare, autarky and the optimum are in
 *    these units: electricity_settle.c). Per agent: generation + received + discharge = served +
 *    delivered + charge + curtailed and served + unserved = demand; across
 *    agents all money transfers sum to zero.
 * All environment randomness (capacities, demands, noise, price shocks) comes
 * from streams of cfg->env_seed only, and so does the counterparty ring, so
 * games paired on env_seed see the same market and network whatever the
 * lineup or communication; the agents' randomness is their seats' streams
 * (match.c: env_seed, seat, label). The game draws nothing else. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/match.h"
#include "games/electricity_internal.h"

/* ---- descriptors -------------------------------------------------------- */

static const struct bz_param_desc params[BZ_ELEC_N_PARAMS] = {
    {"n_agents", BZ_PARAM_INT, 4, 2, 1e6, NULL, 1, "number of electricity companies"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0,
     "1: agents exchange free-text messages; 0: numbers only"},
    {"max_turns", BZ_PARAM_INT, 24, 1, 8760, NULL, 1, "turns (hours) played"},
    {"volatility", BZ_PARAM_NUM, 0.2, 0, 1, NULL, 1,
     "noise on generation, demand and prices; forecast error grows with it"},
    {"supply_ratio", BZ_PARAM_NUM, 1.0, 0.1, 5, NULL, 1,
     "total expected generation / total expected demand (below 1: scarce)"},
    {"base_price_per_mwh", BZ_PARAM_NUM, 50, 0, 1e5, NULL, 1,
     "mean marginal generation cost: company costs are U(0.4, 1.6) x it, times the profile's "
     "price factor and the hour's fuel shock"},
    {"retail_price_per_mwh", BZ_PARAM_NUM, 120, 0, 1e5, NULL, 1,
     "what a company earns per MWh served to its own customers"},
    {"voll_per_mwh", BZ_PARAM_NUM, 1000, 0, 1e6, NULL, 1,
     "value of lost load: cost of unserved demand"},
    {"default_penalty_per_mwh", BZ_PARAM_NUM, 250, 0, 1e6, NULL, 1,
     "paid by a seller per MWh sold and not delivered, to its buyers"},
    {"storage_efficiency", BZ_PARAM_NUM, 0.85, 0.01, 1, NULL, 1, "round-trip storage efficiency"},
    {"storage_hours", BZ_PARAM_NUM, 2, 0, 48, NULL, 1,
     "storage capacity in hours of the company's mean demand"},
    {"profile", BZ_PARAM_STR, 0, 0, 0, "profile_hourly.csv", 1,
     "hourly load/availability/price profile (CSV), relative to the data folder"},
    {"eia_file", BZ_PARAM_STR, 0, 0, 0, "", 1,
     "EIA API v2 region-data JSON whose demand shapes the load (\"\": use profile)"},
    {"eia_respondent", BZ_PARAM_STR, 0, 0, 0, "", 1,
     "balancing authority code in eia_file (e.g. PJM, CISO, ERCO)"},
};

static const char *const phase_names[BZ_ELEC_N_PHASES] = {"publish", "propose", "respond",
                                                          "confirm", "auction", "settle"};

static const struct bz_policy_ops *const policies[] = {&bz_elec_truthful, &bz_elec_greedy,
                                                       &bz_elec_zi, &bz_elec_reciprocal};

BZ_TABLE_DEFINE(bz_elec_turns_table, "/electricity/turns", bz_elec_turn_row, BZ_ELEC_TURNS_COLUMNS);
BZ_TABLE_DEFINE(bz_elec_market_table, "/electricity/market", bz_elec_market_row,
                BZ_ELEC_MARKET_COLUMNS);

BZ_TABLE_DEFINE(bz_elec_summary_table, "/electricity/summary", bz_elec_summary_row,
                BZ_ELEC_SUMMARY_COLUMNS);

static const struct bz_table_desc *const tables[] = {&bz_elec_turns_table, &bz_elec_market_table,
                                                     &bz_elec_summary_table};

static const char *const renamed[][2] = {{"scarcity", "supply_ratio"}};

static int check(const struct bz_game_config *cfg, struct bz_err *err)
{
    if (cfg->n_agents < 2 || cfg->n_agents > 1000000)
        return bz_err_set(err, BZ_EINVAL, "n_agents: expected an integer in [2, 1000000], got %d",
                          cfg->n_agents);
    for (int i = 0; i < BZ_ELEC_N_PARAMS; i++) {
        const struct bz_param_desc *p = &params[i];
        if (p->kind == BZ_PARAM_STR || i == BZ_ELEC_N_AGENTS || i == BZ_ELEC_COMMUNICATION)
            continue;
        double v = cfg->num[i];
        if (!isfinite(v) || v < p->min || v > p->max)
            return bz_err_set(err, BZ_EINVAL, "%s: expected a number in [%g, %g], got %g", p->name,
                              p->min, p->max, v);
        if (p->kind == BZ_PARAM_INT && v != floor(v))
            return bz_err_set(err, BZ_EINVAL, "%s: expected an integer, got %g", p->name, v);
    }
    int n;
    double *l, *a, *p;
    int rc = bz_elec_load_shape(cfg, &n, &l, &a, &p, err);
    if (rc)
        return rc;
    free(l);
    free(a);
    free(p);
    return BZ_OK;
}

/* ---- create / destroy ---------------------------------------------------- */

static void destroy(struct bz_game *g)
{
    if (!g)
        return;
    free(g->load);
    free(g->avail);
    free(g->price_f);
    free(g->ag);
    free(g->act);
    free(g->nbr);
    free(g->delivered_last);
    free(g->consistent);
    free(g->merit);
    free(g->ring_pos);
    free(g->rank);
    free(g->merit_cost);
    free(g->inbox);
    free(g->n_inbox);
    free(g->prop);
    free(g->contracts);
    free(g->perm);
    free(g->all);
    free(g->orders);
    free(g->filled);
    free(g->tmp);
    bz_auction_cleanup(&g->auction);
    bz_game_base_cleanup(&g->base);
    free(g);
}

enum { ST_START, ST_PUBLISH, ST_PROPOSE, ST_RESPOND, ST_CONFIRM, ST_AUCTION, ST_SETTLE };

static int create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                  struct bz_err *err)
{
    *out = NULL;
    int rc = check(cfg, err);
    if (rc)
        return rc;
    struct bz_game *g = calloc(1, sizeof *g);
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "electricity: out of memory");
    if ((rc = bz_game_base_init(&g->base, cfg, rec, err))) {
        free(g);
        return rc;
    }
    g->cfg = *cfg;
    g->rec = rec;
    g->tx = cfg->transcript;
    g->n = cfg->n_agents;
    g->k = g->n - 1 < BZ_ELEC_K ? g->n - 1 : BZ_ELEC_K;
    g->communication = cfg->communication != 0;
    g->max_turns = (int)cfg->num[BZ_ELEC_MAX_TURNS];
    g->volatility = cfg->num[BZ_ELEC_VOLATILITY];
    g->supply_ratio = cfg->num[BZ_ELEC_SUPPLY_RATIO];
    g->base_price = cfg->num[BZ_ELEC_BASE_PRICE];
    g->retail = cfg->num[BZ_ELEC_RETAIL_PRICE];
    g->voll = cfg->num[BZ_ELEC_VOLL];
    g->penalty = cfg->num[BZ_ELEC_PENALTY];
    g->eff = cfg->num[BZ_ELEC_STORAGE_EFFICIENCY];
    g->storage_hours = cfg->num[BZ_ELEC_STORAGE_HOURS];
    g->store_value = g->base_price;
    g->env_seed = cfg->env_seed;
    g->seed = cfg->seed;
    g->last_clearing = NAN;
    rc = bz_elec_load_shape(cfg, &g->n_shape, &g->load, &g->avail, &g->price_f, err);
    if (rc)
        goto out;
    size_t n = (size_t)g->n, nk = n * (size_t)(g->k ? g->k : 1);
    g->ag = calloc(n, sizeof *g->ag);
    g->act = calloc(n, sizeof *g->act);
    g->nbr = calloc(nk, sizeof *g->nbr);
    g->delivered_last = malloc(nk * sizeof *g->delivered_last);
    g->consistent = malloc(nk * sizeof *g->consistent);
    g->merit = calloc(n, sizeof *g->merit);
    g->ring_pos = calloc(n, sizeof *g->ring_pos);
    g->rank = calloc(n, sizeof *g->rank);
    g->merit_cost = calloc(n, sizeof *g->merit_cost);
    g->inbox = calloc(nk > n ? nk : n, sizeof *g->inbox);
    g->n_inbox = calloc(n, sizeof *g->n_inbox);
    g->prop = calloc(n, sizeof *g->prop);
    g->contracts = calloc(n, sizeof *g->contracts);
    g->perm = calloc(n, sizeof *g->perm);
    g->all = calloc(n, sizeof *g->all);
    g->orders = calloc(n, sizeof *g->orders);
    g->filled = calloc(n, sizeof *g->filled);
    g->tmp = calloc(n, sizeof *g->tmp);
    if (!g->ag || !g->act || !g->nbr || !g->delivered_last || !g->consistent || !g->merit ||
        !g->rank || !g->merit_cost || !g->ring_pos || !g->inbox || !g->n_inbox || !g->prop ||
        !g->contracts || !g->perm || !g->all || !g->orders || !g->filled || !g->tmp) {
        rc = bz_err_set(err, BZ_ENOMEM, "electricity: out of memory for %d agents", g->n);
        goto out;
    }
    rc = bz_auction_init(&g->auction, n, err);
    if (rc)
        goto out;
    memset(g->delivered_last, -1, nk);
    memset(g->consistent, -1, nk);
    for (int i = 0; i < g->n; i++)
        g->all[i] = i;
    bz_elec_draw_companies(g);
    bz_elec_draw_ring(g);
    if (g->tx) {
        fprintf(
            g->tx,
            "== electricity: %d agents, %d turns, seed %llu, env seed %llu, communication "
            "%s\n   supply_ratio %.2f, volatility %.2f, retail %.0f/MWh, VOLL %.0f/MWh, default "
            "penalty %.0f/MWh, storage efficiency %.2f\n",
            g->n, g->max_turns, (unsigned long long)g->seed, (unsigned long long)g->env_seed,
            g->communication ? "on" : "off", g->supply_ratio, g->volatility, g->retail, g->voll,
            g->penalty, g->eff);
        for (int i = 0; i < g->n; i++) {
            const struct bz_elec_agent *a = &g->ag[i];
            fprintf(g->tx,
                    "   a%d %-28s capacity %.1f MW, cost %.1f/MWh, base demand %.1f MWh, storage "
                    "%.1f MWh; counterparties",
                    i, cfg->agents ? cfg->agents[i].label : "?", a->capacity_mw, a->cost_per_mwh,
                    a->base_demand_mwh, a->storage_cap_mwh);
            for (int j = 0; j < g->k; j++)
                fprintf(g->tx, " a%d", g->nbr[i * g->k + j]);
            fputc('\n', g->tx);
        }
    }
    *out = g;
    g = NULL;
out:
    destroy(g);
    return rc;
}

double bz_elec_sell_room(const struct bz_game *g, int i)
{
    const struct bz_elec_agent *a = &g->ag[i];
    return fmax(0, a->max_gen_mwh + a->storage_mwh + a->c_bought - a->c_sold - a->pend_sell);
}

double bz_elec_buy_room(const struct bz_game *g, int i)
{
    const struct bz_elec_agent *a = &g->ag[i];
    return fmax(0, a->max_demand_mwh + (a->storage_cap_mwh - a->storage_mwh) + a->c_sold -
                       a->c_bought - a->pend_buy);
}

/* O(1) from the ring's layout (electricity_env.c, bz_elec_draw_ring): with
 * N - 1 <= K everyone else in seat order; else the slots are ring offsets
 * +1, -1, +2, -2, +3, -3. */
int bz_elec_nbr_slot(const struct bz_game *g, int i, int j)
{
    int n = g->n;
    if (j < 0 || j >= n || j == i)
        return -1;
    if (n - 1 <= BZ_ELEC_K)
        return j < i ? j : j - 1;
    int d = g->ring_pos[j] - g->ring_pos[i];
    if (d < 0)
        d += n;
    if (d <= 3)
        return 2 * (d - 1);
    if (d >= n - 3)
        return 2 * (n - d) - 1;
    return -1;
}

static int over(double amount, double room)
{
    return amount > room + BZ_ELEC_EPS * (1 + room);
}

/* The check every action passes, whoever wrote it (policy or parse_action).
 * On failure: BZ_EINVAL and a message naming the field and the expectation. */
static int check_action(const struct bz_game *g, const struct bz_request *r, struct bz_err *err)
{
    int i = r->agent;
    const struct bz_elec_action *x = &g->act[i];
    switch (r->phase) {
    case BZ_ELEC_PUBLISH:
        if (!isfinite(x->claimed_surplus_mwh))
            return bz_err_set(err, BZ_EINVAL, "claimed_surplus_mwh: expected a finite number");
        return BZ_OK;
    case BZ_ELEC_PROPOSE: {
        if (x->to == -1)
            return BZ_OK;
        if (x->to < 0 || x->to >= g->n || bz_elec_nbr_slot(g, i, x->to) < 0)
            return bz_err_set(err, BZ_EINVAL,
                              "counterparty: %d is not one of your counterparties (or -1 for "
                              "no proposal)",
                              x->to);
        if (x->side != BZ_ELEC_BUY && x->side != BZ_ELEC_SELL)
            return bz_err_set(err, BZ_EINVAL, "side: expected \"buy\" or \"sell\"");
        if (!isfinite(x->amount_mwh) || x->amount_mwh <= 0)
            return bz_err_set(err, BZ_EINVAL, "amount_mwh: expected a number > 0, got %g",
                              x->amount_mwh);
        if (!isfinite(x->price_total) || x->price_total < 0)
            return bz_err_set(err, BZ_EINVAL, "price_total: expected a number >= 0, got %g",
                              x->price_total);
        double room = x->side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
        if (over(x->amount_mwh, room))
            return bz_err_set(err, BZ_EINVAL,
                              "amount_mwh: %.3f exceeds what you can %s this hour (at most "
                              "%.3f MWh)",
                              x->amount_mwh, x->side == BZ_ELEC_SELL ? "sell" : "buy", room);
        return BZ_OK;
    }
    case BZ_ELEC_RESPOND: {
        double sell = 0, buy = 0;
        for (int j = 0; j < g->n_inbox[i]; j++) {
            const struct bz_elec_proposal *p = &g->prop[g->inbox[i * g->k + j]];
            double amt = p->amount_mwh;
            if (x->answer[j] == BZ_ELEC_REJECT)
                continue;
            if (x->answer[j] == BZ_ELEC_COUNTER) {
                amt = x->counter_amount_mwh[j];
                if (!isfinite(amt) || amt <= 0)
                    return bz_err_set(err, BZ_EINVAL,
                                      "answers[%d].counter_amount_mwh: expected a number > 0", j);
                if (!isfinite(x->counter_price_total[j]) || x->counter_price_total[j] < 0)
                    return bz_err_set(err, BZ_EINVAL,
                                      "answers[%d].counter_price_total: expected a number >= 0", j);
            } else if (x->answer[j] != BZ_ELEC_ACCEPT) {
                return bz_err_set(err, BZ_EINVAL,
                                  "answers[%d].decision: expected accept, reject or counter", j);
            }
            /* the proposer's buy is my sell */
            if (p->side == BZ_ELEC_BUY)
                sell += amt;
            else
                buy += amt;
        }
        double sr = bz_elec_sell_room(g, i), br = bz_elec_buy_room(g, i);
        if (over(sell, sr))
            return bz_err_set(err, BZ_EINVAL,
                              "answers: accepting and countering would sell %.3f MWh, more than "
                              "you can sell this hour (at most %.3f MWh)",
                              sell, sr);
        if (over(buy, br))
            return bz_err_set(err, BZ_EINVAL,
                              "answers: accepting and countering would buy %.3f MWh, more than "
                              "you can take this hour (at most %.3f MWh)",
                              buy, br);
        return BZ_OK;
    }
    case BZ_ELEC_CONFIRM: {
        const struct bz_elec_proposal *p = &g->prop[i];
        if (!x->accept_counter)
            return BZ_OK;
        double room = p->side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
        if (over(p->counter_amount_mwh, room))
            return bz_err_set(err, BZ_EINVAL,
                              "accept: the counter's %.3f MWh exceeds what you can %s now (at "
                              "most %.3f MWh); reject it",
                              p->counter_amount_mwh, p->side == BZ_ELEC_SELL ? "sell" : "buy",
                              room);
        return BZ_OK;
    }
    case BZ_ELEC_AUCTION: {
        if (x->order_side == BZ_ELEC_NONE)
            return BZ_OK;
        if (x->order_side != BZ_ELEC_BUY && x->order_side != BZ_ELEC_SELL)
            return bz_err_set(err, BZ_EINVAL, "side: expected \"buy\", \"sell\" or \"none\"");
        if (!isfinite(x->order_amount_mwh) || x->order_amount_mwh <= 0)
            return bz_err_set(err, BZ_EINVAL, "amount_mwh: expected a number > 0, got %g",
                              x->order_amount_mwh);
        if (!isfinite(x->order_limit_per_mwh) || x->order_limit_per_mwh < 0)
            return bz_err_set(err, BZ_EINVAL, "limit_price_per_mwh: expected a number >= 0, got %g",
                              x->order_limit_per_mwh);
        double room =
            x->order_side == BZ_ELEC_SELL ? bz_elec_sell_room(g, i) : bz_elec_buy_room(g, i);
        if (over(x->order_amount_mwh, room))
            return bz_err_set(err, BZ_EINVAL,
                              "amount_mwh: %.3f exceeds what you can %s this hour (at most "
                              "%.3f MWh)",
                              x->order_amount_mwh, x->order_side == BZ_ELEC_SELL ? "sell" : "buy",
                              room);
        return BZ_OK;
    }
    default:
        return bz_err_set(err, BZ_EINTERNAL, "electricity: phase %d takes no action", r->phase);
    }
}

/* A safe action: claim nothing, propose nothing, reject, buy/sell nothing. */
static void safe_action(struct bz_game *g, const struct bz_request *r)
{
    struct bz_elec_action *x = &g->act[r->agent];
    memset(x, 0, sizeof *x);
    x->to = -1;
    x->set = 1;
}

/* ---- phases -------------------------------------------------------------- */

const char *bz_elec_side_name(int side)
{
    return side == BZ_ELEC_BUY ? "buy" : side == BZ_ELEC_SELL ? "sell" : "none";
}

static void tx_message(const struct bz_game *g, const char *text)
{
    if (g->communication && text && text[0])
        fprintf(g->tx, " \"%.160s%s\"", text, strlen(text) > 160 ? "..." : "");
}

static void add_contract(struct bz_game *g, int seller, int buyer, double amount, double price)
{
    struct bz_elec_contract *c = &g->contracts[g->n_contracts++];
    c->seller = seller;
    c->buyer = buyer;
    c->amount_mwh = amount;
    c->price_total = price;
    g->ag[seller].c_sold += amount;
    g->ag[seller].c_recv += price;
    g->ag[buyer].c_bought += amount;
    g->ag[buyer].c_paid += price;
}

static void contract_from(struct bz_game *g, int proposer, double amount, double price)
{
    const struct bz_elec_proposal *p = &g->prop[proposer];
    if (p->side == BZ_ELEC_SELL)
        add_contract(g, proposer, p->to, amount, price);
    else
        add_contract(g, p->to, proposer, amount, price);
}

static void apply_publish(struct bz_game *g)
{
    if (g->tx)
        fprintf(g->tx, " publish:\n");
    for (int i = 0; i < g->n; i++) {
        const struct bz_elec_action *x = &g->act[i];
        g->ag[i].claimed_surplus_mwh = x->claimed_surplus_mwh;
        g->ag[i].publish_message = g->communication ? x->message : NULL;
        bz_game_message(g, BZ_ELEC_PUBLISH, i, -1, x->message);
        if (g->tx) {
            fprintf(g->tx, "   a%d claims surplus %+.1f MWh", i, x->claimed_surplus_mwh);
            tx_message(g, x->message);
            fputc('\n', g->tx);
        }
    }
}

static void apply_propose(struct bz_game *g)
{
    if (g->tx)
        fprintf(g->tx, " propose:\n");
    for (int i = 0; i < g->n; i++) {
        const struct bz_elec_action *x = &g->act[i];
        struct bz_elec_proposal *p = &g->prop[i];
        if (x->to < 0) {
            if (g->tx)
                fprintf(g->tx, "   a%d: no proposal\n", i);
            continue;
        }
        p->to = x->to;
        p->side = x->side;
        p->amount_mwh = x->amount_mwh;
        p->price_total = x->price_total;
        p->message = g->communication ? x->message : NULL;
        p->status = BZ_ELEC_P_OPEN;
        g->inbox[x->to * g->k + g->n_inbox[x->to]++] = i;
        /* what the receiver can check: does the offer agree with the sign of
         * what i published? (nothing published: nothing to check) */
        double c = g->ag[i].claimed_surplus_mwh;
        int slot = bz_elec_nbr_slot(g, x->to, i);
        if (slot >= 0 && isfinite(c) && fabs(c) > 1e-6)
            g->consistent[x->to * g->k + slot] = (x->side == BZ_ELEC_SELL) == (c > 0);
        if (x->side == BZ_ELEC_SELL)
            g->ag[i].pend_sell = x->amount_mwh;
        else
            g->ag[i].pend_buy = x->amount_mwh;
        bz_game_message(g, BZ_ELEC_PROPOSE, i, x->to, x->message);
        if (g->tx) {
            fprintf(g->tx, "   a%d -> a%d: %s %.1f MWh for %.2f (%.2f/MWh)", i, x->to,
                    bz_elec_side_name(x->side), x->amount_mwh, x->price_total,
                    x->price_total / x->amount_mwh);
            tx_message(g, x->message);
            fputc('\n', g->tx);
        }
    }
}

static void apply_respond(struct bz_game *g)
{
    if (g->tx)
        fprintf(g->tx, " respond:\n");
    for (int i = 0; i < g->n; i++)
        g->ag[i].pend_sell = g->ag[i].pend_buy = 0;
    for (int r = 0; r < g->base.n_req; r++) {
        int i = g->base.req[r].agent;
        const struct bz_elec_action *x = &g->act[i];
        for (int j = 0; j < g->n_inbox[i]; j++) {
            int pi = g->inbox[i * g->k + j];
            struct bz_elec_proposal *p = &g->prop[pi];
            if (x->answer[j] == BZ_ELEC_ACCEPT) {
                p->status = BZ_ELEC_P_ACCEPTED;
                contract_from(g, pi, p->amount_mwh, p->price_total);
                if (g->tx)
                    fprintf(g->tx, "   a%d accepts a%d's proposal\n", i, pi);
            } else if (x->answer[j] == BZ_ELEC_COUNTER) {
                p->status = BZ_ELEC_P_COUNTERED;
                p->counter_amount_mwh = x->counter_amount_mwh[j];
                p->counter_price_total = x->counter_price_total[j];
                if (p->side == BZ_ELEC_BUY)
                    g->ag[i].pend_sell += p->counter_amount_mwh;
                else
                    g->ag[i].pend_buy += p->counter_amount_mwh;
                if (g->tx)
                    fprintf(g->tx, "   a%d counters a%d's proposal: %.1f MWh for %.2f (%.2f/MWh)\n",
                            i, pi, p->counter_amount_mwh, p->counter_price_total,
                            p->counter_price_total / p->counter_amount_mwh);
            } else {
                p->status = BZ_ELEC_P_REJECTED;
                if (g->tx)
                    fprintf(g->tx, "   a%d rejects a%d's proposal\n", i, pi);
            }
        }
    }
}

static void apply_confirm(struct bz_game *g)
{
    if (g->tx)
        fprintf(g->tx, " confirm:\n");
    for (int r = 0; r < g->base.n_req; r++) {
        int i = g->base.req[r].agent;
        struct bz_elec_proposal *p = &g->prop[i];
        if (g->act[i].accept_counter) {
            p->status = BZ_ELEC_P_COUNTER_ACCEPTED;
            contract_from(g, i, p->counter_amount_mwh, p->counter_price_total);
        } else {
            p->status = BZ_ELEC_P_COUNTER_REJECTED;
        }
        if (g->tx)
            fprintf(g->tx, "   a%d %s a%d's counter\n", i,
                    g->act[i].accept_counter ? "accepts" : "rejects", p->to);
    }
    for (int i = 0; i < g->n; i++)
        g->ag[i].pend_sell = g->ag[i].pend_buy = 0;
}

static int apply_auction(struct bz_game *g, double *price, double *volume, struct bz_err *err)
{
    for (int i = 0; i < g->n; i++) {
        const struct bz_elec_action *x = &g->act[i];
        g->orders[i].side = x->order_side;
        g->orders[i].amount_mwh = x->order_amount_mwh;
        g->orders[i].limit_per_mwh = x->order_limit_per_mwh;
    }
    struct bz_auction_result res;
    int rc = bz_auction_clear(&g->auction, g->orders, (size_t)g->n, g->filled, &res, err);
    if (rc)
        return rc;
    *price = res.price_per_mwh;
    *volume = res.volume_mwh;
    for (int i = 0; i < g->n; i++) {
        double f = g->filled[i];
        if (f <= 0)
            continue;
        struct bz_elec_agent *a = &g->ag[i];
        if (g->orders[i].side == BZ_ELEC_BUY) {
            a->a_bought = f;
            a->a_paid = f * res.price_per_mwh;
        } else {
            a->a_sold = f;
            a->a_recv = f * res.price_per_mwh;
        }
    }
    if (g->tx) {
        fprintf(g->tx, " auction:\n");
        for (int i = 0; i < g->n; i++) {
            const struct bz_elec_action *x = &g->act[i];
            if (x->order_side == BZ_ELEC_NONE)
                fprintf(g->tx, "   a%d: no order\n", i);
            else
                fprintf(g->tx, "   a%d %s %.1f MWh, limit %.2f/MWh -> traded %.1f\n", i,
                        x->order_side == BZ_ELEC_BUY ? "bids" : "asks", x->order_amount_mwh,
                        x->order_limit_per_mwh, g->filled[i]);
        }
        if (res.volume_mwh > 0)
            fprintf(g->tx, "   cleared %.1f MWh at %.2f/MWh\n", res.volume_mwh, res.price_per_mwh);
        else
            fprintf(g->tx, "   no trade (%d bids, %d asks)\n", res.n_bids, res.n_asks);
    }
    return BZ_OK;
}

/* ---- state machine ------------------------------------------------------- */

/* Ask agent i in the open phase (slot 0), its action slot cleared. */
static void ask(struct bz_game *g, int i)
{
    struct bz_elec_action *x = &g->act[i];
    memset(x, 0, sizeof *x);
    x->to = -1;
    bz_game_ask(g, i, 0);
}

static void ask_all(struct bz_game *g, int phase)
{
    bz_game_ask_phase(g, phase);
    for (int i = 0; i < g->n; i++)
        ask(g, i);
}

static int step(struct bz_game *g, int *state, struct bz_err *err)
{
    for (;;) {
        switch (g->stage) {
        case ST_START:
            if (g->turn >= g->max_turns) {
                if (g->tx && !g->done) {
                    fprintf(g->tx, "\n== final cumulative profits:");
                    for (int i = 0; i < g->n; i++)
                        fprintf(g->tx, " a%d %.2f", i, g->ag[i].cum_profit);
                    fprintf(g->tx, "\n");
                }
                g->done = 1;
                *state = BZ_STEP_DONE;
                return BZ_OK;
            }
            bz_elec_begin_turn(g);
            if (!g->communication) {
                /* no cheap talk: nothing is published, claims stay NaN */
                g->stage = ST_PROPOSE;
                continue;
            }
            g->stage = ST_PUBLISH;
            ask_all(g, BZ_ELEC_PUBLISH);
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        case ST_PROPOSE:
            ask_all(g, BZ_ELEC_PROPOSE);
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        case ST_RESPOND:
        case ST_CONFIRM: {
            int phase = g->stage == ST_RESPOND ? BZ_ELEC_RESPOND : BZ_ELEC_CONFIRM, asked = 0;
            for (int i = 0; i < g->n; i++)
                if (phase == BZ_ELEC_RESPOND ? g->n_inbox[i] != 0
                                             : g->prop[i].status == BZ_ELEC_P_COUNTERED) {
                    if (!asked++)
                        bz_game_ask_phase(g, phase);
                    ask(g, i);
                }
            if (!asked) {
                g->stage = ST_AUCTION;
                continue;
            }
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        }
        case ST_AUCTION:
            ask_all(g, BZ_ELEC_AUCTION);
            *state = BZ_STEP_DECIDE;
            return BZ_OK;
        default:
            assert(!"electricity: bad stage");
            return bz_err_set(err, BZ_EINTERNAL, "electricity: bad stage %d", g->stage);
        }
    }
}

static int apply(struct bz_game *g, struct bz_err *err)
{
    int phase = g->base.phase;
    /* the base checked every action and fell back where needed; the flags
     * go to this turn's rows */
    for (int r = 0; r < g->base.n_req; r++) {
        const struct bz_request *q = &g->base.req[r];
        g->ag[q->agent].invalid |= q->invalid;
        g->ag[q->agent].fallback |= q->fallback;
    }
    switch (phase) {
    case BZ_ELEC_PUBLISH:
        apply_publish(g);
        g->stage = ST_PROPOSE;
        break;
    case BZ_ELEC_PROPOSE:
        apply_propose(g);
        g->stage = ST_RESPOND;
        break;
    case BZ_ELEC_RESPOND:
        apply_respond(g);
        g->stage = ST_CONFIRM;
        break;
    case BZ_ELEC_CONFIRM:
        apply_confirm(g);
        g->stage = ST_AUCTION;
        break;
    case BZ_ELEC_AUCTION: {
        double price = NAN, volume = 0;
        int rc = apply_auction(g, &price, &volume, err);
        if (rc)
            return rc;
        if (g->tx)
            fprintf(g->tx, " settle:\n");
        bz_elec_settle(g, price, volume);
        g->turn++;
        g->stage = ST_START;
        break;
    }
    default:
        assert(!"electricity: bad phase");
        return bz_err_set(err, BZ_EINTERNAL, "electricity: bad phase %d", phase);
    }
    return BZ_OK;
}

static void outcome(const struct bz_game *g, struct bz_game_outcome *out, double *payoff)
{
    out->turns_played = g->turn;
    out->welfare = g->sum_welfare;
    out->max_welfare = g->sum_max;
    out->efficiency = bz_elec_efficiency(g->sum_welfare, g->sum_autarky, g->sum_max);
    out->n_invalid = g->base.n_invalid;
    out->n_fallback = g->base.n_fallback;
    for (int i = 0; i < g->n; i++) {
        double p = bz_elec_payoff(g, i);
        if (payoff)
            payoff[i] = p;
        if (out->gain)
            out->gain[i] = p - g->ag[i].autarky_payoff;
    }
}

const struct bz_game_ops bz_electricity_ops = {
    .name = "electricity",
    .params = params,
    .n_params = BZ_ELEC_N_PARAMS,
    .phases = phase_names,
    .n_phases = BZ_ELEC_N_PHASES,
    .policies = policies,
    .n_policies = sizeof policies / sizeof policies[0],
    .tables = tables,
    .n_tables = sizeof tables / sizeof tables[0],
    .check = check,
    .create = create,
    .destroy = destroy,
    .step = step,
    .apply = apply,
    .outcome = outcome,
    .check_action = check_action,
    .safe_action = safe_action,
    .random_action = bz_elec_random_action,
    .observe = bz_elec_observe,
    .action_schema = bz_elec_action_schema,
    .parse_action = bz_elec_parse_action,
    .renamed = renamed,
    .n_renamed = sizeof renamed / sizeof renamed[0],
};
