using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Polystore.Postgres;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Querying;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary>
/// <c>polystore postgres seed | page | rank</c>: the PostgreSQL toolkit on a demo users table
/// (schema polystore_demo): bulk upsert, keyset pages, rankings.
/// </summary>
internal static class PostgresCommand
{
    private const string Table = "polystore_demo.users";

    private static readonly Option<int> Users = new Option<int>("--users") { Description = "Users to upsert (1 to 10,000,000). Default 100000.", DefaultValueFactory = _ => 100_000 }.InRange(1, 10_000_000);
    private const int MaxPageSize = 1000;

    private static readonly Option<int> Size = new Option<int>("--size") { Description = "Rows per page (1 to 1,000). Default 5.", DefaultValueFactory = _ => 5 }.InRange(1, MaxPageSize);
    private static readonly Option<int> Pages = new Option<int>("--pages") { Description = "Pages to fetch (1 to 1,000), each following the previous page's cursor. Default 2.", DefaultValueFactory = _ => 2 }.InRange(1, 1_000);
    private static readonly Option<string?> Cursor = new("--cursor") { Description = "Continue from a cursor printed by an earlier page." };
    private static readonly Option<string?> Region = new("--region") { Description = "Only users of this region." };
    private static readonly Option<int> Top = new Option<int>("--top") { Description = "Rank cut-off (1 to 10,000). Default 5.", DefaultValueFactory = _ => 5 }.InRange(1, 10_000);
    private static readonly Option<bool> Reset = new("--reset") { Description = "Drop and recreate the demo table first." };
    private static readonly Option<bool> ByRegion = new("--by-region") { Description = "Rank within each region." };

    private sealed record DemoUser(string Email, string Name, int Score, string Region, bool Active);

    private static readonly string[] Regions = ["eu", "us", "apac", "latam"];

    public static Command Create()
    {
        var pg = new Command("postgres", "PostgreSQL toolkit on a demo users table (schema polystore_demo): bulk upsert, keyset pages, rankings.");

        var seed = new Command("seed", "Bulk-upsert N generated users (keyed on email; on a match: name, score and updated_at = now()); run twice to see updates.") { Users, Reset };
        seed.SetAction((parse, ct) => WithSources(parse, async (ds, _) =>
        {
            var n = parse.GetValue(Users);
            await using (var create = ds.CreateCommand((parse.GetValue(Reset) ? $"DROP TABLE IF EXISTS {Table};\n" : "") + $"""
                CREATE SCHEMA IF NOT EXISTS polystore_demo;
                CREATE TABLE IF NOT EXISTS {Table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
                  score int NOT NULL, region text NOT NULL, active boolean NOT NULL DEFAULT true, updated_at timestamptz);
                CREATE INDEX IF NOT EXISTS users_score_id ON {Table} (score DESC, id);
                CREATE INDEX IF NOT EXISTS users_region_score_id ON {Table} (region, score DESC, id);
                """))
                await create.ExecuteNonQueryAsync(ct);
            var round = Environment.TickCount64;
            var rows = Enumerable.Range(0, n).Select(i => new DemoUser($"user{i}@example.com", $"User {i}", (int)((i * 7919L + round) % 1_000_003), Regions[i % Regions.Length], i % 10 != 0));
            var upsert = PostgresBulkUpsert.Into<DemoUser>(Table)
                .Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).Column("region", u => u.Region).Column("active", u => u.Active)
                .OnConflict("email").Set("updated_at = now()").Build();
            var r = await upsert.ExecuteAsync(ds, rows, cancellationToken: ct);
            if (parse.GetValue(CommonOptions.Json))
                CommonOptions.WriteJson(new { table = Table, rows = r.RowsReceived, inserted = r.Inserted, updated = r.Updated, seconds = r.Elapsed.TotalSeconds, rows_per_second = Math.Round(r.RowsPerSecond) });
            else
                AnsiConsole.MarkupLine($"Upserted [bold]{r.RowsReceived:N0}[/] users into {Table}: [green]{r.Inserted:N0} inserted[/], [yellow]{r.Updated:N0} updated[/] in {r.Elapsed.TotalSeconds:0.00} s ([bold]{r.RowsPerSecond:N0} rows/s[/], one transaction)");
            return ExitCodes.Ok;
        }));

