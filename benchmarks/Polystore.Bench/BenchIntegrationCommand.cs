using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Samples.Users;
using Polystore.Cli;
using Polystore.Cli.Commands;
using Spectre.Console;

namespace Polystore.Bench;

/// <summary>
/// <c>polystore-bench integration</c>: the outbox flow against "publish after flush", the dual
/// write, for throughput, projection lag, and events lost when the publishing process is SIGKILLed.
/// </summary>
internal static class BenchIntegrationCommand
{
    private static readonly Option<int> Seconds = new("--seconds") { Description = "Seconds of load per throughput round.", DefaultValueFactory = _ => 5 };
    private static readonly Option<int> Writers = new("--writers") { Description = "Concurrent command senders.", DefaultValueFactory = _ => 16 };
    private static readonly Option<int> Rounds = new("--rounds") { Description = "Throughput rounds per flow (interleaved; medians reported).", DefaultValueFactory = _ => 3 };
    private static readonly Option<int> KillSeconds = new("--kill-seconds") { Description = "Seconds of the kill test per flow.", DefaultValueFactory = _ => 15 };

    public static Command Create()
    {
        var command = new Command("integration", """
            End-to-end CQRS on PostgreSQL JSONB read models, side by side in one run:
              outbox  the command writes the user and its event in one transaction; a dispatcher projects it
              naive   "publish after flush": commit the user, then write the read model (a dual write)
            Measures sustained commands/s and projection lag (p50, p99), then the kill test: the process that
            publishes is SIGKILLed again and again while commands arrive, and the events lost are counted.
            --json prints ratios.throughput_vs_naive and lost_events.{outbox,naive}.
            """)
        { Seconds, Writers, Rounds, KillSeconds };
        command.SetAction(RunAsync);

        var naiveWorker = new Command("naive-worker", "Internal: the naive flow's writer process for the kill test.") { Hidden = true };
        naiveWorker.Options.Add(OutboxCommand.Schema);
        naiveWorker.Options.Add(Writers);
        naiveWorker.SetAction(async (parse, ct) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
            await using var services = CliServices.Build(config, s => s.AddUsersApp(parse.GetValue(OutboxCommand.Schema)!, postgresReadModel: true));
            var users = services.GetRequiredService<UsersApp>();
            await users.EnsureCreatedAsync(ct);
            await RunNaiveLoadAsync(users, parse.GetValue(Writers), TimeSpan.FromHours(1), ct);
            return ExitCodes.Ok;
        });
        command.Subcommands.Add(naiveWorker);
        // The kill test's dispatcher process: the same `outbox run` the polystore tool ships, started from this executable.
        var outbox = OutboxCommand.Create();
        outbox.Hidden = true;
        command.Subcommands.Add(outbox);
        return command;
    }

    private sealed record Round(string Flow, double CommandsPerSecond, double LagP50Ms, double LagP99Ms, long Commands);

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var (config, location) = CommonOptions.LoadConfig(parse);
        if (config is null) return ExitCodes.InvalidConfig;
        if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
        var seconds = TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(Seconds)));
        var writers = Math.Clamp(parse.GetValue(Writers), 1, 256);
        var rounds = Math.Clamp(parse.GetValue(Rounds), 1, 20);
        var killFor = TimeSpan.FromSeconds(Math.Max(2, parse.GetValue(KillSeconds)));
        var json = parse.GetValue(CommonOptions.Json);
        var results = new List<Round>();
        var lost = new Dictionary<string, long>();
        var killStats = new Dictionary<string, (int Kills, int Users)>();
        var schemas = new List<string>();

        // Progress goes to stderr so that stdout stays clean for --json.
        await CommonOptions.Error.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn())
            .StartAsync(async progress =>
            {
                var total = rounds * 2 + 2;
                var bar = progress.AddTask("throughput rounds", maxValue: total);
                for (var i = 0; i < rounds; i++)
                {
                    foreach (var flow in new[] { "outbox", "naive" })
                    {
                        bar.Description = $"{flow} round {i + 1}/{rounds}";
                        var schema = $"bench_{flow}_{Guid.NewGuid():N}"[..24];
                        schemas.Add(schema);
                        results.Add(flow == "outbox"
                            ? await OutboxRoundAsync(config, schema, writers, seconds, ct)
                            : await NaiveRoundAsync(config, schema, writers, seconds, ct));
                        bar.Increment(1);
                    }
                }
                bar.Description = "kill test: outbox dispatcher";
                var outboxSchema = $"bench_kill_outbox_{Guid.NewGuid():N}"[..28];
                schemas.Add(outboxSchema);
                var outboxKill = await OutboxKillTestAsync(config, location.Directory, outboxSchema, writers, killFor, ct);
                (lost["outbox"], killStats["outbox"]) = (outboxKill.Lost, (outboxKill.Kills, outboxKill.Users));
                bar.Increment(1);
                bar.Description = "kill test: naive publisher";
                var naiveSchema = $"bench_kill_naive_{Guid.NewGuid():N}"[..27];
                schemas.Add(naiveSchema);
                var naiveKill = await NaiveKillTestAsync(config, location.Directory, naiveSchema, writers, killFor, ct);
                (lost["naive"], killStats["naive"]) = (naiveKill.Lost, (naiveKill.Kills, naiveKill.Users));
                bar.Increment(1);
            });

        await DropSchemasAsync(config, schemas);
        var outbox = Median(results.Where(r => r.Flow == "outbox"));
        var naive = Median(results.Where(r => r.Flow == "naive"));
        // The flows ran interleaved, one round each per round: round i of the outbox over round i of the naive flow.
        var throughput = BenchRatio.Of(outbox.CommandsPerSecond, naive.CommandsPerSecond,
            [.. results.Where(r => r.Flow == "outbox").Select(r => r.CommandsPerSecond)], [.. results.Where(r => r.Flow == "naive").Select(r => r.CommandsPerSecond)])
            .WithTarget(0.7);
        var ratio = throughput.Value;
        if (json)
        {
            CommonOptions.WriteJson(new
            {
                machine = new { cores = Environment.ProcessorCount, os = Environment.OSVersion.ToString() },
                settings = new { seconds = seconds.TotalSeconds, writers, rounds, kill_seconds = killFor.TotalSeconds },
                outbox = new { commands_per_second = outbox.CommandsPerSecond, lag_p50_ms = outbox.LagP50Ms, lag_p99_ms = outbox.LagP99Ms },
                naive = new { commands_per_second = naive.CommandsPerSecond, lag_p50_ms = naive.LagP50Ms, lag_p99_ms = naive.LagP99Ms },
                rounds = results.Select(r => new { flow = r.Flow, commands_per_second = r.CommandsPerSecond, lag_p50_ms = r.LagP50Ms, lag_p99_ms = r.LagP99Ms }),
                ratios = new Dictionary<string, BenchRatio> { ["throughput_vs_naive"] = throughput.Rounded(3) },
                lost_events = lost,
                kill_test = killStats.ToDictionary(k => k.Key, k => new { sigkills = k.Value.Kills, users_written = k.Value.Users }),
                target = new { throughput_vs_naive = 0.7, lost_events_outbox = 0, met = ratio >= 0.7 && lost["outbox"] == 0 },
            });
            return ExitCodes.Ok;
        }
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]bench integration[/] ({writers} writers, {seconds.TotalSeconds:0} s x {rounds} rounds, medians)")
            .AddColumns("Flow", "Commands/s", "Projection lag p50", "p99", "Events lost under SIGKILL");
        table.AddRow("outbox (Polystore)", $"{outbox.CommandsPerSecond:N0}", $"{outbox.LagP50Ms:0.0} ms", $"{outbox.LagP99Ms:0.0} ms", $"{lost["outbox"]}");
        table.AddRow("naive publish-after-flush", $"{naive.CommandsPerSecond:N0}", $"{naive.LagP50Ms:0.0} ms", $"{naive.LagP99Ms:0.0} ms", $"{lost["naive"]}");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"kill test: outbox dispatcher SIGKILLed {killStats["outbox"].Kills}x over {killStats["outbox"].Users} users; naive publisher SIGKILLed {killStats["naive"].Kills}x over {killStats["naive"].Users} users");
        AnsiConsole.MarkupLine($"throughput_vs_naive = [bold]{ratio:0.00}[/] (target >= 0.70: {(ratio >= 0.7 ? "[green]met[/]" : "[red]missed[/]")}); outbox lost {lost["outbox"]} (target 0), naive lost {lost["naive"]}");
        return ExitCodes.Ok;
    }

    private static Round Median(IEnumerable<Round> rounds)
    {
        var list = rounds.OrderBy(r => r.CommandsPerSecond).ToList();
        var m = list[list.Count / 2];
        return m with { LagP50Ms = MedianOf(list.Select(r => r.LagP50Ms)), LagP99Ms = MedianOf(list.Select(r => r.LagP99Ms)) };
    }

    private static double MedianOf(IEnumerable<double> values) { var v = values.Order().ToList(); return v[v.Count / 2]; }

    private static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

    /// <summary>One command: three creates for each update, as a user service would see.</summary>
    private static async Task<long> SendCommandsAsync(Func<int, Task> command, int writers, TimeSpan duration, CancellationToken ct)
    {
        long sent = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(duration);
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested)
            {
                try { await command(i++); Interlocked.Increment(ref sent); }
                catch (Exception e) when (stop.IsCancellationRequested && e is NpgsqlException or OperationCanceledException or IOException or TimeoutException) { }
            }
        }, ct)));
        return sent;
    }

    private static Func<int, Task> UserCommand(UserCommandHandler commands, ConcurrentBag<long> ids) => async i =>
    {
        if (i % 4 == 3 && ids.TryPeek(out var id))
            await commands.UpdateUserAsync(new UpdateUser(id, $"renamed {i}", null));
        else
            ids.Add(await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@bench.local", $"user {i}", Region(i))));
    };

    private static string Region(int i) => (i % 4) switch { 0 => "eu", 1 => "us", 2 => "apac", _ => "latam" };

    private static async Task<Round> OutboxRoundAsync(PolystoreConfig config, string schema, int writers, TimeSpan duration, CancellationToken ct)
    {
        await using var services = CliServices.Build(config, s => s.AddUsersApp(schema, postgresReadModel: true));
        var users = services.GetRequiredService<UsersApp>();
        await users.EnsureCreatedAsync(ct);
        var lags = new ConcurrentQueue<double>();
        var dispatcher = users.Dispatcher(new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(200) },
            e => lags.Enqueue((DateTimeOffset.UtcNow - e.CreatedAt).TotalMilliseconds));
        using var stopDispatcher = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var running = dispatcher.RunAsync(stopDispatcher.Token);
        var watch = Stopwatch.StartNew();
        var sent = await SendCommandsAsync(UserCommand(users.Commands, []), writers, duration, ct);
        var elapsed = watch.Elapsed;
        // Let the projection catch up so every event's lag is counted.
        for (var i = 0; i < 600 && (await users.Monitor.GetStatusAsync(users.Projection().Name, ct)).Pending > 0; i++) await Task.Delay(50, ct);
        await stopDispatcher.CancelAsync();
        await running;
        var sorted = lags.Order().ToList();
        return new Round("outbox", sent / elapsed.TotalSeconds, Percentile(sorted, 0.5), Percentile(sorted, 0.99), sent);
    }

    private static async Task<Round> NaiveRoundAsync(PolystoreConfig config, string schema, int writers, TimeSpan duration, CancellationToken ct)
    {
        await using var services = CliServices.Build(config, s => s.AddUsersApp(schema, postgresReadModel: true));
        var users = services.GetRequiredService<UsersApp>();
        await users.EnsureCreatedAsync(ct);
        var lags = new ConcurrentQueue<double>();
        var naive = new NaiveUserService(users.Sources.Primary, schema, users.Store, lag => lags.Enqueue(lag));
        var watch = Stopwatch.StartNew();
        var sent = await SendCommandsAsync(naive.Command([]), writers, duration, ct);
        var elapsed = watch.Elapsed;
        var sorted = lags.Order().ToList();
        return new Round("naive", sent / elapsed.TotalSeconds, Percentile(sorted, 0.5), Percentile(sorted, 0.99), sent);
    }

    private static Task RunNaiveLoadAsync(UsersApp users, int writers, TimeSpan duration, CancellationToken ct) =>
        SendCommandsAsync(new NaiveUserService(users.Sources.Primary, users.Outbox.Schema, users.Store, null).Command([]), writers, duration, ct);

    /// <summary>Commands keep arriving in this process while dispatcher processes are SIGKILLed and restarted; then one drains. Returns lost events.</summary>
    private static async Task<(long Lost, int Kills, int Users)> OutboxKillTestAsync(PolystoreConfig config, string configDir, string schema, int writers, TimeSpan duration, CancellationToken ct)
    {
        await using var services = CliServices.Build(config, s => s.AddUsersApp(schema, postgresReadModel: true));
        var users = services.GetRequiredService<UsersApp>();
        await users.EnsureCreatedAsync(ct);
        var load = SendCommandsAsync(UserCommand(users.Commands, []), writers, duration, ct);
        var name = users.Projection().Name;
        var kills = 0;
        while (!load.IsCompleted)
        {
            var child = ChildProcess.StartSelf("integration", "outbox", "run", "--schema", schema, "--dir", configDir);
            // Kill it mid-stream: once its checkpoint moves, after a random moment.
            await WaitForProgressAsync(async () => (await users.Monitor.GetStatusAsync(name, ct)).CheckpointAge is { } age && age < TimeSpan.FromMilliseconds(200), ct);
            await Task.WhenAny(load, Task.Delay(Random.Shared.Next(50, 400), ct));
            ChildProcess.KillHard(child);
            kills++;
        }
        await load;
        var dispatcher = users.Dispatcher();
        for (var i = 0; i < 600 && (await users.Monitor.GetStatusAsync(users.Projection().Name, ct)).Pending > 0; i++)
        {
            await dispatcher.ProcessAvailableAsync(ct);
            await Task.Delay(20, ct);
        }
        return (await CountLostAsync(users, ct), kills, (await users.Commands.GetVersionsAsync(ct)).Count);
    }

    /// <summary>Naive writer processes (commit, then write the read model) are SIGKILLed and restarted. Returns lost events.</summary>
    private static async Task<(long Lost, int Kills, int Users)> NaiveKillTestAsync(PolystoreConfig config, string configDir, string schema, int writers, TimeSpan duration, CancellationToken ct)
    {
        await using var services = CliServices.Build(config, s => s.AddUsersApp(schema, postgresReadModel: true));
        var users = services.GetRequiredService<UsersApp>();
        await users.EnsureCreatedAsync(ct);
        var until = DateTime.UtcNow + duration;
        var kills = 0;
        while (DateTime.UtcNow < until)
        {
            var before = (await users.Commands.GetVersionsAsync(ct)).Count;
            var child = ChildProcess.StartSelf("integration", "naive-worker", "--schema", schema, "--writers", writers.ToString(System.Globalization.CultureInfo.InvariantCulture), "--dir", configDir);
            // Kill it mid-stream: once it has written something, after a random moment.
            await WaitForProgressAsync(async () => (await users.Commands.GetVersionsAsync(ct)).Count > before, ct);
            await Task.Delay(Random.Shared.Next(50, 400), ct);
            ChildProcess.KillHard(child);
            kills++;
        }
        return (await CountLostAsync(users, ct), kills, (await users.Commands.GetVersionsAsync(ct)).Count);
    }

    private static async Task WaitForProgressAsync(Func<Task<bool>> progressed, CancellationToken ct)
    {
        for (var i = 0; i < 300 && !await progressed(); i++) await Task.Delay(50, ct);
    }

    /// <summary>Users whose latest version never reached the read model: the lost events.</summary>
    private static async Task<long> CountLostAsync(UsersApp users, CancellationToken ct)
    {
        var truth = await users.Commands.GetVersionsAsync(ct);
        var projected = await users.Store.GetVersionsAsync(ct);
        return truth.Count(u => !projected.TryGetValue(u.Key, out var v) || v < u.Value);
    }

    private static async Task DropSchemasAsync(PolystoreConfig config, List<string> schemas)
    {
        await using var services = CliServices.Build(config);
        await using var connection = await services.GetRequiredService<Polystore.Postgres.PostgresDataSources>().OpenConnectionAsync();
        foreach (var schema in schemas)
        {
            await using var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
            await drop.ExecuteNonQueryAsync();
        }
    }
}

