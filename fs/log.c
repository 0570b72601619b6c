/* log: stderr, a file, or syslog. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum sink { TO_STDERR, TO_FILE, TO_SYSLOG, TO_NOTHING };

static enum sink sink = TO_STDERR;
static int file_fd = -1;

int log_to_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return -errno;
	file_fd = fd;
	sink = TO_FILE;
	return 0;
}

void log_to_syslog(void)
{
	openlog("bundlefs", LOG_PID, LOG_DAEMON);
	sink = TO_SYSLOG;
}

void log_to_nothing(void)
{
	sink = TO_NOTHING;
}

bool log_syslog_available(void)
{
	struct stat st;
	return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

void log_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	switch (sink) {
	case TO_SYSLOG:
		syslog(LOG_ERR, "%s", line);
		break;
	case TO_FILE: {
		/* One write per line, so that lines of threads do not mix. */
		char out[2200], when[32];
		time_t t = time(NULL);
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
		int n =
		    snprintf(out, sizeof(out), "%s bundlefs[%d]: %s\n", when, (int)getpid(), line);
		if (write(file_fd, out, (size_t)n) < 0) {
			/* nowhere left to say so */
		}
		break;
	}
	case TO_STDERR:
		fprintf(stderr, "bundlefs: %s\n", line);
		break;
	case TO_NOTHING:
		break;
	}
}
