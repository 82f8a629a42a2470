#!/usr/bin/env python3
"""Writes the seed corpora tests/fuzz/corpus/<target>/ (committed; rerun after changing an
input format in targets.h). Each seed is the target's selector byte(s) + a realistic payload;
see the comment above each fuzz_<target> in targets.h for the formats."""
import os, struct, json

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def j(o):
    return json.dumps(o, separators=(",", ":"))

# ---- http_request: [cut mode/seed][head limit] + bytes ----
reqs = {
    "get": "GET /v1/models HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n",
    "post_cl": "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer sk-alice\r\n"
               "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}",
    "post_chunked": "POST /v1/messages HTTP/1.1\r\nHost: gw\r\nx-api-key: sk-alice\r\nanthropic-version: 2023-06-01\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "http10": "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "pipelined": "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n",
}
for i, (k, v) in enumerate(reqs.items()):
    put("http_request", k, bytes([i * 37 & 0xFF, i & 3]) + v.encode())

# ---- http_response ----
resps = {
    "json": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nx-ratelimit-remaining-requests: 9\r\n\r\n{}",
    "sse": "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
    "429": "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
    "503_close": "HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\n",
    "bare_status": "HTTP/1.1 529\r\nretry-after: 120\r\ncontent-length: 00\r\n\r\n",
}
for i, (k, v) in enumerate(resps.items()):
    put("http_response", k, bytes([i * 53 & 0xFF, i & 3]) + v.encode())

# ---- http_chunked: [cut mode/seed] + body ----
chunks = {
    "two": "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    "trailers": "A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
    "last_only": "0\r\n\r\n",
    "sse": "1b\r\ndata: {\"choices\":[]}\n\n\r\n0000\r\n\r\nEXTRA",
    "upper": "1F \t\r\n" + "x" * 31 + "\r\n0\r\n\r\n",
}
for i, (k, v) in enumerate(chunks.items()):
    put("http_chunked", k, bytes([i * 71 & 0xFF]) + v.encode())

