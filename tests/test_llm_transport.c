/* test_llm_transport: the transport's event loop against tests/llm_server.py:
 * a transfer costs a bounded number of poll()/epoll_wait() calls (libcurl's
 * own included) however many are in flight. The curl_multi_poll + perform
 * loop it replaced made 69 per transfer here at 64 in flight (perform polls
 * every transfer on every wake-up) and fails this test. Many connections to
 * open are opened a batch per poll, not all at once; above 64 in flight the
 * transfers are spread over several curl multi handles (lanes), each pooling
 * at most about 64 connections, faults and retries included; a request curl
 * resent itself on a fresh connection (a reused one died) is named in its
 * attempts. Counts, no timings. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>

#include <cmocka.h>

#include "llm/llm_internal.h"
#include "llm_test_util.h"
#include "poll_count.h"

static struct test_server srv;

static int group_setup(void **state)
{
    (void)state;
    return test_server_start(&srv, 0);
}

static int group_teardown(void **state)
{
    (void)state;
    test_server_stop(&srv);
    return 0;
}

static int n_done, n_ok;

static void on_done(struct bz_xfer *x)
{
    n_done++;
    n_ok += x->result == BZ_XFER_OK && x->http_status == 200 && x->reply_len > 0;
}

struct run_out {
    int64_t waits;                     /* poll() and epoll_wait() calls */
    int max_opened;                    /* the most connections one poll opened */
    int lanes, most_lane_conns, conns; /* at the end */
    int64_t retries;
};

/* n transfers through a transport of concurrency c, at most `retries`
 * retries each. */
static void run_r(int c, int n, int retries, struct run_out *out)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", srv.port);
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct bz_model_limits lim = {0, 0, 0, url, headers, "t"};
    struct bz_transport_opts o = {c, 30.0, retries, 0.01, 0.05, 7};
    struct bz_transport *t = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_transport_create(&o, &lim, 1, &t, &err), BZ_OK);
    struct bz_xfer *x = calloc((size_t)n, sizeof *x);
    assert_non_null(x);
    char *body = "{\"model\":\"model-a\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    n_done = n_ok = 0;
    int64_t p0 = poll_count_poll + poll_count_epoll;
    for (int i = 0; i < n; i++) {
        x[i].model = 0;
        x[i].body = body;
        x[i].est_tokens = 10;
        x[i].done = on_done;
        bz_transport_submit(t, &x[i]);
    }
    out->max_opened = 0;
    while (n_done < n) {
        int before = bz_transport_connections(t);
        int rc = bz_transport_poll(t, 50, &err);
        assert_true(rc >= 0);
        int opened = bz_transport_connections(t) - before;
        if (opened > out->max_opened)
            out->max_opened = opened;
    }
    assert_int_equal(bz_transport_pending(t), 0);
    out->waits = poll_count_poll + poll_count_epoll - p0;
    out->lanes = bz_transport_lanes(t, &out->most_lane_conns);
    out->conns = bz_transport_connections(t);
    out->retries = bz_transport_retries(t);
    for (int i = 0; i < n; i++)
        free(x[i].reply);
    free(x);
    bz_transport_destroy(t);
}

static void run(int c, int n, int64_t *waits, int *max_opened)
{
    struct run_out out;
    run_r(c, n, 3, &out);
    *waits = out.waits;
    *max_opened = out.max_opened;
}

