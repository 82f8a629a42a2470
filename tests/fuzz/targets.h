/*
 * tests/fuzz/targets.h -- the fuzz targets of bifrost.c, one function each.
 *
 * Shared by the libFuzzer drivers (tests/fuzz/<name>.c, clang -fsanitize=fuzzer)
 * and by the regression replay (tests/unit/fuzz_regress.c, gcc + Criterion), so a
 * crash found by the fuzzer replays through exactly the same code in `./build.sh test`.
 *
 *   int fuzz_<name>(const uint8_t *data, size_t size)    one input, always returns 0
 *   fuzz_targets[]                                       name -> function, for the replay
 *
 * This header #includes ../../bifrost.c (built with -DBIFROST_TEST: no main). Before it,
 * open() is routed through fuzz_open(): the config loader may name any file as a
 * provider's tls.ca_file, and a fuzzer must neither read /dev/zero nor block on a FIFO,
 * so only files under this process's scratch directory (and, during fuzz_init, the
 * system CA bundle) may be opened. getenv() ("env.NAME" values) is read-only and left
 * alone; nothing else in the sections driven here touches the file system.
 *
 * Every target frees what it allocates before returning (arenas reset, configs freed,
 * descriptors closed): libFuzzer's per-input leak check stays on.
 *
 * Conventions: the first input byte (or two) often selects a variant (endpoint, dialect,
 * how the bytes are split into reads); the rest is the payload. Splits come from a
 * PRNG seeded by that byte, so every input replays identically.
 */
#ifndef BIFROST_FUZZ_TARGETS_H
#define BIFROST_FUZZ_TARGETS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fuzz_open(const char *path, int flags, ...);
#define open(...) fuzz_open(__VA_ARGS__)
#ifndef BIFROST_C /* -DBIFROST_C='"path/to/bifrost.c"' fuzzes another copy (an older revision, say) */
#define BIFROST_C "../../bifrost.c"
#endif
#include BIFROST_C
#undef open

/* ======================================================================== */
/* plumbing                                                                 */
/* ======================================================================== */

/*
 * An invariant of bifrost.c's contract failed: a finding, like a sanitizer report (abort).
 * With FUZZ_SOFT_ASSERT=DIR in the environment (for long exploratory runs) the first failure
 * of each assertion is reported, the input saved as DIR/assert-LINE, and the run goes on.
 */
static const uint8_t *fz_cur;
static size_t fz_cur_n;
static void fz_failed(int line)
{
	static unsigned char seen[4096];
	const char *dir = getenv("FUZZ_SOFT_ASSERT");
	if (!dir || !*dir)
		abort();
	if (line < 0 || line >= (int)sizeof(seen) || seen[line]++)
		return;
	char p[512];
	snprintf(p, sizeof(p), "%s/assert-%d", dir, line);
	FILE *f = fopen(p, "wb");
	if (f) {
		fwrite(fz_cur, 1, fz_cur_n, f);
		fclose(f);
	}
}
#define FUZZ_ASSERT(cond, ...)                                                             \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "FUZZ INVARIANT FAILED at %s:%d: %s\n  ", __FILE__, __LINE__, \
				#cond);                                                    \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
			fz_failed(__LINE__);                                               \
		}                                                                          \
	} while (0)

static struct {
	bool ready;
	bool open_any;            /* fuzz_init only: the system CA bundle */
	char tmpdir[128];         /* scratch directory of this process ("" until made) */
	struct cfg *cfg;          /* the routing + governance config every request target uses */
	struct gov_region *region;
	struct worker *w;         /* a worker, enough of one for conn_ helpers that are pure */
	struct conn *cl, *u;      /* a client connection and its upstream */
	struct cfg_hold hold;
	struct http_msg msg;
	const struct gov_vkey *vk;
	int nslots;
} F;

static int fuzz_open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	size_t n = strlen(F.tmpdir);
	bool inside = n && strncmp(path, F.tmpdir, n) == 0 && (path[n] == '/' || path[n] == 0) &&
		      !strstr(path, "/../");
	if (!F.open_any && !inside) {
		errno = EACCES;
		return -1;
	}
	return open(path, flags, mode);
}

/* xorshift64*, seeded from input bytes: how an input is cut into reads. */
struct fz_rng {
	uint64_t s;
};

static void fz_seed(struct fz_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ULL + 0x1234567; }

static uint64_t fz_next(struct fz_rng *r) { return rng_next(&r->s); }

/* Length of the next read: 1..max, small ones often (byte-at-a-time dribbles). */
static size_t fz_cut(struct fz_rng *r, size_t left, unsigned mode)
{
	if (left == 0)
		return 0;
	size_t k;
	switch (mode & 3) {
	case 0: k = 1 + fz_next(r) % 3; break;          /* dribble */
	case 1: k = 1 + fz_next(r) % 64; break;
	case 2: k = 1 + fz_next(r) % 512; break;
	default: k = left; break;                       /* all at once */
	}
	return MIN(k, left);
}

/* A malloc'd copy of exactly n bytes (so ASan sees any read past the end). */
static char *fz_dup(const void *p, size_t n)
{
	char *b = malloc(n ? n : 1);
	if (!b)
		abort();
	if (n)
		memcpy(b, p, n);
	return b;
}

/* Is [p, p+n) inside [b, b+len)? */
static bool fz_inside(const char *p, size_t n, const char *b, size_t len)
{
	return n == 0 || (p && p >= b && n <= len && p - b <= (ptrdiff_t)(len - n));
}

/* Output of a translator is JSON: the parser must take it (nesting limit aside: a
 * translation adds a few levels to input that was at the limit). */
static void fz_assert_json(const char *what, const char *p, size_t n)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	int rc = json_parse(&j, &a, p, n);
	bool deep = rc && j.err && strstr(j.err, "deep");
	FUZZ_ASSERT(rc == 0 || deep, "%s is not valid JSON (%s): %.*s", what, j.err ? j.err : "?",
		    (int)MIN(n, 2000), p);
	arena_reset(&a);
}

/* Every complete SSE event in out parses: data is JSON or [DONE]. */
static void fz_assert_events(const char *what, const char *p, size_t n, bool named)
{
	size_t off = 0, len;
	while ((len = sse_next(p + off, n - off)) > 0) {
		struct str d = sse_data(p + off, len);
		FUZZ_ASSERT(d.p, "%s: event without data: %.*s", what, (int)len, p + off);
		if (named)
			FUZZ_ASSERT(len > 7 && memcmp(p + off, "event: ", 7) == 0, "%s: unnamed event: %.*s", what,
				    (int)len, p + off);
		if (!str_eq(d, "[DONE]"))
			fz_assert_json(what, d.p, d.n);
		off += len;
	}
	FUZZ_ASSERT(off == n, "%s: partial event at the end: %.*s", what, (int)(n - off), p + off);
}

/* ---- the fixed world: one governed routing config, a counter region, a worker ---- */

static const char fz_route_cfg[] =
	"{\"log_requests\":false,"
	" \"providers\":["
	"  {\"name\":\"openai\",\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\",\"weight\":70,"
	"   \"models\":[\"gpt-*\",\"o1*\",\"o3*\",\"text-embedding-*\"],"
	"   \"keys\":[{\"value\":\"k1\",\"weight\":3},{\"value\":\"k2\",\"weight\":1}],"
	"   \"budget\":{\"max_limit\":2000,\"reset_duration\":\"1M\"}},"
	"  {\"name\":\"anthropic\",\"provider\":\"anthropic\",\"base_url\":\"http://127.0.0.1:9\",\"apiKey\":\"ak\","
	"   \"weight\":30,\"models\":[\"claude-*\"],"
	"   \"budget\":{\"max_limit\":100,\"reset_duration\":\"1d\",\"calendar_aligned\":true}},"
	"  {\"name\":\"fast\",\"provider\":\"groq\",\"base_url\":\"http://127.0.0.1:9/openai/v1\","
	"   \"models\":[\"llama-*\",\"gpt-4o\"],\"apiKey\":\"gk\"},"
	"  {\"name\":\"local\",\"provider\":\"ollama\",\"models\":[\"mistral\",\"vendor/*\"],"
	"   \"model_map\":{\"claude-*\":\"llama3\",\"gpt-4o-mini\":\"qwen2\"}},"
	"  {\"name\":\"az\",\"provider\":\"azure\",\"base_url\":\"http://127.0.0.1:9\",\"api_version\":\"2024-10-21\","
	"   \"deployments\":{\"gpt-4o\":\"dep 1\"},\"apiKey\":\"azk\",\"models\":[\"gpt-4o\"],\"headers\":{\"X-T\":\"v\"}},"
	"  {\"name\":\"off\",\"provider\":\"vllm\",\"weight\":0}"
	" ],"
	" \"fallbacks\":[\"openai\",\"anthropic/claude-3-5-haiku\"],"
	" \"pricing\":{\"openai/gpt-4o\":{\"input\":2.5,\"output\":10,\"cache_read\":1.25},"
	"   \"anthropic/claude-*\":{\"input\":3,\"output\":15,\"cache_read\":0.3,\"cache_write\":3.75},"
	"   \"gpt-*\":{\"input\":1,\"output\":2}},"
	" \"governance\":{\"enforce\":false,"
	"  \"customers\":[{\"id\":\"acme\",\"budget\":{\"max_limit\":1000,\"reset_duration\":\"1M\",\"calendar_aligned\":true}}],"
	"  \"teams\":[{\"id\":\"platform\",\"customer_id\":\"acme\","
	"   \"budget\":{\"max_limit\":500,\"reset_duration\":\"1w\",\"calendar_aligned\":true}}],"
	"  \"virtual_keys\":[{\"id\":\"alice\",\"value\":\"sk-alice\",\"team_id\":\"platform\",\"active\":true,"
	"   \"budget\":{\"max_limit\":50,\"reset_duration\":\"1d\"},"
	"   \"rate_limit\":{\"request_max_limit\":1000000,\"request_reset_duration\":\"1m\","
	"    \"token_max_limit\":4000000000000,\"token_reset_duration\":\"1h\",\"max_concurrent\":1000},"
	"   \"provider_configs\":[{\"provider\":\"anthropic\",\"weight\":70,"
	"     \"budget\":{\"max_limit\":40,\"reset_duration\":\"1Y\"}},"
	"    {\"provider\":\"openai\",\"weight\":30,\"budget\":{\"max_limit\":20,\"reset_duration\":\"3M\"}}]}]}"
	"}";

static void fz_cleanup(void)
{
	if (!F.tmpdir[0])
		return;
	DIR *d = opendir(F.tmpdir);
	struct dirent *e;
	char p[PATH_MAX];
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", F.tmpdir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(F.tmpdir);
	F.tmpdir[0] = 0;
}

/* Zero the counters and bind the config's entities again: each input starts clean. */
static void fz_region_reset(const struct gov *g, int64_t now)
{
	memset(F.region->slot, 0, sizeof(struct gov_slot) * (size_t)F.nslots);
	FUZZ_ASSERT(gov_bind((struct gov *)g, F.region, now) == 0, "gov_bind failed");
}

