using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Postgres.Diagnostics;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>Provokes each condition the PostgreSQL checks look for, in a schema of its own, and asserts the finding.</summary>
// Not run through PgBouncer: the doctor reads server-wide views (pg_stat_activity, pg_stat_statements, which it resets) and provokes sessions it then finds by backend pid; through transaction pooling those are PgBouncer's server connections.
[Trait("Requires", "DirectPostgres")]
public sealed class DoctorTests : IAsyncLifetime
{
    private readonly string _schema = TestServers.UniqueName("doc");
    private NpgsqlDataSource _admin = null!;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _admin = NpgsqlDataSource.Create(PostgresDriverSettings.Build(Settings()).ConnectionString);
        await ExecAsync($"CREATE SCHEMA \"{_schema}\"");
    }

    public async ValueTask DisposeAsync()
    {
        await ExecAsync($"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE");
        await _admin.DisposeAsync();
    }

    /// <summary>The private server's settings, primary only unless <paramref name="withReplicas"/>; optionally another role, database or application name.</summary>
    internal static PostgresSettings Settings(string? user = null, string? database = null, string? applicationName = null, bool withReplicas = false)
    {
        var s = TestServers.Postgres;
        var c = s.Connection;
        return new PostgresSettings
        {
            Connection = new PostgresConnectionSettings
            {
                Host = c.Host, Port = c.Port, Database = database ?? c.Database, User = user ?? c.User, Password = c.Password,
                Sslmode = c.Sslmode, ApplicationName = applicationName ?? c.ApplicationName, CommandTimeout = c.CommandTimeout,
            },
            Pool = s.Pool,
            Performance = s.Performance,
            Replication = withReplicas ? s.Replication : new PostgresReplicationSettings(),
        };
    }

    private async Task ExecAsync(string sql)
    {
        await using var command = _admin.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(Ct);
    }

    private string T(string table) => $"\"{_schema}\".\"{table}\"";

    private PostgresDiagnostics Doctor(PostgresDiagnosticOptions? options = null, PostgresSettings? settings = null, NpgsqlDataSource? pool = null) =>
        new(settings ?? Settings(), options ?? new PostgresDiagnosticOptions { Schemas = [_schema] }, pool);

    private static Task<IReadOnlyList<Finding>> RunAsync(PostgresDiagnostics doctor, string check) =>
        doctor.Checks.Single(c => c.Name == check).Run(Ct);

    /// <summary>Re-runs a check until a finding matches: statistics and sessions become visible asynchronously.</summary>
    private static async Task<Finding> WaitForAsync(PostgresDiagnostics doctor, string check, Func<Finding, bool> match)
    {
        IReadOnlyList<Finding> last = [];
        for (var i = 0; i < 150; i++)
        {
            last = await RunAsync(doctor, check);
            if (last.FirstOrDefault(match) is { } found) return found;
            await Task.Delay(200, Ct);
        }
        Assert.Fail($"no matching {check} finding; saw: {string.Join(" | ", last.Select(f => f.Title))}");
        return null!;
    }

    [Fact]
    public async Task Unused_index_is_reported_with_size_and_a_quoted_drop_but_unique_indexes_are_not()
    {
        await ExecAsync($"CREATE TABLE {T("orders")} (id int PRIMARY KEY, code text UNIQUE, status int); INSERT INTO {T("orders")} SELECT g, 'c' || g, g % 5 FROM generate_series(1, 2000) g;");
        await ExecAsync($"CREATE INDEX \"Idx\"\"Status\" ON {T("orders")} (status)");
        await using var doctor = Doctor();

        var findings = await RunAsync(doctor, "postgres.unused_indexes");

        var f = Assert.Single(findings);
        Assert.Equal(("Idx\"Status", "orders", "0"), (f.Evidence["index"], f.Evidence["table"], f.Evidence["idx_scan"]));
        Assert.True(long.Parse(f.Evidence["size_bytes"], System.Globalization.CultureInfo.InvariantCulture) >= 8192);
        Assert.StartsWith($"DROP INDEX CONCURRENTLY \"{_schema}\".\"Idx\"\"Status\";", f.Remedy, StringComparison.Ordinal);
        Assert.Equal(Severity.Info, f.Severity); // below 1 MiB
    }

    [Fact]
    public async Task Duplicate_and_invalid_indexes_are_reported()
    {
        await ExecAsync($"CREATE TABLE {T("dup")} (id int PRIMARY KEY, v int); INSERT INTO {T("dup")} VALUES (1, 7), (2, 7);");
        await ExecAsync($"CREATE INDEX dup_v_a ON {T("dup")} (v); CREATE INDEX dup_v_b ON {T("dup")} (v);");
        // A unique index over duplicate values fails when built concurrently and stays behind, invalid.
        var e = await Assert.ThrowsAsync<PostgresException>(() => ExecAsync($"CREATE UNIQUE INDEX CONCURRENTLY dup_v_unique ON {T("dup")} (v)"));
        Assert.Equal(PostgresErrorCodes.UniqueViolation, e.SqlState);
        await using var doctor = Doctor();

        var dup = Assert.Single(await RunAsync(doctor, "postgres.duplicate_indexes"));
        Assert.Equal(("dup_v_a, dup_v_b", "dup_v_a"), (dup.Evidence["indexes"], dup.Evidence["keep"]));
        Assert.Equal($"DROP INDEX CONCURRENTLY \"{_schema}\".\"dup_v_b\";", dup.Remedy);

        var invalid = Assert.Single(await RunAsync(doctor, "postgres.invalid_indexes"));
        Assert.Equal("dup_v_unique", invalid.Evidence["index"]);
        Assert.StartsWith($"REINDEX INDEX CONCURRENTLY \"{_schema}\".\"dup_v_unique\";", invalid.Remedy, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Blocked_query_is_reported_with_its_blocker_and_both_queries()
    {
        await ExecAsync($"CREATE TABLE {T("locked")} (id int)");
        await using var holder = await _admin.OpenConnectionAsync(Ct);
        await using var tx = await holder.BeginTransactionAsync(Ct);
        await using (var lockIt = new NpgsqlCommand($"LOCK TABLE {T("locked")} IN ACCESS EXCLUSIVE MODE", holder, tx))
            await lockIt.ExecuteNonQueryAsync(Ct);
        await using var waiter = await _admin.OpenConnectionAsync(Ct);
        var waiterPid = waiter.ProcessID;
        var blocked = Task.Run(async () =>
        {
            await using var select = new NpgsqlCommand($"SELECT count(*) /* blocked-{_schema} */ FROM {T("locked")}", waiter);
            return await select.ExecuteScalarAsync(Ct);
        }, Ct);
        await using var doctor = Doctor();

        var f = await WaitForAsync(doctor, "postgres.blocked", x => x.Evidence["blocked_pid"] == waiterPid.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(holder.ProcessID.ToString(System.Globalization.CultureInfo.InvariantCulture), f.Evidence["blocking_pid"]);
        Assert.Contains($"blocked-{_schema}", f.Evidence["blocked_query"], StringComparison.Ordinal);
        Assert.Contains("LOCK TABLE", f.Evidence["blocking_query"], StringComparison.Ordinal);
        Assert.Equal("AccessShareLock", f.Evidence["lock_mode"]);
        Assert.Equal("idle in transaction", f.Evidence["blocking_state"]);
        Assert.StartsWith($"SELECT pg_cancel_backend({holder.ProcessID});", f.Remedy, StringComparison.Ordinal);
        await tx.RollbackAsync(Ct);
        Assert.Equal(0L, await blocked);
    }

    [Fact]
    public async Task Long_running_query_is_reported_and_its_remedy_cancels_it()
    {
        await using var sleeper = await _admin.OpenConnectionAsync(Ct);
        var pid = sleeper.ProcessID;
        var marker = $"slow-{_schema}";
        var sleeping = Task.Run(async () =>
        {
            await using var sleep = new NpgsqlCommand($"SELECT pg_sleep(60) /* {marker} */", sleeper) { CommandTimeout = 120 };
            await sleep.ExecuteNonQueryAsync(Ct);
        }, Ct);
        await using var doctor = Doctor(new PostgresDiagnosticOptions { LongRunningAfter = TimeSpan.FromSeconds(1) });

        var f = await WaitForAsync(doctor, "postgres.long_running", x => x.Evidence["query"].Contains(marker, StringComparison.Ordinal));

        Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), f.Evidence["pid"]);
        Assert.True(double.Parse(f.Evidence["running_s"], System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.Equal("Timeout:PgSleep", f.Evidence["wait_event"]);
        Assert.Equal(Severity.Warning, f.Severity);
        // Run the remedy exactly as printed (its first statement).
        await ExecAsync(f.Remedy!.Split("   --")[0]);
        var e = await Assert.ThrowsAsync<PostgresException>(() => sleeping);
        Assert.Equal(PostgresErrorCodes.QueryCanceled, e.SqlState);
    }

    [Fact]
    public async Task Idle_in_transaction_session_is_flagged_with_a_terminate_remedy()
    {
        await using var idle = await _admin.OpenConnectionAsync(Ct);
        await using var tx = await idle.BeginTransactionAsync(Ct);
        await using (var cmd = new NpgsqlCommand($"SELECT 1 /* idle-{_schema} */", idle, tx)) await cmd.ExecuteScalarAsync(Ct);
        await using var doctor = Doctor(new PostgresDiagnosticOptions { IdleInTransactionAfter = TimeSpan.FromMilliseconds(300) });

        var f = await WaitForAsync(doctor, "postgres.idle_in_transaction", x => x.Evidence["pid"] == idle.ProcessID.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal("idle in transaction", f.Evidence["state"]);
        Assert.Contains($"idle-{_schema}", f.Evidence["last_query"], StringComparison.Ordinal);
        Assert.StartsWith($"SELECT pg_terminate_backend({idle.ProcessID});", f.Remedy, StringComparison.Ordinal);
        await tx.RollbackAsync(Ct);

        var connections = Assert.Single(await RunAsync(doctor, "postgres.connections"));
        Assert.Equal(Severity.Info, connections.Severity);
        Assert.True(int.Parse(connections.Evidence["max_connections"], System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Contains("state.active", connections.Evidence.Keys);
    }

    [Fact]
    public async Task Slow_query_from_pg_stat_statements_is_reported_with_its_text()
    {
        // pg_stat_statements merges statements that differ only in constants and comments: a table of
        // this test's own schema makes the statement (and its text) unique to this run.
        var marker = _schema;
        await ExecAsync($"CREATE TABLE {T("one")} (id int); INSERT INTO {T("one")} VALUES (1);");
        await ExecAsync($"SELECT pg_sleep(0.3) FROM {T("one")}");
        await using var doctor = Doctor(new PostgresDiagnosticOptions { SlowQueryMeanMs = 250, MaxFindingsPerCheck = 1000 });

        var f = await WaitForAsync(doctor, "postgres.slow_queries", x => x.Evidence.TryGetValue("query", out var q) && q.Contains(marker, StringComparison.Ordinal));

        Assert.Equal(Severity.Warning, f.Severity);
        Assert.True(double.Parse(f.Evidence["mean_ms"], System.Globalization.CultureInfo.InvariantCulture) >= 250);
        Assert.Equal("1", f.Evidence["calls"]);
    }

    [Fact]
    public async Task Sequential_scans_and_stale_statistics_are_reported_and_analyze_clears_them()
    {
        await ExecAsync($"CREATE TABLE {T("scanned")} (id int, v int) WITH (autovacuum_enabled = false); INSERT INTO {T("scanned")} SELECT g, g % 100 FROM generate_series(1, 3000) g;");
        await using (var conn = await _admin.OpenConnectionAsync(Ct))
        {
            for (var i = 0; i < 12; i++)
            {
                await using var scan = new NpgsqlCommand($"SELECT count(*) FROM {T("scanned")} WHERE v = {i}", conn);
                await scan.ExecuteScalarAsync(Ct);
            }
            // Push this backend's statistics to shared memory when it next goes idle.
            await using var flush = new NpgsqlCommand("SELECT pg_stat_force_next_flush()", conn);
            await flush.ExecuteNonQueryAsync(Ct);
        }
        await using var doctor = Doctor(new PostgresDiagnosticOptions { Schemas = [_schema], SeqScanMinScans = 10, SeqScanMinRows = 1000 });

        var scans = await WaitForAsync(doctor, "postgres.seq_scans", x => x.Evidence["table"] == "scanned" && long.Parse(x.Evidence["seq_scan"], System.Globalization.CultureInfo.InvariantCulture) >= 12);
        Assert.Equal("3000", scans.Evidence["rows_per_seq_scan"]);
        Assert.Contains($"CREATE INDEX CONCURRENTLY ON {T("scanned")} (<filtered column>);", scans.Remedy, StringComparison.Ordinal);

        var stale = await WaitForAsync(doctor, "postgres.stale_statistics", x => x.Evidence["table"] == "scanned");
        Assert.Equal(("3000", "3000", "never"), (stale.Evidence["n_mod_since_analyze"], stale.Evidence["n_live_tup"], stale.Evidence["last_analyze"]));
        Assert.Equal($"ANALYZE {T("scanned")};", stale.Remedy);

        await ExecAsync(stale.Remedy!);
        for (var i = 0; i < 50 && (await RunAsync(doctor, "postgres.stale_statistics")).Count > 0; i++) await Task.Delay(200, Ct);
        Assert.Empty(await RunAsync(doctor, "postgres.stale_statistics"));
    }

    [Fact]
    public async Task Serial_column_near_overflow_is_critical_with_a_bigint_remedy()
    {
        await ExecAsync($"CREATE TABLE {T("counters")} (id serial PRIMARY KEY, note text)");
        await ExecAsync($"SELECT setval('{_schema}.counters_id_seq', 2000000000)");
        await using var doctor = Doctor();

        var f = Assert.Single(await RunAsync(doctor, "postgres.sequences"));

        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal(("2000000000", "2147483647", "integer", "93.1%"), (f.Evidence["last_value"], f.Evidence["limit"], f.Evidence["column_type"], f.Evidence["used"]));
        Assert.StartsWith($"ALTER TABLE {T("counters")} ALTER COLUMN \"id\" TYPE bigint;", f.Remedy, StringComparison.Ordinal);
        Assert.Contains($"ALTER SEQUENCE \"{_schema}\".\"counters_id_seq\" AS bigint;", f.Remedy, StringComparison.Ordinal);
    }

    [Fact]
    public async Task As_pg_monitor_every_check_runs_and_it_says_what_it_could_not_see()
    {
        await ExecAsync($"CREATE TABLE {T("private")} (id bigserial PRIMARY KEY)");
        await ExecAsync($"SELECT setval('{_schema}.private_id_seq', 42)");
        var settings = Settings(user: "polystore_monitor");
        await using var doctor = Doctor(settings: settings);

        var report = await DiagnosticRunner.RunAsync(doctor.Checks, secrets: doctor.Secrets, cancellationToken: Ct);

        Assert.All(report.Checks, c => Assert.Equal(CheckOutcome.Completed, c.Outcome));
        var access = Assert.Single(report.Findings, f => f.Check == "postgres.access");
        Assert.Equal(("polystore_monitor", "False", "True"), (access.Evidence["role"], access.Evidence["superuser"], access.Evidence["pg_monitor"]));
        Assert.Contains("cannot see", access.Title, StringComparison.Ordinal);
        var hidden = Assert.Single(report.Findings, f => f.Check == "postgres.sequences");
        Assert.Equal(Severity.Info, hidden.Severity);
        Assert.Equal("1", hidden.Evidence["hidden_sequences"]);
        Assert.Contains($"{_schema}.private_id_seq", hidden.Title, StringComparison.Ordinal);
        Assert.Equal($"GRANT SELECT ON ALL SEQUENCES IN SCHEMA \"{_schema}\" TO \"polystore_monitor\";", hidden.Remedy);
        var password = settings.Connection.Password!;
        Assert.All(report.Findings, f => Assert.DoesNotContain(password, f.Title + f.Remedy + string.Concat(f.Evidence.Values), StringComparison.Ordinal));
    }

    [Fact]
    public async Task Pool_saturation_is_read_from_npgsql_meters_and_the_server_view()
    {
        var app = TestServers.UniqueName("pool");
        await using var pool = PostgresDataSources.Create(Settings(applicationName: app));
        var held = new List<NpgsqlConnection>();
        for (var i = 0; i < 3; i++) held.Add(await pool.OpenConnectionAsync(Ct));
        try
        {
            await using var doctor = Doctor(settings: Settings(applicationName: app), pool: pool.Primary);
            var findings = await RunAsync(doctor, "postgres.pool");

            var meter = Assert.Single(findings, f => f.Evidence.TryGetValue("pool", out var name) && name == app);
            Assert.Equal(("3", "30"), (meter.Evidence["used"], meter.Evidence["max"]));
            var server = Assert.Single(findings, f => f.Evidence.ContainsKey("sessions"));
            Assert.Equal("3", server.Evidence["sessions"]);
            Assert.Equal("the application's pool is in this process", server.Evidence["visibility"]);
        }
        finally
        {
            foreach (var c in held) await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task Replication_reports_the_streaming_standby_from_both_sides()
    {
        if (TestServers.Postgres.Replication.ReadReplicas.Count == 0) Assert.Skip("no replica: run ./run up --replica");
        await using var doctor = Doctor(settings: Settings(withReplicas: true));

        var findings = await RunAsync(doctor, "postgres.replication");

        var standby = Assert.Single(findings, f => f.Evidence.ContainsKey("replica"));
        Assert.Equal("streaming", standby.Evidence["wal_receiver"]);
        Assert.True(standby.Evidence.ContainsKey("replay_bytes_behind_primary"));
        Assert.Contains(findings, f => f.Evidence.TryGetValue("state", out var s) && s == "streaming");
        Assert.DoesNotContain(findings, f => f.Severity == Severity.Critical);
    }

    [Fact]
    public async Task Explain_measures_a_write_only_when_asked_and_always_rolls_it_back()
    {
        await ExecAsync($"CREATE TABLE {T("ex")} (id int); INSERT INTO {T("ex")} VALUES (1), (2);");
        await using var doctor = Doctor();
        await using var count = _admin.CreateCommand($"SELECT count(*) FROM {T("ex")}");

        var readOnly = await Assert.ThrowsAsync<PostgresException>(() => doctor.ExplainAsync($"DELETE FROM {T("ex")}", cancellationToken: Ct));
        Assert.Equal(PostgresErrorCodes.ReadOnlySqlTransaction, readOnly.SqlState);

        var plan = await doctor.ExplainAsync($"DELETE FROM {T("ex")};", allowWrites: true, cancellationToken: Ct);
        Assert.Contains(plan, l => l.StartsWith("Delete on", StringComparison.Ordinal));
        Assert.Contains(plan, l => l.Contains("actual time", StringComparison.Ordinal));
        Assert.Equal(2L, await count.ExecuteScalarAsync(Ct));
    }

    [Theory]
    [InlineData("SELECT 1; COMMIT; DROP TABLE {0}")]
    [InlineData("SELECT name'\\'; COMMIT; DROP TABLE {0}; --'")]
    [InlineData("SELECT E'x\\'; COMMIT; DROP TABLE {0}; --'")]
    [InlineData("SELECT $$x$$; COMMIT; DROP TABLE {0}")]
    [InlineData("SELECT 1 /* ; */; DROP TABLE {0}")]
    public async Task Explain_never_runs_a_second_statement_whatever_the_quoting(string template)
    {
        var table = T("victim_" + Guid.NewGuid().ToString("N")[..6]);
        await ExecAsync($"CREATE TABLE {table} (id int)");
        await using var doctor = Doctor();

        // Either the server refuses the text (more than one statement) or it is one harmless statement whose string
        // literal swallows the rest (E'x\'; ...'): never a COMMIT and a DROP after it.
        try { await doctor.ExplainAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, template, table), allowWrites: true, cancellationToken: Ct); }
        catch (PostgresException e) { Assert.Equal(PostgresErrorCodes.SyntaxError, e.SqlState); }

        await using var exists = _admin.CreateCommand($"SELECT to_regclass('{table.Replace("'", "''", StringComparison.Ordinal)}') IS NOT NULL");
        Assert.True((bool)(await exists.ExecuteScalarAsync(Ct))!, $"{table} was dropped");
    }

    [Fact]
    public async Task Explain_of_two_statements_is_refused_by_the_server()
    {
        await using var doctor = Doctor();
        var e = await Assert.ThrowsAsync<PostgresException>(() => doctor.ExplainAsync("SELECT 1; SELECT 2", cancellationToken: Ct));
        Assert.Contains("multiple commands", e.MessageText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_refuses_empty_text_before_connecting()
    {
        await using var doctor = Doctor();
        await Assert.ThrowsAsync<ArgumentException>(() => doctor.ExplainAsync("   ", cancellationToken: Ct));
    }

    // The standby replays CREATE DATABASE a moment later; until then a check against it would fail.
    private static async Task WaitUntilReplicatedAsync(string database)
    {
        var replica = TestServers.Postgres.Replication.ReadReplicas[0];
        var builder = new NpgsqlConnectionStringBuilder(PostgresDriverSettings.Build(TestServers.Postgres).ConnectionString)
        {
            Host = replica.Host, Port = replica.Port, LoadBalanceHosts = false, Pooling = false,
        };
        for (var i = 0; i < 200; i++)
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(Ct);
            await using var exists = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE datname = $1", connection);
            exists.Parameters.AddWithValue(database);
            if ((long)(await exists.ExecuteScalarAsync(Ct))! == 1) return;
            await Task.Delay(50, Ct);
        }
        Assert.Fail($"the standby never saw database {database}");
    }

    [Fact]
    public async Task A_healthy_database_yields_no_critical_finding()
    {
        var db = TestServers.UniqueName("healthy");
        await ExecAsync($"CREATE DATABASE \"{db}\"");
        try
        {
            await WaitUntilReplicatedAsync(db);
            await using var doctor = new PostgresDiagnostics(Settings(database: db, withReplicas: true));
            var report = await DiagnosticRunner.RunAsync(doctor.Checks, secrets: doctor.Secrets, cancellationToken: Ct);
            Assert.All(report.Checks, c => Assert.Equal(CheckOutcome.Completed, c.Outcome));
            Assert.False(report.HasCritical, string.Join(" | ", report.Findings.Where(f => f.Severity == Severity.Critical).Select(f => f.Title)));
            // pg_stat_statements is preloaded but the extension exists only where it was created: it says so.
            var statements = Assert.Single(report.Findings, f => f.Check == "postgres.slow_queries");
            Assert.Contains("not created in database", statements.Title, StringComparison.Ordinal);
            Assert.Equal($"CREATE EXTENSION pg_stat_statements;  -- as a superuser (or the database owner), connected to \"{db}\"", statements.Remedy);
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await ExecAsync($"DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
        }
    }
}
