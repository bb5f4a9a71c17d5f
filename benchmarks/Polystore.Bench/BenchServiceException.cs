namespace Polystore.Bench;

/// <summary>A step of <c>bench service</c> that failed: the message says which, for the one line printed.</summary>
internal sealed class BenchServiceException(string message) : Exception(message);
