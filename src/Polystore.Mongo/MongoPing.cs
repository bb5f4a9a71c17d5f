using System.Diagnostics;
using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

namespace Polystore.Mongo;

/// <summary>One round trip to the deployment behind the application's <see cref="IMongoClient"/>.</summary>
public static class MongoPing
{
    /// <summary>
    /// Runs <c>buildInfo</c> and times <c>hello</c> on <paramref name="client"/>; never throws for an unreachable
    /// deployment. The client's server-selection timeout bounds the wait; so does <paramref name="cancellationToken"/>.
    /// </summary>
    public static async Task<IReadOnlyList<StorePing>> PingAsync(IMongoClient client, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var settings = client.Settings;
        var endpoint = string.Join(",", settings.Servers.Select(s => $"{s.Host}:{s.Port}"));
        try
        {
            var admin = client.GetDatabase("admin");
            var buildInfo = await admin.RunCommandAsync<BsonDocument>(new BsonDocument("buildInfo", 1), cancellationToken: cancellationToken).ConfigureAwait(false);
            var watch = Stopwatch.StartNew();
            var hello = await admin.RunCommandAsync<BsonDocument>(new BsonDocument("hello", 1), cancellationToken: cancellationToken).ConfigureAwait(false);
            watch.Stop();
            var topology = hello.Contains("setName") ? $"replica set {hello["setName"]}"
                : hello.GetValue("msg", "").ToString() == "isdbgrid" ? "mongos" : "standalone";
            return [new StorePing(StoreNames.Mongo, endpoint, true, buildInfo["version"].AsString, watch.Elapsed, null, topology)];
        }
        catch (Exception e) when (e is MongoException or TimeoutException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // The driver's messages describe servers, not credentials; a URL with a password is masked all the same.
            return [new StorePing(StoreNames.Mongo, endpoint, false, null, null, Redactor.RedactUrl(e.Message.Split('\n', 2)[0]))];
        }
    }
}
