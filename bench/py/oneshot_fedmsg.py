#!/usr/bin/python3
"""fedmsg-logger for one message, reproduced: a fresh process builds a PUB socket, connects it to the relay
(fedmsg-logger's active mode), sleeps fedmsg's post_init_sleep (0.5 s) for the slow joiner, sends one
message in fedmsg's framing and exits (linger 1 s, as fedmsg's default zmq_linger).

    oneshot_fedmsg.py ENDPOINT
"""
import datetime
import getpass
import json
import sys
import time
import uuid

import zmq

ctx = zmq.Context()
s = ctx.socket(zmq.PUB)
s.setsockopt(zmq.LINGER, 1000)
s.connect(sys.argv[1])
time.sleep(0.5)  # fedmsg post_init_sleep
topic = "org.fedoraproject.prod.logger.log"
msg = {"topic": topic, "msg": {"log": "{}"}, "timestamp": int(time.time()),
       "msg_id": str(datetime.datetime.utcnow().year) + "-" + str(uuid.uuid4()), "i": 1,
       "username": getpass.getuser()}
s.send_multipart([topic.encode(), json.dumps(msg, sort_keys=True, separators=(",", ":")).encode()])
s.close()
ctx.term()
