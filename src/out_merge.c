/* out_merge: shards -> one results file ordered by game_id. Needs no table
 * descriptors: copies whatever compound tables the shards hold. Writes
 * out_path.tmp and renames it, so the final name never holds a half file.
 *
 * Which rows survive does not depend on how games were spread over shards:
 * a game's rows come from the first shard (in list order) that committed it,
 * runs of one game keep their written order, games are sorted by id. So
 * merging the same games written by 1, 2 or 7 ranks gives equal tables.
 *
 * Memory is bounded by a constant (MERGE_MEMORY_BYTES, 256 MiB; the
 * BZ_MERGE_MEMORY environment variable sets another) whatever the number of
 * games: tables stream in windows of whole chunks of the final layout, shards
 * are read through windows, game ids too, and games are indexed in blocks of
 * ids that fit the bound. Tables without variable-length members are
 * compressed here on threads (out_zpool.c) and stored with direct chunk
 * writes; HDF5's filters compress the others. Never reads rows of a shard
 * past the last committed game's. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
 * 1/4 for the index of the id block being merged (winner of each id, runs).
 * Not counted: HDF5's own caches, the strings of the rows of a window of a
 * table with strings, and ~0.5 MiB of compressor state per thread. */
#ifndef MERGE_MEMORY_BYTES
#define MERGE_MEMORY_BYTES ((size_t)256 << 20)
#endif
#define MERGE_MEMORY_MIN ((size_t)16 * MERGED_CHUNK_BYTES)
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

struct merge {
    const char *const *shards;
    size_t n_shards;
    const char *out_name; /* for messages */
    char ***paths;        /* per shard: its dataset paths, sorted */
    size_t *n_paths;
    int has_ids;            /* some shard committed a game */
    int64_t id_min, id_max; /* committed ids lie in [id_min, id_max] */
    /* the winner (first shard in list order that committed it) of every id
     * in [map_lo, map_hi), -1 for none */
    int32_t *map;
    size_t map_cap;
    int64_t map_lo, map_hi;
    int map_valid;
    size_t run_cap; /* runs of one block (the rest of the index share) */
    size_t out_bytes, read_bytes;
    hsize_t id_rows; /* game ids read at once */
    struct bz_zpool *pool;
    int threads;
    unsigned char *ids_raw; /* the id window */
    struct bz_merge_stats stats;
    int owner_failed;        /* owner_of could not build an id block */
    struct bz_err owner_err; /* why */
};

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static struct bz_merge_stats last_stats;

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
    if (!m->n_paths[i])
        return 0;
    return bsearch(&key, m->paths[i], m->n_paths[i], sizeof(char *), cmp_str) != NULL;
}

/* The range of committed ids over every shard (a shard's committed ids are
 * its /games ids the journal confirms: a bounded segment of games). */
