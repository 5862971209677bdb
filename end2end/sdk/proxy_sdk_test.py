"""Drives Tally's tracking proxy with the official `openai` and `anthropic`
Python SDKs, changing nothing but their base URL and API key, as a user
would. A mock provider (started here, speaking each API's wire format,
streams included) stands in for the real ones; Tally runs from the given
binary on a fresh SQLite store with the demo data.

Checks: whole and streamed answers reach the SDK intact (an OpenAI stream
whose client did not ask for usage shows none), every call is recorded
with its model and tokens and priced from the catalog, and a call over the
plan's limit raises the SDK's own rate-limit error without reaching the
provider.

Usage: proxy_sdk_test.py path/to/tally
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai

UPSTREAM_KEY = "sk-mock-provider"
received = []  # (path, body) of each call the mock provider answered


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MockProvider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for e in events:
            chunk = e.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            time.sleep(0.01)
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
        auth = self.headers.get("authorization") or self.headers.get("x-api-key") or ""
        if UPSTREAM_KEY not in auth:
            return self._json(401, {"error": {"message": "the provider key did not reach the provider"}})
        received.append((self.path, body))
        model = body.get("model")
        if self.path == "/v1/chat/completions":
            if not body.get("stream"):
                return self._json(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "Hello from the mock"}}],
                    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
                })
            base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": model}
            events = [
                {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Str"}, "finish_reason": None}]},
                {**base, "choices": [{"index": 0, "delta": {"content": "eamed"}, "finish_reason": "stop"}]},
            ]
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({**base, "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}})
            return self._stream([f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"])
        if self.path == "/v1/messages":
            usage = {"input_tokens": 900, "output_tokens": 150, "cache_read_input_tokens": 100}
            if not body.get("stream"):
                return self._json(200, {
                    "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "Hello from the mock"}],
                    "stop_reason": "end_turn", "stop_sequence": None, "usage": usage,
                })
            events = [
                ("message_start", {"type": "message_start", "message": {
                    "id": "msg_2", "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": 60, "output_tokens": 1}}}),
                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Str"}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "eamed"}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": 7}}),
                ("message_stop", {"type": "message_stop"}),
            ]
            return self._stream([f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events])
        self._json(404, {"error": {"message": f"the mock has no {self.path}"}})


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    binary = os.path.abspath(sys.argv[1])
    mock = ThreadingHTTPServer(("127.0.0.1", 0), MockProvider)
    threading.Thread(target=mock.serve_forever, daemon=True).start()
    mock_url = f"http://127.0.0.1:{mock.server_address[1]}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    work = tempfile.mkdtemp()
    env = dict(os.environ,
               DATABASE_URL=f"sqlite://{work}/tally.db",
               TALLY_UPSTREAM_OPENAI_URL=mock_url, TALLY_UPSTREAM_OPENAI_KEY=UPSTREAM_KEY,
               TALLY_UPSTREAM_ANTHROPIC_URL=mock_url, TALLY_UPSTREAM_ANTHROPIC_KEY=UPSTREAM_KEY)
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([binary, "serve", "--demo", "--listen", f"127.0.0.1:{port}"], env=env, stdout=log, stderr=log)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("FAILED: tally exited: " + open(log.name).read())
                time.sleep(0.25)
        key = subprocess.run([binary, "apikey", "create", "--scopes", "proxy", "--user", "demo@example.com"],
                             env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        read_key = subprocess.run([binary, "apikey", "create", "--scopes", "read", "--user", "demo@example.com"],
                                  env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]

        oai = openai.OpenAI(base_url=f"{base}/proxy/openai/v1", api_key=key, max_retries=0)
        r = oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=500)
        cost = r.headers.get("x-tally-cost")
        completion = r.parse()
        check(completion.choices[0].message.content == "Hello from the mock", "openai: a whole answer reaches the SDK")
        check(completion.usage.prompt_tokens == 1200, "openai: the provider's usage reaches the SDK")
        # gpt-4o-mini: 1,200 in at $0.15 and 300 out at $0.60 per 1M.
        check(cost == "0.000360000", f"openai: x-tally-cost is the catalog price ({cost})")

        chunks = list(oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=50, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        check(text == "Streamed", "openai: a stream reaches the SDK whole")
        check(all(c.usage is None for c in chunks), "openai: the usage chunk the proxy asked for is hidden")
        check(received[-1][1].get("stream_options", {}).get("include_usage") is True, "openai: the proxy asked for usage")

        claude = anthropic.Anthropic(base_url=f"{base}/proxy/anthropic", api_key=key, max_retries=0)
        msg = claude.messages.create(model="claude-3-5-sonnet", max_tokens=400,
                                     messages=[{"role": "user", "content": "hi"}])
        check(msg.content[0].text == "Hello from the mock", "anthropic: a whole answer reaches the SDK")
        with claude.messages.stream(model="claude-3-5-sonnet", max_tokens=400,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
        check(streamed == "Streamed" and final.usage.output_tokens == 7, "anthropic: a stream reaches the SDK whole")

        before = len(received)
        try:
            oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                        max_tokens=50_000_000)
            check(False, "openai: a call over the limit is refused")
        except openai.RateLimitError as e:
            check("limit" in str(e), f"openai: over the limit raises RateLimitError naming it ({e.message[:80]})")
        try:
            # (The SDK insists on streaming for so large a maximum.)
            with claude.messages.stream(model="claude-3-5-sonnet", max_tokens=50_000_000,
                                        messages=[{"role": "user", "content": "hi"}]) as s:
                s.get_final_message()
            check(False, "anthropic: a call over the limit is refused")
        except anthropic.RateLimitError as e:
            check("limit" in str(e), "anthropic: over the limit raises RateLimitError")
        check(len(received) == before, "a refused call never reaches the provider")

        req = urllib.request.Request(f"{base}/api/subscription/usage-logs?user_id=demo&limit=10",
                                     headers={"Authorization": f"Bearer {read_key}"})
        logs = json.load(urllib.request.urlopen(req))["logs"]
        proxied = [l for l in logs if l["endpoint"] in ("/v1/chat/completions", "/v1/messages")]
        seen = {(l["model_used"], l["tokens_input"], l["tokens_output"]) for l in proxied}
        check(("gpt-4o-mini", 1200, 300) in seen, "the usage log shows the whole OpenAI call")
        check(("gpt-4o-mini", 40, 2) in seen, "the usage log shows the streamed OpenAI call with its usage")
        check(("claude-3-5-sonnet", 1000, 150) in seen, "the usage log shows the whole Anthropic call")
        check(("claude-3-5-sonnet", 60, 7) in seen, "the usage log shows the streamed Anthropic call")
        check(len(proxied) == 4, f"exactly the four answered calls are recorded ({len(proxied)})")
        print("proxy SDK test passed")
    finally:
        server.terminate()
        server.wait(timeout=20)
        mock.shutdown()


if __name__ == "__main__":
    main()
