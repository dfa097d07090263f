# Logging for fedmsg-hub and friends.  The ContextInjector filter adds the host and process to
# every record so mails from the SMTP handler say where they came from.  The class is why this
# file needs real python to evaluate.
import logging
import os
import socket

hostname = socket.gethostname().split('.')[0]


class ContextInjector(logging.Filter):
    """Inject host/pid/cwd into every record."""

    def filter(self, record):
        record.host = hostname
        record.proc = os.getpid()
        record.cwd = os.getcwd()
        return True


bare_format = "[%(asctime)s][%(name)10s %(levelname)7s] %(message)s"
mail_format = """
Message
-------
[%(asctime)s][%(name)10s %(levelname)7s]
%(message)s

Process Details
---------------
host:     %(host)s
PID:      %(proc)s
cwd:      %(cwd)s
"""

config = dict(
    logging=dict(
        version=1,
        formatters=dict(
            bare={"datefmt": "%Y-%m-%d %H:%M:%S", "format": bare_format},
            mail={"datefmt": "%Y-%m-%d %H:%M:%S", "format": mail_format},
        ),
        filters=dict(
            context={
                # dictConfig calls this factory; it is a class, not JSON, so loaders drop it.
                "()": ContextInjector,
            },
        ),
        handlers=dict(
            console={
                "class": "logging.StreamHandler",
                "formatter": "bare",
                "level": "INFO",
                "stream": "ext://sys.stdout",
            },
            mailer={
                "class": "logging.handlers.SMTPHandler",
                "formatter": "mail",
                "filters": ["context"],
                "level": "ERROR",
                "mailhost": "bastion.%s" % "phx2.fedoraproject.org",
                "fromaddr": "fedmsg@fedoraproject.org",
                "toaddrs": ["sysadmin-datanommer-members@fedoraproject.org"],
                "subject": "fedmsg error on %s" % hostname,
            },
        ),
        loggers=dict(
            fedmsg={"level": "INFO", "propagate": False, "handlers": ["console"]},
            moksha={"level": "INFO", "propagate": False, "handlers": ["console"]},
        ),
    ),
)
