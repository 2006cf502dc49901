/* out_shard: one rank's shard file and journal. Takes a game's rows while it
 * is played (bz_shard_put: a long game's batches, not committed) and when it
 * ends, its /games row last as the commit record, then flushes, so that a
 * writer killed at any moment leaves a file that reads back to its last
 * committed game (rows of a game without its commit record are never read
 * as a game's). Never rewrites bytes that a committed game depends on.
 *
 * Crash safety, why each setting:
 * - H5Fflush after each commit (or, with group commit, after a batch of
 *   games), then fsync of the file, then the journal lines of the games
 *   the flush made durable, then fsync of the journal: the flushed state
 *   survives kill -9 and, after the fsync, a node failure. A fsync costs
 *   milliseconds, more than a small heuristic game: group commit pays it
 *   once per batch, and a kill loses at most the unsynced batch (replayed).
 *   With a durability thread (bz_shard_set_durable: the runner's), the
 *   sync ends at the flush and the thread does the rest, in order, while
 *   the play goes on: a kill then also loses the batches still queued
 *   there (out_durable.c). 1 rank pinned to one CPU, 9,000 games: the
 *   play had waited 0.4-0.5 s in fsync.
 * - Metadata cache evictions are off during an append, so no metadata is
 *   written between two flushes (a half-updated object header or chunk index
 *   on disk is what makes a killed HDF5 file unreadable).
 * - No free-space reuse (H5F_FSPACE_STRATEGY_NONE): space freed during an
 *   append can never be handed to new data that overwrites something the
 *   last flushed metadata still points to.
 * - Shard datasets are not compressed by default: a compressed partial chunk
 *   changes size at every append, so HDF5 moves it (and with no reuse the
 *   file would grow by a chunk per table per game); an uncompressed chunk is
 *   rewritten in place with its committed rows' bytes unchanged. The merge
 *   writes the compressed results file. In the virtual layout
 *   (bz_shard_set_layout) a table without strings has the merged file's
 *   pipeline (deflate, Fletcher32) but only its full chunks, which never
 *   change again, are stored deflated; its partial last chunk is stored
 *   with the deflate filter skipped (filter mask 1), so it keeps its size
 *   and is still rewritten in place (store_chunk says what the full chunk's
 *   move costs).
 * - The fill value has game_id -1: rows past a commit that a torn flush
 *   might expose are never taken for committed games.
 *
 * Speed: rows are copied into a per-table staging buffer in the file's own
 * row layout (out_h5.h: packed, fixed-width strings inline). A table's
 * chunks are sized from its first batch (SHARD_CHUNK_MIN_BYTES): a table
 * written at volume gets 256 KiB chunks, a table of a few rows per game
 * 64 KiB. A table without variable-length strings stages exactly one chunk:
 * when it is full the writer appends its Fletcher32 (out_fletcher.c, bit for
 * bit HDF5's filter) and stores it with H5Dwrite_chunk, so no row goes
 * through HDF5's chunk cache, type conversion or filter pipeline; at a sync
 * the partial last chunk is stored the same way (its unused rows hold the
 * fill row) and is stored again, in place, when it has grown. A table with
 * variable-length strings (their bytes go to HDF5's heap) is written with
 * H5Dwrite once per STAGE_BYTES of rows or per sync, not once per game: the
 * per-write costs (conversion path lookup, hyperslab, extent) are paid per
 * batch. Staged rows reach the file before the flush that commits them. A
 * long game's puts flush (without committing) every FLUSH_BYTES and open the
 * file again, so the metadata cache, which holds everything touched while
 * evictions are off, does not grow with the game. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "out_fletcher.h"
#include "out_h5.h"
#include "out_h5_fail.h"
#include "out_internal.h"
#include "out_texts.h"
#include "out_zpool.h"

int bz_out_shard_deflate_level = 0;
enum bz_layout bz_out_shard_layout = BZ_LAYOUT_PLAIN;
int bz_out_shard_threads = 0;
size_t bz_out_shard_zjobs = 4; /* ZJOBS */

/* Bytes of a chunk (a text store's or a table's rows): about 16 games'
 * worth of the table's first batch, a power of two between these bounds.
 * Big chunks make the writes cheaper per row (fewer chunk stores and
 * longer page-cache writes: the shard's CPU per agent-turn of electricity
 * at N = 10 fell about 18% from 64 to 256 KiB; 512 KiB saved a little more
 * but cost the merge about 7% more CPU); small ones bound what a sync
 * stores again (the partial last chunk of every table that grew) and what
 * a table of a few rows per game occupies. */
#define SHARD_CHUNK_MIN_BYTES ((size_t)64 * 1024)
#define SHARD_CHUNK_MAX_BYTES ((size_t)256 * 1024)
#define SHARD_CHUNK_GAMES 16
/* Chunks of a table's run index: 512 runs (a sync stores its partial last
 * chunk again, as every table's). */
#define RUNS_CHUNK_BYTES ((size_t)16 * 1024)
/* Type-conversion buffers of our own: with H5P_DEFAULT, HDF5 callocs a 1 MiB
 * conversion buffer on every H5Dwrite, which cost 60% of a small heuristic
 * game's instructions. Writes larger than this are converted in strips. */
#define SHARD_XFER_BYTES (256 * 1024)
#define GAMES_PATH "/games"
/* Rows of a table staged before they are written (at most this many bytes,
 * at least one row). */
#define STAGE_BYTES (512 * 1024)
/* A long game's rows are flushed (not committed) every so many bytes
 * (bz_out_shard_checkpoint_bytes, a test hook, overrides it). */
#define FLUSH_BYTES ((size_t)32 << 20)
size_t bz_out_shard_checkpoint_bytes = FLUSH_BYTES;

/* Copies of the variable-length strings of staged rows. */
struct str_block {
    struct str_block *next;
    size_t used, cap;
    char data[];
};

struct out_table {
    const struct bz_table_desc *desc; /* schema the dataset was created from */
    hid_t dset;
    hid_t file_type; /* also the type of the staged rows */
    hsize_t n_rows;  /* rows in the dataset */
    struct bz_out_layout lay;
    unsigned char *stage; /* staged rows, file layout */
    size_t n_stage, cap_stage, max_stage;
    struct str_block *strings; /* vlen copies of the staged rows */
    /* direct: no variable-length column, so the stage is the chunk that
     * starts at row chunk_base (chunk_rows rows and room for the checksum),
     * stored with H5Dwrite_chunk */
    int direct;
    hsize_t chunk_base;
    size_t chunk_rows;
    size_t fill_from;    /* stage rows from here on hold the fill row */
    size_t stored_stage; /* n_stage when the stage was last stored */
    /* virtual layout (a direct table without text references): created
     * with deflate then Fletcher32; full chunks stored deflated (filter
     * mask 0), the partial last chunk with deflate skipped (mask 1) */
    int zip;
    unsigned char *fill; /* one fill row, file layout */
    /* per column: the index in bz_shard.tables of its text store (a TEXT
     * column, see out_h5.h), else SIZE_MAX; NULL when the table has none */
    size_t *col_store;
    struct bz_table_desc *own_desc; /* a text store's or run index's desc (desc points here) */
    size_t runs; /* the index in bz_shard.tables of its run index, SIZE_MAX: none */
};

struct bz_shard {
    double synced_at; /* CLOCK_MONOTONIC seconds: creation or the last sync */
    char *path;
    char *journal_path;
    hid_t file;
    int journal_fd;
    int broken; /* an append failed half-way: the file is no longer trusted */
    struct out_table *tables;
    size_t n_tables, cap_tables;
    int64_t *ids; /* committed game ids, in commit order */
    size_t n_ids, cap_ids;
    int64_t max_id; /* the largest of ids, -1: none */
    hid_t dxpl;     /* transfer properties with tconv/bkg below */
    void *tconv, *bkg;
    int group_commit;  /* appends wait for bz_shard_sync */
    int evictions_off; /* metadata held in memory since the last flush */
    char *pending;     /* journal lines of games written but not yet synced */
    size_t pending_len, pending_cap, n_pending;
    size_t unflushed; /* bytes staged since the last flush */
    int64_t put_game; /* game of the last bz_shard_put, -1: none */
    size_t put_rows;  /* rows put for it */
    enum bz_layout layout;
    struct bz_zchunk *zc; /* the zip tables' compressor (out_zpool.h), on first use */
    unsigned char *zbuf;  /* one deflated chunk */
    size_t zcap;
    /* bz_shard_set_threads: full chunks of zip tables deflating on zpool's
     * threads, oldest first (a ring of ZJOBS), stored before the next flush */
    int zthreads;
    struct bz_zpool *zpool;
    struct zjob *zjobs;
    size_t zhead, n_zjobs;
    struct zbuf *zfree; /* buffers of finished jobs, for the next */
    size_t n_zfree;
    struct bz_durable *durable; /* bz_shard_set_durable: syncs' fsyncs go there */
};

/* Chunks deflating on the threads at once, at most (each holds its rows
 * and their deflated copy): past that, unless the oldest is done, the
 * writer deflates the next chunk itself (the threads run at nice
 * ZJOBS_NICE, on a CPU the play leaves idle, which the follower merge
 * shares: the work balances between the play's CPU and that one). */
#define ZJOBS 4
#define ZJOBS_NICE 10

/* A buffer of a job's (rows, or their deflated copy), kept for reuse. */
struct zbuf {
    unsigned char *p;
    size_t cap;
};

/* A full chunk of a zip table deflating on the threads. */
struct zjob {
    size_t table;    /* its index in bz_shard.tables */
    hsize_t base;    /* its first row */
    struct zbuf in;  /* its rows (the table's stage when it filled), then room for a checksum */
    struct zbuf out; /* the deflated chunk and its checksum */
    size_t out_len;
    struct bz_zbatch b;
};

