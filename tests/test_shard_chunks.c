/* test_shard_chunks: the shard writer stores the chunks of a table without
 * variable-length strings itself (H5Dwrite_chunk) with its own Fletcher32:
 * the checksum is bit for bit HDF5's on every length, the stored chunks are
 * exactly what HDF5's filter pipeline expects (rows, then the checksum), a
 * partial chunk is stored again in place as it grows and its unused rows hold
 * the fill row, HDF5 reads every row back, and a flipped bit fails the read. */
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
#include "out_fletcher.h"
#include "out_internal.h"

#define TMP_PATH_PREFIX "chunks"
#include "tmp_path.h"

/* HDF5's own checksum (exported by libhdf5, declared in its private header). */
uint32_t H5_checksum_fletcher32(const void *data, size_t len);

#define ROW_COLUMNS(X, R)                                                                          \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, n, I32, "", "row number within the game")                                                 \
    X(R, x, F64, "1", "a value")                                                                   \
    X(R, flag, U8, "", "a flag")                                                                   \
    X(R, side, S8, "", "fixed-width string")
BZ_TABLE_ROW(chunk_row, ROW_COLUMNS);
static BZ_TABLE_DEFINE(rows_desc, "/fake/rows", chunk_row, ROW_COLUMNS);

/* The file row: packed, as out_h5.h's layout. */
#define FILE_ROW (8 + 4 + 8 + 1 + 8)

/* XOR bits into the byte at offset `at` of dset's first stored chunk in
 * the file at path; dset, space and file are closed first. */
static void flip_chunk_byte(const char *path, hid_t file, hid_t dset, hid_t space, long at,
                            int bits)
{
    hsize_t coff[1], csize = 0;
    unsigned fmask = 0;
    haddr_t addr = 0;
    assert_true(H5Dget_chunk_info(dset, space, 0, coff, &fmask, &addr, &csize) >= 0);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)addr + at, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, (long)addr + at, SEEK_SET), 0);
    fputc(c ^ bits, f);
    assert_int_equal(fclose(f), 0);
}

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fletcher_should_equal_hdf5s_on_every_length(void **state)
{
    (void)state;
    size_t cap = 300 * 1024;
    unsigned char *buf = malloc(cap + 64);
    assert_non_null(buf);
    for (int pattern = 0; pattern < 3; pattern++) {
        for (size_t i = 0; i < cap + 64; i++) /* random, all ones (the largest sums), zeros */
            buf[i] = pattern == 0 ? (unsigned char)next_rand() : pattern == 1 ? 0xff : 0;
        /* every length up to a few 360-word blocks (odd and even), at
         * unaligned starts */
        for (size_t n = 0; n <= 3000; n++) {
            size_t off = n % 17;
            uint32_t want = H5_checksum_fletcher32(buf + off, n);
            assert_int_equal(bz_out_fletcher32(buf + off, n), want);
            assert_int_equal(bz_out_fletcher32_portable(buf + off, n), want);
        }
        /* chunk sizes and block edges */
        static const size_t sizes[] = {
            719, 720, 721, 65535, 65536, 65537, 65529, 300 * 1024 - 1, 300 * 1024};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            for (size_t off = 0; off < 3; off++) {
                uint32_t want = H5_checksum_fletcher32(buf + off, sizes[k]);
                assert_int_equal(bz_out_fletcher32(buf + off, sizes[k]), want);
                assert_int_equal(bz_out_fletcher32_portable(buf + off, sizes[k]), want);
            }
    }
    free(buf);
}

static const char *const sides[] = {"12345678", "naïv€", "", NULL, "buy"};

static double value_of(int64_t game, int n)
{
    return (double)game * 1000.0 + n * 0.5;
}

/* Game `id` with `n_rows` rows of /fake/rows, and its /games row. */
static void make_game(struct bz_records *rec, int64_t id, int n_rows)
{
    bz_records_reset(rec);
    for (int i = 0; i < n_rows; i++) {
        struct chunk_row *r = bz_records_add(rec, &rows_desc);
        assert_non_null(r);
        r->game_id = id;
        r->n = i;
        r->x = value_of(id, i);
        r->flag = (uint8_t)(i % 3 == 0);
        r->side = sides[(id + i) % 5];
    }
    struct bz_games_row *g = bz_records_add(rec, &bz_games_table);
    assert_non_null(g);
    g->game_id = id;
    g->game = "fake";
    g->n_agents = 1;
    g->status = "ok";
}

