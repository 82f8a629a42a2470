/*
 * Unit tests for AWS Bedrock: the Converse <-> Messages translations of the xlate_ section
 * ("Bedrock Converse <-> Messages": xlate_req_a2c, xlate_resp_c2a, xlate_c2a_*, xlate_req_c2a,
 * xlate_resp_a2c, xlate_a2c_event, xlate_stop_*, xlate_usage_from_c) and Bedrock's own API in
 * the prov_ section (prov_bedrock_route, _inbound, _body, _build) and evs_chunk_to_sse.
 *
 * JSON in this file is written with single quotes for readability; J() turns every ' into "
 * (a JSON-escaped quote is therefore written \\'). Inputs are placed right before a PROT_NONE
 * page (guard.h). Outputs are parsed with the JSON layer and checked member by member.
 *
 * Where every expected value comes from (none is bifrost.c's own output):
 *
 *   Converse: the Amazon Bedrock Runtime API reference (docs.aws.amazon.com/bedrock/latest/
 *   APIReference/): API_runtime_Converse and _ConverseStream (request: messages, system,
 *   inferenceConfig, toolConfig, additionalModelRequestFields, ...; modelId is in the path),
 *   ContentBlock (a union: exactly one of text, image, toolUse, toolResult, reasoningContent,
 *   cachePoint, ...), ImageBlock (format png | jpeg | gif | webp, source.bytes base64),
 *   ToolUseBlock (toolUseId, name, input), ToolResultBlock (toolUseId, content, status
 *   success | error), ToolResultContentBlock (text | json | image | document | video),
 *   ReasoningContentBlock (reasoningText {text, signature} | redactedContent),
 *   SystemContentBlock (text | cachePoint | guardContent), InferenceConfiguration (maxTokens,
 *   temperature, topP, stopSequences), ToolConfiguration (tools: "Minimum number of 1 item";
 *   toolChoice, a union of auto {} | any {} | tool {name}), ToolSpecification (name,
 *   description, inputSchema.json), StopReason (end_turn | tool_use | max_tokens |
 *   stop_sequence | guardrail_intervened | content_filtered | malformed_model_output |
 *   malformed_tool_use | model_context_window_exceeded), TokenUsage (inputTokens,
 *   outputTokens, totalTokens, cacheReadInputTokens, cacheWriteInputTokens), and the stream
 *   events MessageStartEvent {role}, ContentBlockStartEvent {contentBlockIndex, start
 *   {toolUse {toolUseId, name}}}, ContentBlockDeltaEvent {contentBlockIndex, delta {text |
 *   toolUse {input} | reasoningContent {text | signature}}}, ContentBlockStopEvent
 *   {contentBlockIndex}, MessageStopEvent {stopReason}, ConverseStreamMetadataEvent {usage,
 *   metrics}. Bedrock's validation error "The toolConfig field must be defined when using
 *   toolUse and toolResult content blocks" (ValidationException; reported in vercel/ai#7537,
 *   langgenius/dify#16421).
 *
 *   Messages: Anthropic's API reference: content blocks text, image (source {type base64,
 *   media_type, data}), tool_use {id, name, input}, tool_result {tool_use_id, content (string
 *   or text/image blocks), is_error}, thinking {thinking, signature}, redacted_thinking {data};
 *   tool_choice auto | any | tool {name} | none; stop_reason end_turn | max_tokens |
 *   stop_sequence | tool_use | pause_turn | refusal | model_context_window_exceeded; usage
 *   {input_tokens (excluding cache), output_tokens, cache_read_input_tokens,
 *   cache_creation_input_tokens}; streaming: message_start, then per block content_block_start,
 *   content_block_delta (text_delta, input_json_delta, thinking_delta, signature_delta),
 *   content_block_stop, then message_delta {delta {stop_reason}, usage}, message_stop.
 *
 *   Bedrock's InvokeModel and eventstream: /work/shared/PROTOCOLS.md "AWS Bedrock" (paths, body
 *   without model/stream plus "anthropic_version":"bedrock-2023-05-31" and "anthropic_beta"
 *   array; chunk frames {"bytes": base64 of an Anthropic event}). Model ids in paths are
 *   percent-encoded path segments (RFC 3986: ':' = %3A, '/' = %2F, hex digits in either case).
 *
 *   SigV4: the Bedrock vector in tests/unit/aws.c, signed by the official @smithy/signature-v4
 *   (same credentials, date, host, path, headers and body), and for other shapes an independent
 *   signer written below from the SigV4 definition (canonical request, string to sign, HMAC
 *   key chain), itself checked against that smithy vector first.
 */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

static struct arena A;

static void setup(void) { arena_init(&A, NULL); }
static void teardown(void) { arena_reset(&A); }

TestSuite(bedrock_a2c, .init = setup, .fini = teardown);
TestSuite(bedrock_c2a, .init = setup, .fini = teardown);
TestSuite(bedrock_stream, .init = setup, .fini = teardown);
TestSuite(bedrock_client, .init = setup, .fini = teardown);
TestSuite(bedrock_events, .init = setup, .fini = teardown);
TestSuite(bedrock_prov, .init = setup, .fini = teardown);

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

/* Single-quoted JSON → JSON, in the arena. */
static char *J(const char *s)
{
	size_t n = strlen(s);
	char *p = arena_strndup(&A, s, n);
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\'')
			p[i] = '"';
	return p;
}

static struct json *P(const char *p, size_t n)
{
	struct json *j = arena_new(&A, struct json, 1);
	cr_assert_not_null(j);
	cr_assert_eq(json_parse(j, &A, p, n), 0, "not JSON: %.*s", (int)n, p);
	return j;
}

#define PSB(o) P((o).p, (o).len)

/* The token at `path` below token i: members by name, array elements by number, joined with
 * '.' ("messages.0.content.1.text"). -1 when absent. */
static int at(struct json *j, int i, const char *path)
{
	char seg[96];
	while (i >= 0 && *path) {
		size_t n = strcspn(path, ".");
		cr_assert(n < sizeof(seg), "path segment too long: %s", path);
		memcpy(seg, path, n);
		seg[n] = 0;
		path += n + (path[n] == '.');
		if (isdigit((unsigned char)seg[0]) && xlate_type(j, i, JSMN_ARRAY)) {
			int k = atoi(seg);
			if (k >= j->tok[i].size)
				return -1;
			int e = i + 1;
			while (k--)
				e = json_skip(j, e);
			i = e;
		} else {
			i = xlate_member(j, i, seg);
		}
	}
	return i;
}

/* The unescaped string at path, or NULL when there is none. */
static char *S(struct json *j, const char *path)
{
	int i = at(j, 0, path);
	return xlate_type(j, i, JSMN_STRING) ? json_str(j, &A, i, NULL) : NULL;
}

static char *RAW(struct json *j, const char *path)
{
	int i = at(j, 0, path);
	if (i < 0)
		return NULL;
	struct str r = json_raw(j, i);
	return arena_strndup(&A, r.p, r.n);
}

/* Members (object) or elements (array) at path; -1 when absent or a scalar. */
static int LEN(struct json *j, const char *path)
{
	int i = at(j, 0, path);
	return xlate_type(j, i, JSMN_OBJECT) || xlate_type(j, i, JSMN_ARRAY) ? j->tok[i].size : -1;
}

static bool HAS(struct json *j, const char *path) { return at(j, 0, path) >= 0; }

static int count_key(struct json *j, int obj, const char *key)
{
	int c = 0;
	if (!xlate_type(j, obj, JSMN_OBJECT))
		return 0;
	for (int m = 0, i = obj + 1; m < j->tok[obj].size; m++, i = json_skip(j, i + 1))
		c += str_eq(xlate_inner(j, i), key);
	return c;
}

#define DOC(j) (int)(j)->n, (j)->s

#define EXPECT_STR(j, path, want)                                                                        \
	do {                                                                                             \
		const char *g_ = S((j), (path));                                                         \
		cr_assert(g_ && strcmp(g_, (want)) == 0, "%s: got %s%s%s, want \"%s\"\n  in %.*s", (path), \
			  g_ ? "\"" : "", g_ ? g_ : "(no string)", g_ ? "\"" : "", (want), DOC(j));       \
	} while (0)

/* A JSON number written exactly as `want` (raw text: integers stay integers, 0.25 stays 0.25). */
#define EXPECT_NUM(j, path, want)                                                                       \
	do {                                                                                            \
		int i_ = at((j), 0, (path));                                                            \
		const char *g_ = RAW((j), (path));                                                      \
		cr_assert(xlate_num((j), i_) && strcmp(g_, (want)) == 0, "%s: got %s, want %s\n  in %.*s", \
			  (path), g_ ? g_ : "(absent)", (want), DOC(j));                                \
	} while (0)

#define EXPECT_RAW(j, path, want)                                                                       \
	do {                                                                                            \
		const char *g_ = RAW((j), (path));                                                      \
		cr_assert(g_ && strcmp(g_, (want)) == 0, "%s: got %s, want %s\n  in %.*s", (path),     \
			  g_ ? g_ : "(absent)", (want), DOC(j));                                        \
	} while (0)

#define EXPECT_ABSENT(j, path) \
	cr_assert(!HAS((j), (path)), "%s should be absent: %s\n  in %.*s", (path), RAW((j), (path)), DOC(j))

#define EXPECT_LEN(j, path, n) \
	cr_assert_eq(LEN((j), (path)), (n), "%s: %d members, want %d\n  in %.*s", (path), LEN((j), (path)), (n), DOC(j))

/* An object whose only member is `key` (a Converse union: exactly one member is set). */
#define EXPECT_ONLY_KEY(j, path, key)                                                                   \
	do {                                                                                            \
		int i_ = at((j), 0, (path));                                                            \
		cr_assert(xlate_type((j), i_, JSMN_OBJECT) && (j)->tok[i_].size == 1 &&                 \
				  str_eq(xlate_inner((j), i_ + 1), (key)),                                \
			  "%s must be an object with the one member \"%s\": %s\n  in %.*s", (path), (key), \
			  RAW((j), (path)), DOC(j));                                                    \
	} while (0)

/* Every member name of the object at path is one of `keys` (NULL-terminated). */
static void only_keys(struct json *j, const char *path, const char *const *keys)
{
	int obj = at(j, 0, path);
	cr_assert(xlate_type(j, obj, JSMN_OBJECT), "%s is not an object in %.*s", path, DOC(j));
	for (int m = 0, i = obj + 1; m < j->tok[obj].size; m++, i = json_skip(j, i + 1)) {
		struct str k = xlate_inner(j, i);
		bool ok = false;
		for (int q = 0; keys[q] && !ok; q++)
			ok = str_eq(k, keys[q]);
		cr_assert(ok, "%s has the member \"%.*s\", which does not belong there\n  in %.*s", path, (int)k.n,
			  k.p, DOC(j));
	}
}

/* ---- Messages SSE events ---- */

struct ev {
	const char *name;
	struct json *j;
};

/* Split a Messages stream into events: each is "event: NAME" + one data: line whose JSON's
 * "type" is NAME; nothing is left over. */
static int events(const struct sb *o, struct ev *e, int max)
{
	size_t off = 0, n;
	int k = 0;
	while ((n = sse_next(o->p + off, o->len - off)) > 0) {
		const char *p = o->p + off;
		cr_assert(strncmp(p, "event: ", 7) == 0, "event without a name: %.*s", (int)n, p);
		size_t en = strcspn(p + 7, "\n");
		struct str d = sse_data(p, n);
		cr_assert_not_null(d.p, "event without data: %.*s", (int)n, p);
		cr_assert_lt(k, max, "more than %d events", max);
		e[k].name = arena_strndup(&A, p + 7, en);
		e[k].j = P(d.p, d.n);
		const char *t = S(e[k].j, "type");
		cr_assert(t && strcmp(t, e[k].name) == 0, "event name %s, data type %s", e[k].name, t ? t : "(none)");
		k++;
		off += n;
	}
	cr_assert_eq(off, o->len, "trailing partial event: %.*s", (int)(o->len - off), o->p + off);
	return k;
}

static long long IDX(struct json *j)
{
	int i = at(j, 0, "index");
	cr_assert(xlate_num(j, i), "no index in %.*s", DOC(j));
	return json_int(j, i, -1);
}

static bool anthropic_stop_reason(const char *s)
{
	static const char *const ok[] = { "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn",
					  "refusal", "model_context_window_exceeded" };
	for (size_t i = 0; s && i < ARRAY_LEN(ok); i++)
		if (strcmp(s, ok[i]) == 0)
			return true;
	return false;
}

/* The Messages stream grammar: message_start first and once, message_stop last; a block is
 * started once (with the empty value of its kind), every delta and stop names a block that is
 * open, and the delta fits the block's kind; message_delta comes once, after every block
 * stopped, with a known stop_reason and a usage holding output_tokens. */
static void check_grammar(struct ev *e, int n)
{
	char kind[64] = { 0 }; /* 0: never started; 'x' text, 'u' tool_use, 'k' thinking; 'S' stopped */
	int md = -1;
	cr_assert_geq(n, 3, "too few events: %d", n);
	cr_assert_str_eq(e[0].name, "message_start");
	cr_assert_str_eq(e[n - 1].name, "message_stop");
	EXPECT_STR(e[0].j, "message.role", "assistant");
	EXPECT_STR(e[0].j, "message.type", "message");
	cr_assert_eq(LEN(e[0].j, "message.content"), 0, "message_start content must be []");
	for (int k = 1; k < n - 1; k++) {
		const char *nm = e[k].name;
		struct json *j = e[k].j;
		if (strcmp(nm, "ping") == 0)
			continue;
		cr_assert(md < 0, "%s after message_delta (event %d)", nm, k);
		if (strcmp(nm, "message_delta") == 0) {
			for (int i = 0; i < 64; i++)
				cr_assert(kind[i] == 0 || kind[i] == 'S', "block %d still open at message_delta", i);
			cr_assert(anthropic_stop_reason(S(j, "delta.stop_reason")), "stop_reason %s",
				  RAW(j, "delta.stop_reason"));
			cr_assert(xlate_num(j, at(j, 0, "usage.output_tokens")), "message_delta without usage.output_tokens");
			md = k;
			continue;
		}
		long long idx = IDX(j);
		cr_assert(idx >= 0 && idx < 64, "index %lld", idx);
		if (strcmp(nm, "content_block_start") == 0) {
			const char *t = S(j, "content_block.type");
			cr_assert_eq(kind[idx], 0, "block %lld started twice (event %d)", idx, k);
			cr_assert_not_null(t);
			if (strcmp(t, "text") == 0) {
				kind[idx] = 'x';
				EXPECT_STR(j, "content_block.text", "");
			} else if (strcmp(t, "tool_use") == 0) {
				kind[idx] = 'u';
				cr_assert(S(j, "content_block.id") && S(j, "content_block.name"), "tool_use start: %.*s", DOC(j));
				EXPECT_LEN(j, "content_block.input", 0);
			} else if (strcmp(t, "thinking") == 0) {
				kind[idx] = 'k';
				EXPECT_STR(j, "content_block.thinking", "");
			} else {
				cr_assert_fail("unexpected block type %s", t);
			}
		} else if (strcmp(nm, "content_block_delta") == 0) {
			const char *t = S(j, "delta.type");
			char want = 0;
			cr_assert_not_null(t);
			const char *field = NULL;
			if (strcmp(t, "text_delta") == 0)
				want = 'x', field = "delta.text";
			else if (strcmp(t, "input_json_delta") == 0)
				want = 'u', field = "delta.partial_json";
			else if (strcmp(t, "thinking_delta") == 0)
				want = 'k', field = "delta.thinking";
			else if (strcmp(t, "signature_delta") == 0)
				want = 'k', field = "delta.signature";
			cr_assert(field && S(j, field), "%s without its string: %.*s", t, DOC(j));
			cr_assert(want && kind[idx] == want, "%s for block %lld (kind '%c', event %d)", t, idx,
				  kind[idx] ? kind[idx] : '0', k);
		} else if (strcmp(nm, "content_block_stop") == 0) {
			cr_assert(kind[idx] && kind[idx] != 'S', "content_block_stop for block %lld not open", idx);
			kind[idx] = 'S';
		} else {
			cr_assert_fail("unexpected event %s at %d", nm, k);
		}
	}
	cr_assert_gt(md, 0, "no message_delta");
}

