/* out_merge: shards -> one results file ordered by game_id. Needs no table
 * descriptors: copies whatever compound tables the shards hold. Writes
 * out_path.tmp and renames it, so the final name never holds a half file.
 *
 * Which rows survive does not depend on how games were spread over shards:
 * a game's rows come from the first shard (in list order) that committed it,
 * runs of one game keep their written order, games are sorted by id. So
 * merging the same games written by 1, 2 or 7 ranks gives equal tables. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bazaar/out_lock.h"
#include "out_h5.h"
#include "out_h5_fail.h"
#include "out_internal.h"
#include "out_texts.h"

#ifndef MERGED_CHUNK_BYTES
#define MERGED_CHUNK_BYTES (256 * 1024)
#endif
#ifndef MERGE_WINDOW_BYTES
#define MERGE_WINDOW_BYTES (8 * 1024 * 1024)
#endif
/* rows of one merged table held at once (rounded to whole chunks) */
#ifndef MERGE_OUT_BYTES
#define MERGE_OUT_BYTES (8 * 1024 * 1024)
#endif
#ifndef MERGED_DEFLATE
#define MERGED_DEFLATE 1
#endif

struct claim {
    int64_t game_id;
    size_t shard;
};

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
    const char *out_name;  /* for messages */
    struct claim *winners; /* sorted by game_id, one per game */
    size_t n_winners;
    char ***paths; /* per shard: its dataset paths, sorted */
    size_t *n_paths;
};

static int cmp_claim(const void *a, const void *b)
{
    const struct claim *x = a, *y = b;
    if (x->game_id != y->game_id)
        return (x->game_id > y->game_id) - (x->game_id < y->game_id);
    return (x->shard > y->shard) - (x->shard < y->shard);
}

static int cmp_run_game(const void *a, const void *b)
{
    const struct run *x = a, *y = b;
    if (x->game_id != y->game_id)
        return (x->game_id > y->game_id) - (x->game_id < y->game_id);
    if (x->shard != y->shard)
        return (x->shard > y->shard) - (x->shard < y->shard);
    return (x->start > y->start) - (x->start < y->start);
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

/* The shard that owns game_id in the merged file, or -1 when none does. */
static long winner_of(const struct merge *m, int64_t game_id)
{
    size_t lo = 0, hi = m->n_winners;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->winners[mid].game_id < game_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->n_winners && m->winners[lo].game_id == game_id)
        return (long)m->winners[lo].shard;
    return -1;
}

static long owner_of(const void *m, int64_t game_id)
{
    return winner_of(m, game_id);
}

static int shard_has(const struct merge *m, size_t i, const char *path)
{
    const char *key = path;
    if (!m->n_paths[i])
        return 0;
    return bsearch(&key, m->paths[i], m->n_paths[i], sizeof(char *), cmp_str) != NULL;
}

static int collect_winners(struct merge *m, struct bz_err *err)
{
    struct claim *all = NULL;
    size_t n_all = 0, cap = 0;
    for (size_t i = 0; i < m->n_shards; i++) {
        int64_t *ids;
        size_t n;
        int rc = bz_shard_committed(m->shards[i], &ids, &n, err);
        if (rc) {
            free(all);
            return rc;
        }
        if (n_all + n > cap) {
            size_t nc = cap ? cap : 256;
            while (nc < n_all + n)
                nc *= 2;
            struct claim *p = realloc(all, nc * sizeof *p);
            if (!p) {
                free(ids);
                free(all);
                return bz_err_set(err, BZ_ENOMEM, "%s: no memory for game ids", m->out_name);
            }
            all = p;
            cap = nc;
        }
        for (size_t k = 0; k < n; k++)
            all[n_all++] = (struct claim){ids[k], i};
        free(ids);
    }
    if (n_all)
        qsort(all, n_all, sizeof *all, cmp_claim);
    size_t k = 0;
    for (size_t i = 0; i < n_all; i++)
        if (k == 0 || all[k - 1].game_id != all[i].game_id)
            all[k++] = all[i];
    m->winners = all;
    m->n_winners = k;
    return BZ_OK;
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

static int push_run(struct run **runs, size_t *n, size_t *cap, struct run r)
{
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        struct run *p = realloc(*runs, nc * sizeof *p);
        if (!p)
            return -1;
        *runs = p;
        *cap = nc;
    }
    (*runs)[(*n)++] = r;
    return 0;
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
    if ((*dset = H5Dopen2(*file, path, H5P_DEFAULT)) < 0 || (ftype = H5Dget_type(*dset)) < 0)
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

/* Runs of committed, winning games of table path in every shard. */
static int find_runs(const struct merge *m, const char *path, hid_t *ref, struct run **runs,
                     size_t *n_runs, struct bz_err *err)
{
    int rc = BZ_OK;
    size_t cap = 0;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    int64_t *ids = NULL;
    for (size_t i = 0; i < m->n_shards; i++) {
        if (!shard_has(m, i, path))
            continue;
        size_t n;
        if ((rc = open_table(m, i, path, &file, &dset, ref, err)) ||
            (rc = bz_out_h5_read_game_ids(dset, &ids, &n, m->shards[i], path, err)))
            goto out;
        close_table(&file, &dset);
        for (size_t r = 0; r < n;) {
            size_t e = r + 1;
            while (e < n && ids[e] == ids[r])
                e++;
            if (winner_of(m, ids[r]) == (long)i &&
                push_run(runs, n_runs, &cap, (struct run){ids[r], i, r, e - r, 0})) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", m->out_name);
                goto out;
            }
            r = e;
        }
        free(ids);
        ids = NULL;
    }
out:
    free(ids);
    close_table(&file, &dset);
    return rc;
}

