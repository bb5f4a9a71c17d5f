using System.Buffers;
using System.Text.Json;

namespace Polystore.Redis.Caching;

/// <summary>An <see cref="ICacheSerializer"/> over System.Text.Json with the given (or web) options.</summary>
public sealed class SystemTextJsonCacheSerializer(JsonSerializerOptions? options = null) : ICacheSerializer
{
    private readonly JsonSerializerOptions _options = options ?? JsonSerializerOptions.Web;

    /// <inheritdoc />
    public void Serialize<T>(T value, IBufferWriter<byte> destination)
    {
        using var writer = new Utf8JsonWriter(destination);
        JsonSerializer.Serialize(writer, value, _options);
    }

    /// <inheritdoc />
    public T? Deserialize<T>(ReadOnlySpan<byte> source) => JsonSerializer.Deserialize<T>(source, _options);
}
