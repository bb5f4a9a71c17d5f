using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Postgres.Querying;
using Polystore.Samples.UsersService;

namespace Polystore.UsersService.Tests;

/// <summary>GET /users (keyset pages, signed cursors), /users/{id}/profile, /analytics/regions and the OpenAPI document.</summary>
public sealed class UserQueryTests(UserQueryTests.Fixture fixture) : IClassFixture<UserQueryTests.Fixture>
{
    public const int Users = 25;

    public sealed class Fixture : IAsyncLifetime
    {
        public ServiceApp App { get; private set; } = null!;
        public List<long> Ids { get; } = [];

        public async ValueTask InitializeAsync()
        {
            App = await ServiceApp.StartAsync("svc_query");
            for (var i = 0; i < Users; i++) Ids.Add(await App.CreateUserAsync($"user{i}@query.test", $"User {i}", i % 3 == 0 ? "eu" : "us"));
        }

        public async ValueTask DisposeAsync() => await App.DisposeAsync();
    }

    private static CancellationToken Ct => ServiceApp.Ct;
    private ServiceApp App => fixture.App;

    private async Task<(List<long> Ids, string? Next, string? NextLink)> PageAsync(string query)
    {
        using var response = await App.Client.GetAsync($"/users{query}", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var page = await ServiceApp.ReadAsync(response);
        return (page.GetProperty("items").EnumerateArray().Select(u => u.GetProperty("id").GetInt64()).ToList(),
            page.GetProperty("next").GetString(), page.GetProperty("nextLink").GetString());
    }

    [Fact]
    public async Task Pages_walk_every_user_once_in_id_order()
    {
        var seen = new List<long>();
        var (ids, next, link) = await PageAsync("?limit=10");
        seen.AddRange(ids);
        while (next is not null)
        {
            Assert.Equal($"/users?after={Uri.EscapeDataString(next)}&limit=10", link);
            (ids, next, link) = await PageAsync($"?after={Uri.EscapeDataString(next!)}&limit=10");
            Assert.InRange(ids.Count, 1, 10);
            seen.AddRange(ids);
        }
        Assert.Equal(fixture.Ids, seen);
        Assert.Null(link);
    }

    [Fact]
    public async Task The_default_page_has_50_rows_and_a_limit_of_1000_is_accepted()
    {
        Assert.Equal(fixture.Ids, (await PageAsync("")).Ids);
        Assert.Equal(fixture.Ids, (await PageAsync("?limit=1000")).Ids);
    }

    [Theory]
    [InlineData("?limit=0")]
    [InlineData("?limit=1001")]
    [InlineData("?limit=-5")]
    [InlineData("?limit=ten")]
    [InlineData("?limit=10&limit=20")]
    public async Task A_limit_outside_1_to_1000_is_a_400_naming_it(string query)
    {
        using var response = await App.Client.GetAsync($"/users{query}", Ct);
        Assert.Contains("1 to 1000", await ServiceApp.AssertFieldErrorAsync(response, "limit"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_changed_cursor_is_a_400_naming_after_never_a_500()
    {
        var next = (await PageAsync("?limit=5")).Next!;
        var dot = next.IndexOf('.', StringComparison.Ordinal);
        // Point the cursor elsewhere: re-encode the payload with another id, keeping the signature.
        var payload = Encoding.UTF8.GetString(Convert.FromBase64String(Pad(next[..dot].Replace('-', '+').Replace('_', '/'))));
        var forged = Convert.ToBase64String(Encoding.UTF8.GetBytes(payload.Replace($"\"{fixture.Ids[4]}\"", $"\"{fixture.Ids[20]}\"", StringComparison.Ordinal)))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_') + next[dot..];
        Assert.NotEqual(next, forged);
        var flipped = next[..^1] + (next[^1] == 'A' ? 'B' : 'A');

        foreach (var cursor in new[] { forged, flipped, "garbage", "a.b", next[..dot], new string('x', 100_000) })
        {
            using var response = await App.Client.GetAsync($"/users?after={Uri.EscapeDataString(cursor)}&limit=5", Ct);
            Assert.NotEqual(HttpStatusCode.InternalServerError, response.StatusCode);
            if (response.StatusCode == HttpStatusCode.RequestUriTooLong) continue; // refused by the server before the endpoint
            await ServiceApp.AssertFieldErrorAsync(response, "after");
        }
    }

    [Fact]
    public async Task A_cursor_signed_with_another_key_or_for_another_query_is_a_400()
    {
        var otherKey = KeysetQuery.From($"{App.Schema}.users").Select("id", "email", "name", "region", "version", "created_at").OrderBy("id")
            .SignCursorsWith(new CursorSigner(Encoding.UTF8.GetBytes("another key that is at least 32 bytes long"))).Build()
            .CreateCursor(after: true, fixture.Ids[3]);
        var options = App.Services.GetRequiredService<UsersServiceOptions>();
        var sameKeyOtherQuery = KeysetQuery.From($"{App.Schema}.users").OrderBy("email").ThenBy("id")
            .SignCursorsWith(new CursorSigner(Convert.FromBase64String(options.CursorKey!))).Build()
            .CreateCursor(after: true, "user3@query.test", fixture.Ids[3]);

        using (var foreign = await App.Client.GetAsync($"/users?after={Uri.EscapeDataString(otherKey)}", Ct))
            Assert.Contains("signature", await ServiceApp.AssertFieldErrorAsync(foreign, "after"), StringComparison.Ordinal);
        using var other = await App.Client.GetAsync($"/users?after={Uri.EscapeDataString(sameKeyOtherQuery)}", Ct);
        Assert.Contains("different query", await ServiceApp.AssertFieldErrorAsync(other, "after"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_profile_comes_from_the_read_model_through_the_cache_with_its_version_as_ETag()
    {
        var id = fixture.Ids[0];
        HttpResponseMessage? response = null;
        await ServiceApp.EventuallyAsync(async () =>
        {
            response?.Dispose();
            response = await App.Client.GetAsync($"/users/{id}/profile", Ct);
            return response.StatusCode == HttpStatusCode.OK;
        }, "the profile is projected");
        using (response)
        {
            Assert.Equal("\"1\"", response!.Headers.ETag!.Tag);
            Assert.Equal("User 0", (await ServiceApp.ReadAsync(response)).GetProperty("name").GetString());
        }
        using var cached = await App.Client.GetAsync($"/users/{id}/profile", Ct);
        Assert.Equal("hit", Assert.Single(cached.Headers.GetValues("X-Cache")));

        using var conditional = new HttpRequestMessage(HttpMethod.Get, $"/users/{id}/profile");
        conditional.Headers.TryAddWithoutValidation("If-None-Match", "\"1\"");
        using var notModified = await App.Client.SendAsync(conditional, Ct);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
    }

    [Fact]
    public async Task A_missing_profile_is_a_404_and_a_bad_id_a_400()
    {
        using (var missing = await App.Client.GetAsync("/users/987654321/profile", Ct)) await ServiceApp.AssertProblemAsync(missing, 404);
        using (var zero = await App.Client.GetAsync("/users/0/profile", Ct)) await ServiceApp.AssertFieldErrorAsync(zero, "id");
        using var text = await App.Client.GetAsync("/users/x1/profile", Ct);
        await ServiceApp.AssertFieldErrorAsync(text, "id");
    }

    [Fact]
    public async Task Region_analytics_count_the_read_model_when_MongoDB_is_not_configured()
    {
        JsonElement body = default;
        await ServiceApp.EventuallyAsync(async () =>
        {
            using var response = await App.Client.GetAsync("/analytics/regions", Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            body = await ServiceApp.ReadAsync(response);
            return body.GetProperty("regions").EnumerateArray().Sum(r => r.GetProperty("userCount").GetInt64()) >= Users;
        }, "every user is projected");

        Assert.Equal("read-model", body.GetProperty("source").GetString());
        var regions = body.GetProperty("regions").EnumerateArray().ToDictionary(r => r.GetProperty("region").GetString()!, r => r.GetProperty("userCount").GetInt64());
        Assert.Equal(new Dictionary<string, long> { ["us"] = 16, ["eu"] = 9 }, regions);
    }

    [Fact]
    public async Task The_OpenAPI_document_describes_every_endpoint()
    {
        using var response = await App.Client.GetAsync("/openapi/v1.json", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var paths = (await ServiceApp.ReadAsync(response)).GetProperty("paths");

        Assert.True(paths.GetProperty("/users").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/users").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/users/{id}").TryGetProperty("patch", out _));
        Assert.True(paths.GetProperty("/users/{id}").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/users:bulk").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/users/ranked").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/users/{id}/profile").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/users/{id}/orders").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/orders").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/analytics/regions").TryGetProperty("get", out _));

        // What the handlers read and answer is documented too: query parameters, 415 where a body is read, and the
        // 429 / 413 / 503 every endpoint may answer.
        static IEnumerable<string> Parameters(JsonElement operation) => operation.GetProperty("parameters").EnumerateArray().Select(p => p.GetProperty("name").GetString()!);
        Assert.Equal(["after", "limit"], Parameters(paths.GetProperty("/users").GetProperty("get")).Order());
        Assert.Contains("top", Parameters(paths.GetProperty("/users/ranked").GetProperty("get")));
        foreach (var (path, method) in new[] { ("/users/{id}", "patch"), ("/orders", "post") })
            Assert.True(paths.GetProperty(path).GetProperty(method).GetProperty("responses").TryGetProperty("415", out _), $"{method} {path}: 415");
        var responses = paths.GetProperty("/users/{id}/profile").GetProperty("get").GetProperty("responses");
        foreach (var status in new[] { "413", "429", "503" }) Assert.True(responses.TryGetProperty(status, out _), status);
    }

    private static string Pad(string s) => s.PadRight(s.Length + (4 - s.Length % 4) % 4, '=');
}
