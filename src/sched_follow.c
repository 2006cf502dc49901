/* sched_follow: the follower merge. While a sweep plays, rank 0 runs its
 * own executable again as `bazaar merge --follow` (posix_spawn of
 * /proc/self/exe, never a fork of an MPI process), at a lower priority, with
 * a pipe to its stdin and the output's lock passed down. The follower merges
 * the longest prefix of game ids committed in closed sources (what the run
 * resumed from, then this attempt's segments as their journal says
 * "closed") into OUT.tmp as the play goes on. When play ends, rank 0 writes
 * the final message (the sources and the provenance) and closes the pipe;
 * the follower merges the rest, reads back and renames, and exits 0. EOF
 * without the final message (rank 0 died or gave up): the follower removes
 * its tmp and exits. A follower that fails leaves rank 0 to merge as before.
 * sched.c starts it only where rank 0's node has a CPU no rank plays on
 * (BAZAAR_MERGE_FOLLOW=1 forces it, =0 turns it off). Never calls MPI; never
 * opens a segment a rank may still write. */
#define _GNU_SOURCE /* sched_setaffinity, posix_spawn_file_actions_addclosefrom_np */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/out.h"
#include "bazaar/out_lock.h"
#include "out_internal.h"
#include "sched_internal.h"

extern char **environ;

/* How often at most the follower looks for closed segments. A look reads
 * the parts folder and opens the journal of every segment still open (one
 * a rank): on a shared file system with many ranks that is metadata load,
 * so the gap also grows to 10x what the last look cost (at most a tenth
 * of the time spent looking) and to 1/64 of the time followed (segments
 * close at 1/16 of the time played: runner.c), up to FOLLOW_SCAN_MAX_S.
 * The pipe is watched all the while (poll): EOF is seen at once. */
#define FOLLOW_POLL_MS 50
#define FOLLOW_SCAN_MAX_S 10.0

int bz_sched_follow_mode(void)
{
    const char *v = getenv("BAZAAR_MERGE_FOLLOW");
    if (!v || !*v)
        return -1;
    return strcmp(v, "0") != 0;
}

/* ---- rank 0's side ------------------------------------------------------ */

/* After the final message, a follower that uses no CPU and reads or writes
 * nothing for this long is stuck (a hang, not a slow merge): rank 0 kills
 * it and merges in process. BAZAAR_FOLLOW_STALL_S overrides (tests). */
#define FOLLOW_STALL_S 300.0

struct bz_follow {
    pid_t pid;
    int fd;   /* the pipe's write end */
    int live; /* read end of a pipe whose write end only the follower holds:
                 EOF once it exited */
};

/* Open descriptors of this process from lo up, other than keep (the
 * fallback without posix_spawn_file_actions_addclosefrom_np, glibc < 2.34):
 * each is closed in the child. */
#ifndef BZ_HAVE_ADDCLOSEFROM
static int close_from(posix_spawn_file_actions_t *fa, int lo)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) { /* no /proc: every descriptor the limit allows */
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = lo; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
            if (fcntl((int)fd, F_GETFD) >= 0 && posix_spawn_file_actions_addclose(fa, (int)fd))
                return -1;
        return 0;
    }
    int rc = 0, self = dirfd(d);
    for (struct dirent *de; !rc && (de = readdir(d));) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end || end == de->d_name || fd < lo || fd == self)
            continue;
        rc = posix_spawn_file_actions_addclose(fa, (int)fd);
    }
    closedir(d);
    return rc;
}
#else
static int close_from(posix_spawn_file_actions_t *fa, int lo)
{
    return posix_spawn_file_actions_addclosefrom_np(fa, lo);
}
#endif

