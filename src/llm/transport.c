/* transport: the curl multi handles (lanes, below) of a rank carrying every
 * LLM request of every live game: connection reuse, the rank's concurrency
 * cap, per-model concurrency and token buckets (requests/min, tokens/min),
 * timeouts, and retries on 429/5xx/timeouts/resets with exponential backoff
 * and jitter, honouring Retry-After. The only file that calls libcurl. Never logs a
 * header (they carry keys).
 *
 * Event loop: curl tells which sockets to watch (CURLMOPT_SOCKETFUNCTION)
 * and when its next timeout falls (CURLMOPT_TIMERFUNCTION); an epoll set
 * holds those sockets, and curl_multi_socket_action runs only the transfers
 * whose socket fired or whose timer expired. One wait costs O(ready
 * sockets), never O(transfers in flight) as curl_multi_poll + perform did.
 * A connection stays in the epoll set while idle (struct watch), so a
 * request on a kept-alive connection costs no epoll_ctl. A transfer
 * submitted when an idle connection can carry it is handed to curl at once
 * and sent by bz_transport_flush, which the caller runs once a game has
 * submitted its turn's requests (see start_now), not at the next poll.
 *
 * Transfers are handed to curl CONNECT_BATCH at a time; a batch that made
 * curl open a connection is the poll's last, so when many connections must
 * be opened at once (a run's first round: C of them) requests go out on the
 * first ones while later ones are still to be opened, instead of after all
 * C connects. Starts that reuse idle (or multiplexed) connections open
 * nothing and are never held back.
 *
 * Lanes: libcurl (7.88) walks every connection of a multi handle to the
 * host to find an idle one for each request, and every connection again
 * when a finished transfer is removed: O(connections) a request. So
 * transfers are spread over lanes, one multi handle (and connection pool)
 * per LANE_CONNS of concurrency, and a transfer goes to a lane with an idle
 * connection: CPU per request stays flat in C. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bazaar/rng.h"
#include "llm/llm_internal.h"

/* libcurl 7.80 has the pre-request callback (see on_prereq). */
#if LIBCURL_VERSION_NUM >= 0x075000
#define HAVE_PREREQ 1
#else
#define HAVE_PREREQ 0
#endif

/* Ready sockets one wait hands to curl. Few on purpose: the caller gets
 * control back after a few replies, advances their games and sends their
 * next requests at once, whereas a batch of B replies holds the last one's
 * successor back by B times the work per reply (tens of ms at 1,024 in
 * flight). The others stay ready (level-triggered) for the next wait. */
#define WAIT_EVENTS 16
/* Transfers handed to curl at once; once a batch opened a connection the
 * rest wait for the next poll: as many as one wait hands to curl when they
 * become writable, so connects and first sends alternate. */
#define CONNECT_BATCH WAIT_EVENTS
/* Concurrency one curl multi handle carries (see Lanes above). */
#define LANE_CONNS 64

struct model_state {
    struct bz_model_limits lim;
    struct curl_slist *headers;
    const char *key; /* inside lim.headers' key line, NULL without one */
    int inflight;
    double req_tokens, req_last; /* requests/min bucket */
    double tok_tokens, tok_last; /* tokens/min bucket */
};

/* A socket in the epoll set, by descriptor. Registrations are lazy: when
 * curl stops waiting on a socket (its transfer is done, the connection
 * goes idle) it stays in the set, and the next transfer on the connection
 * waits for the same events without an epoll_ctl; an idle connection that
 * fires (the server closed it) leaves the set then. Two epoll_ctl calls a
 * request fewer. Only connections opened by on_open_socket (ours) stay:
 * curl closes its other sockets (the threaded resolver's wake-up pair)
 * without on_close_socket, so they leave the set as soon as curl stops
 * waiting on them, and a descriptor number reused by a new connection
 * starts from a clean entry (a stale "registered" would hide it). */
struct watch {
    uint32_t events; /* registered for these; 0: not in the set */
    int wanted;      /* curl waits on it */
    int lane;
    int ours; /* opened by on_open_socket, not yet closed */
};

/* One curl multi handle and the connections it pools. */
struct lane {
    struct bz_transport *t;
    CURLM *multi;
    int idx;
    double timer_at; /* when curl wants CURL_SOCKET_TIMEOUT run; < 0: never */
    int n_active;    /* transfers on it */
    int n_conns;     /* sockets it opened and has not closed */
    int fresh;       /* start_now added a transfer that curl has not run yet */
};

