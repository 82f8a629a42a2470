/*
 * Unit tests for section 11 (xlate_): Anthropic ⇄ OpenAI translation.
 *
 * JSON in this file is written with single quotes for readability; J()
 * turns every ' into " (a JSON-escaped quote is therefore written \\').
 * Inputs are placed right before a PROT_NONE page (guard.h), outputs are
 * compared byte for byte with goldens and re-validated with json_parse.
 */
#include "../../bifrost.c"
#include <criterion/criterion.h>
#include "guard.h"

static struct arena A;

static void setup(void) { arena_init(&A, NULL); }
static void teardown(void) { arena_reset(&A); }

TestSuite(xlate, .init = setup, .fini = teardown);

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

static char *Z(const struct sb *o) { return arena_strndup(&A, o->p, o->len); }

static void assert_json(const struct sb *o)
{
	struct json j;
	cr_assert_eq(json_parse(&j, &A, o->p, o->len), 0, "not JSON: %.*s", (int)o->len, o->p);
}

/* Each event of an Anthropic (event: + data:) or OpenAI (data: only) stream parses. */
static void assert_events(const struct sb *o, bool named)
{
	size_t off = 0, n;
	while ((n = sse_next(o->p + off, o->len - off)) > 0) {
		const char *ev = o->p + off;
		struct str d = sse_data(ev, n);
		struct json j;
		cr_assert(d.p, "event without data: %.*s", (int)n, ev);
		if (named) {
			cr_assert(strncmp(ev, "event: ", 7) == 0);
			size_t en = strcspn(ev + 7, "\n");
			cr_assert_eq(json_parse(&j, &A, d.p, d.n), 0, "%.*s", (int)n, ev);
			struct str t = xlate_inner(&j, xlate_member(&j, 0, "type"));
			cr_assert(t.n == en && memcmp(t.p, ev + 7, en) == 0, "event name != type: %.*s", (int)n, ev);
		} else if (!str_eq(d, "[DONE]")) {
			cr_assert_eq(json_parse(&j, &A, d.p, d.n), 0, "%.*s", (int)n, ev);
		}
		off += n;
	}
	cr_assert_eq(off, o->len, "trailing partial event");
}

/* ---- request, Anthropic → OpenAI --------------------------------------- */

static int req_a2o(const char *body, bool reasoning, struct sb *o, const char **err)
{
	struct guard g;
	char *p = guard_put(&g, body, strlen(body));
	sb_init(o, &A, 64);
	*err = NULL;
	int rc = xlate_req_a2o(&A, p, strlen(body), "gpt-4o", reasoning, o, err);
	guard_free(&g);
	return rc;
}

static const char *const CC_REQ =
	"{'model':'claude-opus-4-8','max_tokens':64000,"
	"'system':[{'type':'text','text':'You are \\'X\\'.','cache_control':{'type':'ephemeral'}},"
	"{'type':'text','text':'Be brief.'}],"
	"'messages':[{'role':'user','content':'hi'},"
	"{'role':'assistant','content':[{'type':'thinking','thinking':'hmm','signature':'s'},"
	"{'type':'text','text':'Let me look.'},"
	"{'type':'tool_use','id':'toolu_1','name':'read','input':{'path':'/a b','n':[1,2]}}]},"
	"{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':["
	"{'type':'text','text':'line1'},"
	"{'type':'image','source':{'type':'base64','media_type':'image/png','data':'AAAA'}},"
	"{'type':'text','text':'line2'}]},"
	"{'type':'tool_result','tool_use_id':'toolu_2','content':'boom','is_error':true},"
	"{'type':'text','text':'go on'}]},"
	"{'role':'assistant','content':[{'type':'tool_use','id':'toolu_3','name':'ls','input':{}}]},"
	"{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_3'}]},"
	"{'role':'user','content':[{'type':'image','source':{'type':'url','url':'https://x/y.png'}}]}],"
	"'tools':[{'name':'read','description':'Read a file','input_schema':{'type':'object',"
	"'properties':{'path':{'type':'string'}}}},{'type':'web_search_20250305','name':'web_search'}],"
	"'tool_choice':{'type':'any','disable_parallel_tool_use':true},"
	"'thinking':{'type':'enabled','budget_tokens':2048},'metadata':{'user_id':'u-1'},"
	"'stop_sequences':['END'],'temperature':0.5,'top_p':1,'stream':true,'context_management':{}}";

static const char *const CC_REQ_OAI =
	"{'model':'gpt-4o','messages':["
	"{'role':'system','content':'You are \\'X\\'.\\nBe brief.'},"
	"{'role':'user','content':'hi'},"
	"{'role':'assistant','tool_calls':[{'id':'toolu_1','type':'function','function':{'name':'read',"
	"'arguments':'{\\'path\\':\\'/a b\\',\\'n\\':[1,2]}'}}],'content':'Let me look.'},"
	"{'role':'tool','tool_call_id':'toolu_1','content':'line1\\nline2'},"
	"{'role':'tool','tool_call_id':'toolu_2','content':'Error: boom'},"
	"{'role':'user','content':[{'type':'image_url','image_url':{'url':'data:image/png;base64,AAAA'}},"
	"{'type':'text','text':'go on'}]},"
	"{'role':'assistant','tool_calls':[{'id':'toolu_3','type':'function','function':{'name':'ls',"
	"'arguments':'{}'}}],'content':null},"
	"{'role':'tool','tool_call_id':'toolu_3','content':''},"
	"{'role':'user','content':[{'type':'image_url','image_url':{'url':'https://x/y.png'}}]}],"
	"'max_completion_tokens':64000,'temperature':0.5,'top_p':1,'stop':['END'],"
	"'stream':true,'stream_options':{'include_usage':true},'user':'u-1',"
	"'tools':[{'type':'function','function':{'name':'read','description':'Read a file',"
	"'parameters':{'type':'object','properties':{'path':{'type':'string'}}}}}],"
	"'tool_choice':'required','parallel_tool_calls':false,'reasoning_effort':'medium'}";

Test(xlate, req_a2o_claude_code_golden)
{
	struct sb o;
	const char *err;
	cr_assert_eq(req_a2o(J(CC_REQ), true, &o, &err), 0, "%s", err);
	cr_assert_str_eq(Z(&o), J(CC_REQ_OAI));
	assert_json(&o);
}

Test(xlate, req_a2o_plain_model_drops_thinking)
{
	struct sb o;
	const char *err;
	cr_assert_eq(req_a2o(J("{'model':'c','max_tokens':10,'messages':[{'role':'user','content':"
			       "[{'type':'text','text':'a'}]}],'thinking':{'type':'adaptive'},"
			       "'stop_sequences':[],'stream':false,'metadata':{}}"),
			     false, &o, &err),
		     0);
	cr_assert_str_eq(Z(&o), J("{'model':'gpt-4o','messages':[{'role':'user','content':'a'}],'max_tokens':10}"));
}

Test(xlate, req_a2o_reasoning_effort)
{
	static const struct { const char *thinking, *want; } t[] = {
		{ "{'type':'enabled','budget_tokens':1024}", ",'reasoning_effort':'low'}" },
		{ "{'type':'enabled','budget_tokens':1025}", ",'reasoning_effort':'medium'}" },
		{ "{'type':'enabled','budget_tokens':8192}", ",'reasoning_effort':'medium'}" },
		{ "{'type':'enabled','budget_tokens':8193}", ",'reasoning_effort':'high'}" },
		{ "{'type':'adaptive'}", ",'reasoning_effort':'medium'}" },
		{ "{'type':'disabled'}", "'max_completion_tokens':5}" },
		{ "null", "'max_completion_tokens':5}" },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct sb o;
		const char *err;
		char body[256];
		snprintf(body, sizeof(body), "{'max_tokens':5,'messages':[],'thinking':%s}", t[i].thinking);
		cr_assert_eq(req_a2o(J(body), true, &o, &err), 0, "%s", body);
		char *z = Z(&o), *want = J(t[i].want);
		cr_assert(strlen(z) >= strlen(want) && !strcmp(z + strlen(z) - strlen(want), want), "%s", z);
	}
}

