/* electricity: the electricity market game (bz_electricity_ops). Owns the
 * rules, the environment draws, settlement and the game's records; never does
 * I/O but reading its data files at create/check and writing the transcript.
 *
 * A turn is one hour of a daily cycle. At its start every agent learns
 * forecasts of its generation and demand for the hour (the realisations are
 * revealed at settle, as meters would) and a forecast of next hour's demand.
 * Phases: publish (claimed surplus, may be false, and a message) -> propose
 * (at most one contract to one of its k = min(N-1, 6) counterparties on a ring
 * drawn from the protocol seed) -> respond (accept, reject or counter once
 * each received proposal) -> confirm (a countered proposer accepts or rejects
 * the counter) -> auction (one order in a uniform-price double auction,
 * src/games/auction.c) -> settle (no decisions).
 *
 * Settlement (decided design; nets positions like a real grid):
 *  - net position N_i = sold - bought over contracts and auction.
 *  - a net seller delivers min(N_i, generation + storage level), generation
 *    first, then storage discharge; what it fails to deliver is charged
 *    default_penalty_per_mwh per MWh, paid to its buyers pro rata to what each
 *    bought from it (each contract buyer by its contract amount; the share of
 *    its auction sales goes to the auction buyers pro rata to their auction
 *    purchases).
 *  - the grid nets: net buyers receive the total delivered energy pro rata to
 *    their net purchases, so energy delivered equals energy received.
 *  - contract and auction payments are made in full as agreed.
 *  - each agent then serves its own customers (retail price R per MWh) from
 *    its remaining generation plus what it received plus storage discharge; a
 *    surplus charges storage (level += efficiency x charge), the rest is
 *    curtailed; unserved demand costs VOLL per MWh.
 *  - profit = R served - VOLL unserved + contract, auction and penalty money
 *    received - paid. Per agent: generation + received + discharge = served +
 *    delivered + charge + curtailed and served + unserved = demand; across
 *    agents all money transfers sum to zero.
 * All environment randomness (capacities, demands, noise, price shocks) comes
 * from streams of cfg->env_seed only, so games paired on env_seed see the same
 * market whatever the lineup or communication; the ring and the agents'
 * randomness come from cfg->seed. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/eia.h"
#include "bazaar/match.h"
#include "games/electricity_internal.h"

#ifndef BZ_SOURCE_DIR
#define BZ_SOURCE_DIR "."
#endif

/* ---- descriptors -------------------------------------------------------- */

