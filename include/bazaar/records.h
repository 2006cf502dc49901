/* records: the in-memory rows a game (and its agents) produce, described by
 * table descriptors that the out module maps onto HDF5 compound types.
 * Knows nothing of HDF5. A game's rows go to its shard in batches (a long
 * game's rows are handed over and dropped between turns, see match.h) and
 * the rest, with the commit record, when it ends. */
#ifndef BAZAAR_RECORDS_H
#define BAZAAR_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"

enum bz_col_type {
    BZ_COL_I32, /* int32_t */
    BZ_COL_I64, /* int64_t */
    BZ_COL_F64, /* double */
    BZ_COL_U8,  /* uint8_t (flags, booleans) */
    BZ_COL_STR, /* const char * (UTF-8; NULL written as ""): fixed width when the
                 * column's width > 0, else variable-length */
    BZ_COL_U64  /* uint64_t (seeds) */
};

/* One column. unit: "" for what has no unit (ids, labels, flags, counts of
 * things), "1" for a dimensionless ratio, else the unit ("MWh", "USD/MWh",
 * "ms"); doc: one line saying what the value means. Both NULL only in the
 * legacy BZ_COL form (printed as undocumented). */
struct bz_column {
    const char *name; /* snake_case, unit in the name where there is one */
    enum bz_col_type type;
    size_t offset; /* offsetof(row struct, field) */
    const char *unit;
    const char *doc;
    /* BZ_COL_STR only: > 0: the file holds the string in `width` bytes,
     * NUL-padded (h5py: numpy bytes 'S<width>'); a longer value is refused
     * with an error, never cut. 0: variable-length string (free text). */
    size_t width;
    /* BZ_COL_STR of width 0 only (kind TEXT below): 1: a shard keeps the
     * values in a byte store of its own (out_shard.c), not in HDF5's
     * variable-length heap, one object per row; readers of the results file
     * see a variable-length string like any other. */
    int shard_bytes;
};

/* A table: HDF5 path ("/electricity/turns"), the C row struct's size and its
 * columns. Every table's first column is game_id (int64). Descriptors are
 * static const data owned by the module that defines the table (or, for the
 * runtime-built /<game>/config tables, by tables_config.c). */
struct bz_table_desc {
    const char *path;
    size_t row_size;
    size_t n_cols;
    const struct bz_column *cols;
};

/* Legacy form: a column without unit and meaning. Prefer BZ_TABLE_ROW + BZ_TABLE_DEFINE below. */
/* clang-format off */
#define BZ_COL(struct_, field_, kind_) {#field_, kind_, offsetof(struct_, field_), NULL, NULL, 0, 0}

/* ---- declaring a table once ----------------------------------------------
 * A table is one X-macro list; each entry is
 *     X(R, name, KIND, "unit", "meaning")
 * with KIND one of I32 I64 U64 F64 U8, STR (variable-length string: free
 * text), TEXT (the same in the results file; a shard keeps the bytes in a
 * store of its own: for free text written on the hot path, e.g. messages)
 * or S8 S16 S32 S64 S128 S256 (a string of at most that many bytes, stored
 * fixed-width: labels, names, hashes), and R passed through untouched (it
 * names the row struct for offsetof). Every string kind is a `const char *`
 * in the row struct. From the list:
 *     BZ_TABLE_ROW(tag, LIST);              the C row struct `struct tag`
 *     [static] BZ_TABLE_DEFINE(var, "/path", tag, LIST);
 *                                           const struct bz_table_desc var
 *                                           (columns with offsets, units, docs)
 * The out module builds the HDF5 compound type and the per-column `units`
 * and `doc` attributes from the descriptor; `bazaar info --schema` prints it.
 * Example:
 *     #define MY_TURNS_COLUMNS(X, R)                                  \
 *         X(R, game_id, I64, "", "game id")                           \
 *         X(R, turn, I32, "", "turn, 0-based")                        \
 *         X(R, price_per_mwh, F64, "USD/MWh", "clearing price")
 *     BZ_TABLE_ROW(my_turn_row, MY_TURNS_COLUMNS);           (header or .c)
 *     BZ_TABLE_DEFINE(my_turns_table, "/my/turns", my_turn_row,
 *                     MY_TURNS_COLUMNS);                     (one .c)
 * The first entry must be game_id I64. */
