namespace Polystore.Redis.Caching;

/// <summary>What a load of one key produced: a value, or "known missing".</summary>
internal sealed record CachedValue(object? Value, bool Missing);
