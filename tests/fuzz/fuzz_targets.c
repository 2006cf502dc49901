/* fuzz_targets: the parsers of outside input behind one signature. Files
 * (HDF5) go through a per-process temporary path; text parsers get a
 * NUL-terminated copy. Never asserts on results: only crashes, sanitizer
 * reports and hangs are findings. */
#include "fuzz_targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bazaar/out.h"
#include "bazaar/prompt.h"
#include "bazaar/spec.h"
#include "llm/llm_internal.h"

#include <cjson/cJSON.h>

static char *as_text(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    if (t) {
        memcpy(t, data, size);
        t[size] = '\0';
    }
    return t;
}

static const char *tmp_file(const char *what, char *buf, size_t cap)
{
    const char *dir = getenv("BZ_FUZZ_TMP");
    snprintf(buf, cap, "%s/bz-fuzz-%ld-%s", dir && dir[0] ? dir : "/tmp", (long)getpid(), what);
    return buf;
}

static int write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) == 0 && w == size ? 0 : -1;
}

static int run_info(const uint8_t *data, size_t size)
{
    char path[512];
    tmp_file("info.h5", path, sizeof path);
    if (write_file(path, data, size) == 0) {
        FILE *sink = fopen("/dev/null", "w");
        struct bz_err err = {0};
        if (sink) {
            bz_out_info(path, sink, &err);
            fclose(sink);
        }
    }
    unlink(path);
    return 0;
}

static int run_merge(const uint8_t *data, size_t size)
{
    char path[512], out[512], tmp[600], lock[600];
    tmp_file("shard.h5", path, sizeof path);
    tmp_file("merged.h5", out, sizeof out);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    snprintf(lock, sizeof lock, "%s.lock", out);
    if (write_file(path, data, size) == 0) {
        int64_t *ids = NULL;
        size_t n = 0;
        struct bz_err err = {0};
        if (bz_shard_committed(path, &ids, &n, &err) == 0) {
            const char *srcs[] = {path};
            bz_merge(srcs, 1, out, NULL, &err);
        }
        free(ids);
    }
    unlink(path);
    unlink(out);
    unlink(tmp);
    unlink(lock);
    return 0;
}

static int run_provider(const uint8_t *data, size_t size)
{
    struct bz_model m;
    memset(&m, 0, sizeof m);
    for (int p = 0; p < 2; p++) {
        m.provider = p ? BZ_PROVIDER_ANTHROPIC : BZ_PROVIDER_OPENAI;
        struct bz_provider_reply rp;
        struct bz_err err = {0};
        bz_provider_parse(&m, (const char *)data, size, &rp, &err);
        free(rp.content);
    }
    char *t = as_text(data, size);
    if (t) {
        cJSON_Delete(bz_provider_extract_json(t));
        bz_provider_redact(t, size, "sk-fuzz-key");
        free(t);
    }
    return 0;
}

static int run_registry(const uint8_t *data, size_t size)
{
    char *t = as_text(data, size);
    struct bz_registry *r = NULL;
    struct bz_err err = {0};
    if (t && bz_registry_parse(t, "fuzz.json", &r, &err) == 0)
        bz_registry_destroy(r);
    free(t);
    return 0;
}

static int run_spec(const uint8_t *data, size_t size)
{
    char *t = as_text(data, size);
    struct bz_spec *s = NULL;
    struct bz_err err = {0};
    if (t && bz_spec_parse(t, "fuzz.json", &s, &err) == 0)
        bz_spec_destroy(s);
    free(t);
    return 0;
}

static int run_template(const uint8_t *data, size_t size)
{
    char *t = as_text(data, size);
    struct bz_template *tp = NULL;
    struct bz_err err = {0};
    if (t && bz_template_parse(t, "fuzz.tmpl", &tp, &err) == 0) {
        cJSON *obs = cJSON_Parse("{\"turn\":1,\"agents\":[{\"name\":\"a\"}],\"price\":2.5}");
        char *out = NULL;
        if (obs && bz_template_check(tp, obs, &err) == 0 &&
            bz_template_render(tp, obs, &out, &err) == 0)
            free(out);
        cJSON_Delete(obs);
        bz_template_destroy(tp);
    }
    free(t);
    return 0;
}

const struct bz_fuzz_target bz_fuzz_targets[] = {
    {"info", run_info},         {"merge", run_merge}, {"provider", run_provider},
    {"registry", run_registry}, {"spec", run_spec},   {"template", run_template},
};
const size_t bz_fuzz_n_targets = sizeof bz_fuzz_targets / sizeof bz_fuzz_targets[0];

const struct bz_fuzz_target *bz_fuzz_find(const char *name)
{
    for (size_t i = 0; i < bz_fuzz_n_targets; i++)
        if (strcmp(bz_fuzz_targets[i].name, name) == 0)
            return &bz_fuzz_targets[i];
    return NULL;
}
