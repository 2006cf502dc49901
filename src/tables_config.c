/* tables_config: the /<game>/config tables, one column per game parameter,
 * built at run time from ops->params so that a new game's knobs become
 * columns with no edit outside the game's files. Owns the descriptors (built
 * once per game and kept for the life of the process). Never does I/O. */
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/tables.h"

struct config_desc {
    struct config_desc *next;
    const struct bz_game_ops *ops;
    struct bz_table_desc desc;
    struct bz_column *cols;
    char *path;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct config_desc *descs; /* never freed: descriptors live as long as the process */

static enum bz_col_type param_col_type(const struct bz_param_desc *p)
{
    switch (p->kind) {
    case BZ_PARAM_NUM: return BZ_COL_F64;
    case BZ_PARAM_INT:
        return p->min >= (double)INT32_MIN && p->max <= (double)INT32_MAX ? BZ_COL_I32 : BZ_COL_I64;
    case BZ_PARAM_BOOL: return BZ_COL_U8;
    case BZ_PARAM_STR: return BZ_COL_STR;
    }
    return BZ_COL_F64;
}

static void col_layout(enum bz_col_type t, size_t *size, size_t *align)
{
    switch (t) {
    case BZ_COL_I32: *size = sizeof(int32_t), *align = alignof(int32_t); return;
    case BZ_COL_I64: *size = sizeof(int64_t), *align = alignof(int64_t); return;
    case BZ_COL_U64: *size = sizeof(uint64_t), *align = alignof(uint64_t); return;
    case BZ_COL_F64: *size = sizeof(double), *align = alignof(double); return;
    case BZ_COL_U8: *size = sizeof(uint8_t), *align = alignof(uint8_t); return;
    case BZ_COL_STR: *size = sizeof(const char *), *align = alignof(const char *); return;
    }
}

static size_t n_measures(const struct bz_game_ops *ops)
{
    size_t n = ops->measures ? ops->n_measures : 0;
    return n < BZ_MAX_MEASURES ? n : BZ_MAX_MEASURES;
}

static struct config_desc *build(const struct bz_game_ops *ops)
{
    struct config_desc *d = calloc(1, sizeof *d);
    size_t len = strlen(ops->name) + sizeof "//config";
    if (!d || !(d->cols = calloc(ops->n_params + n_measures(ops) + 1, sizeof *d->cols)) ||
        !(d->path = malloc(len))) {
        if (d)
            free(d->cols);
        free(d);
        return NULL;
    }
    snprintf(d->path, len, "/%s/config", ops->name);
    d->cols[0] = (struct bz_column){"game_id", BZ_COL_I64, 0, "", "game id", 0, 0};
    size_t off = sizeof(int64_t), max_align = alignof(int64_t);
    for (size_t i = 0; i < ops->n_params; i++) {
        const struct bz_param_desc *p = &ops->params[i];
        enum bz_col_type t = param_col_type(p);
        size_t size, align;
        col_layout(t, &size, &align);
        off = (off + align - 1) / align * align;
        /* string parameters (names, file paths): fixed width, checked
         * before a game is played (bz_tables_check_config) */
        d->cols[i + 1] = (struct bz_column){
            p->name, t, off, "", p->help ? p->help : "", t == BZ_COL_STR ? BZ_CONFIG_STR_WIDTH : 0,
            0};
        off += size;
        if (align > max_align)
            max_align = align;
    }
    for (size_t k = 0; k < n_measures(ops); k++) {
        const struct bz_measure_desc *ms = &ops->measures[k];
        off = (off + alignof(double) - 1) / alignof(double) * alignof(double);
        d->cols[ops->n_params + 1 + k] =
            (struct bz_column){ms->name, BZ_COL_F64, off, ms->unit ? ms->unit : "", ms->doc, 0, 0};
        off += sizeof(double);
    }
    d->ops = ops;
    d->desc.path = d->path;
    d->desc.row_size = (off + max_align - 1) / max_align * max_align;
    d->desc.n_cols = ops->n_params + n_measures(ops) + 1;
    d->desc.cols = d->cols;
    return d;
}

const struct bz_table_desc *bz_tables_config(const struct bz_game_ops *ops)
{
    const struct bz_table_desc *out = NULL;
    pthread_mutex_lock(&lock);
    struct config_desc *d = descs;
    while (d && d->ops != ops)
        d = d->next;
    if (!d && (d = build(ops))) {
        d->next = descs;
        descs = d;
    }
    if (d)
        out = &d->desc;
    pthread_mutex_unlock(&lock);
    return out;
}

static const struct bz_column *column(const struct bz_table_desc *d, const char *name)
{
    for (size_t i = 0; i < d->n_cols; i++)
        if (strcmp(d->cols[i].name, name) == 0)
            return &d->cols[i];
    return NULL;
}

int bz_tables_check_config(const struct bz_game_config *cfg, struct bz_err *err)
{
    int rc;
    const struct bz_game_ops *ops = cfg->ops;
    const struct bz_table_desc *desc = bz_tables_config(ops);
    if (!desc)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    for (size_t i = 0; i < ops->n_params; i++) {
        if (ops->params[i].kind != BZ_PARAM_STR)
            continue;
        const char *s = cfg->str[i] ? cfg->str[i] : ops->params[i].def_str;
        if ((rc = bz_records_check_width(desc, &desc->cols[i + 1], s, err)))
            return rc;
    }
    const struct bz_column *lineup = column(&bz_games_table, "lineup");
    const struct bz_column *policy = column(&bz_agents_table, "policy");
    if (lineup && (rc = bz_records_check_width(&bz_games_table, lineup, cfg->lineup_name, err)))
        return rc;
    for (int i = 0; policy && cfg->agents && i < cfg->n_agents; i++)
        if ((rc = bz_records_check_width(&bz_agents_table, policy, cfg->agents[i].label, err)))
            return rc;
    return BZ_OK;
}

int bz_tables_add_config_row(struct bz_records *rec, const struct bz_game_config *cfg,
                             const double *measures, struct bz_err *err)
{
    const struct bz_game_ops *ops = cfg->ops;
    const struct bz_table_desc *desc = bz_tables_config(ops);
    unsigned char *row = desc ? bz_records_add(rec, desc) : NULL;
    if (!row)
        return bz_err_set(err, BZ_ENOMEM, "out of memory adding the %s/config row of game %lld",
                          ops->name, (long long)cfg->game_id);
    memcpy(row, &cfg->game_id, sizeof cfg->game_id);
    for (size_t i = 0; i < ops->n_params; i++) {
        const struct bz_column *c = &desc->cols[i + 1];
        unsigned char *dst = row + c->offset;
        double v = cfg->num[i];
        switch (c->type) {
        case BZ_COL_F64: memcpy(dst, &v, sizeof v); break;
        case BZ_COL_I32: {
            int32_t x = (int32_t)v;
            memcpy(dst, &x, sizeof x);
            break;
        }
        case BZ_COL_I64: {
            int64_t x = (int64_t)v;
            memcpy(dst, &x, sizeof x);
            break;
        }
        case BZ_COL_U8: {
            uint8_t x = v != 0;
            memcpy(dst, &x, sizeof x);
            break;
        }
        case BZ_COL_STR: {
            const char *s = cfg->str[i] ? cfg->str[i] : ops->params[i].def_str;
            const char *copy = bz_records_strdup(rec, s);
            if (!copy)
                return bz_err_set(err, BZ_ENOMEM, "out of memory adding the %s/config row",
                                  ops->name);
            memcpy(dst, &copy, sizeof copy);
            break;
        }
        case BZ_COL_U64: break; /* no parameter kind maps to it */
        }
    }
    for (size_t k = 0; k < n_measures(ops); k++) {
        double v = measures ? measures[k] : NAN;
        memcpy(row + desc->cols[ops->n_params + 1 + k].offset, &v, sizeof v);
    }
    return BZ_OK;
}
