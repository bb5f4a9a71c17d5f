using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics;
using Npgsql;
using NpgsqlTypes;
using Polystore.Postgres;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Querying;
using Polystore.Cli;
using Spectre.Console;

namespace Polystore.Bench;

/// <summary>
/// <c>polystore-bench postgres</c>: Polystore's bulk upsert against the known techniques (unnest, staging
/// COPY, multi-row VALUES, per-row prepared, plain COPY ceiling) and keyset paging against OFFSET,
/// side by side on the configured server in one run. Works in its own schema, dropped at the end.
/// </summary>
internal static class BenchPostgresCommand
{
    private const string Schema = "polystore_bench";
    private const string Users = Schema + ".users";
    private const string Conflict = "ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, updated_at = now()";

    private static readonly Option<int> Rows = new("--rows") { Description = "Rows per upsert run (insert path, then update path). Default 100000.", DefaultValueFactory = _ => 100_000 };
    private static readonly Option<int> PagingRows = new("--paging-rows") { Description = "Rows in the paging table. Default 1000000.", DefaultValueFactory = _ => 1_000_000 };
    private static readonly Option<int> Repeat = new("--repeat") { Description = "Runs per figure; the median is reported. Default 3.", DefaultValueFactory = _ => 3 };
    private static readonly Option<int> Parallelism = new("--parallelism")
    {
        // The private servers of ./run run on this machine, so its cores are the server's.
        Description = "Connections for Polystore's parallel mode. Default: this machine's cores, 2 to 8.",
        DefaultValueFactory = _ => Math.Clamp(Environment.ProcessorCount, 2, 8),
    };

    private sealed record User(string Email, string Name, int Score, string Region);

    private sealed record Technique(string Key, string Name, Func<NpgsqlDataSource, List<User>, CancellationToken, Task> Run, bool UpdatePath = true, int? RowCap = null);

    public static Command Create()
    {
        var command = new Command("postgres", """
            Upsert N rows (insert path into an empty table, then update path over the same keys) with Polystore's
            default (one transaction) and parallel modes, unnest in batches of 10,000, binary COPY into an UNLOGGED
            staging table + INSERT ... SELECT, multi-row VALUES at the parameter limit, one prepared statement per
            row (on min(N, 10000) rows), and plain binary COPY (the ceiling); then keyset pages against OFFSET at
            depth 0/10/50/90% on a single key and on (score DESC, id ASC) with its index.
            Each timed run starts after a CHECKPOINT where the role may run one.
            --json prints figures and a 'ratios' object. Uses schema polystore_bench, dropped afterwards.
            """)
        { Rows, PagingRows, Repeat, Parallelism };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Postgres is not { } pg) return CommonOptions.MissingStore("postgresql.yaml");
            var rows = parse.GetValue(Rows);
            var pagingRows = parse.GetValue(PagingRows);
            var repeat = Math.Max(1, parse.GetValue(Repeat));
            var parallelism = parse.GetValue(Parallelism);
            if (parallelism is < 1 or > 64) { CommonOptions.Error.MarkupLine("[red]--parallelism must be between 1 and 64[/]"); return ExitCodes.InvalidConfig; }
            if (rows < 1000 || pagingRows < 1000) { CommonOptions.Error.MarkupLine("[red]--rows and --paging-rows must be at least 1000[/]"); return ExitCodes.InvalidConfig; }
            var json = parse.GetValue(CommonOptions.Json);