static int same_schema(const struct bz_table_desc *a, const struct bz_table_desc *b)
{
    if (a == b)
        return 1;
    if (a->row_size != b->row_size || a->n_cols != b->n_cols)
        return 0;
    for (size_t i = 0; i < a->n_cols; i++)
        if (a->cols[i].type != b->cols[i].type || a->cols[i].offset != b->cols[i].offset ||
            a->cols[i].width != b->cols[i].width ||
            a->cols[i].shard_bytes != b->cols[i].shard_bytes ||
            strcmp(a->cols[i].name, b->cols[i].name) != 0)
            return 0;
    return 1;
}

static int is_games(const struct bz_table_desc *d)
{
    return strcmp(d->path, GAMES_PATH) == 0;
}

static int64_t row_game_id(const struct bz_rowbuf *rb, size_t row)
{
    int64_t id;
    memcpy(&id, rb->data + row * rb->desc->row_size + rb->desc->cols[0].offset, sizeof id);
    return id;
}

static int set_evictions(struct bz_shard *s, int on, struct bz_err *err)
{
    H5AC_cache_config_t cfg;
    cfg.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Fget_mdc_config(s->file, &cfg) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot read the metadata cache setup", s->path);
    cfg.evictions_enabled = on ? 1 : 0;
    if (H5Fset_mdc_config(s->file, &cfg) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot set the metadata cache", s->path);
    return BZ_OK;
}

/* Fixed-size metadata cache (no automatic resizing), as evictions may only be
 * switched off when the cache does not resize itself. */
static int setup_mdc(hid_t fapl)
{
    H5AC_cache_config_t cfg;
    cfg.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Pget_mdc_config(fapl, &cfg) < 0)
        return -1;
    cfg.set_initial_size = 1;
    cfg.initial_size = 8 * 1024 * 1024;
    cfg.min_size = 1024 * 1024;
    cfg.max_size = 8 * 1024 * 1024;
    cfg.incr_mode = H5C_incr__off;
    cfg.flash_incr_mode = H5C_flash_incr__off;
    cfg.decr_mode = H5C_decr__off;
    return H5Pset_mdc_config(fapl, &cfg) < 0 ? -1 : 0;
}

static hid_t shard_fapl(void)
{
    hid_t fapl = bz_out_h5_fapl();
    if (fapl >= 0 && (H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST) < 0 ||
                      setup_mdc(fapl) < 0)) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

/* Close and open the file again, right after a flush: the metadata cache
 * (which holds every entry touched while evictions were off: chunk index,
 * the heap of variable-length strings) starts empty again, so a long game
 * does not pile it up. Nothing is written but what the flush wrote. */
static int reopen(struct bz_shard *s, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t fapl = H5I_INVALID_HID;
    for (size_t i = 0; i < s->n_tables; i++) {
        if (H5Dclose(s->tables[i].dset) < 0 && !rc)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close table %s", s->path,
                                s->tables[i].desc->path);
        s->tables[i].dset = H5I_INVALID_HID;
    }
    if (H5Fclose(s->file) < 0 && !rc)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close", s->path);
    s->file = H5I_INVALID_HID;
    if (rc)
        return rc;
    if ((fapl = shard_fapl()) < 0 || (s->file = H5Fopen(s->path, H5F_ACC_RDWR, fapl)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open again", s->path);
        goto out;
    }
    for (size_t i = 0; i < s->n_tables; i++)
        if ((s->tables[i].dset = H5Dopen2(s->file, s->tables[i].desc->path, H5P_DEFAULT)) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open table %s again", s->path,
                                s->tables[i].desc->path);
            goto out;
        }
out:
    bz_out_h5_close(fapl);
    return rc;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *str_concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

/* The chunk bytes for a table (or text store) whose first batch holds
 * batch bytes (see SHARD_CHUNK_MIN_BYTES). */
static size_t chunk_bytes_for(size_t batch)
{
    size_t bytes = SHARD_CHUNK_MIN_BYTES;
    while (bytes < SHARD_CHUNK_MAX_BYTES && bytes / SHARD_CHUNK_GAMES < batch)
        bytes *= 2;
    return bytes;
}

