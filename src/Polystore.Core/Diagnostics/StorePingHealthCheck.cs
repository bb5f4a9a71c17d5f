using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Polystore.Core.Diagnostics;

/// <summary>
/// Healthy when every endpoint of a store answers a round trip; unhealthy when none of its primaries does; degraded
/// otherwise (a replica, or some of a cluster's primaries, down). The data names each endpoint.
/// </summary>
internal sealed class StorePingHealthCheck(IStoreDoctor store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        // WaitAsync as well as the token: a driver that ignores cancellation mid-connect still cannot hold the check past its timeout.
        var results = await store.PingAsync(cancellationToken).WaitAsync(cancellationToken).ConfigureAwait(false);
        var data = results.ToDictionary(
            r => r.Endpoint,
            r => (object)(r.Reachable ? $"up {r.ServerVersion} {r.RoundTrip?.TotalMilliseconds:0.###} ms" : $"down: {r.Error}"));
        var down = results.Where(r => !r.Reachable).ToList();
        if (down.Count == 0) return HealthCheckResult.Healthy($"{results.Count} endpoint(s) up", data);
        // A replica down still leaves the primary serving, and one cluster primary down still leaves the others'
        // slots served: degraded, not unhealthy.
        var noPrimary = !store.Primaries(results).Any(r => r.Reachable);
        var description = string.Join("; ", down.Select(r => $"{r.Endpoint} down: {r.Error}"));
        return noPrimary
            ? new HealthCheckResult(context.Registration.FailureStatus, description, data: data)
            : HealthCheckResult.Degraded(description, data: data);
    }
}
