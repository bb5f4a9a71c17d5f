using Microsoft.Extensions.Logging;
using MongoDB.Driver;
using MongoDB.Driver.Core.Configuration;
using Polystore.Core;
using Polystore.Core.Configuration;

namespace Polystore.Mongo;

/// <summary>The one place where mongodb.yaml becomes <see cref="MongoClientSettings"/>.</summary>
public static class MongoDriverSettings
{
    /// <summary>
    /// Driver settings for <paramref name="settings"/>: the URI's options, then each YAML key that is set (a pool or
    /// read preference key at its default leaves the URI's option in place).
    /// </summary>
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
        // A YAML key at its default leaves the URI's option (or the driver's default, the same value) in place; a key
        // set to anything else wins. So an option written only in the URI, or in POLYSTORE_MONGO_URL, is kept.
        var pool = settings.Pool;
        var defaults = new MongoPoolSettings();
        if (pool.MaxPoolSize != defaults.MaxPoolSize) client.MaxConnectionPoolSize = pool.MaxPoolSize;
        if (pool.MinPoolSize != defaults.MinPoolSize) client.MinConnectionPoolSize = pool.MinPoolSize;
        if (pool.MaxIdleTimeMs > 0) client.MaxConnectionIdleTime = TimeSpan.FromMilliseconds(pool.MaxIdleTimeMs);
        if (pool.WaitQueueTimeoutMs != defaults.WaitQueueTimeoutMs) client.WaitQueueTimeout = TimeSpan.FromMilliseconds(pool.WaitQueueTimeoutMs);
        if (settings.Replication.ReplicaSet is { Length: > 0 } replicaSet) client.ReplicaSetName = replicaSet;
        if (settings.Replication.ReadPreference != MongoReadPreference.Primary)
        {
            // With keeps the URI's tag sets and max staleness.
            client.ReadPreference = client.ReadPreference.With(settings.Replication.ReadPreference switch
            {
                MongoReadPreference.PrimaryPreferred => ReadPreferenceMode.PrimaryPreferred,
                MongoReadPreference.Secondary => ReadPreferenceMode.Secondary,
                MongoReadPreference.SecondaryPreferred => ReadPreferenceMode.SecondaryPreferred,
                _ => ReadPreferenceMode.Nearest,
            });
        }
        var wc = settings.Replication.WriteConcern;
        if (wc.W is not null || wc.J is not null || wc.Wtimeout is not null)
        {
            WriteConcern.WValue? w = wc.W switch
            {
                null => null,
                "majority" => WriteConcern.WMajority.W,
                _ => new WriteConcern.WCount(int.Parse(wc.W, System.Globalization.CultureInfo.InvariantCulture)),
            };
            // Only the keys YAML sets replace the URI's (w=majority&wtimeoutMS=5000 in the URI plus j: true keeps all three).
            client.WriteConcern = client.WriteConcern.With(
                w: w is null ? default(Optional<WriteConcern.WValue?>) : w,
                wTimeout: wc.Wtimeout is { } ms ? TimeSpan.FromMilliseconds(ms) : default(Optional<TimeSpan?>),
                journal: wc.J is { } j ? j : default(Optional<bool?>));
        }
        client.ApplicationName ??= "polystore";
        if (loggerFactory is not null) client.LoggingSettings = new LoggingSettings(loggerFactory);
        return client;
    }
}
