-- tokens.lua: send "Authorization: Bearer <token>" with a different token per
-- request, taken from a file of one token per line.
--
--   wrk -t1 -c64 -d15s --latency -s bench/wrk/tokens.lua http://127.0.0.1:18080/ -- TOKENS_FILE [rr|random]
--
-- rr (default): each thread walks the file round-robin from its own offset,
--   so every token is sent once before any is repeated (with -t1, the first
--   N requests are N distinct tokens).
-- random: each request picks a token uniformly at random.
--
-- The requests are formatted once, in init, so the per-request cost in wrk
-- is a table lookup: the load generator stays cheap next to the proxy.

local counter = 0

-- WRK_PACE_MS > 0: pause that long between requests on a connection (see
-- pace.lua), for the paced rows of bench/run.sh.
local pace = tonumber(os.getenv("WRK_PACE_MS") or "0") or 0
if pace > 0 then
   local hi = math.max(1, 2 * math.floor(pace) - 1)
   function delay()
      return math.random(1, hi)
   end
end

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
end

local reqs = {}
local n = 0
local i = 0
local mode = "rr"

function init(args)
   local path = args[1]
   if path == nil then
      error("tokens.lua: pass the token file after --")
   end
   mode = args[2] or "rr"
   if mode ~= "rr" and mode ~= "random" then
      error("tokens.lua: mode must be rr or random, not " .. mode)
   end
   local f = io.open(path, "r")
   if f == nil then
      error("tokens.lua: cannot open " .. path)
   end
   for line in f:lines() do
      if #line > 0 then
         local h = {}
         for k, v in pairs(wrk.headers) do
            h[k] = v
         end
         h["Authorization"] = "Bearer " .. line
         n = n + 1
         reqs[n] = wrk.format(nil, nil, h)
      end
   end
   f:close()
   if n == 0 then
      error("tokens.lua: no tokens in " .. path)
   end
   local id = tonumber(wrk.thread:get("id")) or 1
   math.randomseed(os.time() + id * 7919)
   -- Threads start at evenly spread offsets so that they do not send the
   -- same token at the same moment.
   i = math.floor((id - 1) * n / 4) % n
end

function request()
   if mode == "random" then
      return reqs[math.random(n)]
   end
   i = i + 1
   if i > n then
      i = 1
   end
   return reqs[i]
end
