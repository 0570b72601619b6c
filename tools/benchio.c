/* benchio: the benchmark's timed inner loops, in C so that the numbers
 * measure the filesystem rather than an interpreter.
 *
 *   benchio orc LIST    open, read (up to 64 KiB) and close every file named
 *                       in LIST (one per line); prints files and nanoseconds
 *   benchio read FILE   read FILE sequentially in 1 MiB blocks; prints bytes
 *                       and nanoseconds
 *   benchio stat LIST   lstat every path in LIST; prints paths and nanoseconds
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static char **read_list(const char *file, size_t *n)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		perror(file);
		exit(1);
	}
	char **v = NULL, *line = NULL;
	size_t cap = 0, lcap = 0;
	ssize_t len;
	*n = 0;
	while ((len = getline(&line, &lcap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = 0;
		if (*n == cap) {
			cap = cap ? cap * 2 : 1024;
			v = realloc(v, cap * sizeof(*v));
		}
		v[(*n)++] = strdup(line);
	}
	free(line);
	fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 3 ||
	    (strcmp(argv[1], "orc") && strcmp(argv[1], "read") && strcmp(argv[1], "stat"))) {
		fprintf(stderr, "usage: benchio orc LIST | read FILE | stat LIST\n");
		return 2;
	}
	static char buf[1 << 20];
	if (!strcmp(argv[1], "read")) {
		long long t0 = now(), total = 0;
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0) {
			perror(argv[2]);
			return 1;
		}
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			total += r;
		close(fd);
		long long t1 = now();
		if (r < 0) {
			perror("read");
			return 1;
		}
		printf("%lld %lld\n", total, t1 - t0);
		return 0;
	}
	size_t n;
	char **list = read_list(argv[2], &n);
	long long t0 = now();
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(argv[1], "stat")) {
			struct stat st;
			if (lstat(list[i], &st) < 0) {
				perror(list[i]);
				return 1;
			}
			continue;
		}
		int fd = open(list[i], O_RDONLY);
		if (fd < 0 || read(fd, buf, 65536) < 0) {
			perror(list[i]);
			return 1;
		}
		close(fd);
	}
	printf("%zu %lld\n", n, now() - t0);
	return 0;
}
