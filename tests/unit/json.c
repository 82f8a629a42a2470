/* Unit tests for section 4 (json_): validation on top of jsmn, lookups, escaping. */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

/* Parse `s` placed right before a guard page; the mapping stays alive in *g. */
static int parse_at(struct json *j, struct arena *a, struct guard *g, const char *s, size_t n)
{
	char *p = guard_put(g, s, n);
	return json_parse(j, a, p, n);
}

/* Parse a NUL-terminated text in a throwaway arena + guard page; returns rc. */
static int parse_rc(const char *s, size_t n, const char **err)
{
	struct arena a;
	struct json j;
	struct guard g;
	arena_init(&a, NULL);
	int rc = parse_at(&j, &a, &g, s, n);
	if (err)
		*err = j.err;
	guard_free(&g);
	arena_reset(&a);
	return rc;
}

static void expect_valid(const char *s)
{
	const char *err = NULL;
	int rc = parse_rc(s, strlen(s), &err);
	cr_expect_eq(rc, 0, "valid document rejected (%s): %s", err ? err : "?", s);
}

static void expect_invalid(const char *s, size_t n)
{
	const char *err = NULL;
	int rc = parse_rc(s, n, &err);
	cr_expect_eq(rc, -EBADMSG, "invalid document accepted (rc %d): %.*s", rc, (int)n, s);
	if (rc == -EBADMSG)
		cr_expect_not_null(err, "j->err must be set on -EBADMSG: %.*s", (int)n, s);
}

#define BAD(lit) expect_invalid((lit), sizeof(lit) - 1)

Test(json_parse, valid_documents)
{
	expect_valid("{}");
	expect_valid(" \t\r\n{ \t\r\n} \t\r\n");
	expect_valid("{\"a\":1}");
	expect_valid("{\"a\" : 1 , \"b\" : [ ] , \"c\" : { } }");
	expect_valid("{\"a\":[1,2,3],\"b\":{\"c\":{\"d\":[true,false,null]}},\"e\":\"x\"}");
	expect_valid("{\"a\":[[],[[]],{},[{}],[{\"b\":[]}]]}");
	expect_valid("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\ud83d\\ude00\"}");
	expect_valid("{\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}");
	expect_valid("{\"del\":\"\x7f\"}");
	expect_valid("{\"\":\"\"}");
	expect_valid("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
		     "\"stream\":true,\"temperature\":0.7,\"max_tokens\":100}");
}

Test(json_parse, tokens_and_spans)
{
	struct arena a;
	struct json j;
	struct guard g;
	arena_init(&a, NULL);
	const char doc[] = "{\"k\": \"v\", \"n\": [1, {\"x\": null}]}";
	cr_assert_eq(parse_at(&j, &a, &g, doc, sizeof(doc) - 1), 0);
	cr_assert_eq(j.ntok, 9);
	cr_assert_eq(j.tok[0].type, JSMN_OBJECT);
	cr_assert_eq(j.tok[0].size, 2);
	cr_assert(str_eq(json_raw(&j, 1), "\"k\""));
	cr_assert(str_eq(json_raw(&j, 2), "\"v\""));
	cr_assert(str_eq(json_raw(&j, 4), "[1, {\"x\": null}]"));
	cr_assert(str_eq(json_raw(&j, 8), "null"));
	cr_assert_eq(json_skip(&j, 0), 9);
	cr_assert_eq(json_skip(&j, 2), 3);
	cr_assert_eq(json_skip(&j, 4), 9);
	cr_assert_eq(json_skip(&j, 6), 9);
	guard_free(&g);
	arena_reset(&a);
}

Test(json_parse, many_tokens_grow_the_token_array)
{
	/* more tokens than the initial 64 and than 64*4: the token array is regrown */
	struct sb s;
	struct arena a;
	arena_init(&a, NULL);
	sb_init(&s, &a, 64);
	sb_puts(&s, "{\"a\":[");
	for (int i = 0; i < 5000; i++)
		sb_printf(&s, "%s%d", i ? "," : "", i);
	sb_puts(&s, "],\"z\":\"end\"}");
	cr_assert_not(s.oom);
	struct json j;
	struct guard g;
	cr_assert_eq(parse_at(&j, &a, &g, s.p, s.len), 0, "%s", j.err);
	cr_assert_eq(j.ntok, 5005);
	static const char *const k[] = { "z", "a" };
	int v[2];
	cr_assert_eq(json_obj_get(&j, 0, k, 2, v, NULL), 0);
	cr_assert_eq(v[0], 5004);
	cr_assert_eq(v[1], 2);
	cr_assert(str_eq(json_raw(&j, 5002), "4999"));
	guard_free(&g);
	arena_reset(&a);
}