Test(xlate, req_a2o_tool_choice)
{
	static const struct { const char *choice, *want; } t[] = {
		{ "{'type':'auto'}", ",'tool_choice':'auto'}" },
		{ "{'type':'none'}", ",'tool_choice':'none'}" },
		{ "{'type':'tool','name':'f'}", ",'tool_choice':{'type':'function','function':{'name':'f'}}}" },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct sb o;
		const char *err;
		char body[256];
		snprintf(body, sizeof(body), "{'messages':[],'tools':[{'name':'f','input_schema':{}}],"
					     "'tool_choice':%s}", t[i].choice);
		cr_assert_eq(req_a2o(J(body), false, &o, &err), 0, "%s", body);
		char *z = Z(&o), *want = J(t[i].want);
		cr_assert(!strcmp(z + strlen(z) - strlen(want), want), "%s", z);
	}
	/* only server tools: neither tools nor tool_choice survive */
	struct sb o;
	const char *err;
	cr_assert_eq(req_a2o(J("{'messages':[],'tools':[{'type':'bash_20250124','name':'bash'}],"
			       "'tool_choice':{'type':'any'}}"), false, &o, &err), 0);
	cr_assert_str_eq(Z(&o), J("{'model':'gpt-4o','messages':[]}"));
}

Test(xlate, req_a2o_rejects_bad_shapes)
{
	static const char *const bad[] = {
		"", "not json", "[]", "{'messages':[]} x", "{'messages':[],'messages':[]}",
		"{}", "{'messages':{}}", "{'messages':[1]}", "{'messages':[{'role':'tool','content':'x'}]}",
		"{'messages':[{'role':'user','content':5}]}", "{'messages':[{'role':'user'}]}",
		"{'messages':[{'role':'user','content':[{'text':'no type'}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'text','text':5}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'document','source':{}}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'image','source':{'type':'file'}}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'image'}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':1}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':'t','content':7}]}]}",
		"{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'t','name':'n'}]}]}",
		"{'messages':[{'role':'assistant','content':[{'type':'server_tool_use','id':'t'}]}]}",
		"{'messages':[],'system':5}", "{'messages':[],'system':[{'type':'text'}]}",
		"{'messages':[],'tools':{}}", "{'messages':[],'tools':[{'input_schema':{}}]}",
		"{'messages':[],'tools':[{'name':'f','input_schema':{}}],'tool_choice':'auto'}",
		"{'messages':[],'tools':[{'name':'f','input_schema':{}}],'tool_choice':{'type':'tool'}}",
		"{'messages':[],'temperature':'hot'}", "{'messages':[],'max_tokens':true}",
		"{'messages':[],'stop_sequences':'END'}", "{'messages':[],'stop_sequences':[1]}",
		"{'messages':[],'thinking':'on'}", "{'messages':[],'thinking':{'type':'enabled'}}",
		"{'messages':[{'role':'user','content':'a','content':'b'}]}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		const char *err;
		cr_expect_eq(req_a2o(J(bad[i]), true, &o, &err), -EBADMSG, "accepted: %s", bad[i]);
		cr_expect(err && *err, "no reason for: %s", bad[i]);
	}
}

/* ---- response, OpenAI → Anthropic -------------------------------------- */

static const char *const OAI_RESP =
	"{'id':'chatcmpl-1','object':'chat.completion','created':1,'model':'gpt-4o','choices':[{'index':0,"
	"'message':{'role':'assistant','content':'Hello','reasoning_content':'think','tool_calls':["
	"{'id':'call_1','type':'function','function':{'name':'f','arguments':'{\\'a\\':1}'}},"
	"{'id':'call_2','type':'function','function':{'name':'g','arguments':'not json'}}]},"
	"'finish_reason':'tool_calls'}],'usage':{'prompt_tokens':100,'completion_tokens':20,"
	"'total_tokens':120,'prompt_tokens_details':{'cached_tokens':60}}}";

static const char *const OAI_RESP_ANT =
	"{'id':'chatcmpl-1','type':'message','role':'assistant','model':'claude-x','content':["
	"{'type':'thinking','thinking':'think','signature':''},{'type':'text','text':'Hello'},"
	"{'type':'tool_use','id':'call_1','name':'f','input':{'a':1}},"
	"{'type':'tool_use','id':'call_2','name':'g','input':{}}],'stop_reason':'tool_use',"
	"'stop_sequence':null,'usage':{'input_tokens':40,'output_tokens':20,"
	"'cache_read_input_tokens':60,'cache_creation_input_tokens':0}}";

static int resp_o2a(const char *body, struct sb *o, struct xlate_usage *u)
{
	struct guard g;
	char *p = guard_put(&g, body, strlen(body));
	sb_init(o, &A, 64);
	int rc = xlate_resp_o2a(&A, p, strlen(body), "claude-x", o, u);
	guard_free(&g);
	return rc;
}

Test(xlate, resp_o2a_golden)
{
	struct sb o;
	struct xlate_usage u;
	cr_assert_eq(resp_o2a(J(OAI_RESP), &o, &u), 0);
	cr_assert_str_eq(Z(&o), J(OAI_RESP_ANT));
	assert_json(&o);
	cr_assert(u.in == 40 && u.out == 20 && u.cache_read == 60 && u.cache_write == 0);
}

Test(xlate, resp_o2a_finish_reasons)
{
	static const struct { const char *fr, *calls, *want; } t[] = {
		{ "'stop'", "null", "end_turn" },       { "'length'", "null", "max_tokens" },
		{ "'content_filter'", "null", "end_turn" }, { "null", "null", "end_turn" },
		{ "'stop'", "[{'id':'c','function':{'name':'f','arguments':''}}]", "tool_use" },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		char body[256], want[64];
		struct sb o;
		struct xlate_usage u;
		snprintf(body, sizeof(body), "{'choices':[{'message':{'content':'x','tool_calls':%s},"
					     "'finish_reason':%s}]}", t[i].calls, t[i].fr);
		cr_assert_eq(resp_o2a(J(body), &o, &u), 0, "%s", body);
		snprintf(want, sizeof(want), "'stop_reason':'%s'", t[i].want);
		cr_assert(strstr(Z(&o), J(want)), "%s -> %s", body, Z(&o));
		cr_assert(strstr(Z(&o), J("'id':'msg_bifrost'")));
		assert_json(&o);
	}
}

Test(xlate, resp_o2a_rejects_bad_shapes)
{
	static const char *const bad[] = {
		"", "{", "{}", "{'choices':{}}", "{'choices':[]}", "{'choices':[1]}", "{'choices':[{}]}",
		"{'choices':[{'message':5}]}", "{'choices':[{'message':{'content':5}}]}",
		"{'choices':[{'message':{'content':['a']}}]}", "{'choices':[{'message':{'tool_calls':{}}}]}",
		"{'choices':[{'message':{'tool_calls':[{'id':'c'}]}}]}",
		"{'choices':[{'message':{'tool_calls':[{'id':5,'function':{'name':'f'}}]}}]}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		struct xlate_usage u;
		cr_expect_eq(resp_o2a(J(bad[i]), &o, &u), -EBADMSG, "accepted: %s", bad[i]);
	}
}

/* ---- stream, OpenAI → Anthropic ---------------------------------------- */

#define EV(name, data) "event: " name "\ndata: " data "\n\n"
#define MSG_START EV("message_start", "{'type':'message_start','message':{'id':'msg_1','type':'message'," \
	"'role':'assistant','model':'claude-x','content':[],'stop_reason':null,'stop_sequence':null,"         \
	"'usage':{'input_tokens':0,'output_tokens':0,'cache_read_input_tokens':0,"                            \
	"'cache_creation_input_tokens':0}}}")
#define BLOCK_START(i, blk) EV("content_block_start", "{'type':'content_block_start','index':" #i \
	",'content_block':" blk "}")
#define DELTA(i, d) EV("content_block_delta", "{'type':'content_block_delta','index':" #i ",'delta':" d "}")
#define BLOCK_STOP(i) EV("content_block_stop", "{'type':'content_block_stop','index':" #i "}")
#define MSG_END(stop, in, out, cr) EV("message_delta", "{'type':'message_delta','delta':{'stop_reason':'" \
	stop "','stop_sequence':null},'usage':{'input_tokens':" #in ",'output_tokens':" #out                  \
	",'cache_read_input_tokens':" #cr ",'cache_creation_input_tokens':0}}")                                \
	EV("message_stop", "{'type':'message_stop'}")

#define CHUNK(delta, fr) "{'id':'c','object':'chat.completion.chunk','choices':[{'index':0,'delta':" \
	delta ",'finish_reason':" fr "}]}"

