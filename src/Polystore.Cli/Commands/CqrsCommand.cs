using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Polystore.Integration.Transactions;
using Polystore.Samples.Users;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore cqrs demo</c>: CQRS on the users sample with a transactional outbox, step by step.</summary>
internal static class CqrsCommand
{
    public static Command Create()
    {
        var demo = new Command("demo", """
            Create and update users (rows and events in one statement), project them with the outbox
            dispatcher into the user_profiles read model (MongoDB when configured, else PostgreSQL JSONB),
            read a profile through the Redis cache, show the projection lag, then provoke the
            TransactionManager's partial-commit report. Uses a throwaway schema, dropped afterwards.
            """);
        demo.SetAction(async (parse, ct) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
            var schema = $"cqrs_demo_{Guid.NewGuid():N}"[..20];
            await using var services = CliServices.Build(config, s => s.AddUsersApp(schema, postgresReadModel: false));
            var users = services.GetRequiredService<UsersApp>();
            await users.EnsureCreatedAsync(ct);
            try
            {
                var ada = await users.Commands.CreateUserAsync(new CreateUser($"ada-{schema}@example.com", "Ada", "eu"), ct);
                var grace = await users.Commands.CreateUserAsync(new CreateUser($"grace-{schema}@example.com", "Grace", "us"), ct);
                await users.Commands.UpdateUserAsync(new UpdateUser(ada, "Ada Lovelace", null), ct);
                var before = await users.Monitor.GetStatusAsync(users.Projection().Name, ct);
                AnsiConsole.MarkupLine($"3 commands written (users [bold]{ada}[/], [bold]{grace}[/]); outbox backlog: {before.Pending} events, read model: {Markup.Escape(users.Store.Description)}");

                var lags = new List<double>();
                var dispatcher = users.Dispatcher(applied: e => lags.Add((DateTimeOffset.UtcNow - e.CreatedAt).TotalMilliseconds));
                var delivered = 0;
                for (var i = 0; i < 200 && (await users.Monitor.GetStatusAsync(users.Projection().Name, ct)).Pending > 0; i++)
                {
                    delivered += await dispatcher.ProcessAvailableAsync(ct);
                    if (delivered < 3) await Task.Delay(25, ct);
                }
                var after = await users.Monitor.GetStatusAsync(users.Projection().Name, ct);
                AnsiConsole.MarkupLine($"dispatcher delivered {delivered} events (projection lag: max {(lags.Count > 0 ? lags.Max() : 0):0.0} ms from commit to read model); backlog now {after.Pending}, dead letters {after.DeadLetters}");

                var table = new Table().Border(TableBorder.Rounded).AddColumns("Read", "Source", "Time", "Profile");
                for (var i = 0; i < 2; i++)
                {
                    var watch = Stopwatch.StartNew();
                    var (profile, fromCache) = await users.Queries.GetUserProfileAsync(ada, ct);
                    table.AddRow($"{i + 1}", fromCache ? "[green]Redis cache[/]" : "read model", $"{watch.Elapsed.TotalMilliseconds:0.00} ms",
                        Markup.Escape(profile is null ? "(none)" : $"{profile.Name} ({profile.Region}) v{profile.Version}"));
                }
                AnsiConsole.Write(table);
                var regions = await users.Queries.GetRegionAnalyticsAsync(ct);
                AnsiConsole.MarkupLine($"region analytics on the read model: {Markup.Escape(string.Join(", ", regions.Select(r => $"{r.Key}: {r.Value} user(s)")))}");

                if (users.Redis is not null)
                {
                    AnsiConsole.MarkupLine("[bold]TransactionManager[/]: PostgreSQL commits, then a Redis MULTI/EXEC whose WATCHed key another client changed:");
                    var guard = $"{schema}:guard";
                    var db = users.Redis.GetDatabase();
                    try
                    {
                        await new TransactionManager(users.Sources.Primary, db).ExecuteAsync(async tx =>
                        {
                            await using var update = new NpgsqlCommand($"UPDATE \"{schema}\".users SET name = 'Grace Hopper' WHERE id = $1", tx.Postgres, tx.PostgresTransaction);
                            update.Parameters.AddWithValue(grace);
                            await update.ExecuteNonQueryAsync(ct);
                            await db.StringSetAsync($"{schema}:touched", "1");
                            tx.AddCompensation($"delete {schema}:touched", _ => db.KeyDeleteAsync($"{schema}:touched"));
                            tx.RedisTransaction.AddCondition(StackExchange.Redis.Condition.KeyNotExists(guard));
                            _ = tx.RedisTransaction.StringSetAsync(guard, "mine");
                            await db.StringSetAsync(guard, "someone else", TimeSpan.FromMinutes(1));
                        }, ct);
                    }
                    catch (PartialCommitException e)
                    {
                        AnsiConsole.MarkupLine($"  [yellow]{Markup.Escape(e.Report.ToString())}[/]");
                        AnsiConsole.MarkupLine("  The stores now disagree and the report says so; the outbox path above cannot end like this.");
                    }
                    await db.KeyDeleteAsync(guard);
                }
                return ExitCodes.Ok;
            }
            finally
            {
                await using var connection = await users.Sources.OpenConnectionAsync(CancellationToken.None);
                await using var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
                await drop.ExecuteNonQueryAsync(CancellationToken.None);
            }
        });
        return new Command("cqrs", "CQRS on the users sample domain, with a transactional outbox.") { demo };
    }
}
