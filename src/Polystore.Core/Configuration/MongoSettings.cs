namespace Polystore.Core.Configuration;

/// <summary>The contents of <c>mongodb.yaml</c>.</summary>
public sealed class MongoSettings
{
    /// <summary>Server address and database.</summary>
    public MongoConnectionSettings Connection { get; init; } = new();
    /// <summary>Driver connection pool.</summary>
    public MongoPoolSettings Pool { get; init; } = new();
    /// <summary>Replica set, read preference and write concern.</summary>
    public MongoReplicationSettings Replication { get; init; } = new();
    /// <summary>Sharding of the application's collections.</summary>
    public MongoShardingSettings Sharding { get; init; } = new();
}

/// <summary><c>connection:</c> in mongodb.yaml.</summary>
public sealed class MongoConnectionSettings
{
    /// <summary>A mongodb:// or mongodb+srv:// URI; credentials inside it are never printed.</summary>
    [Secret] public string Uri { get; init; } = "mongodb://localhost:27017";
    /// <summary>The application's database.</summary>
    public string Database { get; init; } = "polystore";
}

/// <summary><c>pool:</c> in mongodb.yaml (the driver's defaults where unset).</summary>
public sealed class MongoPoolSettings
{
    /// <summary>Most connections per server.</summary>
    public int MaxPoolSize { get; init; } = 100;
    /// <summary>Connections kept open per server.</summary>
    public int MinPoolSize { get; init; }
    /// <summary>Milliseconds an idle connection lives (0 = the URI's maxIdleTimeMS, else the driver's 10 minutes).</summary>
    public int MaxIdleTimeMs { get; init; }
    /// <summary>Milliseconds to wait for a free connection.</summary>
    public int WaitQueueTimeoutMs { get; init; } = 120_000;
}

/// <summary><c>replication:</c> in mongodb.yaml.</summary>
public sealed class MongoReplicationSettings
{
    /// <summary>Replica set name, or null for a standalone server or mongos.</summary>
    public string? ReplicaSet { get; init; }
    /// <summary>Which members serve reads.</summary>
    public MongoReadPreference ReadPreference { get; init; } = MongoReadPreference.Primary;
    /// <summary>Acknowledgement required for writes.</summary>
    public MongoWriteConcernSettings WriteConcern { get; init; } = new();
}

/// <summary>MongoDB read preference modes, spelled as in the connection string.</summary>
public enum MongoReadPreference
{
    /// <summary>Primary only.</summary>
    [ConfigName("primary")] Primary,
    /// <summary>Primary, else a secondary.</summary>
    [ConfigName("primaryPreferred")] PrimaryPreferred,
    /// <summary>Secondaries only.</summary>
    [ConfigName("secondary")] Secondary,
    /// <summary>A secondary, else the primary.</summary>
    [ConfigName("secondaryPreferred")] SecondaryPreferred,
    /// <summary>The member with the lowest latency.</summary>
    [ConfigName("nearest")] Nearest,
}

/// <summary><c>write_concern:</c> in mongodb.yaml.</summary>
public sealed class MongoWriteConcernSettings
{
    /// <summary><c>majority</c> or a number of members; null leaves the server default.</summary>
    public string? W { get; init; }
    /// <summary>Wait for the journal.</summary>
    public bool? J { get; init; }
    /// <summary>Milliseconds to wait for the acknowledgement.</summary>
    public int? Wtimeout { get; init; }
}

/// <summary><c>sharding:</c> in mongodb.yaml.</summary>
public sealed class MongoShardingSettings
{
    /// <summary>Whether the application's collections are sharded.</summary>
    public bool Enabled { get; init; }
    /// <summary>The field collections are sharded on.</summary>
    public string? ShardKey { get; init; }
    /// <summary>Chunk size in MiB (the server's default is 128).</summary>
    public int ChunkSizeMb { get; init; } = 128;
}