static const char *const OAI_STREAM[] = {
	CHUNK("{'role':'assistant','content':''}", "null"),
	CHUNK("{'content':'Hi'}", "null"),
	CHUNK("{'content':' there'}", "null"),
	CHUNK("{'tool_calls':[{'index':0,'id':'call_a','type':'function','function':{'name':'f','arguments':''}}]}", "null"),
	CHUNK("{'tool_calls':[{'index':0,'function':{'arguments':'{\\'a\\':'}}]}", "null"),
	CHUNK("{'tool_calls':[{'index':0,'function':{'arguments':'1}'}}]}", "null"),
	CHUNK("{'tool_calls':[{'index':1,'id':'call_b','type':'function','function':{'name':'g','arguments':''}}]}", "null"),
	CHUNK("{'tool_calls':[{'index':1,'function':{'arguments':'{}'}}]}", "null"),
	CHUNK("{}", "'tool_calls'"),
	"{'id':'c','choices':[],'usage':{'prompt_tokens':10,'completion_tokens':5,"
	"'prompt_tokens_details':{'cached_tokens':4}}}",
	"[DONE]",
};

static const char *const OAI_STREAM_ANT =
	MSG_START
	BLOCK_START(0, "{'type':'text','text':''}")
	DELTA(0, "{'type':'text_delta','text':'Hi'}")
	DELTA(0, "{'type':'text_delta','text':' there'}")
	BLOCK_STOP(0)
	BLOCK_START(1, "{'type':'tool_use','id':'call_a','name':'f','input':{}}")
	DELTA(1, "{'type':'input_json_delta','partial_json':'{\\'a\\':'}")
	DELTA(1, "{'type':'input_json_delta','partial_json':'1}'}")
	BLOCK_STOP(1)
	BLOCK_START(2, "{'type':'tool_use','id':'call_b','name':'g','input':{}}")
	DELTA(2, "{'type':'input_json_delta','partial_json':'{}'}")
	BLOCK_STOP(2)
	MSG_END("tool_use", 6, 5, 4);

/* Feed chunks (each at a guard page, CRLF-free data payloads) and end. */
static int o2a_run(const char *const *ch, size_t n, const char *error, struct sb *o, struct xlate_o2a *s)
{
	int rc = 0;
	xlate_o2a_init(s, "claude-x", "msg_1");
	sb_init(o, &A, 64);
	for (size_t i = 0; i < n && !rc; i++) {
		struct guard g;
		char *d = J(ch[i]);
		char *p = guard_put(&g, d, strlen(d));
		rc = xlate_o2a_chunk(s, &A, p, strlen(d), o);
		guard_free(&g);
	}
	if (!rc)
		xlate_o2a_end(s, error, o);
	return rc;
}

Test(xlate, stream_o2a_text_and_parallel_tools_golden)
{
	struct sb o;
	struct xlate_o2a s;
	cr_assert_eq(o2a_run(OAI_STREAM, ARRAY_LEN(OAI_STREAM), NULL, &o, &s), 0);
	cr_assert_str_eq(Z(&o), J(OAI_STREAM_ANT));
	assert_events(&o, true);
	cr_assert(s.usage.in == 6 && s.usage.out == 5 && s.usage.cache_read == 4);
}

Test(xlate, stream_o2a_first_text_delta_is_immediate)
{
	struct sb o;
	struct xlate_o2a s;
	xlate_o2a_init(&s, "claude-x", "msg_1");
	sb_init(&o, &A, 64);
	char *d = J(CHUNK("{'role':'assistant','content':'Hi'}", "null"));
	cr_assert_eq(xlate_o2a_chunk(&s, &A, d, strlen(d), &o), 0);
	cr_assert_str_eq(Z(&o), J(MSG_START BLOCK_START(0, "{'type':'text','text':''}")
				  DELTA(0, "{'type':'text_delta','text':'Hi'}")));
}

Test(xlate, stream_o2a_thinking_then_text_without_finish_reason)
{
	static const char *const ch[] = {
		CHUNK("{'reasoning_content':'hm'}", "null"),
		CHUNK("{'content':'ok'}", "null"),
	};
	struct sb o;
	struct xlate_o2a s;
	cr_assert_eq(o2a_run(ch, ARRAY_LEN(ch), NULL, &o, &s), 0);
	cr_assert_str_eq(Z(&o), J(MSG_START
		BLOCK_START(0, "{'type':'thinking','thinking':'','signature':''}")
		DELTA(0, "{'type':'thinking_delta','thinking':'hm'}") BLOCK_STOP(0)
		BLOCK_START(1, "{'type':'text','text':''}")
		DELTA(1, "{'type':'text_delta','text':'ok'}") BLOCK_STOP(1)
		MSG_END("end_turn", 0, 0, 0)));
	assert_events(&o, true);
}

Test(xlate, stream_o2a_finish_held_until_done_or_usage)
{
	static const char *const held[] = { CHUNK("{'content':'a'}", "null"), CHUNK("{}", "'length'") };
	struct sb o;
	struct xlate_o2a s;
	xlate_o2a_init(&s, "claude-x", "msg_1");
	sb_init(&o, &A, 64);
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(xlate_o2a_chunk(&s, &A, J(held[i]), strlen(held[i]), &o), 0);
	cr_assert_null(strstr(Z(&o), "message_delta"), "message_delta must wait for usage");
	cr_assert(strstr(Z(&o), "content_block_stop"), "the block stops at finish_reason");
	cr_assert_eq(xlate_o2a_chunk(&s, &A, "[DONE]\r\n", 8, &o), 0);
	cr_assert(strstr(Z(&o), J("'stop_reason':'max_tokens'")));
	size_t len = o.len;
	xlate_o2a_end(&s, NULL, &o);
	cr_assert_eq(o.len, len, "nothing after message_stop");

	/* usage on the finishing chunk itself: finish at once */
	static const char *const same[] = {
		"{'choices':[{'index':0,'delta':{'content':'a'},'finish_reason':'stop'}],"
		"'usage':{'prompt_tokens':3,'completion_tokens':1}}",
	};
	cr_assert_eq(o2a_run(same, 1, NULL, &o, &s), 0);
	cr_assert(strstr(Z(&o), J(MSG_END("end_turn", 3, 1, 0))));
	assert_events(&o, true);
}

Test(xlate, stream_o2a_errors)
{
	static const char *const ch[] = { CHUNK("{'content':'par'}", "null") };
	struct sb o;
	struct xlate_o2a s;
	cr_assert_eq(o2a_run(ch, 1, "upstream reset \"x\"", &o, &s), 0);
	cr_assert_str_eq(Z(&o), J(MSG_START BLOCK_START(0, "{'type':'text','text':''}")
		DELTA(0, "{'type':'text_delta','text':'par'}")
		EV("error", "{'type':'error','error':{'type':'api_error','message':'upstream reset \\'x\\''}}")));
	assert_events(&o, true);

	static const char *const mid[] = { CHUNK("{'content':'a'}", "null"),
					   "{'error':{'message':'Overloaded','type':'server_error'}}",
					   CHUNK("{'content':'ignored'}", "null"), "[DONE]" };
	cr_assert_eq(o2a_run(mid, ARRAY_LEN(mid), NULL, &o, &s), 0);
	cr_assert(s.done);
	cr_assert(strstr(Z(&o), J("event: error\ndata: {'type':'error','error':{'type':'api_error','message':'Overloaded'}}\n\n")));
	cr_assert_null(strstr(Z(&o), "ignored"));
	cr_assert_null(strstr(Z(&o), "message_stop"));
}

Test(xlate, stream_o2a_rejects_bad_chunks)
{
	static const char *const bad[] = {
		"", "data", "{", "[1]", "{'choices':[{'delta':5}]}",
		"{'choices':[{'delta':{'tool_calls':[{'index':0,'id':5}]}}]}",
		"{'choices':[{'delta':{'tool_calls':[{'index':0,'function':{'arguments':{}}}]}}]}",
		"{'choices':[{'delta':{'tool_calls':[5]}}]}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		struct xlate_o2a s;
		const char *one[] = { bad[i] };
		cr_expect_eq(o2a_run(one, 1, NULL, &o, &s), -EBADMSG, "accepted: %s", bad[i]);
		xlate_o2a_end(&s, "bad chunk", &o);
		assert_events(&o, true);
	}
}