static void fuzz_init(void)
{
	if (F.ready)
		return;
	F.ready = true;
	const char *bases[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
	for (size_t i = 0; i < ARRAY_LEN(bases) && !F.tmpdir[0]; i++) {
		if (!bases[i] || !*bases[i])
			continue;
		snprintf(F.tmpdir, sizeof(F.tmpdir), "%s/bifrost-fuzz-XXXXXX", bases[i]);
		if (!mkdtemp(F.tmpdir))
			F.tmpdir[0] = 0;
	}
	if (!F.tmpdir[0]) {
		fprintf(stderr, "fuzz: cannot make a scratch directory\n");
		abort();
	}
	atexit(fz_cleanup);
	/* As main() does before the first config: the system trust anchors, once. */
	arena_init(&sys_arena, NULL);
	F.open_any = true;
	struct arena ea;
	struct sb errs;
	arena_init(&ea, NULL);
	sb_init(&errs, &ea, 256);
	char *boot = strdup("{\"providers\":[{\"provider\":\"openai\",\"apiKey\":\"x\"}]}");
	struct cfg *c = cfg_parse(boot, strlen(boot), "boot", &errs);
	cfg_free(c);
	F.open_any = false;
	sb_init(&errs, &ea, 256);
	char *t = strdup(fz_route_cfg);
	F.cfg = cfg_parse(t, strlen(t), "fuzz-route.json", &errs);
	if (!F.cfg) {
		fprintf(stderr, "fuzz: the fixed routing config is rejected:\n%.*s", (int)errs.len, errs.p);
		abort();
	}
	arena_reset(&ea);
	F.nslots = 256;
	F.region = gov_region_map((size_t)F.nslots);
	F.w = calloc(1, sizeof(*F.w));
	F.cl = calloc(1, sizeof(*F.cl));
	F.u = calloc(1, sizeof(*F.u));
	if (!F.region || !F.w || !F.cl || !F.u)
		abort();
	F.w->jring = aligned_alloc(64, sizeof(struct jrnl_ring));
	if (!F.w->jring)
		abort();
	memset(F.w->jring, 0, sizeof(struct jrnl_ring));
	F.w->rng = 0x5eed;
	F.hold.cfg = F.cfg;
	F.w->hold = &F.hold;
	F.vk = gov_key_find(F.cfg->gov, "sk-alice", 8);
	F.msg = (struct http_msg){ .method = STR("POST"), .path = STR("/v1/chat/completions"), .minor = 1,
				   .content_length = -1, .keep_alive = true };
}

/* ---- a request on the fake worker: begin (route + admit), end (charge + metrics) ---- */

static const struct provider *fz_prov(const char *name)
{
	const struct provider *p = route_provider(F.cfg, name, strlen(name));
	FUZZ_ASSERT(p, "no provider %s", name);
	return p;
}

/* A request for `model` at provider p, its tiers admitted. Returns the request (client arena). */
static struct request *fz_begin(const struct provider *p, const char *model, enum endpoint ep)
{
	struct conn *cl = F.cl;
	fz_region_reset(F.cfg->gov, time(NULL));
	memset(F.w->jring, 0, offsetof(struct jrnl_ring, rec));
	arena_init(&cl->arena, NULL);
	arena_init(&cl->scratch, NULL);
	cl->peer = UINT32_MAX;
	cl->kind = K_CLIENT;
	struct request *rq = arena_new(&cl->arena, struct request, 1);
	FUZZ_ASSERT(rq, "out of memory");
	memset(rq, 0, sizeof(*rq));
	rq->msg = &F.msg;
	rq->ep = ep;
	rq->hold = &F.hold;
	F.hold.live++;
	F.w->active++;
	rq->o.model = model;
	rq->o.max_tokens = 1024;
	rq->rt.c[0] = (struct route_cand){ p, model };
	rq->rt.n = 1;
	rq->vk = F.vk;
	cl->rq = rq;
	struct gov_deny d;
	int st = conn_gov_admit(F.w, cl, &rq->rt.c[0], &d);
	FUZZ_ASSERT(st == 0, "admission refused (%d) on a clean region", st);
	return rq;
}

/* The response went out (or not): bill it as conn_request_end does, then forget it. */
static void fz_end(bool head_sent, size_t streamed)
{
	struct request *rq = F.cl->rq;
	rq->streaming = head_sent;
	rq->phase = head_sent ? RQ_STREAM : RQ_AWAIT; /* a stream the client left: billed as cut */
	rq->status = 200;
	rq->streamed = streamed;
	conn_request_end(F.w, F.cl);
	FUZZ_ASSERT(F.cl->rq == NULL && F.hold.live == 0, "request not released");
}

/* ======================================================================== */
/* 5. http_: request and response heads                                     */
/* ======================================================================== */

static void fz_check_msg(const struct http_msg *m, const char *b, size_t len, int rc, bool request)
{
	if (rc < 0)
		return;
	FUZZ_ASSERT((size_t)rc == m->head_len && m->head_len <= len, "head_len %zu rc %d len %zu", m->head_len, rc,
		    len);
	FUZZ_ASSERT(m->head_len >= 4 && memcmp(b + m->head_len - 4, "\r\n\r\n", 4) == 0, "head does not end in CRLFCRLF");
	FUZZ_ASSERT(m->nhdr >= 0 && m->nhdr <= HTTP_MAX_HDRS, "nhdr %d", m->nhdr);
	FUZZ_ASSERT(m->content_length >= -1, "content_length %lld", m->content_length);
	FUZZ_ASSERT(!(m->chunked && m->content_length >= 0), "both Content-Length and chunked");
	FUZZ_ASSERT(m->minor == 0 || m->minor == 1, "minor %d", m->minor);
	if (request) {
		FUZZ_ASSERT(m->method.n > 0 && fz_inside(m->method.p, m->method.n, b, m->head_len), "method slice");
		FUZZ_ASSERT(m->path.n > 0 && m->path.p[0] == '/' && fz_inside(m->path.p, m->path.n, b, m->head_len),
			    "path slice");
		FUZZ_ASSERT(fz_inside(m->query.p, m->query.n, b, m->head_len), "query slice");
	} else {
		FUZZ_ASSERT(m->status >= 0 && m->status <= 999, "status %d", m->status);
	}
	for (int i = 0; i < m->nhdr; i++) {
		FUZZ_ASSERT(m->hdr[i].name.n > 0 && fz_inside(m->hdr[i].name.p, m->hdr[i].name.n, b, m->head_len),
			    "header %d name", i);
		FUZZ_ASSERT(fz_inside(m->hdr[i].value.p, m->hdr[i].value.n, b, m->head_len), "header %d value", i);
		for (size_t k = 0; k < m->hdr[i].value.n; k++)
			FUZZ_ASSERT(m->hdr[i].value.p[k] != '\r' && m->hdr[i].value.p[k] != '\n', "CR/LF in a value");
	}
	/* what the gateway asks of a parsed head */
	(void)http_header(m, "host");
	(void)http_header(m, "content-type");
	(void)str_has_token(http_header(m, "connection"), "close");
	(void)conn_retry_after(m);
	if (!request) {
		(void)up_sse(m);
		(void)http_reason(m->status);
		(void)xlate_status_type(m->status);
	} else {
		(void)conn_vkey(F.cfg->gov, m);
	}
	/* the receive buffer moved: slices follow it */
	char *copy = fz_dup(b, m->head_len);
	struct http_msg *mv = malloc(sizeof(*mv));
	if (!mv)
		abort();
	memcpy(mv, m, sizeof(*mv));
	http_rebase(mv, b, copy);
	for (int i = 0; i < mv->nhdr; i++)
		FUZZ_ASSERT(fz_inside(mv->hdr[i].name.p, mv->hdr[i].name.n, copy, m->head_len) &&
				    memcmp(mv->hdr[i].value.p, m->hdr[i].value.p, m->hdr[i].value.n) == 0,
			    "rebase moved header %d wrong", i);
	free(mv);
	free(copy);
}

/*
 * Parse the head the way a connection does: bytes arrive in reads (cut by the PRNG), the
 * parser is called after each with the same `scanned`; then compare with one call on the
 * same bytes. Input: [0] cut mode + seed, [1] head limit selector, rest = the bytes.
 */
static int fz_http_head(const uint8_t *d, size_t n, bool request)
{
	if (n < 2)
		return 0;
	static const size_t limits[] = { 64 * 1024, 1024, 64, 16 * 1024 };
	struct fz_rng r;
	fz_seed(&r, d[0]);
	unsigned mode = d[0] & 3;
	size_t max_head = limits[d[1] & 3];
	d += 2, n -= 2;
	struct http_msg *m = malloc(sizeof(*m)), *one = malloc(sizeof(*one));
	if (!m || !one)
		abort();
	size_t len = 0, scanned = 0;
	int rc = -EAGAIN;
	while (len < n && rc == -EAGAIN) {
		len += fz_cut(&r, n - len, mode);
		char *b = fz_dup(d, len);
		rc = request ? http_parse_request(m, b, len, &scanned, max_head)
			     : http_parse_response(m, b, len, &scanned, max_head);
		FUZZ_ASSERT(scanned <= len, "scanned %zu > len %zu", scanned, len);
		size_t s1 = 0;
		int rc1 = request ? http_parse_request(one, b, len, &s1, max_head)
				  : http_parse_response(one, b, len, &s1, max_head);
		FUZZ_ASSERT(rc == rc1, "incremental parse gave %d, one-shot %d (len %zu)", rc, rc1, len);
		FUZZ_ASSERT(rc == -EAGAIN || rc == -EBADMSG || rc == -E2BIG || rc > 0, "rc %d", rc);
		if (rc > 0)
			FUZZ_ASSERT(m->head_len <= max_head, "head %zu over the limit %zu", m->head_len, max_head);
		fz_check_msg(m, b, len, rc, request);
		free(b);
	}
	free(m);
	free(one);
	return 0;
}

static int fuzz_http_request(const uint8_t *d, size_t n) { fuzz_init(); return fz_http_head(d, n, true); }
static int fuzz_http_response(const uint8_t *d, size_t n) { fuzz_init(); return fz_http_head(d, n, false); }

/* ======================================================================== */
/* 5. http_: the chunked decoder                                            */
/* ======================================================================== */

/*
 * Decode a chunked body in place as it arrives in reads (the buffer grows, already
 * decoded bytes stay in front, as in up_), and compare with one call over all of it:
 * same status, same decoded bytes, same end. Input: [0] cut mode + seed, rest = body.
 */
static int fuzz_http_chunked(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	struct fz_rng r;
	fz_seed(&r, d[0]);
	unsigned mode = d[0] & 3;
	d++, n--;
	/* one shot */
	char *all = fz_dup(d, n);
	struct http_chunked c1 = { 0 };
	size_t src1 = 0, dst1 = 0;
	int rc1 = http_dechunk(&c1, all, &src1, n, &dst1);
	FUZZ_ASSERT(rc1 == 0 || rc1 == 1 || rc1 == -EBADMSG, "rc %d", rc1);
	FUZZ_ASSERT(dst1 <= src1 && src1 <= n, "dst %zu src %zu n %zu", dst1, src1, n);
	/* in reads */
	struct http_chunked c = { 0 };
	size_t len = 0, src = 0, dst = 0;
	int rc = 0;
	char *b = NULL;
	while (len < n && rc == 0) {
		size_t add = fz_cut(&r, n - len, mode);
		char *nb = malloc(len + add);
		if (!nb)
			abort();
		if (len)
			memcpy(nb, b, len); /* decoded prefix, then the undecoded rest, as in the buffer */
		memcpy(nb + len, d + len, add);
		free(b);
		b = nb;
		len += add;
		rc = http_dechunk(&c, b, &src, len, &dst);
		FUZZ_ASSERT(dst <= src && src <= len, "dst %zu src %zu len %zu", dst, src, len);
	}
	if (rc1 == 1) {
		FUZZ_ASSERT(rc == 1 && src == src1 && dst == dst1 && (!dst || memcmp(b, all, dst) == 0),
			    "split decode differs: rc %d/%d src %zu/%zu dst %zu/%zu", rc, rc1, src, src1, dst, dst1);
	} else if (rc1 < 0) {
		FUZZ_ASSERT(rc < 0, "split decode accepted what one call refused (rc %d)", rc);
	} else {
		FUZZ_ASSERT(rc == 0 && dst == dst1 && (!dst || memcmp(b, all, dst) == 0), "split decode differs (incomplete)");
	}
	free(b);
	free(all);
	return 0;
}

/* ======================================================================== */
/* 4, 9, 10. json_ + routing: model, stream, fallbacks, the upstream request */
/* ======================================================================== */

/* Walk every token: unescape strings, read numbers, skip subtrees. */
static void fz_json_walk(struct json *j, struct arena *a)
{
	for (int i = 0; i < j->ntok; i++) {
		jsmntok_t *t = &j->tok[i];
		FUZZ_ASSERT(t->start >= 0 && t->end >= t->start && (size_t)t->end <= j->n, "token %d span", i);
		int k = json_skip(j, i);
		FUZZ_ASSERT(k > i && k <= j->ntok, "json_skip(%d) = %d", i, k);
		if (t->type == JSMN_STRING) {
			size_t len = 0;
			char *s = json_str(j, a, i, &len);
			if (s)
				FUZZ_ASSERT(len <= (size_t)(t->end - t->start) && s[len] == 0, "json_str length");
		} else if (t->type == JSMN_PRIMITIVE) {
			(void)json_int(j, i, 0);
			(void)json_is_true(j, i);
		} else if (t->type == JSMN_OBJECT) {
			static const char *const keys[] = { "model", "type", "content", "messages" };
			int v[4];
			(void)json_obj_get(j, i, keys, 4, v, NULL);
		}
	}
}

/* Input: [0] endpoint + flags, rest = the request body as a client sends it. */
static int fuzz_json_route(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	enum endpoint ep = (enum endpoint)(d[0] % (EP_COUNT_TOKENS + 1));
	bool query = d[0] & 0x80;
	d++, n--;
	char *body = fz_dup(d, n);
	struct arena a;
	arena_init(&a, NULL);
	struct json j;
	if (json_parse(&j, &a, body, n) == 0) {
		FUZZ_ASSERT(j.ntok >= 1 && j.tok[0].type == JSMN_OBJECT, "root is not an object");
		fz_json_walk(&j, &a);
		/* the escaping writer round-trips every string */
		for (int i = 0; i < j.ntok; i++) {
			if (j.tok[i].type != JSMN_STRING)
				continue;
			size_t len;
			char *s = json_str(&j, &a, i, &len);
			if (!s)
				continue;
			struct sb o;
			sb_init(&o, &a, len + 16);
			sb_puts(&o, "{\"k\":");
			json_put_str(&o, s, len);
			sb_puts(&o, "}");
			struct json j2;
			FUZZ_ASSERT(o.oom || json_parse(&j2, &a, o.p, o.len) == 0, "json_put_str output: %.*s", (int)o.len, o.p);
			size_t l2;
			char *s2 = o.oom ? NULL : json_str(&j2, &a, 2, &l2);
			bool utf8 = true; /* invalid UTF-8 is written as U+FFFD: only valid text round-trips */
			for (size_t k = 0; k < len && utf8; k++) {
				size_t q = (unsigned char)s[k] < 0x80 ? 1 : json_utf8_seq((const unsigned char *)s + k, len - k);
				utf8 = q > 0;
				k += q ? q - 1 : 0;
			}
			FUZZ_ASSERT(o.oom || (s2 && (!utf8 || (l2 == len && memcmp(s, s2, len) == 0))),
				    "string does not round-trip: %.*s", (int)o.len, o.p);
		}
	}
	arena_reset(&a);

	/* the gateway's own reading of the body (client arena), then routing */
	struct conn *cl = F.cl;
	arena_init(&cl->arena, NULL);
	arena_init(&cl->scratch, NULL);
	struct request *rq = arena_new(&cl->arena, struct request, 1);
	FUZZ_ASSERT(rq, "out of memory");
	memset(rq, 0, sizeof(*rq));
	rq->msg = &F.msg;
	rq->ep = ep;
	rq->hold = &F.hold;
	cl->rq = rq;
	if (prov_openai_prepare(&rq->o, &cl->arena, body, n, ep, F.cfg->max_json_tokens) == 0) {
		FUZZ_ASSERT(rq->o.model && *rq->o.model, "accepted without a model");
		FUZZ_ASSERT(rq->o.ned >= 0 && rq->o.ned <= PROV_MAX_EDITS, "ned %d", rq->o.ned);
		const char *why = NULL;
		if (route_resolve(F.cfg, rq->o.model, &F.w->rng, &rq->rt, &why) == 0) {
			FUZZ_ASSERT(rq->rt.n >= 1 && rq->rt.n <= ROUTE_MAX, "route n %d", rq->rt.n);
			conn_fallbacks(F.w, cl);
			FUZZ_ASSERT(rq->rt.n >= 1 && rq->rt.n <= ROUTE_MAX, "after fallbacks n %d", rq->rt.n);
			for (int i = 0; i < rq->rt.n; i++) {
				const struct route_cand *rc = &rq->rt.c[i];
				FUZZ_ASSERT(rc->p && rc->model, "candidate %d", i);
				(void)gov_key_allows(F.vk, rc->p->name, rc->model);
				(void)gov_key_pcfg(F.vk, rc->p->name, rc->p->kind->name);
				(void)gov_price_find(F.cfg->gov, rc->p->name, rc->p->kind->name, rc->model);
				if (rc->p->kind->dialect != prov_dialect(ep))
					continue; /* translated: the xlate_request target */
				struct up_req ur;
				struct str q = query ? STR("a=1&b") : (struct str){ NULL, 0 };
				int ki = route_key(rc->p, rc->model, &F.w->rng);
				const char *key = rc->p->nkeys ? rc->p->keys[ki].value : NULL;
				if (prov_build(&cl->arena, &rq->o, rc->p, rc->model, key, ep, q, &ur) != 0)
					continue;
				size_t total = 0, body_len = 0;
				for (int k = 0; k < ur.niov; k++)
					total += ur.iov[k].iov_len;
				FUZZ_ASSERT(total == ur.len, "iov total %zu != len %zu", total, ur.len);
				char *up = malloc(total ? total : 1);
				if (!up)
					abort();
				for (int k = 0, off = 0; k < ur.niov; off += (int)ur.iov[k].iov_len, k++)
					memcpy(up + off, ur.iov[k].iov_base, ur.iov[k].iov_len);
				body_len = total - ur.iov[0].iov_len;
				/* what goes upstream: a valid head and a valid JSON body of that length */
				struct http_msg *m = malloc(sizeof(*m));
				size_t sc = 0;
				int hrc = http_parse_request(m, up, total, &sc, 1 << 20);
				FUZZ_ASSERT(hrc == (int)ur.iov[0].iov_len, "upstream head does not parse (%d, %s): %.*s", hrc,
					    m->err ? m->err : "", (int)ur.iov[0].iov_len, up);
				FUZZ_ASSERT(m->content_length == (long long)body_len, "Content-Length %lld for %zu bytes",
					    m->content_length, body_len);
				free(m);
				fz_assert_json("upstream body", up + ur.iov[0].iov_len, body_len);
				free(up);
			}
		}
	}
	arena_reset(&cl->arena);
	arena_reset(&cl->scratch);
	cl->rq = NULL;
	free(body);
	return 0;
}

/* ======================================================================== */
/* 6. sse_: the event splitter, and the untranslated stream relay           */
/* ======================================================================== */

/* The upstream's receive buffer grows by `add` bytes: exactly sized, so ASan sees over-reads. */
static void fz_up_append(struct conn *u, const uint8_t *p, size_t add)
{
	char *nb = malloc(u->in.len + add ? u->in.len + add : 1);
	if (!nb)
		abort();
	if (u->in.len)
		memcpy(nb, u->in.p, u->in.len);
	memcpy(nb + u->in.len, p, add);
	free(u->in.p);
	u->in.p = nb;
	u->in.len += add;
	u->in.cap = u->in.len;
	u->dec_end = u->in.len;
}

static void fz_up_reset(struct conn *u)
{
	buf_free(&u->in);
	u->ev_pos = u->dec_end = u->body_start = u->dec_pos = 0;
	u->resp_done = false;
}

/* Input: [0] cut mode + seed, [1] provider dialect + client usage flag, rest = the stream. */
static int fuzz_sse(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 2)
		return 0;
	struct fz_rng r;
	fz_seed(&r, d[0]);
	unsigned mode = d[0] & 3;
	bool anth = d[1] & 1, client_usage = d[1] & 2;
	uint8_t seed0 = d[0];
	d += 2, n -= 2;
	/* one shot: the events and their fields */
	char *all = fz_dup(d, n);
	size_t nev = 0, off = 0, len;
	size_t *ends = malloc(sizeof(size_t) * (n + 1));
	if (!ends)
		abort();
	while ((len = sse_next(all + off, n - off)) > 0) {
		FUZZ_ASSERT(len <= n - off, "event past the end");
		char *ev = fz_dup(all + off, len); /* fields read inside the event only */
		struct str f[] = { sse_data(ev, len), sse_field(ev, len, "event"), sse_field(ev, len, "id"),
				   sse_field(ev, len, "") };
		for (size_t k = 0; k < ARRAY_LEN(f); k++)
			FUZZ_ASSERT(fz_inside(f[k].p, f[k].n, ev, len), "field %zu outside its event", k);
		free(ev);
		off += len;
		ends[nev++] = off;
	}
	/* the same stream in reads: the same events (an event never spans what it should not) */
	struct conn *u = F.u;
	fz_up_reset(u);
	size_t got = 0, k = 0;
	while (got < n) {
		size_t add = fz_cut(&r, n - got, mode);
		fz_up_append(u, d + got, add);
		got += add;
		while ((len = sse_next(u->in.p + u->ev_pos, u->in.len - u->ev_pos)) > 0) {
			u->ev_pos += len;
			FUZZ_ASSERT(k < nev && ends[k] == u->ev_pos, "event %zu ends at %zu in reads, not %zu", k,
				    u->ev_pos, k < nev ? ends[k] : 0);
			k++;
		}
	}
	FUZZ_ASSERT(k == nev, "%zu events in reads, %zu at once", k, nev);
	free(ends);
	free(all);
	/* the relay as conn_up_events runs it (no translation), billed at the end */
	fz_up_reset(u);
	const struct provider *p = fz_prov(anth ? "anthropic" : "openai");
	struct request *rq = fz_begin(p, anth ? "claude-sonnet-4" : "gpt-4o", anth ? EP_MESSAGES : EP_CHAT);
	rq->o.client_usage = client_usage;
	rq->streaming = true;
	fz_seed(&r, seed0 ^ 0x55u);
	got = 0;
	size_t relayed = 0;
	for (int turns = 0;; turns++) {
		FUZZ_ASSERT(turns <= (int)n + 64, "the relay makes no progress");
		size_t add = fz_cut(&r, n - got, mode);
		fz_up_append(u, d + got, add);
		got += add;
		bool last = got == n, fin = last;
		for (;;) { /* one batch per send, as many batches as the events need */
			struct iovec v[SEND_IOV_MAX];
			int nv = 1;
			size_t before = u->ev_pos;
			fin = u->resp_done = last; /* (the answer's end, as up_body reports it) */
			size_t pay = conn_relay_events(F.cl, u, v, &nv, &fin);
			FUZZ_ASSERT(nv >= 1 && nv <= SEND_IOV_MAX, "niov %d", nv);
			size_t sum = 0;
			for (int i = 1; i < nv; i++) {
				FUZZ_ASSERT(fz_inside(v[i].iov_base, v[i].iov_len, u->in.p, u->in.len), "iov outside the buffer");
				sum += v[i].iov_len;
			}
			FUZZ_ASSERT(sum == pay && u->ev_pos <= u->dec_end, "payload %zu != %zu", sum, pay);
			relayed += pay;
			arena_reset(&F.cl->scratch);
			if (fin || u->ev_pos == before)
				break;
		}
		if (last) {
			FUZZ_ASSERT(fin && u->ev_pos == u->dec_end, "stream not consumed: %zu of %zu", u->ev_pos, u->dec_end);
			break;
		}
	}
	fz_end(true, relayed);
	fz_up_reset(u);
	return 0;
}

