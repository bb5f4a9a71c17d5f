using System.Buffers.Binary;

namespace Polystore.Redis.Caching;

/// <summary>
/// How <see cref="RedisDistributedCache"/> stores an <see cref="Microsoft.Extensions.Caching.Distributed.IDistributedCache"/>
/// value in the tiered cache: one version byte (1), the sliding expiration in milliseconds (int64, little-endian,
/// 0 = none), the absolute expiration as Unix milliseconds (int64, little-endian, 0 = none), then the value's bytes.
/// The expirations travel with the value so a read knows whether, and how far, to slide the entry.
/// </summary>
internal static class DistributedCacheEnvelope
{
    public const int HeaderSize = 17;
    private const byte Version = 1;

    public static byte[] Write(ReadOnlySpan<byte> value, long slidingMs, long absoluteUnixMs)
    {
        var envelope = new byte[HeaderSize + value.Length];
        envelope[0] = Version;
        BinaryPrimitives.WriteInt64LittleEndian(envelope.AsSpan(1), slidingMs);
        BinaryPrimitives.WriteInt64LittleEndian(envelope.AsSpan(9), absoluteUnixMs);
        value.CopyTo(envelope.AsSpan(HeaderSize));
        return envelope;
    }

    /// <summary>Reads the header of <paramref name="envelope"/>; false for bytes not written by <see cref="Write"/>.</summary>
    public static bool TryRead(byte[]? envelope, out long slidingMs, out long absoluteUnixMs)
    {
        if (envelope is null || envelope.Length < HeaderSize || envelope[0] != Version)
        {
            (slidingMs, absoluteUnixMs) = (0, 0);
            return false;
        }
        slidingMs = BinaryPrimitives.ReadInt64LittleEndian(envelope.AsSpan(1));
        absoluteUnixMs = BinaryPrimitives.ReadInt64LittleEndian(envelope.AsSpan(9));
        return true;
    }
}
