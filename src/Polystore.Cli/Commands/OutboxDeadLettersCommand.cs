using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Integration.Outbox;
using Polystore.Samples.Users;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore outbox dead-letters list|show|replay|drop</c>.</summary>
internal static class OutboxDeadLettersCommand
{
    private static readonly Option<string> Subscriber = new("--subscriber")
    {
        Description = $"The subscriber the dead letters belong to (default {UserProfileProjection.DefaultName}, the users projection).",
        DefaultValueFactory = _ => UserProfileProjection.DefaultName,
        HelpName = "NAME",
        Recursive = true,
    };

    private static readonly Option<string> By = new("--by")
    {
        Description = "Who is acting, recorded in outbox_dead_letter_log with the time and the database role (default USER@HOST).",
        DefaultValueFactory = _ => $"{Environment.UserName}@{Environment.MachineName}",
        HelpName = "WHO",
    };

    public static Command Create()
    {
        Subscriber.Validators.Add(result =>
        {
            if (CommonOptions.TryGetValue(result, out string? name) && string.IsNullOrWhiteSpace(name)) result.AddError("--subscriber needs a name");
        });
        By.Validators.Add(result =>
        {
            if (CommonOptions.TryGetValue(result, out string? who) && (string.IsNullOrWhiteSpace(who) || who.Length > 200)) result.AddError("--by needs a name of 1-200 characters");
        });
        return new Command("dead-letters", """
            Events a subscriber gave up on after its attempts (outbox_dead_letters). Fix the cause first (the
            last error says what failed), then replay them, or drop the ones that should never be delivered.
              polystore outbox dead-letters list                    what is there, oldest first
              polystore outbox dead-letters show 42                 one event: payload, error, history
              polystore outbox dead-letters replay 42 43            deliver again, in commit order
              polystore outbox dead-letters replay --all
              polystore outbox dead-letters drop 44 --by alice      remove without delivering (logged)
            Replay delivers to the users projection (the subscriber this tool runs); other subscribers replay from
            their own application with OutboxDeadLetters.ReplayAsync. A replayed event is removed from the dead
            letters in the same transaction as its delivery, so replaying it again is a no-op (exit code 5).
            """)
        {
            Subscriber, CreateList(), CreateShow(), CreateReplay(), CreateDrop(),
        };
    }

