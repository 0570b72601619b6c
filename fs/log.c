/* log: lines with a priority, to stderr, a file or syslog. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

enum sink { TO_STDERR, TO_FILE, TO_SYSLOG, TO_NOTHING };

static _Atomic int sink = TO_STDERR;
static atomic_bool echo;
static atomic_int max_prio = LOG_INFO;
static bool foreground;

/* Is standard error the journal's stream? systemd says so in
 * JOURNAL_STREAM ("DEV:INO" of the stream it connected); a process that
 * inherited the variable but not the stream (a successor, whose stderr
 * is /dev/null) must not take its word for it. Looked at once, before
 * stdio is let go. */
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static bool journal;

static void find_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	char extra;
	struct stat st;
	journal = v && sscanf(v, "%ju:%ju%c", &dev, &ino, &extra) == 2 &&
		  fstat(STDERR_FILENO, &st) == 0 && (uintmax_t)st.st_dev == dev &&
		  (uintmax_t)st.st_ino == ino;
}

/* The --log file. Its descriptor number never changes once open: a
 * reopened file is put in its place with dup3, so that writers need no
 * lock. file_lock serializes the reopening. */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static char *file_path;
static atomic_int file_fd = -1;
static dev_t file_dev;
static ino_t file_ino;

static const char *const level_names[] = {"emergency", "alert",	 "critical", "error",
					  "warning",   "notice", "info",     "debug"};

void log_configure(bool fg, bool verbose)
{
	foreground = fg;
	atomic_store(&max_prio, verbose ? LOG_DEBUG : LOG_INFO);
	pthread_once(&journal_once, find_journal);
}

/* Opens file_path and puts it where file_fd is. Called with file_lock
 * held. */
static int open_locked(void)
{
	int fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	int cur = atomic_load(&file_fd);
	if (cur < 0) {
		atomic_store(&file_fd, fd);
	} else {
		if (dup3(fd, cur, O_CLOEXEC) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		close(fd);
	}
	file_dev = st.st_dev;
	file_ino = st.st_ino;
	return 0;
}

int log_to_file(const char *path)
{
	pthread_once(&journal_once, find_journal);
	tzset();
	pthread_mutex_lock(&file_lock);
	char *old = file_path;
	file_path = strdup(path);
	int e = file_path ? open_locked() : -ENOMEM;
	if (e < 0) {
		free(file_path);
		file_path = old;
	} else {
		free(old);
		atomic_store(&sink, TO_FILE);
	}
	pthread_mutex_unlock(&file_lock);
	return e;
}

int log_reopen(void)
{
	pthread_mutex_lock(&file_lock);
	int e = file_path ? open_locked() : 0;
	pthread_mutex_unlock(&file_lock);
	return e;
}

/* The file was moved or removed (logrotate without a signal): a new one
 * is opened under the name. */
static void follow_name(void)
{
	if (pthread_mutex_trylock(&file_lock) != 0)
		return; /* (being reopened) */
	struct stat st;
	if (file_path &&
	    (stat(file_path, &st) < 0 ? errno == ENOENT
				      : st.st_dev != file_dev || st.st_ino != file_ino))
		open_locked();
	pthread_mutex_unlock(&file_lock);
}

void log_to_syslog(void)
{
	pthread_once(&journal_once, find_journal);
	openlog("bundlefs", LOG_PID, LOG_DAEMON);
	atomic_store(&sink, TO_SYSLOG);
}

void log_to_nothing(void)
{
	pthread_once(&journal_once, find_journal);
	atomic_store(&sink, TO_NOTHING);
}

void log_forget(void)
{
	atomic_store(&sink, TO_NOTHING);
	atomic_store(&echo, false);
	atomic_store(&file_fd, -1);
	free(file_path);
	file_path = NULL;
	closelog();
}

void log_echo_stderr(bool on)
{
	atomic_store(&echo, on);
}

bool log_syslog_available(void)
{
	struct stat st;
	return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

bool log_enabled(int prio)
{
	return (prio & LOG_PRIMASK) <= atomic_load(&max_prio);
}

/* Writes out[0..n) (n may be past the end: the line was cut) as one line. */
static void write_line(int fd, char *out, int n, size_t size)
{
	if (n < 0)
		return;
	if ((size_t)n >= size) {
		n = (int)size - 1;
		out[n - 1] = '\n';
	}
	if (write(fd, out, (size_t)n) < 0) {
		/* nowhere left to say so */
	}
}

void log_stderr_prefix(int prio, char *buf, size_t n)
{
	pthread_once(&journal_once, find_journal);
	if (journal)
		snprintf(buf, n, "<%d>", prio & LOG_PRIMASK);
	else if (foreground)
		snprintf(buf, n, "<%d>bundlefs: ", prio & LOG_PRIMASK);
	else if (n)
		*buf = 0;
}

static void to_stderr(int prio, const char *line)
{
	char out[LINE_MAX_BYTES + 32];
	int n;
	if (journal)
		n = snprintf(out, sizeof(out), "<%d>%s\n", prio, line);
	else if (foreground)
		n = snprintf(out, sizeof(out), "<%d>bundlefs: %s\n", prio, line);
	else
		n = snprintf(out, sizeof(out), "bundlefs: %s\n", line);
	write_line(STDERR_FILENO, out, n, sizeof(out));
}

static void to_file(int prio, const char *line)
{
	follow_name();
	char when[40];
	struct timespec t;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &t);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", localtime_r(&t.tv_sec, &tm));
	char out[LINE_MAX_BYTES + 96];
	int n = snprintf(out, sizeof(out), "%s bundlefs[%d]: %s: %s\n", when, (int)getpid(),
			 level_names[prio], line);
	write_line(atomic_load(&file_fd), out, n, sizeof(out));
}

static void one_line(int prio, const char *line)
{
	int s = atomic_load(&sink);
	switch (s) {
	case TO_SYSLOG:
		syslog(prio, "%s", line);
		break;
	case TO_FILE:
		to_file(prio, line);
		break;
	case TO_STDERR:
		to_stderr(prio, line);
		break;
	case TO_NOTHING:
		break;
	}
	/* (Not twice into the journal: its syslog socket is /dev/log.) */
	if (atomic_load(&echo) && s != TO_STDERR && prio <= LOG_WARNING &&
	    !(journal && s == TO_SYSLOG))
		to_stderr(prio, line);
}

void log_vat(int prio, const char *fmt, va_list ap)
{
	prio &= LOG_PRIMASK;
	if (prio > atomic_load(&max_prio))
		return;
	int saved = errno;
	char msg[LINE_MAX_BYTES];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	for (char *line = n ? msg : NULL, *nl; line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = 0;
		one_line(prio, line);
	}
	errno = saved;
}

void log_at(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vat(prio, fmt, ap);
	va_end(ap);
}
