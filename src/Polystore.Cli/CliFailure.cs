using System.Net.Sockets;
using MongoDB.Driver;
using Npgsql;
using Polystore.Core;
using Polystore.Core.Configuration;
using StackExchange.Redis;

namespace Polystore.Cli;

/// <summary>
/// Turns an exception that escaped a command into what a user should see: one line, secrets masked, and an exit code
/// that means something (2 a usage or config problem, 3 a store that cannot be reached, 1 anything else). A stack
/// trace is printed only with <c>--verbose</c>.
/// </summary>
internal static class CliFailure
{
    public static int Report(Exception e, bool verbose, IEnumerable<string?> secrets, bool json = false)
    {
        var (code, what) = Classify(e);
        var message = Redactor.Redact($"{what}{FirstLine(e)}", secrets);
        Console.Error.WriteLine($"{CliHost.Name}: {message}");
        CommonOptions.WriteJsonError(json, code, message);
        if (verbose) Console.Error.WriteLine(Redactor.Redact(e.ToString(), secrets));
        else if (code == ExitCodes.Failure) Console.Error.WriteLine("(run again with --verbose for the stack trace)");
        return code;
    }

    internal static (int Code, string What) Classify(Exception e) => e switch
    {
        ConfigException => (ExitCodes.InvalidConfig, ""),
        PostgresException => (ExitCodes.Failure, "PostgreSQL refused: "),
        NpgsqlException or SocketException => (ExitCodes.Unreachable, "could not reach PostgreSQL: "),
        RedisConnectionException or RedisTimeoutException => (ExitCodes.Unreachable, "could not reach Redis: "),
        MongoConnectionException or MongoExecutionTimeoutException => (ExitCodes.Unreachable, "could not reach MongoDB: "),
        TimeoutException when e.Message.Contains("server selection", StringComparison.OrdinalIgnoreCase) => (ExitCodes.Unreachable, "could not reach MongoDB: "),
        TimeoutException => (ExitCodes.Unreachable, "a store did not answer in time: "),
        ArgumentException => (ExitCodes.InvalidConfig, "invalid argument: "),
        UnauthorizedAccessException or IOException => (ExitCodes.Failure, "file error: "),
        AggregateException { InnerExceptions.Count: 1 } a => Classify(a.InnerException!),
        _ when e.InnerException is { } inner && Classify(inner).Code != ExitCodes.Failure => Classify(inner),
        _ => (ExitCodes.Failure, ""),
    };

    private static string FirstLine(Exception e)
    {
        var line = e.Message.Split('\n', 2)[0].Trim();
        return line.Length > 500 ? line[..500] + "…" : line;
    }
}
