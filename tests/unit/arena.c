/* Unit tests for sections 2 and 3 (arena_, buf_, sb_). */
#include "../../bifrost.c"
#include <criterion/criterion.h>

static void cache_drain(struct arena_cache *ac)
{
	while (ac->free) {
		struct arena_chunk *c = ac->free;
		ac->free = c->next;
		free(c);
		ac->nfree--;
	}
}

static int nchunks(const struct arena *a)
{
	int n = 0;
	for (const struct arena_chunk *c = a->head; c; c = c->next)
		n++;
	return n;
}

/* Is p inside some chunk of `a` with [p, p+n) in bounds? */
static bool in_arena(const struct arena *a, const void *p, size_t n)
{
	for (const struct arena_chunk *c = a->head; c; c = c->next) {
		const unsigned char *b = c->mem;
		if ((const unsigned char *)p >= b && (const unsigned char *)p + n <= b + c->cap)
			return true;
	}
	return false;
}

#define ALIGNED(p, al) (((uintptr_t)(p) & ((al) - 1)) == 0)

struct s3 { char c[3]; };
struct sd { char c; double d; };
struct sp { char c; void *p; };
struct s16 { alignas(16) char c; };

Test(arena, new_is_aligned_for_common_types)
{
	struct arena a;
	arena_init(&a, NULL);
	for (int round = 0; round < 400; round++) {
		char *c = arena_new(&a, char, 1 + round % 7);
		cr_assert_not_null(c);
		short *sh = arena_new(&a, short, 1);
		int *i = arena_new(&a, int, 3);
		long long *ll = arena_new(&a, long long, 1);
		double *d = arena_new(&a, double, 2);
		struct s3 *x3 = arena_new(&a, struct s3, 1);
		struct sd *xd = arena_new(&a, struct sd, 1);
		struct sp *xp = arena_new(&a, struct sp, 5);
		long double *ld = arena_new(&a, long double, 1);
		max_align_t *m = arena_new(&a, max_align_t, 1);
		struct s16 *x16 = arena_new(&a, struct s16, 1);
		jsmntok_t *tk = arena_new(&a, jsmntok_t, 3);
		struct iovec *iov = arena_new(&a, struct iovec, 2);
		cr_assert(sh && i && ll && d && x3 && xd && xp && ld && m && x16 && tk && iov);
		cr_expect(ALIGNED(sh, alignof(short)));
		cr_expect(ALIGNED(i, alignof(int)));
		cr_expect(ALIGNED(ll, alignof(long long)));
		cr_expect(ALIGNED(d, alignof(double)));
		cr_expect(ALIGNED(xd, alignof(struct sd)));
		cr_expect(ALIGNED(xp, alignof(struct sp)));
		cr_expect(ALIGNED(ld, alignof(long double)), "long double %p", (void *)ld);
		cr_expect(ALIGNED(m, alignof(max_align_t)), "max_align_t %p", (void *)m);
		cr_expect(ALIGNED(x16, 16), "alignas(16) %p", (void *)x16);
		cr_expect(ALIGNED(tk, alignof(jsmntok_t)));
		cr_expect(ALIGNED(iov, alignof(struct iovec)));
		/* every allocation is fully inside a chunk, and they do not overlap */
		cr_expect(in_arena(&a, xp, 5 * sizeof(*xp)));
		cr_expect((char *)ld >= (char *)xp + 5 * sizeof(*xp));
		memset(ld, 0xAB, sizeof(*ld));
		memset(xp, 0xCD, 5 * sizeof(*xp));
	}
	cr_assert_gt(nchunks(&a), 1, "400 rounds must span several chunks");
	arena_reset(&a);
}

/* A type asking for more than 16-byte alignment (e.g. a cache-line-aligned
 * counter block): arena_new must honour alignof(T) like any allocator. */
struct line64 { alignas(64) unsigned char b[64]; };

Test(arena, new_honours_alignment_above_16)
{
	struct arena a;
	arena_init(&a, NULL);
	for (int k = 0; k < 64; k++) {
		(void)arena_alloc(&a, (size_t)k + 1, 1);
		struct line64 *l = arena_new(&a, struct line64, 1);
		cr_assert_not_null(l);
		void *p = arena_alloc(&a, 10, 32);
		cr_assert_not_null(p);
		if (!ALIGNED(l, 64) || !ALIGNED(p, 32)) {
			cr_expect(ALIGNED(l, 64), "after a %d-byte allocation, arena_new(struct line64) returned %p (not 64-aligned)",
				  k + 1, (void *)l);
			cr_expect(ALIGNED(p, 32), "arena_alloc(10, 32) returned %p (not 32-aligned)", p);
			break;
		}
	}
	arena_reset(&a);
}

