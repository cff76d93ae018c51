-- wrk script of the benchmark (bench/load.py runs wrk with one thread).
--
--   wrk ... -s bench/load.lua URL -- get  PATH
--   wrk ... -s bench/load.lua URL -- book FIRST COUNT   (POST /book for ids FIRST..FIRST+COUNT-1, once each)
--   wrk ... -s bench/load.lua URL -- hot  FIRST SLOTS COUNT  (COUNT POST /book, ids cycling over SLOTS slots)
--
-- In "book" and "hot" modes, once COUNT bookings are sent the connections ask
-- GET /health until the COUNT-th booking answer has come back; then the thread
-- stops and writes "done" on stderr, and the runner interrupts wrk. So no
-- booking is in flight when wrk ends, and every booking made has been counted.
-- (A run that ended on its duration instead left bookings in flight, which the
-- server answered after the next round had emptied the table: that round's
-- slots were booked by the previous round, and it saw only 409s.)
--
-- done() prints one line, "result {json}": requests, duration, latency
-- percentiles (microseconds), status counts (of the POSTs in book and hot modes), errors.

local mode, first, count, total, path
local sent, answered, primed = 0, 0, false
statuses = {}  -- global: done() reads it from each thread with thread:get
local threads = {}
local HEALTH = '{"status":"ok"}'
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1]
   if mode == "get" then
      path = args[2]
   else
      first, count = tonumber(args[2]), tonumber(args[3])
      total = tonumber(args[4]) or count
   end
end

local function booking(slot_id)
   local body = string.format('{"slot_id":%d,"email":"lead%d@example.com"}', slot_id, slot_id)
   return wrk.format("POST", "/book", headers, body)
end

function request()
   if not primed then
      -- wrk 4.1 calls request() once when the thread starts and never sends
      -- that one; a harmless request keeps the count right either way.
      primed = true
      return wrk.format("GET", "/health")
   elseif mode == "get" then
      return wrk.format("GET", path)
   elseif sent < total then
      sent = sent + 1
      if mode == "hot" then
         return booking(first + sent % count)
      end
      return booking(first + sent - 1)
   end
   return wrk.format("GET", "/health")
end

function response(status, headers, body)
   if mode ~= "get" then
      if body == HEALTH then
         return
      end
      answered = answered + 1
      if answered == total then
         io.stderr:write("done\n")
         io.stderr:flush()
         wrk.thread:stop()
      end
   end
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
end

local function json_counts(counts)
   local parts = {}
   for key, value in pairs(counts) do
      table.insert(parts, string.format('"%s":%d', key, value))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local merged = {}
   for _, thread in ipairs(threads) do
      for key, value in pairs(thread:get("statuses")) do
         merged[key] = (merged[key] or 0) + value
      end
   end
   local e = summary.errors
   io.write(string.format(
      'result {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"statuses":%s,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      json_counts(merged), e.connect, e.read, e.write, e.timeout, e.status))
end
