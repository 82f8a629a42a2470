/* Unit tests for sections 11 and 12 (jrnl_, gov_): windows, money, journal, counters, config. */
#include "../../bifrost.c"
#include <criterion/criterion.h>

/* ---- helpers ---- */

static int64_t ts(int64_t y, unsigned mo, unsigned d, int h, int mi, int s)
{
	return gov_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

static struct gov_winpos win(const char *dur, bool cal, int64_t anchor, int64_t now)
{
	struct gov_window w;
	struct gov_winpos p;
	cr_assert_eq(gov_parse_duration(dur, &w), 0, "%s", dur);
	gov_window_at(&w, cal, anchor, now, &p);
	cr_assert_eq(p.start, gov_window_start(&w, cal, anchor, now));
	cr_assert_eq(p.end, gov_window_end(&w, cal, anchor, now));
	cr_assert(p.start <= now && now < p.end, "%s: %lld not in [%lld, %lld)", dur, (long long)now,
		  (long long)p.start, (long long)p.end);
	return p;
}

/* ---- windows ---- */

Test(gov_window, parse_duration)
{
	static const struct { const char *s; enum gov_unit u; int n; } ok[] = {
		{ "30s", GU_SEC, 30 }, { "1m", GU_MIN, 1 }, { "5m", GU_MIN, 5 }, { "1h", GU_HOUR, 1 },
		{ "1d", GU_DAY, 1 },   { "1w", GU_WEEK, 1 }, { "1M", GU_MONTH, 1 }, { "1Y", GU_YEAR, 1 },
		{ "12M", GU_MONTH, 12 }, { "007d", GU_DAY, 7 },
	};
	static const char *const bad[] = { "", "s", "0s", "0M", "1", "1x", "1mm", " 1m", "1m ", "-1m",
					   "+1m", "1.5h", "1H", "99999999999999999999s", "101Y", "1e3s" };
	struct gov_window w;
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		cr_assert_eq(gov_parse_duration(ok[i].s, &w), 0, "%s", ok[i].s);
		cr_assert(w.unit == ok[i].u && w.n == ok[i].n, "%s", ok[i].s);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		cr_assert_neq(gov_parse_duration(bad[i], &w), 0, "\"%s\" accepted", bad[i]);
	cr_assert_neq(gov_parse_duration(NULL, &w), 0);
}

Test(gov_window, civil_days)
{
	cr_assert_eq(gov_days_from_civil(1970, 1, 1), 0);
	cr_assert_eq(gov_days_from_civil(2000, 3, 1), 11017);
	cr_assert_eq(gov_days_from_civil(2024, 2, 29), 19782);
	cr_assert_eq(gov_days_from_civil(1969, 12, 31), -1);
	for (int64_t z = -800000; z <= 800000; z += 7) { /* round trip, ±2190 years */
		int64_t y;
		unsigned m, d;
		gov_civil_from_days(z, &y, &m, &d);
		cr_assert_eq(gov_days_from_civil(y, m, d), z);
		cr_assert(m >= 1 && m <= 12 && d >= 1 && d <= gov_month_days(y, m));
	}
	/* against libc, UTC by construction (timegm ignores TZ) */
	struct tm tm = { .tm_year = 2038 - 1900, .tm_mon = 0, .tm_mday = 19, .tm_hour = 3, .tm_min = 14,
			 .tm_sec = 8 };
	cr_assert_eq(ts(2038, 1, 19, 3, 14, 8), (int64_t)timegm(&tm));
}

Test(gov_window, month_lengths_and_leap_years)
{
	static const unsigned len2024[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	for (unsigned m = 1; m <= 12; m++) {
		cr_assert_eq(gov_month_days(2024, m), len2024[m - 1], "2024-%u", m);
		struct gov_winpos p = win("1M", true, 0, ts(2024, m, 15, 12, 0, 0));
		cr_assert_eq(p.start, ts(2024, m, 1, 0, 0, 0));
		cr_assert_eq(p.end - p.start, (int64_t)len2024[m - 1] * 86400, "2024-%u", m);
	}
	cr_assert_eq(gov_month_days(2023, 2), 28);
	cr_assert_eq(gov_month_days(2100, 2), 28); /* divisible by 100, not 400 */
	cr_assert_eq(gov_month_days(2000, 2), 29); /* divisible by 400 */
	cr_assert_eq(gov_month_days(1900, 2), 28);
	struct gov_winpos p = win("1d", true, 0, ts(2024, 2, 29, 23, 59, 59));
	cr_assert_eq(p.start, ts(2024, 2, 29, 0, 0, 0));
	cr_assert_eq(p.end, ts(2024, 3, 1, 0, 0, 0));
	p = win("1M", true, 0, ts(2100, 2, 28, 23, 0, 0));
	cr_assert_eq(p.end, ts(2100, 3, 1, 0, 0, 0));
	cr_assert_eq(p.end - p.start, 28 * 86400);
	p = win("1M", true, 0, ts(2000, 2, 29, 0, 0, 0));
	cr_assert_eq(p.end - p.start, 29 * 86400);
	p = win("1M", true, 0, ts(2024, 12, 31, 23, 59, 59)); /* December rolls into next year */
	cr_assert_eq(p.end, ts(2025, 1, 1, 0, 0, 0));
	p = win("1Y", true, 0, ts(2024, 6, 15, 8, 0, 0));
	cr_assert(p.start == ts(2024, 1, 1, 0, 0, 0) && p.end == ts(2025, 1, 1, 0, 0, 0));
	cr_assert_eq(p.end - p.start, 366 * 86400);
	p = win("3M", true, 0, ts(2024, 5, 20, 0, 0, 0)); /* quarters */
	cr_assert(p.start == ts(2024, 4, 1, 0, 0, 0) && p.end == ts(2024, 7, 1, 0, 0, 0));
}

Test(gov_window, calendar_boundaries)
{
	struct gov_winpos p = win("5m", true, 0, ts(2024, 3, 10, 12, 7, 30));
	cr_assert(p.start == ts(2024, 3, 10, 12, 5, 0) && p.end == ts(2024, 3, 10, 12, 10, 0));
	p = win("1h", true, 0, ts(2024, 3, 10, 12, 7, 30));
	cr_assert_eq(p.start, ts(2024, 3, 10, 12, 0, 0));
	p = win("1m", true, 0, ts(2024, 3, 10, 12, 7, 0)); /* a boundary starts its own window */
	cr_assert_eq(p.start, ts(2024, 3, 10, 12, 7, 0));
	p = win("30s", true, 12345, ts(2024, 3, 10, 12, 7, 59)); /* anchor ignored when aligned */
	cr_assert_eq(p.start, ts(2024, 3, 10, 12, 7, 30));
}

Test(gov_window, iso_weeks_start_monday)
{
	struct gov_winpos p = win("1w", true, 0, ts(2024, 1, 3, 15, 0, 0)); /* Wednesday */
	cr_assert(p.start == ts(2024, 1, 1, 0, 0, 0) && p.end == ts(2024, 1, 8, 0, 0, 0));
	p = win("1w", true, 0, ts(2024, 1, 7, 23, 59, 59)); /* Sunday: same week */
	cr_assert_eq(p.start, ts(2024, 1, 1, 0, 0, 0));
	p = win("1w", true, 0, ts(2024, 1, 8, 0, 0, 0)); /* Monday 00:00: new week */
	cr_assert_eq(p.start, ts(2024, 1, 8, 0, 0, 0));
	p = win("1w", true, 0, ts(1969, 12, 31, 0, 0, 0)); /* before the epoch */
	cr_assert_eq(p.start, ts(1969, 12, 29, 0, 0, 0));
	p = win("1w", true, 0, ts(2024, 12, 31, 0, 0, 0)); /* across a year end */
	cr_assert(p.start == ts(2024, 12, 30, 0, 0, 0) && p.end == ts(2025, 1, 6, 0, 0, 0));
	for (int64_t t = ts(2020, 1, 1, 0, 0, 0); t < ts(2021, 1, 1, 0, 0, 0); t += 86400 + 3599) {
		p = win("2w", true, 0, t);
		cr_assert_eq(gov_fdiv(p.start - GOV_MONDAY_S, 86400) % 7, 0, "not a Monday");
		cr_assert_eq(p.end - p.start, 14 * 86400);
	}
}

Test(gov_window, rolling_multiples)
{
	int64_t a = ts(2024, 5, 1, 9, 17, 3);
	struct gov_winpos p = win("1h", false, a, a);
	cr_assert(p.start == a && p.end == a + 3600);
	p = win("1h", false, a, a + 3 * 3600 + 5);
	cr_assert(p.start == a + 3 * 3600 && p.end == a + 4 * 3600);
	p = win("1h", false, a, a + 4 * 3600 - 1);
	cr_assert_eq(p.start, a + 3 * 3600);
	p = win("30s", false, a, a - 1); /* before the anchor: windows extend backwards */
	cr_assert_eq(p.start, a - 30);
	p = win("1d", false, a, a + 10 * 86400 + 86399);
	cr_assert_eq(p.start, a + 10 * 86400);
	p = win("1w", false, a, a + 20 * 86400);
	cr_assert_eq(p.start, a + 14 * 86400);
	for (int64_t t = a; t < a + 40 * 86400; t += 3333) {
		p = win("7h", false, a, t);
		cr_assert_eq((p.start - a) % (7 * 3600), 0);
	}
}

Test(gov_window, rolling_months_clamp_day)
{
	int64_t a = ts(2024, 1, 31, 10, 0, 0);
	struct gov_winpos p = win("1M", false, a, ts(2024, 2, 29, 12, 0, 0));
	cr_assert(p.start == ts(2024, 2, 29, 10, 0, 0) && p.end == ts(2024, 3, 31, 10, 0, 0));
	p = win("1M", false, a, ts(2024, 2, 29, 9, 0, 0));
	cr_assert(p.start == a && p.end == ts(2024, 2, 29, 10, 0, 0));
	p = win("1M", false, a, ts(2024, 4, 30, 10, 0, 0)); /* Apr 30 is Jan 31 + 3M clamped */
	cr_assert_eq(p.start, ts(2024, 4, 30, 10, 0, 0));
	p = win("1M", false, ts(2023, 1, 31, 0, 0, 0), ts(2023, 3, 1, 0, 0, 0)); /* not leap */
	cr_assert_eq(p.start, ts(2023, 2, 28, 0, 0, 0));
	p = win("1Y", false, ts(2024, 2, 29, 0, 0, 0), ts(2025, 6, 1, 0, 0, 0));
	cr_assert(p.start == ts(2025, 2, 28, 0, 0, 0) && p.end == ts(2026, 2, 28, 0, 0, 0));
	p = win("2M", false, a, a - 86400); /* before the anchor */
	cr_assert_eq(p.start, ts(2023, 11, 30, 10, 0, 0));
	for (int64_t t = a; t < ts(2026, 1, 1, 0, 0, 0); t += 86400 * 3 + 7) /* windows tile */
		cr_assert_eq(win("1M", false, a, t).end, win("1M", false, a, win("1M", false, a, t).end).start);
}

/* ---- money ---- */

Test(gov_money, parse_dollars_exactly)
{
	static const struct { const char *s; int64_t v; } ok[] = {
		{ "2.5", 2500000 }, { "10", 10000000 }, { "0.075", 75000 }, { "1.25", 1250000 },
		{ "0", 0 }, { "0.0", 0 }, { "1e-6", 1 }, { "1.5e2", 150000000 }, { "2.50000000", 2500000 },
		{ "0.1", 100000 }, { "0.2", 200000 }, { "0.000001", 1 }, { "1000000", 1000000000000LL },
		{ "18.75", 18750000 }, { "0.0000010", 1 }, { "25E-1", 2500000 }, { "0e5", 0 },
	};
	static const struct { const char *s; int rc; } bad[] = {
		{ "-1", -EDOM }, { "-0.5", -EDOM }, { "0.0000001", -ENOTSUP }, { "1e-7", -ENOTSUP },
		{ "1e40", -ERANGE }, { "5000000", -ERANGE }, { "abc", -EINVAL }, { "01", -EINVAL },
		{ "1.", -EINVAL }, { ".5", -EINVAL }, { "", -EINVAL }, { "123456789012345678901234", -ERANGE },
		{ "1.0000000000000000000000001", -ERANGE },
	};
	int64_t v;
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		cr_assert_eq(gov_parse_micros(ok[i].s, strlen(ok[i].s), GOV_MAX_MICROS, &v), 0, "%s", ok[i].s);
		cr_assert_eq(v, ok[i].v, "%s → %lld", ok[i].s, (long long)v);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		cr_assert_eq(gov_parse_micros(bad[i].s, strlen(bad[i].s), GOV_MAX_MICROS, &v), bad[i].rc,
			     "%s", bad[i].s);
	/* 0.1 + 0.2 is exactly 0.3 here */
	int64_t a, b;
	gov_parse_micros("0.1", 3, GOV_MAX_MICROS, &a);
	gov_parse_micros("0.2", 3, GOV_MAX_MICROS, &b);
	cr_assert_eq(a + b, 300000);
}

Test(gov_money, cost_in_integer_micros)
{
	const struct gov_price *p = gov_price_find(NULL, "openai", "openai", "gpt-4o");
	cr_assert_not_null(p);
	cr_assert_eq(p->in, 2500000);
	cr_assert_eq(gov_cost_micros(p, 1000, 500, 0, 0), 7500); /* $0.0075 */
	cr_assert_eq(gov_cost_micros(p, 0, 0, 0, 0), 0);
	cr_assert_eq(gov_cost_micros(p, -5, -1, 0, 0), 0);
	cr_assert_eq(gov_cost_micros(NULL, 1000, 1000, 0, 0), 0);
	const struct gov_price *mini = gov_price_find(NULL, "openai", "openai", "gpt-4o-mini");
	cr_assert_eq(gov_cost_micros(mini, 1, 0, 0, 0), 1); /* 0.15 µ$ rounds UP to 1 */
	cr_assert_eq(gov_cost_micros(mini, 20, 0, 0, 0), 3); /* 3.0 exactly: no extra */
	cr_assert_eq(gov_cost_micros(mini, 21, 0, 0, 0), 4); /* 3.15 → 4 */
	const struct gov_price *s4 = gov_price_find(NULL, "anthropic", "anthropic", "claude-sonnet-4-20250514");
	cr_assert_eq(gov_cost_micros(s4, 100, 50, 1000, 2000), 8850);
	struct gov_price huge = { INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX };
	cr_assert_eq(gov_cost_micros(&huge, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX), INT64_MAX);
	cr_assert_eq(gov_cost_micros(&huge, 1, 0, 0, 0), INT64_MAX / 1000000 + 1);
	/* a million output tokens cost exactly the list price */
	cr_assert_eq(gov_cost_micros(s4, 0, 1000000, 0, 0), 15000000);
}

static int64_t price_in(const struct gov *g, const char *prov, const char *model)
{
	const struct gov_price *p = gov_price_find(g, prov, prov, model);
	return p ? p->in : -1;
}

Test(gov_money, builtin_table_matching)
{
	cr_assert_eq(price_in(NULL, "openai", "gpt-4o-2024-08-06"), 2500000);
	cr_assert_eq(price_in(NULL, "openai", "gpt-4o-mini-2024-07-18"), 150000);
	cr_assert_eq(price_in(NULL, "openai", "gpt-4.1-nano"), 100000);
	cr_assert_eq(price_in(NULL, "openai", "o3-mini"), 1100000);
	cr_assert_eq(price_in(NULL, "openai", "o3"), 2000000);
	cr_assert_eq(price_in(NULL, "openai", "o1-2024-12-17"), 15000000);
	cr_assert_eq(price_in(NULL, "openai", "gpt-5-mini-2025-08-07"), 250000);
	cr_assert_eq(price_in(NULL, "anthropic", "claude-opus-4-1-20250805"), 15000000);
	cr_assert_eq(price_in(NULL, "anthropic", "claude-opus-4-5-20251101"), 5000000);
	cr_assert_eq(price_in(NULL, "anthropic", "claude-sonnet-4-5-20250929"), 3000000);
	cr_assert_eq(price_in(NULL, "anthropic", "claude-3-7-sonnet-latest"), 3000000);
	cr_assert_eq(price_in(NULL, "anthropic", "claude-3-5-haiku-20241022"), 800000);
	cr_assert_eq(price_in(NULL, "anthropic", "claude-haiku-4-5"), 1000000);
	cr_assert_eq(price_in(NULL, "bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0"), 800000);
	cr_assert_eq(price_in(NULL, "openrouter", "openai/gpt-4o"), 2500000);
	cr_assert_eq(price_in(NULL, "openai", "gpt-4o2"), -1); /* prefixes stop at a boundary */
	cr_assert_eq(price_in(NULL, "ollama", "llama3"), -1);
}

/* ---- journal ---- */

static struct jrnl_rec rec(uint64_t ent, int64_t win, int64_t spend, int64_t t_ns)
{
	return (struct jrnl_rec){ .kind = GK_KEY, .type = JRNL_CHARGE, .ent = ent, .win_start = win,
				  .spend = spend, .tok_in = 10, .tok_out = 20, .req = 77, .t_ns = t_ns };
}

Test(jrnl, crc32c_known_answer)
{
	cr_assert_eq(jrnl_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
	cr_assert_eq(jrnl_crc32c(0, (const uint8_t *)"", 0), 0u);
}

Test(jrnl, encode_decode_and_every_bit_flip)
{
	struct jrnl_rec r = rec(0x0123456789abcdefULL, JRNL_TIME_MAX, JRNL_AMT_MAX, INT64_MAX), d;
	r.kind = GK_PROVIDER;
	r.type = JRNL_TOTAL;
	r.req = (uint64_t)JRNL_AMT_MAX;
	uint8_t b[JRNL_REC];
	jrnl_encode(&r, b);
	cr_assert_eq(jrnl_decode(b, &d), 0);
	cr_assert(d.kind == r.kind && d.type == r.type && d.ent == r.ent && d.win_start == r.win_start &&
		  d.spend == r.spend && d.tok_in == r.tok_in && d.tok_out == r.tok_out && d.req == r.req &&
		  d.t_ns == r.t_ns);
	for (int bit = 0; bit < JRNL_REC * 8; bit++) {
		b[bit / 8] ^= (uint8_t)(1 << bit % 8);
		cr_assert_eq(jrnl_decode(b, &d), -EBADMSG, "bit %d", bit);
		b[bit / 8] ^= (uint8_t)(1 << bit % 8);
	}
	uint8_t zero[JRNL_REC] = { 0 };
	cr_assert_eq(jrnl_decode(zero, &d), -EBADMSG);
	struct jrnl_rec ch = rec(9, 1000, 5, 1); /* a CHARGE's req is a random request id */
	ch.req = UINT64_MAX;
	jrnl_encode(&ch, b);
	cr_assert_eq(jrnl_decode(b, &d), 0);
	ch.type = JRNL_TOTAL; /* a TOTAL's is a count: bounded */
	jrnl_encode(&ch, b);
	cr_assert_eq(jrnl_decode(b, &d), -EBADMSG);
}

struct collect {
	struct jrnl_rec r[64];
	int n;
};

static void collect_apply(void *ctx, const struct jrnl_rec *r)
{
	struct collect *c = ctx;
	if (c->n < 64)
		c->r[c->n] = *r;
	c->n++;
}

/* The committer's cycle done at once: write, fdatasync, publish. Records written, or -errno. */
static int commit(struct jrnl *j)
{
	int n = jrnl_write(j);
	if (n < 0 || !jrnl_sync_begin(j))
		return n;
	int rc = jrnl_sync_end(j, fdatasync(j->fd) == 0 ? 0 : -errno);
	return rc < 0 ? rc : n;
}

static int tmpfile_fd(char *path)
{
	strcpy(path, "/tmp/gov_jrnl_XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	return fd;
}

/* Commit n charges through two writer rings into a fresh file. */
static void journal_of(struct jrnl *j, struct jrnl_ring **q, int n)
{
	j->w = q;
	j->nw = 2;
	for (int i = 0; i < n; i++) {
		struct jrnl_rec r = rec(100 + (uint64_t)i, 1000, i, i);
		cr_assert_eq(jrnl_append(q[i & 1], &r), (int64_t)(i / 2 + 1));
	}
	cr_assert_eq(commit(j), n);
	cr_assert_eq(jrnl_safe(q[0], true), (uint64_t)(n + 1) / 2);
	cr_assert_eq(jrnl_safe(q[0], false), (uint64_t)(n + 1) / 2);
	cr_assert_eq(commit(j), 0); /* nothing pending: no write, no fdatasync */
}

Test(jrnl, replay_torn_tail_and_corrupt_middle)
{
	char path[64];
	struct jrnl_ring *q[2] = { calloc(1, sizeof(struct jrnl_ring)), calloc(1, sizeof(struct jrnl_ring)) };
	struct jrnl j = { .fd = tmpfile_fd(path) };
	journal_of(&j, q, 10);
	cr_assert_eq(j.end, 10 * JRNL_REC);

	struct collect c = { .n = 0 };
	off_t end;
	long skipped;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 10);
	cr_assert_eq(end, 10 * JRNL_REC);
	int64_t sum = 0;
	for (int i = 0; i < 10; i++)
		sum += c.r[i].spend;
	cr_assert_eq(sum, 45);

	/* torn tail: a partial record after the last whole one */
	uint8_t part[JRNL_REC];
	struct jrnl_rec r = rec(1, 1, 1, 1);
	jrnl_encode(&r, part);
	cr_assert_eq(pwrite(j.fd, part, 30, 10 * JRNL_REC), 30);
	c.n = 0;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 10);
	cr_assert_eq(end, 10 * JRNL_REC);
	/* a whole record with a bad checksum at the tail is dropped too */
	part[40] ^= 1;
	cr_assert_eq(pwrite(j.fd, part, JRNL_REC, 10 * JRNL_REC), JRNL_REC);
	c.n = 0;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 10);

	cr_assert_eq(skipped, 0, "a torn tail is not damage");

	/* corrupt record #3: skipped, every other record still replayed */
	uint8_t byte;
	cr_assert_eq(pread(j.fd, &byte, 1, 3 * JRNL_REC + 20), 1);
	byte ^= 0x80;
	cr_assert_eq(pwrite(j.fd, &byte, 1, 3 * JRNL_REC + 20), 1);
	c.n = 0;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 9);
	cr_assert_eq(skipped, 1);
	cr_assert_eq(end, 10 * JRNL_REC);
	sum = 0;
	for (int i = 0; i < 9; i++)
		sum += c.r[i].spend;
	cr_assert_eq(sum, 45 - 6, "only the 4th record's charge (6: rings commit in turn) is missing, sum %lld", (long long)sum);

	/* a CRC-valid record whose values are out of range is damage too */
	struct jrnl_rec wild = rec(7, 1000, 1, 1);
	wild.win_start = INT64_MAX;
	uint8_t enc[JRNL_REC];
	jrnl_encode(&wild, enc);
	cr_assert_eq(jrnl_decode(enc, &wild), -EBADMSG);
	wild = rec(7, 1000, -5, 1);
	jrnl_encode(&wild, enc);
	cr_assert_eq(jrnl_decode(enc, &wild), -EBADMSG);
	wild = rec(0, 1000, 5, 1);
	jrnl_encode(&wild, enc);
	cr_assert_eq(jrnl_decode(enc, &wild), -EBADMSG, "entity key 0 is never written");

	/* the caller truncates at valid_end and appends on */
	cr_assert_eq(ftruncate(j.fd, end), 0);
	j.end = j.wend = end;
	struct jrnl_rec more = rec(5, 1000, 100, 99);
	cr_assert(jrnl_append(q[0], &more) > 0);
	cr_assert_eq(commit(&j), 1);
	c.n = 0;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 10);
	cr_assert_eq(c.r[9].spend, 100);
	close(j.fd);
	unlink(path);
	free(q[0]);
	free(q[1]);
}

