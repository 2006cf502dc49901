/* test_llm_transport: the transport's event loop against tests/llm_server.py:
 * a transfer costs a bounded number of poll()/epoll_wait() calls (libcurl's
 * own included) however many are in flight. The curl_multi_poll + perform
 * loop it replaced made 69 per transfer here at 64 in flight (perform polls
 * every transfer on every wake-up) and fails this test. Counts, no timings. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* n transfers through a transport of concurrency c; *waits gets the
 * poll() and epoll_wait() calls they took. */
static void run(int c, int n, int64_t *waits)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", srv.port);
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct bz_model_limits lim = {0, 0, 0, url, headers, "t"};
    struct bz_transport_opts o = {c, 30.0, 3, 0.05, 1.0, 7};
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
    while (n_done < n) {
        int rc = bz_transport_poll(t, 50, &err);
        assert_true(rc >= 0);
    }
    assert_int_equal(bz_transport_pending(t), 0);
    *waits = poll_count_poll + poll_count_epoll - p0;
    for (int i = 0; i < n; i++)
        free(x[i].reply);
    free(x);
    bz_transport_destroy(t);
}

static void waits_per_transfer_should_stay_bounded_with_64_in_flight(void **state)
{
    (void)state;
    /* a latency long enough that all 64 are in flight at once */
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 40}"), 0);
    assert_int_equal(test_server_reset(srv.port), 0);
    int64_t waits = 0;
    run(64, 640, &waits);
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
}

/* One transfer at a time: the same bound holds (the loop neither spins on
 * a timer nor on a socket while a single request is in flight). */
static void waits_per_transfer_should_stay_bounded_with_one_in_flight(void **state)
{
    (void)state;
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 20}"), 0);
    int64_t waits = 0;
    run(1, 20, &waits);
    assert_int_equal(n_ok, 20);
    print_message("poll+epoll_wait calls per transfer at 1 in flight: %.2f\n",
                  (double)waits / 20.0);
    assert_true(waits <= 8 * 20);
    assert_int_equal(test_server_config(srv.port, "{\"latency_ms\": 0}"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(waits_per_transfer_should_stay_bounded_with_64_in_flight),
        cmocka_unit_test(waits_per_transfer_should_stay_bounded_with_one_in_flight),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