/* Games 0..n_games-1 of rows_per_game rows; a group commit (sync) after
 * every sync_every games, so partial chunks are stored, then stored again
 * as they grow. */
static void write_games(const char *path, int n_games, int rows_per_game, int sync_every)
{
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    struct bz_records rec;
    bz_records_init(&rec);
    if (bz_shard_create(path, &s, &err))
        fail_msg("%s", err.msg);
    bz_shard_set_group_commit(s, 1);
    for (int g = 0; g < n_games; g++) {
        make_game(&rec, g, rows_per_game);
        if (bz_shard_append(s, &rec, &err))
            fail_msg("%s", err.msg);
        if ((g + 1) % sync_every == 0 && bz_shard_sync(s, &err))
            fail_msg("%s", err.msg);
    }
    if (bz_shard_close(s, &err))
        fail_msg("%s", err.msg);
    bz_records_cleanup(&rec);
}

struct read_row {
    int64_t game_id;
    int32_t n;
    double x;
    uint8_t flag;
    char side[8];
};

static void rows_should_read_back(hid_t dset, hsize_t n_rows, int rows_per_game)
{
    hid_t side = H5Tcopy(H5T_C_S1);
    H5Tset_size(side, 8);
    H5Tset_strpad(side, H5T_STR_NULLPAD);
    H5Tset_cset(side, H5T_CSET_UTF8);
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(struct read_row));
    H5Tinsert(mt, "game_id", offsetof(struct read_row, game_id), H5T_NATIVE_INT64);
    H5Tinsert(mt, "n", offsetof(struct read_row, n), H5T_NATIVE_INT32);
    H5Tinsert(mt, "x", offsetof(struct read_row, x), H5T_NATIVE_DOUBLE);
    H5Tinsert(mt, "flag", offsetof(struct read_row, flag), H5T_NATIVE_UINT8);
    H5Tinsert(mt, "side", offsetof(struct read_row, side), side);
    struct read_row *rows = calloc(n_rows, sizeof *rows);
    assert_non_null(rows);
    assert_true(H5Dread(dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0);
    for (hsize_t r = 0; r < n_rows; r++) {
        int64_t g = (int64_t)(r / (hsize_t)rows_per_game);
        int i = (int)(r % (hsize_t)rows_per_game);
        assert_int_equal(rows[r].game_id, g);
        assert_int_equal(rows[r].n, i);
        assert_true(rows[r].x == value_of(g, i));
        assert_int_equal(rows[r].flag, i % 3 == 0);
        const char *want = sides[(g + i) % 5] ? sides[(g + i) % 5] : "";
        char got[9] = {0};
        memcpy(got, rows[r].side, 8);
        assert_string_equal(got, want);
    }
    free(rows);
    H5Tclose(mt);
    H5Tclose(side);
}

