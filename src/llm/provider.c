/* provider: request bodies and reply parsing for the two wire formats, OpenAI
 * chat completions (every OpenAI-compatible server) and Anthropic messages,
 * plus the schema check of a decoded action. Pure functions over text and
 * cJSON: no network, no keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "llm/llm_internal.h"

/* The request body is written as text, byte for byte what cJSON's
 * unformatted printer makes of the tree the provider's format describes
 * (same members in the same order, same string escapes and numbers): the
 * response cache is keyed by these bytes, so a cache filled before stays
 * valid. Building that tree and printing it had cost about a tenth of the
 * client's CPU per request; test_llm_units compares both for many inputs. */
struct jbuf {
    char *p;
    size_t n, cap;
    int oom;
};

static char *jb_room(struct jbuf *b, size_t more)
{
    if (b->oom)
        return NULL;
    if (b->n + more + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + more + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->n;
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    char *d = jb_room(b, n);
    if (!d)
        return;
    memcpy(d, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

#define JB_LIT(b, lit) jb_put((b), lit, sizeof lit - 1)

/* A JSON string as cJSON prints it: '"' and '\\' escaped, the control
 * characters as \b \f \n \r \t or \u00xx, every other byte as it is. Room
 * for the worst case (6 bytes a byte) is made once, so the copy loop has no
 * checks of its own. */
static void jb_str(struct jbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = strlen(s);
    char *d = jb_room(b, 6 * len + 2);
    if (!d)
        return;
    char *start = d;
    *d++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        unsigned char ch = *c;
        if (ch >= 32 && ch != '"' && ch != '\\') {
            *d++ = (char)ch;
            continue;
        }
        *d++ = '\\';
        switch (ch) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '\b': *d++ = 'b'; break;
        case '\f': *d++ = 'f'; break;
        case '\n': *d++ = 'n'; break;
        case '\r': *d++ = 'r'; break;
        case '\t': *d++ = 't'; break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[ch >> 4];
            *d++ = hex[ch & 15];
        }
    }
    *d++ = '"';
    b->n += (size_t)(d - start);
    b->p[b->n] = '\0';
}

/* A number through cJSON's own printer (no allocation): its choice among
 * %d, %1.15g and %1.17g is the one the cache keys were made with. */
static void jb_num(struct jbuf *b, double d)
{
    /* an integer (not -0): what %1.15g prints for it, without printf */
    if (d == floor(d) && fabs(d) < 1e9 && !(d == 0 && signbit(d))) {
        char out[16], *e = out + sizeof out, *q = e;
        long v = (long)d;
        unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
        do
            *--q = (char)('0' + u % 10);
        while (u /= 10);
        if (v < 0)
            *--q = '-';
        jb_put(b, q, (size_t)(e - q));
        return;
    }
    cJSON n;
    memset(&n, 0, sizeof n);
    n.type = cJSON_Number;
    cJSON_SetNumberHelper(&n, d);
    char out[64];
    if (!cJSON_PrintPreallocated(&n, out, (int)sizeof out, 0)) {
        b->oom = 1;
        return;
    }
    jb_put(b, out, strlen(out));
}

/* "key": */
static void jb_key(struct jbuf *b, const char *k)
{
    jb_str(b, k);
    JB_LIT(b, ":");
}

/* A registry's sampling member (any JSON), printed by cJSON. */
static void jb_item(struct jbuf *b, const cJSON *it)
{
    char *t = cJSON_PrintUnformatted(it);
    if (!t) {
        b->oom = 1;
        return;
    }
    jb_put(b, t, strlen(t));
    cJSON_free(t);
}

/* Anthropic prompt caching: a text block with cache_control. */
static void jb_cached_text(struct jbuf *b, const char *text)
{
    JB_LIT(b, "[{\"type\":\"text\",\"text\":");
    jb_str(b, text);
    JB_LIT(b, ",\"cache_control\":{\"type\":\"ephemeral\"}}]");
}

int bz_provider_schema_canon(const char *schema_json, const char *schema_name, char **canon,
                             struct bz_err *err)
{
    *canon = NULL;
    if (!schema_json)
        return BZ_OK;
    cJSON *s = cJSON_Parse(schema_json);
    if (!s)
        return bz_err_set(err, BZ_EINTERNAL, "the game's action schema for %s is not valid JSON",
                          schema_name ? schema_name : "");
    *canon = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    return *canon ? BZ_OK : bz_err_set(err, BZ_ENOMEM, "out of memory printing an action schema");
}

int bz_provider_build_canon(const struct bz_model *m, const struct bz_chat_msg *msgs, int n_msgs,
                            const char *schema_canon, const char *schema_name, double temperature,
                            int max_output_tokens, int64_t seed, char **body, struct bz_err *err)
{
    *body = NULL;
    int anth = m->provider == BZ_PROVIDER_ANTHROPIC;
    if (schema_canon && !schema_name)
        return bz_err_set(err, BZ_EINTERNAL, "an action schema without a name");
    for (int i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content)
            return bz_err_set(err, BZ_EINTERNAL, "a request message without a role or text");
    struct jbuf b = {0};
    size_t guess = 512 + (schema_canon ? strlen(schema_canon) : 0);
    for (int i = 0; i < n_msgs; i++)
        guess += strlen(msgs[i].content) + 64;
    jb_room(&b, guess);
    int max_tok = m->max_output_tokens > 0 ? m->max_output_tokens : max_output_tokens;
    JB_LIT(&b, "{\"model\":");
    jb_str(&b, m->model);
    JB_LIT(&b, ",\"messages\":[");
    int first = 1;
    for (int i = 0; i < n_msgs; i++) {
        if (anth && strcmp(msgs[i].role, "system") == 0)
            continue; /* a member of its own, after "messages" */
        if (!first)
            JB_LIT(&b, ",");
        first = 0;
        JB_LIT(&b, "{\"role\":");
        jb_str(&b, msgs[i].role);
        JB_LIT(&b, ",\"content\":");
        if (anth && msgs[i].cache)
            jb_cached_text(&b, msgs[i].content);
        else
            jb_str(&b, msgs[i].content);
        JB_LIT(&b, "}");
    }
    JB_LIT(&b, "]");
    for (int i = 0; anth && i < n_msgs; i++) {
        if (strcmp(msgs[i].role, "system") != 0)
            continue;
        JB_LIT(&b, ",\"system\":");
        if (msgs[i].cache)
            jb_cached_text(&b, msgs[i].content);
        else
            jb_str(&b, msgs[i].content);
    }
    if (!anth && m->send_seed && seed >= 0) {
        JB_LIT(&b, ",\"seed\":");
        jb_num(&b, (double)seed);
    }
    JB_LIT(&b, ",\"max_tokens\":");
    jb_num(&b, max_tok);
    JB_LIT(&b, ",\"temperature\":");
    jb_num(&b, isnan(m->temperature) ? temperature : m->temperature);
    if (m->sampling)
        for (const cJSON *it = m->sampling->child; it; it = it->next) {
            JB_LIT(&b, ",");
            jb_key(&b, it->string);
            jb_item(&b, it);
        }
    if (schema_canon && !anth) {
        JB_LIT(&b, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":");
        jb_str(&b, schema_name);
        JB_LIT(&b, ",\"schema\":");
        jb_put(&b, schema_canon, strlen(schema_canon));
        if (m->strict)
            JB_LIT(&b, ",\"strict\":true}}");
        else
            JB_LIT(&b, ",\"strict\":false}}");
    } else if (schema_canon) {
        JB_LIT(&b, ",\"tools\":[{\"name\":");
        jb_str(&b, schema_name);
        JB_LIT(&b, ",\"description\":\"Submit your decision for this phase.\",\"input_schema\":");
        jb_put(&b, schema_canon, strlen(schema_canon));
        JB_LIT(&b, "}],\"tool_choice\":{\"type\":\"tool\",\"name\":");
        jb_str(&b, schema_name);
        JB_LIT(&b, "}");
    }
    JB_LIT(&b, "}");
    if (b.oom) {
        free(b.p);
        return bz_err_set(err, BZ_ENOMEM, "out of memory building a request for model %s", m->id);
    }
    *body = b.p;
    return BZ_OK;
}

int bz_provider_build(const struct bz_model *m, const struct bz_chat_msg *msgs, int n_msgs,
                      const char *schema_json, const char *schema_name, double temperature,
                      int max_output_tokens, int64_t seed, char **body, struct bz_err *err)
{
    *body = NULL;
    char *canon = NULL;
    int rc = bz_provider_schema_canon(schema_json, schema_name, &canon, err);
    if (!rc)
        rc = bz_provider_build_canon(m, msgs, n_msgs, canon, schema_name, temperature,
                                     max_output_tokens, seed, body, err);
    cJSON_free(canon);
    return rc;
}

/* A usage count: absent is 0; present it must be an integer in
 * [0, BZ_PROVIDER_USAGE_MAX] (a double of 9.3e18 cast to int64 is undefined
 * behaviour and a negative count would refund the budget). */
static int get_usage(const cJSON *o, const char *k, int64_t *v, struct bz_err *err)
{
    *v = 0;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!it || cJSON_IsNull(it))
        return BZ_OK;
    double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(d >= 0 && d <= (double)BZ_PROVIDER_USAGE_MAX) || d != floor(d))
        return bz_err_set(err, BZ_EINVAL,
                          "usage.%s out of range: %.17g (expected an integer in "
                          "[0, %lld])",
                          k, d, (long long)BZ_PROVIDER_USAGE_MAX);
    *v = (int64_t)d;
    return BZ_OK;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

