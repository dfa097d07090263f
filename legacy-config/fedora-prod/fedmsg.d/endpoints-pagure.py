# pagure publishes from its web workers and from the git hooks' worker pool.  Built with a for
# loop the way the template iterated over its inventory group.
config = dict(endpoints={})

pagure_hosts = [
    ('pagure01', 'fedoraproject.org', 8),
    ('pagure02', 'vpn.fedoraproject.org', 4),
]

for host, domain, threads in pagure_hosts:
    config['endpoints']['pagure.%s' % host] = [
        'tcp://%s.%s:30%02i' % (host, domain, i) for i in range(threads)
    ]

config['endpoints'].update({
    'pagure.hooks': ['tcp://pagure01.fedoraproject.org:3100'],
})
