using System.Diagnostics;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Postgres;
using Polystore.Samples.Users;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

/// <summary>Real faults on real servers: SIGKILLed dispatcher processes, a PostgreSQL restart.</summary>
public sealed class FaultTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Sends create and update commands until cancelled; failures during an outage are retried by the caller's next call.</summary>
    private static Task SendCommandsAsync(UserCommandHandler commands, int writers, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var mine = new List<long>();
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                try
                {
                    if (i % 3 == 2 && mine.Count > 0) await commands.UpdateUserAsync(new UpdateUser(mine[i % mine.Count], $"n{i}", null), CancellationToken.None);
                    else mine.Add(await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@fault.test", $"u{i}", "eu"), CancellationToken.None));
                }
                catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
                {
                    await Task.Delay(50, CancellationToken.None); // the server is restarting
                }
            }
        }, CancellationToken.None)));

    private static async Task AssertEveryUserProjectedAsync(UserCommandHandler commands, IReadModelStore<UserProfile> store, OutboxDispatcher drain, OutboxMonitor monitor, string subscriber)
    {
        await Delivery.UntilAsync(drain, async () => (await monitor.GetStatusAsync(subscriber, Ct)).Pending == 0, Ct);
        var truth = await commands.GetVersionsAsync(Ct);
        var projected = await store.GetVersionsAsync(Ct);
        Assert.NotEmpty(truth);
        Assert.Equal(truth.Count, projected.Count);
        Assert.All(truth, u => Assert.Equal(u.Value, projected[u.Key]));
        Assert.Equal(0, (await monitor.GetStatusAsync(subscriber, Ct)).DeadLetters);
    }

    [Fact]
    public async Task Dispatcher_processes_SIGKILLed_mid_batch_again_and_again_lose_nothing()
    {
        var commands = new UserCommandHandler(schema.DataSource, schema.Store);
        await commands.EnsureCreatedAsync(Ct);
        var store = new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "user_profiles");
        await store.EnsureCreatedAsync(Ct);
        var projection = new UserProfileProjection(store);
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);

        using var stop = new CancellationTokenSource();
        var load = SendCommandsAsync(commands, 8, stop.Token);
        var kills = 0;
        for (var round = 0; round < 6; round++)
        {
            using var dispatcher = StartDispatcherProcess(schema.Store.Schema);
            // Wait until this process is delivering, then kill it at a random moment mid-stream.
            for (var i = 0; i < 400 && !((await monitor.GetStatusAsync(projection.Name, Ct)).CheckpointAge < TimeSpan.FromMilliseconds(150)); i++)
                await Task.Delay(25, Ct);
            await Task.Delay(Random.Shared.Next(0, 150), Ct);
            dispatcher.Kill(entireProcessTree: true);
            await dispatcher.WaitForExitAsync(Ct);
            kills++;
        }
        await stop.CancelAsync();
        await load;

        Assert.Equal(6, kills);
        await AssertEveryUserProjectedAsync(commands, store, new OutboxDispatcher(schema.DataSource, schema.Store, projection), monitor, projection.Name);
    }

    [Fact]
    public async Task A_postgres_restart_mid_run_loses_no_event_and_the_dispatcher_recovers_by_itself()
    {
        await using var server = await ThrowawayPostgres.StartAsync();
        await using var sources = PostgresDataSources.Create(server.Settings);
        var outbox = new OutboxStore("restart");
        var commands = new UserCommandHandler(sources.Primary, outbox);
        await commands.EnsureCreatedAsync(Ct);
        var store = new PostgresJsonbReadModelStore<UserProfile>(sources.Primary, "restart", "user_profiles");
        await store.EnsureCreatedAsync(Ct);
        var projection = new UserProfileProjection(store);
        var monitor = new OutboxMonitor(sources.Primary, outbox);
        var options = new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(100), RetryBaseDelay = TimeSpan.FromMilliseconds(50), RetryMaxDelay = TimeSpan.FromMilliseconds(500) };
        var dispatcher = new OutboxDispatcher(sources.Primary, outbox, projection, options);

        using var stopDispatcher = new CancellationTokenSource();
        var running = Task.Run(() => dispatcher.RunAsync(stopDispatcher.Token), Ct);
        using var stopLoad = new CancellationTokenSource();
        var load = SendCommandsAsync(commands, 4, stopLoad.Token);

        await WaitForAsync(async () => (await commands.GetVersionsAsync(Ct)).Count > 50);
        await server.StopServerAsync();
        await Task.Delay(300, Ct);
        await server.StartServerAsync();
        var countAfterRestart = 0;
        await WaitForAsync(async () => (countAfterRestart = (await commands.GetVersionsAsync(Ct)).Count) > 0 && (await monitor.GetStatusAsync(projection.Name, Ct)).CheckpointAge < TimeSpan.FromSeconds(1));
        await stopLoad.CancelAsync();
        await load;

        // The same in-process dispatcher, never restarted, catches up with everything committed.
        await WaitForAsync(async () => (await monitor.GetStatusAsync(projection.Name, Ct)).Pending == 0);
        await stopDispatcher.CancelAsync();
        await running;
        await AssertEveryUserProjectedAsync(commands, store, new OutboxDispatcher(sources.Primary, outbox, projection), monitor, projection.Name);
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 600; i++)
        {
            try { if (await condition()) return; }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException) { }
            await Task.Delay(50, Ct);
        }
        Assert.Fail("condition not reached within 30 s");
    }

    private static Process StartDispatcherProcess(string schemaName)
    {
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "polystore.dll"));
        foreach (var arg in new[] { "outbox", "run", "--schema", schemaName, "--dir", TestServers.ConfigDirectory }) info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
