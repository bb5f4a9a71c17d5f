using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace Polystore.Integration.Outbox;

/// <summary>How far a subscriber is behind the outbox.</summary>
/// <param name="Subscriber">The subscriber name.</param>
/// <param name="Pending">Events appended but not yet delivered to it.</param>
/// <param name="OldestPendingAge">Age of the oldest undelivered event (the backlog age), or null when caught up.</param>
/// <param name="CheckpointAge">Time since its checkpoint last moved.</param>
/// <param name="DeadLetters">Events it gave up on.</param>
public sealed record OutboxStatus(string Subscriber, long Pending, TimeSpan? OldestPendingAge, TimeSpan? CheckpointAge, long DeadLetters);

/// <summary>Reads backlog and lag figures for health checks, dashboards and the demo.</summary>
public sealed class OutboxMonitor(NpgsqlDataSource dataSource, OutboxStore store)
{
    /// <summary>The status of <paramref name="subscriber"/>.</summary>
    public async Task<OutboxStatus> GetStatusAsync(string subscriber, CancellationToken cancellationToken = default)
    {
        var s = store.QuotedSchema;
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(
                $"""
                WITH c AS (SELECT coalesce((SELECT tx_id FROM {s}.outbox_checkpoints WHERE name = $1), '0') AS tx_id,
                                  coalesce((SELECT event_id FROM {s}.outbox_checkpoints WHERE name = $1), 0) AS event_id,
                                  (SELECT updated_at FROM {s}.outbox_checkpoints WHERE name = $1) AS updated_at)
                SELECT (SELECT count(*) FROM {s}.outbox o WHERE (o.tx_id, o.id) > (c.tx_id, c.event_id)),
                       (SELECT extract(epoch FROM clock_timestamp() - min(o.created_at)) FROM {s}.outbox o WHERE (o.tx_id, o.id) > (c.tx_id, c.event_id)),
                       extract(epoch FROM clock_timestamp() - c.updated_at),
                       (SELECT count(*) FROM {s}.outbox_dead_letters d WHERE d.name = $1)
                FROM c
                """, connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = subscriber });
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                    return new OutboxStatus(subscriber, reader.GetInt64(0),
                        reader.IsDBNull(1) ? null : TimeSpan.FromSeconds((double)reader.GetDecimal(1)),
                        reader.IsDBNull(2) ? null : TimeSpan.FromSeconds((double)reader.GetDecimal(2)),
                        reader.GetInt64(3));
                }
            }
        }
    }
}

/// <summary>
/// Healthy while the subscriber keeps up; Degraded when its backlog is older than
/// <paramref name="degradedAfter"/> or it has dead letters; Unhealthy past <paramref name="unhealthyAfter"/>.
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
        if (age > unhealthyAfter) return HealthCheckResult.Unhealthy($"{subscriber}: {status.Pending} events pending, oldest {age.TotalSeconds:0} s old", data: data);
        if (age > degradedAfter) return HealthCheckResult.Degraded($"{subscriber}: {status.Pending} events pending, oldest {age.TotalSeconds:0} s old", data: data);
        if (status.DeadLetters > 0) return HealthCheckResult.Degraded($"{subscriber}: {status.DeadLetters} dead-lettered events", data: data);
        return HealthCheckResult.Healthy($"{subscriber}: {status.Pending} pending", data);
    }
}
