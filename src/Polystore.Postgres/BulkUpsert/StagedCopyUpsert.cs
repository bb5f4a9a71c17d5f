using Npgsql;
using NpgsqlTypes;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A batch streamed with binary COPY into a temporary table (ON COMMIT DROP), then applied by one statement,
/// de-duplicated (last row wins) only when a conflict key may repeat.
/// </summary>
internal static class StagedCopyUpsert<T>
{
    /// <summary>
    /// Stages <paramref name="head"/> (rows already read), then the enumerator's rows while <paramref name="more"/>,
    /// up to <paramref name="limit"/> rows in all, and applies them.
    /// </summary>
    public static async Task<(long Received, long Inserted, long Updated)> RunAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        List<T> head, IAsyncEnumerator<T> rows, bool more, PostgresBulkUpsertOptions options, long limit, UpsertFirstTrip trip, CancellationToken cancellationToken)
    {
        // A batch in memory is hashed apart from the COPY: when its keys are proven unique, the rows need no ordinal
        // (it only orders duplicates), which makes the COPY about a fifth lighter. A batch that is the whole collection
        // does not wait for an unfinished proof: it goes without ordinals at once while the proof runs beside the COPY,
        // and if a key turns out to repeat it is staged again, numbered, from the collection. Waiting cost 5-40 ms
        // (median 9) of ~450 ms for 100k rows. Any other batch in memory waits for its proof, which overlaps the
        // round trip that creates the staging table (the command is on the wire before the first await).
        // The CREATE locks the table (ACCESS SHARE, to the end of the transaction) before a cached plan's check reads
        // the catalog: what the check sees cannot change before the rows are applied.
        var list = rows is ListRows<T> { InMemory: { Count: > 0 } all } l && all.Count <= limit && l.Read == head.Count ? l : null;
        // The whole collection with one text key may go in key order (see KeyOrder): the CREATE's round trip also
        // brings back the table's size and key correlation, which decide. The sort starts beside it only where the
        // table's last batch was ordered, so a run of update batches spends no core on a sort it drops. The same read
        // gives the MERGE's join steering the key's width, so that the statement after the COPY reads no pg_stats.
        var orderable = list is { InMemory.Count: >= KeyOrder.MinRows } && KeyOrder.Applies(plan.KeyColumns);
        var readShape = orderable || options.MergeHashMemoryBytes > 0;
        var early = orderable && KeyOrder.WantedLastTime(plan.Info.Key);
        var unwanted = early ? new CancellationTokenSource() : null; // not disposed: an unwanted sort may still read its token
        var createBatch = new NpgsqlBatch(connection, transaction) { Timeout = options.CommandTimeoutSeconds };
        createBatch.BatchCommands.Add(new NpgsqlBatchCommand(plan.CreateStaging));
        trip.AddCheck(createBatch);
        if (readShape) createBatch.BatchCommands.Add(MergeJoinSteering.ReadShape(plan.TableShapeNow, plan.KeyNames));
        var create = CreateAsync(createBatch, readShape, cancellationToken);
        var ordering = early ? Task.Run(() => KeyOrder.Sort(plan.KeyColumns[0], list!.InMemory!, unwanted!.Token), CancellationToken.None) : null;
        bool? provenUnique;
        T[]? ordered = null;
        var shape = TableShape.Unknown;
        try
        {
            if (list is not null)
            {
                provenUnique = list.KeysUniqueIfKnown(plan.KeyColumns);
                if (provenUnique is null) list.StartKeyProof(plan.KeyColumns);
            }
            else provenUnique = rows is ListRows<T> { InMemory: not null } other && await other.KeysUniqueAsync(plan.KeyColumns).ConfigureAwait(false);
        }
        finally
        {
            var wanted = false;
            try
            {
                shape = await create.ConfigureAwait(false);
                // Known duplicates go numbered in the caller's order: an ordered copy would go unused.
                wanted = orderable && list!.KeysUniqueIfKnown(plan.KeyColumns) != false && KeyOrder.Worth(list.InMemory!.Count, shape.Rows, shape.KeyCorrelation);
                if (orderable) KeyOrder.Remember(plan.Info.Key, wanted);
            }
            finally
            {
                // An unwanted sort is not waited for: it stops at its next check and keeps nothing.
                if (wanted) ordered = await (ordering ?? Task.Run(() => KeyOrder.Sort(plan.KeyColumns[0], list!.InMemory!, CancellationToken.None))).ConfigureAwait(false);
                else unwanted?.Cancel();
            }
        }
        try
        {
            return await CopyAndApplyAsync(connection, transaction, plan, head, rows, more, options, limit, trip, list, provenUnique, ordered, shape, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (ordered is not null) KeyOrder.Return(ordered, list!.InMemory!.Count);
        }
    }

    private static async Task<(long Received, long Inserted, long Updated)> CopyAndApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        PostgresBulkUpsertPlan<T> plan, List<T> head, IAsyncEnumerator<T> rows, bool more, PostgresBulkUpsertOptions options, long limit,
        UpsertFirstTrip trip, ListRows<T>? list, bool? provenUnique, T[]? ordered, TableShape shape, CancellationToken cancellationToken)
    {
        long received = 0;
        trip.FirstBatchDone();
        var withoutOrdinal = provenUnique != false;
        var keys = withoutOrdinal ? null : new KeyTracker<T>(plan.KeyColumns);
        bool certainlyUnique;
        var importer = await connection.BeginBinaryImportAsync(withoutOrdinal ? plan.CopyWithoutOrdinal : plan.Copy, cancellationToken).ConfigureAwait(false);
        await using (importer.ConfigureAwait(false))
        {
            importer.Timeout = options.CopyTimeout;
            if (ordered is not null && keys is null)
            {
                // The whole collection, in key order (unnumbered: numbers follow the caller's order, for duplicates);
                // the enumerator is only walked to its end.
                var count = list!.InMemory!.Count;
                for (var i = 0; i < count; i++)
                {
                    await WriteRowAsync(importer, plan, ordered[i], null, cancellationToken).ConfigureAwait(false);
                    received++;
                }
                head = [];
                while (more && await rows.MoveNextAsync().ConfigureAwait(false)) { }
            }
            foreach (var row in head)
            {
                keys?.Add(row);
                await WriteRowAsync(importer, plan, row, keys is null ? null : received + 1, cancellationToken).ConfigureAwait(false);
                received++;
            }
            while (more && received < limit && await rows.MoveNextAsync().ConfigureAwait(false))
            {
                var row = UpsertRows.NotNull(rows.Current);
                keys?.Add(row);
                await WriteRowAsync(importer, plan, row, keys is null ? null : received + 1, cancellationToken).ConfigureAwait(false);
                received++;
            }
            // The hashes are sorted while the server finishes the COPY.
            var unique = keys is null ? Task.FromResult(true) : Task.Run(keys.Finish, CancellationToken.None);
            try
            {
                await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                certainlyUnique = await unique.ConfigureAwait(false);
            }
        }
        if (provenUnique is null && !await list!.KeysUniqueAsync(plan.KeyColumns).ConfigureAwait(false))
        {
            // A key repeats: the rows go again, numbered, so that the last of them wins.
            await UpsertStatementRunner<T>.ExecuteAsync(connection, transaction, plan.TruncateStaging, options, cancellationToken).ConfigureAwait(false);
            await RestageNumberedAsync(connection, plan, list.InMemory!, options, cancellationToken).ConfigureAwait(false);
            certainlyUnique = false;
        }
        var hash = (received, options.MergeHashMemoryBytes, MergeJoinSteering.EntryBytes(shape.KeyWidth, plan.KeyNames.Length));
        var (inserted, updated) = await ApplyAsync(connection, transaction, plan, certainlyUnique, hash, options, trip, cancellationToken).ConfigureAwait(false);
        return (received, inserted, updated);
    }

    private static async Task RestageNumberedAsync(NpgsqlConnection connection, PostgresBulkUpsertPlan<T> plan, IReadOnlyCollection<T> rows,
        PostgresBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        var importer = await connection.BeginBinaryImportAsync(plan.Copy, cancellationToken).ConfigureAwait(false);
        await using (importer.ConfigureAwait(false))
        {
            importer.Timeout = options.CopyTimeout;
            long ordinal = 0;
            foreach (var row in rows)
                await WriteRowAsync(importer, plan, UpsertRows.NotNull(row), ++ordinal, cancellationToken).ConfigureAwait(false);
            await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    // Runs the batch that creates the staging table; with readShape, its last statement is TableShapeNow, whose row
    // it returns (else: TableShape.Unknown, no reason to order).
    private static async Task<TableShape> CreateAsync(NpgsqlBatch batch, bool readShape, CancellationToken cancellationToken)
    {
        await using (batch.ConfigureAwait(false))
        {
            var table = TableShape.Unknown;
            if (!readShape)
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                return table;
            }
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                do
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        if (reader.FieldCount == 3) table = MergeJoinSteering.ReadShapeRow(reader);
                }
                while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
            }
            return table;
        }
    }

    // The token is checked once per row rather than handed to every value write: Npgsql registers a
    // cancellation callback per call with a cancellable token, which measured ~30% slower COPY streaming.
    private static async Task WriteRowAsync(NpgsqlBinaryImporter importer, PostgresBulkUpsertPlan<T> plan, T row, long? ordinal, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await importer.StartRowAsync(CancellationToken.None).ConfigureAwait(false);
        if (ordinal is { } o) await importer.WriteAsync(o, NpgsqlDbType.Bigint, CancellationToken.None).ConfigureAwait(false);
        var columns = plan.Columns;
        var dbTypes = plan.CopyDbTypes;
        for (var i = 0; i < columns.Count; i++)
            await columns[i].Map.WriteAsync(importer, row, columns[i].Column.WriteTypeName, dbTypes[i], CancellationToken.None).ConfigureAwait(false);
    }

    // De-duplicating (DISTINCT ON, last one wins) needs a sort of the whole batch, so it is paid only when
    // a key repeats. While streaming, 64-bit key hashes prove most batches unique for free; only on a hash
    // collision (or past the tracking cap) does a server-side hash aggregate decide: on 100k rows that check
    // costs ~0.13 s, the sort ~0.5 s, and a savepoint + retry on error 21000 more than both.
    private static async Task<(long Inserted, long Updated)> ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        bool certainlyUnique, (long Rows, long MemoryCap, double EntryBytes) hash, PostgresBulkUpsertOptions options, UpsertFirstTrip trip, CancellationToken cancellationToken)
    {
        var duplicates = plan.DoNothing;
        if (!duplicates && !certainlyUnique)
        {
            var check = new NpgsqlCommand(plan.HasDuplicates, connection, transaction) { CommandTimeout = options.CommandTimeoutSeconds };
            await using (check.ConfigureAwait(false))
                duplicates = (bool)(await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
        return await UpsertStatementRunner<T>.RunAsync(connection, transaction, plan, duplicates ? plan.UpsertFromStagingDeduplicated : plan.UpsertFromStaging, null,
            hash.MemoryCap > 0 ? hash : null, options, trip, cancellationToken).ConfigureAwait(false);
    }
}