/* ---- errors ------------------------------------------------------------ */

Test(xlate, error_o2a_types_and_messages)
{
	static const struct { int status; const char *type; } t[] = {
		{ 400, "invalid_request_error" }, { 401, "authentication_error" }, { 403, "permission_error" },
		{ 404, "not_found_error" }, { 413, "request_too_large" }, { 429, "rate_limit_error" },
		{ 500, "api_error" }, { 529, "overloaded_error" }, { 502, "api_error" }, { 418, "api_error" },
	};
	const char *body = J("{'error':{'message':'Rate \\'limit\\'','type':'requests','param':null,'code':'x'}}");
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct sb o;
		char want[160];
		sb_init(&o, &A, 16);
		xlate_error_o2a(body, strlen(body), t[i].status, &A, &o);
		snprintf(want, sizeof(want), "{'type':'error','error':{'type':'%s','message':'Rate \\'limit\\''}}",
			 t[i].type);
		cr_assert_str_eq(Z(&o), J(want));
	}
	struct sb o;
	sb_init(&o, &A, 16);
	xlate_error_o2a("<html>\"bad\"</html>", 18, 502, &A, &o);
	cr_assert_str_eq(Z(&o), J("{'type':'error','error':{'type':'api_error','message':'<html>\\'bad\\'</html>'}}"));
	sb_init(&o, &A, 16);
	xlate_error_o2a("", 0, 529, &A, &o);
	cr_assert_str_eq(Z(&o), J("{'type':'error','error':{'type':'overloaded_error','message':'upstream returned HTTP 529'}}"));
	sb_init(&o, &A, 16);
	xlate_error_o2a(J("{'error':'plain'}"), 17, 400, &A, &o);
	cr_assert_str_eq(Z(&o), J("{'type':'error','error':{'type':'invalid_request_error','message':'plain'}}"));
}

Test(xlate, error_body_fallback_is_cut_on_utf8_boundary)
{
	char body[600];
	memset(body, 'a', sizeof(body));
	memcpy(body + 511, "\xc3\xa9", 2); /* é straddles byte 512 */
	struct sb o;
	sb_init(&o, &A, 16);
	xlate_error_o2a(body, sizeof(body), 500, &A, &o);
	assert_json(&o);
	cr_assert(strstr(Z(&o), "aaa'}}") == NULL && strstr(Z(&o), "a\"}}"));
	cr_assert_null(strstr(Z(&o), "\xc3"));
}

Test(xlate, error_a2o)
{
	const char *body = J("{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}");
	struct sb o;
	sb_init(&o, &A, 16);
	xlate_error_a2o(body, strlen(body), 529, &A, &o);
	cr_assert_str_eq(Z(&o), J("{'error':{'message':'Overloaded','type':'overloaded_error','param':null,'code':null}}"));
	sb_init(&o, &A, 16);
	xlate_error_a2o("oops", 4, 429, &A, &o);
	cr_assert_str_eq(Z(&o), J("{'error':{'message':'oops','type':'rate_limit_error','param':null,'code':null}}"));
}

/* ---- token estimate ---------------------------------------------------- */

Test(xlate, count_tokens)
{
	const char *b = J("{'model':'x','system':'abcd','messages':[{'role':'user','content':'hello world'}]}");
	/* abcd(4) + role(4) user(4) content(7) hello world(11) = 30 → 8 */
	cr_assert_eq(xlate_count_tokens(b, strlen(b)), 8);
	b = J("{'messages':[{'role':'user','content':[{'type':'image','source':{'type':'base64',"
	      "'media_type':'image/png','data':'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'}}]}]}");
	long n = xlate_count_tokens(b, strlen(b));
	cr_assert(n > 1600 && n < 1650, "%ld", n);
	cr_assert_eq(xlate_count_tokens("{}", 2), 0);
	cr_assert_eq(xlate_count_tokens("{", 1), -EBADMSG);
	cr_assert_eq(xlate_count_tokens("", 0), -EBADMSG);
}

/* ---- hostile input ----------------------------------------------------- */

Test(xlate, every_truncation_is_rejected_cleanly)
{
	const char *docs[] = { J(CC_REQ), J(OAI_RESP) };
	for (size_t d = 0; d < ARRAY_LEN(docs); d++) {
		size_t n = strlen(docs[d]);
		for (size_t k = 0; k < n; k++) {
			struct arena t;
			struct guard g;
			struct sb o;
			struct xlate_usage u;
			struct xlate_o2a s;
			const char *err;
			char *p = guard_put(&g, docs[d], k);
			arena_init(&t, NULL);
			sb_init(&o, &t, 64);
			int rc = d == 0 ? xlate_req_a2o(&t, p, k, "m", true, &o, &err)
					: xlate_resp_o2a(&t, p, k, "m", &o, &u);
			cr_expect_eq(rc, -EBADMSG, "doc %zu prefix %zu accepted", d, k);
			xlate_o2a_init(&s, "m", "id");
			cr_expect_eq(xlate_o2a_chunk(&s, &t, p, k, &o), -EBADMSG);
			guard_free(&g);
			arena_reset(&t);
		}
	}
}

Test(xlate, deep_nesting)
{
	size_t depth = 100000;
	struct sb b;
	sb_init(&b, &A, 64);
	sb_puts(&b, "{\"messages\":[{\"role\":\"user\",\"content\":");
	for (size_t i = 0; i < depth; i++)
		sb_puts(&b, "[");
	for (size_t i = 0; i < depth; i++)
		sb_puts(&b, "]");
	sb_puts(&b, "}]}");
	struct sb o;
	const char *err;
	sb_init(&o, &A, 64);
	cr_assert_eq(xlate_req_a2o(&A, b.p, b.len, "m", false, &o, &err), -EBADMSG);
	struct xlate_o2a s;
	xlate_o2a_init(&s, "m", "id");
	cr_assert_eq(xlate_o2a_chunk(&s, &A, b.p, b.len, &o), -EBADMSG);
	cr_assert_eq(xlate_count_tokens(b.p, b.len), -EBADMSG);

	/* allowed depth inside a tool input is copied byte-exact */
	sb_init(&b, &A, 64);
	sb_puts(&b, "{\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
		    "\"name\":\"n\",\"input\":{\"a\":");
	for (int i = 0; i < 200; i++)
		sb_puts(&b, "[");
	for (int i = 0; i < 200; i++)
		sb_puts(&b, "]");
	sb_puts(&b, "}}]}]}");
	sb_init(&o, &A, 64);
	cr_assert_eq(xlate_req_a2o(&A, b.p, b.len, "m", false, &o, &err), 0, "%s", err);
	assert_json(&o);
}

/* ---- allocation failure ------------------------------------------------ */

typedef int (*xlate_op)(struct arena *a, struct sb *o);

static int op_req_a2o(struct arena *a, struct sb *o)
{
	const char *err;
	const char *b = J(CC_REQ);
	return xlate_req_a2o(a, b, strlen(b), "gpt-4o", true, o, &err);
}

static int op_resp_o2a(struct arena *a, struct sb *o)
{
	struct xlate_usage u;
	const char *b = J(OAI_RESP);
	return xlate_resp_o2a(a, b, strlen(b), "claude-x", o, &u);
}

static int op_stream_o2a(struct arena *a, struct sb *o)
{
	struct xlate_o2a s;
	xlate_o2a_init(&s, "claude-x", "msg_1");
	for (size_t i = 0; i < ARRAY_LEN(OAI_STREAM); i++) {
		const char *d = J(OAI_STREAM[i]);
		int rc = xlate_o2a_chunk(&s, a, d, strlen(d), o);
		if (rc)
			return rc;
	}
	xlate_o2a_end(&s, NULL, o);
	return o->oom ? -ENOMEM : 0;
}

static int op_error_o2a(struct arena *a, struct sb *o)
{
	xlate_error_o2a("<html>x</html>", 14, 503, a, o);
	return o->oom ? -ENOMEM : 0;
}

