using Npgsql;
using Polystore.Core.Diagnostics;
using Polystore.Postgres.Diagnostics;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

// The shared server runs with max_prepared_transactions = 0: a server of its own allows them.
public sealed class PreparedTransactionHorizonTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_orphaned_prepared_transaction_gets_a_remedy_naming_its_own_id_that_runs()
    {
        await using var server = await ThrowawayPostgres.StartAsync("max_prepared_transactions = 4");
        await using var dataSource = PostgresDataSources.Create(server.Settings);
        const string gid = "order-42 it's \"pending\"";
        await using (var connection = await dataSource.Primary.OpenConnectionAsync(Ct))
        {
            await using var batch = new NpgsqlCommand("CREATE TABLE held (id int); BEGIN; INSERT INTO held VALUES (1); PREPARE TRANSACTION 'order-42 it''s \"pending\"';", connection);
            await batch.ExecuteNonQueryAsync(Ct);
        }
        await using var doctor = new PostgresDiagnostics(server.Settings, new PostgresDiagnosticOptions { XminHorizonAfter = TimeSpan.Zero });

        var finding = Assert.Single(await doctor.Checks.Single(c => c.Name == "postgres.xmin_horizon").Run(Ct));
        var rollback = finding.Remedy!.Split("  --", 2)[0];
        await using (var connection = await dataSource.Primary.OpenConnectionAsync(Ct))
        {
            await using (var run = new NpgsqlCommand(rollback, connection)) await run.ExecuteNonQueryAsync(Ct);
            await using var left = new NpgsqlCommand("SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", connection) { Parameters = { new() { Value = gid } } };
            Assert.Equal(0L, (long)(await left.ExecuteScalarAsync(Ct))!);
        }

        Assert.Equal("none (prepared)", finding.Evidence["pid"]);
        Assert.Equal($"ROLLBACK PREPARED 'order-42 it''s \"pending\"';", rollback);
        Assert.Contains("connected to database \"postgres\"", finding.Remedy, StringComparison.Ordinal);
    }
}
