using Microsoft.Extensions.Logging;

namespace Polystore.Mongo;

/// <summary>The log messages of Polystore.Mongo, with stable event ids (4001-4099: bulk upsert).</summary>
internal static partial class MongoLog
{
    /// <summary>The logger category of bulk upserts.</summary>
    public const string BulkUpsertCategory = "Polystore.Mongo.BulkUpsert";

    [LoggerMessage(EventId = 4001, EventName = "BulkUpsertItemsRefused", Level = LogLevel.Warning,
        Message = "Bulk upsert into {Collection}: the server refused {Failed} of {Items} items (the first at index {Index}, code {Code}); the others were written")]
    public static partial void BulkUpsertItemsRefused(this ILogger logger, string collection, int failed, int items, int index, int code);

    [LoggerMessage(EventId = 4002, EventName = "BulkUpsertWriteConcernErrors", Level = LogLevel.Warning,
        Message = "Bulk upsert into {Collection}: {Count} batch(es) reported a write concern error; their writes may not be durable yet. First: {First}")]
    public static partial void BulkUpsertWriteConcernErrors(this ILogger logger, string collection, int count, string first);
}
