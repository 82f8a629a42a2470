/* Unit tests for section 6 (sse_): event splitting and the data: payload. */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

static size_t next_at_guard(const char *s, size_t n)
{
	struct guard g;
	char *p = guard_put(&g, s, n);
	size_t r = sse_next(p, n);
	guard_free(&g);
	return r;
}

#define NEXT(lit) next_at_guard((lit), sizeof(lit) - 1)

Test(sse_next, lf_lf_terminator)
{
	cr_assert_eq(NEXT("data: x\n\n"), 9);
	cr_assert_eq(NEXT("\n\n"), 2);
}

Test(sse_next, crlf_crlf_terminator)
{
	cr_assert_eq(NEXT("data: x\r\n\r\n"), 11);
	cr_assert_eq(NEXT("\r\n\r\n"), 4);
}

Test(sse_next, lf_crlf_mixed_terminator)
{
	/* "\n\r\n" is a line end followed by an empty CRLF line */
	cr_assert_eq(NEXT("data: x\n\r\n"), 10);
}

Test(sse_next, first_event_only)
{
	const char two[] = "data: a\n\ndata: b\n\n";
	cr_assert_eq(NEXT(two), 9);
	size_t n = sse_next(two, sizeof(two) - 1);
	cr_assert_eq(sse_next(two + n, sizeof(two) - 1 - n), 9);

	const char multi[] = "event: e\ndata: 1\ndata: 2\n\nrest";
	cr_assert_eq(NEXT(multi), 26);
}

Test(sse_next, incomplete_events)
{
	cr_assert_eq(NEXT(""), 0);
	cr_assert_eq(NEXT("\n"), 0);
	cr_assert_eq(NEXT("data: x"), 0);
	cr_assert_eq(NEXT("data: x\n"), 0);
	cr_assert_eq(NEXT("data: x\r\n"), 0);
	cr_assert_eq(NEXT("data: x\r\n\r"), 0);
	cr_assert_eq(NEXT("data: x\n\r"), 0);
	cr_assert_eq(NEXT("data: x\ndata: y\n"), 0);
}

Test(sse_next, every_prefix_of_an_event_is_incomplete)
{
	const char ev[] = "id: 7\r\ndata: {\"a\":1}\r\n\r\n";
	size_t n = sizeof(ev) - 1;
	for (size_t k = 0; k < n; k++)
		cr_expect_eq(next_at_guard(ev, k), 0, "prefix of %zu bytes", k);
	cr_assert_eq(next_at_guard(ev, n), n);
}

Test(sse_next, event_then_partial)
{
	cr_assert_eq(NEXT("data: [DONE]\n\ndata: par"), 14);
}

static struct str data_at_guard(struct guard *g, const char *s, size_t n)
{
	char *p = guard_put(g, s, n);
	return sse_data(p, n);
}

#define DATA(g, lit) data_at_guard((g), (lit), sizeof(lit) - 1)

Test(sse_data, with_space)
{
	struct guard g;
	struct str d = DATA(&g, "data: hello\n\n");
	cr_assert(str_eq(d, "hello"), "got '%.*s'", (int)d.n, d.p);
	guard_free(&g);
}

Test(sse_data, without_space)
{
	struct guard g;
	struct str d = DATA(&g, "data:hello\n\n");
	cr_assert(str_eq(d, "hello"), "got '%.*s'", (int)d.n, d.p);
	guard_free(&g);
}

Test(sse_data, only_one_space_is_stripped)
{
	struct guard g;
	struct str d = DATA(&g, "data:  two\n\n");
	cr_assert(str_eq(d, " two"), "got '%.*s'", (int)d.n, d.p);
	guard_free(&g);
}

Test(sse_data, crlf_lines)
{
	struct guard g;
	struct str d = DATA(&g, "data: {\"x\":1}\r\n\r\n");
	cr_assert(str_eq(d, "{\"x\":1}"), "got '%.*s'", (int)d.n, d.p);
	guard_free(&g);
}

Test(sse_data, first_data_line_after_other_fields)
{
	struct guard g;
	struct str d = DATA(&g, ": comment\nevent: delta\nid: 1\ndata: first\ndata: second\n\n");
	cr_assert(str_eq(d, "first"), "got '%.*s'", (int)d.n, d.p);
	guard_free(&g);
}

Test(sse_data, empty_payloads)
{
	struct guard g;
	struct str d = DATA(&g, "data:\n\n");
	cr_assert_not_null(d.p);
	cr_assert_eq(d.n, 0);
	guard_free(&g);
	d = DATA(&g, "data: \r\n\r\n");
	cr_assert_not_null(d.p);
	cr_assert_eq(d.n, 0);
	guard_free(&g);
	d = DATA(&g, "data:\r\n\r\n");
	cr_assert_not_null(d.p);
	cr_assert_eq(d.n, 0);
	guard_free(&g);
}

Test(sse_data, no_data_line)
{
	struct guard g;
	struct str d = DATA(&g, "event: ping\nid: 3\n\n");
	cr_assert_null(d.p);
	cr_assert_eq(d.n, 0);
	guard_free(&g);
	d = DATA(&g, "dat: x\n\n");
	cr_assert_null(d.p);
	guard_free(&g);
	d = DATA(&g, "");
	cr_assert_null(d.p);
	guard_free(&g);
}

Test(sse_data, unterminated_last_line)
{
	/* sse_data takes whatever the caller sliced; no trailing newline needed */
	struct guard g;
	struct str d = DATA(&g, "data: tail");
	cr_assert(str_eq(d, "tail"), "got '%.*s'", (int)d.n, d.p);
	guard_free(&g);
	d = DATA(&g, "data:");
	cr_assert_not_null(d.p);
	cr_assert_eq(d.n, 0);
	guard_free(&g);
}

Test(sse_data, done_marker)
{
	struct guard g;
	struct str d = DATA(&g, "data: [DONE]\n\n");
	cr_assert(str_eq(d, "[DONE]"));
	guard_free(&g);
}

Test(sse, split_then_payload_roundtrip)
{
	const char s[] = "data: a\r\n\r\ndata:b\n\ndata: c\n\n";
	const char *want[] = { "a", "b", "c" };
	size_t off = 0, len = sizeof(s) - 1;
	for (int i = 0; i < 3; i++) {
		size_t n = sse_next(s + off, len - off);
		cr_assert_gt(n, 0, "event %d", i);
		struct str d = sse_data(s + off, n);
		cr_assert(str_eq(d, want[i]), "event %d: '%.*s'", i, (int)d.n, d.p);
		off += n;
	}
	cr_assert_eq(off, len);
	cr_assert_eq(sse_next(s + off, 0), 0);
}
