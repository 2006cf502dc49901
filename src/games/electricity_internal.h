/* electricity_internal: the electricity game's state, shared by the game
 * (src/games/electricity.c: rules and state machine; electricity_env.c:
 * environment; electricity_settle.c: settlement; electricity_llm.c: the LLM
 * view), its heuristic policies
 * (src/agents/electricity_policies.c) and the tests. Nothing outside those
 * should include it; the public face is bz_electricity_ops. */
#ifndef BAZAAR_ELECTRICITY_INTERNAL_H
#define BAZAAR_ELECTRICITY_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "bazaar/auction.h"
#include "bazaar/game.h"
#include "bazaar/records.h"

extern const struct bz_game_ops bz_electricity_ops;

/* Parameter indices into cfg->num / cfg->str (order of ops->params). */
enum bz_elec_param {
    BZ_ELEC_N_AGENTS,
    BZ_ELEC_COMMUNICATION,
    BZ_ELEC_MAX_TURNS,
    BZ_ELEC_VOLATILITY,
    BZ_ELEC_SUPPLY_RATIO,
    BZ_ELEC_BASE_PRICE,
    BZ_ELEC_RETAIL_PRICE,
    BZ_ELEC_VOLL,
    BZ_ELEC_PENALTY,
    BZ_ELEC_STORAGE_EFFICIENCY,
    BZ_ELEC_STORAGE_HOURS,
    BZ_ELEC_PROFILE,
    BZ_ELEC_EIA_FILE,
    BZ_ELEC_EIA_RESPONDENT,
    BZ_ELEC_N_PARAMS
};

/* Phase indices into ops->phases. */
enum bz_elec_phase {
    BZ_ELEC_PUBLISH,
    BZ_ELEC_PROPOSE,
    BZ_ELEC_RESPOND,
    BZ_ELEC_CONFIRM,
    BZ_ELEC_AUCTION,
    BZ_ELEC_SETTLE,
    BZ_ELEC_N_PHASES
};

/* Sides, from the deciding agent's point of view (same values as auction). */
enum bz_elec_side { BZ_ELEC_NONE = 0, BZ_ELEC_BUY = 1, BZ_ELEC_SELL = 2 };

/* Answers to a received proposal. */
enum bz_elec_answer { BZ_ELEC_REJECT = 0, BZ_ELEC_ACCEPT = 1, BZ_ELEC_COUNTER = 2 };

/* Proposal status. */
enum bz_elec_status {
    BZ_ELEC_P_NONE = 0, /* no proposal this turn */
    BZ_ELEC_P_OPEN,     /* waiting for the answer */
    BZ_ELEC_P_ACCEPTED, /* accepted as proposed: a contract */
    BZ_ELEC_P_REJECTED,
    BZ_ELEC_P_COUNTERED,        /* waiting for the proposer's confirm */
    BZ_ELEC_P_COUNTER_ACCEPTED, /* a contract at the counter's terms */
    BZ_ELEC_P_COUNTER_REJECTED
};

#define BZ_ELEC_K 6          /* counterparties per agent (min(N-1, 6)) */
#define BZ_ELEC_MSG_MAX 1000 /* cap on one message's length (bytes) */
#define BZ_ELEC_EPS 1e-9     /* slack on admissibility bounds (MWh) */

/* One agent's action slot for the current phase; only the current phase's
 * fields matter. Heuristic policies and parse_action write it. */
struct bz_elec_action {
    uint8_t set;
    /* publish */
    double claimed_surplus_mwh; /* NaN: nothing published (communication off) */
    const char *message;        /* publish or propose; NULL or static or records arena */
    /* propose: to = -1 for no proposal */
    int32_t to;
    int side;
    double amount_mwh;
    double price_total;
    /* respond: one answer per received proposal, by inbox position */
    uint8_t answer[BZ_ELEC_K];
    double counter_amount_mwh[BZ_ELEC_K];
    double counter_price_total[BZ_ELEC_K];
    /* confirm */
    uint8_t accept_counter;
    /* auction */
    int order_side;
    double order_amount_mwh;
    double order_limit_per_mwh;
};

/* Position and marginal values of agent i this hour from its forecasts
 * (never its realisations): what the heuristics and the zi budget use. */