/* jrnl_write publishes `written` (durability "process" may release last bytes) before any
 * sync; `durable` only when the sync ends. A write that fails publishes nothing. */
Test(jrnl, written_is_published_before_the_fdatasync)
{
	char path[64];
	struct jrnl_ring *q = calloc(1, sizeof(*q));
	struct jrnl j = { .fd = tmpfile_fd(path), .w = &q, .nw = 1 };
	struct jrnl_rec r = rec(9, 0, 1, 0);
	for (int i = 0; i < 3; i++)
		cr_assert(jrnl_append(q, &r) > 0);
	cr_assert_eq(jrnl_write(&j), 3);
	cr_assert_eq(jrnl_safe(q, false), 3);
	cr_assert_eq(jrnl_safe(q, true), 0, "durable before the fdatasync");
	cr_assert(jrnl_sync_begin(&j));
	cr_assert_eq(jrnl_sync_end(&j, 0), 0);
	cr_assert_eq(jrnl_safe(q, true), 3);
	cr_assert_eq(commit(&j), 0, "nothing to write");

	/* a write that fails publishes nothing */
	cr_assert(jrnl_append(q, &r) > 0);
	int ro = open(path, O_RDONLY);
	cr_assert(ro >= 0);
	close(j.fd);
	j.fd = ro;
	cr_assert(jrnl_write(&j) < 0);
	cr_assert_eq(jrnl_safe(q, false), 3);
	cr_assert_eq(jrnl_safe(q, true), 3);
	close(j.fd);
	unlink(path);
	free(q);
}

