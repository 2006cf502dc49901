/* out_info: a readable summary of a results file (bazaar info): provenance
 * attributes at the root, then every table with rows and columns. Read-only,
 * and safe on files bazaar did not write: every rank, size and class is
 * checked before anything is read into a buffer; what does not fit the
 * expected shape is described, not read. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/out.h"
#include "bazaar/tables.h"
#include "out_h5.h"
#include "out_h5_fail.h"

#define INFO_STR_MAX (1024 * 1024) /* larger fixed-size strings are not read */
#define INFO_SHOW 200              /* characters shown of a string */

/* Print s[0..n) with control bytes replaced, at most INFO_SHOW of them. */
static void print_text(FILE *f, const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    size_t show = nl ? (size_t)(nl - s) : n;
    int cut = nl != NULL || show > INFO_SHOW;
    if (show > INFO_SHOW)
        show = INFO_SHOW;
    for (size_t i = 0; i < show; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
    }
    fputs(cut ? " ...\n" : "\n", f);
}

static void print_name(FILE *f, const char *name)
{
    for (; *name; name++) {
        unsigned char c = (unsigned char)*name;
        fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
    }
}

static void print_string_attr(FILE *f, hid_t a, hid_t t)
{
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (mt < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0) {
        fputs("(unreadable string)\n", f);
        bz_out_h5_close(mt);
        return;
    }
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &s) >= 0 && s)
            print_text(f, s, strlen(s));
        else
            fputs("(unreadable string)\n", f);
        if (s)
            H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(t);
        char *s = NULL;
        if (sz == 0 || sz > INFO_STR_MAX)
            fprintf(f, "(string of %zu bytes, not shown)\n", sz);
        else if ((s = calloc(1, sz + 1)) && H5Tset_size(mt, sz + 1) >= 0 && H5Aread(a, mt, s) >= 0)
            print_text(f, s, strnlen(s, sz));
        else
            fputs("(unreadable string)\n", f);
        free(s);
    }
    H5Tclose(mt);
}

static herr_t print_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    FILE *f = data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return 0;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    fputs("  ", f);
    print_name(f, name);
    fprintf(f, "%*s", (int)(strlen(name) < 12 ? 13 - strlen(name) : 1), "");
    H5S_class_t scls = sp >= 0 ? H5Sget_simple_extent_type(sp) : H5S_NO_CLASS;
    hssize_t npoints = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t < 0 || sp < 0) {
        fputs("(unreadable)\n", f);
    } else if (scls == H5S_NULL || npoints == 0) {
        fputs("(empty)\n", f);
    } else if (npoints != 1) {
        /* only scalars are read: an array would overflow a scalar buffer */
        fprintf(f, "(array of %lld values, not shown)\n", (long long)npoints);
    } else if (cls == H5T_STRING) {
        print_string_attr(f, a, t);
    } else if (cls == H5T_INTEGER) {
        long long v = 0;
        if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0)
            fprintf(f, "%lld\n", v);
        else
            fputs("(unreadable integer)\n", f);
    } else if (cls == H5T_FLOAT) {
        double v = 0;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0)
            fprintf(f, "%g\n", v);
        else
            fputs("(unreadable number)\n", f);
    } else {
        fputs("(value of another type, not shown)\n", f);
    }
    bz_out_h5_close(t);
    bz_out_h5_close(sp);
    H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    return 0;
}

/* The walk over a file's objects: where to print, and the datasets under
 * /.parts (a --layout virtual file's copies of the ranks' chunks, which its
 * virtual tables map: one per source and table, thousands on many ranks)
 * counted rather than listed. */
struct info_walk {
    FILE *f;
    unsigned long long parts, parts_bytes;
};

/* " (virtual: N mappings)" after the rows of a virtual dataset. */
static void print_virtual(FILE *f, hid_t d)
{
    hid_t dcpl = H5Dget_create_plist(d);
    size_t n = 0;
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_VIRTUAL && H5Pget_virtual_count(dcpl, &n) >= 0)
        fprintf(f, " (virtual: %zu mapping%s)", n, n == 1 ? "" : "s");
    bz_out_h5_close(dcpl);
}

