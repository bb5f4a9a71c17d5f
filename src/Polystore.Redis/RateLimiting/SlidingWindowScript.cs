namespace Polystore.Redis.RateLimiting;

/// <summary>The sliding-log script. One atomic EVALSHA per decision.</summary>
internal static class SlidingWindowScript
{
    // KEYS[1] = "{prefix:key}:log" (sorted set: member = unique sequence number, score = server time in µs)
    // KEYS[2] = "{prefix:key}:seq" (INCR counter that makes members unique even when timestamps are equal)
    // ARGV[1] = window in µs, ARGV[2] = permit limit, ARGV[3] = permits requested (0 = only look)
    // Returns { allowed (0|1), remaining, retry-after µs, reset µs, server time µs }.
    // Why each step:
    //  - TIME: one clock (the server's) for every client, so skewed client clocks cannot widen the window.
    //  - ZREMRANGEBYSCORE before ZCARD: the count only sees entries inside the window.
    //  - ZADD only when admitted: rejected calls never consume the window.
    //  - members from INCRBY, not from the timestamp: two calls in the same µs never collapse into one.
    //  - PEXPIRE on every call, admitted or not: no key is ever left without a TTL.
    public static readonly RedisLuaScript Script = new("""
        local log, seq = KEYS[1], KEYS[2]
        local window = tonumber(ARGV[1])
        local limit = tonumber(ARGV[2])
        local permits = tonumber(ARGV[3])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
        local count = redis.call('ZCARD', log)
        local allowed = 0
        local retry = 0
        if permits == 0 then
          if count < limit then allowed = 1 end
        elseif count + permits <= limit then
          allowed = 1
          local last = redis.call('INCRBY', seq, permits)
          local first = last - permits + 1
          while first <= last do
            local args = {}
            local n = 0
            while first <= last and n < 1000 do
              args[n * 2 + 1] = now
              args[n * 2 + 2] = first
              n = n + 1
              first = first + 1
            end
            redis.call('ZADD', log, unpack(args))
          end
          count = count + permits
        end
        if allowed == 0 and count > 0 then
          -- the entry whose leaving frees enough room for this request
          local need = count + math.max(permits, 1) - limit - 1
          if need < 0 then need = 0 end
          local e = redis.call('ZRANGE', log, need, need, 'WITHSCORES')
          if e[2] then retry = tonumber(e[2]) + window - now end
        end
        local reset = 0
        if count > 0 then
          local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
          if newest[2] then reset = tonumber(newest[2]) + window - now end
        end
        local ttl = math.floor(window / 1000) + 1
        redis.call('PEXPIRE', log, ttl)
        redis.call('PEXPIRE', seq, ttl)
        local remaining = limit - count
        if remaining < 0 then remaining = 0 end
        return { allowed, remaining, retry, reset, now }
        """);
}
