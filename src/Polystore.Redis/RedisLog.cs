using Microsoft.Extensions.Logging;

namespace Polystore.Redis;

/// <summary>The log messages of Polystore.Redis, with stable event ids (31xx: the circuit breaker).</summary>
internal static partial class RedisLog
{
    [LoggerMessage(EventId = 3101, EventName = "RedisCircuitOpened", Level = LogLevel.Warning,
        Message = "Redis circuit breaker for {Connection} opened: {Reason}. Calls skip Redis (cache without it, limiter by its failure mode, locks refused) until a PING succeeds; the first probe goes in {BreakDuration}")]
    public static partial void CircuitOpened(this ILogger logger, string connection, string reason, TimeSpan breakDuration);

    [LoggerMessage(EventId = 3102, EventName = "RedisCircuitHalfOpen", Message = "Redis circuit breaker for {Connection} is half-open: probing with PING (probe {Probe} of this outage)")]
    public static partial void CircuitHalfOpen(this ILogger logger, LogLevel level, string connection, int probe);

    [LoggerMessage(EventId = 3103, EventName = "RedisCircuitReopened", Message = "Redis circuit breaker for {Connection} stays open: the probe failed ({Reason}); next probe in {BreakDuration}")]
    public static partial void CircuitReopened(this ILogger logger, LogLevel level, string connection, string reason, TimeSpan breakDuration);

    [LoggerMessage(EventId = 3104, EventName = "RedisCircuitClosed", Level = LogLevel.Warning,
        Message = "Redis circuit breaker for {Connection} closed: Redis answered again after {Outage}; {ShortCircuited} calls skipped Redis meanwhile")]
    public static partial void CircuitClosed(this ILogger logger, string connection, TimeSpan outage, long shortCircuited);

    [LoggerMessage(EventId = 3201, EventName = "RedisTlsCertificateRejected", Level = LogLevel.Error,
        Message = "Redis TLS: the server's certificate ({Subject}) is refused: {Reason}")]
    public static partial void ServerCertificateRejected(this ILogger logger, string subject, string reason);
}
