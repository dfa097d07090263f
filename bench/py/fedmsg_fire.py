#!/usr/bin/python3
"""fedmsg's publish path reproduced (fedmsg itself does not install here): one process binds a PUB socket,
builds fedmsg's envelope per message and sends [topic, canonical JSON] fire-and-forget, no acknowledgement.

    fedmsg_fire.py --count N [--subscribers S] [--pad 64]

--subscribers S: wait (XPUB, same wire as PUB) until S subscribers are connected before timing; fairer
than sending into a socket with no peer, where libzmq drops every message without even queueing it.
Prints {"bound": EP} then, after the run, {"count", "secs", "rate"}.
"""
import argparse
import datetime
import getpass
import json
import sys
import time
import uuid

import zmq


def dumps(d):
    # fedmsg.encoding.dumps: sorted keys, compact separators
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--subscribers", type=int, default=0)
    p.add_argument("--pad", type=int, default=64)
    a = p.parse_args()
    ctx = zmq.Context()
    s = ctx.socket(zmq.XPUB if a.subscribers else zmq.PUB)
    s.setsockopt(zmq.LINGER, 1000)
    s.setsockopt(zmq.SNDHWM, 10000)
    s.bind("tcp://127.0.0.1:*")
    print(json.dumps({"bound": s.getsockopt(zmq.LAST_ENDPOINT).decode()}), flush=True)
    seen = 0
    while seen < a.subscribers:
        if s.recv()[:1] == b"\x01":
            seen += 1
    time.sleep(0.2)
    text = "x" * a.pad
    topic = "org.fedoraproject.prod.bench.fire"
    btopic = topic.encode("utf-8")
    t0 = time.perf_counter()
    for i in range(1, a.count + 1):
        # fedmsg.core.FedMsgContext.publish: envelope, canonical JSON, send_multipart
        msg = {
            "topic": topic,
            "msg": {"t": time.time() * 1000.0, "k": i, "text": text},
            "timestamp": int(time.time()),
            "msg_id": str(datetime.datetime.utcnow().year) + "-" + str(uuid.uuid4()),
            "i": i,
            "username": getpass.getuser(),
        }
        s.send_multipart([btopic, dumps(msg).encode("utf-8")])
    secs = time.perf_counter() - t0
    print(json.dumps({"count": a.count, "secs": secs, "rate": a.count / secs}), flush=True)
    s.close()
    ctx.term()


if __name__ == "__main__":
    sys.exit(main())
