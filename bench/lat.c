/*
 * bench/lat.c -- latency client for bench/run.sh.
 *
 *   lat rr     [conn opts] [-n K] [-w W] [-o FILE]
 *       One keep-alive TCP connection; W warm-up then K measured sequential
 *       round trips of the same request. Each round trip is timed with
 *       CLOCK_MONOTONIC from just before send() to the last response byte.
 *       Prints one key=value line: n, errors, non2xx, reconnects, p50_us,
 *       p90_us, p99_us, mean_us, min_us, max_us. -o writes every sample (ns).
 *
 *   lat stream [conn opts] [-n K] [-w W]
 *       Same, for a streamed (SSE) request: per iteration, the time to the
 *       first response byte, to the first body byte (after the headers) and
 *       to the end of each SSE event (de-chunked body, events split on a
 *       blank line). Prints a key=value summary line (events = median event
 *       count, ttfb_* = first body byte percentiles) and then one line per
 *       event index: "ev INDEX p50_us p90_us" (arrival since send).
 *
 *   lat hold   [conn opts] [-c N] [-m PID[,PID...]] [-s SETTLE_MS]
 *       Opens N connections, sends the request once on each (one after the
 *       other) and reads the answer, keeps them all open and idle, waits
 *       SETTLE_MS, then reads VmHWM and VmRSS of the given PIDs from
 *       /proc/PID/status and prints them (kB, summed over PIDs) and exits.
 *
 *   lat open   [conn opts] [-r RATE] [-d SECS] [-c CONNS] [-o FILE]
 *       Open loop: RATE requests/s (default 5000) evenly spaced for SECS
 *       (default 3) over a pool of CONNS keep-alive connections (default 64).
 *       A request is timed from the moment the client saw it due, not from
 *       when a connection was free to send it (no coordinated omission).
 *       Prints n, errors, lost (unanswered 3 s after the end), non2xx,
 *       achieved (req/s), p50/p90/p99/p999/mean/
 *       max_us and the client's own timer lateness (sendlag_*, not charged).
 *
 *   lat once   [conn opts] [-t TIMEOUT_MS] [-v]
 *       One request; retries connecting until TIMEOUT_MS (default 0: once).
 *       Prints "status=CODE" (status=0 when no answer); -v prints the body.
 *
 *   lat stats  [-c COLUMN] [-s SCALE]   < numbers
 *       Percentiles of a column (1-based, whitespace separated) read from
 *       stdin, multiplied by SCALE: n p50 p90 p99 mean min max.
 *
 * conn opts: -a ADDR (127.0.0.1) -p PORT -P PATH (/v1/chat/completions)
 *            -M METHOD (POST, GET if no body) -H "Name: value" (repeatable)
 *            -b BODY | -B FILE
 * Build: gcc -O2 -o lat lat.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HDRS 32
#define MAX_EVENTS 4096
#define IO_TIMEOUT_S 10

static const char *o_addr = "127.0.0.1";
static int o_port = 0;
static const char *o_path = "/v1/chat/completions";
static const char *o_method = NULL;
static const char *o_hdrs[MAX_HDRS];
static int o_nhdrs;
static char *o_body = NULL;
static size_t o_body_len;

static int g_oep;	/* epoll of the open-loop mode */
static char *g_req;	/* the whole request, built once */
static size_t g_req_len;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *m)
{
	fprintf(stderr, "lat: %s: %s\n", m, strerror(errno));
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* nearest-rank percentile on a sorted array */
static uint64_t pct_u64(const uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

static double pct_dbl(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

/* ---------------------------------------------------------------- request */

static void build_request(void)
{
	const char *method = o_method ? o_method : (o_body ? "POST" : "GET");
	size_t cap = 1024 + o_body_len;
	for (int i = 0; i < o_nhdrs; i++)
		cap += strlen(o_hdrs[i]) + 2;
	g_req = malloc(cap);
	int n = snprintf(g_req, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, o_path, o_addr, o_port);
	int has_ct = 0;
	for (int i = 0; i < o_nhdrs; i++) {
		if (strncasecmp(o_hdrs[i], "content-type:", 13) == 0)
			has_ct = 1;
		n += snprintf(g_req + n, cap - (size_t)n, "%s\r\n", o_hdrs[i]);
	}
	if (o_body) {
		if (!has_ct)
			n += snprintf(g_req + n, cap - (size_t)n, "Content-Type: application/json\r\n");
		n += snprintf(g_req + n, cap - (size_t)n, "Content-Length: %zu\r\n", o_body_len);
	}
	n += snprintf(g_req + n, cap - (size_t)n, "\r\n");
	if (o_body) {
		memcpy(g_req + n, o_body, o_body_len);
		n += (int)o_body_len;
	}
	g_req_len = (size_t)n;
}

static int conn_open(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o_port) };
	inet_pton(AF_INET, o_addr, &sin.sin_addr);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---------------------------------------------------------------- response */

enum { R_HEAD, R_CL, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_CRLF, R_TRAILER, R_EOF, R_DONE };

struct resp {
	int state;
	int status;
	int close;		/* server will close (or body is close-delimited) */
	size_t remain;		/* R_CL / R_CHUNK_DATA bytes left */
	char *raw;		/* owned: raw bytes not yet parsed */
	size_t len, cap;
	/* timing, all ns since the request was sent */
	uint64_t t_first;	/* first response byte */
	uint64_t t_body;	/* first body byte */
	int nev;
	uint64_t ev[MAX_EVENTS];	/* end of each SSE event */
	int sse_nl;		/* SSE scanner: consecutive newlines seen */
	int want_body;		/* keep body bytes (once -v) */
	char *body;
	size_t blen, bcap;
};

static void resp_reset(struct resp *r)
{
	r->state = R_HEAD;
	r->status = 0;
	r->close = 0;
	r->remain = 0;
	r->len = 0;
	r->t_first = r->t_body = 0;
	r->nev = 0;
	r->sse_nl = 0;
	r->blen = 0;
}

static void body_bytes(struct resp *r, const char *p, size_t n, uint64_t t)
{
	if (!n)
		return;
	if (!r->t_body)
		r->t_body = t;
	if (r->want_body) {
		if (r->blen + n > r->bcap) {
			r->bcap = (r->blen + n) * 2;
			r->body = realloc(r->body, r->bcap);
		}
		memcpy(r->body + r->blen, p, n);
		r->blen += n;
	}
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\n') {
			if (++r->sse_nl == 2) {
				if (r->nev < MAX_EVENTS)
					r->ev[r->nev] = t;
				r->nev++;
			}
		} else if (c != '\r') {
			r->sse_nl = 0;
		}
	}
}

