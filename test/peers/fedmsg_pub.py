#!/usr/bin/python3
"""A fedmsg-style publisher for herald's interoperability tests (run with /usr/bin/python3: needs python3-zmq).

fedmsg itself does not install here, so this reproduces its wire behaviour byte for byte: frames
[topic, json.dumps(envelope, sort_keys=True, separators=(',', ':'))] with the envelope
{topic, msg, timestamp (int), msg_id "<YEAR>-<uuid4>", i (per-socket counter from 1), username}.

Passive (the usual fedmsg service): --bind EP [--bind EP ...], one PUB socket per endpoint, as one fedmsg
process per endpoint would. Active (fedmsg-logger, scripts): --connect EP (e.g. a relay_inbound endpoint).

Output, one JSON object per line on stdout:
  {"event": "bound", "endpoints": [...]}                      real endpoints (tcp://127.0.0.1:* resolved)
  {"event": "subscribed", "endpoint": EP, "prefix": "..."}    with --wait-subscribers
  {"event": "sent", "endpoint": EP, "topic": T, "msg_id": ID, "i": I, "raw": BASE64, "envelope": {...}}
  {"event": "done", "sent": N}

usage: fedmsg_pub.py (--bind EP | --connect EP)... [--count M] [--topic T] [--body JSON] [--username U]
         [--wait-subscribers N] [--sleep S] [--interval S] [--raw-stdin] [--hold] [--quiet]
  --count M              messages per socket (default 10); body is {"n": k, "text": ...} merged with --body
  --wait-subscribers N   use XPUB (same wire as PUB) and wait for N subscriptions per socket before sending
  --sleep S              without --wait-subscribers: sleep like fedmsg's post_init_sleep (default 0.5)
  --raw-stdin            instead of generated messages, read JSON lines {"frames": [BASE64, ...]} from stdin
                         and send each multipart message on every socket (malformed-frame tests); EOF ends
  --hold                 after sending, keep the sockets open until stdin reaches EOF (or SIGTERM)
  --quiet                do not print "sent" lines
"""
import argparse
import base64
import datetime
import getpass
import json
import sys
import time
import uuid

import zmq


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def canonical(d):
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--connect", action="append", default=[])
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--topic", default="org.fedoraproject.dev.peer.ping")
    p.add_argument("--body", default="{}")
    p.add_argument("--username", default=None)
    p.add_argument("--wait-subscribers", type=int, default=0)
    p.add_argument("--sleep", type=float, default=0.5)
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--raw-stdin", action="store_true")
    p.add_argument("--hold", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--linger", type=int, default=1000)
    args = p.parse_args()
    if not args.bind and not args.connect:
        p.error("give at least one --bind or --connect endpoint")
    return args


def open_sockets(ctx, args):
    kind = zmq.XPUB if args.wait_subscribers > 0 else zmq.PUB
    sockets = []
    for ep in args.bind:
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, args.linger)
        s.bind(ep)
        sockets.append([s, s.getsockopt(zmq.LAST_ENDPOINT).decode()])
    for ep in args.connect:
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, args.linger)
        s.connect(ep)
        sockets.append([s, ep])
    emit({"event": "bound", "endpoints": [ep for _, ep in sockets]})
    return sockets


def wait_subscribers(sockets, wanted):
    poller = zmq.Poller()
    for s, _ in sockets:
        poller.register(s, zmq.POLLIN)
    remaining = {id(s): wanted for s, _ in sockets}
    endpoint = {id(s): ep for s, ep in sockets}
    while any(n > 0 for n in remaining.values()):
        for s, _ in poller.poll(30000):
            frame = s.recv()
            if frame[:1] == b"\x01":
                remaining[id(s)] -= 1
                emit({"event": "subscribed", "endpoint": endpoint[id(s)], "prefix": frame[1:].decode("utf-8", "replace")})


def publish_generated(sockets, args):
    username = args.username or getpass.getuser()
    extra = json.loads(args.body)
    sent = 0
    counters = {id(s): 0 for s, _ in sockets}
    for k in range(args.count):
        for s, ep in sockets:
            counters[id(s)] += 1
            body = {"n": k, "text": "h\u00e9llo \u2713 \U0001f389"}
            body.update(extra)
            envelope = {
                "topic": args.topic,
                "msg": body,
                "timestamp": int(time.time()),
                "msg_id": "%d-%s" % (datetime.datetime.now(datetime.timezone.utc).year, uuid.uuid4()),
                "i": counters[id(s)],
                "username": username,
            }
            raw = canonical(envelope).encode("utf-8")
            s.send_multipart([args.topic.encode("utf-8"), raw])
            sent += 1
            if not args.quiet:
                emit({"event": "sent", "endpoint": ep, "topic": args.topic, "msg_id": envelope["msg_id"],
                      "i": envelope["i"], "raw": base64.b64encode(raw).decode(), "envelope": envelope})
        if args.interval:
            time.sleep(args.interval)
    return sent


def publish_raw(sockets, args):
    sent = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        frames = [base64.b64decode(f) for f in json.loads(line)["frames"]]
        for s, ep in sockets:
            s.send_multipart(frames)
            sent += 1
            if not args.quiet:
                emit({"event": "sent", "endpoint": ep, "frames": len(frames)})
    return sent


def main():
    args = parse_args()
    ctx = zmq.Context()
    sockets = open_sockets(ctx, args)
    if args.wait_subscribers > 0:
        wait_subscribers(sockets, args.wait_subscribers)
    elif args.sleep > 0:
        time.sleep(args.sleep)
    sent = publish_raw(sockets, args) if args.raw_stdin else publish_generated(sockets, args)
    emit({"event": "done", "sent": sent})
    if args.hold:
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass
    for s, _ in sockets:
        s.close()
    ctx.term()


if __name__ == "__main__":
    main()
