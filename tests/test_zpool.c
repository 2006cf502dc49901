/* test_zpool: the merge's compression pool (out_zpool.c) with several
 * batches in flight: compression batches submitted one after another
 * without waiting, and a read-only batch (a column of a stored chunk's rows,
 * as the merge's game id scan asks) submitted before them; each batch is
 * waited for in any order, each compressed chunk inflates to its input and
 * carries its Fletcher32, and the column read equals the rows written. A
 * chunk whose checksum fails makes its batch's wait return -2 naming it.
 * On 1 thread (the caller does the work) and on 3. */
#include <fcntl.h>
#include <setjmp.h> /* before cmocka.h */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "out_fletcher.h"
#include "out_zpool.h"
#define TMP_PATH_PREFIX "zpool"
#include "tmp_path.h"

#define N_BATCHES 4
#define CHUNKS 5
#define CHUNK_BYTES 4096
#define ROW 24 /* bytes of a row of the stored chunk: id at offset 8 */
#define ROWS 100

struct row {
    uint64_t a;
    int64_t id;
    uint64_t b;
};

/* A file holding one stored chunk (ROWS rows, then their Fletcher32) at
 * offset 512; *size: its bytes. */
static void write_stored_chunk(const char *path, size_t *size)
{
    unsigned char buf[512 + ROWS * ROW + 4];
    memset(buf, 0xab, 512);
    for (int r = 0; r < ROWS; r++) {
        struct row x = {(uint64_t)r * 3, 1000 + r * 7, ~(uint64_t)r};
        memcpy(buf + 512 + r * ROW, &x, sizeof x);
    }
    bz_out_fletcher32_put(buf + 512 + ROWS * ROW, bz_out_fletcher32(buf + 512, ROWS * ROW));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    close(fd);
    *size = ROWS * ROW + 4;
}

static void fill(unsigned char *in, int batch)
{
    for (size_t k = 0; k < CHUNKS * CHUNK_BYTES; k++)
        in[k] = (unsigned char)((k / 7 + (size_t)batch * 31) % 11);
}

static void batches_in_flight_should_each_finish(const char *threads)
{
    setenv("BZ_MERGE_THREADS", threads, 1);
    struct bz_zpool *pool = NULL;
    assert_int_equal(bz_zpool_create(bz_zpool_default_threads(), &pool), 0);
    unsetenv("BZ_MERGE_THREADS");
    char path[512];
    size_t size;
    tmp_path(path, sizeof path, "chunk_%s.bin", threads);
    write_stored_chunk(path, &size);

    struct bz_zbatch b[N_BATCHES];
    unsigned char *in[N_BATCHES];
    size_t cap = bz_zpool_bound(CHUNK_BYTES);
    memset(b, 0, sizeof b);
    for (int i = 0; i < N_BATCHES; i++) {
        in[i] = malloc(CHUNKS * CHUNK_BYTES);
        assert_non_null(in[i]);
        fill(in[i], i);
        b[i].in = in[i];
        b[i].n_chunks = CHUNKS;
        b[i].chunk_bytes = CHUNK_BYTES;
        b[i].out_cap = cap;
        b[i].out = malloc(CHUNKS * cap);
        b[i].out_len = calloc(CHUNKS, sizeof *b[i].out_len);
        assert_non_null(b[i].out);
        assert_non_null(b[i].out_len);
        bz_zpool_submit(pool, &b[i]);
    }
    /* the ids (a column) and the first two rows whole, read by the threads */
    int64_t ids[ROWS + 6];
    struct bz_zbatch rd = {0};
    rd.in = (unsigned char *)ids;
    assert_int_equal(bz_zbatch_add_column(&rd, path, 512, size, 0, offsetof(struct row, id), ROW,
                                          ROWS, 0, sizeof(int64_t)),
                     0);
    assert_int_equal(
        bz_zbatch_add_copy(&rd, path, 512, size, 0, 0, ROWS * sizeof(int64_t), 2 * ROW), 0);
    assert_int_equal(rd.n_reads, 1); /* one chunk, two copies */
    bz_zpool_submit_first(pool, &rd);
    assert_int_equal(bz_zpool_wait(pool, &rd), 0);
    for (int r = 0; r < ROWS; r++)
        assert_int_equal(ids[r], 1000 + r * 7);
    struct row two[2];
    memcpy(two, ids + ROWS, sizeof two);
    assert_int_equal(two[1].a, 3);
    assert_int_equal(two[1].id, 1007);

    /* waited for last first */
    for (int i = N_BATCHES - 1; i >= 0; i--) {
        assert_int_equal(bz_zpool_wait(pool, &b[i]), 0);
        for (size_t c = 0; c < CHUNKS; c++) {
            unsigned char *z = b[i].out + c * cap, back[CHUNK_BYTES];
            size_t len = b[i].out_len[c];
            assert_true(bz_zpool_chunk_ok(z, len));
            uLongf n = sizeof back;
            assert_int_equal(uncompress(back, &n, z, (uLong)(len - 4)), Z_OK);
            assert_int_equal(n, CHUNK_BYTES);
            assert_memory_equal(back, in[i] + c * CHUNK_BYTES, CHUNK_BYTES);
        }
    }

    /* a byte of the stored chunk flipped: the read-only batch fails, naming it */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char x = 0x5a;
    assert_int_equal(pwrite(fd, &x, 1, 512 + 40), 1);
    close(fd);
    bz_zbatch_reset_reads(&rd, 0);
    assert_int_equal(bz_zbatch_add_column(&rd, path, 512, size, 77, offsetof(struct row, id), ROW,
                                          ROWS, 0, sizeof(int64_t)),
                     0);
    bz_zpool_submit_first(pool, &rd);
    assert_int_equal(bz_zpool_wait(pool, &rd), -2);
    assert_int_equal(rd.bad_read, 0);
    assert_int_equal(rd.reads[rd.bad_read].row, 77);
    bz_zbatch_reset_reads(&rd, 1);

    for (int i = 0; i < N_BATCHES; i++) {
        free(in[i]);
        free(b[i].out);
        free(b[i].out_len);
        bz_zbatch_reset_reads(&b[i], 1);
    }
    bz_zpool_destroy(pool);
    unlink(path);
}

