-- bench/wrk-report.lua: no per-request Lua (wrk keeps its fast static
-- request path); at the end prints one machine-readable line that
-- bench/registry.sh parses:
--   WRK_RESULT requests=N bytes=N duration_us=N connect=N read=N write=N
--              status=N timeout=N p50_us=N p99_us=N max_us=N
-- `status` is wrk's own count of responses with a status >= 400.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
