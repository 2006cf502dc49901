/* eia: loads a demand (and net generation) series for one balancing authority
 * from an EIA API v2 JSON file (routes electricity/rto/region-data, hourly,
 * and electricity/rto/daily-region-data). Reads one file; never downloads. */
#ifndef BAZAAR_EIA_H
#define BAZAAR_EIA_H

#include <stddef.h>

#include "bazaar/err.h"

#define BZ_EIA_PERIOD_MAX 24
#define BZ_EIA_FILE_MAX ((size_t)512 << 20) /* refuse larger files */

/* One respondent's series, sorted by period. demand_mwh[i] (type D) is always
 * finite; net_generation_mwh[i] (type NG) is NaN where the file has none.
 * Rows with an empty or missing value are skipped; a period whose demand is
 * missing takes the previous period's demand (the next one's at the start).
 * Daily files list every period once per time zone: only rows of the first
 * time zone seen for the respondent are used. */
struct bz_eia_series {
    char respondent[32];
    char timezone[32]; /* "" for hourly files (UTC periods) */
    int hourly;        /* periods look like 2025-01-21T05 */
    size_t n;
    char (*period)[BZ_EIA_PERIOD_MAX];
    double *demand_mwh;
    double *net_generation_mwh;
    size_t n_net_generation; /* periods with a finite net generation */
};

/* Load respondent's series from path: a bare JSON array of rows or an API
 * reply {"response":{"data":[...]}}. Rows need period, respondent, type and
 * value (a string or number). On failure returns BZ_EIO (cannot read) or
 * BZ_EINVAL with a message naming the file and what was wrong (for an absent
 * respondent, a few of those present). The caller owns out and frees it with
 * bz_eia_series_cleanup (also after a failure). */
int bz_eia_load(const char *path, const char *respondent, struct bz_eia_series *out,
                struct bz_err *err);
void bz_eia_series_cleanup(struct bz_eia_series *s);

#endif
