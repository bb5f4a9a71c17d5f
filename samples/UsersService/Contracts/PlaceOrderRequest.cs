namespace Polystore.Samples.UsersService;

/// <summary>The body of <c>POST /orders</c> (for the OpenAPI document).</summary>
internal sealed record PlaceOrderRequest(long UserId, decimal Amount);