int bz_shard_create(const char *path, struct bz_shard **out, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t fcpl = H5I_INVALID_HID, fapl = H5I_INVALID_HID;
    struct bz_shard *s = NULL;
    char *journal = NULL; /* its path, to remove it when the shard fails */
    int created = 0;
    *out = NULL;
    bz_out_h5_quiet();
    if (!(s = calloc(1, sizeof *s))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for a shard", path);
        goto out;
    }
    s->file = H5I_INVALID_HID;
    s->journal_fd = -1;
    s->synced_at = mono_s();
    s->put_game = -1;
    s->max_id = -1;
    s->layout = bz_out_shard_layout;
    s->zthreads = bz_out_shard_threads;
    s->dxpl = H5I_INVALID_HID;
    if (!(s->tconv = malloc(SHARD_XFER_BYTES)) || !(s->bkg = malloc(SHARD_XFER_BYTES))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for a shard", path);
        goto out;
    }
    if ((s->dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 ||
        H5Pset_buffer(s->dxpl, SHARD_XFER_BYTES, s->tconv, s->bkg) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot set up transfer buffers", path);
        goto out;
    }
    if (!(s->path = str_concat(path, "")) || !(s->journal_path = str_concat(path, ".journal"))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for a shard", path);
        goto out;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        rc = bz_err_set(err, BZ_EIO, "%s: already exists; a shard is always a new file", path);
        goto out;
    }
    if ((fcpl = H5Pcreate(H5P_FILE_CREATE)) < 0 ||
        H5Pset_file_space_strategy(fcpl, H5F_FSPACE_STRATEGY_NONE, 0, 1) < 0 ||
        (fapl = shard_fapl()) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot set up file properties", path);
        goto out;
    }
    /* The journal before the shard: a shard file of this writer always has
     * its journal, so a kill between the two creations leaves at most an
     * empty journal (the parts' clean-up removes it), never a shard that
     * resume cannot read and cannot prove empty. */
    s->journal_fd = open(s->journal_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (s->journal_fd < 0) {
        rc = bz_err_set(err, BZ_EIO, "%s: cannot create the journal: %s", s->journal_path,
                        strerror(errno));
        goto out;
    }
    if (!(journal = str_concat(s->journal_path, ""))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for a shard", path);
        goto out;
    }
    if ((s->file = H5Fcreate(path, H5F_ACC_EXCL, fcpl, fapl)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create the shard file", path);
        goto out;
    }
    created = 1;
    /* An empty shard killed before its first game still opens. */
    if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot flush the new shard", path);
        goto out;
    }
    *out = s;
    s = NULL;
out:
    bz_out_h5_close(fapl);
    bz_out_h5_close(fcpl);
    if (s) {
        bz_shard_close(s, NULL);
        if (created)
            unlink(path);
        if (journal)
            unlink(journal);
    }
    free(journal);
    return rc;
}

/* Room for one more table in s->tables (pointers into it move). */
static int grow_tables(struct bz_shard *s, const char *path, struct bz_err *err)
{
    if (s->n_tables < s->cap_tables)
        return BZ_OK;
    size_t cap = s->cap_tables ? 2 * s->cap_tables : 8;
    struct out_table *p = realloc(s->tables, cap * sizeof *p);
    if (!p)
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory for table %s", s->path, path);
    s->tables = p;
    s->cap_tables = cap;
    return BZ_OK;
}

static const struct bz_column store_col = {"byte", BZ_COL_U8, 0, "", "", 0, 0};

/* A run index's columns (out_h5.h: struct bz_out_run_row). */
static const struct bz_column run_cols[] = {
    {"game_id", BZ_COL_I64, offsetof(struct bz_out_run_row, game_id), "", "", 0, 0},
    {"start", BZ_COL_U64, offsetof(struct bz_out_run_row, start), "", "", 0, 0},
    {"len", BZ_COL_U64, offsetof(struct bz_out_run_row, len), "", "", 0, 0},
    {"check", BZ_COL_U64, offsetof(struct bz_out_run_row, check), "", "", 0, 0},
};

static int is_run_index(const struct bz_table_desc *d)
{
    return strncmp(d->path, BZ_OUT_SHARD_RUNS_GROUP "/", sizeof BZ_OUT_SHARD_RUNS_GROUP) == 0;
}

static int table_for(struct bz_shard *s, const struct bz_rowbuf *rb, struct out_table **out,
                     struct bz_err *err);

/* Create the run index of table desc (its index in s->tables: *idx): a
 * table like the others (it is one to the writer), under its own path. */
static int create_runs(struct bz_shard *s, const struct bz_table_desc *desc, size_t *idx,
                       struct bz_err *err)
{
    size_t len = strlen(BZ_OUT_SHARD_RUNS_GROUP) + strlen(desc->path) + 1;
    struct bz_table_desc *d = calloc(1, sizeof *d + len);
    if (!d)
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory for its run index", s->path,
                          desc->path);
    char *path = (char *)(d + 1);
    snprintf(path, len, "%s%s", BZ_OUT_SHARD_RUNS_GROUP, desc->path);
    d->path = path;
    d->row_size = sizeof(struct bz_out_run_row);
    d->n_cols = sizeof run_cols / sizeof run_cols[0];
    d->cols = run_cols;
    struct bz_out_run_row row = {0};
    struct bz_rowbuf rb = {d, (unsigned char *)&row, 64, 64}; /* sized for 64 runs a batch */
    struct out_table *t;
    int rc = table_for(s, &rb, &t, err);
    if (rc) {
        free(d);
        return rc;
    }
    t->own_desc = d;
    *idx = (size_t)(t - s->tables);
    return BZ_OK;
}

/* Rows [start, start + rb->n_rows) of t came from rb: one run index row per
 * stretch of one game. */
static int stage_rows(struct bz_shard *s, const struct bz_rowbuf *rb, struct bz_err *err);
static int index_runs(struct bz_shard *s, size_t runs, const struct bz_rowbuf *rb, hsize_t start,
                      struct bz_err *err)
{
    for (size_t r = 0; r < rb->n_rows;) {
        int64_t id = row_game_id(rb, r);
        size_t e = r + 1;
        while (e < rb->n_rows && row_game_id(rb, e) == id)
            e++;
        struct bz_out_run_row row = {id, start + r, e - r, 0};
        row.check = bz_out_run_check(id, row.start, row.len);
        struct bz_rowbuf one = {s->tables[runs].desc, (unsigned char *)&row, 1, 1};
        int rc = stage_rows(s, &one, err);
        if (rc)
            return rc;
        r = e;
    }
    return BZ_OK;
}

/* The text store of column col of desc (out_h5.h): a 1-D u8 dataset stored
 * in whole chunks (of chunk_bytes) like a table without strings; *idx: its
 * index in s->tables. */
static int create_store(struct bz_shard *s, const struct bz_table_desc *desc,
                        const struct bz_column *col, size_t chunk_bytes, size_t *idx,
                        struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t ftype = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    size_t len = strlen(BZ_OUT_SHARD_TEXT_GROUP) + strlen(desc->path) + strlen(col->name) + 2;
    struct bz_table_desc *d = calloc(1, sizeof *d + len);
    unsigned char *fill = calloc(1, 1), *stage = malloc(chunk_bytes + 4);
    if (!d || !fill || !stage) {
        rc =
            bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory for its text", s->path, desc->path);
        goto out;
    }
    char *path = (char *)(d + 1);
    snprintf(path, len, "%s%s/%s", BZ_OUT_SHARD_TEXT_GROUP, desc->path, col->name);
    d->path = path;
    d->row_size = 1;
    d->n_cols = 1;
    d->cols = &store_col;
    hsize_t chunk = chunk_bytes;
    if ((ftype = H5Tcopy(H5T_NATIVE_UINT8)) < 0 ||
        (dset = bz_out_h5_create_table(s->file, path, ftype, 0, chunk, 0, ftype, fill)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create the text store %s", s->path, path);
        goto out;
    }
    if ((rc = grow_tables(s, path, err)))
        goto out;
    struct out_table *t = &s->tables[s->n_tables];
    memset(t, 0, sizeof *t);
    if (bz_out_layout_init(&t->lay, d) < 0) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for %s", s->path, path);
        goto out;
    }
    t->desc = t->own_desc = d;
    t->runs = SIZE_MAX;
    t->dset = dset;
    t->file_type = ftype;
    t->direct = 1;
    t->chunk_rows = t->max_stage = t->cap_stage = t->fill_from = chunk_bytes;
    t->stage = stage;
    t->fill = fill;
    *idx = s->n_tables++;
    d = NULL;
    fill = stage = NULL;
    dset = ftype = H5I_INVALID_HID;
out:
    free(d);
    free(fill);
    free(stage);
    bz_out_h5_close(dset);
    bz_out_h5_close(ftype);
    return rc;
}

/* Bytes of column col's strings in rb's rows. */
static size_t text_bytes(const struct bz_rowbuf *rb, size_t col)
{
    size_t n = 0;
    for (size_t r = 0; r < rb->n_rows; r++) {
        const char *p;
        memcpy(&p, rb->data + r * rb->desc->row_size + rb->desc->cols[col].offset, sizeof p);
        n += p ? strlen(p) : 0;
    }
    return n;
}

/* Whether a row layout has a text reference (its table is a table with
 * strings in the merged file, which the merge rebuilds row by row: its
 * chunks are not deflated by the writer in any layout). */
static int has_text_refs(const struct bz_out_layout *lay)
{
    for (size_t i = 0; i < lay->n_cols; i++)
        if (lay->cols[i].kind == BZ_OUT_TEXT_REF)
            return 1;
    return 0;
}

/* The open dataset for rb's table, created on first use (its chunks sized
 * from rb's rows). */
static int table_for(struct bz_shard *s, const struct bz_rowbuf *rb, struct out_table **out,
                     struct bz_err *err)
{
    int rc = BZ_OK;
    const struct bz_table_desc *desc = rb->desc;
    hid_t ftype = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    unsigned char *fill = NULL, *stage = NULL;
    size_t *col_store = NULL;
    struct bz_out_layout lay = {0};
    for (size_t i = 0; i < s->n_tables; i++) /* the same descriptor: no string compare */
        if (s->tables[i].desc == desc) {
            *out = &s->tables[i];
            return BZ_OK;
        }
    for (size_t i = 0; i < s->n_tables; i++) {
        struct out_table *t = &s->tables[i];
        if (strcmp(t->desc->path, desc->path) == 0) {
            if (!same_schema(t->desc, desc))
                return bz_err_set(err, BZ_EINVAL,
                                  "%s: table %s: two different row layouts for one table", s->path,
                                  desc->path);
            *out = t;
            return BZ_OK;
        }
    }
    /* text stores only where chunks are stored whole (not compressed) */
    int shard_form = bz_out_shard_deflate_level == 0;
    if ((shard_form ? bz_out_layout_init_shard(&lay, desc) : bz_out_layout_init(&lay, desc)) < 0)
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory for its layout", s->path,
                          desc->path);
    if ((ftype = shard_form ? bz_out_h5_shard_type(desc) : bz_out_h5_file_type(desc)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot build its row type", s->path,
                            desc->path);
        goto out;
    }
    if (!(fill = calloc(1, lay.size))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for table %s", s->path, desc->path);
        goto out;
    }
    int64_t no_game = -1;
    memcpy(fill + lay.cols[0].dst, &no_game, sizeof no_game);
    /* a run index: a row per game and table, stored again at each sync */
    size_t cbytes = is_run_index(desc) ? RUNS_CHUNK_BYTES : chunk_bytes_for(rb->n_rows * lay.size);
    hsize_t chunk = bz_out_h5_chunk_rows(lay.size, cbytes, 0);
    int direct = !lay.has_vlen && bz_out_shard_deflate_level == 0;
    int zip = direct && s->layout == BZ_LAYOUT_VIRTUAL && !has_text_refs(&lay);
    /* a zip table (virtual layout): the merged file's pipeline exactly, so
     * that its deflated chunks are the merged file's chunks as they are */
    dset = bz_out_h5_create_table(s->file, desc->path, ftype, 0, chunk,
                                  zip ? BZ_OUT_H5_MERGED_PIPELINE : bz_out_shard_deflate_level,
                                  ftype, fill);
    if (dset < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create table %s", s->path, desc->path);
        goto out;
    }
    if (bz_out_h5_write_col_attrs(dset, desc) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot write its units and doc", s->path,
                            desc->path);
        goto out;
    }
    if (direct && !(stage = malloc((size_t)chunk * lay.size + 4))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for table %s", s->path, desc->path);
        goto out;
    }
    for (size_t i = 0; i < lay.n_cols; i++) {
        if (lay.cols[i].kind != BZ_OUT_TEXT_REF)
            continue;
        if (!col_store) {
            if (!(col_store = malloc(lay.n_cols * sizeof *col_store))) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for table %s", s->path, desc->path);
                goto out;
            }
            for (size_t k = 0; k < lay.n_cols; k++)
                col_store[k] = SIZE_MAX;
        }
        if ((rc = create_store(s, desc, &desc->cols[i], chunk_bytes_for(text_bytes(rb, i)),
                               &col_store[i], err)))
            goto out;
    }
    size_t runs = SIZE_MAX;
    if (!is_run_index(desc) && (rc = create_runs(s, desc, &runs, err)))
        goto out;
    if ((rc = grow_tables(s, desc->path, err)))
        goto out;
    struct out_table *t = &s->tables[s->n_tables++];
    memset(t, 0, sizeof *t);
    t->runs = runs;
    t->max_stage = STAGE_BYTES / lay.size ? STAGE_BYTES / lay.size : 1;
    if (direct) {
        t->direct = 1;
        t->zip = zip;
        t->chunk_rows = (size_t)chunk;
        t->max_stage = t->cap_stage = t->fill_from = (size_t)chunk;
        t->stage = stage;
        stage = NULL;
    }
    t->desc = desc;
    t->dset = dset;
    t->file_type = ftype;
    t->lay = lay;
    t->fill = fill;
    t->col_store = col_store;
    *out = t;
    fill = NULL;
    col_store = NULL;
    dset = ftype = H5I_INVALID_HID;
    memset(&lay, 0, sizeof lay); /* moved into t */
out:
    free(fill);
    free(stage);
    free(col_store);
    bz_out_layout_free(&lay);
    bz_out_h5_close(dset);
    bz_out_h5_close(ftype);
    return rc;
}

static void free_str_blocks(struct str_block *b)
{
    while (b) {
        struct str_block *next = b->next;
        free(b);
        b = next;
    }
}

/* A copy of p (n bytes and a NUL) that lives until t's stage is written. */
static const char *stage_str(struct out_table *t, const char *p, size_t n)
{
    struct str_block *b = t->strings;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > 16384 ? n + 1 : 16384;
        if (!(b = malloc(sizeof *b + cap)))
            return NULL;
        b->next = t->strings;
        b->used = 0;
        b->cap = cap;
        t->strings = b;
    }
    char *dst = b->data + b->used;
    memcpy(dst, p, n);
    dst[n] = '\0';
    b->used += n + 1;
    return dst;
}

/* A zip table's full stage deflated into s->zbuf (bz_zpool_compress_chunk:
 * the merge's compression, run here by the rank); *len 0: the rows do not
 * shrink, store them as they are. */
static int deflate_stage(struct bz_shard *s, struct out_table *t, size_t bytes, size_t *len,
                         struct bz_err *err)
{
    size_t cap = bz_zpool_bound(bytes);
    *len = 0;
    if (!s->zc && !(s->zc = bz_zchunk_create()))
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory for a compressor", s->path);
    if (s->zcap < cap) {
        unsigned char *p = realloc(s->zbuf, cap);
        if (!p)
            return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", s->path, t->desc->path);
        s->zbuf = p;
        s->zcap = cap;
    }
    if (bz_zpool_compress_chunk(s->zc, t->stage, bytes, s->zbuf, s->zcap, len) != 0)
        return bz_err_set(err, BZ_EIO, "%s: table %s: cannot deflate the chunk at row %llu",
                          s->path, t->desc->path, (unsigned long long)t->chunk_base);
    if (*len >= bytes + 4)
        *len = 0;
    return BZ_OK;
}

