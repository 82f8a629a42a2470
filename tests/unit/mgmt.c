/* Unit tests for the pure parts of the management plane (sections 5, 15 and 16):
 * http_query_get (query parameters for /api/logs: the decoded length, -1 when absent),
 * mgmt_pretty and mgmt_emit (how config documents are written back, redacted on the way out
 * and un-redacted on the way in), mgmt_marker (the per-process HMAC that names a secret),
 * PBKDF2-HMAC-SHA256 against published vectors, password hash lines, the session cookie,
 * the 400 "problems" answer, and the log store's percentiles and latency filter.
 *
 * Markers: a secret reads as MGMT_REDACTED "-" + 8 lowercase hex digits, the first 4 bytes
 * of HMAC-SHA256(secret) under a key drawn once per process. The tests never write one by
 * hand: they take it from mgmt_marker (mark() below) or from a redacting mgmt_emit.
 *
 * Inputs that are parsed are placed right before a PROT_NONE page (guard.h): reading one
 * byte past the given length crashes the test. */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

/* http_query_get over a guarded copy of q (its decoded length, or -1). */
static long qget(const char *q, const char *name, char *out, size_t cap)
{
	struct guard g;
	size_t n = strlen(q);
	char *p = guard_put(&g, q, n);
	long r = http_query_get((struct str){ n ? p : NULL, n }, name, out, cap);
	guard_free(&g);
	return r;
}

/* Found, decoded to `want` (no NUL inside), and the length returned is strlen(want). */
#define QGET_EQ(q, name, want)                                                                   \
	do {                                                                                     \
		char out_[256];                                                                  \
		memset(out_, 0x5a, sizeof(out_));                                                \
		long n_ = qget((q), (name), out_, sizeof(out_));                                 \
		cr_assert_geq(n_, 0, "\"%s\" not found in \"%s\"", (name), (q));                 \
		cr_assert_str_eq(out_, (want), "query \"%s\" name \"%s\"", (q), (name));         \
		cr_assert_eq(n_, (long)strlen(want), "query \"%s\" name \"%s\": length %ld, want %zu", (q), (name), n_, \
			     strlen(want));                                                      \
	} while (0)

/* Is token i of a the same JSON value as token k of b (strings compared unescaped,
 * members in order)? */
static bool same_json(struct json *a, int i, struct json *b, int k, struct arena *ar)
{
	const jsmntok_t *x = &a->tok[i], *y = &b->tok[k];
	if (x->type != y->type || x->size != y->size)
		return false;
	if (x->type == JSMN_STRING) {
		size_t n1 = 0, n2 = 0;
		char *s1 = json_str(a, ar, i, &n1), *s2 = json_str(b, ar, k, &n2);
		return s1 && s2 && n1 == n2 && memcmp(s1, s2, n1) == 0;
	}
	if (x->type == JSMN_PRIMITIVE) {
		struct str r1 = json_raw(a, i), r2 = json_raw(b, k);
		return r1.n == r2.n && memcmp(r1.p, r2.p, r1.n) == 0;
	}
	int ci = i + 1, ck = k + 1;
	for (int n = 0; n < x->size; n++) {
		if (x->type == JSMN_OBJECT) {
			if (!same_json(a, ci, b, ck, ar) || !same_json(a, ci + 1, b, ck + 1, ar))
				return false;
			ci = json_skip(a, ci + 1);
			ck = json_skip(b, ck + 1);
		} else {
			if (!same_json(a, ci, b, ck, ar))
				return false;
			ci = json_skip(a, ci);
			ck = json_skip(b, ck);
		}
	}
	return true;
}

struct doc {
	struct guard g;
	struct json js;
};

static void doc_parse(struct doc *d, struct arena *a, const char *s, size_t n)
{
	char *p = guard_put(&d->g, s, n);
	int rc = json_parse(&d->js, a, p, n);
	cr_assert_eq(rc, 0, "test document does not parse (%s): %.*s", d->js.err ? d->js.err : "?", (int)n, s);
}

/* emit(doc) into a fresh builder; returns the text (arena) and the result in *ok. */
static struct str emit(struct arena *a, struct json *js, struct json *old, bool redact, bool *ok)
{
	struct sb o;
	sb_init(&o, a, 64);
	bool r = mgmt_emit(js, 0, old, redact, &o);
	if (ok)
		*ok = r;
	cr_assert_not(o.oom);
	return sb_view(&o);
}

/* The string value at a path of member names / array indexes ("providers", "#0", "apiKey"). */
static char *at(struct json *js, struct arena *a, const char *const *path, int n)
{
	int t = 0;
	for (int i = 0; i < n && t >= 0; i++) {
		if (path[i][0] == '#') {
			int idx = atoi(path[i] + 1);
			if (js->tok[t].type != JSMN_ARRAY || idx >= js->tok[t].size)
				return NULL;
			int e = t + 1;
			for (int q = 0; q < idx; q++)
				e = json_skip(js, e);
			t = e;
		} else {
			t = mgmt_member(js, t, path[i]);
		}
	}
	return t >= 0 ? json_str(js, a, t, NULL) : NULL;
}

#define AT(js, a, ...) at((js), (a), (const char *const[]){ __VA_ARGS__ }, \
			  (int)(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)))

/* The bare prefix: never a marker by itself (no digits). */
#define MARK "sk-\xe2\x80\xa6redacted"

/* The marker of n bytes of secret in this process (one of 32 rotating buffers). */
static const char *mark_n(const char *secret, size_t n)
{
	static char ring[32][MGMT_MARKER_LEN + 1];
	static unsigned next;
	char *out = ring[next++ % 32];
	memset(out, 0x5a, MGMT_MARKER_LEN + 1);
	mgmt_marker(secret, n, out);
	return out;
}
#define mark(s) mark_n((s), strlen(s))

/* MGMT_REDACTED "-" and exactly 8 lowercase hex digits? */
static bool marker_shaped(const char *s)
{
	if (!s || strlen(s) != MGMT_MARKER_LEN || strncmp(s, MARK "-", sizeof(MARK)) != 0)
		return false;
	for (const char *p = s + sizeof(MARK); *p; p++)
		if (!strchr("0123456789abcdef", *p))
			return false;
	return true;
}

/* un-redact new_s against the stored old_s: *ok, and the output parsed into *u when ok */
static struct str unredact(struct arena *a, const char *old_s, const char *new_s, bool *ok, struct doc *u)
{
	struct doc o = { 0 }, n;
	if (old_s)
		doc_parse(&o, a, old_s, strlen(old_s));
	doc_parse(&n, a, new_s, strlen(new_s));
	struct str out = emit(a, &n.js, old_s ? &o.js : NULL, false, ok);
	if (*ok && u)
		doc_parse(u, a, out.p, out.n);
	guard_free(&o.g);
	guard_free(&n.g);
	return out;
}

/* ======================================================================== */
/* http_query_get                                                           */
/* ======================================================================== */

Test(http_query_get, plain_values)
{
	QGET_EQ("a=1", "a", "1");
	QGET_EQ("a=1&b=two&c=3", "b", "two");
	QGET_EQ("a=1&b=two&c=3", "c", "3");
	QGET_EQ("limit=50&offset=100", "offset", "100");
	QGET_EQ("a=", "a", "");
	QGET_EQ("a=&b=2", "a", "");
	QGET_EQ("&&a=1&&", "a", "1");
	QGET_EQ("=x&a=1", "a", "1");
	QGET_EQ("a==b", "a", "=b");
}

Test(http_query_get, percent_and_plus_decoding)
{
	QGET_EQ("b=x%20y", "b", "x y");
	QGET_EQ("b=x+y", "b", "x y");
	QGET_EQ("b=%2B", "b", "+");
	QGET_EQ("b=%41%42%43", "b", "ABC");
	QGET_EQ("b=%4a%4A", "b", "JJ");
	QGET_EQ("b=%26%3D", "b", "&=");
	QGET_EQ("b=%%41", "b", "%A");
	QGET_EQ("b=%e2%80%a6", "b", "\xe2\x80\xa6");
	QGET_EQ("provider=%27%20OR%201%3D1%20--", "provider", "' OR 1=1 --");
}

Test(http_query_get, bad_percent_is_literal)
{
	QGET_EQ("b=%zz", "b", "%zz");
	QGET_EQ("b=%g1", "b", "%g1");
	QGET_EQ("b=%1", "b", "%1");   /* cut by the end */
	QGET_EQ("b=%", "b", "%");
	QGET_EQ("b=%2&c=1", "b", "%2"); /* cut by the '&': the '&' is not part of the escape */
	QGET_EQ("b=%&c=1", "b", "%");
	QGET_EQ("b=%4", "b", "%4");
	QGET_EQ("b=x%", "b", "x%");
}

