using System.Diagnostics;
using Polystore.Core.Diagnostics;

namespace Polystore.Core.Tests;

// A span exporter sees the status description and the exception event's tags: neither may carry a password.
public sealed class SpanFailureTests
{
    [Fact]
    public void A_failed_span_names_the_original_type_and_hides_the_secret()
    {
        using var span = new RecordedSpan();
        var activity = span.Activity;
        var failure = new InvalidOperationException("could not connect to redis://app:s3cretpw@cache:6379",
            new IOException("Host=db;Password=s3cretpw;Username=app"));

        SpanFailure.Record(activity, failure);

        Assert.Equal(ActivityStatusCode.Error, activity.Status);
        Assert.Equal("could not connect to redis://app:***@cache:6379", activity.StatusDescription);
        Assert.Equal(typeof(InvalidOperationException).FullName, activity.GetTagItem("error.type"));
        var exceptionEvent = Assert.Single(activity.Events);
        Assert.Equal("exception", exceptionEvent.Name);
        var tags = exceptionEvent.Tags.ToDictionary(t => t.Key, t => t.Value?.ToString());
        Assert.Equal(typeof(InvalidOperationException).FullName, tags["exception.type"]);
        Assert.Contains("redis://app:***@cache:6379", tags["exception.stacktrace"]);
        Assert.Contains("Password=***", tags["exception.stacktrace"]);
        Assert.DoesNotContain(tags.Values, v => v?.Contains("s3cretpw") == true);
    }

    [Fact]
    public void A_known_secret_is_hidden_even_outside_a_url_or_pair()
    {
        using var span = new RecordedSpan();
        var activity = span.Activity;

        SpanFailure.Record(activity, new InvalidOperationException("auth failed for hunter22"), ["hunter22"]);

        Assert.Equal("auth failed for ***", activity.StatusDescription);
        Assert.DoesNotContain(activity.Events.SelectMany(e => e.Tags), t => t.Value?.ToString()?.Contains("hunter22") == true);
    }

    /// <summary>One recorded span of a source of its own, so no other test's listener sees it.</summary>
    private sealed class RecordedSpan : IDisposable
    {
        private readonly ActivitySource _source = new($"polystore.tests.{Guid.NewGuid():N}");
        private readonly ActivityListener _listener;

        public RecordedSpan()
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = s => s == _source,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            };
            ActivitySource.AddActivityListener(_listener);
            Activity = _source.StartActivity("op")!;
        }

        public Activity Activity { get; }

        public void Dispose()
        {
            Activity.Dispose();
            _listener.Dispose();
            _source.Dispose();
        }
    }
}