/* A buffer of at least cap bytes: a free one that fits, or a new one. */
static int zbuf_get(struct bz_shard *s, size_t cap, struct zbuf *b)
{
    for (size_t k = 0; k < s->n_zfree; k++)
        if (s->zfree[k].cap >= cap) {
            *b = s->zfree[k];
            s->zfree[k] = s->zfree[--s->n_zfree];
            return 0;
        }
    b->cap = cap;
    return (b->p = malloc(cap)) ? 0 : -1;
}

/* Keep b for a later job (2 per job at most), or free it. */
static void zbuf_put(struct bz_shard *s, struct zbuf *b)
{
    if (!b->p)
        return;
    if (s->n_zfree < 2 * ZJOBS && s->zfree)
        s->zfree[s->n_zfree++] = *b;
    else
        free(b->p);
    b->p = NULL;
    b->cap = 0;
}

/* The oldest job (done) leaves the ring; its buffers are kept for reuse. */
static void zjob_retire(struct bz_shard *s)
{
    struct zjob *j = &s->zjobs[s->zhead];
    zbuf_put(s, &j->in);
    zbuf_put(s, &j->out);
    s->zhead = (s->zhead + 1) % ZJOBS;
    s->n_zjobs--;
}

/* Wait for the oldest job and store its chunk: deflated (mask 0), or its
 * rows (mask 1) when deflate did not make them smaller. */
static int zjob_store(struct bz_shard *s, struct bz_err *err)
{
    int rc = BZ_OK;
    struct zjob *j = &s->zjobs[s->zhead];
    struct out_table *t = &s->tables[j->table];
    size_t bytes = j->b.chunk_bytes;
    if (bz_zpool_wait(s->zpool, &j->b) != 0) {
        rc = bz_err_set(err, BZ_EIO, "%s: table %s: cannot deflate the chunk at row %llu", s->path,
                        t->desc->path, (unsigned long long)j->base);
    } else if (j->out_len < bytes + 4) {
        if (H5Dwrite_chunk(t->dset, H5P_DEFAULT, 0, &j->base, j->out_len, j->out.p) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot store the chunk at row %llu",
                                s->path, t->desc->path, (unsigned long long)j->base);
    } else {
        bz_out_fletcher32_put(j->in.p + bytes, bz_out_fletcher32(j->in.p, bytes));
        if (H5Dwrite_chunk(t->dset, H5P_DEFAULT, 1u, &j->base, bytes + 4, j->in.p) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot store the chunk at row %llu",
                                s->path, t->desc->path, (unsigned long long)j->base);
    }
    zjob_retire(s);
    return rc;
}

/* Store every job's chunk (before a flush: what it commits is on file). */
static int zjobs_store(struct bz_shard *s, struct bz_err *err)
{
    int rc = BZ_OK;
    while (s->n_zjobs) {
        int r = zjob_store(s, err);
        if (r && !rc) {
            rc = r;
            err = NULL; /* the first failure is the one told */
        }
    }
    return rc;
}

/* t's stage is a full chunk of a zip table: it goes to the threads as a
 * job, and t gets another buffer for the next chunk's rows; *queued 0: the
 * threads are busy with ZJOBS chunks, the caller deflates it. */
static int zjob_start(struct bz_shard *s, struct out_table *t, size_t bytes, int *queued,
                      struct bz_err *err)
{
    int rc;
    *queued = 0;
    if (!s->zpool) {
        if (bz_zpool_create_workers(s->zthreads, ZJOBS_NICE, &s->zpool) != 0 ||
            !(s->zjobs = calloc(ZJOBS, sizeof *s->zjobs)) ||
            !(s->zfree = calloc(2 * ZJOBS, sizeof *s->zfree)))
            return bz_err_set(err, BZ_ENOMEM, "%s: cannot start %d compression threads", s->path,
                              s->zthreads);
    }
    size_t most =
        bz_out_shard_zjobs >= 1 && bz_out_shard_zjobs <= ZJOBS ? bz_out_shard_zjobs : ZJOBS;
    if (s->n_zjobs >= most) {
        if (!bz_zpool_done(s->zpool, &s->zjobs[s->zhead].b))
            return BZ_OK;
        if ((rc = zjob_store(s, err)))
            return rc;
    }
    struct zjob *j = &s->zjobs[(s->zhead + s->n_zjobs) % ZJOBS];
    struct zbuf fresh;
    size_t cap = bz_zpool_bound(bytes);
    if (zbuf_get(s, bytes + 4, &fresh) != 0)
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", s->path, t->desc->path);
    if (zbuf_get(s, cap, &j->out) != 0) {
        zbuf_put(s, &fresh);
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", s->path, t->desc->path);
    }
    j->table = (size_t)(t - s->tables);
    j->base = t->chunk_base;
    j->in = (struct zbuf){t->stage, t->cap_stage * t->lay.size + 4};
    t->stage = fresh.p; /* the stage's capacity is the chunk's rows (direct table) */
    j->out_len = 0;
    j->b = (struct bz_zbatch){0};
    j->b.in = j->in.p;
    j->b.n_chunks = 1;
    j->b.chunk_bytes = bytes;
    j->b.out = j->out.p;
    j->b.out_cap = j->out.cap;
    j->b.out_len = &j->out_len;
    bz_zpool_submit(s->zpool, &j->b);
    s->n_zjobs++;
    *queued = 1;
    return BZ_OK;
}

/* Store a direct table's stage as the chunk at chunk_base: rows past
 * n_stage set to the fill row, the dataset grown to cover the staged rows,
 * the checksum after the rows (the stored bytes are what HDF5's Fletcher32
 * filter would have stored). A full chunk moves the stage to the next.
 * A zip table's chunk is stored deflated once full (filter mask 0); until
 * then, and when deflate would not shrink it, as rows and checksum with the
 * deflate filter marked skipped (mask 1): the same size at every store, so
 * HDF5 rewrites it in place. The deflated full chunk has another size, so
 * HDF5 gives it new space; the uncompressed copy stored at earlier syncs
 * stays where it is (no free-space reuse, which is what keeps the last
 * flushed chunk index valid), dead: a chunk stored partial at least once
 * (at a sync, every BZ_SHARD_SYNC_INTERVAL_S) costs its raw bytes of file
 * on top of its deflated ones, so a virtual shard takes up to its plain
 * size plus its deflated size on disk until the merge deletes it. */
static int store_chunk(struct bz_shard *s, struct out_table *t, struct bz_err *err)
{
    size_t row = t->lay.size, bytes = t->chunk_rows * row, zlen = 0;
    hsize_t total = t->chunk_base + t->n_stage;
    int rc;
    if (t->n_stage == t->stored_stage)
        return BZ_OK;
    if (t->n_stage < t->fill_from) { /* one fill row, then doubling copies */
        unsigned char *base = t->stage + t->n_stage * row;
        size_t n = t->fill_from - t->n_stage, done = 1;
        memcpy(base, t->fill, row);
        while (done < n) {
            size_t k = done < n - done ? done : n - done;
            memcpy(base + done * row, base, k * row);
            done += k;
        }
    }
    if (t->fill_from > t->n_stage)
        t->fill_from = t->n_stage;
    if (total > t->n_rows) {
        if (H5Dset_extent(t->dset, &total) < 0)
            return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot grow to %llu rows", s->path,
                                  t->desc->path, (unsigned long long)total);
        t->n_rows = total;
    }
    if (t->zip && t->n_stage == t->chunk_rows && s->zthreads) { /* deflated on a thread */
        int queued;
        if ((rc = zjob_start(s, t, bytes, &queued, err)))
            return rc;
        if (queued) {
            t->chunk_base += t->chunk_rows;
            t->n_stage = t->stored_stage = 0;
            t->fill_from = t->chunk_rows; /* the new stage holds no fill rows */
            return BZ_OK;
        }
    }
    if (t->zip && t->n_stage == t->chunk_rows && (rc = deflate_stage(s, t, bytes, &zlen, err)))
        return rc;
    uint32_t mask = t->zip && !zlen ? 1u : 0u; /* bit 0: the deflate filter skipped */
    if (!zlen)
        bz_out_fletcher32_put(t->stage + bytes, bz_out_fletcher32(t->stage, bytes));
    if (H5Dwrite_chunk(t->dset, H5P_DEFAULT, mask, &t->chunk_base, zlen ? zlen : bytes + 4,
                       zlen ? s->zbuf : t->stage) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot store the chunk at row %llu",
                              s->path, t->desc->path, (unsigned long long)t->chunk_base);
    t->stored_stage = t->n_stage;
    if (t->n_stage == t->chunk_rows) {
        t->chunk_base += t->chunk_rows;
        t->n_stage = t->stored_stage = 0;
        t->fill_from = t->chunk_rows; /* the stage holds the old chunk's rows */
    }
    return BZ_OK;
}

/* Write t's staged rows at the end of its dataset (no flush). */
static int write_stage(struct bz_shard *s, struct out_table *t, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    if (t->direct)
        return store_chunk(s, t, err);
    if (!t->n_stage)
        return BZ_OK;
    hsize_t start = t->n_rows, count = t->n_stage, total = t->n_rows + t->n_stage;
    if (H5Dset_extent(t->dset, &total) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot grow to %llu rows", s->path,
                            t->desc->path, (unsigned long long)total);
        goto out;
    }
    t->n_rows = total;
    if ((fspace = H5Dget_space(t->dset)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
        (mspace = H5Screate_simple(1, &count, NULL)) < 0 ||
        H5Dwrite(t->dset, t->file_type, mspace, fspace, s->dxpl, t->stage) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot write %zu rows", s->path,
                            t->desc->path, t->n_stage);
        goto out;
    }
    t->n_stage = 0;
    if (t->strings) { /* keep the newest block for the next batch */
        free_str_blocks(t->strings->next);
        t->strings->next = NULL;
        t->strings->used = 0;
    }
