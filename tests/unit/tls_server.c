/* Unit tests for the HTTPS listener's part of section 7 (tls_): the DER walk behind
 * `bifrost check` (tls_der, tls_not_after), loading the chain and key (tls_load_cred) from the
 * PEM fixtures in tests/unit/fixtures/tls/ (made by gen.sh there: fixed notAfter dates,
 * throw-away test keys), and the server engine tls_server_start sets up, driven here in
 * memory against a BearSSL client engine: TLS 1.2 only, ECDHE + AEAD suites only, ALPN
 * http/1.1, renegotiation refused, sessions resumed from the cache it is given.
 *
 * Hand-made DER is parsed from a copy that ends exactly at a PROT_NONE page (guard.h), so
 * reading even one byte past the given length crashes the test. */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

/* tests/unit/fixtures/tls/NAME, found next to this file (build.sh runs from the repo root). */
static const char *fx(const char *name)
{
	static char bufs[8][PATH_MAX];
	static unsigned i;
	char *b = bufs[i++ % 8];
	const char *f = __FILE__, *slash = strrchr(f, '/');
	if (slash)
		snprintf(b, PATH_MAX, "%.*s/fixtures/tls/%s", (int)(slash - f), f, name);
	else
		snprintf(b, PATH_MAX, "fixtures/tls/%s", name);
	return b;
}

/* The first CERTIFICATE of a PEM file, DER, malloc'd. */
struct der_first {
	unsigned char *p;
	size_t n;
};

static int der_first_cb(void *ctx, struct arena *a, const char *name, const void *der, size_t n)
{
	struct der_first *d = ctx;
	(void)a;
	if (d->p || strcmp(name, "CERTIFICATE"))
		return 0;
	d->p = malloc(n);
	cr_assert_not_null(d->p);
	memcpy(d->p, der, n);
	d->n = n;
	return 0;
}

static struct der_first cert_der(const char *file)
{
	struct arena a;
	struct der_first d = { 0 };
	char err[512] = "";
	arena_init(&a, NULL);
	int rc = tls_pem_each(&a, "certificate file", fx(file), der_first_cb, &d, err, sizeof(err));
	arena_reset(&a);
	cr_assert_eq(rc, 0, "%s: %s", file, err);
	cr_assert_not_null(d.p, "%s holds no certificate", file);
	return d;
}

/* tls_not_after on a guarded copy */
static int64_t na(const void *d, size_t n)
{
	struct guard g;
	const unsigned char *p = (const unsigned char *)guard_put(&g, d, n);
	int64_t t = tls_not_after(p, n);
	guard_free(&g);
	return t;
}

/* ---- building DER by hand ---- */

struct dbuf {
	unsigned char b[4096];
	size_t n;
};

static void put(struct dbuf *d, const void *p, size_t n)
{
	cr_assert(d->n + n <= sizeof(d->b));
	memcpy(d->b + d->n, p, n);
	d->n += n;
}

/* TLV with a minimal (short or long form) length */
static void tlv(struct dbuf *d, int tag, const void *body, size_t n)
{
	unsigned char h[6];
	size_t k = 0;
	h[k++] = (unsigned char)tag;
	if (n < 0x80) {
		h[k++] = (unsigned char)n;
	} else if (n < 0x100) {
		h[k++] = 0x81;
		h[k++] = (unsigned char)n;
	} else {
		h[k++] = 0x82;
		h[k++] = (unsigned char)(n >> 8);
		h[k++] = (unsigned char)n;
	}
	put(d, h, k);
	put(d, body, n);
}

static void tlv_d(struct dbuf *d, int tag, const struct dbuf *inner) { tlv(d, tag, inner->b, inner->n); }

/* A minimal Certificate: SEQ { TBS SEQ { [0]{INT 2}?, INT, SEQ alg, SEQ issuer, SEQ validity, ... }, ... } */
static void mkcert(struct dbuf *out, bool v3, int t1tag, const char *t1, int t2tag, const char *t2, bool tail)
{
	struct dbuf tbs = { .n = 0 }, tmp = { .n = 0 }, val = { .n = 0 }, cert = { .n = 0 };
	static const unsigned char int2[] = { 0x02, 0x01, 0x02 };
	if (v3)
		tlv(&tbs, 0xa0, int2, sizeof(int2));
	static const unsigned char serial[] = { 0x12, 0x34 };
	tlv(&tbs, 0x02, serial, sizeof(serial));
	static const unsigned char alg[] = { 0x06, 0x03, 0x2a, 0x03, 0x04, 0x05, 0x00 };
	tlv(&tbs, 0x30, alg, sizeof(alg));
	static const unsigned char name[] = { 0x31, 0x09, 0x30, 0x07, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x00 };
	tlv(&tbs, 0x30, name, sizeof(name));
	tlv(&val, t1tag, t1, strlen(t1));
	tlv(&val, t2tag, t2, strlen(t2));
	tlv_d(&tbs, 0x30, &val);
	if (tail) { /* subject, subjectPublicKeyInfo */
		tlv(&tbs, 0x30, name, sizeof(name));
		tlv(&tmp, 0x30, alg, sizeof(alg));
		static const unsigned char bits[] = { 0x00, 0x01, 0x02 };
		tlv(&tmp, 0x03, bits, sizeof(bits));
		tlv_d(&tbs, 0x30, &tmp);
	}
	tlv_d(&cert, 0x30, &tbs);
	tlv(&cert, 0x30, alg, sizeof(alg));
	static const unsigned char sig[] = { 0x00, 0xaa };
	tlv(&cert, 0x03, sig, sizeof(sig));
	out->n = 0;
	tlv_d(out, 0x30, &cert);
}