/* Concatenated delta field `field` (e.g. "delta.text") of the deltas for block idx. */
static char *joined(struct ev *e, int n, long long idx, const char *field)
{
	struct sb b;
	sb_init(&b, &A, 64);
	for (int k = 0; k < n; k++)
		if (strcmp(e[k].name, "content_block_delta") == 0 && IDX(e[k].j) == idx && S(e[k].j, field))
			sb_puts(&b, S(e[k].j, field));
	sb_put(&b, "", 1);
	return b.p;
}

/* ---- Converse stream frames ---- */

struct frame {
	char *type;
	struct json *j;
	struct str payload;
};

/* Decode every eventstream frame in o: each an "event" with JSON content. */
static int frames(const struct sb *o, struct frame *f, int max)
{
	size_t off = 0;
	int k = 0;
	while (off < o->len) {
		struct evs_msg m;
		long r = evs_decode((const uint8_t *)o->p + off, o->len - off, &m);
		cr_assert_gt(r, 0, "the frame at %zu of %zu does not decode (%ld)", off, o->len, r);
		cr_assert_lt(k, max);
		cr_assert(str_eq(m.message_type, "event"), ":message-type %.*s", (int)m.message_type.n, m.message_type.p);
		cr_assert(str_eq(m.content_type, "application/json"), ":content-type %.*s", (int)m.content_type.n,
			  m.content_type.p);
		f[k].type = arena_strndup(&A, m.event_type.p, m.event_type.n);
		f[k].payload = m.payload;
		f[k].j = P(m.payload.p, m.payload.n);
		k++;
		off += (size_t)r;
	}
	return k;
}

/* ---- SigV4, written from its definition (independent of sigv4_) ---- */

static void t_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++)
		out[2 * i] = hx[p[i] >> 4], out[2 * i + 1] = hx[p[i] & 15];
	out[2 * n] = 0;
}

static void t_sha_hex(const void *p, size_t n, char out[65])
{
	uint8_t d[32];
	br_sha256_context c;
	br_sha256_init(&c);
	br_sha256_update(&c, p, n);
	br_sha256_out(&c, d);
	t_hex(d, 32, out);
}

static void t_hmac(uint8_t out[32], const void *k, size_t kn, const char *m)
{
	br_hmac_key_context kc;
	br_hmac_context hc;
	br_hmac_key_init(&kc, &br_sha256_vtable, k, kn);
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, m, strlen(m));
	br_hmac_out(&hc, out);
}

/* Canonical URI: every byte but the unreserved ones and '/' as %XX (upper-case hex). */
static void t_uri(char *out, const char *in)
{
	static const char hx[] = "0123456789ABCDEF";
	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
			*out++ = (char)c;
		} else {
			*out++ = '%', *out++ = hx[c >> 4], *out++ = hx[c & 15];
		}
	}
	*out = 0;
}

struct t_hdr {
	const char *name, *value; /* lower-case names, in sorted order */
};

/* The Authorization value for a POST of `body` to `path` (as sent), service bedrock. */
static char *t_authz(const char *path, const struct t_hdr *h, int nh, const char *body, const char *amzdate,
		     const char *region, const char *akid, const char *secret)
{
	char uri[1024], creq[4096], sts[1024], hsh[65], signed_h[256] = "", day[9], scope[128], first[128];
	char sig[65], *out = arena_alloc(&A, 512, 1);
	uint8_t k[32], k2[32];
	t_uri(uri, path);
	t_sha_hex(body, strlen(body), hsh);
	int n = snprintf(creq, sizeof(creq), "POST\n%s\n\n", uri);
	for (int i = 0; i < nh; i++) {
		n += snprintf(creq + n, sizeof(creq) - (size_t)n, "%s:%s\n", h[i].name, h[i].value);
		if (i)
			strcat(signed_h, ";");
		strcat(signed_h, h[i].name);
	}
	snprintf(creq + n, sizeof(creq) - (size_t)n, "\n%s\n%s", signed_h, hsh);
	memcpy(day, amzdate, 8);
	day[8] = 0;
	snprintf(scope, sizeof(scope), "%s/%s/bedrock/aws4_request", day, region);
	char ch[65];
	t_sha_hex(creq, strlen(creq), ch);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", amzdate, scope, ch);
	snprintf(first, sizeof(first), "AWS4%s", secret);
	t_hmac(k, first, strlen(first), day);
	t_hmac(k2, k, 32, region);
	t_hmac(k, k2, 32, "bedrock");
	t_hmac(k2, k, 32, "aws4_request");
	t_hmac(k, k2, 32, sts);
	t_hex(k, 32, sig);
	snprintf(out, 512, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", akid, scope, signed_h,
		 sig);
	return out;
}

/* ======================================================================== */
/* Messages request → Converse request (xlate_req_a2c)                      */
/* ======================================================================== */

static int req_a2c(const char *body, struct sb *o, const char **err)
{
	struct guard g;
	size_t n = strlen(body);
	char *p = guard_put(&g, body, n);
	sb_init(o, &A, 64);
	*err = NULL;
	int rc = xlate_req_a2c(&A, p, n, o, err);
	guard_free(&g);
	return rc;
}

/* Translate the single-quoted Messages request; the Converse request, parsed. */
static struct json *a2c_ok(const char *sq)
{
	struct sb o;
	const char *err;
	int rc = req_a2c(J(sq), &o, &err);
	cr_assert_eq(rc, 0, "xlate_req_a2c: %d (%s) for %s", rc, err ? err : "", J(sq));
	struct json *j = PSB(o);
	/* a Converse request body: modelId and the stream choice are in the path */
	static const char *const top[] = { "messages", "system", "inferenceConfig", "toolConfig",
		"additionalModelRequestFields", "additionalModelResponseFieldPaths", "guardrailConfig",
		"promptVariables", "requestMetadata", "performanceConfig", "serviceTier", NULL };
	only_keys(j, "", top);
	return j;
}

static void a2c_bad(const char *body)
{
	struct sb o;
	const char *err;
	int rc = req_a2c(body, &o, &err);
	cr_assert_eq(rc, -EBADMSG, "want -EBADMSG, got %d for %s", rc, body);
	cr_assert(err && *err, "no reason given for %s", body);
}

#define MSG_HI "'messages':[{'role':'user','content':'Hi'}]"

Test(bedrock_a2c, text_as_string_and_as_blocks)
{
	struct json *j = a2c_ok("{'model':'amazon.nova-pro-v1:0','max_tokens':100,'stream':true,'messages':["
				"{'role':'user','content':'Hello, \\'world\\''},"
				"{'role':'assistant','content':[{'type':'text','text':'Hi'},{'type':'text','text':'there'}]},"
				"{'role':'user','content':[{'type':'text','text':'line1\\nline2'}]}]}");
	EXPECT_LEN(j, "messages", 3);
	EXPECT_STR(j, "messages.0.role", "user");
	EXPECT_LEN(j, "messages.0.content", 1);
	EXPECT_ONLY_KEY(j, "messages.0.content.0", "text");
	EXPECT_STR(j, "messages.0.content.0.text", "Hello, \"world\"");
	EXPECT_STR(j, "messages.1.role", "assistant");
	EXPECT_LEN(j, "messages.1.content", 2);
	EXPECT_ONLY_KEY(j, "messages.1.content.0", "text");
	EXPECT_STR(j, "messages.1.content.0.text", "Hi");
	EXPECT_STR(j, "messages.1.content.1.text", "there");
	EXPECT_STR(j, "messages.2.content.0.text", "line1\nline2");
	EXPECT_LEN(j, "messages.2", 2); /* role and content only */
}

Test(bedrock_a2c, image_base64_each_format)
{
	static const char *const fmt[] = { "png", "jpeg", "gif", "webp" };
	for (size_t i = 0; i < ARRAY_LEN(fmt); i++) {
		char body[512];
		snprintf(body, sizeof(body),
			 "{'max_tokens':10,'messages':[{'role':'user','content':[{'type':'image','source':"
			 "{'type':'base64','media_type':'image/%s','data':'iVBORw0KGgo+/='}},"
			 "{'type':'text','text':'What is this?'}]}]}",
			 fmt[i]);
		struct json *j = a2c_ok(body);
		EXPECT_LEN(j, "messages.0.content", 2);
		EXPECT_ONLY_KEY(j, "messages.0.content.0", "image");
		EXPECT_STR(j, "messages.0.content.0.image.format", fmt[i]);
		EXPECT_ONLY_KEY(j, "messages.0.content.0.image.source", "bytes");
		EXPECT_STR(j, "messages.0.content.0.image.source.bytes", "iVBORw0KGgo+/=");
		EXPECT_STR(j, "messages.0.content.1.text", "What is this?");
	}
}

Test(bedrock_a2c, image_by_url_is_refused)
{
	/* ImageSource is bytes (or an S3 location): Converse cannot fetch a URL */
	a2c_bad(J("{'max_tokens':10,'messages':[{'role':'user','content':[{'type':'image','source':"
		  "{'type':'url','url':'https://example.com/a.png'}}]}]}"));
}

Test(bedrock_a2c, tool_use)
{
	struct json *j = a2c_ok("{'max_tokens':10,'messages':[{'role':'user','content':'weather?'},"
				"{'role':'assistant','content':[{'type':'text','text':'Checking.'},"
				"{'type':'tool_use','id':'toolu_01A','name':'get_weather',"
				"'input':{'city':'Paris','days':[1,2],'deep':{'x':null}}}]}],"
				"'tools':[{'name':'get_weather','input_schema':{'type':'object'}}]}");
	EXPECT_LEN(j, "messages.1.content", 2);
	EXPECT_ONLY_KEY(j, "messages.1.content.1", "toolUse");
	EXPECT_STR(j, "messages.1.content.1.toolUse.toolUseId", "toolu_01A");
	EXPECT_STR(j, "messages.1.content.1.toolUse.name", "get_weather");
	EXPECT_STR(j, "messages.1.content.1.toolUse.input.city", "Paris");
	EXPECT_NUM(j, "messages.1.content.1.toolUse.input.days.1", "2");
	EXPECT_RAW(j, "messages.1.content.1.toolUse.input.deep.x", "null");
	EXPECT_LEN(j, "messages.1.content.1.toolUse", 3);
}

Test(bedrock_a2c, tool_result_string_content)
{
	struct json *j = a2c_ok("{'max_tokens':10,'messages':[{'role':'user','content':[{'type':'tool_result',"
				"'tool_use_id':'toolu_01A','content':'15 degrees'}]}],"
				"'tools':[{'name':'get_weather','input_schema':{'type':'object'}}]}");
	EXPECT_ONLY_KEY(j, "messages.0.content.0", "toolResult");
	EXPECT_STR(j, "messages.0.content.0.toolResult.toolUseId", "toolu_01A");
	EXPECT_LEN(j, "messages.0.content.0.toolResult.content", 1);
	EXPECT_ONLY_KEY(j, "messages.0.content.0.toolResult.content.0", "text");
	EXPECT_STR(j, "messages.0.content.0.toolResult.content.0.text", "15 degrees");
	const char *st = S(j, "messages.0.content.0.toolResult.status");
	cr_assert(!st || strcmp(st, "success") == 0, "status %s for a result that is not an error", st);
}

Test(bedrock_a2c, tool_result_blocks_with_image_and_is_error)
{
	struct json *j = a2c_ok("{'max_tokens':10,'messages':[{'role':'user','content':["
				"{'type':'tool_result','tool_use_id':'toolu_02','is_error':true,'content':["
				"{'type':'text','text':'failed: '},"
				"{'type':'image','source':{'type':'base64','media_type':'image/png','data':'AAAA'}},"
				"{'type':'text','text':'see screenshot'}]},"
				"{'type':'tool_result','tool_use_id':'toolu_03','is_error':false,'content':'fine'},"
				"{'type':'text','text':'continue'}]}],"
				"'tools':[{'name':'t','input_schema':{'type':'object'}}]}");
	EXPECT_LEN(j, "messages.0.content", 3);
	EXPECT_STR(j, "messages.0.content.0.toolResult.toolUseId", "toolu_02");
	EXPECT_STR(j, "messages.0.content.0.toolResult.status", "error");
	EXPECT_LEN(j, "messages.0.content.0.toolResult.content", 3);
	EXPECT_STR(j, "messages.0.content.0.toolResult.content.0.text", "failed: ");
	EXPECT_STR(j, "messages.0.content.0.toolResult.content.1.image.format", "png");
	EXPECT_STR(j, "messages.0.content.0.toolResult.content.1.image.source.bytes", "AAAA");
	EXPECT_STR(j, "messages.0.content.0.toolResult.content.2.text", "see screenshot");
	EXPECT_STR(j, "messages.0.content.1.toolResult.toolUseId", "toolu_03");
	const char *st = S(j, "messages.0.content.1.toolResult.status");
	cr_assert(!st || strcmp(st, "success") == 0, "is_error false gave status %s", st);
	EXPECT_STR(j, "messages.0.content.1.toolResult.content.0.text", "fine");
	EXPECT_STR(j, "messages.0.content.2.text", "continue");
}

Test(bedrock_a2c, thinking_with_signature_and_redacted)
{
	struct json *j = a2c_ok("{'max_tokens':10,'messages':[{'role':'user','content':'q'},"
				"{'role':'assistant','content':["
				"{'type':'thinking','thinking':'Let me think.','signature':'EqQBCkgIARABGAI='},"
				"{'type':'redacted_thinking','data':'EmwKAhgBEgy3vaBase64'},"
				"{'type':'text','text':'Answer.'}]}]}");
	EXPECT_LEN(j, "messages.1.content", 3);
	EXPECT_ONLY_KEY(j, "messages.1.content.0", "reasoningContent");
	EXPECT_ONLY_KEY(j, "messages.1.content.0.reasoningContent", "reasoningText");
	EXPECT_STR(j, "messages.1.content.0.reasoningContent.reasoningText.text", "Let me think.");
	EXPECT_STR(j, "messages.1.content.0.reasoningContent.reasoningText.signature", "EqQBCkgIARABGAI=");
	EXPECT_ONLY_KEY(j, "messages.1.content.1.reasoningContent", "redactedContent");
	EXPECT_STR(j, "messages.1.content.1.reasoningContent.redactedContent", "EmwKAhgBEgy3vaBase64");
	EXPECT_STR(j, "messages.1.content.2.text", "Answer.");
}

Test(bedrock_a2c, system_as_string)
{
	struct json *j = a2c_ok("{'max_tokens':10,'system':'You are \\'terse\\'.'," MSG_HI "}");
	EXPECT_LEN(j, "system", 1);
	EXPECT_ONLY_KEY(j, "system.0", "text");
	EXPECT_STR(j, "system.0.text", "You are \"terse\".");
}

Test(bedrock_a2c, system_as_blocks)
{
	struct json *j = a2c_ok("{'max_tokens':10,'system':[{'type':'text','text':'Alpha rules.'},"
				"{'type':'text','text':'Beta rules.','cache_control':{'type':'ephemeral'}}]," MSG_HI "}");
	int n = LEN(j, "system");
	cr_assert_geq(n, 1, "system: %s", RAW(j, "system"));
	struct sb all;
	sb_init(&all, &A, 64);
	for (int i = 0; i < n; i++) {
		char p[32];
		snprintf(p, sizeof(p), "system.%d", i);
		static const char *const sys[] = { "text", "cachePoint", "guardContent", NULL };
		only_keys(j, p, sys);
		snprintf(p, sizeof(p), "system.%d.text", i);
		if (S(j, p))
			sb_puts(&all, S(j, p));
	}
	sb_put(&all, "", 1);
	const char *a = strstr(all.p, "Alpha rules."), *b = strstr(all.p, "Beta rules.");
	cr_assert(a && b && a < b, "both system texts, in order: %s", all.p);
}

