/* sched_progress: the progress rank 0 shows while a sweep runs: a bar on a
 * terminal, a line every few seconds in a log (games done of total, rate,
 * ETA, failed). Writes to stderr only. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "sched_internal.h"

double bz_sched_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bz_sched_progress_print(struct bz_sched_progress *pr, int final)
{
    if (pr->quiet)
        return;
    double t = bz_sched_now_s();
    if (!final && t - pr->last < (pr->tty ? 0.2 : pr->interval))
        return;
    pr->last = t;
    double el = t - pr->start;
    int64_t played = pr->done - pr->base;
    double rate = el > 0 ? (double)played / el : 0;
    int64_t left = pr->total - pr->done;
    double eta = rate > 0 ? (double)left / rate : NAN;
    double pct = pr->total ? 100.0 * (double)pr->done / (double)pr->total : 100.0;
    char eta_s[32];
    if (isnan(eta))
        snprintf(eta_s, sizeof eta_s, "?");
    else if (eta < 120)
        snprintf(eta_s, sizeof eta_s, "%.0fs", eta);
    else
        snprintf(eta_s, sizeof eta_s, "%.0fm%02.0fs", floor(eta / 60), fmod(eta, 60));
    if (pr->tty) {
        char bar[31];
        int fill = (int)(pct * 30 / 100);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld games %5.1f%% %.1f games/s ETA %s %lld failed ", bar,
                (long long)pr->done, (long long)pr->total, pct, rate, eta_s, (long long)pr->failed);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "progress: %lld/%lld games (%.1f%%), %.1f games/s, ETA %s, %lld failed\n",
                (long long)pr->done, (long long)pr->total, pct, rate, eta_s, (long long)pr->failed);
    }
    fflush(stderr);
}
