using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Delivers outbox events to one subscriber, in commit order, without skipping late commits.
/// </summary>
/// <remarks>
/// <para><b>Ordering.</b> A plain <c>id &gt; last_id</c> checkpoint skips rows: ids are taken at insert
/// time, so a transaction that took id 10 but commits after the one that took id 11 is passed over once
/// 11 is read. Instead each row records its transaction id (<c>pg_current_xact_id()</c>), and only rows
/// whose transaction id is below the current snapshot's <c>xmin</c> are read. Every transaction below
/// <c>xmin</c> has finished, so no row can later appear behind the checkpoint <c>(tx_id, id)</c>. The
/// price: a long-running transaction anywhere in the cluster holds delivery back until it ends (the
/// health check reports the backlog age).</para>
/// <para><b>Concurrency.</b> Any number of dispatchers may run. One is elected leader with a session
/// advisory lock (released by the server when its process dies); besides, every batch locks the
/// subscriber's checkpoint row, so two dispatchers can never deliver the same batch twice.</para>
/// <para><b>Failures.</b> A throwing subscriber makes the batch roll back; its events are then delivered
/// one at a time, and the failing event is retried alone with exponential backoff and, after <see cref="OutboxDispatcherOptions.MaxAttempts"/>, moved to
/// the dead-letter table so the events behind it keep flowing.</para>
/// </remarks>
public sealed class OutboxDispatcher
{
    private static readonly Meter Meter = new("Polystore.Integration");
    private static readonly Counter<long> Dispatched = Meter.CreateCounter<long>("polystore.outbox.events_dispatched", description: "Events handled and checkpointed");
    private static readonly Counter<long> HandlerFailures = Meter.CreateCounter<long>("polystore.outbox.handler_failures", description: "Subscriber calls that threw");
    private static readonly Counter<long> DeadLettered = Meter.CreateCounter<long>("polystore.outbox.dead_lettered", description: "Events moved to the dead-letter table");
    private static readonly Histogram<double> DeliveryLag = Meter.CreateHistogram<double>("polystore.outbox.delivery_lag", "ms", "Time from append to checkpointed delivery (projection lag)");
    private static readonly Counter<long> AfterCommitFailures = Meter.CreateCounter<long>("polystore.outbox.after_commit_failures", description: "After-commit actions (cache invalidations) that failed");

    private static readonly TimeSpan FollowUpDelay = TimeSpan.FromMilliseconds(5);
    private readonly NpgsqlDataSource _dataSource;
    private readonly OutboxStore _store;
    private readonly IOutboxSubscriber _subscriber;
    private readonly OutboxDispatcherOptions _options;
    private readonly ILogger _logger;
    private readonly string _s;
    private bool _oneAtATime;
    private long? _failedEventId;
    private int _leadershipRefusals;
    private int _connectionFailures;

    /// <summary>Creates a dispatcher for <paramref name="subscriber"/>.</summary>
    /// <param name="dataSource">The database holding the outbox.</param>
    /// <param name="store">The outbox tables (their schema).</param>
    /// <param name="subscriber">Receives the events; its name keys the checkpoint.</param>
    /// <param name="options">Tuning; null = the defaults. Validated here (the exception names the option).</param>
    /// <param name="loggerFactory">Where the dispatcher logs; null = nowhere.</param>
    public OutboxDispatcher(NpgsqlDataSource dataSource, OutboxStore store, IOutboxSubscriber subscriber, OutboxDispatcherOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(subscriber);
        _dataSource = dataSource;
        _store = store;
        _subscriber = subscriber;
        _options = options ?? new OutboxDispatcherOptions();
        _options.Validate();
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<OutboxDispatcher>();
        _s = store.QuotedSchema;
    }

    /// <summary>Whether this dispatcher currently holds leadership for its subscriber.</summary>
    public bool IsLeader { get; private set; }

    /// <summary>How many times another dispatcher held the leadership when this one tried to take it.</summary>
    internal int LeadershipRefusals => Volatile.Read(ref _leadershipRefusals);