static void direct_chunks_should_be_what_hdf5_stores(void **state)
{
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "direct.h5");
    const int n_games = 40, per_game = 700, sync_every = 1; /* chunks of up to 256 KiB */
    write_games(path, n_games, per_game, sync_every);
    hsize_t n_rows = (hsize_t)n_games * per_game;

    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t dset = H5Dopen2(file, rows_desc.path, H5P_DEFAULT);
    assert_true(dset >= 0);
    hid_t dcpl = H5Dget_create_plist(dset);
    /* the pipeline the chunks were stored for: Fletcher32 alone */
    assert_int_equal(H5Pget_nfilters(dcpl), 1);
    unsigned flags = 0;
    size_t cd_n = 0;
    assert_int_equal(H5Pget_filter2(dcpl, 0, &flags, &cd_n, NULL, 0, NULL, NULL),
                     H5Z_FILTER_FLETCHER32);
    hsize_t crows = 0;
    assert_int_equal(H5Pget_chunk(dcpl, 1, &crows), 1);
    H5Pclose(dcpl);
    /* chunks sized from the first game: a table of 20 KB a game gets the
     * largest (256 KiB), /games (one row a game) the smallest (64 KiB) */
    assert_true(crows * FILE_ROW <= 256 * 1024 && (crows + 1) * FILE_ROW > 256 * 1024);
    hid_t games = H5Dopen2(file, "/games", H5P_DEFAULT);
    hid_t games_dcpl = H5Dget_create_plist(games), games_type = H5Dget_type(games);
    hsize_t games_crows = 0;
    assert_int_equal(H5Pget_chunk(games_dcpl, 1, &games_crows), 1);
    assert_true(games_crows * H5Tget_size(games_type) <= 64 * 1024 &&
                (games_crows + 1) * H5Tget_size(games_type) > 64 * 1024);
    H5Tclose(games_type);
    H5Pclose(games_dcpl);
    H5Dclose(games);
    hid_t type = H5Dget_type(dset);
    assert_int_equal(H5Tget_size(type), FILE_ROW);
    H5Tclose(type);
    hid_t space = H5Dget_space(dset);
    hsize_t dims = 0;
    H5Sget_simple_extent_dims(space, &dims, NULL);
    assert_int_equal(dims, n_rows);

    /* one stored chunk per chunk of rows: a partial chunk stored again at
     * every sync took no second chunk */
    hsize_t n_chunks = 0;
    assert_true(H5Dget_num_chunks(dset, space, &n_chunks) >= 0);
    hsize_t want_chunks = (n_rows + crows - 1) / crows;
    assert_int_equal(n_chunks, want_chunks);
    assert_true(want_chunks >= 3);

    size_t bytes = (size_t)crows * FILE_ROW;
    unsigned char *buf = malloc(bytes + 4);
    assert_non_null(buf);
    haddr_t addr_max = 0;
    for (hsize_t k = 0; k < n_chunks; k++) {
        hsize_t off = k * crows, size = 0;
        uint32_t mask = 1;
        assert_true(H5Dget_chunk_storage_size(dset, &off, &size) >= 0);
        assert_int_equal(size, bytes + 4);
        assert_true(H5Dread_chunk(dset, H5P_DEFAULT, &off, &mask, buf) >= 0);
        assert_int_equal(mask, 0);
        uint32_t sum = H5_checksum_fletcher32(buf, bytes);
        uint32_t stored = (uint32_t)buf[bytes] | (uint32_t)buf[bytes + 1] << 8 |
                          (uint32_t)buf[bytes + 2] << 16 | (uint32_t)buf[bytes + 3] << 24;
        assert_int_equal(stored, sum);
        /* rows past the last one hold the fill row: game_id -1 */
        for (hsize_t r = n_rows > off ? n_rows - off : 0; r < crows; r++) {
            int64_t id;
            memcpy(&id, buf + r * FILE_ROW, sizeof id);
            assert_int_equal(id, -1);
        }
        hsize_t coff[1];
        unsigned fmask = 0;
        haddr_t addr = 0;
        hsize_t csize = 0;
        assert_true(H5Dget_chunk_info(dset, space, k, coff, &fmask, &addr, &csize) >= 0);
        if (addr + csize > addr_max)
            addr_max = addr + csize;
    }
    /* nothing stored past the chunks and the metadata: the partial chunk
     * was rewritten in place (the file never reuses space) */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((size_t)st.st_size < n_chunks * (bytes + 4) + 256 * 1024);
    rows_should_read_back(dset, n_rows, per_game);

    /* a flipped bit in a stored chunk: HDF5's filter refuses the read */
    flip_chunk_byte(path, file, dset, space, 100, 0x10);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    dset = H5Dopen2(file, rows_desc.path, H5P_DEFAULT);
    unsigned char *all = malloc((size_t)n_rows * FILE_ROW);
    hid_t ftype = H5Dget_type(dset);
    assert_true(H5Dread(dset, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) < 0);
    H5Tclose(ftype);
    free(all);
    free(buf);
    H5Dclose(dset);
    H5Fclose(file);
    remove_tmp_file(path);
}

/* Syncs at any row count give the same stored rows as one sync at the end:
 * each partial chunk is stored whole again (rows, fill, checksum). */
