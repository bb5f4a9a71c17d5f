using System.Collections.Concurrent;
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
    private const int SigKillExitCode = 128 + 9;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Sends create and update commands until cancelled; a command that fails during an outage is simply not counted.</summary>
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
                    // Paces the retries while the server is down; nothing waits on it.
                    await Task.Delay(50, CancellationToken.None);
                }
            }
        }, CancellationToken.None)));

    private static async Task AssertEveryUserProjectedAsync(UserCommandHandler commands, IReadModelStore<UserProfile> store, OutboxMonitor monitor, string subscriber)
    {
        var truth = await commands.GetVersionsAsync(Ct);
        var projected = await store.GetVersionsAsync(Ct);
        Assert.NotEmpty(truth);
        Assert.Equal(truth.Count, projected.Count);
        Assert.All(truth, u => Assert.Equal(u.Value, projected[u.Key]));
        Assert.Equal(0, (await monitor.GetStatusAsync(subscriber, Ct)).DeadLetters);
    }

    // Not run through PgBouncer: it waits for a killed process's sessions to leave pg_stat_activity, and PgBouncer keeps its server connections (with the last client's application_name).
    [Trait("Requires", "DirectPostgres")]
    [Fact]
    public async Task Dispatcher_processes_SIGKILLed_mid_stream_again_and_again_lose_and_duplicate_nothing()
    {
        var commands = new UserCommandHandler(schema.DataSource, schema.Store);
        await commands.EnsureCreatedAsync(Ct);
        var store = new PostgresJsonbReadModelStore<UserProfile>(schema.DataSource, schema.Store.Schema, "user_profiles");
        await store.EnsureCreatedAsync(Ct);
        // Every write the projection commits is logged, with the application name of the process that
        // made it: the log tells who delivered what, and an event applied twice shows up twice.
        await schema.ExecAsync("""
            CREATE TABLE $schema.applied (id text NOT NULL, version bigint NOT NULL, app text NOT NULL DEFAULT current_setting('application_name'));
            CREATE FUNCTION $schema.log_applied() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN INSERT INTO $schema.applied (id, version) VALUES (NEW.id, NEW.version); RETURN NEW; END $$;
            CREATE TRIGGER log_applied BEFORE INSERT ON $schema.user_profiles FOR EACH ROW EXECUTE FUNCTION $schema.log_applied();
            """);
        var projection = new UserProfileProjection(store);
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        var configDir = PostgresOnlyConfigDirectory();

        using var stop = new CancellationTokenSource();
        var load = SendCommandsAsync(commands, 8, stop.Token);
        var appliedByChild = new List<long>();
        try
        {
            for (var round = 0; round < 6; round++)
            {
                var app = $"{schema.Store.Schema}_child{round}";
                var errors = new ConcurrentQueue<string>();
                using var child = StartDispatcherProcess(configDir, schema.Store.Schema, app, errors);
                try
                {
                    // Kill it mid-stream, at a random point: once it has applied a random number of events.
                    var target = Random.Shared.Next(1, 40);
                    await Eventually.UntilAsync(async () => child.HasExited || await AppliedByAsync(app) >= target,
                        $"dispatcher process {round} applied {target} events", Ct);
                    Assert.False(child.HasExited, $"dispatcher process {round} exited by itself with code {(child.HasExited ? child.ExitCode : 0)}: {string.Join('\n', errors)}");

                    child.Kill(entireProcessTree: true);
                    await child.WaitForExitAsync(Ct);
                    Assert.Equal(SigKillExitCode, child.ExitCode);
                }
                finally
                {
                    if (!child.HasExited) child.Kill(entireProcessTree: true);
                }
                // Its sessions are gone, so nothing it sent can still commit and its leadership lock is free.
                await Eventually.UntilAsync(async () => await schema.ScalarAsync($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'") == 0,
                    $"the server dropped the sessions of dispatcher process {round}", Ct);
                appliedByChild.Add(await AppliedByAsync(app));
            }
        }
        finally
        {
            await stop.CancelAsync();
            await load;
            Directory.Delete(configDir, recursive: true);
        }

        Assert.All(appliedByChild, applied => Assert.True(applied > 0));
        var drain = new OutboxDispatcher(schema.DataSource, schema.Store, projection);
        await Delivery.UntilAsync(drain, async () => (await monitor.GetStatusAsync(projection.Name, Ct)).Pending == 0, Ct);
        await AssertEveryUserProjectedAsync(commands, store, monitor, projection.Name);
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM (SELECT id, version FROM $schema.applied GROUP BY id, version HAVING count(*) > 1) twice"));
    }

    private Task<long> AppliedByAsync(string app) => schema.ScalarAsync($"SELECT count(*) FROM $schema.applied WHERE app = '{app}'");

    // Not run through PgBouncer: a throwaway server of its own, restarted mid-run; no pooler is in its path.
    [Trait("Requires", "DirectPostgres")]
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
        try
        {
            await Eventually.UntilAsync(() => dispatcher.IsLeader, "the dispatcher leads", Ct);
            await Eventually.UntilAsync(Tolerant(async () => (await store.GetVersionsAsync(Ct)).Count > 50), "the dispatcher projected 50 users", Ct);
            await server.StopServerAsync();
            await Eventually.UntilAsync(() => !dispatcher.IsLeader, "the dispatcher noticed that the server is down", Ct);
            await server.StartServerAsync();
            await Eventually.UntilAsync(() => dispatcher.IsLeader, "the dispatcher reconnected and leads again", Ct);
            var usersAtRestart = 0;
            await Eventually.UntilAsync(Tolerant(async () => (usersAtRestart = (await commands.GetVersionsAsync(Ct)).Count) > 0), "the restarted server answers", Ct);
            await Eventually.UntilAsync(Tolerant(async () => (await commands.GetVersionsAsync(Ct)).Count > usersAtRestart + 20), "20 more users were created after the restart", Ct);
            await stopLoad.CancelAsync();
            await load;

            // The same in-process dispatcher, never restarted, catches up with everything committed.
            await Eventually.UntilAsync(Tolerant(async () => (await monitor.GetStatusAsync(projection.Name, Ct)).Pending == 0), "the running dispatcher caught up", Ct);
        }
        finally
        {
            await stopLoad.CancelAsync();
            await stopDispatcher.CancelAsync();
            await Task.WhenAll(load, running);
        }
        await AssertEveryUserProjectedAsync(commands, store, monitor, projection.Name);
    }

    /// <summary>A condition that counts as not yet met while the server is unreachable.</summary>
    private static Func<Task<bool>> Tolerant(Func<Task<bool>> condition) => async () =>
    {
        try { return await condition(); }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException) { return false; }
    };

    /// <summary>A config folder with only postgresql.yaml, so the dispatcher processes use the PostgreSQL JSONB read model whatever else is configured.</summary>
    private static string PostgresOnlyConfigDirectory()
    {
        var dir = Directory.CreateTempSubdirectory("polystore-fault-").FullName;
        File.Copy(Path.Combine(TestServers.ConfigDirectory, "postgresql.yaml"), Path.Combine(dir, "postgresql.yaml"));
        return dir;
    }

    private static Process StartDispatcherProcess(string configDir, string schemaName, string applicationName, ConcurrentQueue<string> errors)
    {
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "polystore.dll"));
        foreach (var arg in new[] { "outbox", "run", "--schema", schemaName, "--dir", configDir }) info.ArgumentList.Add(arg);
        info.Environment["POLYSTORE__POSTGRES__CONNECTION__APPLICATION_NAME"] = applicationName;
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) errors.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
