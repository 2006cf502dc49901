/* out_fletcher: HDF5's Fletcher32 chunk checksum (H5_checksum_fletcher32,
 * the value H5Z_filter_fletcher32 stores after a chunk), computed fast, so
 * that the shard writer can store whole chunks itself (H5Dwrite_chunk).
 * Pure computation: no HDF5, no I/O, thread-safe. */
#ifndef BAZAAR_OUT_FLETCHER_H
#define BAZAAR_OUT_FLETCHER_H

#include <stddef.h>
#include <stdint.h>

/* The checksum of n_bytes at data, bit for bit HDF5's for every length. */
uint32_t bz_out_fletcher32(const void *data, size_t n_bytes);

/* The same with the portable loop only (tests compare the two). */
uint32_t bz_out_fletcher32_portable(const void *data, size_t n_bytes);

/* Store sum after the chunk's bytes as HDF5's filter does (little-endian). */
static inline void bz_out_fletcher32_put(unsigned char *dst, uint32_t sum)
{
    dst[0] = (unsigned char)sum;
    dst[1] = (unsigned char)(sum >> 8);
    dst[2] = (unsigned char)(sum >> 16);
    dst[3] = (unsigned char)(sum >> 24);
}

#endif
