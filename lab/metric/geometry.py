"""Margin geometry: the (E_G, E_I) plane of Chopra, Hadsell & LeCun (2005), in numpy.

Take one genuine pair and one impostor pair sharing an image. A pair loss is a genuine term plus
an impostor term, so for these two pairs it is H(E_G, E_I) = L_G(E_G) + L_I(E_I). The paper
asks three things of H (section 3, "conditions"):

1. a margin m > 0 exists: energies with E_G + m < E_I can be reached;
2. the minimum of H lies inside the half-plane E_G + m < E_I;
3. on the margin line E_I = E_G + m, the descent direction −∇H points into that half-plane:
   −∇H · [−1, 1] > 0.

Every loss is judged by the same rule, in one of two domains of energies:

- **bounded**: E_G, E_I in the box [0, E_max]² (L2-normalised embeddings: E_max = 2 for L2,
  4 for squared L2, 2√D for L1; for Chopra's loss Q is meant to be that bound);
- **unbounded**: E_G, E_I in [0, ∞)² (embeddings free to grow, ``normalize=False``).

Condition 1 holds when m > 0, a pair of pairs with E_G + m < E_I exists in the domain and the
loss never penalises one (L_G smallest at 0, L_I non-increasing). Condition 2 holds when H
*attains* its infimum in the domain and every minimiser lies strictly inside the half-plane.
Condition 3 holds when L_G'(E_G) − L_I'(E_G + m) > 0 at every point of the margin line inside
the domain. The verdicts, each with its derivation (m_c: contrastive margin; m: the
half-plane's):

Contrastive, margin m_c (L_G = E²/2, L_I = ½ max(0, m_c − E)²):
  c1  bounded ✓ if m < E_max: L_G smallest at 0, L_I never grows.  unbounded ✓: the same terms.
  c2  bounded ✓ iff m < min(m_c, E_max): H = 0 exactly on E_G = 0, E_I ∈ [min(m_c, E_max),
      E_max].  unbounded ✓ iff m < m_c: H = 0 exactly on E_G = 0, E_I ≥ m_c.
  c3  both ✓ iff m < m_c: L_G′ − L_I′ = E_G + max(0, m_c − E_G − m), which is 0 at E_G = 0
      once m ≥ m_c.
Chopra, bound Q (L_G = 2E²/Q, L_I = 2Q e^{−2.77E/Q}):
  c1  bounded ✓ if m < E_max: L_G smallest at 0, L_I decreasing.  unbounded ✓: the same.
  c2  bounded ✓ iff m < E_max: L_I strictly decreasing, so the one minimiser is (0, E_max).
      unbounded ✗: inf H = 0 is approached as E_I → ∞ but never reached (L_I > 0); Q is
      meant to bound the energy (E ≤ Q), which puts the paper in the bounded column.
  c3  both ✓: L_G′ − L_I′ = 4E_G/Q + 5.54 e^{−2.77(E_G + m)/Q} > 0.
Naive, no margin (L_G = E, L_I = −E):
  c1  bounded ✓ if m < E_max: L_G smallest at 0, L_I decreasing.  unbounded ✓: the same.
  c2  bounded ✓ iff m < E_max: the one minimiser is the corner (0, E_max), H = −E_max, as for
      Chopra's.  unbounded ✗: H(0, E_I) = −E_I → −∞, no minimum at all.
  c3  both ✓: L_G′ − L_I′ = 1 − (−1) = 2 > 0.

So inside a bounded box the three conditions do not tell the naive loss from Chopra's: both are
minimised by pushing every impostor to the largest energy there is. What the naive loss lacks
shows when the energies are not bounded: it has no minimum and is lowered for ever by blowing
the energies up (the "Why a margin" lesson trains unnormalised embeddings and sees exactly that),
while Chopra's loss is bounded below and its push on impostors dies off exponentially. The tests
(tests/test_geometry.py) check these verdicts against H computed by hand at chosen points.

Then minimising H drives the machine to a solution with a margin. This module evaluates H, its
gradient and the three checks for every pair loss of :mod:`lab.metric.losses` (it reuses the very
partial terms the trainer uses), plus the triplet view (d(a,p) vs d(a,n)) and the "plateau"
argument for the L1 energy. Energies live in the box [0, E_max]^2; E_max is the largest energy
the embedding allows (e.g. :func:`lab.metric.energy.energy_bound` for L2-normalised embeddings, or Q
for the Chopra loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.metric.energy import energy_matrix_np
from lab.metric.loss_specs import LOSSES
from lab.metric.losses import PairLossTerms

TRIPLET_REGIONS = ("easy", "semi-hard", "hard")


def pair_losses() -> tuple[str, ...]:
    """The registered losses with an (E_G, E_I) view: the pair losses (their spec's terms)."""
    return tuple(name for name, spec in LOSSES.items() if spec.pair_terms is not None)


PAIR_LOSSES = pair_losses()  # the built-in ones, for tests and pages that list them


def pair_loss_terms(loss: str, *, loss_margin: float = 1.0, q: float = 2.0) -> PairLossTerms:
    """The partial terms of a pair loss (its spec's ``pair_terms``): ``loss_margin`` is the
    contrastive m_c, ``q`` Chopra's Q.

    Kept apart from the margin m of the conditions: the page varies both to show that the
    contrastive loss only guarantees margins m < m_c.
    """
    spec = LOSSES.get(loss)
    if spec is None or spec.pair_terms is None:
        raise ValueError(f"no (E_G, E_I) view for loss {loss!r}; pair losses: "
                         f"{', '.join(pair_losses())}")
    return spec.pair_terms(loss_margin=loss_margin, q=q)


def h_value(loss: str, e_genuine, e_impostor, *, loss_margin: float = 1.0,
            q: float = 2.0) -> np.ndarray:
    """H(E_G, E_I) = L_G(E_G) + L_I(E_I), broadcast over arrays."""
    terms = pair_loss_terms(loss, loss_margin=loss_margin, q=q)
    return terms.genuine(e_genuine) + terms.impostor(e_impostor)


@dataclass(frozen=True)
class Grid:
    """Values on a grid for contours: ``values[i, j]`` belongs to (x[j], y[i]) as plotly wants."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray


def h_grid(loss: str, e_max: float, *, n: int = 101, loss_margin: float = 1.0,
           q: float = 2.0) -> Grid:
    """H on an n x n grid over [0, e_max]^2: x = E_G, y = E_I."""
    axis = np.linspace(0.0, e_max, n)
    values = h_value(loss, axis[None, :], axis[:, None], loss_margin=loss_margin, q=q)
    return Grid(axis, axis.copy(), values)


def h_gradient(loss: str, e_genuine, e_impostor, *, loss_margin: float = 1.0, q: float = 2.0,
               numeric: bool = False, step: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(∂H/∂E_G, ∂H/∂E_I): analytic, or by central differences when ``numeric`` (a check)."""
    terms = pair_loss_terms(loss, loss_margin=loss_margin, q=q)
    e_genuine = np.asarray(e_genuine, dtype=float)
    e_impostor = np.asarray(e_impostor, dtype=float)
    if not numeric:
        return terms.genuine_slope(e_genuine), terms.impostor_slope(e_impostor)
    d_genuine = (terms.genuine(e_genuine + step) - terms.genuine(e_genuine - step)) / (2 * step)
    d_impostor = (terms.impostor(e_impostor + step) - terms.impostor(e_impostor - step)) / (
        2 * step)
    return d_genuine, d_impostor


@dataclass(frozen=True)
class Field:
    """Arrows of −∇H: at each point (e_genuine[k], e_impostor[k]) the vector (u[k], v[k])."""

    e_genuine: np.ndarray
    e_impostor: np.ndarray
    u: np.ndarray
    v: np.ndarray


def descent_field(loss: str, e_max: float, *, n: int = 15, loss_margin: float = 1.0,
                  q: float = 2.0) -> Field:
    """−∇H on an n x n lattice of the box: where gradient descent pushes a pair of pairs."""
    axis = np.linspace(0.0, e_max, n)
    e_genuine, e_impostor = (values.ravel() for values in np.meshgrid(axis, axis))
    d_genuine, d_impostor = h_gradient(loss, e_genuine, e_impostor, loss_margin=loss_margin, q=q)
    return Field(e_genuine, e_impostor, -d_genuine, -d_impostor)


def gradient_field(loss: str, e_max: float, *, n: int = 15, loss_margin: float = 1.0,
                   q: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(E_G, E_I, ∂H/∂E_G, ∂H/∂E_I) on an n x n lattice: the shape ``lab.viz.planes.geometry_plane``
    takes (it negates the gradient itself)."""
    field = descent_field(loss, e_max, n=n, loss_margin=loss_margin, q=q)
    return field.e_genuine, field.e_impostor, -field.u, -field.v


def margin_line(margin: float, e_max: float) -> tuple[np.ndarray, np.ndarray]:
    """End points (E_G, E_I) of the margin line E_I = E_G + m inside the box (empty when it
    misses the box or only touches a corner)."""
    start, stop = max(0.0, -margin), min(e_max, e_max - margin)
    if stop <= start:
        return np.array([]), np.array([])
    e_genuine = np.array([start, stop])
    return e_genuine, e_genuine + margin


# --- conditions 1-3 ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ConditionCheck:
    ok: bool
    reason: str


@dataclass(frozen=True)
class Conditions:
    condition1: ConditionCheck
    condition2: ConditionCheck
    condition3: ConditionCheck

    @property
    def all_ok(self) -> bool:
        return self.condition1.ok and self.condition2.ok and self.condition3.ok


def _tolerance(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    return 1e-12 * max(1.0, scale)


def _reach(e_max: float, margin: float, loss_margin: float, q: float) -> float:
    """How far the unbounded checks sample: far beyond every scale of the loss."""
    return 1e3 * max(e_max, margin, loss_margin, q, 1.0)


def _samples(top: float, n: int) -> np.ndarray:
    """[0, top], fine near 0 (where the margins live) and geometric beyond."""
    near = np.linspace(0.0, min(top, 10.0), n)
    return np.unique(np.concatenate([near, np.geomspace(min(top, 10.0), top, n)])) \
        if top > 10.0 else near


def check_condition1(loss: str, margin: float, e_max: float, *, loss_margin: float = 1.0,
                     q: float = 2.0, n: int = 401, bounded: bool = True) -> ConditionCheck:
    """Condition 1: a margin m > 0 exists.

    In the paper it is an assumption on the machine (some W separates the pairs by m). What the
    energy plane can check is its part: m > 0, a separated configuration is reachable
    (bounded: m < E_max; unbounded: always), and the loss never penalises separating: L_G is
    smallest at E_G = 0 and L_I does not grow with E_I. Whether the loss also has a minimum
    there is condition 2. A run's measured share is :func:`margin_share`.
    """
    if not margin > 0:
        return ConditionCheck(False, f"The margin must be positive, got m = {margin:g}.")
    if bounded and margin >= e_max:
        return ConditionCheck(False, f"Energies only reach {e_max:g}, so no pair of pairs can be "
                                     f"separated by m = {margin:g}.")
    terms = pair_loss_terms(loss, loss_margin=loss_margin, q=q)
    top = e_max if bounded else _reach(e_max, margin, loss_margin, q)
    energies = _samples(top, n)
    genuine, impostor = terms.genuine(energies), terms.impostor(energies)
    if genuine[0] > genuine.min() + _tolerance(genuine):
        return ConditionCheck(False, "The genuine term is not smallest at E_G = 0, so the loss "
                                     "does not ask for genuine pairs to come together.")
    if np.any(np.diff(impostor) > _tolerance(impostor)):
        return ConditionCheck(False, "The impostor term grows with E_I somewhere, so pushing "
                                     "impostors apart by a margin is penalised.")
    reach = f"E_I up to {e_max:g}" if bounded else "energies are unbounded"
    return ConditionCheck(True, f"Pairs with E_G + {margin:g} < E_I are reachable ({reach}) "
                                f"and the loss never penalises them: L_G is smallest at 0 and "
                                f"L_I never grows with E_I.")


def _minimisers(terms: PairLossTerms, e_max: float, n: int) -> list[tuple[float, float]]:
    """Grid minimisers of H in the box, plus the analytic ones (exact where the grid is not)."""
    axis = np.linspace(0.0, e_max, n)
    values = terms.genuine(axis)[None, :] + terms.impostor(axis)[:, None]
    lowest = float(values.min())
    rows, cols = np.nonzero(values <= lowest + _tolerance(values))
    points = [(float(axis[c]), float(axis[r])) for r, c in zip(rows, cols, strict=True)]
    for e_genuine, e_impostor in terms.minimisers(e_max):
        if terms.genuine(e_genuine) + terms.impostor(e_impostor) <= lowest + _tolerance(values):
            points.append((float(e_genuine), float(e_impostor)))
    return sorted(set(points))


def check_condition2(loss: str, margin: float, e_max: float, *, loss_margin: float = 1.0,
                     q: float = 2.0, n: int = 401, bounded: bool = True) -> ConditionCheck:
    """Condition 2: H attains its minimum and every minimiser lies strictly inside E_G + m < E_I.

    Bounded energies: the minimisers of H over [0, E_max]² (a compact box, so they exist) are
    found on an n x n grid and completed with the analytic ones (for the contrastive loss the
    whole segment E_G = 0, E_I in [m_c, E_max], whose end (0, m_c) decides the verdict exactly
    at m = m_c). Unbounded energies: L_G is smallest at 0, so H attains its infimum only if L_I
    reaches its floor at a finite E_I (the contrastive hinge does at m_c; Chopra's exponential
    only approaches 0; the naive −E has no floor at all).
    """
    terms = pair_loss_terms(loss, loss_margin=loss_margin, q=q)
    if not bounded:
        if not np.isfinite(terms.impostor_floor):
            return ConditionCheck(False, "With unbounded energies H has no minimum: "
                                         "H(0, E_I) = L_G(0) + L_I(E_I) → −∞ as E_I grows, so "
                                         "the loss is lowered for ever by blowing energies up.")
        if terms.floor_reached_at is None:
            floor = float(terms.genuine(0.0)) + terms.impostor_floor
            return ConditionCheck(False, f"With unbounded energies H has no minimum: it "
                                         f"approaches {floor:g} as E_I → ∞ but never reaches "
                                         f"it (L_I stays above its floor), so descent pushes "
                                         f"impostors apart for ever, ever more gently.")
        start = terms.floor_reached_at
        if start > margin:
            return ConditionCheck(True, f"H is smallest on E_G = 0, E_I ≥ {start:g}, inside "
                                        f"the half-plane E_G + {margin:g} < E_I.")
        return ConditionCheck(False, f"H reaches its minimum at E_G, E_I = (0, {start:g}), where "
                                     f"E_I − E_G = {start:g} is not more than m = {margin:g}: a "
                                     f"minimiser lies outside the half-plane.")
    points = _minimisers(terms, e_max, n)
    worst = min(points, key=lambda point: point[1] - point[0])
    where = f"({worst[0]:.3g}, {worst[1]:.3g})"
    if worst[1] - worst[0] > margin:
        return ConditionCheck(True, f"In the box [0, {e_max:g}]², H is smallest at E_G, E_I = "
                                    f"{where}{' and along a segment' if len(points) > 1 else ''}"
                                    f", inside the half-plane E_G + {margin:g} < E_I.")
    return ConditionCheck(False, f"H reaches its minimum at E_G, E_I = {where}, where "
                                 f"E_I − E_G = {worst[1] - worst[0]:.3g} is not more than "
                                 f"m = {margin:g}: a minimiser lies outside the half-plane.")


def check_condition3(loss: str, margin: float, e_max: float, *, loss_margin: float = 1.0,
                     q: float = 2.0, n: int = 401, bounded: bool = True) -> ConditionCheck:
    """Condition 3: on the margin line E_I = E_G + m, −∇H · [−1, 1] > 0 at every sampled point
    (of the box when bounded, of [0, ∞) otherwise).

    −∇H · [−1, 1] = ∂H/∂E_G − ∂H/∂E_I = L_G'(E_G) − L_I'(E_I): descent lowers E_G or raises E_I
    faster than it does the opposite, i.e. it crosses the line into the half-plane.
    """
    if bounded:
        e_genuine, _ = margin_line(margin, e_max)
        if e_genuine.size == 0:
            return ConditionCheck(False, f"The margin line E_I = E_G + {margin:g} lies outside "
                                         f"the box of reachable energies [0, {e_max:g}]².")
        samples = np.linspace(e_genuine[0], e_genuine[1], n)
    else:
        samples = _samples(_reach(e_max, margin, loss_margin, q), n) + max(0.0, -margin)
    d_genuine, d_impostor = h_gradient(loss, samples, samples + margin, loss_margin=loss_margin,
                                       q=q)
    into = d_genuine - d_impostor
    worst = int(np.argmin(into))
    if into[worst] > 0:
        return ConditionCheck(True, f"On the margin line −∇H points into the half-plane "
                                    f"everywhere (smallest −∇H·[−1, 1] = {into[worst]:.3g}).")
    return ConditionCheck(False, f"At E_G = {samples[worst]:.3g}, E_I = "
                                 f"{samples[worst] + margin:.3g} on the margin line, "
                                 f"−∇H·[−1, 1] = {into[worst]:.3g} is not positive: descent "
                                 f"does not push that pair of pairs across the line.")


def check_conditions(loss: str, margin: float, e_max: float, *, loss_margin: float = 1.0,
                     q: float = 2.0, n: int = 401, bounded: bool = True) -> Conditions:
    """Conditions 1-3 of Chopra 2005 for one loss and margin (fast enough for a slider).
    ``bounded``: energies live in [0, e_max]²; otherwise in [0, ∞)² (e_max only draws)."""
    options = {"loss_margin": loss_margin, "q": q, "n": n, "bounded": bounded}
    return Conditions(check_condition1(loss, margin, e_max, **options),
                      check_condition2(loss, margin, e_max, **options),
                      check_condition3(loss, margin, e_max, **options))


VERDICT_TABLE = (
    # (loss, condition, bounded verdict and derivation, unbounded verdict and derivation)
    ("contrastive", 1, "✓ if m < E_max: L_G = E²/2 smallest at 0, L_I = ½max(0, m_c − E)² "
                       "never grows", "✓: the same terms; every m is reachable"),
    ("contrastive", 2, "✓ iff m < min(m_c, E_max): H = 0 exactly on E_G = 0, "
                       "E_I ∈ [min(m_c, E_max), E_max]",
     "✓ iff m < m_c: H = 0 exactly on E_G = 0, E_I ≥ m_c"),
    ("contrastive", 3, "✓ iff m < m_c: L_G′ − L_I′ = E_G + max(0, m_c − E_G − m), 0 at E_G = 0 "
                       "once m ≥ m_c", "✓ iff m < m_c: the same expression"),
    ("chopra", 1, "✓ if m < E_max: L_G = 2E²/Q smallest at 0, L_I = 2Q e^{−2.77E/Q} "
                  "decreasing", "✓: the same terms"),
    ("chopra", 2, "✓ iff m < E_max: L_I strictly decreasing, so the minimiser is the corner "
                  "(0, E_max)", "✗: inf H = 0 approached as E_I → ∞, never reached (L_I > 0); "
                                "Q is meant to bound E"),
    ("chopra", 3, "✓: 4E_G/Q + 5.54 e^{−2.77(E_G+m)/Q} > 0", "✓: the same expression"),
    ("naive", 1, "✓ if m < E_max: L_G = E smallest at 0, L_I = −E decreasing",
     "✓: the same terms"),
    ("naive", 2, "✓ iff m < E_max: the minimiser is the corner (0, E_max), H = −E_max, as for "
                 "Chopra's", "✗: H(0, E_I) = −E_I → −∞, no minimum at all"),
    ("naive", 3, "✓: L_G′ − L_I′ = 1 − (−1) = 2 > 0", "✓: the same"),
)


@dataclass(frozen=True)
class GeometryView:
    """Everything the geometry page draws for one loss, margin and box, computed at once."""

    grid: Grid
    gradient: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    conditions: Conditions


def geometry_view(loss: str, margin: float, e_max: float, *, loss_margin: float = 1.0,
                  q: float = 2.0, n_grid: int = 101, n_arrows: int = 15,
                  bounded: bool = True) -> GeometryView:
    """H on a grid, the gradient lattice and conditions 1-3: a few milliseconds, no training."""
    options = {"loss_margin": loss_margin, "q": q}
    return GeometryView(h_grid(loss, e_max, n=n_grid, **options),
                        gradient_field(loss, e_max, n=n_arrows, **options),
                        check_conditions(loss, margin, e_max, bounded=bounded, **options))


# --- a run's real energies as points -------------------------------------------------------

@dataclass(frozen=True)
class PairPoints:
    """Genuine and impostor energies sharing an anchor: E(a, p) and E(a, n) for triplets."""

    e_genuine: np.ndarray
    e_impostor: np.ndarray
    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray


def pair_points(energies: np.ndarray, labels: np.ndarray, *, max_points: int = 2000,
                seed: int = 0) -> PairPoints:
    """(E_G, E_I) points from an [N, N] energy matrix: one genuine and one impostor pair that
    share their anchor, i.e. triplets (a, p, n) with p of a's identity (p != a) and n not.

    All triplets when there are at most ``max_points``, else a seeded uniform sample of them
    (with replacement). The same points are the triplet view's (d(a,p), d(a,n)).
    """
    energies = np.asarray(energies, dtype=float)
    labels = np.asarray(labels)
    n = labels.shape[0]
    same = labels[:, None] == labels[None, :]
    anchor_g, positive_g = np.nonzero(same & ~np.eye(n, dtype=bool))
    negatives_per_anchor = (~same).sum(axis=1)
    weights = negatives_per_anchor[anchor_g].astype(float)
    total = int(weights.sum())
    if total == 0:
        empty_i, empty_f = np.zeros(0, dtype=int), np.zeros(0)
        return PairPoints(empty_f, empty_f.copy(), empty_i, empty_i.copy(), empty_i.copy())
    if total <= max_points:
        anchor, positive, negative = np.nonzero(
            (same & ~np.eye(n, dtype=bool))[:, :, None] & ~same[:, None, :])
    else:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(anchor_g.size, size=max_points, p=weights / weights.sum())
        anchor, positive = anchor_g[chosen], positive_g[chosen]
        # the r-th negative of each anchor, r uniform: walk the identities in label order
        order = np.argsort(labels, kind="stable")
        sorted_labels = labels[order]
        block_start = np.searchsorted(sorted_labels, labels[anchor], side="left")
        block_size = same[anchor].sum(axis=1)
        r = (rng.random(max_points) * negatives_per_anchor[anchor]).astype(int)
        r = np.where(r < block_start, r, r + block_size)
        negative = order[r]
    return PairPoints(energies[anchor, positive], energies[anchor, negative], anchor, positive,
                      negative)


def pair_points_from_embeddings(embeddings: np.ndarray, labels: np.ndarray, energy: str = "l2",
                                *, max_points: int = 2000, seed: int = 0) -> PairPoints:
    """:func:`pair_points` for embeddings (e.g. a run's probe embeddings at one epoch)."""
    return pair_points(energy_matrix_np(embeddings, energy), labels, max_points=max_points,
                       seed=seed)


def margin_share(e_genuine: np.ndarray, e_impostor: np.ndarray, margin: float) -> float:
    """Share of points with E_G + m < E_I (condition 1 met by the run); nan when no points."""
    e_genuine, e_impostor = np.asarray(e_genuine, float), np.asarray(e_impostor, float)
    if e_genuine.size == 0:
        return float("nan")
    return float(np.mean(e_genuine + margin < e_impostor))


# --- the triplet view ---------------------------------------------------------------------

def triplet_regions(e_positive, e_negative, alpha: float) -> np.ndarray:
    """Name the region of each triplet in the (d(a,p), d(a,n)) plane (FaceNet):

    hard: d(a,n) <= d(a,p); semi-hard: d(a,p) < d(a,n) < d(a,p) + α (loss > 0 but the negative
    is already farther); easy: d(a,n) >= d(a,p) + α (zero loss).
    """
    e_positive, e_negative = np.asarray(e_positive, float), np.asarray(e_negative, float)
    return np.where(e_negative <= e_positive, "hard",
                    np.where(e_negative < e_positive + alpha, "semi-hard", "easy"))


def triplet_grid(alpha: float, e_max: float, *, n: int = 101) -> Grid:
    """The triplet hinge max(0, d(a,p) − d(a,n) + α) on a grid: x = d(a,p), y = d(a,n)."""
    axis = np.linspace(0.0, e_max, n)
    values = np.maximum(axis[None, :] - axis[:, None] + alpha, 0.0)
    return Grid(axis, axis.copy(), values)


# --- the plateau argument -------------------------------------------------------------------

def energy_gradient_norm(kind: str, energies, dim: int) -> np.ndarray:
    """|∇_δ E| for a difference vector δ = G(X1) − G(X2) in general position with energy E.

    This is what reaches the weights through the chain rule. L1: ∇ = sign(δ), norm √D at every
    energy. L2: ∇ = δ/|δ|, norm 1. Squared L2: ∇ = 2δ, norm 2|δ| = 2√E → 0 as E → 0: the
    "dangerous plateau" of Chopra 2005, where impostors at near-zero energy stop being pushed.
    """
    energies = np.asarray(energies, dtype=float)
    if kind == "l1":
        return np.full_like(energies, np.sqrt(dim))
    if kind == "l2":
        return np.ones_like(energies)
    if kind == "sqeuclidean":
        return 2.0 * np.sqrt(np.maximum(energies, 0.0))
    raise ValueError(f"the plateau view covers l1, l2 and sqeuclidean energies, not {kind!r}")


def impostor_gradient_norm(loss: str, kind: str, energies, dim: int, *,
                           loss_margin: float = 1.0, q: float = 2.0) -> np.ndarray:
    """|∂L_I/∂δ| = |L_I'(E)| · |∇_δ E|: how hard an impostor pair at energy E is pushed apart."""
    terms = pair_loss_terms(loss, loss_margin=loss_margin, q=q)
    energies = np.asarray(energies, dtype=float)
    return np.abs(terms.impostor_slope(energies)) * energy_gradient_norm(kind, energies, dim)


def plateau_curves(energies, dim: int,
                   kinds: tuple[str, ...] = ("l1", "sqeuclidean")) -> dict[str, np.ndarray]:
    """|∇_δ E| against E for each energy kind, for the plateau figure."""
    return {kind: energy_gradient_norm(kind, energies, dim) for kind in kinds}