Test(arena, bump_allocations_are_contiguous_in_one_chunk)
{
	struct arena a;
	arena_init(&a, NULL);
	char *p = arena_alloc(&a, 10, 1);
	char *q = arena_alloc(&a, 10, 1);
	cr_assert_eq(q, p + 10);
	int *r = arena_new(&a, int, 1); /* offset 20 is 4-aligned */
	cr_assert_eq((char *)r, p + 20);
	char *s = arena_alloc(&a, 1, 1);
	long long *t = arena_new(&a, long long, 1); /* 25 -> 32 */
	cr_assert_eq(s, p + 24);
	cr_assert_eq((char *)t, p + 32);
	cr_assert_eq(nchunks(&a), 1);
	arena_reset(&a);
	cr_assert_null(a.head);
}

Test(arena, big_allocations_get_a_dedicated_chunk)
{
	struct arena a;
	arena_init(&a, NULL);
	char *small = arena_alloc(&a, 100, 1);
	memset(small, 1, 100);
	size_t big = 3 * ARENA_CHUNK + 123;
	char *b = arena_alloc(&a, big, 16);
	cr_assert_not_null(b);
	cr_assert(ALIGNED(b, 16));
	memset(b, 0x5A, big); /* ASan checks the whole span is ours */
	cr_assert(in_arena(&a, b, big));
	cr_assert_geq(a.head->cap, big);
	/* exactly ARENA_CHUNK, and one byte over */
	char *e = arena_alloc(&a, ARENA_CHUNK, 1);
	cr_assert_not_null(e);
	memset(e, 2, ARENA_CHUNK);
	char *o = arena_alloc(&a, ARENA_CHUNK + 1, 1);
	cr_assert_not_null(o);
	memset(o, 3, ARENA_CHUNK + 1);
	cr_assert(in_arena(&a, o, ARENA_CHUNK + 1));
	/* the first small allocation is untouched */
	for (int i = 0; i < 100; i++)
		cr_assert_eq(small[i], 1);
	arena_reset(&a);
}

Test(arena, fill_chunk_exactly_then_spill)
{
	struct arena a;
	arena_init(&a, NULL);
	char *p = arena_alloc(&a, ARENA_CHUNK - 8, 1);
	cr_assert_not_null(p);
	char *q = arena_alloc(&a, 8, 1);
	cr_assert_eq(q, p + ARENA_CHUNK - 8, "the last 8 bytes of the chunk are usable");
	cr_assert_eq(nchunks(&a), 1);
	char *r = arena_alloc(&a, 1, 1);
	cr_assert_not_null(r);
	cr_assert_eq(nchunks(&a), 2);
	arena_reset(&a);
}

Test(arena, unsatisfiable_size_returns_null)
{
	struct arena a;
	arena_init(&a, NULL);
	/* size + align overflows size_t: must fail, never hand out a small chunk */
	void *p = arena_alloc(&a, SIZE_MAX, 1);
	cr_expect_null(p, "arena_alloc(SIZE_MAX, 1) returned %p", p);
	void *q = arena_alloc(&a, SIZE_MAX - 7, 8);
	cr_expect_null(q, "arena_alloc(SIZE_MAX - 7, 8) returned %p", q);
	arena_reset(&a);
}

Test(arena, reset_returns_standard_chunks_to_the_cache)
{
	struct arena_cache ac = { .max_free = 8 };
	struct arena a;
	arena_init(&a, &ac);
	for (int i = 0; i < 3; i++)
		cr_assert_not_null(arena_alloc(&a, ARENA_CHUNK - 64, 1));
	(void)arena_alloc(&a, 2 * ARENA_CHUNK, 1); /* oversized: freed, never cached */
	cr_assert_eq(nchunks(&a), 4);
	cr_assert_eq(ac.nfree, 0);
	arena_reset(&a);
	cr_assert_null(a.head);
	cr_assert_eq(ac.nfree, 3);

	/* reuse: the next three chunks come from the cache, without malloc */
	struct arena_chunk *cached[3];
	int k = 0;
	for (struct arena_chunk *c = ac.free; c; c = c->next)
		cached[k++] = c;
	cr_assert_eq(k, 3);
	char *p = arena_alloc(&a, 100, 1);
	cr_assert_eq(ac.nfree, 2);
	cr_assert_eq(a.head, cached[0]);
	cr_assert_eq(p, (char *)cached[0]->mem);
	cr_assert_eq(a.head->used, 100, "a reused chunk starts empty");
	(void)arena_alloc(&a, ARENA_CHUNK - 1, 1);
	cr_assert_eq(ac.nfree, 1);
	cr_assert_eq(a.head, cached[1]);
	/* oversized requests never take a cached chunk */
	(void)arena_alloc(&a, ARENA_CHUNK + 100, 1);
	cr_assert_eq(ac.nfree, 1);
	arena_reset(&a);
	cr_assert_eq(ac.nfree, 3);
	cache_drain(&ac);
}