static void waits_per_transfer_should_stay_bounded_with_64_in_flight(void **state)
{
    (void)state;
    /* a latency long enough that all 64 are in flight at once */
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 40}"), 0);
    assert_int_equal(test_server_reset(srv.port), 0);
    int64_t waits = 0;
    int max_opened = 0;
    run(64, 640, &waits, &max_opened);
    assert_int_equal(n_ok, 640);
    assert_int_equal(test_server_stat(srv.port, "completions"), 640);
    assert_int_equal(test_server_stat(srv.port, "max_inflight"), 64);
    /* a reply is one or two socket events (the server writes headers and
     * body apart) and one epoll_wait hands up to 16 ready sockets to curl;
     * curl polls a reused connection to see it is alive, and a transfer it
     * starts from a timer once more: about 3 a transfer, whatever the number
     * in flight */
    print_message("poll+epoll_wait calls per transfer at 64 in flight: %.2f (%lld for 640)\n",
                  (double)waits / 640.0, (long long)waits);
    assert_true(waits <= 8 * 640);
    /* the 64 connections were opened over several polls (at most two
     * batches of 16 a poll: before the wait and after the completions), so
     * the first requests went out before the last connects */
    print_message("most connections opened by one poll: %d\n", max_opened);
    assert_true(max_opened > 0 && max_opened <= 32);
}

/* One transfer at a time: the same bound holds (the loop neither spins on
 * a timer nor on a socket while a single request is in flight). */
static void waits_per_transfer_should_stay_bounded_with_one_in_flight(void **state)
{
    (void)state;
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 20}"), 0);
    int64_t waits = 0;
    int max_opened = 0;
    run(1, 20, &waits, &max_opened);
    assert_int_equal(n_ok, 20);
    print_message("poll+epoll_wait calls per transfer at 1 in flight: %.2f\n",
                  (double)waits / 20.0);
    assert_true(waits <= 8 * 20);
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 0}"), 0);
}

/* 256 in flight: four lanes of at most about 64 connections each (no lane
 * opens one while another has one idle), every transfer answered though the
 * first 20 requests get 429, 500, 503 and connection resets. */
static void transfers_should_spread_over_lanes_through_faults(void **state)
{
    (void)state;
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 40, \"faults\": ["
                                                  "{\"kind\": \"429\", \"count\": 5},"
                                                  "{\"kind\": \"500\", \"count\": 5},"
                                                  "{\"kind\": \"503\", \"count\": 5},"
                                                  "{\"kind\": \"reset\", \"count\": 5}]}"),
                     0);
    assert_int_equal(test_server_reset(srv.port), 0);
    struct run_out out;
    run_r(256, 768, 25, &out); /* more retries each than faults in all: every one succeeds */
    print_message("lanes %d, most connections in one %d, %d in all, %lld retries, %.2f "
                  "poll+epoll_wait calls per transfer\n",
                  out.lanes, out.most_lane_conns, out.conns, (long long)out.retries,
                  (double)out.waits / 768.0);
    assert_int_equal(n_ok, 768);
    assert_int_equal(out.lanes, 4);
    assert_true(out.most_lane_conns <= 64 + 8);
    assert_true(out.conns <= 256 + 8);
    assert_true(out.retries >= 1 && out.retries <= 20);
    assert_true(out.waits <= 8 * 768);
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 0, \"faults\": []}"), 0);
}

/* A server in a child process that answers the first request on each
 * connection (HTTP/1.1 keep-alive) and closes the connection after reading
 * the second, unanswered: a reused connection that dies before any reply
 * byte, which curl answers by sending the request again on a new one. */
static pid_t start_closing_server(int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 8) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid != 0) {
        close(lfd);
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with the test, even after a failed assertion */
    static const char body[] = "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{"
                               "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                               "\"{}\"},\"finish_reason\":\"stop\"}]}";
    char reply[512];
    int rn = snprintf(reply, sizeof reply,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                      "%zu\r\n\r\n%s",
                      strlen(body), body);
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            _exit(0);
        static char buf[65536];
        size_t len = 0;
        int n_req = 0;
        for (;;) {
            ssize_t r = recv(c, buf + len, sizeof buf - 1 - len, 0);
            if (r <= 0)
                break;
            len += (size_t)r;
            buf[len] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (!end)
                continue;
            *end = '\0';
            const char *cl = strcasestr(buf, "content-length:");
            *end = '\r';
            size_t need = (size_t)(end - buf) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            if (len < need)
                continue;
            memmove(buf, buf + need, len - need);
            len -= need;
            if (++n_req == 2)
                break; /* read, never answered: the connection closes */
            if (send(c, reply, (size_t)rn, MSG_NOSIGNAL) != rn)
                break;
        }
        close(c);
    }
}

