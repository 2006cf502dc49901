/* merge_bound: the merge's memory bound. Built with chunks of 1 KiB (so a
 * bound of 64 KiB still holds whole chunks), it merges sweeps many times
 * larger than the bound and checks the mechanism, not the time: the bytes
 * its own buffers hold never pass the bound, the peak is the same for 200
 * and 600 games (it does not grow with the sweep), the games went through
 * several id blocks and windows, and the tables equal a merge under the
 * default bound, on 1 and 3 compression threads. Games are written with some
 * of their rows before other games' (runs split like batched flushes). */
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <malloc.h> /* mallinfo2 */
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

#include "bazaar/out.h"
#include "bazaar/records.h"
#include "bazaar/tables.h"
#include "out_internal.h"
#define TMP_PATH_PREFIX "bound"
#include "tmp_path.h"

#define games_desc bz_games_table

/* a table with a string (HDF5's filters) and one without (direct chunks) */
#define TEXT_COLUMNS(X, R)                                                                         \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, turn, I32, "", "turn")                                                                    \
    X(R, msg, STR, "", "a message")
BZ_TABLE_ROW(text_row, TEXT_COLUMNS);
static BZ_TABLE_DEFINE(text_desc, "/bound/texts", text_row, TEXT_COLUMNS);

#define NUM_COLUMNS(X, R)                                                                          \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, turn, I32, "", "turn")                                                                    \
    X(R, agent, I32, "", "seat")                                                                   \
    X(R, price, F64, "", "a price")                                                                \
    X(R, qty, F64, "", "a quantity")                                                               \
    X(R, seed, U64, "", "a seed")                                                                  \
    X(R, flag, U8, "", "a flag")
BZ_TABLE_ROW(num_row, NUM_COLUMNS);
static BZ_TABLE_DEFINE(num_desc, "/bound/numbers", num_row, NUM_COLUMNS);

/* Rows of game id's turns [t0, t1), a pure function of (id, turn). */
static void add_turns(struct bz_records *rec, int64_t id, int t0, int t1)
{
    char text[96];
    for (int t = t0; t < t1; t++) {
        for (int a = 0; a < 4; a++) {
            struct num_row *r = bz_records_add(rec, &num_desc);
            assert_non_null(r);
            r->game_id = id;
            r->turn = t;
            r->agent = a;
            r->price = (double)id * 0.37 + t - a * 1.5;
            r->qty = (double)((id * 131 + t * 17 + a) % 1000) / 7.0;
            r->seed = UINT64_MAX - (uint64_t)id * 7919 - (uint64_t)t;
            r->flag = (uint8_t)((id + t + a) % 3);
        }
        struct text_row *x = bz_records_add(rec, &text_desc);
        assert_non_null(x);
        x->game_id = id;
        x->turn = t;
        snprintf(text, sizeof text, "game %" PRId64 " turn %d says hello", id, t);
        x->msg = bz_records_strdup(rec, text);
    }
}

static int turns_of(int64_t id)
{
    return 12 + (int)(id % 7);
}

static void add_commit(struct bz_records *rec, int64_t id)
{
    struct bz_games_row *g = bz_records_add(rec, &games_desc);
    assert_non_null(g);
    g->game_id = id;
    g->game = bz_records_strdup(rec, "bound");
    g->seed = (uint64_t)id * 1000003;
    g->n_agents = 4;
    g->lineup = bz_records_strdup(rec, "a,b,c,d");
    g->status = bz_records_strdup(rec, "ok");
}

/* n_games games over 3 shards in batches of 8 ids (as ranks get them);
 * in each shard the first half of a game's turns is written before the
 * previous game is committed. */
static void write_sweep(char paths[3][512], int n_games)
{
    struct bz_err err = {0};
    struct bz_shard *s[3];
    struct bz_records rec;
    bz_records_init(&rec);
    for (int k = 0; k < 3; k++) {
        tmp_path(paths[k], sizeof paths[k], "sweep%d_%d.h5", n_games, k);
        if (bz_shard_create(paths[k], &s[k], &err))
            fail_msg("%s", err.msg);
    }
    int64_t open_id[3] = {-1, -1, -1};
    for (int64_t id = 0; id < n_games; id++) {
        int k = (int)((id / 8) % 3), turns = turns_of(id);
        bz_records_reset(&rec);
        add_turns(&rec, id, 0, turns / 2);
        add_commit(&rec, id); /* not written: the game is open */
        if (bz_shard_append_uncommitted(s[k], &rec, &err))
            fail_msg("%s", err.msg);
        if (open_id[k] >= 0) { /* the previous game of this shard ends */
            int64_t p = open_id[k];
            bz_records_reset(&rec);
            add_turns(&rec, p, (turns_of(p)) / 2, turns_of(p));
            add_commit(&rec, p);
            if (bz_shard_append(s[k], &rec, &err))
                fail_msg("%s", err.msg);
        }
        open_id[k] = id;
    }
    for (int k = 0; k < 3; k++) {
        if (open_id[k] >= 0) {
            int64_t p = open_id[k];
            bz_records_reset(&rec);
            add_turns(&rec, p, (turns_of(p)) / 2, turns_of(p));
            add_commit(&rec, p);
            if (bz_shard_append(s[k], &rec, &err))
                fail_msg("%s", err.msg);
        }
        assert_int_equal(bz_shard_close(s[k], &err), BZ_OK);
    }
    bz_records_cleanup(&rec);
}

static void dump_file(const char *path, unsigned char **bytes, size_t *len)
{
    struct bz_err err = {0};
    char **tables;
    size_t nt;
    if (bz_out_list_tables(path, &tables, &nt, &err))
        fail_msg("%s", err.msg);
    *bytes = NULL;
    *len = 0;
    for (size_t t = 0; t < nt; t++) {
        unsigned char *b;
        size_t l, rows;
        if (bz_out_dump_table(path, tables[t], &b, &l, &rows, &err))
            fail_msg("%s", err.msg);
        size_t nl = strlen(tables[t]) + 1;
        *bytes = realloc(*bytes, *len + nl + l);
        assert_non_null(*bytes);
        memcpy(*bytes + *len, tables[t], nl);
        if (l)
            memcpy(*bytes + *len + nl, b, l);
        *len += nl + l;
        free(b);
    }
    bz_out_free_paths(tables, nt);
}

