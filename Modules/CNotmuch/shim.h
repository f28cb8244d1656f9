#ifndef NOTMUCH_DELIVER_CNOTMUCH_SHIM_H
#define NOTMUCH_DELIVER_CNOTMUCH_SHIM_H

#include <stdlib.h>
#include <notmuch.h>

/* LIBNOTMUCH_CHECK_VERSION is a macro; Swift needs a function. */
static inline int cnotmuch_check_version(int major, int minor, int micro) {
    return LIBNOTMUCH_CHECK_VERSION(major, minor, micro);
}

#endif
