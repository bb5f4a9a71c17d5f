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
/// <c>polystore-bench integration</c>: the outbox flow against the one-transaction design (the user row and its
/// PostgreSQL read model written in one transaction) and "publish after flush" (a dual write): throughput until
/// everything is projected, projection lag, and events lost when the process that publishes is SIGKILLed.
/// </summary>
internal static class BenchIntegrationCommand
{
    private static readonly Option<int> Seconds = new("--seconds") { Description = "Seconds of load per throughput round.", DefaultValueFactory = _ => 5 };
    private static readonly Option<int> Writers = new("--writers") { Description = "Concurrent command senders.", DefaultValueFactory = _ => 16 };
    private static readonly Option<int> Rounds = new("--rounds") { Description = "Throughput rounds (every flow once per round, order rotated; medians reported).", DefaultValueFactory = _ => 3 };
    private static readonly Option<int> KillSeconds = new("--kill-seconds") { Description = "Seconds of the kill test per flow.", DefaultValueFactory = _ => 15 };
    private static readonly Option<string> Flow = new("--flow") { Description = "Internal: naive or one_transaction.", DefaultValueFactory = _ => "naive" };

    private static readonly string[] Flows = ["outbox", "one_transaction", "naive"];

    public static Command Create()
    {
        var command = new Command("integration", """
            End-to-end CQRS on PostgreSQL JSONB read models, side by side in one run:
              outbox           the command writes the user and its event in one transaction; a dispatcher projects it
              one_transaction  the command writes the user and its read model row in the same transaction
              naive            "publish after flush": commit the user, then write the read model (a dual write)
            Measures commands/s until everything is projected (the outbox's accepted rate too) and projection lag (p50,
            p99), then the kill test: the process that publishes is SIGKILLed again and again while commands arrive,
            and the events lost are counted, per kill and per 10,000 committed commands.
            --json prints ratios (with per-round ratios) and kill_test.{outbox,one_transaction,naive}.
            """)
        { Seconds, Writers, Rounds, KillSeconds };
        command.SetAction(RunAsync);

        var worker = new Command("naive-worker", "Internal: the naive or one-transaction flow's writer process for the kill test.") { Hidden = true };
        worker.Options.Add(OutboxCommand.Schema);
        worker.Options.Add(Writers);
        worker.Options.Add(Flow);
        worker.SetAction(async (parse, ct) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
            await using var services = CliServices.Build(config, s => s.AddUsersApp(parse.GetValue(OutboxCommand.Schema)!, postgresReadModel: true));
            var users = services.GetRequiredService<UsersApp>();
            await users.EnsureCreatedAsync(ct);
            var service = new NaiveUserService(users.Sources.Primary, users.Outbox.Schema, users.Store, null, oneTransaction: parse.GetValue(Flow) == "one_transaction");
            await SendCommandsAsync(service.Command([]), parse.GetValue(Writers), TimeSpan.FromHours(1), ct);
            return ExitCodes.Ok;
        });
        command.Subcommands.Add(worker);
        // The kill test's dispatcher process: the same `outbox run` the polystore tool ships, started from this executable.
        var outbox = OutboxCommand.Create();
        outbox.Hidden = true;
        command.Subcommands.Add(outbox);
        return command;
    }

    /// <summary>One flow's round. <paramref name="CommandsPerSecond"/> counts until everything sent is projected; <paramref name="AcceptedPerSecond"/> until the last command returned.</summary>
    private sealed record Round(string Flow, double CommandsPerSecond, double AcceptedPerSecond, double LagP50Ms, double LagP99Ms, long Commands);

    private sealed record KillResult(long Lost, int Kills, int Users, long Commands)
    {
        public double LostPerKill => Kills == 0 ? 0 : (double)Lost / Kills;

        public double LostPer10kCommands => Commands == 0 ? 0 : Lost * 10_000.0 / Commands;
    }

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
        var orders = new List<string[]>();
        var kills = new Dictionary<string, KillResult>();
        var schemas = new List<string>();

        // Progress goes to stderr so that stdout stays clean for --json.
        await CommonOptions.Error.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn())
            .StartAsync(async progress =>
            {
                var bar = progress.AddTask("throughput rounds", maxValue: (rounds * Flows.Length) + Flows.Length);
                for (var i = 0; i < rounds; i++)
                {
                    // Every flow once per round, the order rotated, so drifting load and position favour none.
                    var order = Flows.Skip(i % Flows.Length).Concat(Flows.Take(i % Flows.Length)).ToArray();
                    orders.Add(order);
                    foreach (var flow in order)
                    {
                        bar.Description = $"{flow} round {i + 1}/{rounds}";
                        var schema = $"bench_{flow.Replace("_", "", StringComparison.Ordinal)}_{Guid.NewGuid():N}"[..28];
                        schemas.Add(schema);
                        results.Add(flow == "outbox"
                            ? await OutboxRoundAsync(config, schema, writers, seconds, ct)
                            : await DirectRoundAsync(config, schema, flow, writers, seconds, ct));
                        bar.Increment(1);
                    }
                }
                foreach (var flow in Flows)
                {
                    bar.Description = $"kill test: {flow}";
                    var schema = $"bench_kill_{flow.Replace("_", "", StringComparison.Ordinal)}_{Guid.NewGuid():N}"[..30];
                    schemas.Add(schema);
                    kills[flow] = flow == "outbox"
                        ? await OutboxKillTestAsync(config, location.Directory, schema, writers, killFor, ct)
                        : await DirectKillTestAsync(config, location.Directory, schema, flow, writers, killFor, ct);
                    bar.Increment(1);
                }
            });

        await DropSchemasAsync(config, schemas);
        var medians = Flows.ToDictionary(f => f, f => Median(results.Where(r => r.Flow == f)));
        List<double> PerRound(string flow, Func<Round, double> figure) => [.. results.Where(r => r.Flow == flow).Select(figure)];
        // Round i of one flow over round i of another: they ran in the same round.
        BenchRatio Vs(string ours, string theirs, Func<Round, double> figure) =>
            BenchRatio.Of(figure(medians[ours]), figure(medians[theirs]), PerRound(ours, figure), PerRound(theirs, figure));
        var ratios = new Dictionary<string, BenchRatio>
        {
            ["throughput_vs_naive"] = Vs("outbox", "naive", r => r.CommandsPerSecond).WithTarget(0.7),
            ["throughput_vs_one_transaction"] = Vs("outbox", "one_transaction", r => r.CommandsPerSecond),
            ["accepted_vs_one_transaction"] = Vs("outbox", "one_transaction", r => r.AcceptedPerSecond),
            ["one_transaction_vs_naive"] = Vs("one_transaction", "naive", r => r.CommandsPerSecond),
        };
        var lost = kills.ToDictionary(k => k.Key, k => k.Value.Lost);
        if (json)
        {
            CommonOptions.WriteJson(new
            {
                machine = new { cores = Environment.ProcessorCount, os = Environment.OSVersion.ToString(), dotnet = Environment.Version.ToString() },
                settings = new { seconds = seconds.TotalSeconds, writers, rounds, kill_seconds = killFor.TotalSeconds },
                flows = medians.ToDictionary(m => m.Key, m => new { commands_per_second = m.Value.CommandsPerSecond, accepted_per_second = m.Value.AcceptedPerSecond, lag_p50_ms = m.Value.LagP50Ms, lag_p99_ms = m.Value.LagP99Ms }),
                outbox = new { commands_per_second = medians["outbox"].CommandsPerSecond, accepted_per_second = medians["outbox"].AcceptedPerSecond, lag_p50_ms = medians["outbox"].LagP50Ms, lag_p99_ms = medians["outbox"].LagP99Ms },
                naive = new { commands_per_second = medians["naive"].CommandsPerSecond, lag_p50_ms = medians["naive"].LagP50Ms, lag_p99_ms = medians["naive"].LagP99Ms },
                round_orders = orders,
                rounds = results.Select(r => new { flow = r.Flow, commands_per_second = r.CommandsPerSecond, accepted_per_second = r.AcceptedPerSecond, lag_p50_ms = r.LagP50Ms, lag_p99_ms = r.LagP99Ms, commands = r.Commands }),
                ratios = ratios.ToDictionary(r => r.Key, r => r.Value.Rounded(3)),
                lost_events = lost,
                kill_test = kills.ToDictionary(k => k.Key, k => new
                {
                    sigkills = k.Value.Kills, users_written = k.Value.Users, commands_committed = k.Value.Commands, lost = k.Value.Lost,
                    lost_per_kill = Math.Round(k.Value.LostPerKill, 2), lost_per_10k_commands = Math.Round(k.Value.LostPer10kCommands, 2),
                }),
                target = new { throughput_vs_naive = 0.7, lost_events_outbox = 0, met = ratios["throughput_vs_naive"].Met == true && lost["outbox"] == 0 },
            });
            return ExitCodes.Ok;
        }
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]bench integration[/] ({writers} writers, {seconds.TotalSeconds:0} s x {rounds} rounds, order rotated, medians)")
            .AddColumns("Flow", "Commands/s (all projected)", "Accepted/s", "Rounds (commands/s)", "Lag p50", "p99", "SIGKILLs", "Lost", "Lost per kill", "Lost per 10k commands");
        foreach (var flow in Flows)
        {
            var (m, k) = (medians[flow], kills[flow]);
            var name = flow switch { "outbox" => "outbox (Polystore)", "one_transaction" => "one transaction (user + read model)", _ => "naive publish-after-flush" };
            table.AddRow(name, $"{m.CommandsPerSecond:N0}", $"{m.AcceptedPerSecond:N0}", string.Join(" ", PerRound(flow, r => r.CommandsPerSecond).Select(x => x.ToString("N0"))),
                $"{m.LagP50Ms:0.0} ms", $"{m.LagP99Ms:0.0} ms", $"{k.Kills}", $"{k.Lost}", $"{k.LostPerKill:0.00}", $"{k.LostPer10kCommands:0.00}");
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine("round orders: " + Markup.Escape(string.Join(" | ", orders.Select(o => string.Join(",", o)))));
        foreach (var (name, r) in ratios)
            AnsiConsole.MarkupLine($"{name} = [bold]{r.Value:0.00}[/] (rounds {string.Join(" ", r.Rounds?.Select(x => x.ToString("0.00")) ?? [])})" +
                (r.Target is { } t ? $", target >= {t}: {(r.Met == true ? "[green]met[/]" : "[red]missed[/]")}" : ""));
        AnsiConsole.MarkupLine($"outbox lost {lost["outbox"]} (target 0); one transaction lost {lost["one_transaction"]}; naive lost {lost["naive"]}");
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
        var accepted = watch.Elapsed;
        // The clock runs until every event is projected: the read model is the result the other flows pay for in the command.
        for (var i = 0; i < 6000 && (await users.Monitor.GetStatusAsync(users.Projection().Name, ct)).Pending > 0; i++) await Task.Delay(10, ct);
        var projected = watch.Elapsed;
        await stopDispatcher.CancelAsync();
        await running;
        var sorted = lags.Order().ToList();
        return new Round("outbox", sent / projected.TotalSeconds, sent / accepted.TotalSeconds, Percentile(sorted, 0.5), Percentile(sorted, 0.99), sent);
    }

    /// <summary>The naive and one-transaction flows: the read model is written before the command returns, so accepted is projected.</summary>
    private static async Task<Round> DirectRoundAsync(PolystoreConfig config, string schema, string flow, int writers, TimeSpan duration, CancellationToken ct)
    {
        await using var services = CliServices.Build(config, s => s.AddUsersApp(schema, postgresReadModel: true));
        var users = services.GetRequiredService<UsersApp>();
        await users.EnsureCreatedAsync(ct);
        var lags = new ConcurrentQueue<double>();
        var service = new NaiveUserService(users.Sources.Primary, schema, users.Store, lag => lags.Enqueue(lag), oneTransaction: flow == "one_transaction");
        var watch = Stopwatch.StartNew();
        var sent = await SendCommandsAsync(service.Command([]), writers, duration, ct);
        var elapsed = watch.Elapsed;
        var sorted = lags.Order().ToList();
        return new Round(flow, sent / elapsed.TotalSeconds, sent / elapsed.TotalSeconds, Percentile(sorted, 0.5), Percentile(sorted, 0.99), sent);
    }

    /// <summary>Commands keep arriving in this process while dispatcher processes are SIGKILLed and restarted; then one drains.</summary>
    private static async Task<KillResult> OutboxKillTestAsync(PolystoreConfig config, string configDir, string schema, int writers, TimeSpan duration, CancellationToken ct)
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
        return await CountLostAsync(users, kills, ct);
    }

    /// <summary>Writer processes of the naive or one-transaction flow are SIGKILLed and restarted.</summary>
    private static async Task<KillResult> DirectKillTestAsync(PolystoreConfig config, string configDir, string schema, string flow, int writers, TimeSpan duration, CancellationToken ct)
    {
        await using var services = CliServices.Build(config, s => s.AddUsersApp(schema, postgresReadModel: true));
        var users = services.GetRequiredService<UsersApp>();
        await users.EnsureCreatedAsync(ct);
        var until = DateTime.UtcNow + duration;
        var kills = 0;
        while (DateTime.UtcNow < until)
        {
            var before = (await users.Commands.GetVersionsAsync(ct)).Count;
            var child = ChildProcess.StartSelf("integration", "naive-worker", "--schema", schema, "--flow", flow,
                "--writers", writers.ToString(System.Globalization.CultureInfo.InvariantCulture), "--dir", configDir);
            // Kill it mid-stream: once it has written something, after a random moment.
            await WaitForProgressAsync(async () => (await users.Commands.GetVersionsAsync(ct)).Count > before, ct);
            await Task.Delay(Random.Shared.Next(50, 400), ct);
            ChildProcess.KillHard(child);
            kills++;
        }
        return await CountLostAsync(users, kills, ct);
    }

    private static async Task WaitForProgressAsync(Func<Task<bool>> progressed, CancellationToken ct)
    {
        for (var i = 0; i < 300 && !await progressed(); i++) await Task.Delay(50, ct);
    }

    /// <summary>
    /// Users whose latest version never reached the read model are the lost events; the commands committed are the
    /// sum of the users' versions (a create is version 1, each update adds one).
    /// </summary>
    private static async Task<KillResult> CountLostAsync(UsersApp users, int kills, CancellationToken ct)
    {
        var truth = await users.Commands.GetVersionsAsync(ct);
        var projected = await users.Store.GetVersionsAsync(ct);
        var lost = truth.Count(u => !projected.TryGetValue(u.Key, out var v) || v < u.Value);
        return new KillResult(lost, kills, truth.Count, truth.Values.Sum());
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

/// <summary>
/// The two flows that write the read model in the command itself. Naive, the usual CQRS snippet: commit the row,
/// then "publish" by writing the read model, a dual write. One transaction: the row change and the read model
/// row in one statement (one round trip, atomic), the way a careful engineer writes it when the read model lives in
/// the same PostgreSQL database; the document is built the way the projection builds it (same fields, same version rule).
/// </summary>
internal sealed class NaiveUserService(NpgsqlDataSource dataSource, string schema, IReadModelStore<UserProfile> store, Action<double>? lag, bool oneTransaction = false)
{
    private readonly string _readModel = store is PostgresJsonbReadModelStore<UserProfile> pg ? $"\"{pg.Schema}\".\"{pg.Table}\"" : "";

    public Func<int, Task> Command(ConcurrentBag<long> ids) => async i =>
    {
        long id = 0;
        var update = i % 4 == 3 && ids.TryPeek(out id);
        var change = update
            ? $"UPDATE \"{schema}\".users SET name = $2, version = version + 1, updated_at = now() WHERE id = $1 RETURNING id, email, name, region, version, created_at"
            : $"INSERT INTO \"{schema}\".users (email, name, region) VALUES ($1, $2, 'eu') RETURNING id, email, name, region, version, created_at";
        if (oneTransaction)
        {
            var start = Stopwatch.GetTimestamp();
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = new NpgsqlCommand($"""
                WITH u AS ({change}),
                r AS (
                    INSERT INTO {_readModel} AS t (id, version, doc)
                    SELECT u.id::text, u.version, jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'region', u.region, 'version', u.version, 'created_at', u.created_at)
                    FROM u
                    ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc, updated_at = now()
                    WHERE t.version < excluded.version)
                SELECT id, email, name, region, version, created_at FROM u
                """, connection);
            AddArguments(command, update, id, i);
            var profile = await ReadAsync(command);
            if (!update) ids.Add(profile.Id);
            // The read model is current when the command returns: its lag is the command's own time.
            lag?.Invoke(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            return;
        }
        UserProfile written;
        await using (var connection = await dataSource.OpenConnectionAsync())
        {
            await using var command = new NpgsqlCommand(change, connection);
            AddArguments(command, update, id, i);
            written = await ReadAsync(command);
            if (!update) ids.Add(written.Id);
        }
        // The commit happened above (autocommit); a crash here loses the event for good.
        var after = Stopwatch.GetTimestamp();
        await store.UpsertIfNewerAsync(written.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), written.Version, written);
        lag?.Invoke(Stopwatch.GetElapsedTime(after).TotalMilliseconds);
    };

    private static void AddArguments(NpgsqlCommand command, bool update, long id, int i)
    {
        if (update)
        {
            command.Parameters.AddWithValue(id);
            command.Parameters.AddWithValue($"renamed {i}");
        }
        else
        {
            command.Parameters.AddWithValue($"{Guid.NewGuid():N}@bench.local");
            command.Parameters.AddWithValue($"user {i}");
        }
    }

    private static async Task<UserProfile> ReadAsync(NpgsqlCommand command)
    {
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new UserProfile(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), reader.GetFieldValue<DateTimeOffset>(5));
    }
}
