#!/usr/bin/python3
"""A fedmsg-style subscriber for herald's interoperability tests (run with /usr/bin/python3: needs python3-zmq).

Does what fedmsg.tail_messages() does underneath: one SUB socket connected to every endpoint, a byte-prefix
SUBSCRIBE per topic prefix, frames [topic, envelope]. A SUB socket connected to many endpoints cannot tell
which one a message came from, so the output holds only endpoint-independent facts.

Output, one JSON object per line on stdout:
  {"event": "connected", "endpoint": EP}    from the socket monitor, once per established connection
  {"event": "message", "topic": T, "frames": N, "raw": BASE64 of the envelope frame, "envelope": {...} or null,
   "error": "..." when the envelope is not JSON}
  {"event": "done", "received": N, "reason": "count" | "until" | "timeout"}

usage: fedmsg_sub.py --connect EP [--connect EP ...] [--subscribe PREFIX ...] [--count N] [--until-topic T]
         [--timeout S]
  --subscribe PREFIX   byte prefix (default: "" = everything), repeatable
  --count N            stop after N messages (0 = no limit)
  --until-topic T      stop after a message whose topic frame is T (a marker)
  --timeout S          stop after S seconds without reaching the other conditions (default 30)
"""
import argparse
import base64
import json
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect", action="append", required=True)
    p.add_argument("--subscribe", action="append", default=None)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--until-topic", default=None)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    monitor = sub.get_monitor_socket(zmq.EVENT_CONNECTED)
    for prefix in args.subscribe if args.subscribe is not None else [""]:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode("utf-8"))
    for ep in args.connect:
        sub.connect(ep)

    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    deadline = time.monotonic() + args.timeout
    received = 0
    reason = "timeout"
    while reason == "timeout":
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for sock, _ in poller.poll(int(left * 1000) + 1):
            if sock is monitor:
                ev = recv_monitor_message(monitor)
                emit({"event": "connected", "endpoint": ev["endpoint"].decode("utf-8", "replace")})
                continue
            frames = sub.recv_multipart()
            received += 1
            topic = frames[0].decode("utf-8", "replace")
            out = {"event": "message", "topic": topic, "frames": len(frames)}
            if len(frames) > 1:
                out["raw"] = base64.b64encode(frames[1]).decode()
                try:
                    out["envelope"] = json.loads(frames[1].decode("utf-8"))
                except ValueError as err:
                    out["envelope"] = None
                    out["error"] = str(err)
            emit(out)
            if args.until_topic is not None and topic == args.until_topic:
                reason = "until"
            elif args.count and received >= args.count:
                reason = "count"
    emit({"event": "done", "received": received, "reason": reason})
    sub.disable_monitor()
    monitor.close()
    sub.close()
    ctx.term()


if __name__ == "__main__":
    main()
