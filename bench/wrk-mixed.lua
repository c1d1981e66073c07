-- bench/wrk-mixed.lua: the many-clients load test. Each connection
-- alternates a manifest GET by tag (with an Accept header) and a blob GET:
--
--   wrk -t2 -c1000 -d30s -s bench/wrk-mixed.lua URL -- MANIFEST_PATH ACCEPT BLOB_PATH
--
-- No response() callback on purpose: with one, wrk copies every response
-- body into Lua (1 MiB per blob GET) and becomes the bottleneck at -c1000.
-- wrk still counts every status >= 400 (errors.status); bench/registry.sh
-- adds the server-side count of non-2xx from wharf's /metrics, which also
-- catches 1xx/3xx. Prints the same WRK_RESULT line as wrk-report.lua plus
-- manifests= and blobs= (requests issued of each kind).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  manifest_req = wrk.format("GET", args[1], { ["Accept"] = args[2] })
  blob_req = wrk.format("GET", args[3])
  -- globals, so that done() can read them with thread:get()
  n = 0
  manifests = 0
  blobs = 0
end

function request()
  n = n + 1
  if n % 2 == 1 then
    manifests = manifests + 1
    return manifest_req
  end
  blobs = blobs + 1
  return blob_req
end

function done(summary, latency, requests)
  local man, blb = 0, 0
  for _, t in ipairs(threads) do
    man = man + t:get("manifests")
    blb = blb + t:get("blobs")
  end
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d manifests=%d blobs=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max,
    man, blb))
end
