namespace Polystore.Core;

/// <summary>
/// An exception whose text held a secret, as <see cref="Redactor.Redact(Exception, IEnumerable{string})"/> hands it to a
/// logger or span: the original's message, stack trace and text with the secret hidden. The original is not kept, so no
/// log sink or span exporter that walks the exception can reach the secret.
/// </summary>
internal sealed class RedactedException : Exception
{
    private readonly string _text;
    private readonly string? _stackTrace;

    public RedactedException(Exception original, string message, string text, string? stackTrace, Exception? inner)
        : base(message, inner)
    {
        _text = text;
        _stackTrace = stackTrace;
        HResult = original.HResult;
        Source = original.Source;
    }

    public override string? StackTrace => _stackTrace;

    public override string ToString() => _text;
}
