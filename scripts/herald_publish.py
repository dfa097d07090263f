#!/usr/bin/python3
"""Publish to a herald broker from Python, using only Debian's python3-zmq (and python3-yaml to read herald's file).

Copy this into a legacy fedmsg application: it replaces `fedmsg.publish(topic=..., msg=...)` with an
acknowledged, durable submit. See docs/submit-protocol.md.

    herald_publish.py [--config herald.yaml | --endpoint ipc:///run/herald/submit.sock] TOPIC '{"json": "body"}'

Without --endpoint it finds the broker as herald's own clients do: herald's YAML file (--config,
$HERALD_CONFIG, else /etc/herald/herald.yaml if present; reading it needs python3-yaml), the HERALD_*
variables for the runtime directory and submit endpoints, then the defaults.
"""
import argparse
import getpass
import json
import os
import socket
import sys
import time
import uuid

import zmq

PROTOCOL = b"HERALD1"


class HeraldError(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code


def _config_file(explicit=None):
    """herald's own lookup: --config, else $HERALD_CONFIG (must exist), else /etc/herald/herald.yaml if present."""
    path = explicit or os.environ.get("HERALD_CONFIG")
    if path:
        if not os.path.isfile(path):
            raise HeraldError("CONFIG", "herald configuration %s does not exist: fix the path (--config or "
                              "HERALD_CONFIG), or pass --endpoint" % path)
        return path
    return "/etc/herald/herald.yaml" if os.path.isfile("/etc/herald/herald.yaml") else None


def _read_config(path):
    """The parts of herald's YAML that say where the broker listens: {} when there is no file."""
    if path is None:
        return {}
    try:
        import yaml
    except ImportError:
        raise HeraldError("CONFIG", "reading herald's configuration %s needs PyYAML: install python3-yaml, or "
                          "pass --endpoint (`herald config show` prints where the broker listens)" % path)
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise HeraldError("CONFIG", "cannot read herald configuration %s: %s; fix it (`herald config check`) "
                          "or pass --endpoint" % (path, e))
    return doc if isinstance(doc, dict) else {}


def _section(doc, key):
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _env_value(name):
    """A HERALD_* variable as herald reads it: a YAML scalar (`false`, `[tcp://...]`), else the string.

    The values that matter here (booleans, a flow list of endpoints) are read without PyYAML too."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if text in ("true", "True", "false", "False"):
        return text.lower() == "true"
    if text.startswith("[") and text.endswith("]"):
        return [x.strip().strip("'\"") for x in text[1:-1].split(",") if x.strip()]
    return raw


def _env_list(name, current):
    """A list set whole (NAME) and/or item by item (NAME__0, NAME__1, ...), as herald applies them."""
    value = _env_value(name)
    items = list(value) if isinstance(value, list) else list(current) if isinstance(current, list) else []
    n = 0
    while ("%s__%d" % (name, n)) in os.environ:
        item = os.environ["%s__%d" % (name, n)]
        items[n:n + 1] = [item]
        n += 1
    return items


def default_endpoint(config=None):
    """Where herald's own clients submit: the same configuration lookup, variables and defaults.

    IPC at <paths.runtimeDir>/submit.sock unless broker.submit.ipc is false, then the first of
    broker.submit.tcp (0.0.0.0 or * as 127.0.0.1). A relative runtimeDir in the file is relative to the
    file's directory, in a variable to the current directory, as for herald.
    """
    path = _config_file(config)
    doc = _read_config(path)
    runtime = os.environ.get("HERALD_PATHS__RUNTIME_DIR")
    if runtime:
        runtime = os.path.abspath(runtime)
    else:
        runtime = _section(doc, "paths").get("runtimeDir")
        if isinstance(runtime, str) and runtime:
            runtime = os.path.join(os.path.dirname(os.path.abspath(path)), runtime)
        else:
            xdg = os.environ.get("XDG_RUNTIME_DIR")
            runtime = os.path.join(xdg, "herald") if xdg else (
                "/run/herald" if os.geteuid() == 0 else "/tmp/herald-%d" % os.getuid())
    submit = _section(_section(doc, "broker"), "submit")
    ipc = _env_value("HERALD_BROKER__SUBMIT__IPC")
    ipc = submit.get("ipc", True) if ipc is None else ipc
    tcp = _env_list("HERALD_BROKER__SUBMIT__TCP", submit.get("tcp", []))
    if ipc is False and isinstance(tcp, list) and tcp and isinstance(tcp[0], str):
        return tcp[0].replace("://0.0.0.0:", "://127.0.0.1:").replace("://*:", "://127.0.0.1:")
    return "ipc://" + os.path.join(runtime, "submit.sock")


def new_id():
    """A UUIDv7: time-sortable, like herald's own ids."""
    ms = int(time.time() * 1000)
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(b)))


