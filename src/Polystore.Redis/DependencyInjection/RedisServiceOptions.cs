using Polystore.Redis.Diagnostics;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>What <c>AddRedis</c> adds beyond the configuration: driver setup in code and the doctor's thresholds.</summary>
public sealed class RedisServiceOptions
{
    /// <summary>Last changes to the StackExchange.Redis options, after the configuration and the host's logger factory.</summary>
    public Action<ConfigurationOptions>? ConfigureConnection { get; set; }

    /// <summary>The doctor's Redis thresholds; null = the defaults.</summary>
    public RedisDiagnosticOptions? Diagnostics { get; set; }
}
