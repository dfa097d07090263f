#!/usr/bin/python3
"""fedora-messaging's publish pattern reproduced with pika (fedora-messaging does not install here):
publisher confirms, persistent messages (delivery_mode 2) to the amq.topic exchange, one at a time,
each waiting for its confirm. A durable queue is bound so the messages really are persisted (removed after).

    pika_confirm.py --url URL --count N [--pad 64]

Prints {"count", "secs", "rate", "p50_us", "p99_us", "server": {...server properties...}}.
"""
import argparse
import json
import sys
import time
import uuid

import pika


EXPIRES_MS = 300_000


def pct(s, q):
    import math
    return s[min(len(s) - 1, max(0, int(math.ceil(q * len(s))) - 1))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--pad", type=int, default=64)
    a = p.parse_args()
    conn = pika.BlockingConnection(pika.URLParameters(a.url))
    ch = conn.channel()
    ch.confirm_delivery()
    queue = "herald-bench-" + uuid.uuid4().hex[:8]
    rk = "org.fedoraproject.prod.bench." + queue
    # Durable (persistent messages are written to disk, as fedora-messaging's are), deleted in `finally`;
    # x-expires is the safety net when this process is killed before that: RabbitMQ drops the queue once it
    # has gone unused (no consumer, no redeclare, no basic.get) for EXPIRES_MS. It changes nothing measured:
    # a durable queue with x-expires persists its messages the same way. Publishing does not count as use,
    # so EXPIRES_MS is far longer than a run (seconds); a run that outlived it would fail loudly (mandatory
    # publish, unroutable) rather than measure something else.
    ch.queue_declare(queue, durable=True, arguments={"x-expires": EXPIRES_MS})
    ch.queue_bind(queue, "amq.topic", routing_key=rk)
    text = "x" * a.pad
    lat = []
    try:
        for i in range(a.count + 50):
            body = json.dumps({"t": time.time() * 1000.0, "k": i, "text": text}).encode("utf-8")
            props = pika.BasicProperties(
                content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                headers={"fedora_messaging_schema": "base.message", "sent-at": "2025-01-01T00:00:00+00:00"},
                message_id=str(uuid.uuid4()))
            t = time.perf_counter()
            ch.basic_publish("amq.topic", rk, body, props, mandatory=True)
            if i >= 50:  # the first 50 are warm-up
                lat.append(time.perf_counter() - t)
    finally:
        ch.queue_delete(queue)
        server = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in
                  conn._impl.server_properties.items() if k in ("product", "version", "platform")}
        conn.close()
    secs = sum(lat)
    lat.sort()
    print(json.dumps({"count": a.count, "secs": secs, "rate": a.count / secs,
                      "p50_us": round(pct(lat, 0.5) * 1e6), "p99_us": round(pct(lat, 0.99) * 1e6),
                      "server": server, "pika": pika.__version__}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