/* parse what is buffered; returns 1 when the response is complete, -1 on error */
static int resp_parse(struct resp *r, uint64_t t)
{
	size_t i = 0;
	int ret = 0;
	while (i < r->len && r->state != R_DONE) {
		char *p = r->raw + i;
		size_t n = r->len - i;
		switch (r->state) {
		case R_HEAD: {
			char *he = memmem(p, n, "\r\n\r\n", 4);
			if (!he)
				goto out;
			size_t hl = (size_t)(he - p) + 4;
			if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0)
				return -1;
			r->status = atoi(p + 9);
			int http10 = p[7] == '0';
			long cl = -1;
			int chunked = 0, conn_close = http10, conn_ka = 0;
			for (char *l = memchr(p, '\n', hl); l && l < he; l = memchr(l, '\n', (size_t)(he - l))) {
				l++;
				if (strncasecmp(l, "content-length:", 15) == 0)
					cl = atol(l + 15);
				else if (strncasecmp(l, "transfer-encoding:", 18) == 0) {
					char *e = memchr(l, '\r', (size_t)(he + 2 - l));
					chunked = e && memmem(l, (size_t)(e - l), "chunked", 7) != NULL;
				} else if (strncasecmp(l, "connection:", 11) == 0) {
					char *e = memchr(l, '\r', (size_t)(he + 2 - l));
					if (e && memmem(l, (size_t)(e - l), "close", 5))
						conn_close = 1;
					if (e && (memmem(l, (size_t)(e - l), "keep-alive", 10) ||
						  memmem(l, (size_t)(e - l), "Keep-Alive", 10)))
						conn_ka = 1;
				}
			}
			if (http10 && conn_ka)
				conn_close = 0;
			r->close = conn_close;
			i += hl;
			if (r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200)) {
				r->state = R_DONE;
			} else if (chunked) {
				r->state = R_CHUNK_SIZE;
			} else if (cl >= 0) {
				r->remain = (size_t)cl;
				r->state = cl ? R_CL : R_DONE;
			} else {
				r->state = R_EOF;
				r->close = 1;
			}
			break;
		}
		case R_CL: {
			size_t k = n < r->remain ? n : r->remain;
			body_bytes(r, p, k, t);
			r->remain -= k;
			i += k;
			if (!r->remain)
				r->state = R_DONE;
			break;
		}
		case R_CHUNK_SIZE: {
			char *e = memchr(p, '\n', n);
			if (!e)
				goto out;
			char *x;
			r->remain = strtoul(p, &x, 16);
			if (x == p)
				return -1;
			i += (size_t)(e - p) + 1;
			r->state = r->remain ? R_CHUNK_DATA : R_TRAILER;
			break;
		}
		case R_CHUNK_DATA: {
			size_t k = n < r->remain ? n : r->remain;
			body_bytes(r, p, k, t);
			r->remain -= k;
			i += k;
			if (!r->remain)
				r->state = R_CHUNK_CRLF;
			break;
		}
		case R_CHUNK_CRLF: {
			char *e = memchr(p, '\n', n);
			if (!e)
				goto out;
			i += (size_t)(e - p) + 1;
			r->state = R_CHUNK_SIZE;
			break;
		}
		case R_TRAILER: {
			char *e = memchr(p, '\n', n);
			if (!e)
				goto out;
			size_t l = (size_t)(e - p);
			i += l + 1;
			if (l == 0 || (l == 1 && p[0] == '\r'))
				r->state = R_DONE;
			break;
		}
		case R_EOF:
			body_bytes(r, p, n, t);
			i += n;
			break;
		}
	}
