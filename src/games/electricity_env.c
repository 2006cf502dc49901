/* electricity_env: the electricity game's environment: the hourly shape of
 * load, availability and price (profile CSV or EIA demand, cached by file and
 * respondent), the companies and the counterparty ring drawn at create, and
 * each turn's realisations and forecasts. All draws come from env_seed
 * through streams named in electricity_internal.h; never
 * changes a draw's order. Reads data files at create/check only. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/eia.h"
#include "bazaar/file.h"
#include "games/electricity_internal.h"

#ifndef BZ_SOURCE_DIR
#define BZ_SOURCE_DIR "."
#endif

/* ---- configuration and data --------------------------------------------- */

static const char *str_param(const struct bz_game_config *cfg, int i)
{
    const char *s = cfg->str[i];
    return s ? s : bz_electricity_ops.params[i].def_str;
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
    /* read whole through the capped reader: a FIFO, a device or a huge
     * file is refused before any read (never a hang) */
    char *text = NULL;
    int rc = bz_file_load(path, (size_t)1 << 20, "profile", &text, NULL, err);
    if (rc)
        return rc;
    int row = 0, lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
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
        if (line[0] == '\0' || line[0] == '\r')
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
        rc =
            bz_err_set(err, BZ_EINVAL, "profile: %s: expected 24 hourly rows, found %d", path, row);
out:
    free(text);
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

int bz_elec_load_shape(const struct bz_game_config *cfg, int *n_out, double **load_out,
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

/* qsort has no context argument; the process is single-threaded. */
static const double *sort_key;

static int by_cost(const void *pa, const void *pb)
{
    int a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    double ca = sort_key[a], cb = sort_key[b];
    if (ca != cb)
        return ca < cb ? -1 : 1;
    return (a > b) - (a < b);
}

/* Heterogeneous companies from env_seed, scaled so that expected generation
 * over the game's turns / expected demand == supply_ratio exactly (the noise has
 * mean zero: 1 + volatility x U(-1, 1)). */
void bz_elec_draw_companies(struct bz_game *g)
{
    struct bz_rng r;
    bz_rng_init(&r, g->env_seed, BZ_ELEC_RNG_AGENTS);
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
        a->storage_start_mwh = a->storage_mwh;
        sum_gen += a->capacity_mw * mean_avail;
        sum_dem += a->base_demand_mwh * mean_load;
    }
    double scale = sum_gen > 0 ? g->supply_ratio * sum_dem / sum_gen : 0;
    for (int i = 0; i < g->n; i++)
        g->ag[i].capacity_mw *= scale;
    /* the merit order: its own stream, so the draws above are unchanged */
    bz_rng_init(&r, g->env_seed, BZ_ELEC_RNG_COSTS);
    for (int i = 0; i < g->n; i++) {
        g->ag[i].cost_per_mwh = g->base_price * (0.4 + 1.2 * bz_rng_uniform(&r));
        g->tmp[i] = g->ag[i].cost_per_mwh; /* sort keys in a small array */
        g->merit[i] = i;
    }
    sort_key = g->tmp;
    qsort(g->merit, (size_t)g->n, sizeof *g->merit, by_cost);
    sort_key = NULL;
    for (int k = 0; k < g->n; k++) {
        g->rank[g->merit[k]] = k;
        g->merit_cost[k] = g->tmp[g->merit[k]];
    }
}

/* Counterparties: neighbours at ring distance 1..3 on a random permutation
 * (env_seed), so the relation is symmetric and every agent has k of them;
 * with N <= 7 everyone else. */
void bz_elec_draw_ring(struct bz_game *g)
{
    int n = g->n, k = g->k;
    int32_t *perm = g->perm, *pos = g->ring_pos;
    for (int i = 0; i < n; i++)
        perm[i] = i;
    struct bz_rng r;
    bz_rng_init(&r, g->env_seed, BZ_ELEC_RNG_RING);
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

/* ---- environment of a turn ----------------------------------------------- */

static double u11(struct bz_rng *r)
{
    return 2 * bz_rng_uniform(r) - 1;
}

/* Agent i's realised generation and demand at turn t and the forecasts an
 * agent gets of them: a pure function of (env_seed, t, i). The noise mixes a
 * common (weather) and an own shock, both U(-1, 1); forecast errors are
 * U(-1/2, 1/2) x volatility relative to the realisation. */
static void draw_agent_turn(const struct bz_game *g, int t, int i, double cg, double cd,
                            double *gen, double *dem, double *gen_fc, double *dem_fc)
{
    const struct bz_elec_agent *a = &g->ag[i];
    struct bz_rng r;
    bz_rng_init(&r, g->env_seed, bz_hash_combine(BZ_ELEC_RNG_AGENT_TURN, (uint64_t)t));
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
    bz_rng_init(&r, g->env_seed, bz_hash_combine(BZ_ELEC_RNG_COMMON, (uint64_t)t));
    *cg = u11(&r);
    *cd = u11(&r);
    *cp = u11(&r);
}

/* The public reference price: the marginal value of the forecast merit
 * order, as a system operator would compute it from every company's
 * forecasts. Demand is met by generation cheapest first; generation left
 * over charges storage while that is worth more than it costs (efficiency x
 * store_value) and room remains, else it is not generated. The price is the
 * value of the last unit: the cost of the last generator used for demand,
 * raised to what charging is worth when surplus generation goes to storage;
 * when generation falls short, storage (store_value) and then unserved
 * demand (retail + VOLL) set it. */
static double reference_price(const struct bz_game *g, double dem, double store, double room)
{
    double charge_worth = g->eff * g->store_value;
    double price = NAN;
    for (int k = 0; k < g->n; k++) {
        double gen = g->tmp[k], cost = g->merit_cost[k] * g->fuel_factor;
        double left = gen - fmax(0, dem);
        dem -= gen;
        if (dem > 0)
            continue;
        if (isnan(price))
            price = cost;
        if (cost >= charge_worth)
            break;
        /* surplus of this generator goes to storage while room remains */
        room -= fmin(room, left);
        if (room <= 0) {
            price = cost;
            break;
        }
        price = charge_worth;
    }
    if (!isnan(price))
        return price;
    return dem <= store ? g->store_value : g->retail + g->voll;
}

void bz_elec_values(const struct bz_game *g, int i, struct bz_elec_values *v)
{
    const struct bz_elec_agent *a = &g->ag[i];
    double vol = g->volatility;
    v->expected = a->gen_fc_mwh - a->demand_fc_mwh;
    /* forecast errors are within +-volatility/2 of the realisation */
    double e = a->gen_fc_mwh / (1 + 0.5 * vol) - a->demand_fc_mwh * (1 + 0.5 * vol);
    double room = a->storage_cap_mwh - a->storage_mwh;
    double stored = g->eff * g->store_value;
    v->sell_floor = room > 1e-9 && stored > a->cost_now ? stored : a->cost_now;
    if (e > 0) {
        v->position = e;
        if (g->ref_price >= g->store_value) {
            /* the market values energy above a stored MWh's worth: the
             * stored energy is for sale too */
            v->position += a->storage_mwh;
            v->sell_floor = fmax(v->sell_floor, g->store_value);
        }
        v->urgent = 0;
        v->buy_value = fmin(a->cost_now, g->store_value);
    } else {
        v->position = e;
        v->urgent = fmax(0, -e - a->storage_mwh);
        v->buy_value = v->urgent > 0 ? g->retail + g->voll : g->store_value;
    }
}

void bz_elec_begin_turn(struct bz_game *g)
{
    int t = g->turn;
    double cg, cd, cp, cg1, cd1, cp1;
    common_shocks(g, t, &cg, &cd, &cp);
    common_shocks(g, t + 1, &cg1, &cd1, &cp1);
    /* fuel costs move with the profile's price factor and a common shock */
    int h = t % g->n_shape;
    double sum_dem = 0, sum_store = 0, sum_room = 0; /* forecasts, for the reference price */
    g->fuel_factor = g->price_f[h] * (1 + g->volatility * cp);
    for (int i = 0; i < g->n; i++) {
        struct bz_elec_agent *a = &g->ag[i];
        double g1, d1, gf1, df1;
        draw_agent_turn(g, t, i, cg, cd, &a->gen_mwh, &a->demand_mwh, &a->gen_fc_mwh,
                        &a->demand_fc_mwh);
        draw_agent_turn(g, t + 1, i, cg1, cd1, &g1, &d1, &gf1, &df1);
        a->next_demand_fc_mwh = df1;
        a->max_gen_mwh = a->capacity_mw * g->avail[h] * (1 + g->volatility);
        a->max_demand_mwh = a->base_demand_mwh * g->load[h] * (1 + g->volatility);
        a->cost_now = a->cost_per_mwh * g->fuel_factor;
        sum_dem += a->demand_fc_mwh;
        g->tmp[g->rank[i]] = a->gen_fc_mwh;
        sum_store += a->storage_mwh;
        sum_room += fmax(0, a->storage_cap_mwh - a->storage_mwh);
        a->claimed_surplus_mwh = NAN;
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
    g->ref_price = reference_price(g, sum_dem, sum_store, sum_room / g->eff);
    for (int i = 0; i < g->n; i++)
        bz_elec_values(g, i, &g->ag[i].val);
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
