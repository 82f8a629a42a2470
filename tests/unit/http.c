/* Unit tests for section 5 (http_): request/response heads and the chunked decoder.
 *
 * Every input is parsed from a copy that ends exactly at a PROT_NONE page
 * (guard.h), so reading even one byte past the given length crashes the test. */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

#define MAXH (64 * 1024)

struct parsed {
	struct guard g;
	struct http_msg m;
	size_t scanned;
	int rc;
};

static void preq(struct parsed *p, const char *s, size_t n, size_t max_head)
{
	char *b = guard_put(&p->g, s, n);
	p->scanned = 0;
	p->rc = http_parse_request(&p->m, b, n, &p->scanned, max_head);
}

static void presp(struct parsed *p, const char *s, size_t n, size_t max_head)
{
	char *b = guard_put(&p->g, s, n);
	p->scanned = 0;
	p->rc = http_parse_response(&p->m, b, n, &p->scanned, max_head);
}

#define REQ(p, lit) preq((p), (lit), sizeof(lit) - 1, MAXH)
#define RESP(p, lit) presp((p), (lit), sizeof(lit) - 1, MAXH)

#define ASSERT_STR(s, lit) \
	cr_assert(str_eq((s), (lit)), "expected \"%s\", got \"%.*s\"", (lit), (int)(s).n, (s).p ? (s).p : "")

/* ======================================================================== */
/* requests: valid                                                          */
/* ======================================================================== */

Test(http_request, simple_get)
{
	struct parsed p;
	const char r[] = "GET /v1/models HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
	REQ(&p, r);
	cr_assert_eq(p.rc, (int)sizeof(r) - 1, "rc %d err %s", p.rc, p.m.err);
	ASSERT_STR(p.m.method, "GET");
	ASSERT_STR(p.m.path, "/v1/models");
	cr_assert_null(p.m.query.p);
	cr_assert_eq(p.m.query.n, 0);
	cr_assert_eq(p.m.minor, 1);
	cr_assert_eq(p.m.head_len, sizeof(r) - 1);
	cr_assert_eq(p.m.content_length, -1);
	cr_assert_not(p.m.chunked);
	cr_assert_not(p.m.expect_continue);
	cr_assert(p.m.keep_alive);
	cr_assert_eq(p.m.nhdr, 2);
	ASSERT_STR(p.m.hdr[0].name, "Host");
	ASSERT_STR(p.m.hdr[0].value, "example.com");
	ASSERT_STR(p.m.hdr[1].name, "Accept");
	ASSERT_STR(p.m.hdr[1].value, "*/*");
	cr_assert_null(p.m.err);
	/* slices point into the parsed buffer */
	cr_assert_eq(p.m.method.p, p.g.p);
	guard_free(&p.g);
}

Test(http_request, post_with_body_returns_head_length)
{
	struct parsed p;
	const char r[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\n"
			 "Content-Type: application/json\r\n\r\n{\"model\":\"m\"}";
	REQ(&p, r);
	int head = (int)(strstr(r, "\r\n\r\n") - r) + 4;
	cr_assert_eq(p.rc, head);
	cr_assert_eq(p.m.head_len, (size_t)head);
	cr_assert_eq(p.m.content_length, 13);
	ASSERT_STR(p.m.method, "POST");
	ASSERT_STR(p.m.path, "/v1/chat/completions");
	guard_free(&p.g);
}

Test(http_request, methods)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
		"HEAD", "M-SEARCH", "X_CUSTOM.1", "get", "PROPFIND" };
	for (size_t i = 0; i < ARRAY_LEN(methods); i++) {
		char r[128];
		int n = snprintf(r, sizeof(r), "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", methods[i]);
		struct parsed p;
		preq(&p, r, (size_t)n, MAXH);
		cr_expect_eq(p.rc, n, "method %s: rc %d (%s)", methods[i], p.rc, p.m.err ? p.m.err : "");
		if (p.rc == n)
			cr_expect(str_eq(p.m.method, methods[i]), "method %s", methods[i]);
		guard_free(&p.g);
	}
}

Test(http_request, query_split)
{
	static const struct { const char *target, *path, *query; } cases[] = {
		{ "/a", "/a", NULL },
		{ "/", "/", NULL },
		{ "/v1/chat/completions?x=1&y=2", "/v1/chat/completions", "x=1&y=2" },
		{ "/a?", "/a", "" },
		{ "/?q", "/", "q" },
		{ "/a?b?c", "/a", "b?c" },
		{ "/a/b%20c?d=%2F", "/a/b%20c", "d=%2F" },
		{ "//double", "//double", NULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char r[256];
		int n = snprintf(r, sizeof(r), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].target);
		struct parsed p;
		preq(&p, r, (size_t)n, MAXH);
		cr_assert_eq(p.rc, n, "%s: %s", cases[i].target, p.m.err);
		cr_expect(str_eq(p.m.path, cases[i].path), "%s: path \"%.*s\"", cases[i].target,
			  (int)p.m.path.n, p.m.path.p);
		if (cases[i].query) {
			cr_expect_not_null(p.m.query.p, "%s: query", cases[i].target);
			cr_expect(p.m.query.p && str_eq(p.m.query, cases[i].query), "%s: query \"%.*s\"",
				  cases[i].target, (int)p.m.query.n, p.m.query.p ? p.m.query.p : "");
		} else {
			cr_expect_null(p.m.query.p, "%s: no query", cases[i].target);
			cr_expect_eq(p.m.query.n, 0);
		}
		guard_free(&p.g);
	}
}

