/* out_merge: shards -> one results file ordered by game_id. Needs no table
 * descriptors: copies whatever compound tables the shards hold. Writes
 * out_path.tmp and renames it, so the final name never holds a half file.
 *
 * Which rows survive does not depend on how games were spread over shards:
 * a game's rows come from the first shard (in list order) that committed it,
 * runs of one game keep their written order, games are sorted by id. So
 * merging the same games written by 1, 2 or 7 ranks gives equal tables.
 *
 * The merge is a stream of blocks of game ids: every table advances over a
 * block, then the next block, each table's sink (output window, partial
 * last chunk, compressed batch) staying open between blocks. bz_merge is one
 * pass of it (blocks sized by the memory bound); the follower merge
 * (sched_follow.c) advances it as closed segments come in
 * (bz_merge_stream_*), and then also keeps each source's committed ids and
 * an index of its tables' ids so that a block reads only the rows it needs.
 *
 * Memory is bounded by a constant (MERGE_MEMORY_BYTES, 256 MiB; the
 * BZ_MERGE_MEMORY environment variable sets another) whatever the number of
 * games: tables stream in windows of whole chunks of the final layout, shards
 * are read through windows, game ids too, and games are indexed in blocks of
 * ids that fit the bound. Tables without variable-length members are
 * compressed here on threads (out_zpool.c) and stored with direct chunk
 * writes; HDF5's filters compress the others. The threads also read the
 * shard chunks whose address is cheap to find (chunk_addr): their rows for
 * the windows, their game ids for the scans. Never reads rows of a shard
 * past the last committed game's. */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/out_lock.h"
#include "out_h5.h"
#include "out_h5_fail.h"
#include "out_internal.h"
#include "out_texts.h"
#include "out_zpool.h"

/* Rows of one merged chunk: about MERGED_CHUNK_BYTES of raw rows. */
#ifndef MERGED_CHUNK_BYTES
#define MERGED_CHUNK_BYTES (256 * 1024)
#endif
/* The memory bound of a merge (BZ_MERGE_MEMORY overrides it; never below
 * MERGE_MEMORY_MIN, so that a window holds a whole chunk). Shares of it: at
 * most 1/16 for an output window (1/64, or two chunks per compression thread
 * when that is more; twice, plus the compressed copies, on the direct path:
 * at most 1/4), 1/64 for a shard read window, 1/32 for a window of game ids,
 * 1/4 for the index of the id block being merged (winner of each id, runs),
 * 1/16 for a following merge's run caches (struct rcache), 1/64 for a window of a source's run
 * index (ridx_runs), 1/16 for the virtual layout's chunk copies (part_buffers), 2/256 (at most
 * 2 MiB) for HDF5's type conversion buffers. Not counted: HDF5's own caches, the strings of the
 * rows of a window of a table with strings, the virtual tables' mappings (struct vmap: 32 bytes
 * per stretch of consecutive rows of one source, up to one per game and table, all held until
 * the table is created: a virtual dataset is created with all of them, and HDF5 holds a few
 * copies of them then), ~0.5 MiB of compressor state per thread, and for the
 * shard chunks the threads read (gather_raw) one chunk buffer per thread
 * (at most the read window's size) and 56 bytes per chunk and 24 per run
 * of rows of the window they fill. */
#ifndef MERGE_MEMORY_BYTES
#define MERGE_MEMORY_BYTES ((size_t)256 << 20)
#endif
#define MERGE_MEMORY_MIN ((size_t)16 * MERGED_CHUNK_BYTES)
/* The output windows' share is divided among at least this many tables
 * (all sinks are open at once); a merge of more tables divides it among
 * them all (those known when a table's sink opens). */
#define MERGE_TABLE_SHARES 8
/* caps on the windows whatever the bound (tests shrink them to a few rows) */
#ifndef MERGE_OUT_BYTES
#define MERGE_OUT_BYTES ((size_t)16 << 20)
#endif
#ifndef MERGE_WINDOW_BYTES
#define MERGE_WINDOW_BYTES ((size_t)16 << 20)
#endif

/* A stretch of consecutive rows of one game in one shard's table. */
struct run {
    int64_t game_id;
    size_t shard;
    hsize_t start, len;
    hsize_t out_pos;
};

struct mtable;

/* A source's open dataset of the table being merged: opening it (H5Dopen2,
 * its type, a check against the table's) cost more than reading a window
 * of its rows. crows: raw_chunk_rows for the read window ((hsize_t)-1: not
 * asked yet); plain: its file has no user block (-1: not asked yet). */
struct gcache {
    hid_t dset;
    hsize_t crows;
    int plain;
    haddr_t *addr; /* its chunks' addresses (at most MERGE_PREAD_CHUNKS; chunk_addr) */
    size_t n_addr; /* entries of addr (counted in held) */
};

static void acct_free(void *p, size_t n, size_t size);

/* gc made for dset (none: H5I_INVALID_HID), nothing known about it yet. */
static void gcache_reset(struct gcache *gc, hid_t dset)
{
    acct_free(gc->addr, gc->n_addr, sizeof *gc->addr);
    *gc = (struct gcache){dset, (hsize_t)-1, -1, NULL, 0};
}

/* A source of the merge (a shard or closed segment), in the order added. */
struct source {
    char *path;     /* owned */
    int64_t lo, hi; /* its committed ids lie in [lo, hi] (lo > hi: none) */
    int64_t *ids;   /* its committed ids, kept when streaming */
    size_t n_ids;
    char **paths; /* its dataset paths, sorted */
    size_t n_paths;
    hid_t file;    /* its file when kept open (source_file) */
    uint64_t used; /* when its file was last used (the LRU's clock) */
};

struct merge {
    struct source *src; /* the sources, in the order they were added */
    size_t n_shards, cap_shards;
    uint64_t tick;
    size_t n_open;
    struct gcache *gcs;     /* the sources' datasets of the table being merged */
    const char *out_name;   /* for messages */
    int has_ids;            /* some shard committed a game */
    int64_t id_min, id_max; /* committed ids lie in [id_min, id_max] */
    /* the winner (first shard in list order that committed it) of every id
     * in [map_lo, map_hi), -1 for none */
    int32_t *map;
    size_t map_cap;
    int64_t map_lo, map_hi;
    int map_valid;
    size_t run_cap;                  /* runs of one block (the rest of the index share) */
    struct bz_out_run_row *ridx_win; /* a window of a run index (1/64 of the bound) */
    hsize_t ridx_win_rows;
    size_t cache_bytes, cache_cap; /* the run caches' bytes (struct rcache) */
    size_t out_bytes, read_bytes;
    hsize_t id_rows; /* game ids read at once */
    /* HDF5's type conversion buffers, ours: left to HDF5, each H5Dread and
     * H5Dwrite of a table with strings callocs (and faults in) its own */
    hid_t dxpl;
    void *tconv, *bkg;
    size_t tconv_bytes; /* each */
    struct bz_zpool *pool;
    int threads;
    struct bz_zbatch scan_b;   /* the game_id columns the threads read for a scan */
    unsigned char *ids_raw;    /* the id window */
    struct run *runs, *pieces; /* the runs of the table and block being merged */
    struct bz_merge_stats stats;
    int owner_failed;        /* owner_of could not build an id block */
    struct bz_err owner_err; /* why */
    /* the stream: every table's sink stays open between blocks */
    struct mtable **tables;
    size_t n_tables;
    int streaming;  /* chunks of the standard size whatever the total */
    int64_t next;   /* games with a smaller id are merged */
    int next_set;   /* next is meaningful (set by the first block) */
    uint64_t games; /* ids with a winner merged so far */
    hid_t fapl, file;
    char *tmp;
    int tmp_made;
    struct bz_out_lock *lock;
    double t_start, c_start;
    /* the virtual layout (BZ_LAYOUT_VIRTUAL): tables without strings are
     * virtual datasets over parts (struct vpart); vb compresses the part
     * chunks stored uncompressed, vchunk holds one stored chunk; all of
     * them carved from varena (part_buffers: its share of the bound) */
    int virt;
    struct bz_zbatch vb;
    unsigned char *varena, *vin, *vchunk;
    size_t varena_bytes, vchunk_bytes, vper;
    hsize_t *voff;
};

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static struct bz_merge_stats last_stats;

void (*bz_merge_test_deferred_hook)(const char *, const char *, uint64_t, size_t, uint64_t);
void (*bz_merge_test_read_back_hook)(const char *);

void bz_merge_last_stats(struct bz_merge_stats *s)
{
    *s = last_stats;
}

/* Bytes of the merge's own buffers held now; the peak goes to the stats. */
static size_t held;

static void *acct_alloc(struct merge *m, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p) {
        held += n * size;
        if (held > m->stats.peak_bytes)
            m->stats.peak_bytes = held;
    }
    return p;
}

