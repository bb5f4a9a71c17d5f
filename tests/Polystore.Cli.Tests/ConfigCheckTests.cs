using System.Text.Json;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

public sealed class ConfigCheckTests
{
    [Fact]
    public async Task Malformed_config_exits_2_with_one_line_per_problem()
    {
        using var folder = TempFolder.Create("polystore-cli-");
        var dir = folder.FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "postgresql.yaml"), "connection:\n  port: abc\n  password: hunter22\npool:\n  max_szie: 3\n", TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(Path.Combine(dir, "redis.yaml"), "connection:\n  url: http://x\n", TestContext.Current.CancellationToken);

        var result = await CliRunner.RunAsync(null, "config", "check", "--dir", dir, "--json");

        Assert.Equal(2, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var errors = json.RootElement.GetProperty("errors").EnumerateArray()
            .Select(e => $"{e.GetProperty("file").GetString()}:{e.GetProperty("line").GetInt32()}:{e.GetProperty("key").GetString()}").ToList();
        Assert.Equal(["postgresql.yaml:2:connection.port", "postgresql.yaml:5:pool.max_szie", "redis.yaml:2:connection.url"], errors);
        Assert.DoesNotContain("hunter22", result.Stdout + result.Stderr, StringComparison.Ordinal);

        var table = await CliRunner.RunAsync(null, "config", "check", "--dir", dir);
        Assert.Equal(2, table.ExitCode);
        Assert.Contains("postgresql.yaml:5:3", table.Stderr, StringComparison.Ordinal);
        Assert.Contains("did you mean 'max_size'", table.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task From_a_child_folder_the_command_finds_the_running_run_up_config_of_a_parent()
    {
        // parent/.polystore/config, marked running as ./run up leaves it; the command runs in parent/app/deeper.
        var parent = Directory.CreateTempSubdirectory("polystore-cli-walk-").FullName;
        try
        {
            var config = Directory.CreateDirectory(Path.Combine(parent, ".polystore", "config")).FullName;
            await File.WriteAllTextAsync(Path.Combine(config, "redis.yaml"), "connection:\n  url: redis://127.0.0.1:1\n", TestContext.Current.CancellationToken);
            await File.WriteAllTextAsync(Path.Combine(parent, ".polystore", "running"), "", TestContext.Current.CancellationToken);
            var child = Directory.CreateDirectory(Path.Combine(parent, "app", "deeper")).FullName;

            var result = await CliRunner.RunInAsync(child, new Dictionary<string, string?> { ["POLYSTORE_CONFIG_DIR"] = null }, "config", "check", "--json");

            Assert.Equal(0, result.ExitCode);
            using var json = JsonDocument.Parse(result.Stdout);
            Assert.Equal(config, json.RootElement.GetProperty("directory").GetString());
            Assert.Equal("servers started by ./run up", json.RootElement.GetProperty("found_by").GetString());
        }
        finally
        {
            Directory.Delete(parent, recursive: true);
        }
    }

    [Fact]
    public async Task Valid_config_prints_effective_settings_with_secrets_masked()
    {
        var password = TestServers.Postgres.Connection.Password!;
        var result = await CliRunner.RunAsync(new Dictionary<string, string?> { ["POLYSTORE_CONFIG_DIR"] = TestServers.ConfigDirectory }, "config", "check", "--json");
        Assert.Equal(0, result.ExitCode);
        Assert.DoesNotContain(password, result.Stdout, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal("***", json.RootElement.GetProperty("settings").GetProperty("postgres").GetProperty("connection.password").GetProperty("value").GetString());
        Assert.Equal("POLYSTORE_CONFIG_DIR", json.RootElement.GetProperty("found_by").GetString());
    }

    [Fact]
    public async Task Dir_option_wins_over_the_environment()
    {
        var result = await CliRunner.RunAsync(new Dictionary<string, string?> { ["POLYSTORE_CONFIG_DIR"] = "/nonexistent" }, "config", "check", "--json", "--dir", TestServers.ConfigDirectory);
        Assert.Equal(0, result.ExitCode);
    }

    [Fact]
    public async Task Help_teaches_the_sources_and_exit_codes()
    {
        var root = await CliRunner.RunAsync(null, "--help");
        Assert.Equal(0, root.ExitCode);
        Assert.Contains("Exit codes", root.Stdout, StringComparison.Ordinal);
        var check = await CliRunner.RunAsync(null, "config", "check", "--help");
        Assert.Contains("POLYSTORE__POSTGRES__POOL__MAX_SIZE", check.Stdout, StringComparison.Ordinal);
    }
}

public sealed class MissingStoreTests
{
    [Theory]
    [InlineData("outbox", "status")]
    [InlineData("cqrs", "demo")]
    [InlineData("postgres", "rank")]
    public async Task A_command_whose_store_is_not_configured_exits_2_and_names_the_file(string command, string subcommand)
    {
        using var folder = TempFolder.Create("polystore-cli-");
        var dir = folder.FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "redis.yaml"), "connection:\n  url: redis://127.0.0.1:1\n", TestContext.Current.CancellationToken);
        var result = await CliRunner.RunAsync(null, command, subcommand, "--dir", dir);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("needs postgresql.yaml", result.Stderr, StringComparison.Ordinal);
    }
}

public sealed class PingTests
{
    [Fact]
    public async Task Ping_reports_every_configured_store()
    {
        var result = await CliRunner.RunAsync(new Dictionary<string, string?> { ["POLYSTORE_CONFIG_DIR"] = TestServers.ConfigDirectory }, "ping", "--json");
        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var stores = json.RootElement.EnumerateArray().Select(e => (e.GetProperty("store").GetString(), e.GetProperty("reachable").GetBoolean())).ToList();
        Assert.Contains(("postgres", true), stores);
        Assert.Contains(("redis", true), stores);
    }

    [Fact]
    public async Task A_down_store_is_reported_with_exit_code_3_not_a_stack_trace()
    {
        using var folder = TempFolder.Create("polystore-cli-");
        var dir = folder.FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "redis.yaml"), "connection:\n  url: redis://127.0.0.1:1\n  password: hunter22\npool:\n  connection_timeout: 1\n", TestContext.Current.CancellationToken);
        var result = await CliRunner.RunAsync(null, "ping", "--dir", dir);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("down", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stdout + result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter22", result.Stdout + result.Stderr, StringComparison.Ordinal);
    }
}
