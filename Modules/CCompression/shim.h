#ifndef NOTMUCH_DELIVER_CCOMPRESSION_SHIM_H
#define NOTMUCH_DELIVER_CCOMPRESSION_SHIM_H

/* Compressed mbox archives are read through the libraries themselves. */
#include <zlib.h>
#include <lzma.h>
#include <bzlib.h>

/* LZMA_STREAM_INIT is a macro initialiser. */
static inline lzma_stream cc_lzma_stream_init(void) {
    lzma_stream stream = LZMA_STREAM_INIT;
    return stream;
}

#endif
