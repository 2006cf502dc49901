/* prompt: parses {{name}} templates into a small tree and renders them over a
 * cJSON observation. Must never guess: an unknown name is an error, and a
 * rendered prompt is capped at BZ_PROMPT_MAX bytes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bazaar/file.h"
#include "bazaar/prompt.h"

enum node_kind { N_TEXT, N_VAR, N_SECTION, N_INVERTED };

struct node {
    enum node_kind kind;
    int line;
    char *text;            /* N_TEXT: the text; else the name */
    size_t len;            /* N_TEXT length */
    struct node *children; /* sections: first child */
    struct node *next;
};

struct bz_template {
    char origin[512];
    struct node *root; /* list of top-level nodes */
};

static void free_nodes(struct node *n)
{
    while (n) {
        struct node *next = n->next;
        free_nodes(n->children);
        free(n->text);
        free(n);
        n = next;
    }
}

void bz_template_destroy(struct bz_template *t)
{
    if (!t)
        return;
    free_nodes(t->root);
    free(t);
}

const char *bz_template_origin(const struct bz_template *t)
{
    return t->origin;
}

static struct node *new_node(enum node_kind kind, int line, const char *s, size_t len)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = line;
    n->text = malloc(len + 1);
    if (!n->text) {
        free(n);
        return NULL;
    }
    memcpy(n->text, s, len);
    n->text[len] = '\0';
    n->len = len;
    return n;
}

static int count_lines(const char *from, const char *to)
{
    int n = 0;
    for (; from < to; from++)
        n += *from == '\n';
    return n;
}

static int valid_name(const char *s, size_t len)
{
    if (len == 1 && s[0] == '.')
        return 1;
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!(c == '_' || c == '.' || c == '-' || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
        if (c == '.' && s[i + 1] == '.')
            return 0;
    }
    return 1;
}

#define MAX_DEPTH 16

int bz_template_parse(const char *text, const char *origin, struct bz_template **out,
                      struct bz_err *err)
{
    int rc = BZ_OK;
    *out = NULL;
    struct bz_template *t = calloc(1, sizeof *t);
    if (!t)
        return bz_err_set(err, BZ_ENOMEM, "%s: out of memory", origin);
    snprintf(t->origin, sizeof t->origin, "%s", origin);

    /* Stack of open sections: where the next node is linked. */
    struct node **tail[MAX_DEPTH + 1];
    struct node *open[MAX_DEPTH + 1];
    int depth = 0;
    tail[0] = &t->root;
    open[0] = NULL;

    const char *p = text;
    int line = 1;
    while (*p) {
        const char *tag = strstr(p, "{{");
        size_t tlen = tag ? (size_t)(tag - p) : strlen(p);
        if (tlen) {
            struct node *n = new_node(N_TEXT, line, p, tlen);
            if (!n)
                goto nomem;
            *tail[depth] = n;
            tail[depth] = &n->next;
            line += count_lines(p, p + tlen);
        }
        if (!tag)
            break;
        const char *end = strstr(tag + 2, "}}");
        if (!end) {
            rc = bz_err_set(err, BZ_EINVAL, "%s:%d: '{{' without a closing '}}'", origin, line);
            goto out;
        }
        const char *s = tag + 2;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        const char *e = end;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        char sigil = (s < e && (*s == '#' || *s == '^' || *s == '/')) ? *s : 0;
        if (sigil) {
            s++;
            while (s < e && (*s == ' ' || *s == '\t'))
                s++;
        }
        size_t nlen = (size_t)(e - s);
        if (!valid_name(s, nlen)) {
            rc = bz_err_set(err, BZ_EINVAL,
                            "%s:%d: bad placeholder '{{%.*s}}': expected a dotted name like "
                            "private.storage_level",
                            origin, line, (int)(end - tag - 2), tag + 2);
            goto out;
        }
        if (sigil == '/') {
            if (depth == 0 || strlen(open[depth]->text) != nlen ||
                memcmp(open[depth]->text, s, nlen) != 0) {
                rc = bz_err_set(err, BZ_EINVAL, "%s:%d: '{{/%.*s}}' closes %s%s%s", origin, line,
                                (int)nlen, s, depth ? "section '" : "no open section",
                                depth ? open[depth]->text : "", depth ? "'" : "");
                goto out;
            }
            depth--;
        } else {
            struct node *n = new_node(sigil == '#'   ? N_SECTION
                                      : sigil == '^' ? N_INVERTED
                                                     : N_VAR,
                                      line, s, nlen);
            if (!n)
                goto nomem;
            *tail[depth] = n;
            tail[depth] = &n->next;
            if (sigil) {
                if (depth == MAX_DEPTH) {
                    rc = bz_err_set(err, BZ_EINVAL, "%s:%d: sections nested deeper than %d", origin,
                                    line, MAX_DEPTH);
                    goto out;
                }
                depth++;
                open[depth] = n;
                tail[depth] = &n->children;
            }
        }
        line += count_lines(tag, end);
        p = end + 2;
        /* A section tag alone on its line leaves no blank line behind. */
        if (sigil && *p == '\n' && (tag == text || tag[-1] == '\n')) {
            p++;
            line++;
        }
    }
    if (depth) {
        rc = bz_err_set(err, BZ_EINVAL, "%s:%d: section '%s' is never closed", origin,
                        open[depth]->line, open[depth]->text);
        goto out;
    }
    *out = t;
    return BZ_OK;
nomem:
    rc = bz_err_set(err, BZ_ENOMEM, "%s: out of memory", origin);
out:
    bz_template_destroy(t);
    return rc;
}

