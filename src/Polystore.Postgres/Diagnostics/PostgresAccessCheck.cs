using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>Which role the doctor runs as, and what that role cannot see or do.</summary>
internal static class PostgresAccessCheck
{
    public static async Task<IReadOnlyList<Finding>> RunAsync(PostgresContext ctx, CancellationToken ct)
    {
        var r = (await ctx.QueryAsync("""
            SELECT current_user, rolsuper,
                   pg_has_role(current_user, 'pg_monitor', 'USAGE'),
                   pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
                   pg_has_role(current_user, 'pg_signal_backend', 'USAGE'),
                   current_setting('server_version'), pg_is_in_recovery()
            FROM pg_roles WHERE rolname = current_user
            """, x => (Role: x.GetString(0), Super: x.GetBoolean(1), Monitor: x.GetBoolean(2), Stats: x.GetBoolean(3), Signal: x.GetBoolean(4), Version: x.GetString(5), Recovery: x.GetBoolean(6)),
            ct).ConfigureAwait(false))[0];
        var evidence = Evidence(("role", r.Role), ("superuser", r.Super), ("pg_monitor", r.Monitor), ("pg_read_all_stats", r.Stats), ("pg_signal_backend", r.Signal),
            ("server_version", r.Version), ("in_recovery", r.Recovery));
        if (r.Super)
            return [ctx.Finding("postgres.access", Severity.Info, $"Running as superuser {r.Role}: every check sees everything", evidence)];
        var blind = new List<string>();
        if (!r.Stats) blind.Add("other roles' queries, session states and pg_stat_statements text");
        if (!r.Monitor) blind.Add("replication lag details");
        blind.Add("sequences it has no SELECT or USAGE on (postgres.sequences counts them)");
        if (!r.Signal) blind.Add("it may not cancel or terminate other roles' sessions (the pg_cancel_backend remedies need pg_signal_backend or that role)");
        return [ctx.Finding("postgres.access", Severity.Info,
            $"Running as {r.Role} (not a superuser{(r.Monitor ? ", member of pg_monitor" : ", not in pg_monitor")}): cannot see " + string.Join("; ", blind),
            evidence,
            r.Monitor ? null : $"GRANT pg_monitor TO {PostgresIdentifier.Quote(r.Role)};")];
    }
}