/* The tables of path dump (dump_file) to want's want_len bytes. */
static void dump_should_be(const char *path, const unsigned char *want, size_t want_len)
{
    unsigned char *got;
    size_t got_len;
    dump_file(path, &got, &got_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(got);
}

/* the layout merge and merge_blocks write */
static enum bz_layout layout = BZ_LAYOUT_PLAIN;

static void merge(char paths[3][512], const char *out, const char *bound, const char *threads,
                  struct bz_merge_stats *st)
{
    const char *list[3] = {paths[0], paths[1], paths[2]};
    struct bz_err err = {0};
    if (bound)
        setenv("BZ_MERGE_MEMORY", bound, 1);
    else
        unsetenv("BZ_MERGE_MEMORY");
    setenv("BZ_MERGE_THREADS", threads, 1);
    if (bz_merge_layout(list, 3, out, NULL, layout, &err))
        fail_msg("%s", err.msg);
    bz_merge_last_stats(st);
}

/* The follower's way: the stream advanced over n_blocks blocks of ids. */
static void merge_blocks(char paths[3][512], const char *out, const char *bound, int n_games,
                         int n_blocks, struct bz_merge_stats *st)
{
    struct bz_err err = {0};
    struct bz_merge_stream *ms;
    if (bound)
        setenv("BZ_MERGE_MEMORY", bound, 1);
    else
        unsetenv("BZ_MERGE_MEMORY");
    setenv("BZ_MERGE_THREADS", "2", 1);
    if (bz_merge_stream_open(out, 1, &ms, &err))
        fail_msg("%s", err.msg);
    bz_merge_stream_set_layout(ms, layout);
    for (int k = 0; k < 3; k++) {
        int64_t *ids = NULL;
        size_t n = 0;
        if (bz_shard_committed_quick(paths[k], &ids, &n, &err) ||
            bz_merge_stream_add(ms, paths[k], ids, n, &err))
            fail_msg("%s", err.msg);
        free(ids);
    }
    for (int b = 1; b < n_blocks; b++)
        if (bz_merge_stream_advance(ms, (int64_t)n_games * b / n_blocks, &err))
            fail_msg("%s", err.msg);
    if (bz_merge_stream_finish(ms, NULL, &err))
        fail_msg("%s", err.msg);
    bz_merge_last_stats(st);
}

/* merge_blocks into the scratch file name: the bytes of its tables must be
 * want's (dump_file of a one-pass merge). */
static void merge_blocks_should_give(char paths[3][512], const char *name, const char *bound,
                                     int n_games, int n_blocks, const unsigned char *want,
                                     size_t want_len, struct bz_merge_stats *st)
{
    char out[512];
    tmp_path(out, sizeof out, "%s", name);
    merge_blocks(paths, out, bound, n_games, n_blocks, st);
    dump_should_be(out, want, want_len);
    unlink(out);
}

/* In blocks, every shard's ids spanning many of them: the tables of a
 * one-pass merge. Under the default bound the runs found by the first scan
 * of a shard serve the later blocks (no row's id is read twice); under a
 * small one those caches do not fit and later blocks read rows again. */
static void merge_in_blocks_should_read_each_row_once_and_equal_one_pass(void **state)
{
    (void)state;
    const int n_games = 300;
    char paths[3][512], ref[512], name[32];
    write_sweep(paths, n_games);
    tmp_path(ref, sizeof ref, "blocks_ref.h5");
    struct bz_merge_stats one, st;
    merge(paths, ref, NULL, "1", &one);
    unsigned char *want;
    size_t want_len;
    dump_file(ref, &want, &want_len);
    static const char *bounds[2] = {NULL, "64K"};
    for (int b = 0; b < 2; b++) {
        snprintf(name, sizeof name, "blocks_%d.h5", b);
        merge_blocks_should_give(paths, name, bounds[b], n_games, 13, want, want_len, &st);
        print_message("# 13 blocks, bound %zu B: rows scanned %llu (one pass %llu)\n",
                      st.bound_bytes, (unsigned long long)st.rows_scanned,
                      (unsigned long long)one.rows_scanned);
        if (b == 0)
            assert_int_equal(st.rows_scanned, one.rows_scanned);
        else
            assert_true(st.peak_bytes <= st.bound_bytes);
    }
    free(want);
    unlink(ref);
    for (int k = 0; k < 3; k++)
        remove_tmp_file(paths[k]);
}

/* A following merge whose block of ids holds more runs than its index
 * (bound 1 MiB: about 1,600 runs; 3,000 games of 2 runs in one or two
 * advances), while its run caches (1/16 of the bound) hold a source's runs
 * past the block: the block is halved and scanned again. A source scanned
 * before the one that overflowed must not serve the smaller block from a
 * cache made for the larger one (it lacks the ids between the two ends):
 * the tables equal one pass. */
static void merge_of_overflowing_blocks_should_equal_one_pass(void **state)
{
    (void)state;
    const int n_games = 3000;
    char paths[3][512], ref[512], name[32];
    write_sweep(paths, n_games);
    tmp_path(ref, sizeof ref, "overflow_ref.h5");
    struct bz_merge_stats one, st;
    merge(paths, ref, NULL, "1", &one);
    unsigned char *want;
    size_t want_len;
    dump_file(ref, &want, &want_len);
    for (int n_blocks = 2; n_blocks <= 3; n_blocks++) {
        snprintf(name, sizeof name, "overflow_%d.h5", n_blocks);
        merge_blocks_should_give(paths, name, "1M", n_games, n_blocks, want, want_len, &st);
        print_message("# %d advances, bound %zu B: %llu blocks, rows scanned %llu (one pass "
                      "%llu)\n",
                      n_blocks, st.bound_bytes, (unsigned long long)st.blocks,
                      (unsigned long long)st.rows_scanned, (unsigned long long)one.rows_scanned);
    }
    free(want);
    unlink(ref);
    for (int k = 0; k < 3; k++)
        remove_tmp_file(paths[k]);
}

/* More sources than the merge keeps open (16): 20 shards, game g in shard
 * g % 20, merged in 9 blocks (every table's datasets of a source stay open
 * across blocks until its file is closed for another): one pass's tables. */
static void merge_in_blocks_of_many_shards_should_equal_one_pass(void **state)
{
    (void)state;
    enum { N = 20, GAMES = 120 };
    char paths[N][512], ref[512], out[512];
    const char *list[N];
    struct bz_err err = {0};
    struct bz_records rec;
    bz_records_init(&rec);
    struct bz_shard *s[N];
    for (int k = 0; k < N; k++) {
        tmp_path(paths[k], sizeof paths[k], "many_%d.h5", k);
        list[k] = paths[k];
        if (bz_shard_create(paths[k], &s[k], &err))
            fail_msg("%s", err.msg);
    }
    for (int64_t id = 0; id < GAMES; id++) {
        bz_records_reset(&rec);
        add_turns(&rec, id, 0, turns_of(id));
        add_commit(&rec, id);
        if (bz_shard_append(s[id % N], &rec, &err))
            fail_msg("%s", err.msg);
    }
    for (int k = 0; k < N; k++)
        assert_int_equal(bz_shard_close(s[k], &err), BZ_OK);
    bz_records_cleanup(&rec);
    unsetenv("BZ_MERGE_MEMORY");
    setenv("BZ_MERGE_THREADS", "2", 1);
    tmp_path(ref, sizeof ref, "many_ref.h5");
    if (bz_merge(list, N, ref, NULL, &err))
        fail_msg("%s", err.msg);
    struct bz_merge_stream *ms;
    tmp_path(out, sizeof out, "many_blocks.h5");
    if (bz_merge_stream_open(out, 1, &ms, &err))
        fail_msg("%s", err.msg);
    for (int k = 0; k < N; k++) {
        int64_t *ids = NULL;
        size_t n = 0;
        if (bz_shard_committed_quick(paths[k], &ids, &n, &err) ||
            bz_merge_stream_add(ms, paths[k], ids, n, &err))
            fail_msg("%s", err.msg);
        free(ids);
    }
    for (int b = 1; b < 9; b++)
        if (bz_merge_stream_advance(ms, (int64_t)GAMES * b / 9, &err))
            fail_msg("%s", err.msg);
    if (bz_merge_stream_finish(ms, NULL, &err))
        fail_msg("%s", err.msg);
    unsigned char *want, *got;
    size_t want_len, got_len;
    dump_file(ref, &want, &want_len);
    dump_file(out, &got, &got_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(want);
    free(got);
    unlink(ref);
    unlink(out);
    for (int k = 0; k < N; k++)
        remove_tmp_file(paths[k]);
}

/* The heap in use (malloc'd, not freed) when the merge reads its output
 * back, every source and table still held. */
static size_t heap_at_read_back;
static void note_heap(const char *tmp)
{
    (void)tmp;
    heap_at_read_back = mallinfo2().uordblks;
}

/* The heap the merge of n shards of one game each holds at its end, above
 * what was in use before it. */
static size_t merge_heap_of(int n)
{
    char(*paths)[512] = calloc((size_t)n, sizeof *paths);
    const char **list = calloc((size_t)n, sizeof *list);
    char out[512];
    struct bz_err err = {0};
    struct bz_records rec;
    assert_non_null(paths);
    assert_non_null(list);
    bz_records_init(&rec);
    for (int k = 0; k < n; k++) {
        struct bz_shard *s;
        tmp_path(paths[k], sizeof paths[k], "src%d_%d.h5", n, k);
        list[k] = paths[k];
        if (bz_shard_create(paths[k], &s, &err))
            fail_msg("%s", err.msg);
        bz_records_reset(&rec);
        add_turns(&rec, k, 0, turns_of(k));
        add_commit(&rec, k);
        if (bz_shard_append(s, &rec, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(bz_shard_close(s, &err), BZ_OK);
    }
    bz_records_cleanup(&rec);
    unsetenv("BZ_MERGE_MEMORY");
    setenv("BZ_MERGE_THREADS", "2", 1);
    tmp_path(out, sizeof out, "src%d.h5", n);
    size_t before = mallinfo2().uordblks;
    bz_merge_test_read_back_hook = note_heap;
    int rc = bz_merge(list, (size_t)n, out, NULL, &err);
    bz_merge_test_read_back_hook = NULL;
    if (rc)
        fail_msg("%s", err.msg);
    unlink(out);
    for (int k = 0; k < n; k++)
        remove_tmp_file(paths[k]);
    free(paths);
    free(list);
    return heap_at_read_back > before ? heap_at_read_back - before : 0;
}

/* What the merge keeps per source (its paths, ids, a dataset handle and a
 * few words per table) is small: the chunk addresses it looks up are kept
 * for the files it holds open, not for every source it ever read (a
 * follower's merge has thousands). Not measured under ASan (its allocator
 * reports no heap in use). */
static void merge_heap_should_not_grow_much_with_its_sources(void **state)
{
    (void)state;
    enum { FEW = 24, MANY = 264 };
    size_t few = merge_heap_of(FEW), many = merge_heap_of(MANY);
    double per = ((double)many - (double)few) / (MANY - FEW);
    print_message("# heap held at the read-back: %zu B for %d sources, %zu B for %d: %.0f B "
                  "per source\n",
                  few, FEW, many, MANY, per);
    assert_true(per < 4096);
}

/* The read-back hook: a byte flipped in the middle of chunk `flip_chunk`
 * of /bound/numbers (stored by direct chunk writes) of the closed tmp. */
static hsize_t flip_chunk;
static const char *flip_dset = "/bound/numbers";
static void flip_in_tmp(const char *tmp)
{
    hid_t file = H5Fopen(tmp, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t dset = H5Dopen2(file, flip_dset, H5P_DEFAULT), dcpl = H5Dget_create_plist(dset);
    hsize_t chunk = 0, off, size = 0;
    assert_int_equal(H5Pget_chunk(dcpl, 1, &chunk), 1);
    off = flip_chunk * chunk;
    haddr_t addr = HADDR_UNDEF;
    unsigned mask = 0;
    assert_true(H5Dget_chunk_info_by_coord(dset, &off, &mask, &addr, &size) >= 0);
    assert_true(addr != HADDR_UNDEF && size > 8);
    H5Pclose(dcpl);
    H5Dclose(dset);
    H5Fclose(file);
    int fd = open(tmp, O_RDWR);
    assert_true(fd >= 0);
    unsigned char byte;
    assert_int_equal(pread(fd, &byte, 1, (off_t)(addr + size / 2)), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, (off_t)(addr + size / 2)), 1);
    close(fd);
}

/* A chunk of the merged file that no longer carries its checksum when the
 * merge reads the closed tmp back: the merge fails naming the table and
 * the chunk's row, and leaves no output; on 1 thread (read back by the
 * merging thread) and on 3 (by the threads). */
static void corrupt_merged_chunk_should_fail_the_read_back(void **state)
{
    (void)state;
    char paths[3][512], out[512];
    write_sweep(paths, 200);
    const char *list[3] = {paths[0], paths[1], paths[2]};
    const char *threads[2] = {"1", "3"};
    for (int t = 0; t < 2; t++) {
        struct bz_err err = {0};
        tmp_path(out, sizeof out, "rb_%s.h5", threads[t]);
        setenv("BZ_MERGE_MEMORY", "64K", 1);
        setenv("BZ_MERGE_THREADS", threads[t], 1);
        flip_chunk = 3;
        bz_merge_test_read_back_hook = flip_in_tmp;
        assert_int_equal(bz_merge(list, 3, out, NULL, &err), BZ_EIO);
        bz_merge_test_read_back_hook = NULL;
        assert_non_null(strstr(err.msg, "/bound/numbers"));
        assert_non_null(strstr(err.msg, "does not read back"));
        assert_int_equal(access(out, F_OK), -1);
    }
    for (int k = 0; k < 3; k++)
        remove_tmp_file(paths[k]);
}

/* The virtual layout: a chunk of a part (a copy of a source's chunks) that
 * no longer carries its checksum at the read-back fails the merge, naming
 * the part and the chunk's row, and leaves no output; on shards of both
 * layouts (chunks compressed by the merge, chunks copied as stored). */
static void corrupt_part_chunk_should_fail_the_read_back(void **state)
{
    (void)state;
    for (int sl = 0; sl < 2; sl++) {
        char paths[3][512], out[512];
        bz_out_shard_layout = sl ? BZ_LAYOUT_VIRTUAL : BZ_LAYOUT_PLAIN;
        write_sweep(paths, 600);
        bz_out_shard_layout = BZ_LAYOUT_PLAIN;
        const char *list[3] = {paths[0], paths[1], paths[2]};
        const char *threads[2] = {"1", "3"};
        for (int t = 0; t < 2; t++) {
            struct bz_err err = {0};
            tmp_path(out, sizeof out, "prb_%d_%s.h5", sl, threads[t]);
            unsetenv("BZ_MERGE_MEMORY");
            setenv("BZ_MERGE_THREADS", threads[t], 1);
            flip_chunk = 1;
            flip_dset = "/.parts/1/bound/numbers";
            bz_merge_test_read_back_hook = flip_in_tmp;
            assert_int_equal(bz_merge_layout(list, 3, out, NULL, BZ_LAYOUT_VIRTUAL, &err), BZ_EIO);
            bz_merge_test_read_back_hook = NULL;
            flip_dset = "/bound/numbers";
            print_message("# %s\n", err.msg);
            assert_non_null(strstr(err.msg, "/.parts/1/bound/numbers"));
            assert_non_null(strstr(err.msg, "does not read back"));
            assert_int_equal(access(out, F_OK), -1);
        }
        for (int k = 0; k < 3; k++)
            remove_tmp_file(paths[k]);
    }
}

static void merge_memory_should_stay_under_its_bound_whatever_the_games(void **state)
{
    (void)state;
    static const int sizes[2] = {200, 600};
    size_t peak[2] = {0};
    for (int i = 0; i < 2; i++) {
        char paths[3][512], ref[512], small[512];
        write_sweep(paths, sizes[i]);
        tmp_path(ref, sizeof ref, "ref%d.h5", sizes[i]);
        struct bz_merge_stats st;
        merge(paths, ref, NULL, "1", &st);
        unsigned char *want;
        size_t want_len;
        dump_file(ref, &want, &want_len);
        /* the sweep is many times the bound */
        assert_true(st.raw_bytes > 8 * 64 * 1024);
        for (int t = 0; t < 2; t++) {
            const char *threads = t ? "3" : "1";
            tmp_path(small, sizeof small, "small%d_%s.h5", sizes[i], threads);
            merge(paths, small, "64K", threads, &st);
            print_message("# %d games, %s thread(s): %.0f KiB of rows, bound %zu B, peak %zu B, "
                          "%llu id blocks, %llu windows, %llu direct chunks\n",
                          sizes[i], threads, (double)st.raw_bytes / 1024.0, st.bound_bytes,
                          st.peak_bytes, (unsigned long long)st.blocks,
                          (unsigned long long)st.windows, (unsigned long long)st.direct_chunks);
            assert_int_equal(st.bound_bytes, 64 * 1024);
            assert_true(st.peak_bytes <= st.bound_bytes);
            assert_int_equal(st.threads, t ? 3 : 1);
            /* several id blocks per table (3 tables), many windows, and the
             * numbers table went through direct chunk writes */
            assert_true(st.blocks > 3 * 2);
            assert_true(st.windows > 3 * 4);
            assert_true(st.direct_chunks > 0);
            if (t == 0)
                peak[i] = st.peak_bytes;
            dump_should_be(small, want, want_len);
            unlink(small);
        }
        free(want);
        unlink(ref);
        for (int k = 0; k < 3; k++)
            remove_tmp_file(paths[k]);
    }
    /* three times the games, the same peak: nothing grows with the sweep */
    assert_int_equal(peak[0], peak[1]);
}

/* The storage layout of table in file: H5D_VIRTUAL, H5D_CHUNKED, ... */
static H5D_layout_t layout_of(const char *file, const char *table)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, table, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t dcpl = H5Dget_create_plist(d);
    H5D_layout_t l = H5Pget_layout(dcpl);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    return l;
}

/* The virtual layout: the table without strings is a virtual dataset over
 * the shards' chunks (compressed by the merge: these shards store them
 * uncompressed), the others as in the plain layout; read through HDF5,
 * every table equals the plain merge's, in one pass and in the follower's
 * blocks (a bound of 64 KiB too), on 1 and 3 threads; the parts are not
 * listed as tables. */
static void virtual_merge_should_read_as_the_plain_one(void **state)
{
    (void)state;
    const int n_games = 300;
    char paths[3][512], ref[512], out[512], name[32];
    write_sweep(paths, n_games);
    tmp_path(ref, sizeof ref, "virtual_ref.h5");
    struct bz_merge_stats st;
    layout = BZ_LAYOUT_PLAIN;
    merge(paths, ref, NULL, "1", &st);
    unsigned char *want;
    size_t want_len;
    dump_file(ref, &want, &want_len);
    layout = BZ_LAYOUT_VIRTUAL;
    static const char *threads[2] = {"1", "3"};
    for (int k = 0; k < 2; k++) {
        tmp_path(out, sizeof out, "virtual_%d.h5", k);
        merge(paths, out, NULL, threads[k], &st);
        dump_should_be(out, want, want_len);
        print_message("# virtual, %s thread(s): %llu mappings, %llu chunks compressed, %llu "
                      "copied\n",
                      threads[k], (unsigned long long)st.mappings,
                      (unsigned long long)st.chunks_compressed,
                      (unsigned long long)st.chunks_copied);
        assert_true(st.mappings >= 3 && st.chunks_compressed > 0);
        assert_true(st.runs_indexed > 0); /* the shards' run indexes, no game id read */
        assert_int_equal(layout_of(out, "/bound/numbers"), H5D_VIRTUAL);
        assert_int_equal(layout_of(out, "/bound/texts"), H5D_CHUNKED);
        assert_int_equal(layout_of(out, "/.parts/0/bound/numbers"), H5D_CHUNKED);
        unlink(out);
    }
    static const char *bounds[2] = {NULL, "64K"};
    for (int b = 0; b < 2; b++) {
        snprintf(name, sizeof name, "virtual_blocks_%d.h5", b);
        merge_blocks_should_give(paths, name, bounds[b], n_games, 13, want, want_len, &st);
        assert_true(st.mappings >= 3);
    }
    /* the virtual file as the source of a plain merge: materialised, the
     * same tables (its parts are not tables: they are not copied) */
    tmp_path(out, sizeof out, "virtual_src.h5");
    merge(paths, out, NULL, "2", &st);
    layout = BZ_LAYOUT_PLAIN;
    char plain[512];
    tmp_path(plain, sizeof plain, "virtual_materialised.h5");
    const char *one[1] = {out};
    struct bz_err err = {0};
    if (bz_merge_layout(one, 1, plain, NULL, BZ_LAYOUT_PLAIN, &err))
        fail_msg("%s", err.msg);
    dump_should_be(plain, want, want_len);
    assert_int_equal(layout_of(plain, "/bound/numbers"), H5D_CHUNKED);
    hid_t f = H5Fopen(plain, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(H5Lexists(f, "/.parts", H5P_DEFAULT), 0);
    H5Fclose(f);
    unlink(plain);
    unlink(out);
    /* shards stored otherwise (HDF5's shuffle and deflate: read through
     * HDF5, then compressed), into the virtual layout */
    char zpaths[3][512];
    bz_out_shard_deflate_level = 4;
    write_sweep(zpaths, n_games);
    bz_out_shard_deflate_level = 0;
    layout = BZ_LAYOUT_VIRTUAL;
    tmp_path(out, sizeof out, "virtual_z.h5");
    merge(zpaths, out, NULL, "2", &st);
    dump_should_be(out, want, want_len);
    assert_true(st.chunks_compressed > 0 && st.chunks_pread == 0);
    unlink(out);
    for (int k = 0; k < 3; k++)
        remove_tmp_file(zpaths[k]);
    layout = BZ_LAYOUT_PLAIN;
    free(want);
    unlink(ref);
    for (int k = 0; k < 3; k++)
        remove_tmp_file(paths[k]);
}

/* Turns of shard version `extra` of game id (shards that both commit a
 * game hold other rows of it: the first in list order must win). */
static int vturns(int64_t id, int extra)
{
    return 4 * turns_of(id) + extra;
}

/* A shard in layout lay committing ids[0..n) in order, each game's first
 * half of turns written before the previous game's commit (its runs
 * interleave with that game's), then the rows of the games unc[0..n_unc)
 * never committed here. */
static void write_games(const char *path, enum bz_layout lay, const int64_t *ids, size_t n,
                        int extra, const int64_t *unc, size_t n_unc)
{
    struct bz_err err = {0};
    struct bz_shard *s;
    struct bz_records rec;
    bz_records_init(&rec);
    if (bz_shard_create(path, &s, &err))
        fail_msg("%s", err.msg);
    bz_shard_set_layout(s, lay);
    for (size_t k = 0; k <= n; k++) {
        if (k < n) {
            bz_records_reset(&rec);
            add_turns(&rec, ids[k], 0, vturns(ids[k], extra) / 2);
            add_commit(&rec, ids[k]);
            if (bz_shard_append_uncommitted(s, &rec, &err))
                fail_msg("%s", err.msg);
        }
        if (k > 0) {
            int64_t p = ids[k - 1];
            bz_records_reset(&rec);
            add_turns(&rec, p, vturns(p, extra) / 2, vturns(p, extra));
            add_commit(&rec, p);
            if (bz_shard_append(s, &rec, &err))
                fail_msg("%s", err.msg);
        }
    }
    for (size_t k = 0; k < n_unc; k++) {
        bz_records_reset(&rec);
        add_turns(&rec, unc[k], 0, vturns(unc[k], extra + 1));
        add_commit(&rec, unc[k]);
        if (bz_shard_append_uncommitted(s, &rec, &err))
            fail_msg("%s", err.msg);
    }
    assert_int_equal(bz_shard_close(s, &err), BZ_OK);
    bz_records_cleanup(&rec);
}

/* The tables of file a and file b are equal (dump_file). */
static void same_dump(const char *a, const char *b)
{
    unsigned char *x;
    size_t nx;
    dump_file(a, &x, &nx);
    dump_should_be(b, x, nx);
    free(x);
}

/* Shards of both layouts in one merge (a resumed run's), more of them than
 * the merge keeps open: games interleaved in each shard, some committed in
 * two shards (other rows in each: the first in list order wins), rows of
 * games never committed where they lie. Merged in the virtual layout, in
 * one pass and in a follower's blocks, under the default bound (chunks
 * copied) and 64 KiB (read through HDF5), the tables equal the plain
 * merge's; then a follower's stream where each source is added after the
 * advance before it. */
static void virtual_merge_of_mixed_shards_should_equal_the_plain_one(void **state)
{
    (void)state;
    enum { N = 20, PER = 10 };
    char paths[N][512], ref[512], out[512];
    const char *list[N];
    struct bz_err err = {0};
    struct bz_merge_stats st;
    /* shard k commits ids [PER k, PER k + PER) and, but for the last, the
     * next shard's first 3 (another version); its uncommitted rows are of
     * the previous shard's last 2 games and of one id nobody commits */
    for (int k = 0; k < N; k++) {
        int64_t ids[PER + 3], unc[3];
        size_t n = 0, n_unc = 0;
        for (int j = 0; j < PER; j++)
            ids[n++] = PER * k + j;
        for (int j = 0; k + 1 < N && j < 3; j++)
            ids[n++] = PER * (k + 1) + j;
        if (k > 0) {
            unc[n_unc++] = PER * k - 2;
            unc[n_unc++] = PER * k - 1;
        }
        unc[n_unc++] = 1000 + k;
        tmp_path(paths[k], sizeof paths[k], "mixed_%d.h5", k);
        list[k] = paths[k];
        write_games(paths[k], k % 2 ? BZ_LAYOUT_VIRTUAL : BZ_LAYOUT_PLAIN, ids, n, k % 3, unc,
                    n_unc);
    }
    setenv("BZ_MERGE_THREADS", "2", 1);
    unsetenv("BZ_MERGE_MEMORY");
    tmp_path(ref, sizeof ref, "mixed_ref.h5");
    if (bz_merge(list, N, ref, NULL, &err))
        fail_msg("%s", err.msg);
    static const char *bounds[2] = {NULL, "64K"};
    for (int b = 0; b < 2; b++) {
        if (bounds[b])
            setenv("BZ_MERGE_MEMORY", bounds[b], 1);
        else
            unsetenv("BZ_MERGE_MEMORY");
        tmp_path(out, sizeof out, "mixed_virtual_%d.h5", b);
        if (bz_merge_layout(list, N, out, NULL, BZ_LAYOUT_VIRTUAL, &err))
            fail_msg("%s", err.msg);
        bz_merge_last_stats(&st);
        print_message("# mixed, bound %zu: %llu mappings, %llu chunks copied, %llu compressed\n",
                      st.bound_bytes, (unsigned long long)st.mappings,
                      (unsigned long long)st.chunks_copied,
                      (unsigned long long)st.chunks_compressed);
        assert_int_equal(layout_of(out, "/bound/numbers"), H5D_VIRTUAL);
        same_dump(ref, out);
        unlink(out);
        /* the follower's: every source, then 9 advances */
        struct bz_merge_stream *ms;
        tmp_path(out, sizeof out, "mixed_blocks_%d.h5", b);
        if (bz_merge_stream_open(out, 1, &ms, &err))
            fail_msg("%s", err.msg);
        bz_merge_stream_set_layout(ms, BZ_LAYOUT_VIRTUAL);
        for (int k = 0; k < N; k++) {
            int64_t *ids = NULL;
            size_t n = 0;
            if (bz_shard_committed_quick(paths[k], &ids, &n, &err) ||
                bz_merge_stream_add(ms, paths[k], ids, n, &err))
                fail_msg("%s", err.msg);
            free(ids);
        }
        for (int a = 1; a < 9; a++)
            if (bz_merge_stream_advance(ms, (int64_t)N * PER * a / 9, &err))
                fail_msg("%s", err.msg);
        if (bz_merge_stream_finish(ms, NULL, &err))
            fail_msg("%s", err.msg);
        same_dump(ref, out);
        unlink(out);
        /* sources added as they close: shard k after the advance to PER k
         * (its ids are at or past it), then the advance to PER (k + 1) */
        tmp_path(out, sizeof out, "mixed_follow_%d.h5", b);
        if (bz_merge_stream_open(out, 1, &ms, &err))
            fail_msg("%s", err.msg);
        bz_merge_stream_set_layout(ms, BZ_LAYOUT_VIRTUAL);
        for (int k = 0; k < N; k++) {
            int64_t *ids = NULL;
            size_t n = 0;
            if (bz_shard_committed_quick(paths[k], &ids, &n, &err) ||
                bz_merge_stream_add(ms, paths[k], ids, n, &err))
                fail_msg("%s", err.msg);
            free(ids);
            if (bz_merge_stream_advance(ms, (int64_t)PER * (k + 1), &err))
                fail_msg("%s", err.msg);
        }
        if (bz_merge_stream_finish(ms, NULL, &err))
            fail_msg("%s", err.msg);
        same_dump(ref, out);
        unlink(out);
    }
    unsetenv("BZ_MERGE_MEMORY");
    unlink(ref);
    for (int k = 0; k < N; k++)
        remove_tmp_file(paths[k]);
}

/* Rows that deflate cannot shrink: random bytes but for the game id. */
#define RAND_COLUMNS(X, R)                                                                         \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, a, U64, "", "noise")                                                                      \
    X(R, b, U64, "", "noise")                                                                      \
    X(R, c, U64, "", "noise")                                                                      \
    X(R, d, U64, "", "noise")                                                                      \
    X(R, e, U64, "", "noise")                                                                      \
    X(R, f, U64, "", "noise")                                                                      \
    X(R, g, U64, "", "noise")                                                                      \
    X(R, h, U64, "", "noise")                                                                      \
    X(R, i, U64, "", "noise")                                                                      \
    X(R, j, U64, "", "noise")                                                                      \
    X(R, k, U64, "", "noise")                                                                      \
    X(R, l, U64, "", "noise")                                                                      \
    X(R, m, U64, "", "noise")                                                                      \
    X(R, n, U64, "", "noise")                                                                      \
    X(R, o, U64, "", "noise")
BZ_TABLE_ROW(rand_row, RAND_COLUMNS);
static BZ_TABLE_DEFINE(rand_desc, "/bound/noise", rand_row, RAND_COLUMNS);

static uint64_t noise_state = 88172645463325252ULL;
static uint64_t noise(void)
{
    noise_state ^= noise_state << 13;
    noise_state ^= noise_state >> 7;
    noise_state ^= noise_state << 17;
    return noise_state;
}

/* A results file (a plain merge) whose chunks deflate made larger than
 * their rows, merged again into the virtual layout: its chunks are copied
 * as stored whatever their size, and the tables are the same. */
static void virtual_merge_should_copy_chunks_larger_than_their_rows(void **state)
{
    (void)state;
    char shard[512], plain[512], out[512];
    struct bz_err err = {0};
    struct bz_shard *s;
    struct bz_records rec;
    bz_records_init(&rec);
    tmp_path(shard, sizeof shard, "noise.h5");
    if (bz_shard_create(shard, &s, &err))
        fail_msg("%s", err.msg);
    for (int g = 0; g < 300; g++) {
        bz_records_reset(&rec);
        int64_t id = g;
        for (int k = 0; k < 5; k++) {
            struct rand_row *r = bz_records_add(&rec, &rand_desc);
            assert_non_null(r);
            *r = (struct rand_row){.game_id = id};
            uint64_t *v = &r->a;
            for (int c = 0; c < 15; c++)
                v[c] = noise();
        }
        add_commit(&rec, id);
        if (bz_shard_append(s, &rec, &err))
            fail_msg("%s", err.msg);
    }
    assert_int_equal(bz_shard_close(s, &err), BZ_OK);
    bz_records_cleanup(&rec);
    unsetenv("BZ_MERGE_MEMORY");
    setenv("BZ_MERGE_THREADS", "2", 1);
    tmp_path(plain, sizeof plain, "noise_plain.h5");
    const char *one[1] = {shard};
    if (bz_merge(one, 1, plain, NULL, &err))
        fail_msg("%s", err.msg);
    /* the merged file's chunks of /bound/noise: larger than their rows */
    hid_t f = H5Fopen(plain, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/bound/noise", H5P_DEFAULT), dcpl = H5Dget_create_plist(d);
    hsize_t chunk = 0, zero = 0, size = 0;
    assert_int_equal(H5Pget_chunk(dcpl, 1, &chunk), 1);
    assert_true(H5Dget_chunk_storage_size(d, &zero, &size) >= 0);
    print_message("# chunk of %llu rows: %llu bytes stored for %llu\n", (unsigned long long)chunk,
                  (unsigned long long)size, (unsigned long long)(chunk * sizeof(struct rand_row)));
    assert_true(size > chunk * sizeof(struct rand_row) + 4);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    const char *src[1] = {plain};
    tmp_path(out, sizeof out, "noise_virtual.h5");
    if (bz_merge_layout(src, 1, out, NULL, BZ_LAYOUT_VIRTUAL, &err))
        fail_msg("%s", err.msg);
    struct bz_merge_stats st;
    bz_merge_last_stats(&st);
    assert_true(st.chunks_copied > 0);
    assert_int_equal(layout_of(out, "/bound/noise"), H5D_VIRTUAL);
    same_dump(plain, out);
    unlink(out);
    unlink(plain);
    remove_tmp_file(shard);
}

/* A shard's run index that lies (a row whose check fails, as a torn write
 * leaves it) is not used: that shard's tables are scanned, and the merge
 * still gives the tables of one with every index intact. */
static void damaged_run_index_should_be_scanned_instead(void **state)
{
    (void)state;
    const int n_games = 120;
    char paths[3][512], ref[512], out[512];
    write_sweep(paths, n_games);
    tmp_path(ref, sizeof ref, "ridx_ref.h5");
    struct bz_merge_stats one, st;
    merge(paths, ref, NULL, "2", &one);
    hid_t f = H5Fopen(paths[1], H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/.shard_runs/bound/numbers", H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(uint64_t));
    H5Tinsert(mt, "check", 0, H5T_NATIVE_UINT64);
    hid_t fs = H5Dget_space(d);
    hsize_t at = 3, n = 1;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &n, NULL);
    hid_t ms = H5Screate_simple(1, &n, NULL);
    uint64_t bad = 12345;
    assert_true(H5Dwrite(d, mt, ms, fs, H5P_DEFAULT, &bad) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Tclose(mt);
    H5Dclose(d);
    H5Fclose(f);
    tmp_path(out, sizeof out, "ridx_damaged.h5");
    merge(paths, out, NULL, "2", &st);
    same_dump(ref, out);
    print_message("# tables x sources from run indexes: %llu intact, %llu with one damaged\n",
                  (unsigned long long)one.runs_indexed, (unsigned long long)st.runs_indexed);
    assert_true(st.runs_indexed > 0 && st.runs_indexed < one.runs_indexed);
    unlink(out);
    unlink(ref);
    for (int k = 0; k < 3; k++)
        remove_tmp_file(paths[k]);
}

/* The virtual layout under a bound of 64 KiB, on shards of both layouts
 * (their chunks of 64 KiB are larger than the bound's share for copies):
 * the merge's own buffers stay under the bound, the peak is the same for
 * 200 and 600 games, and the tables equal the plain merge's. */
static void virtual_merge_should_stay_under_its_bound_whatever_the_games(void **state)
{
    (void)state;
    static const int sizes[2] = {200, 600};
    for (int sl = 0; sl < 2; sl++) {
        size_t peak[2] = {0};
        for (int i = 0; i < 2; i++) {
            char paths[3][512], ref[512], small[512];
            bz_out_shard_layout = sl ? BZ_LAYOUT_VIRTUAL : BZ_LAYOUT_PLAIN;
            write_sweep(paths, sizes[i]);
            bz_out_shard_layout = BZ_LAYOUT_PLAIN;
            tmp_path(ref, sizeof ref, "vref%d.h5", sizes[i]);
            struct bz_merge_stats st;
            layout = BZ_LAYOUT_PLAIN;
            merge(paths, ref, NULL, "1", &st);
            unsigned char *want;
            size_t want_len;
            dump_file(ref, &want, &want_len);
            layout = BZ_LAYOUT_VIRTUAL;
            for (int t = 0; t < 2; t++) {
                const char *threads = t ? "3" : "1";
                tmp_path(small, sizeof small, "vsmall%d_%s.h5", sizes[i], threads);
                merge(paths, small, "64K", threads, &st);
                print_message("# virtual, %s shards, %d games, %s thread(s): bound %zu B, peak "
                              "%zu B, %llu mappings\n",
                              sl ? "virtual" : "plain", sizes[i], threads, st.bound_bytes,
                              st.peak_bytes, (unsigned long long)st.mappings);
                assert_int_equal(st.bound_bytes, 64 * 1024);
                assert_true(st.peak_bytes <= st.bound_bytes);
                assert_true(st.mappings > 0);
                if (t == 0)
                    peak[i] = st.peak_bytes;
                dump_should_be(small, want, want_len);
                unlink(small);
            }
            layout = BZ_LAYOUT_PLAIN;
            free(want);
            unlink(ref);
            for (int k = 0; k < 3; k++)
                remove_tmp_file(paths[k]);
        }
        assert_int_equal(peak[0], peak[1]);
    }
}

/* A shard's run index whose last chunk is torn (a writer killed while
 * storing it again: it fails its checksum) is not used, in shards of both
 * layouts: the shard still counts (its tables read), that shard's tables
 * are scanned, and both merges give the tables of intact indexes. */
static void torn_run_index_chunk_should_be_scanned_instead(void **state)
{
    (void)state;
    for (int sl = 0; sl < 2; sl++) {
        char paths[3][512], ref[512], out[512];
        bz_out_shard_layout = sl ? BZ_LAYOUT_VIRTUAL : BZ_LAYOUT_PLAIN;
        write_sweep(paths, 120);
        bz_out_shard_layout = BZ_LAYOUT_PLAIN;
        tmp_path(ref, sizeof ref, "torn_ref.h5");
        struct bz_merge_stats one, st;
        layout = BZ_LAYOUT_PLAIN;
        merge(paths, ref, NULL, "2", &one);
        /* a byte of the index's last chunk flipped */
        hid_t f = H5Fopen(paths[1], H5F_ACC_RDONLY, H5P_DEFAULT);
        assert_true(f >= 0);
        hid_t d = H5Dopen2(f, "/.shard_runs/bound/numbers", H5P_DEFAULT);
        assert_true(d >= 0);
        hid_t sp = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
        hsize_t rows = 0, chunk = 0, size = 0;
        assert_int_equal(H5Sget_simple_extent_dims(sp, &rows, NULL), 1);
        assert_int_equal(H5Pget_chunk(dcpl, 1, &chunk), 1);
        hsize_t last = (rows - 1) / chunk * chunk;
        haddr_t addr = HADDR_UNDEF;
        unsigned mask = 0;
        assert_true(H5Dget_chunk_info_by_coord(d, &last, &mask, &addr, &size) >= 0);
        assert_true(addr != HADDR_UNDEF && size > 8);
        H5Pclose(dcpl);
        H5Sclose(sp);
        H5Dclose(d);
        H5Fclose(f);
        int fd = open(paths[1], O_RDWR);
        assert_true(fd >= 0);
        unsigned char byte;
        assert_int_equal(pread(fd, &byte, 1, (off_t)(addr + size / 3)), 1);
        byte ^= 0x21;
        assert_int_equal(pwrite(fd, &byte, 1, (off_t)(addr + size / 3)), 1);
        close(fd);
        struct bz_err err = {0};
        int64_t *ids = NULL;
        size_t n = 0;
        if (bz_shard_committed(paths[1], &ids, &n, &err))
            fail_msg("%s", err.msg);
        assert_true(n > 0);
        free(ids);
        for (int lay = 0; lay < 2; lay++) {
            layout = lay ? BZ_LAYOUT_VIRTUAL : BZ_LAYOUT_PLAIN;
            tmp_path(out, sizeof out, "torn_%d_%d.h5", sl, lay);
            merge(paths, out, NULL, "2", &st);
            same_dump(ref, out);
            assert_true(st.runs_indexed > 0 && st.runs_indexed < one.runs_indexed);
            unlink(out);
        }
        layout = BZ_LAYOUT_PLAIN;
        unlink(ref);
        for (int k = 0; k < 3; k++)
            remove_tmp_file(paths[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(merge_memory_should_stay_under_its_bound_whatever_the_games),
        cmocka_unit_test(merge_in_blocks_should_read_each_row_once_and_equal_one_pass),
        cmocka_unit_test(merge_in_blocks_of_many_shards_should_equal_one_pass),
        cmocka_unit_test(corrupt_merged_chunk_should_fail_the_read_back),
        cmocka_unit_test(corrupt_part_chunk_should_fail_the_read_back),
        cmocka_unit_test(merge_heap_should_not_grow_much_with_its_sources),
        cmocka_unit_test(merge_of_overflowing_blocks_should_equal_one_pass),
        cmocka_unit_test(virtual_merge_should_read_as_the_plain_one),
        cmocka_unit_test(damaged_run_index_should_be_scanned_instead),
        cmocka_unit_test(torn_run_index_chunk_should_be_scanned_instead),
        cmocka_unit_test(virtual_merge_of_mixed_shards_should_equal_the_plain_one),
        cmocka_unit_test(virtual_merge_should_copy_chunks_larger_than_their_rows),
        cmocka_unit_test(virtual_merge_should_stay_under_its_bound_whatever_the_games),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