int bz_template_load(const char *path, struct bz_template **out, struct bz_err *err)
{
    *out = NULL;
    char *buf = NULL;
    int rc = bz_file_load(path, BZ_PROMPT_MAX, "prompt template", &buf, NULL, err);
    if (!rc)
        rc = bz_template_parse(buf, path, out, err);
    free(buf);
    return rc;
}

/* Resolve a dotted name against one context; NULL when absent. */
static const cJSON *lookup1(const cJSON *ctx, const char *name)
{
    if (strcmp(name, ".") == 0)
        return ctx;
    const cJSON *cur = ctx;
    const char *p = name;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        char key[128];
        if (len >= sizeof key)
            return NULL;
        memcpy(key, p, len);
        key[len] = '\0';
        if (cJSON_IsArray(cur)) {
            char *endp;
            long i = strtol(key, &endp, 10);
            cur = (*endp || i < 0) ? NULL : cJSON_GetArrayItem(cur, (int)i);
        } else if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        } else {
            cur = NULL;
        }
        p = dot ? dot + 1 : p + len;
    }
    return cur;
}

/* Innermost context first, then outwards. */
static const cJSON *lookup(const cJSON *const *ctx, int n_ctx, const char *name)
{
    for (int i = n_ctx - 1; i >= 0; i--) {
        const cJSON *v = lookup1(ctx[i], name);
        if (v)
            return v;
    }
    return NULL;
}

static int truthy(const cJSON *v)
{
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
        return 0;
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0;
    if (cJSON_IsString(v))
        return v->valuestring && v->valuestring[0];
    if (cJSON_IsArray(v) || cJSON_IsObject(v))
        return v->child != NULL;
    return 1;
}

struct buf {
    char *p;
    size_t len, cap;
    int toobig;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > BZ_PROMPT_MAX) {
        b->toobig = 1;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int add_value(struct buf *b, const cJSON *v)
{
    char num[64];
    if (cJSON_IsString(v))
        return buf_add(b, v->valuestring, strlen(v->valuestring));
    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (x == floor(x) && fabs(x) < 1e15)
            snprintf(num, sizeof num, "%.0f", x);
        else
            snprintf(num, sizeof num, "%.8g", x);
        return buf_add(b, num, strlen(num));
    }
    if (cJSON_IsBool(v))
        return buf_add(b, cJSON_IsTrue(v) ? "true" : "false", cJSON_IsTrue(v) ? 4 : 5);
    if (cJSON_IsNull(v))
        return buf_add(b, "null", 4);
    char *s = cJSON_PrintUnformatted(v);
    if (!s)
        return -1;
    int rc = buf_add(b, s, strlen(s));
    cJSON_free(s);
    return rc;
}

struct walk {
    const char *origin;
    struct buf *out; /* NULL: check only */
    struct bz_err *err;
};

static int walk(struct walk *w, const struct node *n, const cJSON **ctx, int n_ctx)
{
    for (; n; n = n->next) {
        if (n->kind == N_TEXT) {
            if (w->out && buf_add(w->out, n->text, n->len))
                goto nomem;
            continue;
        }
        const cJSON *v = lookup(ctx, n_ctx, n->text);
        if (n->kind == N_VAR) {
            if (!v)
                return bz_err_set(w->err, BZ_EINVAL,
                                  "%s:%d: unknown placeholder '{{%s}}': the observation has no "
                                  "such name",
                                  w->origin, n->line, n->text);
            if (w->out && add_value(w->out, v))
                goto nomem;
            continue;
        }
        int t = truthy(v);
        if (n->kind == N_INVERTED) {
            if (!t) {
                int rc = walk(w, n->children, ctx, n_ctx);
                if (rc)
                    return rc;
            }
            continue;
        }
        if (!w->out) {
            /* Check: inside a non-empty array section, against its first
             * element; a missing or empty value cannot be checked. */
            if (!t)
                continue;
            ctx[n_ctx] = cJSON_IsArray(v) ? v->child : v;
            int rc = walk(w, n->children, ctx, n_ctx + 1);
            if (rc)
                return rc;
            continue;
        }
        if (!t)
            continue;
        if (cJSON_IsArray(v)) {
            for (const cJSON *e = v->child; e; e = e->next) {
                ctx[n_ctx] = e;
                int rc = walk(w, n->children, ctx, n_ctx + 1);
                if (rc)
                    return rc;
            }
        } else {
            ctx[n_ctx] = v;
            int rc = walk(w, n->children, ctx, n_ctx + 1);
            if (rc)
                return rc;
        }
    }
    return BZ_OK;
nomem:
    if (w->out->toobig)
        return bz_err_set(w->err, BZ_ENOMEM, "%s: rendered prompt longer than %d bytes", w->origin,
                          BZ_PROMPT_MAX);
    return bz_err_set(w->err, BZ_ENOMEM, "%s: out of memory rendering", w->origin);
}

int bz_template_check(const struct bz_template *t, const cJSON *obs, struct bz_err *err)
{
    const cJSON *ctx[MAX_DEPTH + 2] = {obs};
    struct walk w = {t->origin, NULL, err};
    return walk(&w, t->root, ctx, 1);
}

int bz_template_render(const struct bz_template *t, const cJSON *obs, char **out,
                       struct bz_err *err)
{
    *out = NULL;
    const cJSON *ctx[MAX_DEPTH + 2] = {obs};
    struct buf b = {0};
    struct walk w = {t->origin, &b, err};
    int rc = walk(&w, t->root, ctx, 1);
    if (rc) {
        free(b.p);
        return rc;
    }
    if (!b.p) {
        b.p = calloc(1, 1);
        if (!b.p)
            return bz_err_set(err, BZ_ENOMEM, "%s: out of memory rendering", t->origin);
    }
    *out = b.p;
    return BZ_OK;
}