out:
	if (r->state == R_DONE)
		ret = 1;
	memmove(r->raw, r->raw + i, r->len - i);
	r->len -= i;
	return ret;
}

/*
 * One round trip on *fd (reconnecting if it is -1). Returns the total time
 * in ns, 0 on failure (fd closed and set to -1). r holds the details.
 */
static uint64_t round_trip(int *fd, struct resp *r, int *reconnects)
{
	if (*fd < 0) {
		*fd = conn_open();
		if (*fd < 0)
			return 0;
		if (reconnects)
			(*reconnects)++;
	}
	resp_reset(r);
	uint64_t t0 = now_ns();
	if (send_all(*fd, g_req, g_req_len) < 0)
		goto fail;
	for (;;) {
		if (r->cap - r->len < 65536) {
			r->cap = r->cap ? r->cap * 2 : 131072;
			r->raw = realloc(r->raw, r->cap);
		}
		ssize_t n = recv(*fd, r->raw + r->len, r->cap - r->len, 0);
		uint64_t t = now_ns() - t0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 && r->state == R_EOF) {
				r->state = R_DONE;
				close(*fd);
				*fd = -1;
				return t ? t : 1;
			}
			goto fail;
		}
		if (!r->t_first)
			r->t_first = t;
		r->len += (size_t)n;
		int pr = resp_parse(r, t);
		if (pr < 0)
			goto fail;
		if (pr == 1) {
			if (r->close) {
				close(*fd);
				*fd = -1;
			}
			return t ? t : 1;
		}
	}
fail:
	close(*fd);
	*fd = -1;
	return 0;
}

/* ---------------------------------------------------------------- modes */

static int mode_rr(int n, int w, const char *out)
{
	struct resp r = { 0 };
	uint64_t *s = calloc((size_t)n, sizeof *s);
	int fd = conn_open();
	int errors = 0, non2xx = 0, reconnects = 0, got = 0;
	if (fd < 0)
		die("connect");
	for (int i = 0; i < w + n; i++) {
		uint64_t t = round_trip(&fd, &r, &reconnects);
		if (!t) {
			errors++;
			if (errors > 100 && errors > (i + 1) / 2)
				break;	/* clearly broken: do not spin */
			continue;
		}
		if (r.status < 200 || r.status > 299)
			non2xx++;
		if (i >= w)
			s[got++] = t;
	}
	if (out) {
		FILE *f = fopen(out, "w");
		if (f) {
			for (int i = 0; i < got; i++)
				fprintf(f, "%llu\n", (unsigned long long)s[i]);
			fclose(f);
		}
	}
	double sum = 0;
	for (int i = 0; i < got; i++)
		sum += (double)s[i];
	qsort(s, (size_t)got, sizeof *s, cmp_u64);
	printf("n=%d errors=%d non2xx=%d reconnects=%d last_status=%d p50_us=%.2f p90_us=%.2f p99_us=%.2f "
	       "mean_us=%.2f min_us=%.2f max_us=%.2f\n",
	       got, errors, non2xx, reconnects, r.status, pct_u64(s, (size_t)got, 50) / 1e3,
	       pct_u64(s, (size_t)got, 90) / 1e3, pct_u64(s, (size_t)got, 99) / 1e3,
	       got ? sum / got / 1e3 : 0.0, got ? s[0] / 1e3 : 0.0, got ? s[got - 1] / 1e3 : 0.0);
	if (fd >= 0)
		close(fd);
	return got ? 0 : 1;
}