Test(json_parse, root_must_be_an_object)
{
	BAD("[]");
	BAD("[1,2]");
	BAD("\"str\"");
	BAD("1");
	BAD("true");
	BAD("null");
	BAD("");
	BAD("   ");
}

Test(json_parse, missing_commas)
{
	BAD("{\"a\":1 \"b\":2}");
	BAD("{\"a\":\"x\" \"b\":\"y\"}");
	BAD("{\"a\":{} \"b\":[]}");
	BAD("{\"a\":[1 2]}");
	BAD("{\"a\":[\"x\" \"y\"]}");
	BAD("{\"a\":[[] []]}");
	BAD("{\"a\":[{}{}]}");
}

Test(json_parse, extra_or_misplaced_commas)
{
	BAD("{,}");
	BAD("{,\"a\":1}");
	BAD("{\"a\":1,}");
	BAD("{\"a\":1,,\"b\":2}");
	BAD("{\"a\":[1,]}");
	BAD("{\"a\":[,1]}");
	BAD("{\"a\":[1,,2]}");
	BAD("{\"a\",1}");
}

Test(json_parse, missing_or_extra_colons)
{
	BAD("{\"a\" 1}");
	BAD("{\"a\" \"b\"}");
	BAD("{\"a\"}");
	BAD("{\"a\"::1}");
	BAD("{\"a\":}");
	BAD("{:1}");
	BAD("{\"a\":1:2}");
	BAD("{\"a\":[1:2]}");
	BAD("{\"a\":[\"k\":1]}");
	BAD("{\"a\":\"b\":\"c\"}");
}

Test(json_parse, bad_keys)
{
	BAD("{a:1}");
	BAD("{1:1}");
	BAD("{true:1}");
	BAD("{null:1}");
	BAD("{{}:1}");
	BAD("{[]:1}");
	BAD("{'a':1}");
}

Test(json_parse, bad_primitives)
{
	BAD("{\"a\":tru}");
	BAD("{\"a\":truee}");
	BAD("{\"a\":True}");
	BAD("{\"a\":fals}");
	BAD("{\"a\":nul}");
	BAD("{\"a\":nulll}");
	BAD("{\"a\":none}");
	BAD("{\"a\":NaN}");
	BAD("{\"a\":Infinity}");
	BAD("{\"a\":-Infinity}");
	BAD("{\"a\":undefined}");
	BAD("{\"a\":t}");
	BAD("{\"a\":[tru]}");
	BAD("{\"a\":'x'}");
}

Test(json_parse, number_grammar_valid)
{
	static const char *const ok[] = {
		"0", "-0", "1", "-1", "9", "10", "123456789", "0.0", "-0.0", "0.5", "1.25", "1e5",
		"1E5", "1e+5", "1e-5", "1E-05", "0e0", "-0.0e-0", "1.5e300", "12345678901234567890123",
		"-9223372036854775808", "3.141592653589793",
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		char doc[128];
		snprintf(doc, sizeof(doc), "{\"n\":%s,\"m\":[%s]}", ok[i], ok[i]);
		expect_valid(doc);
		cr_expect(json_number_ok(ok[i], strlen(ok[i])), "json_number_ok(%s)", ok[i]);
	}
}

Test(json_parse, number_grammar_invalid)
{
	static const char *const bad[] = {
		"01", "00", "-01", "1.", "-1.", "1.e5", ".5", "-.5", "+1", "+0", "-", "--1", "1e",
		"1e+", "1E-", "1e5.5", "1.2.3", "0x10", "1_000", "1-2", "1e5e5", "0.5x", "2..", "-e1",
		"1ee5",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char doc[128];
		int n = snprintf(doc, sizeof(doc), "{\"n\":%s}", bad[i]);
		expect_invalid(doc, (size_t)n);
		n = snprintf(doc, sizeof(doc), "{\"n\":[0,%s,0]}", bad[i]);
		expect_invalid(doc, (size_t)n);
		cr_expect_not(json_number_ok(bad[i], strlen(bad[i])), "json_number_ok(%s)", bad[i]);
	}
}

Test(json_parse, trailing_data)
{
	BAD("{}x");
	BAD("{} x");
	BAD("{}{}");
	BAD("{\"a\":1} {\"b\":2}");
	BAD("{\"a\":1}}");
	BAD("{\"a\":1}]");
	BAD("{\"a\":1},");
	BAD("{\"a\":1} 1");
	BAD("{\"a\":1} \"s\"");
	BAD("{\"a\":1} []");
	BAD("{}\0");
	BAD("{} \0 ");
}

