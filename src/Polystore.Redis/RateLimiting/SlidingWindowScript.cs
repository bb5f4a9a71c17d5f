namespace Polystore.Redis.RateLimiting;

/// <summary>The sliding-log script. One atomic EVALSHA per decision.</summary>
internal static class SlidingWindowScript
{
    // KEYS[1] = "{prefix:key}:log" (sorted set: score = server time in µs, member unique per entry)
    // KEYS[2] = "{prefix:key}:seq" (INCR counter, only touched in the rare case described below)
    // ARGV[1] = window in µs, ARGV[2] = permit limit, ARGV[3] = permits requested (0 = only look)
    // Returns { allowed (0|1), remaining, retry-after µs, reset µs, server time µs }.
    // Why each step:
    //  - TIME: one clock (the server's) for every client, so skewed client clocks cannot widen the window.
    //  - ZREMRANGEBYSCORE before ZCARD: the count only sees entries inside the window.
    //  - ZADD only when admitted: rejected calls never consume the window.
    //  - members "<µs>:<count before>:<i>", added with NX: scripts run one at a time, so two admissions in the
    //    same µs see different counts and never collapse into one member (the seed lost counts that way).
    //    If NX still reports a clash (the server clock stepped back), that entry is re-added under a member
    //    from an INCR counter in the same slot, so no admission is ever lost.
    //  - PEXPIRE on every call, admitted or not: no key is ever left without a TTL.
    public static readonly RedisLuaScript Script = new("""
        local log = KEYS[1]
        local window = tonumber(ARGV[1])
        local limit = tonumber(ARGV[2])
        local permits = tonumber(ARGV[3])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local ttl = math.floor(window / 1000) + 1
        redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
        local count = redis.call('ZCARD', log)
        local allowed = 0
        if permits == 0 then
          if count < limit then allowed = 1 end
        elseif count + permits <= limit then
          allowed = 1
          local base = t[1] .. t[2] .. ':' .. count .. ':'
          for i = 1, permits do
            if redis.call('ZADD', log, 'NX', now, base .. i) == 0 then
              local seq = redis.call('INCR', KEYS[2])
              redis.call('PEXPIRE', KEYS[2], ttl)
              redis.call('ZADD', log, now, 's' .. seq)
            end
          end
          count = count + permits
        end
        redis.call('PEXPIRE', log, ttl)
        local retry = 0
        local reset = 0
        if allowed == 1 and permits > 0 then
          reset = window -- the newest entry is the one just added
        elseif count > 0 then
          if allowed == 0 then
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
        return { allowed, remaining, retry, reset, now }
        """);
}