/* For N = 0.. allocations allowed: rc < 0, or exactly the golden output. */
static void inject(xlate_op op, const char *golden)
{
	bool passed = false;
	for (long n = 0; n < 400 && !passed; n++) {
		struct arena a;
		struct sb o;
		arena_init(&a, NULL);
		a.fail_after = n;
		sb_init(&o, &a, 16);
		int rc = op(&a, &o);
		if (rc == 0) {
			cr_assert(!o.oom);
			cr_assert_eq(o.len, strlen(golden), "n=%ld", n);
			cr_assert(memcmp(o.p, golden, o.len) == 0, "n=%ld", n);
			passed = true;
		} else {
			cr_assert(rc == -ENOMEM || o.oom, "n=%ld rc=%d", n, rc);
		}
		arena_reset(&a);
	}
	cr_assert(passed, "never succeeded within 400 allocations");
}

Test(xlate, arena_failure_injection_o2a)
{
	inject(op_req_a2o, J(CC_REQ_OAI));
	inject(op_resp_o2a, J(OAI_RESP_ANT));
	inject(op_stream_o2a, J(OAI_STREAM_ANT));
	inject(op_error_o2a, J("{'type':'error','error':{'type':'api_error','message':'<html>x</html>'}}"));
}

/* ---- request, OpenAI → Anthropic --------------------------------------- */

static const char *const OAI_REQ =
	"{'model':'gpt','messages':[{'role':'system','content':'Be brief.'},"
	"{'role':'developer','content':[{'type':'text','text':'Dev.'}]},"
	"{'role':'user','content':[{'type':'text','text':'look'},{'type':'image_url','image_url':"
	"{'url':'data:image/png;base64,AAAA','detail':'high'}},{'type':'image_url','image_url':"
	"{'url':'https://x/y.png'}}]},"
	"{'role':'assistant','content':null,'tool_calls':[{'id':'call_1','type':'function','function':"
	"{'name':'f','arguments':'{\\'a\\':1}'}},{'id':'call_2','type':'function','function':"
	"{'name':'g','arguments':''}}]},"
	"{'role':'tool','tool_call_id':'call_1','content':'one'},"
	"{'role':'tool','tool_call_id':'call_2','content':[{'type':'text','text':'two'}]},"
	"{'role':'assistant','content':'done'},{'role':'assistant','content':''},"
	"{'role':'user','content':'thanks'}],"
	"'max_completion_tokens':30000,'temperature':0.2,'stop':'END','stream':true,"
	"'stream_options':{'include_usage':true},'user':'u1',"
	"'tools':[{'type':'function','function':{'name':'f','description':'F','parameters':{'type':'object'}}},"
	"{'type':'function','function':{'name':'g'}}],"
	"'tool_choice':'required','parallel_tool_calls':false,'reasoning_effort':'high'}";

static const char *const OAI_REQ_ANT =
	"{'model':'claude-sonnet','max_tokens':30000,'system':'Be brief.\\n\\nDev.','messages':["
	"{'role':'user','content':[{'type':'text','text':'look'},{'type':'image','source':{'type':'base64',"
	"'media_type':'image/png','data':'AAAA'}},{'type':'image','source':{'type':'url','url':'https://x/y.png'}}]},"
	"{'role':'assistant','content':[{'type':'tool_use','id':'call_1','name':'f','input':{'a':1}},"
	"{'type':'tool_use','id':'call_2','name':'g','input':{}}]},"
	"{'role':'user','content':[{'type':'tool_result','tool_use_id':'call_1','content':'one'},"
	"{'type':'tool_result','tool_use_id':'call_2','content':'two'}]},"
	"{'role':'assistant','content':[{'type':'text','text':'done'}]},"
	"{'role':'user','content':'thanks'}],"
	"'stop_sequences':['END'],'stream':true,'metadata':{'user_id':'u1'},"
	"'thinking':{'type':'enabled','budget_tokens':24576},"
	"'tools':[{'name':'f','description':'F','input_schema':{'type':'object'}},"
	"{'name':'g','input_schema':{'type':'object','properties':{}}}],"
	"'tool_choice':{'type':'any','disable_parallel_tool_use':true}}";

static int req_o2a(const char *body, struct sb *o, const char **err)
{
	struct guard g;
	char *p = guard_put(&g, body, strlen(body));
	sb_init(o, &A, 64);
	*err = NULL;
	int rc = xlate_req_o2a(&A, p, strlen(body), "claude-sonnet", o, err);
	guard_free(&g);
	return rc;
}

Test(xlate, req_o2a_golden)
{
	struct sb o;
	const char *err;
	cr_assert_eq(req_o2a(J(OAI_REQ), &o, &err), 0, "%s", err);
	cr_assert_str_eq(Z(&o), J(OAI_REQ_ANT));
	assert_json(&o);
}

Test(xlate, req_o2a_defaults_and_choices)
{
	static const struct { const char *extra, *want; } t[] = {
		{ "", "{'model':'claude-sonnet','max_tokens':4096,'messages':[{'role':'user','content':'hi'}]}" },
		{ ",'max_tokens':100,'stop':['a','b'],'temperature':0.3,'top_p':0.9",
		  "{'model':'claude-sonnet','max_tokens':100,'messages':[{'role':'user','content':'hi'}],"
		  "'temperature':0.3,'top_p':0.9,'stop_sequences':['a','b']}" },
		/* budget clamped below max_tokens; dropped under 1024 */
		{ ",'max_tokens':5000,'reasoning_effort':'high'",
		  "{'model':'claude-sonnet','max_tokens':5000,'messages':[{'role':'user','content':'hi'}],"
		  "'thinking':{'type':'enabled','budget_tokens':4999}}" },
		{ ",'max_tokens':1000,'reasoning_effort':'low'",
		  "{'model':'claude-sonnet','max_tokens':1000,'messages':[{'role':'user','content':'hi'}]}" },
		{ ",'reasoning_effort':'medium','stop':[]",
		  "{'model':'claude-sonnet','max_tokens':4096,'messages':[{'role':'user','content':'hi'}],"
		  "'thinking':{'type':'enabled','budget_tokens':4095}}" },
		{ ",'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':{'type':'function','function':{'name':'f'}}",
		  "{'model':'claude-sonnet','max_tokens':4096,'messages':[{'role':'user','content':'hi'}],"
		  "'tools':[{'name':'f','input_schema':{'type':'object','properties':{}}}],"
		  "'tool_choice':{'type':'tool','name':'f'}}" },
		{ ",'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':'none'",
		  "{'model':'claude-sonnet','max_tokens':4096,'messages':[{'role':'user','content':'hi'}],"
		  "'tools':[{'name':'f','input_schema':{'type':'object','properties':{}}}],'tool_choice':{'type':'none'}}" },
		{ ",'tools':[{'type':'function','function':{'name':'f'}}],'parallel_tool_calls':false",
		  "{'model':'claude-sonnet','max_tokens':4096,'messages':[{'role':'user','content':'hi'}],"
		  "'tools':[{'name':'f','input_schema':{'type':'object','properties':{}}}],"
		  "'tool_choice':{'type':'auto','disable_parallel_tool_use':true}}" },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		char body[512];
		struct sb o;
		const char *err;
		snprintf(body, sizeof(body), "{'model':'x','messages':[{'role':'user','content':'hi'}]%s}", t[i].extra);
		cr_assert_eq(req_o2a(J(body), &o, &err), 0, "%s: %s", body, err);
		cr_expect_str_eq(Z(&o), J(t[i].want), "%s", body);
		assert_json(&o);
	}
}

Test(xlate, req_o2a_rejects_bad_shapes)
{
	static const char *const bad[] = {
		"", "[]", "{'messages':'hi'}", "{}", "{'messages':[5]}", "{'messages':[{'content':'x'}]}",
		"{'messages':[{'role':'function','content':'x'}]}", "{'messages':[{'role':'user','content':5}]}",
		"{'messages':[{'role':'user','content':[{'type':'input_audio'}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'image_url','image_url':{}}]}]}",
		"{'messages':[{'role':'user','content':[{'type':'image_url','image_url':{'url':'data:image/png,AAAA'}}]}]}",
		"{'messages':[{'role':'assistant','tool_calls':{}}]}",
		"{'messages':[{'role':'assistant','tool_calls':[{'id':'c'}]}]}",
		"{'messages':[{'role':'tool','content':'x'}]}", "{'messages':[{'role':'tool','tool_call_id':'c','content':5}]}",
		"{'messages':[{'role':'system','content':5}]}", "{'messages':[],'max_tokens':'9'}",
		"{'messages':[],'max_tokens':0}", "{'messages':[],'temperature':'x'}", "{'messages':[],'stop':5}",
		"{'messages':[],'stop':[5]}", "{'messages':[],'tools':{}}", "{'messages':[],'tools':[{'name':'f'}]}",
		"{'messages':[],'tools':[{'type':'function','function':{}}]}",
		"{'messages':[],'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':'any'}",
		"{'messages':[],'user':'a','user':'b'}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		const char *err;
		cr_expect_eq(req_o2a(J(bad[i]), &o, &err), -EBADMSG, "accepted: %s", bad[i]);
		cr_expect(err && *err, "no reason for: %s", bad[i]);
	}
}