Test(http_query_get, first_occurrence_wins)
{
	QGET_EQ("a=1&a=2", "a", "1");
	QGET_EQ("a=&a=2", "a", "");
	QGET_EQ("b=0&a=first&c=1&a=second", "a", "first");
}

Test(http_query_get, names_match_whole)
{
	char out[64];
	QGET_EQ("ab=1&a=2", "a", "2");
	QGET_EQ("a_b=1&b=2", "b", "2");
	QGET_EQ("xa=1&a=2", "a", "2");
	cr_assert_eq(qget("ab=1", "a", out, sizeof(out)), -1);
	cr_assert_eq(qget("a=1", "ab", out, sizeof(out)), -1);
	cr_assert_eq(qget("a", "a", out, sizeof(out)), -1, "a name without '=' has no value");
	cr_assert_eq(qget("a&b", "a", out, sizeof(out)), -1);
	cr_assert_eq(qget("A=1", "a", out, sizeof(out)), -1, "names are case-sensitive");
	cr_assert_eq(qget("%61=1", "a", out, sizeof(out)), -1, "names are not decoded");
}

Test(http_query_get, missing_is_minus_one_and_empty_is_zero)
{
	char out[16];
	cr_assert_eq(qget("", "a", out, sizeof(out)), -1);
	cr_assert_eq(qget("b=1&c=2", "a", out, sizeof(out)), -1);
	cr_assert_eq(qget("&", "a", out, sizeof(out)), -1);
	cr_assert_eq(qget("=", "a", out, sizeof(out)), -1);
	cr_assert_eq(http_query_get((struct str){ NULL, 0 }, "a", out, sizeof(out)), -1, "an absent query string");
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("a=", "a", out, sizeof(out)), 0, "present but empty is 0, not absent");
	cr_assert_eq(out[0], 0);
}

Test(http_query_get, nul_bytes_show_in_the_length)
{
	/* %00 decodes to a NUL inside the value: the length says so (it differs from strlen) */
	char out[32];
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("a=x%00y", "a", out, sizeof(out)), 3);
	cr_assert(out[0] == 'x' && out[1] == 0 && out[2] == 'y' && out[3] == 0, "x NUL y NUL");
	cr_assert_neq(strlen(out), 3);
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("a=%00", "a", out, sizeof(out)), 1);
	cr_assert(out[0] == 0 && out[1] == 0);
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("b=1&team_id=acme%00extra", "team_id", out, sizeof(out)), 10);
	cr_assert_str_eq(out, "acme");
	cr_assert_str_eq(out + 5, "extra");
	/* "%0" and "%0g" are not escapes: no NUL */
	QGET_EQ("a=%0", "a", "%0");
	QGET_EQ("a=%0g", "a", "%0g");
	/* a NUL past the cut does not count */
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("a=abc%00", "a", out, 4), 3);
	cr_assert_str_eq(out, "abc");
}

Test(http_query_get, truncation_at_cap)
{
	char out[8];
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("a=abcdefghijkl", "a", out, 4), 3, "the length of what was written");
	cr_assert_str_eq(out, "abc");
	cr_assert_eq((unsigned char)out[4], 0x5a, "wrote past cap");
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("a=%41%42%43%44%45", "a", out, 4), 3);
	cr_assert_str_eq(out, "ABC");
	cr_assert_eq((unsigned char)out[4], 0x5a);
	cr_assert_eq(qget("a=xy", "a", out, 3), 2);
	cr_assert_str_eq(out, "xy", "a value that just fits");
	memset(out, 0x5a, sizeof(out));
	cr_assert_eq(qget("a=xyz", "a", out, 1), 0);
	cr_assert_str_eq(out, "", "cap 1: only the NUL");
	cr_assert_eq((unsigned char)out[1], 0x5a);
	/* the decoded length counts, not the encoded one */
	cr_assert_eq(qget("a=%41%42%43", "a", out, 4), 3);
	cr_assert_str_eq(out, "ABC");
}