static const struct bz_param_desc params[BZ_ELEC_N_PARAMS] = {
    {"n_agents", BZ_PARAM_INT, 4, 2, 1e6, NULL, 1, "number of electricity companies"},
    {"communication", BZ_PARAM_BOOL, 1, 0, 1, NULL, 0,
     "1: agents exchange free-text messages; 0: numbers only"},
    {"max_turns", BZ_PARAM_INT, 24, 1, 8760, NULL, 1, "turns (hours) played"},
    {"volatility", BZ_PARAM_NUM, 0.2, 0, 1, NULL, 1,
     "noise on generation, demand and prices; forecast error grows with it"},
    {"scarcity", BZ_PARAM_NUM, 1.0, 0.1, 5, NULL, 1,
     "total expected generation / total expected demand (below 1: scarce)"},
    {"base_price_per_mwh", BZ_PARAM_NUM, 50, 0, 1e5, NULL, 1,
     "mean reference wholesale price; the profile's price factor shapes it"},
    {"retail_price_per_mwh", BZ_PARAM_NUM, 120, 0, 1e5, NULL, 1,
     "what a company earns per MWh served to its own customers"},
    {"voll_per_mwh", BZ_PARAM_NUM, 1000, 0, 1e6, NULL, 1, "value of lost load: cost of unserved demand"},
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

#define T struct bz_elec_turn_row
static const struct bz_column turn_cols[] = {
    BZ_COL(T, game_id, BZ_COL_I64),
    BZ_COL(T, turn, BZ_COL_I32),
    BZ_COL(T, agent, BZ_COL_I32),
    BZ_COL(T, generation, BZ_COL_F64),
    BZ_COL(T, demand, BZ_COL_F64),
    BZ_COL(T, forecast, BZ_COL_F64),
    BZ_COL(T, storage_level, BZ_COL_F64),
    BZ_COL(T, claimed_surplus, BZ_COL_F64),
    BZ_COL(T, true_surplus, BZ_COL_F64),
    BZ_COL(T, contract_bought, BZ_COL_F64),
    BZ_COL(T, contract_sold, BZ_COL_F64),
    BZ_COL(T, contract_paid, BZ_COL_F64),
    BZ_COL(T, contract_received, BZ_COL_F64),
    BZ_COL(T, auction_bought, BZ_COL_F64),
    BZ_COL(T, auction_sold, BZ_COL_F64),
    BZ_COL(T, auction_paid, BZ_COL_F64),
    BZ_COL(T, auction_received, BZ_COL_F64),
    BZ_COL(T, clearing_price, BZ_COL_F64),
    BZ_COL(T, delivered, BZ_COL_F64),
    BZ_COL(T, undelivered, BZ_COL_F64),
    BZ_COL(T, received, BZ_COL_F64),
    BZ_COL(T, penalty_paid, BZ_COL_F64),
    BZ_COL(T, penalty_received, BZ_COL_F64),
    BZ_COL(T, served, BZ_COL_F64),
    BZ_COL(T, unserved, BZ_COL_F64),
    BZ_COL(T, curtailed, BZ_COL_F64),
    BZ_COL(T, storage_charge, BZ_COL_F64),
    BZ_COL(T, storage_discharge, BZ_COL_F64),
    BZ_COL(T, profit, BZ_COL_F64),
    BZ_COL(T, cum_profit, BZ_COL_F64),
    BZ_COL(T, invalid_action, BZ_COL_U8),
    BZ_COL(T, fallback, BZ_COL_U8),
};
#undef T
const struct bz_table_desc bz_elec_turns_table = {"/electricity/turns",
                                                  sizeof(struct bz_elec_turn_row),
                                                  sizeof turn_cols / sizeof turn_cols[0], turn_cols};

#define M struct bz_elec_market_row
static const struct bz_column market_cols[] = {
    BZ_COL(M, game_id, BZ_COL_I64),
    BZ_COL(M, turn, BZ_COL_I32),
    BZ_COL(M, reference_price, BZ_COL_F64),
    BZ_COL(M, clearing_price, BZ_COL_F64),
    BZ_COL(M, volume, BZ_COL_F64),
    BZ_COL(M, welfare, BZ_COL_F64),
    BZ_COL(M, efficient_welfare, BZ_COL_F64),
    BZ_COL(M, efficiency, BZ_COL_F64),
    BZ_COL(M, price_dispersion, BZ_COL_F64),
    BZ_COL(M, n_contracts, BZ_COL_I32),
    BZ_COL(M, contract_volume, BZ_COL_F64),
    BZ_COL(M, total_generation, BZ_COL_F64),
    BZ_COL(M, total_demand, BZ_COL_F64),
    BZ_COL(M, total_unserved, BZ_COL_F64),
};
#undef M
const struct bz_table_desc bz_elec_market_table = {
    "/electricity/market", sizeof(struct bz_elec_market_row),
    sizeof market_cols / sizeof market_cols[0], market_cols};

static const struct bz_table_desc *const tables[] = {&bz_elec_turns_table, &bz_elec_market_table};

/* ---- configuration and data --------------------------------------------- */

/* Purposes of the random streams (distinct constants; never reuse one). */
enum {
    RNG_AGENTS = 0x454c4543, /* capacities, demands, storage */
    RNG_COMMON,              /* per turn: common shocks */
    RNG_AGENT_TURN,          /* per turn: idiosyncratic noise and forecast errors */
    RNG_RING = 0x52494e47    /* protocol: the counterparty ring (cfg->seed) */
};

static const char *str_param(const struct bz_game_config *cfg, int i)
{
    const char *s = cfg->str[i];
    return s ? s : params[i].def_str;
}

static void resolve_path(const struct bz_game_config *cfg, const char *name, char *buf, size_t n)
{
    if (name[0] == '/')
        snprintf(buf, n, "%s", name);
    else
        snprintf(buf, n, "%s/%s", cfg->data_dir ? cfg->data_dir : BZ_SOURCE_DIR "/data", name);
}

/* Read the 24-row hourly profile (hour, load, availability, price factor). */
static int load_profile(const char *path, double load[24], double avail[24], double price[24],
                        struct bz_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return bz_err_set(err, BZ_EINVAL, "profile: cannot open %s: %s", path, strerror(errno));
    char line[512];
    int rc = BZ_OK, row = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (lineno == 1) {
            if (strncmp(line, "hour,", 5) != 0)
                rc = bz_err_set(err, BZ_EINVAL,
                                "profile: %s:1: expected the header "
                                "hour,load_factor,availability_factor,price_factor",
                                path);
            if (rc)
                goto out;
            continue;
        }
        if (line[0] == '\n' || line[0] == '\0' || line[0] == '\r')
            continue;
        int h;
        double l, a, p;
        char extra;
        if (sscanf(line, "%d,%lf,%lf,%lf %c", &h, &l, &a, &p, &extra) != 4) {
            rc = bz_err_set(err, BZ_EINVAL,
                            "profile: %s:%d: expected hour,load_factor,availability_factor,"
                            "price_factor (four numbers)",
                            path, lineno);
            goto out;
        }
        if (row >= 24 || h != row) {
            rc = bz_err_set(err, BZ_EINVAL, "profile: %s:%d: expected hour %d, got %d", path,
                            lineno, row, h);
            goto out;
        }
        if (!(l > 0 && isfinite(l)) || !(a >= 0 && isfinite(a)) || !(p >= 0 && isfinite(p))) {
            rc = bz_err_set(err, BZ_EINVAL,
                            "profile: %s:%d: factors must be finite, load > 0, availability "
                            "and price >= 0",
                            path, lineno);
            goto out;
        }
        load[row] = l;
        avail[row] = a;
        price[row] = p;
        row++;
    }
    if (row != 24)
        rc = bz_err_set(err, BZ_EINVAL, "profile: %s: expected 24 hourly rows, found %d", path,
                        row);
out:
    fclose(f);
    return rc;
}

/* Load and price shape of the game: the profile, or an EIA series' demand
 * (and net generation) normalised to the profile's means. Allocates the three
 * arrays (freed by the caller). */
static int read_shape(const struct bz_game_config *cfg, int *n_out, double **load_out,
                      double **avail_out, double **price_out, struct bz_err *err)
{
    double pl[24], pa[24], pp[24];
    char path[4096];
    struct bz_eia_series s = {0};
    int rc;
    resolve_path(cfg, str_param(cfg, BZ_ELEC_PROFILE), path, sizeof path);
    rc = load_profile(path, pl, pa, pp, err);
    if (rc)
        return rc;
    const char *eia = str_param(cfg, BZ_ELEC_EIA_FILE);
    size_t n = 24;
    if (eia[0]) {
        const char *resp = str_param(cfg, BZ_ELEC_EIA_RESPONDENT);
        if (!resp[0])
            return bz_err_set(err, BZ_EINVAL,
                              "eia_respondent: required when eia_file is set (%s): a balancing "
                              "authority code such as PJM",
                              eia);
        rc = bz_eia_load(eia, resp, &s, err);
        if (rc) {
            bz_err_prefix(err, "eia_file");
            return rc;
        }
        n = s.n;
    }
    double *load = malloc(n * sizeof *load), *avail = malloc(n * sizeof *avail),
           *price = malloc(n * sizeof *price);
    if (!load || !avail || !price) {
        rc = bz_err_set(err, BZ_ENOMEM, "electricity: out of memory for the load shape");
        goto out;
    }
    if (!eia[0]) {
        memcpy(load, pl, sizeof pl);
        memcpy(avail, pa, sizeof pa);
        memcpy(price, pp, sizeof pp);
    } else {
        double md = 0, mg = 0, ma = 0;
        for (size_t t = 0; t < n; t++) {
            md += s.demand_mwh[t];
            mg += s.n_net_generation == n ? s.net_generation_mwh[t] : 0;
        }
        for (int h = 0; h < 24; h++)
            ma += pa[h] / 24;
        md /= (double)n;
        mg /= (double)n;
        if (!(md > 0)) {
            rc = bz_err_set(err, BZ_EINVAL, "eia_file: %s: demand of %s is not positive on average",
                            eia, s.respondent);
            goto out;
        }
        for (size_t t = 0; t < n; t++) {
            load[t] = s.demand_mwh[t] / md;
            if (load[t] < 0)
                load[t] = 0;
            if (s.n_net_generation == n && mg > 0)
                avail[t] = fmax(0, s.net_generation_mwh[t] / mg * ma);
            else
                avail[t] = pa[t % 24];
            price[t] = pp[t % 24];
        }
    }
    *n_out = (int)n;
    *load_out = load;
    *avail_out = avail;
    *price_out = price;
    load = avail = price = NULL;
out:
    free(load);
    free(avail);
    free(price);
    bz_eia_series_cleanup(&s);
    return rc;
}

