#!/usr/bin/env python3
"""Local LLM test server for bazaar: speaks the OpenAI chat completions and the
Anthropic messages APIs on 127.0.0.1, answers with actions generated from the
request's JSON schema (or scripted replies), and injects latency and faults.
Python standard library only; never talks to the outside world.

Usage:
    llm_server.py [--port 0] [--latency-ms 0] [--config FILE]
Prints "PORT <n>" on the first line of stdout once listening.

Control (HTTP):
    GET  /stats   {"requests", "completions", "inflight", "max_inflight",
                   "by_path", "faults_served", "with_key", "models"}
    POST /config  JSON merged into the configuration (see CONFIG below)
    POST /reset   zero the statistics (configuration kept)

CONFIG keys:
    latency_ms      delay before each completion reply
    faults          a queue: each completion request takes the next entry
                    {"kind": K, ...}; entries with "count": n apply n times
    every           {"n": N, "fault": {...}}: every N-th request gets the fault
    script          list of reply contents (JSON values or strings) used in
                    order instead of schema-generated actions, then generated
    hang_s          how long "hang" sleeps (default 30)
    gate            a file path: completion requests wait until it exists
    echo_key        true: the request's API key is echoed back: in error
                    bodies (placed to straddle byte 200) and in every
                    free-text string of successful replies
    usage           {"in": N, "out": M}: the usage counts every reply claims
                    (absurd values test the range checks)
Fault kinds: "status" (code, retry_after, body), "429" (retry_after),
"500", "503", "hang", "reset", "malformed_body" (HTTP body not JSON),
"malformed_json" (content is not JSON), "truncated" (body cut short),
"wrong_schema" (content JSON of the wrong shape), "reply" (content given),
"refusal".
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
CONFIG = {"latency_ms": 0.0, "faults": [], "every": None, "script": [], "hang_s": 30.0,
          "gate": None, "echo_key": False, "usage": None}
STATS = {}


def reset_stats():
    STATS.clear()
    STATS.update({"requests": 0, "completions": 0, "inflight": 0, "max_inflight": 0,
                  "by_path": {}, "faults_served": {}, "with_key": 0, "models": {}})


reset_stats()


def gen_value(schema, depth=0):
    """A small admissible-looking value for a JSON schema: minimum numbers,
    first enum entries, every property."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema and schema[key]:
            return gen_value(schema[key][0], depth + 1)
    typ = schema.get("type", "object")
    if isinstance(typ, list):
        typ = [t for t in typ if t != "null"][0] if [t for t in typ if t != "null"] else "null"
    if typ == "object":
        props = schema.get("properties", {})
        return {k: gen_value(v, depth + 1) for k, v in props.items()}
    if typ == "array":
        n = schema.get("minItems", 0)
        return [gen_value(schema.get("items", {}), depth + 1) for _ in range(n)]
    if typ in ("number", "integer"):
        v = schema.get("minimum", 0)
        if "exclusiveMinimum" in schema:
            v = schema["exclusiveMinimum"] + 1
        if "maximum" in schema and v > schema["maximum"]:
            v = schema["maximum"]
        return int(v) if typ == "integer" else v
    if typ == "boolean":
        return False
    if typ == "string":
        return "ok" if schema.get("minLength", 0) <= 2 else "x" * schema["minLength"]
    return None


