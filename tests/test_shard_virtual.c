/* test_shard_virtual: a shard written for the virtual layout
 * (bz_shard_set_layout): its tables without strings have the merged file's
 * pipeline (deflate, Fletcher32), their full chunks are stored deflated by
 * the writer (filter mask 0, fewer bytes than the rows) and the partial last
 * chunk uncompressed (mask 1, rewritten in place as it grows); tables with
 * strings and text stores are stored as in the plain layout; HDF5 reads
 * every table as it reads a plain shard's, the committed ids are the same,
 * and the merge of a virtual shard equals the merge of a plain one. */
#include <inttypes.h>
#include <setjmp.h> /* before cmocka.h */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <hdf5.h>

#include "bazaar/out.h"
#include "bazaar/records.h"
#include "bazaar/tables.h"
#include "out_h5.h"
#include "out_internal.h"

#define TMP_PATH_PREFIX "virtual"
#include "tmp_path.h"

/* A table without strings but a fixed-width one (deflated in the virtual
 * layout) and one with TEXT columns (kept in the shard's byte store: stored
 * as in the plain layout). */
#define ROW_COLUMNS(X, R)                                                                          \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, n, I32, "", "row number within the game")                                                 \
    X(R, x, F64, "1", "a value")                                                                   \
    X(R, flag, U8, "", "a flag")                                                                   \
    X(R, side, S8, "", "fixed-width string")
BZ_TABLE_ROW(vrow, ROW_COLUMNS);
static BZ_TABLE_DEFINE(rows_desc, "/fake/rows", vrow, ROW_COLUMNS);
#define TEXT_COLUMNS(X, R)                                                                         \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, n, I32, "", "row number within the game")                                                 \
    X(R, text, TEXT, "", "free text")
BZ_TABLE_ROW(vtext, TEXT_COLUMNS);
static BZ_TABLE_DEFINE(text_desc, "/fake/texts", vtext, TEXT_COLUMNS);

/* The file row of /fake/rows: packed, as out_h5.h's layout. */
#define FILE_ROW (8 + 4 + 8 + 1 + 8)
#define N_GAMES 60
#define ROWS_PER_GAME 100 /* 2.9 KB a game: chunks of 64 KiB, 2,259 rows */

static const char *const sides[] = {"12345678", "naïv€", "", NULL, "buy"};

/* Game id: its rows (a few put before the commit for even ids, as a long
 * game's batches), and its /games row. */
static void put_game(struct bz_shard *s, struct bz_records *rec, int64_t id)
{
    struct bz_err err = {0};
    bz_records_reset(rec);
    for (int i = 0; i < ROWS_PER_GAME; i++) {
        struct vrow *r = bz_records_add(rec, &rows_desc);
        assert_non_null(r);
        *r = (struct vrow){id, i, (double)id * 1000.0 + i * 0.5, (uint8_t)(i % 3 == 0),
                           sides[(id + i) % 5]};
        if (i % 10 == 0) {
            char buf[64];
            snprintf(buf, sizeof buf, "game %" PRId64 " row %d", id, i);
            struct vtext *t = bz_records_add(rec, &text_desc);
            assert_non_null(t);
            *t = (struct vtext){id, i, bz_records_strdup(rec, buf)};
        }
        if (id % 2 == 0 && i == ROWS_PER_GAME / 2) {
            if (bz_shard_put(s, rec, &err))
                fail_msg("%s", err.msg);
            bz_records_reset(rec);
        }
    }
    struct bz_games_row *g = bz_records_add(rec, &bz_games_table);
    assert_non_null(g);
    g->game_id = id;
    g->game = "fake";
    g->n_agents = 1;
    g->status = "ok";
    if (bz_shard_append(s, rec, &err))
        fail_msg("%s", err.msg);
}

/* bz_shard_set_threads of the shards write_shard writes */
static int shard_threads;

/* N_GAMES games in layout, a group commit every sync_every games: partial
 * chunks are stored at each sync and stored again as they grow. */