/* ---- response, Anthropic → OpenAI -------------------------------------- */

static const char *const ANT_RESP =
	"{'id':'msg_1','type':'message','role':'assistant','model':'claude','content':["
	"{'type':'thinking','thinking':'hm','signature':'sig'},{'type':'text','text':'Hi'},"
	"{'type':'tool_use','id':'toolu_1','name':'f','input':{'a':[1,2]}}],'stop_reason':'tool_use',"
	"'stop_sequence':null,'usage':{'input_tokens':10,'cache_read_input_tokens':50,"
	"'cache_creation_input_tokens':5,'output_tokens':7}}";

static const char *const ANT_RESP_OAI =
	"{'id':'msg_1','object':'chat.completion','created':1700000000,'model':'gpt-x','choices':[{'index':0,"
	"'message':{'role':'assistant','content':'Hi','reasoning_content':'hm','tool_calls':[{'id':'toolu_1',"
	"'type':'function','function':{'name':'f','arguments':'{\\'a\\':[1,2]}'}}]},'finish_reason':'tool_calls'}],"
	"'usage':{'prompt_tokens':65,'completion_tokens':7,'total_tokens':72,'prompt_tokens_details':{'cached_tokens':50}}}";

static int resp_a2o(const char *body, struct sb *o, struct xlate_usage *u)
{
	struct guard g;
	char *p = guard_put(&g, body, strlen(body));
	sb_init(o, &A, 64);
	int rc = xlate_resp_a2o(&A, p, strlen(body), "gpt-x", 1700000000, o, u);
	guard_free(&g);
	return rc;
}

Test(xlate, resp_a2o_golden)
{
	struct sb o;
	struct xlate_usage u;
	cr_assert_eq(resp_a2o(J(ANT_RESP), &o, &u), 0);
	cr_assert_str_eq(Z(&o), J(ANT_RESP_OAI));
	assert_json(&o);
	cr_assert(u.in == 10 && u.out == 7 && u.cache_read == 50 && u.cache_write == 5);
}

Test(xlate, resp_a2o_stop_reasons_and_empty)
{
	static const struct { const char *sr, *want; } t[] = {
		{ "end_turn", "stop" }, { "stop_sequence", "stop" }, { "max_tokens", "length" },
		{ "tool_use", "tool_calls" }, { "pause_turn", "stop" }, { "refusal", "content_filter" },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		char body[160], want[160];
		struct sb o;
		struct xlate_usage u;
		snprintf(body, sizeof(body), "{'content':[],'stop_reason':'%s'}", t[i].sr);
		cr_assert_eq(resp_a2o(J(body), &o, &u), 0);
		snprintf(want, sizeof(want), "{'id':'chatcmpl-bifrost','object':'chat.completion','created':1700000000,"
			 "'model':'gpt-x','choices':[{'index':0,'message':{'role':'assistant','content':null},"
			 "'finish_reason':'%s'}],", t[i].want);
		cr_assert(!strncmp(Z(&o), J(want), strlen(want)), "%s", Z(&o));
	}
	static const char *const bad[] = { "", "{}", "{'content':'x'}", "{'content':[5]}",
					   "{'content':[{'type':'tool_use','id':'t','name':'n'}]}",
					   "{'content':[{'type':'text','text':1}]}" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct sb o;
		struct xlate_usage u;
		cr_expect_eq(resp_a2o(J(bad[i]), &o, &u), -EBADMSG, "accepted: %s", bad[i]);
	}
}

/* ---- stream, Anthropic → OpenAI ---------------------------------------- */

static const char *const ANT_STREAM[][2] = {
	{ "message_start", "{'type':'message_start','message':{'id':'msg_1','type':'message','role':'assistant',"
			   "'content':[],'model':'claude','stop_reason':null,'usage':{'input_tokens':10,"
			   "'cache_read_input_tokens':3,'cache_creation_input_tokens':0,'output_tokens':1}}}" },
	{ "ping", "{'type':'ping'}" },
	{ "content_block_start", "{'type':'content_block_start','index':0,'content_block':{'type':'thinking','thinking':''}}" },
	{ "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'thinking_delta','thinking':'hm'}}" },
	{ "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'signature_delta','signature':'x'}}" },
	{ "content_block_stop", "{'type':'content_block_stop','index':0}" },
	{ "content_block_start", "{'type':'content_block_start','index':1,'content_block':{'type':'text','text':''}}" },
	{ "content_block_delta", "{'type':'content_block_delta','index':1,'delta':{'type':'text_delta','text':'Hi'}}" },
	{ "content_block_stop", "{'type':'content_block_stop','index':1}" },
	{ "content_block_start", "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use',"
				 "'id':'toolu_1','name':'f','input':{}}}" },
	{ "content_block_delta", "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta','partial_json':''}}" },
	{ "content_block_delta", "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
				 "'partial_json':'{\\'a\\':1}'}}" },
	{ "content_block_stop", "{'type':'content_block_stop','index':2}" },
	{ "content_block_start", "{'type':'content_block_start','index':3,'content_block':{'type':'tool_use',"
				 "'id':'toolu_2','name':'g','input':{}}}" },
	{ "content_block_delta", "{'type':'content_block_delta','index':3,'delta':{'type':'input_json_delta','partial_json':'{}'}}" },
	{ "content_block_stop", "{'type':'content_block_stop','index':3}" },
	{ "message_delta", "{'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},"
			   "'usage':{'output_tokens':9}}" },
	{ "message_stop", "{'type':'message_stop'}" },
};

#define OC(delta, fr) "data: {'id':'chatcmpl-1','object':'chat.completion.chunk','created':0,'model':'gpt-x'," \
	"'choices':[{'index':0,'delta':" delta ",'finish_reason':" fr "}]}\n\n"

static const char *const ANT_STREAM_OAI =
	OC("{'role':'assistant','content':''}", "null")
	OC("{'reasoning_content':'hm'}", "null")
	OC("{'content':'Hi'}", "null")
	OC("{'tool_calls':[{'index':0,'id':'toolu_1','type':'function','function':{'name':'f','arguments':''}}]}", "null")
	OC("{'tool_calls':[{'index':0,'function':{'arguments':'{\\'a\\':1}'}}]}", "null")
	OC("{'tool_calls':[{'index':1,'id':'toolu_2','type':'function','function':{'name':'g','arguments':''}}]}", "null")
	OC("{'tool_calls':[{'index':1,'function':{'arguments':'{}'}}]}", "null")
	OC("{}", "'tool_calls'")
	"data: {'id':'chatcmpl-1','object':'chat.completion.chunk','created':0,'model':'gpt-x','choices':[],"
	"'usage':{'prompt_tokens':13,'completion_tokens':9,'total_tokens':22,'prompt_tokens_details':{'cached_tokens':3}}}\n\n"
	"data: [DONE]\n\n";

/* Feed events (data at a guard page; named unless `anonymous`) and end. */
static int a2o_run(const char *const (*ev)[2], size_t n, bool usage, bool anonymous, const char *error,
		   struct sb *o, struct xlate_a2o *s)
{
	int rc = 0;
	xlate_a2o_init(s, "gpt-x", "chatcmpl-1", usage);
	sb_init(o, &A, 64);
	for (size_t i = 0; i < n && !rc; i++) {
		struct guard g;
		char *d = J(ev[i][1]);
		char *p = guard_put(&g, d, strlen(d));
		rc = xlate_a2o_event(s, &A, ev[i][0], anonymous ? 0 : strlen(ev[i][0]), p, strlen(d), o);
		guard_free(&g);
	}
	if (!rc)
		xlate_a2o_end(s, error, o);
	return rc;
}