out:
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    return rc;
}

static int write_stages(struct bz_shard *s, struct bz_err *err)
{
    for (size_t i = 0; i < s->n_tables; i++) {
        int rc = write_stage(s, &s->tables[i], err);
        if (rc)
            return rc;
    }
    /* then the threads' chunks, those a full stage just gave them too:
     * every staged row is on file before the flush that commits it */
    return zjobs_store(s, err);
}

/* Append n bytes at p to the text store st; *offset: where they start. */
static int store_text(struct bz_shard *s, struct out_table *st, const char *p, size_t n,
                      uint64_t *offset, struct bz_err *err)
{
    int rc;
    *offset = st->chunk_base + st->n_stage;
    while (n) {
        if (st->n_stage == st->chunk_rows && (rc = store_chunk(s, st, err)))
            return rc;
        size_t k = st->chunk_rows - st->n_stage < n ? st->chunk_rows - st->n_stage : n;
        memcpy(st->stage + st->n_stage, p, k);
        st->n_stage += k;
        if (st->n_stage > st->fill_from)
            st->fill_from = st->n_stage;
        s->unflushed += k;
        p += k;
        n -= k;
    }
    return BZ_OK;
}

/* Copy n bytes: the short runs a row is made of (one or two columns) as
 * one or two inline moves, not a call to memcpy each. */
static inline void copy_run(unsigned char *dst, const unsigned char *src, size_t n)
{
    if (n >= 8 && n <= 16) { /* two 8-byte moves, overlapping when n < 16 */
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, n);
    }
}

/* p into a fixed-width field of w bytes, NUL-padded; -1 when p is longer
 * than w bytes. Labels are a few bytes: a byte loop beats strnlen, memcpy
 * and memset calls. */
static inline int copy_fixed_str(unsigned char *dst, const char *p, size_t w)
{
    if (w == 8) /* the usual widths: the padding as constant-size stores */
        memset(dst, 0, 8);
    else if (w == 16)
        memset(dst, 0, 16);
    else if (w == 32)
        memset(dst, 0, 32);
    else
        memset(dst, 0, w);
    size_t i = 0;
    for (; i < w && p[i]; i++)
        dst[i] = (unsigned char)p[i];
    return i == w && p[w] ? -1 : 0;
}

/* Copy row src (C row struct) into dst (file layout). */
static int pack_row(struct bz_shard *s, const struct out_table *t, struct out_table *strs,
                    const unsigned char *src, unsigned char *dst, struct bz_err *err)
{
    const struct bz_out_layout *l = &t->lay;
    for (size_t k = 0; k < l->n_ops; k++) {
        const struct bz_out_layout_col *o = &l->ops[k];
        if (o->kind == BZ_OUT_RAW) {
            copy_run(dst + o->dst, src + o->src, o->size);
            continue;
        }
        const char *p;
        memcpy(&p, src + o->src, sizeof p);
        if (!p)
            p = "";
        if (o->kind == BZ_OUT_FIXED_STR) {
            if (copy_fixed_str(dst + o->dst, p, o->size) < 0)
                return bz_records_check_width(t->desc, &t->desc->cols[o->col], p, err);
        } else if (o->kind == BZ_OUT_TEXT_REF) {
            size_t n = strlen(p);
            uint64_t off;
            if (n > UINT32_MAX)
                return bz_err_set(err, BZ_EINVAL,
                                  "table %s column %s: a text of %zu bytes (at most %u)",
                                  t->desc->path, t->desc->cols[o->col].name, n, UINT32_MAX);
            int rc = store_text(s, &s->tables[t->col_store[o->col]], p, n, &off, err);
            if (rc)
                return rc;
            uint32_t len = (uint32_t)n;
            memcpy(dst + o->dst, &off, sizeof off);
            memcpy(dst + o->dst + sizeof off, &len, sizeof len);
        } else {
            const char *copy = stage_str(strs, p, strlen(p));
            if (!copy)
                return bz_err_set(err, BZ_ENOMEM, "table %s: no memory", t->desc->path);
            memcpy(dst + o->dst, &copy, sizeof copy);
        }
    }
    return BZ_OK;
}

/* Stage rb's rows for its table, writing the stage whenever it is full. */
static int stage_rows(struct bz_shard *s, const struct bz_rowbuf *rb, struct bz_err *err)
{
    int rc;
    struct out_table *t = NULL;
    if ((rc = table_for(s, rb, &t, err)))
        return rc;
    hsize_t start = (t->direct ? t->chunk_base : t->n_rows) + t->n_stage;
    size_t runs = t->runs;
    for (size_t r = 0; r < rb->n_rows; r++) {
        if (t->n_stage == t->max_stage && (rc = write_stage(s, t, err)))
            return rc;
        if (t->n_stage == t->cap_stage) {
            size_t cap = t->cap_stage ? 2 * t->cap_stage : 16;
            if (cap > t->max_stage)
                cap = t->max_stage;
            unsigned char *p = realloc(t->stage, cap * t->lay.size);
            if (!p)
                return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", s->path,
                                  rb->desc->path);
            t->stage = p;
            t->cap_stage = cap;
        }
        if ((rc = pack_row(s, t, t, rb->data + r * rb->desc->row_size,
                           t->stage + t->n_stage * t->lay.size, err)))
            return rc;
        t->n_stage++;
        if (t->n_stage > t->fill_from)
            t->fill_from = t->n_stage;
        s->unflushed += t->lay.size;
    }
    return runs == SIZE_MAX ? BZ_OK : index_runs(s, runs, rb, start, err);
}

/* Checks that make a bad records set fail before anything is written: a
 * single /games row, game_id first in every table, one game per append, not
 * already committed here. */
static int check_records(struct bz_shard *s, const struct bz_records *rec, int need_games,
                         int64_t *game_id, size_t *n_rows, struct bz_err *err)
{
    const struct bz_rowbuf *games = NULL;
    *n_rows = 0;
    for (size_t i = 0; i < rec->n_tables; i++) {
        const struct bz_table_desc *d = rec->tables[i].desc;
        if (!d || !d->path || d->path[0] != '/' || d->n_cols == 0 ||
            strcmp(d->cols[0].name, "game_id") != 0 || d->cols[0].type != BZ_COL_I64)
            return bz_err_set(err, BZ_EINVAL,
                              "%s: table %s: the first column must be game_id (int64)", s->path,
                              d && d->path ? d->path : "(null)");
        if (is_games(d) && rec->tables[i].n_rows) {
            if (games)
                return bz_err_set(err, BZ_EINVAL, "%s: two /games tables in one game", s->path);
            games = &rec->tables[i];
        }
        *n_rows += rec->tables[i].n_rows;
    }
    if (games && games->n_rows != 1)
        return bz_err_set(err, BZ_EINVAL, "%s: a game must have exactly one /games row, got %zu",
                          s->path, games->n_rows);
    if (!games || games->n_rows == 0) {
        if (need_games)
            return bz_err_set(err, BZ_EINVAL, "%s: the game has no /games row (commit record)",
                              s->path);
        /* test hook: take the id from any row */
        *game_id = -1;
        for (size_t i = 0; i < rec->n_tables && *game_id < 0; i++)
            if (rec->tables[i].n_rows)
                *game_id = row_game_id(&rec->tables[i], 0);
    } else {
        *game_id = row_game_id(games, 0);
    }
    if (*game_id < 0)
        return bz_err_set(err, BZ_EINVAL, "%s: negative game_id %" PRId64, s->path, *game_id);
    for (size_t i = 0; i < rec->n_tables; i++) {
        const struct bz_rowbuf *rb = &rec->tables[i];
        for (size_t r = 0; r < rb->n_rows; r++)
            if (row_game_id(rb, r) != *game_id)
                return bz_err_set(err, BZ_EINVAL,
                                  "%s: table %s row %zu has game_id %" PRId64 ", expected %" PRId64
                                  " (one game per append)",
                                  s->path, rb->desc->path, r, row_game_id(rb, r), *game_id);
    }
    /* ids mostly come in increasing order: a scan only for one that does
     * not (the scan would cost a long sweep's shard O(games) per game) */
    for (size_t i = 0; *game_id <= s->max_id && i < s->n_ids; i++)
        if (s->ids[i] == *game_id)
            return bz_err_set(err, BZ_EINVAL, "%s: game %" PRId64 " is already committed here",
                              s->path, *game_id);
    return BZ_OK;
}

/* The durability thread's part of a sync (the flush is done): the fsync of
 * the file, then the pending journal lines and the journal's fsync, on
 * descriptors of the job's own (the shard may be closed before the job
 * runs). The file's is opened again by its path, not dup'd from HDF5's: a
 * dup shares HDF5's open file description and so its flock, and while the
 * job held it the file could not be opened again (reopen: a long game's
 * checkpoint failed with "unable to lock file"). fsync writes the file's
 * pages whichever descriptor asks. */
static int hand_over(struct bz_shard *s, struct bz_err *err)
{
    int dfd = open(s->path, O_RDONLY | O_CLOEXEC), jfd = -1;
    if (dfd < 0 || (s->n_pending && (jfd = dup(s->journal_fd)) < 0)) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return bz_err_set(err, BZ_EIO, "%s: %s for its sync: %s", s->path,
                          dfd < 0 ? "cannot open again" : "dup of the journal", strerror(e));
    }
    return bz_durable_submit(s->durable, dfd, jfd, s->pending, s->pending_len, s->path,
                             s->journal_path, 0, err);
}

/* Make everything written so far durable: flush, fsync, then the journal
 * lines of the games it commits, then fsync the journal (with a durability
 * thread, the flush here and the rest there, in order). */