/* Copy the rows of runs[0..n) (all of shard i, sorted by start) into out,
 * reading the shard through a window of at most MERGE_WINDOW_BYTES. */
static int gather_shard(const struct merge *m, const char *path, const struct run *runs, size_t n,
                        hid_t mtype, size_t msize, int vlen, unsigned char *out, struct bz_err *err)
{
    int rc = BZ_OK;
    size_t i = runs[0].shard;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    hid_t mspace = H5I_INVALID_HID, ref = H5I_INVALID_HID;
    unsigned char *win = NULL;
    hsize_t hi = runs[n - 1].start + runs[n - 1].len;
    hsize_t cap = MERGE_WINDOW_BYTES / msize ? MERGE_WINDOW_BYTES / msize : 1;
    hsize_t ws = 0, we = 0; /* rows [ws, we) are in win */
    if ((rc = open_table(m, i, path, &file, &dset, &ref, err)))
        goto out;
    if ((fspace = H5Dget_space(dset)) < 0 || (mspace = H5Screate_simple(1, &cap, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: dataspace", m->shards[i], path);
        goto out;
    }
    if (!(win = calloc((size_t)cap, msize))) {
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
                    H5Dread(dset, mtype, mspace, fspace, H5P_DEFAULT, win) < 0) {
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
            memset(src, 0, (size_t)take * msize); /* out owns these rows' strings now */
            pos += take;
        }
    }
out:
    if (win && vlen && mspace >= 0 && H5Sselect_all(mspace) >= 0)
        H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, win); /* rows not taken */
    free(win);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    bz_out_h5_close(ref);
    close_table(&file, &dset);
    return rc;
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

/* Write output rows [ws, ws + count) of table path: the pieces of the
 * game-sorted runs that fall in the window are gathered from their shards
 * into buf (count rows), then written as one hyperslab and their strings
 * freed. Memory: the window plus one shard read window, whatever the table's
 * size. */
static int merge_window(const struct merge *m, const char *path, const struct run *runs,
                        size_t n_runs, size_t *first, struct run *pieces, hsize_t ws, hsize_t count,
                        hid_t mtype, size_t msize, int vlen, unsigned char *buf, hid_t dset,
                        struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hsize_t we = ws + count;
    size_t n = 0;
    while (*first < n_runs && runs[*first].out_pos + runs[*first].len <= ws)
        (*first)++;
    for (size_t k = *first; k < n_runs && runs[k].out_pos < we; k++) {
        const struct run *r = &runs[k];
        hsize_t lo = r->out_pos > ws ? r->out_pos : ws;
        hsize_t hi = r->out_pos + r->len < we ? r->out_pos + r->len : we;
        pieces[n++] =
            (struct run){r->game_id, r->shard, r->start + (lo - r->out_pos), hi - lo, lo - ws};
    }
    qsort(pieces, n, sizeof *pieces, cmp_run_place);
    for (size_t k = 0; k < n;) {
        size_t e = k + 1;
        while (e < n && pieces[e].shard == pieces[k].shard)
            e++;
        if ((rc = gather_shard(m, path, pieces + k, e - k, mtype, msize, vlen, buf, err)))
            goto out;
        k = e;
    }
    if ((mspace = H5Screate_simple(1, &count, NULL)) < 0 || (fspace = H5Dget_space(dset)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &ws, NULL, &count, NULL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: dataspace", m->out_name);
        goto out;
    }
    if (H5Dwrite(dset, mtype, mspace, fspace, H5P_DEFAULT, buf) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot write table %s rows %llu..%llu", m->out_name,
                            path, (unsigned long long)ws, (unsigned long long)we);
        goto out;
    }
out:
    if (mspace >= 0 && vlen)
        H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, buf);
    memset(buf, 0, (size_t)count * msize);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    return rc;
}

