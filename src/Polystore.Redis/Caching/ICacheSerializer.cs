using System.Buffers;

namespace Polystore.Redis.Caching;

/// <summary>Turns cached values into bytes and back. The default is <see cref="SystemTextJsonCacheSerializer"/>.</summary>
public interface ICacheSerializer
{
    /// <summary>Writes <paramref name="value"/> to <paramref name="destination"/>.</summary>
    void Serialize<T>(T value, IBufferWriter<byte> destination);

    /// <summary>Reads a value written by <see cref="Serialize{T}"/>.</summary>
    T? Deserialize<T>(ReadOnlySpan<byte> source);
}
