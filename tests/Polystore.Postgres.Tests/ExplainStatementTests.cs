using Polystore.Postgres.Diagnostics;

namespace Polystore.Postgres.Tests;

public sealed class ExplainStatementTests
{
    [Theory]
    [InlineData("SELECT 1", "SELECT 1")]
    [InlineData("  SELECT 1 ;  ", "SELECT 1")]
    [InlineData("SELECT ';' AS s;;", "SELECT ';' AS s")]
    [InlineData("SELECT \"a;b\" FROM t", "SELECT \"a;b\" FROM t")]
    [InlineData("SELECT $$;$$, $x$ ; $x$ -- ; comment\n", "SELECT $$;$$, $x$ ; $x$ -- ; comment")]
    [InlineData("SELECT /* ; /* nested ; */ */ 1", "SELECT /* ; /* nested ; */ */ 1")]
    [InlineData("SELECT E'it\\'s;' ", "SELECT E'it\\'s;'")]
    [InlineData("SELECT * FROM t WHERE id = $1", "SELECT * FROM t WHERE id = $1")]
    public void One_statement_is_accepted(string sql, string expected) => Assert.Equal(expected, SqlStatement.SingleStatement(sql));

    [Theory]
    [InlineData("SELECT 1; DROP TABLE t", "exactly one statement")]
    [InlineData("SELECT 1; COMMIT", "exactly one statement")]
    [InlineData("SELECT 'open", "unterminated string")]
    [InlineData("SELECT $$ open", "unterminated dollar-quoted")]
    [InlineData("", "empty")]
    [InlineData(" ; ", "only ';'")]
    public void Anything_else_is_refused_with_the_reason(string sql, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => SqlStatement.SingleStatement(sql));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }
}
