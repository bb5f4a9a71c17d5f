namespace Polystore.Redis.Caching;

/// <summary>The outcome of <see cref="RedisTieredCache.WriteThroughAsync{T}"/>.</summary>
/// <typeparam name="T">The written value's type.</typeparam>
/// <param name="Value">What the source write returned (the source is the truth).</param>
/// <param name="Cached">Whether the cache now holds <paramref name="Value"/>.</param>
/// <param name="CacheError">Why caching failed, when it did; the stale entry was then removed where Redis allowed.</param>
public sealed record WriteThroughResult<T>(T Value, bool Cached, Exception? CacheError);
