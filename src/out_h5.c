/* out_h5: HDF5 plumbing shared by the shard writer, the merge and the
 * read-back helpers: error messages, types, dataset creation, table listing,
 * and the functions HDF5's deflate and Fletcher32 filters run in this
 * process (which must store exactly HDF5's own format). Only src/out_*.c
 * call HDF5. */
#include <math.h> /* ceil */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out_fletcher.h"
#include "out_h5.h"
#include "out_h5_fail.h"
#include "out_internal.h"
#include "out_zpool.h"

/* ---- HDF5's deflate and Fletcher32 filters, faster -----------------------
 * The tables HDF5 itself filters (H5Dwrite through the dataset's pipeline:
 * the merged tables with variable-length strings, a shard's tables) go
 * through the same filter ids, cd_values and stored bytes as with HDF5's
 * own functions, which any reader decodes: a zlib stream (level 1 through
 * ISA-L or libdeflate, other levels through zlib at that level) and
 * Fletcher32 as H5Z_filter_fletcher32 stores and checks it. */

/* The public H5Zregister refuses ids below H5Z_FILTER_RESERVED ("unable to
 * modify predefined filters", HDF5 1.10.8); the library's own H5Z_register,
 * exported by libhdf5 1.8-1.14 (declared in its private H5Zprivate.h),
 * replaces the class of a registered id. Weak: a libhdf5 without it keeps
 * HDF5's own filters. */
extern herr_t H5Z_register(const H5Z_class2_t *cls) __attribute__((weak));

#define FLETCHER_LEN 4

/* The filters' compressor: HDF5 calls its filters from one thread at a
 * time (the library is not thread-safe). Kept for the process. */
static struct bz_zchunk *filt_z;
static size_t filt_inflated; /* the last chunk's decompressed bytes */
static int filt_installed;

static size_t filt_fail(hid_t maj, hid_t min, const char *msg)
{
    H5Epush2(H5E_DEFAULT, __FILE__, "bz_out_h5_filter", __LINE__, H5E_ERR_CLS, maj, min, "%s", msg);
    return 0;
}

static void *filt_resize(void *p, size_t n)
{
    return H5resize_memory(p, n);
}

/* H5Z_filter_deflate's contract: cd_values[0] the level (<= 9); on write
 * a stream of at most ceil(1.001 x input) + 12 bytes (HDF5 1.10's
 * H5Z_DEFLATE_SIZE_ADJUST; larger: failure, and HDF5 stores the chunk with
 * this optional filter skipped); on read the buffer grown until the stream
 * is decoded. 0 on failure, the error on HDF5's stack. */