static void acct_free(void *p, size_t n, size_t size)
{
    if (!p)
        return;
    held -= n * size;
    free(p);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t memory_bound(void)
{
    size_t v = MERGE_MEMORY_BYTES;
    const char *env = getenv("BZ_MERGE_MEMORY");
    if (env && *env) {
        char *end;
        unsigned long long x = strtoull(env, &end, 10);
        size_t mult = *end == 'k' || *end == 'K'   ? (size_t)1 << 10
                      : *end == 'm' || *end == 'M' ? (size_t)1 << 20
                      : *end == 'g' || *end == 'G' ? (size_t)1 << 30
                                                   : 1;
        if (end != env && x > 0)
            v = (size_t)x * mult;
    }
    return v < MERGE_MEMORY_MIN ? MERGE_MEMORY_MIN : v;
}

static int cmp_run_game(const void *a, const void *b)
{
    const struct run *x = a, *y = b;
    return bz_out_run_order(x->game_id, x->shard, x->start, y->game_id, y->shard, y->start);
}

static int cmp_run_place(const void *a, const void *b)
{
    const struct run *x = a, *y = b;
    if (x->shard != y->shard)
        return (x->shard > y->shard) - (x->shard < y->shard);
    return (x->start > y->start) - (x->start < y->start);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int shard_has(const struct merge *m, size_t i, const char *path)
{
    const char *key = path;
    if (!m->src[i].n_paths)
        return 0;
    return bsearch(&key, m->src[i].paths, m->src[i].n_paths, sizeof(char *), cmp_str) != NULL;
}

/* Whether source i may commit an id in [lo, hi). */
static int source_meets(const struct merge *m, size_t i, int64_t lo, int64_t hi)
{
    return m->src[i].lo <= m->src[i].hi && m->src[i].lo < hi && m->src[i].hi >= lo;
}

/* The winner of every id in [lo, hi) (hi - lo <= map_cap). */
static int build_map(struct merge *m, int64_t lo, int64_t hi, struct bz_err *err)
{
    if (m->map_valid && m->map_lo == lo && m->map_hi == hi)
        return BZ_OK;
    m->map_valid = 0;
    for (int64_t k = 0; k < hi - lo; k++)
        m->map[k] = -1;
    for (size_t i = 0; i < m->n_shards; i++) {
        int64_t *ids = m->src[i].ids;
        size_t n = m->src[i].n_ids;
        if (!source_meets(m, i, lo, hi))
            continue;
        int rc = ids ? BZ_OK : bz_shard_committed_quick(m->src[i].path, &ids, &n, err);
        if (rc)
            return rc;
        for (size_t k = 0; k < n; k++)
            if (ids[k] >= lo && ids[k] < hi && m->map[ids[k] - lo] < 0)
                m->map[ids[k] - lo] = (int32_t)i;
        if (ids != m->src[i].ids)
            free(ids);
    }
    m->map_lo = lo;
    m->map_hi = hi;
    m->map_valid = 1;
    return BZ_OK;
}

/* The shard that owns game_id in the merged file, or -1 when none does (for
 * the texts merge, out_texts.c): from the id block holding it, built when
 * another block is current. A failure to build it reads as -1 after
 * remembering the error for bz_merge. */
static long owner_of(const void *ctx, int64_t game_id)
{
    struct merge *m = (struct merge *)ctx; /* bz_merge's own, passed through */
    if (!m->has_ids || game_id < m->id_min || game_id > m->id_max)
        return -1;
    if (!m->map_valid || game_id < m->map_lo || game_id >= m->map_hi) {
        int64_t span = (int64_t)m->map_cap;
        int64_t lo = m->id_min + (game_id - m->id_min) / span * span;
        int64_t hi = m->id_max - lo < span ? m->id_max + 1 : lo + span;
        if (build_map(m, lo, hi, &m->owner_err)) {
            m->owner_failed = 1;
            return -1;
        }
    }
    return m->map[game_id - m->map_lo];
}

/* Shard files kept open between reads (an open costs more than reading a
 * window of ids; a merge reads each shard once per table and output
 * window). HDF5's caches of these files are not counted in the bound. */
#define MERGE_OPEN_FILES 16

static void close_dsets_of(struct merge *m, size_t i);

/* Shard i's file, opened or from those kept open (the least recently used
 * is closed when MERGE_OPEN_FILES are). Never closed by the caller. */
static int source_file(struct merge *m, size_t i, hid_t *file, struct bz_err *err)
{
    if (m->src[i].file < 0) {
        if (m->n_open >= MERGE_OPEN_FILES) {
            size_t lru = m->n_shards;
            for (size_t k = 0; k < m->n_shards; k++)
                if (m->src[k].file >= 0 &&
                    (lru == m->n_shards || m->src[k].used < m->src[lru].used))
                    lru = k;
            if (lru < m->n_shards) {
                /* its cached datasets would keep the file open */
                close_dsets_of(m, lru);
                bz_out_h5_close(m->src[lru].file);
                m->src[lru].file = H5I_INVALID_HID;
                m->n_open--;
            }
        }
        int rc = bz_out_h5_open_ro(m->src[i].path, &m->src[i].file, err);
        if (rc) {
            m->src[i].file = H5I_INVALID_HID;
            return rc;
        }
        m->n_open++;
    }
    m->src[i].used = ++m->tick;
    *file = m->src[i].file;
    return BZ_OK;
}

static void close_sources(struct merge *m)
{
    for (size_t k = 0; k < m->n_shards; k++)
        close_dsets_of(m, k);
    for (size_t k = 0; k < m->n_shards; k++) {
        bz_out_h5_close(m->src[k].file);
        m->src[k].file = H5I_INVALID_HID;
    }
    m->n_open = 0;
}

/* Open path in shard i: its dataset, checking the row type against *ref
 * (taken from the first shard that has the table). The file stays open
 * (source_file): *file is set to none. */
static int open_table(struct merge *m, size_t i, const char *path, hid_t *file, hid_t *dset,
                      hid_t *ref, struct bz_err *err)
{
    int rc;
    hid_t ftype = H5I_INVALID_HID, f = H5I_INVALID_HID;
    *dset = *file = H5I_INVALID_HID;
    if ((rc = source_file(m, i, &f, err)))
        return rc;
    if ((*dset = H5Dopen2(f, path, H5P_DEFAULT)) < 0 || (ftype = bz_shard_table_type(*dset)) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot open table %s", m->src[i].path, path);
    rc = BZ_OK;
    if (*ref < 0) {
        if ((*ref = H5Tcopy(ftype)) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot copy its type", m->src[i].path,
                                path);
    } else {
        htri_t eq = H5Tequal(ftype, *ref);
        if (eq < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot compare types", m->src[i].path,
                                path);
        else if (!eq)
            rc = bz_err_set(err, BZ_EINVAL,
                            "%s: table %s has other columns than in the shards before it "
                            "(shards written by different versions?)",
                            m->src[i].path, path);
    }
    H5Tclose(ftype);
    return rc;
}

static void close_table(hid_t *file, hid_t *dset)
{
    bz_out_h5_close(*dset);
    bz_out_h5_close(*file);
    *dset = *file = H5I_INVALID_HID;
}

/* Table path of shard i, open (open_table, its type checked against *ref)
 * and kept in the table's gcache of the source (m->gcs, set by table_range)
 * until its file is closed (source_file's LRU, the end of the merge): a
 * following merge comes back to every table at each block; never closed by
 * the caller. */
static int table_dset(struct merge *m, size_t i, const char *path, hid_t *ref, struct gcache **gc,
                      struct bz_err *err)
{
    int rc;
    struct gcache *g = &m->gcs[i];
    if (g->dset < 0) {
        hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
        if ((rc = open_table(m, i, path, &file, &dset, ref, err))) {
            close_table(&file, &dset);
            return rc;
        }
        gcache_reset(g, dset);
    } else {
        m->src[i].used = ++m->tick; /* its file is in use */
    }
    *gc = g;
    return BZ_OK;
}

/* Runs being collected: full is set when run_cap is reached. */
struct runs {
    struct run *v;
    size_t n, cap;
    int full;
};

static void keep_run(const struct merge *m, struct runs *rs, size_t i, int64_t id, hsize_t start,
                     hsize_t len)
{
    if (id < m->map_lo || id >= m->map_hi || m->map[id - m->map_lo] != (int32_t)i)
        return;
    if (rs->n == rs->cap) {
        rs->full = 1;
        return;
    }
    rs->v[rs->n++] = (struct run){id, i, start, len, 0};
}

/* Rows per chunk of a shard's table stored as bazaar writes shards:
 * chunked, filtered by a Fletcher32 checksum alone, chunks of at most
 * max_bytes. 0 when stored otherwise (then HDF5 reads it). */
static hsize_t raw_chunk_rows(hid_t dset, size_t row_bytes, size_t max_bytes)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t crows = 0;
    unsigned flags = 0;
    size_t cd_n = 0;
    if (dcpl < 0 || H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, 1, &crows) != 1 ||
        H5Pget_nfilters(dcpl) != 1 ||
        H5Pget_filter2(dcpl, 0, &flags, &cd_n, NULL, 0, NULL, NULL) != H5Z_FILTER_FLETCHER32 ||
        (size_t)crows * row_bytes > max_bytes)
        crows = 0;
    H5Eclear2(H5E_DEFAULT);
    bz_out_h5_close(dcpl);
    return crows;
}

/* The stored chunk of dset at row base (cbytes: its rows, then the
 * checksum) into buf, checked against its Fletcher32. */
static int read_raw_chunk(struct merge *m, size_t i, hid_t dset, const char *path, hsize_t base,
                          unsigned char *buf, size_t cbytes, struct bz_err *err)
{
    m->stats.chunks_read++;
    hsize_t size = 0;
    uint32_t mask = 1;
    if (H5Dget_chunk_storage_size(dset, &base, &size) < 0 || size != cbytes ||
        H5Dread_chunk(dset, H5P_DEFAULT, &base, &mask, buf) < 0 || mask != 0 ||
        !bz_zpool_chunk_ok(buf, cbytes))
        return bz_out_h5_fail(err, BZ_EIO,
                              "%s: table %s: the chunk at row %llu is unreadable or fails its "
                              "checksum",
                              m->src[i].path, path, (unsigned long long)base);
    return BZ_OK;
}

/* The error of a batch whose threads found a shard chunk (of table path)
 * unreadable or failing its checksum. */
static int bad_thread_read(const struct bz_zbatch *b, const char *path, struct bz_err *err)
{
    const struct bz_zread *rd = &b->reads[b->bad_read];
    return bz_err_set(err, BZ_EIO,
                      "%s: table %s: the chunk at row %llu is unreadable or fails its checksum%s%s",
                      rd->path, path, (unsigned long long)rd->row, b->read_errno ? ": " : "",
                      b->read_errno ? strerror(b->read_errno) : "");
}

/* A following merge's runs of one table in one closed source whose ids
 * lie past the block of the full scan that found them (the scan that
 * builds the scan_ix), in row order: later blocks take their runs from here
 * instead of reading the shard's rows again. sufmin[k]: the smallest id of
 * v[k..n); head: entries before it have ids below blocks merged already.
 * All caches share m->cache_cap bytes (1/16 of the bound); a cache that
 * would pass it is dropped, and that source's blocks scan rows (scan_ix). */
struct crun {
    int64_t id;
    hsize_t start, len;
};

struct rcache {
    struct crun *v;
    int64_t *sufmin;
    size_t n, cap, head;
    int ready, dropped;
};

static void rcache_free(struct merge *m, struct rcache *c)
{
    if (c->v)
        held -= c->cap * (sizeof *c->v + sizeof *c->sufmin);
    m->cache_bytes -= c->cap * (sizeof *c->v + sizeof *c->sufmin);
    free(c->v);
    free(c->sufmin);
    c->v = NULL;
    c->sufmin = NULL;
    c->n = c->cap = c->head = 0;
    c->ready = 0;
}

/* Keep a run found by a building scan for later blocks. */
static void rcache_add(struct merge *m, struct rcache *c, int64_t id, hsize_t start, hsize_t len)
{
    if (c->dropped)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256, per = sizeof *c->v + sizeof *c->sufmin;
        struct crun *v = NULL;
        int64_t *sm = NULL;
        if (m->cache_bytes + (cap - c->cap) * per <= m->cache_cap &&
            (v = realloc(c->v, cap * sizeof *v)) != NULL)
            c->v = v;
        if (v && (sm = realloc(c->sufmin, cap * sizeof *sm)) != NULL)
            c->sufmin = sm;
        if (!v || !sm) {
            rcache_free(m, c);
            c->dropped = 1; /* this source's later blocks scan its rows */
            return;
        }
        m->cache_bytes += (cap - c->cap) * per;
        held += (cap - c->cap) * per;
        if (held > m->stats.peak_bytes)
            m->stats.peak_bytes = held;
        c->cap = cap;
    }
    c->v[c->n++] = (struct crun){id, start, len};
}

static void rcache_end(struct merge *m, struct rcache *c, int complete)
{
    if (!complete || c->dropped) {
        rcache_free(m, c);
        return;
    }
    int64_t low = INT64_MAX;
    for (size_t k = c->n; k-- > 0;) {
        if (c->v[k].id < low)
            low = c->v[k].id;
        c->sufmin[k] = low;
    }
    c->ready = 1;
}

/* The runs of the current block from source i's cache; *head: where the
 * cache's next block starts (committed by the caller when the runs fit). */
static void rcache_runs(struct merge *m, const struct rcache *c, struct runs *rs, size_t i,
                        size_t *head)
{
    size_t k = c->head;
    for (; k < c->n && c->sufmin[k] < m->map_hi && !rs->full; k++)
        if (c->v[k].id >= m->map_lo && c->v[k].id < m->map_hi)
            keep_run(m, rs, i, c->v[k].id, c->v[k].start, c->v[k].len);
    size_t h = c->head;
    while (h < c->n && c->v[h].id < m->map_hi)
        h++;
    *head = h;
}

/* Shard chunks the threads read: the first MERGE_PREAD_CHUNKS of each
 * shard table. HDF5 1.10 finds a chunk's address (H5Dget_chunk_info_by_coord)
 * by walking the chunk index from its first chunk: about 12 ns per chunk
 * before it (measured on HDF5 1.10.8: 1.6 us for chunk 0, 19.5 us for
 * chunk 1,548), where H5Dread_chunk, its checksum and the copy of the rows
 * cost about 20-25 us per chunk of 64 KiB on the merging thread. A chunk's
 * address is looked up once (chunk_addr) and saves two such reads, the
 * scan's and the gather's: about 26 us at this index. Past it the lookup
 * would cost more than it saves (and grow with the shard: quadratic over a
 * table), so later chunks are read here as before. */
#ifndef MERGE_PREAD_CHUNKS
#define MERGE_PREAD_CHUNKS 2048
#endif

/* Whether shard i's file (open) starts at byte 0 of its path: no user
 * block, so that a chunk's address is its offset in the file. */
static int source_plain(const struct merge *m, size_t i)
{
    hid_t fcpl = H5Fget_create_plist(m->src[i].file);
    hsize_t ub = 1;
    if (fcpl < 0 || H5Pget_userblock(fcpl, &ub) < 0)
        ub = 1;
    H5Eclear2(H5E_DEFAULT);
    bz_out_h5_close(fcpl);
    return ub == 0;
}

/* The address of chunk c (first row c * crows, cbytes stored, filtered by
 * nothing but present) of shard i's table gc, when its file is plain and c
 * is below MERGE_PREAD_CHUNKS; else HADDR_UNDEF (read it through HDF5).
 * Looked up once per table and source while the table is merged (gc). */
static haddr_t chunk_addr(struct merge *m, size_t i, struct gcache *gc, hsize_t c, hsize_t crows,
                          size_t cbytes)
{
    if (c >= MERGE_PREAD_CHUNKS)
        return HADDR_UNDEF;
    if (gc->plain < 0)
        gc->plain = source_plain(m, i);
    if (!gc->plain)
        return HADDR_UNDEF;
    if (!gc->addr) { /* one entry per chunk of the table, up to the limit */
        hid_t space = H5Dget_space(gc->dset);
        hssize_t rows = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
        bz_out_h5_close(space);
        if (rows <= 0 || crows == 0)
            return HADDR_UNDEF;
        hsize_t n = ((hsize_t)rows + crows - 1) / crows;
        n = n < MERGE_PREAD_CHUNKS ? n : MERGE_PREAD_CHUNKS;
        /* zeroed: not looked up (0 is the superblock's, never a chunk's) */
        if (!(gc->addr = acct_alloc(m, (size_t)n, sizeof *gc->addr)))
            return HADDR_UNDEF;
        gc->n_addr = (size_t)n;
    }
    if (c >= gc->n_addr)
        return HADDR_UNDEF;
    if (gc->addr[c] == 0) {
        hsize_t base = c * crows, size = 0;
        unsigned mask = 1;
        haddr_t addr = HADDR_UNDEF;
        if (H5Dget_chunk_info_by_coord(gc->dset, &base, &mask, &addr, &size) < 0 || mask != 0 ||
            size != cbytes || addr == 0)
            addr = HADDR_UNDEF;
        H5Eclear2(H5E_DEFAULT);
        gc->addr[c] = addr;
    }
    return gc->addr[c];
}

/* Runs of consecutive equal ids, fed one id at a time; lead: rows [0,
 * lead) all have ids below the block's end (a later block never needs
 * them), counted from the row the scan started at. */
struct run_scan {
    int64_t cur;
    hsize_t start, len;
    hsize_t lead;
    int leading;
    struct rcache *cache; /* a building scan's: runs past the block go there */
};

static void scan_emit(struct merge *m, struct runs *rs, size_t i, const struct run_scan *sc)
{
    keep_run(m, rs, i, sc->cur, sc->start, sc->len);
    if (sc->cache && sc->cur >= m->map_hi)
        rcache_add(m, sc->cache, sc->cur, sc->start, sc->len);
}

static void scan_id(struct merge *m, struct runs *rs, size_t i, struct run_scan *sc, int64_t id,
                    hsize_t row)
{
    m->stats.rows_scanned++;
    if (sc->leading && row >= sc->lead) {
        if (id < m->map_hi)
            sc->lead = row + 1;
        else
            sc->leading = 0;
    }
    if (sc->len && id == sc->cur) {
        sc->len++;
        return;
    }
    if (sc->len)
        scan_emit(m, rs, i, sc);
    sc->cur = id;
    sc->start = row;
    sc->len = 1;
}

/* A following merge's index of one table in one closed source: the
 * smallest game id of the rows from each stretch of gran rows to the end
 * (sufmin[k]: rows [k * gran, end)), built by the first full scan; a later
 * block [lo, hi) stops at the first stretch whose sufmin is >= hi. 8 bytes
 * per gran rows (a shard chunk): not counted in the memory bound. */
struct scan_ix {
    int64_t *sufmin;
    size_t n;
    hsize_t gran;
    int ready;
};

/* Rows of the HDF5-read tables per stretch of the index. */
#define SCAN_IX_ROWS 4096

/* Where a scan from row from may stop (rows past it have ids >= hi). */
static hsize_t scan_end(const struct scan_ix *ix, hsize_t from, hsize_t rows, int64_t hi)
{
    if (!ix || !ix->ready)
        return rows;
    for (size_t k = (size_t)(from / ix->gran); k < ix->n; k++)
        if (ix->sufmin[k] >= hi)
            return (hsize_t)k * ix->gran < rows ? (hsize_t)k * ix->gran : rows;
    return rows;
}

/* Start building ix during a scan of every row (gran rows per stretch). */
static int scan_ix_begin(struct scan_ix *ix, hsize_t rows, hsize_t gran)
{
    if (!ix || ix->ready || ix->sufmin)
        return 0;
    size_t n = (size_t)((rows + gran - 1) / gran);
    if (!(ix->sufmin = malloc((n ? n : 1) * sizeof *ix->sufmin)))
        return 0; /* no index: scans read to the end */
    for (size_t k = 0; k < n; k++)
        ix->sufmin[k] = INT64_MAX;
    ix->n = n;
    ix->gran = gran;
    return 1;
}