Test(bedrock_a2c, inference_config)
{
	struct json *j = a2c_ok("{'model':'m','max_tokens':1024,'temperature':0.25,'top_p':0.9,"
				"'stop_sequences':['END','\\nHuman:']," MSG_HI "}");
	EXPECT_NUM(j, "inferenceConfig.maxTokens", "1024");
	EXPECT_NUM(j, "inferenceConfig.temperature", "0.25");
	EXPECT_NUM(j, "inferenceConfig.topP", "0.9");
	EXPECT_LEN(j, "inferenceConfig.stopSequences", 2);
	EXPECT_STR(j, "inferenceConfig.stopSequences.0", "END");
	EXPECT_STR(j, "inferenceConfig.stopSequences.1", "\nHuman:");
	static const char *const ic[] = { "maxTokens", "temperature", "topP", "stopSequences", NULL };
	only_keys(j, "inferenceConfig", ic);
}

Test(bedrock_a2c, inference_config_only_what_was_given)
{
	struct json *j = a2c_ok("{'max_tokens':7," MSG_HI "}");
	EXPECT_NUM(j, "inferenceConfig.maxTokens", "7");
	EXPECT_ABSENT(j, "inferenceConfig.temperature");
	EXPECT_ABSENT(j, "inferenceConfig.topP");
	EXPECT_ABSENT(j, "inferenceConfig.stopSequences");
	j = a2c_ok("{'max_tokens':7,'stop_sequences':['x']," MSG_HI "}");
	EXPECT_STR(j, "inferenceConfig.stopSequences.0", "x");
	EXPECT_NUM(j, "inferenceConfig.maxTokens", "7");
	j = a2c_ok("{'temperature':1," MSG_HI "}");
	EXPECT_NUM(j, "inferenceConfig.temperature", "1");
	EXPECT_ABSENT(j, "inferenceConfig.maxTokens");
}

#define WEATHER_TOOL                                                                                      \
	"{'name':'get_weather','description':'Weather for a city','input_schema':{'type':'object',"       \
	"'properties':{'city':{'type':'string'}},'required':['city']}}"

static void expect_weather_spec(struct json *j)
{
	EXPECT_LEN(j, "toolConfig.tools", 1);
	EXPECT_ONLY_KEY(j, "toolConfig.tools.0", "toolSpec");
	EXPECT_STR(j, "toolConfig.tools.0.toolSpec.name", "get_weather");
	EXPECT_STR(j, "toolConfig.tools.0.toolSpec.description", "Weather for a city");
	EXPECT_ONLY_KEY(j, "toolConfig.tools.0.toolSpec.inputSchema", "json");
	EXPECT_STR(j, "toolConfig.tools.0.toolSpec.inputSchema.json.type", "object");
	EXPECT_STR(j, "toolConfig.tools.0.toolSpec.inputSchema.json.properties.city.type", "string");
	EXPECT_STR(j, "toolConfig.tools.0.toolSpec.inputSchema.json.required.0", "city");
}

Test(bedrock_a2c, tools_with_tool_choice_auto)
{
	const char *bodies[] = { "{'max_tokens':10,'tools':[" WEATHER_TOOL "],'tool_choice':{'type':'auto'}," MSG_HI "}",
				 "{'max_tokens':10,'tools':[" WEATHER_TOOL "]," MSG_HI "}" };
	for (int i = 0; i < 2; i++) {
		struct json *j = a2c_ok(bodies[i]);
		expect_weather_spec(j);
		/* auto is Converse's default: either no toolChoice or {"auto":{}} */
		if (HAS(j, "toolConfig.toolChoice")) {
			EXPECT_ONLY_KEY(j, "toolConfig.toolChoice", "auto");
			EXPECT_LEN(j, "toolConfig.toolChoice.auto", 0);
		}
	}
}

Test(bedrock_a2c, tool_choice_any)
{
	struct json *j = a2c_ok("{'max_tokens':10,'tools':[" WEATHER_TOOL "],"
				"'tool_choice':{'type':'any','disable_parallel_tool_use':true}," MSG_HI "}");
	expect_weather_spec(j);
	EXPECT_ONLY_KEY(j, "toolConfig.toolChoice", "any");
	EXPECT_LEN(j, "toolConfig.toolChoice.any", 0);
}

Test(bedrock_a2c, tool_choice_tool)
{
	struct json *j = a2c_ok("{'max_tokens':10,'tools':[" WEATHER_TOOL "],"
				"'tool_choice':{'type':'tool','name':'get_weather'}," MSG_HI "}");
	expect_weather_spec(j);
	EXPECT_ONLY_KEY(j, "toolConfig.toolChoice", "tool");
	EXPECT_ONLY_KEY(j, "toolConfig.toolChoice.tool", "name");
	EXPECT_STR(j, "toolConfig.toolChoice.tool.name", "get_weather");
}

Test(bedrock_a2c, tool_choice_none_without_tool_history)
{
	/* Converse has no "none": the model must not be offered a tool choice that forces a call */
	struct json *j = a2c_ok("{'max_tokens':10,'tools':[" WEATHER_TOOL "],'tool_choice':{'type':'none'}," MSG_HI "}");
	EXPECT_ABSENT(j, "toolConfig.toolChoice.any");
	EXPECT_ABSENT(j, "toolConfig.toolChoice.tool");
}

Test(bedrock_a2c, tool_choice_none_with_tool_history_keeps_tool_config)
{
	/* Bedrock: "The toolConfig field must be defined when using toolUse and toolResult content
	 * blocks" — a conversation that used a tool needs toolConfig even when no call is wanted now */
	struct json *j = a2c_ok("{'max_tokens':10,'tools':[" WEATHER_TOOL "],'tool_choice':{'type':'none'},"
				"'messages':[{'role':'user','content':'weather?'},"
				"{'role':'assistant','content':[{'type':'tool_use','id':'toolu_1','name':'get_weather',"
				"'input':{'city':'Paris'}}]},"
				"{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':'sunny'}]}]}");
	cr_assert(HAS(j, "toolConfig"), "tool history without toolConfig: Bedrock refuses this request\n  %.*s", DOC(j));
	cr_assert_geq(LEN(j, "toolConfig.tools"), 1);
	EXPECT_ABSENT(j, "toolConfig.toolChoice.any");
	EXPECT_ABSENT(j, "toolConfig.toolChoice.tool");
}

Test(bedrock_a2c, server_tools_dropped)
{
	struct json *j = a2c_ok("{'max_tokens':10,'tools':[{'type':'web_search_20250305','name':'web_search'}," WEATHER_TOOL
				"]," MSG_HI "}");
	expect_weather_spec(j); /* the server tool has no Converse equivalent */
}

Test(bedrock_a2c, only_server_tools_gives_no_empty_tool_list)
{
	/* ToolConfiguration.tools: "Array Members: Minimum number of 1 item" */
	struct json *j = a2c_ok("{'max_tokens':10,'tools':[{'type':'web_search_20250305','name':'web_search'}]," MSG_HI "}");
	cr_assert(!HAS(j, "toolConfig") || LEN(j, "toolConfig.tools") >= 1,
		  "toolConfig with an empty tools list (Bedrock requires at least one): %s", RAW(j, "toolConfig"));
}

Test(bedrock_a2c, refused_inputs)
{
	a2c_bad("{");
	a2c_bad("");
	a2c_bad("[]");
	a2c_bad("\"messages\"");
	a2c_bad(J("{'max_tokens':10}"));
	a2c_bad(J("{'max_tokens':10,'messages':{'role':'user'}}"));
	a2c_bad(J("{'max_tokens':10,'messages':[{'role':'system','content':'x'}]}"));
	a2c_bad(J("{'max_tokens':10,'messages':[{'content':'x'}]}"));
	a2c_bad(J("{'max_tokens':10,'messages':[{'role':'user','content':5}]}"));
	a2c_bad(J("{'max_tokens':10,'messages':[{'role':'user','content':[{'type':'hologram','x':1}]}]}"));
	a2c_bad(J("{'max_tokens':10,'messages':[{'role':'user','content':['text']}]}"));
	a2c_bad(J("{'max_tokens':10,'messages':[{'role':'user','content':[{'text':'no type'}]}]}"));
	a2c_bad(J("{'max_tokens':10,'messages':[{'role':'user','content':'a'}],'messages':[]}"));
}

/* ======================================================================== */
/* Converse answer → Messages answer (xlate_resp_c2a), stop reasons, usage  */
/* ======================================================================== */

static int resp_c2a(const char *body, struct sb *o, struct xlate_usage *u)
{
	struct guard g;
	size_t n = strlen(body);
	char *p = guard_put(&g, body, n);
	sb_init(o, &A, 64);
	memset(u, 0, sizeof(*u));
	int rc = xlate_resp_c2a(&A, p, n, "amazon.nova-pro-v1:0", "msg_bdrk_01", o, u);
	guard_free(&g);
	return rc;
}

static struct json *resp_c2a_ok(const char *sq, struct xlate_usage *u)
{
	struct sb o;
	int rc = resp_c2a(J(sq), &o, u);
	cr_assert_eq(rc, 0, "xlate_resp_c2a: %d for %s", rc, J(sq));
	return PSB(o);
}

Test(bedrock_c2a, answer_every_block_kind_and_usage)
{
	struct xlate_usage u;
	struct json *j = resp_c2a_ok(
		"{'output':{'message':{'role':'assistant','content':["
		"{'reasoningContent':{'reasoningText':{'text':'Thinking...','signature':'c2lnbmF0dXJl'}}},"
		"{'text':'Checking \\'Paris\\'.'},"
		"{'toolUse':{'toolUseId':'tooluse_abc','name':'get_weather','input':{'city':'Paris','n':[1]}}}]}},"
		"'stopReason':'tool_use',"
		"'usage':{'inputTokens':30,'outputTokens':12,'totalTokens':47,'cacheReadInputTokens':4,"
		"'cacheWriteInputTokens':1},'metrics':{'latencyMs':512}}",
		&u);
	EXPECT_STR(j, "id", "msg_bdrk_01");
	EXPECT_STR(j, "type", "message");
	EXPECT_STR(j, "role", "assistant");
	EXPECT_STR(j, "model", "amazon.nova-pro-v1:0");
	EXPECT_LEN(j, "content", 3);
	EXPECT_STR(j, "content.0.type", "thinking");
	EXPECT_STR(j, "content.0.thinking", "Thinking...");
	EXPECT_STR(j, "content.0.signature", "c2lnbmF0dXJl");
	EXPECT_STR(j, "content.1.type", "text");
	EXPECT_STR(j, "content.1.text", "Checking \"Paris\".");
	EXPECT_STR(j, "content.2.type", "tool_use");
	EXPECT_STR(j, "content.2.id", "tooluse_abc");
	EXPECT_STR(j, "content.2.name", "get_weather");
	EXPECT_STR(j, "content.2.input.city", "Paris");
	EXPECT_NUM(j, "content.2.input.n.0", "1");
	EXPECT_STR(j, "stop_reason", "tool_use");
	EXPECT_RAW(j, "stop_sequence", "null");
	EXPECT_NUM(j, "usage.input_tokens", "30");
	EXPECT_NUM(j, "usage.output_tokens", "12");
	EXPECT_NUM(j, "usage.cache_read_input_tokens", "4");
	EXPECT_NUM(j, "usage.cache_creation_input_tokens", "1");
	cr_assert_eq(u.in, 30);
	cr_assert_eq(u.out, 12);
	cr_assert_eq(u.cache_read, 4);
	cr_assert_eq(u.cache_write, 1);
}

Test(bedrock_c2a, answer_text_only_without_cache_counts)
{
	struct xlate_usage u;
	struct json *j = resp_c2a_ok("{'output':{'message':{'role':'assistant','content':[{'text':'Hello!'}]}},"
				     "'stopReason':'end_turn','usage':{'inputTokens':9,'outputTokens':3,'totalTokens':12},"
				     "'metrics':{'latencyMs':80}}",
				     &u);
	EXPECT_LEN(j, "content", 1);
	EXPECT_STR(j, "content.0.text", "Hello!");
	EXPECT_STR(j, "stop_reason", "end_turn");
	EXPECT_NUM(j, "usage.input_tokens", "9");
	EXPECT_NUM(j, "usage.output_tokens", "3");
	cr_assert_eq(u.in, 9);
	cr_assert_eq(u.out, 3);
	cr_assert_eq(u.cache_read, 0);
	cr_assert_eq(u.cache_write, 0);
}

Test(bedrock_c2a, answer_stop_reasons)
{
	static const struct {
		const char *c, *a;
	} map[] = {
		{ "end_turn", "end_turn" },
		{ "tool_use", "tool_use" },
		{ "max_tokens", "max_tokens" },
		{ "stop_sequence", "stop_sequence" },
		/* a safety system stopped the answer: Messages' "refusal" */
		{ "guardrail_intervened", "refusal" },
		{ "content_filtered", "refusal" },
	};
	for (size_t i = 0; i < ARRAY_LEN(map); i++) {
		char body[256];
		struct xlate_usage u;
		snprintf(body, sizeof(body),
			 "{'output':{'message':{'role':'assistant','content':[{'text':'x'}]}},'stopReason':'%s',"
			 "'usage':{'inputTokens':1,'outputTokens':1,'totalTokens':2}}",
			 map[i].c);
		struct json *j = resp_c2a_ok(body, &u);
		EXPECT_STR(j, "stop_reason", map[i].a);
	}
}

Test(bedrock_c2a, stop_reason_functions)
{
	cr_assert_str_eq(xlate_stop_c2a(STR("end_turn")), "end_turn");
	cr_assert_str_eq(xlate_stop_c2a(STR("tool_use")), "tool_use");
	cr_assert_str_eq(xlate_stop_c2a(STR("max_tokens")), "max_tokens");
	cr_assert_str_eq(xlate_stop_c2a(STR("stop_sequence")), "stop_sequence");
	cr_assert_str_eq(xlate_stop_c2a(STR("guardrail_intervened")), "refusal");
	cr_assert_str_eq(xlate_stop_c2a(STR("content_filtered")), "refusal");
	/* Converse reasons with no Messages twin still give a reason Messages knows */
	cr_assert(anthropic_stop_reason(xlate_stop_c2a(STR("malformed_model_output"))));
	cr_assert(anthropic_stop_reason(xlate_stop_c2a(STR("malformed_tool_use"))));
	cr_assert(anthropic_stop_reason(xlate_stop_c2a(STR(""))));
	cr_assert(anthropic_stop_reason(xlate_stop_c2a(STR("something_new"))));

	static const char *const conv[] = { "end_turn", "tool_use", "max_tokens", "stop_sequence",
		"guardrail_intervened", "content_filtered", "malformed_model_output", "malformed_tool_use",
		"model_context_window_exceeded" };
	cr_assert_str_eq(xlate_stop_a2c(STR("end_turn")), "end_turn");
	cr_assert_str_eq(xlate_stop_a2c(STR("tool_use")), "tool_use");
	cr_assert_str_eq(xlate_stop_a2c(STR("max_tokens")), "max_tokens");
	cr_assert_str_eq(xlate_stop_a2c(STR("stop_sequence")), "stop_sequence");
	const char *r = xlate_stop_a2c(STR("refusal"));
	cr_assert(strcmp(r, "content_filtered") == 0 || strcmp(r, "guardrail_intervened") == 0, "refusal → %s", r);
	/* every Messages reason (and an unknown one) becomes one of Converse's StopReason values */
	static const char *const anth[] = { "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn",
		"refusal", "model_context_window_exceeded", "", "brand_new" };
	for (size_t i = 0; i < ARRAY_LEN(anth); i++) {
		const char *c = xlate_stop_a2c((struct str){ anth[i], strlen(anth[i]) });
		bool ok = false;
		for (size_t k = 0; k < ARRAY_LEN(conv) && !ok; k++)
			ok = strcmp(c, conv[k]) == 0;
		cr_assert(ok, "%s → %s, not a Converse StopReason", anth[i], c);
	}
}

Test(bedrock_c2a, context_window_exceeded_both_ways)
{
	/* both APIs have this exact stop reason (Converse StopReason, Messages stop_reason) */
	cr_assert_str_eq(xlate_stop_c2a(STR("model_context_window_exceeded")), "model_context_window_exceeded");
	cr_assert_str_eq(xlate_stop_a2c(STR("model_context_window_exceeded")), "model_context_window_exceeded");
}

