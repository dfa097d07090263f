# The long tail of smaller apps: one or two wsgi processes each, listed in a table and expanded with
# a dict comprehension.
suffix = 'phx2.fedoraproject.org'

# (service, host, number of endpoints, first port)
_apps = [
    ("fmn", "notifs-backend01", 4, 3000),
    ("fmn", "notifs-web01", 2, 3000),
    ("datanommer", "busgateway01", 1, 3010),
    ("github2fedmsg", "github2fedmsg01", 2, 3000),
    ("koschei", "koschei-backend01", 3, 3000),
    ("kerneltest", "kerneltest01", 1, 3000),
    ("mirrormanager", "mm-backend01", 2, 3000),
    ("fedimg", "fedimg01", 4, 3000),
    ("hotness", "hotness01", 1, 3000),
    ("fedbadges", "badges-backend01", 1, 3000),
    ("fedbadges", "badges-web01", 2, 3000),
    ("tagger", "tagger01", 2, 3000),
]

config = {
    "endpoints": {
        "%s.%s" % (service, host): [
            "tcp://%s.%s:%d" % (host, suffix, port + i) for i in range(count)
        ]
        for service, host, count, port in _apps
    },
}