static void scan_ix_end(struct scan_ix *ix, int complete)
{
    if (!complete) {
        free(ix->sufmin);
        ix->sufmin = NULL;
        ix->n = 0;
        return;
    }
    for (size_t k = ix->n; k-- > 1;)
        if (ix->sufmin[k] < ix->sufmin[k - 1])
            ix->sufmin[k - 1] = ix->sufmin[k];
    ix->ready = 1;
}

/* The game ids of rows [b0, last) of shard i's table gc (chunks of crows
 * rows, cbytes stored; b0 a chunk's first row) into the id window, packed:
 * the threads pread the chunks whose address is known (chunk_addr), check
 * them and copy the column out; the others are read here (HDF5) meanwhile. */
static int scan_ids(struct merge *m, size_t i, struct gcache *gc, const char *path, hsize_t b0,
                    hsize_t last, hsize_t crows, size_t cbytes, size_t rsize, size_t id_off,
                    struct bz_err *err)
{
    int rc = BZ_OK;
    struct bz_zbatch *zb = &m->scan_b;
    unsigned char *buf = NULL;
    int64_t *idv = (int64_t *)m->ids_raw;
    zb->in = m->ids_raw;
    zb->n_chunks = 0;
    for (hsize_t base = b0; base < last && !rc; base += crows) {
        hsize_t n = last - base < crows ? last - base : crows;
        haddr_t a = chunk_addr(m, i, gc, base / crows, crows, cbytes);
        if (a == HADDR_UNDEF)
            continue;
        if (bz_zbatch_add_column(zb, m->src[i].path, (uint64_t)a, cbytes, (uint64_t)base, id_off,
                                 rsize, (size_t)n, (size_t)(base - b0) * sizeof *idv,
                                 sizeof *idv) != 0)
            rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", m->src[i].path, path);
        else
            m->stats.chunks_scan_pread++;
    }
    if (rc) {
        bz_zbatch_reset_reads(zb, 0);
        return rc;
    }
    int queued = zb->n_reads > 0;
    if (queued) /* before the compression queued: the scan waits for it */
        bz_zpool_submit_first(m->pool, zb);
    for (hsize_t base = b0; base < last && !rc; base += crows) {
        if (chunk_addr(m, i, gc, base / crows, crows, cbytes) != HADDR_UNDEF)
            continue; /* a thread's */
        if (!buf && !(buf = acct_alloc(m, cbytes, 1))) {
            rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", m->src[i].path, path);
            break;
        }
        if ((rc = read_raw_chunk(m, i, gc->dset, path, base, buf, cbytes, err)))
            break;
        hsize_t n = last - base < crows ? last - base : crows;
        for (hsize_t r = 0; r < n; r++)
            memcpy(&idv[base - b0 + r], buf + (size_t)r * rsize + id_off, sizeof *idv);
    }
    acct_free(buf, cbytes, 1);
    if (queued) { /* the threads write into the id window: always wait */
        int bad = bz_zpool_wait(m->pool, zb);
        m->stats.cpu_compress += zb->cpu_seconds; /* the threads' CPU */
        if (bad == -2 && !rc)
            rc = bad_thread_read(zb, path, err);
        bz_zbatch_reset_reads(zb, 0);
    }
    return rc;
}

/* The runs of shard i's table dset whose game wins in the current block,
 * reading its game_id column m->id_rows at a time (or its raw chunks) from
 * row from on (the rows before it belong to blocks merged before) up to
 * where ix says no later row is in the block; *lead: the rows a later
 * block may skip. ix (NULL: none) is built by the first scan. */
static int scan_shard(struct merge *m, size_t i, struct gcache *gc, const char *path,
                      struct runs *rs, hsize_t from, hsize_t *lead, struct scan_ix *ix,
                      struct rcache *cache, struct bz_err *err)
{
    hid_t dset = gc->dset;
    int rc = BZ_OK;
    hid_t ftype = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hid_t mtype = H5I_INVALID_HID;
    int64_t *ids = (int64_t *)m->ids_raw;
    hsize_t rows = 0;
    struct run_scan sc = {0, 0, 0, from, 1, NULL};
    int building = 0;
    *lead = from;
    if ((ftype = H5Dget_type(dset)) < 0 || (fspace = H5Dget_space(dset)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read its type", m->src[i].path, path);
        goto out;
    }
    int idx = H5Tget_class(ftype) == H5T_COMPOUND && H5Sget_simple_extent_ndims(fspace) == 1
                  ? H5Tget_member_index(ftype, "game_id")
                  : -1;
    if (idx < 0 || H5Tget_member_class(ftype, (unsigned)idx) != H5T_INTEGER) {
        H5Eclear2(H5E_DEFAULT);
        rc = bz_err_set(err, BZ_EINVAL, "%s: %s: not a 1-D table with an integer game_id column",
                        m->src[i].path, path);
        goto out;
    }
    if (H5Sget_simple_extent_dims(fspace, &rows, NULL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read its size", m->src[i].path, path);
        goto out;
    }
    /* a crafted dataspace may claim any size */
    if (rows > ((hsize_t)1 << 40)) {
        rc = bz_err_set(err, BZ_EIO, "%s: %s claims %llu rows, more than bazaar reads",
                        m->src[i].path, path, (unsigned long long)rows);
        goto out;
    }
    /* a compound memory type with only game_id reads just that member */
    if ((mtype = H5Tcreate(H5T_COMPOUND, sizeof(int64_t))) < 0 ||
        H5Tinsert(mtype, "game_id", 0, H5T_NATIVE_INT64) < 0 ||
        (mspace = H5Screate_simple(1, &m->id_rows, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: game_id type", m->src[i].path, path);
        goto out;
    }
    /* a little-endian int64 game_id in chunks stored as bazaar writes them:
     * straight from the chunks */
    size_t rsize = H5Tget_size(ftype), id_off = H5Tget_member_offset(ftype, (unsigned)idx);
    hid_t id_type = H5Tget_member_type(ftype, (unsigned)idx);
    /* (variable-length members are stored in another layout than their
     * type's size says: HDF5 reads those tables) */
    int le64 = id_type >= 0 && H5Tget_size(id_type) == 8 && H5Tget_order(id_type) == H5T_ORDER_LE &&
               H5Tget_sign(id_type) == H5T_SGN_2 && bz_out_h5_has_vlen(ftype) == 0;
    bz_out_h5_close(id_type);
    hsize_t crows =
        le64 ? raw_chunk_rows(dset, rsize, (size_t)m->id_rows * sizeof(int64_t) - 4) : 0;
    hsize_t end = scan_end(ix, from, rows, m->map_hi);
    building = from == 0 && scan_ix_begin(ix, rows, crows ? crows : SCAN_IX_ROWS);
    if (building && cache) {
        rcache_free(m, cache);
        cache->dropped = 0;
        sc.cache = cache;
    }
    if (crows) {
        size_t cbytes = (size_t)crows * rsize + 4;
        hsize_t per = m->id_rows / crows; /* chunks whose ids fill the id window */
        for (hsize_t b0 = from / crows * crows; b0 < end && !rs->full && !rc;) {
            hsize_t b1 = b0 + (per ? per : 1) * crows;
            if (b1 > end)
                b1 = (end + crows - 1) / crows * crows;
            hsize_t last = b1 < rows ? b1 : rows;
            rc = scan_ids(m, i, gc, path, b0, last, crows, cbytes, rsize, id_off, err);
            const int64_t *idv = (const int64_t *)m->ids_raw;
            for (hsize_t r = b0; r < last && !rc && !rs->full; r++) {
                scan_id(m, rs, i, &sc, idv[r - b0], r);
                if (building && idv[r - b0] < ix->sufmin[r / ix->gran])
                    ix->sufmin[r / ix->gran] = idv[r - b0];
            }
            b0 = b1;
        }
        if (rc)
            goto out;
    } else {
        for (hsize_t s = from; s < end && !rs->full; s += m->id_rows) {
            hsize_t count = end - s < m->id_rows ? end - s : m->id_rows, zero = 0;
            if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &s, NULL, &count, NULL) < 0 ||
                H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
                H5Dread(dset, mtype, mspace, fspace, m->dxpl, ids) < 0) {
                rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read the game_id column",
                                    m->src[i].path, path);
                goto out;
            }
            for (hsize_t r = 0; r < count; r++) {
                scan_id(m, rs, i, &sc, ids[r], s + r);
                if (building && ids[r] < ix->sufmin[(s + r) / ix->gran])
                    ix->sufmin[(s + r) / ix->gran] = ids[r];
            }
        }
    }
    if (sc.len)
        scan_emit(m, rs, i, &sc);
    *lead = sc.lead;
out:
    if (building)
        scan_ix_end(ix, !rc && !rs->full);
    if (sc.cache)
        rcache_end(m, sc.cache, !rc && !rs->full);
    bz_out_h5_close(mtype);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    bz_out_h5_close(ftype);
    return rc;
}

/* Runs of committed, winning games of table path in the current block,
 * in every shard; rs->full when they do not fit. skip[i]: rows of shard i
 * that earlier blocks used up (ids below their end), updated when the
 * runs fit (a block that overflows is scanned again, smaller). */
/* Whether a source's table has a run index (out_h5.h:
 * BZ_OUT_SHARD_RUNS_GROUP) that gives its runs without reading its game
 * ids (in chunks the rank compressed they would need inflating). */
enum { RIDX_UNKNOWN = 0, RIDX_NONE, RIDX_READY };
struct ridx {
    int state;
};

/* The runs of source i's table path in the block (m->map_lo, map_hi), from
 * its run index, read in windows (m->ridx_win: its share of the bound) at
 * each block: nothing of it is held between blocks. rows: the table's rows.
 * An older shard without an index, an index that does not read (a torn
 * chunk), or a row of it that fails its check (a torn write) or points past
 * the table's rows: r->state RIDX_NONE, no run kept (the table is scanned,
 * and its own rows decide). */
static int ridx_runs(struct merge *m, size_t i, const char *path, hsize_t rows, struct ridx *r,
                     struct runs *rs, struct bz_err *err)
{
    int rc = BZ_OK;
    char name[1024];
    hid_t file, dset = H5I_INVALID_HID, mtype = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    hid_t mspace = H5I_INVALID_HID;
    size_t n0 = rs->n;
    int n_name = snprintf(name, sizeof name, "%s%s", BZ_OUT_SHARD_RUNS_GROUP, path);
    if (n_name <= 0 || (size_t)n_name >= sizeof name) {
        r->state = RIDX_NONE;
        return BZ_OK;
    }
    if ((rc = source_file(m, i, &file, err)))
        return rc;
    if (H5Lexists(file, BZ_OUT_SHARD_RUNS_GROUP, H5P_DEFAULT) <= 0 ||
        (dset = H5Dopen2(file, name, H5P_DEFAULT)) < 0) {
        H5Eclear2(H5E_DEFAULT);
        r->state = RIDX_NONE; /* an older shard */
        return BZ_OK;
    }
    struct bz_out_run_row *w = m->ridx_win;
    hsize_t n = 0, cap = m->ridx_win_rows;
    if ((fspace = H5Dget_space(dset)) < 0 || H5Sget_simple_extent_dims(fspace, &n, NULL) != 1 ||
        (mspace = H5Screate_simple(1, &cap, NULL)) < 0 ||
        (mtype = H5Tcreate(H5T_COMPOUND, sizeof *w)) < 0 ||
        H5Tinsert(mtype, "game_id", offsetof(struct bz_out_run_row, game_id), H5T_NATIVE_INT64) <
            0 ||
        H5Tinsert(mtype, "start", offsetof(struct bz_out_run_row, start), H5T_NATIVE_UINT64) < 0 ||
        H5Tinsert(mtype, "len", offsetof(struct bz_out_run_row, len), H5T_NATIVE_UINT64) < 0 ||
        H5Tinsert(mtype, "check", offsetof(struct bz_out_run_row, check), H5T_NATIVE_UINT64) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read it", m->src[i].path, name);
        goto out;
    }
    r->state = RIDX_READY;
    for (hsize_t at = 0; at < n && r->state == RIDX_READY && !rs->full; at += cap) {
        hsize_t count = n - at < cap ? n - at : cap, zero = 0;
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &at, NULL, &count, NULL) < 0 ||
            H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
            H5Dread(dset, mtype, mspace, fspace, H5P_DEFAULT, w) < 0) {
            /* a torn last chunk (a writer killed while storing it again):
             * the table's own rows are what counts */
            H5Eclear2(H5E_DEFAULT);
            r->state = RIDX_NONE;
            break;
        }
        for (size_t k = 0; k < (size_t)count; k++) {
            if (w[k].game_id == -1 && w[k].check == 0)
                continue; /* the fill row (past the last row written) */
            if (w[k].check != bz_out_run_check(w[k].game_id, w[k].start, w[k].len) ||
                w[k].start > rows || w[k].len > rows - w[k].start) {
                r->state = RIDX_NONE;
                break;
            }
            if (w[k].game_id >= m->map_lo && w[k].game_id < m->map_hi)
                keep_run(m, rs, i, w[k].game_id, w[k].start, w[k].len);
        }
    }
    if (r->state == RIDX_NONE)
        rs->n = n0, rs->full = 0; /* the runs it kept: the scan finds them again */
out:
    bz_out_h5_close(mspace);
    bz_out_h5_close(mtype);
    bz_out_h5_close(fspace);
    bz_out_h5_close(dset);
    return rc;
}

