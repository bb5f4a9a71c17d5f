namespace Polystore.Redis.Caching;

/// <summary>
/// The result of reading one key from Redis. <c>default</c> = no usable entry (absent, unreadable, or Redis
/// unavailable); otherwise exactly one of <paramref name="Fresh"/> and <paramref name="Stale"/> is true.
/// </summary>
internal readonly record struct L2Read(object? Value, bool Missing, bool Fresh, bool Stale, long LogicalExpiry);