int bz_follow_start(const char *parts, const char *out, int attempt, int64_t n_games,
                    enum bz_layout layout, int nice_inc, char *const *sources, size_t n_sources,
                    const struct bz_out_lock *lock, struct bz_follow **f, struct bz_err *err)
{
    *f = NULL;
    int lock_fd = bz_out_lock_fd(lock);
    if (lock_fd < 0) /* the creation fallback: a child cannot share it */
        return bz_err_set(err, BZ_EINVAL,
                          "%s.lock is not a flock on this file system (it cannot be shared "
                          "with a child)",
                          out);
    int p[2] = {-1, -1}, q[2] = {-1, -1}, dup_fd = -1, rc = BZ_ENOMEM;
    char games[32], att[16], fdnum[16], ppid[32], nice_s[16];
    char **argv = calloc(n_sources + 20, sizeof *argv);
    struct bz_follow *fl = calloc(1, sizeof *fl);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int fa_made = 0, at_made = 0;
    if (!argv || !fl) {
        bz_err_set(err, rc, "no memory");
        goto out;
    }
    if (pipe2(p, O_CLOEXEC) != 0 || pipe2(q, O_CLOEXEC) != 0 ||
        (dup_fd = fcntl(lock_fd, F_DUPFD_CLOEXEC, 5)) < 0) {
        rc = bz_err_set(err, BZ_EIO, "pipe: %s", strerror(errno));
        goto out;
    }
    snprintf(games, sizeof games, "%lld", (long long)n_games);
    snprintf(att, sizeof att, "%d", attempt);
    snprintf(fdnum, sizeof fdnum, "%d", 3);
    snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
    snprintf(nice_s, sizeof nice_s, "%d", nice_inc);
    size_t a = 0;
    argv[a++] = "bazaar";
    argv[a++] = "merge";
    argv[a++] = "--follow";
    argv[a++] = (char *)parts;
    argv[a++] = "-o";
    argv[a++] = (char *)out;
    argv[a++] = "--games";
    argv[a++] = games;
    argv[a++] = "--attempt";
    argv[a++] = att;
    argv[a++] = "--lock-fd";
    argv[a++] = fdnum;
    argv[a++] = "--parent";
    argv[a++] = ppid;
    argv[a++] = "--layout";
    argv[a++] = layout == BZ_LAYOUT_VIRTUAL ? "virtual" : "plain";
    argv[a++] = "--nice";
    argv[a++] = nice_s;
    argv[a++] = "--";
    for (size_t i = 0; i < n_sources; i++)
        argv[a++] = sources[i];
    argv[a] = NULL;
    /* stdin: the pipe; 3: the lock; 4: held until it exits (rank 0 hears
     * EOF); everything else of this (MPI) process closed */
    rc = BZ_EIO; /* until spawned: the child's descriptors or signals */
    if (posix_spawn_file_actions_init(&fa) != 0)
        goto out;
    fa_made = 1;
    if (posix_spawn_file_actions_adddup2(&fa, p[0], 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, dup_fd, 3) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, q[1], 4) != 0 || close_from(&fa, 5) != 0)
        goto out;
    /* signals: no mask inherited from this process (PDEATHSIG must come
     * through), SIGPIPE back to its default */
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    if (posix_spawnattr_init(&at) != 0)
        goto out;
    at_made = 1;
    if (posix_spawnattr_setsigmask(&at, &none) != 0 || posix_spawnattr_setsigdefault(&at, &def) ||
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) != 0)
        goto out;
    /* a follower that died must not kill rank 0 when it writes the pipe */
    signal(SIGPIPE, SIG_IGN);
    int e = posix_spawn(&fl->pid, "/proc/self/exe", &fa, &at, argv, environ);
    if (e != 0) {
        rc = bz_err_set(err, BZ_EIO, "posix_spawn of /proc/self/exe: %s", strerror(e));
        goto out;
    }
    fl->fd = p[1];
    p[1] = -1;
    fl->live = q[0];
    q[0] = -1;
    *f = fl;
    fl = NULL;
    rc = BZ_OK;
