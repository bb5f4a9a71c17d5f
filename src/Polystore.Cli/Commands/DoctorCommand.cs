using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Polystore.Core;
using Polystore.Core.Diagnostics;
using Polystore.Postgres;
using Polystore.Postgres.Diagnostics;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore doctor</c>: every diagnostic check of every configured store, with evidence and a remedy.</summary>
internal static class DoctorCommand
{
    private static readonly Option<string?> Html = new("--html") { Description = "Also write a self-contained HTML report to this file.", HelpName = "FILE" };
    private static readonly Option<bool> Summary = new("--summary") { Description = "Print only the summary and the critical and warning titles." };
    private static readonly Option<double> Timeout = new("--timeout") { Description = "Seconds each check may take before it is reported as timed out (default 15).", DefaultValueFactory = _ => 15, HelpName = "SECONDS" };

    public static Command Create()
    {
        Timeout.Validators.Add(result =>
        {
            if (!CommonOptions.TryGetValue(result, out double seconds)) return;
            if (!(seconds > 0 && seconds <= 3600)) result.AddError("--timeout must be a number of seconds above 0 and at most 3600");
        });
        Html.Validators.Add(result =>
        {
            if (!CommonOptions.TryGetValue(result, out string? path)) return;
            if (string.IsNullOrWhiteSpace(path)) { result.AddError("--html needs a file name"); return; }
            var folder = Path.GetDirectoryName(Path.GetFullPath(path));
            if (folder is null || !Directory.Exists(folder)) result.AddError($"--html: the folder of {path} does not exist");
            else if (Directory.Exists(path)) result.AddError($"--html: {path} is a folder; name a file");
        });
        var doctor = new Command("doctor", """
            Run every diagnostic check on each configured store (PostgreSQL, Redis, MongoDB) and print
            each finding with its severity, the numbers behind it and the exact SQL or command that fixes it.
            Checks run concurrently, each with its own timeout; one that fails or times out becomes a finding.
            Exit code 0 when nothing is critical, 4 when any finding is critical, 2 when the config is invalid.
            """)
        {
            Html,
            Summary,
            Timeout,
            CreateExplain(),
        };
        doctor.SetAction(RunAsync);
        return doctor;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        var (config, location) = CommonOptions.LoadConfig(parse);
        if (config is null) return ExitCodes.InvalidConfig;
        var json = parse.GetValue(CommonOptions.Json);
        var timeout = parse.GetValue(Timeout);

        var htmlPath = parse.GetValue(Html) is { Length: > 0 } html ? Path.GetFullPath(html) : null;
        // A folder that is not there fails before minutes of checks, not after.
        if (htmlPath is not null && (Directory.Exists(htmlPath) || !Directory.Exists(Path.GetDirectoryName(htmlPath))))
            return CommonOptions.Fail(json, ExitCodes.InvalidConfig, $"--html: cannot write {htmlPath}: {(Directory.Exists(htmlPath) ? "it is a folder" : "its folder does not exist")}");

        await using var services = CliServices.Build(config);
        var doctor = services.GetRequiredService<PolystoreDoctor>();
        var report = await RunWithProgressAsync(doctor, new PolystoreDoctorOptions { CheckTimeout = TimeSpan.FromSeconds(timeout) }, json, cancellationToken);
        var exitCode = report.HasCritical ? ExitCodes.Critical : ExitCodes.Ok;
        var at = DateTimeOffset.UtcNow;

        string? htmlFailure = null;
        if (htmlPath is not null)
        {
            try
            {
                await File.WriteAllTextAsync(htmlPath, DoctorReport.Html(report, exitCode, at, location.Directory), cancellationToken);
                CommonOptions.Error.MarkupLine($"HTML report written to [bold]{Markup.Escape(htmlPath)}[/]");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                htmlFailure = $"--html: could not write {htmlPath}: {e.Message}";
            }
        }
        // The report is printed even when the HTML copy failed: the checks ran, and their findings are the point. The
        // exit code it states is the one the process ends with.
        if (htmlFailure is not null) exitCode = ExitCodes.InvalidConfig;
        if (json) CommonOptions.WriteJson(DoctorReport.Json(report, exitCode, at));
        else WriteTables(report, parse.GetValue(Summary), exitCode);
        if (htmlFailure is not null) CommonOptions.Error.MarkupLine($"[red]{Markup.Escape(htmlFailure)}[/]");
        return exitCode;
    }

    private static async Task<DiagnosticReport> RunWithProgressAsync(PolystoreDoctor doctor, PolystoreDoctorOptions options, bool json, CancellationToken ct)
    {
        if (json || Console.IsErrorRedirected) return await doctor.RunAsync(options, cancellationToken: ct);
        DiagnosticReport? report = null;
        await CommonOptions.Error.Progress().AutoClear(true).StartAsync(async progress =>
        {
            var task = progress.AddTask("running checks");
            report = await doctor.RunAsync(options, new SynchronousProgress(p => { task.MaxValue = Math.Max(1, p.Total); task.Value = p.Completed; }), ct);
        });
        return report!;
    }

    /// <summary>Updates the bar on the reporting thread; Spectre's progress task is thread-safe.</summary>
    private sealed class SynchronousProgress(Action<DoctorProgress> report) : IProgress<DoctorProgress>
    {
        public void Report(DoctorProgress value) => report(value);
    }

