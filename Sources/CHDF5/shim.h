// HDF5 C API (Debian: libhdf5-dev, pkg-config "hdf5").
// Type and property-list identifiers such as H5T_NATIVE_FLOAT are macros over global variables that
// need H5open(); Swift cannot import them, so they are exposed as static inline functions.
#include <hdf5.h>
#include <fcntl.h>

static inline hid_t arbiter_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t arbiter_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t arbiter_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t arbiter_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t arbiter_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t arbiter_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t arbiter_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t arbiter_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t arbiter_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t arbiter_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t arbiter_H5P_LINK_CREATE(void) { return H5P_LINK_CREATE; }
static inline size_t arbiter_H5T_VARIABLE(void) { return H5T_VARIABLE; }
static inline unsigned arbiter_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned arbiter_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
/// Silences HDF5's automatic error-stack printing; Arbiter turns failures into thrown errors instead.
static inline void arbiter_H5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
// Standard (file) types: the on-disk representation Arbiter writes, little-endian as h5py writes on x86.
static inline hid_t arbiter_H5T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
static inline hid_t arbiter_H5T_IEEE_F64LE(void) { return H5T_IEEE_F64LE; }
static inline hid_t arbiter_H5T_STD_I32LE(void) { return H5T_STD_I32LE; }
static inline hid_t arbiter_H5T_STD_I64LE(void) { return H5T_STD_I64LE; }
static inline hid_t arbiter_H5T_STD_U8LE(void) { return H5T_STD_U8LE; }
static inline hid_t arbiter_H5E_DEFAULT(void) { return H5E_DEFAULT; }

/// The descriptor of a file HDF5's default (sec2) driver holds open, or -1.
static inline int arbiter_H5F_descriptor(hid_t file) {
    void *handle = NULL;
    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || handle == NULL) return -1;
    return *(int *)handle;
}
/// Marks an open file's descriptor close-on-exec: the sec2 driver opens without O_CLOEXEC, so a process spawned
/// while the file is open inherited the descriptor, and any flock() lock HDF5 holds on it, for as long as it ran
/// (see H5.create in ArbiterFormats for the lock). 0 on success, -1 on failure.
static inline int arbiter_H5F_set_close_on_exec(hid_t file) {
    int fd = arbiter_H5F_descriptor(file);
    if (fd < 0) return -1;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}
