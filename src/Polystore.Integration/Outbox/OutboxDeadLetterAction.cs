namespace Polystore.Integration.Outbox;

/// <summary>One entry of <c>outbox_dead_letter_log</c>: a dead letter replayed or dropped.</summary>
/// <param name="Subscriber">The subscriber the dead letter belonged to.</param>
/// <param name="EventId">The event.</param>
/// <param name="Action"><c>replayed</c> or <c>dropped</c>.</param>
/// <param name="Actor">Who asked (the caller's label, for example <c>alice@host</c>).</param>
/// <param name="DatabaseUser">The PostgreSQL role that ran it.</param>
/// <param name="At">When.</param>
public sealed record OutboxDeadLetterAction(string Subscriber, long EventId, string Action, string Actor, string DatabaseUser, DateTimeOffset At);