static int find_runs(struct merge *m, const char *path, hid_t *ref, struct runs *rs, hsize_t *skip,
                     struct scan_ix *ix, struct rcache *cache, struct ridx *ri, struct bz_err *err)
{
    int rc = BZ_OK;
    struct gcache *gc = NULL;
    size_t n = m->n_shards ? m->n_shards : 1;
    hsize_t *lead = calloc(n, sizeof *lead);
    size_t *head = calloc(n, sizeof *head);
    unsigned char *built = calloc(n, 1); /* caches this call's scans made */
    if (!lead || !head || !built) {
        free(lead);
        free(head);
        free(built);
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
    }
    rs->n = 0;
    rs->full = 0;
    for (size_t i = 0; i < m->n_shards; i++) {
        lead[i] = skip[i];
        head[i] = cache ? cache[i].head : 0;
    }
    for (size_t i = 0; i < m->n_shards && !rs->full; i++) {
        if (!shard_has(m, i, path) || !source_meets(m, i, m->map_lo, m->map_hi))
            continue;
        if (cache && cache[i].ready) { /* no row read */
            rcache_runs(m, &cache[i], rs, i, &head[i]);
            continue;
        }
        if (ri && ri[i].state != RIDX_NONE) { /* no row of the table read */
            hsize_t rows = 0;
            hid_t space = H5I_INVALID_HID;
            if ((rc = table_dset(m, i, path, ref, &gc, err)))
                break;
            if ((space = H5Dget_space(gc->dset)) < 0 ||
                H5Sget_simple_extent_dims(space, &rows, NULL) != 1)
                rows = 0;
            bz_out_h5_close(space);
            if ((rc = ridx_runs(m, i, path, rows, &ri[i], rs, err)))
                break;
            if (ri[i].state == RIDX_READY) {
                m->stats.runs_indexed++;
                continue;
            }
        }
        if ((rc = table_dset(m, i, path, ref, &gc, err)) ||
            (rc = scan_shard(m, i, gc, path, rs, skip[i], &lead[i], ix ? &ix[i] : NULL,
                             cache ? &cache[i] : NULL, err)))
            break;
        if (cache && cache[i].ready) { /* built by this scan: its runs start at 0 */
            head[i] = 0;
            built[i] = 1;
        }
    }
    /* a block scanned again (smaller, after an overflow) finds no runs
     * below this block's end in these caches: they are made again, or the
     * sources scanned (scan_ix) */
    for (size_t i = 0; cache && (rc || rs->full) && i < m->n_shards; i++)
        if (built[i])
            rcache_free(m, &cache[i]);
    if (!rc && !rs->full) {
        memcpy(skip, lead, m->n_shards * sizeof *skip);
        for (size_t i = 0; cache && i < m->n_shards; i++) {
            cache[i].head = head[i];
            if (cache[i].ready && head[i] == cache[i].n && cache[i].v) {
                rcache_free(m, &cache[i]); /* every run used: nothing left to keep */
                cache[i].ready = 1;
            }
        }
    }
    free(lead);
    free(head);
    free(built);
    return rc;
}

/* Where a merged table's rows go: windows of whole chunks of the final
 * layout. Tables without variable-length members are compressed here, on
 * the pool's threads, and stored with direct chunk writes (two windows: one
 * filled while the other compresses); the others go through H5Dwrite. */
struct sink {
    hid_t dset, mtype;
    size_t msize;
    int direct;
    hsize_t chunk, win; /* rows */
    hsize_t extent;     /* rows the dataset has now */
    unsigned char *buf[2];
    int cur;
    hsize_t ws; /* output row of buf[cur]'s first row */
    struct bz_zbatch zb[2];
    int pending; /* zb[!cur] submitted and not yet stored */
    hsize_t pending_ws, pending_count;
};

static int sink_extend(struct merge *m, struct sink *s, const char *path, hsize_t end,
                       struct bz_err *err)
{
    if (end <= s->extent)
        return BZ_OK;
    if (H5Dset_extent(s->dset, &end) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot extend it to %llu rows",
                              m->out_name, path, (unsigned long long)end);
    s->extent = end;
    return BZ_OK;
}

/* Store the compressed window of buf[!cur] (pending_ws, pending_count) and
 * clear it for reuse. */
static int sink_store(struct merge *m, struct sink *s, const char *path, struct bz_err *err)
{
    int rc;
    int k = !s->cur;
    struct bz_zbatch *b = &s->zb[k];
    s->pending = 0;
    double t0 = now_s();
    int bad = bz_zpool_wait(m->pool, b);
    double t1 = now_s();
    m->stats.seconds_wait += t1 - t0;
    m->stats.cpu_compress += b->cpu_seconds;
    if (bad == -2) {
        rc = bad_thread_read(b, path, err);
        bz_zbatch_reset_reads(b, 0);
        return rc;
    }
    bz_zbatch_reset_reads(b, 0);
    if (bad)
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: cannot compress rows %llu..%llu",
                          m->out_name, path, (unsigned long long)s->pending_ws,
                          (unsigned long long)(s->pending_ws + s->pending_count));
    if ((rc = sink_extend(m, s, path, s->pending_ws + s->pending_count, err)))
        return rc;
    for (size_t c = 0; c < b->n_chunks; c++) {
        hsize_t off = s->pending_ws + (hsize_t)c * s->chunk;
        if (H5Dwrite_chunk(s->dset, H5P_DEFAULT, 0, &off, b->out_len[c], b->out + c * b->out_cap) <
            0)
            return bz_out_h5_fail(err, BZ_EIO, "%s: cannot write table %s rows from %llu",
                                  m->out_name, path, (unsigned long long)off);
    }
    m->stats.direct_chunks += b->n_chunks;
    m->stats.seconds_write += now_s() - t1;
    return BZ_OK;
}

/* Rows [ws, ws + count) of buf[cur] are complete: write them. */
static int sink_flush(struct merge *m, struct sink *s, const char *path, hsize_t count,
                      struct bz_err *err)
{
    int rc = BZ_OK;
    m->stats.windows++;
    if (s->direct) {
        struct bz_zbatch *b = &s->zb[s->cur];
        b->in = s->buf[s->cur];
        b->n_chunks = (size_t)((count + s->chunk - 1) / s->chunk);
        /* past the last row: zeros, as HDF5 fills an edge chunk (every row
         * before it was just written) */
        memset(s->buf[s->cur] + (size_t)count * s->msize, 0,
               (size_t)((hsize_t)b->n_chunks * s->chunk - count) * s->msize);
        /* this window first, then the one before it is stored: the threads
         * keep compressing while the merging thread writes */
        bz_zpool_submit(m->pool, b);
        if (s->pending && (rc = sink_store(m, s, path, err))) {
            bz_zpool_wait(m->pool, b); /* it reads and fills buffers freed next */
            bz_zbatch_reset_reads(b, 0);
            return rc;
        }
        s->pending = 1;
        s->pending_ws = s->ws;
        s->pending_count = count;
        s->cur = !s->cur;
        s->ws += count;
        return BZ_OK;
    }
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    double t0 = now_s();
    if ((rc = sink_extend(m, s, path, s->ws + count, err)))
        goto out;
    if ((mspace = H5Screate_simple(1, &count, NULL)) < 0 || (fspace = H5Dget_space(s->dset)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &s->ws, NULL, &count, NULL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: dataspace", m->out_name);
        goto out;
    }
    if (H5Dwrite(s->dset, s->mtype, mspace, fspace, m->dxpl, s->buf[0]) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot write table %s rows %llu..%llu", m->out_name,
                            path, (unsigned long long)s->ws, (unsigned long long)(s->ws + count));
out:
    if (mspace >= 0)
        H5Dvlen_reclaim(s->mtype, mspace, H5P_DEFAULT, s->buf[0]);
    memset(s->buf[0], 0, (size_t)count * s->msize);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    s->ws += count;
    m->stats.seconds_write += now_s() - t0;
    return rc;
}

static int sink_open(struct merge *m, struct sink *s, hid_t dset, hid_t mtype, int vlen,
                     hsize_t chunk, hsize_t extent, struct bz_err *err)
{
    s->dset = dset;
    s->mtype = mtype;
    s->msize = H5Tget_size(mtype);
    s->direct = !vlen;
    s->chunk = chunk;
    s->extent = extent;
    /* every table's sink is open at once: each gets a share of the output
     * windows' part of the bound (at least one chunk) */
    size_t shares = m->n_tables > MERGE_TABLE_SHARES ? m->n_tables : MERGE_TABLE_SHARES;
    hsize_t per = m->out_bytes / shares / ((size_t)chunk * s->msize);
    s->win = chunk * (per ? per : 1);
    for (int k = 0; k < 1 + s->direct; k++) {
        struct bz_zbatch *b = &s->zb[k];
        size_t n_chunks = (size_t)(s->win / chunk);
        if (!(s->buf[k] = acct_alloc(m, (size_t)s->win, s->msize)))
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory for a window", m->out_name);
        if (!s->direct)
            continue;
        b->in = s->buf[k]; /* deferred reads land there (gather_raw) */
        b->chunk_bytes = (size_t)chunk * s->msize;
        b->out_cap = bz_zpool_bound(b->chunk_bytes);
        if (!(b->out = acct_alloc(m, n_chunks, b->out_cap)) ||
            !(b->out_len = acct_alloc(m, n_chunks, sizeof *b->out_len)))
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory for a window", m->out_name);
    }
    return BZ_OK;
}

static void sink_close(struct sink *s)
{
    for (int k = 0; k < 2; k++) {
        size_t n_chunks = s->chunk ? (size_t)(s->win / s->chunk) : 0;
        acct_free(s->buf[k], (size_t)s->win, s->msize);
        acct_free(s->zb[k].out, n_chunks, s->zb[k].out_cap);
        acct_free(s->zb[k].out_len, n_chunks, sizeof(size_t));
        bz_zbatch_reset_reads(&s->zb[k], 1);
        s->buf[k] = NULL;
        s->zb[k].out = NULL;
        s->zb[k].out_len = NULL;
    }
}

/* The rows of runs[0..n) of a table without strings, read as the shard
 * stores them: whole chunks, each checked against its Fletcher32, rows
 * copied out; no HDF5 pipeline, cache or conversion. Only for chunks
 * filtered by the checksum alone (shards as bazaar writes them); *used is
 * 0 when the table is stored otherwise. With defer (the window's batch of
 * a direct sink; out is its input), a chunk stored whole with its filter
 * on becomes a read of the batch: the compression threads pread it, check
 * it and copy its rows (out_zpool.c), so the merging thread only looks up
 * its address. Other chunks (and every chunk without defer) are read here
 * (H5Dread_chunk). */
static int gather_raw(struct merge *m, size_t i, struct gcache *gc, const char *path,
                      const struct run *runs, size_t n, size_t msize, unsigned char *out,
                      struct bz_zbatch *defer, int *used, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t dset = gc->dset;
    if (gc->crows == (hsize_t)-1)
        gc->crows = raw_chunk_rows(dset, msize, m->read_bytes);
    hsize_t crows = gc->crows;
    size_t cbytes = (size_t)crows * msize + 4;
    unsigned char *buf = NULL;
    *used = crows > 0;
    if (!crows)
        return BZ_OK; /* HDF5 reads it */
    if (!(buf = acct_alloc(m, cbytes, 1)))
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", m->src[i].path, path);
    hsize_t have = (hsize_t)-1; /* the chunk in buf, or deferred at addr */
    haddr_t addr = HADDR_UNDEF;
    for (size_t k = 0; k < n && !rc; k++) {
        hsize_t pos = runs[k].start, end = runs[k].start + runs[k].len;
        while (pos < end) {
            hsize_t c = pos / crows, base = c * crows;
            if (c != have) {
                /* a plain stored chunk whose address is cheap to find goes to
                 * the threads; any other is read here */
                addr = defer ? chunk_addr(m, i, gc, c, crows, cbytes) : HADDR_UNDEF;
                if (addr == HADDR_UNDEF &&
                    (rc = read_raw_chunk(m, i, dset, path, base, buf, cbytes, err)))
                    break;
                if (addr != HADDR_UNDEF) {
                    m->stats.chunks_pread++;
                    if (bz_merge_test_deferred_hook)
                        bz_merge_test_deferred_hook(m->src[i].path, path, (uint64_t)addr, cbytes,
                                                    (uint64_t)base);
                }
                have = c;
            }
            hsize_t stop = end < base + crows ? end : base + crows;
            size_t dst = (size_t)(runs[k].out_pos + (pos - runs[k].start)) * msize;
            size_t src = (size_t)(pos - base) * msize, len = (size_t)(stop - pos) * msize;
            if (addr == HADDR_UNDEF)
                memcpy(out + dst, buf + src, len);
            else if (bz_zbatch_add_copy(defer, m->src[i].path, (uint64_t)addr, cbytes,
                                        (uint64_t)base, src, (size_t)(out - defer->in) + dst,
                                        len) != 0)
                rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", m->src[i].path, path);
            pos = stop;
        }
    }
    acct_free(buf, cbytes, 1);
    return rc;
}

/* Copy the rows of runs[0..n) (all of shard i, sorted by start) into out
 * (runs' out_pos relative to out), reading the shard through a window of at
 * most m->read_bytes. */
static int gather_shard(struct merge *m, const char *path, const struct run *runs, size_t n,
                        hid_t mtype, size_t msize, int vlen, unsigned char *out,
                        struct bz_zbatch *defer, struct bz_err *err)
{
    int rc = BZ_OK;
    size_t i = runs[0].shard;
    hid_t dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    hid_t mspace = H5I_INVALID_HID, ref = H5I_INVALID_HID;
    struct gcache *gc = NULL;
    unsigned char *win = NULL;
    hsize_t hi = runs[n - 1].start + runs[n - 1].len;
    hsize_t cap = m->read_bytes / msize ? m->read_bytes / msize : 1;
    hsize_t ws = 0, we = 0; /* rows [ws, we) are in win */
    if (cap > hi - runs[0].start)
        cap = hi - runs[0].start;
    if ((rc = table_dset(m, i, path, &ref, &gc, err)))
        goto out;
    dset = gc->dset;
    if (!vlen) {
        int used;
        if ((rc = gather_raw(m, i, gc, path, runs, n, msize, out, defer, &used, err)) || used)
            goto out;
    }
    if ((fspace = H5Dget_space(dset)) < 0 || (mspace = H5Screate_simple(1, &cap, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: dataspace", m->src[i].path, path);
        goto out;
    }
    if (!(win = acct_alloc(m, (size_t)cap, msize))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", m->src[i].path, path);
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        hsize_t pos = runs[k].start, end = runs[k].start + runs[k].len;
        while (pos < end) {
            if (pos >= we) {
                /* free what the old window held and was not taken */
                if (vlen && we > ws && H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, win) < 0) {
                    rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: reclaim", m->src[i].path, path);
                    goto out;
                }
                memset(win, 0, (size_t)cap * msize);
                ws = pos;
                we = ws + cap < hi ? ws + cap : hi;
                hsize_t count = we - ws, zero = 0;
                if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &ws, NULL, &count, NULL) < 0 ||
                    H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
                    bz_shard_read_dxpl(dset, mtype, mspace, fspace, m->dxpl, win) < 0) {
                    rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot read table %s rows %llu..%llu",
                                        m->src[i].path, path, (unsigned long long)ws,
                                        (unsigned long long)we);
                    goto out;
                }
            }
            hsize_t take = (end < we ? end : we) - pos;
            unsigned char *src = win + (size_t)(pos - ws) * msize;
            memcpy(out + (size_t)(runs[k].out_pos + (pos - runs[k].start)) * msize, src,
                   (size_t)take * msize);
            if (vlen)
                memset(src, 0, (size_t)take * msize); /* out owns these rows' strings now */
            pos += take;
        }
    }
