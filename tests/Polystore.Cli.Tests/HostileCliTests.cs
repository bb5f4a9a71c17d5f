using System.Net;
using System.Net.Sockets;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

/// <summary>
/// Every command, given what a careless operator or an attacker gives it: bad arguments exit 2 naming the option,
/// a store that is down or black-holed exits 3 (the doctor: 4, a critical finding), and nothing ever prints a stack
/// trace or a password.
/// </summary>
public sealed class HostileCliTests : IDisposable
{
    private const string Password = "hostile-s3cret-pw";
    private readonly TcpListener _hole = new(IPAddress.Loopback, 0);
    private readonly string _downDir = Directory.CreateTempSubdirectory("polystore-down-").FullName;
    private readonly string _holeDir = Directory.CreateTempSubdirectory("polystore-hole-").FullName;

    public HostileCliTests()
    {
        // Accepts connections and never answers: the worst kind of down.
        _hole.Start();
        var holePort = ((IPEndPoint)_hole.LocalEndpoint).Port;
        WriteConfig(_downDir, 1);
        WriteConfig(_holeDir, holePort);
    }

    private static void WriteConfig(string dir, int port)
    {
        File.WriteAllText(Path.Combine(dir, "postgresql.yaml"),
            $"connection:\n  host: 127.0.0.1\n  port: {port}\n  password: {Password}\n  command_timeout: 2\npool:\n  pool_timeout: 2\n");
        File.WriteAllText(Path.Combine(dir, "redis.yaml"),
            $"connection:\n  url: redis://127.0.0.1:{port}\n  password: {Password}\npool:\n  connection_timeout: 1\n  socket_timeout: 1\n");
    }

    private static Dictionary<string, string?> Env(string dir) => new() { ["POLYSTORE_CONFIG_DIR"] = dir };

    private static void AssertClean(CliRunner.Result result, params string[] secrets)
    {
        var all = result.Stdout + result.Stderr;
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", all, StringComparison.Ordinal);
        foreach (var secret in secrets) Assert.DoesNotContain(secret, all, StringComparison.Ordinal);
    }

    public static TheoryData<string[], string> BadArguments => new()
    {
        { ["postgres", "page", "--size", "-1"], "--size" },
        { ["postgres", "page", "--size", "2147483647"], "--size" },
        { ["postgres", "page", "--size", "abc"], "--size" },
        { ["postgres", "page", "--pages", "0"], "--pages" },
        { ["postgres", "seed", "--users", "-5"], "--users" },
        { ["postgres", "rank", "--top", "0"], "--top" },
        { ["doctor", "--timeout", "1e308"], "--timeout" },
        { ["doctor", "--timeout", "-1"], "--timeout" },
        { ["doctor", "--timeout", "NaN"], "--timeout" },
        { ["doctor", "--html", "/nonexistent/x.html"], "--html" },
        { ["outbox", "status", "--schema", "x\"; DROP TABLE t; --"], "--schema" },
        { ["outbox", "status", "--schema", ""], "--schema" },
        { ["outbox", "run", "--schema", "a b"], "--schema" },
        { ["postgres", "page", "--size", "5000"], "--size must be between 1 and 1,000" },
        { ["postgres", "page", "--cursor", "garbage"], "the page cursor is malformed" },
        { ["outbox", "prune", "--older-than", "99999999999d"], "--older-than" },
        { ["outbox", "prune", "--older-than", "Infinityd"], "--older-than" },
        { ["outbox", "prune", "--older-than", "36501d"], "--older-than" },
        { ["ping", "--dir", ""], "--dir is empty" },
        { ["ping", "--no-such-option"], "--no-such-option" },
        { ["no-such-command"], "no-such-command" },
    };

    [Theory]
    [MemberData(nameof(BadArguments))]
    public async Task A_bad_argument_exits_2_naming_it_and_prints_no_stack_trace(string[] args, string named)
    {
        var result = await CliRunner.RunAsync(Env(TestServers.ConfigDirectory), args);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(named, result.Stderr, StringComparison.Ordinal);
        AssertClean(result, TestServers.Get("PG_PASSWORD")!, TestServers.Get("REDIS_PASSWORD")!);
    }

    public static TheoryData<string[], int> StoreCommands => new()
    {
        { ["ping"], 3 },
        { ["postgres", "page"], 3 },
        { ["postgres", "rank"], 3 },
        { ["outbox", "status"], 3 },
        { ["cqrs", "demo"], 3 },
        { ["demo", "redis"], 3 },
        { ["doctor", "--timeout", "5"], 4 },
        { ["doctor", "explain", "SELECT 1"], 3 },
    };

    [Theory]
    [MemberData(nameof(StoreCommands))]
    public async Task A_store_that_refuses_connections_exits_3_without_a_trace_or_its_password(string[] args, int expected)
    {
        var result = await CliRunner.RunAsync(Env(_downDir), args);

        Assert.True(result.ExitCode == expected, $"exit {result.ExitCode}, expected {expected}\n{result.Stderr}");
        AssertClean(result, Password);
    }

    [Theory]
    [InlineData("postgres", "page")] // (ping --json reports each store's failure in its own JSON)
    [InlineData("outbox", "status")]
    [InlineData("doctor", "explain", "SELECT 1")]
    public async Task With_json_a_failure_still_prints_json_on_stdout(params string[] args)
    {
        var result = await CliRunner.RunAsync(Env(_downDir), [.. args, "--json"]);
        using var json = System.Text.Json.JsonDocument.Parse(result.Stdout);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal(result.ExitCode, error.GetProperty("exit_code").GetInt32());
        Assert.Equal(3, result.ExitCode);
        Assert.DoesNotContain(Password, error.GetProperty("message").GetString()!, StringComparison.Ordinal);

        var usage = await CliRunner.RunAsync(Env(TestServers.ConfigDirectory), "postgres", "page", "--size", "0", "--json");
        using var usageJson = System.Text.Json.JsonDocument.Parse(usage.Stdout);
        Assert.Equal(2, usageJson.RootElement.GetProperty("error").GetProperty("exit_code").GetInt32());
    }

    [Theory]
    [MemberData(nameof(StoreCommands))]
    public async Task A_black_holed_store_exits_3_without_a_trace_or_its_password(string[] args, int expected)
    {
        var result = await CliRunner.RunAsync(Env(_holeDir), args);

        Assert.True(result.ExitCode == expected, $"exit {result.ExitCode}, expected {expected}\n{result.Stderr}");
        AssertClean(result, Password);
    }

    public void Dispose()
    {
        _hole.Stop();
        _hole.Dispose();
        Directory.Delete(_downDir, recursive: true);
        Directory.Delete(_holeDir, recursive: true);
    }
}
