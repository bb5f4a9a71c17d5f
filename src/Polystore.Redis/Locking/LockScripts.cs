namespace Polystore.Redis.Locking;

/// <summary>The lock's three scripts. KEYS[1] = "{prefix:resource}:lock", KEYS[2] = "{prefix:resource}:fence" (same slot).</summary>
internal static class LockScripts
{
    // SET NX PX with the caller's random token; on success INCR the fencing counter in the same slot
    // and return it (>= 1). On failure return -(PTTL + 1) (< 0) so the caller can bound its backoff.
    // The fence key never expires: a counter that reset would hand out tokens a downstream store had already seen.
    public static readonly RedisLuaScript Acquire = new("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
          return redis.call('INCR', KEYS[2])
        end
        return -(redis.call('PTTL', KEYS[1]) + 1)
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
