using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Polystore.Core.Diagnostics;

/// <summary>Healthy when every endpoint of a store answers a round trip; the data names each endpoint.</summary>
internal sealed class StorePingHealthCheck(Func<CancellationToken, Task<IReadOnlyList<StorePing>>> ping) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        // WaitAsync as well as the token: a driver that ignores cancellation mid-connect still cannot hold the check past its timeout.
        var results = await ping(cancellationToken).WaitAsync(cancellationToken).ConfigureAwait(false);
        var data = results.ToDictionary(
            r => r.Endpoint,
            r => (object)(r.Reachable ? $"up {r.ServerVersion} {r.RoundTrip?.TotalMilliseconds:0.###} ms" : $"down: {r.Error}"));
        var down = results.Where(r => !r.Reachable).ToList();
        if (down.Count == 0) return HealthCheckResult.Healthy($"{results.Count} endpoint(s) up", data);
        // A replica down still leaves the primary serving: degraded, not unhealthy.
        var primaryDown = down.Any(r => r == results[0]);
        var description = string.Join("; ", down.Select(r => $"{r.Endpoint} down: {r.Error}"));
        return primaryDown
            ? new HealthCheckResult(context.Registration.FailureStatus, description, data: data)
            : HealthCheckResult.Degraded(description, data: data);
    }
}
