using System.Net;
using System.Net.Http.Json;
using System.Reflection;
using Npgsql;
using Polystore.Postgres.BulkUpsert;
using Polystore.Redis.Caching;

/// <summary>
/// Starts the app on a loopback port and calls it over HTTP as a client would, printing one line per step.
/// Any answer other than the expected one stops the run with exit code 1.
/// </summary>
internal static class SelfTest
{
    public static async Task<int> RunAsync(WebApplication app, string schema)
    {
        var version = typeof(PostgresBulkUpsert).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        Console.WriteLine($"polystore: {version}");
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()), Timeout = TimeSpan.FromSeconds(60) };
            await BulkUpsertAsync(http);
            await KeysetPagesAsync(http);
            await CacheAsideAsync(http);
            await RateLimitAsync(http);
            await HealthAsync(http);
            Console.WriteLine("done");
            return 0;
        }
        catch (SurpriseException e)
        {
            Console.Error.WriteLine($"self-test failed: {e.Message}");
            return 1;
        }
        finally
        {
            await using (var drop = app.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand($"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                await drop.ExecuteNonQueryAsync();
            await app.Services.GetRequiredService<IRedisTieredCache>().RemoveByPrefixAsync("greeting:");
            await app.StopAsync();
        }
    }

    private static async Task BulkUpsertAsync(HttpClient http)
    {
        var first = await PostAsync(http, Enumerable.Range(1, 100).Select(i => new Item(i, $"item {i}", i % 7)));
        var second = await PostAsync(http, Enumerable.Range(91, 20).Select(i => new Item(i, $"item {i} v2", 1)));
        Expect(first == new Counts(100, 0) && second == new Counts(10, 10), $"bulk upsert answered {first}, then {second}");
        Console.WriteLine($"bulk upsert: inserted {first.Inserted}; then inserted {second.Inserted}, updated {second.Updated}");

        static async Task<Counts> PostAsync(HttpClient http, IEnumerable<Item> items)
        {
            using var response = await http.PostAsJsonAsync("/items:bulk", items.ToArray());
            return await ReadAsync<Counts>(response);
        }
    }

    private static async Task KeysetPagesAsync(HttpClient http)
    {
        var pages = new List<string>();
        var ids = new List<long>();
        string? cursor = null;
        do
        {
            var url = cursor is null ? "/items?limit=40" : $"/items?after={Uri.EscapeDataString(cursor)}&limit=40";
            using var response = await http.GetAsync(url);
            var page = await ReadAsync<Page>(response);
            Expect(page.Items.Count > 0 && pages.Count < 10, $"page {pages.Count + 1} of /items has {page.Items.Count} rows");
            pages.Add($"{page.Items[0].Id}..{page.Items[^1].Id}");
            ids.AddRange(page.Items.Select(i => i.Id));
            cursor = page.Next;
        }
        while (cursor is not null);
        Expect(ids.SequenceEqual(Enumerable.Range(1, 110).Select(i => (long)i)), $"the pages held ids {string.Join(",", ids)}");
        Console.WriteLine($"keyset: {string.Join(", ", pages)} in order");

        using var forged = await http.GetAsync("/items?after=not-a-cursor&limit=40");
        var problem = await forged.Content.ReadFromJsonAsync<Problem>();
        Expect(forged.StatusCode == HttpStatusCode.BadRequest && forged.Content.Headers.ContentType?.MediaType == "application/problem+json",
            $"a forged cursor was answered {(int)forged.StatusCode} {forged.Content.Headers.ContentType}");
        Console.WriteLine($"keyset: a forged cursor is answered {(int)forged.StatusCode} {problem?.Title}");
    }

    private static async Task CacheAsideAsync(HttpClient http)
    {
        var answers = new List<GreetingAnswer>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await http.GetAsync("/greeting/ada");
            answers.Add(await ReadAsync<GreetingAnswer>(response));
        }
        Expect(answers.All(a => a.Greeting == "hello, ada") && answers.Select(a => a.FactoryRan).SequenceEqual([true, false, false]),
            $"the greetings were {string.Join(", ", answers)}");
        Console.WriteLine($"cache: '{answers[0].Greeting}' 3 times, after {answers.Count(a => a.FactoryRan)} factory call");
    }

    private static async Task RateLimitAsync(HttpClient http)
    {
        var answers = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/quota") { Headers = { { "X-Api-Key", "key-1" } } };
            using var response = await http.SendAsync(request);
            var answer = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                var retryAfter = response.Headers.RetryAfter?.Delta;
                Expect(retryAfter is { TotalSeconds: >= 1 and <= 60 }, $"a 429 came with Retry-After {response.Headers.RetryAfter}");
                answer += $" Retry-After: {retryAfter!.Value.TotalSeconds:0}";
            }
            answers.Add(answer);
        }
        Expect(answers[0] == "200" && answers[1] == "200" && answers[2].StartsWith("429 ", StringComparison.Ordinal), $"/quota answered {string.Join(", ", answers)}");
        Console.WriteLine($"limiter: {string.Join(", ", answers)}");

        using var other = new HttpRequestMessage(HttpMethod.Get, "/quota") { Headers = { { "X-Api-Key", "key-2" } } };
        using var otherResponse = await http.SendAsync(other);
        Expect(otherResponse.StatusCode == HttpStatusCode.OK, $"another key was answered {(int)otherResponse.StatusCode}");
        Console.WriteLine($"limiter: another key {(int)otherResponse.StatusCode}");
    }

    private static async Task HealthAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/health");
        var body = await response.Content.ReadAsStringAsync();
        Expect(response.StatusCode == HttpStatusCode.OK && body == "Healthy", $"/health answered {(int)response.StatusCode} {body}");
        Console.WriteLine($"health: {body}");
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Expect(response.IsSuccessStatusCode, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.PathAndQuery} answered {(int)response.StatusCode}: {body}");
        return System.Text.Json.JsonSerializer.Deserialize<T>(body, System.Text.Json.JsonSerializerOptions.Web)
            ?? throw new SurpriseException($"{response.RequestMessage?.RequestUri?.PathAndQuery} answered null");
    }

    private static void Expect(bool condition, string surprise)
    {
        if (!condition) throw new SurpriseException(surprise);
    }

    private sealed record Counts(long Inserted, long Updated);
    private sealed record Page(List<Item> Items, string? Next);
    private sealed record GreetingAnswer(string Greeting, bool FactoryRan);
    private sealed record Problem(string? Title, int? Status);
    private sealed class SurpriseException(string message) : Exception(message);
}
