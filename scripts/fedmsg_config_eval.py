#!/usr/bin/env python3
"""Evaluate fedmsg configuration files exactly the way fedmsg's loader does, and print JSON.

fedmsg executes each ``*.py`` file with a fresh globals dict, takes its ``config`` variable and merges
the dicts recursively in order (later wins; nested dicts merged, other values replaced). This script
does the same, inside bounds: a CPU/wall timer, an address-space limit and no network access (the
``socket`` module is patched in place, so ``import socket`` inside a config gets the patched one, but
``socket.gethostname()`` keeps working and can be overridden with ``--hostname``).

Output on stdout (one JSON document)::

    {"config": {...}, "files": [...], "without_config": [...], "origins": {"key": file, "key.sub": file},
     "dropped": [{"file", "path", "type", "action"}], "errors": [{"file", "line", "kind", "type", "message"}]}

Progress markers ``@@herald-eval begin <file>`` go to stderr so the caller can name the file being
executed if it has to kill this process.
"""

import argparse
import json
import math
import os
import signal
import socket
import sys
import traceback

MARKER = "@@herald-eval begin "


class EvalTimeout(BaseException):
    """Raised by the interval timer; a BaseException so a config's `except Exception` cannot eat it."""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="a fedmsg.d directory or a single fedmsg-config.py file")
    p.add_argument("--hostname", default=None, help="value returned by socket.gethostname()")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for all files together")
    p.add_argument("--memory", type=int, default=512 * 1024 * 1024, help="RLIMIT_AS in bytes (0 = none)")
    return p.parse_args(argv)


