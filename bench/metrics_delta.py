#!/usr/bin/env python3
"""bench/metrics_delta.py BEFORE AFTER: the requests wharf counted between two
scrapes of its /metrics (wharf_http_requests_total by route and status),
leaving out the /metrics scrapes themselves. Prints one line:
    total=N ok2xx=N non2xx=N by_status=200:N,404:N
"""
import re
import sys

LINE = re.compile(r'^wharf_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def load(path):
    counts = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            labels = dict(LABEL.findall(m.group('labels')))
            if 'metrics' in labels.get('route', ''):
                continue
            key = (labels.get('route', ''), labels.get('method', ''), labels.get('status', ''))
            counts[key] = counts.get(key, 0) + float(m.group('value'))
    return counts


before, after = load(sys.argv[1]), load(sys.argv[2])
by_status = {}
for key, v in after.items():
    d = int(v - before.get(key, 0))
    if d:
        by_status[key[2]] = by_status.get(key[2], 0) + d
total = sum(by_status.values())
ok = sum(v for s, v in by_status.items() if s.startswith('2'))
print('total=%d ok2xx=%d non2xx=%d by_status=%s' % (
    total, ok, total - ok,
    ','.join('%s:%d' % kv for kv in sorted(by_status.items())) or '-'))
