/* bench_llm_server: the LLM server bench_llm measures against, built only
 * for the bench. One thread, one epoll set, HTTP/1.1 keep-alive, deferred
 * accept (a connection is taken with its first request); every
 * completion request (OpenAI /chat/completions, Anthropic /messages) is
 * answered with a fixed action after a fixed latency L, so replies fall due
 * in arrival order and one FIFO is the whole timer queue. Costs a few
 * microseconds per request, so it is not the ceiling of what it measures.
 * Never a test fixture (tests/llm_server.py is: faults, scripts, schemas)
 * and never talks to anything but 127.0.0.1.
 *
 * Usage: bench_llm_server [--latency-ms L] [--port P] [--reply JSON] [--stamp 1]
 * (--stamp: OpenAI replies also carry "t_in" and "t_out", when the request
 * was read and the reply written, CLOCK_MONOTONIC seconds)
 * Prints "PORT <n>" on stdout once listening (as tests/llm_server.py does).
 * GET /stats: {"requests": n, "completions": n, "inflight": n,
 * "max_inflight": n, "connections": n, "cpu_us": n, "late_us": n (replies sent
 * after their due time: the sum of how late)}; POST /reset zeroes the counts. */
#define _GNU_SOURCE /* epoll_pwait2 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX (4u << 20) /* a request larger than this closes its connection */
#define WAKE_S 250e-6      /* replies fall due on this grid: at most this late */

enum conn_state { READING, WAITING, WRITING };

struct conn {
    unsigned gen; /* bumped on close: a stale FIFO entry is skipped */
    int open;
    enum conn_state state;
    int close_after;
    int anthropic;
    int want_out;     /* EPOLLOUT is set: a reply did not fit the socket buffer */
    size_t req_bytes; /* the body's size: usage figures */
    double t_in;      /* when the request was read whole (CLOCK_MONOTONIC) */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
};

struct due {
    int fd;
    unsigned gen;
    double at;
};

static struct conn *conns;
static int n_conns_max;
static struct due *fifo;
static size_t fifo_head, fifo_len, fifo_cap;
static int epfd;
static double latency_s;
static const char *reply_json = "{\"amount\": 1}";
static char *reply_escaped; /* reply_json as a JSON string's contents */
static int stamp;           /* --stamp: the OpenAI reply's JSON also says t_in and t_out */
static long st_requests, st_completions, st_inflight, st_max_inflight, st_connections;
static double st_late_s; /* replies sent after their due time: the sum of how late */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_llm_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void watch(int fd, uint32_t events, int op)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epfd, op, fd, &ev) != 0)
        die("epoll_ctl");
}

static void close_conn(int fd)
{
    struct conn *c = &conns[fd];
    if (c->state == WAITING)
        st_inflight--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    c->open = 0;
    c->gen++;
    c->in_len = c->out_len = c->out_off = 0;
    st_connections--;
}

static void reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        die("realloc");
    *buf = p;
    *cap = n;
}

static void respond(int fd, int status, const char *body)
{
    struct conn *c = &conns[fd];
    size_t bl = strlen(body);
    reserve(&c->out, &c->out_cap, bl + 256);
    int n = snprintf(c->out, c->out_cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: %s\r\n\r\n",
                     status, status == 200 ? "OK" : "Not Found", bl,
                     c->close_after ? "close" : "keep-alive");
    memcpy(c->out + n, body, bl);
    c->out_len = (size_t)n + bl;
    c->out_off = 0;
    c->state = WRITING;
}

static void handle_input(int fd);

/* Write what is pending; on completion go back to reading (or close). */
static void flush_out(int fd)
{
    struct conn *c = &conns[fd];
    while (c->out_off < c->out_len) {
        ssize_t w = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out)
                watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
            c->want_out = 1;
            return;
        }
        if (w < 0) {
            close_conn(fd);
            return;
        }
        c->out_off += (size_t)w;
    }
    c->out_len = c->out_off = 0;
    if (c->close_after) {
        close_conn(fd);
        return;
    }
    c->state = READING;
    if (c->want_out)
        watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    c->want_out = 0;
    handle_input(fd); /* a request that came in behind this reply */
}

