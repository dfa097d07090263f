#!/usr/bin/python3
"""fedmsg itself, from a source tree (`npm run bench -- --fedmsg-src DIR`): fedmsg.init binds one PUB
endpoint for this process, as every fedmsg app thread does, then fedmsg.publish sends N messages
fire-and-forget with signing off (the old bus's publish path without its crypto). The same bodies as
fedmsg_fire.py, which reproduces this path when no source tree is given.

    fedmsg_publish.py --src DIR --count N [--pad 64]

DIR is the directory that holds the `fedmsg` package (a checkout of fedora-infra/fedmsg); its dependencies
come from Debian (python3-zmq, python3-kitchen, python3-six, python3-requests, python3-arrow, python3-click).
Prints {"bound": EP, "version": V}, waits until one subscriber has connected (socket monitor) and had
time to subscribe, then prints {"count", "secs", "rate"}.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import zmq
import zmq.utils.monitor


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--pad", type=int, default=64)
    a = p.parse_args()
    sys.path.insert(0, os.path.abspath(a.src))
    import fedmsg
    import fedmsg.config

    name = "bench.herald"
    # fedmsg.init refuses to start without `endpoints` from a config file; a wildcard port is bound as is.
    cfg = os.path.join(tempfile.mkdtemp(prefix="herald-bench-fedmsg-"), "bench.py")
    with open(cfg, "w") as f:
        f.write("config = dict(endpoints={%r: ['tcp://127.0.0.1:*']})\n" % name)
    fedmsg.config.load_config(filenames=[cfg], invalidate_cache=True)
    ctx = fedmsg.init(name=name, active=False, sign_messages=False, validate_signatures=False,
                      environment="prod", topic_prefix="org.fedoraproject", post_init_sleep=0)
    shutil.rmtree(os.path.dirname(cfg))  # read by now
    pub = ctx.publisher
    mon = pub.get_monitor_socket(zmq.EVENT_ACCEPTED)
    # fedmsg binds every interface (it rewrites the host to *): connect to loopback.
    bound = "tcp://127.0.0.1:" + pub.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1]
    print(json.dumps({"bound": bound, "version": version(a.src)}), flush=True)
    zmq.utils.monitor.recv_monitor_message(mon)
    pub.disable_monitor()
    mon.close()  # an open socket would keep fedmsg.destroy's context termination waiting
    time.sleep(0.3)  # the subscription travels after the connection: the slow joiner
    text = "x" * a.pad
    t0 = time.perf_counter()
    for i in range(1, a.count + 1):
        fedmsg.publish(topic="fire", modname="bench", msg={"t": time.time() * 1000.0, "k": i, "text": text})
    secs = time.perf_counter() - t0
    print(json.dumps({"count": a.count, "secs": secs, "rate": a.count / secs}), flush=True)
    fedmsg.destroy()


def version(src):
    try:
        with open(os.path.join(src, "setup.py")) as f:
            for line in f:
                if "version=" in line.replace(" ", ""):
                    return line.split("=", 1)[1].strip().strip(",").strip("'\"")
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