Test(json_parse, trailing_data_message)
{
	const char *err = NULL;
	const char doc[] = "{\"a\":1} {\"b\":2}";
	cr_assert_eq(parse_rc(doc, sizeof(doc) - 1, &err), -EBADMSG);
	cr_assert_str_eq(err, "trailing data after JSON");
}

Test(json_parse, structural_mismatches)
{
	BAD("{");
	BAD("}");
	BAD("{]");
	BAD("{\"a\":[}");
	BAD("{\"a\":[1}]");
	BAD("{\"a\":{]}");
	BAD("{\"a\":1]}");
	BAD("{\"a\":1}}");
}

Test(json_parse, raw_control_characters_in_strings)
{
	for (int c = 1; c < 0x20; c++) {
		char doc[32];
		int n = snprintf(doc, sizeof(doc), "{\"a\":\"x%cy\"}", c);
		expect_invalid(doc, (size_t)n);
		n = snprintf(doc, sizeof(doc), "{\"k%c\":1}", c);
		expect_invalid(doc, (size_t)n);
	}
	BAD("{\"a\":\"x\0y\"}");
	/* the same characters escaped are fine */
	expect_valid("{\"a\":\"x\\ty\\n\\u0001\\u001f\"}");
}

Test(json_parse, bad_escapes_rejected)
{
	BAD("{\"a\":\"\\x\"}");
	BAD("{\"a\":\"\\a\"}");
	BAD("{\"a\":\"\\'\"}");
	BAD("{\"a\":\"\\U0041\"}");
	BAD("{\"a\":\"\\u12\"}");
	BAD("{\"a\":\"\\u12g4\"}");
	BAD("{\"a\":\"\\u\"}");
	BAD("{\"a\":\"\\\"}");
}

Test(json_parse, truncated_inputs_at_guard_page)
{
	/* every proper prefix of a valid document is rejected, with no read past the end */
	const char doc[] = "{\"model\":\"gpt-4o\",\"n\":-12.5e+3,\"ok\":true,\"no\":false,\"z\":null,"
			   "\"arr\":[1,[2,{\"k\":\"\\u00e9\\ud83d\\ude00\\\"\"}]],\"o\":{}}";
	size_t n = sizeof(doc) - 1;
	expect_valid(doc);
	for (size_t k = 0; k < n; k++) {
		const char *err = NULL;
		int rc = parse_rc(doc, k, &err);
		cr_expect_eq(rc, -EBADMSG, "prefix of %zu bytes accepted: %.*s", k, (int)k, doc);
		cr_expect_not_null(err);
	}
}

Test(json_parse, truncated_message)
{
	const char *err = NULL;
	cr_assert_eq(parse_rc("{\"a\":[1,2", 9, &err), -EBADMSG);
	cr_assert_str_eq(err, "truncated JSON");
}

static char *nested(int depth, size_t *len)
{
	/* {"a": [[[...]]] } with `depth` containers in total (the root included) */
	size_t n = 6 + 2 * (size_t)(depth - 1) + 1;
	char *s = malloc(n + 1), *p = s;
	p += sprintf(p, "{\"a\":");
	for (int i = 1; i < depth; i++)
		*p++ = '[';
	for (int i = 1; i < depth; i++)
		*p++ = ']';
	*p++ = '}';
	*p = 0;
	*len = (size_t)(p - s);
	return s;
}

Test(json_parse, depth_limit)
{
	size_t n;
	char *s;
	const char *err;

	s = nested(JSON_MAX_DEPTH, &n);
	cr_expect_eq(parse_rc(s, n, &err), 0, "%d nested containers must be accepted", JSON_MAX_DEPTH);
	free(s);

	s = nested(JSON_MAX_DEPTH + 2, &n);
	err = NULL;
	cr_expect_eq(parse_rc(s, n, &err), -EBADMSG, "%d nested containers must be rejected", JSON_MAX_DEPTH + 2);
	cr_expect(err && strcmp(err, "JSON nested too deeply") == 0, "err: %s", err ? err : "(null)");
	free(s);

	s = nested(2000, &n);
	err = NULL;
	cr_expect_eq(parse_rc(s, n, &err), -EBADMSG, "2000 nested containers must be rejected");
	cr_expect(err && strcmp(err, "JSON nested too deeply") == 0, "err: %s", err ? err : "(null)");
	free(s);
}

