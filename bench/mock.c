/*
 * bench/mock.c -- a fast mock OpenAI-compatible upstream for bench/run.sh.
 *
 * One thread, epoll (level-triggered), non-blocking sockets, HTTP/1.1
 * keep-alive, Content-Length (and chunked) request bodies, pipelining-safe:
 * requests on one connection are answered strictly in order, and while a
 * streamed answer is in progress the following requests wait in the input
 * buffer.
 *
 *   POST .../chat/completions  body has "stream":true (any whitespace around
 *                              the colon): text/event-stream, chunked,
 *                              N chat.completion.chunk events, the first one
 *                              with the headers and one every INTERVAL_US
 *                              after that, then a usage chunk ("choices":[])
 *                              and "data: [DONE]" right after the last one.
 *                              Otherwise a fixed ~400-byte chat.completion
 *                              JSON with usage.
 *   anything else              200 text/plain "ok\n".
 *
 * Flags: -p PORT (default 18000), -n CHUNKS (default 20),
 *        -i INTERVAL_US (default 1000), -a ADDR (default 127.0.0.1),
 *        -q (no start-up line).
 * SIGTERM/SIGINT end it. Build: gcc -O2 -o mock mock.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_REQ (4u << 20) /* a request (head + body) larger than this closes the connection */

struct buf {
	char *p;	/* owned, malloc'd */
	size_t len;	/* bytes in use */
	size_t off;	/* bytes already consumed/sent from the front */
	size_t cap;
};

struct conn {
	int fd;
	struct buf in;		/* request bytes not yet parsed */
	struct buf out;		/* response bytes not yet written */
	int want_out;		/* EPOLLOUT registered */
	int close_after;	/* close once out drains (Connection: close / HTTP/1.0) */
	/* streaming state */
	int streaming;		/* a streamed answer is in progress */
	int sent;		/* content chunks sent so far */
	uint64_t next_ns;	/* CLOCK_MONOTONIC deadline of the next chunk */
	struct conn *snext, *sprev;	/* list of streaming connections */
};

static int g_chunks = 20;
static long g_interval_us = 1000;
static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_stop_sig, g_stop_pid;	/* who stopped us (logged at exit) */
static struct conn *g_streams;	/* head of the streaming list, not owned */
static int g_ep;
static char g_json[1024];
static size_t g_json_len;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	g_stop_sig = sig;
	g_stop_pid = si ? si->si_pid : 0;
	g_stop = 1;
}

static void buf_reserve(struct buf *b, size_t extra)
{
	if (b->off && b->off == b->len) {
		b->off = b->len = 0;
	}
	if (b->len + extra <= b->cap)
		return;
	if (b->off) {	/* compact first */
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + extra <= b->cap)
			return;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		perror("realloc");
		exit(1);
	}
	b->p = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const void *d, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	for (size_t want = 256;;) {
		buf_reserve(b, want);
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		want = (size_t)n + 1;
	}
}

static void stream_link(struct conn *c)
{
	c->sprev = NULL;
	c->snext = g_streams;
	if (g_streams)
		g_streams->sprev = c;
	g_streams = c;
}

static void stream_unlink(struct conn *c)
{
	if (c->sprev)
		c->sprev->snext = c->snext;
	else if (g_streams == c)
		g_streams = c->snext;
	if (c->snext)
		c->snext->sprev = c->sprev;
	c->snext = c->sprev = NULL;
}

static void conn_close(struct conn *c)
{
	if (c->streaming)
		stream_unlink(c);
	epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in.p);
	free(c->out.p);
	free(c);
}

/* Write what we can; returns -1 if the connection was closed. */
static int conn_flush(struct conn *c)
{
	while (c->out.off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->want_out) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c };
				epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
				c->want_out = 1;
			}
			return 0;
		}
		conn_close(c);
		return -1;
	}
	c->out.off = c->out.len = 0;
	if (c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
		epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_out = 0;
	}
	if (c->close_after && !c->streaming) {
		conn_close(c);
		return -1;
	}
	return 0;
}

static void chunk_event(struct buf *b, const char *data, size_t n)
{
	/* one SSE event "data: ...\n\n" as one HTTP chunk */
	buf_printf(b, "%zx\r\ndata: ", n + 8);
	buf_add(b, data, n);
	buf_add(b, "\n\n\r\n", 4);
}