static int mode_stream(int n, int w)
{
	struct resp r = { 0 };
	int fd = conn_open();
	int errors = 0, non2xx = 0, reconnects = 0, got = 0, maxev = 0;
	if (fd < 0)
		die("connect");
	uint64_t *ttfb = calloc((size_t)n, sizeof *ttfb);
	uint64_t *total = calloc((size_t)n, sizeof *total);
	int *nev = calloc((size_t)n, sizeof *nev);
	uint64_t (*ev)[MAX_EVENTS] = NULL;
	ev = calloc((size_t)n, sizeof *ev);
	if (!ev)
		die("calloc");
	for (int i = 0; i < w + n; i++) {
		uint64_t t = round_trip(&fd, &r, &reconnects);
		if (!t) {
			errors++;
			if (errors > 20 && errors > (i + 1) / 2)
				break;
			continue;
		}
		if (r.status < 200 || r.status > 299) {
			non2xx++;
			continue;
		}
		if (i < w)
			continue;
		ttfb[got] = r.t_body ? r.t_body : t;
		total[got] = t;
		int k = r.nev < MAX_EVENTS ? r.nev : MAX_EVENTS;
		nev[got] = k;
		memcpy(ev[got], r.ev, (size_t)k * sizeof(uint64_t));
		if (k > maxev)
			maxev = k;
		got++;
	}
	int *evc = calloc((size_t)got + 1, sizeof *evc);
	memcpy(evc, nev, (size_t)got * sizeof *evc);
	int emed = 0;
	if (got) {	/* median event count */
		for (int a = 1; a < got; a++)
			for (int b = a; b > 0 && evc[b - 1] > evc[b]; b--) {
				int x = evc[b];
				evc[b] = evc[b - 1];
				evc[b - 1] = x;
			}
		emed = evc[(got - 1) / 2];
	}
	qsort(ttfb, (size_t)got, sizeof *ttfb, cmp_u64);
	qsort(total, (size_t)got, sizeof *total, cmp_u64);
	printf("n=%d errors=%d non2xx=%d reconnects=%d last_status=%d events=%d events_min=%d events_max=%d "
	       "ttfb_p50_us=%.2f ttfb_p90_us=%.2f ttfb_p99_us=%.2f total_p50_us=%.2f\n",
	       got, errors, non2xx, reconnects, r.status, emed, got ? evc[0] : 0, maxev,
	       pct_u64(ttfb, (size_t)got, 50) / 1e3, pct_u64(ttfb, (size_t)got, 90) / 1e3,
	       pct_u64(ttfb, (size_t)got, 99) / 1e3, pct_u64(total, (size_t)got, 50) / 1e3);
	uint64_t *col = calloc((size_t)got + 1, sizeof *col);
	for (int e = 0; e < maxev; e++) {
		size_t m = 0;
		for (int i = 0; i < got; i++)
			if (nev[i] > e)
				col[m++] = ev[i][e];
		qsort(col, m, sizeof *col, cmp_u64);
		printf("ev %d %.2f %.2f %zu\n", e, pct_u64(col, m, 50) / 1e3, pct_u64(col, m, 90) / 1e3, m);
	}
	if (fd >= 0)
		close(fd);
	return got ? 0 : 1;
}

static long status_kb(int pid, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = atol(line + kl + 1);
			break;
		}
	fclose(f);
	return v;
}

