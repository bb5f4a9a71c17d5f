using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// <c>connection.hosts</c> lists a high-availability group (here the shared primary and its streaming standby): reads
/// go to a standby (spread over the standbys with <c>replication.load_balance: round_robin</c>), writes to the server
/// <c>target_session_attributes</c> names.
/// </summary>
// Not run through PgBouncer: the group's servers are reached directly.
[Trait("Requires", "DirectPostgres")]
public sealed class HostsGroupReadTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static PostgresSettings Group(PostgresLoadBalance loadBalance, PostgresTargetSession? target)
    {
        var shared = TestServers.Postgres;
        var c = shared.Connection;
        var standby = Assert.Single(shared.Replication.ReadReplicas);
        return new PostgresSettings
        {
            Connection = new()
            {
                // The primary first: a read that ignored the group's standbys would land on it.
                Hosts = [$"{c.Host}:{c.Port}", $"{standby.Host}:{standby.Port}"],
                TargetSessionAttributes = target,
                Database = c.Database, User = c.User, Password = c.Password, Sslmode = c.Sslmode,
                ApplicationName = TestServers.UniqueName("group"),
            },
            Pool = new() { MinSize = 0, MaxSize = 4, MaxOverflow = 0, PoolTimeout = 30 },
            Replication = new() { LoadBalance = loadBalance },
        };
    }

    private static async Task<bool> InRecoveryAsync(NpgsqlConnection connection)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_is_in_recovery()", connection);
        return (bool)(await cmd.ExecuteScalarAsync(Ct))!;
    }

    [Theory]
    [InlineData(PostgresLoadBalance.RoundRobin, null)]
    [InlineData(PostgresLoadBalance.RoundRobin, PostgresTargetSession.ReadWrite)]
    [InlineData(PostgresLoadBalance.None, PostgresTargetSession.Primary)]
    public async Task Reads_go_to_the_groups_standby_and_writes_to_its_primary(PostgresLoadBalance loadBalance, PostgresTargetSession? target)
    {
        var settings = Group(loadBalance, target);
        await using var sources = PostgresDataSources.Create(settings);
        Assert.NotSame(sources.Primary, sources.Reads);

        // Held open together, so that each is a connection of its own (round robin moves on with every new one).
        var reads = new List<NpgsqlConnection>();
        var writes = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                reads.Add(await sources.OpenReadConnectionAsync(Ct));
                writes.Add(await sources.OpenConnectionAsync(Ct));
            }
            foreach (var read in reads) Assert.True(await InRecoveryAsync(read), "a read of the group did not go to its standby");
            foreach (var write in writes) Assert.False(await InRecoveryAsync(write), "a write of the group did not go to its primary");
        }
        finally
        {
            foreach (var connection in reads.Concat(writes)) await connection.DisposeAsync();
        }
    }

    [Fact]
    public void Round_robin_balances_the_reads_but_never_the_writes()
    {
        using var sources = PostgresDataSources.Create(Group(PostgresLoadBalance.RoundRobin, PostgresTargetSession.ReadWrite));
        Assert.True(new NpgsqlConnectionStringBuilder(sources.Reads.ConnectionString).LoadBalanceHosts);
        Assert.False(new NpgsqlConnectionStringBuilder(sources.Primary.ConnectionString).LoadBalanceHosts);
    }
}