static int sync_shard(struct bz_shard *s, struct bz_err *err)
{
    int rc;
    if (!s->evictions_off && !s->n_pending)
        return BZ_OK;
    if ((rc = write_stages(s, err)))
        return rc;
    if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot flush", s->path);
    if ((rc = set_evictions(s, 1, err)))
        return rc;
    s->evictions_off = 0;
    s->unflushed = 0;
    if (s->durable) {
        rc = hand_over(s, err);
    } else {
        void *handle = NULL;
        if (H5Fget_vfd_handle(s->file, H5P_DEFAULT, &handle) < 0 || !handle)
            return bz_out_h5_fail(err, BZ_EIO, "%s: cannot reach the file descriptor", s->path);
        rc = bz_durable_run(*(int *)handle, s->n_pending ? s->journal_fd : -1, s->pending,
                            s->pending_len, s->path, s->journal_path, err);
    }
    if (rc)
        return rc;
    s->pending_len = 0;
    s->n_pending = 0;
    return BZ_OK;
}

static int write_all(struct bz_shard *s, const struct bz_records *rec, int commit, int sync,
                     int64_t game_id, size_t n_rows, struct bz_err *err)
{
    int rc;
    if (!s->evictions_off) {
        if ((rc = set_evictions(s, 0, err)))
            return rc;
        s->evictions_off = 1;
    }
    for (size_t i = 0; i < rec->n_tables; i++) {
        const struct bz_rowbuf *rb = &rec->tables[i];
        if (rb->n_rows && !is_games(rb->desc) && (rc = stage_rows(s, rb, err)))
            return rc;
    }
    if (s->put_game != game_id) {
        s->put_game = game_id;
        s->put_rows = 0;
    }
    s->put_rows += n_rows;
    if (commit) {
        for (size_t i = 0; i < rec->n_tables; i++)
            if (is_games(rec->tables[i].desc) && (rc = stage_rows(s, &rec->tables[i], err)))
                return rc;
        char line[96];
        int len =
            snprintf(line, sizeof line, "committed %" PRId64 " rows=%zu\n", game_id, s->put_rows);
        s->put_game = -1;
        s->put_rows = 0;
        if (s->pending_len + (size_t)len > s->pending_cap) {
            size_t cap = 2 * (s->pending_cap + (size_t)len);
            char *p = realloc(s->pending, cap);
            if (!p)
                return bz_err_set(err, BZ_ENOMEM, "%s: no memory", s->path);
            s->pending = p;
            s->pending_cap = cap;
        }
        memcpy(s->pending + s->pending_len, line, (size_t)len);
        s->pending_len += (size_t)len;
        s->n_pending++;
    }
    return sync ? sync_shard(s, err) : BZ_OK;
}

void bz_shard_set_threads(struct bz_shard *s, int n)
{
    s->zthreads = n > 0 ? n : 0; /* the pool starts with the first full chunk */
}

void bz_shard_set_layout(struct bz_shard *s, enum bz_layout layout)
{
    s->layout = layout; /* read when a table is created (table_for) */
}

void bz_shard_set_durable(struct bz_shard *s, struct bz_durable *d)
{
    s->durable = d;
}

void bz_shard_set_group_commit(struct bz_shard *s, int on)
{
    s->group_commit = on;
}

size_t bz_shard_pending(const struct bz_shard *s)
{
    return s ? s->n_pending : 0;
}

int bz_shard_sync_due(const struct bz_shard *s)
{
    return s && s->n_pending > 0 &&
           (s->n_pending >= BZ_SHARD_SYNC_MAX_GAMES ||
            mono_s() - s->synced_at >= BZ_SHARD_SYNC_INTERVAL_S);
}

int bz_shard_sync(struct bz_shard *s, struct bz_err *err)
{
    if (!s)
        return BZ_OK;
    if (s->broken)
        return bz_err_set(err, BZ_EIO, "%s: an earlier append failed", s->path);
    int rc = sync_shard(s, err);
    if (rc)
        s->broken = 1;
    else
        s->synced_at = mono_s();
    return rc;
}

/* commit: rec holds the game's last rows and its /games row; else rows of
 * a game still being played (put) or, for tests, a game cut short before its
 * commit (sync on: flushed as a killed writer would leave it). */
static int append(struct bz_shard *s, const struct bz_records *rec, int commit, int sync,
                  struct bz_err *err)
{
    int rc;
    int64_t game_id = -1; /* -Os cannot see check_records set it on success */
    size_t n_rows;
    bz_out_h5_quiet();
    if (s->broken)
        return bz_err_set(err, BZ_EIO,
                          "%s: an earlier append failed; this shard takes no more games "
                          "(start a new shard)",
                          s->path);
    if ((rc = check_records(s, rec, commit, &game_id, &n_rows, err)))
        return rc;
    if (commit && s->n_ids == s->cap_ids) {
        size_t cap = s->cap_ids ? 2 * s->cap_ids : 64;
        int64_t *p = realloc(s->ids, cap * sizeof *p);
        if (!p)
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory", s->path);
        s->ids = p;
        s->cap_ids = cap;
    }
    if ((rc = write_all(s, rec, commit, sync, game_id, n_rows, err))) {
        s->broken = 1;
        return rc;
    }
    if (commit) {
        s->ids[s->n_ids++] = game_id;
        if (game_id > s->max_id)
            s->max_id = game_id;
    }
    return BZ_OK;
}

int bz_shard_append(struct bz_shard *s, const struct bz_records *rec, struct bz_err *err)
{
    return append(s, rec, 1, !s->group_commit, err);
}

int bz_shard_append_uncommitted(struct bz_shard *s, const struct bz_records *rec,
                                struct bz_err *err)
{
    return append(s, rec, 0, 1, err);
}

int bz_shard_put(struct bz_shard *s, const struct bz_records *rec, struct bz_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < rec->n_tables; i++) {
        if (is_games(rec->tables[i].desc) && rec->tables[i].n_rows)
            return bz_err_set(err, BZ_EINVAL,
                              "%s: a game's /games row (its commit record) goes last, with "
                              "bz_shard_append",
                              s->path);
        n += rec->tables[i].n_rows;
    }
    if (!n)
        return BZ_OK;
    /* a long game: flush now and then (nothing is committed by it) and
     * start a fresh metadata cache, so memory does not grow with its turns */
    int checkpoint = s->unflushed >= bz_out_shard_checkpoint_bytes;
    int rc = append(s, rec, 0, checkpoint, err);
    if (!rc && checkpoint && (rc = reopen(s, err)))
        s->broken = 1;
    return rc;
}

int bz_shard_close(struct bz_shard *s, struct bz_err *err)
{
    int rc = BZ_OK;
    if (!s)
        return BZ_OK;
    bz_out_h5_quiet();
    if (!s->broken)
        rc = sync_shard(s, err);
    for (size_t i = 0; i < s->n_tables; i++) {
        struct out_table *t = &s->tables[i];
        if (t->dset >= 0 && H5Dclose(t->dset) < 0 && !rc)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close table %s", s->path, t->desc->path);
        H5Tclose(t->file_type);
        bz_out_layout_free(&t->lay);
        free(t->stage);
        free(t->fill);
        free(t->col_store);
        free(t->own_desc);
        free_str_blocks(t->strings);
    }
    while (s->n_zjobs) { /* a failed shard: the threads finish with the buffers, nothing stored */
        (void)bz_zpool_wait(s->zpool, &s->zjobs[s->zhead].b);
        zjob_retire(s);
    }
    bz_zpool_destroy(s->zpool);
    for (size_t k = 0; k < s->n_zfree; k++)
        free(s->zfree[k].p);
    free(s->zfree);
    free(s->zjobs);
    bz_zchunk_destroy(s->zc);
    free(s->zbuf);
    int rc_close = bz_out_h5_close_file(&s->file, s->path, rc ? NULL : err);
    if (!rc)
        rc = rc_close;
    if (s->journal_fd >= 0 && close(s->journal_fd) != 0 && !rc)
        rc = bz_err_set(err, BZ_EIO, "%s: close: %s", s->journal_path, strerror(errno));
    if (s->dxpl >= 0)
        H5Pclose(s->dxpl);
    free(s->tconv);
    free(s->bkg);
    free(s->tables);
    free(s->ids);
    free(s->pending);
    free(s->journal_path);
    free(s->path);
    free(s);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted, distinct, non-negative (fill rows have game_id -1). */
static size_t sort_ids(int64_t *ids, size_t n)
{
    if (n)
        qsort(ids, n, sizeof *ids, cmp_i64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && (k == 0 || ids[k - 1] != ids[i]))
            ids[k++] = ids[i];
    return k;
}

/* Game ids with a line in the journal; *ids NULL and 0 when there is no
 * journal (then /games alone is trusted). */
static int journal_ids(const char *path, int64_t **ids, size_t *n, int *present, struct bz_err *err)
{
    *ids = NULL;
    *n = 0;
    *present = 0;
    char *jpath = str_concat(path, ".journal");
    if (!jpath)
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory", path);
    /* O_NONBLOCK and a regular-file check: a FIFO must not block us */
    int fd = open(jpath, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        int rc = bz_err_set(err, BZ_EIO, "%s: not a regular file", jpath);
        free(jpath);
        return rc;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        int rc = e == ENOENT ? BZ_OK
                             : bz_err_set(err, BZ_EIO, "%s: cannot read: %s", jpath, strerror(e));
        free(jpath);
        return rc;
    }
    *present = 1;
    size_t cap = 0;
    char line[128];
    int rc = BZ_OK;
    while (fgets(line, sizeof line, f)) {
        long long id;
        if (sscanf(line, "committed %lld rows=", &id) != 1 || !strchr(line, '\n'))
            continue;
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 256;
            int64_t *p = realloc(*ids, nc * sizeof *p);
            if (!p) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", jpath);
                break;
            }
            *ids = p;
            cap = nc;
        }
        (*ids)[(*n)++] = (int64_t)id;
    }
    fclose(f);
    free(jpath);
    if (!rc)
        *n = sort_ids(*ids, *n);
    return rc;
}

