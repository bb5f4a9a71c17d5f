namespace Polystore.Core.Configuration;

/// <summary>Which server of several a connection goes to: libpq's <c>target_session_attrs</c> values, spelled as libpq spells them.</summary>
public enum PostgresTargetSession
{
    /// <summary>Whichever answers first.</summary>
    [ConfigName("any")] Any,
    /// <summary>The primary (not in recovery).</summary>
    [ConfigName("primary")] Primary,
    /// <summary>A standby (in recovery).</summary>
    [ConfigName("standby")] Standby,
    /// <summary>The primary when one answers, else a standby.</summary>
    [ConfigName("prefer-primary")] PreferPrimary,
    /// <summary>A standby when one answers, else the primary.</summary>
    [ConfigName("prefer-standby")] PreferStandby,
    /// <summary>A server that accepts writes (the primary, unless <c>default_transaction_read_only</c> is on).</summary>
    [ConfigName("read-write")] ReadWrite,
    /// <summary>A server that refuses writes (a standby, or one with <c>default_transaction_read_only</c> on).</summary>
    [ConfigName("read-only")] ReadOnly,
}
