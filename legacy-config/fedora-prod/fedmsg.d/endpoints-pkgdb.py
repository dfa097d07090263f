# pkgdb runs on two app servers with 8 wsgi threads each, plus a cron job on the batcave.
# dict([...] + [...]) is how the ansible template glued the generated pieces together.
suffix = 'phx2.fedoraproject.org'

pkgdb_hosts = ['pkgdb01', 'pkgdb02']

config = dict(
    endpoints=dict(
        [
            ("pkgdb.%s" % host, ["tcp://%s.%s:30%02i" % (host, suffix, i) for i in range(8)])
            for host in pkgdb_hosts
        ] + [
            ("pkgdb.batcave01", ["tcp://batcave01.%s:3010" % suffix]),
        ]
    ),
)