Test(xlate, stream_a2o_golden)
{
	struct sb o;
	struct xlate_a2o s;
	cr_assert_eq(a2o_run(ANT_STREAM, ARRAY_LEN(ANT_STREAM), true, false, NULL, &o, &s), 0);
	cr_assert_str_eq(Z(&o), J(ANT_STREAM_OAI));
	assert_events(&o, false);
	cr_assert(s.usage.in == 10 && s.usage.out == 9 && s.usage.cache_read == 3);
	/* Bedrock-style: no event names, the data's type decides */
	cr_assert_eq(a2o_run(ANT_STREAM, ARRAY_LEN(ANT_STREAM), true, true, NULL, &o, &s), 0);
	cr_assert_str_eq(Z(&o), J(ANT_STREAM_OAI));
}

Test(xlate, stream_a2o_without_usage_and_truncated)
{
	struct sb o;
	struct xlate_a2o s;
	/* no include_usage: no choices:[] chunk */
	cr_assert_eq(a2o_run(ANT_STREAM, ARRAY_LEN(ANT_STREAM), false, false, NULL, &o, &s), 0);
	cr_assert_null(strstr(Z(&o), "\"choices\":[]"));
	cr_assert(strstr(Z(&o), "data: [DONE]\n\n"));
	/* upstream ends after the text: finish "stop" then [DONE] */
	cr_assert_eq(a2o_run(ANT_STREAM, 8, false, false, NULL, &o, &s), 0);
	cr_assert_str_eq(Z(&o), J(OC("{'role':'assistant','content':''}", "null") OC("{'reasoning_content':'hm'}", "null")
				  OC("{'content':'Hi'}", "null") OC("{}", "'stop'") "data: [DONE]\n\n"));
}

Test(xlate, stream_a2o_errors)
{
	static const char *const err_ev[][2] = {
		{ "message_start", "{'type':'message_start','message':{'usage':{'input_tokens':1}}}" },
		{ "error", "{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}" },
		{ "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'no'}}" },
	};
	struct sb o;
	struct xlate_a2o s;
	cr_assert_eq(a2o_run(err_ev, ARRAY_LEN(err_ev), true, false, NULL, &o, &s), 0);
	cr_assert_str_eq(Z(&o), J(OC("{'role':'assistant','content':''}", "null")
		"data: {'error':{'message':'Overloaded','type':'overloaded_error','param':null,'code':null}}\n\n"));
	assert_events(&o, false);
	cr_assert_eq(a2o_run(err_ev, 1, false, false, "upstream timed out", &o, &s), 0);
	cr_assert(strstr(Z(&o), J("data: {'error':{'message':'upstream timed out','type':'api_error','param':null,'code':null}}\n\n")));
	cr_assert_null(strstr(Z(&o), "[DONE]"));

	static const char *const bad[] = { "", "x", "{", "{'type':'content_block_start','content_block':5}",
					   "{'type':'content_block_start','content_block':{'type':'tool_use','id':1}}",
					   "{'type':'content_block_delta','delta':[]}" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		const char *one[1][2] = { { "", bad[i] } };
		cr_expect_eq(a2o_run(one, 1, false, true, NULL, &o, &s), -EBADMSG, "accepted: %s", bad[i]);
	}
}

/* ---- round trips ------------------------------------------------------- */

Test(xlate, round_trip_requests)
{
	/* Anthropic → OpenAI → Anthropic keeps texts, tool calls and results */
	struct sb o, back;
	const char *err;
	cr_assert_eq(req_a2o(J(CC_REQ), false, &o, &err), 0);
	sb_init(&back, &A, 64);
	cr_assert_eq(xlate_req_o2a(&A, o.p, o.len, "claude", &back, &err), 0, "%s", err);
	assert_json(&back);
	char *z = Z(&back);
	cr_assert(strstr(z, J("'system':'You are \\'X\\'.\\nBe brief.'")), "%s", z);
	cr_assert(strstr(z, J("{'type':'tool_use','id':'toolu_1','name':'read','input':{'path':'/a b','n':[1,2]}}")), "%s", z);
	cr_assert(strstr(z, J("{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':'line1\\nline2'},"
			      "{'type':'tool_result','tool_use_id':'toolu_2','content':'Error: boom'}]}")), "%s", z);
}

/* ---- allocation failure, mirror direction ------------------------------ */

static int op_req_o2a(struct arena *a, struct sb *o)
{
	const char *err;
	const char *b = J(OAI_REQ);
	return xlate_req_o2a(a, b, strlen(b), "claude-sonnet", o, &err);
}

static int op_resp_a2o(struct arena *a, struct sb *o)
{
	struct xlate_usage u;
	const char *b = J(ANT_RESP);
	return xlate_resp_a2o(a, b, strlen(b), "gpt-x", 1700000000, o, &u);
}

static int op_stream_a2o(struct arena *a, struct sb *o)
{
	struct xlate_a2o s;
	xlate_a2o_init(&s, "gpt-x", "chatcmpl-1", true);
	for (size_t i = 0; i < ARRAY_LEN(ANT_STREAM); i++) {
		const char *d = J(ANT_STREAM[i][1]);
		int rc = xlate_a2o_event(&s, a, ANT_STREAM[i][0], strlen(ANT_STREAM[i][0]), d, strlen(d), o);
		if (rc)
			return rc;
	}
	xlate_a2o_end(&s, NULL, o);
	return o->oom ? -ENOMEM : 0;
}

static int op_error_a2o(struct arena *a, struct sb *o)
{
	const char *b = J("{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}");
	xlate_error_a2o(b, strlen(b), 529, a, o);
	return o->oom ? -ENOMEM : 0;
}

Test(xlate, arena_failure_injection_a2o)
{
	inject(op_req_o2a, J(OAI_REQ_ANT));
	inject(op_resp_a2o, J(ANT_RESP_OAI));
	inject(op_stream_a2o, J(ANT_STREAM_OAI));
	inject(op_error_a2o, J("{'error':{'message':'Overloaded','type':'overloaded_error','param':null,'code':null}}"));
}

Test(xlate, every_truncation_is_rejected_cleanly_mirror)
{
	const char *docs[] = { J(OAI_REQ), J(ANT_RESP) };
	for (size_t d = 0; d < ARRAY_LEN(docs); d++) {
		size_t n = strlen(docs[d]);
		for (size_t k = 0; k < n; k++) {
			struct arena t;
			struct guard g;
			struct sb o;
			struct xlate_usage u;
			struct xlate_a2o s;
			const char *err;
			char *p = guard_put(&g, docs[d], k);
			arena_init(&t, NULL);
			sb_init(&o, &t, 64);
			int rc = d == 0 ? xlate_req_o2a(&t, p, k, "m", &o, &err)
					: xlate_resp_a2o(&t, p, k, "m", 0, &o, &u);
			cr_expect_eq(rc, -EBADMSG, "doc %zu prefix %zu accepted", d, k);
			xlate_a2o_init(&s, "m", "id", true);
			cr_expect_eq(xlate_a2o_event(&s, &t, "", 0, p, k, &o), -EBADMSG);
			guard_free(&g);
			arena_reset(&t);
		}
	}
}

/* ---- mutation: any accepted input yields valid JSON -------------------- */

static void mutate_one(int which, const char *in, size_t n)
{
	struct arena t;
	struct sb o;
	struct xlate_usage u;
	const char *err;
	struct guard g;
	char *p = guard_put(&g, in, n);
	int rc;
	arena_init(&t, NULL);
	sb_init(&o, &t, 64);
	switch (which) {
	case 0: rc = xlate_req_a2o(&t, p, n, "m", true, &o, &err); break;
	case 1: rc = xlate_resp_o2a(&t, p, n, "m", &o, &u); break;
	case 2: rc = xlate_req_o2a(&t, p, n, "m", &o, &err); break;
	default: rc = xlate_resp_a2o(&t, p, n, "m", 0, &o, &u); break;
	}
	cr_assert(rc == 0 || rc == -EBADMSG, "rc=%d", rc);
	if (rc == 0) {
		struct json j;
		cr_assert_eq(json_parse(&j, &t, o.p, o.len), 0, "input %.*s\noutput %.*s", (int)n, in,
			     (int)o.len, o.p);
	}
	guard_free(&g);
	arena_reset(&t);
}

