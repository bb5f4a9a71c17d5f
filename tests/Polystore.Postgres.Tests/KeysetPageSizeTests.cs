using Polystore.Postgres.Querying;

namespace Polystore.Postgres.Tests;

/// <summary>A page's memory follows the rows it returns, whatever page size is allowed or asked; bad sizes are clear errors.</summary>
public sealed class KeysetPageSizeTests(KeysetFixture db) : IClassFixture<KeysetFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_huge_page_size_allocates_for_the_rows_returned_only()
    {
        var query = KeysetQuery.From(db.Items).Select("id").OrderBy("id").Where(Filter.In("id", 1L, 2L, 3L)).MaxPageSize(150_000_000).Build();
        await query.PageAsync(db.Primary, null, 10, r => r.GetInt64(0), Ct);
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var page = await query.PageAsync(db.Primary, null, 150_000_000, r => r.GetInt64(0), Ct);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Equal([1L, 2L, 3L], page.Items);
        // Sized by the page size, the two lists alone would take 2.4 GB; other tests in the process allocate far less than the bound.
        Assert.True(allocated < 500_000_000, $"{allocated:N0} bytes allocated for 3 rows");
    }

    [Fact]
    public async Task The_largest_int_page_size_works_forward_and_from_the_end()
    {
        var query = KeysetQuery.From(db.Items).Select("id").OrderBy("id").MaxPageSize(int.MaxValue).Build();
        var first = await query.PageAsync(db.Primary, null, int.MaxValue, r => r.GetInt64(0), Ct);
        Assert.Equal(500, first.Items.Count);
        Assert.Null(first.NextCursor);
        var last = await query.LastPageAsync(db.Primary, int.MaxValue, r => r.GetInt64(0), Ct);
        Assert.Equal(first.Items, last.Items);
        Assert.Null(last.PreviousCursor);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(int.MinValue)]
    [InlineData(1_001)]
    [InlineData(int.MaxValue)]
    public async Task A_page_size_out_of_range_names_the_parameter_before_any_sql(int pageSize)
    {
        var query = KeysetQuery.From("nowhere").OrderBy("id").Build();
        await using var unreachable = Npgsql.NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Username=x;Password=y;Timeout=1");
        var forward = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => query.PageAsync(unreachable, null, pageSize, r => 0, Ct));
        var backward = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => query.LastPageAsync(unreachable, pageSize, r => 0, Ct));
        Assert.All([forward, backward], e =>
        {
            Assert.Equal("pageSize", e.ParamName);
            Assert.Contains("between 1 and 1000 (MaxPageSize)", e.Message, StringComparison.Ordinal);
        });
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void A_MaxPageSize_below_one_is_refused_naming_it(int rows)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => KeysetQuery.From("t").MaxPageSize(rows));
        Assert.Equal("rows", e.ParamName);
        Assert.Contains("MaxPageSize must be at least 1", e.Message, StringComparison.Ordinal);
    }
}