struct bz_transport {
    struct bz_transport_opts o;
    struct lane *lanes;
    int n_lanes;
    struct model_state *ms;
    size_t n_models;
    struct bz_xfer *qhead, *qtail; /* queued: waiting to start */
    int n_queued, n_active;
    CURL **pool; /* idle easy handles */
    int n_pool, cap_pool;
    struct bz_rng rng;
    int64_t retries;
    int epfd;                            /* the sockets curl asked us to watch */
    struct epoll_event evs[WAIT_EVENTS]; /* one wait's ready sockets */
    int sock_errno;                      /* an epoll_ctl failure, reported by the next poll */
    int n_conns;                         /* sockets curl opened and has not closed, all lanes */
    int held;                            /* start_ready stopped at its batch size */
    struct watch *watch;                 /* by descriptor */
    int n_watch;
    int submit_rc; /* a curl failure while bz_transport_submit started a transfer */
    int fresh;     /* some lane is fresh: bz_transport_flush has work */
};

static int curl_ready;

double bz_llm_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Bucket capacity: five seconds' worth (at least one unit), so a limit
 * smooths bursts instead of allowing a minute's quota at once. */
static double bucket_cap(double per_min)
{
    return per_min / 12.0 > 1.0 ? per_min / 12.0 : 1.0;
}

static void refill(double *tokens, double *last, double per_min, double now)
{
    double cap = bucket_cap(per_min);
    *tokens += (now - *last) * per_min / 60.0;
    if (*tokens > cap)
        *tokens = cap;
    *last = now;
}

/* Descriptors kept for everything but sockets: stdio, shard and journal,
 * HDF5, MPI, the cache, curl's own wake-up pipes. */
#define FD_RESERVE 64
/* Idle connections curl keeps beyond the concurrency cap. */
#define CONN_SPARE 8

/* Lanes (curl multi handles) a concurrency takes. */
static int n_lanes_for(int concurrency)
{
    return (concurrency + LANE_CONNS - 1) / LANE_CONNS;
}

/* Descriptors a concurrency needs beyond FD_RESERVE: its connections, and
 * the wake-up socket pair of every curl multi handle but the first. */
static rlim_t fds_for(int concurrency)
{
    return (rlim_t)concurrency + 2 * (rlim_t)(n_lanes_for(concurrency) - 1) + CONN_SPARE;
}

/* The concurrency the descriptors allow: the soft RLIMIT_NOFILE is raised
 * towards the hard one when that helps; a cap above what remains is lowered
 * with a message (a socket that cannot be opened would fail requests only
 * after others were paid for); none left at all is BZ_EINVAL. */
static int bound_by_fds(int *concurrency, struct bz_err *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return BZ_OK;
    rlim_t want = fds_for(*concurrency) + FD_RESERVE;
    if (rl.rlim_cur < want && rl.rlim_max > rl.rlim_cur) {
        struct rlimit up = {want < rl.rlim_max ? want : rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = up.rlim_cur;
    }
    if (rl.rlim_cur >= want)
        return BZ_OK;
    if (rl.rlim_cur < (rlim_t)CONN_SPARE + FD_RESERVE + 1)
        return bz_err_set(err, BZ_EINVAL,
                          "only %llu file descriptors may be open (ulimit -n); LLM requests "
                          "need at least %d: raise the limit",
                          (unsigned long long)rl.rlim_cur, CONN_SPARE + FD_RESERVE + 1);
    int allowed = (int)(rl.rlim_cur - CONN_SPARE - FD_RESERVE);
    while (allowed > 1 && fds_for(allowed) + FD_RESERVE > rl.rlim_cur)
        allowed--;
    fprintf(stderr,
            "bazaar: llm concurrency %d lowered to %d: only %llu file descriptors may be open "
            "(ulimit -n)\n",
            *concurrency, allowed, (unsigned long long)rl.rlim_cur);
    *concurrency = allowed;
    return BZ_OK;
}

/* Whether a header line carries a key. */
static int is_key_header(const char *h)
{
    return strncasecmp(h, "authorization:", 14) == 0 || strncasecmp(h, "x-api-key:", 10) == 0;
}

/* The watch entry of descriptor s, growing the table; NULL without memory. */
static struct watch *watch_of(struct bz_transport *t, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    if (s >= t->n_watch) {
        int n = t->n_watch ? t->n_watch : 256;
        while (n <= s)
            n *= 2;
        struct watch *w = realloc(t->watch, (size_t)n * sizeof *w);
        if (!w)
            return NULL;
        memset(w + t->n_watch, 0, (size_t)(n - t->n_watch) * sizeof *w);
        t->watch = w;
        t->n_watch = n;
    }
    return &t->watch[s];
}

/* Take s out of the epoll set (a closed descriptor has left it by itself:
 * ENOENT, EBADF are fine). */
static void unwatch(struct bz_transport *t, curl_socket_t s)
{
    if (s < 0 || s >= t->n_watch || !t->watch[s].events)
        return;
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, s, NULL);
    t->watch[s].events = 0;
    t->watch[s].wanted = 0;
}

/* A descriptor number (re)used by a new socket: whatever the entry said
 * was about a closed descriptor, which the kernel took out of the set. */
static void watch_fresh(struct bz_transport *t, curl_socket_t s, int ours)
{
    struct watch *w = watch_of(t, s);
    if (w)
        *w = (struct watch){.ours = ours};
}