/* Records written while a sync is in flight wait for the next one; a failed sync cuts the
 * file back to what is durable and the same records are written again, once. */
Test(jrnl, sync_pipeline_and_failed_sync)
{
	char path[64];
	struct jrnl_ring *q = calloc(1, sizeof(*q));
	struct jrnl j = { .fd = tmpfile_fd(path), .w = &q, .nw = 1 };
	for (int i = 0; i < 2; i++) {
		struct jrnl_rec r = rec(9, 0, 100 + i, 0);
		cr_assert(jrnl_append(q, &r) > 0);
	}
	cr_assert_eq(jrnl_write(&j), 2);
	cr_assert(jrnl_sync_begin(&j));                      /* covers records 1-2 */
	struct jrnl_rec r3 = rec(9, 0, 102, 0);
	cr_assert(jrnl_append(q, &r3) > 0);
	cr_assert_eq(jrnl_write(&j), 1);               /* written during the sync */
	cr_assert_eq(jrnl_safe(q, false), 3);
	cr_assert_eq(jrnl_sync_end(&j, 0), 0);
	cr_assert_eq(jrnl_safe(q, true), 2, "the sync covers what was written when it began");
	cr_assert_eq(j.end, 2 * JRNL_REC);
	cr_assert_eq(j.wend, 3 * JRNL_REC);

	cr_assert(jrnl_sync_begin(&j));                      /* record 3 */
	cr_assert_eq(jrnl_sync_end(&j, -EIO), -EIO);          /* the disk failed it */
	cr_assert_eq(jrnl_safe(q, false), 2, "written goes back to durable");
	cr_assert_eq(jrnl_safe(q, true), 2);
	struct stat st;
	cr_assert_eq(fstat(j.fd, &st), 0);
	cr_assert_eq(st.st_size, 2 * JRNL_REC, "the file is cut back to what is durable");
	cr_assert_eq(jrnl_write(&j), 1);               /* record 3 again */
	cr_assert(jrnl_sync_begin(&j));
	cr_assert_eq(jrnl_sync_end(&j, 0), 0);
	cr_assert_eq(jrnl_safe(q, true), 3);
	cr_assert_not(jrnl_sync_begin(&j), "nothing left to sync");

	struct collect c = { .n = 0 };
	off_t end;
	long skipped;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 3, "each record once");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(c.r[i].spend, 100 + i);
	close(j.fd);
	unlink(path);
	free(q);
}