static size_t filt_deflate(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                           size_t nbytes, size_t *buf_size, void **buf)
{
    if (cd_nelmts != 1 || cd_values[0] > 9)
        return filt_fail(H5E_ARGS, H5E_BADVALUE, "invalid deflate aggression level");
    if (!filt_z && !(filt_z = bz_zchunk_create()))
        return filt_fail(H5E_RESOURCE, H5E_NOSPACE, "memory allocation failed for deflate");
    if (flags & H5Z_FLAG_REVERSE) {
        size_t cap = *buf_size > nbytes ? *buf_size : nbytes, n = 0;
        /* chunks of a dataset decompress to the same size: start there */
        if (filt_inflated > cap && filt_inflated <= 64 * (nbytes + 64))
            cap = filt_inflated;
        if (cap == 0)
            cap = 1;
        unsigned char *out = H5allocate_memory(cap, 0);
        if (!out)
            return filt_fail(H5E_RESOURCE, H5E_NOSPACE,
                             "memory allocation failed for deflate uncompression");
        int rc = bz_zpool_inflate(filt_z, *buf, nbytes, &out, &cap, &n, filt_resize);
        if (rc != 0) {
            H5free_memory(out);
            return rc == -2 ? filt_fail(H5E_RESOURCE, H5E_NOSPACE,
                                        "memory allocation failed for deflate uncompression")
                            : filt_fail(H5E_PLINE, H5E_CANTINIT, "inflate() failed");
        }
        H5free_memory(*buf);
        *buf = out;
        *buf_size = cap;
        filt_inflated = n;
        return n;
    }
    /* room for the Fletcher32 that follows, so that it appends in place */
    size_t cap = bz_zpool_bound(nbytes), n = 0;
    unsigned char *out = H5allocate_memory(cap, 0);
    if (!out)
        return filt_fail(H5E_RESOURCE, H5E_NOSPACE,
                         "unable to allocate deflate destination buffer");
    double most = ceil((double)nbytes * (double)1.001f) + 12.0;
    if (bz_zpool_deflate(filt_z, (int)cd_values[0], *buf, nbytes, out, cap - FLETCHER_LEN, &n) !=
            0 ||
        (double)n > most) {
        H5free_memory(out);
        return filt_fail(H5E_PLINE, H5E_CANTINIT, "overflow");
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = cap;
    return n;
}

/* H5Z_filter_fletcher32's contract: on write the checksum appended
 * little-endian; on read (unless H5Z_FLAG_SKIP_EDC) the stored value must
 * be the checksum or, as HDF5 also accepts, the one HDF5 before 1.6.3
 * computed on little-endian machines (the bytes of each 16-bit half
 * swapped). */
static size_t filt_fletcher32(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                              size_t nbytes, size_t *buf_size, void **buf)
{
    (void)cd_nelmts;
    (void)cd_values;
    unsigned char *src = *buf;
    if (flags & H5Z_FLAG_REVERSE) {
        if (nbytes < FLETCHER_LEN)
            return filt_fail(H5E_STORAGE, H5E_READERROR,
                             "data error detected by Fletcher32 checksum");
        size_t n = nbytes - FLETCHER_LEN;
        if (!(flags & H5Z_FLAG_SKIP_EDC)) {
            uint32_t stored = (uint32_t)src[n] | (uint32_t)src[n + 1] << 8 |
                              (uint32_t)src[n + 2] << 16 | (uint32_t)src[n + 3] << 24;
            uint32_t sum = bz_out_fletcher32(src, n);
            uint32_t reversed = (sum & 0x00ff00ffu) << 8 | (sum >> 8 & 0x00ff00ffu);
            if (stored != sum && stored != reversed)
                return filt_fail(H5E_STORAGE, H5E_READERROR,
                                 "data error detected by Fletcher32 checksum");
        }
        return n;
    }
    if (*buf_size < nbytes + FLETCHER_LEN) {
        void *nb = H5resize_memory(*buf, nbytes + FLETCHER_LEN);
        if (!nb)
            return filt_fail(H5E_RESOURCE, H5E_NOSPACE,
                             "unable to allocate Fletcher32 checksum destination buffer");
        *buf = src = nb;
        *buf_size = nbytes + FLETCHER_LEN;
    }
    bz_out_fletcher32_put(src + nbytes, bz_out_fletcher32(src, nbytes));
    return nbytes + FLETCHER_LEN;
}

int bz_out_h5_filters_install(void)
{
    static int tried;
    if (tried)
        return filt_installed;
    tried = 1;
    const char *env = getenv("BZ_HDF5_FILTERS");
    if (env && strcmp(env, "builtin") == 0)
        return 0;
    unsigned maj = 0, min = 0, rel = 0;
    if (!H5Z_register || H5open() < 0 || H5get_libversion(&maj, &min, &rel) < 0 || maj != 1 ||
        min < 8 || min > 14)
        return 0;
    /* the names are HDF5's: a version 1 pipeline message stores them */
    static const H5Z_class2_t deflate = {
        H5Z_CLASS_T_VERS, H5Z_FILTER_DEFLATE, 1, 1, "deflate", NULL, NULL, filt_deflate};
    static const H5Z_class2_t fletcher = {
        H5Z_CLASS_T_VERS, H5Z_FILTER_FLETCHER32, 1, 1, "fletcher32", NULL, NULL, filt_fletcher32};
    if (H5Z_register(&deflate) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    if (H5Z_register(&fletcher) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0; /* deflate alone is still a whole, standard filter */
    }
    filt_installed = 1;
    return 1;
}

void bz_out_h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    (void)bz_out_h5_filters_install();
}

struct walk_state {
    char desc[256];
    int have;
};

/* Walking upward starts at the innermost frame, where the fault was seen
 * ("truncated file: eof = ...", "unable to open file: ... errno = 2"). */
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    struct walk_state *w = data;
    if (!w->have && e->desc && e->desc[0]) {
        snprintf(w->desc, sizeof w->desc, "%s", e->desc);
        w->have = 1;
    }
    return 0;
}

