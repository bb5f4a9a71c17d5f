using Polystore.Redis;
using StackExchange.Redis;

namespace Polystore.Integration.Cqrs;

/// <summary>
/// Cache-aside that cannot re-cache stale data. A reader that loaded version 3 from the read model may
/// try to cache it just after the projection wrote version 4 and invalidated the key; a plain SET would
/// then serve version 3 until the TTL ends. Here an invalidation, and every cached version, leaves a floor (the newest
/// version seen) next to the key, in the same hash slot, and a reader's SET succeeds only at or above it.
/// </summary>
internal static class VersionedCache
{
    // Versions compare as decimal text (non-negative, no leading zeros: longer is newer, then lexical order): Lua
    // numbers are doubles, exact only up to 2^53, and versions made from timestamps go past it.
    private const string Newer = "local function newer(a, b) if #a ~= #b then return #a > #b end return a > b end\n";

    // KEYS[1] = value key, KEYS[2] = floor key; ARGV = value, version, TTL ms, floor TTL ms. Caching a version also
    // raises the floor to it: a reader still holding an older version (read before the projection committed, set
    // after another reader cached the newer one, before the invalidation arrived) can then not replace it. The floor's
    // TTL is stretched on every set, so it always outlives the values cached at or above it.
    private static readonly RedisScript SetIfCurrentScript = new(Newer + """
        local floor = redis.call('GET', KEYS[2]) or '0'
        local version = ARGV[2]
        if newer(floor, version) then return 0 end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
        if newer(version, floor) then floor = version end
        redis.call('SET', KEYS[2], floor, 'PX', math.max(tonumber(ARGV[4]), redis.call('PTTL', KEYS[2])))
        return 1
        """);

    // Raise the floor (never lower it), drop the cached value, and tell every process's local copies in the same step
    // (the publish is part of the script: no extra round trip, and no window between the two). KEYS as above;
    // ARGV = version, floor TTL ms, channel, message.
    private static readonly RedisScript InvalidateScript = new(Newer + """
        local floor = redis.call('GET', KEYS[2]) or '0'
        if newer(ARGV[1], floor) then floor = ARGV[1] end
        redis.call('SET', KEYS[2], floor, 'PX', math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[2])))
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return redis.call('DEL', KEYS[1])
        """);

    /// <summary>The value key and its floor key: <c>{prefix}{id}</c> hash-tagged so both live in one cluster slot.</summary>
    /// <remarks>An empty id is refused: <c>{}</c> is no hash tag, so in a cluster the two keys would land in different slots.</remarks>
    public static (RedisKey Value, RedisKey Floor) Keys(string prefix, string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return ($"{prefix}{{{id}}}", $"{prefix}{{{id}}}:floor");
    }

    // Redis refuses PX 0; a TTL under a millisecond is rounded up to one.
    private static long Milliseconds(TimeSpan ttl) => Math.Max(1, (long)Math.Ceiling(ttl.TotalMilliseconds));

    public static async Task<bool> SetIfCurrentAsync(IDatabase cache, string prefix, string id, string value, long version, TimeSpan ttl, TimeSpan floorTtl)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        var (key, floor) = Keys(prefix, id);
        var result = await SetIfCurrentScript.EvaluateAsync(cache, [key, floor], [value, version, Milliseconds(ttl), Milliseconds(floorTtl)]).ConfigureAwait(false);
        return (int)result == 1;
    }

    public static Task InvalidateAsync(IDatabase cache, string prefix, string id, long version, TimeSpan floorTtl, string channel)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        var (key, floor) = Keys(prefix, id);
        var message = string.Concat("v|", version.ToString(System.Globalization.CultureInfo.InvariantCulture), "|", id);
        return InvalidateScript.EvaluateAsync(cache, [key, floor], [version, Milliseconds(floorTtl), channel, message]);
    }
}