class Publisher(object):
    """Lazy Pirate client: on timeout, reconnect and resend the SAME ids (the broker deduplicates)."""

    def __init__(self, endpoint=None, timeout_ms=2500, retries=3, app=None, config=None):
        self.endpoint = endpoint or default_endpoint(config)
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.ctx = zmq.Context.instance()
        self.sock = None
        self.origin = {"host": socket.gethostname(), "app": app or os.path.basename(sys.argv[0]),
                       "pid": os.getpid(), "user": getpass.getuser()}

    def _unreachable(self):
        """Why this user may not reach an ipc:// socket (permission denied), else None.

        Checked before sending: ZeroMQ would wait out every try and end in a TIMEOUT blaming the broker.
        A socket that is not there yet is no such reason: the broker may be restarting, and the tries
        below reach it once it is back (then TIMEOUT if it never comes).
        """
        if not self.endpoint.startswith("ipc://"):
            return None
        path = self.endpoint[len("ipc://"):]
        if os.access(path, os.W_OK):
            return None
        see = 'see herald docs/security.md, "IPC sockets and file permissions"'
        parts = [x for x in os.path.dirname(os.path.abspath(path)).split("/") if x]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if os.path.isdir(d) and not os.access(d, os.X_OK):
                return HeraldError("SECURITY", "cannot reach the broker at %s: permission denied on the directory "
                                   "%s: uid %d may not enter it. Fix: add this user to the broker's group (the "
                                   "group of paths.runtimeDir), or publish as a user in it; %s"
                                   % (self.endpoint, d, os.getuid(), see))
        if not os.path.exists(path):
            return None
        return HeraldError("SECURITY", "cannot reach the broker at %s: permission denied on the socket %s: "
                           "connecting needs write permission on it. Fix: add uid %d to the socket's group "
                           "(herald serve makes it group-writable in a runtime directory closed to others); %s"
                           % (self.endpoint, path, os.getuid(), see))

    def _socket(self):
        if self.sock is None:
            self.sock = self.ctx.socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(self.endpoint)
        return self.sock

    def publish(self, topic, body, headers=None):
        """Returns the broker's ack dict; raises HeraldError with the broker's error code."""
        msg = {"id": new_id(), "topic": topic, "body": body, "origin": self.origin,
               "sent_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"}
        if headers:
            msg["headers"] = headers
        result = self.publish_many([msg])[0]
        if not result["ok"]:
            raise HeraldError(result["error"]["code"], result["error"]["message"])
        return result

    def publish_many(self, messages):
        problem = self._unreachable()
        if problem is not None:
            raise problem
        request_id = uuid.uuid4().hex.encode()
        try:
            # allow_nan=False: NaN/Infinity are not JSON; the broker would refuse the whole request.
            payload = json.dumps({"messages": messages}, allow_nan=False).encode("utf-8")
        except ValueError as e:
            raise HeraldError("INVALID", "%s: NaN and Infinity are not JSON; send such a value as a string" % e)
        for _ in range(self.retries + 1):
            sock = self._socket()
            sock.send_multipart([PROTOCOL, request_id, payload])
            if sock.poll(self.timeout_ms, zmq.POLLIN):
                proto, rid, reply = sock.recv_multipart()
                if rid != request_id:
                    continue
                reply = json.loads(reply.decode("utf-8"))
                if "error" in reply:
                    raise HeraldError(reply["error"]["code"], reply["error"]["message"])
                return reply["results"]
            self.sock.close()
            self.sock = None
        raise HeraldError(
            "TIMEOUT",
            "no answer from %s: is `herald serve` running? This endpoint comes from herald's configuration "
            "lookup (--config, HERALD_CONFIG, /etc/herald/herald.yaml, HERALD_* variables); if the broker runs "
            "with another file, pass --config or --endpoint (`herald config show` prints the values)"
            % self.endpoint)

    def close(self):
        if self.sock is not None:
            self.sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=None, help="default: found like herald's own clients find it")
    p.add_argument("--config", default=None, help="herald's YAML file (default: $HERALD_CONFIG, "
                   "/etc/herald/herald.yaml if present)")
    p.add_argument("--timeout-ms", type=int, default=2500)
    p.add_argument("topic")
    p.add_argument("body", nargs="?", default="{}")
    args = p.parse_args()
    try:
        pub = Publisher(args.endpoint, args.timeout_ms, config=args.config)
    except HeraldError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    try:
        ack = pub.publish(args.topic, json.loads(args.body))
        print(json.dumps(ack))
    except HeraldError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    finally:
        pub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
