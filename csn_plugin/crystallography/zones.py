"""Ito-style zone search for monoclinic and triclinic trial cells (Ito 1949; Visser 1969), and
the completion of partial cells for the higher systems.

A zone of the reciprocal lattice is a plane lattice, Q(h, k) = h^2 Qa + k^2 Qb + hk R.

1. *Zones*: Qa and Qb are taken from pairs of the first lines (or a quarter of one, for a
   first line that is a second order), and R from a third line and a small (h, k) with hk != 0
   (|R| <= sqrt(Qa Qb): a reduced plane basis); every such zone is scored by the number of
   lines its points explain. All pairs, lines and index pairs at once, in numpy. The best are
   refined on the lines they explain, Gauss-reduced, and kept once per plane.
2. *Monoclinic*: a zone is taken as the h0l plane (A = Qa, C = Qb, D = R) and the missing
   B = 1/b^2 perpendicular to it comes from each of the first lines the zone does not explain,
   B = (Q - Q_zone(h, l)) / k^2 for small h, l and k = 1, 2 (all of them: a vote for the most
   supported value was outvoted by chance coincidences of the many index choices).
3. *Triclinic*: two zones sharing a row (Visser 1969): each zone rebased on each of its short
   rows, (Qa, Qb, Rab) and (Qa, Qc, Rac) with the same Qa fix five of the six parameters; the
   last, Rbc, is voted for by the lines (the most supported values). And one zone completed
   (Ito): c* from a line the zone leaves unexplained, (2a*.c*, 2b*.c*) from two more.

4. *Completion* (tetragonal, hexagonal, orthorhombic): when the first lines all belong to one
   zone (a short axis: its lines start late), no subset of the first lines fixes the cell. The
   zone is found first (tetragonal / hexagonal: A = Q / (h^2+k^2) or Q / (h^2+hk+k^2), or
   C = Q / l^2, from one of the first lines, kept when it explains at least 3 of the first 12;
   orthorhombic: the rectangular zones of step 1, and their axes halved, since the first orders
   of an axis are often absent), and the missing parameter is solved for from each line the zone
   does not explain and each small index.

The trials go to the indexer's quick score and refinement like those of the higher systems.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

_ZONE_HK = np.array([(h, k) for h in range(0, 5) for k in range(-4, 5) if (h > 0 or k > 0) and not (h == 0 and k < 0)])
_R_INDICES = np.array([(1, 1), (1, -1), (1, 2), (1, -2), (2, 1), (2, -1)])


def _zones(q, tolq, n_basis=7, n_keep=60, n_refine=300):
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
    zones = np.column_stack([zone_a, zone_b, zone_r])
    counts = _zone_counts(zones, q, tolq)
    # the best refined on the lines they explain and written in their reduced basis, then
    # distinct planes only: one plane comes from many line pairs (and as +-R), and copies
    # would fill the list that the monoclinic and triclinic steps pair up
    order = np.argsort(-counts, kind="stable")[:n_refine]
    zones = _reduced(_refined(zones[order], q, tolq))
    counts = _zone_counts(zones, q, tolq)
    order = np.argsort(-counts, kind="stable")
    zones, counts = zones[order], counts[order]
    close = (np.abs(zones[:, None, :] - zones[None, :, :]) <= np.median(tolq)).all(axis=2)
    kept, covered = [], np.zeros(len(zones), dtype=bool)
    for i in range(len(zones)):  # greedily, best first: a zone close to a kept one is a copy
        if len(kept) >= n_keep:
            break
        if not covered[i]:
            kept.append(i)
            covered |= close[i]
    return zones[kept], counts[kept]


def _zone_points(zones):
    hk = _ZONE_HK
    return zones[:, :1] * hk[:, 0] ** 2 + zones[:, 1:2] * hk[:, 1] ** 2 + zones[:, 2:] * hk[:, 0] * hk[:, 1]


def _zone_counts(zones, q, tolq):
    """The number of lines each zone's points explain."""
    qz = _zone_points(zones)
    counts = np.zeros(len(zones), dtype=int)
    for j in range(len(q)):
        counts += (np.abs(qz - q[j]) < tolq[j]).any(axis=1)
    return counts


