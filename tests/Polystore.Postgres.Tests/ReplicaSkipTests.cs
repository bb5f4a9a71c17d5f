using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// A replica that neither answers nor refuses (black-holed, hung) must not hold reads: they go to the primary. A
/// stopped one is refused at once and Npgsql skips it itself (<see cref="ReplicaFailoverTests"/>). No timing is
/// asserted: each test checks where the reads went and prints how long they took.
/// </summary>
// Not run through PgBouncer: a replica of its own, base-backed-up from the server itself, with no pooler in front.
[Trait("Requires", "DirectPostgres")]
public sealed class ReplicaSkipTests(OwnReplica replica) : IClassFixture<OwnReplica>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // Npgsql would give an unanswering host this whole connect timeout (pool_timeout) on every read that tries it.
    private static PostgresSettings Settings(int replicaPort) => new()
    {
        Connection = TestServers.Postgres.Connection,
        Pool = new() { MinSize = 0, MaxSize = 8, MaxOverflow = 0, PoolTimeout = 60, PoolPrePing = true },
        Replication = new() { ReadReplicas = [new() { Host = "127.0.0.1", Port = replicaPort }] },
    };

    private static async Task<bool> ReadGoesToStandbyAsync(PostgresDataSources sources)
    {
        await using var c = await sources.OpenReadConnectionAsync(Ct);
        await using var cmd = new NpgsqlCommand("SELECT pg_is_in_recovery()", c);
        return (bool)(await cmd.ExecuteScalarAsync(Ct))!;
    }

    [Fact]
    public async Task A_black_holed_replica_is_skipped_and_reads_come_from_the_primary()
    {
        // Accepts TCP connections (the kernel completes the handshake) and never answers: a black-holed or hung server.
        using var blackHole = new TcpListener(IPAddress.Loopback, 0);
        blackHole.Start();
        await using var sources = PostgresDataSources.Create(Settings(((IPEndPoint)blackHole.LocalEndpoint).Port));
        var watch = Stopwatch.StartNew();
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => ReadGoesToStandbyAsync(sources)));
        var first = watch.Elapsed;
        Assert.All(concurrent, standby => Assert.False(standby));
        watch.Restart();
        for (var i = 0; i < 20; i++) Assert.False(await ReadGoesToStandbyAsync(sources));
        Report(string.Create(CultureInfo.InvariantCulture,
            $"black-holed replica: 16 concurrent first reads answered from the primary in {first.TotalMilliseconds:0} ms; 20 reads after that in {watch.Elapsed.TotalMilliseconds:0} ms (pool_timeout 60 s)"));
    }

    [Fact]
    public async Task A_hung_replica_is_skipped_then_used_again_once_it_answers()
    {
        var settings = Settings(replica.Port);
        await using (var warm = PostgresDataSources.Create(settings))
            Assert.True(await ReadGoesToStandbyAsync(warm));
        var postmaster = await PostmasterPidAsync(settings);
        // SIGSTOP on the replica's postmaster: its port still accepts connections, but none is ever answered.
        Signal(postmaster, "STOP");
        try
        {
            await using var sources = PostgresDataSources.Create(settings);
            var watch = Stopwatch.StartNew();
            var reads = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => ReadGoesToStandbyAsync(sources)));
            Assert.All(reads, standby => Assert.False(standby));
            for (var i = 0; i < 8; i++) Assert.False(await ReadGoesToStandbyAsync(sources));
            Report(string.Create(CultureInfo.InvariantCulture, $"hung replica (SIGSTOP): 8 concurrent then 8 sequential reads answered from the primary in {watch.Elapsed.TotalMilliseconds:0} ms"));

            Signal(postmaster, "CONT");
            // Back on the standby once the skip interval has passed (Npgsql's host recheck, 10 s by default): polled, not timed.
            watch.Restart();
            var back = false;
            while (!back && watch.Elapsed < TimeSpan.FromSeconds(60))
            {
                back = await ReadGoesToStandbyAsync(sources);
                if (!back) await Task.Delay(250, Ct);
            }
            Assert.True(back, "reads did not return to the standby within 60 s of it answering again");
            Report(string.Create(CultureInfo.InvariantCulture, $"hung replica answering again: reads back on it after {watch.Elapsed.TotalMilliseconds:0} ms"));
        }
        finally
        {
            Signal(postmaster, "CONT");
        }
    }

    /// <summary>A figure for the test output, and for the POLYSTORE_OUTAGE_REPORT file when that is set (docs/outages.md).</summary>
    private static void Report(string line)
    {
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        if (Environment.GetEnvironmentVariable("POLYSTORE_OUTAGE_REPORT") is { Length: > 0 } file) File.AppendAllLines(file, [line]);
    }

    /// <summary>The replica's postmaster: the parent of the backend serving a connection to it.</summary>
    private static async Task<int> PostmasterPidAsync(PostgresSettings settings)
    {
        var b = PostgresDriverSettings.Build(new PostgresSettings { Connection = settings.Connection });
        b.Host = "127.0.0.1";
        b.Port = settings.Replication.ReadReplicas[0].Port;
        b.Pooling = false;
        await using var c = new NpgsqlConnection(b.ConnectionString);
        await c.OpenAsync(Ct);
        await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", c);
        var backend = (int)(await cmd.ExecuteScalarAsync(Ct))!;
        var status = await File.ReadAllLinesAsync($"/proc/{backend}/status", Ct);
        return int.Parse(status.Single(l => l.StartsWith("PPid:", StringComparison.Ordinal))[5..].Trim(), CultureInfo.InvariantCulture);
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
