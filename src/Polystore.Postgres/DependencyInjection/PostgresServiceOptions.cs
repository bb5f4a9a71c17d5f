using Npgsql;
using Polystore.Postgres.Diagnostics;

namespace Polystore.Postgres;

/// <summary>What <c>AddPostgres</c> adds beyond the configuration: driver setup in code and the doctor's thresholds.</summary>
public sealed class PostgresServiceOptions
{
    /// <summary>Last changes to the Npgsql data source builder (type mappings, plugins), after the configuration and the host's logger factory.</summary>
    public Action<NpgsqlDataSourceBuilder>? ConfigureDataSource { get; set; }

    /// <summary>The doctor's PostgreSQL thresholds; null = the defaults.</summary>
    public PostgresDiagnosticOptions? Diagnostics { get; set; }
}
