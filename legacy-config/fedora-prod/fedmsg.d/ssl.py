# Message signing (X.509).  certnames maps a service key to the prefix of its cert/key pair in
# ssldir; routing_policy says which certificates may publish which topics.
import os

suffix = "phx2.fedoraproject.org"
prefix = "org.fedoraproject.prod"

app_hosts = ["app0%i" % i for i in range(1, 3)]

config = dict(
    sign_messages=True,
    validate_signatures=True,
    crypto_backend="x509",
    crypto_validate_backends=["x509"],
    ssldir=os.environ.get("FEDMSG_SSLDIR", "/etc/pki/fedmsg"),
    crl_location="https://fedoraproject.org/fedmsg/crl.pem",
    crl_cache="/var/run/fedmsg/crl.pem",
    crl_cache_expiry=10,
    ca_cert_location="https://fedoraproject.org/fedmsg/ca.crt",
    ca_cert_cache="/var/run/fedmsg/ca.crt",
    ca_cert_cache_expiry=0,

    certnames=dict(
        [("bodhi.%s" % host, "bodhi-%s.%s" % (host, suffix)) for host in app_hosts]
        + [("buildsys.koji0%i" % i, "buildsys-koji0%i.%s" % (i, suffix)) for i in (1, 2)]
        + [("pkgdb.pkgdb0%i" % i, "pkgdb-pkgdb0%i.%s" % (i, suffix)) for i in (1, 2)]
        + [("shell.%s" % host, "shell-%s.%s" % (host, suffix)) for host in ["batcave01"]]
    ),

    routing_nitpicky=False,
    routing_policy={
        # Only the bodhi app servers may announce pushes and overrides.
        prefix + ".bodhi.update.request.stable": [
            "bodhi-%s.%s" % (host, suffix) for host in app_hosts
        ],
        prefix + ".bodhi.buildroot_override.untag": [
            "bodhi-%s.%s" % (host, suffix) for host in app_hosts
        ],
        # Only the koji hubs may say a build finished.
        "%s.buildsys.build.state.change" % prefix: [
            "buildsys-koji01.%s" % suffix,
            "buildsys-koji02.%s" % suffix,
        ],
        "{0}.pkgdb.acl.update".format(prefix): [
            "pkgdb-pkgdb0%i.%s" % (i, suffix) for i in (1, 2)
        ],
    },
)
