#!/usr/bin/python3
"""A legacy (fedmsg) consumer switched to herald's format: read herald's PUB socket with python3-zmq.

Before (fedmsg): SUB connected to every endpoint of every service, frames [topic, fedmsg JSON].
After (herald):  SUB connected to the one herald PUB socket, frames [topic, herald envelope JSON]; the
envelope has id, topic, sent_at, body, headers, origin; `seq` per socket shows gaps.

usage: herald_tail.py [--endpoint tcp://127.0.0.1:9941] [PREFIX ...] [--count N]
"""
import argparse
import json

import zmq


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", default="tcp://127.0.0.1:9941")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("prefixes", nargs="*", default=[""])
    args = p.parse_args()
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for prefix in args.prefixes or [""]:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode("utf-8"))
    sub.connect(args.endpoint)
    seen = 0
    while not args.count or seen < args.count:
        topic, raw = sub.recv_multipart()[:2]
        env = json.loads(raw)
        print(topic.decode("utf-8"), env["id"], json.dumps(env["body"], sort_keys=True), flush=True)
        seen += 1
    sub.close()


if __name__ == "__main__":
    main()
