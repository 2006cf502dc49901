/* out_h5_fail: closing HDF5 files whose close can fail (full disk, I/O
 * error) without leaving the library in a state that crashes at exit.
 * Private to src/out_*.c. */
#ifndef BAZAAR_OUT_H5_FAIL_H
#define BAZAAR_OUT_H5_FAIL_H

#include <hdf5.h>

#include "bazaar/err.h"

/* H5Fclose(*file); *file becomes H5I_INVALID_HID whatever happens. A failed
 * close (the flush of a full disk) is BZ_EIO naming name (err may be NULL);
 * the id is then dropped on purpose: closing it again, or letting HDF5's
 * atexit handler close it, retries the same failing flush and crashes inside
 * the library. HDF5's atexit handler is turned off in every bazaar process
 * (a constructor in out_h5_fail.c), so a dropped id costs only memory. */
int bz_out_h5_close_file(hid_t *file, const char *name, struct bz_err *err);

/* An input file bazaar reads but did not necessarily write (info, merge,
 * resume): it must exist and be a regular file (a FIFO, device or folder
 * would block or never end), checked before anything opens it. BZ_EIO
 * naming the file otherwise, like any unreadable input of the out module. */
int bz_out_check_input(const char *path, struct bz_err *err);

#endif
