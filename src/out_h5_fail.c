/* out_h5_fail: HDF5 file closes that may fail, and the process-wide switch
 * that keeps HDF5's atexit handler from touching files whose close failed.
 * Never writes file data itself. */
#include "out_h5_fail.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "out_h5.h"

/* Before main(), hence before any other HDF5 call (H5dont_atexit must come
 * first). bazaar closes every file it opens itself; the atexit handler
 * would only ever act on ids whose flush already failed, and it crashes
 * (SIGSEGV) on them. */
__attribute__((constructor)) static void no_hdf5_atexit(void)
{
    H5dont_atexit();
}

int bz_out_h5_close_file(hid_t *file, const char *name, struct bz_err *err)
{
    hid_t id = *file;
    *file = H5I_INVALID_HID;
    if (id < 0)
        return BZ_OK;
    if (H5Fclose(id) < 0)
        return bz_out_h5_fail(err, BZ_EIO, "%s: cannot close (disk full?)", name);
    return BZ_OK;
}

int bz_out_check_input(const char *path, struct bz_err *err)
{
    struct stat st;
    if (!path || !path[0])
        return bz_err_set(err, BZ_EIO, "an input path is empty");
    if (stat(path, &st) != 0)
        return bz_err_set(err, BZ_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return bz_err_set(err, BZ_EIO, "%s: not a regular file (%s)", path,
                          S_ISDIR(st.st_mode)                          ? "a folder"
                          : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                          : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                       : "not a plain file");
    return BZ_OK;
}
