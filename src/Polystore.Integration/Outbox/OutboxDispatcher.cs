using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using Polystore.Core;
using Polystore.Postgres;

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
/// <para><b>Behind PgBouncer.</b> The leader's lock and its LISTEN need a session of their own, which transaction
/// pooling does not give: they go to <see cref="PostgresDataSources.Session"/> (<c>connection.direct</c>), the batches
/// through the pooler. Without <c>connection.direct</c> there, <see cref="RunAsync"/> refuses to start.</para>
/// <para><b>Failures.</b> A throwing subscriber makes the batch roll back; its events are then delivered
/// one at a time, and the failing event is retried alone with exponential backoff and, after <see cref="OutboxDispatcherOptions.MaxAttempts"/>, moved to
/// the dead-letter table so the events behind it keep flowing.</para>
/// <para><b>Telemetry.</b> Each batch delivered runs in an <c>outbox_dispatch</c> span that links to the trace context
/// each event was appended in; the <c>polystore.outbox.*</c> instruments of <see cref="IntegrationTelemetry"/> count and time
/// the deliveries, and the backlog gauges show what this dispatcher last measured.</para>
/// </remarks>
public sealed class OutboxDispatcher
{
    private static readonly TimeSpan FollowUpDelay = TimeSpan.FromMilliseconds(5);
    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlDataSource? _sessionSource;
    private readonly OutboxStore _store;
    private readonly IOutboxSubscriber _subscriber;
    private readonly OutboxDispatcherOptions _options;
    private readonly ILogger _logger;
    private readonly string _s;
    private readonly OutboxMonitor _monitor;
    private readonly TagList _tags;
    private long _backlogMeasuredAt;
    private bool _oneAtATime;
    private long? _failedEventId;
    private int _leadershipRefusals;
    private int _connectionFailures;

    /// <summary>Creates a dispatcher for <paramref name="subscriber"/>.</summary>
    /// <param name="dataSource">The database holding the outbox.</param>
    /// <param name="store">The outbox tables (their schema).</param>
    /// <param name="subscriber">Receives the events; its name keys the checkpoint.</param>
    /// <param name="options">Tuning; null = the defaults. Validated here (the exception names the option).</param>
    /// <param name="loggerFactory">
    /// Where the dispatcher logs (leadership, retries, dead letters, outages); null = the factory <paramref name="dataSource"/>
    /// was created with by <see cref="PostgresDataSources.Create"/>, else nowhere.
    /// </param>
    public OutboxDispatcher(NpgsqlDataSource dataSource, OutboxStore store, IOutboxSubscriber subscriber, OutboxDispatcherOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(subscriber);
        _dataSource = dataSource;
        _sessionSource = PostgresDataSources.SessionSourceOf(dataSource);
        _store = store;
        _subscriber = subscriber;
        _options = options ?? new OutboxDispatcherOptions();
        _options.Validate();
        _logger = (loggerFactory ?? PostgresDataSources.LoggerFactoryOf(dataSource) ?? NullLoggerFactory.Instance).CreateLogger<OutboxDispatcher>();
        _s = store.QuotedSchema;
        _monitor = new OutboxMonitor(dataSource, store);
        _tags = new TagList { { "schema", store.Schema }, { "subscriber", subscriber.Name } };
    }

    /// <summary>Whether this dispatcher currently holds leadership for its subscriber.</summary>
    public bool IsLeader { get; private set; }

    /// <summary>How many times another dispatcher held the leadership when this one tried to take it.</summary>
    internal int LeadershipRefusals => Volatile.Read(ref _leadershipRefusals);

