"""Ito-style zone search for monoclinic and triclinic trial cells (Ito 1949; Visser 1969).

A zone of the reciprocal lattice is a plane lattice, Q(h, k) = h^2 Qa + k^2 Qb + hk R.

1. *Zones*: Qa and Qb are taken from pairs of the first lines (or a quarter of one, for a
   first line that is a second order), and R from a third line and a small (h, k) with hk != 0
   (|R| <= sqrt(Qa Qb): a reduced plane basis); every such zone is scored by the number of
   lines its points explain. All pairs, lines and index pairs at once, in numpy.
2. *Monoclinic*: a zone is taken as the h0l plane (A = Qa, C = Qb, D = R) and the missing
   B = 1/b^2 perpendicular to it is voted for by the other lines, B = (Q - Q_zone(h, l)) / k^2
   for small h, l and k = 1, 2; the most supported values give trial cells.
3. *Triclinic*: two zones sharing their first axis (Qa, Qb, Rab) and (Qa, Qc, Rac) fix five
   of the six parameters; the last, Rbc, is voted for by the lines the same way.

The trials go to the indexer's quick score and refinement like those of the higher systems.
"""

from __future__ import annotations

import time

import numpy as np

_ZONE_HK = np.array([(h, k) for h in range(0, 5) for k in range(-4, 5) if (h > 0 or k > 0) and not (h == 0 and k < 0)])
_R_INDICES = np.array([(1, 1), (1, -1), (1, 2), (1, -2), (2, 1), (2, -1)])


def _zones(q, tolq, n_basis=7, n_keep=60):
    """Candidate zones (Qa, Qb, R) with the number of lines each indexes, best first."""
    n = len(q)
    nb = min(n_basis, n)
    base = list(q[:nb])
    scale = [1.0] * nb
    for i in range(min(3, nb)):  # a first line may be a second order: try a quarter of it
        base.append(q[i] / 4)
        scale.append(0.25)
    base = np.array(base)
    ia, ib = np.triu_indices(len(base), 1)
    qa, qb = base[ia], base[ib]
    ok = np.abs(qa - qb) > 1e-9
    qa, qb = qa[ok], qb[ok]
    # R from every line and index pair
    h, k = _R_INDICES[:, 0], _R_INDICES[:, 1]
    r = (q[None, :, None] - h * h * qa[:, None, None] - k * k * qb[:, None, None]) / (h * k)
    lim = np.sqrt(qa * qb)[:, None, None]
    r = np.where(np.abs(r) <= lim * 1.0001, r, np.nan)
    zone_a = np.repeat(qa, r.shape[1] * r.shape[2])
    zone_b = np.repeat(qb, r.shape[1] * r.shape[2])
    zone_r = r.reshape(-1)
    keep = np.isfinite(zone_r)
    zone_a, zone_b, zone_r = zone_a[keep], zone_b[keep], zone_r[keep]
    # the rectangular zone of every pair too
    zone_a = np.concatenate([zone_a, qa])
    zone_b = np.concatenate([zone_b, qb])
    zone_r = np.concatenate([zone_r, np.zeros(len(qa))])
    if not len(zone_a):
        return np.zeros((0, 3)), np.zeros(0, dtype=int)
    # dedupe
    key = np.round(np.column_stack([zone_a, zone_b, zone_r]) / (np.median(tolq) * 0.5)).astype(np.int64)
    _, first = np.unique(key, axis=0, return_index=True)
    zone_a, zone_b, zone_r = zone_a[first], zone_b[first], zone_r[first]
    hk = _ZONE_HK
    qz = (zone_a[:, None] * hk[:, 0] ** 2 + zone_b[:, None] * hk[:, 1] ** 2 + zone_r[:, None] * hk[:, 0] * hk[:, 1])
    counts = np.zeros(len(zone_a), dtype=int)
    for j in range(n):
        counts += (np.abs(qz - q[j]) < tolq[j]).any(axis=1)
    order = np.argsort(-counts, kind="stable")[:n_keep]
    return np.column_stack([zone_a, zone_b, zone_r])[order], counts[order]