Test(xlate, mutations_never_produce_invalid_json)
{
	static const char alphabet[] = "{}[]\",:\\ 0aenu-.'";
	const char *docs[] = { J(CC_REQ), J(OAI_RESP), J(OAI_REQ), J(ANT_RESP) };
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	for (int d = 0; d < 4; d++) {
		size_t n = strlen(docs[d]);
		char *buf = arena_strndup(&A, docs[d], n);
		for (int round = 0; round < 3000; round++) {
			memcpy(buf, docs[d], n);
			for (int k = 0; k < 1 + round % 3; k++)
				buf[rng_next(&rng) % n] = alphabet[rng_next(&rng) % (sizeof(alphabet) - 1)];
			mutate_one(d, buf, n);
		}
	}
}

/* Claude Code 2.1 puts {"role":"system"} turns inside messages: they stay system turns. */
Test(xlate, req_a2o_system_role_inside_messages)
{
	struct arena a;
	struct sb out;
	const char *err = NULL;
	static const char body[] = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
				   "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"be brief\"}]}]}";
	arena_init(&a, NULL);
	sb_init(&out, &a, 256);
	cr_assert_eq(xlate_req_a2o(&a, body, sizeof(body) - 1, "gpt-4o", false, &out, &err), 0, "%s", err ? err : "");
	cr_assert(memmem(out.p, out.len, "{\"role\":\"system\",\"content\":\"be brief\"}", 38) != NULL, "%.*s",
		  (int)out.len, out.p);
	arena_reset(&a);
}

/* What a cut stream is billed from: generated characters, never framing. */
Test(xlate_content, chars_of_both_dialects)
{
	const char *o = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
			"\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}";
	cr_assert_eq(xlate_content_chars(o, strlen(o)), 5);
	const char *a = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
			"\"text\":\"a\\\"b\\u00e9c\"}}";
	cr_assert_eq(xlate_content_chars(a, strlen(a)), 5, "escapes count as one character");
	const char *t = "{\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"x\\\":1}\"}}";
	cr_assert_eq(xlate_content_chars(t, strlen(t)), 7);
	const char *s = "{\"type\":\"message_start\",\"message\":{\"content\":[],\"usage\":{\"output_tokens\":1}}}";
	cr_assert_eq(xlate_content_chars(s, strlen(s)), 0, "framing and arrays count nothing");
	const char *f = "{\"tool_calls\":[{\"function\":{\"name\":\"run\",\"arguments\":\"{}\"}}]}";
	cr_assert_eq(xlate_content_chars(f, strlen(f)), 2);
	cr_assert_eq(xlate_content_chars("\"text\":\"unterminated", 20), 12, "an unterminated string counts to the end");
	cr_assert_eq(xlate_content_chars("\"", 1), 0);
}

/* The Responses API: deltas count, the .done events that repeat the whole text do not. */
Test(xlate_content, chars_of_responses_deltas)
{
	const char *d = "{\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,"
			"\"content_index\":0,\"delta\":\"Hel\\nlo\",\"sequence_number\":4}";
	cr_assert_eq(xlate_delta_chars(d, strlen(d)), 6);
	const char *f = "{\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{\\\"a\\\":1}\"}";
	cr_assert_eq(xlate_delta_chars(f, strlen(f)), 7);
	const char *done = "{\"type\":\"response.output_text.done\",\"text\":\"Hello\",\"sequence_number\":5}";
	cr_assert_eq(xlate_delta_chars(done, strlen(done)), 0, "a .done event repeats the text: not counted again");
}

/* The Responses API's usage: input includes the cached part, output the reasoning tokens. */
Test(xlate_usage, responses_usage)
{
	struct arena a;
	arena_init(&a, NULL);
	const char *u = "{\"input_tokens\":1200,\"input_tokens_details\":{\"cached_tokens\":1000},"
			"\"output_tokens\":300,\"output_tokens_details\":{\"reasoning_tokens\":250},\"total_tokens\":1500}";
	struct json j;
	cr_assert_eq(json_parse(&j, &a, u, strlen(u)), 0);
	struct xlate_usage xu = { 0 };
	xlate_usage_from_r(&j, 0, &xu);
	cr_assert_eq(xu.in, 200, "uncached input");
	cr_assert_eq(xu.cache_read, 1000);
	cr_assert_eq(xu.out, 300, "reasoning tokens are output tokens");
	cr_assert_eq(xu.reasoning, 250, "and reported as such");
	cr_assert_eq(xu.cache_write, 0);
	cr_assert(!xu.clamped);
	arena_reset(&a);
}

/* The Responses API on a Chat provider: items become messages (an assistant's text and the
 * tool calls after it one message), a custom tool one string argument, reasoning dropped. */
Test(xlate_responses, request_items_to_chat)
{
	struct arena a;
	arena_init(&a, NULL);
	const char *b = "{\"model\":\"m\",\"instructions\":\"be brief\",\"input\":["
			"{\"type\":\"message\",\"role\":\"developer\",\"content\":\"rules\"},"
			"{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"look\"}]},"
			"{\"type\":\"reasoning\",\"id\":\"rs\",\"summary\":[]},"
			"{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"running\"}]},"
			"{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"},"
			"{\"type\":\"custom_tool_call\",\"call_id\":\"c2\",\"name\":\"apply_patch\",\"input\":\"*** Begin\\n\\\"q\\\"\"},"
			"{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"ok\"}],"
			"\"tools\":[{\"type\":\"custom\",\"name\":\"apply_patch\"}],\"max_output_tokens\":9}";
	struct sb o;
	sb_init(&o, &a, 256);
	struct xlate_rnames nm;
	const char *err = NULL;
	cr_assert_eq(xlate_req_r2o(&a, b, strlen(b), "up", true, &o, &nm, &err), 0, "%s", err ? err : "");
	const char *want =
		"{\"model\":\"up\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"system\","
		"\"content\":\"rules\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"}]},"
		"{\"role\":\"assistant\",\"content\":\"running\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
		"\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}},{\"id\":\"c2\",\"type\":\"function\","
		"\"function\":{\"name\":\"apply_patch\",\"arguments\":\"{\\\"input\\\":\\\"*** Begin\\\\n\\\\\\\"q\\\\\\\"\\\"}\"}}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"}],\"tools\":[{\"type\":\"function\","
		"\"function\":{\"name\":\"apply_patch\",\"parameters\":{\"type\":\"object\",\"properties\":{\"input\":"
		"{\"type\":\"string\",\"description\":\"the tool's whole input, as free text\"}},\"required\":[\"input\"],"
		"\"additionalProperties\":false}}}],\"max_tokens\":9}";
	sb_put(&o, "", 1); /* the NUL */
	cr_assert(!o.oom);
	cr_assert_str_eq(o.p, want);
	cr_assert_eq(nm.n, 1);
	const char *prev = "{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"resp_1\"}";
	sb_init(&o, &a, 64);
	cr_assert_eq(xlate_req_r2o(&a, prev, strlen(prev), "up", true, &o, &nm, &err), -EBADMSG);
	cr_assert(strstr(err, "previous_response_id"));
	arena_reset(&a);
}

/* A Chat answer's call of a custom tool comes back as custom_tool_call with the free text. */
Test(xlate_responses, answer_custom_tool_call)
{
	struct arena a;
	arena_init(&a, NULL);
	const char *ans = "{\"id\":\"chatcmpl-1\",\"created\":5,\"choices\":[{\"message\":{\"content\":null,"
			  "\"tool_calls\":[{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"apply_patch\","
			  "\"arguments\":\"{\\\"input\\\":\\\"*** Begin\\\\n\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}],"
			  "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
	struct xlate_rnames nm = { .n = 1, .name = { STR("apply_patch") } };
	struct sb o;
	sb_init(&o, &a, 256);
	struct xlate_usage u = { 0 };
	cr_assert_eq(xlate_resp_o2r(&a, ans, strlen(ans), "cm", &nm, 7, &o, &u), 0);
	sb_put(&o, "", 1); /* the NUL */
	cr_assert(strstr(o.p, "{\"type\":\"custom_tool_call\",\"id\":\"ctc_call_2\",\"call_id\":\"call_2\","
			      "\"name\":\"apply_patch\",\"status\":\"completed\",\"input\":\"*** Begin\\n\"}"), "%s", o.p);
	cr_assert(strstr(o.p, "\"usage\":{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},"
			      "\"output_tokens\":5"), "%s", o.p);
	cr_assert_eq(u.in, 6);
	cr_assert_eq(u.cache_read, 4);
	arena_reset(&a);
}