# ---- json_route: [endpoint (0 chat,1 completions,2 embeddings,3 messages,4 count_tokens) | 0x80 query] + body ----
msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hello \u00e9\\n"}]
routes = {
    "chat_stream": (0x80, {"model": "gpt-4o", "messages": msgs, "stream": True, "max_tokens": 50}),
    "chat_fallbacks": (0, {"model": "openai/gpt-4o-mini", "fallbacks": ["fast/llama-3", "anthropic", "local/mistral"],
                          "messages": msgs, "stream": True, "stream_options": {"include_usage": False}}),
    "messages": (3, {"model": "claude-sonnet-4-20250514", "max_tokens": 1024, "stream": True,
                     "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
    "embeddings": (2, {"model": "text-embedding-3-small", "input": ["a", "b"], "stream": True}),
    "azure": (0, {"mod\\u0065l": "az/gpt-4o", "messages": [], "max_completion_tokens": 7, "stream_options": None,
                  "stream": True}),
}
for k, (b, o) in routes.items():
    put("json_route", k, bytes([b]) + j(o).replace("\\\\u0065", "\\u0065").encode())

# ---- sse: [cut mode/seed][bit0 anthropic provider, bit1 client asked usage] + stream ----
oai_stream = (
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
    ': keep-alive\n\n'
    'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}\n\n'
    'data: [DONE]\n\n')
anth_stream = (
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    '"content":[],"model":"claude-sonnet-4","usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":3}}}\n\n'
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    'event: ping\ndata: {"type":"ping"}\n\n'
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}\n\n'
    'event: message_stop\ndata: {"type":"message_stop"}\n\n')
put("sse", "openai", bytes([0x11, 0]) + oai_stream.encode())
put("sse", "openai_usage_crlf", bytes([0x42, 2]) + oai_stream.replace("\n", "\r\n").encode())
put("sse", "anthropic", bytes([0x23, 1]) + anth_stream.encode())
put("sse", "anthropic_cut", bytes([0x30, 1]) + anth_stream[:400].encode())

# ---- xlate_request: [bit0 o2a, bit1 reasoning, bits2-3 model] + body ----
a_req = {"model": "claude-sonnet-4", "max_tokens": 2048, "system": [{"type": "text", "text": "You are terse."}],
         "messages": [
             {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                          {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
             {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                               {"type": "text", "text": "Let me check."},
                                               {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                           "content": [{"type": "text", "text": "timeout"}]}]}],
         "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                   {"type": "web_search_20250305", "name": "web_search"}],
         "tool_choice": {"type": "tool", "name": "get_weather"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
         "temperature": 0.5, "stop_sequences": ["END"], "stream": True, "metadata": {"user_id": "u1"}}
o_req = {"model": "gpt-4o", "max_completion_tokens": 4096, "reasoning_effort": "high", "parallel_tool_calls": False,
         "messages": [
             {"role": "system", "content": "sys"}, {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
             {"role": "user", "content": [{"type": "text", "text": "look"},
                                          {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                                          {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
             {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                                    "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
             {"role": "tool", "tool_call_id": "call_1", "content": "42"},
             {"role": "user", "content": "thanks"}],
         "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
         "tool_choice": "required", "temperature": 1, "top_p": 0.9, "stop": ["x", "y"], "stream": True,
         "stream_options": {"include_usage": True}, "user": "u"}
put("xlate_request", "a2o_full", bytes([0x00]) + j(a_req).encode())
put("xlate_request", "a2o_reasoning", bytes([0x06]) + j({"model": "x", "max_tokens": 10, "system": "s",
    "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled", "budget_tokens": 2000}}).encode())
put("xlate_request", "o2a_full", bytes([0x01]) + j(o_req).encode())
put("xlate_request", "o2a_plain", bytes([0x09]) + j({"model": "gpt-4o", "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "function", "function": {"name": "f"}}}).encode())

# ---- xlate_response: [0 resp_o2a, 1 resp_a2o, 2 error_o2a, 3 error_a2o][status index] + body ----
o_resp = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "reasoning_content": "r",
                                               "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":[1]}"}}]},
                       "finish_reason": "tool_calls"}],
          "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 2}}}
a_resp = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
          "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "Hello"},
                      {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x"}}],
          "stop_reason": "tool_use", "stop_sequence": None,
          "usage": {"input_tokens": 7, "output_tokens": 9, "cache_read_input_tokens": 1, "cache_creation_input_tokens": 2}}
put("xlate_response", "resp_o2a", bytes([0, 12]) + j(o_resp).encode())
put("xlate_response", "resp_a2o", bytes([1, 12]) + j(a_resp).encode())
put("xlate_response", "err_o2a", bytes([2, 6]) + j({"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}}).encode())
put("xlate_response", "err_a2o", bytes([3, 11]) + j({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode())
put("xlate_response", "err_text", bytes([3, 9]) + b"<html>502 Bad Gateway</html>")

# ---- xlate_stream_o2a: OpenAI provider stream -> Anthropic client. [cut][bit0 usage, bit1 cut off] ----
tool_stream = (
    'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"think"}}]}\n\n'
    'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Let me"}}]}\n\n'
    'data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}\n\n'
    'data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"a\\":"}}]}}]}\n\n'
    'data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"g","arguments":"{}"}}]}}]}\n\n'
    'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    'data: {"id":"c","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":50}}}\n\n'
    'data: [DONE]\n\n')
put("xlate_stream_o2a", "text", bytes([0x13, 0]) + oai_stream.encode())
put("xlate_stream_o2a", "tools", bytes([0x02, 0]) + tool_stream.encode())
put("xlate_stream_o2a", "error", bytes([0x21, 0]) + b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: {"error":{"message":"boom","type":"server_error"}}\n\n')
put("xlate_stream_o2a", "cut", bytes([0x31, 2]) + tool_stream[:300].encode())

# ---- xlate_stream_a2o: Anthropic provider stream -> OpenAI client. [cut][bit0 usage, bit1 cut off] ----
anth_tools = (
    'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":10,"cache_creation_input_tokens":5,"output_tokens":1}}}\n\n'
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}\n\n'
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}\n\n'
    'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}\n\n'
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"a\\": 1}"}}\n\n'
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}\n\n'
    'event: message_stop\ndata: {"type":"message_stop"}\n\n')
put("xlate_stream_a2o", "text_usage", bytes([0x17, 1]) + anth_stream.encode())
put("xlate_stream_a2o", "tools", bytes([0x03, 1]) + anth_tools.encode())
put("xlate_stream_a2o", "error", bytes([0x22, 0]) + b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
put("xlate_stream_a2o", "unnamed_cut", bytes([0x40, 3]) + anth_tools.replace("event: ", "x-event: ")[:500].encode())

# ---- count_tokens: the request body ----
put("count_tokens", "full", j(a_req))
put("count_tokens", "system_string", j({"model": "m", "system": "You are \u00e9 helpful", "messages": [{"role": "user", "content": "Hello, world"}]}))
put("count_tokens", "document", j({"model": "m", "messages": [{"role": "user", "content": [{"type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}}]}], "tools": []}))

# ---- cfg: config files ----
put("cfg", "minimal", j({"providers": [{"provider": "openai", "apiKey": "sk-x"}]}))
put("cfg", "map_form", j({"providers": {"openai": {"keys": [{"value": "env.OPENAI_API_KEY", "weight": 1}],
    "network_config": {"base_url": "http://[::1]:8000/v1/", "extra_headers": {"X": "y"}, "default_request_timeout_in_seconds": 30, "max_retries": 2}},
    "bedrock": {"keys": []}}, "fallbacks": "openai"}))
put("cfg", "routing", j({"listen": "127.0.0.1:0", "workers": 2, "data_dir": "/nonexistent", "log_requests": False,
    "limits": {"max_body_bytes": 1048576, "max_header_bytes": 8192, "header_timeout_ms": 5000, "idle_timeout_ms": 10000,
               "max_response_bytes": 4096, "stream_ping_ms": 100},
    "circuit_breaker": {"failures": 3, "cooldown_ms": 1000},
    "providers": [
        {"name": "a", "provider": "anthropic", "base_url": "https://api.anthropic.com:443", "apiKey": "k", "weight": 3,
         "models": ["claude-*"], "tls": {"insecure_skip_verify": True}, "timeout_ms": 1000, "stream_idle_timeout_ms": 500},
        {"name": "az", "provider": "azure", "base_url": "https://r.openai.azure.com", "deployments": {"gpt-4o": "prod"},
         "api_version": "2024-10-21", "models": [], "model_map": {"gpt-*": "gpt-4o"}, "connect_timeout_ms": 100},
        {"name": "or", "provider": "openrouter", "headers": {"HTTP-Referer": "x"}, "tls": {"ca_file": "/etc/ssl/certs/ca-certificates.crt"}}],
    "fallbacks": ["a/claude-3-5-haiku", "or"]}))
put("cfg", "governance", j({"admin": {"token": "env.BIFROST_ADMIN_TOKEN"},
    "providers": [{"name": "openai", "provider": "openai", "apiKey": "k", "budget": {"max_limit": "12.5", "reset_duration": "1M"}}],
    "pricing": {"openai/gpt-4o": {"input": 2.5, "output": 10, "cache_read": 1.25}, "claude-*": {"input": "3e0", "output": 15, "cache_write": 3.75}},
    "governance": {"enforce": True,
        "customers": [{"id": "acme", "budget": {"max_limit": 1000, "reset_duration": "1Y", "calendar_aligned": True}}],
        "teams": [{"id": "t", "customer_id": "acme", "budget": {"max_limit": 500, "reset_duration": "2w"}}],
        "virtual_keys": [{"id": "alice", "value": "sk-bf-alice", "team_id": "t", "active": True,
            "budget": {"max_limit": 0.000001, "reset_duration": "30s"},
            "rate_limit": {"request_max_limit": 60, "request_reset_duration": "1m", "token_max_limit": 1000,
                           "token_reset_duration": "1h", "max_concurrent": 2},
            "allowed_models": ["gpt-*"], "allowed_providers": ["openai"],
            "provider_configs": [{"provider": "openai", "weight": 2, "budget": {"max_limit": 1, "reset_duration": "1d"}}]},
            {"id": "bob", "value": "sk-bf-bob", "customer_id": "acme", "active": False}]}}))
put("cfg", "problems", '{"workers": -1, "listen": 5, "providers": [{"provider": "nope"}, {"name": "a/b", "provider": "openai", "base_url": "ftp://x"}], "limits": {"max_body_bytes": 1e3}}')

# ---- jrnl: [flags: bit0 fix magic/version/CRC, bit1 map entities] + records ----
def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF

def rec(kind, typ, ent, win, spend, tin, tout, req, tns, valid=True):
    b = bytearray(struct.pack("<HBBIQqqqqQq", 0x4A42, 1, (kind << 4) | typ, 0, ent, win, spend, tin, tout, req, tns))
    if valid:
        b[4:8] = struct.pack("<I", crc32c(bytes(b[0:4]) + bytes(b[8:])))
    return bytes(b)

T = 1750000000
recs = b"".join(rec(k, 1, i, T - 3600 * i, 1500 * i, 100, 20, 1000 + i, (T + i) * 10**9) for i, k in enumerate([1, 2, 3, 4, 5, 5, 3]))
put("jrnl", "charges_mapped", bytes([3]) + recs)
put("jrnl", "totals_mapped", bytes([3]) + b"".join(rec(k, 2, i, T - 86400 * 31 * i, 10**6 * i, 10**5, 10**4, 50, T * 10**9) for i, k in enumerate([1, 2, 3, 4, 5])))
put("jrnl", "raw_valid_torn", bytes([0]) + rec(3, 1, 0x1234, T, 5, 1, 1, 1, T * 10**9) + rec(1, 2, 0x99, 0, 7, 0, 0, 3, 0) + b"BJ\x01\x31torn")
put("jrnl", "raw_corrupt_mid", bytes([0]) + rec(3, 1, 0x1234, T, 5, 1, 1, 1, T * 10**9) + rec(3, 1, 0x1234, T, 5, 1, 1, 1, T * 10**9, valid=False) + rec(3, 1, 0x1234, T, 5, 1, 1, 1, T * 10**9))
put("jrnl", "windows_mapped", bytes([3]) + b"".join(rec(0, 1, i, w, 10, 10, 10, 1, (T + i) * 10**9) for i, w in enumerate([0, -86400 * 365, T + 86400 * 400, 4102444800, 253402300799, 1])))

# ---- large (but not overflowing) usage counts: one digit away from the int64 edge ----
BIG = 4611686018427387904  # 2^62: two of them still fit in an int64, three do not
put("sse", "openai_big_usage", bytes([0x13, 2]) + ('data: {"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,'
    '"prompt_tokens_details":{"cached_tokens":%d}}}\n\ndata: [DONE]\n\n' % (BIG, BIG, BIG - 1)).encode())
put("xlate_stream_a2o", "big_usage", bytes([0x13, 1]) + ('event: message_start\ndata: {"type":"message_start","message":{"usage":'
    '{"input_tokens":%d,"cache_read_input_tokens":%d,"cache_creation_input_tokens":1,"output_tokens":1}}}\n\n'
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":%d}}\n\n'
    'event: message_stop\ndata: {"type":"message_stop"}\n\n' % (BIG, BIG - 2, BIG)).encode())
put("xlate_stream_o2a", "big_usage", bytes([0x13, 0]) + ('data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}}\n\ndata: [DONE]\n\n'
    % (BIG, BIG, 3)).encode())
put("xlate_response", "a2o_big_usage", bytes([1, 12]) + j({"id": "m", "content": [], "stop_reason": "max_tokens",
    "usage": {"input_tokens": BIG, "output_tokens": BIG, "cache_read_input_tokens": BIG - 5}}).encode())

# ---- the Responses API on a Chat provider: the same OpenAI streams into Responses events;
# requests ([0] = 0) and whole Chat answers ([0] = 1) through xlate_responses ----
for name in ("text", "tools", "error", "cut", "big_usage"):
    src = os.path.join(ROOT, "xlate_stream_o2a", name)
    with open(src, "rb") as f:
        put("xlate_stream_o2r", name, f.read())
patch_call = ('data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_p","type":"function",'
    '"function":{"name":"apply_patch","arguments":""}}]}}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"input\\":\\"*** Begin Patch\\\\n"}}]}}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"*** End Patch\\"}"}}]},"finish_reason":"tool_calls"}]}\n\n'
    'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}\n\ndata: [DONE]\n\n')
put("xlate_stream_o2r", "custom_tool", bytes([0x12, 0]) + patch_call.encode())
put("xlate_responses", "request", bytes([0]) + j({"model": "m", "instructions": "be brief", "input": "hi",
    "tools": [{"type": "function", "name": "exec_command", "description": "run", "parameters": {"type": "object",
    "properties": {"cmd": {"type": "string"}}}, "strict": False}, {"type": "custom", "name": "apply_patch",
    "description": "patch", "format": {"type": "grammar"}}], "tool_choice": {"type": "function", "name": "exec_command"},
    "parallel_tool_calls": True, "reasoning": {"effort": "low"}, "max_output_tokens": 64,
    "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": True}},
    "temperature": 0.2, "top_p": 1, "user": "u", "stream": True}).encode())
put("xlate_responses", "items", bytes([0]) + j({"model": "m", "input": [
    {"type": "message", "role": "developer", "content": "rules"},
    {"role": "user", "content": [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "data:image/png;base64,AA=="}]},
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "running"}]},
    {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
    {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"},
    {"type": "function_call_output", "call_id": "c1", "output": "a\nb"},
    {"type": "custom_tool_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "done"}]}]}).encode())
put("xlate_responses", "answer", bytes([1]) + j({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}},
    {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"x\"}"}}]},
    "finish_reason": "length"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5,
    "prompt_tokens_details": {"cached_tokens": 4}}}).encode())
# the same target with [1] bit2: an Anthropic provider's events through Chat into Responses
for name in ("text", "tools", "big_usage"):
    src = os.path.join(ROOT, "xlate_stream_a2o", name)
    if os.path.exists(src):
        with open(src, "rb") as f:
            b = bytearray(f.read())
        b[1] |= 4
        put("xlate_stream_o2r", "anthropic_" + name, bytes(b))
reasoning = ('data: {"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"six "}}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"reasoning_content":"times"}}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"content":"42"},"finish_reason":"stop"}]}\n\n'
    'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"completion_tokens_details":{"reasoning_tokens":3}}}\n\ndata: [DONE]\n\n')
put("xlate_stream_o2r", "reasoning", bytes([0x11, 0]) + reasoning.encode())

# ---- http_query: [cap - 1][name length L (mod 33)][name: L bytes] + the query string ----
def q(cap, name, query):
    return bytes([cap - 1, len(name)]) + name.encode() + query.encode()
put("http_query", "bad_pct", q(1, "status", "status=%zz&status=%4&status=%"))
put("http_query", "escapes", q(4, "model", "model=gpt-4o%2Dmini&x=a+b%20c"))
put("http_query", "logs_filters", q(256, "provider", "since=1700000000000&until=1800000000000&virtual_key_id=k1"
                                    "&provider=mock&model=gpt-4o&status=error&limit=50&offset=0"))
put("http_query", "nul", q(32, "team_id", "team_id=acme%00extra"))
put("http_query", "prefix_names", q(8, "a", "ab=1&xa=2&a=3&a=4"))
put("http_query", "sqlish", q(128, "provider", "provider=%27%20OR%201%3D1%20--&provider=second"))
put("http_query", "stats", q(64, "bucket_s", "bucket_s=60&group=model&since=-9223372036854775808"))
put("http_query", "absent", q(16, "min_latency_ms", "min_latency=5&latency_ms=6&=7&min_latency_ms"))
put("http_query", "empty_and_cut", q(3, "x", "x=&x=%41%42%43%44"))

# ---- mgmt_doc: [flags: bit0 pretty-print A even when malformed] + A [+ NUL + B, the stored document] ----
# (markers name their secret by an HMAC under a key drawn per process: no seed can hold a valid
# one; the target makes them itself, redacting A and resolving its markers against A and B)
MD_MARK = "sk-\u2026redacted"
md_cfg = {"admin": {"token": "adm", "username": "ops", "password_hash": "pbkdf2-sha256$1$73616c74$55ac"},
          "providers": [{"name": "mock", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "apiKey": "sk-1",
                         "keys": [{"value": "k1", "weight": 1}, {"value": "env.K2"}], "headers": {"X-A": "b"}},
                        {"name": "az", "provider": "azure", "apiKey": "env.AZ", "deployments": {"gpt-4o": "dep"}}],
          "pricing": {"mock/gpt-4o": {"input": 2.5, "output": 10}},
          "governance": {"enforce": True, "customers": [{"id": "acme", "budget": {"max_limit": 1, "reset_duration": "1d"}}],
                         "teams": [{"id": "eng", "customer_id": "acme"}],
                         "virtual_keys": [{"id": "v1", "value": "sk-bf-v1", "team_id": "eng"},
                                          {"id": "v2", "value_sha256": "0" * 64}]},
          "logs": {"enabled": True, "retention_days": 30}}
md_red = json.loads(j(md_cfg))
md_red["admin"]["token"] = MD_MARK
md_red["providers"][0]["apiKey"] = MD_MARK
md_red["providers"][0]["keys"][0]["value"] = MD_MARK
def md(flags, a, b=None):
    a = a.encode() if isinstance(a, str) else a
    out = bytes([flags]) + a
    if b is not None:
        out += b"\0" + (b.encode() if isinstance(b, str) else b)
    return out
put("mgmt_doc", "config", md(0, j(md_cfg)))
put("mgmt_doc", "config_pretty", md(0, json.dumps(md_cfg, indent=2)))
put("mgmt_doc", "escaped_marker", md(0, json.dumps(md_red), j(md_cfg)))
put("mgmt_doc", "redacted_vs_stored", md(0, json.dumps(md_red, separators=(",", ":"), ensure_ascii=False), j(md_cfg)))
put("mgmt_doc", "malformed", md(1, '{"a":[1,2,{"b":"c\\"}]'))
put("mgmt_doc", "map_providers", md(0, j({"providers": {"mock": {"provider": "openai", "apiKey": "sk-m"}}}),
                                    j({"providers": {"mock": {"apiKey": "x"}}})))
put("mgmt_doc", "shorter_old", md(0, json.dumps({"providers": [{"name": "b", "apiKey": MD_MARK + "-0123abcd"}]},
                                                 separators=(",", ":"), ensure_ascii=False),
                                  j({"providers": [{"name": "a", "apiKey": "sk-a"}, {"name": "b", "apiKey": "sk-b"}]})))
put("mgmt_doc", "strings", md(0, '{"s":"a,{b}[c]:\\"d\\\\","u":"\u00e9","e":"","n":[0,-1500.0,true,false,null],'
                                 '"o":{},"a":[],"x":"\\ud83d\\ude00"}'))
# secret names and values written with escapes (the loader reads them unescaped), env.NAME escaped too
put("mgmt_doc", "escaped_names", md(0, '{"admin":{"tok\\u0065n":"adm-e"},"providers":[{"name":"e","api\\u004bey":"sk-\\u00e9\\n",'
                                       '"keys":[{"valu\\u0065":"k\\/1"},{"value":"\\u0065nv.K"}]}],'
                                       '"governance":{"virtual_keys":[{"id":"v","\\u0076alue":"sk-bf-e"}]}}',
                                    '{"providers":[{"name":"e","apiKey":"sk-\\u00e9\\n"}],"x":{"api_key":"k/1"}}'))
# one secret in many places, a copied entry, duplicate members, marker-shaped values
put("mgmt_doc", "copies", md(0, j({"providers": [{"name": "a", "apiKey": "sk-same"}, {"name": "copy", "apiKey": "sk-same"}],
                                   "admin": {"token": "sk-same", "password_hash": "x"}, "list": ["sk-same", {"token": "t"}]}),
                             j({"providers": [{"name": "z", "api_key": "sk-same"}], "admin": {"token": 7}})))
put("mgmt_doc", "duplicates", md(0, '{"apiKey":"one","apiKey":"two","token":"one","value":"' + MD_MARK + '-00000000"}',
                                 '{"apiKey":"two","apiKey":"' + MD_MARK + '"}'))
put("mgmt_doc", "long_names", md(0, j({"providers": {"p" * 63: {"apiKey": "sk-short"}, "p" * 70: {"apiKey": "sk-long"},
                                                     "q" * 300: {"apiKey": "sk-300"}}}),
                                 j({"providers": {"p" * 70: {"apiKey": "sk-long"}}})))
