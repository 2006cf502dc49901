/* bench_merge: one rank's sweep in its phases, as ratios measured in one
 * run: the play with records written to shards against the play without
 * records, the merge of those shards (MB/s of rows, its memory: the peak of
 * its own buffers and the peak RSS of a process that only merges), and end
 * to end (play + merge) against the play. The sweep is bench/
 * sched_efficiency.sh's (electricity, N = 20, 24 turns). Prints figures only;
 * never asserts a time.
 * usage: bench_merge [GAMES (1500)] [SHARDS (2)] */
#define _GNU_SOURCE /* wait4 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/match.h"
#include "bazaar/out.h"
#include "bazaar/spec.h"
#include "out_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define SPEC_FMT                                                                                   \
    "{\"game\":\"electricity\",\"seed\":3,\"repetitions\":%d,"                                     \
    "\"fixed\":{\"n_agents\":20,\"max_turns\":24,"                                                 \
    "\"lineup\":[\"heuristic:truthful?skill=0.9\",\"heuristic:greedy?skill=0.7\","                 \
    "\"heuristic:zi\",\"heuristic:reciprocal?skill=0.8\"]},"                                       \
    "\"grid\":{\"supply_ratio\":[0.8,1.0,1.2],\"communication\":[true,false]}}"

/* Play every game of the grid; with shards, write game g to shard
 * (g / 64) % n_shards, as batches of the scheduler spread them. Wall s. */
static int play(struct bz_grid *grid, int64_t n_games, struct bz_shard **shards, int n_shards,
                struct bz_durable *durable, double *seconds, struct bz_err *err)
{
    int rc = BZ_OK;
    double t0 = now_s();
    for (int64_t g = 0; g < n_games && !rc; g++) {
        struct bz_game_config cfg;
        struct bz_match *m = NULL;
        rc = bz_grid_config(grid, g, &cfg, err);
        if (!rc)
            rc = bz_match_create(&cfg, NULL, &m, err);
        if (!rc) {
            int st = bz_match_advance(m, err);
            if (st != BZ_MATCH_DONE)
                rc = st < 0 ? -st : BZ_EINTERNAL;
        }
        if (!rc && shards) {
            struct bz_shard *s = shards[(g / 64) % n_shards];
            rc = bz_shard_append(s, bz_match_records(m), err);
            if (!rc && bz_shard_sync_due(s)) /* as the runner */
                rc = bz_shard_sync(s, err);
        }
        bz_match_destroy(m);
    }
    for (int i = 0; shards && i < n_shards && !rc; i++)
        rc = bz_shard_sync(shards[i], err);
    if (!rc)
        rc = bz_durable_wait(durable, err); /* the last fsync counts */
    *seconds = now_s() - t0;
    return rc;
}

/* Fork with a pipe from the child to the parent: 0 in the child, the
 * child's pid in the parent, -1 on failure; *fd is the child's end (write)
 * in the child, the parent's (read) in the parent. */
static pid_t fork_piped(int *fd)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    close(pid == 0 ? p[0] : p[1]);
    *fd = pid == 0 ? p[1] : p[0];
    return pid;
}

/* In the parent: the size bytes the child sends on fd into buf, then its
 * end. 0 when it exited 0 and sent them all; ru (if not NULL): its usage. */
static int child_result(pid_t pid, int fd, void *buf, size_t size, struct rusage *ru)
{
    ssize_t got = read(fd, buf, size);
    close(fd);
    int status = 0;
    struct rusage r;
    if (wait4(pid, &status, 0, ru ? ru : &r) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0 || got != (ssize_t)size)
        return 1;
    return 0;
}

/* play() in a child process, with shards at paths (NULL: no records), so
 * that the merge's process holds nothing of the play. */
