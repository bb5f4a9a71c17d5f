using Npgsql;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>A private schema per test class, dropped at the end, so classes run in parallel.</summary>
public class SchemaFixture : IAsyncLifetime
{
    public string Schema { get; } = TestServers.UniqueName("pgt");

    public PostgresDataSources Sources { get; } = PostgresDataSources.Create(TestServers.Postgres);

    public NpgsqlDataSource Primary => Sources.Primary;

    public async ValueTask InitializeAsync()
    {
        await ExecAsync($"CREATE SCHEMA {Schema}");
        await SetupAsync();
    }

    protected virtual Task SetupAsync() => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await ExecAsync($"DROP SCHEMA IF EXISTS {Schema} CASCADE");
        await Sources.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    public async Task ExecAsync(string sql)
    {
        await using var command = Primary.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = Primary.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