static void sync_points_should_not_change_the_rows(void **state)
{
    (void)state;
    char a[512], b[512];
    tmp_path(a, sizeof a, "sync_each.h5");
    tmp_path(b, sizeof b, "sync_once.h5");
    write_games(a, 9, 333, 1);
    write_games(b, 9, 333, 1000);
    hid_t fa = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT),
          fb = H5Fopen(b, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fa >= 0 && fb >= 0);
    hid_t da = H5Dopen2(fa, rows_desc.path, H5P_DEFAULT),
          db = H5Dopen2(fb, rows_desc.path, H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(da);
    hsize_t crows = 0;
    H5Pget_chunk(dcpl, 1, &crows);
    H5Pclose(dcpl);
    size_t bytes = (size_t)crows * FILE_ROW + 4;
    unsigned char *ca = malloc(bytes), *cb = malloc(bytes);
    hsize_t n_rows = 9 * 333;
    for (hsize_t off = 0; off < n_rows; off += crows) {
        uint32_t ma = 1, mb = 1;
        assert_true(H5Dread_chunk(da, H5P_DEFAULT, &off, &ma, ca) >= 0);
        assert_true(H5Dread_chunk(db, H5P_DEFAULT, &off, &mb, cb) >= 0);
        assert_memory_equal(ca, cb, bytes);
    }
    rows_should_read_back(da, n_rows, 333);
    free(ca);
    free(cb);
    H5Dclose(da);
    H5Dclose(db);
    H5Fclose(fa);
    H5Fclose(fb);
    remove_tmp_file(a);
    remove_tmp_file(b);
}

/* ---- a text column kept in the shard's byte store ------------------------ */

/* The same table twice: its text column as TEXT (the shard keeps the bytes
 * in a store) and as STR (HDF5's variable-length strings); both written to
 * the same path in separate shards. */
#define TEXT_COLUMNS(X, R)                                                                         \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, n, I32, "", "row number within the game")                                                 \
    X(R, text, TEXT, "", "free text")                                                              \
    X(R, label, S8, "", "a label")                                                                 \
    X(R, note, TEXT, "", "more free text")
BZ_TABLE_ROW(text_row, TEXT_COLUMNS);
static BZ_TABLE_DEFINE(text_desc, "/fake/texts", text_row, TEXT_COLUMNS);
#define STR_COLUMNS(X, R)                                                                          \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, n, I32, "", "row number within the game")                                                 \
    X(R, text, STR, "", "free text")                                                               \
    X(R, label, S8, "", "a label")                                                                 \
    X(R, note, STR, "", "more free text")
BZ_TABLE_ROW(str_row, STR_COLUMNS);
static BZ_TABLE_DEFINE(str_desc, "/fake/texts", str_row, STR_COLUMNS);

/* Row i of game g's text: empty, NULL, UTF-8, and now and then longer than
 * a store chunk (64 KiB), so texts cross chunk boundaries. */