out:
    if (win && vlen && mspace >= 0 && H5Sselect_all(mspace) >= 0)
        H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, win); /* rows not taken */
    acct_free(win, (size_t)cap, msize);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    bz_out_h5_close(ref);
    return rc;
}

/* Fill output rows [lo, hi) (inside the sink's current window) from the
 * game-sorted runs of the block: the pieces that fall there are gathered
 * from their shards, one shard at a time. */
static int fill_range(struct merge *m, const char *path, const struct runs *rs, size_t *first,
                      struct run *pieces, struct sink *s, hsize_t lo, hsize_t hi, int vlen,
                      struct bz_err *err)
{
    int rc;
    size_t n = 0;
    while (*first < rs->n && rs->v[*first].out_pos + rs->v[*first].len <= lo)
        (*first)++;
    for (size_t k = *first; k < rs->n && rs->v[k].out_pos < hi; k++) {
        const struct run *r = &rs->v[k];
        hsize_t a = r->out_pos > lo ? r->out_pos : lo;
        hsize_t b = r->out_pos + r->len < hi ? r->out_pos + r->len : hi;
        pieces[n++] =
            (struct run){r->game_id, r->shard, r->start + (a - r->out_pos), b - a, a - s->ws};
    }
    qsort(pieces, n, sizeof *pieces, cmp_run_place);
    for (size_t k = 0; k < n;) {
        size_t e = k + 1;
        while (e < n && pieces[e].shard == pieces[k].shard)
            e++;
        if ((rc = gather_shard(m, path, pieces + k, e - k, s->mtype, s->msize, vlen, s->buf[s->cur],
                               s->direct ? &s->zb[s->cur] : NULL, err)))
            return rc;
        k = e;
    }
    return BZ_OK;
}

/* The table's attributes (units, doc) from the first shard that has it. */
static int copy_table_attrs(const struct merge *m, const char *path, hid_t out_dset,
                            struct bz_err *err)
{
    for (size_t i = 0; i < m->n_shards; i++) {
        if (!shard_has(m, i, path))
            continue;
        hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
        int rc = bz_out_h5_open_ro(m->src[i].path, &file, err);
        if (rc)
            return rc;
        if ((dset = H5Dopen2(file, path, H5P_DEFAULT)) < 0 ||
            bz_out_h5_copy_attrs(dset, out_dset) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot copy its attributes to %s",
                                m->src[i].path, path, m->out_name);
        close_table(&file, &dset);
        return rc;
    }
    return BZ_OK;
}

/* How a source's chunks of a virtual table reach its part. */
enum part_kind {
    PART_COPY, /* deflate, then Fletcher32 (the merged file's pipeline): copied as stored */
    PART_RAW,  /* Fletcher32 alone (shards of the plain layout): compressed here */
    PART_READ  /* stored otherwise, or in chunks whose copy does not fit
                * part_share: rows read through HDF5, compressed here */
};

/* Source i's part of a virtual table: the dataset /.parts/<i><table> of
 * the merged file, the source's chunks stored in the source's chunking. */
struct vpart {
    hid_t dset;     /* none: not created yet */
    hsize_t crows;  /* rows per chunk */
    hsize_t copied; /* rows [0, copied) are stored (the part's extent) */
    hsize_t rows;   /* the source table's rows */
    int kind;
};

/* Rows [start, start + len) of source src's part, at out_pos of the table. */
struct vmap {
    size_t src;
    hsize_t start, len, out_pos;
};

/* A table of the merged file: its row type (from the first shard that has
 * it), its sink (open from its first block to the end of the merge) and
 * the rows written so far. */
struct mtable {
    const char *path; /* borrowed from a source's list of paths */
    int texts;        /* the LLM text store: merged at the end, in one pass */
    hid_t ref, mtype;
    int vlen;
    struct sink s; /* s.dset < 0: not created yet */
    hsize_t total;
    unsigned char direct;
    hsize_t *skip;      /* per source: rows used up by the blocks merged */
    struct scan_ix *ix; /* per source (a following merge's) */
    struct rcache *rc;  /* per source (a following merge's) */
    struct gcache *gc;  /* per source: its dataset of this table, kept open */
    struct ridx *ri;    /* per source: its run index of this table */
    size_t n_skip;
    int decided;         /* virt is known */
    int virt;            /* a virtual dataset over parts (the virtual layout) */
    struct vpart *parts; /* per source (n_parts): its part of the table */
    size_t n_parts;
    struct vmap *maps; /* the mappings, in the table's row order */
    size_t n_maps, cap_maps;
};

static void mtable_free(struct merge *m, struct mtable *t)
{
    if (!t)
        return;
    if (t->s.pending) /* a failure while chunks compress: let them finish */
        bz_zpool_wait(m->pool, &t->s.zb[!t->s.cur]);
    if (t->s.buf[0] && t->vlen) { /* rows gathered into a window not written */
        hid_t all = H5Screate_simple(1, &t->s.win, NULL);
        if (all >= 0)
            H5Dvlen_reclaim(t->s.mtype, all, H5P_DEFAULT, t->s.buf[0]);
        bz_out_h5_close(all);
    }
    sink_close(&t->s);
    bz_out_h5_close(t->s.dset);
    bz_out_h5_close(t->mtype);
    bz_out_h5_close(t->ref);
    for (size_t i = 0; t->ix && i < t->n_skip; i++)
        free(t->ix[i].sufmin);
    for (size_t i = 0; t->rc && i < t->n_skip; i++)
        rcache_free(m, &t->rc[i]);
    free(t->ri);
    for (size_t i = 0; t->gc && i < t->n_skip; i++) {
        bz_out_h5_close(t->gc[i].dset);
        gcache_reset(&t->gc[i], H5I_INVALID_HID);
    }
    for (size_t i = 0; i < t->n_parts; i++)
        bz_out_h5_close(t->parts[i].dset);
    free(t->parts);
    free(t->maps);
    free(t->gc);
    free(t->ix);
    free(t->rc);
    free(t->skip);
    free(t);
}

/* Close every table's dataset of source i (its file is being closed). */
static void close_dsets_of(struct merge *m, size_t i)
{
    for (size_t k = 0; k < m->n_tables; k++) {
        struct mtable *t = m->tables[k];
        if (t->gc && i < t->n_skip && t->gc[i].dset >= 0) {
            bz_out_h5_close(t->gc[i].dset);
            /* reopened, if needed, with a new gcache: the chunk addresses
             * are kept for open files only (a follower has thousands) */
            gcache_reset(&t->gc[i], H5I_INVALID_HID);
        }
    }
}

/* The table's row type from the first shard that has it (a table no block
 * scanned yet: empty so far). */
static int table_ref(struct merge *m, struct mtable *t, struct bz_err *err)
{
    for (size_t i = 0; i < m->n_shards && t->ref < 0; i++) {
        if (!shard_has(m, i, t->path))
            continue;
        hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
        int rc = open_table(m, i, t->path, &file, &dset, &t->ref, err);
        close_table(&file, &dset);
        if (rc)
            return rc;
    }
    if (t->ref < 0) /* cannot happen: the table is listed */
        return bz_err_set(err, BZ_EINTERNAL, "%s: table %s: no shard has it", m->out_name, t->path);
    return BZ_OK;
}

/* Create the table in the merged file and open its sink. rows: the table's
 * total when known (a one-block merge: a small table gets one small chunk),
 * else 0 (the standard chunk). */
static int table_create(struct merge *m, struct mtable *t, hsize_t rows, struct bz_err *err)
{
    int rc;
    if ((rc = table_ref(m, t, err)))
        return rc;
    if ((t->vlen = bz_out_h5_has_vlen(t->ref)) < 0 ||
        (t->mtype = t->vlen ? H5Tget_native_type(t->ref, H5T_DIR_ASCEND) : H5Tcopy(t->ref)) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot build its memory type",
                              m->out_name, t->path);
    hsize_t chunk = bz_out_h5_chunk_rows(H5Tget_size(t->ref), MERGED_CHUNK_BYTES, rows);
    hid_t dset = bz_out_h5_create_table(m->file, t->path, t->ref, rows, chunk,
                                        BZ_OUT_H5_MERGED_PIPELINE, t->ref, NULL);
    if (dset < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot create table %s", m->out_name, t->path);
    if ((rc = sink_open(m, &t->s, dset, t->mtype, t->vlen, chunk, rows, err))) {
        t->s.dset = dset; /* closed by mtable_free */
        return rc;
    }
    return copy_table_attrs(m, t->path, dset, err);
}

/* ---- the virtual layout ------------------------------------------------ */

/* The virtual layout's copy buffers (part_buffers): 1/16 of the bound (in
 * place of the output windows its virtual tables do not have). */
static size_t part_share(const struct merge *m)
{
    return m->stats.bound_bytes / 16;
}

/* The bytes of those buffers for a batch of `chunks` chunks of cbytes: the
 * rows, their compressed copies, lengths and offsets, and (stored: chunks
 * read as stored) one stored chunk. */
static size_t part_need(size_t cbytes, size_t chunks, int stored)
{
    size_t one = cbytes + bz_zpool_bound(cbytes) + sizeof(size_t) + sizeof(hsize_t);
    return chunks * one + (stored ? (bz_zpool_bound(cbytes) + 15) / 16 * 16 : 0);
}

/* Source i's part of table path: "/.parts/<i><path>". */
static int part_name(char *buf, size_t cap, size_t i, const char *path)
{
    int n = snprintf(buf, cap, BZ_OUT_PARTS_GROUP "/%zu%s", i, path);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Whether table t is a virtual dataset: in the virtual layout, a table
 * without strings (decided at its first block). */
static int virt_decide(struct merge *m, struct mtable *t, struct bz_err *err)
{
    int rc;
    if (t->decided)
        return BZ_OK;
    if (m->virt) {
        if ((rc = table_ref(m, t, err)))
            return rc;
        int vlen = bz_out_h5_has_vlen(t->ref);
        if (vlen < 0)
            return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot read its type", m->out_name,
                                  t->path);
        t->virt = !vlen;
    }
    t->decided = 1;
    return BZ_OK;
}

/* How source i stores its dataset of t (gc): kind and rows per chunk. */
static int part_kind(struct merge *m, struct mtable *t, hid_t src, hsize_t *crows)
{
    int kind = PART_READ;
    hid_t dcpl = H5Dget_create_plist(src), stype = H5Dget_type(src);
    size_t row = H5Tget_size(t->ref);
    *crows = 0;
    if (dcpl >= 0 && stype >= 0 && H5Tequal(stype, t->ref) > 0 &&
        H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 1, crows) == 1 && *crows > 0 &&
        part_need((size_t)*crows * row, 1, 1) <= part_share(m)) {
        int nf = H5Pget_nfilters(dcpl);
        unsigned flags = 0;
        size_t cd_n = 0;
        H5Z_filter_t f0 =
            nf >= 1 ? H5Pget_filter2(dcpl, 0, &flags, &cd_n, NULL, 0, NULL, NULL) : -1;
        cd_n = 0;
        H5Z_filter_t f1 =
            nf == 2 ? H5Pget_filter2(dcpl, 1, &flags, &cd_n, NULL, 0, NULL, NULL) : -1;
        if (nf == 1 && f0 == H5Z_FILTER_FLETCHER32)
            kind = PART_RAW;
        else if (nf == 2 && f0 == H5Z_FILTER_DEFLATE && f1 == H5Z_FILTER_FLETCHER32)
            kind = PART_COPY;
    }
    H5Eclear2(H5E_DEFAULT);
    bz_out_h5_close(stype);
    bz_out_h5_close(dcpl);
    /* a source chunk whose copy does not fit the share is read through
     * HDF5 (its filters, its chunk cache), in chunks that fit */
    if (kind == PART_READ) {
        *crows = bz_out_h5_chunk_rows(row, MERGED_CHUNK_BYTES, 0);
        while (*crows > 1 && part_need((size_t)*crows * row, 1, 0) > part_share(m))
            *crows /= 2;
    }
    return kind;
}

/* Create source i's part of t (same chunking as the source when its
 * chunks are copied). */
static int part_create(struct merge *m, struct mtable *t, size_t i, struct gcache *gc,
                       struct bz_err *err)
{
    struct vpart *p = &t->parts[i];
    char name[1024];
    hid_t space = H5Dget_space(gc->dset);
    hssize_t rows = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    bz_out_h5_close(space);
    if (rows < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot read its size", m->src[i].path,
                              t->path);
    p->kind = part_kind(m, t, gc->dset, &p->crows);
    p->rows = (hsize_t)rows;
    p->copied = 0;
    if (part_name(name, sizeof name, i, t->path))
        return bz_err_set(err, BZ_EINVAL, "%s: table %s: path too long", m->out_name, t->path);
    if ((p->dset = bz_out_h5_create_table(m->file, name, t->ref, 0, p->crows,
                                          BZ_OUT_H5_MERGED_PIPELINE, t->ref, NULL)) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot create %s", m->out_name, name);
    return BZ_OK;
}

/* The copy buffers for chunks of cbytes (stored: and one chunk read as
 * stored), carved from one arena of the share (allocated once): a batch of
 * as many chunks as fit, at least one (part_kind chose chunks that fit). */
static int part_buffers(struct merge *m, size_t cbytes, int stored, struct bz_err *err)
{
    size_t share = part_share(m), need = part_need(cbytes, 1, stored);
    size_t size = share > need ? share : need;
    if (m->varena_bytes < size) {
        acct_free(m->varena, m->varena_bytes, 1);
        m->varena_bytes = 0;
        if (!(m->varena = acct_alloc(m, size, 1)))
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory for copying chunks", m->out_name);
        m->varena_bytes = size;
    }
    /* a stored chunk: as large as deflate may make it (a results file's
     * chunk of incompressible rows is larger than its rows) */
    size_t out_cap = bz_zpool_bound(cbytes), vchunk = stored ? (out_cap + 15) / 16 * 16 : 0;
    size_t per = (m->varena_bytes - vchunk) / part_need(cbytes, 1, 0);
    unsigned char *p = m->varena;
    m->vper = per;
    m->vb.out_len = (size_t *)(void *)p;
    p += per * sizeof(size_t);
    m->voff = (hsize_t *)(void *)p;
    p += per * sizeof(hsize_t);
    m->vchunk = stored ? p : NULL;
    m->vchunk_bytes = stored ? out_cap : 0;
    p += vchunk;
    m->vin = p;
    p += per * cbytes;
    m->vb.out = p;
    m->vb.out_cap = out_cap;
    return BZ_OK;
}

/* Compress the batch's chunks on the threads and store them in part p. */
static int part_store_batch(struct merge *m, struct mtable *t, struct vpart *p, struct bz_err *err)
{
    struct bz_zbatch *b = &m->vb;
    if (!b->n_chunks)
        return BZ_OK;
    double t0 = now_s();
    bz_zpool_submit_first(m->pool, b);
    int bad = bz_zpool_wait(m->pool, b);
    double t1 = now_s();
    m->stats.seconds_wait += t1 - t0;
    m->stats.cpu_compress += b->cpu_seconds;
    if (bad == -2) {
        int rc = bad_thread_read(b, t->path, err);
        bz_zbatch_reset_reads(b, 0);
        return rc;
    }
    bz_zbatch_reset_reads(b, 0);
    if (bad)
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: cannot compress a part's rows",
                          m->out_name, t->path);
    for (size_t k = 0; k < b->n_chunks; k++)
        if (H5Dwrite_chunk(p->dset, H5P_DEFAULT, 0, &m->voff[k], b->out_len[k],
                           b->out + k * b->out_cap) < 0)
            return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot write a part's chunk",
                                  m->out_name, t->path);
    m->stats.chunks_compressed += b->n_chunks;
    m->stats.seconds_write += now_s() - t1;
    b->n_chunks = 0;
    return BZ_OK;
}