static herr_t print_object(hid_t loc, const char *name, const H5O_info_t *info, void *data)
{
    struct info_walk *w = data;
    FILE *f = w->f;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    if (strncmp(name, ".parts/", 7) == 0) {
        w->parts++;
        w->parts_bytes += (unsigned long long)H5Dget_storage_size(d);
        H5Dclose(d);
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    fputc('/', f);
    print_name(f, name);
    /* HDF5 caps a rank at H5S_MAX_RANK: dims[] holds any valid dataspace */
    hsize_t dims[H5S_MAX_RANK];
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank == 1 && H5Sget_simple_extent_dims(sp, dims, NULL) == 1) {
        fprintf(f, ": %llu rows", (unsigned long long)dims[0]);
        print_virtual(f, d);
        fputs("\n   ", f);
    } else if (rank >= 0 && rank <= H5S_MAX_RANK &&
               H5Sget_simple_extent_dims(sp, dims, NULL) == rank) {
        fprintf(f, ": not a table (rank %d, shape", rank);
        for (int i = 0; i < rank; i++)
            fprintf(f, "%s%llu", i ? " x " : " ", (unsigned long long)dims[i]);
        fputs(")\n   ", f);
    } else {
        fputs(": unreadable dataspace\n   ", f);
    }
    if (t >= 0 && H5Tget_class(t) == H5T_COMPOUND) {
        int nm = H5Tget_nmembers(t);
        for (int i = 0; i < nm; i++) {
            char *mn = H5Tget_member_name(t, (unsigned)i);
            fputc(' ', f);
            print_name(f, mn ? mn : "?");
            if (mn)
                H5free_memory(mn);
        }
    } else if (t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1) {
        fprintf(f, " bytes, %llu stored", (unsigned long long)H5Dget_storage_size(d));
    }
    fputc('\n', f);
    bz_out_h5_close(t);
    bz_out_h5_close(sp);
    H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    return 0;
}

/* "memory_turns: 0 (N games), 3 (M games)" when /games.memory_turns (an
 * ablation axis, llm.memory_turns on the grid) takes more than one value; at
 * most 8 values listed. */
static void print_memory_levels(FILE *f, const struct bz_rowbuf *g)
{
    int32_t v[8];
    size_t cnt[8] = {0}, nv = 0, more = 0;
    for (size_t i = 0; i < g->n_rows; i++) {
        const struct bz_games_row *r = (const void *)(g->data + i * sizeof *r);
        size_t k = 0;
        while (k < nv && v[k] != r->memory_turns)
            k++;
        if (k == nv && nv == 8) {
            more++;
            continue;
        }
        if (k == nv)
            v[nv++] = r->memory_turns;
        cnt[k]++;
    }
    if (nv + (more > 0) < 2)
        return;
    fputs("memory_turns:", f);
    for (size_t k = 0; k < nv; k++)
        fprintf(f, "%s %d (%zu games)", k ? "," : "", (int)v[k], cnt[k]);
    if (more)
        fprintf(f, ", other values (%zu games)", more);
    fputc('\n', f);
}

/* "games: N (ok A, failed B, timeout C)" from /games.status; best effort:
 * a file whose /games cannot be read as such prints no line. */
static int print_statuses(const char *path, FILE *f)
{
    struct bz_records rec;
    struct bz_err e = {0};
    bz_records_init(&rec);
    int rc = bz_out_read_table(path, &bz_games_table, &rec, &e);
    const struct bz_rowbuf *g = rc ? NULL : bz_records_find(&rec, &bz_games_table);
    if (g) {
        static const char *const names[] = {"ok", "failed", "timeout"};
        size_t n[4] = {0};
        for (size_t i = 0; i < g->n_rows; i++) {
            const struct bz_games_row *r = (const void *)(g->data + i * sizeof *r);
            size_t k = 0;
            while (k < 3 && strcmp(r->status, names[k]) != 0)
                k++;
            n[k]++;
        }
        fprintf(f, "games: %zu (ok %zu, failed %zu, timeout %zu)\n", g->n_rows, n[0], n[1] + n[3],
                n[2]);
        print_memory_levels(f, g);
    }
    bz_records_cleanup(&rec);
    return BZ_OK;
}

int bz_out_info(const char *path, FILE *f, struct bz_err *err)
{
    int rc;
    hid_t file = H5I_INVALID_HID;
    if ((rc = bz_out_check_input(path, err)))
        return rc;
    if ((rc = bz_out_h5_open_ro(path, &file, err)))
        return rc;
    fprintf(f, "%s\nattributes:\n", path);
    hsize_t idx = 0;
    if (H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr, f) < 0)
        fputs("  (the attributes cannot all be read)\n", f);
    fprintf(f, "tables:\n");
    struct info_walk w = {.f = f};
    if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, print_object, &w, H5O_INFO_BASIC) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot walk its objects (corrupt?)", path);
        bz_out_h5_close_file(&file, path, NULL);
        return rc;
    }
    if (w.parts)
        fprintf(f,
                "/.parts: %llu datasets, %llu bytes stored: the ranks' chunks that the virtual "
                "tables map (bazaar run --layout virtual; readers need HDF5 >= 1.10)\n",
                w.parts, w.parts_bytes);
    if ((rc = bz_out_h5_close_file(&file, path, err)))
        return rc;
    return print_statuses(path, f);
}
