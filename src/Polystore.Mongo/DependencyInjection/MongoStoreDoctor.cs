using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Mongo.Diagnostics;

namespace Polystore.Mongo;

/// <summary>MongoDB's part of the doctor and the health check, over the application's client.</summary>
internal sealed class MongoStoreDoctor(MongoStore store, MongoDiagnosticOptions? options) : IStoreDoctor
{
    public string Store => StoreNames.Mongo;

    public Task<IReadOnlyList<StorePing>> PingAsync(CancellationToken cancellationToken = default) => MongoPing.PingAsync(store.Client, cancellationToken);

    public IStoreDiagnostics CreateDiagnostics() => new MongoDiagnostics(store.Settings, options, store.Client);
}
