namespace Polystore.Samples.UsersService;

/// <summary>A user's number of orders and their total amount.</summary>
internal sealed record OrderTotalsResponse(long UserId, long OrderCount, decimal OrderTotal);
