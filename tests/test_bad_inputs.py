"""The bad-input catalogue: bad or odd inputs, each with the outcome csn must give.

Every case is a real file written to ``tmp_path`` (or real arrays / objects given to the API) and
one expectation: ``Err(regex)`` -- a single-line PatternError that starts with the file's name and
says what is wrong, never a traceback or another exception type -- or ``Ok(check)`` -- a pattern
whose values ``check`` verifies (optionally with a PatternWarning matching ``warns``).
The count of cases is recorded in docs/benchmarks.md ("Bad-input catalogue").
No shared data needed: patterns are synthesised here.
"""

import gzip
import os
import re
import struct
import time
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pytest

from csn_plugin.inputs import to_pattern
from csn_plugin.errors import PatternError, PatternWarning, display_name
from csn_plugin.readers import BUILTIN_READERS, MAX_FILE_BYTES, MAX_MEMBER_BYTES, read_pattern

# ------------------------------------------------------------------------------ a synthetic scan
X = np.round(np.arange(10.0, 80.0, 0.02), 4)
PEAKS = ((25.3, 900.0), (37.8, 300.0), (48.0, 450.0), (53.9, 250.0), (62.7, 200.0))
Y = np.round(100.0 + sum(h * np.exp(-(((X - c) / 0.08) ** 2)) for c, h in PEAKS), 1)
N = len(X)


def ripple(count):
    """Intensities with some structure for short scans (never constant)."""
    return 100.0 + (np.arange(count) % 7) * 3.0


def rows(fmt="{x:.2f} {y:.1f}", x=X, y=Y, sep="\n"):
    return sep.join(fmt.format(x=a, y=b, e=np.sqrt(abs(b))) for a, b in zip(x, y))


@dataclass
class Err:
    pattern: str
    exception: type = PatternError


@dataclass
class Ok:
    check: object = None  # callable(pattern) -> None (asserts)
    warns: str | None = None
    seconds: float = 20.0  # a wall-time bound (linear-time parsers)


@dataclass
class Case:
    id: str
    make: object  # callable(tmp_path) -> path (file case) or Api(obj)
    expect: object
    wavelength: object = None
    options: dict = field(default_factory=dict)


@dataclass
class Api:
    obj: object


CASES = []


def case(id, expect, wavelength=None, **options):
    def register(make):
        CASES.append(Case(id, make, expect, wavelength, options))
        return make

    return register


def text_case(id, name, content, expect, wavelength=None, encoding="utf-8"):
    """A case whose file ``name`` holds ``content`` (str, written in ``encoding``, or bytes)."""

    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    CASES.append(Case(id, make, expect, wavelength))


def same_as_synthetic(pattern, intensity_scale=1.0, rtol=1e-9):
    assert len(pattern) == N
    assert np.allclose(pattern.two_theta, np.round(X, 2))
    assert np.allclose(pattern.intensity, Y * intensity_scale, rtol=rtol)


def wavelength_is(value, source="file"):
    def check(pattern):
        assert pattern.wavelength == pytest.approx(value, rel=1e-6)
        assert pattern.metadata["wavelength_source"] == source
        same_as_synthetic(pattern)

    return check


# ------------------------------------------------------------------ text: dialects read correctly
GOOD = rows()
text_case("xy-spaces", "a.xy", GOOD, Ok(same_as_synthetic))
text_case("xy-tabs", "a.xy", rows("{x:.2f}\t{y:.1f}"), Ok(same_as_synthetic))
text_case("xy-crlf", "a.xy", rows(sep="\r\n"), Ok(same_as_synthetic))
text_case("xy-cr-only", "a.xy", rows(sep="\r"), Ok(same_as_synthetic))
text_case("csv-comma", "a.csv", rows("{x:.2f},{y:.1f}"), Ok(same_as_synthetic))
text_case("csv-comma-space", "a.csv", rows("{x:.2f}, {y:.1f}"), Ok(same_as_synthetic))
text_case("csv-semicolon", "a.csv", rows("{x:.2f};{y:.1f}"), Ok(same_as_synthetic))
text_case("decimal-comma-semicolon", "a.csv", rows("{x:.2f};{y:.1f}").replace(".", ","), Ok(same_as_synthetic))
text_case("decimal-comma-space", "a.xy", rows().replace(".", ","), Ok(same_as_synthetic))
text_case("utf8-bom", "a.xy", "\ufeff" + GOOD, Ok(same_as_synthetic))
text_case("utf16-le-bom", "a.xy", GOOD, Ok(same_as_synthetic), encoding="utf-16")
text_case("utf16-be-bom", "a.xy", b"\xfe\xff" + GOOD.encode("utf-16-be"), Ok(same_as_synthetic))
text_case("utf16-le-no-bom", "a.xy", GOOD.encode("utf-16-le"), Ok(same_as_synthetic))
text_case("utf16-header-wavelength", "a.xy", "# Wavelength: 0.70930 A\n" + GOOD, Ok(wavelength_is(0.7093)), encoding="utf-16")
text_case("latin1-header", "a.xy", ("# Probe: Quarz \xe9chantillon \xb0\n" + GOOD).encode("latin-1"), Ok(same_as_synthetic))
for prefix in ("#", "!", ";", "%", "//"):
    text_case(f"comment-{prefix}", "a.xy", f"{prefix} measured by someone\n" + GOOD, Ok(same_as_synthetic))
text_case("word-header", "a.xy", "2theta intensity\n" + GOOD, Ok(same_as_synthetic))
text_case("trailing-text", "a.xy", GOOD + "\nEND OF DATA\n", Ok(same_as_synthetic))
text_case("blank-lines", "a.xy", GOOD.replace("\n", "\n\n"), Ok(same_as_synthetic))
text_case("trailing-whitespace", "a.xy", rows("{x:.2f} {y:.1f}   \t"), Ok(same_as_synthetic))
text_case("leading-whitespace", "a.xy", rows("    {x:.2f} {y:.1f}"), Ok(same_as_synthetic))
text_case("scientific", "a.xy", rows("{x:.6e} {y:.6e}"), Ok(same_as_synthetic))
text_case("esd-column", "a.xye", rows("{x:.2f} {y:.1f} {e:.3f}"),
          Ok(lambda p: (same_as_synthetic(p), np.testing.assert_allclose(p.esd, np.round(np.sqrt(Y), 3)))))
