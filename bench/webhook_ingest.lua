-- wrk script of bench/webhook_ingest.py: send each prepared request exactly once, then stop.
--
--   wrk -t1 -c64 -d60s --timeout 10s -s bench/webhook_ingest.lua http://host:port -- FILE
--
-- FILE holds complete HTTP requests (signed in Python), each preceded by its length in 8
-- decimal digits.  A connection takes the next request when it is free: delay() reserves
-- one (a connection's first request comes without a delay() call), request() sends it.
-- When the last response is in, the thread stops and SIGINTs wrk, which then prints its
-- summary at once instead of sleeping out -d.  done() prints one line, "RESULT {json}",
-- for the Python side.  One thread: the Lua state, its counters and the prepared requests
-- are per thread.

local ffi = require("ffi")
ffi.cdef([[
int kill(int pid, int sig);
int getpid(void);
]])

-- globals, not locals: done() reads them through thread:get()
prepared = {}
reserved, sent, received, acknowledged = 0, 0, 0, 0
verified = false
local the_thread

function setup(thread)
  the_thread = thread
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local position = 1
  while position <= #data do
    local length = tonumber(data:sub(position, position + 7))
    position = position + 8
    prepared[#prepared + 1] = data:sub(position, position + length - 1)
    position = position + length
  end
end

function delay()
  if reserved < #prepared then
    reserved = reserved + 1
    return 0
  end
  return 3600000 -- nothing left for this connection: it idles until the thread stops
end

function request()
  if not verified then -- wrk calls request() once before the run, to check what it returns
    verified = true
    return prepared[1]
  end
  sent = sent + 1
  if sent > reserved then -- a connection's first request comes without a delay() call
    reserved = sent
  end
  return prepared[sent]
end

function response(status, headers, body)
  received = received + 1
  if status >= 200 and status < 300 then
    acknowledged = acknowledged + 1
  end
  if received == #prepared then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "acknowledged": %d, "sent": %d, "duration_us": %d, '
      .. '"p50_us": %d, "p99_us": %d, "max_us": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, the_thread:get("acknowledged"), the_thread:get("sent"),
    summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout
  ))
end