struct bz_elec_values {
    double expected;   /* forecast generation - forecast demand (MWh) */
    double position;   /* hedged on forecast errors: > 0 MWh it can sell (its storage too
                          when the reference price is at least a stored MWh's worth), < 0
                          MWh it needs */
    double urgent;     /* of the need, MWh its storage cannot cover (unserved otherwise) */
    double sell_floor; /* least a sold MWh must fetch: its cost, or a stored MWh's worth */
    double buy_value;  /* most a bought MWh is worth: retail + VOLL for urgent need, else a
                          stored MWh's worth */
};
/* Private state and this turn's accounts of one agent. */
struct bz_elec_agent {
    /* environment, fixed for the game */
    double capacity_mw;
    double base_demand_mwh;
    double storage_cap_mwh;
    double cost_per_mwh;      /* marginal generation cost before the hour's fuel factor */
    double storage_start_mwh; /* level at the start of the game */
    /* environment, this turn: realisations are revealed at settle; agents
     * trade on the forecasts */
    double gen_mwh, demand_mwh;
    double gen_fc_mwh, demand_fc_mwh;   /* forecasts of this turn */
    double next_demand_fc_mwh;          /* forecast of next turn's demand */
    double max_gen_mwh, max_demand_mwh; /* physical bounds of this turn */
    double cost_now;                    /* marginal generation cost this hour (USD/MWh) */
    struct bz_elec_values val;          /* this hour's, from its own forecasts */
    double storage_mwh;                 /* level at the start of the turn */
    double cash, cum_profit;
    double autarky_payoff; /* sum over turns of its autarky value (see settle) */
    /* decisions and trades of this turn */
    double claimed_surplus_mwh;
    const char *publish_message;             /* this turn's; NULL with communication off */
    double c_bought, c_sold, c_paid, c_recv; /* contracts, MWh and money */
    double a_bought, a_sold, a_paid, a_recv; /* auction */
    double pend_sell, pend_buy;              /* outstanding offers that may still bind */
    /* settlement of this turn */
    double delivered, undelivered, received, pen_paid, pen_recv;
    uint8_t invalid, fallback;
};

struct bz_elec_proposal {
    int32_t to; /* -1: none */
    int side;   /* proposer's side */
    double amount_mwh, price_total;
    const char *message;
    int status;
    double counter_amount_mwh, counter_price_total;
};

struct bz_elec_contract {
    int32_t seller, buyer;
    double amount_mwh, price_total;
};

struct bz_game {
    struct bz_game_base base; /* first: the shared part (requests, counters) */
    struct bz_game_config cfg;
    struct bz_records *rec;
    FILE *tx;
    int n, k, max_turns, communication;
    double volatility, supply_ratio, base_price, retail, voll, penalty, eff, storage_hours;
    double store_value; /* worth of one stored MWh (USD): base_price, the mean cost of
                           generating it again */
    /* shape: load/availability/price factor per turn index mod n_shape */
    int n_shape;
    double *load, *avail, *price_f;
    /* environment keys */
    uint64_t env_seed, seed;
    /* turn state */
    int turn, stage, done; /* the phase asked is base.phase */
    double ref_price;      /* this turn: marginal value of the forecast merit order */
    double fuel_factor;    /* this turn: costs are cost_per_mwh x fuel_factor */
    double last_clearing;  /* NaN before any trade */
    struct bz_elec_agent *ag;
    struct bz_elec_action *act;
    int32_t *nbr;           /* n*k: neighbours on the ring */
    int8_t *delivered_last; /* n*k: did nbr[i*k+j] deliver to i last time? -1 unknown */
    int8_t *consistent;     /* n*k: did nbr[i*k+j]'s offers to i agree with its claim? -1 unknown */
    int32_t *inbox;         /* n*k: proposers whose proposal i received */
    uint8_t *n_inbox;
    struct bz_elec_proposal *prop; /* by proposer */
    struct bz_elec_contract *contracts;
    int n_contracts;
    int32_t *perm;      /* n: scratch for drawing the ring */
    int32_t *all;       /* 0..n-1 */
    int32_t *merit;     /* n: companies by cost_per_mwh, cheapest first (ties by seat) */
    int32_t *rank;      /* n: position of each company in merit */
    int32_t *ring_pos;  /* n: position of each company on the ring */
    double *merit_cost; /* n: cost_per_mwh in merit order */
    struct bz_auction auction;
    struct bz_auction_order *orders;
    double *filled;
    double *tmp; /* n: generation (forecast, then realised) in merit order, so the merit
                    order walks a small array */
    /* game totals */
    double sum_welfare, sum_autarky, sum_max, sum_served, sum_servable;
};

/* Purposes of the random streams (distinct constants; never reuse one). */
enum bz_elec_stream {
    BZ_ELEC_RNG_AGENTS = 0x454c4543, /* capacities, demands, storage */
    BZ_ELEC_RNG_COMMON,              /* per turn: common shocks */
    BZ_ELEC_RNG_AGENT_TURN,          /* per turn: idiosyncratic noise and forecast errors */
    BZ_ELEC_RNG_COSTS,               /* marginal costs (the merit order) */
    BZ_ELEC_RNG_RING = 0x52494e47    /* the counterparty ring (env_seed) */
};