static int find_id_range(struct merge *m, struct bz_err *err)
{
    for (size_t i = 0; i < m->n_shards; i++) {
        int64_t *ids;
        size_t n;
        int rc = bz_shard_committed_quick(m->shards[i], &ids, &n, err);
        if (rc)
            return rc;
        if (n) { /* sorted */
            if (!m->has_ids || ids[0] < m->id_min)
                m->id_min = ids[0];
            if (!m->has_ids || ids[n - 1] > m->id_max)
                m->id_max = ids[n - 1];
            m->has_ids = 1;
        }
        free(ids);
    }
    return BZ_OK;
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
        int64_t *ids;
        size_t n;
        int rc = bz_shard_committed_quick(m->shards[i], &ids, &n, err);
        if (rc)
            return rc;
        for (size_t k = 0; k < n; k++)
            if (ids[k] >= lo && ids[k] < hi && m->map[ids[k] - lo] < 0)
                m->map[ids[k] - lo] = (int32_t)i;
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

/* Open path in shard i: its dataset, checking the row type against *ref
 * (taken from the first shard that has the table). */
static int open_table(const struct merge *m, size_t i, const char *path, hid_t *file, hid_t *dset,
                      hid_t *ref, struct bz_err *err)
{
    int rc;
    hid_t ftype = H5I_INVALID_HID;
    *dset = H5I_INVALID_HID;
    if ((rc = bz_out_h5_open_ro(m->shards[i], file, err)))
        return rc;
    if ((*dset = H5Dopen2(*file, path, H5P_DEFAULT)) < 0 ||
        (ftype = bz_shard_table_type(*dset)) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot open table %s", m->shards[i], path);
    rc = BZ_OK;
    if (*ref < 0) {
        if ((*ref = H5Tcopy(ftype)) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot copy its type", m->shards[i],
                                path);
    } else {
        htri_t eq = H5Tequal(ftype, *ref);
        if (eq < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot compare types", m->shards[i],
                                path);
        else if (!eq)
            rc = bz_err_set(err, BZ_EINVAL,
                            "%s: table %s has other columns than in the shards before it "
                            "(shards written by different versions?)",
                            m->shards[i], path);
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
static int read_raw_chunk(const struct merge *m, size_t i, hid_t dset, const char *path,
                          hsize_t base, unsigned char *buf, size_t cbytes, struct bz_err *err)
{
    hsize_t size = 0;
    uint32_t mask = 1;
    if (H5Dget_chunk_storage_size(dset, &base, &size) < 0 || size != cbytes ||
        H5Dread_chunk(dset, H5P_DEFAULT, &base, &mask, buf) < 0 || mask != 0 ||
        !bz_zpool_chunk_ok(buf, cbytes))
        return bz_out_h5_fail(err, BZ_EIO,
                              "%s: table %s: the chunk at row %llu is unreadable or fails its "
                              "checksum",
                              m->shards[i], path, (unsigned long long)base);
    return BZ_OK;
}

/* Runs of consecutive equal ids, fed one id at a time. */
struct run_scan {
    int64_t cur;
    hsize_t start, len;
};

static void scan_id(const struct merge *m, struct runs *rs, size_t i, struct run_scan *sc,
                    int64_t id, hsize_t row)
{
    if (sc->len && id == sc->cur) {
        sc->len++;
        return;
    }
    if (sc->len)
        keep_run(m, rs, i, sc->cur, sc->start, sc->len);
    sc->cur = id;
    sc->start = row;
    sc->len = 1;
}

/* The runs of shard i's table dset whose game wins in the current block,
 * reading its game_id column m->id_rows at a time (or its raw chunks). */
static int scan_shard(struct merge *m, size_t i, hid_t dset, const char *path, struct runs *rs,
                      struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t ftype = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hid_t mtype = H5I_INVALID_HID;
    int64_t *ids = (int64_t *)m->ids_raw;
    hsize_t rows = 0;
    if ((ftype = H5Dget_type(dset)) < 0 || (fspace = H5Dget_space(dset)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read its type", m->shards[i], path);
        goto out;
    }
    int idx = H5Tget_class(ftype) == H5T_COMPOUND && H5Sget_simple_extent_ndims(fspace) == 1
                  ? H5Tget_member_index(ftype, "game_id")
                  : -1;
    if (idx < 0 || H5Tget_member_class(ftype, (unsigned)idx) != H5T_INTEGER) {
        H5Eclear2(H5E_DEFAULT);
        rc = bz_err_set(err, BZ_EINVAL, "%s: %s: not a 1-D table with an integer game_id column",
                        m->shards[i], path);
        goto out;
    }
    if (H5Sget_simple_extent_dims(fspace, &rows, NULL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read its size", m->shards[i], path);
        goto out;
    }
    /* a crafted dataspace may claim any size */
    if (rows > ((hsize_t)1 << 40)) {
        rc = bz_err_set(err, BZ_EIO, "%s: %s claims %llu rows, more than bazaar reads",
                        m->shards[i], path, (unsigned long long)rows);
        goto out;
    }
    /* a compound memory type with only game_id reads just that member */
    if ((mtype = H5Tcreate(H5T_COMPOUND, sizeof(int64_t))) < 0 ||
        H5Tinsert(mtype, "game_id", 0, H5T_NATIVE_INT64) < 0 ||
        (mspace = H5Screate_simple(1, &m->id_rows, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: game_id type", m->shards[i], path);
        goto out;
    }
    struct run_scan sc = {0, 0, 0};
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
    if (crows) {
        size_t cbytes = (size_t)crows * rsize + 4;
        unsigned char *buf = m->ids_raw; /* the id window holds a whole stored chunk */
        for (hsize_t base = 0; base < rows && !rs->full; base += crows) {
            if ((rc = read_raw_chunk(m, i, dset, path, base, buf, cbytes, err)))
                goto out;
            hsize_t n = rows - base < crows ? rows - base : crows;
            for (hsize_t r = 0; r < n; r++) {
                int64_t id;
                memcpy(&id, buf + (size_t)r * rsize + id_off, sizeof id);
                scan_id(m, rs, i, &sc, id, base + r);
            }
        }
        if (sc.len)
            keep_run(m, rs, i, sc.cur, sc.start, sc.len);
        goto out;
    }
    for (hsize_t s = 0; s < rows && !rs->full; s += m->id_rows) {
        hsize_t count = rows - s < m->id_rows ? rows - s : m->id_rows, zero = 0;
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &s, NULL, &count, NULL) < 0 ||
            H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
            H5Dread(dset, mtype, mspace, fspace, H5P_DEFAULT, ids) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read the game_id column", m->shards[i],
                                path);
            goto out;
        }
        for (hsize_t r = 0; r < count; r++)
            scan_id(m, rs, i, &sc, ids[r], s + r);
    }
    if (sc.len)
        keep_run(m, rs, i, sc.cur, sc.start, sc.len);
out:
    bz_out_h5_close(mtype);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    bz_out_h5_close(ftype);
    return rc;
}

/* Runs of committed, winning games of table path in the current block, in
 * every shard; rs->full when they do not fit. */
static int find_runs(struct merge *m, const char *path, hid_t *ref, struct runs *rs,
                     struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    rs->n = 0;
    rs->full = 0;
    for (size_t i = 0; i < m->n_shards && !rs->full; i++) {
        if (!shard_has(m, i, path))
            continue;
        if ((rc = open_table(m, i, path, &file, &dset, ref, err)) ||
            (rc = scan_shard(m, i, dset, path, rs, err)))
            break;
        close_table(&file, &dset);
    }
    close_table(&file, &dset);
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

/* Store the compressed window of buf[!cur] and clear it for reuse. */
static int sink_store(struct merge *m, struct sink *s, const char *path, struct bz_err *err)
{
    int rc;
    int k = !s->cur;
    struct bz_zbatch *b = &s->zb[k];
    s->pending = 0;
    double t0 = now_s();
    int bad = bz_zpool_wait(m->pool, b) != 0;
    double t1 = now_s();
    m->stats.seconds_wait += t1 - t0;
    m->stats.cpu_compress += b->cpu_seconds;
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
        if (s->pending && (rc = sink_store(m, s, path, err)))
            return rc;
        struct bz_zbatch *b = &s->zb[s->cur];
        b->in = s->buf[s->cur];
        b->n_chunks = (size_t)((count + s->chunk - 1) / s->chunk);
        /* past the last row: zeros, as HDF5 fills an edge chunk (every row
         * before it was just written) */
        memset(s->buf[s->cur] + (size_t)count * s->msize, 0,
               (size_t)((hsize_t)b->n_chunks * s->chunk - count) * s->msize);
        bz_zpool_submit(m->pool, b);
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
    if (H5Dwrite(s->dset, s->mtype, mspace, fspace, H5P_DEFAULT, s->buf[0]) < 0)
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
    hsize_t per = m->out_bytes / ((size_t)chunk * s->msize);
    s->win = chunk * (per ? per : 1);
    for (int k = 0; k < 1 + s->direct; k++) {
        struct bz_zbatch *b = &s->zb[k];
        size_t n_chunks = (size_t)(s->win / chunk);
        if (!(s->buf[k] = acct_alloc(m, (size_t)s->win, s->msize)))
            return bz_err_set(err, BZ_ENOMEM, "%s: no memory for a window", m->out_name);
        if (!s->direct)
            continue;
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
        s->buf[k] = NULL;
        s->zb[k].out = NULL;
        s->zb[k].out_len = NULL;
    }
}

/* The rows of runs[0..n) of a table without strings, read as the shard
 * stores them: whole chunks (H5Dread_chunk), each checked against its
 * Fletcher32, rows copied out; no HDF5 pipeline, cache or conversion. Only
 * for chunks filtered by the checksum alone (shards as bazaar writes them);
 * *used is 0 when the table is stored otherwise. */
static int gather_raw(struct merge *m, size_t i, hid_t dset, const char *path,
                      const struct run *runs, size_t n, size_t msize, unsigned char *out, int *used,
                      struct bz_err *err)
{
    int rc = BZ_OK;
    hsize_t crows = raw_chunk_rows(dset, msize, m->read_bytes);
    size_t cbytes = (size_t)crows * msize + 4;
    unsigned char *buf = NULL;
    *used = crows > 0;
    if (!crows)
        return BZ_OK; /* HDF5 reads it */
    if (!(buf = acct_alloc(m, cbytes, 1)))
        return bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", m->shards[i], path);
    hsize_t have = (hsize_t)-1; /* the chunk in buf */
    for (size_t k = 0; k < n && !rc; k++) {
        hsize_t pos = runs[k].start, end = runs[k].start + runs[k].len;
        while (pos < end) {
            hsize_t c = pos / crows, base = c * crows;
            if (c != have && (rc = read_raw_chunk(m, i, dset, path, base, buf, cbytes, err)))
                break;
            have = c;
            hsize_t stop = end < base + crows ? end : base + crows;
            memcpy(out + (size_t)(runs[k].out_pos + (pos - runs[k].start)) * msize,
                   buf + (size_t)(pos - base) * msize, (size_t)(stop - pos) * msize);
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
                        hid_t mtype, size_t msize, int vlen, unsigned char *out, struct bz_err *err)
{
    int rc = BZ_OK;
    size_t i = runs[0].shard;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    hid_t mspace = H5I_INVALID_HID, ref = H5I_INVALID_HID;
    unsigned char *win = NULL;
    hsize_t hi = runs[n - 1].start + runs[n - 1].len;
    hsize_t cap = m->read_bytes / msize ? m->read_bytes / msize : 1;
    hsize_t ws = 0, we = 0; /* rows [ws, we) are in win */
    if (cap > hi - runs[0].start)
        cap = hi - runs[0].start;
    if ((rc = open_table(m, i, path, &file, &dset, &ref, err)))
        goto out;
    if (!vlen) {
        int used;
        if ((rc = gather_raw(m, i, dset, path, runs, n, msize, out, &used, err)) || used)
            goto out;
    }
    if ((fspace = H5Dget_space(dset)) < 0 || (mspace = H5Screate_simple(1, &cap, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: dataspace", m->shards[i], path);
        goto out;
    }
    if (!(win = acct_alloc(m, (size_t)cap, msize))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", m->shards[i], path);
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        hsize_t pos = runs[k].start, end = runs[k].start + runs[k].len;
        while (pos < end) {
            if (pos >= we) {
                /* free what the old window held and was not taken */
                if (vlen && we > ws && H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, win) < 0) {
                    rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: reclaim", m->shards[i], path);
                    goto out;
                }
                memset(win, 0, (size_t)cap * msize);
                ws = pos;
                we = ws + cap < hi ? ws + cap : hi;
                hsize_t count = we - ws, zero = 0;
                if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &ws, NULL, &count, NULL) < 0 ||
                    H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
                    bz_shard_read(dset, mtype, mspace, fspace, win) < 0) {
                    rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot read table %s rows %llu..%llu",
                                        m->shards[i], path, (unsigned long long)ws,
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
    close_table(&file, &dset);
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
                               err)))
            return rc;
        k = e;
    }
    return BZ_OK;
}

/* The merged file's chunked table: deflate and a Fletcher32 checksum per
 * chunk (no shuffle: on these rows it made deflate slower and the file
 * larger). out_zpool.c writes exactly this pipeline's chunks. */
static hid_t create_table(hid_t file, const char *path, hid_t ftype, hsize_t n_rows,
                          hsize_t chunk_rows)
{
    hid_t space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hid_t dset = H5I_INVALID_HID;
    hsize_t max = H5S_UNLIMITED;
    if ((space = H5Screate_simple(1, &n_rows, &max)) >= 0 &&
        (lcpl = H5Pcreate(H5P_LINK_CREATE)) >= 0 &&
        H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) >= 0 && H5Pset_chunk(dcpl, 1, &chunk_rows) >= 0 &&
        H5Pset_deflate(dcpl, BZ_ZPOOL_LEVEL) >= 0 && H5Pset_fletcher32(dcpl) >= 0)
        dset = H5Dcreate2(file, path, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    bz_out_h5_close(dcpl);
    bz_out_h5_close(lcpl);
    bz_out_h5_close(space);
    return dset;
}

/* The table's attributes (units, doc) from the first shard that has it. */
static int copy_table_attrs(const struct merge *m, const char *path, hid_t out_dset,
                            struct bz_err *err)
{
    for (size_t i = 0; i < m->n_shards; i++) {
        if (!shard_has(m, i, path))
            continue;
        hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
        int rc = bz_out_h5_open_ro(m->shards[i], &file, err);
        if (rc)
            return rc;
        if ((dset = H5Dopen2(file, path, H5P_DEFAULT)) < 0 ||
            bz_out_h5_copy_attrs(dset, out_dset) < 0)
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot copy its attributes to %s",
                                m->shards[i], path, m->out_name);
        close_table(&file, &dset);
        return rc;
    }
    return BZ_OK;
}

/* One merged table. Games are taken in blocks of ids whose index (winner
 * per id, runs) fits its share of the bound, one block for any sweep of
 * ordinary size; a block whose runs overflow is halved and scanned again.
 * Rows stream through the sink in windows of whole chunks. */
static int merge_table(struct merge *m, hid_t out_file, const char *path,
                       unsigned long long *n_rows, unsigned char *direct, struct bz_err *err)
{
    int rc = BZ_OK;
    struct runs rs = {0};
    struct run *pieces = NULL;
    struct sink s = {.dset = H5I_INVALID_HID};
    hid_t ref = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    int vlen = 0;
    hsize_t total = 0; /* rows of the blocks done */
    int64_t lo = m->id_min, span = (int64_t)m->map_cap;
    if (!(rs.v = acct_alloc(m, m->run_cap, sizeof *rs.v)) ||
        !(pieces = acct_alloc(m, m->run_cap, sizeof *pieces))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory for the merge index", m->out_name);
        goto out;
    }
    rs.cap = m->run_cap;
    for (;;) {
        int64_t hi = !m->has_ids ? lo : m->id_max - lo < span ? m->id_max + 1 : lo + span;
        double t_idx = now_s();
        rc = build_map(m, lo, hi, err);
        if (!rc)
            rc = find_runs(m, path, &ref, &rs, err);
        m->stats.seconds_index += now_s() - t_idx;
        if (rc)
            goto out;
        if (rs.full && hi - lo > 1) {
            span = (hi - lo) / 2; /* too many runs: a smaller block */
            continue;
        }
        if (rs.full) {
            rc = bz_err_set(err, BZ_ENOMEM,
                            "%s: table %s: game %lld has more than %zu runs of rows; raise "
                            "BZ_MERGE_MEMORY",
                            m->out_name, path, (long long)lo, rs.cap);
            goto out;
        }
        m->stats.blocks++;
        if (rs.n)
            qsort(rs.v, rs.n, sizeof *rs.v, cmp_run_game);
        hsize_t end = total;
        for (size_t k = 0; k < rs.n; k++) {
            rs.v[k].out_pos = end;
            end += rs.v[k].len;
        }
        int last = !m->has_ids || hi > m->id_max;
        if (s.dset < 0) {
            if (ref < 0) { /* no shard has the table (cannot happen: listed) */
                rc = bz_err_set(err, BZ_EINTERNAL, "%s: table %s: no shard has it", m->out_name,
                                path);
                goto out;
            }
            if ((vlen = bz_out_h5_has_vlen(ref)) < 0 ||
                (mtype = vlen ? H5Tget_native_type(ref, H5T_DIR_ASCEND) : H5Tcopy(ref)) < 0) {
                rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot build its memory type",
                                    m->out_name, path);
                goto out;
            }
            /* one block: the size is known, and a small table gets one
             * small chunk */
            hsize_t chunk =
                bz_out_h5_chunk_rows(H5Tget_size(ref), MERGED_CHUNK_BYTES, last ? end : 0);
            hsize_t extent = last ? end : 0;
            if ((s.dset = create_table(out_file, path, ref, extent, chunk)) < 0) {
                rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create table %s", m->out_name, path);
                goto out;
            }
            if ((rc = copy_table_attrs(m, path, s.dset, err)) ||
                (rc = sink_open(m, &s, s.dset, mtype, vlen, chunk, extent, err)))
                goto out;
        }
        size_t first = 0;
        for (hsize_t pos = total; pos < end;) {
            hsize_t we = s.ws + s.win, hi_pos = end < we ? end : we;
            double t0 = now_s();
            rc = fill_range(m, path, &rs, &first, pieces, &s, pos, hi_pos, vlen, err);
            m->stats.seconds_read += now_s() - t0;
            if (rc)
                goto out;
            pos = hi_pos;
            if (pos == we && (rc = sink_flush(m, &s, path, s.win, err)))
                goto out;
        }
        total = end;
        if (last)
            break;
        lo = hi;
    }
    if (total > s.ws && (rc = sink_flush(m, &s, path, total - s.ws, err)))
        goto out;
    if (s.pending && (rc = sink_store(m, &s, path, err)))
        goto out;
    if ((rc = sink_extend(m, &s, path, total, err)))
        goto out;
    if (H5Dclose(s.dset) < 0) {
        s.dset = H5I_INVALID_HID;
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close table %s", m->out_name, path);
        goto out;
    }
    s.dset = H5I_INVALID_HID;
    *n_rows = (unsigned long long)total;
    *direct = (unsigned char)s.direct;
    m->stats.raw_bytes += (uint64_t)total * H5Tget_size(ref);
out:
    if (s.pending) /* a failure while chunks compress: let them finish */
        bz_zpool_wait(m->pool, &s.zb[!s.cur]);
    if (s.buf[0] && vlen) { /* rows gathered into a window not written */
        hid_t all = H5Screate_simple(1, &s.win, NULL);
        if (all >= 0)
            H5Dvlen_reclaim(s.mtype, all, H5P_DEFAULT, s.buf[0]);
        bz_out_h5_close(all);
    }
    sink_close(&s);
    bz_out_h5_close(s.dset);
    bz_out_h5_close(mtype);
    bz_out_h5_close(ref);
    acct_free(rs.v, m->run_cap, sizeof *rs.v);
    acct_free(pieces, m->run_cap, sizeof *pieces);
    return rc;
}

static int collect_paths(struct merge *m, char ***uni, size_t *n_uni, struct bz_err *err)
{
    int rc = BZ_OK;
    size_t total = 0;
    *uni = NULL;
    *n_uni = 0;
    for (size_t i = 0; i < m->n_shards; i++) {
        hid_t file;
        if ((rc = bz_out_h5_open_ro(m->shards[i], &file, err)))
            return rc;
        rc = bz_out_h5_list_datasets(file, &m->paths[i], &m->n_paths[i], m->shards[i], err);
        H5Fclose(file);
        if (rc)
            return rc;
        total += m->n_paths[i];
    }
    if (!total)
        return BZ_OK;
    char **all = malloc(total * sizeof *all); /* borrowed strings */
    if (!all)
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
    size_t k = 0;
    for (size_t i = 0; i < m->n_shards; i++)
        for (size_t j = 0; j < m->n_paths[i]; j++)
            all[k++] = m->paths[i][j];
    qsort(all, total, sizeof *all, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < total; i++)
        if (u == 0 || strcmp(all[u - 1], all[i]) != 0)
            all[u++] = all[i];
    *uni = all;
    *n_uni = u;
    return BZ_OK;
}

/* The bound's shares, the index, the id window and the threads. */
static int merge_setup(struct merge *m, struct bz_err *err)
{
    size_t bound = memory_bound();
    m->stats.bound_bytes = bound;
    m->threads = bz_zpool_default_threads();
    /* an output window: 1/64 of the bound, or two chunks per thread when
     * that is more (every thread busy), never past 1/16 */
    size_t out = bound / 64, busy = (size_t)m->threads * 2 * MERGED_CHUNK_BYTES;
    if (out < busy)
        out = busy < bound / 16 ? busy : bound / 16;
    m->out_bytes = out < MERGE_OUT_BYTES ? out : MERGE_OUT_BYTES;
    m->read_bytes = bound / 64 < MERGE_WINDOW_BYTES ? bound / 64 : MERGE_WINDOW_BYTES;
    m->id_rows = (hsize_t)(bound / 32 / sizeof(int64_t));
    size_t index = bound / 4;
    m->map_cap = index / 2 / sizeof *m->map;
    m->run_cap = index / 2 / (2 * sizeof(struct run)); /* the runs and their pieces */
    m->stats.threads = m->threads;
    if (!(m->map = acct_alloc(m, m->map_cap, sizeof *m->map)) ||
        !(m->ids_raw = acct_alloc(m, (size_t)m->id_rows, sizeof(int64_t))))
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory for the merge index", m->out_name);
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
static int check_chunks(hid_t dset, hsize_t n, const char *tmp, const char *table,
                        struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t dcpl = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    unsigned char *buf = NULL;
    hsize_t chunk = 0;
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
    for (hsize_t off = 0; off < n; off += chunk) {
        hsize_t size = 0;
        uint32_t mask = 1;
        if (H5Dget_chunk_storage_size(dset, &off, &size) < 0 || size == 0 || size > cap ||
            H5Dread_chunk(dset, H5P_DEFAULT, &off, &mask, buf) < 0 || mask != 0 ||
            !bz_zpool_chunk_ok(buf, (size_t)size)) {
            rc = bz_out_h5_fail(err, BZ_EIO,
                                "%s: table %s: the chunk at row %llu does not read back", tmp,
                                table, (unsigned long long)off);
            goto out;
        }
    }
out:
    free(buf);
    bz_out_h5_close(ftype);
    bz_out_h5_close(dcpl);
    return rc;
}

/* Open the closed merged file again and read every table back: the rename
 * puts only a file that reads back, with the rows written, in place. Tables
 * the merge compressed itself: every chunk's stored bytes against their
 * checksum (cheap, no inflate); the others: every row, through HDF5. */
static int read_back(const char *tmp, char **tables, const unsigned long long *rows,
                     const unsigned char *direct, size_t n_tables, struct bz_err *err)
{
    int rc;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, space = H5I_INVALID_HID;
    if ((rc = bz_out_h5_open_ro(tmp, &file, err)))
        return rc;
    for (size_t t = 0; t < n_tables && !rc; t++) {
        hsize_t n = 0;
        if ((dset = H5Dopen2(file, tables[t], H5P_DEFAULT)) < 0 ||
            (space = H5Dget_space(dset)) < 0 || H5Sget_simple_extent_ndims(space) != 1 ||
            H5Sget_simple_extent_dims(space, &n, NULL) != 1) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s does not read back", tmp, tables[t]);
        } else if ((unsigned long long)n != rows[t]) {
            rc = bz_err_set(err, BZ_EIO, "%s: table %s reads back %llu rows, %llu were written",
                            tmp, tables[t], (unsigned long long)n, rows[t]);
        } else if (direct[t]) {
            rc = check_chunks(dset, n, tmp, tables[t], err);
        } else {
            rc = bz_out_h5_check_readable(dset, n, tmp, tables[t], err);
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

int bz_merge(const char *const *shards, size_t n_shards, const char *out_path,
             const struct bz_provenance *prov, struct bz_err *err)
{
    int rc = BZ_OK;
    struct merge m = {.shards = shards, .n_shards = n_shards, .out_name = out_path};
    char **tables = NULL;
    unsigned long long *rows = NULL;
    unsigned char *direct = NULL;
    size_t n_tables = 0;
    hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID;
    char *tmp = NULL;
    int tmp_made = 0;
    struct bz_out_lock *lock = NULL;
    double t_start = now_s(), c_start = thread_cpu_s();

    bz_out_h5_quiet();
    /* before anything is written: a second writer of out_path stops here */
    if ((rc = bz_out_lock_take(out_path, &lock, err)))
        return rc;
    size_t len = strlen(out_path);
    if (!(tmp = malloc(len + 5)) ||
        (n_shards && (!(m.paths = calloc(n_shards, sizeof *m.paths)) ||
                      !(m.n_paths = calloc(n_shards, sizeof *m.n_paths))))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", out_path);
        goto out;
    }
    memcpy(tmp, out_path, len);
    memcpy(tmp + len, ".tmp", 5);

    held = 0;
    if ((rc = find_id_range(&m, err)) || (rc = merge_setup(&m, err)) ||
        (rc = collect_paths(&m, &tables, &n_tables, err)))
        goto out;
    if (n_tables && (!(rows = calloc(n_tables, sizeof *rows)) ||
                     !(direct = calloc(n_tables, sizeof *direct)))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", out_path);
        goto out;
    }

    /* 1.8 file format: the results file opens in any HDF5 from 1.8 on. */
    if ((fapl = bz_out_h5_fapl()) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot set up file access", out_path);
        goto out;
    }
    /* We hold the lock: an existing tmp is what a killed merge left. Remove
     * it and create exclusively, never truncating a file in place. */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        rc = bz_err_set(err, BZ_EIO, "%s: cannot remove the leftover: %s", tmp, strerror(errno));
        goto out;
    }
    if ((file = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create", tmp);
        goto out;
    }
    tmp_made = 1;
    for (size_t t = 0; t < n_tables; t++) {
        if ((rc = bz_out_texts_is_store(tables[t])
                      ? bz_out_texts_merge(file, tmp, tables[t], shards, n_shards, owner_of, &m,
                                           &rows[t], err)
                      : merge_table(&m, file, tables[t], &rows[t], &direct[t], err)))
            goto out;
        if (m.owner_failed) {
            rc = bz_err_set(err, m.owner_err.code, "%s", m.owner_err.msg);
            goto out;
        }
    }
    if ((rc = write_provenance(file, prov, tmp, err)))
        goto out;
    if ((rc = bz_out_h5_close_file(&file, tmp, err)) || (rc = fsync_path(tmp, 0, err)))
        goto out;
    double t_back = now_s();
    rc = read_back(tmp, tables, rows, direct, n_tables, err);
    m.stats.seconds_read_back = now_s() - t_back;
    if (rc)
        goto out;
    if (rename(tmp, out_path) != 0) {
        rc = bz_err_set(err, BZ_EIO, "rename %s to %s: %s", tmp, out_path, strerror(errno));
        goto out;
    }
    tmp_made = 0;
    rc = fsync_parent(out_path, err);
out:
    if (file >= 0)
        bz_out_h5_close_file(&file, tmp, NULL);
    bz_out_h5_close(fapl);
    if (tmp_made)
        unlink(tmp);
    free(tables);
    free(rows);
    free(direct);
    for (size_t i = 0; m.paths && i < n_shards; i++)
        bz_out_free_paths(m.paths[i], m.n_paths[i]);
    free(m.paths);
    free(m.n_paths);
    bz_zpool_destroy(m.pool);
    acct_free(m.map, m.map_cap, sizeof *m.map);
    acct_free(m.ids_raw, (size_t)m.id_rows, sizeof(int64_t));
    m.stats.seconds = now_s() - t_start;
    m.stats.cpu_main = thread_cpu_s() - c_start;
    last_stats = m.stats;
    free(tmp);
    bz_out_lock_release(lock);
    return rc;
}