static int play_child(struct bz_grid *grid, int64_t n_games, char (*paths)[300], int n_shards,
                      enum bz_layout layout, double *seconds, double *cpu)
{
    int fd;
    pid_t pid = fork_piped(&fd);
    if (pid < 0)
        return 1;
    if (pid == 0) {
        struct bz_err err = {0};
        struct bz_shard *shards[64] = {0};
        struct bz_durable *durable = NULL;
        int rc = paths ? bz_durable_create(&durable, &err) : BZ_OK;
        for (int i = 0; paths && i < n_shards && !rc; i++) {
            rc = bz_shard_create(paths[i], &shards[i], &err);
            if (!rc) {
                bz_shard_set_group_commit(shards[i], 1); /* as the runner does */
                bz_shard_set_layout(shards[i], layout);
                bz_shard_set_durable(shards[i], durable);
            }
        }
        double t[2] = {0, 0};
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        if (!rc)
            rc = play(grid, n_games, paths ? shards : NULL, n_shards, durable, &t[0], &err);
        for (int i = 0; paths && i < n_shards; i++)
            if (shards[i] && bz_shard_close(shards[i], rc ? NULL : &err) && !rc)
                rc = BZ_EIO;
        if (durable && bz_durable_wait(durable, rc ? NULL : &err) && !rc)
            rc = BZ_EIO;
        bz_durable_destroy(durable);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        t[1] = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
        if (rc)
            fprintf(stderr, "bench_merge: %s\n", err.msg);
        if (write(fd, t, sizeof t) != (ssize_t)sizeof t)
            rc = 1;
        _exit(rc ? 1 : 0);
    }
    double t[2];
    if (child_result(pid, fd, t, sizeof t, NULL))
        return 1;
    *seconds = t[0];
    *cpu = t[1];
    return 0;
}

/* The merge as the follower does it (bazaar merge --follow): the stream,
 * advanced over blocks of ids (blocks > 1), then finished; *tail: the
 * seconds of the finish (the last block, closing, reading back). */
static int merge_stream(const char *const *paths, int n, const char *out, int64_t n_games,
                        int blocks, enum bz_layout layout, double *tail, struct bz_err *err)
{
    struct bz_merge_stream *ms;
    int rc = bz_merge_stream_open(out, 1, &ms, err);
    if (!rc)
        bz_merge_stream_set_layout(ms, layout);
    for (int i = 0; i < n && !rc; i++) {
        int64_t *ids = NULL;
        size_t k = 0;
        if (!(rc = bz_shard_committed_quick(paths[i], &ids, &k, err)))
            rc = bz_merge_stream_add(ms, paths[i], ids, k, err);
        free(ids);
    }
    for (int b = 1; b < blocks && !rc; b++)
        rc = bz_merge_stream_advance(ms, n_games * b / blocks, err);
    if (rc) {
        bz_merge_stream_abort(ms);
        return rc;
    }
    double t0 = now_s();
    rc = bz_merge_stream_finish(ms, NULL, err);
    *tail = now_s() - t0;
    return rc;
}

struct merge_result {
    struct bz_merge_stats st;
    double tail;
};

/* Merge in a child process: its peak RSS is the merge's alone. blocks 0:
 * bz_merge; else the follower's stream in that many blocks. */
static int merge_child(const char *const *paths, int n, const char *out, int64_t n_games,
                       int blocks, enum bz_layout layout, struct bz_merge_stats *st, double *tail,
                       double *seconds, double *cpu, long *rss_kb)
{
    int fd;
    double t0 = now_s();
    pid_t pid = fork_piped(&fd);
    if (pid < 0)
        return 1;
    if (pid == 0) {
        struct bz_err err = {0};
        struct merge_result r = {0};
        int rc = blocks ? merge_stream(paths, n, out, n_games, blocks, layout, &r.tail, &err)
                        : bz_merge_layout(paths, (size_t)n, out, NULL, layout, &err);
        if (rc)
            fprintf(stderr, "bench_merge: %s\n", err.msg);
        bz_merge_last_stats(&r.st);
        if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
            rc = 1;
        _exit(rc ? 1 : 0);
    }
    struct rusage ru;
    struct merge_result r;
    if (child_result(pid, fd, &r, sizeof r, &ru))
        return 1;
    *st = r.st;
    *tail = r.tail;
    *seconds = now_s() - t0;
    *rss_kb = ru.ru_maxrss;
    *cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    return 0;
}

