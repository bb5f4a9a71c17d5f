using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>
/// Transactions that hold the xmin horizon back: while one with a transaction id stays open, an outbox dispatcher
/// delivers no event committed after it started, and vacuum keeps every dead row newer than it.
/// </summary>
internal static class PostgresHorizonCheck
{
    public static async Task<IReadOnlyList<Finding>> RunAsync(PostgresContext ctx, CancellationToken ct)
    {
        var rows = await ctx.QueryAsync("""
            SELECT pid, datname, usename, application_name, state, age_s, query, gid FROM (
                SELECT pid, datname, usename, application_name, coalesce(state, 'hidden (no pg_read_all_stats)') AS state,
                       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age_s, query, age(backend_xid) AS xid_age, NULL AS gid
                FROM pg_stat_activity
                WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND xact_start < clock_timestamp() - make_interval(secs => $1)
                UNION ALL
                SELECT NULL, database, owner, 'prepared transaction ' || gid, 'prepared', extract(epoch FROM clock_timestamp() - prepared)::float8, NULL, age(transaction), gid
                FROM pg_prepared_xacts WHERE prepared < clock_timestamp() - make_interval(secs => $1)) h
            ORDER BY xid_age DESC LIMIT $2
            """, r => (Pid: r.IsDBNull(0) ? (int?)null : r.GetInt32(0), Db: r.Str(1), User: r.Str(2), App: r.Str(3), State: r.Str(4), Age: r.Dbl(5), Query: r.Str(6), Gid: r.Str(7)),
            ct, ctx.Options.XminHorizonAfter.TotalSeconds, ctx.Limit).ConfigureAwait(false);
        return rows.Select(h => ctx.Finding("postgres.xmin_horizon",
            h.Age >= ctx.Options.XminHorizonCritical.TotalSeconds ? Severity.Critical : Severity.Warning,
            $"{(h.Pid is { } pid ? $"pid {pid}" : "a prepared transaction")} ({h.User}, {h.App}) has held the xmin horizon for {Num(h.Age, "0")} s: outbox events committed since wait for it, and vacuum cannot clean up after it",
            Evidence(("pid", h.Pid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none (prepared)"), ("user", h.User), ("database", h.Db), ("application_name", h.App),
                ("state", h.State), ("transaction_age_s", Num(h.Age, "0.#")), ("query", ctx.Snippet(h.Query, 120))),
            h.Pid is { } p
                ? $"SELECT pg_terminate_backend({p});\nKeep transactions short: ALTER ROLE {PostgresIdentifier.Quote(h.User ?? "app")} SET idle_in_transaction_session_timeout = '60s'; ALTER ROLE {PostgresIdentifier.Quote(h.User ?? "app")} SET statement_timeout = '30s';  -- and never wait on anything outside the database inside a transaction"
                // Finished only from its own database, by its owner or a superuser; which way is the coordinator's call.
                : $"ROLLBACK PREPARED {PostgresLiteral.Quote(h.Gid!)};  -- connected to database {PostgresIdentifier.Quote(h.Db ?? "?")}; or COMMIT PREPARED with the same id if its coordinator decided to commit")).ToList();
    }
}
