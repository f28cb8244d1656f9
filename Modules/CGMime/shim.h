#ifndef NOTMUCH_DELIVER_CGMIME_SHIM_H
#define NOTMUCH_DELIVER_CGMIME_SHIM_H

#include <gmime/gmime.h>

/* GObject type checks and casts are macros; Swift needs functions. */
static inline int cgmime_is_message(void *object) {
    return object != NULL && GMIME_IS_MESSAGE(object);
}

static inline GMimeObject *cgmime_object(void *object) {
    return GMIME_OBJECT(object);
}

#endif