text_case("four-columns", "a.xy", rows("{x:.2f} {y:.1f} {y:.1f} 7"), Ok(same_as_synthetic))
text_case("reversed-scan", "a.xy", rows(x=X[::-1], y=Y[::-1]),
          Ok(lambda p: (same_as_synthetic(p), p.metadata["reversed"] is True)))
text_case("unknown-extension", "scan.foo", GOOD, Ok(same_as_synthetic))
text_case("no-extension", "scan", GOOD, Ok(same_as_synthetic))
NEGATIVE_BACKGROUND = np.round(Y - 99.7 + 0.5 * np.sin(np.arange(N)), 1)
text_case("negative-background-subtracted", "a.xy", rows(y=NEGATIVE_BACKGROUND),
          Ok(lambda p: (np.testing.assert_allclose(p.intensity, NEGATIVE_BACKGROUND), p.intensity.min() < 0)))
text_case("integers", "a.xy", rows("{x:.2f} {y:.0f}"), Ok(lambda p: np.testing.assert_allclose(p.intensity, np.round(Y))))
text_case("huge-intensity-1e300", "a.xy", rows("{x:.2f} {y:.6e}", y=Y * 1e300), Ok(lambda p: same_as_synthetic(p, 1e300, 1e-6)))
text_case("max-intensity-1e308", "a.xy", rows("{x:.2f} {y:.6e}", y=Y / Y.max() * 1e308),
          Ok(lambda p: np.testing.assert_allclose(p.intensity.max(), 1e308, rtol=1e-6)))
text_case("tiny-intensity-1e-300", "a.xy", rows("{x:.2f} {y:.6e}", y=Y * 1e-300), Ok(lambda p: same_as_synthetic(p, 1e-300, 1e-6)))

# ----------------------------------------------------------- text: thousands vs decimal commas
text_case("thousands-intensity", "a.xy", rows("{x:.2f} {y:,.0f}", y=Y * 10),
          Ok(lambda p: np.testing.assert_allclose(p.intensity, np.round(Y * 10))))
text_case("thousands-with-decimals", "a.xy", rows("{x:.2f} {y:,.1f}", y=Y * 10),
          Ok(lambda p: np.testing.assert_allclose(p.intensity, np.round(Y * 10, 1))))
text_case("thousands-millions", "a.xy", rows("{x:.2f} {y:,.0f}", y=Y * 10000),
          Ok(lambda p: np.testing.assert_allclose(p.intensity, np.round(Y * 10000))))
text_case("thousands-only-some-rows", "a.xy", rows("{x:.2f} {y:,.0f}", y=Y * 2),
          Ok(lambda p: np.testing.assert_allclose(p.intensity, np.round(Y * 2))))
text_case("decimal-comma-three-decimals", "a.xy", rows("{x:.2f} {y:.3f}", y=Y / 1000).replace(".", ","),
          Ok(lambda p: np.testing.assert_allclose(p.intensity, [float(f"{v:.3f}") for v in Y / 1000])))
text_case("decimal-comma-angle-thousands-look", "a.xy", rows("{x:.3f} {y:.1f}").replace(".", ","),
          Ok(lambda p: np.testing.assert_allclose(p.two_theta, np.round(X, 3))))

# -------------------------------------------------------------------- text: header wavelengths
HEADERS = {
    "# Wavelength (Cu Ka1) = 1.5406 A": 1.5406,
    "# Lambda1 = 1.5406": 1.5406,
    "# lambda1 1.5406 lambda2 1.5444": 1.5406,
    "# Wavelength: 0.70930 A": 0.7093,
    "# wavelength = 0.1 nm": 1.0,
    "# Wavelength: 7.093e-11 m": 0.7093,
    "! Wavelength 1.54056": 1.54056,
    "# Wavelength (A): 1.78896": 1.78896,
    "# Wavelength: Cu Ka1": 1.54056,
    "# WAVELENGTH = 2.28970 (Cr Ka1)": 2.2897,
    "# Wavelength=0.4133Angstrom": 0.4133,
    "# \u03bb = 0.559421 \u00c5": 0.559421,
    "# Radiation: Mo Ka; wavelength 0.71073": 0.71073,
}
for index, (header, value) in enumerate(HEADERS.items()):
    text_case(f"header-wavelength-{index}", "a.xy", header + "\n" + GOOD, Ok(wavelength_is(value)))
text_case("header-wavelength-implausible", "a.xy", "# Wavelength: 99 A\n" + GOOD, Ok(wavelength_is(1.5406, "default")))
text_case("header-wavelength-and-user-name-agree", "a.xy", "# Wavelength (Cu Ka1) = 1.5406 A\n" + GOOD,
          Ok(wavelength_is(1.5406)), wavelength="CuKa1")
text_case("header-wavelength-user-conflict", "a.xy", "# Lambda1 = 1.5406\n" + GOOD,
          Err(r"records wavelength 1\.5406 A but 0\.71073 A was given"), wavelength="MoKa")
text_case("user-wavelength-no-header", "a.xy", GOOD, Ok(wavelength_is(0.7093, "user")), wavelength="MoKa1")

# ----------------------------------------------------------------- text: refused, clearly
text_case("empty", "a.xy", b"", Err(r"the file is empty$"))
text_case("only-whitespace", "a.xy", "   \n\t\n  \n", Err(r"no reader recognises|no lines with two or more columns"))
text_case("only-comments", "a.xy", "# a\n# b\n# c\n", Err(r"no reader recognises|no lines with two or more columns"))
text_case("one-column", "a.xy", "\n".join(f"{v:.1f}" for v in Y), Err(r"no reader recognises|no lines with two or more columns"))
text_case("words-between-data", "a.xy", rows(x=X[:1000], y=Y[:1000]) + "\nfoo bar\n" + rows(x=X[1000:], y=Y[1000:]),
          Err(r"line 1001 is not two columns of numbers: 'foo bar'"))
