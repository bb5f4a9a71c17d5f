using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Postgres.Diagnostics;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

public sealed class HorizonTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // The holder's pid and application_name are set and read in separate transactions of one session: through a
    // transaction pooler each may land on a different server connection.
    [Fact]
    [Trait("Requires", "DirectPostgres")]
    public async Task A_long_transaction_holding_back_delivery_is_named_by_the_health_check_and_the_doctor()
    {
        var application = TestServers.UniqueName("long_tx");
        await using var holder = await schema.DataSource.OpenConnectionAsync(Ct);
        await using (var name = new NpgsqlCommand($"SET application_name = '{application}'", holder)) await name.ExecuteNonQueryAsync(Ct);
        int pid;
        await using (var who = new NpgsqlCommand("SELECT pg_backend_pid()", holder)) pid = (int)(await who.ExecuteScalarAsync(Ct))!;
        var transaction = await holder.BeginTransactionAsync(Ct);
        try
        {
            // A transaction id makes it hold the horizon; the literal must not be shown.
            await using (var write = new NpgsqlCommand("SELECT pg_current_xact_id(), 'secret-literal'", holder, transaction)) await write.ExecuteNonQueryAsync(Ct);
            await schema.AppendAsync(1, "horizon.test");

            var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
            var check = new OutboxHealthCheck(monitor, "horizon", TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
            HealthCheckResult result = default;
            await Eventually.UntilAsync(async () =>
            {
                result = await check.CheckHealthAsync(new HealthCheckContext(), Ct);
                return result.Data.TryGetValue("horizon_held_by", out var held) && ((string[])held).Any(h => h.Contains(application, StringComparison.Ordinal));
            }, "the health check named the open transaction", Ct);
            Assert.Equal(HealthStatus.Degraded, result.Status);
            var named = ((string[])result.Data["horizon_held_by"]).Single(h => h.Contains(application, StringComparison.Ordinal));
            Assert.Contains($"pid {pid}", named, StringComparison.Ordinal);
            Assert.Contains("idle in transaction", named, StringComparison.Ordinal);
            Assert.DoesNotContain("secret-literal", named, StringComparison.Ordinal);
            Assert.Contains("pg_current_xact_id", named, StringComparison.Ordinal);

            var holders = await monitor.GetHorizonHoldersAsync(TimeSpan.Zero, 50, Ct);
            Assert.Contains(holders, h => h.Pid == pid && h.ApplicationName == application && h.TransactionAge > TimeSpan.Zero);

            await using var doctor = new PostgresDiagnostics(TestServers.Postgres, new PostgresDiagnosticOptions { XminHorizonAfter = TimeSpan.FromSeconds(1), MaxFindingsPerCheck = 50 });
            var horizon = doctor.Checks.Single(c => c.Name == "postgres.xmin_horizon");
            var findings = await horizon.Run(Ct);
            var finding = Assert.Single(findings, f => f.Evidence["application_name"] == application);
            Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), finding.Evidence["pid"]);
            Assert.Equal("idle in transaction", finding.Evidence["state"]);
            Assert.Contains($"pg_terminate_backend({pid})", finding.Remedy, StringComparison.Ordinal);
            Assert.Contains("idle_in_transaction_session_timeout", finding.Remedy, StringComparison.Ordinal);
        }
        finally
        {
            await transaction.RollbackAsync(Ct);
            await transaction.DisposeAsync();
        }
    }
}
