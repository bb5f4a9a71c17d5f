using Npgsql;
using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>Sequences near overflow, transaction-id wraparound, and replication lag.</summary>
internal static class PostgresServerChecks
{
    private const double XidLimit = 2147483648d; // 2^31: PostgreSQL stops accepting writes shortly before age reaches it.

    public static async Task<IReadOnlyList<Finding>> SequencesAsync(PostgresContext ctx, CancellationToken ct)
    {
        // The real limit is the smaller of the sequence's max_value and its owning column's type:
        // a serial (integer) column overflows at 2^31-1 even though the sequence could go on.
        var rows = await ctx.QueryAsync("""
            SELECT s.schemaname, s.sequencename, s.data_type::text, s.max_value, s.last_value, s.increment_by,
                   has_sequence_privilege(c.oid, 'SELECT') OR has_sequence_privilege(c.oid, 'USAGE'),
                   o.tab, o.col, o.coltype, s.min_value, s.cycle
            FROM pg_sequences s
            JOIN pg_namespace n ON n.nspname = s.schemaname
            JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
            LEFT JOIN LATERAL (
                SELECT t.relname AS tab, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS coltype
                FROM pg_depend d
                JOIN pg_class t ON t.oid = d.refobjid
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                LIMIT 1) o ON true
            WHERE ($1::text[] IS NULL OR s.schemaname = ANY($1))
            """, r => (Schema: r.GetString(0), Name: r.GetString(1), Type: r.GetString(2), Max: r.Long(3), Last: r.LongOrNull(4), Inc: r.Long(5),
                Visible: r.Bool(6), Table: r.Str(7), Column: r.Str(8), ColumnType: r.Str(9), Min: r.Long(10), Cycle: r.Bool(11)),
            ct, ctx.SchemaParameter()).ConfigureAwait(false);
        var found = new List<(double Ratio, Finding Finding)>();
        var hidden = rows.Where(s => !s.Visible).ToList();
        foreach (var s in rows.Where(s => s.Visible && s.Last is not null && s.Inc != 0))
        {
            // A descending sequence runs towards the larger (closer to zero) of its min_value and its column's minimum.
            var descending = s.Inc < 0;
            var columnLimit = descending
                ? s.ColumnType switch { "smallint" => short.MinValue, "integer" => int.MinValue, _ => long.MinValue }
                : s.ColumnType switch { "smallint" => short.MaxValue, "integer" => int.MaxValue, _ => long.MaxValue };
            var limit = descending ? Math.Max(s.Min, columnLimit) : Math.Min(s.Max, columnLimit);
            // A CYCLE sequence starts again at its own bound: nearing it is by design. Only a narrower column still overflows.
            if (s.Cycle && limit == (descending ? s.Min : s.Max)) continue;
            var ratio = (double)s.Last!.Value / limit;
            if (ratio < ctx.Options.SequenceWarning) continue;
            var narrowColumn = columnLimit is > long.MinValue and < long.MaxValue && s.Table is not null; // widening the column (and sequence) is the fix
            var remedy = narrowColumn
                ? $"ALTER TABLE {PostgresIdentifier.Qualified(s.Schema, s.Table!)} ALTER COLUMN {PostgresIdentifier.Quote(s.Column!)} TYPE bigint;  -- rewrites the table under an exclusive lock: plan a window\nALTER SEQUENCE {PostgresIdentifier.Qualified(s.Schema, s.Name)} AS bigint;"
                : descending
                    ? $"ALTER SEQUENCE {PostgresIdentifier.Qualified(s.Schema, s.Name)} AS bigint MINVALUE -9223372036854775808;"
                    : $"ALTER SEQUENCE {PostgresIdentifier.Qualified(s.Schema, s.Name)} AS bigint MAXVALUE 9223372036854775807;";
            found.Add((ratio, ctx.Finding("postgres.sequences", ratio >= ctx.Options.SequenceCritical ? Severity.Critical : Severity.Warning,
                $"Sequence {s.Schema}.{s.Name} is {Percent(ratio)} of the way to {(narrowColumn ? $"its column {s.Table}.{s.Column} ({s.ColumnType}) overflowing" : descending ? "its minimum" : "its maximum")}",
                Evidence(("schema", s.Schema), ("sequence", s.Name), ("last_value", s.Last), ("limit", limit), ("used", Percent(ratio)), ("sequence_type", s.Type),
                    ("column", s.Table is null ? null : $"{s.Table}.{s.Column}"), ("column_type", s.ColumnType)),
                remedy)));
        }
        // The worst first, so a capped list keeps them.
        List<Finding> findings = [.. found.OrderByDescending(f => f.Ratio).Take(ctx.Limit).Select(f => f.Finding)];
        if (hidden.Count > 0)
        {
            var role = (await ctx.QueryAsync("SELECT current_user", r => r.GetString(0), ct).ConfigureAwait(false))[0];
            var names = string.Join(", ", hidden.Take(10).Select(h => $"{h.Schema}.{h.Name}")) + (hidden.Count > 10 ? ", …" : "");
            var schemas = hidden.Select(h => h.Schema).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            findings.Add(ctx.Finding("postgres.sequences", Severity.Info,
                $"Could not see how far {hidden.Count} sequences have gone: role {role} has no SELECT or USAGE on them ({names})",
                Evidence(("role", role), ("hidden_sequences", hidden.Count), ("examples", names)),
                string.Join("\n", schemas.Select(schema => $"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {PostgresIdentifier.Quote(schema)} TO {PostgresIdentifier.Quote(role)};"))));
        }
        return findings;
    }

