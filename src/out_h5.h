/* out_h5: HDF5 helpers shared by the out module's files (shard writer, merge,
 * read-back). Private to src/out_*.c: nothing outside out includes hdf5.h. */
#ifndef BAZAAR_OUT_H5_H
#define BAZAAR_OUT_H5_H

#include <hdf5.h>

#include "bazaar/err.h"
#include "bazaar/records.h"

/* Turn off HDF5's automatic error printing (errors go into struct bz_err),
 * and bz_out_h5_filters_install. */
void bz_out_h5_quiet(void);

/* Once per process (later calls return the first's result): make HDF5's
 * deflate (H5Z_FILTER_DEFLATE) and Fletcher32 (H5Z_FILTER_FLETCHER32)
 * filters run bazaar's faster functions (out_zpool.c's compressor, ISA-L
 * inflate, out_fletcher.c), which write and read exactly the bytes HDF5's
 * own do, for every file of the process. 1: installed; 0: HDF5's own stay
 * (BZ_HDF5_FILTERS=builtin, a libhdf5 other than 1.8-1.14 or without the
 * symbol it needs). bz_out_h5_quiet and bz_out_h5_fapl call it. */
int bz_out_h5_filters_install(void);

/* bz_err_set with ": <innermost HDF5 error description>" appended when the
 * HDF5 error stack has one; clears the stack. Returns code. */