static void stream_emit(struct conn *c)
{
	char ev[512];
	int i = c->sent;
	int n;
	if (i == 0)
		n = snprintf(ev, sizeof ev,
			"{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
			"\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{\"index\":0,"
			"\"delta\":{\"role\":\"assistant\",\"content\":\"tok%d \"},\"logprobs\":null,\"finish_reason\":null}]}", i);
	else
		n = snprintf(ev, sizeof ev,
			"{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
			"\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{\"index\":0,"
			"\"delta\":{\"content\":\"tok%d \"},\"logprobs\":null,\"finish_reason\":%s}]}", i,
			i == g_chunks - 1 ? "\"stop\"" : "null");
	chunk_event(&c->out, ev, (size_t)n);
	c->sent++;
	if (c->sent >= g_chunks) {
		n = snprintf(ev, sizeof ev,
			"{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
			"\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_mock\",\"choices\":[],"
			"\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":%d,\"total_tokens\":%d}}",
			g_chunks, g_chunks + 12);
		chunk_event(&c->out, ev, (size_t)n);
		chunk_event(&c->out, "[DONE]", 6);
		buf_add(&c->out, "0\r\n\r\n", 5);
		c->streaming = 0;
		stream_unlink(c);
	} else {
		c->next_ns += (uint64_t)g_interval_us * 1000u;
	}
}

/* true if the body asks for a stream: "stream" <ws> : <ws> true */
static int wants_stream(const char *p, size_t n)
{
	const char *end = p + n;
	while (p < end) {
		const char *k = memmem(p, (size_t)(end - p), "\"stream\"", 8);
		if (!k)
			return 0;
		const char *q = k + 8;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
			q++;
		if (q < end && *q == ':') {
			q++;
			while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
				q++;
			if (end - q >= 4 && memcmp(q, "true", 4) == 0)
				return 1;
		}
		p = k + 8;
	}
	return 0;
}

static const char *find_header(const char *h, size_t hlen, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = memchr(h, '\n', hlen);	/* skip the request line */
	const char *end = h + hlen;
	while (p && p + 1 < end) {
		p++;
		const char *e = memchr(p, '\n', (size_t)(end - p));
		if (!e)
			break;
		if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = e;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = e;
	}
	return NULL;
}

/*
 * Length of a chunked body starting at p (n bytes available), or -1 if not
 * complete yet, -2 if malformed.
 */
static long chunked_len(const char *p, size_t n)
{
	size_t i = 0;
	for (;;) {
		const char *e = memchr(p + i, '\n', n - i);
		if (!e)
			return -1;
		char *x;
		unsigned long sz = strtoul(p + i, &x, 16);
		if (x == p + i)
			return -2;
		i = (size_t)(e - p) + 1;
		if (sz == 0) {	/* trailers until an empty line */
			for (;;) {
				const char *t = memchr(p + i, '\n', n - i);
				if (!t)
					return -1;
				size_t l = (size_t)(t - (p + i));
				i = (size_t)(t - p) + 1;
				if (l == 0 || (l == 1 && p[i - 2] == '\r'))
					return (long)i;
			}
		}
		if (n - i < sz + 2)
			return -1;
		i += sz;
		if (p[i] == '\r')
			i++;
		if (i >= n)
			return -1;
		if (p[i] != '\n')
			return -2;
		i++;
	}
}

/* Parse and answer as many complete requests as are buffered. -1 if closed. */
static int conn_process(struct conn *c)
{
	while (!c->streaming && !c->close_after && c->in.off < c->in.len) {
		const char *p = c->in.p + c->in.off;
		size_t n = c->in.len - c->in.off;
		const char *he = memmem(p, n, "\r\n\r\n", 4);
		if (!he) {
			if (n > MAX_REQ) {
				conn_close(c);
				return -1;
			}
			return 0;
		}
		size_t hlen = (size_t)(he - p) + 4;
		size_t vl;
		size_t blen = 0;
		const char *v = find_header(p, hlen, "content-length", &vl);
		if (v) {
			blen = strtoul(v, NULL, 10);
		} else if ((v = find_header(p, hlen, "transfer-encoding", &vl)) && vl >= 7 &&
			   strncasecmp(v + vl - 7, "chunked", 7) == 0) {
			long l = chunked_len(p + hlen, n - hlen);
			if (l == -2) {
				conn_close(c);
				return -1;
			}
			if (l < 0)
				return 0;
			blen = (size_t)l;
		}
		if (hlen + blen > MAX_REQ) {
			conn_close(c);
			return -1;
		}
		if (n < hlen + blen)
			return 0;

		const char *sp = memchr(p, ' ', hlen);
		const char *sp2 = sp ? memchr(sp + 1, ' ', hlen - (size_t)(sp + 1 - p)) : NULL;
		int is_post = (sp - p == 4 && memcmp(p, "POST", 4) == 0);
		int is_chat = 0;
		if (sp && sp2) {
			const char *path = sp + 1;
			size_t pl = (size_t)(sp2 - path);
			const char *q = memchr(path, '?', pl);
			if (q)
				pl = (size_t)(q - path);
			is_chat = pl >= 17 && memcmp(path + pl - 17, "/chat/completions", 17) == 0;
		}
		if (sp2 && (size_t)(he - sp2) >= 9 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
			c->close_after = 1;
		if ((v = find_header(p, hlen, "connection", &vl)) && vl == 5 && strncasecmp(v, "close", 5) == 0)
			c->close_after = 1;
		const char *conn_hdr = c->close_after ? "Connection: close\r\n" : "";

		if (is_post && is_chat && wants_stream(p + hlen, blen)) {
			buf_printf(&c->out,
				   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
				   "Transfer-Encoding: chunked\r\n%s\r\n", conn_hdr);
			c->streaming = 1;
			c->sent = 0;
			c->next_ns = now_ns();
			stream_link(c);
			stream_emit(c);	/* chunk 0 goes out with the headers */
		} else if (is_post && is_chat) {
			buf_printf(&c->out,
				   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
				   g_json_len, conn_hdr);
			buf_add(&c->out, g_json, g_json_len);
		} else {
			buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n%s\r\nok\n",
				   conn_hdr);
		}
		c->in.off += hlen + blen;
	}
	if (c->in.off == c->in.len)
		c->in.off = c->in.len = 0;
	return conn_flush(c);
}