/*
 * The depth limit exists to bound the work a hostile body can cause, so a
 * deeply nested body must be rejected in time linear in its size. A 400 KB
 * body of 200000 nested arrays parses in well under a second when linear;
 * the timeout turns a quadratic parse into a failure instead of a hang.
 */
Test(json_parse, deep_nesting_rejected_in_linear_time, .timeout = 3.)
{
	size_t n;
	char *s = nested(200000, &n);
	const char *err = NULL;
	uint64_t t0 = now_ns();
	int rc = parse_rc(s, n, &err);
	double secs = (double)(now_ns() - t0) / 1e9;
	free(s);
	cr_expect_eq(rc, -EBADMSG);
	cr_expect(err && strcmp(err, "JSON nested too deeply") == 0, "err: %s", err ? err : "(null)");
	cr_expect_lt(secs, 1.0, "rejecting a 400 KB nested body took %.2f s", secs);
}

/*
 * Same bound, with the nesting placed after a '"' inside a primitive: jsmn
 * (strict) reads `t"` as one primitive ended by the space and then tokenizes
 * every bracket after it, so any depth pre-check must not take that '"' for
 * the start of a string. 100 KB must still be rejected quickly.
 */
Test(json_parse, deep_nesting_after_a_quote_in_a_primitive, .timeout = 3.)
{
	int d = 50000;
	char *s = malloc(64 + 2 * (size_t)d), *p = s;
	p += sprintf(p, "{\"a\":[t\" ");
	for (int i = 0; i < d; i++)
		*p++ = '[';
	for (int i = 0; i < d; i++)
		*p++ = ']';
	p += sprintf(p, "]}");
	const char *err = NULL;
	uint64_t t0 = now_ns();
	int rc = parse_rc(s, (size_t)(p - s), &err);
	double secs = (double)(now_ns() - t0) / 1e9;
	free(s);
	cr_expect_eq(rc, -EBADMSG);
	cr_expect_lt(secs, 1.0, "rejecting a 100 KB body took %.2f s (err: %s)", secs, err ? err : "(null)");
}

Test(json_parse, deep_objects_limit)
{
	/* nesting through objects counts too */
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	sb_init(&s, &a, 64);
	for (int i = 0; i < 1000; i++)
		sb_puts(&s, "{\"a\":");
	sb_puts(&s, "1");
	for (int i = 0; i < 1000; i++)
		sb_puts(&s, "}");
	const char *err = NULL;
	cr_assert_eq(parse_rc(s.p, s.len, &err), -EBADMSG);
	cr_assert_str_eq(err, "JSON nested too deeply");
	arena_reset(&a);
}

Test(json_parse, oom_is_enomem)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	a.fail_after = 0;
	cr_assert_eq(json_parse(&j, &a, "{}", 2), -ENOMEM);
	cr_assert_not_null(j.err);
	arena_reset(&a);

	/* the tokens are counted first and allocated once, exactly */
	struct sb s;
	arena_init(&a, NULL);
	sb_init(&s, &a, 64);
	sb_puts(&s, "{\"a\":[");
	for (int i = 0; i < 100; i++)
		sb_printf(&s, "%s%d", i ? "," : "", i);
	sb_puts(&s, "]}");
	a.fail_after = 1;
	cr_assert_eq(json_parse(&j, &a, s.p, s.len), 0);
	cr_assert_eq(j.ntok, 103);
	a.fail_after = 0;
	cr_assert_eq(json_parse(&j, &a, s.p, s.len), -ENOMEM);
	arena_reset(&a);
}

Test(json_parse, token_budget)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	const char *doc = "{\"a\":[1,2,3,4]}"; /* 7 tokens */
	cr_assert_eq(json_parse_max(&j, &a, doc, strlen(doc), 7), 0);
	cr_assert_eq(json_parse_max(&j, &a, doc, strlen(doc), 6), -E2BIG);
	cr_assert_not_null(strstr(j.err, "max_json_tokens"));
	cr_assert_eq(json_parse(&j, &a, "{\n \"a\": tru }", 15), -EBADMSG);
	cr_assert_eq(j.err_pos, 8, "error position %zu", j.err_pos);
	arena_reset(&a);
}

/* ---- json_obj_get ---- */

