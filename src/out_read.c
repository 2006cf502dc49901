/* out_read: reading tables and attributes back (tests, checks of a results
 * file). Read-only: never opens a file for writing. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out_h5.h"
#include "out_internal.h"

int bz_out_list_tables(const char *path, char ***paths, size_t *n, struct bz_err *err)
{
    hid_t file;
    int rc = bz_out_h5_open_ro(path, &file, err);
    if (rc)
        return rc;
    rc = bz_out_h5_list_datasets(file, paths, n, path, err);
    H5Fclose(file);
    return rc;
}

/* Growable byte buffer. */
struct bytes {
    unsigned char *p;
    size_t len, cap;
    int failed;
};

static void put(struct bytes *b, const void *src, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* Read a whole 1-D dataset in its native memory type: *buf (calloc'd) and
 * *space to reclaim it with. */
static int read_all(hid_t file, const char *path, const char *table, hid_t mtype,
                    unsigned char **buf, hsize_t *n, hid_t *space, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t dset = H5I_INVALID_HID;
    *buf = NULL;
    *space = H5I_INVALID_HID;
    if ((dset = H5Dopen2(file, table, H5P_DEFAULT)) < 0 || (*space = H5Dget_space(dset)) < 0 ||
        H5Sget_simple_extent_ndims(*space) != 1 || H5Sget_simple_extent_dims(*space, n, NULL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot open table %s", path, table);
        goto out;
    }
    /* a crafted dataspace may claim any size: cap it before allocating (as
     * bz_out_h5_read_game_ids does) */
    if (*n > ((hsize_t)1 << 32)) {
        rc = bz_err_set(err, BZ_EIO, "%s: %s claims %llu rows, more than bazaar reads", path, table,
                        (unsigned long long)*n);
        goto out;
    }
    if (!(*buf = calloc(*n ? (size_t)*n : 1, H5Tget_size(mtype)))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", path, table);
        goto out;
    }
    if (*n && bz_shard_read(dset, mtype, H5S_ALL, H5S_ALL, *buf) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot read table %s", path, table);
        goto out;
    }
out:
    bz_out_h5_close(dset);
    return rc;
}

int bz_out_dump_table(const char *path, const char *table, unsigned char **bytes, size_t *len,
                      size_t *n_rows, struct bz_err *err)
{
    int rc;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    hid_t mtype = H5I_INVALID_HID, space = H5I_INVALID_HID;
    unsigned char *buf = NULL;
    struct bytes out = {0};
    hsize_t n = 0;
    *bytes = NULL;
    *len = *n_rows = 0;
    if ((rc = bz_out_h5_open_ro(path, &file, err)))
        return rc;
    if ((dset = H5Dopen2(file, table, H5P_DEFAULT)) < 0 ||
        (ftype = bz_shard_table_type(dset)) < 0 || H5Tget_class(ftype) != H5T_COMPOUND ||
        (mtype = H5Tget_native_type(ftype, H5T_DIR_ASCEND)) < 0) {
        rc =
            bz_out_h5_fail(err, BZ_EIO, "%s: table %s: not a readable compound table", path, table);
        goto out;
    }
    bz_out_h5_close(dset);
    dset = H5I_INVALID_HID;
    if ((rc = read_all(file, path, table, mtype, &buf, &n, &space, err)))
        goto out;
    int nm = H5Tget_nmembers(mtype);
    size_t msize = H5Tget_size(mtype);
    if (nm < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: members", path, table);
        goto out;
    }
    enum { RAW, VSTR } kind[256];
    size_t off[256], size[256];
    if (nm > 256) {
        rc = bz_err_set(err, BZ_EINVAL, "%s: table %s: too many columns", path, table);
        goto out;
    }
    for (int k = 0; k < nm; k++) {
        char *name = H5Tget_member_name(mtype, (unsigned)k);
        hid_t t = H5Tget_member_type(mtype, (unsigned)k);
        H5T_class_t cls = H5Tget_member_class(mtype, (unsigned)k);
        if (!name || t < 0) {
            if (name)
                H5free_memory(name);
            bz_out_h5_close(t);
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: member %d", path, table, k);
            goto out;
        }
        put(&out, name, strlen(name) + 1);
        put(&out, &cls, sizeof cls);
        H5free_memory(name);
        off[k] = H5Tget_member_offset(mtype, (unsigned)k);
        size[k] = H5Tget_size(t);
        htri_t vstr = cls == H5T_STRING ? H5Tis_variable_str(t) : 0;
        int nested_vlen = cls != H5T_STRING && bz_out_h5_has_vlen(t) != 0;
        H5Tclose(t);
        if (nested_vlen) {
            rc = bz_err_set(err, BZ_EINVAL, "%s: table %s: column %d holds variable-length data",
                            path, table, k);
            goto out;
        }
        kind[k] = vstr > 0 ? VSTR : RAW;
    }
    for (hsize_t r = 0; r < n; r++) {
        const unsigned char *row = buf + (size_t)r * msize;
        for (int k = 0; k < nm; k++) {
            if (kind[k] == RAW) {
                put(&out, row + off[k], size[k]);
                continue;
            }
            const char *s;
            memcpy(&s, row + off[k], sizeof s);
            uint64_t sl = s ? strlen(s) : 0;
            put(&out, &sl, sizeof sl);
            put(&out, s ? s : "", (size_t)sl);
        }
    }
    if (out.failed) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", path, table);
        goto out;
    }
    *bytes = out.p;
    *len = out.len;
    *n_rows = (size_t)n;
    out.p = NULL;
out:
    if (buf && space >= 0 && n)
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
    free(buf);
    free(out.p);
    bz_out_h5_close(space);
    bz_out_h5_close(mtype);
    bz_out_h5_close(ftype);
    bz_out_h5_close(dset);
    bz_out_h5_close(file);
    return rc;
}

/* Read desc's columns of an open dataset (a subset of the file's, matched by
 * name) into rec. Strings come back whatever the file holds them as
 * (fixed-width or variable-length): each column is read in the file's own
 * string type and copied into rec's arena. */
static int read_desc_rows(hid_t file, const char *path, const struct bz_table_desc *desc,
                          struct bz_records *rec, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t dset = H5I_INVALID_HID, ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, vstr = H5I_INVALID_HID;
    unsigned char *buf = NULL;
    size_t *off = NULL, *width = NULL, size = 0;
    hsize_t n = 0;
    int vlen = 0;
    if ((dset = H5Dopen2(file, desc->path, H5P_DEFAULT)) < 0 ||
        (ftype = bz_shard_table_type(dset)) < 0 || H5Tget_class(ftype) != H5T_COMPOUND) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: not a readable compound table", path,
                            desc->path);
        goto out;
    }
    if (!(off = calloc(desc->n_cols + 1, sizeof *off)) ||
        !(width = calloc(desc->n_cols + 1, sizeof *width))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", path, desc->path);
        goto out;
    }
    /* the memory row: desc's columns packed, strings as the file has them */
    for (size_t c = 0; c < desc->n_cols; c++) {
        const struct bz_column *col = &desc->cols[c];
        off[c] = size;
        if (col->type != BZ_COL_STR) {
            size += col->type == BZ_COL_U8 ? 1 : col->type == BZ_COL_I32 ? 4 : 8;
            continue;
        }
        int idx = H5Tget_member_index(ftype, col->name);
        hid_t mt = idx >= 0 ? H5Tget_member_type(ftype, (unsigned)idx) : H5I_INVALID_HID;
        htri_t var = mt >= 0 && H5Tget_class(mt) == H5T_STRING ? H5Tis_variable_str(mt) : -1;
        if (var == 0)
            width[c] = H5Tget_size(mt);
        bz_out_h5_close(mt);
        if (var < 0) {
            H5Eclear2(H5E_DEFAULT);
            rc = bz_err_set(err, BZ_EINVAL, "%s: table %s: no string column %s", path, desc->path,
                            col->name);
            goto out;
        }
        size += var ? sizeof(char *) : width[c];
        vlen |= var > 0;
    }
    if ((mtype = H5Tcreate(H5T_COMPOUND, size ? size : 1)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot build its row type", path,
                            desc->path);
        goto out;
    }
    for (size_t c = 0; c < desc->n_cols; c++) {
        const struct bz_column *col = &desc->cols[c];
        hid_t own;
        hid_t ct = bz_out_h5_col_type(col->type, width[c], &vstr, &own);
        herr_t ins = ct >= 0 ? H5Tinsert(mtype, col->name, off[c], ct) : -1;
        bz_out_h5_close(own);
        if (ins < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot build its row type", path,
                                desc->path);
            goto out;
        }
    }
    bz_out_h5_close(dset);
    dset = H5I_INVALID_HID;
    if ((rc = read_all(file, path, desc->path, mtype, &buf, &n, &space, err)))
        goto out;
    for (hsize_t r = 0; r < n; r++) {
        const unsigned char *src = buf + (size_t)r * size;
        unsigned char *dst = bz_records_add(rec, desc);
        if (!dst) {
            rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", path, desc->path);
            goto out;
        }
        for (size_t c = 0; c < desc->n_cols; c++) {
            const struct bz_column *col = &desc->cols[c];
            if (col->type != BZ_COL_STR) {
                memcpy(dst + col->offset, src + off[c],
                       col->type == BZ_COL_U8    ? 1
                       : col->type == BZ_COL_I32 ? 4
                                                 : 8);
                continue;
            }
            const char *s;
            size_t len;
            if (width[c]) {
                s = (const char *)src + off[c];
                len = strnlen(s, width[c]);
            } else {
                memcpy(&s, src + off[c], sizeof s);
                len = s ? strlen(s) : 0;
            }
            const char *copy = bz_records_strndup(rec, s, len);
            if (!copy) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", path, desc->path);
                goto out;
            }
            memcpy(dst + col->offset, &copy, sizeof copy);
        }
    }
