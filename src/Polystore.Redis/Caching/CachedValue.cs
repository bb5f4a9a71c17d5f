namespace Polystore.Redis.Caching;

/// <summary>What a load of one key produced: a value, or "known missing"; and where it came from (a <see cref="CacheTelemetry"/> level).</summary>
internal sealed record CachedValue(object? Value, bool Missing, string Level = CacheTelemetry.L2);