Test(json_obj_get, finds_values_and_keys)
{
	struct arena a;
	struct json j;
	struct guard g;
	arena_init(&a, NULL);
	const char doc[] = "{\"a\":1,\"nested\":{\"a\":2,\"b\":[3]},\"b\":\"x\",\"c\":[{\"a\":4}]}";
	cr_assert_eq(parse_at(&j, &a, &g, doc, sizeof(doc) - 1), 0);
	static const char *const keys[] = { "b", "a", "missing", "nested", "c" };
	int v[5], k[5];
	cr_assert_eq(json_obj_get(&j, 0, keys, 5, v, k), 0);
	cr_assert(str_eq(json_raw(&j, v[0]), "\"x\""));
	cr_assert(str_eq(json_raw(&j, v[1]), "1"));
	cr_assert_eq(v[2], -1);
	cr_assert_eq(k[2], -1);
	cr_assert_eq(j.tok[v[3]].type, JSMN_OBJECT);
	cr_assert_eq(j.tok[v[4]].type, JSMN_ARRAY);
	for (int i = 0; i < 5; i++)
		if (v[i] >= 0)
			cr_assert_eq(k[i], v[i] - 1);
	cr_assert(str_eq(json_raw(&j, k[0]), "\"b\""));

	/* the nested object */
	int nv[2];
	static const char *const nk[] = { "a", "b" };
	cr_assert_eq(json_obj_get(&j, v[3], nk, 2, nv, NULL), 0);
	cr_assert(str_eq(json_raw(&j, nv[0]), "2"));
	cr_assert(str_eq(json_raw(&j, nv[1]), "[3]"));

	/* not an object */
	cr_assert_eq(json_obj_get(&j, v[4], nk, 2, nv, NULL), -EINVAL);
	cr_assert_eq(nv[0], -1);
	cr_assert_eq(nv[1], -1);
	cr_assert_eq(json_obj_get(&j, -1, nk, 2, nv, NULL), -EINVAL);
	guard_free(&g);
	arena_reset(&a);
}

Test(json_obj_get, duplicate_requested_key_is_an_error)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	static const char *const keys[] = { "model", "stream" };
	int v[2];
	const char d1[] = "{\"model\":\"a\",\"x\":1,\"model\":\"b\"}";
	cr_assert_eq(json_parse(&j, &a, d1, sizeof(d1) - 1), 0, "duplicates are valid JSON");
	cr_assert_eq(json_obj_get(&j, 0, keys, 2, v, NULL), -EBADMSG);
	cr_assert_str_eq(j.err, "duplicate key in JSON object");

	const char d2[] = "{\"stream\":true,\"stream\":true,\"model\":\"a\"}";
	cr_assert_eq(json_parse(&j, &a, d2, sizeof(d2) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 2, v, NULL), -EBADMSG, "even with equal values");
	arena_reset(&a);
}

Test(json_obj_get, duplicates_of_other_keys_are_ignored)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	static const char *const keys[] = { "model" };
	int v;
	const char d[] = "{\"x\":1,\"model\":\"m\",\"x\":2,\"messages\":[],\"messages\":{}}";
	cr_assert_eq(json_parse(&j, &a, d, sizeof(d) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 1, &v, NULL), 0);
	cr_assert(str_eq(json_raw(&j, v), "\"m\""));
	arena_reset(&a);
}

Test(json_obj_get, nested_duplicates_do_not_count)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	static const char *const keys[] = { "model" };
	int v;
	const char d[] = "{\"meta\":{\"model\":1},\"model\":\"m\",\"l\":[{\"model\":2}]}";
	cr_assert_eq(json_parse(&j, &a, d, sizeof(d) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 1, &v, NULL), 0);
	cr_assert(str_eq(json_raw(&j, v), "\"m\""));
	arena_reset(&a);
}

Test(json_obj_get, keys_compare_raw_bytes)
{
	/* an escaped key is a different key for the lookup (exact bytes) */
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	static const char *const keys[] = { "model" };
	int v;
	const char d[] = "{\"Model\":\"a\",\"model \":\"b\",\"model\":\"c\"}";
	cr_assert_eq(json_parse(&j, &a, d, sizeof(d) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 1, &v, NULL), 0);
	cr_assert(str_eq(json_raw(&j, v), "\"c\""));
	arena_reset(&a);
}

