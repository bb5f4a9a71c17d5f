namespace Polystore.Core.Diagnostics;

/// <summary>
/// One store's part of <see cref="PolystoreDoctor"/> and of its health check: a ping over the application's own
/// client, and its diagnostic checks. Each store package registers one when the store is added to Polystore.
/// </summary>
public interface IStoreDoctor
{
    /// <summary>The store's name (<see cref="Configuration.StoreNames"/>).</summary>
    string Store { get; }

    /// <summary>Pings every endpoint of the store, the primaries first. Never throws for a store that is down.</summary>
    Task<IReadOnlyList<StorePing>> PingAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Those of <paramref name="pings"/> (a result of <see cref="PingAsync"/>) that take writes: by default the first. A
    /// store with one primary per shard (a Redis Cluster) names them all. The checks run while any of them answers; the
    /// health check is unhealthy when none does and degraded when some do.
    /// </summary>
    IReadOnlyList<StorePing> Primaries(IReadOnlyList<StorePing> pings) => pings.Count == 0 ? [] : [pings[0]];

    /// <summary>The store's checks, over connections the result owns (dispose it).</summary>
    IStoreDiagnostics CreateDiagnostics();
}
