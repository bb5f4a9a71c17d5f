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
/// <c>polystore-bench postgres</c>: Polystore's bulk upsert against linq2db and the hand-written techniques
/// (<see cref="PostgresUpsertPeers"/>), and keyset paging against OFFSET, side by side on the configured server in
/// one run; or, with <c>--scale</c>, rows/s and peak client memory up to 10M streamed rows. Works in its own schema,
/// dropped at the end.
/// </summary>
internal static class BenchPostgresCommand
{
    private const string Schema = PostgresUpsertPeers.Schema;
    private const string Users = PostgresUpsertPeers.Users;

    private static readonly Option<int> Rows = new("--rows") { Description = "Rows per upsert run (insert path, then update path). Default 100000.", DefaultValueFactory = _ => 100_000 };
    private static readonly Option<int> PagingRows = new("--paging-rows") { Description = "Rows in the paging table. Default 1000000.", DefaultValueFactory = _ => 1_000_000 };
    private static readonly Option<int> Repeat = new("--repeat") { Description = "Rounds (every technique once per round, order rotated each round); the median is reported. Default 3.", DefaultValueFactory = _ => 3 };
    private static readonly Option<int> Parallelism = new("--parallelism")
    {
        // The private servers of ./run run on this machine, so its cores are the server's.
        Description = "Connections for the parallel rows (Polystore's and the hand-written ones). Default: this machine's cores, 2 to 8.",
        DefaultValueFactory = _ => Math.Clamp(Environment.ProcessorCount, 2, 8),
    };
    private static readonly Option<bool> Scale = new("--scale")
    {
        Description = "Instead of the comparison: rows/s and peak client memory (VmHWM) of Polystore's default and of hand-written COPY -> temp table -> MERGE " +
            "at each size of --scale-rows, rows streamed from a generator. Takes minutes at 10M rows.",
    };
    private static readonly Option<string?> Only = new("--only") { Description = "Run only these techniques (comma-separated keys, e.g. polystore,copy_merge,unnest); ratios whose sides did not run are left out." };
    private static readonly Option<string> ScaleRows = new("--scale-rows") { Description = "Sizes for --scale, comma-separated. Default 100000,1000000,10000000.", DefaultValueFactory = _ => "100000,1000000,10000000" };

    /// <summary>A row of the comparison. <paramref name="Group"/>: polystore, peer (a library), hand (hand-written, one connection), hand_parallel, reference.</summary>
    private sealed record Technique(string Key, string Name, string Group, string Note, Func<IReadOnlyList<BenchUser>, CancellationToken, Task> Run,
        bool UpdatePath = true, int? RowCap = null, Func<CancellationToken, Task>? Prepare = null);

