namespace Polystore.Core.Diagnostics;

/// <summary>The outcome of connecting to one store and making one round trip.</summary>
/// <param name="Store">postgres, mongo or redis (<see cref="Configuration.StoreNames"/>).</param>
/// <param name="Endpoint">Where it connected (host:port; never credentials).</param>
/// <param name="Reachable">Whether the round trip succeeded.</param>
/// <param name="ServerVersion">The server's version, when reachable.</param>
/// <param name="RoundTrip">The time of one round trip on an open connection, when reachable.</param>
/// <param name="Error">Why it failed, with secrets removed, when not reachable.</param>
/// <param name="Details">Extra facts worth showing (topology, replica role, cluster size).</param>
public sealed record StorePing(
    string Store,
    string Endpoint,
    bool Reachable,
    string? ServerVersion,
    TimeSpan? RoundTrip,
    string? Error,
    string? Details = null);
