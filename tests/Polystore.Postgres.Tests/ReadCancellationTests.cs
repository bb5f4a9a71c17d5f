using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// Reads cancelled while their connection is being opened (through the replica, or waiting for a pooled one) leak
/// neither a connection nor a pool slot.
/// </summary>
// Not run through PgBouncer: the shared replica is reached directly.
[Trait("Requires", "DirectPostgres")]
public sealed class ReadCancellationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const int PoolSize = 2;

    private static PostgresSettings Settings()
    {
        var shared = TestServers.Postgres;
        var c = shared.Connection;
        return new PostgresSettings
        {
            Connection = new() { Host = c.Host, Port = c.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = c.Sslmode, ApplicationName = TestServers.UniqueName("readcancel") },
            Pool = new() { MinSize = 0, MaxSize = PoolSize, MaxOverflow = 0, PoolTimeout = 10, PoolPrePing = true },
            Replication = shared.Replication,
        };
    }

    // delayMs null: never cancelled, so that reads also complete however loaded the machine is.
    private static async Task<string> ReadCancelledAfterAsync(PostgresDataSources sources, int? delayMs)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        if (delayMs is { } delay) cts.CancelAfter(delay);
        try
        {
            await using var c = await sources.OpenReadConnectionAsync(cts.Token);
            await using var cmd = new NpgsqlCommand("SELECT 1", c);
            await cmd.ExecuteScalarAsync(CancellationToken.None);
            return "read";
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            return "cancelled";
        }
    }

    [Fact]
    public async Task Reads_cancelled_mid_open_leave_every_pool_slot_free()
    {
        var settings = Settings();
        await using var sources = PostgresDataSources.Create(settings);

        // Rounds of 96 concurrent reads over a pool of 2 per server, three in four cancelled after 0 to 20 ms: some
        // before they start, many while a physical connection is being made or while they wait for a pooled one.
        var outcomes = new List<string>();
        for (var round = 0; round < 4; round++)
            outcomes.AddRange(await Task.WhenAll(Enumerable.Range(0, 96).Select(i => Task.Run(() => ReadCancelledAfterAsync(sources, i % 4 == 3 ? null : i % 21), Ct))));
        Assert.Contains("cancelled", outcomes);
        Assert.Contains("read", outcomes);
        TestContext.Current.SendDiagnosticMessage($"{outcomes.Count(o => o == "read")} reads, {outcomes.Count(o => o == "cancelled")} cancelled");

        // Every slot of the reads' pools is free again: the standby's and the primary's (where reads overflow) can be
        // held at once. A leaked slot would leave one of these waiting until the pool's timeout, then failing.
        var held = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < 2 * PoolSize; i++) held.Add(await sources.Reads.OpenConnectionAsync(Ct));
            var inRecovery = new List<bool>();
            foreach (var c in held)
            {
                await using var cmd = new NpgsqlCommand("SELECT pg_is_in_recovery()", c);
                inRecovery.Add((bool)(await cmd.ExecuteScalarAsync(Ct))!);
            }
            Assert.Equal(PoolSize, inRecovery.Count(standby => standby));
            Assert.Equal(PoolSize, inRecovery.Count(standby => !standby));
        }
        finally
        {
            foreach (var c in held) await c.DisposeAsync();
        }

        // And no connection went astray: each server has at most the pool's connections of this application.
        foreach (var (host, port) in new[] { (settings.Connection.Host, settings.Connection.Port) }.Concat(settings.Replication.ReadReplicas.Select(r => (r.Host, r.Port))))
        {
            var probe = PostgresDriverSettings.Build(new PostgresSettings { Connection = TestServers.Postgres.Connection });
            probe.Host = host;
            probe.Port = port;
            probe.Pooling = false;
            await using var connection = new NpgsqlConnection(probe.ConnectionString);
            await connection.OpenAsync(Ct);
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", connection);
            cmd.Parameters.AddWithValue(settings.Connection.ApplicationName);
            var count = (long)(await cmd.ExecuteScalarAsync(Ct))!;
            Assert.True(count <= PoolSize, $"{count} connections of the application on {host}:{port}, more than its pool of {PoolSize}");
        }
    }
}
