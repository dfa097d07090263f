# Active publishers (fedmsg-logger, the git hooks, the wiki's php plugin) connect their PUB socket
# here; fedmsg-relay has a SUB socket bound on each and republishes on relay_outbound.
config = dict(
    relay_inbound=[
        "tcp://busgateway01.phx2.fedoraproject.org:9941",
        "tcp://busgateway01.vpn.fedoraproject.org:9941",
    ],
)