/* One merged table, streamed in windows of whole chunks of the final layout
 * (MERGE_OUT_BYTES of rows at most): memory does not grow with the number of
 * games beyond the run list (one entry per game and shard). */
static int merge_table(const struct merge *m, hid_t out_file, const char *path,
                       unsigned long long *n_rows, struct bz_err *err)
{
    int rc = BZ_OK;
    struct run *runs = NULL, *pieces = NULL;
    size_t n_runs = 0;
    hid_t ref = H5I_INVALID_HID, mtype = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    unsigned char *buf = NULL;
    int vlen = 0;
    hsize_t total = 0;

    if ((rc = find_runs(m, path, &ref, &runs, &n_runs, err)))
        goto out;
    if ((mtype = H5Tget_native_type(ref, H5T_DIR_ASCEND)) < 0 ||
        (vlen = bz_out_h5_has_vlen(mtype)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot build its memory type", m->out_name,
                            path);
        goto out;
    }
    size_t msize = H5Tget_size(mtype);
    if (n_runs)
        qsort(runs, n_runs, sizeof *runs, cmp_run_game);
    for (size_t k = 0; k < n_runs; k++) {
        runs[k].out_pos = total;
        total += runs[k].len;
    }
    hsize_t chunk = bz_out_h5_chunk_rows(H5Tget_size(ref), MERGED_CHUNK_BYTES, total);
    if ((dset = bz_out_h5_create_table(out_file, path, ref, total, chunk, MERGED_DEFLATE,
                                       H5I_INVALID_HID, NULL)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot create table %s", m->out_name, path);
        goto out;
    }
    if ((rc = copy_table_attrs(m, path, dset, err)))
        goto out;
    /* whole chunks per window: no chunk is written twice */
    hsize_t per = MERGE_OUT_BYTES / ((size_t)chunk * msize);
    hsize_t win = chunk * (per ? per : 1);
    if (win > total)
        win = total;
    if (total &&
        (!(buf = calloc((size_t)win, msize)) || !(pieces = malloc(n_runs * sizeof *pieces)))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory for %llu rows", m->out_name, path,
                        (unsigned long long)win);
        goto out;
    }
    size_t first = 0;
    for (hsize_t ws = 0; ws < total; ws += win) {
        hsize_t count = total - ws < win ? total - ws : win;
        if ((rc = merge_window(m, path, runs, n_runs, &first, pieces, ws, count, mtype, msize, vlen,
                               buf, dset, err)))
            goto out;
    }
    if (H5Dclose(dset) < 0) {
        dset = H5I_INVALID_HID;
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot close table %s", m->out_name, path);
        goto out;
    }
    dset = H5I_INVALID_HID;
    *n_rows = (unsigned long long)total;
out:
    free(buf);
    free(pieces);
    bz_out_h5_close(dset);
    bz_out_h5_close(mtype);
    bz_out_h5_close(ref);
    free(runs);
    return rc;
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

/* Open the closed merged file again and read every table in full: the
 * rename puts only a file that reads back, with the rows written, in place. */
static int read_back(const char *tmp, char **tables, const unsigned long long *rows,
                     size_t n_tables, struct bz_err *err)
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
    size_t n_tables = 0;
    hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID;
    char *tmp = NULL;
    int tmp_made = 0;
    struct bz_out_lock *lock = NULL;

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

    if ((rc = collect_winners(&m, err)) || (rc = collect_paths(&m, &tables, &n_tables, err)))
        goto out;
    if (n_tables && !(rows = calloc(n_tables, sizeof *rows))) {
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
    for (size_t t = 0; t < n_tables; t++)
        if ((rc = bz_out_texts_is_store(tables[t])
                      ? bz_out_texts_merge(file, tmp, tables[t], shards, n_shards, owner_of, &m,
                                           &rows[t], err)
                      : merge_table(&m, file, tables[t], &rows[t], err)))
            goto out;
    if ((rc = write_provenance(file, prov, tmp, err)))
        goto out;
    if ((rc = bz_out_h5_close_file(&file, tmp, err)) || (rc = fsync_path(tmp, 0, err)) ||
        (rc = read_back(tmp, tables, rows, n_tables, err)))
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
    for (size_t i = 0; m.paths && i < n_shards; i++)
        bz_out_free_paths(m.paths[i], m.n_paths[i]);
    free(m.paths);
    free(m.n_paths);
    free(m.winners);
    free(tmp);
    bz_out_lock_release(lock);
    return rc;
}
