using Microsoft.AspNetCore.Diagnostics;
using Npgsql;
using Polystore.Postgres;
using StackExchange.Redis;

namespace Polystore.Samples.UsersService;

/// <summary>
/// Turns the failures a caller can act on into ProblemDetails: a store that is unreachable or busy (503 with
/// Retry-After: the request wrote nothing and may be repeated) and a rejected request (its 4xx). Anything else is left
/// to the default handler, a 500 ProblemDetails without details.
/// </summary>
internal sealed class ServiceExceptionHandler(IProblemDetailsService problems, ILogger<ServiceExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; the transaction rolled back and nobody reads the answer.
            context.Response.StatusCode = 499;
            return true;
        }
        var (status, title, detail) = exception switch
        {
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } bad => (bad.StatusCode, "Request body too large.", bad.Message),
            BadHttpRequestException bad => (bad.StatusCode, "Bad request.", bad.Message),
            RedisConnectionException or RedisTimeoutException => (StatusCodes.Status503ServiceUnavailable, "Redis is unavailable.", "Redis did not answer; nothing was written. Retry shortly."),
            PostgresPoolExhaustedException => (StatusCodes.Status503ServiceUnavailable, "Too busy.", "every PostgreSQL connection is in use; nothing was written. Retry shortly."),
            PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure } =>
                (StatusCodes.Status503ServiceUnavailable, "Conflicting writes.", "the write conflicted with a concurrent one and was rolled back; retry it."),
            NpgsqlException { IsTransient: true } => (StatusCodes.Status503ServiceUnavailable, "PostgreSQL is unavailable.", "PostgreSQL did not answer; nothing was written. Retry shortly."),
            _ => (0, "", ""),
        };
        if (status == 0) return false;
        logger.LogWarning("{Method} {Path} answered {Status}: {Error}", context.Request.Method, context.Request.Path, status, exception.GetType().Name);
        context.Response.StatusCode = status;
        if (status == StatusCodes.Status503ServiceUnavailable) context.Response.Headers.RetryAfter = "1";
        var problem = new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        };
        // Named like the field of the other refusals: what the client must change.
        if (status == StatusCodes.Status413PayloadTooLarge) problem.ProblemDetails.Extensions["field"] = RequestJson.BodyField;
        return await problems.TryWriteAsync(problem);
    }
}
