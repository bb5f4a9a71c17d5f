using MongoDB.Bson;
using MongoDB.Bson.Serialization.Attributes;

namespace Polystore.Samples.Users;

/// <summary>One row of the user analytics: users, orders and revenue of a region.</summary>
/// <param name="Region">The region (<c>_id</c> of the group); null for users without one.</param>
/// <param name="UserCount">Users with the matched status in the region.</param>
/// <param name="AvgOrders">Average number of orders per such user.</param>
/// <param name="TotalRevenue">Sum of the <c>amount</c> of their orders.</param>
public sealed record UserRegionStats(
    [property: BsonId] string? Region,
    [property: BsonElement("user_count")] int UserCount,
    [property: BsonElement("avg_orders")] double AvgOrders,
    // Amounts may be stored as int, double or Decimal128; decimal keeps money exact where it can.
    [property: BsonElement("total_revenue"), BsonRepresentation(BsonType.Decimal128, AllowTruncation = true)] decimal TotalRevenue);
