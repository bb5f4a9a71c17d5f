using MongoDB.Bson;

namespace Polystore.Mongo.Diagnostics;

/// <summary>
/// The exact command documents the MongoDB checks send, in one place so always-run tests can
/// compare them with the manual without a server.
/// </summary>
internal static class MongoDiagnosticCommands
{
    /// <summary><c>{ listCollections: 1, nameOnly: true, filter: { type: "collection" } }</c> (views have no indexes).</summary>
    public static BsonDocument ListCollections() => new()
    {
        { "listCollections", 1 },
        { "nameOnly", true },
        { "filter", new BsonDocument("type", "collection") },
    };

    /// <summary><c>{ aggregate: collection, pipeline: [ { $indexStats: {} } ], cursor: {} }</c>.</summary>
    public static BsonDocument IndexStats(string collection) => new()
    {
        { "aggregate", collection },
        { "pipeline", new BsonArray { new BsonDocument("$indexStats", new BsonDocument()) } },
        { "cursor", new BsonDocument() },
    };

    /// <summary><c>{ currentOp: true, active: true, secs_running: { $gte: seconds } }</c>, run on admin.</summary>
    public static BsonDocument CurrentOp(int seconds) => new()
    {
        { "currentOp", true },
        { "active", true },
        { "secs_running", new BsonDocument("$gte", seconds) },
    };

    /// <summary><c>{ replSetGetStatus: 1 }</c>, run on admin.</summary>
    public static BsonDocument ReplSetGetStatus() => new("replSetGetStatus", 1);

    /// <summary><c>{ replSetGetConfig: 1 }</c>, run on admin: which members are delayed on purpose.</summary>
    public static BsonDocument ReplSetGetConfig() => new("replSetGetConfig", 1);

    /// <summary>
    /// A sharded collection's shard key, on the config database:
    /// <c>{ find: "collections", filter: { _id: "db.collection" }, projection: { key: 1 }, limit: 1, singleBatch: true }</c>.
    /// </summary>
    public static BsonDocument ShardKey(string ns) => new()
    {
        { "find", "collections" },
        { "filter", new BsonDocument("_id", ns) },
        { "projection", new BsonDocument("key", 1) },
        { "limit", 1 },
        { "singleBatch", true },
    };

    /// <summary>
    /// The oldest (<paramref name="newest"/> false) or newest oplog entry's timestamp, on the local database:
    /// <c>{ find: "oplog.rs", filter: {}, sort: { $natural: 1 | -1 }, projection: { ts: 1, _id: 0 }, limit: 1, singleBatch: true }</c>.
    /// </summary>
    public static BsonDocument OplogEdge(bool newest) => new()
    {
        { "find", "oplog.rs" },
        { "filter", new BsonDocument() },
        { "sort", new BsonDocument("$natural", newest ? -1 : 1) },
        { "projection", new BsonDocument { { "ts", 1 }, { "_id", 0 } } },
        { "limit", 1 },
        { "singleBatch", true },
    };

    /// <summary><c>{ collStats: "oplog.rs" }</c> on local, for the oplog's configured size.</summary>
    public static BsonDocument OplogStats() => new("collStats", "oplog.rs");
}
