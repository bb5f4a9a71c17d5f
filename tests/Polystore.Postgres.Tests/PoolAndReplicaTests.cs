using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

public sealed class PoolExhaustionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static PostgresSettings SmallPool(int size, int overflow, int timeout)
    {
        var c = TestServers.Postgres.Connection;
        return new PostgresSettings
        {
            Connection = new() { Host = c.Host, Port = c.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = PostgresSslMode.Disable, ApplicationName = TestServers.UniqueName("pool") },
            Pool = new() { MinSize = 0, MaxSize = size, MaxOverflow = overflow, PoolTimeout = timeout },
        };
    }

    [Fact]
    public async Task Holding_every_connection_gives_a_clear_error_naming_pool_size_and_timeout()
    {
        await using var sources = PostgresDataSources.Create(SmallPool(2, 1, 1));
        var held = new List<NpgsqlConnection>();
        for (var i = 0; i < 3; i++) held.Add(await sources.OpenConnectionAsync(Ct));
        try
        {
            var e = await Assert.ThrowsAsync<PostgresPoolExhaustedException>(() => sources.OpenConnectionAsync(Ct).AsTask());
            Assert.Equal((3, 1), (e.MaxPoolSize, e.TimeoutSeconds));
            Assert.Contains("all 3 connections (pool.max_size + pool.max_overflow)", e.Message, StringComparison.Ordinal);
            Assert.Contains("1 s wait (pool.pool_timeout)", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(TestServers.Postgres.Connection.Password!, e.Message, StringComparison.Ordinal);
            Assert.IsType<TimeoutException>(e.InnerException?.InnerException ?? e.InnerException, exactMatch: false);

            // The library's own entry points report it the same way.
            var upsert = PostgresBulkUpsert.Into<(int, string)>("pg_catalog.pg_class").Column("relname", r => r.Item2).OnConflict("relname").Build();
            await Assert.ThrowsAsync<PostgresPoolExhaustedException>(() => upsert.ExecuteAsync(sources.Primary, [(1, "x")], cancellationToken: Ct));

            // 64 callers at once all get the same clear error, none hangs.
            var results = await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
            {
                try { await using var c = await sources.OpenConnectionAsync(Ct); return "opened"; }
                catch (PostgresPoolExhaustedException) { return "exhausted"; }
            }));
            Assert.All(results, r => Assert.Equal("exhausted", r));
        }
        finally
        {
            foreach (var c in held) await c.DisposeAsync();
        }
        // Released connections are handed out again.
        await using var again = await sources.OpenConnectionAsync(Ct);
        Assert.Equal(System.Data.ConnectionState.Open, again.State);
    }

    [Fact]
    public async Task Sixty_four_callers_share_a_pool_of_four_without_errors_when_each_returns_its_connection()
    {
        await using var sources = PostgresDataSources.Create(SmallPool(4, 0, 30));
        var sum = await Task.WhenAll(Enumerable.Range(0, 64).Select(async i =>
        {
            await using var c = await sources.OpenConnectionAsync(Ct);
            await using var cmd = new NpgsqlCommand("SELECT $1::int + pg_backend_pid() * 0", c);
            cmd.Parameters.AddWithValue(i);
            return (int)(await cmd.ExecuteScalarAsync(Ct))!;
        }));
        Assert.Equal(Enumerable.Range(0, 64).Sum(), sum.Sum());
    }
}

/// <summary>
/// A throwaway streaming replica of our own (pg_basebackup to a free port), so stopping it never
/// disturbs the shared replica that other tests and test projects use at the same time.
/// </summary>
public sealed class OwnReplica : IAsyncLifetime
{
    private readonly string _pgbin = TestServers.Get("PGBIN") ?? throw new InvalidOperationException("PGBIN missing from servers.env");
    private readonly string _dir = Path.Combine(TestServers.Get("TMPROOT") ?? Path.GetTempPath(), TestServers.UniqueName("pg-replica-test"));

    public int Port { get; } = FreePort();

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (IsRoot) await RunAsync("chown", "postgres:", _dir);
        var c = TestServers.Postgres.Connection;
        await RunAsPostgresAsync(Path.Combine(_pgbin, "pg_basebackup"), "-h", c.Host, "-p", c.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", c.User, "-D", _dir, "-R", "-X", "stream", "-c", "fast");
        await StartAsync();
    }

    public Task StartAsync() => RunAsPostgresAsync(Path.Combine(_pgbin, "pg_ctl"), "-D", _dir, "-l", Path.Combine(_dir, "server.log"), "-o", $"-p {Port} -c unix_socket_directories=", "-w", "-t", "60", "start");

    public Task StopAsync() => RunAsPostgresAsync(Path.Combine(_pgbin, "pg_ctl"), "-D", _dir, "-m", "fast", "-w", "stop");

    public async ValueTask DisposeAsync()
    {
        try { await StopAsync(); } catch (InvalidOperationException) { /* already stopped */ }
        Directory.Delete(_dir, recursive: true);
    }

    private static bool IsRoot => Environment.UserName == "root";

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private Task RunAsPostgresAsync(string file, params string[] args) => IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", file, .. args]) : RunAsync(file, args);

    private static async Task RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        // The password goes through the environment, never the command line.
        start.Environment["PGPASSWORD"] = TestServers.Postgres.Connection.Password;
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {await stderr}");
    }
}

public sealed class ReplicaFailoverTests(OwnReplica replica) : IClassFixture<OwnReplica>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<bool> ReadGoesToStandbyAsync(PostgresDataSources sources)
    {
        await using var c = await sources.OpenReadConnectionAsync(Ct);
        await using var cmd = new NpgsqlCommand("SELECT pg_is_in_recovery()", c);
        return (bool)(await cmd.ExecuteScalarAsync(Ct))!;
    }

    [Fact]
    public async Task Stopping_the_replica_sends_reads_to_the_primary_and_restarting_it_brings_them_back()
    {
        var b = TestServers.Postgres;
        var settings = new PostgresSettings
        {
            Connection = b.Connection,
            Pool = new() { MinSize = 0, MaxSize = 4, MaxOverflow = 0, PoolTimeout = 10, PoolPrePing = true },
            Replication = new() { ReadReplicas = [new() { Host = "127.0.0.1", Port = replica.Port }] },
        };
        // Recheck a host marked offline after 1 s instead of Npgsql's default 10 s.
        await using var sources = PostgresDataSources.Create(settings, builder => builder.ConnectionStringBuilder.HostRecheckSeconds = 1);
        for (var i = 0; i < 4; i++) Assert.True(await ReadGoesToStandbyAsync(sources));

        await replica.StopAsync();
        try
        {
            // Pooled standby connections are now dead: pre-ping drops them, and Npgsql falls back to the primary.
            for (var i = 0; i < 8; i++) Assert.False(await ReadGoesToStandbyAsync(sources));
            await using var fresh = PostgresDataSources.Create(settings);
            Assert.False(await ReadGoesToStandbyAsync(fresh));
        }
        finally
        {
            await replica.StartAsync();
        }

        // Back on the standby once Npgsql rechecks the host (no timing asserted: poll up to a minute).
        var watch = Stopwatch.StartNew();
        var back = false;
        while (!back && watch.Elapsed < TimeSpan.FromSeconds(60))
        {
            back = await ReadGoesToStandbyAsync(sources);
            if (!back) await Task.Delay(250, Ct);
        }
        Assert.True(back, "reads did not return to the restarted standby within 60 s");
    }
}
