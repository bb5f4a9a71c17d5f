using System.Text;
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

    /// <summary>
    /// Masks string literals (they may carry secrets or personal data): standard <c>'…'</c>, escape <c>E'…'</c>
    /// (backslashes escape) and dollar-quoted <c>$tag$…$tag$</c>, an unterminated one to the end; collapses white space and
    /// cuts the text to 120 characters.
    /// </summary>
    internal static string MaskQuery(string query)
    {
        const int limit = 120;
        var masked = new StringBuilder(limit + 8);
        var i = 0;
        while (i < query.Length && masked.Length <= limit)
        {
            var c = query[i];
            if (c == '\'')
            {
                var escapes = i > 0 && query[i - 1] is 'E' or 'e' && (i == 1 || !IsIdentifierChar(query[i - 2]));
                i = AfterQuoted(query, i + 1, escapes);
                masked.Append("'…'");
            }
            else if (c == '$' && (i == 0 || !IsIdentifierChar(query[i - 1])) && DollarTag(query, i) is { } tag)
            {
                var end = query.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                i = end < 0 ? query.Length : end + tag.Length;
                masked.Append("'…'");
            }
            else if (char.IsWhiteSpace(c))
            {
                if (masked.Length > 0 && masked[^1] != ' ') masked.Append(' ');
                i++;
            }
            else
            {
                masked.Append(c);
                i++;
            }
        }
        var text = masked.ToString().Trim();
        return text.Length <= limit && i >= query.Length ? text : text[..Math.Min(text.Length, limit - 1)] + "…";
    }

    // The index after the quote that closes a literal opened just before start ('' is a quote inside it, and so is \'
    // in an escape string); the end of the text when it is not closed.
    private static int AfterQuoted(string query, int start, bool backslashEscapes)
    {
        for (var j = start; j < query.Length; j++)
        {
            if (backslashEscapes && query[j] == '\\') j++;
            else if (query[j] == '\'')
            {
                if (j + 1 < query.Length && query[j + 1] == '\'') j++;
                else return j + 1;
            }
        }
        return query.Length;
    }

    // "$$" or "$tag$" starting at i (a tag is an identifier without '$'); null for anything else, such as a $1 parameter.
    private static string? DollarTag(string query, int i)
    {
        var j = i + 1;
        if (j < query.Length && (char.IsAsciiLetter(query[j]) || query[j] == '_' || query[j] > 127))
            while (j < query.Length && (char.IsAsciiLetterOrDigit(query[j]) || query[j] == '_' || query[j] > 127)) j++;
        return j < query.Length && query[j] == '$' ? query[i..(j + 1)] : null;
    }

    private static bool IsIdentifierChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '$' || c > 127;
}
