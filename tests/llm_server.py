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
    play            {"seed": S, "bad_rate": R}: answer like a player instead of
                    with the schema's smallest values: varied, plausible,
                    valid actions, random from (seed, request bytes, how
                    often the same bytes came before): identical requests get
                    different answers, as from a model sampling at
                    temperature > 0; read from the prompt: proposals to
                    the counterparties it lists ("company N"), answers to
                    the proposals it lists ("proposal N": accept, counter,
                    reject), bids and asks within "you can still sell at
                    most X MWh and buy at most Y MWh" around the reference
                    price, messages; and at rate R an unusable reply, half
                    off-schema (fields of the wrong type), half inadmissible
                    (a counterparty or proposal that does not exist, an
                    amount beyond the agent's means). Unknown schemas get
                    random values within their bounds.
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
import hashlib
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
CONFIG = {"latency_ms": 0.0, "faults": [], "every": None, "script": [], "hang_s": 30.0,
          "play": None, "gate": None, "echo_key": False, "usage": None}
RNG = {"seed": None, "seen": {}}
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


def prompt_text(req, api):
    """Every message text of the request, system included, joined."""
    parts = []
    if api == "anthropic":
        sysm = req.get("system")
        if isinstance(sysm, str):
            parts.append(sysm)
        elif isinstance(sysm, list):
            parts.extend(b.get("text", "") for b in sysm if isinstance(b, dict))
    for m in req.get("messages") or []:
        c = m.get("content")
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, list):
            parts.extend(b.get("text", "") for b in c if isinstance(b, dict))
    return "\n".join(parts)