/* ======================================================================== */
/* 11. xlate_: requests, whole answers, streams (both directions)           */
/* ======================================================================== */

static const char *const fz_models[] = { "gpt-4o", "o3-mini", "claude-sonnet-4-20250514", "gpt-5\"\\\n\x01" };


/* A translated body is what an OpenAI-format provider gets: the gateway's own reader must take it. */
static void fz_assert_chat_body(struct arena *a, const struct sb *out)
{
	struct client_req *o = arena_new(a, struct client_req, 1);
	int prc = o ? prov_openai_prepare(o, a, out->p, out->len, EP_CHAT, SIZE_MAX) : 0;
	FUZZ_ASSERT(prc == 0 || (o->j.err && strstr(o->j.err, "deep")),
		    "translated request refused by prov_openai_prepare (%s): %.*s", o->j.err ? o->j.err : "?",
		    (int)MIN(out->len, 2000), out->p);
}

/* Input: [0] bit0 direction (0: Anthropic -> OpenAI), bit1 reasoning model, bits2-3 model;
 * rest = the client's request body. */
static int fuzz_xlate_request(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	bool o2a = d[0] & 1, reasoning = d[0] & 2;
	const char *model = fz_models[(d[0] >> 2) & 3];
	d++, n--;
	char *body = fz_dup(d, n);
	struct arena a;
	arena_init(&a, NULL);
	struct sb out;
	sb_init(&out, &a, n + n / 4 + 256);
	const char *err = NULL;
	int rc = o2a ? xlate_req_o2a(&a, body, n, model, &out, &err)
		     : xlate_req_a2o(&a, body, n, model, reasoning, &out, &err);
	FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -ENOMEM || rc == -EINVAL, "rc %d", rc);
	if (rc == 0) {
		fz_assert_json(o2a ? "xlate_req_o2a output" : "xlate_req_a2o output", out.p, out.len);
		if (!o2a)
			fz_assert_chat_body(&a, &out);
	}
	arena_reset(&a);
	free(body);
	return 0;
}

/* Input: [0] bits0-1: resp_o2a, resp_a2o, error_o2a, error_a2o; [1] status; rest = the body. */
static int fuzz_xlate_response(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 2)
		return 0;
	static const int statuses[] = { 400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504, 529, 200, 0, 418, 999 };
	unsigned which = d[0] & 3;
	int status = statuses[d[1] & 15];
	long long created = (long long)(int8_t)d[1] * (1LL << 56); /* up to +-2^63: extremes */
	d += 2, n -= 2;
	char *body = fz_dup(d, n);
	struct arena a;
	arena_init(&a, NULL);
	struct sb out;
	sb_init(&out, &a, n + n / 4 + 256);
	struct xlate_usage u;
	int rc = 0;
	switch (which) {
	case 0: rc = xlate_resp_o2a(&a, body, n, "claude-sonnet-4", &out, &u); break;
	case 1: rc = xlate_resp_a2o(&a, body, n, "gpt-4o", created, &out, &u); break;
	case 2: xlate_error_o2a(body, n, status, &a, &out); break;
	default: xlate_error_a2o(body, n, status, &a, &out); break;
	}
	static const char *const what[] = { "xlate_resp_o2a output", "xlate_resp_a2o output", "xlate_error_o2a output",
					    "xlate_error_a2o output" };
	if (rc == 0 && !out.oom)
		fz_assert_json(what[which], out.p, out.len);
	arena_reset(&a);
	/* billing reads the provider's own usage from a whole answer, then charges it */
	if (which < 2) {
		const struct provider *p = fz_prov(which == 0 ? "openai" : "anthropic");
		fz_begin(p, which == 0 ? "gpt-4o" : "claude-sonnet-4", which == 0 ? EP_MESSAGES : EP_CHAT);
		if (n && body[0] == '{')
			conn_read_usage(F.cl, body, n);
		fz_end(true, n);
	}
	free(body);
	return 0;
}

/*
 * A translated stream, as conn_up_events runs it: the upstream's bytes arrive in reads,
 * conn_xlate_events turns every complete event into the client's dialect (reading the usage
 * for billing on the way), the batch is checked and the scratch arena reset; at the end the
 * request is billed. Input: [0] cut mode + seed, [1] flags (bit0: client asked for usage,
 * bit1: stream cut off before its end; xlate_stream_o2r, bit2: the stream is an Anthropic
 * provider's, translated through Chat), rest = the provider's SSE stream.
 */
