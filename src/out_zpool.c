/* out_zpool: reads of stored shard chunks (pread, Fletcher32 check, row
 * copies or a column of the rows), then deflate + Fletcher32 of whole
 * chunks, on worker threads, for any number of batches queued (see
 * out_zpool.h). Owns the byte layout of a filtered chunk, which must stay
 * exactly what HDF5's filters (H5Z_filter_deflate, H5Z_filter_fletcher32)
 * expect on read. Must never call HDF5: the library is not thread-safe. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h> /* setpriority */
#include <sys/syscall.h>  /* SYS_gettid */
#include <time.h>
#include <unistd.h>

#include "out_fletcher.h"
#include "out_zpool.h"

#include <zlib.h> /* always: the fallback when a chunk does not fit */
#if defined(BZ_HAVE_ISAL)
#include <isa-l/igzip_lib.h>
#elif defined(BZ_HAVE_LIBDEFLATE)
#include <libdeflate.h>
#endif

#define FLETCHER_LEN 4

struct bz_zpool {
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    pthread_t *threads;
    int n_threads, quit;
    int nice;                      /* the workers' nice increment (bz_zpool_create_workers) */
    struct bz_zbatch *head, *tail; /* the batches submitted and not done, in order */
};

size_t bz_zpool_bound(size_t chunk_bytes)
{
    /* above zlib's compressBound (the fallback) and ISA-L's stored blocks */
    return chunk_bytes + (chunk_bytes >> 7) + 1024 + FLETCHER_LEN;
}

/* One compressor's work memory: ISA-L's igzip (about 2x libdeflate's speed
 * at level 1 on these rows, same ratio), else libdeflate, else zlib. All
 * write zlib streams, which HDF5's deflate filter reads. */
struct bz_zchunk {
#if defined(BZ_HAVE_ISAL)
    unsigned char *level_buf;
    struct inflate_state *inflate; /* bz_zpool_inflate's, made on first use */
#elif defined(BZ_HAVE_LIBDEFLATE)
    struct libdeflate_compressor *c;
#else
    int unused;
#endif
};

static int zstate_init(struct bz_zchunk *z)
{
#if defined(BZ_HAVE_ISAL)
    z->level_buf = malloc(ISAL_DEF_LVL1_DEFAULT);
    z->inflate = NULL;
    return z->level_buf ? 0 : -1;
#elif defined(BZ_HAVE_LIBDEFLATE)
    z->c = libdeflate_alloc_compressor(BZ_ZPOOL_LEVEL);
    return z->c ? 0 : -1;
#else
    (void)z;
    return 0;
#endif
}

static void zstate_free(struct bz_zchunk *z)
{
#if defined(BZ_HAVE_ISAL)
    free(z->level_buf);
    free(z->inflate);
#elif defined(BZ_HAVE_LIBDEFLATE)
    libdeflate_free_compressor(z->c);
#else
    (void)z;
#endif
}

struct bz_zchunk *bz_zchunk_create(void)
{
    struct bz_zchunk *z = malloc(sizeof *z);
    if (z && zstate_init(z) != 0) {
        free(z);
        z = NULL;
    }
    return z;
}

void bz_zchunk_destroy(struct bz_zchunk *z)
{
    if (!z)
        return;
    zstate_free(z);
    free(z);
}

/* The zlib stream: level BZ_ZPOOL_LEVEL through the fastest library built
 * in, falling back to zlib when it fails (no room); any other level through
 * zlib's compress2, as HDF5's own deflate filter does. */
int bz_zpool_deflate(struct bz_zchunk *z, int level, const unsigned char *in, size_t len,
                     unsigned char *out, size_t cap, size_t *out_len)
{
    size_t zlen = 0;
    *out_len = 0;
    if (level < 0 || level > 9 || len > UINT32_MAX)
        return -1;
    if (level == BZ_ZPOOL_LEVEL) {
#if defined(BZ_HAVE_ISAL)
        struct isal_zstream zs;
        isal_deflate_stateless_init(&zs);
        zs.level = BZ_ZPOOL_LEVEL;
        zs.level_buf = z->level_buf;
        zs.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
        zs.gzip_flag = IGZIP_ZLIB;
        zs.next_in = (uint8_t *)(uintptr_t)in;
        zs.avail_in = (uint32_t)len;
        zs.next_out = out;
        zs.avail_out = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
        zs.end_of_stream = 1;
        zs.flush = NO_FLUSH;
        if (isal_deflate_stateless(&zs) == COMP_OK)
            zlen = zs.total_out;
#elif defined(BZ_HAVE_LIBDEFLATE)
        zlen = libdeflate_zlib_compress(z->c, in, len, out, cap);
#else
        (void)z;
#endif
    }
    if (zlen == 0) {
        uLongf n = (uLongf)cap;
        if (compress2(out, &n, in, (uLong)len, level) != Z_OK)
            return -1;
        zlen = (size_t)n;
    }
    *out_len = zlen;
    return 0;
}

