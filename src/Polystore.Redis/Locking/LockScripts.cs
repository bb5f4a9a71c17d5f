namespace Polystore.Redis.Locking;

/// <summary>The lock's scripts. Keys "{prefix:resource}:lock" and "{prefix:resource}:fence" share a slot.</summary>
internal static class LockScripts
{
    // Acquires and releases, batched (ScriptBatcher): for each item d, KEYS[2d-1] = lock, KEYS[2d] = fence,
    // ARGV[2d] = 'a' (acquire) or 'r' (release), ARGV[2d+1] = the holder's random token; ARGV[1] = expiry ms.
    //  - acquire: SET NX PX with the token; on success INCR the fencing counter (same slot) and return it
    //    (>= 1); on failure return -(PTTL + 1) (< 0) so the caller can bound its backoff.
    //  - release: compare-and-delete: 1 when this token held it, else 0.
    // Items run one after the other, so two for one resource in a batch behave as two calls.
    // The fence key never expires: a counter that reset would hand out tokens a downstream store had already seen.
    public static readonly RedisScript AcquireOrRelease = new("""
        local out = {}
        for d = 1, #KEYS / 2 do
          local lock = KEYS[2 * d - 1]
          local token = ARGV[2 * d + 1]
          if ARGV[2 * d] == 'a' then
            if redis.call('SET', lock, token, 'NX', 'PX', ARGV[1]) then
              out[d] = redis.call('INCR', KEYS[2 * d])
            else
              out[d] = -(redis.call('PTTL', lock) + 1)
            end
          elseif redis.call('GET', lock) == token then
            out[d] = redis.call('DEL', lock)
          else
            out[d] = 0
          end
        end
        return out
        """);

    // Raises the fencing counter KEYS[1] to at least ARGV[1] (never lowers it); returns the counter after.
    public static readonly RedisScript RaiseFence = new("""
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        local wanted = tonumber(ARGV[1])
        if current < wanted then
          redis.call('SET', KEYS[1], ARGV[1])
          return wanted
        end
        return current
        """);

    // Compare-and-PEXPIRE: only the holder of the token may extend.
    public static readonly RedisScript Extend = new("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """);
}