#define BZ_CTYPE_I32 int32_t
#define BZ_CTYPE_I64 int64_t
#define BZ_CTYPE_U64 uint64_t
#define BZ_CTYPE_F64 double
#define BZ_CTYPE_U8 uint8_t
#define BZ_CTYPE_STR const char *
#define BZ_CTYPE_TEXT const char *
#define BZ_CTYPE_S8 const char *
#define BZ_CTYPE_S16 const char *
#define BZ_CTYPE_S32 const char *
#define BZ_CTYPE_S64 const char *
#define BZ_CTYPE_S128 const char *
#define BZ_CTYPE_S256 const char *
#define BZ_COLKIND_I32 BZ_COL_I32
#define BZ_COLKIND_I64 BZ_COL_I64
#define BZ_COLKIND_U64 BZ_COL_U64
#define BZ_COLKIND_F64 BZ_COL_F64
#define BZ_COLKIND_U8 BZ_COL_U8
#define BZ_COLKIND_STR BZ_COL_STR
#define BZ_COLKIND_TEXT BZ_COL_STR
#define BZ_COLKIND_S8 BZ_COL_STR
#define BZ_COLKIND_S16 BZ_COL_STR
#define BZ_COLKIND_S32 BZ_COL_STR
#define BZ_COLKIND_S64 BZ_COL_STR
#define BZ_COLKIND_S128 BZ_COL_STR
#define BZ_COLKIND_S256 BZ_COL_STR
#define BZ_COLWIDTH_I32 0
#define BZ_COLWIDTH_I64 0
#define BZ_COLWIDTH_U64 0
#define BZ_COLWIDTH_F64 0
#define BZ_COLWIDTH_U8 0
#define BZ_COLWIDTH_STR 0
#define BZ_COLWIDTH_TEXT 0
#define BZ_COLWIDTH_S8 8
#define BZ_COLWIDTH_S16 16
#define BZ_COLWIDTH_S32 32
#define BZ_COLWIDTH_S64 64
#define BZ_COLWIDTH_S128 128
#define BZ_COLWIDTH_S256 256
#define BZ_COLBYTES_I32 0
#define BZ_COLBYTES_I64 0
#define BZ_COLBYTES_U64 0
#define BZ_COLBYTES_F64 0
#define BZ_COLBYTES_U8 0
#define BZ_COLBYTES_STR 0
#define BZ_COLBYTES_TEXT 1
#define BZ_COLBYTES_S8 0
#define BZ_COLBYTES_S16 0
#define BZ_COLBYTES_S32 0
#define BZ_COLBYTES_S64 0
#define BZ_COLBYTES_S128 0
#define BZ_COLBYTES_S256 0

#define BZ_TABLE_FIELD_(R, name, kind, unit, doc) BZ_CTYPE_##kind name;
#define BZ_TABLE_COLUMN_(R, name, kind, unit, doc)                                                 \
    {#name, BZ_COLKIND_##kind, offsetof(struct R, name), unit, doc, BZ_COLWIDTH_##kind,           \
     BZ_COLBYTES_##kind},

#define BZ_TABLE_ROW(tag, LIST)                                                                    \
    struct tag {                                                                                   \
        LIST(BZ_TABLE_FIELD_, tag)                                                                 \
    }

/* The columns are a file-scope compound literal (static storage), so the
 * definition may be prefixed with `static` for a table private to a file. */
#define BZ_TABLE_DEFINE(var, path, tag, LIST)                                                      \
    const struct bz_table_desc var = {                                                             \
        path, sizeof(struct tag),                                                                  \
        sizeof((const struct bz_column[]){LIST(BZ_TABLE_COLUMN_, tag)}) /                          \
            sizeof(struct bz_column),                                                              \
        (const struct bz_column[]){LIST(BZ_TABLE_COLUMN_, tag)}}

/* clang-format on */

/* Name of a column kind ("i32", "u64", "str", ...), for docs and messages. */
const char *bz_col_type_name(enum bz_col_type t);

/* BZ_OK when value (NULL: "") fits column col of desc (always for
 * variable-length and non-string columns), else BZ_EINVAL naming the table,
 * the column, the width and the value. */
int bz_records_check_width(const struct bz_table_desc *desc, const struct bz_column *col,
                           const char *value, struct bz_err *err);

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
    size_t row_bytes;            /* bytes of the rows held now (all tables) */
    size_t max_row_bytes;        /* high-water mark of row_bytes since init */
};

void bz_records_init(struct bz_records *rec);
void bz_records_cleanup(struct bz_records *rec);
/* Drop all rows and strings but keep capacity (reuse for the next game). */
void bz_records_reset(struct bz_records *rec);

/* Drop every row (they were handed to the shard) but keep the strings,
 * which the game's state may still point to, and the capacity. */
void bz_records_drop_rows(struct bz_records *rec);

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
