/* out_lock: the exclusive lock of an output (OUT.lock). Owns the lock file
 * and the process-wide table of locks held; never touches OUT itself.
 *
 * flock() on OUT.lock: the kernel drops it when its holder dies, so a killed
 * run leaves a lock file that the next take simply locks again (a stale
 * lock is free by construction). The file names the holder (pid, host,
 * start time) for the refusal message. Where flock is not supported
 * (ENOLCK, EOPNOTSUPP: some network file systems) the lock is the exclusive
 * creation of the file; a file whose pid is dead on this host is stale. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/out_lock.h"

struct bz_out_lock {
    char *path; /* OUT.lock */
    int fd;     /* -1 with the exclusive-creation fallback */
    dev_t dev;
    ino_t ino;
    int refs;
    pid_t pid;   /* the taker: a forked child holds nothing */
    int adopted; /* inherited from the parent: released by closing fd only */
    char *made;  /* topmost folder the lock created, removed on release when empty */
    struct bz_out_lock *next;
};

static struct bz_out_lock *held; /* this process's locks */

static char *lock_path(const char *out)
{
    size_t n = strlen(out);
    char *p = malloc(n + 6);
    if (p) {
        memcpy(p, out, n);
        memcpy(p + n, ".lock", 6);
    }
    return p;
}

/* mkdir -p of the folder path lives in (the output's folder may be new).
 * Returns the topmost folder it created (malloc'd; NULL: none), so that a
 * run refused later removes what it made (a refused run leaves nothing). */
static char *make_parent(const char *path)
{
    char *dir = strdup(path), *made = NULL;
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++)
            if (*p == '/') {
                *p = '\0';
                if (mkdir(dir, 0777) == 0 && !made)
                    made = strdup(dir);
                *p = '/';
            }
        if (mkdir(dir, 0777) == 0 && !made)
            made = strdup(dir);
    }
    free(dir);
    return made;
}

/* rmdir of path's folders up to and including top, deepest first; stops at
 * the first that is not empty (a finished run's OUT is in it). */
static void remove_made(const char *path, const char *top)
{
    char *dir = strdup(path);
    size_t top_len = strlen(top);
    char *slash;
    while (dir && (slash = strrchr(dir, '/')) && slash != dir) {
        *slash = '\0';
        if (strlen(dir) < top_len || rmdir(dir) != 0)
            break;
    }
    free(dir);
}

static void holder_line(char *buf, size_t cap)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    time_t t = time(NULL);
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(buf, cap, "pid %ld host %s since %s\n", (long)getpid(), host, when);
}

/* The holder line of an existing lock file, for messages ("" if none). */
static void read_holder(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
}

static int refuse(struct bz_err *err, const char *out, const char *holder)
{
    return bz_err_set(err, BZ_EINVAL,
                      "%s is being written by another bazaar process (%s); wait for it to "
                      "finish or stop it, or choose another -o",
                      out, holder[0] ? holder : "holder unknown");
}

static int write_holder(int fd, const char *path, struct bz_err *err)
{
    char line[400];
    holder_line(line, sizeof line);
    size_t len = strlen(line);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, len, 0) != (ssize_t)len)
        return bz_err_set(err, BZ_EIO, "%s: cannot write: %s", path, strerror(errno));
    return BZ_OK;
}

/* Fallback without flock: exclusive creation; a lock file of a dead pid on
 * this host is removed and taken over once. */
static int take_by_creation(const char *out, const char *path, struct bz_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0) {
            int rc = write_holder(fd, path, err);
            if (fsync(fd) != 0 && !rc)
                rc = bz_err_set(err, BZ_EIO, "%s: fsync: %s", path, strerror(errno));
            close(fd);
            if (rc)
                unlink(path);
            return rc;
        }
        if (errno != EEXIST)
            return bz_err_set(err, BZ_EIO, "%s: cannot create: %s", path, strerror(errno));
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        char holder[300] = "";
        if (fd >= 0) {
            read_holder(fd, holder, sizeof holder);
            close(fd);
        }
        long pid = 0;
        char host[256] = "", me[256] = "";
        gethostname(me, sizeof me - 1);
        if (sscanf(holder, "pid %ld host %255s", &pid, host) == 2 && pid > 0 &&
            strcmp(host, me) == 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            unlink(path); /* its holder is dead: stale */
            continue;
        }
        return refuse(err, out, holder);
    }
    return refuse(err, out, "");
}

