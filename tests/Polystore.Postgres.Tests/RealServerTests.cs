using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

public sealed class RealServerTests
{
    [Fact]
    public async Task Connects_with_application_name_and_jit_off()
    {
        await using var sources = PostgresDataSources.Create(TestServers.Postgres);
        await using var connection = await sources.OpenConnectionAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand("SELECT current_setting('application_name'), current_setting('jit'), pg_is_in_recovery()", connection);
        await using var reader = await command.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        Assert.True(await reader.ReadAsync(TestContext.Current.CancellationToken));
        Assert.Equal(("polystore", "off", false), (reader.GetString(0), reader.GetString(1), reader.GetBoolean(2)));
    }

    // Not run through PgBouncer: it needs the replica, which is not behind the pooler.
    [Trait("Requires", "DirectPostgres")]
    [Fact]
    public async Task Reads_go_to_the_standby_and_writes_to_the_primary()
    {
        var settings = TestServers.Postgres;
        Assert.NotEmpty(settings.Replication.ReadReplicas);
        await using var sources = PostgresDataSources.Create(settings);
        for (var i = 0; i < 4; i++)
        {
            await using var read = await sources.OpenReadConnectionAsync(TestContext.Current.CancellationToken);
            await using var isStandby = new NpgsqlCommand("SELECT pg_is_in_recovery()", read);
            Assert.True((bool)(await isStandby.ExecuteScalarAsync(TestContext.Current.CancellationToken))!);
        }
        await using var write = await sources.OpenConnectionAsync(TestContext.Current.CancellationToken);
        await using var isPrimary = new NpgsqlCommand("SELECT pg_is_in_recovery()", write);
        Assert.False((bool)(await isPrimary.ExecuteScalarAsync(TestContext.Current.CancellationToken))!);
    }

    // Not run through PgBouncer: it kills the server process of a pooled connection, which through transaction pooling belongs to no client connection.
    [Trait("Requires", "DirectPostgres")]
    [Fact]
    public async Task Pre_ping_hands_out_a_live_connection_after_the_pooled_one_was_killed()
    {
        var baseSettings = TestServers.Postgres;
        var settings = new PostgresSettings
        {
            Connection = new()
            {
                Host = baseSettings.Connection.Host, Port = baseSettings.Connection.Port, Database = baseSettings.Connection.Database,
                User = baseSettings.Connection.User, Password = baseSettings.Connection.Password, Sslmode = PostgresSslMode.Disable,
                ApplicationName = TestServers.UniqueName("preping"),
            },
            Pool = new() { MaxSize = 1, MaxOverflow = 0, PoolPrePing = true },
        };
        await using var sources = PostgresDataSources.Create(settings);
        await using (var first = await sources.OpenConnectionAsync(TestContext.Current.CancellationToken)) { }

        // Kill the pooled backend from another session, as a server restart or a firewall would, and wait
        // (up to 10 s) until it is gone, so the next open really finds a dead pooled connection.
        await using (var admin = await PostgresDataSources.Create(baseSettings).OpenConnectionAsync(TestContext.Current.CancellationToken))
        await using (var kill = new NpgsqlCommand("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE application_name = $1", admin))
        {
            kill.Parameters.AddWithValue(settings.Connection.ApplicationName);
            Assert.Equal(1L, await kill.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        }

        await using var second = await sources.OpenConnectionAsync(TestContext.Current.CancellationToken);
        await using var select = new NpgsqlCommand("SELECT 42", second);
        Assert.Equal(42, await select.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    // Not run through PgBouncer: it needs the replica, which is not behind the pooler.
    [Trait("Requires", "DirectPostgres")]
    [Fact]
    public async Task Ping_reports_versions_of_primary_and_replica_and_a_down_server_without_throwing()
    {
        await using var sources = PostgresDataSources.Create(TestServers.Postgres);
        var results = await PostgresPing.PingAsync(sources, TestContext.Current.CancellationToken);
        Assert.Equal(1 + TestServers.Postgres.Replication.ReadReplicas.Count, results.Count);
        Assert.Contains("primary", results[0].Details!, StringComparison.Ordinal);
        Assert.All(results, r => Assert.True(r.Reachable, r.Error));
        Assert.All(results, r => Assert.StartsWith("15.", r.ServerVersion, StringComparison.Ordinal));
        Assert.Contains(results, r => r.Details!.Contains("standby", StringComparison.Ordinal));

        var down = new PostgresSettings { Connection = new() { Host = "127.0.0.1", Port = 1, Password = "hunter22" } };
        await using var downSources = PostgresDataSources.Create(down);
        var failed = Assert.Single(await PostgresPing.PingAsync(downSources, TestContext.Current.CancellationToken));
        Assert.False(failed.Reachable);
        Assert.DoesNotContain("hunter22", failed.Error, StringComparison.Ordinal);
    }
}
