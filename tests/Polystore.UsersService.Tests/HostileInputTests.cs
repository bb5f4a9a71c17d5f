using System.Net;
using System.Text;

namespace Polystore.UsersService.Tests;

/// <summary>
/// Hostile requests to every endpoint: each is answered by a ProblemDetails with its 4xx that names what is wrong
/// (never a 500), and nothing is written.
/// </summary>
public sealed class HostileInputTests(HostileInputTests.Fixture fixture) : IClassFixture<HostileInputTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        public ServiceApp App { get; private set; } = null!;
        public long UserId { get; private set; }

        public async ValueTask InitializeAsync()
        {
            App = await ServiceApp.StartAsync("svc_hostile");
            UserId = await App.CreateUserAsync($"{Guid.NewGuid():N}@hostile.test");
        }

        public async ValueTask DisposeAsync() => await App.DisposeAsync();
    }

    private static CancellationToken Ct => ServiceApp.Ct;
    private ServiceApp App => fixture.App;

    private Task<(long Users, long Versions, long Orders, long Events)> WrittenAsync() =>
        Task.WhenAll(
                App.ScalarAsync<long>("SELECT count(*) FROM {schema}.users"),
                App.ScalarAsync<long>("SELECT coalesce(sum(version), 0) FROM {schema}.users"),
                App.ScalarAsync<long>("SELECT count(*) FROM {schema}.orders"),
                App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox"))
            .ContinueWith(t => (t.Result[0], t.Result[1], t.Result[2], t.Result[3]), TaskScheduler.Default);

    // Sends the request and checks the answer: the status, a problem naming the field, nothing written.
    private async Task AssertRefusedAsync(HttpRequestMessage request, int status, string field)
    {
        var before = await WrittenAsync();
        using var response = await App.Client.SendAsync(request, Ct);
        var problem = await ServiceApp.AssertProblemAsync(response, status);
        var named = problem.TryGetProperty("errors", out var errors) ? errors.TryGetProperty(field, out _)
            : problem.TryGetProperty("field", out var f) && f.GetString() == field;
        Assert.True(named, $"the {status} does not name '{field}': {problem}");
        Assert.DoesNotContain("   at ", problem.ToString(), StringComparison.Ordinal); // no stack trace
        Assert.Equal(before, await WrittenAsync());
    }

    private static HttpRequestMessage Send(HttpMethod method, string path, byte[] body, string mediaType, string? ifMatch = null)
    {
        var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", mediaType);
        var request = new HttpRequestMessage(method, path) { Content = content };
        // A body past the server's limit is refused (413) before it is read, and the connection closed: sent whole
        // at once, the client could still be writing it then and see a broken pipe instead of the answer. Waiting
        // for 100 Continue, as a client with a large upload should, it gets the answer before it sends the body.
        if (body.Length > 64 * 1024) request.Headers.ExpectContinue = true;
        if (ifMatch is not null) request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        return request;
    }

    private static HttpRequestMessage Send(HttpMethod method, string path, string json, string mediaType = "application/json", string? ifMatch = null) =>
        Send(method, path, Encoding.UTF8.GetBytes(json), mediaType, ifMatch);

    private string Patch => $"/users/{fixture.UserId}";

    [Fact]
    public async Task Deeply_nested_JSON_is_a_400_naming_the_body_or_row()
    {
        var deep = new string('[', 5000) + new string(']', 5000);
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users", deep), 400, "body");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users", $"{{\"email\":{deep}}}"), 400, "body");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/orders", $"{{\"userId\":{deep}}}"), 400, "body");
        await AssertRefusedAsync(Send(HttpMethod.Patch, Patch, $"{{\"name\":{deep}}}", ifMatch: "*"), 400, "body");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users:bulk", $"[{{\"email\":{deep}}}]"), 400, "body");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users:bulk", $"{{\"email\":{deep}}}\n", "application/x-ndjson"), 400, "line 1");
    }

    [Fact]
    public async Task A_body_in_a_charset_other_than_UTF_8_is_a_415_naming_the_Content_Type()
    {
        var json = $"{{\"email\":\"{Guid.NewGuid():N}@hostile.test\",\"name\":\"Ann\",\"region\":\"eu\"}}";
        // Read as UTF-8 this would be a 400 about a NUL byte at byte 2, which says nothing of the real mistake.
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users", Encoding.Unicode.GetBytes(json), "application/json; charset=utf-16"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/orders", Encoding.Latin1.GetBytes("{\"userId\":1,\"amount\":5}"), "application/json; charset=iso-8859-1"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Patch, Patch, Encoding.Unicode.GetBytes("{\"name\":\"Bo\"}"), "application/merge-patch+json; charset=utf-16", "*"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users:bulk", Encoding.Unicode.GetBytes($"[{json}]"), "application/json; charset=utf-16"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users:bulk", Encoding.Unicode.GetBytes(json + "\n"), "application/x-ndjson; charset=utf-16"), 415, "Content-Type");

        // UTF-8 under any spelling is fine.
        using var created = await App.Client.SendAsync(Send(HttpMethod.Post, "/users", json, "application/json; charset=\"UTF8\""), Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
    }

    [Theory]
    [InlineData("email", 255)]
    [InlineData("name", 201)]
    [InlineData("region", 65)]
    public async Task An_overlong_string_in_any_field_is_a_400_naming_it(string field, int length)
    {
        var fields = new Dictionary<string, string> { ["email"] = $"{Guid.NewGuid():N}@hostile.test", ["name"] = "Ann", ["region"] = "eu" };
        fields[field] = field == "email" ? new string('a', length - "@hostile.test".Length) + "@hostile.test" : new string('a', length);
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users", System.Text.Json.JsonSerializer.Serialize(fields)), 400, field);
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users:bulk", System.Text.Json.JsonSerializer.Serialize(fields) + "\n", "application/x-ndjson"), 400, $"line 1.{field}");
        if (field != "email")
            await AssertRefusedAsync(Send(HttpMethod.Patch, Patch, $"{{\"{field}\":\"{fields[field]}\"}}", ifMatch: "*"), 400, field);
    }

    [Theory]
    [InlineData("{\"userId\":1,\"amount\":-1e308}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":1e-400}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":-0}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":5.0000000000000000000000000000000001}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":NaN}", "body")]
    [InlineData("{\"userId\":1,\"amount\":\"NaN\"}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":Infinity}", "body")]
    [InlineData("{\"userId\":9223372036854775808,\"amount\":5}", "userId")]
    [InlineData("{\"userId\":-9223372036854775808,\"amount\":5}", "userId")]
    [InlineData("{\"userId\":1e2,\"amount\":5}", "userId")]
    [InlineData("{\"userId\":1,\"amount\":5,\"amount\":6}", "amount")]
    [InlineData("{\"userId\":1,\"amount\":5,\"AMOUNT\":6}", "amount")]
    public async Task Negative_NaN_huge_or_repeated_numbers_are_a_400_naming_the_field(string json, string field) =>
        await AssertRefusedAsync(Send(HttpMethod.Post, "/orders", json), 400, field);

    [Theory]
    [InlineData("..%2F..%2Fetc%2Fpasswd")]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("1.0")]
    [InlineData("%201")]
    [InlineData("99999999999999999999")]
    public async Task A_bad_path_id_is_a_400_naming_id(string id)
    {
        await AssertRefusedAsync(new HttpRequestMessage(HttpMethod.Get, $"/users/{id}"), 400, "id");
        await AssertRefusedAsync(new HttpRequestMessage(HttpMethod.Get, $"/users/{id}/profile"), 400, "id");
        await AssertRefusedAsync(new HttpRequestMessage(HttpMethod.Get, $"/users/{id}/orders"), 400, "id");
        await AssertRefusedAsync(Send(HttpMethod.Patch, $"/users/{id}", "{\"name\":\"Bo\"}", ifMatch: "*"), 400, "id");
    }

    [Fact]
    public async Task A_very_long_id_is_a_400_naming_id() =>
        await AssertRefusedAsync(new HttpRequestMessage(HttpMethod.Get, $"/users/{new string('9', 4000)}"), 400, "id");

    [Theory]
    [InlineData("/users?pageSize=-1", "pageSize")]
    [InlineData("/users?page=2", "page")]
    [InlineData("/users?limit=5&offset=100", "offset")]
    [InlineData("/users?limit=99999999999999999999", "limit")]
    [InlineData("/users?limit=", "limit")]
    [InlineData("/users?after=%00", "after")]
    [InlineData("/users?after=%FF%FE", "after")]
    [InlineData("/users?after=eyJ9.", "after")]
    [InlineData("/users/ranked?top=-1", "top")]
    [InlineData("/users/ranked?limit=5", "limit")]
    public async Task Bad_or_unknown_pagination_parameters_are_a_400_naming_them(string path, string field) =>
        await AssertRefusedAsync(new HttpRequestMessage(HttpMethod.Get, path), 400, field);

    [Theory]
    [InlineData("garbage")]
    [InlineData("\"1")]
    [InlineData("1")]
    [InlineData("W/")]
    [InlineData("\"1\" garbage")]
    [InlineData(",")]
    public async Task A_malformed_If_Match_is_a_400_naming_it_and_changes_nothing(string ifMatch) =>
        await AssertRefusedAsync(Send(HttpMethod.Patch, Patch, "{\"name\":\"Mallory\"}", ifMatch: ifMatch), 400, "If-Match");

    [Fact]
    public async Task A_wrong_content_type_is_a_415_naming_it()
    {
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users", "{}", "application/xml"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users", "{}", "application/jsonx"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users", "{}", "not a media type"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/orders", "{}", "multipart/form-data; boundary=x"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Patch, Patch, "[]", "application/json-patch+json", "*"), 415, "Content-Type");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users:bulk", "a,b,c", "text/csv"), 415, "Content-Type");
    }

    [Fact]
    public async Task A_huge_body_is_a_413_and_a_huge_bulk_row_a_400()
    {
        var huge = new string('x', 2 * 1024 * 1024);
        await AssertRefusedAsync(Send(HttpMethod.Post, "/orders", $"{{\"userId\":1,\"amount\":5,\"pad\":\"{huge}\"}}"), 413, "body");
        await AssertRefusedAsync(Send(HttpMethod.Patch, Patch, $"{{\"name\":\"{huge}\"}}", ifMatch: "*"), 413, "body");
        await AssertRefusedAsync(Send(HttpMethod.Post, "/users:bulk", $"{{\"email\":\"{huge}\"}}\n", "application/x-ndjson"), 400, "line 1");
    }

    [Fact]
    public async Task An_order_that_would_take_the_users_total_past_what_is_stored_is_a_422_naming_amount()
    {
        var userId = await App.CreateUserAsync($"{Guid.NewGuid():N}@hostile.test");
        using (var first = await App.PostJsonAsync("/orders", $"{{\"userId\":{userId},\"amount\":1}}"))
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        // As after some hundred thousand orders of the largest amount: the total column holds 14 digits before the point.
        await App.ScalarAsync<long>("WITH u AS (UPDATE {schema}.user_orders SET order_total = 99999999999999.00 WHERE user_id = $1 RETURNING 1) SELECT count(*) FROM u", userId);

        await AssertRefusedAsync(Send(HttpMethod.Post, "/orders", $"{{\"userId\":{userId},\"amount\":1000}}"), 422, "amount");
        using var fits = await App.PostJsonAsync("/orders", $"{{\"userId\":{userId},\"amount\":0.99}}");
        Assert.Equal(HttpStatusCode.Created, fits.StatusCode);
    }
}
