using System.Diagnostics;

namespace Polystore.Redis.Caching;

/// <summary>
/// The spans and counters of <see cref="RedisTieredCache"/>. A read is served from one level: <c>l1</c>, <c>l2</c>
/// (Redis), <c>factory</c> (loaded), <c>stale</c> (fail-safe served the last value) or <c>none</c> (a read without factory missed).
/// </summary>
internal static class CacheTelemetry
{
    public const string L2 = "l2";
    public const string Factory = "factory";
    public const string Stale = "stale";
    public const string None = "none";

    /// <summary>Whether anything listens to cache reads (the hot path checks this first).</summary>
    public static bool Observed => RedisTelemetry.Source.HasListeners() || RedisMetrics.CacheHitCounter.Enabled || RedisMetrics.CacheMissCounter.Enabled;

    /// <summary>A read served by a fresh L1 copy: a span that ends at once, and an L1 hit.</summary>
    public static void L1Hit(string prefix)
    {
        using var activity = RedisTelemetry.Start("cache_get", prefix);
        activity?.SetTag("polystore.cache.hit_level", "l1");
        if (RedisMetrics.CacheHitCounter.Enabled) RedisMetrics.CacheHitCounter.Add(1, Level("l1"), Prefix(prefix));
    }

    /// <summary>A read past L1 ended, served from <paramref name="level"/>; <paramref name="merged"/> when it joined a load in progress.</summary>
    public static void Served(Activity? activity, string prefix, bool l1Missed, string level, bool merged)
    {
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("polystore.cache.hit_level", level);
            activity.SetTag("polystore.cache.stampede_merged", merged);
        }
        if (l1Missed && RedisMetrics.CacheMissCounter.Enabled) RedisMetrics.CacheMissCounter.Add(1, Level("l1"), Prefix(prefix));
        var counter = level == L2 ? RedisMetrics.CacheHitCounter : RedisMetrics.CacheMissCounter;
        if (counter.Enabled) counter.Add(1, Level("l2"), Prefix(prefix));
        if (merged && RedisMetrics.CacheStampedeMergeCounter.Enabled) RedisMetrics.CacheStampedeMergeCounter.Add(1, Prefix(prefix));
    }

    public static void FactoryCalled(string prefix)
    {
        if (RedisMetrics.CacheFactoryCallCounter.Enabled) RedisMetrics.CacheFactoryCallCounter.Add(1, Prefix(prefix));
    }

    /// <summary>A factory result not cached: <paramref name="reason"/> = changed | slow (see <see cref="RedisMetrics.CacheFillsDiscarded"/>).</summary>
    public static void FillDiscarded(string prefix, string reason)
    {
        if (RedisMetrics.CacheFillDiscardCounter.Enabled) RedisMetrics.CacheFillDiscardCounter.Add(1, new("reason", reason), Prefix(prefix));
    }

    private static KeyValuePair<string, object?> Level(string level) => new("level", level);

    private static KeyValuePair<string, object?> Prefix(string prefix) => new("prefix", prefix);
}
