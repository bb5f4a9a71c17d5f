using MongoDB.Bson;
using MongoDB.Driver;

namespace Polystore.Mongo;

/// <summary>What kind of deployment answered <c>hello</c>.</summary>
public enum MongoTopologyKind
{
    /// <summary>A single mongod without a replica set: no transactions, no sharding commands.</summary>
    Standalone,
    /// <summary>A replica set member (<c>hello.setName</c> present): transactions work.</summary>
    ReplicaSet,
    /// <summary>A mongos router (<c>hello.msg == "isdbgrid"</c>): transactions and sharding commands work.</summary>
    Mongos,
}

/// <summary>Detects the deployment kind from the <c>hello</c> command.</summary>
public static class MongoTopology
{
    /// <summary>The command sent: <c>{ hello: 1 }</c>.</summary>
    public static BsonDocument HelloCommand => new("hello", 1);

    /// <summary>Classifies a <c>hello</c> reply (manual: hello, "Output"): setName means replica set, msg "isdbgrid" means mongos.</summary>
    public static MongoTopologyKind FromHello(BsonDocument hello)
    {
        ArgumentNullException.ThrowIfNull(hello);
        if (hello.TryGetValue("msg", out var msg) && msg.IsString && msg.AsString == "isdbgrid") return MongoTopologyKind.Mongos;
        return hello.Contains("setName") ? MongoTopologyKind.ReplicaSet : MongoTopologyKind.Standalone;
    }

    /// <summary>Runs <c>hello</c> on the admin database and classifies the reply.</summary>
    public static async Task<MongoTopologyKind> DetectAsync(IMongoClient client, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var hello = await client.GetDatabase("admin").RunCommandAsync<BsonDocument>(HelloCommand, ReadPreference.Primary, cancellationToken).ConfigureAwait(false);
        return FromHello(hello);
    }

    internal static string Endpoint(IMongoClient client) => string.Join(",", client.Settings.Servers.Select(s => $"{s.Host}:{s.Port}"));
}