/* Shapes already read, by (profile path, EIA file, respondent): a sweep
 * creates thousands of games from a few data files, and parsing an EIA
 * download (megabytes of JSON) per game would dominate. Data files do not
 * change during a run. The process is single-threaded (one per MPI rank). */
#define SHAPE_CACHE 8
static struct shape_entry {
    char key[3 * 1024];
    int n;
    double *load, *avail, *price;
} shape_cache[SHAPE_CACHE];
static int shape_next; /* round-robin slot to replace */

static int load_shape(const struct bz_game_config *cfg, int *n_out, double **load_out,
                      double **avail_out, double **price_out, struct bz_err *err)
{
    char key[3 * 1024], path[1024];
    resolve_path(cfg, str_param(cfg, BZ_ELEC_PROFILE), path, sizeof path);
    snprintf(key, sizeof key, "%s\n%.1000s\n%.1000s", path, str_param(cfg, BZ_ELEC_EIA_FILE),
             str_param(cfg, BZ_ELEC_EIA_RESPONDENT));
    struct shape_entry *e = NULL;
    for (int i = 0; i < SHAPE_CACHE && !e; i++)
        if (shape_cache[i].load && strcmp(shape_cache[i].key, key) == 0)
            e = &shape_cache[i];
    if (!e) {
        e = &shape_cache[shape_next];
        shape_next = (shape_next + 1) % SHAPE_CACHE;
        free(e->load);
        free(e->avail);
        free(e->price);
        memset(e, 0, sizeof *e);
        int rc = read_shape(cfg, &e->n, &e->load, &e->avail, &e->price, err);
        if (rc)
            return rc;
        snprintf(e->key, sizeof e->key, "%s", key);
    }
    size_t bytes = (size_t)e->n * sizeof(double);
    double *load = malloc(bytes), *avail = malloc(bytes), *price = malloc(bytes);
    if (!load || !avail || !price) {
        free(load);
        free(avail);
        free(price);
        return bz_err_set(err, BZ_ENOMEM, "electricity: out of memory for the load shape");
    }
    memcpy(load, e->load, bytes);
    memcpy(avail, e->avail, bytes);
    memcpy(price, e->price, bytes);
    *n_out = e->n;
    *load_out = load;
    *avail_out = avail;
    *price_out = price;
    return BZ_OK;
}

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
    int rc = load_shape(cfg, &n, &l, &a, &p, err);
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

/* Heterogeneous companies from env_seed, scaled so that expected generation
 * over the game's turns / expected demand == scarcity exactly (the noise has
 * mean zero: 1 + volatility x U(-1, 1)). */
static void draw_companies(struct bz_game *g)
{
    struct bz_rng r;
    bz_rng_init(&r, g->env_seed, RNG_AGENTS);
    double mean_avail = 0, mean_load = 0;
    for (int t = 0; t < g->max_turns; t++) {
        mean_avail += g->avail[t % g->n_shape] / g->max_turns;
        mean_load += g->load[t % g->n_shape] / g->max_turns;
    }
    double sum_gen = 0, sum_dem = 0;
    for (int i = 0; i < g->n; i++) {
        struct bz_elec_agent *a = &g->ag[i];
        a->capacity_mw = exp(0.6 * bz_rng_normal(&r));
        a->base_demand_mwh = 100 * exp(0.4 * bz_rng_normal(&r));
        a->storage_cap_mwh = g->storage_hours * a->base_demand_mwh * (0.5 + bz_rng_uniform(&r));
        a->storage_mwh = 0.5 * a->storage_cap_mwh;
        a->cash = 10 * a->base_demand_mwh * g->base_price;
        a->truthful_last = -1;
        sum_gen += a->capacity_mw * mean_avail;
        sum_dem += a->base_demand_mwh * mean_load;
    }
    double scale = sum_gen > 0 ? g->scarcity * sum_dem / sum_gen : 0;
    for (int i = 0; i < g->n; i++)
        g->ag[i].capacity_mw *= scale;
}

/* Counterparties: neighbours at ring distance 1..3 on a random permutation
 * (cfg->seed), so the relation is symmetric and every agent has k of them;
 * with N <= 7 everyone else. */
