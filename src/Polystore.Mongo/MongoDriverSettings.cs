using Microsoft.Extensions.Logging;
using MongoDB.Driver;
using MongoDB.Driver.Core.Configuration;
using Polystore.Core;
using Polystore.Core.Configuration;

namespace Polystore.Mongo;

/// <summary>The one place where mongodb.yaml becomes <see cref="MongoClientSettings"/>.</summary>
public static class MongoDriverSettings
{
    /// <summary>Driver settings for <paramref name="settings"/>; YAML keys win over options inside the URI.</summary>
    /// <param name="settings">mongodb.yaml.</param>
    /// <param name="loggerFactory">
    /// Where the driver's own structured log lines go (<see cref="MongoClientSettings.LoggingSettings"/>: connections,
    /// server selection, commands at Debug), and Polystore's MongoDB messages; null logs nothing.
    /// </param>
    public static MongoClientSettings Build(MongoSettings settings, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        MongoClientSettings client;
        try
        {
            client = MongoClientSettings.FromConnectionString(settings.Connection.Uri);
        }
        catch (Exception e) when (e is MongoConfigurationException or FormatException or ArgumentException or NotSupportedException)
        {
            // A URI the driver refuses (an unknown auth mechanism, a bad escape) is a config error, named as one.
            throw new ConfigException($"mongodb.yaml connection.uri: the MongoDB driver refused it: {Redactor.RedactConnectionString(e.Message)}", e);
        }
        client.MaxConnectionPoolSize = settings.Pool.MaxPoolSize;
        client.MinConnectionPoolSize = settings.Pool.MinPoolSize;
        if (settings.Pool.MaxIdleTimeMs > 0) client.MaxConnectionIdleTime = TimeSpan.FromMilliseconds(settings.Pool.MaxIdleTimeMs);
        client.WaitQueueTimeout = TimeSpan.FromMilliseconds(settings.Pool.WaitQueueTimeoutMs);
        if (settings.Replication.ReplicaSet is { Length: > 0 } replicaSet) client.ReplicaSetName = replicaSet;
        client.ReadPreference = new ReadPreference(settings.Replication.ReadPreference switch
        {
            MongoReadPreference.Primary => ReadPreferenceMode.Primary,
            MongoReadPreference.PrimaryPreferred => ReadPreferenceMode.PrimaryPreferred,
            MongoReadPreference.Secondary => ReadPreferenceMode.Secondary,
            MongoReadPreference.SecondaryPreferred => ReadPreferenceMode.SecondaryPreferred,
            _ => ReadPreferenceMode.Nearest,
        });
        var wc = settings.Replication.WriteConcern;
        if (wc.W is not null || wc.J is not null || wc.Wtimeout is not null)
        {
            WriteConcern.WValue? w = wc.W switch
            {
                null => null,
                "majority" => WriteConcern.WMajority.W,
                _ => new WriteConcern.WCount(int.Parse(wc.W, System.Globalization.CultureInfo.InvariantCulture)),
            };
            client.WriteConcern = new WriteConcern(
                w: w is null ? default(Optional<WriteConcern.WValue?>) : w,
                wTimeout: wc.Wtimeout is { } ms ? TimeSpan.FromMilliseconds(ms) : default(Optional<TimeSpan?>),
                journal: wc.J is { } j ? j : default(Optional<bool?>));
        }
        client.ApplicationName ??= "polystore";
        if (loggerFactory is not null) client.LoggingSettings = new LoggingSettings(loggerFactory);
        return client;
    }
}