Test(bedrock_c2a, usage_from_converse)
{
	struct json j;
	const char *d = J("{'usage':{'inputTokens':100,'outputTokens':20,'totalTokens':150,"
			  "'cacheReadInputTokens':25,'cacheWriteInputTokens':5}}");
	cr_assert_eq(json_parse(&j, &A, d, strlen(d)), 0);
	struct xlate_usage u = { 0 };
	xlate_usage_from_c(&j, xlate_member(&j, 0, "usage"), &u);
	cr_assert_eq(u.in, 100);
	cr_assert_eq(u.out, 20);
	cr_assert_eq(u.cache_read, 25);
	cr_assert_eq(u.cache_write, 5);
	cr_assert(!u.clamped);
	/* fields absent keep what was there (a later event fills in the rest) */
	d = J("{'usage':{'outputTokens':33}}");
	cr_assert_eq(json_parse(&j, &A, d, strlen(d)), 0);
	xlate_usage_from_c(&j, xlate_member(&j, 0, "usage"), &u);
	cr_assert_eq(u.in, 100);
	cr_assert_eq(u.out, 33);
	cr_assert_eq(u.cache_read, 25);
	cr_assert_eq(u.cache_write, 5);
	/* not an object: nothing changes */
	d = J("{'usage':[1,2]}");
	cr_assert_eq(json_parse(&j, &A, d, strlen(d)), 0);
	xlate_usage_from_c(&j, xlate_member(&j, 0, "usage"), &u);
	cr_assert_eq(u.in, 100);
	cr_assert_eq(u.out, 33);
	/* counts are never negative (TokenUsage: minimum 0) */
	d = J("{'usage':{'inputTokens':-5,'outputTokens':1}}");
	cr_assert_eq(json_parse(&j, &A, d, strlen(d)), 0);
	xlate_usage_from_c(&j, xlate_member(&j, 0, "usage"), &u);
	cr_assert_geq(u.in, 0);
}

Test(bedrock_c2a, malformed_answers)
{
	static const char *const bad[] = {
		"", "{", "not json", "[]", "{}", "{\"output\":{}}", "{\"output\":{\"message\":{}}}",
		"{\"output\":{\"message\":{\"content\":\"text\"}}}", "{\"output\":[1],\"stopReason\":\"end_turn\"}",
		"{\"output\":{\"message\":{\"content\":[{\"text\":\"a\"}]}", /* cut short */
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		struct xlate_usage u;
		cr_assert_eq(resp_c2a(bad[i], &o, &u), -EBADMSG, "accepted: %s", bad[i]);
	}
}

/* ======================================================================== */
/* ConverseStream events → Messages events (xlate_c2a_*)                    */
/* ======================================================================== */

static int c2a_raw(struct xlate_c2a *s, const char *type, const char *p, size_t n, struct sb *o)
{
	struct guard g;
	char *q = guard_put(&g, p, n);
	int rc = xlate_c2a_event(s, &A, (struct str){ type, strlen(type) }, (struct str){ q, n }, o);
	guard_free(&g);
	return rc;
}

static void c2a_ev(struct xlate_c2a *s, const char *type, const char *sq, struct sb *o)
{
	const char *p = J(sq);
	int rc = c2a_raw(s, type, p, strlen(p), o);
	cr_assert_eq(rc, 0, "xlate_c2a_event(%s, %s): %d", type, p, rc);
}

Test(bedrock_stream, full_sequence_text_then_tool)
{
	struct xlate_c2a s;
	struct sb o;
	struct ev e[32];
	sb_init(&o, &A, 256);
	xlate_c2a_init(&s, "amazon.nova-pro-v1:0", "msg_stream_1");
	c2a_ev(&s, "messageStart", "{'role':'assistant'}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'text':'Hel'}}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'text':'lo \\'you\\''}}", &o);
	c2a_ev(&s, "contentBlockStop", "{'contentBlockIndex':0}", &o);
	c2a_ev(&s, "contentBlockStart",
	       "{'contentBlockIndex':1,'start':{'toolUse':{'toolUseId':'tooluse_1','name':'get_weather'}}}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':1,'delta':{'toolUse':{'input':'{\\'city\\':'}}}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':1,'delta':{'toolUse':{'input':'\\'Paris\\'}'}}}", &o);
	c2a_ev(&s, "contentBlockStop", "{'contentBlockIndex':1}", &o);
	c2a_ev(&s, "messageStop", "{'stopReason':'tool_use'}", &o);
	c2a_ev(&s, "metadata",
	       "{'usage':{'inputTokens':20,'outputTokens':7,'totalTokens':32,'cacheReadInputTokens':4,"
	       "'cacheWriteInputTokens':1},'metrics':{'latencyMs':321}}",
	       &o);
	int n = events(&o, e, 32);
	static const char *const want[] = { "message_start", "content_block_start", "content_block_delta",
		"content_block_delta", "content_block_stop", "content_block_start", "content_block_delta",
		"content_block_delta", "content_block_stop", "message_delta", "message_stop" };
	cr_assert_eq(n, (int)ARRAY_LEN(want), "%d events:\n%.*s", n, (int)o.len, o.p);
	for (int i = 0; i < n; i++)
		cr_assert_str_eq(e[i].name, want[i], "event %d", i);
	check_grammar(e, n);
	EXPECT_STR(e[0].j, "message.id", "msg_stream_1");
	EXPECT_STR(e[0].j, "message.model", "amazon.nova-pro-v1:0");
	EXPECT_RAW(e[0].j, "message.stop_reason", "null");
	cr_assert_eq(IDX(e[1].j), 0);
	EXPECT_STR(e[1].j, "content_block.type", "text");
	cr_assert_eq(IDX(e[2].j), 0);
	EXPECT_STR(e[2].j, "delta.type", "text_delta");
	EXPECT_STR(e[2].j, "delta.text", "Hel");
	EXPECT_STR(e[3].j, "delta.text", "lo \"you\"");
	cr_assert_eq(IDX(e[4].j), 0);
	cr_assert_eq(IDX(e[5].j), 1);
	EXPECT_STR(e[5].j, "content_block.type", "tool_use");
	EXPECT_STR(e[5].j, "content_block.id", "tooluse_1");
	EXPECT_STR(e[5].j, "content_block.name", "get_weather");
	cr_assert_eq(IDX(e[6].j), 1);
	EXPECT_STR(e[6].j, "delta.type", "input_json_delta");
	char *input = joined(e, n, 1, "delta.partial_json");
	cr_assert_str_eq(input, "{\"city\":\"Paris\"}");
	cr_assert_eq(IDX(e[8].j), 1);
	EXPECT_STR(e[9].j, "delta.stop_reason", "tool_use");
	EXPECT_NUM(e[9].j, "usage.output_tokens", "7");
	cr_assert_eq(s.usage.in, 20);
	cr_assert_eq(s.usage.out, 7);
	cr_assert_eq(s.usage.cache_read, 4);
	cr_assert_eq(s.usage.cache_write, 1);

	/* the stream is over: later events and the end add nothing */
	size_t len = o.len;
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'text':'late'}}", &o);
	c2a_ev(&s, "metadata", "{'usage':{'inputTokens':1,'outputTokens':1,'totalTokens':2}}", &o);
	xlate_c2a_end(&s, &o);
	cr_assert_eq(o.len, len, "output after the end: %.*s", (int)(o.len - len), o.p + len);
}

Test(bedrock_stream, reasoning_then_text)
{
	struct xlate_c2a s;
	struct sb o;
	struct ev e[32];
	sb_init(&o, &A, 256);
	xlate_c2a_init(&s, "m", "msg_r");
	c2a_ev(&s, "messageStart", "{'role':'assistant'}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'reasoningContent':{'text':'Hmm, '}}}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'reasoningContent':{'text':'let me see.'}}}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'reasoningContent':{'signature':'U2ln'}}}", &o);
	c2a_ev(&s, "contentBlockStop", "{'contentBlockIndex':0}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':1,'delta':{'text':'Answer.'}}", &o);
	c2a_ev(&s, "contentBlockStop", "{'contentBlockIndex':1}", &o);
	c2a_ev(&s, "messageStop", "{'stopReason':'end_turn'}", &o);
	c2a_ev(&s, "metadata", "{'usage':{'inputTokens':5,'outputTokens':9,'totalTokens':14},'metrics':{'latencyMs':1}}",
	       &o);
	int n = events(&o, e, 32);
	check_grammar(e, n);
	cr_assert_eq(n, 11, "%.*s", (int)o.len, o.p);
	cr_assert_str_eq(e[1].name, "content_block_start");
	EXPECT_STR(e[1].j, "content_block.type", "thinking");
	cr_assert_eq(IDX(e[1].j), 0);
	EXPECT_STR(e[2].j, "delta.type", "thinking_delta");
	cr_assert_str_eq(joined(e, n, 0, "delta.thinking"), "Hmm, let me see.");
	EXPECT_STR(e[4].j, "delta.type", "signature_delta");
	EXPECT_STR(e[4].j, "delta.signature", "U2ln");
	cr_assert_str_eq(e[6].name, "content_block_start");
	EXPECT_STR(e[6].j, "content_block.type", "text");
	cr_assert_eq(IDX(e[6].j), 1);
	cr_assert_str_eq(joined(e, n, 1, "delta.text"), "Answer.");
	EXPECT_STR(e[9].j, "delta.stop_reason", "end_turn");
	EXPECT_NUM(e[9].j, "usage.output_tokens", "9");
}

Test(bedrock_stream, stop_reasons_in_message_delta)
{
	static const struct {
		const char *c, *a;
	} map[] = { { "end_turn", "end_turn" },
		    { "tool_use", "tool_use" },
		    { "max_tokens", "max_tokens" },
		    { "stop_sequence", "stop_sequence" },
		    { "guardrail_intervened", "refusal" },
		    { "content_filtered", "refusal" } };
	for (size_t i = 0; i < ARRAY_LEN(map); i++) {
		struct xlate_c2a s;
		struct sb o;
		struct ev e[16];
		char stop[96];
		sb_init(&o, &A, 256);
		xlate_c2a_init(&s, "m", "id");
		c2a_ev(&s, "messageStart", "{'role':'assistant'}", &o);
		c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'text':'x'}}", &o);
		c2a_ev(&s, "contentBlockStop", "{'contentBlockIndex':0}", &o);
		snprintf(stop, sizeof(stop), "{'stopReason':'%s'}", map[i].c);
		c2a_ev(&s, "messageStop", stop, &o);
		c2a_ev(&s, "metadata", "{'usage':{'inputTokens':1,'outputTokens':2,'totalTokens':3},'metrics':{'latencyMs':1}}", &o);
		int n = events(&o, e, 16);
		check_grammar(e, n);
		EXPECT_STR(e[n - 2].j, "delta.stop_reason", map[i].a);
	}
}

Test(bedrock_stream, cut_before_metadata_closed_by_end)
{
	struct xlate_c2a s;
	struct sb o;
	struct ev e[16];
	sb_init(&o, &A, 256);
	xlate_c2a_init(&s, "m", "id");
	c2a_ev(&s, "messageStart", "{'role':'assistant'}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'text':'partial'}}", &o);
	xlate_c2a_end(&s, &o);
	int n = events(&o, e, 16);
	check_grammar(e, n); /* block 0 stopped, one message_delta, message_stop last */
	cr_assert_str_eq(joined(e, n, 0, "delta.text"), "partial");
	size_t len = o.len;
	xlate_c2a_end(&s, &o); /* once only */
	cr_assert_eq(o.len, len);
}

Test(bedrock_stream, cut_after_message_stop_keeps_its_reason)
{
	struct xlate_c2a s;
	struct sb o;
	struct ev e[16];
	sb_init(&o, &A, 256);
	xlate_c2a_init(&s, "m", "id");
	c2a_ev(&s, "messageStart", "{'role':'assistant'}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'text':'long answer'}}", &o);
	c2a_ev(&s, "contentBlockStop", "{'contentBlockIndex':0}", &o);
	c2a_ev(&s, "messageStop", "{'stopReason':'max_tokens'}", &o);
	xlate_c2a_end(&s, &o);
	int n = events(&o, e, 16);
	check_grammar(e, n);
	EXPECT_STR(e[n - 2].j, "delta.stop_reason", "max_tokens");
}

Test(bedrock_stream, cut_inside_a_tool_block)
{
	struct xlate_c2a s;
	struct sb o;
	struct ev e[16];
	sb_init(&o, &A, 256);
	xlate_c2a_init(&s, "m", "id");
	c2a_ev(&s, "messageStart", "{'role':'assistant'}", &o);
	c2a_ev(&s, "contentBlockStart", "{'contentBlockIndex':0,'start':{'toolUse':{'toolUseId':'t1','name':'f'}}}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'toolUse':{'input':'{'}}}", &o);
	xlate_c2a_end(&s, &o);
	int n = events(&o, e, 16);
	check_grammar(e, n);
	cr_assert_str_eq(e[1].name, "content_block_start");
	EXPECT_STR(e[1].j, "content_block.type", "tool_use");
}

Test(bedrock_stream, block_index_out_of_range)
{
	static const char *const types[] = { "contentBlockStart", "contentBlockDelta", "contentBlockStop" };
	static const char *const idx[] = { "64", "-1", "1000", "9223372036854775807", "\"0\"", "null", "true" };
	for (size_t t = 0; t < ARRAY_LEN(types); t++)
		for (size_t i = 0; i < ARRAY_LEN(idx); i++) {
			struct xlate_c2a s;
			struct sb o;
			char p[256];
			sb_init(&o, &A, 256);
			xlate_c2a_init(&s, "m", "id");
			snprintf(p, sizeof(p),
				 "{\"contentBlockIndex\":%s,\"start\":{\"toolUse\":{\"toolUseId\":\"t\",\"name\":\"f\"}},"
				 "\"delta\":{\"text\":\"x\"}}",
				 idx[i]);
			int rc = c2a_raw(&s, types[t], p, strlen(p), &o);
			cr_assert_eq(rc, -EBADMSG, "%s with contentBlockIndex %s: %d", types[t], idx[i], rc);
		}
	/* and with no index at all */
	for (size_t t = 0; t < ARRAY_LEN(types); t++) {
		struct xlate_c2a s;
		struct sb o;
		const char *p = "{\"delta\":{\"text\":\"x\"}}";
		sb_init(&o, &A, 256);
		xlate_c2a_init(&s, "m", "id");
		cr_assert_eq(c2a_raw(&s, types[t], p, strlen(p), &o), -EBADMSG, "%s without contentBlockIndex", types[t]);
	}
}

Test(bedrock_stream, block_index_63_is_the_last_one)
{
	struct xlate_c2a s;
	struct sb o;
	struct ev e[16];
	sb_init(&o, &A, 256);
	xlate_c2a_init(&s, "m", "id");
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':63,'delta':{'text':'x'}}", &o);
	c2a_ev(&s, "contentBlockStop", "{'contentBlockIndex':63}", &o);
	xlate_c2a_end(&s, &o);
	int n = events(&o, e, 16);
	check_grammar(e, n);
	cr_assert_eq(IDX(e[1].j), 63);
}

