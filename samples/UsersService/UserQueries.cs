using Npgsql;
using Polystore.Postgres.Querying;

namespace Polystore.Samples.UsersService;

/// <summary>The list and ranking queries over the service's tables, built once.</summary>
internal sealed class UserQueries
{
    public const int MaxPageSize = 1000;

    public UserQueries(UsersServiceOptions options, CursorSigner signer, OrderStore orders)
    {
        Pages = KeysetQuery.From($"{options.Schema}.users")
            .Select("id", "email", "name", "region", "version", "created_at")
            .OrderBy("id")
            .MaxPageSize(MaxPageSize)
            .SignCursorsWith(signer)
            .Build();
        TotalsTable = orders.TotalsTable;
    }

    /// <summary>Users in id order, with signed cursors.</summary>
    public KeysetQueryDefinition Pages { get; }

    private string TotalsTable { get; }

    /// <summary>The top <paramref name="top"/> users by order total (ties share a rank).</summary>
    public RankingDefinition Ranking(int top) => Postgres.Querying.Ranking.From(TotalsTable)
        .Select("user_id", "order_count", "order_total")
        .OrderBy("order_total", SortDirection.Descending)
        .Top(top)
        .Build();

    public static UserResponse ReadUser(NpgsqlDataReader reader) =>
        new(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), reader.GetFieldValue<DateTimeOffset>(5));

    public static (long UserId, long OrderCount, decimal OrderTotal) ReadTotals(NpgsqlDataReader reader) =>
        (reader.GetInt64(0), reader.GetInt64(1), reader.GetDecimal(2));
}
