# copr lives in the cloud, outside phx2, so it has its own domain.
copr_domain = "cloud.fedoraproject.org"

frontends = ["copr-fe"]
backends = ["copr-be", "copr-be-dev"]

config = dict(
    endpoints=dict(
        [("copr.%s" % name, ["tcp://%s.%s:50%02d" % (name, copr_domain, i) for i in range(4)])
         for name in frontends]
        + [("copr.%s" % name, ["tcp://%s.%s:%d" % (name, copr_domain, 5010 + i) for i in range(2)])
           for name in backends]
    ),
)