text_case("nan-value", "a.xy", GOOD.replace(f"{X[7]:.2f} {Y[7]:.1f}", f"{X[7]:.2f} nan"), Err(r"1 intensities are NaN or infinite \(first at point 8\)"))
text_case("inf-value", "a.xy", GOOD.replace(f"{X[7]:.2f} {Y[7]:.1f}", f"{X[7]:.2f} inf"), Err(r"NaN or infinite"))
text_case("overflow-1e309", "a.xy", GOOD.replace(f"{X[7]:.2f} {Y[7]:.1f}", f"{X[7]:.2f} 1e309"), Err(r"NaN or infinite"))
text_case("all-zero", "a.xy", rows(y=Y * 0), Err(r"all intensities are zero"))
text_case("all-negative", "a.xy", rows(y=-Y), Err(r"no intensity is positive"))
text_case("constant", "a.xy", rows(y=Y * 0 + 5), Err(r"the intensity is constant \(5\) everywhere"))
text_case("negative-median", "a.xy", rows(y=Y - 300), Err(r"most intensities are negative"))
text_case("unsorted", "a.xy", rows(x=np.concatenate([X[:100], X[50:60], X[100:]]), y=np.concatenate([Y[:100], Y[50:60], Y[100:]])),
          Err(r"angles are not sorted"))
text_case("repeated-angle", "a.xy", rows(x=np.concatenate([X[:100], X[99:]]), y=np.concatenate([Y[:100], Y[99:]])),
          Err(r"angle 11\.98 deg is repeated \(points 100 and 101\)"))
text_case("angles-over-180", "a.xy", rows(x=X + 150), Err(r"lie outside 0-180 deg 2theta"))
text_case("negative-angles", "a.xy", rows(x=X - 50), Err(r"lie outside 0-180 deg 2theta"))
text_case("too-few-points", "a.xy", rows(x=X[:49], y=Y[:49]), Err(r"only 49 data points; a pattern needs at least 50"))
text_case("exactly-50-points", "a.xy", rows(x=15 + 0.2 * np.arange(50), y=ripple(50)), Ok(lambda p: len(p) == 50))
text_case("index-column-0", "a.xy", rows("{x:.0f} {y:.1f}", x=np.arange(N)), Err(r"the first column counts the points \(0, 1, 2, \.\.\."))
text_case("index-column-1", "a.xy", rows("{x:.0f} {y:.1f}", x=np.arange(1, N + 1)), Err(r"the first column counts the points \(1, 2, 3"))
text_case("index-then-2theta", "a.xy", "\n".join(f"{i} {a:.2f} {b:.1f}" for i, (a, b) in enumerate(zip(X, Y))),
          Err(r"counts the points .*columns 2 and 3 may be 2theta and intensity"))
text_case("narrow-scan-0.65deg", "a.xy", rows("{x:.4f} {y:.1f}", x=np.linspace(13.75, 14.40, 200), y=ripple(200)),
          Err(r"the scan covers only 0\.65 deg 2theta \(13\.75-14\.4 deg\): too narrow to classify"))
text_case("narrow-scan-not-wavelength", "a.xy", rows("{x:.4f} {y:.1f}", x=np.linspace(40.0, 40.5, 100), y=ripple(100)),
          Err(r"^(?!.*wavelength right).*too narrow to classify"))
text_case("low-angle-wrong-wavelength", "a.xy", rows("{x:.4f} {y:.1f}", x=np.linspace(1, 3, 201), y=ripple(201)),
          Err(r"miss the usable range .*is the wavelength right\?"))
text_case("d-spacing-column", "a.xy", rows("{x:.5f} {y:.1f}", x=1.5406 / (2 * np.sin(np.radians(X / 2)))),
          Ok(lambda p: len(p) == N, warns=r"looks like d-spacings"))
text_case("q-column-cu", "a.xy", rows("{x:.5f} {y:.1f}", x=4 * np.pi * np.sin(np.radians(X / 2)) / 1.5406),
          Err(r"miss the usable range .*or is the first column Q in 1/A or d in A\? convert it to 2theta"))
text_case("q-column-synchrotron", "a.xy", rows("{x:.5f} {y:.1f}", x=np.linspace(1.0, 10.0, N)),
          Ok(lambda p: len(p) == N, warns=r"more likely Q"))
text_case("q-named-column", "a.xy", "q_A^-1 I\n" + rows("{x:.5f} {y:.1f}", x=4 * np.pi * np.sin(np.radians(X / 2)) / 1.5406),
          Err(r"the first column is 'q_A\^-1', not 2theta"))
text_case("d-named-column", "a.xy", "d_spacing I\n" + GOOD, Err(r"the first column is 'd_spacing', not 2theta"))
text_case("cut-mid-row-one-number", "a.xy", GOOD + "\n80.00", Ok(same_as_synthetic, warns=rf"line {N + 1} is cut \('80\.00'\): read the data up to line {N}"))
text_case("cut-mid-number", "a.xy", GOOD + "\n80.00 1.2e+", Ok(same_as_synthetic, warns=rf"line {N + 1} is cut"))
text_case("cut-short-row-3-columns", "a.xye", rows("{x:.2f} {y:.1f} {e:.3f}") + "\n80.00 12",
          Ok(lambda p: (same_as_synthetic(p), p.esd is not None), warns=rf"line {N + 1} has 2 of the 3 columns"))
text_case("cut-then-words-between", "a.xy", rows(x=X[:100], y=Y[:100]) + "\n12.00\n" + rows(x=X[100:], y=Y[100:]),
          Err(r"line 101 is not two columns of numbers: '12\.00'"))