static void resend_by_curl_should_be_named_in_the_attempts(void **state)
{
    (void)state;
    int port = 0;
    pid_t pid = start_closing_server(&port);
    assert_true(pid > 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct bz_model_limits lim = {0, 0, 0, url, headers, "t"};
    struct bz_transport_opts o = {1, 30.0, 3, 0.05, 1.0, 7};
    struct bz_transport *t = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_transport_create(&o, &lim, 1, &t, &err), BZ_OK);
    struct bz_xfer x[2];
    memset(x, 0, sizeof x);
    char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    n_done = n_ok = 0;
    for (int i = 0; i < 2; i++) { /* one after the other: the second reuses the connection */
        x[i].body = body;
        x[i].est_tokens = 10;
        x[i].done = on_done;
        bz_transport_submit(t, &x[i]);
        while (n_done < i + 1)
            assert_true(bz_transport_poll(t, 50, &err) >= 0);
    }
    assert_int_equal(n_ok, 2);
    print_message("attempts: \"%s\", then \"%s\"\n", x[0].attempts, x[1].attempts);
    assert_string_equal(x[0].attempts, "HTTP 200");
    assert_string_equal(x[1].attempts, "connection dropped (resent by curl); HTTP 200");
    assert_int_equal(x[1].retries, 0); /* curl's resend is not one of ours */
    for (int i = 0; i < 2; i++)
        free(x[i].reply);
    bz_transport_destroy(t);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* A transfer submitted while a connection is idle goes out at the next
 * bz_transport_flush: curl has sent its request (the pre-request callback
 * counted the send) before any poll, so a caller with much to do before its
 * next poll does not hold it back. */
static void flush_should_send_a_submit_onto_an_idle_connection_before_the_next_poll(void **state)
{
    (void)state;
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 0}"), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", srv.port);
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct bz_model_limits lim = {0, 0, 0, url, headers, "t"};
    struct bz_transport_opts o = {4, 30.0, 3, 0.01, 0.05, 7};
    struct bz_transport *t = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_transport_create(&o, &lim, 1, &t, &err), BZ_OK);
    struct bz_xfer x[3];
    memset(x, 0, sizeof x);
    char *body = "{\"model\":\"model-a\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    n_done = n_ok = 0;
    for (int i = 0; i < 3; i++) {
        x[i].body = body;
        x[i].est_tokens = 10;
        x[i].done = on_done;
        bz_transport_submit(t, &x[i]);
        bz_transport_flush(t);
        if (i == 0) {
            assert_int_equal(x[0].sends, 0); /* no connection yet: the poll opens one */
        } else {
            /* the first's connection is idle: sent at once */
            assert_int_equal(x[i].sends, 1);
            assert_int_equal(bz_transport_connections(t), 1);
        }
        while (n_done < i + 1)
            assert_true(bz_transport_poll(t, 50, &err) >= 0);
    }
    assert_int_equal(n_ok, 3);
    assert_int_equal(bz_transport_connections(t), 1);
    for (int i = 0; i < 3; i++)
        free(x[i].reply);
    bz_transport_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(waits_per_transfer_should_stay_bounded_with_64_in_flight),
        cmocka_unit_test(waits_per_transfer_should_stay_bounded_with_one_in_flight),
        cmocka_unit_test(transfers_should_spread_over_lanes_through_faults),
        cmocka_unit_test(resend_by_curl_should_be_named_in_the_attempts),
        cmocka_unit_test(flush_should_send_a_submit_onto_an_idle_connection_before_the_next_poll),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
