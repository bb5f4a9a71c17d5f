using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Upserts rows in a transaction someone else begins and ends: a batch of up to
/// <see cref="PostgresBulkUpsertOptions.UnnestThreshold"/> rows through <see cref="UnnestUpsert{T}"/>,
/// a larger one through <see cref="StagedCopyUpsert{T}"/>.
/// </summary>
internal static class TransactionUpsert<T>
{
    /// <summary>Upserts up to <paramref name="limit"/> rows of the enumerator in the current transaction, and says how they were sent.</summary>
    public static async Task<(long Received, long Inserted, long Updated, UpsertTechniques Technique)> RunAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, long limit, UpsertFirstTrip trip, CancellationToken cancellationToken)
    {
        // Small batches: one round trip with arrays beats creating a temp table and a COPY. An array column cannot
        // go through unnest (it would flatten the arrays), so such a table is always staged; so is a key that only the
        // table's own types compare right (numeric(p,s), char(n), a nondeterministic collation: unnest's arrays have
        // the plain types, so its de-duplication would miss keys the table calls equal).
        var threshold = plan.HasArrayColumn || plan.HasUnprovenKey ? 0 : options.UnnestThreshold;
        var head = new List<T>((int)Math.Min(threshold + 1L, 4096));
        var more = true;
        while (head.Count <= threshold && head.Count < limit && (more = await rows.MoveNextAsync().ConfigureAwait(false)))
            head.Add(UpsertRows.NotNull(rows.Current));
        try
        {
            if (!more || head.Count >= limit)
            {
                if (head.Count == 0) return (0, 0, 0, UpsertTechniques.None);
                if (head.Count <= threshold)
                {
                    var (i, u) = await UnnestUpsert<T>.RunAsync(connection, transaction, plan, head, options, trip, cancellationToken).ConfigureAwait(false);
                    return (head.Count, i, u, UpsertTechniques.Unnest);
                }
            }
            var (received, inserted, updated) = await StagedCopyUpsert<T>.RunAsync(connection, transaction, plan, head, rows, more, options, limit, trip, cancellationToken).ConfigureAwait(false);
            return (received, inserted, updated, UpsertTechniques.Copy);
        }
        // Only statements of the first batch count as stale, and no row beyond the head is read before it ends.
        catch (Exception e) when (trip.IsStale(e))
        {
            throw new UpsertStalePlanException<T>(head, more, e);
        }
    }
}
