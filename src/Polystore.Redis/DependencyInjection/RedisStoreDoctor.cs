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

    // A cluster has one primary per shard, and the first one listed (a seed node) may be the one that is down.
    public IReadOnlyList<StorePing> Primaries(IReadOnlyList<StorePing> pings) =>
        settings.Cluster.Enabled ? [.. pings.Where(RedisPing.IsPrimary)] : pings.Count == 0 ? [] : [pings[0]];

    // The checks open their own admin connection (INFO, SLOWLOG, CONFIG GET on every node).
    public IStoreDiagnostics CreateDiagnostics() => new RedisDiagnostics(settings, options);
}
