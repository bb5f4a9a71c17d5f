namespace Polystore.Integration;

/// <summary>Builds an Npgsql batch from a script of several statements.</summary>
internal static class Sql
{
    /// <summary>A batch of parameterless statements (Npgsql sends one statement per command).</summary>
    public static Npgsql.NpgsqlBatch Batch(Npgsql.NpgsqlConnection connection, Npgsql.NpgsqlTransaction? transaction, string script)
    {
        var batch = new Npgsql.NpgsqlBatch(connection, transaction);
        foreach (var statement in script.Split(";\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // Drop comment-only lines so a statement is never just a comment.
            var text = string.Join('\n', statement.Split('\n').Where(l => !l.TrimStart().StartsWith("--", StringComparison.Ordinal))).Trim().TrimEnd(';');
            if (text.Length > 0) batch.BatchCommands.Add(new Npgsql.NpgsqlBatchCommand(text));
        }
        return batch;
    }
}