/* curl's socket callback: the epoll set holds at least what curl waits
 * for (see struct watch: a socket curl stopped waiting on may stay). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sockp)
{
    (void)e;
    (void)sockp;
    struct lane *l = ud;
    struct bz_transport *t = l->t;
    if (what == CURL_POLL_REMOVE) {
        if (s >= 0 && s < t->n_watch) {
            t->watch[s].wanted = 0;
            if (!t->watch[s].ours)
                unwatch(t, s); /* curl may close it without telling us */
        }
        return 0;
    }
    struct watch *w = watch_of(t, s);
    if (!w) {
        if (!t->sock_errno)
            t->sock_errno = ENOMEM;
        return 0;
    }
    uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    w->wanted = 1;
    if (w->events == events && w->lane == l->idx)
        return 0; /* registered so already */
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = (uint64_t)(uint32_t)s | (uint64_t)l->idx << 32; /* the lane and the socket */
    int rc = epoll_ctl(t->epfd, w->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    if (rc != 0 && (errno == EEXIST || errno == ENOENT)) /* descriptor number reused */
        rc = epoll_ctl(t->epfd, errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    if (rc != 0) {
        w->events = 0;
        if (!t->sock_errno)
            t->sock_errno = errno;
        return 0;
    }
    w->events = events;
    w->lane = l->idx;
    return 0;
}

/* curl's timer callback: remember when CURL_SOCKET_TIMEOUT is due (the
 * wait is shortened to it); -1 removes the timer. */
static int on_timer(CURLM *m, long timeout_ms, void *ud)
{
    (void)m;
    struct lane *l = ud;
    l->timer_at = timeout_ms < 0 ? -1.0 : bz_llm_now_s() + (double)timeout_ms / 1000.0;
    return 0;
}

/* curl's socket opener and closer: they count the connections, so that
 * start_batches sees whether a batch opened one. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    struct lane *l = ud;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s != CURL_SOCKET_BAD) {
        l->n_conns++;
        l->t->n_conns++;
        watch_fresh(l->t, s, 1);
    }
    return s;
}

static int on_close_socket(void *ud, curl_socket_t s)
{
    struct lane *l = ud; /* the lane whose transfer opened it: curl keeps that per connection */
    l->n_conns--;
    l->t->n_conns--;
    unwatch(l->t, s); /* before its number can be reused */
    if (s >= 0 && s < l->t->n_watch)
        l->t->watch[s].ours = 0;
    return close(s);
}

int bz_transport_create(const struct bz_transport_opts *o, const struct bz_model_limits *models,
                        size_t n_models, struct bz_transport **out, struct bz_err *err)
{
    *out = NULL;
    int concurrency = o->concurrency < 1 ? 1 : o->concurrency;
    int rc = bound_by_fds(&concurrency, err);
    if (rc)
        return rc;
    /* Keys in memory: no core dump, no ptrace by other users' processes. */
    for (size_t i = 0; i < n_models; i++)
        for (const char *const *h = models[i].headers; h && *h; h++)
            if (is_key_header(*h) && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
                return bz_err_set(err, BZ_EINTERNAL, "cannot make the process non-dumpable");
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return bz_err_set(err, BZ_ENET, "libcurl could not be initialised");
        curl_ready = 1;
    }
    struct bz_transport *t = calloc(1, sizeof *t);
    if (!t)
        return bz_err_set(err, BZ_ENOMEM, "out of memory creating the LLM transport");
    t->o = *o;
    t->o.concurrency = concurrency;
    if (t->o.backoff_cap_s <= 0)
        t->o.backoff_cap_s = 60;
    bz_rng_init(&t->rng, o->seed, 0x6a6974746572ULL);
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0) {
        int e = errno;
        free(t);
        return bz_err_set(err, BZ_ENET, "cannot create the LLM transport's epoll set: %s",
                          strerror(e));
    }
    int n_lanes = n_lanes_for(concurrency);
    t->lanes = calloc((size_t)n_lanes, sizeof *t->lanes);
    t->ms = calloc(n_models ? n_models : 1, sizeof *t->ms);
    if (!t->lanes || !t->ms)
        goto nomem;
    for (; t->n_lanes < n_lanes; t->n_lanes++) {
        struct lane *l = &t->lanes[t->n_lanes];
        l->t = t;
        l->idx = t->n_lanes;
        l->timer_at = -1;
        l->multi = curl_multi_init();
        if (!l->multi)
            goto nomem;
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
        curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
        /* connection reuse across all games: a pool as large as the cap */
        curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)t->o.concurrency + CONN_SPARE);
    }
    t->n_models = n_models;
    double now = bz_llm_now_s();
    for (size_t i = 0; i < n_models; i++) {
        struct model_state *s = &t->ms[i];
        s->lim = models[i];
        s->req_tokens = bucket_cap(s->lim.rpm);
        s->tok_tokens = bucket_cap(s->lim.tpm);
        s->req_last = s->tok_last = now;
        for (const char *const *h = models[i].headers; h && *h; h++) {
            if (is_key_header(*h)) {
                const char *v = strchr(*h, ':') + 1;
                while (*v == ' ')
                    v++;
                if (strncasecmp(v, "bearer ", 7) == 0)
                    v += 7;
                s->key = v;
            }
            struct curl_slist *n = curl_slist_append(s->headers, *h);
            if (!n)
                goto nomem;
            s->headers = n;
        }
        /* No "Expect: 100-continue" round trip before large bodies. */
        struct curl_slist *n = curl_slist_append(s->headers, "Expect:");
        if (!n)
            goto nomem;
        s->headers = n;
    }
    *out = t;
    return BZ_OK;
