using Microsoft.AspNetCore.Hosting;
using Polystore.Samples.UsersService;

namespace Polystore.Bench.ServiceHost;

/// <summary>Counts each response with an <c>X-Api-Key</c> by status, first in the pipeline so rejected requests count too; abandoned requests are not responses.</summary>
internal sealed class StatusCountingStartupFilter(StatusCounters counters) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, call) =>
        {
            await call(context);
            // A request its client abandoned before any response (wrk closes its connections as a round ends) is neither
            // admitted nor rejected: when the limiter sees the cancellation, ASP.NET Core's rate limiting middleware ends
            // the request without setting a status (Polystore's limiter gives the permit back), and the default 200
            // left on it would count as an admission.
            if (context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted) return;
            if (context.Request.Headers[UsersServiceApp.ApiKeyHeader] is { Count: > 0 } key)
                counters.Record(key.ToString(), context.Response.StatusCode);
        });
        next(app);
    };
}
