/* test_h5filt: bazaar's replacements of HDF5's deflate and Fletcher32
 * filters (out_h5.c, bz_out_h5_filters_install) write what HDF5's own write:
 * a table with variable-length strings written through the merged file's
 * pipeline reads back through HDF5; every stored chunk is a zlib stream
 * that plain zlib's uncompress decodes, followed by HDF5's own Fletcher32
 * (H5_checksum_fletcher32); a level other than 1 is zlib's stream at that
 * level; a chunk deflate cannot shrink is stored deflated (stored blocks)
 * as HDF5 1.10 stores it;
 * a corrupted chunk is refused on read as HDF5's filter refuses it (the
 * checksum, or with checksums off the stream's Adler-32), an old-style
 * (pre-1.6.3) checksum is accepted, and H5Z_DISABLE_EDC skips the check. */
#include <setjmp.h> /* before cmocka.h */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <hdf5.h>
#include <zlib.h>

#include "bazaar/err.h"
#include "out_fletcher.h"
#include "out_h5.h"
#include "out_zpool.h"

#define TMP_PATH_PREFIX "h5filt"
#include "tmp_path.h"

/* HDF5's own checksum (exported by libhdf5, declared in its private header). */
uint32_t H5_checksum_fletcher32(const void *data, size_t len);

#define N_ROWS 5000
#define CHUNK_ROWS 512
#define N_INTS 20000
#define INT_CHUNK 4096

struct srow {
    int64_t game_id;
    char *text;
};

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static hid_t srow_type(void)
{
    hid_t str = bz_out_h5_str_type();
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(struct srow));
    assert_true(str >= 0 && t >= 0);
    assert_true(H5Tinsert(t, "game_id", offsetof(struct srow, game_id), H5T_NATIVE_INT64) >= 0);
    assert_true(H5Tinsert(t, "text", offsetof(struct srow, text), str) >= 0);
    H5Tclose(str);
    return t;
}

/* Row i's text: messages of varied lengths (some empty), repetitive like
 * the game's. */
static char *row_text(int i)
{
    static const char *words[] = {"offer", "accept", "price", "supply", "demand", "counter"};
    size_t n = (size_t)(i * 37 % 23);
    char *s = malloc(16 * n + 32);
    assert_non_null(s);
    size_t at = (size_t)sprintf(s, i % 11 ? "agent %d:" : "", i % 20);
    if (i % 11 == 0)
        n = 0;
    for (size_t k = 0; k < n; k++)
        at += (size_t)sprintf(s + at, " %s %d", words[(i + k) % 6], (int)((i * 7 + k) % 100));
    return s;
}

/* A file with /messages (strings, the merged pipeline), /ints9 (int32
 * through deflate level 9 + Fletcher32) and /noise (random bytes that
 * deflate cannot shrink), written through HDF5's pipeline. */
static void write_file(const char *path, struct srow *rows, int32_t *ints, unsigned char *noise)
{
    hid_t fapl = bz_out_h5_fapl();
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    assert_true(file >= 0);
    H5Pclose(fapl);
    hid_t t = srow_type();
    hid_t d = bz_out_h5_create_table(file, "/messages", t, N_ROWS, CHUNK_ROWS,
                                     BZ_OUT_H5_MERGED_PIPELINE, t, NULL);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0);
    H5Dclose(d);
    H5Tclose(t);

    hsize_t n = N_INTS, c = INT_CHUNK;
    hid_t space = H5Screate_simple(1, &n, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, &c) >= 0 && H5Pset_deflate(dcpl, 9) >= 0 &&
                H5Pset_fletcher32(dcpl) >= 0);
    d = H5Dcreate2(file, "/ints9", H5T_NATIVE_INT32, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ints) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);

    n = INT_CHUNK;
    space = H5Screate_simple(1, &n, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, &n) >= 0 && H5Pset_deflate(dcpl, 1) >= 0 &&
                H5Pset_fletcher32(dcpl) >= 0);
    d = H5Dcreate2(file, "/noise", H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, noise) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    assert_true(H5Fclose(file) >= 0);
}