nomem:
    bz_transport_destroy(t);
    return bz_err_set(err, BZ_ENOMEM, "out of memory creating the LLM transport");
}

static void unlink_queued(struct bz_transport *t, struct bz_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        t->qhead = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        t->qtail = x->prev;
    x->prev = x->next = NULL;
    x->queued = 0;
    t->n_queued--;
}

static void enqueue(struct bz_transport *t, struct bz_xfer *x)
{
    x->prev = t->qtail;
    x->next = NULL;
    if (t->qtail)
        t->qtail->next = x;
    else
        t->qhead = x;
    t->qtail = x;
    x->queued = 1;
    t->n_queued++;
}

static void release_easy(struct bz_transport *t, struct bz_xfer *x)
{
    CURL *e = x->easy;
    if (!e)
        return;
    curl_multi_remove_handle(t->lanes[x->lane].multi, e);
    x->easy = NULL;
    if (x->active) {
        x->active = 0;
        t->n_active--;
        t->lanes[x->lane].n_active--;
        t->ms[x->model].inflight--;
    }
    /* nothing of x stays reachable from the pooled handle */
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
#if HAVE_PREREQ
    curl_easy_setopt(e, CURLOPT_PREREQDATA, NULL);
#else
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, NULL);
#endif
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    if (t->n_pool == t->cap_pool) {
        int cap = t->cap_pool ? 2 * t->cap_pool : 16;
        CURL **p = realloc(t->pool, (size_t)cap * sizeof *p);
        if (!p) {
            curl_easy_cleanup(e);
            return;
        }
        t->pool = p;
        t->cap_pool = cap;
    }
    t->pool[t->n_pool++] = e;
}

void bz_transport_destroy(struct bz_transport *t)
{
    if (!t)
        return;
    while (t->qhead)
        unlink_queued(t, t->qhead);
    /* Active transfers belong to their callers; detach their handles. */
    for (int i = 0; i < t->n_lanes; i++) {
        CURL **list = NULL;
#if LIBCURL_VERSION_NUM >= 0x080400
        list = curl_multi_get_handles(t->lanes[i].multi);
#endif
        for (CURL **e = list; e && *e; e++) {
            struct bz_xfer *x = NULL;
            curl_easy_getinfo(*e, CURLINFO_PRIVATE, (char **)&x);
            if (x)
                release_easy(t, x);
        }
        curl_free(list);
    }
    for (int i = 0; i < t->n_pool; i++)
        curl_easy_cleanup(t->pool[i]);
    free(t->pool);
    for (size_t i = 0; i < t->n_models; i++)
        curl_slist_free_all(t->ms[i].headers);
    free(t->ms);
    for (int i = 0; i < t->n_lanes; i++) /* may still call on_socket: epfd stays open till here */
        curl_multi_cleanup(t->lanes[i].multi);
    free(t->lanes);
    if (t->epfd >= 0)
        close(t->epfd);
    free(t->watch);
    free(t);
}

/* Append one attempt's outcome to x->attempts ("..." once it is full). */
static void note_attempt(struct bz_xfer *x, const char *what)
{
    size_t n = strlen(x->attempts);
    if (n + 4 >= sizeof x->attempts || (n && strcmp(x->attempts + n - 3, "...") == 0))
        return;
    int w = snprintf(x->attempts + n, sizeof x->attempts - n, "%s%s", n ? "; " : "", what);
    if (w < 0 || (size_t)w >= sizeof x->attempts - n)
        memcpy(x->attempts + sizeof x->attempts - 4, "...", 4);
}

/* The kind of a transport failure, in words a log reader can count. */
static const char *fault_kind(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_RECV_ERROR: return "connection reset";
    case CURLE_SEND_ERROR: return "send failed";
    case CURLE_GOT_NOTHING: return "connection dropped (empty reply)";
    case CURLE_PARTIAL_FILE: return "truncated body";
    case CURLE_COULDNT_CONNECT: return "cannot connect";
    case CURLE_COULDNT_RESOLVE_HOST: return "cannot resolve host";
    case CURLE_SSL_CONNECT_ERROR: return "TLS handshake failed";
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return "HTTP/2 stream error";
    default: return curl_easy_strerror(c);
    }
}

