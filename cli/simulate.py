"""``csn simulate``: the powder X-ray peak list of a crystal structure file."""

import click

from ..physics import DEFAULT_WAVELENGTH, resolve_wavelength


def _wavelength(ctx, param, value):
    try:
        return resolve_wavelength(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _hkl_text(families):
    """'(1,0,1)/(1,1,0)': one (h,k,l) per family of equivalent reflections."""
    return "/".join("(" + ",".join(str(index) for index in hkl) + ")" for hkl in families)


def peak_table(peaks, separator=None) -> str:
    """The peak list as text: a whitespace-aligned table, or CSV with ``separator=','``."""
    header = ("two_theta", "d", "intensity", "hkl", "multiplicity")
    rows = [
        (f"{x:.4f}", f"{d:.5f}", f"{y:.3f}", _hkl_text(families), str(m))
        for x, d, y, families, m in zip(peaks.two_theta, peaks.d, peaks.intensity, peaks.hkls, peaks.multiplicity)
    ]
    if separator is not None:
        return "\n".join(separator.join(row) for row in [header, *rows]) + "\n"
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell.rjust(width) if i != 3 else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    lines[0] = "#" + lines[0][1:] if lines[0].startswith(" ") else "# " + lines[0]
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("structure", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=str),
              help="Write the peak list here (CSV if the name ends in .csv) instead of printing it.")
@click.option("--wavelength", default=str(DEFAULT_WAVELENGTH), show_default=True, callback=_wavelength,
              help="Angstrom, or a name such as CuKa1, CuKa, MoKa.")
@click.option("--two-theta-range", nargs=2, type=float, default=(0.0, 90.0), show_default=True,
              metavar="MIN MAX", help="2theta range in degrees.")
def simulate(structure, output, wavelength, two_theta_range):
    """Simulate the powder XRD peak list of STRUCTURE (a CIF or any file pymatgen reads).

    Columns: 2theta (deg), d (angstrom), intensity (max 100), one hkl per family of equivalent
    reflections, and the number of reflections in the peak. Same physics as pymatgen's
    XRDCalculator.
    """
    from ..errors import CsnError
    from ..synth.simulate import simulate_peaks

    try:
        peaks = simulate_peaks(structure, wavelength, two_theta_range=tuple(two_theta_range))
    except (CsnError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    header = (f"# {structure}: {len(peaks)} peaks, wavelength {wavelength:g} A, "
              f"2theta {two_theta_range[0]:g}-{two_theta_range[1]:g} deg\n")
    if output is None:
        click.echo(header + peak_table(peaks), nl=False)
        return
    text = peak_table(peaks, "," if output.lower().endswith(".csv") else None)
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text if output.lower().endswith(".csv") else header + text)
    except OSError as error:
        raise click.ClickException(f"{output}: {error.strerror or error}") from None
    click.echo(f"wrote {len(peaks)} peaks to {output}")