static void completion_reply(int fd)
{
    struct conn *c = &conns[fd];
    char body[4096];
    long in_tok = (long)(c->req_bytes / 4) + 1, out_tok = 8;
    if (c->anthropic)
        snprintf(body, sizeof body,
                 "{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\","
                 "\"model\":\"bench\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_bench\","
                 "\"name\":\"action\",\"input\":%s}],\"stop_reason\":\"tool_use\","
                 "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld}}",
                 reply_json, in_tok, out_tok);
    else if (stamp)
        /* the client's clock is the same CLOCK_MONOTONIC: it splits a
         * call's latency into request out, server, reply back */
        snprintf(body, sizeof body,
                 "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"model\":\"bench\","
                 "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                 "\"{\\\"amount\\\": 1, \\\"t_in\\\": %.7f, \\\"t_out\\\": %.7f}\"},"
                 "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%ld,"
                 "\"completion_tokens\":%ld,\"total_tokens\":%ld}}",
                 c->t_in, now_s(), in_tok, out_tok, in_tok + out_tok);
    else
        snprintf(body, sizeof body,
                 "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"model\":\"bench\","
                 "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                 "\"%s\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%ld,"
                 "\"completion_tokens\":%ld,\"total_tokens\":%ld}}",
                 reply_escaped, in_tok, out_tok, in_tok + out_tok);
    st_inflight--;
    st_completions++;
    respond(fd, 200, body);
    flush_out(fd);
}

static long cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L +
           (long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Parse one complete request out of c->in, if there is one, and act on it. */
static void handle_input(int fd)
{
    struct conn *c = &conns[fd];
    if (c->state != READING || c->in_len == 0)
        return;
    reserve(&c->in, &c->in_cap, c->in_len + 1);
    c->in[c->in_len] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end) {
        if (c->in_len > 65536)
            close_conn(fd);
        return;
    }
    size_t head = (size_t)(end - c->in) + 4, clen = 0;
    int http10 = 0, conn_close = 0, conn_keep = 0;
    char method[16] = "", path[256] = "";
    if (sscanf(c->in, "%15s %255s", method, path) != 2) {
        close_conn(fd);
        return;
    }
    const char *eol = strstr(c->in, "\r\n");
    http10 = eol && eol - c->in >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0;
    for (char *h = strstr(c->in, "\r\n") + 2; h < end; h = strstr(h, "\r\n") + 2) {
        if (strncasecmp(h, "content-length:", 15) == 0)
            clen = strtoul(h + 15, NULL, 10);
        else if (strncasecmp(h, "connection:", 11) == 0) {
            const char *v = h + 11;
            while (*v == ' ')
                v++;
            conn_close = strncasecmp(v, "close", 5) == 0;
            conn_keep = strncasecmp(v, "keep-alive", 10) == 0;
        }
    }
    if (clen > REQ_MAX) {
        close_conn(fd);
        return;
    }
    if (c->in_len < head + clen)
        return; /* the body is still coming */
    c->close_after = conn_close || (http10 && !conn_keep);
    st_requests++;
    size_t used = head + clen;
    int is_post = strcmp(method, "POST") == 0;
    if (is_post && (strstr(path, "/chat/completions") || strstr(path, "/messages"))) {
        c->anthropic = strstr(path, "/messages") != NULL;
        c->req_bytes = clen;
        c->t_in = now_s();
        c->state = WAITING;
        if (++st_inflight > st_max_inflight)
            st_max_inflight = st_inflight;
        if (fifo_len == fifo_cap) {
            size_t cap = fifo_cap ? 2 * fifo_cap : 1024;
            struct due *p = malloc(cap * sizeof *p);
            if (!p)
                die("malloc");
            for (size_t i = 0; i < fifo_len; i++)
                p[i] = fifo[(fifo_head + i) % fifo_cap];
            free(fifo);
            fifo = p;
            fifo_head = 0;
            fifo_cap = cap;
        }
        fifo[(fifo_head + fifo_len++) % fifo_cap] = (struct due){fd, c->gen, now_s() + latency_s};
    } else if (strcmp(path, "/stats") == 0) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"requests\": %ld, \"completions\": %ld, \"inflight\": %ld, "
                 "\"max_inflight\": %ld, \"connections\": %ld, \"cpu_us\": %ld, \"late_us\": %ld}",
                 st_requests, st_completions, st_inflight, st_max_inflight, st_connections,
                 cpu_us(), (long)(st_late_s * 1e6));
        respond(fd, 200, body);
    } else if (is_post && strcmp(path, "/reset") == 0) {
        st_requests = st_completions = 0;
        st_late_s = 0;
        st_max_inflight = st_inflight;
        respond(fd, 200, "{}");
    } else {
        respond(fd, 404, "{\"error\":\"not found\"}");
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->state == WRITING)
        flush_out(fd);
}