        var page = new Command("page", "Keyset pages over the users by score DESC, id ASC (index: (score DESC, id), or (region, score DESC, id) with --region).") { Size, Pages, Cursor, Region };
        page.SetAction((parse, ct) => WithSources(parse, async (ds, pg) =>
        {
            var q = KeysetQuery.From(Table).Select("id", "name", "score", "region").OrderBy("score", SortDirection.Descending).ThenBy("id").MaxPageSize(MaxPageSize).SignCursorsWith(Signer(pg));
            if (parse.GetValue(Region) is { } region) q.Where(Filter.Equal("region", region));
            var query = q.Build();
            var cursor = parse.GetValue(Cursor);
            var pages = new List<KeysetPage<(long Id, string Name, int Score, string Region)>>();
            for (var i = 0; i < Math.Max(1, parse.GetValue(Pages)); i++)
            {
                var p = await query.PageAsync(ds, cursor, parse.GetValue(Size), r => (r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetString(3)), ct);
                pages.Add(p);
                cursor = p.NextCursor;
                if (cursor is null) break;
            }
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(pages.Select(p => new { items = p.Items.Select(x => new { id = x.Id, name = x.Name, score = x.Score, region = x.Region }), next_cursor = p.NextCursor, previous_cursor = p.PreviousCursor }));
                return ExitCodes.Ok;
            }
            var number = 1;
            foreach (var p in pages)
            {
                var table = new Table().Border(TableBorder.Rounded).Title($"page {number++}{(parse.GetValue(Cursor) is null ? "" : " after the given cursor")}").AddColumns("id", "name", "score", "region");
                foreach (var x in p.Items) table.AddRow(x.Id.ToString(), Markup.Escape(x.Name), x.Score.ToString(), x.Region);
                AnsiConsole.Write(table);
                AnsiConsole.MarkupLine($"[grey]next cursor (signed, opaque):[/] {Markup.Escape(p.NextCursor ?? "none")}");
            }
            AnsiConsole.MarkupLine($"[grey]index this query needs:[/] {Markup.Escape(query.RecommendedIndex)}");
            return ExitCodes.Ok;
        }));

        var rank = new Command("rank", "Rank active users: RANK() and PERCENT_RANK() OVER (ORDER BY score DESC), top N (with --by-region, within each region).") { Top, ByRegion };
        rank.SetAction((parse, ct) => WithSources(parse, async (ds, _) =>
        {
            var b = Ranking.From(Table).Select("id", "name", "score", "region").OrderBy("score", SortDirection.Descending).Where(Filter.Equal("active", true)).Top(parse.GetValue(Top));
            if (parse.GetValue(ByRegion)) b.PartitionBy("region");
            var rows = await b.Build().ExecuteAsync(ds, r => (Id: r.GetInt64(0), Name: r.GetString(1), Score: r.GetInt32(2), Region: r.GetString(3)), ct);
            if (parse.GetValue(CommonOptions.Json))
            {
                CommonOptions.WriteJson(rows.Select(x => new { id = x.Row.Id, name = x.Row.Name, score = x.Row.Score, region = x.Row.Region, rank = x.Rank, percent_rank = x.PercentRank }));
                return ExitCodes.Ok;
            }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("rank", "percent rank", "id", "name", "score", "region");
            foreach (var x in rows) table.AddRow(x.Rank.ToString(), x.PercentRank.ToString("0.000000"), x.Row.Id.ToString(), Markup.Escape(x.Row.Name), x.Row.Score.ToString(), x.Row.Region);
            AnsiConsole.Write(table);
            return ExitCodes.Ok;
        }));

        pg.Subcommands.Add(seed);
        pg.Subcommands.Add(page);
        pg.Subcommands.Add(rank);
        return pg;
    }

    /// <summary>
    /// Cursors printed by one run must work in the next, so the CLI signs with a key derived from
    /// $POLYSTORE_CURSOR_KEY, else from the database password (HKDF): stable, and secret to whoever can log in.
    /// </summary>
    private static CursorSigner Signer(Polystore.Core.Configuration.PostgresSettings settings)
    {
        var secret = Environment.GetEnvironmentVariable("POLYSTORE_CURSOR_KEY") is { Length: > 0 } k ? k : settings.Connection.Password ?? "";
        return new CursorSigner(System.Security.Cryptography.HKDF.DeriveKey(System.Security.Cryptography.HashAlgorithmName.SHA256,
            System.Text.Encoding.UTF8.GetBytes(secret), 32, info: System.Text.Encoding.UTF8.GetBytes("polystore keyset cursor")));
    }

    private static async Task<int> WithSources(ParseResult parse, Func<NpgsqlDataSource, Polystore.Core.Configuration.PostgresSettings, Task<int>> action)
    {
        var (config, _) = CommonOptions.LoadConfig(parse);
        if (config is null) return ExitCodes.InvalidConfig;
        if (config.Postgres is not { } pg) return CommonOptions.MissingStore("postgresql.yaml");
        await using var services = CliServices.Build(config);
        var sources = services.GetRequiredService<PostgresDataSources>();
        try
        {
            return await action(sources.Primary, pg);
        }
        catch (Exception e) when (e is Polystore.Postgres.Schema.PostgresSchemaException or InvalidCursorException or PostgresBulkUpsertException or PostgresPoolExhaustedException)
        {
            return CommonOptions.Fail(parse.GetValue(CommonOptions.Json), e switch
            {
                PostgresPoolExhaustedException => ExitCodes.Unreachable,
                InvalidCursorException => ExitCodes.InvalidConfig, // a --cursor that is not one this command gave out: a usage error
                _ => ExitCodes.Failure,
            }, e.Message);
        }
    }
}
