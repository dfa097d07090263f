#!/usr/bin/python3
"""fedora-messaging itself, from a source tree (`npm run bench -- --fedora-messaging-src DIR`): api.publish
one message at a time, each waiting for RabbitMQ's confirm, as an app with fedora-messaging does. A durable
queue is bound so the messages really are persisted (removed after). The same bodies as pika_confirm.py,
which reproduces this pattern when no source tree is given.

    fm_publish.py --src DIR --url URL --count N [--pad 64]

DIR is the directory that holds the `fedora_messaging` package, importable with its metadata (an
installed checkout, or a tree with its .dist-info: the package reads its version and message schemas
through importlib.metadata); dependencies from Debian (python3-pika, python3-twisted, python3-crochet,
python3-jsonschema, python3-toml, python3-click, python3-service-identity).
Prints {"count", "secs", "rate", "p50_us", "p99_us", "version"}.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid


EXPIRES_MS = 300_000


def pct(s, q):
    return s[min(len(s) - 1, max(0, int(math.ceil(q * len(s))) - 1))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--pad", type=int, default=64)
    a = p.parse_args()
    sys.path.insert(0, os.path.abspath(a.src))
    conf = os.path.join(tempfile.mkdtemp(prefix="herald-bench-fm-"), "config.toml")
    with open(conf, "w") as f:
        f.write('amqp_url = "%s"\npublish_exchange = "amq.topic"\n' % a.url)
    os.environ["FEDORA_MESSAGING_CONF"] = conf  # read when the package is first imported
    import pika
    from fedora_messaging import api, config

    shutil.rmtree(os.path.dirname(conf))  # read at import

    queue = "herald-bench-fm-" + uuid.uuid4().hex[:8]
    topic = "org.fedoraproject.prod.bench." + queue
    admin = pika.BlockingConnection(pika.URLParameters(a.url))
    ch = admin.channel()
    # Durable (persistent messages are written to disk, as fedora-messaging's are), deleted in `finally`;
    # x-expires is the safety net when this process is killed before that: RabbitMQ drops the queue once it
    # has gone unused (no consumer, no redeclare, no basic.get) for EXPIRES_MS. It changes nothing measured:
    # a durable queue with x-expires persists its messages the same way. Publishing does not count as use,
    # so EXPIRES_MS is far longer than a run (seconds); a run that outlived it would fail loudly (mandatory
    # publish, unroutable) rather than measure something else.
    ch.queue_declare(queue, durable=True, arguments={"x-expires": EXPIRES_MS})
    ch.queue_bind(queue, "amq.topic", routing_key=topic)
    text = "x" * a.pad
    lat = []
    try:
        for i in range(a.count + 50):
            msg = api.Message(topic=topic, body={"t": time.time() * 1000.0, "k": i, "text": text})
            t = time.perf_counter()
            api.publish(msg)
            if i >= 50:  # the first 50 are warm-up (the first one connects)
                lat.append(time.perf_counter() - t)
    finally:
        ch.queue_delete(queue)
        admin.close()
    secs = sum(lat)
    lat.sort()
    print(json.dumps({"count": a.count, "secs": secs, "rate": a.count / secs,
                      "p50_us": round(pct(lat, 0.5) * 1e6), "p99_us": round(pct(lat, 0.99) * 1e6),
                      "version": getattr(config, "_fedora_version", "unknown")}), flush=True)
    os._exit(0)  # crochet's reactor thread would otherwise keep the process alive for its shutdown


if __name__ == "__main__":
    sys.exit(main())