def echo_strings(value, key):
    """value with every string replaced by one that carries key."""
    if isinstance(value, str):
        return "echo " + key + " echo"
    if isinstance(value, dict):
        return {k: echo_strings(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [echo_strings(v, key) for v in value]
    return value


def wrong_value(schema):
    """A value of the wrong shape: every property replaced by a string."""
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {k: "wrong" for k in props} or {"unexpected": True}


def next_fault():
    with LOCK:
        n = STATS["completions"]
        every = CONFIG.get("every")
        if every and every.get("n") and n % int(every["n"]) == 0:
            return dict(every["fault"])
        faults = CONFIG["faults"]
        while faults:
            f = faults[0]
            if f.get("count", 1) <= 1:
                faults.pop(0)
            else:
                f["count"] -= 1
            return dict(f)
    return None


def next_script():
    with LOCK:
        if CONFIG["script"]:
            return True, CONFIG["script"].pop(0)
    return False, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server_version = "bazaar-llm-test/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                snap = json.loads(json.dumps(STATS))
            self.send_json(200, snap)
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/config":
            with LOCK:
                CONFIG.update(json.loads(raw or b"{}"))
            self.send_json(200, {"ok": True})
            return
        if self.path == "/reset":
            with LOCK:
                reset_stats()
            self.send_json(200, {"ok": True})
            return
        if self.path.endswith("/chat/completions"):
            self.completion(raw, "openai")
        elif self.path.endswith("/messages"):
            self.completion(raw, "anthropic")
        else:
            self.send_json(404, {"error": {"message": "unknown path " + self.path}})

    def completion(self, raw, api):
        with LOCK:
            STATS["requests"] += 1
            STATS["completions"] += 1
            STATS["inflight"] += 1
            STATS["max_inflight"] = max(STATS["max_inflight"], STATS["inflight"])
            STATS["by_path"][self.path] = STATS["by_path"].get(self.path, 0) + 1
            if self.headers.get("Authorization") or self.headers.get("x-api-key"):
                STATS["with_key"] += 1
        try:
            self.completion_inner(raw, api)
        finally:
            with LOCK:
                STATS["inflight"] -= 1

    def completion_inner(self, raw, api):
        try:
            req = json.loads(raw)
        except ValueError:
            self.send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        model = req.get("model", "")
        with LOCK:
            STATS["models"][model] = STATS["models"].get(model, 0) + 1
        gate = CONFIG.get("gate")
        while gate and not os.path.exists(gate):
            time.sleep(0.02)
        key = ""
        if CONFIG.get("echo_key"):
            key = self.headers.get("x-api-key") or self.headers.get("Authorization") or ""
            if key.startswith("Bearer "):
                key = key[len("Bearer "):]
        fault = next_fault()
        kind = fault.get("kind") if fault else None
        if kind:
            with LOCK:
                STATS["faults_served"][kind] = STATS["faults_served"].get(kind, 0) + 1
        latency = float(fault.get("latency_ms", CONFIG["latency_ms"]) if fault else CONFIG["latency_ms"])
        if latency > 0:
            time.sleep(latency / 1000.0)

        if kind == "hang":
            time.sleep(float(fault.get("seconds", CONFIG["hang_s"])))
            self.close_connection = True
            return
        if kind == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if kind in ("429", "500", "503", "status"):
            code = int(fault.get("code", kind if kind != "status" else 500))
            headers = {}
            if "retry_after" in fault:
                headers["Retry-After"] = str(fault["retry_after"])
            body = fault.get("body", {"error": {"message": "injected %d" % code, "type": "test"}})
            if key:  # the key straddles byte 200 of the body
                head = '{"error": {"message": "'
                pad = max(0, 200 - len(head) - len(key) // 2)
                body = {"error": {"message": "x" * pad + key + " rejected", "type": "test"}}
            self.send_json(code, body, headers)
            return
        if kind == "malformed_body":
            body = b'{"choices": [ {"message": oops'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return

        if api == "openai":
            schema = (req.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        else:
            tools = req.get("tools") or [{}]
            schema = tools[0].get("input_schema", {})
        scripted, content = next_script()
        if kind == "reply":
            content = fault.get("content")
        elif kind == "wrong_schema":
            content = wrong_value(schema)
        elif kind == "malformed_json":
            content = "Sure! Here is my action: {amount: ten"
        elif not scripted:
            content = gen_value(schema)
        if key:
            content = echo_strings(content, key)
        text = content if isinstance(content, str) else json.dumps(content)
        in_tok = max(1, len(raw) // 4)
        out_tok = max(1, len(text) // 4)
        if CONFIG.get("usage"):
            in_tok = CONFIG["usage"].get("in", in_tok)
            out_tok = CONFIG["usage"].get("out", out_tok)
        if api == "openai":
            msg = {"role": "assistant", "content": text}
            if kind == "refusal":
                msg = {"role": "assistant", "content": None, "refusal": "I cannot help with that."}
            reply = {"id": "cmpl-test", "object": "chat.completion", "model": model,
                     "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": in_tok, "completion_tokens": out_tok,
                               "total_tokens": in_tok + out_tok}}
        else:
            if isinstance(content, (dict, list)) and kind != "malformed_json":
                block = {"type": "tool_use", "id": "toolu_test", "name": tools[0].get("name", "action"),
                         "input": content}
            else:
                block = {"type": "text", "text": text}
            if kind == "refusal":
                block = {"type": "text", "text": "I cannot help with that."}
            reply = {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                     "content": [block], "stop_reason": "tool_use",
                     "usage": {"input_tokens": in_tok, "output_tokens": out_tok}}
        body = json.dumps(reply).encode()
        if kind == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--config", help="JSON file with the initial configuration")
    args = ap.parse_args()
    CONFIG["latency_ms"] = args.latency_ms
    if args.config:
        with open(args.config) as f:
            CONFIG.update(json.load(f))
    srv = Server(("127.0.0.1", args.port), Handler)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