    private static Command CreateList()
    {
        var limit = new Option<int>("--limit") { Description = "At most this many (default 100).", DefaultValueFactory = _ => 100, HelpName = "N" }.InRange(1, 100_000);
        var all = new Option<bool>("--all-subscribers") { Description = "Every subscriber's dead letters, not only --subscriber's." };
        var list = new Command("list", "List dead letters, oldest commit first: event id, type, aggregate, attempts, when and why it failed. Exit code 0 (also when there are none).") { limit, all };
        list.SetAction((parse, ct) => WithDeadLettersAsync(parse, ct, async (letters, _, _) =>
        {
            var found = await letters.ListAsync(parse.GetValue(all) ? null : parse.GetValue(Subscriber), parse.GetValue(limit), ct);
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(found.Select(Json));
                return ExitCodes.Ok;
            }
            if (found.Count == 0)
            {
                AnsiConsole.MarkupLine("[green]no dead letters[/]");
                return ExitCodes.Ok;
            }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("Subscriber", "Event", "Type", "Aggregate", "Attempts", "Failed at (UTC)", "Last error");
            foreach (var d in found)
                table.AddRow(Markup.Escape(d.Subscriber), $"{d.Event.Id}", Markup.Escape(d.Event.Type), Markup.Escape($"{d.Event.Stream}/{d.Event.AggregateId} v{d.Event.Version}"),
                    $"{d.Attempts}", d.FailedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(Truncate(d.LastError, 80)));
            AnsiConsole.Write(table);
            return ExitCodes.Ok;
        }));
        return list;
    }

    private static Command CreateShow()
    {
        var id = new Argument<long>("event-id") { Description = "The event id (from list)." };
        id.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && (!long.TryParse(result.Tokens[0].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) || value < 1))
                result.AddError($"'{result.Tokens[0].Value}' is not an event id: ids are whole numbers from 1 (see 'polystore outbox dead-letters list')");
        });
        var show = new Command("show", "Show one dead letter in full: the payload, the last error, and what was done to it. Exit code 5 when it is not a dead letter (any more).") { id };
        show.SetAction((parse, ct) => WithDeadLettersAsync(parse, ct, async (letters, _, _) =>
        {
            var subscriber = parse.GetValue(Subscriber)!;
            var eventId = parse.GetValue(id);
            var letter = await letters.GetAsync(subscriber, eventId, ct);
            var log = await letters.GetLogAsync(subscriber, eventId, ct);
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(new { dead_letter = letter is null ? null : Json(letter), log = log.Select(Json) });
            }
            else if (letter is not null)
            {
                var grid = new Grid().AddColumn().AddColumn();
                grid.AddRow("[bold]subscriber[/]", Markup.Escape(letter.Subscriber));
                grid.AddRow("[bold]event[/]", $"{letter.Event.Id} (transaction {letter.Event.TransactionId})");
                grid.AddRow("[bold]type[/]", Markup.Escape(letter.Event.Type));
                grid.AddRow("[bold]aggregate[/]", Markup.Escape($"{letter.Event.Stream}/{letter.Event.AggregateId} v{letter.Event.Version}"));
                grid.AddRow("[bold]appended[/]", $"{letter.Event.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC");
                grid.AddRow("[bold]failed[/]", $"{letter.FailedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC after {letter.Attempts} attempts");
                grid.AddRow("[bold]last error[/]", Markup.Escape(letter.LastError));
                grid.AddRow("[bold]payload[/]", Markup.Escape(letter.Event.PayloadJson));
                AnsiConsole.Write(grid);
            }
            if (!parse.GetValue(CommonOptions.Json))
                foreach (var entry in log)
                    AnsiConsole.MarkupLine(Markup.Escape($"{entry.Action} by {entry.Actor} (database role {entry.DatabaseUser}) at {entry.At.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC"));
            if (letter is not null) return ExitCodes.Ok;
            CommonOptions.Error.MarkupLine(Markup.Escape($"event {eventId} is not a dead letter of {subscriber}{(log.Count > 0 ? " any more" : "")}"));
            return ExitCodes.NotFound;
        }));
        return show;
    }

    private static Command CreateReplay()
    {
        var ids = EventIds("event-ids", "Which dead letters (event ids from list); or --all.");
        var all = new Option<bool>("--all") { Description = "Every dead letter of the subscriber." };
        var replay = new Command("replay", """
            Deliver dead letters to the users projection again, oldest commit first, each in its own transaction that
            also removes it from the dead letters and records who replayed it. A failing one stays a dead letter with
            its new error, and the ones after it are not replayed (exit code 1). Ids that are not dead letters (never
            were, or were already replayed or dropped) are reported; exit code 5 when nothing was replayed because of that.
            Examples: polystore outbox dead-letters replay 42 43    polystore outbox dead-letters replay --all --by alice
            """) { ids, all, By };
        AddIdsOrAll(replay, ids, all);
        replay.SetAction((parse, ct) => WithDeadLettersAsync(parse, ct, async (letters, users, actor) =>
        {
            var subscriber = parse.GetValue(Subscriber)!;
            var projection = users.Projection();
            if (subscriber != projection.Name)
            {
                CommonOptions.Error.MarkupLine(Markup.Escape($"replay needs the subscriber's code: this tool runs only {projection.Name}; replay {subscriber} from its application with OutboxDeadLetters.ReplayAsync"));
                return ExitCodes.InvalidConfig;
            }
            var wanted = parse.GetValue(all) ? null : parse.GetValue(ids);
            OutboxReplayReport report;
            try
            {
                report = await letters.ReplayAsync(projection, wanted, actor, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException and not Npgsql.NpgsqlException)
            {
                CommonOptions.Error.MarkupLine($"[red]replay failed:[/] {Markup.Escape(e.Message)}; that event and the ones after it stay dead letters");
                return ExitCodes.Failure;
            }
            return Outcome(parse, "replayed", report.Replayed, report.NotFound);
        }));
        return replay;
    }

    private static Command CreateDrop()
    {
        var ids = EventIds("event-ids", "Which dead letters (event ids from list); or --all.");
        var all = new Option<bool>("--all") { Description = "Every dead letter of the subscriber." };
        var drop = new Command("drop", """
            Remove dead letters without delivering them, recording who and when in outbox_dead_letter_log.
            Exit code 0 when all named were dropped, 5 when none of them was a dead letter.
            Example: polystore outbox dead-letters drop 44 --by alice
            """) { ids, all, By };
        AddIdsOrAll(drop, ids, all);
        drop.SetAction((parse, ct) => WithDeadLettersAsync(parse, ct, async (letters, _, actor) =>
        {
            var wanted = parse.GetValue(all) ? null : parse.GetValue(ids);
            var dropped = await letters.DropAsync(parse.GetValue(Subscriber)!, wanted, actor, ct);
            var notFound = wanted is null ? [] : wanted.Distinct().Except(dropped).Order().ToList();
            return Outcome(parse, "dropped", dropped, notFound);
        }));
        return drop;
    }

    private static int Outcome(ParseResult parse, string verb, IReadOnlyList<long> done, IReadOnlyList<long> notFound)
    {
        if (parse.GetValue(CommonOptions.Json)) CommonOptions.WriteJson(new Dictionary<string, object> { [verb] = done, ["not_found"] = notFound });
        else
        {
            AnsiConsole.MarkupLine(done.Count == 0 ? $"nothing {verb}" : Markup.Escape($"{verb} {done.Count}: {string.Join(", ", done)}"));
            if (notFound.Count > 0) CommonOptions.Error.MarkupLine(Markup.Escape($"not dead letters (never were, or already replayed or dropped): {string.Join(", ", notFound)}"));
        }
        return done.Count == 0 && notFound.Count > 0 ? ExitCodes.NotFound : ExitCodes.Ok;
    }

    private static Argument<long[]> EventIds(string name, string description)
    {
        var argument = new Argument<long[]>(name) { Description = description, Arity = ArgumentArity.ZeroOrMore };
        argument.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
                if (!long.TryParse(token.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || id < 1)
                    result.AddError($"'{token.Value}' is not an event id: ids are whole numbers from 1 (see 'polystore outbox dead-letters list')");
        });
        return argument;
    }

    private static void AddIdsOrAll(Command command, Argument<long[]> ids, Option<bool> all) =>
        command.Validators.Add(result =>
        {
            var named = result.GetResult(ids) is { Tokens.Count: > 0 };
            var every = result.GetResult(all) is { Implicit: false };
            if (named == every) result.AddError($"name the event ids to {command.Name}, or pass --all (not both)");
        });

    private static Task<int> WithDeadLettersAsync(ParseResult parse, CancellationToken cancellationToken, Func<OutboxDeadLetters, UsersApp, string, Task<int>> action) =>
        OutboxCommand.WithUsersAppAsync(parse, cancellationToken, users =>
        {
            var letters = new OutboxDeadLetters(users.Sources.Primary, users.Outbox);
            var actor = parse.GetResult(By) is null ? $"{Environment.UserName}@{Environment.MachineName}" : parse.GetValue(By)!;
            return action(letters, users, actor);
        });

    private static object Json(OutboxDeadLetter d) => new
    {
        subscriber = d.Subscriber,
        event_id = d.Event.Id,
        transaction_id = d.Event.TransactionId,
        type = d.Event.Type,
        stream = d.Event.Stream,
        aggregate_id = d.Event.AggregateId,
        version = d.Event.Version,
        appended_at = d.Event.CreatedAt,
        attempts = d.Attempts,
        failed_at = d.FailedAt,
        last_error = d.LastError,
        payload = System.Text.Json.JsonDocument.Parse(d.Event.PayloadJson).RootElement,
    };

    private static object Json(OutboxDeadLetterAction a) => new { subscriber = a.Subscriber, event_id = a.EventId, action = a.Action, actor = a.Actor, database_user = a.DatabaseUser, at = a.At };

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";
}
