using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Redis.Diagnostics;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>Redis's part of the doctor and the health check: pings over the application's multiplexer.</summary>
internal sealed class RedisStoreDoctor(RedisSettings settings, IConnectionMultiplexer multiplexer, RedisDiagnosticOptions? options) : IStoreDoctor
{
    public string Store => StoreNames.Redis;

    public Task<IReadOnlyList<StorePing>> PingAsync(CancellationToken cancellationToken = default) => RedisPing.PingAsync(multiplexer, cancellationToken);

    // The checks open their own admin connection (INFO, SLOWLOG, CONFIG GET on every node).
    public IStoreDiagnostics CreateDiagnostics() => new RedisDiagnostics(settings, options);
}
