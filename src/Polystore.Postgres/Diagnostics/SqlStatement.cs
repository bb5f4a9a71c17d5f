namespace Polystore.Postgres.Diagnostics;

/// <summary>
/// Checks that text is one SQL statement. Npgsql splits a command on semicolons, so
/// <c>SELECT 1; COMMIT; DROP TABLE t</c> would escape the rolled-back transaction of
/// <c>doctor explain</c>: refuse any semicolon outside quotes, dollar quotes and comments
/// except trailing ones.
/// </summary>
internal static class SqlStatement
{
    public static string SingleStatement(string? sql)
    {
        if (string.IsNullOrWhiteSpace(sql)) throw new ArgumentException("explain needs one SQL statement; the text is empty", nameof(sql));
        var s = sql.Trim();
        var end = s.Length;
        var i = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (c == '\'' || c == '"') i = SkipQuoted(s, i, c);
            else if (c == '-' && At(s, i + 1, '-')) { var nl = s.IndexOf('\n', i); i = nl < 0 ? s.Length : nl + 1; }
            else if (c == '/' && At(s, i + 1, '*')) i = SkipBlockComment(s, i);
            else if (c == '$' && DollarTag(s, i) is { } tag)
            {
                var close = s.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                if (close < 0) throw new ArgumentException($"explain: unterminated dollar-quoted string starting at character {i + 1}", nameof(sql));
                i = close + tag.Length;
            }
            else if (c == ';')
            {
                var rest = s[(i + 1)..];
                if (rest.Trim().Trim(';').Trim().Length != 0)
                    throw new ArgumentException($"explain takes exactly one statement; found a second one after the ';' at character {i + 1}", nameof(sql));
                end = Math.Min(end, i);
                break;
            }
            else i++;
        }
        var statement = s[..end].Trim();
        if (statement.Length == 0) throw new ArgumentException("explain needs one SQL statement; the text is only ';'", nameof(sql));
        return statement;
    }

    private static bool At(string s, int i, char c) => i < s.Length && s[i] == c;

    private static int SkipQuoted(string s, int start, char quote)
    {
        var i = start + 1;
        while (i < s.Length)
        {
            if (s[i] == quote)
            {
                if (At(s, i + 1, quote)) { i += 2; continue; } // doubled quote
                return i + 1;
            }
            // E'...' strings may escape a quote with a backslash.
            if (s[i] == '\\' && quote == '\'' && start > 0 && (s[start - 1] == 'E' || s[start - 1] == 'e')) { i += 2; continue; }
            i++;
        }
        throw new ArgumentException($"explain: unterminated {(quote == '\'' ? "string" : "quoted identifier")} starting at character {start + 1}", "sql");
    }

    private static int SkipBlockComment(string s, int start)
    {
        var depth = 0;
        var i = start;
        while (i < s.Length)
        {
            if (s[i] == '/' && At(s, i + 1, '*')) { depth++; i += 2; }
            else if (s[i] == '*' && At(s, i + 1, '/')) { depth--; i += 2; if (depth == 0) return i; }
            else i++;
        }
        throw new ArgumentException($"explain: unterminated comment starting at character {start + 1}", "sql");
    }

    private static string? DollarTag(string s, int i)
    {
        // $$ or $tag$ (a tag starts with a letter or underscore); $1 is a parameter, not a quote.
        if (i > 0 && (char.IsLetterOrDigit(s[i - 1]) || s[i - 1] == '_')) return null;
        var j = i + 1;
        if (j < s.Length && char.IsDigit(s[j])) return null;
        while (j < s.Length && (char.IsLetterOrDigit(s[j]) || s[j] == '_')) j++;
        return j < s.Length && s[j] == '$' ? s[i..(j + 1)] : null;
    }
}