static void write_shard(const char *path, enum bz_layout layout, int sync_every)
{
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    struct bz_records rec;
    bz_records_init(&rec);
    if (bz_shard_create(path, &s, &err))
        fail_msg("%s", err.msg);
    bz_shard_set_layout(s, layout);
    bz_shard_set_threads(s, shard_threads);
    bz_shard_set_group_commit(s, 1);
    for (int g = 0; g < N_GAMES; g++) {
        put_game(s, &rec, g);
        if ((g + 1) % sync_every == 0 && bz_shard_sync(s, &err))
            fail_msg("%s", err.msg);
    }
    if (bz_shard_close(s, &err))
        fail_msg("%s", err.msg);
    bz_records_cleanup(&rec);
}

/* dset's filters, in pipeline order (at most 4). */
static int filters_of(hid_t dset, H5Z_filter_t *f)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    assert_true(dcpl >= 0);
    int n = H5Pget_nfilters(dcpl);
    assert_true(n >= 0 && n <= 4);
    for (int i = 0; i < n; i++) {
        unsigned flags = 0, cd[4] = {0};
        size_t cd_n = 4;
        f[i] = H5Pget_filter2(dcpl, (unsigned)i, &flags, &cd_n, cd, 0, NULL, NULL);
        if (f[i] == H5Z_FILTER_DEFLATE) /* the merged file's level */
            assert_true(cd_n >= 1 && cd[0] == 1);
    }
    H5Pclose(dcpl);
    return n;
}

static void virtual_shard_should_deflate_full_chunks_only(void **state)
{
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "zip.h5");
    write_shard(path, BZ_LAYOUT_VIRTUAL, 1);

    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t dset = H5Dopen2(file, rows_desc.path, H5P_DEFAULT);
    assert_true(dset >= 0);
    H5Z_filter_t f[4];
    /* the merged file's pipeline: deflate (no shuffle), then Fletcher32 */
    assert_int_equal(filters_of(dset, f), 2);
    assert_int_equal(f[0], H5Z_FILTER_DEFLATE);
    assert_int_equal(f[1], H5Z_FILTER_FLETCHER32);
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t crows = 0;
    assert_int_equal(H5Pget_chunk(dcpl, 1, &crows), 1);
    H5Pclose(dcpl);
    hid_t space = H5Dget_space(dset);
    hsize_t n_rows = 0, n_chunks = 0;
    H5Sget_simple_extent_dims(space, &n_rows, NULL);
    assert_int_equal(n_rows, (hsize_t)N_GAMES * ROWS_PER_GAME);
    assert_true(H5Dget_num_chunks(dset, space, &n_chunks) >= 0);
    assert_int_equal(n_chunks, (n_rows + crows - 1) / crows);
    assert_true(n_rows % crows != 0 && n_chunks >= 3); /* full chunks and a partial one */
    size_t raw = (size_t)crows * FILE_ROW + 4;
    for (hsize_t k = 0; k < n_chunks; k++) {
        hsize_t coff = 0, size = 0;
        unsigned mask = 7;
        haddr_t addr = 0;
        assert_true(H5Dget_chunk_info(dset, space, k, &coff, &mask, &addr, &size) >= 0);
        if (coff + crows <= n_rows) { /* full: deflated */
            assert_int_equal(mask, 0);
            assert_true(size < raw / 2);
        } else { /* the partial last chunk: rows and checksum, deflate skipped */
            assert_int_equal(mask, 1);
            assert_int_equal(size, raw);
        }
    }
    H5Sclose(space);
    H5Dclose(dset);
    /* the partial chunk stored at each of the 60 syncs was rewritten in
     * place: the file holds each chunk's raw bytes once (the dead copy of a
     * chunk stored partial, then deflated), not once per sync */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((size_t)st.st_size < (size_t)(n_chunks + 1) * raw + 256 * 1024);
    /* tables with strings and the text store: as in the plain layout */
    const char *plain[] = {"/games", text_desc.path};
    for (size_t i = 0; i < 2; i++) {
        assert_true((dset = H5Dopen2(file, plain[i], H5P_DEFAULT)) >= 0);
        assert_int_equal(filters_of(dset, f), 1);
        assert_int_equal(f[0], H5Z_FILTER_FLETCHER32);
        H5Dclose(dset);
    }
    char store[256];
    snprintf(store, sizeof store, "%s%s/text", BZ_OUT_SHARD_TEXT_GROUP, text_desc.path);
    assert_true((dset = H5Dopen2(file, store, H5P_DEFAULT)) >= 0);
    assert_int_equal(filters_of(dset, f), 1);
    H5Dclose(dset);
    H5Fclose(file);
    remove_tmp_file(path);
}

