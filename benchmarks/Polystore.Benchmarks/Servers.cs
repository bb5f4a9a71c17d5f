using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres;

namespace Polystore.Benchmarks;

/// <summary>The private server of ./run up (POLYSTORE_CONFIG_DIR, or found from the current folder).</summary>
internal static class Servers
{
    public static PostgresDataSources Open() =>
        PostgresDataSources.Create(PolystoreConfig.Load(ConfigLocator.Locate(null).Directory).Postgres
            ?? throw new InvalidOperationException("no postgresql.yaml: run ./run up first"));

    public static async Task ExecAsync(NpgsqlDataSource ds, string sql)
    {
        await using var connection = await ds.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
