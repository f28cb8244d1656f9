#ifndef NOTMUCH_DELIVER_CPOSIX_SHIM_H
#define NOTMUCH_DELIVER_CPOSIX_SHIM_H

#include <time.h>
#include <syslog.h>
#include <malloc.h>

/* glibc declares these only under _GNU_SOURCE / _XOPEN_SOURCE, which
   Swift's Glibc module is not built with. */
extern int syncfs(int fd);
extern char *strptime(const char *s, const char *format, struct tm *tm);

static inline int cposix_syncfs(int fd) { return syncfs(fd); }
static inline char *cposix_strptime(const char *s, const char *format, struct tm *tm) {
    return strptime(s, format, tm);
}

/* syslog is variadic, which Swift cannot call; going through vsyslog and
   CVarArg costs a runtime protocol lookup on every process's first line. */
static inline void cposix_syslog(int priority, const char *message) {
    syslog(priority, "%s", message);
}

/* glibc's allocator: free memory back to the system, and how many arenas
   threads may spread over (M_ARENA_MAX). */
static inline void cposix_malloc_trim(void) { (void)malloc_trim(0); }
static inline int cposix_limit_malloc_arenas(int count) { return mallopt(M_ARENA_MAX, count); }

#endif
