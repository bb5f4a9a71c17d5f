using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;
using NpgsqlTypes;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

/// <summary>
/// A keyset (seek) query: each page continues from the keys of the last row seen
/// (<c>WHERE (score, id) &lt; ($1, $2)</c>), so a page deep in the table costs the same as the first,
/// unlike OFFSET, and rows inserted or deleted between fetches never shift a page.
/// </summary>
/// <remarks>
/// <para>Index needed: a B-tree on the equality filter columns, then the sort keys in their directions
/// (or all reversed), e.g. <c>CREATE INDEX ON users (region, score DESC, id)</c>; see
/// <see cref="RecommendedIndex"/>. Without it every page sorts the whole filtered table.</para>
/// <para>The sort keys must be NOT NULL and together unique (the catalog must show a unique index
/// within them); end the order with the primary key. Mixed directions are supported: with
/// uniform directions the seek is one row comparison; with mixed ones it is
/// <c>score &lt;= $1 AND (score &lt; $1 OR id &gt; $2)</c>, whose first condition bounds the index scan.</para>
/// <para>Cursors are opaque and signed (HMAC-SHA256, <see cref="CursorSigner"/>); a changed, forged or
/// foreign cursor raises <see cref="InvalidCursorException"/> before any SQL runs, and one longer than
/// <see cref="MaxCursorLength"/> before it is even decoded. Every cursor the query issues is accepted back: its length
/// follows from <see cref="MaxKeyBytes"/>, and a row whose keys are longer fails the page instead.</para>
/// <para>Memory follows the rows a page returns, never the page size asked for.</para>
/// </remarks>
public sealed class KeysetQueryDefinition
{
    private readonly string _table;
    private readonly string[] _select;
    private readonly (string Column, SortDirection Direction)[] _keys;
    private readonly Filter[] _filters;
    private readonly CursorSigner _signer;
    private readonly string _fingerprint;
    private readonly ConcurrentDictionary<string, Task<Plan>> _plans = new(StringComparer.Ordinal);

    /// <summary>
    /// The default of <see cref="KeysetQueryBuilder.MaxKeyBytes"/>: 16 KiB of key text per row, 4,096 characters of any
    /// script (UTF-8 takes at most 4 bytes a character).
    /// </summary>
    public const int DefaultMaxKeyBytes = 16 * 1024;

    /// <summary>The largest <see cref="KeysetQueryBuilder.MaxKeyBytes"/> accepted (1 MiB).</summary>
    public const int MaxKeyBytesLimit = 1024 * 1024;

    internal KeysetQueryDefinition(string table, string[] select, (string, SortDirection)[] keys, Filter[] filters, int maxPageSize, int maxKeyBytes, CursorSigner signer)
    {
        _table = table;
        _select = select;
        _keys = keys;
        _filters = filters;
        MaxPageSize = maxPageSize;
        MaxKeyBytes = maxKeyBytes;
        _signer = signer;
        _fingerprint = CursorSigner.Fingerprint(string.Join("\u0000", new[] { table }
            .Concat(keys.Select(k => $"{k.Item1}\u0001{k.Item2}"))
            .Concat(filters.Select(f => f.Describe()))));
        MaxCursorLength = CursorSigner.MaxCursorLength(_fingerprint, keys.Length, maxKeyBytes);
    }

    /// <summary>The largest page size accepted.</summary>
    public int MaxPageSize { get; }

    /// <summary>The most bytes of UTF-8 text the sort keys of one row may take together (see <see cref="KeysetQueryBuilder.MaxKeyBytes"/>).</summary>
    public int MaxKeyBytes { get; }

    /// <summary>
    /// The longest cursor this query issues, and so accepts: what a row whose keys take <see cref="MaxKeyBytes"/>
    /// (written as JSON in the worst case, then base64url) can make. A typical cursor is much shorter: about 4/3 of
    /// its keys' bytes plus 100 characters. Where cursors travel in URLs, keep this under the servers' URL limit.
    /// </summary>
    public int MaxCursorLength { get; }

