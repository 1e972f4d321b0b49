-- wrk's report for scripts/netbench.py: one line, "NETBENCH {json}", with
-- the request count, the errors and the latency distribution (in
-- microseconds, wrk's own quantiles: 0.1 % steps, and the far tail).
done = function(summary, latency, requests)
    local q = {}
    for i = 1, 999 do
        q[#q + 1] = i / 10
    end
    for _, p in ipairs({99.95, 99.99}) do
        q[#q + 1] = p
    end
    local points = {}
    for _, p in ipairs(q) do
        points[#points + 1] = string.format("[%g, %d]", p,
                                            latency:percentile(p))
    end
    local e = summary.errors
    io.write(string.format(
        'NETBENCH {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
        '"errors": {"connect": %d, "read": %d, "write": %d, ' ..
        '"status": %d, "timeout": %d}, "min_us": %d, "max_us": %d, ' ..
        '"mean_us": %.1f, "quantiles": [%s]}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency.min, latency.max, latency.mean,
        table.concat(points, ", ")))
end
