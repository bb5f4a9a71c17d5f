using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Samples.Users;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary>
/// <c>polystore outbox run|status|prune|dead-letters</c>: run the user-profile projection's dispatcher, show its lag,
/// prune delivered events, and list, show, replay or drop dead letters.
/// </summary>
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
        run.SetAction((parse, cancellationToken) => WithUsersAppAsync(parse, cancellationToken, async users =>
        {
            var dispatcher = users.Dispatcher(new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(500) });
            CommonOptions.Error.MarkupLine($"[grey]dispatching {Markup.Escape(users.Outbox.Schema)}.outbox to {Markup.Escape(users.Store.Description)}; Ctrl+C stops[/]");
            await dispatcher.RunAsync(cancellationToken);
            return ExitCodes.Ok;
        }));

        var status = new Command("status", "Show the projection's backlog: pending events, age of the oldest, checkpoint age, dead letters.");
        status.SetAction((parse, cancellationToken) => WithUsersAppAsync(parse, cancellationToken, async users =>
        {
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
        }));
        return new Command("outbox", "The transactional outbox: run the dispatcher, show its lag, prune delivered events, handle dead letters.")
        {
            Schema, run, status, CreatePrune(), OutboxDeadLettersCommand.Create(),
        };
    }

    private static Command CreatePrune()
    {
        var olderThan = new Option<TimeSpan>("--older-than")
        {
            Description = "Keep delivered events younger than this: 90s, 15m, 12h, 7d, or 0 for every delivered event (default 7d).",
            DefaultValueFactory = _ => TimeSpan.FromDays(7),
            CustomParser = ParseDuration,
            HelpName = "AGE",
        };
        var batchSize = new Option<int>("--batch-size") { Description = "Rows deleted per transaction (default 5000).", DefaultValueFactory = _ => 5000, HelpName = "ROWS" }.InRange(1, 100_000);
        var prune = new Command("prune", """
            Delete delivered events: older than --older-than AND at or below the checkpoint of every subscriber
            (every row of outbox_checkpoints), in short transactions of --batch-size rows that appends never wait on.
            An application host does the same on a schedule with AddOutboxDispatcher(o => o.RetentionMaxAge = ...).
            A subscriber that no longer runs but keeps its checkpoint holds pruning back: it is named in the output.
            Exit code 0 when done (also when nothing was old enough), 3 when PostgreSQL is unreachable.
            Example: polystore outbox prune --older-than 7d --batch-size 5000
            """) { olderThan, batchSize };
        prune.SetAction((parse, cancellationToken) => WithUsersAppAsync(parse, cancellationToken, async users =>
        {
            var retention = new OutboxRetention(users.Sources.Primary, users.Outbox, new OutboxRetentionOptions { MaxAge = parse.GetValue(olderThan), BatchSize = parse.GetValue(batchSize) });
            var report = await retention.PruneAsync(cancellationToken);
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(new
                {
                    deleted = report.Deleted,
                    batches = report.Batches,
                    elapsed_seconds = Math.Round(report.Elapsed.TotalSeconds, 3),
                    slowest_subscriber = report.SlowestSubscriber,
                    slowest_checkpoint_event_id = report.SlowestCheckpointEventId,
                });
                return ExitCodes.Ok;
            }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("Deleted", "Batches", "Elapsed", "Slowest subscriber", "Its checkpoint (event id)");
            table.AddRow($"{report.Deleted:N0}", $"{report.Batches}", $"{report.Elapsed.TotalSeconds:0.000} s", Markup.Escape(report.SlowestSubscriber ?? "(no subscriber: nothing is pruned)"), $"{report.SlowestCheckpointEventId}");
            AnsiConsole.Write(table);
            return ExitCodes.Ok;
        }));
        return prune;
    }

    /// <summary>
    /// Loads the configuration, opens the users domain of <c>--schema</c> over it (tables created where missing) and runs
    /// <paramref name="action"/>; an exit code instead when the configuration is unusable or has no PostgreSQL.
    /// </summary>
    internal static async Task<int> WithUsersAppAsync(ParseResult parse, CancellationToken cancellationToken, Func<UsersApp, Task<int>> action)
    {
        var (config, _) = CommonOptions.LoadConfig(parse);
        if (config is null) return ExitCodes.InvalidConfig;
        if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
        await using var services = CliServices.Build(config, s => s.AddUsersApp(parse.GetValue(Schema)!, postgresReadModel: false));
        var users = services.GetRequiredService<UsersApp>();
        await users.EnsureCreatedAsync(cancellationToken);
        return await action(users);
    }

    /// <summary>Reads 90s, 15m, 12h, 7d, 0, or a .NET time span (1.02:03:04); refuses negative and unreadable ones, naming the option.</summary>
    // A hundred years: far past any retention, and far from TimeSpan's and DateTimeOffset's limits.
    private const int MaxDurationDays = 36_500;

    internal static TimeSpan ParseDuration(ArgumentResult result)
    {
        var name = (result.Parent as OptionResult)?.Option.Name ?? "duration";
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value.Trim() : "";
        TimeSpan? value = null;
        if (text == "0") value = TimeSpan.Zero;
        else if (text.Length > 1 && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= 0 && double.IsFinite(n)
                 && n <= MaxDurationDays * (char.ToLowerInvariant(text[^1]) switch { 's' => 86_400.0, 'm' => 1_440.0, 'h' => 24.0, _ => 1.0 }))
        {
            value = char.ToLowerInvariant(text[^1]) switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                _ => null,
            };
        }
        if (value is null && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span >= TimeSpan.Zero && span.TotalDays <= MaxDurationDays) value = span;
        if (value is { } v) return v;
        result.AddError($"{name} must be a duration such as 90s, 15m, 12h or 7d, from 0 to {MaxDurationDays:N0}d; got '{text}'");
        return default;
    }

    internal static string Seconds(TimeSpan? value) => value is { } v ? $"{v.TotalSeconds:0.000} s" : "-";
}