static void start_now(struct bz_transport *t, struct bz_xfer *x);

void bz_transport_submit(struct bz_transport *t, struct bz_xfer *x)
{
    x->attempts[0] = '\0';
    x->result = BZ_XFER_OK;
    x->http_status = 0;
    x->retries = 0;
    x->latency_ms = 0;
    x->error[0] = '\0';
    x->first_start = 0;
    x->not_before = 0;
    x->retry_after_s = 0;
    x->toobig = 0;
    free(x->reply);
    x->reply = NULL;
    x->reply_len = 0;
    enqueue(t, x);
    start_now(t, x);
}

void bz_transport_remove(struct bz_transport *t, struct bz_xfer *x)
{
    if (x->queued)
        unlink_queued(t, x);
    if (x->easy)
        release_easy(t, x);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct bz_xfer *x = ud;
    size_t n = size * nmemb;
    if (x->reply_len + n > BZ_LLM_REPLY_MAX) {
        x->toobig = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    char *p = realloc(x->reply, x->reply_len + n + 1);
    if (!p)
        return 0;
    memcpy(p + x->reply_len, data, n);
    x->reply = p;
    x->reply_len += n;
    x->reply[x->reply_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct bz_xfer *x = ud;
    size_t n = size * nmemb;
    if (n > 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new response (after 100, redirects) */
        x->retry_after_s = 0;
        return n;
    }
    static const char ra[] = "retry-after:";
    static const char ra_ms[] = "retry-after-ms:";
    char line[128];
    size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, data, k);
    line[k] = '\0';
    for (char *c = line; *c && *c != ':'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    if (strncmp(line, ra_ms, sizeof ra_ms - 1) == 0) {
        double v = strtod(line + sizeof ra_ms - 1, NULL);
        if (v > 0)
            x->retry_after_s = v / 1000.0;
    } else if (strncmp(line, ra, sizeof ra - 1) == 0) {
        char *val = line + sizeof ra - 1;
        while (*val == ' ')
            val++;
        char *end;
        double v = strtod(val, &end);
        if (end != val && (*end == '\r' || *end == '\n' || *end == '\0' || *end == ' ')) {
            if (v > 0)
                x->retry_after_s = v;
        } else {
            time_t when = curl_getdate(val, NULL);
            if (when > 0 && when > time(NULL))
                x->retry_after_s = difftime(when, time(NULL));
        }
        if (x->retry_after_s > 600)
            x->retry_after_s = 600; /* a confused server must not stall a sweep for hours */
    }
    return n;
}

/* libcurl retries a request itself when a reused connection died before
 * any reply byte: such an attempt reaches no other callback. From libcurl
 * 7.80 the pre-request callback, called before every send of the request,
 * shows it (a second send in one attempt) at no cost per request; before,
 * the verbose info text does (formatted for every request: about 8,000
 * instructions each), and only that text is looked at (never headers or
 * data: they carry keys). */
#if HAVE_PREREQ
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    struct bz_xfer *x = ud;
    if (++x->sends > 1)
        note_attempt(x, "connection dropped (resent by curl)");
    return CURL_PREREQFUNC_OK;
}
#else
static int on_debug(CURL *e, curl_infotype type, char *text, size_t n, void *ud)
{
    (void)e;
    static const char died[] = "Connection died, retrying";
    if (type == CURLINFO_TEXT && n >= sizeof died - 1 && memcmp(text, died, sizeof died - 1) == 0)
        note_attempt(ud, "connection dropped (resent by curl)");
    return 0;
}
#endif

/* An easy handle with the options every request shares; start_one sets
 * the request's own, release_easy unhooks them, and the handle is pooled
 * with the shared ones kept (no curl_easy_reset and setting them again). */
static CURL *new_easy(const struct bz_transport *t)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    long timeout_ms = (long)(t->o.timeout_s * 1000.0);
    if (timeout_ms < 1)
        timeout_ms = 1;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
#if HAVE_PREREQ
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
#else
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bazaar/" BZ_VERSION);
    return e;
}

/* The lane for a new transfer: the one with the most idle connections, or
 * with none idle anywhere the one with the fewest transfers (it opens one). */
static struct lane *pick_lane(struct bz_transport *t)
{
    struct lane *best = &t->lanes[0];
    for (int i = 1; i < t->n_lanes; i++) {
        struct lane *l = &t->lanes[i];
        int idle = l->n_conns - l->n_active, best_idle = best->n_conns - best->n_active;
        if (idle > best_idle || (idle <= 0 && best_idle <= 0 && l->n_active < best->n_active))
            best = l;
    }
    return best;
}

