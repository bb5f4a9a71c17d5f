using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Polystore.Testing;

/// <summary>One log line.</summary>
/// <param name="Category">The logger category.</param>
/// <param name="Level">The level.</param>
/// <param name="EventId">The event id.</param>
/// <param name="Message">The formatted message.</param>
/// <param name="Exception">The exception, if any.</param>
public sealed record CapturedLog(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception);

/// <summary>
/// An <see cref="ILoggerFactory"/> (or, added to a host's logging, an <see cref="ILoggerProvider"/>) that keeps every line at or
/// above <see cref="MinimumLevel"/> (Debug by default).
/// </summary>
public sealed class LogCapture : ILoggerFactory, ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLog> _logs = new();

    /// <summary>The lowest level kept.</summary>
    public LogLevel MinimumLevel { get; init; } = LogLevel.Debug;

    /// <summary>Every line so far, in order.</summary>
    public IReadOnlyList<CapturedLog> Logs => [.. _logs];

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <inheritdoc />
    public void AddProvider(ILoggerProvider provider) { }

    /// <inheritdoc />
    public void Dispose() { }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= owner.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) owner._logs.Enqueue(new CapturedLog(category, logLevel, eventId, formatter(state, exception), exception));
        }
    }
}