static void read_conn(int fd)
{
    struct conn *c = &conns[fd];
    for (;;) {
        reserve(&c->in, &c->in_cap, c->in_len + 16384);
        size_t room = c->in_cap - c->in_len - 1;
        ssize_t r = recv(fd, c->in + c->in_len, room, 0);
        if (r > 0) {
            c->in_len += (size_t)r;
            if (c->in_len > REQ_MAX + 65536) {
                close_conn(fd);
                return;
            }
            if ((size_t)r < room)
                break; /* drained: no recv just to hear EAGAIN (level-triggered: more wakes us) */
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        close_conn(fd); /* EOF or error */
        return;
    }
    handle_input(fd);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: the next wake-up tries again */
        }
        if (fd >= n_conns_max) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = &conns[fd];
        c->open = 1;
        c->state = READING;
        c->close_after = 0;
        c->want_out = 0;
        c->in_len = c->out_len = c->out_off = 0;
        st_connections++;
        watch(fd, EPOLLIN, EPOLL_CTL_ADD);
        read_conn(fd); /* its request is in already (TCP_DEFER_ACCEPT) */
    }
}

/* reply_json as the contents of a JSON string (quotes and backslashes escaped). */
static char *escape(const char *s)
{
    char *o = malloc(2 * strlen(s) + 1), *p = o;
    if (!o)
        die("malloc");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p = '\0';
    return o;
}

int main(int argc, char **argv)
{
    int port = 0;
    double latency_ms = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--latency-ms") == 0)
            latency_ms = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reply") == 0)
            reply_json = argv[i + 1];
        else if (strcmp(argv[i], "--stamp") == 0)
            stamp = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_llm_server [--latency-ms L] [--port P] [--reply JSON] "
                            "[--stamp 0|1]\n");
            return 2;
        }
    }
    latency_s = latency_ms / 1000.0;
    reply_escaped = escape(reply_json);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    n_conns_max =
        rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1048576 ? 1048576 : (int)rl.rlim_cur;
    conns = calloc((size_t)n_conns_max, sizeof *conns);
    if (!conns)
        die("calloc");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A connection is accepted once its first request is in: one wake-up
     * and no epoll round before the read, instead of one for the handshake
     * and one for the request. On loopback the client's connect ran the
     * first wake-up, and the server's own took a core from the client while
     * it opened its C connections. bench_llm at C = 1,024, two sets of 6
     * alternated runs, medians: the first round in at L + 90 ms instead of
     * L + 100 and L + 116; 0.962 and 0.960 of C/L instead of 0.958. After
     * the first round 0.983 vs 0.982 and 0.980 vs 0.984: first requests
     * sent closer together keep their games' later turns closer together,
     * so more replies queue behind each other in the client. */
    int defer_s = 10;
    setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0)
        die("bind/listen");
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    watch(lfd, EPOLLIN, EPOLL_CTL_ADD);
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);

    struct epoll_event evs[512];
    for (;;) {
        struct timespec wait, *waitp = NULL;
        /* drop entries of closed connections, then wait for the first due,
         * rounded up to WAKE_S: a wait in whole ms (epoll_wait) made every
         * reply up to 1 ms late, 0.5 ms on average; one to the nanosecond
         * wakes once per reply (server CPU per request 25 -> 39 us) */
        while (fifo_len && conns[fifo[fifo_head].fd].gen != fifo[fifo_head].gen) {
            fifo_head = (fifo_head + 1) % fifo_cap;
            fifo_len--;
        }
        if (fifo_len) {
            double d = fifo[fifo_head].at - now_s();
            d = d <= 0 ? 0 : WAKE_S * ceil(d / WAKE_S);
            wait.tv_sec = (time_t)d;
            wait.tv_nsec = (long)((d - (double)wait.tv_sec) * 1e9);
            waitp = &wait;
        }
        int n = epoll_pwait2(epfd, evs, 512, waitp, NULL);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                accept_all(lfd);
                continue;
            }
            if (!conns[fd].open)
                continue;
            if (evs[i].events & EPOLLOUT)
                flush_out(fd);
            else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                read_conn(fd);
        }
        double now = now_s();
        while (fifo_len && fifo[fifo_head].at <= now) {
            struct due d = fifo[fifo_head];
            fifo_head = (fifo_head + 1) % fifo_cap;
            fifo_len--;
            if (conns[d.fd].gen == d.gen && conns[d.fd].open && conns[d.fd].state == WAITING) {
                st_late_s += now_s() - d.at;
                completion_reply(d.fd);
            }
        }
    }
}
