using System.Diagnostics.Metrics;
using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>
/// Pool saturation. Npgsql publishes its pools on the "Npgsql" meter (connections by state and the
/// maximum, per pool name); a <see cref="MeterListener"/> reads them in this process. Other processes'
/// pools are not visible from here, so the server side is shown too: sessions per application_name
/// against the configured per-process pool maximum.
/// </summary>
internal static class PostgresPoolCheck
{
    private const string Check = "postgres.pool";

    public static async Task<IReadOnlyList<Finding>> RunAsync(PostgresContext ctx, CancellationToken ct)
    {
        var findings = new List<Finding>();
        var pools = ReadPoolMetrics();
        foreach (var (name, pool) in pools.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (pool.Max <= 0 || name == PostgresContext.PoolName) continue;
            var ratio = (double)pool.Used / pool.Max;
            var severity = ratio >= ctx.Options.PoolWarning ? Severity.Warning : Severity.Info;
            findings.Add(ctx.Finding(Check, severity,
                $"Npgsql pool '{name}' in this process: {pool.Used} of {pool.Max} connections in use ({Percent(ratio)})",
                Evidence(("pool", name), ("used", pool.Used), ("idle", pool.Idle), ("max", pool.Max), ("used_of_max", Percent(ratio)), ("source", "Npgsql meter (this process)")),
                severity == Severity.Info ? null
                    : $"Raise pool.max_size / pool.max_overflow in postgresql.yaml (now {ctx.Settings.Pool.MaxSize} + {ctx.Settings.Pool.MaxOverflow}) only after checking for leaked connections (every OpenConnectionAsync needs an await using)."));
        }

        var app = ctx.Settings.Connection.ApplicationName;
        var perProcess = ctx.Settings.Pool.MaxSize + ctx.Settings.Pool.MaxOverflow;
        var rows = await ctx.QueryAsync("""
            SELECT count(*)::int, count(*) FILTER (WHERE state = 'active')::int,
                   count(*) FILTER (WHERE state = 'idle')::int, count(DISTINCT client_addr::text || ':' || coalesce(client_port, -1))::int
            FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'
            """, r => (Total: r.GetInt32(0), Active: r.GetInt32(1), Idle: r.GetInt32(2), Sockets: r.GetInt32(3)), ct, app).ConfigureAwait(false);
        var (total, active, idle, _) = rows[0];
        var serverRatio = perProcess == 0 ? 0 : (double)active / perProcess;
        findings.Add(ctx.Finding(Check,
            serverRatio >= ctx.Options.PoolWarning ? Severity.Warning : Severity.Info,
            $"Server view: {total} sessions named '{app}' ({active} active, {idle} idle); the configured pool allows {perProcess} per process",
            Evidence(("application_name", app), ("sessions", total), ("active", active), ("idle", idle), ("pool_max_per_process", perProcess),
                ("npgsql_pools_in_this_process", pools.Count(p => p.Key != PostgresContext.PoolName && p.Value.Max > 0)),
                ("visibility", ctx.ApplicationPool is null
                    ? "this process is polystore doctor, not the application: its pools are not the application's; call PostgresDiagnostics from the application (with its data source) to see them"
                    : "the application's pool is in this process")),
            serverRatio >= ctx.Options.PoolWarning
                ? $"SELECT client_addr, state, count(*) FROM pg_stat_activity WHERE application_name = {PostgresLiteral.Quote(app)} GROUP BY 1, 2 ORDER BY 3 DESC;  -- find the saturated process, then look for leaks before raising pool.max_size"
                : null));
        return findings;
    }

    private sealed class PoolCounts
    {
        public long Used;
        public long Idle;
        public long Max;
    }

    private static Dictionary<string, PoolCounts> ReadPoolMetrics()
    {
        var pools = new Dictionary<string, PoolCounts>(StringComparer.Ordinal);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Npgsql" && instrument.Name is "db.client.connection.count" or "db.client.connection.max")
                l.EnableMeasurementEvents(instrument);
        };
        void Record(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? pool = null, state = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "db.client.connection.pool.name") pool = tag.Value?.ToString();
                else if (tag.Key == "db.client.connection.state") state = tag.Value?.ToString();
            }
            pool ??= "(unnamed)";
            lock (pools)
            {
                if (!pools.TryGetValue(pool, out var counts)) pools[pool] = counts = new PoolCounts();
                if (instrument.Name == "db.client.connection.max") counts.Max += value;
                else if (state == "used") counts.Used += value;
                else if (state == "idle") counts.Idle += value;
            }
        }
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.Start();
        listener.RecordObservableInstruments();
        return pools;
    }
}
