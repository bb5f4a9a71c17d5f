using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using MongoDB.Driver;
using Polystore.Core.Diagnostics;
using Polystore.Mongo;
using Polystore.Postgres;
using Polystore.Redis;
using Spectre.Console;
using StackExchange.Redis;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore ping</c>: connect to every configured store, show version and round-trip time.</summary>
internal static class PingCommand
{
    public static Command Create()
    {
        var ping = new Command("ping", """
            Connect to each configured store (PostgreSQL primary and replicas, every Redis server, MongoDB)
            and print its server version and the time of one round trip.
            Exit code 0 when all answer, 3 when any is unreachable, 2 when the config is invalid.
            """);
        ping.SetAction(async (parse, cancellationToken) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            await using var services = CliServices.Build(config);
            var tasks = new List<Task<IReadOnlyList<StorePing>>>();
            if (config.Postgres is not null) tasks.Add(PostgresPing.PingAsync(services.GetRequiredService<PostgresDataSources>(), cancellationToken));
            if (config.Redis is not null) tasks.Add(RedisPing.PingAsync(services.GetRequiredService<IConnectionMultiplexer>(), cancellationToken));
            if (config.Mongo is not null) tasks.Add(MongoPing.PingAsync(services.GetRequiredService<IMongoClient>(), cancellationToken));
            var results = (await Task.WhenAll(tasks)).SelectMany(r => r).ToList();
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(results.Select(r => new
                {
                    store = r.Store,
                    endpoint = r.Endpoint,
                    reachable = r.Reachable,
                    server_version = r.ServerVersion,
                    round_trip_ms = r.RoundTrip?.TotalMilliseconds,
                    details = r.Details,
                    error = r.Error,
                }));
            }
            else
            {
                var table = new Table().Border(TableBorder.Rounded).AddColumns("Store", "Endpoint", "Status", "Version", "Round trip", "Details");
                foreach (var r in results)
                {
                    table.AddRow(
                        r.Store,
                        Markup.Escape(r.Endpoint),
                        r.Reachable ? "[green]up[/]" : "[red]down[/]",
                        Markup.Escape(r.ServerVersion ?? "-"),
                        r.RoundTrip is { } rt ? $"{rt.TotalMilliseconds:0.000} ms" : "-",
                        Markup.Escape(r.Reachable ? r.Details ?? "" : $"{r.Details} {r.Error}".Trim()));
                }
                AnsiConsole.Write(table);
            }
            return results.All(r => r.Reachable) ? ExitCodes.Ok : ExitCodes.Unreachable;
        });
        return ping;
    }
}
