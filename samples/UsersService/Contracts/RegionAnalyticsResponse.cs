namespace Polystore.Samples.UsersService;

/// <summary>Users per region and where the figures came from (<c>mongodb</c> pipeline or the <c>read-model</c> count).</summary>
internal sealed record RegionAnalyticsResponse(string Source, IReadOnlyList<RegionStatsResponse> Regions);
