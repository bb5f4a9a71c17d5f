namespace Polystore.Redis.Caching;

/// <summary>
/// An L1 copy: fresh while <see cref="CacheClock.TickMs"/> is below <paramref name="FreshUntil"/>; with fail-safe, it may
/// be served when the factory fails until <paramref name="StaleUntil"/> (its logical expiry plus
/// <see cref="RedisTieredCacheOptions.FailSafeMaxAge"/>).
/// </summary>
internal sealed record L1Entry(object? Value, bool Missing, long FreshUntil, long StaleUntil, string[]? Tags);