int main(int argc, char **argv)
{
    int games = argc > 1 ? atoi(argv[1]) : 1500;
    int n_shards = argc > 2 ? atoi(argv[2]) : 2;
    if (games < 6)
        games = 6;
    if (n_shards < 1 || n_shards > 64)
        n_shards = 2;
    char spec_json[1024], dir[] = "/tmp/bench_merge_XXXXXX", out[300];
    char paths[64][300];
    const char *list[64];
    snprintf(spec_json, sizeof spec_json, SPEC_FMT, (games + 5) / 6);
    if (!mkdtemp(dir)) {
        perror("bench_merge: mkdtemp");
        return 1;
    }
    struct bz_err err = {0};
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    int rc = bz_spec_parse(spec_json, "bench", &spec, &err);
    if (!rc)
        rc = bz_grid_create(spec, &grid, &err);
    int64_t n_games = rc ? 0 : bz_grid_count(grid);
    for (int i = 0; i < n_shards && !rc; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/r%d.h5", dir, i);
        list[i] = paths[i];
    }
    double t_rec = 0, t_norec = 0, t_merge = 0, cpu_merge = 0, cpu_rec = 0, cpu_norec = 0;
    if (rc) {
        fprintf(stderr, "bench_merge: %s\n", err.msg);
        return 1;
    }
    if (play_child(grid, n_games, paths, n_shards, BZ_LAYOUT_PLAIN, &t_rec, &cpu_rec) ||
        play_child(grid, n_games, NULL, n_shards, BZ_LAYOUT_PLAIN, &t_norec, &cpu_norec))
        return 1;
    struct bz_merge_stats st = {0};
    long rss_kb = 0;
    snprintf(out, sizeof out, "%s/merged.h5", dir);
    /* BENCH_MERGE_REPEAT=k: k merges of the same shards, each printed (the
     * figures below are the last one's) */
    const char *rep_env = getenv("BENCH_MERGE_REPEAT");
    int reps = rep_env ? atoi(rep_env) : 1;
    for (int r = 0; r < (reps < 1 ? 1 : reps); r++) {
        unlink(out);
        double tail;
        if (merge_child(list, n_shards, out, n_games, 0, BZ_LAYOUT_PLAIN, &st, &tail, &t_merge,
                        &cpu_merge, &rss_kb)) {
            fprintf(stderr, "bench_merge: the merge failed\n");
            return 1;
        }
        if (reps > 1)
            printf("  merge %d: %.2fs wall, %.2fs cpu\n", r, t_merge, cpu_merge);
    }
    struct stat sb;
    double out_mb = stat(out, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
    double raw_mb = (double)st.raw_bytes / 1e6;
    printf("one rank, %lld games (electricity N=20, 24 turns), %d shards\n", (long long)n_games,
           n_shards);
    printf("  play with records %.2fs (cpu %.2fs), without %.2fs (cpu %.2fs): records vs no "
           "records %.2f (cpu %.2f)\n",
           t_rec, cpu_rec, t_norec, cpu_norec, t_rec / t_norec, cpu_rec / cpu_norec);
    printf("  merge %.2fs (cpu %.2fs): %.1f MB of rows -> %.1f MB file, %.0f MB/s, %d threads\n",
           t_merge, cpu_merge, raw_mb, out_mb, raw_mb / st.seconds, st.threads);
    printf("  merge cpu: %.2fs serial (%.3f ms per game), %.2fs compressing (%.3f ms per game, "
           "split over the threads)\n",
           st.cpu_main, 1e3 * st.cpu_main / (double)n_games, st.cpu_compress,
           1e3 * st.cpu_compress / (double)n_games);
    printf("  play cpu per game: %.3f ms with records\n", 1e3 * cpu_rec / (double)n_games);
    printf("  merge phases: index %.2fs, read %.2fs, wait for compression %.2fs, write %.2fs, "
           "read back %.2fs\n",
           st.seconds_index, st.seconds_read, st.seconds_wait, st.seconds_write,
           st.seconds_read_back);
    printf("  merge shard chunks: %llu read by the merging thread, %llu by the compression "
           "threads for their rows and %llu for their game ids\n",
           (unsigned long long)st.chunks_read, (unsigned long long)st.chunks_pread,
           (unsigned long long)st.chunks_scan_pread);
    printf("  merge memory: bound %.0f MiB, own buffers peak %.1f MiB, process peak RSS %.1f MiB "
           "(%llu id blocks, %llu windows, %llu direct chunks)\n",
           (double)st.bound_bytes / 1048576.0, (double)st.peak_bytes / 1048576.0,
           (double)rss_kb / 1024.0, (unsigned long long)st.blocks, (unsigned long long)st.windows,
           (unsigned long long)st.direct_chunks);
    printf("  end to end vs play (records): %.2f wall, %.2f cpu (merge on %d threads: serial cpu "
           "+ compression cpu / threads)\n",
           (t_rec + t_merge) / t_rec,
           (cpu_rec + st.cpu_main + st.cpu_compress / st.threads) / cpu_rec, st.threads);
    /* the follower's way: the same merge in 16 blocks of ids, as closed
     * segments come in; what is left after the play is its last block and
     * the finish */
    struct bz_merge_stats fst = {0};
    double f_tail = 0, f_wall = 0, f_cpu = 0;
    long f_rss = 0;
    char fout[sizeof out + 16];
    snprintf(fout, sizeof fout, "%s.follow", out);
    if (merge_child(list, n_shards, fout, n_games, 16, BZ_LAYOUT_PLAIN, &fst, &f_tail, &f_wall,
                    &f_cpu, &f_rss)) {
        fprintf(stderr, "bench_merge: the streamed merge failed\n");
        return 1;
    }
    unlink(fout);
    printf("  merge in 16 blocks (the follower's): %.2fs (cpu %.2fs, %.2f of one pass; serial "
           "%.3f ms per game, compressing %.3f), the finish after the last block %.2fs (read "
           "back %.2fs), own buffers peak %.1f MiB; rows scanned %llu (one pass %llu), shard "
           "chunks read %llu (one pass %llu); phases: index %.2fs, read %.2fs, wait %.2fs, "
           "write %.2fs\n",
           f_wall, f_cpu, f_cpu / cpu_merge, 1e3 * fst.cpu_main / (double)n_games,
           1e3 * fst.cpu_compress / (double)n_games, f_tail, fst.seconds_read_back,
           (double)fst.peak_bytes / 1048576.0, (unsigned long long)fst.rows_scanned,
           (unsigned long long)st.rows_scanned, (unsigned long long)fst.chunks_read,
           (unsigned long long)st.chunks_read, fst.seconds_index, fst.seconds_read,
           fst.seconds_wait, fst.seconds_write);
    /* the virtual layout over the same shards (stored uncompressed: the
     * merge compresses each shard chunk as it is, gathers no rows) */
    struct bz_merge_stats vst = {0};
    double v_tail = 0, v_wall = 0, v_cpu = 0;
    long v_rss = 0;
    snprintf(fout, sizeof fout, "%s.virtual", out);
    if (merge_child(list, n_shards, fout, n_games, 0, BZ_LAYOUT_VIRTUAL, &vst, &v_tail, &v_wall,
                    &v_cpu, &v_rss)) {
        fprintf(stderr, "bench_merge: the virtual merge failed\n");
        return 1;
    }
    double v_mb = stat(fout, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
    unlink(fout);
    printf("  virtual layout, merge of the same shards: %.2fs (cpu %.2fs, %.2f of the plain "
           "merge's; serial %.3f ms per game, compressing %.3f), %.1f MB file, %llu mappings, "
           "%llu chunks compressed, %llu copied; end to end vs play %.2f wall\n",
           v_wall, v_cpu, v_cpu / cpu_merge, 1e3 * vst.cpu_main / (double)n_games,
           1e3 * vst.cpu_compress / (double)n_games, v_mb, (unsigned long long)vst.mappings,
           (unsigned long long)vst.chunks_compressed, (unsigned long long)vst.chunks_copied,
           (t_rec + v_wall) / t_rec);
    /* the virtual layout as a run does it: the rank deflates its full
     * chunks as it writes them, the merge copies them */
    char vpaths[64][300];
    const char *vlist[64];
    for (int i = 0; i < n_shards; i++) {
        snprintf(vpaths[i], sizeof vpaths[i], "%s/v%d.h5", dir, i);
        vlist[i] = vpaths[i];
    }
    double t_vrec = 0, cpu_vrec = 0;
    if (play_child(grid, n_games, vpaths, n_shards, BZ_LAYOUT_VIRTUAL, &t_vrec, &cpu_vrec))
        return 1;
    snprintf(fout, sizeof fout, "%s.virtual2", out);
    if (merge_child(vlist, n_shards, fout, n_games, 0, BZ_LAYOUT_VIRTUAL, &vst, &v_tail, &v_wall,
                    &v_cpu, &v_rss)) {
        fprintf(stderr, "bench_merge: the virtual merge of virtual shards failed\n");
        return 1;
    }
    v_mb = stat(fout, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
    unlink(fout);
    printf("  virtual layout as a run writes it: play with records %.2fs (cpu %.2fs, %.3f ms per "
           "game; %.2f of the plain records' play), merge %.2fs (cpu %.2fs; serial %.3f ms per "
           "game, compressing %.3f), %.1f MB file, %llu chunks copied, %llu compressed, %llu "
           "mappings, %llu tables x sources from run indexes; end to end vs play %.2f wall "
           "(plain: %.2f); end to end %.2fs vs plain %.2fs\n",
           t_vrec, cpu_vrec, 1e3 * cpu_vrec / (double)n_games, t_vrec / t_rec, v_wall, v_cpu,
           1e3 * vst.cpu_main / (double)n_games, 1e3 * vst.cpu_compress / (double)n_games, v_mb,
           (unsigned long long)vst.chunks_copied, (unsigned long long)vst.chunks_compressed,
           (unsigned long long)vst.mappings, (unsigned long long)vst.runs_indexed,
           (t_vrec + v_wall) / t_vrec, (t_rec + t_merge) / t_rec, t_vrec + v_wall, t_rec + t_merge);
    for (int i = 0; i < n_shards && !getenv("BENCH_MERGE_KEEP"); i++) {
        char j[sizeof vpaths[0] + 16];
        snprintf(j, sizeof j, "%s.journal", vlist[i]);
        unlink(vpaths[i]);
        unlink(j);
    }
    if (getenv("BENCH_MERGE_KEEP")) { /* the shards, for other merges */
        printf("  shards kept in %s\n", dir);
        n_shards = 0;
    }
    for (int i = 0; i < n_shards; i++) {
        char j[sizeof paths[0] + 16];
        snprintf(j, sizeof j, "%s.journal", list[i]);
        unlink(paths[i]);
        unlink(j);
    }
    unlink(out);
    char lock[400];
    snprintf(lock, sizeof lock, "%s.lock", out);
    unlink(lock);
    if (n_shards)
        rmdir(dir);
    bz_grid_destroy(grid);
    bz_spec_destroy(spec);
    return 0;
}