struct data {
    char path[512];
    struct srow rows[N_ROWS];
    int32_t ints[N_INTS];
    unsigned char noise[INT_CHUNK];
};

static int setup(void **state)
{
    struct data *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    for (int i = 0; i < N_ROWS; i++)
        d->rows[i] = (struct srow){1000 + i / 7, row_text(i)};
    for (int i = 0; i < N_INTS; i++)
        d->ints[i] = (i / 3) % 1000 - 500;
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64*: bytes deflate cannot shrink */
    for (int i = 0; i < INT_CHUNK; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        d->noise[i] = (unsigned char)((x * 0x2545f4914f6cdd1du) >> 56);
    }
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct data *d = *state;
    for (int i = 0; i < N_ROWS; i++)
        free(d->rows[i].text);
    free(d);
    return 0;
}

/* Stored chunk k of dataset name: its bytes (malloc'd), size, filter mask
 * and file address. */
static unsigned char *stored_chunk(hid_t file, const char *name, hsize_t k, size_t *size,
                                   unsigned *mask, haddr_t *addr)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT), space = H5Dget_space(d);
    hsize_t off[1], bytes = 0;
    assert_true(H5Dget_chunk_info(d, space, k, off, mask, addr, &bytes) >= 0);
    unsigned char *buf = malloc(bytes);
    assert_non_null(buf);
    uint32_t m = 0;
    assert_true(H5Dread_chunk(d, H5P_DEFAULT, off, &m, buf) >= 0);
    assert_int_equal(m, *mask);
    *size = (size_t)bytes;
    H5Sclose(space);
    H5Dclose(d);
    return buf;
}

static hsize_t n_chunks(hid_t file, const char *name)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT), space = H5Dget_space(d);
    hsize_t n = 0;
    assert_true(H5Dget_num_chunks(d, space, &n) >= 0);
    H5Sclose(space);
    H5Dclose(d);
    return n;
}

/* Read name whole into buf as mem_type; the HDF5 status (on failure, HDF5's
 * innermost error in *err when err is not NULL). */
static herr_t read_all_err(const char *path, const char *name, hid_t mem_type, void *buf,
                           hid_t dxpl, struct bz_err *err)
{
    hid_t fapl = bz_out_h5_fapl();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    assert_true(file >= 0);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    assert_true(d >= 0);
    herr_t rc = H5Dread(d, mem_type, H5S_ALL, H5S_ALL, dxpl, buf);
    if (rc < 0 && err)
        bz_out_h5_fail(err, BZ_EIO, "read");
    H5Dclose(d);
    H5Fclose(file);
    return rc;
}

static herr_t read_all(const char *path, const char *name, hid_t mem_type, void *buf, hid_t dxpl)
{
    return read_all_err(path, name, mem_type, buf, dxpl, NULL);
}

