/* grid: expands a validated spec into game configs with stable ids and paired
 * seeds. Everything a config points to is built once at create; decoding a
 * game id allocates nothing (the scheduler calls it for every game).
 *
 * Game ids: the grid's axes (every parameter given in "grid", "lineup" when
 * grid.lineup is given, and "llm.memory_turns" when the grid lists it) sorted
 * by name (strcmp), values in the order the
 * spec lists them, the repetition last:
 *     game_id = ((i_0 * n_1 + i_1) * n_2 + ... + i_{k-1}) * repetitions + rep
 * so the repetition varies fastest, then the alphabetically last axis, and the
 * alphabetically first axis slowest. Reordering keys in the spec changes
 * neither ids nor seeds; reordering the values of one list changes ids only.
 *
 * Seeds (bz_hash_* from rng.h; each parameter enters as hash(name) combined
 * with hash(value), parameters in name order, so fixed, default and one-value
 * grid lists give the same seeds):
 *     env_seed = H("bazaar.env", sweep seed, every env=1 parameter, rep)
 *     seed     = H("bazaar.game", sweep seed, every parameter, lineup name,
 *                   llm.memory_turns when not 0, rep)
 * env_seed leaves out communication, the lineup, llm.memory_turns and every
 * env=0 parameter, so one market realisation is played with communication on
 * and off, with and without memory, and by every lineup (DESIGN.md "Sweep
 * spec": paired seeds). Every draw comes from
 * env_seed: the environment's, and each seat's agent stream from (env_seed,
 * seat, agent label) (match.c), so seed is an id that draws nothing. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/rng.h"
#include "spec_internal.h"

#ifndef BZ_SOURCE_DIR
#define BZ_SOURCE_DIR "."
#endif

#define MAX_AXES (BZ_MAX_PARAMS + 2)     /* the parameters, lineup, llm.memory_turns */
#define MAX_FILL_BYTES ((size_t)1 << 30) /* cap on the filled lineups' memory */
#define LINEUP_AXIS (-1)
#define MEMORY_AXIS (-2) /* llm.memory_turns */

struct grid_axis {
    int param; /* index of ops->params, LINEUP_AXIS or MEMORY_AXIS */
    int n;
    const char *name;
};

struct bz_grid {
    const struct bz_spec *s;
    int64_t count;
    int n_axes;
    struct grid_axis axes[MAX_AXES];
    int n_sorted;
    int sorted[BZ_MAX_PARAMS];           /* param indices in name order */
    uint64_t *value_hash[BZ_MAX_PARAMS]; /* per param, per value: H(name, value) */
    uint64_t env_base, seed_base;        /* H(tag, sweep seed) */
    uint64_t *lineup_hash;               /* per lineup axis entry */
    uint8_t *lineup_llm;                 /* per lineup axis entry: 1 when it names a model */
    uint64_t *memory_hash;               /* per llm.memory_turns value: H(name, value) */
    struct bz_agent_spec **fill;         /* per lineup axis entry: max n_agents agents */
    char *data_dir;
    struct bz_game_config base; /* fixed and default values */
};

static int by_param_name(const void *a, const void *b, const struct bz_game_ops *ops)
{
    return strcmp(ops->params[*(const int *)a].name, ops->params[*(const int *)b].name);
}

/* Insertion sorts: at most 33 entries, and qsort has no context argument. */
static void sort_params(int *idx, int n, const struct bz_game_ops *ops)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && by_param_name(&idx[j - 1], &idx[j], ops) > 0; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

static void sort_axes(struct grid_axis *ax, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(ax[j - 1].name, ax[j].name) > 0; j--) {
            struct grid_axis t = ax[j];
            ax[j] = ax[j - 1];
            ax[j - 1] = t;
        }
}

static uint64_t value_hash(const struct bz_param_desc *d, const struct bz_spec_param *p, int i)
{
    uint64_t v = d->kind == BZ_PARAM_STR ? bz_hash_str(p->str[i]) : bz_hash_f64(p->num[i]);
    return bz_hash_combine(bz_hash_str(d->name), v);
}

