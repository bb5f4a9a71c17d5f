using System.Diagnostics;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Querying;
using Polystore.Postgres.Schema;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// The spans and instruments of Polystore.Postgres, against the real server. Each test works on a table of its own
/// and finds its spans and measurements by that table's name, since listeners see every test class running in parallel.
/// </summary>
public sealed class PostgresTelemetryTests(KeysetFixture db) : IClassFixture<KeysetFixture>, IDisposable
{
    private readonly ActivityCapture _spans = new(PostgresTelemetry.ActivitySourceName);
    private readonly MetricCapture _metrics = new(PostgresTelemetry.MeterName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        _spans.Dispose();
        _metrics.Dispose();
    }

    private async Task<string> CreateUsersAsync()
    {
        var table = $"{db.Schema}.users_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL DEFAULT 0, region text)");
        return table;
    }

    private static PostgresBulkUpsertDefinition<UserRow> Upsert(string table) => PostgresBulkUpsert.Into<UserRow>(table)
        .Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).OnConflict("email").Build();

    private static IEnumerable<UserRow> Users(int from, int count, string name = "n") =>
        Enumerable.Range(from, count).Select(i => new UserRow($"u{i}@example.com", $"{name}{i}", i));

    private static long Sum(IEnumerable<CapturedMeasurement> measurements) => (long)measurements.Sum(m => m.Value);

    [Fact]
    public async Task An_atomic_upsert_is_one_span_with_database_attributes_and_counts_its_rows_by_technique_and_outcome()
    {
        var table = await CreateUsersAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Users(0, 6), cancellationToken: Ct);
        // 3 updated (0..2), 3 inserted (6..8), and a later duplicate of key 0 skipped.
        var result = await Upsert(table).ExecuteAsync(db.Primary, Users(0, 3, "m").Concat(Users(6, 3)).Append(new UserRow("u0@example.com", "last", 0)), cancellationToken: Ct);
        Assert.Equal((3L, 3L, 1L), (result.Inserted, result.Updated, result.Skipped));

        var spans = _spans.WithTag("db.collection.name", table);
        Assert.Equal(2, spans.Count);
        var span = spans[1];
        Assert.Equal($"bulk_upsert {table}", span.DisplayName);
        Assert.Equal(ActivityStatusCode.Unset, span.Status);
        var settings = TestServers.Postgres.Connection;
        Assert.Equal("postgresql", span.GetTagItem("db.system.name"));
        Assert.Equal("bulk_upsert", span.GetTagItem("db.operation.name"));
        Assert.Equal(settings.Database, span.GetTagItem("db.namespace"));
        Assert.Equal(settings.Host, span.GetTagItem("server.address"));
        Assert.Equal(settings.Port, span.GetTagItem("server.port"));
        Assert.Equal("atomic", span.GetTagItem("polystore.bulk_upsert.mode"));
        Assert.Equal("unnest", span.GetTagItem("polystore.bulk_upsert.technique"));
        Assert.Equal((7L, 3L, 3L, 1), (span.GetTagItem("polystore.bulk_upsert.rows"), span.GetTagItem("polystore.bulk_upsert.inserted"),
            span.GetTagItem("polystore.bulk_upsert.updated"), span.GetTagItem("polystore.bulk_upsert.commits")));

        var rows = _metrics.Of(PostgresTelemetry.RowsUpserted, "db.collection.name", table);
        Assert.All(rows, m => Assert.Equal(("{row}", "unnest"), (m.Unit, m.Tags["technique"])));
        Assert.Equal(9, Sum(rows.Where(m => Equals(m.Tags["outcome"], "inserted"))));
        Assert.Equal(3, Sum(rows.Where(m => Equals(m.Tags["outcome"], "updated"))));
        Assert.Equal(1, Sum(rows.Where(m => Equals(m.Tags["outcome"], "skipped"))));
        var durations = _metrics.Of(PostgresTelemetry.BulkUpsertDuration, "db.collection.name", table);
        Assert.Equal(2, durations.Count);
        Assert.All(durations, d => Assert.Equal(("s", "atomic", false), (d.Unit, d.Tags["mode"], d.Tags.ContainsKey("error.type"))));
    }

    [Fact]
    public async Task A_chunked_upsert_names_both_techniques_when_its_chunks_went_both_ways()
    {
        var table = await CreateUsersAsync();
        // Chunks of 10 (over the unnest threshold of 5: staged with COPY), then a last chunk of 5 (unnest).
        var options = new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 10, UnnestThreshold = 5 };
        var result = await Upsert(table).ExecuteAsync(db.Primary, Users(0, 25), options, Ct);
        Assert.Equal(3, result.Commits);

        var span = Assert.Single(_spans.WithTag("db.collection.name", table));
        Assert.Equal(("chunked", "unnest,copy", 25L, 3), (span.GetTagItem("polystore.bulk_upsert.mode"), span.GetTagItem("polystore.bulk_upsert.technique"),
            span.GetTagItem("polystore.bulk_upsert.inserted"), span.GetTagItem("polystore.bulk_upsert.commits")));
        var rows = _metrics.Of(PostgresTelemetry.RowsUpserted, "db.collection.name", table);
        Assert.Equal(20, Sum(rows.Where(m => Equals(m.Tags["technique"], "copy"))));
        Assert.Equal(5, Sum(rows.Where(m => Equals(m.Tags["technique"], "unnest"))));
        Assert.Equal("chunked", Assert.Single(_metrics.Of(PostgresTelemetry.BulkUpsertDuration, "db.collection.name", table)).Tags["mode"]);
    }

    [Fact]
    public async Task A_parallel_upsert_reports_its_mode_and_copy()
    {
        var table = await CreateUsersAsync();
        var options = new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, ChunkSize = 50, Parallelism = 2 };
        var result = await Upsert(table).ExecuteAsync(db.Primary, Users(0, 200), options, Ct);

        var span = Assert.Single(_spans.WithTag("db.collection.name", table));
        Assert.Equal(("parallel", "copy", 200L, result.Commits), (span.GetTagItem("polystore.bulk_upsert.mode"), span.GetTagItem("polystore.bulk_upsert.technique"),
            span.GetTagItem("polystore.bulk_upsert.inserted"), span.GetTagItem("polystore.bulk_upsert.commits")));
        Assert.Equal(200, Sum(_metrics.Of(PostgresTelemetry.RowsUpserted, "db.collection.name", table)));
    }

    [Fact]
    public async Task An_upsert_inside_the_callers_transaction_counts_its_rows_with_mode_transaction()
    {
        var table = await CreateUsersAsync();
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        await Upsert(table).ExecuteAsync(connection, transaction, Users(0, 4), cancellationToken: Ct);
        await transaction.CommitAsync(Ct);

        var span = Assert.Single(_spans.WithTag("db.collection.name", table));
        Assert.Equal(("transaction", "unnest", 4L, 0), (span.GetTagItem("polystore.bulk_upsert.mode"), span.GetTagItem("polystore.bulk_upsert.technique"),
            span.GetTagItem("polystore.bulk_upsert.inserted"), span.GetTagItem("polystore.bulk_upsert.commits")));
        Assert.Equal(TestServers.Postgres.Connection.Database, span.GetTagItem("db.namespace"));
        Assert.Equal(4, Sum(_metrics.Of(PostgresTelemetry.RowsUpserted, "db.collection.name", table)));
    }

    [Fact]
    public async Task A_failed_upsert_ends_its_span_in_error_with_the_exception_and_times_it_with_the_error_type()
    {
        var table = $"{db.Schema}.missing_{Guid.NewGuid():N}"[..(db.Schema.Length + 17)];
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => Upsert(table).ExecuteAsync(db.Primary, Users(0, 2), cancellationToken: Ct));

        var span = Assert.Single(_spans.WithTag("db.collection.name", table));
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal(e.Message, span.StatusDescription);
        Assert.Equal(typeof(PostgresSchemaException).FullName, span.GetTagItem("error.type"));
        var recorded = Assert.Single(span.Events, x => x.Name == "exception");
        Assert.Equal(typeof(PostgresSchemaException).FullName, recorded.Tags.Single(t => t.Key == "exception.type").Value);
        var duration = Assert.Single(_metrics.Of(PostgresTelemetry.BulkUpsertDuration, "db.collection.name", table));
        Assert.Equal(typeof(PostgresSchemaException).FullName, duration.Tags["error.type"]);
        Assert.Empty(_metrics.Of(PostgresTelemetry.RowsUpserted, "db.collection.name", table));
    }

    [Fact]
    public async Task Keyset_pages_are_spans_with_page_size_and_rows_and_are_timed_by_direction()
    {
        // A table of this test's own, so the spans and measurements found by its name are this test's alone.
        var table = $"{db.Schema}.page_{Guid.NewGuid():N}"[..(db.Schema.Length + 14)];
        await db.ExecAsync($"CREATE TABLE {table} (id bigint PRIMARY KEY, score int NOT NULL); INSERT INTO {table} SELECT g, g % 7 FROM generate_series(1, 30) g");
        var query = KeysetQuery.From(table).Select("id").OrderBy("score", SortDirection.Descending).ThenBy("id").Build();
        var first = await query.PageAsync(db.Primary, null, 20, r => r.GetInt64(0), Ct);
        var second = await query.PageAsync(db.Primary, first.NextCursor, 20, r => r.GetInt64(0), Ct);
        await query.LastPageAsync(db.Primary, 5, r => r.GetInt64(0), Ct);
        Assert.Equal((20, 10), (first.Items.Count, second.Items.Count));

        var spans = _spans.WithTag("db.collection.name", table);
        Assert.Equal(3, spans.Count);
        Assert.All(spans, s => Assert.Equal(($"keyset_page {table}", "postgresql", "keyset_page"), (s.DisplayName, s.GetTagItem("db.system.name"), s.GetTagItem("db.operation.name"))));
        Assert.Equal((20, 20, true, true, "forward"), (spans[0].GetTagItem("polystore.keyset.page_size"), spans[0].GetTagItem("db.response.returned_rows"),
            spans[0].GetTagItem("polystore.keyset.first_page"), spans[0].GetTagItem("polystore.keyset.has_next"), spans[0].GetTagItem("polystore.keyset.direction")));
        Assert.Equal((10, false, false, true), (spans[1].GetTagItem("db.response.returned_rows"), spans[1].GetTagItem("polystore.keyset.first_page"),
            spans[1].GetTagItem("polystore.keyset.has_next"), spans[1].GetTagItem("polystore.keyset.has_previous")));
        Assert.Equal((5, 5, "backward"), (spans[2].GetTagItem("polystore.keyset.page_size"), spans[2].GetTagItem("db.response.returned_rows"), spans[2].GetTagItem("polystore.keyset.direction")));

        var durations = _metrics.Of(PostgresTelemetry.KeysetPageDuration, "db.collection.name", table);
        Assert.Equal(["forward", "forward", "backward"], durations.Select(d => d.Tags["direction"]));
        Assert.All(durations, d => Assert.Equal("s", d.Unit));
    }

    [Fact]
    public async Task A_ranking_is_a_span_with_its_rows_and_a_failed_one_records_the_error()
    {
        var ranking = Ranking.From(db.Items).Select("id", "score").PartitionBy("region").OrderBy("score").Top(2).Build();
        var rows = await ranking.ExecuteAsync(db.Primary, r => r.GetInt64(0), Ct);
        await Assert.ThrowsAsync<PostgresSchemaException>(() => Ranking.From(db.Items).OrderBy("no_such_column").Build().ExecuteAsync(db.Primary, r => 0, Ct));

        var spans = _spans.WithTag("db.collection.name", db.Items);
        var ok = Assert.Single(spans, s => s.DisplayName == $"ranking {db.Items}" && s.Status == ActivityStatusCode.Unset);
        Assert.Equal((rows.Count, 2, true), (ok.GetTagItem("db.response.returned_rows"), ok.GetTagItem("polystore.ranking.top"), ok.GetTagItem("polystore.ranking.partitioned")));
        var failed = Assert.Single(spans, s => s.DisplayName == $"ranking {db.Items}" && s.Status == ActivityStatusCode.Error);
        Assert.Equal(typeof(PostgresSchemaException).FullName, failed.GetTagItem("error.type"));
    }

    [Fact]
    public async Task Spans_nest_under_the_callers_activity()
    {
        using var source = new ActivitySource("Polystore.Tests.Postgres");
        using var listener = new ActivityCapture("Polystore.Tests.Postgres");
        var table = await CreateUsersAsync();
        using (var request = source.StartActivity("request"))
        {
            Assert.NotNull(request);
            await Upsert(table).ExecuteAsync(db.Primary, Users(0, 1), cancellationToken: Ct);
            var span = Assert.Single(_spans.WithTag("db.collection.name", table));
            Assert.Equal((request.TraceId, request.SpanId), (span.TraceId, span.ParentSpanId));
        }
    }
}
