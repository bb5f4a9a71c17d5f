using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Integration.Mongo;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Mongo;
using Polystore.Samples.Users;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

public sealed class MongoRebuildTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void The_rebuild_empties_a_temporary_collection_then_renames_it_over_the_live_one_dropping_the_target()
    {
        var plan = MongoProjectionRebuilder.Plan("app", "user_profiles");
        Assert.Equal("user_profiles__rebuild", plan.Staging);
        Assert.Equal(BsonDocument.Parse("{ drop: 'user_profiles__rebuild' }"), plan.DropStaging);
        Assert.Equal(BsonDocument.Parse("{ renameCollection: 'app.user_profiles__rebuild', to: 'app.user_profiles', dropTarget: true }"), plan.Swap);
        // The rename must name the fields in this order: the server takes the command name from the first one.
        Assert.Equal(["renameCollection", "to", "dropTarget"], plan.Swap.Names);
        var tooLong = Assert.Throws<ArgumentException>(() => MongoProjectionRebuilder.Plan("app", new string('c', 250)));
        Assert.Equal("collection", tooLong.ParamName);
    }

    [Fact]
    public async Task A_mongo_projection_is_rebuilt_from_history_and_swapped_in_while_commands_and_the_live_dispatcher_run()
    {
        if (TestServers.Mongo is not { } settings)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var database = new MongoClient(MongoDriverSettings.Build(settings)).GetDatabase(settings.Connection.Database);
        var collection = TestServers.UniqueName("profiles");
        var live = new MongoReadModelStore<UserProfile>(database, collection);
        var commands = new UserCommandHandler(schema.DataSource, schema.Store);
        await commands.EnsureCreatedAsync(Ct);
        var liveDispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, new UserProfileProjection(live, name: collection),
            new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(50) });
        using var stopDispatcher = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var dispatching = Task.Run(() => liveDispatcher.RunAsync(stopDispatcher.Token), Ct);
        using var stopWriters = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var writers = Task.WhenAll(Enumerable.Range(0, 3).Select(w => Task.Run(async () =>
        {
            var mine = new List<long>();
            for (var i = 0; !stopWriters.IsCancellationRequested; i++)
            {
                if (i % 3 == 2) await commands.UpdateUserAsync(new UpdateUser(mine[i % mine.Count], $"renamed {i}", null), CancellationToken.None);
                else mine.Add(await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@mongo-rebuild.test", $"u{i}", "eu"), CancellationToken.None));
            }
        }, Ct)));
        await Eventually.UntilAsync(async () => (await live.GetVersionsAsync(Ct)).Count > 30, "the live projection has documents", Ct);
        await database.GetCollection<BsonDocument>(collection).UpdateManyAsync(FilterDefinition<BsonDocument>.Empty, Builders<BsonDocument>.Update.Set("doc.name", "corrupted"), cancellationToken: Ct);

        var report = await MongoProjectionRebuilder.RebuildAsync<UserProfile>(schema.DataSource, schema.Store, database, collection, collection,
            (store, name) => new UserProfileProjection(store, name: name), cancellationToken: Ct);

        await stopWriters.CancelAsync();
        await writers;
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        await Eventually.UntilAsync(async () => (await monitor.GetStatusAsync(collection, Ct)).Pending == 0, "the live dispatcher caught up", Ct);
        await stopDispatcher.CancelAsync();
        await dispatching;

        Assert.True(report.EventsReplayed > 30);
        var truth = await commands.GetVersionsAsync(Ct);
        var projected = await live.GetVersionsAsync(Ct);
        Assert.Equal(truth.Count, projected.Count);
        Assert.All(truth, u => Assert.Equal(u.Value, projected[u.Key]));
        Assert.Equal(0, await database.GetCollection<BsonDocument>(collection).CountDocumentsAsync(new BsonDocument("doc.name", "corrupted"), cancellationToken: Ct));
        Assert.DoesNotContain($"{collection}__rebuild", await (await database.ListCollectionNamesAsync(cancellationToken: Ct)).ToListAsync(Ct));
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox_checkpoints WHERE name LIKE '%@rebuild'"));
        await database.DropCollectionAsync(collection, Ct);
    }
}
