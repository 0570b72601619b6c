/* log: where the daemon's messages go. Until it detaches, and always in
 * the foreground, to stderr; afterwards to the file given with --log, or
 * else to syslog when the machine has one (/dev/log), or else nowhere (a
 * warning says so before detaching). One process-wide sink: it is set up
 * by main, and each line is written at once. */
#ifndef BUNDLEFS_LOG_H
#define BUNDLEFS_LOG_H

#include <stdbool.h>

/* Logs to `path` (appended, each line dated) from now on. Returns 0 or
 * -errno. */
int log_to_file(const char *path);
/* Logs to syslog (as "bundlefs", with the pid) from now on. */
void log_to_syslog(void);
/* Logs nowhere from now on. */
void log_to_nothing(void);
/* Is there a syslog daemon to log to? */
bool log_syslog_available(void);

/* Logs one line ("bundlefs: " and a newline are added on stderr). */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