/// <summary>The usual CQRS snippet: commit the row, then "publish" by writing the read model. A dual write.</summary>
internal sealed class NaiveUserService(NpgsqlDataSource dataSource, string schema, IReadModelStore<UserProfile> store, Action<double>? lag)
{
    public Func<int, Task> Command(ConcurrentBag<long> ids) => async i =>
    {
        UserProfile profile;
        await using (var connection = await dataSource.OpenConnectionAsync())
        {
            if (i % 4 == 3 && ids.TryPeek(out var id))
            {
                await using var update = new NpgsqlCommand($"UPDATE \"{schema}\".users SET name = $2, version = version + 1, updated_at = now() WHERE id = $1 RETURNING id, email, name, region, version, created_at", connection);
                update.Parameters.AddWithValue(id);
                update.Parameters.AddWithValue($"renamed {i}");
                profile = await ReadAsync(update);
            }
            else
            {
                await using var insert = new NpgsqlCommand($"INSERT INTO \"{schema}\".users (email, name, region) VALUES ($1, $2, 'eu') RETURNING id, email, name, region, version, created_at", connection);
                insert.Parameters.AddWithValue($"{Guid.NewGuid():N}@bench.local");
                insert.Parameters.AddWithValue($"user {i}");
                profile = await ReadAsync(insert);
                ids.Add(profile.Id);
            }
        }
        // The commit happened above (autocommit); a crash here loses the event for good.
        var start = Stopwatch.GetTimestamp();
        await store.UpsertIfNewerAsync(profile.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), profile.Version, profile);
        lag?.Invoke(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    };

    private static async Task<UserProfile> ReadAsync(NpgsqlCommand command)
    {
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new UserProfile(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), reader.GetFieldValue<DateTimeOffset>(5));
    }
}