/* What an agent may still commit to sell / buy in the current phase (MWh):
 * sells are bounded by the most it could generate plus its storage plus what
 * it bought, buys by its largest possible demand plus its storage room plus
 * what it sold. */
double bz_elec_sell_room(const struct bz_game *g, int i);
double bz_elec_buy_room(const struct bz_game *g, int i);

/* Index of partner j among i's counterparties, or -1. */
int bz_elec_nbr_slot(const struct bz_game *g, int i, int j);

/* Random admissible action for request r (zero intelligence). */
void bz_elec_random_action(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng);

/* electricity_env.c: the hourly shape (cached by file and respondent; the
 * caller frees the three arrays), the companies and the ring (at create), a
 * turn's realisations and forecasts (at its start). */
int bz_elec_load_shape(const struct bz_game_config *cfg, int *n_out, double **load_out,
                       double **avail_out, double **price_out, struct bz_err *err);
void bz_elec_draw_companies(struct bz_game *g);
void bz_elec_draw_ring(struct bz_game *g);
void bz_elec_begin_turn(struct bz_game *g);

/* Agent i's values this hour (bz_elec_begin_turn stores them in ag[i].val). */
void bz_elec_values(const struct bz_game *g, int i, struct bz_elec_values *v);

/* Serving alone (settle's rule and autarky's): from energy received, then
 * the cheaper of own generation (cost) and storage (store_value), then the
 * other; leftover received energy charges storage, then own generation when
 * it costs less than a stored MWh's worth x efficiency; the rest is
 * curtailed (not generated). */
struct bz_elec_use {
    double served, unserved, gen_used, discharge, charge, curtailed, level;
};
void bz_elec_serve(const struct bz_game *g, const struct bz_elec_agent *a, double gen,
                   double received, double level, struct bz_elec_use *u);

/* electricity_settle.c: settle the turn after the auction (rows added). */
void bz_elec_settle(struct bz_game *g, double clearing, double volume);
/* (welfare - autarky) / (max - autarky); NaN when max - autarky is ~0. */
double bz_elec_efficiency(double welfare, double autarky, double max);
/* Agent i's payoff so far: cumulative profit + (storage level - level at the
 * start) x store_value, so that the payoffs sum to the welfare. */
double bz_elec_payoff(const struct bz_game *g, int i);

/* electricity_llm.c: the LLM view (ops observe, action_schema, parse_action). */
int bz_elec_observe(const struct bz_game *g, const struct bz_request *r, struct cJSON *obs,
                    struct bz_err *err);
struct cJSON *bz_elec_action_schema(const struct bz_game *g, int phase);
int bz_elec_parse_action(struct bz_game *g, const struct bz_request *r, const struct cJSON *reply,
                         struct bz_err *err);

/* "buy", "sell" or "none". */
const char *bz_elec_side_name(int side);

/* The heuristic policies (src/agents/electricity_policies.c). */
extern const struct bz_policy_ops bz_elec_truthful, bz_elec_greedy, bz_elec_zi, bz_elec_reciprocal;

