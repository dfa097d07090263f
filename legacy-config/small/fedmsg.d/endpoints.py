# Three publishing services with literal endpoints, and the relay the active publishers use.
config = dict(
    endpoints={
        "bodhi.demo": [
            "tcp://127.0.0.1:47001",
            "tcp://127.0.0.1:47002",
        ],
        "koji.demo": [
            "tcp://127.0.0.1:47011",
        ],
        "wiki.demo": [
            "tcp://127.0.0.1:47021",
            "tcp://127.0.0.1:47022",
            "tcp://127.0.0.1:47023",
        ],
    },
    # fedmsg-logger and other `active` publishers connect here.
    relay_inbound="tcp://127.0.0.1:47900",
)
