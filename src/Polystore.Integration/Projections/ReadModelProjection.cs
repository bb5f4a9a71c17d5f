using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polystore.Integration.Cqrs;
using Polystore.Integration.Outbox;

namespace Polystore.Integration.Projections;

/// <summary>
/// An outbox subscriber that projects events into a versioned read model. Each event that the mapping
/// turns into a document is stored under the event's aggregate id and version, replacing only an older
/// version, so duplicate and stale events change nothing.
/// </summary>
/// <remarks>
/// <para>With an <see cref="IPostgresReadModelStore{T}"/> the documents are written in the dispatcher's
/// transaction: they and the subscriber's checkpoint commit together, and each event is applied exactly
/// once. Any other store is written before the checkpoint commits; a crash in between redelivers the
/// batch, and the version guard makes the second write a no-op.</para>
/// <para>With a cache, the cached documents of the batch are invalidated after the batch commits, so a
/// reader cannot re-cache the old version between the invalidation and the commit.</para>
/// </remarks>
/// <typeparam name="T">The document type.</typeparam>
public class ReadModelProjection<T> : IOutboxSubscriber where T : class
{
    private readonly IReadModelStore<T> _store;
    private readonly Func<OutboxEvent, T?> _map;
    private readonly ReadModelCache<T>? _cache;
    private readonly ILogger _logger;

    /// <summary>Creates the projection.</summary>
    /// <param name="name">The subscriber name, under which the checkpoint is kept; a rebuild uses another.</param>
    /// <param name="store">Where the documents are kept.</param>
    /// <param name="map">The document an event produces, or null for events this projection ignores. Throwing counts as a failed delivery (retried, then dead-lettered).</param>
    /// <param name="cache">The cache in front of <paramref name="store"/>, invalidated after each batch commits; null when there is none.</param>
    /// <param name="loggerFactory">Where each applied batch is logged (at Debug); null logs nothing.</param>
    public ReadModelProjection(string name, IReadModelStore<T> store, Func<OutboxEvent, T?> map, ReadModelCache<T>? cache = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(map);
        Name = name;
        _store = store;
        _map = map;
        _cache = cache;
        _logger = loggerFactory?.CreateLogger<ReadModelProjection<T>>() ?? NullLogger<ReadModelProjection<T>>.Instance;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Called for each event that produced a document, after the write and before the commit (for lag metrics).</summary>
    public Action<OutboxEvent>? Applied { get; init; }

    /// <inheritdoc />
    public async Task HandleBatchAsync(IReadOnlyList<OutboxEvent> events, OutboxContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(context);
        var applied = new List<OutboxEvent>(events.Count);
        var documents = new List<ReadModel<T>>(events.Count);
        foreach (var outboxEvent in events)
        {
            if (_map(outboxEvent) is not { } document) continue;
            applied.Add(outboxEvent);
            documents.Add(new ReadModel<T>(outboxEvent.AggregateId, outboxEvent.Version, document));
        }
        if (documents.Count == 0) return;

        using var activity = StartApply(events.Count, documents.Count);
        try
        {
            // One round trip for the batch; stale or duplicate versions are skipped by the store's guard.
            if (_store is IPostgresReadModelStore<T> postgres)
                await postgres.UpsertManyIfNewerAsync(documents, context.Transaction, cancellationToken).ConfigureAwait(false);
            else
                await _store.UpsertManyIfNewerAsync(documents, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            IntegrationTelemetry.Fail(activity, e);
            throw;
        }
        _logger.ProjectionApplied(Name, documents.Count, events.Count, _store.Description);

        if (_cache is { } cache)
        {
            // Invalidating an id whose write was skipped is harmless: the version floor only rises.
            var newest = documents.GroupBy(d => d.Id).Select(g => g.MaxBy(d => d.Version)!).ToList();
            context.AfterCommit(_ => Task.WhenAll(newest.Select(d => cache.InvalidateAsync(d.Id, d.Version))));
        }
        if (Applied is { } callback) foreach (var outboxEvent in applied) callback(outboxEvent);
    }

    private Activity? StartApply(int events, int documents)
    {
        if (!IntegrationTelemetry.Source.HasListeners()) return null;
        var activity = IntegrationTelemetry.Source.StartActivity($"projection_apply {Name}", ActivityKind.Internal);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("polystore.projection.name", Name);
        activity.SetTag("polystore.projection.store", _store.Description);
        activity.SetTag("polystore.projection.events", events);
        activity.SetTag("polystore.projection.documents", documents);
        activity.SetTag("polystore.projection.in_transaction", _store is IPostgresReadModelStore<T>);
        return activity;
    }

    /// <inheritdoc />
    public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken) =>
        HandleBatchAsync([outboxEvent], context, cancellationToken);
}