/* Source i's part of t stored up to (at least) row upto: whole chunks of
 * the source, copied as stored when the rank compressed them, compressed
 * here when stored uncompressed. Rows past the source's last committed
 * game in those chunks are copied too, never mapped. */
static int part_fill(struct merge *m, struct mtable *t, size_t i, hsize_t upto, struct bz_err *err)
{
    int rc;
    struct gcache *gc;
    struct vpart *p = &t->parts[i];
    if (p->dset >= 0 && upto <= p->copied)
        return BZ_OK;
    if ((rc = table_dset(m, i, t->path, &t->ref, &gc, err)))
        return rc;
    if (p->dset < 0 && (rc = part_create(m, t, i, gc, err)))
        return rc;
    if (upto > p->rows)
        return bz_err_set(err, BZ_EINTERNAL, "%s: table %s: row %llu past its %llu rows",
                          m->src[i].path, t->path, (unsigned long long)upto,
                          (unsigned long long)p->rows);
    hsize_t end = (upto + p->crows - 1) / p->crows * p->crows;
    if (end > p->rows)
        end = p->rows;
    if (end <= p->copied)
        return BZ_OK;
    size_t row = H5Tget_size(t->ref), cbytes = (size_t)p->crows * row;
    if ((rc = part_buffers(m, cbytes, p->kind != PART_READ, err)))
        return rc;
    if (H5Dset_extent(p->dset, &end) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot extend a part", m->out_name,
                              t->path);
    double t0 = now_s();
    struct bz_zbatch *b = &m->vb;
    size_t per = m->vper;
    b->in = m->vin;
    b->chunk_bytes = cbytes;
    b->n_chunks = 0;
    hid_t mspace = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    for (hsize_t off = p->copied; off < end && !rc; off += p->crows) {
        unsigned char *dst = m->vin + b->n_chunks * cbytes;
        /* (a thread reads it in a buffer of its own: at most the read
         * window, as the gather's) */
        haddr_t addr = p->kind == PART_RAW && cbytes + 4 <= m->read_bytes
                           ? chunk_addr(m, i, gc, off / p->crows, p->crows, cbytes + 4)
                           : HADDR_UNDEF;
        if (addr != HADDR_UNDEF) { /* the threads read it (pread), check it, copy its rows */
            m->stats.chunks_pread++;
            if (bz_merge_test_deferred_hook)
                bz_merge_test_deferred_hook(m->src[i].path, t->path, (uint64_t)addr, cbytes + 4,
                                            (uint64_t)off);
            if (bz_zbatch_add_copy(b, m->src[i].path, (uint64_t)addr, cbytes + 4, (uint64_t)off, 0,
                                   (size_t)(dst - m->vin), cbytes) != 0) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
                break;
            }
        } else if (p->kind == PART_READ) {
            hsize_t n = p->rows - off < p->crows ? p->rows - off : p->crows;
            memset(dst, 0, cbytes);
            if ((mspace = H5Screate_simple(1, &n, NULL)) < 0 ||
                (fspace = H5Dget_space(gc->dset)) < 0 ||
                H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &off, NULL, &n, NULL) < 0 ||
                H5Dread(gc->dset, t->ref, mspace, fspace, m->dxpl, dst) < 0)
                rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: rows %llu..%llu unreadable",
                                    m->src[i].path, t->path, (unsigned long long)off,
                                    (unsigned long long)(off + n));
            bz_out_h5_close(mspace);
            bz_out_h5_close(fspace);
            mspace = fspace = H5I_INVALID_HID;
            m->stats.chunks_read++;
        } else {
            hsize_t size = 0;
            uint32_t mask = 0;
            m->stats.chunks_read++;
            if (H5Dget_chunk_storage_size(gc->dset, &off, &size) < 0 || size < 4 ||
                size > m->vchunk_bytes ||
                H5Dread_chunk(gc->dset, H5P_DEFAULT, &off, &mask, m->vchunk) < 0 ||
                !bz_zpool_chunk_ok(m->vchunk, (size_t)size)) {
                rc = bz_out_h5_fail(err, BZ_EIO,
                                    "%s: table %s: the chunk at row %llu is missing or fails "
                                    "its checksum",
                                    m->src[i].path, t->path, (unsigned long long)off);
                break;
            }
            if (p->kind == PART_COPY && mask == 0) { /* compressed by the rank */
                if (H5Dwrite_chunk(p->dset, H5P_DEFAULT, 0, &off, (size_t)size, m->vchunk) < 0)
                    rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot write a part's chunk",
                                        m->out_name, t->path);
                m->stats.chunks_copied++;
                continue;
            }
            /* stored uncompressed: Fletcher32 alone, or deflate skipped */
            if (mask != (p->kind == PART_COPY ? 1u : 0u) || size != cbytes + 4) {
                rc = bz_err_set(err, BZ_EIO,
                                "%s: table %s: the chunk at row %llu is stored in a way the "
                                "merge does not know (filter mask %u, %llu bytes)",
                                m->src[i].path, t->path, (unsigned long long)off, (unsigned)mask,
                                (unsigned long long)size);
                break;
            }
            memcpy(dst, m->vchunk, cbytes);
        }
        if (rc)
            break;
        m->voff[b->n_chunks++] = off;
        if (b->n_chunks == per)
            rc = part_store_batch(m, t, p, err);
    }
    m->stats.seconds_read += now_s() - t0;
    if (!rc)
        rc = part_store_batch(m, t, p, err);
    if (rc && b->n_reads) /* reads added to a batch never submitted */
        bz_zbatch_reset_reads(b, 0);
    b->n_chunks = 0;
    if (!rc)
        p->copied = end;
    return rc;
}

/* A block's runs of a virtual table (sorted, out_pos set): their rows
 * stored in the parts, and mapped (a run that continues the last mapping
 * in its source and in the table extends it). */
static int virt_runs(struct merge *m, struct mtable *t, const struct runs *rs, struct bz_err *err)
{
    int rc;
    if (t->n_parts < m->n_shards) {
        struct vpart *v = realloc(t->parts, m->n_shards * sizeof *v);
        if (!v)
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
        for (size_t i = t->n_parts; i < m->n_shards; i++)
            v[i] = (struct vpart){.dset = H5I_INVALID_HID};
        t->parts = v;
        t->n_parts = m->n_shards;
    }
    for (size_t k = 0; k < rs->n; k++) {
        const struct run *r = &rs->v[k];
        if ((rc = part_fill(m, t, r->shard, r->start + r->len, err)))
            return rc;
        struct vmap *last = t->n_maps ? &t->maps[t->n_maps - 1] : NULL;
        if (last && last->src == r->shard && last->start + last->len == r->start &&
            last->out_pos + last->len == r->out_pos) {
            last->len += r->len;
            continue;
        }
        if (t->n_maps == t->cap_maps) {
            size_t cap = t->cap_maps ? 2 * t->cap_maps : 64;
            struct vmap *v = realloc(t->maps, cap * sizeof *v);
            if (!v)
                return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
            t->maps = v;
            t->cap_maps = cap;
        }
        t->maps[t->n_maps++] = (struct vmap){r->shard, r->start, r->len, r->out_pos};
    }
    return BZ_OK;
}

/* Virtual table t: its parts closed at their extents, then the table as a
 * virtual dataset of this file (source file ".") mapping them in order. */
static int virt_finish(struct merge *m, struct mtable *t, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t dcpl = H5I_INVALID_HID, vspace = H5I_INVALID_HID, sspace = H5I_INVALID_HID;
    hid_t lcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    double t0 = now_s();
    for (size_t i = 0; i < t->n_parts; i++) {
        struct vpart *p = &t->parts[i];
        hid_t d = p->dset;
        p->dset = H5I_INVALID_HID;
        if (d >= 0 && H5Dclose(d) < 0)
            return bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot close a part", m->out_name,
                                  t->path);
    }
    hsize_t total = t->total;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        (vspace = H5Screate_simple(1, &total, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: dataspace", m->out_name, t->path);
        goto out;
    }
    for (size_t k = 0; k < t->n_maps; k++) {
        const struct vmap *v = &t->maps[k];
        char name[1024];
        hsize_t extent = t->parts[v->src].copied;
        if (part_name(name, sizeof name, v->src, t->path) ||
            H5Sselect_hyperslab(vspace, H5S_SELECT_SET, &v->out_pos, NULL, &v->len, NULL) < 0 ||
            (sspace = H5Screate_simple(1, &extent, NULL)) < 0 ||
            H5Sselect_hyperslab(sspace, H5S_SELECT_SET, &v->start, NULL, &v->len, NULL) < 0 ||
            H5Pset_virtual(dcpl, vspace, ".", name, sspace) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot map rows %llu..%llu",
                                m->out_name, t->path, (unsigned long long)v->out_pos,
                                (unsigned long long)(v->out_pos + v->len));
            goto out;
        }
        bz_out_h5_close(sspace);
        sspace = H5I_INVALID_HID;
    }
    H5Sselect_all(vspace);
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        (dset = H5Dcreate2(m->file, t->path, t->ref, vspace, lcpl, dcpl, H5P_DEFAULT)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create table %s", m->out_name, t->path);
        goto out;
    }
    if ((rc = copy_table_attrs(m, t->path, dset, err)))
        goto out;
    t->direct = 1;
    m->stats.mappings += t->n_maps;
    m->stats.raw_bytes += (uint64_t)t->total * H5Tget_size(t->ref);
out:
    if (dset >= 0 && H5Dclose(dset) < 0 && !rc)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close table %s", m->out_name, t->path);
    bz_out_h5_close(lcpl);
    bz_out_h5_close(sspace);
    bz_out_h5_close(vspace);
    bz_out_h5_close(dcpl);
    m->stats.seconds_write += now_s() - t0;
    return rc;
}

/* Table t's games with ids in [lo, hi), appended to its sink. The block's
 * index (winner per id, runs) fits its share of the bound for any sweep of
 * ordinary size; a block whose runs overflow is halved and scanned again.
 * last: no game comes after hi (a table created now knows its size, unless
 * streaming). The sink keeps its partial window for the next block. */
static int table_range(struct merge *m, struct mtable *t, int64_t lo, int64_t hi, int last,
                       struct bz_err *err)
{
    int rc = BZ_OK;
    struct runs rs = {.v = m->runs, .cap = m->run_cap};
    int64_t span = hi - lo;
    if (t->n_skip < m->n_shards) { /* sources added since */
        hsize_t *sk = realloc(t->skip, m->n_shards * sizeof *sk);
        if (sk)
            t->skip = sk;
        struct scan_ix *ix = sk && m->streaming ? realloc(t->ix, m->n_shards * sizeof *ix) : NULL;
        if (ix)
            t->ix = ix;
        struct rcache *rcv = ix ? realloc(t->rc, m->n_shards * sizeof *rcv) : NULL;
        if (rcv)
            t->rc = rcv;
        struct gcache *gcv = sk ? realloc(t->gc, m->n_shards * sizeof *gcv) : NULL;
        if (gcv) {
            t->gc = gcv;
            for (size_t i = t->n_skip; i < m->n_shards; i++)
                gcv[i] = (struct gcache){H5I_INVALID_HID, (hsize_t)-1, -1, NULL, 0};
        }
        struct ridx *riv = gcv ? realloc(t->ri, m->n_shards * sizeof *riv) : NULL;
        if (riv) {
            t->ri = riv;
            memset(riv + t->n_skip, 0, (m->n_shards - t->n_skip) * sizeof *riv);
        }
        if (!sk || !gcv || !riv || (m->streaming && (!ix || !rcv)))
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
        memset(sk + t->n_skip, 0, (m->n_shards - t->n_skip) * sizeof *sk);
        if (ix)
            memset(ix + t->n_skip, 0, (m->n_shards - t->n_skip) * sizeof *ix);
        if (rcv)
            memset(rcv + t->n_skip, 0, (m->n_shards - t->n_skip) * sizeof *rcv);
        t->n_skip = m->n_shards;
    }
    m->gcs = t->gc;
    if ((rc = virt_decide(m, t, err)))
        return rc;
    for (int64_t a = lo; a < hi;) {
        int64_t b = hi - a <= span ? hi : a + span;
        double t_idx = now_s();
        rc = build_map(m, a, b, err);
        if (!rc)
            rc = find_runs(m, t->path, &t->ref, &rs, t->skip, t->ix, t->rc, t->ri, err);
        m->stats.seconds_index += now_s() - t_idx;
        if (rc)
            return rc;
        if (rs.full && b - a > 1) {
            span = (b - a) / 2; /* too many runs: a smaller block */
            continue;
        }
        if (rs.full)
            return bz_err_set(err, BZ_ENOMEM,
                              "%s: table %s: game %lld has more than %zu runs of rows; raise "
                              "BZ_MERGE_MEMORY",
                              m->out_name, t->path, (long long)a, rs.cap);
        m->stats.blocks++;
        if (rs.n)
            qsort(rs.v, rs.n, sizeof *rs.v, cmp_run_game);
        hsize_t end = t->total;
        for (size_t k = 0; k < rs.n; k++) {
            rs.v[k].out_pos = end;
            end += rs.v[k].len;
        }
        if (t->virt) {
            if ((rc = virt_runs(m, t, &rs, err)))
                return rc;
            t->total = end;
            a = b;
            continue;
        }
        if (t->s.dset < 0 &&
            (rc = table_create(m, t, !m->streaming && last && b == hi ? end : 0, err)))
            return rc;
        size_t first = 0;
        for (hsize_t pos = t->total; pos < end;) {
            hsize_t we = t->s.ws + t->s.win, hi_pos = end < we ? end : we;
            double t0 = now_s();
            rc = fill_range(m, t->path, &rs, &first, m->pieces, &t->s, pos, hi_pos, t->vlen, err);
            m->stats.seconds_read += now_s() - t0;
            if (rc)
                return rc;
            pos = hi_pos;
            if (pos == we && (rc = sink_flush(m, &t->s, t->path, t->s.win, err)))
                return rc;
        }
        t->total = end;
        a = b;
    }
    /* a window still compressing is stored by the sink's next flush (or
     * table_finish): the next table's rows are read meanwhile */
    return BZ_OK;
}