out:
    if (buf && vlen && space >= 0 && n)
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
    free(buf);
    free(off);
    free(width);
    bz_out_h5_close(space);
    bz_out_h5_close(mtype);
    bz_out_h5_close(vstr);
    bz_out_h5_close(ftype);
    bz_out_h5_close(dset);
    return rc;
}

int bz_out_read_table(const char *path, const struct bz_table_desc *desc, struct bz_records *rec,
                      struct bz_err *err)
{
    hid_t file = H5I_INVALID_HID;
    int rc = bz_out_h5_open_ro(path, &file, err);
    if (rc)
        return rc;
    if (H5Lexists(file, desc->path, H5P_DEFAULT) > 0) /* no such table: no rows */
        rc = read_desc_rows(file, path, desc, rec, err);
    bz_out_h5_close(file);
    return rc;
}

static int open_attr(const char *path, const char *name, hid_t *file, hid_t *attr,
                     struct bz_err *err)
{
    int rc;
    *attr = H5I_INVALID_HID;
    if ((rc = bz_out_h5_open_ro(path, file, err)))
        return rc;
    htri_t has = H5Aexists(*file, name);
    if (has < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot read attribute %s", path, name);
    if (!has)
        return bz_err_set(err, BZ_EINVAL, "%s: no attribute %s", path, name);
    if ((*attr = H5Aopen(*file, name, H5P_DEFAULT)) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot open attribute %s", path, name);
    return BZ_OK;
}

int bz_out_read_attr_str(const char *path, const char *name, char *buf, size_t cap,
                         struct bz_err *err)
{
    hid_t file = H5I_INVALID_HID, attr, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    char *value = NULL;
    int rc = open_attr(path, name, &file, &attr, err);
    if (rc)
        goto out;
    if ((type = bz_out_h5_str_type()) < 0 || (space = H5Screate(H5S_SCALAR)) < 0 ||
        H5Aread(attr, type, &value) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot read attribute %s as a string", path, name);
        goto out;
    }
    if (cap)
        snprintf(buf, cap, "%s", value ? value : "");
out:
    if (value)
        H5Dvlen_reclaim(type, space, H5P_DEFAULT, &value);
    bz_out_h5_close(space);
    bz_out_h5_close(type);
    bz_out_h5_close(attr);
    bz_out_h5_close(file);
    return rc;
}

int bz_out_read_attr_i64(const char *path, const char *name, int64_t *value, struct bz_err *err)
{
    hid_t file = H5I_INVALID_HID, attr;
    int rc = open_attr(path, name, &file, &attr, err);
    if (!rc && H5Aread(attr, H5T_NATIVE_INT64, value) < 0)
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: cannot read attribute %s as int64", path, name);
    bz_out_h5_close(attr);
    bz_out_h5_close(file);
    return rc;
}

void bz_out_free_columns(struct bz_out_column *cols, size_t n)
{
    if (!cols)
        return;
    for (size_t i = 0; i < n; i++) {
        free(cols[i].name);
        free(cols[i].unit);
        free(cols[i].doc);
    }
    free(cols);
}

/* The descriptor kind of an HDF5 member type, or -1. */
static int col_kind(hid_t t)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (cls == H5T_STRING)
        return BZ_COL_STR; /* variable-length or fixed-width */
    if (cls == H5T_FLOAT)
        return size == 8 ? BZ_COL_F64 : -1;
    if (cls != H5T_INTEGER)
        return -1;
    int is_signed = H5Tget_sign(t) == H5T_SGN_2;
    if (size == 1 && !is_signed)
        return BZ_COL_U8;
    if (size == 4 && is_signed)
        return BZ_COL_I32;
    if (size == 8)
        return is_signed ? BZ_COL_I64 : BZ_COL_U64;
    return -1;
}

/* Attribute name of dset, an array of strings, into dst[i].(unit|doc). */
static int read_col_attr(hid_t dset, const char *name, struct bz_out_column *cols, size_t n,
                         int doc)
{
    int rc = -1;
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    char **v = NULL;
    htri_t has = H5Aexists(dset, name);
    if (has <= 0)
        return has < 0 ? -1 : 0;
    if ((attr = H5Aopen(dset, name, H5P_DEFAULT)) < 0 || (space = H5Aget_space(attr)) < 0 ||
        (type = bz_out_h5_str_type()) < 0)
        goto out;
    hssize_t len = H5Sget_simple_extent_npoints(space);
    if (len < 0 || !(v = calloc(len ? (size_t)len : 1, sizeof *v)) || H5Aread(attr, type, v) < 0)
        goto out;
    rc = 0;
    for (size_t i = 0; i < n && i < (size_t)len; i++) {
        char **dst = doc ? &cols[i].doc : &cols[i].unit;
        free(*dst);
        if (!(*dst = strdup(v[i] ? v[i] : "")))
            rc = -1;
    }
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, v);
out:
    free(v);
    bz_out_h5_close(type);
    bz_out_h5_close(space);
    bz_out_h5_close(attr);
    return rc;
}