static const char *text_of(struct bz_records *rec, int64_t g, int i)
{
    static char big[150 * 1024];
    char buf[256];
    switch ((g * 7 + i) % 9) {
    case 0: return "";
    case 1: return NULL;
    case 2:
        if (i % 40 == 2) {
            for (size_t k = 0; k < sizeof big - 1; k++)
                big[k] = (char)('a' + (k * 31 + (size_t)g + (size_t)i) % 26);
            big[sizeof big - 1 - (size_t)(i % 7)] = '\0';
            return bz_records_strdup(rec, big);
        }
        return "naïve € text";
    default:
        snprintf(buf, sizeof buf, "game %" PRId64 " row %d says %.*s", g, i, (int)(i % 50),
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        return bz_records_strdup(rec, buf);
    }
}

/* Rows [from, to) of game id, then its /games row when commit. */
static void make_text_game(struct bz_records *rec, int64_t id, int from, int to, int as_text,
                           int commit)
{
    bz_records_reset(rec);
    for (int i = from; i < to; i++) {
        const char *t = text_of(rec, id, i), *note = i % 3 ? "note" : NULL;
        if (as_text) {
            struct text_row *r = bz_records_add(rec, &text_desc);
            assert_non_null(r);
            *r = (struct text_row){id, i, t, sides[(id + i) % 5], note};
        } else {
            struct str_row *r = bz_records_add(rec, &str_desc);
            assert_non_null(r);
            *r = (struct str_row){id, i, t, sides[(id + i) % 5], note};
        }
    }
    if (!commit)
        return;
    struct bz_games_row *g = bz_records_add(rec, &bz_games_table);
    assert_non_null(g);
    g->game_id = id;
    g->game = "fake";
    g->n_agents = 1;
    g->status = "ok";
}

static void write_text_games(const char *path, int as_text)
{
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    struct bz_records rec;
    bz_records_init(&rec);
    if (bz_shard_create(path, &s, &err))
        fail_msg("%s", err.msg);
    bz_shard_set_group_commit(s, 1);
    for (int g = 0; g < 9; g++) {
        int n_rows = 100 + 37 * g, from = 0;
        /* a long game's rows go in batches before its commit record */
        for (; g == 4 && from + 60 < n_rows; from += 60) {
            make_text_game(&rec, g, from, from + 60, as_text, 0);
            if (bz_shard_put(s, &rec, &err))
                fail_msg("%s", err.msg);
        }
        make_text_game(&rec, g, from, n_rows, as_text, 1);
        if (bz_shard_append(s, &rec, &err))
            fail_msg("%s", err.msg);
        if (g % 2 && bz_shard_sync(s, &err))
            fail_msg("%s", err.msg);
    }
    if (bz_shard_close(s, &err))
        fail_msg("%s", err.msg);
    bz_records_cleanup(&rec);
}

static void merge_one(const char *shard, const char *out)
{
    struct bz_err err = {0};
    struct bz_provenance prov = {.spec_json = "{\"name\": \"t\"}",
                                 .version = "0.1.0",
                                 .git_commit = "abc",
                                 .ranks = 1,
                                 .n_games = 9};
    const char *list[] = {shard};
    if (bz_merge(list, 1, out, &prov, &err))
        fail_msg("%s", err.msg);
}

/* The shard keeps the text out of HDF5's heap; the results file is the same
 * as from a shard that held variable-length strings. */
static void text_store_should_merge_like_vlen_strings(void **state)
{
    (void)state;
    char a[512], b[512], ma[512], mb[512];
    tmp_path(a, sizeof a, "text_store.h5");
    tmp_path(b, sizeof b, "text_vlen.h5");
    tmp_path(ma, sizeof ma, "text_store_merged.h5");
    tmp_path(mb, sizeof mb, "text_vlen_merged.h5");
    write_text_games(a, 1);
    write_text_games(b, 0);

    /* the shard's table: no variable-length member; the texts in the stores */
    hid_t file = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t dset = H5Dopen2(file, text_desc.path, H5P_DEFAULT);
    hid_t ftype = H5Dget_type(dset);
    assert_int_equal(H5Tdetect_class(ftype, H5T_STRING), 1); /* the fixed label */
    hid_t text = H5Tget_member_type(ftype, (unsigned)H5Tget_member_index(ftype, "text"));
    assert_int_equal(H5Tget_class(text), H5T_COMPOUND);
    H5Tclose(text);
    hid_t label = H5Tget_member_type(ftype, (unsigned)H5Tget_member_index(ftype, "label"));
    assert_int_equal(H5Tis_variable_str(label), 0);
    H5Tclose(label);
    H5Tclose(ftype);
    hid_t store = H5Dopen2(file, "/.shard_text/fake/texts/text", H5P_DEFAULT);
    assert_true(store >= 0);
    hid_t space = H5Dget_space(store);
    hsize_t bytes = 0;
    H5Sget_simple_extent_dims(space, &bytes, NULL);
    assert_true(bytes > 3 * 256 * 1024); /* texts crossed chunk boundaries */
    H5Sclose(space);
    H5Dclose(store);
    H5Dclose(dset);
    H5Fclose(file);
    /* the store is part of its table: never listed as one */
    struct bz_err err = {0};
    char **paths = NULL;
    size_t n = 0;
    assert_int_equal(bz_out_list_tables(a, &paths, &n, &err), BZ_OK);
    for (size_t i = 0; i < n; i++)
        assert_null(strstr(paths[i], "shard_text"));
    bz_out_free_paths(paths, n);

    /* both shards commit the same games */
    int64_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(bz_shard_committed(a, &ids, &n_ids, &err), BZ_OK);
    assert_int_equal(n_ids, 9);
    free(ids);

    /* read back from the shards themselves (out_read.c): the same rows */
    unsigned char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0, rx = 0, ry = 0;
    assert_int_equal(bz_out_dump_table(a, text_desc.path, &x, &nx, &rx, &err), BZ_OK);
    assert_int_equal(bz_out_dump_table(b, text_desc.path, &y, &ny, &ry, &err), BZ_OK);
    assert_int_equal(rx, ry);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx);
    free(x);
    free(y);

    merge_one(a, ma);
    merge_one(b, mb);
    assert_int_equal(bz_out_dump_table(ma, text_desc.path, &x, &nx, &rx, &err), BZ_OK);
    assert_int_equal(bz_out_dump_table(mb, text_desc.path, &y, &ny, &ry, &err), BZ_OK);
    assert_int_equal(rx, ry);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx);
    free(x);
    free(y);
    /* the same type in the results file: variable-length strings */
    hid_t fa = H5Fopen(ma, H5F_ACC_RDONLY, H5P_DEFAULT),
          fb = H5Fopen(mb, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t da = H5Dopen2(fa, text_desc.path, H5P_DEFAULT),
          db = H5Dopen2(fb, text_desc.path, H5P_DEFAULT);
    hid_t ta = H5Dget_type(da), tb = H5Dget_type(db);
    assert_true(H5Tequal(ta, tb) > 0);
    H5Tclose(ta);
    H5Tclose(tb);
    H5Dclose(da);
    H5Dclose(db);
    H5Fclose(fa);
    H5Fclose(fb);
    /* a shard with a store and one without (a run resumed by a newer
     * version) merge together: the same results again */
    char mab[512];
    tmp_path(mab, sizeof mab, "text_mixed_merged.h5");
    struct bz_provenance prov = {.spec_json = "{}", .version = "0.1.0", .ranks = 2, .n_games = 9};
    const char *both[] = {a, b};
    if (bz_merge(both, 2, mab, &prov, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(bz_out_dump_table(ma, text_desc.path, &x, &nx, &rx, &err), BZ_OK);
    assert_int_equal(bz_out_dump_table(mab, text_desc.path, &y, &ny, &ry, &err), BZ_OK);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx);
    free(x);
    free(y);
    remove_tmp_file(a);
    remove_tmp_file(b);
    unlink(ma);
    unlink(mb);
    unlink(mab);
}

/* A flipped bit in a store's chunk: the shard's committed games no longer
 * read back (the caller replays them), and the merge refuses the shard. */
static void corrupt_text_store_should_fail_the_shard(void **state)
{
    (void)state;
    char a[512], ma[512];
    tmp_path(a, sizeof a, "text_corrupt.h5");
    tmp_path(ma, sizeof ma, "text_corrupt_merged.h5");
    write_text_games(a, 1);
    hid_t file = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t store = H5Dopen2(file, "/.shard_text/fake/texts/text", H5P_DEFAULT);
    flip_chunk_byte(a, file, store, H5Dget_space(store), 10, 0x01);
    struct bz_err err = {0};
    int64_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(bz_shard_committed(a, &ids, &n_ids, &err), BZ_EIO);
    free(ids);
    struct bz_provenance prov = {.spec_json = "{}", .version = "0.1.0", .ranks = 1, .n_games = 9};
    const char *list[] = {a};
    assert_int_not_equal(bz_merge(list, 1, ma, &prov, &err), BZ_OK);
    remove_tmp_file(a);
    unlink(ma);
}

/* A crafted text reference (past the store, or wrapping around) in a row
 * whose chunk checksum is right: the merge and the committed check refuse
 * the shard; nothing is read outside the bytes read. */
static void crafted_text_reference_should_be_refused(void **state)
{
    (void)state;
    static const uint64_t offsets[] = {UINT64_MAX - 3, (uint64_t)1 << 40};
    for (size_t v = 0; v < 2; v++) {
        char a[512], ma[512];
        tmp_path(a, sizeof a, "text_crafted.h5");
        tmp_path(ma, sizeof ma, "text_crafted_merged.h5");
        write_text_games(a, 1);
        hid_t file = H5Fopen(a, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t dset = H5Dopen2(file, text_desc.path, H5P_DEFAULT);
        struct {
            uint64_t offset;
            uint32_t length;
        } ref = {offsets[v], 10};
        hid_t one = H5Tcreate(H5T_COMPOUND, sizeof ref);
        H5Tinsert(one, "offset", 0, H5T_NATIVE_UINT64);
        H5Tinsert(one, "length", 8, H5T_NATIVE_UINT32);
        hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof ref);
        H5Tinsert(mt, "text", 0, one);
        hid_t fspace = H5Dget_space(dset);
        hsize_t at = 5, count = 1;
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &at, NULL, &count, NULL);
        hid_t mspace = H5Screate_simple(1, &count, NULL);
        assert_true(H5Dwrite(dset, mt, mspace, fspace, H5P_DEFAULT, &ref) >= 0);
        H5Sclose(mspace);
        H5Sclose(fspace);
        H5Tclose(mt);
        H5Tclose(one);
        H5Dclose(dset);
        H5Fclose(file);
        struct bz_err err = {0};
        struct bz_provenance prov = {
            .spec_json = "{}", .version = "0.1.0", .ranks = 1, .n_games = 9};
        const char *list[] = {a};
        assert_int_not_equal(bz_merge(list, 1, ma, &prov, &err), BZ_OK);
        remove_tmp_file(a);
        unlink(ma);
    }
}

