namespace Polystore.Samples.UsersService;

/// <summary>Users of a region; the order figures come only from the MongoDB pipeline.</summary>
internal sealed record RegionStatsResponse(string? Region, long UserCount, double? AvgOrders, decimal? TotalRevenue);