def _refined(zones, q, tolq):
    """Least squares (Qa, Qb, R) of each zone on the lines it explains (kept as it was when
    fewer than four lines or a singular fit)."""
    if not len(zones):
        return zones
    qz = _zone_points(zones)  # (Z, H)
    d = np.abs(qz[:, :, None] - q[None, None, :])  # (Z, H, N)
    nearest = np.argmin(d, axis=1)  # (Z, N)
    hit = np.take_along_axis(d, nearest[:, None, :], axis=1)[:, 0, :] < tolq[None, :]
    hk = _ZONE_HK[nearest].astype(float)  # (Z, N, 2)
    x = np.stack([hk[..., 0] ** 2, hk[..., 1] ** 2, hk[..., 0] * hk[..., 1]], -1) * hit[..., None]
    w = 1 / tolq
    a = np.einsum("znj,znk,n->zjk", x, x, w * w)
    b = np.einsum("znj,n,n->zj", x, q, w * w)
    out = zones.copy()
    ok = (hit.sum(axis=1) >= 4) & (np.abs(np.linalg.det(a)) > 1e-30)
    if ok.any():
        out[ok] = np.linalg.solve(a[ok], b[ok][..., None])[..., 0]
    bad = (out[:, 0] <= 0) | (out[:, 1] <= 0) | (out[:, 2] ** 2 >= 4 * out[:, 0] * out[:, 1])
    out[bad] = zones[bad]
    return out


def _reduced(zones):
    """Gauss-reduced bases of plane lattices (Qa <= Qb, |R| <= Qa, R >= 0): the same plane
    from any two of its rows gives one basis."""
    qa, qb, r = zones[:, 0].copy(), zones[:, 1].copy(), zones[:, 2].copy()
    for _ in range(12):
        swap = qb < qa
        qa, qb = np.where(swap, qb, qa), np.where(swap, qa, qb)
        n = np.round(r / (2 * qa))
        if not (n != 0).any() and not swap.any():
            break
        qb = qb - n * r + n * n * qa
        r = r - 2 * n * qa
    return np.column_stack([qa, qb, np.abs(r)])