Test(arena, cache_respects_max_free)
{
	struct arena_cache ac = { .max_free = 2 };
	struct arena a;
	arena_init(&a, &ac);
	for (int i = 0; i < 5; i++)
		cr_assert_not_null(arena_alloc(&a, ARENA_CHUNK - 1, 1)); /* need = size + align */
	cr_assert_eq(nchunks(&a), 5);
	arena_reset(&a);
	cr_assert_eq(ac.nfree, 2);
	int n = 0;
	for (struct arena_chunk *c = ac.free; c; c = c->next)
		n++;
	cr_assert_eq(n, 2);
	cache_drain(&ac);
	cr_assert_eq(ac.nfree, 0);
}

Test(arena, reset_twice_and_reuse)
{
	struct arena a;
	arena_init(&a, NULL);
	arena_reset(&a);
	arena_reset(&a);
	char *p = arena_strndup(&a, "hello world", 5);
	cr_assert_str_eq(p, "hello");
	arena_reset(&a);
	cr_assert_null(a.head);
}

Test(arena, fail_after_counts_allocations)
{
	struct arena a;
	arena_init(&a, NULL);
	cr_assert_eq(a.fail_after, -1);
	a.fail_after = 3;
	cr_assert_not_null(arena_alloc(&a, 8, 8));
	cr_assert_not_null(arena_alloc(&a, 8, 8));
	cr_assert_not_null(arena_alloc(&a, 8, 8));
	cr_assert_null(arena_alloc(&a, 8, 8));
	cr_assert_null(arena_alloc(&a, 1, 1));
	cr_assert_null(arena_new(&a, int, 1));
	cr_assert_null(arena_strndup(&a, "x", 1));
	a.fail_after = -1;
	cr_assert_not_null(arena_alloc(&a, 8, 8));
	arena_reset(&a);

	a.fail_after = 0;
	cr_assert_null(arena_alloc(&a, 1, 1), "fail_after = 0 fails the very first allocation");
	cr_assert_null(a.head);
	arena_reset(&a);
}

Test(sb, builds_strings_and_grows)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	sb_init(&s, &a, 4);
	sb_puts(&s, "ab");
	sb_put(&s, "cdef", 4);
	sb_str(&s, STR("-"));
	sb_printf(&s, "%d/%s", 42, "xyz");
	for (int i = 0; i < 1000; i++)
		sb_put(&s, "0123456789", 10);
	cr_assert_not(s.oom);
	cr_assert_eq(s.len, 13 + 10000);
	cr_assert_eq(memcmp(s.p, "abcdef-42/xyz01", 15), 0);
	cr_assert_eq(memcmp(s.p + s.len - 10, "0123456789", 10), 0);
	struct str v = sb_view(&s);
	cr_assert_eq(v.p, s.p);
	cr_assert_eq(v.n, s.len);
	arena_reset(&a);
}

Test(sb, printf_exactly_filling_and_growing)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	sb_init(&s, &a, 8);
	sb_printf(&s, "%s", "1234567"); /* 7 chars + NUL fit exactly */
	cr_assert_eq(s.len, 7);
	sb_printf(&s, "%s", "89"); /* needs a grow */
	cr_assert_eq(s.len, 9);
	sb_printf(&s, "%0500d", 7);
	cr_assert_eq(s.len, 509);
	cr_assert_not(s.oom);
	cr_assert_eq(memcmp(s.p, "123456789000", 12), 0);
	cr_assert_eq(s.p[508], '7');
	arena_reset(&a);
}

Test(sb, u64_and_cat)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	sb_init(&s, &a, 2);
	sb_u64(&s, 0);
	sb_puts(&s, "|");
	sb_u64(&s, 7);
	sb_puts(&s, "|");
	sb_u64(&s, 10);
	sb_puts(&s, "|");
	sb_u64(&s, 1234567890);
	sb_puts(&s, "|");
	sb_u64(&s, UINT64_MAX);
	sb_cat(&s, "|", "a", "", "bc", NULL);
	sb_cat(&s, NULL);
	cr_assert_not(s.oom);
	const char want[] = "0|7|10|1234567890|18446744073709551615|abc";
	cr_assert_eq(s.len, sizeof(want) - 1);
	cr_assert_eq(memcmp(s.p, want, s.len), 0, "got %.*s", (int)s.len, s.p);
	arena_reset(&a);
}

Test(sb, oom_at_init_is_sticky)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	a.fail_after = 0;
	sb_init(&s, &a, 16);
	cr_assert(s.oom);
	cr_assert_null(s.p);
	a.fail_after = -1;
	sb_puts(&s, "abc");
	sb_printf(&s, "%d", 5);
	cr_assert(s.oom, "oom stays set once set");
	cr_assert_eq(s.len, 0);
	arena_reset(&a);
}

