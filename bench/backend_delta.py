#!/usr/bin/env python3
"""bench/backend_delta.py BEFORE AFTER N: what wharf's backend requests cost
between two scrapes of its /metrics (wharf_backend_requests_total and
wharf_backend_request_microseconds_total by backend and operation), per one
of the N operations the benchmark ran in between. Prints one line:
    s3.PutObject=2.0x/133.0ms s3.CopyObject=1.0x/82.8ms ... (busiest first)
"""
import re
import sys

LINE = re.compile(r'^wharf_backend_(requests_total|request_microseconds_total)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def load(path):
    calls, us = {}, {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            labels = dict(LABEL.findall(m.group('labels')))
            key = labels.get('backend', '?') + '.' + labels.get('operation', '?')
            into = calls if m.group(1) == 'requests_total' else us
            into[key] = into.get(key, 0) + float(m.group('value'))
    return calls, us


(c0, u0), (c1, u1) = load(sys.argv[1]), load(sys.argv[2])
n = max(float(sys.argv[3]), 1)
rows = []
for key in set(c1) | set(u1):
    dc, du = c1.get(key, 0) - c0.get(key, 0), u1.get(key, 0) - u0.get(key, 0)
    if dc or du:
        rows.append((du, f"{key}={dc / n:.1f}x/{du / n / 1000:.1f}ms"))
print(' '.join(r for _, r in sorted(rows, reverse=True)) or 'none')