    /// <summary>
    /// Runs until cancelled: waits for leadership, then delivers events as NOTIFY wakes it (or the poll
    /// interval passes). Survives PostgreSQL restarts by reconnecting with backoff.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// The data source goes through PgBouncer in transaction mode (<c>connection.pooler: pgbouncer-transaction</c>) and
    /// <c>connection.direct</c> is not set.
    /// </exception>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        // Refused rather than run degraded: through transaction pooling a session advisory lock stays on whichever
        // server connection took it (held for good, or released by a stranger's reset) and a LISTEN hears nothing
        // once its transaction ends, so there would be no leader and no wake-ups. Batches alone (ProcessAvailableAsync)
        // need no session and work through the pooler.
        if (_sessionSource is null)
            throw new InvalidOperationException(
                $"the outbox dispatcher for '{_subscriber.Name}' needs a session of its own for its leader lock and LISTEN, and PostgreSQL is reached through " +
                "PgBouncer in transaction mode (connection.pooler: pgbouncer-transaction): set connection.direct (the server's host and port) in postgresql.yaml.");
        try
        {
            await RunLoopAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // A stopped dispatcher's figures would go stale: the gauges stop reporting them.
            OutboxFigures.Clear(this);
        }
    }

    private async Task RunLoopAsync(CancellationToken cancellationToken)
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
            catch (Exception e) when (OutboxOutage.Is(e))
            {
                IsLeader = false;
                var delay = Backoff(++_connectionFailures);
                _logger.OutboxConnectionLost(Redactor.Redact(e), _subscriber.Name, delay);
                await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
            }
        }
        IsLeader = false;
    }

    private async Task LeadAsync(CancellationToken cancellationToken)
    {
        var session = await _sessionSource!.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (session.ConfigureAwait(false))
        {
            var asking = true;
            try
            {
                var leading = await TryTakeLeadershipAsync(session, cancellationToken).ConfigureAwait(false);
                asking = false;
                // The server answered: the next outage starts its backoff from the first step again.
                _connectionFailures = 0;
                while (!leading)
                {
                    Interlocked.Increment(ref _leadershipRefusals);
                    await DelayAsync(_options.PollInterval, cancellationToken).ConfigureAwait(false);
                    asking = true;
                    leading = await TryTakeLeadershipAsync(session, cancellationToken).ConfigureAwait(false);
                    asking = false;
                }
            }
            catch (Exception) when (asking)
            {
                // An attempt that failed (cancelled, timed out) may have been granted first: a cancel that reaches the
                // server after the lock was taken aborts the statement, and a session lock outlives that abort. Give it
                // up before the session goes back to the pool, where it would keep every standby out until reused.
                await ReleaseLeadershipAsync(session).ConfigureAwait(false);
                throw;
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
                    await MeasureBacklogAsync(cancellationToken).ConfigureAwait(false);
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
        catch (Exception e) when (OutboxOutage.Is(e))
        {
            _logger.OutboxLeadershipReleaseFailed(Redactor.Redact(e), _subscriber.Name);
        }
    }

    /// <summary>
    /// Delivers every event visible now and returns how many were checkpointed (handled or dead-lettered).
    /// Safe to call alongside running dispatchers. Stops early, returning what it did, when an event
    /// needs a retry delay.
    /// </summary>
    public async Task<int> ProcessAvailableAsync(CancellationToken cancellationToken = default)
    {
        await MeasureBacklogAsync(cancellationToken).ConfigureAwait(false);
        var total = 0;
        while (true)
        {
            var result = await ProcessBatchAsync(cancellationToken).ConfigureAwait(false);
            total += result.Checkpointed;
            if (result.RetryAfter is not null || !result.MoreAvailable) break;
        }
        await MeasureBacklogAsync(cancellationToken).ConfigureAwait(false);
        return total;
    }

    /// <summary>
    /// Measures the subscriber's backlog for the gauges, at most once per <see cref="OutboxDispatcherOptions.BacklogMeasureInterval"/>
    /// and only while someone observes them: the gauge callbacks then read the figures without a query.
    /// </summary>
    private async Task MeasureBacklogAsync(CancellationToken cancellationToken)
    {
        if (!IntegrationTelemetry.BacklogObserved) return;
        if (_backlogMeasuredAt != 0 && Stopwatch.GetElapsedTime(_backlogMeasuredAt) < _options.BacklogMeasureInterval) return;
        _backlogMeasuredAt = Stopwatch.GetTimestamp();
        try
        {
            var status = await _monitor.GetStatusAsync(_subscriber.Name, cancellationToken).ConfigureAwait(false);
            OutboxFigures.Set(this, new OutboxFigures(_store.Schema, _subscriber.Name, status.Pending, status.OldestPendingAge?.TotalSeconds ?? 0, Stopwatch.GetTimestamp()));
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && OutboxOutage.Is(e))
        {
            // The batch that follows meets the same outage and handles it; the gauges keep the last figures.
            _logger.OutboxBacklogUnmeasured(Redactor.Redact(e), _subscriber.Name);
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

                // Started once there is something to deliver: an idle poll makes no span.
                using var activity = StartDispatch(connection, events);
                var context = new OutboxContext(connection, transaction);
                try
                {
                    await _subscriber.HandleBatchAsync(events, context, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested && !IsOutage(e))
                {
                    IntegrationTelemetry.Failures.Add(1, _tags);
                    IntegrationTelemetry.Fail(activity, e);
                    await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                    if (_oneAtATime) return await HandleFailureAsync(connection, events[0], e, activity, cancellationToken).ConfigureAwait(false);
                    // Which event failed is unknown: deliver this batch's events one at a time, so the
                    // good ones pass and attempts count against the one that fails on its own.
                    (_oneAtATime, _failedEventId) = (true, events[^1].Id);
                    _logger.OutboxBatchFailed(Redactor.Redact(e), _subscriber.Name, events[^1].Id);
                    return new BatchResult(0, true, null);
                }
                catch (Exception e)
                {
                    IntegrationTelemetry.Fail(activity, e);
                    throw;
                }
                var last = events[^1];
                try
                {
                    await SaveCheckpointAsync(connection, transaction, last.TransactionId, last.Id, cancellationToken).ConfigureAwait(false);
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    IntegrationTelemetry.Fail(activity, e);
                    throw;
                }
                RecordDelivered(events);
                if (_oneAtATime && events[^1].Id == _failedEventId) (_oneAtATime, _failedEventId) = (false, null);
                await RunAfterCommitAsync(context, cancellationToken).ConfigureAwait(false);
                return new BatchResult(events.Count, events.Count == limit, null);
            }
        }
    }

    /// <summary>
    /// The span of one delivered batch, linked to the trace context of each event's append (once per distinct context),
    /// so the trace of a command leads across its commit to the delivery.
    /// </summary>
    private Activity? StartDispatch(NpgsqlConnection connection, List<OutboxEvent> events)
    {
        if (!IntegrationTelemetry.Source.HasListeners()) return null;
        List<ActivityLink>? links = null;
        HashSet<string>? seen = null;
        foreach (var outboxEvent in events)
        {
            if (outboxEvent.TraceParent is not { } traceParent || !(seen ??= new(StringComparer.Ordinal)).Add(traceParent)) continue;
            if (ActivityContext.TryParse(traceParent, outboxEvent.TraceState, isRemote: true, out var appended))
                (links ??= []).Add(new ActivityLink(appended, new ActivityTagsCollection { ["polystore.outbox.event_id"] = outboxEvent.Id }));
            else
                _logger.OutboxTraceContextInvalid(outboxEvent.Id);
        }
        // A batch holds events of many commands: its span is a root of its own, linked to each, whatever activity the
        // caller runs under (StartActivity takes Activity.Current as the parent when given no context). Clearing it
        // here touches only the delivering async method's flow: the caller's activity is current again when it returns.
        Activity.Current = null;
        var activity = IntegrationTelemetry.Source.StartActivity($"outbox_dispatch {_subscriber.Name}", ActivityKind.Consumer, parentContext: default, links: links);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("db.system.name", "postgresql");
        activity.SetTag("db.namespace", connection.Database);
        activity.SetTag("db.collection.name", $"{_store.Schema}.outbox");
        activity.SetTag("polystore.outbox.schema", _store.Schema);
        activity.SetTag("polystore.outbox.subscriber", _subscriber.Name);
        activity.SetTag("polystore.outbox.events", events.Count);
        activity.SetTag("polystore.outbox.event_type", IntegrationTelemetry.EventTypes(events, e => e.Type));
        activity.SetTag("polystore.outbox.first_event_id", events[0].Id);
        activity.SetTag("polystore.outbox.last_event_id", events[^1].Id);
        activity.SetTag("polystore.outbox.one_at_a_time", _oneAtATime);
        return activity;
    }

    private void RecordDelivered(List<OutboxEvent> events)
    {
        IntegrationTelemetry.Dispatched.Add(events.Count, _tags);
        if (!IntegrationTelemetry.Lags.Enabled) return;
        var now = DateTimeOffset.UtcNow;
        foreach (var delivered in events) IntegrationTelemetry.Lags.Record((now - delivered.CreatedAt).TotalSeconds, _tags);
    }

    private async Task<BatchResult> HandleFailureAsync(NpgsqlConnection connection, OutboxEvent failed, Exception error, Activity? activity, CancellationToken cancellationToken)
    {
        var attempts = await RecordAttemptAsync(connection, failed, error, cancellationToken).ConfigureAwait(false);
        activity?.SetTag("polystore.outbox.attempt", attempts);
        if (attempts < _options.MaxAttempts)
        {
            var delay = Backoff(attempts);
            _logger.OutboxEventFailed(Redactor.Redact(error), _subscriber.Name, failed.Id, attempts, _options.MaxAttempts, delay);
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
                        INSERT INTO {_s}.outbox_dead_letters (name, event_id, tx_id, type, payload, attempts, last_error, stream, aggregate_id, version, created_at)
                        SELECT $1, o.id, o.tx_id, o.type, o.payload, $3, $4, o.stream, o.aggregate_id, o.version, o.created_at FROM {_s}.outbox o WHERE o.id = $2
                        ON CONFLICT DO NOTHING)
                    DELETE FROM {_s}.outbox_attempts WHERE name = $1 AND event_id = $2
                    """, connection, transaction);
                await using (command.ConfigureAwait(false))
                {
                    command.Parameters.Add(new NpgsqlParameter { Value = _subscriber.Name });
                    command.Parameters.Add(new NpgsqlParameter { Value = failed.Id });
                    command.Parameters.Add(new NpgsqlParameter { Value = attempts });
                    command.Parameters.Add(new NpgsqlParameter { Value = LastError(error) });
                    await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                await SaveCheckpointAsync(connection, transaction, failed.TransactionId, failed.Id, cancellationToken).ConfigureAwait(false);
                IntegrationTelemetry.DeadLetters.Add(1, _tags);
                activity?.SetTag("polystore.outbox.dead_lettered", true);
                _logger.OutboxEventDeadLettered(Redactor.Redact(error), failed.Id, _store.Schema, _subscriber.Name, attempts);
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
            command.Parameters.Add(new NpgsqlParameter { Value = LastError(error) });
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
            SELECT id, tx_id, stream, aggregate_id, version, type, payload::text, created_at, trace_parent, trace_state
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
                        reader.GetInt64(4), reader.GetString(5), reader.GetString(6), reader.GetFieldValue<DateTimeOffset>(7))
                    {
                        TraceParent = reader.IsDBNull(8) ? null : reader.GetString(8),
                        TraceState = reader.IsDBNull(9) ? null : reader.GetString(9),
                    });
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
                IntegrationTelemetry.AfterCommit.Add(1, _tags);
                _logger.OutboxAfterCommitFailed(Redactor.Redact(e), _subscriber.Name);
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

    /// <summary>What <c>last_error</c> stores: the message redacted, then cut to 2,000 characters (a secret cut in two would no longer match).</summary>
    internal static string LastError(Exception error)
    {
        var message = Redactor.RedactConnectionString(error.Message);
        return message.Length <= 2000 ? message : message[..2000];
    }
}