Test(bedrock_stream, malformed_payloads)
{
	static const char *const bad[] = {
		"", "{", "}", "[]", "[1,2]", "null", "\"text\"", "42", "{\"contentBlockIndex\":",
		"{\"contentBlockIndex\":0,\"delta\":{\"text\":\"a\"}", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"a}}",
		"{'role':'assistant'}", "{\"a\":1,}", "\xff\xfe{}", "{\"contentBlockIndex\":0}x",
	};
	static const char *const types[] = { "messageStart", "contentBlockStart", "contentBlockDelta",
					     "contentBlockStop", "messageStop", "metadata" };
	for (size_t t = 0; t < ARRAY_LEN(types); t++)
		for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
			struct xlate_c2a s;
			struct sb o;
			sb_init(&o, &A, 256);
			xlate_c2a_init(&s, "m", "id");
			int rc = c2a_raw(&s, types[t], bad[i], strlen(bad[i]), &o);
			cr_assert_eq(rc, -EBADMSG, "%s with payload %s: %d", types[t], bad[i], rc);
			cr_assert_eq(o.len, 0, "output for a malformed event: %.*s", (int)o.len, o.p);
		}
	/* a malformed event in the middle leaves the stream's output whole */
	struct xlate_c2a s;
	struct sb o;
	struct ev e[16];
	sb_init(&o, &A, 256);
	xlate_c2a_init(&s, "m", "id");
	c2a_ev(&s, "messageStart", "{'role':'assistant'}", &o);
	c2a_ev(&s, "contentBlockDelta", "{'contentBlockIndex':0,'delta':{'text':'ok'}}", &o);
	cr_assert_eq(c2a_raw(&s, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{", 31, &o), -EBADMSG);
	xlate_c2a_end(&s, &o);
	int n = events(&o, e, 16);
	check_grammar(e, n);
	cr_assert_str_eq(joined(e, n, 0, "delta.text"), "ok");
}

/* ======================================================================== */
/* /bedrock/.../converse clients: Converse request → Messages request        */
/* ======================================================================== */

static int req_c2a(const char *body, const char *model, bool stream, struct sb *o, const char **err)
{
	struct guard g;
	size_t n = strlen(body);
	char *p = guard_put(&g, body, n);
	sb_init(o, &A, 64);
	*err = NULL;
	int rc = xlate_req_c2a(&A, p, n, model, stream, o, err);
	guard_free(&g);
	return rc;
}

static struct json *c2a_req_ok(const char *sq, bool stream)
{
	struct sb o;
	const char *err;
	int rc = req_c2a(J(sq), "anthropic.claude-3-5-sonnet-20241022-v2:0", stream, &o, &err);
	cr_assert_eq(rc, 0, "xlate_req_c2a: %d (%s) for %s", rc, err ? err : "", J(sq));
	struct json *j = PSB(o);
	EXPECT_STR(j, "model", "anthropic.claude-3-5-sonnet-20241022-v2:0");
	cr_assert_eq(count_key(j, 0, "model"), 1);
	return j;
}

static void c2a_req_bad(const char *body)
{
	struct sb o;
	const char *err;
	int rc = req_c2a(body, "m", false, &o, &err);
	cr_assert_eq(rc, -EBADMSG, "want -EBADMSG, got %d for %s", rc, body);
	cr_assert(err && *err, "no reason given for %s", body);
}

/* The system prompt's text, whether Messages got it as a string or as text blocks. */
static char *system_text(struct json *j)
{
	if (S(j, "system"))
		return S(j, "system");
	struct sb b;
	sb_init(&b, &A, 64);
	for (int i = 0; i < LEN(j, "system"); i++) {
		char p[32];
		snprintf(p, sizeof(p), "system.%d.text", i);
		if (S(j, p))
			sb_puts(&b, S(j, p));
	}
	sb_put(&b, "", 1);
	return b.p;
}

Test(bedrock_client, full_request)
{
	struct json *j = c2a_req_ok(
		"{'messages':["
		"{'role':'user','content':[{'text':'Look at this'},"
		"{'image':{'format':'jpeg','source':{'bytes':'/9j/4AAQSkZJRg=='}}}]},"
		"{'role':'assistant','content':["
		"{'reasoningContent':{'reasoningText':{'text':'Pondering.','signature':'c2ln'}}},"
		"{'text':'Calling a tool.'},"
		"{'toolUse':{'toolUseId':'tooluse_1','name':'get_weather','input':{'city':'Paris'}}}]},"
		"{'role':'user','content':["
		"{'toolResult':{'toolUseId':'tooluse_1','content':[{'text':'Sunny'},"
		"{'json':{'temp':21,'unit':'C','tags':['a','b']}}],'status':'error'}},"
		"{'cachePoint':{'type':'default'}}]}],"
		"'system':[{'text':'Be brief.'},{'cachePoint':{'type':'default'}},{'text':'Use metric.'}],"
		"'inferenceConfig':{'maxTokens':512,'temperature':0.3,'topP':0.8,'stopSequences':['###']},"
		"'toolConfig':{'tools':[{'toolSpec':{'name':'get_weather','description':'Weather',"
		"'inputSchema':{'json':{'type':'object','properties':{'city':{'type':'string'}}}}}}],"
		"'toolChoice':{'any':{}}}}",
		true);
	EXPECT_RAW(j, "stream", "true");
	EXPECT_NUM(j, "max_tokens", "512");
	EXPECT_NUM(j, "temperature", "0.3");
	EXPECT_NUM(j, "top_p", "0.8");
	EXPECT_LEN(j, "stop_sequences", 1);
	EXPECT_STR(j, "stop_sequences.0", "###");
	EXPECT_ABSENT(j, "inferenceConfig");
	EXPECT_ABSENT(j, "toolConfig");
	char *sys = system_text(j);
	const char *a = strstr(sys, "Be brief."), *b = strstr(sys, "Use metric.");
	cr_assert(a && b && a < b, "system: %s", sys);

	EXPECT_LEN(j, "messages", 3);
	EXPECT_STR(j, "messages.0.role", "user");
	EXPECT_LEN(j, "messages.0.content", 2);
	EXPECT_STR(j, "messages.0.content.0.type", "text");
	EXPECT_STR(j, "messages.0.content.0.text", "Look at this");
	EXPECT_STR(j, "messages.0.content.1.type", "image");
	EXPECT_STR(j, "messages.0.content.1.source.type", "base64");
	EXPECT_STR(j, "messages.0.content.1.source.media_type", "image/jpeg");
	EXPECT_STR(j, "messages.0.content.1.source.data", "/9j/4AAQSkZJRg==");

	EXPECT_STR(j, "messages.1.role", "assistant");
	EXPECT_LEN(j, "messages.1.content", 3);
	EXPECT_STR(j, "messages.1.content.0.type", "thinking");
	EXPECT_STR(j, "messages.1.content.0.thinking", "Pondering.");
	EXPECT_STR(j, "messages.1.content.0.signature", "c2ln");
	EXPECT_STR(j, "messages.1.content.1.type", "text");
	EXPECT_STR(j, "messages.1.content.1.text", "Calling a tool.");
	EXPECT_STR(j, "messages.1.content.2.type", "tool_use");
	EXPECT_STR(j, "messages.1.content.2.id", "tooluse_1");
	EXPECT_STR(j, "messages.1.content.2.name", "get_weather");
	EXPECT_STR(j, "messages.1.content.2.input.city", "Paris");

	EXPECT_LEN(j, "messages.2.content", 1); /* the cachePoint has no Messages block */
	EXPECT_STR(j, "messages.2.content.0.type", "tool_result");
	EXPECT_STR(j, "messages.2.content.0.tool_use_id", "tooluse_1");
	EXPECT_RAW(j, "messages.2.content.0.is_error", "true");
	EXPECT_LEN(j, "messages.2.content.0.content", 2);
	EXPECT_STR(j, "messages.2.content.0.content.0.type", "text");
	EXPECT_STR(j, "messages.2.content.0.content.0.text", "Sunny");
	EXPECT_STR(j, "messages.2.content.0.content.1.type", "text");
	/* the json result as its JSON text */
	char *js = S(j, "messages.2.content.0.content.1.text");
	cr_assert_not_null(js);
	struct json *r = P(js, strlen(js));
	EXPECT_NUM(r, "temp", "21");
	EXPECT_STR(r, "unit", "C");
	EXPECT_STR(r, "tags.1", "b");

	EXPECT_LEN(j, "tools", 1);
	EXPECT_STR(j, "tools.0.name", "get_weather");
	EXPECT_STR(j, "tools.0.description", "Weather");
	EXPECT_STR(j, "tools.0.input_schema.type", "object");
	EXPECT_STR(j, "tools.0.input_schema.properties.city.type", "string");
	EXPECT_STR(j, "tool_choice.type", "any");
}

Test(bedrock_client, tool_result_success_has_no_is_error)
{
	struct json *j = c2a_req_ok("{'messages':[{'role':'user','content':[{'toolResult':{'toolUseId':'t1',"
				    "'content':[{'text':'ok'}],'status':'success'}}]}]}",
				    false);
	EXPECT_STR(j, "messages.0.content.0.type", "tool_result");
	int i = at(j, 0, "messages.0.content.0.is_error");
	cr_assert(i < 0 || str_eq(json_raw(j, i), "false"), "status success gave is_error %s",
		  RAW(j, "messages.0.content.0.is_error"));
	j = c2a_req_ok("{'messages':[{'role':'user','content':[{'toolResult':{'toolUseId':'t1',"
		       "'content':[{'text':'ok'}]}}]}]}",
		       false);
	i = at(j, 0, "messages.0.content.0.is_error");
	cr_assert(i < 0 || str_eq(json_raw(j, i), "false"));
}

Test(bedrock_client, tool_result_image_kept)
{
	/* ToolResultContentBlock may be an image; a Messages tool_result may hold image blocks */
	struct json *j = c2a_req_ok("{'messages':[{'role':'user','content':[{'toolResult':{'toolUseId':'t1',"
				    "'content':[{'text':'screenshot:'},{'image':{'format':'png','source':{'bytes':'iVBORw0K'}}}]}}]}]}",
				    false);
	int n = LEN(j, "messages.0.content.0.content");
	bool found = false;
	for (int k = 0; k < n && !found; k++) {
		char p[64];
		snprintf(p, sizeof(p), "messages.0.content.0.content.%d.type", k);
		if (S(j, p) && strcmp(S(j, p), "image") == 0) {
			found = true;
			snprintf(p, sizeof(p), "messages.0.content.0.content.%d.source.media_type", k);
			EXPECT_STR(j, p, "image/png");
			snprintf(p, sizeof(p), "messages.0.content.0.content.%d.source.data", k);
			EXPECT_STR(j, p, "iVBORw0K");
		}
	}
	cr_assert(found, "the tool result's image was lost: %s", RAW(j, "messages.0.content.0"));
}

Test(bedrock_client, redacted_reasoning_kept)
{
	/* ReasoningContentBlock.redactedContent ↔ Messages' redacted_thinking {data} */
	struct sb o;
	const char *err;
	int rc = req_c2a(J("{'messages':[{'role':'user','content':[{'text':'q'}]},{'role':'assistant','content':["
			   "{'reasoningContent':{'redactedContent':'EmwKAhgBEgy3va'}},{'text':'a'}]},"
			   "{'role':'user','content':[{'text':'more'}]}]}"),
			 "anthropic.claude-3-7-sonnet", false, &o, &err);
	cr_assert_eq(rc, 0, "refused (%s)", err ? err : "");
	struct json *j = PSB(o);
	EXPECT_STR(j, "messages.1.content.0.type", "redacted_thinking");
	EXPECT_STR(j, "messages.1.content.0.data", "EmwKAhgBEgy3va");
}

Test(bedrock_client, additional_model_request_fields_passed_on)
{
	/* additionalModelRequestFields: the model's own parameters beyond inferenceConfig (for
	 * Claude, Messages fields such as top_k and thinking) */
	struct json *j = c2a_req_ok("{'messages':[{'role':'user','content':[{'text':'q'}]}],"
				    "'inferenceConfig':{'maxTokens':2000},"
				    "'additionalModelRequestFields':{'top_k':5,'thinking':{'type':'enabled','budget_tokens':1024}}}",
				    false);
	EXPECT_NUM(j, "top_k", "5");
	EXPECT_STR(j, "thinking.type", "enabled");
	EXPECT_NUM(j, "thinking.budget_tokens", "1024");
}

Test(bedrock_client, tool_choices)
{
	const char *base = "{'messages':[{'role':'user','content':[{'text':'q'}]}],'toolConfig':{'tools':[{'toolSpec':"
			   "{'name':'f','inputSchema':{'json':{'type':'object'}}}}]%s}}";
	char body[512];
	snprintf(body, sizeof(body), base, ",'toolChoice':{'auto':{}}");
	struct json *j = c2a_req_ok(body, false);
	EXPECT_STR(j, "tools.0.name", "f");
	EXPECT_STR(j, "tools.0.input_schema.type", "object");
	if (HAS(j, "tool_choice"))
		EXPECT_STR(j, "tool_choice.type", "auto");
	snprintf(body, sizeof(body), base, "");
	j = c2a_req_ok(body, false);
	if (HAS(j, "tool_choice"))
		EXPECT_STR(j, "tool_choice.type", "auto");
	snprintf(body, sizeof(body), base, ",'toolChoice':{'any':{}}");
	j = c2a_req_ok(body, false);
	EXPECT_STR(j, "tool_choice.type", "any");
	snprintf(body, sizeof(body), base, ",'toolChoice':{'tool':{'name':'f'}}");
	j = c2a_req_ok(body, false);
	EXPECT_STR(j, "tool_choice.type", "tool");
	EXPECT_STR(j, "tool_choice.name", "f");
	EXPECT_ABSENT(j, "tools.0.description");
}

Test(bedrock_client, defaults_and_stream_flag)
{
	struct json *j = c2a_req_ok("{'messages':[{'role':'user','content':[{'text':'q'}]}]}", false);
	/* Messages requires max_tokens: some positive count is given */
	int i = at(j, 0, "max_tokens");
	cr_assert(xlate_num(j, i) && json_int(j, i, 0) > 0, "max_tokens: %s", RAW(j, "max_tokens"));
	i = at(j, 0, "stream");
	cr_assert(i < 0 || str_eq(json_raw(j, i), "false"), "stream: %s", RAW(j, "stream"));
	EXPECT_ABSENT(j, "temperature");
	EXPECT_ABSENT(j, "top_p");
	EXPECT_ABSENT(j, "stop_sequences");
	EXPECT_ABSENT(j, "tools");
	EXPECT_ABSENT(j, "tool_choice");
	EXPECT_ABSENT(j, "system");
	EXPECT_STR(j, "messages.0.content.0.text", "q");
	j = c2a_req_ok("{'messages':[{'role':'user','content':[{'text':'q'}]}]}", true);
	EXPECT_RAW(j, "stream", "true");
}

Test(bedrock_client, refused_inputs)
{
	c2a_req_bad("");
	c2a_req_bad("{");
	c2a_req_bad("[]");
	c2a_req_bad(J("{}"));
	c2a_req_bad(J("{'messages':{}}"));
	c2a_req_bad(J("{'messages':[{'role':'system','content':[{'text':'x'}]}]}"));
	c2a_req_bad(J("{'messages':[{'role':'user','content':'a string'}]}"));
	c2a_req_bad(J("{'messages':[{'role':'user','content':[{'video':{'format':'mp4'}}]}]}"));
	c2a_req_bad(J("{'messages':[{'role':'user','content':[{'text':'q'}]}],'inferenceConfig':'hot'}"));
	c2a_req_bad(J("{'messages':[{'role':'user','content':[{'text':'q'}]}],'inferenceConfig':{'maxTokens':1,'maxTokens':2}}"));
}

/* ======================================================================== */
/* Messages answer → Converse answer (xlate_resp_a2c)                       */
/* ======================================================================== */

static int resp_a2c(const char *body, struct sb *o, struct xlate_usage *u)
{
	struct guard g;
	size_t n = strlen(body);
	char *p = guard_put(&g, body, n);
	sb_init(o, &A, 64);
	memset(u, 0, sizeof(*u));
	int rc = xlate_resp_a2c(&A, p, n, o, u);
	guard_free(&g);
	return rc;
}

static struct json *resp_a2c_ok(const char *sq, struct xlate_usage *u)
{
	struct sb o;
	int rc = resp_a2c(J(sq), &o, u);
	cr_assert_eq(rc, 0, "xlate_resp_a2c: %d for %s", rc, J(sq));
	struct json *j = PSB(o);
	static const char *const top[] = { "output", "stopReason", "usage", "metrics", "additionalModelResponseFields",
		"trace", "performanceConfig", "serviceTier", NULL };
	only_keys(j, "", top);
	return j;
}

Test(bedrock_client, answer_every_block_kind_and_usage)
{
	struct xlate_usage u;
	struct json *j = resp_a2c_ok(
		"{'id':'msg_01','type':'message','role':'assistant','model':'claude-sonnet-4-5','content':["
		"{'type':'thinking','thinking':'Hmm.','signature':'c2lnbmF0dXJl'},"
		"{'type':'text','text':'Let me check.'},"
		"{'type':'tool_use','id':'toolu_01','name':'get_weather','input':{'city':'Paris'}}],"
		"'stop_reason':'tool_use','stop_sequence':null,"
		"'usage':{'input_tokens':25,'output_tokens':40,'cache_read_input_tokens':100,"
		"'cache_creation_input_tokens':7}}",
		&u);
	EXPECT_STR(j, "output.message.role", "assistant");
	EXPECT_LEN(j, "output.message.content", 3);
	EXPECT_ONLY_KEY(j, "output.message.content.0", "reasoningContent");
	EXPECT_STR(j, "output.message.content.0.reasoningContent.reasoningText.text", "Hmm.");
	EXPECT_STR(j, "output.message.content.0.reasoningContent.reasoningText.signature", "c2lnbmF0dXJl");
	EXPECT_ONLY_KEY(j, "output.message.content.1", "text");
	EXPECT_STR(j, "output.message.content.1.text", "Let me check.");
	EXPECT_ONLY_KEY(j, "output.message.content.2", "toolUse");
	EXPECT_STR(j, "output.message.content.2.toolUse.toolUseId", "toolu_01");
	EXPECT_STR(j, "output.message.content.2.toolUse.name", "get_weather");
	EXPECT_STR(j, "output.message.content.2.toolUse.input.city", "Paris");
	EXPECT_STR(j, "stopReason", "tool_use");
	EXPECT_NUM(j, "usage.inputTokens", "25");
	EXPECT_NUM(j, "usage.outputTokens", "40");
	EXPECT_NUM(j, "usage.cacheReadInputTokens", "100");
	EXPECT_NUM(j, "usage.cacheWriteInputTokens", "7");
	/* inputTokens excludes the cached part (as Messages' input_tokens does), so the total of
	 * tokens in and out is all four counts */
	EXPECT_NUM(j, "usage.totalTokens", "172");
	cr_assert(xlate_num(j, at(j, 0, "metrics.latencyMs")), "metrics.latencyMs is required");
	cr_assert_eq(u.in, 25);
	cr_assert_eq(u.out, 40);
	cr_assert_eq(u.cache_read, 100);
	cr_assert_eq(u.cache_write, 7);
}

Test(bedrock_client, answer_stop_reasons)
{
	static const struct {
		const char *a, *c;
	} map[] = { { "end_turn", "end_turn" }, { "tool_use", "tool_use" }, { "max_tokens", "max_tokens" },
		    { "stop_sequence", "stop_sequence" } };
	for (size_t i = 0; i < ARRAY_LEN(map); i++) {
		char body[256];
		struct xlate_usage u;
		snprintf(body, sizeof(body),
			 "{'content':[{'type':'text','text':'x'}],'stop_reason':'%s','usage':{'input_tokens':1,'output_tokens':1}}",
			 map[i].a);
		struct json *j = resp_a2c_ok(body, &u);
		EXPECT_STR(j, "stopReason", map[i].c);
	}
	struct xlate_usage u;
	struct json *j = resp_a2c_ok("{'content':[],'stop_reason':'refusal','usage':{'input_tokens':1,'output_tokens':0}}", &u);
	const char *r = S(j, "stopReason");
	cr_assert(r && (strcmp(r, "content_filtered") == 0 || strcmp(r, "guardrail_intervened") == 0), "refusal → %s", r);
	EXPECT_LEN(j, "output.message.content", 0);
}

Test(bedrock_client, answer_redacted_thinking_kept)
{
	/* a Converse client must get the redacted reasoning back to send it in its next turn */
	struct xlate_usage u;
	struct json *j = resp_a2c_ok("{'content':[{'type':'redacted_thinking','data':'EmwKAhgBEgy3va'},"
				     "{'type':'text','text':'ok'}],'stop_reason':'end_turn',"
				     "'usage':{'input_tokens':1,'output_tokens':1}}",
				     &u);
	EXPECT_LEN(j, "output.message.content", 2);
	EXPECT_STR(j, "output.message.content.0.reasoningContent.redactedContent", "EmwKAhgBEgy3va");
	EXPECT_STR(j, "output.message.content.1.text", "ok");
}

Test(bedrock_client, malformed_answers)
{
	static const char *const bad[] = { "", "{", "[]", "{}", "{\"content\":\"text\"}", "{\"content\":[1]}",
					   "{\"content\":[{\"text\":\"no type\"}]}", "{\"content\":[{\"type\":\"text\",\"text\":\"a\"}]" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		struct xlate_usage u;
		cr_assert_eq(resp_a2c(bad[i], &o, &u), -EBADMSG, "accepted: %s", bad[i]);
	}
}

/* ======================================================================== */
/* Messages stream events → ConverseStream frames (xlate_a2c_event)         */
/* ======================================================================== */

static void a2c_ev(const char *name, const char *sq, struct xlate_usage *u, struct sb *o)
{
	const char *d = J(sq);
	struct guard g;
	char *p = guard_put(&g, d, strlen(d));
	xlate_a2c_event(&A, (struct str){ name, strlen(name) }, (struct str){ p, strlen(d) }, u, o);
	guard_free(&g);
}

/* A whole Messages stream: thinking, text, a tool call (with a ping in between). */
static void anthropic_stream(struct xlate_usage *u, struct sb *o)
{
	a2c_ev("message_start",
	       "{'type':'message_start','message':{'id':'msg_1','type':'message','role':'assistant','model':'claude',"
	       "'content':[],'stop_reason':null,'stop_sequence':null,'usage':{'input_tokens':12,"
	       "'cache_read_input_tokens':3,'cache_creation_input_tokens':2,'output_tokens':1}}}",
	       u, o);
	a2c_ev("content_block_start", "{'type':'content_block_start','index':0,'content_block':{'type':'thinking','thinking':''}}", u, o);
	a2c_ev("content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'thinking_delta','thinking':'Hmm'}}", u, o);
	a2c_ev("content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'signature_delta','signature':'c2ln'}}", u, o);
	a2c_ev("content_block_stop", "{'type':'content_block_stop','index':0}", u, o);
	a2c_ev("content_block_start", "{'type':'content_block_start','index':1,'content_block':{'type':'text','text':''}}", u, o);
	a2c_ev("ping", "{'type':'ping'}", u, o);
	a2c_ev("content_block_delta", "{'type':'content_block_delta','index':1,'delta':{'type':'text_delta','text':'Hello \\'there\\''}}", u, o);
	a2c_ev("content_block_stop", "{'type':'content_block_stop','index':1}", u, o);
	a2c_ev("content_block_start", "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use',"
	       "'id':'toolu_1','name':'get_weather','input':{}}}", u, o);
	a2c_ev("content_block_delta", "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta','partial_json':'{\\'city\\':'}}", u, o);
	a2c_ev("content_block_delta", "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta','partial_json':'\\'Paris\\'}'}}", u, o);
	a2c_ev("content_block_stop", "{'type':'content_block_stop','index':2}", u, o);
	a2c_ev("message_delta", "{'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},'usage':{'output_tokens':42}}", u, o);
	a2c_ev("message_stop", "{'type':'message_stop'}", u, o);
}

Test(bedrock_events, frames_types_and_payloads)
{
	struct xlate_usage u = { 0 };
	struct sb o;
	struct frame f[32];
	sb_init(&o, &A, 1024);
	anthropic_stream(&u, &o);
	int n = frames(&o, f, 32);
	/* ConverseStream starts only tool blocks (ContentBlockStart has no text or reasoning member) */
	static const char *const want[] = { "messageStart", "contentBlockDelta", "contentBlockDelta",
		"contentBlockStop", "contentBlockDelta", "contentBlockStop", "contentBlockStart", "contentBlockDelta",
		"contentBlockDelta", "contentBlockStop", "messageStop", "metadata" };
	cr_assert_eq(n, (int)ARRAY_LEN(want), "%d frames", n);
	for (int i = 0; i < n; i++)
		cr_assert_str_eq(f[i].type, want[i], "frame %d", i);
	EXPECT_STR(f[0].j, "role", "assistant");

	EXPECT_NUM(f[1].j, "contentBlockIndex", "0");
	EXPECT_ONLY_KEY(f[1].j, "delta", "reasoningContent");
	EXPECT_STR(f[1].j, "delta.reasoningContent.text", "Hmm");
	EXPECT_NUM(f[2].j, "contentBlockIndex", "0");
	EXPECT_STR(f[2].j, "delta.reasoningContent.signature", "c2ln");
	EXPECT_NUM(f[3].j, "contentBlockIndex", "0");
	EXPECT_LEN(f[3].j, "", 1);

	EXPECT_NUM(f[4].j, "contentBlockIndex", "1");
	EXPECT_ONLY_KEY(f[4].j, "delta", "text");
	EXPECT_STR(f[4].j, "delta.text", "Hello \"there\"");
	EXPECT_NUM(f[5].j, "contentBlockIndex", "1");

	EXPECT_NUM(f[6].j, "contentBlockIndex", "2");
	EXPECT_ONLY_KEY(f[6].j, "start", "toolUse");
	EXPECT_STR(f[6].j, "start.toolUse.toolUseId", "toolu_1");
	EXPECT_STR(f[6].j, "start.toolUse.name", "get_weather");
	EXPECT_NUM(f[7].j, "contentBlockIndex", "2");
	EXPECT_ONLY_KEY(f[7].j, "delta", "toolUse");
	EXPECT_STR(f[7].j, "delta.toolUse.input", "{\"city\":");
	EXPECT_STR(f[8].j, "delta.toolUse.input", "\"Paris\"}");
	EXPECT_NUM(f[9].j, "contentBlockIndex", "2");

	EXPECT_STR(f[10].j, "stopReason", "tool_use");

	EXPECT_NUM(f[11].j, "usage.inputTokens", "12");
	EXPECT_NUM(f[11].j, "usage.outputTokens", "42");
	EXPECT_NUM(f[11].j, "usage.cacheReadInputTokens", "3");
	EXPECT_NUM(f[11].j, "usage.cacheWriteInputTokens", "2");
	EXPECT_NUM(f[11].j, "usage.totalTokens", "59");
	cr_assert(xlate_num(f[11].j, at(f[11].j, 0, "metrics.latencyMs")), "metadata.metrics.latencyMs is required");
	cr_assert_eq(u.in, 12);
	cr_assert_eq(u.out, 42);
}

Test(bedrock_events, round_trip_back_to_messages)
{
	struct xlate_usage u = { 0 };
	struct sb o, back;
	struct frame f[32];
	struct ev e[32];
	sb_init(&o, &A, 1024);
	sb_init(&back, &A, 1024);
	anthropic_stream(&u, &o);
	int n = frames(&o, f, 32);
	struct xlate_c2a s;
	xlate_c2a_init(&s, "claude", "msg_1");
	for (int i = 0; i < n; i++) {
		int rc = c2a_raw(&s, f[i].type, f[i].payload.p, f[i].payload.n, &back);
		cr_assert_eq(rc, 0, "frame %d (%s) back: %d", i, f[i].type, rc);
	}
	int m = events(&back, e, 32);
	check_grammar(e, m);
	cr_assert_str_eq(joined(e, m, 0, "delta.thinking"), "Hmm");
	cr_assert_str_eq(joined(e, m, 0, "delta.signature"), "c2ln");
	cr_assert_str_eq(joined(e, m, 1, "delta.text"), "Hello \"there\"");
	cr_assert_str_eq(joined(e, m, 2, "delta.partial_json"), "{\"city\":\"Paris\"}");
	int tool = -1;
	for (int i = 0; i < m; i++)
		if (strcmp(e[i].name, "content_block_start") == 0 && IDX(e[i].j) == 2)
			tool = i;
	cr_assert_geq(tool, 0);
	EXPECT_STR(e[tool].j, "content_block.type", "tool_use");
	EXPECT_STR(e[tool].j, "content_block.id", "toolu_1");
	EXPECT_STR(e[tool].j, "content_block.name", "get_weather");
	EXPECT_STR(e[m - 2].j, "delta.stop_reason", "tool_use");
	EXPECT_NUM(e[m - 2].j, "usage.output_tokens", "42");
	cr_assert_eq(s.usage.in, 12);
	cr_assert_eq(s.usage.out, 42);
	cr_assert_eq(s.usage.cache_read, 3);
	cr_assert_eq(s.usage.cache_write, 2);
}

Test(bedrock_events, stop_reasons)
{
	static const struct {
		const char *a, *c;
	} map[] = { { "end_turn", "end_turn" }, { "tool_use", "tool_use" }, { "max_tokens", "max_tokens" },
		    { "stop_sequence", "stop_sequence" } };
	for (size_t i = 0; i < ARRAY_LEN(map); i++) {
		struct xlate_usage u = { 0 };
		struct sb o;
		struct frame f[4];
		char d[160];
		sb_init(&o, &A, 128);
		snprintf(d, sizeof(d), "{'type':'message_delta','delta':{'stop_reason':'%s'},'usage':{'output_tokens':3}}", map[i].a);
		a2c_ev("message_delta", d, &u, &o);
		cr_assert_eq(frames(&o, f, 4), 1);
		cr_assert_str_eq(f[0].type, "messageStop");
		EXPECT_STR(f[0].j, "stopReason", map[i].c);
	}
}

Test(bedrock_events, nothing_for_pings_unknown_and_malformed)
{
	static const struct {
		const char *name, *data;
	} in[] = {
		{ "ping", "{\"type\":\"ping\"}" },
		{ "error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}" },
		{ "something_new", "{\"type\":\"something_new\"}" },
		{ "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}" },
		{ "content_block_delta", "{" },
		{ "content_block_delta", "" },
		{ "message_start", "[]" },
		{ "message_stop", "null" },
		{ "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\"}}" },
		{ "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":\"text\"}" },
		{ "message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}" },
	};
	for (size_t i = 0; i < ARRAY_LEN(in); i++) {
		struct xlate_usage u = { 0 };
		struct sb o;
		struct guard g;
		sb_init(&o, &A, 64);
		char *p = guard_put(&g, in[i].data, strlen(in[i].data));
		xlate_a2c_event(&A, (struct str){ in[i].name, strlen(in[i].name) }, (struct str){ p, strlen(in[i].data) }, &u, &o);
		guard_free(&g);
		cr_assert_eq(o.len, 0, "%s %s gave %zu bytes", in[i].name, in[i].data, o.len);
	}
}

/* ======================================================================== */
/* Bedrock chunk frames → SSE (evs_chunk_to_sse)                            */
/* ======================================================================== */

static bool chunk(const char *payload, struct sb *o)
{
	struct guard g;
	char *p = guard_put(&g, payload, strlen(payload));
	sb_init(o, &A, 64);
	bool ok = evs_chunk_to_sse(&A, (struct str){ p, strlen(payload) }, o);
	guard_free(&g);
	return ok;
}

Test(bedrock_events, chunk_to_sse)
{
	struct sb o;
	/* base64 of {"type":"message_stop"} (RFC 4648, one '=' of padding) */
	cr_assert(chunk("{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=\"}", &o));
	cr_assert(o.len == strlen("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") &&
			  memcmp(o.p, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", o.len) == 0,
		  "%.*s", (int)o.len, o.p);
	/* two '=' of padding; Bedrock's "p" padding member beside "bytes" */
	const char *want = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
			   "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
	cr_assert(chunk("{\"bytes\":\"eyJ0eXBlIjoiY29udGVudF9ibG9ja19kZWx0YSIsImluZGV4IjowLCJkZWx0YSI6eyJ0eXBlIjoidGV4dF9kZWx0YSIsInRleHQiOiJIaSJ9fQ==\","
			"\"p\":\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ\"}",
			&o));
	cr_assert(o.len == strlen(want) && memcmp(o.p, want, o.len) == 0, "%.*s", (int)o.len, o.p);
	/* no padding */
	cr_assert(chunk("{\"bytes\":\"eyJ0eXBlIjoicGluZyJ9\"}", &o));
	cr_assert(o.len == strlen("event: ping\ndata: {\"type\":\"ping\"}\n\n") &&
		  memcmp(o.p, "event: ping\ndata: {\"type\":\"ping\"}\n\n", o.len) == 0);
}

Test(bedrock_events, chunk_refused)
{
	static const char *const bad[] = {
		"", "{", "[]", "{}", "{\"bytes\":1}", "{\"bytes\":null}",
		"{\"bytes\":\"@@@@\"}",                 /* not base64 */
		"{\"bytes\":\"bm90IGpzb24=\"}",         /* "not json" */
		"{\"bytes\":\"WzFd\"}",                 /* [1] */
		"{\"bytes\":\"eyJ4IjoibWVzc2FnZV9zdG9wIn0=\"}", /* {"x":"message_stop"}: no type */
		"{\"bytes\":\"eyJieXRlcyI6MX0=\"}",     /* {"bytes":1} */
		"{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=e\"}", /* padding inside */
		"{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0sZ\"}", /* a lone sextet at the end: no whole byte */
		"{\"bytes\":\"\"}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		cr_assert(!chunk(bad[i], &o), "accepted %s", bad[i]);
	}
}

/* ======================================================================== */
/* prov_bedrock_route                                                        */
/* ======================================================================== */

static enum bedrock_action route(const char *path, const char **model, const char **err)
{
	struct guard g;
	size_t n = strlen(path);
	char *p = guard_put(&g, path, n);
	*model = NULL;
	*err = NULL;
	enum bedrock_action r = prov_bedrock_route(&A, (struct str){ p, n }, model, err);
	guard_free(&g);
	return r;
}

static void route_ok(const char *path, enum bedrock_action want, const char *model)
{
	const char *m, *err;
	enum bedrock_action r = route(path, &m, &err);
	cr_assert_eq(r, want, "%s: action %d, want %d (%s)", path, r, want, err ? err : "");
	cr_assert(m && strcmp(m, model) == 0, "%s: model %s, want %s", path, m ? m : "(none)", model);
}

static void route_bad(const char *path, size_t n)
{
	const char *m, *err;
	struct guard g;
	char *p = guard_put(&g, path, n);
	m = NULL;
	err = NULL;
	enum bedrock_action r = prov_bedrock_route(&A, (struct str){ p, n }, &m, &err);
	guard_free(&g);
	cr_assert_eq(r, BR_NONE, "accepted %.*s (action %d, model %s)", (int)n, path, r, m ? m : "");
	cr_assert(err && *err, "no reason for %.*s", (int)n, path);
}

#define ROUTE_BAD(lit) route_bad((lit), sizeof(lit) - 1)

Test(bedrock_prov, route_each_action)
{
	route_ok("/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke", BR_INVOKE,
		 "anthropic.claude-3-haiku-20240307-v1:0");
	route_ok("/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream",
		 BR_INVOKE_STREAM, "anthropic.claude-3-haiku-20240307-v1:0");
	route_ok("/bedrock/model/amazon.nova-pro-v1%3A0/converse", BR_CONVERSE, "amazon.nova-pro-v1:0");
	route_ok("/bedrock/model/amazon.nova-pro-v1%3A0/converse-stream", BR_CONVERSE_STREAM, "amazon.nova-pro-v1:0");
}

Test(bedrock_prov, route_encodings)
{
	/* an inference profile ARN: ':' and '/' percent-encoded in the one path segment */
	route_ok("/bedrock/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
		 "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
		 BR_INVOKE, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0");
	/* hex digits in either case (RFC 3986 2.1) */
	route_ok("/bedrock/model/amazon.nova-lite-v1%3a0/converse", BR_CONVERSE, "amazon.nova-lite-v1:0");
	/* ':' is allowed raw in a path segment (pchar) */
	route_ok("/bedrock/model/amazon.nova-lite-v1:0/converse", BR_CONVERSE, "amazon.nova-lite-v1:0");
	/* other escapes decode too */
	route_ok("/bedrock/model/a%20b%2Ec/invoke", BR_INVOKE, "a b.c");
	route_ok("/bedrock/model/x/invoke", BR_INVOKE, "x");
}

Test(bedrock_prov, route_refused)
{
	ROUTE_BAD("/bedrock/model/amazon.nova-pro-v1%3A0/invoke2");
	ROUTE_BAD("/bedrock/model/amazon.nova-pro-v1%3A0/Invoke");
	ROUTE_BAD("/bedrock/model/amazon.nova-pro-v1%3A0/converse-streamx");
	ROUTE_BAD("/bedrock/model/amazon.nova-pro-v1%3A0/");
	ROUTE_BAD("/bedrock/model/amazon.nova-pro-v1%3A0");
	ROUTE_BAD("/bedrock/model/invoke");
	ROUTE_BAD("/bedrock/model//invoke");
	ROUTE_BAD("/bedrock/model/");
	ROUTE_BAD("/bedrock/model");
	ROUTE_BAD("/bedrock/mode");
	ROUTE_BAD("");
	ROUTE_BAD("/bedrock/models/x/invoke");
	ROUTE_BAD("/v1/messages");
	ROUTE_BAD("/bedrock/model/%zz/invoke");
	ROUTE_BAD("/bedrock/model/ab%4/invoke");
	ROUTE_BAD("/bedrock/model/ab%/invoke");
	ROUTE_BAD("/bedrock/model/ab%g1/invoke");
	ROUTE_BAD("/bedrock/model/a%00b/invoke");
	ROUTE_BAD("/bedrock/model/a%0Ab/invoke");
	ROUTE_BAD("/bedrock/model/a%0d%0aX-Injected:%201/invoke");
	ROUTE_BAD("/bedrock/model/a%7Fb/invoke");
	ROUTE_BAD("/bedrock/model/a%1Fb/invoke");
	ROUTE_BAD("/bedrock/model/a\x01" "b/invoke");
	ROUTE_BAD("/bedrock/model/a\tb/invoke");
	ROUTE_BAD("/bedrock/model/a\x7f" "b/invoke");
	/* 2049 characters of id (Bedrock's modelId is at most 2048) */
	char p[2100];
	int n = snprintf(p, sizeof(p), "/bedrock/model/");
	memset(p + n, 'm', 2049);
	strcpy(p + n + 2049, "/invoke");
	route_bad(p, strlen(p));
	/* 2049 after decoding, 6147 before */
	char q[6200];
	n = snprintf(q, sizeof(q), "/bedrock/model/");
	for (int i = 0; i < 2049; i++)
		memcpy(q + n + 3 * i, "%41", 3);
	strcpy(q + n + 6147, "/converse");
	route_bad(q, strlen(q));
}

/* ======================================================================== */
/* prov_bedrock_inbound and prov_bedrock_body                               */
/* ======================================================================== */

static int inbound(const char *body, const char *model, bool stream, struct sb *o, struct str *beta)
{
	struct guard g;
	size_t n = strlen(body);
	char *p = guard_put(&g, body, n);
	sb_init(o, &A, 64);
	*beta = (struct str){ NULL, 0 };
	int rc = prov_bedrock_inbound(&A, (struct str){ p, n }, model, stream, o, beta);
	guard_free(&g);
	return rc;
}

Test(bedrock_prov, inbound_invoke_body)
{
	struct sb o;
	struct str beta;
	int rc = inbound(J("{'anthropic_version':'bedrock-2023-05-31','anthropic_beta':['a','b'],'max_tokens':100,"
			   "'messages':[{'role':'user','content':'Hi'}],'system':'S','temperature':0.5}"),
			 "anthropic.claude-3-haiku-20240307-v1:0", true, &o, &beta);
	cr_assert_eq(rc, 0);
	struct json *j = PSB(o);
	EXPECT_STR(j, "model", "anthropic.claude-3-haiku-20240307-v1:0");
	EXPECT_RAW(j, "stream", "true");
	EXPECT_ABSENT(j, "anthropic_version");
	EXPECT_ABSENT(j, "anthropic_beta");
	EXPECT_NUM(j, "max_tokens", "100");
	EXPECT_STR(j, "messages.0.content", "Hi");
	EXPECT_STR(j, "system", "S");
	EXPECT_NUM(j, "temperature", "0.5");
	EXPECT_LEN(j, "", 6);
	cr_assert(beta.n == 3 && memcmp(beta.p, "a,b", 3) == 0, "beta \"%.*s\"", (int)beta.n, beta.p ? beta.p : "");
}

Test(bedrock_prov, inbound_path_wins_over_body)
{
	struct sb o;
	struct str beta;
	int rc = inbound(J("{'model':'other','stream':true,'max_tokens':1,'messages':[]}"), "amazon.nova-pro-v1:0",
			 false, &o, &beta);
	cr_assert_eq(rc, 0);
	struct json *j = PSB(o);
	cr_assert_eq(count_key(j, 0, "model"), 1, "%.*s", DOC(j));
	cr_assert_eq(count_key(j, 0, "stream"), 1, "%.*s", DOC(j));
	EXPECT_STR(j, "model", "amazon.nova-pro-v1:0");
	int i = at(j, 0, "stream");
	cr_assert(str_eq(json_raw(j, i), "false"), "stream %s", RAW(j, "stream"));
	EXPECT_NUM(j, "max_tokens", "1");
	cr_assert_eq(beta.n, 0);
}

Test(bedrock_prov, inbound_beta_entries)
{
	struct sb o;
	struct str beta;
	/* non-strings, empty strings and header-breaking ones are not passed on */
	int rc = inbound(J("{'anthropic_beta':['context-1m-2025-08-07',5,'','x\\r\\ny','interleaved-thinking-2025-05-14'],"
			   "'max_tokens':1,'messages':[]}"),
			 "m", false, &o, &beta);
	cr_assert_eq(rc, 0);
	const char *want = "context-1m-2025-08-07,interleaved-thinking-2025-05-14";
	cr_assert(beta.n == strlen(want) && memcmp(beta.p, want, beta.n) == 0, "beta \"%.*s\"", (int)beta.n, beta.p);
	PSB(o);
	rc = inbound(J("{'anthropic_beta':'not-an-array','max_tokens':1,'messages':[]}"), "m", false, &o, &beta);
	cr_assert_eq(rc, 0);
	cr_assert_eq(beta.n, 0);
	EXPECT_ABSENT(PSB(o), "anthropic_beta");
}

Test(bedrock_prov, inbound_refused)
{
	static const char *const bad[] = { "", "[]", "\"x\"", "{", "{\"a\":1", "null", "{\"model\":1,\"model\":2}" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		struct str beta;
		cr_assert_eq(inbound(bad[i], "m", false, &o, &beta), -EBADMSG, "accepted %s", bad[i]);
	}
}

static int body(const char *b, const char *beta, struct sb *o)
{
	struct guard g;
	size_t n = strlen(b);
	char *p = guard_put(&g, b, n);
	sb_init(o, &A, 64);
	int rc = prov_bedrock_body(&A, (struct str){ p, n }, (struct str){ beta, strlen(beta) }, o);
	guard_free(&g);
	return rc;
}

Test(bedrock_prov, body_for_invoke_model)
{
	struct sb o;
	/* "fallbacks" is the gateway's own member: Bedrock refuses keys the Messages API does not have */
	cr_assert_eq(body(J("{'model':'claude-sonnet-4-5','stream':true,'max_tokens':5,"
			    "'messages':[{'role':'user','content':'Hi'}],'fallbacks':['openai/gpt-4o'],"
			    "'metadata':{'user_id':'u'}}"),
			  "a, b", &o),
		     0);
	struct json *j = PSB(o);
	EXPECT_ABSENT(j, "model");
	EXPECT_ABSENT(j, "stream");
	EXPECT_ABSENT(j, "fallbacks");
	EXPECT_STR(j, "anthropic_version", "bedrock-2023-05-31");
	EXPECT_LEN(j, "anthropic_beta", 2);
	EXPECT_STR(j, "anthropic_beta.0", "a");
	EXPECT_STR(j, "anthropic_beta.1", "b");
	EXPECT_NUM(j, "max_tokens", "5");
	EXPECT_STR(j, "messages.0.content", "Hi");
	EXPECT_STR(j, "metadata.user_id", "u");
	EXPECT_LEN(j, "", 5);
}

Test(bedrock_prov, body_keeps_a_given_version_and_beta)
{
	struct sb o;
	cr_assert_eq(body(J("{'anthropic_version':'bedrock-2023-05-31','anthropic_beta':['x'],'max_tokens':5,'messages':[]}"),
			  "a,b", &o),
		     0);
	struct json *j = PSB(o);
	cr_assert_eq(count_key(j, 0, "anthropic_version"), 1, "%.*s", DOC(j));
	cr_assert_eq(count_key(j, 0, "anthropic_beta"), 1, "%.*s", DOC(j));
	EXPECT_STR(j, "anthropic_version", "bedrock-2023-05-31");
	EXPECT_NUM(j, "max_tokens", "5");
}

Test(bedrock_prov, body_beta_header_forms)
{
	struct sb o;
	/* no header: no anthropic_beta */
	cr_assert_eq(body(J("{'max_tokens':5,'messages':[]}"), "", &o), 0);
	struct json *j = PSB(o);
	EXPECT_ABSENT(j, "anthropic_beta");
	EXPECT_STR(j, "anthropic_version", "bedrock-2023-05-31");
	/* one value; empty pieces and blanks around commas ignored */
	cr_assert_eq(body(J("{'max_tokens':5}"), "only-one", &o), 0);
	j = PSB(o);
	EXPECT_LEN(j, "anthropic_beta", 1);
	EXPECT_STR(j, "anthropic_beta.0", "only-one");
	cr_assert_eq(body(J("{'max_tokens':5}"), " a ,, b , ", &o), 0);
	j = PSB(o);
	EXPECT_LEN(j, "anthropic_beta", 2);
	EXPECT_STR(j, "anthropic_beta.0", "a");
	EXPECT_STR(j, "anthropic_beta.1", "b");
	/* a body made only of what is removed is still a JSON object */
	cr_assert_eq(body(J("{'model':'m','stream':false}"), "x", &o), 0);
	j = PSB(o);
	EXPECT_LEN(j, "", 2);
	EXPECT_STR(j, "anthropic_version", "bedrock-2023-05-31");
	EXPECT_STR(j, "anthropic_beta.0", "x");
	cr_assert_eq(body("{}", "", &o), 0);
	j = PSB(o);
	EXPECT_LEN(j, "", 1);
	EXPECT_STR(j, "anthropic_version", "bedrock-2023-05-31");
}

Test(bedrock_prov, body_refused)
{
	static const char *const bad[] = { "", "[]", "\"x\"", "{", "null", "{\"model\":1,\"model\":2}" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		cr_assert_eq(body(bad[i], "a", &o), -EBADMSG, "accepted %s", bad[i]);
	}
}

/* ======================================================================== */
/* prov_bedrock_build                                                        */
/* ======================================================================== */

#define BR_HOST "bedrock-runtime.us-east-1.amazonaws.com"
#define BR_AKID "AKIDEXAMPLE"
#define BR_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define BR_NOW 1759322096LL /* 2025-10-01T12:34:56Z */
#define BR_DATE "20251001T123456Z"
#define BR_BODY "{\"anthropic_version\":\"bedrock-2023-05-31\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"
#define BR_MODEL "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
/* @smithy/signature-v4's Authorization for POST /model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke
 * with content-type, host, x-amz-date and BR_BODY (tests/unit/aws.c, sv_bedrock_invoke) */
#define BR_SMITHY_AUTHZ                                                                         \
	"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, "    \
	"SignedHeaders=content-type;host;x-amz-date, "                                         \
	"Signature=85b91e6d22d0ad5f8ad5d1dd235f7c4eb45a44d989aa9ca008eadbd1160c6dda"

struct head {
	char *line;
	int n;
	char *name[32], *value[32];
	struct up_req r;
};

static void sigv4_provider(struct provider *p)
{
	memset(p, 0, sizeof(*p));
	p->name = "bedrock";
	p->region = "us-east-1";
	p->akid = BR_AKID;
	p->secret = BR_SECRET;
	p->host_hdr = BR_HOST;
	p->host = BR_HOST;
	p->base_path = "";
	p->tls = true;
	p->port = 443;
}

static void build(const struct provider *p, const char *model, const char *key, bool stream, const char *b,
		  struct head *h)
{
	struct sigv4_key cache;
	memset(&cache, 0, sizeof(cache));
	memset(h, 0, sizeof(*h));
	int rc = prov_bedrock_build(&A, (struct str){ b, strlen(b) }, p, model, key, stream, BR_NOW, &cache, &h->r);
	cr_assert_eq(rc, 0);
	cr_assert_eq(h->r.niov, 2);
	cr_assert(h->r.iov[1].iov_len == strlen(b) && memcmp(h->r.iov[1].iov_base, b, strlen(b)) == 0, "body changed");
	cr_assert_eq(h->r.len, h->r.iov[0].iov_len + h->r.iov[1].iov_len);
	char *t = arena_strndup(&A, h->r.iov[0].iov_base, h->r.iov[0].iov_len);
	size_t tl = h->r.iov[0].iov_len;
	cr_assert(tl >= 4 && strcmp(t + tl - 4, "\r\n\r\n") == 0, "head does not end with an empty line: %s", t);
	cr_assert(!memchr(t, 0, tl));
	char *e = strstr(t, "\r\n");
	*e = 0;
	h->line = t;
	for (char *s = e + 2; *s && !(s[0] == '\r' && s[1] == '\n');) {
		char *end = strstr(s, "\r\n");
		cr_assert_not_null(end);
		*end = 0;
		char *colon = strchr(s, ':');
		cr_assert(colon && colon[1] == ' ', "bad header line %s", s);
		*colon = 0;
		cr_assert_lt(h->n, 32);
		h->name[h->n] = s;
		h->value[h->n] = colon + 2;
		h->n++;
		s = end + 2;
	}
}

/* The one header named `name` (any case), or NULL. */
static const char *hdr(struct head *h, const char *name)
{
	const char *v = NULL;
	for (int i = 0; i < h->n; i++)
		if (strcasecmp(h->name[i], name) == 0) {
			cr_assert_null(v, "header %s twice", name);
			v = h->value[i];
		}
	return v;
}

Test(bedrock_prov, our_signer_matches_smithy)
{
	const struct t_hdr hd[] = { { "content-type", "application/json" }, { "host", BR_HOST }, { "x-amz-date", BR_DATE } };
	cr_assert_str_eq(t_authz("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke", hd, 3, BR_BODY, BR_DATE,
				 "us-east-1", BR_AKID, BR_SECRET),
			 BR_SMITHY_AUTHZ);
}

Test(bedrock_prov, build_sigv4_invoke)
{
	struct provider p;
	struct head h;
	sigv4_provider(&p);
	build(&p, BR_MODEL, NULL, false, BR_BODY, &h);
	cr_assert_str_eq(h.line, "POST /model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke HTTP/1.1");
	cr_assert_str_eq(hdr(&h, "Host"), BR_HOST);
	cr_assert_str_eq(hdr(&h, "Content-Type"), "application/json");
	cr_assert_str_eq(hdr(&h, "X-Amz-Date"), BR_DATE);
	char len[16];
	snprintf(len, sizeof(len), "%zu", strlen(BR_BODY));
	cr_assert_str_eq(hdr(&h, "Content-Length"), len);
	const char *acc = hdr(&h, "Accept");
	cr_assert(!acc || strcmp(acc, "application/json") == 0, "Accept %s", acc);
	cr_assert_str_eq(hdr(&h, "Authorization"), BR_SMITHY_AUTHZ);
	cr_assert_null(hdr(&h, "X-Amz-Security-Token"));
}

Test(bedrock_prov, build_sigv4_stream)
{
	struct provider p;
	struct head h;
	sigv4_provider(&p);
	build(&p, BR_MODEL, "ignored-key", true, BR_BODY, &h);
	const char *path = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream";
	char line[256];
	snprintf(line, sizeof(line), "POST %s HTTP/1.1", path);
	cr_assert_str_eq(h.line, line);
	cr_assert_str_eq(hdr(&h, "X-Amz-Date"), BR_DATE);
	cr_assert_str_eq(hdr(&h, "Accept"), "application/vnd.amazon.eventstream");
	const char *a = hdr(&h, "Authorization");
	cr_assert_not_null(a);
	const char *prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, "
			     "SignedHeaders=content-type;host;x-amz-date";
	cr_assert(strncmp(a, prefix, strlen(prefix)) == 0, "Authorization: %s", a);
	const struct t_hdr hd[] = { { "content-type", "application/json" }, { "host", BR_HOST }, { "x-amz-date", BR_DATE } };
	cr_assert_str_eq(a, t_authz(path, hd, 3, BR_BODY, BR_DATE, "us-east-1", BR_AKID, BR_SECRET));
}

Test(bedrock_prov, build_sigv4_session_token)
{
	struct provider p;
	struct head h;
	sigv4_provider(&p);
	p.session_token = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQExampleToken+/=";
	build(&p, BR_MODEL, NULL, false, BR_BODY, &h);
	cr_assert_str_eq(hdr(&h, "X-Amz-Security-Token"), p.session_token);
	const struct t_hdr hd[] = { { "content-type", "application/json" }, { "host", BR_HOST }, { "x-amz-date", BR_DATE },
				    { "x-amz-security-token", p.session_token } };
	cr_assert_str_eq(hdr(&h, "Authorization"),
			 t_authz("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke", hd, 4, BR_BODY, BR_DATE,
				 "us-east-1", BR_AKID, BR_SECRET));
}

Test(bedrock_prov, build_other_region_and_arn_id)
{
	struct provider p;
	struct head h;
	sigv4_provider(&p);
	p.region = "eu-west-3";
	p.host_hdr = "bedrock-runtime.eu-west-3.amazonaws.com";
	const char *arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0";
	build(&p, arn, NULL, true, "{}", &h);
	const char *path = "/model/arn%3Aaws%3Abedrock%3Aeu-west-3%3A123456789012%3Ainference-profile%2F"
			   "eu.anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream";
	char line[512];
	snprintf(line, sizeof(line), "POST %s HTTP/1.1", path);
	cr_assert_str_eq(h.line, line);
	const struct t_hdr hd[] = { { "content-type", "application/json" },
				    { "host", "bedrock-runtime.eu-west-3.amazonaws.com" }, { "x-amz-date", BR_DATE } };
	cr_assert_str_eq(hdr(&h, "Authorization"), t_authz(path, hd, 3, "{}", BR_DATE, "eu-west-3", BR_AKID, BR_SECRET));
	cr_assert_str_eq(hdr(&h, "Content-Length"), "2");
}

Test(bedrock_prov, build_bearer_key)
{
	struct provider p;
	struct head h;
	sigv4_provider(&p);
	p.akid = NULL;
	p.secret = NULL;
	build(&p, BR_MODEL, "ABSKQmVkcm9ja0FQSUtleQ==", false, BR_BODY, &h);
	cr_assert_str_eq(h.line, "POST /model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke HTTP/1.1");
	cr_assert_str_eq(hdr(&h, "Authorization"), "Bearer ABSKQmVkcm9ja0FQSUtleQ==");
	cr_assert_str_eq(hdr(&h, "Host"), BR_HOST);
	cr_assert_str_eq(hdr(&h, "Content-Type"), "application/json");
}

Test(bedrock_prov, build_converse_for_other_models)
{
	static const struct {
		const char *model, *path;
	} m[] = {
		{ "amazon.nova-pro-v1:0", "/model/amazon.nova-pro-v1%3A0/converse" },
		{ "meta.llama3-1-70b-instruct-v1:0", "/model/meta.llama3-1-70b-instruct-v1%3A0/converse" },
		{ "mistral.mistral-large-2407-v1:0", "/model/mistral.mistral-large-2407-v1%3A0/converse" },
	};
	for (size_t i = 0; i < ARRAY_LEN(m); i++)
		for (int stream = 0; stream < 2; stream++) {
			struct provider p;
			struct head h;
			char line[256];
			sigv4_provider(&p);
			build(&p, m[i].model, NULL, stream, "{\"messages\":[]}", &h);
			snprintf(line, sizeof(line), "POST %s%s HTTP/1.1", m[i].path, stream ? "-stream" : "");
			cr_assert_str_eq(h.line, line);
			cr_assert_str_eq(hdr(&h, "Accept"), stream ? "application/vnd.amazon.eventstream" : "application/json");
			char path[256];
			snprintf(path, sizeof(path), "%s%s", m[i].path, stream ? "-stream" : "");
			const struct t_hdr hd[] = { { "content-type", "application/json" }, { "host", BR_HOST },
						    { "x-amz-date", BR_DATE } };
			cr_assert_str_eq(hdr(&h, "Authorization"),
					 t_authz(path, hd, 3, "{\"messages\":[]}", BR_DATE, "us-east-1", BR_AKID, BR_SECRET));
			/* the Bearer form too */
			p.akid = NULL;
			build(&p, m[i].model, "k", stream, "{}", &h);
			cr_assert_str_eq(h.line, line);
			cr_assert_str_eq(hdr(&h, "Authorization"), "Bearer k");
		}
}

/* ======================================================================== */
/* Inputs with a field missing or of the wrong type: refused, or translated */
/* into valid JSON (an answer of 0 promises a whole JSON document)          */
/* ======================================================================== */

/* Each accepted input whose output is not JSON is listed in *bad. */
static void json_or_refused(struct sb *bad, const char *what, const char *in, int rc, const struct sb *o)
{
	struct json j;
	if (rc == 0 && json_parse(&j, &A, o->p, o->len) != 0) {
		sb_cat(bad, "\n  ", what, " accepted ", in, "\n    and wrote ", NULL);
		sb_put(bad, o->p, o->len);
	}
}

#define NO_BAD(bad) cr_assert_eq((bad).len, 0, "output that is not JSON:%.*s", (int)(bad).len, (bad).p)

Test(bedrock_a2c, missing_fields_give_json_or_refusal)
{
	struct sb bad;
	sb_init(&bad, &A, 256);
	static const char *const msgs[] = {
		"[{'role':'user','content':[{'type':'text'}]}]",
		"[{'role':'user','content':[{'type':'text','text':5}]}]",
		"[{'role':'assistant','content':[{'type':'tool_use','name':'f','input':{}}]}]",
		"[{'role':'assistant','content':[{'type':'tool_use','id':'t','input':{}}]}]",
		"[{'role':'user','content':[{'type':'tool_result','content':'x'}]}]",
		"[{'role':'user','content':[{'type':'tool_result','tool_use_id':'t','content':[{'type':'text'}]}]}]",
		"[{'role':'assistant','content':[{'type':'thinking','signature':'s'}]}]",
		"[{'role':'assistant','content':[{'type':'redacted_thinking'}]}]",
	};
	for (size_t i = 0; i < ARRAY_LEN(msgs); i++) {
		char b[512];
		struct sb o;
		const char *err;
		snprintf(b, sizeof(b), "{'max_tokens':10,'messages':%s}", msgs[i]);
		const char *in = J(b);
		json_or_refused(&bad, "xlate_req_a2c", in, req_a2c(in, &o, &err), &o);
	}
	static const char *const tools[] = {
		"'tools':[{'input_schema':{'type':'object'}}]",
		"'tools':[{'name':5,'input_schema':{'type':'object'}}]",
		"'tools':[" WEATHER_TOOL "],'tool_choice':{'type':'tool'}",
	};
	for (size_t i = 0; i < ARRAY_LEN(tools); i++) {
		char b[512];
		struct sb o;
		const char *err;
		snprintf(b, sizeof(b), "{'max_tokens':10,%s," MSG_HI "}", tools[i]);
		const char *in = J(b);
		json_or_refused(&bad, "xlate_req_a2c", in, req_a2c(in, &o, &err), &o);
	}
	NO_BAD(bad);
}

Test(bedrock_client, missing_fields_give_json_or_refusal)
{
	struct sb bad;
	sb_init(&bad, &A, 256);
	static const char *const reqs[] = {
		"{'messages':[{'role':'assistant','content':[{'toolUse':{'name':'f','input':{}}}]}]}",
		"{'messages':[{'role':'assistant','content':[{'toolUse':{'toolUseId':'t','input':{}}}]}]}",
		"{'messages':[{'role':'user','content':[{'toolResult':{'content':[{'text':'x'}]}}]}]}",
		"{'messages':[{'role':'assistant','content':[{'reasoningContent':{'reasoningText':{'signature':'s'}}}]}]}",
		"{'messages':[{'role':'user','content':[{'image':{'source':{'bytes':'AAAA'}}}]}]}",
		"{'messages':[{'role':'user','content':[{'text':'q'}]}],'toolConfig':{'tools':[{'toolSpec':{'inputSchema':{'json':{}}}}]}}",
		"{'messages':[{'role':'user','content':[{'text':'q'}]}],'toolConfig':{'tools':[{'toolSpec':{'name':'f'}}],"
		"'toolChoice':{'tool':{}}}}",
		"{'messages':[{'role':'user','content':[{'text':'q'}]}],'system':[{'text':5}]}",
	};
	for (size_t i = 0; i < ARRAY_LEN(reqs); i++) {
		struct sb o;
		const char *err;
		const char *in = J(reqs[i]);
		json_or_refused(&bad, "xlate_req_c2a", in, req_c2a(in, "m", false, &o, &err), &o);
	}
	static const char *const answers[] = {
		"{'content':[{'type':'text'}],'stop_reason':'end_turn','usage':{}}",
		"{'content':[{'type':'tool_use','name':'f','input':{}}],'stop_reason':'tool_use','usage':{}}",
		"{'content':[{'type':'tool_use','id':'t','input':{}}],'stop_reason':'tool_use','usage':{}}",
		"{'content':[{'type':'thinking','signature':'s'}],'stop_reason':'end_turn','usage':{}}",
	};
	for (size_t i = 0; i < ARRAY_LEN(answers); i++) {
		struct sb o;
		struct xlate_usage u;
		const char *in = J(answers[i]);
		json_or_refused(&bad, "xlate_resp_a2c", in, resp_a2c(in, &o, &u), &o);
	}
	NO_BAD(bad);
}

Test(bedrock_c2a, missing_fields_give_json_or_refusal)
{
	struct sb bad;
	sb_init(&bad, &A, 256);
	static const char *const answers[] = {
		"[{'toolUse':{'name':'f','input':{}}}]",
		"[{'toolUse':{'toolUseId':'t','input':{}}}]",
		"[{'toolUse':{}}]",
		"[{'reasoningContent':{'reasoningText':{'signature':'s'}}}]",
		"[{'reasoningContent':{'reasoningText':{}}}]",
		"[{'text':5}]",
	};
	for (size_t i = 0; i < ARRAY_LEN(answers); i++) {
		char b[512];
		struct sb o;
		struct xlate_usage u;
		snprintf(b, sizeof(b), "{'output':{'message':{'role':'assistant','content':%s}},'stopReason':'end_turn',"
				       "'usage':{'inputTokens':1,'outputTokens':1,'totalTokens':2}}",
			 answers[i]);
		const char *in = J(b);
		json_or_refused(&bad, "xlate_resp_c2a", in, resp_c2a(in, &o, &u), &o);
	}
	NO_BAD(bad);
}

Test(bedrock_events, missing_fields_give_json_frames_or_none)
{
	static const struct {
		const char *name, *data;
	} in[] = {
		{ "content_block_start", "{'type':'content_block_start','index':0,'content_block':{'type':'tool_use','name':'f','input':{}}}" },
		{ "content_block_start", "{'type':'content_block_start','index':0,'content_block':{'type':'tool_use','id':'t','input':{}}}" },
		{ "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta'}}" },
		{ "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'input_json_delta'}}" },
		{ "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'thinking_delta','thinking':5}}" },
		{ "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'signature_delta'}}" },
		{ "message_delta", "{'type':'message_delta','delta':{},'usage':{}}" },
		{ "message_start", "{'type':'message_start'}" },
	};
	struct sb bad;
	sb_init(&bad, &A, 256);
	for (size_t i = 0; i < ARRAY_LEN(in); i++) {
		struct xlate_usage u = { 0 };
		struct sb o;
		sb_init(&o, &A, 64);
		a2c_ev(in[i].name, in[i].data, &u, &o);
		size_t off = 0;
		while (off < o.len) {
			struct evs_msg m;
			long r = evs_decode((const uint8_t *)o.p + off, o.len - off, &m);
			cr_assert_gt(r, 0);
			struct json j;
			if (json_parse(&j, &A, m.payload.p, m.payload.n) != 0) {
				sb_cat(&bad, "\n  ", in[i].name, " ", J(in[i].data), "\n    gave a ", NULL);
				sb_str(&bad, m.event_type);
				sb_puts(&bad, " frame: ");
				sb_str(&bad, m.payload);
			}
			off += (size_t)r;
		}
	}
	NO_BAD(bad);
}