Test(jrnl, ring_full_and_wraparound)
{
	char path[64];
	struct jrnl_ring *q = calloc(1, sizeof(*q));
	struct jrnl j = { .fd = tmpfile_fd(path), .w = &q, .nw = 1 };
	struct jrnl_rec r = rec(9, 0, 1, 0);
	for (int i = 0; i < JRNL_RING - 10; i++)
		cr_assert(jrnl_append(q, &r) > 0);
	cr_assert_eq(commit(&j), JRNL_RING - 10);
	for (int i = 0; i < JRNL_RING; i++) /* wraps around the end of the ring */
		cr_assert(jrnl_append(q, &r) > 0);
	cr_assert_eq(jrnl_append(q, &r), -EAGAIN);
	cr_assert_eq(commit(&j), JRNL_RING);
	cr_assert(jrnl_append(q, &r) > 0);
	struct collect c = { .n = 0 };
	off_t end;
	long skipped;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 2 * JRNL_RING - 10);
	close(j.fd);
	unlink(path);
	free(q);
}

Test(jrnl, compaction_keeps_latest_window_per_entity)
{
	char path[64];
	struct jrnl_ring *q = calloc(1, sizeof(*q));
	struct jrnl j = { .fd = tmpfile_fd(path), .w = &q, .nw = 1 };
	struct jrnl_rec rs[] = {
		rec(1, 1000, 5, 1), rec(1, 1000, 7, 2),                    /* A, old window */
		rec(2, 1000, 11, 3),                                      /* B */
		rec(1, 2000, 100, 4), rec(1, 2000, 200, 5), rec(1, 1000, 9, 3), /* A new + a straggler
										  (written late, clock behind) */
		rec(1, 2000, 300, 7),
	};
	for (size_t i = 0; i < ARRAY_LEN(rs); i++)
		jrnl_append(q, &rs[i]);
	cr_assert_eq(commit(&j), (int)ARRAY_LEN(rs));
	cr_assert_eq(jrnl_compact(&j, path), 0);
	cr_assert_eq(j.end, 2 * JRNL_REC);
	struct collect c = { .n = 0 };
	off_t end;
	long skipped;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(c.r[i].type, JRNL_TOTAL);
		if (c.r[i].ent == 1)
			cr_assert(c.r[i].win_start == 2000 && c.r[i].spend == 600 && c.r[i].req == 3 &&
				  c.r[i].tok_in == 30 && c.r[i].tok_out == 60);
		else
			cr_assert(c.r[i].ent == 2 && c.r[i].spend == 11 && c.r[i].req == 1);
	}
	/* appending continues on the compacted file; compacting again is stable */
	jrnl_append(q, &rs[6]);
	cr_assert_eq(commit(&j), 1);
	cr_assert_eq(jrnl_compact(&j, path), 0);
	c.n = 0;
	cr_assert_eq(jrnl_replay(j.fd, collect_apply, &c, &end, &skipped), 2);
	for (int i = 0; i < 2; i++)
		if (c.r[i].ent == 1)
			cr_assert(c.r[i].spend == 900 && c.r[i].req == 4);
	char tmp[80];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_assert_neq(access(tmp, F_OK), 0, "temporary file left behind");
	close(j.fd);
	unlink(path);
	free(q);
}

