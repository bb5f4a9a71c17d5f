using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>Sessions: connections by state, idle-in-transaction, long-running and blocked queries.</summary>
internal static class PostgresActivityChecks
{
    private const string Check = "postgres.connections";

    public static async Task<IReadOnlyList<Finding>> ConnectionsAsync(PostgresContext ctx, CancellationToken ct)
    {
        var limits = await ctx.QueryAsync("""
            SELECT current_setting('max_connections')::int,
                   current_setting('superuser_reserved_connections')::int
            """, r => (Max: r.GetInt32(0), Reserved: r.GetInt32(1)), ct).ConfigureAwait(false);
        // state is NULL for other roles' sessions when we lack pg_read_all_stats: count them as "hidden".
        var states = await ctx.QueryAsync("""
            SELECT coalesce(state, 'hidden (no pg_read_all_stats)'), count(*)::int
            FROM pg_stat_activity WHERE backend_type = 'client backend'
            GROUP BY 1 ORDER BY 2 DESC
            """, r => (State: r.GetString(0), Count: r.GetInt32(1)), ct).ConfigureAwait(false);
        var (max, reserved) = limits[0];
        var usable = Math.Max(1, max - reserved);
        var total = states.Sum(s => s.Count);
        var ratio = (double)total / usable;
        var severity = ratio >= ctx.Options.ConnectionsCritical ? Severity.Critical : ratio >= ctx.Options.ConnectionsWarning ? Severity.Warning : Severity.Info;
        var evidence = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["connections"] = Num(total),
            ["max_connections"] = Num(max),
            ["superuser_reserved_connections"] = Num(reserved),
            ["used_of_usable"] = Percent(ratio),
        };
        foreach (var (state, count) in states) evidence["state." + state] = Num(count);
        var remedy = severity == Severity.Info ? null : $"""
            See who holds them: SELECT usename, application_name, client_addr, state, count(*) FROM pg_stat_activity GROUP BY 1,2,3,4 ORDER BY 5 DESC;
            Then shrink pools (max_size + max_overflow per process x processes must stay below {usable}) or put PgBouncer in front; raising the limit needs a restart: ALTER SYSTEM SET max_connections = {max * 2};
            """;
        return [ctx.Finding(Check, severity, $"{total} of {usable} usable connections in use ({Percent(ratio)})", evidence, remedy)];
    }

    public static async Task<IReadOnlyList<Finding>> IdleInTransactionAsync(PostgresContext ctx, CancellationToken ct)
    {
        var rows = await ctx.QueryAsync("""
            SELECT pid, usename, datname, application_name,
                   extract(epoch FROM now() - state_change)::float8, extract(epoch FROM now() - xact_start)::float8, query, state
            FROM pg_stat_activity
            WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
              AND now() - state_change > make_interval(secs => $1) AND pid <> pg_backend_pid()
            ORDER BY state_change LIMIT $2
            """, r => (Pid: r.GetInt32(0), User: r.Str(1), Db: r.Str(2), App: r.Str(3), Idle: r.Dbl(4), Xact: r.Dbl(5), Query: r.Str(6), State: r.Str(7)),
            ct, ctx.Options.IdleInTransactionAfter.TotalSeconds, ctx.Limit).ConfigureAwait(false);
        return rows.Select(s => ctx.Finding("postgres.idle_in_transaction",
            s.Idle >= ctx.Options.IdleInTransactionCritical.TotalSeconds ? Severity.Critical : Severity.Warning,
            $"pid {s.Pid} ({s.User}, {s.App}) has been {s.State} for {Num(s.Idle, "0")} s, holding its locks and snapshot",
            Evidence(("pid", s.Pid), ("user", s.User), ("database", s.Db), ("application_name", s.App), ("idle_s", Num(s.Idle, "0.#")),
                ("transaction_age_s", Num(s.Xact, "0.#")), ("state", s.State), ("last_query", ctx.Snippet(s.Query))),
            $"SELECT pg_terminate_backend({s.Pid});\nPrevent it: ALTER ROLE {PostgresIdentifier.Quote(s.User ?? "app")} SET idle_in_transaction_session_timeout = '{Num(ctx.Options.IdleInTransactionAfter.TotalSeconds * 2, "0")}s';  -- and commit or roll back promptly in the application")).ToList();
    }

    public static async Task<IReadOnlyList<Finding>> LongRunningAsync(PostgresContext ctx, CancellationToken ct)
    {
        var rows = await ctx.QueryAsync("""
            SELECT pid, usename, datname, application_name, extract(epoch FROM now() - query_start)::float8,
                   wait_event_type, wait_event, query
            FROM pg_stat_activity
            WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND now() - query_start > make_interval(secs => $1)
            ORDER BY query_start LIMIT $2
            """, r => (Pid: r.GetInt32(0), User: r.Str(1), Db: r.Str(2), App: r.Str(3), Secs: r.Dbl(4), WaitType: r.Str(5), Wait: r.Str(6), Query: r.Str(7)),
            ct, ctx.Options.LongRunningAfter.TotalSeconds, ctx.Limit).ConfigureAwait(false);
        return rows.Select(q => ctx.Finding("postgres.long_running",
            q.Secs >= ctx.Options.LongRunningCritical.TotalSeconds ? Severity.Critical : Severity.Warning,
            $"pid {q.Pid} ({q.User}) has run one statement for {Num(q.Secs, "0")} s",
            Evidence(("pid", q.Pid), ("user", q.User), ("database", q.Db), ("application_name", q.App), ("running_s", Num(q.Secs, "0.#")),
                ("wait_event", q.WaitType is null ? "none (on CPU)" : $"{q.WaitType}:{q.Wait}"), ("query", ctx.Snippet(q.Query))),
            $"SELECT pg_cancel_backend({q.Pid});   -- if it does not stop: SELECT pg_terminate_backend({q.Pid});\nThen look at its plan: polystore doctor explain '<the query with real values>'")).ToList();
    }

    public static async Task<IReadOnlyList<Finding>> BlockedAsync(PostgresContext ctx, CancellationToken ct)
    {
        // Every lock that was not granted, with each session that blocks it (pg_blocking_pids) and both queries.
        var rows = await ctx.QueryAsync("""
            SELECT w.pid, w.usename, extract(epoch FROM now() - coalesce(w.query_start, w.state_change))::float8, w.query,
                   l.locktype, l.mode, l.relation::regclass::text,
                   b.pid, b.usename, b.state, extract(epoch FROM now() - b.xact_start)::float8, b.query
            FROM pg_locks l
            JOIN pg_stat_activity w ON w.pid = l.pid
            CROSS JOIN LATERAL unnest(pg_blocking_pids(l.pid)) AS bp(pid)
            JOIN pg_stat_activity b ON b.pid = bp.pid
            WHERE NOT l.granted
            ORDER BY 3 DESC LIMIT $1
            """, r => (Pid: r.GetInt32(0), User: r.Str(1), Waiting: r.Dbl(2), Query: r.Str(3), LockType: r.Str(4), Mode: r.Str(5), Relation: r.Str(6),
                BlockerPid: r.GetInt32(7), BlockerUser: r.Str(8), BlockerState: r.Str(9), BlockerXact: r.Dbl(10), BlockerQuery: r.Str(11)),
            ct, ctx.Limit).ConfigureAwait(false);
        return rows.Select(b => ctx.Finding("postgres.blocked",
            b.Waiting >= ctx.Options.BlockedCritical.TotalSeconds ? Severity.Critical : Severity.Warning,
            $"pid {b.Pid} has waited {Num(b.Waiting, "0.#")} s for a {b.Mode} on {b.Relation ?? b.LockType} held by pid {b.BlockerPid} ({b.BlockerState})",
            Evidence(("blocked_pid", b.Pid), ("blocked_user", b.User), ("waiting_s", Num(b.Waiting, "0.#")), ("blocked_query", ctx.Snippet(b.Query)),
                ("lock_type", b.LockType), ("lock_mode", b.Mode), ("relation", b.Relation),
                ("blocking_pid", b.BlockerPid), ("blocking_user", b.BlockerUser), ("blocking_state", b.BlockerState),
                ("blocking_transaction_age_s", Num(b.BlockerXact, "0.#")), ("blocking_query", ctx.Snippet(b.BlockerQuery))),
            $"SELECT pg_cancel_backend({b.BlockerPid});   -- if it is idle in a transaction: SELECT pg_terminate_backend({b.BlockerPid});\nPrevent it: keep transactions short, and SET lock_timeout = '5s' in sessions that take locks")).ToList();
    }
}