def last_user_text(req):
    for m in reversed(req.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return "\n".join(b.get("text", "") for b in c if isinstance(b, dict))
            return c if isinstance(c, str) else ""
    return ""


def num_after(pattern, text, default):
    m = re.search(pattern, text)
    try:
        return float(m.group(1)) if m else default
    except ValueError:
        return default


MESSAGES = ["Reliable delivery, as last hour.", "I can cover part of your shortfall.",
            "Fair price, take it or leave it.", "Let's keep trading at this price.",
            "I need power at peak; can you help?", "My surplus is real this time."]


def play_value(schema, text, rng, depth=0, key=""):
    """A plausible random value for schema, reading the agent's situation from
    the prompt text (see CONFIG play)."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema and schema["enum"]:
        return rng.choice(schema["enum"])
    for k in ("anyOf", "oneOf"):
        if k in schema and schema[k]:
            return play_value(rng.choice(schema[k]), text, rng, depth + 1, key)
    typ = schema.get("type", "object")
    if isinstance(typ, list):
        typ = ([t for t in typ if t != "null"] or ["null"])[0]
    lo = schema.get("minimum", schema.get("exclusiveMinimum", 0))
    hi = schema.get("maximum", lo + 20)
    if typ == "object":
        return {k: play_value(v, text, rng, depth + 1, k)
                for k, v in schema.get("properties", {}).items()}
    if typ == "array":
        n = max(schema.get("minItems", 0), rng.randint(0, 2))
        return [play_value(schema.get("items", {}), text, rng, depth + 1, key) for _ in range(n)]
    if typ == "integer":
        return rng.randint(int(lo), int(max(lo, hi)))
    if typ == "number":
        return round(rng.uniform(lo, max(lo, hi)), 2)
    if typ == "boolean":
        return rng.random() < 0.7
    if typ == "string":
        if key == "reasoning":
            return "Demand is above my forecast generation, so I %s." % rng.choice(
                ["buy early", "keep a reserve", "sell my surplus", "trust my partner"])
        return rng.choice(MESSAGES) if key == "message" else "ok"
    return None


def play_action(schema, req, api, rng):
    """A player's action: electricity-style phases recognised by their
    fields, anything else by play_value."""
    text = last_user_text(req)
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    ref = num_after(r"reference price ([0-9.]+)", text, 50.0)
    can_sell = num_after(r"sell at most ([0-9.]+) MWh", text, 5.0)
    can_buy = num_after(r"buy at most ([0-9.]+) MWh", text, 5.0)
    peers = [int(x) for x in re.findall(r"company (\d+):", text)]
    act = play_value(schema, text, rng)
    if not isinstance(act, dict):
        return act

    def side_and_room(sides):
        opts = [s for s in sides if (s == "sell" and can_sell > 0.01) or
                (s == "buy" and can_buy > 0.01)]
        side = rng.choice(opts) if opts else ("none" if "none" in sides else sides[0])
        room = can_sell if side == "sell" else can_buy if side == "buy" else 0.0
        return side, room

    if "counterparty" in props:
        sides = props.get("side", {}).get("enum", ["buy", "sell"])
        side, room = side_and_room([s for s in sides if s != "none"])
        if peers and room > 0.01 and rng.random() < 0.85:
            amount = round(rng.uniform(0.2, 1.0) * room, 3)
            act.update(counterparty=rng.choice(peers), side=side, amount_mwh=amount,
                       price_total=round(amount * ref * rng.uniform(0.85, 1.15), 2))
        else:
            act.update(counterparty=-1, side=side, amount_mwh=0, price_total=0)
    if "answers" in props:
        answers = []
        for pid, amt, price in re.findall(
                r"proposal (\d+): you would \w+ ([0-9.]+) MWh for ([0-9.]+)", text):
            d = rng.choices(["accept", "counter", "reject"], [0.5, 0.3, 0.2])[0]
            a = {"proposal_id": int(pid), "decision": d, "counter_amount_mwh": 0,
                 "counter_price_total": 0}
            if d == "counter":
                a["counter_amount_mwh"] = round(max(0.01, float(amt) * rng.uniform(0.5, 1.0)), 3)
                a["counter_price_total"] = round(float(price) * rng.uniform(0.8, 1.1), 2)
            answers.append(a)
        act["answers"] = answers
    if "limit_price_per_mwh" in props:
        side, room = side_and_room(props.get("side", {}).get("enum", ["buy", "sell"]))
        if side != "none" and rng.random() < 0.15:
            side = "none" if "none" in props.get("side", {}).get("enum", []) else side
        amount = round(rng.uniform(0.3, 1.0) * room, 3) if side != "none" else 0
        mult = rng.uniform(1.0, 1.6) if side == "buy" else rng.uniform(0.5, 1.0)
        act.update(side=side, amount_mwh=amount, limit_price_per_mwh=round(ref * mult, 2))
    if "claimed_surplus_mwh" in props:
        gen = num_after(r"generation forecast: ([0-9.\-]+)", text, 0.0)
        dem = num_after(r"demand forecast: ([0-9.\-]+)", text, 0.0)
        act["claimed_surplus_mwh"] = round(max(0.0, (gen - dem) * rng.uniform(0.8, 1.3)), 3)
    if "accept" in props and isinstance(act.get("accept"), bool):
        act["accept"] = rng.random() < 0.8
    return act


def bad_action(schema, req, rng):
    """An unusable reply: off-schema, or well-formed but inadmissible."""
    if rng.random() < 0.5:
        return wrong_value(schema)
    act = gen_value(schema)
    if not isinstance(act, dict):
        return wrong_value(schema)
    if "counterparty" in act:
        act.update(counterparty=997, side="sell", amount_mwh=1.0, price_total=10.0)
    elif "answers" in act:
        act["answers"] = [{"proposal_id": 9999, "decision": "accept", "counter_amount_mwh": 0,
                           "counter_price_total": 0}]
    elif "limit_price_per_mwh" in act:
        act.update(side="sell", amount_mwh=1e9, limit_price_per_mwh=1.0)
    else:
        return wrong_value(schema)
    return act


def play_seen(play):
    """How often each request body was answered in play mode (reset when the
    seed changes)."""
    seed = play.get("seed", 0)
    if RNG["seed"] != seed:
        RNG["seed"] = seed
        RNG["seen"] = {}
    return RNG["seen"]
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
        elif not scripted and CONFIG.get("play"):
            # the answer depends on the seed, the request's bytes and how many
            # times the same bytes came before: identical requests get
            # different answers (as from a sampling model), and a request's
            # answer does not depend on what other requests arrive meanwhile
            digest = hashlib.sha256(raw).hexdigest()
            with LOCK:
                seen = play_seen(CONFIG["play"])
                nth = seen.get(digest, 0)
                seen[digest] = nth + 1
            sub = random.Random("%s|%s|%d" % (CONFIG["play"].get("seed", 0), digest, nth))
            if sub.random() < float(CONFIG["play"].get("bad_rate", 0.0)):
                content = bad_action(schema, req, sub)
            else:
                content = play_action(schema, req, api, sub)
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