int bz_out_h5_fail(struct bz_err *err, int code, const char *fmt, ...)
{
    struct walk_state w = {.have = 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (!err)
        return code;
    char head[BZ_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    if (w.have)
        return bz_err_set(err, code, "%s (HDF5: %s)", head, w.desc);
    return bz_err_set(err, code, "%s", head);
}

void bz_out_h5_close(hid_t id)
{
    if (id < 0)
        return;
    /* Every API call clears the error stack: keep it for bz_out_h5_fail. */
    hid_t saved = H5Eget_current_stack();
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
    if (saved >= 0)
        H5Eset_current_stack(saved);
}

hid_t bz_out_h5_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

hid_t bz_out_h5_fixed_str_type(size_t width)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, width) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static size_t raw_size(enum bz_col_type t)
{
    switch (t) {
    case BZ_COL_I32: return sizeof(int32_t);
    case BZ_COL_I64: return sizeof(int64_t);
    case BZ_COL_U64: return sizeof(uint64_t);
    case BZ_COL_F64: return sizeof(double);
    case BZ_COL_U8: return sizeof(uint8_t);
    case BZ_COL_STR: return sizeof(const char *);
    }
    return 0;
}

static int layout_init(struct bz_out_layout *l, const struct bz_table_desc *desc, int shard)
{
    memset(l, 0, sizeof *l);
    if (!(l->cols = calloc(desc->n_cols ? desc->n_cols : 1, sizeof *l->cols)) ||
        !(l->ops = calloc(desc->n_cols ? desc->n_cols : 1, sizeof *l->ops))) {
        bz_out_layout_free(l);
        return -1;
    }
    l->n_cols = desc->n_cols;
    for (size_t i = 0; i < desc->n_cols; i++) {
        const struct bz_column *c = &desc->cols[i];
        struct bz_out_layout_col *o = &l->cols[i];
        o->src = c->offset;
        o->dst = l->size;
        o->kind = BZ_OUT_RAW;
        o->col = i;
        o->size = raw_size(c->type);
        if (!o->size) {
            bz_out_layout_free(l);
            return -1;
        }
        if (c->type == BZ_COL_STR) {
            o->kind = c->width ? BZ_OUT_FIXED_STR : BZ_OUT_VLEN_STR;
            if (c->width) {
                o->size = c->width;
            } else if (shard && c->shard_bytes) {
                o->kind = BZ_OUT_TEXT_REF;
                o->size = BZ_OUT_TEXT_REF_SIZE;
            } else {
                l->has_vlen = 1;
            }
        }
        l->size += o->size;
        struct bz_out_layout_col *last = l->n_ops ? &l->ops[l->n_ops - 1] : NULL;
        if (last && last->kind == BZ_OUT_RAW && o->kind == BZ_OUT_RAW &&
            last->src + last->size == o->src && last->dst + last->size == o->dst)
            last->size += o->size;
        else
            l->ops[l->n_ops++] = *o;
    }
    return 0;
}

int bz_out_layout_init(struct bz_out_layout *l, const struct bz_table_desc *desc)
{
    return layout_init(l, desc, 0);
}

int bz_out_layout_init_shard(struct bz_out_layout *l, const struct bz_table_desc *desc)
{
    return layout_init(l, desc, 1);
}

void bz_out_layout_free(struct bz_out_layout *l)
{
    free(l->cols);
    free(l->ops);
    l->cols = l->ops = NULL;
}

hid_t bz_out_h5_col_type(enum bz_col_type type, size_t width, hid_t *vstr, hid_t *own)
{
    *own = H5I_INVALID_HID;
    switch (type) {
    case BZ_COL_I32: return H5T_NATIVE_INT32;
    case BZ_COL_I64: return H5T_NATIVE_INT64;
    case BZ_COL_U64: return H5T_NATIVE_UINT64;
    case BZ_COL_F64: return H5T_NATIVE_DOUBLE;
    case BZ_COL_U8: return H5T_NATIVE_UINT8;
    case BZ_COL_STR:
        if (width)
            return *own = bz_out_h5_fixed_str_type(width);
        if (*vstr < 0)
            *vstr = bz_out_h5_str_type();
        return *vstr;
    }
    return H5I_INVALID_HID;
}

hid_t bz_out_h5_text_ref_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, BZ_OUT_TEXT_REF_SIZE);
    if (t >= 0 && (H5Tinsert(t, "offset", 0, H5T_NATIVE_UINT64) < 0 ||
                   H5Tinsert(t, "length", 8, H5T_NATIVE_UINT32) < 0)) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static hid_t row_type(const struct bz_table_desc *desc, int shard)
{
    struct bz_out_layout l;
    hid_t t = H5I_INVALID_HID, vstr = H5I_INVALID_HID;
    if (layout_init(&l, desc, shard) < 0)
        return H5I_INVALID_HID;
    if ((t = H5Tcreate(H5T_COMPOUND, l.size ? l.size : 1)) < 0)
        goto fail;
    for (size_t i = 0; i < desc->n_cols; i++) {
        const struct bz_column *c = &desc->cols[i];
        hid_t fixed = H5I_INVALID_HID;
        hid_t ct = l.cols[i].kind == BZ_OUT_TEXT_REF
                       ? (fixed = bz_out_h5_text_ref_type())
                       : bz_out_h5_col_type(c->type, c->width, &vstr, &fixed);
        herr_t ins = ct >= 0 ? H5Tinsert(t, c->name, l.cols[i].dst, ct) : -1;
        bz_out_h5_close(fixed);
        if (ins < 0)
            goto fail;
    }
    bz_out_h5_close(vstr);
    bz_out_layout_free(&l);
    return t;
fail:
    bz_out_h5_close(vstr);
    bz_out_h5_close(t);
    bz_out_layout_free(&l);
    return H5I_INVALID_HID;
}

