using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Polystore.Redis.Tests;

/// <summary>A logger factory that keeps every entry, so tests can count what was logged and at which level.</summary>
internal sealed class CapturedLogs : ILoggerFactory
{
    private readonly ConcurrentQueue<(LogLevel Level, EventId Id, string Message)> _entries = new();

    public IReadOnlyList<(LogLevel Level, EventId Id, string Message)> Entries => [.. _entries];

    /// <summary>How many entries carry <paramref name="eventName"/>.</summary>
    public int Count(string eventName) => _entries.Count(e => e.Id.Name == eventName);

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void AddProvider(ILoggerProvider provider) { }

    public void Dispose() { }

    private sealed class Logger(CapturedLogs logs) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            logs._entries.Enqueue((logLevel, eventId, formatter(state, exception)));
    }
}