static void draw_ring(struct bz_game *g)
{
    int n = g->n, k = g->k;
    int32_t *perm = g->perm, *pos = g->inbox; /* scratch before the first turn */
    for (int i = 0; i < n; i++)
        perm[i] = i;
    struct bz_rng r;
    bz_rng_init(&r, g->seed, RNG_RING);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)bz_rng_below(&r, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < n; i++)
        pos[perm[i]] = i;
    for (int i = 0; i < n; i++) {
        if (n - 1 <= BZ_ELEC_K) {
            int j = 0;
            for (int o = 0; o < n; o++)
                if (o != i)
                    g->nbr[i * k + j++] = o;
        } else {
            static const int offs[BZ_ELEC_K] = {1, -1, 2, -2, 3, -3};
            for (int j = 0; j < k; j++)
                g->nbr[i * k + j] = perm[((pos[i] + offs[j]) % n + n) % n];
        }
    }
}

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
    g->scarcity = cfg->num[BZ_ELEC_SCARCITY];
    g->base_price = cfg->num[BZ_ELEC_BASE_PRICE];
    g->retail = cfg->num[BZ_ELEC_RETAIL_PRICE];
    g->voll = cfg->num[BZ_ELEC_VOLL];
    g->penalty = cfg->num[BZ_ELEC_PENALTY];
    g->eff = cfg->num[BZ_ELEC_STORAGE_EFFICIENCY];
    g->storage_hours = cfg->num[BZ_ELEC_STORAGE_HOURS];
    g->env_seed = cfg->env_seed;
    g->seed = cfg->seed;
    g->last_clearing = NAN;
    rc = load_shape(cfg, &g->n_shape, &g->load, &g->avail, &g->price_f, err);
    if (rc)
        goto out;
    size_t n = (size_t)g->n, nk = n * (size_t)(g->k ? g->k : 1);
    g->ag = calloc(n, sizeof *g->ag);
    g->act = calloc(n, sizeof *g->act);
    g->nbr = calloc(nk, sizeof *g->nbr);
    g->delivered_last = malloc(nk * sizeof *g->delivered_last);
    g->inbox = calloc(nk > n ? nk : n, sizeof *g->inbox);
    g->n_inbox = calloc(n, sizeof *g->n_inbox);
    g->prop = calloc(n, sizeof *g->prop);
    g->contracts = calloc(n, sizeof *g->contracts);
    g->perm = calloc(n, sizeof *g->perm);
    g->all = calloc(n, sizeof *g->all);
    g->orders = calloc(n, sizeof *g->orders);
    g->filled = calloc(n, sizeof *g->filled);
    g->tmp = calloc(n, sizeof *g->tmp);
    if (!g->ag || !g->act || !g->nbr || !g->delivered_last || !g->inbox || !g->n_inbox ||
        !g->prop || !g->contracts || !g->perm || !g->all || !g->orders || !g->filled || !g->tmp) {
        rc = bz_err_set(err, BZ_ENOMEM, "electricity: out of memory for %d agents", g->n);
        goto out;
    }
    rc = bz_auction_init(&g->auction, n, err);
    if (rc)
        goto out;
    memset(g->delivered_last, -1, nk);
    for (int i = 0; i < g->n; i++)
        g->all[i] = i;
    bz_rng_init(g->prng, g->seed, RNG_RING + 1);
    draw_companies(g);
    draw_ring(g);
    if (g->tx) {
        fprintf(g->tx,
                "== electricity: %d agents, %d turns, seed %llu, env seed %llu, communication "
                "%s\n   scarcity %.2f, volatility %.2f, retail %.0f/MWh, VOLL %.0f/MWh, default "
                "penalty %.0f/MWh, storage efficiency %.2f\n",
                g->n, g->max_turns, (unsigned long long)g->seed, (unsigned long long)g->env_seed,
                g->communication ? "on" : "off", g->scarcity, g->volatility, g->retail, g->voll,
                g->penalty, g->eff);
        for (int i = 0; i < g->n; i++) {
            const struct bz_elec_agent *a = &g->ag[i];
            fprintf(g->tx,
                    "   a%d %-28s capacity %.1f MW, base demand %.1f MWh, storage %.1f MWh; "
                    "counterparties",
                    i, cfg->agents ? cfg->agents[i].label : "?", a->capacity_mw,
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

/* ---- environment of a turn ----------------------------------------------- */

static double u11(struct bz_rng *r) { return 2 * bz_rng_uniform(r) - 1; }

/* Agent i's realised generation and demand at turn t and the forecasts an
 * agent gets of them: a pure function of (env_seed, t, i). The noise mixes a
 * common (weather) and an own shock, both U(-1, 1); forecast errors are
 * U(-1/2, 1/2) x volatility relative to the realisation. */
static void draw_agent_turn(const struct bz_game *g, int t, int i, double cg, double cd,
                            double *gen, double *dem, double *gen_fc, double *dem_fc)
{
    const struct bz_elec_agent *a = &g->ag[i];
    struct bz_rng r;
    bz_rng_init(&r, g->env_seed, bz_hash_combine(RNG_AGENT_TURN, (uint64_t)t));
    r.ctr = (uint64_t)i * 4;
    double ng = 0.5 * cg + 0.5 * u11(&r), nd = 0.5 * cd + 0.5 * u11(&r);
    double eg = 0.5 * u11(&r), ed = 0.5 * u11(&r);
    int h = t % g->n_shape;
    double v = g->volatility;
    *gen = fmax(0, a->capacity_mw * g->avail[h] * (1 + v * ng));
    *dem = fmax(0, a->base_demand_mwh * g->load[h] * (1 + v * nd));
    *gen_fc = *gen * (1 + v * eg);
    *dem_fc = *dem * (1 + v * ed);
}

static void common_shocks(const struct bz_game *g, int t, double *cg, double *cd, double *cp)
{
    struct bz_rng r;
    bz_rng_init(&r, g->env_seed, bz_hash_combine(RNG_COMMON, (uint64_t)t));
    *cg = u11(&r);
    *cd = u11(&r);
    *cp = u11(&r);
}

static void begin_turn(struct bz_game *g)
{
    int t = g->turn;
    double cg, cd, cp, cg1, cd1, cp1;
    common_shocks(g, t, &cg, &cd, &cp);
    common_shocks(g, t + 1, &cg1, &cd1, &cp1);
    /* the price moves with the common net-load shock and a shock of its own */
    double shock = 0.5 * (0.5 * (cd - cg)) + 0.5 * cp;
    g->ref_price = g->base_price * g->price_f[t % g->n_shape] * (1 + g->volatility * shock);
    int h = t % g->n_shape;
    for (int i = 0; i < g->n; i++) {
        struct bz_elec_agent *a = &g->ag[i];
        double g1, d1, gf1, df1;
        draw_agent_turn(g, t, i, cg, cd, &a->gen_mwh, &a->demand_mwh, &a->gen_fc_mwh,
                        &a->demand_fc_mwh);
        draw_agent_turn(g, t + 1, i, cg1, cd1, &g1, &d1, &gf1, &df1);
        a->next_demand_fc_mwh = df1;
        a->max_gen_mwh = a->capacity_mw * g->avail[h] * (1 + g->volatility);
        a->max_demand_mwh = a->base_demand_mwh * g->load[h] * (1 + g->volatility);
        a->claimed_surplus_mwh = 0;
        a->publish_message = NULL;
        a->c_bought = a->c_sold = a->c_paid = a->c_recv = 0;
        a->a_bought = a->a_sold = a->a_paid = a->a_recv = 0;
        a->pend_sell = a->pend_buy = 0;
        a->delivered = a->undelivered = a->received = a->pen_paid = a->pen_recv = 0;
        a->invalid = a->fallback = 0;
        g->prop[i].to = -1;
        g->prop[i].status = BZ_ELEC_P_NONE;
        g->n_inbox[i] = 0;
    }
    g->n_contracts = 0;
    g->base.round = t;
    if (g->tx) {
        fprintf(g->tx, "\n-- turn %d (hour %d): reference price %.2f/MWh\n", t, t % 24,
                g->ref_price);
        for (int i = 0; i < g->n; i++) {
            const struct bz_elec_agent *a = &g->ag[i];
            fprintf(g->tx,
                    "   a%d forecast: generation %.1f, demand %.1f (next hour %.1f); storage "
                    "%.1f/%.1f MWh; cumulative profit %.2f\n",
                    i, a->gen_fc_mwh, a->demand_fc_mwh, a->next_demand_fc_mwh, a->storage_mwh,
                    a->storage_cap_mwh, a->cum_profit);
        }
    }
}

/* ---- admissibility ------------------------------------------------------- */

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

int bz_elec_nbr_slot(const struct bz_game *g, int i, int j)
{
    for (int s = 0; s < g->k; s++)
        if (g->nbr[i * g->k + s] == j)
            return s;
    return -1;
}

static int over(double amount, double room) { return amount > room + BZ_ELEC_EPS * (1 + room); }

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
                                      "answers[%d].counter_price_total: expected a number >= 0",
                                      j);
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
            return bz_err_set(err, BZ_EINVAL,
                              "limit_price_per_mwh: expected a number >= 0, got %g",
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

static const char *side_name(int side)
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
        if (x->side == BZ_ELEC_SELL)
            g->ag[i].pend_sell = x->amount_mwh;
        else
            g->ag[i].pend_buy = x->amount_mwh;
        bz_game_message(g, BZ_ELEC_PROPOSE, i, x->to, x->message);
        if (g->tx) {
            fprintf(g->tx, "   a%d -> a%d: %s %.1f MWh for %.2f (%.2f/MWh)", i, x->to,
                    side_name(x->side), x->amount_mwh, x->price_total,
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
            fprintf(g->tx, "   cleared %.1f MWh at %.2f/MWh\n", res.volume_mwh,
                    res.price_per_mwh);
        else
            fprintf(g->tx, "   no trade (%d bids, %d asks)\n", res.n_bids, res.n_asks);
    }
    return BZ_OK;
}

/* ---- settlement ---------------------------------------------------------- */

static void settle(struct bz_game *g, double clearing, double volume)
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
        int sb = bz_elec_nbr_slot(g, k->buyer, k->seller), ss = bz_elec_nbr_slot(g, k->seller, k->buyer);
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
            begin_turn(g);
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
        settle(g, price, volume);
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
    out->max_welfare = g->sum_efficient;
    out->efficiency = g->sum_servable > 0 ? g->sum_served / g->sum_servable : 1.0;
    out->n_invalid = g->base.n_invalid;
    out->n_fallback = g->base.n_fallback;
    if (payoff)
        for (int i = 0; i < g->n; i++)
            payoff[i] = g->ag[i].cum_profit;
}

/* ---- LLM-facing: observation, schemas, parsing --------------------------- */

static cJSON *add_num(cJSON *o, const char *k, double v)
{
    return isfinite(v) ? cJSON_AddNumberToObject(o, k, v) : cJSON_AddNullToObject(o, k);
}

static void add_tri(cJSON *o, const char *k, int v)
{
    if (v < 0)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddBoolToObject(o, k, v);
}

static const char *status_name(int s)
{
    static const char *const names[] = {"none",     "open",     "accepted",        "rejected",
                                        "countered", "counter_accepted", "counter_rejected"};
    return s >= 0 && s <= BZ_ELEC_P_COUNTER_REJECTED ? names[s] : "?";
}

static int observe(const struct bz_game *g, const struct bz_request *r, cJSON *obs,
                   struct bz_err *err)
{
    int i = r->agent;
    if (i < 0 || i >= g->n)
        return bz_err_set(err, BZ_EINVAL, "observe: agent %d out of range", i);
    const struct bz_elec_agent *a = &g->ag[i];
    int phase = g->base.phase >= 0 ? g->base.phase : BZ_ELEC_SETTLE;
    cJSON *pub = cJSON_AddObjectToObject(obs, "public");
    cJSON *priv = cJSON_AddObjectToObject(obs, "private");
    cJSON *meta = cJSON_AddObjectToObject(obs, "meta");
    if (!pub || !priv || !meta)
        return bz_err_set(err, BZ_ENOMEM, "observe: out of memory");

    cJSON_AddStringToObject(meta, "game", "electricity");
    cJSON_AddStringToObject(meta, "phase", phase_names[phase]);
    cJSON_AddNumberToObject(meta, "agent", i);
    cJSON_AddNumberToObject(meta, "n_agents", g->n);
    cJSON_AddNumberToObject(meta, "turn", g->turn);
    cJSON_AddNumberToObject(meta, "max_turns", g->max_turns);
    cJSON_AddBoolToObject(meta, "communication", g->communication);

    cJSON_AddNumberToObject(pub, "hour", g->turn % 24);
    add_num(pub, "reference_price_per_mwh", g->ref_price);
    add_num(pub, "last_clearing_price_per_mwh", g->last_clearing);
    add_num(pub, "retail_price_per_mwh", g->retail);
    add_num(pub, "voll_per_mwh", g->voll);
    add_num(pub, "default_penalty_per_mwh", g->penalty);
    cJSON *cps = cJSON_AddArrayToObject(pub, "counterparties");
    for (int j = 0; cps && j < g->k; j++) {
        int o = g->nbr[i * g->k + j];
        cJSON *c = cJSON_CreateObject();
        if (!c)
            break;
        cJSON_AddItemToArray(cps, c);
        cJSON_AddNumberToObject(c, "agent", o);
        if (phase > BZ_ELEC_PUBLISH)
            add_num(c, "claimed_surplus_mwh", g->ag[o].claimed_surplus_mwh);
        add_tri(c, "delivered_to_you_last_time", g->delivered_last[i * g->k + j]);
        add_tri(c, "claim_was_truthful_last_turn", g->ag[o].truthful_last);
    }
    if (g->communication && phase > BZ_ELEC_PUBLISH && phase != BZ_ELEC_SETTLE) {
        /* what my counterparties published this turn (bounded by k) */
        cJSON *msgs = cJSON_AddArrayToObject(pub, "messages");
        for (int j = 0; msgs && j < g->k; j++) {
            int o = g->nbr[i * g->k + j];
            const char *text = g->ag[o].publish_message;
            if (!text || !text[0])
                continue;
            cJSON *c = cJSON_CreateObject();
            if (!c)
                break;
            cJSON_AddItemToArray(msgs, c);
            cJSON_AddNumberToObject(c, "from", o);
            cJSON_AddStringToObject(c, "text", text);
        }
    }
    cJSON *inbox = cJSON_AddArrayToObject(pub, "proposals_to_you");
    for (int j = 0; inbox && j < g->n_inbox[i]; j++) {
        int pi = g->inbox[i * g->k + j];
        const struct bz_elec_proposal *p = &g->prop[pi];
        cJSON *c = cJSON_CreateObject();
        if (!c)
            break;
        cJSON_AddItemToArray(inbox, c);
        cJSON_AddNumberToObject(c, "proposal_id", pi);
        cJSON_AddNumberToObject(c, "from", pi);
        /* the side as seen by the receiver */
        cJSON_AddStringToObject(c, "you_would", p->side == BZ_ELEC_SELL ? "buy" : "sell");
        add_num(c, "amount_mwh", p->amount_mwh);
        add_num(c, "price_total", p->price_total);
        add_num(c, "price_per_mwh", p->price_total / p->amount_mwh);
        cJSON_AddStringToObject(c, "status", status_name(p->status));
        if (g->communication && p->message)
            cJSON_AddStringToObject(c, "message", p->message);
    }
    const struct bz_elec_proposal *mp = &g->prop[i];
    if (mp->status != BZ_ELEC_P_NONE) {
        cJSON *c = cJSON_AddObjectToObject(pub, "your_proposal");
        if (c) {
            cJSON_AddNumberToObject(c, "to", mp->to);
            cJSON_AddStringToObject(c, "side", side_name(mp->side));
            add_num(c, "amount_mwh", mp->amount_mwh);
            add_num(c, "price_total", mp->price_total);
            cJSON_AddStringToObject(c, "status", status_name(mp->status));
            if (mp->status >= BZ_ELEC_P_COUNTERED) {
                add_num(c, "counter_amount_mwh", mp->counter_amount_mwh);
                add_num(c, "counter_price_total", mp->counter_price_total);
            }
        }
    }

    add_num(priv, "generation_forecast_mwh", a->gen_fc_mwh);
    add_num(priv, "demand_forecast_mwh", a->demand_fc_mwh);
    add_num(priv, "next_hour_demand_forecast_mwh", a->next_demand_fc_mwh);
    add_num(priv, "max_generation_mwh", a->max_gen_mwh);
    add_num(priv, "capacity_mw", a->capacity_mw);
    add_num(priv, "storage_level_mwh", a->storage_mwh);
    add_num(priv, "storage_capacity_mwh", a->storage_cap_mwh);
    add_num(priv, "storage_efficiency", g->eff);
    add_num(priv, "cash", a->cash);
    add_num(priv, "cumulative_profit", a->cum_profit);
    add_num(priv, "contract_bought_mwh", a->c_bought);
    add_num(priv, "contract_sold_mwh", a->c_sold);
    add_num(priv, "contract_paid", a->c_paid);
    add_num(priv, "contract_received", a->c_recv);
    add_num(priv, "can_sell_mwh", bz_elec_sell_room(g, i));
    add_num(priv, "can_buy_mwh", bz_elec_buy_room(g, i));
    return BZ_OK;
}

#define SCHEMA_HEAD "{\"type\":\"object\",\"additionalProperties\":false,"
static const char *const schemas[2][BZ_ELEC_N_PHASES] = {
    /* communication off: no message fields */
    {SCHEMA_HEAD "\"required\":[\"claimed_surplus_mwh\"],\"properties\":{"
                 "\"claimed_surplus_mwh\":{\"type\":\"number\"}}}",
     SCHEMA_HEAD "\"required\":[\"counterparty\",\"side\",\"amount_mwh\",\"price_total\"],"
                 "\"properties\":{\"counterparty\":{\"type\":\"integer\",\"minimum\":-1},"
                 "\"side\":{\"type\":\"string\",\"enum\":[\"buy\",\"sell\"]},"
                 "\"amount_mwh\":{\"type\":\"number\",\"minimum\":0},"
                 "\"price_total\":{\"type\":\"number\",\"minimum\":0}}}",
     SCHEMA_HEAD "\"required\":[\"answers\"],\"properties\":{\"answers\":{\"type\":\"array\","
                 "\"items\":{\"type\":\"object\",\"additionalProperties\":false,"
                 "\"required\":[\"proposal_id\",\"decision\",\"counter_amount_mwh\","
                 "\"counter_price_total\"],\"properties\":{"
                 "\"proposal_id\":{\"type\":\"integer\"},"
                 "\"decision\":{\"type\":\"string\",\"enum\":[\"accept\",\"reject\",\"counter\"]},"
                 "\"counter_amount_mwh\":{\"type\":\"number\",\"minimum\":0},"
                 "\"counter_price_total\":{\"type\":\"number\",\"minimum\":0}}}}}}",
     SCHEMA_HEAD "\"required\":[\"accept\"],\"properties\":{\"accept\":{\"type\":\"boolean\"}}}",
     SCHEMA_HEAD "\"required\":[\"side\",\"amount_mwh\",\"limit_price_per_mwh\"],"
                 "\"properties\":{\"side\":{\"type\":\"string\",\"enum\":[\"buy\",\"sell\","
                 "\"none\"]},\"amount_mwh\":{\"type\":\"number\",\"minimum\":0},"
                 "\"limit_price_per_mwh\":{\"type\":\"number\",\"minimum\":0}}}",
     NULL},
    /* communication on */
    {SCHEMA_HEAD "\"required\":[\"claimed_surplus_mwh\",\"message\"],\"properties\":{"
                 "\"claimed_surplus_mwh\":{\"type\":\"number\"},"
                 "\"message\":{\"type\":\"string\",\"maxLength\":1000}}}",
     SCHEMA_HEAD "\"required\":[\"counterparty\",\"side\",\"amount_mwh\",\"price_total\","
                 "\"message\"],\"properties\":{\"counterparty\":{\"type\":\"integer\","
                 "\"minimum\":-1},\"side\":{\"type\":\"string\",\"enum\":[\"buy\",\"sell\"]},"
                 "\"amount_mwh\":{\"type\":\"number\",\"minimum\":0},"
                 "\"price_total\":{\"type\":\"number\",\"minimum\":0},"
                 "\"message\":{\"type\":\"string\",\"maxLength\":1000}}}",
     NULL, NULL, NULL, NULL},
};

static cJSON *action_schema(const struct bz_game *g, int phase)
{
    if (phase < 0 || phase >= BZ_ELEC_SETTLE)
        return NULL;
    int c = g && g->communication;
    return cJSON_Parse(schemas[c][phase] ? schemas[c][phase] : schemas[0][phase]);
}

static int get_number(const cJSON *reply, const char *key, double *v, struct bz_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(reply, key);
    if (!cJSON_IsNumber(it))
        return bz_err_set(err, BZ_EINVAL, "%s: expected a number%s", key,
                          it ? "" : " (missing)");
    *v = it->valuedouble;
    if (!isfinite(*v))
        return bz_err_set(err, BZ_EINVAL, "%s: expected a finite number", key);
    return BZ_OK;
}

static int get_side(const cJSON *reply, const char *key, int allow_none, int *side,
                    struct bz_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(reply, key);
    const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
    if (s && strcmp(s, "buy") == 0)
        *side = BZ_ELEC_BUY;
    else if (s && strcmp(s, "sell") == 0)
        *side = BZ_ELEC_SELL;
    else if (s && allow_none && strcmp(s, "none") == 0)
        *side = BZ_ELEC_NONE;
    else
        return bz_err_set(err, BZ_EINVAL, "%s: expected one of \"buy\", \"sell\"%s", key,
                          allow_none ? ", \"none\"" : "");
    return BZ_OK;
}

/* Check that reply has only the schema's keys. */
static int only_keys(const cJSON *reply, const char *const *keys, struct bz_err *err,
                     const char *where)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, reply)
    {
        int ok = 0;
        for (const char *const *k = keys; *k && !ok; k++)
            ok = it->string && strcmp(it->string, *k) == 0;
        if (!ok)
            return bz_err_set(err, BZ_EINVAL, "%s%s: unexpected field", where,
                              it->string ? it->string : "?");
    }
    return BZ_OK;
}

