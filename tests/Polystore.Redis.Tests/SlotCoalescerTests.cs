namespace Polystore.Redis.Tests;

/// <summary>
/// How the coalescer shapes batches, with a send callback whose replies the test hands out one at a time (the
/// multiplexer is the real standalone server's, asked only whether it is a cluster). Everything runs inline on the
/// test's thread: a reply resumes its batch's callers right there.
/// </summary>
public sealed class SlotCoalescerTests
{
    private sealed record Call(int Caller, int Round);

    [Fact]
    public void A_batch_resumed_with_nothing_else_in_flight_sends_its_callers_next_calls_before_the_last_of_them_has_run()
    {
        var sends = new List<(int Size, int ResumedBefore)>();
        var replies = new List<(List<Call> Batch, TaskCompletionSource<Action> Reply)>();
        var resumed = 0; // callers of round 1 resumed so far
        SlotCoalescer<Call>? coalescer = null;
        coalescer = new SlotCoalescer<Call>(RedisServers.Standalone, batch =>
        {
            var reply = new TaskCompletionSource<Action>();
            sends.Add((batch.Count, resumed));
            replies.Add((batch, reply));
            return reply.Task;
        }, _ => 0);

        Action ResumeOf(List<Call> batch) => () =>
        {
            foreach (var call in batch)
            {
                if (call.Round != 1) continue;
                resumed++;
                coalescer!.Enqueue(call with { Round = 2 }); // the caller's next call, asked while it is resumed
            }
        };
        void Reply(int i) => replies[i].Reply.SetResult(ResumeOf(replies[i].Batch));

        // Four calls of round 0 take every in-flight slot; 32 callers of round 1 wait behind them, then go as one
        // batch when the first slot frees, and are alone on the wire once the other three replies are in.
        for (var i = 0; i < SlotCoalescer<Call>.MaxInFlight; i++) coalescer.Enqueue(new Call(-1, 0));
        for (var i = 0; i < 32; i++) coalescer.Enqueue(new Call(i, 1));
        Assert.Equal(SlotCoalescer<Call>.MaxInFlight, sends.Count);
        Reply(0);
        Assert.Equal((32, 0), sends[^1]);
        for (var i = 1; i < SlotCoalescer<Call>.MaxInFlight; i++) Reply(i);
        var before = sends.Count;

        Reply(SlotCoalescer<Call>.MaxInFlight); // the batch of 32: its callers ask their next calls while resumed
        var next = sends.Skip(before).ToList();
        Assert.Equal(32, next.Sum(s => s.Size));
        // Held back until the last caller had run, they would go as one batch of 32 (Redis idle meanwhile); the first
        // half goes as soon as it is queued, while the other half runs.
        Assert.True(next.Count >= 2, $"sent as {next.Count} batch(es): {string.Join(", ", next)}");
        Assert.InRange(next[0].ResumedBefore, 1, 31);
    }
}