int bz_grid_create(const struct bz_spec *s, struct bz_grid **out, struct bz_err *err)
{
    const struct bz_game_ops *ops = s->ops;
    int rc = BZ_OK;
    struct bz_grid *g = calloc(1, sizeof *g);
    *out = NULL;
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "%s: out of memory expanding the grid", s->origin);
    g->s = s;

    /* axes and the id space */
    for (size_t p = 0; p < ops->n_params; p++) {
        g->sorted[g->n_sorted++] = (int)p;
        if (s->params[p].mode == BZ_SPEC_GRID)
            g->axes[g->n_axes++] = (struct grid_axis){(int)p, s->params[p].n, ops->params[p].name};
    }
    if (s->lineup_in_grid)
        g->axes[g->n_axes++] = (struct grid_axis){LINEUP_AXIS, s->n_lineup_axis, "lineup"};
    if (s->memory.mode == BZ_SPEC_GRID)
        g->axes[g->n_axes++] = (struct grid_axis){MEMORY_AXIS, s->memory.n, BZ_SPEC_MEMORY_KEY};
    sort_params(g->sorted, g->n_sorted, ops);
    sort_axes(g->axes, g->n_axes);
    g->count = s->repetitions;
    for (int a = 0; a < g->n_axes; a++) {
        if (g->count > INT64_MAX / g->axes[a].n) {
            rc = bz_err_set(err, BZ_EINVAL, "%s: grid: more than 2^63 games", s->origin);
            goto out;
        }
        g->count *= g->axes[a].n;
    }

    /* hashes of every value, so that a config costs a few combines */
    for (size_t p = 0; p < ops->n_params; p++) {
        const struct bz_spec_param *sp = &s->params[p];
        if (!(g->value_hash[p] = malloc((size_t)sp->n * sizeof *g->value_hash[p])))
            goto nomem;
        for (int i = 0; i < sp->n; i++)
            g->value_hash[p][i] = value_hash(&ops->params[p], sp, i);
    }
    if (!(g->memory_hash = malloc((size_t)s->memory.n * sizeof *g->memory_hash)))
        goto nomem;
    for (int i = 0; i < s->memory.n; i++)
        g->memory_hash[i] =
            bz_hash_combine(bz_hash_str(BZ_SPEC_MEMORY_KEY), bz_hash_f64(s->memory.num[i]));
    g->env_base = bz_hash_combine(bz_hash_str("bazaar.env"), bz_hash64(s->seed));
    g->seed_base = bz_hash_combine(bz_hash_str("bazaar.game"), bz_hash64(s->seed));

    /* lineups filled cyclically to the largest n_agents: a prefix of n agents
     * is then the fill for n, one array serves every n_agents value */
    const struct bz_spec_param *na = &s->params[s->idx_n_agents];
    size_t max_n = 1;
    for (int i = 0; i < na->n; i++)
        if ((size_t)na->num[i] > max_n)
            max_n = (size_t)na->num[i];
    if ((size_t)s->n_lineup_axis * max_n > MAX_FILL_BYTES / sizeof(struct bz_agent_spec)) {
        rc = bz_err_set(err, BZ_ENOMEM,
                        "%s: %d lineups x n_agents %zu exceed the %zu MiB cap on agent tables",
                        s->origin, s->n_lineup_axis, max_n, MAX_FILL_BYTES >> 20);
        goto out;
    }
    g->lineup_hash = calloc((size_t)s->n_lineup_axis, sizeof *g->lineup_hash);
    g->fill = calloc((size_t)s->n_lineup_axis, sizeof *g->fill);
    g->lineup_llm = calloc((size_t)s->n_lineup_axis, sizeof *g->lineup_llm);
    if (!g->lineup_hash || !g->fill || !g->lineup_llm)
        goto nomem;
    for (int j = 0; j < s->n_lineup_axis; j++) {
        const struct bz_spec_lineup *l = &s->lineups[s->lineup_axis[j]];
        g->lineup_hash[j] = bz_hash_combine(bz_hash_str("lineup"), bz_hash_str(l->name));
        /* every agent of a lineup is in any fill (n_agents >= its length) */
        for (int i = 0; i < l->n; i++)
            g->lineup_llm[j] |= l->agents[i].kind == BZ_AGENT_LLM;
        if (!(g->fill[j] = malloc(max_n * sizeof *g->fill[j])))
            goto nomem;
        for (size_t i = 0; i < max_n; i++)
            g->fill[j][i] = l->agents[i % (size_t)l->n];
    }

    const char *dd = getenv("BAZAAR_DATA_DIR");
    if (!(g->data_dir = strdup(dd && *dd ? dd : BZ_SOURCE_DIR "/data")))
        goto nomem;

    /* the template every config starts from */
    g->base.ops = ops;
    g->base.data_dir = g->data_dir;
    g->base.transcript = NULL;
    for (size_t p = 0; p < ops->n_params; p++) {
        g->base.num[p] = s->params[p].num[0];
        g->base.str[p] = s->params[p].str ? s->params[p].str[0] : NULL;
    }
    *out = g;
    return BZ_OK;
