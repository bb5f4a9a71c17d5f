namespace Polystore.Redis.Locking;

/// <summary>The lock's scripts. Keys "{prefix:resource}:lock" and "{prefix:resource}:fence" share a slot.</summary>
internal static class LockScripts
{
    // Acquires and releases, batched (ScriptBatcher): for each item d, KEYS[2d-1] = lock, KEYS[2d] = fence,
    // ARGV[2d] = 'a' (acquire) or 'r' (release), ARGV[2d+1] = the holder's random token; ARGV[1] = expiry ms.
    //  - acquire: SET NX PX with the token; on success INCR the fencing counter (same slot) and return it
    //    (>= 1); on failure return -(PTTL + 1) (< 0) so the caller can bound its backoff. From 2^53 on the token is
    //    returned as the counter's string (a Lua number is a double, which rounds there and would repeat a token);
    //    a counter at its 64-bit limit returns 0 with the lock given back.
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
              local fence = redis.pcall('INCR', KEYS[2 * d])
              if type(fence) == 'table' then
                redis.call('DEL', lock)
                out[d] = 0
              elseif fence >= 9007199254740992 then
                out[d] = redis.call('GET', KEYS[2 * d])
              else
                out[d] = fence
              end
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

    // Raises the fencing counter KEYS[1] to at least ARGV[1] (never lowers it); returns the counter after, as a string.
    // Both are non-negative decimal integers without leading zeros, so they compare exactly as strings (the longer is
    // larger, else the first differing digit decides), where Lua numbers (doubles) round from 2^53 on.
    public static readonly RedisScript RaiseFence = new("""
        local current = redis.call('GET', KEYS[1]) or '0'
        local wanted = ARGV[1]
        if #current < #wanted or (#current == #wanted and current < wanted) then
          redis.call('SET', KEYS[1], wanted)
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
