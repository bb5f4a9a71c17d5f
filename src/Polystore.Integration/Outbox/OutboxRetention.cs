using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using Polystore.Core;
using Polystore.Postgres;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Removes delivered events from the outbox: those older than <see cref="OutboxRetentionOptions.MaxAge"/> and at or
/// below the checkpoint of every subscriber (every row of <c>outbox_checkpoints</c>), in batches of
/// <see cref="OutboxRetentionOptions.BatchSize"/>, each its own short transaction.
/// </summary>
/// <remarks>
/// <para><b>Why it is safe.</b> A dispatcher reads only rows after its checkpoint, and a checkpoint only moves forward,
/// so a row at or below the lowest checkpoint read at any moment is never read again by anyone. A subscriber that
/// has no checkpoint row yet starts from what is left: start it (or insert its checkpoint) before its events age out.
/// A projection rebuild replays only the retained history; its temporary checkpoint holds pruning back while it runs.</para>
/// <para><b>Why it does not block writers.</b> Appends only insert, and each batch takes the next rows in commit order
/// (the <c>(tx_id, id)</c> index, from where the previous batch ended) with <c>FOR UPDATE SKIP LOCKED</c>, so neither
/// appends nor a second pruner wait on it, and a batch never scans more than its size.</para>
/// <para>A subscriber that is gone but whose checkpoint row stays holds pruning back forever: delete its row from
/// <c>outbox_checkpoints</c>; <see cref="OutboxPruneReport.SlowestSubscriber"/> names it.</para>
/// </remarks>
public sealed class OutboxRetention
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly OutboxStore _store;
    private readonly OutboxRetentionOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _sql;

    /// <summary>Creates the pruner.</summary>
    /// <param name="dataSource">The database holding the outbox (the primary).</param>
    /// <param name="store">The outbox tables.</param>
    /// <param name="options">Age, batch size and interval; null = the defaults. Validated here (the exception names the option).</param>
    /// <param name="timeProvider">The clock the age is measured with; null = the system clock.</param>
    /// <param name="loggerFactory">Where runs are logged; null = the data source's factory, else nowhere.</param>
    public OutboxRetention(NpgsqlDataSource dataSource, OutboxStore store, OutboxRetentionOptions? options = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(store);
        _dataSource = dataSource;
        _store = store;
        _options = options ?? new OutboxRetentionOptions();
        _options.Validate();
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? PostgresDataSources.LoggerFactoryOf(dataSource) ?? NullLoggerFactory.Instance).CreateLogger<OutboxRetention>();
        var s = store.QuotedSchema;
        // The next rows in commit order after the previous batch (the first batch of a run starts at the beginning),
        // bounded by the lowest checkpoint; of those, the old ones go. Starting after the previous batch keeps the index
        // scan off the entries the run already deleted (vacuum has not removed them yet), and taking the rows without the
        // age filter keeps each scan to BatchSize rows even when nothing is old enough.
        _sql = $"""
            WITH lowest AS (SELECT tx_id, event_id FROM {s}.outbox_checkpoints ORDER BY tx_id, event_id LIMIT 1),
            head AS (
                SELECT o.id, o.tx_id, o.created_at FROM {s}.outbox o, lowest l
                WHERE (o.tx_id, o.id) > ($3, $4) AND (o.tx_id, o.id) <= (l.tx_id, l.event_id)
                ORDER BY o.tx_id, o.id
                LIMIT $2
                FOR UPDATE OF o SKIP LOCKED),
            gone AS (DELETE FROM {s}.outbox o USING head h WHERE o.id = h.id AND h.created_at < $1 RETURNING o.id)
            SELECT (SELECT count(*) FROM gone)::int, (SELECT count(*) FROM head)::int, last.tx_id, last.id
            FROM (SELECT NULL) one LEFT JOIN (SELECT tx_id, id FROM head ORDER BY tx_id DESC, id DESC LIMIT 1) last ON true
            """;
    }

    /// <summary>The options in force.</summary>
    public OutboxRetentionOptions Options => _options;

    /// <summary>
    /// Prunes batch after batch in commit order until it reaches the lowest checkpoint or a batch in which nothing is
    /// old enough.
    /// Safe alongside appends, dispatchers and other pruners.
    /// </summary>
    public async Task<OutboxPruneReport> PruneAsync(CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        var now = _time.GetUtcNow();
        // An age older than the calendar (MaxAge = TimeSpan.MaxValue) keeps everything: the cutoff is the earliest time.
        var cutoff = _options.MaxAge < now - DateTimeOffset.MinValue ? now - _options.MaxAge : DateTimeOffset.MinValue;
        long deleted = 0;
        var batches = 0;
        (ulong TxId, long Id) after = (0, 0);
        while (true)
        {
            var (rows, seen, last) = await DeleteBatchAsync(cutoff, after, cancellationToken).ConfigureAwait(false);
            deleted += rows;
            batches++;
            // Done at the lowest checkpoint, or where events are too young (commit order is about age order).
            if (seen < _options.BatchSize || rows == 0 || last is not { } next) break;
            after = next;
        }
        var (slowest, slowestEventId) = await SlowestAsync(cancellationToken).ConfigureAwait(false);
        var report = new OutboxPruneReport(deleted, batches, Stopwatch.GetElapsedTime(started), slowest, slowestEventId);
        if (deleted > 0) _logger.OutboxPruned(deleted, _store.Schema, batches, report.Elapsed);
        return report;
    }

    /// <summary>Prunes every <see cref="OutboxRetentionOptions.Interval"/> until cancelled; a failed run is logged and retried at the next one.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await PruneAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (OutboxOutage.Is(e))
            {
                _logger.OutboxPruneFailed(Redactor.Redact(e), _store.Schema, _options.Interval);
            }
            try
            {
                await Task.Delay(_options.Interval, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    private async Task<(int Deleted, int Seen, (ulong TxId, long Id)? Last)> DeleteBatchAsync(DateTimeOffset cutoff, (ulong TxId, long Id) after, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(_sql, connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = cutoff });
                command.Parameters.Add(new NpgsqlParameter { Value = _options.BatchSize });
                command.Parameters.Add(new NpgsqlParameter { Value = after.TxId, NpgsqlDbType = NpgsqlDbType.Xid8 });
                command.Parameters.Add(new NpgsqlParameter { Value = after.Id });
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                    return (reader.GetInt32(0), reader.GetInt32(1), reader.IsDBNull(2) ? null : (reader.GetFieldValue<ulong>(2), reader.GetInt64(3)));
                }
            }
        }
    }

    private async Task<(string? Name, long EventId)> SlowestAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT name, event_id FROM {_store.QuotedSchema}.outbox_checkpoints ORDER BY tx_id, event_id LIMIT 1", connection);
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? (reader.GetString(0), reader.GetInt64(1)) : (null, 0);
            }
        }
    }
}
