using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Postgres.Diagnostics;

namespace Polystore.Postgres;

/// <summary>PostgreSQL's part of the doctor and the health check, over the application's data sources.</summary>
internal sealed class PostgresStoreDoctor(PostgresDataSources sources, PostgresDiagnosticOptions? options) : IStoreDoctor
{
    public string Store => StoreNames.Postgres;

    public Task<IReadOnlyList<StorePing>> PingAsync(CancellationToken cancellationToken = default) => PostgresPing.PingAsync(sources, cancellationToken);

    public IStoreDiagnostics CreateDiagnostics() => new PostgresDiagnostics(sources.Settings, options, sources.Primary);
}
