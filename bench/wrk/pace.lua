-- pace.lua: hold each connection WRK_PACE_MS milliseconds between the
-- answer to one request and the next one, so that the offered load is fixed
-- (about connections / (pace + latency) requests per second) and well below
-- what the proxy can serve. The latency wrk reports is then the time one
-- request spends in the proxy and the upstream, not the time it waits in a
-- saturated queue: what a deployment that is not at its limit sees.
--
--   WRK_PACE_MS=10 wrk -t1 -c64 -d15s --latency -s bench/wrk/pace.lua -H 'Authorization: Bearer ...' URL
--
-- tokens.lua reads the same variable, so the two can be compared row for row.

local pace = tonumber(os.getenv("WRK_PACE_MS") or "")
if pace == nil or pace <= 0 then
   error("pace.lua: set WRK_PACE_MS to the pause in milliseconds (> 0)")
end

-- The pause is drawn uniformly from 1..2*pace-1 ms (mean: pace), so that
-- the connections do not fall into step and arrive in bursts.
math.randomseed(os.time())
local hi = math.max(1, 2 * math.floor(pace) - 1)

function delay()
   return math.random(1, hi)
end
