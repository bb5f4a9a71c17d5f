using System.Globalization;
using Polystore.Redis.Locking;
using StackExchange.Redis;

namespace Polystore.Samples.UsersService;

/// <summary>Orders: one user's orders are serialized by a fenced Redis lock, so concurrent orders never lose an update.</summary>
internal static class OrderEndpoints
{
    public static void Map(IEndpointRouteBuilder api)
    {
        api.MapPost("/orders", PlaceAsync).WithTags("Orders").WithName("PlaceOrder")
            .WithSummary("Places an order under the user's lock; the lock's fencing token guards the write against a holder whose lease ran out.")
            .Accepts<PlaceOrderRequest>("application/json")
            .Produces<OrderResponse>(StatusCodes.Status201Created).ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        api.MapGet("/users/{id}/orders", TotalsAsync).WithTags("Orders").WithName("GetUserOrderTotals")
            .WithSummary("The user's number of orders and their total.")
            .Produces<OrderTotalsResponse>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
    }

    /// <summary>The lock resource of a user's orders.</summary>
    public static string LockResource(long userId) => $"orders:user:{userId.ToString(CultureInfo.InvariantCulture)}";

    private static async Task<IResult> PlaceAsync(HttpContext context, IRedisLockProvider locks, OrderStore orders, UsersServiceOptions options, CancellationToken cancellationToken)
    {
        var (body, problem) = await RequestJson.ReadAsync(context.Request, cancellationToken, "application/json");
        if (problem is not null) return problem;
        var errors = new InputErrors();
        if (UserInput.ReadOrder(body, errors) is not { } order) return Problems.Validation(errors.ToDictionary());

        for (var attempt = 1; ; attempt++)
        {
            IRedisLock? held;
            try
            {
                held = await locks.TryAcquireAsync(LockResource(order.UserId), options.Orders.LockWait, cancellationToken);
            }
            catch (Exception e) when (e is RedisConnectionException or RedisTimeoutException)
            {
                return Problems.Unavailable(context, "the order lock cannot be taken while Redis is unreachable; nothing was written.");
            }
            if (held is null)
                return Problems.Unavailable(context, $"other orders of user {order.UserId} kept its lock for {options.Orders.LockWait.TotalSeconds:0.###} s; nothing was written.");
            OrderOutcome outcome;
            await using (held)
                outcome = await orders.PlaceAsync(order.UserId, order.Amount, held.FencingToken, cancellationToken);
            if (outcome.Order is { } placed)
                return TypedResults.Created($"/users/{order.UserId.ToString(CultureInfo.InvariantCulture)}/orders", placed);
            if (outcome.TotalBefore is { } before)
                return Problems.Unprocessable(
                    $"user {order.UserId}'s order total is {before.ToString(CultureInfo.InvariantCulture)}; this amount would take it past {OrderStore.MaxTotal.ToString(CultureInfo.InvariantCulture)}, the most it can hold. Nothing was written.",
                    "amount");
            if (!outcome.IsStale) return Problems.NotFound($"no user with id {order.UserId}.");
            // PostgreSQL has seen a token at least as large. Either this lock's lease ran out and a newer holder wrote,
            // or Redis lost its counter (a restart without persistence, a failover that lost its last increments) and
            // hands out tokens again from 1: raised to what PostgreSQL holds, the next acquire's token is newer.
            if (attempt == 1 && outcome.CurrentFence is { } fence)
            {
                try
                {
                    await locks.RaiseFencingTokenAsync(LockResource(order.UserId), fence, cancellationToken);
                    continue;
                }
                catch (Exception e) when (e is RedisConnectionException or RedisTimeoutException)
                {
                    // Answered as stale below: the client's retry will try again.
                }
            }
            return Problems.Conflict($"the lock on user {order.UserId}'s orders was lost before the write (fencing token {held.FencingToken} is not the newest); nothing was written, retry the order.");
        }
    }

    private static async Task<IResult> TotalsAsync(string id, OrderStore orders, CancellationToken cancellationToken)
    {
        var errors = new InputErrors();
        if (UserInput.ReadId(id, "id", errors) is not { } userId) return Problems.Validation(errors.ToDictionary());
        return await orders.GetTotalsAsync(userId, cancellationToken) is { } totals ? TypedResults.Ok(totals) : Problems.NotFound($"no user with id {userId}.");
    }
}
