/* out_internal: the out module's test hooks and read-back helpers. Free of
 * HDF5 types so that tests (which do not see hdf5.h) can include it. */
#ifndef BAZAAR_OUT_INTERNAL_H
#define BAZAAR_OUT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"
#include "bazaar/out.h"
#include "bazaar/records.h"

/* Deflate level of the datasets a shard creates. 0 (the default): shards are
 * chunked but not compressed, so that an append rewrites a partial chunk in
 * place (same size, committed bytes unchanged) instead of reallocating it;
 * see out_shard.c. The merged results file is always compressed. */
extern int bz_out_shard_deflate_level;

/* The layout a new shard writes for until bz_shard_set_layout (default
 * BZ_LAYOUT_PLAIN); tests set it to run every shard in the virtual layout. */
extern enum bz_layout bz_out_shard_layout;
/* Test hook: bz_shard_set_threads of every new shard (0: none). */
extern int bz_out_shard_threads;
/* Test hook: chunks a shard's threads hold at most before the writer
 * deflates the next one itself (1..4; 4 by default). */
extern size_t bz_out_shard_zjobs;
/* Test hook: a long game's puts flush and open the shard again (a
 * checkpoint) once this many bytes are unflushed (32 MiB by default). */
extern size_t bz_out_shard_checkpoint_bytes;

/* A sync's work after the flush, where it runs (the shard's thread, or the
 * durability thread's job): fsync fd, then (journal_fd >= 0) append text's
 * len bytes to the journal and fsync it. BZ_EIO naming the file. */
int bz_durable_run(int fd, int journal_fd, const char *text, size_t len, const char *path,
                   const char *journal_path, struct bz_err *err);

/* Test hook: called on the durability thread before each job
 * (out_durable.c), to hold jobs back. */
extern void (*bz_durable_test_gate)(void);

/* Crash simulation: write every table of rec except /games (no commit
 * record, no journal line) and flush, as a writer killed just before its
 * commit would leave the file. */
int bz_shard_append_uncommitted(struct bz_shard *s, const struct bz_records *rec,
                                struct bz_err *err);

/* Dataset paths of a file, sorted; free with bz_out_free_paths. */
int bz_out_list_tables(const char *path, char ***paths, size_t *n, struct bz_err *err);
void bz_out_free_paths(char **paths, size_t n);

/* A table's content as canonical bytes: its member names and classes, then
 * per row per member the native bytes, variable-length strings as a 64-bit
 * length and the bytes (NULL as ""). Two tables with equal dumps hold equal
 * data. *bytes malloc'd. */
int bz_out_dump_table(const char *path, const char *table, unsigned char **bytes, size_t *len,
                      size_t *n_rows, struct bz_err *err);

/* A table's columns as the file holds them: member names in order, their
 * kind (an enum bz_col_type, or -1 for a type no descriptor makes), and the
 * `units` and `doc` attributes ("" when absent). Free with
 * bz_out_free_columns. */
struct bz_out_column {
    char *name;
    int type;
    char *unit;
    char *doc;
};
int bz_out_describe_table(const char *path, const char *table, struct bz_out_column **cols,
                          size_t *n, struct bz_err *err);
void bz_out_free_columns(struct bz_out_column *cols, size_t n);

/* Root attributes: a string (copied into buf, truncated to cap) or an int64.
 * BZ_EINVAL when absent. */
int bz_out_read_attr_str(const char *path, const char *name, char *buf, size_t cap,
                         struct bz_err *err);
int bz_out_read_attr_i64(const char *path, const char *name, int64_t *value, struct bz_err *err);

/* What the last bz_merge did (tests, bench): its memory bound, the peak of
 * the bytes its own buffers held (windows, index; not HDF5's caches), the id
 * blocks and output windows it went through, the chunks it compressed itself
 * (direct chunk writes) and its compression threads. */
struct bz_merge_stats {
    size_t bound_bytes, peak_bytes;
    uint64_t blocks, windows, direct_chunks;
    int threads;
    uint64_t raw_bytes; /* bytes of rows merged (file types) */
    /* shard rows whose game id was looked at, shard chunks read whole by
     * the merging thread (HDF5), shard chunks read whole by the compression
     * threads (pread: tables without strings, chunks stored as shards
     * store them); and shard chunks the threads read for their game ids
     * (the merging thread's scan) */
    uint64_t rows_scanned, chunks_read, chunks_pread, chunks_scan_pread;
    /* wall seconds: all; finding games (ids, winners, runs); reading rows
     * from the shards; waiting for compression; writing; reading back */
    double seconds, seconds_index, seconds_read, seconds_wait, seconds_write, seconds_read_back;
    /* CPU seconds: the merging thread's (serial: HDF5, reads, writes) and the
     * compression of chunks (split over the threads) */
    double cpu_main, cpu_compress;
    /* the virtual layout: source chunks copied as stored (compressed by
     * the rank), compressed here (stored uncompressed), and the mappings of
     * the virtual tables */
    uint64_t chunks_copied, chunks_compressed, mappings;
    /* a table's runs taken from a source's run index (no row read) */
    uint64_t runs_indexed;
};
void bz_merge_last_stats(struct bz_merge_stats *s);

/* Test hook (NULL in production): called by the merging thread each time
 * it hands a shard chunk to the compression threads (chunks_pread), with
 * the shard, the table, the chunk's file offset and size and its first
 * row, before any thread reads it. Tests corrupt the chunk there, past
 * the merge's own scan of the shard's game ids. */
extern void (*bz_merge_test_deferred_hook)(const char *shard, const char *table, uint64_t addr,
                                           size_t size, uint64_t row);
/* Test hook (NULL in production): called with OUT.tmp once it is closed and
 * synced, before the merge reads it back (tests corrupt it there). */
extern void (*bz_merge_test_read_back_hook)(const char *tmp);

#endif
