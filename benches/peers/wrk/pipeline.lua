-- HttpArena's pipelined profile for wrk: 16 `GET /pipeline` sent back to back per round trip.
-- Every reply's body must be `ok`; done() prints how many were not.
-- usage: wrk -t1 -c64 -d3s -s pipeline.lua http://127.0.0.1:PORT

local depth = 16
local batch
bad = 0 -- global: done() reads it with thread:get
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local requests = {}
   for i = 1, depth do
      requests[i] = wrk.format("GET", "/pipeline")
   end
   batch = table.concat(requests)
end

function request()
   return batch
end

function response(status, headers, body)
   if status ~= 200 or body ~= "ok" then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("bad")
   end
   print("wrong replies: " .. total)
end
