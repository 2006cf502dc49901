/* records: growable row tables and a string arena per game. Rows are kept as
 * raw bytes laid out as the C row struct, so the writer can hand them to HDF5
 * without a copy. Never does I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/records.h"

#define BZ_STRBLOCK_MIN 4096

struct bz_strblock {
    struct bz_strblock *next;
    size_t used, cap;
    char data[];
};

void bz_records_init(struct bz_records *rec)
{
    memset(rec, 0, sizeof *rec);
}

static void free_strings(struct bz_strblock *b)
{
    while (b) {
        struct bz_strblock *next = b->next;
        free(b);
        b = next;
    }
}

void bz_records_cleanup(struct bz_records *rec)
{
    if (!rec)
        return;
    for (size_t i = 0; i < rec->n_tables; i++)
        free(rec->tables[i].data);
    free_strings(rec->strings);
    memset(rec, 0, sizeof *rec);
}

void bz_records_drop_rows(struct bz_records *rec)
{
    for (size_t i = 0; i < rec->n_tables; i++)
        rec->tables[i].n_rows = 0;
    rec->row_bytes = 0;
}

void bz_records_reset(struct bz_records *rec)
{
    bz_records_drop_rows(rec);
    /* keep the newest (largest) block, free the rest */
    if (rec->strings) {
        free_strings(rec->strings->next);
        rec->strings->next = NULL;
        rec->strings->used = 0;
    }
}

static struct bz_rowbuf *table_for(struct bz_records *rec, const struct bz_table_desc *desc)
{
    for (size_t i = 0; i < rec->n_tables; i++)
        if (rec->tables[i].desc == desc)
            return &rec->tables[i];
    if (rec->n_tables == BZ_RECORDS_MAX_TABLES)
        return NULL;
    struct bz_rowbuf *t = &rec->tables[rec->n_tables++];
    memset(t, 0, sizeof *t);
    t->desc = desc;
    return t;
}

void *bz_records_add(struct bz_records *rec, const struct bz_table_desc *desc)
{
    struct bz_rowbuf *t = table_for(rec, desc);
    if (!t)
        return NULL;
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? 2 * t->cap_rows : 64;
        unsigned char *data = realloc(t->data, cap * desc->row_size);
        if (!data)
            return NULL;
        t->data = data;
        t->cap_rows = cap;
    }
    void *row = t->data + t->n_rows * desc->row_size;
    memset(row, 0, desc->row_size);
    t->n_rows++;
    rec->row_bytes += desc->row_size;
    if (rec->row_bytes > rec->max_row_bytes)
        rec->max_row_bytes = rec->row_bytes;
    return row;
}

const char *bz_records_strndup(struct bz_records *rec, const char *s, size_t n)
{
    if (!s) {
        s = "";
        n = 0;
    }
    struct bz_strblock *b = rec->strings;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > BZ_STRBLOCK_MIN ? n + 1 : BZ_STRBLOCK_MIN;
        if (b && cap < 2 * b->cap)
            cap = 2 * b->cap;
        struct bz_strblock *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        rec->strings = b = nb;
    }
    char *dst = b->data + b->used;
    memcpy(dst, s, n);
    dst[n] = '\0';
    b->used += n + 1;
    return dst;
}

const char *bz_records_strdup(struct bz_records *rec, const char *s)
{
    return bz_records_strndup(rec, s, s ? strlen(s) : 0);
}

const struct bz_rowbuf *bz_records_find(const struct bz_records *rec,
                                        const struct bz_table_desc *desc)
{
    for (size_t i = 0; i < rec->n_tables; i++)
        if (rec->tables[i].desc == desc)
            return &rec->tables[i];
    return NULL;
}

int bz_records_check_width(const struct bz_table_desc *desc, const struct bz_column *col,
                           const char *value, struct bz_err *err)
{
    if (col->type != BZ_COL_STR || col->width == 0 || !value)
        return BZ_OK;
    size_t len = strnlen(value, col->width + 1);
    if (len <= col->width)
        return BZ_OK;
    return bz_err_set(err, BZ_EINVAL,
                      "table %s column %s holds at most %zu bytes; \"%.40s...\" (%zu bytes) "
                      "does not fit: shorten it",
                      desc->path, col->name, col->width, value, strlen(value));
}