/* Rows of the game's tables. */
#define BZ_ELEC_TURNS_COLUMNS(X, R)                                                                \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, turn, I32, "", "turn (hour), 0-based")                                                    \
    X(R, agent, I32, "", "seat of the company")                                                    \
    X(R, generation, F64, "MWh", "energy the company generated this hour")                         \
    X(R, demand, F64, "MWh", "its customers' demand this hour")                                    \
    X(R, forecast, F64, "MWh", "its forecast of next hour's demand")                               \
    X(R, storage_level, F64, "MWh", "energy in its storage at the start of the hour")              \
    X(R, cost, F64, "USD/MWh", "its marginal generation cost this hour")                           \
    X(R, expected_surplus, F64, "MWh", "forecast generation - forecast demand when it published")  \
    X(R, claimed_surplus, F64, "MWh",                                                              \
      "surplus it published (claimed generation - demand); NaN with communication off")            \
    X(R, lie, U8, "",                                                                              \
      "1: claim outside expected_surplus +- (5% of forecast generation + demand + 0.01 MWh)")      \
    X(R, true_surplus, F64, "MWh", "realised generation - demand")                                 \
    X(R, contract_bought, F64, "MWh", "energy bought in bilateral contracts")                      \
    X(R, contract_sold, F64, "MWh", "energy sold in bilateral contracts")                          \
    X(R, contract_paid, F64, "USD", "paid for the contracts it bought")                            \
    X(R, contract_received, F64, "USD", "received for the contracts it sold")                      \
    X(R, auction_bought, F64, "MWh", "energy bought in the auction")                               \
    X(R, auction_sold, F64, "MWh", "energy sold in the auction")                                   \
    X(R, auction_paid, F64, "USD", "paid in the auction")                                          \
    X(R, auction_received, F64, "USD", "received in the auction")                                  \
    X(R, clearing_price, F64, "USD/MWh", "the hour's auction clearing price")                      \
    X(R, delivered, F64, "MWh", "energy it delivered to its buyers")                               \
    X(R, undelivered, F64, "MWh", "energy it sold and did not deliver")                            \
    X(R, received, F64, "MWh", "energy its sellers delivered to it")                               \
    X(R, penalty_paid, F64, "USD", "default penalties it paid")                                    \
    X(R, penalty_received, F64, "USD", "default penalties paid to it")                             \
    X(R, served, F64, "MWh", "demand served")                                                      \
    X(R, unserved, F64, "MWh", "demand not served (costs the value of lost load)")                 \
    X(R, curtailed, F64, "MWh", "energy neither used, delivered nor stored")                       \
    X(R, storage_charge, F64, "MWh", "energy put into storage, before losses")                     \
    X(R, storage_discharge, F64, "MWh", "energy taken from storage")                               \
    X(R, generation_used, F64, "MWh", "generation used (the rest was not generated)")              \
    X(R, profit, F64, "USD",                                                                       \
      "retail revenue - VOLL cost - generation cost + trade and penalty money")                    \
    X(R, value, F64, "USD", "profit + the stored energy gained x store value")                     \
    X(R, autarky_value, F64, "USD", "value had it traded nothing this hour (same start state)")    \
    X(R, cum_profit, F64, "USD", "profit so far")                                                  \
    X(R, invalid_action, U8, "", "1: an inadmissible action was replaced this hour")               \
    X(R, fallback, U8, "", "1: a fallback action was used this hour")
BZ_TABLE_ROW(bz_elec_turn_row, BZ_ELEC_TURNS_COLUMNS);

#define BZ_ELEC_MARKET_COLUMNS(X, R)                                                               \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, turn, I32, "", "turn (hour), 0-based")                                                    \
    X(R, reference_price, F64, "USD/MWh", "the hour's reference wholesale price")                  \
    X(R, clearing_price, F64, "USD/MWh", "the hour's auction clearing price")                      \
    X(R, volume, F64, "MWh", "energy traded in the auction")                                       \
    X(R, welfare, F64, "USD", "sum of the companies' values (profit + stored energy's worth)")     \
    X(R, autarky_welfare, F64, "USD", "welfare had no company traded (each alone)")                \
    X(R, max_welfare, F64, "USD",                                                                  \
      "social optimum of the hour's dispatch (costs, storage and its losses)")                     \
    X(R, efficiency, F64, "1",                                                                     \
      "(welfare - autarky) / (max - autarky): share of gains from trade realised; NaN if none")    \
    X(R, served_share, F64, "1", "served / servable energy")                                       \
    X(R, price_dispersion, F64, "USD/MWh",                                                         \
      "volume-weighted SD of unit prices (contracts and auction); NaN without trade")              \
    X(R, n_contracts, I32, "", "bilateral contracts agreed")                                       \
    X(R, contract_volume, F64, "MWh", "energy in bilateral contracts")                             \
    X(R, total_generation, F64, "MWh", "generation of all companies")                              \
    X(R, total_demand, F64, "MWh", "demand of all companies")                                      \
    X(R, total_unserved, F64, "MWh", "unserved demand of all companies")
BZ_TABLE_ROW(bz_elec_market_row, BZ_ELEC_MARKET_COLUMNS);

#define BZ_ELEC_SUMMARY_COLUMNS(X, R)                                                              \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, welfare, F64, "USD", "sum of /electricity/market.welfare (= sum of payoffs)")             \
    X(R, autarky_welfare, F64, "USD", "sum of autarky_welfare: no company trades")                 \
    X(R, max_welfare, F64, "USD", "sum of max_welfare: the hourly social optima")                  \
    X(R, efficiency, F64, "1",                                                                     \
      "(welfare - autarky) / (max - autarky): 0 without trade, at most 1; NaN if no gains")        \
    X(R, served_share, F64, "1", "served / servable energy over the game")
BZ_TABLE_ROW(bz_elec_summary_row, BZ_ELEC_SUMMARY_COLUMNS);

extern const struct bz_table_desc bz_elec_turns_table, bz_elec_market_table, bz_elec_summary_table;

#endif