hid_t bz_out_h5_file_type(const struct bz_table_desc *desc)
{
    return row_type(desc, 0);
}

hid_t bz_out_h5_shard_type(const struct bz_table_desc *desc)
{
    return row_type(desc, 1);
}

hid_t bz_out_h5_mem_type(const struct bz_table_desc *desc)
{
    hid_t str = H5I_INVALID_HID;
    hid_t t = H5Tcreate(H5T_COMPOUND, desc->row_size);
    if (t < 0)
        return t;
    for (size_t i = 0; i < desc->n_cols; i++) {
        const struct bz_column *c = &desc->cols[i];
        hid_t none = H5I_INVALID_HID; /* width 0: the pointer, never a fixed type */
        hid_t ct = bz_out_h5_col_type(c->type, 0, &str, &none);
        if (ct < 0 || H5Tinsert(t, c->name, c->offset, ct) < 0)
            goto fail;
    }
    bz_out_h5_close(str);
    return t;
fail:
    bz_out_h5_close(str);
    H5Tclose(t);
    return H5I_INVALID_HID;
}

/* A 1-D attribute of n variable-length UTF-8 strings on obj. */
static int write_str_array_attr(hid_t obj, const char *name, const char *const *values, hsize_t n)
{
    int rc = -1;
    hid_t type = bz_out_h5_str_type(), space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    if (type >= 0 && (space = H5Screate_simple(1, &n, NULL)) >= 0 &&
        (attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
        H5Awrite(attr, type, values) >= 0)
        rc = 0;
    bz_out_h5_close(attr);
    bz_out_h5_close(space);
    bz_out_h5_close(type);
    return rc;
}

int bz_out_h5_write_col_attrs(hid_t dset, const struct bz_table_desc *desc)
{
    const char **units = calloc(desc->n_cols ? desc->n_cols : 1, sizeof *units);
    const char **docs = calloc(desc->n_cols ? desc->n_cols : 1, sizeof *docs);
    int rc = -1;
    if (!units || !docs)
        goto out;
    for (size_t i = 0; i < desc->n_cols; i++) {
        units[i] = desc->cols[i].unit ? desc->cols[i].unit : "";
        docs[i] = desc->cols[i].doc ? desc->cols[i].doc : "";
    }
    if (write_str_array_attr(dset, "units", units, desc->n_cols) == 0 &&
        write_str_array_attr(dset, "doc", docs, desc->n_cols) == 0)
        rc = 0;
out:
    free(units);
    free(docs);
    return rc;
}

struct copy_state {
    hid_t dst;
    int failed;
};

/* Copy one attribute as it is (type, shape, values). */
static herr_t copy_attr_cb(hid_t src, const char *name, const H5A_info_t *info, void *data)
{
    struct copy_state *st = data;
    hid_t attr = H5I_INVALID_HID, ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID, out = H5I_INVALID_HID;
    void *buf = NULL;
    int vlen = 0;
    (void)info;
    st->failed = 1;
    if ((attr = H5Aopen(src, name, H5P_DEFAULT)) < 0 || (ftype = H5Aget_type(attr)) < 0 ||
        (space = H5Aget_space(attr)) < 0 ||
        (mtype = H5Tget_native_type(ftype, H5T_DIR_ASCEND)) < 0 ||
        (vlen = bz_out_h5_has_vlen(mtype)) < 0)
        goto out;
    hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0 || !(buf = calloc(n ? (size_t)n : 1, H5Tget_size(mtype))))
        goto out;
    if (H5Aread(attr, mtype, buf) < 0)
        goto out;
    if ((out = H5Acreate2(st->dst, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
        H5Awrite(out, mtype, buf) >= 0)
        st->failed = 0;
    if (vlen)
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
out:
    free(buf);
    bz_out_h5_close(out);
    bz_out_h5_close(mtype);
    bz_out_h5_close(space);
    bz_out_h5_close(ftype);
    bz_out_h5_close(attr);
    return st->failed ? -1 : 0;
}

int bz_out_h5_copy_attrs(hid_t src, hid_t dst)
{
    struct copy_state st = {dst, 0};
    hsize_t idx = 0;
    if (H5Aiterate2(src, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_attr_cb, &st) < 0 || st.failed)
        return -1;
    return 0;
}

hsize_t bz_out_h5_chunk_rows(size_t row_bytes, size_t target_bytes, hsize_t max_rows)
{
    hsize_t rows = row_bytes ? target_bytes / row_bytes : 1;
    if (rows < 1)
        rows = 1;
    if (max_rows > 0 && rows > max_rows)
        rows = max_rows;
    return rows;
}

hid_t bz_out_h5_create_table(hid_t file, const char *path, hid_t file_type, hsize_t n_rows,
                             hsize_t chunk_rows, int deflate_level, hid_t fill_type,
                             const void *fill)
{
    hid_t space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hid_t dset = H5I_INVALID_HID;
    hsize_t max = H5S_UNLIMITED;
    if ((space = H5Screate_simple(1, &n_rows, &max)) < 0)
        goto out;
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0)
        goto out;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 1, &chunk_rows) < 0)
        goto out;
    if (deflate_level == BZ_OUT_H5_MERGED_PIPELINE) {
        if (H5Pset_deflate(dcpl, BZ_ZPOOL_LEVEL) < 0)
            goto out;
    } else if (deflate_level > 0) {
        if (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)deflate_level) < 0)
            goto out;
    }
    /* Last in the pipeline: a checksum of every stored chunk, so a bit flip
     * on disk is a read error (the shard is set aside and its games are
     * replayed) instead of wrong numbers in the results. */
    if (H5Pset_fletcher32(dcpl) < 0)
        goto out;
    if (fill && H5Pset_fill_value(dcpl, fill_type, fill) < 0)
        goto out;
    dset = H5Dcreate2(file, path, file_type, space, lcpl, dcpl, H5P_DEFAULT);