text_case("binary-garbage-xy", "a.xy", bytes(range(256)) * 20, Err(r"binary data, not a text file"))
text_case("binary-garbage-unknown-ext", "a.bin", bytes(range(256)) * 20, Err(r"binary file in no known format \(known: "))
text_case("nul-bytes", "a.xy", GOOD.encode()[:3000] + b"\x00\x00\x00" + GOOD.encode()[3000:], Err(r"binary data, not a text file"))
text_case("gzip-named-xy", "a.xy", gzip.compress(GOOD.encode()), Err(r"binary data, not a text file"))
text_case("png-header", "a.png", b"\x89PNG\r\n\x1a\n" + bytes(2000), Err(r"binary file in no known format"))
text_case("html-page", "a.xy", "<html><body><p>Not found</p></body></html>\n", Err(r"no lines with two or more columns"))
text_case("json-file", "a.json", '{"two_theta": [1, 2, 3], "intensity": [4, 5, 6]}', Err(r"no reader recognises"))
text_case("fortran-d-exponent", "a.xy", rows("{x:.2f} {y:.4e}").replace("e+", "D+"), Err(r"no lines with two or more columns|no reader"))

# -------------------------------------------------------------- text: linear time on hostile lines
text_case("30000-spaces-between-columns", "a.xy", rows("{x:.2f}" + " " * 30000 + "{y:.1f}", x=X[:200], y=ripple(200)),
          Ok(lambda p: len(p) == 200, seconds=15.0))
text_case("30000-spaces-before-comma", "a.csv", rows("{x:.2f}" + " " * 30000 + ",{y:.1f}", x=X[:200], y=ripple(200)),
          Ok(lambda p: len(p) == 200, seconds=15.0))
text_case("30000-tabs-semicolon", "a.csv", rows("{x:.2f}" + "\t" * 30000 + ";{y:.1f}", x=X[:200], y=ripple(200)),
          Ok(lambda p: len(p) == 200, seconds=15.0))
text_case("40000-digit-token-xy", "a.xy", GOOD + "\n" + "9" * 40000 + " 5\n", Err(r"lie outside 0-180|not two columns|NaN or infinite"))
text_case("one-megabyte-line", "a.xy", "x" * 1_000_000 + "\n" + GOOD, Ok(same_as_synthetic, seconds=10.0))
text_case("long-header-wavelength-line", "a.xy", "# wavelength " + "(" * 50000 + "\n" + GOOD, Ok(same_as_synthetic, seconds=15.0))


# ------------------------------------------------------------------------- names and file kinds
@case("missing-file", Err(r"no such file$"))
def _missing(tmp_path):
    return tmp_path / "nope.xy"


@case("directory", Err(r"is a directory, not a pattern file"))
def _directory(tmp_path):
    return tmp_path


@case("empty-file-name", Err(r"^'' \(empty file name\): no file name given$"))
def _empty_name(tmp_path):
    return ""


@case("newline-in-name-read", Ok(same_as_synthetic))
def _newline_ok(tmp_path):
    path = tmp_path / "two\nlines.xy"
    path.write_text(GOOD)
    return path


@case("newline-in-name-error-one-line", Err(r"two\\nlines\.xy: the file is empty"))
def _newline_error(tmp_path):
    path = tmp_path / "two\nlines.xy"
    path.write_bytes(b"")
    return path