static int start_one(struct bz_transport *t, struct bz_xfer *x, double now)
{
    CURL *e = t->n_pool ? t->pool[--t->n_pool] : new_easy(t);
    if (!e)
        return -1;
    struct lane *l = pick_lane(t);
    struct model_state *s = &t->ms[x->model];
    curl_easy_setopt(e, CURLOPT_URL, s->lim.url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error);
#if HAVE_PREREQ
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
#else
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, x);
#endif
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, l);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, l);
    x->sends = 0;
    x->error[0] = '\0';
    free(x->reply);
    x->reply = NULL;
    x->reply_len = 0;
    x->toobig = 0;
    x->retry_after_s = 0;
    if (curl_multi_add_handle(l->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -1;
    }
    x->easy = e;
    x->lane = l->idx;
    x->active = 1;
    l->n_active++;
    if (x->first_start == 0)
        x->first_start = now;
    t->n_active++;
    s->inflight++;
    if (s->lim.rpm > 0)
        s->req_tokens -= 1;
    if (s->lim.tpm > 0) {
        double need = (double)x->est_tokens;
        double cap = bucket_cap(s->lim.tpm);
        s->tok_tokens -= need < cap ? need : cap;
    }
    return 0;
}

static void refill_all(struct bz_transport *t, double now)
{
    for (size_t i = 0; i < t->n_models; i++) {
        struct model_state *s = &t->ms[i];
        if (s->lim.rpm > 0)
            refill(&s->req_tokens, &s->req_last, s->lim.rpm, now);
        if (s->lim.tpm > 0)
            refill(&s->tok_tokens, &s->tok_last, s->lim.tpm, now);
    }
}

/* Whether queued x may start now (backoff, the model's concurrency and
 * buckets; the rank's cap is the caller's); if not, *when gets the earliest
 * time it may (0: a completion will tell). */
static int may_start(const struct bz_transport *t, const struct bz_xfer *x, double now,
                     double *when)
{
    const struct model_state *s = &t->ms[x->model];
    *when = 0;
    if (x->not_before > now)
        *when = x->not_before;
    else if (s->lim.max_concurrency > 0 && s->inflight >= s->lim.max_concurrency)
        *when = 0;
    else if (s->lim.rpm > 0 && s->req_tokens < 1.0)
        *when = now + (1.0 - s->req_tokens) * 60.0 / s->lim.rpm;
    else if (s->lim.tpm > 0 && s->tok_tokens < ((double)x->est_tokens < bucket_cap(s->lim.tpm)
                                                    ? (double)x->est_tokens
                                                    : bucket_cap(s->lim.tpm)))
        *when = now + 0.05;
    else
        return 1;
    return 0;
}

/* Start what concurrency, buckets and backoff allow, at most `batch`;
 * t->held says more could start. *next_s gets the earliest time something
 * blocked may start (0: a completion will tell). */
static void start_ready(struct bz_transport *t, double now, int batch, double *next_s)
{
    *next_s = 0;
    t->held = 0;
    refill_all(t, now);
    int started = 0;
    struct bz_xfer *x = t->qhead;
    while (x && t->n_active < t->o.concurrency) {
        struct bz_xfer *next = x->next;
        double when = 0;
        if (may_start(t, x, now, &when)) {
            if (started == batch) {
                t->held = 1;
                break;
            }
            unlink_queued(t, x);
            started++;
            if (start_one(t, x, now) != 0) {
                /* No handle: try again on the next poll. */
                enqueue(t, x);
                x->not_before = now + 0.1;
            }
        } else if (when > 0 && (*next_s == 0 || when < *next_s)) {
            *next_s = when;
        }
        x = next;
    }
}

static int retryable_status(long st)
{
    return st == 408 || st == 409 || st == 425 || st == 429 || st == 500 || st == 502 ||
           st == 503 || st == 504 || st == 520 || st == 522 || st == 524 || st == 529;
}

static int retryable_code(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_COULDNT_RESOLVE_HOST: return 1;
    default: return 0;
    }
}

static int schedule_retry(struct bz_transport *t, struct bz_xfer *x, double now)
{
    if (x->retries >= t->o.max_retries)
        return 0;
    double d = t->o.backoff_base_s;
    for (int i = 0; i < x->retries && d < t->o.backoff_cap_s; i++)
        d *= 2;
    if (d > t->o.backoff_cap_s)
        d = t->o.backoff_cap_s;
    /* Equal jitter: half fixed, half random, so retries of many requests
     * that failed together spread out. */
    d = d * (0.5 + 0.5 * bz_rng_uniform(&t->rng));
    if (x->retry_after_s > d)
        d = x->retry_after_s;
    x->retries++;
    t->retries++;
    x->not_before = now + d;
    enqueue(t, x);
    return 1;
}

int bz_transport_retry(struct bz_transport *t, struct bz_xfer *x, const char *why)
{
    if (x->easy)
        release_easy(t, x);
    snprintf(x->error, sizeof x->error, "%s", why);
    /* the last attempt's "HTTP 200" was a bad reply after all: say so */
    size_t n = strlen(x->attempts);
    if (n >= 8 && strcmp(x->attempts + n - 8, "HTTP 200") == 0) {
        n -= 8;
        if (n >= 2 && strncmp(x->attempts + n - 2, "; ", 2) == 0)
            n -= 2;
        x->attempts[n] = '\0';
    }
    note_attempt(x, "bad reply (HTTP 200)");
    return schedule_retry(t, x, bz_llm_now_s());
}

