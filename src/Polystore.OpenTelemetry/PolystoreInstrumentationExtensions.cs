using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Polystore.OpenTelemetry;

/// <summary>
/// Subscribes OpenTelemetry to Polystore: <c>builder.AddPolystoreInstrumentation()</c> on a tracer or meter provider
/// builder. The Polystore libraries report through System.Diagnostics alone and do not depend on OpenTelemetry.
/// </summary>
public static class PolystoreInstrumentationExtensions
{
    /// <summary>Adds every Polystore <see cref="System.Diagnostics.ActivitySource"/> (<see cref="PolystoreInstrumentation.ActivitySourceNames"/>).</summary>
    /// <param name="builder">The tracer provider builder.</param>
    /// <param name="includeDrivers">Also add the drivers' sources (<see cref="PolystoreInstrumentation.DriverActivitySourceNames"/>): a span per command under Polystore's.</param>
    public static TracerProviderBuilder AddPolystoreInstrumentation(this TracerProviderBuilder builder, bool includeDrivers = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddSource([.. PolystoreInstrumentation.ActivitySourceNames]);
        return includeDrivers ? builder.AddSource([.. PolystoreInstrumentation.DriverActivitySourceNames]) : builder;
    }

    /// <summary>Adds every Polystore <see cref="System.Diagnostics.Metrics.Meter"/> (<see cref="PolystoreInstrumentation.MeterNames"/>).</summary>
    /// <param name="builder">The meter provider builder.</param>
    /// <param name="includeDrivers">Also add the drivers' meters (<see cref="PolystoreInstrumentation.DriverMeterNames"/>).</param>
    public static MeterProviderBuilder AddPolystoreInstrumentation(this MeterProviderBuilder builder, bool includeDrivers = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMeter([.. PolystoreInstrumentation.MeterNames]);
        return includeDrivers ? builder.AddMeter([.. PolystoreInstrumentation.DriverMeterNames]) : builder;
    }
}
