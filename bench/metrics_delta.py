#!/usr/bin/env python3
"""bench/metrics_delta.py: what wharf counted between two scrapes of /metrics.

    metrics_delta.py BEFORE AFTER
        requests by status (wharf_http_requests_total), leaving out the
        /metrics scrapes themselves; one line:
        total=N ok2xx=N non2xx=N by_status=200:N,404:N
    metrics_delta.py --backend BEFORE AFTER N
        backend requests (wharf_backend_requests_total and
        wharf_backend_request_microseconds_total by backend and operation)
        per one of the N operations run in between; one line, busiest first:
        s3.PutObject=2.0x/133.0ms s3.CopyObject=1.0x/82.8ms ...
"""
import re
import sys

LINE = re.compile(r'^(?P<name>\w+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(path, names):
    """(name, {label: value}, value) of every sample of the metrics `names`."""
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m and m.group('name') in names:
                yield m.group('name'), dict(LABEL.findall(m.group('labels'))), float(m.group('value'))


def http_requests(path):
    counts = {}
    for _, labels, v in samples(path, {'wharf_http_requests_total'}):
        if 'metrics' in labels.get('route', ''):
            continue
        key = (labels.get('route', ''), labels.get('method', ''), labels.get('status', ''))
        counts[key] = counts.get(key, 0) + v
    return counts


def by_status(before_path, after_path):
    before, after = http_requests(before_path), http_requests(after_path)
    statuses = {}
    for key, v in after.items():
        d = int(v - before.get(key, 0))
        if d:
            statuses[key[2]] = statuses.get(key[2], 0) + d
    total = sum(statuses.values())
    ok = sum(v for s, v in statuses.items() if s.startswith('2'))
    return 'total=%d ok2xx=%d non2xx=%d by_status=%s' % (
        total, ok, total - ok, ','.join('%s:%d' % kv for kv in sorted(statuses.items())) or '-')


def backend_calls(path):
    calls, us = {}, {}
    for name, labels, v in samples(path, {'wharf_backend_requests_total', 'wharf_backend_request_microseconds_total'}):
        key = labels.get('backend', '?') + '.' + labels.get('operation', '?')
        into = calls if name == 'wharf_backend_requests_total' else us
        into[key] = into.get(key, 0) + v
    return calls, us


def per_operation(before_path, after_path, n):
    (c0, u0), (c1, u1) = backend_calls(before_path), backend_calls(after_path)
    n = max(n, 1)
    rows = []
    for key in set(c1) | set(u1):
        dc, du = c1.get(key, 0) - c0.get(key, 0), u1.get(key, 0) - u0.get(key, 0)
        if dc or du:
            rows.append((du, f"{key}={dc / n:.1f}x/{du / n / 1000:.1f}ms"))
    return ' '.join(r for _, r in sorted(rows, reverse=True)) or 'none'


if __name__ == '__main__':
    if sys.argv[1] == '--backend':
        print(per_operation(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    else:
        print(by_status(sys.argv[1], sys.argv[2]))
