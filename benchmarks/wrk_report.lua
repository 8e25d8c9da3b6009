-- casework benchmarks: feeds wrk the request pool named by BENCH_REQUEST_FILE
-- (format: benchmarks/request_file.py) and prints one machine-readable line,
-- "BENCH_JSON {...}", with counts, errors and latency percentiles in microseconds.

local pool_path = os.getenv("BENCH_REQUEST_FILE")
if not pool_path then
  error("BENCH_REQUEST_FILE is not set")
end

local method = "GET"
local headers = {}
local items = {}

for line in io.lines(pool_path) do
  local kind, rest = line:match("^(%u+) (.*)$")
  if kind == "METHOD" then
    method = rest
  elseif kind == "HEADER" then
    local name, value = rest:match("^([^:]+): (.*)$")
    headers[name] = value
  elseif kind == "REQUEST" then
    local path, body = rest:match("^([^\t]*)\t(.*)$")
    if body == "" then
      body = nil
    end
    items[#items + 1] = { path = path, body = body }
  end
end

if #items == 0 then
  error("the request file lists no request")
end

if #items == 1 then
  -- One request: let wrk build it once (wrk's static fast path).
  wrk.method = method
  wrk.path = items[1].path
  wrk.body = items[1].body
  for name, value in pairs(headers) do
    wrk.headers[name] = value
  end
else
  -- Several: format them once per thread in init() (Host is known by then)
  -- and hand them out in turn; each thread starts at a different offset.
  local formatted = {}
  local next_index = 0
  local threads_started = 0

  function setup(thread)
    thread:set("thread_index", threads_started)
    threads_started = threads_started + 1
  end

  function init(args)
    for index, item in ipairs(items) do
      local request_headers = { Host = wrk.headers["Host"] }
      for name, value in pairs(headers) do
        request_headers[name] = value
      end
      formatted[index] = wrk.format(method, item.path, request_headers, item.body)
    end
    next_index = (thread_index * 104729) % #formatted
  end

  function request()
    next_index = next_index % #formatted + 1
    return formatted[next_index]
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,'
      .. '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},'
      .. '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean
  ))
end
