using Microsoft.Extensions.Logging;

namespace Polystore.Integration;

/// <summary>The log messages of Polystore.Integration, with stable event ids (1xx: outbox, 2xx: multi-store transactions, 3xx: projections).</summary>
internal static partial class IntegrationLog
{
    [LoggerMessage(EventId = 101, EventName = "OutboxLeader", Level = LogLevel.Information,
        Message = "Outbox dispatcher {Subscriber} is the leader")]
    public static partial void OutboxLeader(this ILogger logger, string subscriber);

    [LoggerMessage(EventId = 102, EventName = "OutboxConnectionLost", Level = LogLevel.Warning,
        Message = "Outbox dispatcher {Subscriber} lost its connection; reconnecting in {Delay}")]
    public static partial void OutboxConnectionLost(this ILogger logger, Exception exception, string subscriber, TimeSpan delay);

    [LoggerMessage(EventId = 103, EventName = "OutboxBatchFailed", Level = LogLevel.Warning,
        Message = "Outbox subscriber {Subscriber} failed on a batch ending at event {EventId}; delivering its events one at a time")]
    public static partial void OutboxBatchFailed(this ILogger logger, Exception exception, string subscriber, long eventId);

    [LoggerMessage(EventId = 104, EventName = "OutboxEventFailed", Level = LogLevel.Warning,
        Message = "Outbox subscriber {Subscriber} failed on event {EventId} (attempt {Attempt} of {MaxAttempts}); retrying in {Delay}")]
    public static partial void OutboxEventFailed(this ILogger logger, Exception exception, string subscriber, long eventId, int attempt, int maxAttempts, TimeSpan delay);

    [LoggerMessage(EventId = 105, EventName = "OutboxEventDeadLettered", Level = LogLevel.Error,
        Message = "Outbox event {EventId} moved to {Schema}.outbox_dead_letters for {Subscriber} after {Attempts} attempts")]
    public static partial void OutboxEventDeadLettered(this ILogger logger, Exception exception, long eventId, string schema, string subscriber, int attempts);

    [LoggerMessage(EventId = 106, EventName = "OutboxAfterCommitFailed", Level = LogLevel.Warning,
        Message = "An after-commit action of outbox subscriber {Subscriber} failed; the cache TTL bounds the staleness")]
    public static partial void OutboxAfterCommitFailed(this ILogger logger, Exception exception, string subscriber);

    [LoggerMessage(EventId = 107, EventName = "OutboxLeadershipReleaseFailed", Level = LogLevel.Debug,
        Message = "Outbox dispatcher {Subscriber} could not release its leadership lock; the server releases it when the session ends")]
    public static partial void OutboxLeadershipReleaseFailed(this ILogger logger, Exception exception, string subscriber);

    [LoggerMessage(EventId = 108, EventName = "OutboxBacklogUnmeasured", Level = LogLevel.Debug,
        Message = "Outbox dispatcher {Subscriber} could not measure its backlog for the backlog gauges; the last figures stay")]
    public static partial void OutboxBacklogUnmeasured(this ILogger logger, Exception exception, string subscriber);

    [LoggerMessage(EventId = 109, EventName = "OutboxTraceContextInvalid", Level = LogLevel.Debug,
        Message = "Outbox event {EventId} carries a trace context that is not W3C traceparent; its dispatch span does not link to it")]
    public static partial void OutboxTraceContextInvalid(this ILogger logger, long eventId);

    [LoggerMessage(EventId = 110, EventName = "OutboxSchemaUpgraded", Level = LogLevel.Information,
        Message = "Added the columns missing from {Schema}.outbox and its dead letters (tables made by an earlier version)")]
    public static partial void OutboxSchemaUpgraded(this ILogger logger, string schema);

    [LoggerMessage(EventId = 111, EventName = "OutboxPruned", Level = LogLevel.Information,
        Message = "Outbox retention removed {Deleted} delivered events from {Schema}.outbox in {Batches} batches ({Elapsed})")]
    public static partial void OutboxPruned(this ILogger logger, long deleted, string schema, int batches, TimeSpan elapsed);

    [LoggerMessage(EventId = 112, EventName = "OutboxPruneFailed", Level = LogLevel.Warning,
        Message = "Outbox retention on {Schema}.outbox failed; trying again in {Interval}")]
    public static partial void OutboxPruneFailed(this ILogger logger, Exception exception, string schema, TimeSpan interval);

    [LoggerMessage(EventId = 113, EventName = "OutboxDeadLettersReplayed", Level = LogLevel.Information,
        Message = "Replayed {Count} dead-lettered events of {Schema}.outbox to {Subscriber} (by {Actor})")]
    public static partial void OutboxDeadLettersReplayed(this ILogger logger, int count, string schema, string subscriber, string actor);

    [LoggerMessage(EventId = 114, EventName = "OutboxDeadLettersDropped", Level = LogLevel.Information,
        Message = "Dropped {Count} dead-lettered events of {Schema}.outbox for {Subscriber} (by {Actor})")]
    public static partial void OutboxDeadLettersDropped(this ILogger logger, int count, string schema, string subscriber, string actor);

    [LoggerMessage(EventId = 201, EventName = "TransactionRollbackFailed", Level = LogLevel.Warning,
        Message = "Rolling back the {Store} part of a multi-store transaction failed")]
    public static partial void TransactionRollbackFailed(this ILogger logger, Exception exception, string store);

    [LoggerMessage(EventId = 202, EventName = "TransactionCompensationFailed", Level = LogLevel.Warning,
        Message = "Compensation '{Compensation}' of a multi-store transaction failed")]
    public static partial void TransactionCompensationFailed(this ILogger logger, Exception exception, string compensation);

    [LoggerMessage(EventId = 301, EventName = "ProjectionApplied", Level = LogLevel.Debug,
        Message = "Projection {Projection} wrote {Documents} documents for {Events} events to {Store}")]
    public static partial void ProjectionApplied(this ILogger logger, string projection, int documents, int events, string store);
}