/* Start writing back what the merge wrote so far (best effort, does not
 * wait): the fsync before the rename, on the critical path once the play
 * is over, then has only the rest to write. */
static void start_writeback(const struct merge *m)
{
    int fd = open(m->tmp, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        close(fd);
    }
}

/* Every table (but the text store) advances over the games with ids in
 * [m->next, hi), one block of ids (the index's share) at a time. */
static int advance(struct merge *m, int64_t hi, int last, struct bz_err *err)
{
    int rc = BZ_OK;
    if (!m->has_ids)
        return BZ_OK;
    if (!m->next_set || m->next < m->id_min) {
        m->next = m->id_min;
        m->next_set = 1;
    }
    int64_t span = (int64_t)m->map_cap;
    while (m->next < hi) {
        int64_t b = hi - m->next <= span ? hi : m->next + span;
        int blast = last && b == hi;
        for (size_t k = 0; k < m->n_tables && !rc; k++)
            if (!m->tables[k]->texts)
                rc = table_range(m, m->tables[k], m->next, b, blast, err);
        if (rc)
            return rc;
        /* the games of the block (for the follower's figures) */
        if ((rc = build_map(m, m->next, b, err)))
            return rc;
        for (int64_t k = 0; k < b - m->next; k++)
            m->games += m->map[k] >= 0;
        m->next = b;
        start_writeback(m);
    }
    return BZ_OK;
}

/* A table's last window, its last compressed batch, its extent; then it
 * is closed. */
