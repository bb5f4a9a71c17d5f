using Polystore.Postgres.Querying;

namespace Polystore.Postgres.Tests;

public sealed class KeysetFixture : SchemaFixture
{
    public string Items => $"{Schema}.items";

    protected override async Task SetupAsync()
    {
        // 500 rows, scores 0..19 so every score has 25 ties; regions alternate.
        await ExecAsync($"""
            CREATE TABLE {Items} (id bigint PRIMARY KEY, score int NOT NULL, name text NOT NULL, region text, note text);
            INSERT INTO {Items} SELECT g, g % 20, 'n' || g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 500) g;
            CREATE INDEX ON {Items} (score DESC, id);
            """);
    }
}
