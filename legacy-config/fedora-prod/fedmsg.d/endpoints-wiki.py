# The wiki's php plugin cannot keep a bound socket, so it publishes through the relay (it is
# 'active'); the entries here are for the wiki's python helpers.
suffix = 'phx2.fedoraproject.org'
template = "tcp://{host}.{suffix}:{port}"

config = {
    "endpoints": {
        "wiki.app01": [template.format(host="app01", suffix=suffix, port=3020 + i) for i in range(4)],
        "wiki.app02": [template.format(host="app02", suffix=suffix, port=3020 + i) for i in range(4)],
        "mediawiki.app01": ["tcp://{0}.{1}:{2}".format("app01", suffix, 3030)],
    },
}
