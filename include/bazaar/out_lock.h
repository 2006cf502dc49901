/* out_lock: one writer per output. An exclusive lock on OUT.lock, held by
 * the process that writes OUT or OUT.parts/ (a run's rank 0 for the whole
 * run, merge included; `bazaar merge`; bz_merge itself). */
#ifndef BAZAAR_OUT_LOCK_H
#define BAZAAR_OUT_LOCK_H

#include "bazaar/err.h"

struct bz_out_lock;

/* Take the lock of output out (the file out + ".lock"), before anything of
 * OUT is written. Another live process holding it: BZ_EINVAL naming the
 * holder (pid, host, since when). A lock left by a process that died is
 * free: the kernel drops a flock with its holder; on file systems without
 * flock the lock file's pid is checked on this host. Re-entrant within a
 * process (a second take of the same output counts up). An empty out is
 * BZ_EINVAL. Release with bz_out_lock_release (NULL is fine), which removes
 * the lock file on the last release. */
int bz_out_lock_take(const char *out, struct bz_out_lock **lk, struct bz_err *err);
void bz_out_lock_release(struct bz_out_lock *lk);

/* The lock's descriptor (-1: the exclusive-creation fallback, which a
 * child cannot share). */
int bz_out_lock_fd(const struct bz_out_lock *lk);

/* Adopt the lock of out that the parent holds and passed down as
 * descriptor fd (the follower merge, a child that writes OUT.tmp): the
 * flock is the parent's open file, so the lock stays held while either
 * process lives. Registered as held here (takes count it up); its release
 * closes fd and leaves the lock file to the parent. */
int bz_out_lock_adopt(const char *out, int fd, struct bz_out_lock **lk, struct bz_err *err);

/* Whether this process holds the lock of out. */
int bz_out_lock_held(const char *out);

#endif
