using Polystore.Core.Configuration;
using System.Net;
using System.Text;
using Polystore.Core;
using Polystore.Core.Diagnostics;

namespace Polystore.Cli.Commands;

/// <summary>The doctor's output shapes: counts per store, the JSON document and the HTML page.</summary>
internal static class DoctorReport
{
    public static readonly string[] Stores = [.. StoreNames.All];

    public sealed record StoreSummary(string Store, int Critical, int Warning, int Info, int ChecksCompleted, int ChecksFailed, int ChecksTimedOut);

    public static IReadOnlyList<StoreSummary> Summarize(DiagnosticReport report) =>
        Stores.Where(s => report.Findings.Any(f => f.Store == s) || report.Checks.Any(c => c.Store == s))
            .Select(s => new StoreSummary(s,
                report.Findings.Count(f => f.Store == s && f.Severity == Severity.Critical),
                report.Findings.Count(f => f.Store == s && f.Severity == Severity.Warning),
                report.Findings.Count(f => f.Store == s && f.Severity == Severity.Info),
                report.Checks.Count(c => c.Store == s && c.Outcome == CheckOutcome.Completed),
                report.Checks.Count(c => c.Store == s && c.Outcome == CheckOutcome.Failed),
                report.Checks.Count(c => c.Store == s && c.Outcome == CheckOutcome.TimedOut)))
            .ToList();

    public static object Json(DiagnosticReport report, int exitCode, DateTimeOffset at) => new
    {
        generated_at = at.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
        exit_code = exitCode,
        summary = new
        {
            critical = report.Findings.Count(f => f.Severity == Severity.Critical),
            warning = report.Findings.Count(f => f.Severity == Severity.Warning),
            info = report.Findings.Count(f => f.Severity == Severity.Info),
            stores = Summarize(report).Select(s => new
            {
                store = s.Store,
                critical = s.Critical,
                warning = s.Warning,
                info = s.Info,
                checks_completed = s.ChecksCompleted,
                checks_failed = s.ChecksFailed,
                checks_timed_out = s.ChecksTimedOut,
            }),
        },
        checks = report.Checks.Select(c => new { store = c.Store, name = c.Name, outcome = c.Outcome, elapsed_ms = Math.Round(c.Elapsed.TotalMilliseconds, 1), findings = c.FindingCount }),
        findings = report.Findings.Select(f => new { store = f.Store, check = f.Check, severity = f.Severity, title = f.Title, evidence = f.Evidence, remedy = f.Remedy }),
    };

    public static string Html(DiagnosticReport report, int exitCode, DateTimeOffset at, string configDirectory)
    {
        static string E(string? text) => WebUtility.HtmlEncode(text ?? "");
        var sb = new StringBuilder();
        var critical = report.Findings.Count(f => f.Severity == Severity.Critical);
        var warning = report.Findings.Count(f => f.Severity == Severity.Warning);
        var info = report.Findings.Count(f => f.Severity == Severity.Info);
        sb.Append("""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>polystore doctor report</title>
            <style>
            body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1b1f24}
            h1{margin-bottom:.2rem} .meta{color:#57606a;margin-top:0}
            table{border-collapse:collapse;width:100%;margin:1rem 0 2rem} th,td{border:1px solid #d0d7de;padding:.4rem .6rem;text-align:left;vertical-align:top}
            th{background:#f6f8fa} td.num{text-align:right} pre{white-space:pre-wrap;margin:0;font-size:.85rem}
            .critical{background:#ffebe9;color:#a40e26;font-weight:bold} .warning{background:#fff8c5;color:#7d4e00;font-weight:bold} .info{color:#0550ae}
            .verdict{font-size:1.2rem;padding:.6rem 1rem;border-radius:6px;display:inline-block}
            dl{margin:0} dt{font-weight:600;display:inline} dd{display:inline;margin:0 0 0 .3rem} dd:after{content:"";display:block}
            </style></head><body>
            """);
        sb.Append("<h1>polystore doctor</h1>\n");
        sb.Append($"<p class=\"meta\">Generated {E(at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture))} UTC from config {E(configDirectory)}; exit code {exitCode}.</p>\n");
        sb.Append("<h2 id=\"summary\">Summary</h2>\n");
        var verdict = critical > 0 ? "critical" : warning > 0 ? "warning" : "info";
        sb.Append($"<p class=\"verdict {verdict}\">{critical} critical, {warning} warning, {info} info</p>\n");
        sb.Append("<table><thead><tr><th>Store</th><th>Critical</th><th>Warning</th><th>Info</th><th>Checks completed</th><th>Checks failed</th><th>Checks timed out</th></tr></thead><tbody>\n");
        foreach (var s in Summarize(report))
            sb.Append($"<tr><td><a href=\"#{E(s.Store)}\">{E(s.Store)}</a></td><td class=\"num{(s.Critical > 0 ? " critical" : "")}\">{s.Critical}</td><td class=\"num{(s.Warning > 0 ? " warning" : "")}\">{s.Warning}</td><td class=\"num\">{s.Info}</td><td class=\"num\">{s.ChecksCompleted}</td><td class=\"num\">{s.ChecksFailed}</td><td class=\"num\">{s.ChecksTimedOut}</td></tr>\n");
        sb.Append("</tbody></table>\n");
        foreach (var store in Stores)
        {
            var findings = report.Findings.Where(f => f.Store == store).ToList();
            if (findings.Count == 0 && !report.Checks.Any(c => c.Store == store)) continue;
            sb.Append($"<h2 id=\"{E(store)}\">{E(store)}</h2>\n");
            var clean = report.Checks.Where(c => c.Store == store && c.Outcome == CheckOutcome.Completed && c.FindingCount == 0).Select(c => c.Name).ToList();
            if (clean.Count > 0) sb.Append($"<p>Nothing found by: {E(string.Join(", ", clean))}.</p>\n");
            if (findings.Count == 0) continue;
            sb.Append("<table><thead><tr><th>Severity</th><th>Check</th><th>Finding</th><th>Evidence</th><th>Remedy</th></tr></thead><tbody>\n");
            foreach (var f in findings)
            {
                var severity = f.Severity.ToString().ToLowerInvariant();
                sb.Append($"<tr><td class=\"{severity}\">{severity}</td><td>{E(f.Check)}</td><td>{E(f.Title)}</td><td><dl>");
                foreach (var (k, v) in f.Evidence) sb.Append($"<dt>{E(k)}</dt><dd>{E(v)}</dd>");
                sb.Append($"</dl></td><td><pre>{E(f.Remedy)}</pre></td></tr>\n");
            }
            sb.Append("</tbody></table>\n");
        }
        sb.Append("</body></html>\n");
        return sb.ToString();
    }
}