/* zlib's inflate, as HDF5's deflate filter runs it (Z_SYNC_FLUSH, the
 * output doubled when full). */
static int inflate_zlib(const unsigned char *in, size_t len, unsigned char **out, size_t *cap,
                        size_t *out_len, void *(*resize)(void *, size_t))
{
    z_stream s;
    int rc = -1;
    memset(&s, 0, sizeof s);
    if (len > UINT32_MAX || *cap > UINT32_MAX)
        return -1;
    s.next_in = (Bytef *)(uintptr_t)in;
    s.avail_in = (uInt)len;
    s.next_out = *out;
    s.avail_out = (uInt)*cap;
    if (inflateInit(&s) != Z_OK)
        return -2;
    for (;;) {
        int st = inflate(&s, Z_SYNC_FLUSH);
        if (st == Z_STREAM_END) {
            rc = 0;
            break;
        }
        if (st != Z_OK)
            break; /* also Z_BUF_ERROR: the stream ends before its end */
        if (s.avail_out == 0) {
            size_t ncap = 2 * *cap;
            unsigned char *nb = ncap > UINT32_MAX ? NULL : resize(*out, ncap);
            if (!nb) {
                rc = -2;
                break;
            }
            *out = nb;
            *cap = ncap;
            s.next_out = nb + s.total_out;
            s.avail_out = (uInt)(ncap - s.total_out);
        }
    }
    *out_len = s.total_out;
    inflateEnd(&s);
    return rc;
}

int bz_zpool_inflate(struct bz_zchunk *z, const unsigned char *in, size_t len, unsigned char **out,
                     size_t *cap, size_t *out_len, void *(*resize)(void *, size_t))
{
    *out_len = 0;
    if (*cap == 0)
        return -1;
#if defined(BZ_HAVE_ISAL)
    /* ISA-L's inflate checks the zlib header and the Adler-32 at the end
     * (crc_flag ISAL_ZLIB) as zlib's does. */
    if (len > UINT32_MAX || *cap > UINT32_MAX)
        return inflate_zlib(in, len, out, cap, out_len, resize);
    if (!z->inflate && !(z->inflate = malloc(sizeof *z->inflate)))
        return -2;
    struct inflate_state *st = z->inflate;
    isal_inflate_init(st);
    st->crc_flag = ISAL_ZLIB;
    st->next_in = (uint8_t *)(uintptr_t)in;
    st->avail_in = (uint32_t)len;
    st->next_out = *out;
    st->avail_out = (uint32_t)*cap;
    for (;;) {
        uint32_t in0 = st->avail_in, out0 = st->avail_out;
        int rc = isal_inflate(st);
        if (rc < 0 || rc == ISAL_NEED_DICT) /* a dictionary: zlib's uncompress fails too */
            return -1;
        if (st->block_state == ISAL_BLOCK_FINISH)
            break;
        if (st->avail_in == in0 && st->avail_out == out0 && out0 != 0)
            return -1; /* no progress */
        if (st->avail_out == 0) {
            size_t ncap = 2 * *cap;
            unsigned char *nb = ncap > UINT32_MAX ? NULL : resize(*out, ncap);
            if (!nb)
                return -2;
            *out = nb;
            *cap = ncap;
            st->next_out = nb + st->total_out;
            st->avail_out = (uint32_t)(ncap - st->total_out);
        } else if (st->avail_in == 0) {
            return -1; /* the stream ends before its end */
        }
    }
    *out_len = st->total_out;
    return 0;
#else
    (void)z;
    return inflate_zlib(in, len, out, cap, out_len, resize);
#endif
}