nomem:
    rc = bz_err_set(err, BZ_ENOMEM, "%s: out of memory expanding the grid", s->origin);
out:
    bz_grid_destroy(g);
    return rc;
}

void bz_grid_destroy(struct bz_grid *g)
{
    if (!g)
        return;
    for (int j = 0; g->fill && j < g->s->n_lineup_axis; j++)
        free(g->fill[j]);
    free(g->fill);
    free(g->lineup_hash);
    free(g->lineup_llm);
    free(g->memory_hash);
    for (int p = 0; p < BZ_MAX_PARAMS; p++)
        free(g->value_hash[p]);
    free(g->data_dir);
    free(g);
}

int64_t bz_grid_count(const struct bz_grid *g)
{
    return g->count;
}

int bz_grid_resolve_agents(struct bz_grid *g, bz_grid_agent_fill_fn fill, void *ctx,
                           struct bz_err *err)
{
    size_t max_n = 1;
    const struct bz_spec_param *na = &g->s->params[g->s->idx_n_agents];
    for (int i = 0; i < na->n; i++)
        if ((size_t)na->num[i] > max_n)
            max_n = (size_t)na->num[i];
    for (int j = 0; j < g->s->n_lineup_axis; j++) {
        int rc = fill(ctx, g->fill[j], max_n, err);
        if (rc)
            return rc;
    }
    return BZ_OK;
}

const struct bz_spec *bz_grid_spec(const struct bz_grid *g)
{
    return g->s;
}

/* Decode game_id into value indices per param (vi), the lineup entry and the
 * repetition. */
static void decode(const struct bz_grid *g, int64_t game_id, int *vi, int *lineup, int *memory,
                   int *rep)
{
    int64_t rem = game_id;
    *rep = (int)(rem % g->s->repetitions);
    rem /= g->s->repetitions;
    memset(vi, 0, sizeof(int) * BZ_MAX_PARAMS);
    *lineup = 0;
    *memory = 0;
    for (int a = g->n_axes - 1; a >= 0; a--) {
        int i = (int)(rem % g->axes[a].n);
        rem /= g->axes[a].n;
        if (g->axes[a].param == LINEUP_AXIS)
            *lineup = i;
        else if (g->axes[a].param == MEMORY_AXIS)
            *memory = i;
        else
            vi[g->axes[a].param] = i;
    }
}

int bz_grid_config(const struct bz_grid *g, int64_t game_id, struct bz_game_config *cfg,
                   struct bz_err *err)
{
    const struct bz_spec *s = g->s;
    const struct bz_game_ops *ops = s->ops;
    int vi[BZ_MAX_PARAMS], li, mi, rep;
    if (game_id < 0 || game_id >= g->count)
        return bz_err_set(err, BZ_EINVAL, "%s: game id %" PRId64 " outside [0, %" PRId64 ")",
                          s->origin, game_id, g->count);
    decode(g, game_id, vi, &li, &mi, &rep);
    *cfg = g->base;
    for (int a = 0; a < g->n_axes; a++) {
        int p = g->axes[a].param;
        if (p < 0)
            continue;
        cfg->num[p] = s->params[p].num[vi[p]];
        if (s->params[p].str)
            cfg->str[p] = s->params[p].str[vi[p]];
    }
    uint64_t env = g->env_base, seed = g->seed_base;
    for (int k = 0; k < g->n_sorted; k++) {
        int p = g->sorted[k];
        uint64_t h = g->value_hash[p][vi[p]];
        if (ops->params[p].env)
            env = bz_hash_combine(env, h);
        seed = bz_hash_combine(seed, h);
    }
    seed = bz_hash_combine(seed, g->lineup_hash[li]);
    int memory = (int)s->memory.num[mi];
    if (memory != 0) /* so that a spec without memory keeps its seeds */
        seed = bz_hash_combine(seed, g->memory_hash[mi]);
    cfg->env_seed = bz_hash_combine(env, bz_hash64((uint64_t)rep));
    cfg->seed = bz_hash_combine(seed, bz_hash64((uint64_t)rep));
    cfg->game_id = game_id;
    cfg->repetition = rep;
    cfg->n_agents = (int)cfg->num[s->idx_n_agents];
    cfg->communication = cfg->num[s->idx_communication] != 0;
    cfg->memory_turns = g->lineup_llm[li] ? memory : 0;
    cfg->agents = g->fill[li];
    cfg->lineup_name = s->lineups[s->lineup_axis[li]].name;
    return BZ_OK;
}

