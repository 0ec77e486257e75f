"""The studies behind the chapter "The theorem" (Yang et al. 2020, §3, Theorem 3.2): plain dicts of arrays,
cacheable with ``lib.artifacts.cached``."""

from __future__ import annotations

import math

import numpy as np
import torch

from lib.theory.certificates import certified_accuracy_curve, certify, check_labels, tie_report
from lib.theory.construction import (
    SetDistanceClassifier,
    closest_pairs,
    evaluate_grid,
    grid_robust_radius,
    midpoint_attack,
)

def toy_study(X: np.ndarray, y: np.ndarray, *, rho_over_r: tuple[float, ...], attack_steps: int,
              attack_restarts: int, lipschitz_steps: int, lipschitz_restarts: int,
              grid_resolution: int = 301, seed: int = 0, levels: int | None = None) -> dict:
    """Everything the chapter shows about the construction on one 2-D set (the reference set itself).

    For each radius ``rho = t * r`` (``t`` in ``rho_over_r``) on the reference points:
    certified accuracy (closed ball, :func:`certify`), brute-force accuracy on a dense grid of
    the box (:func:`grid_robust_radius`, the truth up to one grid step), and robust accuracy
    under PGD and multi-targeted PGD (:mod:`lib.robustness.attacks`; steps of ``rho / 4``).
    Plus the local Lipschitz estimates at radius r (paper's L1 over logits and per logit,
    faithful and ascent) and the midpoint of the closest pair. With ``levels`` (points on
    the grid of multiples of ``1/levels``, e.g. :data:`lib.toys.GRID_LEVELS`) every
    certificate is decided exactly. ``max_perturbation`` records, per radius, the largest
    ℓ∞ distance of an attack's point from its clean point in float64 (at most ``rho``).
    """
    from lib.robustness.attacks import multi_targeted, pgd  # local: lib.robustness.attacks imports nothing from here
    from lib.robustness.lipschitz import local_lipschitz

    X = np.asarray(X, dtype=np.float64)
    g = SetDistanceClassifier(X, y, levels=levels)
    module = g.module(dtype=torch.float64)  # exact enough to check the Lipschitz bounds to 1e-6
    attacked = g.module()  # float32: lib.robustness.attacks keeps its margins in float32
    x, labels = torch.from_numpy(X), torch.from_numpy(g.y_ref)
    grid = evaluate_grid(g, grid_resolution)
    exact_radius = grid_robust_radius(X, g.y_ref, grid)
    cert = g.certify(X, g.y_ref, 0.0)
    rhos = np.asarray(rho_over_r, dtype=np.float64) * g.r
    curves = {name: np.empty(len(rhos)) for name in ("certified", "grid", "pgd", "multi_targeted")}
    curves["certified"] = certified_accuracy_curve(cert, rhos)
    max_perturbation = np.zeros(len(rhos))
    for n, rho in enumerate(rhos):
        curves["grid"][n] = float(np.mean(exact_radius > rho))
        for name, attack in (("pgd", pgd), ("multi_targeted", multi_targeted)):
            torch.manual_seed(seed)
            x_adv = attack(attacked, x.float(), labels, float(rho), steps=attack_steps,
                           step_size=float(rho) / 4, restarts=attack_restarts)
            max_perturbation[n] = max(max_perturbation[n], float((x_adv.double() - x).abs().max()))
            with torch.no_grad():
                curves[name][n] = float((attacked(x_adv).argmax(dim=1) == labels).double().mean())
    lipschitz = {}
    for norm_name, norm in (("l1", 1.0), ("per_logit", math.inf)):
        torch.manual_seed(seed)
        lipschitz[f"{norm_name}_ascent"] = local_lipschitz(
            module, x, g.r, steps=lipschitz_steps, step_size=g.r / 4, restarts=lipschitz_restarts,
            output_norm=norm)
        torch.manual_seed(seed)
        lipschitz[f"{norm_name}_faithful"] = local_lipschitz(module, x, g.r, faithful=True, output_norm=norm)
    pairs = closest_pairs(X, g.y_ref)
    i, j = (int(pairs[0, 0]), int(pairs[0, 1]))
    # the point of the pair with the larger label loses the tie at the midpoint
    loser, winner = (i, j) if g.y_ref[i] > g.y_ref[j] else (j, i)
    midpoint = midpoint_attack(X, loser, winner, g.r)
    return {
        "r": g.r, "num_classes": g.num_classes, "rho_over_r": np.asarray(rho_over_r, dtype=np.float64),
        "curves": curves, "max_perturbation": max_perturbation, "rhos": rhos,
        "exact_radius": exact_radius, "certified_radius": cert.radius,
        "open_certified_at_r": g.certify(X, g.y_ref, g.r, ball="open").accuracy,
        "closed_certified_at_r": g.certify(X, g.y_ref, g.r).accuracy,
        "closest_pairs": pairs, "midpoint": midpoint, "midpoint_scores": g.scores(midpoint[None])[0],
        "midpoint_prediction": int(g.predict(midpoint[None])[0]), "midpoint_owner": loser,
        "midpoint_partner": winner,
        "lipschitz": lipschitz, "grid": grid,
    }


