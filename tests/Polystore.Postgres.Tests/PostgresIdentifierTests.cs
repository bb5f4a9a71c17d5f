namespace Polystore.Postgres.Tests;

public sealed class PostgresIdentifierTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    [Theory]
    [InlineData("plain")]
    [InlineData("Mixed Case")]
    [InlineData("we\"ird; DROP TABLE x; --")]
    public async Task A_quoted_name_reaches_the_server_as_exactly_that_name(string name)
    {
        await db.ExecAsync($"CREATE TABLE {PostgresIdentifier.Qualified(db.Schema, name)} (id int)");
        Assert.Equal(1L, await db.ScalarAsync<long>(
            $"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{db.Schema}' AND c.relname = {PostgresLiteral.Quote(name)}"));
    }

    [Fact]
    public async Task A_quoted_literal_reaches_the_server_unchanged() =>
        Assert.Equal("it's \"x\"", await db.ScalarAsync<string>($"SELECT {PostgresLiteral.Quote("it's \"x\"")}"));

    [Fact]
    public void Quote_doubles_embedded_quotes_and_refuses_names_postgres_cannot_have()
    {
        Assert.Equal("\"a\"\"b\"", PostgresIdentifier.Quote("a\"b"));
        Assert.Equal("\"s\".\"Idx\"", PostgresIdentifier.Qualified("s", "Idx"));
        Assert.Throws<ArgumentException>(() => PostgresIdentifier.Quote(""));
        Assert.Throws<ArgumentException>(() => PostgresIdentifier.Quote("a\0b"));
    }

    [Theory]
    [InlineData("outbox", true)]
    [InlineData("_x9", true)]
    [InlineData("Outbox", false)]
    [InlineData("9lives", false)]
    [InlineData("a-b", false)]
    [InlineData("a\"; DROP SCHEMA s; --", false)]
    [InlineData("", false)]
    public void Only_plain_names_pass_QuotePlain(string name, bool plain)
    {
        Assert.Equal(plain, PostgresIdentifier.IsPlain(name));
        if (plain) Assert.Equal($"\"{name}\"", PostgresIdentifier.QuotePlain(name, "schema"));
        else Assert.Equal("schema", Assert.Throws<ArgumentException>(() => PostgresIdentifier.QuotePlain(name, "schema")).ParamName);
    }

    [Fact]
    public void Plain_names_are_at_most_63_characters()
    {
        Assert.True(PostgresIdentifier.IsPlain(new string('a', PostgresIdentifier.MaxLength)));
        Assert.False(PostgresIdentifier.IsPlain(new string('a', PostgresIdentifier.MaxLength + 1)));
    }
}