/* A zlib stream, then its Fletcher32, little-endian (the order of HDF5's
 * pipeline: deflate first, checksum last). */
int bz_zpool_compress_chunk(struct bz_zchunk *z, const unsigned char *in, size_t len,
                            unsigned char *out, size_t cap, size_t *out_len)
{
    size_t zlen = 0;
    *out_len = 0;
    if (cap < bz_zpool_bound(len) || len > UINT32_MAX)
        return -1;
    if (bz_zpool_deflate(z, BZ_ZPOOL_LEVEL, in, len, out, cap - FLETCHER_LEN, &zlen) != 0)
        return -1;
    bz_out_fletcher32_put(out + zlen, bz_out_fletcher32(out, zlen));
    *out_len = zlen + FLETCHER_LEN;
    return 0;
}

/* Chunk k of b. */
static int compress_one(struct bz_zchunk *z, struct bz_zbatch *b, size_t k)
{
    return bz_zpool_compress_chunk(z, b->in + k * b->chunk_bytes, b->chunk_bytes,
                                   b->out + k * b->out_cap, b->out_cap, &b->out_len[k]);
}

int bz_zpool_chunk_ok(const unsigned char *chunk, size_t len)
{
    if (len < FLETCHER_LEN)
        return 0;
    uint32_t sum = bz_out_fletcher32(chunk, len - FLETCHER_LEN), stored = 0;
    for (int i = 0; i < FLETCHER_LEN; i++)
        stored |= (uint32_t)chunk[len - FLETCHER_LEN + (size_t)i] << (8 * i);
    return sum == stored;
}

