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
                    temperature > 0. Everything is read from the request as
                    a model reads it: the schema says which decision it is,
                    the system prompt who the agent is, the last user prompt
                    (or, when that is a repair prompt, the prompt it
                    repairs) what it sees. Per game:
                    electricity: proposals to the counterparties it lists
                    ("company N"), answers to the proposals it lists
                    ("proposal N": accept, counter, reject), bids and asks
                    within "you can still sell at most X MWh and buy at most
                    Y MWh" around the reference price, messages;
                    item_allocation and treaty: divisions that keep the items
                    worth most to the agent (or positions near its own on
                    the issues it weighs most), counter-proposals (another
                    agent's proposal of the last round moved its way), votes
                    accepting what is worth a random reservation to it,
                    discussion, thinking and reflection texts naming its
                    items/issues and the proposals;
                    beast: partners among the active players, messages that
                    accept open offers, counter them or make give/ask offers
                    within the payer's wealth, promises and requests naming
                    active players, declarations and votes (mostly as
                    declared or promised, else against the richest rival);
                    with a "reasoning" field: a sentence giving the reason.
                    At rate R an unusable reply instead (also in answer to a
                    repair prompt), half off-schema (fields of the wrong
                    type), half out of range or inadmissible (a counterparty,
                    proposal, agent or player that does not exist or may not
                    be named, an amount beyond the agent's means, an accept
                    with nothing to accept, an offer that leaves). Unknown
                    schemas get random values within their bounds.
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


def content_text(c):
    """A message's content as text (a string, or a list of text blocks)."""
    if isinstance(c, list):
        return "\n".join(b.get("text", "") for b in c if isinstance(b, dict))
    return c if isinstance(c, str) else ""


def system_text(req, api):
    """The request's system prompt (the rules and who the agent is)."""
    if api == "anthropic":
        return content_text(req.get("system"))
    for m in req.get("messages") or []:
        if m.get("role") == "system":
            return content_text(m.get("content"))
    return ""


REPAIR_HEAD = "Your reply could not be used"


def situation_text(req):
    """The user message that states the decision: the last one, or, when the
    last is a repair prompt (after the model's rejected reply), the one the
    repair answers. A model reads the whole conversation; so does this."""
    users = [content_text(m.get("content")) for m in req.get("messages") or []
             if m.get("role") == "user"]
    while len(users) > 1 and users[-1].startswith(REPAIR_HEAD):
        users.pop()
    return users[-1] if users else ""


def num_after(pattern, text, default):
    m = re.search(pattern, text)
    try:
        return float(m.group(1)) if m else default
    except ValueError:
        return default


def int_after(pattern, text, default):
    return int(num_after(pattern, text, default))


def numbers(s):
    """The numbers of a rendered JSON array's inside ("1,0.25,3")."""
    out = []
    for x in s.split(","):
        try:
            out.append(float(x))
        except ValueError:
            pass
    return out


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
        n = min(n, schema.get("maxItems", n))
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


# ---- electricity ---------------------------------------------------------------

def electricity_action(schema, text, rng):
    """Electricity's phases, recognised by their fields."""
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


# ---- item_allocation and treaty ------------------------------------------------

class Nego:
    """What an item_allocation or treaty prompt tells the agent: who it is,
    its values (items) or positions and weights (treaty), the proposals on
    the table with its utility under each, the rounds left."""

    def __init__(self, schema, sysm, text):
        props = schema.get("properties", {})
        m = re.search(r"You are agent (\d+), one of (\d+) agents", sysm)
        self.me, self.n = (int(m.group(1)), int(m.group(2))) if m else (0, 2)
        self.items = "allocation" in props or "divide" in sysm
        self.text = text
        self.rounds_left = int_after(r"(\d+) rounds? left after this one", text, 1)
        self.round = int_after(r"Round (\d+) of", text, 1)
        v = re.search(r"Your private values of the items \(item 0 first\): \[([^\]]*)\]", text)
        self.values = numbers(v.group(1)) if v else []
        t = re.search(r"positions \[([^\]]*)\], weights \[([^\]]*)\]", text)
        self.pos, self.w = (numbers(t.group(1)), numbers(t.group(2))) if t else ([], [])
        self.m = len(self.values) if self.items else len(self.pos)
        key = "allocation" if self.items else "outcome"
        # the proposals of the last round (discussion, thinking, proposal) and
        # of this round (vote), with the agent's utility and their accepts
        self.table = []
        for p, arr, u, acc in re.findall(
                r"proposal of agent (\d+): %s \[([^\]]*)\]; your utility ([0-9.\-]+); "
                r"accepted by (\d+) agents" % key, text):
            self.table.append({"proposer": int(p), "x": numbers(arr), "u": float(u),
                               "accepts": int(acc)})
        self.live = []
        for p, arr, u in re.findall(r"- agent (\d+): %s \[([^\]]*)\]; your utility ([0-9.\-]+)"
                                    % key, text):
            self.live.append({"proposer": int(p), "x": numbers(arr), "u": float(u)})
        for p, arr, u, acc in re.findall(r"- agent (\d+) proposed \[([^\]]*)\]: your utility "
                                         r"([0-9.\-]+), (\d+) accepts", text):
            self.table.append({"proposer": int(p), "x": numbers(arr), "u": float(u),
                               "accepts": int(acc)})
        self.discussion = re.findall(r'- agent (\d+)(?: said)?: "([^"]*)"', text)

    def fair(self):
        return 100.0 / max(1, self.n)


def nego_propose(ng, schema, rng):
    props = schema.get("properties", {})
    key = "allocation" if "allocation" in props else "outcome"
    m = props[key].get("minItems", ng.m) or ng.m
    theirs = [p for p in ng.table if p["proposer"] != ng.me and len(p["x"]) == m]
    counter = theirs and rng.random() < 0.55
    if counter:  # a counter-proposal: another agent's, moved my way
        base = max(theirs, key=lambda p: (p["accepts"] + rng.random(), p["u"]))
    if key == "allocation":
        vals = ng.values if len(ng.values) == m else [1.0] * m
        others = [j for j in range(ng.n) if j != ng.me] or [ng.me]
        target = ng.fair() * rng.uniform(1.0, 1.7) * (1.0 if ng.rounds_left > 0 else 0.8)
        if counter:
            alloc = [int(x) for x in base["x"]]
            mine = sum(vals[k] for k in range(m) if alloc[k] == ng.me)
            took = []
            for k in sorted((k for k in range(m) if alloc[k] != ng.me), key=lambda k: -vals[k]):
                if mine >= target or len(took) >= 2:
                    break
                alloc[k] = ng.me
                mine += vals[k]
                took.append(k)
            why = ("Agent %d's division drew %d accepts; I counter it, taking %s."
                   % (base["proposer"], base["accepts"],
                      " and ".join("item %d" % k for k in took) or "nothing more"))
        else:
            alloc, mine = [None] * m, 0.0
            for k in sorted(range(m), key=lambda k: (-vals[k], rng.random())):
                if mine < target:
                    alloc[k] = ng.me
                    mine += vals[k]
            rng.shuffle(others)
            rest = [k for k in range(m) if alloc[k] is None]
            for i, k in enumerate(rest):
                alloc[k] = others[i % len(others)]
            why = "I keep the items worth most to me (%d of 100) and share the rest." % mine
        return {key: alloc}, why
    pos = ng.pos if len(ng.pos) == m else [0.5] * m
    w = ng.w if len(ng.w) == m else [1.0 / m] * m
    if counter:
        t = rng.uniform(0.2, 0.6)
        top = set(sorted(range(m), key=lambda k: -w[k])[:max(1, (m + 1) // 2)])
        x = [base["x"][k] + t * (pos[k] - base["x"][k]) if k in top else base["x"][k]
             for k in range(m)]
        why = ("I counter agent %d's treaty, moving the issues I weigh most toward my positions."
               % base["proposer"])
    else:
        c = rng.uniform(0.05, 0.6) * (1.0 if ng.rounds_left > 0 else 1.5)
        x = [pos[k] + min(1.0, c * (1.0 - w[k])) * (0.5 - pos[k]) for k in range(m)]
        why = "I stay near my positions on the issues I weigh most and meet others on the rest."
    return {key: [round(min(1.0, max(0.0, v)), 4) for v in x]}, why


def nego_vote(ng, schema, rng):
    n = schema["properties"]["accept"].get("minItems", ng.n) or ng.n
    # a reservation that starts high and falls round by round: haggling
    if ng.items:
        res = ng.fair() * rng.uniform(1.3, 2.0)
    else:
        res = rng.uniform(78.0, 95.0)
    res *= 0.85 ** max(0, ng.round - 1)
    if ng.rounds_left == 0:
        res *= 0.7  # the last round: anything beats no deal
    acc = [False] * n
    for p in ng.live:
        if 0 <= p["proposer"] < n:
            yes = p["u"] >= res
            acc[p["proposer"]] = (not yes) if rng.random() < 0.08 else yes
    if 0 <= ng.me < n:
        acc[ng.me] = True
    why = "I accept what gives me at least %.0f." % res
    return {"accept": acc}, why


def nego_text(ng, rng):
    """A discussion, thinking or reflection text about the agent's own
    items or issues and the proposals it has seen."""
    phase = ("discuss" if "public discussion" in ng.text else
             "think" if "private thinking" in ng.text else "reflect")
    what = "item" if ng.items else "issue"
    score = (ng.values if ng.items else ng.w) or [1.0]
    order = sorted(range(len(score)), key=lambda k: -score[k])
    a, b, low = order[0], order[min(1, len(order) - 1)], order[-1]
    theirs = [p for p in ng.table if p["proposer"] != ng.me]
    mine = [p for p in ng.table if p["proposer"] == ng.me]
    worst = min(theirs, key=lambda p: p["u"]) if theirs else None
    likes = max(theirs, key=lambda p: p["u"]) if theirs else None
    floor = ng.fair() if ng.items else 65.0
    if phase == "discuss":
        lines = ["%s %d matters most to me; I can give way on %s %d."
                 % (what.capitalize(), a, what, low),
                 "Let's settle early: every round of delay costs all of us.",
                 ("I will support a proposal that leaves me item %d and item %d." % (a, b)
                  if ng.items else
                  "I will support a treaty near my positions on issues %d and %d." % (a, b))]
        if worst is not None:
            lines.append("Agent %d, your last proposal gives me only %.0f; I cannot accept it."
                         % (worst["proposer"], worst["u"]))
        if ng.discussion:
            lines.append("I agree with agent %s that we should be quick." % ng.discussion[-1][0])
        return rng.choice(lines)
    if phase == "think":
        lines = ["I will ask for %s %d and accept anything worth at least %.0f to me."
                 % (what, a, floor),
                 "%s %d matters least to me; I can trade it away." % (what.capitalize(), low)]
        if likes is not None:
            lines.append("Agent %d's last proposal gave me %.0f; I can build on it."
                         % (likes["proposer"], likes["u"]))
        return rng.choice(lines)
    lines = ["Next round I concede %s %d to get a deal." % (what, low)]
    if mine:
        lines.append("My proposal drew %d accepts; %s" % (
            mine[0]["accepts"], "the others like it." if mine[0]["accepts"] > 1 else
            "I must offer more to the others."))
    if likes is not None:
        lines.append("Agent %d's proposal (%.0f for me, %d accepts) is the one to beat."
                     % (likes["proposer"], likes["u"], likes["accepts"]))
    return rng.choice(lines)


# ---- beast ---------------------------------------------------------------------

class Beast:
    """What a beast prompt tells the player: the players' wealth and status,
    who it is, the conversation and its open offer, its declaration."""

    def __init__(self, text):
        self.text = text
        self.players = {}
        self.me = None
        for j, you, w, out in re.findall(
                r"- player (\d+)( \(you\))?: wealth (-?\d+)(, eliminated)?", text):
            self.players[int(j)] = {"wealth": int(w), "active": not out}
            if you:
                self.me = int(j)
        if self.me is None:
            self.me = int_after(r"You are player (\d+)", text, 0)
        self.wealth = int_after(r"Your wealth: (-?\d+)", text,
                                self.players.get(self.me, {}).get("wealth", 0))
        self.partner = int_after(r"You are talking with player (\d+)", text, -1)
        self.left = int_after(r"(\d+) messages are left", text, 0)
        o = re.search(r"Open offer from your partner: you would (pay|receive) (\d+)", text)
        self.open = (o.group(1), int(o.group(2))) if o else None
        self.declared = int_after(r"You declared: (-?\d+)", text, -1)
        self.round = int_after(r"Round (\d+)", text, 0)
        self.promised = [int(x) for x in re.findall(
            r"- round %d, to player \d+: you promised to vote for (-?\d+)" % self.round, text)]

    def active_others(self, *skip):
        return [j for j, p in sorted(self.players.items())
                if p["active"] and j != self.me and j not in skip]

    def target(self, rng, *skip):
        """Whom to vote against: often the richest rival, else anyone."""
        c = self.active_others(*skip)
        if not c:
            return -1
        if rng.random() < 0.5:
            return max(c, key=lambda j: (self.players[j]["wealth"], -j))
        return rng.choice(c)


def beast_partners(bs, schema, rng):
    most = schema["properties"]["partners"].get("maxItems", 3)
    c = bs.active_others()
    k = min(len(c), most, rng.choice([0, 1, 1, 2, 2, 3, 3, 3]))
    pick = sorted(rng.sample(c, k))
    why = ("I talk with %s to find allies." % ", ".join("player %d" % j for j in pick)
           if pick else "I keep my own counsel this round.")
    return {"partners": pick}, why


def beast_message(bs, schema, rng):
    props = schema.get("properties", {})
    pw = bs.players.get(bs.partner, {}).get("wealth", 0)
    act = {"offer": "none", "amount": 0, "accept": False, "leave": False}
    says = []
    if bs.open:
        kind, amt = bs.open
        if kind == "receive":
            if rng.random() < 0.8:
                act["accept"] = True
                says.append("Deal: I accept your %d." % amt)
            elif bs.left >= 2 and pw > amt:
                act.update(offer="ask", amount=min(pw, max(1, int(amt * rng.uniform(1.2, 2.0)))))
                says.append("Make it %d and you have my vote." % act["amount"])
        else:
            if amt <= 0.3 * bs.wealth and rng.random() < 0.5:
                act["accept"] = True
                says.append("Fine, I pay %d." % amt)
            elif bs.left >= 2 and bs.wealth >= 2 and rng.random() < 0.7:
                act.update(offer="give",
                           amount=max(1, min(bs.wealth, int(amt * rng.uniform(0.3, 0.7)))))
                says.append("%d is too much; I can give %d." % (amt, act["amount"]))
            else:
                act["leave"] = rng.random() < 0.6
                says.append("No deal.")
    elif bs.left >= 2:
        r = rng.random()
        if r < 0.3 and bs.wealth >= 1:
            act.update(offer="give", amount=max(1, int(bs.wealth * rng.uniform(0.02, 0.2))))
            says.append("I will pay you %d for your support." % act["amount"])
        elif r < 0.6 and pw >= 1:
            act.update(offer="ask", amount=max(1, int(pw * rng.uniform(0.02, 0.15))))
            says.append("Pay me %d and I will not vote against you." % act["amount"])
        else:
            act["leave"] = rng.random() < 0.25
    else:
        act["leave"] = rng.random() < 0.5
    if "vote_promise" in props:
        promise = bs.target(rng, bs.partner) if rng.random() < 0.6 else -1
        request = bs.target(rng, bs.partner) if rng.random() < 0.5 else -1
        act.update(vote_promise=promise, vote_request=request)
        if promise >= 0:
            says.append("I will vote for player %d." % promise)
        if request >= 0:
            says.append("Vote for player %d with me." % request)
        if not says:
            says.append(rng.choice(["Let's stay allies.", "I trust you this round.",
                                    "Goodbye for now."]))
        act["message"] = " ".join(says)
    why = ("My partner's offer is worth taking." if act["accept"] else
           "I bargain for wealth and votes." if act["offer"] != "none" else
           "Nothing to gain here.")
    return act, why


def beast_declare(bs, rng):
    if bs.promised and rng.random() < 0.6 and bs.promised[-1] in bs.active_others():
        d = bs.promised[-1]
    else:
        d = bs.target(rng) if rng.random() < 0.75 else -1
    return {"declared_vote": d}, ("I keep my plans to myself." if d < 0 else
                                  "I say I will vote for player %d." % d)


def beast_vote(bs, rng):
    if bs.declared in bs.active_others() and rng.random() < 0.75:
        v = bs.declared
    else:
        v = bs.target(rng)
    if v < 0:  # nobody else is active as far as the prompt shows
        v = 0 if bs.me != 0 else 1
    return {"vote": v}, "Player %d is the one to eliminate." % v


# ---- the player ------------------------------------------------------------------

def play_action(schema, req, api, rng):
    """A player's action for any game, read from the request alone: the
    schema says which decision it is, the system prompt who the agent is,
    the situation prompt what it sees."""
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    sysm, text = system_text(req, api), situation_text(req)
    accept = props.get("accept", {})
    if "allocation" in props or "outcome" in props:
        act, why = nego_propose(Nego(schema, sysm, text), schema, rng)
    elif isinstance(accept, dict) and accept.get("type") == "array":
        act, why = nego_vote(Nego(schema, sysm, text), schema, rng)
    elif "text" in props:
        ng = Nego(schema, sysm, text)
        act, why = {"text": nego_text(ng, rng)}, "I say what serves me."
    elif "partners" in props:
        act, why = beast_partners(Beast(text), schema, rng)
    elif "offer" in props:
        act, why = beast_message(Beast(text), schema, rng)
    elif "declared_vote" in props:
        act, why = beast_declare(Beast(text), rng)
    elif "vote" in props:
        act, why = beast_vote(Beast(text), rng)
    else:
        return electricity_action(schema, text, rng)
    # only the schema's fields, each present, reasoning first when asked for
    out = {}
    for k, v in props.items():
        out[k] = why if k == "reasoning" else act[k] if k in act else play_value(v, text, rng,
                                                                                 key=k)
    return out


def bad_action(schema, req, rng):
    """An unusable reply: off-schema (fields of the wrong type, or out of the
    schema's range), or well-formed but inadmissible (breaking the game's
    rules: a counterparty, proposal or player that does not exist or may not
    be named, an amount beyond the agent's means, an accept with nothing to
    accept, an offer that leaves); a beast offer beyond the agent's wealth is
    admissible but cannot be paid if accepted."""
    if rng.random() < 0.5:
        return wrong_value(schema)
    act = gen_value(schema)
    if not isinstance(act, dict):
        return wrong_value(schema)
    props = schema.get("properties", {})
    text = situation_text(req)
    if "counterparty" in act:
        act.update(counterparty=997, side="sell", amount_mwh=1.0, price_total=10.0)
    elif "answers" in act:
        act["answers"] = [{"proposal_id": 9999, "decision": "accept", "counter_amount_mwh": 0,
                           "counter_price_total": 0}]
    elif "limit_price_per_mwh" in act:
        act.update(side="sell", amount_mwh=1e9, limit_price_per_mwh=1.0)
    elif "allocation" in act:  # an item to an agent that does not exist
        m = props["allocation"].get("minItems", 1)
        act["allocation"] = [props["allocation"]["items"].get("maximum", 1) + 1] * m
    elif "outcome" in act:  # a position outside [0, 1]
        act["outcome"] = [1.5] * props["outcome"].get("minItems", 1)
    elif "accept" in act and isinstance(act["accept"], list):  # a vote too many
        act["accept"] = [True] * (props["accept"].get("minItems", 1) + 1)
    elif "text" in act:  # a field the schema does not have
        act = {"say": "I would rather not write JSON."}
    elif "partners" in act:  # oneself, twice
        bs = Beast(text)
        act["partners"] = [bs.me, bs.me]
    elif "offer" in act:
        bs = Beast(text)
        if bs.open:  # an offer that leaves: nobody could answer it
            act.update(offer="give", amount=max(1, bs.wealth), leave=True)
        elif rng.random() < 0.5:  # accept with nothing to accept
            act.update(accept=True)
        else:  # admissible, but beyond the agent's means: unpaid if accepted
            act.update(offer="give", amount=2 * max(1, bs.wealth) + 1)
    elif "declared_vote" in act:
        act["declared_vote"] = Beast(text).me
    elif "vote" in act:  # oneself, or a player already eliminated
        bs = Beast(text)
        gone = [j for j, p in bs.players.items() if not p["active"]]
        act["vote"] = rng.choice(gone) if gone and rng.random() < 0.5 else bs.me
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
    """A value of the wrong shape: every property replaced by one of the wrong
    type (a number for a string, a string for anything else)."""
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {k: 42 if isinstance(v, dict) and v.get("type") == "string" else "wrong"
            for k, v in props.items()} or {"unexpected": True}


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