    public static async Task<IReadOnlyList<Finding>> WraparoundAsync(PostgresContext ctx, CancellationToken ct)
    {
        var rows = await ctx.QueryAsync("""
            SELECT datname, age(datfrozenxid)::bigint, current_setting('autovacuum_freeze_max_age')::bigint
            FROM pg_database WHERE datallowconn ORDER BY 2 DESC
            """, r => (Db: r.GetString(0), Age: r.Long(1), FreezeMax: r.Long(2)), ct).ConfigureAwait(false);
        var findings = new List<Finding>();
        foreach (var d in rows)
        {
            var ratio = d.Age / XidLimit;
            var severity = ratio >= ctx.Options.WraparoundCritical ? Severity.Critical : ratio >= ctx.Options.WraparoundWarning ? Severity.Warning : Severity.Info;
            if (severity == Severity.Info && findings.Count > 0) continue; // one info line (the oldest) is enough
            findings.Add(ctx.Finding("postgres.wraparound", severity,
                $"Database {d.Db}: oldest unfrozen transaction id is {d.Age} transactions old ({Percent(ratio)} of the 2^31 wraparound limit)",
                Evidence(("database", d.Db), ("age_datfrozenxid", d.Age), ("of_wraparound_limit", Percent(ratio)), ("autovacuum_freeze_max_age", d.FreezeMax)),
                severity == Severity.Info ? null
                    : $"psql -d {ShellQuote(d.Db)} -c 'VACUUM (FREEZE, VERBOSE);'  -- and look for what holds back the xmin horizon: long transactions, prepared transactions (pg_prepared_xacts), stale replication slots"));
        }
        return findings;
    }

