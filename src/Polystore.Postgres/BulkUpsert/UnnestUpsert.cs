using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>A batch held in memory, sent as one array per column through <c>unnest</c> in one round trip.</summary>
internal static class UnnestUpsert<T>
{
    public static Task<(long Inserted, long Updated)> RunAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PostgresBulkUpsertPlan<T> plan,
        List<T> rows, PostgresBulkUpsertOptions options, UpsertFirstTrip trip, CancellationToken cancellationToken)
    {
        // Callers stage such tables; an array parameter of arrays would overflow Npgsql's stack, so never let one through.
        if (plan.HasArrayColumn) throw new InvalidOperationException($"bulk upsert into {plan.Table.DisplayName}: a table with an array column must be staged with COPY.");
        // Unlike the staging path there is no cheap server-side check here: a possible repeat sorts the batch.
        var sql = plan.DoNothing || !KeyTracker<T>.Unique(plan.KeyColumns, rows) ? plan.UpsertFromArraysDeduplicated : plan.UpsertFromArrays;
        var parameters = new List<NpgsqlParameter>(plan.Columns.Count);
        foreach (var (map, column) in plan.Columns)
        {
            var buffer = map.CreateBuffer(rows.Count);
            foreach (var row in rows) buffer.Add(row);
            // Callers stage tables with array columns; checked here too, since an array of arrays overflows Npgsql's stack.
            parameters.Add(buffer.ToParameter(column.WriteTypeName.EndsWith("[]", StringComparison.Ordinal)
                ? throw new InvalidOperationException($"bulk upsert into {plan.Table.DisplayName}: array column \"{column.Name}\" must be staged with COPY.")
                : column.WriteTypeName));
        }
        return UpsertStatementRunner<T>.RunAsync(connection, transaction, plan, sql, parameters, null, options, trip, cancellationToken);
    }
}
