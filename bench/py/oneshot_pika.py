#!/usr/bin/python3
"""`fedora-messaging publish` of one message, reproduced: a fresh process connects with pika, enables
confirms, publishes one persistent message to amq.topic and waits for the confirm, then closes.

    oneshot_pika.py URL
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
ch.basic_publish("amq.topic", "org.fedoraproject.prod.bench.oneshot", json.dumps({}).encode(), props)
conn.close()
