/*
 * bifrost.c — an LLM gateway in one translation unit.
 *
 * Clients speak the OpenAI dialect (and, later, Anthropic's); the gateway routes
 * `provider/model`, rewrites the model and the credential, and forwards the body as
 * iovecs over the bytes it received. One io_uring event loop per core does all I/O.
 *
 * TABLE OF CONTENTS (sections in dependency order: a function calls only into its own
 * section and those above it; `./build.sh lint` checks this, the prefixes and the order)
 *
 *   1. base                 misc helpers, time, errors, FNV-1a, PRNG, job stacks (no prefix)
 *   2. arena_               per-request bump allocator over cached chunks
 *   3. str_/buf_/sb_        slices, growable byte buffers, formatted appends
 *   4. json_                jsmn tokens + validation + lookups + escaping writer
 *   5. http_                HTTP/1.1 request/response head parser, chunked decoder
 *   6. sse_                 server-sent-event splitter
 *   7. sigv4_/evs_          AWS: SigV4 request signing, eventstream frames, base64
 *   8. resp_                the Redis protocol: commands, incremental reply parser
 *   9. tls_                 BearSSL: trust anchors and client engines; the listener's
 *                           certificate and key (checked), server engines
 *   10. cfg_/dns_            config.json loading, validation, env.NAME, defaults; DNS table
 *  11. route_               model string -> provider candidates, weighted choice, breakers
 *  12. prov_                provider adapters: base URLs, auth headers, body edits
 *  13. xlate_               dialect translation: Anthropic Messages <-> OpenAI Chat, and
 *                           the Responses API -> Chat (and on to Messages)
 *  14. jrnl_                charge journal: checksummed records, group commit, replay
 *  15. gov_                 governance: windows, prices, lock-free counters, admission
 *  16. metrics_             counters and the overhead histogram
 *  17. ldb_                 the request log store (SQLite): per-worker rings, the writer
 *                           thread, retention, the queries behind /api/logs
 *  18. mgmt_                the management thread: admin API jobs, logins, config edits
 *                           written back and published (the reload path)
 *  19. clu_                 cluster: budgets and config shared by several nodes through Redis
 *                           (a thread, pipelined Lua admissions, counters pushed and read back)
 *  20. loop_/slot_/timer_/log_  the worker: ring, connection slots, timer wheel, sends,
 *                           the stdout log; calls connection kinds back through their
 *                           handler table (struct slot_ops)
 *  21. up_                  upstream client: pools, connect, TLS, response; tells its
 *                           client through struct up_hooks
 *  22. conn_                client connection: read, parse, dispatch, govern, translate,
 *                           respond, log
 *  23. admin_               /health, /metrics, /v1/models, the web UI's files, and the
 *                           hand-off of /api requests to the management thread
 *  24. main                 command line, signals, reload, drain, journal committer
 *
 * Leaf sections (arena_ to resp_, route_ to xlate_) do no I/O and allocate only from a
 * caller's arena (arena_ and buf_ are the allocators), so the unit tests (built with
 * -DBIFROST_TEST, which drops main) can drive them directly. The calls that go up the
 * file on purpose, each forward-declared and listed in tests/lint.py: cfg_ hands the
 * "governance" object to gov_ (gov_cfg), and conn_ hands the admin paths to admin_
 * (admin_dispatch), which answers through conn_'s senders.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <bearssl.h>
#include <liburing.h>
#include <sqlite3.h>
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#ifndef BIFROST_VERSION
#define BIFROST_VERSION "dev"
#endif

/* ======================================================================== *
 * 1. base — tiny helpers shared by every section.                          *
 * ======================================================================== */

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Invariants checked in debug builds (-DBIFROST_DEBUG, the ASan build) and unit tests. */
#if defined(BIFROST_DEBUG) || defined(BIFROST_TEST)
#define BF_ASSERT(x)                                                                          \
	do {                                                                                  \
		if (!(x)) {                                                                   \
			fprintf(stderr, "bifrost: %s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#x);                                                          \
			abort();                                                              \
		}                                                                             \
	} while (0)
#else
#define BF_ASSERT(x) ((void)0)
#endif

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bifrost: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* Optimal-string-alignment distance between two short words, ignoring case and
 * '_' (so "baseUrl" is 0 from "base_url", "wieght" 1 from "weight"). Words over
 * 63 bytes are "far" (INT_MAX). For "did you mean" suggestions. */
static int word_distance(const char *a, size_t na, const char *b)
{
	char x[64], y[64];
	size_t n = 0, m = 0;
	for (size_t i = 0; i < na && n < sizeof(x); i++)
		if (a[i] != '_')
			x[n++] = (char)tolower((unsigned char)a[i]);
	for (; *b && m < sizeof(y); b++)
		if (*b != '_')
			y[m++] = (char)tolower((unsigned char)*b);
	if (na >= sizeof(x) || *b)
		return INT_MAX;
	int d[65][65];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = (int)i;
	for (size_t k = 0; k <= m; k++)
		d[0][k] = (int)k;
	for (size_t i = 1; i <= n; i++)
		for (size_t k = 1; k <= m; k++) {
			int v = MIN(d[i - 1][k] + 1, d[i][k - 1] + 1);
			v = MIN(v, d[i - 1][k - 1] + (x[i - 1] != y[k - 1]));
			if (i > 1 && k > 1 && x[i - 1] == y[k - 2] && x[i - 2] == y[k - 1])
				v = MIN(v, d[i - 2][k - 2] + 1);
			d[i][k] = v;
		}
	return d[n][m];
}

/* FNV-1a, 64-bit, over n bytes, continuing from h (start from FNV_BASIS): the one hash
 * for identities (journal entity keys: the values are on disk, keep it stable) and the
 * small open-addressing tables. */
#define FNV_BASIS 0xcbf29ce484222325ULL

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	for (const unsigned char *b = p; n--; b++)
		h = (h ^ *b) * 0x100000001b3ULL;
	return h;
}

static uint64_t fnv1a_z(uint64_t h, const char *z) { return fnv1a(h, z, strlen(z)); }

/* xorshift64*: per-worker, for weighted choice; quality is plenty for load balancing. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* A lock-free stack of jobs between threads: many push, one takes everything at once. A job
 * struct's first member is its `struct jnode` (so a node is its job); a push wakes the taker's
 * eventfd (wake_fd < 0: none). Management and cluster jobs travel this way. */
struct jnode {
	struct jnode *next;
};
typedef _Atomic(struct jnode *) jstack;

static void jstack_push(jstack *s, struct jnode *n, int wake_fd)
{
	n->next = atomic_load_explicit(s, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(s, &n->next, n, memory_order_release, memory_order_relaxed))
		;
	uint64_t one = 1; /* (EAGAIN: the counter is saturated, a wake-up is pending anyway) */
	if (wake_fd >= 0 && write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		perror("bifrost: eventfd");
}

/* Everything pushed so far, oldest first. */
static struct jnode *jstack_take(jstack *s)
{
	struct jnode *n = atomic_exchange_explicit(s, NULL, memory_order_acquire), *rev = NULL;
	while (n) {
		struct jnode *next = n->next;
		n->next = rev;
		rev = n;
		n = next;
	}
	return rev;
}

/* ======================================================================== *
 * 2. arena_ — bump allocator for everything a request derives.             *
 *                                                                          *
 * Owns: a list of chunks. Small chunks (ARENA_CHUNK) come from a per-worker *
 * cache so the steady state never calls malloc; oversized requests get a    *
 * dedicated malloc'd chunk freed on reset. Invariant: memory handed out     *
 * stays valid until arena_reset. `fail_after` lets tests inject failure.    *
 * ======================================================================== */

#define ARENA_CHUNK (32 * 1024)

struct arena_chunk {
	struct arena_chunk *next; /* owned: next chunk in this arena or the cache */
	size_t cap;               /* usable bytes after the header */
	size_t used;
	alignas(16) unsigned char mem[];
};

struct arena_cache {
	struct arena_chunk *free; /* owned: standard-size chunks ready for reuse */
	int nfree, max_free;
};

struct arena {
	struct arena_chunk *head;  /* owned: current chunk first */
	struct arena_cache *cache; /* borrowed: worker's chunk cache, may be NULL */
	long fail_after;           /* tests: allocations left before failing; <0 = never */
};

static void arena_init(struct arena *a, struct arena_cache *cache)
{
	a->head = NULL;
	a->cache = cache;
	a->fail_after = -1;
}

static struct arena_chunk *arena_chunk_get(struct arena *a, size_t need)
{
	struct arena_chunk *c;
	if (need <= ARENA_CHUNK && a->cache && a->cache->free) {
		c = a->cache->free;
		a->cache->free = c->next;
		a->cache->nfree--;
	} else {
		size_t cap = need <= ARENA_CHUNK ? ARENA_CHUNK : need;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
	}
	c->used = 0;
	c->next = a->head;
	a->head = c;
	return c;
}

static void *arena_alloc(struct arena *a, size_t size, size_t align)
{
	if (a->fail_after == 0)
		return NULL;
	if (a->fail_after > 0)
		a->fail_after--;
	if (size > SIZE_MAX / 2 - align)
		return NULL;
	struct arena_chunk *c = a->head;
	/* align the address, not the offset: chunks are only 16-aligned */
	size_t off = c ? (size_t)(-(uintptr_t)(c->mem + c->used) & (align - 1)) + c->used : 0;
	if (!c || off + size > c->cap) {
		c = arena_chunk_get(a, size + align);
		if (!c)
			return NULL;
		off = (size_t)(-(uintptr_t)c->mem & (align - 1));
	}
	c->used = off + size;
	return c->mem + off;
}

#define arena_new(a, T, n) ((T *)arena_alloc((a), sizeof(T) * (size_t)(n), alignof(T)))

static void arena_reset(struct arena *a)
{
	struct arena_chunk *c = a->head, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->cap == ARENA_CHUNK && a->cache && a->cache->nfree < a->cache->max_free) {
			c->next = a->cache->free;
			a->cache->free = c;
			a->cache->nfree++;
		} else {
			free(c);
		}
	}
	a->head = NULL;
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1, 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = 0;
	}
	return p;
}

/* ======================================================================== *
 * 3. str_/buf_/sb_ — slices and growable buffers.                          *
 *                                                                          *
 * A `str` never owns its bytes. A `buf` owns a malloc'd block that grows    *
 * up to `limit`; appends past it fail with -E2BIG, never silently truncate. *
 * ======================================================================== */

struct str {
	const char *p; /* borrowed */
	size_t n;
};

#define STR(lit) ((struct str){ (lit), sizeof(lit) - 1 })

static bool str_eq(struct str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && memcmp(s.p, lit, n) == 0;
}

static bool str_case_eq(struct str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

static bool str_starts(struct str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n >= n && memcmp(s.p, lit, n) == 0;
}

/* Does a comma-separated header value contain token `tok` (case-insensitive)? */
static bool str_has_token(struct str s, const char *tok)
{
	size_t tn = strlen(tok), i = 0;
	while (i < s.n) {
		while (i < s.n && (s.p[i] == ' ' || s.p[i] == '\t' || s.p[i] == ','))
			i++;
		size_t b = i;
		while (i < s.n && s.p[i] != ',')
			i++;
		size_t e = i;
		while (e > b && (s.p[e - 1] == ' ' || s.p[e - 1] == '\t'))
			e--;
		if (e - b == tn && strncasecmp(s.p + b, tok, tn) == 0)
			return true;
	}
	return false;
}

struct buf {
	char *p;      /* owned: malloc'd, NULL until first append */
	size_t len, cap;
	size_t limit; /* hard cap on cap; 0 = SIZE_MAX */
};

static int buf_reserve(struct buf *b, size_t extra)
{
	size_t lim = b->limit ? b->limit : SIZE_MAX;
	if (extra > lim || b->len > lim - extra)
		return -E2BIG;
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > lim)
		cap = lim;
	char *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int buf_append(struct buf *b, const void *p, size_t n)
{
	int rc = buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Arena-backed string builder: writes never fail mid-way; `oom` is sticky. */
struct sb {
	struct arena *a; /* borrowed */
	char *p;         /* arena memory */
	size_t len, cap;
	bool oom;
};

static void sb_init(struct sb *s, struct arena *a, size_t cap)
{
	s->a = a;
	s->len = 0;
	s->cap = cap;
	s->p = arena_alloc(a, cap, 1);
	s->oom = !s->p;
}

static bool sb_grow(struct sb *s, size_t extra)
{
	if (s->oom)
		return false;
	if (s->len + extra <= s->cap)
		return true;
	if (!s->a) { /* a fixed buffer (a = NULL) never grows: the writer stops, `oom` says so */
		s->oom = true;
		return false;
	}
	size_t cap = (s->cap + extra) * 2;
	char *p = arena_alloc(s->a, cap, 1);
	if (!p) {
		s->oom = true;
		return false;
	}
	memcpy(p, s->p, s->len);
	s->p = p;
	s->cap = cap;
	return true;
}

static void sb_put(struct sb *s, const void *p, size_t n)
{
	if (n && sb_grow(s, n)) {
		memcpy(s->p + s->len, p, n);
		s->len += n;
	}
}

static void sb_puts(struct sb *s, const char *z) { sb_put(s, z, strlen(z)); }
static void sb_str(struct sb *s, struct str v) { sb_put(s, v.p, v.n); }

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sb *s, const char *fmt, ...)
{
	va_list ap;
	for (int tries = 0; tries < 2; tries++) {
		va_start(ap, fmt);
		int n = vsnprintf(s->p ? s->p + s->len : NULL, s->oom ? 0 : s->cap - s->len, fmt, ap);
		va_end(ap);
		if (n < 0 || s->oom)
			return;
		if (s->len + (size_t)n < s->cap) {
			s->len += (size_t)n;
			return;
		}
		if (!sb_grow(s, (size_t)n + 1))
			return;
	}
}

static struct str sb_view(const struct sb *s) { return (struct str){ s->p, s->len }; }

/* Decimal without printf: the request path builds heads with these. */
static void sb_u64(struct sb *s, uint64_t v)
{
	char d[20];
	int n = 0;
	do
		d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < (int)sizeof(d));
	sb_put(s, d + sizeof(d) - n, (size_t)n);
}

/* The one writer for values that come from outside and end up in a header line:
 * visible ASCII and spaces pass, every other byte (CR, LF, controls, non-ASCII)
 * and '%' are percent-encoded, and the value is cut at `max` bytes of input
 * ("..." marks the cut), so no value can split a head or bloat it. */
static void sb_hval(struct sb *s, const char *p, size_t n, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0, end = MIN(n, max);
	for (size_t k = 0; k < end; k++) {
		unsigned char c = (unsigned char)p[k];
		if (c >= 0x20 && c < 0x7f && c != '%')
			continue;
		sb_put(s, p + run, k - run);
		run = k + 1;
		char e[3] = { '%', hex[c >> 4], hex[c & 15] };
		sb_put(s, e, 3);
	}
	sb_put(s, p + run, end - run);
	if (n > max)
		sb_put(s, "...", 3);
}

static void sb_hval_z(struct sb *s, const char *z, size_t max) { sb_hval(s, z, strlen(z), max); }

/* Append several NUL-terminated strings; the list ends with NULL. */
static void sb_cat(struct sb *s, ...)
{
	va_list ap;
	va_start(ap, s);
	for (const char *z; (z = va_arg(ap, const char *));)
		sb_puts(s, z);
	va_end(ap);
}

/* ======================================================================== *
 * 4. json_ — jsmn tokens, validated.                                       *
 *                                                                          *
 * jsmn tokenizes but accepts missing commas/colons and does not check       *
 * primitives or trailing bytes. json_parse therefore walks the token tree   *
 * once more and checks every gap between tokens holds exactly the expected  *
 * separator, every primitive is true/false/null or a JSON number, and only  *
 * whitespace follows the root. Lookups (json_obj_get) refuse duplicate keys *
 * among the keys asked for, so one field can never route one way and bill   *
 * another. Strings are unescaped on demand into the caller's arena.         *
 * ======================================================================== */

#define JSON_MAX_DEPTH 256

struct json {
	const char *s;   /* borrowed: the document */
	size_t n;
	jsmntok_t *tok;  /* arena */
	int ntok;
	const char *err; /* static message for the last failure */
	size_t err_pos;  /* where it was found (byte offset), for line:column messages */
};

/* A token's full byte span (strings include their quotes). */
static size_t json_beg(const struct json *j, int i)
{
	return (size_t)j->tok[i].start - (j->tok[i].type == JSMN_STRING);
}

static size_t json_end(const struct json *j, int i)
{
	return (size_t)j->tok[i].end + (j->tok[i].type == JSMN_STRING);
}

static struct str json_raw(const struct json *j, int i)
{
	size_t b = json_beg(j, i);
	return (struct str){ j->s + b, json_end(j, i) - b };
}

static bool json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Gap [*pos, to) must be whitespace around at most one `sep` (0 = none allowed). */
static bool json_gap(const struct json *j, size_t *pos, size_t to, char sep)
{
	size_t p = *pos;
	while (p < to && json_ws(j->s[p]))
		p++;
	if (sep) {
		if (p >= to || j->s[p] != sep)
			return false;
		p++;
		while (p < to && json_ws(j->s[p]))
			p++;
	}
	*pos = p == to ? to : p; /* on failure: the offending byte, for error positions */
	return p == to;
}

static bool json_number_ok(const char *s, size_t n)
{
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n)
		return false;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	else
		return false;
	if (i < n && s[i] == '.') {
		if (++i >= n || !isdigit((unsigned char)s[i]))
			return false;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !isdigit((unsigned char)s[i]))
			return false;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	return i == n;
}

static bool json_prim_ok(const struct json *j, int i)
{
	struct str r = json_raw(j, i);
	return str_eq(r, "true") || str_eq(r, "false") || str_eq(r, "null") ||
	       json_number_ok(r.p, r.n);
}

/* Raw control characters are not allowed inside JSON strings. */
static bool json_string_ok(const struct json *j, int i)
{
	for (int k = j->tok[i].start; k < j->tok[i].end; k++)
		if ((unsigned char)j->s[k] < 0x20)
			return false;
	return true;
}

/* Walk the subtree at token *i, checking separators; advances *i past it. */
static bool json_walk(struct json *j, int *i, size_t *pos, int depth)
{
	int t = (*i)++;
	jsmntok_t *tk = &j->tok[t];
	if (tk->type == JSMN_PRIMITIVE)
		return json_prim_ok(j, t);
	if (tk->type == JSMN_STRING)
		return json_string_ok(j, t);
	if (depth > JSON_MAX_DEPTH) {
		j->err = "JSON nested too deeply";
		return false;
	}
	bool obj = tk->type == JSMN_OBJECT;
	*pos = (size_t)tk->start + 1;
	for (int k = 0; k < tk->size; k++) {
		if (*i >= j->ntok || !json_gap(j, pos, json_beg(j, *i), k ? ',' : 0))
			return false;
		if (obj) {
			int key = *i;
			if (j->tok[key].type != JSMN_STRING || j->tok[key].size != 1 ||
			    !json_walk(j, i, pos, depth + 1))
				return false;
			*pos = json_end(j, key);
			if (*i >= j->ntok || !json_gap(j, pos, json_beg(j, *i), ':'))
				return false;
		}
		int child = *i;
		if (!json_walk(j, i, pos, depth + 1))
			return false;
		*pos = json_end(j, child);
	}
	return json_gap(j, pos, (size_t)tk->end - 1, 0) && j->s[tk->end - 1] == (obj ? '}' : ']');
}

/* Nesting deeper than JSON_MAX_DEPTH? Checked before jsmn, whose closing-bracket
 * search walks every closed ancestor and so turns quadratic on deep nesting.
 * It lexes the way jsmn (strict) does, so a '"' inside a primitive such as
 * `t"` is not taken for a string that would hide the brackets after it. */
static bool json_too_deep(const char *s, size_t n)
{
	enum { OUT, STR, PRIM } st = OUT;
	int depth = 0;
	for (size_t i = 0; i < n && s[i]; i++) {
		char c = s[i];
		if (st == STR) {
			if (c == '\\')
				i++;
			else if (c == '"')
				st = OUT;
			continue;
		}
		if (st == PRIM) {
			if (!strchr("\t\r\n ,]}", c))
				continue;
			st = OUT;
		}
		if (c == '"')
			st = STR;
		else if (c == '[' || c == '{')
			depth++;
		else if (c == ']' || c == '}')
			depth--;
		else if (!strchr("\t\r\n ,:", c))
			st = PRIM;
		if (depth > JSON_MAX_DEPTH + 1)
			return true;
	}
	return false;
}

/* Tokenize and validate `s` into at most `max_tok` tokens (a body of a million
 * one-byte values must not cost a million tokens' memory). The root must be an
 * object. 0, -EBADMSG (j->err, j->err_pos set), -E2BIG (too many values) or -ENOMEM. */
static int json_parse_max(struct json *j, struct arena *a, const char *s, size_t n, size_t max_tok)
{
	jsmn_parser p;
	memset(j, 0, sizeof(*j));
	j->s = s;
	j->n = n;
	if (json_too_deep(s, n)) {
		j->err = "JSON nested too deeply";
		return -EBADMSG;
	}
	jsmn_init(&p); /* first pass counts, so the tokens are allocated once, exactly */
	int r = jsmn_parse(&p, s, n, NULL, 0);
	if (r >= 0 && (size_t)r > max_tok) {
		j->err = "JSON has too many values (limits.max_json_tokens)";
		return -E2BIG;
	}
	if (r >= 0) {
		unsigned cap = (unsigned)MAX(r, 1);
		j->tok = arena_new(a, jsmntok_t, cap);
		if (!j->tok) {
			j->err = "out of memory parsing JSON";
			return -ENOMEM;
		}
		jsmn_init(&p);
		r = jsmn_parse(&p, s, n, j->tok, cap);
	}
	if (r < 0) {
		j->err = r == JSMN_ERROR_PART ? "truncated JSON" : "malformed JSON";
		j->err_pos = p.pos;
		return -EBADMSG;
	}
	j->ntok = (int)p.toknext;
	if (j->ntok < 1 || j->tok[0].type != JSMN_OBJECT) {
		j->err = "JSON body must be an object";
		return -EBADMSG;
	}
	int i = 0;
	size_t pos = 0;
	if (!json_gap(j, &pos, (size_t)j->tok[0].start, 0) || !json_walk(j, &i, &pos, 0) ||
	    (pos = (size_t)j->tok[0].end, !json_gap(j, &pos, n, 0)) || i != j->ntok) {
		if (!j->err)
			j->err = i != j->ntok && i > 0 ? "trailing data after JSON" : "malformed JSON";
		j->err_pos = pos;
		return -EBADMSG;
	}
	return 0;
}

static int json_parse(struct json *j, struct arena *a, const char *s, size_t n)
{
	return json_parse_max(j, a, s, n, SIZE_MAX);
}

/* Index of the token after the subtree rooted at i. */
static int json_skip(const struct json *j, int i)
{
	int end = j->tok[i].end, k = i + 1;
	while (k < j->ntok && j->tok[k].start < end)
		k++;
	return k;
}

static int json_hex4(const char *p);
static size_t json_utf8(char *o, unsigned cp);

/* Unescape a short key into buf; a key too long (or malformed) matches nothing. */
static struct str json_key_unescape(struct str k, char *buf, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < k.n; i++) {
		if (o + 4 > cap)
			return (struct str){ "", 0 };
		if (k.p[i] != '\\') {
			buf[o++] = k.p[i];
			continue;
		}
		if (++i >= k.n)
			return (struct str){ "", 0 };
		if (k.p[i] == 'u') {
			int cp = i + 4 < k.n ? json_hex4(k.p + i + 1) : -1;
			if (cp < 0)
				return (struct str){ "", 0 };
			o += json_utf8(buf + o, (unsigned)cp);
			i += 4;
		} else {
			char c = k.p[i];
			buf[o++] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r'
				 : c == 't' ? '\t' : c; /* '"', '\\' and '/' stand for themselves */
		}
	}
	return (struct str){ buf, o };
}

/*
 * Look up `nkeys` keys of object `obj` at once: out[k] gets the VALUE token
 * index or -1. A key present twice is an error (-EBADMSG), since the gateway
 * reads it. keyidx[k], when non-NULL, gets the key token's index.
 */
static int json_obj_get(struct json *j, int obj, const char *const *keys, int nkeys, int *out,
			int *keyidx)
{
	for (int k = 0; k < nkeys; k++) {
		out[k] = -1;
		if (keyidx)
			keyidx[k] = -1;
	}
	if (obj < 0 || j->tok[obj].type != JSMN_OBJECT)
		return -EINVAL;
	int i = obj + 1;
	for (int n = 0; n < j->tok[obj].size; n++) {
		struct str key = { j->s + j->tok[i].start, (size_t)(j->tok[i].end - j->tok[i].start) };
		char kbuf[64];
		if (memchr(key.p, '\\', key.n)) /* "mod\u0065l" is "model": compare unescaped */
			key = json_key_unescape(key, kbuf, sizeof(kbuf));
		for (int k = 0; k < nkeys; k++) {
			if (!str_eq(key, keys[k]))
				continue;
			if (out[k] >= 0) {
				j->err = "duplicate key in JSON object";
				return -EBADMSG;
			}
			out[k] = i + 1;
			if (keyidx)
				keyidx[k] = i;
		}
		i = json_skip(j, i + 1);
	}
	return 0;
}

static bool json_is_true(const struct json *j, int i)
{
	return i >= 0 && j->tok[i].type == JSMN_PRIMITIVE && j->s[j->tok[i].start] == 't';
}

static int json_hex4(const char *p)
{
	int v = 0;
	for (int k = 0; k < 4; k++) {
		char c = p[k];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if ((c | 32) >= 'a' && (c | 32) <= 'f')
			v |= (c | 32) - 'a' + 10;
		else
			return -1;
	}
	return v;
}

static size_t json_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 63));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 63));
		o[2] = (char)(0x80 | (cp & 63));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 63));
	o[2] = (char)(0x80 | (cp >> 6 & 63));
	o[3] = (char)(0x80 | (cp & 63));
	return 4;
}

/* Unescape string token i into the arena (NUL-terminated). NULL on bad escape/OOM. */
static char *json_str(struct json *j, struct arena *a, int i, size_t *len)
{
	if (i < 0 || j->tok[i].type != JSMN_STRING)
		return NULL;
	const char *s = j->s + j->tok[i].start;
	size_t n = (size_t)(j->tok[i].end - j->tok[i].start), o = 0;
	char *out = arena_alloc(a, n + 1, 1);
	if (!out)
		return NULL;
	for (size_t k = 0; k < n; k++) {
		if (s[k] != '\\') {
			out[o++] = s[k];
			continue;
		}
		if (++k >= n)
			goto bad;
		switch (s[k]) {
		case '"': case '\\': case '/': out[o++] = s[k]; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			int cp = k + 4 < n ? json_hex4(s + k + 1) : -1;
			if (cp < 0)
				goto bad;
			k += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) { /* high surrogate: a low one must follow */
				int lo = k + 6 < n && s[k + 1] == '\\' && s[k + 2] == 'u' ? json_hex4(s + k + 3) : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					goto bad;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				k += 6;
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				goto bad;
			}
			o += json_utf8(out + o, (unsigned)cp);
			break;
		}
		default:
			goto bad;
		}
	}
	out[o] = 0;
	if (len)
		*len = o;
	return out;
bad:
	j->err = "bad escape in JSON string";
	return NULL;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid
 * (overlongs, surrogates, beyond U+10FFFF, truncated). */
static size_t json_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) || (c == 0xF0 && p[1] < 0x90) ||
	    (c == 0xF4 && p[1] > 0x8F))
		return 0;
	return len;
}

/* Append `s` as a quoted JSON string: escapes what JSON requires, and bytes
 * that are not valid UTF-8 become U+FFFD, so the output is always valid JSON. */
static void json_put_str(struct sb *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sb_put(b, "\"", 1);
	size_t run = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)s[k];
		if (c >= 0x80) {
			size_t len = json_utf8_seq((const unsigned char *)s + k, n - k);
			if (len) {
				k += len - 1;
				continue;
			}
			sb_put(b, s + run, k - run);
			run = k + 1;
			sb_put(b, "\\ufffd", 6);
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		sb_put(b, s + run, k - run);
		run = k + 1;
		char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
		if (c == '"' || c == '\\') {
			e[1] = (char)c;
			sb_put(b, e, 2);
		} else if (c == '\n') {
			sb_put(b, "\\n", 2);
		} else {
			sb_put(b, e, 6);
		}
	}
	sb_put(b, s + run, n - run);
	sb_put(b, "\"", 1);
}

static void json_put_z(struct sb *b, const char *z) { json_put_str(b, z, strlen(z)); }

/* Integer value of a primitive token, or `dflt`. */
static long long json_int(const struct json *j, int i, long long dflt)
{
	if (i < 0 || j->tok[i].type != JSMN_PRIMITIVE)
		return dflt;
	const char *p = j->s + j->tok[i].start;
	if (*p != '-' && !isdigit((unsigned char)*p))
		return dflt;
	return strtoll(p, NULL, 10);
}

/* ======================================================================== *
 * 5. http_ — HTTP/1.1 heads and chunked bodies.                            *
 *                                                                          *
 * picohttpparser's contract: parsers take a buffer and return slices into   *
 * it; the result is the head length, -EAGAIN (incomplete), -EBADMSG         *
 * (invalid) or -E2BIG (head over the limit). `*scanned` remembers how far   *
 * the search for the blank line got, so a client dribbling bytes costs      *
 * O(n) overall, not O(n^2). Every request-smuggling shape is -EBADMSG:      *
 * Content-Length with Transfer-Encoding, differing Content-Lengths, signs,  *
 * overflow, obsolete line folding, whitespace before a colon.               *
 * ======================================================================== */

#define HTTP_MAX_HDRS 100

struct http_hdr {
	struct str name, value; /* borrowed: slices of the receive buffer */
};

struct http_msg {
	struct str method, path, query; /* requests */
	int status;                     /* responses */
	int minor;                      /* HTTP/1.<minor> */
	size_t head_len;
	long long content_length; /* -1: none */
	bool chunked, expect_continue, keep_alive;
	const char *err; /* static: why -EBADMSG */
	int nhdr;
	struct http_hdr hdr[HTTP_MAX_HDRS]; /* last: parsers clear everything before it */
};

static bool http_tchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static struct str http_header(const struct http_msg *m, const char *name)
{
	for (int i = 0; i < m->nhdr; i++)
		if (str_case_eq(m->hdr[i].name, name))
			return m->hdr[i].value;
	return (struct str){ NULL, 0 };
}

static int http_bad(struct http_msg *m, const char *why)
{
	m->err = why;
	return -EBADMSG;
}

/* Find the end of the head; -EAGAIN until the blank line arrives. */
static long http_head_end(const char *b, size_t len, size_t *scanned, size_t max_head)
{
	size_t i = *scanned > 3 ? *scanned - 3 : 0;
	const char *hit = len >= 4 && i < len ? memmem(b + i, len - i, "\r\n\r\n", 4) : NULL;
	if (!hit) {
		*scanned = len;
		return len > max_head ? -E2BIG : -EAGAIN;
	}
	size_t end = (size_t)(hit - b) + 4;
	return end > max_head ? -E2BIG : (long)end;
}

/* Parse header lines in [p, end) (each ending CRLF) and derive framing. */
static int http_parse_headers(struct http_msg *m, const char *p, const char *end)
{
	bool have_cl = false, have_te = false, conn_close = false, conn_keep = false;
	m->nhdr = 0;
	m->content_length = -1;
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol || eol + 1 >= end + 2 || eol[1] != '\n')
			return http_bad(m, "bad line ending");
		if (eol == p)
			break;
		if (*p == ' ' || *p == '\t')
			return http_bad(m, "obsolete header folding");
		const char *c = p;
		while (c < eol && http_tchar((unsigned char)*c))
			c++;
		if (c == p || c >= eol || *c != ':')
			return http_bad(m, "malformed header name");
		if (m->nhdr == HTTP_MAX_HDRS)
			return http_bad(m, "too many headers");
		struct http_hdr *h = &m->hdr[m->nhdr++];
		h->name = (struct str){ p, (size_t)(c - p) };
		const char *v = c + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *q = v; q < ve; q++)
			if ((unsigned char)*q < 0x20 && *q != '\t')
				return http_bad(m, "control character in header");
		h->value = (struct str){ v, (size_t)(ve - v) };
		if (str_case_eq(h->name, "content-length")) {
			long long n = 0;
			if (h->value.n == 0 || h->value.n > 18)
				return http_bad(m, "bad Content-Length");
			for (size_t k = 0; k < h->value.n; k++) {
				if (!isdigit((unsigned char)h->value.p[k]))
					return http_bad(m, "bad Content-Length");
				n = n * 10 + (h->value.p[k] - '0');
			}
			if (have_cl && n != m->content_length)
				return http_bad(m, "conflicting Content-Length headers");
			have_cl = true;
			m->content_length = n;
		} else if (str_case_eq(h->name, "transfer-encoding")) {
			if (have_te || !str_case_eq(h->value, "chunked"))
				return http_bad(m, "unsupported Transfer-Encoding");
			have_te = m->chunked = true;
		} else if (str_case_eq(h->name, "connection")) {
			conn_close |= str_has_token(h->value, "close");
			conn_keep |= str_has_token(h->value, "keep-alive");
		} else if (str_case_eq(h->name, "expect")) {
			m->expect_continue = str_case_eq(h->value, "100-continue");
		}
		p = eol + 2;
	}
	if (have_cl && have_te)
		return http_bad(m, "Content-Length with Transfer-Encoding");
	if (have_te && m->minor == 0)
		return http_bad(m, "Transfer-Encoding in HTTP/1.0");
	m->keep_alive = !conn_close && (m->minor >= 1 || conn_keep);
	return 0;
}

static int http_parse_version(struct http_msg *m, const char *p, const char *e)
{
	if (e - p != 8 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1'))
		return http_bad(m, "unsupported HTTP version");
	m->minor = p[7] - '0';
	return 0;
}

static int http_parse_request(struct http_msg *m, const char *b, size_t len, size_t *scanned,
			      size_t max_head)
{
	long end = http_head_end(b, len, scanned, max_head);
	if (end < 0)
		return (int)end;
	memset(m, 0, offsetof(struct http_msg, hdr));
	const char *eol = memchr(b, '\r', (size_t)end), *sp1, *sp2;
	if (eol[1] != '\n')
		return http_bad(m, "bare CR in request line");
	sp1 = memchr(b, ' ', (size_t)(eol - b));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == b)
		return http_bad(m, "malformed request line");
	for (const char *q = b; q < sp1; q++)
		if (!http_tchar((unsigned char)*q))
			return http_bad(m, "malformed method");
	m->method = (struct str){ b, (size_t)(sp1 - b) };
	const char *t = sp1 + 1;
	if (*t != '/' || sp2 == t)
		return http_bad(m, "request target must be a path");
	for (const char *q = t; q < sp2; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return http_bad(m, "bad character in request target");
	const char *qm = memchr(t, '?', (size_t)(sp2 - t));
	m->path = (struct str){ t, (size_t)((qm ? qm : sp2) - t) };
	m->query = qm ? (struct str){ qm + 1, (size_t)(sp2 - qm - 1) } : (struct str){ NULL, 0 };
	int rc = http_parse_version(m, sp2 + 1, eol);
	if (rc == 0)
		rc = http_parse_headers(m, eol + 2, b + end);
	int hosts = 0;
	for (int i = 0; rc == 0 && i < m->nhdr; i++)
		hosts += str_case_eq(m->hdr[i].name, "host");
	if (rc == 0 && hosts > 1)
		rc = http_bad(m, "more than one Host header");
	if (rc == 0 && m->minor == 1 && !hosts)
		rc = http_bad(m, "missing Host header");
	m->head_len = (size_t)end;
	return rc ? rc : (int)end;
}

static int http_parse_response(struct http_msg *m, const char *b, size_t len, size_t *scanned,
			       size_t max_head)
{
	long end = http_head_end(b, len, scanned, max_head);
	if (end < 0)
		return (int)end;
	memset(m, 0, offsetof(struct http_msg, hdr));
	const char *eol = memchr(b, '\r', (size_t)end);
	if (eol[1] != '\n')
		return http_bad(m, "bare CR in status line");
	if (eol - b < 12 || b[8] != ' ' || !isdigit((unsigned char)b[9]) ||
	    !isdigit((unsigned char)b[10]) || !isdigit((unsigned char)b[11]) ||
	    (eol - b > 12 && b[12] != ' '))
		return http_bad(m, "malformed status line");
	int rc = http_parse_version(m, b, b + 8);
	if (rc)
		return rc;
	m->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	rc = http_parse_headers(m, eol + 2, b + end);
	m->head_len = (size_t)end;
	return rc ? rc : (int)end;
}

/*
 * Chunked decoding in place: bytes at [*src, len) are decoded down to *dst
 * (dst <= src always). Returns 1 once the last chunk and trailers are read
 * (*src then points past them), 0 when more input is needed, -EBADMSG.
 */
enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LINE,
       CH_END_LF, CH_DONE };

struct http_chunked {
	int state;
	int digits;     /* hex digits of the current size */
	uint64_t left;  /* bytes left in the current chunk */
	bool last;      /* the zero-size chunk was seen */
};

/* One byte of the size line: hex digits, then an extension or CRLF. */
static int http_chunk_size_byte(struct http_chunked *c, char ch)
{
	int v = isdigit((unsigned char)ch) ? ch - '0'
		: ((ch | 32) >= 'a' && (ch | 32) <= 'f') ? (ch | 32) - 'a' + 10 : -1;
	switch (c->state) {
	case CH_SIZE:
		if (v >= 0) {
			c->left = c->left * 16 + (uint64_t)v;
			return ++c->digits > 15 ? -EBADMSG : 0;
		}
		if (c->digits == 0)
			return -EBADMSG;
		if (ch == ';' || ch == ' ' || ch == '\t')
			c->state = CH_EXT;
		else if (ch == '\r')
			c->state = CH_SIZE_LF;
		else
			return -EBADMSG;
		return 0;
	case CH_EXT:
		if (ch == '\r')
			c->state = CH_SIZE_LF;
		else if ((unsigned char)ch < 0x20 && ch != '\t')
			return -EBADMSG;
		return 0;
	default: /* CH_SIZE_LF */
		if (ch != '\n')
			return -EBADMSG;
		c->last = c->left == 0;
		c->state = c->last ? CH_TRAILER : CH_DATA;
		return 0;
	}
}

/* One byte of framing outside the data: the CRLF after data, trailers, the final CRLF.
 * 1 when the message is over. */
static int http_chunk_frame_byte(struct http_chunked *c, char ch)
{
	switch (c->state) {
	case CH_DATA_CR:
		c->state = CH_DATA_LF;
		return ch == '\r' ? 0 : -EBADMSG;
	case CH_DATA_LF:
		c->state = CH_SIZE;
		c->digits = 0;
		c->left = 0;
		return ch == '\n' ? 0 : -EBADMSG;
	case CH_TRAILER: /* at the start of a trailer line, or the final CRLF */
		c->state = ch == '\r' ? CH_END_LF : CH_TRAILER_LINE;
		return 0;
	case CH_TRAILER_LINE:
		if (ch == '\n')
			c->state = CH_TRAILER;
		return 0;
	case CH_END_LF:
		c->state = CH_DONE;
		return ch == '\n' ? 1 : -EBADMSG;
	default:
		return 1;
	}
}

static int http_dechunk(struct http_chunked *c, char *b, size_t *src, size_t len, size_t *dst)
{
	size_t s = *src, d = *dst;
	int rc = 0;
	while (s < len && rc == 0) {
		if (c->state == CH_DATA) { /* as much of the chunk as is here, moved down in place */
			size_t n = MIN((uint64_t)(len - s), c->left);
			if (d != s)
				memmove(b + d, b + s, n);
			d += n;
			s += n;
			c->left -= n;
			if (!c->left)
				c->state = CH_DATA_CR;
		} else if (c->state == CH_DONE) {
			rc = 1;
		} else {
			bool size_line = c->state == CH_SIZE || c->state == CH_EXT || c->state == CH_SIZE_LF;
			rc = size_line ? http_chunk_size_byte(c, b[s]) : http_chunk_frame_byte(c, b[s]);
			s++;
		}
	}
	*src = s;
	*dst = d;
	return rc;
}

/* The buffer under a parsed head moved (realloc): move the slices with it. */
static void http_rebase(struct http_msg *m, const char *from, const char *to)
{
	struct str *s[] = { &m->method, &m->path, &m->query };
	for (size_t i = 0; i < ARRAY_LEN(s); i++)
		if (s[i]->p)
			s[i]->p = to + (s[i]->p - from);
	for (int i = 0; i < m->nhdr; i++) {
		m->hdr[i].name.p = to + (m->hdr[i].name.p - from);
		m->hdr[i].value.p = to + (m->hdr[i].value.p - from);
	}
}

/* Percent-decode `in` into out (NUL-terminated, cut at cap - 1); plus: '+' is a space. */
static size_t http_pct_decode(struct str in, bool plus, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t k = 0; k < in.n && o + 1 < cap; k++) {
		int hx = in.p[k] == '%' && k + 2 < in.n ? json_hex4((char[]){ '0', '0', in.p[k + 1], in.p[k + 2] }) : -1;
		if (hx >= 0) {
			out[o++] = (char)hx;
			k += 2;
		} else {
			out[o++] = plus && in.p[k] == '+' ? ' ' : in.p[k];
		}
	}
	out[o] = 0;
	return o;
}

/*
 * The value of `name` in a query string ("a=1&b=x%20y"), percent- and '+'-decoded into out
 * (NUL-terminated, cut at cap - 1): its decoded length (a %00 makes it differ from strlen),
 * or -1 when absent. The first occurrence wins.
 */
static long http_query_get(struct str q, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < q.n;) {
		const char *amp = memchr(q.p + i, '&', q.n - i);
		size_t e = amp ? (size_t)(amp - q.p) : q.n;
		if (e - i > nl && !memcmp(q.p + i, name, nl) && q.p[i + nl] == '=') {
			return (long)http_pct_decode((struct str){ q.p + i + nl + 1, e - i - nl - 1 }, true, out, cap);
		}
		i = e + 1;
	}
	return -1;
}

static const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 529: return "Overloaded";
	default: return "Status";
	}
}

/* ======================================================================== *
 * 6. sse_ — server-sent-event framing.                                     *
 *                                                                          *
 * An event ends at a blank line ("\n\n" or "\r\n\r\n"). sse_next returns   *
 * the length of the first complete event in [b, b+len) including its       *
 * terminator, or 0 if the event is still incomplete. sse_field returns a   *
 * field's value (sse_data: the first `data:` line).                         *
 * ======================================================================== */

static size_t sse_next(const char *b, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (b[i] != '\n')
			continue;
		if (b[i + 1] == '\n')
			return i + 2;
		if (b[i + 1] == '\r' && i + 2 < len && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* The value of the event's first `name:` line (one optional space stripped). */
static struct str sse_field(const char *ev, size_t n, const char *name)
{
	size_t i = 0, nl = strlen(name);
	while (i < n) {
		const char *eol = memchr(ev + i, '\n', n - i);
		size_t e = eol ? (size_t)(eol - ev) : n;
		if (e - i > nl && memcmp(ev + i, name, nl) == 0 && ev[i + nl] == ':') {
			size_t b = i + nl + 1 + (i + nl + 1 < e && ev[i + nl + 1] == ' ');
			size_t ee = e > b && ev[e - 1] == '\r' ? e - 1 : e;
			return (struct str){ ev + b, ee - b };
		}
		i = e + 1;
	}
	return (struct str){ NULL, 0 };
}

static struct str sse_data(const char *ev, size_t n) { return sse_field(ev, n, "data"); }

/* ======================================================================== *
 * 7. sigv4_/evs_ — AWS: request signing, eventstream frames, base64.       *
 *                                                                          *
 * sigv4_authorization signs a request the way AWS's SDKs do (Signature     *
 * Version 4: canonical request, string to sign, a key derived per day,     *
 * region and service, cached by the caller). evs_decode reads one          *
 * application/vnd.amazon.eventstream frame (prelude and message CRC32      *
 * checked; 0 = not complete yet, so frames may arrive in any pieces);      *
 * evs_encode writes one. Bedrock wraps each Anthropic stream event as      *
 * {"bytes":"<base64>"}: evs_b64_* are that wrapper's codec. Pure: arena    *
 * memory (the output builder's) only.                                      *
 * ======================================================================== */

struct sigv4_hdr {
	const char *name, *value; /* name in any case; value as sent (trimmed when signed) */
};

/* A derived signing key, valid for one scope (day/region/service) and secret. */
struct sigv4_key {
	char scope[96];
	const char *secret; /* the config's string: a reload makes a new one */
	uint8_t k[32];
};

struct sigv4_req {
	const char *method;
	const char *path;  /* as sent on the request line (already percent-encoded) */
	const char *query; /* as sent, without '?', or "" */
	const struct sigv4_hdr *hdrs; /* every header to sign (Host and X-Amz-Date among them) */
	int nhdrs;
	const uint8_t *payload_sha256; /* 32 bytes */
	const char *amzdate;           /* "20150830T123600Z" */
	const char *region, *service;
	const char *akid, *secret;
	struct sigv4_key *cache;       /* optional: reused while the scope and secret match */
};

#define SIGV4_MAX_HDRS 32
#define SIGV4_MAX_PARAMS 64

static void sigv4_hex(struct sb *out, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		char e[2] = { hex[p[i] >> 4], hex[p[i] & 15] };
		sb_put(out, e, 2);
	}
}

static void sigv4_hmac(uint8_t out[32], const void *key, size_t kn, const void *msg, size_t mn)
{
	br_hmac_key_context kc;
	br_hmac_context hc;
	br_hmac_key_init(&kc, &br_sha256_vtable, key, kn);
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, msg, mn);
	br_hmac_out(&hc, out);
}

/* AWS's URI encoding: unreserved bytes stay, '/' stays in paths, the rest is %XX. */
static void sigv4_uri_encode(struct sb *out, const char *p, size_t n, bool path)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (path && c == '/')) {
			sb_put(out, p + i, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			sb_put(out, e, 3);
		}
	}
}

static int sigv4_unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A query component as sent → canonical: %XX decoded once, then encoded AWS's way. */
static struct str sigv4_query_part(struct arena *a, const char *p, size_t n)
{
	struct sb s;
	sb_init(&s, a, n * 3 + 1);
	for (size_t i = 0; i < n; i++) {
		int hi = p[i] == '%' && i + 2 < n ? sigv4_unhex(p[i + 1]) : -1;
		int lo = hi >= 0 ? sigv4_unhex(p[i + 2]) : -1;
		if (lo >= 0) {
			char c = (char)(hi << 4 | lo);
			sigv4_uri_encode(&s, &c, 1, false);
			i += 2;
		} else {
			sigv4_uri_encode(&s, p + i, 1, false);
		}
	}
	return sb_view(&s);
}

struct sigv4_param {
	struct str k, v;
};

static int sigv4_param_cmp(const void *x, const void *y)
{
	const struct sigv4_param *a = x, *b = y;
	int c = memcmp(a->k.p, b->k.p, MIN(a->k.n, b->k.n));
	if (c || a->k.n != b->k.n)
		return c ? c : a->k.n < b->k.n ? -1 : 1;
	c = memcmp(a->v.p, b->v.p, MIN(a->v.n, b->v.n));
	return c ? c : (a->v.n > b->v.n) - (a->v.n < b->v.n);
}

/* The canonical query string: parameters encoded, sorted by name then value. */
static void sigv4_canonical_query(struct sb *out, const char *q)
{
	struct sigv4_param pr[SIGV4_MAX_PARAMS];
	int n = 0;
	for (const char *s = q; *s && n < SIGV4_MAX_PARAMS;) {
		size_t len = strcspn(s, "&");
		const char *eq = memchr(s, '=', len);
		size_t kn = eq ? (size_t)(eq - s) : len;
		if (len) {
			pr[n].k = sigv4_query_part(out->a, s, kn);
			pr[n].v = eq ? sigv4_query_part(out->a, eq + 1, len - kn - 1) : (struct str){ "", 0 };
			n++;
		}
		s += len + (s[len] == '&');
	}
	qsort(pr, (size_t)n, sizeof(pr[0]), sigv4_param_cmp);
	for (int i = 0; i < n; i++) {
		sb_put(out, "&", i > 0);
		sb_str(out, pr[i].k);
		sb_puts(out, "=");
		sb_str(out, pr[i].v);
	}
}

/* A header value as signed: outer whitespace trimmed, inner runs of spaces made one. */
static void sigv4_hval(struct sb *out, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n; i++)
		if (!((v[i] == ' ' || v[i] == '\t') && i && (v[i - 1] == ' ' || v[i - 1] == '\t')))
			sb_put(out, v[i] == '\t' ? " " : v + i, 1);
}

static int sigv4_hdr_cmp(const void *x, const void *y)
{
	const struct sigv4_hdr *a = *(struct sigv4_hdr *const *)x, *b = *(struct sigv4_hdr *const *)y;
	int c = strcasecmp(a->name, b->name);
	return c ? c : a < b ? -1 : a > b; /* stable: duplicates keep their order */
}

/* Canonical headers ("name:value\n" each, duplicates joined by ',') and the signed list. */
static void sigv4_canonical_headers(struct sb *out, const struct sigv4_req *r, struct sb *signed_hdrs)
{
	const struct sigv4_hdr *h[SIGV4_MAX_HDRS];
	int n = MIN(r->nhdrs, SIGV4_MAX_HDRS);
	for (int i = 0; i < n; i++)
		h[i] = &r->hdrs[i];
	qsort(h, (size_t)n, sizeof(h[0]), sigv4_hdr_cmp);
	for (int i = 0; i < n; i++) {
		bool dup = i > 0 && strcasecmp(h[i]->name, h[i - 1]->name) == 0;
		if (dup) {
			sb_puts(out, ",");
		} else {
			if (i > 0) {
				sb_puts(out, "\n");
				sb_puts(signed_hdrs, ";");
			}
			for (const char *c = h[i]->name; *c; c++) {
				char l = (char)tolower((unsigned char)*c);
				sb_put(out, &l, 1);
				sb_put(signed_hdrs, &l, 1);
			}
			sb_puts(out, ":");
		}
		sigv4_hval(out, h[i]->value);
	}
	sb_puts(out, "\n");
}

/* METHOD \n URI \n QUERY \n headers \n \n signed-headers \n hex(sha256(payload)). */
static void sigv4_canonical_request(struct sb *out, const struct sigv4_req *r, struct sb *signed_hdrs)
{
	sb_cat(out, r->method, "\n", NULL);
	sigv4_uri_encode(out, r->path, strlen(r->path), true);
	sb_puts(out, "\n");
	sigv4_canonical_query(out, r->query ? r->query : "");
	sb_puts(out, "\n");
	sigv4_canonical_headers(out, r, signed_hdrs);
	sb_puts(out, "\n");
	sb_str(out, sb_view(signed_hdrs));
	sb_puts(out, "\n");
	sigv4_hex(out, r->payload_sha256, 32);
}

/* "YYYYMMDD/region/service/aws4_request" */
static void sigv4_scope(struct sb *out, const struct sigv4_req *r)
{
	sb_put(out, r->amzdate, MIN(strlen(r->amzdate), 8));
	sb_cat(out, "/", r->region, "/", r->service, "/aws4_request", NULL);
}

static void sigv4_string_to_sign(struct sb *out, const struct sigv4_req *r, const char *creq_sha256_hex)
{
	sb_cat(out, "AWS4-HMAC-SHA256\n", r->amzdate, "\n", NULL);
	sigv4_scope(out, r);
	sb_cat(out, "\n", creq_sha256_hex, NULL);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"). */
static void sigv4_signing_key(const struct sigv4_req *r, struct str scope, uint8_t k[32])
{
	struct sigv4_key *c = r->cache;
	if (c && c->secret == r->secret && scope.n < sizeof(c->scope) && memcmp(c->scope, scope.p, scope.n) == 0 &&
	    c->scope[scope.n] == 0) {
		memcpy(k, c->k, 32);
		return;
	}
	char first[256];
	int fn = snprintf(first, sizeof(first), "AWS4%s", r->secret);
	const char *s = scope.p, *e = scope.p + scope.n;
	const char *slash = memchr(s, '/', (size_t)(e - s));
	sigv4_hmac(k, first, (size_t)MIN(fn, (int)sizeof(first) - 1), s, slash ? (size_t)(slash - s) : 0);
	for (int i = 0; i < 3 && slash; i++) { /* region, service, "aws4_request" */
		s = slash + 1;
		slash = memchr(s, '/', (size_t)(e - s));
		size_t n = slash ? (size_t)(slash - s) : (size_t)(e - s);
		uint8_t prev[32];
		memcpy(prev, k, 32);
		sigv4_hmac(k, prev, 32, s, n);
	}
	explicit_bzero(first, sizeof(first));
	if (c && scope.n < sizeof(c->scope)) {
		memcpy(c->scope, scope.p, scope.n);
		c->scope[scope.n] = 0;
		c->secret = r->secret;
		memcpy(c->k, k, 32);
	}
}

/* "AWS4-HMAC-SHA256 Credential=AKID/scope, SignedHeaders=a;b, Signature=hex" */
static void sigv4_authorization(struct sb *out, const struct sigv4_req *r)
{
	struct sb creq, sh, sts, scope, hx;
	sb_init(&creq, out->a, 1024);
	sb_init(&sh, out->a, 128);
	sb_init(&sts, out->a, 256);
	sb_init(&scope, out->a, 96);
	sb_init(&hx, out->a, 65);
	sigv4_canonical_request(&creq, r, &sh);
	uint8_t d[32];
	br_sha256_context sc;
	br_sha256_init(&sc);
	br_sha256_update(&sc, creq.p, creq.len);
	br_sha256_out(&sc, d);
	sigv4_hex(&hx, d, 32);
	sb_put(&hx, "", 1); /* NUL */
	sigv4_string_to_sign(&sts, r, hx.oom ? "" : hx.p);
	sigv4_scope(&scope, r);
	uint8_t k[32], sig[32];
	sigv4_signing_key(r, sb_view(&scope), k);
	sigv4_hmac(sig, k, 32, sts.p, sts.len);
	explicit_bzero(k, sizeof(k));
	sb_cat(out, "AWS4-HMAC-SHA256 Credential=", r->akid, "/", NULL);
	sb_str(out, sb_view(&scope));
	sb_puts(out, ", SignedHeaders=");
	sb_str(out, sb_view(&sh));
	sb_puts(out, ", Signature=");
	sigv4_hex(out, sig, 32);
	if (creq.oom || sh.oom || sts.oom || scope.oom || hx.oom)
		out->oom = true;
}

/* ---- eventstream frames: u32 total, u32 headers length, u32 prelude CRC, headers,
 *      payload, u32 CRC of everything before it (all big-endian) ---- */

#define EVS_MAX_FRAME (16u << 20)

struct evs_msg {
	struct str message_type;   /* ":message-type": "event", "exception", "error" */
	struct str event_type;     /* ":event-type" */
	struct str exception_type; /* ":exception-type" */
	struct str error_code;     /* ":error-code" */
	struct str content_type;   /* ":content-type" */
	struct str payload;
};

/* CRC-32 (IEEE, reflected), four bits at a time: a 16-entry table, no start-up work. */
static uint32_t evs_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	static const uint32_t t[16] = { 0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
		0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4,
		0xA00AE278, 0xBDBDF21C };
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ t[crc & 15];
		crc = (crc >> 4) ^ t[crc & 15];
	}
	return ~crc;
}

static uint32_t evs_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void evs_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* The headers block: the string headers the gateway reads, every other type skipped. */
static int evs_headers(const uint8_t *p, size_t n, struct evs_msg *m)
{
	static const uint8_t fixed[10] = { 0, 0, 1, 2, 4, 8, 0, 0, 8, 16 }; /* value sizes by type */
	size_t i = 0;
	while (i < n) {
		size_t nl = p[i++];
		if (nl == 0 || i + nl + 1 > n)
			return -EBADMSG;
		struct str name = { (const char *)p + i, nl };
		uint8_t type = p[i + nl];
		i += nl + 1;
		if (type > 9)
			return -EBADMSG;
		size_t vl = fixed[type];
		if (type == 6 || type == 7) {
			if (i + 2 > n)
				return -EBADMSG;
			vl = (size_t)p[i] << 8 | p[i + 1];
			i += 2;
		}
		if (i + vl > n)
			return -EBADMSG;
		struct str v = { (const char *)p + i, vl };
		i += vl;
		if (type != 7)
			continue;
		if (str_eq(name, ":message-type"))
			m->message_type = v;
		else if (str_eq(name, ":event-type"))
			m->event_type = v;
		else if (str_eq(name, ":exception-type"))
			m->exception_type = v;
		else if (str_eq(name, ":error-code"))
			m->error_code = v;
		else if (str_eq(name, ":content-type"))
			m->content_type = v;
	}
	return 0;
}

/* One frame at p: its length with *m filled (pointing into p), 0 when not complete, or
 * -EBADMSG (bad lengths, a CRC mismatch, a malformed header). The prelude is checked as
 * soon as it is in, so garbage never makes the caller wait for a huge "frame". */
static long evs_decode(const uint8_t *p, size_t n, struct evs_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (n < 12)
		return 0;
	uint32_t total = evs_be32(p), hlen = evs_be32(p + 4);
	if (evs_crc32(0, p, 8) != evs_be32(p + 8) || total < 16 || total > EVS_MAX_FRAME || hlen > total - 16)
		return -EBADMSG;
	if (n < total)
		return 0;
	if (evs_crc32(0, p, total - 4) != evs_be32(p + total - 4) || evs_headers(p + 12, hlen, m) != 0)
		return -EBADMSG;
	m->payload = (struct str){ (const char *)p + 12 + hlen, total - 16 - hlen };
	return (long)total;
}

/* Append one frame whose headers are strings (type 7). */
static void evs_encode(struct sb *out, const struct str *names, const struct str *values, int nh,
		       const void *payload, size_t len)
{
	size_t hlen = 0;
	for (int i = 0; i < nh; i++)
		hlen += 1 + MIN(names[i].n, 255) + 1 + 2 + MIN(values[i].n, 65535);
	size_t total = 12 + hlen + len + 4, start = out->len;
	if (total > UINT32_MAX || !sb_grow(out, total))
		return;
	uint8_t *p = (uint8_t *)out->p + start, *q = p + 12;
	evs_put32(p, (uint32_t)total);
	evs_put32(p + 4, (uint32_t)hlen);
	evs_put32(p + 8, evs_crc32(0, p, 8));
	for (int i = 0; i < nh; i++) {
		size_t nl = MIN(names[i].n, 255), vl = MIN(values[i].n, 65535);
		*q++ = (uint8_t)nl;
		memcpy(q, names[i].p, nl);
		q += nl;
		*q++ = 7;
		*q++ = (uint8_t)(vl >> 8), *q++ = (uint8_t)vl;
		memcpy(q, values[i].p, vl);
		q += vl;
	}
	if (len)
		memcpy(q, payload, len);
	q += len;
	evs_put32(q, evs_crc32(0, p, total - 4));
	out->len += total;
}

/* ---- base64 (RFC 4648, padded): the {"bytes": ...} wrapper of Bedrock's chunks ---- */

static void evs_b64_encode(struct sb *out, const void *src, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = src;
	if (!sb_grow(out, (n + 2) / 3 * 4))
		return;
	char *o = out->p + out->len;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		*o++ = i + 1 < n ? a[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? a[v & 63] : '=';
	}
	out->len = (size_t)(o - out->p);
}

static int evs_b64_val(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9'
		? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode into out; false on a character outside the alphabet or bad padding. */
static bool evs_b64_decode(struct sb *out, const char *s, size_t n)
{
	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1 || !sb_grow(out, n / 4 * 3 + 3))
		return false;
	uint32_t v = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int d = evs_b64_val(s[i]);
		if (d < 0)
			return false;
		v = v << 6 | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out->p[out->len++] = (char)(v >> bits & 0xff);
		}
	}
	return true;
}

/* ---- Bedrock's stream frames <-> SSE events ---- */

/* The HTTP status an exception frame (or Bedrock's x-amzn-ErrorType) stands for. */
static int evs_exception_status(struct str type)
{
	static const struct { const char *name; int status; } map[] = {
		{ "throttling", 429 }, { "serviceunavailable", 503 }, { "internalserver", 500 },
		{ "modeltimeout", 504 }, { "validation", 400 }, { "accessdenied", 403 },
		{ "resourcenotfound", 404 }, { "modelnotready", 503 }, { "servicequotaexceeded", 429 },
	};
	for (size_t i = 0; i < ARRAY_LEN(map); i++) {
		size_t n = strlen(map[i].name);
		if (type.n >= n && strncasecmp(type.p, map[i].name, n) == 0)
			return map[i].status;
	}
	return 502; /* modelStreamErrorException and anything new: the provider failed */
}

/* A chunk frame's payload {"bytes":"<base64>"} → "event: TYPE\ndata: JSON\n\n" (the
 * Anthropic event it carries). false: not such a payload. */
static bool evs_chunk_to_sse(struct arena *a, struct str payload, struct sb *out)
{
	static const char *const k[] = { "bytes" }, *const kt[] = { "type" };
	struct json j, e;
	int b, t;
	struct sb ev;
	if (json_parse(&j, a, payload.p, payload.n) != 0 || json_obj_get(&j, 0, k, 1, &b, NULL) != 0 || b < 0 ||
	    j.tok[b].type != JSMN_STRING)
		return false;
	struct str raw = json_raw(&j, b);
	sb_init(&ev, a, raw.n);
	if (!evs_b64_decode(&ev, raw.p + 1, raw.n - 2) || ev.oom || json_parse(&e, a, ev.p, ev.len) != 0 ||
	    json_obj_get(&e, 0, kt, 1, &t, NULL) != 0 || t < 0 || e.tok[t].type != JSMN_STRING)
		return false;
	struct str type = json_raw(&e, t);
	if (type.n < 3 || memchr(type.p, '\\', type.n) || memchr(ev.p, '\n', ev.len))
		return false; /* (an event name is plain; one data line) */
	sb_puts(out, "event: ");
	sb_put(out, type.p + 1, type.n - 2);
	sb_puts(out, "\ndata: ");
	sb_put(out, ev.p, ev.len);
	sb_puts(out, "\n\n");
	return !out->oom;
}

/* An Anthropic event's JSON → a Bedrock chunk frame. */
static void evs_sse_to_chunk(struct sb *out, struct str event_json)
{
	static const struct str names[] = { STR(":event-type"), STR(":content-type"), STR(":message-type") },
		values[] = { STR("chunk"), STR("application/json"), STR("event") };
	struct sb pl;
	sb_init(&pl, out->a, event_json.n * 4 / 3 + 32);
	sb_puts(&pl, "{\"bytes\":\"");
	evs_b64_encode(&pl, event_json.p, event_json.n);
	sb_puts(&pl, "\"}");
	if (pl.oom)
		out->oom = true;
	else
		evs_encode(out, names, values, 3, pl.p, pl.len);
}

/* An exception frame: {"message": msg}, :exception-type `type` (e.g. "throttlingException"). */
static void evs_exception(struct sb *out, const char *type, const char *msg)
{
	static const struct str names[] = { STR(":exception-type"), STR(":content-type"), STR(":message-type") };
	struct str values[] = { { type, strlen(type) }, STR("application/json"), STR("exception") };
	struct sb pl;
	sb_init(&pl, out->a, strlen(msg) + 32);
	sb_puts(&pl, "{\"message\":");
	json_put_z(&pl, msg);
	sb_puts(&pl, "}");
	if (pl.oom)
		out->oom = true;
	else
		evs_encode(out, names, values, 3, pl.p, pl.len);
}

/* ======================================================================== *
 * 8. resp_ — the Redis protocol (RESP2): commands out, replies in.        *
 *                                                                          *
 * resp_cmd writes one command as an array of bulk strings; resp_parse      *
 * reads one reply (simple string, error, integer, bulk string, array,      *
 * nested) from a buffer that may hold only part of it (0: not complete     *
 * yet) into a tree in the caller's arena. Lengths, counts and depth are    *
 * bounded, so a hostile or broken server cannot make it allocate without   *
 * bound or recurse deeply. Pure.                                           *
 * ======================================================================== */

enum resp_type { RESP_STR, RESP_ERR, RESP_INT, RESP_BULK, RESP_NIL, RESP_ARR };

struct resp_val {
	enum resp_type type;
	struct str s;            /* RESP_STR, RESP_ERR, RESP_BULK: points into the buffer */
	long long i;             /* RESP_INT */
	struct resp_val *a;      /* RESP_ARR: arena */
	int n;
};

#define RESP_MAX_BULK (64u << 20)
#define RESP_MAX_ARRAY 1000000
#define RESP_MAX_DEPTH 8

/* "*argc\r\n" then "$len\r\narg\r\n" per argument. */
static void resp_cmd(struct sb *out, int argc, const struct str *argv)
{
	sb_printf(out, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		sb_printf(out, "$%zu\r\n", argv[i].n);
		sb_put(out, argv[i].p, argv[i].n);
		sb_puts(out, "\r\n");
	}
}

/* The line at p (to CRLF): its length, or -1 if no CRLF yet, -2 if it is not a line. */
static long resp_line(const char *p, size_t n)
{
	const char *cr = memchr(p, '\r', n);
	if (!cr)
		return n > 64 * 1024 ? -2 : -1;
	size_t k = (size_t)(cr - p);
	if (k + 1 >= n)
		return -1;
	return p[k + 1] == '\n' ? (long)k : -2;
}

/* A signed decimal that fills [p, p+n), within [lo, hi]. */
static bool resp_num(const char *p, size_t n, long long lo, long long hi, long long *v)
{
	bool neg = n && p[0] == '-';
	size_t i = neg;
	long long x = 0;
	if (i == n || n - i > 19)
		return false;
	for (; i < n; i++) {
		if (!isdigit((unsigned char)p[i]) || x > (LLONG_MAX - (p[i] - '0')) / 10)
			return false;
		x = x * 10 + (p[i] - '0');
	}
	*v = neg ? -x : x;
	return *v >= lo && *v <= hi;
}

static long resp_parse_at(struct arena *a, const char *p, size_t n, struct resp_val *v, int depth);

/* An array's elements (count k) after its header line. */
static long resp_parse_arr(struct arena *a, const char *p, size_t n, struct resp_val *v, long long k, int depth)
{
	size_t off = 0;
	v->n = (int)k;
	v->a = k ? arena_new(a, struct resp_val, (size_t)k) : NULL;
	if (k && !v->a)
		return -ENOMEM;
	for (long long i = 0; i < k; i++) {
		long r = resp_parse_at(a, p + off, n - off, &v->a[i], depth + 1);
		if (r <= 0)
			return r;
		off += (size_t)r;
	}
	return (long)off;
}

static long resp_parse_at(struct arena *a, const char *p, size_t n, struct resp_val *v, int depth)
{
	long long k;
	if (n == 0)
		return 0;
	if (depth > RESP_MAX_DEPTH)
		return -EBADMSG;
	long ln = resp_line(p + 1, n - 1);
	if (ln < 0)
		return ln == -1 ? 0 : -EBADMSG;
	size_t head = (size_t)ln + 3; /* type byte, line, CRLF */
	memset(v, 0, sizeof(*v));
	switch (p[0]) {
	case '+': case '-':
		v->type = p[0] == '+' ? RESP_STR : RESP_ERR;
		v->s = (struct str){ p + 1, (size_t)ln };
		return (long)head;
	case ':':
		v->type = RESP_INT;
		return resp_num(p + 1, (size_t)ln, LLONG_MIN + 1, LLONG_MAX, &v->i) ? (long)head : -EBADMSG;
	case '$':
		if (!resp_num(p + 1, (size_t)ln, -1, RESP_MAX_BULK, &k))
			return -EBADMSG;
		v->type = k < 0 ? RESP_NIL : RESP_BULK;
		if (k < 0)
			return (long)head;
		if (n < head + (size_t)k + 2)
			return 0;
		if (p[head + k] != '\r' || p[head + k + 1] != '\n')
			return -EBADMSG;
		v->s = (struct str){ p + head, (size_t)k };
		return (long)(head + (size_t)k + 2);
	case '*':
		if (!resp_num(p + 1, (size_t)ln, -1, RESP_MAX_ARRAY, &k))
			return -EBADMSG;
		if (k > 0 && (size_t)k * 3 > n - head)
			return 0; /* each element takes 3 bytes at least: allocate only for what is here */
		v->type = k < 0 ? RESP_NIL : RESP_ARR;
		if (k <= 0)
			return (long)head;
		long r = resp_parse_arr(a, p + head, n - head, v, k, depth);
		return r <= 0 ? r : (long)head + r;
	default:
		return -EBADMSG;
	}
}

/* One reply at p: its length (> 0) with *v filled, 0 when it is not complete (the caller
 * resets the arena and tries again with more), -EBADMSG when it is not RESP (or beyond the
 * bounds), -ENOMEM. */
static long resp_parse(struct arena *a, const char *p, size_t n, struct resp_val *v)
{
	return resp_parse_at(a, p, n, v, 0);
}

/* ======================================================================== *
 * 9. tls_ — BearSSL trust anchors, client and server contexts.             *
 *                                                                          *
 * Anchors are decoded once (the system bundle at start, a provider's        *
 * ca_file at config load) into arena memory that lives as long as its       *
 * owner; so are the HTTPS listener's chain and key (tls_load_cred, which  *
 * also checks that they belong together). A tls_client (per upstream       *
 * connection) or tls_server (per HTTPS client) is malloc'd, never on a     *
 * stack (BearSSL's buffers are ~34 KB), and driven from ring completions   *
 * through the sendrec/recvrec/sendapp/recvapp pairs (up_ and conn_ pump   *
 * them; loop_send copies an answer into a server engine); br_sslio is      *
 * never used because it blocks.                                            *
 * ======================================================================== */

struct tls_anchors {
	br_x509_trust_anchor *ta; /* arena of the owner */
	size_t n;
};

/* insecure_skip_verify: accept the chain's key even if untrusted or misnamed. */
struct tls_noverify {
	const br_x509_class *vtable;
	br_x509_minimal_context *inner; /* borrowed: same tls_client */
};

struct tls_client {
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	struct tls_noverify nv;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

static void tls_nv_start_chain(const br_x509_class **ctx, const char *name)
{
	struct tls_noverify *nv = (struct tls_noverify *)ctx;
	nv->inner->vtable->start_chain(&nv->inner->vtable, name);
}

static void tls_nv_start_cert(const br_x509_class **ctx, uint32_t len)
{
	struct tls_noverify *nv = (struct tls_noverify *)ctx;
	nv->inner->vtable->start_cert(&nv->inner->vtable, len);
}

static void tls_nv_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct tls_noverify *nv = (struct tls_noverify *)ctx;
	nv->inner->vtable->append(&nv->inner->vtable, buf, len);
}

static void tls_nv_end_cert(const br_x509_class **ctx)
{
	struct tls_noverify *nv = (struct tls_noverify *)ctx;
	nv->inner->vtable->end_cert(&nv->inner->vtable);
}

static unsigned tls_nv_end_chain(const br_x509_class **ctx)
{
	struct tls_noverify *nv = (struct tls_noverify *)ctx;
	unsigned err = nv->inner->vtable->end_chain(&nv->inner->vtable);
	bool trust_only = err == BR_ERR_X509_NOT_TRUSTED || err == BR_ERR_X509_BAD_SERVER_NAME ||
			  err == BR_ERR_X509_EXPIRED;
	return trust_only ? 0 : err;
}

static const br_x509_pkey *tls_nv_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	const struct tls_noverify *nv = (const struct tls_noverify *)ctx;
	if (usages)
		*usages = nv->inner->key_usages;
	return &nv->inner->pkey;
}

static const br_x509_class tls_noverify_vtable = {
	sizeof(struct tls_noverify), tls_nv_start_chain, tls_nv_start_cert, tls_nv_append,
	tls_nv_end_cert, tls_nv_end_chain, tls_nv_get_pkey,
};

static void tls_collect(void *ctx, const void *p, size_t n)
{
	struct sb *s = ctx;
	sb_put(s, p, n);
}

static void *tls_dup(struct arena *a, const void *p, size_t n)
{
	void *d = arena_alloc(a, n ? n : 1, 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

/* Decode one DER certificate into a trust anchor in arena `a`: 0, -EINVAL (not
 * usable as an anchor: skipped) or -ENOMEM. */
static int tls_anchor_from_der(struct arena *a, const void *der, size_t n, br_x509_trust_anchor *ta)
{
	struct sb dn;
	br_x509_decoder_context dc;
	sb_init(&dn, a, 256);
	br_x509_decoder_init(&dc, tls_collect, &dn);
	br_x509_decoder_push(&dc, der, n);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
	if (dn.oom)
		return -ENOMEM;
	if (!pk)
		return -EINVAL;
	ta->dn.data = (unsigned char *)dn.p;
	ta->dn.len = dn.len;
	ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
	ta->pkey = *pk;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta->pkey.key.rsa.n = tls_dup(a, pk->key.rsa.n, pk->key.rsa.nlen);
		ta->pkey.key.rsa.e = tls_dup(a, pk->key.rsa.e, pk->key.rsa.elen);
		return ta->pkey.key.rsa.n && ta->pkey.key.rsa.e ? 0 : -ENOMEM;
	}
	if (pk->key_type == BR_KEYTYPE_EC) {
		ta->pkey.key.ec.q = tls_dup(a, pk->key.ec.q, pk->key.ec.qlen);
		return ta->pkey.key.ec.q ? 0 : -ENOMEM;
	}
	return -EINVAL;
}

/* Each object of a PEM file: fn(ctx, name, der, n); its nonzero result stops the walk. */
typedef int (*tls_pem_fn)(void *ctx, struct arena *a, const char *name, const void *der, size_t n);

static int tls_pem_each(struct arena *a, const char *what, const char *path, tls_pem_fn fn, void *ctx, char *err,
			size_t errlen)
{
	struct buf file = { .limit = 64u << 20 };
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	char tmp[65536];
	ssize_t r;
	while ((r = read(fd, tmp, sizeof(tmp))) > 0 && buf_append(&file, tmp, (size_t)r) == 0)
		;
	close(fd);
	buf_append(&file, "\n", 1);
	br_pem_decoder_context pc;
	struct sb der = { 0 };
	char name[128] = "";
	br_pem_decoder_init(&pc);
	const char *p = file.p;
	for (size_t left = file.len; left > 0 && !rc;) {
		size_t used = br_pem_decoder_push(&pc, p, left);
		p += used;
		left -= used;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			snprintf(name, sizeof(name), "%s", br_pem_decoder_name(&pc));
			sb_init(&der, a, 2048);
			br_pem_decoder_setdest(&pc, tls_collect, &der);
			break;
		case BR_PEM_END_OBJ:
			rc = der.oom ? -ENOMEM : fn(ctx, a, name, der.p, der.len);
			break;
		case BR_PEM_ERROR:
			snprintf(err, errlen, "%s %s is not valid PEM%s", what, path,
				 memmem(file.p, file.len, "ENCRYPTED", 9) ? " (an encrypted key: decrypt it first)" : "");
			rc = -EINVAL;
			break;
		}
	}
	buf_free(&file);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory loading %s", path);
	return rc;
}

struct tls_anchor_list {
	struct tls_anchors *out;
	size_t cap;
};

static int tls_anchor_add(void *ctx, struct arena *a, const char *name, const void *der, size_t n)
{
	struct tls_anchor_list *l = ctx;
	if (!strstr(name, "CERTIFICATE"))
		return 0;
	if (l->out->n == l->cap) {
		br_x509_trust_anchor *bigger = arena_new(a, br_x509_trust_anchor, l->cap * 2 + 16);
		if (!bigger)
			return -ENOMEM;
		if (l->cap)
			memcpy(bigger, l->out->ta, sizeof(*bigger) * l->cap);
		l->out->ta = bigger;
		l->cap = l->cap * 2 + 16;
	}
	int r = tls_anchor_from_der(a, der, n, &l->out->ta[l->out->n]);
	l->out->n += r == 0;
	return r == -ENOMEM ? r : 0;
}

/* Load every CERTIFICATE in a PEM file as an anchor. 0, or -errno with `err` filled. */
static int tls_load_anchors(struct arena *a, const char *path, struct tls_anchors *out,
			    char *err, size_t errlen)
{
	struct tls_anchor_list l = { out, 0 };
	*out = (struct tls_anchors){ 0 };
	int rc = tls_pem_each(a, "CA file", path, tls_anchor_add, &l, err, errlen);
	if (!rc && out->n == 0) {
		snprintf(err, errlen, "CA file %s holds no certificates", path);
		rc = -EINVAL;
	}
	return rc;
}

/* ---- the listener's side: certificate chain and key (tls.cert_file / tls.key_file) ---- */

struct tls_cred {
	br_x509_certificate *chain; /* arena: leaf first */
	size_t nchain, cap;
	int key_type;               /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC; 0 = no key found */
	br_rsa_private_key rsa;     /* arena copies of the key's parts */
	br_ec_private_key ec;
	int64_t not_after;          /* the leaf's notAfter, unix s; -1 unknown */
	char err[160];              /* a key the decoder refused */
	bool keys;                  /* loading: the key file's pass (keys only; the other takes certificates) */
};

/* One DER element at *p (< end): its tag, and its contents in [*body, *next). False if malformed. */
static bool tls_der(const unsigned char **p, const unsigned char *end, int *tag, const unsigned char **body)
{
	if (end - *p < 2)
		return false;
	*tag = (*p)[0];
	size_t len = (*p)[1], k = 2;
	if (len & 0x80) {
		size_t nb = len & 0x7f;
		if (nb == 0 || nb > 4 || (size_t)(end - *p) < 2 + nb)
			return false;
		len = 0;
		for (size_t i = 0; i < nb; i++)
			len = len << 8 | (*p)[2 + i];
		k += nb;
	}
	if (len > (size_t)(end - *p) - k)
		return false;
	*body = *p + k;
	*p = *body + len;
	return true;
}

/* A certificate's notAfter (unix s), or -1: TBSCertificate's validity, by a small DER walk. */
static int64_t tls_not_after(const unsigned char *d, size_t n)
{
	const unsigned char *p = d, *end = d + n, *b;
	int tag;
	if (!tls_der(&p, end, &tag, &b) || tag != 0x30) /* Certificate */
		return -1;
	p = b;
	if (!tls_der(&p, end, &tag, &b) || tag != 0x30) /* TBSCertificate */
		return -1;
	end = p;
	p = b;
	for (int field = 0; field < 5; field++) { /* [0] version, serial, signature, issuer, validity */
		const unsigned char *at = p;
		if (!tls_der(&p, end, &tag, &b))
			return -1;
		if (field == 0 && tag != 0xa0) { /* v1: no version field */
			p = at;
			continue;
		}
		if (field < 4)
			continue;
		const unsigned char *q = b, *t;
		if (!tls_der(&q, p, &tag, &t) || !tls_der(&q, p, &tag, &t) || (tag != 0x17 && tag != 0x18))
			return -1;
		size_t yl = tag == 0x17 ? 2 : 4;
		char z[16];
		if ((size_t)(q - t) < yl + 10 || (size_t)(q - t) >= sizeof(z))
			return -1;
		memcpy(z, t, (size_t)(q - t));
		z[q - t] = 0;
		struct tm tm = { 0 };
		int year = 0;
		if (sscanf(z, yl == 2 ? "%2d%2d%2d%2d%2d%2d" : "%4d%2d%2d%2d%2d%2d", &year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
			return -1;
		tm.tm_year = (yl == 2 ? (year < 50 ? 2000 + year : 1900 + year) : year) - 1900;
		tm.tm_mon--;
		return (int64_t)timegm(&tm);
	}
	return -1;
}

static int tls_cred_key(struct tls_cred *c, struct arena *a, const void *der, size_t n)
{
	br_skey_decoder_context dc;
	br_skey_decoder_init(&dc);
	br_skey_decoder_push(&dc, der, n);
	int e = br_skey_decoder_last_error(&dc);
	if (e || !br_skey_decoder_key_type(&dc)) {
		snprintf(c->err, sizeof(c->err), "the private key could not be decoded (BearSSL error %d)", e);
		return 0;
	}
	c->key_type = br_skey_decoder_key_type(&dc);
	if (c->key_type == BR_KEYTYPE_RSA) {
		const br_rsa_private_key *k = br_skey_decoder_get_rsa(&dc);
		c->rsa = *k;
		c->rsa.p = tls_dup(a, k->p, k->plen), c->rsa.q = tls_dup(a, k->q, k->qlen);
		c->rsa.dp = tls_dup(a, k->dp, k->dplen), c->rsa.dq = tls_dup(a, k->dq, k->dqlen);
		c->rsa.iq = tls_dup(a, k->iq, k->iqlen);
		return c->rsa.p && c->rsa.q && c->rsa.dp && c->rsa.dq && c->rsa.iq ? 0 : -ENOMEM;
	}
	const br_ec_private_key *k = br_skey_decoder_get_ec(&dc);
	c->ec = *k;
	c->ec.x = tls_dup(a, k->x, k->xlen);
	return c->ec.x ? 0 : -ENOMEM;
}

static int tls_cred_add(void *ctx, struct arena *a, const char *name, const void *der, size_t n)
{
	struct tls_cred *c = ctx;
	if (strstr(name, "ENCRYPTED")) {
		snprintf(c->err, sizeof(c->err), "the private key is encrypted: decrypt it first (openssl pkey -in KEY -out KEY.plain)");
		return 0;
	}
	if (strstr(name, "PRIVATE KEY"))
		return c->key_type || !c->keys ? 0 : tls_cred_key(c, a, der, n);
	if (c->keys || (strcmp(name, "CERTIFICATE") && strcmp(name, "X509 CERTIFICATE")))
		return 0; /* (one file given as both: its certificates are read once) */
	if (c->nchain == c->cap) {
		br_x509_certificate *bigger = arena_new(a, br_x509_certificate, c->cap * 2 + 4);
		if (!bigger)
			return -ENOMEM;
		if (c->cap)
			memcpy(bigger, c->chain, sizeof(*bigger) * c->cap);
		c->chain = bigger;
		c->cap = c->cap * 2 + 4;
	}
	c->chain[c->nchain].data = tls_dup(a, der, n);
	c->chain[c->nchain].data_len = n;
	if (c->nchain == 0)
		c->not_after = tls_not_after(der, n);
	return c->chain[c->nchain++].data ? 0 : -ENOMEM;
}

/* Does the leaf certificate carry the public half of the key? */
static bool tls_cred_match(const struct tls_cred *c)
{
	br_x509_decoder_context dc;
	br_x509_decoder_init(&dc, NULL, NULL);
	br_x509_decoder_push(&dc, c->chain[0].data, c->chain[0].data_len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
	if (!pk || pk->key_type != c->key_type)
		return false;
	if (c->key_type == BR_KEYTYPE_RSA) {
		unsigned char nbuf[1024];
		size_t nlen = br_rsa_compute_modulus_get_default()(NULL, &c->rsa);
		if (nlen == 0 || nlen > sizeof(nbuf) || br_rsa_compute_modulus_get_default()(nbuf, &c->rsa) != nlen)
			return false;
		const unsigned char *cn = pk->key.rsa.n;
		size_t cl = pk->key.rsa.nlen;
		while (cl > 0 && *cn == 0)
			cn++, cl--;
		return cl == nlen && !memcmp(cn, nbuf, nlen);
	}
	unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
	br_ec_public_key pub;
	return pk->key.ec.curve == c->ec.curve && br_ec_compute_pub(br_ec_get_default(), &pub, q, &c->ec) &&
	       pub.qlen == pk->key.ec.qlen && !memcmp(pub.q, pk->key.ec.q, pub.qlen);
}

/* Load and check the listener's chain and key into arena a. 0, or -1 with err filled. */
static int tls_load_cred(struct arena *a, const char *cert, const char *key, struct tls_cred *c, char *err,
			 size_t errlen)
{
	*c = (struct tls_cred){ .not_after = -1 };
	if (tls_pem_each(a, "certificate file", cert, tls_cred_add, c, err, errlen) ||
	    (c->keys = true, tls_pem_each(a, "key file", key, tls_cred_add, c, err, errlen)))
		return -1;
	if (!c->nchain)
		snprintf(err, errlen, "%s holds no certificate", cert);
	else if (!c->key_type)
		snprintf(err, errlen, "%s: %s", key, c->err[0] ? c->err : "no private key (PEM \"PRIVATE KEY\")");
	else if (c->key_type == BR_KEYTYPE_EC && c->ec.curve != BR_EC_secp256r1 && c->ec.curve != BR_EC_secp384r1)
		snprintf(err, errlen, "%s: EC keys must be on P-256 or P-384", key);
	else if (!tls_cred_match(c))
		snprintf(err, errlen, "the key in %s does not match the certificate in %s", key, cert);
	else
		return 0;
	return -1;
}

/* A server engine per connection (malloc'd, like tls_client: its buffers are ~33 KB). */
struct tls_server {
	br_ssl_server_context sc;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

/*
 * BearSSL's implementations for this CPU, chosen once: its "full" profiles and its default
 * seeder ask the CPU again at every connection (~14 cpuid, each a VM exit here: most of a
 * resumed handshake). Chosen at the first config load with a certificate (main thread).
 */
static struct {
	bool done;
	const br_block_ctr_class *ctr;
	br_ghash ghash;
	br_chacha20_run chacha;
	br_poly1305_run poly;
	const br_ec_impl *ec;
	br_ecdsa_sign ecdsa;
	br_rsa_private rsa;
	br_rsa_pkcs1_sign rsa_sign;
} tls_impl;

static void tls_impl_pick(void)
{
	if (tls_impl.done)
		return;
	tls_impl.ctr = br_aes_x86ni_ctr_get_vtable();
	tls_impl.ctr = tls_impl.ctr ? tls_impl.ctr : &br_aes_ct64_ctr_vtable;
	tls_impl.ghash = br_ghash_pclmul_get();
	tls_impl.ghash = tls_impl.ghash ? tls_impl.ghash : &br_ghash_ctmul64;
	tls_impl.chacha = br_chacha20_sse2_get();
	tls_impl.chacha = tls_impl.chacha ? tls_impl.chacha : &br_chacha20_ct_run;
	tls_impl.poly = br_poly1305_ctmulq_get();
	tls_impl.poly = tls_impl.poly ? tls_impl.poly : &br_poly1305_ctmul_run;
	tls_impl.ec = br_ec_get_default();
	tls_impl.ecdsa = br_ecdsa_sign_asn1_get_default();
	tls_impl.rsa = br_rsa_private_get_default();
	tls_impl.rsa_sign = br_rsa_pkcs1_sign_get_default();
	tls_impl.done = true;
}

/*
 * TLS 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305 only (our order wins: AES-128 first),
 * ALPN http/1.1, no renegotiation, sessions resumed from `cache`; seeded from getrandom.
 * False when no randomness could be had.
 */
static bool tls_server_start(struct tls_server *t, const struct tls_cred *c, br_ssl_session_cache_lru *cache)
{
	static const uint16_t rsa_suites[] = { BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 };
	static const uint16_t ec_suites[] = { BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 };
	static const struct { int id; const br_hash_class *h; } hashes[] = { { br_sha1_ID, &br_sha1_vtable },
		{ br_sha224_ID, &br_sha224_vtable }, { br_sha256_ID, &br_sha256_vtable },
		{ br_sha384_ID, &br_sha384_vtable }, { br_sha512_ID, &br_sha512_vtable } };
	static const char *alpn[] = { "http/1.1" };
	br_ssl_engine_context *eng = &t->sc.eng;
	unsigned char seed[32];
	bool rsa = c->key_type == BR_KEYTYPE_RSA;
	tls_impl_pick(); /* (done already when a config with a certificate was loaded) */
	br_ssl_server_zero(&t->sc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(eng, rsa ? rsa_suites : ec_suites, 3);
	br_ssl_engine_set_ec(eng, tls_impl.ec);
	if (rsa)
		br_ssl_server_set_single_rsa(&t->sc, c->chain, c->nchain, &c->rsa, BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN,
					     tls_impl.rsa, tls_impl.rsa_sign);
	else
		br_ssl_server_set_single_ec(&t->sc, c->chain, c->nchain, &c->ec, BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN,
					    BR_KEYTYPE_EC, tls_impl.ec, tls_impl.ecdsa);
	for (size_t i = 0; i < ARRAY_LEN(hashes); i++)
		br_ssl_engine_set_hash(eng, hashes[i].id, hashes[i].h);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	br_ssl_engine_set_gcm(eng, &br_sslrec_in_gcm_vtable, &br_sslrec_out_gcm_vtable);
	br_ssl_engine_set_aes_ctr(eng, tls_impl.ctr);
	br_ssl_engine_set_ghash(eng, tls_impl.ghash);
	br_ssl_engine_set_chapol(eng, &br_sslrec_in_chapol_vtable, &br_sslrec_out_chapol_vtable);
	br_ssl_engine_set_chacha20(eng, tls_impl.chacha);
	br_ssl_engine_set_poly1305(eng, tls_impl.poly);
	br_ssl_engine_set_protocol_names(eng, alpn, 1);
	br_ssl_engine_set_buffer(eng, t->iobuf, sizeof(t->iobuf), 1);
	br_ssl_engine_add_flags(eng, BR_OPT_NO_RENEGOTIATION | BR_OPT_ENFORCE_SERVER_PREFERENCES);
	if (cache)
		br_ssl_server_set_cache(&t->sc, &cache->vtable);
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		return false;
	br_ssl_engine_inject_entropy(eng, seed, sizeof(seed));
	eng->rng_os_rand_done = 1; /* seeded: BearSSL's own seeder would probe the CPU again */
	return br_ssl_server_reset(&t->sc) != 0;
}

/* Prepare a client engine for `host`; `sess` (if non-NULL) is tried for resumption. */
static void tls_client_start(struct tls_client *t, const struct tls_anchors *ta, bool insecure,
			     const char *host, const br_ssl_session_parameters *sess)
{
	br_ssl_client_init_full(&t->cc, &t->xc, ta->ta, ta->n);
	if (insecure) {
		t->nv.vtable = &tls_noverify_vtable;
		t->nv.inner = &t->xc;
		br_ssl_engine_set_x509(&t->cc.eng, &t->nv.vtable);
	}
	br_ssl_engine_set_buffer(&t->cc.eng, t->iobuf, sizeof(t->iobuf), 1);
	if (sess)
		br_ssl_engine_set_session_parameters(&t->cc.eng, sess);
	br_ssl_client_reset(&t->cc, host, sess != NULL);
}

static const char *tls_error_text(int err)
{
	switch (err) {
	case BR_ERR_X509_NOT_TRUSTED: return "certificate not trusted (unknown CA)";
	case BR_ERR_X509_BAD_SERVER_NAME: return "certificate does not match the host name";
	case BR_ERR_X509_EXPIRED: return "certificate expired or not yet valid";
	case BR_ERR_BAD_VERSION: return "server does not speak TLS 1.2 (BearSSL's maximum)";
	case BR_ERR_NO_CLIENT_AUTH: return "server requires a client certificate";
	default:
		if (err >= BR_ERR_RECV_FATAL_ALERT)
			return "server sent a fatal alert";
		if (err >= BR_ERR_SEND_FATAL_ALERT)
			return "handshake failed";
		return err >= 32 ? "certificate rejected" : "protocol error";
	}
}

/* ======================================================================== *
 * 10. cfg_/dns_ — config.json: load, validate, publish; the DNS table.      *
 *                                                                          *
 * A `struct cfg` is immutable once published and lives in its own arena.    *
 * Workers hold it through a reference count (cfg_get/cfg_put); SIGHUP      *
 * builds a new one and swaps the global pointer, so requests in flight     *
 * finish on the config they started with. The loader collects every        *
 * problem (for `bifrost check`) instead of stopping at the first. Every    *
 * object is read through cfg_obj: a field it does not know is a problem   *
 * naming its JSON path and the closest known name; the original Bifrost's *
 * unimplemented fields pass with one warning each.                         *
 * The DNS table (dns_) lives beside it: entries outlive configs, readers   *
 * copy addresses under a seqlock, only the main thread resolves.           *
 * ======================================================================== */

enum dialect { D_OPENAI, D_ANTHROPIC };

struct prov_kind {
	const char *name, *base_url, *env_key;
	enum dialect dialect;
	bool responses; /* serves OpenAI's Responses API (/v1/responses) itself */
	bool bedrock;   /* AWS Bedrock: Anthropic models by InvokeModel (Messages bodies, their events
			 * in eventstream frames), others by Converse; SigV4 or a Bedrock API key */
};

static const struct prov_kind prov_kinds[] = {
	{ "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", D_OPENAI, true, false },
	{ "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", D_ANTHROPIC, false, false },
	{ "gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY",
	  D_OPENAI, false, false },
	{ "groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", D_OPENAI, false, false },
	{ "mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", D_OPENAI, false, false },
	{ "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", D_OPENAI, false, false },
	{ "ollama", "http://127.0.0.1:11434/v1", NULL, D_OPENAI, false, false },
	{ "deepseek", "https://api.deepseek.com/v1", NULL, D_OPENAI, false, false },
	{ "xai", "https://api.x.ai/v1", NULL, D_OPENAI, false, false },
	{ "together", "https://api.together.xyz/v1", NULL, D_OPENAI, false, false },
	{ "fireworks", "https://api.fireworks.ai/inference/v1", NULL, D_OPENAI, false, false },
	{ "vllm", "http://127.0.0.1:8000/v1", NULL, D_OPENAI, false, false },
	{ "azure", NULL, NULL, D_OPENAI, true, false },
	{ "bedrock", NULL, NULL, D_ANTHROPIC, false, true },
};

static const struct prov_kind *cfg_prov_kind(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(prov_kinds); i++)
		if (strcmp(prov_kinds[i].name, name) == 0)
			return &prov_kinds[i];
	return NULL;
}

#define DNS_MAX 256
#define DNS_ADDRS 4

struct dns_entry {
	char host[256];
	int port;
	_Atomic uint32_t seq; /* seqlock: odd while the main thread writes */
	int n;                /* addresses; 0 = unresolved */
	struct sockaddr_storage addr[DNS_ADDRS];
	socklen_t len[DNS_ADDRS];
	char err[128]; /* last resolver error, for 502 messages */
	uint64_t next_ns; /* main thread only: next refresh */
};

static struct dns_entry dns_table[DNS_MAX];
static _Atomic int dns_count;

struct kv {
	const char *k, *v; /* config arena */
};

struct prov_key {
	const char *value;   /* config arena */
	unsigned weight;     /* thousandths: "weight": 0.75 is 750, 2 is 2000 */
	const char **models; /* globs of the models this key serves; NULL = all */
	int nmodels;
};

/* Circuit breaker of one provider key, shared by all workers (lives as long as
 * the config). Closed: open_until_ms == 0. Open: skipped until open_until_ms.
 * Half-open after that: the one request whose CAS pushes open_until_ms a
 * cooldown ahead is the probe; if its verdict never comes (client gone), the
 * next cooldown simply admits another probe, so a probe can't be lost. */
struct breaker {
	_Atomic int fails;
	_Atomic int64_t open_until_ms;
};

struct cb_conf {
	int fails;          /* consecutive failures that open the circuit */
	long cooldown_ms;   /* how long it stays open before a probe */
};

struct provider {
	const char *name;              /* config arena: routing prefix */
	const struct prov_kind *kind;  /* static table */
	struct prov_key *keys;         /* config arena */
	int nkeys;
	unsigned weight;               /* thousandths, like prov_key.weight */
	bool tls;
	const char *host, *host_hdr, *base_path; /* from base_url; config arena */
	int port;
	struct dns_entry *dns;         /* global table, outlives the config */
	const char **models;           /* globs; NULL means "*" */
	int nmodels;
	struct kv *model_map;
	int nmap;
	struct kv *headers;
	int nheaders;
	struct kv *deployments;        /* azure: model → deployment */
	int ndeploy;
	const char *api_version;       /* azure */
	const char *region, *akid, *secret, *session_token; /* bedrock (SigV4 when akid is set) */
	long connect_timeout_ms;       /* TCP (and TLS) connect */
	long timeout_ms;               /* request sent → response head (whole answer unless streamed) */
	long stream_idle_timeout_ms;   /* silence between stream events */
	long total_timeout_ms;         /* one attempt, start to last byte; 0 = none */
	int max_retries;
	const struct tls_anchors *anchors; /* config arena or the global system set */
	bool insecure;
	struct breaker *brk;           /* config arena: one per key (at least one) */
};

struct cfg {
	struct arena arena; /* owns everything below */
	_Atomic int refs;
	char *text;         /* owned (malloc): the file, tokens point into it */
	const char *listen;
	int workers;
	const char *data_dir, *admin_token;
	const char *admin_user, *admin_hash; /* people's login: name and PBKDF2 hash (mgmt_pw_*) */
	const char *tls_listen; /* the HTTPS listener, or NULL */
	struct tls_cred *tls;   /* config arena: its certificate chain and key */
	bool logs_on;       /* the request log store (data_dir/logs.db) */
	long logs_days;     /* retention by age ... */
	int64_t logs_bytes; /* ... and by size */
	bool logs_content;  /* request and response bodies kept too ... */
	size_t logs_content_max; /* ... each cut at this many bytes */
	size_t max_body, max_header, max_response, max_json_tokens;
	long header_timeout_ms, idle_timeout_ms;
	long body_timeout_ms; /* the whole body, from the end of the head (slow senders) */
	long send_timeout_ms; /* a client that takes no byte of an answer for this long is cut */
	long stream_ping_ms; /* a stream silent this long gets a ping (Claude Code gives up at 300 s) */
	bool log_requests;
	struct provider *prov;
	int nprov;
	const char **fallbacks;
	int nfallbacks;
	struct cb_conf cb;
	const char *source; /* "path" or "environment" */
	struct cfg_cluster *cluster; /* config arena, or NULL: one node alone */
	struct gov *gov;    /* config arena: governance + pricing (gov_cfg) */
	bool governed;      /* a governance block or a provider budget: admission and charges run */
};

static _Atomic(struct cfg *) cfg_current;
static _Atomic uint32_t cfg_generation;
static struct arena sys_arena; /* process-lifetime: system trust anchors */
static struct tls_anchors sys_anchors;
static bool sys_anchors_tried;
static char sys_anchors_err[256];

static void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	arena_reset(&c->arena);
	free(c->text);
	free(c);
}

/* Taken (briefly) by cfg_get and by whoever publishes a new config: a reference is never
 * taken on a config whose last one is being dropped. Not on the request path (workers take a
 * reference once per config generation). */
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;

static struct cfg *cfg_get(void)
{
	pthread_mutex_lock(&cfg_lock);
	struct cfg *c = atomic_load_explicit(&cfg_current, memory_order_acquire);
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&cfg_lock);
	return c;
}

static void cfg_put(struct cfg *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		cfg_free(c);
}

/* The loader's scratch: the JSON being read and the problems found. */
struct cfg_ld {
	struct cfg *c;
	struct json j;
	struct sb errs;
	int nerr;
};

__attribute__((format(printf, 2, 3))) static void cfg_problem(struct cfg_ld *L, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sb_printf(&L->errs, "  - %s\n", msg);
	L->nerr++;
}

/*
 * Look up `keys` (the fields this gateway reads) in the object at `tok`, whose JSON
 * path is `path` ("" at the top). Every other field is a problem naming its path and
 * the closest known name, except those in `foreign` (NULL-terminated): fields of the
 * original Bifrost's config that this gateway does not implement, accepted with one
 * warning each so people can bring their file. false if the object is unusable.
 */
static bool cfg_obj(struct cfg_ld *L, int tok, const char *path, const char *const *keys, int nkeys,
		    const char *const *foreign, int *v)
{
	const char *sep = *path ? "." : "";
	int rc = json_obj_get(&L->j, tok, keys, nkeys, v, NULL);
	if (rc == -EINVAL)
		cfg_problem(L, "%s must be an object", *path ? path : "the config");
	else if (rc)
		cfg_problem(L, "%s: duplicate key", *path ? path : "the config");
	if (rc)
		return false;
	for (int n = 0, i = tok + 1; n < L->j.tok[tok].size; n++, i = json_skip(&L->j, i + 1)) {
		char kb[64], shown[72];
		struct str key = { L->j.s + L->j.tok[i].start, (size_t)(L->j.tok[i].end - L->j.tok[i].start) };
		if (memchr(key.p, '\\', key.n))
			key = json_key_unescape(key, kb, sizeof(kb));
		bool known = false;
		for (int k = 0; k < nkeys && !known; k++)
			known = str_eq(key, keys[k]);
		for (int k = 0; foreign && foreign[k] && !known; k++)
			if (str_eq(key, foreign[k])) {
				fprintf(stderr, "bifrost: warning: %s%s%s: not implemented by this gateway, ignored\n",
					path, sep, foreign[k]);
				known = true;
			}
		if (known)
			continue;
		size_t sn = 0; /* the key as shown: printable, bounded */
		for (size_t q = 0; q < key.n && sn < 64; q++)
			shown[sn++] = key.p[q] > 0x20 && key.p[q] < 0x7f ? key.p[q] : '?';
		shown[sn] = 0;
		int best = INT_MAX, bk = -1;
		for (int k = 0; k < nkeys; k++) {
			int d = word_distance(key.p, key.n, keys[k]);
			if (d < best)
				best = d, bk = k;
		}
		int allowed = strlen(shown) <= 4 ? 1 : strlen(shown) <= 8 ? 2 : 3;
		if (bk >= 0 && best <= allowed)
			cfg_problem(L, "%s%s%s: unknown field (did you mean \"%s\"?)", path, sep, shown, keys[bk]);
		else
			cfg_problem(L, "%s%s%s: unknown field", path, sep, shown);
	}
	return true;
}

/* A string value, with "env.NAME" read from the environment. NULL if not a string. */
static const char *cfg_str(struct cfg_ld *L, int tok, const char *what)
{
	if (tok < 0)
		return NULL;
	const char *s = json_str(&L->j, &L->c->arena, tok, NULL);
	if (!s) {
		cfg_problem(L, "%s must be a string", what);
		return NULL;
	}
	if (strncmp(s, "env.", 4) == 0) {
		const char *v = getenv(s + 4);
		if (!v) {
			fprintf(stderr, "bifrost: warning: %s: environment variable %s is not set\n", what, s + 4);
			v = "";
		}
		s = arena_strndup(&L->c->arena, v, strlen(v));
	}
	return s;
}

static long long cfg_num(struct cfg_ld *L, int tok, long long dflt, long long lo, long long hi,
			 const char *what)
{
	if (tok < 0)
		return dflt;
	struct str r = json_raw(&L->j, tok);
	if (L->j.tok[tok].type == JSMN_STRING) { /* "env.X" numbers */
		const char *s = cfg_str(L, tok, what);
		char *end;
		long long v = s ? strtoll(s, &end, 10) : 0;
		if (!s || !*s || *end)
			cfg_problem(L, "%s must be a number", what);
		else if (v < lo || v > hi)
			cfg_problem(L, "%s must be between %lld and %lld", what, lo, hi);
		return v >= lo && v <= hi ? v : dflt; /* the config is refused; callers never see v */
	}
	if (L->j.tok[tok].type != JSMN_PRIMITIVE || !json_number_ok(r.p, r.n) ||
	    strcspn(r.p, ".eE,}] \t\r\n") < r.n) {
		cfg_problem(L, "%s must be a whole number", what);
		return dflt;
	}
	long long v = json_int(&L->j, tok, dflt);
	if (v < lo || v > hi)
		cfg_problem(L, "%s must be between %lld and %lld", what, lo, hi);
	return v >= lo && v <= hi ? v : dflt; /* out of range: refused, and no arithmetic on it */
}

/* A relative weight: a whole or decimal number (Bifrost writes 0.75), kept in
 * thousandths so 0.75 : 0.25 and 3 : 1 mean the same. */
static unsigned cfg_weight(struct cfg_ld *L, int tok, const char *what)
{
	if (tok < 0)
		return 1000;
	struct str r = json_raw(&L->j, tok);
	char tmp[40], *end;
	if (L->j.tok[tok].type != JSMN_PRIMITIVE || !json_number_ok(r.p, r.n) || r.n >= sizeof(tmp)) {
		cfg_problem(L, "%s must be a number", what);
		return 1000;
	}
	memcpy(tmp, r.p, r.n);
	tmp[r.n] = 0;
	double d = strtod(tmp, &end);
	if (!(d >= 0 && d <= 1000000)) {
		cfg_problem(L, "%s must be between 0 and 1000000", what);
		return 1000;
	}
	unsigned w = (unsigned)(d * 1000 + 0.5);
	return w || d == 0 ? w : 1; /* a tiny positive weight still counts */
}

static bool cfg_bool(struct cfg_ld *L, int tok, bool dflt, const char *what)
{
	if (tok < 0)
		return dflt;
	struct str r = json_raw(&L->j, tok);
	if (str_eq(r, "true") || str_eq(r, "false"))
		return r.p[0] == 't';
	cfg_problem(L, "%s must be true or false", what);
	return dflt;
}

/* An array of strings (or one string) into a NULL-free arena array. */
static const char **cfg_strs(struct cfg_ld *L, int tok, int *n, const char *what)
{
	*n = 0;
	if (tok < 0)
		return NULL;
	jsmntok_t *t = &L->j.tok[tok];
	if (t->type == JSMN_STRING) {
		const char **v = arena_new(&L->c->arena, const char *, 1);
		if (v && (v[0] = cfg_str(L, tok, what)))
			*n = 1;
		return v;
	}
	if (t->type != JSMN_ARRAY) {
		cfg_problem(L, "%s must be an array of strings", what);
		return NULL;
	}
	const char **v = arena_new(&L->c->arena, const char *, t->size + 1);
	for (int k = 0, i = tok + 1; v && k < t->size; k++, i = json_skip(&L->j, i)) {
		const char *s = cfg_str(L, i, what);
		if (s)
			v[(*n)++] = s;
	}
	return v;
}

/* An object of string → string. */
static struct kv *cfg_map(struct cfg_ld *L, int tok, int *n, const char *what)
{
	*n = 0;
	if (tok < 0)
		return NULL;
	jsmntok_t *t = &L->j.tok[tok];
	if (t->type != JSMN_OBJECT) {
		cfg_problem(L, "%s must be an object of strings", what);
		return NULL;
	}
	struct kv *v = arena_new(&L->c->arena, struct kv, t->size + 1);
	for (int k = 0, i = tok + 1; v && k < t->size; k++, i = json_skip(&L->j, i + 1)) {
		v[*n].k = json_str(&L->j, &L->c->arena, i, NULL);
		v[*n].v = cfg_str(L, i + 1, what);
		if (v[*n].k && v[*n].v)
			(*n)++;
	}
	return v;
}

/* Split "http[s]://host[:port][/path]". 0 or -EINVAL. */
static int cfg_parse_url(struct arena *a, const char *url, struct provider *p)
{
	const char *h;
	if (strncmp(url, "https://", 8) == 0) {
		p->tls = true;
		h = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		p->tls = false;
		h = url + 7;
	} else {
		return -EINVAL;
	}
	const char *slash = strchr(h, '/'), *end = slash ? slash : h + strlen(h);
	const char *colon = NULL;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (!rb)
			return -EINVAL;
		p->host = arena_strndup(a, h + 1, (size_t)(rb - h - 1));
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		p->host = arena_strndup(a, h, (size_t)((colon ? colon : end) - h));
	}
	p->port = p->tls ? 443 : 80;
	if (colon) {
		char *e;
		long port = strtol(colon + 1, &e, 10);
		if (e != end || port < 1 || port > 65535)
			return -EINVAL;
		p->port = (int)port;
	}
	p->host_hdr = arena_strndup(a, h, (size_t)(end - h));
	size_t plen = slash ? strlen(slash) : 0;
	while (plen > 0 && slash[plen - 1] == '/')
		plen--;
	p->base_path = arena_strndup(a, slash ? slash : "", plen);
	return p->host && p->host[0] ? 0 : -EINVAL;
}

static struct dns_entry *dns_lookup_entry(const char *host, int port);

enum clu_down { CLU_DOWN_SHARE, CLU_DOWN_ALLOW, CLU_DOWN_DENY };

struct cfg_cluster {
	const char *host, *user, *pass, *prefix, *node; /* config arena; node NULL: host name + port */
	int port, db;
	bool tls, insecure;                 /* rediss://; tls.insecure_skip_verify */
	const struct tls_anchors *anchors;  /* tls.ca_file's, or the system's */
	enum clu_down down; /* what admission does while Redis cannot be reached */
	long timeout_ms;    /* an admission waits this long for Redis, then counts it as down */
};

/* redis[s]://[user:password@]host[:port][/db] */
static int cfg_redis_url(struct arena *a, const char *url, struct cfg_cluster *c)
{
	c->tls = strncmp(url, "rediss://", 9) == 0;
	if (strncmp(url, "redis://", 8) != 0 && !c->tls)
		return -EINVAL;
	const char *h = url + 8 + c->tls, *at = strrchr(h, '@'), *slash;
	if (at) {
		const char *colon = memchr(h, ':', (size_t)(at - h));
		c->user = colon && colon > h ? arena_strndup(a, h, (size_t)(colon - h)) : NULL;
		c->pass = arena_strndup(a, colon ? colon + 1 : h, (size_t)(at - (colon ? colon + 1 : h)));
		h = at + 1;
	}
	slash = strchr(h, '/');
	const char *end = slash ? slash : h + strlen(h), *colon = memchr(h, ':', (size_t)(end - h));
	c->host = arena_strndup(a, h, (size_t)((colon ? colon : end) - h));
	c->port = 6379;
	char *e;
	if (colon) {
		long port = strtol(colon + 1, &e, 10);
		if (e != end || port < 1 || port > 65535)
			return -EINVAL;
		c->port = (int)port;
	}
	if (slash && slash[1]) {
		long db = strtol(slash + 1, &e, 10);
		if (*e || db < 0 || db > 1000)
			return -EINVAL;
		c->db = (int)db;
	}
	return c->host && *c->host ? 0 : -EINVAL;
}

/* The system's CA bundle, loaded once (a warning naming `who` when there is none). */
static const struct tls_anchors *cfg_sys_anchors(const char *who)
{
	if (!sys_anchors_tried) {
		static const char *const bundles[] = { "/etc/ssl/certs/ca-certificates.crt",
			"/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem" };
		sys_anchors_tried = true;
		for (size_t i = 0; i < ARRAY_LEN(bundles) && sys_anchors.n == 0; i++)
			if (access(bundles[i], R_OK) == 0)
				tls_load_anchors(&sys_arena, bundles[i], &sys_anchors, sys_anchors_err,
						 sizeof(sys_anchors_err));
		if (sys_anchors.n == 0 && !sys_anchors_err[0])
			snprintf(sys_anchors_err, sizeof(sys_anchors_err), "no system CA bundle found");
	}
	if (sys_anchors.n == 0)
		fprintf(stderr, "bifrost: warning: %s: %s; set tls.ca_file\n", who, sys_anchors_err);
	return &sys_anchors;
}

static void cfg_provider_tls(struct cfg_ld *L, struct provider *p, int tok, const char *ppath)
{
	static const char *const keys[] = { "ca_file", "insecure_skip_verify" };
	int v[2];
	char path[200];
	snprintf(path, sizeof(path), "%.190s.tls", ppath);
	if (tok >= 0 && !cfg_obj(L, tok, path, keys, 2, NULL, v))
		return;
	p->insecure = tok >= 0 && cfg_bool(L, v[1], false, "tls.insecure_skip_verify");
	const char *ca = tok >= 0 ? cfg_str(L, v[0], "tls.ca_file") : NULL;
	if (ca && *ca) {
		char err[256];
		struct tls_anchors *ta = arena_new(&L->c->arena, struct tls_anchors, 1);
		if (!ta || tls_load_anchors(&L->c->arena, ca, ta, err, sizeof(err)) != 0)
			cfg_problem(L, "provider %s: %s", p->name, ta ? err : "out of memory");
		p->anchors = ta;
		return;
	}
	if (p->tls)
		p->anchors = cfg_sys_anchors(p->name);
}

/* Bifrost's per-key fields for other clouds: accepted, unused here. */
static const char *const cfg_key_foreign[] = { "id", "name", "azure_key_config", "vertex_key_config",
					       "bedrock_key_config", NULL };

static void cfg_provider_keys(struct cfg_ld *L, struct provider *p, int keys_tok, const char *apikey,
			      const char *ppath)
{
	jsmntok_t *t = keys_tok >= 0 ? &L->j.tok[keys_tok] : NULL;
	int cap = (t && t->type == JSMN_ARRAY ? t->size : 0) + 1;
	p->keys = arena_new(&L->c->arena, struct prov_key, cap);
	if (!p->keys)
		return;
	if (apikey)
		p->keys[p->nkeys++] = (struct prov_key){ .value = apikey, .weight = 1000 };
	if (!t)
		return;
	if (t->type != JSMN_ARRAY) {
		cfg_problem(L, "provider %s: keys must be an array", p->name);
		return;
	}
	static const char *const names[] = { "value", "weight", "models" };
	for (int k = 0, i = keys_tok + 1; k < t->size; k++, i = json_skip(&L->j, i)) {
		int v[3];
		char path[192];
		snprintf(path, sizeof(path), "%s.keys[%d]", ppath, k);
		if (!cfg_obj(L, i, path, names, 3, cfg_key_foreign, v))
			continue;
		if (v[0] < 0) {
			cfg_problem(L, "%s.value is required", path);
			continue;
		}
		struct prov_key *pk = &p->keys[p->nkeys];
		pk->value = cfg_str(L, v[0], "keys[].value");
		pk->weight = cfg_weight(L, v[1], "keys[].weight");
		pk->models = cfg_strs(L, v[2], &pk->nmodels, "keys[].models");
		if (pk->value && *pk->value && pk->weight > 0)
			p->nkeys++;
	}
}

enum { PF_NAME, PF_PROVIDER, PF_APIKEY, PF_KEYS, PF_WEIGHT, PF_BASE_URL, PF_MODELS, PF_MODEL_MAP,
       PF_TIMEOUT, PF_CONNECT_TIMEOUT, PF_STREAM_IDLE, PF_TOTAL_TIMEOUT, PF_RETRIES, PF_HEADERS, PF_TLS,
       PF_API_VERSION, PF_DEPLOYMENTS, PF_NETWORK, PF_BUDGET, PF_REGION, PF_AKID, PF_SECRET, PF_TOKEN, PF_N };

static const char *const pf_names[PF_N] = {
	"name", "provider", "apiKey", "keys", "weight", "base_url", "models", "model_map",
	"timeout_ms", "connect_timeout_ms", "stream_idle_timeout_ms", "total_timeout_ms", "max_retries",
	"headers", "tls", "api_version", "deployments", "network_config", "budget",
	"region", "access_key_id", "secret_access_key", "session_token",
};

/* The original Bifrost's provider fields that this gateway does not implement. */
static const char *const cfg_prov_foreign[] = { "concurrency_and_buffer_size", "proxy_config",
	"send_back_raw_response", "custom_provider_config", "meta_config", NULL };
static const char *const cfg_net_foreign[] = { "retry_backoff_initial_ms", "retry_backoff_max_ms",
	"default_request_timeout_in_ms", NULL };

/* Header names and values go onto the wire as they are: no CR, LF or other controls. */
static void cfg_headers_ok(struct cfg_ld *L, const struct kv *h, int n, const char *path)
{
	for (int i = 0; i < n; i++) {
		bool ok = h[i].k[0] != 0;
		for (const char *q = h[i].k; *q && ok; q++)
			ok = *q > 0x20 && *q < 0x7f && *q != ':';
		for (const unsigned char *q = (const unsigned char *)h[i].v; *q && ok; q++)
			ok = *q >= 0x20 ? *q != 0x7f : *q == '\t';
		if (!ok)
			cfg_problem(L, "%s: header \"%.64s\" has a name or value with control characters (CR, LF, ...)",
				    path, h[i].k);
	}
}

/* An environment variable that is set and not empty, else NULL. */
static const char *cfg_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* AWS_REGION, else AWS_DEFAULT_REGION (as the AWS SDKs read them), else NULL. */
static const char *cfg_aws_region(void)
{
	return cfg_env("AWS_REGION") ? cfg_env("AWS_REGION") : cfg_env("AWS_DEFAULT_REGION");
}

/* AWS credentials a zero-config start can use: an access key pair, or a Bedrock API key. */
static bool cfg_aws_keys(void)
{
	return (cfg_env("AWS_ACCESS_KEY_ID") && cfg_env("AWS_SECRET_ACCESS_KEY")) || cfg_env("AWS_BEARER_TOKEN_BEDROCK");
}

/* A Bedrock provider's region and credentials: the fields, else AWS_REGION (AWS_DEFAULT_REGION)
 * and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN — unless apiKey (a Bedrock
 * API key, sent as a bearer token) is given. Returns the default base URL: the region's, or
 * AWS_ENDPOINT_URL_BEDROCK_RUNTIME (else AWS_ENDPOINT_URL) when set. */
static const char *cfg_bedrock(struct cfg_ld *L, struct provider *p, const int *f)
{
	p->region = f[PF_REGION] >= 0 ? cfg_str(L, f[PF_REGION], "region") : cfg_aws_region();
	p->akid = cfg_str(L, f[PF_AKID], "access_key_id");
	p->secret = cfg_str(L, f[PF_SECRET], "secret_access_key");
	p->session_token = cfg_str(L, f[PF_TOKEN], "session_token");
	if (f[PF_APIKEY] < 0 && f[PF_KEYS] < 0 && f[PF_AKID] < 0 && f[PF_SECRET] < 0) {
		p->akid = getenv("AWS_ACCESS_KEY_ID");
		p->secret = getenv("AWS_SECRET_ACCESS_KEY");
		p->session_token = f[PF_TOKEN] >= 0 ? p->session_token : getenv("AWS_SESSION_TOKEN");
	}
	if (p->session_token && !*p->session_token)
		p->session_token = NULL;
	if (!p->region || !*p->region || strspn(p->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(p->region)) {
		cfg_problem(L, "provider %s: region is required (e.g. \"us-east-1\"; or set AWS_REGION)", p->name);
		return NULL;
	}
	if (f[PF_APIKEY] < 0 && f[PF_KEYS] < 0 && (!p->akid || !*p->akid || !p->secret || !*p->secret))
		cfg_problem(L, "provider %s: Bedrock needs access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID "
			    "and AWS_SECRET_ACCESS_KEY), or apiKey (a Bedrock API key)", p->name);
	for (const char *const *v = (const char *const[]){ p->akid, p->secret, p->session_token, NULL }; *v; v++)
		if (strpbrk(*v, "\r\n"))
			cfg_problem(L, "provider %s: an AWS credential contains CR or LF", p->name);
	if (p->akid && !*p->akid)
		p->akid = NULL;
	/* The AWS SDKs' endpoint overrides (a VPC endpoint, a proxy, a local mock) */
	const char *env_url = cfg_env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME");
	if (env_url || (env_url = cfg_env("AWS_ENDPOINT_URL")))
		return env_url;
	char *url = arena_alloc(&L->c->arena, strlen(p->region) + 48, 1);
	if (url)
		sprintf(url, "https://bedrock-runtime.%s.amazonaws.com", p->region);
	return url;
}

/* One provider entry at `path`; `map_name` is the key in the map form (else NULL). */
static void cfg_provider(struct cfg_ld *L, int tok, const char *map_name, struct provider *p, const char *path)
{
	int f[PF_N];
	struct arena *a = &L->c->arena;
	if (!cfg_obj(L, tok, path, pf_names, PF_N, cfg_prov_foreign, f))
		return;
	const char *kind = cfg_str(L, f[PF_PROVIDER], "provider");
	p->name = f[PF_NAME] >= 0 ? cfg_str(L, f[PF_NAME], "name") : map_name ? map_name : kind;
	if (!kind)
		kind = map_name;
	if (!kind || !p->name || !*p->name) {
		cfg_problem(L, "providers: an entry needs \"provider\" (openai, anthropic, ...)");
		return;
	}
	if (strchr(p->name, '/'))
		cfg_problem(L, "provider %s: name must not contain '/'", p->name);
	p->kind = cfg_prov_kind(kind);
	if (!p->kind) {
		cfg_problem(L, "provider %s: unknown provider kind \"%s\"", p->name, kind);
		return;
	}
	/* network_config is the original Bifrost's home for these */
	int net[4] = { -1, -1, -1, -1 };
	static const char *const netk[] = { "base_url", "extra_headers",
		"default_request_timeout_in_seconds", "max_retries" };
	char sub[192];
	snprintf(sub, sizeof(sub), "%s.network_config", path);
	if (f[PF_NETWORK] >= 0)
		cfg_obj(L, f[PF_NETWORK], sub, netk, 4, cfg_net_foreign, net);
	const char *url = cfg_str(L, f[PF_BASE_URL] >= 0 ? f[PF_BASE_URL] : net[0], "base_url");
	if (!url || !*url)
		url = p->kind->bedrock ? cfg_bedrock(L, p, f) : p->kind->base_url;
	else if (p->kind->bedrock)
		cfg_bedrock(L, p, f);
	if (!url) { /* (Bedrock's is made from its region, whose absence was said) */
		if (!p->kind->bedrock)
			cfg_problem(L, "provider %s: base_url is required for kind %s", p->name, kind);
	} else if (strcspn(url, "@") < strcspn(url + MIN(strlen(url), 8), "/") + MIN(strlen(url), 8))
		cfg_problem(L, "provider %s: base_url must not carry credentials (user:password@); use apiKey "
			    "or headers", p->name); /* the URL is not printed: it holds a secret */
	else if (cfg_parse_url(a, url, p) != 0)
		cfg_problem(L, "provider %s: base_url \"%.200s\" is not http(s)://host[:port][/path]", p->name,
			    strchr(url, '@') ? "(not shown: it has an '@')" : url);
	cfg_provider_keys(L, p, f[PF_KEYS], cfg_str(L, f[PF_APIKEY], "apiKey"), path);
	for (int i = 0; i < p->nkeys; i++)
		if (strpbrk(p->keys[i].value, "\r\n"))
			cfg_problem(L, "provider %s: a key contains CR or LF", p->name);
	p->brk = arena_new(a, struct breaker, MAX(p->nkeys, 1));
	if (p->brk)
		memset(p->brk, 0, sizeof(struct breaker) * (size_t)MAX(p->nkeys, 1));
	p->weight = f[PF_WEIGHT] >= 0 ? cfg_weight(L, f[PF_WEIGHT], "weight") : 1000;
	p->models = cfg_strs(L, f[PF_MODELS], &p->nmodels, "models");
	p->model_map = cfg_map(L, f[PF_MODEL_MAP], &p->nmap, "model_map");
	p->headers = cfg_map(L, f[PF_HEADERS] >= 0 ? f[PF_HEADERS] : net[1], &p->nheaders, "headers");
	cfg_headers_ok(L, p->headers, p->nheaders, path);
	p->deployments = cfg_map(L, f[PF_DEPLOYMENTS], &p->ndeploy, "deployments");
	p->api_version = cfg_str(L, f[PF_API_VERSION], "api_version");
	for (int i = PF_REGION; i <= PF_TOKEN && !p->kind->bedrock; i++)
		if (f[i] >= 0)
			cfg_problem(L, "provider %s: %s is a Bedrock field (this provider is %s)", p->name, pf_names[i], kind);
	if (strcmp(kind, "azure") == 0 && !p->api_version)
		p->api_version = "2024-10-21";
	long secs = (long)cfg_num(L, net[2], 120, 1, 86400, "default_request_timeout_in_seconds");
	p->timeout_ms = (long)cfg_num(L, f[PF_TIMEOUT], secs * 1000, 1, 86400000, "timeout_ms");
	p->connect_timeout_ms = (long)cfg_num(L, f[PF_CONNECT_TIMEOUT], 5000, 1, 600000, "connect_timeout_ms");
	p->stream_idle_timeout_ms = (long)cfg_num(L, f[PF_STREAM_IDLE], 300000, 1, 86400000,
						  "stream_idle_timeout_ms");
	p->total_timeout_ms = (long)cfg_num(L, f[PF_TOTAL_TIMEOUT], 1800000, 0, 86400000, "total_timeout_ms");
	p->max_retries = (int)cfg_num(L, f[PF_RETRIES] >= 0 ? f[PF_RETRIES] : net[3], 1, 0, 10, "max_retries");
	if (p->host) {
		cfg_provider_tls(L, p, f[PF_TLS], path);
		p->dns = dns_lookup_entry(p->host, p->port);
		if (!p->dns)
			cfg_problem(L, "provider %s: too many distinct upstream hosts", p->name);
	}
}

static void cfg_providers(struct cfg_ld *L, int tok)
{
	struct cfg *c = L->c;
	if (tok < 0)
		return;
	jsmntok_t *t = &L->j.tok[tok];
	if (t->type != JSMN_ARRAY && t->type != JSMN_OBJECT) {
		cfg_problem(L, "providers must be an array (or the map form)");
		return;
	}
	c->prov = arena_new(&c->arena, struct provider, t->size + 1);
	if (!c->prov)
		return;
	memset(c->prov, 0, sizeof(struct provider) * (size_t)(t->size + 1));
	for (int k = 0, i = tok + 1; k < t->size; k++) {
		const char *map_name = NULL;
		if (t->type == JSMN_OBJECT)
			map_name = json_str(&L->j, &c->arena, i++, NULL);
		struct provider *p = &c->prov[c->nprov];
		char path[160];
		if (map_name)
			snprintf(path, sizeof(path), "providers.%.100s", map_name);
		else
			snprintf(path, sizeof(path), "providers[%d]", k);
		cfg_provider(L, i, map_name, p, path);
		i = json_skip(&L->j, i);
		if (!p->name || !p->kind)
			continue;
		for (int q = 0; q < c->nprov; q++)
			if (strcmp(c->prov[q].name, p->name) == 0)
				cfg_problem(L, "provider name \"%s\" is used twice", p->name);
		c->nprov++;
	}
}

enum { TF_LISTEN, TF_WORKERS, TF_DATA_DIR, TF_ADMIN, TF_LIMITS, TF_PROVIDERS, TF_FALLBACKS,
       TF_LOG, TF_PRICING, TF_GOVERNANCE, TF_CB, TF_PRICING_FILE, TF_LOGS, TF_TLS, TF_CLUSTER, TF_N };

/* The original Bifrost's top-level blocks that this gateway does not implement. */
static const char *const cfg_top_foreign[] = { "$schema", "client", "config_store", "logs_store",
	"vector_store", "mcp", "plugins", "auth_config", "framework", "encryption_key", NULL };

static const char *const tf_names[TF_N] = {
	"listen", "workers", "data_dir", "admin", "limits", "providers", "fallbacks",
	"log_requests", "pricing", "governance", "circuit_breaker", "pricing_file", "logs", "tls", "cluster",
};

/* "tls": the HTTPS listener, its certificate chain and key, loaded and checked here. */
static void cfg_tls(struct cfg_ld *L, int tok)
{
	static const char *const k[] = { "listen", "cert_file", "key_file" };
	int v[3];
	struct cfg *c = L->c;
	char err[2 * PATH_MAX + 200];
	if (tok < 0 || !cfg_obj(L, tok, "tls", k, 3, NULL, v))
		return;
	const char *cert = cfg_str(L, v[1], "tls.cert_file"), *key = cfg_str(L, v[2], "tls.key_file");
	c->tls_listen = cfg_str(L, v[0], "tls.listen");
	if (!c->tls_listen || !*c->tls_listen || !cert || !key) {
		cfg_problem(L, "tls: listen, cert_file and key_file are all required");
		return;
	}
	c->tls = arena_new(&c->arena, struct tls_cred, 1);
	tls_impl_pick();
	if (!c->tls || tls_load_cred(&c->arena, cert, key, c->tls, err, sizeof(err)) != 0)
		cfg_problem(L, "tls: %s", c->tls ? err : "out of memory");
	else if (c->tls->not_after >= 0 && c->tls->not_after < (int64_t)time(NULL))
		fprintf(stderr, "bifrost: warning: tls: the certificate in %s has expired\n", cert);
}

/* "cluster": the Redis shared by the nodes (redis://[user:pass@]host:port[/db]). */
static void cfg_cluster(struct cfg_ld *L, int tok)
{
	static const char *const k[] = { "redis", "key_prefix", "on_redis_down", "node_id", "timeout_ms", "tls" };
	static const char *const tk[] = { "ca_file", "insecure_skip_verify" };
	int v[6], t[2] = { -1, -1 };
	struct cfg_cluster *cl;
	if (tok < 0 || !cfg_obj(L, tok, "cluster", k, 6, NULL, v) ||
	    (v[5] >= 0 && !cfg_obj(L, v[5], "cluster.tls", tk, 2, NULL, t)))
		return;
	const char *url = cfg_str(L, v[0], "cluster.redis"), *down = cfg_str(L, v[2], "cluster.on_redis_down");
	if (!url || !*url) {
		cfg_problem(L, "cluster.redis is required (redis://host:port)");
		return;
	}
	if (!(cl = L->c->cluster = arena_new(&L->c->arena, struct cfg_cluster, 1)))
		return;
	memset(cl, 0, sizeof(*cl));
	if (cfg_redis_url(&L->c->arena, url, cl) != 0)
		cfg_problem(L, "cluster.redis: not redis[s]://[user:password@]host[:port][/db]");
	cl->prefix = v[1] >= 0 ? cfg_str(L, v[1], "cluster.key_prefix") : "bifrost:";
	cl->down = !down || strcmp(down, "local_share") == 0 ? CLU_DOWN_SHARE : strcmp(down, "allow") == 0
		? CLU_DOWN_ALLOW : strcmp(down, "deny") == 0 ? CLU_DOWN_DENY : -1;
	if ((int)cl->down < 0)
		cfg_problem(L, "cluster.on_redis_down: \"local_share\", \"allow\" or \"deny\"");
	cl->node = cfg_str(L, v[3], "cluster.node_id");
	if (cl->node && (!*cl->node || strpbrk(cl->node, ": \r\n") || strlen(cl->node) > 64))
		cfg_problem(L, "cluster.node_id: 1 to 64 characters, no ':' or spaces");
	cl->timeout_ms = (long)cfg_num(L, v[4], 250, 10, 60000, "cluster.timeout_ms");
	cl->insecure = cfg_bool(L, t[1], false, "cluster.tls.insecure_skip_verify");
	const char *ca = cfg_str(L, t[0], "cluster.tls.ca_file");
	struct tls_anchors *ta = ca && *ca ? arena_new(&L->c->arena, struct tls_anchors, 1) : NULL;
	char err[256];
	if (ta && tls_load_anchors(&L->c->arena, ca, ta, err, sizeof(err)) != 0)
		cfg_problem(L, "cluster.tls.ca_file: %s", err);
	cl->anchors = ta ? ta : cl->tls ? cfg_sys_anchors("cluster.redis") : NULL;
	if (cl->prefix && (strlen(cl->prefix) > 64 || strpbrk(cl->prefix, " \r\n")))
		cfg_problem(L, "cluster.key_prefix: at most 64 characters, no spaces");
}

/* A password hash line, "pbkdf2-sha256$ITER$SALT$HASH" (hex; HASH 64 digits), split; false if it is not one. */
static bool cfg_pw_parse(const char *line, unsigned *iter, char salt[129], char hash[65])
{
	int end = 0;
	return sscanf(line, "pbkdf2-sha256$%u$%128[0-9a-f]$%64[0-9a-f]%n", iter, salt, hash, &end) == 3 &&
	       !line[end] && strlen(hash) == 64 && strlen(salt) % 2 == 0 && *iter > 0 && *iter <= 10000000;
}

/* "admin": the API token, and the name and password hash people log in with. */
static void cfg_admin(struct cfg_ld *L, int tok)
{
	static const char *const k[] = { "token", "username", "password_hash" };
	int v[3];
	struct cfg *c = L->c;
	if (tok < 0 || !cfg_obj(L, tok, "admin", k, 3, NULL, v))
		return;
	c->admin_token = cfg_str(L, v[0], "admin.token");
	c->admin_user = cfg_str(L, v[1], "admin.username");
	c->admin_hash = cfg_str(L, v[2], "admin.password_hash");
	if (c->admin_token && !*c->admin_token)
		c->admin_token = NULL; /* an unset env.NAME: no token, not an empty one */
	if (!c->admin_user != !c->admin_hash)
		cfg_problem(L, "admin: give username and password_hash together");
	else if (c->admin_hash && !cfg_pw_parse(c->admin_hash, &(unsigned){ 0 }, (char[129]){ 0 }, (char[65]){ 0 }))
		cfg_problem(L, "admin.password_hash: not a hash from `bifrost hash-password`");
}

/* "logs": the request log store's switch and retention. */
static void cfg_logs(struct cfg_ld *L, int tok)
{
	static const char *const k[] = { "enabled", "retention_days", "max_bytes", "content", "content_max_bytes" };
	int v[5] = { -1, -1, -1, -1, -1 };
	struct cfg *c = L->c;
	if (tok >= 0)
		cfg_obj(L, tok, "logs", k, 5, NULL, v);
	c->logs_content = cfg_bool(L, v[3], false, "logs.content");
	c->logs_content_max = (size_t)cfg_num(L, v[4], 16384, 0, 1 << 20, "logs.content_max_bytes");
	c->logs_on = cfg_bool(L, v[0], true, "logs.enabled");
	c->logs_days = (long)cfg_num(L, v[1], 30, 1, 36500, "logs.retention_days");
	c->logs_bytes = cfg_num(L, v[2], 1LL << 30, 1 << 20, 1LL << 50, "logs.max_bytes");
}

static void cfg_limits(struct cfg_ld *L, int tok)
{
	static const char *const k[] = { "max_body_bytes", "max_header_bytes", "header_timeout_ms",
		"idle_timeout_ms", "max_response_bytes", "stream_ping_ms", "body_timeout_ms",
		"send_timeout_ms", "max_json_tokens" };
	int v[ARRAY_LEN(k)];
	for (size_t i = 0; i < ARRAY_LEN(k); i++)
		v[i] = -1;
	if (tok >= 0)
		cfg_obj(L, tok, "limits", k, (int)ARRAY_LEN(k), NULL, v);
	struct cfg *c = L->c;
	c->max_body = (size_t)cfg_num(L, v[0], 32 << 20, 1024, 1LL << 32, "limits.max_body_bytes");
	c->max_header = (size_t)cfg_num(L, v[1], 64 << 10, 1024, 1 << 24, "limits.max_header_bytes");
	c->header_timeout_ms = (long)cfg_num(L, v[2], 10000, 10, 3600000, "limits.header_timeout_ms");
	c->idle_timeout_ms = (long)cfg_num(L, v[3], 60000, 10, 86400000, "limits.idle_timeout_ms");
	c->max_response = (size_t)cfg_num(L, v[4], 64 << 20, 4096, 1LL << 32, "limits.max_response_bytes");
	c->stream_ping_ms = (long)cfg_num(L, v[5], 15000, 100, 3600000, "limits.stream_ping_ms");
	c->body_timeout_ms = (long)cfg_num(L, v[6], 60000, 10, 86400000, "limits.body_timeout_ms");
	c->send_timeout_ms = (long)cfg_num(L, v[7], 60000, 10, 86400000, "limits.send_timeout_ms");
	c->max_json_tokens = (size_t)cfg_num(L, v[8], 1000000, 1024, 1 << 28, "limits.max_json_tokens");
}

static void cfg_breaker(struct cfg_ld *L, int tok)
{
	static const char *const k[] = { "failures", "cooldown_ms" };
	int v[2] = { -1, -1 };
	if (tok >= 0)
		cfg_obj(L, tok, "circuit_breaker", k, 2, NULL, v);
	L->c->cb.fails = (int)cfg_num(L, v[0], 5, 1, 1000000, "circuit_breaker.failures");
	L->c->cb.cooldown_ms = (long)cfg_num(L, v[1], 30000, 1, 86400000, "circuit_breaker.cooldown_ms");
}

static struct gov *gov_cfg(struct cfg_ld *L, int gov_tok, int pricing_tok, int providers_tok,
			   const char *pricing_file);

/* Parse `text` (taken over: freed with the config). NULL + problems in `errs`. */
static struct cfg *cfg_parse(char *text, size_t len, const char *source, struct sb *errs)
{
	struct cfg_ld L = { 0 };
	struct cfg *c = calloc(1, sizeof(*c));
	if (!c) {
		free(text);
		return NULL;
	}
	arena_init(&c->arena, NULL);
	c->text = text;
	c->source = source;
	c->refs = 1;
	L.c = c;
	sb_init(&L.errs, &c->arena, 1024);
	int f[TF_N];
	if (json_parse(&L.j, &c->arena, text, len) != 0) {
		int line = 1, col = 1;
		for (size_t i = 0; i < MIN(L.j.err_pos, len); i++, col++)
			if (text[i] == '\n')
				line++, col = 0;
		cfg_problem(&L, "%s:%d:%d: %s", source, line, col, L.j.err ? L.j.err : "malformed JSON");
		goto out;
	}
	if (!cfg_obj(&L, 0, "", tf_names, TF_N, cfg_top_foreign, f))
		goto out;
	c->listen = cfg_str(&L, f[TF_LISTEN], "listen");
	c->workers = (int)cfg_num(&L, f[TF_WORKERS], 0, 0, 1024, "workers");
	c->data_dir = cfg_str(&L, f[TF_DATA_DIR], "data_dir");
	c->log_requests = cfg_bool(&L, f[TF_LOG], true, "log_requests");
	cfg_admin(&L, f[TF_ADMIN]);
	cfg_logs(&L, f[TF_LOGS]);
	cfg_tls(&L, f[TF_TLS]);
	cfg_cluster(&L, f[TF_CLUSTER]);
	cfg_limits(&L, f[TF_LIMITS]);
	cfg_breaker(&L, f[TF_CB]);
	cfg_providers(&L, f[TF_PROVIDERS]);
	c->fallbacks = cfg_strs(&L, f[TF_FALLBACKS], &c->nfallbacks, "fallbacks");
	c->gov = gov_cfg(&L, f[TF_GOVERNANCE], f[TF_PRICING], f[TF_PROVIDERS],
			 cfg_str(&L, f[TF_PRICING_FILE], "pricing_file"));
out:
	if (L.nerr) {
		sb_put(errs, L.errs.p, L.errs.len);
		cfg_free(c);
		return NULL;
	}
	return c;
}

/* The embedded default: one provider per API-key environment variable that is set. */
static char *cfg_default_text(size_t *len)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	sb_init(&s, &a, 1024);
	sb_puts(&s, "{\"providers\":[");
	int n = 0;
	for (size_t i = 0; i < ARRAY_LEN(prov_kinds); i++) {
		const struct prov_kind *k = &prov_kinds[i];
		if (!k->env_key || !getenv(k->env_key))
			continue;
		sb_printf(&s, "%s{\"provider\":\"%s\",\"apiKey\":\"env.%s\"}", n++ ? "," : "", k->name, k->env_key);
	}
	if (cfg_aws_keys() && cfg_aws_region()) /* (an access key pair wins over a Bedrock API key) */
		sb_printf(&s, "%s{\"provider\":\"bedrock\"%s}", n++ ? "," : "",
			  cfg_env("AWS_ACCESS_KEY_ID") && cfg_env("AWS_SECRET_ACCESS_KEY") ? ""
			  : ",\"apiKey\":\"env.AWS_BEARER_TOKEN_BEDROCK\"");
	sb_puts(&s, "]}");
	char *text = s.oom ? NULL : strndup(s.p, s.len);
	*len = s.len;
	arena_reset(&a);
	return text;
}

/* A whole file (at most 16 MiB), NUL-terminated, malloc'd; NULL and a message in err. */
static char *cfg_slurp(const char *path, size_t *len, char *err, size_t errlen)
{
	struct buf b = { .limit = 16u << 20 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char tmp[16384];
	ssize_t r;
	int rc = 0;
	while ((r = read(fd, tmp, sizeof(tmp))) > 0 && (rc = buf_append(&b, tmp, (size_t)r)) == 0)
		;
	close(fd);
	if (r < 0 || rc || buf_append(&b, "", 1) != 0) { /* NUL: strtoll-safe */
		snprintf(err, errlen, "cannot read %s%s", path, rc ? " (over 16 MiB)" : "");
		buf_free(&b);
		return NULL;
	}
	*len = b.len - 1;
	return b.p;
}

static struct cfg *cfg_load(const char *path, struct sb *errs)
{
	size_t len = 0;
	char *text, err[PATH_MAX + 64];
	if (!path) {
		text = cfg_default_text(&len);
		return text ? cfg_parse(text, len, "environment", errs) : NULL;
	}
	if (!(text = cfg_slurp(path, &len, err, sizeof(err)))) {
		sb_printf(errs, "  - %s\n", err);
		return NULL;
	}
	return cfg_parse(text, len, path, errs);
}

/* ---- dns_: resolved off the workers, read lock-free ---- */

/* Writers only (config loads on the main and the management threads, refreshes): one at a time. */
static pthread_mutex_t dns_lock = PTHREAD_MUTEX_INITIALIZER;

static struct dns_entry *dns_lookup_entry(const char *host, int port)
{
	pthread_mutex_lock(&dns_lock);
	int n = atomic_load(&dns_count);
	struct dns_entry *e = NULL;
	for (int i = 0; !e && i < n; i++)
		if (dns_table[i].port == port && strcmp(dns_table[i].host, host) == 0)
			e = &dns_table[i];
	if (!e && n < DNS_MAX && strlen(host) < sizeof(dns_table[0].host)) {
		e = &dns_table[n];
		snprintf(e->host, sizeof(e->host), "%s", host);
		e->port = port;
		atomic_store(&dns_count, n + 1);
	}
	pthread_mutex_unlock(&dns_lock);
	return e;
}

/* Under dns_lock (the seqlock has one writer at a time): (re)resolve one entry and publish. */
static void dns_resolve(struct dns_entry *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char port[8];
	snprintf(port, sizeof(port), "%d", e->port);
	int rc = getaddrinfo(e->host, port, &hints, &res);
	struct dns_entry tmp = { .n = 0 };
	if (rc != 0)
		snprintf(tmp.err, sizeof(tmp.err), "cannot resolve %.60s: %s", e->host, gai_strerror(rc));
	for (ai = res; ai && tmp.n < DNS_ADDRS; ai = ai->ai_next) {
		memcpy(&tmp.addr[tmp.n], ai->ai_addr, ai->ai_addrlen);
		tmp.len[tmp.n++] = ai->ai_addrlen;
	}
	if (res)
		freeaddrinfo(res);
	if (rc != 0 && e->n > 0) /* keep the last good answer on a transient failure */
		tmp = *e;
	uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
	atomic_store_explicit(&e->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	e->n = tmp.n;
	memcpy(e->addr, tmp.addr, sizeof(tmp.addr));
	memcpy(e->len, tmp.len, sizeof(tmp.len));
	memcpy(e->err, tmp.err, sizeof(tmp.err));
	atomic_store_explicit(&e->seq, s + 2, memory_order_release);
	e->next_ns = now_ns() + (e->n ? 60ull : 5ull) * 1000000000ull;
}

/* Workers: copy address #idx (mod n). false + message if unresolved. */
static bool dns_read(struct dns_entry *e, unsigned idx, struct sockaddr_storage *sa, socklen_t *len,
		     char *err, size_t errlen)
{
	for (;;) {
		uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		int n = e->n;
		if (n > 0) {
			*sa = e->addr[idx % (unsigned)n];
			*len = e->len[idx % (unsigned)n];
		} else {
			snprintf(err, errlen, "%s", e->err[0] ? e->err : "host not resolved yet");
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&e->seq, memory_order_relaxed) == s1)
			return n > 0;
	}
}

/* The main thread each second, and the management thread after a config change. */
static void dns_refresh_due(bool all)
{
	pthread_mutex_lock(&dns_lock);
	uint64_t now = now_ns();
	int n = atomic_load(&dns_count);
	for (int i = 0; i < n; i++)
		if (all || dns_table[i].next_ns <= now)
			dns_resolve(&dns_table[i]);
	pthread_mutex_unlock(&dns_lock);
}

/* ======================================================================== *
 * 11. route_ — from a model string to an ordered list of candidates.       *
 *                                                                          *
 * `P/M` with P a provider name → that provider, model M (first '/' only).  *
 * Anything else is a bare model: every provider whose `models` or          *
 * `model_map` globs match. One candidate is drawn by weight; the others    *
 * follow, heaviest first (the automatic fallback order). Pure: no I/O.     *
 * ======================================================================== */

#define ROUTE_MAX 16

struct route_cand {
	const struct provider *p; /* borrowed: the request's config */
	const char *model;        /* upstream model name; arena or config */
};

struct route {
	struct route_cand c[ROUTE_MAX];
	int n;
};

static const struct provider *route_provider(const struct cfg *c, const char *name, size_t n)
{
	for (int i = 0; i < c->nprov; i++)
		if (strlen(c->prov[i].name) == n && memcmp(c->prov[i].name, name, n) == 0)
			return &c->prov[i];
	return NULL;
}

/* model_map target for `m`, or NULL when no glob matches. */
static const char *route_mapped(const struct provider *p, const char *m)
{
	for (int i = 0; i < p->nmap; i++)
		if (fnmatch(p->model_map[i].k, m, 0) == 0)
			return p->model_map[i].v;
	return NULL;
}

/* Does this credential serve upstream model `m` (a key's `models` in the map form)? */
static bool route_key_serves(const struct prov_key *k, const char *m)
{
	if (!k->models)
		return true;
	for (int i = 0; i < k->nmodels; i++)
		if (fnmatch(k->models[i], m, 0) == 0)
			return true;
	return false;
}

/* Some key of p serves upstream model m (or p has no keys at all). */
static bool route_keys_serve(const struct provider *p, const char *m)
{
	for (int i = 0; i < p->nkeys; i++)
		if (route_key_serves(&p->keys[i], m))
			return true;
	return p->nkeys == 0;
}

static bool route_serves(const struct provider *p, const char *m)
{
	const char *mapped = route_mapped(p, m);
	if (!route_keys_serve(p, mapped ? mapped : m))
		return false;
	if (mapped || !p->models)
		return true;
	for (int i = 0; i < p->nmodels; i++)
		if (fnmatch(p->models[i], m, 0) == 0)
			return true;
	return false;
}

/* Put a pick drawn by `wt` first and the rest by descending weight (wt moves along). */
static void route_order_w(struct route *r, unsigned *wt, uint64_t *rng)
{
	for (int i = 1; i < r->n; i++) /* insertion sort by weight, stable */
		for (int k = i; k > 0 && wt[k] > wt[k - 1]; k--) {
			struct route_cand t = r->c[k];
			unsigned tw = wt[k];
			r->c[k] = r->c[k - 1];
			wt[k] = wt[k - 1];
			r->c[k - 1] = t;
			wt[k - 1] = tw;
		}
	uint64_t total = 0;
	for (int i = 0; i < r->n; i++)
		total += wt[i];
	if (r->n < 2 || total == 0)
		return;
	uint64_t x = rng_next(rng) % total;
	int pick = 0;
	while (x >= wt[pick])
		x -= wt[pick++];
	struct route_cand chosen = r->c[pick];
	memmove(&r->c[1], &r->c[0], sizeof(r->c[0]) * (size_t)pick);
	r->c[0] = chosen;
}

static void route_order(struct route *r, uint64_t *rng)
{
	unsigned wt[ROUTE_MAX];
	for (int i = 0; i < r->n; i++)
		wt[i] = r->c[i].p->weight;
	route_order_w(r, wt, rng);
}

/* 0, or -ENOENT with *why set to a static message. */
static int route_resolve(const struct cfg *c, const char *model, uint64_t *rng, struct route *r,
			 const char **why)
{
	r->n = 0;
	const char *slash = strchr(model, '/');
	const struct provider *p = slash ? route_provider(c, model, (size_t)(slash - model)) : NULL;
	if (p) {
		const char *m = slash + 1;
		const char *mapped = route_mapped(p, m);
		r->c[r->n++] = (struct route_cand){ p, mapped ? mapped : m };
		if (!*m) {
			*why = "model name after the provider prefix is empty";
			return -ENOENT;
		}
		if (!route_keys_serve(p, r->c[0].model)) {
			*why = "no key of this provider serves this model";
			return -ENOENT;
		}
		return 0;
	}
	for (int i = 0; i < c->nprov && r->n < ROUTE_MAX; i++) {
		const struct provider *q = &c->prov[i];
		if (q->weight == 0 || !route_serves(q, model))
			continue;
		const char *mapped = route_mapped(q, model);
		r->c[r->n++] = (struct route_cand){ q, mapped ? mapped : model };
	}
	if (r->n == 0) {
		*why = slash ? "unknown provider prefix and no provider serves this model"
			     : "no configured provider serves this model";
		return -ENOENT;
	}
	route_order(r, rng);
	return 0;
}

/* May a request use this key now? Half-open admits exactly one probe. */
static bool route_cb_allow(struct breaker *b, const struct cb_conf *cf, int64_t now_ms)
{
	int64_t until = atomic_load_explicit(&b->open_until_ms, memory_order_relaxed);
	if (!until)
		return true;
	return now_ms >= until &&
	       atomic_compare_exchange_strong(&b->open_until_ms, &until, now_ms + cf->cooldown_ms);
}

static void route_cb_result(struct breaker *b, const struct cb_conf *cf, bool ok, int64_t now_ms)
{
	if (ok) {
		atomic_store(&b->fails, 0);
		atomic_store(&b->open_until_ms, 0);
		return;
	}
	int fails = atomic_fetch_add(&b->fails, 1) + 1;
	if (fails >= cf->fails || atomic_load(&b->open_until_ms)) /* (re)open */
		atomic_store(&b->open_until_ms, now_ms + cf->cooldown_ms);
}

static const char *route_cb_state(struct breaker *b, int64_t now_ms)
{
	int64_t until = atomic_load(&b->open_until_ms);
	return !until ? "closed" : now_ms < until ? "open" : "half-open";
}

/* How many of p's keys serve upstream model m (1 for a provider without keys). */
static int route_nkeys(const struct provider *p, const char *m)
{
	int n = 0;
	for (int i = 0; i < p->nkeys; i++)
		n += route_key_serves(&p->keys[i], m);
	return p->nkeys ? n : 1;
}

/* Index of the n-th key serving m, counting cyclically from key index `from` (n = 0 is the
 * first serving key at or after it): how retries rotate through the keys. */
static int route_key_nth(const struct provider *p, const char *m, int from, int n)
{
	int ns = route_nkeys(p, m);
	if (!p->nkeys || !ns)
		return 0;
	n %= ns;
	for (int i = 0;; i++) {
		int k = (from + i) % p->nkeys;
		if (route_key_serves(&p->keys[k], m) && n-- == 0)
			return k;
	}
}

/* Index of a provider credential serving upstream model m, drawn by key weight;
 * 0 if the provider has none. */
static int route_key(const struct provider *p, const char *m, uint64_t *rng)
{
	uint64_t total = 0;
	for (int i = 0; i < p->nkeys; i++)
		total += route_key_serves(&p->keys[i], m) ? p->keys[i].weight : 0;
	uint64_t x = total ? rng_next(rng) % total : 0;
	for (int i = 0; i < p->nkeys; i++) {
		uint64_t wt = route_key_serves(&p->keys[i], m) ? p->keys[i].weight : 0;
		if (x < wt)
			return i;
		x -= wt;
	}
	return 0;
}

/* ======================================================================== *
 * 12. prov_ — what a request looks like on the wire to each provider.      *
 *                                                                          *
 * prov_openai_prepare reads the client's OpenAI-dialect body once and       *
 * lists the spans to change (fallbacks removed, stream usage forced on);   *
 * prov_build turns a candidate into a request head plus iovecs over the    *
 * client's body bytes with only those spans (and the model) replaced.      *
 * Pure: arena memory only.                                                 *
 * ======================================================================== */

enum endpoint { EP_CHAT, EP_COMPLETIONS, EP_EMBEDDINGS, EP_RESPONSES, EP_MESSAGES, EP_COUNT_TOKENS };

static const char *const ep_suffix[] = { "/chat/completions", "/completions", "/embeddings",
					 "/responses", "/messages", "/messages/count_tokens" };

/* The dialect a client speaks on an endpoint. */
static enum dialect prov_dialect(enum endpoint ep)
{
	return ep >= EP_MESSAGES ? D_ANTHROPIC : D_OPENAI;
}

#define PROV_MAX_EDITS 6

struct edit {
	size_t off, len; /* span of the original body to replace */
	struct str with; /* arena or static */
};

/* The client's request body as parsed once (either dialect), and the edits that make it the
 * provider's. */
struct client_req {
	struct json j;
	const char *model; /* arena: unescaped */
	int model_tok;
	bool stream, client_usage; /* client asked for stream usage itself */
	int fallbacks_tok;         /* the body's "fallbacks" array, or -1 */
	long long max_tokens;      /* 0 when absent: governance estimates from it */
	struct str anth_version, anth_beta; /* client's anthropic-* headers, forwarded verbatim */
	struct edit ed[PROV_MAX_EDITS];
	int ned;
};

static void prov_edit(struct client_req *o, size_t off, size_t len, struct str with)
{
	if (o->ned < PROV_MAX_EDITS)
		o->ed[o->ned++] = (struct edit){ off, len, with };
}

/* Force stream_options.include_usage = true (so streams can be billed). */
static int prov_force_usage(struct client_req *o, int so)
{
	struct json *j = &o->j;
	static const char *const k[] = { "include_usage" };
	int iu;
	if (so < 0) { /* no stream_options at all: insert right after the root '{' */
		prov_edit(o, (size_t)j->tok[0].start + 1, 0,
			  j->tok[0].size ? STR("\"stream_options\":{\"include_usage\":true},")
					 : STR("\"stream_options\":{\"include_usage\":true}"));
		return 0;
	}
	if (j->tok[so].type != JSMN_OBJECT) {
		if (!str_eq(json_raw(j, so), "null")) {
			j->err = "stream_options must be an object";
			return -EBADMSG;
		}
		prov_edit(o, json_beg(j, so), json_end(j, so) - json_beg(j, so), STR("{\"include_usage\":true}"));
		return 0;
	}
	if (json_obj_get(j, so, k, 1, &iu, NULL) != 0)
		return -EBADMSG;
	o->client_usage = json_is_true(j, iu);
	if (iu < 0)
		prov_edit(o, (size_t)j->tok[so].start + 1, 0,
			  j->tok[so].size ? STR("\"include_usage\":true,") : STR("\"include_usage\":true"));
	else if (!o->client_usage)
		prov_edit(o, json_beg(j, iu), json_end(j, iu) - json_beg(j, iu), STR("true"));
	return 0;
}

/* Remove top-level member whose key token is `key` (and one adjacent comma). */
static void prov_remove_member(struct client_req *o, int key)
{
	struct json *j = &o->j;
	int val = key + 1, after = json_skip(j, val);
	size_t b = json_beg(j, key), e;
	if (after < j->ntok && j->tok[after].start < j->tok[0].end) {
		e = json_beg(j, after); /* a member follows: eat through its start */
	} else {
		e = json_end(j, val); /* last member: eat the comma before it */
		size_t p = b;
		while (p > (size_t)j->tok[0].start + 1 && (json_ws(j->s[p - 1]) || j->s[p - 1] == ','))
			if (j->s[--p] == ',') {
				b = p;
				break;
			}
	}
	prov_edit(o, b, e - b, (struct str){ "", 0 });
}

/* Read an OpenAI-dialect body. 0, or -EBADMSG with o->j.err set. */
static int prov_openai_prepare(struct client_req *o, struct arena *a, const char *body, size_t n,
			       enum endpoint ep, size_t max_tok)
{
	enum { K_MODEL, K_STREAM, K_SO, K_FALLBACKS, K_MAXT, K_MAXCT, K_MAXOT, K_N };
	static const char *const keys[K_N] = { "model", "stream", "stream_options", "fallbacks",
		"max_tokens", "max_completion_tokens", "max_output_tokens" };
	int v[K_N], kidx[K_N];
	memset(o, 0, sizeof(*o));
	int rc = json_parse_max(&o->j, a, body, n, max_tok);
	if (rc != 0)
		return rc;
	if (json_obj_get(&o->j, 0, keys, K_N, v, kidx) != 0)
		return -EBADMSG;
	if (v[K_MODEL] < 0 || o->j.tok[v[K_MODEL]].type != JSMN_STRING) {
		o->j.err = v[K_MODEL] < 0 ? "missing \"model\"" : "\"model\" must be a string";
		return -EBADMSG;
	}
	o->model_tok = v[K_MODEL];
	o->model = json_str(&o->j, a, v[K_MODEL], NULL);
	if (!o->model)
		return -EBADMSG;
	if (!*o->model) {
		o->j.err = "\"model\" is empty";
		return -EBADMSG;
	}
	if (v[K_STREAM] >= 0 && !str_eq(json_raw(&o->j, v[K_STREAM]), "true") &&
	    !str_eq(json_raw(&o->j, v[K_STREAM]), "false") && !str_eq(json_raw(&o->j, v[K_STREAM]), "null")) {
		o->j.err = "\"stream\" must be a boolean";
		return -EBADMSG;
	}
	o->stream = json_is_true(&o->j, v[K_STREAM]) && ep != EP_EMBEDDINGS;
	o->fallbacks_tok = v[K_FALLBACKS];
	o->max_tokens = json_int(&o->j, v[K_MAXCT] >= 0 ? v[K_MAXCT] : v[K_MAXT] >= 0 ? v[K_MAXT] : v[K_MAXOT], 0);
	if (o->fallbacks_tok >= 0 && o->j.tok[o->fallbacks_tok].type != JSMN_ARRAY) {
		o->j.err = "\"fallbacks\" must be an array of \"provider/model\" strings";
		return -EBADMSG;
	}
	if (kidx[K_FALLBACKS] >= 0)
		prov_remove_member(o, kidx[K_FALLBACKS]);
	/* (a Responses stream always ends with its usage, and has no stream_options) */
	if (o->stream && ep != EP_RESPONSES && prov_dialect(ep) == D_OPENAI && prov_force_usage(o, v[K_SO]) != 0)
		return -EBADMSG;
	return 0;
}

struct up_req {
	struct iovec *iov; /* arena: [0] is the head, then body pieces */
	int niov;
	size_t len;        /* total bytes */
};

static int prov_edit_cmp(const void *a, const void *b)
{
	const struct edit *x = a, *y = b; /* at one offset, an insertion goes before a removal */
	return x->off != y->off ? (x->off < y->off ? -1 : 1) : (x->len > y->len) - (x->len < y->len);
}

/* A client-chosen name inside a URL path: percent-encode all but unreserved
 * characters, so no model name can reach the request line raw. */
static void prov_path_segment(struct sb *h, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			sb_put(h, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			sb_put(h, e, 3);
		}
	}
}

/* Azure's name for an upstream model: its deployment (azure.deployments), else the model. */
static const char *prov_deployment(const struct provider *p, const char *model)
{
	for (int i = 0; i < p->ndeploy; i++)
		if (strcmp(p->deployments[i].k, model) == 0)
			return p->deployments[i].v;
	return model;
}

/* Request line and headers for provider p; `ep` is the upstream's endpoint. */
static void prov_head(struct sb *h, const struct client_req *o, const struct provider *p,
		      const char *model, const char *key, enum endpoint ep, struct str query,
		      size_t body_len)
{
	enum dialect d = p->kind->dialect;
	bool azure = strcmp(p->kind->name, "azure") == 0;
	sb_cat(h, "POST ", p->base_path, NULL);
	if (azure && ep == EP_RESPONSES) { /* not per deployment: the body's model names it */
		sb_cat(h, "/openai/responses?api-version=", p->api_version, NULL);
	} else if (azure) {
		sb_puts(h, "/openai/deployments/");
		prov_path_segment(h, prov_deployment(p, model));
		sb_cat(h, ep_suffix[ep], "?api-version=", p->api_version, NULL);
	} else {
		size_t bl = strlen(p->base_path);
		bool v1 = bl >= 3 && strcmp(p->base_path + bl - 3, "/v1") == 0;
		sb_cat(h, d == D_ANTHROPIC && !v1 ? "/v1" : "", ep_suffix[ep], NULL);
	}
	if (query.n)
		sb_put(h, azure ? "&" : "?", 1);
	sb_str(h, query);
	sb_cat(h, " HTTP/1.1\r\nHost: ", p->host_hdr, "\r\n", NULL);
	if (key && *key)
		sb_cat(h, azure ? "api-key: " : d == D_ANTHROPIC ? "x-api-key: " : "Authorization: Bearer ", key,
		       "\r\n", NULL);
	if (d == D_ANTHROPIC) {
		sb_puts(h, "anthropic-version: ");
		if (o->anth_version.n)
			sb_str(h, o->anth_version);
		else
			sb_puts(h, "2023-06-01");
		sb_puts(h, "\r\n");
		if (o->anth_beta.n) {
			sb_puts(h, "anthropic-beta: ");
			sb_str(h, o->anth_beta);
			sb_puts(h, "\r\n");
		}
	}
	for (int i = 0; i < p->nheaders; i++)
		sb_cat(h, p->headers[i].k, ": ", p->headers[i].v, "\r\n", NULL);
	sb_cat(h, "Content-Type: application/json\r\nAccept: ",
	       o->stream ? "text/event-stream" : "application/json", "\r\nContent-Length: ", NULL);
	sb_u64(h, body_len);
	sb_puts(h, "\r\n\r\n");
}

/* The request for candidate (p, model) with credential `key`: the head, then
 * iovecs over the client's body with the edits applied. 0 or -ENOMEM. */
static int prov_build(struct arena *a, const struct client_req *o, const struct provider *p,
		      const char *model, const char *key, enum endpoint ep, struct str query,
		      struct up_req *out)
{
	struct edit ed[PROV_MAX_EDITS + 1];
	int ned = o->ned;
	memcpy(ed, o->ed, sizeof(ed[0]) * (size_t)ned);
	struct sb m;
	sb_init(&m, a, strlen(model) + 8);
	bool azure_responses = ep == EP_RESPONSES && strcmp(p->kind->name, "azure") == 0;
	json_put_z(&m, azure_responses ? prov_deployment(p, model) : model);
	const struct json *j = &o->j;
	ed[ned++] = (struct edit){ json_beg(j, o->model_tok),
				   json_end(j, o->model_tok) - json_beg(j, o->model_tok), sb_view(&m) };
	qsort(ed, (size_t)ned, sizeof(ed[0]), prov_edit_cmp);

	out->iov = arena_new(a, struct iovec, 2 * ned + 2);
	if (!out->iov || m.oom)
		return -ENOMEM;
	size_t pos = 0, body_len = 0;
	int n = 1;
	for (int i = 0; i < ned; i++) {
		if (ed[i].off > pos)
			out->iov[n++] = (struct iovec){ (void *)(j->s + pos), ed[i].off - pos };
		if (ed[i].with.n)
			out->iov[n++] = (struct iovec){ (void *)ed[i].with.p, ed[i].with.n };
		pos = MAX(pos, ed[i].off + ed[i].len);
	}
	if (pos < j->n)
		out->iov[n++] = (struct iovec){ (void *)(j->s + pos), j->n - pos };
	for (int i = 1; i < n; i++)
		body_len += out->iov[i].iov_len;
	struct sb h;
	sb_init(&h, a, 512);
	prov_head(&h, o, p, model, key, ep, query, body_len);
	if (h.oom)
		return -ENOMEM;
	out->iov[0] = (struct iovec){ h.p, h.len };
	out->niov = n;
	out->len = h.len + body_len;
	return 0;
}

/* ---- AWS Bedrock ---- */

/* Anthropic models go to InvokeModel (their Messages bodies as they are); others to Converse. */
static bool prov_bedrock_invoke(const char *model)
{
	return strstr(model, "anthropic") || strstr(model, "claude");
}

/* A Messages body as InvokeModel takes it: no "model" or "stream" (the path says both),
 * "anthropic_version" "bedrock-2023-05-31", the client's anthropic-beta header as the
 * "anthropic_beta" array. -EBADMSG when `body` is not a JSON object. */
static int prov_bedrock_body(struct arena *a, struct str body, struct str beta, struct sb *out)
{
	static const char *const keys[] = { "model", "stream", "anthropic_version", "anthropic_beta", "fallbacks" };
	struct json j;
	int v[5], k[5];
	if (json_parse(&j, a, body.p, body.n) != 0 || json_obj_get(&j, 0, keys, 5, v, k) != 0)
		return -EBADMSG;
	sb_puts(out, "{");
	int n = 0;
	for (int m = 0, i = 1; m < j.tok[0].size; m++, i = json_skip(&j, i + 1)) {
		if (i == k[0] || i == k[1] || i == k[4]) /* (the path says the first two; the last is ours) */
			continue;
		sb_put(out, ",", n++ > 0);
		sb_put(out, j.s + json_beg(&j, i), json_end(&j, i + 1) - json_beg(&j, i));
	}
	if (v[2] < 0)
		sb_cat(out, n++ ? "," : "", "\"anthropic_version\":\"bedrock-2023-05-31\"", NULL);
	if (v[3] < 0 && beta.n) {
		sb_cat(out, n++ ? "," : "", "\"anthropic_beta\":[", NULL);
		for (size_t i = 0, m = 0; i < beta.n; m++) {
			size_t e = i;
			while (e < beta.n && beta.p[e] != ',')
				e++;
			struct str t = { beta.p + i, e - i };
			while (t.n && t.p[0] == ' ')
				t.p++, t.n--;
			while (t.n && t.p[t.n - 1] == ' ')
				t.n--;
			if (t.n) {
				sb_put(out, ",", m > 0);
				json_put_str(out, t.p, t.n);
			} else {
				m--;
			}
			i = e + 1;
		}
		sb_puts(out, "]");
	}
	sb_puts(out, "}");
	return out->oom ? -ENOMEM : 0;
}

/* "20261130T105500Z" for a Unix time. */
static void prov_amzdate(char out[17], long long now)
{
	struct tm tm;
	time_t t = (time_t)now;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* The request to Bedrock for (p, model): the head (signed with SigV4, or the Bedrock API
 * key as a bearer token) and `body`, a body Bedrock takes (prov_bedrock_body, or Converse's).
 * `now`: Unix time; `cache`: the caller's signing key. 0 or -ENOMEM. */
static int prov_bedrock_build(struct arena *a, struct str body, const struct provider *p, const char *model,
			      const char *key, bool stream, long long now, struct sigv4_key *cache,
			      struct up_req *out)
{
	struct sb path, h, auth;
	sb_init(&path, a, 128);
	sb_cat(&path, p->base_path, "/model/", NULL);
	prov_path_segment(&path, model);
	bool inv = prov_bedrock_invoke(model);
	sb_puts(&path, inv ? (stream ? "/invoke-with-response-stream" : "/invoke")
			   : (stream ? "/converse-stream" : "/converse"));
	sb_put(&path, "", 1);
	char date[17], len[24];
	prov_amzdate(date, now);
	snprintf(len, sizeof(len), "%zu", body.n);
	sb_init(&auth, a, 256);
	if (p->akid) {
		uint8_t hash[32];
		br_sha256_context sc;
		br_sha256_init(&sc);
		br_sha256_update(&sc, body.p, body.n);
		br_sha256_out(&sc, hash);
		struct sigv4_hdr hd[4] = { { "content-type", "application/json" }, { "host", p->host_hdr },
					   { "x-amz-date", date }, { "x-amz-security-token", p->session_token } };
		struct sigv4_req r = { .method = "POST", .path = path.oom ? "" : path.p, .query = "", .hdrs = hd,
			.nhdrs = p->session_token ? 4 : 3, .payload_sha256 = hash, .amzdate = date,
			.region = p->region, .service = "bedrock", .akid = p->akid, .secret = p->secret,
			.cache = cache };
		sigv4_authorization(&auth, &r);
	} else if (key && *key) {
		sb_cat(&auth, "Bearer ", key, NULL);
	}
	sb_init(&h, a, 1024);
	sb_cat(&h, "POST ", path.oom ? "" : path.p, " HTTP/1.1\r\nHost: ", p->host_hdr,
	       "\r\nContent-Type: application/json\r\nAccept: ",
	       stream ? "application/vnd.amazon.eventstream" : "application/json", "\r\n", NULL);
	if (p->akid)
		sb_cat(&h, "X-Amz-Date: ", date, "\r\n", p->session_token ? "X-Amz-Security-Token: " : "",
		       p->session_token ? p->session_token : "", p->session_token ? "\r\n" : "", NULL);
	if (auth.len) {
		sb_puts(&h, "Authorization: ");
		sb_str(&h, sb_view(&auth));
		sb_puts(&h, "\r\n");
	}
	for (int i = 0; i < p->nheaders; i++)
		sb_cat(&h, p->headers[i].k, ": ", p->headers[i].v, "\r\n", NULL);
	sb_cat(&h, "Content-Length: ", len, "\r\n\r\n", NULL);
	out->iov = arena_new(a, struct iovec, 2);
	if (h.oom || auth.oom || path.oom || !out->iov)
		return -ENOMEM;
	out->iov[0] = (struct iovec){ h.p, h.len };
	out->iov[1] = (struct iovec){ (void *)body.p, body.n };
	out->niov = 2;
	out->len = h.len + body.n;
	return 0;
}

/* ---- Bedrock's API served to clients (/bedrock/model/{id}/{action}) ---- */

enum bedrock_action { BR_NONE, BR_INVOKE, BR_INVOKE_STREAM, BR_CONVERSE, BR_CONVERSE_STREAM };

/* "/bedrock/model/{id}/{action}" → the model id (percent-decoded, arena) and the action;
 * BR_NONE and *err when the path is not one (or the id has controls, bad escapes). */
static enum bedrock_action prov_bedrock_route(struct arena *a, struct str path, const char **model,
					     const char **err)
{
	static const char *const acts[] = { NULL, "invoke", "invoke-with-response-stream", "converse",
					    "converse-stream" };
	*err = "no such Bedrock operation (POST /bedrock/model/{modelId}/invoke, "
	       "/invoke-with-response-stream, /converse or /converse-stream)";
	if (!str_starts(path, "/bedrock/model/"))
		return BR_NONE;
	struct str rest = { path.p + 15, path.n - 15 };
	const char *slash = memrchr(rest.p, '/', rest.n);
	if (!slash || slash == rest.p)
		return BR_NONE;
	struct str act = { slash + 1, (size_t)(rest.p + rest.n - slash - 1) };
	enum bedrock_action r = BR_NONE;
	for (int i = 1; i < (int)ARRAY_LEN(acts); i++)
		if (str_eq(act, acts[i]))
			r = (enum bedrock_action)i;
	size_t n = (size_t)(slash - rest.p);
	char *m = r ? arena_alloc(a, n + 1, 1) : NULL;
	if (!m)
		return BR_NONE;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = rest.p[i];
		if (c == '%') {
			int hi = i + 2 < n ? sigv4_unhex(rest.p[i + 1]) : -1, lo = hi >= 0 ? sigv4_unhex(rest.p[i + 2]) : -1;
			if (lo < 0) {
				*err = "the model id in the path has a bad %-escape";
				return BR_NONE;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if ((unsigned char)c < 0x20 || c == 0x7f) {
			*err = "the model id in the path has control characters";
			return BR_NONE;
		}
		m[k++] = c;
	}
	m[k] = 0;
	if (!k || k > 2048) {
		*err = "the model id in the path is empty or too long";
		return BR_NONE;
	}
	*model = m;
	return r;
}

/* An InvokeModel body (a Messages body without "model" and "stream") → a Messages request:
 * "model" and "stream" from the path, "anthropic_version" dropped, "anthropic_beta" (an
 * array) handed back as the anthropic-beta header's value. -EBADMSG when not an object. */
static int prov_bedrock_inbound(struct arena *a, struct str body, const char *model, bool stream,
				struct sb *out, struct str *beta)
{
	static const char *const keys[] = { "model", "stream", "anthropic_version", "anthropic_beta" };
	struct json j;
	int v[4], k[4];
	if (json_parse(&j, a, body.p, body.n) != 0 || json_obj_get(&j, 0, keys, 4, v, k) != 0)
		return -EBADMSG;
	sb_puts(out, "{\"model\":");
	json_put_z(out, model);
	sb_puts(out, stream ? ",\"stream\":true" : ",\"stream\":false");
	for (int m = 0, i = 1; m < j.tok[0].size; m++, i = json_skip(&j, i + 1)) {
		if (i == k[0] || i == k[1] || i == k[2] || i == k[3])
			continue;
		sb_puts(out, ",");
		sb_put(out, j.s + json_beg(&j, i), json_end(&j, i + 1) - json_beg(&j, i));
	}
	sb_puts(out, "}");
	struct sb b;
	sb_init(&b, a, 128);
	if (v[3] >= 0 && j.tok[v[3]].type == JSMN_ARRAY)
		for (int m = 0, i = v[3] + 1; m < j.tok[v[3]].size; m++, i = json_skip(&j, i)) {
			char *s = j.tok[i].type == JSMN_STRING ? json_str(&j, a, i, NULL) : NULL;
			if (s && *s && !strpbrk(s, "\r\n")) {
				sb_put(&b, ",", b.len > 0);
				sb_puts(&b, s);
			}
		}
	*beta = sb_view(&b);
	return out->oom || b.oom ? -ENOMEM : 0;
}

/* The x-amzn-ErrorType the AWS SDKs turn into an exception class, for an HTTP status. */
static const char *prov_bedrock_error_name(int status)
{
	switch (status) {
	case 400: case 413: case 422: return "ValidationException";
	case 405: return "UnknownOperationException";
	case 401: case 402: case 403: return "AccessDeniedException";
	case 404: return "ResourceNotFoundException";
	case 408: case 504: return "ModelTimeoutException";
	case 429: return "ThrottlingException";
	case 503: case 529: return "ServiceUnavailableException";
	default: return "InternalServerException";
	}
}

/* ======================================================================== *
 * 13. xlate_ — dialect translation: Messages <-> Chat, Responses -> Chat.  *
 *                                                                          *
 * Owns the rewriting of request bodies, response bodies, stream events and *
 * error bodies from one dialect into the other (PROTOCOLS.md, "Translating *
 * Anthropic <-> OpenAI"). Pure: buffers in, an `sb` out, arena memory only,*
 * no I/O, no globals. Called by conn_ and up_ when the client's dialect    *
 * differs from the provider's, and for /v1/messages/count_tokens:          *
 *                                                                          *
 *   a2o = Anthropic client → OpenAI provider, o2a = the reverse.           *
 *   xlate_req_a2o  xlate_resp_o2a  xlate_o2a_init/_chunk/_end   (a2o route)*
 *   xlate_req_o2a  xlate_resp_a2o  xlate_a2o_init/_event/_end   (o2a route)*
 *   xlate_error_o2a  xlate_error_a2o  xlate_count_tokens                   *
 *   r2o = a Responses API client → a Chat provider (an Anthropic one: r2o, *
 *   then o2a, and back through a2o and o2r; chained by conn_):             *
 *   xlate_req_r2o  xlate_resp_o2r  xlate_o2r_init/_chunk/_end              *
 *                                                                          *
 * Invariants:                                                              *
 * - Values are copied as raw JSON text (json_raw), never re-encoded:       *
 *   strings, schemas and tool inputs stay byte-exact. A string's escaped   *
 *   inner bytes (xlate_inner) concatenate into a valid JSON string: this is*
 *   how texts are joined and data URLs built or split, without unescaping. *
 * - Translations return 0, -EBADMSG (input the dialect does not allow; a   *
 *   static reason in *err, or j->err inside) or -ENOMEM (arena exhausted,  *
 *   `out` is unusable). `out` holds complete JSON only on 0.               *
 * - Stream translators keep no arena pointers in their state (the caller   *
 *   may reset the arena between calls), append whole SSE events only, and  *
 *   ignore input once `done`. Their model/id strings are borrowed.         *
 *                                                                          *
 * Choices the wire docs leave open:                                        *
 * - tool_result is_error → tool message content "Error: " + text; images   *
 *   in a tool_result (tool messages are text-only) move to the user turn   *
 *   that follows the tool messages. One lone text block → a plain string.  *
 * - Anthropic server tools (no input_schema) are dropped, and tool_choice  *
 *   with them when no tool is left. Unknown content blocks are -EBADMSG.   *
 * - tool arguments that are not a JSON object (including "") → input {}.   *
 * - finish_reason "stop" with tool calls → stop_reason tool_use. A stream  *
 *   tool-call fragment for an index already closed is dropped (Anthropic   *
 *   blocks cannot reopen; OpenAI streams calls in index order).            *
 * - OpenAI → Anthropic: thinking budget clamped below max_tokens (dropped  *
 *   under 1024); temperature/top_p dropped when thinking is on (Anthropic  *
 *   refuses them); an assistant message with no text and no tool call is   *
 *   dropped (Anthropic refuses empty content); ids/created are the         *
 *   caller's (`created` param, xlate_a2o.created).                         *
 * ======================================================================== */

struct xlate_usage {
	long long in, out, cache_read, cache_write; /* Anthropic meaning: in excludes cache */
	long long reasoning; /* of `out`, the reasoning tokens (OpenAI reports them; for display) */
	bool clamped; /* the provider reported a count beyond XLATE_TOKENS_MAX (or negative) */
};

/* No answer has a trillion tokens; counts are held to [0, this] as they are read, so
 * every sum and product of them downstream (totals, costs, metrics) fits in 64 bits. */
#define XLATE_TOKENS_MAX 1000000000000LL

enum xlate_kind { XK_NONE, XK_TEXT, XK_THINK, XK_TOOL };

#define xlate_each(j, arr, e, k)                                                                   \
	for (int k = 0, e = (arr) + 1; k < (j)->tok[(arr)].size; k++, e = json_skip((j), e))

static bool xlate_type(const struct json *j, int i, jsmntype_t t)
{
	return i >= 0 && j->tok[i].type == t;
}

/* Absent or JSON null. */
static bool xlate_nil(const struct json *j, int i)
{
	return i < 0 || str_eq(json_raw(j, i), "null");
}

static bool xlate_num(const struct json *j, int i)
{
	return xlate_type(j, i, JSMN_PRIMITIVE) && !xlate_nil(j, i) &&
	       !str_eq(json_raw(j, i), "true") && !str_eq(json_raw(j, i), "false");
}

/* A string's escaped bytes between the quotes (empty for non-strings). */
static struct str xlate_inner(const struct json *j, int i)
{
	if (!xlate_type(j, i, JSMN_STRING))
		return (struct str){ "", 0 };
	return (struct str){ j->s + j->tok[i].start, (size_t)(j->tok[i].end - j->tok[i].start) };
}

/* A string's raw JSON text, quotes included (empty for non-strings). */
static struct str xlate_raw_str(const struct json *j, int i)
{
	return xlate_type(j, i, JSMN_STRING) ? json_raw(j, i) : (struct str){ "", 0 };
}

/* String token equal to `lit` (escaped spellings never match). */
static bool xlate_is(const struct json *j, int i, const char *lit)
{
	return xlate_type(j, i, JSMN_STRING) && str_eq(xlate_inner(j, i), lit);
}

/* An array of strings. */
static bool xlate_strings(struct json *j, int i)
{
	if (!xlate_type(j, i, JSMN_ARRAY))
		return false;
	xlate_each(j, i, e, k)
		if (!xlate_type(j, e, JSMN_STRING))
			return false;
	return true;
}

/* Non-empty string. */
static bool xlate_has_text(const struct json *j, int i)
{
	return xlate_type(j, i, JSMN_STRING) && j->tok[i].end > j->tok[i].start;
}

static int xlate_fail(struct json *j, const char *why)
{
	j->err = why;
	return -EBADMSG;
}

/* json_obj_get on something that must be an object. */
static int xlate_get(struct json *j, int obj, const char *const *keys, int n, int *v)
{
	if (!xlate_type(j, obj, JSMN_OBJECT)) {
		for (int k = 0; k < n; k++)
			v[k] = -1;
		return xlate_fail(j, "expected a JSON object");
	}
	return json_obj_get(j, obj, keys, n, v, NULL) ? -EBADMSG : 0;
}

/* The "type" of a content block, or -EBADMSG. */
static int xlate_block(struct json *j, int blk, struct str *type)
{
	static const char *const k[] = { "type" };
	int t;
	if (xlate_get(j, blk, k, 1, &t) || !xlate_type(j, t, JSMN_STRING))
		return xlate_fail(j, "content block must be an object with a string \"type\"");
	*type = xlate_inner(j, t);
	return 0;
}

/* Member `key` of object `obj`, or -1 (also when obj is not an object). */
static int xlate_member(struct json *j, int obj, const char *key)
{
	int v;
	if (!xlate_type(j, obj, JSMN_OBJECT) || json_obj_get(j, obj, &key, 1, &v, NULL))
		return -1;
	return v;
}

/* Drop a trailing ',' the element writers leave behind. */
static void xlate_trim(struct sb *out)
{
	if (!out->oom && out->len && out->p[out->len - 1] == ',')
		out->len--;
}

static void xlate_put_block(struct sb *out, const char *head, struct str raw, const char *tail)
{
	sb_puts(out, head);
	sb_str(out, raw);
	sb_puts(out, tail);
}

/* Forget what was written since `mark` (not after OOM: len must stay sane). */
static void xlate_rewind(struct sb *out, size_t mark)
{
	if (!out->oom)
		out->len = mark;
}

/* Escape [s, s+n) into the output's arena; returns the inner bytes. */
static struct str xlate_esc(struct sb *out, const char *s, size_t n)
{
	struct sb t;
	sb_init(&t, out->a, n + 8);
	json_put_str(&t, s, n);
	if (t.oom) {
		out->oom = true;
		return (struct str){ "", 0 };
	}
	return (struct str){ t.p + 1, t.len - 2 };
}

/* How a request translation ends: 0, -EBADMSG (reason in *err) or -ENOMEM. */
static int xlate_done(int rc, const struct json *j, struct sb *out, const char **err)
{
	if (rc == -ENOMEM || (!rc && out->oom)) {
		*err = "out of memory";
		return -ENOMEM;
	}
	if (rc)
		*err = j->err ? j->err : "malformed request";
	return rc ? -EBADMSG : 0;
}

/*
 * Append the text of `i` without quotes: a string's inner bytes, or those of
 * the `field` of every {"type": btype} element of an array, joined by `sep`
 * (already escaped). Other elements are skipped; null is empty. *count counts
 * pieces across calls, so texts join across messages too. 0 or -EBADMSG.
 */
static int xlate_join(struct json *j, int i, const char *btype, const char *field, const char *sep,
		      struct sb *out, int *count)
{
	struct str t;
	if (xlate_nil(j, i))
		return 0;
	if (xlate_type(j, i, JSMN_STRING)) {
		if ((*count)++)
			sb_puts(out, sep);
		sb_str(out, xlate_inner(j, i));
		return 0;
	}
	if (!xlate_type(j, i, JSMN_ARRAY))
		return xlate_fail(j, "content must be a string or an array of blocks");
	xlate_each(j, i, e, k) {
		if (xlate_block(j, e, &t))
			return -EBADMSG;
		if (!str_eq(t, btype))
			continue;
		int v = xlate_member(j, e, field);
		if (!xlate_type(j, v, JSMN_STRING))
			return xlate_fail(j, "text block without a string text");
		if ((*count)++)
			sb_puts(out, sep);
		sb_str(out, xlate_inner(j, v));
	}
	return 0;
}

/* Tool arguments (a JSON string holding JSON text) → an input object; {} if not one. */
static void xlate_args(struct json *j, struct arena *a, int i, struct sb *out)
{
	size_t n = 0;
	struct json sub;
	const char *was = j->err;
	j->err = NULL;
	char *txt = xlate_has_text(j, i) ? json_str(j, a, i, &n) : NULL;
	int rc = txt ? json_parse(&sub, a, txt, n) : -EBADMSG;
	if (rc == -ENOMEM || (xlate_has_text(j, i) && !txt && !j->err))
		out->oom = true; /* an allocation failed: not the input's fault */
	if (rc == 0)
		sb_put(out, txt, n);
	else
		sb_puts(out, "{}");
	j->err = was;
}

static const char *xlate_status_type(int status)
{
	switch (status) {
	case 400: return "invalid_request_error";
	case 401: return "authentication_error";
	case 402: return "billing_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 413: return "request_too_large";
	case 429: return "rate_limit_error";
	case 504: return "timeout_error";
	case 529: return "overloaded_error";
	default: return "api_error";
	}
}

/* Characters of the string values of `keys` in a JSON text, an escape counting as one. A
 * scan, not a parse: cheap enough for every relayed event; malformed input only miscounts. */
static size_t xlate_chars(const char *p, size_t n, const char *const *keys, size_t nkeys)
{
	size_t total = 0, i = 0;
	while (i < n) {
		if (p[i++] != '"')
			continue;
		size_t k0 = i; /* a string: a key when a ':' and another string follow */
		while (i < n && p[i] != '"')
			i += p[i] == '\\' ? 2 : 1;
		size_t k1 = MIN(i, n), j = i + 1;
		while (j < n && json_ws(p[j]))
			j++;
		if (j >= n || p[j] != ':')
			continue;
		for (j++; j < n && json_ws(p[j]); j++)
			;
		if (j >= n || p[j] != '"')
			continue;
		bool want = false;
		for (size_t q = 0; q < nkeys && !want; q++)
			want = strlen(keys[q]) == k1 - k0 && memcmp(p + k0, keys[q], k1 - k0) == 0;
		size_t chars = 0;
		for (i = j + 1; i < n && p[i] != '"'; chars++)
			i += p[i] != '\\' ? 1 : i + 1 < n && p[i + 1] == 'u' ? 6 : 2;
		i++;
		if (want)
			total += chars;
	}
	return total;
}

/* Characters of generated content in one stream event: what a stream the client cut off is
 * billed from (about four characters a token) when the provider's own count never came.
 * Chat Completions and Messages: "text", "thinking", "partial_json", "content",
 * "reasoning_content", "arguments". Responses: only the "delta" strings (its .done events
 * and response.completed repeat the whole text). */
static size_t xlate_content_chars(const char *p, size_t n)
{
	static const char *const keys[] = { "text", "thinking", "partial_json", "content", "reasoning_content",
					     "arguments" };
	return xlate_chars(p, n, keys, ARRAY_LEN(keys));
}

static size_t xlate_delta_chars(const char *p, size_t n)
{
	static const char *const keys[] = { "delta" };
	return xlate_chars(p, n, keys, 1);
}

/* A token count from the provider, held to [0, XLATE_TOKENS_MAX]; an absent one is `dflt`. */
static long long xlate_tokens(const struct json *j, int i, long long dflt, struct xlate_usage *u)
{
	long long v = json_int(j, i, dflt);
	if (v >= 0 && v <= XLATE_TOKENS_MAX)
		return v;
	u->clamped = true;
	return v < 0 ? 0 : XLATE_TOKENS_MAX;
}

/* Usage readers: only the fields present overwrite `u`. */
/* OpenAI's usage objects: k = input count (cache included), output count, input details,
 * output details. */
static void xlate_usage_from_oai(struct json *j, int usage, struct xlate_usage *u, const char *const k[4])
{
	int v[4];
	if (xlate_get(j, usage, k, 4, v))
		return;
	u->reasoning = xlate_tokens(j, xlate_member(j, v[3], "reasoning_tokens"), u->reasoning, u);
	int cached = xlate_member(j, v[2], "cached_tokens");
	long long p = xlate_tokens(j, v[0], u->in + u->cache_read, u);
	u->cache_read = xlate_tokens(j, cached, u->cache_read, u);
	u->in = p > u->cache_read ? p - u->cache_read : 0;
	u->out = xlate_tokens(j, v[1], u->out, u);
}

/* Chat Completions' usage. */
static void xlate_usage_from_o(struct json *j, int usage, struct xlate_usage *u)
{
	static const char *const k[] = { "prompt_tokens", "completion_tokens", "prompt_tokens_details",
					 "completion_tokens_details" };
	xlate_usage_from_oai(j, usage, u, k);
}

/* The Responses API's usage (output_tokens includes reasoning tokens). */
static void xlate_usage_from_r(struct json *j, int usage, struct xlate_usage *u)
{
	static const char *const k[] = { "input_tokens", "output_tokens", "input_tokens_details",
					 "output_tokens_details" };
	xlate_usage_from_oai(j, usage, u, k);
}

/* A usage object whose four counts (input without cache, output, cache read, cache write) are
 * named k[]: Anthropic's, and Bedrock Converse's. */
static void xlate_usage_named(struct json *j, int usage, struct xlate_usage *u, const char *const k[4])
{
	int v[4];
	if (xlate_get(j, usage, k, 4, v))
		return;
	u->in = xlate_tokens(j, v[0], u->in, u);
	u->out = xlate_tokens(j, v[1], u->out, u);
	u->cache_read = xlate_tokens(j, v[2], u->cache_read, u);
	u->cache_write = xlate_tokens(j, v[3], u->cache_write, u);
}

static void xlate_usage_from_a(struct json *j, int usage, struct xlate_usage *u)
{
	static const char *const k[] = { "input_tokens", "output_tokens", "cache_read_input_tokens",
					 "cache_creation_input_tokens" };
	xlate_usage_named(j, usage, u, k);
}

static void xlate_put_usage_a(struct sb *out, const struct xlate_usage *u)
{
	sb_printf(out,
		  "{\"input_tokens\":%lld,\"output_tokens\":%lld,\"cache_read_input_tokens\":%lld,"
		  "\"cache_creation_input_tokens\":%lld}",
		  u->in, u->out, u->cache_read, u->cache_write);
}

static void xlate_put_usage_o(struct sb *out, const struct xlate_usage *u)
{
	long long p = u->in + u->cache_read + u->cache_write;
	sb_printf(out,
		  "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
		  "\"prompt_tokens_details\":{\"cached_tokens\":%lld}}",
		  p, u->out, p + u->out, u->cache_read);
}

static const char *xlate_stop_o2a(struct str fr, bool tools)
{
	if (str_eq(fr, "length"))
		return "max_tokens";
	if (str_eq(fr, "tool_calls") || str_eq(fr, "function_call") ||
	    (tools && str_eq(fr, "stop")))
		return "tool_use";
	return "end_turn";
}

static const char *xlate_stop_a2o(struct str sr)
{
	if (str_eq(sr, "max_tokens"))
		return "length";
	if (str_eq(sr, "tool_use"))
		return "tool_calls";
	if (str_eq(sr, "refusal"))
		return "content_filter";
	return "stop";
}

/*
 * The message of an error body, escaped: error.message, a string error, a
 * top-level message, else the body itself (first 512 bytes, cut on a UTF-8
 * boundary), else "upstream returned HTTP <status>". j may be NULL (not JSON).
 */
static struct str xlate_err_msg(struct json *j, const char *body, size_t n, int status,
				struct sb *out)
{
	if (j) {
		int m = xlate_member(j, 0, "error");
		if (xlate_type(j, m, JSMN_OBJECT))
			m = xlate_member(j, m, "message");
		else if (!xlate_type(j, m, JSMN_STRING))
			m = xlate_member(j, 0, "message");
		if (xlate_has_text(j, m))
			return xlate_inner(j, m);
	}
	if (n) {
		size_t k = MIN(n, 512);
		while (k < n && k > 0 && ((unsigned char)body[k] & 0xC0) == 0x80)
			k--;
		return xlate_esc(out, body, k);
	}
	char z[48];
	return xlate_esc(out, z,
			 (size_t)snprintf(z, sizeof(z), "upstream returned HTTP %d", status));
}

/* {"type":"error","error":{"type":T,"message":M}} (Anthropic shape; msg escaped). */
static void xlate_put_err_a(struct sb *out, const char *type, struct str msg)
{
	sb_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type);
	xlate_put_block(out, "\"", msg, "\"");
	sb_puts(out, "}}");
}

/* {"error":{"message":M,"type":T,"param":null,"code":null} (OpenAI shape; both escaped). */
static void xlate_put_err_o(struct sb *out, struct str type, struct str msg)
{
	sb_puts(out, "{\"error\":{\"message\":");
	xlate_put_block(out, "\"", msg, "\"");
	sb_puts(out, ",\"type\":");
	xlate_put_block(out, "\"", type, "\"");
	sb_puts(out, ",\"param\":null,\"code\":null}}");
}

/* ---- Anthropic request → OpenAI request -------------------------------- */

/* {"type":"image_url","image_url":{"url":...}}, from an Anthropic image block. */
static int xlate_a2o_image(struct json *j, int blk, struct sb *out)
{
	static const char *const k[] = { "type", "media_type", "data", "url" };
	int v[4];
	if (xlate_get(j, xlate_member(j, blk, "source"), k, 4, v))
		return xlate_fail(j, "image block needs a \"source\" object");
	sb_puts(out, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
	if (xlate_is(j, v[0], "base64") && xlate_type(j, v[1], JSMN_STRING) &&
	    xlate_type(j, v[2], JSMN_STRING)) {
		xlate_put_block(out, "\"data:", xlate_inner(j, v[1]), ";base64,");
		sb_str(out, xlate_inner(j, v[2]));
		sb_puts(out, "\"");
	} else if (xlate_is(j, v[0], "url") && xlate_type(j, v[3], JSMN_STRING)) {
		sb_str(out, json_raw(j, v[3]));
	} else {
		return xlate_fail(j, "image source must be base64 (media_type, data) or url");
	}
	sb_puts(out, "}},");
	return 0;
}

/* {"role":"tool",...} for one tool_result block; is_error prefixes "Error: ". */
static int xlate_a2o_tool_result(struct json *j, int blk, struct sb *out)
{
	static const char *const k[] = { "tool_use_id", "content", "is_error" };
	int v[3], n = 0;
	if (xlate_get(j, blk, k, 3, v) || !xlate_type(j, v[0], JSMN_STRING))
		return xlate_fail(j, "tool_result needs a string \"tool_use_id\"");
	xlate_put_block(out, "{\"role\":\"tool\",\"tool_call_id\":", json_raw(j, v[0]),
			",\"content\":\"");
	if (json_is_true(j, v[2]))
		sb_puts(out, "Error: ");
	if (xlate_join(j, v[1], "text", "text", "\\n", out, &n))
		return -EBADMSG;
	sb_puts(out, "\"},");
	return 0;
}

/*
 * The parts of a user turn: its text and image blocks, plus the images nested
 * in its tool_results (`nested`: we are inside one). *n counts parts; *text is
 * the last text part's token, so n == 1 && text >= 0 means "just one text".
 */
static int xlate_a2o_parts(struct json *j, int arr, bool nested, struct sb *out, int *n, int *text)
{
	struct str t;
	xlate_each(j, arr, e, k) {
		if (xlate_block(j, e, &t))
			return -EBADMSG;
		if (str_eq(t, "image")) {
			if (xlate_a2o_image(j, e, out))
				return -EBADMSG;
			(*n)++;
		} else if (nested) {
			continue;
		} else if (str_eq(t, "text")) {
			*text = xlate_member(j, e, "text");
			if (!xlate_type(j, *text, JSMN_STRING))
				return xlate_fail(j, "text block without a string text");
			xlate_put_block(out, "{\"type\":\"text\",\"text\":", json_raw(j, *text),
					"},");
			(*n)++;
		} else if (str_eq(t, "tool_result")) {
			int c = xlate_member(j, e, "content");
			if (xlate_type(j, c, JSMN_ARRAY) &&
			    xlate_a2o_parts(j, c, true, out, n, text))
				return -EBADMSG;
		} else {
			return xlate_fail(j, "unsupported content block in a user turn");
		}
	}
	return 0;
}

/* A user turn: its tool_results first (as tool messages), then the rest. */
static int xlate_a2o_user(struct json *j, int content, struct sb *out)
{
	struct str t;
	int n = 0, text = -1;
	if (xlate_type(j, content, JSMN_STRING)) {
		xlate_put_block(out, "{\"role\":\"user\",\"content\":", json_raw(j, content), "},");
		return 0;
	}
	xlate_each(j, content, e, k)
		if (xlate_block(j, e, &t) ||
		    (str_eq(t, "tool_result") && xlate_a2o_tool_result(j, e, out)))
			return -EBADMSG;
	size_t mark = out->len;
	sb_puts(out, "{\"role\":\"user\",\"content\":[");
	if (xlate_a2o_parts(j, content, false, out, &n, &text))
		return -EBADMSG;
	if (!n)
		xlate_rewind(out, mark);
	if (n == 1 && text >= 0) {
		xlate_rewind(out, mark);
		xlate_put_block(out, "{\"role\":\"user\",\"content\":", json_raw(j, text), "},");
	} else if (n) {
		xlate_trim(out);
		sb_puts(out, "]},");
	}
	return 0;
}

/* ,"tool_calls":[...] from the tool_use blocks of `content`: their count or -EBADMSG. */
static int xlate_a2o_tool_calls(struct json *j, int content, struct sb *out)
{
	static const char *const k[] = { "id", "name", "input" };
	struct str t;
	int v[3], n = 0;
	size_t mark = out->len;
	sb_puts(out, ",\"tool_calls\":[");
	xlate_each(j, content, e, i) {
		if (xlate_block(j, e, &t))
			return -EBADMSG;
		if (str_eq(t, "text") || str_eq(t, "thinking") || str_eq(t, "redacted_thinking"))
			continue;
		if (!str_eq(t, "tool_use"))
			return xlate_fail(j, "unsupported content block in an assistant turn");
		if (xlate_get(j, e, k, 3, v) || !xlate_type(j, v[0], JSMN_STRING) ||
		    !xlate_type(j, v[1], JSMN_STRING) || !xlate_type(j, v[2], JSMN_OBJECT))
			return xlate_fail(j, "tool_use needs an id, a name and an object input");
		struct str input = json_raw(j, v[2]);
		xlate_put_block(out, "{\"id\":", json_raw(j, v[0]),
				",\"type\":\"function\",\"function\":{\"name\":");
		sb_str(out, json_raw(j, v[1]));
		sb_puts(out, ",\"arguments\":");
		json_put_str(out, input.p, input.n);
		sb_puts(out, "}},");
		n++;
	}
	if (!n) {
		xlate_rewind(out, mark);
		return 0;
	}
	xlate_trim(out);
	sb_puts(out, "]");
	return n;
}

/* An assistant turn: tool_use → tool_calls, text → content (null if only tools). */
static int xlate_a2o_assistant(struct json *j, int content, struct sb *out)
{
	int n = 0, calls = 0;
	sb_puts(out, "{\"role\":\"assistant\"");
	if (xlate_type(j, content, JSMN_ARRAY) &&
	    (calls = xlate_a2o_tool_calls(j, content, out)) < 0)
		return -EBADMSG;
	sb_puts(out, ",\"content\":");
	size_t mark = out->len;
	sb_puts(out, "\"");
	if (xlate_join(j, content, "text", "text", "", out, &n))
		return -EBADMSG;
	sb_puts(out, "\"},");
	if (!n && calls) {
		xlate_rewind(out, mark);
		sb_puts(out, "null},");
	}
	return 0;
}

/* The messages array: system first, then each turn. */
static int xlate_a2o_messages(struct json *j, int sys, int msgs, struct sb *out)
{
	static const char *const k[] = { "role", "content" };
	int v[2], n = 0;
	sb_puts(out, ",\"messages\":[");
	size_t mark = out->len;
	sb_puts(out, "{\"role\":\"system\",\"content\":\"");
	if (xlate_join(j, sys, "text", "text", "\\n", out, &n))
		return -EBADMSG;
	sb_puts(out, "\"},");
	if (!n)
		xlate_rewind(out, mark);
	xlate_each(j, msgs, e, i) {
		if (xlate_get(j, e, k, 2, v) ||
		    !(xlate_type(j, v[1], JSMN_STRING) || xlate_type(j, v[1], JSMN_ARRAY)))
			return xlate_fail(j, "a message needs a role and string or array content");
		if (xlate_is(j, v[0], "user")) {
			if (xlate_a2o_user(j, v[1], out))
				return -EBADMSG;
		} else if (xlate_is(j, v[0], "assistant")) {
			if (xlate_a2o_assistant(j, v[1], out))
				return -EBADMSG;
		} else if (xlate_is(j, v[0], "system")) { /* Claude Code 2.1 sends these mid-conversation */
			int nt = 0;
			mark = out->len;
			sb_puts(out, "{\"role\":\"system\",\"content\":\"");
			if (xlate_join(j, v[1], "text", "text", "\\n", out, &nt))
				return -EBADMSG;
			sb_puts(out, "\"},");
			if (!nt)
				xlate_rewind(out, mark);
		} else {
			return xlate_fail(j, "message role must be \"user\", \"assistant\" or \"system\"");
		}
	}
	xlate_trim(out);
	sb_puts(out, "]");
	return 0;
}

/* tools → function tools (server tools dropped); tool_choice kept only with tools. */
static int xlate_a2o_tools(struct json *j, int tools, int choice, struct sb *out)
{
	static const char *const k[] = { "name", "description", "input_schema" };
	static const char *const c[] = { "type", "name", "disable_parallel_tool_use" };
	int v[3], n = 0;
	if (xlate_nil(j, tools))
		return 0;
	if (!xlate_type(j, tools, JSMN_ARRAY))
		return xlate_fail(j, "\"tools\" must be an array");
	size_t mark = out->len;
	sb_puts(out, ",\"tools\":[");
	xlate_each(j, tools, e, i) {
		if (xlate_get(j, e, k, 3, v) || !xlate_type(j, v[0], JSMN_STRING))
			return xlate_fail(j, "each tool needs a string \"name\"");
		if (!xlate_type(j, v[2], JSMN_OBJECT))
			continue;
		xlate_put_block(out,
				"{\"type\":\"function\",\"function\":{\"name\":", json_raw(j, v[0]),
				"");
		if (xlate_type(j, v[1], JSMN_STRING)) {
			xlate_put_block(out, ",\"description\":", json_raw(j, v[1]), "");
		}
		xlate_put_block(out, ",\"parameters\":", json_raw(j, v[2]), "}},");
		n++;
	}
	xlate_trim(out);
	sb_puts(out, "]");
	if (!n)
		xlate_rewind(out, mark);
	if (!n || xlate_nil(j, choice))
		return 0;
	if (xlate_get(j, choice, c, 3, v))
		return xlate_fail(j, "\"tool_choice\" must be an object");
	if (xlate_is(j, v[0], "auto") || xlate_is(j, v[0], "none")) {
		xlate_put_block(out, ",\"tool_choice\":", json_raw(j, v[0]), "");
	} else if (xlate_is(j, v[0], "any")) {
		sb_puts(out, ",\"tool_choice\":\"required\"");
	} else if (xlate_is(j, v[0], "tool") && xlate_type(j, v[1], JSMN_STRING)) {
		xlate_put_block(out,
				",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":",
				json_raw(j, v[1]), "}}");
	} else {
		return xlate_fail(j, "tool_choice must be auto, any, none or tool with a name");
	}
	if (json_is_true(j, v[2]))
		sb_puts(out, ",\"parallel_tool_calls\":false");
	return 0;
}

/* thinking → reasoning_effort (reasoning models only). */
static int xlate_a2o_thinking(struct json *j, int th, bool reasoning_model, struct sb *out)
{
	static const char *const k[] = { "type", "budget_tokens" };
	int v[2];
	if (xlate_nil(j, th))
		return 0;
	if (xlate_get(j, th, k, 2, v) || !xlate_type(j, v[0], JSMN_STRING))
		return xlate_fail(j, "\"thinking\" must be an object with a \"type\"");
	if (!reasoning_model || xlate_is(j, v[0], "disabled"))
		return 0;
	const char *effort = "medium";
	if (xlate_is(j, v[0], "enabled")) {
		if (!xlate_num(j, v[1]))
			return xlate_fail(j, "\"thinking.budget_tokens\" must be a number");
		long long b = json_int(j, v[1], 0);
		effort = b <= 1024 ? "low" : b <= 8192 ? "medium" : "high";
	}
	sb_printf(out, ",\"reasoning_effort\":\"%s\"", effort);
	return 0;
}

/* ,"as":<number i> when present; -EBADMSG when present but not a number. */
static int xlate_copy_num(struct json *j, int i, const char *as, struct sb *out)
{
	if (xlate_nil(j, i))
		return 0;
	if (!xlate_num(j, i))
		return xlate_fail(j, "max_tokens, temperature and top_p must be numbers");
	sb_printf(out, ",\"%s\":", as);
	sb_str(out, json_raw(j, i));
	return 0;
}

/* The members of an Anthropic request that are read. */
enum { XA_MSGS, XA_SYS, XA_TOOLS, XA_MAX, XA_TEMP, XA_TOPP, XA_STOP, XA_STREAM, XA_META, XA_TC,
       XA_THINK, XA_N };
static const char *const xlate_a_keys[XA_N] = { "messages", "system", "tools", "max_tokens",
						"temperature", "top_p", "stop_sequences", "stream",
						"metadata", "tool_choice", "thinking" };

/* Sampling and bookkeeping members (v: values of xlate_a_keys). */
static int xlate_a2o_params(struct json *j, const int *v, bool reasoning_model, struct sb *out)
{
	if (xlate_copy_num(j, v[XA_MAX], reasoning_model ? "max_completion_tokens" : "max_tokens",
			   out) ||
	    xlate_copy_num(j, v[XA_TEMP], "temperature", out) ||
	    xlate_copy_num(j, v[XA_TOPP], "top_p", out))
		return -EBADMSG;
	if (!xlate_nil(j, v[XA_STOP]) && !xlate_strings(j, v[XA_STOP]))
		return xlate_fail(j, "\"stop_sequences\" must be an array of strings");
	if (!xlate_nil(j, v[XA_STOP]) && j->tok[v[XA_STOP]].size) {
		xlate_put_block(out, ",\"stop\":", json_raw(j, v[XA_STOP]), "");
	}
	if (json_is_true(j, v[XA_STREAM]))
		sb_puts(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
	int uid = xlate_member(j, v[XA_META], "user_id");
	if (xlate_type(j, uid, JSMN_STRING)) {
		xlate_put_block(out, ",\"user\":", json_raw(j, uid), "");
	}
	return 0;
}

static int xlate_req_a2o(struct arena *a, const char *body, size_t n, const char *model,
			 bool reasoning_model, struct sb *out, const char **err)
{
	struct json j;
	int v[XA_N], rc = json_parse(&j, a, body, n);
	if (!rc && !(rc = json_obj_get(&j, 0, xlate_a_keys, XA_N, v, NULL)) &&
	    !xlate_type(&j, v[XA_MSGS], JSMN_ARRAY))
		rc = xlate_fail(&j, v[XA_MSGS] < 0 ? "missing \"messages\""
						   : "\"messages\" must be an array");
	if (!rc) {
		sb_puts(out, "{\"model\":");
		json_put_z(out, model);
	}
	if (!rc && !(rc = xlate_a2o_messages(&j, v[XA_SYS], v[XA_MSGS], out)) &&
	    !(rc = xlate_a2o_params(&j, v, reasoning_model, out)) &&
	    !(rc = xlate_a2o_tools(&j, v[XA_TOOLS], v[XA_TC], out)) &&
	    !(rc = xlate_a2o_thinking(&j, v[XA_THINK], reasoning_model, out)))
		sb_puts(out, "}");
	return xlate_done(rc, &j, out, err);
}

/* ---- OpenAI response → Anthropic response ------------------------------ */

/* tool_use blocks from OpenAI tool_calls (arguments parsed into input). */
static int xlate_o2a_tool_uses(struct json *j, struct arena *a, int calls, struct sb *out)
{
	static const char *const k[] = { "id", "function" };
	int v[2];
	if (!xlate_type(j, calls, JSMN_ARRAY))
		return xlate_nil(j, calls) ? 0 : xlate_fail(j, "\"tool_calls\" must be an array");
	xlate_each(j, calls, e, i) {
		int name = -1;
		if (xlate_get(j, e, k, 2, v) || !xlate_type(j, v[0], JSMN_STRING) ||
		    !xlate_type(j, name = xlate_member(j, v[1], "name"), JSMN_STRING))
			return xlate_fail(j, "tool call needs a string id and function.name");
		xlate_put_block(out, "{\"type\":\"tool_use\",\"id\":", json_raw(j, v[0]),
				",\"name\":");
		sb_str(out, json_raw(j, name));
		sb_puts(out, ",\"input\":");
		xlate_args(j, a, xlate_member(j, v[1], "arguments"), out);
		sb_puts(out, "},");
	}
	return j->tok[calls].size;
}

/* The content array of one choice: thinking, text, refusal (as text), tool_use. */
static int xlate_o2a_content(struct json *j, struct arena *a, int msg, struct sb *out)
{
	static const char *const k[] = { "content", "reasoning_content", "refusal", "tool_calls" };
	int v[4];
	if (xlate_get(j, msg, k, 4, v))
		return xlate_fail(j, "choice needs a \"message\" object");
	for (int i = 0; i < 3; i++)
		if (!xlate_nil(j, v[i]) && !xlate_type(j, v[i], JSMN_STRING))
			return xlate_fail(j, "message content must be a string");
	sb_puts(out, ",\"content\":[");
	if (xlate_has_text(j, v[1]))
		xlate_put_block(out, "{\"type\":\"thinking\",\"thinking\":", json_raw(j, v[1]),
				",\"signature\":\"\"},");
	for (int i = 0; i < 3; i += 2)
		if (xlate_has_text(j, v[i]))
			xlate_put_block(out, "{\"type\":\"text\",\"text\":", json_raw(j, v[i]),
					"},");
	int n = xlate_o2a_tool_uses(j, a, v[3], out);
	xlate_trim(out);
	sb_puts(out, "]");
	return n;
}

static int xlate_resp_o2a(struct arena *a, const char *body, size_t n, const char *model,
			  struct sb *out, struct xlate_usage *u)
{
	static const char *const k[] = { "id", "choices", "usage" };
	static const char *const c[] = { "message", "finish_reason" };
	struct json j;
	int v[3], ch[2], tools = -EBADMSG;
	memset(u, 0, sizeof(*u));
	int rc = json_parse(&j, a, body, n);
	if (rc)
		return rc;
	if (json_obj_get(&j, 0, k, 3, v, NULL) || !xlate_type(&j, v[1], JSMN_ARRAY) ||
	    j.tok[v[1]].size < 1 || xlate_get(&j, v[1] + 1, c, 2, ch))
		return -EBADMSG;
	xlate_usage_from_o(&j, v[2], u);
	struct str id = xlate_raw_str(&j, v[0]);
	xlate_put_block(out, "{\"id\":", id.n ? id : STR("\"msg_bifrost\""),
			",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
	json_put_z(out, model);
	if ((tools = xlate_o2a_content(&j, a, ch[0], out)) < 0)
		return -EBADMSG;
	sb_printf(out, ",\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":",
		  xlate_stop_o2a(xlate_inner(&j, ch[1]), tools > 0));
	xlate_put_usage_a(out, u);
	sb_puts(out, "}");
	return out->oom ? -ENOMEM : 0;
}

/* ---- OpenAI stream → Anthropic stream ---------------------------------- */

struct xlate_o2a {
	const char *model;    /* borrowed: outlives the stream */
	const char *msg_id;   /* borrowed: outlives the stream */
	int nblocks;          /* content blocks started; the open one is nblocks - 1 */
	long long tool;       /* highest tool_calls[].index seen (-1: none) */
	enum xlate_kind open; /* kind of the open block, XK_NONE when none */
	bool started;         /* message_start sent */
	bool tools;           /* a tool block was started */
	bool have_usage;      /* a usage object arrived */
	bool done;            /* message_stop or error sent: ignore the rest */
	const char *stop;     /* static: stop_reason held since finish_reason, or NULL */
	struct xlate_usage usage;
};

static void xlate_o2a_init(struct xlate_o2a *s, const char *model, const char *msg_id)
{
	memset(s, 0, sizeof(*s));
	s->model = model;
	s->msg_id = msg_id;
	s->tool = -1;
}

/* "event: NAME\ndata: {"type":"NAME"" — members follow, then xlate_ev_end. */
static void xlate_ev(struct sb *out, const char *name)
{
	sb_printf(out, "event: %s\ndata: {\"type\":\"%s\"", name, name);
}

static void xlate_ev_end(struct sb *out)
{
	sb_puts(out, "}\n\n");
}

static void xlate_o2a_start(struct xlate_o2a *s, struct sb *out)
{
	static const struct xlate_usage zero;
	if (s->started)
		return;
	s->started = true;
	xlate_ev(out, "message_start");
	sb_puts(out, ",\"message\":{\"id\":");
	json_put_z(out, s->msg_id);
	sb_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
	json_put_z(out, s->model);
	sb_puts(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
	xlate_put_usage_a(out, &zero);
	sb_puts(out, "}");
	xlate_ev_end(out);
}

static void xlate_o2a_close(struct xlate_o2a *s, struct sb *out)
{
	if (s->open == XK_NONE)
		return;
	xlate_ev(out, "content_block_stop");
	sb_printf(out, ",\"index\":%d", s->nblocks - 1);
	xlate_ev_end(out);
	s->open = XK_NONE;
}

/* Stop the open block and start one of kind k; id and name are raw JSON (tools). */
static void xlate_o2a_open(struct xlate_o2a *s, enum xlate_kind k, struct str id, struct str name,
			   struct sb *out)
{
	xlate_o2a_close(s, out);
	xlate_ev(out, "content_block_start");
	sb_printf(out, ",\"index\":%d,\"content_block\":", s->nblocks);
	if (k == XK_TEXT) {
		sb_puts(out, "{\"type\":\"text\",\"text\":\"\"}");
	} else if (k == XK_THINK) {
		sb_puts(out, "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}");
	} else {
		sb_puts(out, "{\"type\":\"tool_use\",\"id\":");
		if (id.n) {
			sb_str(out, id);
		} else {
			xlate_put_block(out, "\"toolu_",
					xlate_esc(out, s->msg_id, strlen(s->msg_id)), "");
			sb_printf(out, "_%d\"", s->nblocks);
		}
		xlate_put_block(out, ",\"name\":", name.n ? name : STR("\"\""), ",\"input\":{}}");
		s->tools = true;
	}
	xlate_ev_end(out);
	s->open = k;
	s->nblocks++;
}

/* A delta for the open block (of kind k, opened if needed): {"type":dtype, field: raw}. */
static void xlate_o2a_delta(struct xlate_o2a *s, enum xlate_kind k, const char *dtype,
			    const char *field, struct str raw, struct sb *out)
{
	if (s->open != k)
		xlate_o2a_open(s, k, (struct str){ "", 0 }, (struct str){ "", 0 }, out);
	xlate_ev(out, "content_block_delta");
	sb_printf(out, ",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":", s->nblocks - 1, dtype,
		  field);
	sb_str(out, raw);
	sb_puts(out, "}");
	xlate_ev_end(out);
}

/* message_delta (held stop reason + usage) and message_stop. */
static void xlate_o2a_finish(struct xlate_o2a *s, struct sb *out)
{
	xlate_o2a_start(s, out);
	xlate_o2a_close(s, out);
	xlate_ev(out, "message_delta");
	sb_printf(out, ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":",
		  s->stop ? s->stop : "end_turn");
	xlate_put_usage_a(out, &s->usage);
	xlate_ev_end(out);
	xlate_ev(out, "message_stop");
	xlate_ev_end(out);
	s->done = true;
}

/* event: error (an api_error); msg is escaped message text. */
static void xlate_o2a_error(struct xlate_o2a *s, struct str msg, struct sb *out)
{
	sb_puts(out, "event: error\ndata: ");
	xlate_put_err_a(out, "api_error", msg);
	sb_puts(out, "\n\n");
	s->done = true;
}

/* One tool_calls[] fragment: a new index starts a tool block; arguments → input_json_delta. */
static int xlate_o2a_tool(struct xlate_o2a *s, struct json *j, int tc, struct sb *out)
{
	static const char *const k[] = { "index", "id", "function" };
	static const char *const f[] = { "name", "arguments" };
	int v[3], fv[2] = { -1, -1 };
	if (xlate_get(j, tc, k, 3, v) || (!xlate_nil(j, v[2]) && xlate_get(j, v[2], f, 2, fv)) ||
	    (!xlate_nil(j, v[1]) && !xlate_type(j, v[1], JSMN_STRING)) ||
	    (!xlate_nil(j, fv[0]) && !xlate_type(j, fv[0], JSMN_STRING)) ||
	    (!xlate_nil(j, fv[1]) && !xlate_type(j, fv[1], JSMN_STRING)))
		return xlate_fail(j, "malformed tool_calls fragment");
	long long idx = json_int(j, v[0], 0);
	if (idx > s->tool) {
		xlate_o2a_open(s, XK_TOOL, xlate_raw_str(j, v[1]), xlate_raw_str(j, fv[0]), out);
		s->tool = idx;
	} else if (idx < s->tool || s->open != XK_TOOL) {
		return 0; /* a call already closed: blocks cannot reopen */
	}
	if (xlate_has_text(j, fv[1]))
		xlate_o2a_delta(s, XK_TOOL, "input_json_delta", "partial_json", json_raw(j, fv[1]),
				out);
	return 0;
}

/* choices[0]: reasoning, text and tool fragments in that order, then finish_reason. */
static int xlate_o2a_choice(struct xlate_o2a *s, struct json *j, int ch, struct sb *out)
{
	static const char *const k[] = { "delta", "finish_reason" };
	static const char *const d[] = { "content", "reasoning_content", "tool_calls" };
	int v[2], dv[3] = { -1, -1, -1 };
	if (xlate_get(j, ch, k, 2, v) || (!xlate_nil(j, v[0]) && xlate_get(j, v[0], d, 3, dv)))
		return xlate_fail(j, "malformed choice in chunk");
	if (xlate_has_text(j, dv[1]))
		xlate_o2a_delta(s, XK_THINK, "thinking_delta", "thinking", json_raw(j, dv[1]), out);
	if (xlate_has_text(j, dv[0]))
		xlate_o2a_delta(s, XK_TEXT, "text_delta", "text", json_raw(j, dv[0]), out);
	if (xlate_type(j, dv[2], JSMN_ARRAY))
		xlate_each(j, dv[2], e, i)
			if (xlate_o2a_tool(s, j, e, out))
				return -EBADMSG;
	if (xlate_type(j, v[1], JSMN_STRING)) {
		s->stop = xlate_stop_o2a(xlate_inner(j, v[1]), s->tools);
		xlate_o2a_close(s, out);
	}
	return 0;
}

/*
 * One `data:` payload of an OpenAI stream ([DONE] included) → whole Anthropic
 * events appended to out. 0, -EBADMSG (not a chunk: the caller ends the
 * stream with xlate_o2a_end(s, reason)), or -ENOMEM.
 */
static int xlate_o2a_chunk(struct xlate_o2a *s, struct arena *a, const char *data, size_t n,
			   struct sb *out)
{
	static const char *const k[] = { "choices", "usage", "error" };
	struct json j;
	int v[3];
	if (s->done)
		return 0;
	while (n && json_ws(data[n - 1]))
		n--;
	if (str_eq((struct str){ data, n }, "[DONE]")) {
		xlate_o2a_finish(s, out);
		return out->oom ? -ENOMEM : 0;
	}
	int rc = json_parse(&j, a, data, n);
	if (rc || (rc = json_obj_get(&j, 0, k, 3, v, NULL)))
		return rc;
	if (!xlate_nil(&j, v[2])) {
		xlate_o2a_error(s, xlate_err_msg(&j, data, n, 0, out), out);
		return out->oom ? -ENOMEM : 0;
	}
	xlate_o2a_start(s, out);
	if (xlate_type(&j, v[0], JSMN_ARRAY) && j.tok[v[0]].size &&
	    xlate_o2a_choice(s, &j, v[0] + 1, out))
		return -EBADMSG;
	if (xlate_type(&j, v[1], JSMN_OBJECT)) {
		xlate_usage_from_o(&j, v[1], &s->usage);
		s->have_usage = true;
	}
	if (s->stop && s->have_usage)
		xlate_o2a_finish(s, out);
	return out->oom ? -ENOMEM : 0;
}

/* End of the upstream stream: close properly, or report `error` (NULL: none). */
static void xlate_o2a_end(struct xlate_o2a *s, const char *error, struct sb *out)
{
	if (s->done)
		return;
	if (error)
		xlate_o2a_error(s, xlate_esc(out, error, strlen(error)), out);
	else
		xlate_o2a_finish(s, out);
}

/* ---- OpenAI request → Anthropic request -------------------------------- */

/* An image block from an image_url part: data URLs → base64 source, others → url source. */
static int xlate_o2a_image(struct json *j, int part, struct sb *out)
{
	int iu = xlate_member(j, part, "image_url");
	int u = xlate_type(j, iu, JSMN_STRING) ? iu : xlate_member(j, iu, "url");
	struct str url = xlate_inner(j, u), mt;
	if (!xlate_has_text(j, u))
		return xlate_fail(j, "image_url needs a url");
	sb_puts(out, "{\"type\":\"image\",\"source\":");
	if (!str_starts(url, "data:")) {
		sb_puts(out, "{\"type\":\"url\",\"url\":");
		xlate_put_block(out, "\"", url, "\"");
		sb_puts(out, "}},");
		return 0;
	}
	const char *b64 = memmem(url.p, url.n, ";base64,", 8);
	if (!b64)
		return xlate_fail(j, "image data URL must be base64");
	mt = (struct str){ url.p + 5, (size_t)(b64 - url.p) - 5 };
	sb_puts(out, "{\"type\":\"base64\",\"media_type\":");
	xlate_put_block(out, "\"", mt, "\"");
	sb_puts(out, ",\"data\":");
	xlate_put_block(out, "\"", (struct str){ b64 + 8, url.n - mt.n - 13 }, "\"");
	sb_puts(out, "}},");
	return 0;
}

/* A user message: string content as is, parts → text and image blocks. */
static int xlate_o2a_user(struct json *j, int content, struct sb *out)
{
	struct str t;
	sb_puts(out, "{\"role\":\"user\",\"content\":");
	if (xlate_type(j, content, JSMN_STRING)) {
		sb_str(out, json_raw(j, content));
		sb_puts(out, "},");
		return 0;
	}
	if (!xlate_type(j, content, JSMN_ARRAY))
		return xlate_fail(j, "user content must be a string or an array of parts");
	sb_puts(out, "[");
	xlate_each(j, content, e, k) {
		if (xlate_block(j, e, &t))
			return -EBADMSG;
		int text = xlate_member(j, e, "text");
		if (str_eq(t, "text") && xlate_type(j, text, JSMN_STRING)) {
			xlate_put_block(out, "{\"type\":\"text\",\"text\":", json_raw(j, text),
					"},");
		} else if (!str_eq(t, "image_url")) {
			return xlate_fail(j, "unsupported content part in a user message");
		} else if (xlate_o2a_image(j, e, out)) {
			return -EBADMSG;
		}
	}
	xlate_trim(out);
	sb_puts(out, "]},");
	return 0;
}

/* An assistant message: text, then tool_calls as tool_use; dropped when empty. */
static int xlate_o2a_assistant(struct json *j, struct arena *a, int content, int calls,
			       struct sb *out)
{
	int n = 0;
	size_t mark = out->len;
	sb_puts(out, "{\"role\":\"assistant\",\"content\":[");
	size_t text = out->len;
	sb_puts(out, "{\"type\":\"text\",\"text\":\"");
	size_t empty = out->len;
	if (xlate_join(j, content, "text", "text", "", out, &n))
		return -EBADMSG;
	if (out->len == empty)
		xlate_rewind(out, text);
	else
		sb_puts(out, "\"},");
	if (xlate_o2a_tool_uses(j, a, calls, out) < 0)
		return -EBADMSG;
	if (out->len == text) {
		xlate_rewind(out, mark);
		return 0;
	}
	xlate_trim(out);
	sb_puts(out, "]},");
	return 0;
}

/* A tool message → a tool_result block (the caller opens and closes the user turn). */
static int xlate_o2a_tool_result(struct json *j, int id, int content, struct sb *out)
{
	int n = 0;
	if (!xlate_type(j, id, JSMN_STRING))
		return xlate_fail(j, "tool message needs a string \"tool_call_id\"");
	xlate_put_block(out, "{\"type\":\"tool_result\",\"tool_use_id\":", json_raw(j, id),
			",\"content\":\"");
	if (xlate_join(j, content, "text", "text", "\\n", out, &n))
		return -EBADMSG;
	sb_puts(out, "\"},");
	return 0;
}

/* "system": every system/developer message, joined by a blank line. */
static int xlate_o2a_system(struct json *j, int msgs, struct sb *out)
{
	int n = 0;
	size_t mark = out->len;
	sb_puts(out, ",\"system\":\"");
	xlate_each(j, msgs, e, k) {
		int role = xlate_member(j, e, "role");
		if ((xlate_is(j, role, "system") || xlate_is(j, role, "developer")) &&
		    xlate_join(j, xlate_member(j, e, "content"), "text", "text", "\\n\\n", out, &n))
			return -EBADMSG;
	}
	sb_puts(out, "\"");
	if (!n)
		xlate_rewind(out, mark);
	return 0;
}

/* Open (or close) the user turn that holds a run of tool_results. */
static void xlate_o2a_tool_turn(struct sb *out, bool open)
{
	if (open) {
		sb_puts(out, "{\"role\":\"user\",\"content\":[");
		return;
	}
	xlate_trim(out);
	sb_puts(out, "]},");
}

/* "messages": runs of tool messages merge into one user turn of tool_results. */
static int xlate_o2a_messages(struct json *j, struct arena *a, int msgs, struct sb *out)
{
	static const char *const k[] = { "role", "content", "tool_calls", "tool_call_id" };
	int v[4], rc = 0;
	bool in_tools = false;
	sb_puts(out, ",\"messages\":[");
	xlate_each(j, msgs, e, i) {
		if (xlate_get(j, e, k, 4, v) || !xlate_type(j, v[0], JSMN_STRING))
			return xlate_fail(j, "each message needs a string \"role\"");
		bool tool = xlate_is(j, v[0], "tool");
		if (tool != in_tools)
			xlate_o2a_tool_turn(out, tool);
		in_tools = tool;
		if (tool)
			rc = xlate_o2a_tool_result(j, v[3], v[1], out);
		else if (xlate_is(j, v[0], "user"))
			rc = xlate_o2a_user(j, v[1], out);
		else if (xlate_is(j, v[0], "assistant"))
			rc = xlate_o2a_assistant(j, a, v[1], v[2], out);
		else if (!xlate_is(j, v[0], "system") && !xlate_is(j, v[0], "developer"))
			rc = xlate_fail(j, "unsupported message role");
		if (rc)
			return rc;
	}
	if (in_tools)
		xlate_o2a_tool_turn(out, false);
	xlate_trim(out);
	sb_puts(out, "]");
	return 0;
}

/* tool_choice: auto/none as is, required → any, {function:{name}} → tool. */
static int xlate_o2a_tool_choice(struct json *j, int choice, int parallel, struct sb *out)
{
	bool serial =
		xlate_type(j, parallel, JSMN_PRIMITIVE) && str_eq(json_raw(j, parallel), "false");
	int name = xlate_member(j, xlate_member(j, choice, "function"), "name");
	if (xlate_nil(j, choice) && !serial)
		return 0;
	sb_puts(out, ",\"tool_choice\":{\"type\":");
	if (xlate_nil(j, choice) || xlate_is(j, choice, "auto"))
		sb_puts(out, "\"auto\"");
	else if (xlate_is(j, choice, "required"))
		sb_puts(out, "\"any\"");
	else if (xlate_is(j, choice, "none"))
		sb_puts(out, "\"none\"");
	else if (xlate_type(j, name, JSMN_STRING))
		xlate_put_block(out, "\"tool\",\"name\":", json_raw(j, name), "");
	else
		return xlate_fail(j, "\"tool_choice\" must be auto, none, required or a function");
	if (serial && !xlate_is(j, choice, "none"))
		sb_puts(out, ",\"disable_parallel_tool_use\":true");
	sb_puts(out, "}");
	return 0;
}

/* tools and tool_choice; parallel_tool_calls:false → disable_parallel_tool_use. */
static int xlate_o2a_tools(struct json *j, int tools, int choice, int parallel, struct sb *out)
{
	static const char *const k[] = { "name", "description", "parameters" };
	int v[3];
	if (xlate_nil(j, tools))
		return 0;
	if (!xlate_type(j, tools, JSMN_ARRAY))
		return xlate_fail(j, "\"tools\" must be an array");
	sb_puts(out, ",\"tools\":[");
	xlate_each(j, tools, e, i) {
		if (!xlate_is(j, xlate_member(j, e, "type"), "function") ||
		    xlate_get(j, xlate_member(j, e, "function"), k, 3, v) ||
		    !xlate_type(j, v[0], JSMN_STRING))
			return xlate_fail(j, "each tool must be a function with a string name");
		xlate_put_block(out, "{\"name\":", json_raw(j, v[0]), "");
		if (xlate_type(j, v[1], JSMN_STRING))
			xlate_put_block(out, ",\"description\":", json_raw(j, v[1]), "");
		struct str schema = STR("{\"type\":\"object\",\"properties\":{}}");
		if (xlate_type(j, v[2], JSMN_OBJECT))
			schema = json_raw(j, v[2]);
		xlate_put_block(out, ",\"input_schema\":", schema, "},");
	}
	xlate_trim(out);
	sb_puts(out, "]");
	return xlate_o2a_tool_choice(j, choice, parallel, out);
}

/* The members of an OpenAI request that are read. */
enum { XO_MSGS, XO_MAX, XO_MAXC, XO_TEMP, XO_TOPP, XO_STOP, XO_STREAM, XO_TOOLS, XO_TC, XO_PAR,
       XO_USER, XO_EFFORT, XO_N };
static const char *const xlate_o_keys[XO_N] = { "messages", "max_tokens", "max_completion_tokens",
						"temperature", "top_p", "stop", "stream", "tools",
						"tool_choice", "parallel_tool_calls", "user",
						"reasoning_effort" };

/* Thinking budget for reasoning_effort under max_tokens `max`: 0 = no thinking. */
static long long xlate_budget(struct json *j, int effort, long long max)
{
	long long b = 0;
	if (xlate_is(j, effort, "low"))
		b = 1024;
	else if (xlate_is(j, effort, "medium"))
		b = 8192;
	else if (xlate_is(j, effort, "high"))
		b = 24576;
	b = MIN(b, max - 1);
	return b >= 1024 ? b : 0;
}

/* Sampling, stop, stream, user and thinking (v: values of xlate_o_keys). */
static int xlate_o2a_params(struct json *j, const int *v, long long max, struct sb *out)
{
	long long budget = xlate_budget(j, v[XO_EFFORT], max);
	if (!budget && (xlate_copy_num(j, v[XO_TEMP], "temperature", out) ||
			xlate_copy_num(j, v[XO_TOPP], "top_p", out)))
		return -EBADMSG;
	if (xlate_type(j, v[XO_STOP], JSMN_STRING)) {
		xlate_put_block(out, ",\"stop_sequences\":[", json_raw(j, v[XO_STOP]), "]");
	} else if (xlate_strings(j, v[XO_STOP])) {
		if (j->tok[v[XO_STOP]].size)
			xlate_put_block(out, ",\"stop_sequences\":", json_raw(j, v[XO_STOP]), "");
	} else if (!xlate_nil(j, v[XO_STOP])) {
		return xlate_fail(j, "\"stop\" must be a string or an array of strings");
	}
	if (json_is_true(j, v[XO_STREAM]))
		sb_puts(out, ",\"stream\":true");
	if (xlate_type(j, v[XO_USER], JSMN_STRING))
		xlate_put_block(out, ",\"metadata\":{\"user_id\":", json_raw(j, v[XO_USER]), "}");
	if (budget)
		sb_printf(out, ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":%lld}",
			  budget);
	return 0;
}

/* {"model":M,"max_tokens":N — max_completion_tokens, else max_tokens, else 4096. */
static int xlate_o2a_head(struct json *j, const int *v, const char *model, long long *max,
			  struct sb *out)
{
	int m = xlate_nil(j, v[XO_MAXC]) ? v[XO_MAX] : v[XO_MAXC];
	if (!xlate_type(j, v[XO_MSGS], JSMN_ARRAY))
		return xlate_fail(j, v[XO_MSGS] < 0 ? "missing \"messages\""
						    : "\"messages\" must be an array");
	if (!xlate_nil(j, m) && (!xlate_num(j, m) || json_int(j, m, 0) < 1))
		return xlate_fail(j, "max_tokens must be a positive integer");
	*max = xlate_nil(j, m) ? 4096 : json_int(j, m, 4096);
	sb_puts(out, "{\"model\":");
	json_put_z(out, model);
	sb_printf(out, ",\"max_tokens\":%lld", *max);
	return 0;
}

static int xlate_req_o2a(struct arena *a, const char *body, size_t n, const char *model,
			 struct sb *out, const char **err)
{
	struct json j;
	long long max;
	int v[XO_N], rc = json_parse(&j, a, body, n);
	if (!rc && !(rc = json_obj_get(&j, 0, xlate_o_keys, XO_N, v, NULL)) &&
	    !(rc = xlate_o2a_head(&j, v, model, &max, out)) &&
	    !(rc = xlate_o2a_system(&j, v[XO_MSGS], out)) &&
	    !(rc = xlate_o2a_messages(&j, a, v[XO_MSGS], out)) &&
	    !(rc = xlate_o2a_params(&j, v, max, out)) &&
	    !(rc = xlate_o2a_tools(&j, v[XO_TOOLS], v[XO_TC], v[XO_PAR], out)))
		sb_puts(out, "}");
	return xlate_done(rc, &j, out, err);
}

/* ---- Anthropic response → OpenAI response ------------------------------ */

static int xlate_resp_a2o(struct arena *a, const char *body, size_t n, const char *model,
			  long long created, struct sb *out, struct xlate_usage *u)
{
	static const char *const k[] = { "id", "content", "stop_reason", "usage" };
	struct json j;
	int v[4], nt = 0, nr = 0;
	memset(u, 0, sizeof(*u));
	int rc = json_parse(&j, a, body, n);
	if (rc || (rc = json_obj_get(&j, 0, k, 4, v, NULL)))
		return rc;
	if (!xlate_type(&j, v[1], JSMN_ARRAY))
		return -EBADMSG;
	xlate_usage_from_a(&j, v[3], u);
	struct str id = xlate_raw_str(&j, v[0]);
	xlate_put_block(out, "{\"id\":", id.n ? id : STR("\"chatcmpl-bifrost\""), "");
	sb_printf(out, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", created);
	json_put_z(out, model);
	sb_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
	size_t mark = out->len;
	sb_puts(out, "\"");
	if (xlate_join(&j, v[1], "text", "text", "", out, &nt))
		return -EBADMSG;
	sb_puts(out, "\"");
	if (!nt) {
		xlate_rewind(out, mark);
		sb_puts(out, "null");
	}
	mark = out->len;
	sb_puts(out, ",\"reasoning_content\":\"");
	if (xlate_join(&j, v[1], "thinking", "thinking", "", out, &nr))
		return -EBADMSG;
	sb_puts(out, "\"");
	if (!nr)
		xlate_rewind(out, mark);
	if (xlate_a2o_tool_calls(&j, v[1], out) < 0)
		return -EBADMSG;
	sb_printf(out,
		  "},\"finish_reason\":\"%s\"}],\"usage\":", xlate_stop_a2o(xlate_inner(&j, v[2])));
	xlate_put_usage_o(out, u);
	sb_puts(out, "}");
	return out->oom ? -ENOMEM : 0;
}

/* ---- Anthropic stream → OpenAI stream ---------------------------------- */

struct xlate_a2o {
	const char *model;  /* borrowed: outlives the stream */
	const char *id;     /* borrowed: outlives the stream */
	long long created;  /* the chunks' "created"; 0 after init, the caller may set it */
	bool include_usage; /* the client asked for stream_options.include_usage */
	bool started;       /* the role chunk was sent */
	bool finished;      /* the finish_reason chunk was sent */
	bool done;          /* [DONE] or an error was sent: ignore the rest */
	int tools;          /* tool_use blocks started: the next tool_calls[].index */
	int tool;           /* tool_calls[].index of the open tool block, -1 if none */
	struct xlate_usage usage;
};

static void xlate_a2o_init(struct xlate_a2o *s, const char *model, const char *id,
			   bool include_usage)
{
	memset(s, 0, sizeof(*s));
	s->model = model;
	s->id = id;
	s->include_usage = include_usage;
	s->tool = -1;
}

/* data: {...chunk head...,"choices": — the caller writes the rest and "}\n\n". */
static void xlate_a2o_head(const struct xlate_a2o *s, struct sb *out)
{
	sb_puts(out, "data: {\"id\":");
	json_put_z(out, s->id);
	sb_printf(out,
		  ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":", s->created);
	json_put_z(out, s->model);
	sb_puts(out, ",\"choices\":");
}

static void xlate_a2o_close(struct sb *out, const char *finish_reason)
{
	if (finish_reason)
		sb_printf(out, ",\"finish_reason\":\"%s\"}]}\n\n", finish_reason);
	else
		sb_puts(out, ",\"finish_reason\":null}]}\n\n");
}

/* The role chunk, once, before anything else. */
static void xlate_a2o_role(struct xlate_a2o *s, struct sb *out)
{
	if (s->started)
		return;
	s->started = true;
	xlate_a2o_head(s, out);
	sb_puts(out, "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}");
	xlate_a2o_close(out, NULL);
}

/* A chunk up to its delta; the caller writes the delta and calls xlate_a2o_close. */
static void xlate_a2o_begin(struct xlate_a2o *s, struct sb *out)
{
	xlate_a2o_role(s, out);
	xlate_a2o_head(s, out);
	sb_puts(out, "[{\"index\":0,\"delta\":");
}

/* The finish chunk if none was sent, the usage chunk if asked, then [DONE]. */
static void xlate_a2o_stop(struct xlate_a2o *s, const char *finish_reason, struct sb *out)
{
	if (!s->finished) {
		xlate_a2o_begin(s, out);
		sb_puts(out, "{}");
		xlate_a2o_close(out, finish_reason);
	}
	if (s->include_usage) {
		xlate_a2o_head(s, out);
		sb_puts(out, "[],\"usage\":");
		xlate_put_usage_o(out, &s->usage);
		sb_puts(out, "}\n\n");
	}
	sb_puts(out, "data: [DONE]\n\n");
	s->finished = s->done = true;
}

/* content_block_start: a tool_use block announces its call (index, id, name) at once. */
static int xlate_a2o_block(struct xlate_a2o *s, struct json *j, int blk, struct sb *out)
{
	static const char *const k[] = { "type", "id", "name" };
	int v[3];
	s->tool = -1;
	if (xlate_get(j, blk, k, 3, v))
		return -EBADMSG;
	if (!xlate_is(j, v[0], "tool_use"))
		return 0;
	if (!xlate_type(j, v[1], JSMN_STRING) || !xlate_type(j, v[2], JSMN_STRING))
		return xlate_fail(j, "tool_use block needs a string id and name");
	s->tool = s->tools++;
	xlate_a2o_begin(s, out);
	sb_printf(out, "{\"tool_calls\":[{\"index\":%d,\"id\":", s->tool);
	sb_str(out, json_raw(j, v[1]));
	xlate_put_block(out, ",\"type\":\"function\",\"function\":{\"name\":", json_raw(j, v[2]),
			",\"arguments\":\"\"}}]}");
	xlate_a2o_close(out, NULL);
	return 0;
}

/* content_block_delta: text → content, thinking → reasoning_content, JSON → arguments. */
static int xlate_a2o_delta(struct xlate_a2o *s, struct json *j, int d, struct sb *out)
{
	static const char *const k[] = { "type", "text", "thinking", "partial_json" };
	int v[4];
	if (xlate_get(j, d, k, 4, v))
		return -EBADMSG;
	if (xlate_is(j, v[0], "text_delta") && xlate_has_text(j, v[1])) {
		xlate_a2o_begin(s, out);
		xlate_put_block(out, "{\"content\":", json_raw(j, v[1]), "}");
	} else if (xlate_is(j, v[0], "thinking_delta") && xlate_has_text(j, v[2])) {
		xlate_a2o_begin(s, out);
		xlate_put_block(out, "{\"reasoning_content\":", json_raw(j, v[2]), "}");
	} else if (xlate_is(j, v[0], "input_json_delta") && xlate_has_text(j, v[3]) &&
		   s->tool >= 0) {
		xlate_a2o_begin(s, out);
		sb_printf(out,
			  "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", s->tool);
		xlate_put_block(out, "", json_raw(j, v[3]), "}}]}");
	} else {
		return 0;
	}
	xlate_a2o_close(out, NULL);
	return 0;
}

/* message_delta: usage, and stop_reason → the finish chunk. */
static void xlate_a2o_msg_delta(struct xlate_a2o *s, struct json *j, int v, struct sb *out)
{
	int sr = xlate_member(j, xlate_member(j, v, "delta"), "stop_reason");
	xlate_usage_from_a(j, xlate_member(j, v, "usage"), &s->usage);
	if (!xlate_type(j, sr, JSMN_STRING) || s->finished)
		return;
	xlate_a2o_begin(s, out);
	sb_puts(out, "{}");
	xlate_a2o_close(out, xlate_stop_a2o(xlate_inner(j, sr)));
	s->finished = true;
}

/* data: {"error":...} and done (no [DONE]: the stream failed). */
static void xlate_a2o_error(struct xlate_a2o *s, struct str type, struct str msg, struct sb *out)
{
	sb_puts(out, "data: ");
	xlate_put_err_o(out, type, msg);
	sb_puts(out, "\n\n");
	s->done = true;
}

/*
 * One Anthropic SSE event (its name, or en == 0 to use the data's "type", and
 * its data) → zero or more chat.completion.chunk lines. Unknown events and
 * ping are ignored. 0, -EBADMSG (the caller ends with xlate_a2o_end(s,
 * reason)) or -ENOMEM.
 */
static int xlate_a2o_event(struct xlate_a2o *s, struct arena *a, const char *event_name, size_t en,
			   const char *data, size_t dn, struct sb *out)
{
	static const char *const k[] = { "type", "message", "content_block", "delta", "error" };
	struct json j;
	int v[5], rc;
	if (s->done || (en && str_eq((struct str){ event_name, en }, "ping")))
		return 0;
	if ((rc = json_parse(&j, a, data, dn)) || (rc = json_obj_get(&j, 0, k, 5, v, NULL)))
		return rc;
	struct str ev = en ? (struct str){ event_name, en } : xlate_inner(&j, v[0]);
	if (str_eq(ev, "message_start")) {
		xlate_usage_from_a(&j, xlate_member(&j, v[1], "usage"), &s->usage);
		xlate_a2o_role(s, out);
	} else if (str_eq(ev, "content_block_start")) {
		rc = xlate_a2o_block(s, &j, v[2], out);
	} else if (str_eq(ev, "content_block_delta")) {
		rc = xlate_a2o_delta(s, &j, v[3], out);
	} else if (str_eq(ev, "message_delta")) {
		xlate_a2o_msg_delta(s, &j, 0, out); /* delta and usage are root members */
	} else if (str_eq(ev, "message_stop")) {
		xlate_a2o_stop(s, "stop", out);
	} else if (str_eq(ev, "error")) {
		int t = xlate_member(&j, v[4], "type");
		xlate_a2o_error(s, xlate_has_text(&j, t) ? xlate_inner(&j, t) : STR("api_error"),
				xlate_err_msg(&j, data, dn, 500, out), out);
	}
	if (rc)
		return -EBADMSG;
	return out->oom ? -ENOMEM : 0;
}

/* End of the upstream stream: finish properly, or report `error` (NULL: none). */
static void xlate_a2o_end(struct xlate_a2o *s, const char *error, struct sb *out)
{
	if (s->done)
		return;
	if (error)
		xlate_a2o_error(s, STR("api_error"), xlate_esc(out, error, strlen(error)), out);
	else
		xlate_a2o_stop(s, "stop", out);
}

/* ---- error bodies ------------------------------------------------------ */

/* An OpenAI-dialect (or any) upstream error body → Anthropic's error shape. */
static void xlate_error_o2a(const char *body, size_t n, int status, struct arena *a, struct sb *out)
{
	struct json j;
	bool ok = json_parse(&j, a, body, n) == 0;
	xlate_put_err_a(out, xlate_status_type(status),
			xlate_err_msg(ok ? &j : NULL, body, n, status, out));
}

/* Any error body → Bedrock's {"message": M}. */
static void xlate_error_x2b(const char *body, size_t n, int status, struct arena *a, struct sb *out)
{
	struct json j;
	bool ok = json_parse(&j, a, body, n) == 0;
	struct str msg = xlate_err_msg(ok ? &j : NULL, body, n, status, out);
	xlate_put_block(out, "{\"message\":\"", msg, "\"}");
}

/* An Anthropic-dialect (or any) error body → OpenAI's; error.type kept when given. */
static void xlate_error_a2o(const char *body, size_t n, int status, struct arena *a, struct sb *out)
{
	struct json j;
	bool ok = json_parse(&j, a, body, n) == 0;
	int t = ok ? xlate_member(&j, xlate_member(&j, 0, "error"), "type") : -1;
	struct str type = xlate_has_text(&j, t) ? xlate_inner(&j, t) : STR("");
	if (!type.n)
		type = (struct str){ xlate_status_type(status), strlen(xlate_status_type(status)) };
	xlate_put_err_o(out, type, xlate_err_msg(ok ? &j : NULL, body, n, status, out));
}

/* ---- token estimate ---------------------------------------------------- */

/*
 * /v1/messages/count_tokens for targets that cannot count: ceil(chars / 4),
 * chars = the bytes of every string (keys included) and number under
 * "system", "messages" and "tools" — text and JSON (schemas, tool inputs)
 * alike. A "data" string (base64 image or document) counts as 6400 chars,
 * about the 1600 tokens a large image costs, instead of its length. Uses a
 * private arena released before return. The estimate, or -EBADMSG.
 */
static long xlate_count_tokens(const char *body, size_t n)
{
	static const char *const k[] = { "system", "messages", "tools" };
	struct arena a;
	struct json j;
	int v[3];
	long chars = 0, rc = -EBADMSG;
	arena_init(&a, NULL);
	if (json_parse(&j, &a, body, n) || json_obj_get(&j, 0, k, 3, v, NULL))
		goto out;
	for (int m = 0; m < 3; m++) {
		if (v[m] < 0)
			continue;
		for (int i = v[m], end = json_skip(&j, v[m]); i < end; i++) {
			jsmntok_t *t = &j.tok[i];
			if (t->type != JSMN_STRING && t->type != JSMN_PRIMITIVE)
				continue;
			int key = t->parent;
			bool data = t->size == 0 && key >= 0 && xlate_is(&j, key, "data") &&
				    j.tok[key].size == 1;
			chars += data ? 6400 : t->end - t->start;
		}
	}
	rc = (chars + 3) / 4;
out:
	arena_reset(&a);
	return rc;
}

/* ---- the Responses API -> Chat Completions (a client of /v1/responses, a Chat provider) ---- */

/*
 * The names of the client's custom (freeform) tools: they go to Chat as functions of one
 * string argument, "input", and their calls come back as custom_tool_call items.
 */
#define XLATE_RCUSTOM_MAX 16
struct xlate_rnames {
	struct str name[XLATE_RCUSTOM_MAX]; /* escaped inner bytes, in the request body */
	int n;
};

static bool xlate_rcustom(const struct xlate_rnames *c, struct str name)
{
	for (int i = 0; c && i < c->n; i++)
		if (c->name[i].n == name.n && memcmp(c->name[i].p, name.p, name.n) == 0)
			return true;
	return false;
}

/* Message content: a string stays one; parts become Chat parts (user) or one string. */
static int xlate_r2o_content(struct json *j, int content, bool parts, struct sb *out)
{
	if (xlate_type(j, content, JSMN_STRING)) {
		sb_str(out, json_raw(j, content));
		return 0;
	}
	if (!xlate_type(j, content, JSMN_ARRAY))
		return xlate_fail(j, "message content must be a string or an array of parts");
	sb_puts(out, parts ? "[" : "\"");
	xlate_each(j, content, e, k) {
		struct str t;
		if (xlate_block(j, e, &t))
			return -EBADMSG;
		int text = xlate_member(j, e, "text");
		if (str_eq(t, "input_text") || str_eq(t, "output_text") || str_eq(t, "text")) {
			if (!xlate_type(j, text, JSMN_STRING))
				return xlate_fail(j, "a text part without a string text");
			if (parts)
				xlate_put_block(out, "{\"type\":\"text\",\"text\":", json_raw(j, text), "},");
			else
				sb_str(out, xlate_inner(j, text));
		} else if (str_eq(t, "input_image") && parts) {
			int url = xlate_member(j, e, "image_url");
			if (!xlate_type(j, url, JSMN_STRING))
				return xlate_fail(j, "input_image needs an image_url (file_id is not supported here)");
			xlate_put_block(out, "{\"type\":\"image_url\",\"image_url\":{\"url\":", json_raw(j, url), "}},");
		} else if (!str_eq(t, "refusal")) {
			return xlate_fail(j, "this content part type cannot be sent to a Chat Completions provider");
		}
	}
	if (parts)
		xlate_trim(out);
	sb_puts(out, parts ? "]" : "\"");
	return 0;
}

/* Where the Chat messages being written stand: an assistant message may stay open to take
 * the tool calls that follow its text (Responses lists them as separate items). */
enum xlate_rstate { XRS_NONE, XRS_ASST, XRS_CALLS };

static void xlate_r2o_settle(enum xlate_rstate *st, struct sb *out)
{
	if (*st == XRS_CALLS) {
		xlate_trim(out);
		sb_puts(out, "]},");
	} else if (*st == XRS_ASST) {
		sb_puts(out, "},");
	}
	*st = XRS_NONE;
}

/* A function_call or custom_tool_call item, as one entry of an assistant's tool_calls. */
static int xlate_r2o_call(struct json *j, int item, bool custom, enum xlate_rstate *st, struct sb *out)
{
	static const char *const k[] = { "call_id", "name", "arguments", "input" };
	int v[4];
	if (xlate_get(j, item, k, 4, v) || !xlate_type(j, v[0], JSMN_STRING) || !xlate_type(j, v[1], JSMN_STRING))
		return xlate_fail(j, "a tool call item needs a string call_id and name");
	if (*st == XRS_NONE)
		sb_puts(out, "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[");
	else if (*st == XRS_ASST)
		sb_puts(out, ",\"tool_calls\":[");
	*st = XRS_CALLS;
	xlate_put_block(out, "{\"id\":", json_raw(j, v[0]), ",\"type\":\"function\",\"function\":{\"name\":");
	sb_str(out, json_raw(j, v[1]));
	sb_puts(out, ",\"arguments\":");
	if (custom) { /* the free-form input, as the one string argument: {"input": ...} as text */
		if (!xlate_type(j, v[3], JSMN_STRING))
			return xlate_fail(j, "a custom_tool_call needs a string input");
		struct sb t;
		sb_init(&t, out->a, (size_t)(j->tok[v[3]].end - j->tok[v[3]].start) + 16);
		xlate_put_block(&t, "{\"input\":", json_raw(j, v[3]), "}");
		sb_puts(out, "\"");
		sb_str(out, t.oom ? (struct str){ "", 0 } : xlate_esc(out, t.p, t.len));
		sb_puts(out, "\"");
		out->oom |= t.oom;
	} else if (xlate_type(j, v[2], JSMN_STRING)) {
		sb_str(out, json_raw(j, v[2]));
	} else {
		return xlate_fail(j, "a function_call needs string arguments");
	}
	sb_puts(out, "}},"); /* (the array is closed by xlate_r2o_settle) */
	return 0;
}

/* A function_call_output or custom_tool_call_output item: a tool message. */
static int xlate_r2o_output(struct json *j, int item, struct sb *out)
{
	static const char *const k[] = { "call_id", "output" };
	int v[2];
	if (xlate_get(j, item, k, 2, v) || !xlate_type(j, v[0], JSMN_STRING))
		return xlate_fail(j, "a tool output item needs a string call_id");
	xlate_put_block(out, "{\"role\":\"tool\",\"tool_call_id\":", json_raw(j, v[0]), ",\"content\":");
	if (xlate_nil(j, v[1]))
		sb_puts(out, "\"\"");
	else if (xlate_r2o_content(j, v[1], false, out))
		return -EBADMSG;
	sb_puts(out, "},");
	return 0;
}

/* One input item. */
static int xlate_r2o_item(struct json *j, int item, enum xlate_rstate *st, struct sb *out)
{
	static const char *const k[] = { "type", "role", "content" };
	int v[3];
	if (xlate_get(j, item, k, 3, v))
		return xlate_fail(j, "every input item must be an object");
	struct str type = xlate_type(j, v[0], JSMN_STRING) ? xlate_inner(j, v[0]) : STR("message");
	if (str_eq(type, "function_call") || str_eq(type, "custom_tool_call"))
		return xlate_r2o_call(j, item, str_eq(type, "custom_tool_call"), st, out);
	/* reasoning: the provider's own state; item_reference: an earlier answer's item by id
	 * (clients that assume the server stored it, as the AI SDK does) — neither exists on a
	 * translated route, and the tool calls and outputs around them still make the turn */
	if (str_eq(type, "reasoning") || str_eq(type, "item_reference"))
		return 0;
	if (*st != XRS_NONE)
		xlate_r2o_settle(st, out);
	if (str_eq(type, "function_call_output") || str_eq(type, "custom_tool_call_output"))
		return xlate_r2o_output(j, item, out);
	if (!str_eq(type, "message")) {
		struct sb m;
		sb_init(&m, out->a, 160);
		sb_puts(&m, "input items of type \"");
		sb_put(&m, type.p, MIN(type.n, 40));
		sb_puts(&m, "\" cannot be translated (only messages, function and custom tool calls and their "
			     "outputs; reasoning and item references are left out)");
		sb_put(&m, "", 1);
		return xlate_fail(j, m.oom ? "an input item type that cannot be translated" : m.p);
	}
	struct str role = xlate_inner(j, v[1]);
	bool asst = str_eq(role, "assistant"), user = str_eq(role, "user");
	if (!asst && !user && !str_eq(role, "system") && !str_eq(role, "developer"))
		return xlate_fail(j, "a message role must be user, assistant, system or developer");
	sb_cat(out, "{\"role\":\"", asst ? "assistant" : user ? "user" : "system", "\",\"content\":", NULL);
	if (xlate_r2o_content(j, v[2], user, out))
		return -EBADMSG;
	if (asst) {
		*st = XRS_ASST; /* left open: tool calls may follow */
		return 0;
	}
	sb_puts(out, "},");
	return 0;
}

static int xlate_r2o_messages(struct json *j, int instr, int input, struct sb *out)
{
	enum xlate_rstate st = XRS_NONE;
	sb_puts(out, ",\"messages\":[");
	if (xlate_type(j, instr, JSMN_STRING))
		xlate_put_block(out, "{\"role\":\"system\",\"content\":", json_raw(j, instr), "},");
	if (xlate_type(j, input, JSMN_STRING)) {
		xlate_put_block(out, "{\"role\":\"user\",\"content\":", json_raw(j, input), "},");
	} else if (xlate_type(j, input, JSMN_ARRAY)) {
		xlate_each(j, input, e, k)
			if (xlate_r2o_item(j, e, &st, out))
				return -EBADMSG;
	} else {
		return xlate_fail(j, "\"input\" must be a string or an array of items");
	}
	xlate_r2o_settle(&st, out);
	xlate_trim(out);
	sb_puts(out, "]");
	return 0;
}

/* Function tools (flat in Responses, nested in Chat); custom tools as one-string functions.
 * Tools a Chat provider cannot run (web_search, file_search, namespaces of tools ...) are
 * left out: the model answers without them. */
static int xlate_r2o_tools(struct json *j, int tools, struct xlate_rnames *custom, struct sb *out)
{
	static const char *const k[] = { "type", "name", "description", "parameters", "strict" };
	if (xlate_nil(j, tools))
		return 0;
	if (!xlate_type(j, tools, JSMN_ARRAY))
		return xlate_fail(j, "\"tools\" must be an array");
	size_t mark = out->len;
	sb_puts(out, ",\"tools\":[");
	xlate_each(j, tools, e, q) {
		int v[5];
		if (xlate_get(j, e, k, 5, v))
			return -EBADMSG;
		bool fn = xlate_is(j, v[0], "function"), cu = xlate_is(j, v[0], "custom");
		if (!fn && !cu)
			continue; /* built-in and hosted tools (web_search, namespaces ...): no Chat equivalent */
		if (!xlate_type(j, v[1], JSMN_STRING))
			return xlate_fail(j, "a function or custom tool needs a string name");
		xlate_put_block(out, "{\"type\":\"function\",\"function\":{\"name\":", json_raw(j, v[1]), "");
		if (xlate_type(j, v[2], JSMN_STRING))
			xlate_put_block(out, ",\"description\":", json_raw(j, v[2]), "");
		if (cu) {
			if (custom->n == XLATE_RCUSTOM_MAX)
				return xlate_fail(j, "too many custom tools (16 at most on a Chat Completions provider)");
			custom->name[custom->n++] = xlate_inner(j, v[1]);
			sb_puts(out, ",\"parameters\":{\"type\":\"object\",\"properties\":{\"input\":{\"type\":"
				     "\"string\",\"description\":\"the tool's whole input, as free text\"}},"
				     "\"required\":[\"input\"],\"additionalProperties\":false}");
		} else {
			if (xlate_type(j, v[3], JSMN_OBJECT))
				xlate_put_block(out, ",\"parameters\":", json_raw(j, v[3]), "");
			if (!xlate_nil(j, v[4]))
				xlate_put_block(out, ",\"strict\":", json_raw(j, v[4]), "");
		}
		sb_puts(out, "}},");
	}
	if (!out->oom && out->p[out->len - 1] == '[') { /* none left: no "tools" at all */
		xlate_rewind(out, mark);
		return 0;
	}
	xlate_trim(out);
	sb_puts(out, "]");
	return 0;
}

/* tool_choice: the strings as they are; a named tool in Chat's nested form. */
static int xlate_r2o_choice(struct json *j, int choice, struct sb *out)
{
	if (xlate_nil(j, choice))
		return 0;
	if (xlate_type(j, choice, JSMN_STRING)) {
		xlate_put_block(out, ",\"tool_choice\":", json_raw(j, choice), "");
		return 0;
	}
	int name = xlate_member(j, choice, "name");
	if (!xlate_type(j, name, JSMN_STRING))
		return xlate_fail(j, "tool_choice must be a string or name a function or custom tool");
	xlate_put_block(out, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":", json_raw(j, name),
			"}}");
	return 0;
}

/* text.format: json_schema and json_object as Chat's response_format; text is the default. */
static int xlate_r2o_format(struct json *j, int text, struct sb *out)
{
	static const char *const k[] = { "type", "name", "schema", "strict", "description" };
	int v[5], f = xlate_member(j, text, "format");
	if (xlate_nil(j, f))
		return 0;
	if (xlate_get(j, f, k, 5, v) || !xlate_type(j, v[0], JSMN_STRING))
		return xlate_fail(j, "text.format must be an object with a type");
	if (xlate_is(j, v[0], "json_object")) {
		sb_puts(out, ",\"response_format\":{\"type\":\"json_object\"}");
	} else if (xlate_is(j, v[0], "json_schema")) {
		if (!xlate_type(j, v[1], JSMN_STRING) || !xlate_type(j, v[2], JSMN_OBJECT))
			return xlate_fail(j, "text.format json_schema needs a name and a schema");
		xlate_put_block(out, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":",
				json_raw(j, v[1]), ",\"schema\":");
		sb_str(out, json_raw(j, v[2]));
		if (!xlate_nil(j, v[3]))
			xlate_put_block(out, ",\"strict\":", json_raw(j, v[3]), "");
		sb_puts(out, "}}");
	} else if (!xlate_is(j, v[0], "text")) {
		return xlate_fail(j, "text.format must be text, json_object or json_schema");
	}
	return 0;
}

/* The members of a Responses request that are read. */
enum { XR_INPUT, XR_INSTR, XR_TOOLS, XR_TC, XR_PTC, XR_REASON, XR_MAX, XR_TEXT, XR_TEMP, XR_TOPP,
       XR_STREAM, XR_USER, XR_PREV, XR_N };
static const char *const xlate_r_keys[XR_N] = { "input", "instructions", "tools", "tool_choice",
	"parallel_tool_calls", "reasoning", "max_output_tokens", "text", "temperature", "top_p", "stream",
	"user", "previous_response_id" };

static int xlate_r2o_params(struct json *j, const int *v, bool effort_ok, struct sb *out)
{
	int effort = effort_ok ? xlate_member(j, v[XR_REASON], "effort") : -1;
	if (xlate_type(j, effort, JSMN_STRING))
		xlate_put_block(out, ",\"reasoning_effort\":", json_raw(j, effort), "");
	if (xlate_type(j, v[XR_PTC], JSMN_PRIMITIVE) && !xlate_nil(j, v[XR_PTC]))
		xlate_put_block(out, ",\"parallel_tool_calls\":", json_raw(j, v[XR_PTC]), "");
	if (xlate_type(j, v[XR_USER], JSMN_STRING))
		xlate_put_block(out, ",\"user\":", json_raw(j, v[XR_USER]), "");
	if (xlate_copy_num(j, v[XR_MAX], "max_tokens", out) || xlate_copy_num(j, v[XR_TEMP], "temperature", out) ||
	    xlate_copy_num(j, v[XR_TOPP], "top_p", out))
		return -EBADMSG;
	return xlate_r2o_format(j, v[XR_TEXT], out);
}

/*
 * A Responses request -> a Chat Completions request for `model` (a stream asks for its
 * usage). *custom gets the custom tools' names, for reading the answer; effort: pass
 * reasoning.effort on (not on the way to Messages: thinking blocks cannot make the round trip
 * through Responses items, and Anthropic refuses a tool turn without them). 0, -EBADMSG
 * (*err says why) or -ENOMEM. previous_response_id is refused: the route keeps no state.
 */
static int xlate_req_r2o(struct arena *a, const char *body, size_t n, const char *model, bool effort,
			 struct sb *out, struct xlate_rnames *custom, const char **err)
{
	struct json j;
	int v[XR_N], rc = json_parse(&j, a, body, n);
	custom->n = 0;
	if (rc == 0 && (rc = xlate_get(&j, 0, xlate_r_keys, XR_N, v)) == 0) {
		if (!xlate_nil(&j, v[XR_PREV]))
			rc = xlate_fail(&j, "previous_response_id needs a provider that serves the Responses API "
					    "(openai, azure): this route translates the request and keeps no "
					    "responses; send the whole conversation in \"input\"");
	}
	if (rc == 0) {
		sb_puts(out, "{\"model\":");
		json_put_z(out, model);
		rc = xlate_r2o_messages(&j, v[XR_INSTR], v[XR_INPUT], out);
	}
	if (rc == 0)
		rc = xlate_r2o_tools(&j, v[XR_TOOLS], custom, out);
	if (rc == 0)
		rc = xlate_r2o_choice(&j, v[XR_TC], out);
	if (rc == 0)
		rc = xlate_r2o_params(&j, v, effort, out);
	if (rc == 0 && json_is_true(&j, v[XR_STREAM]))
		sb_puts(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
	if (rc == 0)
		sb_puts(out, "}");
	return xlate_done(rc, &j, out, err);
}

/* ---- Chat Completions -> the Responses API (answers and streams) ---- */

/* Usage in the Responses form (input includes the cached part). */
static void xlate_put_usage_r(struct sb *out, const struct xlate_usage *u)
{
	sb_printf(out, "\"usage\":{\"input_tokens\":%lld,\"input_tokens_details\":{\"cached_tokens\":%lld},"
		       "\"output_tokens\":%lld,\"output_tokens_details\":{\"reasoning_tokens\":%lld},"
		       "\"total_tokens\":%lld}",
		  u->in + u->cache_read, u->cache_read, u->out, MIN(u->reasoning, u->out), u->in + u->cache_read + u->out);
}

/* A response object's head, up to and including "output":[ (items follow). */
static void xlate_r_head(struct sb *out, const char *id, long long created, const char *model,
			 const char *status)
{
	sb_puts(out, "{\"id\":");
	json_put_z(out, id);
	sb_printf(out, ",\"object\":\"response\",\"created_at\":%lld,\"status\":\"%s\",\"model\":", created, status);
	json_put_z(out, model);
	sb_puts(out, ",\"output\":[");
}

/* A custom tool's input: the "input" string of the call's arguments (esc: their escaped
 * JSON-string bytes), else the arguments' text itself, as a JSON string. */
static void xlate_r_custom_input(struct sb *out, struct arena *a, struct str esc)
{
	struct sb q;
	struct json w, sub;
	size_t n = 0;
	char *txt = NULL;
	int input = -1;
	sb_init(&q, a, esc.n + 8);
	xlate_put_block(&q, "{\"a\":\"", esc, "\"}"); /* (json_parse takes objects only) */
	if (!q.oom && json_parse(&w, a, q.p, q.len) == 0 && xlate_type(&w, 2, JSMN_STRING))
		txt = json_str(&w, a, 2, &n);
	if (txt && json_parse(&sub, a, txt, n) == 0)
		input = xlate_member(&sub, 0, "input");
	if (input >= 0 && xlate_type(&sub, input, JSMN_STRING))
		sb_str(out, json_raw(&sub, input));
	else
		xlate_put_block(out, "\"", esc, "\"");
}

/* A function_call or custom_tool_call item (esc_args: the arguments' escaped bytes). */
static void xlate_r_call(struct sb *out, struct arena *a, const struct xlate_rnames *custom, struct str call_id,
			 struct str name, struct str esc_args, const char *status)
{
	bool cu = xlate_rcustom(custom, name);
	sb_cat(out, "{\"type\":\"", cu ? "custom_tool_call" : "function_call", "\",\"id\":\"", cu ? "ctc_" : "fc_", NULL);
	sb_str(out, call_id);
	sb_puts(out, "\",\"call_id\":\"");
	sb_str(out, call_id);
	sb_puts(out, "\",\"name\":\"");
	sb_str(out, name);
	sb_printf(out, "\",\"status\":\"%s\",", status);
	if (cu) {
		sb_puts(out, "\"input\":");
		xlate_r_custom_input(out, a, esc_args);
	} else {
		xlate_put_block(out, "\"arguments\":\"", esc_args, "\"");
	}
	sb_puts(out, "}");
}

/* A reasoning item: the provider's reasoning text as its summary (esc: escaped bytes). */
static void xlate_r_reasoning(struct sb *out, const char *id, struct str esc)
{
	sb_cat(out, "{\"type\":\"reasoning\",\"id\":\"rs_", id, "\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"", NULL);
	sb_str(out, esc);
	sb_puts(out, "\"}]}");
}

/* An assistant message item holding one output_text (esc: its escaped bytes). */
static void xlate_r_message(struct sb *out, const char *id, struct str esc, const char *status)
{
	sb_puts(out, "{\"type\":\"message\",\"id\":\"msg_");
	sb_puts(out, id);
	sb_printf(out, "\",\"status\":\"%s\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
		       "\"text\":\"", status);
	sb_str(out, esc);
	sb_puts(out, "\",\"annotations\":[]}]}");
}

/*
 * A whole Chat completion -> a Responses object for the client's `model` (id: "resp_" +
 * the completion's id). *u gets the usage. 0, -EBADMSG or -ENOMEM.
 */
static int xlate_resp_o2r(struct arena *a, const char *body, size_t n, const char *model,
			  const struct xlate_rnames *custom, long long now, struct sb *out, struct xlate_usage *u)
{
	static const char *const k[] = { "id", "created", "choices", "usage" };
	static const char *const mk[] = { "content", "tool_calls", "reasoning_content" };
	struct json j;
	int v[4], m[3] = { -1, -1, -1 }, rc = json_parse(&j, a, body, n);
	memset(u, 0, sizeof(*u));
	if (rc || (rc = xlate_get(&j, 0, k, 4, v)))
		return rc == -ENOMEM ? -ENOMEM : -EBADMSG;
	int ch = xlate_type(&j, v[2], JSMN_ARRAY) && j.tok[v[2]].size ? v[2] + 1 : -1;
	int fr = xlate_member(&j, ch, "finish_reason");
	if (ch < 0 || xlate_get(&j, xlate_member(&j, ch, "message"), mk, 3, m))
		return -EBADMSG;
	xlate_usage_from_o(&j, v[3], u);
	struct str cid = xlate_inner(&j, v[0]);
	char id[80];
	snprintf(id, sizeof(id), "%.*s", (int)MIN(cid.n, 64), cid.p);
	for (char *c = id; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
			*c = '_';
	char rid[96];
	snprintf(rid, sizeof(rid), "resp_%s", id);
	bool cut = xlate_is(&j, fr, "length");
	xlate_r_head(out, rid, xlate_num(&j, v[1]) ? json_int(&j, v[1], now) : now, model,
		     cut ? "incomplete" : "completed");
	if (xlate_has_text(&j, m[2])) {
		xlate_r_reasoning(out, id, xlate_inner(&j, m[2]));
		sb_puts(out, ",");
	}
	if (xlate_has_text(&j, m[0])) {
		xlate_r_message(out, id, xlate_inner(&j, m[0]), "completed");
		sb_puts(out, ",");
	}
	if (xlate_type(&j, m[1], JSMN_ARRAY)) {
		xlate_each(&j, m[1], e, q) {
			int f = xlate_member(&j, e, "function");
			int cidt = xlate_member(&j, e, "id"), nm = xlate_member(&j, f, "name"), ar = xlate_member(&j, f, "arguments");
			if (!xlate_type(&j, cidt, JSMN_STRING) || !xlate_type(&j, nm, JSMN_STRING))
				return -EBADMSG;
			xlate_r_call(out, a, custom, xlate_inner(&j, cidt), xlate_inner(&j, nm), xlate_inner(&j, ar),
				     "completed");
			sb_puts(out, ",");
		}
	}
	xlate_trim(out);
	sb_puts(out, "],");
	sb_puts(out, cut ? "\"incomplete_details\":{\"reason\":\"max_output_tokens\"}," : "\"incomplete_details\":null,");
	xlate_put_usage_r(out, u);
	sb_puts(out, ",\"error\":null}");
	return out->oom ? -ENOMEM : 0;
}

/* Chat chunks -> Responses events. Each output item is opened and closed in order; the
 * text and arguments are kept (escaped) because the .done events and response.completed
 * repeat them whole, so they live in the request's arena, bounded by `cap`. */
struct xlate_o2r {
	const char *model, *id;           /* borrowed: outlive the stream; id is "resp_..." */
	const struct xlate_rnames *custom; /* borrowed */
	struct arena *a;                  /* the request's */
	long long created;
	long seq;                         /* the next event's sequence_number */
	int items;                        /* output items opened; the open one is items - 1 */
	enum { XO_NONE, XO_TEXT, XO_CALL, XO_REASON } open;
	long long call;                   /* tool_calls[].index of the open call */
	struct str call_id, call_name;    /* the open call's, escaped, in `a` */
	struct sb acc;                    /* the open item's text or arguments so far, escaped */
	struct sb done;                   /* the closed items, each followed by ',' */
	size_t cap;                       /* most bytes acc + done may hold */
	bool started, finished, over, incomplete;
	struct xlate_usage usage;
};

static void xlate_o2r_init(struct xlate_o2r *s, struct arena *a, const char *model, const char *id,
			   const struct xlate_rnames *custom, long long created, size_t cap)
{
	memset(s, 0, sizeof(*s));
	s->model = model;
	s->id = id;
	s->custom = custom;
	s->a = a;
	s->created = created;
	s->cap = cap;
	s->call = -1;
	sb_init(&s->acc, a, 256);
	sb_init(&s->done, a, 256);
}

/* "event: NAME\ndata: {"type":"NAME","sequence_number":N" — members follow, then xlate_ev_end. */
static void xlate_o2r_ev(struct xlate_o2r *s, struct sb *out, const char *name)
{
	sb_printf(out, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%ld", name, name, s->seq++);
}

/* ,"item_id":"...","output_index":N of the open item. */
static void xlate_o2r_where(struct xlate_o2r *s, struct sb *out)
{
	if (s->open == XO_TEXT || s->open == XO_REASON) {
		sb_printf(out, ",\"item_id\":\"%s_%s_%d\"", s->open == XO_TEXT ? "msg" : "rs", s->id, s->items - 1);
	} else {
		sb_cat(out, ",\"item_id\":\"", xlate_rcustom(s->custom, s->call_name) ? "ctc_" : "fc_", NULL);
		sb_str(out, s->call_id);
		sb_puts(out, "\"");
	}
	sb_printf(out, ",\"output_index\":%d", s->items - 1);
}

static void xlate_o2r_start(struct xlate_o2r *s, struct sb *out)
{
	static const char *const ev[] = { "response.created", "response.in_progress" };
	if (s->started)
		return;
	s->started = true;
	for (int i = 0; i < 2; i++) {
		xlate_o2r_ev(s, out, ev[i]);
		sb_puts(out, ",\"response\":");
		xlate_r_head(out, s->id, s->created, s->model, "in_progress");
		sb_puts(out, "],\"usage\":null,\"error\":null}");
		xlate_ev_end(out);
	}
}

/* The open item's whole JSON (status completed), into `to`. */
static void xlate_o2r_item(struct xlate_o2r *s, struct sb *to)
{
	char mid[96];
	snprintf(mid, sizeof(mid), "%s_%d", s->id, s->items - 1);
	if (s->open == XO_TEXT)
		xlate_r_message(to, mid, sb_view(&s->acc), "completed");
	else if (s->open == XO_REASON)
		xlate_r_reasoning(to, mid, sb_view(&s->acc));
	else
		xlate_r_call(to, s->a, s->custom, s->call_id, s->call_name, sb_view(&s->acc), "completed");
}

/* The .done pair of a text item (a message's output_text, or a reasoning summary): the
 * whole text, then the part that holds it. */
static void xlate_o2r_text_done(struct xlate_o2r *s, struct sb *out, bool reason)
{
	const char *idx = reason ? ",\"summary_index\":0" : ",\"content_index\":0";
	xlate_o2r_ev(s, out, reason ? "response.reasoning_summary_text.done" : "response.output_text.done");
	xlate_o2r_where(s, out);
	sb_puts(out, idx);
	xlate_put_block(out, ",\"text\":\"", sb_view(&s->acc), "\"");
	xlate_ev_end(out);
	xlate_o2r_ev(s, out, reason ? "response.reasoning_summary_part.done" : "response.content_part.done");
	xlate_o2r_where(s, out);
	sb_puts(out, idx);
	xlate_put_block(out, reason ? ",\"part\":{\"type\":\"summary_text\",\"text\":\"" : ",\"part\":{\"type\":\"output_text\",\"text\":\"",
			sb_view(&s->acc), reason ? "\"}" : "\",\"annotations\":[]}");
	xlate_ev_end(out);
}

static void xlate_o2r_close(struct xlate_o2r *s, struct sb *out)
{
	if (s->open == XO_NONE)
		return;
	if (s->open == XO_REASON || s->open == XO_TEXT) {
		xlate_o2r_text_done(s, out, s->open == XO_REASON);
	} else if (xlate_rcustom(s->custom, s->call_name)) {
		xlate_o2r_ev(s, out, "response.custom_tool_call_input.done");
		xlate_o2r_where(s, out);
		sb_puts(out, ",\"input\":");
		xlate_r_custom_input(out, s->a, sb_view(&s->acc));
		xlate_ev_end(out);
	} else {
		xlate_o2r_ev(s, out, "response.function_call_arguments.done");
		xlate_o2r_where(s, out);
		xlate_put_block(out, ",\"arguments\":\"", sb_view(&s->acc), "\"");
		xlate_ev_end(out);
	}
	xlate_o2r_ev(s, out, "response.output_item.done");
	sb_printf(out, ",\"output_index\":%d,\"item\":", s->items - 1);
	xlate_o2r_item(s, out);
	xlate_ev_end(out);
	xlate_o2r_item(s, &s->done);
	sb_puts(&s->done, ",");
	s->open = XO_NONE;
	s->acc.len = 0;
}

/* Open a message item (call_id NULL) or a call item. */
static void xlate_o2r_open(struct xlate_o2r *s, struct str call_id, struct str name, struct sb *out)
{
	xlate_o2r_close(s, out);
	s->items++;
	if (!call_id.p) {
		s->open = XO_TEXT;
		xlate_o2r_ev(s, out, "response.output_item.added");
		sb_printf(out, ",\"output_index\":%d,\"item\":{\"type\":\"message\",\"id\":\"msg_%s_%d\",\"status\":"
			       "\"in_progress\",\"role\":\"assistant\",\"content\":[]}", s->items - 1, s->id, s->items - 1);
		xlate_ev_end(out);
		xlate_o2r_ev(s, out, "response.content_part.added");
		xlate_o2r_where(s, out);
		sb_puts(out, ",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}");
		xlate_ev_end(out);
		return;
	}
	s->open = XO_CALL;
	s->call_id = call_id;
	s->call_name = name;
	xlate_o2r_ev(s, out, "response.output_item.added");
	sb_printf(out, ",\"output_index\":%d,\"item\":", s->items - 1);
	struct str none = { "", 0 };
	xlate_r_call(out, s->a, s->custom, call_id, name, none, "in_progress");
	xlate_ev_end(out);
}

/* Open a reasoning item (the provider's reasoning text, as its summary). */
static void xlate_o2r_open_reason(struct xlate_o2r *s, struct sb *out)
{
	xlate_o2r_close(s, out);
	s->items++;
	s->open = XO_REASON;
	xlate_o2r_ev(s, out, "response.output_item.added");
	sb_printf(out, ",\"output_index\":%d,\"item\":{\"type\":\"reasoning\",\"id\":\"rs_%s_%d\",\"summary\":[]}",
		  s->items - 1, s->id, s->items - 1);
	xlate_ev_end(out);
	xlate_o2r_ev(s, out, "response.reasoning_summary_part.added");
	xlate_o2r_where(s, out);
	sb_puts(out, ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}");
	xlate_ev_end(out);
}

/* Text (or arguments, or reasoning) for the open item; esc: escaped bytes. */
static void xlate_o2r_delta(struct xlate_o2r *s, struct str esc, struct sb *out)
{
	static const char *const ev[] = { [XO_TEXT] = "response.output_text.delta",
		[XO_CALL] = "response.function_call_arguments.delta", [XO_REASON] = "response.reasoning_summary_text.delta" };
	sb_str(&s->acc, esc);
	if (s->open == XO_CALL && xlate_rcustom(s->custom, s->call_name))
		return; /* a custom tool's input is not streamable from JSON arguments: sent whole */
	xlate_o2r_ev(s, out, ev[s->open]);
	xlate_o2r_where(s, out);
	if (s->open != XO_CALL)
		sb_puts(out, s->open == XO_TEXT ? ",\"content_index\":0" : ",\"summary_index\":0");
	xlate_put_block(out, ",\"delta\":\"", esc, "\"");
	xlate_ev_end(out);
}

/* response.completed, once the answer finished and its usage came (or the stream ended). */
static void xlate_o2r_complete(struct xlate_o2r *s, struct sb *out)
{
	xlate_o2r_close(s, out);
	xlate_o2r_ev(s, out, "response.completed");
	sb_puts(out, ",\"response\":");
	xlate_r_head(out, s->id, s->created, s->model, s->incomplete ? "incomplete" : "completed");
	struct str items = sb_view(&s->done);
	if (items.n)
		items.n--; /* the last ',' */
	sb_str(out, items);
	sb_puts(out, s->incomplete ? "],\"incomplete_details\":{\"reason\":\"max_output_tokens\"},"
				   : "],\"incomplete_details\":null,");
	xlate_put_usage_r(out, &s->usage);
	sb_puts(out, ",\"error\":null}");
	xlate_ev_end(out);
	s->over = true;
}

static void xlate_o2r_fail(struct xlate_o2r *s, struct str esc_msg, struct sb *out)
{
	xlate_o2r_start(s, out);
	xlate_o2r_ev(s, out, "response.failed");
	sb_puts(out, ",\"response\":");
	xlate_r_head(out, s->id, s->created, s->model, "failed");
	xlate_put_block(out, "],\"usage\":null,\"error\":{\"code\":\"server_error\",\"message\":\"", esc_msg, "\"}}");
	xlate_ev_end(out);
	s->over = true;
}

/* Copy escaped bytes into the stream's arena (call ids and names outlive the batch). */
static struct str xlate_o2r_keep(struct xlate_o2r *s, struct str v, struct sb *out)
{
	char *p = arena_alloc(s->a, v.n + 1, 1);
	if (!p) {
		out->oom = true;
		return (struct str){ "", 0 };
	}
	memcpy(p, v.p, v.n);
	p[v.n] = 0;
	return (struct str){ p, v.n };
}

/* One tool_calls[] entry of a delta: a new index opens a call item, arguments stream into it. */
static int xlate_o2r_tool(struct xlate_o2r *s, struct json *j, int tc, struct sb *out)
{
	int ix = xlate_member(j, tc, "index"), f = xlate_member(j, tc, "function");
	long long idx = xlate_num(j, ix) ? json_int(j, ix, 0) : 0;
	int id = xlate_member(j, tc, "id");
	struct str cid = xlate_inner(j, id); /* (some servers send no index: a new id is a new call) */
	bool other = xlate_has_text(j, id) && (cid.n != s->call_id.n || memcmp(cid.p, s->call_id.p, cid.n) != 0);
	if (idx != s->call || s->open != XO_CALL || other) {
		int nm = xlate_member(j, f, "name");
		if (!xlate_type(j, id, JSMN_STRING) || !xlate_type(j, nm, JSMN_STRING))
			return xlate_fail(j, "a new tool call without an id and a name");
		s->call = idx;
		xlate_o2r_open(s, xlate_o2r_keep(s, xlate_inner(j, id), out), xlate_o2r_keep(s, xlate_inner(j, nm), out),
			       out);
	}
	int args = xlate_member(j, f, "arguments");
	if (xlate_has_text(j, args))
		xlate_o2r_delta(s, xlate_inner(j, args), out);
	return 0;
}

static int xlate_o2r_choice(struct xlate_o2r *s, struct json *j, int ch, struct sb *out)
{
	static const char *const k[] = { "delta", "finish_reason" };
	static const char *const dk[] = { "content", "tool_calls", "reasoning_content" };
	int v[2], d[3] = { -1, -1, -1 };
	if (xlate_get(j, ch, k, 2, v) || (v[0] >= 0 && xlate_get(j, v[0], dk, 3, d)))
		return -EBADMSG;
	if (xlate_has_text(j, d[2])) {
		if (s->open != XO_REASON)
			xlate_o2r_open_reason(s, out);
		xlate_o2r_delta(s, xlate_inner(j, d[2]), out);
	}
	if (xlate_has_text(j, d[0])) {
		if (s->open != XO_TEXT)
			xlate_o2r_open(s, (struct str){ NULL, 0 }, (struct str){ NULL, 0 }, out);
		xlate_o2r_delta(s, xlate_inner(j, d[0]), out);
	}
	if (xlate_type(j, d[1], JSMN_ARRAY))
		xlate_each(j, d[1], e, q)
			if (xlate_o2r_tool(s, j, e, out))
				return -EBADMSG;
	if (xlate_type(j, v[1], JSMN_STRING)) {
		xlate_o2r_close(s, out);
		s->finished = true;
		s->incomplete = xlate_is(j, v[1], "length");
	}
	return 0;
}

/*
 * One Chat chunk (an SSE data payload) -> Responses events in `out`. The answer completes
 * (response.completed) when the usage chunk follows the finish, or at [DONE]. 0, -EBADMSG,
 * -ENOMEM, or -E2BIG when the text kept for the .done events would pass `cap` (the stream
 * then ends with response.failed).
 */
static int xlate_o2r_chunk(struct xlate_o2r *s, struct arena *a, const char *data, size_t n, struct sb *out)
{
	static const char *const k[] = { "choices", "usage", "error" };
	struct json j;
	int v[3], rc;
	if (s->over)
		return 0;
	if (n == 6 && memcmp(data, "[DONE]", 6) == 0) {
		if (s->started)
			xlate_o2r_complete(s, out);
		return 0;
	}
	if ((rc = json_parse(&j, a, data, n)) || (rc = xlate_get(&j, 0, k, 3, v)))
		return rc;
	xlate_o2r_start(s, out);
	if (v[2] >= 0) {
		struct str msg = xlate_inner(&j, xlate_member(&j, v[2], "message"));
		xlate_o2r_fail(s, msg.n ? msg : STR("the provider reported an error"), out);
		return out->oom ? -ENOMEM : 0;
	}
	if (xlate_type(&j, v[0], JSMN_ARRAY) && j.tok[v[0]].size && xlate_o2r_choice(s, &j, v[0] + 1, out))
		return -EBADMSG;
	if (xlate_type(&j, v[1], JSMN_OBJECT)) {
		xlate_usage_from_o(&j, v[1], &s->usage);
		if (s->finished)
			xlate_o2r_complete(s, out);
	}
	if (s->acc.len + s->done.len > s->cap) {
		xlate_o2r_fail(s, STR("the answer is too large to translate (limits.max_response_bytes)"), out);
		return -E2BIG;
	}
	return out->oom || s->acc.oom || s->done.oom ? -ENOMEM : 0;
}

/* The stream is over: complete what was said, or fail with `error` (unescaped text). */
static void xlate_o2r_end(struct xlate_o2r *s, const char *error, struct sb *out)
{
	if (s->over)
		return;
	if (error) {
		struct str m = xlate_esc(out, error, strlen(error));
		xlate_o2r_fail(s, m, out);
		return;
	}
	xlate_o2r_start(s, out);
	xlate_o2r_complete(s, out);
}

/* ---- Bedrock Converse <-> Messages ------------------------------------ *
 * A Converse model behind a Bedrock provider looks like an Anthropic one to the rest of the
 * gateway: its request is made from a Messages body (xlate_req_a2c), its answer and stream
 * events become Messages ones (xlate_resp_c2a, xlate_c2a_*). Clients of /bedrock/.../converse
 * get the reverse (xlate_req_c2a, xlate_resp_a2c, xlate_a2c_event). Content blocks map one to
 * one: text, image (base64), tool use and result, reasoning (thinking). */

/* A string's raw JSON text, or "" when it is absent or not a string (output stays JSON). */
static struct str xlate_rs(const struct json *j, int i)
{
	struct str s = xlate_raw_str(j, i);
	return s.n ? s : STR("\"\"");
}

/* A stop reason, Converse → Anthropic. */
static const char *xlate_stop_c2a(struct str sr)
{
	static const char *const same[] = { "end_turn", "tool_use", "max_tokens", "stop_sequence",
					    "model_context_window_exceeded" };
	for (size_t i = 0; i < ARRAY_LEN(same); i++)
		if (str_eq(sr, same[i]))
			return same[i];
	return str_eq(sr, "guardrail_intervened") || str_eq(sr, "content_filtered") ? "refusal" : "end_turn";
}

/* A stop reason, Anthropic → Converse. */
static const char *xlate_stop_a2c(struct str sr)
{
	static const char *const same[] = { "end_turn", "tool_use", "max_tokens", "stop_sequence",
					    "model_context_window_exceeded" };
	for (size_t i = 0; i < ARRAY_LEN(same); i++)
		if (str_eq(sr, same[i]))
			return same[i];
	return str_eq(sr, "refusal") ? "content_filtered" : "end_turn";
}

/* Converse's usage ({inputTokens, outputTokens, cacheReadInputTokens, cacheWriteInputTokens}). */
static void xlate_usage_from_c(struct json *j, int usage, struct xlate_usage *u)
{
	static const char *const k[] = { "inputTokens", "outputTokens", "cacheReadInputTokens",
					 "cacheWriteInputTokens" };
	xlate_usage_named(j, usage, u, k);
}

static void xlate_put_usage_c(struct sb *out, const struct xlate_usage *u)
{
	sb_printf(out, "{\"inputTokens\":%lld,\"outputTokens\":%lld,\"totalTokens\":%lld,"
		  "\"cacheReadInputTokens\":%lld,\"cacheWriteInputTokens\":%lld}",
		  u->in, u->out, u->in + u->out + u->cache_read + u->cache_write, u->cache_read, u->cache_write);
}

/* One Messages image block → Converse's {"image":{"format","source":{"bytes"}}}. */
static int xlate_a2c_image(struct json *j, int blk, struct sb *out)
{
	int src = xlate_member(j, blk, "source");
	int mt = xlate_member(j, src, "media_type"), data = xlate_member(j, src, "data");
	struct str m = xlate_inner(j, mt);
	if (!xlate_is(j, xlate_member(j, src, "type"), "base64") || m.n < 7 || memcmp(m.p, "image/", 6) != 0 ||
	    !xlate_type(j, data, JSMN_STRING))
		return xlate_fail(j, "Converse takes base64 images only (source.type \"base64\", an image/* media_type)");
	sb_puts(out, "{\"image\":{\"format\":\"");
	sb_put(out, m.p + 6, m.n - 6);
	xlate_put_block(out, "\",\"source\":{\"bytes\":", json_raw(j, data), "}}}");
	return 0;
}

/* A tool_result's content → Converse's [{"text"}|{"image"}]. */
static int xlate_a2c_result(struct json *j, int blk, struct sb *out)
{
	int c = xlate_member(j, blk, "content");
	struct str t;
	xlate_put_block(out, "{\"toolResult\":{\"toolUseId\":", xlate_rs(j, xlate_member(j, blk, "tool_use_id")),
			",\"content\":[");
	if (xlate_type(j, c, JSMN_STRING)) {
		xlate_put_block(out, "{\"text\":", json_raw(j, c), "}");
	} else if (xlate_type(j, c, JSMN_ARRAY)) {
		xlate_each(j, c, e, k) {
			if (xlate_block(j, e, &t))
				return -EBADMSG;
			if (str_eq(t, "text"))
				xlate_put_block(out, "{\"text\":", xlate_rs(j, xlate_member(j, e, "text")), "},");
			else if (str_eq(t, "image") && xlate_a2c_image(j, e, out) == 0)
				sb_puts(out, ",");
			else
				return xlate_fail(j, "a tool_result for Converse holds text and images only");
		}
		xlate_trim(out);
	}
	sb_puts(out, "]");
	if (json_is_true(j, xlate_member(j, blk, "is_error")))
		sb_puts(out, ",\"status\":\"error\"");
	sb_puts(out, "}}");
	return 0;
}

/* One Messages content block → one Converse content block. */
static int xlate_a2c_block(struct json *j, int blk, struct sb *out)
{
	struct str t;
	if (xlate_block(j, blk, &t))
		return -EBADMSG;
	if (str_eq(t, "text")) {
		xlate_put_block(out, "{\"text\":", xlate_rs(j, xlate_member(j, blk, "text")), "}");
	} else if (str_eq(t, "image")) {
		return xlate_a2c_image(j, blk, out);
	} else if (str_eq(t, "tool_use")) {
		int in = xlate_member(j, blk, "input");
		xlate_put_block(out, "{\"toolUse\":{\"toolUseId\":", xlate_rs(j, xlate_member(j, blk, "id")), ",");
		xlate_put_block(out, "\"name\":", xlate_rs(j, xlate_member(j, blk, "name")), ",\"input\":");
		xlate_put_block(out, "", xlate_type(j, in, JSMN_OBJECT) ? json_raw(j, in) : STR("{}"), "}}");
	} else if (str_eq(t, "tool_result")) {
		return xlate_a2c_result(j, blk, out);
	} else if (str_eq(t, "thinking")) {
		xlate_put_block(out, "{\"reasoningContent\":{\"reasoningText\":{\"text\":",
				xlate_rs(j, xlate_member(j, blk, "thinking")), "");
		int sig = xlate_member(j, blk, "signature");
		if (xlate_has_text(j, sig))
			xlate_put_block(out, ",\"signature\":", json_raw(j, sig), "");
		sb_puts(out, "}}}");
	} else if (str_eq(t, "redacted_thinking")) {
		xlate_put_block(out, "{\"reasoningContent\":{\"redactedContent\":",
				xlate_rs(j, xlate_member(j, blk, "data")), "}}");
	} else {
		return xlate_fail(j, "a content block Converse has no equivalent for");
	}
	return 0;
}

/* messages: [{role, content}] → Converse's (content always an array of blocks). */
static int xlate_a2c_messages(struct json *j, int msgs, struct sb *out)
{
	if (!xlate_type(j, msgs, JSMN_ARRAY))
		return xlate_fail(j, "\"messages\" must be an array");
	sb_puts(out, "\"messages\":[");
	xlate_each(j, msgs, m, k) {
		int role = xlate_member(j, m, "role"), c = xlate_member(j, m, "content");
		if (!xlate_is(j, role, "user") && !xlate_is(j, role, "assistant"))
			return xlate_fail(j, "a message's role must be \"user\" or \"assistant\"");
		xlate_put_block(out, "{\"role\":", json_raw(j, role), ",\"content\":[");
		if (xlate_type(j, c, JSMN_STRING)) {
			xlate_put_block(out, "{\"text\":", json_raw(j, c), "}");
		} else if (xlate_type(j, c, JSMN_ARRAY)) {
			xlate_each(j, c, e, q) {
				if (xlate_a2c_block(j, e, out))
					return -EBADMSG;
				sb_puts(out, ",");
			}
			xlate_trim(out);
		} else {
			return xlate_fail(j, "content must be a string or an array of blocks");
		}
		sb_puts(out, "]},");
	}
	xlate_trim(out);
	sb_puts(out, "]");
	return 0;
}

/* Does the conversation hold tool_use or tool_result blocks? (Converse then needs toolConfig.) */
static bool xlate_a2c_tool_blocks(struct json *j, int msgs)
{
	struct str t;
	if (xlate_type(j, msgs, JSMN_ARRAY))
		xlate_each(j, msgs, m, k) {
			int c = xlate_member(j, m, "content");
			if (xlate_type(j, c, JSMN_ARRAY))
				xlate_each(j, c, e, q)
					if (!xlate_block(j, e, &t) && (str_eq(t, "tool_use") || str_eq(t, "tool_result")))
						return true;
		}
	return false;
}

/* tools and tool_choice → "toolConfig": none without a tool Converse can take (it wants at
 * least one); tool_choice "none" drops the tools, unless the conversation already used them
 * (Converse then requires toolConfig; it has no "none" choice). */
static int xlate_a2c_tools(struct json *j, int tools, int choice, bool used, struct sb *out)
{
	struct str ct = xlate_inner(j, xlate_member(j, choice, "type"));
	size_t mark = out->len;
	int n = 0;
	if (!xlate_type(j, tools, JSMN_ARRAY) || !j->tok[tools].size || (str_eq(ct, "none") && !used))
		return 0;
	sb_puts(out, ",\"toolConfig\":{\"tools\":[");
	xlate_each(j, tools, t, k) {
		int schema = xlate_member(j, t, "input_schema"), desc = xlate_member(j, t, "description");
		if (!xlate_type(j, schema, JSMN_OBJECT))
			continue; /* a server tool: Converse has none */
		n++;
		xlate_put_block(out, "{\"toolSpec\":{\"name\":", xlate_rs(j, xlate_member(j, t, "name")), "");
		if (xlate_has_text(j, desc))
			xlate_put_block(out, ",\"description\":", json_raw(j, desc), "");
		xlate_put_block(out, ",\"inputSchema\":{\"json\":", json_raw(j, schema), "}}},");
	}
	xlate_trim(out);
	sb_puts(out, "]");
	if (!n) {
		xlate_rewind(out, mark);
		return 0;
	}
	if (str_eq(ct, "any"))
		sb_puts(out, ",\"toolChoice\":{\"any\":{}}");
	else if (str_eq(ct, "tool"))
		xlate_put_block(out, ",\"toolChoice\":{\"tool\":{\"name\":",
				xlate_rs(j, xlate_member(j, choice, "name")), "}}");
	sb_puts(out, "}");
	return 0;
}

/* A Messages request → a Converse request (model and stream are in the path). */
static int xlate_req_a2c(struct arena *a, const char *body, size_t n, struct sb *out, const char **err)
{
	enum { K_MSGS, K_SYS, K_MAX, K_TEMP, K_TOPP, K_STOP, K_TOOLS, K_CHOICE, K_N };
	static const char *const keys[K_N] = { "messages", "system", "max_tokens", "temperature", "top_p",
		"stop_sequences", "tools", "tool_choice" };
	static const char *const conv[] = { "maxTokens", "temperature", "topP" };
	struct json j;
	int v[K_N], rc = json_parse(&j, a, body, n);
	if (rc)
		return xlate_done(rc == -ENOMEM ? -ENOMEM : xlate_fail(&j, "malformed JSON"), &j, out, err);
	if ((rc = xlate_get(&j, 0, keys, K_N, v)) == 0)
		sb_puts(out, "{");
	if (!rc)
		rc = xlate_a2c_messages(&j, v[K_MSGS], out);
	if (!rc && xlate_type(&j, v[K_SYS], JSMN_STRING))
		xlate_put_block(out, ",\"system\":[{\"text\":", json_raw(&j, v[K_SYS]), "}]");
	int cnt = 0;
	if (!rc && xlate_type(&j, v[K_SYS], JSMN_ARRAY)) {
		sb_puts(out, ",\"system\":[{\"text\":\"");
		rc = xlate_join(&j, v[K_SYS], "text", "text", "\\n\\n", out, &cnt);
		sb_puts(out, "\"}]");
	}
	sb_puts(out, ",\"inferenceConfig\":{");
	const char *sep = "";
	for (int i = 0; i < 3; i++)
		if (xlate_num(&j, v[K_MAX + i])) {
			sb_cat(out, sep, "\"", conv[i], "\":", NULL);
			sb_str(out, json_raw(&j, v[K_MAX + i]));
			sep = ",";
		}
	if (xlate_strings(&j, v[K_STOP]))
		xlate_put_block(out, *sep ? ",\"stopSequences\":" : "\"stopSequences\":", json_raw(&j, v[K_STOP]), "");
	sb_puts(out, "}");
	if (!rc)
		rc = xlate_a2c_tools(&j, v[K_TOOLS], v[K_CHOICE], xlate_a2c_tool_blocks(&j, v[K_MSGS]), out);
	sb_puts(out, "}");
	return xlate_done(rc, &j, out, err);
}

/* A Converse answer's content block → a Messages one. */
static int xlate_c2a_block(struct json *j, int blk, struct sb *out)
{
	int t = xlate_member(j, blk, "text"), tu = xlate_member(j, blk, "toolUse");
	int rc = xlate_member(j, xlate_member(j, blk, "reasoningContent"), "reasoningText");
	int red = xlate_member(j, xlate_member(j, blk, "reasoningContent"), "redactedContent");
	if (red >= 0) {
		xlate_put_block(out, "{\"type\":\"redacted_thinking\",\"data\":", xlate_rs(j, red), "}");
	} else if (xlate_type(j, t, JSMN_STRING)) {
		xlate_put_block(out, "{\"type\":\"text\",\"text\":", json_raw(j, t), "}");
	} else if (tu >= 0) {
		int in = xlate_member(j, tu, "input");
		xlate_put_block(out, "{\"type\":\"tool_use\",\"id\":", xlate_rs(j, xlate_member(j, tu, "toolUseId")), "");
		xlate_put_block(out, ",\"name\":", xlate_rs(j, xlate_member(j, tu, "name")), ",\"input\":");
		xlate_put_block(out, "", xlate_type(j, in, JSMN_OBJECT) ? json_raw(j, in) : STR("{}"), "}");
	} else if (rc >= 0) {
		xlate_put_block(out, "{\"type\":\"thinking\",\"thinking\":", xlate_rs(j, xlate_member(j, rc, "text")), "");
		xlate_put_block(out, ",\"signature\":", xlate_has_text(j, xlate_member(j, rc, "signature"))
				? json_raw(j, xlate_member(j, rc, "signature")) : STR("\"\""), "}");
	} else {
		return 1; /* (a block kind a Messages client would not know: left out) */
	}
	return 0;
}

/* A Converse answer → a Messages answer (id and model given); its usage into *u. */
static int xlate_resp_c2a(struct arena *a, const char *body, size_t n, const char *model, const char *id,
			  struct sb *out, struct xlate_usage *u)
{
	static const char *const k[] = { "output", "stopReason", "usage" };
	struct json j;
	int v[3];
	if (json_parse(&j, a, body, n) || xlate_get(&j, 0, k, 3, v))
		return -EBADMSG;
	int content = xlate_member(&j, xlate_member(&j, v[0], "message"), "content");
	if (!xlate_type(&j, content, JSMN_ARRAY))
		return -EBADMSG;
	sb_puts(out, "{\"id\":");
	json_put_z(out, id);
	sb_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
	json_put_z(out, model);
	sb_puts(out, ",\"content\":[");
	xlate_each(&j, content, e, q)
		if (xlate_c2a_block(&j, e, out) == 0)
			sb_puts(out, ",");
	xlate_trim(out);
	sb_cat(out, "],\"stop_reason\":\"", xlate_stop_c2a(xlate_inner(&j, v[1])), "\",\"stop_sequence\":null,\"usage\":",
	       NULL);
	xlate_usage_from_c(&j, v[2], u);
	xlate_put_usage_a(out, u);
	sb_puts(out, "}");
	return out->oom ? -ENOMEM : 0;
}

/* ConverseStream events → Messages events. Blocks open lazily (Converse starts only tool
 * blocks); message_delta waits for the usage in `metadata`, which follows messageStop. */
struct xlate_c2a {
	const char *model, *id; /* borrowed: outlive the stream */
	uint64_t open, think;   /* blocks open (by index < 64); of those, the thinking ones */
	const char *stop;       /* static: messageStop's reason, held for the usage */
	bool started, done;
	struct xlate_usage usage;
};

static void xlate_c2a_init(struct xlate_c2a *s, const char *model, const char *id)
{
	memset(s, 0, sizeof(*s));
	s->model = model;
	s->id = id;
}

static void xlate_c2a_start(struct xlate_c2a *s, struct sb *out)
{
	if (s->started)
		return;
	s->started = true;
	xlate_ev(out, "message_start");
	sb_puts(out, ",\"message\":{\"id\":");
	json_put_z(out, s->id);
	sb_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
	json_put_z(out, s->model);
	sb_puts(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
	xlate_put_usage_a(out, &s->usage);
	sb_puts(out, "}");
	xlate_ev_end(out);
}

/* Open block `i` (as text or thinking) if a delta arrives for one not started. */
static void xlate_c2a_open(struct xlate_c2a *s, int i, bool think, struct sb *out)
{
	if (s->open >> i & 1)
		return;
	s->open |= 1ull << i;
	s->think = think ? s->think | 1ull << i : s->think & ~(1ull << i);
	xlate_ev(out, "content_block_start");
	sb_printf(out, ",\"index\":%d,\"content_block\":%s", i,
		  think ? "{\"type\":\"thinking\",\"thinking\":\"\"}" : "{\"type\":\"text\",\"text\":\"\"}");
	xlate_ev_end(out);
}

static void xlate_c2a_close(struct xlate_c2a *s, int i, struct sb *out)
{
	if (!(s->open >> i & 1))
		return;
	s->open &= ~(1ull << i);
	xlate_ev(out, "content_block_stop");
	sb_printf(out, ",\"index\":%d", i);
	xlate_ev_end(out);
}

/* contentBlockDelta: text, tool input (a JSON fragment), reasoning text or signature. */
static void xlate_c2a_delta(struct xlate_c2a *s, struct json *j, int i, int d, struct sb *out)
{
	int t = xlate_member(j, d, "text"), tu = xlate_member(j, xlate_member(j, d, "toolUse"), "input");
	int rc = xlate_member(j, d, "reasoningContent");
	int rt = xlate_member(j, rc, "text"), sig = xlate_member(j, rc, "signature");
	const char *type = NULL, *field = NULL;
	int v = -1;
	if (xlate_type(j, t, JSMN_STRING))
		type = "text_delta", field = "text", v = t;
	else if (xlate_type(j, tu, JSMN_STRING))
		type = "input_json_delta", field = "partial_json", v = tu;
	else if (xlate_type(j, rt, JSMN_STRING))
		type = "thinking_delta", field = "thinking", v = rt;
	else if (xlate_type(j, sig, JSMN_STRING))
		type = "signature_delta", field = "signature", v = sig;
	if (!type)
		return;
	xlate_c2a_open(s, i, rc >= 0, out);
	xlate_ev(out, "content_block_delta");
	sb_printf(out, ",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":", i, type, field);
	sb_str(out, json_raw(j, v));
	sb_puts(out, "}");
	xlate_ev_end(out);
}

/* message_delta (the held stop reason, the usage) and message_stop. */
static void xlate_c2a_finish(struct xlate_c2a *s, struct sb *out)
{
	xlate_c2a_start(s, out);
	for (int i = 0; i < 64; i++)
		xlate_c2a_close(s, i, out);
	xlate_ev(out, "message_delta");
	sb_cat(out, ",\"delta\":{\"stop_reason\":\"", s->stop ? s->stop : "end_turn", "\",\"stop_sequence\":null},\"usage\":",
	       NULL);
	xlate_put_usage_a(out, &s->usage);
	xlate_ev_end(out);
	xlate_ev(out, "message_stop");
	xlate_ev_end(out);
	s->done = true;
}

/* A tool block Converse starts explicitly (contentBlockStart.start.toolUse). */
static void xlate_c2a_tool(struct xlate_c2a *s, struct json *j, int i, int tu, struct sb *out)
{
	struct str id = xlate_rs(j, xlate_member(j, tu, "toolUseId")), name = xlate_rs(j, xlate_member(j, tu, "name"));
	if (s->open >> i & 1)
		return;
	s->open |= 1ull << i;
	s->think &= ~(1ull << i);
	xlate_ev(out, "content_block_start");
	sb_printf(out, ",\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":", i);
	xlate_put_block(out, "", id, ",\"name\":");
	xlate_put_block(out, "", name, ",\"input\":{}}");
	xlate_ev_end(out);
}

/* One ConverseStream event (its :event-type and JSON payload) → Messages events in `out`.
 * 0, -EBADMSG (not a Converse event) or -ENOMEM. */
static int xlate_c2a_event(struct xlate_c2a *s, struct arena *a, struct str type, struct str payload,
			   struct sb *out)
{
	struct json j;
	if (s->done)
		return 0;
	if (json_parse(&j, a, payload.p, payload.n) || !xlate_type(&j, 0, JSMN_OBJECT))
		return -EBADMSG;
	int idx = xlate_member(&j, 0, "contentBlockIndex");
	long long i = xlate_num(&j, idx) ? json_int(&j, idx, -1) : -1;
	bool block = str_eq(type, "contentBlockStart") || str_eq(type, "contentBlockDelta") ||
		     str_eq(type, "contentBlockStop");
	if (block && (i < 0 || i > 63))
		return -EBADMSG;
	if (str_eq(type, "messageStart") || block)
		xlate_c2a_start(s, out);
	if (str_eq(type, "contentBlockStart")) {
		int tu = xlate_member(&j, xlate_member(&j, 0, "start"), "toolUse");
		if (tu >= 0)
			xlate_c2a_tool(s, &j, (int)i, tu, out);
	} else if (str_eq(type, "contentBlockDelta")) {
		xlate_c2a_delta(s, &j, (int)i, xlate_member(&j, 0, "delta"), out);
	} else if (str_eq(type, "contentBlockStop")) {
		xlate_c2a_close(s, (int)i, out);
	} else if (str_eq(type, "messageStop")) {
		s->stop = xlate_stop_c2a(xlate_inner(&j, xlate_member(&j, 0, "stopReason")));
	} else if (str_eq(type, "metadata")) {
		xlate_usage_from_c(&j, xlate_member(&j, 0, "usage"), &s->usage);
		xlate_c2a_finish(s, out);
	}
	return out->oom ? -ENOMEM : 0;
}

/* The stream ended: close what metadata did not (a stream cut short ends end_turn). */
static void xlate_c2a_end(struct xlate_c2a *s, struct sb *out)
{
	if (!s->done && s->started)
		xlate_c2a_finish(s, out);
}

/* ---- /bedrock/.../converse clients: Converse in, Messages to the providers ---- */

/* A Converse image {"format", "source": {"bytes"}} → a Messages base64 image block. */
static void xlate_c2a_image(struct json *j, int img, struct sb *out)
{
	int bytes = xlate_member(j, xlate_member(j, img, "source"), "bytes");
	xlate_put_block(out, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/",
			xlate_inner(j, xlate_member(j, img, "format")), "\",\"data\":");
	xlate_put_block(out, "", xlate_rs(j, bytes), "}}");
}

/* A Converse tool result's content → Messages tool_result content blocks. */
static int xlate_c2a_result(struct json *j, int tr, struct sb *out)
{
	int c = xlate_member(j, tr, "content");
	xlate_put_block(out, "{\"type\":\"tool_result\",\"tool_use_id\":",
			xlate_rs(j, xlate_member(j, tr, "toolUseId")), ",\"content\":[");
	if (xlate_type(j, c, JSMN_ARRAY))
		xlate_each(j, c, e, k) {
			int t = xlate_member(j, e, "text"), js = xlate_member(j, e, "json"), img = xlate_member(j, e, "image");
			if (img >= 0) {
				xlate_c2a_image(j, img, out);
				sb_puts(out, ",");
			} else if (xlate_type(j, t, JSMN_STRING)) {
				xlate_put_block(out, "{\"type\":\"text\",\"text\":", json_raw(j, t), "},");
			} else if (js >= 0) { /* JSON as its text */
				struct str raw = json_raw(j, js);
				xlate_put_block(out, "{\"type\":\"text\",\"text\":\"", xlate_esc(out, raw.p, raw.n), "\"},");
			}
		}
	xlate_trim(out);
	sb_puts(out, "]");
	if (xlate_is(j, xlate_member(j, tr, "status"), "error"))
		sb_puts(out, ",\"is_error\":true");
	sb_puts(out, "}");
	return 0;
}

/* One Converse request content block → a Messages one (1: skipped, e.g. a cachePoint). */
static int xlate_c2a_req_block(struct json *j, int blk, struct sb *out)
{
	int img = xlate_member(j, blk, "image"), tr = xlate_member(j, blk, "toolResult");
	if (img >= 0) {
		xlate_c2a_image(j, img, out);
		return 0;
	}
	if (tr >= 0)
		return xlate_c2a_result(j, tr, out);
	if (xlate_member(j, blk, "cachePoint") >= 0)
		return 1;
	int rc = xlate_c2a_block(j, blk, out);
	return rc == 1 ? xlate_fail(j, "a content block this gateway cannot pass on (text, image, toolUse, "
				       "toolResult and reasoningContent are)") : rc;
}

static int xlate_c2a_messages(struct json *j, int msgs, struct sb *out)
{
	if (!xlate_type(j, msgs, JSMN_ARRAY))
		return xlate_fail(j, "\"messages\" must be an array");
	sb_puts(out, ",\"messages\":[");
	xlate_each(j, msgs, m, k) {
		int role = xlate_member(j, m, "role"), c = xlate_member(j, m, "content");
		if (!xlate_is(j, role, "user") && !xlate_is(j, role, "assistant"))
			return xlate_fail(j, "a message's role must be \"user\" or \"assistant\"");
		if (!xlate_type(j, c, JSMN_ARRAY))
			return xlate_fail(j, "a message's content must be an array of content blocks");
		xlate_put_block(out, "{\"role\":", json_raw(j, role), ",\"content\":[");
		xlate_each(j, c, e, q) {
			int rc = xlate_c2a_req_block(j, e, out);
			if (rc < 0)
				return rc;
			if (rc == 0)
				sb_puts(out, ",");
		}
		xlate_trim(out);
		sb_puts(out, "]},");
	}
	xlate_trim(out);
	sb_puts(out, "]");
	return 0;
}

/* toolConfig → tools and tool_choice. */
static void xlate_c2a_tools(struct json *j, int tc, struct sb *out)
{
	int tools = xlate_member(j, tc, "tools"), ch = xlate_member(j, tc, "toolChoice");
	if (!xlate_type(j, tools, JSMN_ARRAY))
		return;
	sb_puts(out, ",\"tools\":[");
	xlate_each(j, tools, t, k) {
		int spec = xlate_member(j, t, "toolSpec");
		int schema = xlate_member(j, xlate_member(j, spec, "inputSchema"), "json"), desc = xlate_member(j, spec, "description");
		if (spec < 0)
			continue;
		xlate_put_block(out, "{\"name\":", xlate_rs(j, xlate_member(j, spec, "name")), "");
		if (xlate_has_text(j, desc))
			xlate_put_block(out, ",\"description\":", json_raw(j, desc), "");
		xlate_put_block(out, ",\"input_schema\":", xlate_type(j, schema, JSMN_OBJECT) ? json_raw(j, schema)
				: STR("{\"type\":\"object\"}"), "},");
	}
	xlate_trim(out);
	sb_puts(out, "]");
	if (xlate_member(j, ch, "any") >= 0)
		sb_puts(out, ",\"tool_choice\":{\"type\":\"any\"}");
	else if (xlate_member(j, ch, "tool") >= 0)
		xlate_put_block(out, ",\"tool_choice\":{\"type\":\"tool\",\"name\":",
				xlate_rs(j, xlate_member(j, xlate_member(j, ch, "tool"), "name")), "}");
}

/* A Converse request → a Messages request for `model` (max_tokens 4096 when not given). */
static int xlate_req_c2a(struct arena *a, const char *body, size_t n, const char *model, bool stream,
			 struct sb *out, const char **err)
{
	static const char *const keys[] = { "messages", "system", "inferenceConfig", "toolConfig",
					    "additionalModelRequestFields" };
	static const char *const ik[] = { "maxTokens", "temperature", "topP", "stopSequences" };
	static const char *const as[] = { "max_tokens", "temperature", "top_p", "stop_sequences" };
	static const char *const extra[] = { "top_k", "thinking" }; /* what Claude takes through Converse */
	struct json j;
	int v[5], iv[4] = { -1, -1, -1, -1 }, ev[2] = { -1, -1 }, rc = json_parse(&j, a, body, n), cnt = 0;
	if (rc)
		return xlate_done(rc == -ENOMEM ? -ENOMEM : xlate_fail(&j, "malformed JSON"), &j, out, err);
	if ((rc = xlate_get(&j, 0, keys, 5, v)) != 0)
		return xlate_done(rc, &j, out, err);
	if (xlate_type(&j, v[4], JSMN_OBJECT) && json_obj_get(&j, v[4], extra, 2, ev, NULL))
		return xlate_done(-EBADMSG, &j, out, err);
	if (v[2] >= 0 && json_obj_get(&j, v[2], ik, 4, iv, NULL))
		return xlate_done(-EBADMSG, &j, out, err);
	sb_puts(out, "{\"model\":");
	json_put_z(out, model);
	sb_puts(out, stream ? ",\"stream\":true" : ",\"stream\":false");
	if (!xlate_num(&j, iv[0]))
		sb_puts(out, ",\"max_tokens\":4096");
	for (int i = 0; i < 4; i++)
		if (i < 3 ? xlate_num(&j, iv[i]) : xlate_strings(&j, iv[i])) {
			sb_cat(out, ",\"", as[i], "\":", NULL);
			sb_str(out, json_raw(&j, iv[i]));
		}
	for (int i = 0; i < 2; i++)
		if (ev[i] >= 0) {
			sb_cat(out, ",\"", extra[i], "\":", NULL);
			sb_str(out, json_raw(&j, ev[i]));
		}
	if (xlate_type(&j, v[1], JSMN_ARRAY) && j.tok[v[1]].size) {
		sb_puts(out, ",\"system\":\"");
		xlate_each(&j, v[1], e, k)
			xlate_join(&j, xlate_member(&j, e, "text"), "text", "text", "\\n\\n", out, &cnt);
		sb_puts(out, "\"");
	}
	rc = xlate_c2a_messages(&j, v[0], out);
	if (!rc)
		xlate_c2a_tools(&j, v[3], out);
	sb_puts(out, "}");
	return xlate_done(rc, &j, out, err);
}

/* A Messages answer → a Converse answer; its usage into *u. */
static int xlate_resp_a2c(struct arena *a, const char *body, size_t n, struct sb *out, struct xlate_usage *u)
{
	static const char *const k[] = { "content", "stop_reason", "usage" };
	struct json j;
	int v[3];
	struct str t;
	if (json_parse(&j, a, body, n) || xlate_get(&j, 0, k, 3, v) || !xlate_type(&j, v[0], JSMN_ARRAY))
		return -EBADMSG;
	sb_puts(out, "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[");
	xlate_each(&j, v[0], e, q) {
		if (xlate_block(&j, e, &t))
			return -EBADMSG;
		if (str_eq(t, "text") || str_eq(t, "tool_use") || str_eq(t, "thinking") || str_eq(t, "redacted_thinking")) {
			if (xlate_a2c_block(&j, e, out))
				return -EBADMSG;
			sb_puts(out, ",");
		}
	}
	xlate_trim(out);
	sb_cat(out, "]}},\"stopReason\":\"", xlate_stop_a2c(xlate_inner(&j, v[1])), "\",\"usage\":", NULL);
	xlate_usage_from_a(&j, v[2], u);
	xlate_put_usage_c(out, u);
	sb_puts(out, ",\"metrics\":{\"latencyMs\":0}}");
	return out->oom ? -ENOMEM : 0;
}

/* One ConverseStream frame: :event-type `type`, the JSON payload in `pl`. */
static void xlate_c_frame(struct sb *out, const char *type, const struct sb *pl)
{
	struct str names[] = { STR(":event-type"), STR(":content-type"), STR(":message-type") },
		values[] = { { type, strlen(type) }, STR("application/json"), STR("event") };
	if (pl->oom)
		out->oom = true;
	else
		evs_encode(out, names, values, 3, pl->p, pl->len);
}

/* A Messages content_block_delta → contentBlockDelta's "delta". false: nothing to say. */
static bool xlate_a2c_delta(struct json *j, int d, struct sb *pl)
{
	static const char *const k[] = { "type", "text", "partial_json", "thinking", "signature" };
	int v[5];
	if (xlate_get(j, d, k, 5, v))
		return false;
	if (xlate_is(j, v[0], "text_delta"))
		xlate_put_block(pl, "{\"text\":", xlate_rs(j, v[1]), "}");
	else if (xlate_is(j, v[0], "input_json_delta"))
		xlate_put_block(pl, "{\"toolUse\":{\"input\":", xlate_rs(j, v[2]), "}}");
	else if (xlate_is(j, v[0], "thinking_delta"))
		xlate_put_block(pl, "{\"reasoningContent\":{\"text\":", xlate_rs(j, v[3]), "}}");
	else if (xlate_is(j, v[0], "signature_delta"))
		xlate_put_block(pl, "{\"reasoningContent\":{\"signature\":", xlate_rs(j, v[4]), "}}");
	else
		return false;
	return true;
}

/* One Messages stream event (its name, its JSON) → ConverseStream frames in `out`; the usage
 * gathers in *u (metadata, last, reports it). Errors and pings are the caller's. */
static void xlate_a2c_event(struct arena *a, struct str name, struct str data, struct xlate_usage *u,
			    struct sb *out)
{
	struct json j;
	struct sb pl;
	if (json_parse(&j, a, data.p, data.n) || !xlate_type(&j, 0, JSMN_OBJECT))
		return;
	sb_init(&pl, a, data.n + 64);
	int i = (int)json_int(&j, xlate_member(&j, 0, "index"), 0);
	if (str_eq(name, "message_start")) {
		xlate_usage_from_a(&j, xlate_member(&j, xlate_member(&j, 0, "message"), "usage"), u);
		sb_puts(&pl, "{\"role\":\"assistant\"}");
		xlate_c_frame(out, "messageStart", &pl);
	} else if (str_eq(name, "content_block_start")) {
		int cb = xlate_member(&j, 0, "content_block");
		if (!xlate_is(&j, xlate_member(&j, cb, "type"), "tool_use"))
			return;
		sb_printf(&pl, "{\"contentBlockIndex\":%d,\"start\":{\"toolUse\":{\"toolUseId\":", i);
		xlate_put_block(&pl, "", xlate_rs(&j, xlate_member(&j, cb, "id")), ",\"name\":");
		xlate_put_block(&pl, "", xlate_rs(&j, xlate_member(&j, cb, "name")), "}}}");
		xlate_c_frame(out, "contentBlockStart", &pl);
	} else if (str_eq(name, "content_block_delta")) {
		sb_printf(&pl, "{\"contentBlockIndex\":%d,\"delta\":", i);
		if (xlate_a2c_delta(&j, xlate_member(&j, 0, "delta"), &pl)) {
			sb_puts(&pl, "}");
			xlate_c_frame(out, "contentBlockDelta", &pl);
		}
	} else if (str_eq(name, "content_block_stop")) {
		sb_printf(&pl, "{\"contentBlockIndex\":%d}", i);
		xlate_c_frame(out, "contentBlockStop", &pl);
	} else if (str_eq(name, "message_delta")) {
		xlate_usage_from_a(&j, xlate_member(&j, 0, "usage"), u);
		sb_cat(&pl, "{\"stopReason\":\"", xlate_stop_a2c(xlate_inner(&j, xlate_member(&j, xlate_member(&j, 0,
		       "delta"), "stop_reason"))), "\"}", NULL);
		xlate_c_frame(out, "messageStop", &pl);
	} else if (str_eq(name, "message_stop")) {
		sb_puts(&pl, "{\"usage\":");
		xlate_put_usage_c(&pl, u);
		sb_puts(&pl, ",\"metrics\":{\"latencyMs\":0}}");
		xlate_c_frame(out, "metadata", &pl);
	}
}

/* ======================================================================== *
 * 14. jrnl_ — the charge journal: fixed-size checksummed records.          *
 *                                                                          *
 * Owns: the on-disk format (64-byte little-endian records, CRC32C), the    *
 * per-writer append rings, group commit, replay and compaction.            *
 *                                                                          *
 * Record (all integers little-endian):                                     *
 *    0 u16 magic "BJ"   2 u8 version   3 u8 kind<<4 | type                  *
 *    4 u32 crc32c of bytes 0-3 and 8-63                                    *
 *    8 u64 entity key   16 i64 window start (unix s)   24 i64 spend (µ$)   *
 *   32 i64 tokens in    40 i64 tokens out                                  *
 *   48 u64 request id (TOTAL: number of requests)   56 i64 unix time (ns)  *
 * A CHARGE is one completed request at one tier; a TOTAL (written only by  *
 * compaction) is the sum of an entity's charges in its latest window.      *
 *                                                                          *
 * Writers (workers) never touch the file: jrnl_append encodes into the     *
 * writer's own single-producer ring and returns a sequence number. One     *
 * committer thread (kicked, else every 2 ms) runs jrnl_write: it pwrite()s *
 * every ring's new records at `wend` and publishes each ring's `written`.  *
 * A sync (jrnl_sync_begin, an fdatasync the committer runs through its     *
 * io_uring while it goes on writing, jrnl_sync_end) then publishes each    *
 * ring's `durable` as it was when the sync began. A failed write truncates *
 * back to `wend`, a failed sync to `end`, and publishes nothing, so the    *
 * file is always a sequence of whole records and at most one torn tail.    *
 * While writes fail, `jrnl_error` says why: governed admission answers 503 *
 * and held last bytes are released (nothing waits for a commit that cannot *
 * come); the first write that succeeds clears it.                         *
 *                                                                          *
 * Replay skips a damaged record (bad CRC, or values no writer produces:    *
 * jrnl_decode's ranges) and resyncs at the next 64-byte boundary, so one   *
 * flipped byte costs one charge, not the history after it.                 *
 *                                                                          *
 * Crash safety ("a kill -9 never loses a charge for a delivered            *
 * response"): the worker appends the charge as soon as the usage is known  *
 * (the final upstream chunk) and HOLDS the response's last bytes (the      *
 * final body bytes / the terminating SSE event and 0-chunk) until          *
 * jrnl_safe(ring) >= seq. governance.durability "disk" (the default) waits *
 * for `durable`: the charge of a delivered response survives a power cut;  *
 * cost: one commit interval plus one fdatasync on the END of a response    *
 * (not the first byte, not throughput: one fdatasync covers every record   *
 * of the interval). "process" waits for `written` (pwrite done: the page   *
 * cache survives a kill -9, an OOM kill, a crash of the gateway), and its  *
 * syncs start at most every 10 ms: a power cut can lose their charges.     *
 * A crash between commit and release bills a response the client may not  *
 * have fully received: we err towards charging.                            *
 *                                                                          *
 * Replay reads whole records from offset 0 and stops at the first one that *
 * is short or fails magic/version/CRC, reporting that offset so the caller *
 * truncates there before appending (a mid-file corruption also stops it:   *
 * what follows is not trusted; keep a copy of the file before truncating). *
 * Compaction (committer thread, between commits, so the file is quiet)     *
 * folds the file into one TOTAL per entity for its latest window, writes   *
 * it to a temporary file, fdatasyncs, rename()s it over the journal and    *
 * fsyncs the directory: a crash leaves either the old or the new file.     *
 * ======================================================================== */

#define JRNL_REC 64
#define JRNL_MAGIC 0x4A42u /* "BJ" */
/* What a record may hold: window starts from 1970 to the end of year 9999, amounts that
 * fit the counters (gov_'s GOV_AMT_MAX is below). Anything else is damage, however
 * good its CRC, and is skipped like a bad checksum: no replay arithmetic sees it. */
#define JRNL_TIME_MAX 253402300799LL
#define JRNL_AMT_MAX ((int64_t)1 << 42)

static _Atomic long jrnl_damaged; /* records the start-up replay skipped, for /metrics */
/* The committer's last write failed (an errno: ENOSPC, EFBIG, EIO, ...), 0 once a write
 * succeeds again. Workers read it: governed admission answers 503 (or passes, per
 * governance.on_journal_error) and no response's last byte waits for a commit that
 * cannot come. */
static _Atomic int jrnl_error;
#define JRNL_VERSION 1
#define JRNL_RING 4096 /* records per writer ring; a power of two */
#define JRNL_MAX_WRITERS 64

enum jrnl_type { JRNL_CHARGE = 1, JRNL_TOTAL = 2 };

struct jrnl_rec {
	uint8_t kind;      /* enum gov_kind of the entity */
	uint8_t type;      /* enum jrnl_type */
	uint64_t ent;      /* entity key (gov_ent_key) */
	int64_t win_start; /* unix s: start of the budget window charged */
	int64_t spend;     /* µ$ */
	int64_t tok_in, tok_out;
	uint64_t req;      /* CHARGE: request id; TOTAL: requests counted */
	int64_t t_ns;      /* unix ns when charged */
};

/* One writer's records waiting for the committer. head: writer only; written, durable:
 * committer only. */
struct jrnl_ring {
	alignas(64) _Atomic uint64_t head; /* records appended so far */
	alignas(64) _Atomic uint64_t written; /* records in the file (the page cache): kill -9 safe */
	alignas(64) _Atomic uint64_t durable; /* records on disk (and their space free) */
	alignas(64) uint8_t rec[JRNL_RING][JRNL_REC];
};

struct jrnl {
	int fd;               /* owned: the journal, written at `wend` with pwrite */
	off_t end;            /* bytes on disk (fdatasync'd): whole records */
	off_t wend;           /* bytes written (>= end): whole records */
	struct jrnl_ring **w; /* borrowed: one ring per writer (at most JRNL_MAX_WRITERS) */
	int nw;
	off_t sync_end;       /* the sync in flight (jrnl_sync_begin): wend when it began, */
	uint64_t sync_head[JRNL_MAX_WRITERS]; /* ... and each ring's `written` */
};

/* CRC32C (Castagnoli), bitwise: 64-byte records make a table not worth its cache lines. */
static uint32_t jrnl_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void jrnl_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t jrnl_get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t jrnl_rec_crc(const uint8_t *b)
{
	return jrnl_crc32c(jrnl_crc32c(0, b, 4), b + 8, JRNL_REC - 8);
}

static void jrnl_encode(const struct jrnl_rec *r, uint8_t out[JRNL_REC])
{
	jrnl_put(out, JRNL_MAGIC, 2);
	out[2] = JRNL_VERSION;
	out[3] = (uint8_t)((r->kind & 15) << 4 | (r->type & 15));
	jrnl_put(out + 8, r->ent, 8);
	jrnl_put(out + 16, (uint64_t)r->win_start, 8);
	jrnl_put(out + 24, (uint64_t)r->spend, 8);
	jrnl_put(out + 32, (uint64_t)r->tok_in, 8);
	jrnl_put(out + 40, (uint64_t)r->tok_out, 8);
	jrnl_put(out + 48, r->req, 8);
	jrnl_put(out + 56, (uint64_t)r->t_ns, 8);
	jrnl_put(out + 4, jrnl_rec_crc(out), 4);
}

/* 0, or -EBADMSG for a torn or corrupt record (magic, version, type, CRC or a value
 * out of range). */
static int jrnl_decode(const uint8_t in[JRNL_REC], struct jrnl_rec *r)
{
	if (jrnl_get(in, 2) != JRNL_MAGIC || in[2] != JRNL_VERSION ||
	    jrnl_get(in + 4, 4) != jrnl_rec_crc(in))
		return -EBADMSG;
	r->kind = in[3] >> 4;
	r->type = in[3] & 15;
	if (r->type != JRNL_CHARGE && r->type != JRNL_TOTAL)
		return -EBADMSG;
	r->ent = jrnl_get(in + 8, 8);
	r->win_start = (int64_t)jrnl_get(in + 16, 8);
	r->spend = (int64_t)jrnl_get(in + 24, 8);
	r->tok_in = (int64_t)jrnl_get(in + 32, 8);
	r->tok_out = (int64_t)jrnl_get(in + 40, 8);
	r->req = jrnl_get(in + 48, 8);
	r->t_ns = (int64_t)jrnl_get(in + 56, 8);
	bool ok = r->ent && r->win_start >= 0 && r->win_start <= JRNL_TIME_MAX && r->spend >= 0 &&
		  r->spend <= JRNL_AMT_MAX && r->tok_in >= 0 && r->tok_in <= JRNL_AMT_MAX && r->tok_out >= 0 &&
		  r->tok_out <= JRNL_AMT_MAX && (r->type != JRNL_TOTAL || r->req <= (uint64_t)JRNL_AMT_MAX);
	/* (a CHARGE's req is its request id, any value; a TOTAL's is a count) */
	return ok ? 0 : -EBADMSG;
}

/* Writer side: the sequence to wait for (jrnl_safe >= it), or -EAGAIN when the ring is full. */
static int64_t jrnl_append(struct jrnl_ring *q, const struct jrnl_rec *r)
{
	uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
	if (h - atomic_load_explicit(&q->durable, memory_order_acquire) >= JRNL_RING)
		return -EAGAIN;
	jrnl_encode(r, q->rec[h & (JRNL_RING - 1)]);
	atomic_store_explicit(&q->head, h + 1, memory_order_release);
	return (int64_t)(h + 1);
}

/* Records safe from a crash of the process (`disk` false: written) or of the machine. */
static uint64_t jrnl_safe(const struct jrnl_ring *q, bool disk)
{
	return atomic_load_explicit(disk ? &q->durable : &q->written, memory_order_acquire);
}

/* pwritev all of iov at off, resuming after short writes. 0 or -errno. */
static int jrnl_pwritev_all(int fd, struct iovec *iov, int n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, MIN(n, IOV_MAX), off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Committer thread only. Writes every ring's records not written yet at `wend` and publishes
 * them written. They stay in their rings until a sync makes them durable. Returns the number
 * written, or -errno (nothing published; the file is cut back to `wend`, whole records, and
 * the same records are written next time).
 */
static int jrnl_write(struct jrnl *j)
{
	struct iovec iov[2 * JRNL_MAX_WRITERS];
	uint64_t head[JRNL_MAX_WRITERS];
	int niov = 0, nrec = 0, nw = MIN(j->nw, JRNL_MAX_WRITERS);
	for (int i = 0; i < nw; i++) {
		struct jrnl_ring *q = j->w[i];
		uint64_t d = atomic_load_explicit(&q->written, memory_order_relaxed);
		uint64_t h = head[i] = atomic_load_explicit(&q->head, memory_order_acquire);
		uint64_t a = d & (JRNL_RING - 1), first = MIN(h - d, JRNL_RING - a);
		if (first)
			iov[niov++] = (struct iovec){ q->rec[a], first * JRNL_REC };
		if (h - d > first)
			iov[niov++] = (struct iovec){ q->rec[0], (h - d - first) * JRNL_REC };
		nrec += (int)(h - d);
	}
	if (nrec == 0)
		return 0;
	int rc = jrnl_pwritev_all(j->fd, iov, niov, j->wend);
	if (rc) {
		if (ftruncate(j->fd, j->wend) != 0) {
			/* the next write starts at wend anyway */
		}
		return rc;
	}
	j->wend += (off_t)nrec * JRNL_REC;
	for (int i = 0; i < nw; i++)
		atomic_store_explicit(&j->w[i]->written, head[i], memory_order_release);
	return nrec;
}

/* A sync is to begin (the caller fdatasyncs, now or asynchronously): false when everything
 * written is durable already. It covers what is written at this moment. */
static bool jrnl_sync_begin(struct jrnl *j)
{
	if (j->wend == j->end)
		return false;
	j->sync_end = j->wend;
	for (int i = 0; i < MIN(j->nw, JRNL_MAX_WRITERS); i++)
		j->sync_head[i] = atomic_load_explicit(&j->w[i]->written, memory_order_relaxed);
	return true;
}

/* The sync ended with `rc` (0 or -errno). 0: what it covered is published durable (and its
 * ring space free). Failed: the page cache may have dropped what it held, so the file is cut
 * back to `end` and everything since is written again (`written` goes back to `durable`). */
static int jrnl_sync_end(struct jrnl *j, int rc)
{
	int nw = MIN(j->nw, JRNL_MAX_WRITERS);
	if (rc == 0) {
		j->end = j->sync_end;
		for (int i = 0; i < nw; i++)
			atomic_store_explicit(&j->w[i]->durable, j->sync_head[i], memory_order_release);
		return 0;
	}
	if (ftruncate(j->fd, j->end) != 0) {
		/* the next write starts at end anyway */
	}
	j->wend = j->end;
	for (int i = 0; i < nw; i++)
		atomic_store_explicit(&j->w[i]->written, atomic_load_explicit(&j->w[i]->durable, memory_order_relaxed),
				      memory_order_release);
	return rc;
}

/*
 * Apply every valid record from offset 0, in file order; a damaged record is skipped (the
 * records are fixed-size, so the next one is found again). *valid_end = the end of the last
 * valid record: what follows it is a torn tail. *skipped = damaged records before that
 * point. Returns the number applied, or -errno on a read error.
 */
static int jrnl_replay(int fd, void (*apply)(void *ctx, const struct jrnl_rec *r), void *ctx,
		       off_t *valid_end, long *skipped)
{
	uint8_t buf[JRNL_REC * 256];
	off_t off = 0;
	int n = 0;
	long bad = 0; /* damaged records since the last good one */
	*valid_end = 0;
	*skipped = 0;
	for (;;) {
		ssize_t got = pread(fd, buf, sizeof(buf), off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		for (ssize_t k = 0; k + JRNL_REC <= got; k += JRNL_REC) {
			struct jrnl_rec r;
			if (jrnl_decode(buf + k, &r) != 0) { /* fixed-size records: resync at the next one */
				bad++;
				continue;
			}
			apply(ctx, &r);
			n++;
			*skipped += bad; /* damage followed by good records is not a torn tail */
			bad = 0;
			*valid_end = off + k + JRNL_REC;
		}
		if (got < (ssize_t)sizeof(buf))
			return n; /* EOF; a short tail (< 64 bytes) is torn */
		off += got;
	}
}

/* Write `n` records to path_tmp, fdatasync, rename over `path`, fsync the directory. 0 or -errno. */
static int jrnl_snapshot(const char *path_tmp, const char *path, const struct jrnl_rec *recs, size_t n)
{
	int fd = open(path_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc = 0;
	if (fd < 0)
		return -errno;
	uint8_t buf[JRNL_REC * 64];
	for (size_t i = 0; i < n && rc == 0;) {
		size_t k = 0;
		for (; k < 64 && i < n; k++, i++)
			jrnl_encode(&recs[i], buf + k * JRNL_REC);
		struct iovec v = { buf, k * JRNL_REC };
		rc = jrnl_pwritev_all(fd, &v, 1, (off_t)(i - k) * JRNL_REC);
	}
	if (rc == 0 && fdatasync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(path_tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(path_tmp);
		return rc;
	}
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
		 slash ? path : ".");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0)
			rc = -errno;
		close(dfd);
	}
	return rc;
}

/* ---- compaction: fold a journal into one TOTAL per entity ---- */

struct jrnl_fold {
	struct jrnl_rec *r; /* owned (malloc): open-addressed by entity key; ent 0 = empty */
	size_t cap, n;
	bool oom;
};

static bool jrnl_fold_grow(struct jrnl_fold *f)
{
	size_t cap = f->cap ? f->cap * 2 : 256;
	struct jrnl_rec *r = calloc(cap, sizeof(*r));
	if (!r)
		return false;
	for (size_t i = 0; i < f->cap; i++) {
		if (!f->r[i].ent)
			continue;
		size_t h = f->r[i].ent & (cap - 1);
		while (r[h].ent)
			h = (h + 1) & (cap - 1);
		r[h] = f->r[i];
	}
	free(f->r);
	f->r = r;
	f->cap = cap;
	return true;
}

/*
 * Replay callback. An entity's latest window is the one of its most recent record (by time),
 * so a changed reset_duration is followed; older windows are dropped; same window: summed.
 */
static void jrnl_fold_apply(void *ctx, const struct jrnl_rec *r)
{
	struct jrnl_fold *f = ctx;
	if (f->oom || !r->ent || ((f->n + 1) * 2 > f->cap && !jrnl_fold_grow(f))) {
		f->oom = true;
		return;
	}
	size_t h = r->ent & (f->cap - 1);
	while (f->r[h].ent && f->r[h].ent != r->ent)
		h = (h + 1) & (f->cap - 1);
	struct jrnl_rec *t = &f->r[h];
	uint64_t nreq = r->type == JRNL_TOTAL ? r->req : 1;
	if (!t->ent || (t->win_start != r->win_start && r->t_ns >= t->t_ns)) {
		f->n += !t->ent;
		*t = (struct jrnl_rec){ .kind = r->kind, .type = JRNL_TOTAL, .ent = r->ent,
					.win_start = r->win_start, .t_ns = r->t_ns };
	} else if (t->win_start != r->win_start) {
		return; /* a straggler from an older window */
	}
	/* decoded amounts are <= JRNL_AMT_MAX, so each sum fits before it is held there */
	t->spend = MIN(t->spend + r->spend, JRNL_AMT_MAX);
	t->tok_in = MIN(t->tok_in + r->tok_in, JRNL_AMT_MAX);
	t->tok_out = MIN(t->tok_out + r->tok_out, JRNL_AMT_MAX);
	t->req = MIN(t->req + nreq, (uint64_t)JRNL_AMT_MAX);
	t->t_ns = MAX(t->t_ns, r->t_ns);
}

/*
 * Committer thread only, between commits: fold j's file into TOTALs, atomically replace
 * `path` with them, and continue appending to the new file. 0 or -errno (j unchanged).
 */
static int jrnl_compact(struct jrnl *j, const char *path)
{
	struct jrnl_fold f = { 0 };
	off_t valid;
	long skipped;
	char tmp[PATH_MAX];
	int rc = jrnl_replay(j->fd, jrnl_fold_apply, &f, &valid, &skipped);
	if (rc >= 0 && f.oom)
		rc = -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; rc >= 0 && i < f.cap; i++)
		if (f.r[i].ent)
			f.r[k++] = f.r[i];
	if (rc >= 0 && snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		rc = -ENAMETOOLONG;
	if (rc >= 0)
		rc = jrnl_snapshot(tmp, path, f.r, k);
	free(f.r);
	if (rc < 0)
		return rc;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno; /* the file is already the snapshot: the caller reopens it */
	close(j->fd);
	j->fd = fd;
	j->end = j->wend = (off_t)k * JRNL_REC;
	return 0;
}

/* ======================================================================== *
 * 15. gov_ — governance: windows, prices, lock-free counters, admission.   *
 *                                                                          *
 * Owns: reset windows (pure calendar arithmetic, UTC, no libc time zone),  *
 * the price table and cost math in integer micro-dollars (µ$), the shared  *
 * counter region, the multi-tier admission/settlement protocol, and the    *
 * governance config (gov_cfg, struct gov: immutable, config arena).        *
 *                                                                          *
 * Counters. The region is a flat array of 128-byte slots (two cache lines, *
 * the rate-limit words on the second), found by an entity's 64-bit key     *
 * (claimed once by CAS, never freed), so a reload keeps the counters of    *
 * entities that still exist. Every windowed counter is ONE 64-bit word:    *
 * the low 22 bits of its window's start (unix s) in the top bits, the      *
 * amount in the low 42 (4.39e12: $4.39M, or 4.39e12 tokens, per window).   *
 * Updating and rolling over are then the same CAS: a word whose tag is     *
 * neither the caller's window start nor its end (the caller's clock is a   *
 * little behind a window someone already rolled to) belongs to an old      *
 * window and is replaced by (tag, 0) — exactly once, and no concurrent add *
 * can be wiped or land in the wrong window. No locks anywhere.             *
 * (A tag repeats after 2^22 s; a slot idle for an exact multiple of that,  *
 * ~48.5 days, in a 1-second window would reuse that second's count.)       *
 *                                                                          *
 * Budget bound. `used` = settled + reserved µ$. Admission reserves the     *
 * request's estimate e by CAS only while used < limit, so reservations     *
 * stop the moment the limit is reached and at most one request crosses    *
 * it. At completion used += actual - e. Hence, per window and tier:        *
 *     spend < limit + a_last + Σ over requests in flight at the last       *
 *             admission of max(0, a_i - e_i)                               *
 * so with estimates that are upper bounds (max_tokens × output price +     *
 * input tokens × input price) spend < limit + one request's cost. A        *
 * window roll discards reservations (requests in flight across a reset    *
 * are charged in full to the new window). Token-rate limits reserve the    *
 * same way (body bytes / 4 + max_tokens tokens), with the same bound.      *
 * An unpriced model is charged per governance.unpriced (gov_price_max).    *
 *                                                                          *
 * Callers: cfg_parse (gov_cfg), the main thread (gov_bind after a          *
 * config is built; gov_replay_apply, then gov_replay_rates, at start),     *
 * workers (gov_key_find, gov_key_allows, gov_tiers, gov_admit,             *
 * gov_complete, gov_abort), admin (gov_usage_json). Time is unix seconds   *
 * from the caller (CLOCK_REALTIME).                                        *
 * ======================================================================== */

/* ---- windows ---- */

enum gov_unit { GU_NONE, GU_SEC, GU_MIN, GU_HOUR, GU_DAY, GU_WEEK, GU_MONTH, GU_YEAR };

struct gov_window {
	enum gov_unit unit; /* GU_NONE: one window for ever */
	int32_t n;          /* >= 1 */
};

struct gov_winpos {
	int64_t start, end; /* [start, end): unix s */
};

static const struct { char c; enum gov_unit u; int64_t secs, max_n; } gov_units[] = {
	{ 's', GU_SEC, 1, 100000000 }, { 'm', GU_MIN, 60, 10000000 }, { 'h', GU_HOUR, 3600, 1000000 },
	{ 'd', GU_DAY, 86400, 36600 },  { 'w', GU_WEEK, 604800, 5200 }, { 'M', GU_MONTH, 0, 1200 },
	{ 'Y', GU_YEAR, 0, 100 },
};

#define GOV_MONDAY_S (4 * 86400) /* 1970-01-05, the first Monday after the epoch */

/* "30s", "1m" (minute), "1M" (month), "1Y": digits then one unit. 0, -EINVAL or -ERANGE. */
static int gov_parse_duration(const char *s, struct gov_window *w)
{
	int64_t n = 0;
	const char *p = s;
	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++)
		if ((n = n * 10 + (*p - '0')) > 1000000000)
			return -ERANGE;
	for (size_t i = 0; i < ARRAY_LEN(gov_units); i++) {
		if (*p != gov_units[i].c || p[1])
			continue;
		if (n == 0 || n > gov_units[i].max_n)
			return n ? -ERANGE : -EINVAL;
		*w = (struct gov_window){ gov_units[i].u, (int32_t)n };
		return 0;
	}
	return -EINVAL;
}

static int64_t gov_fdiv(int64_t a, int64_t b) /* floor division, b > 0 */
{
	return a / b - (a % b < 0);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t gov_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = gov_fdiv(y, 400);
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void gov_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = gov_fdiv(z, 146097);
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned gov_month_days(int64_t y, unsigned m)
{
	return (unsigned)(m == 12 ? 31 : gov_days_from_civil(y, m + 1, 1) - gov_days_from_civil(y, m, 1));
}

/* Months since 1970-01 of time t. */
static int64_t gov_month_of(int64_t t)
{
	int64_t y;
	unsigned m, d;
	gov_civil_from_days(gov_fdiv(t, 86400), &y, &m, &d);
	return (y - 1970) * 12 + m - 1;
}

/* First instant of month `mi` (months since 1970-01). */
static int64_t gov_month_start(int64_t mi)
{
	return gov_days_from_civil(1970 + gov_fdiv(mi, 12), (unsigned)(mi - gov_fdiv(mi, 12) * 12) + 1, 1) * 86400;
}

/* t plus k months, the day clamped to the target month's length (Jan 31 + 1M = Feb 28/29). */
static int64_t gov_add_months(int64_t t, int64_t k)
{
	int64_t days = gov_fdiv(t, 86400), sod = t - days * 86400, y;
	unsigned m, d;
	gov_civil_from_days(days, &y, &m, &d);
	int64_t mi = y * 12 + (m - 1) + k, ny = gov_fdiv(mi, 12);
	unsigned nm = (unsigned)(mi - ny * 12) + 1, dim = gov_month_days(ny, nm);
	return gov_days_from_civil(ny, nm, d < dim ? d : dim) * 86400 + sod;
}

static int64_t gov_unit_secs(enum gov_unit u)
{
	for (size_t i = 0; i < ARRAY_LEN(gov_units); i++)
		if (gov_units[i].u == u)
			return gov_units[i].secs;
	return 0;
}

/* Months-long windows: calendar (aligned to multiples of n months since 1970) or rolling from anchor. */
static void gov_window_months(int64_t months, bool cal, int64_t anchor, int64_t now, struct gov_winpos *p)
{
	if (cal) {
		int64_t q = gov_fdiv(gov_month_of(now), months) * months;
		p->start = gov_month_start(q);
		p->end = gov_month_start(q + months);
		return;
	}
	int64_t k = gov_fdiv(gov_month_of(now) - gov_month_of(anchor), months);
	while ((p->start = gov_add_months(anchor, k * months)) > now)
		k--;
	while ((p->end = gov_add_months(anchor, (k + 1) * months)) <= now)
		p->start = p->end, k++;
}

/*
 * The window containing `now`. Rolling: fixed-length windows counted from `anchor`.
 * calendar_aligned: UTC boundaries (minute/hour/day starts, Monday 00:00 weeks, the 1st of a
 * month, Jan 1), multiples of n counted from the epoch (3M = quarters, 5m = :00, :05, ...).
 */
static void gov_window_at(const struct gov_window *w, bool cal, int64_t anchor, int64_t now,
			  struct gov_winpos *p)
{
	/* the calendar math below is exact for years 1970..9999 and bounded durations */
	now = MAX(0, MIN(now, JRNL_TIME_MAX));
	anchor = MAX(0, MIN(anchor, JRNL_TIME_MAX));
	if (w->unit == GU_NONE) {
		*p = (struct gov_winpos){ 0, INT64_MAX };
		return;
	}
	if (w->unit == GU_MONTH || w->unit == GU_YEAR) {
		gov_window_months(w->unit == GU_YEAR ? 12LL * w->n : w->n, cal, anchor, now, p);
		return;
	}
	int64_t len = gov_unit_secs(w->unit) * w->n;
	int64_t base = cal ? (w->unit == GU_WEEK ? GOV_MONDAY_S : 0) : anchor;
	p->start = base + gov_fdiv(now - base, len) * len;
	p->end = p->start + len;
}

__attribute__((unused)) static int64_t gov_window_start(const struct gov_window *w, bool cal, int64_t anchor_s, int64_t now_s)
{
	struct gov_winpos p;
	gov_window_at(w, cal, anchor_s, now_s, &p);
	return p.start;
}

/* The next reset time. */
__attribute__((unused)) static int64_t gov_window_end(const struct gov_window *w, bool cal, int64_t anchor_s, int64_t now_s)
{
	struct gov_winpos p;
	gov_window_at(w, cal, anchor_s, now_s, &p);
	return p.end;
}

/* ---- money: decimal dollars, prices, cost ---- */

/*
 * Exact decimal dollars (JSON number syntax) → µ$: "2.5" → 2500000, "1e-3" → 1000.
 * 0; -EINVAL (syntax), -EDOM (negative), -ERANGE (> max), -ENOTSUP (finer than 1 µ$).
 */
static int gov_parse_micros(const char *s, size_t n, int64_t max, int64_t *out)
{
	if (!json_number_ok(s, n))
		return -EINVAL;
	if (s[0] == '-')
		return -EDOM;
	uint64_t mant = 0;
	int64_t scale = 6, exp = 0;
	bool frac = false, big = false;
	size_t i = 0;
	for (; i < n && s[i] != 'e' && s[i] != 'E'; i++) {
		if (s[i] == '.') {
			frac = true;
			continue;
		}
		if (mant > (UINT64_MAX - 9) / 10) { /* only zeros may follow, else too big/too fine */
			if (s[i] != '0')
				big = true;
			if (!frac)
				scale++;
			continue;
		}
		mant = mant * 10 + (uint64_t)(s[i] - '0');
		scale -= frac;
	}
	if (i < n)
		exp = strtoll(s + i + 1, NULL, 10); /* json_number_ok vetted the syntax */
	if (mant == 0 && !big) {
		*out = 0;
		return 0;
	}
	if (big || exp > 40)
		return -ERANGE;
	if (exp < -40)
		return -ENOTSUP;
	for (scale += exp; scale < 0; scale++) {
		if (mant % 10)
			return -ENOTSUP;
		mant /= 10;
	}
	for (; scale > 0; scale--) {
		if (mant > (uint64_t)max / 10)
			return -ERANGE;
		mant *= 10;
	}
	if (mant > (uint64_t)max)
		return -ERANGE;
	*out = (int64_t)mant;
	return 0;
}

/* Prices in µ$ per million tokens ($2.50/MTok = 2500000). */
struct gov_price {
	int64_t in, out, cache_read, cache_write;
};

struct gov_price_ent {
	const char *prov; /* NULL = any provider; else a provider name or kind */
	const char *pat;  /* exact name, prefix (at a '-', '.', '@', ':' boundary), or glob */
	struct gov_price p;
};

#define GOV_USD(d, c) ((int64_t)(d) * 1000000 + (int64_t)(c) * 10000)  /* GOV_USD(2, 50) = $2.50 */
#define GOV_MILLI(m) ((int64_t)(m) * 1000)                         /* GOV_MILLI(75) = $0.075 */

/*
 * Built-in list prices (US$ per million tokens: input, output, cache read, cache write) as of
 * 2026-11, a DEFAULT: the config's "pricing" and "pricing_file" override it entry by entry.
 * Anthropic cache writes are the 5-minute tier (1.25 × input); OpenAI and Gemini do not
 * charge cache writes.
 */
static const struct gov_price_ent gov_builtin_prices[] = {
	{ NULL, "gpt-4o", { GOV_USD(2, 50), GOV_USD(10, 0), GOV_USD(1, 25), 0 } },
	{ NULL, "gpt-4o-mini", { GOV_USD(0, 15), GOV_USD(0, 60), GOV_MILLI(75), 0 } },
	{ NULL, "gpt-4.1", { GOV_USD(2, 0), GOV_USD(8, 0), GOV_USD(0, 50), 0 } },
	{ NULL, "gpt-4.1-mini", { GOV_USD(0, 40), GOV_USD(1, 60), GOV_USD(0, 10), 0 } },
	{ NULL, "gpt-4.1-nano", { GOV_USD(0, 10), GOV_USD(0, 40), GOV_MILLI(25), 0 } },
	{ NULL, "gpt-4-turbo", { GOV_USD(10, 0), GOV_USD(30, 0), 0, 0 } },
	{ NULL, "gpt-3.5-turbo", { GOV_USD(0, 50), GOV_USD(1, 50), 0, 0 } },
	{ NULL, "o1", { GOV_USD(15, 0), GOV_USD(60, 0), GOV_USD(7, 50), 0 } },
	{ NULL, "o1-mini", { GOV_USD(1, 10), GOV_USD(4, 40), GOV_USD(0, 55), 0 } },
	{ NULL, "o1-pro", { GOV_USD(150, 0), GOV_USD(600, 0), 0, 0 } },
	{ NULL, "o3", { GOV_USD(2, 0), GOV_USD(8, 0), GOV_USD(0, 50), 0 } },
	{ NULL, "o3-mini", { GOV_USD(1, 10), GOV_USD(4, 40), GOV_USD(0, 55), 0 } },
	{ NULL, "o3-pro", { GOV_USD(20, 0), GOV_USD(80, 0), 0, 0 } },
	{ NULL, "o4-mini", { GOV_USD(1, 10), GOV_USD(4, 40), GOV_MILLI(275), 0 } },
	{ NULL, "gpt-5", { GOV_USD(1, 25), GOV_USD(10, 0), GOV_MILLI(125), 0 } },
	{ NULL, "gpt-5-mini", { GOV_USD(0, 25), GOV_USD(2, 0), GOV_MILLI(25), 0 } },
	{ NULL, "gpt-5-nano", { GOV_USD(0, 5), GOV_USD(0, 40), GOV_MILLI(5), 0 } },
	{ NULL, "text-embedding-3-small", { GOV_USD(0, 2), 0, 0, 0 } },
	{ NULL, "text-embedding-3-large", { GOV_USD(0, 13), 0, 0, 0 } },
	{ NULL, "claude-opus-4*", { GOV_USD(15, 0), GOV_USD(75, 0), GOV_USD(1, 50), GOV_MILLI(18750) } },
	{ NULL, "claude-opus-4-5*", { GOV_USD(5, 0), GOV_USD(25, 0), GOV_USD(0, 50), GOV_USD(6, 25) } },
	{ NULL, "claude-sonnet-4*", { GOV_USD(3, 0), GOV_USD(15, 0), GOV_USD(0, 30), GOV_USD(3, 75) } },
	{ NULL, "claude-3-7-sonnet", { GOV_USD(3, 0), GOV_USD(15, 0), GOV_USD(0, 30), GOV_USD(3, 75) } },
	{ NULL, "claude-3-5-sonnet", { GOV_USD(3, 0), GOV_USD(15, 0), GOV_USD(0, 30), GOV_USD(3, 75) } },
	{ NULL, "claude-haiku-4-5", { GOV_USD(1, 0), GOV_USD(5, 0), GOV_USD(0, 10), GOV_USD(1, 25) } },
	{ NULL, "claude-3-5-haiku", { GOV_USD(0, 80), GOV_USD(4, 0), GOV_MILLI(80), GOV_USD(1, 0) } },
	{ NULL, "claude-3-haiku", { GOV_USD(0, 25), GOV_USD(1, 25), GOV_MILLI(30), GOV_USD(0, 30) } },
	{ NULL, "claude-3-opus", { GOV_USD(15, 0), GOV_USD(75, 0), GOV_USD(1, 50), GOV_MILLI(18750) } },
	/* Gemini (prompts up to 200k tokens; implicit-cache reads) */
	{ NULL, "gemini-2.5-pro", { GOV_USD(1, 25), GOV_USD(10, 0), GOV_MILLI(310), 0 } },
	{ NULL, "gemini-2.5-flash", { GOV_USD(0, 30), GOV_USD(2, 50), GOV_MILLI(75), 0 } },
	{ NULL, "gemini-2.5-flash-lite", { GOV_USD(0, 10), GOV_USD(0, 40), GOV_MILLI(25), 0 } },
	{ NULL, "gemini-2.0-flash", { GOV_USD(0, 10), GOV_USD(0, 40), GOV_MILLI(25), 0 } },
	{ NULL, "gemini-2.0-flash-lite", { GOV_MILLI(75), GOV_USD(0, 30), 0, 0 } },
	/* open models on the OpenAI-compatible hosts: the host's price, so provider-qualified */
	{ "groq", "llama-3.3-70b-versatile", { GOV_USD(0, 59), GOV_USD(0, 79), 0, 0 } },
	{ "groq", "llama-3.1-8b-instant", { GOV_USD(0, 5), GOV_USD(0, 8), 0, 0 } },
	{ "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", { GOV_USD(0, 88), GOV_USD(0, 88), 0, 0 } },
	{ "mistral", "mistral-large-latest", { GOV_USD(2, 0), GOV_USD(6, 0), 0, 0 } },
	{ "mistral", "mistral-small-latest", { GOV_USD(0, 10), GOV_USD(0, 30), 0, 0 } },
	{ "mistral", "codestral-latest", { GOV_USD(0, 30), GOV_USD(0, 90), 0, 0 } },
	/* Bedrock's own models, on demand (us-east-1); globs so that cross-region inference
	 * profiles ("us.amazon.nova-pro-v1:0") match too. Claude on Bedrock: the claude-* rows. */
	{ "bedrock", "*amazon.nova-micro-v1*", { GOV_MILLI(35), GOV_MILLI(140), 8750, 0 } },
	{ "bedrock", "*amazon.nova-lite-v1*", { GOV_MILLI(60), GOV_MILLI(240), GOV_MILLI(15), 0 } },
	{ "bedrock", "*amazon.nova-pro-v1*", { GOV_USD(0, 80), GOV_USD(3, 20), GOV_USD(0, 20), 0 } },
	{ "bedrock", "*meta.llama3-3-70b-instruct*", { GOV_USD(0, 72), GOV_USD(0, 72), 0, 0 } },
	{ "bedrock", "*meta.llama3-1-70b-instruct*", { GOV_USD(0, 72), GOV_USD(0, 72), 0, 0 } },
	{ "bedrock", "*meta.llama3-1-8b-instruct*", { GOV_USD(0, 22), GOV_USD(0, 22), 0, 0 } },
	{ "bedrock", "*meta.llama3-70b-instruct*", { GOV_USD(2, 65), GOV_USD(3, 50), 0, 0 } },
	{ "bedrock", "*meta.llama3-8b-instruct*", { GOV_USD(0, 30), GOV_USD(0, 60), 0, 0 } },
};

/* How specifically `pat` names `model`: 0 = no match; exact beats prefix/glob, longer beats shorter. */
static size_t gov_price_score(const char *pat, const char *model)
{
	size_t n = strlen(pat), lit = 0;
	if (strcmp(pat, model) == 0)
		return 1000000 + n;
	if (strpbrk(pat, "*?[")) {
		for (const char *c = pat; *c; c++)
			lit += !strchr("*?[]", *c);
		return fnmatch(pat, model, 0) == 0 ? 1 + lit : 0;
	}
	if (strncmp(pat, model, n) == 0 && strchr("-.@:", model[n]))
		return 1 + n;
	return 0;
}

/* Best entry of one table for (provider name/kind, model); provider-qualified entries win ties. */
static const struct gov_price *gov_price_best(const struct gov_price_ent *t, int n, const char *pname,
					      const char *pkind, const char *model)
{
	const struct gov_price *best = NULL;
	size_t best_score = 0;
	for (int i = 0; i < n; i++) {
		if (t[i].prov && !(pname && strcmp(t[i].prov, pname) == 0) &&
		    !(pkind && strcmp(t[i].prov, pkind) == 0))
			continue;
		size_t s = gov_price_score(t[i].pat, model);
		s = s ? s * 2 + (t[i].prov != NULL) : 0;
		if (s > best_score) {
			best_score = s;
			best = &t[i].p;
		}
	}
	return best;
}

/* ---- governed entities and the config they come from ---- */

enum gov_kind { GK_NONE, GK_CUSTOMER, GK_TEAM, GK_KEY, GK_PCFG, GK_PROVIDER };

static const char *const gov_kind_name[] = { "", "customer", "team", "virtual_key",
					     "provider_config", "provider" };

struct gov_budget {
	int64_t max;           /* µ$ per window; < 0 = no budget */
	struct gov_window win; /* GU_NONE without a budget: spend is then a running total */
	bool cal;              /* calendar_aligned */
};

struct gov_rate {
	int64_t req_max, tok_max;          /* per window; < 0 = unlimited */
	struct gov_window req_win, tok_win;
	int32_t max_conc;                  /* in-flight requests; 0 = unlimited */
};

struct gov_slot;

struct gov_ent {
	enum gov_kind kind;
	const char *id;         /* config arena (provider configs: "key/provider") */
	uint64_t key;           /* gov_ent_key(kind, id): slot and journal identity, never 0 */
	struct gov_budget budget;
	struct gov_rate rate;
	struct gov_slot *slot;  /* the counter region (outlives configs); set by gov_bind */
};

struct gov_team {
	struct gov_ent e;
	int customer;           /* index into gov.cust, or -1 */
};

struct gov_pcfg {
	struct gov_ent e;
	const char *provider;   /* config arena: a provider entry's name (or kind) */
	int weight;             /* steers the key's traffic; < 0 = the provider's own weight */
};

struct gov_vkey {
	struct gov_ent e;
	const char *value;      /* config arena: the secret the client presents */
	size_t nvalue;          /* 0: stored as its SHA-256 only */
	unsigned char sha[32];  /* value_sha256 */
	bool active;
	int team, customer;     /* indexes into gov.team / gov.cust, or -1 (customer via team too) */
	const char **models, **provs; /* config arena: globs; NULL = all */
	int nmodels, nprovs;
	struct gov_pcfg *pc;    /* config arena */
	int npc;
};

/* A governed request to a model with no known price (a new release, a typo). */
enum gov_journal_error {
	GOV_JERR_DENY,  /* governed requests answer 503 while charges cannot be written (default) */
	GOV_JERR_ALLOW, /* they pass; their charges stay in memory until the journal recovers */
};

enum gov_unpriced {
	GOV_UNPRICED_MAX,  /* charged at the provider's most expensive known rate (default) */
	GOV_UNPRICED_DENY, /* refused */
	GOV_UNPRICED_FREE, /* costs 0 (counted in bifrost_unpriced_requests_total) */
};

struct gov {
	bool enforce;
	bool durable_disk;      /* durability "disk" (default): a last byte waits for fdatasync */
	enum gov_unpriced unpriced;
	enum gov_journal_error on_journal_error;
	struct gov_ent *cust;   /* everything here: config arena */
	int ncust;
	struct gov_team *team;
	int nteam;
	struct gov_vkey *key;
	int nkey;
	int nhashed;            /* keys stored as value_sha256 (the admin API writes them so) */
	struct gov_ent *prov;   /* parallel to cfg.prov: each provider entry's own cap */
	int nprov;
	struct gov_price_ent *price; /* the config's "pricing": searched before the built-ins */
	int nprice;
	struct gov_price_ent *fprice; /* pricing_file: exact names, each with its provider */
	int nfprice;
	uint32_t *fhash, fcap;  /* (provider, name) → 1 + index into fprice; fcap a power of two */
	struct gov_ent **all;   /* every entity, for bind, replay and usage */
	int nall;
	uint32_t *hidx;         /* open addressing: key → 1 + index into all; 0 = empty */
	uint32_t hcap;          /* power of two */
};

static uint32_t gov_fhash(const char *prov, const char *pat)
{
	return (uint32_t)fnv1a_z(fnv1a(fnv1a_z(FNV_BASIS, prov), "/", 1), pat);
}

/* pricing_file's entry for exactly (provider, model), or NULL: one hash probe. */
static const struct gov_price *gov_price_file(const struct gov *g, const char *prov, const char *model)
{
	if (!g || !g->fcap || !prov)
		return NULL;
	for (uint32_t i = gov_fhash(prov, model) & (g->fcap - 1);; i = (i + 1) & (g->fcap - 1)) {
		uint32_t v = g->fhash[i];
		if (!v)
			return NULL;
		const struct gov_price_ent *e = &g->fprice[v - 1];
		if (strcmp(e->pat, model) == 0 && strcmp(e->prov, prov) == 0)
			return &e->p;
	}
}

/* Price for (provider entry name, its kind, upstream model): the config's "pricing" first,
 * then pricing_file, then the built-ins. */
static const struct gov_price *gov_price_find(const struct gov *g, const char *pname, const char *pkind,
					      const char *model)
{
	const char *tries[3] = { model, strrchr(model, '/'), strstr(model, "claude-") };
	if (tries[1])
		tries[1]++; /* "openai/gpt-4o" via a router; "anthropic.claude-..." on Bedrock */
	for (int i = 0; i < 3; i++) {
		if (!tries[i] || (i && tries[i] == model))
			continue;
		const struct gov_price *p = g ? gov_price_best(g->price, g->nprice, pname, pkind, tries[i]) : NULL;
		if (!p)
			p = gov_price_file(g, pname, tries[i]);
		if (!p)
			p = gov_price_file(g, pkind, tries[i]);
		if (!p)
			p = gov_price_best(gov_builtin_prices, (int)ARRAY_LEN(gov_builtin_prices), pname, pkind,
					   tries[i]);
		if (p)
			return p;
	}
	return NULL; /* unpriced: governance.unpriced says what that costs */
}

/* The most expensive known rate, component by component, among the prices that could
 * apply to this provider: its own config entries and the built-ins of its dialect
 * (claude-* for Anthropic, the others otherwise). governance.unpriced = "max_price". */
static struct gov_price gov_price_max(const struct gov *g, const char *pname, const char *pkind,
				      bool anthropic)
{
	struct gov_price m = { 0 };
	for (int t = 0; t < 3; t++) { /* config, pricing_file, built-ins */
		const struct gov_price_ent *e = t == 2 ? gov_builtin_prices : !g ? NULL : t ? g->fprice : g->price;
		int n = t == 2 ? (int)ARRAY_LEN(gov_builtin_prices) : !g ? 0 : t ? g->nfprice : g->nprice;
		for (int i = 0; i < n; i++) {
			if (e[i].prov ? strcmp(e[i].prov, pname) != 0 && strcmp(e[i].prov, pkind) != 0
				      : t == 2 && (strncmp(e[i].pat, "claude", 6) == 0) != anthropic)
				continue;
			m.in = MAX(m.in, e[i].p.in);
			m.out = MAX(m.out, e[i].p.out);
			m.cache_read = MAX(m.cache_read, e[i].p.cache_read);
			m.cache_write = MAX(m.cache_write, e[i].p.cache_write);
		}
	}
	return m;
}

/* True the first time this (provider, model) is seen unpriced by the process: warn once.
 * A small lock-free set of hashes; when full, every further one warns (rare, bounded by
 * the requests themselves). */
static bool gov_unpriced_first(const char *pname, const char *model)
{
	static _Atomic uint64_t seen[256];
	uint64_t h = fnv1a_z(fnv1a(fnv1a_z(FNV_BASIS, pname), "/", 1), model) | 1;
	for (size_t i = 0; i < ARRAY_LEN(seen); i++) {
		size_t k = (h + i) & (ARRAY_LEN(seen) - 1);
		uint64_t cur = atomic_load_explicit(&seen[k], memory_order_relaxed);
		if (cur == h)
			return false;
		if (!cur && atomic_compare_exchange_strong(&seen[k], &cur, h))
			return true;
		if (cur == h)
			return false;
	}
	return true;
}

static uint64_t gov_pos(int64_t v) { return v > 0 ? (uint64_t)v : 0; }

/*
 * Cost in µ$ = ceil(Σ tokens × price / 10^6), summed exactly in 128 bits, rounded UP once (so
 * never under the exact cost, at most 1 µ$ over), saturating at INT64_MAX. Negative counts
 * are 0. in_tok excludes cached tokens (OpenAI: prompt_tokens - cached_tokens; Anthropic:
 * input_tokens as reported).
 */
static int64_t gov_cost_micros(const struct gov_price *p, int64_t in_tok, int64_t out_tok,
			       int64_t cache_read_tok, int64_t cache_write_tok)
{
	if (!p)
		return 0;
	unsigned __int128 s = (unsigned __int128)gov_pos(in_tok) * gov_pos(p->in) +
			      (unsigned __int128)gov_pos(out_tok) * gov_pos(p->out) +
			      (unsigned __int128)gov_pos(cache_read_tok) * gov_pos(p->cache_read) +
			      (unsigned __int128)gov_pos(cache_write_tok) * gov_pos(p->cache_write);
	s = (s + 999999) / 1000000;
	return s > INT64_MAX ? INT64_MAX : (int64_t)s;
}

/* FNV-1a of kind and id: an entity's identity in the region and the journal. Never 0. */
static uint64_t gov_ent_key(enum gov_kind kind, const char *id)
{
	unsigned char k = (unsigned char)kind; /* (kinds are < 256: the same bytes as ever) */
	uint64_t h = fnv1a_z(fnv1a(FNV_BASIS, &k, 1), id);
	return h ? h : 1;
}

/*
 * The virtual key `presented` names, or NULL. Constant time in the content: every key is
 * compared over its full length, no early exit on a mismatch or a match.
 */
static const struct gov_vkey *gov_key_find(const struct gov *g, const char *presented, size_t n)
{
	uintptr_t hit = 0;
	unsigned char sha[32];
	bool hashed = false;
	if (n == 0) /* lengths are not secret */
		return NULL;
	for (int i = 0; g && i < g->nkey; i++) {
		const struct gov_vkey *k = &g->key[i];
		unsigned d = k->nvalue != n;
		for (size_t j = 0; j < k->nvalue; j++)
			d |= (unsigned char)(k->value[j] ^ (j < n ? presented[j] : 0));
		if (!k->nvalue) { /* hashed once per request, and only when such keys exist */
			if (!hashed) {
				br_sha256_context sc;
				br_sha256_init(&sc);
				br_sha256_update(&sc, presented, n);
				br_sha256_out(&sc, sha);
				hashed = true;
			}
			d = 0;
			for (int q = 0; q < 32; q++)
				d |= (unsigned char)(k->sha[q] ^ sha[q]);
		}
		uintptr_t mask = (uintptr_t)0 - (uintptr_t)(d == 0);
		hit = ((uintptr_t)k & mask) | (hit & ~mask);
	}
	return (const struct gov_vkey *)hit;
}

static bool gov_globs_match(const char **globs, int n, const char *s)
{
	if (!globs)
		return true;
	for (int i = 0; i < n; i++)
		if (fnmatch(globs[i], s, 0) == 0)
			return true;
	return false;
}

/* allowed_models (the model as the client named it, and bare) and allowed_providers: false → 403. */
static bool gov_key_allows(const struct gov_vkey *k, const char *provider, const char *model)
{
	return gov_globs_match(k->provs, k->nprovs, provider) && gov_globs_match(k->models, k->nmodels, model);
}

/* The key's provider config for provider entry (name, kind), or NULL. */
static const struct gov_pcfg *gov_key_pcfg(const struct gov_vkey *k, const char *pname, const char *pkind)
{
	const struct gov_pcfg *by_kind = NULL;
	for (int i = 0; k && i < k->npc; i++) {
		if (strcmp(k->pc[i].provider, pname) == 0)
			return &k->pc[i];
		if (pkind && strcmp(k->pc[i].provider, pkind) == 0)
			by_kind = &k->pc[i];
	}
	return by_kind;
}

/* ---- the counter region ---- */

#define GOV_AMT_BITS 42
#define GOV_AMT_MAX ((1ULL << GOV_AMT_BITS) - 1)
#define GOV_TAG_MASK ((1ULL << (64 - GOV_AMT_BITS)) - 1)
#define GOV_MAX_MICROS 4000000000000LL /* $4M per window: fits a counter word */

struct gov_slot {
	_Atomic uint64_t key;       /* the entity's key; 0 = free. Set once by CAS. */
	_Atomic int64_t anchor_s;   /* rolling windows count from here: first bind, or replay */
	_Atomic int64_t win_start;  /* newest budget window start seen (reporting) */
	_Atomic uint64_t used;      /* tagged: settled + reserved µ$ (what admission checks) */
	_Atomic uint64_t spend;     /* tagged: settled µ$ */
	_Atomic uint64_t tokens;    /* tagged: tokens charged in the budget window */
	_Atomic uint64_t requests;  /* tagged: requests completed in the budget window */
	_Atomic int32_t in_flight;
	alignas(64) _Atomic uint64_t rl_req; /* tagged: requests admitted in the request window */
	_Atomic uint64_t rl_tok;    /* tagged: tokens charged in the token window */
	/* a reload changed the budget window's definition: the window current then, kept until
	 * it ends, so its spend still counts (gov_carry). One word, start << 30 | length: a
	 * reader never sees half of it. 0 = none */
	_Atomic uint64_t carry;
	/* cluster (clu_): what the other nodes hold, as of the last look, each with the window it
	 * is for; and what this node last told Redis of its own (the local_share fallback) */
	alignas(64) struct {
		_Atomic int64_t win, used, spend, tokens, requests; /* budget window */
		_Atomic int64_t rq_win, rq, tk_win, tk, conc;       /* rate windows, in flight */
		_Atomic int64_t p_win, p_used, p_rq_win, p_rq;      /* pushed: own, last written */
		_Atomic uint32_t dirty;                             /* settled since the last push */
	} cl;
};

_Static_assert(sizeof(struct gov_slot) % 64 == 0, "gov_slot must fill whole cache lines");

struct gov_region {
	size_t nslots;
	alignas(64) struct gov_slot slot[];
};

/* Shared, zeroed, process-lifetime. Workers are threads, so anonymous shared memory suffices. */
static struct gov_region *gov_region_map(size_t nslots)
{
	size_t len = sizeof(struct gov_region) + nslots * sizeof(struct gov_slot);
	struct gov_region *r = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	r->nslots = nslots;
	return r;
}

static struct gov_region *gov_region; /* the process's one region (main maps it) */

static __attribute__((unused)) void gov_region_unmap(struct gov_region *r)
{
	if (r)
		munmap(r, sizeof(*r) + r->nslots * sizeof(struct gov_slot));
}

/* The slot for `key`, claiming a free one (linear probing). NULL when the region is full. */
static struct gov_slot *gov_slot_claim(struct gov_region *r, uint64_t key, int64_t now_s)
{
	for (size_t n = 0, i = key % r->nslots; n < r->nslots; n++, i = (i + 1) % r->nslots) {
		struct gov_slot *s = &r->slot[i];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
		if (k == 0 && atomic_compare_exchange_strong(&s->key, &k, key)) {
			atomic_store(&s->anchor_s, now_s);
			return s;
		}
		if (k == key)
			return s;
	}
	return NULL;
}

/* ---- tagged counter words ---- */

static uint64_t gov_tag(int64_t start) { return (uint64_t)start & GOV_TAG_MASK; }

/* The amount word w holds for window p (0 if w is from an older window); *tag: what to write back. */
static uint64_t gov_ctr_view(uint64_t w, const struct gov_winpos *p, uint64_t *tag)
{
	uint64_t t = w >> GOV_AMT_BITS;
	if (t == gov_tag(p->start) || t == gov_tag(p->end)) { /* ours, or the next (our clock lags) */
		*tag = t;
		return w & GOV_AMT_MAX;
	}
	*tag = gov_tag(p->start);
	return 0;
}

static uint64_t gov_ctr_word(uint64_t tag, int64_t amt)
{
	uint64_t a = amt < 0 ? 0 : (uint64_t)amt > GOV_AMT_MAX ? GOV_AMT_MAX : (uint64_t)amt;
	return tag << GOV_AMT_BITS | a;
}

static uint64_t gov_ctr_get(_Atomic uint64_t *c, const struct gov_winpos *p)
{
	uint64_t tag;
	return gov_ctr_view(atomic_load_explicit(c, memory_order_relaxed), p, &tag);
}

/* amount += delta (clamped to [0, max]); rolls an old window over. With `undo_start` set and the
 * word still in that window, `undo` is subtracted too (settling a reservation made there). */
static void gov_ctr_add2(_Atomic uint64_t *c, const struct gov_winpos *p, int64_t delta,
			 int64_t undo_start, int64_t undo)
{
	uint64_t w = atomic_load_explicit(c, memory_order_relaxed), tag, nw;
	delta = MAX(-(int64_t)GOV_AMT_MAX, MIN(delta, (int64_t)GOV_AMT_MAX)); /* no signed overflow */
	do {
		int64_t a = (int64_t)gov_ctr_view(w, p, &tag) + delta;
		if (undo && (w >> GOV_AMT_BITS) == tag && tag == gov_tag(undo_start))
			a -= undo;
		nw = gov_ctr_word(tag, a);
	} while (nw != w && !atomic_compare_exchange_weak_explicit(c, &w, nw, memory_order_acq_rel,
								   memory_order_relaxed));
}

static void gov_ctr_add(_Atomic uint64_t *c, const struct gov_winpos *p, int64_t delta)
{
	gov_ctr_add2(c, p, delta, 0, 0);
}

/* Add `add` if the amount in window p is below `limit`; false (nothing changed) otherwise.
 * *in: the window the add landed in (p's, or the next one when another worker already
 * rolled the word there), which an undo must name. */
static bool gov_ctr_admit(_Atomic uint64_t *c, const struct gov_winpos *p, int64_t limit, int64_t add,
			  int64_t *in)
{
	uint64_t w = atomic_load_explicit(c, memory_order_relaxed), tag, nw;
	do {
		uint64_t a = gov_ctr_view(w, p, &tag);
		if ((int64_t)a >= limit)
			return false;
		nw = gov_ctr_word(tag, (int64_t)a + add);
	} while (!atomic_compare_exchange_weak_explicit(c, &w, nw, memory_order_acq_rel, memory_order_relaxed));
	*in = tag == gov_tag(p->start) ? p->start : p->end;
	return true;
}

/* Roll the budget-window counters to window p (each word's reset happens exactly once). */
static void gov_roll(struct gov_slot *s, const struct gov_winpos *p)
{
	_Atomic uint64_t *w[] = { &s->used, &s->spend, &s->tokens, &s->requests };
	for (size_t i = 0; i < ARRAY_LEN(w); i++)
		gov_ctr_add(w[i], p, 0);
	int64_t old = atomic_load_explicit(&s->win_start, memory_order_relaxed);
	while (old < p->start && !atomic_compare_exchange_weak(&s->win_start, &old, p->start))
		;
}

/* Reserve est µ$ while the window's used (settled + reserved) is below limit. See the banner's bound. */
static bool gov_reserve(struct gov_slot *s, const struct gov_winpos *p, int64_t limit, int64_t est,
			int64_t *in)
{
	return gov_ctr_admit(&s->used, p, limit, est, in);
}

/* Replace a reservation of est made in window `reserved_start` by the actual charge. */
static void gov_settle(struct gov_slot *s, const struct gov_winpos *p, int64_t reserved_start, int64_t est,
		       int64_t actual, int64_t tokens, int64_t requests)
{
	gov_ctr_add2(&s->used, p, actual, reserved_start, est);
	gov_ctr_add(&s->spend, p, actual);
	gov_ctr_add(&s->tokens, p, tokens);
	gov_ctr_add(&s->requests, p, requests);
	gov_roll(s, p);
}

/* max_concurrent: one more in flight if below max (0 = unlimited). */
static bool gov_conc_enter(struct gov_slot *s, int32_t max)
{
	int32_t n = atomic_load_explicit(&s->in_flight, memory_order_relaxed);
	do {
		if (max > 0 && n >= max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&s->in_flight, &n, n + 1, memory_order_acq_rel,
							memory_order_relaxed));
	return true;
}

static void gov_conc_leave(struct gov_slot *s)
{
	atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_acq_rel);
}

/* ---- admission and settlement across tiers ---- */

#define GOV_TIERS 5

/* One request's governance state, from admission to completion. */
struct gov_ticket {
	const struct gov_ent *t[GOV_TIERS]; /* config: customer, team, key, provider config, provider */
	int n;
	int admitted;                       /* tiers admitted so far (undone on refusal) */
	int64_t est;                        /* µ$ reserved at every tier */
	int64_t est_tok;                    /* tokens reserved at every tier with a token limit (set
					       by the caller before gov_admit) */
	int64_t res_start[GOV_TIERS];       /* budget window each reservation was made in */
	int64_t req_start[GOV_TIERS];       /* request-rate window each request was counted in */
	int64_t tok_start[GOV_TIERS];       /* token-rate window of each token reservation */
	int64_t tok_res[GOV_TIERS];         /* tokens reserved at each tier (0: no token limit) */
};

/* Why a request was refused. */
struct gov_deny {
	int status;                  /* 402 (budget) or 429 (rate, tokens, concurrency) */
	const struct gov_ent *who;   /* config: the tier that refused */
	const char *what;            /* "budget", "request rate", "token rate", "concurrency" */
	int64_t limit;               /* µ$, requests, tokens or in-flight */
	int64_t retry_after_s;       /* 429: seconds until the window frees (>= 1) */
	int64_t reset_at_s;          /* unix s the window resets */
};

/* Does any provider entry carry its own budget? */
static bool gov_provider_budgets(const struct gov *g)
{
	for (int i = 0; g && i < g->nprov; i++)
		if (g->prov[i].budget.max >= 0)
			return true;
	return false;
}

/* The tiers that apply: key's customer, team, key, its provider config, the provider (index in cfg). */
static void gov_tiers(struct gov_ticket *t, const struct gov *g, const struct gov_vkey *k, int prov,
		      const char *pname, const char *pkind)
{
	memset(t, 0, sizeof(*t));
	if (k && k->customer >= 0)
		t->t[t->n++] = &g->cust[k->customer];
	if (k && k->team >= 0)
		t->t[t->n++] = &g->team[k->team].e;
	if (k)
		t->t[t->n++] = &k->e;
	const struct gov_pcfg *pc = gov_key_pcfg(k, pname, pkind);
	if (pc)
		t->t[t->n++] = &pc->e;
	if (g && prov >= 0 && prov < g->nprov)
		t->t[t->n++] = &g->prov[prov];
}

static void gov_pos_budget(const struct gov_ent *e, int64_t now, struct gov_winpos *p)
{
	uint64_t c = atomic_load(&e->slot->carry);
	int64_t cs = (int64_t)(c >> 30), ce = cs + (int64_t)(c & ((1u << 30) - 1));
	if (now >= cs && now < ce) { /* a window a reload redefined: it runs out first */
		*p = (struct gov_winpos){ cs, ce };
		return;
	}
	gov_window_at(&e->budget.win, e->budget.cal, atomic_load(&e->slot->anchor_s), now, p);
}

/* Rate windows count from the epoch (a 1h window is a clock hour), not from the slot's
 * anchor: the same windows before and after a restart, so replayed counts land in them. */
static void gov_pos_rate(const struct gov_ent *e, const struct gov_window *w, int64_t now, struct gov_winpos *p)
{
	(void)e;
	gov_window_at(w, false, 0, now, p);
}

static bool gov_deny_set(struct gov_deny *d, int status, const struct gov_ent *e, const char *what,
			 int64_t limit, const struct gov_winpos *p, int64_t now)
{
	*d = (struct gov_deny){ status, e, what, limit, p ? MAX(1, p->end - now) : 1, p ? p->end : now + 1 };
	return false;
}

/* Admit one tier: concurrency, request rate, token rate, budget (in that order, undone on refusal). */
static bool gov_tier_admit(struct gov_ticket *t, int i, int64_t now, struct gov_deny *d)
{
	const struct gov_ent *e = t->t[i];
	struct gov_slot *s = e->slot;
	struct gov_winpos rq, tk, b;
	if (!gov_conc_enter(s, e->rate.max_conc))
		return gov_deny_set(d, 429, e, "concurrency", e->rate.max_conc, NULL, now);
	gov_pos_rate(e, &e->rate.req_win, now, &rq);
	t->req_start[i] = rq.start;
	if (e->rate.req_max >= 0 && !gov_ctr_admit(&s->rl_req, &rq, e->rate.req_max, 1, &t->req_start[i])) {
		gov_conc_leave(s);
		return gov_deny_set(d, 429, e, "request rate", e->rate.req_max, &rq, now);
	}
	gov_pos_rate(e, &e->rate.tok_win, now, &tk);
	gov_pos_budget(e, now, &b);
	t->res_start[i] = b.start;
	t->tok_start[i] = tk.start;
	t->tok_res[i] = 0;
	/* a token limit reserves the estimate like a budget does: admitted while below the limit;
	 * never more than the limit itself, so one request cannot saturate the shared word */
	int64_t want = MIN(t->est_tok, e->rate.tok_max);
	bool tok_ok = e->rate.tok_max < 0 || gov_ctr_admit(&s->rl_tok, &tk, e->rate.tok_max, want, &t->tok_start[i]);
	if (tok_ok && e->rate.tok_max >= 0)
		t->tok_res[i] = want;
	if (tok_ok && e->budget.max < 0) {
		gov_ctr_add(&s->used, &b, t->est); /* unbudgeted tiers still show what is reserved */
		return true;
	}
	if (tok_ok && gov_reserve(s, &b, e->budget.max, t->est, &t->res_start[i]))
		return true;
	if (t->tok_res[i])
		gov_ctr_add2(&s->rl_tok, &tk, 0, t->tok_start[i], t->tok_res[i]);
	if (e->rate.req_max >= 0)
		gov_ctr_add2(&s->rl_req, &rq, 0, t->req_start[i], 1);
	gov_conc_leave(s);
	if (!tok_ok)
		return gov_deny_set(d, 429, e, "token rate", e->rate.tok_max, &tk, now);
	/* 402 only once the settled spend reached the limit; below it, reservations of requests
	 * in flight fill the budget, and they settle (usually far lower) within seconds */
	uint64_t tag, spent = gov_ctr_view(atomic_load_explicit(&s->spend, memory_order_relaxed), &b, &tag);
	if ((int64_t)spent < e->budget.max)
		return gov_deny_set(d, 429, e, "in-flight budget", e->budget.max, NULL, now);
	return gov_deny_set(d, 402, e, "budget", e->budget.max, &b, now);
}

/* Release what tier i holds: in-flight, the reservation, and (if refused) its request count. */
static void gov_tier_release(struct gov_ticket *t, int i, int64_t now, bool uncount)
{
	const struct gov_ent *e = t->t[i];
	struct gov_winpos b, rq;
	gov_pos_budget(e, now, &b);
	gov_ctr_add2(&e->slot->used, &b, 0, t->res_start[i], t->est);
	if (t->tok_res[i]) {
		struct gov_winpos tk;
		gov_pos_rate(e, &e->rate.tok_win, now, &tk);
		gov_ctr_add2(&e->slot->rl_tok, &tk, 0, t->tok_start[i], t->tok_res[i]);
	}
	if (uncount && e->rate.req_max >= 0) {
		gov_pos_rate(e, &e->rate.req_win, now, &rq);
		gov_ctr_add2(&e->slot->rl_req, &rq, 0, t->req_start[i], 1);
	}
	gov_conc_leave(e->slot);
}

/*
 * Before the request goes upstream: every tier admits or none does. est = the reservation in µ$
 * (gov_cost_micros of the input estimate + max_tokens). 0, or -EDQUOT (d->status 402) /
 * -EAGAIN (429) with d filled. Every tier's entity must be bound (gov_bind).
 */
static int gov_admit(struct gov_ticket *t, int64_t now_s, int64_t est, struct gov_deny *d)
{
	t->est = MAX(0, MIN(est, GOV_MAX_MICROS));
	t->est_tok = (int64_t)MIN(gov_pos(t->est_tok), GOV_AMT_MAX);
	for (t->admitted = 0; t->admitted < t->n; t->admitted++) {
		if (gov_tier_admit(t, t->admitted, now_s, d))
			continue;
		while (t->admitted > 0)
			gov_tier_release(t, --t->admitted, now_s, true);
		return d->status == 402 ? -EDQUOT : -EAGAIN;
	}
	return 0;
}

/* The request failed before costing anything (e.g. every candidate failed): release it all. */
static void gov_abort(struct gov_ticket *t, int64_t now_s)
{
	while (t->admitted > 0)
		gov_tier_release(t, --t->admitted, now_s, false);
}

/* A retry or a fallback replaces this attempt: release it, request count included. */
static void gov_retract(struct gov_ticket *t, int64_t now_s)
{
	while (t->admitted > 0)
		gov_tier_release(t, --t->admitted, now_s, true);
}

/*
 * The request completed (or the client left and the upstream's usage is known): charge every
 * tier and fill out[] (GOV_TIERS records) with the journal records to append. Returns their count.
 * actual: µ$ from gov_cost_micros; tok_in (cached input included) and tok_out feed the token
 * limits and the reports. t_ns: unix ns (CLOCK_REALTIME).
 */
static int gov_complete(struct gov_ticket *t, int64_t now_s, int64_t actual, int64_t tok_in,
			int64_t tok_out, uint64_t req_id, int64_t t_ns, struct jrnl_rec *out)
{
	int n = 0;
	actual = MAX(0, MIN(actual, GOV_MAX_MICROS));
	tok_in = (int64_t)MIN(gov_pos(tok_in), GOV_AMT_MAX);
	tok_out = (int64_t)MIN(gov_pos(tok_out), GOV_AMT_MAX);
	while (t->admitted > 0) {
		const struct gov_ent *e = t->t[--t->admitted];
		struct gov_winpos b, tk;
		gov_pos_budget(e, now_s, &b);
		gov_pos_rate(e, &e->rate.tok_win, now_s, &tk);
		gov_settle(e->slot, &b, t->res_start[t->admitted], t->est, actual, tok_in + tok_out, 1);
		gov_ctr_add2(&e->slot->rl_tok, &tk, tok_in + tok_out, t->tok_start[t->admitted],
			     t->tok_res[t->admitted]); /* the reservation becomes the real count */
		gov_conc_leave(e->slot);
		atomic_store_explicit(&e->slot->cl.dirty, 1, memory_order_relaxed); /* (a cluster pushes it) */
		out[n++] = (struct jrnl_rec){ .kind = (uint8_t)e->kind, .type = JRNL_CHARGE, .ent = e->key,
					      .win_start = b.start, .spend = actual, .tok_in = tok_in,
					      .tok_out = tok_out, .req = req_id, .t_ns = t_ns };
	}
	return n;
}

/* ---- binding configs to the region, replay, usage ---- */

static struct gov_ent *gov_ent_find(const struct gov *g, uint64_t key)
{
	if (!g || !g->hcap)
		return NULL;
	for (uint32_t i = (uint32_t)key & (g->hcap - 1);; i = (i + 1) & (g->hcap - 1)) {
		uint32_t v = g->hidx[i];
		if (v == 0)
			return NULL;
		if (g->all[v - 1]->key == key)
			return g->all[v - 1];
	}
}

/* Main thread, before a config is published: give every entity its slot. 0 or -ENOSPC. */
static int gov_bind(struct gov *g, struct gov_region *r, int64_t now_s)
{
	for (int i = 0; g && i < g->nall; i++)
		if (!(g->all[i]->slot = gov_slot_claim(r, g->all[i]->key, now_s)))
			return -ENOSPC;
	return 0;
}

/*
 * A reload (n, bound to the same region as the running o) that changes a budget window's
 * duration or alignment must not grant a fresh budget mid-period: the window current under
 * o runs on until its end, with its spend (gov_pos_budget reads the carry), and the new
 * definition applies from there.
 */
static void gov_carry(const struct gov *o, const struct gov *n, int64_t now_s)
{
	for (int i = 0; o && n && i < n->nall; i++) {
		const struct gov_ent *e = n->all[i], *was = gov_ent_find(o, e->key);
		if (!was || was->slot != e->slot || e->budget.win.unit == GU_NONE ||
		    was->budget.win.unit == GU_NONE)
			continue;
		struct gov_winpos before, after;
		gov_pos_budget(was, now_s, &before); /* (a carry still running is kept) */
		gov_window_at(&e->budget.win, e->budget.cal, atomic_load(&e->slot->anchor_s), now_s, &after);
		if ((before.start == after.start && before.end == after.end) || before.start < 0 ||
		    before.end - before.start >= (1 << 30))
			continue;
		atomic_store(&e->slot->carry, (uint64_t)before.start << 30 | (uint64_t)(before.end - before.start));
	}
}

/*
 * Start-up replay callback (ctx = the bound struct gov): add a record to its entity's counters
 * in the record's window. Records come in time order, so the last window replayed wins and the
 * rolling anchor follows it; records of entities no longer configured are skipped.
 */
static void gov_replay_apply(void *ctx, const struct jrnl_rec *r)
{
	const struct gov_ent *e = gov_ent_find(ctx, r->ent);
	if (!e || !e->slot || e->kind != r->kind)
		return;
	struct gov_slot *s = e->slot;
	struct gov_winpos p;
	if (!e->budget.cal && e->budget.win.unit != GU_NONE)
		atomic_store(&s->anchor_s, r->win_start);
	gov_pos_budget(e, r->win_start, &p);
	int64_t nreq = r->type == JRNL_TOTAL ? (int64_t)r->req : 1;
	gov_settle(s, &p, 0, 0, r->spend, r->tok_in + r->tok_out, nreq); /* each <= JRNL_AMT_MAX */
}

/* Second replay pass, once the anchors are final: each CHARGE's request and tokens into the
 * rate windows its time falls in (those already over read as 0), so request and token
 * limits survive a restart. A compacted TOTAL holds no per-request times: not counted. */
static void gov_replay_rates(void *ctx, const struct jrnl_rec *r)
{
	const struct gov_ent *e = gov_ent_find(ctx, r->ent);
	if (!e || !e->slot || e->kind != r->kind || r->type != JRNL_CHARGE)
		return;
	int64_t at = r->t_ns / 1000000000, now = time(NULL);
	struct gov_winpos q, cur;
	/* only a record of the window current at start-up counts (records are not strictly in
	 * time order: an older one must not roll the word back to its window) */
	if (e->rate.req_max >= 0) {
		gov_pos_rate(e, &e->rate.req_win, at, &q);
		gov_pos_rate(e, &e->rate.req_win, now, &cur);
		if (q.start == cur.start)
			gov_ctr_add(&e->slot->rl_req, &q, 1);
	}
	if (e->rate.tok_max >= 0) {
		gov_pos_rate(e, &e->rate.tok_win, at, &q);
		gov_pos_rate(e, &e->rate.tok_win, now, &cur);
		if (q.start == cur.start)
			gov_ctr_add(&e->slot->rl_tok, &q, r->tok_in + r->tok_out);
	}
}

static void gov_usage_ent(struct sb *b, const struct gov_ent *e, int64_t now_s)
{
	struct gov_slot *s = e->slot;
	struct gov_winpos p;
	gov_pos_budget(e, now_s, &p);
	bool cl = atomic_load(&s->cl.win) == p.start; /* the other nodes' part (a cluster), if current */
	int64_t spend = (int64_t)gov_ctr_get(&s->spend, &p) + (cl ? atomic_load(&s->cl.spend) : 0);
	int64_t used = (int64_t)gov_ctr_get(&s->used, &p) + (cl ? atomic_load(&s->cl.used) : 0);
	sb_puts(b, "{\"id\":");
	json_put_z(b, e->id);
	sb_printf(b, ",\"spend\":%lld.%06lld,\"spend_micros\":%lld,\"reserved_micros\":%lld",
		  (long long)(spend / 1000000), (long long)(spend % 1000000), (long long)spend,
		  (long long)MAX(0, used - spend));
	if (e->budget.max >= 0)
		sb_printf(b, ",\"limit\":%lld.%06lld,\"limit_micros\":%lld", (long long)(e->budget.max / 1000000),
			  (long long)(e->budget.max % 1000000), (long long)e->budget.max);
	else
		sb_puts(b, ",\"limit\":null");
	sb_printf(b, ",\"tokens\":%llu,\"requests\":%llu,\"in_flight\":%d,\"window_start\":%lld,\"reset_at\":",
		  (unsigned long long)gov_ctr_get(&s->tokens, &p) + (cl ? (unsigned long long)atomic_load(&s->cl.tokens) : 0),
		  (unsigned long long)gov_ctr_get(&s->requests, &p) + (cl ? (unsigned long long)atomic_load(&s->cl.requests) : 0),
		  (int)atomic_load(&s->in_flight) + (int)atomic_load(&s->cl.conc), (long long)p.start);
	if (p.end == INT64_MAX)
		sb_puts(b, "null}");
	else
		sb_printf(b, "%lld}", (long long)p.end);
}

/* GET /api/usage body: {"customers":[...],"teams":[...],"virtual_keys":[...],"provider_configs":[...],"providers":[...]} */
static void gov_usage_json(struct sb *b, const struct gov *g, int64_t now_s)
{
	for (int kind = GK_CUSTOMER, n = 0; kind <= GK_PROVIDER; kind++, n = 0) {
		static const char *const lists[] = { "", "customers", "teams", "virtual_keys",
						     "provider_configs", "providers" };
		sb_printf(b, "%s\"%s\":[", kind == GK_CUSTOMER ? "{" : ",", lists[kind]);
		for (int i = 0; g && i < g->nall; i++)
			if (g->all[i]->kind == (enum gov_kind)kind && g->all[i]->slot) {
				if (n++)
					sb_puts(b, ",");
				gov_usage_ent(b, g->all[i], now_s);
			}
		sb_puts(b, "]");
	}
	sb_puts(b, "}");
}

/* ---- gov_cfg: the "governance" and "pricing" blocks (and providers' "budget") ---- */

/* Dollars (a JSON number, or a string such as "env.X") → µ$; -1 if absent or invalid (reported). */
static int64_t gov_cfg_dollars(struct cfg_ld *L, int tok, const char *what)
{
	if (tok < 0)
		return -1;
	const char *s = NULL;
	struct str r = json_raw(&L->j, tok);
	if (L->j.tok[tok].type == JSMN_STRING)
		s = cfg_str(L, tok, what);
	else if (L->j.tok[tok].type == JSMN_PRIMITIVE)
		s = arena_strndup(&L->c->arena, r.p, r.n);
	int64_t v = -1;
	int rc = s ? gov_parse_micros(s, strlen(s), GOV_MAX_MICROS, &v) : -EINVAL;
	if (rc == -EDOM)
		cfg_problem(L, "%s must not be negative", what);
	else if (rc == -ERANGE)
		cfg_problem(L, "%s is over the maximum of $%lld", what, GOV_MAX_MICROS / 1000000);
	else if (rc == -ENOTSUP)
		cfg_problem(L, "%s is finer than a micro-dollar", what);
	else if (rc)
		cfg_problem(L, "%s must be a number of US dollars", what);
	return rc ? -1 : v;
}

static bool gov_cfg_duration(struct cfg_ld *L, int tok, struct gov_window *w, const char *what)
{
	const char *s = cfg_str(L, tok, what);
	if (tok < 0)
		cfg_problem(L, "%s is required", what);
	else if (s && gov_parse_duration(s, w) != 0)
		cfg_problem(L, "%s: \"%s\" is not a duration like 30s, 1m, 5m, 1h, 1d, 1w, 1M, 1Y", what, s);
	else
		return s != NULL;
	return false;
}

static void gov_cfg_budget(struct cfg_ld *L, int tok, struct gov_budget *b, const char *path)
{
	static const char *const k[] = { "max_limit", "reset_duration", "calendar_aligned" };
	int v[3];
	char what[192];
	*b = (struct gov_budget){ .max = -1 };
	snprintf(what, sizeof(what), "%s.budget", path);
	if (tok < 0 || !cfg_obj(L, tok, what, k, 3, NULL, v))
		return;
	snprintf(what, sizeof(what), "%s.budget.max_limit", path);
	if (v[0] < 0)
		cfg_problem(L, "%s is required", what);
	int64_t max = gov_cfg_dollars(L, v[0], what);
	snprintf(what, sizeof(what), "%s.budget.reset_duration", path);
	bool ok = gov_cfg_duration(L, v[1], &b->win, what);
	snprintf(what, sizeof(what), "%s.budget.calendar_aligned", path);
	b->cal = cfg_bool(L, v[2], false, what);
	if (max >= 0 && ok)
		b->max = max;
	else
		b->win = (struct gov_window){ GU_NONE, 1 };
}

static void gov_cfg_rate(struct cfg_ld *L, int tok, struct gov_rate *r, const char *path)
{
	static const char *const k[] = { "request_max_limit", "request_reset_duration", "token_max_limit",
					 "token_reset_duration", "max_concurrent" };
	int v[5];
	char what[192];
	*r = (struct gov_rate){ -1, -1, { GU_NONE, 1 }, { GU_NONE, 1 }, 0 };
	snprintf(what, sizeof(what), "%s.rate_limit", path);
	if (tok < 0 || !cfg_obj(L, tok, what, k, 5, NULL, v))
		return;
	for (int i = 0; i < 2; i++) {
		int64_t *max = i ? &r->tok_max : &r->req_max;
		struct gov_window *w = i ? &r->tok_win : &r->req_win;
		if (v[2 * i] < 0 && v[2 * i + 1] < 0)
			continue;
		snprintf(what, sizeof(what), "%s.rate_limit.%s", path, k[2 * i]);
		if (v[2 * i] < 0)
			cfg_problem(L, "%s is required", what);
		int64_t m = cfg_num(L, v[2 * i], -1, 0, (long long)GOV_AMT_MAX, what);
		snprintf(what, sizeof(what), "%s.rate_limit.%s", path, k[2 * i + 1]);
		if (gov_cfg_duration(L, v[2 * i + 1], w, what) && m >= 0 && m <= (int64_t)GOV_AMT_MAX)
			*max = m;
	}
	snprintf(what, sizeof(what), "%s.rate_limit.max_concurrent", path);
	r->max_conc = (int32_t)cfg_num(L, v[4], 0, 1, 1000000, what);
}

static void gov_cfg_ent(struct cfg_ld *L, struct gov_ent *e, enum gov_kind kind, const char *id, int budget,
			int rate, const char *path)
{
	*e = (struct gov_ent){ .kind = kind, .id = id, .key = gov_ent_key(kind, id) };
	gov_cfg_budget(L, budget, &e->budget, path);
	gov_cfg_rate(L, rate, &e->rate, path);
}

/* Size of array tok (0 if absent); -1 and a problem if it is not an array. */
static int gov_cfg_array(struct cfg_ld *L, int tok, const char *what)
{
	if (tok < 0)
		return 0;
	if (L->j.tok[tok].type != JSMN_ARRAY) {
		cfg_problem(L, "%s must be an array", what);
		return -1;
	}
	return L->j.tok[tok].size;
}

/* Index of the entity named `id` in an array whose elements (of `stride` bytes) begin with a gov_ent. */
static int gov_cfg_find(const void *arr, size_t stride, int n, const char *id)
{
	for (int i = 0; id && i < n; i++)
		if (strcmp(((const struct gov_ent *)((const char *)arr + (size_t)i * stride))->id, id) == 0)
			return i;
	return -1;
}

/* An entry's "id": required, non-empty, not already in arr[0..n). NULL if unusable. */
static const char *gov_cfg_id(struct cfg_ld *L, int tok, const char *list, int idx, const void *arr,
			      size_t stride, int n)
{
	char what[96];
	snprintf(what, sizeof(what), "governance.%s[%d].id", list, idx);
	const char *id = cfg_str(L, tok, what);
	if (tok < 0 || (id && !*id)) {
		cfg_problem(L, "%s is required", what);
		return NULL;
	}
	if (gov_cfg_find(arr, stride, n, id) >= 0) {
		cfg_problem(L, "governance.%s: id \"%s\" is used twice", list, id);
		return NULL;
	}
	return id;
}

static void gov_cfg_customers(struct cfg_ld *L, struct gov *g, int tok)
{
	static const char *const k[] = { "id", "budget", "rate_limit" };
	int n = gov_cfg_array(L, tok, "governance.customers");
	g->cust = arena_new(&L->c->arena, struct gov_ent, MAX(n, 1));
	for (int j = 0, i = tok + 1; g->cust && j < n; j++, i = json_skip(&L->j, i)) {
		int v[3];
		char path[64];
		snprintf(path, sizeof(path), "governance.customers[%d]", j);
		if (!cfg_obj(L, i, path, k, 3, NULL, v))
			continue;
		const char *id = gov_cfg_id(L, v[0], "customers", j, g->cust, sizeof(*g->cust), g->ncust);
		if (id)
			gov_cfg_ent(L, &g->cust[g->ncust++], GK_CUSTOMER, id, v[1], v[2], path);
	}
}

static void gov_cfg_teams(struct cfg_ld *L, struct gov *g, int tok)
{
	static const char *const k[] = { "id", "customer_id", "budget", "rate_limit" };
	int n = gov_cfg_array(L, tok, "governance.teams");
	g->team = arena_new(&L->c->arena, struct gov_team, MAX(n, 1));
	for (int j = 0, i = tok + 1; g->team && j < n; j++, i = json_skip(&L->j, i)) {
		int v[4];
		char path[64];
		snprintf(path, sizeof(path), "governance.teams[%d]", j);
		if (!cfg_obj(L, i, path, k, 4, NULL, v))
			continue;
		const char *id = gov_cfg_id(L, v[0], "teams", j, g->team, sizeof(*g->team), g->nteam);
		if (!id)
			continue;
		struct gov_team *t = &g->team[g->nteam++];
		const char *cust = cfg_str(L, v[1], "governance.teams[].customer_id");
		t->customer = gov_cfg_find(g->cust, sizeof(*g->cust), g->ncust, cust);
		if (cust && t->customer < 0)
			cfg_problem(L, "team %s: customer_id \"%s\" is not a configured customer", id, cust);
		gov_cfg_ent(L, &t->e, GK_TEAM, id, v[2], v[3], path);
	}
}

static bool gov_cfg_provider_known(const struct cfg *c, const char *name)
{
	for (int i = 0; i < c->nprov; i++)
		if (strcmp(c->prov[i].name, name) == 0 || strcmp(c->prov[i].kind->name, name) == 0)
			return true;
	return false;
}

static void gov_cfg_pcfgs(struct cfg_ld *L, struct gov_vkey *k, int tok, const char *kpath)
{
	static const char *const f[] = { "provider", "weight", "budget", "rate_limit" };
	int n = gov_cfg_array(L, tok, "virtual_keys[].provider_configs");
	k->pc = arena_new(&L->c->arena, struct gov_pcfg, MAX(n, 1));
	for (int j = 0, i = tok + 1; k->pc && j < n; j++, i = json_skip(&L->j, i)) {
		int v[4];
		char path[128];
		snprintf(path, sizeof(path), "%s.provider_configs[%d]", kpath, j);
		if (!cfg_obj(L, i, path, f, 4, NULL, v))
			continue;
		const char *p = cfg_str(L, v[0], "provider_configs[].provider");
		if (!p || !*p) {
			cfg_problem(L, "virtual key %s: provider_configs[%d].provider is required", k->e.id, j);
			continue;
		}
		if (!gov_cfg_provider_known(L->c, p))
			cfg_problem(L, "virtual key %s: provider_configs: \"%s\" is not a configured provider",
				    k->e.id, p);
		for (int q = 0; q < k->npc; q++)
			if (strcmp(k->pc[q].provider, p) == 0)
				cfg_problem(L, "virtual key %s: provider_configs lists \"%s\" twice", k->e.id, p);
		size_t idlen = strlen(k->e.id) + strlen(p) + 2;
		char *id = arena_alloc(&L->c->arena, idlen, 1);
		if (!id)
			return;
		snprintf(id, idlen, "%s/%s", k->e.id, p);
		struct gov_pcfg *pc = &k->pc[k->npc++];
		pc->provider = p;
		pc->weight = v[1] >= 0 ? (int)cfg_weight(L, v[1], "provider_configs[].weight") : -1;
		gov_cfg_ent(L, &pc->e, GK_PCFG, id, v[2], v[3], path);
	}
}

enum { VK_ID, VK_VALUE, VK_TEAM, VK_CUSTOMER, VK_ACTIVE, VK_BUDGET, VK_RATE, VK_MODELS, VK_PROVS,
       VK_PCFG, VK_SHA, VK_N };

static const char *const vk_names[VK_N] = { "id", "value", "team_id", "customer_id", "active", "budget",
					    "rate_limit", "allowed_models", "allowed_providers",
					    "provider_configs", "value_sha256" };

/* The key's secret: "value" as written, or "value_sha256" (64 hex digits). */
static void gov_cfg_key_secret(struct cfg_ld *L, struct gov *g, struct gov_vkey *k, int v, int vsha)
{
	k->value = cfg_str(L, v, "virtual_keys[].value");
	k->nvalue = k->value ? strlen(k->value) : 0;
	const char *sha = cfg_str(L, vsha, "virtual_keys[].value_sha256");
	if (sha && k->value)
		cfg_problem(L, "virtual key %s: give value or value_sha256, not both", k->e.id);
	else if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64))
		cfg_problem(L, "virtual key %s: value_sha256 must be 64 lowercase hex digits", k->e.id);
	else if (sha)
		for (int i = 0; i < 32; i++)
			k->sha[i] = (unsigned char)(json_hex4((char[]){ '0', '0', sha[2 * i], sha[2 * i + 1] }));
	else if (!k->nvalue)
		cfg_problem(L, "virtual key %s: value is required", k->e.id);
	g->nhashed += sha != NULL;
	for (int q = 0; k->nvalue && q < g->nkey - 1; q++)
		if (g->key[q].nvalue == k->nvalue && memcmp(g->key[q].value, k->value, k->nvalue) == 0)
			cfg_problem(L, "virtual keys %s and %s have the same value", g->key[q].e.id, k->e.id);
	for (int q = 0; sha && q < g->nkey - 1; q++)
		if (!g->key[q].nvalue && memcmp(g->key[q].sha, k->sha, 32) == 0)
			cfg_problem(L, "virtual keys %s and %s have the same value_sha256", g->key[q].e.id, k->e.id);
}

static void gov_cfg_key(struct cfg_ld *L, struct gov *g, int tok, int j)
{
	int v[VK_N];
	char path[64];
	snprintf(path, sizeof(path), "governance.virtual_keys[%d]", j);
	if (!cfg_obj(L, tok, path, vk_names, VK_N, NULL, v))
		return;
	const char *id = gov_cfg_id(L, v[VK_ID], "virtual_keys", j, g->key, sizeof(*g->key), g->nkey);
	if (!id)
		return;
	struct gov_vkey *k = &g->key[g->nkey++];
	k->e.id = id;
	gov_cfg_key_secret(L, g, k, v[VK_VALUE], v[VK_SHA]);
	const char *team = cfg_str(L, v[VK_TEAM], "virtual_keys[].team_id");
	const char *cust = cfg_str(L, v[VK_CUSTOMER], "virtual_keys[].customer_id");
	k->team = gov_cfg_find(g->team, sizeof(*g->team), g->nteam, team);
	k->customer = gov_cfg_find(g->cust, sizeof(*g->cust), g->ncust, cust);
	if (team && k->team < 0)
		cfg_problem(L, "virtual key %s: team_id \"%s\" is not a configured team", id, team);
	if (cust && k->customer < 0)
		cfg_problem(L, "virtual key %s: customer_id \"%s\" is not a configured customer", id, cust);
	if (team && cust)
		cfg_problem(L, "virtual key %s: give team_id or customer_id, not both", id);
	if (k->team >= 0)
		k->customer = g->team[k->team].customer;
	k->active = cfg_bool(L, v[VK_ACTIVE], true, "virtual_keys[].active");
	k->models = cfg_strs(L, v[VK_MODELS], &k->nmodels, "virtual_keys[].allowed_models");
	k->provs = cfg_strs(L, v[VK_PROVS], &k->nprovs, "virtual_keys[].allowed_providers");
	gov_cfg_ent(L, &k->e, GK_KEY, id, v[VK_BUDGET], v[VK_RATE], path);
	gov_cfg_pcfgs(L, k, v[VK_PCFG], path);
}

/* Providers' own "budget" (array or map form), matched to cfg.prov by name. */
static void gov_cfg_providers(struct cfg_ld *L, struct gov *g, int tok)
{
	static const char *const k[] = { "name", "provider", "budget" };
	struct cfg *c = L->c;
	g->prov = arena_new(&c->arena, struct gov_ent, MAX(c->nprov, 1));
	for (int i = 0; g->prov && i < c->nprov; i++, g->nprov++)
		gov_cfg_ent(L, &g->prov[i], GK_PROVIDER, c->prov[i].name, -1, -1, "");
	jsmntok_t *t = tok >= 0 ? &L->j.tok[tok] : NULL;
	if (!g->prov || !t || (t->type != JSMN_ARRAY && t->type != JSMN_OBJECT))
		return;
	for (int n = 0, i = tok + 1; n < t->size; n++, i = json_skip(&L->j, i)) {
		const char *name = t->type == JSMN_OBJECT ? json_str(&L->j, &c->arena, i++, NULL) : NULL;
		int v[3];
		if (json_obj_get(&L->j, i, k, 3, v, NULL) != 0 || v[2] < 0)
			continue; /* cfg_providers reported a malformed entry */
		if (v[0] >= 0 || (!name && v[1] >= 0)) /* cfg_provider's rule: name, map key, kind */
			name = json_str(&L->j, &c->arena, v[0] >= 0 ? v[0] : v[1], NULL);
		char path[160];
		if (t->type == JSMN_OBJECT)
			snprintf(path, sizeof(path), "providers.%.100s", name ? name : "?");
		else
			snprintf(path, sizeof(path), "providers[%d]", n);
		for (int q = 0; name && q < g->nprov; q++)
			if (strcmp(g->prov[q].id, name) == 0)
				gov_cfg_ent(L, &g->prov[q], GK_PROVIDER, name, v[2], -1, path);
	}
}

/* "pricing": {"[provider/]model-or-glob": {"input": $, "output": $, "cache_read": $, "cache_write": $}} */
static void gov_cfg_pricing(struct cfg_ld *L, struct gov *g, int tok)
{
	static const char *const k[] = { "input", "output", "cache_read", "cache_write" };
	if (tok < 0)
		return;
	if (L->j.tok[tok].type != JSMN_OBJECT) {
		cfg_problem(L, "pricing must be an object of model → prices");
		return;
	}
	int n = L->j.tok[tok].size;
	g->price = arena_new(&L->c->arena, struct gov_price_ent, MAX(n, 1));
	for (int j = 0, i = tok + 1; g->price && j < n; j++, i = json_skip(&L->j, i + 1)) {
		char *name = json_str(&L->j, &L->c->arena, i, NULL), what[192];
		int v[4];
		if (name)
			snprintf(what, sizeof(what), "pricing.%.150s", name);
		if (!name || !*name || !cfg_obj(L, i + 1, what, k, 4, NULL, v))
			continue;
		struct gov_price_ent *e = &g->price[g->nprice++];
		char *slash = strchr(name, '/');
		e->prov = slash ? name : NULL;
		e->pat = slash ? slash + 1 : name;
		if (slash)
			*slash = 0;
		int64_t *dst[4] = { &e->p.in, &e->p.out, &e->p.cache_read, &e->p.cache_write };
		for (int q = 0; q < 4; q++) {
			snprintf(what, sizeof(what), "pricing.%s%s%s.%s", slash ? name : "", slash ? "/" : "",
				 e->pat, k[q]);
			*dst[q] = MAX(0, gov_cfg_dollars(L, v[q], what));
		}
		if (v[0] < 0 && v[1] < 0)
			cfg_problem(L, "pricing.%s: give at least input or output", e->pat);
	}
}

/* LiteLLM's provider names that differ from this gateway's kinds. */
static const char *gov_cfg_litellm_provider(const char *p)
{
	static const char *const alias[][2] = { { "together_ai", "together" }, { "fireworks_ai", "fireworks" },
		{ "text-completion-openai", "openai" }, { "hosted_vllm", "vllm" } };
	for (size_t i = 0; i < ARRAY_LEN(alias); i++)
		if (strcmp(p, alias[i][0]) == 0)
			return alias[i][1];
	return p;
}

/* A LiteLLM cost per token (US$, e.g. 2.5e-06) in this table's unit (µ$ per MTok); -1 if absent. */
static int64_t gov_cfg_litellm_cost(const struct json *j, int tok)
{
	if (tok < 0 || j->tok[tok].type != JSMN_PRIMITIVE)
		return -1;
	char tmp[48];
	struct str r = json_raw(j, tok);
	if (r.n >= sizeof(tmp) || !json_number_ok(r.p, r.n))
		return -1;
	memcpy(tmp, r.p, r.n);
	tmp[r.n] = 0;
	double d = strtod(tmp, NULL) * 1e12;
	return d >= 0 && d < (double)GOV_MAX_MICROS ? (int64_t)(d + 0.5) : -1;
}

/* pricing_file: a price list in the format of LiteLLM's model_prices_and_context_window.json
 * ({"model": {"input_cost_per_token": $, "output_cost_per_token": $, "litellm_provider": p,
 * "cache_read_input_token_cost": $, "cache_creation_input_token_cost": $, ...}}), so prices
 * are refreshed without a new binary. Entries without a per-token price (images, audio,
 * "sample_spec") are skipped; "provider/model" keys lose the prefix of their provider. */
static void gov_cfg_pricing_file(struct cfg_ld *L, struct gov *g, const char *path)
{
	static const char *const k[] = { "input_cost_per_token", "output_cost_per_token",
		"cache_read_input_token_cost", "cache_creation_input_token_cost", "litellm_provider" };
	char err[PATH_MAX + 64];
	size_t len;
	char *text = cfg_slurp(path, &len, err, sizeof(err));
	struct arena tmp;
	struct json j;
	arena_init(&tmp, NULL);
	if (!text || json_parse(&j, &tmp, text, len) != 0) {
		cfg_problem(L, "pricing_file: %s", text ? j.err : err);
		goto out;
	}
	int n = j.tok[0].size;
	g->fprice = arena_new(&L->c->arena, struct gov_price_ent, MAX(n, 1));
	for (g->fcap = 16; g->fcap < 2u * (uint32_t)n; g->fcap *= 2)
		;
	g->fhash = arena_new(&L->c->arena, uint32_t, g->fcap);
	if (!g->fprice || !g->fhash) {
		cfg_problem(L, "pricing_file: out of memory");
		goto out;
	}
	memset(g->fhash, 0, sizeof(uint32_t) * g->fcap);
	for (int m = 0, i = 1; m < n; m++, i = json_skip(&j, i + 1)) {
		int v[5];
		char *name = json_str(&j, &L->c->arena, i, NULL);
		char *prov = json_obj_get(&j, i + 1, k, 5, v, NULL) ? NULL : json_str(&j, &L->c->arena, v[4], NULL);
		int64_t c[4];
		for (int q = 0; q < 4; q++)
			c[q] = prov ? gov_cfg_litellm_cost(&j, v[q]) : -1;
		if (!name || !prov || (c[0] < 0 && c[1] < 0) || strcmp(name, "sample_spec") == 0)
			continue; /* (sample_spec documents the format) */
		const char *pv = gov_cfg_litellm_provider(prov);
		size_t pl = strlen(prov);
		const char *pat = strncmp(name, prov, pl) == 0 && name[pl] == '/' ? name + pl + 1 : name;
		struct gov_price_ent *e = &g->fprice[g->nfprice];
		*e = (struct gov_price_ent){ pv, pat, { MAX(c[0], 0), MAX(c[1], 0), MAX(c[2], 0), MAX(c[3], 0) } };
		uint32_t h = gov_fhash(pv, pat) & (g->fcap - 1);
		while (g->fhash[h] && !(strcmp(g->fprice[g->fhash[h] - 1].pat, pat) == 0 &&
					strcmp(g->fprice[g->fhash[h] - 1].prov, pv) == 0))
			h = (h + 1) & (g->fcap - 1);
		if (!g->fhash[h]) /* the first entry of a (provider, name) wins */
			g->fhash[h] = (uint32_t)++g->nfprice;
	}
out:
	arena_reset(&tmp);
	free(text);
}

/* Every entity in one list, and the key → entity index. */
static void gov_cfg_index(struct cfg_ld *L, struct gov *g)
{
	int n = g->ncust + g->nteam + g->nprov;
	for (int i = 0; i < g->nkey; i++)
		n += 1 + g->key[i].npc;
	g->all = arena_new(&L->c->arena, struct gov_ent *, MAX(n, 1));
	for (g->hcap = 16; g->hcap < 2u * (uint32_t)n; g->hcap *= 2)
		;
	g->hidx = arena_new(&L->c->arena, uint32_t, g->hcap);
	if (!g->all || !g->hidx) {
		cfg_problem(L, "out of memory");
		return;
	}
	memset(g->hidx, 0, sizeof(uint32_t) * g->hcap);
	for (int i = 0; i < g->ncust; i++)
		g->all[g->nall++] = &g->cust[i];
	for (int i = 0; i < g->nteam; i++)
		g->all[g->nall++] = &g->team[i].e;
	for (int i = 0; i < g->nkey; i++) {
		g->all[g->nall++] = &g->key[i].e;
		for (int q = 0; q < g->key[i].npc; q++)
			g->all[g->nall++] = &g->key[i].pc[q].e;
	}
	for (int i = 0; i < g->nprov; i++)
		g->all[g->nall++] = &g->prov[i];
	for (int i = 0; i < g->nall; i++) {
		uint32_t h = (uint32_t)g->all[i]->key & (g->hcap - 1);
		while (g->hidx[h] && g->all[g->hidx[h] - 1]->key != g->all[i]->key)
			h = (h + 1) & (g->hcap - 1);
		if (g->hidx[h])
			cfg_problem(L, "governance: %s \"%s\" collides with another entity; rename it",
				    gov_kind_name[g->all[i]->kind], g->all[i]->id);
		g->hidx[h] = (uint32_t)i + 1;
	}
}

/*
 * The governance view of a config ("governance", "pricing", "pricing_file", provider
 * budgets): always returned (enforce off and no entities when the blocks are absent) so
 * pricing and per-provider totals work without governance; sets the config's `governed`
 * (anything to count: the journal is opened). Call after cfg_providers. Problems go through
 * cfg_problem; NULL only when out of memory.
 */
static struct gov *gov_cfg(struct cfg_ld *L, int gov_tok, int pricing_tok, int providers_tok,
			   const char *pricing_file)
{
	static const char *const k[] = { "enforce", "customers", "teams", "virtual_keys", "unpriced",
					 "on_journal_error", "durability" };
	int v[7] = { -1, -1, -1, -1, -1, -1, -1 };
	struct gov *g = arena_new(&L->c->arena, struct gov, 1);
	if (!g) {
		cfg_problem(L, "out of memory");
		return NULL;
	}
	memset(g, 0, sizeof(*g));
	if (gov_tok >= 0 && cfg_obj(L, gov_tok, "governance", k, 7, NULL, v))
		g->enforce = cfg_bool(L, v[0], false, "governance.enforce");
	const char *up = cfg_str(L, v[4], "governance.unpriced");
	if (up && strcmp(up, "max_price") && strcmp(up, "deny") && strcmp(up, "free"))
		cfg_problem(L, "governance.unpriced must be \"max_price\", \"deny\" or \"free\"");
	g->unpriced = !up ? GOV_UNPRICED_MAX : up[0] == 'd' ? GOV_UNPRICED_DENY
			 : up[0] == 'f' ? GOV_UNPRICED_FREE : GOV_UNPRICED_MAX;
	const char *je = cfg_str(L, v[5], "governance.on_journal_error");
	if (je && strcmp(je, "deny") && strcmp(je, "allow"))
		cfg_problem(L, "governance.on_journal_error must be \"deny\" or \"allow\"");
	g->on_journal_error = je && strcmp(je, "allow") == 0 ? GOV_JERR_ALLOW : GOV_JERR_DENY;
	const char *du = cfg_str(L, v[6], "governance.durability");
	if (du && strcmp(du, "disk") && strcmp(du, "process"))
		cfg_problem(L, "governance.durability must be \"disk\" or \"process\"");
	g->durable_disk = !du || strcmp(du, "process") != 0;
	gov_cfg_customers(L, g, v[1]);
	gov_cfg_teams(L, g, v[2]);
	int n = gov_cfg_array(L, v[3], "governance.virtual_keys");
	g->key = arena_new(&L->c->arena, struct gov_vkey, MAX(n, 1));
	if (g->key)
		memset(g->key, 0, sizeof(struct gov_vkey) * (size_t)MAX(n, 1));
	for (int j = 0, i = v[3] + 1; g->key && j < n; j++, i = json_skip(&L->j, i))
		gov_cfg_key(L, g, i, j);
	gov_cfg_providers(L, g, providers_tok);
	gov_cfg_pricing(L, g, pricing_tok);
	if (pricing_file && *pricing_file)
		gov_cfg_pricing_file(L, g, pricing_file);
	gov_cfg_index(L, g);
	L->c->governed = gov_tok >= 0 || gov_provider_budgets(g);
	return g;
}

/* ======================================================================== *
 * 16. metrics_ — what operators see.                                       *
 *                                                                          *
 * Each worker owns its counters (single writer: relaxed load+store, no     *
 * locked instructions); /metrics sums them. The overhead histogram is the  *
 * time spent inside bifrost per request, upstream time excluded. Request   *
 * log lines go to a per-worker double buffer written to stdout by the ring *
 * (never a blocking write on a worker); when both halves are busy, lines   *
 * are dropped and counted.                                                 *
 * ======================================================================== */

static const uint32_t hist_le_us[] = { 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75,
				       100, 150, 200, 300, 500, 1000, 5000 };
#define HIST_N (ARRAY_LEN(hist_le_us) + 1)

/* Requests by provider, model and status: at most METRICS_SERIES label sets per
 * worker (the model can come from the client), then they count as "other". An
 * entry's labels are written once, before `used` publishes it to the scraper. */
#define METRICS_SERIES 128

struct metrics_series {
	_Atomic bool used;
	char prov[48], model[80];
	int status;
	_Atomic uint64_t n;
};

struct metrics {
	_Atomic uint64_t requests, by_class[6], upstream_errors, log_dropped, conns_accepted;
	_Atomic uint64_t in_tokens, out_tokens, unpriced, journal_full, log_store_dropped;
	_Atomic uint64_t hist[HIST_N], hist_sum_ns;
	struct metrics_series series[METRICS_SERIES];
	int nseries; /* owner only */
};

#define M_ADD(m, field, v)                                                                     \
	atomic_store_explicit(&(m)->field,                                                     \
			      atomic_load_explicit(&(m)->field, memory_order_relaxed) + (v),   \
			      memory_order_relaxed)

/* A label value that needs no escaping and stays short: [A-Za-z0-9._:/@+-], others '_'. */
static void metrics_label(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (; *src && n + 1 < cap; src++)
		dst[n++] = isalnum((unsigned char)*src) || strchr("._:/@+-", *src) ? *src : '_';
	dst[n] = 0;
}

/* Count one routed request under its provider, model and status. */
static void metrics_count(struct metrics *m, const char *prov, const char *model, int status)
{
	char p[48], md[80];
	metrics_label(p, sizeof(p), prov);
	metrics_label(md, sizeof(md), model);
	int i = 0;
	for (; i < m->nseries; i++) {
		struct metrics_series *e = &m->series[i];
		if (e->status == status && strcmp(e->model, md) == 0 && strcmp(e->prov, p) == 0)
			break;
		if (i == METRICS_SERIES - 1) /* the last slot collects everything past the cap */
			break;
	}
	struct metrics_series *e = &m->series[i];
	if (i == m->nseries) {
		bool last = i == METRICS_SERIES - 1;
		snprintf(e->prov, sizeof(e->prov), "%s", last ? "other" : p);
		snprintf(e->model, sizeof(e->model), "%s", last ? "other" : md);
		e->status = last ? 0 : status;
		atomic_store_explicit(&e->used, true, memory_order_release);
		m->nseries++;
	}
	M_ADD(e, n, 1);
}

static void metrics_overhead(struct metrics *m, uint64_t ns)
{
	uint64_t us = ns / 1000;
	size_t b = 0;
	while (b < ARRAY_LEN(hist_le_us) && us >= hist_le_us[b])
		b++;
	M_ADD(m, hist[b], 1);
	M_ADD(m, hist_sum_ns, ns);
}

#define LOG_BUF (64 * 1024)

struct log_state {
	char buf[2][LOG_BUF];
	size_t len[2]; /* bytes in each half */
	int cur;       /* half being filled */
	bool busy;     /* the other half is being written */
	size_t off;    /* bytes of the busy half already written */
};

/* ======================================================================== *
 * 17. ldb_ — the request log store: SQLite at data_dir/logs.db.            *
 *                                                                          *
 * A worker fills one fixed-size record per request in place, in its own    *
 * ring (one producer, one consumer: no syscall, no lock, no malloc); a     *
 * full ring drops the record and counts it, the worker never waits. One    *
 * writer thread drains every ring each 20 ms into one transaction (WAL, a  *
 * prepared insert) and enforces retention by age and size. A failed write  *
 * (disk full) keeps the records in the rings and is retried each second.   *
 * Queries run on the management thread over their own connection: WAL     *
 * lets them read while the writer writes.                                  *
 * ======================================================================== */

#define LDB_RING 2048 /* records per worker: 100 ms of 20,000 requests/s */

struct ldb_rec {
	char *body[2];   /* owned (malloc), or NULL: the request's and the answer's bytes (logs.content) */
	size_t nbody[2];
	int64_t ts_ms, latency_us, ttfb_us, in, out, cache_read, cache_write, cost_micros; /* -1: none */
	int32_t status, attempts;
	bool stream, client_left;
	char method[8], path[64], req_id[64], vk[64], team[64], customer[64], provider[64], model[96];
	char failed[160], error[256], client[64], ua[128];
};

struct ldb_ring {
	alignas(64) _Atomic uint64_t head; /* next record the writer takes */
	alignas(64) _Atomic uint64_t tail; /* next record the worker fills */
	struct ldb_rec rec[LDB_RING];
};

static struct ldb_ring **ldb_rings; /* one per worker, set before the writer starts */
static int ldb_nrings;
static char ldb_path[PATH_MAX];
static _Atomic bool ldb_stop;
static _Atomic int64_t ldb_keep_ms, ldb_keep_bytes; /* retention, from the current config */
static _Atomic uint64_t ldb_written, ldb_failed_batches;

/* The record to fill, or NULL when the ring is full (the caller counts the drop). */
static struct ldb_rec *ldb_claim(struct ldb_ring *r)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (t - atomic_load_explicit(&r->head, memory_order_acquire) >= LDB_RING)
		return NULL;
	struct ldb_rec *rec = &r->rec[t % LDB_RING];
	memset(rec, 0, offsetof(struct ldb_rec, method));
	rec->method[0] = rec->path[0] = rec->req_id[0] = rec->vk[0] = rec->team[0] = rec->customer[0] = 0;
	rec->provider[0] = rec->model[0] = rec->failed[0] = rec->error[0] = rec->client[0] = rec->ua[0] = 0;
	return rec;
}

static void ldb_publish(struct ldb_ring *r)
{
	atomic_store_explicit(&r->tail, atomic_load_explicit(&r->tail, memory_order_relaxed) + 1,
			      memory_order_release);
}

static const char ldb_schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS logs(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, request_id TEXT,"
	" method TEXT, path TEXT, virtual_key_id TEXT, team_id TEXT, customer_id TEXT, provider TEXT,"
	" model TEXT, status INTEGER, attempts INTEGER, failed TEXT, error TEXT, latency_us INTEGER,"
	" ttfb_us INTEGER, stream INTEGER, in_tokens INTEGER, out_tokens INTEGER, cache_read_tokens INTEGER,"
	" cache_write_tokens INTEGER, cost_micros INTEGER, client TEXT, user_agent TEXT, client_left INTEGER,"
	" request_body TEXT, response_body TEXT);"
	"CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts);"
	"CREATE INDEX IF NOT EXISTS logs_key_ts ON logs(virtual_key_id, ts);"
	"CREATE INDEX IF NOT EXISTS logs_provider_ts ON logs(provider, ts);"
	"CREATE INDEX IF NOT EXISTS logs_status_ts ON logs(status, ts);"
	"CREATE INDEX IF NOT EXISTS logs_error_ts ON logs(ts) WHERE status >= 400;";

/* Columns added after the table's first release: a file made before gets them at open. */
static const char *const ldb_added[] = {
	"ALTER TABLE logs ADD COLUMN request_body TEXT",
	"ALTER TABLE logs ADD COLUMN response_body TEXT",
};

/* Open (and create) the store; NULL and a message in err. */
static sqlite3 *ldb_open(const char *path, bool writer, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, 5000);
	if (rc == SQLITE_OK && writer) /* before the first table: a new file shrinks as rows go */
		rc = sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, ldb_schema, NULL, NULL, NULL);
	for (size_t i = 0; writer && rc == SQLITE_OK && i < ARRAY_LEN(ldb_added); i++) /* older files */
		if (sqlite3_exec(db, ldb_added[i], NULL, NULL, NULL) != SQLITE_OK &&
		    !strstr(sqlite3_errmsg(db), "duplicate column"))
			rc = SQLITE_ERROR;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static void ldb_bind_text(sqlite3_stmt *st, int i, const char *z)
{
	if (*z)
		sqlite3_bind_text(st, i, z, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void ldb_bind_int(sqlite3_stmt *st, int i, int64_t v)
{
	if (v >= 0)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

static int ldb_insert(sqlite3_stmt *st, const struct ldb_rec *r)
{
	const char *texts[] = { r->req_id, r->method, r->path, r->vk, r->team, r->customer, r->provider,
				r->model, r->failed, r->error, r->client, r->ua };
	const int64_t ints[] = { r->ts_ms, r->status, r->attempts, r->latency_us, r->ttfb_us, r->stream,
				 r->in, r->out, r->cache_read, r->cache_write, r->cost_micros, r->client_left };
	for (int i = 0; i < 12; i++)
		ldb_bind_text(st, i + 1, texts[i]);
	for (int i = 0; i < 12; i++)
		ldb_bind_int(st, i + 13, ints[i]);
	for (int i = 0; i < 2; i++)
		if (r->body[i])
			sqlite3_bind_text(st, 25 + i, r->body[i], (int)r->nbody[i], SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 25 + i);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : rc;
}

/* Everything the rings hold, in one transaction; the rings advance only once it commits. */
static int ldb_drain(sqlite3 *db, sqlite3_stmt *ins, long *n)
{
	uint64_t upto[ldb_nrings > 0 ? ldb_nrings : 1];
	int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	*n = 0;
	for (int i = 0; rc == SQLITE_OK && i < ldb_nrings; i++) {
		struct ldb_ring *r = ldb_rings[i];
		uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
		upto[i] = atomic_load_explicit(&r->tail, memory_order_acquire);
		for (; h < upto[i] && rc == SQLITE_OK; h++, (*n)++)
			rc = ldb_insert(ins, &r->rec[h % LDB_RING]);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	for (int i = 0; i < ldb_nrings; i++) { /* stored: the bodies' memory goes, the slots return */
		struct ldb_ring *r = ldb_rings[i];
		for (uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed); h < upto[i]; h++)
			for (int k = 0; k < 2; k++) {
				free(r->rec[h % LDB_RING].body[k]);
				r->rec[h % LDB_RING].body[k] = NULL;
			}
		atomic_store_explicit(&r->head, upto[i], memory_order_release);
	}
	atomic_fetch_add(&ldb_written, (uint64_t)*n);
	return SQLITE_OK;
}

static int64_t ldb_pragma(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * One step of retention, at most 5,000 rows, so the writer keeps draining between steps:
 * the oldest rows go while the live pages exceed the size limit, else rows older than the
 * age limit; freed pages go back to the file system. True while there is more to do.
 */
static bool ldb_retain_step(sqlite3 *db, int64_t now_ms)
{
	int64_t pages = ldb_pragma(db, "PRAGMA page_count"), free_pages = ldb_pragma(db, "PRAGMA freelist_count");
	int64_t psize = ldb_pragma(db, "PRAGMA page_size");
	int64_t live = (pages - free_pages) * psize, keep = atomic_load(&ldb_keep_bytes), limit = 5000;
	bool over = pages > 0 && psize > 0 && live > keep;
	if (over) { /* the excess's share of the rows (ids are dense: max - min counts them), at most 5,000 */
		int64_t nrows = ldb_pragma(db, "SELECT max(id) - min(id) + 1 FROM logs");
		limit = MIN(limit, MAX(1, (int64_t)((double)MAX(nrows, 0) * (double)(live - keep) / (double)live) + 1));
	}
	char sql[200];
	snprintf(sql, sizeof(sql), "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts < %lld ORDER BY ts "
		 "LIMIT %lld)", (long long)(over ? INT64_MAX : now_ms - atomic_load(&ldb_keep_ms)),
		 (long long)limit); /* (logs_ts: no scan) */
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return false;
	int n = sqlite3_changes(db);
	sqlite3_exec(db, "PRAGMA incremental_vacuum(2000)", NULL, NULL, NULL);
	return n == 5000 || (over && n > 0);
}

static const char ldb_insert_sql[] =
	"INSERT INTO logs(request_id, method, path, virtual_key_id, team_id, customer_id, provider, model,"
	" failed, error, client, user_agent, ts, status, attempts, latency_us, ttfb_us, stream, in_tokens,"
	" out_tokens, cache_read_tokens, cache_write_tokens, cost_micros, client_left, request_body, response_body)"
	" VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* The writer thread: drain every 20 ms, retain every minute, until stopped and drained. */
static void *ldb_writer(void *arg)
{
	sqlite3 *db = arg;
	sqlite3_stmt *ins = NULL;
	if (sqlite3_prepare_v2(db, ldb_insert_sql, -1, &ins, NULL) != SQLITE_OK) {
		fprintf(stderr, "bifrost: request log store: %s\n", sqlite3_errmsg(db));
		return NULL;
	}
	uint64_t last_retain = 0, last_err_log = 0;
	bool retaining = false;
	for (;;) {
		bool stop = atomic_load(&ldb_stop);
		long n = 0;
		int rc = ldb_drain(db, ins, &n);
		uint64_t now = now_ns() / 1000000;
		if (rc != SQLITE_OK) {
			atomic_fetch_add(&ldb_failed_batches, 1);
			if (now - last_err_log >= 60000) { /* the records wait in the rings meanwhile */
				fprintf(stderr, "bifrost: request log store: write failed (%s); retrying each second\n",
					sqlite3_errstr(rc));
				last_err_log = now;
			}
			if (stop)
				break;
			usleep(1000 * 1000);
			continue;
		}
		if (now - last_retain >= 60000 || retaining) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			retaining = ldb_retain_step(db, (int64_t)ts.tv_sec * 1000);
			last_retain = now;
		}
		if (stop)
			break;
		if (n < LDB_RING / 4 && !retaining)
			usleep(20 * 1000);
	}
	sqlite3_finalize(ins);
	sqlite3_close(db);
	return NULL;
}

/* ---- queries (the management thread's connection) ---- */

enum { LF_SINCE, LF_UNTIL, LF_KEY, LF_TEAM, LF_CUSTOMER, LF_PROVIDER, LF_MODEL, LF_STATUS, LF_MIN_MS,
       LF_LIMIT, LF_OFFSET, LF_BUCKET, LF_GROUP, LF_N };

static const char *const ldb_filter_names[LF_N] = { "since", "until", "virtual_key_id", "team_id",
	"customer_id", "provider", "model", "status", "min_latency_ms", "limit", "offset", "bucket_s", "group" };

/* A query's parameters, decoded (empty: not given). */
struct ldb_filter {
	char v[LF_N][128];
};

static int64_t ldb_num(const struct ldb_filter *f, int k, int64_t dflt)
{
	char *end;
	if (!f->v[k][0])
		return dflt;
	long long v = strtoll(f->v[k], &end, 10);
	return *end ? dflt : v;
}

/* " WHERE ..." for the filters given; `args` gets the values to bind, in order. */
static void ldb_where(const struct ldb_filter *f, struct sb *sql, const char **args, int *nargs)
{
	static const char *const col[LF_N] = { [LF_KEY] = "virtual_key_id", [LF_TEAM] = "team_id",
		[LF_CUSTOMER] = "customer_id", [LF_PROVIDER] = "provider", [LF_MODEL] = "model" };
	sb_printf(sql, " WHERE ts >= %lld AND ts < %lld", (long long)ldb_num(f, LF_SINCE, 0),
		  (long long)ldb_num(f, LF_UNTIL, INT64_MAX));
	*nargs = 0;
	for (int k = LF_KEY; k <= LF_MODEL; k++)
		if (f->v[k][0]) {
			sb_printf(sql, " AND %s = ?", col[k]);
			args[(*nargs)++] = f->v[k];
		}
	if (!strcmp(f->v[LF_STATUS], "error"))
		sb_puts(sql, " AND status >= 400");
	else if (f->v[LF_STATUS][0])
		sb_printf(sql, " AND status = %lld", (long long)ldb_num(f, LF_STATUS, -1));
	if (f->v[LF_MIN_MS][0])
		sb_printf(sql, " AND latency_us >= %lld",
			  (long long)MIN(MAX(ldb_num(f, LF_MIN_MS, 0), 0), INT64_MAX / 1000) * 1000);
}

static const char ldb_cols[] =
	"id, ts, request_id, method, path, virtual_key_id, team_id, customer_id, provider, model, status,"
	" attempts, failed, error, latency_us, ttfb_us, stream, in_tokens, out_tokens, cache_read_tokens,"
	" cache_write_tokens, cost_micros, client, user_agent, client_left";

static void ldb_put_col(struct sb *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		sb_puts(b, "null");
	else if (sqlite3_column_type(st, i) == SQLITE_INTEGER)
		sb_printf(b, "%lld", (long long)sqlite3_column_int64(st, i));
	else
		json_put_str(b, (const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
}

/* One row of ldb_cols as the API's log entry. */
static void ldb_put_row(struct sb *b, sqlite3_stmt *st)
{
	static const char *const names[] = { "id", "ts", "request_id", "method", "path", "virtual_key_id",
		"team_id", "customer_id", "provider", "model", "status", "attempts", "failed", "error" };
	for (int i = 0; i < (int)ARRAY_LEN(names); i++) {
		sb_printf(b, "%s\"%s\":", i ? "," : "{", names[i]);
		ldb_put_col(b, st, i);
	}
	sb_printf(b, ",\"latency_ms\":%.3f,\"ttfb_ms\":", (double)sqlite3_column_int64(st, 14) / 1000);
	if (sqlite3_column_type(st, 15) == SQLITE_NULL)
		sb_puts(b, "null");
	else
		sb_printf(b, "%.3f", (double)sqlite3_column_int64(st, 15) / 1000);
	sb_printf(b, ",\"stream\":%s", sqlite3_column_int(st, 16) ? "true" : "false");
	static const char *const toks[] = { "in_tokens", "out_tokens", "cache_read_tokens", "cache_write_tokens" };
	for (int i = 0; i < 4; i++)
		sb_printf(b, ",\"%s\":%lld", toks[i], (long long)sqlite3_column_int64(st, 17 + i));
	int64_t cost = sqlite3_column_int64(st, 21);
	if (sqlite3_column_type(st, 21) == SQLITE_NULL)
		sb_puts(b, ",\"cost\":null");
	else
		sb_printf(b, ",\"cost\":%lld.%06lld", (long long)(cost / 1000000), (long long)(cost % 1000000));
	sb_puts(b, ",\"client\":");
	ldb_put_col(b, st, 22);
	sb_puts(b, ",\"user_agent\":");
	ldb_put_col(b, st, 23);
	sb_printf(b, ",\"client_left\":%s", sqlite3_column_int(st, 24) ? "true" : "false");
	if (sqlite3_column_count(st) > 25) { /* one entry: its bodies too */
		sb_puts(b, ",\"request_body\":");
		ldb_put_col(b, st, 25);
		sb_puts(b, ",\"response_body\":");
		ldb_put_col(b, st, 26);
	}
	sb_puts(b, "}");
}

static sqlite3_stmt *ldb_prepare(sqlite3 *db, struct sb *sql, const char **args, int nargs)
{
	sqlite3_stmt *st = NULL;
	if (sql->oom || sqlite3_prepare_v2(db, sql->p, (int)sql->len, &st, NULL) != SQLITE_OK)
		return NULL;
	for (int i = 0; i < nargs; i++)
		sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
	return st;
}

/* {"logs":[...],"total":N}, newest first; or id >= 0: {"log":{...}} (0: found). */
static int ldb_logs_json(sqlite3 *db, const struct ldb_filter *f, int64_t id, struct sb *b, struct arena *a)
{
	const char *args[LF_N];
	int nargs = 0;
	struct sb sql, where;
	sb_init(&sql, a, 1024);
	sb_init(&where, a, 512);
	if (id >= 0)
		sb_printf(&where, " WHERE id = %lld", (long long)id);
	else
		ldb_where(f, &where, args, &nargs);
	sb_printf(&sql, "SELECT %s%s FROM logs%.*s ORDER BY ts DESC, id DESC LIMIT %lld OFFSET %lld", ldb_cols,
		  id >= 0 ? ", request_body, response_body" : "", (int)where.len, where.p, (long long)MIN(MAX(ldb_num(f, LF_LIMIT, 50), 1), 1000),
		  (long long)MAX(ldb_num(f, LF_OFFSET, 0), 0));
	sqlite3_stmt *st = ldb_prepare(db, &sql, args, nargs);
	if (!st)
		return -EIO;
	int n = 0, rc;
	sb_puts(b, id >= 0 ? "{\"log\":" : "{\"logs\":[");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n++)
			sb_puts(b, ",");
		ldb_put_row(b, st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -EIO;
	if (id >= 0) {
		sb_puts(b, "}");
		return n ? 0 : -ENOENT;
	}
	sb_init(&sql, a, 512);
	sb_printf(&sql, "SELECT count(*) FROM logs%.*s", (int)where.len, where.p);
	st = ldb_prepare(db, &sql, args, nargs);
	int64_t total = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	sb_printf(b, "],\"total\":%lld}", (long long)total);
	return total < 0 ? -EIO : 0;
}

/* ---- /api/logs/stats: counts, tokens, cost and exact latency percentiles ---- */

#define LDB_GROUPS 64
#define LDB_BUCKETS 1440

struct ldb_agg {
	int64_t count, errors, in, out, cost;
	int64_t *lat; /* malloc: every latency (µs), sorted when read */
	size_t nlat, cap;
};

static void ldb_agg_add(struct ldb_agg *g, int64_t status, int64_t lat, int64_t in, int64_t out, int64_t cost)
{
	g->count++;
	g->errors += status >= 400;
	g->in += in;
	g->out += out;
	g->cost += cost;
	if (g->nlat == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		int64_t *p = realloc(g->lat, cap * sizeof(*p));
		if (!p)
			return; /* that latency is left out of the percentiles */
		g->lat = p;
		g->cap = cap;
	}
	g->lat[g->nlat++] = lat;
}

/* The k-th smallest of v[0, n) (reorders v): quickselect, O(n) on average. */
static int64_t ldb_select(int64_t *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		int64_t pivot = v[lo + (hi - lo) / 2];
		size_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				int64_t t = v[i];
				v[i++] = v[j];
				v[j] = t;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return v[k];
	}
	return v[k];
}

/* "count":..,"p99_ms":.. (no braces), and the latencies freed. */
static void ldb_agg_put(struct sb *b, struct ldb_agg *g)
{
	double p50 = 0, p99 = 0;
	if (g->nlat) { /* nearest rank: ceil(q n) - 1 */
		p50 = (double)ldb_select(g->lat, g->nlat, (g->nlat + 1) / 2 - 1) / 1000;
		p99 = (double)ldb_select(g->lat, g->nlat, (g->nlat * 99 + 99) / 100 - 1) / 1000;
	}
	sb_printf(b, "\"count\":%lld,\"errors\":%lld,\"in_tokens\":%lld,\"out_tokens\":%lld,\"cost\":%lld.%06lld,"
		     "\"p50_ms\":%.3f,\"p99_ms\":%.3f", (long long)g->count, (long long)g->errors, (long long)g->in,
		  (long long)g->out, (long long)(g->cost / 1000000), (long long)(g->cost % 1000000), p50, p99);
	free(g->lat);
	g->lat = NULL;
	g->nlat = g->cap = 0;
}

struct ldb_stats {
	int64_t since, until, bucket_ms, t0; /* t0: the first bucket's start (a multiple of bucket_ms) */
	int nb, ng;
	struct ldb_agg total, bucket[LDB_BUCKETS], group[LDB_GROUPS + 1]; /* [LDB_GROUPS]: "other" */
	char gkey[LDB_GROUPS][96];
};

static int ldb_group_of(struct ldb_stats *s, const char *key)
{
	for (int i = 0; i < s->ng; i++)
		if (!strcmp(s->gkey[i], key))
			return i;
	if (s->ng == LDB_GROUPS)
		return LDB_GROUPS;
	snprintf(s->gkey[s->ng], sizeof(s->gkey[0]), "%s", key);
	return s->ng++;
}

static void ldb_stats_put(struct sb *b, struct ldb_stats *s)
{
	sb_puts(b, "{\"totals\":{");
	ldb_agg_put(b, &s->total);
	sb_printf(b, "},\"since\":%lld,\"until\":%lld,\"bucket_s\":%lld,\"series\":[", (long long)s->since,
		  (long long)s->until, (long long)(s->bucket_ms / 1000));
	for (int i = 0; i < s->nb; i++) {
		sb_printf(b, "%s{\"t\":%lld,", i ? "," : "", (long long)(s->t0 + i * s->bucket_ms));
		ldb_agg_put(b, &s->bucket[i]);
		sb_puts(b, "}");
	}
	sb_puts(b, "],\"groups\":[");
	for (int i = 0; i <= LDB_GROUPS; i++) {
		if (i == s->ng && i < LDB_GROUPS)
			i = LDB_GROUPS;
		if (!s->group[i].count)
			continue;
		sb_puts(b, b->p[b->len - 1] == '[' ? "{\"key\":" : ",{\"key\":");
		json_put_z(b, i < LDB_GROUPS ? s->gkey[i] : "other");
		sb_puts(b, ",");
		ldb_agg_put(b, &s->group[i]);
		sb_puts(b, "}");
	}
	sb_puts(b, "]}");
}

/* One pass over the range's rows; every figure is exact (percentiles too). */
static int ldb_stats_json(sqlite3 *db, const struct ldb_filter *f, int64_t now_ms, struct sb *b, struct arena *a)
{
	struct ldb_stats *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->until = ldb_num(f, LF_UNTIL, now_ms);
	s->since = ldb_num(f, LF_SINCE, s->until - 86400000);
	s->bucket_ms = MAX(ldb_num(f, LF_BUCKET, 0) * 1000, 1000);
	if (!f->v[LF_BUCKET][0])
		s->bucket_ms = MAX((s->until - s->since) / 60, 1000);
	s->bucket_ms = MAX(s->bucket_ms, (s->until - s->since) / LDB_BUCKETS + 1);
	s->bucket_ms = (s->bucket_ms + 999) / 1000 * 1000; /* whole seconds; buckets start at multiples */
	s->t0 = s->since - ((s->since % s->bucket_ms) + s->bucket_ms) % s->bucket_ms; /* (the range stays) */
	s->nb = s->until > s->t0 ? (int)((s->until - s->t0 + s->bucket_ms - 1) / s->bucket_ms) : 0;
	const char *gcol = !strcmp(f->v[LF_GROUP], "model") ? "provider || '/' || model"
			   : !strcmp(f->v[LF_GROUP], "virtual_key") ? "virtual_key_id" : "provider";
	struct ldb_filter ff = *f;
	snprintf(ff.v[LF_SINCE], sizeof(ff.v[0]), "%lld", (long long)s->since);
	snprintf(ff.v[LF_UNTIL], sizeof(ff.v[0]), "%lld", (long long)s->until);
	const char *args[LF_N];
	int nargs;
	struct sb sql;
	sb_init(&sql, a, 1024);
	sb_printf(&sql, "SELECT ts, coalesce(%s, '(none)'), status, latency_us, coalesce(in_tokens, 0) +"
			" coalesce(cache_read_tokens, 0) + coalesce(cache_write_tokens, 0), coalesce(out_tokens, 0),"
			" coalesce(cost_micros, 0) FROM logs", gcol);
	ldb_where(&ff, &sql, args, &nargs);
	sqlite3_stmt *st = ldb_prepare(db, &sql, args, nargs);
	int rc = st ? SQLITE_ROW : SQLITE_ERROR;
	while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t ts = sqlite3_column_int64(st, 0), v[5];
		for (int i = 0; i < 5; i++)
			v[i] = sqlite3_column_int64(st, 2 + i);
		int bi = (int)((ts - s->t0) / s->bucket_ms), gi = ldb_group_of(s, (const char *)sqlite3_column_text(st, 1));
		ldb_agg_add(&s->total, v[0], v[1], v[2], v[3], v[4]);
		if (bi >= 0 && bi < s->nb)
			ldb_agg_add(&s->bucket[bi], v[0], v[1], v[2], v[3], v[4]);
		ldb_agg_add(&s->group[gi], v[0], v[1], v[2], v[3], v[4]);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		ldb_stats_put(b, s);
	free(s->total.lat);
	for (int i = 0; i < LDB_BUCKETS; i++)
		free(s->bucket[i].lat);
	for (int i = 0; i <= LDB_GROUPS; i++)
		free(s->group[i].lat);
	free(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}
/* ======================================================================== *
 * 18. mgmt_ — the management thread: the admin API, logins, config edits.  *
 *                                                                          *
 * Workers hand every /api request to this one thread as a job (a copy of   *
 * what it needs) through a lock-free stack and an eventfd, and get the     *
 * answer back the same way; nothing here runs on a worker, so a slow query *
 * or an fsync never delays traffic. Config changes edit the file's JSON    *
 * text in place (what the user wrote stays as written), are checked by     *
 * cfg_parse exactly like `bifrost check`, written atomically (temp file,   *
 * fsync, rename; the previous file kept as .bak) and published through    *
 * mgmt_publish, the path SIGHUP takes too.                                 *
 * ======================================================================== */

struct mgmt_job {
	struct jnode node; /* first: the queues' link */
	struct arena a; /* owns everything below */
	int worker;
	uint32_t idx, gen; /* the client slot that waits */
	struct str method, path, query, auth, cookie, if_match, body, host, origin;
	char peer[64];
	bool loopback;
	int tail_fd; /* GET /api/logs/stream: the client's socket (a dup), served from here; else -1 */
	/* the answer */
	int status;
	const char *ctype;
	struct sb out, hdr; /* body; extra header lines */
};

static jstack mgmt_inbox;
static jstack *mgmt_outbox; /* one per worker */
static int *mgmt_wake_fd;                        /* the workers' eventfds */
static int mgmt_evfd = -1;
static pthread_mutex_t mgmt_publish_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *mgmt_cfg_path; /* the file edits go to: --config, ./config.json, or made there */

static void mgmt_job_free(struct mgmt_job *j)
{
	if (j) {
		arena_reset(&j->a);
		free(j);
	}
}

/* Publish a checked config: the running counters carry over (SIGHUP and the API both). */
static void mgmt_publish(struct cfg *n)
{
	pthread_mutex_lock(&mgmt_publish_lock);
	struct cfg *old = atomic_load(&cfg_current);
	gov_carry(old->gov, n->gov, time(NULL));
	atomic_store(&ldb_keep_ms, (int64_t)n->logs_days * 86400000);
	atomic_store(&ldb_keep_bytes, n->logs_bytes);
	pthread_mutex_lock(&cfg_lock);
	atomic_exchange(&cfg_current, n);
	pthread_mutex_unlock(&cfg_lock);
	if ((n->listen && (!old->listen || strcmp(n->listen, old->listen))) || n->workers != old->workers)
		fprintf(stderr, "bifrost: listen and workers take effect at the next start\n");
	if (n->cluster && !old->cluster) /* (the cluster thread starts with a first config that has one) */
		fprintf(stderr, "bifrost: cluster: a block added by a reload takes effect at the next start, unless "
			"this node started with one\n");
	atomic_fetch_add(&cfg_generation, 1);
	pthread_mutex_unlock(&mgmt_publish_lock);
	cfg_put(old);
	fprintf(stderr, "bifrost: config reloaded (%d providers)\n", n->nprov);
}

/* ---- answers ---- */

static void mgmt_error(struct mgmt_job *j, int status, const char *type, const char *msg)
{
	j->status = status;
	j->ctype = "application/json";
	j->out.len = 0;
	sb_puts(&j->out, "{\"error\":{\"message\":");
	json_put_z(&j->out, msg);
	sb_puts(&j->out, ",\"type\":");
	json_put_z(&j->out, type);
	sb_puts(&j->out, "}}");
}

/* 400 with cfg_parse's problems ("  - text\n" lines) as a list. */
static void mgmt_problems(struct mgmt_job *j, struct str errs)
{
	j->status = 400;
	j->out.len = 0;
	sb_puts(&j->out, "{\"error\":{\"message\":\"the configuration has problems\",\"type\":\"invalid_request_error\","
			 "\"problems\":[");
	int n = 0;
	for (size_t i = 0; i < errs.n;) {
		const char *nl = memchr(errs.p + i, '\n', errs.n - i);
		size_t e = nl ? (size_t)(nl - errs.p) : errs.n, s = i;
		while (s < e && (errs.p[s] == ' ' || errs.p[s] == '-'))
			s++;
		if (e > s) {
			sb_puts(&j->out, n++ ? "," : "");
			json_put_str(&j->out, errs.p + s, e - s);
		}
		i = e + 1;
	}
	sb_puts(&j->out, "]}}");
}

/* ---- passwords: PBKDF2-HMAC-SHA256 (BearSSL's HMAC), "pbkdf2-sha256$iter$salt$hash" in hex ---- */

#define MGMT_PW_ITER 200000

static void mgmt_pbkdf2(const char *pw, const unsigned char *salt, size_t nsalt, unsigned iter,
			unsigned char out[32])
{
	br_hmac_key_context kc;
	br_hmac_context hc;
	unsigned char u[32], blk[4] = { 0, 0, 0, 1 };
	br_hmac_key_init(&kc, &br_sha256_vtable, pw, strlen(pw));
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, salt, nsalt);
	br_hmac_update(&hc, blk, 4);
	br_hmac_out(&hc, u);
	memcpy(out, u, 32);
	for (unsigned i = 1; i < iter; i++) {
		br_hmac_init(&hc, &kc, 0);
		br_hmac_update(&hc, u, 32);
		br_hmac_out(&hc, u);
		for (int k = 0; k < 32; k++)
			out[k] ^= u[k];
	}
}

static void mgmt_hex(char *dst, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(dst + 2 * i, "%02x", p[i]);
}

static int mgmt_unhex(const char *s, size_t n, unsigned char *out, size_t cap)
{
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = json_hex4((char[]){ '0', '0', s[i], s[i + 1] });
		if (hi < 0)
			return -1;
		out[i / 2] = (unsigned char)hi;
	}
	return (int)(n / 2);
}

/* A new hash line for `pw` (salt from getrandom); false when no randomness. */
static bool mgmt_pw_hash(const char *pw, char *out, size_t cap)
{
	unsigned char salt[16], dk[32];
	char hs[33], hd[65];
	if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
		return false;
	mgmt_pbkdf2(pw, salt, sizeof(salt), MGMT_PW_ITER, dk);
	mgmt_hex(hs, salt, sizeof(salt));
	mgmt_hex(hd, dk, sizeof(dk));
	snprintf(out, cap, "pbkdf2-sha256$%u$%s$%s", MGMT_PW_ITER, hs, hd);
	return true;
}

/* Does `pw` match the hash line? Constant time over the derived key. */
static bool mgmt_pw_check(const char *line, const char *pw)
{
	unsigned char salt[64], want[32], got[32];
	char ssalt[129], shash[65];
	unsigned iter;
	if (!cfg_pw_parse(line, &iter, ssalt, shash))
		return false;
	int ns = mgmt_unhex(ssalt, strlen(ssalt), salt, sizeof(salt));
	if (ns <= 0 || mgmt_unhex(shash, strlen(shash), want, sizeof(want)) != 32)
		return false;
	mgmt_pbkdf2(pw, salt, (size_t)ns, iter, got);
	unsigned d = 0;
	for (int i = 0; i < 32; i++)
		d |= got[i] ^ want[i];
	return d == 0;
}

/* ---- who may use the API: the admin token, a login session, or (no credentials) loopback ---- */

#define MGMT_SESSIONS 64
#define MGMT_SESSION_S (12 * 3600)
#define MGMT_LOGIN_FAILS 5 /* per client address and minute */

static struct { char token[65]; int64_t expires; } mgmt_sess[MGMT_SESSIONS];
static struct { char peer[64]; int64_t minute; int fails; } mgmt_fails[64];

static bool mgmt_token_eq(struct str got, const char *want)
{
	size_t n = strlen(want);
	unsigned d = got.n != n;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(want[i] ^ (i < got.n ? got.p[i] : 0));
	return d == 0 && n > 0;
}

/* The session token in a Cookie header, or an empty str. */
static struct str mgmt_cookie(struct str h)
{
	for (size_t i = 0; i + 16 <= h.n; i++)
		if ((i == 0 || h.p[i - 1] == ' ' || h.p[i - 1] == ';') && !memcmp(h.p + i, "bifrost_session=", 16)) {
			size_t s = i + 16, e = s;
			while (e < h.n && h.p[e] != ';' && h.p[e] != ' ')
				e++;
			return (struct str){ h.p + s, e - s };
		}
	return (struct str){ "", 0 };
}

static int mgmt_session_find(struct str tok, int64_t now)
{
	for (int i = 0; tok.n == 64 && i < MGMT_SESSIONS; i++)
		if (mgmt_sess[i].expires > now && mgmt_token_eq(tok, mgmt_sess[i].token))
			return i;
	return -1;
}

static bool mgmt_creds(const struct cfg *c) { return c->admin_token || c->admin_hash; }

/* Is the Host header a loopback name? (A page on another name that resolves to 127.0.0.1 —
 * DNS rebinding — must not reach an API that trusts loopback clients.) */
static bool mgmt_loopback_host(struct str h)
{
	return str_starts(h, "localhost") || str_starts(h, "127.") || str_starts(h, "[::1]");
}

/* A browser's request from another origin (Origin names another host than Host): refused for
 * writes, whatever the credentials (a cookie rides along; loopback trusts the machine). */
static bool mgmt_cross_origin(const struct mgmt_job *j)
{
	if (!j->origin.n || str_eq(j->method, "GET") || str_eq(j->method, "HEAD"))
		return false;
	const char *sep = memmem(j->origin.p, j->origin.n, "://", 3);
	struct str oh = sep ? (struct str){ sep + 3, j->origin.n - (size_t)(sep + 3 - j->origin.p) } : j->origin;
	return oh.n != j->host.n || strncasecmp(oh.p, j->host.p, oh.n) != 0;
}

static bool mgmt_authorized(const struct mgmt_job *j, const struct cfg *c, int64_t now)
{
	if (!mgmt_creds(c))
		return j->loopback && mgmt_loopback_host(j->host);
	if (c->admin_token && j->auth.n > 7 && !strncasecmp(j->auth.p, "Bearer ", 7) &&
	    mgmt_token_eq((struct str){ j->auth.p + 7, j->auth.n - 7 }, c->admin_token))
		return true;
	return mgmt_session_find(mgmt_cookie(j->cookie), now) >= 0;
}

static int *mgmt_fail_slot(const char *peer, int64_t now)
{
	int oldest = 0;
	for (int i = 0; i < (int)ARRAY_LEN(mgmt_fails); i++) {
		if (!strcmp(mgmt_fails[i].peer, peer)) {
			if (mgmt_fails[i].minute != now / 60)
				mgmt_fails[i].minute = now / 60, mgmt_fails[i].fails = 0;
			return &mgmt_fails[i].fails;
		}
		if (mgmt_fails[i].minute < mgmt_fails[oldest].minute)
			oldest = i;
	}
	snprintf(mgmt_fails[oldest].peer, sizeof(mgmt_fails[0].peer), "%s", peer);
	mgmt_fails[oldest].minute = now / 60;
	mgmt_fails[oldest].fails = 0;
	return &mgmt_fails[oldest].fails;
}

/* POST /api/session/login {"username","password"}: a cookie for 12 hours. */
static void mgmt_login(struct mgmt_job *j, const struct cfg *c, int64_t now)
{
	static const char *const k[] = { "username", "password" };
	char addr[64]; /* failures count per address, whatever the port */
	snprintf(addr, sizeof(addr), "%s", j->peer);
	if (strrchr(addr, ':'))
		*strrchr(addr, ':') = 0;
	int v[2], *fails = mgmt_fail_slot(addr, now);
	struct json js;
	if (!c->admin_hash) {
		mgmt_error(j, 400, "invalid_request_error", "no admin.username/password_hash is configured");
		return;
	}
	if (*fails >= MGMT_LOGIN_FAILS) {
		mgmt_error(j, 429, "rate_limit_error", "too many failed logins; wait a minute");
		sb_puts(&j->hdr, "Retry-After: 60\r\n");
		return;
	}
	if (json_parse(&js, &j->a, j->body.p, j->body.n) != 0 || json_obj_get(&js, 0, k, 2, v, NULL) != 0 ||
	    v[0] < 0 || v[1] < 0) {
		mgmt_error(j, 400, "invalid_request_error", "give {\"username\":..., \"password\":...}");
		return;
	}
	char *user = json_str(&js, &j->a, v[0], NULL), *pw = json_str(&js, &j->a, v[1], NULL);
	bool ok = user && pw && mgmt_pw_check(c->admin_hash, pw); /* always the slow hash: no timing hint */
	if (!ok || strcmp(user, c->admin_user)) {
		(*fails)++;
		mgmt_error(j, 401, "authentication_error", "wrong username or password");
		return;
	}
	int slot = 0;
	for (int i = 0; i < MGMT_SESSIONS; i++)
		if (mgmt_sess[i].expires < mgmt_sess[slot].expires)
			slot = i;
	unsigned char r[32];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		mgmt_error(j, 500, "server_error", "no randomness for a session");
		return;
	}
	mgmt_hex(mgmt_sess[slot].token, r, sizeof(r));
	mgmt_sess[slot].expires = now + MGMT_SESSION_S;
	sb_printf(&j->hdr, "Set-Cookie: bifrost_session=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict\r\n",
		  mgmt_sess[slot].token, MGMT_SESSION_S);
	j->status = 200;
	sb_puts(&j->out, "{\"authenticated\":true,\"user\":");
	json_put_z(&j->out, c->admin_user);
	sb_puts(&j->out, "}");
}

static void mgmt_session(struct mgmt_job *j, const struct cfg *c, int64_t now)
{
	bool in = mgmt_authorized(j, c, now);
	if (str_eq(j->path, "/api/session/logout")) {
		int i = mgmt_session_find(mgmt_cookie(j->cookie), now);
		if (i >= 0)
			mgmt_sess[i].expires = 0;
		sb_puts(&j->hdr, "Set-Cookie: bifrost_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\r\n");
		in = false;
	}
	j->status = 200;
	sb_printf(&j->out, "{\"authenticated\":%s,\"login_required\":%s,\"password_login\":%s,\"user\":",
		  in ? "true" : "false", mgmt_creds(c) ? "true" : "false", c->admin_hash ? "true" : "false");
	if (in && c->admin_user && mgmt_session_find(mgmt_cookie(j->cookie), now) >= 0)
		json_put_z(&j->out, c->admin_user);
	else
		sb_puts(&j->out, "null");
	sb_puts(&j->out, "}");
}

/* ---- config documents: secrets out, secrets kept, entries found, text spliced ---- */

/*
 * A secret reads as MGMT_REDACTED "-" and 8 hex digits: the start of an HMAC-SHA256 of the
 * secret under a key drawn at the first use (so the digits say nothing outside this process).
 * A write carrying a marker gets the stored secret it names, wherever it stood (an entry
 * copied, renamed or moved keeps its key); a marker naming nothing is refused.
 */
#define MGMT_REDACTED "sk-\xe2\x80\xa6redacted"
#define MGMT_MARKER_LEN (sizeof(MGMT_REDACTED) - 1 + 9)

static void mgmt_marker(const char *secret, size_t n, char out[MGMT_MARKER_LEN + 1])
{
	static unsigned char key[32];
	static bool ready;
	if (!ready && getrandom(key, sizeof(key), 0) == (ssize_t)sizeof(key))
		ready = true;
	br_hmac_key_context kc;
	br_hmac_context hc;
	unsigned char mac[32];
	br_hmac_key_init(&kc, &br_sha256_vtable, key, sizeof(key));
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, secret, n);
	br_hmac_out(&hc, mac);
	memcpy(out, MGMT_REDACTED "-", sizeof(MGMT_REDACTED));
	mgmt_hex(out + sizeof(MGMT_REDACTED), mac, 4);
}

static bool mgmt_secret_key(struct str k)
{
	static const char *const names[] = { "apiKey", "api_key", "value", "token", "password_hash",
		"secret_access_key", "session_token", "aws_secret_access_key" };
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (str_eq(k, names[i]))
			return true;
	return false;
}

static struct str mgmt_tok(const struct json *js, int i)
{
	return (struct str){ js->s + js->tok[i].start, (size_t)(js->tok[i].end - js->tok[i].start) };
}

/* A member name as the config loader reads it (unescaped into buf; "" if too long for it). */
static struct str mgmt_key(const struct json *js, int k, char *buf, size_t cap)
{
	struct str raw = mgmt_tok(js, k);
	return memchr(raw.p, '\\', raw.n) ? json_key_unescape(raw, buf, cap) : raw;
}

/* The value under `key` in object `obj`, or -1. */
static int mgmt_member(const struct json *js, int obj, const char *key)
{
	if (obj < 0 || js->tok[obj].type != JSMN_OBJECT)
		return -1;
	for (int n = 0, i = obj + 1; n < js->tok[obj].size; n++, i = json_skip(js, i + 1)) {
		char buf[256];
		if (str_eq(mgmt_key(js, i, buf, sizeof(buf)), key))
			return i + 1;
	}
	return -1;
}

/* A string value's bytes: unescaped, or as written when it cannot be (a lone surrogate;
 * *readable then says so: such a value is redacted, but never read as a marker). */
static struct str mgmt_value(const struct json *js, int v, struct arena *a, bool *readable)
{
	size_t n;
	char *p = json_str((struct json *)js, a, v, &n);
	*readable = p != NULL;
	return p ? (struct str){ p, n } : mgmt_tok(js, v);
}

/* The markers of every stored secret of the document being written against, made at its
 * first marker (a write is linear, not quadratic, in its secrets); mgmt_emit starts it anew. */
static struct {
	bool made;
	int count;
	struct { char mk[MGMT_MARKER_LEN + 1]; int tok; } *e; /* malloc */
} mgmt_known;

/* The stored secret (a string under a secret's name, anywhere in `old`) that `marker` names. */
static int mgmt_find_secret(const struct json *old, struct arena *a, struct str marker)
{
	if (!mgmt_known.made) {
		free(mgmt_known.e);
		mgmt_known.e = malloc(sizeof(*mgmt_known.e) * (size_t)(old->ntok + 1));
		mgmt_known.count = 0;
		mgmt_known.made = mgmt_known.e != NULL;
		for (int i = 1; mgmt_known.e && i + 1 < old->ntok; i++) {
			char buf[256];
			if (old->tok[i].type != JSMN_STRING || old->tok[i].size != 1 ||
			    old->tok[i + 1].type != JSMN_STRING || !mgmt_secret_key(mgmt_key(old, i, buf, sizeof(buf))))
				continue;
			bool readable;
			struct str v = mgmt_value(old, i + 1, a, &readable);
			if (!readable) /* not a secret the loader would take: nothing to name */
				continue;
			mgmt_marker(v.p, v.n, mgmt_known.e[mgmt_known.count].mk);
			mgmt_known.e[mgmt_known.count++].tok = i + 1;
		}
	}
	for (int i = 0; marker.n == MGMT_MARKER_LEN && i < mgmt_known.count; i++)
		if (!memcmp(mgmt_known.e[i].mk, marker.p, MGMT_MARKER_LEN))
			return mgmt_known.e[i].tok;
	return -1;
}

/* mgmt_emit's walk (one level per call). */
static bool mgmt_emit_at(const struct json *js, int i, const struct json *old, bool redact, struct sb *o)
{
	const jsmntok_t *t = &js->tok[i];
	if (t->type != JSMN_OBJECT && t->type != JSMN_ARRAY) {
		sb_put(o, js->s + json_beg(js, i), json_end(js, i) - json_beg(js, i));
		return true;
	}
	bool obj = t->type == JSMN_OBJECT, ok = true;
	sb_puts(o, obj ? "{" : "[");
	for (int n = 0, k = i + 1; n < t->size; n++) {
		int v = obj ? k + 1 : k;
		char buf[256];
		struct str val = { NULL, 0 };
		bool readable = false;
		sb_puts(o, n ? "," : "");
		if (obj) {
			sb_put(o, js->s + json_beg(js, k), json_end(js, k) - json_beg(js, k));
			sb_puts(o, ":");
			if (js->tok[v].type == JSMN_STRING && mgmt_secret_key(mgmt_key(js, k, buf, sizeof(buf))))
				val = mgmt_value(js, v, o->a, &readable);
		}
		if (val.p && redact && (!readable || !str_starts(val, "env."))) {
			char mk[MGMT_MARKER_LEN + 1];
			mgmt_marker(val.p, val.n, mk);
			sb_printf(o, "\"%s\"", mk);
		} else if (readable && !redact && str_starts(val, MGMT_REDACTED)) {
			int s = old ? mgmt_find_secret(old, o->a, val) : -1;
			ok &= s >= 0;
			if (s >= 0)
				sb_put(o, old->s + json_beg(old, s), json_end(old, s) - json_beg(old, s));
		} else {
			ok &= mgmt_emit_at(js, v, old, redact, o);
		}
		k = json_skip(js, v);
	}
	sb_puts(o, obj ? "}" : "]");
	return ok;
}

/*
 * Write the subtree at i compactly. redact: secrets (not "env.NAME") become their markers.
 * Otherwise a marker under a secret's name becomes the secret it names in `old` (false when
 * there is none, or no `old`: a marker is never stored).
 */
static bool mgmt_emit(const struct json *js, int i, const struct json *old, bool redact, struct sb *o)
{
	mgmt_known.made = false;
	return mgmt_emit_at(js, i, old, redact, o);
}

/* A validated document, indented by two spaces per level (how the file is written back). */
static void mgmt_pretty(struct str in, struct sb *o)
{
	int depth = 0;
	bool str = false;
	for (size_t i = 0; i < in.n; i++) {
		char c = in.p[i];
		if (str) {
			sb_put(o, &c, 1);
			if (c == '\\' && i + 1 < in.n)
				sb_put(o, &in.p[++i], 1);
			else if (c == '"')
				str = false;
			continue;
		}
		if (json_ws(c))
			continue;
		if ((c == '}' || c == ']') && i > 0 && (in.p[i - 1] == '{' || in.p[i - 1] == '[')) {
			sb_put(o, &c, 1); /* {} and [] stay on one line */
			depth--;
			continue;
		}
		if (c == '}' || c == ']') {
			depth--;
			sb_printf(o, "\n%*s", 2 * MAX(depth, 0), "");
		}
		sb_put(o, &c, 1);
		if (c == ':')
			sb_puts(o, " ");
		str = c == '"';
		if (c == '{' || c == '[')
			depth++;
		if ((c == '{' || c == '[') && i + 1 < in.n && in.p[i + 1] != '}' && in.p[i + 1] != ']')
			sb_printf(o, "\n%*s", 2 * depth, "");
		else if (c == ',')
			sb_printf(o, "\n%*s", 2 * depth, "");
	}
	sb_puts(o, "\n");
}

/* ---- the editable collections of config.json ---- */

struct mgmt_coll {
	const char *path, *list, *one; /* API path, list and single answer keys */
	const char *parent, *member;   /* where in config.json: [parent.]member */
	const char *idkey;             /* the identity field */
	bool vkeys;                    /* virtual keys: their secret is stored hashed (mgmt_vk_secret) */
};

static const struct mgmt_coll mgmt_colls[] = {
	{ "/api/providers", "providers", "provider", NULL, "providers", "name", false },
	{ "/api/governance/virtual-keys", "virtual_keys", "virtual_key", "governance", "virtual_keys", "id", true },
	{ "/api/governance/teams", "teams", "team", "governance", "teams", "id", false },
	{ "/api/governance/customers", "customers", "customer", "governance", "customers", "id", false },
};

/* The working copy of config.json: its text, tokens, revision, and the collection found. */
struct mgmt_doc {
	char *text; /* malloc */
	size_t n;
	struct json js;
	char rev[20];
	int parent, list; /* tokens, or -1 */
};

static void mgmt_doc_free(struct mgmt_doc *d) { free(d->text); }

/* Read and tokenize the file the edits go to (the environment's defaults when it does not exist). */
static int mgmt_doc_load(struct mgmt_doc *d, struct arena *a, const struct mgmt_coll *mc)
{
	char err[PATH_MAX + 64];
	memset(d, 0, sizeof(*d));
	d->text = access(mgmt_cfg_path, F_OK) == 0 ? cfg_slurp(mgmt_cfg_path, &d->n, err, sizeof(err))
						   : cfg_default_text(&d->n);
	if (!d->text || json_parse(&d->js, a, d->text, d->n) != 0 || d->js.tok[0].type != JSMN_OBJECT)
		return -EIO;
	snprintf(d->rev, sizeof(d->rev), "\"%016llx\"", (unsigned long long)fnv1a(FNV_BASIS, d->text, d->n));
	d->parent = mc && mc->parent ? mgmt_member(&d->js, 0, mc->parent) : 0;
	d->list = mc && d->parent >= 0 ? mgmt_member(&d->js, d->parent, mc->member) : -1;
	return 0;
}

/* An entry's identity: providers by "name" (else their kind, or the map key), others by "id". */
static struct str mgmt_entry_id(const struct json *js, int key, int v, const struct mgmt_coll *mc)
{
	int t = mgmt_member(js, v, mc->idkey);
	if (t < 0 && !strcmp(mc->idkey, "name"))
		t = key >= 0 ? key : mgmt_member(js, v, "provider");
	return t >= 0 && js->tok[t].type == JSMN_STRING ? mgmt_tok(js, t) : (struct str){ "", 0 };
}

/* The entry whose identity is `id`: its value token (and map key token, for map forms). */
static int mgmt_find(const struct mgmt_doc *d, const struct mgmt_coll *mc, struct str id, int *keytok)
{
	const jsmntok_t *t = d->list >= 0 ? &d->js.tok[d->list] : NULL;
	*keytok = -1;
	if (!t || (t->type != JSMN_ARRAY && t->type != JSMN_OBJECT))
		return -1;
	bool map = t->type == JSMN_OBJECT;
	for (int n = 0, i = d->list + 1; n < t->size; n++) {
		int k = map ? i : -1, v = map ? i + 1 : i;
		struct str e = mgmt_entry_id(&d->js, k, v, mc);
		if (e.n == id.n && !memcmp(e.p, id.p, id.n)) {
			*keytok = k;
			return v;
		}
		i = json_skip(&d->js, v);
	}
	return -1;
}

/* text[0, from) + ins + text[to, n) */
static void mgmt_splice(const struct mgmt_doc *d, size_t from, size_t to, struct str ins, struct sb *o)
{
	sb_put(o, d->text, from);
	sb_str(o, ins);
	sb_put(o, d->text + to, d->n - to);
}

/* The document with `item` added to the collection (made, with its parent, if missing). */
static void mgmt_insert(const struct mgmt_doc *d, const struct mgmt_coll *mc, struct str item, struct sb *o,
			struct arena *a)
{
	struct sb ins;
	sb_init(&ins, a, item.n + 64);
	int at = d->list >= 0 ? d->list : d->parent >= 0 ? d->parent : 0;
	const jsmntok_t *t = &d->js.tok[at];
	if (d->list >= 0 && t->type == JSMN_OBJECT) { /* providers as a map: the name is its key */
		struct json ij;
		if (json_parse(&ij, a, item.p, item.n) == 0)
			json_put_str(&ins, mgmt_entry_id(&ij, -1, 0, mc).p, mgmt_entry_id(&ij, -1, 0, mc).n);
		sb_puts(&ins, ":");
		sb_str(&ins, item);
	} else if (d->list >= 0) {
		sb_str(&ins, item);
	} else {
		sb_printf(&ins, "\"%s\":", d->parent >= 0 ? mc->member : mc->parent);
		sb_puts(&ins, d->parent >= 0 ? "[" : "{\"");
		if (d->parent < 0)
			sb_printf(&ins, "%s\":[", mc->member);
		sb_str(&ins, item);
		sb_puts(&ins, d->parent >= 0 ? "]" : "]}");
	}
	size_t pos = (size_t)t->start + 1; /* first, right after the bracket */
	struct sb full;
	sb_init(&full, a, ins.len + 2);
	if (t->size > 0 && d->list >= 0) { /* last, before the closing bracket */
		pos = (size_t)t->end - 1;
		sb_puts(&full, ",");
	}
	sb_str(&full, sb_view(&ins));
	if (t->size > 0 && d->list < 0)
		sb_puts(&full, ",");
	mgmt_splice(d, pos, pos, sb_view(&full), o);
}

/* Check `text` like `bifrost check`, write it atomically (the old file kept as .bak), publish. */
/* Write a checked config's text to the config file (tmp, fsync, rename, .bak, the directory
 * fsync'd) and publish it. false (n freed, err set) when the file cannot be written. */
static bool mgmt_install_locked(struct cfg *n, struct str text, char *err, size_t errlen)
{
	char tmp[PATH_MAX], bak[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp", mgmt_cfg_path);
	snprintf(bak, sizeof(bak), "%s.bak", mgmt_cfg_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, text.p, text.n) == (ssize_t)text.n && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	unlink(bak);
	if (ok && access(mgmt_cfg_path, F_OK) == 0 && link(mgmt_cfg_path, bak) != 0)
		ok = false;
	if (!ok || rename(tmp, mgmt_cfg_path) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", mgmt_cfg_path, strerror(errno));
		unlink(tmp);
		cfg_free(n);
		return false;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", mgmt_cfg_path);
	char *slash = strrchr(dir, '/');
	int dfd = open(slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) { /* the rename itself is durable */
		fsync(dfd);
		close(dfd);
	}
	n->source = mgmt_cfg_path;
	dns_refresh_due(false); /* the new providers' addresses (a literal IP at once) */
	mgmt_publish(n);
	return true;
}

static bool mgmt_install(struct cfg *n, struct str text, char *err, size_t errlen)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* (the cluster thread installs too) */
	pthread_mutex_lock(&lock);
	bool ok = mgmt_install_locked(n, text, err, errlen);
	pthread_mutex_unlock(&lock);
	return ok;
}

static bool mgmt_commit(struct mgmt_job *j, struct str text)
{
	struct sb compact, pretty, errs;
	struct json js;
	sb_init(&compact, &j->a, text.n + 16);
	sb_init(&pretty, &j->a, text.n * 2 + 64);
	sb_init(&errs, &j->a, 1024);
	if (json_parse(&js, &j->a, text.p, text.n) != 0) {
		mgmt_error(j, 400, "invalid_request_error", js.err ? js.err : "malformed JSON");
		return false;
	}
	if (!mgmt_emit(&js, 0, NULL, false, &compact)) {
		mgmt_error(j, 400, "invalid_request_error", "a redacted secret names no stored secret");
		return false;
	}
	mgmt_pretty(sb_view(&compact), &pretty);
	char *copy = pretty.oom ? NULL : strndup(pretty.p, pretty.len);
	struct cfg *n = copy ? cfg_parse(copy, pretty.len, mgmt_cfg_path, &errs) : NULL;
	if (n && gov_region && gov_bind(n->gov, gov_region, n->cluster ? 0 : time(NULL)) != 0) {
		sb_puts(&errs, "  - too many governed entities for the counter region\n");
		cfg_free(n);
		n = NULL;
	}
	if (!n) {
		mgmt_problems(j, errs.len ? sb_view(&errs) : STR("  - out of memory\n"));
		return false;
	}
	char msg[PATH_MAX + 80];
	if (!mgmt_install(n, sb_view(&pretty), msg, sizeof(msg))) {
		mgmt_error(j, 500, "server_error", msg);
		return false;
	}
	j->hdr.len = 0; /* the new revision replaces the one read */
	sb_printf(&j->hdr, "ETag: \"%016llx\"\r\n", (unsigned long long)fnv1a(FNV_BASIS, pretty.p, pretty.len));
	return true;
}

/* If-Match against the file's revision; false (412 answered) when someone else wrote first. */
static bool mgmt_fresh(struct mgmt_job *j, const struct mgmt_doc *d)
{
	if (!j->if_match.n || str_eq(j->if_match, "*") || str_eq(j->if_match, d->rev))
		return true;
	mgmt_error(j, 412, "precondition_failed", "the config changed since you read it; reload and retry");
	return false;
}

/*
 * A virtual key's secret is stored as its SHA-256; a new key without one gets one, returned
 * once. False: nothing to do here (a marker, an env.NAME, or a PUT without a value).
 */
static bool mgmt_vk_secret(struct mgmt_job *j, struct json *bj, const struct json *old, bool post,
			   struct sb *item, char *made, size_t cap)
{
	int v = mgmt_member(bj, 0, "value");
	size_t vn = 0;
	char *val = v >= 0 ? json_str(bj, &j->a, v, &vn) : NULL;
	if (val && str_starts((struct str){ val, vn }, MGMT_REDACTED)) { /* a stored secret, hashed here too */
		mgmt_known.made = false;
		int s = mgmt_find_secret(old, &j->a, (struct str){ val, vn });
		val = s >= 0 ? json_str((struct json *)old, &j->a, s, &vn) : NULL;
	}
	if ((v < 0 && (!post || mgmt_member(bj, 0, "value_sha256") >= 0)) ||
	    (v >= 0 && (!val || !*val || vn != strlen(val) || str_starts((struct str){ val, vn }, "env."))))
		return false;
	if (!val) {
		static const char az[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
		unsigned char r[32];
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return false;
		snprintf(made, cap, "sk-bf-");
		for (int i = 0; i < 32; i++)
			made[6 + i] = az[r[i] % 62];
		made[38] = 0;
		val = made;
	}
	unsigned char h[32];
	char hex[65];
	br_sha256_context sc;
	br_sha256_init(&sc);
	br_sha256_update(&sc, val, strlen(val));
	br_sha256_out(&sc, h);
	mgmt_hex(hex, h, 32);
	item->len = 0; /* the body without "value", plus "value_sha256" */
	sb_puts(item, "{\"value_sha256\":\"");
	sb_puts(item, hex);
	sb_puts(item, "\"");
	for (int n = 0, k = 1; n < bj->tok[0].size; n++, k = json_skip(bj, k + 1)) {
		char buf[256];
		struct str key = mgmt_key(bj, k, buf, sizeof(buf));
		if (str_eq(key, "value") || str_eq(key, "value_sha256"))
			continue;
		sb_puts(item, ",");
		sb_put(item, bj->s + json_beg(bj, k), json_end(bj, k + 1) - json_beg(bj, k));
	}
	sb_puts(item, "}");
	return true;
}

/* One entry, secrets redacted; a map-form provider gets its key as "name". */
static void mgmt_put_entry(struct sb *o, const struct mgmt_doc *d, const struct mgmt_coll *mc, int key, int v)
{
	size_t at = o->len;
	mgmt_emit(&d->js, v, NULL, true, o);
	if (key >= 0 && mgmt_member(&d->js, v, "name") < 0 && o->len > at + 1) {
		char *rest = strndup(o->p + at + 1, o->len - at - 1); /* re-open it: {"name":KEY,...} */
		o->len = at;
		sb_puts(o, "{\"name\":");
		sb_str(o, (struct str){ d->text + json_beg(&d->js, key), json_end(&d->js, key) - json_beg(&d->js, key) });
		if (rest && strcmp(rest, "}"))
			sb_puts(o, ",");
		if (rest)
			sb_puts(o, rest);
		free(rest);
	}
}

static void mgmt_list(struct mgmt_job *j, const struct mgmt_doc *d, const struct mgmt_coll *mc)
{
	j->status = 200;
	sb_printf(&j->out, "{\"%s\":[", mc->list);
	const jsmntok_t *t = d->list >= 0 ? &d->js.tok[d->list] : NULL;
	bool map = t && t->type == JSMN_OBJECT;
	for (int n = 0, i = d->list + 1; t && (map || t->type == JSMN_ARRAY) && n < t->size; n++) {
		int v = map ? i + 1 : i;
		sb_puts(&j->out, n ? "," : "");
		mgmt_put_entry(&j->out, d, mc, map ? i : -1, v);
		i = json_skip(&d->js, v);
	}
	sb_puts(&j->out, "]}");
}

/* The entry's span in the text for a replacement or a removal (map forms: key to value). */
static void mgmt_span(const struct mgmt_doc *d, int key, int v, bool with_comma, size_t *from, size_t *to)
{
	const jsmntok_t *lt = &d->js.tok[d->list];
	*from = json_beg(&d->js, key >= 0 ? key : v);
	*to = json_end(&d->js, v);
	if (!with_comma || lt->size < 2)
		return;
	size_t p = *to;
	while (p < d->n && json_ws(d->text[p]))
		p++;
	if (p < d->n && d->text[p] == ',') { /* not the last: take the comma after it */
		*to = p + 1;
		return;
	}
	p = *from; /* the last: take the comma before it */
	while (p > 0 && d->text[p - 1] != ',')
		p--;
	*from = p > 0 ? p - 1 : *from;
}

/* A virtual key replaced without "value" or "value_sha256": the stored one goes into `item`. */
static void mgmt_vk_keep(struct mgmt_job *j, const struct mgmt_doc *d, int v, struct sb *item)
{
	bool hashed = mgmt_member(&d->js, v, "value_sha256") >= 0;
	int s = mgmt_member(&d->js, v, hashed ? "value_sha256" : "value");
	struct sb keep;
	sb_init(&keep, &j->a, item->len + 128);
	sb_printf(&keep, "{\"%s\":", hashed ? "value_sha256" : "value");
	if (s >= 0)
		sb_put(&keep, d->text + json_beg(&d->js, s), json_end(&d->js, s) - json_beg(&d->js, s));
	sb_puts(&keep, item->len > 2 ? "," : "");
	sb_put(&keep, item->p + 1, item->len - 1);
	*item = keep;
}

/* The answer to a write: {"deleted": id}, or the entry as stored (redacted), plus a made key. */
static void mgmt_written(struct mgmt_job *j, const struct mgmt_coll *mc, struct str deleted, struct str item,
			 const char *made)
{
	struct json ij;
	j->status = deleted.n || !str_eq(j->method, "POST") ? 200 : 201;
	j->out.len = 0;
	if (deleted.n) {
		sb_puts(&j->out, "{\"deleted\":");
		json_put_str(&j->out, deleted.p, deleted.n);
		sb_puts(&j->out, "}");
		return;
	}
	sb_printf(&j->out, "{\"%s\":", mc->one);
	if (json_parse(&ij, &j->a, item.p, item.n) == 0)
		mgmt_emit(&ij, 0, NULL, true, &j->out);
	if (made[0])
		sb_printf(&j->out, ",\"value\":\"%s\"", made);
	sb_puts(&j->out, "}");
}

/* POST (id empty), PUT and DELETE on one collection entry. */
static void mgmt_write(struct mgmt_job *j, struct mgmt_doc *d, const struct mgmt_coll *mc, struct str id)
{
	bool del = str_eq(j->method, "DELETE"), post = !id.n;
	int key = -1, v = -1;
	struct json bj;
	struct sb item, doc;
	char made[40] = "";
	sb_init(&item, &j->a, j->body.n + 128);
	sb_init(&doc, &j->a, d->n + j->body.n + 256);
	if (!del && (json_parse(&bj, &j->a, j->body.p, j->body.n) != 0 || bj.tok[0].type != JSMN_OBJECT)) {
		mgmt_error(j, 400, "invalid_request_error", "the body must be a JSON object");
		return;
	}
	struct str bid = del ? id : mgmt_entry_id(&bj, -1, 0, mc);
	if (!del && (!bid.n || (!post && (bid.n != id.n || memcmp(bid.p, id.p, id.n))))) {
		mgmt_error(j, 400, "invalid_request_error",
			   post ? "the entry needs its identity field" : "the entry's identity must match the path");
		return;
	}
	v = mgmt_find(d, mc, bid, &key);
	if (post ? v >= 0 : v < 0) {
		mgmt_error(j, post ? 409 : 404, "invalid_request_error", post ? "an entry with that identity exists"
										 : "no such entry");
		return;
	}
	if (!del && !(mc->vkeys && mgmt_vk_secret(j, &bj, &d->js, post, &item, made, sizeof(made))) &&
	    !mgmt_emit(&bj, 0, &d->js, false, &item)) {
		mgmt_error(j, 400, "invalid_request_error", "a redacted secret names no stored secret");
		return;
	}
	if (mc->vkeys && !post && !del && mgmt_member(&bj, 0, "value") < 0 && mgmt_member(&bj, 0, "value_sha256") < 0)
		mgmt_vk_keep(j, d, v, &item);
	if (post) {
		mgmt_insert(d, mc, sb_view(&item), &doc, &j->a);
	} else {
		size_t from, to;
		mgmt_span(d, key, v, del, &from, &to);
		if (key >= 0 && !del) /* a map entry: its key stays */
			from = json_beg(&d->js, v);
		mgmt_splice(d, from, to, del ? STR("") : sb_view(&item), &doc);
	}
	if (mgmt_commit(j, sb_view(&doc)))
		mgmt_written(j, mc, del ? bid : STR(""), sb_view(&item), made);
}

/* PUT /api/pricing, PUT /api/config: a top-level member replaced (or added), or the whole file. */
static void mgmt_put_doc(struct mgmt_job *j, struct mgmt_doc *d, const char *member)
{
	struct json bj;
	struct sb item, doc;
	sb_init(&item, &j->a, j->body.n + 64);
	sb_init(&doc, &j->a, d->n + j->body.n + 64);
	int root = 0;
	if (json_parse(&bj, &j->a, j->body.p, j->body.n) != 0 || bj.tok[0].type != JSMN_OBJECT ||
	    (member && (root = mgmt_member(&bj, 0, member)) < 0)) {
		mgmt_error(j, 400, "invalid_request_error",
			   member ? "give {\"pricing\": {...}}" : "the body must be the whole config object");
		return;
	}
	int cur = member ? mgmt_member(&d->js, 0, member) : 0;
	if (!mgmt_emit(&bj, root, &d->js, false, &item)) {
		mgmt_error(j, 400, "invalid_request_error", "a redacted secret names no stored secret");
		return;
	}
	if (!member) {
		doc = item;
	} else if (cur >= 0) {
		mgmt_splice(d, json_beg(&d->js, cur), json_end(&d->js, cur), sb_view(&item), &doc);
	} else {
		struct sb ins;
		sb_init(&ins, &j->a, item.len + 32);
		sb_printf(&ins, "\"%s\":", member);
		sb_str(&ins, sb_view(&item));
		sb_puts(&ins, d->js.tok[0].size ? "," : "");
		mgmt_splice(d, (size_t)d->js.tok[0].start + 1, (size_t)d->js.tok[0].start + 1, sb_view(&ins), &doc);
	}
	if (mgmt_commit(j, sb_view(&doc))) {
		j->status = 200;
		j->out.len = 0;
		sb_puts(&j->out, "{\"ok\":true}");
	}
}

/* /api/config, /api/pricing and the collections. */
static void mgmt_config(struct mgmt_job *j)
{
	const struct mgmt_coll *mc = NULL;
	struct str id = { "", 0 };
	for (size_t i = 0; i < ARRAY_LEN(mgmt_colls); i++) {
		size_t n = strlen(mgmt_colls[i].path);
		if (str_starts(j->path, mgmt_colls[i].path) && (j->path.n == n || j->path.p[n] == '/')) {
			mc = &mgmt_colls[i];
			if (j->path.n > n + 1) { /* "/a%20b" names "a b" */
				char *dec = arena_alloc(&j->a, j->path.n, 1);
				size_t dn = dec ? http_pct_decode((struct str){ j->path.p + n + 1, j->path.n - n - 1 }, false,
								    dec, j->path.n) : 0;
				id = (struct str){ dec ? dec : "", dn };
			}
		}
	}
	bool get = str_eq(j->method, "GET"), pricing = str_eq(j->path, "/api/pricing");
	if (!mc && !pricing && !str_eq(j->path, "/api/config")) {
		mgmt_error(j, 404, "invalid_request_error", "no such route");
		return;
	}
	struct mgmt_doc d;
	if (mgmt_doc_load(&d, &j->a, mc) != 0) {
		mgmt_doc_free(&d);
		mgmt_error(j, 500, "server_error", "cannot read the config file");
		return;
	}
	sb_printf(&j->hdr, "ETag: %s\r\n", d.rev);
	int key, v;
	if (get && !mc) {
		j->status = 200;
		if (pricing)
			sb_puts(&j->out, "{\"pricing\":");
		v = pricing ? mgmt_member(&d.js, 0, "pricing") : 0;
		if (v >= 0)
			mgmt_emit(&d.js, v, NULL, true, &j->out);
		else
			sb_puts(&j->out, "{}");
		sb_puts(&j->out, pricing ? "}" : "");
	} else if (get && !id.n) {
		mgmt_list(j, &d, mc);
	} else if (get) {
		if ((v = mgmt_find(&d, mc, id, &key)) < 0) {
			mgmt_error(j, 404, "invalid_request_error", "no such entry");
		} else {
			j->status = 200;
			sb_printf(&j->out, "{\"%s\":", mc->one);
			mgmt_put_entry(&j->out, &d, mc, key, v);
			sb_puts(&j->out, "}");
		}
	} else if (!mgmt_fresh(j, &d)) {
	} else if (!mc && (str_eq(j->method, "PUT"))) {
		mgmt_put_doc(j, &d, pricing ? "pricing" : NULL);
	} else if (mc && (str_eq(j->method, id.n ? "PUT" : "POST") || (id.n && str_eq(j->method, "DELETE")))) {
		mgmt_write(j, &d, mc, id);
	} else {
		mgmt_error(j, 405, "invalid_request_error", "method not allowed here");
	}
	mgmt_doc_free(&d);
}

/* /api/logs, /api/logs/{id}, /api/logs/stats over the thread's own read connection. */
static void mgmt_logs(struct mgmt_job *j, sqlite3 **db)
{
	char err[PATH_MAX + 200] = "the request log store is off (logs.enabled is false)";
	if (!*db && (!ldb_path[0] || !(*db = ldb_open(ldb_path, false, err, sizeof(err))))) {
		mgmt_error(j, 503, "server_error", err);
		return;
	}
	struct ldb_filter f;
	for (int k = 0; k < LF_N; k++) {
		long n = http_query_get(j->query, ldb_filter_names[k], f.v[k], sizeof(f.v[k]));
		if (n < 0)
			f.v[k][0] = 0;
		else if ((size_t)n != strlen(f.v[k])) {
			mgmt_error(j, 400, "invalid_request_error", "a query value holds a NUL byte (%00)");
			return;
		}
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, id = -1;
	int rc;
	if (str_eq(j->path, "/api/logs/stats")) {
		rc = ldb_stats_json(*db, &f, now_ms, &j->out, &j->a);
	} else {
		if (j->path.n > 10) {
			char *end;
			char num[24];
			snprintf(num, sizeof(num), "%.*s", (int)MIN(j->path.n - 10, 23), j->path.p + 10);
			id = strtoll(num, &end, 10);
			if (*end || id < 0) {
				mgmt_error(j, 404, "invalid_request_error", "no such log entry");
				return;
			}
		}
		rc = ldb_logs_json(*db, &f, id, &j->out, &j->a);
	}
	if (rc == -ENOENT)
		mgmt_error(j, 404, "invalid_request_error", "no such log entry");
	else if (rc)
		mgmt_error(j, 500, "server_error", sqlite3_errmsg(*db));
	else
		j->status = 200;
}

static void mgmt_handle(struct mgmt_job *j, sqlite3 **db)
{
	struct cfg *c = cfg_get();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = ts.tv_sec;
	j->ctype = "application/json";
	if (mgmt_cross_origin(j))
		mgmt_error(j, 403, "permission_error", "a write from another origin (Origin is not this host) is refused");
	else if (str_eq(j->path, "/api/session/login") && str_eq(j->method, "POST"))
		mgmt_login(j, c, now);
	else if (str_eq(j->path, "/api/session") || (str_eq(j->path, "/api/session/logout") && str_eq(j->method, "POST")))
		mgmt_session(j, c, now);
	else if (!mgmt_authorized(j, c, now))
		mgmt_error(j, 401, "authentication_error",
			   mgmt_creds(c) ? "log in, or send the admin token (Authorization: Bearer)"
					 : "no admin credentials are configured: the admin API answers loopback clients only");
	else if (str_eq(j->path, "/api/usage") && str_eq(j->method, "GET"))
		j->status = 200, gov_usage_json(&j->out, c->gov, now);
	else if (j->tail_fd >= 0)
		j->status = 200; /* mgmt_tail_add takes it from here */
	else if (str_starts(j->path, "/api/logs") && str_eq(j->method, "GET"))
		mgmt_logs(j, db);
	else
		mgmt_config(j);
	if (j->out.oom)
		mgmt_error(j, 500, "server_error", "out of memory");
	cfg_put(c);
}

/* ---- GET /api/logs/stream: a live tail, as server-sent events, written from this thread ---- */

#define MGMT_TAILS 16

static int mgmt_tails[MGMT_TAILS], mgmt_ntails;
static int64_t mgmt_tail_last = -1; /* the newest row id already sent */

static bool mgmt_tail_send(int fd, struct str s)
{
	ssize_t r = send(fd, s.p, s.n, MSG_DONTWAIT | MSG_NOSIGNAL);
	return r == (ssize_t)s.n; /* a reader that falls behind loses the stream (and reconnects) */
}

/* Take the socket (the worker already let go of it), answer its head, or refuse it. */
static void mgmt_tail_add(struct mgmt_job *j, sqlite3 **db, bool allowed)
{
	char err[PATH_MAX + 200];
	if (allowed && (mgmt_ntails == MGMT_TAILS || !ldb_path[0] ||
			(!*db && !(*db = ldb_open(ldb_path, false, err, sizeof(err))))))
		mgmt_error(j, 503, "server_error", ldb_path[0] ? "too many live tails, or the store cannot be read"
							      : "the request log store is off (logs.enabled is false)");
	if (j->status != 200) {
		struct sb b;
		sb_init(&b, &j->a, 512);
		sb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
			      "Content-Length: %zu\r\n\r\n%.*s", j->status, http_reason(j->status), j->out.len,
			  (int)j->out.len, j->out.p);
		mgmt_tail_send(j->tail_fd, sb_view(&b));
		close(j->tail_fd);
		return;
	}
	if (mgmt_tail_last < 0)
		mgmt_tail_last = MAX(ldb_pragma(*db, "SELECT max(id) FROM logs"), 0);
	if (mgmt_tail_send(j->tail_fd, STR("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
					   "Cache-Control: no-cache\r\nConnection: close\r\n\r\n: tail\n\n")))
		mgmt_tails[mgmt_ntails++] = j->tail_fd;
	else
		close(j->tail_fd);
}

/* New rows to every tail ("data: <log entry>"), or a comment line as a keep-alive. */
static void mgmt_tail_tick(sqlite3 *db, bool ping)
{
	if (!mgmt_ntails || !db)
		return;
	struct arena a;
	struct sb b, sql;
	arena_init(&a, NULL);
	sb_init(&b, &a, 8192);
	sb_init(&sql, &a, 512);
	sb_printf(&sql, "SELECT %s FROM logs WHERE id > %lld ORDER BY id LIMIT 1000", ldb_cols,
		  (long long)mgmt_tail_last);
	sqlite3_stmt *st = ldb_prepare(db, &sql, NULL, 0);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		mgmt_tail_last = sqlite3_column_int64(st, 0);
		sb_puts(&b, "data: ");
		ldb_put_row(&b, st);
		sb_puts(&b, "\n\n");
	}
	sqlite3_finalize(st);
	if (!b.len && ping)
		sb_puts(&b, ": ping\n\n");
	for (int i = 0; b.len && !b.oom && i < mgmt_ntails; i++)
		if (!mgmt_tail_send(mgmt_tails[i], sb_view(&b))) {
			close(mgmt_tails[i]);
			mgmt_tails[i--] = mgmt_tails[--mgmt_ntails];
		}
	arena_reset(&a);
}

/* The thread: jobs in, answers out to their worker, tails fed, until the process stops. */
static void *mgmt_run(void *arg)
{
	sqlite3 *db = NULL;
	uint64_t last_ping = 0;
	for (;;) {
		struct pollfd pf = { .fd = mgmt_evfd, .events = POLLIN };
		uint64_t kicks, now;
		if (poll(&pf, 1, mgmt_ntails ? 250 : 1000) > 0 && read(mgmt_evfd, &kicks, sizeof(kicks)) < 0 &&
		    errno != EAGAIN)
			perror("bifrost: management eventfd");
		for (struct jnode *n = jstack_take(&mgmt_inbox), *next; n; n = next) {
			struct mgmt_job *j = (struct mgmt_job *)n;
			next = n->next;
			mgmt_handle(j, &db);
			if (j->tail_fd < 0) {
				jstack_push(&mgmt_outbox[j->worker], &j->node, mgmt_wake_fd[j->worker]);
				continue;
			}
			mgmt_tail_add(j, &db, j->status == 200);
			mgmt_job_free(j);
		}
		now = now_ns() / 1000000;
		mgmt_tail_tick(db, now - last_ping >= 15000);
		if (now - last_ping >= 15000)
			last_ping = now;
	}
	return arg;
}

/* ======================================================================== *
 * 19. clu_ — several nodes, one set of budgets: Redis.                     *
 *                                                                          *
 * With "cluster" in the config, each node writes its own counters into     *
 * Redis hashes, one field per node: {prefix}b:{entity}:{window} holds      *
 * NODE:u (settled + reserved µ$), NODE:s (spent), NODE:t (tokens), NODE:q  *
 * (requests); {prefix}r:{entity}:{window} NODE:r (requests in the request  *
 * window); {prefix}k:... NODE:k (tokens in the token window);              *
 * {prefix}c:{entity} NODE:c (in flight). A value is the node's own total   *
 * (absolute, never a delta), so writing it again is harmless: after Redis  *
 * was away, or came back empty, the next full push (every 2 s) makes the   *
 * cluster's sums exact again; nothing needs replaying.                     *
 *                                                                          *
 * Admission: the local one first (this node's counters: the fast path),    *
 * then one Lua script over the request's tiers: refused when, for some     *
 * limit, the cluster's total before this request (the other nodes' fields  *
 * + mine - this request) has reached it; else every field is written.      *
 * Scripts run one at a time in Redis, so each admission sees every one     *
 * before it. Bound: a limit is crossed by at most one request per node,    *
 * i.e. by at most N requests' estimates per tier and window (reservations  *
 * written out of order by one node's workers can hide one estimate each).  *
 * Rolling budget windows are aligned to the epoch in a cluster, so every   *
 * node has the same windows.                                               *
 *                                                                          *
 * The thread owns one connection; all jobs that arrived go out in one      *
 * pipeline (one round trip for many admissions). No worker touches a      *
 * socket: a request waits in RQ_CLUSTER (at most cluster.timeout_ms) and   *
 * is answered through its worker's eventfd. Redis away (or slow): the      *
 * request is decided by cluster.on_redis_down — local_share: each node may *
 * use 1/N of what was left of a limit at the last successful push.         *
 * Config: a node whose config file changed writes it to {prefix}config and *
 * its revision to {prefix}config_rev, and PUBLISHes on {prefix}config; the *
 * others (SUBSCRIBEd on a second connection; else looking every 500 ms)    *
 * install it like an admin API edit.                                       *
 * ======================================================================== */

#define CLU_ITEMS (GOV_TIERS * 4)

enum clu_ctr { CLU_USED, CLU_RQ, CLU_TK, CLU_CONC };

struct clu_item {
	const struct gov_ent *e; /* config memory: the job holds a reference on its config */
	enum clu_ctr ctr;
	struct gov_winpos win;
	int64_t delta, limit;    /* this request's part of the counter; the limit */
	int tier;
};

struct clu_job {
	struct jnode node;   /* first: the queues' link */
	int worker;
	uint32_t idx, gen;   /* the waiting client connection */
	struct cfg *cfg;     /* one reference, dropped by whoever frees the job */
	int n;
	struct clu_item it[CLU_ITEMS];
	int refused;         /* 0 admitted; i > 0: item i-1 refused; -1: Redis could not be asked */
};

/* The jobs' way in (clu_evfd wakes the thread) and out (one stack per worker, its eventfd
 * woken); whether the last exchange with Redis worked; how many nodes were alive at the last
 * look (local_share's divisor); this node's name in the fields. */
static jstack clu_inbox;
static jstack *clu_outbox;
static int *clu_wake_fd;
static int clu_evfd = -1;
static _Atomic bool clu_up = true; /* (until a round says otherwise: the first requests ask) */
static _Atomic int clu_nodes = 1;
static _Atomic uint64_t clu_failures, clu_fallbacks;
static char clu_node[80];

/* The next job of a list jstack_take made. */
static struct clu_job *clu_next(const struct clu_job *j) { return (struct clu_job *)j->node.next; }

static void clu_job_free(struct clu_job *j)
{
	cfg_put(j->cfg);
	free(j);
}

/* This node's current value of an item's counter (the local counters include the request). */
static int64_t clu_mine(const struct clu_item *it)
{
	struct gov_slot *s = it->e->slot;
	switch (it->ctr) {
	case CLU_USED: return (int64_t)gov_ctr_get(&s->used, &it->win);
	case CLU_RQ: return (int64_t)gov_ctr_get(&s->rl_req, &it->win);
	case CLU_TK: return (int64_t)gov_ctr_get(&s->rl_tok, &it->win);
	default: return atomic_load(&s->in_flight);
	}
}

/* "{prefix}b:{entity hex}:{window start}" and the like. */
static void clu_key(struct sb *b, const char *prefix, char kind, const struct gov_ent *e, int64_t win)
{
	sb_printf(b, "%s%c:%016llx", prefix, kind, (unsigned long long)e->key);
	if (kind != 'c')
		sb_printf(b, ":%lld", (long long)win);
}

/* The items of an admitted ticket: every limit its tiers have. */
static int clu_items(const struct gov_ticket *t, int64_t now, struct clu_item *it)
{
	int n = 0;
	for (int i = 0; i < t->n; i++) {
		const struct gov_ent *e = t->t[i];
		struct gov_winpos b, rq, tk;
		gov_pos_budget(e, now, &b);
		gov_pos_rate(e, &e->rate.req_win, now, &rq);
		gov_pos_rate(e, &e->rate.tok_win, now, &tk);
		if (e->budget.max >= 0)
			it[n++] = (struct clu_item){ e, CLU_USED, b, t->est, e->budget.max, i };
		if (e->rate.req_max >= 0)
			it[n++] = (struct clu_item){ e, CLU_RQ, rq, 1, e->rate.req_max, i };
		if (e->rate.tok_max >= 0)
			it[n++] = (struct clu_item){ e, CLU_TK, tk, t->tok_res[i], e->rate.tok_max, i };
		if (e->rate.max_conc > 0)
			it[n++] = (struct clu_item){ e, CLU_CONC, { 0, INT64_MAX }, 1, e->rate.max_conc, i };
	}
	return n;
}

/* The refusal an item stands for (a cluster-wide limit). */
static void clu_deny(const struct clu_item *it, int64_t now, struct gov_deny *d)
{
	static const char *const what[] = { "budget", "request rate", "token rate", "concurrency" };
	struct gov_slot *s = it->e->slot;
	int64_t spent = (int64_t)gov_ctr_get(&s->spend, &it->win) +
			(atomic_load(&s->cl.win) == it->win.start ? atomic_load(&s->cl.spend) : 0);
	if (it->ctr == CLU_USED && spent < it->limit) /* reservations in flight fill it: they settle */
		gov_deny_set(d, 429, it->e, "in-flight budget", it->limit, NULL, now);
	else
		gov_deny_set(d, it->ctr == CLU_USED ? 402 : 429, it->e, what[it->ctr], it->limit,
			     it->ctr == CLU_CONC ? NULL : &it->win, now);
}

/* local_share (Redis away): each tier must fit in 1/N of what was left of its limit when
 * this node last wrote its counters: mine + others + (N-1) x (mine - pushed) < limit, i.e.
 * every other node is assumed to spend as fast as this one since then. false: refused (d). */
static bool clu_share_ok(const struct gov_ticket *t, int64_t now, struct gov_deny *d)
{
	struct clu_item it[CLU_ITEMS];
	int n = clu_items(t, now, it), nodes = MAX(1, atomic_load(&clu_nodes));
	for (int i = 0; i < n; i++) {
		struct gov_slot *s = it[i].e->slot;
		if (it[i].ctr != CLU_USED && it[i].ctr != CLU_RQ)
			continue; /* (tokens and concurrency: this node's own limits only) */
		bool used = it[i].ctr == CLU_USED;
		int64_t mine = clu_mine(&it[i]) - it[i].delta;
		bool same = atomic_load(used ? &s->cl.win : &s->cl.rq_win) == it[i].win.start;
		bool pushed_same = atomic_load(used ? &s->cl.p_win : &s->cl.p_rq_win) == it[i].win.start;
		int64_t others = same ? atomic_load(used ? &s->cl.used : &s->cl.rq) : 0;
		int64_t pushed = pushed_same ? atomic_load(used ? &s->cl.p_used : &s->cl.p_rq) : 0;
		if (mine + others + (int64_t)(nodes - 1) * MAX(0, mine - pushed) >= it[i].limit) {
			clu_deny(&it[i], now, d);
			return false;
		}
	}
	return true;
}

/* ---- the connection ---- */

static const char clu_admit_lua[] =
	"local node, res = ARGV[#ARGV], {}\n"
	"for i = 1, #KEYS do\n"
	"  local b = (i - 1) * 5\n"
	"  local suf, mine, delta, limit = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])\n"
	"  local h, others = redis.call('HGETALL', KEYS[i]), 0\n"
	"  for j = 1, #h, 2 do\n"
	"    if h[j] ~= node .. suf and string.sub(h[j], -#suf) == suf then others = others + tonumber(h[j + 1]) end\n"
	"  end\n"
	"  others = math.max(others, tonumber(ARGV[b + 5]))\n"
	"  if others + mine - delta >= limit then return i end\n"
	"end\n"
	"for i = 1, #KEYS do\n"
	"  redis.call('HSET', KEYS[i], node .. ARGV[(i - 1) * 5 + 1], ARGV[(i - 1) * 5 + 2])\n"
	"  redis.call('EXPIRE', KEYS[i], 40 * 86400)\n"
	"end\n"
	"return 0\n";

struct clu_conn {
	int fd;
	char sha[41];            /* the admission script, loaded */
	struct buf in;           /* replies not parsed yet */
	struct arena a;          /* parsed replies; reset every round */
	struct tls_client *tls;  /* owned (malloc): rediss://, else NULL */
	br_sslio_context io;     /* ... blocking I/O over it, bounded by `deadline_ms` */
	uint64_t deadline_ms;
	char why[160];           /* why the last clu_open failed, for the log */
};

/* Wait for fd to be readable (POLLIN) or writable until deadline_ms (CLOCK_MONOTONIC). */
static bool clu_wait(int fd, short ev, uint64_t deadline_ms)
{
	uint64_t now = now_ns() / 1000000;
	struct pollfd p = { fd, ev, 0 };
	return now < deadline_ms && poll(&p, 1, (int)(deadline_ms - now)) == 1 && !(p.revents & (POLLERR | POLLNVAL));
}

/* The socket's bytes, waiting until k->deadline_ms: > 0, or -1 (closed, failed, too late).
 * BearSSL's sslio calls these for rediss://; plain connections too. */
static int clu_sock_read(void *ctx, unsigned char *p, size_t n)
{
	struct clu_conn *k = ctx;
	for (;;) {
		ssize_t got = recv(k->fd, p, n, MSG_DONTWAIT);
		if (got > 0)
			return (int)got;
		if (!(got < 0 && (errno == EAGAIN || errno == EINTR)) || !clu_wait(k->fd, POLLIN, k->deadline_ms))
			return -1;
	}
}

static int clu_sock_write(void *ctx, const unsigned char *p, size_t n)
{
	struct clu_conn *k = ctx;
	for (;;) {
		ssize_t w = send(k->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			return (int)w;
		if (!(w < 0 && (errno == EAGAIN || errno == EINTR)) || !clu_wait(k->fd, POLLOUT, k->deadline_ms))
			return -1;
	}
}

/* Read what the connection has (waiting until k->deadline_ms) onto k->in, with room for at
 * least `room` bytes. false: closed, failed or too late. */
static bool clu_read_more(struct clu_conn *k, size_t room)
{
	if (buf_reserve(&k->in, room) != 0)
		return false;
	unsigned char *dst = (unsigned char *)k->in.p + k->in.len;
	size_t n = MIN(k->in.cap - k->in.len, (size_t)INT_MAX);
	int got = k->tls ? br_sslio_read(&k->io, dst, n) : clu_sock_read(k, dst, n);
	if (got <= 0)
		return false;
	k->in.len += (size_t)got;
	return true;
}

/* Send all of `out`, then read `n` replies into r[] (arena memory). false: the connection is
 * broken or too slow (the caller drops it). */
static bool clu_exchange(struct clu_conn *k, struct str out, struct resp_val *r, int n, uint64_t deadline_ms)
{
	k->deadline_ms = deadline_ms;
	if (k->tls) {
		if (br_sslio_write_all(&k->io, out.p, out.n) != 0 || br_sslio_flush(&k->io) != 0)
			return false;
	} else {
		for (size_t off = 0; off < out.n;) {
			int w = clu_sock_write(k, (const unsigned char *)out.p + off, out.n - off);
			if (w < 0)
				return false;
			off += (size_t)w;
		}
	}
	size_t pos = 0;
	for (int i = 0; i < n;) {
		long used = resp_parse(&k->a, k->in.p + pos, k->in.len - pos, &r[i]);
		if (used > 0) {
			pos += (size_t)used, i++;
			continue;
		}
		if (used < 0 || !clu_read_more(k, 65536))
			return false;
	}
	buf_consume(&k->in, pos);
	return true;
}

static void clu_close(struct clu_conn *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->in.len = 0;
	free(k->tls);
	k->tls = NULL;
}

/* Why an exchange of clu_open failed: the TLS engine's error, a Redis error reply, or none. */
static void clu_open_failed(struct clu_conn *k, const struct resp_val *r, int n)
{
	int tls_err = k->tls ? br_ssl_engine_last_error(&k->tls->cc.eng) : 0;
	snprintf(k->why, sizeof(k->why), "no answer within 1 s, or the connection was closed");
	if (tls_err)
		snprintf(k->why, sizeof(k->why), "TLS: %s", tls_error_text(tls_err));
	for (int i = 0; r && !tls_err && i < n; i++)
		if (r[i].type == RESP_ERR) { /* (AUTH's "WRONGPASS ...", "NOAUTH ...", SELECT's range) */
			snprintf(k->why, sizeof(k->why), "Redis answered %.*s", (int)MIN(r[i].s.n, 120), r[i].s.p);
			break;
		}
	for (char *p = k->why; *p; p++) /* (a line on stderr: nothing from the network unprintable) */
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	clu_close(k);
}

/* Connect, AUTH, then SELECT and load the script — or, for the subscriber (`sub`), SUBSCRIBE to
 * {prefix}config. false on any failure (k->why says which; the caller logs once per outage). */
static bool clu_open(struct clu_conn *k, const struct cfg_cluster *cc, bool sub)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char port[8], db[12];
	snprintf(port, sizeof(port), "%d", cc->port);
	snprintf(db, sizeof(db), "%d", cc->db);
	k->why[0] = 0;
	if (getaddrinfo(cc->host, port, &hints, &ai) != 0 || !ai) {
		snprintf(k->why, sizeof(k->why), "the host name does not resolve");
		return false;
	}
	k->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	uint64_t deadline = now_ns() / 1000000 + 1000;
	int rc = k->fd < 0 ? -1 : connect(k->fd, ai->ai_addr, ai->ai_addrlen), err = 0;
	int cerr = rc != 0 ? errno : 0;
	freeaddrinfo(ai);
	if (rc != 0 && !(k->fd >= 0 && cerr == EINPROGRESS && clu_wait(k->fd, POLLOUT, deadline) &&
			 getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &(socklen_t){ sizeof(err) }) == 0 && !err)) {
		snprintf(k->why, sizeof(k->why), "connect: %s", err ? strerror(err) : cerr != EINPROGRESS
			 ? strerror(cerr) : "no answer within 1 s");
		clu_close(k);
		return false;
	}
	int one = 1;
	setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cc->tls) { /* rediss://: the handshake happens with the first write */
		if (!(k->tls = malloc(sizeof(*k->tls)))) {
			snprintf(k->why, sizeof(k->why), "out of memory");
			clu_close(k);
			return false;
		}
		tls_client_start(k->tls, cc->anchors, cc->insecure, cc->host, NULL);
		br_sslio_init(&k->io, &k->tls->cc.eng, clu_sock_read, k, clu_sock_write, k);
	}
	struct sb out;
	sb_init(&out, &k->a, 4096);
	int n = 0;
	if (cc->pass) {
		struct str auth[3] = { STR("AUTH"), { cc->user ? cc->user : "", cc->user ? strlen(cc->user) : 0 },
				       { cc->pass, strlen(cc->pass) } };
		resp_cmd(&out, cc->user ? 3 : 2, cc->user ? auth : (struct str[]){ auth[0], auth[2] });
		n++;
	}
	char chan[96];
	snprintf(chan, sizeof(chan), "%sconfig", cc->prefix);
	if (sub) {
		resp_cmd(&out, 2, (struct str[]){ STR("SUBSCRIBE"), { chan, strlen(chan) } });
		n++;
	} else {
		resp_cmd(&out, 2, (struct str[]){ STR("SELECT"), { db, strlen(db) } });
		resp_cmd(&out, 3, (struct str[]){ STR("SCRIPT"), STR("LOAD"), { clu_admit_lua, sizeof(clu_admit_lua) - 1 } });
		n += 2;
	}
	struct resp_val r[3];
	bool answered = !out.oom && clu_exchange(k, sb_view(&out), r, n, deadline), ok = answered;
	for (int i = 0; ok && i < n; i++)
		ok = r[i].type != RESP_ERR;
	if (ok && sub)
		ok = r[n - 1].type == RESP_ARR;
	else if (ok && r[n - 1].type == RESP_BULK && r[n - 1].s.n == 40)
		memcpy(k->sha, r[n - 1].s.p, 40), k->sha[40] = 0;
	else
		ok = false;
	if (!ok)
		clu_open_failed(k, answered ? r : NULL, n);
	arena_reset(&k->a);
	return ok;
}

/* ---- the thread's rounds ---- */

static void clu_bulk(struct sb *out, const char *p, size_t n)
{
	sb_printf(out, "$%zu\r\n", n);
	sb_put(out, p, n);
	sb_puts(out, "\r\n");
}

static void clu_bulkf(struct sb *out, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	clu_bulk(out, tmp, (size_t)MIN(MAX(n, 0), (int)sizeof(tmp) - 1));
}

static const char clu_suffix[] = { 'u', 'r', 'k', 'c' };
static const char clu_kind[] = { 'b', 'r', 'k', 'c' };

/* What this node last read of the other nodes' part of an item's counter: a floor for
 * Redis's own sum, so a Redis that lost its data cannot grant a spent limit again before the
 * nodes have written theirs back (in-flight counts excepted: they fall quickly). */
static int64_t clu_others(const struct clu_item *it)
{
	struct gov_slot *s = it->e->slot;
	switch (it->ctr) {
	case CLU_USED: return atomic_load(&s->cl.win) == it->win.start ? atomic_load(&s->cl.used) : 0;
	case CLU_RQ: return atomic_load(&s->cl.rq_win) == it->win.start ? atomic_load(&s->cl.rq) : 0;
	case CLU_TK: return atomic_load(&s->cl.tk_win) == it->win.start ? atomic_load(&s->cl.tk) : 0;
	default: return 0;
	}
}

/* EVALSHA of one admission: per item its key, then suffix, mine, delta, limit, the others'
 * floor; then the node. */
static void clu_put_admit(struct sb *out, const struct clu_conn *k, const char *prefix, const struct clu_job *j)
{
	sb_printf(out, "*%d\r\n", 3 + j->n * 6 + 1);
	clu_bulk(out, "EVALSHA", 7);
	clu_bulk(out, k->sha, 40);
	clu_bulkf(out, "%d", j->n);
	for (int i = 0; i < j->n; i++) {
		struct sb key;
		char kb[160];
		key = (struct sb){ .p = kb, .cap = sizeof(kb) };
		clu_key(&key, prefix, clu_kind[j->it[i].ctr], j->it[i].e, j->it[i].win.start);
		clu_bulk(out, kb, key.len);
	}
	for (int i = 0; i < j->n; i++) {
		clu_bulkf(out, ":%c", clu_suffix[j->it[i].ctr]);
		clu_bulkf(out, "%lld", (long long)clu_mine(&j->it[i]));
		clu_bulkf(out, "%lld", (long long)j->it[i].delta);
		clu_bulkf(out, "%lld", (long long)j->it[i].limit);
		clu_bulkf(out, "%lld", (long long)clu_others(&j->it[i]));
	}
	clu_bulk(out, clu_node, strlen(clu_node));
}

/* An entity's counters written (HSET, EXPIRE) and, on a full round, read back (HGETALL):
 * the commands for its budget key and its rate keys. Returns the replies they make. */
static int clu_put_sync(struct sb *out, const char *prefix, const struct gov_ent *e, int64_t now, bool full)
{
	struct gov_slot *s = e->slot;
	struct gov_winpos b, rq, tk;
	int n = 0;
	char kb[160];
	gov_pos_budget(e, now, &b);
	gov_pos_rate(e, &e->rate.req_win, now, &rq);
	gov_pos_rate(e, &e->rate.tok_win, now, &tk);
	const struct { char kind; struct gov_winpos *w; bool on; } keys[] = {
		{ 'b', &b, true }, { 'r', &rq, e->rate.req_max >= 0 }, { 'k', &tk, e->rate.tok_max >= 0 },
		{ 'c', &b, e->rate.max_conc > 0 } };
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		if (!keys[i].on)
			continue;
		struct sb key = { .p = kb, .cap = sizeof(kb) };
		clu_key(&key, prefix, keys[i].kind, e, keys[i].w->start);
		int64_t v[4] = { (int64_t)gov_ctr_get(&s->used, &b), (int64_t)gov_ctr_get(&s->spend, &b),
				 (int64_t)gov_ctr_get(&s->tokens, &b), (int64_t)gov_ctr_get(&s->requests, &b) };
		const char *suf = i == 0 ? "ustq" : i == 1 ? "r" : i == 2 ? "k" : "c";
		if (i == 1)
			v[0] = (int64_t)gov_ctr_get(&s->rl_req, &rq);
		if (i == 2)
			v[0] = (int64_t)gov_ctr_get(&s->rl_tok, &tk);
		if (i == 3)
			v[0] = atomic_load(&s->in_flight);
		sb_printf(out, "*%zu\r\n", 2 + 2 * strlen(suf));
		clu_bulk(out, "HSET", 4);
		clu_bulk(out, kb, key.len);
		for (size_t f = 0; suf[f]; f++) {
			clu_bulkf(out, "%s:%c", clu_node, suf[f]);
			clu_bulkf(out, "%lld", (long long)v[f]);
		}
		sb_puts(out, "*3\r\n$6\r\nEXPIRE\r\n");
		clu_bulk(out, kb, key.len);
		clu_bulkf(out, "%d", 40 * 86400);
		n += 2;
		if (full) {
			sb_puts(out, "*2\r\n$7\r\nHGETALL\r\n");
			clu_bulk(out, kb, key.len);
			n++;
		}
	}
	return n;
}

/* The other nodes' sums in an HGETALL reply, by field suffix ("NODE:u" → sum['u']). */
static void clu_sums(const struct resp_val *r, int64_t sum[128])
{
	memset(sum, 0, sizeof(int64_t) * 128);
	if (r->type != RESP_ARR)
		return;
	size_t own = strlen(clu_node);
	for (int i = 0; i + 1 < r->n; i += 2) {
		struct str f = r->a[i].s, v = r->a[i + 1].s;
		long long x;
		if (f.n < 3 || f.p[f.n - 2] != ':' || (f.n - 2 == own && memcmp(f.p, clu_node, own) == 0) ||
		    !resp_num(v.p, v.n, 0, GOV_MAX_MICROS, &x))
			continue;
		sum[(unsigned char)f.p[f.n - 1] & 127] += x;
	}
}

/* A full round's replies for one entity (clu_put_sync's order): the others' sums into its
 * slot, and what this node wrote remembered as pushed. Returns the replies taken. */
static int clu_take_sync(const struct resp_val *r, const struct gov_ent *e, int64_t now)
{
	struct gov_slot *s = e->slot;
	struct gov_winpos b, rq;
	int64_t sum[128];
	int n = 0;
	gov_pos_budget(e, now, &b);
	gov_pos_rate(e, &e->rate.req_win, now, &rq);
	clu_sums(&r[2], sum);
	atomic_store(&s->cl.used, sum['u']), atomic_store(&s->cl.spend, sum['s']);
	atomic_store(&s->cl.tokens, sum['t']), atomic_store(&s->cl.requests, sum['q']);
	atomic_store(&s->cl.win, b.start);
	atomic_store(&s->cl.p_used, (int64_t)gov_ctr_get(&s->used, &b)), atomic_store(&s->cl.p_win, b.start);
	n += 3;
	if (e->rate.req_max >= 0) {
		clu_sums(&r[n + 2], sum);
		atomic_store(&s->cl.rq, sum['r']), atomic_store(&s->cl.rq_win, rq.start);
		atomic_store(&s->cl.p_rq, (int64_t)gov_ctr_get(&s->rl_req, &rq)), atomic_store(&s->cl.p_rq_win, rq.start);
		n += 3;
	}
	if (e->rate.tok_max >= 0) {
		struct gov_winpos tk;
		gov_pos_rate(e, &e->rate.tok_win, now, &tk);
		clu_sums(&r[n + 2], sum);
		atomic_store(&s->cl.tk, sum['k']), atomic_store(&s->cl.tk_win, tk.start);
		n += 3;
	}
	if (e->rate.max_conc > 0) {
		clu_sums(&r[n + 2], sum);
		atomic_store(&s->cl.conc, sum['c']);
		n += 3;
	}
	return n;
}

struct clu_state {
	struct clu_conn k;
	struct clu_conn sub;                /* SUBSCRIBEd to {prefix}config: a message = look now */
	uint64_t sub_retry_ms;
	uint32_t gen;                       /* cfg_generation seen: a new local config = look now */
	uint64_t retry_ms, backoff_ms;      /* reconnecting: when next, and the pause after that */
	uint64_t push_ms, full_ms, cfg_ms;  /* the next dirty push, full round, config look */
	uint64_t cfg_seen;                  /* the local config's revision when last in step */
	uint64_t cfg_bad;                   /* a revision in Redis that could not be installed here */
	bool cfg_started;                   /* (at start the cluster's config wins over ours) */
	bool down_logged;
};

/* The jobs' verdicts go back to their workers. */
static void clu_answer(struct clu_job *j, const struct resp_val *r)
{
	for (struct clu_job *next; j; j = next) {
		next = clu_next(j);
		j->refused = !r ? -1 : r->type == RESP_INT && r->i >= 0 && r->i <= j->n ? (int)r->i : -1;
		r = r ? r + 1 : NULL;
		jstack_push(&clu_outbox[j->worker], &j->node, clu_wake_fd[j->worker]);
	}
}

static void clu_set_up(struct clu_state *st, bool up, const struct cfg_cluster *cc)
{
	atomic_store(&clu_up, up);
	if (!up && !st->down_logged) {
		fprintf(stderr, "bifrost: cluster: Redis at %s:%d unreachable (%s); admission by on_redis_down (%s) "
			"until it is back\n", cc->host, cc->port,
			st->k.fd < 0 && st->k.why[0] ? st->k.why : "the connection broke, or an answer took longer than timeout_ms",
			cc->down == CLU_DOWN_SHARE ? "local_share" : cc->down == CLU_DOWN_ALLOW ? "allow" : "deny");
		st->down_logged = true;
	}
	if (up && st->down_logged) {
		fprintf(stderr, "bifrost: cluster: Redis at %s:%d is back; counters pushed again\n", cc->host, cc->port);
		st->down_logged = false;
		st->full_ms = 0; /* reconcile at once: every counter written again */
	}
}

/* The members of a config that are this node's own (its address, threads, state, link to
 * the cluster): never written to {prefix}config, and kept when another node's is installed. */
static bool clu_own_member(struct str key)
{
	return str_eq(key, "listen") || str_eq(key, "workers") || str_eq(key, "data_dir") || str_eq(key, "tls") ||
	       str_eq(key, "cluster");
}

/* The config's top-level members, own ones (own = true) or shared ones, comma-joined into out. */
static bool clu_members(struct arena *a, const char *text, size_t n, bool own, struct sb *out)
{
	struct json j;
	if (json_parse(&j, a, text, n) != 0 || j.tok[0].type != JSMN_OBJECT)
		return false;
	for (int m = 0, i = 1; m < j.tok[0].size; m++, i = json_skip(&j, i + 1)) {
		struct str k = json_raw(&j, i);
		if (clu_own_member((struct str){ k.p + 1, k.n - 2 }) != own)
			continue;
		sb_put(out, ",", out->len > 1);
		bool in_str = false; /* without the whitespace between tokens: the same text however printed */
		for (size_t p = json_beg(&j, i), e = json_end(&j, i + 1); p < e; p++) {
			char ch = j.s[p];
			if (!in_str && json_ws(ch))
				continue;
			sb_put(out, &ch, 1);
			if (in_str && ch == '\\')
				sb_put(out, &j.s[++p], 1);
			else if (ch == '"')
				in_str = !in_str;
		}
	}
	return !out->oom;
}

/* Install another node's shared config here, with this node's own members. false: it is
 * not valid here (said on stderr), or the file cannot be written. */
static bool clu_install(struct clu_state *st, const struct cfg *c, struct str shared, uint64_t rev)
{
	struct sb m, pretty, errs;
	char err[PATH_MAX + 80];
	sb_init(&m, &st->k.a, shared.n + 1024);
	sb_init(&pretty, &st->k.a, shared.n * 2 + 2048);
	sb_init(&errs, &st->k.a, 1024);
	sb_puts(&m, "{");
	bool ok = clu_members(&st->k.a, c->text, strlen(c->text), true, &m);
	ok = ok && clu_members(&st->k.a, shared.p, shared.n, false, &m); /* (it joins with a comma) */
	sb_puts(&m, "}");
	mgmt_pretty(sb_view(&m), &pretty);
	char *text = ok && !pretty.oom ? strndup(pretty.p, pretty.len) : NULL;
	struct cfg *n = text ? cfg_parse(text, pretty.len, mgmt_cfg_path, &errs) : NULL;
	if (n && gov_region && gov_bind(n->gov, gov_region, n->cluster ? 0 : time(NULL)) != 0) {
		cfg_free(n);
		n = NULL;
	}
	if (!n) {
		fprintf(stderr, "bifrost: cluster: the config in Redis (revision %016llx) is not valid here:\n%.*s",
			(unsigned long long)rev, (int)errs.len, errs.p ? errs.p : "");
		return false;
	}
	if (!mgmt_install(n, sb_view(&pretty), err, sizeof(err))) {
		fprintf(stderr, "bifrost: cluster: %s\n", err);
		return false;
	}
	fprintf(stderr, "bifrost: cluster: config revision %016llx installed from Redis\n", (unsigned long long)rev);
	return true;
}

/* This node's config, in step with {prefix}config (its shared members; the revision is their
 * hash): a local change (an admin API edit, a SIGHUP) is written there; a newer revision there
 * is installed here. `rev`: the reply to GET {prefix}config_rev. */
static void clu_config(struct clu_state *st, const struct cfg *c, const struct resp_val *rev, uint64_t dl)
{
	const struct cfg_cluster *cc = c->cluster;
	struct sb shared, out;
	struct resp_val r[3];
	if (!c->text || !mgmt_cfg_path || !c->source || strcmp(c->source, mgmt_cfg_path) != 0)
		return; /* (a config from the environment has no file to keep in step) */
	sb_init(&shared, &st->k.a, strlen(c->text) + 16);
	sb_puts(&shared, "{");
	if (!clu_members(&st->k.a, c->text, strlen(c->text), false, &shared))
		return;
	sb_puts(&shared, "}");
	uint64_t mine = fnv1a(FNV_BASIS, shared.p, shared.len), theirs = 0;
	if (!st->cfg_started) /* a node that starts takes the cluster's config (its file may be stale) */
		st->cfg_seen = mine, st->cfg_started = true;
	bool remote = rev->type == RESP_BULK && rev->s.n == 16 && sscanf(rev->s.p, "%16llx", (unsigned long long *)&theirs) == 1;
	sb_init(&out, &st->k.a, shared.len + 256);
	if (!remote || (mine != st->cfg_seen && mine != theirs)) { /* ours changed: it is the cluster's */
		sb_puts(&out, "*3\r\n$3\r\nSET\r\n");
		clu_bulkf(&out, "%sconfig", cc->prefix);
		clu_bulk(&out, shared.p, shared.len);
		sb_puts(&out, "*3\r\n$3\r\nSET\r\n");
		clu_bulkf(&out, "%sconfig_rev", cc->prefix);
		clu_bulkf(&out, "%016llx", (unsigned long long)mine);
		sb_puts(&out, "*3\r\n$7\r\nPUBLISH\r\n"); /* the others look at once */
		clu_bulkf(&out, "%sconfig", cc->prefix);
		clu_bulkf(&out, "%016llx", (unsigned long long)mine);
		if (!out.oom && clu_exchange(&st->k, sb_view(&out), r, 3, dl))
			st->cfg_seen = mine;
		return;
	}
	st->cfg_seen = mine;
	if (theirs == mine || theirs == st->cfg_bad) /* (a bad one is not tried again until it changes) */
		return;
	sb_puts(&out, "*2\r\n$3\r\nGET\r\n");
	clu_bulkf(&out, "%sconfig", cc->prefix);
	if (out.oom || !clu_exchange(&st->k, sb_view(&out), r, 1, dl) || r[0].type != RESP_BULK)
		return;
	if (clu_install(st, c, r[0].s, theirs))
		st->cfg_seen = theirs; /* (what the file now holds: the next look sees it unchanged) */
	else
		st->cfg_bad = theirs;  /* ours stays as it was, and is not taken for a change */
}

/* The full round's node registry: this node's heartbeat, and how many beat in the last 10 s. */
static int clu_put_nodes(struct sb *out, const char *prefix, int64_t now)
{
	sb_puts(out, "*4\r\n$4\r\nHSET\r\n");
	clu_bulkf(out, "%snodes", prefix);
	clu_bulk(out, clu_node, strlen(clu_node));
	clu_bulkf(out, "%lld", (long long)now);
	sb_puts(out, "*2\r\n$7\r\nHGETALL\r\n");
	clu_bulkf(out, "%snodes", prefix);
	return 2;
}

static void clu_take_nodes(const struct resp_val *r, int64_t now)
{
	int n = 0;
	long long t;
	for (int i = 0; r->type == RESP_ARR && i + 1 < r->n; i += 2)
		n += resp_num(r->a[i + 1].s.p, r->a[i + 1].s.n, 0, LLONG_MAX, &t) && t >= now - 10;
	atomic_store(&clu_nodes, MAX(1, n));
}

/* One round: the jobs' admissions, the counters (those settled since the last push; every
 * one, read back too, on a full round), the config's revision — one pipeline, one round
 * trip. false: the connection broke (the jobs are answered -1 by the caller). */
static bool clu_round(struct clu_state *st, const struct cfg *c, struct clu_job *jobs, uint64_t now_ms)
{
	const struct cfg_cluster *cc = c->cluster;
	const struct gov *g = c->gov;
	int64_t now = time(NULL);
	bool full = now_ms >= st->full_ms, push = full || now_ms >= st->push_ms, look = now_ms >= st->cfg_ms;
	struct sb out;
	sb_init(&out, &st->k.a, 16384);
	int nj = 0, n = 0, *synced = arena_new(&st->k.a, int, g ? (size_t)g->nall + 1 : 1), ns = 0;
	for (struct clu_job *j = jobs; j; j = clu_next(j), nj++)
		clu_put_admit(&out, &st->k, cc->prefix, j);
	n = nj;
	for (int i = 0; push && synced && g && i < g->nall; i++) {
		struct gov_slot *s = g->all[i]->slot;
		if (s && ((atomic_load_explicit(&s->cl.dirty, memory_order_relaxed) && atomic_exchange(&s->cl.dirty, 0)) ||
			  full)) { /* (a load first: no cache line is written for an idle entity) */
			synced[ns++] = i;
			n += clu_put_sync(&out, cc->prefix, g->all[i], now, full);
		}
	}
	int nodes_at = n;
	if (full)
		n += clu_put_nodes(&out, cc->prefix, now);
	int cfg_at = n;
	if (look) {
		sb_puts(&out, "*2\r\n$3\r\nGET\r\n");
		clu_bulkf(&out, "%sconfig_rev", cc->prefix);
		n++;
	}
	struct resp_val *r = arena_new(&st->k.a, struct resp_val, (size_t)n + 1);
	uint64_t dl = now_ms + 2000;
	if (!synced || !r || out.oom || (n && !clu_exchange(&st->k, sb_view(&out), r, n, dl)))
		return false;
	for (int i = 0; i < nj; i++) /* Redis lost its scripts (SCRIPT FLUSH): reconnect, load it again */
		if (r[i].type == RESP_ERR && str_starts(r[i].s, "NOSCRIPT"))
			clu_close(&st->k);
	clu_answer(jobs, nj ? r : NULL);
	for (int i = 0, at = nj; full && i < ns; i++)
		at += clu_take_sync(&r[at], g->all[synced[i]], now);
	if (full)
		clu_take_nodes(&r[nodes_at + 1], now);
	if (look)
		clu_config(st, c, &r[cfg_at], dl);
	st->push_ms = push ? now_ms + 100 : st->push_ms;
	st->full_ms = full ? now_ms + 1000 : st->full_ms;
	st->cfg_ms = look ? now_ms + 500 : st->cfg_ms; /* (a message on the channel brings it forward) */
	return true;
}

/* The subscriber's bytes: every message on {prefix}config makes the next round look at the
 * config revision. false: the link broke (polling every second still finds changes). */
static bool clu_sub_drain(struct clu_state *st)
{
	struct clu_conn *k = &st->sub;
	struct resp_val v;
	long used;
	size_t pos = 0;
	k->deadline_ms = now_ns() / 1000000 + 50;
	if (!clu_read_more(k, 4096))
		return false;
	while ((used = resp_parse(&k->a, k->in.p + pos, k->in.len - pos, &v)) > 0) {
		pos += (size_t)used;
		st->cfg_ms = 0;
	}
	buf_consume(&k->in, pos);
	arena_reset(&k->a);
	return used == 0;
}

/* The thread: wake on a job, a message on the config channel, or every 20 ms; keep the
 * connections (reconnecting with a backoff from 100 ms to 2 s); run a round. */
static void *clu_run(void *arg)
{
	(void)arg;
	struct clu_state st = { .k.fd = -1, .sub.fd = -1, .backoff_ms = 100 };
	arena_init(&st.k.a, NULL);
	arena_init(&st.sub.a, NULL);
	st.k.in.limit = 64u << 20;
	st.sub.in.limit = 1u << 20;
	for (;;) {
		struct pollfd p[2] = { { clu_evfd, POLLIN, 0 }, { st.sub.fd, POLLIN, 0 } };
		uint64_t v, now_ms;
		if (poll(p, st.sub.fd >= 0 ? 2 : 1, 20) > 0 && (p[0].revents & POLLIN) && read(clu_evfd, &v, sizeof(v)) < 0)
			v = 0;
		if (st.sub.fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !clu_sub_drain(&st))
			clu_close(&st.sub);
		struct cfg *c = cfg_get();
		struct clu_job *jobs = (struct clu_job *)jstack_take(&clu_inbox);
		now_ms = now_ns() / 1000000;
		if (atomic_load(&cfg_generation) != st.gen) /* an admin API edit, a SIGHUP: tell the others */
			st.gen = atomic_load(&cfg_generation), st.cfg_ms = 0;
		if (c->cluster && st.k.fd >= 0 && st.sub.fd < 0 && now_ms >= st.sub_retry_ms &&
		    !clu_open(&st.sub, c->cluster, true))
			st.sub_retry_ms = now_ms + 2000;
		if (c->cluster && st.k.fd < 0 && now_ms >= st.retry_ms) {
			if (clu_open(&st.k, c->cluster, false)) {
				st.backoff_ms = 100;
			} else {
				st.retry_ms = now_ms + st.backoff_ms;
				st.backoff_ms = MIN(st.backoff_ms * 2, 2000);
			}
		}
		bool ok = c->cluster && st.k.fd >= 0 && clu_round(&st, c, jobs, now_ms);
		if (!ok) {
			if (c->cluster)
				atomic_fetch_add(&clu_failures, 1);
			if (c->cluster && st.k.fd >= 0)
				clu_close(&st.k);
			clu_answer(jobs, NULL);
		}
		if (c->cluster)
			clu_set_up(&st, ok, c->cluster);
		arena_reset(&st.k.a);
		cfg_put(c);
	}
	return NULL;
}

/* This node's name and the queues (main, before the workers: they push jobs from the start). */
static void clu_init(const struct cfg *c, int nw, const int *wake_fds)
{
	char host[64] = "node";
	const char *listen = c->listen && *c->listen ? strrchr(c->listen, ':') : NULL;
	if (c->cluster && c->cluster->node)
		snprintf(clu_node, sizeof(clu_node), "%s", c->cluster->node);
	else
		gethostname(host, sizeof(host) - 1), snprintf(clu_node, sizeof(clu_node), "%s-%s", host, listen ? listen + 1 : "0");
	for (char *p = clu_node; *p; p++)
		if (*p == ':' || (unsigned char)*p <= ' ')
			*p = '_';
	clu_outbox = calloc((size_t)nw, sizeof(*clu_outbox));
	clu_wake_fd = malloc(sizeof(int) * (size_t)nw);
	clu_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!clu_outbox || !clu_wake_fd || clu_evfd < 0)
		die("cannot set up the cluster thread");
	memcpy(clu_wake_fd, wake_fds, sizeof(int) * (size_t)nw);
}

/* The thread (main, once start-up no longer reads the first config: it may install another). */
static void clu_start(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, clu_run, NULL) != 0)
		die("cannot start the cluster thread");
	pthread_detach(t);
}

/* ======================================================================== *
 * 20. loop_/slot_/timer_/log_ — the worker: ring, slots, timers, sends.    *
 *                                                                          *
 * One worker per core; everything below belongs to exactly one worker      *
 * thread and is touched by no other. `user_data` = slot | generation | op, *
 * so a completion for a slot that was reused is recognised and dropped. A  *
 * slot is freed only when its count of operations in the kernel is zero.  *
 *                                                                          *
 * Ownership invariant: memory that an in-flight send reads stays owned    *
 * until that send completes. A send that points into another slot's       *
 * memory (the client relaying the upstream's `in` zero-copy, the upstream *
 * sending the client's body) borrows that slot (slot_borrow): the lender  *
 * counts it in `lent`, and closing the lender defers its free (buffers,   *
 * arena, TLS engine) until the borrowing send is back (slot_borrow_end).  *
 * A closing slot's own arena and buffers are likewise kept until its own  *
 * operations are back. slot_free asserts both counts are zero.            *
 *                                                                          *
 * A connection with a server TLS engine (stls) sends through it: loop_send *
 * copies the queued plaintext into the engine as it has room and sends    *
 * its records one at a time; the send completes when both are done.      *
 *                                                                          *
 * Contract for callers: loop_sqe never fails (it submits to make room);    *
 * slot_close may be called any number of times; nothing here blocks.       *
 * ======================================================================== */

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CONNECT, OP_LINK_TIMEOUT, OP_CANCEL, OP_LOG, OP_WAKE };
enum kind { K_FREE, K_CLIENT, K_UP, K_KINDS };

#define UD(idx, gen, op) ((uint64_t)(idx) << 32 | (uint64_t)((gen) & 0xffffffu) << 8 | (op))
#define UD_IDX(ud) ((uint32_t)((ud) >> 32))
#define UD_GEN(ud) ((uint32_t)(((ud) >> 8) & 0xffffffu))
#define UD_OP(ud) ((int)((ud) & 0xff))
#define UD_LISTENER 0xffffffffu

#define SLAB_MAX 65536
#define WHEEL_SLOTS 1024
#define WHEEL_MS 16
#define BR_COUNT 512
#define BR_SIZE 8192
#define BR_GROUP 1
#define POOL_MAX 64
#define POOL_IDLE_MAX 512
#define SEND_IOV_MAX 72
#define INBUF 16384
#define INBUF_CACHE 256
#define HELD_MAX 4096

struct request;

/* Client state (K_CLIENT). */
enum cstate { CS_HEAD, CS_BODY, CS_BUSY, CS_CLOSE_AFTER };

/* Upstream state (K_UP). */
enum ustate { US_CONNECTING, US_SENDING, US_HEAD, US_BODY, US_IDLE };

struct pool {
	struct dns_entry *dns;            /* global */
	const struct tls_anchors *ta;     /* NULL for plain */
	bool tls, insecure;
	char sni[256];
	uint32_t idle[POOL_IDLE_MAX];     /* slot indexes, LIFO */
	uint32_t idle_gen[POOL_IDLE_MAX];
	int nidle;
	unsigned rr;                      /* next address to try */
	br_ssl_session_parameters sess;   /* for resumption */
	bool have_sess;
};

/* A slot of the worker's table: the fields every kind has, then the kind's own. */
struct conn {
	uint32_t gen;
	uint8_t kind;
	bool closing, recv_busy, send_busy, recv_multishot;
	bool held;         /* closing, but kept linked to its peer by its kind (see slot_ops) */
	int fd;
	int inflight;      /* operations in the kernel for this slot */
	uint64_t sent_ms;  /* when the current send began or last made progress */
	int lent;          /* sends of other slots reading this slot's memory */
	uint32_t lend, lend_gen; /* the slot this slot's send reads from, or UINT32_MAX */
	uint32_t next_free;
	/* timer wheel (intrusive, slot indexes; UINT32_MAX = none) */
	uint64_t deadline_ms;
	uint32_t t_prev, t_next;
	int t_slot;
	struct buf in;     /* owned: received bytes (client: requests; up: plaintext response) */
	struct iovec siov[SEND_IOV_MAX]; /* current send; pointers borrowed from arena/in */
	int sn, si;        /* iov count, first unsent */
	struct msghdr mh;  /* the send in flight (one per socket) */
	uint32_t peer, peer_gen; /* the paired conn, or UINT32_MAX */
	struct tls_server *stls; /* owned (malloc): an HTTPS client's engine (sends go through it), or NULL */
	bool tls_rec_busy;       /* ... and one of its records is being sent */
	struct arena arena;  /* client: the request's; up: the connect address, the answer's head */
	struct http_chunked ch; /* client: the request body's decoder; up: the answer's */
	union {
		struct { /* K_CLIENT */
			enum cstate cs;
			size_t scanned;       /* head bytes already searched */
			struct buf pend;      /* owned: bytes that arrived while `in` was pinned */
			struct arena scratch; /* per stream batch: parsing upstream events */
			struct request *rq;   /* arena */
			size_t body_src, body_dst;
			char peer_addr[64];   /* "ip:port", looked up once, for the log store */
			struct buf tls_in;    /* owned: ciphertext the engine has not taken yet */
			struct cfg_hold *tls_hold; /* the config whose certificate the handshake uses */
		};
		struct { /* K_UP */
			enum ustate us;
			struct pool *pool;       /* worker-owned */
			struct tls_client *tls;  /* owned (malloc), NULL for plain */
			struct __kernel_timespec connect_ts; /* the linked connect timeout */
			bool reused, hs_done;
			size_t tls_copied;       /* request bytes handed to the engine */
			struct http_msg *resp;   /* `arena` */
			size_t uscanned;
			long long body_left;     /* Content-Length remaining; -1 chunked/close */
			bool resp_chunked, resp_close, resp_done;
			size_t body_start, dec_pos, dec_end, ev_pos; /* offsets in `in` (ev_pos: in evb if evs) */
			bool evs;                /* the answer is Bedrock's eventstream: its frames, */
			size_t fr_pos;           /* ... from here in `in`, are decoded into SSE events */
			struct buf evb;          /* ... in evb (owned), which the client reads instead */
			bool paused;             /* stream backpressure: client send in flight */
			uint64_t total_deadline_ms; /* the attempt's total_timeout_ms, absolute; 0 = none */
		};
	};
};

/*
 * A connection kind's handlers: the loop calls back through its row and knows nothing else
 * of the kinds (a new kind, such as inbound TLS or a Redis link, is a new row). The rows are
 * defined with their handlers, at the end of conn_.
 */
struct worker;
struct slot_ops {
	void (*complete)(struct worker *w, struct conn *c, int op, struct io_uring_cqe *cqe);
	void (*timeout)(struct worker *w, struct conn *c); /* its deadline passed */
	/* slot_close began; true: the slot stays linked to its peer and holds itself (lent), as
	 * a request that outlives its client does */
	bool (*closing)(struct worker *w, struct conn *c);
	bool (*idle)(const struct conn *c);                /* a drain may close it now */
	void (*freeing)(struct worker *w, struct conn *c); /* release the kind's own memory */
};
static const struct slot_ops slot_ops[K_KINDS];

/* The listener's events: a new client socket, and the journal committer's wake-up. */
struct loop_hooks {
	void (*accept)(struct worker *w, int fd, int tls); /* tls: it came in on the HTTPS listener */
	void (*wake)(struct worker *w);
};
static const struct loop_hooks loop_hooks;

struct cfg_hold {
	struct cfg *cfg;  /* one reference */
	long live;        /* requests of this worker using it */
	struct cfg_hold *next; /* retired holds waiting for live == 0 */
};

struct worker {
	int id;
	pthread_t thread;
	struct io_uring ring;
	int lfd;
	int tls_lfd;                  /* the HTTPS listener, or -1 */
	int tls_conns;                /* client connections with a TLS engine (each ~34 KB) */
	br_ssl_session_cache_lru *tls_cache; /* owned: sessions to resume */
	struct io_uring_buf_ring *br; /* provided receive buffers */
	char *br_mem;
	struct conn *slab;            /* SLAB_MAX entries, mmap'd lazily */
	uint32_t nslab, free_head;
	uint32_t wheel[WHEEL_SLOTS];
	uint64_t wheel_tick;          /* next tick whose slot is due */
	uint64_t now_ms;
	struct pool pools[POOL_MAX];
	int npools;
	struct arena_cache acache;
	struct cfg_hold *hold;        /* current config */
	struct cfg_hold *retired;
	uint32_t cfg_gen;
	uint64_t rng;
	struct metrics m;
	struct log_state *log;
	struct ldb_ring *ldb;         /* owned: this worker's records for the log store */
	int nclients;                 /* open client connections */
	long active;                  /* requests in progress */
	char *inbuf[INBUF_CACHE];     /* owned: recycled INBUF-sized input buffers */
	int ninbuf;
	struct jrnl_ring *jring;      /* owned: this worker's charges on their way to disk */
	bool kick_committer;          /* a held response waits: wake the committer this turn */
	int evfd;                     /* the committer's "records are durable" wake-up */
	uint64_t evval;               /* read buffer for evfd */
	struct { uint32_t idx, gen; } held[HELD_MAX]; /* conns whose last byte waits for the journal */
	int nheld;
	struct sigv4_key sigkeys[4]; /* Bedrock signing keys, by the secret's address */
	struct arena tmp;            /* scratch for one step (an eventstream frame), reset after it */
};

static struct worker *workers;
static int nworkers;
static _Atomic bool g_draining;
static int gov_commit_evfd = -1; /* workers wake the journal committer through it */

static uint64_t loop_now_ms(void) { return now_ns() / 1000000; }

static struct io_uring_sqe *loop_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe; /* the SQ is never full after a submit */
}

static uint32_t slot_idx(struct worker *w, struct conn *c) { return (uint32_t)(c - w->slab); }

static struct conn *slot_alloc(struct worker *w, enum kind k, int fd)
{
	uint32_t i;
	if (w->free_head != UINT32_MAX) {
		i = w->free_head;
		w->free_head = w->slab[i].next_free;
	} else if (w->nslab < SLAB_MAX) {
		i = w->nslab++;
		w->slab[i].gen = 1;
	} else {
		return NULL;
	}
	struct conn *c = &w->slab[i];
	uint32_t gen = c->gen;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->kind = (uint8_t)k;
	c->fd = fd;
	c->peer = UINT32_MAX;
	c->lend = UINT32_MAX;
	c->t_prev = c->t_next = UINT32_MAX;
	c->t_slot = -1;
	arena_init(&c->arena, &w->acache);
	return c;
}

static struct conn *slot_peer(struct worker *w, struct conn *c)
{
	if (c->peer == UINT32_MAX)
		return NULL;
	struct conn *p = &w->slab[c->peer];
	return (p->gen == c->peer_gen && p->kind != K_FREE && (!p->closing || p->held)) ? p : NULL;
}

static void slot_link(struct worker *w, struct conn *a, struct conn *b)
{
	a->peer = slot_idx(w, b);
	a->peer_gen = b->gen;
	b->peer = slot_idx(w, a);
	b->peer_gen = a->gen;
}

static void slot_unlink(struct worker *w, struct conn *c)
{
	struct conn *p = slot_peer(w, c);
	if (p)
		p->peer = UINT32_MAX;
	c->peer = UINT32_MAX;
}

/* ---- timer wheel ---- */

static void timer_unlink(struct worker *w, struct conn *c)
{
	if (c->t_slot < 0)
		return;
	if (c->t_prev != UINT32_MAX)
		w->slab[c->t_prev].t_next = c->t_next;
	else
		w->wheel[c->t_slot] = c->t_next;
	if (c->t_next != UINT32_MAX)
		w->slab[c->t_next].t_prev = c->t_prev;
	c->t_prev = c->t_next = UINT32_MAX;
	c->t_slot = -1;
}

/* Arm (or with ms == 0, disarm) the connection's single deadline, `ms` from now. */
static void timer_set(struct worker *w, struct conn *c, long ms)
{
	timer_unlink(w, c);
	c->deadline_ms = ms > 0 ? w->now_ms + (uint64_t)ms : 0;
	if (!ms)
		return;
	int s = (int)((c->deadline_ms / WHEEL_MS) % WHEEL_SLOTS);
	uint32_t i = slot_idx(w, c);
	c->t_slot = s;
	c->t_next = w->wheel[s];
	if (c->t_next != UINT32_MAX)
		w->slab[c->t_next].t_prev = i;
	w->wheel[s] = i;
}

static void timer_run(struct worker *w)
{
	uint64_t tick = w->now_ms / WHEEL_MS;
	uint32_t due[256], gen[256];
	int n = 0;
	if (tick - w->wheel_tick > WHEEL_SLOTS)
		w->wheel_tick = tick - WHEEL_SLOTS;
	/* a slot is visited once its tick has fully passed, so all it holds is due */
	for (; w->wheel_tick < tick && n < 256; w->wheel_tick++) {
		int s = (int)(w->wheel_tick % WHEEL_SLOTS);
		for (uint32_t i = w->wheel[s]; i != UINT32_MAX && n < 256; i = w->slab[i].t_next)
			if (w->slab[i].deadline_ms <= w->now_ms) {
				due[n] = i;
				gen[n++] = w->slab[i].gen;
			}
		if (n == 256)
			break; /* the rest next time round */
	}
	for (int k = 0; k < n; k++) {
		struct conn *c = &w->slab[due[k]];
		if (c->gen != gen[k] || c->kind == K_FREE || c->closing || !c->deadline_ms ||
		    c->deadline_ms > w->now_ms)
			continue;
		timer_unlink(w, c);
		c->deadline_ms = 0;
		slot_ops[c->kind].timeout(w, c);
	}
}

/* ---- slot lifetime ---- */

static void slot_free(struct worker *w, struct conn *c)
{
	BF_ASSERT(c->inflight == 0 && c->lent == 0 && c->lend == UINT32_MAX);
	if (c->fd >= 0)
		close(c->fd);
	slot_ops[c->kind].freeing(w, c);
	buf_free(&c->in);
	arena_reset(&c->arena);
	c->kind = K_FREE;
	c->gen = (c->gen + 1) & 0xffffffu;
	if (!c->gen)
		c->gen = 1;
	c->next_free = w->free_head;
	w->free_head = slot_idx(w, c);
}

/* The slot can go once nothing in the kernel and no other slot's send uses it. */
static void slot_free_if_done(struct worker *w, struct conn *c)
{
	if (c->closing && c->inflight == 0 && c->lent == 0)
		slot_free(w, c);
}

/* c's send about to be queued reads `from`'s memory: keep `from` alive until it is back. */
static void slot_borrow(struct worker *w, struct conn *c, struct conn *from)
{
	if (c->lend != UINT32_MAX) { /* one lender per send; the same one again */
		BF_ASSERT(c->lend == slot_idx(w, from) && c->lend_gen == from->gen);
		return;
	}
	c->lend = slot_idx(w, from);
	c->lend_gen = from->gen;
	from->lent++;
}

/* c's borrowing send is over (completed, failed or cancelled). */
static void slot_borrow_end(struct worker *w, struct conn *c)
{
	if (c->lend == UINT32_MAX)
		return;
	struct conn *from = &w->slab[c->lend];
	BF_ASSERT(from->gen == c->lend_gen && from->kind != K_FREE && from->lent > 0);
	c->lend = UINT32_MAX;
	from->lent--;
	slot_free_if_done(w, from);
}

/* Start closing: cancel whatever the kernel still holds; free when it is all back
 * and no other slot's send reads this one's memory. */
static void slot_close(struct worker *w, struct conn *c)
{
	if (c->closing || c->kind == K_FREE)
		return;
	c->closing = true; /* before the hook: the arena must outlive sends in flight */
	c->held = slot_ops[c->kind].closing(w, c);
	timer_unlink(w, c);
	if (!c->held)
		slot_unlink(w, c);
	if (c->inflight == 0) {
		slot_borrow_end(w, c); /* nothing of ours in the kernel reads it any more */
		slot_free_if_done(w, c);
		return;
	}
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD(slot_idx(w, c), c->gen, OP_CANCEL));
	c->inflight++;
}

/* ---- sends: one in flight per socket, MSG_NOSIGNAL always ---- */

static void loop_send_post(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = loop_sqe(w);
	struct msghdr *mh = &c->mh;
	memset(mh, 0, sizeof(*mh));
	mh->msg_iov = &c->siov[c->si];
	mh->msg_iovlen = (size_t)(c->sn - c->si);
	io_uring_prep_sendmsg(sqe, c->fd, mh, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(slot_idx(w, c), c->gen, OP_SEND));
	c->inflight++;
	c->send_busy = true;
}

/* ---- sends through a TLS engine: plaintext copied in, records sent out, one at a time ---- */

/* The record bytes the engine has ready, if none are on their way already. */
static void loop_tls_flush(struct worker *w, struct conn *c)
{
	br_ssl_engine_context *eng = &c->stls->sc.eng;
	size_t len;
	unsigned char *p;
	if (c->tls_rec_busy || c->closing || !(p = br_ssl_engine_sendrec_buf(eng, &len)))
		return;
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_send(sqe, c->fd, p, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(slot_idx(w, c), c->gen, OP_SEND));
	c->inflight++;
	c->tls_rec_busy = true;
}

/* Copy the queued plaintext into the engine as far as it takes; true when all of it is in. */
static bool loop_tls_feed(struct conn *c)
{
	br_ssl_engine_context *eng = &c->stls->sc.eng;
	while (c->si < c->sn) {
		size_t room;
		unsigned char *dst = br_ssl_engine_sendapp_buf(eng, &room);
		if (!dst)
			return false;
		struct iovec *v = &c->siov[c->si];
		size_t n = MIN(room, v->iov_len);
		memcpy(dst, v->iov_base, n);
		br_ssl_engine_sendapp_ack(eng, n);
		v->iov_base = (char *)v->iov_base + n;
		v->iov_len -= n;
		c->si += v->iov_len == 0;
	}
	br_ssl_engine_flush(eng, 0);
	return true;
}

/* The send over TLS is complete when every byte is in the engine and every record is out. */
static bool loop_tls_sent(struct worker *w, struct conn *c, int res)
{
	c->tls_rec_busy = false;
	if (res > 0) {
		br_ssl_engine_sendrec_ack(&c->stls->sc.eng, (size_t)res);
		c->sent_ms = w->now_ms;
	}
	bool all_in = !c->send_busy || loop_tls_feed(c);
	loop_tls_flush(w, c);
	if (!c->send_busy || !all_in || c->tls_rec_busy)
		return false;
	c->send_busy = false;
	slot_borrow_end(w, c);
	return true;
}

/* Queue iovecs for sending on c (which must have no send in flight). */
static void loop_send(struct worker *w, struct conn *c, const struct iovec *iov, int n)
{
	c->sn = c->si = 0;
	for (int i = 0; i < n && c->sn < SEND_IOV_MAX; i++)
		if (iov[i].iov_len)
			c->siov[c->sn++] = iov[i];
	c->sent_ms = w->now_ms;
	if (!c->sn) {
		slot_borrow_end(w, c);
	} else if (c->stls) {
		c->send_busy = true;
		loop_tls_feed(c);
		loop_tls_flush(w, c);
	} else {
		loop_send_post(w, c);
	}
}

/* A send completed with `res` bytes: true when everything queued went out. */
static bool loop_sent(struct worker *w, struct conn *c, int res)
{
	if (c->stls)
		return loop_tls_sent(w, c, res);
	size_t left = (size_t)res;
	c->send_busy = false;
	if (res > 0)
		c->sent_ms = w->now_ms;
	while (c->si < c->sn && left >= c->siov[c->si].iov_len)
		left -= c->siov[c->si++].iov_len;
	if (c->si < c->sn) {
		c->siov[c->si].iov_base = (char *)c->siov[c->si].iov_base + left;
		c->siov[c->si].iov_len -= left;
		loop_send_post(w, c);
		return false;
	}
	slot_borrow_end(w, c);
	return true;
}

/* ---- request log: the ring writes stdout so the worker never blocks ---- */

static void log_flush(struct worker *w)
{
	struct log_state *l = w->log;
	if (!l || l->busy || l->len[l->cur] == 0)
		return;
	l->busy = true;
	l->off = 0;
	int h = l->cur;
	l->cur ^= 1;
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_write(sqe, STDOUT_FILENO, l->buf[h], (unsigned)l->len[h], (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, UD(UD_LISTENER, 0, OP_LOG));
}

static void log_written(struct worker *w, int res)
{
	struct log_state *l = w->log;
	int h = l->cur ^ 1;
	if (res > 0 && l->off + (size_t)res < l->len[h]) { /* short write: the rest */
		l->off += (size_t)res;
		struct io_uring_sqe *sqe = loop_sqe(w);
		io_uring_prep_write(sqe, STDOUT_FILENO, l->buf[h] + l->off, (unsigned)(l->len[h] - l->off),
				    (uint64_t)-1);
		io_uring_sqe_set_data64(sqe, UD(UD_LISTENER, 0, OP_LOG));
		return;
	}
	l->len[h] = 0;
	l->busy = false;
	if (l->len[l->cur] > LOG_BUF / 2)
		log_flush(w);
}

static void log_line(struct worker *w, const char *p, size_t n)
{
	struct log_state *l = w->log;
	if (!l)
		return;
	if (l->len[l->cur] + n > LOG_BUF) {
		log_flush(w);
		if (l->len[l->cur] + n > LOG_BUF) {
			M_ADD(&w->m, log_dropped, 1);
			return;
		}
	}
	memcpy(l->buf[l->cur] + l->len[l->cur], p, n);
	l->len[l->cur] += n;
}

/* ---- the worker's loop: completions to their slot's kind, timers, the log, draining ---- */

static void loop_adopt_config(struct worker *w)
{
	uint32_t gen = atomic_load_explicit(&cfg_generation, memory_order_acquire);
	if (gen == w->cfg_gen)
		return;
	struct cfg_hold *h = malloc(sizeof(*h));
	if (!h)
		return; /* try again next turn */
	h->cfg = cfg_get();
	h->live = 0;
	h->next = NULL;
	struct cfg_hold *old = w->hold;
	w->hold = h;
	w->cfg_gen = gen;
	if (old && old->live == 0) {
		cfg_put(old->cfg);
		free(old);
	} else if (old) {
		old->next = w->retired;
		w->retired = old;
	}
}

/* Multishot accept on the plain (tls = 0) or the HTTPS listener (tls = 1, in the generation bits). */
static void loop_accept_arm(struct worker *w, int tls)
{
	int fd = tls ? w->tls_lfd : w->lfd;
	if (fd < 0)
		return;
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(UD_LISTENER, tls, OP_ACCEPT));
}

/* The committer's wake-up: a read on the worker's eventfd, re-armed each time. */
static void loop_wake_arm(struct worker *w)
{
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_read(sqe, w->evfd, &w->evval, sizeof(w->evval), 0);
	io_uring_sqe_set_data64(sqe, UD(UD_LISTENER, 0, OP_WAKE));
}

static void loop_cqe(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	int op = UD_OP(ud);
	uint32_t idx = UD_IDX(ud);
	if (idx == UD_LISTENER) {
		if (op == OP_WAKE) {
			loop_hooks.wake(w);
			loop_wake_arm(w);
		} else if (op == OP_LOG) {
			log_written(w, cqe->res);
		} else if (op == OP_ACCEPT) {
			int tls = (int)UD_GEN(ud);
			if (cqe->res >= 0)
				loop_hooks.accept(w, cqe->res, tls);
			if (!(cqe->flags & IORING_CQE_F_MORE) && !g_draining)
				loop_accept_arm(w, tls);
		}
		return;
	}
	struct conn *c = &w->slab[idx];
	if (c->gen != UD_GEN(ud) || c->kind == K_FREE)
		return; /* cannot happen: slots outlive their operations */
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->inflight--;
	if (op == OP_SEND && (c->closing || cqe->res < 0)) {
		c->send_busy = false;
		slot_borrow_end(w, c); /* that send will not be resumed */
	}
	if (c->closing || op == OP_CANCEL) {
		if (cqe->flags & IORING_CQE_F_BUFFER) { /* hand the ring buffer back */
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			io_uring_buf_ring_add(w->br, w->br_mem + (size_t)bid * BR_SIZE, BR_SIZE,
					      (unsigned short)bid, io_uring_buf_ring_mask(BR_COUNT), 0);
			io_uring_buf_ring_advance(w->br, 1);
		}
		slot_free_if_done(w, c);
		return;
	}
	slot_ops[c->kind].complete(w, c, op, cqe);
}

/* Draining: stop accepting, close idle clients; true when nothing is left. */
static bool loop_drain(struct worker *w, uint64_t deadline_ms)
{
	for (int tls = 0; tls < 2; tls++) {
		int *fd = tls ? &w->tls_lfd : &w->lfd;
		if (*fd < 0)
			continue;
		struct io_uring_sqe *sqe = loop_sqe(w);
		io_uring_prep_cancel64(sqe, UD(UD_LISTENER, tls, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, UD(UD_LISTENER, 0, OP_CANCEL));
		close(*fd);
		*fd = -1;
	}
	bool force = w->now_ms >= deadline_ms;
	for (uint32_t i = 0; i < w->nslab; i++) {
		struct conn *c = &w->slab[i];
		if (c->kind == K_FREE || c->closing)
			continue;
		if (force || slot_ops[c->kind].idle(c))
			slot_close(w, c);
	}
	return w->nclients == 0 && (force || w->active == 0);
}

static int loop_ring_init(struct worker *w)
{
	static const unsigned flagsets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < ARRAY_LEN(flagsets); i++) {
		struct io_uring_params p = { .flags = flagsets[i] | IORING_SETUP_CQSIZE, .cq_entries = 16384 };
		rc = io_uring_queue_init_params(2048, &w->ring, &p);
		if (rc == 0)
			break;
	}
	if (rc)
		return rc;
	w->br = io_uring_setup_buf_ring(&w->ring, BR_COUNT, BR_GROUP, 0, &rc);
	if (!w->br)
		return rc;
	w->br_mem = malloc((size_t)BR_COUNT * BR_SIZE);
	if (!w->br_mem)
		return -ENOMEM;
	for (unsigned i = 0; i < BR_COUNT; i++)
		io_uring_buf_ring_add(w->br, w->br_mem + (size_t)i * BR_SIZE, BR_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(BR_COUNT), (int)i);
	io_uring_buf_ring_advance(w->br, BR_COUNT);
	return 0;
}

static void *loop_run(void *arg)
{
	struct worker *w = arg;
	int rc = loop_ring_init(w);
	if (rc)
		die("worker %d: io_uring setup failed: %s", w->id, strerror(-rc));
	w->slab = mmap(NULL, sizeof(struct conn) * SLAB_MAX, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->slab == MAP_FAILED)
		die("worker %d: cannot map the connection table", w->id);
	w->free_head = UINT32_MAX;
	for (int i = 0; i < WHEEL_SLOTS; i++)
		w->wheel[i] = UINT32_MAX;
	w->now_ms = loop_now_ms();
	w->wheel_tick = w->now_ms / WHEEL_MS;
	w->acache.max_free = 512; /* up to 16 MB: the peak concurrency, kept */
	arena_init(&w->tmp, &w->acache);
	w->rng = now_ns() ^ ((uint64_t)(w->id + 1) * 0x9E3779B97F4A7C15ULL);
	loop_adopt_config(w);
	loop_accept_arm(w, 0);
	loop_accept_arm(w, 1);
	loop_wake_arm(w);
	uint64_t drain_deadline = 0, last_flush = w->now_ms;
	for (;;) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = WHEEL_MS * 1000000L };
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		w->now_ms = loop_now_ms();
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			loop_cqe(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		timer_run(w);
		loop_adopt_config(w);
		if (w->kick_committer) { /* eventfd write: never blocks */
			uint64_t one = 1;
			w->kick_committer = false;
			if (write(gov_commit_evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				M_ADD(&w->m, journal_full, 1);
		}
		if (w->log && (w->log->len[w->log->cur] > LOG_BUF / 4 || w->now_ms - last_flush >= 20)) {
			log_flush(w);
			last_flush = w->now_ms;
		}
		if (atomic_load_explicit(&g_draining, memory_order_relaxed)) {
			if (!drain_deadline)
				drain_deadline = w->now_ms + 10000;
			if (loop_drain(w, drain_deadline) && !(w->log && w->log->busy))
				break;
		}
	}
	log_flush(w);
	io_uring_submit(&w->ring);
	return NULL;
}

/* ======================================================================== *
 * 21. up_ — the upstream client.                                           *
 *                                                                          *
 * Owns per-worker keep-alive pools keyed by (address, TLS settings), the   *
 * connect (with a linked timeout), the BearSSL engine pump, and reading    *
 * the response: a non-streamed body is gathered (bounded by                *
 * limits.max_response_bytes) and handed to the client in one send; an SSE  *
 * body is relayed event by event with backpressure — the next upstream     *
 * read is posted only after the client took the previous events. Idle      *
 * pooled connections keep a read posted, so a server's close is noticed    *
 * at once; a reused connection that fails before any byte is retried once  *
 * on a fresh one (the request was never processed).                        *
 * Tells its client what happened through struct up_hooks (up_client).      *
 * ======================================================================== */

/* Where a request is (the transitions are drawn in the conn_ banner; conn_phase checks them). */
enum rq_phase {
	RQ_READ,    /* its head and body are being read */
	RQ_ROUTE,   /* choosing the attempt's candidate and key, building its body */
	RQ_BACKOFF, /* the client's timer is a backoff before the next attempt */
	RQ_AWAIT,   /* an attempt is in flight; the client has seen nothing */
	RQ_STREAM,  /* the stream's head is out; a batch of events may be in flight */
	RQ_PING,    /* the send in flight is a keep-alive ping */
	RQ_FINAL,   /* the last send (a whole answer, an error, the stream's end) is in flight */
	RQ_TAIL,    /* ... all of it but the last byte, which waits for the journal */
	RQ_DONE,    /* ended: counted, logged; the arena is about to go */
	RQ_MGMT,    /* an /api request is with the management thread (admin_handoff) */
	RQ_CLUSTER, /* admitted here; the cluster's admission (Redis, clu_) is being asked */
};

struct request {
	struct http_msg *msg;   /* arena */
	enum rq_phase phase;
	enum endpoint ep;
	enum bedrock_action br; /* a /bedrock/ request (Bedrock's shapes and framing), else BR_NONE */
	bool converse;          /* the attempt goes to Bedrock's Converse (answers made Messages ones) */
	struct xlate_c2a c2a;   /* ... its stream's events, made Messages events by up_ */
	struct xlate_usage bu;  /* a /bedrock/ Converse stream's usage, for its metadata frame */
	struct cfg_hold *hold;  /* worker's config reference, counted in hold->live */
	struct client_req o;
	struct route rt;        /* candidates in attempt order: primary, then fallbacks */
	int ci;                 /* the current candidate (index in rt) */
	int retries;            /* same-key retries after a failure, on the current candidate */
	int key0, koff;         /* the candidate's drawn key, and the offset from it of the key in use */
	int attempts;           /* attempts in all (the x-bifrost-attempts header, the log) */
	char trail[160];        /* failed attempts, "provider/model:status ..." for the log line */
	int kidx;               /* key (breaker) index of the attempt in flight */
	const char *key;        /* provider credential (config memory) */
	struct up_req ur;
	uint64_t t_start_ns, t_up_ns, t_resp_ns, overhead_ns;
	uint64_t t_first_ns;    /* the provider's first answer bytes (time to first byte) */
	bool llm;               /* a model endpoint (not /health, /api, the UI): kept in the log store */
	struct buf content[2];  /* logs.content: the request's and the answer's bytes, cut at the limit */
	int status;             /* what the client got */
	bool streaming;         /* the answer is an event stream (RQ_STREAM and on: its head is out) */
	bool fresh_retry;       /* the attempt must not take a pooled connection */
	bool orphan;            /* the client left; the answer is awaited only to bill it */
	bool stream_broken;     /* the stream was ended by an error event (provider failed or timed out) */
	char chunk_line[24];    /* the current stream chunk's size line */
	struct xlate_usage xu;  /* the provider's usage, Anthropic's meaning: `in` excludes cache */
	size_t streamed;        /* event bytes relayed to the client */
	size_t content_chars;   /* generated text relayed (xlate_content_chars): bills a cut stream */
	/* dialect translation: XL_A2O = Anthropic client, OpenAI-format provider; XL_O2A = the reverse */
	/* XL_R2O / XL_R2A: a Responses API client, a Chat Completions / an Anthropic provider
	 * (R2A goes through Chat both ways: Responses -> Chat -> Messages, and back) */
	enum { XL_NONE, XL_A2O, XL_O2A, XL_R2O, XL_R2A } xl;
	union {
		struct xlate_o2a o2a; /* XL_A2O streams: OpenAI chunks → Anthropic events */
		struct xlate_a2o a2o; /* XL_O2A streams: Anthropic events → OpenAI chunks */
		struct xlate_o2r o2r; /* XL_R2O streams: OpenAI chunks → Responses events */
		struct {
			struct xlate_a2o a2o;
			struct xlate_o2r o2r;
		} r2a;                /* XL_R2A streams: Anthropic events → chunks → Responses events */
	} xs;
	struct xlate_rnames rnames; /* XL_R2O, XL_R2A: the client's custom tools */
	const char *xid;        /* arena: the id translated answers carry */
	/* governance */
	const struct gov_vkey *vk;     /* config: the presented virtual key, or NULL */
	const struct gov_price *price; /* config/static or &price_max: the attempt's price, NULL = free */
	struct gov_price price_max;    /* an unpriced model's charge under governance.unpriced max_price */
	struct gov_ticket gt;          /* tiers admitted for the attempt in flight */
	struct clu_job *cjob;          /* the cluster admission awaited (RQ_CLUSTER), owned by clu_ */
	int64_t jseq;                  /* journal sequence that must be durable before the last byte */
	int64_t cost_micros;
	bool charged;                  /* settled through conn_gov_charge: the log shows cost_usd */
	struct iovec tail;             /* over tail_byte: a copy, so it borrows nobody's buffer */
	char tail_byte;
	char err[256];
};

/* Has the client seen the head of a streamed answer (so a failure can only end the stream)? */
static bool up_stream_begun(const struct request *rq)
{
	return rq->streaming && rq->phase >= RQ_STREAM;
}

/* What an upstream tells the client it serves. conn_ is that client and defines up_client
 * (at the end of its section): up_ calls no conn_ function by name. */
struct up_hooks {
	/* a whole non-streamed answer is in u (u->resp, the body in u->in) */
	void (*answer)(struct worker *w, struct conn *cl, struct conn *u);
	/* streamed events are in u->in (done: the last of them); u NULL: end with an error event */
	void (*events)(struct worker *w, struct conn *cl, struct conn *u, bool done);
	/* the attempt failed (502, 503 or 504; u is already closed) */
	void (*failed)(struct worker *w, struct conn *cl, int status, const char *msg);
};
static const struct up_hooks up_client;

static struct pool *up_pool(struct worker *w, const struct provider *p)
{
	for (int i = 0; i < w->npools; i++) {
		struct pool *q = &w->pools[i];
		if (q->dns == p->dns && q->tls == p->tls && q->ta == (p->tls ? p->anchors : NULL) &&
		    q->insecure == p->insecure && strcmp(q->sni, p->host) == 0)
			return q;
	}
	if (w->npools == POOL_MAX)
		return NULL;
	struct pool *q = &w->pools[w->npools++];
	memset(q, 0, sizeof(*q));
	q->dns = p->dns;
	q->tls = p->tls;
	q->ta = p->tls ? p->anchors : NULL;
	q->insecure = p->insecure;
	snprintf(q->sni, sizeof(q->sni), "%s", p->host);
	return q;
}

/* Arm the attempt's next deadline, never past its total deadline. */
static void up_timer(struct worker *w, struct conn *u, long ms)
{
	if (u->total_deadline_ms)
		ms = (long)MIN((uint64_t)ms, u->total_deadline_ms > w->now_ms ? u->total_deadline_ms - w->now_ms : 1);
	timer_set(w, u, MAX(ms, 1));
}

static void up_recv_post(struct worker *w, struct conn *u, void *p, size_t n)
{
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_recv(sqe, u->fd, p, n, 0);
	io_uring_sqe_set_data64(sqe, UD(slot_idx(w, u), u->gen, OP_RECV));
	u->inflight++;
	u->recv_busy = true;
}

/* Grow `in`, keeping the parsed response head's slices pointing into it. */
static int up_in_reserve(struct conn *u, size_t extra)
{
	const char *before = u->in.p;
	int rc = buf_reserve(&u->in, extra);
	if (!rc && u->resp && u->us == US_BODY && before != u->in.p)
		http_rebase(u->resp, before, u->in.p);
	return rc;
}

/* Plain: read into `in`. Never grows `in` while a read is posted. */
static int up_read_plain(struct worker *w, struct conn *u)
{
	if (u->recv_busy || u->paused)
		return 0;
	int rc = up_in_reserve(u, 16384);
	if (rc)
		return rc;
	up_recv_post(w, u, u->in.p + u->in.len, u->in.cap - u->in.len);
	return 0;
}

static void up_pump(struct worker *w, struct conn *u);
static void up_fail(struct worker *w, struct conn *u, int status, const char *fmt, ...);

/* Kick reading (and, for TLS, writing) after a state change. */
static void up_kick(struct worker *w, struct conn *u)
{
	if (u->tls)
		up_pump(w, u);
	else if (up_read_plain(w, u) != 0)
		up_fail(w, u, 502, "provider response too large");
}

/* The request's bytes on the wire (plain: straight from the iovecs). */
static void up_send_request(struct worker *w, struct conn *u, struct request *rq)
{
	u->us = US_SENDING;
	u->tls_copied = 0;
	rq->t_up_ns = now_ns();
	if (u->tls) {
		up_pump(w, u);
		return;
	}
	struct conn *cl = slot_peer(w, u);
	if (cl) /* the iovecs point into the client's body and arena */
		slot_borrow(w, u, cl);
	loop_send(w, u, rq->ur.iov, rq->ur.niov);
	up_kick(w, u); /* the read waits in the kernel for the answer */
}

/* Return a finished connection to its pool (or close it). */
static void up_release(struct worker *w, struct conn *u, bool reusable)
{
	struct pool *q = u->pool;
	slot_unlink(w, u);
	if (!reusable || !q || q->nidle == POOL_IDLE_MAX || u->in.len || u->send_busy || g_draining) {
		slot_close(w, u);
		return;
	}
	u->us = US_IDLE;
	u->resp = NULL;
	arena_reset(&u->arena); /* the answer's head */
	u->paused = false;
	u->resp_done = false; /* idle: a close or reset now is a dead pooled connection */
	q->idle[q->nidle] = slot_idx(w, u);
	q->idle_gen[q->nidle++] = u->gen;
	timer_set(w, u, 30000);
	up_kick(w, u); /* keep a read posted to notice the server closing */
}

/* The client is done with this answer (sent it, or retries elsewhere): pool the
 * connection if the answer was read whole and nothing follows it, else close it. */
static void up_finish(struct worker *w, struct conn *u)
{
	bool whole = u->resp_done && u->dec_pos == u->in.len && !u->resp_close;
	if (whole)
		u->in.len = 0;
	up_release(w, u, whole);
}

/* Take a live idle connection from the pool, or NULL. */
static struct conn *up_pool_take(struct worker *w, struct pool *q)
{
	while (q->nidle > 0) {
		q->nidle--;
		struct conn *u = &w->slab[q->idle[q->nidle]];
		if (u->gen == q->idle_gen[q->nidle] && u->kind == K_UP && !u->closing && u->us == US_IDLE)
			return u;
	}
	return NULL;
}

static int up_connect(struct worker *w, struct conn *u, const struct provider *p, char *err,
		      size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	if (!dns_read(p->dns, u->pool->rr++, &sa, &salen, err, errlen))
		return -EHOSTUNREACH;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->fd = fd;
	/* the address must outlive the SQE: the connection's own arena keeps it */
	struct sockaddr_storage *to = arena_new(&u->arena, struct sockaddr_storage, 1);
	if (!to) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(to, &sa, salen);
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)to, salen);
	io_uring_sqe_set_data64(sqe, UD(slot_idx(w, u), u->gen, OP_CONNECT));
	sqe->flags |= IOSQE_IO_LINK;
	struct __kernel_timespec *ts = &u->connect_ts;
	ts->tv_sec = p->connect_timeout_ms / 1000;
	ts->tv_nsec = (p->connect_timeout_ms % 1000) * 1000000;
	sqe = loop_sqe(w);
	io_uring_prep_link_timeout(sqe, ts, 0);
	io_uring_sqe_set_data64(sqe, UD(slot_idx(w, u), u->gen, OP_LINK_TIMEOUT));
	u->inflight += 2;
	u->us = US_CONNECTING;
	if (p->tls) {
		u->tls = malloc(sizeof(*u->tls));
		if (!u->tls) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		tls_client_start(u->tls, p->anchors, p->insecure, p->host,
				 u->pool->have_sess ? &u->pool->sess : NULL);
	}
	return 0;
}

/* Begin the client's current attempt: pooled connection or a new one. */
static void up_start(struct worker *w, struct conn *cl, const struct provider *p)
{
	struct request *rq = cl->rq;
	char err[200];
	struct pool *q = up_pool(w, p);
	struct conn *u = q && !rq->fresh_retry ? up_pool_take(w, q) : NULL;
	if (u) {
		u->reused = true;
		timer_unlink(w, u);
	} else {
		u = slot_alloc(w, K_UP, -1);
		if (!u) {
			up_client.failed(w, cl, 503, "gateway connection table full");
			return;
		}
		u->pool = q;
		int rc = q ? up_connect(w, u, p, err, sizeof(err)) : -ENOSPC;
		if (rc) {
			slot_close(w, u);
			M_ADD(&w->m, upstream_errors, 1);
			char msg[300];
			snprintf(msg, sizeof(msg), "cannot reach provider %s: %s", p->name,
				 q ? err : "too many upstream pools");
			up_client.failed(w, cl, 502, msg);
			return;
		}
	}
	slot_link(w, cl, u);
	u->uscanned = 0;
	u->resp_done = false;
	u->total_deadline_ms = p->total_timeout_ms ? w->now_ms + (uint64_t)p->total_timeout_ms : 0;
	up_timer(w, u, p->timeout_ms);
	if (u->us == US_IDLE)
		up_send_request(w, u, rq);
}

/* The attempt failed before the client saw anything: answer with an error. */
static void up_fail(struct worker *w, struct conn *u, int status, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct conn *cl = slot_peer(w, u);
	if (u->resp_done) { /* the answer is already the client's: only the connection is lost */
		u->resp_close = true;
		u->paused = true;
		return;
	}
	M_ADD(&w->m, upstream_errors, 1);
	if (cl && cl->held) { /* the client left: end its request with this failure (closes u) */
		up_client.failed(w, cl, status, msg);
		return;
	}
	/* A reused keep-alive connection that died before answering: the server
	 * never saw the request, so one retry on a fresh connection is safe. */
	bool retry = cl && u->reused && u->in.len == 0 && u->us != US_BODY && !cl->rq->fresh_retry &&
		     !up_stream_begun(cl->rq);
	slot_close(w, u);
	if (!cl || !cl->rq)
		return;
	if (retry) {
		cl->rq->fresh_retry = true;
		up_start(w, cl, cl->rq->rt.c[cl->rq->ci].p);
		return;
	}
	up_client.failed(w, cl, status, msg);
}

/* ---- TLS engine pump: drive BearSSL from ring completions ---- */

static void up_tls_feed(struct conn *u, struct request *rq)
{
	br_ssl_engine_context *eng = &u->tls->cc.eng;
	size_t len, pos = 0;
	unsigned char *dst = br_ssl_engine_sendapp_buf(eng, &len);
	/* copy the part of the iovecs not yet handed over */
	for (int i = 0; i < rq->ur.niov && len > 0; i++) {
		size_t l = rq->ur.iov[i].iov_len;
		if (u->tls_copied >= pos + l) {
			pos += l;
			continue;
		}
		size_t off = u->tls_copied - pos, n = MIN(l - off, len);
		memcpy(dst, (char *)rq->ur.iov[i].iov_base + off, n);
		dst += n;
		len -= n;
		u->tls_copied += n;
		br_ssl_engine_sendapp_ack(eng, n);
		pos += l;
		dst = br_ssl_engine_sendapp_buf(eng, &len);
		if (!dst)
			break;
	}
	if (u->tls_copied == rq->ur.len)
		br_ssl_engine_flush(eng, 0);
}

static void up_on_data(struct worker *w, struct conn *u);

static void up_pump(struct worker *w, struct conn *u)
{
	br_ssl_engine_context *eng = &u->tls->cc.eng;
	bool got = false;
	for (;;) {
		unsigned st = br_ssl_engine_current_state(eng);
		if (st & BR_SSL_CLOSED) {
			int err = br_ssl_engine_last_error(eng);
			if (err == BR_ERR_OK && got)
				break;
			if (err == BR_ERR_OK)
				up_fail(w, u, 502, "provider closed the TLS connection");
			else
				up_fail(w, u, 502, "upstream TLS failed: %s (BearSSL error %d)", tls_error_text(err), err);
			return;
		}
		if (!u->hs_done && (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))) {
			u->hs_done = true;
			br_ssl_engine_get_session_parameters(eng, &u->pool->sess);
			u->pool->have_sess = true;
		}
		bool progress = false;
		if ((st & BR_SSL_SENDREC) && !u->send_busy) {
			size_t len;
			unsigned char *p = br_ssl_engine_sendrec_buf(eng, &len);
			struct iovec v = { p, len };
			loop_send(w, u, &v, 1);
		}
		if ((st & BR_SSL_RECVAPP) && !u->paused) {
			size_t len;
			unsigned char *p = br_ssl_engine_recvapp_buf(eng, &len);
			if (up_in_reserve(u, len) != 0 || buf_append(&u->in, p, len) != 0) {
				up_fail(w, u, 502, "upstream response too large");
				return;
			}
			br_ssl_engine_recvapp_ack(eng, len);
			got = progress = true;
		}
		struct conn *cl = slot_peer(w, u);
		if ((st & BR_SSL_SENDAPP) && u->us == US_SENDING && cl && cl->rq &&
		    u->tls_copied < cl->rq->ur.len) {
			up_tls_feed(u, cl->rq);
			progress = true;
		}
		if ((st & BR_SSL_RECVREC) && !u->recv_busy && !u->paused) {
			size_t len;
			unsigned char *p = br_ssl_engine_recvrec_buf(eng, &len);
			up_recv_post(w, u, p, len);
		}
		if (!progress)
			break;
	}
	if (u->us == US_SENDING && slot_peer(w, u) && u->tls_copied == slot_peer(w, u)->rq->ur.len &&
	    !(br_ssl_engine_current_state(eng) & BR_SSL_SENDREC))
		u->us = US_HEAD;
	if (got)
		up_on_data(w, u);
}

/* ---- reading the response ---- */

static bool up_sse(const struct http_msg *m)
{
	struct str ct = http_header(m, "content-type");
	return m->status == 200 && ct.n >= 17 && strncasecmp(ct.p, "text/event-stream", 17) == 0;
}

/* Bedrock's streamed answer: eventstream frames (decoded into SSE events by up_evs). */
static bool up_evs_type(const struct http_msg *m)
{
	struct str ct = http_header(m, "content-type");
	return m->status == 200 && ct.n >= 34 && strncasecmp(ct.p, "application/vnd.amazon.eventstream", 34) == 0;
}

/* Parse the head once it is complete. <0: failed (already reported); 0: need more; 1: ok. */
static int up_head(struct worker *w, struct conn *u, struct conn *cl)
{
	for (;;) {
		if (!u->resp)
			u->resp = arena_new(&u->arena, struct http_msg, 1);
		if (!u->resp) {
			up_fail(w, u, 502, "out of memory");
			return -1;
		}
		int rc = http_parse_response(u->resp, u->in.p, u->in.len, &u->uscanned, 65536);
		if (rc == -EAGAIN)
			return 0;
		if (rc < 0) {
			up_fail(w, u, 502, "provider sent a malformed response (%s)",
				rc == -E2BIG ? "head too large" : u->resp->err);
			return -1;
		}
		if (u->resp->status >= 100 && u->resp->status < 200) { /* interim: skip */
			buf_consume(&u->in, (size_t)rc);
			u->uscanned = 0;
			continue;
		}
		struct http_msg *m = u->resp;
		u->us = US_BODY;
		u->body_start = u->dec_pos = u->dec_end = u->ev_pos = (size_t)rc;
		memset(&u->ch, 0, sizeof(u->ch));
		u->resp_chunked = m->chunked;
		u->body_left = m->chunked ? -1 : m->content_length;
		if (m->status == 204 || m->status == 304)
			u->body_left = 0;
		if (u->body_left > 0 && (size_t)u->body_left <= cl->rq->hold->cfg->max_response &&
		    u->in.len < u->body_start + (size_t)u->body_left)
			up_in_reserve(u, u->body_start + (size_t)u->body_left - u->in.len);
		u->resp_close = !m->keep_alive || (!m->chunked && u->body_left < 0);
		u->evs = up_evs_type(m);
		u->fr_pos = u->body_start;
		u->evb.len = 0;
		if (u->evs)
			u->ev_pos = 0;
		cl->rq->streaming = up_sse(m) || u->evs;
		if (cl->rq->streaming)
			up_timer(w, u, cl->rq->rt.c[cl->rq->ci].p->stream_idle_timeout_ms);
		return 1;
	}
}

/* Decode what arrived into [body_start, dec_end). <0 bad framing, 1 complete, 0 more. */
static int up_body(struct conn *u, bool eof)
{
	if (u->resp_chunked) {
		int rc = http_dechunk(&u->ch, u->in.p, &u->dec_pos, u->in.len, &u->dec_end);
		if (rc == 1 && u->dec_pos != u->in.len)
			u->resp_close = true; /* bytes after the body: not reusable */
		return rc < 0 ? -1 : rc == 1 ? 1 : eof ? -1 : 0;
	}
	if (u->body_left >= 0) {
		size_t want = u->body_start + (size_t)u->body_left;
		u->dec_end = u->dec_pos = MIN(u->in.len, want);
		if (u->in.len > want)
			u->resp_close = true;
		return u->dec_end == want ? 1 : eof ? -1 : 0;
	}
	u->dec_end = u->dec_pos = u->in.len; /* delimited by close */
	return eof ? 1 : 0;
}

/* An exception frame (or a broken one): fail the attempt with its status while the client
 * has seen nothing (429 for throttling: the next key or provider; events decoded but not
 * yet relayed are dropped with it), else end the stream after the events decoded before
 * it, with an error event. -1: the attempt is over (u closed); 1: the stream ends there. */
static int up_evs_fail(struct worker *w, struct conn *u, struct conn *cl, int status, const char *msg)
{
	if (!up_stream_begun(cl->rq)) {
		up_fail(w, u, status, "%s", msg);
		return -1;
	}
	struct sb t;
	sb_init(&t, &w->tmp, 256);
	sb_cat(&t, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"",
	       status == 429 ? "rate_limit_error" : status == 503 ? "overloaded_error" : "api_error", "\",\"message\":",
	       NULL);
	json_put_z(&t, msg);
	sb_puts(&t, "}}\n\n");
	snprintf(cl->rq->err, sizeof(cl->rq->err), "provider %s: %s", cl->rq->rt.c[cl->rq->ci].p->name, msg);
	cl->rq->stream_broken = true;
	u->fr_pos = u->dec_end = u->dec_pos = u->in.len = u->body_start; /* nothing more is read */
	u->resp_close = true;
	if (!t.oom && buf_append(&u->evb, t.p, t.len) == 0)
		return 1;
	up_client.events(w, cl, NULL, true);
	slot_close(w, u);
	return -1;
}

/* One decoded frame: an event's SSE text appended to evb. 0, or up_evs_fail's answer. */
static int up_evs_frame(struct worker *w, struct conn *u, struct conn *cl, const struct evs_msg *m)
{
	static const char *const k[] = { "message" };
	struct sb t;
	sb_init(&t, &w->tmp, m->payload.n + 64);
	if (str_eq(m->message_type, "event")) {
		bool ok = cl->rq->converse ? xlate_c2a_event(&cl->rq->c2a, &w->tmp, m->event_type, m->payload, &t) == 0
			: !str_eq(m->event_type, "chunk") || evs_chunk_to_sse(&w->tmp, m->payload, &t);
		if (ok && buf_append(&u->evb, t.p, t.len) == 0) /* (unknown event kinds: skipped) */
			return 0;
		return up_evs_fail(w, u, cl, 502, cl->rq->converse ? "provider sent a ConverseStream event that "
				   "cannot be read" : "provider sent a chunk that is not an Anthropic event");
	}
	struct str type = m->exception_type.n ? m->exception_type : m->error_code;
	struct json j;
	int v = -1;
	const char *text = NULL;
	if (json_parse(&j, &w->tmp, m->payload.p, m->payload.n) == 0 && json_obj_get(&j, 0, k, 1, &v, NULL) == 0 &&
	    v >= 0)
		text = json_str(&j, &w->tmp, v, NULL);
	char msg[256]; /* (the provider's name is added where the failure is told) */
	snprintf(msg, sizeof(msg), "%.*s: %.160s", (int)MIN(type.n, 64), type.p ? type.p : "",
		 text ? text : "stream error");
	for (char *c = msg; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	return up_evs_fail(w, u, cl, evs_exception_status(type), msg);
}

/* Bedrock's eventstream: the frames complete in [fr_pos, dec_end) of `in` become SSE events
 * in evb (what the client reads) and leave `in`. 0, or up_evs_fail's answer. */
static int up_evs(struct worker *w, struct conn *u, struct conn *cl)
{
	struct evs_msg m;
	long n;
	int r = 0;
	while (r == 0 && (n = evs_decode((const uint8_t *)u->in.p + u->fr_pos, u->dec_end - u->fr_pos, &m)) != 0) {
		if (n < 0) {
			r = up_evs_fail(w, u, cl, 502, "provider sent a malformed eventstream frame");
		} else {
			u->fr_pos += (size_t)n;
			r = up_evs_frame(w, u, cl, &m);
		}
		arena_reset(&w->tmp);
	}
	if (r < 0)
		return r;
	size_t shift = u->fr_pos - u->body_start; /* the decoded frames leave `in` */
	memmove(u->in.p + u->body_start, u->in.p + u->fr_pos, u->in.len - u->fr_pos);
	u->in.len -= shift, u->dec_pos -= shift, u->dec_end -= shift, u->fr_pos = u->body_start;
	return r;
}

/* An eventstream answer's bytes arrived (*rc: up_body's, 1 = the body is whole): decode them;
 * at the end nothing may be left inside a frame, and a Converse stream cut before its
 * metadata is closed. *rc becomes 1 when the stream ended in-band. false: the attempt is over. */
static bool up_evs_step(struct worker *w, struct conn *u, struct conn *cl, int *rc)
{
	int r = up_evs(w, u, cl);
	if (r == 0 && *rc == 1 && u->fr_pos != u->dec_end)
		r = up_evs_fail(w, u, cl, 502, "provider stream ended inside an eventstream frame");
	if (r == 0 && *rc == 1 && cl->rq->converse) {
		struct sb t;
		sb_init(&t, &w->tmp, 256);
		xlate_c2a_end(&cl->rq->c2a, &t);
		if (t.oom || (t.len && buf_append(&u->evb, t.p, t.len) != 0))
			r = up_evs_fail(w, u, cl, 502, "out of memory");
		arena_reset(&w->tmp);
	}
	if (r == 1)
		*rc = 1;
	return r >= 0;
}

static void up_on_data_eof(struct worker *w, struct conn *u, bool eof)
{
	struct conn *cl = slot_peer(w, u);
	if (u->us == US_IDLE || !cl || !cl->rq) { /* closed or chatter while idle: drop it */
		slot_close(w, u);
		return;
	}
	if (u->resp_done) { /* bytes or a close after a whole answer: not reusable, nothing more */
		u->resp_close = true;
		return;
	}
	cl->rq->t_resp_ns = now_ns(); /* overhead: from these bytes' arrival to our send */
	if (!cl->rq->t_first_ns)
		cl->rq->t_first_ns = cl->rq->t_resp_ns;
	if (u->us != US_BODY) {
		int rc = up_head(w, u, cl);
		if (rc < 0)
			return;
		if (rc == 0) {
			if (eof)
				up_fail(w, u, 502, "provider closed the connection before answering");
			else
				up_kick(w, u);
			return;
		}
	}
	int rc = up_body(u, eof);
	if (rc < 0) {
		if (up_stream_begun(cl->rq)) {
			up_client.events(w, cl, NULL, true);
			slot_close(w, u);
		} else {
			up_fail(w, u, 502, "provider response ended early or had bad framing");
		}
		return;
	}
	if (u->evs && !up_evs_step(w, u, cl, &rc))
		return;
	u->resp_done = rc == 1;
	if (cl->rq->streaming && u->in.len - (u->evs ? u->fr_pos : u->ev_pos) > cl->rq->hold->cfg->max_response) {
		/* one event that never ends: refuse to hold it, end the stream */
		snprintf(cl->rq->err, sizeof(cl->rq->err), "provider sent an event over limits.max_response_bytes");
		up_client.events(w, cl, NULL, true);
		slot_close(w, u);
	} else if (cl->rq->streaming && u->evs && !up_stream_begun(cl->rq) && u->evb.len == 0 && !u->resp_done) {
		up_kick(w, u); /* Bedrock's head says nothing yet: an exception may still fail over */
	} else if (cl->rq->streaming) {
		up_client.events(w, cl, u, u->resp_done);
	} else if (u->resp_done) {
		up_client.answer(w, cl, u);
	} else if (u->in.len - u->body_start > cl->rq->hold->cfg->max_response) {
		up_fail(w, u, 502, "provider response exceeds limits.max_response_bytes");
	} else {
		up_kick(w, u);
	}
}

static void up_on_data(struct worker *w, struct conn *u) { up_on_data_eof(w, u, false); }

/* Completions for K_UP slots. */
static void up_complete(struct worker *w, struct conn *u, int op, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	switch (op) {
	case OP_CONNECT:
		if (res == 0) {
			struct conn *cl = slot_peer(w, u);
			if (!cl) {
				slot_close(w, u);
				return;
			}
			up_send_request(w, u, cl->rq);
		} else {
			up_fail(w, u, res == -ECANCELED ? 504 : 502, "cannot connect to provider: %s",
				res == -ECANCELED ? "connect timeout" : strerror(-res));
		}
		return;
	case OP_LINK_TIMEOUT:
		return;
	case OP_SEND:
		if (res < 0) {
			u->send_busy = false;
			up_fail(w, u, 502, "sending to provider failed: %s", strerror(-res));
			return;
		}
		if (u->tls) {
			u->send_busy = false;
			br_ssl_engine_sendrec_ack(&u->tls->cc.eng, (size_t)res);
			up_pump(w, u);
		} else if (loop_sent(w, u, res) && u->us == US_SENDING) {
			u->us = US_HEAD;
		}
		return;
	case OP_RECV:
		u->recv_busy = false;
		if (res < 0) {
			up_fail(w, u, 502, "provider connection failed: %s", strerror(-res));
			return;
		}
		if (u->tls) {
			if (res == 0) {
				up_on_data_eof(w, u, true);
				return;
			}
			br_ssl_engine_recvrec_ack(&u->tls->cc.eng, (size_t)res);
			up_pump(w, u);
			return;
		}
		u->in.len += (size_t)res;
		up_on_data_eof(w, u, res == 0);
		return;
	}
}

static void up_timeout(struct worker *w, struct conn *u)
{
	struct conn *cl = slot_peer(w, u);
	if (u->us == US_IDLE || !cl) {
		slot_close(w, u);
		return;
	}
	if (u->resp_done)
		return; /* the whole answer is in: the client's send deadline governs now */
	const struct provider *p = cl->rq->rt.c[cl->rq->ci].p;
	bool total = u->total_deadline_ms && w->now_ms >= u->total_deadline_ms;
	if (up_stream_begun(cl->rq)) {
		if (total)
			snprintf(cl->rq->err, sizeof(cl->rq->err), "provider %s exceeded total_timeout_ms (%ld ms)",
				 p->name, p->total_timeout_ms);
		else
			snprintf(cl->rq->err, sizeof(cl->rq->err), "stream idle for %ld ms", p->stream_idle_timeout_ms);
		up_client.events(w, cl, NULL, true);
		slot_close(w, u);
		return;
	}
	cl->rq->fresh_retry = true; /* not a stale pooled connection: no silent same-provider retry */
	if (total)
		up_fail(w, u, 504, "provider %s exceeded total_timeout_ms (%ld ms)", p->name, p->total_timeout_ms);
	else if (u->us == US_BODY)
		up_fail(w, u, 504, "provider %s did not finish its answer within %ld ms", p->name, p->timeout_ms);
	else
		up_fail(w, u, 504, "provider %s did not answer within %ld ms", p->name, p->timeout_ms);
}

/* ---- what the client reads of an answer (only up_ touches the upstream's buffers) ---- */

/* A whole answer's decoded body. */
static struct str up_answer_body(const struct conn *u)
{
	return (struct str){ u->in.p + u->body_start, u->dec_end - u->body_start };
}

/* The stream's next complete event at *pos (start from up_events_from), {.n = 0} when none
 * is complete yet; a finished stream's unterminated tail counts. *pos moves past it. */
static struct str up_next_event(const struct conn *u, size_t *pos)
{
	const char *b = u->evs ? u->evb.p : u->in.p; /* Bedrock's: decoded from its frames */
	size_t end = u->evs ? u->evb.len : u->dec_end;
	size_t len = sse_next(b + *pos, end - *pos);
	if (!len && u->resp_done && *pos < end)
		len = end - *pos;
	struct str ev = { b + *pos, len };
	*pos += len;
	return ev;
}

static size_t up_events_from(const struct conn *u) { return u->ev_pos; }

/* The whole answer is in (the client only has to take it). */
static bool up_answered(const struct conn *u) { return u->resp_done; }

/* The client took the events before pos; true when that was all of the answer. */
static bool up_consume(struct conn *u, size_t pos)
{
	u->ev_pos = pos;
	return u->resp_done && pos >= (u->evs ? u->evb.len : u->dec_end);
}

/* The client is sending what it took: read nothing more until up_resume. */
static void up_hold(struct worker *w, struct conn *u)
{
	u->paused = true;
	timer_set(w, u, 0);
}

/* The client's send is done: drop the taken events from `in`, and read on. true when a
 * complete event (or the end) is already there for the client. */
static bool up_resume(struct worker *w, struct conn *u, long idle_ms)
{
	if (u->evs) { /* the events taken leave evb; the frames already left `in` */
		memmove(u->evb.p, u->evb.p + u->ev_pos, u->evb.len - u->ev_pos);
		u->evb.len -= u->ev_pos;
		u->ev_pos = 0;
		u->paused = false;
		up_timer(w, u, idle_ms);
		if (sse_next(u->evb.p, u->evb.len) || u->resp_done)
			return true;
		up_kick(w, u);
		return false;
	}
	size_t shift = u->ev_pos - u->body_start;
	memmove(u->in.p + u->body_start, u->in.p + u->ev_pos, u->in.len - u->ev_pos);
	u->in.len -= shift;
	u->dec_pos -= shift;
	u->dec_end -= shift;
	u->ev_pos = u->body_start;
	u->paused = false;
	up_timer(w, u, idle_ms);
	if (sse_next(u->in.p + u->ev_pos, u->dec_end - u->ev_pos) || u->resp_done)
		return true;
	up_kick(w, u);
	return false;
}

static bool up_idle(const struct conn *u) { return u->us == US_IDLE; }
/* An upstream closed under a request that outlived its client (a drain, say): end it. */
static bool up_closing(struct worker *w, struct conn *u)
{
	struct conn *cl = slot_peer(w, u);
	if (cl && cl->held)
		up_client.failed(w, cl, 502, "the provider connection was closed");
	return false;
}
static void up_freeing(struct worker *w, struct conn *u)
{
	(void)w;
	free(u->tls);
	buf_free(&u->evb);
}

/* ======================================================================== *
 * 22. conn_ — client connections.                                          *
 *                                                                          *
 * States: CS_HEAD (reading a head, header deadline armed, or idle with the *
 * idle deadline), CS_BODY (reading the body), CS_BUSY (request dispatched; *
 * pipelined bytes wait in `in`), CS_CLOSE_AFTER (an error that breaks      *
 * framing: close once the answer is out). Receives are multishot over the  *
 * worker's provided buffers and copied into `in` at once, so an idle or    *
 * slow client pins no ring buffer. A request owns `arena` from head to     *
 * last byte sent; conn_request_end releases it.                            *
 *                                                                          *
 * A request's phase (enum rq_phase; conn_phase asserts the edges):         *
 *                                                                          *
 *   READ --> ROUTE --> AWAIT --> STREAM <--> PING                          *
 *     |        |  ^      | \       |                                       *
 *     |        |  |      |  BACKOFF (conn_next_attempt's delay) --> ROUTE  *
 *     |        |  +------+ (next key or candidate at once)                 *
 *     v        v         v          v                                      *
 *   FINAL <----+---------+----------+   (answer, error, or the last events)*
 *     |  ^                                                                 *
 *     v  |                                                                 *
 *    TAIL   (last byte held until the charge is durable)                   *
 *                                                                          *
 * READ --> MGMT --> FINAL: an /api request, answered by the management    *
 * thread (admin_handoff, admin_answers).                                   *
 * ROUTE --> CLUSTER --> AWAIT | ROUTE | FINAL: in a cluster, a request     *
 * admitted here waits for Redis's admission (conn_cluster_wait, answered  *
 * by conn_cluster_answers or decided by on_redis_down at its deadline).    *
 * And any phase --> DONE (conn_request_end: counted, logged, arena freed). *
 * Events (a send completed, a deadline, the upstream's hooks) switch on    *
 * the phase rather than decode flags.                                      *
 * ======================================================================== */

/* Input buffers of INBUF bytes are recycled through the worker, so a
 * keep-alive request costs no malloc; bigger ones (large bodies) are freed. */
static void conn_inbuf_take(struct worker *w, struct buf *b)
{
	if (b->p)
		return;
	b->p = w->ninbuf > 0 ? w->inbuf[--w->ninbuf] : malloc(INBUF);
	b->cap = b->p ? INBUF : 0;
}

static void conn_inbuf_give(struct worker *w, struct buf *b)
{
	if (b->len || !b->p)
		return;
	if (b->cap == INBUF && w->ninbuf < INBUF_CACHE) {
		w->inbuf[w->ninbuf++] = b->p;
		b->p = NULL;
		b->cap = 0;
	} else {
		buf_free(b);
	}
}

static void conn_recv_arm(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = loop_sqe(w);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BR_GROUP;
	io_uring_sqe_set_data64(sqe, UD(slot_idx(w, c), c->gen, OP_RECV));
	c->inflight++;
	c->recv_multishot = true;
}

/* ---- HTTPS clients: the engine between the socket and the request parser ---- */

#define TLS_CONNS_MAX 1024            /* per worker: ~34 KB of engine each */
#define TLS_CACHE_BYTES (256u << 10) /* per worker: ~2,000 sessions to resume */

/* A server engine for a connection from the HTTPS listener; false: refuse the connection. */
static bool conn_tls_begin(struct worker *w, struct conn *c)
{
	struct cfg_hold *h = w->hold;
	if (!h->cfg->tls || w->tls_conns >= TLS_CONNS_MAX || !(c->stls = malloc(sizeof(*c->stls))))
		return false;
	if (!w->tls_cache && (w->tls_cache = malloc(sizeof(*w->tls_cache)))) {
		unsigned char *store = malloc(TLS_CACHE_BYTES);
		if (store)
			br_ssl_session_cache_lru_init(w->tls_cache, store, TLS_CACHE_BYTES);
		else
			w->tls_cache = (free(w->tls_cache), NULL);
	}
	if (!tls_server_start(c->stls, h->cfg->tls, w->tls_cache)) {
		c->stls = (free(c->stls), NULL);
		return false;
	}
	c->tls_in.limit = 1u << 20;
	c->tls_hold = h; /* the chain and key stay while the handshake may use them */
	h->live++;
	w->tls_conns++;
	return true;
}

/* Bytes of the request stream: to `in`, or to `pend` while `in` is pinned by an answer. */
static int conn_take(struct worker *w, struct conn *c, const char *data, size_t n)
{
	const char *before = c->in.p;
	if (c->cs == CS_BUSY || c->cs == CS_CLOSE_AFTER) {
		c->pend.limit = c->in.limit;
		return buf_append(&c->pend, data, n);
	}
	conn_inbuf_take(w, &c->in);
	int rc = buf_append(&c->in, data, n);
	if (c->in.p != before && c->rq && c->cs == CS_BODY)
		http_rebase(c->rq->msg, before, c->in.p);
	return rc;
}

/* Ciphertext into the engine, plaintext out to the parser's buffers, records out. False: closed. */
static bool conn_tls_pump(struct worker *w, struct conn *c)
{
	br_ssl_engine_context *eng = &c->stls->sc.eng;
	for (bool progress = true; progress;) {
		unsigned st = br_ssl_engine_current_state(eng);
		unsigned char *p;
		size_t len;
		progress = false;
		if (st & BR_SSL_CLOSED) { /* a failed handshake, plain HTTP on this port, or close_notify */
			slot_close(w, c);
			return false;
		}
		if ((st & BR_SSL_RECVAPP) && (p = br_ssl_engine_recvapp_buf(eng, &len))) {
			if (conn_take(w, c, (const char *)p, len) != 0) {
				slot_close(w, c);
				return false;
			}
			br_ssl_engine_recvapp_ack(eng, len);
			progress = true;
		}
		if (c->tls_in.len && (st & BR_SSL_RECVREC) && (p = br_ssl_engine_recvrec_buf(eng, &len))) {
			len = MIN(len, c->tls_in.len);
			memcpy(p, c->tls_in.p, len);
			br_ssl_engine_recvrec_ack(eng, len);
			buf_consume(&c->tls_in, len);
			progress = true;
		}
	}
	loop_tls_flush(w, c);
	return true;
}

static void conn_accept(struct worker *w, int fd, int tls)
{
	if (tls) /* a certificate reloaded a moment ago is this handshake's */
		loop_adopt_config(w);
	struct cfg *cfg = w->hold->cfg;
	struct conn *c = g_draining ? NULL : slot_alloc(w, K_CLIENT, fd);
	if (!c) {
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->in.limit = cfg->max_header + cfg->max_body + BR_SIZE;
	c->cs = CS_HEAD;
	arena_init(&c->scratch, &w->acache);
	w->nclients++;
	M_ADD(&w->m, conns_accepted, 1);
	if (tls && !conn_tls_begin(w, c)) {
		slot_close(w, c);
		return;
	}
	timer_set(w, c, tls ? cfg->header_timeout_ms : cfg->idle_timeout_ms); /* (a handshake is a head) */
	conn_recv_arm(w, c);
}

/* ---- answers made by the gateway itself ---- */

/* The request phase's allowed successors (a phase may also be set again). */
#define PH(p) (1u << (p))
static const unsigned conn_phase_next[] __attribute__((unused)) = { /* (read by debug builds) */
	[RQ_READ] = PH(RQ_ROUTE) | PH(RQ_FINAL) | PH(RQ_DONE) | PH(RQ_MGMT),
	[RQ_MGMT] = PH(RQ_FINAL) | PH(RQ_DONE),
	[RQ_ROUTE] = PH(RQ_AWAIT) | PH(RQ_FINAL) | PH(RQ_DONE) | PH(RQ_CLUSTER),
	[RQ_CLUSTER] = PH(RQ_ROUTE) | PH(RQ_AWAIT) | PH(RQ_FINAL) | PH(RQ_DONE),
	[RQ_BACKOFF] = PH(RQ_ROUTE) | PH(RQ_DONE),
	[RQ_AWAIT] = PH(RQ_ROUTE) | PH(RQ_BACKOFF) | PH(RQ_STREAM) | PH(RQ_FINAL) | PH(RQ_DONE),
	[RQ_STREAM] = PH(RQ_PING) | PH(RQ_FINAL) | PH(RQ_DONE),
	[RQ_PING] = PH(RQ_STREAM) | PH(RQ_DONE),
	[RQ_FINAL] = PH(RQ_TAIL) | PH(RQ_DONE),
	[RQ_TAIL] = PH(RQ_FINAL) | PH(RQ_DONE),
	[RQ_DONE] = 0,
};
#undef PH

static void conn_phase(struct request *rq, enum rq_phase to)
{
	BF_ASSERT(rq->phase == to || (conn_phase_next[rq->phase] >> to & 1u));
	rq->phase = to;
}

static void conn_send_local(struct worker *w, struct conn *c, int status, const char *ctype,
			    struct str body, const char *extra)
{
	struct request *rq = c->rq;
	bool keep = c->cs != CS_CLOSE_AFTER && rq && rq->msg && rq->msg->keep_alive && !g_draining;
	bool head = rq && rq->msg && str_eq(rq->msg->method, "HEAD");
	struct sb h;
	sb_init(&h, &c->arena, 256);
	sb_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
		  http_reason(status), ctype, body.n, extra ? extra : "", keep ? "" : "Connection: close\r\n");
	if (!keep)
		c->cs = CS_CLOSE_AFTER;
	if (rq) {
		rq->status = status;
		rq->streaming = false; /* an earlier attempt's stream never reached the client */
		conn_phase(rq, RQ_FINAL);
	}
	struct iovec v[2] = { { h.p, h.len }, { (void *)body.p, head ? 0 : body.n } };
	if (h.oom) {
		slot_close(w, c);
		return;
	}
	c->cs = keep ? CS_BUSY : CS_CLOSE_AFTER;
	loop_send(w, c, v, 2);
	timer_set(w, c, w->hold->cfg->send_timeout_ms);
}

/* Which dialect the client speaks, judged by the path when the request never got far. */
static enum dialect conn_dialect(const struct conn *c)
{
	const struct http_msg *m = c->rq ? c->rq->msg : NULL;
	if (!m || !m->path.p)
		return D_OPENAI;
	return str_starts(m->path, "/anthropic") || str_starts(m->path, "/v1/messages") ? D_ANTHROPIC
											: D_OPENAI;
}

/* An error in the client's dialect: OpenAI {"error":{"message","type","code"}},
 * Anthropic {"type":"error","error":{"type","message"}}; `extra`: more header lines. */
static void conn_error_h(struct worker *w, struct conn *c, int status, const char *type, const char *msg,
			 const char *extra)
{
	struct sb b;
	sb_init(&b, &c->arena, 256);
	if (c->rq && c->rq->br) { /* Bedrock's: {"message"}, the class in x-amzn-ErrorType */
		sb_puts(&b, "{\"message\":");
		json_put_z(&b, msg);
		sb_puts(&b, "}");
		struct sb x;
		sb_init(&x, &c->arena, 128);
		sb_cat(&x, "x-amzn-ErrorType: ", prov_bedrock_error_name(status), "\r\n", extra ? extra : "", NULL);
		sb_put(&x, "", 1);
		extra = x.oom ? extra : x.p;
	} else if (conn_dialect(c) == D_ANTHROPIC) {
		sb_printf(&b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
			  xlate_status_type(status));
		json_put_z(&b, msg);
		sb_puts(&b, "}}");
	} else {
		sb_puts(&b, "{\"error\":{\"message\":");
		json_put_z(&b, msg);
		sb_puts(&b, ",\"type\":");
		json_put_z(&b, type);
		sb_printf(&b, ",\"code\":%d}}", status);
	}
	if (c->rq && !c->rq->err[0])
		snprintf(c->rq->err, sizeof(c->rq->err), "%s", msg);
	if (c->rq)
		gov_abort(&c->rq->gt, time(NULL)); /* nothing was served: release the reservation */
	conn_send_local(w, c, status, "application/json", sb_view(&b), extra);
}

static void conn_error(struct worker *w, struct conn *c, int status, const char *type, const char *msg)
{
	conn_error_h(w, c, status, type, msg, NULL);
}

/* Defined with the governance helpers below; the response paths call them. */
static void conn_gov_charge(struct worker *w, struct conn *c);
static void conn_send_final(struct worker *w, struct conn *c, struct iovec *v, int n);
static void conn_tail(struct worker *w, struct conn *c);
static void conn_on_sent(struct worker *w, struct conn *c);


/* ---- proxied answers ---- */

static const char *const passthrough_hdrs[] = { "x-request-id", "openai-processing-ms",
	"openai-version", "retry-after", "request-id" };

/* x-bifrost-provider and x-bifrost-attempts: the model came from the client, so
 * it goes through the header writer (no CR/LF, bounded). */
static void conn_provider_hdr(struct sb *h, const struct request *rq)
{
	const struct route_cand *rc = &rq->rt.c[rq->ci];
	sb_puts(h, "x-bifrost-provider: ");
	sb_hval_z(h, rc->p->name, 64);
	sb_puts(h, "/");
	sb_hval_z(h, rc->model, 256);
	sb_puts(h, "\r\nx-bifrost-attempts: ");
	sb_u64(h, (uint64_t)rq->attempts);
	sb_puts(h, "\r\n");
}

static void conn_resp_head(struct sb *h, struct request *rq, const struct http_msg *m, bool keep)
{
	sb_puts(h, "HTTP/1.1 ");
	sb_u64(h, (uint64_t)m->status);
	sb_cat(h, " ", http_reason(m->status), "\r\n", NULL);
	struct str ct = http_header(m, "content-type");
	sb_puts(h, "Content-Type: ");
	if (ct.n && !rq->xl)
		sb_str(h, ct);
	else
		sb_puts(h, "application/json");
	sb_puts(h, "\r\n");
	conn_provider_hdr(h, rq);
	for (int i = 0; i < m->nhdr; i++) {
		bool pass = str_starts(m->hdr[i].name, "x-ratelimit-");
		for (size_t k = 0; k < ARRAY_LEN(passthrough_hdrs) && !pass; k++)
			pass = str_case_eq(m->hdr[i].name, passthrough_hdrs[k]);
		if (pass) {
			sb_str(h, m->hdr[i].name);
			sb_puts(h, ": ");
			sb_str(h, m->hdr[i].value);
			sb_puts(h, "\r\n");
		}
	}
	if (rq->br && m->status >= 400)
		sb_cat(h, "x-amzn-ErrorType: ", prov_bedrock_error_name(m->status), "\r\n", NULL);
	if (!keep)
		sb_puts(h, "Connection: close\r\n");
}

/* The provider's `usage` object, read in the provider's dialect (xlate_ normalises). */
static void conn_usage(struct request *rq, struct json *j, int usage)
{
	if (rq->ep == EP_RESPONSES && rq->xl == XL_NONE)
		xlate_usage_from_r(j, usage, &rq->xu);
	else if (rq->rt.c[rq->ci].p->kind->dialect == D_ANTHROPIC)
		xlate_usage_from_a(j, usage, &rq->xu);
	else
		xlate_usage_from_o(j, usage, &rq->xu);
}

/* Does this text carry a `"usage": {` member? (cheap filter before a parse) */
static bool conn_has_usage(const char *p, size_t n)
{
	const char *e = p + n;
	while ((p = memmem(p, (size_t)(e - p), "\"usage\"", 7))) {
		p += 7;
		while (p < e && (json_ws(*p) || *p == ':'))
			p++;
		if (p < e && *p == '{')
			return true;
	}
	return false;
}

/* Parse a JSON text for usage; returns true if it is a usage-only stream chunk. */
static bool conn_read_usage(struct conn *cl, const char *p, size_t n)
{
	static const char *const k[] = { "usage", "choices", "message", "response" };
	static const char *const mk[] = { "usage" };
	struct json j;
	int v[4], mu;
	if (!conn_has_usage(p, n) || json_parse(&j, &cl->scratch, p, n) != 0 ||
	    json_obj_get(&j, 0, k, 4, v, NULL) != 0)
		return false;
	conn_usage(cl->rq, &j, v[0]);
	for (int i = 2; i <= 3; i++) /* Anthropic's message_start, Responses' response.completed */
		if (v[i] >= 0 && json_obj_get(&j, v[i], mk, 1, &mu, NULL) == 0)
			conn_usage(cl->rq, &j, mu);
	return v[1] >= 0 && j.tok[v[1]].type == JSMN_ARRAY && j.tok[v[1]].size == 0;
}

/* Retry-After in ms (delta-seconds form), or -1. */
static long conn_retry_after(const struct http_msg *m)
{
	struct str v = http_header(m, "retry-after");
	long s = 0;
	if (!v.n || v.n > 6)
		return -1;
	for (size_t i = 0; i < v.n; i++) {
		if (!isdigit((unsigned char)v.p[i]))
			return -1;
		s = s * 10 + (v.p[i] - '0');
	}
	return s * 1000;
}

#define RETRY_WAIT_MAX_MS 10000 /* longer Retry-After: move on to the next candidate */

/* Why an attempt failed, as far as choosing the next one goes. */
enum fail {
	FAIL_KEY,     /* 401/403: the provider refused this credential */
	FAIL_RATE,    /* 429: this credential is rate limited */
	FAIL_SERVER,  /* a 5xx answer, a reset, a refused connection, bad framing */
	FAIL_TIMEOUT, /* our deadline passed: it already cost the client a whole timeout */
};

static enum fail conn_fail_class(int status)
{
	return status == 401 || status == 403 ? FAIL_KEY
	       : status == 429		      ? FAIL_RATE
	       : status == 504		      ? FAIL_TIMEOUT
					      : FAIL_SERVER;
}

/* Add the current candidate's failed attempt to the log line's "failed" list. */
static void conn_trail(struct request *rq, int status)
{
	const struct route_cand *rc = &rq->rt.c[rq->ci];
	size_t tl = strlen(rq->trail);
	snprintf(rq->trail + tl, sizeof(rq->trail) - tl, "%s%s/%s:%d", tl ? " " : "", rc->p->name, rc->model,
		 status);
}

/* Does the current candidate have a key not tried yet? */
static bool conn_key_left(const struct request *rq)
{
	const struct route_cand *rc = &rq->rt.c[rq->ci];
	return rq->koff + 1 < route_nkeys(rc->p, rc->model);
}

/*
 * The one place that decides what follows a failed attempt (status: the provider's, or
 * 502/504 for transport failures; why: the log's error, naming the provider that failed).
 * A refused or rate-limited key: the candidate's next key, at once. A server failure: the
 * same key again after jittered exponential backoff (or the provider's Retry-After, up to
 * RETRY_WAIT_MAX_MS), up to max_retries times. A timeout, or nothing left on this
 * candidate: the next candidate, at once. Returns the delay in ms, or -1: give up.
 */
static long conn_next_attempt(struct worker *w, struct conn *cl, int status, long retry_after_ms,
			      const char *why)
{
	struct request *rq = cl->rq;
	const struct route_cand *rc = &rq->rt.c[rq->ci];
	conn_trail(rq, status);
	snprintf(rq->err, sizeof(rq->err), "%s", why);
	route_cb_result(&rc->p->brk[rq->kidx], &rq->hold->cfg->cb, false, (int64_t)w->now_ms);
	enum fail f = conn_fail_class(status);
	if ((f == FAIL_KEY || f == FAIL_RATE) && conn_key_left(rq)) {
		rq->koff++;
		return 0;
	}
	if (f == FAIL_SERVER && rq->retries < rc->p->max_retries && retry_after_ms <= RETRY_WAIT_MAX_MS) {
		long base = 50L << MIN(rq->retries, 6);
		rq->retries++;
		return retry_after_ms >= 0 ? retry_after_ms : base + (long)(rng_next(&w->rng) % (uint64_t)base);
	}
	if (rq->ci + 1 >= rq->rt.n)
		return -1;
	rq->ci++;
	rq->retries = rq->koff = 0;
	return 0;
}

static void conn_attempt(struct worker *w, struct conn *c);

/* Is an answer with this status worth another attempt (this key, the next, or a fallback)? */
static bool conn_answer_retryable(const struct request *rq, int status)
{
	enum fail f = conn_fail_class(status);
	return f == FAIL_RATE || status >= 500 || (f == FAIL_KEY && conn_key_left(rq));
}

/* Start the next attempt now, or after delay_ms on the client's timer. */
static void conn_retry(struct worker *w, struct conn *cl, long delay_ms)
{
	if (delay_ms <= 0) {
		conn_attempt(w, cl);
		return;
	}
	conn_phase(cl->rq, RQ_BACKOFF);
	timer_set(w, cl, delay_ms);
}

/* An error body that echoes the provider credential back (some do, in "invalid key"
 * messages) must not hand it to the client: every occurrence becomes "sk-...redacted".
 * false only when out of memory. */
static bool conn_redact(struct conn *cl, struct iovec *body)
{
	const char *key = cl->rq->key;
	size_t kn = key ? strlen(key) : 0;
	const char *p = body->iov_base, *e = p + body->iov_len, *hit;
	if (kn < 8 || !(hit = memmem(p, body->iov_len, key, kn)))
		return true;
	struct sb t;
	sb_init(&t, &cl->arena, body->iov_len);
	for (; hit; hit = memmem(p, (size_t)(e - p), key, kn)) {
		sb_put(&t, p, (size_t)(hit - p));
		sb_puts(&t, "sk-...redacted");
		p = hit + kn;
	}
	sb_put(&t, p, (size_t)(e - p));
	*body = (struct iovec){ t.p, t.len };
	return !t.oom;
}

/* A whole answer in the provider's dialect → the client's (errors too); a 200's usage into rq->xu. */
static bool conn_translate_body(struct conn *cl, int status, struct iovec *body)
{
	struct request *rq = cl->rq;
	struct sb t;
	struct xlate_usage xu = rq->xu;
	const char *p = body->iov_base;
	size_t n = body->iov_len;
	sb_init(&t, &cl->arena, n + n / 4 + 256);
	int rc = 0;
	long long now = (long long)time(NULL);
	if (status != 200 && rq->xl == XL_R2O)
		return true; /* the same error body in both OpenAI APIs */
	if (status == 200 && rq->xl == XL_R2O) {
		rc = xlate_resp_o2r(&cl->arena, p, n, rq->o.model, &rq->rnames, now, &t, &xu);
	} else if (status == 200 && rq->xl == XL_R2A) { /* Messages -> Chat -> Responses */
		struct sb chat;
		struct xlate_usage cu = { 0 };
		sb_init(&chat, &cl->arena, n + n / 4 + 256);
		rc = xlate_resp_a2o(&cl->arena, p, n, rq->o.model, now, &chat, &xu);
		rc = rc || chat.oom ? -EBADMSG : xlate_resp_o2r(&cl->arena, chat.p, chat.len, rq->o.model, &rq->rnames, now, &t, &cu);
	} else if (status != 200 && (rq->xl == XL_A2O || rq->xl == XL_NONE)) /* (XL_NONE: Bedrock's shape) */
		xlate_error_o2a(p, n, status, &cl->arena, &t);
	else if (status != 200)
		xlate_error_a2o(p, n, status, &cl->arena, &t);
	else if (rq->xl == XL_A2O)
		rc = xlate_resp_o2a(&cl->arena, p, n, rq->o.model, &t, &xu);
	else
		rc = xlate_resp_a2o(&cl->arena, p, n, rq->o.model, now, &t, &xu);
	if (rc || t.oom)
		return false;
	if (status == 200)
		rq->xu = xu; /* the usage, read once, by the translator */
	*body = (struct iovec){ t.p, t.len };
	return true;
}

static void conn_request_end(struct worker *w, struct conn *c);

/* An orphaned request is over (its answer billed, or its attempt failed): release its
 * upstream (pooled if the answer is whole), log it, and let the client's slot go. */
static void conn_orphan_end(struct worker *w, struct conn *cl)
{
	cl->held = false; /* first: closing the upstream must not report back to it */
	struct conn *u = slot_peer(w, cl);
	if (u)
		up_finish(w, u);
	slot_unlink(w, cl);
	conn_request_end(w, cl);
	cl->lent--;
	slot_free_if_done(w, cl);
}

/* logs.content: keep up to logs.content_max_bytes of the request (0) or the answer (1). */
static void conn_content(struct request *rq, int which, const void *p, size_t n)
{
	const struct cfg *cfg = rq->hold->cfg;
	struct buf *b = &rq->content[which];
	if (!cfg->logs_content || !rq->llm || b->len >= cfg->logs_content_max)
		return;
	b->limit = cfg->logs_content_max;
	buf_append(b, p, MIN(n, cfg->logs_content_max - b->len));
}

/* Bedrock's Converse answer, made a Messages one (its usage is read from that). false: it
 * is not a Converse answer. */
static bool conn_converse_answer(struct conn *cl, struct str *raw)
{
	struct request *rq = cl->rq;
	struct xlate_usage xu = { 0 };
	struct sb t;
	sb_init(&t, &cl->arena, raw->n + 256);
	if (xlate_resp_c2a(&cl->arena, raw->p, raw->n, rq->o.model, rq->c2a.id, &t, &xu) != 0 || t.oom)
		return false;
	*raw = sb_view(&t);
	return true;
}

/* A /bedrock/ client's answer in Bedrock's shape: errors as {"message"}, a Converse
 * client's answer as Converse's. false when out of memory or not translatable. */
static bool conn_bedrock_reply(struct conn *cl, int status, struct iovec *body)
{
	struct request *rq = cl->rq;
	struct sb t;
	struct xlate_usage xu = { 0 };
	sb_init(&t, &cl->arena, body->iov_len + 256);
	if (status != 200)
		xlate_error_x2b(body->iov_base, body->iov_len, status, &cl->arena, &t);
	else if (rq->br == BR_CONVERSE && xlate_resp_a2c(&cl->arena, body->iov_base, body->iov_len, &t, &xu) != 0)
		return false;
	else if (rq->br != BR_CONVERSE)
		return true;
	*body = (struct iovec){ t.p, t.len };
	return !t.oom;
}

static void conn_up_answer(struct worker *w, struct conn *cl, struct conn *u)
{
	struct request *rq = cl->rq;
	const struct http_msg *m = u->resp;
	struct str raw = up_answer_body(u);
	bool keep = rq->msg->keep_alive && !g_draining;
	bool unread = rq->converse && m->status == 200 && !conn_converse_answer(cl, &raw);
	struct sb h;
	if (rq->orphan) { /* nobody to answer: bill what the provider did, no retry */
		rq->status = m->status;
		if (m->status == 200)
			conn_read_usage(cl, raw.p, raw.n);
		conn_gov_charge(w, cl);
		conn_orphan_end(w, cl);
		return;
	}
	if (conn_answer_retryable(rq, m->status)) {
		char why[sizeof(rq->err)];
		snprintf(why, sizeof(why), "provider %s answered %d", rq->rt.c[rq->ci].p->name, m->status);
		long delay = conn_next_attempt(w, cl, m->status, conn_retry_after(m), why);
		if (delay >= 0) {
			up_finish(w, u);
			conn_retry(w, cl, delay);
			return;
		}
	}
	rq->status = m->status;
	if (m->status != 429 && m->status < 500)
		route_cb_result(&rq->rt.c[rq->ci].p->brk[rq->kidx], &rq->hold->cfg->cb, true,
				(int64_t)w->now_ms);
	struct iovec body = { (void *)raw.p, raw.n };
	bool redacted = m->status < 400 || conn_redact(cl, &body);
	bool bedrock_error = m->status != 200 && rq->rt.c[rq->ci].p->kind->bedrock; /* {"message"} */
	bool ok = !unread && redacted && ((!rq->xl && !bedrock_error) || conn_translate_body(cl, m->status, &body));
	if (ok && rq->br)
		ok = conn_bedrock_reply(cl, m->status, &body);
	if (m->status == 200 && (!rq->xl || !ok)) /* (a translated answer's usage came with it) */
		conn_read_usage(cl, raw.p, raw.n);
	conn_gov_charge(w, cl); /* the provider billed it, whatever the client gets */
	if (!ok) {
		up_release(w, u, false);
		conn_error(w, cl, 502, "upstream_error",
			   redacted ? "the provider's answer could not be translated" : "out of memory");
		return;
	}
	conn_content(rq, 1, body.iov_base, body.iov_len);
	sb_init(&h, &cl->arena, 512);
	conn_resp_head(&h, rq, m, keep);
	sb_puts(&h, "Content-Length: ");
	sb_u64(&h, body.iov_len);
	sb_puts(&h, "\r\n\r\n");
	if (h.oom) {
		slot_close(w, cl);
		return;
	}
	struct iovec v[2] = { { h.p, h.len }, body };
	cl->cs = keep ? CS_BUSY : CS_CLOSE_AFTER;
	rq->overhead_ns += now_ns() - rq->t_resp_ns;
	up_hold(w, u); /* the answer is whole: read nothing more into `in` */
	if (!rq->xl)
		slot_borrow(w, cl, u);
	conn_send_final(w, cl, v, 2);
}

/* Raw relay: iovecs over the complete events in `in` (the usage chunk the client
 * did not ask for is left out). Returns the payload bytes; *done is cleared if
 * unconsumed bytes remain. */
static size_t conn_relay_events(struct conn *cl, struct conn *u, struct iovec *v, int *n, bool *done)
{
	struct request *rq = cl->rq;
	size_t pos = up_events_from(u), payload = 0;
	while (*n < SEND_IOV_MAX - 4) {
		struct str ev = up_next_event(u, &pos);
		if (!ev.n)
			break;
		struct str data = sse_data(ev.p, ev.n);
		bool drop = data.n && data.p[0] == '{' && conn_read_usage(cl, data.p, data.n) && !rq->o.client_usage;
		rq->content_chars += rq->ep == EP_RESPONSES ? xlate_delta_chars(data.p, data.n)
							    : xlate_content_chars(data.p, data.n);
		if (drop)
			continue;
		struct iovec *last = &v[*n - 1];
		if (*n > 1 && (const char *)last->iov_base + last->iov_len == ev.p)
			last->iov_len += ev.n;
		else
			v[(*n)++] = (struct iovec){ (void *)ev.p, ev.n };
		payload += ev.n;
	}
	*done = up_consume(u, pos);
	return payload;
}

/* XL_R2A: Chat chunks (from the Anthropic events) on into Responses events. */
static void conn_r2a_feed(struct conn *cl, const struct sb *chat, struct sb *t)
{
	size_t len;
	for (size_t off = 0; !chat->oom && (len = sse_next(chat->p + off, chat->len - off)) > 0; off += len) {
		struct str d = sse_data(chat->p + off, len);
		if (d.p)
			xlate_o2r_chunk(&cl->rq->xs.r2a.o2r, &cl->scratch, d.p, d.n, t);
	}
}

/* One provider event, translated into `t` (scratch memory). */
static void conn_xlate_event(struct conn *cl, struct str ev, struct sb *t)
{
	struct request *rq = cl->rq;
	struct str data = sse_data(ev.p, ev.n), name;
	struct sb chat;
	rq->content_chars += xlate_content_chars(data.p, data.n);
	switch (rq->xl) {
	case XL_R2O:
		xlate_o2r_chunk(&rq->xs.o2r, &cl->scratch, data.p, data.n, t);
		break;
	case XL_A2O:
		xlate_o2a_chunk(&rq->xs.o2a, &cl->scratch, data.p, data.n, t);
		break;
	case XL_R2A:
		name = sse_field(ev.p, ev.n, "event");
		sb_init(&chat, &cl->scratch, 512);
		xlate_a2o_event(&rq->xs.r2a.a2o, &cl->scratch, name.p, name.n, data.p, data.n, &chat);
		conn_r2a_feed(cl, &chat, t);
		break;
	default:
		name = sse_field(ev.p, ev.n, "event");
		xlate_a2o_event(&rq->xs.a2o, &cl->scratch, name.p, name.n, data.p, data.n, t);
	}
}

/* A translated stream is over: its closing events, or `error` in the client's dialect. */
static void conn_xlate_end(struct conn *cl, const char *error, struct sb *t)
{
	struct request *rq = cl->rq;
	struct sb chat;
	switch (rq->xl) {
	case XL_R2O:
		xlate_o2r_end(&rq->xs.o2r, error, t);
		break;
	case XL_A2O:
		xlate_o2a_end(&rq->xs.o2a, error, t);
		break;
	case XL_R2A:
		if (!error) { /* the Chat side's finish and usage first */
			sb_init(&chat, &cl->scratch, 256);
			xlate_a2o_end(&rq->xs.r2a.a2o, NULL, &chat);
			conn_r2a_feed(cl, &chat, t);
		}
		xlate_o2r_end(&rq->xs.r2a.o2r, error, t);
		break;
	default:
		xlate_a2o_end(&rq->xs.a2o, error, t);
	}
}

/* Translated relay: every complete event through the stream translator into `t`
 * (scratch memory, reset once the client took the batch). */
static void conn_xlate_events(struct conn *cl, struct conn *u, struct sb *t, bool *done)
{
	struct request *rq = cl->rq;
	size_t pos = up_events_from(u);
	for (struct str ev; (ev = up_next_event(u, &pos)).n;)
		conn_xlate_event(cl, ev, t);
	*done = up_consume(u, pos);
	rq->xu = rq->xl == XL_R2O ? rq->xs.o2r.usage : rq->xl == XL_R2A ? rq->xs.r2a.a2o.usage
		: rq->xl == XL_A2O ? rq->xs.o2a.usage : rq->xs.a2o.usage; /* the translator read it */
	if (*done)
		conn_xlate_end(cl, NULL, t);
}

/* The stream failed after its head went out: end it with an error in the client's dialect. */
static void conn_stream_error(struct conn *cl, struct sb *t)
{
	struct request *rq = cl->rq;
	const char *msg = rq->err[0] ? rq->err : "provider stream failed";
	if (rq->xl) {
		conn_xlate_end(cl, msg, t);
	} else if (rq->ep == EP_RESPONSES) {
		sb_puts(t, "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":"
			   "\"failed\",\"error\":{\"code\":\"server_error\",\"message\":");
		json_put_z(t, msg);
		sb_puts(t, "}}}\n\n");
	} else if (prov_dialect(rq->ep) == D_ANTHROPIC) {
		sb_puts(t, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":");
		json_put_z(t, msg);
		sb_puts(t, "}}\n\n");
	} else {
		sb_puts(t, "data: {\"error\":{\"message\":");
		json_put_z(t, msg);
		sb_puts(t, ",\"type\":\"upstream_error\"}}\n\n");
	}
}

/* The complete events, copied into `t` (to be framed for a /bedrock/ client). */
static void conn_copy_events(struct conn *cl, struct conn *u, struct sb *t, bool *done)
{
	struct iovec v[SEND_IOV_MAX];
	int n = 1;
	conn_relay_events(cl, u, v, &n, done);
	for (int i = 1; i < n; i++)
		sb_put(t, v[i].iov_base, v[i].iov_len);
}

/* Anthropic events → Bedrock's frames: a chunk each ({"bytes": base64 of the event}); an
 * error event becomes an exception frame; pings are dropped (Bedrock sends none). */
static struct sb conn_bedrock_frames(struct conn *cl, const struct sb *t)
{
	struct sb f;
	sb_init(&f, &cl->scratch, t->len * 2 + 256);
	size_t len;
	for (size_t off = 0; !t->oom && (len = sse_next(t->p + off, t->len - off)) > 0; off += len) {
		struct str ev = { t->p + off, len }, data = sse_data(ev.p, ev.n), name = sse_field(ev.p, ev.n, "event");
		if (!data.n || str_eq(name, "ping"))
			continue;
		if (!str_eq(name, "error")) {
			if (cl->rq->br == BR_CONVERSE_STREAM)
				xlate_a2c_event(&cl->scratch, name, data, &cl->rq->bu, &f);
			else
				evs_sse_to_chunk(&f, data);
			continue;
		}
		const char *type = memmem(data.p, data.n, "rate_limit_error", 16) ? "throttlingException"
				 : memmem(data.p, data.n, "overloaded_error", 16) ? "serviceUnavailableException"
				 : memmem(data.p, data.n, "timeout_error", 13) ? "modelTimeoutException"
				 : "internalServerException";
		struct json j; /* the provider's own words, else ours */
		int m = json_parse(&j, &cl->scratch, data.p, data.n) ? -1 : xlate_member(&j, xlate_member(&j, 0, "error"), "message");
		const char *msg = m >= 0 ? json_str(&j, &cl->scratch, m, NULL) : NULL;
		evs_exception(&f, type, msg ? msg : cl->rq->err[0] ? cl->rq->err : "the model's stream failed");
	}
	f.oom |= t->oom;
	return f;
}

/* The stream's head, once (nothing per batch comes from the arena); false: out of memory,
 * the client is closed. */
static bool conn_stream_head(struct worker *w, struct conn *cl, struct sb *h, bool chunked, bool keep)
{
	struct request *rq = cl->rq;
	rq->status = 200;
	conn_phase(rq, RQ_STREAM);
	route_cb_result(&rq->rt.c[rq->ci].p->brk[rq->kidx], &rq->hold->cfg->cb, true, (int64_t)w->now_ms);
	sb_init(h, &cl->arena, 256);
	sb_cat(h, "HTTP/1.1 200 OK\r\nContent-Type: ", rq->br ? "application/vnd.amazon.eventstream" : "text/event-stream",
	       "\r\nCache-Control: no-cache\r\n", NULL);
	conn_provider_hdr(h, rq);
	sb_cat(h, chunked ? "Transfer-Encoding: chunked\r\n" : "", keep ? "" : "Connection: close\r\n", "\r\n",
	       NULL);
	rq->overhead_ns += now_ns() - rq->t_resp_ns;
	if (h->oom)
		slot_close(w, cl);
	return !h->oom;
}

/* Relay complete SSE events (translated if need be); u == NULL ends the stream
 * with an error event. */
static void conn_up_events(struct worker *w, struct conn *cl, struct conn *u, bool done)
{
	struct request *rq = cl->rq;
	struct iovec v[SEND_IOV_MAX];
	int n = 1; /* v[0]: the head, once */
	size_t payload = 0;
	if (rq && rq->orphan) { /* (a stream the client never asked for: nothing to bill from) */
		rq->status = 502;
		conn_orphan_end(w, cl);
		return;
	}
	if (cl->send_busy || !rq)
		return; /* resumed from conn_on_sent */
	bool chunked = rq->msg->minor >= 1; /* HTTP/1.0: the close ends the stream */
	bool keep = chunked && rq->msg->keep_alive && !g_draining;
	if (u && !rq->xl && !rq->br) {
		payload = conn_relay_events(cl, u, v, &n, &done);
	} else {
		struct sb t;
		sb_init(&t, &cl->scratch, 1024);
		if (u && rq->xl) {
			conn_xlate_events(cl, u, &t, &done);
		} else if (u) {
			conn_copy_events(cl, u, &t, &done);
		} else {
			conn_stream_error(cl, &t);
			rq->stream_broken = done = true;
		}
		if (rq->br)
			t = conn_bedrock_frames(cl, &t);
		if (t.len && !t.oom)
			v[n++] = (struct iovec){ t.p, t.len };
		payload = t.oom ? 0 : t.len;
	}
	for (int i = 1; i < n; i++)
		conn_content(rq, 1, v[i].iov_base, v[i].iov_len);
	struct sb h = { 0 };
	if (rq->phase == RQ_AWAIT && !conn_stream_head(w, cl, &h, chunked, keep))
		return;
	v[0] = (struct iovec){ h.p, h.len };
	if (chunked && payload) { /* one chunk per batch: size line, events, CRLF */
		int len = snprintf(rq->chunk_line, sizeof(rq->chunk_line), "%zx\r\n", payload);
		memmove(&v[2], &v[1], sizeof(v[0]) * (size_t)(n - 1));
		v[1] = (struct iovec){ rq->chunk_line, (size_t)len };
		n++;
		v[n++] = (struct iovec){ "\r\n", 2 };
	}
	if (chunked && done)
		v[n++] = (struct iovec){ "0\r\n\r\n", 5 };
	if (done)
		conn_phase(rq, RQ_FINAL); /* (before the charge: a stream ended properly is not cut) */
	rq->streamed += payload;
	if (!keep && done)
		cl->cs = CS_CLOSE_AFTER;
	if (!h.len && n == 1 && !done) { /* nothing complete yet: read on */
		if (u)
			up_kick(w, u);
		return;
	}
	if (!h.len && n == 1) { /* the end, with nothing left to say (HTTP/1.0: the close ends it) */
		conn_gov_charge(w, cl);
		conn_on_sent(w, cl);
		return;
	}
	if (u) { /* wait for the client: no reads, no idle deadline, `in` borrowed if relayed raw */
		up_hold(w, u);
		if (!rq->xl)
			slot_borrow(w, cl, u);
	}
	if (!done) {
		timer_set(w, cl, rq->hold->cfg->stream_ping_ms);
		loop_send(w, cl, v, n);
		return;
	}
	timer_set(w, cl, 0);
	conn_gov_charge(w, cl);
	conn_send_final(w, cl, v, n);
}

/* The attempt failed before an answer: the next attempt, or the error (an event, if the
 * stream has begun). */
static void conn_up_failed(struct worker *w, struct conn *cl, int status, const char *msg)
{
	struct request *rq = cl->rq;
	if (rq && rq->orphan) {
		snprintf(rq->err, sizeof(rq->err), "%s (after the client left)", msg);
		rq->status = status;
		conn_orphan_end(w, cl);
		return;
	}
	if (cl->closing || !rq)
		return;
	if (up_stream_begun(rq)) {
		conn_up_events(w, cl, NULL, true);
		return;
	}
	const char *name = rq->rt.c[rq->ci].p->name; /* the log and the client learn who failed */
	size_t nl = strlen(name);
	char why[sizeof(rq->err)];
	if (strncmp(msg, "provider ", 9) == 0 && strncmp(msg + 9, name, nl) == 0 && msg[9 + nl] == ' ')
		snprintf(why, sizeof(why), "%s", msg);
	else
		snprintf(why, sizeof(why), "provider %s: %s", name, msg);
	long delay = conn_next_attempt(w, cl, status, -1, why);
	if (delay >= 0)
		conn_retry(w, cl, delay);
	else
		conn_error(w, cl, status, status == 504 ? "timeout_error" : "upstream_error", why);
}

/* Nothing for stream_ping_ms: send the client a ping (Anthropic's `ping` event, an
 * SSE comment for OpenAI clients) so it does not give up on a slow provider. */
static void conn_stream_ping(struct worker *w, struct conn *c)
{
	static const char anth[] = "event: ping\ndata: {\"type\": \"ping\"}\n\n", oai[] = ": ping\n\n";
	struct request *rq = c->rq;
	bool a = prov_dialect(rq->ep) == D_ANTHROPIC;
	size_t n = a ? sizeof(anth) - 1 : sizeof(oai) - 1;
	timer_set(w, c, rq->hold->cfg->stream_ping_ms);
	if (c->send_busy || rq->msg->minor < 1 || rq->br) /* a slow client needs no ping; HTTP/1.0 has no */
		return; /* chunks; Bedrock's eventstream has no ping */
	int len = snprintf(rq->chunk_line, sizeof(rq->chunk_line), "%zx\r\n", n);
	struct iovec v[3] = { { rq->chunk_line, (size_t)len }, { (void *)(a ? anth : oai), n }, { "\r\n", 2 } };
	conn_phase(rq, RQ_PING);
	loop_send(w, c, v, 3);
}

/* The client took a batch of events: drop them from `in` and read on. */
static void conn_stream_resume(struct worker *w, struct conn *cl, struct conn *u)
{
	arena_reset(&cl->scratch);
	if (up_resume(w, u, cl->rq->rt.c[cl->rq->ci].p->stream_idle_timeout_ms))
		conn_up_events(w, cl, u, u->resp_done);
}

/* ---- request lifecycle ---- */

/* One JSON line per request. Every outside value is bounded before it is escaped
 * (at most 6 bytes out per byte in), so the line always fits its buffer. */
static void conn_log(struct worker *w, struct conn *c, struct request *rq)
{
	char line[8192];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	const struct route_cand *rc = rq->ci < rq->rt.n ? &rq->rt.c[rq->ci] : NULL;
	uint64_t up_ns = rq->t_up_ns ? now_ns() - rq->t_up_ns : 0;
	struct sb s = { .a = NULL, .p = line, .cap = sizeof(line) };
	sb_printf(&s, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"worker\":%d,\"method\":",
		  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		  ts.tv_nsec / 1000000, w->id);
	json_put_str(&s, rq->msg->method.p, MIN(rq->msg->method.n, 16));
	sb_puts(&s, ",\"path\":");
	json_put_str(&s, rq->msg->path.p, MIN(rq->msg->path.n, 200));
	sb_printf(&s, ",\"status\":%d,\"provider\":", rq->status);
	if (rc) {
		char pm[300];
		int n = snprintf(pm, sizeof(pm), "%s/%s", rc->p->name, rc->model);
		json_put_str(&s, pm, (size_t)MIN(n, (int)sizeof(pm) - 1));
	} else {
		sb_puts(&s, "null");
	}
	sb_printf(&s, ",\"attempts\":%d", rq->attempts);
	if (rq->trail[0]) {
		sb_puts(&s, ",\"failed\":");
		json_put_z(&s, rq->trail);
	}
	sb_printf(&s, ",\"stream\":%s,\"upstream_ms\":%.3f,\"overhead_us\":%.1f,\"in_tokens\":%lld,"
		      "\"out_tokens\":%lld,\"cached_tokens\":%lld,\"cache_write_tokens\":%lld",
		  rq->streaming ? "true" : "false",
		  (double)up_ns / 1e6, (double)rq->overhead_ns / 1e3, rq->xu.in, rq->xu.out, rq->xu.cache_read,
		  rq->xu.cache_write);
	if (rq->xu.clamped)
		sb_puts(&s, ",\"usage_clamped\":true");
	if (rq->orphan)
		sb_puts(&s, ",\"client_left\":true");
	if (rq->charged)
		sb_printf(&s, ",\"cost_usd\":%lld.%06lld", (long long)(rq->cost_micros / 1000000),
			  (long long)(rq->cost_micros % 1000000));
	if (rq->err[0]) { /* the last failure's reason; on a success it explains "failed" */
		sb_puts(&s, rq->status >= 400 ? ",\"error\":" : ",\"last_failure\":");
		json_put_z(&s, rq->err);
	}
	sb_puts(&s, "}\n");
	if (!s.oom)
		log_line(w, s.p, s.len);
	else
		M_ADD(&w->m, log_dropped, 1);
}

/* The client's "ip:port", asked once per connection (not per request). */
static const char *conn_peer(struct conn *c)
{
	struct sockaddr_storage sa;
	socklen_t n = sizeof(sa);
	char host[INET6_ADDRSTRLEN] = "?";
	if (c->peer_addr[0] || getpeername(c->fd, (struct sockaddr *)&sa, &n) != 0)
		return c->peer_addr;
	if (sa.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(c->peer_addr, sizeof(c->peer_addr), "%s:%u", host, ntohs(a->sin_port));
	} else if (sa.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(c->peer_addr, sizeof(c->peer_addr), "[%s]:%u", host, ntohs(a->sin6_port));
	}
	return c->peer_addr;
}

/* A record field: at most cap - 1 bytes, NUL-terminated (memcpy, not printf: per request). */
static void conn_copy(char *dst, size_t cap, struct str v)
{
	size_t n = v.p ? MIN(v.n, cap - 1) : 0;
	memcpy(dst, v.p ? v.p : "", n);
	dst[n] = 0;
}

#define conn_copy_z(dst, z) conn_copy((dst), sizeof(dst), (struct str){ (z), strlen(z) })

/* The request's record for the log store, filled in place in the worker's ring. */
static void conn_log_store(struct worker *w, struct conn *c, struct request *rq)
{
	struct ldb_rec *r = w->ldb ? ldb_claim(w->ldb) : NULL;
	if (!r) {
		M_ADD(&w->m, log_store_dropped, 1);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = now_ns();
	const struct route_cand *rc = rq->ci < rq->rt.n ? &rq->rt.c[rq->ci] : NULL;
	r->ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	r->latency_us = (int64_t)(now - rq->t_start_ns) / 1000;
	r->ttfb_us = rq->t_first_ns ? (int64_t)(rq->t_first_ns - rq->t_start_ns) / 1000 : -1;
	r->in = rq->xu.in, r->out = rq->xu.out, r->cache_read = rq->xu.cache_read, r->cache_write = rq->xu.cache_write;
	r->cost_micros = rq->charged ? rq->cost_micros : -1;
	r->status = rq->status, r->attempts = rq->attempts;
	r->stream = rq->streaming, r->client_left = rq->orphan;
	conn_copy(r->method, sizeof(r->method), rq->msg->method);
	conn_copy(r->path, sizeof(r->path), rq->msg->path);
	conn_copy(r->req_id, sizeof(r->req_id), http_header(rq->msg, "x-request-id"));
	conn_copy(r->ua, sizeof(r->ua), http_header(rq->msg, "user-agent"));
	const struct gov *g = rq->hold->cfg->gov;
	if (rq->vk) { /* known from the key alone: a request refused before admission names it too */
		conn_copy_z(r->vk, rq->vk->e.id);
		if (rq->vk->team >= 0)
			conn_copy_z(r->team, g->team[rq->vk->team].e.id);
		if (rq->vk->customer >= 0)
			conn_copy_z(r->customer, g->cust[rq->vk->customer].id);
	}
	if (rc) {
		conn_copy_z(r->provider, rc->p->name);
		conn_copy_z(r->model, rc->model);
	}
	conn_copy_z(r->failed, rq->trail);
	conn_copy_z(r->error, rq->status >= 400 ? rq->err : "");
	conn_copy_z(r->client, conn_peer(c));
	for (int i = 0; i < 2; i++) { /* the bodies go with the record (the writer frees them) */
		r->body[i] = rq->content[i].p;
		r->nbody[i] = rq->content[i].len;
		rq->content[i] = (struct buf){ 0 };
	}
	ldb_publish(w->ldb);
}

static void conn_hold_release(struct worker *w, struct cfg_hold *h)
{
	if (--h->live > 0 || h == w->hold)
		return;
	for (struct cfg_hold **pp = &w->retired; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	cfg_put(h->cfg);
	free(h);
}

/* Account for and forget the current request (arena included). */
static void conn_request_end(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	struct conn *u = slot_peer(w, c);
	if (u) /* the client left mid-request: the half-read response is useless */
		slot_close(w, u);
	if (up_stream_begun(rq))
		conn_gov_charge(w, c); /* a stream the client cut off: billed, estimated if need be */
	gov_abort(&rq->gt, time(NULL));
	if (rq->msg && rq->status) {
		M_ADD(&w->m, requests, 1);
		M_ADD(&w->m, by_class[MIN(rq->status / 100, 5)], 1);
		M_ADD(&w->m, in_tokens, (uint64_t)(rq->xu.in + rq->xu.cache_read + rq->xu.cache_write));
		M_ADD(&w->m, out_tokens, (uint64_t)rq->xu.out);
		if (rq->ci < rq->rt.n) { /* (past the end: every candidate's circuit was open) */
			metrics_overhead(&w->m, rq->overhead_ns);
			metrics_count(&w->m, rq->rt.c[rq->ci].p->name, rq->rt.c[rq->ci].model, rq->status);
		}
		if (rq->hold->cfg->log_requests)
			conn_log(w, c, rq);
		if (rq->llm && rq->hold->cfg->logs_on)
			conn_log_store(w, c, rq);
	}
	buf_free(&rq->content[0]);
	buf_free(&rq->content[1]);
	conn_hold_release(w, rq->hold);
	w->active--;
	conn_phase(rq, RQ_DONE);
	c->rq = NULL;
	if (!c->closing) { /* closing: sends may still read them; slot_free resets both */
		arena_reset(&c->arena);
		arena_reset(&c->scratch);
	}
}

static void conn_parse(struct worker *w, struct conn *c);

/* The answer is out: keep the connection for the next request, or close. */
static void conn_on_sent(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	struct conn *u = slot_peer(w, c);
	switch (rq ? rq->phase : RQ_DONE) {
	case RQ_PING: /* a ping went out: relay what arrived meanwhile, or read on */
		conn_phase(rq, RQ_STREAM);
		conn_up_events(w, c, u, u ? u->resp_done : true);
		return;
	case RQ_TAIL:
		conn_tail(w, c);
		return;
	case RQ_STREAM:
		if (u)
			conn_stream_resume(w, c, u);
		else /* the provider failed while this batch was going out: end the stream properly */
			conn_up_events(w, c, NULL, true);
		return;
	case RQ_FINAL:
	case RQ_DONE:
		break;
	default:
		BF_ASSERT(!"a send completed before the request had an answer");
		break;
	}
	if (u)
		up_finish(w, u);
	if (c->cs == CS_CLOSE_AFTER || c->lent) { /* (lent: an upstream send still reads this request) */
		slot_close(w, c);
		return;
	}
	if (rq) {
		buf_consume(&c->in, c->body_src);
		conn_request_end(w, c);
	}
	if (c->pend.len) {
		if (buf_append(&c->in, c->pend.p, c->pend.len) != 0) {
			slot_close(w, c);
			return;
		}
		buf_free(&c->pend);
	}
	c->cs = CS_HEAD;
	c->scanned = 0;
	c->body_src = 0;
	conn_inbuf_give(w, &c->in);
	if (g_draining) {
		slot_close(w, c);
		return;
	}
	timer_set(w, c, w->hold->cfg->idle_timeout_ms);
	if (c->in.len)
		conn_parse(w, c);
}

static void admin_dispatch(struct worker *w, struct conn *c);

static const struct {
	const char *path;
	enum endpoint ep;
} api_routes[] = {
	{ "/v1/chat/completions", EP_CHAT }, { "/openai/v1/chat/completions", EP_CHAT },
	{ "/chat/completions", EP_CHAT },     { "/v1/completions", EP_COMPLETIONS },
	{ "/openai/v1/completions", EP_COMPLETIONS }, { "/v1/embeddings", EP_EMBEDDINGS },
	{ "/openai/v1/embeddings", EP_EMBEDDINGS }, { "/v1/responses", EP_RESPONSES },
	{ "/openai/v1/responses", EP_RESPONSES }, { "/v1/messages", EP_MESSAGES },
	{ "/anthropic/v1/messages", EP_MESSAGES }, { "/v1/messages/count_tokens", EP_COUNT_TOKENS },
	{ "/anthropic/v1/messages/count_tokens", EP_COUNT_TOKENS },
};

/* ---- governance on the request path (the tiers and counters are gov_'s) ---- */

/* The virtual key presented: x-bf-vk, Authorization: Bearer, x-api-key, api-key. */
static const struct gov_vkey *conn_vkey(const struct gov *g, const struct http_msg *m)
{
	static const char *const hdrs[] = { "x-bf-vk", "authorization", "x-api-key", "api-key" };
	for (size_t i = 0; g && i < ARRAY_LEN(hdrs); i++) {
		struct str v = http_header(m, hdrs[i]);
		if (!v.p)
			continue;
		if (i == 1 && v.n > 28 && strncmp(v.p, "AWS4-HMAC-SHA256 Credential=", 28) == 0) {
			v.p += 28, v.n -= 28; /* an AWS SDK's SigV4 with the key as its access key id */
			const char *e = memchr(v.p, '/', v.n);
			v.n = e ? (size_t)(e - v.p) : 0;
		} else if (i == 1) {
			if (v.n < 7 || strncasecmp(v.p, "Bearer ", 7) != 0)
				continue;
			v.p += 7;
			v.n -= 7;
		}
		return gov_key_find(g, v.p, v.n);
	}
	return NULL;
}

/* The virtual key, checked from the head alone, before the body is parsed (an
 * unauthenticated client costs no JSON work): 401 unknown, 403 inactive.
 * false when the request was answered. */
static bool conn_gov_auth(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	const struct gov *g = rq->hold->cfg->gov;
	char msg[300];
	rq->vk = conn_vkey(g, rq->msg);
	if (g && g->enforce && !rq->vk) {
		conn_error(w, c, 401, "authentication_error", "missing or unknown virtual key");
		return false;
	}
	if (rq->vk && !rq->vk->active) {
		snprintf(msg, sizeof(msg), "virtual key %s is inactive", rq->vk->e.id);
		conn_error(w, c, 403, "permission_error", msg);
		return false;
	}
	return true;
}

/* The key's allowed models/providers and provider weights, once the route is
 * known. false when the request was answered. */
static bool conn_gov_gate(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	char msg[300];
	if (!rq->vk)
		return true;
	int n = 0;
	unsigned wt[ROUTE_MAX];
	bool steer = false;
	for (int i = 0; i < rq->rt.n; i++) {
		const struct route_cand *rc = &rq->rt.c[i];
		if (!gov_key_allows(rq->vk, rc->p->name, rc->model))
			continue;
		const struct gov_pcfg *pc = gov_key_pcfg(rq->vk, rc->p->name, rc->p->kind->name);
		steer |= pc && pc->weight >= 0;
		wt[n] = pc && pc->weight >= 0 ? (unsigned)pc->weight : rc->p->weight;
		rq->rt.c[n++] = *rc;
	}
	if (n == 0) {
		snprintf(msg, sizeof(msg), "model %s is not allowed for virtual key %s", rq->o.model, rq->vk->e.id);
		conn_error(w, c, 403, "permission_error", msg);
		return false;
	}
	rq->rt.n = n;
	if (steer && rq->o.fallbacks_tok < 0)
		route_order_w(&rq->rt, wt, &w->rng);
	return true;
}

/* The attempt's price; an unpriced model per governance.unpriced (warned once per model).
 * false: refused ("deny"). */
static bool conn_gov_price(struct request *rq, const struct route_cand *rc)
{
	const struct gov *g = rq->hold->cfg->gov;
	rq->price = gov_price_find(g, rc->p->name, rc->p->kind->name, rc->model);
	if (rq->price || g->unpriced == GOV_UNPRICED_FREE)
		return true;
	if (g->unpriced == GOV_UNPRICED_DENY)
		return false;
	rq->price_max = gov_price_max(g, rc->p->name, rc->p->kind->name, rc->p->kind->dialect == D_ANTHROPIC);
	rq->price = &rq->price_max;
	if (gov_unpriced_first(rc->p->name, rc->model))
		fprintf(stderr, "bifrost: warning: model %.64s/%.128s has no price: charged at the provider's "
			"highest known rate (set \"pricing\", or governance.unpriced)\n", rc->p->name, rc->model);
	return true;
}

/* Reserve this attempt's estimate at every tier. 0, the status it was refused with, or
 * -1 when the model is unpriced and governance.unpriced is "deny". */
static int conn_gov_admit(struct worker *w, struct conn *c, const struct route_cand *rc, struct gov_deny *d)
{
	struct request *rq = c->rq;
	const struct cfg *cfg = rq->hold->cfg;
	if (!cfg->governed) /* nothing to enforce: no counters, no journal, no held byte */
		return 0;
	int64_t now = time(NULL);
	gov_retract(&rq->gt, now); /* a previous attempt of this request: it counts once */
	int jerr = atomic_load_explicit(&jrnl_error, memory_order_relaxed);
	if (jerr && cfg->gov->on_journal_error == GOV_JERR_DENY)
		return -2; /* charges cannot be made durable: fail fast, never hang */
	if (!conn_gov_price(rq, rc))
		return -1;
	gov_tiers(&rq->gt, cfg->gov, rq->vk, (int)(rc->p - cfg->prov), rc->p->name, rc->p->kind->name);
	int64_t est = rq->price ? gov_cost_micros(rq->price, (int64_t)(rq->o.j.n / 4),
						rq->o.max_tokens > 0 ? rq->o.max_tokens : 4096, 0, 0) : 0;
	rq->gt.est_tok = (int64_t)(rq->o.j.n / 4) + /* (max_tokens is the client's: bounded first) */
			 (rq->o.max_tokens > 0 ? MIN(rq->o.max_tokens, (long long)GOV_AMT_MAX) : 4096);
	int rc2 = gov_admit(&rq->gt, now, est, d);
	return rc2 == 0 ? 0 : d->status;
}

/* Answer a refusal: 402 names the tier and its reset, 429 carries Retry-After. */
static void conn_gov_refuse(struct worker *w, struct conn *c, const struct gov_deny *d)
{
	char msg[300], extra[64] = "";
	time_t reset = (time_t)d->reset_at_s;
	struct tm tm;
	gmtime_r(&reset, &tm);
	if (d->status == 402) {
		snprintf(msg, sizeof(msg), "budget exhausted for %s %s; it resets at %04d-%02d-%02dT%02d:%02d:%02dZ",
			 gov_kind_name[d->who->kind], d->who->id, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
		snprintf(c->rq->err, sizeof(c->rq->err), "%.250s", msg);
		conn_error_h(w, c, 402, "budget_exceeded", msg, NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "%s limit reached for %s %s; retry in %lld s", d->what,
		 gov_kind_name[d->who->kind], d->who->id, (long long)d->retry_after_s);
	snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n", (long long)MAX(1, d->retry_after_s));
	snprintf(c->rq->err, sizeof(c->rq->err), "%.250s", msg);
	conn_error_h(w, c, 429, "rate_limit_exceeded", msg, extra);
}

/* Settle the attempt at every tier: the real cost when the usage is known, else
 * (client gone mid-stream) an estimate that is never zero: input = known or body
 * bytes / 4, output = at least the content relayed / 4. An answer providers do not bill
 * (an error status, count_tokens) settles at zero cost and tokens; it still counts
 * as a request. Records go to the journal. */
static void conn_gov_charge(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	if (!rq->gt.admitted)
		return;
	rq->charged = true;
	const struct xlate_usage *u = &rq->xu;
	bool billed = rq->status < 400 && rq->ep != EP_COUNT_TOKENS;
	bool seen = u->in || u->cache_read || u->cache_write;
	long long uncached = !billed ? 0 : seen ? u->in : (long long)(rq->o.j.n / 4 + 1);
	/* a stream cut short: the provider's count so far may be message_start's 1, so at least
	 * the content relayed (~4 characters a token); never the SSE/JSON framing bytes */
	long long est_out = (long long)((rq->content_chars + 3) / 4);
	bool cut = rq->streaming && (rq->phase < RQ_FINAL || rq->stream_broken);
	long long out = !billed ? 0 : cut ? MAX(u->out, est_out) : u->out ? u->out : est_out;
	long long cr = billed ? u->cache_read : 0, cw = billed ? u->cache_write : 0;
	int64_t now = time(NULL);
	if ((!rq->price || rq->price == &rq->price_max) && billed)
		M_ADD(&w->m, unpriced, 1);
	rq->cost_micros = rq->price ? gov_cost_micros(rq->price, uncached, out, cr, cw) : 0;
	struct jrnl_rec recs[GOV_TIERS];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = gov_complete(&rq->gt, now, rq->cost_micros, uncached + cr + cw, out, rng_next(&w->rng),
			     (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, recs);
	bool budgeted = false; /* only a budget makes a lost charge matter: then hold the last byte */
	for (int i = 0; i < rq->gt.n; i++)
		budgeted |= rq->gt.t[i]->budget.max >= 0;
	for (int i = 0; i < n; i++) {
		int64_t seq = jrnl_append(w->jring, &recs[i]);
		if (seq < 0)
			M_ADD(&w->m, journal_full, 1); /* the committer is stalled: counted, not blocking */
		else if (budgeted)
			rq->jseq = MAX(rq->jseq, seq);
	}
	w->kick_committer |= budgeted && n > 0; /* one wake-up per loop turn, see loop_run */
}

/* Whether the request's charges are in the journal as far as governance.durability asks. */
static bool conn_charged(const struct worker *w, const struct request *rq)
{
	const struct gov *g = rq->hold->cfg->gov;
	return jrnl_safe(w->jring, !g || g->durable_disk) >= (uint64_t)rq->jseq;
}

/* The final send of a response: everything but its last byte goes now; the
 * last byte waits until the charge is in the journal (see the jrnl_ banner). */
static void conn_send_final(struct worker *w, struct conn *c, struct iovec *v, int n)
{
	struct request *rq = c->rq;
	conn_phase(rq, RQ_FINAL);
	if (rq->jseq && !conn_charged(w, rq)) {
		int k = n - 1;
		while (k >= 0 && v[k].iov_len == 0)
			k--;
		if (k >= 0) {
			v[k].iov_len--;
			rq->tail_byte = ((char *)v[k].iov_base)[v[k].iov_len];
			rq->tail = (struct iovec){ &rq->tail_byte, 1 };
			conn_phase(rq, RQ_TAIL);
		}
	}
	loop_send(w, c, v, n);
	timer_set(w, c, w->hold->cfg->send_timeout_ms);
	if (!c->send_busy && rq->phase == RQ_TAIL) /* nothing but the tail: wait for it now */
		conn_on_sent(w, c);
}

/* The last byte may go once the journal caught up; else park the conn. */
static void conn_tail(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	if (!conn_charged(w, rq) && w->nheld < HELD_MAX &&
	    !atomic_load_explicit(&jrnl_error, memory_order_relaxed)) {
		w->held[w->nheld].idx = slot_idx(w, c);
		w->held[w->nheld++].gen = c->gen;
		return;
	}
	conn_phase(rq, RQ_FINAL); /* charged (or too many parked: deliver rather than stall) */
	loop_send(w, c, &rq->tail, 1);
}

/* The committer wrote records: send the parked last bytes whose charges are kept. */
static void conn_release_held(struct worker *w)
{
	int keep = 0;
	for (int i = 0; i < w->nheld; i++) {
		struct conn *c = &w->slab[w->held[i].idx];
		if (c->gen != w->held[i].gen || c->kind != K_CLIENT || c->closing || !c->rq ||
		    c->rq->phase != RQ_TAIL)
			continue;
		if (conn_charged(w, c->rq) ||
		    atomic_load_explicit(&jrnl_error, memory_order_relaxed)) { /* (a failing journal: deliver) */
			conn_phase(c->rq, RQ_FINAL);
			loop_send(w, c, &c->rq->tail, 1);
		} else {
			w->held[keep++] = w->held[i];
		}
	}
	w->nheld = keep;
}

/* Append `name` ("P/M", a bare model, or a provider name meaning "same model there"). */
static void conn_add_fallback(struct worker *w, struct request *rq, const char *name)
{
	const struct cfg *cfg = rq->hold->cfg;
	struct route r;
	const char *why, *slash = strchr(rq->o.model, '/');
	const struct provider *p = strchr(name, '/') ? NULL : route_provider(cfg, name, strlen(name));
	if (p) { /* provider only: the client's model name, mapped there */
		const char *m = slash && route_provider(cfg, rq->o.model, (size_t)(slash - rq->o.model))
				? slash + 1 : rq->o.model;
		const char *mapped = route_mapped(p, m);
		r.c[0] = (struct route_cand){ p, mapped ? mapped : m };
	} else if (route_resolve(cfg, name, &w->rng, &r, &why) != 0) {
		return;
	}
	for (int i = 0; i < rq->rt.n; i++)
		if (rq->rt.c[i].p == r.c[0].p && strcmp(rq->rt.c[i].model, r.c[0].model) == 0)
			return;
	if (rq->rt.n < ROUTE_MAX)
		rq->rt.c[rq->rt.n++] = r.c[0];
}

/* The attempt order: the body's "fallbacks" replace the automatic list; the
 * config's top-level fallbacks come last. */
static void conn_fallbacks(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	struct json *j = &rq->o.j;
	int t = rq->o.fallbacks_tok;
	if (t >= 0) {
		rq->rt.n = 1;
		for (int k = 0, i = t + 1; k < j->tok[t].size; k++, i = json_skip(j, i)) {
			const char *name = json_str(j, &c->arena, i, NULL);
			if (name)
				conn_add_fallback(w, rq, name);
		}
	}
	for (int i = 0; i < rq->hold->cfg->nfallbacks; i++)
		conn_add_fallback(w, rq, rq->hold->cfg->fallbacks[i]);
}

/* Reasoning models take reasoning_effort and max_completion_tokens. */
static bool conn_reasoning_model(const char *m)
{
	return (m[0] == 'o' && isdigit((unsigned char)m[1])) || strncmp(m, "gpt-5", 5) == 0;
}

/* The candidate speaks the other dialect: count_tokens is estimated here
 * (xlate_count_tokens), a Messages or Chat request is translated; the
 * translated body is the only body iovec. false when answered. */
/* The stream translator of the attempt's translation (a whole answer does not use it). */
static void conn_xlate_start(struct conn *c)
{
	struct request *rq = c->rq;
	long long now = (long long)time(NULL);
	size_t cap = rq->hold->cfg->max_response;
	switch (rq->xl) {
	case XL_R2O:
		xlate_o2r_init(&rq->xs.o2r, &c->arena, rq->o.model, rq->xid, &rq->rnames, now, cap);
		break;
	case XL_R2A:
		xlate_a2o_init(&rq->xs.r2a.a2o, rq->o.model, rq->xid, true);
		xlate_o2r_init(&rq->xs.r2a.o2r, &c->arena, rq->o.model, rq->xid, &rq->rnames, now, cap);
		break;
	case XL_A2O:
		xlate_o2a_init(&rq->xs.o2a, rq->o.model, rq->xid);
		break;
	default:
		xlate_a2o_init(&rq->xs.a2o, rq->o.model, rq->xid, rq->o.client_usage);
	}
}

/* The attempt's request to a Bedrock provider, from a Messages body (the client's, or one
 * translated to Messages). false when answered (an error). */
static bool conn_bedrock_build(struct worker *w, struct conn *c, const struct route_cand *rc, struct str anth)
{
	struct request *rq = c->rq;
	struct sb b;
	const char *err = "the body must be a JSON object";
	sb_init(&b, &c->arena, anth.n + 256);
	rq->converse = !prov_bedrock_invoke(rc->model);
	int rc2 = rq->converse ? xlate_req_a2c(&c->arena, anth.p, anth.n, &b, &err)
			       : prov_bedrock_body(&c->arena, anth, rq->o.anth_beta, &b);
	if (rq->converse) {
		char *id = arena_alloc(&c->arena, 40, 1);
		if (id)
			snprintf(id, 40, "msg_bf%016llx", (unsigned long long)rng_next(&w->rng));
		xlate_c2a_init(&rq->c2a, rq->o.model, id ? id : "msg_bifrost");
	}
	uintptr_t slot = ((uintptr_t)rc->p->secret >> 4) % ARRAY_LEN(w->sigkeys);
	if (rc2 == 0)
		rc2 = prov_bedrock_build(&c->arena, sb_view(&b), rc->p, rc->model, rq->key, rq->o.stream,
					 (long long)time(NULL), &w->sigkeys[slot], &rq->ur);
	if (rc2 != 0)
		conn_error(w, c, rc2 == -ENOMEM ? 500 : 400, rc2 == -ENOMEM ? "server_error" : "invalid_request_error",
			   rc2 == -ENOMEM ? "out of memory" : err);
	return rc2 == 0;
}

/* A Responses request for an Anthropic provider: to Chat, then to Messages. */
static int conn_req_r2a(struct conn *c, const struct route_cand *rc, struct sb *out, const char **err)
{
	struct request *rq = c->rq;
	struct sb chat;
	sb_init(&chat, &c->arena, rq->o.j.n + rq->o.j.n / 4 + 256);
	int rc2 = xlate_req_r2o(&c->arena, rq->o.j.s, rq->o.j.n, rc->model, false, &chat, &rq->rnames, err);
	return rc2 ? rc2 : xlate_req_o2a(&c->arena, chat.p, chat.len, rc->model, out, err);
}

static bool conn_translate(struct worker *w, struct conn *c, const struct route_cand *rc)
{
	struct request *rq = c->rq;
	const char *err = NULL;
	struct sb b, h;
	if (rq->ep == EP_COUNT_TOKENS) {
		long n = xlate_count_tokens(rq->o.j.s, rq->o.j.n);
		if (n < 0) {
			conn_error(w, c, 400, "invalid_request_error",
				   "count_tokens: the body must be an object with one \"messages\" array");
			return false;
		}
		sb_init(&b, &c->arena, 64);
		sb_printf(&b, "{\"input_tokens\":%ld}", n);
		conn_send_local(w, c, 200, "application/json", sb_view(&b), NULL);
		return false;
	}
	if (rq->ep != EP_MESSAGES && rq->ep != EP_CHAT && rq->ep != EP_RESPONSES) {
		conn_error(w, c, 400, "invalid_request_error",
			   "this endpoint has no equivalent at the chosen provider (it speaks the other dialect)");
		return false;
	}
	bool anth = rc->p->kind->dialect == D_ANTHROPIC;
	rq->xl = rq->ep == EP_RESPONSES ? (anth ? XL_R2A : XL_R2O) : rq->ep == EP_MESSAGES ? XL_A2O : XL_O2A;
	sb_init(&b, &c->arena, rq->o.j.n + rq->o.j.n / 4 + 256);
	int rc2 = rq->xl == XL_R2A ? conn_req_r2a(c, rc, &b, &err)
		: rq->xl == XL_R2O ? xlate_req_r2o(&c->arena, rq->o.j.s, rq->o.j.n, rc->model, true, &b, &rq->rnames, &err)
		: rq->xl == XL_A2O
		? xlate_req_a2o(&c->arena, rq->o.j.s, rq->o.j.n, rc->model, conn_reasoning_model(rc->model), &b, &err)
		: xlate_req_o2a(&c->arena, rq->o.j.s, rq->o.j.n, rc->model, &b, &err);
	if (rc2 != 0) {
		conn_error(w, c, rc2 == -ENOMEM ? 500 : 400, "invalid_request_error",
			   err ? err : rc2 == -ENOMEM ? "out of memory" : "request cannot be translated");
		return false;
	}
	if (rc->p->kind->bedrock) {
		if (!conn_bedrock_build(w, c, rc, sb_view(&b)))
			return false;
	} else {
		sb_init(&h, &c->arena, 512);
		prov_head(&h, &rq->o, rc->p, rc->model, rq->key, anth ? EP_MESSAGES : EP_CHAT, (struct str){ NULL, 0 },
			  b.len);
		rq->ur.iov = arena_new(&c->arena, struct iovec, 2);
		if (h.oom || !rq->ur.iov) {
			conn_error(w, c, 500, "server_error", "out of memory");
			return false;
		}
		rq->ur.iov[0] = (struct iovec){ h.p, h.len };
		rq->ur.iov[1] = (struct iovec){ b.p, b.len };
		rq->ur.niov = 2;
		rq->ur.len = h.len + b.len;
	}
	char *id = arena_alloc(&c->arena, 40, 1);
	if (id)
		snprintf(id, 40, "%s_bf%016llx", rq->xl == XL_A2O ? "msg" : rq->xl >= XL_R2O ? "resp" : "chatcmpl",
			 (unsigned long long)rng_next(&w->rng));
	rq->xid = id ? id : "msg_bifrost";
	conn_xlate_start(c);
	return true;
}

/* Choose the attempt's candidate and key: the first whose circuit admits us
 * and whose budgets and rate limits (provider tiers) allow it. A refusal by the
 * key's own tiers ends the request; one by a provider's tier tries the next
 * candidate. false when the request was answered. */
static bool conn_pick(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	struct gov_deny d;
	for (;; rq->ci++, rq->retries = rq->koff = 0) {
		if (rq->ci >= rq->rt.n) {
			conn_error(w, c, 503, "upstream_error",
				   "every provider for this model is failing (circuit open); retry later");
			return false;
		}
		const struct route_cand *rc = &rq->rt.c[rq->ci];
		if (rq->retries == 0 && rq->koff == 0) /* a fresh candidate: draw its key by weight */
			rq->key0 = route_key(rc->p, rc->model, &w->rng);
		int ns = route_nkeys(rc->p, rc->model), i = 0, k = 0;
		for (; i < ns; i++) { /* from the drawn key on: a key serving the model, circuit allowing */
			k = route_key_nth(rc->p, rc->model, rq->key0, rq->koff + i);
			if (route_cb_allow(&rc->p->brk[k], &rq->hold->cfg->cb, (int64_t)w->now_ms))
				break;
		}
		if (i == ns)
			continue;
		rq->koff += i; /* keys skipped for an open circuit count as tried */
		rq->kidx = k;
		rq->key = rc->p->nkeys ? rc->p->keys[rq->kidx].value : NULL;
		int refused = conn_gov_admit(w, c, rc, &d);
		if (refused == 0)
			return true;
		if (refused == -2) {
			char msg[200];
			snprintf(msg, sizeof(msg), "the governance journal cannot be written (%s): charges cannot be "
				 "recorded; retry later", strerror(atomic_load(&jrnl_error)));
			snprintf(rq->err, sizeof(rq->err), "%s", msg);
			conn_error_h(w, c, 503, "server_error", msg, "Retry-After: 5\r\n");
			return false;
		}
		if (refused < 0) { /* unpriced, governance.unpriced "deny": another candidate may be priced */
			conn_trail(rq, 403);
			snprintf(rq->err, sizeof(rq->err), "model %.64s/%.128s has no price and governance.unpriced is "
				 "\"deny\"", rc->p->name, rc->model);
			if (rq->ci + 1 < rq->rt.n)
				continue;
			conn_error(w, c, 403, "permission_error", rq->err);
			return false;
		}
		bool provider_tier = d.who->kind == GK_PROVIDER || d.who->kind == GK_PCFG;
		conn_trail(rq, d.status);
		snprintf(rq->err, sizeof(rq->err), "%s %s refused by its %s", rc->p->name, rc->model,
			 d.status == 402 ? "budget" : "rate limit");
		if (!provider_tier || rq->ci + 1 >= rq->rt.n) {
			conn_gov_refuse(w, c, &d);
			return false;
		}
	}
}

static void conn_attempt(struct worker *w, struct conn *c);
static void conn_attempt_send(struct worker *w, struct conn *c);

/* Refused by the cluster's count of a tier (or, Redis away, by this node's share of it):
 * a provider's tier tries the next candidate, any other ends the request. */
static void conn_cluster_refused(struct worker *w, struct conn *c, const struct gov_deny *d)
{
	struct request *rq = c->rq;
	bool provider_tier = d->who->kind == GK_PROVIDER || d->who->kind == GK_PCFG;
	gov_retract(&rq->gt, time(NULL));
	for (int i = 0; i < rq->gt.n; i++) /* what the refused request held leaves Redis at the next push */
		atomic_store_explicit(&rq->gt.t[i]->slot->cl.dirty, 1, memory_order_relaxed);
	conn_trail(rq, d->status);
	snprintf(rq->err, sizeof(rq->err), "%s %s refused by its %s (cluster)", rq->rt.c[rq->ci].p->name,
		 rq->rt.c[rq->ci].model, d->status == 402 ? "budget" : "rate limit");
	if (provider_tier && rq->ci + 1 < rq->rt.n) {
		rq->ci++, rq->retries = rq->koff = 0;
		conn_attempt(w, c);
		return;
	}
	conn_gov_refuse(w, c, d);
}

/* Redis cannot be asked: cluster.on_redis_down decides. true: the attempt goes ahead. */
static bool conn_cluster_down(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	struct gov_deny d;
	atomic_fetch_add_explicit(&clu_fallbacks, 1, memory_order_relaxed);
	switch (rq->hold->cfg->cluster->down) {
	case CLU_DOWN_ALLOW:
		return true;
	case CLU_DOWN_DENY:
		conn_error_h(w, c, 503, "server_error", "the cluster's Redis cannot be reached and cluster.on_redis_down "
			     "is \"deny\"; retry later", "Retry-After: 1\r\n");
		return false;
	default:
		if (clu_share_ok(&rq->gt, time(NULL), &d))
			return true;
		conn_cluster_refused(w, c, &d);
		return false;
	}
}

/* Admitted here, a governed request in a cluster is admitted by Redis too: its tiers' limits
 * go to the cluster thread and the request waits (RQ_CLUSTER). false: nothing to wait for. */
static bool conn_cluster_wait(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	struct cfg *cfg = rq->hold->cfg;
	if (!cfg->cluster || !clu_outbox || !cfg->governed || !rq->gt.admitted)
		return false;
	struct clu_job *j = calloc(1, sizeof(*j));
	if (!j)
		return !conn_cluster_down(w, c);
	j->n = clu_items(&rq->gt, time(NULL), j->it);
	if (!j->n || !atomic_load_explicit(&clu_up, memory_order_relaxed)) { /* no limit: nothing to ask */
		int n = j->n;
		free(j);
		return n && !conn_cluster_down(w, c);
	}
	j->worker = w->id, j->idx = slot_idx(w, c), j->gen = c->gen, j->cfg = cfg;
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
	rq->cjob = j;
	conn_phase(rq, RQ_CLUSTER);
	timer_set(w, c, cfg->cluster->timeout_ms);
	jstack_push(&clu_inbox, &j->node, clu_evfd);
	return true;
}

/* The cluster thread's verdicts for this worker's requests. */
static void conn_cluster_answers(struct worker *w)
{
	for (struct clu_job *j = (struct clu_job *)jstack_take(&clu_outbox[w->id]), *next; j; j = next) {
		next = clu_next(j);
		struct conn *c = j->idx < w->nslab ? &w->slab[j->idx] : NULL;
		if (c && c->gen == j->gen && c->kind == K_CLIENT && !c->closing && c->rq && c->rq->phase == RQ_CLUSTER &&
		    c->rq->cjob == j) {
			struct gov_deny d;
			c->rq->cjob = NULL;
			timer_set(w, c, 0);
			if (j->refused > 0) {
				clu_deny(&j->it[j->refused - 1], time(NULL), &d);
				conn_cluster_refused(w, c, &d);
			} else if (j->refused == 0 || conn_cluster_down(w, c)) {
				conn_attempt_send(w, c);
			}
		}
		clu_job_free(j);
	}
}

/* Send the request to the current candidate (first try, retry or fallback). */
static void conn_attempt(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	conn_phase(rq, RQ_ROUTE);
	rq->streaming = false; /* the answer's head decides, attempt by attempt */
	if (!conn_pick(w, c) || conn_cluster_wait(w, c))
		return;
	conn_attempt_send(w, c);
}

/* The attempt is admitted: its request to the candidate. */
static void conn_attempt_send(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	const struct route_cand *rc = &rq->rt.c[rq->ci];
	rq->xl = XL_NONE;
	rq->converse = false; /* (conn_bedrock_build says, attempt by attempt) */
	if (rc->p->kind->dialect != prov_dialect(rq->ep) || (rq->ep == EP_RESPONSES && !rc->p->kind->responses) ||
	    (rc->p->kind->bedrock && rq->ep == EP_COUNT_TOKENS)) {
		if (!conn_translate(w, c, rc))
			return;
	} else if (rc->p->kind->bedrock) {
		if (!conn_bedrock_build(w, c, rc, (struct str){ rq->o.j.s, rq->o.j.n }))
			return;
	} else if (prov_build(&c->arena, &rq->o, rc->p, rc->model, rq->key, rq->ep, rq->msg->query,
			      &rq->ur) != 0) {
		conn_error(w, c, 500, "server_error", "out of memory");
		return;
	}
	rq->attempts++;
	rq->fresh_retry = false;
	conn_phase(rq, RQ_AWAIT);
	up_start(w, c, rc->p);
}

/* A /bedrock/model/{id}/{action} request: its body made the Messages request it stands
 * for (model and stream from the path). false when answered. */
static bool conn_bedrock_in(struct worker *w, struct conn *c, struct str *body, struct str *beta)
{
	struct request *rq = c->rq;
	const char *model = NULL, *err;
	rq->br = prov_bedrock_route(&c->arena, rq->msg->path, &model, &err);
	if (!rq->br) {
		rq->br = BR_INVOKE;
		conn_error(w, c, strstr(err, "operation") ? 404 : 400, "invalid_request_error", err);
		return false;
	}
	struct sb b;
	bool stream = rq->br == BR_INVOKE_STREAM || rq->br == BR_CONVERSE_STREAM;
	err = "the body must be a JSON object (an Anthropic Messages body)";
	sb_init(&b, &c->arena, body->n + 64);
	struct str bb = { "", 0 }; /* the body's anthropic_beta: joined to the header's */
	int rc = rq->br >= BR_CONVERSE ? xlate_req_c2a(&c->arena, body->p, body->n, model, stream, &b, &err)
				       : prov_bedrock_inbound(&c->arena, *body, model, stream, &b, &bb);
	if (rc != 0) {
		conn_error(w, c, rc == -ENOMEM ? 500 : 400, "invalid_request_error", rc == -ENOMEM ? "out of memory" : err);
		return false;
	}
	if (bb.n) {
		struct sb j;
		sb_init(&j, &c->arena, beta->n + bb.n + 2);
		sb_str(&j, *beta);
		sb_put(&j, ",", beta->n > 0);
		sb_str(&j, bb);
		*beta = j.oom ? bb : sb_view(&j);
	}
	*body = sb_view(&b);
	return true;
}

/* A whole request is in: route it to a provider, or answer it here. */
static void conn_dispatch(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	const struct http_msg *m = rq->msg;
	int ep = -1;
	timer_set(w, c, 0);
	c->cs = CS_BUSY;
	for (size_t i = 0; i < ARRAY_LEN(api_routes); i++)
		if (str_eq(m->path, api_routes[i].path))
			ep = (int)api_routes[i].ep;
	if (ep < 0 && str_starts(m->path, "/bedrock/"))
		ep = EP_MESSAGES, rq->br = BR_INVOKE; /* (which operation: conn_bedrock_in) */
	if (ep < 0) {
		admin_dispatch(w, c);
		return;
	}
	rq->llm = true;
	conn_content(rq, 0, c->in.p + m->head_len, c->body_dst - m->head_len);
	if (!str_eq(m->method, "POST")) {
		conn_error(w, c, 405, "invalid_request_error", "use POST for this endpoint");
		return;
	}
	rq->ep = (enum endpoint)ep;
	struct str body = { c->in.p + m->head_len, c->body_dst - m->head_len }, beta = http_header(m, "anthropic-beta");
	const char *why = NULL;
	if (!conn_gov_auth(w, c) || (rq->br && !conn_bedrock_in(w, c, &body, &beta)))
		return;
	int rc = prov_openai_prepare(&rq->o, &c->arena, body.p, body.n, rq->ep, rq->hold->cfg->max_json_tokens);
	if (rc != 0) {
		conn_error(w, c, rc == -E2BIG ? 413 : rc == -ENOMEM ? 500 : 400,
			   rc == -ENOMEM ? "server_error" : "invalid_request_error",
			   rq->o.j.err ? rq->o.j.err : "malformed JSON");
		return;
	}
	rq->o.anth_version = http_header(m, "anthropic-version");
	rq->o.anth_beta = beta;
	if (route_resolve(rq->hold->cfg, rq->o.model, &w->rng, &rq->rt, &why) != 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s: %s", why, rq->o.model);
		conn_error(w, c, 400, "invalid_request_error", msg);
		return;
	}
	conn_fallbacks(w, c);
	if (!conn_gov_gate(w, c))
		return;
	rq->overhead_ns += now_ns() - rq->t_start_ns;
	conn_attempt(w, c);
}

/* Send "100 Continue" now (tiny: a direct nonblocking send, or a record of its own over TLS). */
static void conn_continue(struct worker *w, struct conn *c)
{
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
	if (c->stls) { /* no answer is being sent yet: the engine takes it whole */
		size_t room;
		unsigned char *dst = br_ssl_engine_sendapp_buf(&c->stls->sc.eng, &room);
		if (dst && room >= sizeof(msg) - 1) {
			memcpy(dst, msg, sizeof(msg) - 1);
			br_ssl_engine_sendapp_ack(&c->stls->sc.eng, sizeof(msg) - 1);
			br_ssl_engine_flush(&c->stls->sc.eng, 0);
			loop_tls_flush(w, c);
		}
		return;
	}
	ssize_t r = send(c->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r; /* if it fails, curl sends the body after its own short wait */
}

/* Framing error before the body was read: answer and close. */
static void conn_reject(struct worker *w, struct conn *c, int status, const char *msg)
{
	c->cs = CS_CLOSE_AFTER;
	conn_error(w, c, status, "invalid_request_error", msg);
}

static bool conn_begin(struct worker *w, struct conn *c)
{
	if (c->rq)
		return true;
	struct request *rq = arena_new(&c->arena, struct request, 1);
	struct http_msg *m = arena_new(&c->arena, struct http_msg, 1);
	if (!rq || !m) {
		slot_close(w, c);
		return false;
	}
	memset(rq, 0, sizeof(*rq));
	memset(m, 0, offsetof(struct http_msg, hdr));
	rq->msg = m;
	rq->hold = w->hold;
	w->hold->live++;
	timer_set(w, c, w->hold->cfg->header_timeout_ms); /* set once: dribbling can't extend it */
	w->active++;
	c->rq = rq;
	return true;
}

static void conn_parse(struct worker *w, struct conn *c)
{
	struct cfg *cfg = w->hold->cfg;
	if (c->cs == CS_HEAD) {
		if (!conn_begin(w, c))
			return;
		struct http_msg *m = c->rq->msg;
		int rc = http_parse_request(m, c->in.p, c->in.len, &c->scanned, c->rq->hold->cfg->max_header);
		if (rc == -EAGAIN)
			return;
		if (rc == -E2BIG)
			return conn_reject(w, c, 431, "request headers exceed limits.max_header_bytes");
		if (rc < 0)
			return conn_reject(w, c, 400, m->err ? m->err : "malformed request");
		if (m->content_length > (long long)cfg->max_body)
			return conn_reject(w, c, 413, "request body exceeds limits.max_body_bytes");
		c->cs = CS_BODY;
		timer_set(w, c, cfg->body_timeout_ms); /* once: a dribbling body can't extend it */
		if (m->content_length > 0) { /* one allocation for the whole body */
			const char *before = c->in.p;
			size_t need = m->head_len + (size_t)m->content_length;
			if (need > c->in.len && buf_reserve(&c->in, need - c->in.len) != 0)
				return conn_reject(w, c, 413, "request body too large");
			http_rebase(m, before, c->in.p);
		}
		c->body_src = c->body_dst = m->head_len;
		memset(&c->ch, 0, sizeof(c->ch));
		if (m->expect_continue && m->minor >= 1 &&
		    (m->chunked || c->in.len < m->head_len + (size_t)MAX(m->content_length, 0)))
			conn_continue(w, c);
	}
	struct http_msg *m = c->rq->msg;
	if (m->chunked) {
		int rc = http_dechunk(&c->ch, c->in.p, &c->body_src, c->in.len, &c->body_dst);
		if (rc < 0)
			return conn_reject(w, c, 400, "malformed chunked body");
		if (c->body_dst - m->head_len > cfg->max_body)
			return conn_reject(w, c, 413, "request body exceeds limits.max_body_bytes");
		if (rc == 0)
			return;
	} else {
		size_t need = m->head_len + (size_t)MAX(m->content_length, 0);
		if (c->in.len < need)
			return;
		c->body_src = c->body_dst = need;
	}
	c->rq->t_start_ns = now_ns();
	conn_dispatch(w, c);
}

static void conn_on_recv(struct worker *w, struct conn *c, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->recv_multishot = false;
	if (cqe->res == -ENOBUFS) { /* ring buffers ran out for a moment: ask again */
		if (!c->recv_multishot)
			conn_recv_arm(w, c);
		return;
	}
	if (cqe->res <= 0) {
		slot_close(w, c);
		return;
	}
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	const char *data = w->br_mem + (size_t)bid * BR_SIZE;
	int rc = c->stls ? buf_append(&c->tls_in, data, (size_t)cqe->res) : conn_take(w, c, data, (size_t)cqe->res);
	io_uring_buf_ring_add(w->br, w->br_mem + (size_t)bid * BR_SIZE, BR_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(BR_COUNT), 0);
	io_uring_buf_ring_advance(w->br, 1);
	if (rc) { /* more than a request can be, buffered: a broken or hostile client */
		slot_close(w, c);
		return;
	}
	if (!c->recv_multishot)
		conn_recv_arm(w, c);
	if (c->stls && !conn_tls_pump(w, c))
		return;
	if (c->cs == CS_HEAD || c->cs == CS_BODY)
		conn_parse(w, c);
}

static void conn_timeout(struct worker *w, struct conn *c)
{
	long send_limit = w->hold->cfg->send_timeout_ms;
	if (c->send_busy) { /* a client taking nothing: cut it (and free what it pins) */
		uint64_t quiet = w->now_ms - c->sent_ms;
		if (quiet >= (uint64_t)send_limit)
			slot_close(w, c);
		else
			timer_set(w, c, send_limit - (long)quiet);
		return;
	}
	if (c->cs == CS_BODY) {
		conn_reject(w, c, 408, "request body not received within limits.body_timeout_ms");
		return;
	}
	switch (c->rq ? c->rq->phase : RQ_DONE) {
	case RQ_TAIL: /* the last byte waits for the journal */
		timer_set(w, c, send_limit);
		return;
	case RQ_BACKOFF: /* over: the next attempt */
		conn_attempt(w, c);
		return;
	case RQ_STREAM: /* a quiet stream */
	case RQ_PING:
		conn_stream_ping(w, c);
		return;
	case RQ_MGMT: /* its late answer will find the request gone */
		conn_error(w, c, 504, "server_error", "the management thread did not answer in time");
		return;
	case RQ_CLUSTER: /* Redis is slow: decided as if it were away (its late answer is dropped) */
		c->rq->cjob = NULL;
		if (conn_cluster_down(w, c))
			conn_attempt_send(w, c);
		return;
	default:
		slot_close(w, c); /* header, body or idle deadline */
	}
}

static void conn_complete(struct worker *w, struct conn *c, int op, struct io_uring_cqe *cqe)
{
	if (op == OP_RECV) {
		conn_on_recv(w, c, cqe);
		return;
	}
	if (op != OP_SEND)
		return;
	if (cqe->res < 0) {
		c->send_busy = false;
		slot_close(w, c);
	} else if (loop_sent(w, c, cqe->res)) {
		conn_on_sent(w, c);
	}
	/* ciphertext the engine could not take while its records were going out */
	if (c->stls && !c->closing && c->tls_in.len && conn_tls_pump(w, c) && (c->cs == CS_HEAD || c->cs == CS_BODY))
		conn_parse(w, c);
}

/* The client left. A governed, non-streamed request whose attempt is in flight finishes
 * upstream anyway (bounded by the provider's timeouts): the provider bills it whether or not
 * anyone reads the answer, so it is billed from the real usage (conn_orphan_end). */
static bool conn_closing(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	if (!rq)
		return false;
	struct conn *u = slot_peer(w, c);
	if (rq->phase == RQ_AWAIT && !rq->o.stream && rq->hold->cfg->governed && u && !up_answered(u)) {
		rq->orphan = true;
		c->lent++; /* the slot outlives the connection until conn_orphan_end */
		return true;
	}
	conn_request_end(w, c);
	return false;
}

static bool conn_idle(const struct conn *c) { return !c->rq; }

static void conn_freeing(struct worker *w, struct conn *c)
{
	w->nclients--;
	buf_free(&c->pend);
	arena_reset(&c->scratch);
	if (c->stls) {
		free(c->stls);
		c->stls = NULL;
		buf_free(&c->tls_in);
		w->tls_conns--;
		conn_hold_release(w, c->tls_hold);
	}
}

static const struct slot_ops slot_ops[K_KINDS] = {
	[K_CLIENT] = { conn_complete, conn_timeout, conn_closing, conn_idle, conn_freeing },
	[K_UP] = { up_complete, up_timeout, up_closing, up_idle, up_freeing },
};
static const struct up_hooks up_client = { conn_up_answer, conn_up_events, conn_up_failed };

/* ======================================================================== *
 * 23. admin_ — answers the gateway makes itself.                           *
 * ======================================================================== */

/* The concrete provider/model names the config lists, in the client's dialect. */
static void admin_models(struct worker *w, struct conn *c, enum dialect d)
{
	const struct cfg *cfg = c->rq->hold->cfg;
	struct sb b;
	sb_init(&b, &c->arena, 1024);
	sb_puts(&b, d == D_ANTHROPIC ? "{\"data\":[" : "{\"object\":\"list\",\"data\":[");
	int n = 0;
	for (int i = 0; i < cfg->nprov; i++) {
		const struct provider *p = &cfg->prov[i];
		for (int k = 0; k < p->nmodels + p->nmap; k++) {
			const char *m = k < p->nmodels ? p->models[k] : p->model_map[k - p->nmodels].k;
			if (strpbrk(m, "*?["))
				continue;
			char id[512];
			snprintf(id, sizeof(id), "%s/%s", p->name, m);
			sb_puts(&b, n++ ? ",{" : "{");
			if (d == D_ANTHROPIC) {
				sb_puts(&b, "\"type\":\"model\",\"id\":");
				json_put_z(&b, id);
				sb_puts(&b, ",\"display_name\":");
				json_put_z(&b, id);
				sb_puts(&b, ",\"created_at\":\"1970-01-01T00:00:00Z\"}");
			} else {
				sb_puts(&b, "\"id\":");
				json_put_z(&b, id);
				sb_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":");
				json_put_z(&b, p->name);
				sb_puts(&b, "}");
			}
		}
	}
	sb_puts(&b, d == D_ANTHROPIC ? "],\"has_more\":false}" : "]}");
	conn_send_local(w, c, 200, "application/json", sb_view(&b), NULL);
}

static uint64_t admin_sum(size_t off)
{
	uint64_t t = 0;
	for (int i = 0; i < nworkers; i++)
		t += atomic_load_explicit((_Atomic uint64_t *)((char *)&workers[i].m + off), memory_order_relaxed);
	return t;
}

#define ADMIN_SUM(field) admin_sum(offsetof(struct metrics, field))

/* One counter family: HELP, TYPE, the unlabelled sample. */
static void admin_counter(struct sb *b, const char *name, const char *help, uint64_t v)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
		  (unsigned long long)v);
}

/* bifrost_requests_by_target_total{provider,model,status}: every worker's series, merged
 * through a small open-addressing table (a scrape is O(series), not O(series^2)). */
static void admin_series(struct sb *b, struct arena *a)
{
	size_t cap = 64;
	while (cap < 2 * (size_t)nworkers * METRICS_SERIES)
		cap *= 2;
	struct { const struct metrics_series *e; uint64_t v; } *tab = arena_alloc(a, sizeof(*tab) * cap, 8);
	if (!tab)
		return;
	memset(tab, 0, sizeof(*tab) * cap);
	for (int wi = 0; wi < nworkers; wi++)
		for (int i = 0; i < METRICS_SERIES; i++) {
			const struct metrics_series *e = &workers[wi].m.series[i];
			if (!atomic_load_explicit(&e->used, memory_order_acquire))
				break;
			uint64_t h = fnv1a_z(fnv1a_z(fnv1a(FNV_BASIS, &e->status, sizeof(e->status)), e->prov), e->model);
			size_t k = h & (cap - 1);
			while (tab[k].e && !(tab[k].e->status == e->status && strcmp(tab[k].e->prov, e->prov) == 0 &&
					     strcmp(tab[k].e->model, e->model) == 0))
				k = (k + 1) & (cap - 1);
			tab[k].e = e;
			tab[k].v += atomic_load_explicit(&e->n, memory_order_relaxed);
		}
	sb_puts(b, "# HELP bifrost_requests_by_target_total Routed requests by provider, upstream model and "
		   "final status (at most 128 label sets per worker; the rest count as provider=\"other\").\n"
		   "# TYPE bifrost_requests_by_target_total counter\n");
	for (size_t k = 0; k < cap; k++)
		if (tab[k].e)
			sb_printf(b, "bifrost_requests_by_target_total{provider=\"%s\",model=\"%s\",status=\"%d\"} %llu\n",
				  tab[k].e->prov, tab[k].e->model, tab[k].e->status, (unsigned long long)tab[k].v);
}

static void admin_metrics(struct worker *w, struct conn *c)
{
	struct sb b;
	sb_init(&b, &c->arena, 8192);
	admin_counter(&b, "bifrost_requests_total", "Requests answered (any route).", ADMIN_SUM(requests));
	sb_puts(&b, "# HELP bifrost_responses_total Responses by status class.\n"
		    "# TYPE bifrost_responses_total counter\n");
	for (int k = 1; k <= 5; k++)
		sb_printf(&b, "bifrost_responses_total{class=\"%dxx\"} %llu\n", k,
			  (unsigned long long)ADMIN_SUM(by_class[k]));
	admin_series(&b, &c->arena);
	admin_counter(&b, "bifrost_upstream_errors_total", "Attempts that failed at the transport level or timed out.",
		      ADMIN_SUM(upstream_errors));
	admin_counter(&b, "bifrost_log_lines_dropped_total", "Request log lines dropped (stdout too slow).",
		      ADMIN_SUM(log_dropped));
	admin_counter(&b, "bifrost_log_store_dropped_total",
		      "Request records dropped because a worker's ring to the log store was full.",
		      ADMIN_SUM(log_store_dropped));
	admin_counter(&b, "bifrost_log_store_written_total", "Request records written to the log store.",
		      atomic_load(&ldb_written));
	admin_counter(&b, "bifrost_log_store_failed_batches_total",
		      "Log store transactions that failed (disk full, I/O error) and are retried.",
		      atomic_load(&ldb_failed_batches));
	admin_counter(&b, "bifrost_connections_accepted_total", "Client connections accepted.",
		      ADMIN_SUM(conns_accepted));
	if (clu_outbox) {
		sb_printf(&b, "# HELP bifrost_cluster_redis_up Whether the last exchange with the cluster's Redis "
			      "worked (0: admission by cluster.on_redis_down).\n# TYPE bifrost_cluster_redis_up gauge\n"
			      "bifrost_cluster_redis_up %d\n# HELP bifrost_cluster_nodes Nodes alive at the last look.\n"
			      "# TYPE bifrost_cluster_nodes gauge\nbifrost_cluster_nodes %d\n",
			  (int)atomic_load(&clu_up), atomic_load(&clu_nodes));
		admin_counter(&b, "bifrost_cluster_redis_failures_total", "Rounds with Redis that failed.",
			      atomic_load(&clu_failures));
		admin_counter(&b, "bifrost_cluster_fallback_admissions_total",
			      "Admissions decided by cluster.on_redis_down (Redis away, or later than cluster.timeout_ms).",
			      atomic_load(&clu_fallbacks));
	}
	sb_printf(&b, "# HELP bifrost_tokens_total Tokens the providers reported, input (cache included) and output.\n"
		      "# TYPE bifrost_tokens_total counter\nbifrost_tokens_total{kind=\"input\"} %llu\n"
		      "bifrost_tokens_total{kind=\"output\"} %llu\n",
		  (unsigned long long)ADMIN_SUM(in_tokens), (unsigned long long)ADMIN_SUM(out_tokens));
	admin_counter(&b, "bifrost_unpriced_requests_total", "Governed requests whose model has no price (cost 0).",
		      ADMIN_SUM(unpriced));
	admin_counter(&b, "bifrost_journal_full_total", "Charges that found the journal ring full.",
		      ADMIN_SUM(journal_full));
	sb_printf(&b, "# HELP bifrost_journal_damaged_records Damaged journal records skipped at start-up.\n"
		      "# TYPE bifrost_journal_damaged_records gauge\nbifrost_journal_damaged_records %ld\n",
		  atomic_load(&jrnl_damaged));
	sb_puts(&b, "# HELP bifrost_overhead_seconds Time spent inside bifrost per proxied request, upstream excluded.\n"
		    "# TYPE bifrost_overhead_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t k = 0; k < HIST_N; k++) {
		cum += ADMIN_SUM(hist[k]);
		if (k < ARRAY_LEN(hist_le_us))
			sb_printf(&b, "bifrost_overhead_seconds_bucket{le=\"%g\"} %llu\n", hist_le_us[k] / 1e6,
				  (unsigned long long)cum);
		else
			sb_printf(&b, "bifrost_overhead_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	}
	sb_printf(&b, "bifrost_overhead_seconds_sum %.9f\nbifrost_overhead_seconds_count %llu\n",
		  (double)ADMIN_SUM(hist_sum_ns) / 1e9, (unsigned long long)cum);
	conn_send_local(w, c, 200, "text/plain; version=0.0.4", sb_view(&b), NULL);
}

/* ---- the management plane's front door: jobs out, answers back ---- */

static bool admin_loopback(struct conn *c)
{
	const char *p = conn_peer(c);
	return !strncmp(p, "127.", 4) || !strncmp(p, "[::1]:", 6) || !strncmp(p, "[::ffff:127.", 12);
}

/* Copy what the management thread needs; the client waits in RQ_MGMT (bounded by a timer). */
static void admin_handoff(struct worker *w, struct conn *c)
{
	struct request *rq = c->rq;
	const struct http_msg *m = rq->msg;
	struct mgmt_job *j = calloc(1, sizeof(*j));
	if (!j) {
		conn_error(w, c, 503, "server_error", "out of memory");
		return;
	}
	arena_init(&j->a, NULL);
	struct str *dst[] = { &j->method, &j->path, &j->query, &j->auth, &j->cookie, &j->if_match, &j->body, &j->host,
			      &j->origin };
	struct str src[] = { m->method, m->path, m->query, http_header(m, "authorization"), http_header(m, "cookie"),
			     http_header(m, "if-match"), { c->in.p + m->head_len, c->body_dst - m->head_len },
			     http_header(m, "host"), http_header(m, "origin") };
	bool oom = false;
	for (size_t i = 0; i < ARRAY_LEN(dst); i++) {
		char *p = arena_strndup(&j->a, src[i].p ? src[i].p : "", src[i].p ? src[i].n : 0);
		oom |= !p;
		*dst[i] = (struct str){ p, p ? src[i].n : 0 };
	}
	snprintf(j->peer, sizeof(j->peer), "%s", conn_peer(c));
	j->loopback = admin_loopback(c);
	bool tail = str_eq(m->path, "/api/logs/stream") && str_eq(m->method, "GET");
	if (tail && c->stls) { /* the management thread writes the socket itself: plaintext only */
		mgmt_job_free(j);
		conn_error(w, c, 501, "invalid_request_error",
			   "the live tail is served on the plain listener only; over HTTPS, poll /api/logs");
		return;
	}
	j->tail_fd = tail ? fcntl(c->fd, F_DUPFD_CLOEXEC, 0) : -1;
	j->worker = w->id;
	j->idx = slot_idx(w, c);
	j->gen = c->gen;
	sb_init(&j->out, &j->a, 4096);
	sb_init(&j->hdr, &j->a, 256);
	if (oom || j->out.oom || j->hdr.oom) {
		mgmt_job_free(j);
		conn_error(w, c, 503, "server_error", "out of memory");
		return;
	}
	if (tail && j->tail_fd < 0) {
		mgmt_job_free(j);
		conn_error(w, c, 503, "server_error", "no file descriptor for the log tail");
		return;
	}
	if (tail) { /* the socket is the management thread's now: this side lets go of it */
		jstack_push(&mgmt_inbox, &j->node, mgmt_evfd);
		slot_close(w, c);
		return;
	}
	conn_phase(rq, RQ_MGMT);
	timer_set(w, c, 60000);
	jstack_push(&mgmt_inbox, &j->node, mgmt_evfd);
}

/* The management thread's answers for this worker: to their clients, if still waiting. */
static void admin_answers(struct worker *w)
{
	for (struct jnode *n = jstack_take(&mgmt_outbox[w->id]), *next; n; n = next) {
		struct mgmt_job *j = (struct mgmt_job *)n;
		next = n->next;
		struct conn *c = j->idx < w->nslab ? &w->slab[j->idx] : NULL;
		if (c && c->gen == j->gen && c->kind == K_CLIENT && !c->closing && c->rq && c->rq->phase == RQ_MGMT) {
			char *body = arena_strndup(&c->arena, j->out.p, j->out.len);
			char *hdr = arena_strndup(&c->arena, j->hdr.p, j->hdr.len);
			if (!body || !hdr)
				conn_error(w, c, 503, "server_error", "out of memory");
			else
				conn_send_local(w, c, j->status, j->ctype, (struct str){ body, j->out.len }, hdr);
		}
		mgmt_job_free(j);
	}
}

static void admin_wake(struct worker *w)
{
	conn_release_held(w);
	if (mgmt_outbox)
		admin_answers(w);
	if (clu_outbox)
		conn_cluster_answers(w);
}

/* ---- the web UI: files embedded at build time (build.sh packs ui/ into one bundle) ---- */

#ifdef BIFROST_UI_BUNDLE
__asm__(".section .rodata\n.balign 16\n.globl admin_ui_start\n.hidden admin_ui_start\nadmin_ui_start:\n"
	".incbin \"" BIFROST_UI_BUNDLE "\"\n.globl admin_ui_end\n.hidden admin_ui_end\nadmin_ui_end:\n.previous");
extern const char admin_ui_start[], admin_ui_end[];
#else
static const char admin_ui_start[] = "", *const admin_ui_end = admin_ui_start;
#endif

/* The bundle: records of "PATH\nLENGTH\n" and LENGTH bytes. The file for a path, or false. */
static bool admin_ui_file(struct str path, struct str *body)
{
	const char *p = admin_ui_start, *end = admin_ui_end;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char *num_end;
		if (!nl)
			return false;
		unsigned long n = strtoul(nl + 1, &num_end, 10);
		if (*num_end != '\n' || n > (size_t)(end - num_end - 1))
			return false;
		if ((size_t)(nl - p) == path.n && !memcmp(p, path.p, path.n)) {
			*body = (struct str){ num_end + 1, n };
			return true;
		}
		p = num_end + 1 + n;
	}
	return false;
}

static void admin_ui(struct worker *w, struct conn *c)
{
	const struct cfg *cfg = c->rq->hold->cfg;
	struct str path = c->rq->msg->path, body;
	if (str_eq(path, "/"))
		path = STR("/ui/index.html");
	bool open_ui = cfg->admin_token || cfg->admin_hash || admin_loopback(c);
	if (str_eq(c->rq->msg->path, "/") && (!open_ui || admin_ui_end - admin_ui_start == 0)) {
		conn_send_local(w, c, 200, "text/plain", /* HEAD / is Claude Code's warm-up: always 200 */
				open_ui ? STR("bifrost LLM gateway\n")
					: STR("bifrost LLM gateway (the web UI answers loopback clients only until "
					      "admin credentials are configured)\n"), NULL);
		return;
	}
	if (!open_ui) {
		conn_error(w, c, 403, "permission_error",
			   "no admin credentials are configured: the web UI answers loopback clients only");
		return;
	}
	if (!admin_ui_file(path, &body)) {
		conn_error(w, c, 404, "invalid_request_error", admin_ui_end - admin_ui_start == 0 ? "this build has no web UI"
												: "no such file");
		return;
	}
	const char *dot = memrchr(path.p, '.', path.n);
	struct str ext = dot ? (struct str){ dot, (size_t)(path.p + path.n - dot) } : STR("");
	const char *ct = str_eq(ext, ".html") ? "text/html; charset=utf-8"
			 : str_eq(ext, ".css") ? "text/css; charset=utf-8"
			 : str_eq(ext, ".svg") ? "image/svg+xml"
			 : str_eq(ext, ".js") || str_eq(ext, ".mjs") ? "text/javascript; charset=utf-8"
			 : "application/octet-stream";
	conn_send_local(w, c, 200, ct, body,
			"Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
			"Referrer-Policy: no-referrer\r\n");
}

static void admin_dispatch(struct worker *w, struct conn *c)
{
	const struct http_msg *m = c->rq->msg;
	bool get = str_eq(m->method, "GET"), head = str_eq(m->method, "HEAD");
	if (str_starts(m->path, "/api/")) {
		admin_handoff(w, c);
	} else if ((get || head) && (str_eq(m->path, "/") || str_starts(m->path, "/ui/"))) {
		admin_ui(w, c);
	} else if ((get || head) && str_eq(m->path, "/anthropic")) {
		conn_send_local(w, c, 200, "text/plain", STR("bifrost LLM gateway\n"), NULL);
	} else if ((get || head) && str_eq(m->path, "/health")) {
		struct sb b;
		sb_init(&b, &c->arena, 256);
		sb_printf(&b, "{\"status\":\"ok\",\"version\":\"%s\",\"workers\":%d,\"providers\":[", BIFROST_VERSION,
			  nworkers);
		const struct cfg *cfg = c->rq->hold->cfg;
		for (int i = 0; i < cfg->nprov; i++) {
			const struct provider *p = &cfg->prov[i];
			sb_puts(&b, i ? ",{\"name\":" : "{\"name\":");
			json_put_z(&b, p->name);
			sb_printf(&b, ",\"kind\":\"%s\",\"keys\":[", p->kind->name);
			for (int k = 0; k < MAX(p->nkeys, 1); k++)
				sb_printf(&b, "%s{\"circuit\":\"%s\",\"failures\":%d}", k ? "," : "",
					  route_cb_state(&p->brk[k], (int64_t)w->now_ms), atomic_load(&p->brk[k].fails));
			sb_puts(&b, "]}");
		}
		sb_puts(&b, "]}");
		conn_send_local(w, c, 200, "application/json", sb_view(&b), NULL);
	} else if (get && str_eq(m->path, "/metrics")) {
		admin_metrics(w, c);
	} else if (get && (str_eq(m->path, "/v1/models") || str_eq(m->path, "/openai/v1/models"))) {
		admin_models(w, c, D_OPENAI);
	} else if (get && str_eq(m->path, "/anthropic/v1/models")) {
		admin_models(w, c, D_ANTHROPIC);
	} else {
		conn_error(w, c, 404, "invalid_request_error", "no such route");
	}
}

static const struct loop_hooks loop_hooks = { conn_accept, admin_wake };

/* ======================================================================== *
 * 24. main — command line, start-up checks, signals, reload, drain.        *
 * ======================================================================== */

#ifndef BIFROST_TEST

static const char usage_text[] =
	"usage: bifrost [-c|--config FILE] [-l|--listen HOST:PORT] [-w|--workers N] [-d|--data-dir DIR]\n"
	"       bifrost check -c FILE     validate a config (exit 0, or 1 listing every problem)\n"
	"       bifrost hash-password     read a password on stdin, print admin.password_hash\n"
	"       bifrost --version | --help\n"
	"Without --config: ./config.json if present, else providers from OPENAI_API_KEY, ANTHROPIC_API_KEY,\n"
	"GEMINI_API_KEY, GROQ_API_KEY, MISTRAL_API_KEY, OPENROUTER_API_KEY.\n"
	"Environment: BIFROST_LISTEN, BIFROST_WORKERS, BIFROST_DATA_DIR override the file; flags override both.\n";

struct opts {
	const char *config, *listen, *data_dir;
	int workers;
	bool check, hash_password;
};

/* `bifrost hash-password`: one line of stdin (no echo wanted: pipe it) -> the hash line. */
static int main_hash_password(void)
{
	char pw[1024], line[256];
	if (!fgets(pw, sizeof(pw), stdin))
		die("hash-password: give the password on stdin");
	pw[strcspn(pw, "\r\n")] = 0;
	if (!*pw)
		die("hash-password: the password is empty");
	if (!mgmt_pw_hash(pw, line, sizeof(line)))
		die("hash-password: no randomness");
	printf("%s\n", line);
	return 0;
}

static void main_args(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "check") && i == 1) {
			o->check = true;
		} else if (!strcmp(a, "hash-password") && i == 1) {
			o->hash_password = true;
		} else if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
			printf("bifrost %s\n", BIFROST_VERSION);
			exit(0);
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			exit(0);
		} else if (v && (!strcmp(a, "-c") || !strcmp(a, "--config"))) {
			o->config = argv[++i];
		} else if (v && (!strcmp(a, "-l") || !strcmp(a, "--listen"))) {
			o->listen = argv[++i];
		} else if (v && (!strcmp(a, "-w") || !strcmp(a, "--workers"))) {
			o->workers = atoi(argv[++i]);
			if (o->workers < 1 || o->workers > 1024)
				die("--workers must be between 1 and 1024");
		} else if (v && (!strcmp(a, "-d") || !strcmp(a, "--data-dir"))) {
			o->data_dir = argv[++i];
		} else {
			fprintf(stderr, "bifrost: unknown or incomplete argument '%s'\n%s", a, usage_text);
			exit(2);
		}
	}
}

/* "host:port", "[v6]:port", ":port" or "port" → a bound, listening socket, shared
 * by the workers through SO_REUSEPORT. `probe`: only bind, without SO_REUSEPORT, so
 * an address another process holds (a second bifrost, say) is refused instead of
 * silently shared; the probe socket is closed and -2 means "free". */
static int main_listen(const char *spec, bool probe, char *err, size_t errlen)
{
	char host[256] = "0.0.0.0";
	const char *port = spec, *colon = strrchr(spec, ':');
	if (colon) {
		size_t n = (size_t)(colon - spec);
		if (n && spec[0] == '[' && spec[n - 1] == ']') {
			spec++;
			n -= 2;
		}
		if (n >= sizeof(host))
			n = sizeof(host) - 1;
		if (n) {
			memcpy(host, spec, n);
			host[n] = 0;
		}
		port = colon + 1;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "bad listen address '%s': %s", spec, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!probe)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) || (!probe && listen(fd, 4096))) {
		snprintf(err, errlen, "cannot listen on %s: %s%s", spec, strerror(errno),
			 errno == EADDRINUSE ? " (another process, perhaps another bifrost, holds it)" : "");
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	if (probe) {
		close(fd);
		return -2;
	}
	return fd;
}

static void main_probe_uring(void)
{
	struct io_uring r;
	int rc = io_uring_queue_init(8, &r, 0);
	if (rc == 0) {
		io_uring_queue_exit(&r);
		return;
	}
	die("io_uring is not available (%s).\n"
	    "  - In a container: allow io_uring_setup, io_uring_enter and io_uring_register\n"
	    "    (docker run --security-opt seccomp=dist/seccomp-bifrost.json ...).\n"
	    "  - On the host: sysctl kernel.io_uring_disabled must be 0 (or 1 with this user in\n"
	    "    the kernel.io_uring_group group). Linux 6.1 or newer is required.",
	    strerror(-rc));
}

/* ---- governance state: the journal and its committer ---- */

static struct jrnl gov_jrnl;
static char gov_jrnl_path[PATH_MAX];
static _Atomic bool gov_committer_stop;
static pthread_t gov_committer;

/* Group commit (at once when a worker holds a response for it, else every 2 ms), wake the workers whose last bytes wait, compact now and then. */
/* Wake every worker: records became durable, or the journal started failing (either way
 * the last bytes they hold can go). */
static void main_wake_workers(void)
{
	uint64_t one = 1;
	for (int i = 0; i < nworkers; i++)
		if (write(workers[i].evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			break;
}

/* The current config's governance.durability is "process". */
static bool main_durability_process(void)
{
	struct cfg *c = cfg_get();
	bool process = c->gov && !c->gov->durable_disk;
	cfg_put(c);
	return process;
}

/* A failed commit: publish the error (once per change), log at most once a second. */
static void main_commit_failed(int err, uint64_t *last_log_ns)
{
	if (atomic_exchange(&jrnl_error, err) != err)
		main_wake_workers();
	if (now_ns() - *last_log_ns >= 1000000000ull) {
		*last_log_ns = now_ns();
		fprintf(stderr, "bifrost: journal %s cannot be written: %s (governed requests: %s; retrying)\n",
			gov_jrnl_path, strerror(err), "503 unless governance.on_journal_error is \"allow\"");
	}
}

/* The committer: writes records as soon as a worker kicks it, and fdatasyncs through its own
 * io_uring, so new records are written (and, with durability "process", released) while a
 * sync is in flight; each sync covers what was written when it began. With "process" a sync
 * starts at most every MAIN_SYNC_PROCESS_MS: on a small machine an fdatasync costs tens of
 * µs of the CPU the workers need, and no response waits for it. */
#define MAIN_SYNC_PROCESS_MS 10

struct main_commit {
	struct io_uring ring;
	bool syncing, kick_armed;
	uint64_t since_compact, last_log_ns, last_sync_ns;
};

/* A sync completed with `res` (0 or -errno). */
static void main_synced(struct main_commit *m, int res)
{
	m->syncing = false;
	int rc = jrnl_sync_end(&gov_jrnl, res);
	if (rc < 0) {
		main_commit_failed(-rc, &m->last_log_ns);
		return;
	}
	if (atomic_exchange(&jrnl_error, 0))
		fprintf(stderr, "bifrost: journal %s is written again\n", gov_jrnl_path);
	main_wake_workers();
}

/* Start a sync of what is written, unless one runs, nothing waits, or (durability "process")
 * the last began less than MAIN_SYNC_PROCESS_MS ago. */
static void main_sync(struct main_commit *m, bool process)
{
	struct io_uring_sqe *sqe;
	uint64_t now = now_ns();
	if (m->syncing || (process && now - m->last_sync_ns < MAIN_SYNC_PROCESS_MS * 1000000ull) ||
	    !jrnl_sync_begin(&gov_jrnl))
		return;
	m->last_sync_ns = now;
	if (!(sqe = io_uring_get_sqe(&m->ring))) { /* (the ring has room for both ops: never) */
		main_synced(m, fdatasync(gov_jrnl.fd) == 0 ? 0 : -errno);
		return;
	}
	io_uring_prep_fsync(sqe, gov_jrnl.fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, 1);
	m->syncing = true;
}

/* Wait up to `ms` for a worker's kick or the sync's end, and take what completed. */
static void main_commit_wait(struct main_commit *m, long ms)
{
	struct io_uring_sqe *sqe;
	if (!m->kick_armed && (sqe = io_uring_get_sqe(&m->ring))) {
		io_uring_prep_poll_add(sqe, gov_commit_evfd, POLLIN);
		io_uring_sqe_set_data64(sqe, 2);
		m->kick_armed = true;
	}
	struct __kernel_timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	io_uring_submit_and_wait_timeout(&m->ring, &cqe, 1, &ts, NULL);
	io_uring_for_each_cqe(&m->ring, head, cqe) {
		seen++;
		if (io_uring_cqe_get_data64(cqe) == 1) {
			main_synced(m, cqe->res);
			continue;
		}
		uint64_t kicks;
		m->kick_armed = false;
		if (read(gov_commit_evfd, &kicks, sizeof(kicks)) < 0) {
			/* reset by an earlier read: nothing to do */
		}
	}
	io_uring_cq_advance(&m->ring, seen);
}

static void *main_committer(void *arg)
{
	struct main_commit m = { 0 };
	if (io_uring_queue_init(4, &m.ring, 0) != 0)
		die("cannot set up the journal committer's io_uring");
	for (;;) {
		bool stop = atomic_load(&gov_committer_stop), process = main_durability_process();
		int n = jrnl_write(&gov_jrnl);
		if (n > 0 && process)
			main_wake_workers(); /* their last bytes may go: the charges are in the file */
		if (n < 0) {
			main_commit_failed(-n, &m.last_log_ns);
			if (stop && !m.syncing)
				break; /* draining with a failing disk: what is not written is lost */
			main_commit_wait(&m, 100); /* retry ten times a second, not at every kick */
			continue;
		}
		m.since_compact += (uint64_t)n;
		main_sync(&m, process && !stop);
		if (!m.syncing && gov_jrnl.wend == gov_jrnl.end && m.since_compact >= 100000 &&
		    jrnl_compact(&gov_jrnl, gov_jrnl_path) == 0)
			m.since_compact = 0; /* (the file is quiet: everything written is durable) */
		if (stop && n == 0 && !m.syncing)
			break;
		main_commit_wait(&m, 2); /* a worker's charge is waiting: write now, else every 2 ms */
	}
	io_uring_queue_exit(&m.ring);
	return arg;
}

/* Map the counters, replay the journal into them, and give each worker a ring. */
/* The journal had damaged records in its middle: they were skipped and everything else
 * replayed; keep the file as it was beside it for a person to look at. */
static void main_keep_damaged(int fd, long skipped)
{
	char copy[PATH_MAX + 32];
	snprintf(copy, sizeof(copy), "%s.damaged-%lld", gov_jrnl_path, (long long)time(NULL));
	int out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	char buf[65536];
	off_t off = 0;
	ssize_t got;
	while (out >= 0 && (got = pread(fd, buf, sizeof(buf), off)) > 0 && write(out, buf, (size_t)got) == got)
		off += got;
	if (out >= 0)
		close(out);
	atomic_store(&jrnl_damaged, skipped);
	fprintf(stderr, "bifrost: warning: %s: %ld damaged record(s) skipped, every other record replayed; "
		"the file as it was is kept at %s\n", gov_jrnl_path, skipped, out >= 0 ? copy : "(copy failed)");
}

static void main_governance(struct cfg *c, const char *data_dir, int nw)
{
	gov_region = gov_region_map(65536);
	if (!gov_region)
		die("cannot map the governance counters");
	if (gov_bind(c->gov, gov_region, c->cluster ? 0 : time(NULL)) != 0)
		die("too many governed entities for the counter region");
	snprintf(gov_jrnl_path, sizeof(gov_jrnl_path), "%s/governance.journal", data_dir);
	int fd = open(gov_jrnl_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot open %s: %s", gov_jrnl_path, strerror(errno));
	off_t end = 0;
	struct stat st;
	long skipped;
	int n = jrnl_replay(fd, gov_replay_apply, c->gov, &end, &skipped);
	if (n >= 0)
		n = jrnl_replay(fd, gov_replay_rates, c->gov, &end, &skipped);
	if (n < 0)
		die("cannot read %s: %s", gov_jrnl_path, strerror(-n));
	if (skipped)
		main_keep_damaged(fd, skipped);
	if (fstat(fd, &st) == 0 && st.st_size > end) {
		fprintf(stderr, "bifrost: %s: dropping %lld bytes of torn or corrupt tail\n", gov_jrnl_path,
			(long long)(st.st_size - end));
		if (ftruncate(fd, end) != 0)
			die("cannot truncate %s: %s", gov_jrnl_path, strerror(errno));
	}
	struct jrnl_ring **rings = calloc((size_t)nw, sizeof(*rings));
	for (int i = 0; rings && i < nw; i++) {
		rings[i] = workers[i].jring = aligned_alloc(64, sizeof(struct jrnl_ring));
		if (!rings[i])
			die("out of memory");
		memset(rings[i], 0, sizeof(struct jrnl_ring));
		workers[i].evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (workers[i].evfd < 0)
			die("eventfd: %s", strerror(errno));
	}
	if (!rings)
		die("out of memory");
	gov_jrnl = (struct jrnl){ .fd = fd, .end = end, .wend = end, .w = rings, .nw = nw };
	if (skipped && jrnl_compact(&gov_jrnl, gov_jrnl_path) != 0) /* the copy keeps the damage */
		fprintf(stderr, "bifrost: warning: %s: could not compact the damaged records away\n", gov_jrnl_path);
	gov_commit_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (gov_commit_evfd < 0)
		die("eventfd: %s", strerror(errno));
	if (n > 0)
		fprintf(stderr, "bifrost: replayed %d charge records from %s\n", n, gov_jrnl_path);
}

static struct cfg *main_load(const char *path, bool *from_file)
{
	struct arena a;
	struct sb errs;
	arena_init(&a, NULL);
	sb_init(&errs, &a, 1024);
	if (!path && access("config.json", R_OK) == 0)
		path = "config.json";
	*from_file = path != NULL;
	struct cfg *c = cfg_load(path, &errs);
	if (c && gov_region && gov_bind(c->gov, gov_region, c->cluster ? 0 : time(NULL)) != 0) {
		sb_puts(&errs, "  - too many governed entities for the counter region\n");
		cfg_free(c);
		c = NULL;
	}
	if (c)
		dns_refresh_due(false);
	else
		fprintf(stderr, "bifrost: %s has problems:\n%.*s", path ? path : "the default config",
			(int)errs.len, errs.p);
	arena_reset(&a);
	return c;
}

static void main_print_start(const struct cfg *c, const char *listen, int nw)
{
	fprintf(stderr, "bifrost %s listening on %s%s%s%s (%d worker%s, config: %s)\n", BIFROST_VERSION,
		*listen ? "http://" : "", listen, c->tls_listen ? (*listen ? " and https://" : "https://") : "",
		c->tls_listen ? c->tls_listen : "", nw, nw == 1 ? "" : "s", c->source);
	if (c->tls && c->tls->not_after >= 0) {
		char when[32];
		time_t t = (time_t)c->tls->not_after;
		strftime(when, sizeof(when), "%Y-%m-%d", gmtime(&t));
		fprintf(stderr, "  certificate valid until %s\n", when);
	}
	for (int i = 0; i < c->nprov; i++) {
		const struct provider *p = &c->prov[i];
		fprintf(stderr, "  provider %-12s %-10s %s://%s%s%s\n", p->name, p->kind->name,
			p->tls ? "https" : "http", p->host_hdr, p->base_path,
			p->dns && p->dns->n == 0 ? "  (not resolved yet)" : "");
	}
	if (c->nprov == 0)
		fprintf(stderr, "  no providers: set OPENAI_API_KEY (or another provider key) or write config.json\n");
	if (!c->nprov && cfg_aws_keys() && !cfg_aws_region())
		fprintf(stderr, "  AWS credentials are set but no region: set AWS_REGION for a Bedrock provider\n");
	const char *base = *listen ? "http://" : "https://", *addr = *listen ? listen : c->tls_listen;
	fprintf(stderr, "  health: %s%s/health   metrics: %s%s/metrics\n", base, addr, base, addr);
	fprintf(stderr, "  web UI and admin API: %s%s/%s\n", base, addr,
		c->admin_token || c->admin_hash ? "" : "  (no admin credentials: loopback clients only)");
	if (ldb_path[0])
		fprintf(stderr, "  request log store: %s\n", ldb_path);
}

/* The request log store and the management thread (before the workers: they push to both). */
static pthread_t main_ldb_thread;

static void main_mgmt(struct cfg *c, const char *data_dir, int nw)
{
	char err[PATH_MAX + 200];
	pthread_t t;
	mgmt_outbox = calloc((size_t)nw, sizeof(*mgmt_outbox));
	mgmt_wake_fd = calloc((size_t)nw, sizeof(*mgmt_wake_fd));
	mgmt_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!mgmt_outbox || !mgmt_wake_fd || mgmt_evfd < 0)
		die("cannot set up the management thread");
	for (int i = 0; i < nw; i++)
		mgmt_wake_fd[i] = workers[i].evfd;
	if (c->cluster) /* (a cluster added by a reload takes effect at the next start) */
		clu_init(c, nw, mgmt_wake_fd);
	if (pthread_create(&t, NULL, mgmt_run, NULL) != 0)
		die("cannot start the management thread");
	pthread_detach(t);
	atomic_store(&ldb_keep_ms, (int64_t)c->logs_days * 86400000);
	atomic_store(&ldb_keep_bytes, c->logs_bytes);
	snprintf(ldb_path, sizeof(ldb_path), "%s/logs.db", data_dir);
	sqlite3 *db = c->logs_on ? ldb_open(ldb_path, true, err, sizeof(err)) : NULL;
	if (!db) {
		if (c->logs_on)
			fprintf(stderr, "bifrost: warning: request log store off: %s\n", err);
		ldb_path[0] = 0;
		return;
	}
	ldb_rings = calloc((size_t)nw, sizeof(*ldb_rings));
	for (int i = 0; ldb_rings && i < nw; i++) {
		if (!(ldb_rings[i] = workers[i].ldb = aligned_alloc(64, sizeof(struct ldb_ring))))
			die("out of memory");
		memset(ldb_rings[i], 0, sizeof(struct ldb_ring));
	}
	ldb_nrings = nw;
	if (!ldb_rings || pthread_create(&main_ldb_thread, NULL, ldb_writer, db) != 0)
		die("cannot start the request log writer");
}

/* Listeners, the journal, the committer, then one worker thread per core. */
static void main_start(struct cfg *c, const char *listen, const char *data_dir, int nw)
{
	workers = calloc((size_t)nw, sizeof(*workers));
	if (!workers)
		die("out of memory");
	nworkers = nw;
	char err[400];
	if (!*listen && !c->tls_listen)
		die("no listener: \"listen\" is empty and there is no \"tls\" block");
	if ((*listen && main_listen(listen, true, err, sizeof(err)) != -2) ||
	    (c->tls_listen && main_listen(c->tls_listen, true, err, sizeof(err)) != -2))
		die("%s", err);
	for (int i = 0; i < nw; i++) {
		workers[i].id = i;
		workers[i].lfd = *listen ? main_listen(listen, false, err, sizeof(err)) : -1;
		workers[i].tls_lfd = c->tls_listen ? main_listen(c->tls_listen, false, err, sizeof(err)) : -1;
		if ((*listen && workers[i].lfd < 0) || (c->tls_listen && workers[i].tls_lfd < 0))
			die("%s", err);
		workers[i].log = calloc(1, sizeof(struct log_state));
	}
	main_governance(c, data_dir, nw);
	main_mgmt(c, data_dir, nw);
	if (pthread_create(&gov_committer, NULL, main_committer, NULL) != 0)
		die("cannot start the journal committer");
	for (int i = 0; i < nw; i++) {
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 1 << 20);
		if (pthread_create(&workers[i].thread, &attr, loop_run, &workers[i]) != 0)
			die("cannot start worker %d", i);
		pthread_attr_destroy(&attr);
	}
}

/* SIGHUP: load, check, publish (or keep the old config). */
static void main_reload(const struct opts *o, bool *from_file)
{
	const char *path = *from_file ? (o->config ? o->config : "config.json") : NULL;
	struct cfg *n = main_load(path, from_file);
	if (!n) {
		fprintf(stderr, "bifrost: reload rejected; keeping the running config\n");
		return;
	}
	mgmt_publish(n);
}

/* The main thread's life: signals (reload, drain) and DNS refreshes, until asked to stop. */
static void main_wait(const struct opts *o, bool from_file, int sfd)
{
	for (;;) {
		struct signalfd_siginfo si;
		struct timeval tv = { 1, 0 };
		fd_set rfds;
		FD_ZERO(&rfds);
		FD_SET(sfd, &rfds);
		if (select(sfd + 1, &rfds, NULL, NULL, &tv) > 0 && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo != SIGHUP) {
				fprintf(stderr, "bifrost: draining (signal %d)\n", (int)si.ssi_signo);
				return;
			}
			main_reload(o, &from_file);
		}
		dns_refresh_due(false);
	}
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	bool from_file;
	main_args(argc, argv, &o);
	arena_init(&sys_arena, NULL);
	if (o.hash_password)
		return main_hash_password();
	if (o.check && !o.config)
		die("check needs -c FILE");
	struct cfg *c = main_load(o.config, &from_file);
	if (!c)
		return 1;
	mgmt_cfg_path = o.config ? o.config : "config.json";
	if (o.check) {
		printf("%s: ok (%d provider%s)\n", o.config, c->nprov, c->nprov == 1 ? "" : "s");
		if (c->tls) {
			char when[32] = "unknown";
			time_t t = (time_t)c->tls->not_after;
			if (c->tls->not_after >= 0)
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
			printf("tls: %s key, %zu certificate%s, valid until %s%s\n",
			       c->tls->key_type == BR_KEYTYPE_RSA ? "RSA" : "EC", c->tls->nchain,
			       c->tls->nchain == 1 ? "" : "s", when, c->tls->not_after >= 0 &&
			       c->tls->not_after < (int64_t)time(NULL) ? " (EXPIRED)" : "");
		}
		return 0;
	}
	const char *listen = o.listen ? o.listen : getenv("BIFROST_LISTEN") ? getenv("BIFROST_LISTEN")
			     : c->listen ? c->listen : "0.0.0.0:8080";
	const char *data_dir = o.data_dir ? o.data_dir : getenv("BIFROST_DATA_DIR") ? getenv("BIFROST_DATA_DIR")
			       : c->data_dir ? c->data_dir : "./data";
	int nw = o.workers ? o.workers : getenv("BIFROST_WORKERS") ? atoi(getenv("BIFROST_WORKERS")) : c->workers;
	if (nw <= 0)
		nw = (int)MAX(1, sysconf(_SC_NPROCESSORS_ONLN));
	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
		fprintf(stderr, "bifrost: warning: cannot create data_dir %s: %s\n", data_dir, strerror(errno));
	main_probe_uring();
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	atomic_store(&cfg_current, c);
	atomic_store(&cfg_generation, 1);
	sigset_t set; /* blocked in every thread; the main thread reads them from a signalfd */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (EFBIG), not a kill */
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	main_start(c, listen, data_dir, nw);
	main_print_start(c, listen, nw);
	if (c->cluster) /* last: it may install the cluster's config, and so free `c` */
		clu_start();
	main_wait(&o, from_file, sfd);
	atomic_store(&g_draining, true);
	for (int i = 0; i < nw; i++)
		pthread_join(workers[i].thread, NULL);
	atomic_store(&gov_committer_stop, true);
	pthread_join(gov_committer, NULL);
	atomic_store(&ldb_stop, true);
	if (ldb_nrings)
		pthread_join(main_ldb_thread, NULL); /* every record of the drained requests is stored */
	fprintf(stderr, "bifrost: stopped\n");
	return 0;
}

#endif /* BIFROST_TEST */
