using System.Diagnostics;
using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

namespace Polystore.Mongo;

/// <summary>Connects to the configured MongoDB deployment and reports version and round-trip time.</summary>
public static class MongoPing
{
    /// <summary>Runs <c>hello</c> and <c>buildInfo</c>; never throws for an unreachable server.</summary>
    public static async Task<StorePing> PingAsync(MongoSettings settings, CancellationToken cancellationToken = default)
    {
        var clientSettings = MongoDriverSettings.Build(settings);
        clientSettings.ServerSelectionTimeout = TimeSpan.FromSeconds(5);
        clientSettings.ConnectTimeout = TimeSpan.FromSeconds(5);
        var endpoint = string.Join(",", clientSettings.Servers.Select(s => $"{s.Host}:{s.Port}"));
        using var client = new MongoClient(clientSettings);
        try
        {
            var admin = client.GetDatabase("admin");
            var buildInfo = await admin.RunCommandAsync<BsonDocument>(new BsonDocument("buildInfo", 1), cancellationToken: cancellationToken).ConfigureAwait(false);
            var watch = Stopwatch.StartNew();
            var hello = await admin.RunCommandAsync<BsonDocument>(new BsonDocument("hello", 1), cancellationToken: cancellationToken).ConfigureAwait(false);
            watch.Stop();
            var topology = hello.Contains("setName") ? $"replica set {hello["setName"]}"
                : hello.GetValue("msg", "").ToString() == "isdbgrid" ? "mongos" : "standalone";
            return new StorePing(StoreNames.Mongo, endpoint, true, buildInfo["version"].AsString, watch.Elapsed, null, topology);
        }
        catch (Exception e) when (e is MongoException or TimeoutException)
        {
            return new StorePing(StoreNames.Mongo, endpoint, false, null, null, Redactor.Redact(e.Message.Split('\n', 2)[0], [settings.Connection.Uri]));
        }
    }
}