out:
    if (rc && !err->msg[0])
        bz_err_set(err, rc, "cannot set up the child's descriptors or signals");
    if (fa_made)
        posix_spawn_file_actions_destroy(&fa);
    if (at_made)
        posix_spawnattr_destroy(&at);
    for (int i = 0; i < 2; i++) {
        if (p[i] >= 0)
            close(p[i]);
        if (q[i] >= 0)
            close(q[i]);
    }
    if (dup_fd >= 0)
        close(dup_fd);
    free(argv);
    free(fl);
    return rc;
}

/* What the follower has done so far: its CPU ticks and the bytes it read
 * and wrote (-1: unknown). It makes progress while this grows. */
static long long follower_work(pid_t pid)
{
    char path[64], buf[1024];
    long long work = -1;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *fs = fopen(path, "re");
    if (fs) {
        size_t n = fread(buf, 1, sizeof buf - 1, fs);
        buf[n] = '\0';
        fclose(fs);
        /* after the ")" of the name: fields 3 to 13, then utime and stime */
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (p &&
            sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            work = (long long)(ut + st);
    }
    snprintf(path, sizeof path, "/proc/%ld/io", (long)pid);
    if ((fs = fopen(path, "re"))) {
        unsigned long long v;
        while (fgets(buf, sizeof buf, fs))
            if (sscanf(buf, "rchar: %llu", &v) == 1 || sscanf(buf, "wchar: %llu", &v) == 1)
                work += (long long)v;
        fclose(fs);
    }
    return work;
}

static double stall_limit_s(void)
{
    const char *v = getenv("BAZAAR_FOLLOW_STALL_S");
    double s = v && *v ? atof(v) : 0;
    return s > 0 ? s : FOLLOW_STALL_S;
}

/* Until the follower exits (its end of the live pipe closes) or makes no
 * progress for stall_limit_s(): then it is killed. With data and len,
 * also writes data to the pipe (non-blocking: a stuck follower that reads
 * nothing must not block rank 0); *sent: 1 once all of it went. */
static int watch(struct bz_follow *f, const char *data, size_t len, int *sent, struct bz_err *err)
{
    double limit = stall_limit_s(), last_change = bz_sched_now_s();
    long long work = follower_work(f->pid);
    size_t off = 0;
    if (f->fd >= 0)
        fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        if (f->fd >= 0 && off == len) {
            *sent = 1;
            close(f->fd); /* EOF: the message is complete */
            f->fd = -1;
        }
        struct pollfd pf[2] = {{.fd = f->live, .events = POLLIN}, {.fd = f->fd, .events = POLLOUT}};
        int pr = poll(pf, f->fd >= 0 ? 2 : 1, 1000);
        if (pr > 0 && pf[0].revents)
            return BZ_OK; /* it exited: reap says how */
        if (pr > 0 && f->fd >= 0 && pf[1].revents) {
            ssize_t w = write(f->fd, data + off, len - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                close(f->fd); /* EPIPE: it died; reap says how */
                f->fd = -1;
            }
        }
        long long now = follower_work(f->pid);
        if (now != work || (pr > 0 && pf[1].revents)) {
            work = now;
            last_change = bz_sched_now_s();
        } else if (bz_sched_now_s() - last_change >= limit) {
            kill(f->pid, SIGKILL);
            return bz_err_set(err, BZ_EIO,
                              "the follower merge (pid %ld) made no progress for %g s; killed",
                              (long)f->pid, limit);
        }
    }
}

