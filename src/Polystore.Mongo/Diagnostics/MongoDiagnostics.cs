using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Mongo.Diagnostics;

/// <summary>
/// The MongoDB checks of <c>polystore doctor</c>: unused indexes ($indexStats) in the configured
/// database, slow operations (currentOp), replica set health (replSetGetStatus) and the oplog window.
/// Remedies are exact mongosh commands.
/// </summary>
public sealed class MongoDiagnostics : IStoreDiagnostics
{
    /// <summary>The store name on every finding.</summary>
    public const string Store = StoreNames.Mongo;

    string IStoreDiagnostics.Store => Store;

    private const int Unauthorized = 13;
    private const int NoReplicationEnabled = 76;
    private const int NotYetInitialized = 94;

    private readonly MongoSettings _settings;
    private readonly MongoDiagnosticOptions _options;
    private readonly Lazy<MongoClient> _client;
    private readonly IMongoClient? _external;
    private readonly IReadOnlyList<string?> _secrets;

    /// <summary>Prepares the checks; nothing connects until a check runs.</summary>
    /// <param name="settings">mongodb.yaml.</param>
    /// <param name="options">Thresholds; null = the defaults.</param>
    /// <param name="client">An existing client to use instead of one built from <paramref name="settings"/>.</param>
    public MongoDiagnostics(MongoSettings settings, MongoDiagnosticOptions? options = null, IMongoClient? client = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _settings = settings;
        _options = options ?? new MongoDiagnosticOptions();
        _external = client;
        var clientSettings = MongoDriverSettings.Build(settings);
        _secrets = [settings.Connection.Uri, MongoUrl.Create(settings.Connection.Uri).Password];
        clientSettings.ServerSelectionTimeout = TimeSpan.FromSeconds(5);
        clientSettings.ApplicationName = "polystore-doctor";
        _client = new Lazy<MongoClient>(() => new MongoClient(clientSettings));
    }

    /// <summary>Values to mask in anything printed (the URI and its password).</summary>
    public IReadOnlyList<string?> Secrets => _secrets;

    /// <summary>Every MongoDB check, ready for <see cref="DiagnosticRunner"/>.</summary>
    public IReadOnlyList<DiagnosticCheck> Checks =>
    [
        new(Store, "mongo.unused_indexes", UnusedIndexesAsync),
        new(Store, "mongo.slow_operations", SlowOperationsAsync),
        new(Store, "mongo.replica_set", ReplicaSetAsync),
        new(Store, "mongo.oplog_window", OplogWindowAsync),
    ];

    private IMongoClient Client => _external ?? _client.Value;

    private Finding F(string check, Severity severity, string title, IReadOnlyDictionary<string, string> evidence, string? remedy = null) =>
        new(Store, check, severity, title, evidence, remedy);

    private Finding CouldNotSee(string check, string what, MongoCommandException e) =>
        F(check, Severity.Info, $"Could not see {what}: {Redactor.Redact(e.ErrorMessage ?? e.Message, _secrets)}",
            Evidence(("code", e.Code), ("code_name", e.CodeName)),
            "Grant the doctor's user the clusterMonitor role: db.getSiblingDB(\"admin\").grantRolesToUser(\"<user>\", [\"clusterMonitor\"])");

