/* out_zpool: compresses whole chunks of a merged table on worker threads, as
 * HDF5's own filter pipeline of the merged file would (deflate, then a
 * Fletcher32 checksum), so that the merge can store them with a direct chunk
 * write; before that they may read (pread) the stored shard chunks whose
 * rows fill the chunks, check their Fletcher32 and copy the rows. The same
 * one-chunk compression serves a shard writer of the virtual layout
 * (bz_zpool_compress_chunk, in the caller's thread). Private
 * to src/out_*.c. Calls no HDF5 function (HDF5 is not built thread-safe):
 * the threads see only byte buffers and file offsets HDF5 gave the merge. */
#ifndef BAZAAR_OUT_ZPOOL_H
#define BAZAAR_OUT_ZPOOL_H

#include <stddef.h>
#include <stdint.h>

/* The deflate level of the merged file (HDF5's deflate filter reads any
 * zlib stream; the level is recorded in the dataset's filter parameters). */
#define BZ_ZPOOL_LEVEL 1

struct bz_zpool;

/* A stored shard chunk to read before compressing: size bytes (rows, then
 * their Fletcher32) at offset addr of the file path, checked against the
 * checksum, then copies[first_copy .. first_copy + n_copies) copy rows of
 * it into the batch's input. row: its first row (for messages). */
struct bz_zread {
    const char *path;
    uint64_t addr, row;
    size_t size, first_copy, n_copies;
};

/* len bytes from offset src of a read chunk to offset dst of the input;
 * reps > 1: reps such pieces, the k-th from src + k * step to dst + k * len
 * (a column of the chunk's rows, packed). */
struct bz_zcopy {
    size_t src, dst, len;
    size_t reps, step;
};

/* n_chunks chunks of chunk_bytes each, read from in; chunk k's filtered
 * bytes land in out + k * out_cap with their length in out_len[k]. Before
 * any chunk is compressed, reads[0..n_reads) fill their rows of in
 * (pread(2) by the threads: the bytes of files HDF5 wrote, never HDF5).
 * A batch of reads only (n_chunks 0) runs on the threads too. */
struct bz_zbatch {
    unsigned char *in;
    struct bz_zread *reads;
    size_t n_reads, cap_reads;
    struct bz_zcopy *copies;
    size_t n_copies, cap_copies;
    /* set by the pool when a read failed: the first such read (index, or
     * n_reads for none) and its errno (0: the checksum did not match) */
    size_t bad_read;
    int read_errno;
    size_t n_chunks;
    size_t chunk_bytes;
    unsigned char *out;
    size_t out_cap;
    size_t *out_len;
    /* owned by the pool while the batch runs */
    size_t next, done, next_read, reads_done;
    struct bz_zbatch *qnext; /* the next batch submitted */
    int queued;              /* submitted, not done */
    int failed;
    double cpu_seconds; /* CPU the batch's chunks took, summed over threads */
};

/* Bytes one filtered chunk of chunk_bytes may take (the batch's out_cap). */
size_t bz_zpool_bound(size_t chunk_bytes);

/* One compressor (the deflate library's work memory, about 300 KB with
 * ISA-L): for one thread at a time. NULL: no memory. Free with
 * bz_zchunk_destroy (NULL is fine). */
struct bz_zchunk;
struct bz_zchunk *bz_zchunk_create(void);
void bz_zchunk_destroy(struct bz_zchunk *z);

/* One chunk as HDF5's filter pipeline deflate (BZ_ZPOOL_LEVEL, no shuffle)
 * then Fletcher32 stores it: a zlib stream of in's len bytes, then the
 * stream's Fletcher32, into out (cap >= bz_zpool_bound(len)); *out_len: the
 * bytes written, stored with H5Dwrite_chunk and filter mask 0. What the
 * pool's threads and the shard writer (virtual layout) both run. 0, or -1
 * (cap too small, the compressor failed). */
int bz_zpool_compress_chunk(struct bz_zchunk *z, const unsigned char *in, size_t len,
                            unsigned char *out, size_t cap, size_t *out_len);

/* A zlib stream (no checksum) of in's len bytes at deflate level (0-9) into
 * out (cap bytes): level BZ_ZPOOL_LEVEL through z's compressor (ISA-L,
 * libdeflate), any other level, or when that one has no room, through
 * zlib's compress2 at that level (HDF5's deflate filter). *out_len: the
 * stream's bytes. 0, or -1 (it does not fit in cap, a bad level). */