enum fz_stream { FZ_O2A, FZ_A2O, FZ_O2R, FZ_R2A };

static int fz_xlate_stream(const uint8_t *d, size_t n, enum fz_stream how)
{
	if (how == FZ_O2R && n >= 2 && (d[1] & 4))
		how = FZ_R2A; /* [1] bit2: an Anthropic provider's events, through Chat into Responses */
	bool o2a = how == FZ_O2A;
	fuzz_init();
	if (n < 2)
		return 0;
	struct fz_rng r;
	fz_seed(&r, d[0]);
	unsigned mode = d[0] & 3;
	bool include_usage = d[1] & 1, cut = d[1] & 2;
	d += 2, n -= 2;
	/* o2a here = OpenAI provider, Anthropic client (the request's XL_A2O); o2r = OpenAI Chat
	 * provider, a Responses API client (XL_R2O), with "apply_patch" a custom tool */
	bool resp = how == FZ_O2R || how == FZ_R2A;
	const struct provider *p = fz_prov(how == FZ_A2O || how == FZ_R2A ? "anthropic" : how == FZ_O2R ? "fast" : "openai");
	struct request *rq = fz_begin(p, how == FZ_O2A ? "claude-sonnet-4" : how == FZ_O2R ? "llama-3" : "gpt-4o",
				      how == FZ_O2A ? EP_MESSAGES : resp ? EP_RESPONSES : EP_CHAT);
	rq->streaming = true;
	rq->o.client_usage = include_usage;
	rq->xl = how == FZ_O2A ? XL_A2O : how == FZ_O2R ? XL_R2O : how == FZ_R2A ? XL_R2A : XL_O2A;
	rq->xid = how == FZ_O2A ? "msg_bf0123" : resp ? "resp_bf0123" : "chatcmpl-bf0123";
	if (resp) {
		rq->rnames.n = 1;
		rq->rnames.name[0] = STR("apply_patch");
		/* a small cap: the "too large to translate" end is reached too */
		struct xlate_o2r *o = how == FZ_R2A ? &rq->xs.r2a.o2r : &rq->xs.o2r;
		xlate_o2r_init(o, &F.cl->arena, rq->o.model, rq->xid, &rq->rnames, 1700000000, include_usage ? 4096 : 1 << 20);
		if (how == FZ_R2A)
			xlate_a2o_init(&rq->xs.r2a.a2o, rq->o.model, rq->xid, true);
	} else if (o2a) {
		xlate_o2a_init(&rq->xs.o2a, rq->o.model, rq->xid);
	} else {
		xlate_a2o_init(&rq->xs.a2o, rq->o.model, rq->xid, include_usage);
	}
	struct conn *u = F.u;
	fz_up_reset(u);
	size_t got = 0, streamed = 0;
	bool done = false;
	while (!done) {
		size_t add = fz_cut(&r, n - got, mode);
		fz_up_append(u, d + got, add);
		got += add;
		done = u->resp_done = got == n;
		struct sb t;
		sb_init(&t, &F.cl->scratch, 1024);
		if (done && cut)
			conn_stream_error(F.cl, &t); /* the provider failed mid-stream */
		else
			conn_xlate_events(F.cl, u, &t, &done);
		if (!t.oom) {
			fz_assert_events(how == FZ_R2A ? "Responses events from an Anthropic stream"
					 : how == FZ_O2R ? "Responses events from an OpenAI stream"
					 : o2a ? "Anthropic events from an OpenAI stream" : "OpenAI chunks from an Anthropic stream",
					 t.p, t.len, how != FZ_A2O);
			streamed += t.len;
		}
		arena_reset(&F.cl->scratch);
		if (done && cut)
			break;
	}
	fz_end(true, streamed);
	fz_up_reset(u);
	return 0;
}

static int fuzz_xlate_stream_o2a(const uint8_t *d, size_t n) { return fz_xlate_stream(d, n, FZ_O2A); }
static int fuzz_xlate_stream_a2o(const uint8_t *d, size_t n) { return fz_xlate_stream(d, n, FZ_A2O); }
static int fuzz_xlate_stream_o2r(const uint8_t *d, size_t n) { return fz_xlate_stream(d, n, FZ_O2R); }

/*
 * The Responses API on a Chat Completions provider. Input: [0] bit0: 0 = a Responses request
 * -> Chat (whose output the gateway's own body reader must take; bit1: reasoning effort
 * passed on), 1 = a whole Chat answer ->
 * a Responses object (valid JSON); rest = the body.
 */
static int fuzz_xlate_responses(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	bool answer = d[0] & 1, effort = d[0] & 2;
	d++, n--;
	char *body = fz_dup(d, n);
	struct arena a;
	arena_init(&a, NULL);
	struct sb out;
	sb_init(&out, &a, n + n / 4 + 256);
	struct xlate_rnames names = { .n = 1, .name = { STR("apply_patch") } };
	struct xlate_usage u = { 0 };
	const char *err = NULL;
	int rc = answer ? xlate_resp_o2r(&a, body, n, "groq/llama-3", &names, 1700000000, &out, &u)
			: xlate_req_r2o(&a, body, n, "llama-3", effort, &out, &names, &err);
	FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -ENOMEM, "rc %d", rc);
	FUZZ_ASSERT(answer || rc != -EBADMSG || err, "a refusal without a reason");
	if (rc == 0 && !out.oom) {
		fz_assert_json(answer ? "xlate_resp_o2r output" : "xlate_req_r2o output", out.p, out.len);
		if (!answer)
			fz_assert_chat_body(&a, &out);
	}
	arena_reset(&a);
	free(body);
	return 0;
}

/* /v1/messages/count_tokens estimate. Input: the request body. */
static int fuzz_count_tokens(const uint8_t *d, size_t n)
{
	fuzz_init();
	char *body = fz_dup(d, n);
	long t = xlate_count_tokens(body, n);
	FUZZ_ASSERT(t == -EBADMSG || t >= 0, "estimate %ld", t);
	FUZZ_ASSERT(t < 0 || (unsigned long)t <= (n + 6400UL * (n + 1)) / 4 + 1, "estimate %ld for %zu bytes", t, n);
	free(body);
	return 0;
}

/* ======================================================================== */
/* 8. cfg_: the config loader                                               */
/* ======================================================================== */

/* Input: the config file's bytes. */
static int fuzz_cfg(const uint8_t *d, size_t n)
{
	fuzz_init();
	/* dns_ entries are process-wide (they outlive configs): start each input empty */
	memset(dns_table, 0, sizeof(dns_table));
	atomic_store(&dns_count, 0);
	char *text = malloc(n + 1); /* cfg_load's shape: the bytes, then a NUL */
	if (!text)
		abort();
	memcpy(text, d, n);
	text[n] = 0;
	struct arena ea;
	struct sb errs;
	arena_init(&ea, NULL);
	sb_init(&errs, &ea, 1024);
	/* the loader's warnings (env.NAME unset, ...) go to stdio's stderr: drop them, they would
	 * slow the fuzzer and flood its log; sanitizer reports write to fd 2 and still show */
	static FILE *quiet;
	if (!quiet)
		quiet = fopen("/dev/null", "w");
	FILE *saved = stderr;
	if (quiet)
		stderr = quiet;
	struct cfg *c = cfg_parse(text, n, "fuzz.json", &errs);
	stderr = saved;
	if (!c) {
		FUZZ_ASSERT(errs.len > 0 || errs.oom, "config refused without a reason");
	} else {
		FUZZ_ASSERT(errs.len == 0, "config accepted with problems: %.*s", (int)errs.len, errs.p);
		FUZZ_ASSERT(c->nprov >= 0 && c->max_body >= 1024 && c->max_header >= 1024, "limits");
		for (int i = 0; i < c->nprov; i++) {
			const struct provider *p = &c->prov[i];
			FUZZ_ASSERT(p->name && p->kind && p->brk, "provider %d incomplete", i);
			FUZZ_ASSERT(!p->host || (p->port >= 1 && p->port <= 65535 && p->base_path && p->host_hdr),
				    "provider %s url", p->name);
			uint64_t rng = 1;
			int ki = route_key(p, "gpt-4o", &rng);
			FUZZ_ASSERT(p->nkeys == 0 || (ki >= 0 && ki < p->nkeys), "route_key %d of %d", ki, p->nkeys);
		}
		/* what the gateway then does with a config: route, bind the counters, report */
		static const char *const models[] = { "gpt-4o", "claude-3-5-haiku", "openai/gpt-4o", "x/y/z", "a" };
		uint64_t rng = 7;
		for (size_t i = 0; i < ARRAY_LEN(models); i++) {
			struct route rt;
			const char *why;
			if (route_resolve(c, models[i], &rng, &rt, &why) == 0)
				FUZZ_ASSERT(rt.n >= 1 && rt.n <= ROUTE_MAX, "route n %d", rt.n);
		}
		for (int i = 0; i < c->nfallbacks; i++) {
			struct route rt;
			const char *why;
			(void)route_resolve(c, c->fallbacks[i], &rng, &rt, &why);
		}
		struct gov *g = c->gov;
		if (g && g->nall <= F.nslots) {
			int64_t now = 1750000000;
			memset(F.region->slot, 0, sizeof(struct gov_slot) * (size_t)F.nslots);
			if (gov_bind(g, F.region, now) == 0) {
				struct arena a;
				struct sb b;
				arena_init(&a, NULL);
				sb_init(&b, &a, 4096);
				gov_usage_json(&b, g, now);
				if (!b.oom)
					fz_assert_json("gov_usage_json output", b.p, b.len);
				arena_reset(&a);
			}
		}
		for (int i = 0; g && i < g->nkey; i++) {
			const struct gov_vkey *k = &g->key[i];
			if (k->nvalue)
				FUZZ_ASSERT(gov_key_find(g, k->value, k->nvalue) != NULL, "key %s not found by its value", k->e.id);
		}
		cfg_free(c);
	}
	arena_reset(&ea);
	memset(dns_table, 0, sizeof(dns_table));
	atomic_store(&dns_count, 0);
	return 0;
}

/* ======================================================================== */
/* 12, 13. jrnl_ + gov_: start-up replay, compaction, loading the snapshot  */
/* ======================================================================== */

static int fz_memfd(const void *p, size_t n)
{
	int fd = memfd_create("bifrost-fuzz-journal", MFD_CLOEXEC);
	FUZZ_ASSERT(fd >= 0, "memfd_create: %s", strerror(errno));
	FUZZ_ASSERT(n == 0 || pwrite(fd, p, n, 0) == (ssize_t)n, "pwrite");
	return fd;
}

/*
 * Input: [0] flags, rest = a journal file.
 *   bit0: make every whole record pass the checks (magic, version, CRC32C recomputed) — a
 *         fuzzer cannot forge CRCs, and a CRC-valid record is what a buggy or older writer,
 *         or a hand-edited file, leaves behind; without it the raw bytes are replayed.
 *   bit1: point each record at one of the config's entities (entity = key[byte 8] of the
 *         config's list, kind set to match), so replay reaches the counters.
 * Replay (main_governance's start-up path) into the counter region, then /api/usage, then
 * compaction into a snapshot file (jrnl_compact) and replay of that snapshot (the next
 * start-up).
 */
static int fuzz_jrnl(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	unsigned flags = d[0];
	d++, n--;
	uint8_t *jb = (uint8_t *)fz_dup(d, n);
	const struct gov *g = F.cfg->gov;
	for (size_t off = 0; off + JRNL_REC <= n; off += JRNL_REC) {
		uint8_t *rec = jb + off;
		if ((flags & 2) && g->nall) {
			const struct gov_ent *e = g->all[rec[8] % g->nall];
			jrnl_put(rec + 8, e->key, 8);
			rec[3] = (uint8_t)(e->kind << 4 | (rec[3] & 1 ? JRNL_TOTAL : JRNL_CHARGE));
		}
		if (flags & 1) {
			jrnl_put(rec, JRNL_MAGIC, 2);
			rec[2] = JRNL_VERSION;
			jrnl_put(rec + 4, jrnl_rec_crc(rec), 4);
		}
	}
	int64_t now = 1750000000;
	/* start-up: replay into freshly bound counters */
	fz_region_reset(g, now);
	int fd = fz_memfd(jb, n);
	off_t end = -1;
	long skipped = -1;
	int applied = jrnl_replay(fd, gov_replay_apply, (void *)g, &end, &skipped);
	/* damaged records are skipped: applied + skipped records end exactly at valid end */
	FUZZ_ASSERT(applied >= 0 && skipped >= 0 && end >= 0 && end % JRNL_REC == 0 && (size_t)end <= n &&
			    ((size_t)applied + (size_t)skipped) * JRNL_REC == (size_t)end,
		    "replay: %d applied, %ld skipped, valid end %lld of %zu", applied, skipped, (long long)end, n);
	struct arena a;
	struct sb b;
	arena_init(&a, NULL);
	sb_init(&b, &a, 4096);
	gov_usage_json(&b, g, now);
	if (!b.oom)
		fz_assert_json("gov_usage_json after replay", b.p, b.len);
	arena_reset(&a);
	/* compaction: fold into TOTALs, write the snapshot, continue on it */
	if (ftruncate(fd, end) == 0) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/governance.journal", F.tmpdir);
		struct jrnl j = { .fd = fd, .end = end };
		int rc = jrnl_compact(&j, path);
		fd = j.fd;
		if (rc == 0) {
			struct stat st;
			FUZZ_ASSERT(fstat(fd, &st) == 0 && st.st_size == j.end && j.end % JRNL_REC == 0,
				    "snapshot size %lld, end %lld", (long long)st.st_size, (long long)j.end);
			/* the next start-up loads the snapshot: every record of it must replay */
			fz_region_reset(g, now);
			off_t end2 = -1;
			long skipped2 = -1;
			int n2 = jrnl_replay(fd, gov_replay_apply, (void *)g, &end2, &skipped2);
			FUZZ_ASSERT(n2 >= 0 && skipped2 == 0 && end2 == j.end, "snapshot replays %d records up to %lld of %lld", n2,
				    (long long)end2, (long long)j.end);
		}
		unlink(path);
	}
	close(fd);
	free(jb);
	return 0;
}

