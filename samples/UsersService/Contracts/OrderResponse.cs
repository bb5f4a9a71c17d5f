namespace Polystore.Samples.UsersService;

/// <summary>A placed order, with the user's order count and total after it.</summary>
internal sealed record OrderResponse(long OrderId, long UserId, long OrderNo, decimal Amount, long UserOrderCount, decimal UserOrderTotal);
