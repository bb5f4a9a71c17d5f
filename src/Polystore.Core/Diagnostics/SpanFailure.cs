using System.Diagnostics;

namespace Polystore.Core.Diagnostics;

/// <summary>How every Polystore span records a failure, so a secret in an exception's text never reaches a trace exporter.</summary>
internal static class SpanFailure
{
    /// <summary>
    /// Marks the span failed: status Error with the exception's message, <c>error.type</c>, and the exception as an event,
    /// all redacted (<see cref="Redactor.Redact(Exception, IEnumerable{string})"/>); the type named is the original's.
    /// </summary>
    public static void Record(Activity? activity, Exception exception, IEnumerable<string?>? secrets = null)
    {
        if (activity is null) return;
        var type = exception.GetType().FullName;
        var redacted = Redactor.Redact(exception, secrets);
        activity.SetStatus(ActivityStatusCode.Error, redacted.Message);
        activity.SetTag("error.type", type);
        activity.AddException(redacted, new TagList { { "exception.type", type } });
    }
}