/* ---- counters ---- */

Test(gov_ctr, window_roll_once_and_stale_callers)
{
	_Atomic uint64_t c = 0;
	struct gov_winpos w0 = { 1000, 1060 }, w1 = { 1060, 1120 }, w2 = { 1120, 1180 };
	gov_ctr_add(&c, &w0, 5);
	gov_ctr_add(&c, &w0, 3);
	cr_assert_eq(gov_ctr_get(&c, &w0), 8);
	cr_assert_eq(gov_ctr_get(&c, &w1), 0); /* a new window starts at zero */
	gov_ctr_add(&c, &w1, 2);
	cr_assert_eq(gov_ctr_get(&c, &w1), 2);
	gov_ctr_add(&c, &w0, 4); /* caller's clock is behind: lands in w1, does not wipe it */
	cr_assert_eq(gov_ctr_get(&c, &w1), 6);
	int64_t in = -1;
	cr_assert(!gov_ctr_admit(&c, &w1, 6, 1, &in));
	cr_assert(gov_ctr_admit(&c, &w2, 6, 1, &in));
	cr_assert_eq(in, w2.start);
	struct gov_winpos w1late = { w1.start, w2.start };
	cr_assert(gov_ctr_admit(&c, &w1late, 6, 0, &in), "a lagging clock's admit lands in the next window");
	cr_assert_eq(in, w2.start, "and says so, so its undo names that window");
	cr_assert_eq(gov_ctr_get(&c, &w2), 1);
	gov_ctr_add(&c, &w2, -100); /* clamps at zero */
	cr_assert_eq(gov_ctr_get(&c, &w2), 0);
	gov_ctr_add(&c, &w2, INT64_MAX); /* saturates */
	cr_assert_eq(gov_ctr_get(&c, &w2), GOV_AMT_MAX);
}

Test(gov_ctr, settle_across_a_reset)
{
	struct gov_region *r = gov_region_map(4);
	struct gov_slot *s = gov_slot_claim(r, 42, 0);
	struct gov_winpos w0 = { 0, 100 }, w1 = { 100, 200 };
	int64_t in;
	cr_assert(gov_reserve(s, &w0, 1000, 300, &in));
	gov_settle(s, &w0, w0.start, 300, 120, 50, 1);
	cr_assert_eq(gov_ctr_get(&s->used, &w0), 120);
	cr_assert_eq(gov_ctr_get(&s->spend, &w0), 120);
	cr_assert(gov_reserve(s, &w0, 1000, 300, &in));
	gov_settle(s, &w1, w0.start, 300, 80, 5, 1); /* completes after the reset: charged in full */
	cr_assert_eq(gov_ctr_get(&s->used, &w1), 80);
	cr_assert_eq(gov_ctr_get(&s->spend, &w1), 80);
	cr_assert_eq(gov_ctr_get(&s->requests, &w1), 1);
	cr_assert_eq(atomic_load(&s->win_start), 100);
	cr_assert_eq(gov_slot_claim(r, 42, 7), s); /* the same entity finds its slot again */
	cr_assert_neq(gov_slot_claim(r, 43, 0), s);
	gov_region_unmap(r);
}

struct hammer {
	struct gov_slot *s;
	int64_t limit, est, actual;
	_Atomic int64_t max_seen;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	struct gov_winpos w = { 0, INT64_MAX };
	for (int i = 0; i < 20000; i++) {
		int64_t in;
		if (!gov_reserve(h->s, &w, h->limit, h->est, &in))
			continue;
		gov_settle(h->s, &w, w.start, h->est, h->actual, 1, 1);
		int64_t now = (int64_t)gov_ctr_get(&h->s->spend, &w), m = atomic_load(&h->max_seen);
		while (now > m && !atomic_compare_exchange_weak(&h->max_seen, &m, now))
			;
	}
	return NULL;
}

static int64_t hammer(int nthreads, int64_t limit, int64_t est, int64_t actual)
{
	struct gov_region *r = gov_region_map(1);
	struct hammer h = { gov_slot_claim(r, 1, 0), limit, est, actual, 0 };
	pthread_t t[16];
	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, hammer_run, &h);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	struct gov_winpos w = { 0, INT64_MAX };
	int64_t spend = (int64_t)gov_ctr_get(&h.s->spend, &w);
	cr_assert_eq(spend, (int64_t)gov_ctr_get(&h.s->used, &w), "reservations leaked");
	cr_assert_eq(spend, h.max_seen);
	cr_assert_eq(spend % actual, 0);
	gov_region_unmap(r);
	return spend;
}

