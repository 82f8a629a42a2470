/* libFuzzer driver: ./build.sh fuzz. tls_der and tls_not_after (section 7), the DER walk that
 * finds a listener certificate's notAfter for `bifrost check` and the start-up warning.
 *
 * Input: [0] mode, the rest the payload.
 *   mode & 1 == 0  the payload is a whole "certificate" (any bytes);
 *   mode & 1 == 1  the payload is the notAfter's contents, wrapped into a well-formed
 *                  certificate skeleton: tag UTCTime (mode & 2 == 0) or GeneralizedTime,
 *                  version field present unless mode & 4, notBefore UTCTime or
 *                  GeneralizedTime by mode & 8, a short or long length form by mode & 16.
 *
 * Every input is an exact malloc'd copy, so ASan reports a read of even one byte past it.
 * Invariants:
 *   - tls_der never hands back a body or a next position outside [p, end], always moves on;
 *   - where a reference walk written from RFC 5280's layout (Certificate → TBSCertificate →
 *     [0] version? serial, signature, issuer, validity → the second time, each element inside
 *     its parent) finds the notAfter, tls_not_after extracts the same time string and
 *     converts it the same way. (Where the nesting is broken the result is not checked:
 *     tls_not_after reads the TBSCertificate up to the end of the input, not of the
 *     Certificate — lenient, in bounds, and harmless, since BearSSL's decoder refuses such a
 *     certificate before tls_load_cred accepts it.);
 *   - a strictly well-formed time (digits only, 'Z', a real date) gives exactly the seconds
 *     computed here from the calendar (UTCTime: YY < 50 → 20YY, else 19YY);
 *   - cutting the input anywhere inside the Certificate gives -1.
 * (The body is here, not in targets.h, so it is not part of tests/unit/fuzz_regress.c's replay.) */
#include "targets.h"

/* ---- the reference ---- */

struct rtlv {
	int tag;
	size_t hdr, len; /* header bytes, content bytes */
};

static bool rt_read(const uint8_t *p, size_t avail, struct rtlv *t)
{
	if (avail < 2)
		return false;
	t->tag = p[0];
	uint64_t len = p[1];
	size_t hdr = 2;
	if (len & 0x80) {
		size_t nb = (size_t)(len & 0x7f);
		if (nb < 1 || nb > 4 || avail < 2 + nb)
			return false;
		len = 0;
		for (size_t i = 0; i < nb; i++)
			len = len << 8 | p[2 + i];
		hdr += nb;
	}
	if (len > (uint64_t)(avail - hdr))
		return false;
	t->hdr = hdr;
	t->len = (size_t)len;
	return true;
}

/* The notAfter's tag and contents, or false. */
static bool rt_not_after(const uint8_t *d, size_t n, int *tag, const uint8_t **s, size_t *sl)
{
	struct rtlv c, tbs, f;
	if (!rt_read(d, n, &c) || c.tag != 0x30)
		return false;
	const uint8_t *p = d + c.hdr;
	size_t left = c.len;
	if (!rt_read(p, left, &tbs) || tbs.tag != 0x30)
		return false;
	p += tbs.hdr;
	left = tbs.len;
	/* [0] version, if there */
	if (!rt_read(p, left, &f))
		return false;
	if (f.tag == 0xa0) {
		p += f.hdr + f.len;
		left -= f.hdr + f.len;
	}
	for (int i = 0; i < 3; i++) { /* serial, signature, issuer: any tags */
		if (!rt_read(p, left, &f))
			return false;
		p += f.hdr + f.len;
		left -= f.hdr + f.len;
	}
	struct rtlv v, t1, t2;
	if (!rt_read(p, left, &v)) /* validity (its tag is not looked at) */
		return false;
	const uint8_t *q = p + v.hdr;
	size_t vl = v.len;
	if (!rt_read(q, vl, &t1))
		return false;
	q += t1.hdr + t1.len;
	vl -= t1.hdr + t1.len;
	if (!rt_read(q, vl, &t2) || (t2.tag != 0x17 && t2.tag != 0x18))
		return false;
	*tag = t2.tag;
	*s = q + t2.hdr;
	*sl = t2.len;
	return true;
}

