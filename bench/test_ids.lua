-- Absolute-form GETs to TARGET_URL (as proxy.lua), each naming a test with
-- Cutoff-Test-Id: request n belongs to test floor(n / PER_TEST) modulo IDS,
-- so every test makes PER_TEST exchanges in a row and IDS tests take turns.
local target = os.getenv("TARGET_URL")
local ids = tonumber(os.getenv("IDS") or "10000")
local per_test = tonumber(os.getenv("PER_TEST") or "100")
local n = 0

request = function()
  local id = math.floor(n / per_test) % ids
  n = n + 1
  return wrk.format("GET", target, {
    ["Host"] = target:match("^http://([^/]+)"),
    ["Cutoff-Test-Id"] = "tests/test_bench.py::test_" .. id,
  })
end

done = function(summary)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d errors=%d\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout))
end