Test(gov_ctr, concurrent_reservations_stay_within_bound)
{
	/* estimates are upper bounds: spend < limit + one request's cost */
	int64_t s = hammer(12, 1000000, 7000, 6999);
	cr_assert(s >= 1000000 - 7000 && s < 1000000 + 6999, "spend %lld", (long long)s);
	/* exact estimates: the limit is reached and crossed by at most one request */
	s = hammer(12, 1000000, 3000, 3000);
	cr_assert(s >= 1000000 && s < 1000000 + 3000, "spend %lld", (long long)s);
	/* underestimates by U: spend < limit + a + (threads - 1) × U */
	s = hammer(12, 1000000, 3000, 4000);
	cr_assert(s < 1000000 + 4000 + 11 * 1000, "spend %lld", (long long)s);
}

/* ---- config ---- */

static struct cfg *parse(const char *text, struct arena *ea, struct sb *errs)
{
	arena_init(ea, NULL);
	sb_init(errs, ea, 256);
	char *t = strdup(text);
	return cfg_parse(t, strlen(t), "test.json", errs);
}

static const char good_cfg[] =
	"{\"providers\":[{\"name\":\"openai\",\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\","
	"  \"budget\":{\"max_limit\":100,\"reset_duration\":\"1M\",\"calendar_aligned\":true}},"
	" {\"name\":\"local\",\"provider\":\"ollama\",\"base_url\":\"http://127.0.0.1:11434/v1\"}],"
	"\"pricing\":{\"openai/gpt-4o\":{\"input\":2,\"output\":8,\"cache_read\":\"0.5\"},"
	"            \"llama*\":{\"input\":0.01,\"output\":0.02}},"
	"\"governance\":{\"enforce\":true,"
	" \"customers\":[{\"id\":\"acme\",\"budget\":{\"max_limit\":1000,\"reset_duration\":\"1M\"}}],"
	" \"teams\":[{\"id\":\"platform\",\"customer_id\":\"acme\",\"budget\":{\"max_limit\":500.25,\"reset_duration\":\"1w\"}}],"
	" \"virtual_keys\":[{\"id\":\"alice\",\"value\":\"sk-bf-alice\",\"team_id\":\"platform\",\"active\":true,"
	"   \"budget\":{\"max_limit\":0.05,\"reset_duration\":\"1d\",\"calendar_aligned\":false},"
	"   \"rate_limit\":{\"request_max_limit\":3,\"request_reset_duration\":\"1m\","
	"                 \"token_max_limit\":200000,\"token_reset_duration\":\"1h\",\"max_concurrent\":2},"
	"   \"allowed_models\":[\"gpt-*\"],\"allowed_providers\":[\"openai\"],"
	"   \"provider_configs\":[{\"provider\":\"openai\",\"weight\":30,"
	"                          \"budget\":{\"max_limit\":20,\"reset_duration\":\"1d\"}}]},"
	"  {\"id\":\"bob\",\"value\":\"sk-bf-bob\",\"active\":false}]}}";

Test(gov_cfg, parses_every_tier)
{
	struct arena ea;
	struct sb errs;
	struct cfg *c = parse(good_cfg, &ea, &errs);
	cr_assert_not_null(c, "%.*s", (int)errs.len, errs.p);
	struct gov *g = c->gov;
	cr_assert(g->enforce && g->ncust == 1 && g->nteam == 1 && g->nkey == 2 && g->nprov == 2);
	cr_assert_eq(g->cust[0].budget.max, 1000000000);
	cr_assert_eq(g->team[0].e.budget.max, 500250000);
	cr_assert(g->team[0].e.budget.win.unit == GU_WEEK && g->team[0].customer == 0);
	const struct gov_vkey *a = &g->key[0];
	cr_assert(a->e.budget.max == 50000 && a->e.budget.win.unit == GU_DAY && !a->e.budget.cal);
	cr_assert(a->team == 0 && a->customer == 0 && a->active);
	cr_assert(a->e.rate.req_max == 3 && a->e.rate.req_win.unit == GU_MIN);
	cr_assert(a->e.rate.tok_max == 200000 && a->e.rate.tok_win.unit == GU_HOUR);
	cr_assert_eq(a->e.rate.max_conc, 2);
	cr_assert(a->npc == 1 && a->pc[0].weight == 30000 && a->pc[0].e.budget.max == 20000000);
	cr_assert_str_eq(a->pc[0].e.id, "alice/openai");
	cr_assert(!g->key[1].active && g->key[1].team < 0 && g->key[1].e.budget.max < 0);
	cr_assert(g->prov[0].budget.max == 100000000 && g->prov[0].budget.cal);
	cr_assert(g->prov[1].budget.max < 0);
	cr_assert_eq(g->nall, 1 + 1 + 2 + 1 + 2);
	for (int i = 0; i < g->nall; i++)
		cr_assert_eq(gov_ent_find(g, g->all[i]->key), g->all[i]);
	/* pricing: config overrides the built-ins for that provider only */
	cr_assert_eq(price_in(g, "openai", "gpt-4o"), 2000000);
	cr_assert_eq(gov_price_find(g, "openai", "openai", "gpt-4o")->cache_read, 500000);
	cr_assert_eq(price_in(g, "azure", "gpt-4o"), 2500000);
	cr_assert_eq(price_in(g, "local", "llama3.1:8b"), 10000);
	/* keys */
	cr_assert_eq(gov_key_find(g, "sk-bf-alice", 11), a);
	cr_assert_eq(gov_key_find(g, "sk-bf-bob", 9), &g->key[1]);
	cr_assert_null(gov_key_find(g, "sk-bf-alicf", 11));
	cr_assert_null(gov_key_find(g, "sk-bf-alice2", 12));
	cr_assert_null(gov_key_find(g, "sk-bf-alic", 10));
	cr_assert_null(gov_key_find(g, "", 0));
	cr_assert(gov_key_allows(a, "openai", "gpt-4o") && !gov_key_allows(a, "local", "gpt-4o") &&
		  !gov_key_allows(a, "openai", "claude-3"));
	cr_assert_eq(gov_key_pcfg(a, "openai", "openai"), &a->pc[0]);
	cr_assert_null(gov_key_pcfg(a, "local", "ollama"));
	cfg_put(c);
	arena_reset(&ea);
}

