using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Postgres.Diagnostics;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>Doctor checks on partitioned tables, self-referencing keys, NULLS NOT DISTINCT, capped sequences and roles without pg_monitor; each test owns a unique schema and drops it.</summary>
[Trait("Requires", "DirectPostgres")]
public sealed class DoctorIndexAndSequenceTests : IAsyncLifetime
{
    private readonly string _schema = TestServers.UniqueName("doc");
    private NpgsqlDataSource _admin = null!;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _admin = NpgsqlDataSource.Create(PostgresDriverSettings.Build(DoctorTests.Settings()).ConnectionString);
        await ExecAsync($"CREATE SCHEMA \"{_schema}\"");
    }

    public async ValueTask DisposeAsync()
    {
        await ExecAsync($"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE");
        await _admin.DisposeAsync();
    }

    private async Task ExecAsync(string sql)
    {
        await using var command = _admin.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(Ct);
    }

    private string T(string table) => $"\"{_schema}\".\"{table}\"";

    private PostgresDiagnostics Doctor(PostgresDiagnosticOptions? options = null, PostgresSettings? settings = null) =>
        new(settings ?? DoctorTests.Settings(), options ?? new PostgresDiagnosticOptions { Schemas = [_schema] });

    private static Task<IReadOnlyList<Finding>> RunAsync(PostgresDiagnostics doctor, string check) =>
        doctor.Checks.Single(c => c.Name == check).Run(Ct);

    [Fact]
    public async Task Self_referencing_foreign_key_does_not_make_the_primary_key_a_duplicate_index()
    {
        // One index only (the primary key); a foreign key of the same table references it.
        await ExecAsync($"CREATE TABLE {T("node")} (id int PRIMARY KEY, parent int REFERENCES {T("node")} (id))");
        await using var doctor = Doctor();

        var findings = await RunAsync(doctor, "postgres.duplicate_indexes");

        Assert.True(findings.Count == 0,
            "false duplicate: " + string.Join(" | ", findings.Select(f => f.Title + " => " + f.Remedy)));
    }

    [Fact]
    public async Task Unused_index_on_a_partition_has_a_remedy_that_runs()
    {
        await ExecAsync($"CREATE TABLE {T("events")} (id int, kind int) PARTITION BY RANGE (id)");
        await ExecAsync($"CREATE TABLE {T("events_1")} PARTITION OF {T("events")} FOR VALUES FROM (0) TO (1000)");
        await ExecAsync($"CREATE INDEX events_kind ON {T("events")} (kind)");
        await using var doctor = Doctor();

        var finding = Assert.Single(await RunAsync(doctor, "postgres.unused_indexes"));
        var remedy = finding.Remedy!.Split("  --", 2)[0];

        // The only unused index reported is the partition's child index, which cannot be dropped on its own.
        var e = await Record.ExceptionAsync(() => ExecAsync(remedy));
        Assert.True(e is null, $"remedy '{remedy}' failed: {(e as PostgresException)?.SqlState} {e?.Message}");
    }

    [Fact]
    public async Task Duplicate_indexes_on_a_partitioned_table_have_remedies_that_run()
    {
        await ExecAsync($"CREATE TABLE {T("logs")} (id int, kind int) PARTITION BY RANGE (id)");
        await ExecAsync($"CREATE TABLE {T("logs_1")} PARTITION OF {T("logs")} FOR VALUES FROM (0) TO (1000)");
        await ExecAsync($"CREATE INDEX logs_a ON {T("logs")} (kind); CREATE INDEX logs_b ON {T("logs")} (kind);");
        await using var doctor = Doctor();

        var findings = await RunAsync(doctor, "postgres.duplicate_indexes");
        Assert.NotEmpty(findings);

        var failures = new List<string>();
        foreach (var remedy in findings.SelectMany(f => f.Remedy!.Split('\n')))
        {
            try { await ExecAsync(remedy); }
            catch (PostgresException e) { failures.Add($"{remedy} -> {e.SqlState} {e.MessageText}"); }
        }
        Assert.True(failures.Count == 0, $"{findings.Count} findings; failing remedies: " + string.Join(" | ", failures));
    }

    [Fact]
    public async Task Unique_indexes_that_differ_in_nulls_not_distinct_are_not_identical()
    {
        // They enforce different rules: dropping the NULLS NOT DISTINCT one lets duplicate NULLs in.
        await ExecAsync($"CREATE TABLE {T("u")} (v int)");
        await ExecAsync($"CREATE UNIQUE INDEX u_a_plain ON {T("u")} (v); CREATE UNIQUE INDEX u_b_nulls ON {T("u")} (v) NULLS NOT DISTINCT;");
        await using var doctor = Doctor();

        var findings = await RunAsync(doctor, "postgres.duplicate_indexes");

        Assert.True(findings.Count == 0, "reported as identical: " + string.Join(" | ", findings.Select(f => f.Title + " => " + f.Remedy)));
    }

    [Fact]
    public async Task Slow_queries_as_a_role_without_pg_monitor_complete_and_say_what_to_grant()
    {
        var role = TestServers.UniqueName("doc_role");
        var password = DoctorTests.Settings().Connection.Password ?? "";
        await ExecAsync($"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password.Replace("'", "''", StringComparison.Ordinal)}'");
        try
        {
            await using var doctor = Doctor(settings: DoctorTests.Settings(user: role));
            var report = await DiagnosticRunner.RunAsync(doctor.Checks.Where(c => c.Name == "postgres.slow_queries"), secrets: doctor.Secrets, cancellationToken: Ct);

            // It may not read shared_preload_libraries; it still reads the view (other roles' texts hidden) and says what to grant.
            var check = Assert.Single(report.Checks);
            Assert.Equal(CheckOutcome.Completed, check.Outcome);
            Assert.DoesNotContain(report.Findings, f => f.Title.Contains("could not run", StringComparison.Ordinal));
            Assert.Contains(report.Findings, f => f.Severity == Severity.Info && f.Remedy == $"GRANT pg_read_all_stats TO \"{role}\";");
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await ExecAsync($"DROP ROLE IF EXISTS \"{role}\"");
        }
    }

    [Fact]
    public async Task A_descending_sequence_near_its_minimum_is_reported()
    {
        await ExecAsync($"CREATE TABLE {T("down")} (id integer)");
        await ExecAsync($"CREATE SEQUENCE {T("down_seq")} AS integer INCREMENT BY -1 MAXVALUE -1 OWNED BY {T("down")}.id; SELECT setval('{_schema}.down_seq', -2000000000);"); // 93 % of -2^31
        await using var doctor = Doctor();

        var f = Assert.Single(await RunAsync(doctor, "postgres.sequences"));

        Assert.Equal((Severity.Critical, "down_seq", "-2147483648"), (f.Severity, f.Evidence["sequence"], f.Evidence["limit"]));
        Assert.Contains("ALTER COLUMN \"id\" TYPE bigint", f.Remedy, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cycling_sequence_wraps_by_design_unless_its_column_overflows_first()
    {
        // CYCLE: at its maximum the sequence starts again, so nearing it is no outage. A cycling bigint sequence that
        // feeds an integer column still breaks the column at 2^31-1: that one is reported.
        await ExecAsync($"CREATE SEQUENCE {T("wraps")} AS integer CYCLE; SELECT setval('{_schema}.wraps', 2100000000);"); // 98 %
        await ExecAsync($"CREATE TABLE {T("narrow")} (id integer)");
        await ExecAsync($"CREATE SEQUENCE {T("narrow_seq")} AS bigint CYCLE OWNED BY {T("narrow")}.id; SELECT setval('{_schema}.narrow_seq', 2100000000);");
        await using var doctor = Doctor();

        var f = Assert.Single(await RunAsync(doctor, "postgres.sequences"));

        Assert.Equal(("narrow_seq", "2147483647"), (f.Evidence["sequence"], f.Evidence["limit"]));
    }

    [Fact]
    public async Task Sequences_keep_the_worst_when_capped()
    {
        // Both are warnings (75 % .. 90 %); with room for one finding, the worst (89 %) must be kept.
        await ExecAsync($"CREATE SEQUENCE {T("s_mild")} AS integer; SELECT setval('{_schema}.s_mild', 1615000000);");   // 75.2 %
        await ExecAsync($"CREATE SEQUENCE {T("s_worse")} AS integer; SELECT setval('{_schema}.s_worse', 1911000000);"); // 89.0 %
        await using var doctor = Doctor(new PostgresDiagnosticOptions { Schemas = [_schema], MaxFindingsPerCheck = 1 });

        var f = Assert.Single(await RunAsync(doctor, "postgres.sequences"));

        Assert.Equal("s_worse", f.Evidence["sequence"]);
    }

    [Fact]
    public async Task Invalid_partitioned_index_remedy_makes_it_valid()
    {
        await ExecAsync($"CREATE TABLE {T("parts")} (id int, kind int) PARTITION BY RANGE (id)");
        await ExecAsync($"CREATE TABLE {T("parts_1")} PARTITION OF {T("parts")} FOR VALUES FROM (0) TO (1000)");
        // ON ONLY leaves the partitioned index invalid until every partition's index is attached.
        await ExecAsync($"CREATE INDEX parts_kind ON ONLY {T("parts")} (kind)");
        await using var doctor = Doctor();

        var f = Assert.Single(await RunAsync(doctor, "postgres.invalid_indexes"));
        var reindex = f.Remedy!.Split("  --", 2)[0];
        var e = await Record.ExceptionAsync(() => ExecAsync(reindex));

        Assert.True(e is null && (await RunAsync(doctor, "postgres.invalid_indexes")).Count == 0,
            $"after '{reindex}' ({e?.Message ?? "ran"}) the index is still invalid");
    }
}
