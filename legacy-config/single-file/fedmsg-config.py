# The single-file form: /etc/fedmsg-config.py holding the whole configuration.
import socket

hostname = socket.gethostname().split('.')[0]

config = dict(
    topic_prefix="org.fedoraproject",
    environment="stg",
    high_water_mark=0,
    io_threads=1,
    zmq_linger=500,
    zmq_reconnect_ivl=100,

    endpoints={
        # Listen to the upstream infrastructure's staging gateway.
        "fedora-infrastructure": "tcp://stg.fedoraproject.org:9940",
        "relay_outbound": ["tcp://127.0.0.1:4001"],
        "bodhi.%s" % hostname: ["tcp://127.0.0.1:30%02i" % i for i in range(4)],
        "fas.%s" % hostname: ["tcp://127.0.0.1:3010"],
        "pkgdb.%s" % hostname: ["tcp://127.0.0.1:%d" % (3020 + i) for i in range(2)],
        "local.ipc": ["ipc:///var/run/fedmsg/local.sock"],
    },

    relay_inbound="tcp://127.0.0.1:2003",
    active=False,
    name="bodhi.%s" % hostname,

    certnames={
        "bodhi.%s" % hostname: "bodhi-%s.stg.phx2.fedoraproject.org" % hostname,
    },
    routing_policy={
        "org.fedoraproject.stg.bodhi.update.comment": [
            "bodhi-%s.stg.phx2.fedoraproject.org" % hostname,
        ],
    },
    routing_nitpicky=True,
)
