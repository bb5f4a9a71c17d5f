using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Describes how rows of <typeparamref name="T"/> map to columns and what happens on conflict.
/// Names are checked against the catalog when the upsert runs, before any row is sent.
/// </summary>
public sealed class PostgresBulkUpsertBuilder<T>
{
    private readonly string _table;
    private readonly List<UpsertColumn<T>> _columns = [];
    private readonly List<string> _conflict = [];
    private readonly List<string> _update = [];
    private readonly List<SetExpression> _set = [];
    private bool _updateGiven;

    internal PostgresBulkUpsertBuilder(string table) => _table = table;

    /// <summary>Maps a column to a value of each row. The CLR type must suit the column's type.</summary>
    public PostgresBulkUpsertBuilder<T> Column<TValue>(string column, Func<T, TValue> value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        ArgumentNullException.ThrowIfNull(value);
        if (_columns.Any(c => c.Name == column)) throw new ArgumentException($"column \"{column}\" is mapped twice.", nameof(column));
        _columns.Add(new TypedUpsertColumn<T, TValue>(column, value));
        return this;
    }

    /// <summary>The conflict target: columns of a unique index or primary key (all must be mapped).</summary>
    public PostgresBulkUpsertBuilder<T> OnConflict(params string[] columns)
    {
        ColumnNames.Require(columns);
        _conflict.AddRange(columns);
        return this;
    }

    /// <summary>
    /// Columns overwritten from the incoming row on conflict. Default: every mapped column outside the
    /// conflict target. Call with no arguments (and no <see cref="Set(SetExpression)"/>) for DO NOTHING.
    /// </summary>
    public PostgresBulkUpsertBuilder<T> Update(params string[] columns)
    {
        ColumnNames.Require(columns);
        _updateGiven = true;
        _update.AddRange(columns);
        return this;
    }

    /// <summary>An extra assignment on conflict, e.g. <c>SetExpression.Now("updated_at")</c>.</summary>
    public PostgresBulkUpsertBuilder<T> Set(SetExpression expression)
    {
        ArgumentNullException.ThrowIfNull(expression);
        _set.Add(expression);
        return this;
    }

    /// <summary>An extra assignment from the allow-list, e.g. <c>"updated_at = now()"</c> (see <see cref="SetExpression.Parse"/>).</summary>
    public PostgresBulkUpsertBuilder<T> Set(string assignment) => Set(SetExpression.Parse(assignment));

    /// <summary>Checks the shape (not yet the catalog) and returns the reusable, immutable upsert.</summary>
    public PostgresBulkUpsertDefinition<T> Build()
    {
        if (_columns.Count == 0) throw new InvalidOperationException($"bulk upsert into {_table}: map at least one column with Column(...).");
        if (_conflict.Count == 0) throw new InvalidOperationException($"bulk upsert into {_table}: name the conflict target with OnConflict(...).");
        foreach (var c in _conflict.Where(c => _columns.All(m => m.Name != c)))
            throw new InvalidOperationException($"bulk upsert into {_table}: conflict column \"{c}\" is not mapped with Column(...).");
        var update = _updateGiven ? _update.Distinct().ToList() : _columns.Select(c => c.Name).Where(n => !_conflict.Contains(n)).ToList();
        foreach (var c in update)
        {
            if (_columns.All(m => m.Name != c)) throw new InvalidOperationException($"bulk upsert into {_table}: update column \"{c}\" is not mapped with Column(...).");
            if (_conflict.Contains(c)) throw new InvalidOperationException($"bulk upsert into {_table}: \"{c}\" is in the conflict target and cannot also be updated.");
        }
        foreach (var s in _set.Where(s => update.Contains(s.Column) || _conflict.Contains(s.Column)))
            throw new InvalidOperationException($"bulk upsert into {_table}: \"{s.Column}\" is assigned twice (SET expression and update/conflict column).");
        return new PostgresBulkUpsertDefinition<T>(_table, [.. _columns], [.. _conflict.Distinct()], [.. update], [.. _set]);
    }
}
