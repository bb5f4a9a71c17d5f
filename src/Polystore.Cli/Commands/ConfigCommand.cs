using System.CommandLine;
using Polystore.Core.Configuration;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore config check</c>: validate and show the effective configuration, secrets masked.</summary>
internal static class ConfigCommand
{
    public static Command Create()
    {
        var check = new Command("check", """
            Validate the config folder and print the effective settings with secrets masked.
            Every problem is listed at once with its file, line and key; exit code 2 if any.

            Sources, lowest to highest: the YAML files (with ${VAR} and ${VAR:-default}),
            POLYSTORE_POSTGRES_URL / POLYSTORE_MONGO_URL / POLYSTORE_REDIS_URL, then single keys
            such as POLYSTORE__POSTGRES__POOL__MAX_SIZE=80.
            """);
        check.SetAction(parse =>
        {
            var (config, location) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            var entries = config.Describe();
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(new
                {
                    valid = true,
                    directory = location.Directory,
                    found_by = location.Reason,
                    stores = new[] { StoreNames.Postgres, StoreNames.Mongo, StoreNames.Redis }
                        .Where(s => entries.Any(e => e.Store == s)),
                    settings = entries.GroupBy(e => e.Store).ToDictionary(
                        g => g.Key,
                        g => g.ToDictionary(e => e.Key, e => new { value = e.Value, source = e.Source.ToString() })),
                });
                return ExitCodes.Ok;
            }
            AnsiConsole.MarkupLine($"[green bold]Configuration is valid[/]: [bold]{Markup.Escape(location.Directory)}[/] (found by {Markup.Escape(location.Reason)})");
            foreach (var group in entries.GroupBy(e => e.Store))
            {
                var table = new Table().Border(TableBorder.Rounded).Title($"[bold]{group.Key}[/]").AddColumns("Key", "Value", "Source");
                foreach (var entry in group)
                {
                    var source = entry.Source.ToString();
                    table.AddRow(Markup.Escape(entry.Key), Markup.Escape(entry.Value), source == "default" ? "[grey]default[/]" : Markup.Escape(source));
                }
                AnsiConsole.Write(table);
            }
            var missing = new[] { StoreNames.Postgres, StoreNames.Mongo, StoreNames.Redis }.Where(s => entries.All(e => e.Store != s)).ToList();
            if (missing.Count > 0) AnsiConsole.MarkupLine($"[grey]Not configured: {string.Join(", ", missing)} (no {string.Join(", ", missing.Select(StoreNames.ConfigFile))}).[/]");
            return ExitCodes.Ok;
        });
        return new Command("config", "Inspect the configuration.") { check };
    }
}
