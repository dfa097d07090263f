# A tiny local bus for the demo and the shim tests: everything on 127.0.0.1, ports 47000-47999.
config = dict(
    topic_prefix="org.example",
    environment="dev",
    high_water_mark=0,
    io_threads=1,
    post_init_sleep=0.2,
    zmq_enabled=True,
    zmq_strict=False,
    zmq_linger=1000,
    sign_messages=False,
    validate_signatures=False,
)
