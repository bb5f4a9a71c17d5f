using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Polystore.Postgres;

namespace Polystore.Integration.Projections;

/// <summary>
/// A read model in a PostgreSQL JSONB table <c>(id, version, doc, updated_at)</c>. As an
/// <see cref="IPostgresReadModelStore{T}"/> it is written inside the outbox dispatcher's transaction,
/// so each event is applied exactly once, together with the checkpoint.
/// </summary>
/// <typeparam name="T">The document type.</typeparam>
public sealed class PostgresJsonbReadModelStore<T> : IPostgresReadModelStore<T>
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly JsonSerializerOptions _json;

    /// <summary>How documents are serialized (a rebuild writes its new table the same way).</summary>
    internal JsonSerializerOptions JsonOptions => _json;
    private readonly string _table;

    /// <summary>Creates the store over <c>schema.table</c> (plain lower-case identifiers).</summary>
    public PostgresJsonbReadModelStore(NpgsqlDataSource dataSource, string schema, string table, JsonSerializerOptions? json = null)
    {
        _dataSource = dataSource;
        _json = json ?? new JsonSerializerOptions(JsonSerializerDefaults.Web);
        _table = $"{PostgresIdentifier.QuotePlain(schema, nameof(schema))}.{PostgresIdentifier.QuotePlain(table, nameof(table))}";
        Schema = schema;
        Table = table;
    }

    /// <summary>The schema.</summary>
    public string Schema { get; }

    /// <summary>The table.</summary>
    public string Table { get; }

    /// <inheritdoc />
    public string Description => $"PostgreSQL JSONB {Schema}.{Table}";

    /// <inheritdoc />
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = Sql.Batch(connection, null,
                $"""
                CREATE SCHEMA IF NOT EXISTS {PostgresIdentifier.QuotePlain(Schema, "schema")};
                CREATE TABLE IF NOT EXISTS {_table} (
                    id text PRIMARY KEY,
                    version bigint NOT NULL,
                    doc jsonb NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now());
                """);
            await using (command.ConfigureAwait(false)) await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<bool> UpsertIfNewerAsync(string id, long version, T document, CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(
                $"""
                INSERT INTO {_table} AS t (id, version, doc) VALUES ($1, $2, $3)
                ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc, updated_at = now()
                WHERE t.version < excluded.version
                """, connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = id });
                command.Parameters.Add(new NpgsqlParameter { Value = version });
                command.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(document, _json), NpgsqlDbType = NpgsqlDbType.Jsonb });
                return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
            }
        }
    }

    /// <inheritdoc />
    public async Task UpsertManyIfNewerAsync(IReadOnlyList<ReadModel<T>> documents, CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
            await UpsertManyAsync(documents, connection, null, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task UpsertManyIfNewerAsync(IReadOnlyList<ReadModel<T>> documents, NpgsqlTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var connection = transaction.Connection ?? throw new InvalidOperationException("the transaction has completed");
        return UpsertManyAsync(documents, connection, transaction, cancellationToken);
    }

    private async Task UpsertManyAsync(IReadOnlyList<ReadModel<T>> documents, NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(documents);
        if (documents.Count == 0) return;
        // ON CONFLICT may touch a row once per statement: keep the newest version of each id.
        var newest = documents.GroupBy(d => d.Id).Select(g => g.MaxBy(d => d.Version)!).ToList();
        var command = new NpgsqlCommand(
            $"""
            INSERT INTO {_table} AS t (id, version, doc)
            SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[])
            ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc, updated_at = now()
            WHERE t.version < excluded.version
            """, connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = newest.Select(d => d.Id).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = newest.Select(d => d.Version).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = newest.Select(d => JsonSerializer.Serialize(d.Document, _json)).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<ReadModel<T>?> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT version, doc::text FROM {_table} WHERE id = $1", connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = id });
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) return null;
                    return new ReadModel<T>(id, reader.GetInt64(0), JsonSerializer.Deserialize<T>(reader.GetString(1), _json)!);
                }
            }
        }
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<KeyValuePair<string, long>>> CountByAsync(string field, CancellationToken cancellationToken = default)
    {
        FieldName.Check(field);
        var result = new List<KeyValuePair<string, long>>();
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT coalesce(doc->>$1, ''), count(*) FROM {_table} GROUP BY 1 ORDER BY 2 DESC, 1", connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = field });
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) result.Add(new(reader.GetString(0), reader.GetInt64(1)));
            }
        }
        return result;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyDictionary<string, long>> GetVersionsAsync(CancellationToken cancellationToken = default)
    {
        var result = new Dictionary<string, long>();
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT id, version FROM {_table}", connection);
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) result[reader.GetString(0)] = reader.GetInt64(1);
            }
        }
        return result;
    }
}
