using System.Net;
using System.Net.Sockets;

namespace Polystore.Cli.Tests;

/// <summary>polystore doctor against a store that accepts connections and never answers, and an HTML file it cannot write.</summary>
public sealed class DoctorBoundsTests : IDisposable
{
    private readonly TcpListener _hole = new(IPAddress.Loopback, 0);
    private readonly string _dir = Directory.CreateTempSubdirectory("polystore-hole-").FullName;

    public DoctorBoundsTests()
    {
        _hole.Start(); // accepts (in the kernel) and never answers
        var port = ((IPEndPoint)_hole.LocalEndpoint).Port;
        // pool_timeout is the application's wait for a connection (valid up to 1024 s); the doctor's ping waits --timeout, at least 5 s.
        File.WriteAllText(Path.Combine(_dir, "postgresql.yaml"),
            $"connection:\n  host: 127.0.0.1\n  port: {port}\n  password: hole-pw\npool:\n  pool_timeout: 40\n");
    }

    [Fact]
    public async Task Doctor_timeout_bounds_the_reachability_probe_of_a_black_holed_store()
    {
        var result = await CliRunner.RunAsync(new Dictionary<string, string?> { ["POLYSTORE_CONFIG_DIR"] = _dir }, "doctor", "--json", "--timeout", "3");

        Assert.Equal(4, result.ExitCode);
        using var report = System.Text.Json.JsonDocument.Parse(result.Stdout);
        var reachable = report.RootElement.GetProperty("findings").EnumerateArray().Single(f => f.GetProperty("check").GetString() == "postgres.reachable");
        Assert.Contains("no answer within 5 s", reachable.GetProperty("title").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_json_a_failed_html_write_still_prints_json_on_stdout()
    {
        // The folder exists (so the option validator passes) but the file cannot be created.
        var result = await CliRunner.RunAsync(new Dictionary<string, string?> { ["POLYSTORE_CONFIG_DIR"] = Polystore.Testing.TestServers.ConfigDirectory },
            "doctor", "--json", "--html", "/proc/polystore-report.html");

        Assert.Equal(2, result.ExitCode);
        using var report = System.Text.Json.JsonDocument.Parse(result.Stdout); // the report the checks made
        Assert.True(report.RootElement.TryGetProperty("findings", out _));
        Assert.Equal(2, report.RootElement.GetProperty("exit_code").GetInt32()); // the report states the exit code the process ends with
        Assert.Contains("--html: could not write /proc/polystore-report.html", result.Stderr, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _hole.Stop();
        _hole.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