Test(sb, oom_on_grow_is_sticky_and_keeps_prefix)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	a.fail_after = 1; /* sb_init succeeds, the first grow fails */
	sb_init(&s, &a, 8);
	cr_assert_not(s.oom);
	sb_puts(&s, "12345");
	cr_assert_eq(s.len, 5);
	sb_puts(&s, "67890"); /* needs a grow: fails */
	cr_assert(s.oom);
	cr_assert_eq(s.len, 5, "a failed write changes nothing");
	a.fail_after = -1;
	sb_puts(&s, "x");
	sb_printf(&s, "%s", "yz");
	cr_assert(s.oom);
	cr_assert_eq(s.len, 5);
	cr_assert_eq(memcmp(s.p, "12345", 5), 0);
	arena_reset(&a);
}

Test(sb, printf_oom_on_grow)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	a.fail_after = 1;
	sb_init(&s, &a, 4);
	sb_printf(&s, "%s", "too long for four");
	cr_assert(s.oom);
	cr_assert_eq(s.len, 0);
	a.fail_after = -1;
	sb_printf(&s, "%s", "a");
	cr_assert(s.oom);
	cr_assert_eq(s.len, 0);
	arena_reset(&a);
}

Test(sb, json_str_oom_is_sticky)
{
	struct arena a;
	struct sb s;
	arena_init(&a, NULL);
	a.fail_after = 1;
	sb_init(&s, &a, 4);
	json_put_z(&s, "\"quoted\" and long enough to grow");
	cr_assert(s.oom);
	arena_reset(&a);
}

Test(buf, append_consume_limit)
{
	struct buf b = { .limit = 10 };
	cr_assert_eq(buf_append(&b, "hello", 5), 0);
	cr_assert_eq(buf_append(&b, "world", 5), 0);
	cr_assert_eq(b.len, 10);
	cr_assert_leq(b.cap, 10);
	cr_assert_eq(buf_append(&b, "!", 1), -E2BIG, "appends past the limit fail");
	cr_assert_eq(b.len, 10);
	cr_assert_eq(memcmp(b.p, "helloworld", 10), 0);
	buf_consume(&b, 3);
	cr_assert_eq(b.len, 7);
	cr_assert_eq(memcmp(b.p, "loworld", 7), 0);
	cr_assert_eq(buf_append(&b, "abc", 3), 0);
	cr_assert_eq(buf_append(&b, "d", 1), -E2BIG);
	buf_consume(&b, 100);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
	cr_assert_null(b.p);
	cr_assert_eq(b.cap, 0);
}

Test(buf, huge_extra_is_e2big_not_overflow)
{
	struct buf b = { 0 };
	cr_assert_eq(buf_append(&b, "x", 1), 0);
	cr_assert_eq(buf_reserve(&b, SIZE_MAX), -E2BIG, "len + extra overflows size_t");
	buf_free(&b);

	struct buf l = { .limit = 100 };
	cr_assert_eq(buf_append(&l, "x", 1), 0);
	cr_assert_eq(buf_reserve(&l, SIZE_MAX), -E2BIG);
	cr_assert_eq(buf_reserve(&l, SIZE_MAX - 1), -E2BIG);
	cr_assert_eq(buf_reserve(&l, 100), -E2BIG);
	cr_assert_eq(buf_reserve(&l, 99), 0);
	cr_assert_eq(l.cap, 100, "capped at the limit");
	buf_free(&l);
}

Test(buf, unlimited_grows)
{
	struct buf b = { 0 };
	char chunk[1000];
	memset(chunk, 'z', sizeof(chunk));
	for (int i = 0; i < 100; i++)
		cr_assert_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
	cr_assert_eq(b.len, 100000);
	cr_assert_geq(b.cap, 100000);
	buf_free(&b);
}

Test(str, helpers)
{
	cr_assert(str_eq(STR("abc"), "abc"));
	cr_assert_not(str_eq(STR("abc"), "ab"));
	cr_assert(str_case_eq(STR("Content-Length"), "content-length"));
	cr_assert_not(str_case_eq(STR("Content-Lengt"), "content-length"));
	cr_assert(str_starts(STR("/v1/chat"), "/v1"));
	cr_assert_not(str_starts(STR("/v"), "/v1"));
	cr_assert(str_has_token(STR("keep-alive, Upgrade"), "upgrade"));
	cr_assert(str_has_token(STR(" close "), "close"));
	cr_assert(str_has_token(STR("a,,\tclose\t,b"), "close"));
	cr_assert_not(str_has_token(STR("closed"), "close"));
	cr_assert_not(str_has_token(STR("not close"), "close"));
	cr_assert_not(str_has_token(STR(""), "close"));
}