/* Room for one more element in *v (n used of *cap, each size bytes). */
static int grow(void *v, size_t n, size_t *cap, size_t size)
{
    void **pv = v;
    if (n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 64;
    void *nv = realloc(*pv, c * size);
    if (!nv)
        return -1;
    *pv = nv;
    *cap = c;
    return 0;
}

static int add_copy(struct bz_zbatch *b, const char *path, uint64_t addr, size_t size, uint64_t row,
                    const struct bz_zcopy *cp)
{
    struct bz_zread *last = b->n_reads ? &b->reads[b->n_reads - 1] : NULL;
    if (!last || last->path != path || last->addr != addr) {
        if (grow(&b->reads, b->n_reads, &b->cap_reads, sizeof *b->reads) != 0)
            return -1;
        last = &b->reads[b->n_reads++];
        *last = (struct bz_zread){path, addr, row, size, b->n_copies, 0};
    }
    if (grow(&b->copies, b->n_copies, &b->cap_copies, sizeof *b->copies) != 0)
        return -1;
    b->copies[b->n_copies++] = *cp;
    last->n_copies++;
    return 0;
}

int bz_zbatch_add_check(struct bz_zbatch *b, const char *path, uint64_t addr, size_t size,
                        uint64_t row)
{
    if (grow(&b->reads, b->n_reads, &b->cap_reads, sizeof *b->reads) != 0)
        return -1;
    b->reads[b->n_reads++] = (struct bz_zread){path, addr, row, size, b->n_copies, 0};
    return 0;
}

int bz_zbatch_add_copy(struct bz_zbatch *b, const char *path, uint64_t addr, size_t size,
                       uint64_t row, size_t src, size_t dst, size_t len)
{
    return add_copy(b, path, addr, size, row, &(struct bz_zcopy){src, dst, len, 1, 0});
}

int bz_zbatch_add_column(struct bz_zbatch *b, const char *path, uint64_t addr, size_t size,
                         uint64_t row, size_t src, size_t step, size_t reps, size_t dst, size_t len)
{
    return add_copy(b, path, addr, size, row, &(struct bz_zcopy){src, dst, len, reps, step});
}

void bz_zbatch_reset_reads(struct bz_zbatch *b, int free_them)
{
    b->n_reads = b->n_copies = 0;
    if (free_them) {
        free(b->reads);
        free(b->copies);
        b->reads = NULL;
        b->copies = NULL;
        b->cap_reads = b->cap_copies = 0;
    }
}

/* A thread's state for reads: one file kept open (reads come grouped by
 * file) and a buffer for one chunk. */
struct rstate {
    const char *path;
    int fd;
    unsigned char *buf;
    size_t cap;
};

static void rstate_close(struct rstate *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->path = NULL;
}

/* Read k of b: its chunk's bytes, checked, rows copied into b->in. 0, an
 * errno, or -1 when the checksum does not match. */
static int read_one(struct rstate *r, struct bz_zbatch *b, size_t k)
{
    const struct bz_zread *rd = &b->reads[k];
    if (r->path != rd->path) {
        rstate_close(r);
        if ((r->fd = open(rd->path, O_RDONLY | O_CLOEXEC)) < 0)
            return errno ? errno : EIO;
        r->path = rd->path;
    }
    if (r->cap < rd->size) {
        unsigned char *nb = realloc(r->buf, rd->size);
        if (!nb)
            return ENOMEM;
        r->buf = nb;
        r->cap = rd->size;
    }
    for (size_t got = 0; got < rd->size;) {
        ssize_t n = pread(r->fd, r->buf + got, rd->size - got, (off_t)(rd->addr + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO; /* 0: the file ends before the chunk */
        got += (size_t)n;
    }
    if (!bz_zpool_chunk_ok(r->buf, rd->size))
        return -1;
    for (size_t c = rd->first_copy; c < rd->first_copy + rd->n_copies; c++) {
        const struct bz_zcopy *cp = &b->copies[c];
        size_t reps = cp->reps ? cp->reps : 1;
        if (cp->src + (reps - 1) * cp->step + cp->len > rd->size - FLETCHER_LEN)
            return -1;
        if (reps == 1) {
            memcpy(b->in + cp->dst, r->buf + cp->src, cp->len);
            continue;
        }
        for (size_t j = 0; j < reps; j++)
            memcpy(b->in + cp->dst + j * cp->len, r->buf + cp->src + j * cp->step, cp->len);
    }
    return 0;
}

/* A read failed: keep the first (lowest index) for the message. */
static void read_failed(struct bz_zbatch *b, size_t k, int e)
{
    if (k < b->bad_read) {
        b->bad_read = k;
        b->read_errno = e < 0 ? 0 : e;
    }
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The first batch of the queue with a read or a chunk to hand out (a
 * batch's chunks only once its reads are done); *read: it is a read. */
static struct bz_zbatch *find_work(struct bz_zpool *p, int *read)
{
    for (struct bz_zbatch *b = p->head; b; b = b->qnext) {
        if (b->next_read < b->n_reads) {
            *read = 1;
            return b;
        }
        if (b->reads_done == b->n_reads && b->next < b->n_chunks) {
            *read = 0;
            return b;
        }
    }
    return NULL;
}

/* b is done if its last read and chunk are: out of the queue, waiters woken. */
static void maybe_done(struct bz_zpool *p, struct bz_zbatch *b)
{
    if (b->reads_done < b->n_reads || b->done < b->n_chunks)
        return;
    struct bz_zbatch **pp = &p->head, *prev = NULL;
    while (*pp && *pp != b) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp) {
        *pp = b->qnext;
        if (p->tail == b)
            p->tail = prev;
    }
    b->qnext = NULL;
    b->queued = 0;
    pthread_cond_broadcast(&p->idle);
}

static void *worker(void *arg)
{
    struct bz_zpool *p = arg;
    struct bz_zchunk z;
    struct rstate rs = {NULL, -1, NULL, 0};
    int ok = zstate_init(&z) == 0;
    if (p->nice) /* this thread only (Linux: a thread's own priority) */
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->nice);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct bz_zbatch *b = NULL;
        int is_read = 0;
        while (!p->quit && !(b = find_work(p, &is_read))) {
            if (rs.fd >= 0) { /* idle: close the file */
                pthread_mutex_unlock(&p->mu);
                rstate_close(&rs);
                pthread_mutex_lock(&p->mu);
                continue;
            }
            pthread_cond_wait(&p->work, &p->mu);
        }
        if (p->quit)
            break;
        if (is_read) { /* reads first: they fill the input */
            size_t k = b->next_read++;
            pthread_mutex_unlock(&p->mu);
            double c0 = thread_cpu_s();
            int e = read_one(&rs, b, k);
            double c1 = thread_cpu_s();
            pthread_mutex_lock(&p->mu);
            b->cpu_seconds += c1 - c0;
            if (e)
                read_failed(b, k, e);
            if (++b->reads_done == b->n_reads) {
                pthread_cond_broadcast(&p->work); /* the chunks may be compressed */
                maybe_done(p, b);                 /* reads only */
            }
            continue;
        }
        size_t k = b->next++;
        pthread_mutex_unlock(&p->mu);
        double c0 = thread_cpu_s();
        int bad = !ok || compress_one(&z, b, k) != 0;
        double c1 = thread_cpu_s();
        pthread_mutex_lock(&p->mu);
        b->cpu_seconds += c1 - c0;
        if (bad)
            b->failed = 1;
        if (++b->done == b->n_chunks)
            maybe_done(p, b);
    }
    pthread_mutex_unlock(&p->mu);
    rstate_close(&rs);
    free(rs.buf);
    if (ok)
        zstate_free(&z);
    return NULL;
}

static int create(int n_threads, int min, int nice, struct bz_zpool **pool);

int bz_zpool_create(int n_threads, struct bz_zpool **pool)
{
    return create(n_threads, 2, 0, pool);
}

int bz_zpool_create_workers(int n_workers, int nice, struct bz_zpool **pool)
{
    return create(n_workers, 1, nice, pool);
}

int bz_zpool_done(struct bz_zpool *p, struct bz_zbatch *b)
{
    pthread_mutex_lock(&p->mu);
    int done = !b->queued;
    pthread_mutex_unlock(&p->mu);
    return done;
}

static int create(int n_threads, int min, int nice, struct bz_zpool **pool)
{
    struct bz_zpool *p = calloc(1, sizeof *p);
    *pool = NULL;
    if (!p)
        return -1;
    p->nice = nice;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    if (n_threads >= min) {
        if (!(p->threads = calloc((size_t)n_threads, sizeof *p->threads))) {
            bz_zpool_destroy(p);
            return -1;
        }
        for (int i = 0; i < n_threads; i++) {
            if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
                bz_zpool_destroy(p);
                return -1;
            }
            p->n_threads++;
        }
    }
    *pool = p;
    return 0;
}

static void submit(struct bz_zpool *p, struct bz_zbatch *b, int first)
{
    b->next = b->done = b->next_read = b->reads_done = 0;
    b->failed = 0;
    b->bad_read = b->n_reads;
    b->read_errno = 0;
    b->cpu_seconds = 0;
    if (!p->n_threads || (!b->n_chunks && !b->n_reads))
        return; /* done by bz_zpool_wait */
    pthread_mutex_lock(&p->mu);
    b->queued = 1;
    b->qnext = NULL;
    if (!p->head) {
        p->head = p->tail = b;
    } else if (first) {
        b->qnext = p->head;
        p->head = b;
    } else {
        p->tail->qnext = b;
        p->tail = b;
    }
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
}

void bz_zpool_submit(struct bz_zpool *p, struct bz_zbatch *b)
{
    submit(p, b, 0);
}

void bz_zpool_submit_first(struct bz_zpool *p, struct bz_zbatch *b)
{
    submit(p, b, 1);
}

int bz_zpool_wait(struct bz_zpool *p, struct bz_zbatch *b)
{
    if (!p->n_threads || (!b->n_chunks && !b->n_reads)) {
        struct bz_zchunk z;
        struct rstate rs = {NULL, -1, NULL, 0};
        double c0 = thread_cpu_s();
        for (size_t k = 0; k < b->n_reads && b->bad_read == b->n_reads; k++) {
            int e = read_one(&rs, b, k);
            if (e)
                read_failed(b, k, e);
        }
        rstate_close(&rs);
        free(rs.buf);
        if (b->bad_read < b->n_reads) {
            b->cpu_seconds += thread_cpu_s() - c0;
            return -2;
        }
        if (zstate_init(&z) != 0)
            return -1;
        for (size_t k = 0; k < b->n_chunks && !b->failed; k++)
            if (compress_one(&z, b, k) != 0)
                b->failed = 1;
        b->cpu_seconds += thread_cpu_s() - c0;
        zstate_free(&z);
        return b->failed ? -1 : 0;
    }
    pthread_mutex_lock(&p->mu);
    while (b->queued)
        pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return b->bad_read < b->n_reads ? -2 : b->failed ? -1 : 0;
}

void bz_zpool_destroy(struct bz_zpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int bz_zpool_default_threads(void)
{
    const char *env = getenv("BZ_MERGE_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1)
            return v > 64 ? 64 : (int)v;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}
