/* out_zpool: compresses whole chunks of a merged table on worker threads, as
 * HDF5's own filter pipeline of the merged file would (deflate, then a
 * Fletcher32 checksum), so that the merge can store them with a direct chunk
 * write. Private to src/out_*.c. Calls no HDF5 function (HDF5 is not built
 * thread-safe): the threads see only byte buffers. */
#ifndef BAZAAR_OUT_ZPOOL_H
#define BAZAAR_OUT_ZPOOL_H

#include <stddef.h>

/* The deflate level of the merged file (HDF5's deflate filter reads any
 * zlib stream; the level is recorded in the dataset's filter parameters). */
#define BZ_ZPOOL_LEVEL 1

struct bz_zpool;

/* n_chunks chunks of chunk_bytes each, read from in; chunk k's filtered
 * bytes land in out + k * out_cap with their length in out_len[k]. */
struct bz_zbatch {
    const unsigned char *in;
    size_t n_chunks;
    size_t chunk_bytes;
    unsigned char *out;
    size_t out_cap;
    size_t *out_len;
    /* owned by the pool while the batch runs */
    size_t next, done;
    int failed;
    double cpu_seconds; /* CPU the batch's chunks took, summed over threads */
};

/* Bytes one filtered chunk of chunk_bytes may take (the batch's out_cap). */
size_t bz_zpool_bound(size_t chunk_bytes);

/* A pool of n_threads workers (n_threads <= 1: none; batches are
 * compressed by bz_zpool_wait in the caller's thread). 0 or -1 (no memory,
 * no thread). */
int bz_zpool_create(int n_threads, struct bz_zpool **pool);

/* Start compressing b in the background; one batch at a time (wait for it
 * before submitting the next). */
void bz_zpool_submit(struct bz_zpool *pool, struct bz_zbatch *b);

/* Wait until b is done. 0, or -1 when a chunk could not be compressed. */
int bz_zpool_wait(struct bz_zpool *pool, struct bz_zbatch *b);

/* Whether a stored chunk of len bytes (filtered data, then its Fletcher32)
 * carries the checksum of its data: 1 yes, 0 no. */
int bz_zpool_chunk_ok(const unsigned char *chunk, size_t len);

/* Stop and join the workers (no batch may be running). NULL is fine. */
void bz_zpool_destroy(struct bz_zpool *pool);

/* Worker threads for the merge: BZ_MERGE_THREADS when set (>= 1), else the
 * number of CPUs this thread may run on (sched_getaffinity), at most 64. */
int bz_zpool_default_threads(void);

#endif
