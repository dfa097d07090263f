# Settings shared by every fedmsg process on the host (modelled on Fedora Infrastructure's
# ansible-managed /etc/fedmsg.d/base.py).
config = dict(
    topic_prefix="org.fedoraproject",
    environment="prod",

    # 0 = no limit: a slow subscriber grows the publisher's queue instead of losing messages.
    high_water_mark=0,
    io_threads=1,

    ## For the fedmsg-hub and fedmsg-relay. ##
    zmq_enabled=True,
    zmq_strict=False,

    # Seconds to sleep after init so the PUB socket is connected before the first send.
    post_init_sleep=1.0,

    # Milliseconds to wait for queued messages on close.
    zmq_linger=1000,

    # TCP keepalive, see zmq_setsockopt(3).
    zmq_tcp_keepalive=1,
    zmq_tcp_keepalive_cnt=3,
    zmq_tcp_keepalive_idle=60,
    zmq_tcp_keepalive_intvl=5,

    # Back off reconnects so a dead host does not cause a reconnect storm.
    zmq_reconnect_ivl=100,
    zmq_reconnect_ivl_max=1000,

    # The public gateway re-broadcasts the whole bus on this one port.
    **{"fedmsg.consumers.gateway.port": 9940}
)