/* Keep the ids of a[] that are also in b[] (both sorted, distinct). */
static size_t intersect(int64_t *a, size_t na, const int64_t *b, size_t nb)
{
    size_t k = 0, j = 0;
    for (size_t i = 0; i < na; i++) {
        while (j < nb && b[j] < a[i])
            j++;
        if (j < nb && b[j] == a[i])
            a[k++] = a[i];
    }
    return k;
}

/* Rows at the head of a table whose game is committed (ids sorted): a
 * shard's games are appended one after the other and committed in that
 * order, so committed rows are a prefix of every table. */
static hsize_t committed_prefix(const int64_t *row_ids, size_t n_rows, const int64_t *ids,
                                size_t n_ids)
{
    size_t r = 0;
    if (!n_ids) /* a shard killed inside its first game: ids may be NULL */
        return 0;
    while (r < n_rows && bsearch(&row_ids[r], ids, n_ids, sizeof *ids, cmp_i64))
        r++;
    return (hsize_t)r;
}

/* A writer killed inside H5Fflush can leave metadata that points past the
 * file's recorded end, or a /games row whose game's other rows did not reach
 * the file. So: a committed game needs its /games row AND its journal line
 * (written only after the flush and fsync completed), and every table's
 * committed rows must read back in full; otherwise BZ_EIO and the caller
 * replays the shard's games elsewhere. Rows past the last commit are never
 * read but for their game_id. */
static int committed(const char *path, int check, int64_t **ids, size_t *n, struct bz_err *err);
static int check_texts(hid_t dset, hsize_t n_rows, const char *path, const char *table,
                       struct bz_err *err);

int bz_shard_recorded_nothing(const char *path, int *nothing, struct bz_err *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int present = 0;
    int rc = journal_ids(path, &ids, &n, &present, err);
    free(ids);
    /* without a journal (a writer that made the shard first), an empty
     * file proves it: every commit flushes, and a flush writes bytes */
    struct stat st;
    *nothing = !rc && n == 0 && (present || (stat(path, &st) == 0 && st.st_size == 0));
    return rc;
}

int bz_shard_committed(const char *path, int64_t **ids, size_t *n, struct bz_err *err)
{
    return committed(path, 1, ids, n, err);
}

int bz_shard_committed_quick(const char *path, int64_t **ids, size_t *n, struct bz_err *err)
{
    return committed(path, 0, ids, n, err);
}

static int committed(const char *path, int check, int64_t **ids, size_t *n, struct bz_err *err)
{
    int rc;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    char **tables = NULL;
    size_t n_tables = 0, n_journal = 0, n_rows = 0;
    int64_t *jids = NULL, *row_ids = NULL;
    int has_journal = 0;
    *ids = NULL;
    *n = 0;
    if ((rc = bz_out_h5_open_ro(path, &file, err)))
        return rc;
    if ((rc = bz_out_h5_list_datasets(file, &tables, &n_tables, path, err)))
        goto out;
    /* the commit records first: /games ids that the journal confirms */
    for (size_t t = 0; t < n_tables; t++) {
        if (strcmp(tables[t], GAMES_PATH) != 0)
            continue;
        if ((dset = H5Dopen2(file, tables[t], H5P_DEFAULT)) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open table %s", path, tables[t]);
            goto out;
        }
        if ((rc = bz_out_h5_read_game_ids(dset, ids, n, path, GAMES_PATH, err))) {
            if (rc == BZ_EINVAL)
                rc = err ? (err->code = BZ_EIO) : BZ_EIO;
            goto out;
        }
        H5Dclose(dset);
        dset = H5I_INVALID_HID;
    }
    *n = sort_ids(*ids, *n);
    if ((rc = journal_ids(path, &jids, &n_journal, &has_journal, err)))
        goto out;
    if (has_journal)
        *n = intersect(*ids, *n, jids, n_journal);
    /* then every table's committed rows must read back */
    for (size_t t = 0; check && t < n_tables; t++) {
        if (strcmp(tables[t], BZ_OUT_TEXT_BYTES_PATH) == 0) { /* a results file's texts */
            if ((rc = bz_out_texts_check(file, path, err)))
                goto out;
            continue;
        }
        if ((dset = H5Dopen2(file, tables[t], H5P_DEFAULT)) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open table %s", path, tables[t]);
            goto out;
        }
        if ((rc = bz_out_h5_read_game_ids(dset, &row_ids, &n_rows, path, tables[t], err))) {
            if (rc == BZ_EINVAL)
                rc = err ? (err->code = BZ_EIO) : BZ_EIO;
            goto out;
        }
        hsize_t prefix = committed_prefix(row_ids, n_rows, *ids, *n);
        free(row_ids);
        row_ids = NULL;
        if ((rc = bz_out_h5_check_readable(dset, prefix, path, tables[t], err)) ||
            (rc = check_texts(dset, prefix, path, tables[t], err)))
            goto out;
        H5Dclose(dset);
        dset = H5I_INVALID_HID;
    }
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
    }
out:
    free(jids);
    free(row_ids);
    bz_out_free_paths(tables, n_tables);
    bz_out_h5_close(dset);
    if (file >= 0 && H5Fclose(file) < 0 && !rc)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close", path);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- reading a shard's text stores (out_h5.h) ----------------------------- */

#define MAX_TEXT_COLS 8

/* The members of dset's row type that are text references with a store. */
struct text_cols {
    size_t n;
    unsigned member[MAX_TEXT_COLS];
    char *name[MAX_TEXT_COLS];
    hid_t store[MAX_TEXT_COLS];
};

static void text_cols_free(struct text_cols *tc)
{
    for (size_t k = 0; k < tc->n; k++) {
        H5free_memory(tc->name[k]);
        bz_out_h5_close(tc->store[k]);
    }
    tc->n = 0;
}

/* Whether path exists in file: every component checked in turn
 * (H5Lexists fails on a missing intermediate group). <0 on an error. */
static htri_t path_exists(hid_t file, const char *path)
{
    char buf[1600];
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
        buf[i] = c;
        if (e <= 0)
            return e;
    }
    return 1;
}

/* <0 on an HDF5 error; tc->n 0 when dset has no text store. */
static int find_text_cols(hid_t dset, hid_t ftype, struct text_cols *tc)
{
    int rc = 0;
    tc->n = 0;
    if (H5Tget_class(ftype) != H5T_COMPOUND)
        return 0;
    hid_t file = H5Iget_file_id(dset);
    if (file < 0)
        return -1;
    htri_t has = path_exists(file, BZ_OUT_SHARD_TEXT_GROUP);
    char dname[1024], path[1600];
    ssize_t dl = has > 0 ? H5Iget_name(dset, dname, sizeof dname) : 0;
    int nm = has > 0 ? H5Tget_nmembers(ftype) : 0;
    if (has < 0 || dl < 0 || (size_t)dl >= sizeof dname || nm < 0) {
        rc = -1;
        goto out;
    }
    snprintf(path, sizeof path, "%s%s", BZ_OUT_SHARD_TEXT_GROUP, dname);
    if (has > 0 && (has = path_exists(file, path)) < 0)
        rc = -1;
    for (int i = 0; has > 0 && i < nm && !rc; i++) {
        if (H5Tget_member_class(ftype, (unsigned)i) != H5T_COMPOUND)
            continue;
        char *name = H5Tget_member_name(ftype, (unsigned)i);
        if (!name) {
            rc = -1;
            break;
        }
        snprintf(path, sizeof path, "%s%s/%s", BZ_OUT_SHARD_TEXT_GROUP, dname, name);
        htri_t e = path_exists(file, path);
        if (e <= 0 || tc->n == MAX_TEXT_COLS) {
            H5free_memory(name);
            rc = e < 0 || e > 0 ? -1 : 0;
            continue;
        }
        tc->member[tc->n] = (unsigned)i;
        tc->name[tc->n] = name;
        tc->store[tc->n] = H5Dopen2(file, path, H5P_DEFAULT);
        if (tc->store[tc->n++] < 0)
            rc = -1;
    }
out:
    H5Fclose(file);
    if (rc)
        text_cols_free(tc);
    return rc;
}

hid_t bz_shard_table_type(hid_t dset)
{
    struct text_cols tc;
    hid_t ftype = H5Dget_type(dset), t = H5I_INVALID_HID, vstr = H5I_INVALID_HID;
    if (ftype < 0 || find_text_cols(dset, ftype, &tc) < 0) {
        bz_out_h5_close(ftype);
        return H5I_INVALID_HID;
    }
    if (!tc.n)
        return ftype;
    /* the members in order, packed (as bz_out_h5_file_type), each text
     * reference as a variable-length string */
    int nm = H5Tget_nmembers(ftype);
    size_t size = 0, k = 0;
    if ((vstr = bz_out_h5_str_type()) < 0 || nm < 0)
        goto fail;
    for (int pass = 0; pass < 2; pass++) {
        size_t off = 0;
        k = 0;
        for (int i = 0; i < nm; i++) {
            int text = k < tc.n && tc.member[k] == (unsigned)i;
            hid_t mt = text ? H5Tcopy(vstr) : H5Tget_member_type(ftype, (unsigned)i);
            char *name = pass ? H5Tget_member_name(ftype, (unsigned)i) : NULL;
            herr_t ins = mt < 0 || (pass && (!name || H5Tinsert(t, name, off, mt) < 0)) ? -1 : 0;
            off += mt >= 0 ? H5Tget_size(mt) : 0;
            k += (size_t)text;
            H5free_memory(name);
            bz_out_h5_close(mt);
            if (ins < 0)
                goto fail;
        }
        if (!pass && (t = H5Tcreate(H5T_COMPOUND, (size = off))) < 0)
            goto fail;
    }
    text_cols_free(&tc);
    H5Tclose(vstr);
    H5Tclose(ftype);
    return t;
fail:
    text_cols_free(&tc);
    bz_out_h5_close(t);
    bz_out_h5_close(vstr);
    bz_out_h5_close(ftype);
    return H5I_INVALID_HID;
}

/* A text reference in memory (bz_out_h5_text_ref_type's members). */
struct text_ref {
    uint64_t offset;
    uint32_t length;
};

