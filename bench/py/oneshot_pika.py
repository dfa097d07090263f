#!/usr/bin/python3
"""`fedora-messaging publish` of one message, reproduced: a fresh process connects with pika, enables
confirms, publishes one persistent message (mandatory, as fedora-messaging does) to amq.topic and waits
for the confirm, then closes.

    oneshot_pika.py URL ROUTING_KEY

ROUTING_KEY is bound to a durable queue by the caller (bench/figures/cli.mjs, deleted after the group), so
the confirm means the message was routed and persisted, as herald's ack means it was stored: an unbound
key would be confirmed without any queue writing it.
"""
import json
import sys
import uuid

import pika

conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.confirm_delivery()
props = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=str(uuid.uuid4()),
                             headers={"fedora_messaging_schema": "base.message"})
ch.basic_publish("amq.topic", sys.argv[2], json.dumps({}).encode(), props, mandatory=True)
conn.close()
