using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>One column's values of a batch, gathered into a typed array parameter.</summary>
internal interface IValueBuffer<in T>
{
    void Add(T row);

    NpgsqlParameter ToParameter(string dataTypeName);
}
