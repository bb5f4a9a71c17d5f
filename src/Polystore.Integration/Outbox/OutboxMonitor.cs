using System.Text.RegularExpressions;
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

    /// <summary>
    /// The open transactions holding the xmin horizon back (those with a transaction id, and prepared ones) that have
    /// been open longer than <paramref name="olderThan"/>, oldest first, at most <paramref name="limit"/>. Reading it
    /// needs <c>pg_read_all_stats</c> (or superuser) to see other roles' queries; without it they show as hidden.
    /// </summary>
    public async Task<IReadOnlyList<OutboxHorizonHolder>> GetHorizonHoldersAsync(TimeSpan olderThan, int limit = 3, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(
                """
                SELECT pid, datname, usename, application_name, state, age_s, query FROM (
                    SELECT pid, coalesce(datname, '') AS datname, coalesce(usename, '') AS usename, coalesce(application_name, '') AS application_name,
                           coalesce(state, 'hidden') AS state, extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age_s,
                           coalesce(query, '') AS query, age(backend_xid) AS xid_age
                    FROM pg_stat_activity
                    WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND xact_start < clock_timestamp() - $1
                    UNION ALL
                    SELECT NULL, database, owner, gid, 'prepared', extract(epoch FROM clock_timestamp() - prepared)::float8, '', age(transaction)
                    FROM pg_prepared_xacts WHERE prepared < clock_timestamp() - $1) h
                ORDER BY xid_age DESC
                LIMIT $2
                """, connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = olderThan });
                command.Parameters.Add(new NpgsqlParameter { Value = limit });
                var holders = new List<OutboxHorizonHolder>();
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        holders.Add(new OutboxHorizonHolder(reader.IsDBNull(0) ? null : reader.GetInt32(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                            reader.GetString(4), TimeSpan.FromSeconds(reader.GetDouble(5)), MaskQuery(reader.GetString(6))));
                }
                return holders;
            }
        }
    }

    /// <summary>Masks string literals (they may carry secrets or personal data) and cuts the text to 120 characters.</summary>
    internal static string MaskQuery(string query)
    {
        var masked = Regex.Replace(query, @"'(?:[^']|'')*'?", "'…'", RegexOptions.None, TimeSpan.FromSeconds(1));
        masked = Regex.Replace(masked, @"\s+", " ", RegexOptions.None, TimeSpan.FromSeconds(1)).Trim();
        return masked.Length <= 120 ? masked : masked[..119] + "…";
    }
}
