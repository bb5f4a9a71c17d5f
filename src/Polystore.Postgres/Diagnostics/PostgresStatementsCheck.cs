using Npgsql;
using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>Slow queries from pg_stat_statements; when it is unavailable, says exactly why.</summary>
internal static class PostgresStatementsCheck
{
    private const string Check = "postgres.slow_queries";
    private const string Hidden = "<insufficient privilege>";

    public static async Task<IReadOnlyList<Finding>> RunAsync(PostgresContext ctx, CancellationToken ct)
    {
        var connection = await ctx.OpenAsync(ct).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var state = (await PostgresContext.QueryAsync(connection, """
                SELECT (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'), current_database(), current_user,
                       (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements')
                """, r => (Preload: r.Str(0), Db: r.GetString(1), User: r.GetString(2), Schema: r.Str(3)), ct).ConfigureAwait(false))[0];
            // Null: pg_settings hides the setting from a role without pg_read_all_settings; the view itself then tells.
            if (state.Preload is { } preload && !preload.Split(',').Any(l => l.Trim().Trim('"') == "pg_stat_statements"))
            {
                var libs = string.Join(", ", preload.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Append("pg_stat_statements"));
                return [ctx.Finding(Check, Severity.Info, "Slow queries not visible: pg_stat_statements is not preloaded",
                    Evidence(("shared_preload_libraries", preload.Length == 0 ? "(empty)" : preload)),
                    $"ALTER SYSTEM SET shared_preload_libraries = {PostgresLiteral.Quote(libs)};  -- then restart PostgreSQL, and in database {PostgresIdentifier.Quote(state.Db)}: CREATE EXTENSION pg_stat_statements;")];
            }
            if (state.Schema is null)
            {
                return [ctx.Finding(Check, Severity.Info, $"Slow queries not visible: pg_stat_statements is preloaded but the extension is not created in database {state.Db}",
                    Evidence(("database", state.Db), ("shared_preload_libraries", state.Preload ?? "(not readable by this role)")),
                    $"CREATE EXTENSION pg_stat_statements;  -- as a superuser (or the database owner), connected to {PostgresIdentifier.Quote(state.Db)}")];
            }
            List<(long Calls, double Total, double Mean, long Rows, long Hit, long Read, string? Query, string? Role)> rows;
            int hidden;
            try
            {
                rows = await PostgresContext.QueryAsync(connection, $"""
                    SELECT s.calls, s.total_exec_time, s.mean_exec_time, s.rows, s.shared_blks_hit, s.shared_blks_read, s.query, r.rolname
                    FROM {PostgresIdentifier.Quote(state.Schema)}.pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid
                    WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.mean_exec_time >= $1
                    ORDER BY s.total_exec_time DESC LIMIT $2
                    """, r => (r.Long(0), r.Dbl(1), r.Dbl(2), r.Long(3), r.Long(4), r.Long(5), r.Str(6), r.Str(7)),
                    ct, ctx.Options.SlowQueryMeanMs, ctx.Limit).ConfigureAwait(false);
                hidden = (await PostgresContext.QueryAsync(connection, $"""
                    SELECT count(*)::int FROM {PostgresIdentifier.Quote(state.Schema)}.pg_stat_statements WHERE query = '{Hidden}'
                    """, r => r.GetInt32(0), ct).ConfigureAwait(false))[0];
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectNotInPrerequisiteState)
            {
                // Created but not preloaded, seen by a role that may not read shared_preload_libraries.
                return [ctx.Finding(Check, Severity.Info, $"Slow queries not visible: {e.MessageText}",
                    Evidence(("database", state.Db), ("sqlstate", e.SqlState)),
                    "ALTER SYSTEM SET shared_preload_libraries = '<the current list>, pg_stat_statements';  -- as a superuser, then restart PostgreSQL")];
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
            {
                return [ctx.Finding(Check, Severity.Info, $"Slow queries not visible: role {state.User} may not read pg_stat_statements ({e.MessageText})",
                    Evidence(("role", state.User), ("sqlstate", e.SqlState)),
                    $"GRANT pg_read_all_stats TO {PostgresIdentifier.Quote(state.User)};  -- or GRANT pg_monitor")];
            }
            var findings = rows.Select(q =>
            {
                var hitRatio = q.Hit + q.Read == 0 ? 1 : (double)q.Hit / (q.Hit + q.Read);
                return ctx.Finding(Check, Severity.Warning,
                    $"Slow query: {Num(q.Mean, "0")} ms on average over {q.Calls} calls ({Num(q.Total / 1000, "0.#")} s in total)",
                    Evidence(("mean_ms", Num(q.Mean, "0.##")), ("calls", q.Calls), ("total_s", Num(q.Total / 1000, "0.##")), ("rows", q.Rows),
                        ("cache_hit", Percent(hitRatio)), ("role", q.Role), ("query", ctx.Snippet(q.Query, 300))),
                    q.Query == Hidden
                        ? $"GRANT pg_read_all_stats TO {PostgresIdentifier.Quote(state.User)};  -- to see the text, then explain it"
                        : "polystore doctor explain '<this query, with each $n replaced by a real value>'  -- then add the index its filter needs, or rewrite it");
            }).ToList();
            if (hidden > 0)
            {
                findings.Add(ctx.Finding(Check, Severity.Info, $"{hidden} pg_stat_statements entries show no text: role {state.User} lacks pg_read_all_stats",
                    Evidence(("hidden_statements", hidden), ("role", state.User)),
                    $"GRANT pg_read_all_stats TO {PostgresIdentifier.Quote(state.User)};"));
            }
            return findings;
        }
    }
}
