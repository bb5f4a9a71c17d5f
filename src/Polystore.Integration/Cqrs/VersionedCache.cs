using StackExchange.Redis;

namespace Polystore.Integration.Cqrs;

/// <summary>
/// Cache-aside that cannot re-cache stale data. A reader that loaded version 3 from the read model may
/// try to cache it just after the projection wrote version 4 and invalidated the key; a plain SET would
/// then serve version 3 until the TTL ends. Here an invalidation leaves a floor (the newest version
/// seen) next to the key, in the same hash slot, and a reader's SET succeeds only at or above it.
/// </summary>
internal static class VersionedCache
{
    private static readonly LuaScript SetIfCurrentScript = LuaScript.Prepare(
        """
        local floor = tonumber(redis.call('GET', @floor) or '0')
        if tonumber(@version) < floor then return 0 end
        redis.call('SET', @key, @value, 'PX', @ttl)
        return 1
        """);

    // Raise the floor (never lower it) and drop the cached value.
    private static readonly LuaScript InvalidateScript = LuaScript.Prepare(
        """
        local floor = tonumber(redis.call('GET', @floor) or '0')
        if tonumber(@version) > floor then redis.call('SET', @floor, @version, 'PX', @ttl) end
        return redis.call('DEL', @key)
        """);

    /// <summary>The value key and its floor key: <c>{prefix}{id}</c> hash-tagged so both live in one cluster slot.</summary>
    public static (RedisKey Value, RedisKey Floor) Keys(string prefix, string id) => ($"{prefix}{{{id}}}", $"{prefix}{{{id}}}:floor");

    public static async Task<bool> SetIfCurrentAsync(IDatabase cache, string prefix, string id, string value, long version, TimeSpan ttl)
    {
        var (key, floor) = Keys(prefix, id);
        var result = await cache.ScriptEvaluateAsync(SetIfCurrentScript, new { key, floor, value, version, ttl = (long)ttl.TotalMilliseconds }).ConfigureAwait(false);
        return (int)result == 1;
    }

    public static Task InvalidateAsync(IDatabase cache, string prefix, string id, long version, TimeSpan floorTtl)
    {
        var (key, floor) = Keys(prefix, id);
        return cache.ScriptEvaluateAsync(InvalidateScript, new { key, floor, version, ttl = (long)floorTtl.TotalMilliseconds });
    }
}