int bz_provider_parse(const struct bz_model *m, const char *body, size_t len,
                      struct bz_provider_reply *reply, struct bz_err *err)
{
    memset(reply, 0, sizeof *reply);
    int rc = BZ_OK;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return bz_err_set(err, BZ_EINVAL, "reply body is not JSON (%zu bytes)", len);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(ver))
        snprintf(reply->model_version, sizeof reply->model_version, "%s", ver->valuestring);
    int a = m->provider == BZ_PROVIDER_ANTHROPIC;
    if ((rc = get_usage(usage, a ? "input_tokens" : "prompt_tokens", &reply->input_tokens, err)) ||
        (rc = get_usage(usage, a ? "output_tokens" : "completion_tokens", &reply->output_tokens,
                        err)))
        goto out;
    if (a) {
        /* Anthropic counts prompt-cache reads and writes apart from
         * input_tokens: input_tokens here is every input token */
        int64_t rd = 0, wr = 0;
        if ((rc = get_usage(usage, "cache_read_input_tokens", &rd, err)) ||
            (rc = get_usage(usage, "cache_creation_input_tokens", &wr, err)))
            goto out;
        reply->cached_input_tokens = rd;
        reply->input_tokens += rd + wr;
    } else if ((rc = get_usage(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"),
                               "cached_tokens", &reply->cached_input_tokens, err))) {
        goto out;
    }
    if (!a) {
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
        if (!msg) {
            rc = bz_err_set(err, BZ_EINVAL, "reply has no choices[0].message");
            goto out;
        }
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
        reply->truncated = cJSON_IsString(fin) && strcmp(fin->valuestring, "length") == 0;
        const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (cJSON_IsString(refusal) && refusal->valuestring[0]) {
            reply->refusal = 1;
            reply->content = dupstr(refusal->valuestring);
        } else if (cJSON_IsString(content)) {
            reply->content = dupstr(content->valuestring);
        } else {
            rc = bz_err_set(err, BZ_EINVAL, "reply has no choices[0].message.content");
            goto out;
        }
    } else {
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop_reason");
        reply->truncated = cJSON_IsString(stop) && strcmp(stop->valuestring, "max_tokens") == 0;
        reply->refusal = cJSON_IsString(stop) && strcmp(stop->valuestring, "refusal") == 0;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
        if (!cJSON_IsArray(content)) {
            rc = bz_err_set(err, BZ_EINVAL, "reply has no content array");
            goto out;
        }
        const cJSON *text = NULL;
        for (const cJSON *b = content->child; b; b = b->next) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(b, "type");
            if (!cJSON_IsString(type))
                continue;
            if (strcmp(type->valuestring, "tool_use") == 0) {
                const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
                reply->content = in ? cJSON_PrintUnformatted(in) : NULL;
                if (reply->content)
                    break;
            } else if (strcmp(type->valuestring, "text") == 0 && !text) {
                text = cJSON_GetObjectItemCaseSensitive(b, "text");
            }
        }
        if (!reply->content) {
            if (!cJSON_IsString(text)) {
                rc = bz_err_set(err, BZ_EINVAL, "reply has neither a tool_use nor a text block");
                goto out;
            }
            reply->content = dupstr(text->valuestring);
            if (!reply->refusal)
                reply->refusal = 0;
        }
    }
    if (!reply->content)
        rc = bz_err_set(err, BZ_ENOMEM, "out of memory parsing a reply");
