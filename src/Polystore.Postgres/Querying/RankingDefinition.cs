using Npgsql;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

/// <summary>
/// A ranking query. Results come ordered by partition, then rank. Index that helps: the filter
/// columns, then the partition columns, then the order keys, e.g. <c>CREATE INDEX ON users (region, score DESC) WHERE active</c>.
/// </summary>
public sealed class RankingDefinition
{
    private readonly string _table;
    private readonly string[] _select;
    private readonly string[] _partition;
    private readonly (string Column, SortDirection Direction)[] _order;
    private readonly Filter[] _filters;
    private readonly int? _top;

    internal RankingDefinition(string table, string[] select, string[] partition, (string, SortDirection)[] order, Filter[] filters, int? top) =>
        (_table, _select, _partition, _order, _filters, _top) = (table, select, partition, order, filters, top);

    /// <summary>Runs the ranking (use <c>PostgresDataSources.Reads</c> to send it to a replica).</summary>
    public async Task<IReadOnlyList<Ranked<T>>> ExecuteAsync<T>(NpgsqlDataSource dataSource, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(map);
        using var activity = PostgresTelemetry.Start("ranking", _table, dataSource);
        if (activity is { IsAllDataRequested: true })
        {
            if (_top is { } top) activity.SetTag("polystore.ranking.top", top);
            activity.SetTag("polystore.ranking.partitioned", _partition.Length > 0);
        }
        try
        {
            var rows = await RankAsync(dataSource, map, cancellationToken).ConfigureAwait(false);
            activity?.SetTag("db.response.returned_rows", rows.Count);
            return rows;
        }
        catch (Exception e)
        {
            PostgresTelemetry.Fail(activity, e);
            throw;
        }
    }

    private async Task<IReadOnlyList<Ranked<T>>> RankAsync<T>(NpgsqlDataSource dataSource, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken)
    {
        var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var table = await TableSchema.LoadAsync(connection, _table, null, cancellationToken).ConfigureAwait(false);
            var select = _select.Length == 0 ? table.Columns.ToList() : _select.Select(c => table.Column(c, "selected column")).ToList();
            var partition = _partition.Select(c => table.Column(c, "partition column")).ToList();
            // Rows without a value rank last either way (PostgreSQL's DESC would put them first: a "top 10 by score"
            // must not start with rows that have no score).
            var order = _order.Select(o => PostgresIdentifier.Quote(table.Column(o.Column, "rank order column").Name) + (o.Direction == SortDirection.Descending ? " DESC NULLS LAST" : " ASC NULLS LAST"));
            var command = new NpgsqlCommand { Connection = connection };
            await using (command.ConfigureAwait(false))
            {
                var where = _filters.Select(f => f.Render(table, command.Parameters)).ToList();
                var inner = string.Join(", ", select.Select(c => PostgresIdentifier.Quote(c.Name))
                    .Concat(partition.Select((c, i) => $"{PostgresIdentifier.Quote(c.Name)} AS polystore_p{i}")));
                var window = (partition.Count > 0 ? "PARTITION BY " + string.Join(", ", partition.Select(c => PostgresIdentifier.Quote(c.Name))) + " " : "") + "ORDER BY " + string.Join(", ", order);
                var outerColumns = string.Join(", ", select.Select((_, i) => $"r.c{i}"));
                string topFilter = "";
                if (_top is { } top)
                {
                    command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = top });
                    topFilter = $" WHERE r.polystore_rank <= ${command.Parameters.Count}";
                }
                // Inner columns are renamed c0..cn so user column names can never clash with ours.
                command.CommandText =
                    $"SELECT {outerColumns}, r.polystore_rank, r.polystore_dense_rank, r.polystore_percent_rank FROM (" +
                    $"SELECT {inner}, RANK() OVER w AS polystore_rank, DENSE_RANK() OVER w AS polystore_dense_rank, PERCENT_RANK() OVER w AS polystore_percent_rank, ROW_NUMBER() OVER w AS polystore_row " +
                    $"FROM {table.QualifiedName}{(where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "")} WINDOW w AS ({window})" +
                    $") AS r (" + string.Join(", ", select.Select((_, i) => $"c{i}").Concat(partition.Select((_, i) => $"polystore_p{i}"))) + ", polystore_rank, polystore_dense_rank, polystore_percent_rank, polystore_row)" +
                    $"{topFilter} ORDER BY {string.Concat(partition.Select((_, i) => $"r.polystore_p{i}, "))}r.polystore_row";
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    var rows = new List<Ranked<T>>();
                    var n = select.Count;
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        rows.Add(new Ranked<T>(map(reader), reader.GetInt64(n), reader.GetInt64(n + 1), reader.GetDouble(n + 2)));
                    return rows;
                }
            }
        }
    }
}
