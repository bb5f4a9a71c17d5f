using Microsoft.Extensions.Logging;

namespace Polystore.Postgres;

/// <summary>The log messages of Polystore.Postgres, with stable event ids (1001-1099: connections, 1101-1199: bulk upsert).</summary>
internal static partial class PostgresLog
{
    /// <summary>The logger category of bulk upserts.</summary>
    public const string BulkUpsertCategory = "Polystore.Postgres.BulkUpsert";

    /// <summary>The logger category of <see cref="PostgresDataSources"/>.</summary>
    public const string DataSourcesCategory = "Polystore.Postgres.PostgresDataSources";

    [LoggerMessage(EventId = 1001, EventName = "PrePingFailed", Level = LogLevel.Warning,
        Message = "A pooled PostgreSQL connection to {Host}:{Port} failed its pre-ping; the pool was cleared and the open retried once")]
    public static partial void PrePingFailed(this ILogger logger, Exception exception, string? host, int port);

    [LoggerMessage(EventId = 1002, EventName = "ReadReplicasSkipped", Level = LogLevel.Warning,
        Message = "No read connection came through the replicas within {Timeout}; reads go to the primary, and the replicas are tried again after {Recheck}")]
    public static partial void ReadReplicasSkipped(this ILogger logger, Exception exception, TimeSpan timeout, TimeSpan recheck);

    [LoggerMessage(EventId = 1003, EventName = "ReadReplicasBack", Level = LogLevel.Information,
        Message = "A read came through the replicas again; reads go to them again")]
    public static partial void ReadReplicasBack(this ILogger logger);

    [LoggerMessage(EventId = 1101, EventName = "BulkUpsertMergeFallback", Level = LogLevel.Warning,
        Message = "Bulk upsert into {Table}: MERGE met a concurrent write of a key (SQLSTATE {SqlState}); the batch was applied with INSERT ... ON CONFLICT instead")]
    public static partial void BulkUpsertMergeFallback(this ILogger logger, string table, string sqlState);

    [LoggerMessage(EventId = 1102, EventName = "BulkUpsertChunkRetried", Level = LogLevel.Warning,
        Message = "Parallel bulk upsert into {Table}: a chunk of {Rows} rows lost a lock conflict with another chunk or session (SQLSTATE {SqlState}, attempt {Attempt}); retrying it")]
    public static partial void BulkUpsertChunkRetried(this ILogger logger, string table, int rows, string sqlState, int attempt);

    [LoggerMessage(EventId = 1103, EventName = "BulkUpsertCommitInDoubt", Level = LogLevel.Warning,
        Message = "The connection was lost during the COMMIT of bulk upsert transaction {TransactionId} ({Rows} rows); the server will be asked how it ended")]
    public static partial void BulkUpsertCommitInDoubt(this ILogger logger, Exception exception, string transactionId, long rows);

    [LoggerMessage(EventId = 1104, EventName = "BulkUpsertCommitSettled", Level = LogLevel.Information,
        Message = "Bulk upsert transaction {TransactionId} ({Rows} rows) whose COMMIT was in doubt is {Status}")]
    public static partial void BulkUpsertCommitSettled(this ILogger logger, string transactionId, long rows, string status);

    [LoggerMessage(EventId = 1105, EventName = "BulkUpsertCommitUnsettled", Level = LogLevel.Error,
        Message = "Bulk upsert transaction {TransactionId} ({Rows} rows) stays in doubt: the server could not be asked how its COMMIT ended; run {StatusQuery} once it is back")]
    public static partial void BulkUpsertCommitUnsettled(this ILogger logger, string transactionId, long rows, string statusQuery);

    [LoggerMessage(EventId = 1106, EventName = "BulkUpsertRetried", Level = LogLevel.Warning,
        Message = "Bulk upsert into {Table}: the transaction lost a lock conflict with another session (SQLSTATE {SqlState}, attempt {Attempt}) and was rolled back; running it again")]
    public static partial void BulkUpsertRetried(this ILogger logger, string table, string sqlState, int attempt);
}
