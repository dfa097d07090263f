# anitya (release-monitoring.org) publishes from a single host outside the datacentre.
import socket  # noqa: F401  (imported by the real file for the local entry; unused here)

config = dict(
    endpoints={
        "anitya.anitya01": [
            'tcp://release-monitoring.org:9940',
        ],
        "anitya.frontend": [
            'tcp://anitya-frontend01.vpn.fedoraproject.org:30%02i' % i
            for i in range(0, 8)
            if i % 2 == 0
        ],
    },
)
