# Site-local overrides are optional: hosts that have the package get its endpoints, others fall
# back to the defaults below.
try:
    from fedmsg_site_overrides import endpoints as extra_endpoints
except ImportError:
    extra_endpoints = {
        "nuancier.nuancier01": ["tcp://nuancier01.phx2.fedoraproject.org:3000"],
        "elections.elections01": ["tcp://elections01.phx2.fedoraproject.org:3000"],
    }

config = dict(endpoints=extra_endpoints)