/* Run curl's timeout actions where due (this also starts transfers just
 * added: adding one sets a timer of 0). */
static int run_lane_timer(struct lane *l, double now)
{
    if (l->timer_at < 0 || now < l->timer_at)
        return BZ_OK;
    /* The action may set a new timer (on_timer) or remove it (-1). curl
     * calls on_timer only when its earliest timer changed: when it does
     * not, the one it last gave still holds (bz_transport_flush runs a
     * timer that may not be due yet by our clock). */
    double was = l->timer_at;
    l->timer_at = -2;
    l->fresh = 0; /* what start_now added runs now */
    int running;
    CURLMcode mc = curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (l->timer_at == -2)
        l->timer_at = was;
    return mc == CURLM_OK ? BZ_OK : BZ_ENET;
}

static int run_timer(struct bz_transport *t, struct bz_err *err)
{
    double now = bz_llm_now_s();
    for (int i = 0; i < t->n_lanes; i++)
        if (run_lane_timer(&t->lanes[i], now))
            return bz_err_set(err, BZ_ENET, "curl_multi_socket_action failed");
    return BZ_OK;
}

/* A transfer submitted while nothing waits before it, the rank's cap and
 * the model's limits allow it and a lane has an idle connection: handed to
 * curl now, and sent by the caller's bz_transport_flush once the game has
 * submitted all of its turn's requests (or by the next poll), not after
 * every game a reply advanced has been stepped. Not sent here one by one:
 * each send may wake the server's process (on one machine, a wake-up for
 * each request costs both sides CPU), a game's requests go out together.
 * Nothing else starts here: connections are opened by the polls, a batch
 * at a time (see start_batches). */
static void start_now(struct bz_transport *t, struct bz_xfer *x)
{
    if (t->qhead != x || x->next || t->n_active >= t->o.concurrency)
        return;
    struct lane *l = pick_lane(t);
    if (l->n_conns <= l->n_active)
        return; /* it would open a connection */
    double now = bz_llm_now_s(), when;
    refill_all(t, now);
    if (!may_start(t, x, now, &when))
        return;
    unlink_queued(t, x);
    if (start_one(t, x, now) != 0) {
        enqueue(t, x); /* the next poll tries again */
        return;
    }
    t->lanes[x->lane].fresh = 1;
    t->fresh = 1;
}

void bz_transport_flush(struct bz_transport *t)
{
    if (!t->fresh)
        return;
    t->fresh = 0;
    for (int i = 0; i < t->n_lanes; i++) {
        struct lane *l = &t->lanes[i];
        if (!l->fresh)
            continue;
        /* Adding the handle set the lane's timer to "now" as curl's clock
         * had it, which can be later than a `now` read before: run it
         * without comparing clocks (a fresh lane's timer is due: the poll
         * that ran it would have cleared fresh). */
        if (run_lane_timer(l, l->timer_at) && !t->submit_rc)
            t->submit_rc = BZ_ENET; /* reported by the next poll */
        l->fresh = 0;
    }
}

/* Hand curl what may start, a batch at a time; a batch that opened a
 * connection is the last (t->held: the next poll starts the rest, once the
 * wait has sent these). */
static int start_batches(struct bz_transport *t, double *next_s, struct bz_err *err)
{
    for (;;) {
        int before = t->n_conns;
        start_ready(t, bz_llm_now_s(), CONNECT_BATCH, next_s);
        int rc = run_timer(t, err); /* curl connects or sends what was added */
        if (rc || !t->held || t->n_conns > before)
            return rc;
    }
}

/* The next message of a lane from *lane on; NULL once every lane is read. */
static CURLMsg *next_msg(struct bz_transport *t, int *lane)
{
    int left;
    for (; *lane < t->n_lanes; (*lane)++) {
        CURLMsg *m = curl_multi_info_read(t->lanes[*lane].multi, &left);
        if (m)
            return m;
    }
    return NULL;
}