int bz_out_h5_fail(struct bz_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Close an id of any kind if it is valid; H5I_INVALID_HID is fine. */
void bz_out_h5_close(hid_t id);

/* Variable-length UTF-8 C string type; close with H5Tclose. */
hid_t bz_out_h5_str_type(void);

/* The in-memory compound type of desc's row struct (native types at the C
 * offsets); close with H5Tclose. Negative on failure. */
hid_t bz_out_h5_mem_type(const struct bz_table_desc *desc);

/* A fixed-width (NUL-padded) UTF-8 string type of width bytes; H5Tclose. */
hid_t bz_out_h5_fixed_str_type(size_t width);

/* The HDF5 type of a column of kind type: the native type of a number; for a
 * string of width > 0 a fixed-width type the caller closes (*own), else the
 * variable-length type, made once in *vstr (start it at H5I_INVALID_HID;
 * the caller closes it after its last column). Negative on failure. */
hid_t bz_out_h5_col_type(enum bz_col_type type, size_t width, hid_t *vstr, hid_t *own);

/* A table's row as the shard and the results file hold it: the columns in
 * order, packed (no padding), numbers in their native types, strings with a
 * width as fixed-width NUL-padded bytes and the others as variable-length
 * strings (a pointer in memory). Rows are copied into this layout by the
 * shard writer, so HDF5 writes them without converting (memory type = file
 * type) unless the table has a variable-length column. */
struct bz_out_layout_col {
    size_t src;  /* offset in the C row struct */
    size_t dst;  /* offset in the file row */
    size_t size; /* bytes in the file row */
    int kind;    /* BZ_OUT_RAW, BZ_OUT_FIXED_STR or BZ_OUT_VLEN_STR */
    size_t col;  /* index of the (first) column in the descriptor */
};
enum { BZ_OUT_RAW, BZ_OUT_FIXED_STR, BZ_OUT_VLEN_STR, BZ_OUT_TEXT_REF };
struct bz_out_layout {
    size_t size; /* bytes of a file row */
    size_t n_cols;
    struct bz_out_layout_col *cols; /* one per column */
    /* the copies that pack a row: runs of numeric columns contiguous in
     * both layouts merged into one */
    size_t n_ops;
    struct bz_out_layout_col *ops;
    int has_vlen;
};
/* Fill *l from desc (l->cols malloc'd: bz_out_layout_free). <0 on no memory
 * or a column kind it does not know. */
int bz_out_layout_init(struct bz_out_layout *l, const struct bz_table_desc *desc);

/* ---- a shard's text store --------------------------------------------------
 * In a shard, a TEXT column (bz_column.shard_bytes) holds a reference into
 * a byte store of its own instead of a variable-length string: the member
 * has the column's name and the type bz_out_h5_text_ref_type() (offset u64,
 * then length u32, packed: BZ_OUT_TEXT_REF_SIZE bytes), and the bytes are in
 * the 1-D u8 dataset BZ_OUT_SHARD_TEXT_GROUP + table path + "/" + column
 * (e.g. /.shard_text/messages/text), written in row order. Readers of a
 * shard go through bz_shard_table_type and bz_shard_read (out_shard.c),
 * which give the table as if the column were a variable-length string, so
 * the results file is the same as from a shard without a store.
 * bz_out_h5_list_datasets never lists the store. */
#define BZ_OUT_TEXT_REF_SIZE 12
#define BZ_OUT_SHARD_TEXT_GROUP "/.shard_text"
/* A results file of the virtual layout (bazaar/out.h: enum bz_layout)
 * stores its virtual tables' rows in datasets under this group, one per
 * source and table ("/.parts/3/electricity/turns"), never listed as tables
 * (bz_out_h5_list_datasets). */
#define BZ_OUT_PARTS_GROUP "/.parts"
/* A shard's run index of a table (out_shard.c writes it, out_merge.c reads
 * it): BZ_OUT_SHARD_RUNS_GROUP + table path, one row per stretch of
 * consecutive rows of one game (struct bz_out_run_row), in the order
 * written; check is bz_out_run_check of the other three (a torn row never
 * passes for a game's). Never listed as a table. Shards without it (older
 * ones) are scanned. */
#define BZ_OUT_SHARD_RUNS_GROUP "/.shard_runs"
struct bz_out_run_row {
    int64_t game_id;
    uint64_t start, len, check;
};
static inline uint64_t bz_out_run_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static inline uint64_t bz_out_run_check(int64_t game_id, uint64_t start, uint64_t len)
{
    return bz_out_run_mix(bz_out_run_mix(bz_out_run_mix((uint64_t)game_id) ^ start) ^ len) | 1;
}
/* The layout of a shard's row: as bz_out_layout_init, TEXT columns as
 * BZ_OUT_TEXT_REF of BZ_OUT_TEXT_REF_SIZE bytes (has_vlen counts only the
 * other variable-length strings). */
int bz_out_layout_init_shard(struct bz_out_layout *l, const struct bz_table_desc *desc);
/* The text reference type (H5Tclose). */
hid_t bz_out_h5_text_ref_type(void);
/* The HDF5 type of a shard's row (bz_out_layout_init_shard). */
hid_t bz_out_h5_shard_type(const struct bz_table_desc *desc);

/* Readers of a shard's tables (implemented in out_shard.c): the table's
 * type with every text reference shown as a variable-length string (the
 * type the results file gets; for a table without a store, H5Dget_type),
 * and H5Dread of such a type: for a table without a store exactly H5Dread,
 * else its other members read by HDF5 and each text copied from the store
 * into a malloc'd string (H5Dvlen_reclaim frees them, as HDF5's). */
hid_t bz_shard_table_type(hid_t dset);
herr_t bz_shard_read(hid_t dset, hid_t mtype, hid_t mspace, hid_t fspace, void *buf);
/* bz_shard_read with a transfer property list (the merge's conversion buffers). */
herr_t bz_shard_read_dxpl(hid_t dset, hid_t mtype, hid_t mspace, hid_t fspace, hid_t dxpl,
                          void *buf);
void bz_out_layout_free(struct bz_out_layout *l);

/* The HDF5 compound type of desc's file row (the layout above): the type
 * of the dataset and of the write buffer alike. H5Tclose; <0 on failure. */
hid_t bz_out_h5_file_type(const struct bz_table_desc *desc);

/* Write the per-column attributes of a table's dataset: `units` and `doc`,
 * 1-D arrays of strings in column order (h5py: ds.attrs["units"][i] is the
 * unit of ds.dtype.names[i]; "" where there is none). <0 on failure. */
int bz_out_h5_write_col_attrs(hid_t dset, const struct bz_table_desc *desc);

/* Copy every attribute of object src to object dst. <0 on failure. */
int bz_out_h5_copy_attrs(hid_t src, hid_t dst);

/* Rows per chunk: about target_bytes of raw rows, at least 1, at most
 * max_rows when max_rows > 0 (tiny tables get tiny chunks). */
hsize_t bz_out_h5_chunk_rows(size_t row_bytes, size_t target_bytes, hsize_t max_rows);

/* bz_out_h5_create_table's deflate_level for the merged file's pipeline:
 * deflate at BZ_ZPOOL_LEVEL without shuffle (on these rows shuffle made
 * deflate slower and the file larger), then Fletcher32. out_zpool.c writes
 * exactly its chunks, and a virtual-layout shard's tables have it so that
 * the merge copies their chunks as they are. */
#define BZ_OUT_H5_MERGED_PIPELINE (-1)

/* Create a 1-D chunked compound dataset of n_rows rows and unlimited max
 * size at path (intermediate groups created). deflate_level 0: no
 * compression, BZ_OUT_H5_MERGED_PIPELINE: the merged file's deflate, else
 * shuffle + deflate at that level; every chunk carries a Fletcher32
 * checksum (a bit flip reads as an error). fill (may be NULL) is one row of
 * fill_type. */
hid_t bz_out_h5_create_table(hid_t file, const char *path, hid_t file_type, hsize_t n_rows,
                             hsize_t chunk_rows, int deflate_level, hid_t fill_type,
                             const void *fill);

/* Whether values of type t own heap memory after H5Dread (vlen,
 * variable-length strings, at any depth of a compound or array; fixed-width
 * strings do not): such buffers must be freed with H5Dvlen_reclaim. <0 on
 * error. */
int bz_out_h5_has_vlen(hid_t t);

/* File access property list for reading (caller closes). */
hid_t bz_out_h5_fapl(void);

/* Open path read-only; on failure BZ_EIO naming the file. */
int bz_out_h5_open_ro(const char *path, hid_t *file, struct bz_err *err);

/* Read the game_id column of an open 1-D compound dataset (any integer type
 * converted to int64). *ids malloc'd (NULL when n is 0). */
int bz_out_h5_read_game_ids(hid_t dset, int64_t **ids, size_t *n, const char *file_name,
                            const char *table, struct bz_err *err);

/* Read rows [0, n_rows) of an open 1-D dataset (all columns, strings
 * included) through a bounded window and throw them away: proves they are
 * readable after a crash. Only committed rows may be read: the strings of
 * rows past the last commit can point at heap data that never reached the
 * file, and HDF5 follows such references blindly. */
int bz_out_h5_check_readable(hid_t dset, hsize_t n_rows, const char *file_name, const char *table,
                             struct bz_err *err);

/* The same for rows [first, n_rows). */
int bz_out_h5_check_rows(hid_t dset, hsize_t first, hsize_t n_rows, const char *file_name,
                         const char *table, struct bz_err *err);

/* Paths ("/electricity/turns") of every dataset in the file, sorted by
 * strcmp; each string and the array are malloc'd (bz_out_free_paths). */
int bz_out_h5_list_datasets(hid_t file, char ***paths, size_t *n, const char *file_name,
                            struct bz_err *err);

#endif
