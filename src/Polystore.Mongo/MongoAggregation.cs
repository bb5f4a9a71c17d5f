using System.Diagnostics;
using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Bson.Serialization.Serializers;
using MongoDB.Driver;

namespace Polystore.Mongo;

/// <summary>
/// An aggregation on one collection: its stages, exactly as sent, and its command options. Run it for
/// rows deserialized as <typeparamref name="TOutput"/>, or, when it ends in <c>$merge</c> or <c>$out</c>,
/// run it to refresh the target collection (a materialized view of <typeparamref name="TOutput"/> documents).
/// The stages are checked when it is created: each is one <c>$</c> operator, <c>$merge</c> and <c>$out</c>
/// come last, and the collection and every collection named by <c>$lookup</c>, <c>$merge</c> or <c>$out</c>
/// is a valid name.
/// </summary>
/// <typeparam name="TOutput">The type of the documents the pipeline produces.</typeparam>
public sealed class MongoAggregation<TOutput>
{
    private static readonly string[] Terminal = ["$merge", "$out"];

    /// <summary>Checks and copies the stages.</summary>
    /// <param name="collection">The collection the pipeline runs on.</param>
    /// <param name="stages">The stages, in order.</param>
    /// <param name="options">The command options; none by default.</param>
    /// <exception cref="ArgumentException">A collection name or a stage is invalid; the message names which.</exception>
    public MongoAggregation(string collection, IEnumerable<BsonDocument> stages, MongoAggregationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stages);
        MongoNames.ValidateCollection(collection, nameof(collection));
        Options = options ?? new MongoAggregationOptions();
        if (Options.MaxTime is { } t && t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), t, "MaxTime must be positive");
        Collection = collection;
        Stages = [.. stages.Select(s => s.DeepClone().AsBsonDocument)];
        if (Stages.Count == 0) throw new ArgumentException("an aggregation needs at least one stage", nameof(stages));
        for (var i = 0; i < Stages.Count; i++)
            if (Check(Stages[i], i, last: i == Stages.Count - 1) is { } problem) throw new ArgumentException(problem, nameof(stages));
        WritesToCollection = Terminal.Contains(Stages[^1].GetElement(0).Name);
    }

    /// <summary>The collection the pipeline runs on.</summary>
    public string Collection { get; }

    /// <summary>The stages, exactly as sent.</summary>
    public IReadOnlyList<BsonDocument> Stages { get; }

    /// <summary>The command options.</summary>
    public MongoAggregationOptions Options { get; }

    /// <summary>True when the last stage is <c>$merge</c> or <c>$out</c>: the pipeline writes a collection and returns no rows.</summary>
    public bool WritesToCollection { get; }

    /// <summary>The driver's pipeline definition, raw documents in, <typeparamref name="TOutput"/> out.</summary>
    /// <exception cref="InvalidOperationException">The pipeline writes a collection (<see cref="WritesToCollection"/>).</exception>
    public PipelineDefinition<BsonDocument, TOutput> Pipeline =>
        WritesToCollection
            ? throw new InvalidOperationException($"this pipeline ends with {Stages[^1].GetElement(0).Name} and returns no rows: use RunToCollectionAsync")
            : new BsonDocumentStagePipelineDefinition<BsonDocument, TOutput>(CloneStages());

    /// <summary>The driver's <c>aggregate</c> options (<c>allowDiskUse</c>, <c>maxTimeMS</c>).</summary>
    public AggregateOptions AggregateOptions => new()
    {
        AllowDiskUse = Options.AllowDiskUse ? true : null,
        MaxTime = Options.MaxTime,
    };

    /// <summary>Renders the pipeline with the driver's own renderer: the documents of the <c>pipeline</c> field of <c>aggregate</c>.</summary>
    public IReadOnlyList<BsonDocument> Render()
    {
        var pipeline = new BsonDocumentStagePipelineDefinition<BsonDocument, BsonDocument>(CloneStages());
        return [.. pipeline.Render(new RenderArgs<BsonDocument>(BsonDocumentSerializer.Instance, BsonSerializer.SerializerRegistry)).Documents];
    }

    /// <summary>Runs the pipeline on <see cref="Collection"/> and returns its rows.</summary>
    /// <exception cref="InvalidOperationException">The pipeline writes a collection (<see cref="WritesToCollection"/>).</exception>
    public async Task<IReadOnlyList<TOutput>> RunAsync(IMongoDatabase database, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        var pipeline = Pipeline;
        return await InstrumentAsync(database, async () =>
        {
            var source = database.GetCollection<BsonDocument>(Collection);
            using var cursor = await source.AggregateAsync(pipeline, AggregateOptions, cancellationToken).ConfigureAwait(false);
            IReadOnlyList<TOutput> rows = await cursor.ToListAsync(cancellationToken).ConfigureAwait(false);
            return rows;
        }, rows => rows.Count).ConfigureAwait(false);
    }

    /// <summary>Runs the pipeline that ends in <c>$merge</c> or <c>$out</c>: refreshes the target collection; returns nothing.</summary>
    /// <exception cref="InvalidOperationException">The pipeline does not write a collection.</exception>
    public async Task RunToCollectionAsync(IMongoDatabase database, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        if (!WritesToCollection) throw new InvalidOperationException("this pipeline does not end with $merge or $out: use RunAsync");
        await InstrumentAsync(database, async () =>
        {
            var source = database.GetCollection<BsonDocument>(Collection);
            var pipeline = new BsonDocumentStagePipelineDefinition<BsonDocument, TOutput>(CloneStages());
            await source.AggregateToCollectionAsync(pipeline, AggregateOptions, cancellationToken).ConfigureAwait(false);
            return true;
        }, null).ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="run"/> inside an <c>aggregate</c> span, timed.</summary>
    private async Task<TResult> InstrumentAsync<TResult>(IMongoDatabase database, Func<Task<TResult>> run, Func<TResult, int>? returnedRows)
    {
        var started = Stopwatch.GetTimestamp();
        using var activity = MongoStoreTelemetry.Start("aggregate", Collection, database);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("polystore.aggregate.stages", Stages.Count);
            activity.SetTag("polystore.aggregate.writes_to_collection", WritesToCollection);
        }
        try
        {
            var result = await run().ConfigureAwait(false);
            MongoStoreTelemetry.RecordDuration(MongoStoreTelemetry.AggregateSeconds, Stopwatch.GetElapsedTime(started), Collection, null);
            if (returnedRows is not null && activity is { IsAllDataRequested: true }) activity.SetTag("db.response.returned_rows", returnedRows(result));
            return result;
        }
        catch (Exception e)
        {
            MongoStoreTelemetry.RecordDuration(MongoStoreTelemetry.AggregateSeconds, Stopwatch.GetElapsedTime(started), Collection, e);
            MongoStoreTelemetry.Fail(activity, e);
            throw;
        }
    }

    private IEnumerable<BsonDocument> CloneStages() => Stages.Select(s => s.DeepClone().AsBsonDocument);

    // A malformed stage is reported; a bad collection name throws from MongoNames, naming the stage and field.
    private static string? Check(BsonDocument stage, int index, bool last)
    {
        if (stage.ElementCount != 1 || !stage.GetElement(0).Name.StartsWith('$'))
            return $"stage {index}: a stage is one $operator, got {stage.ToJson()}";
        var (name, value) = (stage.GetElement(0).Name, stage.GetElement(0).Value);
        if (Terminal.Contains(name) && !last) return $"stage {index}: {name} must be the last stage";
        switch (name)
        {
            case "$lookup" when value is BsonDocument lookup && lookup.TryGetValue("from", out var from) && from.IsString:
                MongoNames.ValidateCollection(from.AsString, $"stage {index}: $lookup.from");
                break;
            case "$merge" when value.IsString:
                MongoNames.ValidateCollection(value.AsString, $"stage {index}: $merge");
                break;
            case "$merge" when value is BsonDocument merge && merge.TryGetValue("into", out var into) && into.IsString:
                MongoNames.ValidateCollection(into.AsString, $"stage {index}: $merge.into");
                break;
            case "$merge" when value is BsonDocument merge && merge.TryGetValue("into", out var into) && into is BsonDocument intoNamespace:
                MongoNames.ValidateNamespace(intoNamespace, $"stage {index}: $merge.into");
                break;
            case "$out" when value.IsString:
                MongoNames.ValidateCollection(value.AsString, $"stage {index}: $out");
                break;
            case "$out" when value is BsonDocument outNamespace:
                MongoNames.ValidateNamespace(outNamespace, $"stage {index}: $out");
                break;
        }
        return null;
    }
}