Test(gov_cfg, lists_every_problem)
{
	static const char bad[] =
		"{\"providers\":[{\"name\":\"openai\",\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\","
		"  \"budget\":{\"max_limit\":-3,\"reset_duration\":\"1M\"}}],"
		"\"pricing\":{\"gpt-x\":{\"input\":-1,\"output\":0.0000001}},"
		"\"governance\":{\"enforce\":\"yes\",\"durability\":\"fast\","
		" \"customers\":[{\"id\":\"acme\"},{\"id\":\"acme\"}],"
		" \"teams\":[{\"id\":\"t1\",\"customer_id\":\"nobody\"}],"
		" \"virtual_keys\":[{\"id\":\"k1\",\"value\":\"same\",\"team_id\":\"ghost\","
		"    \"budget\":{\"max_limit\":5,\"reset_duration\":\"3x\"},"
		"    \"rate_limit\":{\"request_max_limit\":-1,\"request_reset_duration\":\"1m\",\"token_max_limit\":5,"
		"                  \"max_concurrent\":0},"
		"    \"provider_configs\":[{\"provider\":\"nope\"}]},"
		"  {\"id\":\"k1\",\"value\":\"x\"},"
		"  {\"id\":\"k2\",\"value\":\"same\",\"budget\":{\"reset_duration\":\"1d\"}},"
		"  {\"value\":\"noid\"}]}}";
	static const char *const want[] = {
		"providers[0].budget.max_limit must not be negative",
		"pricing.gpt-x.input must not be negative",
		"pricing.gpt-x.output is finer than a micro-dollar",
		"governance.enforce must be true or false",
		"governance.durability must be \"disk\" or \"process\"",
		"governance.customers: id \"acme\" is used twice",
		"team t1: customer_id \"nobody\" is not a configured customer",
		"virtual key k1: team_id \"ghost\" is not a configured team",
		"governance.virtual_keys[0].budget.reset_duration: \"3x\" is not a duration",
		"governance.virtual_keys[0].rate_limit.request_max_limit must be between 0 and",
		"governance.virtual_keys[0].rate_limit.token_reset_duration is required",
		"governance.virtual_keys[0].rate_limit.max_concurrent must be between 1 and",
		"provider_configs: \"nope\" is not a configured provider",
		"governance.virtual_keys: id \"k1\" is used twice",
		"virtual keys k1 and k2 have the same value",
		"governance.virtual_keys[2].budget.max_limit is required",
		"governance.virtual_keys[3].id is required",
	};
	struct arena ea;
	struct sb errs;
	cr_assert_null(parse(bad, &ea, &errs));
	sb_put(&errs, "", 1);
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		cr_assert_not_null(strstr(errs.p, want[i]), "missing: %s\n--- got:\n%s", want[i], errs.p);
	arena_reset(&ea);
}

Test(gov_cfg, absent_blocks_give_an_empty_gov)
{
	struct arena ea;
	struct sb errs;
	struct cfg *c = parse("{\"providers\":[]}", &ea, &errs);
	cr_assert_not_null(c, "%.*s", (int)errs.len, errs.p);
	cr_assert(c->gov && !c->gov->enforce && c->gov->nkey == 0 && c->gov->nall == 0);
	cr_assert_null(gov_key_find(c->gov, "x", 1));
	cr_assert_eq(price_in(c->gov, "openai", "gpt-4o"), 2500000);
	cfg_put(c);
	arena_reset(&ea);
}

/* ---- admission across tiers ---- */

struct fixture {
	struct arena ea;
	struct sb errs;
	struct cfg *c;
	struct gov_region *r;
};

static void fixture_up(struct fixture *f, int64_t now)
{
	f->c = parse(good_cfg, &f->ea, &f->errs);
	cr_assert_not_null(f->c);
	f->r = gov_region_map(64);
	cr_assert_eq(gov_bind(f->c->gov, f->r, now), 0);
}

static void fixture_down(struct fixture *f)
{
	cfg_put(f->c);
	arena_reset(&f->ea);
	gov_region_unmap(f->r);
}

Test(gov_admit, budget_rate_concurrency_and_rollback)
{
	struct fixture f;
	int64_t now = ts(2024, 6, 3, 10, 0, 0);
	fixture_up(&f, now);
	struct gov *g = f.c->gov;
	const struct gov_vkey *a = &g->key[0];
	struct gov_ticket t[4];
	struct gov_deny d;
	struct jrnl_rec out[GOV_TIERS];
	for (int i = 0; i < 4; i++)
		gov_tiers(&t[i], g, a, 0, "openai", "openai");
	cr_assert_eq(t[0].n, 5); /* customer, team, key, provider config, provider */
	cr_assert_eq(gov_admit(&t[0], now, 1000, &d), 0);
	cr_assert_eq(gov_admit(&t[1], now, 1000, &d), 0);
	cr_assert_eq(gov_admit(&t[2], now, 1000, &d), -EAGAIN); /* max_concurrent 2 */
	cr_assert(d.status == 429 && d.who == &a->e && strcmp(d.what, "concurrency") == 0);
	cr_assert_eq(atomic_load(&g->cust[0].slot->in_flight), 2, "refusal must undo upper tiers");
	cr_assert_eq(gov_complete(&t[0], now, 900, 100, 50, 1, 1, out), 5);
	cr_assert(out[0].ent == g->prov[0].key && out[4].ent == g->cust[0].key && out[2].spend == 900);
	gov_abort(&t[1], now);
	struct gov_winpos p;
	gov_pos_budget(&a->e, now, &p);
	cr_assert_eq(gov_ctr_get(&a->e.slot->spend, &p), 900);
	cr_assert_eq(gov_ctr_get(&a->e.slot->used, &p), 900, "aborted reservation released");
	cr_assert_eq(atomic_load(&a->e.slot->in_flight), 0);
	/* request rate: 3 per minute, two used above (the refused one was uncounted) */
	cr_assert_eq(gov_admit(&t[2], now, 0, &d), 0);
	gov_complete(&t[2], now, 0, 0, 0, 2, 2, out);
	cr_assert_eq(gov_admit(&t[3], now + 5, 0, &d), -EAGAIN);
	cr_assert(d.status == 429 && strcmp(d.what, "request rate") == 0 && d.retry_after_s == 55);
	cr_assert_eq(gov_admit(&t[3], now + 60, 0, &d), 0); /* the next minute */
	gov_complete(&t[3], now + 60, 0, 0, 0, 3, 3, out);
	/* budget: $0.05 a day on the key; 900 µ$ spent, reserve up to the limit */
	cr_assert_eq(gov_admit(&t[0], now + 120, 49000, &d), 0);
	cr_assert_eq(gov_complete(&t[0], now + 120, 49100, 1, 1, 4, 4, out), 5);
	cr_assert_eq(gov_admit(&t[1], now + 180, 1, &d), -EDQUOT);
	cr_assert(d.status == 402 && d.who == &a->e && strcmp(d.what, "budget") == 0);
	cr_assert_eq(d.reset_at_s, now + 86400); /* rolling day from the bind time */
	cr_assert_eq(gov_admit(&t[1], now + 86400, 1, &d), 0); /* a new day */
	gov_abort(&t[1], now + 86400);
	/* usage JSON mentions every entity */
	struct sb b;
	sb_init(&b, &f.ea, 256);
	gov_usage_json(&b, g, now + 200);
	sb_put(&b, "", 1);
	struct json j;
	cr_assert_eq(json_parse(&j, &f.ea, b.p, b.len - 1), 0, "%s", b.p);
	cr_assert_not_null(strstr(b.p, "\"id\":\"alice\",\"spend\":0.050000,\"spend_micros\":50000"), "%s", b.p);
	cr_assert_not_null(strstr(b.p, "\"provider_configs\":[{\"id\":\"alice/openai\""), "%s", b.p);
	fixture_down(&f);
}

Test(gov_admit, token_rate_limit)
{
	struct fixture f;
	int64_t now = ts(2024, 6, 3, 10, 0, 0);
	fixture_up(&f, now);
	const struct gov_vkey *a = &f.c->gov->key[0];
	struct gov_ticket t;
	struct gov_deny d;
	struct jrnl_rec out[GOV_TIERS];
	gov_tiers(&t, f.c->gov, a, 1, "local", "ollama"); /* no provider config for local */
	cr_assert_eq(t.n, 4);
	cr_assert_eq(gov_admit(&t, now, 0, &d), 0);
	gov_complete(&t, now, 0, 150000, 50000, 1, 1, out); /* 200k tokens: at the limit */
	cr_assert_eq(gov_admit(&t, now + 10, 0, &d), -EAGAIN);
	cr_assert(strcmp(d.what, "token rate") == 0 && d.retry_after_s == 3590);
	cr_assert_eq(atomic_load(&a->e.slot->in_flight), 0);
	fixture_down(&f);
}