    public static Command Create()
    {
        var command = new Command("postgres", """
            Upsert N rows (insert path into an empty table, then update path over the same keys) with Polystore's default
            (one transaction) and parallel modes, linq2db 6.5.1 (BulkCopy into a temp table + Merge), and hand-written
            techniques: unnest in batches of 10,000; binary COPY into an UNLOGGED staging table + INSERT ... ON CONFLICT;
            binary COPY into a temp table + MERGE; multi-row VALUES at 1,000, 4,000 and 16,383 rows per statement; unnest and
            COPY + MERGE over the parallel mode's connections; one prepared statement per row (on min(N, 10000) rows); plain
            binary COPY (the ceiling). Then keyset pages against OFFSET at depth 0/10/50/90%.
            Every technique runs once per round, the order rotated each round; before each timed run the table is emptied
            (insert path) or refilled by one plain COPY (update path: the same table for every technique), VACUUM ANALYZEd
            and CHECKPOINTed alike for every row; autovacuum is off on the bench table.
            --json prints each technique's rounds and a 'ratios' object with per-round ratios. --scale measures rows/s and
            peak client memory from 100k to 10M streamed rows instead. Uses schema polystore_bench, dropped afterwards.
            """)
        { Rows, PagingRows, Repeat, Parallelism, Scale, ScaleRows, Only };
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
            List<long>? scaleSizes = null;
            if (parse.GetValue(Scale))
            {
                scaleSizes = [];
                foreach (var part in parse.GetValue(ScaleRows)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    if (!long.TryParse(part, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) || n < 1000)
                    {
                        CommonOptions.Error.MarkupLine($"[red]--scale-rows: '{Markup.Escape(part)}' is not a row count of at least 1000[/]");
                        return ExitCodes.InvalidConfig;
                    }
                    scaleSizes.Add(n);
                }
            }
            var json = parse.GetValue(CommonOptions.Json);

            await using var services = CliServices.Build(config);
            var sources = services.GetRequiredService<PostgresDataSources>();
            var ds = sources.Primary;
            try
            {
                await ExecAsync(ds, $"DROP SCHEMA IF EXISTS {Schema} CASCADE; CREATE SCHEMA {Schema}; " +
                    $"CREATE TABLE {Users} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL, region text NOT NULL, updated_at timestamptz); " +
                    // No autovacuum pass may land inside one row's timed run; every row gets the same VACUUM ANALYZE instead.
                    $"ALTER TABLE {Users} SET (autovacuum_enabled = off); " +
                    PostgresUpsertPeers.CreateStaging, cancellationToken);
                var serverVersion = await ScalarAsync<string>(ds, "SHOW server_version", cancellationToken);
                // Every timed run starts after a CHECKPOINT, so no technique pays for the dirty pages or the WAL of the
                // one before it. Needs superuser or pg_checkpoint; without it the runs go on unsettled and the JSON says so.
                var settle = await TryCheckpointAsync(ds, cancellationToken);
                var polystore = PostgresBulkUpsert.Into<BenchUser>(Users).Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).Column("region", u => u.Region)
                    .OnConflict("email").Update("name").Set("updated_at = now()").Build();
                if (scaleSizes is not null) return await ScaleAsync(ds, polystore, scaleSizes, serverVersion, settle, json, cancellationToken);

                var chunk = Math.Max(5_000, rows / (parallelism * 2));
                var linq2db = PostgresUpsertPeers.Linq2DbOptions(ds);
                Task OneTx(IReadOnlyList<BenchUser> r, Func<NpgsqlConnection, NpgsqlTransaction, IEnumerable<BenchUser>, CancellationToken, Task> body, CancellationToken ct) =>
                    PostgresUpsertPeers.InTransactionAsync(ds, r, body, ct);
                var techniques = new List<Technique>
                {
                    new("polystore", "Polystore default (one transaction)", "polystore", "PostgresBulkUpsert, default options: COPY into a temp table + MERGE (work_mem steered, cap 256 MB) above 10,000 rows",
                        (r, ct) => polystore.ExecuteAsync(ds, r, cancellationToken: ct)),
                    new("polystore_parallel", $"Polystore parallel ({parallelism} connections, chunks of {chunk:N0})", "polystore", "one transaction per chunk, not all-or-nothing",
                        (r, ct) => polystore.ExecuteAsync(ds, r, new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, Parallelism = parallelism, ChunkSize = chunk }, ct)),
                    new("linq2db", "linq2db 6.5.1: BulkCopy (ProviderSpecific) into a temp table + Merge", "peer",
                        "as its docs show; connections from the same Npgsql pool as every row; default work_mem (its docs set none); its Merge sets updated_at = CURRENT_TIMESTAMP",
                        (r, ct) => PostgresUpsertPeers.Linq2DbAsync(linq2db, r, ct)),
                    new("unnest", "unnest(arrays), batches of 10,000", "hand", "one transaction",
                        (r, ct) => OneTx(r, PostgresUpsertPeers.UnnestAsync, ct)),
                    new("staging_copy", "binary COPY to UNLOGGED staging + INSERT ... ON CONFLICT", "hand", "staging table created once and emptied before each run, both untimed",
                        (r, ct) => OneTx(r, PostgresUpsertPeers.StagingCopyAsync, ct), Prepare: ct => ExecAsync(ds, $"TRUNCATE {PostgresUpsertPeers.Staging}", ct)),
                    new("copy_merge", "binary COPY to a temp table + MERGE", "hand", $"temp table ON COMMIT DROP created in the run (as Polystore does); SET LOCAL work_mem = '{PostgresUpsertPeers.MergeWorkMem}' (Polystore's cap)",
                        (r, ct) => OneTx(r, PostgresUpsertPeers.CopyMergeAsync, ct)),
                };
                foreach (var size in PostgresUpsertPeers.ValuesBatches)
                    techniques.Add(new($"values_{size}", $"multi-row VALUES, {size:N0} rows/statement", "hand", $"{size * 4:N0} positional parameters per statement",
                        (r, ct) => OneTx(r, (c, tx, x, t) => PostgresUpsertPeers.ValuesAsync(c, tx, x, size, t), ct)));
                techniques.AddRange(
                [
                    new("unnest_parallel", $"unnest over {parallelism} connections, chunks of {chunk:N0}", "hand_parallel", "same chunks and connections as Polystore parallel; one transaction per chunk",
                        (r, ct) => PostgresUpsertPeers.ParallelAsync(ds, r, parallelism, chunk, PostgresUpsertPeers.UnnestAsync, ct)),
                    new("copy_merge_parallel", $"COPY + MERGE over {parallelism} connections, chunks of {chunk:N0}", "hand_parallel", "same chunks and connections as Polystore parallel; one transaction per chunk",
                        (r, ct) => PostgresUpsertPeers.ParallelAsync(ds, r, parallelism, chunk, PostgresUpsertPeers.CopyMergeAsync, ct)),
                    new("per_row", "one prepared statement per row", "reference", "on min(N, 10,000) rows",
                        (r, ct) => OneTx(r, (c, tx, x, t) => PostgresUpsertPeers.PerRowAsync(ds, c, tx, x, t), ct), RowCap: 10_000),
                    new("copy_ceiling", "plain binary COPY, no conflict handling (ceiling)", "reference", "insert path only: no conflict handling",
                        (r, ct) => OneTx(r, (c, _, x, t) => PostgresUpsertPeers.CopyCeilingAsync(c, x, t), ct), UpdatePath: false),
                ]);

