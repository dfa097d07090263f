# Every host also lists its own fedmsg-logger helper under <service>.<short hostname>.
import socket
hostname = socket.gethostname().split('.', 1)[0]

config = dict(
    endpoints={
        "logger.%s" % hostname: [
            "tcp://127.0.0.1:3%03d" % (900 + i) for i in range(3)
        ],
    },
)