    private async Task<IReadOnlyList<Finding>> UnusedIndexesAsync(CancellationToken ct)
    {
        var dbName = _settings.Connection.Database;
        var db = Client.GetDatabase(dbName);
        var findings = new List<Finding>();
        try
        {
            var collections = await db.RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.ListCollections(), cancellationToken: ct).ConfigureAwait(false);
            foreach (var c in collections["cursor"]["firstBatch"].AsBsonArray.Select(x => x["name"].AsString).Where(n => !n.StartsWith("system.", StringComparison.Ordinal)))
            {
                var stats = (await db.RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.IndexStats(c), cancellationToken: ct).ConfigureAwait(false))
                    ["cursor"]["firstBatch"].AsBsonArray.Select(x => x.AsBsonDocument).ToList();
                // Through a mongos each entry names its shard: the collection may be sharded, and its shard key's index
                // serves chunk moves and routing that $indexStats never counts.
                var shardKey = stats.Any(x => x.Contains("shard")) ? await ShardKeyAsync(dbName, c, ct).ConfigureAwait(false) : null;
                findings.AddRange(JudgeIndexUsage(dbName, c, stats, shardKey));
                if (findings.Count >= _options.MaxFindingsPerCheck) return [.. findings.Take(_options.MaxFindingsPerCheck)];
            }
        }
        catch (MongoCommandException e) when (e.Code == Unauthorized)
        {
            return [CouldNotSee("mongo.unused_indexes", $"index usage in {dbName}", e)];
        }
        return findings;
    }

    private async Task<BsonDocument?> ShardKeyAsync(string dbName, string collection, CancellationToken ct)
    {
        try
        {
            var reply = await Client.GetDatabase("config").RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.ShardKey($"{dbName}.{collection}"), cancellationToken: ct).ConfigureAwait(false);
            return reply["cursor"]["firstBatch"].AsBsonArray.Select(x => x.AsBsonDocument.GetValue("key", BsonNull.Value)).OfType<BsonDocument>().FirstOrDefault();
        }
        catch (MongoCommandException)
        {
            return null; // not allowed to read config: judged without it
        }
    }

    /// <summary>
    /// The unused-index findings of one collection's <c>$indexStats</c> entries. Not flagged, though no query reads
    /// them: <c>_id_</c>, unique indexes (they enforce a rule), TTL indexes (the TTL monitor's deletes are not counted
    /// as accesses) and the index that starts with the shard key (chunk moves and routing need it).
    /// </summary>
    internal IReadOnlyList<Finding> JudgeIndexUsage(string dbName, string collection, IReadOnlyList<BsonDocument> stats, BsonDocument? shardKey)
    {
        var findings = new List<Finding>();
        // A sharded collection lists an index once per shard: it is unused only when no shard used it.
        foreach (var entries in stats.GroupBy(x => x["name"].AsString))
        {
            var name = entries.Key;
            var index = entries.First();
            var ops = entries.Sum(x => x["accesses"]["ops"].ToInt64());
            if (name == "_id_" || ops > 0) continue;
            var spec = index.GetValue("spec", new BsonDocument()).AsBsonDocument;
            if (spec.GetValue("unique", false).ToBoolean() || spec.Contains("expireAfterSeconds")) continue;
            var key = index.GetValue("key", spec.GetValue("key", new BsonDocument())).AsBsonDocument;
            if (shardKey is not null && StartsWith(key, shardKey)) continue;
            var since = entries.Min(x => x["accesses"]["since"].ToUniversalTime());
            // A hidden index (4.4+) is invisible to the planner, so it cannot have been used; hiding it again does nothing.
            var hidden = entries.All(x => x.GetValue("spec", new BsonDocument()).AsBsonDocument.GetValue("hidden", false).ToBoolean());
            var coll = CollectionJs(dbName, collection);
            findings.Add(F("mongo.unused_indexes", Severity.Warning,
                hidden
                    ? $"Index {name} on {dbName}.{collection} is hidden (queries cannot use it) and has not been used since {since:yyyy-MM-dd HH:mm}Z; it still costs every write"
                    : $"Index {name} on {dbName}.{collection} has not been used since {since:yyyy-MM-dd HH:mm}Z",
                Evidence(("database", dbName), ("collection", collection), ("index", name), ("hidden", hidden ? "true" : null), ("accesses.ops", ops), ("since", since),
                    ("host", string.Join(", ", entries.Select(x => x.GetValue("host", "").ToString()).Distinct()))),
                hidden
                    ? $"{coll}.dropIndex({Js(name)})   // or, if a query needs it after all: {coll}.unhideIndex({Js(name)})"
                    : $"{coll}.hideIndex({Js(name)})   // watch for a while; then: {coll}.dropIndex({Js(name)})  (usage is counted per member and since its restart)"));
        }
        return findings;
    }

    // The index key begins with the shard key's fields, in order, with the same directions (or "hashed").
    private static bool StartsWith(BsonDocument key, BsonDocument shardKey) =>
        shardKey.ElementCount > 0 && shardKey.ElementCount <= key.ElementCount
        && shardKey.Elements.Zip(key.Elements).All(pair => pair.First.Name == pair.Second.Name && SameDirection(pair.First.Value, pair.Second.Value));

    // A direction is a number whatever its BSON type: mongosh writes 1 as a double, drivers as an int32 or int64.
    private static bool SameDirection(BsonValue a, BsonValue b) =>
        a.IsNumeric && b.IsNumeric ? a.ToDouble() == b.ToDouble()
        : a.IsString && b.IsString && string.Equals(a.AsString, b.AsString, StringComparison.Ordinal);

    private async Task<IReadOnlyList<Finding>> SlowOperationsAsync(CancellationToken ct)
    {
        var admin = Client.GetDatabase("admin");
        BsonDocument reply;
        try
        {
            reply = await admin.RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.CurrentOp(_options.SlowOperationSeconds), cancellationToken: ct).ConfigureAwait(false);
        }
        catch (MongoCommandException e) when (e.Code == Unauthorized)
        {
            return [CouldNotSee("mongo.slow_operations", "other users' operations", e)];
        }
        return reply["inprog"].AsBsonArray.Select(x => x.AsBsonDocument)
            .Where(op => op.Contains("opid") && op.GetValue("desc", "").ToString() != "ReplBatcher")
            .OrderByDescending(op => op.GetValue("secs_running", 0).ToInt64())
            .Take(_options.MaxFindingsPerCheck)
            .Select(op =>
            {
                var secs = op.GetValue("secs_running", 0).ToInt64();
                var opid = op["opid"].ToString();
                var command = op.TryGetValue("command", out var cmd) ? Snippet(cmd.ToJson(), _secrets, 200) : "";
                return F("mongo.slow_operations", secs >= _options.SlowOperationCriticalSeconds ? Severity.Critical : Severity.Warning,
                    $"Operation {opid} ({op.GetValue("op", "?")} on {op.GetValue("ns", "?")}) has run for {secs} s",
                    Evidence(("opid", opid), ("op", op.GetValue("op", "").ToString()), ("ns", op.GetValue("ns", "").ToString()), ("secs_running", secs),
                        ("client", op.GetValue("client", "").ToString()), ("plan_summary", op.GetValue("planSummary", "").ToString()), ("command", command)),
                    KillOpRemedy(op["opid"]));
            }).ToList();
    }

    private async Task<IReadOnlyList<Finding>> ReplicaSetAsync(CancellationToken ct)
    {
        BsonDocument status;
        try
        {
            status = await Client.GetDatabase("admin").RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.ReplSetGetStatus(), cancellationToken: ct).ConfigureAwait(false);
        }
        catch (MongoCommandException e) when (e.Code is NoReplicationEnabled or NotYetInitialized)
        {
            return [F("mongo.replica_set", Severity.Info, "Not a replica set: no failover, no oplog, and no transactions",
                Evidence(("code", e.Code), ("code_name", e.CodeName)),
                "For production, run a 3-member replica set: rs.initiate({ _id: \"rs0\", members: [ ... ] })")];
        }
        catch (MongoCommandException e) when (e.Code == Unauthorized)
        {
            return [CouldNotSee("mongo.replica_set", "replica set status", e)];
        }
        BsonDocument? config = null;
        try
        {
            config = (await Client.GetDatabase("admin").RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.ReplSetGetConfig(), cancellationToken: ct).ConfigureAwait(false))
                .GetValue("config", BsonNull.Value) as BsonDocument;
        }
        catch (MongoCommandException) { /* without the config, every member's lag is judged as unintended */ }
        return JudgeReplicaSet(status, config);
    }

    /// <summary>
    /// The findings of <c>replSetGetStatus</c>. <paramref name="config"/> (<c>replSetGetConfig</c>'s <c>config</c>) tells
    /// which members are delayed on purpose (<c>secondaryDelaySecs</c>, <c>slaveDelay</c> before 5.0): only their lag
    /// beyond the delay counts.
    /// </summary>
    internal IReadOnlyList<Finding> JudgeReplicaSet(BsonDocument status, BsonDocument? config)
    {
        var delays = (config?.GetValue("members", new BsonArray()).AsBsonArray ?? [])
            .Select(m => m.AsBsonDocument)
            .Where(m => m.Contains("host"))
            .ToDictionary(m => m["host"].AsString, m => TimeSpan.FromSeconds(m.GetValue("secondaryDelaySecs", m.GetValue("slaveDelay", 0)).ToDouble()), StringComparer.OrdinalIgnoreCase);
        var set = status["set"].AsString;
        var members = status["members"].AsBsonArray.Select(m => m.AsBsonDocument).ToList();
        var primary = members.FirstOrDefault(m => m["stateStr"].AsString == "PRIMARY");
        var findings = new List<Finding>();
        if (primary is null)
        {
            findings.Add(F("mongo.replica_set", Severity.Critical, $"Replica set {set} has no primary: writes fail",
                Evidence(("set", set), ("members", members.Count), ("states", string.Join(", ", members.Select(m => $"{m["name"]}={m["stateStr"]}")))),
                "rs.status()   // bring a majority of voting members back up; as a last resort: rs.reconfig(cfg, { force: true }) from a surviving member"));
        }
        var primaryOptime = primary?.GetValue("optimeDate", BsonNull.Value) is BsonDateTime p ? p.ToUniversalTime() : (DateTime?)null;
        foreach (var m in members)
        {
            var name = m["name"].AsString;
            var state = m["stateStr"].AsString;
            var health = m.GetValue("health", 1).ToDouble();
            var optime = m.GetValue("optimeDate", BsonNull.Value) is BsonDateTime o ? o.ToUniversalTime() : (DateTime?)null;
            var behind = primaryOptime is { } pt && optime is { } ot && state == "SECONDARY" ? pt - ot : TimeSpan.Zero;
            var delay = delays.GetValueOrDefault(name);
            var lag = behind > delay ? behind - delay : TimeSpan.Zero; // a delayed member is judged on what it lags beyond its delay
            var severity = health < 1 ? Severity.Critical
                : state is not ("PRIMARY" or "SECONDARY" or "ARBITER") ? Severity.Warning
                : lag >= _options.ReplicationLagCritical ? Severity.Critical
                : lag >= _options.ReplicationLagWarning ? Severity.Warning : Severity.Info;
            findings.Add(F("mongo.replica_set", severity,
                health < 1 ? $"Member {name} of {set} is down" : $"Member {name} of {set} is {state}{(state == "SECONDARY" ? $", {behind.TotalSeconds:0} s behind the primary{(delay > TimeSpan.Zero ? $" (delayed {delay.TotalSeconds:0} s on purpose)" : "")}" : "")}",
                Evidence(("set", set), ("member", name), ("state", state), ("health", health), ("lag_s", state == "SECONDARY" ? behind : null), ("secondary_delay_s", delay > TimeSpan.Zero ? delay : null),
                    ("last_heartbeat_message", m.GetValue("lastHeartbeatMessage", "").ToString())),
                severity == Severity.Info ? null
                    : health < 1 ? $"Start mongod on {name}, then rs.status() until it is SECONDARY"
                    : "rs.printSecondaryReplicationInfo()   // check the member's disk, network and load"));
        }
        return findings;
    }

    private async Task<IReadOnlyList<Finding>> OplogWindowAsync(CancellationToken ct)
    {
        var local = Client.GetDatabase("local");
        BsonDocument first, last;
        try
        {
            first = await local.RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.OplogEdge(false), cancellationToken: ct).ConfigureAwait(false);
            last = await local.RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.OplogEdge(true), cancellationToken: ct).ConfigureAwait(false);
        }
        catch (MongoCommandException e) when (e.Code == Unauthorized)
        {
            return [CouldNotSee("mongo.oplog_window", "the oplog", e)];
        }
        var firstBatch = first["cursor"]["firstBatch"].AsBsonArray;
        var lastBatch = last["cursor"]["firstBatch"].AsBsonArray;
        if (firstBatch.Count == 0 || lastBatch.Count == 0)
            return [F("mongo.oplog_window", Severity.Info, "No oplog (a standalone server): nothing to replicate from", Evidence(("local.oplog.rs", "empty or absent")))];
        var from = firstBatch[0]["ts"].AsBsonTimestamp.Timestamp;
        var to = lastBatch[0]["ts"].AsBsonTimestamp.Timestamp;
        var window = TimeSpan.FromSeconds(Math.Max(0, to - from));
        long? sizeMb = null;
        try
        {
            var stats = await local.RunCommandAsync<BsonDocument>(MongoDiagnosticCommands.OplogStats(), cancellationToken: ct).ConfigureAwait(false);
            sizeMb = stats.GetValue("maxSize", 0).ToInt64() / (1024 * 1024);
        }
        catch (MongoCommandException) { /* the window alone still tells the story */ }
        var severity = window < _options.OplogWindowCritical ? Severity.Critical : window < _options.OplogWindowWarning ? Severity.Warning : Severity.Info;
        var target = sizeMb is { } mb && window.TotalHours > 0 ? (long)Math.Ceiling(mb * (_options.OplogWindowWarning.TotalHours * 1.5) / window.TotalHours) : (long?)null;
        return [F("mongo.oplog_window", severity,
            $"Oplog window {window.TotalHours:0.#} h: a secondary offline longer than that must resync from scratch",
            Evidence(("window_hours", Num(window.TotalHours, "0.##")), ("first_ts", DateTimeOffset.FromUnixTimeSeconds(from)), ("last_ts", DateTimeOffset.FromUnixTimeSeconds(to)), ("oplog_max_size_mb", sizeMb)),
            severity == Severity.Info ? null
                : $"db.adminCommand({{ replSetResizeOplog: 1, size: {(target is { } t ? Num(t) : "<MB>")} }})   // on every member; size in MB")];
    }

    // A mongos names an operation "shard:number", a string; a mongod by a number.
    internal static string KillOpRemedy(BsonValue opid) =>
        $"db.killOp({(opid.IsString ? Js(opid.AsString) : opid.ToString())})   // then explain it: db.getSiblingDB(...).getCollection(...).find(...).explain(\"executionStats\")";

    // Always getCollection("name"): db.name breaks on names with '.', '-' or spaces, and on names such as "stats" that are DB methods.
    private static string CollectionJs(string database, string collection) => $"db.getSiblingDB({Js(database)}).getCollection({Js(collection)})";

    /// <summary>
    /// A JavaScript string literal that is also a JSON one: quotes, backslashes, control characters and the line
    /// separators U+2028/U+2029 escaped; other characters as they are, so the names stay readable.
    /// </summary>
    private static string Js(string value)
    {
        var text = new System.Text.StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case < ' ' or '\u007f' or '\u2028' or '\u2029': text.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture)); break;
                default: text.Append(c); break;
            }
        }
        return text.Append('"').ToString();
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (_client.IsValueCreated) _client.Value.Dispose();
        return ValueTask.CompletedTask;
    }
}