/* /messages (the free text heuristic games write every turn) is such a
 * table: in a shard its rows have no variable-length member. */
static void messages_should_keep_their_text_in_the_store(void **state)
{
    (void)state;
    char a[512];
    tmp_path(a, sizeof a, "messages.h5");
    struct bz_err err = {0};
    struct bz_shard *s = NULL;
    struct bz_records rec;
    bz_records_init(&rec);
    assert_int_equal(bz_shard_create(a, &s, &err), BZ_OK);
    struct bz_messages_row *m = bz_records_add(&rec, &bz_messages_table);
    assert_non_null(m);
    *m = (struct bz_messages_row){.game_id = 0,
                                  .phase = "talk",
                                  .visibility = "public",
                                  .text = "I am badly short this hour; sellers, name your price."};
    struct bz_games_row *g = bz_records_add(&rec, &bz_games_table);
    assert_non_null(g);
    g->game_id = 0;
    g->game = "fake";
    g->status = "ok";
    assert_int_equal(bz_shard_append(s, &rec, &err), BZ_OK);
    assert_int_equal(bz_shard_close(s, &err), BZ_OK);
    bz_records_cleanup(&rec);
    hid_t file = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "/messages", H5P_DEFAULT);
    hid_t ftype = H5Dget_type(dset);
    int nm = H5Tget_nmembers(ftype);
    for (int i = 0; i < nm; i++) {
        hid_t mt = H5Tget_member_type(ftype, (unsigned)i);
        assert_true(H5Tget_class(mt) != H5T_VLEN);
        if (H5Tget_class(mt) == H5T_STRING)
            assert_int_equal(H5Tis_variable_str(mt), 0);
        H5Tclose(mt);
    }
    H5Tclose(ftype);
    H5Dclose(dset);
    hid_t store = H5Dopen2(file, "/.shard_text/messages/text", H5P_DEFAULT);
    assert_true(store >= 0);
    char text[64] = {0};
    assert_true(H5Dread(store, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0);
    assert_string_equal(text, "I am badly short this hour; sellers, name your price.");
    H5Dclose(store);
    H5Fclose(file);
    remove_tmp_file(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fletcher_should_equal_hdf5s_on_every_length),
        cmocka_unit_test(direct_chunks_should_be_what_hdf5_stores),
        cmocka_unit_test(sync_points_should_not_change_the_rows),
        cmocka_unit_test(text_store_should_merge_like_vlen_strings),
        cmocka_unit_test(corrupt_text_store_should_fail_the_shard),
        cmocka_unit_test(crafted_text_reference_should_be_refused),
        cmocka_unit_test(messages_should_keep_their_text_in_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
