/* Unit tests for sections 8-10: cfg_parse, route_ and prov_ (the request bytes sent upstream). */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

/* ---- helpers ---- */

/* cfg_parse a copy of `text`; *errs gets the problem list (malloc'd, NUL-terminated). */
static struct cfg *load(const char *text, char **errs)
{
	if (!sys_anchors_tried)
		arena_init(&sys_arena, NULL); /* main() does this before any config is loaded */
	struct arena ea;
	struct sb e;
	arena_init(&ea, NULL);
	sb_init(&e, &ea, 256);
	char *t = strdup(text);
	struct cfg *c = cfg_parse(t, strlen(t), "test.json", &e);
	char *msg = strndup(e.p ? e.p : "", e.len);
	arena_reset(&ea);
	if (errs)
		*errs = msg;
	else
		free(msg);
	return c;
}

static struct cfg *load_ok(const char *text)
{
	char *errs;
	struct cfg *c = load(text, &errs);
	cr_assert_not_null(c, "config rejected:\n%s\n--- config:\n%s", errs, text);
	cr_assert_str_empty(errs);
	free(errs);
	return c;
}

static const struct provider *prov_named(const struct cfg *c, const char *name)
{
	const struct provider *p = route_provider(c, name, strlen(name));
	cr_assert_not_null(p, "no provider named %s", name);
	return p;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ======================================================================== */
/* cfg_parse                                                                */
/* ======================================================================== */

static const char routing_cfg[] =
	"{\"providers\": ["
	" {\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\",\"weight\":70,"
	"  \"models\":[\"gpt-*\"],"
	"  \"keys\":[{\"value\":\"k1\",\"weight\":3},{\"value\":\"k2\",\"weight\":1}]},"
	" {\"name\":\"fast\",\"provider\":\"groq\",\"base_url\":\"http://127.0.0.1:9/openai/v1\",\"weight\":30,"
	"  \"models\":[\"llama-*\",\"gpt-4o\"],\"apiKey\":\"gk\"},"
	" {\"name\":\"local\",\"provider\":\"ollama\",\"models\":[\"mistral\",\"vendor/*\"],"
	"  \"model_map\":{\"claude-*\":\"llama3\",\"gpt-4o-mini\":\"qwen2\"}},"
	" {\"name\":\"off\",\"provider\":\"vllm\",\"weight\":0},"
	" {\"name\":\"az\",\"provider\":\"azure\",\"base_url\":\"https://x.openai.azure.com\","
	"  \"api_version\":\"2024-10-21\",\"deployments\":{\"gpt-4o\":\"dep1\"},\"apiKey\":\"azk\",\"models\":[]}"
	"]}";

Test(cfg, array_form_fields_and_defaults)
{
	struct cfg *c = load_ok(routing_cfg);
	cr_assert_eq(c->nprov, 5);
	const struct provider *o = prov_named(c, "openai");
	cr_assert_str_eq(o->kind->name, "openai");
	cr_assert_str_eq(o->host, "127.0.0.1");
	cr_assert_eq(o->port, 9);
	cr_assert_str_eq(o->host_hdr, "127.0.0.1:9");
	cr_assert_str_eq(o->base_path, "/v1");
	cr_assert_not(o->tls);
	cr_assert_eq(o->weight, 70000, "weights are kept in thousandths");
	cr_assert_eq(o->nkeys, 2);
	cr_assert_str_eq(o->keys[0].value, "k1");
	cr_assert_eq(o->keys[0].weight, 3000);
	cr_assert_str_eq(o->keys[1].value, "k2");
	cr_assert_eq(o->keys[1].weight, 1000);
	cr_assert_eq(o->nmodels, 1);
	cr_assert_str_eq(o->models[0], "gpt-*");
	cr_assert_eq(o->timeout_ms, 120000, "time to the response head: 2 minutes by default");
	cr_assert_eq(o->total_timeout_ms, 1800000);
	cr_assert_eq(o->connect_timeout_ms, 5000);
	cr_assert_eq(o->stream_idle_timeout_ms, 300000);
	cr_assert_eq(o->max_retries, 1);
	cr_assert_not_null(o->dns);
	cr_assert_str_eq(o->dns->host, "127.0.0.1");
	cr_assert_eq(o->dns->port, 9);

	const struct provider *f = prov_named(c, "fast");
	cr_assert_str_eq(f->kind->name, "groq");
	cr_assert_eq(f->nkeys, 1);
	cr_assert_str_eq(f->keys[0].value, "gk");
	cr_assert_str_eq(f->base_path, "/openai/v1");

	const struct provider *l = prov_named(c, "local");
	cr_assert_str_eq(l->host, "127.0.0.1", "ollama's default base_url");
	cr_assert_eq(l->port, 11434);
	cr_assert_str_eq(l->base_path, "/v1");
	cr_assert_eq(l->nkeys, 0);
	cr_assert_eq(l->nmap, 2);
	cr_assert_eq(l->weight, 1000);

	const struct provider *z = prov_named(c, "az");
	cr_assert(z->tls);
	cr_assert_eq(z->port, 443);
	cr_assert_str_eq(z->host_hdr, "x.openai.azure.com");
	cr_assert_str_eq(z->base_path, "");
	cr_assert_str_eq(z->api_version, "2024-10-21");
	cr_assert_eq(z->ndeploy, 1);
	cr_assert_str_eq(z->deployments[0].k, "gpt-4o");
	cr_assert_str_eq(z->deployments[0].v, "dep1");
	cr_assert_not_null(z->models);
	cr_assert_eq(z->nmodels, 0);
	cr_assert_not_null(z->anchors, "https providers get trust anchors");

	/* top-level defaults */
	cr_assert_eq(c->max_body, 32u << 20);
	cr_assert_eq(c->max_header, 64u << 10);
	cr_assert(c->log_requests);
	cr_assert_null(c->listen);
	cr_assert_eq(c->workers, 0);
	cr_assert_str_eq(c->source, "test.json");
	cfg_free(c);
}

Test(cfg, map_form)
{
	struct cfg *c = load_ok("{\"providers\":{\"openai\":{\"keys\":[{\"value\":\"k\",\"weight\":1}],"
				"\"network_config\":{\"base_url\":\"http://127.0.0.1:1/v1\"}}}}");
	cr_assert_eq(c->nprov, 1);
	const struct provider *p = &c->prov[0];
	cr_assert_str_eq(p->name, "openai");
	cr_assert_str_eq(p->kind->name, "openai");
	cr_assert_str_eq(p->host, "127.0.0.1");
	cr_assert_eq(p->port, 1);
	cr_assert_str_eq(p->base_path, "/v1");
	cr_assert_not(p->tls);
	cr_assert_eq(p->nkeys, 1);
	cr_assert_str_eq(p->keys[0].value, "k");
	cfg_free(c);
}

Test(cfg, map_form_named_entries_and_network_config)
{
	struct cfg *c = load_ok(
		"{\"providers\":{"
		" \"mygroq\":{\"provider\":\"groq\",\"apiKey\":\"g\"},"
		" \"openai\":{\"apiKey\":\"o\",\"network_config\":{\"base_url\":\"http://10.0.0.1:8080/x/\","
		"   \"extra_headers\":{\"X-Org\":\"acme\"},\"default_request_timeout_in_seconds\":30,\"max_retries\":3}}"
		"}}");
	cr_assert_eq(c->nprov, 2);
	const struct provider *g = prov_named(c, "mygroq");
	cr_assert_str_eq(g->kind->name, "groq");
	cr_assert(g->tls);
	cr_assert_str_eq(g->host, "api.groq.com");
	cr_assert_eq(g->port, 443);
	cr_assert_str_eq(g->base_path, "/openai/v1");
	const struct provider *o = prov_named(c, "openai");
	cr_assert_str_eq(o->host_hdr, "10.0.0.1:8080");
	cr_assert_str_eq(o->base_path, "/x", "trailing slashes are dropped");
	cr_assert_eq(o->nheaders, 1);
	cr_assert_str_eq(o->headers[0].k, "X-Org");
	cr_assert_str_eq(o->headers[0].v, "acme");
	cr_assert_eq(o->timeout_ms, 30000);
	cr_assert_eq(o->max_retries, 3);
	cfg_free(c);
}

Test(cfg, base_url_forms)
{
	static const struct { const char *url, *host, *host_hdr, *path; int port; bool tls; } ok[] = {
		{ "http://h", "h", "h", "", 80, false },
		{ "https://h", "h", "h", "", 443, true },
		{ "http://h/", "h", "h", "", 80, false },
		{ "http://h:8080", "h", "h:8080", "", 8080, false },
		{ "https://h:1/a/b//", "h", "h:1", "/a/b", 1, true },
		{ "http://h:65535/v1", "h", "h:65535", "/v1", 65535, false },
		{ "http://[::1]:8080/v1", "::1", "[::1]:8080", "/v1", 8080, false },
		{ "http://[::1]/v1", "::1", "[::1]", "/v1", 80, false },
		{ "http://127.0.0.1:11434/v1", "127.0.0.1", "127.0.0.1:11434", "/v1", 11434, false },
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		struct arena a;
		struct provider p = { 0 };
		arena_init(&a, NULL);
		cr_expect_eq(cfg_parse_url(&a, ok[i].url, &p), 0, "%s", ok[i].url);
		cr_expect(p.host && strcmp(p.host, ok[i].host) == 0, "%s: host %s", ok[i].url, p.host);
		cr_expect(p.host_hdr && strcmp(p.host_hdr, ok[i].host_hdr) == 0, "%s: host_hdr %s", ok[i].url, p.host_hdr);
		cr_expect(p.base_path && strcmp(p.base_path, ok[i].path) == 0, "%s: path %s", ok[i].url, p.base_path);
		cr_expect_eq(p.port, ok[i].port, "%s", ok[i].url);
		cr_expect_eq(p.tls, ok[i].tls, "%s", ok[i].url);
		arena_reset(&a);
	}
	static const char *const bad[] = {
		"ftp://h", "h:80", "http:/h", "http://", "http:///v1", "http://:80", "http://h:0",
		"http://h:65536", "http://h:", "http://h:8x/v1", "http://h:-1", "http://[::1", "HTTP://h",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct arena a;
		struct provider p = { 0 };
		arena_init(&a, NULL);
		cr_expect_eq(cfg_parse_url(&a, bad[i], &p), -EINVAL, "%s accepted", bad[i]);
		arena_reset(&a);
	}
}

Test(cfg, env_strings)
{
	setenv("BIFROST_UT_KEY", "sekret-from-env", 1);
	setenv("BIFROST_UT_URL", "http://10.1.2.3:4567/base", 1);
	setenv("BIFROST_UT_WORKERS", "3", 1);
	setenv("BIFROST_UT_HDR", "hdr-value", 1);
	unsetenv("BIFROST_UT_UNSET");
	struct cfg *c = load_ok(
		"{\"workers\":\"env.BIFROST_UT_WORKERS\",\"providers\":["
		" {\"provider\":\"openai\",\"apiKey\":\"env.BIFROST_UT_KEY\",\"base_url\":\"env.BIFROST_UT_URL\","
		"  \"headers\":{\"X-From-Env\":\"env.BIFROST_UT_HDR\"},"
		"  \"keys\":[{\"value\":\"env.BIFROST_UT_KEY\",\"weight\":2},{\"value\":\"env.BIFROST_UT_UNSET\"}]},"
		" {\"name\":\"literal\",\"provider\":\"vllm\",\"apiKey\":\"environment.BIFROST_UT_KEY\"}"
		"]}");
	cr_assert_eq(c->workers, 3);
	const struct provider *o = prov_named(c, "openai");
	cr_assert_str_eq(o->host_hdr, "10.1.2.3:4567");
	cr_assert_str_eq(o->base_path, "/base");
	cr_assert_eq(o->nkeys, 2, "apiKey plus the keys entry; an unset variable gives an empty (skipped) key");
	cr_assert_str_eq(o->keys[0].value, "sekret-from-env");
	cr_assert_str_eq(o->keys[1].value, "sekret-from-env");
	cr_assert_eq(o->keys[1].weight, 2000);
	cr_assert_str_eq(o->headers[0].v, "hdr-value");
	const struct provider *l = prov_named(c, "literal");
	cr_assert_str_eq(l->keys[0].value, "environment.BIFROST_UT_KEY", "only the exact prefix env. is special");
	cfg_free(c);
}

Test(cfg, all_problems_listed_at_once)
{
	char *errs;
	struct cfg *c = load(
		"{\"workers\":-1,\"log_requests\":\"yes\",\"listen\":80,\"providers\":["
		" {\"provider\":\"nope\"},"                                             /* 1 unknown kind */
		" {\"name\":\"o2\",\"provider\":\"openai\",\"base_url\":\"ftp://x\"},"   /* 2 bad base_url */
		" {\"provider\":\"groq\"},"
		" {\"provider\":\"groq\"},"                                             /* 3 duplicate name */
		" {\"name\":\"w\",\"provider\":\"vllm\",\"weight\":\"heavy\",\"models\":5,"
		"  \"timeout_ms\":true,\"keys\":{},\"headers\":[]},"                    /* 4-8 wrong types */
		" {\"name\":\"a/b\",\"provider\":\"vllm\"},"                            /* 9 slash in name */
		" {\"name\":\"az\",\"provider\":\"azure\"}"                             /* 10 azure needs base_url */
		"]}",
		&errs);
	cr_assert_null(c);
	static const char *const want[] = {
		"  - workers must be between 0 and 1024\n",
		"  - log_requests must be true or false\n",
		"  - listen must be a string\n",
		"  - provider nope: unknown provider kind \"nope\"\n",
		"  - provider o2: base_url \"ftp://x\" is not http(s)://host[:port][/path]\n",
		"  - provider name \"groq\" is used twice\n",
		"  - weight must be a number\n",
		"  - models must be an array of strings\n",
		"  - timeout_ms must be a ", /* "number" or "whole number": the wording may vary */
		"  - provider w: keys must be an array\n",
		"  - headers must be an object of strings\n",
		"  - provider a/b: name must not contain '/'\n",
		"  - provider az: base_url is required for kind azure\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		cr_expect_not_null(strstr(errs, want[i]), "missing problem: %s--- got:\n%s", want[i], errs);
	/* every line is a problem ("  - ..."); later checks may add lines of their own */
	cr_expect_geq(count_lines(errs), (int)ARRAY_LEN(want), "got:\n%s", errs);
	for (const char *l = errs; *l; l = strchr(l, '\n') + 1)
		cr_expect(strncmp(l, "  - ", 4) == 0, "malformed problem line in:\n%s", errs);
	free(errs);
}

Test(cfg, syntax_errors)
{
	static const struct { const char *text, *err; } cases[] = {
		{ "{", "  - test.json:1:2: truncated JSON\n" },
		{ "", "  - test.json:1:1: JSON body must be an object\n" },
		{ "[]", "  - test.json:1:1: JSON body must be an object\n" },
		{ "{\"providers\":[]}}", "  - test.json:1:17: malformed JSON\n" },
		{ "{\"providers\":[],\"providers\":[]}", "  - the config: duplicate key\n" },
		{ "{\"providers\":[] \"workers\":1}", NULL }, /* any message */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *errs;
		struct cfg *c = load(cases[i].text, &errs);
		cr_expect_null(c, "%s", cases[i].text);
		if (cases[i].err)
			cr_expect_str_eq(errs, cases[i].err, "config %s", cases[i].text);
		else
			cr_expect(strncmp(errs, "  - test.json:1:", 16) == 0 && count_lines(errs) == 1, "config %s: %s",
				  cases[i].text, errs);
		cfg_free(c);
		free(errs);
	}
}

Test(cfg, providers_of_the_wrong_type)
{
	char *errs;
	struct cfg *c = load("{\"providers\":\"openai\"}", &errs);
	cr_assert_null(c);
	cr_assert_str_eq(errs, "  - providers must be an array (or the map form)\n");
	free(errs);
	c = load("{\"providers\":[5]}", &errs);
	cr_assert_null(c);
	cr_assert_str_eq(errs, "  - providers[0] must be an object\n");
	free(errs);
	c = load("{\"providers\":[{\"provider\":\"openai\",\"provider\":\"groq\"}]}", &errs);
	cr_assert_null(c);
	cr_assert_str_eq(errs, "  - providers[0]: duplicate key\n");
	free(errs);
	c = load("{\"providers\":[{\"apiKey\":\"x\"}]}", &errs);
	cr_assert_null(c);
	cr_assert_str_eq(errs, "  - providers: an entry needs \"provider\" (openai, anthropic, ...)\n");
	free(errs);
}

Test(cfg, empty_config_is_valid)
{
	struct cfg *c = load_ok("{}");
	cr_assert_eq(c->nprov, 0);
	cfg_free(c);
	c = load_ok("{\"providers\":[]}");
	cr_assert_eq(c->nprov, 0);
	cfg_free(c);
	c = load_ok("{\"providers\":{}}");
	cr_assert_eq(c->nprov, 0);
	cfg_free(c);
}

/* A section of the wrong type must be a problem, not silently ignored: with
 * "admin":"secret" the operator believes the admin endpoints have a token. */
Test(cfg, admin_of_the_wrong_type_is_a_problem)
{
	char *errs;
	struct cfg *c = load("{\"admin\":\"secret\",\"providers\":[]}", &errs);
	cr_expect_null(c, "\"admin\":\"secret\" was accepted (admin_token = %s)", c && c->admin_token ? c->admin_token : "NULL");
	cr_expect_str_not_empty(errs);
	cfg_free(c);
	free(errs);
	c = load("{\"admin\":{\"token\":\"a\",\"token\":\"b\"}}", &errs);
	cr_expect_null(c, "duplicate admin.token accepted (admin_token = %s)", c && c->admin_token ? c->admin_token : "NULL");
	cfg_free(c);
	free(errs);
}

Test(cfg, network_config_of_the_wrong_type_is_a_problem)
{
	char *errs;
	struct cfg *c = load("{\"providers\":[{\"provider\":\"openai\",\"network_config\":\"http://127.0.0.1:1/v1\"}]}", &errs);
	cr_expect_null(c, "network_config as a string was accepted (base_url %s://%s%s)",
		       c ? (c->prov[0].tls ? "https" : "http") : "", c ? c->prov[0].host_hdr : "", c ? c->prov[0].base_path : "");
	cfg_free(c);
	free(errs);
	c = load("{\"providers\":[{\"provider\":\"openai\",\"network_config\":"
		 "{\"base_url\":\"http://a:1\",\"base_url\":\"http://b:2\"}}]}", &errs);
	cr_expect_null(c, "duplicate network_config.base_url accepted (host %s)", c ? c->prov[0].host_hdr : "");
	cfg_free(c);
	free(errs);
}

/* Integer settings given as non-integer JSON numbers: "1e3" is 1000, not 1,
 * and a fractional weight or timeout is a problem, not silently truncated
 * (weight 0.5 would become 0 and take the provider out of bare-model routing). */
Test(cfg, non_integer_numbers)
{
	char *errs;
	struct cfg *c = load("{\"providers\":[{\"provider\":\"vllm\",\"timeout_ms\":1e3}]}", &errs);
	cr_expect(!c || c->prov[0].timeout_ms == 1000, "\"timeout_ms\":1e3 loaded as %ld", c ? c->prov[0].timeout_ms : 0L);
	cfg_free(c);
	free(errs);
	c = load("{\"providers\":[{\"provider\":\"vllm\",\"weight\":0.5}]}", &errs);
	cr_expect(c && c->prov[0].weight == 500, "\"weight\":0.5 (Bifrost's form) is 500 thousandths");
	cfg_free(c);
	free(errs);
	c = load("{\"providers\":[{\"provider\":\"vllm\",\"keys\":[{\"value\":\"k\",\"weight\":2.9}]}]}", &errs);
	cr_expect(c && c->prov[0].keys[0].weight == 2900, "keys[].weight 2.9");
	cfg_free(c);
	free(errs);
	c = load("{\"providers\":[{\"provider\":\"vllm\",\"weight\":\"heavy\"}]}", &errs);
	cr_expect_null(c, "a weight must be a number");
	cfg_free(c);
	free(errs);
}

Test(cfg, oom_while_loading_never_crashes)
{
	/* every allocation failing in turn: NULL or a config, never a crash or a leak */
	for (long k = 0; k < 400; k++) {
		struct arena ea;
		struct sb e;
		arena_init(&ea, NULL);
		sb_init(&e, &ea, 256);
		char *t = strdup("{\"providers\":[{\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\","
				 "\"keys\":[{\"value\":\"a\"},{\"value\":\"b\",\"weight\":2}],\"models\":[\"x\",\"y\"],"
				 "\"model_map\":{\"a\":\"b\"}}],\"fallbacks\":[\"openai/x\"]}");
		struct cfg *c = calloc(1, sizeof(*c));
		/* mimic cfg_parse, but with a failing arena: exercise the same loader code */
		arena_init(&c->arena, NULL);
		c->arena.fail_after = k;
		c->text = t;
		c->source = "oom";
		c->refs = 1;
		struct cfg_ld L = { .c = c };
		sb_init(&L.errs, &c->arena, 64);
		int f[TF_N];
		if (json_parse(&L.j, &c->arena, t, strlen(t)) == 0 &&
		    json_obj_get(&L.j, 0, tf_names, TF_N, f, NULL) == 0) {
			cfg_limits(&L, f[TF_LIMITS]);
			cfg_providers(&L, f[TF_PROVIDERS]);
			c->fallbacks = cfg_strs(&L, f[TF_FALLBACKS], &c->nfallbacks, "fallbacks");
		}
		cfg_free(c);
		arena_reset(&ea);
	}
}

/* ---- tls_load_anchors and tls.ca_file ---- */

#define SYS_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* The first PEM certificate of the system bundle (malloc'd), or NULL. */
static char *first_pem_cert(void)
{
	FILE *f = fopen(SYS_BUNDLE, "r");
	if (!f)
		return NULL;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *b = strstr(buf, "-----BEGIN CERTIFICATE-----");
	char *e = b ? strstr(b, "-----END CERTIFICATE-----") : NULL;
	return e ? strndup(b, (size_t)(e - b) + strlen("-----END CERTIFICATE-----")) : NULL;
}

static char tmpdir[64];

static const char *write_tmp(const char *name, const char *text)
{
	static char path[128];
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/bifrost-unit-XXXXXX");
		cr_assert_not_null(mkdtemp(tmpdir));
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void rm_tmp(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
}

static int anchors(const char *path, size_t *n, char *err, size_t errlen, long fail_after)
{
	struct arena a;
	struct tls_anchors ta = { 0 };
	arena_init(&a, NULL);
	a.fail_after = fail_after;
	err[0] = 0;
	int rc = tls_load_anchors(&a, path, &ta, err, errlen);
	*n = ta.n;
	for (size_t i = 0; rc == 0 && i < ta.n; i++) {
		cr_assert_gt(ta.ta[i].dn.len, 0, "anchor %zu has a DN", i);
		cr_assert(ta.ta[i].pkey.key_type == BR_KEYTYPE_RSA || ta.ta[i].pkey.key_type == BR_KEYTYPE_EC);
	}
	arena_reset(&a);
	return rc;
}

Test(tls_anchors, system_bundle_and_single_certs)
{
	char err[256];
	size_t n;
	cr_assert_eq(anchors(SYS_BUNDLE, &n, err, sizeof(err), -1), 0, "%s", err);
	cr_assert_gt(n, 16, "the system bundle holds many roots (more than the initial array)");

	char *cert = first_pem_cert();
	cr_assert_not_null(cert);
	cr_assert_eq(anchors(write_tmp("one.pem", cert), &n, err, sizeof(err), -1), 0, "%s", err);
	cr_assert_eq(n, 1);
	/* no newline after END: still read */
	char *nonl = strdup(cert);
	nonl[strlen(nonl)] = 0;
	cr_assert_eq(anchors(write_tmp("nonl.pem", nonl), &n, err, sizeof(err), -1), 0, "%s", err);
	cr_assert_eq(n, 1);
	/* a private key block and comments around the certificate are skipped */
	char *mixed;
	cr_assert_geq(asprintf(&mixed, "# comment\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n%s\n%s\n", cert, cert), 0);
	cr_assert_eq(anchors(write_tmp("mixed.pem", mixed), &n, err, sizeof(err), -1), 0, "%s", err);
	cr_assert_eq(n, 2);
	free(mixed);
	free(nonl);
	free(cert);
	rm_tmp("one.pem");
	rm_tmp("nonl.pem");
	rm_tmp("mixed.pem");
	rmdir(tmpdir);
}

Test(tls_anchors, failures)
{
	char err[256];
	size_t n;
	cr_assert_eq(anchors("/nonexistent/ca.pem", &n, err, sizeof(err), -1), -ENOENT);
	cr_assert_str_eq(err, "cannot open CA file /nonexistent/ca.pem: No such file or directory");

	const char *p = write_tmp("empty.pem", "");
	cr_assert_eq(anchors(p, &n, err, sizeof(err), -1), -EINVAL);
	cr_assert_not_null(strstr(err, "holds no certificates"), "%s", err);

	p = write_tmp("text.pem", "hello, not a certificate\n");
	cr_assert_eq(anchors(p, &n, err, sizeof(err), -1), -EINVAL);
	cr_assert_not_null(strstr(err, "holds no certificates"), "%s", err);

	p = write_tmp("baddata.pem", "-----BEGIN CERTIFICATE-----\nQUJDREVGRw==\n-----END CERTIFICATE-----\n");
	cr_assert_eq(anchors(p, &n, err, sizeof(err), -1), -EINVAL, "valid PEM, not a certificate");
	cr_assert_eq(n, 0);

	p = write_tmp("badpem.pem", "-----BEGIN CERTIFICATE-----\n@@@@ not base64 @@@@\n-----END CERTIFICATE-----\n");
	cr_assert_eq(anchors(p, &n, err, sizeof(err), -1), -EINVAL);
	cr_assert_eq(n, 0);

	/* out of memory anywhere: -ENOMEM, or every anchor; never a silently shorter
	 * trust store, a misleading message, a crash or a leak */
	size_t all;
	cr_assert_eq(anchors(SYS_BUNDLE, &all, err, sizeof(err), -1), 0);
	static const long ks[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 20, 50, 100, 250, 400 };
	for (size_t i = 0; i < ARRAY_LEN(ks); i++) {
		int rc = anchors(SYS_BUNDLE, &n, err, sizeof(err), ks[i]);
		cr_expect(rc == -ENOMEM || (rc == 0 && n == all), "fail_after %ld: rc %d, %zu of %zu anchors (%s)", ks[i],
			  rc, n, all, err);
	}
	cr_assert_eq(anchors(SYS_BUNDLE, &n, err, sizeof(err), 0), -ENOMEM);
	cr_assert_not_null(strstr(err, "out of memory"), "%s", err);
	rm_tmp("empty.pem");
	rm_tmp("text.pem");
	rm_tmp("baddata.pem");
	rm_tmp("badpem.pem");
	rmdir(tmpdir);
}

Test(cfg, tls_section)
{
	char *cert = first_pem_cert();
	cr_assert_not_null(cert);
	const char *path = write_tmp("ca.pem", cert);
	char *text;
	cr_assert_geq(asprintf(&text,
			       "{\"providers\":["
			       " {\"name\":\"a\",\"provider\":\"openai\",\"base_url\":\"https://h:8443/v1\","
			       "  \"tls\":{\"ca_file\":\"%s\"}},"
			       " {\"name\":\"b\",\"provider\":\"openai\",\"base_url\":\"https://h/v1\","
			       "  \"tls\":{\"insecure_skip_verify\":true}},"
			       " {\"name\":\"c\",\"provider\":\"openai\",\"base_url\":\"https://h/v1\"}"
			       "]}", path), 0);
	struct cfg *c = load_ok(text);
	const struct provider *a = prov_named(c, "a"), *b = prov_named(c, "b"), *pc = prov_named(c, "c");
	cr_assert_not_null(a->anchors);
	cr_assert_eq(a->anchors->n, 1, "the ca_file's anchors only");
	cr_assert_not(a->insecure);
	cr_assert(b->insecure);
	cr_assert_eq(b->anchors, &sys_anchors);
	cr_assert_eq(pc->anchors, &sys_anchors);
	cr_assert_gt(sys_anchors.n, 16);
	cfg_free(c);
	free(text);

	char *errs;
	c = load("{\"providers\":[{\"name\":\"x\",\"provider\":\"openai\",\"tls\":{\"ca_file\":\"/nonexistent.pem\"}},"
		 "{\"name\":\"y\",\"provider\":\"openai\",\"tls\":{\"insecure_skip_verify\":\"yes\"}},"
		 "{\"name\":\"z\",\"provider\":\"openai\",\"tls\":[]}]}", &errs);
	cr_assert_null(c);
	cr_expect_not_null(strstr(errs, "  - provider x: cannot open CA file /nonexistent.pem: No such file or directory\n"), "%s", errs);
	cr_expect_not_null(strstr(errs, "  - tls.insecure_skip_verify must be true or false\n"), "%s", errs);
	cr_expect_not_null(strstr(errs, "  - providers[2].tls must be an object\n"), "%s", errs);
	cr_expect_eq(count_lines(errs), 3, "%s", errs);
	free(errs);
	free(cert);
	rm_tmp("ca.pem");
	rmdir(tmpdir);
}

/* ======================================================================== */
/* route_                                                                   */
/* ======================================================================== */

static uint64_t seed(void) { return 0x9E3779B97F4A7C15ULL; }

Test(route, provider_prefix)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	struct route r;
	const char *why = NULL;
	cr_assert_eq(route_resolve(c, "openai/gpt-4o", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.c[0].p->name, "openai");
	cr_assert_str_eq(r.c[0].model, "gpt-4o");

	cr_assert_eq(route_resolve(c, "fast/some-model-nobody-lists", &rng, &r, &why), 0,
		     "an explicit prefix does not need the models list");
	cr_assert_str_eq(r.c[0].p->name, "fast");
	cr_assert_str_eq(r.c[0].model, "some-model-nobody-lists");

	cr_assert_eq(route_resolve(c, "off/x", &rng, &r, &why), 0, "weight 0 only affects bare models");
	cr_assert_str_eq(r.c[0].p->name, "off");
	cfg_free(c);
}

Test(route, only_the_first_slash_splits)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	struct route r;
	const char *why = NULL;
	cr_assert_eq(route_resolve(c, "openai/org/model:tag/x", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.c[0].p->name, "openai");
	cr_assert_str_eq(r.c[0].model, "org/model:tag/x");
	cfg_free(c);
}

Test(route, prefix_with_model_map)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	struct route r;
	const char *why = NULL;
	cr_assert_eq(route_resolve(c, "local/claude-3-opus", &rng, &r, &why), 0);
	cr_assert_str_eq(r.c[0].model, "llama3");
	cr_assert_eq(route_resolve(c, "local/other", &rng, &r, &why), 0);
	cr_assert_str_eq(r.c[0].model, "other");
	cfg_free(c);
}

Test(route, empty_model_after_prefix)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	struct route r;
	const char *why = NULL;
	cr_assert_eq(route_resolve(c, "openai/", &rng, &r, &why), -ENOENT);
	cr_assert_str_eq(why, "model name after the provider prefix is empty");
	cfg_free(c);
}

Test(route, bare_models_by_globs_and_model_map)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	struct route r;
	const char *why = NULL;

	cr_assert_eq(route_resolve(c, "gpt-3.5-turbo", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.c[0].p->name, "openai");
	cr_assert_str_eq(r.c[0].model, "gpt-3.5-turbo");

	cr_assert_eq(route_resolve(c, "llama-3-70b", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.c[0].p->name, "fast");

	cr_assert_eq(route_resolve(c, "claude-3-haiku", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.c[0].p->name, "local");
	cr_assert_str_eq(r.c[0].model, "llama3", "model_map rewrites the model");

	cr_assert_eq(route_resolve(c, "mistral", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.c[0].p->name, "local");
	cr_assert_str_eq(r.c[0].model, "mistral");

	/* gpt-4o-mini: openai by glob, local by model_map (to qwen2) */
	cr_assert_eq(route_resolve(c, "gpt-4o-mini", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 2);
	for (int i = 0; i < 2; i++) {
		if (strcmp(r.c[i].p->name, "local") == 0)
			cr_assert_str_eq(r.c[i].model, "qwen2");
		else
			cr_assert_str_eq(r.c[i].model, "gpt-4o-mini");
	}
	cfg_free(c);
}

Test(route, unknown_prefix_is_a_bare_model)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	struct route r;
	const char *why = NULL;
	cr_assert_eq(route_resolve(c, "nosuch/gpt-4o", &rng, &r, &why), -ENOENT);
	cr_assert_str_eq(why, "unknown provider prefix and no provider serves this model");
	why = NULL;
	cr_assert_eq(route_resolve(c, "no-such-model", &rng, &r, &why), -ENOENT);
	cr_assert_str_eq(why, "no configured provider serves this model");
	/* a slash-containing name served by a glob: routed whole */
	cr_assert_eq(route_resolve(c, "vendor/m1", &rng, &r, &why), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.c[0].p->name, "local");
	cr_assert_str_eq(r.c[0].model, "vendor/m1");
	/* the prefix must match a name exactly */
	cr_assert_eq(route_resolve(c, "openai2/gpt-4o", &rng, &r, &why), -ENOENT);
	cr_assert_eq(route_resolve(c, "open/gpt-4o", &rng, &r, &why), -ENOENT);
	cr_assert_eq(route_resolve(c, "OPENAI/gpt-4o", &rng, &r, &why), -ENOENT);
	cfg_free(c);
}

Test(route, weighted_choice_70_30)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	int first_openai = 0, draws = 10000;
	for (int i = 0; i < draws; i++) {
		struct route r;
		const char *why = NULL;
		cr_assert_eq(route_resolve(c, "gpt-4o", &rng, &r, &why), 0);
		cr_assert_eq(r.n, 2, "openai (gpt-*) and fast (gpt-4o); az lists no models, off has weight 0");
		bool o = strcmp(r.c[0].p->name, "openai") == 0;
		cr_assert_str_eq(r.c[1].p->name, o ? "fast" : "openai", "the other one is the fallback");
		cr_assert_str_eq(r.c[0].model, "gpt-4o");
		first_openai += o;
	}
	double share = (double)first_openai / draws;
	cr_expect(share > 0.67 && share < 0.73, "openai first in %.1f%% of draws, want 70%% +- 3%%", share * 100);
	cfg_free(c);
}

Test(route, fallback_order_heaviest_first)
{
	struct cfg *c = load_ok(
		"{\"providers\":["
		" {\"name\":\"a\",\"provider\":\"vllm\",\"weight\":1},"
		" {\"name\":\"b\",\"provider\":\"vllm\",\"weight\":5},"
		" {\"name\":\"c\",\"provider\":\"vllm\",\"weight\":3},"
		" {\"name\":\"d\",\"provider\":\"vllm\",\"weight\":3},"
		" {\"name\":\"z\",\"provider\":\"vllm\",\"weight\":0}"
		"]}");
	uint64_t rng = seed();
	int firsts[4] = { 0 };
	for (int i = 0; i < 12000; i++) {
		struct route r;
		const char *why;
		cr_assert_eq(route_resolve(c, "m", &rng, &r, &why), 0);
		cr_assert_eq(r.n, 4, "weight-0 providers are not candidates");
		/* the rest, in order b(5) c(3) d(3) a(1) with the pick removed */
		const char *order[] = { "b", "c", "d", "a" };
		int k = 1;
		for (int o = 0; o < 4; o++) {
			if (strcmp(order[o], r.c[0].p->name) == 0)
				continue;
			cr_assert_str_eq(r.c[k].p->name, order[o], "draw %d: position %d", i, k);
			k++;
		}
		firsts[r.c[0].p->name[0] - 'a']++;
	}
	/* expected shares: a 1/12, b 5/12, c 3/12, d 3/12 */
	cr_expect(abs(firsts[0] - 1000) < 300, "a first %d times", firsts[0]);
	cr_expect(abs(firsts[1] - 5000) < 400, "b first %d times", firsts[1]);
	cr_expect(abs(firsts[2] - 3000) < 350, "c first %d times", firsts[2]);
	cr_expect(abs(firsts[3] - 3000) < 350, "d first %d times", firsts[3]);
	cfg_free(c);
}

Test(route, key_choice_by_weight)
{
	struct cfg *c = load_ok(routing_cfg);
	uint64_t rng = seed();
	const struct provider *o = prov_named(c, "openai");
	int k1 = 0, draws = 10000;
	for (int i = 0; i < draws; i++) {
		const char *k = o->keys[route_key(o, "gpt-4o", &rng)].value;
		cr_assert(strcmp(k, "k1") == 0 || strcmp(k, "k2") == 0);
		k1 += strcmp(k, "k1") == 0;
	}
	double share = (double)k1 / draws;
	cr_expect(share > 0.72 && share < 0.78, "k1 drawn %.1f%%, want 75%% +- 3%%", share * 100);
	cr_assert_eq(prov_named(c, "local")->nkeys, 0, "no keys");
	const struct provider *f = prov_named(c, "fast");
	cr_assert_str_eq(f->keys[route_key(f, "x", &rng)].value, "gk");
	cfg_free(c);
}

Test(route, key_models_restrict_the_draw)
{
	static const char txt[] = "{\"providers\":{\"openai\":{\"keys\":["
		"{\"value\":\"a\",\"models\":[\"gpt-4o\"],\"weight\":0.5},"
		"{\"value\":\"b\",\"models\":[\"gpt-4.1*\"],\"weight\":0.5}]}}}";
	struct cfg *c = load_ok(txt);
	uint64_t rng = seed();
	const struct provider *o = prov_named(c, "openai");
	cr_assert_eq(o->keys[0].weight, 500);
	for (int i = 0; i < 200; i++) {
		cr_assert_str_eq(o->keys[route_key(o, "gpt-4o", &rng)].value, "a");
		cr_assert_str_eq(o->keys[route_key(o, "gpt-4.1-mini", &rng)].value, "b");
	}
	struct route r;
	const char *why = NULL;
	cr_assert_neq(route_resolve(c, "openai/o3", &rng, &r, &why), 0, "no key serves o3");
	cr_assert_eq(route_resolve(c, "gpt-4o", &rng, &r, &why), 0);
	cr_assert_neq(route_resolve(c, "o3", &rng, &r, &why), 0);
	cfg_free(c);
}

Test(route, circuit_breaker_states)
{
	struct breaker b = { 0 };
	struct cb_conf cf = { .fails = 3, .cooldown_ms = 1000 };
	cr_assert(route_cb_allow(&b, &cf, 0));
	cr_assert_str_eq(route_cb_state(&b, 0), "closed");
	route_cb_result(&b, &cf, false, 100);
	route_cb_result(&b, &cf, false, 100);
	cr_assert(route_cb_allow(&b, &cf, 100), "2 failures of 3: still closed");
	route_cb_result(&b, &cf, true, 150);
	route_cb_result(&b, &cf, false, 160);
	route_cb_result(&b, &cf, false, 170);
	cr_assert(route_cb_allow(&b, &cf, 170), "a success resets the count");
	route_cb_result(&b, &cf, false, 200); /* third consecutive: opens until 1200 */
	cr_assert_str_eq(route_cb_state(&b, 200), "open");
	cr_assert_not(route_cb_allow(&b, &cf, 200));
	cr_assert_not(route_cb_allow(&b, &cf, 1199));
	cr_assert_str_eq(route_cb_state(&b, 1200), "half-open");
	cr_assert(route_cb_allow(&b, &cf, 1200), "one probe");
	cr_assert_not(route_cb_allow(&b, &cf, 1201), "only one probe at a time");
	cr_assert_not(route_cb_allow(&b, &cf, 1300));
	route_cb_result(&b, &cf, false, 1300); /* the probe failed: open again until 2300 */
	cr_assert_str_eq(route_cb_state(&b, 1300), "open");
	cr_assert_not(route_cb_allow(&b, &cf, 2299));
	cr_assert(route_cb_allow(&b, &cf, 2300));
	route_cb_result(&b, &cf, true, 2400); /* the probe succeeded: closed */
	cr_assert_str_eq(route_cb_state(&b, 2400), "closed");
	cr_assert(route_cb_allow(&b, &cf, 2400));
	cr_assert(route_cb_allow(&b, &cf, 2401), "closed admits everyone");
	route_cb_result(&b, &cf, false, 2500);
	cr_assert(route_cb_allow(&b, &cf, 2500), "the count restarted from 0");
}

Test(route, circuit_breaker_lost_probe_is_replaced)
{
	/* a probe whose verdict never comes (client gone) must not block the key for ever */
	struct breaker b = { 0 };
	struct cb_conf cf = { .fails = 1, .cooldown_ms = 1000 };
	route_cb_result(&b, &cf, false, 0); /* open until 1000 */
	cr_assert(route_cb_allow(&b, &cf, 1000), "the probe");
	cr_assert_not(route_cb_allow(&b, &cf, 1500), "one probe at a time");
	cr_assert(route_cb_allow(&b, &cf, 2000), "no verdict for a cooldown: another probe");
}

Test(route, circuit_breaker_config)
{
	struct cfg *c = load_ok("{\"circuit_breaker\":{\"failures\":2,\"cooldown_ms\":500},\"providers\":["
				"{\"provider\":\"vllm\",\"keys\":[{\"value\":\"a\"},{\"value\":\"b\"}]},"
				"{\"name\":\"nokey\",\"provider\":\"vllm\"}]}");
	cr_assert_eq(c->cb.fails, 2);
	cr_assert_eq(c->cb.cooldown_ms, 500);
	const struct provider *p = prov_named(c, "vllm");
	cr_assert_not_null(p->brk);
	/* one breaker per key, independent */
	route_cb_result(&p->brk[0], &c->cb, false, 10);
	route_cb_result(&p->brk[0], &c->cb, false, 10);
	cr_assert_not(route_cb_allow(&p->brk[0], &c->cb, 20));
	cr_assert(route_cb_allow(&p->brk[1], &c->cb, 20));
	cr_assert_not_null(prov_named(c, "nokey")->brk, "at least one breaker even without keys");
	cfg_free(c);
	c = load_ok("{}");
	cr_assert_eq(c->cb.fails, 5);
	cr_assert_eq(c->cb.cooldown_ms, 30000);
	cfg_free(c);
	char *errs;
	c = load("{\"circuit_breaker\":{\"failures\":0}}", &errs);
	cr_assert_null(c);
	cr_assert_str_eq(errs, "  - circuit_breaker.failures must be between 1 and 1000000\n");
	free(errs);
}

/* ======================================================================== */
/* prov_: the exact request sent upstream                                   */
/* ======================================================================== */

static const char prov_cfg[] =
	"{\"providers\":["
	" {\"name\":\"o\",\"provider\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\",\"apiKey\":\"KEY\"},"
	" {\"name\":\"h\",\"provider\":\"openai\",\"base_url\":\"http://gw.local:8080/\","
	"  \"headers\":{\"X-Org\":\"acme\",\"X-Two\":\"2\"}},"
	" {\"name\":\"az\",\"provider\":\"azure\",\"base_url\":\"https://x.openai.azure.com\","
	"  \"api_version\":\"2024-10-21\",\"deployments\":{\"gpt-4o\":\"dep1\"},\"apiKey\":\"AZK\"},"
	" {\"name\":\"an\",\"provider\":\"anthropic\",\"base_url\":\"http://127.0.0.1:9\",\"apiKey\":\"AK\"},"
	" {\"name\":\"an1\",\"provider\":\"anthropic\",\"base_url\":\"http://127.0.0.1:9/v1\"}"
	"]}";

struct built {
	struct arena a;
	struct cfg *c;
	struct client_req o;
	struct up_req ur;
	int prep_rc, build_rc;
	char *head, *body; /* NUL-terminated copies (arena) */
	size_t head_len, body_len;
};

/* Prepare `body` (at a guard page) and build it for provider `pname`, model `model`. */
static void build(struct built *b, const char *body, const char *pname, const char *model,
		  const char *key, enum endpoint ep, struct str query)
{
	memset(b, 0, sizeof(*b));
	arena_init(&b->a, NULL);
	b->c = load_ok(prov_cfg);
	struct guard g;
	size_t n = strlen(body);
	char *p = guard_put(&g, body, n);
	b->prep_rc = prov_openai_prepare(&b->o, &b->a, p, n, ep, SIZE_MAX);
	b->build_rc = -1;
	if (b->prep_rc == 0) {
		b->build_rc = prov_build(&b->a, &b->o, prov_named(b->c, pname), model, key, ep, query, &b->ur);
		if (b->build_rc == 0) {
			size_t bl = 0;
			for (int i = 1; i < b->ur.niov; i++)
				bl += b->ur.iov[i].iov_len;
			b->head_len = b->ur.iov[0].iov_len;
			b->head = arena_strndup(&b->a, b->ur.iov[0].iov_base, b->head_len);
			b->body = arena_alloc(&b->a, bl + 1, 1);
			size_t o = 0;
			for (int i = 1; i < b->ur.niov; i++) {
				memcpy(b->body + o, b->ur.iov[i].iov_base, b->ur.iov[i].iov_len);
				o += b->ur.iov[i].iov_len;
			}
			b->body[o] = 0;
			b->body_len = o;
			cr_assert_eq(b->ur.len, b->head_len + b->body_len, "up_req.len is the total");
		}
	}
	guard_free(&g); /* the iovecs point into the body: copied above */
}

static void built_free(struct built *b)
{
	cfg_free(b->c);
	arena_reset(&b->a);
}

static void expect_valid_json(const char *s)
{
	struct arena a;
	struct json j;
	arena_init(&a, NULL);
	cr_expect_eq(json_parse(&j, &a, s, strlen(s)), 0, "not valid JSON (%s): %s", j.err, s);
	arena_reset(&a);
}

static char *expected_head(const char *path, const char *host, const char *auth, const char *extra,
			   const char *accept, size_t body_len)
{
	char *h;
	cr_assert_geq(asprintf(&h, "POST %s HTTP/1.1\r\nHost: %s\r\n%s%sContent-Type: application/json\r\n"
				   "Accept: %s\r\nContent-Length: %zu\r\n\r\n",
			       path, host, auth, extra, accept, body_len), 0);
	return h;
}

/* No query. http_parse_request leaves {NULL, 0} for a target without '?';
 * that exact value is tested on its own in prov.no_query_as_the_parser_leaves_it. */
#define NOQ ((struct str){ "", 0 })

#define HEAD_STARTS(b, lit) \
	cr_assert(strncmp((b)->head, (lit), sizeof(lit) - 1) == 0, "head does not start with \"%s\":\n%s", (lit), (b)->head)

Test(prov, model_replaced_exact_request)
{
	struct built b;
	build(&b, "{\"model\":\"o/gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "o",
	      "gpt-4o", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.prep_rc, 0);
	cr_assert_eq(b.build_rc, 0);
	cr_assert_str_eq(b.o.model, "o/gpt-4o");
	cr_assert_not(b.o.stream);
	cr_assert_str_eq(b.body, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	char *h = expected_head("/v1/chat/completions", "127.0.0.1:9", "Authorization: Bearer KEY\r\n", "",
				"application/json", b.body_len);
	cr_assert_str_eq(b.head, h);
	free(h);
	built_free(&b);
}

Test(prov, no_query_as_the_parser_leaves_it)
{
	/* conn_ passes the request's m->query: {NULL, 0} when the target has no '?' */
	struct http_msg m;
	char req[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t sc = 0;
	cr_assert_gt(http_parse_request(&m, req, sizeof(req) - 1, &sc, 4096), 0);
	cr_assert_null(m.query.p);
	struct built b;
	build(&b, "{\"model\":\"m\"}", "o", "M", "KEY", EP_CHAT, m.query);
	cr_assert_eq(b.build_rc, 0);
	HEAD_STARTS(&b, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n");
	built_free(&b);
}

Test(prov, model_escaped_in_body)
{
	struct built b;
	build(&b, "{ \"messages\" : [] , \"model\" : \"x\" }", "o", "we\"ird\\model\n", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_assert_str_eq(b.body, "{ \"messages\" : [] , \"model\" : \"we\\\"ird\\\\model\\n\" }");
	expect_valid_json(b.body);
	built_free(&b);
}

Test(prov, model_with_escapes_in_the_client_body)
{
	struct built b;
	build(&b, "{\"model\":\"o\\/gpt-4o\\u0021\"}", "o", "gpt-4o", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.prep_rc, 0);
	cr_assert_str_eq(b.o.model, "o/gpt-4o!", "the model is read unescaped");
	cr_assert_str_eq(b.body, "{\"model\":\"gpt-4o\"}");
	built_free(&b);
}

Test(prov, head_details)
{
	struct built b;
	build(&b, "{\"model\":\"m\"}", "h", "m2", NULL, EP_COMPLETIONS, STR("api-version=1&x=%20"));
	cr_assert_eq(b.build_rc, 0);
	char *h = expected_head("/completions?api-version=1&x=%20", "gw.local:8080", "", "X-Org: acme\r\nX-Two: 2\r\n",
				"application/json", b.body_len);
	cr_assert_str_eq(b.head, h, "no key: no Authorization; config headers; query kept");
	free(h);
	cr_assert_str_eq(b.body, "{\"model\":\"m2\"}");
	built_free(&b);

	build(&b, "{\"model\":\"m\",\"input\":\"x\"}", "o", "emb", "", EP_EMBEDDINGS, NOQ);
	cr_assert_eq(b.build_rc, 0);
	h = expected_head("/v1/embeddings", "127.0.0.1:9", "", "", "application/json", b.body_len);
	cr_assert_str_eq(b.head, h, "an empty key sends no Authorization");
	free(h);
	built_free(&b);
}

Test(prov, content_length_counts_body_bytes)
{
	static const char *const bodies[] = {
		"{\"model\":\"m\"}",
		"{\"model\":\"a-much-longer-model-name-than-the-replacement\",\"x\":1}",
		"{\"model\":\"m\",\"stream\":true,\"fallbacks\":[\"a/b\",\"c/d\"],\"messages\":[]}",
		"{\"fallbacks\":[],\"stream\":true,\"stream_options\":{\"include_usage\":false},\"model\":\"m\"}",
		"  {\"model\":\"m\",\"stream\":true,\"stream_options\":{}}  \n",
	};
	for (size_t i = 0; i < ARRAY_LEN(bodies); i++) {
		struct built b;
		build(&b, bodies[i], "o", "replacement", "KEY", EP_CHAT, NOQ);
		cr_assert_eq(b.build_rc, 0, "%s", bodies[i]);
		char cl[64];
		snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n\r\n", b.body_len);
		cr_expect_not_null(strstr(b.head, cl), "body %zu: %s\n%s", i, b.head, b.body);
		cr_expect(b.head_len >= strlen(cl) && strcmp(b.head + b.head_len - strlen(cl), cl) == 0,
			  "Content-Length is the last header");
		expect_valid_json(b.body);
		cr_expect_null(strstr(b.body, "fallbacks"), "fallbacks removed: %s", b.body);
		built_free(&b);
	}
}

struct fb_case {
	const char *in, *out;
};

Test(prov, fallbacks_removed_anywhere)
{
	static const struct fb_case cases[] = {
		/* first */
		{ "{\"fallbacks\":[\"a/b\"],\"model\":\"m\",\"messages\":[]}", "{\"model\":\"M\",\"messages\":[]}" },
		/* middle */
		{ "{\"model\":\"m\",\"fallbacks\":[\"a/b\",\"c\"],\"messages\":[]}", "{\"model\":\"M\",\"messages\":[]}" },
		/* last */
		{ "{\"model\":\"m\",\"messages\":[],\"fallbacks\":[\"a/b\"]}", "{\"model\":\"M\",\"messages\":[]}" },
		/* last, right after the model */
		{ "{\"model\":\"m\",\"fallbacks\":[]}", "{\"model\":\"M\"}" },
		/* first, right before the model */
		{ "{\"fallbacks\":[],\"model\":\"m\"}", "{\"model\":\"M\"}" },
		/* with whitespace everywhere */
		{ "{ \"model\" : \"m\" , \"fallbacks\" : [ \"x\" ] , \"n\" : 1 }", "{ \"model\" : \"M\" , \"n\" : 1 }" },
		{ "{ \"model\" : \"m\" , \"fallbacks\" : [ ] }", "{ \"model\" : \"M\"  }" },
		{ "{\n  \"fallbacks\": [\"x\"],\n  \"model\": \"m\"\n}", "{\n  \"model\": \"M\"\n}" },
		/* an escaped key is the same key */
		{ "{\"model\":\"m\",\"fallb\\u0061cks\":[\"x\"]}", "{\"model\":\"M\"}" },
		/* nested "fallbacks" keys are not touched */
		{ "{\"model\":\"m\",\"meta\":{\"fallbacks\":[1]}}", "{\"model\":\"M\",\"meta\":{\"fallbacks\":[1]}}" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct built b;
		build(&b, cases[i].in, "o", "M", "KEY", EP_CHAT, NOQ);
		cr_expect_eq(b.build_rc, 0, "%s", cases[i].in);
		if (b.build_rc == 0) {
			cr_expect_str_eq(b.body, cases[i].out, "case %zu: %s", i, cases[i].in);
			expect_valid_json(b.body);
		}
		built_free(&b);
	}
}

Test(prov, fallbacks_only_member)
{
	/* prov_remove_member on its own: the object becomes empty */
	static const struct fb_case cases[] = {
		{ "{\"fallbacks\":[\"a/b\"]}", "{}" },
		{ "{ \"fallbacks\" : [] }", "{  }" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct arena a;
		struct client_req o;
		arena_init(&a, NULL);
		memset(&o, 0, sizeof(o));
		cr_assert_eq(json_parse(&o.j, &a, cases[i].in, strlen(cases[i].in)), 0);
		prov_remove_member(&o, 1);
		cr_assert_eq(o.ned, 1);
		char out[64];
		size_t e = o.ed[0].off, l = o.ed[0].len, n = strlen(cases[i].in);
		snprintf(out, sizeof(out), "%.*s%s", (int)e, cases[i].in, cases[i].in + e + l);
		cr_expect_str_eq(out, cases[i].out, "%s", cases[i].in);
		cr_expect_leq(e + l, n);
		expect_valid_json(out);
		arena_reset(&a);
	}
}

/* "fallbacks" as the first member of a streaming body: its removal and the
 * stream_options insertion both start right after the '{'. */
Test(prov, fallbacks_first_with_stream_usage_insertion)
{
	struct built b;
	/* with a space after '{' the two edits start at different offsets: fine */
	build(&b, "{ \"fallbacks\":[\"a/b\"],\"model\":\"m\",\"stream\":true}", "o", "M", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_expect_str_eq(b.body, "{\"stream_options\":{\"include_usage\":true}, \"model\":\"M\",\"stream\":true}");
	built_free(&b);
	/* no space: both edits start at offset 1 */
	build(&b, "{\"fallbacks\":[\"a/b\"],\"model\":\"m\",\"stream\":true}", "o", "M", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_expect_str_eq(b.body, "{\"stream_options\":{\"include_usage\":true},\"model\":\"M\",\"stream\":true}");
	expect_valid_json(b.body);
	built_free(&b);
}

Test(prov, stream_usage_inserted)
{
	struct built b;
	build(&b, "{\"model\":\"m\",\"stream\":true}", "o", "M", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_assert(b.o.stream);
	cr_assert_not(b.o.client_usage);
	cr_assert_str_eq(b.body, "{\"stream_options\":{\"include_usage\":true},\"model\":\"M\",\"stream\":true}");
	char *h = expected_head("/v1/chat/completions", "127.0.0.1:9", "Authorization: Bearer KEY\r\n", "",
				"text/event-stream", b.body_len);
	cr_assert_str_eq(b.head, h);
	free(h);
	built_free(&b);

	build(&b, "{\"model\":\"m\",\"str\\u0065am\":true}", "o", "M", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_assert(b.o.stream, "an escaped \"stream\" key counts");
	cr_assert_str_eq(b.body, "{\"stream_options\":{\"include_usage\":true},\"model\":\"M\",\"str\\u0065am\":true}");
	built_free(&b);

	build(&b, " { \"stream\" : true , \"model\" : \"m\" } ", "o", "M", "KEY", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_assert_str_eq(b.body, " {\"stream_options\":{\"include_usage\":true}, \"stream\" : true , \"model\" : \"M\" } ");
	expect_valid_json(b.body);
	built_free(&b);
}

Test(prov, stream_options_rewrites)
{
	static const struct { const char *in, *out; bool client_usage; } cases[] = {
		{ "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}",
		  "{\"model\":\"M\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", false },
		{ "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
		  "{\"model\":\"M\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", true },
		{ "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":null}}",
		  "{\"model\":\"M\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", false },
		{ "{\"model\":\"m\",\"stream\":true,\"stream_options\":{}}",
		  "{\"model\":\"M\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", false },
		{ "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"x\":1}}",
		  "{\"model\":\"M\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"x\":1}}", false },
		{ "{\"model\":\"m\",\"stream\":true,\"stream_options\":null}",
		  "{\"model\":\"M\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", false },
		{ "{\"stream_options\":{ \"include_usage\" : false },\"stream\":true,\"model\":\"m\"}",
		  "{\"stream_options\":{ \"include_usage\" : true },\"stream\":true,\"model\":\"M\"}", false },
		/* not streaming: nothing touched */
		{ "{\"model\":\"m\",\"stream\":false,\"stream_options\":{\"include_usage\":false}}",
		  "{\"model\":\"M\",\"stream\":false,\"stream_options\":{\"include_usage\":false}}", false },
		{ "{\"model\":\"m\",\"stream\":null}", "{\"model\":\"M\",\"stream\":null}", false },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct built b;
		build(&b, cases[i].in, "o", "M", "KEY", EP_CHAT, NOQ);
		cr_expect_eq(b.build_rc, 0, "%s: %s", cases[i].in, b.o.j.err);
		if (b.build_rc == 0) {
			cr_expect_str_eq(b.body, cases[i].out, "case %zu", i);
			cr_expect_eq(b.o.client_usage, cases[i].client_usage, "case %zu: client_usage", i);
			expect_valid_json(b.body);
		}
		built_free(&b);
	}
}

Test(prov, embeddings_never_stream)
{
	struct built b;
	build(&b, "{\"model\":\"m\",\"stream\":true,\"input\":\"x\"}", "o", "M", "KEY", EP_EMBEDDINGS, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_assert_not(b.o.stream);
	cr_assert_str_eq(b.body, "{\"model\":\"M\",\"stream\":true,\"input\":\"x\"}");
	cr_assert_not_null(strstr(b.head, "\r\nAccept: application/json\r\n"));
	HEAD_STARTS(&b, "POST /v1/embeddings HTTP/1.1\r\n");
	built_free(&b);
}

Test(prov, azure_exact_request)
{
	struct built b;
	build(&b, "{\"model\":\"az/gpt-4o\",\"messages\":[]}", "az", "gpt-4o", "AZK", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	char *h = expected_head("/openai/deployments/dep1/chat/completions?api-version=2024-10-21",
				"x.openai.azure.com", "api-key: AZK\r\n", "", "application/json", b.body_len);
	cr_assert_str_eq(b.head, h);
	free(h);
	cr_assert_null(strstr(b.head, "Authorization"));
	cr_assert_str_eq(b.body, "{\"model\":\"gpt-4o\",\"messages\":[]}");
	built_free(&b);

	/* no deployment listed: the model name is the deployment; the client query follows with '&' */
	build(&b, "{\"model\":\"m\"}", "az", "gpt-35", "AZK", EP_EMBEDDINGS, STR("x=1"));
	cr_assert_eq(b.build_rc, 0);
	HEAD_STARTS(&b, "POST /openai/deployments/gpt-35/embeddings?api-version=2024-10-21&x=1 HTTP/1.1\r\n");
	built_free(&b);
}

/* The azure deployment comes from the client's model string when no
 * deployment is configured for it. It goes into the request line, so it must
 * not be able to break it: a model with a space or CR LF (JSON "\r\n") must not
 * end the request target and add headers of the client's choosing upstream. */
Test(prov, azure_model_cannot_inject_into_the_request_head)
{
	static const char *const models[] = {
		"x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /",
		"x\r\nX-Injected: 1",
		"a b",
	};
	for (size_t i = 0; i < ARRAY_LEN(models); i++) {
		struct built b;
		build(&b, "{\"model\":\"m\"}", "az", models[i], "AZK", EP_CHAT, NOQ);
		if (b.build_rc != 0) { /* refusing is fine */
			built_free(&b);
			continue;
		}
		const char *eol = strstr(b.head, "\r\n");
		int spaces = 0;
		for (const char *q = b.head; q < eol; q++)
			spaces += *q == ' ';
		cr_expect_eq(spaces, 2, "model %zu: request line is \"%.*s\"", i, (int)(eol - b.head), b.head);
		cr_expect_null(strstr(b.head, "\nX-Injected"), "model %zu: header injected:\n%s", i, b.head);
		for (const char *q = b.head; q < eol; q++)
			cr_expect((unsigned char)*q > 0x20 || *q == ' ', "model %zu: control byte in the request line", i);
		const char *end = strstr(b.head, "\r\n\r\n");
		cr_expect(end && (size_t)(end - b.head) + 4 == b.head_len, "model %zu: the head ends once, at its end", i);
		built_free(&b);
	}
}

Test(prov, azure_deployment_from_model_is_percent_encoded)
{
	/* prov_path_segment: everything but unreserved characters is %XX */
	struct built b;
	build(&b, "{\"model\":\"m\"}", "az", "My Model/v2?x=1#\xc3\xa9~._-", "AZK", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	HEAD_STARTS(&b, "POST /openai/deployments/My%20Model%2Fv2%3Fx%3D1%23%C3%A9~._-/chat/completions"
			"?api-version=2024-10-21 HTTP/1.1\r\n");
	cr_assert_str_eq(b.body, "{\"model\":\"My Model/v2?x=1#\xc3\xa9~._-\"}", "the body keeps the name as is");
	built_free(&b);
	build(&b, "{\"model\":\"m\"}", "az", "../../admin", "AZK", EP_CHAT, NOQ);
	cr_assert_eq(b.build_rc, 0);
	HEAD_STARTS(&b, "POST /openai/deployments/..%2F..%2Fadmin/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n");
	built_free(&b);
}

Test(prov, anthropic_messages_request)
{
	struct built b;
	build(&b, "{\"model\":\"an/claude-x\",\"max_tokens\":5,\"stream\":true,\"messages\":[]}", "an", "claude-x",
	      "AK", EP_MESSAGES, NOQ);
	cr_assert_eq(b.build_rc, 0);
	cr_assert(b.o.stream);
	cr_assert_str_eq(b.body, "{\"model\":\"claude-x\",\"max_tokens\":5,\"stream\":true,\"messages\":[]}",
			 "no stream_options for the Anthropic dialect");
	char *h = expected_head("/v1/messages", "127.0.0.1:9", "x-api-key: AK\r\nanthropic-version: 2023-06-01\r\n", "",
				"text/event-stream", b.body_len);
	cr_assert_str_eq(b.head, h);
	free(h);
	/* the client's anthropic-version / anthropic-beta are forwarded */
	b.o.anth_version = STR("2024-01-01");
	b.o.anth_beta = STR("tools-2024");
	cr_assert_eq(prov_build(&b.a, &b.o, prov_named(b.c, "an1"), "c", NULL, EP_COUNT_TOKENS, NOQ, &b.ur), 0);
	const char *head = b.ur.iov[0].iov_base;
	size_t hl = b.ur.iov[0].iov_len;
	const char want[] = "POST /v1/messages/count_tokens HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
			    "anthropic-version: 2024-01-01\r\nanthropic-beta: tools-2024\r\nContent-Type: application/json\r\n";
	cr_assert(hl > sizeof(want) - 1 && memcmp(head, want, sizeof(want) - 1) == 0, "base_url ending in /v1; no key: %.*s",
		  (int)hl, head);
	built_free(&b);
}

struct bad_body {
	const char *body, *err; /* err NULL: only -EBADMSG is required */
};

Test(prov, hostile_bodies)
{
	static const struct bad_body cases[] = {
		{ "{\"model\":\"a\",\"model\":\"b\"}", "duplicate key in JSON object" },
		{ "{\"model\":\"a\",\"x\":1,\"model\":\"a\"}", "duplicate key in JSON object" },
		{ "{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", "duplicate key in JSON object" },
		{ "{\"model\":\"a\",\"stream\":true,\"stream\":false}", "duplicate key in JSON object" },
		{ "{\"model\":\"a\",\"fallbacks\":[],\"fallbacks\":[]}", "duplicate key in JSON object" },
		{ "{\"model\":\"a\",\"stream\":true,\"stream_options\":{},\"stream_options\":null}", "duplicate key in JSON object" },
		{ "{\"model\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"include_usage\":false}}",
		  "duplicate key in JSON object" },
		{ "{\"model\":5}", "\"model\" must be a string" },
		{ "{\"model\":null}", "\"model\" must be a string" },
		{ "{\"model\":[\"a\"]}", "\"model\" must be a string" },
		{ "{\"model\":{\"a\":1}}", "\"model\" must be a string" },
		{ "{\"model\":true}", "\"model\" must be a string" },
		{ "{\"messages\":[]}", "missing \"model\"" },
		{ "{}", "missing \"model\"" },
		{ "{\"model\":\"\"}", "\"model\" is empty" },
		{ "{\"model\":\"\\ud800\"}", "bad escape in JSON string" },
		{ "{\"model\":\"a\\udc00b\"}", "bad escape in JSON string" },
		{ "{\"model\":\"\\q\"}", NULL },
		{ "{\"model\":\"a\"}x", NULL },
		{ "{\"model\":\"a\"} {}", "trailing data after JSON" },
		{ "{\"model\":\"a\"", "truncated JSON" },
		{ "[{\"model\":\"a\"}]", "JSON body must be an object" },
		{ "", "JSON body must be an object" },
		{ "{\"model\":\"a\",\"stream\":\"true\"}", "\"stream\" must be a boolean" },
		{ "{\"model\":\"a\",\"stream\":1}", "\"stream\" must be a boolean" },
		{ "{\"model\":\"a\",\"fallbacks\":\"b/c\"}", "\"fallbacks\" must be an array of \"provider/model\" strings" },
		{ "{\"model\":\"a\",\"stream\":true,\"stream_options\":5}", "stream_options must be an object" },
		{ "{\"model\":\"a\",\"stream\":true,\"stream_options\":[]}", "stream_options must be an object" },
		{ "{\"model\":\"a\",\"x\":tru}", NULL },
		{ "{\"model\":\"a\" \"x\":1}", NULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct built b;
		build(&b, cases[i].body, "o", "M", "KEY", EP_CHAT, NOQ);
		cr_expect_eq(b.prep_rc, -EBADMSG, "accepted: %s", cases[i].body);
		if (b.prep_rc == -EBADMSG && cases[i].err)
			cr_expect(b.o.j.err && strcmp(b.o.j.err, cases[i].err) == 0, "%s: err \"%s\", want \"%s\"",
				  cases[i].body, b.o.j.err ? b.o.j.err : "(null)", cases[i].err);
		built_free(&b);
	}
}

Test(prov, build_oom_is_enomem)
{
	for (long k = 0; k < 6; k++) {
		struct built b;
		build(&b, "{\"model\":\"m\",\"stream\":true}", "o", "M", "KEY", EP_CHAT, NOQ); /* a working baseline */
		cr_assert_eq(b.build_rc, 0);
		struct up_req ur;
		struct arena a;
		arena_init(&a, NULL);
		a.fail_after = k;
		int rc = prov_build(&a, &b.o, prov_named(b.c, "o"), "M", "KEY", EP_CHAT, NOQ, &ur);
		cr_expect(rc == -ENOMEM || rc == 0, "fail_after %ld: rc %d", k, rc);
		arena_reset(&a);
		built_free(&b);
	}
}

/* Every field the loader does not know is a problem naming its JSON path and the
 * closest known name; the original Bifrost's unimplemented fields pass with a warning. */
Test(cfg, unknown_fields_named_with_a_suggestion)
{
	static const struct { const char *text, *err; } cases[] = {
		{ "{\"govenance\":{}}", "  - govenance: unknown field (did you mean \"governance\"?)\n" },
		{ "{\"governance\":{\"enforced\":true}}",
		  "  - governance.enforced: unknown field (did you mean \"enforce\"?)\n" },
		{ "{\"providers\":[{\"provider\":\"vllm\",\"wieght\":2}]}",
		  "  - providers[0].wieght: unknown field (did you mean \"weight\"?)\n" },
		{ "{\"providers\":[{\"provider\":\"vllm\",\"baseUrl\":\"http://a\"}]}",
		  "  - providers[0].baseUrl: unknown field (did you mean \"base_url\"?)\n" },
		{ "{\"providers\":{\"openai\":{\"keys\":[{\"value\":\"k\",\"modles\":[]}]}}}",
		  "  - providers.openai.keys[0].modles: unknown field (did you mean \"models\"?)\n" },
		{ "{\"zzqx_frob\":1}", "  - zzqx_frob: unknown field\n" },
		{ "{\"limits\":{\"max_body_byte\":1}}",
		  "  - limits.max_body_byte: unknown field (did you mean \"max_body_bytes\"?)\n" },
		{ "{\"governance\":{\"virtual_keys\":[{\"id\":\"a\",\"value\":\"v\",\"budget\":{\"max_limt\":1}}]}}",
		  "  - governance.virtual_keys[0].budget.max_limt: unknown field (did you mean \"max_limit\"?)\n"
		  "  - governance.virtual_keys[0].budget.max_limit is required\n"
		  "  - governance.virtual_keys[0].budget.reset_duration is required\n" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *errs;
		struct cfg *c = load(cases[i].text, &errs);
		cr_expect_null(c, "%s", cases[i].text);
		cr_expect_str_eq(errs, cases[i].err, "config %s", cases[i].text);
		cfg_free(c);
		free(errs);
	}
	char *errs;
	struct cfg *c = load("{\"$schema\":\"x\",\"client\":{\"drop_excess_requests\":true},\"config_store\":{},"
			     "\"providers\":{\"openai\":{\"keys\":[{\"name\":\"k1\",\"value\":\"v\",\"weight\":1.0}],"
			     "\"network_config\":{\"retry_backoff_initial_ms\":100}}}}", &errs);
	cr_assert_not_null(c, "Bifrost's own fields are accepted: %s", errs);
	cfg_free(c);
	free(errs);
}

Test(cfg, values_that_would_inject_or_leak)
{
	char *errs;
	struct cfg *c = load("{\"providers\":[{\"provider\":\"vllm\",\"headers\":{\"X-A\":\"a\\r\\nX-Evil: 1\"}}]}", &errs);
	cr_assert_null(c);
	cr_expect_not_null(strstr(errs, "control characters"), "%s", errs);
	free(errs);
	c = load("{\"providers\":[{\"provider\":\"vllm\",\"base_url\":\"https://user:hunter2@example.com/v1\"}]}", &errs);
	cr_assert_null(c);
	cr_expect_not_null(strstr(errs, "must not carry credentials"), "%s", errs);
	cr_expect_null(strstr(errs, "hunter2"), "the secret is never printed: %s", errs);
	free(errs);
	c = load("{\"providers\":[{\"provider\":\"vllm\",\"base_url\":\"http://example.com/v1?u=a@b\"}]}", &errs);
	cr_expect_not_null(c, "an '@' after the host is no credential: %s", errs);
	cfg_free(c);
	free(errs);
}

Test(cfg, syntax_error_line_and_column)
{
	char *errs;
	struct cfg *c = load("{\n  \"providers\": [\n    {\"provider\": \"openai\",}\n  ]\n}", &errs);
	cr_assert_null(c);
	cr_expect_str_eq(errs, "  - test.json:3:26: malformed JSON\n");
	free(errs);
}
