using Npgsql;

namespace Polystore.Postgres.Schema;

/// <summary>Small helpers that keep command and reader disposal (and ConfigureAwait) in one place.</summary>
internal static class Sql
{
    public static async Task<List<TRow>> QueryAsync<TRow>(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql,
        IEnumerable<NpgsqlParameter> parameters, Func<NpgsqlDataReader, TRow> read, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        await using (command.ConfigureAwait(false))
        {
            foreach (var p in parameters) command.Parameters.Add(p);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                var rows = new List<TRow>();
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) rows.Add(read(reader));
                return rows;
            }
        }
    }
}