def gather(path):
    """The files fedmsg would read: every *.py of a directory in lexical order, or the file itself."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith(".py"))
        return [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
    return [path]


def block_network(hostname):
    """Patch the socket module in place: no connections, no DNS; gethostname() still answers."""

    def refuse(*_args, **_kwargs):
        raise OSError("network access is disabled while evaluating fedmsg configuration")

    class NoNetSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            refuse()

    socket.socket = NoNetSocket
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
                 "gethostbyaddr", "getnameinfo", "socketpair", "fromfd", "create_server"):
        if hasattr(socket, name):
            setattr(socket, name, refuse)
    if hostname is not None:
        socket.gethostname = lambda: hostname
    real_gethostname = socket.gethostname
    # getfqdn() does reverse DNS; without network the best honest answer is the hostname itself.
    socket.getfqdn = lambda name="": name or real_gethostname()


def recursive_update(d1, d2):
    """fedmsg.config._recursive_update: nested dicts merged, everything else replaced."""
    for k in set(d1).intersection(d2):
        if isinstance(d1[k], dict) and isinstance(d2[k], dict):
            d1[k] = recursive_update(d1[k], d2[k])
        else:
            d1[k] = d2[k]
    for k in set(d2).difference(d1):
        d1[k] = d2[k]
    return d1


def sanitize(value, fname, path, dropped, depth=0, seen=None):
    """Keep JSON-representable values; convert tuples/sets to lists, stringify odd keys, drop the rest."""
    seen = set() if seen is None else seen
    shown = ".".join(path) or "(config)"
    if depth > 64:
        dropped.append({"file": fname, "path": shown, "type": "nesting", "action": "dropped"})
        return DROP
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        dropped.append({"file": fname, "path": shown, "type": "float", "action": "dropped"})
        return DROP
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in seen:
            dropped.append({"file": fname, "path": shown, "type": "cycle", "action": "dropped"})
            return DROP
        seen = seen | {id(value)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k
            if not isinstance(k, str):
                if k is None or isinstance(k, (bool, int, float)):
                    key = json.dumps(k)
                else:
                    key = str(k)
                dropped.append({"file": fname, "path": ".".join(path + [key]),
                                "type": type(k).__name__ + " key", "action": "stringified"})
            v2 = sanitize(v, fname, path + [key], dropped, depth + 1, seen)
            if v2 is not DROP:
                out[key] = v2
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if isinstance(value, (set, frozenset)):
            try:
                items = sorted(items)
            except TypeError:
                pass
            dropped.append({"file": fname, "path": shown, "type": type(value).__name__,
                            "action": "converted to list"})
        out = []
        for i, v in enumerate(items):
            v2 = sanitize(v, fname, path + [str(i)], dropped, depth + 1, seen)
            if v2 is not DROP:
                out.append(v2)
        return out
    dropped.append({"file": fname, "path": shown, "type": type(value).__name__, "action": "dropped"})
    return DROP


DROP = object()


def line_in(fname, tb):
    """The line of `fname` nearest the failure in a traceback (the config line that triggered it)."""
    line = None
    for frame in traceback.extract_tb(tb):
        if frame.filename == fname:
            line = frame.lineno
    return line


def exec_file(fname, state):
    sys.stderr.write(MARKER + fname + "\n")
    sys.stderr.flush()
    try:
        with open(fname, encoding="utf-8") as f:
            source = f.read()
        code = compile(source, fname, "exec")
        variables = {}
        exec(code, variables)
    except EvalTimeout:
        raise
    except SyntaxError as e:
        state["errors"].append({"file": fname, "line": e.lineno, "kind": "syntax",
                                "type": type(e).__name__, "message": e.msg or str(e)})
        return
    except MemoryError:
        state["errors"].append({"file": fname, "line": line_in(fname, sys.exc_info()[2]), "kind": "memory",
                                "type": "MemoryError", "message": "memory limit exceeded"})
        return
    except (OSError, UnicodeDecodeError) as e:
        kind = "exception" if fname in [f.filename for f in traceback.extract_tb(e.__traceback__)] else "io"
        state["errors"].append({"file": fname, "line": line_in(fname, e.__traceback__), "kind": kind,
                                "type": type(e).__name__, "message": str(e)})
        return
    except BaseException as e:  # SystemExit, KeyboardInterrupt from a config are errors of that file too
        state["errors"].append({"file": fname, "line": line_in(fname, e.__traceback__), "kind": "exception",
                                "type": type(e).__name__, "message": str(e)})
        return
    if "config" not in variables:
        state["without_config"].append(fname)
        return
    cfg = variables["config"]
    if not isinstance(cfg, dict):
        state["errors"].append({"file": fname, "line": None, "kind": "exception", "type": "TypeError",
                                "message": "`config` is a %s, not a dict" % type(cfg).__name__})
        return
    clean = sanitize(cfg, fname, [], state["dropped"])
    for k, v in clean.items():
        state["origins"][k] = fname
        if isinstance(v, dict):
            for k2 in v:
                state["origins"][k + "." + k2] = fname
    recursive_update(state["config"], clean)


def main(argv):
    args = parse_args(argv)
    real_stdout = sys.stdout
    # A config that prints must not corrupt our JSON: everything it writes goes to stderr.
    sys.stdout = sys.stderr
    state = {"config": {}, "files": [], "without_config": [], "origins": {}, "dropped": [], "errors": []}
    path = os.path.abspath(args.path)
    if not os.path.exists(path):
        state["errors"].append({"file": path, "line": None, "kind": "io", "type": "FileNotFoundError",
                                "message": "no such file or directory"})
    else:
        state["files"] = gather(path)
        block_network(args.hostname)
        if args.memory > 0:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))

        def on_alarm(_signum, _frame):
            raise EvalTimeout()

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, max(args.timeout, 0.001))
        current = None
        try:
            for fname in state["files"]:
                current = fname
                exec_file(fname, state)
        except EvalTimeout as e:
            state["errors"].append({"file": current, "line": line_in(current, e.__traceback__),
                                    "kind": "timeout", "type": "Timeout",
                                    "message": "still running after %gs" % args.timeout})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    real_stdout.write(json.dumps(state, sort_keys=True))
    real_stdout.write("\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
