/* log: the daemon's messages, each with a syslog priority, and where they
 * go.
 *
 * Priorities say what a line is about (docs/operations.md, "Logs"):
 * err, something failed that users lose by (a bundle that will not
 * resolve, a path Nix cannot realise for a waiting container, a reload
 * refused); warning, the daemon works on, degraded (no supervisor, no
 * watchdog, a bundle that will be tried again); notice, the daemon's life
 * (mounted, ready, reloaded, taken over, stopping, exiting); info, the
 * work it does (a bundle resolved, a path realised, a writable root
 * mounted); debug, finer things, kept only with --verbose.
 *
 * Sinks: standard error in the foreground; in the background the file
 * given with --log, else syslog when the machine has one (/dev/log), else
 * nowhere. A background daemon picks its sink before it forks, and until
 * it serves (its command still waiting) warnings and errors also go to
 * the command's standard error.
 *
 * On standard error a line is `bundlefs: MESSAGE`; in the foreground it
 * starts with the priority as sd-daemon(3) writes it (`<3>bundlefs: ...`),
 * and when standard error is the journal (JOURNAL_STREAM names it) it is
 * `<3>MESSAGE`, since the journal records the sender's name itself. In a
 * file each line is `2026-12-05T09:14:02+0000 bundlefs[PID]: LEVEL: MESSAGE`.
 *
 * Each line is one write, so that lines of threads and processes sharing
 * a file do not mix. */
#ifndef BUNDLEFS_LOG_H
#define BUNDLEFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* Standard error is a foreground daemon's (lines carry their priority);
 * debug lines are kept only when `verbose`. */
void log_configure(bool foreground, bool verbose);

/* Logs to `path` (appended, each line dated) from now on. Returns 0 or
 * -errno. */
int log_to_file(const char *path);
/* Logs to syslog (as "bundlefs", with the pid, facility daemon). */
void log_to_syslog(void);
/* Logs nowhere from now on. */
void log_to_nothing(void);
/* While on, warnings and errors also go to standard error (a background
 * daemon whose command still waits for it). */
void log_echo_stderr(bool on);
/* In a child that has closed every descriptor it inherited: logs nowhere
 * until told where, and closes nothing that was the parent's. */
void log_forget(void);
/* Is there a syslog daemon to log to? */
bool log_syslog_available(void);

/* Opens the --log file again, under its name (after logrotate moved it);
 * without a file it does nothing. Returns 0 or -errno (then lines go on
 * to the file that was open). A file moved away is also noticed by itself
 * within a second of the next line. */
int log_reopen(void);

/* What a line of priority `prio` starts with on stderr ("<3>bundlefs: " in
 * the foreground, "<3>" on the journal, else ""), for reports printed
 * there as they are (a spec's problems at start, FILE:LINE: ...). */
void log_stderr_prefix(int prio, char *buf, size_t n);

/* Would a line of priority `prio` be kept? */
bool log_enabled(int prio);

/* Logs one message (a trailing newline is dropped; each line of a
 * message with several is written as its own). */
void log_at(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vat(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_err(...)	 log_at(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_at(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	 log_at(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	 log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	 log_at(LOG_DEBUG, __VA_ARGS__)

#endif