#define UTC 0x17
#define GEN 0x18

/* ======================================================================== */
/* tls_der                                                                  */
/* ======================================================================== */

static bool der1(const unsigned char *d, size_t n, int *tag, size_t *off, size_t *len, size_t *next)
{
	struct guard g;
	const unsigned char *p = (const unsigned char *)guard_put(&g, d, n), *start = p, *body = NULL;
	bool ok = tls_der(&p, start + n, tag, &body);
	if (ok) {
		*off = (size_t)(body - start);
		*len = (size_t)(p - body);
		*next = (size_t)(p - start);
	}
	guard_free(&g);
	return ok;
}

Test(tls_der, short_form)
{
	const unsigned char d[] = { 0x30, 0x03, 0x02, 0x01, 0x05, 0xff };
	int tag;
	size_t off, len, next;
	cr_assert(der1(d, sizeof(d), &tag, &off, &len, &next));
	cr_assert_eq(tag, 0x30);
	cr_assert_eq(off, 2);
	cr_assert_eq(len, 3);
	cr_assert_eq(next, 5);
	/* exactly the element, nothing after */
	cr_assert(der1(d, 5, &tag, &off, &len, &next));
	cr_assert_eq(next, 5);
	/* empty contents */
	const unsigned char e[] = { 0x05, 0x00 };
	cr_assert(der1(e, 2, &tag, &off, &len, &next));
	cr_assert_eq(tag, 0x05);
	cr_assert_eq(len, 0);
	cr_assert_eq(next, 2);
}

Test(tls_der, long_form_lengths)
{
	unsigned char d[300 + 4] = { 0x04, 0x82, 0x01, 0x2c }; /* 300 bytes */
	int tag;
	size_t off, len, next;
	cr_assert(der1(d, sizeof(d), &tag, &off, &len, &next));
	cr_assert_eq(off, 4);
	cr_assert_eq(len, 300);
	cr_assert_eq(next, 304);
	unsigned char e[200 + 3] = { 0x04, 0x81, 0xc8 };
	cr_assert(der1(e, sizeof(e), &tag, &off, &len, &next));
	cr_assert_eq(off, 3);
	cr_assert_eq(len, 200);
	/* four length bytes (the most it takes) */
	unsigned char f[6 + 5] = { 0x04, 0x84, 0x00, 0x00, 0x00, 0x05 };
	cr_assert(der1(f, sizeof(f), &tag, &off, &len, &next));
	cr_assert_eq(off, 6);
	cr_assert_eq(len, 5);
}

Test(tls_der, malformed_is_false)
{
	int tag;
	size_t off, len, next;
	const unsigned char one[] = { 0x30 };
	cr_assert_not(der1(one, 0, &tag, &off, &len, &next), "empty input");
	cr_assert_not(der1(one, 1, &tag, &off, &len, &next), "a tag without a length");
	const unsigned char over[] = { 0x30, 0x05, 0x01, 0x02 };
	cr_assert_not(der1(over, sizeof(over), &tag, &off, &len, &next), "contents past the end");
	const unsigned char indef[] = { 0x30, 0x80, 0x00, 0x00 };
	cr_assert_not(der1(indef, sizeof(indef), &tag, &off, &len, &next), "indefinite length");
	const unsigned char five[] = { 0x04, 0x85, 0x00, 0x00, 0x00, 0x00, 0x01, 0xaa };
	cr_assert_not(der1(five, sizeof(five), &tag, &off, &len, &next), "five length bytes");
	const unsigned char cut[] = { 0x04, 0x82, 0x01 };
	cr_assert_not(der1(cut, sizeof(cut), &tag, &off, &len, &next), "length bytes cut off");
	const unsigned char huge[] = { 0x04, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00 };
	cr_assert_not(der1(huge, sizeof(huge), &tag, &off, &len, &next), "a 4 GB length");
	const unsigned char huge2[] = { 0x04, 0x84, 0xff, 0xff, 0xff, 0xfa, 0x00 };
	cr_assert_not(der1(huge2, sizeof(huge2), &tag, &off, &len, &next), "a length that wraps with the header");
	const unsigned char by1[] = { 0x04, 0x03, 0x01, 0x02 };
	cr_assert_not(der1(by1, sizeof(by1), &tag, &off, &len, &next), "one byte short");
}