static int get_message(struct bz_game *g, const cJSON *reply, const char **msg, struct bz_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(reply, "message");
    *msg = NULL;
    if (!it)
        return BZ_OK;
    if (!cJSON_IsString(it))
        return bz_err_set(err, BZ_EINVAL, "message: expected a string");
    if (!g->communication || !it->valuestring[0])
        return BZ_OK; /* no free text travels with communication off */
    size_t len = strlen(it->valuestring);
    *msg = bz_records_strndup(g->rec, it->valuestring, len > BZ_ELEC_MSG_MAX ? BZ_ELEC_MSG_MAX : len);
    return BZ_OK;
}

static int parse_reply(struct bz_game *g, int i, int phase, const cJSON *reply,
                       struct bz_elec_action *x, struct bz_err *err)
{
    int rc;
    if (!cJSON_IsObject(reply))
        return bz_err_set(err, BZ_EINVAL, "reply: expected a JSON object");
    switch (phase) {
    case BZ_ELEC_PUBLISH: {
        static const char *const keys[] = {"claimed_surplus_mwh", "message", NULL};
        if ((rc = only_keys(reply, keys, err, "")) ||
            (rc = get_number(reply, "claimed_surplus_mwh", &x->claimed_surplus_mwh, err)))
            return rc;
        return get_message(g, reply, &x->message, err);
    }
    case BZ_ELEC_PROPOSE: {
        static const char *const keys[] = {"counterparty", "side", "amount_mwh", "price_total",
                                           "message", NULL};
        if ((rc = only_keys(reply, keys, err, "")))
            return rc;
        const cJSON *cp = cJSON_GetObjectItemCaseSensitive(reply, "counterparty");
        if (!cJSON_IsNumber(cp) || cp->valuedouble != floor(cp->valuedouble))
            return bz_err_set(err, BZ_EINVAL,
                              "counterparty: expected an integer (an agent id from "
                              "counterparties, or -1 for no proposal)");
        if (cp->valuedouble < -1 || cp->valuedouble >= g->n)
            return bz_err_set(err, BZ_EINVAL,
                              "counterparty: %.0f is not one of your counterparties (or -1)",
                              cp->valuedouble);
        x->to = (int32_t)cp->valuedouble;
        if (x->to == -1)
            return BZ_OK;
        if ((rc = get_side(reply, "side", 0, &x->side, err)) ||
            (rc = get_number(reply, "amount_mwh", &x->amount_mwh, err)) ||
            (rc = get_number(reply, "price_total", &x->price_total, err)))
            return rc;
        return get_message(g, reply, &x->message, err);
    }
    case BZ_ELEC_RESPOND: {
        static const char *const keys[] = {"answers", NULL};
        static const char *const akeys[] = {"proposal_id", "decision", "counter_amount_mwh",
                                            "counter_price_total", NULL};
        if ((rc = only_keys(reply, keys, err, "")))
            return rc;
        const cJSON *ans = cJSON_GetObjectItemCaseSensitive(reply, "answers");
        if (!cJSON_IsArray(ans))
            return bz_err_set(err, BZ_EINVAL, "answers: expected an array of answers");
        uint8_t seen[BZ_ELEC_K] = {0};
        const cJSON *a;
        int idx = 0;
        cJSON_ArrayForEach(a, ans)
        {
            char where[32];
            snprintf(where, sizeof where, "answers[%d].", idx);
            if (!cJSON_IsObject(a))
                return bz_err_set(err, BZ_EINVAL, "answers[%d]: expected an object", idx);
            if ((rc = only_keys(a, akeys, err, where)))
                return rc;
            const cJSON *pid = cJSON_GetObjectItemCaseSensitive(a, "proposal_id");
            int slot = -1;
            if (cJSON_IsNumber(pid))
                for (int j = 0; j < g->n_inbox[i]; j++)
                    if ((double)g->inbox[i * g->k + j] == pid->valuedouble)
                        slot = j;
            if (slot < 0)
                return bz_err_set(err, BZ_EINVAL,
                                  "answers[%d].proposal_id: expected the id of a proposal you "
                                  "received",
                                  idx);
            if (seen[slot]++)
                return bz_err_set(err, BZ_EINVAL,
                                  "answers[%d].proposal_id: proposal %d answered twice", idx,
                                  g->inbox[i * g->k + slot]);
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(a, "decision");
            const char *ds = cJSON_IsString(d) ? d->valuestring : "";
            if (strcmp(ds, "accept") == 0) {
                x->answer[slot] = BZ_ELEC_ACCEPT;
            } else if (strcmp(ds, "reject") == 0) {
                x->answer[slot] = BZ_ELEC_REJECT;
            } else if (strcmp(ds, "counter") == 0) {
                x->answer[slot] = BZ_ELEC_COUNTER;
                const cJSON *ca = cJSON_GetObjectItemCaseSensitive(a, "counter_amount_mwh");
                const cJSON *cpt = cJSON_GetObjectItemCaseSensitive(a, "counter_price_total");
                if (!cJSON_IsNumber(ca) || !(ca->valuedouble > 0) || !isfinite(ca->valuedouble))
                    return bz_err_set(err, BZ_EINVAL,
                                      "answers[%d].counter_amount_mwh: expected a number > 0",
                                      idx);
                if (!cJSON_IsNumber(cpt) || !(cpt->valuedouble >= 0) ||
                    !isfinite(cpt->valuedouble))
                    return bz_err_set(err, BZ_EINVAL,
                                      "answers[%d].counter_price_total: expected a number >= 0",
                                      idx);
                x->counter_amount_mwh[slot] = ca->valuedouble;
                x->counter_price_total[slot] = cpt->valuedouble;
            } else {
                return bz_err_set(err, BZ_EINVAL,
                                  "answers[%d].decision: expected \"accept\", \"reject\" or "
                                  "\"counter\"",
                                  idx);
            }
            idx++;
        }
        return BZ_OK; /* proposals left unanswered are rejected */
    }
    case BZ_ELEC_CONFIRM: {
        static const char *const keys[] = {"accept", NULL};
        if ((rc = only_keys(reply, keys, err, "")))
            return rc;
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(reply, "accept");
        if (!cJSON_IsBool(acc))
            return bz_err_set(err, BZ_EINVAL, "accept: expected true or false");
        x->accept_counter = cJSON_IsTrue(acc) != 0;
        return BZ_OK;
    }
    case BZ_ELEC_AUCTION: {
        static const char *const keys[] = {"side", "amount_mwh", "limit_price_per_mwh", NULL};
        if ((rc = only_keys(reply, keys, err, "")) ||
            (rc = get_side(reply, "side", 1, &x->order_side, err)))
            return rc;
        if (x->order_side == BZ_ELEC_NONE)
            return BZ_OK;
        if ((rc = get_number(reply, "amount_mwh", &x->order_amount_mwh, err)) ||
            (rc = get_number(reply, "limit_price_per_mwh", &x->order_limit_per_mwh, err)))
            return rc;
        return BZ_OK;
    }
    default:
        return bz_err_set(err, BZ_EINVAL, "phase %s takes no action", phase_names[phase]);
    }
}

static int parse_action(struct bz_game *g, const struct bz_request *r, const cJSON *reply,
                        struct bz_err *err)
{
    struct bz_elec_action x;
    memset(&x, 0, sizeof x);
    x.to = -1;
    int rc = parse_reply(g, r->agent, r->phase, reply, &x, err);
    if (rc)
        return rc;
    x.set = 1;
    g->act[r->agent] = x;
    return BZ_OK;
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
    .observe = observe,
    .action_schema = action_schema,
    .parse_action = parse_action,
};