Test(json_obj_get, escaped_keys_compare_unescaped)
{
	/* "mod\u0065l" is "model": found, and a duplicate of a plain "model" */
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	static const char *const keys[] = { "model", "stream" };
	int v[2];
	const char d1[] = "{\"m\\u006fdel\":\"x\",\"str\\u0065am\":true}";
	cr_assert_eq(json_parse(&j, &a, d1, sizeof(d1) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 2, v, NULL), 0);
	cr_assert(v[0] >= 0 && str_eq(json_raw(&j, v[0]), "\"x\""));
	cr_assert(v[1] >= 0 && str_eq(json_raw(&j, v[1]), "true"));

	const char d2[] = "{\"model\":\"a\",\"mod\\u0065l\":\"b\"}";
	cr_assert_eq(json_parse(&j, &a, d2, sizeof(d2) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 2, v, NULL), -EBADMSG);

	const char d3[] = "{\"\\u006d\\u006f\\u0064\\u0065\\u006c\":1,\"model\":2}";
	cr_assert_eq(json_parse(&j, &a, d3, sizeof(d3) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 2, v, NULL), -EBADMSG, "fully escaped duplicate");

	/* escapes that do not spell a requested key */
	const char d4[] = "{\"mo\\/del\":1,\"model\\u0000\":2,\"model\\n\":3,\"model\":4}";
	cr_assert_eq(json_parse(&j, &a, d4, sizeof(d4) - 1), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 2, v, NULL), 0);
	cr_assert(str_eq(json_raw(&j, v[0]), "4"));

	/* a long escaped key matches nothing and does not overflow anything */
	struct sb s;
	sb_init(&s, &a, 64);
	sb_puts(&s, "{\"");
	for (int i = 0; i < 200; i++)
		sb_puts(&s, "\\u00e9");
	sb_puts(&s, "\":1,\"model\":2}");
	cr_assert_eq(json_parse(&j, &a, s.p, s.len), 0);
	cr_assert_eq(json_obj_get(&j, 0, keys, 2, v, NULL), 0);
	cr_assert(str_eq(json_raw(&j, v[0]), "2"));
	arena_reset(&a);
}

/* ---- json_str ---- */

static char *unescape(struct arena *a, const char *doc, size_t *len)
{
	struct json *j = arena_new(a, struct json, 1);
	static const char *const k[] = { "s" };
	int v;
	cr_assert_eq(json_parse(j, a, doc, strlen(doc)), 0, "parse: %s", doc);
	cr_assert_eq(json_obj_get(j, 0, k, 1, &v, NULL), 0);
	return json_str(j, a, v, len);
}

Test(json_str, simple_escapes)
{
	struct arena a;
	arena_init(&a, NULL);
	size_t n = 99;
	char *s = unescape(&a, "{\"s\":\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"}", &n);
	cr_assert_not_null(s);
	cr_assert_eq(n, 17);
	cr_assert_eq(memcmp(s, "a\"b\\c/d\be\ff\ng\rh\ti", 18), 0);
	s = unescape(&a, "{\"s\":\"\"}", &n);
	cr_assert_str_eq(s, "");
	cr_assert_eq(n, 0);
	s = unescape(&a, "{\"s\":\"plain\"}", NULL);
	cr_assert_str_eq(s, "plain");
	arena_reset(&a);
}

Test(json_str, unicode_escapes_to_utf8)
{
	struct arena a;
	arena_init(&a, NULL);
	size_t n;
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u0041\"}", &n), "A");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u007f\"}", &n), "\x7f");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u0080\"}", &n), "\xc2\x80");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u00e9\"}", &n), "\xc3\xa9");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u00E9\"}", &n), "\xc3\xa9");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u07ff\"}", &n), "\xdf\xbf");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u0800\"}", &n), "\xe0\xa0\x80");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\u20AC\"}", &n), "\xe2\x82\xac");
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\uffff\"}", &n), "\xef\xbf\xbf");
	cr_assert_eq(n, 3);
	char *z = unescape(&a, "{\"s\":\"a\\u0000b\"}", &n);
	cr_assert_eq(n, 3);
	cr_assert_eq(memcmp(z, "a\0b", 4), 0);
	arena_reset(&a);
}

Test(json_str, surrogate_pairs_to_utf8)
{
	struct arena a;
	arena_init(&a, NULL);
	size_t n;
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\ud83d\\ude00\"}", &n), "\xf0\x9f\x98\x80"); /* U+1F600 */
	cr_assert_eq(n, 4);
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\uD800\\uDC00\"}", &n), "\xf0\x90\x80\x80"); /* U+10000 */
	cr_assert_str_eq(unescape(&a, "{\"s\":\"\\uDBFF\\uDFFF\"}", &n), "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
	cr_assert_str_eq(unescape(&a, "{\"s\":\"x\\ud83d\\ude00y\\u00e9\"}", &n), "x\xf0\x9f\x98\x80y\xc3\xa9");
	arena_reset(&a);
}