struct read_ctx {
    const struct text_cols *tc;
    const unsigned char *refs;
    size_t ref_size, msize;
    size_t text_off[MAX_TEXT_COLS]; /* the strings' offsets in a buf row */
    uint64_t lo[MAX_TEXT_COLS], hi[MAX_TEXT_COLS];
    const unsigned char *bytes[MAX_TEXT_COLS];
    unsigned char *buf;
    int pass, failed;
};

static herr_t text_cb(void *elem, hid_t type, unsigned ndim, const hsize_t *point, void *data)
{
    struct read_ctx *c = data;
    (void)elem;
    (void)type;
    (void)ndim;
    const unsigned char *ref = c->refs + (size_t)point[0] * c->ref_size;
    unsigned char *row = c->buf + (size_t)point[0] * c->msize;
    for (size_t k = 0; k < c->tc->n; k++) {
        struct text_ref r;
        memcpy(&r, ref + k * sizeof r, sizeof r);
        char *str = NULL;
        /* a crafted reference must not reach past the bytes read */
        int bad = r.length > UINT64_MAX - r.offset ||
                  (c->pass == 1 && (r.offset < c->lo[k] || r.offset + r.length > c->hi[k]));
        if (bad) {
            c->failed = 1;
        } else if (c->pass == 0) {
            if (r.offset < c->lo[k])
                c->lo[k] = r.offset;
            if (r.offset + r.length > c->hi[k])
                c->hi[k] = r.offset + r.length;
        } else if (!c->failed && (str = malloc((size_t)r.length + 1))) {
            memcpy(str, c->bytes[k] + (r.offset - c->lo[k]), r.length);
            str[r.length] = '\0';
        } else {
            c->failed = 1;
        }
        memcpy(row + c->text_off[k], &str, sizeof str);
    }
    return 0;
}

herr_t bz_shard_read(hid_t dset, hid_t mtype, hid_t mspace, hid_t fspace, void *buf)
{
    return bz_shard_read_dxpl(dset, mtype, mspace, fspace, H5P_DEFAULT, buf);
}

herr_t bz_shard_read_dxpl(hid_t dset, hid_t mtype, hid_t mspace, hid_t fspace, hid_t dxpl,
                          void *buf)
{
    struct text_cols tc = {0};
    hid_t ftype = H5Dget_type(dset), rtype = H5I_INVALID_HID, reftype = H5I_INVALID_HID;
    hid_t one = H5I_INVALID_HID, bspace = H5I_INVALID_HID, bmem = H5I_INVALID_HID;
    hid_t own_space = H5I_INVALID_HID;
    unsigned char *refs = NULL, *bytes[MAX_TEXT_COLS] = {0};
    herr_t rc = -1;
    if (ftype < 0 || find_text_cols(dset, ftype, &tc) < 0)
        goto out;
    if (!tc.n) {
        rc = H5Dread(dset, mtype, mspace, fspace, dxpl, buf);
        goto out;
    }
    struct read_ctx c = {.tc = &tc, .buf = buf, .msize = H5Tget_size(mtype)};
    c.ref_size = tc.n * sizeof(struct text_ref);
    /* the other members straight into buf, then the references */
    int nm = H5Tget_nmembers(mtype);
    if (nm < 0 || (rtype = H5Tcreate(H5T_COMPOUND, c.msize)) < 0 ||
        (reftype = H5Tcreate(H5T_COMPOUND, c.ref_size)) < 0 ||
        (one = H5Tcreate(H5T_COMPOUND, sizeof(struct text_ref))) < 0 ||
        H5Tinsert(one, "offset", offsetof(struct text_ref, offset), H5T_NATIVE_UINT64) < 0 ||
        H5Tinsert(one, "length", offsetof(struct text_ref, length), H5T_NATIVE_UINT32) < 0)
        goto out;
    size_t found = 0;
    for (int j = 0; j < nm; j++) {
        char *name = H5Tget_member_name(mtype, (unsigned)j);
        hid_t mt = name ? H5Tget_member_type(mtype, (unsigned)j) : H5I_INVALID_HID;
        size_t off = H5Tget_member_offset(mtype, (unsigned)j), k = 0;
        while (name && k < tc.n && strcmp(tc.name[k], name) != 0)
            k++;
        herr_t ok = mt < 0     ? -1
                    : k < tc.n ? H5Tinsert(reftype, name, k * sizeof(struct text_ref), one)
                               : H5Tinsert(rtype, name, off, mt);
        if (name && k < tc.n) {
            c.text_off[k] = off;
            found++;
        }
        H5free_memory(name);
        bz_out_h5_close(mt);
        if (ok < 0)
            goto out;
    }
    /* H5S_ALL as memory space: the file's selection (or the whole table) */
    if (mspace == H5S_ALL &&
        (mspace = own_space = fspace == H5S_ALL ? H5Dget_space(dset) : H5Scopy(fspace)) < 0)
        goto out;
    hssize_t ext = H5Sget_simple_extent_npoints(mspace);
    if (found != tc.n || ext < 0 || !(refs = calloc(ext ? (size_t)ext : 1, c.ref_size)) ||
        H5Dread(dset, rtype, mspace, fspace, dxpl, buf) < 0 ||
        H5Dread(dset, reftype, mspace, fspace, dxpl, refs) < 0)
        goto out;
    c.refs = refs;
    for (size_t k = 0; k < tc.n; k++) {
        c.lo[k] = UINT64_MAX;
        c.hi[k] = 0;
    }
    if (H5Diterate(refs, reftype, mspace, text_cb, &c) < 0 || c.failed)
        goto out;
    for (size_t k = 0; k < tc.n; k++) { /* each store's bytes of the rows read */
        if (c.hi[k] <= c.lo[k]) {
            c.lo[k] = c.hi[k];
            c.bytes[k] = (const unsigned char *)"";
            continue;
        }
        hsize_t start = c.lo[k], count = c.hi[k] - c.lo[k], size = 0;
        /* within the store, and at most 1 GiB for one read (a crafted
         * file may claim anything) */
        if ((bspace = H5Dget_space(c.tc->store[k])) < 0 ||
            H5Sget_simple_extent_dims(bspace, &size, NULL) != 1 || c.hi[k] > size ||
            count > (hsize_t)1 << 30 || !(bytes[k] = malloc((size_t)count)) ||
            H5Sselect_hyperslab(bspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
            (bmem = H5Screate_simple(1, &count, NULL)) < 0 ||
            H5Dread(tc.store[k], H5T_NATIVE_UCHAR, bmem, bspace, H5P_DEFAULT, bytes[k]) < 0)
            goto out;
        c.bytes[k] = bytes[k];
        H5Sclose(bspace);
        H5Sclose(bmem);
        bspace = bmem = H5I_INVALID_HID;
    }
    c.pass = 1;
    if (H5Diterate(refs, reftype, mspace, text_cb, &c) < 0 || c.failed)
        goto out;
    rc = 0;
out:
    for (size_t k = 0; k < MAX_TEXT_COLS; k++)
        free(bytes[k]);
    free(refs);
    bz_out_h5_close(bmem);
    bz_out_h5_close(bspace);
    bz_out_h5_close(own_space);
    bz_out_h5_close(one);
    bz_out_h5_close(reftype);
    bz_out_h5_close(rtype);
    bz_out_h5_close(ftype);
    text_cols_free(&tc);
    return rc;
}

/* The text stores of dset hold every byte its first n_rows rows name
 * (texts are stored in row order: the last row's text ends last). */
static int check_texts(hid_t dset, hsize_t n_rows, const char *path, const char *table,
                       struct bz_err *err)
{
    struct text_cols tc = {0};
    int rc = BZ_OK;
    hid_t ftype = H5Dget_type(dset), reftype = H5I_INVALID_HID, one = H5I_INVALID_HID;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    if (ftype < 0 || find_text_cols(dset, ftype, &tc) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot find its text store", path, table);
        goto out;
    }
    if (!tc.n || !n_rows)
        goto out;
    struct text_ref last[MAX_TEXT_COLS];
    hsize_t at = n_rows - 1, count = 1;
    if ((reftype = H5Tcreate(H5T_COMPOUND, tc.n * sizeof(struct text_ref))) < 0 ||
        (one = H5Tcreate(H5T_COMPOUND, sizeof(struct text_ref))) < 0 ||
        H5Tinsert(one, "offset", offsetof(struct text_ref, offset), H5T_NATIVE_UINT64) < 0 ||
        H5Tinsert(one, "length", offsetof(struct text_ref, length), H5T_NATIVE_UINT32) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: text types", path, table);
    for (size_t k = 0; k < tc.n && !rc; k++)
        if (H5Tinsert(reftype, tc.name[k], k * sizeof(struct text_ref), one) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: text types", path, table);
    if (!rc && ((fspace = H5Dget_space(dset)) < 0 ||
                H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &at, NULL, &count, NULL) < 0 ||
                (mspace = H5Screate_simple(1, &count, NULL)) < 0 ||
                H5Dread(dset, reftype, mspace, fspace, H5P_DEFAULT, last) < 0))
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: row %llu unreadable", path, table,
                            (unsigned long long)at);
    for (size_t k = 0; k < tc.n && !rc; k++) {
        hsize_t end = last[k].offset + last[k].length, size = 0;
        hid_t space = H5Dget_space(tc.store[k]);
        if (space < 0 || H5Sget_simple_extent_dims(space, &size, NULL) < 0 || size < end)
            rc = bz_err_set(err, BZ_EIO,
                            "%s: table %s column %s: its text store ends before "
                            "the committed rows' texts",
                            path, table, tc.name[k]);
        bz_out_h5_close(space);
        if (!rc)
            rc = bz_out_h5_check_readable(tc.store[k], end, path, table, err);
    }
out:
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    bz_out_h5_close(one);
    bz_out_h5_close(reftype);
    bz_out_h5_close(ftype);
    text_cols_free(&tc);
    return rc;
}