out:
    bz_out_h5_close(dcpl);
    bz_out_h5_close(lcpl);
    bz_out_h5_close(space);
    return dset;
}

int bz_out_h5_has_vlen(hid_t t)
{
    H5T_class_t cls = H5Tget_class(t);
    switch (cls) {
    case H5T_VLEN: return 1;
    case H5T_STRING: {
        htri_t v = H5Tis_variable_str(t);
        return v < 0 ? -1 : v > 0;
    }
    case H5T_COMPOUND: {
        int n = H5Tget_nmembers(t);
        if (n < 0)
            return -1;
        for (int i = 0; i < n; i++) {
            hid_t m = H5Tget_member_type(t, (unsigned)i);
            if (m < 0)
                return -1;
            int v = bz_out_h5_has_vlen(m);
            H5Tclose(m);
            if (v)
                return v;
        }
        return 0;
    }
    case H5T_ARRAY: {
        hid_t b = H5Tget_super(t);
        if (b < 0)
            return -1;
        int v = bz_out_h5_has_vlen(b);
        H5Tclose(b);
        return v;
    }
    case H5T_NO_CLASS: return -1;
    default: return 0;
    }
}

hid_t bz_out_h5_fapl(void)
{
    (void)bz_out_h5_filters_install();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
#if H5_VERSION_GE(1, 10, 7)
    /* Lustre/NFS without flock: carry on instead of failing every open
     * (HDF5_USE_FILE_LOCKING=FALSE still turns locking off altogether). */
    if (H5Pset_file_locking(fapl, 1, 1) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
#endif
    return fapl;
}

int bz_out_h5_open_ro(const char *path, hid_t *file, struct bz_err *err)
{
    bz_out_h5_quiet();
    *file = H5I_INVALID_HID;
    int rc = bz_out_check_input(path, err); /* a FIFO would block the open */
    if (rc)
        return rc;
    hid_t fapl = bz_out_h5_fapl();
    if (fapl < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot set up file access", path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    bz_out_h5_close(fapl);
    if (*file < 0)
        return bz_out_h5_fail(
            err, BZ_EIO, "%s: cannot open as an HDF5 file (missing, truncated or corrupt?)", path);
    return BZ_OK;
}

int bz_out_h5_read_game_ids(hid_t dset, int64_t **ids, size_t *n, const char *file_name,
                            const char *table, struct bz_err *err)
{
    int rc = BZ_OK;
    hid_t ftype = H5I_INVALID_HID, space = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    int64_t *buf = NULL;
    *ids = NULL;
    *n = 0;
    if ((ftype = H5Dget_type(dset)) < 0 || (space = H5Dget_space(dset)) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read its type", file_name, table);
        goto out;
    }
    if (H5Tget_class(ftype) != H5T_COMPOUND || H5Sget_simple_extent_ndims(space) != 1) {
        rc = bz_err_set(err, BZ_EINVAL, "%s: %s: not a 1-D table of compound rows", file_name,
                        table);
        goto out;
    }
    int idx = H5Tget_member_index(ftype, "game_id");
    if (idx < 0 || H5Tget_member_class(ftype, (unsigned)idx) != H5T_INTEGER) {
        H5Eclear2(H5E_DEFAULT);
        rc = bz_err_set(err, BZ_EINVAL, "%s: %s: has no integer game_id column", file_name, table);
        goto out;
    }
    hsize_t rows = 0;
    if (H5Sget_simple_extent_dims(space, &rows, NULL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read its size", file_name, table);
        goto out;
    }
    if (rows == 0)
        goto out;
    /* a crafted dataspace may claim any size: cap it before allocating */
    if (rows > ((hsize_t)1 << 32)) {
        rc = bz_err_set(err, BZ_EIO, "%s: %s claims %llu rows, more than bazaar reads", file_name,
                        table, (unsigned long long)rows);
        goto out;
    }
    if (!(buf = calloc((size_t)rows, sizeof *buf))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: %s: no memory for %llu game ids", file_name, table,
                        (unsigned long long)rows);
        goto out;
    }
    /* A compound memory type with only game_id reads just that member. */
    if ((mtype = H5Tcreate(H5T_COMPOUND, sizeof(int64_t))) < 0 ||
        H5Tinsert(mtype, "game_id", 0, H5T_NATIVE_INT64) < 0 ||
        H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc =
            bz_out_h5_fail(err, BZ_EIO, "%s: %s: cannot read the game_id column", file_name, table);
        goto out;
    }
    *ids = buf;
    *n = (size_t)rows;
    buf = NULL;
out:
    free(buf);
    bz_out_h5_close(mtype);
    bz_out_h5_close(space);
    bz_out_h5_close(ftype);
    return rc;
}

#define CHECK_WINDOW_BYTES (16 * 1024 * 1024)

int bz_out_h5_check_readable(hid_t dset, hsize_t n_rows, const char *file_name, const char *table,
                             struct bz_err *err)
{
    return bz_out_h5_check_rows(dset, 0, n_rows, file_name, table, err);
}

int bz_out_h5_check_rows(hid_t dset, hsize_t first, hsize_t n_rows, const char *file_name,
                         const char *table, struct bz_err *err)
{
    int rc = BZ_OK, vlen = 0;
    hid_t ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    hid_t mspace = H5I_INVALID_HID;
    unsigned char *win = NULL;
    hsize_t n = 0;
    if ((ftype = H5Dget_type(dset)) < 0 ||
        (mtype = H5Tget_native_type(ftype, H5T_DIR_ASCEND)) < 0 ||
        (vlen = bz_out_h5_has_vlen(mtype)) < 0 || (fspace = H5Dget_space(dset)) < 0 ||
        H5Sget_simple_extent_ndims(fspace) != 1 ||
        H5Sget_simple_extent_dims(fspace, &n, NULL) < 0) {
        rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: cannot read its type or size", file_name,
                            table);
        goto out;
    }
    if (n_rows < n)
        n = n_rows;
    size_t msize = H5Tget_size(mtype);
    hsize_t cap = CHECK_WINDOW_BYTES / msize ? CHECK_WINDOW_BYTES / msize : 1;
    /* a window no larger than the rows read (a 16 MiB calloc for the last
     * chunk's rows cost more than reading them) */
    hsize_t want = n > first ? n - first : 1;
    if (cap > want)
        cap = want;
    if ((mspace = H5Screate_simple(1, &cap, NULL)) < 0 || !(win = calloc((size_t)cap, msize))) {
        rc = bz_err_set(err, BZ_ENOMEM, "%s: table %s: no memory", file_name, table);
        goto out;
    }
    for (hsize_t start = first; start < n; start += cap) {
        hsize_t count = n - start < cap ? n - start : cap, zero = 0;
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
            H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
            H5Dread(dset, mtype, mspace, fspace, H5P_DEFAULT, win) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: rows %llu..%llu unreadable", file_name,
                                table, (unsigned long long)start,
                                (unsigned long long)(start + count));
            if (vlen) /* strings read before the fault */
                H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, win);
            break;
        }
        if (vlen && H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, win) < 0) {
            rc = bz_out_h5_fail(err, BZ_EIO, "%s: table %s: reclaim", file_name, table);
            break;
        }
        memset(win, 0, (size_t)cap * msize);
    }