/* Every table of a and b (and their lists) dump to the same bytes. */
static void same_tables(const char *a, const char *b)
{
    struct bz_err err = {0};
    char **ta, **tb;
    size_t na, nb;
    if (bz_out_list_tables(a, &ta, &na, &err) || bz_out_list_tables(b, &tb, &nb, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(na, nb);
    for (size_t t = 0; t < na; t++) {
        assert_string_equal(ta[t], tb[t]);
        if (strncmp(ta[t], BZ_OUT_SHARD_TEXT_GROUP, strlen(BZ_OUT_SHARD_TEXT_GROUP)) == 0)
            continue; /* a store: read through its table */
        unsigned char *da, *db;
        size_t la, lb, ra, rb;
        if (bz_out_dump_table(a, ta[t], &da, &la, &ra, &err) ||
            bz_out_dump_table(b, tb[t], &db, &lb, &rb, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(ra, rb);
        assert_true(ra > 0);
        assert_int_equal(la, lb);
        assert_memory_equal(da, db, la);
        free(da);
        free(db);
    }
    bz_out_free_paths(ta, na);
    bz_out_free_paths(tb, nb);
}

/* Read back (HDF5's pipeline, the committed ids) and merged: the same as
 * the plain shard of the same games, whatever the sync points. */
static void virtual_shard_should_read_and_merge_like_plain(void **state)
{
    (void)state;
    static const int syncs[] = {1, 7, N_GAMES};
    char plain[512], virt[512], mp[512], mv[512];
    tmp_path(plain, sizeof plain, "plain.h5");
    tmp_path(mp, sizeof mp, "plain_merged.h5");
    write_shard(plain, BZ_LAYOUT_PLAIN, 1);
    const char *list[] = {plain};
    struct bz_err err = {0};
    struct bz_provenance prov = {.spec_json = "{\"name\": \"t\"}",
                                 .version = "0.1.0",
                                 .git_commit = "abc",
                                 .ranks = 1,
                                 .n_games = N_GAMES};
    if (bz_merge(list, 1, mp, &prov, &err))
        fail_msg("%s", err.msg);
    for (size_t k = 0; k < sizeof syncs / sizeof syncs[0]; k++) {
        tmp_path(virt, sizeof virt, "virt%zu.h5", k);
        tmp_path(mv, sizeof mv, "virt%zu_merged.h5", k);
        write_shard(virt, BZ_LAYOUT_VIRTUAL, syncs[k]);
        int64_t *ids;
        size_t n;
        if (bz_shard_committed(virt, &ids, &n, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(n, N_GAMES);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(ids[i], (int64_t)i);
        free(ids);
        same_tables(plain, virt);
        list[0] = virt;
        if (bz_merge(list, 1, mv, &prov, &err))
            fail_msg("%s", err.msg);
        same_tables(mp, mv);
        remove_tmp_file(virt);
        remove_tmp_file(mv);
    }
    remove_tmp_file(plain);
    remove_tmp_file(mp);
}

/* The same games (rows rows of /fake/rows each, and a /games row) into a
 * plain shard and into a virtual one whose full chunks a thread deflates;
 * with sync_each a sync after every game, else one at the close. */
static void write_pair(char plain[512], char virt[512], const char *stem, int games, hsize_t rows,
                       int sync_each)
{
    struct bz_err err = {0};
    struct bz_records rec;
    bz_records_init(&rec);
    for (int k = 0; k < 2; k++) {
        char *path = k ? virt : plain;
        tmp_path(path, 512, "%s_%c.h5", stem, k ? 'v' : 'p');
        struct bz_shard *s = NULL;
        if (bz_shard_create(path, &s, &err))
            fail_msg("%s", err.msg);
        bz_shard_set_layout(s, k ? BZ_LAYOUT_VIRTUAL : BZ_LAYOUT_PLAIN);
        bz_shard_set_threads(s, k);
        bz_shard_set_group_commit(s, 1);
        for (int64_t g = 0; g < games; g++) {
            bz_records_reset(&rec);
            for (hsize_t i = 0; i < rows; i++)
                *(struct vrow *)bz_records_add(&rec, &rows_desc) =
                    (struct vrow){g, (int32_t)i, (double)(g * (int64_t)rows + (int64_t)i) * 0.125,
                                  (uint8_t)(i & 1), "s"};
            *(struct bz_games_row *)bz_records_add(&rec, &bz_games_table) =
                (struct bz_games_row){.game_id = g, .game = "fake", .n_agents = 1, .status = "ok"};
            if (bz_shard_append(s, &rec, &err) || (sync_each && bz_shard_sync(s, &err)))
                fail_msg("%s", err.msg);
        }
        if (bz_shard_close(s, &err))
            fail_msg("%s", err.msg);
    }
    bz_records_cleanup(&rec);
}

/* The full chunks of /fake/rows in path, each checked on file and deflated
 * (mask 0, smaller than its rows); *crows: rows per chunk. */
static hsize_t full_chunks_deflated(const char *path, hsize_t *crows)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
          d = H5Dopen2(f, "/fake/rows", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d), space = H5Dget_space(d);
    hsize_t n_rows = 0, full = 0;
    assert_int_equal(H5Pget_chunk(dcpl, 1, crows), 1);
    H5Sget_simple_extent_dims(space, &n_rows, NULL);
    for (hsize_t off = 0; off + *crows <= n_rows; off += *crows, full++) {
        hsize_t size = 0;
        uint32_t mask = 7;
        haddr_t addr = HADDR_UNDEF;
        assert_true(H5Dget_chunk_info_by_coord(d, &off, &mask, &addr, &size) >= 0);
        assert_true(addr != HADDR_UNDEF && size > 0 && size < *crows * FILE_ROW);
        assert_int_equal(mask, 0);
    }
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    return full;
}

/* Games of exactly one chunk's rows of /fake/rows, a sync after each: at
 * every sync that table's stage is full, so the sync itself hands it to
 * the thread, and must store it before its flush. Every chunk of the
 * closed shard is on file (mask 0: deflated) and the rows are the plain
 * shard's. */
static void chunk_filled_at_a_sync_should_be_on_file(void **state)
{
    (void)state;
    char plain[512], virt[512];
    hsize_t crows = 0;
    /* the table's chunk rows, as the writer sizes them from a first game
     * (of 1,000 rows: at least 16 KiB, so a chunk of the largest size, as
     * from the games of one chunk's rows below) */
    write_pair(plain, virt, "probe", 1, 1000, 1);
    full_chunks_deflated(virt, &crows);
    remove_tmp_file(plain);
    remove_tmp_file(virt);
    write_pair(plain, virt, "at_sync", 3, crows, 1);
    assert_int_equal(full_chunks_deflated(virt, &crows), 3);
    same_tables(plain, virt);
    remove_tmp_file(plain);
    remove_tmp_file(virt);
}

/* Full chunks in a row with at most one on the thread (bz_out_shard_zjobs
 * 1): the next one is deflated by the writer while the thread is busy,
 * else handed over, in whatever order they finish. Every chunk is on file
 * deflated and the rows are the plain shard's. */
static void chunks_split_between_writer_and_thread_should_all_be_on_file(void **state)
{
    (void)state;
    char plain[512], virt[512];
    hsize_t crows = 0;
    bz_out_shard_zjobs = 1;
    write_pair(plain, virt, "split", 40, 1500, 0); /* 43.5 KB a game: about 6 chunks of 256 KiB */
    bz_out_shard_zjobs = 4;
    hsize_t full = full_chunks_deflated(virt, &crows);
    print_message("# %llu full chunks of %llu rows\n", (unsigned long long)full,
                  (unsigned long long)crows);
    assert_true(full >= 5);
    same_tables(plain, virt);
    remove_tmp_file(plain);
    remove_tmp_file(virt);
}

/* The same two with the full chunks deflated on a background thread (a
 * CPU the play leaves idle): stored before each sync's flush, the same
 * chunks, rows and merge. */
static void on_a_thread_too(void **state)
{
    shard_threads = 1;
    virtual_shard_should_deflate_full_chunks_only(state);
    virtual_shard_should_read_and_merge_like_plain(state);
    shard_threads = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(virtual_shard_should_deflate_full_chunks_only),
        cmocka_unit_test(virtual_shard_should_read_and_merge_like_plain),
        cmocka_unit_test(on_a_thread_too),
        cmocka_unit_test(chunk_filled_at_a_sync_should_be_on_file),
        cmocka_unit_test(chunks_split_between_writer_and_thread_should_all_be_on_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
