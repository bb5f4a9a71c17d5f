using System.Text.Json;
using Npgsql;
using Polystore.Cli.Commands;
using Polystore.Core.Diagnostics;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

public sealed class DoctorCommandTests
{
    private static Dictionary<string, string?> Env => new() { ["POLYSTORE_CONFIG_DIR"] = TestServers.ConfigDirectory };

    private static string[] Secrets => [TestServers.Get("PG_PASSWORD")!, TestServers.Get("REDIS_PASSWORD")!];

    [Fact]
    public async Task Json_has_the_summary_checks_and_findings_and_the_exit_code_follows_criticals()
    {
        var result = await CliRunner.RunAsync(Env, "doctor", "--json", "--timeout", "30");

        Assert.True(result.ExitCode is 0 or 4, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        var summary = root.GetProperty("summary");
        var critical = summary.GetProperty("critical").GetInt32();
        Assert.Equal(critical > 0 ? 4 : 0, result.ExitCode);
        Assert.Equal(result.ExitCode, root.GetProperty("exit_code").GetInt32());
        Assert.Equal(["postgres", "redis", "mongo"], summary.GetProperty("stores").EnumerateArray().Select(s => s.GetProperty("store").GetString()));
        var checks = root.GetProperty("checks").EnumerateArray().ToList();
        Assert.Equal(18 + 9 + (TestServers.Mongo is null ? 0 : 4), checks.Count);
        Assert.All(checks, c => Assert.Equal("completed", c.GetProperty("outcome").GetString()));
        var findings = root.GetProperty("findings").EnumerateArray().ToList();
        Assert.Equal(summary.GetProperty("critical").GetInt32() + summary.GetProperty("warning").GetInt32() + summary.GetProperty("info").GetInt32(), findings.Count);
        foreach (var f in findings)
        {
            Assert.Contains(f.GetProperty("severity").GetString(), new[] { "info", "warning", "critical" });
            Assert.False(string.IsNullOrEmpty(f.GetProperty("check").GetString()));
            Assert.Equal(JsonValueKind.Object, f.GetProperty("evidence").ValueKind);
        }
        if (TestServers.Mongo is null) Assert.Contains(findings, f => f.GetProperty("check").GetString() == "mongo.configured");
        Assert.Contains(findings, f => f.GetProperty("check").GetString() == "postgres.connections");
        foreach (var secret in Secrets) Assert.DoesNotContain(secret, result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Html_report_puts_the_summary_first_then_each_store_and_tables_go_to_stdout()
    {
        using var folder = TempFolder.Create("polystore-doctor-");
        var path = Path.Combine(folder.FullName, "report.html");

        var result = await CliRunner.RunAsync(Env, "doctor", "--html", path, "--timeout", "30");

        Assert.True(result.ExitCode is 0 or 4, result.Stderr);
        var html = await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken);
        Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
        var summary = html.IndexOf("<h2 id=\"summary\">", StringComparison.Ordinal);
        var pg = html.IndexOf("<h2 id=\"postgres\">", StringComparison.Ordinal);
        var redis = html.IndexOf("<h2 id=\"redis\">", StringComparison.Ordinal);
        Assert.True(summary > 0 && pg > summary && redis > pg, "summary, then postgres, then redis");
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("http", html.Replace("http-equiv", "", StringComparison.Ordinal), StringComparison.Ordinal); // self-contained: no external resources
        Assert.Contains("polystore doctor: summary", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("postgres.connections", result.Stdout, StringComparison.Ordinal);
        foreach (var secret in Secrets) Assert.DoesNotContain(secret, html + result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Html_escapes_everything_that_came_from_a_server()
    {
        var finding = new Finding("postgres", "postgres.unused_indexes", Severity.Critical, "Index <script>alert(1)</script> & co",
            new Dictionary<string, string> { ["index"] = "<b>\"x\"</b>" }, "DROP INDEX CONCURRENTLY \"s\".\"<i>\";");
        var report = new DiagnosticReport([finding], [new CheckResult("postgres", "postgres.unused_indexes", CheckOutcome.Completed, TimeSpan.FromMilliseconds(3), 1)]);

        var html = DoctorReport.Html(report, 4, DateTimeOffset.UnixEpoch, "/cfg/<dir>");

        Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>", html, StringComparison.Ordinal);
        Assert.Contains("Index &lt;script&gt;alert(1)&lt;/script&gt; &amp; co", html, StringComparison.Ordinal);
        Assert.Contains("&lt;b&gt;&quot;x&quot;&lt;/b&gt;", html, StringComparison.Ordinal);
        Assert.Contains("DROP INDEX CONCURRENTLY &quot;s&quot;.&quot;&lt;i&gt;&quot;;", html, StringComparison.Ordinal);
        Assert.Contains("/cfg/&lt;dir&gt;", html, StringComparison.Ordinal);
        Assert.Contains("1 critical, 0 warning, 0 info", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_critical_finding_exits_4_and_is_named_in_the_summary()
    {
        // Provoke a critical condition: a serial column 95% of the way to overflow, in a schema of our own.
        var schema = TestServers.UniqueName("clicrit");
        var builder = PostgresDriverSettings.Build(TestServers.Postgres);
        (builder.Host, builder.Port, builder.LoadBalanceHosts) = (TestServers.Postgres.Connection.Host, TestServers.Postgres.Connection.Port, false);
        await using var admin = NpgsqlDataSource.Create(builder.ConnectionString);
        await using (var create = admin.CreateCommand($"CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".t (id serial); SELECT setval('\"{schema}\".t_id_seq', 2040000000);"))
            await create.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        try
        {
            var result = await CliRunner.RunAsync(Env, "doctor", "--summary", "--timeout", "30");

            Assert.Equal(4, result.ExitCode);
            Assert.Contains("CRITICAL postgres.sequences", result.Stdout, StringComparison.Ordinal);
            Assert.Contains($"Sequence {schema}.t_id_seq", result.Stdout, StringComparison.Ordinal);
            Assert.Contains("critical findings: exit code 4", result.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            await using var drop = admin.CreateCommand($"DROP SCHEMA \"{schema}\" CASCADE");
            await drop.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task Explain_prints_the_plan_and_refuses_a_second_statement()
    {
        var ok = await CliRunner.RunAsync(Env, "doctor", "explain", "SELECT count(*) FROM generate_series(1, 1000)", "--json");
        Assert.Equal(0, ok.ExitCode);
        using var json = JsonDocument.Parse(ok.Stdout);
        Assert.True(json.RootElement.GetProperty("rolled_back").GetBoolean());
        Assert.Contains(json.RootElement.GetProperty("plan").EnumerateArray(), l => l.GetString()!.Contains("actual time", StringComparison.Ordinal));

        var two = await CliRunner.RunAsync(Env, "doctor", "explain", "SELECT 1; DROP TABLE x");
        Assert.Equal(2, two.ExitCode);
        Assert.Contains("exactly one statement", two.Stderr, StringComparison.Ordinal);

        var bad = await CliRunner.RunAsync(Env, "doctor", "explain", "SELECT * FROM no_such_table_here");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("42P01", bad.Stderr, StringComparison.Ordinal);

        var write = await CliRunner.RunAsync(Env, "doctor", "explain", "UPDATE pg_catalog.pg_description SET description = description WHERE false");
        Assert.Equal(2, write.ExitCode);
        Assert.Contains("--allow-writes", write.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_store_is_one_critical_finding_not_a_stack_trace()
    {
        using var folder = TempFolder.Create("polystore-doctor-down-");
        var dir = folder.FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "redis.yaml"), "connection:\n  url: redis://127.0.0.1:1\n  password: pw-not-printed\npool:\n  connection_timeout: 1\n", TestContext.Current.CancellationToken);

        var result = await CliRunner.RunAsync(null, "doctor", "--dir", dir, "--json");

        Assert.Equal(4, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var findings = json.RootElement.GetProperty("findings").EnumerateArray().ToList();
        var down = Assert.Single(findings, f => f.GetProperty("severity").GetString() == "critical");
        Assert.Equal("redis.reachable", down.GetProperty("check").GetString());
        Assert.Contains(findings, f => f.GetProperty("check").GetString() == "postgres.configured");
        Assert.DoesNotContain("pw-not-printed", result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Checks_that_overrun_their_timeout_become_findings_and_the_report_still_prints()
    {
        var result = await CliRunner.RunAsync(Env, "doctor", "--json", "--timeout", "0.001");

        Assert.Equal(0, result.ExitCode); // timeouts are warnings, not criticals
        using var json = JsonDocument.Parse(result.Stdout);
        var checks = json.RootElement.GetProperty("checks").EnumerateArray().ToList();
        Assert.Contains(checks, c => c.GetProperty("outcome").GetString() == "timed_out");
        var findings = json.RootElement.GetProperty("findings").EnumerateArray().ToList();
        foreach (var check in checks.Where(c => c.GetProperty("outcome").GetString() == "timed_out"))
        {
            var name = check.GetProperty("name").GetString();
            var f = Assert.Single(findings, x => x.GetProperty("check").GetString() == name);
            Assert.Equal("warning", f.GetProperty("severity").GetString());
            Assert.Contains("did not finish within", f.GetProperty("title").GetString(), StringComparison.Ordinal);
        }
    }
}