/* Wait for the follower; BZ_OK when it exited 0, else why in err. */
static int reap(struct bz_follow *f, struct bz_err *err)
{
    int st = 0;
    pid_t w;
    while ((w = waitpid(f->pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        return bz_err_set(err, BZ_EIO, "cannot wait for the follower merge: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return BZ_OK;
    if (WIFSIGNALED(st))
        return bz_err_set(err, BZ_EIO, "the follower merge (pid %ld) was killed by signal %d",
                          (long)f->pid, WTERMSIG(st));
    return bz_err_set(err, BZ_EIO, "the follower merge (pid %ld) failed with exit status %d",
                      (long)f->pid, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void follow_free(struct bz_follow *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->live >= 0)
        close(f->live);
    free(f);
}

int bz_follow_finish(struct bz_follow *f, char *const *sources, size_t n_sources,
                     const struct bz_provenance *prov, struct bz_err *err)
{
    /* BAZAAR_TEST_FOLLOW_GATE=path (tests): the play is over; hold the
     * final message until path exists, so that a test sees the follower
     * merge before it */
    const char *gate = getenv("BAZAAR_TEST_FOLLOW_GATE");
    while (gate && *gate && access(gate, F_OK) != 0 && !bz_sched_stop_requested()) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    const char *keys[] = {"spec_json", "version",    "git_commit",
                          "hosts",     "started_at", "finished_at"};
    const char *vals[] = {prov->spec_json, prov->version,    prov->git_commit,
                          prov->hosts,     prov->started_at, prov->finished_at};
    int made = m != NULL, sent = 0;
    if (m) {
        fputs("final\n", m);
        for (size_t i = 0; i < n_sources; i++)
            fprintf(m, "source %zu\n%s\n", strlen(sources[i]), sources[i]);
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (vals[i])
                fprintf(m, "%s %zu\n%s\n", keys[i], strlen(vals[i]), vals[i]);
        fprintf(m, "ranks %lld\nn_games %lld\nend\n", (long long)prov->ranks,
                (long long)prov->n_games);
        made = fclose(m) == 0;
    }
    if (!made) { /* EOF without the message: it removes its tmp and goes */
        close(f->fd);
        f->fd = -1;
    }
    struct bz_err werr = {0};
    int stuck = watch(f, buf, made ? len : 0, &sent, &werr);
    free(buf);
    int rc = reap(f, err);
    if (stuck)
        rc = bz_err_set(err, stuck, "%s", werr.msg);
    else if (!rc && !sent)
        rc = bz_err_set(err, BZ_EIO, "cannot send the follower merge its final message");
    follow_free(f);
    return rc;
}

void bz_follow_cancel(struct bz_follow *f)
{
    if (!f)
        return;
    /* no merge: it goes at once, removing its tmp (on_parent_death), even
     * in the middle of a block (a stop must end before SLURM's KillWait) */
    close(f->fd);
    f->fd = -1;
    kill(f->pid, SIGUSR2);
    struct bz_err e = {0};
    reap(f, &e);
    follow_free(f);
}

/* ---- the follower: bazaar merge --follow -------------------------------- */

struct follower {
    const char *parts, *out;
    int attempt;
    int64_t n_games;
    unsigned char *avail; /* per game id: committed in a source added */
    int64_t prefix;       /* ids below are all available */
    char **known;         /* sources added */
    size_t n_known, cap_known;
    struct bz_merge_stream *ms;
};

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether path was added (known is kept sorted: a sweep on many ranks has
 * thousands of segments). */
static int known(const struct follower *fw, const char *path)
{
    return fw->n_known &&
           bsearch(&path, fw->known, fw->n_known, sizeof *fw->known, cmp_path) != NULL;
}

/* Add a closed source. initial: one the run started from (old OUT, older
 * attempts' shards), whose games may repeat among them (the first wins, as
 * in the final merge); any other source's games must be new. */
static int add(struct follower *fw, const char *path, int initial, struct bz_err *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int rc = bz_shard_committed_quick(path, &ids, &n, err);
    if (rc)
        return rc;
    for (size_t k = 0; k < n && !rc; k++) {
        if (ids[k] < 0 || ids[k] >= fw->n_games)
            continue;
        if (fw->avail[ids[k]] && !initial)
            rc = bz_err_set(err, BZ_EINVAL, "%s commits game %lld, which another source has", path,
                            (long long)ids[k]);
        fw->avail[ids[k]] = 1;
    }
    if (!rc)
        rc = bz_merge_stream_add(fw->ms, path, ids, n, err);
    free(ids);
    if (rc)
        return rc;
    if (fw->n_known == fw->cap_known) {
        size_t nc = fw->cap_known ? 2 * fw->cap_known : 64;
        char **k = realloc(fw->known, nc * sizeof *k);
        if (!k)
            return bz_err_set(err, BZ_ENOMEM, "no memory");
        fw->known = k;
        fw->cap_known = nc;
    }
    char *copy = strdup(path);
    if (!copy)
        return bz_err_set(err, BZ_ENOMEM, "no memory");
    size_t at = fw->n_known; /* sorted insertion */
    while (at > 0 && strcmp(fw->known[at - 1], copy) > 0) {
        fw->known[at] = fw->known[at - 1];
        at--;
    }
    fw->known[at] = copy;
    fw->n_known++;
    return BZ_OK;
}

/* Whether the journal of shard path ends with the line the runner writes
 * after closing the segment (and syncing it). */
static int segment_closed(const char *path)
{
    char j[BZ_SCHED_PATH_MAX + 400];
    if (snprintf(j, sizeof j, "%s.journal", path) >= (int)sizeof j)
        return 0;
    int fd = open(j, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat st;
    char tail[sizeof BZ_SEGMENT_CLOSED];
    size_t n = sizeof tail - 1;
    int closed = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= (off_t)n &&
                 pread(fd, tail, n, st.st_size - (off_t)n) == (ssize_t)n &&
                 memcmp(tail, BZ_SEGMENT_CLOSED, n) == 0;
    close(fd);
    return closed;
}

/* This attempt's segments that closed since the last look. */
static int scan_parts(struct follower *fw, struct bz_err *err)
{
    DIR *d = opendir(fw->parts);
    if (!d)
        return bz_err_set(err, BZ_EIO, "cannot read %s: %s", fw->parts, strerror(errno));
    char **found = NULL;
    size_t n = 0;
    int rc = BZ_OK;
    for (struct dirent *de; (de = readdir(d)) && !rc;) {
        int a, r, seg, used = 0;
        if (sscanf(de->d_name, "a%d-r%d-%d.h5%n", &a, &r, &seg, &used) != 3 || !used ||
            de->d_name[used] != '\0' || a != fw->attempt)
            continue;
        char path[BZ_SCHED_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", fw->parts, de->d_name);
        if (known(fw, path) || !segment_closed(path))
            continue;
        char **nf = realloc(found, (n + 1) * sizeof *nf);
        if (!nf || !(nf[n] = strdup(path))) {
            found = nf ? nf : found;
            rc = bz_err_set(err, BZ_ENOMEM, "no memory");
            break;
        }
        found = nf;
        n++;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = add(fw, found[i], 0, err);
        free(found[i]);
    }
    free(found);
    return rc;
}

/* Read the pipe until EOF (or nothing more for now): 1 at EOF. */
static int read_pipe(char **buf, size_t *len, size_t *cap, int timeout_ms, struct bz_err *err)
{
    struct pollfd pf = {.fd = 0, .events = POLLIN};
    int pr = poll(&pf, 1, timeout_ms);
    if (pr < 0 && errno != EINTR)
        return -bz_err_set(err, BZ_EIO, "poll: %s", strerror(errno));
    if (pr <= 0)
        return 0;
    if (*len + 65536 > *cap) {
        size_t nc = 2 * (*len + 65536);
        char *b = realloc(*buf, nc);
        if (!b)
            return -bz_err_set(err, BZ_ENOMEM, "no memory");
        *buf = b;
        *cap = nc;
    }
    ssize_t r = read(0, *buf + *len, *cap - *len - 1);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN
                   ? 0
                   : -bz_err_set(err, BZ_EIO, "read: %s", strerror(errno));
    if (r == 0)
        return 1;
    *len += (size_t)r;
    return 0;
}

/* "<key> <len>\n<bytes>\n" at *p: the value (NUL-terminated in place). */
static char *take_value(char **p, char *end)
{
    char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return NULL;
    size_t n = (size_t)strtoull(*p, NULL, 10);
    char *v = nl + 1;
    if ((size_t)(end - v) < n + 1 || v[n] != '\n')
        return NULL;
    v[n] = '\0';
    *p = v + n + 1;
    return v;
}

/* The final message: the sources of the final merge and the provenance.
 * 0 when complete, -1 otherwise. */
static int parse_final(char *buf, size_t len, char ***src, size_t *n_src,
                       struct bz_provenance *prov)
{
    char *p = buf, *end = buf + len;
    if (len < 6 || strncmp(p, "final\n", 6) != 0)
        return -1;
    p += 6;
    while (p < end) {
        if (end - p == 4 && strncmp(p, "end\n", 4) == 0)
            return 0;
        char *sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp)
            return -1;
        *sp = '\0';
        char *key = p;
        p = sp + 1;
        if (strcmp(key, "ranks") == 0 || strcmp(key, "n_games") == 0) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                return -1;
            long long v = strtoll(p, NULL, 10);
            if (key[0] == 'r')
                prov->ranks = v;
            else
                prov->n_games = v;
            p = nl + 1;
            continue;
        }
        char *v = take_value(&p, end);
        if (!v)
            return -1;
        if (strcmp(key, "source") == 0) {
            char **s = realloc(*src, (*n_src + 1) * sizeof *s);
            if (!s)
                return -1;
            *src = s;
            s[(*n_src)++] = v;
        } else if (strcmp(key, "spec_json") == 0) {
            prov->spec_json = v;
        } else if (strcmp(key, "version") == 0) {
            prov->version = v;
        } else if (strcmp(key, "git_commit") == 0) {
            prov->git_commit = v;
        } else if (strcmp(key, "hosts") == 0) {
            prov->hosts = v;
        } else if (strcmp(key, "started_at") == 0) {
            prov->started_at = v;
        } else if (strcmp(key, "finished_at") == 0) {
            prov->finished_at = v;
        }
    }
    return -1;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* BAZAAR_FOLLOW_STATS=path: the follower writes what it merged before the
 * final message there (tests, bench), after every block and at the end
 * (whole files: written aside, then renamed). */
static void write_stats(uint64_t during, uint64_t total, unsigned advances, double t_eof,
                        double t_end, double cpu, int final)
{
    const char *path = getenv("BAZAAR_FOLLOW_STATS");
    char tmp[BZ_SCHED_PATH_MAX + 8];
    if (!path || !*path || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "merged_during_play %llu\ngames %llu\nadvances %u\n", (unsigned long long)during,
            (unsigned long long)total, advances);
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, 0);
    if (errno == 0) /* the follower's nice value (tests) */
        fprintf(f, "nice %d\n", prio);
    if (final) {
        struct bz_merge_stats st;
        bz_merge_last_stats(&st);
        fprintf(f, "seconds_to_final %.3f\nseconds_after_final %.3f\ncpu_seconds %.3f\n", t_eof,
                t_end - t_eof, cpu);
        /* the merge's own figures (bench/sched_efficiency.sh) */
        fprintf(f,
                "merge_cpu_serial %.3f\nmerge_cpu_threads %.3f\nrows_scanned %llu\n"
                "chunks_read %llu\nchunks_pread %llu\nchunks_scan_pread %llu\nblocks "
                "%llu\n",
                st.cpu_main, st.cpu_compress, (unsigned long long)st.rows_scanned,
                (unsigned long long)st.chunks_read, (unsigned long long)st.chunks_pread,
                (unsigned long long)st.chunks_scan_pread, (unsigned long long)st.blocks);
    }
    if (fclose(f) == 0)
        rename(tmp, path);
}

static int follow(struct follower *fw, char *const *initial, size_t n_initial, struct bz_err *err)
{
    int rc = BZ_OK;
    char *buf = NULL, **src = NULL;
    size_t len = 0, cap = 0, n_src = 0;
    unsigned advances = 0;
    uint64_t during = 0;
    for (size_t i = 0; i < n_initial && !rc; i++)
        rc = add(fw, initial[i], 1, err);
    double t0 = mono_s(), last = t0, t_eof = t0;
    /* BAZAAR_TEST_FOLLOW_HANG (tests): a follower stuck while the sweep
     * plays ("play") or after the pipe's EOF ("final"); only a signal ends
     * it */
    const char *hang = getenv("BAZAAR_TEST_FOLLOW_HANG");
    while (hang && strcmp(hang, "play") == 0)
        pause();
    double next_scan = t0;
    while (!rc) {
        double wait = next_scan - mono_s();
        int eof = read_pipe(&buf, &len, &cap, wait > 0 ? (int)(wait * 1000) + 1 : 0, err);
        if (eof < 0) {
            rc = -eof;
            break;
        }
        if (eof)
            break;
        double t_scan = mono_s();
        if (t_scan < next_scan)
            continue; /* woken by the pipe */
        if ((rc = scan_parts(fw, err)))
            break;
        double now = mono_s(), gap = FOLLOW_POLL_MS / 1000.0;
        gap = 10 * (now - t_scan) > gap ? 10 * (now - t_scan) : gap;
        gap = (now - t0) / 64 > gap ? (now - t0) / 64 : gap;
        next_scan = now + (gap < FOLLOW_SCAN_MAX_S ? gap : FOLLOW_SCAN_MAX_S);
        /* at most 1/16 of the games per advance: the pipe is looked at
         * between advances */
        int64_t p = fw->prefix, lim = fw->prefix + (fw->n_games + 15) / 16;
        while (p < fw->n_games && p < lim && fw->avail[p])
            p++;
        /* merge what is ready, in blocks of at least 1/64 of the games or
         * once a second: every block re-reads its sources' game ids */
        if (p > fw->prefix && (p - fw->prefix >= fw->n_games / 64 || mono_s() - last >= 1.0)) {
            if ((rc = bz_merge_stream_advance(fw->ms, p, err)))
                break;
            fw->prefix = p;
            advances++;
            last = mono_s();
            write_stats(bz_merge_stream_games(fw->ms), (uint64_t)fw->n_games, advances, 0, 0, 0, 0);
        }
    }
    while (hang && strcmp(hang, "final") == 0)
        pause();
    during = bz_merge_stream_games(fw->ms);
    t_eof = mono_s();
    struct bz_provenance prov = {0};
    if (!rc && (!buf || parse_final(buf, len, &src, &n_src, &prov) != 0))
        rc = bz_err_set(err, BZ_ESTOP, "the run ended without its final message");
    /* every source merged must be one of the final merge's, the others are
     * added now (their games come after every game merged) */
    char **sorted = n_src ? malloc(n_src * sizeof *sorted) : NULL;
    if (n_src && !sorted && !rc)
        rc = bz_err_set(err, BZ_ENOMEM, "no memory");
    if (sorted) {
        memcpy(sorted, src, n_src * sizeof *sorted);
        qsort(sorted, n_src, sizeof *sorted, cmp_path);
    }
    for (size_t i = 0; i < fw->n_known && !rc; i++) {
        const char *key = fw->known[i];
        int in = sorted && bsearch(&key, sorted, n_src, sizeof *sorted, cmp_path) != NULL;
        if (!in)
            rc = bz_err_set(err, BZ_EINVAL, "%s was merged but is not among the run's sources",
                            fw->known[i]);
    }
    for (size_t k = 0; k < n_src && !rc; k++)
        if (!known(fw, src[k]))
            rc = add(fw, src[k], 0, err);
    if (!rc) {
        struct bz_merge_stream *ms = fw->ms;
        fw->ms = NULL;
        rc = bz_merge_stream_finish(ms, &prov, err);
        if (!rc) {
            struct timespec ts;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
            write_stats(during, (uint64_t)fw->n_games, advances, t_eof - t0, mono_s() - t0,
                        (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec, 1);
        }
    }
    free(sorted);
    free(src);
    free(buf);
    return rc;
}

/* Rank 0 died (PR_SET_PDEATHSIG): remove the tmp and go, at once, so that
 * the lock is free for the --resume that follows (async-signal-safe). */
static char tmp_path[BZ_SCHED_PATH_MAX + 8];

static void on_parent_death(int sig)
{
    (void)sig;
    if (tmp_path[0])
        unlink(tmp_path);
    _exit(3);
}

/* The follower runs on every CPU the node gives the job (rank 0 may be
 * bound to one core), at the priority increment rank 0 chose (--nice). */
static void follower_placement(int nice_inc)
{
    /* BAZAAR_MERGE_FOLLOW_NICE: another increment (benches) */
    const char *v = getenv("BAZAAR_MERGE_FOLLOW_NICE");
    int inc = v && *v ? atoi(v) : nice_inc;
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, 0);
    if (errno == 0 && inc > 0)
        setpriority(PRIO_PROCESS, 0, prio + inc);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t all;
    CPU_ZERO(&all);
    for (long c = 0; c < n && c < CPU_SETSIZE; c++)
        CPU_SET((int)c, &all);
    sched_setaffinity(0, sizeof all, &all); /* a refusal only costs speed */
}

int bz_follow_main(const char *parts, const char *out, int attempt, int64_t n_games,
                   enum bz_layout layout, int nice_inc, int lock_fd, long parent,
                   char *const *initial, size_t n_initial, struct bz_err *err)
{
    int rc;
    struct follower fw = {.parts = parts, .out = out, .attempt = attempt, .n_games = n_games};
    struct bz_out_lock *lock = NULL;
    /* a stop (SIGINT, SIGTERM to the job's process group) is rank 0's to
     * handle: the follower ends at EOF on its pipe */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    if (snprintf(tmp_path, sizeof tmp_path, "%s.tmp", out) >= (int)sizeof tmp_path)
        return bz_err_set(err, BZ_EINVAL, "%s: path too long", out);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_parent_death;
    sigfillset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGUSR2) != 0 || getppid() != parent)
        return bz_err_set(err, BZ_ESTOP, "rank 0 is gone");
    follower_placement(nice_inc);
    if (getenv("BAZAAR_TEST_FOLLOW_FAIL")) /* tests: the fallback */
        return bz_err_set(err, BZ_EIO, "BAZAAR_TEST_FOLLOW_FAIL is set: the follower gives up");
    if (n_games < 0 || attempt < 1)
        return bz_err_set(err, BZ_EINVAL, "merge --follow: bad --games or --attempt");
    if ((rc = bz_out_lock_adopt(out, lock_fd, &lock, err)))
        return rc;
    if (!(fw.avail = calloc((size_t)n_games + 1, 1))) {
        rc = bz_err_set(err, BZ_ENOMEM, "no memory");
        goto out;
    }
    if ((rc = bz_merge_stream_open(out, 1, &fw.ms, err)))
        goto out;
    bz_merge_stream_set_layout(fw.ms, layout); /* before its first add */
    rc = follow(&fw, initial, n_initial, err);
out:
    bz_merge_stream_abort(fw.ms); /* NULL after finish; else removes the tmp */
    for (size_t i = 0; i < fw.n_known; i++)
        free(fw.known[i]);
    free(fw.known);
    free(fw.avail);
    bz_out_lock_release(lock);
    return rc;
}