            await using var services = CliServices.Build(config);
            var sources = services.GetRequiredService<PostgresDataSources>();
            var ds = sources.Primary;
            try
            {
                await ExecAsync(ds, $"DROP SCHEMA IF EXISTS {Schema} CASCADE; CREATE SCHEMA {Schema}; " +
                    $"CREATE TABLE {Users} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL, region text NOT NULL, updated_at timestamptz)", cancellationToken);
                var insertRows = Enumerable.Range(0, rows).Select(i => new User($"user{i}@example.com", $"name{i}", i % 1000, Regions[i % Regions.Length])).ToList();
                var updateRows = insertRows.Select(u => u with { Name = "renamed" + u.Name }).ToList();
                var serverVersion = await ScalarAsync<string>(ds, "SHOW server_version", cancellationToken);
                // Every timed run starts after a CHECKPOINT, so no technique pays for the dirty pages or the WAL of the
                // one before it (an update-path run writes ~0.5 GB of WAL per 1M rows: a checkpoint landing inside one
                // technique's run at random was a large part of the run-to-run noise). Needs superuser or
                // pg_checkpoint; without it the runs go on unsettled and the JSON says so.
                var settle = await TryCheckpointAsync(ds, cancellationToken);

                var chunk = Math.Max(5_000, rows / (parallelism * 2));
                var polystore = PostgresBulkUpsert.Into<User>(Users).Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).Column("region", u => u.Region)
                    .OnConflict("email").Update("name").Set("updated_at = now()").Build();
                var techniques = new List<Technique>
                {
                    new("polystore", "Polystore default (one transaction)", (d, r, ct) => polystore.ExecuteAsync(d, r, cancellationToken: ct)),
                    new("polystore_parallel", $"Polystore parallel ({parallelism} connections, chunks of {chunk:N0})",
                        (d, r, ct) => polystore.ExecuteAsync(d, r, new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, Parallelism = parallelism, ChunkSize = chunk }, ct)),
                    new("unnest", "unnest(arrays), batches of 10,000", UnnestAsync),
                    new("staging_copy", "binary COPY to UNLOGGED staging + INSERT SELECT", StagingCopyAsync),
                    new("values", $"multi-row VALUES, {ValuesBatch:N0} rows/statement", ValuesAsync),
                    new("per_row", "one prepared statement per row", PerRowAsync, RowCap: 10_000),
                    new("copy_ceiling", "plain binary COPY, no conflict handling (ceiling)", CopyCeilingAsync, UpdatePath: false),
                };

                // Untimed warm-up: every technique once on a slice, so JIT tiering favours no one in round 1.
                var warmRows = Math.Min(rows, 20_000);
                foreach (var t in techniques)
                {
                    Progress(json, $"warm-up: {t.Name}, {Math.Min(warmRows, t.RowCap ?? warmRows):N0} rows");
                    await ExecAsync(ds, $"TRUNCATE {Users} RESTART IDENTITY", cancellationToken);
                    await t.Run(ds, insertRows.GetRange(0, Math.Min(warmRows, t.RowCap ?? warmRows)), cancellationToken);
                    if (t.UpdatePath) await t.Run(ds, updateRows.GetRange(0, Math.Min(warmRows, t.RowCap ?? warmRows)), cancellationToken);
                }

                // Round robin (every technique once per round) so drifting load on a shared machine hits all alike.
                var insertRates = techniques.ToDictionary(t => t.Key, _ => new List<double>());
                var updateRates = techniques.ToDictionary(t => t.Key, _ => new List<double>());
                for (var i = 0; i < repeat; i++)
                {
                    foreach (var t in techniques)
                    {
                        var n = Math.Min(rows, t.RowCap ?? rows);
                        Progress(json, $"round {i + 1}/{repeat}: {t.Name}, {n:N0} rows");
                        await ExecAsync(ds, $"TRUNCATE {Users} RESTART IDENTITY", cancellationToken);
                        await ExecAsync(ds, $"VACUUM ANALYZE {Users}", cancellationToken);
                        if (settle) await ExecAsync(ds, "CHECKPOINT", cancellationToken);
                        var ins = insertRows.GetRange(0, n);
                        insertRates[t.Key].Add(n / await TimeAsync(() => t.Run(ds, ins, cancellationToken)));
                        var count = await ScalarAsync<long>(ds, $"SELECT count(*) FROM {Users}", cancellationToken);
                        if (count != n) throw new InvalidOperationException($"{t.Key}: expected {n} rows after the insert path, found {count}");
                        if (!t.UpdatePath) continue;
                        if (settle) await ExecAsync(ds, "CHECKPOINT", cancellationToken);
                        var upd = updateRows.GetRange(0, n);
                        updateRates[t.Key].Add(n / await TimeAsync(() => t.Run(ds, upd, cancellationToken)));
                        var renamed = await ScalarAsync<long>(ds, $"SELECT count(*) FROM {Users} WHERE name LIKE 'renamed%' AND updated_at IS NOT NULL", cancellationToken);
                        if (renamed != n) throw new InvalidOperationException($"{t.Key}: expected {n} updated rows, found {renamed}");
                    }
                }
                var upsert = techniques.Select(t => (T: t, Insert: Median(insertRates[t.Key]), Update: t.UpdatePath ? Median(updateRates[t.Key]) : (double?)null, Rows: Math.Min(rows, t.RowCap ?? rows))).ToList();
                await ExecAsync(ds, $"DROP TABLE {Users}", cancellationToken);

                var paging = await PagingAsync(ds, pagingRows, repeat, json, cancellationToken);

                double Rate(string key, bool update = false) { var u = upsert.First(x => x.T.Key == key); return update ? u.Update ?? double.NaN : u.Insert; }
                // Every technique ran once per round, so round i of one over round i of another is a ratio too.
                List<double> Rounds(string key, bool update = false) => (update ? updateRates : insertRates)[key];
                BenchRatio Vs(string ours, string theirs, bool update = false) => BenchRatio.Of(Rate(ours, update), Rate(theirs, update), Rounds(ours, update), Rounds(theirs, update));
                // "The best single-connection technique" is the better of the two usual hand-written ones
                // (unnest, staging COPY); parallel against Polystore's own default is reported beside it.
                BenchRatio VsBestSingle(string ours, bool update = false) => BenchRatio.Of(Rate(ours, update), Math.Max(Rate("unnest", update), Rate("staging_copy", update)),
                    Rounds(ours, update), BenchRatio.MaxPerRound(Rounds("unnest", update), Rounds("staging_copy", update)));
                double Deepest(Func<PageFigure, double> ms) => paging.GroupBy(p => p.Key).Select(g => ms(g.First(p => p.Depth == 90)) / ms(g.First(p => p.Depth == 0))).Max();
                var ratios = new Dictionary<string, BenchRatio>
                {
                    ["upsert_vs_unnest"] = Vs("polystore", "unnest"),
                    ["upsert_vs_staging_copy"] = Vs("polystore", "staging_copy"),
                    ["upsert_vs_values"] = Vs("polystore", "values").WithTarget(1.5),
                    ["upsert_vs_per_row"] = Vs("polystore", "per_row").WithTarget(6),
                    ["upsert_vs_copy_ceiling"] = Vs("polystore", "copy_ceiling"),
                    ["parallel_vs_best_single"] = VsBestSingle("polystore_parallel").WithTarget(1.3),
                    ["keyset_deep_vs_first"] = new BenchRatio { Value = Deepest(p => p.KeysetMs) }.WithTarget(2, atMost: true),
                    ["update_path_upsert_vs_unnest"] = Vs("polystore", "unnest", true),
                    ["update_path_upsert_vs_staging_copy"] = Vs("polystore", "staging_copy", true),
                    ["update_path_upsert_vs_values"] = Vs("polystore", "values", true),
                    ["update_path_upsert_vs_per_row"] = Vs("polystore", "per_row", true),
                    ["update_path_parallel_vs_best_single"] = VsBestSingle("polystore_parallel", true),
                    ["parallel_vs_polystore_default"] = Vs("polystore_parallel", "polystore"),
                    ["update_path_upsert_vs_best_of_unnest_and_staging_copy"] = VsBestSingle("polystore", true),
                    ["offset_deep_vs_first"] = new BenchRatio { Value = Deepest(p => p.OffsetMs) },
                    ["upsert_vs_best_of_unnest_and_staging_copy"] = VsBestSingle("polystore").WithTarget(0.95),
                };

                if (json)
                {
                    CommonOptions.WriteJson(new
                    {
                        machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, postgresql = serverVersion, dotnet = Environment.Version.ToString() },
                        rows, paging_rows = pagingRows, repeat, checkpoint_before_each_run = settle,
                        upsert = upsert.Select(u => new { technique = u.T.Key, description = u.T.Name, rows = u.Rows, insert_rows_per_s = Math.Round(u.Insert), update_rows_per_s = u.Update is { } x ? Math.Round(x) : (double?)null }),
                        paging = paging.Select(p => new { key = p.Key, depth_percent = p.Depth, keyset_ms = Math.Round(p.KeysetMs, 3), offset_ms = Math.Round(p.OffsetMs, 3) }),
                        ratios = ratios.ToDictionary(r => r.Key, r => r.Value.Rounded(3)),
                    });
                }
                else
                {
                    AnsiConsole.MarkupLine($"[bold]PostgreSQL {Markup.Escape(serverVersion)}[/], {Environment.ProcessorCount} cores, {rows:N0} rows per upsert run, median of {repeat}{(settle ? ", CHECKPOINT before each timed run" : ", no CHECKPOINT between runs (role lacks pg_checkpoint)")}");
                    var t1 = new Table().Border(TableBorder.Rounded).AddColumns("Technique", "Rows", "Insert path rows/s", "Update path rows/s");
                    foreach (var u in upsert) t1.AddRow(Markup.Escape(u.T.Name), u.Rows.ToString("N0"), u.Insert.ToString("N0"), u.Update?.ToString("N0") ?? "n/a");
                    AnsiConsole.Write(t1);
                    var t2 = new Table().Border(TableBorder.Rounded).AddColumns("Key", "Depth", "Keyset page ms", "OFFSET page ms");
                    foreach (var p in paging) t2.AddRow(p.Key, $"{p.Depth}%", p.KeysetMs.ToString("0.000"), p.OffsetMs.ToString("0.000"));
                    AnsiConsole.Write(t2);
                    var t3 = new Table().Border(TableBorder.Rounded).AddColumns("Ratio", "Value", "Target");
                    foreach (var (name, r) in ratios)
                    {
                        var goal = r.Target is { } tg ? $"{(r.AtMost ? "<=" : ">=")} {tg}" : "";
                        var target = r.Met switch { true => $"[green]met ({goal})[/]", false => $"[red]missed ({goal})[/]", null => "" };
                        t3.AddRow(name, r.Value.ToString("0.00"), target);
                    }
                    AnsiConsole.Write(t3);
                }
                return ExitCodes.Ok;
            }
            finally
            {
                await ExecAsync(ds, $"DROP SCHEMA IF EXISTS {Schema} CASCADE", CancellationToken.None);
            }
        });
        return command;
    }

    private static readonly string[] Regions = ["eu", "us", "apac", "latam", "africa"];

    private const int ValuesBatch = 65_535 / 4;

    private static void Progress(bool json, string message)
    {
        if (!json || !Console.IsErrorRedirected) CommonOptions.Error.MarkupLine($"[grey]{Markup.Escape(message)}[/]");
    }

    private static async Task<double> TimeAsync(Func<Task> run)
    {
        var watch = Stopwatch.StartNew();
        await run();
        return watch.Elapsed.TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static async Task ExecAsync(NpgsqlDataSource ds, string sql, CancellationToken ct)
    {
        await using var cmd = ds.CreateCommand(sql);
        cmd.CommandTimeout = 0;
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static async Task<bool> TryCheckpointAsync(NpgsqlDataSource ds, CancellationToken ct)
    {
        try
        {
            await ExecAsync(ds, "CHECKPOINT", ct);
            return true;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            return false;
        }
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlDataSource ds, string sql, CancellationToken ct)
    {
        await using var cmd = ds.CreateCommand(sql);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }

    // ---- the known techniques, each written the way a careful engineer would by hand ----

    private static async Task UnnestAsync(NpgsqlDataSource ds, List<User> rows, CancellationToken ct)
    {
        await using var c = await ds.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await using var cmd = new NpgsqlCommand($"INSERT INTO {Users} (email, name, score, region) SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) {Conflict}", c, tx);
        for (var i = 0; i < rows.Count; i += 10_000)
        {
            var batch = rows.GetRange(i, Math.Min(10_000, rows.Count - i));
            cmd.Parameters.Clear();
            cmd.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = batch.Select(u => u.Email).ToArray() });
            cmd.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = batch.Select(u => u.Name).ToArray() });
            cmd.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = batch.Select(u => u.Score).ToArray() });
            cmd.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = batch.Select(u => u.Region).ToArray() });
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    private static async Task WriteCopyAsync(NpgsqlConnection c, string copy, List<User> rows, CancellationToken ct)
    {
        await using var w = await c.BeginBinaryImportAsync(copy, ct);
        foreach (var u in rows)
        {
            await w.StartRowAsync(ct);
            await w.WriteAsync(u.Email, NpgsqlDbType.Text, ct);
            await w.WriteAsync(u.Name, NpgsqlDbType.Text, ct);
            await w.WriteAsync(u.Score, NpgsqlDbType.Integer, ct);
            await w.WriteAsync(u.Region, NpgsqlDbType.Text, ct);
        }
        await w.CompleteAsync(ct);
    }

    private static async Task StagingCopyAsync(NpgsqlDataSource ds, List<User> rows, CancellationToken ct)
    {
        await using var c = await ds.OpenConnectionAsync(ct);
        await using (var create = new NpgsqlCommand($"DROP TABLE IF EXISTS {Schema}.staging; CREATE UNLOGGED TABLE {Schema}.staging (email text, name text, score int, region text)", c))
            await create.ExecuteNonQueryAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await WriteCopyAsync(c, $"COPY {Schema}.staging (email, name, score, region) FROM STDIN (FORMAT BINARY)", rows, ct);
        await using (var merge = new NpgsqlCommand($"INSERT INTO {Users} (email, name, score, region) SELECT email, name, score, region FROM {Schema}.staging {Conflict}; DROP TABLE {Schema}.staging", c, tx))
            await merge.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    private static async Task ValuesAsync(NpgsqlDataSource ds, List<User> rows, CancellationToken ct)
    {
        await using var c = await ds.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        for (var i = 0; i < rows.Count; i += ValuesBatch)
        {
            var batch = rows.GetRange(i, Math.Min(ValuesBatch, rows.Count - i));
            var sql = new System.Text.StringBuilder($"INSERT INTO {Users} (email, name, score, region) VALUES ");
            await using var cmd = new NpgsqlCommand { Connection = c, Transaction = tx };
            for (var j = 0; j < batch.Count; j++)
            {
                var p = j * 4;
                sql.Append(j == 0 ? "" : ",").Append("($").Append(p + 1).Append(",$").Append(p + 2).Append(",$").Append(p + 3).Append(",$").Append(p + 4).Append(')');
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch[j].Email });
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch[j].Name });
                cmd.Parameters.Add(new NpgsqlParameter<int> { TypedValue = batch[j].Score });
                cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch[j].Region });
            }
            cmd.CommandText = sql.Append(' ').Append(Conflict).ToString();
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    private static async Task PerRowAsync(NpgsqlDataSource ds, List<User> rows, CancellationToken ct)
    {
        await using var c = await ds.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await using var cmd = new NpgsqlCommand($"INSERT INTO {Users} (email, name, score, region) VALUES ($1, $2, $3, $4) {Conflict}", c, tx);
        var email = new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text };
        var name = new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text };
        var score = new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer };
        var region = new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text };
        cmd.Parameters.Add(email); cmd.Parameters.Add(name); cmd.Parameters.Add(score); cmd.Parameters.Add(region);
        // statement_cache_size: 0 (Max Auto Prepare = 0) says the server connection may change under us (PgBouncer in
        // transaction mode): a statement prepared by name would stay behind on it and collide with the next client's.
        if (new NpgsqlConnectionStringBuilder(ds.ConnectionString).MaxAutoPrepare > 0) await cmd.PrepareAsync(ct);
        foreach (var u in rows)
        {
            (email.TypedValue, name.TypedValue, score.TypedValue, region.TypedValue) = (u.Email, u.Name, u.Score, u.Region);
            await cmd.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    private static async Task CopyCeilingAsync(NpgsqlDataSource ds, List<User> rows, CancellationToken ct)
    {
        await using var c = await ds.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await WriteCopyAsync(c, $"COPY {Users} (email, name, score, region) FROM STDIN (FORMAT BINARY)", rows, ct);
        await tx.CommitAsync(ct);
    }

    // ---- keyset against OFFSET ----

    private sealed record PageFigure(string Key, int Depth, double KeysetMs, double OffsetMs);

    private static async Task<List<PageFigure>> PagingAsync(NpgsqlDataSource ds, int n, int repeat, bool json, CancellationToken ct)
    {
        const string items = Schema + ".items";
        const int pageSize = 100;
        Progress(json, $"paging table: {n:N0} rows, indexes on (id) and (score DESC, id)");
        await ExecAsync(ds, $"CREATE TABLE {items} (id bigint PRIMARY KEY, score int NOT NULL, name text NOT NULL); " +
            $"INSERT INTO {items} SELECT g, (g::bigint * 7919 % 10000)::int, 'name' || g FROM generate_series(1, {n}) g; " +
            $"CREATE INDEX items_score_id ON {items} (score DESC, id)", ct);
        await ExecAsync(ds, $"VACUUM ANALYZE {items}", ct);

        var figures = new List<PageFigure>();
        var single = KeysetQuery.From(items).Select("id", "score", "name").OrderBy("id").MaxPageSize(pageSize).Build();
        var composite = KeysetQuery.From(items).Select("id", "score", "name").OrderBy("score", SortDirection.Descending).ThenBy("id").MaxPageSize(pageSize).Build();
        foreach (var (key, query, order, keys) in new[]
        {
            ("id", single, "id", "id"),
            ("score DESC, id", composite, "score DESC, id", "score, id"),
        })
        {
            // Warm the plan cache and the buffers once, untimed.
            await query.PageAsync(ds, null, pageSize, r => r.GetInt64(0), ct);
            var depths = new[] { 0, 10, 50, 90 };
            var cursors = new Dictionary<int, string?>();
            var offsets = new Dictionary<int, long>();
            foreach (var depth in depths)
            {
                var offset = (long)n * depth / 100;
                offsets[depth] = offset;
                cursors[depth] = null;
                if (offset == 0) continue;
                await using var at = ds.CreateCommand($"SELECT {keys} FROM {items} ORDER BY {order} OFFSET {offset - 1} LIMIT 1");
                await using var r = await at.ExecuteReaderAsync(ct);
                await r.ReadAsync(ct);
                cursors[depth] = query.CreateCursor(true, Enumerable.Range(0, r.FieldCount).Select(r.GetValue).ToArray());
            }
            // Keyset pages cost about a millisecond, so take many samples, interleaving the depths so load
            // changes on a shared machine hit every depth alike; OFFSET pages are slow, a few samples do.
            Progress(json, $"paging on ({key}): keyset pages at 0/10/50/90% depth");
            var keyset = depths.ToDictionary(d => d, _ => new List<double>());
            for (var i = 0; i < Math.Max(21, repeat * 7); i++)
            {
                foreach (var depth in depths)
                {
                    keyset[depth].Add(1000 * await TimeAsync(async () =>
                    {
                        var page = await query.PageAsync(ds, cursors[depth], pageSize, r => r.GetInt64(0), ct);
                        if (page.Items.Count != pageSize) throw new InvalidOperationException("short keyset page");
                    }));
                }
            }
            foreach (var depth in depths)
            {
                Progress(json, $"paging on ({key}): OFFSET page at {depth}% depth");
                var offsetTimes = new List<double>();
                for (var i = 0; i < Math.Max(3, repeat); i++)
                {
                    offsetTimes.Add(1000 * await TimeAsync(async () =>
                    {
                        await using var c = await ds.OpenConnectionAsync(ct);
                        await using var cmd = new NpgsqlCommand($"SELECT id, score, name FROM {items} ORDER BY {order} OFFSET $1 LIMIT $2", c);
                        cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = offsets[depth] });
                        cmd.Parameters.Add(new NpgsqlParameter<int> { TypedValue = pageSize });
                        await using var reader = await cmd.ExecuteReaderAsync(ct);
                        var count = 0;
                        while (await reader.ReadAsync(ct)) { _ = reader.GetInt64(0); count++; }
                        if (count != pageSize) throw new InvalidOperationException("short OFFSET page");
                    }));
                }
                figures.Add(new PageFigure(key, depth, Median(keyset[depth]), Median(offsetTimes)));
            }
        }
        await ExecAsync(ds, $"DROP TABLE {items}", ct);
        return figures;
    }
}
