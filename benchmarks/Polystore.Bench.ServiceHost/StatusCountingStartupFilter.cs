using Microsoft.AspNetCore.Hosting;
using Polystore.Samples.UsersService;

namespace Polystore.Bench.ServiceHost;

/// <summary>Counts each response with an <c>X-Api-Key</c> by status, first in the pipeline so rejected requests count too.</summary>
internal sealed class StatusCountingStartupFilter(StatusCounters counters) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, call) =>
        {
            await call(context);
            if (context.Request.Headers[UsersServiceApp.ApiKeyHeader] is { Count: > 0 } key)
                counters.Record(key.ToString(), context.Response.StatusCode);
        });
        next(app);
    };
}