static int table_finish(struct merge *m, struct mtable *t, struct bz_err *err)
{
    int rc;
    struct sink *s = &t->s;
    if (t->virt && t->total) /* (an empty table is stored plain) */
        return virt_finish(m, t, err);
    t->virt = 0;
    if (s->dset < 0 && (rc = table_create(m, t, 0, err)))
        return rc;
    if (t->total > s->ws && (rc = sink_flush(m, s, t->path, t->total - s->ws, err)))
        return rc;
    if (s->pending && (rc = sink_store(m, s, t->path, err)))
        return rc;
    if ((rc = sink_extend(m, s, t->path, t->total, err)))
        return rc;
    hid_t dset = s->dset;
    s->dset = H5I_INVALID_HID;
    if (H5Dclose(dset) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot close table %s", m->out_name, t->path);
    t->direct = (unsigned char)s->direct;
    m->stats.raw_bytes += (uint64_t)t->total * H5Tget_size(t->ref);
    return BZ_OK;
}

static int cmp_mtable(const void *a, const void *b)
{
    return strcmp((*(struct mtable *const *)a)->path, (*(struct mtable *const *)b)->path);
}

/* Add source path (its committed ids: ids[0..n), sorted) to the merge: its
 * tables join the merged file's. */
static int add_source(struct merge *m, const char *path, const int64_t *ids, size_t n,
                      struct bz_err *err)
{
    int rc;
    if (m->n_shards == m->cap_shards) {
        size_t cap = m->cap_shards ? 2 * m->cap_shards : 16;
        struct source *v = realloc(m->src, cap * sizeof *v);
        if (!v)
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
        m->src = v;
        m->cap_shards = cap;
    }
    size_t i = m->n_shards;
    m->src[i] = (struct source){.path = strdup(path), .lo = 1, .hi = 0, .file = H5I_INVALID_HID};
    if (!m->src[i].path)
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
    m->n_shards++;
    /* a following merge goes over its sources block after block: their
     * committed ids are kept (8 bytes a game) rather than read again */
    if (m->streaming && n) {
        if (!(m->src[i].ids = malloc(n * sizeof *ids)))
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
        memcpy(m->src[i].ids, ids, n * sizeof *ids);
        m->src[i].n_ids = n;
    }
    if (n) {
        m->src[i].lo = ids[0];
        m->src[i].hi = ids[n - 1];
        if (!m->has_ids || ids[0] < m->id_min)
            m->id_min = ids[0];
        if (!m->has_ids || ids[n - 1] > m->id_max)
            m->id_max = ids[n - 1];
        m->has_ids = 1;
    }
    m->map_valid = 0;
    hid_t file;
    if ((rc = source_file(m, i, &file, err)) ||
        (rc = bz_out_h5_list_datasets(file, &m->src[i].paths, &m->src[i].n_paths, path, err)))
        return rc;
    /* tables not seen before */
    for (size_t j = 0; j < m->src[i].n_paths; j++) {
        struct mtable key = {.path = m->src[i].paths[j]}, *kp = &key;
        if (m->n_tables && bsearch(&kp, m->tables, m->n_tables, sizeof *m->tables, cmp_mtable))
            continue;
        struct mtable **tt = realloc(m->tables, (m->n_tables + 1) * sizeof *tt);
        if (!tt)
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
        m->tables = tt;
        struct mtable *t = calloc(1, sizeof *t);
        if (!t)
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
        t->path = m->src[i].paths[j];
        t->texts = bz_out_texts_is_store(t->path);
        t->ref = t->mtype = t->s.dset = H5I_INVALID_HID;
        m->tables[m->n_tables++] = t;
        qsort(m->tables, m->n_tables, sizeof *m->tables, cmp_mtable);
    }
    return BZ_OK;
}

/* HDF5's type conversion buffer and its background buffer: each 1/256 of
 * the bound, at least 4 KiB, at most 1 MiB (HDF5's default size). */
#define MERGE_TCONV_MIN ((size_t)4 << 10)
#define MERGE_TCONV_MAX ((size_t)1 << 20)

/* The bound's shares, the index, the id window and the threads. */
static int merge_setup(struct merge *m, struct bz_err *err)
{
    size_t bound = memory_bound();
    m->stats.bound_bytes = bound;
    m->threads = bz_zpool_default_threads();
    /* the output windows of all tables: 1/64 of the bound, or two chunks
     * per thread when that is more (every thread busy), never past 1/16 */
    size_t out = bound / 64, busy = (size_t)m->threads * 2 * MERGED_CHUNK_BYTES;
    if (out < busy)
        out = busy < bound / 16 ? busy : bound / 16;
    m->out_bytes = out < MERGE_OUT_BYTES ? out : MERGE_OUT_BYTES;
    m->read_bytes = bound / 64 < MERGE_WINDOW_BYTES ? bound / 64 : MERGE_WINDOW_BYTES;
    m->id_rows = (hsize_t)(bound / 32 / sizeof(int64_t));
    size_t index = bound / 4;
    m->cache_cap = bound / 16;
    m->ridx_win_rows = (hsize_t)(bound / 64 / sizeof(struct bz_out_run_row));
    m->map_cap = index / 2 / sizeof *m->map;
    m->run_cap = index / 2 / (2 * sizeof(struct run)); /* the runs and their pieces */
    m->stats.threads = m->threads;
    if (!(m->map = acct_alloc(m, m->map_cap, sizeof *m->map)) ||
        !(m->ids_raw = acct_alloc(m, (size_t)m->id_rows, sizeof(int64_t))) ||
        !(m->ridx_win = acct_alloc(m, (size_t)m->ridx_win_rows, sizeof *m->ridx_win)) ||
        !(m->runs = acct_alloc(m, m->run_cap, sizeof *m->runs)) ||
        !(m->pieces = acct_alloc(m, m->run_cap, sizeof *m->pieces)))
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory for the merge index", m->out_name);
    size_t tconv = bound / 256;
    m->tconv_bytes = tconv < MERGE_TCONV_MIN   ? MERGE_TCONV_MIN
                     : tconv > MERGE_TCONV_MAX ? MERGE_TCONV_MAX
                                               : tconv;
    if (!(m->tconv = acct_alloc(m, m->tconv_bytes, 1)) ||
        !(m->bkg = acct_alloc(m, m->tconv_bytes, 1)) ||
        (m->dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 ||
        H5Pset_buffer(m->dxpl, m->tconv_bytes, m->tconv, m->bkg) < 0)
        return bz_out_h5_fail(err, BZ_ENOMEM, "%s: no memory for type conversions", m->out_name);
    if (bz_zpool_create(m->threads, &m->pool) != 0)
        return bz_err_set(err, BZ_ENOMEM, "%s: cannot start %d compression threads", m->out_name,
                          m->threads);
    return BZ_OK;
}

static int attr_str(hid_t file, const char *name, const char *value, const char *out_name,
                    struct bz_err *err)
{
    if (!value)
        return BZ_OK;
    int rc = BZ_OK;
    hid_t type = bz_out_h5_str_type(), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    if (type < 0 || space < 0 ||
        (attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, type, &value) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot write attribute %s", out_name, name);
    bz_out_h5_close(attr);
    bz_out_h5_close(space);
    bz_out_h5_close(type);
    return rc;
}

static int attr_i64(hid_t file, const char *name, int64_t value, const char *out_name,
                    struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    if (space < 0 ||
        (attr = H5Acreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, H5T_NATIVE_INT64, &value) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot write attribute %s", out_name, name);
    bz_out_h5_close(attr);
    bz_out_h5_close(space);
    return rc;
}

static int write_provenance(hid_t file, const struct bz_provenance *p, const char *out_name,
                            struct bz_err *err)
{
    int rc;
    if (!p)
        return BZ_OK;
    if ((rc = attr_str(file, "spec_json", p->spec_json, out_name, err)) ||
        (rc = attr_str(file, "version", p->version, out_name, err)) ||
        (rc = attr_str(file, "git_commit", p->git_commit, out_name, err)) ||
        (rc = attr_str(file, "hosts", p->hosts, out_name, err)) ||
        (rc = attr_str(file, "started_at", p->started_at, out_name, err)) ||
        (rc = attr_str(file, "finished_at", p->finished_at, out_name, err)) ||
        (rc = attr_i64(file, "ranks", p->ranks, out_name, err)) ||
        (rc = attr_i64(file, "n_games", p->n_games, out_name, err)))
        return rc;
    return BZ_OK;
}

static int fsync_path(const char *path, int directory, struct bz_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
    if (fd < 0)
        return bz_err_set(err, BZ_EIO, "%s: open: %s", path, strerror(errno));
    int bad = fsync(fd) != 0 && !(directory && (errno == EINVAL || errno == EROFS));
    int saved = errno;
    close(fd);
    if (bad)
        return bz_err_set(err, BZ_EIO, "%s: fsync: %s", path, strerror(saved));
    return BZ_OK;
}

/* The fsync of the merged file, on a thread while it is read back (the
 * one waits on the disk, the other reads the page cache): both finish
 * before the rename. */
struct fsync_job {
    const char *path;
    int rc;
    struct bz_err err;
};

static void *fsync_job_run(void *arg)
{
    struct fsync_job *j = arg;
    j->rc = fsync_path(j->path, 0, &j->err);
    return NULL;
}

static int fsync_parent(const char *path, struct bz_err *err)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return fsync_path(".", 1, err);
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(len + 1);
    if (!dir)
        return bz_err_set(err, BZ_ENOMEM, "no memory");
    memcpy(dir, path, len);
    dir[len] = '\0';
    int rc = fsync_path(dir, 1, err);
    free(dir);
    return rc;
}

/* Every stored chunk of a table written with direct chunk writes: present,
 * unfiltered by nothing (mask 0), and carrying the checksum computed before
 * it was written. */
static int check_chunks(const struct merge *m, hid_t dset, hsize_t n, int plain, const char *table,
                        struct bz_err *err)
{
    int rc = BZ_OK;
    const char *tmp = m->tmp;
    hid_t dcpl = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    unsigned char *buf = NULL;
    hsize_t chunk = 0;
    struct bz_zbatch zb = {0};
    if ((dcpl = H5Dget_create_plist(dset)) < 0 || H5Pget_chunk(dcpl, 1, &chunk) != 1 ||
        chunk == 0 || (ftype = H5Dget_type(dset)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot read its layout", tmp, table);
        goto out;
    }
    size_t cap = bz_zpool_bound((size_t)chunk * H5Tget_size(ftype));
    if (!(buf = malloc(cap))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", tmp, table);
        goto out;
    }
    /* mask: HDF5's deflate filter is optional (bit 0 set: stored
     * uncompressed); the checksum never is. A chunk whose address is cheap
     * to find is checked by the threads (pread), the others here. */
    for (hsize_t off = 0; off < n; off += chunk) {
        hsize_t size = 0;
        uint32_t mask = 1;
        haddr_t addr = HADDR_UNDEF;
        if (plain && off / chunk < MERGE_PREAD_CHUNKS &&
            H5Dget_chunk_info_by_coord(dset, &off, &mask, &addr, &size) >= 0 && addr != 0 &&
            addr != HADDR_UNDEF && (mask & ~1u) == 0 && size > 0 && size <= cap) {
            if (bz_zbatch_add_check(&zb, tmp, (uint64_t)addr, (size_t)size, (uint64_t)off) != 0) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", tmp, table);
                goto out;
            }
            continue;
        }
        H5Eclear2(H5E_DEFAULT);
        mask = 1;
        if (H5Dget_chunk_storage_size(dset, &off, &size) < 0 || size == 0 || size > cap ||
            H5Dread_chunk(dset, H5P_DEFAULT, &off, &mask, buf) < 0 || (mask & ~1u) != 0 ||
            !bz_zpool_chunk_ok(buf, (size_t)size)) {
            rc = bz_out_h5_fail(err, BZ_EIO,
                                "%s: table %s: the chunk at row %llu does not read back", tmp,
                                table, (unsigned long long)off);
            goto out;
        }
    }
    if (zb.n_reads) {
        bz_zpool_submit_first(m->pool, &zb);
        if (bz_zpool_wait(m->pool, &zb) == -2)
            rc = bz_err_set(
                err, BZ_EIO, "%s: table %s: the chunk at row %llu does not read back%s%s", tmp,
                table, (unsigned long long)zb.reads[zb.bad_read].row, zb.read_errno ? ": " : "",
                zb.read_errno ? strerror(zb.read_errno) : "");
    }
out:
    bz_zbatch_reset_reads(&zb, 1);
    free(buf);
    bz_out_h5_close(ftype);
    bz_out_h5_close(dcpl);
    return rc;
}

/* Open the closed merged file again and read every table back: the rename
 * puts only a file that reads back, with the rows written, in place. Every
 * table: its extent, and every chunk's stored bytes against their Fletcher32
 * (cheap, no inflate; HDF5's filters store the same checksum as the merge's
 * threads). Tables with strings: also their last chunk's rows through HDF5,
 * strings included (the global heap they point into is reachable). Reading
 * every row of those through HDF5, as before, cost about a fifth of the
 * merge's CPU (the /messages strings), and proved nothing the chunk
 * checksums and the closing writes' return codes had not. */
/* The first row of the last chunk of a table of n rows (0 when unknown). */
static hsize_t last_chunk_start(hid_t dset, hsize_t n)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t chunk = 0;
    if (dcpl < 0 || H5Pget_chunk(dcpl, 1, &chunk) != 1 || chunk == 0 || n == 0)
        chunk = 0;
    bz_out_h5_close(dcpl);
    return chunk ? (n - 1) / chunk * chunk : 0;
}

/* Every part of virtual table t: every chunk against its checksum. */
static int check_parts(const struct merge *m, hid_t file, const struct mtable *t, int plain,
                       struct bz_err *err)
{
    int rc = BZ_OK;
    for (size_t i = 0; i < t->n_parts && !rc; i++) {
        char name[1024];
        if (t->parts[i].copied == 0 && t->parts[i].crows == 0)
            continue; /* never created */
        hid_t d = H5I_INVALID_HID;
        if (part_name(name, sizeof name, i, t->path) || (d = H5Dopen2(file, name, H5P_DEFAULT)) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: part %s does not read back", m->tmp,
                                t->path, name);
        else
            rc = check_chunks(m, d, t->parts[i].copied, plain, name, err);
        bz_out_h5_close(d);
    }
    return rc;
}

static int read_back(const struct merge *m, struct bz_err *err)
{
    int rc;
    const char *tmp = m->tmp;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, space = H5I_INVALID_HID;
    if ((rc = bz_out_h5_open_ro(tmp, &file, err)))
        return rc;
    /* no user block: a chunk's address is its offset in the file */
    hid_t fcpl = H5Fget_create_plist(file);
    hsize_t ub = 1;
    if (fcpl < 0 || H5Pget_userblock(fcpl, &ub) < 0)
        ub = 1;
    H5Eclear2(H5E_DEFAULT);
    bz_out_h5_close(fcpl);
    int plain = ub == 0;
    for (size_t k = 0; k < m->n_tables && !rc; k++) {
        const struct mtable *t = m->tables[k];
        hsize_t n = 0;
        if ((dset = H5Dopen2(file, t->path, H5P_DEFAULT)) < 0 || (space = H5Dget_space(dset)) < 0 ||
            H5Sget_simple_extent_ndims(space) != 1 ||
            H5Sget_simple_extent_dims(space, &n, NULL) != 1) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s does not read back", tmp, t->path);
        } else if (n != t->total) {
            rc = bz_err_set(err, BZ_EIO, "%s: table %s reads back %llu rows, %llu were written",
                            tmp, t->path, (unsigned long long)n, (unsigned long long)t->total);
        } else if (t->virt) {
            rc = check_parts(m, file, t, plain, err);
            /* a few rows through the mappings: the parts they name open */
            if (!rc)
                rc = bz_out_h5_check_rows(dset, n > 64 ? n - 64 : 0, n, tmp, t->path, err);
        } else if (!(rc = check_chunks(m, dset, n, plain, t->path, err)) && !t->direct) {
            hsize_t last = last_chunk_start(dset, n);
            rc = bz_out_h5_check_rows(dset, last, n, tmp, t->path, err);
        }
        bz_out_h5_close(space);
        bz_out_h5_close(dset);
        space = dset = H5I_INVALID_HID;
    }
    if (!rc)
        rc = bz_out_texts_check(file, tmp, err);
    if (H5Fclose(file) < 0 && !rc)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close after reading back", tmp);
    return rc;
}

struct bz_merge_stream {
    struct merge m;
};

/* Free everything of the merge; the tmp file is removed unless renamed. */
static void merge_free(struct merge *m)
{
    if (m->src)
        close_sources(m);
    for (size_t k = 0; k < m->n_tables; k++)
        mtable_free(m, m->tables[k]);
    free(m->tables);
    if (m->file >= 0)
        bz_out_h5_close_file(&m->file, m->tmp, NULL);
    bz_out_h5_close(m->fapl);
    if (m->tmp_made)
        unlink(m->tmp);
    for (size_t i = 0; i < m->n_shards; i++) {
        bz_out_free_paths(m->src[i].paths, m->src[i].n_paths);
        free(m->src[i].path);
        free(m->src[i].ids);
    }
    free(m->src);
    bz_zpool_destroy(m->pool);
    bz_zbatch_reset_reads(&m->scan_b, 1);
    acct_free(m->varena, m->varena_bytes, 1);
    bz_zbatch_reset_reads(&m->vb, 1);
    acct_free(m->map, m->map_cap, sizeof *m->map);
    acct_free(m->ids_raw, (size_t)m->id_rows, sizeof(int64_t));
    acct_free(m->ridx_win, (size_t)m->ridx_win_rows, sizeof *m->ridx_win);
    acct_free(m->runs, m->run_cap, sizeof *m->runs);
    acct_free(m->pieces, m->run_cap, sizeof *m->pieces);
    bz_out_h5_close(m->dxpl);
    acct_free(m->tconv, m->tconv_bytes, 1);
    acct_free(m->bkg, m->bkg ? m->tconv_bytes : 0, 1);
    m->stats.seconds = now_s() - m->t_start;
    m->stats.cpu_main = thread_cpu_s() - m->c_start;
    last_stats = m->stats;
    free(m->tmp);
    bz_out_lock_release(m->lock);
}

int bz_merge_stream_open(const char *out_path, int streaming, struct bz_merge_stream **out,
                         struct bz_err *err)
{
    int rc;
    struct bz_merge_stream *ms = calloc(1, sizeof *ms);
    *out = NULL;
    if (!ms)
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory", out_path);
    struct merge *m = &ms->m;
    m->out_name = out_path;
    m->streaming = streaming;
    m->fapl = m->file = m->dxpl = H5I_INVALID_HID;
    m->t_start = now_s();
    m->c_start = thread_cpu_s();
    bz_out_h5_quiet();
    held = 0;
    /* before anything is written: a second writer of out_path stops here */
    if ((rc = bz_out_lock_take(out_path, &m->lock, err))) {
        free(ms);
        return rc;
    }
    size_t len = strlen(out_path);
    if (!(m->tmp = malloc(len + 5))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", out_path);
        goto out;
    }
    memcpy(m->tmp, out_path, len);
    memcpy(m->tmp + len, ".tmp", 5);
    if ((rc = merge_setup(m, err)))
        goto out;
    /* 1.8 file format: the results file opens in any HDF5 from 1.8 on. */
    if ((m->fapl = bz_out_h5_fapl()) < 0 ||
        H5Pset_libver_bounds(m->fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot set up file access", out_path);
        goto out;
    }
    /* We hold the lock: an existing tmp is what a killed merge left. Remove
     * it and create exclusively, never truncating a file in place. */
    if (unlink(m->tmp) != 0 && errno != ENOENT) {
        rc = bz_err_set(err, BZ_EIO, "%s: cannot remove the leftover: %s", m->tmp, strerror(errno));
        goto out;
    }
    if ((m->file = H5Fcreate(m->tmp, H5F_ACC_EXCL, H5P_DEFAULT, m->fapl)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create", m->tmp);
        goto out;
    }
    m->tmp_made = 1;
    *out = ms;
    return BZ_OK;
out:
    merge_free(m);
    free(ms);
    return rc;
}

void bz_merge_stream_set_layout(struct bz_merge_stream *ms, enum bz_layout layout)
{
    struct merge *m = &ms->m;
    m->virt = layout == BZ_LAYOUT_VIRTUAL;
    /* virtual datasets are HDF5 1.10's: the file may use that format where
     * it must (everything else stays in 1.8's) */
    if (m->virt && H5Fset_libver_bounds(m->file, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0)
        H5Eclear2(H5E_DEFAULT); /* then creating the first virtual table fails, naming it */
}

int bz_merge_stream_add(struct bz_merge_stream *ms, const char *shard, const int64_t *ids, size_t n,
                        struct bz_err *err)
{
    struct merge *m = &ms->m;
    if (n && m->next_set && ids[0] < m->next)
        return bz_err_set(err, BZ_EINVAL, "%s: %s commits game %lld, before games already merged",
                          m->out_name, shard, (long long)ids[0]);
    return add_source(m, shard, ids, n, err);
}

int bz_merge_stream_advance(struct bz_merge_stream *ms, int64_t hi, struct bz_err *err)
{
    struct merge *m = &ms->m;
    int rc = advance(m, hi, 0, err); /* (starts the blocks' writeback) */
    if (!rc && m->owner_failed)
        rc = bz_err_set(err, m->owner_err.code, "%s", m->owner_err.msg);
    return rc;
}

uint64_t bz_merge_stream_games(const struct bz_merge_stream *ms)
{
    return ms->m.games;
}

void bz_merge_stream_abort(struct bz_merge_stream *ms)
{
    if (!ms)
        return;
    merge_free(&ms->m);
    free(ms);
}

int bz_merge_stream_finish(struct bz_merge_stream *ms, const struct bz_provenance *prov,
                           struct bz_err *err)
{
    struct merge *m = &ms->m;
    int rc;
    const char *out_path = m->out_name;
    if ((rc = advance(m, m->has_ids ? m->id_max + 1 : 0, 1, err)))
        goto out;
    for (size_t k = 0; k < m->n_tables; k++) {
        struct mtable *t = m->tables[k];
        if (t->texts) {
            unsigned long long rows = 0;
            const char **list = malloc((m->n_shards ? m->n_shards : 1) * sizeof *list);
            if (!list) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
                goto out;
            }
            for (size_t i = 0; i < m->n_shards; i++)
                list[i] = m->src[i].path;
            rc = bz_out_texts_merge(m->file, m->tmp, t->path, list, m->n_shards, owner_of, m, &rows,
                                    err);
            free(list);
            t->total = (hsize_t)rows;
        } else {
            rc = table_finish(m, t, err);
        }
        if (rc)
            goto out;
        if (m->owner_failed) {
            rc = bz_err_set(err, m->owner_err.code, "%s", m->owner_err.msg);
            goto out;
        }
    }
    close_sources(m); /* OUT itself may be one: it is replaced next */
    if ((rc = write_provenance(m->file, prov, m->tmp, err)))
        goto out;
    if ((rc = bz_out_h5_close_file(&m->file, m->tmp, err)))
        goto out;
    struct fsync_job sync = {.path = m->tmp};
    pthread_t syncer;
    int threaded = pthread_create(&syncer, NULL, fsync_job_run, &sync) == 0;
    if (!threaded)
        fsync_job_run(&sync);
    double t_back = now_s();
    if (bz_merge_test_read_back_hook)
        bz_merge_test_read_back_hook(m->tmp);
    rc = read_back(m, err);
    m->stats.seconds_read_back = now_s() - t_back;
    if (threaded)
        pthread_join(syncer, NULL);
    if (!rc && sync.rc)
        rc = bz_err_set(err, sync.rc, "%s", sync.err.msg);
    if (rc)
        goto out;
    if (rename(m->tmp, out_path) != 0) {
        rc = bz_err_set(err, BZ_EIO, "rename %s to %s: %s", m->tmp, out_path, strerror(errno));
        goto out;
    }
    m->tmp_made = 0;
    /* OUT is complete from here on: a directory that cannot be synced only
     * risks the new name on a crash of the node. A warning, not a failure
     * that would make the caller merge again. */
    struct bz_err derr = {0};
    if (fsync_parent(out_path, &derr) != BZ_OK)
        fprintf(stderr,
                "bazaar: warning: %s is complete, but %s (a crash of the node could "
                "lose its new name)\n",
                out_path, derr.msg);
out:
    merge_free(m);
    free(ms);
    return rc;
}

int bz_merge(const char *const *shards, size_t n_shards, const char *out_path,
             const struct bz_provenance *prov, struct bz_err *err)
{
    return bz_merge_layout(shards, n_shards, out_path, prov, BZ_LAYOUT_PLAIN, err);
}

int bz_merge_layout(const char *const *shards, size_t n_shards, const char *out_path,
                    const struct bz_provenance *prov, enum bz_layout layout, struct bz_err *err)
{
    struct bz_merge_stream *ms;
    int rc = bz_merge_stream_open(out_path, 0, &ms, err);
    if (rc)
        return rc;
    bz_merge_stream_set_layout(ms, layout);
    for (size_t i = 0; i < n_shards; i++) {
        int64_t *ids;
        size_t n;
        if ((rc = bz_shard_committed_quick(shards[i], &ids, &n, err)))
            break;
        rc = add_source(&ms->m, shards[i], ids, n, err);
        free(ids);
        if (rc)
            break;
    }
    if (rc) {
        bz_merge_stream_abort(ms);
        return rc;
    }
    return bz_merge_stream_finish(ms, prov, err);
}
