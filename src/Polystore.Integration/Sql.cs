using System.Text.RegularExpressions;

namespace Polystore.Integration;

/// <summary>Identifier checks and quoting for the few names callers choose (schema, table).</summary>
internal static partial class Sql
{
    /// <summary>Validates a plain lower-case identifier and returns it double-quoted.</summary>
    public static string Quote(string identifier, string what)
    {
        if (!PlainIdentifier().IsMatch(identifier))
            throw new ArgumentException($"{what} '{identifier}' is not a valid identifier: use 1-63 lower-case letters, digits and underscores, starting with a letter or underscore", what);
        return $"\"{identifier}\"";
    }

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

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex PlainIdentifier();
}