struct replay_ctx {
	struct gov *g;
};

Test(gov_admit, journal_replay_restores_spend_exactly)
{
	char path[64];
	int64_t now = ts(2024, 6, 3, 10, 0, 0), total = 0;
	struct fixture f;
	fixture_up(&f, now);
	struct gov *g = f.c->gov;
	struct jrnl_ring *q = calloc(1, sizeof(*q));
	struct jrnl j = { .fd = tmpfile_fd(path), .w = &q, .nw = 1 };
	struct jrnl_rec out[GOV_TIERS];
	for (int i = 0; i < 7; i++) {
		struct gov_ticket t;
		struct gov_deny d;
		gov_tiers(&t, g, &g->key[0], 0, "openai", "openai");
		cr_assert_eq(gov_admit(&t, now + i * 70, 100, &d), 0);
		int n = gov_complete(&t, now + i * 70, 1000 + i, 10, 20, (uint64_t)i, i, out);
		for (int k = 0; k < n; k++)
			cr_assert(jrnl_append(q, &out[k]) > 0);
		total += 1000 + i;
	}
	cr_assert_eq(commit(&j), 35);
	/* "restart": a fresh region, bind, replay */
	gov_region_unmap(f.r);
	f.r = gov_region_map(64);
	cr_assert_eq(gov_bind(g, f.r, now + 1000), 0);
	off_t end;
	long skipped;
	cr_assert_eq(jrnl_replay(j.fd, gov_replay_apply, g, &end, &skipped), 35);
	int64_t later = now + 1000;
	struct gov_ent *tiers[] = { &g->cust[0], &g->team[0].e, &g->key[0].e, &g->key[0].pc[0].e, &g->prov[0] };
	for (size_t i = 0; i < ARRAY_LEN(tiers); i++) {
		struct gov_winpos p;
		gov_pos_budget(tiers[i], later, &p);
		cr_assert_eq(gov_ctr_get(&tiers[i]->slot->spend, &p), total, "%s", tiers[i]->id);
		cr_assert_eq(gov_ctr_get(&tiers[i]->slot->used, &p), total);
		cr_assert_eq(gov_ctr_get(&tiers[i]->slot->requests, &p), 7);
		cr_assert_eq(gov_ctr_get(&tiers[i]->slot->tokens, &p), 7 * 30);
	}
	cr_assert_eq(atomic_load(&g->key[0].e.slot->anchor_s), now, "rolling anchor restored");
	/* after compaction the same totals come back */
	cr_assert_eq(jrnl_compact(&j, path), 0);
	gov_region_unmap(f.r);
	f.r = gov_region_map(64);
	gov_bind(g, f.r, now + 5000);
	cr_assert_eq(jrnl_replay(j.fd, gov_replay_apply, g, &end, &skipped), 5);
	struct gov_winpos p;
	gov_pos_budget(&g->key[0].e, later, &p);
	cr_assert_eq(gov_ctr_get(&g->key[0].e.slot->spend, &p), total);
	cr_assert_eq(gov_ctr_get(&g->key[0].e.slot->requests, &p), 7);
	close(j.fd);
	unlink(path);
	free(q);
	fixture_down(&f);
}

/* governance.unpriced "max_price": the highest known rate of the provider's dialect. */
Test(gov_price, max_price_per_dialect)
{
	struct gov_price o = gov_price_max(NULL, "openai", "openai", false);
	cr_assert_eq(o.in, GOV_USD(150, 0), "o1-pro's input rate");
	cr_assert_eq(o.out, GOV_USD(600, 0));
	struct gov_price a = gov_price_max(NULL, "anthropic", "anthropic", true);
	cr_assert_eq(a.in, GOV_USD(15, 0), "claude-opus-4's input rate");
	cr_assert_eq(a.out, GOV_USD(75, 0));
	cr_assert_eq(a.cache_write, GOV_MILLI(18750));
	cr_assert(gov_unpriced_first("p", "m-unit-test"));
	cr_assert_not(gov_unpriced_first("p", "m-unit-test"), "warned once");
}

/* pricing_file: LiteLLM's format; the config's "pricing" wins, then the file, then built-ins. */
Test(gov_price, litellm_pricing_file)
{
	char path[64];
	int fd = tmpfile_fd(path);
	static const char file[] =
		"{\"sample_spec\":{\"max_tokens\":\"LEGACY\",\"input_cost_per_token\":0.0,\"litellm_provider\":\"x\"},"
		" \"gpt-4o\":{\"input_cost_per_token\":2.6e-06,\"output_cost_per_token\":1.1e-05,"
		"   \"cache_read_input_token_cost\":1.3e-06,\"litellm_provider\":\"openai\",\"mode\":\"chat\"},"
		" \"house-model\":{\"input_cost_per_token\":1e-06,\"output_cost_per_token\":2e-06,\"litellm_provider\":\"openai\"},"
		" \"groq/llama-3.3-70b\":{\"input_cost_per_token\":5.9e-07,\"output_cost_per_token\":7.9e-07,\"litellm_provider\":\"groq\"},"
		" \"dall-e-3\":{\"output_cost_per_image\":0.04,\"litellm_provider\":\"openai\"},"
		" \"claude-9\":{\"input_cost_per_token\":1e-05,\"output_cost_per_token\":9e-05,\"litellm_provider\":\"anthropic\"}}";
	cr_assert_eq(write(fd, file, sizeof(file) - 1), (ssize_t)sizeof(file) - 1);
	close(fd);
	char text[512];
	snprintf(text, sizeof(text), "{\"pricing_file\":\"%s\",\"pricing\":{\"openai/house-model\":{\"input\":3,\"output\":4}},"
		 "\"providers\":[{\"name\":\"oa\",\"provider\":\"openai\"},{\"name\":\"gq\",\"provider\":\"groq\"}]}", path);
	struct arena ea;
	struct sb errs;
	struct cfg *c = parse(text, &ea, &errs);
	sb_put(&errs, "", 1);
	cr_assert_not_null(c, "%s", errs.p);
	const struct gov *g = c->gov;
	cr_assert_eq(g->nfprice, 4, "image and sample entries skipped: %d", g->nfprice);
	const struct gov_price *p = gov_price_find(g, "oa", "openai", "gpt-4o");
	cr_assert(p && p->in == 2600000 && p->out == 11000000 && p->cache_read == 1300000, "the file beats the built-ins");
	p = gov_price_find(g, "oa", "openai", "house-model");
	cr_assert(p && p->in == GOV_USD(3, 0), "the config's pricing beats the file");
	p = gov_price_find(g, "gq", "groq", "llama-3.3-70b");
	cr_assert(p && p->in == 590000 && p->out == 790000, "a provider-prefixed key, matched without it");
	cr_assert_null(gov_price_find(g, "oa", "openai", "llama-3.3-70b"), "not another provider's entry");
	struct gov_price m = gov_price_max(g, "anthropic", "anthropic", true);
	cr_assert_eq(m.out, 90000000, "the file's rates count for max_price");
	cfg_put(c);
	arena_reset(&ea);
	unlink(path);
}