static void patch(const char *path, haddr_t addr, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)addr, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The replacements are installed (else this test would test HDF5's own). */
static void test_installed(void **state)
{
    (void)state;
    assert_int_equal(bz_out_h5_filters_install(), 1);
}

/* The rows come back; each stored chunk is HDF5's format, decodable
 * without HDF5: zlib stream + HDF5's Fletcher32. */
static void test_strings_round_trip(void **state)
{
    struct data *d = *state;
    tmp_path(d->path, sizeof d->path, "strings.h5");
    write_file(d->path, d->rows, d->ints, d->noise);

    struct srow *got = calloc(N_ROWS, sizeof *got);
    assert_non_null(got);
    hid_t t = srow_type();
    assert_true(read_all(d->path, "/messages", t, got, H5P_DEFAULT) >= 0);
    for (int i = 0; i < N_ROWS; i++) {
        assert_int_equal(got[i].game_id, d->rows[i].game_id);
        assert_non_null(got[i].text);
        assert_string_equal(got[i].text, d->rows[i].text);
    }
    hsize_t dims = N_ROWS;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    H5Dvlen_reclaim(t, space, H5P_DEFAULT, got);
    H5Sclose(space);
    free(got);

    hid_t file = H5Fopen(d->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    /* a stored row: game_id, then the string's length (4), heap collection
     * address (8) and index (4) */
    size_t row_bytes = 8 + 16;
    hsize_t nc = n_chunks(file, "/messages");
    assert_int_equal(nc, (N_ROWS + CHUNK_ROWS - 1) / CHUNK_ROWS);
    struct bz_zchunk *z = bz_zchunk_create();
    assert_non_null(z);
    size_t raw_cap = CHUNK_ROWS * row_bytes;
    unsigned char *raw = malloc(raw_cap), *again = malloc(bz_zpool_bound(raw_cap));
    assert_true(raw && again);
    for (hsize_t k = 0; k < nc; k++) {
        size_t n = 0;
        unsigned mask = 1;
        haddr_t addr = 0;
        unsigned char *c = stored_chunk(file, "/messages", k, &n, &mask, &addr);
        assert_int_equal(mask, 0);
        assert_true(n > 4);
        assert_int_equal(le32(c + n - 4), H5_checksum_fletcher32(c, n - 4));
        uLongf rl = (uLongf)raw_cap;
        assert_int_equal(uncompress(raw, &rl, c, (uLong)(n - 4)), Z_OK);
        assert_int_equal(rl, raw_cap); /* a whole chunk, also the last one */
        /* the stream is the merge's compressor's at level 1 */
        size_t zl = 0;
        assert_int_equal(bz_zpool_deflate(z, 1, raw, rl, again, bz_zpool_bound(raw_cap), &zl), 0);
        assert_int_equal(zl, n - 4);
        assert_memory_equal(again, c, zl);
        free(c);
    }
    free(raw);
    free(again);
    bz_zchunk_destroy(z);
    H5Fclose(file);
    remove_tmp_file(d->path);
}

/* Level 9 is zlib's level 9, byte for byte; a chunk deflate cannot shrink
 * is stored as stored blocks, not skipped (HDF5 1.10 allows the stream
 * 0.1% + 12 bytes over the rows). */
static void test_levels_and_overflow(void **state)
{
    struct data *d = *state;
    tmp_path(d->path, sizeof d->path, "levels.h5");
    write_file(d->path, d->rows, d->ints, d->noise);
    int32_t *ints = calloc(N_INTS, sizeof *ints);
    assert_non_null(ints);
    assert_true(read_all(d->path, "/ints9", H5T_NATIVE_INT32, ints, H5P_DEFAULT) >= 0);
    assert_memory_equal(ints, d->ints, sizeof d->ints);
    free(ints);

    hid_t file = H5Fopen(d->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hsize_t nc = n_chunks(file, "/ints9");
    assert_int_equal(nc, (N_INTS + INT_CHUNK - 1) / INT_CHUNK);
    uLongf cap = compressBound(INT_CHUNK * 4);
    unsigned char *want = malloc(cap);
    int32_t *whole = calloc(INT_CHUNK, 4);
    assert_true(want && whole);
    for (hsize_t k = 0; k < nc; k++) {
        size_t n = 0, rows = N_INTS - k * INT_CHUNK;
        unsigned mask = 1;
        haddr_t addr = 0;
        unsigned char *c = stored_chunk(file, "/ints9", k, &n, &mask, &addr);
        assert_int_equal(mask, 0);
        memset(whole, 0, INT_CHUNK * 4);
        memcpy(whole, d->ints + k * INT_CHUNK, (rows < INT_CHUNK ? rows : INT_CHUNK) * 4);
        uLongf wl = cap;
        assert_int_equal(compress2(want, &wl, (const Bytef *)whole, INT_CHUNK * 4, 9), Z_OK);
        assert_int_equal(wl, n - 4);
        assert_memory_equal(want, c, wl);
        assert_int_equal(le32(c + n - 4), H5_checksum_fletcher32(c, n - 4));
        free(c);
    }
    free(want);
    free(whole);

    size_t n = 0;
    unsigned mask = 0;
    haddr_t addr = 0;
    unsigned char *c = stored_chunk(file, "/noise", 0, &n, &mask, &addr);
    /* deflate kept although larger than the rows (stored blocks: the zlib
     * header, block headers, Adler-32), as HDF5 1.10's filter keeps it */
    assert_int_equal(mask, 0);
    assert_true(n - 4 > INT_CHUNK && n - 4 <= INT_CHUNK + INT_CHUNK / 1000 + 13);
    unsigned char plain[INT_CHUNK];
    uLongf pl = sizeof plain;
    assert_int_equal(uncompress(plain, &pl, c, (uLong)(n - 4)), Z_OK);
    assert_int_equal(pl, INT_CHUNK);
    assert_memory_equal(plain, d->noise, INT_CHUNK);
    assert_int_equal(le32(c + n - 4), H5_checksum_fletcher32(c, n - 4));
    free(c);
    H5Fclose(file);
    unsigned char back[INT_CHUNK];
    assert_true(read_all(d->path, "/noise", H5T_NATIVE_UINT8, back, H5P_DEFAULT) >= 0);
    assert_memory_equal(back, d->noise, INT_CHUNK);
    remove_tmp_file(d->path);
}

/* HDF5's error message for a read that failed, innermost first. */
static void read_error(const char *path, const char *name, hid_t type, void *buf, hid_t dxpl,
                       const char *want)
{
    struct bz_err err = {0};
    assert_true(read_all_err(path, name, type, buf, dxpl, &err) < 0);
    if (!strstr(err.msg, want))
        fail_msg("%s: \"%s\" does not say %s", name, err.msg, want);
}

/* A flipped byte in a stored chunk of the strings table: the read fails
 * on the checksum. In /ints9: the same, and with checksums off
 * (H5Z_DISABLE_EDC) on the stream's Adler-32; a checksum stored the
 * pre-1.6.3 way is accepted; a wrong checksum over intact data reads with
 * checksums off. */
static void test_corruption_refused(void **state)
{
    struct data *d = *state;
    tmp_path(d->path, sizeof d->path, "corrupt.h5");
    write_file(d->path, d->rows, d->ints, d->noise);
    hid_t file = H5Fopen(d->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    size_t sn = 0, in = 0;
    unsigned mask = 0;
    haddr_t saddr = 0, iaddr = 0;
    unsigned char *sc = stored_chunk(file, "/messages", 1, &sn, &mask, &saddr);
    unsigned char *ic = stored_chunk(file, "/ints9", 0, &in, &mask, &iaddr);
    H5Fclose(file);

    hid_t t = srow_type();
    struct srow *rows = calloc(N_ROWS, sizeof *rows);
    int32_t *ints = calloc(N_INTS, sizeof *ints);
    assert_true(rows && ints);
    unsigned char b = sc[sn / 2] ^ 0x10;
    patch(d->path, saddr + sn / 2, &b, 1);
    read_error(d->path, "/messages", t, rows, H5P_DEFAULT, "Fletcher32");
    hsize_t dims = N_ROWS;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    H5Dvlen_reclaim(t, space, H5P_DEFAULT, rows); /* chunk 0's strings were read */
    memset(rows, 0, N_ROWS * sizeof *rows);
    patch(d->path, saddr + sn / 2, &sc[sn / 2], 1); /* repaired: reads again */
    assert_true(read_all(d->path, "/messages", t, rows, H5P_DEFAULT) >= 0);
    assert_string_equal(rows[N_ROWS - 1].text, d->rows[N_ROWS - 1].text);
    H5Dvlen_reclaim(t, space, H5P_DEFAULT, rows);
    H5Sclose(space);

    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    assert_true(H5Pset_edc_check(dxpl, H5Z_DISABLE_EDC) >= 0);
    b = ic[in / 2] ^ 0x01;
    patch(d->path, iaddr + in / 2, &b, 1);
    read_error(d->path, "/ints9", H5T_NATIVE_INT32, ints, H5P_DEFAULT, "Fletcher32");
    read_error(d->path, "/ints9", H5T_NATIVE_INT32, ints, dxpl, "inflate");
    patch(d->path, iaddr + in / 2, &ic[in / 2], 1);

    uint32_t sum = H5_checksum_fletcher32(ic, in - 4);
    uint32_t old = (sum & 0x00ff00ffu) << 8 | (sum >> 8 & 0x00ff00ffu);
    unsigned char le[4];
    bz_out_fletcher32_put(le, old);
    patch(d->path, iaddr + in - 4, le, 4);
    memset(ints, 0, N_INTS * sizeof *ints);
    assert_true(read_all(d->path, "/ints9", H5T_NATIVE_INT32, ints, H5P_DEFAULT) >= 0);
    assert_memory_equal(ints, d->ints, sizeof d->ints);

    bz_out_fletcher32_put(le, sum ^ 0x80000000u);
    patch(d->path, iaddr + in - 4, le, 4);
    read_error(d->path, "/ints9", H5T_NATIVE_INT32, ints, H5P_DEFAULT, "Fletcher32");
    memset(ints, 0, N_INTS * sizeof *ints);
    assert_true(read_all(d->path, "/ints9", H5T_NATIVE_INT32, ints, dxpl) >= 0);
    assert_memory_equal(ints, d->ints, sizeof d->ints);

    H5Pclose(dxpl);
    H5Tclose(t);
    free(rows);
    free(ints);
    free(sc);
    free(ic);
    remove_tmp_file(d->path);
}

/* bz_zpool_inflate grows a too small output, and refuses a truncated
 * stream, a wrong Adler-32 and bytes that are not a zlib stream. */
static void test_inflate(void **state)
{
    struct data *d = *state;
    struct bz_zchunk *z = bz_zchunk_create();
    assert_non_null(z);
    const unsigned char *src = (const unsigned char *)d->ints;
    size_t len = sizeof d->ints, zcap = bz_zpool_bound(len), zl = 0;
    unsigned char *zs = malloc(zcap);
    assert_non_null(zs);
    assert_int_equal(bz_zpool_deflate(z, 1, src, len, zs, zcap, &zl), 0);
    for (int level = 0; level <= 9; level += 3) { /* any level: zlib decodes it */
        size_t l = 0;
        assert_int_equal(bz_zpool_deflate(z, level, src, len, zs, zcap, &l), 0);
        unsigned char *plain = malloc(len);
        uLongf pl = (uLongf)len;
        assert_int_equal(uncompress(plain, &pl, zs, (uLong)l), Z_OK);
        assert_int_equal(pl, len);
        assert_memory_equal(plain, src, len);
        free(plain);
    }
    assert_int_equal(bz_zpool_deflate(z, 1, src, len, zs, zcap, &zl), 0);

    size_t cap = 1, n = 0;
    unsigned char *out = malloc(cap);
    assert_int_equal(bz_zpool_inflate(z, zs, zl, &out, &cap, &n, realloc), 0);
    assert_int_equal(n, len);
    assert_true(cap >= len);
    assert_memory_equal(out, src, len);

    assert_int_equal(bz_zpool_inflate(z, zs, zl - 5, &out, &cap, &n, realloc), -1);
    zs[zl - 1] ^= 0x01; /* the Adler-32's last byte */
    assert_int_equal(bz_zpool_inflate(z, zs, zl, &out, &cap, &n, realloc), -1);
    zs[zl - 1] ^= 0x01;
    zs[0] ^= 0x0f; /* not a zlib header */
    assert_int_equal(bz_zpool_inflate(z, zs, zl, &out, &cap, &n, realloc), -1);
    zs[0] ^= 0x0f;
    assert_int_equal(bz_zpool_inflate(z, zs, zl, &out, &cap, &n, realloc), 0);
    assert_int_equal(n, len);
    free(out);
    free(zs);
    bz_zchunk_destroy(z);
}

int main(void)
{
    bz_out_h5_quiet();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_installed),
        cmocka_unit_test(test_strings_round_trip),
        cmocka_unit_test(test_levels_and_overflow),
        cmocka_unit_test(test_corruption_refused),
        cmocka_unit_test(test_inflate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
