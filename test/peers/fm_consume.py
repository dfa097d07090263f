#!/usr/bin/python3
"""A fedora-messaging style consumer for herald's interoperability tests.

Reads up to COUNT messages from an existing QUEUE with pika (what fedora-messaging uses underneath),
acks them, and prints one JSON object per message with exactly what a fedora-messaging consumer sees:
routing key, AMQP properties, headers and the decoded JSON body. fedora-messaging itself does not
install here; its consumer rejects bodies that are not UTF-8 JSON, so we do the same check.

usage: fm_consume.py AMQP_URL QUEUE COUNT [TIMEOUT_SECONDS]
"""
import json
import sys
import time

import pika


def plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def main():
    url, queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    got = 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue=queue, auto_ack=False)
        if method is None:
            time.sleep(0.05)
            continue
        try:
            decoded = json.loads(body.decode(props.content_encoding or "utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            ch.basic_nack(method.delivery_tag, requeue=False)
            print(json.dumps({"error": str(exc)}), flush=True)
            continue
        print(
            json.dumps(
                {
                    "routing_key": method.routing_key,
                    "exchange": method.exchange,
                    "content_type": props.content_type,
                    "content_encoding": props.content_encoding,
                    "delivery_mode": props.delivery_mode,
                    "message_id": props.message_id,
                    "priority": props.priority,
                    "headers": plain(props.headers or {}),
                    "header_types": {k: type(v).__name__ for k, v in (props.headers or {}).items()},
                    "body": decoded,
                },
                sort_keys=True,
            ),
            flush=True,
        )
        ch.basic_ack(method.delivery_tag)
        got += 1
    conn.close()
    return 0 if got == count else 1


if __name__ == "__main__":
    sys.exit(main())