def mnist_study(ref_images: np.ndarray, ref_labels: np.ndarray, test_images: np.ndarray,
                test_labels: np.ndarray, *, eps: float, attack_size: int, attack_steps: int,
                lipschitz_size: int, lipschitz_steps: int, lipschitz_restarts: int, seed: int = 0,
                device: torch.device | str = "cpu") -> dict:
    """The construction on MNIST: a training subset as the reference set, test points as queries.

    Exact, from distances: r (half the reference set's separation), the class distances of
    every test point, clean accuracy of g, certificates at ``eps``. With the torch module, on
    the first ``attack_size`` / ``lipschitz_size`` test points: PGD robust accuracy at
    ``eps`` (an upper bound on the exact robust accuracy, the certificate a lower bound) and
    the local Lipschitz estimates at ``eps`` (faithful and ascent, L1 over logits).
    ``pgd_max_perturbation`` is the attack's largest ℓ∞ distance from the exact images
    ``k/255`` (float64): at most ``eps``, so "certified" and "broken by PGD" never meet.
    """
    from lib.robustness.attacks import pgd
    from lib.robustness.lipschitz import local_lipschitz

    g = SetDistanceClassifier(ref_images, ref_labels)
    D = g.class_distances(test_images)
    labels = check_labels(test_labels, g.num_classes)[0]
    cert = certify(D, labels, eps, levels=g.levels)
    module = g.module(device)
    x = torch.from_numpy(test_images.astype(np.float32) / 255.0)
    y = torch.from_numpy(labels)
    torch.manual_seed(seed)
    x_adv = pgd(module, x[:attack_size].to(device), y[:attack_size].to(device), eps, steps=attack_steps).cpu()
    with torch.no_grad():
        pgd_correct = (module(x_adv.to(device)).argmax(dim=1).cpu() == y[:attack_size]).numpy()
    exact = torch.from_numpy(test_images[:attack_size]).double() / 255.0  # the image k/255 itself
    torch.manual_seed(seed)
    ascent = local_lipschitz(module, x[:lipschitz_size], eps, steps=lipschitz_steps, step_size=eps / 4,
                             restarts=lipschitz_restarts)
    torch.manual_seed(seed)
    faithful = local_lipschitz(module, x[:lipschitz_size], eps, faithful=True)
    return {
        "r": g.r, "num_classes": g.num_classes, "eps": eps, "class_distances": D, "labels": labels,
        "prediction": D.argmin(axis=1), "clean_accuracy": float(np.mean(D.argmin(axis=1) == labels)),
        "ties": tie_report(D, labels), "certificate": cert, "attack_size": attack_size,
        "certified_on_attacked": float(cert.certified[:attack_size].mean()),
        "clean_on_attacked": float(np.mean(D[:attack_size].argmin(axis=1) == labels[:attack_size])),
        "pgd_correct": pgd_correct, "pgd_accuracy": float(pgd_correct.mean()),
        "pgd_max_perturbation": float((x_adv.double() - exact).abs().max()),
        "lipschitz_ascent": ascent, "lipschitz_faithful": faithful,
    }
