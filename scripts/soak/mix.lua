-- mix.lua: the soak's second phase. Each request carries a token drawn from
-- three files in a fixed proportion, on a path that names its kind, so the
-- access log tells which kind each answer was for:
--
--   wrk ... -s scripts/soak/mix.lua URL -- VALID EXPIRED GARBAGE [VALID% EXPIRED%]
--
-- /v/<n>: a valid token (expected 200), /e/<n>: a correctly signed but expired
-- token (expected 401 token-expired), /g/<n>: garbage (expected 401). Requests
-- are formatted once in init; done() prints how many of each kind were sent.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local reqs = {}
local kinds = {}
local n = 0
local i = 0
-- Per-thread counters are globals: done() reads them with thread:get.
sent_v, sent_e, sent_g = 0, 0, 0

local function load(path)
   local out = {}
   local f = io.open(path, "r")
   if f == nil then
      error("mix.lua: cannot open " .. path)
   end
   for line in f:lines() do
      if #line > 0 then
         table.insert(out, line)
      end
   end
   f:close()
   if #out == 0 then
      error("mix.lua: no tokens in " .. path)
   end
   return out
end

function init(args)
   if #args < 3 then
      error("mix.lua: pass VALID EXPIRED GARBAGE token files after --")
   end
   local files = { v = load(args[1]), e = load(args[2]), g = load(args[3]) }
   local pv = tonumber(args[4] or "60")
   local pe = tonumber(args[5] or "20")
   -- A schedule of 100 slots in the requested proportion, interleaved so
   -- that every kind keeps flowing.
   local schedule = {}
   for k = 1, 100 do
      local r = (k * 37) % 100
      if r < pv then
         schedule[k] = "v"
      elseif r < pv + pe then
         schedule[k] = "e"
      else
         schedule[k] = "g"
      end
   end
   local idx = { v = 0, e = 0, g = 0 }
   for k = 1, 1000 do
      local kind = schedule[(k - 1) % 100 + 1]
      local list = files[kind]
      idx[kind] = idx[kind] % #list + 1
      local h = {}
      for hk, hv in pairs(wrk.headers) do
         h[hk] = hv
      end
      h["Authorization"] = "Bearer " .. list[idx[kind]]
      n = n + 1
      reqs[n] = wrk.format("GET", "/" .. kind .. "/" .. k, h)
      kinds[n] = kind
   end
   local id = tonumber(wrk.thread:get("id")) or 1
   i = ((id - 1) * 331) % n
end

function request()
   i = i % n + 1
   local kind = kinds[i]
   if kind == "v" then
      sent_v = sent_v + 1
   elseif kind == "e" then
      sent_e = sent_e + 1
   else
      sent_g = sent_g + 1
   end
   return reqs[i]
end

function done(summary, latency, requests)
   local t = { v = 0, e = 0, g = 0 }
   for _, thread in ipairs(threads) do
      for _, k in ipairs({ "v", "e", "g" }) do
         t[k] = t[k] + (tonumber(thread:get("sent_" .. k)) or 0)
      end
   end
   io.write(string.format("mix sent: valid %d expired %d garbage %d\n", t.v, t.e, t.g))
end