out:
    cJSON_Delete(root);
    return rc;
}

cJSON *bz_provider_extract_json(const char *text)
{
    cJSON *v = cJSON_Parse(text);
    if (v)
        return v;
    const char *fence = strstr(text, "```");
    if (fence) {
        const char *start = strchr(fence + 3, '\n');
        const char *end = start ? strstr(start, "```") : NULL;
        if (start && end && (v = cJSON_ParseWithLength(start, (size_t)(end - start))))
            return v;
    }
    const char *a = strchr(text, '{');
    const char *b = strrchr(text, '}');
    if (a && b && b > a)
        v = cJSON_ParseWithLength(a, (size_t)(b - a + 1));
    return v;
}

static size_t redact_one(char *text, size_t len, const char *pat, size_t pl)
{
    size_t n = 0;
    if (pl == 0 || pl > len)
        return 0;
    for (size_t i = 0; i + pl <= len; i++)
        if (text[i] == pat[0] && memcmp(text + i, pat, pl) == 0) {
            memset(text + i, '*', pl);
            i += pl - 1;
            n++;
        }
    return n;
}

size_t bz_provider_redact(char *text, size_t len, const char *key)
{
    size_t kl = key ? strlen(key) : 0;
    if (!text || kl < 4)
        return 0;
    size_t n = redact_one(text, len, key, kl);
    if (strchr(key, '/')) {
        /* the form a JSON encoder may give: "/" escaped as "\/" */
        char *esc = malloc(2 * kl + 1), *e = esc;
        if (esc) {
            for (const char *c = key; *c; c++) {
                if (*c == '/')
                    *e++ = '\\';
                *e++ = *c;
            }
            n += redact_one(text, len, esc, (size_t)(e - esc));
            free(esc);
        }
    }
    return n;
}
