using Npgsql;

namespace Polystore.Integration.Outbox;

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
