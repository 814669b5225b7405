-- wrk cannot speak to a proxy by itself: send absolute-form requests to the
-- proxy port. TARGET_URL is the backend URL, e.g. http://127.0.0.1:8000/file.
local target = os.getenv("TARGET_URL")
wrk.path = target
wrk.headers["Host"] = target:match("^http://([^/]+)")

-- One parseable line for run.sh: requests, errors, latency in microseconds.
-- Read errors are counted apart: wrk counts one whenever the proxy closes a
-- connection it did not announce it would close, even after a whole response.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d read_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.connect + e.write + e.status + e.timeout, e.read,
    latency:percentile(50), latency:percentile(99)))
end