def _vote(values, rel_width=0.002, top=4, min_votes=2):
    """The most supported values (relative bins), with their counts."""
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return np.zeros(0)
    logs = np.sort(np.log(values))
    right = np.searchsorted(logs, logs + rel_width, side="right")
    counts = right - np.arange(len(logs))
    out = []
    used = np.zeros(len(logs), dtype=bool)
    for i in np.argsort(-counts, kind="stable"):
        if len(out) >= top or counts[i] < min_votes:
            break
        if used[i]:
            continue
        out.append(float(np.exp(np.median(logs[i:right[i]]))))
        used[max(0, i - counts[i]):right[i]] = True
    return np.array(out)


def _vote_signed(values, scale, width, top=4, min_votes=2):
    values = np.sort(values[np.isfinite(values)])
    if not len(values):
        return np.zeros(0)
    right = np.searchsorted(values, values + width * scale, side="right")
    counts = right - np.arange(len(values))
    out, used = [], np.zeros(len(values), dtype=bool)
    for i in np.argsort(-counts, kind="stable"):
        if len(out) >= top or counts[i] < min_votes:
            break
        if used[i]:
            continue
        out.append(float(np.median(values[i:right[i]])))
        used[i:right[i]] = True
    return np.array(out)


def trials(family, lines, zero, deadline=None, n_zones=40):
    """Trial parameter rows: monoclinic (A, B, C, D) with Q = A h^2 + B k^2 + C l^2 + D hl;
    triclinic (A, B, C, D, E, F) with Q = A h^2 + B k^2 + C l^2 + D hk + E hl + F kl."""
    q = lines.q(zero)
    tolq = lines.tol * lines.dq(zero) * 1.5
    n_out = 4 if family == "monoclinic" else 6
    if len(q) < n_out + 2:
        return np.zeros((0, n_out))
    zones, counts = _zones(q, tolq, n_keep=n_zones)
    zones = zones[counts >= 4]
    if not len(zones):
        return np.zeros((0, n_out))
    hl = np.array([(h, l) for h in range(-3, 4) for l in range(0, 4) if not (l == 0 and h < 0)])
    rows = []
    if family == "monoclinic":
        for qa, qc, r in zones:
            if deadline is not None and time.perf_counter() > deadline:
                break
            qz = qa * hl[:, 0] ** 2 + qc * hl[:, 1] ** 2 + r * hl[:, 0] * hl[:, 1]
            votes = []
            for k in (1, 2):
                votes.append(((q[:, None] - qz[None, :]) / (k * k)).ravel())
            for b in _vote(np.concatenate(votes)):
                rows.append((qa, b, qc, r))
        return np.array(rows).reshape(-1, 4)
    # triclinic: pairs of zones that share their first axis
    hkl = np.array([(h, k, l) for h in range(-2, 3) for k in range(1, 3) for l in (-2, -1, 1, 2)])
    for i in range(len(zones)):
        for j in range(i + 1, len(zones)):
            if deadline is not None and time.perf_counter() > deadline:
                return np.array(rows).reshape(-1, 6)
            qa1, qb, rab = zones[i]
            qa2, qc, rac = zones[j]
            if abs(qa1 - qa2) > 2 * np.median(tolq) or abs(qb - qc) < 1e-9:
                continue
            qa = 0.5 * (qa1 + qa2)
            h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]
            rest = h * h * qa + k * k * qb + l * l * qc + h * k * rab + h * l * rac
            rbc = ((q[:, None] - rest[None, :]) / (k * l)[None, :]).ravel()
            lim = np.sqrt(qb * qc)
            rbc = rbc[np.abs(rbc) <= lim]
            for f in _vote_signed(rbc, lim, 0.004, top=3):
                rows.append((qa, qb, qc, rab, rac, f))
    return np.array(rows).reshape(-1, 6)
