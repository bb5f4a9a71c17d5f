using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Samples.Users;

namespace Polystore.Integration.Tests;

public sealed class RebuildTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_projection_is_rebuilt_from_history_and_swapped_in_while_commands_and_the_live_dispatcher_run()
    {
        var commands = new UserCommandHandler(schema.DataSource, schema.Store);
        await commands.EnsureCreatedAsync(Ct);
        var live = new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "user_profiles");
        await live.EnsureCreatedAsync(Ct);
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        var options = new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(50) };
        var liveDispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, new UserProfileProjection(live), options);
        using var stopDispatcher = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var dispatching = Task.Run(() => liveDispatcher.RunAsync(stopDispatcher.Token), Ct);

        using var stopWriters = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var writers = Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var mine = new List<long>();
            for (var i = 0; !stopWriters.IsCancellationRequested; i++)
            {
                if (i % 3 == 2) await commands.UpdateUserAsync(new UpdateUser(mine[i % mine.Count], $"renamed {i}", null), CancellationToken.None);
                else mine.Add(await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@rebuild.test", $"u{i}", "eu"), CancellationToken.None));
            }
        }, Ct)));
        await Delivery.UntilAsync(new OutboxDispatcher(schema.DataSource, schema.Store, new UserProfileProjection(live)),
            async () => (await live.GetVersionsAsync(Ct)).Count > 50, Ct);

        // The live read model goes bad (a buggy projection, a manual edit): the rebuild must not copy it.
        await schema.ExecAsync("UPDATE $schema.user_profiles SET doc = jsonb_set(doc, '{name}', '\"corrupted\"')");

        var report = await ProjectionRebuilder.RebuildAsync(schema.DataSource, schema.Store, live, "user_profiles",
            (store, name) => new UserProfileProjection(store, name: name), Ct);

        await stopWriters.CancelAsync();
        await writers;
        await Delivery.UntilAsync(new OutboxDispatcher(schema.DataSource, schema.Store, new UserProfileProjection(live)),
            async () => (await monitor.GetStatusAsync("user_profiles", Ct)).Pending == 0, Ct);
        await stopDispatcher.CancelAsync();
        await dispatching;

        Assert.True(report.EventsReplayed > 50);
        var truth = await commands.GetVersionsAsync(Ct);
        var projected = await live.GetVersionsAsync(Ct);
        Assert.Equal(truth.Count, projected.Count);
        Assert.All(truth, u => Assert.Equal(u.Value, projected[u.Key]));
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.user_profiles WHERE doc->>'name' = 'corrupted'"));
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox_checkpoints WHERE name LIKE '%@rebuild'"));
    }
}
