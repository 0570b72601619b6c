/* log: where the daemon's messages go. Until it detaches, and always in
 * the foreground, to stderr; a detached daemon logs to syslog. One
 * process-wide sink, set up once in main before any thread starts. */
#ifndef BUNDLEFS_LOG_H
#define BUNDLEFS_LOG_H

/* From now on, log to syslog (as "bundlefs", with the pid). */
void log_to_syslog(void);

/* Logs one line ("bundlefs: " and a newline are added on stderr). */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
