using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Integration.Outbox;
using Polystore.Samples.Users;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore outbox run|status</c>: run the user-profile projection's dispatcher, or show its lag.</summary>
internal static class OutboxCommand
{
    public static readonly Option<string> Schema = new("--schema")
    {
        Description = "PostgreSQL schema holding users, the outbox and (without MongoDB) the user_profiles read model.",
        DefaultValueFactory = _ => "polystore",
        Recursive = true,
    };

    public static Command Create()
    {
        Schema.Validators.Add(result =>
        {
            if (!CommonOptions.TryGetValue(result, out string? schema)) return;
            if (!Polystore.Postgres.PostgresIdentifier.IsPlain(schema ?? ""))
                result.AddError("--schema must be a plain PostgreSQL name: letters, digits and _, starting with a letter or _, at most 63 characters");
        });
        var run = new Command("run", """
            Run the outbox dispatcher for the user_profiles projection until stopped (Ctrl+C or SIGTERM).
            Any number may run: one leads (advisory lock), the others wait and take over if it dies.
            It wakes on NOTIFY, polls as a safety net, and reconnects after a PostgreSQL restart.
            """);
        run.SetAction(async (parse, cancellationToken) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
            await using var services = CliServices.Build(config, s => s.AddUsersApp(parse.GetValue(Schema)!, postgresReadModel: false));
            var users = services.GetRequiredService<UsersApp>();
            await users.EnsureCreatedAsync(cancellationToken);
            var dispatcher = users.Dispatcher(new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(500) });
            CommonOptions.Error.MarkupLine($"[grey]dispatching {Markup.Escape(users.Outbox.Schema)}.outbox to {Markup.Escape(users.Store.Description)}; Ctrl+C stops[/]");
            await dispatcher.RunAsync(cancellationToken);
            return ExitCodes.Ok;
        });

        var status = new Command("status", "Show the projection's backlog: pending events, age of the oldest, checkpoint age, dead letters.");
        status.SetAction(async (parse, cancellationToken) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
            await using var services = CliServices.Build(config, s => s.AddUsersApp(parse.GetValue(Schema)!, postgresReadModel: false));
            var users = services.GetRequiredService<UsersApp>();
            await users.EnsureCreatedAsync(cancellationToken);
            var s = await users.Monitor.GetStatusAsync(users.Projection().Name, cancellationToken);
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(new { subscriber = s.Subscriber, pending = s.Pending, backlog_age_seconds = s.OldestPendingAge?.TotalSeconds, checkpoint_age_seconds = s.CheckpointAge?.TotalSeconds, dead_letters = s.DeadLetters });
                return ExitCodes.Ok;
            }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("Subscriber", "Pending", "Backlog age", "Checkpoint age", "Dead letters");
            table.AddRow(s.Subscriber, $"{s.Pending}", Seconds(s.OldestPendingAge), Seconds(s.CheckpointAge), $"{s.DeadLetters}");
            AnsiConsole.Write(table);
            return ExitCodes.Ok;
        });
        return new Command("outbox", "The transactional outbox: run the dispatcher, show its lag.") { Schema, run, status };
    }

    private static string Seconds(TimeSpan? value) => value is { } v ? $"{v.TotalSeconds:0.000} s" : "-";
}