                if (parse.GetValue(Only) is { } only)
                {
                    var keep = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
                    if (keep.FirstOrDefault(k => techniques.All(t => t.Key != k)) is { } unknown)
                    {
                        CommonOptions.Error.MarkupLine($"[red]--only: no technique '{Markup.Escape(unknown)}'; known: {Markup.Escape(string.Join(", ", techniques.Select(t => t.Key)))}[/]");
                        return ExitCodes.InvalidConfig;
                    }
                    techniques.RemoveAll(t => !keep.Contains(t.Key));
                }
                var insertRows = Enumerable.Range(0, rows).Select(i => new BenchUser($"user{i}@example.com", $"name{i}", i % 1000, Regions[i % Regions.Length])).ToList();
                var updateRows = insertRows.Select(u => u with { Name = "renamed" + u.Name }).ToList();

                // Untimed warm-up: every technique on a slice, then on the whole batch, so JIT tiering favours no one in
                // round 1 (with one pass, code called per row could still be waiting for its optimized version on a busy
                // machine), and no row is the first to run at full size (which ran at about half speed, whichever it was).
                foreach (var (t, warmRows) in techniques.Select(t => (t, Math.Min(rows, 20_000))).Concat(techniques.Select(t => (t, rows))))
                {
                    var n = Math.Min(warmRows, t.RowCap ?? warmRows);
                    Progress(json, $"warm-up: {t.Name}, {n:N0} rows");
                    await ExecAsync(ds, $"TRUNCATE {Users} RESTART IDENTITY", cancellationToken);
                    if (t.Prepare is not null) await t.Prepare(cancellationToken);
                    await t.Run(insertRows.GetRange(0, n), cancellationToken);
                    if (!t.UpdatePath) continue;
                    if (t.Prepare is not null) await t.Prepare(cancellationToken);
                    await t.Run(updateRows.GetRange(0, n), cancellationToken);
                }