/* ======================================================================== */
/* the list                                                                 */
/* ======================================================================== */

struct fuzz_target {
	const char *name;
	int (*fn)(const uint8_t *, size_t);
};

/* pricing_file: the input is a LiteLLM-format price list, loaded through a config that
 * names it (a scratch file), then looked up the ways a request does. */
static int fuzz_pricing_file(const uint8_t *d, size_t n)
{
	fuzz_init();
	memset(dns_table, 0, sizeof(dns_table));
	atomic_store(&dns_count, 0);
	char path[256], cfgtext[512];
	snprintf(path, sizeof(path), "%s/prices.json", F.tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, d, n) != (ssize_t)n)
		abort();
	close(fd);
	int len = snprintf(cfgtext, sizeof(cfgtext), "{\"providers\":[{\"name\":\"oa\",\"provider\":\"openai\","
			   "\"base_url\":\"http://127.0.0.1:9/v1\"}],\"pricing_file\":\"%s\"}", path);
	char *text = strndup(cfgtext, (size_t)len);
	struct arena ea;
	struct sb errs;
	arena_init(&ea, NULL);
	sb_init(&errs, &ea, 1024);
	struct cfg *c = text ? cfg_parse(text, (size_t)len, "fuzz.json", &errs) : NULL;
	if (c) {
		static const char *const models[] = { "gpt-4o", "house-model", "llama-3.3-70b", "" };
		for (size_t i = 0; i < ARRAY_LEN(models); i++) {
			const struct gov_price *p = gov_price_find(c->gov, "oa", "openai", models[i]);
			FUZZ_ASSERT(!p || (p->in >= 0 && p->out >= 0 && p->cache_read >= 0 && p->cache_write >= 0),
				    "a negative price for %s", models[i]);
		}
		struct gov_price m = gov_price_max(c->gov, "oa", "openai", false);
		FUZZ_ASSERT(m.in >= 0 && m.out >= 0, "a negative max price");
		cfg_put(c);
	} else {
		FUZZ_ASSERT(errs.len > 0 || errs.oom, "config refused without a reason");
	}
	arena_reset(&ea);
	unlink(path);
	return 0;
}

/* ======================================================================== */
/* 5. http_: the query-string reader behind /api/logs and /api/logs/stats   */
/* ======================================================================== */

/*
 * http_query: [0] cap - 1 (the output buffer: 1..256 bytes), [1] name length L (mod 33),
 * [2 .. 2+L) the parameter name (cut at a NUL, as a C string), the rest the query string.
 *
 * The query is an exact malloc'd copy and the output buffer exactly `cap` bytes, so ASan sees
 * any read past the query or write past the buffer. Against a reference reader written from
 * the contract (first `name=` segment between '&'s; "%XX" with two hex digits inside the
 * segment is one byte, '+' a space, anything else itself; cut at cap - 1, NUL-terminated;
 * the decoded length returned, -1 when absent):
 *   - absent/present and the returned length (min(decoded, cap - 1)) equal the reference;
 *   - the bytes equal the reference's, and the NUL follows them (a %00 inside shows as a
 *     length that differs from strlen);
 *   - a larger buffer gives the same value extended (the small one is its prefix).
 */
static int fq_hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The reference: decoded value of the first `name=` segment into ref (no cap); -1 when absent. */
static long fq_ref(const char *q, size_t n, const char *name, unsigned char *ref)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i <= n;) {
		size_t e = i;
		while (e < n && q[e] != '&')
			e++;
		if (e - i > nl && memcmp(q + i, name, nl) == 0 && q[i + nl] == '=') {
			size_t o = 0;
			for (size_t k = i + nl + 1; k < e; k++) {
				int hi = -1, lo = -1;
				if (q[k] == '%' && k + 2 < e) {
					hi = fq_hex(q[k + 1]);
					lo = fq_hex(q[k + 2]);
				}
				if (hi >= 0 && lo >= 0) {
					ref[o++] = (unsigned char)(hi << 4 | lo);
					k += 2;
				} else {
					ref[o++] = q[k] == '+' ? ' ' : (unsigned char)q[k];
				}
			}
			return (long)o;
		}
		if (e >= n)
			break;
		i = e + 1;
	}
	return -1;
}

/* http_query_get into an exactly-sized heap buffer (0x5a before); the bytes copied to copy. */
static long fq_get(const char *q, size_t n, const char *name, size_t cap, unsigned char *copy)
{
	char *out = malloc(cap);
	if (!out)
		abort();
	memset(out, 0x5a, cap);
	long r = http_query_get((struct str){ n ? q : NULL, n }, name, out, cap);
	if (r >= 0) {
		FUZZ_ASSERT((size_t)r < cap, "length %ld does not fit the %zu-byte buffer", r, cap);
		FUZZ_ASSERT((size_t)r < cap && out[r] == 0, "no NUL right after the %ld bytes returned", r);
	} else {
		FUZZ_ASSERT(r == -1, "absent is -1, got %ld", r);
	}
	memcpy(copy, out, cap);
	free(out);
	return r;
}

static int fuzz_http_query(const uint8_t *d, size_t n)
{
	if (n < 2)
		return 0;
	size_t cap = (size_t)d[0] + 1, nl = d[1] % 33;
	if (n < 2 + nl)
		return 0;
	char name[34];
	memcpy(name, d + 2, nl);
	name[nl] = 0; /* a NUL inside cuts it, as for any C string */
	const uint8_t *qp = d + 2 + nl;
	size_t qn = n - 2 - nl;
	char *q = fz_dup(qp, qn);
	unsigned char *ref = malloc(qn + 1), *got = malloc(cap), *big = malloc(cap + 64);
	if (!ref || !got || !big)
		abort();
	long want = fq_ref(q, qn, name, ref);
	long r = fq_get(q, qn, name, cap, got);
	FUZZ_ASSERT((r >= 0) == (want >= 0), "found %ld, the reference says %ld (name \"%s\", query %.*s)", r, want, name,
		    (int)MIN(qn, 300), q);
	if (r >= 0 && want >= 0) {
		size_t keep = MIN((size_t)want, cap - 1);
		FUZZ_ASSERT((size_t)r == keep, "length %ld, the reference says %zu (cap %zu, %ld decoded bytes)", r, keep, cap, want);
		FUZZ_ASSERT(memcmp(got, ref, keep) == 0 && got[keep] == 0,
			    "value differs from the reference (cap %zu, %ld decoded bytes): got %.*s want %.*s", cap, want,
			    (int)keep, (const char *)got, (int)keep, (const char *)ref);
		long r2 = fq_get(q, qn, name, cap + 64, big);
		size_t keep2 = MIN((size_t)want, cap + 63);
		FUZZ_ASSERT(r2 >= 0 && (size_t)r2 == keep2 && memcmp(big, ref, keep2) == 0 && big[keep2] == 0,
			    "a larger buffer differs (%ld)", r2);
		FUZZ_ASSERT(memcmp(big, got, keep) == 0, "the short value is not a prefix of the long one");
	}
	free(ref);
	free(got);
	free(big);
	free(q);
	return 0;
}

/* ======================================================================== */
/* 16. mgmt_: config documents written back (mgmt_emit, mgmt_pretty)        */
/* ======================================================================== */

/*
 * mgmt_doc: [0] flags (bit0: also pretty-print A when it is not valid JSON), then document A,
 * then optionally a NUL byte and document B (a stored one). Each an exact malloc'd copy (ASan
 * sees any read past its end).
 *
 * The reference knows the secret names and the marker's prefix from the contract; member names
 * and values are read unescaped (json_str), as the config loader reads them. Invariants (A valid):
 *   - emit(A) (no stored document) succeeds iff A has no marker (a string starting with the
 *     prefix) under a secret's name: a marker is never written. Then it parses and is A;
 *     pretty(compact) and pretty(A) are A; pretty(compact(pretty(compact))) == pretty(compact)
 *     (the file format is a fixed point);
 *   - red = emit(A, redact) succeeds and parses; it is A except that every string under a
 *     secret's name that does not start with "env." is mgmt_marker(its value): MGMT_REDACTED "-"
 *     and 8 lowercase hex digits; a secret json_str cannot read (a lone surrogate) is no
 *     exception: it must not come back as written (asserted on a line of its own);
 *   - emit(red, old = A) succeeds and is A (every marker names its secret), unless two secrets
 *     of A share a marker (32 bits; skipped);
 *   - emit(X, old = B), X = A and X = red: succeeds iff every marker under a secret's name in X
 *     is the marker of a string under a secret's name in B; then it parses, each marker became
 *     a value whose marker it is, and the rest is X. pretty of it parses too.
 * Malformed A: mgmt_pretty still reads only inside it (flag bit0).
 */
#define MD_PREFIX "sk-\xe2\x80\xa6redacted"

static const char *const md_names[] = { "apiKey", "api_key", "value", "token", "password_hash", "secret_access_key",
	"session_token", "aws_secret_access_key" };

/* Same JSON value: strings unescaped, numbers and literals as written, members in order. */
static bool md_same(struct json *a, int i, struct json *b, int k, struct arena *ar)
{
	const jsmntok_t *x = &a->tok[i], *y = &b->tok[k];
	if (x->type != y->type || x->size != y->size)
		return false;
	if (x->type == JSMN_STRING || x->type == JSMN_PRIMITIVE) {
		if (x->type == JSMN_STRING) {
			size_t n1 = 0, n2 = 0;
			char *s1 = json_str(a, ar, i, &n1), *s2 = json_str(b, ar, k, &n2);
			if (s1 && s2)
				return n1 == n2 && memcmp(s1, s2, n1) == 0;
		}
		struct str r1 = json_raw(a, i), r2 = json_raw(b, k);
		return r1.n == r2.n && memcmp(r1.p, r2.p, r1.n) == 0;
	}
	int ci = i + 1, ck = k + 1;
	for (int n = 0; n < x->size; n++) {
		bool obj = x->type == JSMN_OBJECT;
		if (!md_same(a, ci, b, ck, ar) || (obj && !md_same(a, ci + 1, b, ck + 1, ar)))
			return false;
		ci = json_skip(a, obj ? ci + 1 : ci);
		ck = json_skip(b, obj ? ck + 1 : ck);
	}
	return true;
}

/* Is key token k a secret's name (unescaped)? */
static bool md_secret_name(struct json *j, int k, struct arena *ar)
{
	size_t n = 0;
	char *s = json_str(j, ar, k, &n);
	for (size_t i = 0; s && i < ARRAY_LEN(md_names); i++)
		if (n == strlen(md_names[i]) && !memcmp(s, md_names[i], n))
			return true;
	return false;
}

/* Value token v under key k: a string under a secret's name? Its unescaped bytes (NULL when
 * json_str refuses them; *unreadable then says so). */
static char *md_secret(struct json *j, int k, int v, struct arena *ar, size_t *n, bool *unreadable)
{
	*unreadable = false;
	if (j->tok[v].type != JSMN_STRING || !md_secret_name(j, k, ar))
		return NULL;
	char *s = json_str(j, ar, v, n);
	*unreadable = !s;
	return s;
}

static bool md_prefixed(const char *s, size_t n) { return n >= sizeof(MD_PREFIX) - 1 && !memcmp(s, MD_PREFIX, sizeof(MD_PREFIX) - 1); }