static void conn_read(struct conn *c)
{
	for (;;) {
		buf_reserve(&c->in, 16384);
		size_t avail = c->in.cap - c->in.len;
		ssize_t n = recv(c->fd, c->in.p + c->in.len, avail, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			if ((size_t)n < avail)
				break;	/* short read: drained for now */
			continue;
		}
		if (n == 0) {
			conn_close(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		conn_close(c);
		return;
	}
	conn_process(c);
}

static void build_json(void)
{
	g_json_len = (size_t)snprintf(g_json, sizeof g_json,
		"{\"id\":\"chatcmpl-mock0000000000000000000000\",\"object\":\"chat.completion\","
		"\"created\":1700000000,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,"
		"\"message\":{\"role\":\"assistant\",\"content\":\"Hello! This is the fixed answer of the "
		"Bifrost-C benchmark mock upstream.\",\"refusal\":null},"
		"\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
		"\"completion_tokens\":14,\"total_tokens\":26},\"system_fingerprint\":\"fp_mock\"}");
}

int main(int argc, char **argv)
{
	int port = 18000, quiet = 0, opt;
	const char *addr = "127.0.0.1";
	while ((opt = getopt(argc, argv, "p:n:i:a:q")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'n': g_chunks = atoi(optarg); break;
		case 'i': g_interval_us = atol(optarg); break;
		case 'a': addr = optarg; break;
		case 'q': quiet = 1; break;
		default:
			fprintf(stderr, "usage: %s [-p PORT] [-n CHUNKS] [-i INTERVAL_US] [-a ADDR] [-q]\n", argv[0]);
			return 2;
		}
	}
	if (g_chunks < 1)
		g_chunks = 1;
	if (g_interval_us < 0)
		g_interval_us = 0;
	build_json();
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);	/* chunk timing to the microsecond */

	struct sigaction sa = { .sa_sigaction = on_signal, .sa_flags = SA_SIGINFO };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "mock: bad address %s\n", addr);
		return 2;
	}
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 4096) < 0) {
		fprintf(stderr, "mock: bind/listen %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev);
	if (!quiet)
		fprintf(stderr, "mock: listening on %s:%d (stream: %d chunks, %ld us apart)\n", addr, port,
			g_chunks, g_interval_us);

	struct epoll_event evs[MAX_EVENTS];
	while (!g_stop) {
		/* next streaming deadline -> epoll_pwait2 timeout (ns resolution) */
		struct timespec to, *top = NULL;
		if (g_streams) {
			uint64_t now = now_ns(), next = UINT64_MAX;
			for (struct conn *s = g_streams; s; s = s->snext)
				if (s->next_ns < next)
					next = s->next_ns;
			uint64_t d = next > now ? next - now : 0;
			to.tv_sec = (time_t)(d / 1000000000u);
			to.tv_nsec = (long)(d % 1000000000u);
			top = &to;
		}
		int n = epoll_pwait2(g_ep, evs, MAX_EVENTS, top, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_pwait2");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				for (;;) {
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					struct conn *nc = calloc(1, sizeof *nc);
					if (!nc) {
						close(fd);
						continue;
					}
					nc->fd = fd;
					struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc };
					if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
						close(fd);
						free(nc);
					}
				}
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				if (conn_flush(c) < 0)
					continue;
				if (!c->want_out && conn_process(c) < 0)
					continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_read(c);
		}
		if (g_streams) {
			uint64_t now = now_ns();
			struct conn *s = g_streams, *nx;
			for (; s; s = nx) {
				nx = s->snext;
				int emitted = 0;
				while (s->streaming && s->next_ns <= now) {
					stream_emit(s);
					emitted = 1;
				}
				if (emitted) {
					if (conn_flush(s) < 0)
						continue;
					if (!s->streaming && !s->want_out)
						conn_process(s);	/* pipelined requests waiting */
				}
			}
		}
	}
	close(lfd);
	if (!quiet)
		fprintf(stderr, "mock: stopped by signal %d from pid %d\n", (int)g_stop_sig, (int)g_stop_pid);
	return 0;
}