int bz_out_describe_table(const char *path, const char *table, struct bz_out_column **cols,
                          size_t *n, struct bz_err *err)
{
    int rc;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    struct bz_out_column *c = NULL;
    int nm = 0;
    *cols = NULL;
    *n = 0;
    if ((rc = bz_out_h5_open_ro(path, &file, err)))
        return rc;
    if ((dset = H5Dopen2(file, table, H5P_DEFAULT)) < 0 ||
        (ftype = bz_shard_table_type(dset)) < 0 || H5Tget_class(ftype) != H5T_COMPOUND ||
        (nm = H5Tget_nmembers(ftype)) < 0) {
        rc =
            bz_out_h5_fail(err, BZ_EIO, "%s: table %s: not a readable compound table", path, table);
        goto out;
    }
    if (!(c = calloc(nm ? (size_t)nm : 1, sizeof *c))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", path, table);
        goto out;
    }
    for (int k = 0; k < nm; k++) {
        char *name = H5Tget_member_name(ftype, (unsigned)k);
        hid_t t = H5Tget_member_type(ftype, (unsigned)k);
        c[k].type = t >= 0 ? col_kind(t) : -1;
        bz_out_h5_close(t);
        c[k].name = name ? strdup(name) : NULL;
        if (name)
            H5free_memory(name);
        c[k].unit = strdup("");
        c[k].doc = strdup("");
        if (!c[k].name || !c[k].unit || !c[k].doc) {
            rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", path, table);
            goto out;
        }
    }
    if (read_col_attr(dset, "units", c, (size_t)nm, 0) < 0 ||
        read_col_attr(dset, "doc", c, (size_t)nm, 1) < 0) {
        rc =
            bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot read its units and doc", path, table);
        goto out;
    }
    *cols = c;
    *n = (size_t)nm;
    c = NULL;
out:
    bz_out_free_columns(c, (size_t)nm);
    bz_out_h5_close(ftype);
    bz_out_h5_close(dset);
    bz_out_h5_close(file);
    return rc;
}

