using MongoDB.Driver;
using Polystore.Mongo.Diagnostics;

namespace Polystore.Mongo;

/// <summary>What <c>AddMongo</c> adds beyond the configuration: driver setup in code and the doctor's thresholds.</summary>
public sealed class MongoServiceOptions
{
    /// <summary>Last changes to the driver's client settings, after the configuration and the host's logger factory.</summary>
    public Action<MongoClientSettings>? ConfigureClient { get; set; }

    /// <summary>The doctor's MongoDB thresholds; null = the defaults.</summary>
    public MongoDiagnosticOptions? Diagnostics { get; set; }
}
