/* out_durable: a shard's durability work off the writer's thread. A job is
 * what a shard's sync did after its flush: fsync the shard, then append the
 * journal lines of the games that flush holds, then fsync the journal. One
 * background thread runs the jobs in the order they came, so a journal's
 * lines keep their order and a line is written only once the flush it
 * stands for is on disk. The writer goes on playing meanwhile: an fsync
 * costs milliseconds to tens of milliseconds (more on a cluster file
 * system), and it was the play's to wait for.
 *
 * What changes for a kill: a game counts as committed once its journal line
 * is written (out_shard.c), so kill -9 or a node failure can now lose the
 * batches still queued here as well as the one being written (at most
 * DURABLE_MAX_JOBS, each at most BZ_SHARD_SYNC_INTERVAL_S of games): they
 * are replayed, identically. What a line claims is unchanged.
 *
 * Owns the thread and the descriptors handed to it (its own: the writer may
 * close its own at once; never a dup of a descriptor HDF5 locked, which
 * would hold HDF5's flock until the job ran, see out_shard.c's hand_over).
 * Never calls HDF5: a job touches only file descriptors, so HDF5 runs on
 * the writer's thread alone. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/out.h"
#include "out_internal.h"

/* Jobs queued at most: a writer that gets this far ahead waits for the
 * oldest (the disk is slower than the play), so a kill never loses more. */
#define DURABLE_MAX_JOBS 4

void (*bz_durable_test_gate)(void);

/* BAZAAR_TEST_DURABLE_DELAY_MS: the thread sleeps this long before each
 * job, so that an e2e test can kill a run while flushed games wait for
 * their journal lines. Not for production use. */
static long test_delay_ms(void)
{
    const char *v = getenv("BAZAAR_TEST_DURABLE_DELAY_MS");
    long ms = v ? atol(v) : 0;
    return ms > 0 ? ms : 0;
}

struct job {
    struct job *next;
    int fd;         /* to fsync, then close */
    int journal_fd; /* -1: none; else text goes here, then fsync, close */
    int quiet;      /* errors are dropped (best-effort jobs) */
    size_t len;
    char *text;
    char *path, *journal_path; /* for messages */
};

struct bz_durable {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* a job was queued or finished, or stop */
    pthread_t thread;
    struct job *head, *tail;
    size_t queued; /* in the queue, including the one running */
    int stop;
    long delay_ms; /* test_delay_ms() */
    int failed;    /* the first error, in msg */
    char msg[BZ_ERR_MSG_MAX];
};

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    if (j->journal_fd >= 0)
        close(j->journal_fd);
    free(j->text);
    free(j->path);
    free(j->journal_path);
    free(j);
}

int bz_durable_run(int fd, int journal_fd, const char *text, size_t len, const char *path,
                   const char *journal_path, struct bz_err *err)
{
    if (fsync(fd) != 0)
        return bz_err_set(err, BZ_EIO, "%s: fsync: %s", path, strerror(errno));
    if (journal_fd < 0)
        return BZ_OK;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(journal_fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return bz_err_set(err, BZ_EIO, "%s: write: %s", journal_path, strerror(errno));
        off += (size_t)w;
    }
    if (fsync(journal_fd) != 0)
        return bz_err_set(err, BZ_EIO, "%s: fsync: %s", journal_path, strerror(errno));
    return BZ_OK;
}

static void *worker(void *arg)
{
    struct bz_durable *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->head && !d->stop)
            pthread_cond_wait(&d->changed, &d->mu);
        if (!d->head)
            break; /* stop, and nothing left */
        struct job *j = d->head;
        int skip = d->failed && !j->quiet; /* after a failure nothing more is claimed */
        pthread_mutex_unlock(&d->mu);
        if (bz_durable_test_gate)
            bz_durable_test_gate();
        if (d->delay_ms) {
            struct timespec ts = {d->delay_ms / 1000, (d->delay_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        struct bz_err e = {0};
        int bad = !skip && bz_durable_run(j->fd, j->journal_fd, j->text, j->len, j->path,
                                          j->journal_path, &e) != BZ_OK;
        pthread_mutex_lock(&d->mu);
        if (bad && !j->quiet && !d->failed) {
            d->failed = 1;
            memcpy(d->msg, e.msg, sizeof d->msg);
        }
        d->head = j->next;
        if (!d->head)
            d->tail = NULL;
        d->queued--;
        job_free(j);
        pthread_cond_broadcast(&d->changed);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int bz_durable_create(struct bz_durable **out, struct bz_err *err)
{
    *out = NULL;
    struct bz_durable *d = calloc(1, sizeof *d);
    if (!d)
        return bz_err_set(err, BZ_ENOMEM, "no memory for the durability thread");
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->changed, NULL);
    d->delay_ms = test_delay_ms();
    /* the thread takes no signal: a stop signal interrupts the play's
     * waits (runner.c), which must get it */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&d->thread, NULL, worker, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        pthread_cond_destroy(&d->changed);
        pthread_mutex_destroy(&d->mu);
        free(d);
        return bz_err_set(err, BZ_EIO, "cannot start the durability thread: %s", strerror(e));
    }
    *out = d;
    return BZ_OK;
}

/* With d->mu held: the first error, if a job failed. */
static int failed_locked(struct bz_durable *d, struct bz_err *err)
{
    if (!d->failed)
        return BZ_OK;
    return bz_err_set(err, BZ_EIO, "%s", d->msg);
}

int bz_durable_submit(struct bz_durable *d, int fd, int journal_fd, const char *text, size_t len,
                      const char *path, const char *journal_path, int quiet, struct bz_err *err)
{
    struct job *j = calloc(1, sizeof *j);
    if (j) {
        j->fd = fd;
        j->journal_fd = journal_fd;
        j->quiet = quiet;
        j->len = len;
    }
    if (!j || (len && !(j->text = malloc(len))) || !(j->path = strdup(path)) ||
        !(j->journal_path = strdup(journal_path))) {
        if (j)
            job_free(j);
        else {
            close(fd);
            if (journal_fd >= 0)
                close(journal_fd);
        }
        return bz_err_set(err, BZ_ENOMEM, "%s: no memory for its sync", path);
    }
    if (len)
        memcpy(j->text, text, len);
    pthread_mutex_lock(&d->mu);
    while (d->queued >= DURABLE_MAX_JOBS && !d->failed)
        pthread_cond_wait(&d->changed, &d->mu);
    int rc = quiet ? BZ_OK : failed_locked(d, err);
    if (rc) {
        pthread_mutex_unlock(&d->mu);
        job_free(j);
        return rc;
    }
    if (d->tail)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
    d->queued++;
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->mu);
    return BZ_OK;
}

int bz_durable_wait(struct bz_durable *d, struct bz_err *err)
{
    if (!d)
        return BZ_OK;
    pthread_mutex_lock(&d->mu);
    while (d->queued)
        pthread_cond_wait(&d->changed, &d->mu);
    int rc = failed_locked(d, err);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void bz_durable_destroy(struct bz_durable *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL); /* it runs what is queued first */
    pthread_cond_destroy(&d->changed);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
