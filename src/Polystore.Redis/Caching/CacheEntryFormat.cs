using System.Buffers;
using System.Buffers.Binary;

namespace Polystore.Redis.Caching;

/// <summary>
/// The bytes of a cache entry in Redis: one kind byte (1 = value, 2 = known missing), the logical expiry as
/// Unix milliseconds (int64, little-endian), then, for a value, the serializer's bytes. A removed key holds a
/// tombstone instead: kind 3 and 8 random bytes, which every read takes for no entry.
/// </summary>
/// <remarks>
/// The logical expiry is when the entry stops being fresh; the Redis key itself may live longer (fail-safe keeps
/// it for <see cref="RedisTieredCacheOptions.FailSafeMaxAge"/> more, to be served when the factory fails).
/// </remarks>
internal static class CacheEntryFormat
{
    public const int HeaderSize = 9;
    private const byte KindValue = 1;
    private const byte KindMissing = 2;
    private const byte KindRemoved = 3;

    public static void Write<T>(IBufferWriter<byte> destination, T? value, bool missing, long logicalExpiryUnixMs, ICacheSerializer serializer)
    {
        var header = destination.GetSpan(HeaderSize);
        header[0] = missing ? KindMissing : KindValue;
        BinaryPrimitives.WriteInt64LittleEndian(header[1..], logicalExpiryUnixMs);
        destination.Advance(HeaderSize);
        if (!missing) serializer.Serialize(value, destination);
    }

    /// <summary>
    /// A tombstone, unique to one removal: a fill that saw the key before the removal finds different bytes there
    /// and stores nothing (see <see cref="L2Cache.FillAsync{T}"/>).
    /// </summary>
    public static byte[] Tombstone()
    {
        var tombstone = new byte[HeaderSize];
        tombstone[0] = KindRemoved;
        Random.Shared.NextBytes(tombstone.AsSpan(1));
        return tombstone;
    }

    /// <summary>Decodes <paramref name="entry"/>; an unknown layout reads as no entry.</summary>
    public static L2Read Read<T>(ReadOnlySpan<byte> entry, ICacheSerializer serializer, long nowUnixMs)
    {
        if (entry.Length < HeaderSize || (entry[0] != KindValue && entry[0] != KindMissing)) return default;
        var logicalExpiry = BinaryPrimitives.ReadInt64LittleEndian(entry[1..]);
        var missing = entry[0] == KindMissing;
        object? value = missing ? null : serializer.Deserialize<T>(entry[HeaderSize..]);
        var fresh = logicalExpiry > nowUnixMs;
        return new L2Read(value, missing, fresh, !fresh, logicalExpiry);
    }
}
