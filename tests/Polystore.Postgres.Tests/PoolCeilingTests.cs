using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// How many connections the primary can get from one <see cref="PostgresDataSources"/> while the replicas are down
/// (the README's pool section): 2 × (max_size + max_overflow) with round_robin, whose writes have a pool of their own;
/// max_size + max_overflow with none, where reads and writes share one.
/// </summary>
// Not run through PgBouncer: the connections are counted on the server.
[Trait("Requires", "DirectPostgres")]
public sealed class PoolCeilingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(PostgresLoadBalance.RoundRobin, 6)]
    [InlineData(PostgresLoadBalance.None, 3)]
    public async Task With_the_replica_down_the_primary_gets_at_most(PostgresLoadBalance loadBalance, int ceiling)
    {
        var c = TestServers.Postgres.Connection;
        var settings = new PostgresSettings
        {
            Connection = new() { Host = c.Host, Port = c.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = c.Sslmode, ApplicationName = TestServers.UniqueName("ceiling") },
            // pool_timeout also bounds a real open: generous, so a slow open on a loaded machine is not taken for a full pool.
            Pool = new() { MinSize = 0, MaxSize = 2, MaxOverflow = 1, PoolTimeout = 10 },
            Replication = new() { ReadReplicas = [new() { Host = "127.0.0.1", Port = LoopbackPort.Free() }], LoadBalance = loadBalance },
        };
        await using var sources = PostgresDataSources.Create(settings);
        var held = new List<NpgsqlConnection>();
        try
        {
            // Writes and reads held together until neither may open another.
            var writesFull = false;
            var readsFull = false;
            while (!(writesFull && readsFull) && held.Count <= 2 * ceiling)
            {
                if (!writesFull)
                {
                    try { held.Add(await sources.OpenConnectionAsync(Ct)); }
                    catch (PostgresPoolExhaustedException) { writesFull = true; }
                }
                if (!readsFull)
                {
                    try { held.Add(await sources.OpenReadConnectionAsync(Ct)); }
                    catch (PostgresPoolExhaustedException) { readsFull = true; }
                }
            }
            Assert.Equal(ceiling, held.Count);

            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", held[0]);
            cmd.Parameters.AddWithValue(settings.Connection.ApplicationName);
            Assert.Equal(ceiling, (long)(await cmd.ExecuteScalarAsync(Ct))!);
        }
        finally
        {
            foreach (var connection in held) await connection.DisposeAsync();
        }
    }
}
