namespace Polystore.Redis.Caching;

/// <summary>An L1 copy: fresh while <see cref="CacheClock.TickMs"/> is below <paramref name="FreshUntil"/>.</summary>
internal sealed record L1Entry(object? Value, bool Missing, long FreshUntil, string[]? Tags);
