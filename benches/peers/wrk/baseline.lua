-- HttpArena's baseline profile for wrk: GET, POST with Content-Length and POST chunked to
-- /baseline11?a=13&b=42, in turn, one at a time per connection. Bodies must be 55 / 75 / 75;
-- done() prints how many were not.
-- usage: wrk -t1 -c64 -d3s -s baseline.lua http://127.0.0.1:PORT

local requests
local expected = { "55", "75", "75" }
local sent = 0
bad = 0 -- global: done() reads it with thread:get
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local path = "/baseline11?a=13&b=42"
   local host = "Host: " .. wrk.host .. ":" .. wrk.port .. "\r\n"
   requests = {
      wrk.format("GET", path),
      wrk.format("POST", path, { ["Content-Type"] = "text/plain" }, "20"),
      -- by hand: wrk.format would add a Content-Length next to the Transfer-Encoding
      "POST " .. path .. " HTTP/1.1\r\n" .. host .. "Content-Type: text/plain\r\n"
         .. "Transfer-Encoding: chunked\r\n\r\n2\r\n20\r\n0\r\n\r\n",
   }
end

function request()
   sent = sent + 1
   return requests[(sent - 1) % 3 + 1]
end

-- response() does not say which request a reply answers: a right one is 55 or 75.
function response(status, headers, body)
   if status ~= 200 or (body ~= expected[1] and body ~= expected[2]) then
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
