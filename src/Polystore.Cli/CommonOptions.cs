using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Polystore.Core.Configuration;
using Spectre.Console;

namespace Polystore.Cli;

/// <summary>Options every command accepts, and how each command finds and loads its configuration.</summary>
internal static class CommonOptions
{
    public static readonly Option<string?> Dir = NonEmpty(new("--dir")
    {
        Description = "Config folder with postgresql.yaml, mongodb.yaml, redis.yaml. Default: $POLYSTORE_CONFIG_DIR, else ./config (in a Polystore checkout, the config of the servers its ./run up started).",
        Recursive = true,
        HelpName = "DIR",
    });

    // An empty --dir (an unset variable in a script) must not fall back to another folder, and so other servers.
    private static Option<string?> NonEmpty(Option<string?> option)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && string.IsNullOrWhiteSpace(result.Tokens[0].Value))
                result.AddError($"{option.Name} is empty; give a config folder (or leave {option.Name} out to use the default)");
        });
        return option;
    }

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print machine-readable JSON on stdout instead of tables.",
        Recursive = true,
    };

    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "On an unexpected failure, also print the stack trace (secrets masked).",
        Recursive = true,
    };

    /// <summary>The secrets of the config this process loaded, masked in any failure it prints.</summary>
    public static IReadOnlyList<string?> LoadedSecrets { get; private set; } = [];

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Refuses, at parse time, a value of <paramref name="option"/> outside [min, max] (exit 2, naming the option).</summary>
    public static Option<int> InRange(this Option<int> option, int min, int max)
    {
        option.Validators.Add(result =>
        {
            if (!TryGetValue(result, out int value)) return;
            if (value < min || value > max) result.AddError($"{option.Name} must be between {min:N0} and {max:N0}; got {value:N0}");
        });
        return option;
    }

    /// <summary>
    /// The option's value, or false when it did not convert (System.CommandLine reports that itself, naming the
    /// option; reading the value in a validator would throw instead).
    /// </summary>
    public static bool TryGetValue<T>(System.CommandLine.Parsing.OptionResult result, out T value)
    {
        try
        {
            value = result.GetValueOrDefault<T>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default!;
            return false;
        }
    }

    /// <summary>Loads the config, or prints every problem (table or JSON) and returns null.</summary>
    public static (PolystoreConfig? Config, ConfigLocation Location) LoadConfig(ParseResult parse)
    {
        var location = ConfigLocator.Locate(parse.GetValue(Dir));
        try
        {
            var config = PolystoreConfig.Load(location.Directory);
            LoadedSecrets = [.. config.Secrets()];
            return (config, location);
        }
        catch (ConfigException e)
        {
            PrintConfigErrors(e, location, parse.GetValue(Json));
            return (null, location);
        }
    }

    public static void PrintConfigErrors(ConfigException e, ConfigLocation location, bool json) =>
        PrintErrors(e, json, "Invalid configuration", location.Directory, $" (found by {location.Reason})", "directory");

    /// <summary>Reports the problems of a file named on the command line (not the config folder), such as <c>--indexes</c>.</summary>
    public static void PrintFileErrors(ConfigException e, string what, string file, bool json) =>
        PrintErrors(e, json, $"Invalid {what}", file, "", "file");

    // originKey names the JSON property that holds origin: "directory" for the config folder, "file" for a file.
    private static void PrintErrors(ConfigException e, bool json, string title, string origin, string originNote, string originKey)
    {
        if (json)
        {
            WriteJson(new Dictionary<string, object>
            {
                ["valid"] = false,
                [originKey] = origin,
                ["errors"] = e.Errors.Select(x => new
                {
                    file = x.Source.File,
                    line = x.Source.Line,
                    column = x.Source.Column,
                    environment_variable = x.Source.EnvironmentVariable,
                    key = x.KeyPath,
                    message = x.Message,
                }),
            });
            return;
        }
        var console = Error;
        console.MarkupLine($"[red bold]{Markup.Escape(title)}[/] in [bold]{Markup.Escape(origin)}[/]{Markup.Escape(originNote)}: {e.Errors.Count} problem{(e.Errors.Count == 1 ? "" : "s")}");
        // One compiler-style line per problem: readable, greppable, and never wrapped mid-key.
        foreach (var error in e.Errors)
        {
            var where = error.Source.EnvironmentVariable is { } variable ? $"${variable}"
                : error.Source.File is null ? null
                : error.Source.Line > 0 ? $"{error.Source.File}:{error.Source.Line}:{error.Source.Column}" : error.Source.File;
            var prefix = where is null ? "" : $"[yellow]{Markup.Escape(where)}[/]: ";
            var key = error.KeyPath.Length > 0 ? $"[bold]{Markup.Escape(error.KeyPath)}[/]: " : "";
            console.MarkupLine($"  {prefix}{key}{Markup.Escape(error.Message)}");
        }
    }

    /// <summary>Reports that the command needs a store the config folder does not configure; returns exit code 2.</summary>
    public static int MissingStore(string file)
    {
        Error.MarkupLine($"[red]this command needs {file} in the config folder[/] (or the store's POLYSTORE_*_URL variable)");
        return ExitCodes.InvalidConfig;
    }

    public static void WriteJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>
    /// A command that ends in failure: the message on stderr and, with --json, <c>{"error": {"exit_code", "message"}}</c>
    /// on stdout, so a script reading stdout gets JSON whatever happened. Returns <paramref name="exitCode"/>.
    /// </summary>
    public static int Fail(bool json, int exitCode, string message)
    {
        Error.MarkupLine($"[red]{Markup.Escape(message)}[/]");
        WriteJsonError(json, exitCode, message);
        return exitCode;
    }

    /// <summary>With --json, the error object on stdout (the message is already on stderr).</summary>
    public static void WriteJsonError(bool json, int exitCode, string message)
    {
        if (json) WriteJson(new { error = new { exit_code = exitCode, message } });
    }

    /// <summary>Diagnostics and errors go to stderr so that stdout stays clean for --json.</summary>
    public static readonly IAnsiConsole Error = CreateError();

    private static IAnsiConsole CreateError()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        if (Console.IsErrorRedirected) console.Profile.Width = RedirectedWidth;
        return console;
    }

    /// <summary>Piped output is read by programs and logs: do not wrap it at 80 columns.</summary>
    public static int RedirectedWidth =>
        int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns > 40 ? columns : 200;

    /// <summary>Call once at start-up.</summary>
    public static void ConfigureConsole()
    {
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = RedirectedWidth;
    }
}