/* The same conversion as bifrost.c's (sscanf %2d/%4d, timegm): the reference checks the walk. */
static int64_t rt_convert(int tag, const uint8_t *s, size_t sl)
{
	size_t yl = tag == 0x17 ? 2 : 4;
	char z[16];
	if (sl < yl + 10 || sl >= sizeof(z))
		return -1;
	memcpy(z, s, sl);
	z[sl] = 0;
	struct tm tm = { 0 };
	int year = 0;
	if (sscanf(z, yl == 2 ? "%2d%2d%2d%2d%2d%2d" : "%4d%2d%2d%2d%2d%2d", &year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year = (yl == 2 ? (year < 50 ? 2000 + year : 1900 + year) : year) - 1900;
	tm.tm_mon--;
	return (int64_t)timegm(&tm);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t rt_days(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* A strictly well-formed time → its seconds; -2 when not strictly well-formed. */
static int64_t rt_strict(int tag, const uint8_t *s, size_t sl)
{
	size_t yl = tag == 0x17 ? 2 : 4;
	if (sl != yl + 11 || s[sl - 1] != 'Z')
		return -2;
	int v[7];
	size_t pos = 0;
	for (int i = 0; i < 6; i++) {
		size_t w = i == 0 ? yl : 2;
		v[i] = 0;
		for (size_t k = 0; k < w; k++, pos++) {
			if (s[pos] < '0' || s[pos] > '9')
				return -2;
			v[i] = v[i] * 10 + (s[pos] - '0');
		}
	}
	int64_t year = yl == 2 ? (v[0] < 50 ? 2000 + v[0] : 1900 + v[0]) : v[0];
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1] || (v[1] == 2 && v[2] == 29 && !leap) || v[3] > 23 ||
	    v[4] > 59 || v[5] > 59)
		return -2;
	return rt_days(year, (unsigned)v[1], (unsigned)v[2]) * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
}

/* ---- building a skeleton around a time ---- */

struct wbuf {
	uint8_t *p;
	size_t n, cap;
};

static void wput(struct wbuf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void wtlv(struct wbuf *b, int tag, const void *body, size_t n, bool longform)
{
	uint8_t h[6];
	size_t k = 0;
	h[k++] = (uint8_t)tag;
	if (n < 0x80 && !longform) {
		h[k++] = (uint8_t)n;
	} else if (n < 0x100) {
		h[k++] = 0x81;
		h[k++] = (uint8_t)n;
	} else if (n < 0x10000) {
		h[k++] = 0x82;
		h[k++] = (uint8_t)(n >> 8);
		h[k++] = (uint8_t)n;
	} else {
		h[k++] = 0x84;
		for (int i = 3; i >= 0; i--)
			h[k++] = (uint8_t)(n >> (8 * i));
	}
	wput(b, h, k);
	wput(b, body, n);
}

static uint8_t *skeleton(unsigned mode, const uint8_t *t, size_t tn, size_t *outn)
{
	bool lf = mode & 16;
	struct wbuf tbs = { 0 }, val = { 0 }, cert = { 0 }, out = { 0 };
	static const uint8_t int2[] = { 0x02, 0x01, 0x02 }, serial[] = { 0x01, 0x02 },
			     alg[] = { 0x06, 0x03, 0x2a, 0x03, 0x04, 0x05, 0x00 },
			     name[] = { 0x31, 0x09, 0x30, 0x07, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x00 };
	if (!(mode & 4))
		wtlv(&tbs, 0xa0, int2, sizeof(int2), lf);
	wtlv(&tbs, 0x02, serial, sizeof(serial), lf);
	wtlv(&tbs, 0x30, alg, sizeof(alg), lf);
	wtlv(&tbs, 0x30, name, sizeof(name), lf);
	if (mode & 8)
		wtlv(&val, 0x18, "20200101000000Z", 15, lf);
	else
		wtlv(&val, 0x17, "200101000000Z", 13, lf);
	wtlv(&val, mode & 2 ? 0x18 : 0x17, t, tn, lf);
	wtlv(&tbs, 0x30, val.p, val.n, lf);
	wtlv(&tbs, 0x30, name, sizeof(name), lf);
	wtlv(&cert, 0x30, tbs.p, tbs.n, lf);
	wtlv(&cert, 0x30, alg, sizeof(alg), lf);
	wtlv(&cert, 0x03, "\0", 1, lf);
	wtlv(&out, 0x30, cert.p, cert.n, lf);
	free(tbs.p);
	free(val.p);
	free(cert.p);
	*outn = out.n;
	return out.p;
}

/* ---- the target ---- */

static int64_t fz_not_after(const uint8_t *d, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
	if (!copy)
		abort();
	if (n)
		memcpy(copy, d, n);
	int64_t t = tls_not_after(copy, n);
	free(copy);
	return t;
}

static int fuzz_tls_der(const uint8_t *d, size_t n)
{
	if (n < 1)
		return 0;
	unsigned mode = d[0];
	const uint8_t *pl = d + 1;
	size_t pn = n - 1;
	uint8_t *built = NULL;
	if (mode & 1) {
		if (pn > 64) /* a time is short; long payloads only repeat the whole-input case */
			pn = 64;
		built = skeleton(mode, pl, pn, &pn);
		pl = built;
	}

	/* tls_der over the input as a sequence of elements, and into each one */
	uint8_t *copy = malloc(pn ? pn : 1);
	if (!copy)
		abort();
	if (pn)
		memcpy(copy, pl, pn);
	const unsigned char *p = copy, *end = copy + pn;
	for (int depth = 0; depth < 64 && p < end; depth++) {
		const unsigned char *at = p, *body = NULL;
		int tag = -1;
		if (!tls_der(&p, end, &tag, &body)) {
			FUZZ_ASSERT(p == at, "a failed tls_der moved the position");
			break;
		}
		FUZZ_ASSERT(tag == at[0], "tag %#x, the byte says %#x", tag, at[0]);
		FUZZ_ASSERT(body >= at + 2 && body <= p && p <= end && p > at, "element at %td: body %td, next %td, end %td",
			    at - copy, body - copy, p - copy, end - copy);
		if (tag & 0x20) /* constructed: its contents are read next (up to the input's end) */
			p = body;
	}
	free(copy);

	/* tls_not_after against the reference */
	int64_t got = fz_not_after(pl, pn);
	int tag = 0;
	const uint8_t *s = NULL;
	size_t sl = 0;
	bool found = rt_not_after(pl, pn, &tag, &s, &sl);
	if (found) {
		int64_t want = rt_convert(tag, s, sl);
		FUZZ_ASSERT(got == want, "notAfter %lld, the reference says %lld (tag %#x, \"%.*s\")", (long long)got,
			    (long long)want, tag, (int)MIN(sl, (size_t)40), (const char *)s);
		int64_t strict = rt_strict(tag, s, sl);
		FUZZ_ASSERT(strict == -2 || got == strict, "\"%.*s\" is %lld, tls_not_after says %lld", (int)sl, (const char *)s,
			    (long long)strict, (long long)got);
		/* the whole Certificate is needed: every cut inside it is -1 */
		struct rtlv c;
		if (rt_read(pl, pn, &c)) {
			size_t whole = c.hdr + c.len;
			for (size_t cut = whole > 48 ? whole - 48 : 0; cut < whole; cut++)
				FUZZ_ASSERT(fz_not_after(pl, cut) == -1, "cut to %zu of %zu bytes, still %lld", cut, whole,
					    (long long)fz_not_after(pl, cut));
		}
	}
	free(built);
	return 0;
}

FUZZ_DRIVER(fuzz_tls_der)