Test(tls_der, every_prefix_of_an_element_is_safe)
{
	struct der_first c = cert_der("chain.crt");
	for (size_t n = 0; n <= c.n; n++) {
		int tag;
		size_t off, len, next;
		bool ok = der1(c.p, n, &tag, &off, &len, &next);
		cr_assert_eq(ok, n == c.n, "prefix %zu of %zu: %d", n, c.n, ok);
	}
	free(c.p);
}

/* ======================================================================== */
/* tls_not_after                                                            */
/* ======================================================================== */

Test(tls_not_after, fixture_certificates)
{
	static const struct {
		const char *file;
		int64_t t;
	} cases[] = {
		{ "rsa.crt", 2524607999 },     /* UTCTime 491231235959Z: 2049 */
		{ "ec256.crt", 2524608000 },   /* GeneralizedTime 20500101000000Z */
		{ "ec384.crt", 4102444799 },   /* GeneralizedTime 20991231235959Z */
		{ "expired.crt", 1580515200 }, /* UTCTime 200201000000Z */
		{ "v1.crt", 1907757296 },      /* X.509 v1 (no version field), UTCTime 300615123456Z */
		{ "chain.crt", 2383117811 },   /* the leaf, first in the file: UTCTime 450708091011Z */
		{ "ec521.crt", 2208988800 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct der_first c = cert_der(cases[i].file);
		int64_t t = na(c.p, c.n);
		cr_assert_eq(t, cases[i].t, "%s: notAfter %lld, expected %lld", cases[i].file, (long long)t, (long long)cases[i].t);
		free(c.p);
	}
}

Test(tls_not_after, hand_made_utc_and_generalized)
{
	struct dbuf d;
	mkcert(&d, true, UTC, "200101000000Z", UTC, "491231235959Z", true);
	cr_assert_eq(na(d.b, d.n), 2524607999);
	mkcert(&d, true, UTC, "200101000000Z", GEN, "20500101000000Z", true);
	cr_assert_eq(na(d.b, d.n), 2524608000);
	/* notBefore may be either kind; only notAfter counts */
	mkcert(&d, true, GEN, "19700101000000Z", UTC, "000229120000Z", true);
	cr_assert_eq(na(d.b, d.n), 951825600); /* 2000-02-29 12:00:00 */
	/* RFC 5280: UTCTime YY >= 50 is 19YY, < 50 is 20YY */
	mkcert(&d, true, UTC, "200101000000Z", UTC, "500101000000Z", true);
	cr_assert_eq(na(d.b, d.n), -631152000); /* 1950-01-01 */
	mkcert(&d, true, UTC, "200101000000Z", UTC, "491231235959Z", false); /* the TBS ends at validity */
	cr_assert_eq(na(d.b, d.n), 2524607999);
	/* v1: no [0] version */
	mkcert(&d, false, UTC, "200101000000Z", GEN, "20380119031408Z", true);
	cr_assert_eq(na(d.b, d.n), 2147483648LL); /* one second past INT32_MAX: 64-bit */
	mkcert(&d, false, UTC, "200101000000Z", GEN, "99991231235959Z", true);
	cr_assert_eq(na(d.b, d.n), 253402300799LL);
}

Test(tls_not_after, bad_times_are_minus_one)
{
	struct dbuf d;
	static const struct {
		int tag;
		const char *t;
	} bad[] = {
		{ 0x13, "491231235959Z" },    /* PrintableString, not a time */
		{ 0x04, "491231235959Z" },    /* OCTET STRING */
		{ UTC, "4912312359Z" },       /* too short */
		{ UTC, "" },                  /* empty */
		{ GEN, "205001010000Z" },     /* GeneralizedTime too short */
		{ GEN, "20500101000000.123Z" }, /* too long for the buffer */
		{ UTC, "ABCDEFGHIJKLM" },     /* not digits */
		{ GEN, "2050O101000000Z" },   /* a letter O */
		{ UTC, "xx1231235959Z" },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		mkcert(&d, true, UTC, "200101000000Z", bad[i].tag, bad[i].t, true);
		cr_assert_eq(na(d.b, d.n), -1, "case %zu (tag %#x \"%s\")", i, bad[i].tag, bad[i].t);
	}
}

Test(tls_not_after, structure_errors_are_minus_one)
{
	cr_assert_eq(na("", 0), -1);
	const unsigned char notseq[] = { 0x31, 0x03, 0x30, 0x01, 0x00 };
	cr_assert_eq(na(notseq, sizeof(notseq)), -1, "a SET, not a SEQUENCE");
	const unsigned char tbsnotseq[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };
	cr_assert_eq(na(tbsnotseq, sizeof(tbsnotseq)), -1, "the TBS is an INTEGER");
	const unsigned char emptytbs[] = { 0x30, 0x02, 0x30, 0x00 };
	cr_assert_eq(na(emptytbs, sizeof(emptytbs)), -1, "an empty TBS");
	/* fewer than five TBS fields */
	struct dbuf tbs = { .n = 0 }, cert = { .n = 0 }, out = { .n = 0 };
	static const unsigned char int2[] = { 0x02, 0x01, 0x02 };
	tlv(&tbs, 0xa0, int2, sizeof(int2));
	tlv(&tbs, 0x02, int2, 1);
	tlv(&tbs, 0x30, "", 0);
	tlv(&tbs, 0x30, "", 0);
	tlv_d(&cert, 0x30, &tbs);
	tlv_d(&out, 0x30, &cert);
	cr_assert_eq(na(out.b, out.n), -1, "no validity");
	/* a validity with a single time */
	struct dbuf val = { .n = 0 };
	tlv(&val, UTC, "491231235959Z", 13);
	tbs.n = cert.n = out.n = 0;
	tlv(&tbs, 0x02, int2, 1);
	tlv(&tbs, 0x30, "", 0);
	tlv(&tbs, 0x30, "", 0);
	tlv_d(&tbs, 0x30, &val);
	tlv_d(&cert, 0x30, &tbs);
	tlv_d(&out, 0x30, &cert);
	cr_assert_eq(na(out.b, out.n), -1, "a validity with one time");
	/* a validity whose second time runs past the validity */
	unsigned char broken[sizeof(out.b)];
	mkcert(&out, true, UTC, "200101000000Z", UTC, "491231235959Z", true);
	memcpy(broken, out.b, out.n);
	for (size_t i = 0; i + 2 < out.n; i++) /* the notAfter's length byte: 13 → 14 */
		if (broken[i] == UTC && broken[i + 1] == 13 && !memcmp(broken + i + 2, "4912", 4)) {
			broken[i + 1] = 14;
			break;
		}
	cr_assert_eq(na(broken, out.n), -1, "notAfter longer than its validity");
}

Test(tls_not_after, every_truncation_of_real_certificates)
{
	static const char *files[] = { "rsa.crt", "ec256.crt", "ec384.crt", "v1.crt", "chain.crt", "expired.crt" };
	for (size_t f = 0; f < ARRAY_LEN(files); f++) {
		struct der_first c = cert_der(files[f]);
		int64_t full = na(c.p, c.n);
		cr_assert_gt(full, 0, "%s", files[f]);
		for (size_t n = 0; n < c.n; n++) {
			int64_t t = na(c.p, n);
			cr_assert_eq(t, -1, "%s cut to %zu of %zu bytes: %lld", files[f], n, c.n, (long long)t);
		}
		/* trailing bytes after the Certificate do not matter */
		unsigned char *more = malloc(c.n + 7);
		memcpy(more, c.p, c.n);
		memset(more + c.n, 0xee, 7);
		cr_assert_eq(na(more, c.n + 7), full, "%s with trailing bytes", files[f]);
		free(more);
		free(c.p);
	}
}

Test(tls_not_after, bit_flips_never_read_out_of_bounds)
{
	struct der_first c = cert_der("ec256.crt");
	unsigned char *m = malloc(c.n);
	/* the first 200 bytes hold every header the walk reads; flip each bit of them */
	for (size_t i = 0; i < MIN(c.n, (size_t)200); i++)
		for (int b = 0; b < 8; b++) {
			memcpy(m, c.p, c.n);
			m[i] ^= (unsigned char)(1u << b);
			(void)na(m, c.n); /* any value; the guard page catches an over-read */
		}
	free(m);
	free(c.p);
}

/* ======================================================================== */
/* tls_load_cred                                                            */
/* ======================================================================== */

struct loaded {
	struct arena a;
	struct tls_cred c;
	char err[2 * PATH_MAX + 200];
	int rc;
};

static void load(struct loaded *l, const char *cert, const char *key)
{
	arena_init(&l->a, NULL);
	memset(l->err, 0, sizeof(l->err));
	l->rc = tls_load_cred(&l->a, fx(cert), fx(key), &l->c, l->err, sizeof(l->err));
}

static void unload(struct loaded *l) { arena_reset(&l->a); }

Test(tls_load_cred, rsa_pkcs1_and_pkcs8_are_the_same_key)
{
	struct loaded a, b;
	load(&a, "rsa.crt", "rsa_pkcs1.key");
	load(&b, "rsa.crt", "rsa_pkcs8.key");
	cr_assert_eq(a.rc, 0, "%s", a.err);
	cr_assert_eq(b.rc, 0, "%s", b.err);
	cr_assert_eq(a.c.key_type, BR_KEYTYPE_RSA);
	cr_assert_eq(b.c.key_type, BR_KEYTYPE_RSA);
	cr_assert_eq(a.c.nchain, 1);
	cr_assert_eq(a.c.rsa.n_bitlen, 2048);
	cr_assert_eq(a.c.rsa.plen, b.c.rsa.plen);
	cr_assert(!memcmp(a.c.rsa.p, b.c.rsa.p, a.c.rsa.plen));
	cr_assert_eq(a.c.not_after, 2524607999);
	unload(&a);
	unload(&b);
}

Test(tls_load_cred, ec_p256_sec1_and_p384_pkcs8)
{
	struct loaded a, b;
	load(&a, "ec256.crt", "ec256_sec1.key");
	cr_assert_eq(a.rc, 0, "%s", a.err);
	cr_assert_eq(a.c.key_type, BR_KEYTYPE_EC);
	cr_assert_eq(a.c.ec.curve, BR_EC_secp256r1);
	cr_assert_eq(a.c.ec.xlen, 32);
	cr_assert_eq(a.c.not_after, 2524608000);
	load(&b, "ec384.crt", "ec384_pkcs8.key");
	cr_assert_eq(b.rc, 0, "%s", b.err);
	cr_assert_eq(b.c.ec.curve, BR_EC_secp384r1);
	cr_assert_eq(b.c.ec.xlen, 48);
	cr_assert_eq(b.c.not_after, 4102444799);
	unload(&a);
	unload(&b);
}

Test(tls_load_cred, chain_leaf_first)
{
	struct loaded l;
	load(&l, "chain.crt", "chain.key");
	cr_assert_eq(l.rc, 0, "%s", l.err);
	cr_assert_eq(l.c.nchain, 2);
	struct der_first leaf = cert_der("chain.crt"), inter = cert_der("inter.crt");
	cr_assert_eq(l.c.chain[0].data_len, leaf.n);
	cr_assert(!memcmp(l.c.chain[0].data, leaf.p, leaf.n));
	cr_assert_eq(l.c.chain[1].data_len, inter.n);
	cr_assert(!memcmp(l.c.chain[1].data, inter.p, inter.n));
	cr_assert_eq(l.c.not_after, 2383117811, "the leaf's date, not the intermediate's");
	free(leaf.p);
	free(inter.p);
	unload(&l);
}

Test(tls_load_cred, expired_and_v1_load)
{
	struct loaded l;
	load(&l, "expired.crt", "expired.key");
	cr_assert_eq(l.rc, 0, "%s", l.err); /* loaded: `check` and the start-up warn */
	cr_assert_eq(l.c.not_after, 1580515200);
	unload(&l);
	load(&l, "v1.crt", "expired.key"); /* the same key */
	cr_assert_eq(l.rc, 0, "%s", l.err);
	cr_assert_eq(l.c.not_after, 1907757296);
	unload(&l);
}

static void refused(const char *cert, const char *key, const char *needle)
{
	struct loaded l;
	load(&l, cert, key);
	cr_assert_eq(l.rc, -1, "%s + %s loaded", cert, key);
	cr_assert(strstr(l.err, needle), "%s + %s: \"%s\" does not say \"%s\"", cert, key, l.err, needle);
	unload(&l);
}

Test(tls_load_cred, refusals)
{
	refused("rsa.crt", "rsa_other.key", "does not match");
	refused("rsa.crt", "ec256_sec1.key", "does not match");    /* RSA certificate, EC key */
	refused("ec256.crt", "ec384_pkcs8.key", "does not match"); /* EC, other curve */
	refused("ec256.crt", "rsa_pkcs8.key", "does not match");
	refused("chain.crt", "rsa_pkcs1.key", "does not match");   /* the intermediate's key is not asked for */
	refused("rsa.crt", "rsa_enc_pkcs8.key", "encrypted");
	refused("rsa.crt", "rsa_enc_legacy.key", "encrypted");
	refused("ec521.crt", "ec521_pkcs8.key", "P-256 or P-384");
	refused("nope.crt", "rsa_pkcs1.key", "cannot open certificate file");
	refused("rsa.crt", "nope.key", "cannot open key file");
	refused("rsa.crt", "rsa.crt", "no private key");
	refused("rsa_pkcs1.key", "rsa_pkcs1.key", "holds no certificate");
	refused("gen.sh", "rsa_pkcs1.key", "holds no certificate"); /* not PEM at all */
}

Test(tls_load_cred, broken_pem_and_empty_files)
{
	char dir[] = "/tmp/bifrost-tls-unit-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char empty[PATH_MAX], junk[PATH_MAX], halfkey[PATH_MAX];
	snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
	snprintf(halfkey, sizeof(halfkey), "%s/half.key", dir);
	FILE *f = fopen(empty, "w");
	fclose(f);
	f = fopen(junk, "w");
	fputs("-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	/* a key file cut in the middle of its base64 */
	FILE *k = fopen(fx("rsa_pkcs1.key"), "r");
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf), k);
	fclose(k);
	f = fopen(halfkey, "w");
	fwrite(buf, 1, n / 2, f);
	fclose(f);

	struct arena a;
	struct tls_cred c;
	char err[2 * PATH_MAX + 200];
	arena_init(&a, NULL);
	cr_assert_eq(tls_load_cred(&a, empty, fx("rsa_pkcs1.key"), &c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "holds no certificate"), "%s", err);
	cr_assert_eq(tls_load_cred(&a, junk, fx("rsa_pkcs1.key"), &c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not valid PEM"), "%s", err);
	cr_assert_eq(tls_load_cred(&a, fx("rsa.crt"), empty, &c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "no private key"), "%s", err);
	cr_assert_eq(tls_load_cred(&a, fx("rsa.crt"), halfkey, &c, err, sizeof(err)), -1, "a truncated key loaded");
	cr_assert_eq(tls_load_cred(&a, dir, fx("rsa_pkcs1.key"), &c, err, sizeof(err)), -1, "a directory as the certificate");
	arena_reset(&a);
	unlink(empty);
	unlink(junk);
	unlink(halfkey);
	rmdir(dir);
}

/* The same PEM (certificate + key) given as both cert_file and key_file, as many servers
 * accept: one certificate in the chain, not the leaf twice. */
Test(tls_load_cred, combined_file_as_both_counts_the_leaf_once)
{
	struct loaded l;
	load(&l, "rsa_combined.pem", "rsa_combined.pem");
	int rc = l.rc, type = l.c.key_type;
	size_t nchain = l.c.nchain;
	unload(&l); /* before the asserts: a failing one would leak the arena */
	cr_assert_eq(rc, 0, "%s", l.err);
	cr_assert_eq(type, BR_KEYTYPE_RSA);
	cr_assert_eq(nchain, 1, "the leaf is in the chain %zu times (it would be sent that often)", nchain);
}

/* ======================================================================== */
/* tls_server_start: handshakes in memory against a BearSSL client          */
/* ======================================================================== */

struct pair {
	struct arena a;
	struct tls_cred cred;
	struct tls_anchors ta;
	struct tls_server *srv;
	struct tls_client *cli;
};

static void pair_init(struct pair *p, const char *cert, const char *key)
{
	char err[2 * PATH_MAX + 200];
	memset(p, 0, sizeof(*p));
	arena_init(&p->a, NULL);
	cr_assert_eq(tls_load_cred(&p->a, fx(cert), fx(key), &p->cred, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tls_load_anchors(&p->a, fx("ca.crt"), &p->ta, err, sizeof(err)), 0, "%s", err);
	p->srv = malloc(sizeof(*p->srv));
	p->cli = malloc(sizeof(*p->cli));
	cr_assert(p->srv && p->cli);
}

static void pair_free(struct pair *p)
{
	free(p->srv);
	free(p->cli);
	arena_reset(&p->a);
}

/* A client engine like a browser's: everything BearSSL has, unless narrowed by the caller. */
static br_ssl_engine_context *client_init(struct pair *p)
{
	br_ssl_client_init_full(&p->cli->cc, &p->cli->xc, p->ta.ta, p->ta.n);
	br_ssl_engine_set_buffer(&p->cli->cc.eng, p->cli->iobuf, sizeof(p->cli->iobuf), 1);
	return &p->cli->cc.eng;
}

static void client_go(struct pair *p, const br_ssl_session_parameters *resume)
{
	if (resume)
		br_ssl_engine_set_session_parameters(&p->cli->cc.eng, resume);
	cr_assert(br_ssl_client_reset(&p->cli->cc, "localhost", resume != NULL));
}

static bool xfer(br_ssl_engine_context *from, br_ssl_engine_context *to)
{
	size_t len, room;
	unsigned char *src = br_ssl_engine_sendrec_buf(from, &len);
	if (!src)
		return false;
	unsigned char *dst = br_ssl_engine_recvrec_buf(to, &room);
	if (!dst)
		return false;
	size_t n = MIN(len, room);
	memcpy(dst, src, n);
	br_ssl_engine_sendrec_ack(from, n);
	br_ssl_engine_recvrec_ack(to, n);
	return true;
}

/* Move records both ways until nothing moves. */
static void shuttle(struct pair *p)
{
	br_ssl_engine_context *c = &p->cli->cc.eng, *s = &p->srv->sc.eng;
	for (int i = 0; i < 10000; i++) {
		bool moved = xfer(c, s);
		moved |= xfer(s, c);
		if (!moved)
			return;
	}
	cr_assert_fail("records kept moving");
}

static bool ready(br_ssl_engine_context *e)
{
	unsigned st = br_ssl_engine_current_state(e);
	return !(st & BR_SSL_CLOSED) && (st & BR_SSL_SENDAPP);
}

/* true when both sides finished the handshake */
static bool handshake(struct pair *p)
{
	shuttle(p);
	return ready(&p->cli->cc.eng) && ready(&p->srv->sc.eng);
}

static void app(br_ssl_engine_context *from, br_ssl_engine_context *to, struct pair *p, const char *msg)
{
	size_t room, len;
	unsigned char *b = br_ssl_engine_sendapp_buf(from, &room);
	cr_assert(b && room >= strlen(msg));
	memcpy(b, msg, strlen(msg));
	br_ssl_engine_sendapp_ack(from, strlen(msg));
	br_ssl_engine_flush(from, 0);
	shuttle(p);
	unsigned char *r = br_ssl_engine_recvapp_buf(to, &len);
	cr_assert_not_null(r, "no application data arrived");
	cr_assert_eq(len, strlen(msg));
	cr_assert(!memcmp(r, msg, len));
	br_ssl_engine_recvapp_ack(to, len);
}

static bool suite_in(uint16_t s, const uint16_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == s)
			return true;
	return false;
}

static const uint16_t rsa_aead[] = { BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 };
static const uint16_t ec_aead[] = { BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 };

static void full_handshake(const char *cert, const char *key, const uint16_t *suites, size_t nsuites)
{
	struct pair p;
	pair_init(&p, cert, key);
	tls_server_start(p.srv, &p.cred, NULL);
	br_ssl_engine_context *c = client_init(&p);
	static const char *alpn[] = { "h2", "http/1.1" };
	br_ssl_engine_set_protocol_names(c, alpn, 2);
	client_go(&p, NULL);
	cr_assert(handshake(&p), "%s: handshake failed: client error %d, server error %d", cert,
		  br_ssl_engine_last_error(c), br_ssl_engine_last_error(&p.srv->sc.eng));
	cr_assert_eq(br_ssl_engine_get_version(&p.srv->sc.eng), BR_TLS12);
	br_ssl_session_parameters sp;
	br_ssl_engine_get_session_parameters(&p.srv->sc.eng, &sp);
	cr_assert(suite_in(sp.cipher_suite, suites, nsuites), "%s: suite %#x", cert, sp.cipher_suite);
	const char *proto = br_ssl_engine_get_selected_protocol(&p.srv->sc.eng);
	cr_assert(proto && !strcmp(proto, "http/1.1"), "%s: ALPN %s", cert, proto ? proto : "(none)");
	proto = br_ssl_engine_get_selected_protocol(c);
	cr_assert(proto && !strcmp(proto, "http/1.1"));
	app(c, &p.srv->sc.eng, &p, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
	app(&p.srv->sc.eng, c, &p, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	pair_free(&p);
}

Test(tls_server_start, rsa_handshake_tls12_aead_alpn)
{
	full_handshake("rsa.crt", "rsa_pkcs1.key", rsa_aead, 3);
	full_handshake("rsa.crt", "rsa_pkcs8.key", rsa_aead, 3);
}

Test(tls_server_start, ec_handshakes_p256_p384)
{
	full_handshake("ec256.crt", "ec256_sec1.key", ec_aead, 3);
	full_handshake("ec384.crt", "ec384_pkcs8.key", ec_aead, 3);
}

Test(tls_server_start, chain_verifies_against_the_root)
{
	full_handshake("chain.crt", "chain.key", rsa_aead, 3);
}

Test(tls_server_start, each_aead_suite_alone)
{
	for (int ec = 0; ec < 2; ec++)
		for (int i = 0; i < 3; i++) {
			struct pair p;
			pair_init(&p, ec ? "ec256.crt" : "rsa.crt", ec ? "ec256_sec1.key" : "rsa_pkcs1.key");
			tls_server_start(p.srv, &p.cred, NULL);
			br_ssl_engine_context *c = client_init(&p);
			const uint16_t *s = ec ? &ec_aead[i] : &rsa_aead[i];
			br_ssl_engine_set_suites(c, s, 1);
			client_go(&p, NULL);
			cr_assert(handshake(&p), "suite %#x refused (server error %d)", *s, br_ssl_engine_last_error(&p.srv->sc.eng));
			br_ssl_session_parameters sp;
			br_ssl_engine_get_session_parameters(&p.srv->sc.eng, &sp);
			cr_assert_eq(sp.cipher_suite, *s);
			pair_free(&p);
		}
}

/* 70: protocol_version, 40: handshake_failure */
/* A handshake that must fail: the client narrowed to `suites` / versions; `alert`: the fatal
 * alert the server must send (0: any error). The client may close first (it refuses the
 * server's TLS 1.2 record), so what the server still has to send is drained into the void. */
static void refused_handshake(const char *cert, const char *key, const uint16_t *suites, size_t n, unsigned vmin, unsigned vmax,
			      const char *what, int alert)
{
	struct pair p;
	pair_init(&p, cert, key);
	tls_server_start(p.srv, &p.cred, NULL);
	br_ssl_engine_context *c = client_init(&p);
	if (suites)
		br_ssl_engine_set_suites(c, suites, n);
	br_ssl_engine_set_versions(c, vmin, vmax);
	client_go(&p, NULL);
	cr_assert_not(handshake(&p), "%s: the handshake succeeded", what);
	cr_assert_not(ready(&p.srv->sc.eng), "%s: the server finished its side", what);
	size_t len;
	for (int i = 0; i < 100 && br_ssl_engine_sendrec_buf(&p.srv->sc.eng, &len); i++)
		br_ssl_engine_sendrec_ack(&p.srv->sc.eng, len);
	cr_assert(br_ssl_engine_current_state(&p.srv->sc.eng) & BR_SSL_CLOSED, "%s: the server engine is not closed", what);
	int err = br_ssl_engine_last_error(&p.srv->sc.eng);
	if (alert)
		cr_assert_eq(err, BR_ERR_SEND_FATAL_ALERT + alert, "%s: server error %d, expected the fatal alert %d", what, err, alert);
	else
		cr_assert_neq(err, BR_ERR_OK, "%s: closed without an error", what);
	pair_free(&p);
}

Test(tls_server_start, old_versions_refused)
{
	refused_handshake("rsa.crt", "rsa_pkcs1.key", NULL, 0, BR_TLS10, BR_TLS10, "TLS 1.0", 70);
	refused_handshake("rsa.crt", "rsa_pkcs1.key", NULL, 0, BR_TLS11, BR_TLS11, "TLS 1.1", 70);
	refused_handshake("rsa.crt", "rsa_pkcs1.key", NULL, 0, BR_TLS10, BR_TLS11, "TLS 1.0-1.1", 70);
	refused_handshake("ec256.crt", "ec256_sec1.key", NULL, 0, BR_TLS10, BR_TLS11, "TLS 1.0-1.1 (EC)", 70);
}

Test(tls_server_start, weak_and_non_ecdhe_suites_refused)
{
	static const uint16_t weak_rsa[] = {
		BR_TLS_RSA_WITH_AES_128_CBC_SHA, BR_TLS_RSA_WITH_AES_128_GCM_SHA256, BR_TLS_RSA_WITH_AES_256_GCM_SHA384,
		BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, BR_TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, BR_TLS_RSA_WITH_3DES_EDE_CBC_SHA,
		BR_TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256,
	};
	for (size_t i = 0; i < ARRAY_LEN(weak_rsa); i++) {
		char what[64];
		snprintf(what, sizeof(what), "RSA listener, suite %#x", weak_rsa[i]);
		refused_handshake("rsa.crt", "rsa_pkcs1.key", &weak_rsa[i], 1, BR_TLS10, BR_TLS12, what, 40);
	}
	static const uint16_t weak_ec[] = {
		BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384, BR_TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, /* the RSA suites for an EC key */
	};
	for (size_t i = 0; i < ARRAY_LEN(weak_ec); i++) {
		char what[64];
		snprintf(what, sizeof(what), "EC listener, suite %#x", weak_ec[i]);
		refused_handshake("ec256.crt", "ec256_sec1.key", &weak_ec[i], 1, BR_TLS10, BR_TLS12, what, 40);
	}
}

Test(tls_server_start, alpn_without_http11_selects_nothing)
{
	struct pair p;
	pair_init(&p, "rsa.crt", "rsa_pkcs1.key");
	tls_server_start(p.srv, &p.cred, NULL);
	br_ssl_engine_context *c = client_init(&p);
	static const char *h2[] = { "h2" };
	br_ssl_engine_set_protocol_names(c, h2, 1);
	client_go(&p, NULL);
	cr_assert(handshake(&p));
	cr_assert_null(br_ssl_engine_get_selected_protocol(&p.srv->sc.eng), "the server picked a protocol it does not speak");
	pair_free(&p);
}

Test(tls_server_start, renegotiation_refused)
{
	struct pair p;
	pair_init(&p, "rsa.crt", "rsa_pkcs1.key");
	tls_server_start(p.srv, &p.cred, NULL);
	br_ssl_engine_context *c = client_init(&p);
	client_go(&p, NULL);
	cr_assert(handshake(&p));
	br_ssl_session_parameters before, after;
	br_ssl_engine_get_session_parameters(&p.srv->sc.eng, &before);
	cr_assert(br_ssl_engine_renegotiate(c), "the client could not start a renegotiation");
	shuttle(&p);
	/* the server did not run a second handshake: same session, and it still talks */
	br_ssl_engine_get_session_parameters(&p.srv->sc.eng, &after);
	cr_assert(!memcmp(before.master_secret, after.master_secret, sizeof(before.master_secret)), "the server renegotiated");
	cr_assert(ready(&p.srv->sc.eng), "the server engine closed (error %d)", br_ssl_engine_last_error(&p.srv->sc.eng));
	pair_free(&p);
}

static void session_of(const char *cert, const char *key, br_ssl_session_cache_lru *cache, const br_ssl_session_parameters *resume,
		       br_ssl_session_parameters *out)
{
	struct pair p;
	pair_init(&p, cert, key);
	tls_server_start(p.srv, &p.cred, cache);
	client_init(&p);
	client_go(&p, resume);
	cr_assert(handshake(&p));
	br_ssl_engine_get_session_parameters(&p.cli->cc.eng, out);
	pair_free(&p);
}

Test(tls_server_start, sessions_resume_from_the_cache)
{
	br_ssl_session_cache_lru cache;
	unsigned char *store = malloc(64 * 1024);
	br_ssl_session_cache_lru_init(&cache, store, 64 * 1024);
	br_ssl_session_parameters s1, s2, s3;
	session_of("ec256.crt", "ec256_sec1.key", &cache, NULL, &s1);
	cr_assert_gt(s1.session_id_len, 0, "no session id to resume");
	session_of("ec256.crt", "ec256_sec1.key", &cache, &s1, &s2);
	cr_assert_eq(s2.session_id_len, s1.session_id_len);
	cr_assert(!memcmp(s1.session_id, s2.session_id, s1.session_id_len), "a new session instead of the cached one");
	cr_assert(!memcmp(s1.master_secret, s2.master_secret, sizeof(s1.master_secret)), "not resumed (new master secret)");
	/* without a cache: a full handshake each time */
	session_of("ec256.crt", "ec256_sec1.key", NULL, &s1, &s3);
	cr_assert(memcmp(s1.master_secret, s3.master_secret, sizeof(s1.master_secret)), "resumed without a cache");
	free(store);
}
