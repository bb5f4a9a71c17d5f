namespace Polystore.Samples.UsersService;

/// <summary>A user's place in the ranking by order total.</summary>
internal sealed record RankedUserResponse(long UserId, long OrderCount, decimal OrderTotal, long Rank, long DenseRank, double PercentRank);
