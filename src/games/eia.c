/* eia: EIA API v2 region data (JSON) -> one respondent's demand and net
 * generation series. The only file reader for EIA data; it keeps nothing but
 * the chosen respondent's numbers and never touches the network. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/eia.h"
#include "bazaar/file.h"

void bz_eia_series_cleanup(struct bz_eia_series *s)
{
    if (!s)
        return;
    free(s->period);
    free(s->demand_mwh);
    free(s->net_generation_mwh);
    memset(s, 0, sizeof *s);
}

/* A value is a string (possibly empty) or a number; 0 when absent/empty. */
static int row_value(const cJSON *row, double *v)
{
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(row, "value");
    if (cJSON_IsNumber(val)) {
        *v = val->valuedouble;
        return isfinite(*v);
    }
    if (!cJSON_IsString(val) || !val->valuestring[0])
        return 0;
    char *end;
    errno = 0;
    *v = strtod(val->valuestring, &end);
    return end != val->valuestring && *end == '\0' && errno == 0 && isfinite(*v);
}

static const char *row_str(const cJSON *row, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

struct slot {
    char period[BZ_EIA_PERIOD_MAX];
    double d, ng;
};

static int cmp_slot(const void *a, const void *b)
{
    return strcmp(((const struct slot *)a)->period, ((const struct slot *)b)->period);
}

int bz_eia_load(const char *path, const char *respondent, struct bz_eia_series *out,
                struct bz_err *err)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    cJSON *root = NULL;
    struct slot *slots = NULL;
    int rc;
    if (!respondent || !respondent[0])
        return bz_err_set(err, BZ_EINVAL, "%s: no respondent (balancing authority code) given",
                          path);
    if (strlen(respondent) >= sizeof out->respondent)
        return bz_err_set(err, BZ_EINVAL, "%s: respondent code \"%.40s\" too long", path,
                          respondent);
    rc = bz_file_load(path, BZ_EIA_FILE_MAX, "EIA file", &text, NULL, err);
    if (rc)
        goto out;
    root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text ? (long)(at - text) : -1;
        rc = bz_err_set(err, BZ_EINVAL, "%s: not valid JSON (near byte %ld)", path, off);
        goto out;
    }
    const cJSON *data = root;
    if (cJSON_IsObject(root)) {
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(root, "response");
        data = resp ? cJSON_GetObjectItemCaseSensitive(resp, "data") : NULL;
    }
    if (!cJSON_IsArray(data)) {
        rc = bz_err_set(err, BZ_EINVAL,
                        "%s: expected a JSON array of rows or {\"response\":{\"data\":[...]}}",
                        path);
        goto out;
    }
    int n_rows = cJSON_GetArraySize(data);
    slots = calloc(n_rows ? (size_t)n_rows : 1, sizeof *slots);
    if (!slots) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t n = 0;
    char others[6][32];
    int n_others = 0;
    const cJSON *row;
    int idx = 0;
    cJSON_ArrayForEach(row, data)
    {
        idx++;
        const char *resp = row_str(row, "respondent");
        const char *period = row_str(row, "period");
        const char *type = row_str(row, "type");
        if (!cJSON_IsObject(row) || !resp || !period || !type) {
            rc = bz_err_set(err, BZ_EINVAL,
                            "%s: row %d: expected an object with string fields period, "
                            "respondent and type",
                            path, idx - 1);
            goto out;
        }
        if (strcmp(resp, respondent) != 0) {
            int seen = 0;
            for (int k = 0; k < n_others; k++)
                seen |= strcmp(others[k], resp) == 0;
            if (!seen && n_others < 6)
                snprintf(others[n_others++], sizeof others[0], "%s", resp);
            continue;
        }
        const char *tz = row_str(row, "timezone");
        if (tz) {
            if (!out->timezone[0])
                snprintf(out->timezone, sizeof out->timezone, "%s", tz);
            else if (strcmp(tz, out->timezone) != 0)
                continue;
        }
        int is_d = strcmp(type, "D") == 0, is_ng = strcmp(type, "NG") == 0;
        if (!is_d && !is_ng)
            continue; /* DF and TI are not used */
        if (strlen(period) >= BZ_EIA_PERIOD_MAX) {
            rc = bz_err_set(err, BZ_EINVAL, "%s: row %d: period \"%.40s\" too long", path, idx - 1,
                            period);
            goto out;
        }
        double v;
        if (!row_value(row, &v))
            continue;
        size_t k; /* rows of one period are usually adjacent: search backwards */
        for (k = n; k > 0 && strcmp(slots[k - 1].period, period) != 0; k--)
            ;
        struct slot *s;
        if (k == 0) {
            s = &slots[n++];
            snprintf(s->period, sizeof s->period, "%s", period);
            s->d = NAN;
            s->ng = NAN;
        } else {
            s = &slots[k - 1];
        }
        if (is_d)
            s->d = v;
        else
            s->ng = v;
    }
    if (n == 0) {
        char list[256] = "";
        for (int k = 0; k < n_others; k++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", k ? ", " : "", others[k]);
        }
        rc = bz_err_set(err, BZ_EINVAL,
                        "%s: no demand or net generation rows with a value for respondent \"%s\""
                        "%s%s%s",
                        path, respondent, n_others ? " (respondents present include " : "", list,
                        n_others ? ")" : "");
        goto out;
    }
    qsort(slots, n, sizeof *slots, cmp_slot);
    size_t first_d = n;
    for (size_t k = 0; k < n && first_d == n; k++)
        if (isfinite(slots[k].d))
            first_d = k;
    if (first_d == n) {
        rc = bz_err_set(err, BZ_EINVAL, "%s: respondent \"%s\" has no demand (type D) values", path,
                        respondent);
        goto out;
    }
    out->period = malloc(n * sizeof *out->period);
    out->demand_mwh = malloc(n * sizeof *out->demand_mwh);
    out->net_generation_mwh = malloc(n * sizeof *out->net_generation_mwh);
    if (!out->period || !out->demand_mwh || !out->net_generation_mwh) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    double last = slots[first_d].d;
    for (size_t k = 0; k < n; k++) {
        if (isfinite(slots[k].d))
            last = slots[k].d;
        memcpy(out->period[k], slots[k].period, BZ_EIA_PERIOD_MAX);
        out->demand_mwh[k] = last;
        out->net_generation_mwh[k] = slots[k].ng;
        out->n_net_generation += isfinite(slots[k].ng) != 0;
    }
    out->n = n;
    out->hourly = strchr(slots[0].period, 'T') != NULL;
    snprintf(out->respondent, sizeof out->respondent, "%s", respondent);
out:
    if (rc)
        bz_eia_series_cleanup(out);
    free(slots);
    cJSON_Delete(root);
    free(text);
    return rc;
}