int bz_transport_poll(struct bz_transport *t, int timeout_ms, struct bz_err *err)
{
    double t0, next_s;
    if (t->submit_rc) {
        t->submit_rc = 0;
        return -bz_err_set(err, BZ_ENET, "curl_multi_socket_action failed");
    }
    int rc = start_batches(t, &next_s, err); /* sends what was queued before waiting */
    if (rc)
        return -rc;
    if (t->n_active == 0 && t->n_queued == 0)
        return 0;
    long wait = timeout_ms < 0 ? 0 : timeout_ms;
    t0 = bz_llm_now_s();
    for (int i = 0; i < t->n_lanes; i++) {
        if (t->lanes[i].timer_at < 0)
            continue;
        long until = (long)ceil((t->lanes[i].timer_at - t0) * 1000.0);
        if (until < wait)
            wait = until < 0 ? 0 : until;
    }
    if (next_s > 0) {
        long until = (long)((next_s - t0) * 1000.0) + 1;
        if (until < wait)
            wait = until < 0 ? 0 : until;
    }
    if (t->held)
        wait = 0; /* the connections just opened send now, the next batch on the next poll */
    /* With nothing in flight this is the backoff or rate-limit sleep. */
    int n = epoll_wait(t->epfd, t->evs, WAIT_EVENTS, (int)wait);
    if (n < 0 && errno != EINTR)
        return -bz_err_set(err, BZ_ENET, "epoll_wait failed: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        uint32_t ev = t->evs[i].events;
        curl_socket_t fd = (curl_socket_t)(uint32_t)t->evs[i].data.u64;
        if (fd < t->n_watch && !t->watch[fd].wanted) {
            unwatch(t, fd); /* an idle connection fired: closed by the server, most likely */
            continue;
        }
        int mask = (ev & EPOLLIN ? CURL_CSELECT_IN : 0) | (ev & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                   (ev & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        int running;
        CURLM *m = t->lanes[t->evs[i].data.u64 >> 32].multi;
        if (curl_multi_socket_action(m, fd, mask, &running) != CURLM_OK)
            return -bz_err_set(err, BZ_ENET, "curl_multi_socket_action failed");
    }
    if ((rc = run_timer(t, err)))
        return -rc;
    if (t->sock_errno) {
        int e = t->sock_errno;
        t->sock_errno = 0;
        return -bz_err_set(err, BZ_ENET, "cannot watch an LLM connection (epoll_ctl): %s",
                           strerror(e));
    }

    /* Collect finished transfers first: done() may queue or cancel others. */
    struct bz_xfer *done_head = NULL, **done_tail = &done_head;
    int n_done = 0;
    double now = bz_llm_now_s();
    CURLMsg *msg;
    int lane = 0;
    while ((msg = next_msg(t, &lane))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct bz_xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode code = msg->data.result;
        long status = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        release_easy(t, x);
        /* Before anything reads the body (cache, records, messages, logs):
         * a server that echoes a key, any model's, gets it masked in full. */
        for (size_t i = 0; x->reply && i < t->n_models; i++)
            bz_provider_redact(x->reply, x->reply_len, t->ms[i].key);
        x->http_status = status;
        int retry = 0;
        char what[64];
        if (code == CURLE_OK && status >= 200 && status < 300) {
            x->result = BZ_XFER_OK;
            snprintf(what, sizeof what, "HTTP %ld", status);
        } else if (code == CURLE_OK) {
            x->result = BZ_XFER_HTTP;
            snprintf(x->error, sizeof x->error, "HTTP %ld", status);
            snprintf(what, sizeof what, "HTTP %ld", status);
            retry = retryable_status(status);
        } else if (x->toobig) {
            x->result = BZ_XFER_TOOBIG;
            snprintf(x->error, sizeof x->error, "reply larger than %u bytes", BZ_LLM_REPLY_MAX);
            snprintf(what, sizeof what, "too big");
        } else {
            x->result = BZ_XFER_NET;
            if (!x->error[0])
                snprintf(x->error, sizeof x->error, "%s", curl_easy_strerror(code));
            snprintf(what, sizeof what, "%s", fault_kind(code));
            retry = retryable_code(code);
        }
        note_attempt(x, what);
        if (retry && schedule_retry(t, x, now))
            continue;
        x->latency_ms = (now - x->first_start) * 1000.0;
        x->next = NULL;
        *done_tail = x;
        done_tail = &x->next;
        n_done++;
    }
    while (done_head) {
        struct bz_xfer *x = done_head;
        done_head = x->next;
        x->next = NULL;
        x->done(x);
    }
    /* what the completions freed a slot for goes out now, not after a wait */
    if ((rc = start_batches(t, &next_s, err)))
        return -rc;
    return n_done;
}

int bz_transport_pending(const struct bz_transport *t)
{
    return t->n_queued + t->n_active;
}
int bz_transport_active(const struct bz_transport *t)
{
    return t->n_active;
}
int bz_transport_connections(const struct bz_transport *t)
{
    return t->n_conns;
}
int bz_transport_lanes(const struct bz_transport *t, int *most_conns)
{
    *most_conns = 0;
    for (int i = 0; i < t->n_lanes; i++)
        if (t->lanes[i].n_conns > *most_conns)
            *most_conns = t->lanes[i].n_conns;
    return t->n_lanes;
}
int64_t bz_transport_retries(const struct bz_transport *t)
{
    return t->retries;
}

void bz_transport_charge(struct bz_transport *t, int model, int64_t est, int64_t actual)
{
    struct model_state *s = &t->ms[model];
    if (s->lim.tpm > 0)
        s->tok_tokens -= (double)(actual - est);
}