out:
    free(win);
    bz_out_h5_close(mspace);
    bz_out_h5_close(fspace);
    bz_out_h5_close(mtype);
    bz_out_h5_close(ftype);
    return rc;
}

struct list_state {
    char **paths;
    size_t n, cap;
    int failed;
};

static herr_t list_cb(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    struct list_state *st = data;
    if (info->type != H5L_TYPE_HARD)
        return 0;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) {
        st->failed = 1;
        return -1;
    }
    H5I_type_t kind = H5Iget_type(obj);
    H5Oclose(obj);
    /* a shard's text stores (out_h5.h) are part of their tables */
    static const char store[] = BZ_OUT_SHARD_TEXT_GROUP "/";
    /* and a virtual results file's parts are its tables' storage */
    static const char parts[] = BZ_OUT_PARTS_GROUP "/", runs[] = BZ_OUT_SHARD_RUNS_GROUP "/";
    if (kind != H5I_DATASET || strncmp(name, store + 1, sizeof store - 2) == 0 ||
        strncmp(name, parts + 1, sizeof parts - 2) == 0 ||
        strncmp(name, runs + 1, sizeof runs - 2) == 0)
        return 0;
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 16;
        char **p = realloc(st->paths, cap * sizeof *p);
        if (!p)
            goto nomem;
        st->paths = p;
        st->cap = cap;
    }
    size_t len = strlen(name);
    char *copy = malloc(len + 2);
    if (!copy)
        goto nomem;
    copy[0] = '/';
    memcpy(copy + 1, name, len + 1);
    st->paths[st->n++] = copy;
    return 0;
nomem:
    st->failed = 2;
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int bz_out_h5_list_datasets(hid_t file, char ***paths, size_t *n, const char *file_name,
                            struct bz_err *err)
{
    struct list_state st = {0};
    *paths = NULL;
    *n = 0;
    if (H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, list_cb, &st) < 0 || st.failed) {
        int code = st.failed == 2 ? BZ_ENOMEM : BZ_EIO;
        bz_out_free_paths(st.paths, st.n);
        return bz_out_h5_fail(err, code, "%s: cannot list its tables", file_name);
    }
    if (st.n)
        qsort(st.paths, st.n, sizeof *st.paths, cmp_str);
    *paths = st.paths;
    *n = st.n;
    return BZ_OK;
}

void bz_out_free_paths(char **paths, size_t n)
{
    if (!paths)
        return;
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}