/* Attribute name of file, open, when it holds one value of class cls
 * (a crafted file may hold an array, or another type, under the name). */
static hid_t root_attr(hid_t file, const char *name, H5T_class_t cls)
{
    hid_t a = H5Aexists(file, name) > 0 ? H5Aopen(file, name, H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID, t = a >= 0 ? H5Aget_type(a) : -1;
    int ok = sp >= 0 && t >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && H5Tget_class(t) == cls &&
             (cls != H5T_STRING || H5Tis_variable_str(t) > 0);
    bz_out_h5_close(t);
    bz_out_h5_close(sp);
    if (!ok) {
        bz_out_h5_close(a);
        a = H5I_INVALID_HID;
    }
    H5Eclear2(H5E_DEFAULT);
    return a;
}

/* A string attribute of file (NULL when absent or not one string). */
static char *root_str(hid_t file, const char *name)
{
    char *v = NULL, *copy = NULL;
    hid_t a = root_attr(file, name, H5T_STRING);
    hid_t t = bz_out_h5_str_type();
    if (a >= 0 && t >= 0 && H5Aread(a, t, &v) >= 0 && v) {
        copy = strdup(v);
        H5free_memory(v);
    }
    H5Eclear2(H5E_DEFAULT);
    bz_out_h5_close(t);
    bz_out_h5_close(a);
    return copy;
}

static int64_t root_i64(hid_t file, const char *name)
{
    int64_t v = 0;
    hid_t a = root_attr(file, name, H5T_INTEGER);
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
        v = 0;
    H5Eclear2(H5E_DEFAULT);
    bz_out_h5_close(a);
    return v;
}

int bz_out_read_provenance(const char *path, struct bz_provenance *prov, char **buf,
                           struct bz_err *err)
{
    static const char *const names[] = {"spec_json", "version", "git_commit", "hosts",
                                        "started_at"};
    enum { N = sizeof names / sizeof names[0] };
    hid_t file = H5I_INVALID_HID;
    char *v[N] = {0};
    size_t len = 0;
    *buf = NULL;
    int rc = bz_out_h5_open_ro(path, &file, err);
    if (rc)
        return rc;
    for (int k = 0; k < N; k++) {
        v[k] = root_str(file, names[k]);
        len += v[k] ? strlen(v[k]) + 1 : 0;
    }
    int64_t ranks = root_i64(file, "ranks"), n_games = root_i64(file, "n_games");
    bz_out_h5_close(file);
    if (!v[0]) { /* not a results file (a shard) */
        rc = BZ_EINVAL;
    } else if (!(*buf = malloc(len))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: no memory", path);
    } else {
        const char **field[N] = {&prov->spec_json, &prov->version, &prov->git_commit, &prov->hosts,
                                 &prov->started_at};
        char *p = *buf;
        for (int k = 0; k < N; k++) {
            *field[k] = v[k] ? p : NULL;
            if (v[k]) {
                size_t n = strlen(v[k]) + 1;
                memcpy(p, v[k], n);
                p += n;
            }
        }
        prov->ranks = ranks;
        prov->n_games = n_games;
    }
    for (int k = 0; k < N; k++)
        free(v[k]);
    return rc;
}
