using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Healthy while the subscriber keeps up; Degraded when its backlog is older than
/// <paramref name="degradedAfter"/> or it has dead letters; Unhealthy past <paramref name="unhealthyAfter"/>. When the
/// backlog is older than <paramref name="degradedAfter"/> and a transaction open longer than that holds the xmin horizon
/// back (which holds back every delivery), the result names it: pid, application_name, state, age and its statement
/// with literals masked (data <c>horizon_held_by</c>, up to three).
/// </summary>
public sealed class OutboxHealthCheck(OutboxMonitor monitor, string subscriber, TimeSpan degradedAfter, TimeSpan unhealthyAfter) : IHealthCheck
{
    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var status = await monitor.GetStatusAsync(subscriber, cancellationToken).ConfigureAwait(false);
        var data = new Dictionary<string, object>
        {
            ["pending"] = status.Pending,
            ["backlog_age_seconds"] = status.OldestPendingAge?.TotalSeconds ?? 0,
            ["dead_letters"] = status.DeadLetters,
        };
        var age = status.OldestPendingAge ?? TimeSpan.Zero;
        var heldBy = "";
        if (age > degradedAfter)
        {
            // A stuck backlog is most often an open transaction elsewhere: name it.
            var holders = await monitor.GetHorizonHoldersAsync(degradedAfter, 3, cancellationToken).ConfigureAwait(false);
            if (holders.Count > 0)
            {
                data["horizon_held_by"] = holders.Select(h => h.ToString()).ToArray();
                heldBy = $"; delivery is held back by the open transaction of {holders[0]}";
            }
        }
        if (age > unhealthyAfter) return HealthCheckResult.Unhealthy($"{subscriber}: {status.Pending} events pending, oldest {age.TotalSeconds:0} s old{heldBy}", data: data);
        if (age > degradedAfter) return HealthCheckResult.Degraded($"{subscriber}: {status.Pending} events pending, oldest {age.TotalSeconds:0} s old{heldBy}", data: data);
        if (status.DeadLetters > 0) return HealthCheckResult.Degraded($"{subscriber}: {status.DeadLetters} dead-lettered events", data: data);
        return HealthCheckResult.Healthy($"{subscriber}: {status.Pending} pending", data);
    }
}