                // Every technique once per round, the order rotated each round, so neither drifting load on a shared
                // machine nor the position in the round favours any row.
                var insertRates = techniques.ToDictionary(t => t.Key, _ => new List<double>());
                var updateRates = techniques.ToDictionary(t => t.Key, _ => new List<double>());
                var orders = new List<string[]>();
                for (var i = 0; i < repeat; i++)
                {
                    var order = techniques.Skip(i % techniques.Count).Concat(techniques.Take(i % techniques.Count)).ToList();
                    orders.Add([.. order.Select(t => t.Key)]);
                    foreach (var t in order)
                    {
                        var n = Math.Min(rows, t.RowCap ?? rows);
                        Progress(json, $"round {i + 1}/{repeat}: {t.Name}, {n:N0} rows");
                        await ExecAsync(ds, $"TRUNCATE {Users} RESTART IDENTITY", cancellationToken);
                        await SettleAsync(ds, settle, t, cancellationToken);
                        var ins = insertRows.GetRange(0, n);
                        insertRates[t.Key].Add(n / await TimeAsync(() => t.Run(ins, cancellationToken)));
                        var count = await ScalarAsync<long>(ds, $"SELECT count(*) FROM {Users}", cancellationToken);
                        if (count != n) throw new InvalidOperationException($"{t.Key}: expected {n} rows after the insert path, found {count}");
                        if (!t.UpdatePath) continue;
                        // Every update path starts from the same table: the rows put back by one plain COPY in their
                        // order (untimed). A technique's own insert leaves its own index layout (Polystore's, staged in
                        // key order, a 43% smaller e-mail index), and updating every row of a denser index splits more
                        // pages: that is the insert's doing, not the update technique's.
                        await RefillAsync(ds, ins, cancellationToken);
                        await SettleAsync(ds, settle, t, cancellationToken);
                        var upd = updateRows.GetRange(0, n);
                        updateRates[t.Key].Add(n / await TimeAsync(() => t.Run(upd, cancellationToken)));
                        var renamed = await ScalarAsync<long>(ds, $"SELECT count(*) FROM {Users} WHERE name LIKE 'renamed%' AND updated_at IS NOT NULL", cancellationToken);
                        if (renamed != n) throw new InvalidOperationException($"{t.Key}: expected {n} updated rows, found {renamed}");
                    }
                }
                await ExecAsync(ds, $"DROP TABLE {Users}", cancellationToken);

                var paging = await PagingAsync(ds, pagingRows, repeat, json, cancellationToken);

                // Derived per-round rows: the best VALUES batch size, the best hand-written single-connection technique,
                // the best hand-written parallel one (each round's best, so a row's rounds stay aligned with the others').
                var handSingle = techniques.Where(t => t.Group == "hand").Select(t => t.Key).ToList();
                var valuesKeys = handSingle.Where(k => k.StartsWith("values_", StringComparison.Ordinal)).ToList();
                var handParallel = techniques.Where(t => t.Group == "hand_parallel").Select(t => t.Key).ToList();
                List<double> Best(List<string> keys, bool update) => [.. BenchRatio.MaxPerRound([.. keys.Select(k => (IReadOnlyList<double>)(update ? updateRates : insertRates)[k])])!];
                var derived = new Dictionary<string, (List<double> Insert, List<double> Update, string Of)>();
                foreach (var (key, of) in new[] { ("values_best", valuesKeys), ("best_hand_written", handSingle), ("best_hand_written_parallel", handParallel) })
                    if (of.Count > 0) derived[key] = (Best(of, false), Best(of, true), string.Join(", ", of));
                bool Ran(string key) => derived.ContainsKey(key) || techniques.Any(t => t.Key == key);
                List<double> Rounds(string key, bool update) => derived.TryGetValue(key, out var d) ? (update ? d.Update : d.Insert) : (update ? updateRates : insertRates)[key];
                double Rate(string key, bool update) => Median(Rounds(key, update));
                BenchRatio Vs(string ours, string theirs, bool update = false) => BenchRatio.Of(Rate(ours, update), Rate(theirs, update), Rounds(ours, update), Rounds(theirs, update));
                var ratios = new Dictionary<string, BenchRatio>();
                void Add(string name, string ours, string theirs, bool update, double? target = null)
                {
                    if (!Ran(ours) || !Ran(theirs)) return;
                    ratios[name] = target is { } t ? Vs(ours, theirs, update).WithTarget(t) : Vs(ours, theirs, update);
                }
                foreach (var update in new[] { false, true })
                {
                    var p = update ? "update_path_" : "";
                    Add($"{p}upsert_vs_best_hand_written", "polystore", "best_hand_written", update, 0.95);
                    Add($"{p}upsert_vs_linq2db", "polystore", "linq2db", update, 1.1);
                    foreach (var k in handSingle.Append("values_best")) Add($"{p}upsert_vs_{k}", "polystore", k, update);
                    Add($"{p}upsert_vs_per_row", "polystore", "per_row", update, update ? null : 6);
                    Add($"{p}parallel_vs_best_hand_written_parallel", "polystore_parallel", "best_hand_written_parallel", update, 0.95);
                    Add($"{p}parallel_vs_best_hand_written", "polystore_parallel", "best_hand_written", update);
                    Add($"{p}parallel_vs_polystore_default", "polystore_parallel", "polystore", update);
                }
                Add("upsert_vs_copy_ceiling", "polystore", "copy_ceiling", false);
                double Deepest(Func<PageFigure, double> ms) => paging.GroupBy(p => p.Key).Select(g => ms(g.First(p => p.Depth == 90)) / ms(g.First(p => p.Depth == 0))).Max();
                ratios["keyset_deep_vs_first"] = new BenchRatio { Value = Deepest(p => p.KeysetMs) }.WithTarget(2, atMost: true);
                ratios["offset_deep_vs_first"] = new BenchRatio { Value = Deepest(p => p.OffsetMs) };

