using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Polystore.UsersService.Tests;

/// <summary>After a PATCH the cached profile follows within the projection lag, and never goes back to an older version.</summary>
public sealed class ProfileCacheTests : IAsyncLifetime
{
    private ServiceApp _app = null!;

    private static CancellationToken Ct => ServiceApp.Ct;

    public async ValueTask InitializeAsync() => _app = await ServiceApp.StartAsync("svc_cache");

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    private async Task<(HttpStatusCode Status, long Version, string? Cache)> GetProfileAsync(long id)
    {
        using var response = await _app.Client.GetAsync($"/users/{id}/profile", Ct);
        if (response.StatusCode != HttpStatusCode.OK) return (response.StatusCode, 0, null);
        var version = (await ServiceApp.ReadAsync(response)).GetProperty("version").GetInt64();
        Assert.Equal($"\"{version}\"", response.Headers.ETag!.Tag);
        return (response.StatusCode, version, response.Headers.GetValues("X-Cache").Single());
    }

    [Fact]
    public async Task Each_PATCH_reaches_the_cached_profile_and_no_read_goes_back_to_an_older_version()
    {
        var id = await _app.CreateUserAsync($"{Guid.NewGuid():N}@cache.test");
        await ServiceApp.EventuallyAsync(async () => (await GetProfileAsync(id)).Status == HttpStatusCode.OK, "the new user is projected");
        var (_, first, _) = await GetProfileAsync(id);
        Assert.Equal(1, first);
        var (_, again, cache) = await GetProfileAsync(id);
        Assert.Equal((1, "hit"), (again, cache)); // cached now, so only an invalidation can change what is served

        var highest = 1L;
        for (var version = 1; version <= 5; version++)
        {
            using var patch = new HttpRequestMessage(HttpMethod.Patch, $"/users/{id}") { Content = new StringContent($"{{\"name\":\"Name {version}\"}}", Encoding.UTF8, "application/json") };
            patch.Headers.IfMatch.Add(new EntityTagHeaderValue($"\"{version}\""));
            using (var response = await _app.Client.SendAsync(patch, Ct)) Assert.Equal(HttpStatusCode.OK, response.StatusCode);

            // Read until the new version shows; every read in between is the old one or the new one, never older than one already seen.
            await ServiceApp.EventuallyAsync(async () =>
            {
                var (status, served, _) = await GetProfileAsync(id);
                Assert.Equal(HttpStatusCode.OK, status);
                Assert.True(served >= highest, $"version {served} was served after version {highest}");
                Assert.True(served <= version + 1, $"version {served} does not exist yet");
                highest = served;
                return served == version + 1;
            }, $"version {version + 1} reaches the profile");
        }

        // Settled: the cache serves the newest version again.
        Assert.Equal((6L, "hit"), await LastTwoReadsAsync(id));
    }

    private async Task<(long, string?)> LastTwoReadsAsync(long id)
    {
        await GetProfileAsync(id);
        var (_, version, cache) = await GetProfileAsync(id);
        return (version, cache);
    }
}