    public static async Task<IReadOnlyList<Finding>> ReplicationAsync(PostgresContext ctx, CancellationToken ct)
    {
        var findings = new List<Finding>();
        string? primaryLsn = null;
        var connection = await ctx.OpenAsync(ct).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var inRecovery = (await PostgresContext.QueryAsync(connection, "SELECT pg_is_in_recovery()", r => r.GetBoolean(0), ct).ConfigureAwait(false))[0];
            if (inRecovery)
            {
                findings.Add(ctx.Finding("postgres.replication", Severity.Warning, "The configured primary is a standby (in recovery): writes will fail",
                    Evidence(("host", $"{ctx.Settings.Connection.Host}:{ctx.Settings.Connection.Port}"), ("pg_is_in_recovery", "true")),
                    "Point connection.host in postgresql.yaml at the primary, or promote this server: SELECT pg_promote();"));
            }
            else
            {
                await PrimaryViewAsync(ctx, connection, findings, ct).ConfigureAwait(false);
                primaryLsn = (await PostgresContext.QueryAsync(connection, "SELECT pg_current_wal_lsn()::text", r => r.GetString(0), ct).ConfigureAwait(false))[0];
            }
        }
        foreach (var replica in ctx.Settings.Replication.ReadReplicas)
            findings.Add(await StandbyViewAsync(ctx, replica.Host, replica.Port, primaryLsn, ct).ConfigureAwait(false));
        return findings;
    }

    private static async Task PrimaryViewAsync(PostgresContext ctx, NpgsqlConnection connection, List<Finding> findings, CancellationToken ct)
    {
        var standbys = await PostgresContext.QueryAsync(connection, """
            SELECT application_name, client_addr::text, state, sync_state,
                   pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
                   extract(epoch FROM replay_lag)::float8, extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8
            FROM pg_stat_replication
            """, r => (App: r.Str(0), Addr: r.Str(1), State: r.Str(2), Sync: r.Str(3), Bytes: r.LongOrNull(4), Replay: r.DblOrNull(5), Write: r.DblOrNull(6), Flush: r.DblOrNull(7)),
            ct).ConfigureAwait(false);
        foreach (var s in standbys)
        {
            if (s.State is null)
            {
                findings.Add(ctx.Finding("postgres.replication", Severity.Info, "A standby is connected but its state and lag are hidden from this role",
                    Evidence(("standby", s.App)), "GRANT pg_monitor TO <this role>;  -- pg_stat_replication shows lag only to pg_read_all_stats members"));
                continue;
            }
            var lag = s.Replay ?? 0;
            var severity = lag >= ctx.Options.ReplicationLagCritical.TotalSeconds ? Severity.Critical
                : lag >= ctx.Options.ReplicationLagWarning.TotalSeconds || s.State != "streaming" ? Severity.Warning : Severity.Info;
            findings.Add(ctx.Finding("postgres.replication", severity,
                $"Standby {s.App} ({s.Addr}) is {s.State}: replay lag {Num(lag, "0.###")} s, {Bytes(s.Bytes ?? 0)} of WAL behind",
                Evidence(("standby", s.App), ("client_addr", s.Addr), ("state", s.State), ("sync_state", s.Sync), ("replay_lag_bytes", s.Bytes),
                    ("replay_lag_s", s.Replay is null ? "0 (idle)" : Num(lag, "0.###")), ("write_lag_s", s.Write), ("flush_lag_s", s.Flush)),
                severity == Severity.Info ? null : "On the standby: SELECT pg_is_wal_replay_paused();  -- if true: SELECT pg_wal_replay_resume();  otherwise check its disk and CPU, and long queries there (max_standby_streaming_delay)"));
        }
        var slots = await PostgresContext.QueryAsync(connection, """
            SELECT slot_name, slot_type, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
            FROM pg_replication_slots WHERE NOT active
            """, r => (Name: r.GetString(0), Type: r.Str(1), Retained: r.LongOrNull(2)), ct).ConfigureAwait(false);
        foreach (var slot in slots)
        {
            findings.Add(ctx.Finding("postgres.replication", Severity.Warning,
                $"Replication slot {slot.Name} is inactive and keeps {Bytes(slot.Retained ?? 0)} of WAL (and the xmin horizon) back",
                Evidence(("slot", slot.Name), ("slot_type", slot.Type), ("retained_wal_bytes", slot.Retained)),
                $"SELECT pg_drop_replication_slot({PostgresLiteral.Quote(slot.Name)});  -- only if no consumer will come back for it"));
        }
        if (standbys.Count == 0 && ctx.Settings.Replication.ReadReplicas.Count > 0)
        {
            findings.Add(ctx.Finding("postgres.replication", Severity.Warning,
                $"postgresql.yaml lists {ctx.Settings.Replication.ReadReplicas.Count} read replicas but no standby is streaming from the primary",
                Evidence(("configured_replicas", ctx.Settings.Replication.ReadReplicas.Count), ("streaming_standbys", 0)),
                "On each replica: SELECT status, last_msg_receipt_time FROM pg_stat_wal_receiver;  and check primary_conninfo"));
        }
    }

    private static async Task<Finding> StandbyViewAsync(PostgresContext ctx, string host, int port, string? primaryLsn, CancellationToken ct)
    {
        // Lag in bytes = the primary's current WAL position minus what the standby has replayed. The
        // standby's "now() - pg_last_xact_replay_timestamp()" is not used for severity: on an idle
        // primary it grows with no lag at all. The time lag comes from pg_stat_replication on the primary.
        var endpoint = $"{host}:{port}";
        try
        {
            var connection = await ctx.Replica(host, port).OpenConnectionAsync(ct).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                var r = (await PostgresContext.QueryAsync(connection, """
                    SELECT pg_is_in_recovery(),
                           CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,
                           CASE WHEN $1::text IS NOT NULL THEN greatest(pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()), 0) END::bigint,
                           extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
                           (SELECT status FROM pg_stat_wal_receiver)
                    """, x => (Recovery: x.GetBoolean(0), Paused: x.IsDBNull(1) ? (bool?)null : x.GetBoolean(1), Behind: x.LongOrNull(2), LastReplay: x.DblOrNull(3), Receiver: x.Str(4)),
                    ct, (object?)primaryLsn).ConfigureAwait(false))[0];
                if (!r.Recovery)
                {
                    return ctx.Finding("postgres.replication", Severity.Warning, $"Read replica {endpoint} is not a standby: it accepts writes and does not follow the primary",
                        Evidence(("replica", endpoint), ("pg_is_in_recovery", "false")),
                        "Remove it from replication.read_replicas in postgresql.yaml, or rebuild it as a standby (pg_basebackup -R)");
                }
                var behind = r.Behind ?? 0;
                var severity = r.Receiver is null || r.Paused == true || behind >= ctx.Options.ReplicationLagBytesCritical ? Severity.Critical
                    : behind >= ctx.Options.ReplicationLagBytesWarning ? Severity.Warning : Severity.Info;
                var remedy = r.Paused == true ? "SELECT pg_wal_replay_resume();  -- on the standby"
                    : r.Receiver is null ? "The WAL receiver is not running: check primary_conninfo and the primary's pg_hba.conf, then the standby's log"
                    : severity == Severity.Info ? null
                    : "Check the standby's disk and CPU and its long queries (max_standby_streaming_delay); on the primary: SELECT * FROM pg_stat_replication;";
                return ctx.Finding("postgres.replication", severity,
                    $"Standby {endpoint}: {(r.Behind is null ? "bytes behind unknown (primary not reachable as primary)" : $"{Bytes(behind)} of WAL behind the primary")}, WAL receiver {r.Receiver ?? "not running"}{(r.Paused == true ? ", replay PAUSED" : "")}",
                    Evidence(("replica", endpoint), ("replay_bytes_behind_primary", r.Behind), ("wal_receiver", r.Receiver ?? "not running"), ("replay_paused", r.Paused),
                        ("last_replayed_transaction_age_s", r.LastReplay is { } lr ? Num(lr, "0.#") : null)),
                    remedy);
            }
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            var why = await PostgresTlsDiagnosis.ExplainAsync(PostgresFailure.Describe(e), ctx.Settings, [(host, port)], ct).ConfigureAwait(false);
            return ctx.Finding("postgres.replication", Severity.Critical, $"Read replica {endpoint} is unreachable: {ctx.Snippet(why)}",
                Evidence(("replica", endpoint), ("error", e.GetType().Name)),
                "Start it or fix the network; until then reads fall back to the primary only if it is listed too");
        }
    }
}
