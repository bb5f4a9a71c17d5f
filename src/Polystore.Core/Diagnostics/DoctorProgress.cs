namespace Polystore.Core.Diagnostics;

/// <summary>How far a <see cref="PolystoreDoctor"/> run is: reported once when the checks are known, then after each.</summary>
/// <param name="Completed">Checks that have ended (completed, failed or timed out).</param>
/// <param name="Total">Checks that will run.</param>
public readonly record struct DoctorProgress(int Completed, int Total);