Test(json_str, lone_surrogates_are_null)
{
	struct arena a;
	arena_init(&a, NULL);
	static const char *const bad[] = {
		"{\"s\":\"\\ud83d\"}",         /* high at the end */
		"{\"s\":\"\\ud83dx\"}",        /* high then a plain char */
		"{\"s\":\"\\ud83d\\u0041\"}",  /* high then a non-surrogate escape */
		"{\"s\":\"\\ud83d\\ud83d\"}",  /* high then high */
		"{\"s\":\"\\ude00\"}",         /* lone low */
		"{\"s\":\"\\ude00\\ud83d\"}",  /* reversed pair */
		"{\"s\":\"\\ud83d\\n\"}",      /* high then another escape */
		"{\"s\":\"\\ud83d\\ude0\"}",   /* truncated low half: invalid JSON, checked below */
	};
	for (size_t i = 0; i + 1 < ARRAY_LEN(bad); i++) {
		struct json j;
		static const char *const k[] = { "s" };
		int v;
		cr_assert_eq(json_parse(&j, &a, bad[i], strlen(bad[i])), 0, "%s", bad[i]);
		cr_assert_eq(json_obj_get(&j, 0, k, 1, &v, NULL), 0);
		j.err = NULL;
		cr_expect_null(json_str(&j, &a, v, NULL), "json_str accepted %s", bad[i]);
		cr_expect(j.err && strcmp(j.err, "bad escape in JSON string") == 0, "%s", bad[i]);
	}
	/* the truncated \u escape never gets that far: the tokenizer rejects it */
	const char *last = bad[ARRAY_LEN(bad) - 1];
	cr_assert_eq(parse_rc(last, strlen(last), NULL), -EBADMSG);
	arena_reset(&a);
}

Test(json_str, surrogates_at_the_guard_page)
{
	/* a string token that ends exactly at the end of the buffer region it was given */
	struct arena a;
	struct json j;
	struct guard g;
	arena_init(&a, NULL);
	const char doc[] = "{\"s\":\"\\ud83d\"}";
	cr_assert_eq(parse_at(&j, &a, &g, doc, sizeof(doc) - 1), 0);
	cr_assert_null(json_str(&j, &a, 2, NULL));
	guard_free(&g);
	const char doc2[] = "{\"s\":\"\\ud83d\\ude00\"}";
	cr_assert_eq(parse_at(&j, &a, &g, doc2, sizeof(doc2) - 1), 0);
	cr_assert_str_eq(json_str(&j, &a, 2, NULL), "\xf0\x9f\x98\x80");
	guard_free(&g);
	arena_reset(&a);
}

Test(json_str, non_strings_are_null)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	const char d[] = "{\"n\":1,\"o\":{},\"a\":[]}";
	cr_assert_eq(json_parse(&j, &a, d, sizeof(d) - 1), 0);
	cr_assert_null(json_str(&j, &a, 0, NULL));
	cr_assert_null(json_str(&j, &a, 2, NULL));
	cr_assert_null(json_str(&j, &a, 4, NULL));
	cr_assert_null(json_str(&j, &a, 6, NULL));
	cr_assert_null(json_str(&j, &a, -1, NULL));
	cr_assert_str_eq(json_str(&j, &a, 1, NULL), "n", "keys are strings too");
	arena_reset(&a);
}

Test(json_str, oom_is_null)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	const char d[] = "{\"s\":\"x\"}";
	cr_assert_eq(json_parse(&j, &a, d, sizeof(d) - 1), 0);
	a.fail_after = 0;
	cr_assert_null(json_str(&j, &a, 2, NULL));
	arena_reset(&a);
}

/* ---- json_is_true / json_int ---- */

Test(json_misc, is_true_and_int)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	const char d[] = "{\"t\":true,\"f\":false,\"n\":null,\"s\":\"true\",\"i\":-42,\"b\":123456789012,\"x\":1.9,\"o\":{}}";
	cr_assert_eq(json_parse(&j, &a, d, sizeof(d) - 1), 0);
	static const char *const k[] = { "t", "f", "n", "s", "i", "b", "x", "o" };
	int v[8];
	cr_assert_eq(json_obj_get(&j, 0, k, 8, v, NULL), 0);
	cr_assert(json_is_true(&j, v[0]));
	cr_assert_not(json_is_true(&j, v[1]));
	cr_assert_not(json_is_true(&j, v[2]));
	cr_assert_not(json_is_true(&j, v[3]), "the string \"true\" is not true");
	cr_assert_not(json_is_true(&j, -1));
	cr_assert_eq(json_int(&j, v[4], 7), -42);
	cr_assert_eq(json_int(&j, v[5], 7), 123456789012LL);
	cr_assert_eq(json_int(&j, v[6], 7), 1);
	cr_assert_eq(json_int(&j, v[0], 7), 7);
	cr_assert_eq(json_int(&j, v[3], 7), 7);
	cr_assert_eq(json_int(&j, v[7], 7), 7);
	cr_assert_eq(json_int(&j, -1, 7), 7);
	arena_reset(&a);
}