@case("non-utf8-name-read", Ok(same_as_synthetic))
def _bytes_name(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.xy")
    with open(path, "wb") as handle:
        handle.write(GOOD.encode())
    return os.fsdecode(path)


@case("non-utf8-name-error-escaped", Err(r"caf\\xe9\.xy: the file is empty"))
def _bytes_name_error(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.xy")
    open(path, "wb").close()
    return os.fsdecode(path)


@case("fifo", Err(r"is a pipe, not a regular file"))
def _fifo(tmp_path):
    path = tmp_path / "pipe.xy"
    os.mkfifo(path)
    return path


@case("dev-null", Err(r"is a device or socket, not a regular file"))
def _dev_null(tmp_path):
    return "/dev/null"


@case("symlink-to-file", Ok(same_as_synthetic))
def _symlink(tmp_path):
    (tmp_path / "real.xy").write_text(GOOD)
    (tmp_path / "link.xy").symlink_to(tmp_path / "real.xy")
    return tmp_path / "link.xy"


@case("broken-symlink", Err(r"no such file$"))
def _broken_symlink(tmp_path):
    (tmp_path / "link.xy").symlink_to(tmp_path / "gone.xy")
    return tmp_path / "link.xy"


@case("sparse-over-size-cap", Err(r"the file is 2 GiB, larger than the 256 MiB a pattern reader accepts", ), )
def _sparse(tmp_path):
    path = tmp_path / "huge.xy"
    with open(path, "wb") as handle:
        handle.write(GOOD.encode())
        handle.truncate(2 * 2**30)
    return path


@case("sparse-over-size-cap-no-extension", Err(r"larger than the 256 MiB a pattern reader accepts"))
def _sparse_plain(tmp_path):
    path = tmp_path / "huge"
    with open(path, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    return path


@case("sparse-structure-cif-over-cap", Err(r"larger than the 256 MiB"))
def _sparse_cif(tmp_path):
    path = tmp_path / "huge.cif"
    with open(path, "wb") as handle:
        handle.write(b"data_x\n_cell_length_a 5\n")
        handle.truncate(MAX_FILE_BYTES + 10)
    return path


# ---------------------------------------------------------------------------------------- pdCIF
def pdcif(body_rows=None, wavelength="_diffrn_radiation_wavelength 1.5406", tags=("_pd_meas_2theta_scan", "_pd_meas_counts_total"), extra=""):
    body = body_rows if body_rows is not None else rows()
    loop = "loop_\n" + "\n".join(tags) + "\n" + body + "\n"
    return f"data_profile\n{wavelength}\n{extra}{loop}"


text_case("pdcif-good", "a.cif", pdcif(), Ok(wavelength_is(1.5406)))
text_case("pdcif-esd-values", "a.cif", pdcif(rows("{x:.2f} {y:.1f}(12)")),
          Ok(lambda p: (same_as_synthetic(p), np.testing.assert_allclose(p.esd, 1.2))))
text_case("pdcif-proc-wavelength", "a.cif", pdcif(wavelength="_pd_proc_wavelength 0.7093"), Ok(wavelength_is(0.7093)))
text_case("pdcif-no-wavelength", "a.cif", pdcif(wavelength=""), Ok(wavelength_is(1.5406, "default")))
text_case("pdcif-range-min-inc", "a.cif",
          "data_p\n_diffrn_radiation_wavelength 1.5406\n_pd_meas_2theta_range_min 10.0\n_pd_meas_2theta_range_max 79.98\n"
          "_pd_meas_2theta_range_inc 0.02\nloop_\n_pd_meas_counts_total\n" + "\n".join(f"{v:.1f}" for v in Y) + "\n",
          Ok(same_as_synthetic))
text_case("pdcif-unknown-rows-dropped", "a.cif", pdcif(GOOD + "\n? ?\n. ."), Ok(same_as_synthetic))
text_case("pdcif-40000-digit-token", "a.cif", pdcif(GOOD + "\n" + "8" * 40000 + " 12"),
          Ok(lambda p: (same_as_synthetic(p), p.metadata["dropped_points"] == 1), seconds=15.0))
text_case("pdcif-40000-digit-esd", "a.cif", pdcif(GOOD + "\n80.00 12(" + "8" * 40000 + ")"),
          Ok(lambda p: same_as_synthetic(p), seconds=15.0))
text_case("pdcif-40000-char-quoted", "a.cif", pdcif(extra="_pd_meas_info_author_name '" + "a" * 40000 + "'\n"),
          Ok(same_as_synthetic, seconds=15.0))
text_case("pdcif-unclosed-quote", "a.cif", pdcif(extra="_publ_section_title 'never closed\n"), Ok(same_as_synthetic))
text_case("pdcif-text-field", "a.cif", pdcif(extra="_publ_section_comment\n;\nline one\nline two\n;\n"), Ok(same_as_synthetic))
text_case("pdcif-calc-only", "a.cif", pdcif(tags=("_pd_proc_2theta_corrected", "_pd_calc_intensity_total")),
          Err(r"holds only a calculated pattern"))
text_case("pdcif-tof", "a.cif", pdcif(tags=("_pd_meas_time_of_flight", "_pd_meas_counts_total")),
          Err(r"not on a 2theta axis \(time-of-flight, d or Q\)"))
text_case("pdcif-no-angles", "a.cif", "data_p\nloop_\n_pd_meas_counts_total\n" + "\n".join(f"{v:.1f}" for v in Y) + "\n",
          Err(r"have no 2theta column and no _pd_\*_2theta_range_min/inc"))
text_case("pdcif-structure-only-as-pattern-reader", "a.pdcif", "data_s\n_cell_length_a 5.0\n_cell_length_b 5.0\n",
          Err(r"no powder profile .*a structure-only CIF\?"))
text_case("pdcif-no-data-block", "a.pdcif", "# nothing here\n_cell_length_a 5\n", Err(r"no CIF data block|no reader|no lines"))
text_case("pdcif-ragged-loop", "a.cif", pdcif(GOOD + "\n80.02"), Ok(same_as_synthetic))
text_case("pdcif-two-blocks-wavelength-elsewhere", "a.cif",
          "data_global\n_diffrn_radiation_wavelength 0.7093\n" + pdcif(wavelength="").replace("data_profile", "data_profile"),
          Ok(wavelength_is(0.7093)))
text_case("pdcif-utf16", "a.cif", pdcif(), Ok(wavelength_is(1.5406)), encoding="utf-16")


# ------------------------------------------------------------------------------ Rigaku .ras/.rasx
def ras(blocks=1, end=True, axis="TwoThetaTheta", wavelength="1.540593", data=None):
    head = (f"*RAS_DATA_START\n*RAS_HEADER_START\n*MEAS_SCAN_AXIS_X \"{axis}\"\n"
            f"*HW_XG_WAVE_LENGTH_ALPHA1 \"{wavelength}\"\n*HW_XG_WAVE_LENGTH_UNIT \"A\"\n*RAS_HEADER_END\n")
    body = data if data is not None else rows("{x:.4f} {y:.1f} 1.0000")
    text = head + "".join("*RAS_INT_START\n" + body + ("\n*RAS_INT_END\n" if end or b < blocks - 1 else "\n") for b in range(blocks))
    return text + ("*RAS_DATA_END\n" if end else "")


text_case("ras-good", "a.ras", ras(), Ok(wavelength_is(1.540593)))
text_case("ras-two-scans-summed", "a.ras", ras(blocks=2), Ok(lambda p: np.testing.assert_allclose(p.intensity, 2 * Y)))
text_case("ras-no-int-end", "a.ras", ras(end=False), Ok(wavelength_is(1.540593), warns=r"no \*RAS_INT_END after the last data block"))
text_case("ras-no-int-end-cut-row", "a.ras", ras(end=False, data=rows("{x:.4f} {y:.1f} 1.0000") + "\n80.0000 12"),
          Ok(wavelength_is(1.540593), warns=r"no \*RAS_INT_END"))
text_case("ras-empty-unterminated", "a.ras", ras(end=False, data=""), Err(r"the last \*RAS_INT_START block is empty and has no \*RAS_INT_END"))
text_case("ras-no-int-start", "a.ras", "*RAS_DATA_START\n*RAS_HEADER_START\n*RAS_HEADER_END\n", Err(r"no \*RAS_INT_START data block"))
text_case("ras-omega-axis", "a.ras", ras(axis="Omega"), Err(r"the scan axis is 'Omega' .*not a powder 2theta scan"))
text_case("ras-words-in-data", "a.ras", ras(data=rows("{x:.4f} {y:.1f} 1.0000") + "\nnot numbers here"), Err(r"profile line is not numbers"))
text_case("ras-shift-jis-comment", "a.ras", ras().replace("*RAS_HEADER_END", "*FILE_COMMENT \"\x82\xa0\"\n*RAS_HEADER_END").encode("latin-1"),
          Ok(wavelength_is(1.540593)))
text_case("ras-attenuation", "a.ras", ras(data=rows("{x:.4f} {y:.1f} 10.0")), Ok(lambda p: np.testing.assert_allclose(p.intensity, 10 * Y)))


def zip_file(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


RASX_CONDITIONS = ("<?xml version=\"1.0\"?><MeasurementConditions><GeneralInformation><SystemName>SmartLab</SystemName>"
                   "</GeneralInformation><ScanInformation><AxisName>{axis}</AxisName></ScanInformation><HWConfigurations>"
                   "<XrayGenerator><TargetName>Cu</TargetName><WaveType>Ka</WaveType>"
                   "<WavelengthKalpha1>1.540593</WavelengthKalpha1><WavelengthKalpha2>1.544414</WavelengthKalpha2>"
                   "</XrayGenerator></HWConfigurations></MeasurementConditions>")
PROFILE = rows("{x:.4f}\t{y:.1f}\t1")
BOMB = b"0" * (MAX_MEMBER_BYTES + 1024)


def rasx_case(id, members, expect):
    CASES.append(Case(id, lambda tmp_path: zip_file(tmp_path / "a.rasx", members), expect))


rasx_case("rasx-good", {"Data0/Profile0.txt": PROFILE, "Data0/MesurementConditions0.xml": RASX_CONDITIONS.format(axis="TwoThetaTheta")},
          Ok(wavelength_is(1.540593)))
rasx_case("rasx-zip-bomb-profile", {"Data0/Profile0.txt": BOMB}, Err(r"archive member 'Data0/Profile0\.txt' unpacks to 64 MiB, more than the 64 MiB accepted \(a zip bomb\?\)"))
rasx_case("rasx-zip-bomb-conditions", {"Data0/Profile0.txt": PROFILE, "Data0/MesurementConditions0.xml": BOMB}, Err(r"unpacks to .* \(a zip bomb\?\)"))
rasx_case("rasx-no-profile", {"Data0/readme.txt": "hello"}, Err(r"no Data\*/Profile\*\.txt in the archive"))
rasx_case("rasx-omega", {"Data0/Profile0.txt": PROFILE, "Data0/MesurementConditions0.xml": RASX_CONDITIONS.format(axis="Omega")},
          Err(r"the scan axis is 'Omega'"))
rasx_case("rasx-broken-xml", {"Data0/Profile0.txt": PROFILE, "Data0/MesurementConditions0.xml": "<a><b></a>"}, Err(r"broken XML"))
rasx_case("rasx-billion-laughs", {"Data0/Profile0.txt": PROFILE, "Data0/MesurementConditions0.xml":
          '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
          '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>'}, Err(r"entities or a DTD .*refused"))
text_case("rasx-not-a-zip", "a.rasx", GOOD, Err(r"not a zip archive"))


BRML_RAW = ('<?xml version="1.0" encoding="utf-8"?><RawData xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            '<DataRoutes><DataRoute><ScanInformation ScanName="Coupled"><ScanAxes><ScanAxisInfo AxisId="TwoTheta"/>'
            '<ScanAxisInfo AxisId="Theta"/></ScanAxes></ScanInformation>{datums}</DataRoute></DataRoutes>'
            '<FixedInformation><Instrument><PrimaryTracks><TrackInfoData><MountedOptics><InfoData><Tube>'
            '<WaveLengthAlpha1 Value="1.5406"/><WaveLengthAlpha2 Value="1.54439"/></Tube></InfoData></MountedOptics>'
            '</TrackInfoData></PrimaryTracks></Instrument></FixedInformation></RawData>')


def brml_datums(x=X, y=Y):
    return "".join(f"<Datum>1,1,{a:.4f},{a / 2:.4f},{b:.1f}</Datum>" for a, b in zip(x, y))


def brml_case(id, members, expect):
    CASES.append(Case(id, lambda tmp_path: zip_file(tmp_path / "a.brml", members), expect))


brml_case("brml-good", {"Experiment0/RawData0.xml": BRML_RAW.format(datums=brml_datums())}, Ok(wavelength_is(1.5406)))
brml_case("brml-zip-bomb", {"Experiment0/RawData0.xml": BOMB}, Err(r"archive member 'Experiment0/RawData0\.xml' unpacks to .* \(a zip bomb\?\)"))
brml_case("brml-no-rawdata", {"Experiment0/other.xml": "<a/>"}, Err(r"no Experiment\*/RawData\*\.xml in the archive"))
brml_case("brml-broken-xml", {"Experiment0/RawData0.xml": BRML_RAW.format(datums=brml_datums())[:5000]}, Err(r"broken XML"))
brml_case("brml-entity", {"Experiment0/RawData0.xml": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><r>&e;</r>'},
          Err(r"entities or a DTD .*refused"))
brml_case("brml-no-datum", {"Experiment0/RawData0.xml": BRML_RAW.format(datums="")}, Err(r"no Datum rows in the raw data"))
brml_case("brml-words-in-datum", {"Experiment0/RawData0.xml": BRML_RAW.format(datums=brml_datums() + "<Datum>a,b,c,d,e</Datum>")},
          Err(r"a Datum row is not numbers: 'a,b,c,d,e'"))
brml_case("brml-fixed-2theta", {"Experiment0/RawData0.xml": BRML_RAW.format(datums=brml_datums(x=X * 0 + 30))},
          Err(r"2theta is fixed at 30 deg"))
text_case("brml-not-a-zip", "a.brml", GOOD, Err(r"not a zip archive"))


# ------------------------------------------------------------------------------------ XRDML
def xrdml(positions=None, intensities=None, scans=1, doctype=""):
    positions = positions or "<startPosition>10.00</startPosition><endPosition>79.98</endPosition>"
    values = " ".join(f"{v:.1f}" for v in (Y if intensities is None else intensities))
    scan = (f'<scan scanAxis="Gonio"><dataPoints><positions axis="2Theta" unit="deg">{positions}</positions>'
            f'<intensities unit="counts">{values}</intensities></dataPoints></scan>')
    return (f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/2.0">'
            '<xrdMeasurement measurementType="Scan"><usedWavelength intended="K-Alpha 1"><kAlpha1 unit="Angstrom">1.5405980'
            '</kAlpha1><kAlpha2 unit="Angstrom">1.5444260</kAlpha2><ratioKAlpha2KAlpha1>0.5</ratioKAlpha2KAlpha1></usedWavelength>'
            + scan * scans + "</xrdMeasurement></xrdMeasurements>")


text_case("xrdml-good", "a.xrdml", xrdml(), Ok(lambda p: (np.testing.assert_allclose(p.intensity, Y), p.wavelength == pytest.approx(1.540598))))
text_case("xrdml-two-scans-summed", "a.xrdml", xrdml(scans=2), Ok(lambda p: np.testing.assert_allclose(p.intensity, 2 * Y)))
text_case("xrdml-rocking-curve", "a.xrdml", xrdml(positions="<commonPosition>30.0</commonPosition>"), Err(r"2theta is fixed at 30 deg"))
text_case("xrdml-truncated", "a.xrdml", xrdml()[:3000], Err(r"could not read as xrdml: broken XML"))
text_case("xrdml-billion-laughs", "a.xrdml", xrdml(doctype='<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'),
          Err(r"entities or a DTD .*refused"))
text_case("xrdml-external-entity", "a.xrdml", xrdml(doctype='<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'),
          Err(r"entities or a DTD .*refused"))
text_case("xrdml-count-mismatch", "a.xrdml", xrdml(positions=f"<listPositions>{' '.join(f'{v:.2f}' for v in X[:-5])}</listPositions>"),
          Err(r"2theta positions but \d+ intensities"))
text_case("xrdml-wrong-root", "a.xrdml", "<?xml version=\"1.0\"?><other/>", Err(r"not an XRDML file \(root element 'other'\)"))
text_case("xrdml-nan-count", "a.xrdml", xrdml().replace(f"{Y[3]:.1f} ", "NaN ", 1), Err(r"NaN or infinite"))


# ------------------------------------------------------------------------------- chi, GSAS, RAW
def chi(x_axis="2-Theta Angle (Degrees)", body=None):
    return f"pattern title\n{x_axis}\nIntensity\n{N}\n" + (body if body is not None else rows())


text_case("chi-good", "a.chi", chi(), Ok(same_as_synthetic))
text_case("chi-q-axis", "a.chi", chi("Q (1/nm)"), Err(r"the x axis is 'Q \(1/nm\)', not 2theta"))
text_case("chi-too-short", "a.chi", "t\nx\ny\n", Err(r"too short for a \.chi file"))
text_case("chi-bad-count", "a.chi", chi().replace(f"\n{N}\n", "\nmany\n"), Err(r"line 4 should be the number of points"))
text_case("chi-words", "a.chi", chi(body=GOOD + "\nfoo bar"), Err(r"line \d+ is not numbers: 'foo bar'"))


def gsas_std(binning="CONST", kind="STD"):
    values = "".join(f"{int(v):8d}" for v in Y)
    lines = [values[i:i + 80] for i in range(0, len(values), 80)]
    return f"synthetic\nBANK 1 {N} {len(lines)} {binning} 1000.0 2.0 0 0 {kind}\n" + "\n".join(lines) + "\n"


text_case("gsas-const-std", "a.gsa", gsas_std(), Ok(lambda p: np.testing.assert_allclose(p.intensity, np.floor(Y))))
text_case("gsas-tof", "a.gsa", gsas_std("RALF"), Err(r"time-of-flight data"))
text_case("gsas-no-bank", "a.gsa", "title only\n", Err(r"no BANK line"))
text_case("gsas-short-bank", "a.gsa", "t\nBANK 1\n", Err(r"BANK line too short"))

text_case("bruker-raw-v1", "a.raw", b"RAW " + bytes(2000), Err(r"Bruker RAW version 1/2 is not supported"))
text_case("bruker-raw-v4-truncated", "a.raw", b"RAW4.00" + bytes(40), Err(r"could not read as bruker-raw"))
text_case("bruker-raw-v3-truncated", "a.raw", b"RAW1.01" + bytes(700), Err(r"could not read as bruker-raw"))
text_case("bruker-raw-v3-steps-beyond", "a.raw", b"RAW1.01" + bytes(609) + struct.pack("<5d", 1.54, 1.5406, 1.544, 1.39, 0.5) + bytes(56)
          + struct.pack("<2i", 304, 10**9) + bytes(400), Err(r"steps do not fit in the file"))


# ---------------------------------------------------------------------------- structures (CIF)
def structure_cif(a=5.64, element="Na", extra_sites=""):
    return (f"data_s\n_cell_length_a {a}\n_cell_length_b {a}\n_cell_length_c {a}\n_cell_angle_alpha 90\n"
            f"_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n"
            f"_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n{element}1 {element} 0 0 0\n"
            f"Cl1 Cl 0.5 0.5 0.5\n{extra_sites}")


def structure_case(id, content, expect, seconds=None):
    def make(tmp_path):
        path = tmp_path / "s.cif"
        path.write_text(content)
        return path

    CASES.append(Case(id, make, expect, options={"api": True}))


structure_case("structure-good", structure_cif(), Ok(lambda p: p.metadata["simulated"] is True))
structure_case("structure-a-300", structure_cif(a=300), Err(r"the cell \(a=300 b=300 c=300 A, .*\) has about .* reflections .* more than the 4,000,000"))
structure_case("structure-a-3000", structure_cif(a=3000), Err(r"the cell \(a=3000 b=3000 c=3000 A, .*more than the 4,000,000"))
structure_case("structure-a-3000-many-atoms", structure_cif(a=3000, extra_sites="".join(f"O{i} O 0.{i} 0.1 0.2\n" for i in range(1, 9))),
               Err(r"the cell \(a=3000"))
structure_case("structure-unknown-element", structure_cif(element="Qq"), Err(r"unknown element 'Qq' \(site 1\): not in the periodic table"))
structure_case("structure-unknown-element-X", structure_cif(element="X"), Err(r"unknown element 'X'"))
structure_case("structure-not-a-structure", "data_s\n_journal_name 'nothing'\n", Err(r"not a readable crystal structure|has no sites"))
structure_case("structure-zero-cell", structure_cif(a=0), Err(r"not a readable crystal structure|singular|volume"))


# ---------------------------------------------------------------------------------- API arrays
def api_case(id, make_obj, expect, wavelength=None):
    CASES.append(Case(id, lambda tmp_path: Api(make_obj()), expect, wavelength))


api_case("api-tuple-ok", lambda: (X, Y), Ok(same_as_synthetic))
api_case("api-n2-ok", lambda: np.column_stack([X, Y]), Ok(same_as_synthetic))
api_case("api-2n-ok", lambda: np.vstack([X, Y]), Ok(same_as_synthetic))
api_case("api-n3-esd-ok", lambda: np.column_stack([X, Y, np.sqrt(Y)]), Ok(lambda p: np.testing.assert_allclose(p.esd, np.sqrt(Y))))
api_case("api-lists-ok", lambda: (X.tolist(), Y.tolist()), Ok(same_as_synthetic))
api_case("api-float32-ok", lambda: (X.astype(np.float32), Y.astype(np.float32)), Ok(lambda p: len(p) == N))
api_case("api-big-endian-ok", lambda: (X.astype(">f8"), Y.astype(">f8")), Ok(same_as_synthetic))
api_case("api-int-intensity-ok", lambda: (X, np.round(Y).astype(int)), Ok(lambda p: np.testing.assert_allclose(p.intensity, np.round(Y))))
api_case("api-1e308-ok", lambda: (X, Y / Y.max() * 1e308), Ok(lambda p: p.intensity.max() == pytest.approx(1e308)))
api_case("api-n4", lambda: np.column_stack([X, Y, Y, Y]), Err(r"expected an \(N, 2\) or \(N, 3\) array .*got shape \(3500, 4\)"))
api_case("api-4n", lambda: np.vstack([X, Y, Y, Y]), Err(r"expected an \(N, 2\) or \(N, 3\) array .*got shape \(4, 3500\)"))
api_case("api-9001x4", lambda: np.ones((9001, 4)), Err(r"got shape \(9001, 4\)"))
api_case("api-3d", lambda: np.ones((2, N, 2)), Err(r"array of shape \(2, 3500, 2\)"))
api_case("api-complex-intensity", lambda: (X, Y + 1j), Err(r"intensities are complex numbers"))
api_case("api-complex-angles", lambda: (X + 0j, Y), Err(r"angles are complex numbers"))
api_case("api-complex-n2", lambda: np.column_stack([X, Y]).astype(complex), Err(r"complex numbers"))
api_case("api-masked-intensity", lambda: (X, np.ma.masked_less(Y, 150)), Err(r"intensities are a masked array"))
api_case("api-masked-n2", lambda: np.ma.masked_array(np.column_stack([X, Y])), Err(r"a masked array"))
api_case("api-strings", lambda: (X.astype(str), Y.astype(str)), Err(r"angles are not numbers \(dtype <U"))
api_case("api-text", lambda: ("10 20 30", "1 2 3"), Err(r"angles are text, not numbers"))
api_case("api-none-values", lambda: (X, [None] * N), Err(r"intensities hold None \(missing values\)"))
api_case("api-ragged", lambda: (X, [[1, 2], [3]] * 10), Err(r"not a flat sequence of numbers|not numbers"))
api_case("api-datetime", lambda: (np.arange(N).astype("datetime64[s]"), Y), Err(r"angles are not numbers \(dtype datetime64"))
api_case("api-length-mismatch", lambda: (X, Y[:-3]), Err(r"3500 angles but 3497 intensities: lengths differ"))
api_case("api-empty", lambda: (np.array([]), np.array([])), Err(r"the pattern is empty"))
api_case("api-five-arrays", lambda: (X, Y, Y, Y, Y), Err(r"expected 2 or 3 arrays .*got 5"))
api_case("api-nan", lambda: (X, np.where(np.arange(N) == 9, np.nan, Y)), Err(r"1 intensities are NaN or infinite \(first at point 10\)"))
api_case("api-2d-intensity", lambda: (X, np.ones((N, 2))), Err(r"intensities must be a 1-D sequence, not shape \(3500, 2\)"))
api_case("api-narrow", lambda: (np.linspace(13.75, 14.40, 100), ripple(100)), Err(r"too narrow to classify"))
api_case("api-unknown-object", lambda: {"two_theta": X}, Err(r"cannot make a pattern from a builtins\.dict", TypeError))
api_case("api-bad-wavelength", lambda: (X, Y), Err(r"wavelength 0 A is outside the plausible X-ray range"), wavelength=0)
api_case("api-unknown-wavelength-name", lambda: (X, Y), Err(r"unknown wavelength 'CuKz'"), wavelength="CuKz")


# ------------------------------------------------------------------------------------- the runner
def run_case(item, tmp_path):
    made = item.make(tmp_path)
    if isinstance(made, Api):
        return None, (lambda: to_pattern(made.obj, wavelength=item.wavelength))
    if item.options.get("api"):
        return made, (lambda: to_pattern(made, wavelength=item.wavelength))
    return made, (lambda: read_pattern(made, wavelength=item.wavelength, readers=BUILTIN_READERS))


@pytest.mark.parametrize("item", CASES, ids=[item.id for item in CASES])
def test_bad_input(item, tmp_path):
    source, call = run_case(item, tmp_path)
    expect = item.expect
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(expect, Err):
            with pytest.raises(Exception) as raised:
                call()
            error = raised.value
            assert type(error) is expect.exception or isinstance(error, expect.exception), (
                f"{type(error).__name__}: {error}"
            )
            message = str(error)
            assert "\n" not in message and "Traceback" not in message
            if source is not None and expect.exception is PatternError:
                assert message.startswith(display_name(str(source)) + ": "), message
            assert re.search(expect.pattern, message), message
            return
        pattern = call()
    elapsed = time.perf_counter() - started
    assert elapsed < expect.seconds, f"took {elapsed:.1f} s"
    if expect.check is not None:
        result = expect.check(pattern)
        if isinstance(result, bool):
            assert result
        if isinstance(result, tuple):
            assert all(part is not False for part in result)
    pattern_warnings = [str(w.message) for w in caught if issubclass(w.category, PatternWarning)]
    if expect.warns:
        assert any(re.search(expect.warns, text) for text in pattern_warnings), pattern_warnings
        if source is not None:
            assert all(text.startswith(display_name(str(source)) + ": ") for text in pattern_warnings)
    else:
        assert not pattern_warnings, pattern_warnings


def test_catalogue_is_large():
    assert len(CASES) >= 150
    assert len({item.id for item in CASES}) == len(CASES)  # every case named once
