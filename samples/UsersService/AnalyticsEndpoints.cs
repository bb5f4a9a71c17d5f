using MongoDB.Driver;
using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>Region analytics: the MongoDB aggregation pipeline when MongoDB is configured, else the read model's count.</summary>
internal static class AnalyticsEndpoints
{
    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/analytics/regions", RegionsAsync).WithTags("Analytics").WithName("RegionAnalytics")
            .WithSummary("Users per region: with MongoDB, the $match/$lookup/$group pipeline over users and orders; otherwise the read model's count by region.")
            .Produces<RegionAnalyticsResponse>();

    private static async Task<IResult> RegionsAsync(HttpContext context, UsersApp users, UsersServiceOptions options, CancellationToken cancellationToken)
    {
        if (context.RequestServices.GetService<IMongoDatabase>() is { } mongo)
        {
            var pipeline = UserAnalyticsPipeline.Create(new UserAnalyticsOptions
            {
                UsersCollection = options.AnalyticsUsersCollection,
                OrdersCollection = options.AnalyticsOrdersCollection,
                ProjectEarly = true,
            });
            var rows = await pipeline.RunAsync(mongo, cancellationToken);
            return TypedResults.Ok(new RegionAnalyticsResponse("mongodb",
                rows.Select(r => new RegionStatsResponse(r.Region, r.UserCount, r.AvgOrders, r.TotalRevenue)).ToList()));
        }
        var counts = await users.Queries.GetRegionAnalyticsAsync(cancellationToken);
        return TypedResults.Ok(new RegionAnalyticsResponse("read-model", counts.Select(c => new RegionStatsResponse(c.Key, c.Value, null, null)).ToList()));
    }
}
