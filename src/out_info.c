/* out_info: a readable summary of a results file (bazaar info): provenance
 * attributes at the root, then every table with rows and columns. Read-only. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/out.h"

static herr_t print_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    FILE *f = data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return 0;
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(t);
    if (cls == H5T_STRING) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Tis_variable_str(t) > 0) {
            H5Tset_size(mt, H5T_VARIABLE);
            char *s = NULL;
            if (H5Aread(a, mt, &s) >= 0 && s) {
                /* the spec is long: show its first line only */
                const char *nl = strchr(s, '\n');
                int n = nl ? (int)(nl - s) : (int)strlen(s);
                fprintf(f, "  %-12s %.*s%s\n", name, n > 200 ? 200 : n, s,
                        (nl || n > 200) ? " ..." : "");
                H5free_memory(s);
            }
        } else {
            size_t sz = H5Tget_size(t);
            char *s = calloc(1, sz + 1);
            H5Tset_size(mt, sz + 1);
            if (s && H5Aread(a, mt, s) >= 0)
                fprintf(f, "  %-12s %s\n", name, s);
            free(s);
        }
        H5Tclose(mt);
    } else if (cls == H5T_INTEGER) {
        long long v = 0;
        if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0)
            fprintf(f, "  %-12s %lld\n", name, v);
    } else if (cls == H5T_FLOAT) {
        double v = 0;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0)
            fprintf(f, "  %-12s %g\n", name, v);
    }
    H5Tclose(t);
    H5Aclose(a);
    return 0;
}

static herr_t print_object(hid_t loc, const char *name, const H5O_info_t *info, void *data)
{
    FILE *f = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0)
        return 0;
    hid_t sp = H5Dget_space(d);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    fprintf(f, "/%s: %llu rows\n   ", name, (unsigned long long)n);
    hid_t t = H5Dget_type(d);
    if (H5Tget_class(t) == H5T_COMPOUND) {
        int nm = H5Tget_nmembers(t);
        for (int i = 0; i < nm; i++) {
            char *mn = H5Tget_member_name(t, (unsigned)i);
            fprintf(f, " %s", mn ? mn : "?");
            H5free_memory(mn);
        }
    }
    fputc('\n', f);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    return 0;
}

int bz_out_info(const char *path, FILE *f, struct bz_err *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        return bz_err_set(err, BZ_EIO, "%s: cannot open as an HDF5 results file", path);
    fprintf(f, "%s\nattributes:\n", path);
    hsize_t idx = 0;
    H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr, f);
    fprintf(f, "tables:\n");
    H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, print_object, f, H5O_INFO_BASIC);
    H5Fclose(file);
    return BZ_OK;
}
