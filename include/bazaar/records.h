/* records: the in-memory rows a game (and its agents) produce, described by
 * table descriptors that the out module maps onto HDF5 compound types.
 * Knows nothing of HDF5. A finished game's records are written in one go. */
#ifndef BAZAAR_RECORDS_H
#define BAZAAR_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"

enum bz_col_type {
    BZ_COL_I32,  /* int32_t */
    BZ_COL_I64,  /* int64_t */
    BZ_COL_F64,  /* double */
    BZ_COL_U8,   /* uint8_t (flags, booleans) */
    BZ_COL_STR   /* const char * (variable-length UTF-8; NULL written as "") */
};

struct bz_column {
    const char *name; /* snake_case, unit in the name where there is one */
    enum bz_col_type type;
    size_t offset;    /* offsetof(row struct, field) */
};

/* A table: HDF5 path ("/electricity/turns"), the C row struct's size and its
 * columns. Every table's first column is game_id (int64). Descriptors are
 * static const data owned by the module that defines the table. */
struct bz_table_desc {
    const char *path;
    size_t row_size;
    size_t n_cols;
    const struct bz_column *cols;
};

#define BZ_COL(struct_, field_, kind_) \
    { #field_, kind_, offsetof(struct_, field_) }

/* Growable array of rows of one table. */
struct bz_rowbuf {
    const struct bz_table_desc *desc;
    unsigned char *data;
    size_t n_rows;
    size_t cap_rows;
};

#define BZ_RECORDS_MAX_TABLES 16

/* All rows of one game, grouped by table, plus an arena for the strings the
 * rows point to. init/cleanup: caller-owned struct; cleanup frees everything. */
struct bz_records {
    struct bz_rowbuf tables[BZ_RECORDS_MAX_TABLES];
    size_t n_tables;
    struct bz_strblock *strings; /* arena of string copies */
};

void bz_records_init(struct bz_records *rec);
void bz_records_cleanup(struct bz_records *rec);
/* Drop all rows and strings but keep capacity (reuse for the next game). */
void bz_records_reset(struct bz_records *rec);

/* Append a zeroed row to desc's table (created on first use) and return it;
 * NULL only when memory runs out. The pointer is valid until the next add to
 * the same table. */
void *bz_records_add(struct bz_records *rec, const struct bz_table_desc *desc);

/* Copy s into the records' arena; the copy lives until cleanup/reset.
 * NULL s gives "". Returns NULL only when memory runs out. */
const char *bz_records_strdup(struct bz_records *rec, const char *s);
const char *bz_records_strndup(struct bz_records *rec, const char *s, size_t n);

/* The rows of desc's table, or NULL when the game produced none. */
const struct bz_rowbuf *bz_records_find(const struct bz_records *rec,
                                        const struct bz_table_desc *desc);

#endif
