/* log: stderr or syslog. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

static bool use_syslog;

void log_to_syslog(void)
{
	openlog("bundlefs", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

void log_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (use_syslog) {
		vsyslog(LOG_ERR, fmt, ap);
	} else {
		/* One write per line, so that lines of threads do not mix. */
		char line[2048];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "bundlefs: %s\n", line);
	}
	va_end(ap);
}