                var machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, postgresql = serverVersion, dotnet = Environment.Version.ToString(), npgsql = typeof(NpgsqlConnection).Assembly.GetName().Version?.ToString(), linq2db = typeof(LinqToDB.DataOptions).Assembly.GetName().Version?.ToString() };
                if (json)
                {
                    CommonOptions.WriteJson(new
                    {
                        machine,
                        rows, paging_rows = pagingRows, repeat, parallelism, checkpoint_before_each_run = settle,
                        round_orders = orders,
                        upsert = techniques.Select(t => new
                        {
                            technique = t.Key, description = t.Name, group = t.Group, note = t.Note, rows = Math.Min(rows, t.RowCap ?? rows),
                            insert_rows_per_s = Math.Round(Rate(t.Key, false)), update_rows_per_s = t.UpdatePath ? Math.Round(Rate(t.Key, true)) : (double?)null,
                            insert_rounds = insertRates[t.Key].Select(x => Math.Round(x)), update_rounds = t.UpdatePath ? updateRates[t.Key].Select(x => Math.Round(x)) : null,
                        }),
                        derived = derived.Select(d => new
                        {
                            technique = d.Key, best_of_each_round_among = d.Value.Of,
                            insert_rows_per_s = Math.Round(Median(d.Value.Insert)), update_rows_per_s = Math.Round(Median(d.Value.Update)),
                            insert_rounds = d.Value.Insert.Select(x => Math.Round(x)), update_rounds = d.Value.Update.Select(x => Math.Round(x)),
                        }),
                        paging = paging.Select(p => new { key = p.Key, depth_percent = p.Depth, keyset_ms = Math.Round(p.KeysetMs, 3), offset_ms = Math.Round(p.OffsetMs, 3) }),
                        ratios = ratios.ToDictionary(r => r.Key, r => r.Value.Rounded(3)),
                    });
                }
                else
                {
                    AnsiConsole.MarkupLine($"[bold]PostgreSQL {Markup.Escape(serverVersion)}[/], {Environment.ProcessorCount} cores, {rows:N0} rows per upsert run, {repeat} rounds (order rotated), medians" +
                        $"{(settle ? "; VACUUM ANALYZE + CHECKPOINT before each timed run" : "; VACUUM ANALYZE before each timed run, no CHECKPOINT (role lacks pg_checkpoint)")}; autovacuum off on the table");
                    var t1 = new Table().Border(TableBorder.Rounded).AddColumns("Technique", "Rows", "Insert rows/s", "Update rows/s", "Insert rounds", "Update rounds", "Note");
                    static string R(IEnumerable<double> v) => string.Join(" ", v.Select(x => (x / 1000).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + "k"));
                    foreach (var t in techniques)
                        t1.AddRow(Markup.Escape(t.Name), Math.Min(rows, t.RowCap ?? rows).ToString("N0"), Rate(t.Key, false).ToString("N0"), t.UpdatePath ? Rate(t.Key, true).ToString("N0") : "n/a",
                            R(insertRates[t.Key]), t.UpdatePath ? R(updateRates[t.Key]) : "", Markup.Escape(t.Note));
                    foreach (var (key, d) in derived)
                        t1.AddRow($"[italic]{key} (each round's best)[/]", "", Median(d.Insert).ToString("N0"), Median(d.Update).ToString("N0"), R(d.Insert), R(d.Update), Markup.Escape("of " + d.Of));
                    AnsiConsole.Write(t1);
                    AnsiConsole.MarkupLine("round orders: " + Markup.Escape(string.Join(" | ", orders.Select(o => string.Join(",", o)))));
                    var t2 = new Table().Border(TableBorder.Rounded).AddColumns("Key", "Depth", "Keyset page ms", "OFFSET page ms");
                    foreach (var p in paging) t2.AddRow(p.Key, $"{p.Depth}%", p.KeysetMs.ToString("0.000"), p.OffsetMs.ToString("0.000"));
                    AnsiConsole.Write(t2);
                    var t3 = new Table().Border(TableBorder.Rounded).AddColumns("Ratio", "Value", "Rounds", "Target");
                    foreach (var (name, r) in ratios)
                    {
                        var goal = r.Target is { } tg ? $"{(r.AtMost ? "<=" : ">=")} {tg}" : "";
                        var target = r.Met switch { true => $"[green]met ({goal})[/]", false => $"[red]missed ({goal})[/]", null => "" };
                        t3.AddRow(name, r.Value.ToString("0.00"), r.Rounds is null ? "" : string.Join(" ", r.Rounds.Select(x => x.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture))), target);
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

    /// <summary>Empties the bench table and puts <paramref name="rows"/> back with one plain binary COPY, in their order.</summary>
    private static async Task RefillAsync(NpgsqlDataSource ds, IReadOnlyList<BenchUser> rows, CancellationToken ct)
    {
        await ExecAsync(ds, $"TRUNCATE {Users} RESTART IDENTITY", ct);
        await PostgresUpsertPeers.InTransactionAsync(ds, rows, (c, _, x, t) => PostgresUpsertPeers.CopyCeilingAsync(c, x, t), ct);
    }

    /// <summary>The same settling before every timed run of every row: the row's own untimed preparation, VACUUM ANALYZE, CHECKPOINT.</summary>
    private static async Task SettleAsync(NpgsqlDataSource ds, bool checkpoint, Technique t, CancellationToken ct)
    {
        if (t.Prepare is not null) await t.Prepare(ct);
        await ExecAsync(ds, $"VACUUM ANALYZE {Users}", ct);
        if (checkpoint) await ExecAsync(ds, "CHECKPOINT", ct);
    }

    // ---- scale: rows/s and peak client memory, rows streamed ----

    private sealed record ScaleFigure(string Technique, long Rows, string Path, double RowsPerSecond, long BaselineRssKb, long PeakRssKb);

    /// <summary>
    /// Polystore's default and hand-written COPY → temp table → MERGE at each size, insert path then update path, the
    /// rows produced by a generator as they are sent (never held as a list). Peak RSS is the process's VmHWM, reset
    /// before each run by writing 5 to /proc/self/clear_refs (where the kernel refuses, the peak since start is shown).
    /// </summary>
    private static async Task<int> ScaleAsync(NpgsqlDataSource ds, PostgresBulkUpsertDefinition<BenchUser> polystore, List<long> sizes, string serverVersion, bool settle, bool json, CancellationToken ct)
    {
        static IEnumerable<BenchUser> Generate(long n, string prefix)
        {
            for (long i = 0; i < n; i++) yield return new BenchUser($"user{i}@example.com", $"{prefix}name{i}", (int)(i % 1000), Regions[i % Regions.Length]);
        }
        var techniques = new (string Key, Func<IEnumerable<BenchUser>, Task> Run)[]
        {
            ("polystore", r => polystore.ExecuteAsync(ds, r, cancellationToken: ct)),
            ("copy_merge", r => PostgresUpsertPeers.InTransactionAsync(ds, r, PostgresUpsertPeers.CopyMergeAsync, ct)),
        };
        // Untimed warm-up, as in the comparison: each technique twice on 20,000 rows, both paths.
        foreach (var (key, run) in techniques.Concat(techniques))
        {
            Progress(json, $"scale warm-up: {key}");
            await ExecAsync(ds, $"TRUNCATE {Users} RESTART IDENTITY", ct);
            await run(Generate(Math.Min(20_000, sizes.Min()), ""));
            await run(Generate(Math.Min(20_000, sizes.Min()), "renamed"));
        }
        var figures = new List<ScaleFigure>();
        var resettable = true;
        foreach (var n in sizes)
        {
            foreach (var (key, run) in techniques)
            {
                await ExecAsync(ds, $"TRUNCATE {Users} RESTART IDENTITY", ct);
                foreach (var (path, prefix) in new[] { ("insert", ""), ("update", "renamed") })
                {
                    Progress(json, $"scale: {key}, {n:N0} rows, {path} path");
                    await ExecAsync(ds, $"VACUUM ANALYZE {Users}", ct);
                    if (settle) await ExecAsync(ds, "CHECKPOINT", ct);
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    resettable &= ResetPeakRss();
                    var baseline = ProcStatusKb("VmRSS");
                    var seconds = await TimeAsync(() => run(Generate(n, prefix)));
                    figures.Add(new ScaleFigure(key, n, path, n / seconds, baseline, ProcStatusKb("VmHWM")));
                }
                var renamed = await ScalarAsync<long>(ds, $"SELECT count(*) FROM {Users} WHERE name LIKE 'renamed%' AND updated_at IS NOT NULL", ct);
                if (renamed != n) throw new InvalidOperationException($"scale {key}: expected {n} updated rows, found {renamed}");
            }
        }
        if (json)
        {
            CommonOptions.WriteJson(new
            {
                machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, postgresql = serverVersion, dotnet = Environment.Version.ToString() },
                peak_rss_reset_per_run = resettable,
                scale = figures.Select(f => new { technique = f.Technique, rows = f.Rows, path = f.Path, rows_per_s = Math.Round(f.RowsPerSecond), baseline_rss_mb = f.BaselineRssKb / 1024, peak_rss_mb = f.PeakRssKb / 1024 }),
            });
            return ExitCodes.Ok;
        }
        AnsiConsole.MarkupLine($"[bold]PostgreSQL {Markup.Escape(serverVersion)}[/], {Environment.ProcessorCount} cores, rows streamed from a generator, one run each; " +
            (resettable ? "peak RSS = VmHWM reset before each run" : "peak RSS = VmHWM since the process started (the kernel refused a reset)"));
        var table = new Table().Border(TableBorder.Rounded).AddColumns("Technique", "Rows", "Path", "Rows/s", "RSS before (MB)", "Peak RSS (MB)");
        foreach (var f in figures) table.AddRow(f.Technique, f.Rows.ToString("N0"), f.Path, f.RowsPerSecond.ToString("N0"), (f.BaselineRssKb / 1024).ToString("N0"), (f.PeakRssKb / 1024).ToString("N0"));
        AnsiConsole.Write(table);
        return ExitCodes.Ok;
    }

    private static bool ResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long ProcStatusKb(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return Environment.OSVersion.Platform == PlatformID.Unix ? 0 : Process.GetCurrentProcess().PeakWorkingSet64 / 1024;
    }

    private static readonly string[] Regions = ["eu", "us", "apac", "latam", "africa"];

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