/* Whether the holder line names a process of this host that is dead. */
static int holder_dead(const char *holder)
{
    long pid = 0;
    char host[256] = "", me[256] = "";
    gethostname(me, sizeof me - 1);
    return sscanf(holder, "pid %ld host %255s", &pid, host) == 2 && pid > 0 &&
           strcmp(host, me) == 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* flock; when the holder the file names is dead on this host, its follower
 * merge (a child sharing the lock, sched_follow.c) is ending: wait for it,
 * up to LOCK_WAIT_MS. */
#define LOCK_WAIT_MS 5000
static int flock_or_wait(int fd)
{
    for (int waited = 0;; waited += 10) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK || waited >= LOCK_WAIT_MS)
            return -1;
        char holder[300];
        read_holder(fd, holder, sizeof holder);
        if (!holder_dead(holder)) {
            errno = EWOULDBLOCK;
            return -1;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int bz_out_lock_take(const char *out, struct bz_out_lock **lk, struct bz_err *err)
{
    int rc = BZ_OK, fd = -1;
    struct bz_out_lock *l = NULL;
    char *path = NULL, *made = NULL;
    *lk = NULL;
    if (!out || !out[0])
        return bz_err_set(err, BZ_EINVAL, "the output path is empty");
    if (!(path = lock_path(out)))
        return bz_err_set(err, BZ_ENOMEM, "no memory");
    for (struct bz_out_lock *h = held; h; h = h->next)
        if (h->pid == getpid() && strcmp(h->path, path) == 0) {
            h->refs++;
            free(path);
            *lk = h;
            return BZ_OK;
        }
    struct stat st;
    for (int attempt = 0;; attempt++) {
        /* O_NONBLOCK: a FIFO planted under the name must not hang us */
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
        if (fd < 0 && errno == ENOENT && attempt == 0) {
            made = make_parent(path);
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
        }
        if (fd < 0) {
            /* a bad -o (no such folder, not writable): an input error */
            int input = errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == EPERM ||
                        errno == EROFS || errno == EISDIR || errno == ENAMETOOLONG ||
                        errno == ELOOP;
            rc = bz_err_set(err, input ? BZ_EINVAL : BZ_EIO, "%s: cannot create the lock file: %s",
                            path, strerror(errno));
            goto out;
        }
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            rc = bz_err_set(err, BZ_EINVAL, "%s: not a regular file", path);
            goto out;
        }
        if (flock_or_wait(fd) != 0) {
            if (errno == EWOULDBLOCK) {
                char holder[300];
                read_holder(fd, holder, sizeof holder);
                rc = refuse(err, out, holder);
                goto out;
            }
            if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) {
                close(fd);
                fd = -1;
                if ((rc = take_by_creation(out, path, err)))
                    goto out;
                break;
            }
            rc = bz_err_set(err, BZ_EIO, "%s: flock: %s", path, strerror(errno));
            goto out;
        }
        /* The previous holder removes the file before it unlocks: make sure
         * the inode locked is still the one under the name. */
        struct stat now;
        if (stat(path, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)
            break;
        close(fd);
        fd = -1;
        if (attempt >= 16) {
            rc = bz_err_set(err, BZ_EIO, "%s: the lock file keeps changing", path);
            goto out;
        }
    }
    if (fd >= 0 && (rc = write_holder(fd, path, err)))
        goto out;
    if (!(l = calloc(1, sizeof *l))) {
        rc = bz_err_set(err, BZ_ENOMEM, "no memory");
        goto out;
    }
    l->path = path;
    l->made = made;
    made = NULL;
    l->fd = fd;
    l->dev = fd >= 0 ? st.st_dev : 0;
    l->ino = fd >= 0 ? st.st_ino : 0;
    l->refs = 1;
    l->pid = getpid();
    l->next = held;
    held = l;
    *lk = l;
    return BZ_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (made)
        remove_made(path, made);
    free(made);
    free(path);
    return rc;
}

void bz_out_lock_release(struct bz_out_lock *lk)
{
    if (!lk || --lk->refs > 0)
        return;
    for (struct bz_out_lock **p = &held; *p; p = &(*p)->next)
        if (*p == lk) {
            *p = lk->next;
            break;
        }
    /* remove while still locked, then unlock (the taker re-checks the inode);
     * an adopted lock's file is its parent's to remove */
    if (!lk->adopted)
        unlink(lk->path);
    if (lk->made)
        remove_made(lk->path, lk->made);
    if (lk->fd >= 0)
        close(lk->fd);
    free(lk->made);
    free(lk->path);
    free(lk);
}

int bz_out_lock_held(const char *out)
{
    char *path = lock_path(out);
    int found = 0;
    for (struct bz_out_lock *h = held; path && h && !found; h = h->next)
        found = h->pid == getpid() && strcmp(h->path, path) == 0;
    free(path);
    return found;
}

int bz_out_lock_fd(const struct bz_out_lock *lk)
{
    return lk ? lk->fd : -1;
}

int bz_out_lock_adopt(const char *out, int fd, struct bz_out_lock **lk, struct bz_err *err)
{
    struct stat st, now;
    char *path = lock_path(out);
    *lk = NULL;
    if (!path)
        return bz_err_set(err, BZ_ENOMEM, "no memory");
    /* the descriptor must be the lock file under the name, and locked by
     * us (a flock taken through the same open file description succeeds) */
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || stat(path, &now) != 0 ||
        now.st_dev != st.st_dev || now.st_ino != st.st_ino || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = bz_err_set(err, BZ_EINVAL, "descriptor %d is not the lock %s held by the parent",
                            fd, path);
        free(path);
        return rc;
    }
    struct bz_out_lock *l = calloc(1, sizeof *l);
    if (!l) {
        free(path);
        return bz_err_set(err, BZ_ENOMEM, "no memory");
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    l->path = path;
    l->fd = fd;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->refs = 1;
    l->pid = getpid();
    l->adopted = 1;
    l->next = held;
    held = l;
    *lk = l;
    return BZ_OK;
}
