namespace Polystore.Redis.Caching;

/// <summary>
/// The result of reading one key from Redis. <c>default</c> = no usable entry (absent, unreadable, or Redis
/// unavailable); otherwise exactly one of <c>Fresh</c> and <c>Stale</c> is true. <c>Seen</c>, for a read a fill may
/// follow that found no fresh entry: what the key held, as the SHA-1 (lowercase hex) of its bytes, or "" when it was
/// absent; null when Redis did not answer, or the read found a fresh entry or was not made for a fill.
/// </summary>
internal readonly record struct L2Read(object? Value, bool Missing, bool Fresh, bool Stale, long LogicalExpiry, string? Seen = null);