static int mode_hold(int nconn, const char *pids, int settle_ms)
{
	struct resp r = { 0 };
	int *fds = calloc((size_t)nconn, sizeof *fds);
	int ok = 0, errors = 0, non2xx = 0;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)nconn + 64 ? rl.rlim_max : (rlim_t)nconn + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	uint64_t t0 = now_ns();
	for (int i = 0; i < nconn; i++) {
		fds[i] = conn_open();
		if (fds[i] < 0) {
			errors++;
			continue;
		}
		uint64_t t = round_trip(&fds[i], &r, NULL);
		if (!t) {
			errors++;
			continue;
		}
		if (r.status < 200 || r.status > 299)
			non2xx++;
		if (fds[i] >= 0)
			ok++;
	}
	uint64_t t1 = now_ns();
	usleep((useconds_t)settle_ms * 1000u);
	long hwm = 0, rss = 0;
	char detail[512] = "";
	size_t dl = 0;
	if (pids) {
		char *copy = strdup(pids), *save = NULL;
		for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			int pid = atoi(tok);
			long h = status_kb(pid, "VmHWM"), s = status_kb(pid, "VmRSS");
			if (h > 0)
				hwm += h;
			if (s > 0)
				rss += s;
			if (dl < sizeof detail - 64)
				dl += (size_t)snprintf(detail + dl, sizeof detail - dl, "%s%d:%ld/%ld", dl ? "," : "",
						       pid, h, s);
		}
		free(copy);
	}
	printf("open=%d errors=%d non2xx=%d secs=%.2f vmhwm_kb=%ld vmrss_kb=%ld per_pid=%s\n", ok, errors, non2xx,
	       (t1 - t0) / 1e9, hwm, rss, detail[0] ? detail : "-");
	for (int i = 0; i < nconn; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ok ? 0 : 1;
}

static int mode_once(int timeout_ms, int verbose)
{
	struct resp r = { 0 };
	r.want_body = verbose;
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int fd;
	for (;;) {
		fd = conn_open();
		if (fd >= 0 || now_ns() >= deadline)
			break;
		usleep(20000);
	}
	if (fd < 0) {
		printf("status=0\n");
		return 1;
	}
	uint64_t t = round_trip(&fd, &r, NULL);
	printf("status=%d\n", t ? r.status : 0);
	if (verbose && r.blen) {
		fwrite(r.body, 1, r.blen, stdout);
		if (r.body[r.blen - 1] != '\n')
			putchar('\n');
	}
	if (fd >= 0)
		close(fd);
	return t ? 0 : 1;
}

/*
 * Open loop: requests are due at start + i/rate (evenly spaced) whether or
 * not earlier ones have been answered; each is sent on an idle connection of
 * a pool (a due request with no idle connection waits in a queue), and its
 * latency is counted from the moment the client saw it due, before waiting
 * for a connection -- so a stall is charged to every request it delays (no
 * coordinated omission). The client's own timer lateness (sendlag) is
 * reported apart and not charged.
 */
struct oconn {
	int fd;
	int busy;		/* a request is in flight */
	uint64_t due;		/* when the in-flight request's clock started */
	uint64_t sent;		/* when it was sent */
	struct resp r;
};

static int oconn_open(struct oconn *c)
{
	c->fd = conn_open();
	if (c->fd < 0)
		return -1;
	int fl = 1;
	ioctl(c->fd, FIONBIO, &fl);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	epoll_ctl(g_oep, EPOLL_CTL_ADD, c->fd, &ev);
	c->busy = 0;
	return 0;
}