Test(http_request, header_lookup_is_case_insensitive)
{
	struct parsed p;
	const char r[] = "POST / HTTP/1.1\r\nhOsT: h:8080\r\nContent-Type: application/json\r\n"
			 "X-Empty:\r\nX-Spaces: \t v a l \t \r\nauthorization: Bearer k\r\n"
			 "X-Dup: first\r\nx-dup: second\r\nX-Obs: caf\xc3\xa9\r\n\r\n";
	REQ(&p, r);
	cr_assert_eq(p.rc, (int)sizeof(r) - 1, "%s", p.m.err);
	ASSERT_STR(http_header(&p.m, "host"), "h:8080");
	ASSERT_STR(http_header(&p.m, "HOST"), "h:8080");
	ASSERT_STR(http_header(&p.m, "content-type"), "application/json");
	ASSERT_STR(http_header(&p.m, "CONTENT-TYPE"), "application/json");
	ASSERT_STR(http_header(&p.m, "Authorization"), "Bearer k");
	ASSERT_STR(http_header(&p.m, "x-spaces"), "v a l");
	struct str e = http_header(&p.m, "x-empty");
	cr_assert_not_null(e.p, "an empty header is present");
	cr_assert_eq(e.n, 0);
	ASSERT_STR(http_header(&p.m, "X-DUP"), "first");
	ASSERT_STR(http_header(&p.m, "x-obs"), "caf\xc3\xa9");
	struct str none = http_header(&p.m, "x-missing");
	cr_assert_null(none.p);
	cr_assert_eq(none.n, 0);
	cr_assert_null(http_header(&p.m, "content-typ").p, "no prefix matches");
	cr_assert_null(http_header(&p.m, "content-type-x").p);
	guard_free(&p.g);
}

struct ka_case {
	const char *version, *connection; /* connection NULL: no header */
	bool keep;
};

Test(http_request, keep_alive_rules)
{
	static const struct ka_case cases[] = {
		{ "1.1", NULL, true },
		{ "1.1", "close", false },
		{ "1.1", "Close", false },
		{ "1.1", "CLOSE", false },
		{ "1.1", "keep-alive", true },
		{ "1.1", "Upgrade, close", false },
		{ "1.1", "close, Upgrade", false },
		{ "1.1", "closed", true },
		{ "1.1", "Upgrade", true },
		{ "1.0", NULL, false },
		{ "1.0", "keep-alive", true },
		{ "1.0", "Keep-Alive", true },
		{ "1.0", "foo, keep-alive", true },
		{ "1.0", "close", false },
		{ "1.0", "keep-alive-ish", false },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char r[256];
		int n = snprintf(r, sizeof(r), "GET / HTTP/%s\r\nHost: h\r\n%s%s%s\r\n", cases[i].version,
				 cases[i].connection ? "Connection: " : "",
				 cases[i].connection ? cases[i].connection : "", cases[i].connection ? "\r\n" : "");
		struct parsed p;
		preq(&p, r, (size_t)n, MAXH);
		cr_assert_eq(p.rc, n, "%s", r);
		cr_expect_eq(p.m.keep_alive, cases[i].keep, "HTTP/%s Connection: %s -> keep_alive %d",
			     cases[i].version, cases[i].connection ? cases[i].connection : "(none)", p.m.keep_alive);
		guard_free(&p.g);
	}
}