Test(http_query_get, long_values_and_queries)
{
	char big[6000], out[128];
	size_t n = (size_t)snprintf(big, sizeof(big), "x=1&");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%%41");
	snprintf(big + n, sizeof(big) - n, "&provider=mock");
	cr_assert_eq(qget(big, "x", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "1");
	cr_assert_eq(qget(big, "provider", out, sizeof(out)), 4);
	cr_assert_str_eq(out, "mock");
	memmove(big, big + 4, strlen(big + 4) + 1); /* "%41%41...&provider=mock": a nameless first part */
	cr_assert_eq(qget(big, "provider", out, sizeof(out)), 4);
	cr_assert_str_eq(out, "mock");
	memmove(big + 2, big, strlen(big) + 1); /* "x=%41%41...": 1000 'A's cut at 127 */
	memcpy(big, "x=", 2);
	cr_assert_eq(qget(big, "x", out, sizeof(out)), 127);
	cr_assert_eq(strspn(out, "A"), 127);
}

/* ======================================================================== */
/* mgmt_pretty + mgmt_emit: round trips                                     */
/* ======================================================================== */

static const char *const roundtrip_docs[] = {
	"{}",
	"{\"a\":[]}",
	"{\"a\":1}",
	"{\"a\":[],\"b\":{},\"c\":[{}],\"d\":[[]]}",
	"{ \"a\" : [ 1 , 2 , { \"b\" : null } ] ,\n\t\"c\" : \"x\" }",
	"{\"s\":\"a,{b}[c]:\\\"d\\\\\",\"t\":\"\\\\\",\"u\":\"\\u0041\\n\\t\\/\"}",
	"{\"ws\":\"  a  \\n  b  \",\"k y\":\" : , \"}",
	"{\"n\":[0,-1,1.5e10,-0.25E-3,true,false,null]}",
	"{\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\",\"e\":\"\\ud83d\\ude00\"}",
	"{\"providers\":[{\"name\":\"mock\",\"provider\":\"openai\",\"apiKey\":\"sk-1\",\"keys\":[{\"value\":\"k\",\"weight\":1}]}],"
	"\"governance\":{\"virtual_keys\":[{\"id\":\"v\",\"value\":\"sk-v\",\"budget\":{\"max_limit\":1,\"reset_duration\":\"1d\"}}]},"
	"\"pricing\":{\"mock/gpt-4o\":{\"input\":2.5,\"output\":10}},\"admin\":{\"token\":\"t\"}}",
	"{\"x\":[[[[[[[[[[1]]]]]]]]]]}",
	"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{}}}}}}",
	"{\"\":\"\"}",
	"{\"n\":42}",
};

Test(mgmt_pretty, round_trip_parses_to_the_same_json)
{
	for (size_t t = 0; t < ARRAY_LEN(roundtrip_docs); t++) {
		const char *s = roundtrip_docs[t];
		struct arena a;
		arena_init(&a, NULL);
		struct doc d, c, p;
		doc_parse(&d, &a, s, strlen(s));
		bool ok;
		struct str compact = emit(&a, &d.js, NULL, false, &ok);
		cr_assert(ok);
		doc_parse(&c, &a, compact.p, compact.n);
		cr_assert(same_json(&d.js, 0, &c.js, 0, &a), "compact(doc) differs: %s -> %.*s", s, (int)compact.n, compact.p);
		bool in_str = false; /* compact: no whitespace outside strings */
		for (size_t i = 0; i < compact.n; i++) {
			char ch = compact.p[i];
			if (in_str && ch == '\\') {
				i++;
				continue;
			}
			if (ch == '"')
				in_str = !in_str;
			else if (!in_str)
				cr_assert_not(json_ws(ch), "whitespace in compact output at %zu: %.*s", i, (int)compact.n, compact.p);
		}
		struct sb pr;
		sb_init(&pr, &a, 16);
		mgmt_pretty(compact, &pr);
		cr_assert_not(pr.oom);
		doc_parse(&p, &a, pr.p, pr.len);
		cr_assert(same_json(&d.js, 0, &p.js, 0, &a), "pretty(compact(doc)) differs: %s ->\n%.*s", s, (int)pr.len, pr.p);
		cr_assert(pr.len > 0 && pr.p[pr.len - 1] == '\n', "ends with a newline");
		/* pretty straight from the (non-compact) original is valid too */
		struct sb pr2;
		sb_init(&pr2, &a, 16);
		mgmt_pretty((struct str){ s, strlen(s) }, &pr2);
		struct doc p2;
		doc_parse(&p2, &a, pr2.p, pr2.len);
		cr_assert(same_json(&d.js, 0, &p2.js, 0, &a), "pretty(doc) differs: %s ->\n%.*s", s, (int)pr2.len, pr2.p);
		/* pretty is a fixed point on its own compact form */
		struct sb pr3;
		sb_init(&pr3, &a, 16);
		struct str c2 = emit(&a, &p.js, NULL, false, NULL);
		mgmt_pretty(c2, &pr3);
		cr_assert(pr3.len == pr.len && !memcmp(pr3.p, pr.p, pr.len), "pretty(compact(pretty(x))) != pretty(x) for %s", s);
		guard_free(&d.g);
		guard_free(&c.g);
		guard_free(&p.g);
		guard_free(&p2.g);
		arena_reset(&a);
	}
}

Test(mgmt_pretty, exact_layout)
{
	struct arena a;
	arena_init(&a, NULL);
	struct sb o;
	sb_init(&o, &a, 16);
	mgmt_pretty(STR("{\"a\":1,\"b\":[1,2],\"c\":{},\"d\":[],\"e\":{\"f\":\"x,y\"}}"), &o);
	const char want[] = "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": {},\n  \"d\": [],\n"
			    "  \"e\": {\n    \"f\": \"x,y\"\n  }\n}\n";
	cr_assert(o.len == sizeof(want) - 1 && !memcmp(o.p, want, o.len), "got:\n%.*s", (int)o.len, o.p);
	sb_init(&o, &a, 16);
	mgmt_pretty(STR("{\"s\":\"{[\\\"]},:\"}"), &o);
	const char want2[] = "{\n  \"s\": \"{[\\\"]},:\"\n}\n";
	cr_assert(o.len == sizeof(want2) - 1 && !memcmp(o.p, want2, o.len), "strings untouched; got:\n%.*s", (int)o.len, o.p);
	arena_reset(&a);
}


/* ======================================================================== */
/* mgmt_marker                                                              */
/* ======================================================================== */

Test(mgmt_marker, shape_length_and_stability)
{
	cr_assert_str_eq(MGMT_REDACTED, MARK, "the documented prefix");
	cr_assert_eq(MGMT_MARKER_LEN, strlen(MARK) + 9, "the prefix, '-' and 8 digits");
	char m1[MGMT_MARKER_LEN + 2], m2[MGMT_MARKER_LEN + 1];
	memset(m1, 0x5a, sizeof(m1));
	mgmt_marker("sk-abc", 6, m1);
	cr_assert(marker_shaped(m1), "not MGMT_REDACTED-xxxxxxxx: %s", m1);
	cr_assert_eq((unsigned char)m1[MGMT_MARKER_LEN + 1], 0x5a, "wrote past MGMT_MARKER_LEN + 1 bytes");
	mgmt_marker("sk-abc", 6, m2);
	cr_assert_str_eq(m1, m2, "one secret, one marker (within a process)");
	cr_assert_str_eq(mark("sk-abc"), m1);
	cr_assert(marker_shaped(mark("")), "the empty secret: %s", mark(""));
	char big[10000];
	memset(big, 'k', sizeof(big));
	cr_assert(marker_shaped(mark_n(big, sizeof(big))));
}

Test(mgmt_marker, distinct_secrets_get_distinct_markers)
{
	static const char *const s[] = { "", "a", "b", "A", "sk-abc", "sk-abd", "sk-ab", "sk-abc ", " sk-abc", "env.X",
		MARK, "adm", "sk-\xe2\x80\xa6", "pbkdf2-sha256$1$aa$bb" };
	for (size_t i = 0; i < ARRAY_LEN(s); i++)
		for (size_t k = i + 1; k < ARRAY_LEN(s); k++)
			cr_assert_str_neq(mark(s[i]), mark(s[k]), "\"%s\" and \"%s\" share a marker", s[i], s[k]);
	cr_assert_str_neq(mark_n("a\0b", 3), mark_n("a", 1), "every byte counts, a NUL too");
	cr_assert_str_neq(mark_n("a\0", 2), mark_n("a", 1));
	char big[4096];
	memset(big, 'k', sizeof(big));
	const char *m1 = mark_n(big, sizeof(big));
	big[sizeof(big) - 1] = 'j';
	cr_assert_str_neq(m1, mark_n(big, sizeof(big)), "the last byte of a long secret counts");
}

Test(mgmt_marker, the_digits_are_keyed_not_a_plain_hash)
{
	/* the digits must say nothing outside the process: not the start of SHA-256(secret) */
	static const char *const s[] = { "", "sk-abc", "adm" };
	for (size_t i = 0; i < ARRAY_LEN(s); i++) {
		unsigned char h[32];
		char hex[9];
		br_sha256_context sc;
		br_sha256_init(&sc);
		br_sha256_update(&sc, s[i], strlen(s[i]));
		br_sha256_out(&sc, h);
		mgmt_hex(hex, h, 4);
		cr_assert_str_neq(mark(s[i]) + sizeof(MARK), hex, "the marker of \"%s\" is its plain SHA-256", s[i]);
	}
}

/* ======================================================================== */
/* mgmt_member: member names as the loader reads them                       */
/* ======================================================================== */

Test(mgmt_member, names_compared_unescaped_and_in_full)
{
	struct arena a;
	arena_init(&a, NULL);
	char long_plain[400], long_esc200[400], long_esc300[400], want200[300], want300[400];
	char p200[201], p300[301];
	memset(p200, 'p', 200);
	p200[200] = 0;
	memset(p300, 'p', 300);
	p300[300] = 0;
	snprintf(long_plain, sizeof(long_plain), "%sX", p300);
	snprintf(long_esc200, sizeof(long_esc200), "%s\\u0041", p200);
	snprintf(long_esc300, sizeof(long_esc300), "%s\\u0042", p300);
	snprintf(want200, sizeof(want200), "%sA", p200);
	snprintf(want300, sizeof(want300), "%sB", p300);
	char s[2048];
	snprintf(s, sizeof(s), "{\"na\\u006de\":\"x\",\"%s\":1,\"%s\":2,\"%s\":3,\"%sY\":4,\"\\u0074oken\":\"t\"}", long_plain,
		 long_esc200, long_esc300, p300);
	struct doc d;
	doc_parse(&d, &a, s, strlen(s));
	int v = mgmt_member(&d.js, 0, "name");
	cr_assert(v > 0 && str_eq(mgmt_tok(&d.js, v), "x"), "\"na\\u006de\" is name");
	cr_assert_eq(mgmt_member(&d.js, 0, "nam"), -1);
	cr_assert_eq(mgmt_member(&d.js, 0, "names"), -1);
	cr_assert_eq(mgmt_member(&d.js, 0, "na\\u006de"), -1, "the escaped spelling is not the name");
	v = mgmt_member(&d.js, 0, long_plain);
	cr_assert(v > 0 && str_eq(mgmt_tok(&d.js, v), "1"), "a 301-byte name is compared in full");
	char prefix[400];
	snprintf(prefix, sizeof(prefix), "%s", p300);
	cr_assert_eq(mgmt_member(&d.js, 0, prefix), -1, "a prefix of a long name is not the name");
	v = mgmt_member(&d.js, 0, want200);
	cr_assert(v > 0 && str_eq(mgmt_tok(&d.js, v), "2"), "a 201-byte name with an escape");
	/* documented: escaped names are unescaped into 256 bytes; a longer one matches nothing */
	cr_assert_eq(mgmt_member(&d.js, 0, want300), -1);
	v = mgmt_member(&d.js, 0, "token");
	cr_assert(v > 0 && str_eq(mgmt_tok(&d.js, v), "t"));
	guard_free(&d.g);
	arena_reset(&a);
}

/* ======================================================================== */
/* mgmt_emit: redaction                                                     */
/* ======================================================================== */

static const char redact_doc[] =
	"{\"admin\":{\"token\":\"adm-secret\",\"username\":\"ops\",\"password_hash\":\"pbkdf2-sha256$1$aa$bb\"},"
	"\"providers\":[{\"name\":\"a\",\"provider\":\"openai\",\"apiKey\":\"sk-a-secret\",\"base_url\":\"http://x\","
	"\"keys\":[{\"value\":\"k1-secret\",\"weight\":1},{\"value\":\"env.KEY_TWO\"},{\"value\":7}]},"
	"{\"name\":\"b\",\"provider\":\"openai\",\"apiKey\":\"env.B_KEY\",\"api_key\":\"sk-b2\"},"
	"{\"name\":\"br\",\"provider\":\"bedrock\",\"secret_access_key\":\"aws-s\",\"session_token\":\"aws-t\","
	"\"aws_secret_access_key\":\"aws-s2\",\"token\":null},"
	"{\"name\":\"twin\",\"provider\":\"openai\",\"apiKey\":\"sk-a-secret\"}],"
	"\"governance\":{\"virtual_keys\":[{\"id\":\"v1\",\"value\":\"sk-bf-v1\"},"
	"{\"id\":\"v2\",\"value_sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]},"
	"\"pricing\":{\"m\":{\"input\":1,\"output\":2}}}";

Test(mgmt_emit, redacts_secrets_keeps_env_and_the_rest)
{
	struct arena a;
	arena_init(&a, NULL);
	struct doc d, r;
	doc_parse(&d, &a, redact_doc, sizeof(redact_doc) - 1);
	bool ok;
	struct str out = emit(&a, &d.js, NULL, true, &ok);
	cr_assert(ok);
	doc_parse(&r, &a, out.p, out.n);
	static const char *const secrets[] = { "adm-secret", "pbkdf2-sha256$1$aa$bb", "sk-a-secret", "k1-secret", "sk-b2",
		"aws-s", "aws-t", "aws-s2", "sk-bf-v1" };
	for (size_t i = 0; i < ARRAY_LEN(secrets); i++)
		cr_assert_null(memmem(out.p, out.n, secrets[i], strlen(secrets[i])), "%s leaks: %.*s", secrets[i], (int)out.n,
			       out.p);
	cr_assert_str_eq(AT(&r.js, &a, "admin", "token"), mark("adm-secret"));
	cr_assert_str_eq(AT(&r.js, &a, "admin", "password_hash"), mark("pbkdf2-sha256$1$aa$bb"));
	cr_assert_str_eq(AT(&r.js, &a, "admin", "username"), "ops");
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#0", "apiKey"), mark("sk-a-secret"));
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#0", "base_url"), "http://x");
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#0", "keys", "#0", "value"), mark("k1-secret"));
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#0", "keys", "#1", "value"), "env.KEY_TWO");
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#1", "apiKey"), "env.B_KEY");
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#1", "api_key"), mark("sk-b2"));
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#2", "secret_access_key"), mark("aws-s"));
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#2", "session_token"), mark("aws-t"));
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#2", "aws_secret_access_key"), mark("aws-s2"));
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#3", "apiKey"), mark("sk-a-secret"), "one secret, one marker");
	cr_assert_str_eq(AT(&r.js, &a, "governance", "virtual_keys", "#0", "value"), mark("sk-bf-v1"));
	cr_assert_str_eq(AT(&r.js, &a, "governance", "virtual_keys", "#1", "value_sha256"),
			 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "a hash is not a secret");
	cr_assert(marker_shaped(AT(&r.js, &a, "admin", "token")));
	cr_assert_str_neq(AT(&r.js, &a, "providers", "#0", "apiKey"), AT(&r.js, &a, "providers", "#1", "api_key"),
			  "two secrets, two markers");
	/* non-string values under secret names are left as they are */
	cr_assert_not_null(memmem(out.p, out.n, "{\"value\":7}", 11), "a number under \"value\" is kept: %.*s", (int)out.n, out.p);
	cr_assert_not_null(memmem(out.p, out.n, "\"token\":null", 12), "null under \"token\" is kept: %.*s", (int)out.n, out.p);
	/* everything else identical */
	cr_assert(same_json(&r.js, mgmt_member(&r.js, 0, "pricing"), &d.js, mgmt_member(&d.js, 0, "pricing"), &a));
	guard_free(&d.g);
	guard_free(&r.g);
	arena_reset(&a);
}

Test(mgmt_emit, redaction_reads_names_and_values_unescaped)
{
	/* the config loader reads "api\u004bey" as apiKey (member names are unescaped), so the secret
	 * under it is redacted too; the marker names the unescaped value; "\u0065nv.X" is env.X */
	static const char s[] = "{\"providers\":[{\"name\":\"a\",\"provider\":\"openai\",\"api\\u004bey\":\"sk-escaped\"},"
				"{\"name\":\"b\",\"apiKey\":\"sk-\\u0041b\\n\"},{\"name\":\"c\",\"apiKey\":\"\\u0065nv.C_KEY\"}],"
				"\"admin\":{\"tok\\u0065n\":\"adm-escaped\"}}";
	struct arena a;
	arena_init(&a, NULL);
	struct doc d, r;
	doc_parse(&d, &a, s, sizeof(s) - 1);
	bool ok;
	struct str out = emit(&a, &d.js, NULL, true, &ok);
	cr_assert(ok);
	cr_assert_null(memmem(out.p, out.n, "sk-escaped", 10), "apiKey written \"api\\u004bey\" leaks: %.*s", (int)out.n, out.p);
	cr_assert_null(memmem(out.p, out.n, "adm-escaped", 11), "token written \"tok\\u0065n\" leaks: %.*s", (int)out.n, out.p);
	cr_assert_null(memmem(out.p, out.n, "\\u0041b", 7), "an escaped secret leaks: %.*s", (int)out.n, out.p);
	doc_parse(&r, &a, out.p, out.n);
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#0", "apiKey"), mark("sk-escaped"));
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#1", "apiKey"), mark("sk-Ab\n"), "the marker of the unescaped value");
	cr_assert_str_eq(AT(&r.js, &a, "providers", "#2", "apiKey"), "env.C_KEY", "an escaped env.NAME is still env.NAME");
	cr_assert_str_eq(AT(&r.js, &a, "admin", "token"), mark("adm-escaped"));
	guard_free(&d.g);
	guard_free(&r.g);
	arena_reset(&a);
}

Test(mgmt_emit, a_secret_json_str_cannot_read_is_not_written_out)
{
	/* jsmn takes "\ud800" (a lone surrogate); json_str refuses it, so the loader refuses such a
	 * file, but GET /api/config reads the file as it is on disk (hand-edited since the last load,
	 * say): a secret there must not come back as written */
	static const char s[] = "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"sk-lone-secret\\ud800\"}],"
				"\"admin\":{\"token\":\"adm-lone-secret\\udc00x\"}}";
	struct arena a;
	arena_init(&a, NULL);
	struct doc d;
	doc_parse(&d, &a, s, sizeof(s) - 1);
	bool ok;
	struct str out = emit(&a, &d.js, NULL, true, &ok);
	cr_expect_null(memmem(out.p, out.n, "sk-lone-secret", 14), "an apiKey with a lone surrogate leaks: %.*s", (int)out.n,
		       out.p);
	cr_expect_null(memmem(out.p, out.n, "adm-lone-secret", 15), "an admin token with a lone surrogate leaks: %.*s", (int)out.n,
		       out.p);
	guard_free(&d.g);
	arena_reset(&a);
}

/* ======================================================================== */
/* mgmt_emit: un-redaction against the stored document                      */
/* ======================================================================== */

Test(mgmt_emit, unredact_restores_the_stored_values)
{
	struct arena a;
	arena_init(&a, NULL);
	struct doc d, r, u;
	doc_parse(&d, &a, redact_doc, sizeof(redact_doc) - 1);
	struct str red = emit(&a, &d.js, NULL, true, NULL);
	doc_parse(&r, &a, red.p, red.n);
	bool ok;
	struct str back = emit(&a, &r.js, &d.js, false, &ok);
	cr_assert(ok, "every marker names a stored secret");
	doc_parse(&u, &a, back.p, back.n);
	cr_assert(same_json(&d.js, 0, &u.js, 0, &a), "redact then unredact is the original:\n%s\n%.*s", redact_doc, (int)back.n,
		  back.p);
	cr_assert_null(memmem(back.p, back.n, "redacted", 8), "a marker is never written: %.*s", (int)back.n, back.p);
	guard_free(&d.g);
	guard_free(&r.g);
	guard_free(&u.g);
	arena_reset(&a);
}

Test(mgmt_emit, unredact_with_edits_keeps_secrets_and_takes_changes)
{
	static const char old_s[] = "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"sk-old\",\"weight\":1}],\"admin\":{\"token\":\"t-old\"}}";
	char new_s[512];
	snprintf(new_s, sizeof(new_s),
		 "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"%s\",\"weight\":5,\"models\":[\"x\"]}],"
		 "\"admin\":{\"token\":\"%s\"},\"pricing\":{}}", mark("sk-old"), mark("t-old"));
	struct arena a;
	arena_init(&a, NULL);
	struct doc u, u2;
	bool ok;
	struct str out = unredact(&a, old_s, new_s, &ok, &u);
	cr_assert(ok, "%s", new_s);
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#0", "apiKey"), "sk-old");
	cr_assert_str_eq(AT(&u.js, &a, "admin", "token"), "t-old");
	cr_assert_not_null(memmem(out.p, out.n, "\"weight\":5", 10), "%.*s", (int)out.n, out.p);
	cr_assert_not_null(memmem(out.p, out.n, "\"models\":[\"x\"]", 14), "%.*s", (int)out.n, out.p);
	cr_assert_null(memmem(out.p, out.n, "redacted", 8));
	/* a new plain value replaces the stored one */
	out = unredact(&a, old_s, "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"sk-new\"}]}", &ok, &u2);
	cr_assert(ok);
	cr_assert_str_eq(AT(&u2.js, &a, "providers", "#0", "apiKey"), "sk-new");
	cr_assert_null(memmem(out.p, out.n, "sk-old", 6));
	guard_free(&u.g);
	guard_free(&u2.g);
	arena_reset(&a);
}

Test(mgmt_emit, unredact_refuses_a_marker_that_names_no_stored_secret)
{
	static const char old_s[] = "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"sk-old\",\"note\":\"plain-note\"}],"
				    "\"admin\":{\"token\":7,\"username\":\"ops\"},"
				    "\"governance\":{\"virtual_keys\":[{\"id\":\"h\",\"value_sha256\":\"00ff\"}]},\"x\":[\"sk-in-array\"]}";
	const char *real = mark("sk-old");
	char wrong[MGMT_MARKER_LEN + 1], upper[MGMT_MARKER_LEN + 1], seven[MGMT_MARKER_LEN], nine[MGMT_MARKER_LEN + 2];
	snprintf(wrong, sizeof(wrong), "%s", real);
	wrong[MGMT_MARKER_LEN - 1] = wrong[MGMT_MARKER_LEN - 1] == '0' ? '1' : '0'; /* one digit off */
	snprintf(upper, sizeof(upper), "%s", real);
	bool has_letter = false;
	for (char *p = upper + sizeof(MARK); *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A'), has_letter = true;
	snprintf(seven, sizeof(seven), "%s", real); /* 7 digits */
	snprintf(nine, sizeof(nine), "%s0", real);  /* 9 digits */
	const char *const names[] = {
		MARK,                 /* the bare prefix: no digits */
		MARK "-",             /* a dash, no digits */
		wrong,                /* digits off by one */
		has_letter ? upper : MARK "-XYZ", /* upper-case digits */
		seven, nine,
		mark("sk-never-stored"),    /* a secret that is not in the document */
		mark("plain-note"),         /* stored, but not under a secret's name */
		mark("ops"),
		mark("7"),                  /* stored under a secret's name, but not as a string */
		mark("00ff"),               /* a value_sha256 is not a secret */
		mark("sk-in-array"),        /* an array element is under no name */
		mark("apiKey"),             /* a member name is not a value */
	};
	struct arena a;
	arena_init(&a, NULL);
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		static const char *const where[] = { "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"%s\"}]}",
			"{\"admin\":{\"token\":\"%s\"}}", "{\"deep\":[[{\"value\":\"%s\"}]]}" };
		for (size_t w = 0; w < ARRAY_LEN(where); w++) {
			char new_s[512];
			snprintf(new_s, sizeof(new_s), where[w], names[i]);
			bool ok = true;
			unredact(&a, old_s, new_s, &ok, NULL);
			cr_assert_not(ok, "a marker that names no stored secret must fail: %s", new_s);
		}
	}
	/* the real one, for contrast */
	char new_s[256];
	snprintf(new_s, sizeof(new_s), "{\"admin\":{\"token\":\"%s\"}}", real);
	bool ok = false;
	unredact(&a, old_s, new_s, &ok, NULL);
	cr_assert(ok);
	arena_reset(&a);
}

Test(mgmt_emit, unredact_refuses_a_marker_with_bytes_after_it)
{
	/* markers are compared after unescaping: "<marker>\u0000x" is not the marker */
	static const char old_s[] = "{\"apiKey\":\"sk-old\"}";
	char new_s[256];
	struct arena a;
	arena_init(&a, NULL);
	bool ok = true;
	snprintf(new_s, sizeof(new_s), "{\"apiKey\":\"%sx\"}", mark("sk-old"));
	unredact(&a, old_s, new_s, &ok, NULL);
	cr_expect_not(ok, "a marker with a byte after it: %s", new_s);
	ok = true;
	snprintf(new_s, sizeof(new_s), "{\"apiKey\":\"%s\\u0000x\"}", mark("sk-old"));
	struct str out = unredact(&a, old_s, new_s, &ok, NULL);
	cr_expect_not(ok, "a marker followed by \\u0000 and more is taken for the marker: %s -> %.*s", new_s, (int)out.n, out.p);
	arena_reset(&a);
}

Test(mgmt_emit, without_a_stored_document_a_marker_is_refused)
{
	/* what mgmt_commit checks: a marker is never written into the file */
	struct arena a;
	arena_init(&a, NULL);
	char new_s[256];
	bool ok = true;
	snprintf(new_s, sizeof(new_s), "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"%s\"}]}", mark("sk-x"));
	unredact(&a, NULL, new_s, &ok, NULL);
	cr_assert_not(ok, "%s", new_s);
	ok = true;
	unredact(&a, NULL, "{\"apiKey\":\"" MARK "\"}", &ok, NULL);
	cr_assert_not(ok, "the bare prefix");
	ok = false;
	unredact(&a, NULL, "{\"apiKey\":\"sk-x\",\"note\":\"" MARK "\"}", &ok, NULL);
	cr_assert(ok, "no marker under a secret's name");
	arena_reset(&a);
}

Test(mgmt_emit, a_marker_resolves_wherever_its_secret_stood)
{
	/* the stored secret a marker names is found anywhere in the document: an entry copied,
	 * renamed, reordered, moved to another member or block keeps its key */
	static const char old_s[] = "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"sk-a\",\"keys\":[{\"value\":\"k-one\"}]}],"
				    "\"admin\":{\"token\":\"t-adm\"},\"governance\":{\"virtual_keys\":[{\"id\":\"v\",\"value\":\"sk-bf-v\"}]}}";
	char new_s[1024];
	snprintf(new_s, sizeof(new_s),
		 "{\"providers\":[{\"name\":\"renamed\",\"keys\":[{\"value\":\"%s\"}],\"apiKey\":\"%s\"},"
		 "{\"name\":\"copy\",\"apiKey\":\"%s\",\"api_key\":\"%s\"}],"
		 "\"other\":{\"deep\":[{\"token\":\"%s\"}]},\"admin\":{\"password_hash\":\"%s\"}}",
		 mark("sk-a"), mark("k-one"), mark("sk-a"), mark("sk-bf-v"), mark("t-adm"), mark("k-one"));
	struct arena a;
	arena_init(&a, NULL);
	struct doc u;
	bool ok = false;
	struct str out = unredact(&a, old_s, new_s, &ok, &u);
	cr_assert(ok, "%s", new_s);
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#0", "keys", "#0", "value"), "sk-a", "moved from apiKey to keys[]");
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#0", "apiKey"), "k-one", "moved from keys[] to apiKey");
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#1", "apiKey"), "sk-a", "a copied entry");
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#1", "api_key"), "sk-bf-v", "from another block");
	cr_assert_str_eq(AT(&u.js, &a, "other", "deep", "#0", "token"), "t-adm", "into a new block");
	cr_assert_str_eq(AT(&u.js, &a, "admin", "password_hash"), "k-one");
	cr_assert_null(memmem(out.p, out.n, "redacted", 8), "%.*s", (int)out.n, out.p);
	guard_free(&u.g);
	/* map form to array form and back */
	static const char map_s[] = "{\"providers\":{\"mock\":{\"provider\":\"openai\",\"apiKey\":\"sk-m\"}}}";
	snprintf(new_s, sizeof(new_s), "{\"providers\":[{\"name\":\"mock\",\"provider\":\"openai\",\"apiKey\":\"%s\"}]}", mark("sk-m"));
	unredact(&a, map_s, new_s, &ok, &u);
	cr_assert(ok);
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#0", "apiKey"), "sk-m");
	guard_free(&u.g);
	arena_reset(&a);
}

Test(mgmt_emit, unredact_accepts_markers_written_with_unicode_escapes)
{
	/* "sk-\u2026redacted-..." is the same JSON string as the marker (ASCII-only encoders write it
	 * so); any character may be escaped */
	static const char old_s[] = "{\"admin\":{\"token\":\"t-old\"},\"providers\":[{\"name\":\"a\",\"apiKey\":\"sk-old\"}]}";
	const char *mt = mark("t-old"), *mk = mark("sk-old");
	char new_s[512];
	/* token: "sk-\u2026redacted-<digits>"; apiKey: every ASCII byte of the marker escaped too */
	char esc_k[256];
	size_t o = 0;
	for (const char *p = mk; *p;) {
		if (!strncmp(p, "\xe2\x80\xa6", 3)) {
			o += (size_t)snprintf(esc_k + o, sizeof(esc_k) - o, "\\u2026");
			p += 3;
		} else {
			o += (size_t)snprintf(esc_k + o, sizeof(esc_k) - o, "\\u%04x", (unsigned char)*p++);
		}
	}
	snprintf(new_s, sizeof(new_s), "{\"admin\":{\"token\":\"sk-\\u2026redacted%s\"},"
		 "\"providers\":[{\"name\":\"a\",\"apiKey\":\"%s\"}]}", mt + strlen(MARK), esc_k);
	struct arena a;
	arena_init(&a, NULL);
	struct doc u;
	bool ok = false;
	struct str out = unredact(&a, old_s, new_s, &ok, &u);
	cr_assert(ok, "%s", new_s);
	cr_assert_str_eq(AT(&u.js, &a, "admin", "token"), "t-old", "the escaped marker became the admin token: %.*s", (int)out.n,
			 out.p);
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#0", "apiKey"), "sk-old", "%.*s", (int)out.n, out.p);
	guard_free(&u.g);
	arena_reset(&a);
}

Test(mgmt_emit, unredact_follows_the_entry_not_its_position)
{
	/* the stored list [a, b]; the new one drops a and keeps b with b's marker: b's key is b's */
	static const char old_s[] = "{\"providers\":[{\"name\":\"a\",\"apiKey\":\"sk-a\"},{\"name\":\"b\",\"apiKey\":\"sk-b\"}]}";
	char new_s[256];
	snprintf(new_s, sizeof(new_s), "{\"providers\":[{\"name\":\"b\",\"apiKey\":\"%s\"}]}", mark("sk-b"));
	struct arena a;
	arena_init(&a, NULL);
	struct doc u;
	bool ok = false;
	unredact(&a, old_s, new_s, &ok, &u);
	cr_assert(ok);
	cr_assert_str_eq(AT(&u.js, &a, "providers", "#0", "apiKey"), "sk-b", "provider b was given another key");
	guard_free(&u.g);
	arena_reset(&a);
}

Test(mgmt_emit, unredact_under_long_and_escaped_member_names)
{
	/* providers in map form are keyed by name: names of 63 and 70 bytes sharing 63 bytes; each
	 * marker finds its own secret. Secret names written with escapes count on both sides. */
	char name63[64], name70[71];
	memset(name63, 'p', 63);
	name63[63] = 0;
	memset(name70, 'p', 70);
	name70[70] = 0;
	char old_s[512], new_s[1024];
	snprintf(old_s, sizeof(old_s), "{\"providers\":{\"%s\":{\"apiKey\":\"sk-short\"},\"%s\":{\"apiKey\":\"sk-long\"},"
		 "\"e\":{\"api\\u004bey\":\"sk-esc\"}}}", name63, name70);
	snprintf(new_s, sizeof(new_s), "{\"providers\":{\"%s\":{\"apiKey\":\"%s\"},\"%s\":{\"apiKey\":\"%s\"},"
		 "\"e\":{\"api\\u004bey\":\"%s\"},\"f\":{\"apiKey\":\"%s\"}}}", name70, mark("sk-long"), name63, mark("sk-short"),
		 mark("sk-esc"), mark("sk-esc"));
	struct arena a;
	arena_init(&a, NULL);
	struct doc u;
	bool ok = false;
	struct str out = unredact(&a, old_s, new_s, &ok, &u);
	cr_assert(ok, "%s", new_s);
	cr_assert_str_eq(AT(&u.js, &a, "providers", name70, "apiKey"), "sk-long");
	cr_assert_str_eq(AT(&u.js, &a, "providers", name63, "apiKey"), "sk-short");
	cr_assert_str_eq(AT(&u.js, &a, "providers", "e", "apiKey"), "sk-esc", "under \"api\\u004bey\" on both sides");
	cr_assert_str_eq(AT(&u.js, &a, "providers", "f", "apiKey"), "sk-esc", "stored under \"api\\u004bey\"");
	cr_assert_null(memmem(out.p, out.n, "redacted", 8), "%.*s", (int)out.n, out.p);
	guard_free(&u.g);
	arena_reset(&a);
}

Test(mgmt_emit, unredact_array_positions_and_nesting)
{
	static const char old_s[] = "{\"keys\":[{\"value\":\"k0\"},{\"value\":\"k1\"},{\"value\":\"k2\"}],\"x\":[[{\"token\":\"deep\"}]]}";
	char new_s[512];
	snprintf(new_s, sizeof(new_s), "{\"keys\":[{\"value\":\"%s\"},{\"value\":\"fresh\"},{\"value\":\"%s\"}],"
		 "\"x\":[[{\"token\":\"%s\"}]]}", mark("k0"), mark("k2"), mark("deep"));
	struct arena a;
	arena_init(&a, NULL);
	struct doc u;
	bool ok = false;
	unredact(&a, old_s, new_s, &ok, &u);
	cr_assert(ok);
	cr_assert_str_eq(AT(&u.js, &a, "keys", "#0", "value"), "k0");
	cr_assert_str_eq(AT(&u.js, &a, "keys", "#1", "value"), "fresh");
	cr_assert_str_eq(AT(&u.js, &a, "keys", "#2", "value"), "k2");
	cr_assert_str_eq(AT(&u.js, &a, "x", "#0", "#0", "token"), "deep");
	guard_free(&u.g);
	arena_reset(&a);
}

Test(mgmt_emit, a_secret_stored_with_escapes_is_written_back_as_stored)
{
	static const char old_s[] = "{\"apiKey\":\"sk-\\u00e9t\\u00e9\\n\\\"q\"}";
	struct arena a;
	arena_init(&a, NULL);
	struct doc d, r;
	doc_parse(&d, &a, old_s, sizeof(old_s) - 1);
	struct str red = emit(&a, &d.js, NULL, true, NULL);
	doc_parse(&r, &a, red.p, red.n);
	cr_assert_str_eq(AT(&r.js, &a, "apiKey"), mark("sk-\xc3\xa9t\xc3\xa9\n\"q"), "%.*s", (int)red.n, red.p);
	bool ok;
	struct str back = emit(&a, &r.js, &d.js, false, &ok);
	cr_assert(ok);
	cr_assert(str_eq(back, old_s), "got %.*s", (int)back.n, back.p);
	guard_free(&d.g);
	guard_free(&r.g);
	arena_reset(&a);
}

Test(mgmt_emit, env_names_and_non_secret_markers_pass_through)
{
	static const char old_s[] = "{\"apiKey\":\"sk-old\",\"note\":\"x\"}";
	char new_s[512];
	snprintf(new_s, sizeof(new_s), "{\"apiKey\":\"env.NEW_KEY\",\"note\":\"" MARK "\",\"note2\":\"%s\","
		 "\"headers\":{\"Authorization\":\"%s\"},\"list\":[\"%s\"]}", mark("sk-old"), mark("sk-old"), mark("sk-old"));
	struct arena a;
	arena_init(&a, NULL);
	bool ok = false;
	struct str out = unredact(&a, old_s, new_s, &ok, NULL);
	cr_assert(ok);
	cr_assert(str_eq(out, new_s), "a marker under a name that is not a secret's is data:\n%s\n%.*s", new_s, (int)out.n, out.p);
	arena_reset(&a);
}
/* ======================================================================== */
/* PBKDF2-HMAC-SHA256                                                       */
/* ======================================================================== */

static void pbkdf2_expect(const char *pw, const char *salt, unsigned iter, const char *hex32)
{
	unsigned char dk[32];
	char got[65];
	mgmt_pbkdf2(pw, (const unsigned char *)salt, strlen(salt), iter, dk);
	mgmt_hex(got, dk, 32);
	cr_assert_str_eq(got, hex32, "PBKDF2-HMAC-SHA256(P=\"%s\", S=\"%s\", c=%u)", pw, salt, iter);
}

Test(mgmt_pbkdf2, rfc7914_section11_vectors, .timeout = 60)
{
	/* RFC 7914 section 11 (dkLen 64: the first 32 bytes are the first block) */
	pbkdf2_expect("passwd", "salt", 1, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
	pbkdf2_expect("Password", "NaCl", 80000, "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56");
}

Test(mgmt_pbkdf2, more_vectors, .timeout = 60)
{
	/* the RFC 6070 inputs with SHA-256 (as published in many test suites; checked with
	 * Python's hashlib.pbkdf2_hmac) */
	pbkdf2_expect("password", "salt", 1, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
	pbkdf2_expect("password", "salt", 2, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
	pbkdf2_expect("password", "salt", 4096, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
	pbkdf2_expect("", "salt", 3, "5ddf839afa2d5fb4be56e1a0f48917617559bef61ec122bfca1c7f75ac8f401d");
	/* a password longer than the SHA-256 block (the HMAC key is hashed first) */
	char longpw[101];
	memset(longpw, 'k', 100);
	longpw[100] = 0;
	pbkdf2_expect(longpw, "salt", 2, "2c1357648009149f57e4d5544c3435bbca87a6b231300fa3abb2a89b50f56ec3");
}

/* ======================================================================== */
/* password hash lines                                                      */
/* ======================================================================== */

Test(mgmt_pw, fresh_hash_checks_and_rejects_wrong_passwords, .timeout = 120)
{
	char line[256], line2[256];
	cr_assert(mgmt_pw_hash("s3cret pass", line, sizeof(line)));
	cr_assert_eq(strncmp(line, "pbkdf2-sha256$", 14), 0, "%s", line);
	unsigned iter;
	char salt[200], hash[200];
	cr_assert_eq(sscanf(line, "pbkdf2-sha256$%u$%199[^$]$%199s", &iter, salt, hash), 3, "%s", line);
	cr_assert_geq(iter, 100000, "too few iterations: %u", iter);
	cr_assert_eq(strlen(salt), 32, "salt %s", salt);
	cr_assert_eq(strspn(salt, "0123456789abcdef"), 32);
	cr_assert_eq(strlen(hash), 64, "hash %s", hash);
	cr_assert_eq(strspn(hash, "0123456789abcdef"), 64);

	cr_assert(mgmt_pw_check(line, "s3cret pass"));
	cr_assert_not(mgmt_pw_check(line, "s3cret pasS"));
	cr_assert_not(mgmt_pw_check(line, "s3cret pas"));
	cr_assert_not(mgmt_pw_check(line, "s3cret pass "));
	cr_assert_not(mgmt_pw_check(line, ""));

	cr_assert(mgmt_pw_hash("s3cret pass", line2, sizeof(line2)));
	cr_assert_str_neq(line, line2, "two hashes of one password share a salt");
	cr_assert(mgmt_pw_check(line2, "s3cret pass"));
}

/* "pbkdf2-sha256$1$<hex "salt">$<PBKDF2(passwd, salt, 1)>" (RFC 7914): cheap lines with a known answer */
#define VEC_HASH "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
#define VEC_LINE "pbkdf2-sha256$1$73616c74$" VEC_HASH

Test(mgmt_pw, known_line)
{
	cr_assert(mgmt_pw_check(VEC_LINE, "passwd"));
	cr_assert_not(mgmt_pw_check(VEC_LINE, "passwe"));
	cr_assert_not(mgmt_pw_check("pbkdf2-sha256$2$73616c74$" VEC_HASH, "passwd"), "the iteration count counts");
	cr_assert_not(mgmt_pw_check("pbkdf2-sha256$1$73616c75$" VEC_HASH, "passwd"), "the salt counts");
}

Test(mgmt_pw, malformed_lines_are_rejected)
{
	static const char *const bad[] = {
		"",
		"pbkdf2-sha256",
		"pbkdf2-sha256$",
		"pbkdf2-sha256$1$",
		"pbkdf2-sha256$1$73616c74",
		"pbkdf2-sha256$1$73616c74$",
		"pbkdf2-sha512$1$73616c74$" VEC_HASH,
		"PBKDF2-SHA256$1$73616c74$" VEC_HASH,
		"pbkdf2-sha256$0$73616c74$" VEC_HASH,        /* no iterations */
		"pbkdf2-sha256$10000001$73616c74$" VEC_HASH, /* over the cap */
		"pbkdf2-sha256$x$73616c74$" VEC_HASH,
		"pbkdf2-sha256$1$$" VEC_HASH,                /* empty salt */
		"pbkdf2-sha256$1$7361$6c74$" VEC_HASH,
		"pbkdf2-sha256$1$73616c7$" VEC_HASH,         /* odd salt length */
		"pbkdf2-sha256$1$73616C74$" VEC_HASH,        /* upper-case hex */
		"pbkdf2-sha256$1$73616c74$55AC046E56E3089FEC1691C22544B605F94185216DDE0465E68B9D57C20DACBC",
		"pbkdf2-sha256$1$73616c74$55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacb", /* 63 */
		"pbkdf2-sha256$1$73616c74$55ac046e",
		"pbkdf2-sha256$1$zz$" VEC_HASH,
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		cr_assert_not(mgmt_pw_check(bad[i], "passwd"), "accepted: %s", bad[i]);
	/* a salt longer than the 64 bytes the parser takes */
	char longsalt[400];
	int n = snprintf(longsalt, sizeof(longsalt), "pbkdf2-sha256$1$");
	for (int i = 0; i < 130; i++)
		longsalt[n++] = 'a';
	snprintf(longsalt + n, sizeof(longsalt) - (size_t)n, "$%s", VEC_HASH);
	cr_assert_not(mgmt_pw_check(longsalt, "passwd"), "a 65-byte salt");
}

Test(mgmt_pw, trailing_characters_after_the_hash_are_rejected)
{
	cr_assert(mgmt_pw_check(VEC_LINE, "passwd"), "the line itself");
	cr_assert_not(mgmt_pw_check(VEC_LINE "00", "passwd"), "a 66-digit hash is not a 32-byte key");
	cr_assert_not(mgmt_pw_check(VEC_LINE "0", "passwd"), "a 65-digit hash");
	cr_assert_not(mgmt_pw_check(VEC_LINE "$junk", "passwd"), "a line with a fifth field");
	cr_assert_not(mgmt_pw_check(VEC_LINE " ", "passwd"), "trailing space");
	cr_assert_not(mgmt_pw_check(VEC_LINE "\n", "passwd"), "a trailing newline");
	cr_assert_not(mgmt_pw_check(VEC_LINE "x", "passwd"), "a trailing letter");
}

Test(mgmt_pw, unhex)
{
	unsigned char b[4];
	cr_assert_eq(mgmt_unhex("00ff7A", 6, b, sizeof(b)), 3);
	cr_assert_eq(b[0], 0x00);
	cr_assert_eq(b[1], 0xff);
	cr_assert_eq(b[2], 0x7a);
	cr_assert_eq(mgmt_unhex("abc", 3, b, sizeof(b)), -1, "odd length");
	cr_assert_eq(mgmt_unhex("0011223344", 10, b, sizeof(b)), -1, "longer than the buffer");
	cr_assert_eq(mgmt_unhex("0g", 2, b, sizeof(b)), -1);
	cr_assert_eq(mgmt_unhex("", 0, b, sizeof(b)), 0);
}

/* ======================================================================== */
/* the session cookie                                                       */
/* ======================================================================== */

static struct str cookie_of(struct guard *g, const char *h)
{
	size_t n = strlen(h);
	char *p = guard_put(g, h, n);
	return mgmt_cookie((struct str){ p, n });
}

#define COOKIE_EQ(h, want)                                                                     \
	do {                                                                                   \
		struct guard g_;                                                               \
		struct str c_ = cookie_of(&g_, (h));                                           \
		cr_assert(c_.n == strlen(want) && !memcmp(c_.p, (want), c_.n), "Cookie: %s -> \"%.*s\", want \"%s\"", \
			  (h), (int)c_.n, c_.p, (want));                                       \
		guard_free(&g_);                                                               \
	} while (0)

Test(mgmt_cookie, parsing)
{
	COOKIE_EQ("bifrost_session=abc", "abc");
	COOKIE_EQ("a=b; bifrost_session=abc; c=d", "abc");
	COOKIE_EQ("a=b;bifrost_session=abc;c=d", "abc");
	COOKIE_EQ("bifrost_session=abc def", "abc");
	COOKIE_EQ("bifrost_session=one; bifrost_session=two", "one");
	COOKIE_EQ("xbifrost_session=abc", "");
	COOKIE_EQ("x=bifrost_session=abc", "");
	COOKIE_EQ("my_bifrost_session=abc; bifrost_session=real", "real");
	COOKIE_EQ("bifrost_session=", "");
	COOKIE_EQ("a=b; bifrost_session=", "");
	COOKIE_EQ("bifrost_session", "");
	COOKIE_EQ("bifrost_sessio", "");
	COOKIE_EQ("", "");
	COOKIE_EQ("BIFROST_SESSION=abc", "");
	char tok[65];
	memset(tok, 'f', 64);
	tok[64] = 0;
	char h[128];
	snprintf(h, sizeof(h), "theme=dark; bifrost_session=%s", tok);
	COOKIE_EQ(h, tok);
	/* an empty header (no bytes at all) */
	cr_assert_eq(mgmt_cookie((struct str){ NULL, 0 }).n, 0);
}

Test(mgmt_cookie, token_compare)
{
	cr_assert(mgmt_token_eq(STR("secret"), "secret"));
	cr_assert_not(mgmt_token_eq(STR("secre"), "secret"));
	cr_assert_not(mgmt_token_eq(STR("secrets"), "secret"));
	cr_assert_not(mgmt_token_eq(STR("Secret"), "secret"));
	cr_assert_not(mgmt_token_eq(STR(""), ""), "an empty token matches nothing");
	cr_assert_not(mgmt_token_eq(STR("x"), ""));
	cr_assert_not(mgmt_token_eq((struct str){ "secret\0", 7 }, "secret"));
}

/* ======================================================================== */
/* the 400 answer's problem list                                            */
/* ======================================================================== */

Test(mgmt_problems, list_is_valid_json)
{
	struct mgmt_job j;
	memset(&j, 0, sizeof(j));
	arena_init(&j.a, NULL);
	sb_init(&j.out, &j.a, 64);
	sb_init(&j.hdr, &j.a, 64);
	mgmt_problems(&j, STR("  - provider \"x\": unknown kind \"no\\such\"\n  - a\tb\n\n  -  \n  - last"));
	cr_assert_eq(j.status, 400);
	struct arena a;
	arena_init(&a, NULL);
	struct doc d;
	doc_parse(&d, &a, j.out.p, j.out.len);
	int e = mgmt_member(&d.js, 0, "error"), p = mgmt_member(&d.js, e, "problems");
	cr_assert(p >= 0 && d.js.tok[p].type == JSMN_ARRAY, "%.*s", (int)j.out.len, j.out.p);
	cr_assert_eq(d.js.tok[p].size, 3, "%.*s", (int)j.out.len, j.out.p);
	cr_assert_str_eq(json_str(&d.js, &a, p + 1, NULL), "provider \"x\": unknown kind \"no\\such\"");
	cr_assert_str_eq(json_str(&d.js, &a, p + 2, NULL), "a\tb");
	cr_assert_str_eq(json_str(&d.js, &a, p + 3, NULL), "last");
	guard_free(&d.g);
	arena_reset(&a);
	arena_reset(&j.a);
}

/* ======================================================================== */
/* the log store: percentiles, the latency filter                           */
/* ======================================================================== */

/* ldb_agg_put of n latencies 1..n ms (stored in µs), added in a scrambled order. */
static void pct_of(size_t n, double *p50, double *p99, long long *count)
{
	struct ldb_agg g;
	memset(&g, 0, sizeof(g));
	for (size_t i = 0; i < n; i++)
		ldb_agg_add(&g, 200, (int64_t)((i * 7919) % n + 1) * 1000, 1, 1, 0);
	struct arena a;
	arena_init(&a, NULL);
	struct sb b;
	sb_init(&b, &a, 256);
	sb_puts(&b, "{");
	ldb_agg_put(&b, &g);
	sb_puts(&b, "}");
	cr_assert_null(g.lat, "the latencies are freed");
	struct doc d;
	doc_parse(&d, &a, b.p, b.len);
	int v50 = mgmt_member(&d.js, 0, "p50_ms"), v99 = mgmt_member(&d.js, 0, "p99_ms"), vc = mgmt_member(&d.js, 0, "count");
	cr_assert(v50 > 0 && v99 > 0 && vc > 0, "%.*s", (int)b.len, b.p);
	*p50 = strtod(d.js.s + d.js.tok[v50].start, NULL);
	*p99 = strtod(d.js.s + d.js.tok[v99].start, NULL);
	*count = strtoll(d.js.s + d.js.tok[vc].start, NULL, 10);
	guard_free(&d.g);
	arena_reset(&a);
}

Test(ldb_agg, nearest_rank_percentiles)
{
	/* the k-th smallest of 1..n ms is k: p = ceil(q n) */
	static const struct { size_t n; double p50, p99; } c[] = {
		{ 1, 1, 1 }, { 2, 1, 2 }, { 3, 2, 3 }, { 4, 2, 4 }, { 8, 4, 8 }, { 10, 5, 10 }, { 99, 50, 99 },
		{ 100, 50, 99 }, { 101, 51, 100 }, { 200, 100, 198 }, { 1000, 500, 990 }, { 1001, 501, 991 },
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++) {
		double p50, p99;
		long long count;
		pct_of(c[i].n, &p50, &p99, &count);
		cr_assert_eq(count, (long long)c[i].n);
		cr_assert(p50 == c[i].p50, "n = %zu: p50 %.3f, want %.3f (nearest rank)", c[i].n, p50, c[i].p50);
		cr_assert(p99 == c[i].p99, "n = %zu: p99 %.3f, want %.3f (nearest rank)", c[i].n, p99, c[i].p99);
	}
	double p50, p99;
	long long count;
	pct_of(0, &p50, &p99, &count);
	cr_assert(count == 0 && p50 == 0 && p99 == 0, "no rows: 0, 0");
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

Test(ldb_select, kth_smallest_against_a_sort)
{
	/* random arrays (few distinct values, many, all equal, sorted, reversed, extremes): every k */
	uint64_t rng = 0x9E3779B97F4A7C15ULL;
	int64_t *v = malloc(300 * sizeof(*v)), *w = malloc(300 * sizeof(*w)), *sorted = malloc(300 * sizeof(*sorted));
	cr_assert(v && w && sorted);
	for (int round = 0; round < 400; round++) {
		size_t n = 1 + rng_next(&rng) % (round < 200 ? 12 : 300);
		int shape = round % 6;
		for (size_t i = 0; i < n; i++) {
			uint64_t r = rng_next(&rng);
			v[i] = shape == 0 ? (int64_t)(r % 3) : shape == 1 ? (int64_t)(r % 1000000) - 500000 : shape == 2 ? 7
			     : shape == 3 ? (int64_t)i : shape == 4 ? (int64_t)(n - i) : (r & 1 ? INT64_MAX : INT64_MIN);
		}
		memcpy(sorted, v, n * sizeof(*v));
		qsort(sorted, n, sizeof(*sorted), cmp_i64);
		for (size_t k = 0; k < n; k++) {
			memcpy(w, v, n * sizeof(*v));
			int64_t got = ldb_select(w, n, k);
			cr_assert_eq(got, sorted[k], "round %d (shape %d), n %zu, k %zu: %lld, want %lld", round, shape, n, k,
				     (long long)got, (long long)sorted[k]);
			qsort(w, n, sizeof(*w), cmp_i64);
			cr_assert(!memcmp(w, sorted, n * sizeof(*w)), "ldb_select lost or made up values (n %zu, k %zu)", n, k);
		}
	}
	free(v);
	free(w);
	free(sorted);
}

Test(ldb_agg, percentiles_of_random_latencies)
{
	/* p50 and p99 as ldb_agg_put reports them (µs to ms, %.3f) against a sort */
	uint64_t rng = 12345;
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + rng_next(&rng) % (round % 2 ? 5000 : 40);
		struct ldb_agg g;
		memset(&g, 0, sizeof(g));
		int64_t *ref = malloc(n * sizeof(*ref));
		cr_assert_not_null(ref);
		for (size_t i = 0; i < n; i++) {
			ref[i] = (int64_t)(rng_next(&rng) % (round % 3 ? 100000000 : 50)) * (round % 5 ? 1 : 1000);
			ldb_agg_add(&g, 200, ref[i], 0, 0, 0);
		}
		qsort(ref, n, sizeof(*ref), cmp_i64);
		struct arena a;
		arena_init(&a, NULL);
		struct sb b;
		sb_init(&b, &a, 256);
		sb_puts(&b, "{");
		ldb_agg_put(&b, &g);
		sb_puts(&b, "}");
		char want[128];
		snprintf(want, sizeof(want), "\"p50_ms\":%.3f,\"p99_ms\":%.3f", (double)ref[(n + 1) / 2 - 1] / 1000,
			 (double)ref[(n * 99 + 99) / 100 - 1] / 1000);
		cr_assert_not_null(memmem(b.p, b.len, want, strlen(want)), "n %zu: %.*s, want %s", n, (int)b.len, b.p, want);
		free(ref);
		arena_reset(&a);
	}
}

Test(ldb_where, min_latency_ms_is_clamped)
{
	static const struct { const char *v, *want; } c[] = {
		{ "300", " AND latency_us >= 300000" },
		{ "0", " AND latency_us >= 0" },
		{ "-5", " AND latency_us >= 0" },
		{ "abc", " AND latency_us >= 0" },
		{ "9223372036854775807", " AND latency_us >= 9223372036854775000" },
		{ "99999999999999999999", " AND latency_us >= 9223372036854775000" },
		{ "18446744073709552", " AND latency_us >= 9223372036854775000" },
		{ "9223372036854775", " AND latency_us >= 9223372036854775000" },
		{ "9223372036854776", " AND latency_us >= 9223372036854775000" },
		{ "-99999999999999999999", " AND latency_us >= 0" },
		{ "-9223372036854775808", " AND latency_us >= 0" },
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++) {
		struct ldb_filter f;
		memset(&f, 0, sizeof(f));
		snprintf(f.v[LF_MIN_MS], sizeof(f.v[LF_MIN_MS]), "%s", c[i].v);
		struct arena a;
		arena_init(&a, NULL);
		struct sb sql;
		sb_init(&sql, &a, 256);
		const char *args[LF_N];
		int nargs = -1;
		ldb_where(&f, &sql, args, &nargs);
		cr_assert_not(sql.oom);
		cr_assert_eq(nargs, 0);
		size_t wn = strlen(c[i].want);
		cr_assert(sql.len >= wn && !memcmp(sql.p + sql.len - wn, c[i].want, wn), "min_latency_ms=%s: %.*s", c[i].v,
			  (int)sql.len, sql.p);
		arena_reset(&a);
	}
}
