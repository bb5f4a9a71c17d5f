namespace Polystore.Redis.Locking;

/// <summary>The lock's three scripts. KEYS[1] = "{prefix:resource}:lock", KEYS[2] = "{prefix:resource}:fence" (same slot).</summary>
internal static class LockScripts
{
    // For each item d: SET NX PX with the caller's random token on KEYS[2d-1]; on success INCR the fencing
    // counter KEYS[2d] (same slot) and return it (>= 1); on failure return -(PTTL + 1) (< 0) so the caller
    // can bound its backoff. ARGV[1] = expiry in ms, ARGV[1+d] = token d. Concurrent acquires are batched
    // (ScriptBatcher); items run one after the other, so two for one resource in a batch behave as two calls.
    // The fence key never expires: a counter that reset would hand out tokens a downstream store had already seen.
    public static readonly RedisLuaScript Acquire = new("""
        local out = {}
        for d = 1, #KEYS / 2 do
          if redis.call('SET', KEYS[2 * d - 1], ARGV[1 + d], 'NX', 'PX', ARGV[1]) then
            out[d] = redis.call('INCR', KEYS[2 * d])
          else
            out[d] = -(redis.call('PTTL', KEYS[2 * d - 1]) + 1)
          end
        end
        return out
        """);

    // Compare-and-delete: only the holder of the token may release (the seed's script).
    public static readonly RedisLuaScript Release = new("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """);

    // Compare-and-PEXPIRE: only the holder of the token may extend.
    public static readonly RedisLuaScript Extend = new("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """);
}