def _vote_signed(values, scale, width, top=3, min_votes=2):
    """The most supported values of each row (values (P, M), scale (P,), values beyond +-scale
    left out): greedily, the window [v, v + width x scale] holding most values, its median kept
    and its values used up, at most ``top`` per row and each with ``min_votes`` values. Returns
    (row, value) pairs in row order, each row's picks in vote order."""
    n_rows, m = values.shape
    valid = np.abs(values) <= scale[:, None]
    v = np.sort(np.where(valid, values, np.inf), axis=1)
    n_valid = valid.sum(axis=1)
    # window ends: values[j] <= values[i] + width * scale, found row by row with one flat search
    span = 4 * scale + 1.0
    offset = (np.cumsum(span) - span)[:, None]
    finite = np.isfinite(v)
    flat = np.where(finite, v, scale[:, None] * 2 + 0.5) + offset  # past every window of its row
    right = np.searchsorted(flat.ravel(), (np.where(finite, v, 0.0) + width * scale[:, None] + offset).ravel(),
                            side="right").reshape(n_rows, m) - np.arange(n_rows)[:, None] * m
    right = np.minimum(right, n_valid[:, None])
    counts = np.where(finite, right - np.arange(m)[None, :], 0)
    used = np.zeros((n_rows, m), dtype=bool)
    picks = []
    cols = np.arange(m)[None, :]
    for _ in range(top):
        c = np.where(used, -1, counts)
        i = np.argmax(c, axis=1)
        n = c[np.arange(n_rows), i]
        ok = n >= min_votes
        lo = v[np.arange(n_rows), np.clip(i + (n - 1) // 2, 0, m - 1)]
        hi = v[np.arange(n_rows), np.clip(i + n // 2, 0, m - 1)]
        picks.append(np.where(ok, 0.5 * (lo + hi), np.nan))
        end = right[np.arange(n_rows), i]
        used |= ok[:, None] & (cols >= i[:, None]) & (cols < end[:, None])
        counts = np.where(ok[:, None], counts, -1)  # a row that stopped picks nothing more
    picks = np.stack(picks, 1)  # (P, top)
    rows, which = np.nonzero(np.isfinite(picks))
    return list(zip(rows.tolist(), picks[rows, which].tolist()))


_PLANAR = {"tetragonal": np.array([1, 2, 4, 5, 8, 9, 10, 13, 16, 17, 18, 20, 25], dtype=float),
           "hexagonal": np.array([1, 3, 4, 7, 9, 12, 13, 16, 19, 21, 25, 27, 28], dtype=float)}


def _explained(q, tolq, values, scale):
    """How many of the lines q equal scale x one of ``values`` (per scale, within tolq)."""
    calc = scale[:, None] * values[None, :]  # (S, V)
    return (np.abs(calc[:, :, None] - q[None, None, :]) < tolq[None, None, :]).any(axis=1).sum(axis=1)


def _explains(q, tolq, calc):
    """Bool per line: some calculated Q is within the line's tolerance."""
    return (np.abs(q[:, None] - calc[None, :]) < tolq[:, None]).any(axis=1)


def _best_scales(q, tolq, values, n_first=6, n_score=12, keep=15, min_explained=3):
    """One-parameter sub-lattices Q = s x value: s from each of the first lines and value, kept
    when s explains at least ``min_explained`` of the first ``n_score`` lines (best first)."""
    s = (q[:n_first, None] / values[None, :]).ravel()
    if not len(s):
        return s
    # least squares on the lines each explains (the first line alone carries its error), then
    # one per 0.1 %
    calc = s[:, None, None] * values[None, :, None]  # (S, V, N)
    near = np.abs(calc - q[None, None, :n_score]) < tolq[None, None, :n_score]
    v_of = np.where(near, values[None, :, None], 0.0).max(axis=1)  # (S, N): the value of each explained line
    s = np.where((v_of > 0).sum(axis=1) >= 2, (v_of * q[None, :n_score]).sum(axis=1) / np.maximum((v_of**2).sum(axis=1), 1e-30), s)
    s = np.sort(s)
    s = s[np.concatenate([[True], np.diff(s) > 1e-3 * s[1:]])]
    counts = _explained(q[:n_score], tolq[:n_score], values, s)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= min_explained][:keep]
    return s[order]


def completion_trials(family, lines, zero, n_lines=20, n_new=8, n_rect=10):
    """Trial parameters that complete a zone of the first lines (step 4): tetragonal and
    hexagonal (A, C), orthorhombic (A, B, C). The missing parameter comes from each of the
    first ``n_new`` lines the zone does not explain with each small index (l = 1, 2; h, k <= 3),
    all at once: exhaustive, since chance coincidences of many index choices outvote the true
    value in a vote."""
    q = lines.q(zero)[:n_lines]
    tolq = lines.tol[:n_lines] * lines.dq(zero)[:n_lines] * 1.5
    n_out = 3 if family == "orthorhombic" else 2
    if len(q) < n_out + 3:
        return np.zeros((0, n_out))
    l2 = np.array([1.0, 4.0])
    rows = []
    if family in ("tetragonal", "hexagonal"):
        planar = _PLANAR[family]
        with_zero = np.concatenate([[0.0], planar])
        axial = np.arange(1, 9, dtype=float) ** 2
        for a in _best_scales(q, tolq, planar):  # the hk0 zone first: C from the other lines
            new = q[~_explains(q, tolq, a * planar)][:n_new]
            c = ((new[:, None, None] - a * with_zero[None, :, None]) / l2[None, None, :]).ravel()
            rows.append(np.column_stack([np.full(len(c), a), c]))
        for c in _best_scales(q, tolq, axial):  # the 00l row first: A from the other lines
            new = q[~_explains(q, tolq, c * axial)][:n_new]
            a = ((new[:, None, None] - c * np.array([0.0, 1.0, 4.0])[None, None, :]) / planar[None, :, None]).ravel()
            rows.append(np.column_stack([a, np.full(len(a), c)]))
    else:
        zones, counts = _zones(q, tolq, n_keep=60)
        rect = zones[(counts >= 3) & (np.abs(zones[:, 2]) <= np.median(tolq))][:n_rect]
        hk = np.array([(h, k) for h in range(4) for k in range(4)], dtype=float)
        halves = [(1.0, 1.0), (0.25, 1.0), (1.0, 0.25), (0.25, 0.25)]  # h00 / 0k0 with h, k odd may be absent
        for qa, qb in [(qa * fa, qb * fb) for qa, qb, _ in rect for fa, fb in halves]:
            qz = qa * hk[:, 0] ** 2 + qb * hk[:, 1] ** 2
            new = q[~_explains(q, tolq, qz[1:])][:n_new]
            c = ((new[:, None, None] - qz[None, :, None]) / l2[None, None, :]).ravel()
            rows.append(np.column_stack([np.full(len(c), qa), np.full(len(c), qb), c]))
    if not rows:
        return np.zeros((0, n_out))
    out = np.concatenate(rows)
    return out[(out > 0).all(axis=1)]


def row_trials(family, lines, zero, n_first=6, l_max=15, l_basis=3):
    """Tetragonal and hexagonal (A, C) trials for a long c axis: two of the first ``n_first``
    lines taken as reflections of one row (h k fixed, l varying; the first rows, hk = 10 and 11,
    m = h^2 + k^2 or h^2 + hk + k^2 of 1 or 2 / 3), Q = m A + C l^2, with l up to ``l_max`` and one
    of them above ``l_basis`` (the low indices are the linear trials'). C = dQ / d(l^2), then A.
    A polytype or an hR cell of c ~ 20-30 A has 00l and 10l lines first, whose indices no
    small-index basis reaches and whose hk0 zone holds one or two of the first twelve lines."""
    q = lines.q(zero)[:n_first]
    if len(q) < 2:
        return np.zeros((0, 2))
    m = np.array([1.0, 2.0] if family == "tetragonal" else [1.0, 3.0])
    l_pairs = np.array([(a, b) for a in range(l_max + 1) for b in range(a + 1, l_max + 1) if b > l_basis], dtype=float)
    i, j = np.triu_indices(len(q), 1)
    dq = q[j] - q[i]  # (P,)
    c = dq[:, None] / (l_pairs[None, :, 1] ** 2 - l_pairs[None, :, 0] ** 2)  # (P, L)
    a = (q[i][:, None, None] - c[:, :, None] * l_pairs[None, :, 0, None] ** 2) / m[None, None, :]  # (P, L, M)
    c = np.broadcast_to(c[:, :, None], a.shape)
    out = np.column_stack([a.ravel(), c.ravel()])
    return out[(out > 0).all(axis=1)]


def trials(family, lines, zero, deadline=None, n_zones=40, n_new=8, n_layered=4, n_vote=20, vote_width=0.004):
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
        k2 = np.array([1.0, 4.0])
        for qa, qc, r in zones:
            if deadline is not None and time.perf_counter() > deadline:
                break
            qz = qa * hl[:, 0] ** 2 + qc * hl[:, 1] ** 2 + r * hl[:, 0] * hl[:, 1]
            # B from each of the first lines the zone does not explain, with each small h, l
            # and k = 1, 2 (exhaustive: see completion_trials)
            new = q[~_explains(q, tolq, qz[qz > 0])][:n_new]
            b = ((new[:, None, None] - qz[None, :, None]) / k2[None, None, :]).ravel()
            b = b[b > 0]
            rows.append(np.column_stack([np.full(len(b), qa), b, np.full(len(b), qc), np.full(len(b), r)]))
        rows.append(_rectangular_completion(zones, q, tolq))
        return np.concatenate(rows) if rows else np.zeros((0, 4))
    # triclinic: pairs of zones that share a row (Visser): each zone rebased on each of its short
    # rows w (the common row's Q, the complement v's Q and 2 w.v), matched across zones by Q(w)
    pairs = _row_pairs(zones, counts, 2 * np.median(tolq), q[-1] * 1.05)
    hkl = np.array([(h, k, l) for h in range(-2, 3) for k in range(1, 3) for l in (-2, -1, 1, 2)])
    h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]
    out = []
    for s0 in range(0, len(pairs), 512):  # Rbc voted for by the lines, all pairs of a chunk at once
        if deadline is not None and time.perf_counter() > deadline:
            break
        qa, qb, rab, qc, rac = pairs[s0:s0 + 512].T
        rest = (h * h * qa[:, None] + k * k * qb[:, None] + l * l * qc[:, None] + h * k * rab[:, None]
                + h * l * rac[:, None])  # (P, H)
        rbc = ((q[None, :n_vote, None] - rest[:, None, :]) / (k * l)[None, None, :]).reshape(len(qa), -1)
        lim = 2 * np.sqrt(qb * qc)  # |2 b*.c*| <= 2 |b*| |c*| (b*, c* reduced against a* only)
        for row, f in _vote_signed(rbc, lim, vote_width, top=3):
            out.append((qa[row], qb[row], qc[row], rab[row], rac[row], f))
    out = np.array(out).reshape(-1, 6)
    layers = [_third_axis(zone, q, tolq) for zone in zones[:n_layered]]
    return np.concatenate([out] + layers) if layers else out


_RECT_HK = np.array([(h, k) for h in range(-2, 3) for k in range(0, 3)], dtype=float)


def _rectangular_completion(zones, q, tolq, n_rect=4, n_new=5):
    """Monoclinic trials (A, B, C, D) from a rectangular zone of the first lines (step 2's
    other half): every plane that contains b* is rectangular (b* is perpendicular to the
    a*c* plane), and when the lines of the h0l plane are few (weak, absent or late) such a
    zone is what the first lines show. One of its axes is b* (B), the other a row u of the a*c*
    plane (A = Q(u), u taken as a*); C and D come from two lines the zone does not explain, each
    indexed (h, k, 1): Q - A h^2 - B k^2 = C + D h, so two lines of different h fix both. A
    centred rectangular zone (reduced with Qa = Qb) gives its rectangular axes (a sublattice:
    a C-centred cell's hk0 plane), and b* may be twice the zone's axis (0k0 with k odd absent)."""
    width = float(np.median(tolq))
    axes = []
    for qa, qb, r in zones[:n_rect * 3]:
        if len(axes) >= 4 * n_rect:
            break
        if abs(r) <= width:
            pair = (qa, qb)
        elif abs(qa - qb) <= width:
            pair = (qa + qb + r, qa + qb - r)
        else:
            continue
        for qu, qbb in (pair, pair[::-1]):
            axes += [(qu, qbb), (qu, qbb / 4)]
    if not axes:
        return np.zeros((0, 4))
    h, k = _RECT_HK[:, 0], _RECT_HK[:, 1]
    ca, cb = (g.ravel() for g in np.meshgrid(np.arange(len(h)), np.arange(len(h)), indexing="ij"))
    diff = h[ca] != h[cb]
    ca, cb = ca[diff], cb[diff]
    out = []
    for qu, qbb in axes:
        qz = qu * h * h + qbb * k * k
        new = q[~_explains(q, tolq, qz[qz > 0])][:n_new]
        if len(new) < 2:
            continue
        t = new[:, None] - qz[None, :]  # (N, H): C + D h for each index choice
        m = np.triu_indices(len(new), 1)
        ti, tj = t[m[0]][:, ca], t[m[1]][:, cb]  # (pairs, choices)
        d = (ti - tj) / (h[ca] - h[cb])[None, :]
        c = ti - d * h[ca][None, :]
        d, c = d.ravel(), c.ravel()
        good = (c > 0) & (d * d < 4 * qu * c * 0.999)
        out.append(np.column_stack([np.full(good.sum(), qu), np.full(good.sum(), qbb), c[good], d[good]]))
    return np.concatenate(out) if out else np.zeros((0, 4))


_LAYER_HK = np.array([(h, k) for h in range(-2, 3) for k in range(-2, 3) if (h, k) != (0, 0)])


def _third_axis(zone, q, tolq, n_c=3, n_pair=4, n_vote=10, keep=60):
    """Triclinic cells that complete one zone (Ito): when the first lines nearly all lie in one
    plane, no second zone comes from them. c* is taken as the vector of one of the first lines
    the zone leaves unexplained (a row of the layer l = 1: C = Q), and (E, F) = (2a*.c*, 2b*.c*)
    from two more such lines and every small (h, k) (Q = Qz(h, k) + C + hE + kF: two equations),
    each solution voted for by the other unexplained lines of the layers l = 1, 2: the ``keep``
    best of each c* line, with at least 4 votes."""
    qa, qb, r = zone
    hk = _LAYER_HK.astype(float)
    qz = qa * hk[:, 0] ** 2 + qb * hk[:, 1] ** 2 + r * hk[:, 0] * hk[:, 1]  # (K,)
    new = np.flatnonzero(~_explains(q, tolq, _zone_points(np.asarray(zone)[None, :])[0]))
    if len(new) < 4:
        return np.zeros((0, 6))
    h1, k1 = hk[:, 0][:, None], hk[:, 1][:, None]
    h2, k2 = hk[:, 0][None, :], hk[:, 1][None, :]
    det = h1 * k2 - h2 * k1  # (K, K)
    solvable = det != 0
    det = np.where(solvable, det, 1.0)
    hk0 = np.concatenate([hk, [[0.0, 0.0]]])
    inplane = np.concatenate([qz, [0.0]])
    rows = []
    for ci in new[:n_c]:
        c = q[ci]
        others = np.array([j for j in new if j != ci][:n_vote])
        if len(others) < 3:
            continue
        v = q[others][:, None] - qz[None, :] - c  # (J, K): h E + k F = v for l = 1
        pairs = list(itertools.combinations(range(min(n_pair, len(others))), 2))
        va = v[[a for a, _ in pairs]][:, :, None]  # (P, K, 1)
        vb = v[[b for _, b in pairs]][:, None, :]  # (P, 1, K)
        e = ((va * k2 - vb * k1) / det)[:, solvable]
        f = ((h1 * vb - h2 * va) / det)[:, solvable]
        e, f = e.ravel(), f.ravel()
        ok = (np.abs(e) <= 2 * np.sqrt(qa * c)) & (np.abs(f) <= 2 * np.sqrt(qb * c))
        ok &= (qa * qb - r * r / 4) * c - qa * f * f / 4 - qb * e * e / 4 + r * e * f / 4 > 0  # det of the metric
        e, f = e[ok], f[ok]
        if not len(e):
            continue
        # votes: lines of the layers l = 1, 2 at Qz(h, k) + l^2 C + l (h E + k F)
        lin = e[:, None] * hk0[:, 0] + f[:, None] * hk0[:, 1]  # (P, K+1)
        calc = np.concatenate([inplane + c + lin, inplane + 4 * c + 2 * lin], axis=1)
        calc.sort(axis=1)
        pos = np.clip(row_searchsorted(calc, q[others]), 1, calc.shape[1] - 1)
        near = np.minimum(np.abs(np.take_along_axis(calc, pos, 1) - q[others]),
                          np.abs(np.take_along_axis(calc, pos - 1, 1) - q[others]))
        votes = (near < tolq[others]).sum(axis=1)
        best = np.argsort(-votes, kind="stable")[:keep]
        best = best[votes[best] >= 4]
        rows.append(np.column_stack([np.full(len(best), qa), np.full(len(best), qb), np.full(len(best), c),
                                     np.full(len(best), r), e[best], f[best]]))
    return np.concatenate(rows) if rows else np.zeros((0, 6))


def row_searchsorted(sorted_rows, values):
    """np.searchsorted of the same values in each row of a row-sorted array, in one call."""
    n, m = sorted_rows.shape
    span = float(sorted_rows.max() - sorted_rows.min()) + float(np.abs(values).max()) + 1.0
    offset = (np.arange(n) * span)[:, None]
    flat = (sorted_rows + offset).ravel()
    return np.searchsorted(flat, (values[None, :] + offset).ravel()).reshape(n, -1) - np.arange(n)[:, None] * m


# short rows (h, k) of a plane lattice and a complement (p, q) of each (hq - kp = +-1)
_ROWS = np.array([(1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2)])
_COMPLEMENTS = np.array([(0, 1), (1, 0), (0, 1), (0, 1), (1, 1), (1, 1), (1, 0), (0, 1)])


def _rebased(zones):
    """Each zone (Qa, Qb, R) on each short row w as its first axis: rows (zone, Q(w), Q(v), 2 w.v),
    v the complement reduced against w (|2 w.v| <= Q(w))."""
    qa, qb, r = (zones[:, i][:, None] for i in range(3))
    h, k = _ROWS[:, 0], _ROWS[:, 1]
    p, s = _COMPLEMENTS[:, 0], _COMPLEMENTS[:, 1]
    qw = h * h * qa + k * k * qb + h * k * r
    qv = p * p * qa + s * s * qb + p * s * r
    rwv = 2 * h * p * qa + 2 * k * s * qb + (h * s + k * p) * r
    n = np.round(-rwv / (2 * qw))
    qv = qv + n * rwv + n * n * qw
    rwv = rwv + 2 * n * qw
    zone = np.repeat(np.arange(len(zones)), len(_ROWS))
    return zone, qw.ravel(), qv.ravel(), rwv.ravel()


def _row_pairs(zones, counts, share, q_max, max_pairs=1500):
    """(Qa, Qb, Rab, Qc, Rac) rows from pairs of zones with a common row a* (equal Q(w) within
    ``share``) and different planes, the pairs of most supported zones first."""
    zone, qw, qv, rwv = _rebased(zones)
    keep = qw <= q_max
    zone, qw, qv, rwv = zone[keep], qw[keep], qv[keep], rwv[keep]
    order = np.argsort(qw)
    zone, qw, qv, rwv = zone[order], qw[order], qv[order], rwv[order]
    n_after = np.searchsorted(qw, qw + share, side="right") - np.arange(len(qw)) - 1  # partners j > i
    i = np.repeat(np.arange(len(qw)), n_after)
    j = i + 1 + np.arange(len(i)) - np.repeat(np.cumsum(n_after) - n_after, n_after)
    same_plane = (np.abs(qv[i] - qv[j]) <= share) & (np.abs(np.abs(rwv[i]) - np.abs(rwv[j])) <= share)
    ok = (zone[i] != zone[j]) & ~same_plane
    i, j = i[ok], j[ok]
    support = counts[zone[i]] + counts[zone[j]]
    pick = np.argsort(-support, kind="stable")[:max_pairs]
    i, j = i[pick], j[pick]
    return np.column_stack([0.5 * (qw[i] + qw[j]), qv[i], rwv[i], qv[j], rwv[j]])
