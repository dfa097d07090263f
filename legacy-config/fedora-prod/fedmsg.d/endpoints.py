# Endpoints of the core services.  One entry per process *and* thread: mod_wsgi runs several
# processes with a few threads each, so every service gets a range of ports generated below.
suffix = 'phx2.fedoraproject.org'
vpn_suffix = 'vpn.fedoraproject.org'

config = dict(
    endpoints={
        # The relay republishes what active publishers (fedmsg-logger, git hooks) send it.
        "relay_outbound": [
            "tcp://busgateway01.%s:3999" % suffix,
        ],
        # The public gateway.
        "gateway.busgateway01": [
            "tcp://busgateway01.%s:9940" % suffix,
        ],
        "bodhi.app01": ["tcp://app01.%s:30%02i" % (suffix, i) for i in range(8)],
        "bodhi.app02": ["tcp://app02.%s:30%02i" % (suffix, i) for i in range(8)],
        "fas.fas01": ["tcp://fas01.%s:30%02i" % (suffix, i) for i in range(40)],
        "fas.fas02": ["tcp://fas02.%s:30%02i" % (suffix, i) for i in range(40)],
        "fas.fas03": ["tcp://fas03.%s:30%02i" % (suffix, i) for i in range(40)],
        # koji's hub runs under httpd on two hosts, plus the koji builders' messages
        # come through the buildsys name.
        "buildsys.koji01": ["tcp://koji01.%s:30%02i" % (suffix, i) for i in range(24)],
        "buildsys.koji02": ["tcp://koji02.%s:30%02i" % (suffix, i) for i in range(24)],
        "fedocal.fedocal01": ["tcp://fedocal01.%s:30%02i" % (suffix, i) for i in range(4)],
        "fedocal.fedocal02": ["tcp://fedocal02.%s:30%02i" % (suffix, i) for i in range(4)],
        "summershum.summershum01": [
            "tcp://summershum01.%s:3000" % suffix,
        ],
        "batcave.batcave01": [
            "tcp://batcave01.%s:30%02i" % (suffix, i) for i in range(2)
        ],
        # A box that only speaks over the VPN.
        "mailman.mailman01": ["tcp://mailman01.%s:300%i" % (vpn_suffix, i) for i in range(4)],
    },
)
