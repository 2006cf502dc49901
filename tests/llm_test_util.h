/* llm_test_util: start tests/llm_server.py, talk to its control endpoints over
 * a plain socket, and write a test models registry pointing at it. For the
 * test_llm_* files and bench_llm only (header-only, static functions). */
#ifndef BAZAAR_LLM_TEST_UTIL_H
#define BAZAAR_LLM_TEST_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BZ_SOURCE_DIR
#define BZ_TEST_SERVER_PY BZ_SOURCE_DIR "/tests/llm_server.py"
#else
#define BZ_TEST_SERVER_PY "tests/llm_server.py" /* benches run from the repo root */
#endif
#define BZ_TEST_UNUSED __attribute__((unused))

struct test_server {
    pid_t pid;
    int port;
};

/* Run argv (argv[0] found on PATH) with its stdout on a pipe and read the
 * "PORT n" line a test server prints when it listens; 0 on success. */
BZ_TEST_UNUSED static int test_server_exec(struct test_server *s, char *const argv[])
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[64] = "";
    int port = 0;
    if (f && fgets(line, sizeof line, f))
        sscanf(line, "PORT %d", &port);
    if (f)
        fclose(f);
    s->pid = pid;
    s->port = port;
    return port > 0 ? 0 : -1;
}

/* Spawn the server (Debian's python3 if present); 0 on success. */
BZ_TEST_UNUSED static int test_server_start(struct test_server *s, double latency_ms)
{
    char lat[32], script[] = BZ_TEST_SERVER_PY, flag[] = "--latency-ms";
    char py[32];
    snprintf(lat, sizeof lat, "%g", latency_ms);
    snprintf(py, sizeof py, "%s",
             access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3");
    char *const argv[] = {py, script, flag, lat, NULL};
    return test_server_exec(s, argv);
}

BZ_TEST_UNUSED static void test_server_stop(struct test_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* One HTTP/1.0 request; the response body into out (cap bytes). Returns the
 * status or -1. */
BZ_TEST_UNUSED static int test_http(int port, const char *method, const char *path,
                                    const char *body, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    if (n <= 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char buf[65536];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    int status = -1;
    sscanf(buf, "HTTP/%*s %d", &status);
    const char *b = strstr(buf, "\r\n\r\n");
    if (out && cap) {
        snprintf(out, cap, "%s", b ? b + 4 : "");
    }
    return status;
}

/* An integer member of the server's /stats. */
BZ_TEST_UNUSED static long test_server_stat(int port, const char *key)
{
    char body[16384], pat[64];
    if (test_http(port, "GET", "/stats", NULL, body, sizeof body) != 200)
        return -1;
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(body, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

BZ_TEST_UNUSED static int test_server_config(int port, const char *json)
{
    return test_http(port, "POST", "/config", json, NULL, 0) == 200 ? 0 : -1;
}

BZ_TEST_UNUSED static int test_server_reset(int port)
{
    return test_http(port, "POST", "/reset", "{}", NULL, 0) == 200 ? 0 : -1;
}

/* A registry with an OpenAI and an Anthropic model on the server; key_env
 * names the key variable; max_conc 0 = no per-model limit. */
BZ_TEST_UNUSED static int test_write_registry(const char *path, int port, const char *key_env,
                                              int max_conc)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"models\":[{\"id\":\"t-openai\",\"provider\":\"openai\","
            "\"base_url\":\"http://127.0.0.1:%d/v1\",\"model\":\"model-a\","
            "\"api_key_env\":\"%s\",\"capability\":1000,\"price_in_per_mtok\":1,"
            "\"price_out_per_mtok\":2,\"limits\":{\"max_concurrency\":%d}},"
            "{\"id\":\"t-anthropic\",\"provider\":\"anthropic\","
            "\"base_url\":\"http://127.0.0.1:%d/v1\",\"model\":\"model-b\","
            "\"api_key_env\":\"%s\",\"capability\":1100,\"price_in_per_mtok\":3,"
            "\"price_out_per_mtok\":15}]}\n",
            port, key_env, max_conc, port, key_env);
    return fclose(f);
}

#endif
