"""PANalytical ``.xrdml`` (XML): one powder 2theta scan, wavelength from ``usedWavelength``."""

import re

import numpy as np

from ..errors import PatternError
from ..pattern import Pattern
from .base import Reader, parse_xml, read_bytes, read_head, sum_scans


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def _child(element, name):
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element, name):
    return [child for child in element if _local(child.tag) == name]


def _floats(text):
    return np.array(text.split(), dtype=np.float64) if text and text.strip() else np.array([])


def _float_of(element, name):
    child = None if element is None else _child(element, name)
    try:
        return float(child.text)
    except (AttributeError, TypeError, ValueError):
        return None


def wavelength_from_used(used, metadata):
    """Ka1 (or Kb when the intended line is K-Beta) from ``usedWavelength``; Ka2 and ratio into metadata."""
    if used is None:
        return None
    ka1, ka2 = _float_of(used, "kAlpha1"), _float_of(used, "kAlpha2")
    kb, ratio = _float_of(used, "kBeta"), _float_of(used, "ratioKAlpha2KAlpha1")
    intended = used.get("intended", "")
    metadata.update({"intended_wavelength": intended, "kalpha1": ka1, "kalpha2": ka2, "ka2_ratio": ratio})
    if re.search(r"beta", intended, re.IGNORECASE):
        return kb
    if re.search(r"alpha\s*1", intended, re.IGNORECASE):
        metadata["ka2_ratio"] = 0.0  # monochromated Ka1 only
    return ka1


class XrdmlReader(Reader):
    name = "xrdml"
    extensions = (".xrdml",)
    description = "PANalytical XRDML: 2theta positions (start/end or list), intensities or counts; usedWavelength"

    def guess_can_open(self, path):
        if super().guess_can_open(path):
            return True
        try:
            head = read_head(path, 1024)
        except OSError:
            return False
        return b"<xrdMeasurements" in head

    def read(self, path):
        source = str(path)
        root = parse_xml(read_bytes(path), source, "xrdml")
        if _local(root.tag) != "xrdMeasurements":
            raise PatternError(source, f"not an XRDML file (root element {_local(root.tag)!r})")
        measurements = _children(root, "xrdMeasurement")
        if not measurements:
            raise PatternError(source, "no xrdMeasurement in the file")
        measurement = measurements[0]
        metadata = {"instrument": "PANalytical", "measurement_type": measurement.get("measurementType")}
        wavelength = wavelength_from_used(_child(measurement, "usedWavelength"), metadata)
        scans = _children(measurement, "scan")
        if not scans:
            raise PatternError(source, "no scan in the measurement")
        metadata["scan_axis"] = scans[0].get("scanAxis")
        curves = [self._scan(scan, source) for scan in scans]
        two_theta, intensity = sum_scans(curves, source, metadata, what="an area / reciprocal-space map?")
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        return Pattern(two_theta, intensity, wavelength, source, metadata)

    @staticmethod
    def _scan(scan, source):
        points = _child(scan, "dataPoints")
        if points is None:
            raise PatternError(source, "a scan has no dataPoints")
        intensities = _child(points, "intensities")
        counts = _child(points, "counts")
        if intensities is not None:
            values = _floats(intensities.text)
        elif counts is not None:
            values = _floats(counts.text)
            attenuation = _child(points, "beamAttenuationFactors")
            factors = _floats(attenuation.text) if attenuation is not None else np.array([])
            if len(factors) == len(values):
                values = values * factors
        else:
            raise PatternError(source, "a scan has neither intensities nor counts")
        times = _child(points, "countingTimes")
        if times is not None:
            durations = _floats(times.text)
            if len(durations) == len(values) and (durations > 0).all():
                values = values / durations
        axes = {position.get("axis"): position for position in _children(points, "positions")}
        two_theta_axis = axes.get("2Theta")
        if two_theta_axis is None:
            names = ", ".join(name for name in axes if name)
            raise PatternError(source, f"the scan has no 2Theta axis (axes: {names}): not a powder 2theta scan")
        listed = _child(two_theta_axis, "listPositions")
        start, end = _float_of(two_theta_axis, "startPosition"), _float_of(two_theta_axis, "endPosition")
        common = _float_of(two_theta_axis, "commonPosition")
        if listed is not None:
            angles = _floats(listed.text)
        elif start is not None and end is not None:
            angles = np.linspace(start, end, len(values)) if start != end else np.full(len(values), start)
        elif common is not None:
            angles = np.full(len(values), common)
        else:
            raise PatternError(source, "the 2Theta axis has no positions")
        if len(angles) and np.ptp(angles) == 0:
            raise PatternError(
                source,
                f"2theta is fixed at {angles[0]:g} deg (scan axis {scan.get('scanAxis')!r}: a rocking curve or "
                "omega scan): not a powder 2theta scan",
            )
        if len(angles) != len(values):
            raise PatternError(source, f"{len(angles)} 2theta positions but {len(values)} intensities")
        return angles, values
