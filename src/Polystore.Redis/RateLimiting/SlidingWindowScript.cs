namespace Polystore.Redis.RateLimiting;

/// <summary>The sliding-log script. One atomic EVALSHA per batch of decisions.</summary>
internal static class SlidingWindowScript
{
    // A batch of decisions, taken one after the other inside one atomic script (a batch of one is the
    // plain case). KEYS[d] = "{prefix:key}:log" (sorted set: score = server time in µs, member unique per
    // entry), ARGV[2+d] = permits requested for it (0 = only look). ARGV[1] = window in µs, ARGV[2] = limit.
    // Returns { server time µs, then per decision either one value: remaining (>= 0) when the permits were
    // taken, or four: flag (-1 denied, -2 look-only and free), remaining, retry-after µs, reset µs }.
    // Why each step:
    //  - TIME, once: one clock (the server's) for every client, so skewed client clocks cannot widen the
    //    window. The script is atomic, so every decision in the batch happens at that same instant.
    //  - Numbers become strings once per batch: Lua's number formatting costs more than a ZADD here.
    //  - ZREMRANGEBYSCORE before ZCARD: the count only sees entries inside the window.
    //  - ZADD only when admitted: rejected calls never consume the window.
    //  - ZADD NX with the time as member, and on a clash (the same key twice in one batch, several permits,
    //    or a server clock that repeated or stepped back) "<time>:<d>:<i>", then '+' appended until NX
    //    succeeds: no two admissions ever collapse into one member (a collapsed member would lose a count).
    //  - PEXPIREAT on every decision, admitted or not: no key is ever left without a TTL (PEXPIRE would be
    //    rewritten to PEXPIREAT for propagation on every call).
    public static readonly RedisScript Script = new("""
        local window = tonumber(ARGV[1])
        local limit = tonumber(ARGV[2])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local nowText = string.format('%d', now)
        local first = nowText .. '.'
        local cutoff = string.format('%d', now - window)
        local expireAt = string.format('%d', math.floor((now + window) / 1000) + 1)
        local out = { now }
        local n = 1
        for d = 1, #KEYS do
          local log = KEYS[d]
          local permits = tonumber(ARGV[2 + d])
          redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
          local count = redis.call('ZCARD', log)
          if permits > 0 and count + permits <= limit then
            for i = 1, permits do
              if i > 1 or redis.call('ZADD', log, 'NX', nowText, first) == 0 then
                local member = first .. d .. ':' .. i
                while redis.call('ZADD', log, 'NX', nowText, member) == 0 do member = member .. '+' end
              end
            end
            redis.call('PEXPIREAT', log, expireAt)
            n = n + 1
            out[n] = limit - count - permits
          else
            redis.call('PEXPIREAT', log, expireAt)
            local flag = -1
            if permits == 0 and count < limit then flag = -2 end
            local retry = 0
            local reset = 0
            if count > 0 then
              if flag == -1 then
                -- the entry whose leaving frees enough room for this request
                local need = count + math.max(permits, 1) - limit - 1
                if need < 0 then need = 0 end
                local e = redis.call('ZRANGE', log, need, need, 'WITHSCORES')
                if e[2] then retry = tonumber(e[2]) + window - now end
              end
              local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
              if newest[2] then reset = tonumber(newest[2]) + window - now end
            end
            local remaining = limit - count
            if remaining < 0 then remaining = 0 end
            out[n + 1] = flag
            out[n + 2] = remaining
            out[n + 3] = retry
            out[n + 4] = reset
            n = n + 4
          end
        end
        return out
        """);
}
