namespace Polystore.Samples.UsersService;

/// <summary>What <see cref="OrderStore.PlaceAsync"/> did.</summary>
/// <param name="Order">The order, when placed.</param>
/// <param name="IsStale">The fencing token was not newer than the last writer's, or another write came in between.</param>
/// <param name="CurrentFence">The token of the last writer, when known.</param>
/// <param name="TotalBefore">The user's total, when the order would take it past <see cref="OrderStore.MaxTotal"/>.</param>
internal sealed record OrderOutcome(OrderResponse? Order, bool IsStale, long? CurrentFence, decimal? TotalBefore = null)
{
    public static OrderOutcome UserNotFound { get; } = new(null, false, null);

    public static OrderOutcome TotalTooLarge(decimal totalBefore) => new(null, false, null, totalBefore);

    public static OrderOutcome Placed(OrderResponse order) => new(order, false, null);

    public static OrderOutcome Stale(long? currentFence) => new(null, true, currentFence);
}