    private static void WriteTables(DiagnosticReport report, bool summaryOnly, int exitCode)
    {
        var summary = new Table().Border(TableBorder.Rounded).Title("polystore doctor: summary")
            .AddColumns("Store", "Critical", "Warning", "Info", "Checks ok", "Failed", "Timed out");
        foreach (var s in DoctorReport.Summarize(report))
        {
            summary.AddRow(s.Store,
                s.Critical > 0 ? $"[red bold]{s.Critical}[/]" : "0",
                s.Warning > 0 ? $"[yellow]{s.Warning}[/]" : "0",
                s.Info.ToString(CultureInfo.InvariantCulture),
                s.ChecksCompleted.ToString(CultureInfo.InvariantCulture),
                s.ChecksFailed > 0 ? $"[yellow]{s.ChecksFailed}[/]" : "0",
                s.ChecksTimedOut > 0 ? $"[yellow]{s.ChecksTimedOut}[/]" : "0");
        }
        AnsiConsole.Write(summary);
        if (summaryOnly)
        {
            foreach (var f in report.Findings.Where(f => f.Severity != Severity.Info))
                AnsiConsole.MarkupLine($"  {Badge(f.Severity)} [bold]{Markup.Escape(f.Check)}[/] {Markup.Escape(f.Title)}");
        }
        else
        {
            foreach (var store in DoctorReport.Stores)
            {
                var findings = report.Findings.Where(f => f.Store == store).ToList();
                if (findings.Count == 0) continue;
                var table = new Table().Border(TableBorder.Rounded).Title(store).ShowRowSeparators()
                    .AddColumn("Severity").AddColumn("Check").AddColumn(new TableColumn("Finding"))
                    .AddColumn(new TableColumn("Evidence")).AddColumn(new TableColumn("Remedy"));
                foreach (var f in findings)
                {
                    table.AddRow(Badge(f.Severity), Markup.Escape(f.Check), Markup.Escape(f.Title),
                        Markup.Escape(string.Join("\n", f.Evidence.Select(e => $"{e.Key}={e.Value}"))),
                        Markup.Escape(f.Remedy ?? ""));
                }
                AnsiConsole.Write(table);
            }
        }
        AnsiConsole.MarkupLine(report.HasCritical
            ? $"[red bold]critical findings: exit code {exitCode}[/]"
            : "[green]no critical findings[/]");
    }

    private static string Badge(Severity severity) => severity switch
    {
        Severity.Critical => "[red bold]CRITICAL[/]",
        Severity.Warning => "[yellow]warning[/]",
        _ => "[blue]info[/]",
    };

    private static Command CreateExplain()
    {
        var sql = new Argument<string>("sql") { Description = "One SQL statement. It really runs (EXPLAIN ANALYZE), inside a transaction that is rolled back." };
        var allowWrites = new Option<bool>("--allow-writes") { Description = "Let an INSERT, UPDATE or DELETE run to be measured (still rolled back). Without it the transaction is read-only." };
        var explain = new Command("explain", """
            Run EXPLAIN (ANALYZE, BUFFERS) on one statement against the primary, inside a transaction that is
            always rolled back and read-only unless --allow-writes. The server refuses more than one statement.
            Exit code 0 with the plan, 2 when the text is not one statement, 1 when PostgreSQL refuses it, 3 when unreachable.
            """) { sql, allowWrites };
        explain.SetAction(async (parse, cancellationToken) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Postgres is null) return CommonOptions.MissingStore("postgresql.yaml");
            await using var services = CliServices.Build(config);
            var writes = parse.GetValue(allowWrites);
            try
            {
                var sources = services.GetRequiredService<PostgresDataSources>();
                IReadOnlyList<string> plan;
                await using (var diagnostics = new PostgresDiagnostics(config.Postgres, applicationPool: sources.Primary))
                    plan = await diagnostics.ExplainAsync(parse.GetValue(sql)!, writes, cancellationToken: cancellationToken);
                if (parse.GetValue(CommonOptions.Json)) CommonOptions.WriteJson(new { plan, rolled_back = true, read_only = !writes });
                else
                {
                    foreach (var line in plan) Console.Out.WriteLine(line);
                    CommonOptions.Error.MarkupLine($"[grey](ran inside a {(writes ? "" : "read-only ")}transaction that was rolled back)[/]");
                }
                return ExitCodes.Ok;
            }
            catch (ArgumentException e)
            {
                return CommonOptions.Fail(parse.GetValue(CommonOptions.Json), ExitCodes.InvalidConfig, e.Message);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.SyntaxError && e.MessageText.Contains("multiple commands", StringComparison.Ordinal))
            {
                return CommonOptions.Fail(parse.GetValue(CommonOptions.Json), ExitCodes.InvalidConfig, "explain takes exactly one statement; the server found more than one");
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ReadOnlySqlTransaction)
            {
                return CommonOptions.Fail(parse.GetValue(CommonOptions.Json), ExitCodes.InvalidConfig, "the statement writes and the transaction is read-only; pass --allow-writes to measure it (it is still rolled back)");
            }
            catch (PostgresException e)
            {
                return CommonOptions.Fail(parse.GetValue(CommonOptions.Json), ExitCodes.Failure, $"PostgreSQL refused the statement: {Redactor.Redact($"{e.SqlState}: {e.MessageText}", config.Secrets())}");
            }
            catch (NpgsqlException e)
            {
                return CommonOptions.Fail(parse.GetValue(CommonOptions.Json), ExitCodes.Unreachable, $"could not reach PostgreSQL: {Redactor.Redact(e.Message, config.Secrets())}");
            }
        });
        return explain;
    }
}
