/* poll_count: counts this process's poll() and epoll_wait() calls, libcurl's
 * own included, by defining both in the executable (the dynamic linker
 * resolves libcurl's calls to them first) and forwarding to libc's. For
 * test_llm_transport and bench_llm only: include it in one file of an
 * executable, which must define _GNU_SOURCE before any header. */
#ifndef BAZAAR_POLL_COUNT_H
#define BAZAAR_POLL_COUNT_H

#include <dlfcn.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>

static int64_t poll_count_poll, poll_count_epoll;

int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    static int (*real)(struct pollfd *, nfds_t, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "poll");
    poll_count_poll++;
    return real(fds, n, timeout_ms);
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms)
{
    static int (*real)(int, struct epoll_event *, int, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "epoll_wait");
    poll_count_epoll++;
    return real(epfd, ev, max, timeout_ms);
}

#endif
