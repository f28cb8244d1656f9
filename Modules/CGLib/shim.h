#ifndef NOTMUCH_DELIVER_CGLIB_SHIM_H
#define NOTMUCH_DELIVER_CGLIB_SHIM_H

/* GRegex (PCRE2 underneath): the rules' regular expressions. GLib is
   loaded anyway, through GMime and libnotmuch. */
#include <glib.h>

#endif