static void oconn_close(struct oconn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(g_oep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->busy = 0;
}

static int mode_open(double rate, double secs, int nconn, const char *out)
{
	g_oep = epoll_create1(EPOLL_CLOEXEC);
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);	/* wake up on time for each due request */
	struct oconn *cs = calloc((size_t)nconn, sizeof *cs);
	size_t total = (size_t)(rate * secs + 0.5);
	uint64_t *lat = calloc(total + 1, sizeof *lat);
	uint64_t *queue = calloc(total + 1, sizeof *queue);	/* start times of requests waiting for a connection */
	size_t qh = 0, qt = 0, next = 0, done = 0, nlag = 0;
	uint64_t *lag = calloc(total + 1, sizeof *lag);	/* noticed - due: client timer lateness */
	int errors = 0, non2xx = 0, reconnects = 0;
	uint64_t period = (uint64_t)(1e9 / rate);
	for (int i = 0; i < nconn; i++) {
		cs[i].fd = -1;
		if (oconn_open(&cs[i]) < 0)
			die("connect");
	}
	int *idle = calloc((size_t)nconn, sizeof *idle), nidle = nconn;
	for (int i = 0; i < nconn; i++)
		idle[i] = nconn - 1 - i;
	uint64_t t0 = now_ns() + 1000000, tend = t0 + (uint64_t)(secs * 1e9);
	uint64_t drain_deadline = tend + 3000000000ull;	/* answers later than 3 s after the end are lost */
	struct epoll_event evs[256];
	size_t inflight = 0;
	for (;;) {
		uint64_t now = now_ns();
		/* a due request is timed from when this loop noticed it (the
		 * client's own wake-up lateness is not the server's), so waiting
		 * for a free connection still counts */
		while (next < total && t0 + next * period <= now) {
			queue[qt++] = now;
			if (nlag < total)
				lag[nlag++] = now - (t0 + next * period);
			next++;
		}
		while (qh < qt && nidle) {
			struct oconn *c = &cs[idle[--nidle]];
			if (c->fd < 0) {
				if (oconn_open(c) < 0) {
					errors++;
					qh++;
					idle[nidle++] = (int)(c - cs);
					continue;
				}
				reconnects++;
			}
			resp_reset(&c->r);
			ssize_t w = send(c->fd, g_req, g_req_len, MSG_NOSIGNAL);
			if (w != (ssize_t)g_req_len) {	/* a small request always fits an empty socket buffer */
				errors++;
				qh++;
				oconn_close(c);
				idle[nidle++] = (int)(c - cs);
				continue;
			}
			c->busy = 1;
			c->due = queue[qh++];
			c->sent = now_ns();
			inflight++;
		}
		if (next >= total && qh == qt && inflight == 0)
			break;
		if (now > drain_deadline)
			break;
		struct timespec to = { 0, 0 }, *top = &to;
		if (next < total) {
			uint64_t due = t0 + next * period;
			uint64_t d = due > now ? due - now : 0;
			to.tv_sec = (time_t)(d / 1000000000u);
			to.tv_nsec = (long)(d % 1000000000u);
		} else {
			to.tv_sec = 0;
			to.tv_nsec = 50000000;
		}
		int n = epoll_pwait2(g_oep, evs, 256, top, NULL);
		if (n < 0 && errno != EINTR)
			die("epoll_pwait2");
		for (int i = 0; i < n; i++) {
			struct oconn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue;
			for (;;) {
				if (c->r.cap - c->r.len < 16384) {
					c->r.cap = c->r.cap ? c->r.cap * 2 : 65536;
					c->r.raw = realloc(c->r.raw, c->r.cap);
				}
				ssize_t k = recv(c->fd, c->r.raw + c->r.len, c->r.cap - c->r.len, 0);
				uint64_t t = now_ns();
				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
					break;
				if (k <= 0) {
					/* an idle connection is already in idle[] (it is
					 * reopened when next used); a busy one goes back */
					int was_busy = c->busy;
					if (was_busy) {
						if (k == 0 && c->r.state == R_EOF) {
							if (c->r.status < 200 || c->r.status > 299)
								non2xx++;
							lat[done++] = t - c->due;
						} else {
							errors++;
						}
						inflight--;
					}
					oconn_close(c);
					if (was_busy)
						idle[nidle++] = (int)(c - cs);
					break;
				}
				if (!c->busy) {	/* unsolicited bytes: drop the connection, it stays in idle[] */
					oconn_close(c);
					break;
				}
				c->r.len += (size_t)k;
				int pr = resp_parse(&c->r, t - c->due);
				if (pr < 0) {
					errors++;
					inflight--;
					oconn_close(c);
					idle[nidle++] = (int)(c - cs);
					break;
				}
				if (pr == 1) {
					if (c->r.status < 200 || c->r.status > 299)
						non2xx++;
					lat[done++] = t - c->due;
					inflight--;
					c->busy = 0;
					if (c->r.close)
						oconn_close(c);
					idle[nidle++] = (int)(c - cs);
					break;
				}
			}
		}
	}
	uint64_t elapsed = now_ns() - t0;
	int lost = (int)(total - done) - errors;	/* not answered by the drain deadline */
	if (lost < 0)
		lost = 0;
	if (out) {
		FILE *f = fopen(out, "w");
		if (f) {
			for (size_t i = 0; i < done; i++)
				fprintf(f, "%llu\n", (unsigned long long)lat[i]);
			fclose(f);
		}
	}
	double sum = 0;
	for (size_t i = 0; i < done; i++)
		sum += (double)lat[i];
	qsort(lat, done, sizeof *lat, cmp_u64);
	qsort(lag, nlag, sizeof *lag, cmp_u64);
	double span = (double)(elapsed < (uint64_t)(secs * 1e9) ? (uint64_t)(secs * 1e9) : elapsed) / 1e9;
	printf("n=%zu errors=%d lost=%d non2xx=%d reconnects=%d achieved=%.1f p50_us=%.2f p90_us=%.2f p99_us=%.2f "
	       "p999_us=%.2f mean_us=%.2f max_us=%.2f sendlag_p50_us=%.2f sendlag_p99_us=%.2f\n",
	       done, errors, lost, non2xx, reconnects, (double)done / span, pct_u64(lat, done, 50) / 1e3,
	       pct_u64(lat, done, 90) / 1e3, pct_u64(lat, done, 99) / 1e3, pct_u64(lat, done, 99.9) / 1e3,
	       done ? sum / (double)done / 1e3 : 0.0, done ? lat[done - 1] / 1e3 : 0.0,
	       pct_u64(lag, nlag, 50) / 1e3, pct_u64(lag, nlag, 99) / 1e3);
	for (int i = 0; i < nconn; i++)
		oconn_close(&cs[i]);
	return done ? 0 : 1;
}