static void batches_in_flight_on_threads(void **state)
{
    (void)state;
    batches_in_flight_should_each_finish("3");
}

static void batches_in_flight_in_the_caller(void **state)
{
    (void)state;
    batches_in_flight_should_each_finish("1");
}

/* One background worker (the shard writer's pool, bz_zpool_create_workers)
 * at nice +10: a batch is done by it, not by the caller's wait (the thread
 * that submits it never compresses); bz_zpool_done says so without
 * blocking, and is 1 after the wait. */
static void one_worker_should_compress_in_the_background(void **state)
{
    (void)state;
    struct bz_zpool *pool = NULL;
    assert_int_equal(bz_zpool_create_workers(1, 10, &pool), 0);
    size_t cap = bz_zpool_bound(CHUNK_BYTES);
    unsigned char *in = malloc(CHUNKS * CHUNK_BYTES), *out = malloc(cap); /* fill: CHUNKS */
    size_t out_len = 0;
    assert_non_null(in);
    assert_non_null(out);
    fill(in, 3);
    struct bz_zbatch b = {0};
    b.in = in;
    b.n_chunks = 1;
    b.chunk_bytes = CHUNK_BYTES;
    b.out = out;
    b.out_cap = cap;
    b.out_len = &out_len;
    bz_zpool_submit(pool, &b);
    /* done without the caller's help: poll (no wait) until the worker is */
    while (!bz_zpool_done(pool, &b))
        nanosleep(&(struct timespec){0, 100000}, NULL);
    assert_true(out_len > 0); /* the worker wrote it before done said so */
    assert_int_equal(bz_zpool_wait(pool, &b), 0);
    assert_int_equal(bz_zpool_done(pool, &b), 1);
    assert_true(bz_zpool_chunk_ok(out, out_len));
    unsigned char back[CHUNK_BYTES];
    uLongf n = sizeof back;
    assert_int_equal(uncompress(back, &n, out, (uLong)(out_len - 4)), Z_OK);
    assert_memory_equal(back, in, CHUNK_BYTES);
    assert_true(b.cpu_seconds >= 0);
    bz_zbatch_reset_reads(&b, 1);
    bz_zpool_destroy(pool);
    free(in);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batches_in_flight_on_threads),
        cmocka_unit_test(batches_in_flight_in_the_caller),
        cmocka_unit_test(one_worker_should_compress_in_the_background),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