Test(http_request, keep_alive_two_connection_headers)
{
	struct parsed p;
	REQ(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
	cr_assert_gt(p.rc, 0);
	cr_assert_not(p.m.keep_alive);
	guard_free(&p.g);
}

/* RFC 9112 9.3: "close" ends the connection whatever the version; keep-alive
 * only matters for HTTP/1.0 when close is absent. */
Test(http_request, close_wins_over_keep_alive_in_http10)
{
	struct parsed p;
	REQ(&p, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
	cr_assert_gt(p.rc, 0, "%s", p.m.err);
	cr_expect_not(p.m.keep_alive, "HTTP/1.0 with \"Connection: keep-alive, close\" must not be kept alive");
	guard_free(&p.g);
	REQ(&p, "GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n");
	cr_assert_gt(p.rc, 0, "%s", p.m.err);
	cr_expect_not(p.m.keep_alive, "HTTP/1.0 with Connection: close and Connection: keep-alive must not be kept alive");
	guard_free(&p.g);
}

Test(http_request, expect_continue)
{
	static const struct { const char *v; bool want; } cases[] = {
		{ "100-continue", true }, { "100-Continue", true }, { "100-CONTINUE", true },
		{ "  100-continue  ", true }, { "200-ok", false }, { "100-continue-x", false }, { "", false },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char r[256];
		int n = snprintf(r, sizeof(r), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: %s\r\n\r\n",
				 cases[i].v);
		struct parsed p;
		preq(&p, r, (size_t)n, MAXH);
		cr_assert_eq(p.rc, n, "%s", p.m.err);
		cr_expect_eq(p.m.expect_continue, cases[i].want, "Expect: \"%s\"", cases[i].v);
		guard_free(&p.g);
	}
	struct parsed p;
	REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
	cr_assert_not(p.m.expect_continue);
	guard_free(&p.g);
}

Test(http_request, content_length_values)
{
	static const struct { const char *v; long long n; } ok[] = {
		{ "0", 0 }, { "5", 5 }, { "007", 7 }, { " 42 ", 42 }, { "\t42\t", 42 },
		{ "999999999999999999", 999999999999999999LL }, /* 18 digits: the maximum */
		{ "000000000000000001", 1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		char r[256];
		int n = snprintf(r, sizeof(r), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:%s\r\n\r\n", ok[i].v);
		struct parsed p;
		preq(&p, r, (size_t)n, MAXH);
		cr_expect_eq(p.rc, n, "Content-Length \"%s\": %s", ok[i].v, p.m.err);
		cr_expect_eq(p.m.content_length, ok[i].n, "Content-Length \"%s\"", ok[i].v);
		guard_free(&p.g);
	}
}

Test(http_request, same_content_length_twice_is_ok)
{
	struct parsed p;
	REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\ncontent-length: 10\r\n\r\n");
	cr_assert_gt(p.rc, 0, "%s", p.m.err);
	cr_assert_eq(p.m.content_length, 10);
	guard_free(&p.g);
	REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nContent-Length: 010\r\n\r\n");
	cr_assert_gt(p.rc, 0, "the same number spelled with a leading zero: %s", p.m.err);
	guard_free(&p.g);
}

Test(http_request, chunked_request)
{
	struct parsed p;
	REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
	cr_assert_gt(p.rc, 0, "%s", p.m.err);
	cr_assert(p.m.chunked);
	cr_assert_eq(p.m.content_length, -1);
	guard_free(&p.g);
	REQ(&p, "POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding:   CHUNKED  \r\n\r\n");
	cr_assert_gt(p.rc, 0, "%s", p.m.err);
	cr_assert(p.m.chunked);
	guard_free(&p.g);
}

Test(http_request, http10_without_host)
{
	struct parsed p;
	REQ(&p, "GET / HTTP/1.0\r\n\r\n");
	cr_assert_eq(p.rc, 18, "%s", p.m.err);
	cr_assert_eq(p.m.minor, 0);
	cr_assert_eq(p.m.nhdr, 0);
	cr_assert_not(p.m.keep_alive);
	guard_free(&p.g);
}

Test(http_request, exactly_100_headers)
{
	struct sb s;
	struct arena a;
	arena_init(&a, NULL);
	sb_init(&s, &a, 4096);
	sb_puts(&s, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i < HTTP_MAX_HDRS; i++)
		sb_printf(&s, "X-H%d: %d\r\n", i, i);
	sb_puts(&s, "\r\n");
	struct parsed p;
	preq(&p, s.p, s.len, MAXH);
	cr_assert_eq(p.rc, (int)s.len, "%s", p.m.err);
	cr_assert_eq(p.m.nhdr, HTTP_MAX_HDRS);
	ASSERT_STR(http_header(&p.m, "x-h99"), "99");
	guard_free(&p.g);
	arena_reset(&a);
}

Test(http_request, pipelined_requests)
{
	struct parsed p;
	const char r[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
	REQ(&p, r);
	cr_assert_eq(p.rc, 28);
	ASSERT_STR(p.m.path, "/a");
	size_t sc = 0;
	int rc = http_parse_request(&p.m, p.g.p + 28, sizeof(r) - 1 - 28, &sc, MAXH);
	cr_assert_eq(rc, 28);
	ASSERT_STR(p.m.path, "/b");
	guard_free(&p.g);
}

Test(http_request, reparse_clears_previous_state)
{
	struct parsed p;
	REQ(&p, "POST /x?q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
	cr_assert_gt(p.rc, 0);
	cr_assert(p.m.chunked && p.m.expect_continue);
	char r2[] = "GET /y HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t sc = 0;
	int rc = http_parse_request(&p.m, r2, sizeof(r2) - 1, &sc, MAXH);
	cr_assert_eq(rc, (int)sizeof(r2) - 1);
	cr_assert_not(p.m.chunked);
	cr_assert_not(p.m.expect_continue);
	cr_assert_null(p.m.query.p);
	cr_assert_eq(p.m.content_length, -1);
	cr_assert_eq(p.m.nhdr, 1);
	cr_assert_null(p.m.err);
	guard_free(&p.g);
}

/* ======================================================================== */
/* requests: hostile inputs                                                 */
/* ======================================================================== */

struct bad_case {
	const char *name, *s;
	size_t n;
	const char *err; /* expected m.err, or NULL to only require -EBADMSG */
};

#define BADC(name, lit, err) { name, lit, sizeof(lit) - 1, err }

static void run_bad_requests(const struct bad_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct parsed p;
		preq(&p, c[i].s, c[i].n, MAXH);
		cr_expect_eq(p.rc, -EBADMSG, "%s: rc %d, want -EBADMSG", c[i].name, p.rc);
		if (p.rc == -EBADMSG && c[i].err)
			cr_expect(p.m.err && strcmp(p.m.err, c[i].err) == 0, "%s: err \"%s\", want \"%s\"",
				  c[i].name, p.m.err ? p.m.err : "(null)", c[i].err);
		guard_free(&p.g);
	}
}

static void run_bad_responses(const struct bad_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct parsed p;
		presp(&p, c[i].s, c[i].n, MAXH);
		cr_expect_eq(p.rc, -EBADMSG, "%s: rc %d, want -EBADMSG", c[i].name, p.rc);
		if (p.rc == -EBADMSG && c[i].err)
			cr_expect(p.m.err && strcmp(p.m.err, c[i].err) == 0, "%s: err \"%s\", want \"%s\"",
				  c[i].name, p.m.err ? p.m.err : "(null)", c[i].err);
		guard_free(&p.g);
	}
}

Test(http_request, smuggling_framing)
{
	static const struct bad_case c[] = {
		BADC("CL then TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		     "Content-Length with Transfer-Encoding"),
		BADC("TE then CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		     "Content-Length with Transfer-Encoding"),
		BADC("CL 0 with TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
		     "Content-Length with Transfer-Encoding"),
		BADC("two differing CLs", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		     "conflicting Content-Length headers"),
		BADC("differing CLs, 0 first", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n",
		     "conflicting Content-Length headers"),
		BADC("CL list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", "bad Content-Length"),
		BADC("negative CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
		BADC("plus CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", "bad Content-Length"),
		BADC("empty CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", "bad Content-Length"),
		BADC("blank CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:   \r\n\r\n", "bad Content-Length"),
		BADC("hex CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", "bad Content-Length"),
		BADC("CL with inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n", "bad Content-Length"),
		BADC("CL exponent", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1e3\r\n\r\n", "bad Content-Length"),
		BADC("19-digit CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000000000000\r\n\r\n",
		     "bad Content-Length"),
		BADC("19-digit CL with leading zero", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0000000000000000005\r\n\r\n",
		     "bad Content-Length"),
		BADC("overflowing CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		     "bad Content-Length"),
		BADC("CL = 2^64", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n",
		     "bad Content-Length"),
		BADC("TE gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
		BADC("TE gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		     "unsupported Transfer-Encoding"),
		BADC("TE chunked, gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		     "unsupported Transfer-Encoding"),
		BADC("TE identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
		     "unsupported Transfer-Encoding"),
		BADC("TE chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		     "unsupported Transfer-Encoding"),
		BADC("TE xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
		     "unsupported Transfer-Encoding"),
		BADC("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in HTTP/1.0"),
	};
	run_bad_requests(c, ARRAY_LEN(c));
}

Test(http_request, header_syntax)
{
	static const struct bad_case c[] = {
		BADC("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", "malformed header name"),
		BADC("tab before colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", "malformed header name"),
		BADC("space before colon on CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n",
		     "malformed header name"),
		BADC("space in name", "GET / HTTP/1.1\r\nHost: h\r\nX Y: 1\r\n\r\n", "malformed header name"),
		BADC("no colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", "malformed header name"),
		BADC("empty name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", "malformed header name"),
		BADC("separator in name", "GET / HTTP/1.1\r\nHost: h\r\nX(Y): 1\r\n\r\n", "malformed header name"),
		BADC("slash in name", "GET / HTTP/1.1\r\nHost: h\r\nX/Y: 1\r\n\r\n", "malformed header name"),
		BADC("quote in name", "GET / HTTP/1.1\r\nHost: h\r\nX\"Y: 1\r\n\r\n", "malformed header name"),
		BADC("DEL in name", "GET / HTTP/1.1\r\nHost: h\r\nX\x7fY: 1\r\n\r\n", "malformed header name"),
		BADC("8-bit name", "GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: 1\r\n\r\n", "malformed header name"),
		BADC("NUL in name", "GET / HTTP/1.1\r\nHost: h\r\nX\0Y: 1\r\n\r\n", "malformed header name"),
		BADC("obs-fold space", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", "obsolete header folding"),
		BADC("obs-fold tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", "obsolete header folding"),
		BADC("obs-fold first header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", "obsolete header folding"),
		BADC("bare LF between headers", "GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n", "control character in header"),
		BADC("bare LF after request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", NULL),
		BADC("bare CR in header line", "GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", "bad line ending"),
		BADC("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", "control character in header"),
		BADC("SOH in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n", "control character in header"),
		BADC("US in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x1f" "b\r\n\r\n", "control character in header"),
		BADC("VT in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\vb\r\n\r\n", "control character in header"),
		BADC("FF in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\fb\r\n\r\n", "control character in header"),
		BADC("ESC in Host", "GET / HTTP/1.1\r\nHost: h\x1b\r\n\r\n", "control character in header"),
	};
	run_bad_requests(c, ARRAY_LEN(c));
}

Test(http_request, tab_and_obs_text_in_values_are_fine)
{
	struct parsed p;
	REQ(&p, "GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\r\nY: \x80\xff\r\n\r\n");
	cr_assert_gt(p.rc, 0, "%s", p.m.err);
	ASSERT_STR(http_header(&p.m, "x"), "a\tb");
	ASSERT_STR(http_header(&p.m, "y"), "\x80\xff");
	guard_free(&p.g);
}

Test(http_request, request_line)
{
	static const struct bad_case c[] = {
		BADC("missing Host in 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", "missing Host header"),
		BADC("no headers in 1.1", "GET / HTTP/1.1\r\n\r\n", "missing Host header"),
		BADC("HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", "unsupported HTTP version"),
		BADC("HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", "unsupported HTTP version"),
		BADC("HTTP/0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", "unsupported HTTP version"),
		BADC("HTTP/1.10", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", "unsupported HTTP version"),
		BADC("HTTP/1", "GET / HTTP/1\r\nHost: h\r\n\r\n", "unsupported HTTP version"),
		BADC("lowercase http", "GET / http/1.1\r\nHost: h\r\n\r\n", "unsupported HTTP version"),
		BADC("trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "unsupported HTTP version"),
		BADC("absolute-form target", "GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", "request target must be a path"),
		BADC("asterisk target", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "request target must be a path"),
		BADC("relative target", "GET x/y HTTP/1.1\r\nHost: h\r\n\r\n", "request target must be a path"),
		BADC("double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "request target must be a path"),
		BADC("authority target", "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", "request target must be a path"),
		BADC("tab in target", "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", "bad character in request target"),
		BADC("DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", "bad character in request target"),
		BADC("NUL in target", "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", "bad character in request target"),
		BADC("no version", "GET /\r\nHost: h\r\n\r\n", "malformed request line"),
		BADC("method only", "GET\r\nHost: h\r\n\r\n", "malformed request line"),
		BADC("leading space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", "malformed request line"),
		BADC("empty request line", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "malformed request line"),
		BADC("only blank line", "\r\n\r\n", "malformed request line"),
		BADC("separator in method", "GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", "malformed method"),
		BADC("8-bit method", "G\xc3\x89T / HTTP/1.1\r\nHost: h\r\n\r\n", "malformed method"),
		BADC("NUL in method", "G\0T / HTTP/1.1\r\nHost: h\r\n\r\n", "malformed method"),
	};
	run_bad_requests(c, ARRAY_LEN(c));
}

/* A CR inside the request line must be followed by LF. Here the CR ends the
 * version and the byte after it is silently dropped, which lets the rest of the
 * line pass as a header ("XHost: a" loses its first byte and becomes "Host: a"). */
Test(http_request, bare_cr_in_request_line)
{
	static const struct bad_case c[] = {
		BADC("bare CR after version (1.1)", "GET / HTTP/1.1\rXHost: a\r\n\r\n", NULL),
		BADC("bare CR after version (1.0)", "GET / HTTP/1.0\rX\r\n\r\n", NULL),
	};
	run_bad_requests(c, ARRAY_LEN(c));
}

/* RFC 9112 3.2: a server MUST answer 400 to a request with more than one Host
 * field line (or an invalid Host value); two Hosts let two parsers disagree on
 * which authority the request is for. */
Test(http_request, two_host_headers)
{
	static const struct bad_case c[] = {
		BADC("two differing Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", NULL),
		BADC("two equal Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", NULL),
		BADC("two Hosts in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", NULL),
	};
	run_bad_requests(c, ARRAY_LEN(c));
}

Test(http_request, too_many_headers)
{
	struct sb s;
	struct arena a;
	arena_init(&a, NULL);
	sb_init(&s, &a, 4096);
	sb_puts(&s, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i <= HTTP_MAX_HDRS; i++)
		sb_printf(&s, "X-H%d: %d\r\n", i, i);
	sb_puts(&s, "\r\n");
	struct parsed p;
	preq(&p, s.p, s.len, MAXH);
	cr_assert_eq(p.rc, -EBADMSG);
	cr_assert_str_eq(p.m.err, "too many headers");
	guard_free(&p.g);
	arena_reset(&a);
}

Test(http_request, e2big_over_max_head)
{
	const char r[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789\r\n\r\n";
	size_t n = sizeof(r) - 1;
	struct parsed p;
	preq(&p, r, n, n);
	cr_assert_eq(p.rc, (int)n, "a head of exactly max_head bytes is fine");
	guard_free(&p.g);
	preq(&p, r, n, n - 1);
	cr_assert_eq(p.rc, -E2BIG, "complete head one byte over the limit");
	guard_free(&p.g);
	preq(&p, r, n - 2, n - 3);
	cr_assert_eq(p.rc, -E2BIG, "incomplete head already over the limit");
	guard_free(&p.g);
	preq(&p, r, n - 2, n - 2);
	cr_assert_eq(p.rc, -EAGAIN, "incomplete head within the limit");
	guard_free(&p.g);
	/* a huge head that never ends */
	size_t big = 100000;
	char *junk = malloc(big);
	memset(junk, 'a', big);
	memcpy(junk, "GET / HTTP/1.1\r\nX: ", 19);
	preq(&p, junk, big, MAXH);
	cr_assert_eq(p.rc, -E2BIG);
	guard_free(&p.g);
	free(junk);
}

Test(http_request, bare_lf_only_request_never_completes)
{
	/* "\n\n" is not the end of a head: it stays incomplete until the limit */
	const char r[] = "GET / HTTP/1.1\nHost: h\n\n";
	struct parsed p;
	preq(&p, r, sizeof(r) - 1, MAXH);
	cr_assert_eq(p.rc, -EAGAIN);
	guard_free(&p.g);
	preq(&p, r, sizeof(r) - 1, 10);
	cr_assert_eq(p.rc, -E2BIG);
	guard_free(&p.g);
}

Test(http_request, incremental_byte_by_byte)
{
	const char r[] = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n"
			 "Connection: keep-alive\r\n\r\n{}";
	size_t head = sizeof(r) - 1 - 2;
	size_t scanned = 0, prev = 0;
	struct http_msg m;
	for (size_t k = 0; k < head; k++) {
		struct guard g;
		char *b = guard_put(&g, r, k);
		int rc = http_parse_request(&m, b, k, &scanned, MAXH);
		guard_free(&g);
		cr_assert_eq(rc, -EAGAIN, "prefix of %zu bytes: rc %d", k, rc);
		cr_assert_geq(scanned, prev, "scanned never goes back");
		cr_assert_eq(scanned, k, "scanned covers the prefix");
		prev = scanned;
	}
	for (size_t k = head; k <= head + 2; k++) {
		struct guard g;
		char *b = guard_put(&g, r, k);
		size_t sc = scanned;
		int rc = http_parse_request(&m, b, k, &sc, MAXH);
		cr_assert_eq(rc, (int)head, "complete at %zu bytes: rc %d %s", k, rc, m.err ? m.err : "");
		ASSERT_STR(m.path, "/v1/chat/completions");
		ASSERT_STR(m.query, "x=1");
		cr_assert_eq(m.content_length, 2);
		ASSERT_STR(http_header(&m, "host"), "gw");
		guard_free(&g);
	}
}

Test(http_request, incremental_in_uneven_steps)
{
	const char r[] = "GET /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
	size_t n = sizeof(r) - 1;
	for (size_t step = 2; step <= 7; step++) {
		size_t scanned = 0;
		struct http_msg m;
		int rc = -EAGAIN;
		size_t k;
		for (k = step; rc == -EAGAIN; k = MIN(k + step, n)) {
			struct guard g;
			char *b = guard_put(&g, r, k);
			rc = http_parse_request(&m, b, k, &scanned, MAXH);
			guard_free(&g);
			if (k == n)
				break;
		}
		cr_assert_eq(rc, (int)n, "step %zu", step);
	}
}

Test(http_request, rebase_moves_every_slice)
{
	char a[] = "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: two\r\n\r\n";
	char b[sizeof(a)];
	struct http_msg m;
	size_t sc = 0;
	cr_assert_eq(http_parse_request(&m, a, sizeof(a) - 1, &sc, MAXH), (int)sizeof(a) - 1);
	memcpy(b, a, sizeof(a));
	memset(a, '#', sizeof(a));
	http_rebase(&m, a, b);
	ASSERT_STR(m.method, "POST");
	ASSERT_STR(m.path, "/p");
	ASSERT_STR(m.query, "q=1");
	ASSERT_STR(http_header(&m, "x-b"), "two");
	cr_assert_eq(m.method.p, b);
	for (int i = 0; i < m.nhdr; i++) {
		cr_assert(m.hdr[i].name.p >= b && m.hdr[i].name.p < b + sizeof(b));
		cr_assert(m.hdr[i].value.p >= b && m.hdr[i].value.p < b + sizeof(b));
	}
	/* no query: stays NULL */
	char c[] = "GET /p HTTP/1.1\r\nHost: h\r\n\r\n";
	char d[sizeof(c)];
	sc = 0;
	cr_assert_gt(http_parse_request(&m, c, sizeof(c) - 1, &sc, MAXH), 0);
	memcpy(d, c, sizeof(c));
	http_rebase(&m, c, d);
	cr_assert_null(m.query.p);
	cr_assert_eq(m.path.p, d + 4);
}

/* ======================================================================== */
/* responses                                                                */
/* ======================================================================== */

Test(http_response, ok_with_content_length)
{
	struct parsed p;
	const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello";
	RESP(&p, r);
	cr_assert_eq(p.rc, (int)sizeof(r) - 1 - 5, "%s", p.m.err);
	cr_assert_eq(p.m.status, 200);
	cr_assert_eq(p.m.minor, 1);
	cr_assert_eq(p.m.content_length, 5);
	cr_assert(p.m.keep_alive);
	cr_assert_not(p.m.chunked);
	ASSERT_STR(http_header(&p.m, "content-type"), "application/json");
	guard_free(&p.g);
}

Test(http_response, status_lines)
{
	static const struct { const char *s; int status, minor; } ok[] = {
		{ "HTTP/1.1 200 OK\r\n\r\n", 200, 1 },
		{ "HTTP/1.1 204\r\n\r\n", 204, 1 },
		{ "HTTP/1.1 404 \r\n\r\n", 404, 1 },
		{ "HTTP/1.0 503 Service Unavailable\r\n\r\n", 503, 0 },
		{ "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n\r\n", 429, 1 },
		{ "HTTP/1.1 100 Continue\r\n\r\n", 100, 1 },
		{ "HTTP/1.1 999 Whatever it says\r\n\r\n", 999, 1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		struct parsed p;
		presp(&p, ok[i].s, strlen(ok[i].s), MAXH);
		cr_expect_eq(p.rc, (int)strlen(ok[i].s), "%s: rc %d %s", ok[i].s, p.rc, p.m.err ? p.m.err : "");
		cr_expect_eq(p.m.status, ok[i].status, "%s", ok[i].s);
		cr_expect_eq(p.m.minor, ok[i].minor, "%s", ok[i].s);
		guard_free(&p.g);
	}
}

Test(http_response, keep_alive_and_chunked)
{
	struct parsed p;
	RESP(&p, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
	cr_assert_gt(p.rc, 0);
	cr_assert_not(p.m.keep_alive);
	guard_free(&p.g);
	RESP(&p, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n");
	cr_assert(p.m.keep_alive);
	guard_free(&p.g);
	RESP(&p, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
	cr_assert_not(p.m.keep_alive);
	guard_free(&p.g);
	RESP(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n");
	cr_assert_gt(p.rc, 0, "%s", p.m.err);
	cr_assert(p.m.chunked);
	cr_assert_eq(p.m.content_length, -1);
	guard_free(&p.g);
}

Test(http_response, hostile)
{
	static const struct bad_case c[] = {
		BADC("no reason separator", "HTTP/1.1 200OK\r\n\r\n", "malformed status line"),
		BADC("short status", "HTTP/1.1 20\r\n\r\n", "malformed status line"),
		BADC("letter in status", "HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line"),
		BADC("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
		BADC("no space after version", "HTTP/1.1_200 OK\r\n\r\n", "malformed status line"),
		BADC("HTTP/2", "HTTP/2 200 OK\r\n\r\n", "malformed status line"),
		BADC("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version"),
		BADC("ICY", "ICY 200 OK\r\n\r\n", "malformed status line"),
		BADC("empty", "\r\n\r\n", "malformed status line"),
		BADC("CL+TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		     "Content-Length with Transfer-Encoding"),
		BADC("two CLs", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		     "conflicting Content-Length headers"),
		BADC("negative CL", "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "bad Content-Length"),
		BADC("19-digit CL", "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n", "bad Content-Length"),
		BADC("TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
		BADC("TE in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in HTTP/1.0"),
		BADC("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obsolete header folding"),
		BADC("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n", "malformed header name"),
		BADC("control char", "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n", "control character in header"),
		BADC("bare LF header", "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", "control character in header"),
	};
	run_bad_responses(c, ARRAY_LEN(c));
}

/* Same as bare_cr_in_request_line, for the status line. */
Test(http_response, bare_cr_in_status_line)
{
	static const struct bad_case c[] = {
		BADC("bare CR after reason", "HTTP/1.1 200 OK\rXContent-Length: 0\r\n\r\n", NULL),
	};
	run_bad_responses(c, ARRAY_LEN(c));
}

Test(http_response, incremental_and_limits)
{
	const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	size_t n = sizeof(r) - 1, scanned = 0;
	struct http_msg m;
	for (size_t k = 0; k < n; k++) {
		struct guard g;
		char *b = guard_put(&g, r, k);
		int rc = http_parse_response(&m, b, k, &scanned, MAXH);
		guard_free(&g);
		cr_assert_eq(rc, -EAGAIN, "prefix %zu", k);
		cr_assert_eq(scanned, k);
	}
	struct parsed p;
	presp(&p, r, n, n);
	cr_assert_eq(p.rc, (int)n);
	guard_free(&p.g);
	presp(&p, r, n, n - 1);
	cr_assert_eq(p.rc, -E2BIG);
	guard_free(&p.g);
}

/* ======================================================================== */
/* chunked decoder                                                          */
/* ======================================================================== */

/* Decode all of `in` in one call at a guard page. */
static int dechunk_all(const char *in, size_t n, char *out, size_t *outn, size_t *consumed)
{
	struct guard g;
	char *b = guard_put(&g, in, n);
	struct http_chunked c = { 0 };
	size_t src = 0, dst = 0;
	int rc = http_dechunk(&c, b, &src, n, &dst);
	if (out)
		memcpy(out, b, dst);
	if (outn)
		*outn = dst;
	if (consumed)
		*consumed = src;
	guard_free(&g);
	return rc;
}

#define DECHUNK(lit, out, outn, used) dechunk_all((lit), sizeof(lit) - 1, (out), (outn), (used))

Test(http_dechunk, simple)
{
	char out[64];
	size_t n, used;
	const char in[] = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
	cr_assert_eq(DECHUNK(in, out, &n, &used), 1);
	cr_assert_eq(n, 11);
	cr_assert_eq(memcmp(out, "hello world", 11), 0);
	cr_assert_eq(used, sizeof(in) - 1);
}

Test(http_dechunk, hex_sizes_and_case)
{
	char out[64];
	size_t n;
	const char in[] = "a\r\n0123456789\r\nA\r\nabcdefghij\r\n00000000000001\r\n!\r\n0\r\n\r\n";
	cr_assert_eq(DECHUNK(in, out, &n, NULL), 1);
	cr_assert_eq(n, 21);
	cr_assert_eq(memcmp(out, "0123456789abcdefghij!", 21), 0);
	char big[0x1f + 16];
	memset(big, 0, sizeof(big));
	const char in2[] = "1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n";
	cr_assert_eq(DECHUNK(in2, big, &n, NULL), 1);
	cr_assert_eq(n, 31);
}

Test(http_dechunk, extensions_and_trailers)
{
	char out[64];
	size_t n, used;
	const char in[] = "4;name=value\r\nWiki\r\n5 ; a=\"b;c\"\r\npedia\r\n0;last\r\n"
			  "Trailer-One: 1\r\nTrailer-Two: two\r\n\r\nNEXT";
	cr_assert_eq(DECHUNK(in, out, &n, &used), 1);
	cr_assert_eq(n, 9);
	cr_assert_eq(memcmp(out, "Wikipedia", 9), 0);
	cr_assert_eq(used, sizeof(in) - 1 - 4, "stops right after the final CRLF");
}

Test(http_dechunk, empty_body)
{
	size_t n, used;
	cr_assert_eq(DECHUNK("0\r\n\r\n", NULL, &n, &used), 1);
	cr_assert_eq(n, 0);
	cr_assert_eq(used, 5);
	cr_assert_eq(DECHUNK("000\r\n\r\n", NULL, &n, &used), 1);
	cr_assert_eq(used, 7);
}

Test(http_dechunk, incomplete_returns_zero)
{
	static const char *const partial[] = {
		"", "5", "5\r", "5\r\n", "5\r\nhel", "5\r\nhello", "5\r\nhello\r", "5\r\nhello\r\n",
		"5;ext", "5;ext\r", "0", "0\r\n", "0\r\n\r", "0\r\nTrailer: x", "0\r\nTrailer: x\r\n",
		"fffffffffffffff\r\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(partial); i++) {
		size_t n = strlen(partial[i]), used;
		int rc = dechunk_all(partial[i], n, NULL, NULL, &used);
		cr_expect_eq(rc, 0, "\"%s\": rc %d", partial[i], rc);
		cr_expect_eq(used, n, "\"%s\": consumes what it was given", partial[i]);
	}
}

Test(http_dechunk, bad_inputs)
{
	static const struct { const char *s; size_t n; } bad[] = {
#define BD(lit) { lit, sizeof(lit) - 1 }
		BD("g\r\n"),                    /* not hex */
		BD("\r\n"),                     /* no digits */
		BD(";ext\r\n"),                 /* extension without a size */
		BD(" 5\r\n"),                   /* leading space */
		BD("-5\r\n"),
		BD("+5\r\n"),
		BD("0x5\r\n"),
		BD("5\n"),                      /* bare LF after the size */
		BD("5\rX"),                     /* CR not followed by LF */
		BD("5\r\r"),
		BD("5z\r\n"),
		BD("5;a\x01" "b\r\n"),          /* control character in an extension */
		BD("5;a\nb\r\n"),
		BD("5\r\nhello\n"),             /* data not followed by CRLF */
		BD("5\r\nhelloX\r\n"),
		BD("3\r\nhello\r\n"),           /* more data than announced */
		BD("5\r\nhello\rX"),
		BD("5\r\nhello\r\r"),
		BD("0000000000000001\r\nx\r\n0\r\n\r\n"), /* 16 hex digits, even if small */
		BD("10000000000000000\r\n"),    /* 17 digits: 2^64 */
		BD("ffffffffffffffffff\r\n"),
		BD("0\r\n\rX"),                 /* final CRLF broken */
		BD("0\r\n\r\r"),
#undef BD
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int rc = dechunk_all(bad[i].s, bad[i].n, NULL, NULL, NULL);
		cr_expect_eq(rc, -EBADMSG, "case %zu \"%.*s\": rc %d", i, (int)bad[i].n, bad[i].s, rc);
	}
}

Test(http_dechunk, fifteen_hex_digits_is_the_maximum)
{
	/* 15 digits parse (and then want that much data); 16 do not */
	size_t used;
	cr_assert_eq(dechunk_all("000000000000005\r\nhello\r\n0\r\n\r\n", 29, NULL, NULL, &used), 1);
	cr_assert_eq(dechunk_all("0000000000000005\r\nhello\r\n0\r\n\r\n", 30, NULL, NULL, NULL), -EBADMSG);
}

static const char chunked_sample[] =
	"7;x=y\r\n{\"a\":1}\r\n"
	"1\r\n\n\r\n"
	"10\r\n0123456789abcdef\r\n"
	"3 \r\nxyz\r\n"
	"0\r\nT: v\r\n\r\n";
static const char chunked_decoded[] = "{\"a\":1}\n0123456789abcdefxyz";

Test(http_dechunk, split_at_every_byte_position)
{
	size_t n = sizeof(chunked_sample) - 1, want = sizeof(chunked_decoded) - 1;
	for (size_t split = 0; split <= n; split++) {
		struct guard g;
		char *b = guard_put(&g, chunked_sample, n);
		struct http_chunked c = { 0 };
		size_t src = 0, dst = 0;
		int rc = http_dechunk(&c, b, &src, split, &dst);
		if (split < n) {
			cr_assert_eq(rc, 0, "split %zu: first part rc %d", split, rc);
			cr_assert_eq(src, split, "split %zu: consumed all of the first part", split);
			rc = http_dechunk(&c, b, &src, n, &dst);
		}
		cr_assert_eq(rc, 1, "split %zu: rc %d", split, rc);
		cr_assert_eq(src, n, "split %zu", split);
		cr_assert_eq(dst, want, "split %zu: %zu decoded bytes", split, dst);
		cr_assert_eq(memcmp(b, chunked_decoded, want), 0, "split %zu: decoded bytes differ", split);
		guard_free(&g);
	}
}

Test(http_dechunk, byte_by_byte)
{
	size_t n = sizeof(chunked_sample) - 1, want = sizeof(chunked_decoded) - 1;
	struct guard g;
	char *b = guard_put(&g, chunked_sample, n);
	struct http_chunked c = { 0 };
	size_t src = 0, dst = 0;
	for (size_t k = 1; k <= n; k++) {
		int rc = http_dechunk(&c, b, &src, k, &dst);
		cr_assert_eq(rc, k == n ? 1 : 0, "after %zu bytes: rc %d", k, rc);
		cr_assert_eq(src, k);
		cr_assert_leq(dst, src, "dst never passes src");
	}
	cr_assert_eq(dst, want);
	cr_assert_eq(memcmp(b, chunked_decoded, want), 0);
	/* more calls after the end: still done, nothing consumed */
	cr_assert_eq(http_dechunk(&c, b, &src, n, &dst), 0, "no new bytes: nothing to do");
	guard_free(&g);
}

Test(http_dechunk, in_place_with_offset_and_pipelined_tail)
{
	/* a head before the body: decoding starts at src = dst = head length */
	const char msg[] = "HEAD-BYTES|"
			   "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
			   "NEXT REQUEST";
	size_t n = sizeof(msg) - 1, head = 11;
	struct guard g;
	char *b = guard_put(&g, msg, n);
	struct http_chunked c = { 0 };
	size_t src = head, dst = head;
	cr_assert_eq(http_dechunk(&c, b, &src, n, &dst), 1);
	cr_assert_eq(dst, head + 5);
	cr_assert_eq(memcmp(b, "HEAD-BYTES|abcde", 16), 0, "head untouched, body compacted after it");
	cr_assert_eq(src, n - 12);
	cr_assert_eq(memcmp(b + src, "NEXT REQUEST", 12), 0, "the pipelined tail is untouched");
	guard_free(&g);
}

Test(http_dechunk, large_chunk_in_pieces)
{
	size_t data = 100000;
	struct sb s;
	struct arena a;
	arena_init(&a, NULL);
	sb_init(&s, &a, data + 64);
	sb_printf(&s, "%zx\r\n", data);
	for (size_t i = 0; i < data; i++)
		sb_put(&s, &"abcdefghijklmnopqrstuvwxyz"[i % 26], 1);
	sb_puts(&s, "\r\n0\r\n\r\n");
	struct guard g;
	char *b = guard_put(&g, s.p, s.len);
	struct http_chunked c = { 0 };
	size_t src = 0, dst = 0;
	int rc = 0;
	for (size_t k = 1000; rc == 0; k = MIN(k + 4097, s.len))
		rc = http_dechunk(&c, b, &src, k, &dst);
	cr_assert_eq(rc, 1);
	cr_assert_eq(dst, data);
	for (size_t i = 0; i < data; i++)
		if (b[i] != "abcdefghijklmnopqrstuvwxyz"[i % 26])
			cr_assert_fail("byte %zu differs", i);
	guard_free(&g);
	arena_reset(&a);
}
