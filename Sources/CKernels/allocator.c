// glibc's allocator settings (ckernels.h): `mallopt` is declared in <malloc.h>, which Swift's Glibc module
// does not include.
#include "ckernels.h"

#include <stdlib.h> /* defines __GLIBC__ on glibc */
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void arbiter_keep_freed_memory(long mmap_threshold, long trim_threshold, long top_pad) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
    mallopt(M_TOP_PAD, (int)top_pad);
#else
    (void)mmap_threshold;
    (void)trim_threshold;
    (void)top_pad;
#endif
}