/* ---- json_put_str ---- */

static struct str escaped(struct arena *a, const char *s, size_t n)
{
	struct sb b;
	sb_init(&b, a, 8);
	json_put_str(&b, s, n);
	cr_assert_not(b.oom);
	return sb_view(&b);
}

Test(json_put_str, exact_escapes)
{
	struct arena a;
	arena_init(&a, NULL);
	cr_assert(str_eq(escaped(&a, "", 0), "\"\""));
	cr_assert(str_eq(escaped(&a, "abc", 3), "\"abc\""));
	cr_assert(str_eq(escaped(&a, "a\"b", 3), "\"a\\\"b\""));
	cr_assert(str_eq(escaped(&a, "a\\b", 3), "\"a\\\\b\""));
	cr_assert(str_eq(escaped(&a, "a\nb", 3), "\"a\\nb\""));
	cr_assert(str_eq(escaped(&a, "\r\t\b\f", 4), "\"\\u000d\\u0009\\u0008\\u000c\""));
	cr_assert(str_eq(escaped(&a, "\0\x01\x1f", 3), "\"\\u0000\\u0001\\u001f\""));
	cr_assert(str_eq(escaped(&a, "\x7f/\xc3\xa9", 4), "\"\\u007f/\xc3\xa9\""), "DEL escaped; '/' and UTF-8 pass through");
	cr_assert(str_eq(escaped(&a, "a\xff\xc3", 3), "\"a\\ufffd\\ufffd\""), "invalid UTF-8 becomes U+FFFD");
	cr_assert(str_eq(escaped(&a, "\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\""), "a UTF-8 surrogate is invalid");
	cr_assert(str_eq(escaped(&a, "\xf0\x9f\x98\x80", 4), "\"\xf0\x9f\x98\x80\""), "4-byte sequences pass");
	cr_assert(str_eq(escaped(&a, "\"\"", 2), "\"\\\"\\\"\""));
	struct sb b;
	sb_init(&b, &a, 4);
	json_put_z(&b, "z\"");
	cr_assert(str_eq(sb_view(&b), "\"z\\\"\""));
	arena_reset(&a);
}

Test(json_put_str, round_trip_every_byte)
{
	struct arena a;
	arena_init(&a, NULL);
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)(i & 0x7f); /* every ASCII byte value, NUL included, twice (others: U+FFFD) */
	struct sb doc;
	sb_init(&doc, &a, 64);
	sb_puts(&doc, "{\"s\":");
	json_put_str(&doc, all, sizeof(all));
	sb_puts(&doc, "}");
	cr_assert_not(doc.oom);
	struct json j;
	struct guard g;
	cr_assert_eq(parse_at(&j, &a, &g, doc.p, doc.len), 0, "escaped text must be valid JSON: %s", j.err);
	size_t n = 0;
	char *back = json_str(&j, &a, 2, &n);
	cr_assert_not_null(back);
	cr_assert_eq(n, sizeof(all));
	cr_assert_eq(memcmp(back, all, n), 0);
	guard_free(&g);
	arena_reset(&a);
}

Test(json_put_str, round_trip_samples)
{
	static const char *const samples[] = {
		"", "plain", "quote\"inside", "back\\slash", "line\nbreak\r\n", "tab\there",
		"json {\"a\":[1,2]}", "\\u0041 literal", "caf\xc3\xa9 \xf0\x9f\x98\x80", "end\\",
	};
	for (size_t i = 0; i < ARRAY_LEN(samples); i++) {
		struct arena a;
		arena_init(&a, NULL);
		struct sb doc;
		sb_init(&doc, &a, 16);
		sb_puts(&doc, "{\"s\":");
		json_put_z(&doc, samples[i]);
		sb_puts(&doc, "}");
		struct json j;
		cr_assert_eq(json_parse(&j, &a, doc.p, doc.len), 0, "%.*s", (int)doc.len, doc.p);
		size_t n;
		char *back = json_str(&j, &a, 2, &n);
		cr_expect(back && n == strlen(samples[i]) && memcmp(back, samples[i], n) == 0,
			  "round trip of sample %zu", i);
		arena_reset(&a);
	}
}