static int mode_stats(int col, double scale)
{
	size_t n = 0, cap = 1024;
	double *v = malloc(cap * sizeof *v);
	char line[4096];
	while (fgets(line, sizeof line, stdin)) {
		char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
		for (int c = 1; tok && c < col; c++)
			tok = strtok_r(NULL, " \t\r\n", &save);
		if (!tok)
			continue;
		char *e;
		double x = strtod(tok, &e);
		if (e == tok)
			continue;
		if (n == cap)
			v = realloc(v, (cap *= 2) * sizeof *v);
		v[n++] = x * scale;
	}
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof *v, cmp_dbl);
	printf("n=%zu p50=%.2f p90=%.2f p99=%.2f mean=%.2f min=%.2f max=%.2f\n", n, pct_dbl(v, n, 50),
	       pct_dbl(v, n, 90), pct_dbl(v, n, 99), n ? sum / (double)n : 0.0, n ? v[0] : 0.0,
	       n ? v[n - 1] : 0.0);
	return n ? 0 : 1;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die(path);
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	size_t k;
	while ((k = fread(p + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap)
			p = realloc(p, cap *= 2);
	}
	fclose(f);
	*len = n;
	return p;
}

static void usage(void)
{
	fprintf(stderr, "usage: lat rr|stream|hold|once|stats [options]  (see the comment at the top of lat.c)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	int n = 1000, w = 100, c = 1000, settle = 500, timeout = 0, verbose = 0, col = 1;
	double scale = 1, rate = 5000, secs = 3;
	const char *out = NULL, *pids = NULL;
	int opt;
	signal(SIGPIPE, SIG_IGN);
	optind = 2;
	while ((opt = getopt(argc, argv, "a:p:P:M:H:b:B:n:w:o:c:m:s:t:r:d:v")) != -1) {
		switch (opt) {
		case 'a': o_addr = optarg; break;
		case 'p': o_port = atoi(optarg); break;
		case 'P': o_path = optarg; break;
		case 'M': o_method = optarg; break;
		case 'H':
			if (o_nhdrs < MAX_HDRS)
				o_hdrs[o_nhdrs++] = optarg;
			break;
		case 'b': o_body = optarg; o_body_len = strlen(optarg); break;
		case 'B': o_body = read_file(optarg, &o_body_len); break;
		case 'n': n = atoi(optarg); break;
		case 'w': w = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'c': c = atoi(optarg); col = c; break;
		case 'm': pids = optarg; break;
		case 's': settle = atoi(optarg); scale = atof(optarg); break;
		case 't': timeout = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	if (strcmp(mode, "stats") == 0)
		return mode_stats(col, scale);
	if (!o_port)
		usage();
	build_request();
	if (n < 1)
		n = 1;
	if (w < 0)
		w = 0;
	if (strcmp(mode, "rr") == 0)
		return mode_rr(n, w, out);
	if (strcmp(mode, "stream") == 0)
		return mode_stream(n, w);
	if (strcmp(mode, "hold") == 0)
		return mode_hold(c, pids, settle);
	if (strcmp(mode, "open") == 0)
		return mode_open(rate, secs, c == 1000 ? 64 : c, out);
	if (strcmp(mode, "once") == 0)
		return mode_once(timeout, verbose);
	usage();
	return 2;
}
