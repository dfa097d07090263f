#!/usr/bin/python3
"""A minimal fedmsg-style publisher for `herald demo` (needs python3-zmq): binds a PUB socket on an old
service endpoint and sends COUNT messages framed exactly as fedmsg does, then prints their msg_ids.

usage: fedmsg_demo_pub.py ENDPOINT TOPIC COUNT
"""
import datetime
import getpass
import json
import sys
import time
import uuid

import zmq


def main():
    endpoint, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sock = zmq.Context.instance().socket(zmq.XPUB)  # same wire as PUB; tells us when someone subscribed
    sock.setsockopt(zmq.LINGER, 1000)
    sock.bind(endpoint)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    if not poller.poll(10000):  # wait for the herald shim to subscribe (fedmsg sleeps post_init_sleep)
        sys.exit("nobody subscribed to %s within 10 s" % endpoint)
    sock.recv()
    year = datetime.datetime.now(datetime.timezone.utc).year
    for i in range(1, count + 1):
        env = {"topic": topic, "msg": {"n": i}, "timestamp": int(time.time()), "i": i,
               "msg_id": "%d-%s" % (year, uuid.uuid4()), "username": getpass.getuser()}
        sock.send_multipart([topic.encode(), json.dumps(env, sort_keys=True, separators=(",", ":")).encode()])
        print(env["msg_id"], flush=True)
    sock.close()


if __name__ == "__main__":
    main()