int bz_zpool_deflate(struct bz_zchunk *z, int level, const unsigned char *in, size_t len,
                     unsigned char *out, size_t cap, size_t *out_len);

/* Decompress the zlib stream in (len bytes) into *out, of *cap bytes,
 * doubled through resize (realloc-like: the new block or NULL, the old one
 * kept) while it is full; checks the stream's Adler-32 (ISA-L's inflate,
 * else zlib's). *out_len: the bytes decompressed. 0, -1 (not a whole valid
 * zlib stream, a dictionary needed, a wrong Adler-32) or -2 (no memory);
 * on failure *out, *cap are still the caller's to free. */
int bz_zpool_inflate(struct bz_zchunk *z, const unsigned char *in, size_t len, unsigned char **out,
                     size_t *cap, size_t *out_len, void *(*resize)(void *, size_t));

/* A pool of n_threads workers (n_threads <= 1: none; batches are
 * compressed by bz_zpool_wait in the caller's thread). 0 or -1 (no memory,
 * no thread). */
int bz_zpool_create(int n_threads, struct bz_zpool **pool);

/* Add to b's reads one chunk (of path at addr, size bytes, first row
 * row) whose bytes [src, src + len) go to in + dst; a copy from the same
 * chunk as the last read adds no read. 0 or -1 (no memory). */
int bz_zbatch_add_copy(struct bz_zbatch *b, const char *path, uint64_t addr, size_t size,
                       uint64_t row, size_t src, size_t dst, size_t len);

/* Add to b's reads one chunk (as bz_zbatch_add_copy) whose column of reps
 * pieces of len bytes, at src, src + step, ..., lands packed at in + dst. */
int bz_zbatch_add_column(struct bz_zbatch *b, const char *path, uint64_t addr, size_t size,
                         uint64_t row, size_t src, size_t step, size_t reps, size_t dst,
                         size_t len);

/* Add to b's reads one chunk that is only checked (its Fletcher32), not
 * copied. 0 or -1 (no memory). */
int bz_zbatch_add_check(struct bz_zbatch *b, const char *path, uint64_t addr, size_t size,
                        uint64_t row);

/* Forget b's reads (after bz_zpool_wait) and free their arrays (free: 1). */
void bz_zbatch_reset_reads(struct bz_zbatch *b, int free_them);

/* Start reading and compressing b in the background, after the batches
 * submitted before it (the threads take work from the first batch that has
 * some); _first: before them (a batch the caller waits for at once). Any
 * number of batches may run; a batch is submitted again only once waited
 * for. */
void bz_zpool_submit(struct bz_zpool *pool, struct bz_zbatch *b);
void bz_zpool_submit_first(struct bz_zpool *pool, struct bz_zbatch *b);

/* Wait until b is done. 0, or -1 when a chunk could not be compressed,
 * -2 when a read failed (b->bad_read, b->read_errno say which and why). */
int bz_zpool_wait(struct bz_zpool *pool, struct bz_zbatch *b);

/* Whether a stored chunk of len bytes (filtered data, then its Fletcher32)
 * carries the checksum of its data: 1 yes, 0 no. */
int bz_zpool_chunk_ok(const unsigned char *chunk, size_t len);

/* A pool of exactly n_workers >= 1 background threads (bz_zpool_create
 * makes none for 1), each at nice + its process's nice (a CPU's idle time:
 * they yield to the play); bz_zpool_wait only waits. 0 or -1. */
int bz_zpool_create_workers(int n_workers, int nice, struct bz_zpool **pool);

/* 1 when b (submitted to a pool with workers) is done: bz_zpool_wait would
 * not block. */
int bz_zpool_done(struct bz_zpool *p, struct bz_zbatch *b);

/* Stop and join the workers (every batch submitted waited for). NULL is fine. */
void bz_zpool_destroy(struct bz_zpool *pool);

/* Worker threads for the merge: BZ_MERGE_THREADS when set (>= 1), else the
 * number of CPUs this thread may run on (sched_getaffinity), at most 64. */
int bz_zpool_default_threads(void);

#endif