/* MD_PREFIX "-" and 8 lowercase hex digits, nothing more. */
static bool md_marker_shaped(const char *s, size_t n)
{
	if (n != sizeof(MD_PREFIX) + 8 || !md_prefixed(s, n) || s[sizeof(MD_PREFIX) - 1] != '-')
		return false;
	for (size_t i = sizeof(MD_PREFIX); i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Every readable secret string of j (member values under a secret's name), in document order. */
struct md_secrets {
	int n, cap;
	char **s;
	size_t *len;
	char (*mk)[MGMT_MARKER_LEN + 1];
};

static void md_collect(struct json *j, struct arena *ar, struct md_secrets *out)
{
	memset(out, 0, sizeof(*out));
	for (int t = 0; t < j->ntok; t++) {
		if (j->tok[t].type != JSMN_OBJECT)
			continue;
		for (int m = 0, k = t + 1; m < j->tok[t].size; m++, k = json_skip(j, k + 1)) {
			size_t n = 0;
			bool unreadable;
			char *s = md_secret(j, k, k + 1, ar, &n, &unreadable);
			if (!s)
				continue;
			if (out->n == out->cap) {
				out->cap = out->cap ? out->cap * 2 : 16;
				out->s = realloc(out->s, (size_t)out->cap * sizeof(*out->s));
				out->len = realloc(out->len, (size_t)out->cap * sizeof(*out->len));
				out->mk = realloc(out->mk, (size_t)out->cap * sizeof(*out->mk));
				if (!out->s || !out->len || !out->mk)
					abort();
			}
			out->s[out->n] = s;
			out->len[out->n] = n;
			mgmt_marker(s, n, out->mk[out->n]);
			out->n++;
		}
	}
}

static void md_secrets_free(struct md_secrets *s)
{
	free(s->s);
	free(s->len);
	free(s->mk);
}

/* Do two different secrets share a marker? */
static bool md_collision(const struct md_secrets *s)
{
	for (int p = 0; p < s->n; p++)
		for (int q = p + 1; q < s->n; q++)
			if (!strcmp(s->mk[p], s->mk[q]) && (s->len[p] != s->len[q] || memcmp(s->s[p], s->s[q], s->len[p])))
				return true;
	return false;
}

/* Is the string (n bytes) exactly the marker of one of the secrets? */
static bool md_names_one(const struct md_secrets *s, const char *v, size_t n)
{
	for (int p = 0; p < s->n; p++)
		if (n == MGMT_MARKER_LEN && !memcmp(s->mk[p], v, n))
			return true;
	return false;
}

/* Does j hold a secret json_str cannot read (a lone surrogate)? It is redacted, but names
 * nothing on the way back: the loader would not take it as a secret anyway. */
static bool md_has_unreadable(struct json *j, struct arena *ar)
{
	for (int t = 0; t < j->ntok; t++)
		for (int m = 0, k = t + 1; j->tok[t].type == JSMN_OBJECT && m < j->tok[t].size; m++, k = json_skip(j, k + 1)) {
			size_t n = 0;
			bool unreadable;
			md_secret(j, k, k + 1, ar, &n, &unreadable);
			if (unreadable)
				return true;
		}
	return false;
}

/* Every marker under a secret's name in x names one of the stored secrets? */
static bool md_all_named(struct json *x, struct arena *ar, const struct md_secrets *stored)
{
	for (int t = 0; t < x->ntok; t++) {
		if (x->tok[t].type != JSMN_OBJECT)
			continue;
		for (int m = 0, k = t + 1; m < x->tok[t].size; m++, k = json_skip(x, k + 1)) {
			size_t n = 0;
			bool unreadable;
			char *s = md_secret(x, k, k + 1, ar, &n, &unreadable);
			if (s && md_prefixed(s, n) && (!stored || !md_names_one(stored, s, n)))
				return false;
		}
	}
	return true;
}

/* red is A with every secret replaced by its marker, nothing else changed. *unreadable_kept: a
 * secret json_str cannot read came back as something else than a marker. */
static bool md_redacted(struct json *a, int i, struct json *r, int k, struct arena *ar, bool *unreadable_kept)
{
	const jsmntok_t *x = &a->tok[i], *y = &r->tok[k];
	if (x->type != JSMN_OBJECT && x->type != JSMN_ARRAY)
		return md_same(a, i, r, k, ar);
	if (x->type != y->type || x->size != y->size)
		return false;
	int ci = i + 1, ck = k + 1;
	for (int n = 0; n < x->size; n++) {
		if (x->type == JSMN_ARRAY) {
			if (!md_redacted(a, ci, r, ck, ar, unreadable_kept))
				return false;
			ci = json_skip(a, ci);
			ck = json_skip(r, ck);
			continue;
		}
		if (!md_same(a, ci, r, ck, ar))
			return false;
		size_t sn = 0, rn = 0;
		bool unreadable;
		char *s = md_secret(a, ci, ci + 1, ar, &sn, &unreadable);
		char *rv = r->tok[ck + 1].type == JSMN_STRING ? json_str(r, ar, ck + 1, &rn) : NULL;
		if (unreadable) {
			if (!rv || !md_marker_shaped(rv, rn))
				*unreadable_kept = true;
		} else if (s && !(sn >= 4 && !memcmp(s, "env.", 4))) {
			char mk[MGMT_MARKER_LEN + 1];
			mgmt_marker(s, sn, mk);
			if (!rv || rn != strlen(mk) || memcmp(rv, mk, rn) || !md_marker_shaped(rv, rn))
				return false;
		} else if (!md_redacted(a, ci + 1, r, ck + 1, ar, unreadable_kept)) {
			return false;
		}
		ci = json_skip(a, ci + 1);
		ck = json_skip(r, ck + 1);
	}
	return true;
}

/* out is x with each marker under a secret's name replaced by a value whose marker it is. */
static bool md_resolved(struct json *x, int i, struct json *o, int k, struct arena *ar)
{
	const jsmntok_t *t = &x->tok[i], *y = &o->tok[k];
	if (t->type != JSMN_OBJECT && t->type != JSMN_ARRAY)
		return md_same(x, i, o, k, ar);
	if (t->type != y->type || t->size != y->size)
		return false;
	int ci = i + 1, ck = k + 1;
	for (int n = 0; n < t->size; n++) {
		if (t->type == JSMN_ARRAY) {
			if (!md_resolved(x, ci, o, ck, ar))
				return false;
			ci = json_skip(x, ci);
			ck = json_skip(o, ck);
			continue;
		}
		if (!md_same(x, ci, o, ck, ar))
			return false;
		size_t sn = 0, on = 0;
		bool unreadable;
		char *s = md_secret(x, ci, ci + 1, ar, &sn, &unreadable);
		if (s && md_prefixed(s, sn)) {
			char *ov = o->tok[ck + 1].type == JSMN_STRING ? json_str(o, ar, ck + 1, &on) : NULL;
			char mk[MGMT_MARKER_LEN + 1];
			if (!ov)
				return false;
			mgmt_marker(ov, on, mk);
			if (sn != strlen(mk) || memcmp(s, mk, sn))
				return false;
		} else if (!md_resolved(x, ci + 1, o, ck + 1, ar)) {
			return false;
		}
		ci = json_skip(x, ci + 1);
		ck = json_skip(o, ck + 1);
	}
	return true;
}

/* Parse an output of the writers: it must be JSON. */
static bool md_parse(struct json *j, struct arena *a, struct str s, const char *what)
{
	int rc = json_parse(j, a, s.p, s.n);
	FUZZ_ASSERT(rc == 0, "%s is not valid JSON (%s): %.*s", what, j->err ? j->err : "?", (int)MIN(s.n, 2000), s.p);
	return rc == 0;
}

static struct str md_pretty(struct arena *a, struct str in)
{
	struct sb o;
	sb_init(&o, a, in.n * 2 + 16);
	mgmt_pretty(in, &o);
	FUZZ_ASSERT(!o.oom, "pretty: out of memory");
	FUZZ_ASSERT(o.len > 0 && o.p[o.len - 1] == '\n', "pretty output does not end with a newline");
	return sb_view(&o);
}

static struct str md_emit(struct arena *a, struct json *js, struct json *old, bool redact, bool *ok)
{
	struct sb o;
	sb_init(&o, a, js->n + 16);
	bool r = mgmt_emit(js, 0, old, redact, &o);
	if (ok)
		*ok = r;
	FUZZ_ASSERT(!o.oom, "emit: out of memory");
	return sb_view(&o);
}

/* emit(x, old = b): succeeds exactly when every marker in x names a secret of b; then resolved. */
static void md_against(struct arena *ar, struct json *x, struct json *b, const struct md_secrets *bs, const char *what)
{
	bool ok;
	struct str out = md_emit(ar, x, b, false, &ok);
	bool want = md_all_named(x, ar, bs);
	FUZZ_ASSERT(ok == want, "%s: emit says %d, every marker names a stored secret: %d", what, ok, want);
	struct json jo;
	if (ok && md_parse(&jo, ar, out, what)) {
		FUZZ_ASSERT(md_resolved(x, 0, &jo, 0, ar), "%s: a marker became a value it does not name, or more changed: %.*s", what,
			    (int)MIN(out.n, 2000), out.p);
		(void)md_pretty(ar, out);
	}
}

static int fuzz_mgmt_doc(const uint8_t *d, size_t n)
{
	if (n < 1)
		return 0;
	unsigned flags = d[0];
	d++, n--;
	const uint8_t *nul = memchr(d, 0, n);
	size_t na = nul ? (size_t)(nul - d) : n;
	char *A = fz_dup(d, na);
	char *B = nul ? fz_dup(nul + 1, n - na - 1) : NULL;
	size_t nb = nul ? n - na - 1 : 0;
	struct arena ar;
	arena_init(&ar, NULL);
	struct json ja, jb;
	struct md_secrets as = { 0 }, bs = { 0 };
	if (json_parse(&ja, &ar, A, na) != 0) {
		if (flags & 1) { /* not validated: only memory safety is asked of pretty */
			struct sb o;
			sb_init(&o, &ar, na * 2 + 16);
			mgmt_pretty((struct str){ A, na }, &o);
		}
		goto out;
	}
	md_collect(&ja, &ar, &as);
	/* compact (no stored document: refused when A carries a marker) and pretty */
	bool ok;
	struct str compact = md_emit(&ar, &ja, NULL, false, &ok);
	bool markers = !md_all_named(&ja, &ar, NULL);
	FUZZ_ASSERT(ok == !markers, "emit(A) without a stored document says %d, A has a marker under a secret's name: %d", ok,
		    markers);
	struct json jc, jp, jp2, jr, ju;
	if (ok && md_parse(&jc, &ar, compact, "emit(A)")) {
		FUZZ_ASSERT(md_same(&ja, 0, &jc, 0, &ar), "emit(A) is not A: %.*s", (int)MIN(compact.n, 2000), compact.p);
		struct str pretty = md_pretty(&ar, compact);
		if (md_parse(&jp, &ar, pretty, "pretty(emit(A))")) {
			FUZZ_ASSERT(md_same(&ja, 0, &jp, 0, &ar), "pretty(emit(A)) is not A");
			struct str again = md_pretty(&ar, md_emit(&ar, &jp, NULL, false, NULL));
			FUZZ_ASSERT(again.n == pretty.n && !memcmp(again.p, pretty.p, pretty.n), "the pretty form is not a fixed point");
		}
	}
	struct str pretty_raw = md_pretty(&ar, (struct str){ A, na });
	if (md_parse(&jp2, &ar, pretty_raw, "pretty(A)"))
		FUZZ_ASSERT(md_same(&ja, 0, &jp2, 0, &ar), "pretty(A) is not A");
	/* redaction */
	struct str red = md_emit(&ar, &ja, NULL, true, &ok);
	FUZZ_ASSERT(ok, "redacting emit failed");
	if (!md_parse(&jr, &ar, red, "emit(A, redact)"))
		goto out;
	bool unreadable_kept = false;
	FUZZ_ASSERT(md_redacted(&ja, 0, &jr, 0, &ar, &unreadable_kept),
		    "emit(A, redact) is not A with each secret replaced by its marker: %.*s", (int)MIN(red.n, 2000), red.p);
	FUZZ_ASSERT(!unreadable_kept, "a secret json_str cannot read (a lone surrogate) is written out as it is: %.*s",
		    (int)MIN(red.n, 2000), red.p);
	(void)md_pretty(&ar, red);
	/* un-redaction against A itself gives A back (unless A holds a secret that cannot be read) */
	struct str back = md_emit(&ar, &jr, &ja, false, &ok);
	bool unreadable = md_has_unreadable(&ja, &ar);
	FUZZ_ASSERT(ok || unreadable, "un-redacting against the document it came from failed: %.*s", (int)MIN(red.n, 2000),
		    red.p);
	if (ok && !unreadable && !md_collision(&as)) {
		bool same = md_parse(&ju, &ar, back, "emit(red, old = A)") && md_same(&ja, 0, &ju, 0, &ar);
		FUZZ_ASSERT(same, "un-redacting against the document it came from is not that document: %.*s",
			    (int)MIN(back.n, 2000), back.p);
	}
	/* against another stored document */
	if (B && json_parse(&jb, &ar, B, nb) == 0) {
		md_collect(&jb, &ar, &bs);
		md_against(&ar, &ja, &jb, &bs, "emit(A, old = B)");
		md_against(&ar, &jr, &jb, &bs, "emit(red, old = B)");
	}
out:
	md_secrets_free(&as);
	md_secrets_free(&bs);
	arena_reset(&ar);
	free(A);
	free(B);
	return 0;
}

/* ======================================================================== */
/* evs_: application/vnd.amazon.eventstream frames                          */
/* ======================================================================== */

/* The five headers evs_decode picks out, by name, as evs_encode writes them back. */
static const char *const fz_evs_names[] = { ":message-type", ":event-type", ":exception-type", ":error-code",
					     ":content-type" };

static void fz_evs_fields(const struct evs_msg *m, struct str f[5])
{
	f[0] = m->message_type;
	f[1] = m->event_type;
	f[2] = m->exception_type;
	f[3] = m->error_code;
	f[4] = m->content_type;
}

/* A decoded frame of r bytes at f: its fields inside it. */
static void fz_evs_check(const struct evs_msg *m, const uint8_t *f, long r, size_t avail)
{
	FUZZ_ASSERT(r >= 16 && (size_t)r <= avail && r <= (16L << 20), "frame length %ld of %zu bytes", r, avail);
	struct str fl[5];
	fz_evs_fields(m, fl);
	for (int i = 0; i < 5; i++)
		FUZZ_ASSERT(fz_inside(fl[i].p, fl[i].n, (const char *)f + 12, (size_t)r - 16), "%s outside the headers",
			    fz_evs_names[i]);
	FUZZ_ASSERT(fz_inside(m->payload.p, m->payload.n, (const char *)f + 12, (size_t)r - 16) &&
			    (m->payload.n == 0 || m->payload.p + m->payload.n == (const char *)f + r - 4),
		    "payload (%zu bytes) is not the frame's end", m->payload.n);
}

/* Re-encode a decoded frame (its non-empty known headers as strings, the payload) and decode
 * that: the same fields, the exact length. */
static void fz_evs_reencode(struct arena *a, const struct evs_msg *m)
{
	struct str fl[5], names[5], vals[5];
	fz_evs_fields(m, fl);
	int nh = 0;
	size_t want = 16 + m->payload.n;
	for (int i = 0; i < 5; i++)
		if (fl[i].n) {
			names[nh] = (struct str){ fz_evs_names[i], strlen(fz_evs_names[i]) };
			vals[nh] = fl[i];
			want += 1 + names[nh].n + 3 + vals[nh].n;
			nh++;
		}
	struct sb o;
	sb_init(&o, a, 64);
	evs_encode(&o, names, vals, nh, m->payload.p, m->payload.n);
	FUZZ_ASSERT(!o.oom, "evs_encode: out of memory");
	FUZZ_ASSERT(o.len == want, "re-encoded frame is %zu bytes, not %zu", o.len, want);
	uint8_t *c = (uint8_t *)fz_dup(o.p, o.len);
	struct evs_msg m2;
	long r = evs_decode(c, o.len, &m2);
	FUZZ_ASSERT(r == (long)o.len, "re-encoded frame decodes to %ld, not %zu", r, o.len);
	if (r == (long)o.len) {
		fz_evs_check(&m2, c, r, o.len);
		struct str f2[5];
		fz_evs_fields(&m2, f2);
		for (int i = 0; i < 5; i++)
			FUZZ_ASSERT(f2[i].n == fl[i].n && (!fl[i].n || memcmp(f2[i].p, fl[i].p, fl[i].n) == 0),
				    "%s does not round-trip: \"%.*s\" -> \"%.*s\"", fz_evs_names[i], (int)fl[i].n, fl[i].p,
				    (int)f2[i].n, f2[i].p);
		FUZZ_ASSERT(m2.payload.n == m->payload.n &&
				    (!m->payload.n || memcmp(m2.payload.p, m->payload.p, m->payload.n) == 0),
			    "payload does not round-trip (%zu -> %zu bytes)", m->payload.n, m2.payload.n);
	}
	free(c);
}

/* CRC32 (IEEE 802.3), the eventstream's, computed here so the harness does not trust evs_. */
static uint32_t fz_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
	}
	return ~c;
}

static void fz_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Make both CRCs of each frame right, frame after frame, while the total lengths fit: what is
 * left to find is in the lengths and the headers. */
static void fz_evs_fix_crcs(uint8_t *p, size_t n)
{
	size_t off = 0;
	while (n - off >= 12) {
		uint32_t total = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
		fz_put32(p + off + 8, fz_crc32(p + off, 8));
		if (total < 16 || total > n - off)
			break;
		fz_put32(p + off + total - 4, fz_crc32(p + off, total - 4));
		off += total;
	}
}

/*
 * Decode a stream of frames in one call per frame over all of it, then as it arrives in reads
 * (the buffer grows, a malloc'd copy of exactly what is there): the same frames end at the same
 * offsets, the same verdict at the end (0: a partial frame, -EBADMSG: a bad one), and no read
 * refuses a frame that all of the stream accepts. Every frame decoded is re-encoded and decoded
 * again (fz_evs_reencode). Input: [0] bits 0-1 cut mode, bit 2: the harness makes every
 * frame's CRCs right first (fz_evs_fix_crcs), the whole byte the cut seed; rest = the stream.
 */
static int fuzz_evs(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	struct fz_rng rg;
	fz_seed(&rg, d[0]);
	unsigned mode = d[0] & 3;
	bool fix = d[0] & 4;
	d++, n--;
	struct arena a;
	arena_init(&a, NULL);
	/* one shot */
	char *all = fz_dup(d, n);
	if (fix) {
		fz_evs_fix_crcs((uint8_t *)all, n);
		d = (const uint8_t *)all; /* the reads below copy from the fixed stream */
	}
	size_t *ends = malloc(sizeof(size_t) * (n / 16 + 1));
	if (!ends)
		abort();
	size_t nev = 0, off = 0;
	long r1;
	struct evs_msg m;
	while ((r1 = evs_decode((const uint8_t *)all + off, n - off, &m)) > 0) {
		fz_evs_check(&m, (const uint8_t *)all + off, r1, n - off);
		if (r1 < 16 || (size_t)r1 > n - off)
			break;
		fz_evs_reencode(&a, &m);
		arena_reset(&a);
		off += (size_t)r1;
		ends[nev++] = off;
	}
	FUZZ_ASSERT(r1 == 0 || r1 == -EBADMSG, "evs_decode returned %ld", r1);
	/* in reads */
	size_t len = 0, pos = 0, k = 0;
	long r = 0;
	uint8_t *b = NULL;
	while (len < n && r >= 0) {
		size_t add = fz_cut(&rg, n - len, mode);
		uint8_t *nb = malloc(len + add);
		if (!nb)
			abort();
		if (len)
			memcpy(nb, b, len);
		memcpy(nb + len, d + len, add);
		free(b);
		b = nb;
		len += add;
		while ((r = evs_decode(b + pos, len - pos, &m)) > 0) {
			FUZZ_ASSERT(k < nev && ends[k] == pos + (size_t)r, "frame %zu ends at %zu in reads, not %zu", k,
				    pos + (size_t)r, k < nev ? ends[k] : 0);
			if (!(k < nev && ends[k] == pos + (size_t)r))
				break;
			pos += (size_t)r;
			k++;
		}
		if (r < 0)
			FUZZ_ASSERT(r1 < 0 && pos == off, "refused at %zu after %zu of %zu bytes (all at once: %ld at %zu)", pos,
				    len, n, r1, off);
	}
	FUZZ_ASSERT(k == nev, "%zu frames in reads, %zu at once", k, nev);
	FUZZ_ASSERT(n == 0 || r == r1, "in reads the stream ends with %ld, all at once with %ld", r, r1);
	free(b);
	free(ends);
	free(all);
	arena_reset(&a);
	return 0;
}

/* ======================================================================== */
/* sigv4_: AWS Signature Version 4                                          */
/* ======================================================================== */

/* sigv4_ signs at most SIGV4_MAX_HDRS headers (the rest are left out of the signature): the
 * input gives one fewer, room for the session token. */
#define FZ_SV_MAXH (SIGV4_MAX_HDRS - 1)

static bool fz_sv_hex64(const char *p, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

static void fz_sv_hmac(uint8_t out[32], const void *k, size_t kn, const void *m, size_t mn)
{
	br_hmac_key_context kc;
	br_hmac_context hc;
	br_hmac_key_init(&kc, &br_sha256_vtable, k, kn);
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, m, mn);
	br_hmac_out(&hc, out);
}

/* The names of a request, lower-cased (ASCII), for the checks below. */
static void fz_sv_lower(const char *s, char *o, size_t cap)
{
	size_t i = 0;
	for (; s[i] && i + 1 < cap; i++)
		o[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
	o[i] = 0;
}

struct fz_sv_ord {
	struct sigv4_hdr h;
	int idx;
};

static int fz_sv_by_name(const void *x, const void *y)
{
	const struct fz_sv_ord *a = x, *b = y;
	char la[256], lb[256];
	fz_sv_lower(a->h.name, la, sizeof(la));
	fz_sv_lower(b->h.name, lb, sizeof(lb));
	int c = strcmp(lb, la);           /* descending: the opposite of the signer's order */
	return c ? c : a->idx - b->idx; /* duplicates keep their order */
}

/* A header name is an HTTP token. */
static bool fz_sv_token(const char *s)
{
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

/*
 * sigv4_ over any request: method, path, query and headers from the input. Whatever they hold:
 *   - the Authorization value is "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
 *     SignedHeaders=<the list sigv4_canonical_request gave>, Signature=<64 lowercase hex>";
 *   - that signature is HMAC-SHA256(signing key, sigv4_string_to_sign(SHA-256(canonical request)))
 *     with the key derived here (the three functions agree);
 *   - the signed-header list is lower case, strictly increasing, one entry per distinct name,
 *     and the canonical request starts with the method and ends with that list and the
 *     payload hash;
 *   - the headers given in another order (duplicates keeping theirs) sign the same.
 * Input: [0] flags (bit 0: a session token header too), then '\n'-separated: method, path,
 * query, and "name:value" header lines (at most FZ_SV_MAXH; a name that is not an HTTP token
 * is dropped).
 */
static int fuzz_sigv4(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	unsigned flags = d[0];
	d++, n--;
	char *in = malloc(n + 1);
	if (!in)
		abort();
	memcpy(in, d, n);
	in[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!in[i])
			in[i] = ' '; /* the API takes C strings */
	char *line[3 + FZ_SV_MAXH] = { 0 };
	int nl = 0;
	for (char *s = in; s && nl < (int)ARRAY_LEN(line);) {
		line[nl++] = s;
		char *e = strchr(s, '\n');
		if (e)
			*e = 0;
		s = e ? e + 1 : NULL;
	}
	struct sigv4_hdr h[FZ_SV_MAXH + 1];
	int nh = 0;
	for (int i = 3; i < nl; i++) {
		char *c = strchr(line[i], ':');
		if (c)
			*c = 0;
		if (!line[i][0] || strlen(line[i]) > 200 || !fz_sv_token(line[i]))
			continue;
		h[nh++] = (struct sigv4_hdr){ line[i], c ? c + 1 : "" };
	}
	if (flags & 1)
		h[nh++] = (struct sigv4_hdr){ "X-Amz-Security-Token", "IQoJb3JpZ2luX2VjEXAMPLE//token+/=" };
	uint8_t sha[32];
	br_sha256_context sc;
	br_sha256_init(&sc);
	br_sha256_update(&sc, d, n);
	br_sha256_out(&sc, sha);
	struct sigv4_req r = {
		.method = line[0] ? line[0] : "",
		.path = nl > 1 ? line[1] : "/",
		.query = nl > 2 ? line[2] : "",
		.hdrs = h,
		.nhdrs = nh,
		.payload_sha256 = sha,
		.amzdate = "20150830T123600Z",
		.region = "us-east-1",
		.service = "bedrock",
		.akid = "AKIDEXAMPLE",
		.secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};
	struct arena a;
	arena_init(&a, NULL);
	struct sb creq, sh, sts, az, az2;
	sb_init(&creq, &a, 64);
	sb_init(&sh, &a, 64);
	sb_init(&sts, &a, 64);
	sb_init(&az, &a, 64);
	sb_init(&az2, &a, 64);
	sigv4_canonical_request(&creq, &r, &sh);
	sigv4_authorization(&az, &r);
	FUZZ_ASSERT(!creq.oom && !sh.oom && !az.oom, "out of memory");
	/* the canonical request: method first, signed headers and payload hash last */
	char tail[80];
	for (int i = 0; i < 32; i++)
		snprintf(tail + 1 + 2 * i, 3, "%02x", sha[i]);
	tail[0] = '\n';
	size_t ml = strlen(r.method);
	FUZZ_ASSERT(creq.len > ml && memcmp(creq.p, r.method, ml) == 0 && creq.p[ml] == '\n', "canonical request: method");
	FUZZ_ASSERT(creq.len >= sh.len + 65 && memcmp(creq.p + creq.len - 65, tail, 65) == 0 &&
			    memcmp(creq.p + creq.len - 65 - sh.len, sh.p, sh.len) == 0,
		    "canonical request does not end with the signed headers and the payload hash: %.*s",
		    (int)MIN(creq.len, 2000), creq.p);
	/* the signed-header list */
	if (nh > 0) {
		int distinct = 0;
		char seen[FZ_SV_MAXH + 1][256];
		for (int i = 0; i < nh; i++) {
			char l[256];
			fz_sv_lower(h[i].name, l, sizeof(l));
			bool dup = false;
			for (int j = 0; j < distinct && !dup; j++)
				dup = strcmp(seen[j], l) == 0;
			if (!dup)
				memcpy(seen[distinct++], l, sizeof(l));
		}
		int cnt = 0;
		size_t s0 = 0;
		char prev[256] = "";
		for (size_t i = 0; i <= sh.len; i++) {
			if (i < sh.len && sh.p[i] != ';')
				continue;
			size_t w = i - s0;
			FUZZ_ASSERT(w > 0 && w < 256, "signed headers: an empty or long entry in %.*s", (int)sh.len, sh.p);
			char cur[256];
			memcpy(cur, sh.p + s0, MIN(w, 255));
			cur[MIN(w, 255)] = 0;
			for (size_t k = 0; k < w; k++)
				FUZZ_ASSERT(!(cur[k] >= 'A' && cur[k] <= 'Z'), "signed headers not lower case: %.*s", (int)sh.len, sh.p);
			FUZZ_ASSERT(cnt == 0 || strcmp(prev, cur) < 0, "signed headers not strictly increasing: %.*s", (int)sh.len,
				    sh.p);
			memcpy(prev, cur, sizeof(cur));
			cnt++;
			s0 = i + 1;
		}
		FUZZ_ASSERT(nh == 0 || cnt == distinct, "%d signed headers for %d distinct names: %.*s", cnt, distinct,
			    (int)sh.len, sh.p);
	}
	/* the Authorization value, and its signature recomputed from the canonical request */
	static const char pre[] = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=";
	static const char mid[] = ", Signature=";
	size_t pl = sizeof(pre) - 1, ql = sizeof(mid) - 1;
	bool shaped = az.len == pl + sh.len + ql + 64 && memcmp(az.p, pre, pl) == 0 && memcmp(az.p + pl, sh.p, sh.len) == 0 &&
		      memcmp(az.p + pl + sh.len, mid, ql) == 0 && fz_sv_hex64(az.p + az.len - 64, 64);
	FUZZ_ASSERT(shaped, "Authorization is not well-formed: %.*s", (int)MIN(az.len, 2000), az.p);
	uint8_t hh[32], k[32];
	char hx[65];
	br_sha256_init(&sc);
	br_sha256_update(&sc, creq.p, creq.len);
	br_sha256_out(&sc, hh);
	for (int i = 0; i < 32; i++)
		snprintf(hx + 2 * i, 3, "%02x", hh[i]);
	sigv4_string_to_sign(&sts, &r, hx);
	static const char k0[] = "AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	fz_sv_hmac(k, k0, sizeof(k0) - 1, "20150830", 8);
	fz_sv_hmac(k, k, 32, "us-east-1", 9);
	fz_sv_hmac(k, k, 32, "bedrock", 7);
	fz_sv_hmac(k, k, 32, "aws4_request", 12);
	fz_sv_hmac(hh, k, 32, sts.p, sts.len);
	char sig[65];
	for (int i = 0; i < 32; i++)
		snprintf(sig + 2 * i, 3, "%02x", hh[i]);
	FUZZ_ASSERT(!shaped || memcmp(az.p + az.len - 64, sig, 64) == 0,
		    "the signature is not HMAC(key, string to sign of the canonical request): %.*s", (int)MIN(az.len, 2000),
		    az.p);
	/* the headers in another order sign the same */
	struct fz_sv_ord o[FZ_SV_MAXH + 1];
	for (int i = 0; i < nh; i++)
		o[i] = (struct fz_sv_ord){ h[i], i };
	qsort(o, (size_t)nh, sizeof(o[0]), fz_sv_by_name);
	for (int i = 0; i < nh; i++)
		h[i] = o[i].h;
	sigv4_authorization(&az2, &r);
	FUZZ_ASSERT(az2.len == az.len && memcmp(az2.p, az.p, az.len) == 0, "header order changes the signature:\n%.*s\n%.*s",
		    (int)MIN(az.len, 2000), az.p, (int)MIN(az2.len, 2000), az2.p);
	arena_reset(&a);
	free(in);
	return 0;
}

/* ======================================================================== */
/* resp_: Redis replies, whole and in reads; commands made and read back     */
/* ======================================================================== */

static int fuzz_resp(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	struct fz_rng rg;
	fz_seed(&rg, d[0]);
	unsigned mode = d[0] & 3;
	d++, n--;
	struct arena a;
	arena_init(&a, NULL);
	char *all = fz_dup(d, n);
	size_t ends[64], nrep = 0, off = 0;
	long r1 = 0;
	struct resp_val v;
	while (nrep < 64 && (r1 = resp_parse(&a, all + off, n - off, &v)) > 0) {
		FUZZ_ASSERT((size_t)r1 <= n - off, "reply past the end");
		off += (size_t)r1;
		ends[nrep++] = off;
		arena_reset(&a);
	}
	FUZZ_ASSERT(r1 >= 0 || r1 == -EBADMSG || r1 == -ENOMEM, "resp_parse returned %ld", r1);
	/* in reads: the same replies, ending at the same places */
	size_t len = 0, pos = 0, k = 0;
	while (len < n && k < nrep) {
		len += fz_cut(&rg, n - len, mode);
		long r;
		while (k < nrep && (r = resp_parse(&a, all + pos, len - pos, &v)) > 0) {
			FUZZ_ASSERT(pos + (size_t)r == ends[k], "reply %zu ends at %zu in reads, %zu at once", k, pos + (size_t)r,
				    ends[k]);
			pos += (size_t)r, k++;
		}
		arena_reset(&a);
	}
	FUZZ_ASSERT(k == nrep, "%zu replies in reads, %zu at once", k, nrep);
	/* a command of the input's pieces reads back as an array of the same bulk strings */
	struct str argv[8];
	int argc = 0;
	for (size_t p = 0; p < n && argc < 8; argc++) {
		size_t want = (size_t)(fz_next(&rg) % 40), l = MIN(n - p, want); /* (MIN evaluates twice) */
		argv[argc] = (struct str){ all + p, l };
		p += l;
	}
	struct sb out;
	sb_init(&out, &a, 256);
	resp_cmd(&out, argc, argv);
	FUZZ_ASSERT(!out.oom, "resp_cmd out of memory");
	long r = resp_parse(&a, out.p, out.len, &v);
	FUZZ_ASSERT(r == (long)out.len && (argc ? v.type == RESP_ARR && v.n == argc : v.type != RESP_ARR || v.n == 0),
		    "a command does not read back (%ld of %zu)", r, out.len);
	for (int i = 0; i < argc && r > 0 && v.type == RESP_ARR; i++)
		FUZZ_ASSERT(v.a[i].type == RESP_BULK && v.a[i].s.n == argv[i].n && !memcmp(v.a[i].s.p, argv[i].p, argv[i].n),
			    "argument %d changed", i);
	arena_reset(&a);
	free(all);
	return 0;
}

/* ======================================================================== */
/* Bedrock: /bedrock/ paths and bodies, Converse <-> Messages both ways      */
/* ======================================================================== */

/* Whatever a translation made must be JSON. */
static void fz_json_ok(struct arena *a, struct str s, const char *what)
{
	struct json j;
	int rc = json_parse(&j, a, s.p, s.n);
	FUZZ_ASSERT(rc == 0 || rc == -ENOMEM, "%s made invalid JSON: %.*s", what, (int)MIN(s.n, 300), s.p);
}

/* Every event of an SSE text has a JSON data line. */
static void fz_events_ok(struct arena *a, const struct sb *t, const char *what)
{
	size_t len;
	for (size_t off = 0; (len = sse_next(t->p + off, t->len - off)) > 0; off += len)
		fz_json_ok(a, sse_data(t->p + off, len), what);
}

/* The input as events: "type \x01 payload" separated by \x00. */
static void fz_bedrock_stream(struct arena *a, const char *s, size_t n, bool to_converse)
{
	struct xlate_c2a st;
	struct xlate_usage u = { 0 };
	struct sb out;
	xlate_c2a_init(&st, "model", "msg_1");
	sb_init(&out, a, 4096);
	for (size_t p = 0; p < n;) {
		const char *z = memchr(s + p, 0, n - p), *e = z ? z : s + n, *sep = memchr(s + p, 1, (size_t)(e - s - p));
		struct str type = { s + p, sep ? (size_t)(sep - s - p) : (size_t)(e - s - p) };
		struct str pl = sep ? (struct str){ sep + 1, (size_t)(e - sep - 1) } : (struct str){ "", 0 };
		if (to_converse) {
			xlate_a2c_event(a, type, pl, &u, &out);
		} else {
			int rc = xlate_c2a_event(&st, a, type, pl, &out);
			FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -ENOMEM, "xlate_c2a_event returned %d", rc);
		}
		p = (size_t)(e - s) + 1;
	}
	if (!to_converse) {
		xlate_c2a_end(&st, &out);
		if (!out.oom)
			fz_events_ok(a, &out, "ConverseStream -> Messages");
		return;
	}
	struct evs_msg m;
	long r;
	for (size_t off = 0; !out.oom && (r = evs_decode((const uint8_t *)out.p + off, out.len - off, &m)) > 0; off += (size_t)r)
		fz_json_ok(a, m.payload, "Messages event -> ConverseStream");
}

static int fuzz_bedrock(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (n < 1)
		return 0;
	unsigned mode = d[0] % 8;
	bool stream = d[0] & 8;
	d++, n--;
	struct arena a;
	arena_init(&a, NULL);
	char *s = fz_dup(d, n);
	struct str in = { s, n }, beta;
	struct sb out;
	const char *err, *model;
	sb_init(&out, &a, n + 256);
	int rc = 0;
	switch (mode) {
	case 0: { /* a /bedrock/ path: the model id, decoded, has no controls */
		struct sb path;
		sb_init(&path, &a, n + 16);
		sb_puts(&path, "/bedrock/model/");
		sb_put(&path, s, n);
		enum bedrock_action act = prov_bedrock_route(&a, sb_view(&path), &model, &err);
		for (const char *c = act ? model : ""; *c; c++)
			FUZZ_ASSERT((unsigned char)*c >= 0x20 && *c != 0x7f, "a control in the model id");
		break;
	}
	case 1:
		rc = prov_bedrock_inbound(&a, in, "m\"x", stream, &out, &beta);
		if (rc == 0) {
			fz_json_ok(&a, sb_view(&out), "prov_bedrock_inbound");
			FUZZ_ASSERT(!memchr(beta.p, '\r', beta.n) && !memchr(beta.p, '\n', beta.n), "CR/LF in the beta header");
		}
		break;
	case 2:
		rc = prov_bedrock_body(&a, in, STR("b-1, b\"2"), &out);
		if (rc == 0)
			fz_json_ok(&a, sb_view(&out), "prov_bedrock_body");
		break;
	case 3:
		if (xlate_req_a2c(&a, s, n, &out, &err) == 0)
			fz_json_ok(&a, sb_view(&out), "xlate_req_a2c");
		break;
	case 4:
		if (xlate_req_c2a(&a, s, n, "m\\x", stream, &out, &err) == 0)
			fz_json_ok(&a, sb_view(&out), "xlate_req_c2a");
		break;
	case 5: {
		struct xlate_usage u = { 0 };
		if (stream ? xlate_resp_a2c(&a, s, n, &out, &u) == 0 : xlate_resp_c2a(&a, s, n, "m", "id", &out, &u) == 0)
			fz_json_ok(&a, sb_view(&out), stream ? "xlate_resp_a2c" : "xlate_resp_c2a");
		break;
	}
	case 6:
		fz_bedrock_stream(&a, s, n, stream);
		break;
	default:
		if (evs_chunk_to_sse(&a, in, &out))
			fz_events_ok(&a, &out, "evs_chunk_to_sse");
		break;
	}
	(void)rc;
	arena_reset(&a);
	free(s);
	return 0;
}

static const struct fuzz_target fuzz_targets[] = {
	{ "http_request", fuzz_http_request },
	{ "http_response", fuzz_http_response },
	{ "http_chunked", fuzz_http_chunked },
	{ "json_route", fuzz_json_route },
	{ "sse", fuzz_sse },
	{ "xlate_request", fuzz_xlate_request },
	{ "xlate_response", fuzz_xlate_response },
	{ "xlate_stream_o2a", fuzz_xlate_stream_o2a },
	{ "xlate_stream_a2o", fuzz_xlate_stream_a2o },
	{ "xlate_stream_o2r", fuzz_xlate_stream_o2r },
	{ "xlate_responses", fuzz_xlate_responses },
	{ "count_tokens", fuzz_count_tokens },
	{ "cfg", fuzz_cfg },
	{ "jrnl", fuzz_jrnl },
	{ "pricing_file", fuzz_pricing_file },
	{ "http_query", fuzz_http_query },
	{ "mgmt_doc", fuzz_mgmt_doc },
	{ "evs", fuzz_evs },
	{ "sigv4", fuzz_sigv4 },
	{ "resp", fuzz_resp },
	{ "bedrock", fuzz_bedrock },
};

/* libFuzzer driver for one target: tests/fuzz/<name>.c is FUZZ_DRIVER(fuzz_<name>). */
#define FUZZ_DRIVER(fn)                                                                    \
	int LLVMFuzzerInitialize(int *argc, char ***argv)                                  \
	{                                                                                  \
		(void)argc;                                                                \
		(void)argv;                                                                \
		fuzz_init();                                                               \
		return 0;                                                                  \
	}                                                                                  \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                       \
	{                                                                                  \
		fz_cur = data;                                                             \
		fz_cur_n = size;                                                           \
		return fn(data, size);                                                     \
	}

#endif