    /// <summary>The index this query needs, as SQL (equality filter columns first, then the sort keys).</summary>
    public string RecommendedIndex =>
        $"CREATE INDEX ON {TableSchema.QuoteName(_table)} ({string.Join(", ", _filters.Where(f => f.Operator == FilterOperator.Equal).Select(f => PostgresIdentifier.Quote(f.Column))
            .Concat(_keys.Select(k => PostgresIdentifier.Quote(k.Column) + (k.Direction == SortDirection.Descending ? " DESC" : ""))))})";

    /// <summary>
    /// Fetches the first page (<paramref name="cursor"/> null) or the page a cursor from an earlier
    /// page points to (its NextCursor or PreviousCursor). <paramref name="map"/> reads one row; the
    /// selected columns are at ordinals 0..n-1.
    /// </summary>
    public async Task<KeysetPage<T>> PageAsync<T>(NpgsqlDataSource dataSource, string? cursor, int pageSize, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(map);
        CheckPageSize(pageSize);
        CursorPayload? payload = null;
        if (cursor is not null)
        {
            payload = _signer.Verify(cursor, MaxCursorLength);
            if (payload.V != 1 || payload.Q != _fingerprint || payload.K.Length != _keys.Length)
                throw new InvalidCursorException("the page cursor belongs to a different query (other table, order or filters).");
        }
        return await FetchPageAsync(dataSource, payload, fromEnd: false, pageSize, map, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Fetches the last page (the end of the order), with a PreviousCursor to walk backwards.</summary>
    public async Task<KeysetPage<T>> LastPageAsync<T>(NpgsqlDataSource dataSource, int pageSize, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(map);
        CheckPageSize(pageSize);
        return await FetchPageAsync(dataSource, null, fromEnd: true, pageSize, map, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Opens a connection and fetches one page, inside a <c>keyset_page</c> span and timed.</summary>
    private async Task<KeysetPage<T>> FetchPageAsync<T>(NpgsqlDataSource dataSource, CursorPayload? payload, bool fromEnd, int pageSize,
        Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken)
    {
        var direction = new KeyValuePair<string, object?>("direction", fromEnd || payload is { After: false } ? "backward" : "forward");
        var started = Stopwatch.GetTimestamp();
        using var activity = PostgresTelemetry.Start("keyset_page", _table, dataSource);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("polystore.keyset.page_size", pageSize);
            activity.SetTag("polystore.keyset.direction", direction.Value);
            activity.SetTag("polystore.keyset.first_page", payload is null);
        }
        try
        {
            var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
            KeysetPage<T> page;
            await using (connection.ConfigureAwait(false))
                page = await FetchAsync(connection, dataSource.ConnectionString, payload, fromEnd, pageSize, map, cancellationToken).ConfigureAwait(false);
            PostgresTelemetry.RecordDuration(PostgresTelemetry.KeysetPageSeconds, Stopwatch.GetElapsedTime(started), _table, direction, null);
            if (activity is { IsAllDataRequested: true })
            {
                activity.SetTag("db.response.returned_rows", page.Items.Count);
                activity.SetTag("polystore.keyset.has_next", page.NextCursor is not null);
                activity.SetTag("polystore.keyset.has_previous", page.PreviousCursor is not null);
            }
            return page;
        }
        catch (Exception e)
        {
            PostgresTelemetry.RecordDuration(PostgresTelemetry.KeysetPageSeconds, Stopwatch.GetElapsedTime(started), _table, direction, e);
            PostgresTelemetry.Fail(activity, e);
            throw;
        }
    }

    /// <summary>
    /// A signed cursor that starts right after (or before) the given key values, one per sort key in
    /// order, e.g. to jump to "score 500" without walking there. Values are sent as their invariant text
    /// and cast by the server to the key's type; together they may take at most <see cref="MaxKeyBytes"/> bytes.
    /// </summary>
    public string CreateCursor(bool after, params object[] keyValues)
    {
        ArgumentNullException.ThrowIfNull(keyValues);
        if (keyValues.Length != _keys.Length) throw new ArgumentException($"give one value per sort key ({_keys.Length}).", nameof(keyValues));
        var text = keyValues.Select(v => v is null ? throw new ArgumentException("key values cannot be null.", nameof(keyValues)) : InvariantText.Of(v)).ToArray();
        if (KeyBytes(text) is var bytes && bytes > MaxKeyBytes)
            throw new ArgumentException($"the key values take {bytes:N0} bytes as UTF-8 text, more than MaxKeyBytes ({MaxKeyBytes:N0}); raise it with KeysetQueryBuilder.MaxKeyBytes.", nameof(keyValues));
        return _signer.Sign(new CursorPayload(1, _fingerprint, after, text));
    }

    private static long KeyBytes(string[] keys) => keys.Sum(k => (long)Encoding.UTF8.GetByteCount(k));

    private void CheckPageSize(int pageSize)
    {
        if (pageSize < 1 || pageSize > MaxPageSize)
            throw new ArgumentOutOfRangeException(nameof(pageSize), pageSize, $"page size must be between 1 and {MaxPageSize} (MaxPageSize).");
    }

    private async Task<KeysetPage<T>> FetchAsync<T>(NpgsqlConnection connection, string cacheKey, CursorPayload? payload, bool fromEnd, int pageSize,
        Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken)
    {
        var planTask = _plans.GetOrAdd(cacheKey, _ => ResolveAsync(connection, cancellationToken));
        Plan plan;
        try
        {
            plan = await planTask.ConfigureAwait(false);
        }
        catch
        {
            _plans.TryRemove(cacheKey, out _);
            throw;
        }

        // Forward: after the cursor's row (or from the start). Backward: before it (or from the end), read reversed.
        var backward = fromEnd || payload is { After: false };
        var sql = payload is null ? (backward ? plan.Last : plan.First) : (backward ? plan.Before : plan.After);
        var command = new NpgsqlCommand(sql, connection);
        await using (command.ConfigureAwait(false))
        {
            foreach (var f in _filters.Where(f => f.Value is not null && f.Operator is not (FilterOperator.IsNull or FilterOperator.IsNotNull)))
                command.Parameters.Add(new NpgsqlParameter { Value = f.Value });
            // One row more than asked shows whether another page follows; as a bigint, so int.MaxValue cannot overflow.
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = pageSize + 1L });
            if (payload is not null)
                foreach (var k in payload.K) command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = k, NpgsqlDbType = NpgsqlDbType.Text });

            // Grown as rows arrive: the page size is only an upper bound, and may be huge.
            var items = new List<T>();
            var keys = new List<string[]>();
            try
            {
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        items.Add(map(reader));
                        var k = new string[_keys.Length];
                        for (var i = 0; i < k.Length; i++) k[i] = reader.GetString(plan.SelectCount + i);
                        keys.Add(k);
                    }
                }
            }
            catch (PostgresException e) when (payload is not null && e.SqlState.StartsWith("22", StringComparison.Ordinal))
            {
                // Only reachable with a validly signed cursor whose values no longer parse (the column type changed).
                throw new InvalidCursorException("the page cursor no longer fits the table's key columns (was the schema changed?).", e);
            }

            var more = items.Count > pageSize;
            if (more)
            {
                items.RemoveAt(items.Count - 1);
                keys.RemoveAt(keys.Count - 1);
            }
            if (backward)
            {
                items.Reverse();
                keys.Reverse();
            }
            if (items.Count == 0)
            {
                // Nothing on this side: hand back a cursor to the other side of the position we came from.
                return payload is null ? new KeysetPage<T>(items, null, null)
                    : backward ? new KeysetPage<T>(items, Issue(payload with { After = true }), null)
                    : new KeysetPage<T>(items, null, Issue(payload with { After = false }));
            }
            var next = backward ? (fromEnd ? null : Cursor(keys[^1], after: true)) : more ? Cursor(keys[^1], after: true) : null;
            var previous = backward ? (more ? Cursor(keys[0], after: false) : null) : payload is null ? null : Cursor(keys[0], after: false);
            return new KeysetPage<T>(items, next, previous);
        }
    }

    private string Cursor(string[] keys, bool after) => Issue(new CursorPayload(1, _fingerprint, after, keys));

    /// <summary>Signs a cursor for a row, refusing keys too long for the cursor to be accepted back.</summary>
    private string Issue(CursorPayload payload)
    {
        var bytes = KeyBytes(payload.K);
        if (bytes > MaxKeyBytes)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"keyset query on {_table}: the sort keys of a row on this page take {bytes:N0} bytes as text, more than MaxKeyBytes ({MaxKeyBytes:N0}), " +
                $"so no cursor can point at it; raise KeysetQueryBuilder.MaxKeyBytes (longer cursors are then accepted too), or order by shorter keys."));
        return _signer.Sign(payload);
    }

    private sealed record Plan(int SelectCount, string First, string After, string Before, string Last);

    private async Task<Plan> ResolveAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var table = await TableSchema.LoadAsync(connection, _table, null, cancellationToken).ConfigureAwait(false);
        var select = _select.Length == 0 ? table.Columns.ToList() : _select.Select(c => table.Column(c, "selected column")).ToList();
        var keys = _keys.Select(k => (Column: table.Column(k.Column, "sort key"), k.Direction)).ToList();
        foreach (var (column, _) in keys.Where(k => !k.Column.NotNull))
            throw new PostgresSchemaException($"keyset query on {table.DisplayName}: sort key \"{column.Name}\" may be NULL; keyset paging needs NOT NULL keys (add NOT NULL, or page on another column).");
        if (!table.IsUniqueOver(keys.Select(k => k.Column)))
            throw new PostgresSchemaException($"keyset query on {table.DisplayName}: the sort keys ({string.Join(", ", keys.Select(k => k.Column.Name))}) are not unique; end the order with a unique column such as the primary key (no unique index lies within them).");

        var parameters = new NpgsqlCommand().Parameters;
        var where = _filters.Select(f => f.Render(table, parameters)).ToList();
        // Parameters: filters, then the limit, then the cursor's keys (absent on first and last pages).
        var limit = $"${parameters.Count + 1}";
        var firstKey = parameters.Count + 2;
        var selectList = string.Join(", ", select.Select(c => PostgresIdentifier.Quote(c.Name)).Concat(keys.Select((k, i) => $"{PostgresIdentifier.Quote(k.Column.Name)}::text AS polystore_k{i}")));

        string Query(bool seek, bool after, bool reverse)
        {
            var conditions = new List<string>(where);
            if (seek) conditions.Add(Seek(keys, firstKey, after));
            var order = string.Join(", ", keys.Select(k => PostgresIdentifier.Quote(k.Column.Name) + ((k.Direction == SortDirection.Descending) != reverse ? " DESC" : " ASC")));
            return $"SELECT {selectList} FROM {table.QualifiedName}{(conditions.Count > 0 ? " WHERE " + string.Join(" AND ", conditions) : "")} ORDER BY {order} LIMIT {limit}";
        }
        return new Plan(select.Count, Query(false, true, false), Query(true, true, false), Query(true, false, true), Query(false, false, true));
    }

    /// <summary>The seek condition: rows after (or before) the cursor's keys in the query's order.</summary>
    private static string Seek(List<(ColumnSchema Column, SortDirection Direction)> keys, int firstParameter, bool after)
    {
        string Name(int i) => PostgresIdentifier.Quote(keys[i].Column.Name);
        string Value(int i) => $"CAST(${firstParameter + i} AS {keys[i].Column.SqlType})";
        string Op(int i) => (keys[i].Direction == SortDirection.Ascending) == after ? ">" : "<";
        if (keys.Select((_, i) => Op(i)).Distinct().Count() == 1)
            return keys.Count == 1 ? $"{Name(0)} {Op(0)} {Value(0)}"
                : $"({string.Join(", ", keys.Select((_, i) => Name(i)))}) {Op(0)} ({string.Join(", ", keys.Select((_, i) => Value(i)))})";
        // Mixed directions: expand, and lead with an inclusive bound on the first key so the index scan starts at the cursor.
        var alternatives = keys.Select((_, i) => "(" + string.Join(" AND ", Enumerable.Range(0, i).Select(j => $"{Name(j)} = {Value(j)}").Append($"{Name(i)} {Op(i)} {Value(i)}")) + ")");
        return $"{Name(0)} {Op(0)}= {Value(0)} AND ({string.Join(" OR ", alternatives)})";
    }
}
