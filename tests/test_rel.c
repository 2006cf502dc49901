/* test_rel: issue 15's units: the output lock (refusal naming the holder,
 * stale locks of dead processes, re-entrancy), key redaction, usage range
 * checks, descriptor bounds and non-dumpable processes holding keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bazaar/out_lock.h"
#include "llm/llm_internal.h"

static void tmp_path(char *buf, size_t cap, const char *name)
{
    mkdir(BZ_TEST_TMP, 0777);
    snprintf(buf, cap, "%s/rel-%ld-%s", BZ_TEST_TMP, (long)getpid(), name);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void lock_should_refuse_a_second_process_naming_the_holder(void **state)
{
    (void)state;
    char out[512], lockf[600];
    tmp_path(out, sizeof out, "out.h5");
    snprintf(lockf, sizeof lockf, "%s.lock", out);
    struct bz_out_lock *a = NULL, *b = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_out_lock_take(out, &a, &err), BZ_OK);
    assert_true(exists(lockf));
    /* re-entrant in this process */
    assert_int_equal(bz_out_lock_take(out, &b, &err), BZ_OK);
    assert_ptr_equal(a, b);
    assert_true(bz_out_lock_held(out));
    pid_t child = fork();
    if (child == 0) {
        struct bz_out_lock *c = NULL;
        struct bz_err e = {0};
        char want[64];
        snprintf(want, sizeof want, "pid %ld host", (long)getppid());
        int rc = bz_out_lock_take(out, &c, &e);
        _exit(rc == BZ_EINVAL && strstr(e.msg, want) && strstr(e.msg, out) ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    bz_out_lock_release(b);
    assert_true(exists(lockf)); /* still held once */
    bz_out_lock_release(a);
    assert_false(exists(lockf));
    assert_false(bz_out_lock_held(out));
}

static void lock_of_a_dead_process_should_be_free(void **state)
{
    (void)state;
    char out[512], lockf[600];
    tmp_path(out, sizeof out, "dead.h5");
    snprintf(lockf, sizeof lockf, "%s.lock", out);
    pid_t child = fork();
    if (child == 0) {
        struct bz_out_lock *c = NULL;
        struct bz_err e = {0};
        _exit(bz_out_lock_take(out, &c, &e) == BZ_OK ? 0 : 1); /* dies holding it */
    }
    int status = 0;
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(exists(lockf)); /* left behind */
    struct bz_out_lock *a = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_out_lock_take(out, &a, &err), BZ_OK);
    bz_out_lock_release(a);
    assert_false(exists(lockf));
}

static void lock_should_refuse_an_empty_output(void **state)
{
    (void)state;
    struct bz_out_lock *a = NULL;
    struct bz_err err = {0};
    assert_int_equal(bz_out_lock_take("", &a, &err), BZ_EINVAL);
    assert_null(a);
}

static void redact_should_mask_every_occurrence_whatever_its_offset(void **state)
{
    (void)state;
    const char *key = "sk-test-ABCDEFGHIJKLMNOPQRSTUVWXYZ/0123";
    size_t kl = strlen(key);
    for (size_t off = 0; off < 260; off += 7) {
        char body[700];
        memset(body, 'x', sizeof body);
        memcpy(body + off, key, kl);
        memcpy(body + 400, "sk-test-ABCDEFGHIJKLMNOPQRSTUVWXYZ\\/0123", kl + 1);
        body[sizeof body - 1] = '\0';
        assert_int_equal(bz_provider_redact(body, strlen(body), key), 2);
        assert_null(strstr(body, "sk-test"));
        assert_int_equal(strlen(body), sizeof body - 1);
    }
    char s[] = "abc";
    assert_int_equal(bz_provider_redact(s, 3, "ab"), 0); /* too short to be a key */
}

static int parse_openai(const char *usage, struct bz_provider_reply *rp, struct bz_err *err)
{
    struct bz_model m;
    memset(&m, 0, sizeof m);
    m.provider = BZ_PROVIDER_OPENAI;
    char body[512];
    snprintf(body, sizeof body,
             "{\"choices\":[{\"message\":{\"content\":\"{}\"},\"finish_reason\":\"stop\"}],"
             "\"usage\":%s}",
             usage);
    return bz_provider_parse(&m, body, strlen(body), rp, err);
}

static void usage_out_of_range_should_be_a_bad_reply(void **state)
{
    (void)state;
    const char *bad[] = {"{\"prompt_tokens\":1e19,\"completion_tokens\":1}",
                         "{\"prompt_tokens\":9.3e18,\"completion_tokens\":1}",
                         "{\"prompt_tokens\":-1,\"completion_tokens\":1}",
                         "{\"prompt_tokens\":1.5,\"completion_tokens\":1}",
                         "{\"prompt_tokens\":1,\"completion_tokens\":\"many\"}",
                         "{\"prompt_tokens\":1,\"completion_tokens\":1073741825}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct bz_provider_reply rp;
        struct bz_err err = {0};
        assert_int_equal(parse_openai(bad[i], &rp, &err), BZ_EINVAL);
        assert_non_null(strstr(err.msg, "out of range"));
        free(rp.content);
    }
    struct bz_provider_reply rp;
    struct bz_err err = {0};
    assert_int_equal(
        parse_openai("{\"prompt_tokens\":1073741824,\"completion_tokens\":3}", &rp, &err), BZ_OK);
    assert_true(rp.input_tokens == ((int64_t)1 << 30) && rp.output_tokens == 3);
    free(rp.content);
}

static void transport_with_a_key_should_make_the_process_non_dumpable(void **state)
{
    (void)state;
    pid_t child = fork();
    if (child == 0) {
        const char *h[] = {"Content-Type: application/json", "Authorization: Bearer sk-x-123456",
                           NULL};
        struct bz_model_limits lim = {0, 0, 0, "http://127.0.0.1:1/v1/chat/completions", h, "m"};
        struct bz_transport_opts o = {4, 1.0, 0, 0.1, 1.0, 1};
        struct bz_transport *t = NULL;
        struct bz_err e = {0};
        int before = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        int rc = bz_transport_create(&o, &lim, 1, &t, &e);
        int after = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        bz_transport_destroy(t);
        _exit(rc == BZ_OK && before == 1 && after == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void transport_should_refuse_when_descriptors_are_too_few(void **state)
{
    (void)state;
    pid_t child = fork();
    if (child == 0) {
        struct rlimit rl = {40, 40};
        setrlimit(RLIMIT_NOFILE, &rl);
        const char *h[] = {NULL};
        struct bz_model_limits lim = {0, 0, 0, "http://127.0.0.1:1/v1/chat/completions", h, "m"};
        struct bz_transport_opts o = {256, 1.0, 0, 0.1, 1.0, 1};
        struct bz_transport *t = NULL;
        struct bz_err e = {0};
        int rc = bz_transport_create(&o, &lim, 1, &t, &e);
        bz_transport_destroy(t);
        _exit(rc == BZ_EINVAL && strstr(e.msg, "file descriptors") ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lock_should_refuse_a_second_process_naming_the_holder),
        cmocka_unit_test(lock_of_a_dead_process_should_be_free),
        cmocka_unit_test(lock_should_refuse_an_empty_output),
        cmocka_unit_test(redact_should_mask_every_occurrence_whatever_its_offset),
        cmocka_unit_test(usage_out_of_range_should_be_a_bad_reply),
        cmocka_unit_test(transport_with_a_key_should_make_the_process_non_dumpable),
        cmocka_unit_test(transport_should_refuse_when_descriptors_are_too_few),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