/* "name=value" of param p's value i. */
static int format_value(char *buf, size_t n, const struct bz_spec *s, int p, int i)
{
    const struct bz_param_desc *d = &s->ops->params[p];
    const struct bz_spec_param *sp = &s->params[p];
    switch (d->kind) {
    case BZ_PARAM_BOOL:
        return snprintf(buf, n, "%s=%s", d->name, sp->num[i] != 0 ? "true" : "false");
    case BZ_PARAM_INT: return snprintf(buf, n, "%s=%.0f", d->name, sp->num[i]);
    case BZ_PARAM_STR: return snprintf(buf, n, "%s=\"%s\"", d->name, sp->str[i]);
    default: return snprintf(buf, n, "%s=%.10g", d->name, sp->num[i]);
    }
}

/* Append to buf (capacity n) at *used; *used counts what would be written. */
static void append(char *buf, size_t n, size_t *used, const char *text)
{
    size_t len = strlen(text);
    if (*used < n) {
        size_t room = n - *used - 1;
        size_t k = len < room ? len : room;
        memcpy(buf + *used, text, k);
        buf[*used + k] = '\0';
    }
    *used += len;
}

int bz_grid_describe(const struct bz_grid *g, int64_t game_id, char *buf, size_t n)
{
    const struct bz_spec *s = g->s;
    struct bz_game_config cfg;
    int vi[BZ_MAX_PARAMS], li, mi, rep;
    char item[4200];
    size_t used = 0;
    if (n)
        buf[0] = '\0';
    if (bz_grid_config(g, game_id, &cfg, NULL))
        return BZ_EINVAL;
    decode(g, game_id, vi, &li, &mi, &rep);
    snprintf(item, sizeof item, "game %" PRId64 ":", game_id);
    append(buf, n, &used, item);
    for (int a = 0; a < g->n_axes; a++) {
        if (g->axes[a].param == LINEUP_AXIS)
            continue;
        if (g->axes[a].param == MEMORY_AXIS) {
            snprintf(item, sizeof item, " %s=%.0f", BZ_SPEC_MEMORY_KEY, s->memory.num[mi]);
            append(buf, n, &used, item);
            continue;
        }
        item[0] = ' ';
        format_value(item + 1, sizeof item - 1, s, g->axes[a].param, vi[g->axes[a].param]);
        append(buf, n, &used, item);
    }
    snprintf(item, sizeof item, " lineup=%s rep=%d env_seed=%016" PRIx64 " seed=%016" PRIx64,
             cfg.lineup_name, rep, cfg.env_seed, cfg.seed);
    append(buf, n, &used, item);
    return BZ_OK;
}

int bz_grid_check(const struct bz_grid *g, struct bz_err *err)
{
    const struct bz_spec *s = g->s;
    const struct bz_game_ops *ops = s->ops;
    if (!ops->check)
        return BZ_OK;
    /* radix of every axis in the id; only env and string axes are walked (a
     * string's values are the game's to check), the others stay 0 */
    int64_t stride[MAX_AXES];
    int idx[MAX_AXES] = {0};
    int64_t st = s->repetitions;
    for (int a = g->n_axes - 1; a >= 0; a--) {
        stride[a] = st;
        st *= g->axes[a].n;
    }
    for (;;) {
        int64_t id = 0;
        for (int a = 0; a < g->n_axes; a++)
            id += idx[a] * stride[a];
        struct bz_game_config cfg;
        int rc = bz_grid_config(g, id, &cfg, err);
        if (rc)
            return rc;
        if ((rc = ops->check(&cfg, err)) != BZ_OK) {
            char where[1024], item[4200];
            size_t used = 0;
            where[0] = '\0';
            for (int a = 0; a < g->n_axes; a++) {
                int p = g->axes[a].param;
                if (p < 0 || (!ops->params[p].env && ops->params[p].kind != BZ_PARAM_STR))
                    continue;
                item[0] = used ? ' ' : '\0';
                format_value(item + (used ? 1 : 0), sizeof item - 1, s, p, idx[a]);
                append(where, sizeof where, &used, item);
            }
            if (err && err->code == BZ_OK)
                bz_err_set(err, rc, "check failed");
            if (used)
                bz_err_prefix(err, "%s: grid %s", s->origin, where);
            else
                bz_err_prefix(err, "%s", s->origin);
            return rc;
        }
        /* next combination of the env axes, odometer style */
        int a = g->n_axes - 1;
        for (; a >= 0; a--) {
            int p = g->axes[a].param;
            if (p < 0 || (!ops->params[p].env && ops->params[p].kind != BZ_PARAM_STR))
                continue;
            if (++idx[a] < g->axes[a].n)
                break;
            idx[a] = 0;
        }
        if (a < 0)
            return BZ_OK;
    }
}
