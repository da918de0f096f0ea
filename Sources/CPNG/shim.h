// libpng 1.6 (Debian: libpng-dev, pkg-config "libpng").
// libpng reports errors by longjmp; Swift cannot catch that, so decoding goes through the
// simplified API (png_image_*), which returns an error message instead of jumping.
#include <png.h>
