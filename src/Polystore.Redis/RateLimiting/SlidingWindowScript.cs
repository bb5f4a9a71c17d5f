namespace Polystore.Redis.RateLimiting;

/// <summary>The sliding-log script. One atomic EVALSHA per decision.</summary>
internal static class SlidingWindowScript
{
    // A batch of decisions, taken one after the other inside one atomic script (a batch of one is the
    // plain case). For decision i: KEYS[2i-1] = "{prefix:key}:log" (sorted set: score = server time in µs,
    // member unique per entry), KEYS[2i] = "{prefix:key}:seq" (INCR counter, touched only in the rare case
    // below), ARGV[2+i] = permits requested (0 = only look). ARGV[1] = window in µs, ARGV[2] = permit limit.
    // Returns, per decision, { allowed (0|1), remaining, retry-after µs, reset µs, server time µs }.
    // Why each step:
    //  - TIME: one clock (the server's) for every client, so skewed client clocks cannot widen the window.
    //  - ZREMRANGEBYSCORE before ZCARD: the count only sees entries inside the window.
    //  - ZADD only when admitted: rejected calls never consume the window.
    //  - members "<µs>:<count before>:<i>", added with NX: decisions run one at a time, so two admissions
    //    in the same µs see different counts and never collapse into one member (the seed lost counts that
    //    way). If NX still reports a clash (the server clock stepped back), that entry is re-added under a
    //    member from an INCR counter in the same slot, so no admission is ever lost.
    //  - PEXPIRE on every decision, admitted or not: no key is ever left without a TTL.
    public static readonly RedisLuaScript Script = new("""
        local window = tonumber(ARGV[1])
        local limit = tonumber(ARGV[2])
        local ttl = math.floor(window / 1000) + 1
        local out = {}
        for d = 1, #KEYS / 2 do
          local log = KEYS[2 * d - 1]
          local permits = tonumber(ARGV[2 + d])
          local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
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
                local seq = redis.call('INCR', KEYS[2 * d])
                redis.call('PEXPIRE', KEYS[2 * d], ttl)
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
          local o = 5 * (d - 1)
          out[o + 1] = allowed
          out[o + 2] = remaining
          out[o + 3] = retry
          out[o + 4] = reset
          out[o + 5] = now
        end
        return out
        """);
}
