using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// <c>pool_pre_ping</c> after the server restarted: every pooled connection is dead, and the next opens must each hand
/// out a working connection, on a private server that the test restarts (never the shared one).
/// </summary>
public sealed class PrePingRestartTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<int> BackendPidAsync(NpgsqlConnection connection)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", connection);
        return (int)(await cmd.ExecuteScalarAsync(Ct))!;
    }

    [Theory]
    [InlineData(PostgresLoadBalance.RoundRobin)]
    [InlineData(PostgresLoadBalance.None)]
    public async Task After_a_restart_each_open_hands_out_a_working_connection(PostgresLoadBalance loadBalance)
    {
        await using var server = await ThrowawayPostgres.StartAsync();
        var settings = new PostgresSettings
        {
            Connection = server.Settings.Connection,
            Pool = new() { MinSize = 0, MaxSize = 4, MaxOverflow = 0, PoolTimeout = 10, PoolPrePing = true },
            // A replica that is down makes the data sources multi-host: one pool per host, each with what Npgsql learnt of it.
            Replication = new() { ReadReplicas = [new() { Host = "127.0.0.1", Port = LoopbackPort.Free() }], LoadBalance = loadBalance },
        };
        await using var sources = PostgresDataSources.Create(settings);

        // Fill the pools: two writes and two reads (which land on the primary, the replica being down) held at once;
        // with load_balance none they share one pool of 4.
        var opened = new List<NpgsqlConnection>();
        for (var i = 0; i < 2; i++)
        {
            opened.Add(await sources.OpenConnectionAsync(Ct));
            opened.Add(await sources.OpenReadConnectionAsync(Ct));
        }
        foreach (var c in opened) await c.DisposeAsync();

        await server.StopServerAsync();
        await server.StartServerAsync();

        for (var i = 0; i < 4; i++)
        {
            await using (var write = await sources.OpenConnectionAsync(Ct))
                Assert.True(await BackendPidAsync(write) > 0);
            await using (var read = await sources.OpenReadConnectionAsync(Ct))
                Assert.True(await BackendPidAsync(read) > 0);
        }
    }
}