    /// <summary>
    /// Runs until cancelled: waits for leadership, then delivers events as NOTIFY wakes it (or the poll
    /// interval passes). Survives PostgreSQL restarts by reconnecting with backoff.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await LeadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                IsLeader = false;
                var delay = Backoff(++_connectionFailures);
                _logger.OutboxConnectionLost(e, _subscriber.Name, delay);
                await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
            }
        }
        IsLeader = false;
    }

    private async Task LeadAsync(CancellationToken cancellationToken)
    {
        var session = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (session.ConfigureAwait(false))
        {
            var leading = await TryTakeLeadershipAsync(session, cancellationToken).ConfigureAwait(false);
            // The server answered: the next outage starts its backoff from the first step again.
            _connectionFailures = 0;
            while (!leading)
            {
                Interlocked.Increment(ref _leadershipRefusals);
                await DelayAsync(_options.PollInterval, cancellationToken).ConfigureAwait(false);
                leading = await TryTakeLeadershipAsync(session, cancellationToken).ConfigureAwait(false);
            }
            IsLeader = true;
            try
            {
                _logger.OutboxLeader(_subscriber.Name);
                var listen = new NpgsqlCommand($"LISTEN \"{_store.Channel}\"", session);
                await using (listen.ConfigureAwait(false)) await listen.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                var followUp = false;
                while (!cancellationToken.IsCancellationRequested)
                {
                    var result = await ProcessBatchAsync(cancellationToken).ConfigureAwait(false);
                    if (result.RetryAfter is { } delay) await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
                    else if (result.MoreAvailable) continue;
                    else if (result.Checkpointed > 0 || followUp)
                    {
                        // Commits that skipped NOTIFY (see OutboxStore.AppendAsync) land just after the one that
                        // woke us: look again shortly, and keep looking while events arrive.
                        followUp = result.Checkpointed > 0;
                        await DelayAsync(FollowUpDelay, cancellationToken).ConfigureAwait(false);
                        if (!followUp) await session.WaitAsync(_options.PollInterval, cancellationToken).ConfigureAwait(false);
                    }
                    else await session.WaitAsync(_options.PollInterval, cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                IsLeader = false;
                await ReleaseLeadershipAsync(session).ConfigureAwait(false);
            }
        }
    }

    private string LeadershipKey => $"polystore.outbox:{_store.Schema}:{_subscriber.Name}";

    private async Task<bool> TryTakeLeadershipAsync(NpgsqlConnection session, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", session);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = LeadershipKey });
            return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
    }

    /// <summary>
    /// Gives up the lock and the LISTEN before the session goes back to the pool: the pool resets a
    /// connection only when it is next handed out, so a lock left on it would keep every standby
    /// waiting until then. On a broken session there is nothing to release: the server already has.
    /// </summary>
    private async Task ReleaseLeadershipAsync(NpgsqlConnection session)
    {
        try
        {
            var unlock = new NpgsqlBatchCommand("SELECT pg_advisory_unlock(hashtextextended($1, 0))");
            unlock.Parameters.Add(new NpgsqlParameter { Value = LeadershipKey });
            var batch = new NpgsqlBatch(session) { BatchCommands = { unlock, new NpgsqlBatchCommand($"UNLISTEN \"{_store.Channel}\"") }, Timeout = 5 };
            await using (batch.ConfigureAwait(false)) await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
        {
            _logger.OutboxLeadershipReleaseFailed(e, _subscriber.Name);
        }
    }

    /// <summary>
    /// Delivers every event visible now and returns how many were checkpointed (handled or dead-lettered).
    /// Safe to call alongside running dispatchers. Stops early, returning what it did, when an event
    /// needs a retry delay.
    /// </summary>
    public async Task<int> ProcessAvailableAsync(CancellationToken cancellationToken = default)
    {
        var total = 0;
        while (true)
        {
            var result = await ProcessBatchAsync(cancellationToken).ConfigureAwait(false);
            total += result.Checkpointed;
            if (result.RetryAfter is not null || !result.MoreAvailable) return total;
        }
    }

    private readonly record struct BatchResult(int Checkpointed, bool MoreAvailable, TimeSpan? RetryAfter);

    private async Task<BatchResult> ProcessBatchAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await EnsureCheckpointAsync(connection, cancellationToken).ConfigureAwait(false);
            var limit = _oneAtATime ? 1 : _options.BatchSize;
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                var (checkpointTx, checkpointId) = await LockCheckpointAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                var events = await ReadAsync(connection, transaction, checkpointTx, checkpointId, limit, cancellationToken).ConfigureAwait(false);
                if (events.Count == 0) return new BatchResult(0, false, null);

                var context = new OutboxContext(connection, transaction);
                try
                {
                    await _subscriber.HandleBatchAsync(events, context, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested && !IsOutage(e))
                {
                    HandlerFailures.Add(1);
                    await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                    if (_oneAtATime) return await HandleFailureAsync(connection, events[0], e, cancellationToken).ConfigureAwait(false);
                    // Which event failed is unknown: deliver this batch's events one at a time, so the
                    // good ones pass and attempts count against the one that fails on its own.
                    (_oneAtATime, _failedEventId) = (true, events[^1].Id);
                    _logger.OutboxBatchFailed(e, _subscriber.Name, events[^1].Id);
                    return new BatchResult(0, true, null);
                }
                var last = events[^1];
                await SaveCheckpointAsync(connection, transaction, last.TransactionId, last.Id, cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                Dispatched.Add(events.Count);
                var now = DateTimeOffset.UtcNow;
                foreach (var delivered in events) DeliveryLag.Record((now - delivered.CreatedAt).TotalMilliseconds);
                if (_oneAtATime && events[^1].Id == _failedEventId) (_oneAtATime, _failedEventId) = (false, null);
                await RunAfterCommitAsync(context, cancellationToken).ConfigureAwait(false);
                return new BatchResult(events.Count, events.Count == limit, null);
            }
        }
    }

    private async Task<BatchResult> HandleFailureAsync(NpgsqlConnection connection, OutboxEvent failed, Exception error, CancellationToken cancellationToken)
    {
        var attempts = await RecordAttemptAsync(connection, failed, error, cancellationToken).ConfigureAwait(false);
        if (attempts < _options.MaxAttempts)
        {
            var delay = Backoff(attempts);
            _logger.OutboxEventFailed(error, _subscriber.Name, failed.Id, attempts, _options.MaxAttempts, delay);
            return new BatchResult(0, true, delay);
        }

        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            var (checkpointTx, checkpointId) = await LockCheckpointAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
            var next = await ReadAsync(connection, transaction, checkpointTx, checkpointId, 1, cancellationToken).ConfigureAwait(false);
            // Another dispatcher may have moved on meanwhile; only dead-letter what is still next.
            if (next.Count == 1 && next[0].Id == failed.Id)
            {
                var command = new NpgsqlCommand(
                    $"""
                    WITH moved AS (
                        INSERT INTO {_s}.outbox_dead_letters (name, event_id, tx_id, type, payload, attempts, last_error)
                        SELECT $1, o.id, o.tx_id, o.type, o.payload, $3, $4 FROM {_s}.outbox o WHERE o.id = $2
                        ON CONFLICT DO NOTHING)
                    DELETE FROM {_s}.outbox_attempts WHERE name = $1 AND event_id = $2
                    """, connection, transaction);
                await using (command.ConfigureAwait(false))
                {
                    command.Parameters.Add(new NpgsqlParameter { Value = _subscriber.Name });
                    command.Parameters.Add(new NpgsqlParameter { Value = failed.Id });
                    command.Parameters.Add(new NpgsqlParameter { Value = attempts });
                    command.Parameters.Add(new NpgsqlParameter { Value = Truncate(error.Message) });
                    await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                await SaveCheckpointAsync(connection, transaction, failed.TransactionId, failed.Id, cancellationToken).ConfigureAwait(false);
                DeadLettered.Add(1);
                _logger.OutboxEventDeadLettered(error, failed.Id, _store.Schema, _subscriber.Name, attempts);
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        (_oneAtATime, _failedEventId) = (false, null);
        return new BatchResult(1, true, null);
    }

    private async Task<int> RecordAttemptAsync(NpgsqlConnection connection, OutboxEvent failed, Exception error, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(
            $"""
            INSERT INTO {_s}.outbox_attempts (name, event_id, attempts, last_error) VALUES ($1, $2, 1, $3)
            ON CONFLICT (name, event_id) DO UPDATE SET attempts = {_s}.outbox_attempts.attempts + 1, last_error = excluded.last_error
            RETURNING attempts
            """, connection);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _subscriber.Name });
            command.Parameters.Add(new NpgsqlParameter { Value = failed.Id });
            command.Parameters.Add(new NpgsqlParameter { Value = Truncate(error.Message) });
            return (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
    }

    private async Task EnsureCheckpointAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand($"INSERT INTO {_s}.outbox_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", connection);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _subscriber.Name });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<(ulong TxId, long EventId)> LockCheckpointAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand($"SELECT tx_id, event_id FROM {_s}.outbox_checkpoints WHERE name = $1 FOR UPDATE", connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _subscriber.Name });
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                return (reader.GetFieldValue<ulong>(0), reader.GetInt64(1));
            }
        }
    }

    private async Task<List<OutboxEvent>> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, ulong afterTx, long afterId, int limit, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(
            $"""
            SELECT id, tx_id, stream, aggregate_id, version, type, payload::text, created_at
            FROM {_s}.outbox
            WHERE (tx_id, id) > ($1, $2) AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY tx_id, id
            LIMIT $3
            """, connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = afterTx, NpgsqlDbType = NpgsqlDbType.Xid8 });
            command.Parameters.Add(new NpgsqlParameter { Value = afterId });
            command.Parameters.Add(new NpgsqlParameter { Value = limit });
            var events = new List<OutboxEvent>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    events.Add(new OutboxEvent(reader.GetInt64(0), reader.GetFieldValue<ulong>(1), reader.GetString(2), reader.GetString(3),
                        reader.GetInt64(4), reader.GetString(5), reader.GetString(6), reader.GetFieldValue<DateTimeOffset>(7)));
            }
            return events;
        }
    }

    private async Task SaveCheckpointAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, ulong txId, long eventId, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand($"UPDATE {_s}.outbox_checkpoints SET tx_id = $2, event_id = $3, updated_at = now() WHERE name = $1", connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _subscriber.Name });
            command.Parameters.Add(new NpgsqlParameter { Value = txId, NpgsqlDbType = NpgsqlDbType.Xid8 });
            command.Parameters.Add(new NpgsqlParameter { Value = eventId });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RunAfterCommitAsync(OutboxContext context, CancellationToken cancellationToken)
    {
        foreach (var action in context.AfterCommitActions)
        {
            try
            {
                await action(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                AfterCommitFailures.Add(1);
                _logger.OutboxAfterCommitFailed(e, _subscriber.Name);
            }
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var exponential = _options.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 20));
        var capped = Math.Min(exponential, _options.RetryMaxDelay.TotalMilliseconds);
        // Equal jitter: half the step fixed, half random. The random half keeps dispatchers out of
        // lockstep; the fixed half guarantees each retry really backs off (full jitter, anywhere in
        // [0, step], would now and then retry a failing event or a restarting server at once).
        return TimeSpan.FromMilliseconds(capped / 2 + Random.Shared.NextDouble() * capped / 2);
    }

    private static async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try { await Task.Delay(delay, cancellationToken).ConfigureAwait(false); }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
    }

    // A lost connection or a restarting server is not the event's fault: reconnect, don't count an attempt.
    private static bool IsOutage(Exception e) =>
        e is NpgsqlException { IsTransient: true } || e is NpgsqlException { InnerException: IOException or System.Net.Sockets.SocketException } || e is IOException;

    private static string Truncate(string message) => message.Length <= 2000 ? message : message[..2000];
}
