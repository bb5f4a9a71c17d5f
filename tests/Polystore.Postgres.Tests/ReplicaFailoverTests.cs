using System.Diagnostics;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

// Not run through PgBouncer: a replica of its own, base-backed-up from the server itself, with no pooler in front.
[Trait("Requires", "DirectPostgres")]
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
