namespace Polystore.Redis.RateLimiting;

/// <summary>The sliding-log scripts: one atomic EVALSHA per batch of decisions, and one that gives permits back.</summary>
internal static class SlidingWindowScript
{
    /// <summary>The name of the member that carries a log's extra weight (see <see cref="Script"/>); no entry is ever named so.</summary>
    public const string ExtraWeightMember = "#";

    // A batch of decisions, taken one after the other inside one atomic script (a batch of one is the
    // plain case). KEYS[d] = "{prefix:key}:log", ARGV[2+d] = permits requested for it (0 = only look).
    // ARGV[1] = window in µs, ARGV[2] = limit; optional ARGV[#KEYS+3], ARGV[#KEYS+4] = the caller's instance
    // id and batch number, which name the entries (without them the server time does).
    // Returns { server time µs, then per decision either one value: remaining (>= 0) when the permits were
    // taken, or four: flag (-1 denied, -2 look-only and free, -3 the key holds another type), remaining,
    // retry-after µs, reset µs }.
    //
    // The log is a sorted set: one member per admitted decision, scored with the server time. Its name is
    // "<id>" (the batch's), "<id>*<permits>" for several permits, or, when an earlier decision of the batch on
    // that key took that name, "<id>.<d>" ("<id>.<d>*<permits>"). So a decision costs one member whatever its
    // weight, and the usual one (a key once per batch) builds no string. The permits in the window are ZCARD plus the weight beyond 1 of the weighted members,
    // which the member "#" holds as its (negative) score: entries are scored with times > 0, so
    // ZRANGEBYSCORE 0..cutoff never sees it and it always ranks first. Without weighted members it does not
    // exist, and an admission is ZCOUNT (of negative scores: is "#" there? an integer reply, cheap in both
    // encodings, where ZSCORE of a missing member scans a small set), ZREMRANGEBYSCORE, ZCARD, ZADD,
    // PEXPIREAT. With it, the expired members are read once before they go, to take their extra weight off.
    // Why each step:
    //  - TIME, once: one clock (the server's) for every client, so skewed client clocks cannot widen the
    //    window. The script is atomic, so every decision in the batch happens at that same instant.
    //  - Numbers become strings once per batch: Lua's number formatting costs more than a ZADD here.
    //  - Expired entries go before counting: the count only sees entries inside the window.
    //  - ZADD only when admitted: rejected calls never consume the window.
    //  - ZADD NX, and on a clash the position, then "+" appended until NX succeeds: no two admissions ever
    //    collapse into one member (a collapsed member would lose a count). Names are unique per instance,
    //    batch and position, so the caller knows each name and can give the permits back (the release
    //    script below).
    //  - PEXPIREAT on every admission, to one window past it: a key only ever comes to exist through an
    //    admission, so no key is left without a TTL, and a denial adds nothing the TTL would have to cover
    //    (PEXPIRE would be rewritten to PEXPIREAT for propagation on every call).
    //  - RetryAfter: the time the entry whose leaving frees enough permits leaves. With weighted members the
    //    oldest 64 entries are walked; past them the answer is a bound that is never early (every entry
    //    holds at least one permit), so a denied decision costs the same whatever the weights.
    public static readonly RedisScript Script = new("""
        local window = tonumber(ARGV[1])
        local limit = tonumber(ARGV[2])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local nowText = string.format('%d', now)
        local cutoff = string.format('%d', now - window)
        local expireAt = string.format('%d', math.floor((now + window) / 1000) + 1)
        local id = ARGV[#KEYS + 3]
        if id then id = id .. '-' .. ARGV[#KEYS + 4] else id = nowText end
        local out = { now }
        local n = 1
        for d = 1, #KEYS do
          local log = KEYS[d]
          local permits = tonumber(ARGV[2 + d])
          local weighted = redis.pcall('ZCOUNT', log, '-inf', '(0')
          if type(weighted) == 'table' then
            -- not a sorted set (something else wrote the key): this decision fails, the others are taken
            out[n + 1] = -3
            out[n + 2] = 0
            out[n + 3] = 0
            out[n + 4] = 0
            n = n + 4
          else
            local extra = false
            if weighted > 0 then extra = redis.call('ZSCORE', log, '#') end
            local count
            if extra then
              extra = -tonumber(extra)
              local gone = redis.call('ZRANGEBYSCORE', log, '0', cutoff)
              if #gone > 0 then
                for i = 1, #gone do
                  local star = string.find(gone[i], '*', 1, true)
                  if star then extra = extra + 1 - tonumber(string.sub(gone[i], star + 1)) end
                end
                redis.call('ZREMRANGEBYSCORE', log, '0', cutoff)
                if extra > 0 then redis.call('ZADD', log, 'XX', -extra, '#') else redis.call('ZREM', log, '#') extra = false end
              end
              count = redis.call('ZCARD', log)
              if extra then count = count - 1 + extra end
            else
              redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
              count = redis.call('ZCARD', log)
            end
            if permits > 0 and count + permits <= limit then
              local member = id
              if permits > 1 then member = id .. '*' .. permits end
              if redis.call('ZADD', log, 'NX', nowText, member) == 0 then
                -- an earlier decision of this batch on this key has that name: this one is named by its position
                local name = id .. '.' .. d
                member = name
                if permits > 1 then member = name .. '*' .. permits end
                while redis.call('ZADD', log, 'NX', nowText, member) == 0 do
                  name = name .. '+'
                  member = name
                  if permits > 1 then member = name .. '*' .. permits end
                end
              end
              if permits > 1 then
                extra = (extra or 0) + permits - 1
                redis.call('ZADD', log, -extra, '#')
              end
              redis.call('PEXPIREAT', log, expireAt)
              n = n + 1
              out[n] = limit - count - permits
            else
              local flag = -1
              if permits == 0 and count < limit then flag = -2 end
              local retry = 0
              local reset = 0
              if count > 0 then
                if flag == -1 then
                  -- permits that must leave the window before this request fits
                  local need = count + math.max(permits, 1) - limit
                  local at = need - 1
                  if extra then
                    at = nil
                    local walk = redis.call('ZRANGE', log, 1, 64, 'WITHSCORES')
                    local freed = 0
                    for i = 1, #walk, 2 do
                      local star = string.find(walk[i], '*', 1, true)
                      if star then freed = freed + tonumber(string.sub(walk[i], star + 1)) else freed = freed + 1 end
                      if freed >= need then
                        retry = tonumber(walk[i + 1]) + window - now
                        break
                      end
                    end
                    if freed < need then at = 64 + need - freed end
                  end
                  if at then
                    local e = redis.call('ZRANGE', log, at, at, 'WITHSCORES')
                    if not e[2] then e = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES') end
                    if e[2] then retry = tonumber(e[2]) + window - now end
                  end
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
        end
        return out
        """);

    // Gives back the permits of entries whose caller never received the decision. KEYS[i] = a log,
    // ARGV[i] = the name of an entry in it. An entry already gone (expired, or never added because the
    // decision was a denial or never ran) gives nothing back. Returns the permits given back per item.
    public static readonly RedisScript Release = new("""
        local out = {}
        for i = 1, #KEYS do
          local log = KEYS[i]
          local member = ARGV[i]
          local permits = 0
          if redis.call('ZREM', log, member) == 1 then
            permits = 1
            local star = string.find(member, '*', 1, true)
            if star then
              permits = tonumber(string.sub(member, star + 1))
              local extra = redis.call('ZSCORE', log, '#')
              if extra then
                extra = -tonumber(extra) - permits + 1
                if extra > 0 then redis.call('ZADD', log, 'XX', -extra, '#') else redis.call('ZREM', log, '#') end
              end
            end
          end
          out[i] = permits
        end
        return out
        """);
}
